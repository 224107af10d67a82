# SPDX-License-Identifier: GPL-3.0-or-later
"""Server bookkeeping: counters, per-stage latency percentiles, and per-image transmission records (JSON).

A transmission record (one per image, written when the image ends in ACK or FAIL, or is evicted) holds every
attempt the server saw: frames received and missing, measured Es/N0 per frame, combined Es/N0, QoE scores, the
decision and what was asked for, and the latency of each stage in milliseconds. The transmitter side keeps its
own record (``infercom.arq.ImageTransfer.record``); :func:`merge_records` joins the two.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any, Iterable

import numpy as np

__all__ = ["STAGES", "LatencyWindow", "ServerStats", "RecordSink", "merge_records", "percentiles"]

#: latency stages (ms): first frame -> attempt complete; waiting for a worker; LLRs; LLR -> MMSE pixels;
#: restoration; QoE scoring; attempt complete -> feedback sent
STAGES = ("assembly", "queue", "llr", "pixels", "restore", "qoe", "total")


def percentiles(values: Iterable[float], qs=(50, 99)) -> dict[str, float | None]:
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return {f"p{q}": None for q in qs}
    return {f"p{q}": float(np.percentile(v, q)) for q in qs}


class LatencyWindow:
    """The last ``size`` samples of one stage (bounded memory)."""

    def __init__(self, size: int = 2048):
        self._v: deque[float] = deque(maxlen=size)
        self.count = 0

    def add(self, ms: float) -> None:
        self._v.append(float(ms))
        self.count += 1

    def summary(self) -> dict[str, Any]:
        return {"n": self.count, **percentiles(self._v)}


class ServerStats:
    """Thread-safe counters and latency windows; :meth:`snapshot` is the ``status`` body."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.counters: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.decisions: Counter[str] = Counter()
        self.latency = {s: LatencyWindow() for s in STAGES}
        self.gauges: dict[str, Any] = {}

    def inc(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def reject(self, reason: str) -> None:
        with self._lock:
            self.rejected[reason] += 1

    def decision(self, d: str) -> None:
        with self._lock:
            self.decisions[d] += 1

    def add_latency(self, stage: str, ms: float) -> None:
        with self._lock:
            self.latency[stage].add(ms)

    def set_gauge(self, name: str, value: Any) -> None:
        with self._lock:
            self.gauges[name] = value

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "uptime_s": time.time() - self.started,
                "images_served": self.decisions["ACK"] + self.decisions["FAIL"],
                "decisions": dict(self.decisions),
                "counters": dict(self.counters),
                "rejected": dict(self.rejected),
                "rejected_total": sum(self.rejected.values()),
                **self.gauges,
                "latency_ms": {s: w.summary() for s, w in self.latency.items()},
            }


class RecordSink:
    """Keeps the last ``keep`` finished-image records in memory and appends each to a JSON-lines file."""

    def __init__(self, path: str | Path | None = None, keep: int = 1024):
        self.path = Path(path) if path else None
        self._recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, rec: dict[str, Any]) -> None:
        line = json.dumps(rec, separators=(",", ":"), allow_nan=False, default=_jsonable)
        with self._lock:
            self._recent.append(json.loads(line))
            if self.path:
                with self.path.open("a") as f:
                    f.write(line + "\n")

    def recent(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._recent)


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines records file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def merge_records(tx_records: list[dict[str, Any]], server_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Join transmitter and server records of the same ``(tx_id, image_id)``: ``{"tx": ..., "server": ...}``.

    The server may hold several records of one image (e.g. after a restart); they are kept in order.
    """
    by_key: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in server_records:
        by_key.setdefault((r["tx_id"], r["image_id"]), []).append(r)
    out = []
    for r in tx_records:
        key = (r["tx_id"], r["image_id"])
        out.append({"tx_id": key[0], "image_id": key[1], "outcome": r["outcome"], "tx": r,
                    "server": by_key.get(key, [])})
    return out
