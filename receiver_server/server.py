# SPDX-License-Identifier: GPL-3.0-or-later
"""The inference server: soft frames -> assembled, Chase-combined image -> MMSE pixels -> restoration -> QoE
-> ACK/NACK/FAIL to the right transmitter.

Threads: one I/O thread owns both ZeroMQ sockets (ROUTER in, PUB out; docs/protocol.md) and the
:class:`~receiver_server.assembly.Assembler`; ``workers`` inference threads take complete attempts from a
bounded backlog (``max_queue`` attempts) and put decisions on a result queue that the I/O thread publishes.
When the backlog is full a newly completed attempt gets no answer (counted ``busy_dropped`` and logged): its
symbols are already Chase-combined, and the transmitter's timeout makes it resend later, which is the
backpressure. A waiting attempt is dropped when a newer attempt of the same image completes (it is contained
in the newer one's combination). Every rejected message is counted by reason and logged (rate-limited); the
server keeps serving.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import sys
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from infercom import link, protocol
from infercom.protocol import Feedback, ProtocolError, SoftFrame, StatusRequest

from .assembly import Assembler, AttemptJob, Rejected
from .config import ServerConfig
from .policy import Decision, decide, decide_crc
from .gate import build_metrics, judge_soft
from .records import RecordSink, ServerStats

__all__ = ["InferenceServer", "JsonFormatter", "make_logger", "resolve_thresholds", "default_qoe_names"]

#: libzmq drops (and disconnects) anything above this before we see it; between MAX_SOFT_FRAME_BYTES and this
#: a message is read, rejected as "oversized" and counted
_ZMQ_MAXMSGSIZE = 4 * protocol.MAX_SOFT_FRAME_BYTES
#: the offline default QoE set (issue #4: NIQE + an offline consistency proxy) if the QoE package names none
_FALLBACK_QOE = ("niqe", "consistency")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (unix s), level, event, and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        d = {"ts": round(record.created, 6), "level": record.levelname.lower(), "event": record.getMessage()}
        d.update(getattr(record, "fields", {}))
        return json.dumps(d, separators=(",", ":"), default=str)


def make_logger(name: str, log_file: str | None, level: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.handlers.clear()
    log.propagate = False
    h: logging.Handler
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        h = logging.FileHandler(log_file)
    else:
        h = logging.StreamHandler(sys.stderr)
    h.setFormatter(JsonFormatter())
    log.addHandler(h)
    log.setLevel(level.upper())
    return log


def default_qoe_names() -> tuple[str, ...]:
    """The QoE package's offline default metric set (``receiver_server.qoe.DEFAULT_QOE``)."""
    from . import qoe
    names = getattr(qoe, "DEFAULT_QOE", None) or _FALLBACK_QOE
    return (names,) if isinstance(names, str) else tuple(names)


def resolve_thresholds(metrics: dict[str, Any], configured: dict[str, float], restorer: str | None = None,
                       fallbacks: list | None = None) -> dict[str, float]:
    """Thresholds per metric: the configured ones, else the metric's own ``threshold`` attribute, else the QoE
    package's rule (``receiver_server.qoe.thresholds.threshold``: the papers' CLIP defaults, the calibrated
    offline ones -- ``restorer``'s own calibration entry, else the default restorer's). Metrics without any
    threshold are reported but do not gate the ACK. When ``fallbacks`` is a list, ``(metric, entry used)`` is
    appended for every calibrated threshold taken from another restorer's entry than ``restorer``."""
    out = {}
    unknown = sorted(set(configured) - set(metrics))
    if unknown:
        raise ValueError(f"thresholds given for metrics that are not loaded: {unknown}")
    for name, m in metrics.items():
        if name in configured:
            out[name] = float(configured[name])
        elif getattr(m, "threshold", None) is not None:
            out[name] = float(m.threshold)
        else:
            try:
                from .qoe.thresholds import threshold
                t = threshold(name, restorer=restorer)
                out[name] = float(t.value)
                if fallbacks is not None and restorer is not None and t.restorer not in (None, restorer):
                    fallbacks.append((name, t.restorer))
            except (ImportError, ValueError):
                pass
    return out


def calibration_name(restorer: Any, configured: str | None = None) -> str | None:
    """The name the restorer's calibrated QoE thresholds are stored under: its ``name`` attribute (else the
    configured name). Workaround while ``infercom-restorer-stage1`` is not in the restorer registry:
    ``infercom-restorer`` configured with ``stage: 1`` is the stage-1 restorer and uses that entry."""
    name = getattr(restorer, "name", None) or configured
    if name == "infercom-restorer" and int((getattr(restorer, "config", None) or {}).get("stage", 2)) == 1:
        return "infercom-restorer-stage1"
    return name


class _AllowListKeys:
    """ZAP credentials provider: admits the CurveZMQ client keys on the allow-list."""

    def __init__(self, allow):
        self.allow = allow

    def callback(self, domain: str, key: bytes) -> bool:     # noqa: ARG002 - pyzmq's signature
        return self.allow.admits(key.decode("ascii"))


class _RateLimiter:
    def __init__(self, per_s: float):
        self.per_s = per_s
        self._win: dict[str, tuple[float, int]] = {}

    def allow(self, key: str, now: float) -> bool:
        start, n = self._win.get(key, (now, 0))
        if now - start >= 1.0:
            start, n = now, 0
        self._win[key] = (start, n + 1)
        return n < self.per_s


class InferenceServer:
    """The server. ``restorer`` / ``metrics`` may be given as objects (tests); by default they are built from
    ``cfg.restorer`` / ``cfg.qoe`` through ``receiver_server.restorers.get_restorer`` and
    ``receiver_server.qoe.get_qoe``.

    ``start()`` binds and runs in background threads; ``stop()`` joins them; ``serve_forever()`` blocks.
    ``status()`` is the same dict the ``status`` message returns.
    """

    def __init__(self, cfg: ServerConfig, restorer: Any = None, metrics: dict[str, Any] | None = None,
                 logger: logging.Logger | None = None):
        self.cfg = cfg
        self.log = logger or make_logger("receiver_server", cfg.log_file, cfg.log_level)
        if restorer is None:
            from .restorers import DEFAULT_RESTORER, get_restorer
            restorer = get_restorer(cfg.restorer or DEFAULT_RESTORER, cfg.device,
                                    dict(cfg.restorer_config) or None)
        self._batching = None
        if cfg.batch_max > 1:
            if callable(getattr(restorer, "restore_batch", None)):
                from .batching import BatchingRestorer
                restorer = self._batching = BatchingRestorer(restorer, cfg.batch_max, cfg.batch_wait_ms)
            else:
                self.log.warning("batching_unavailable", extra={"fields": {
                    "restorer": getattr(restorer, "name", None), "note": "the restorer has no restore_batch; "
                    "attempts are restored one at a time"}})
        if cfg.batch_max > cfg.workers:
            self.log.warning("batch_larger_than_workers", extra={"fields": {
                "batch_max": cfg.batch_max, "workers": cfg.workers,
                "note": "a batch holds at most `workers` attempts (one per inference thread)"}})
        self.restorer = restorer
        if metrics is None:
            metrics = build_metrics(cfg.qoe or default_qoe_names(), cfg.device, cfg.qoe_config)
        self.metrics = dict(metrics)
        restorer_name = calibration_name(restorer, cfg.restorer)
        fallbacks: list = []
        self.thresholds = resolve_thresholds(self.metrics, dict(cfg.policy.thresholds), restorer_name, fallbacks)
        self.higher_is_better = {n: bool(m.higher_is_better) for n, m in self.metrics.items()}
        self.stats = ServerStats()
        self.records = RecordSink(cfg.records_file)
        self._job_bytes = 0                     # arrays of jobs handed out and not yet published (I/O thread)
        self.assembler = Assembler(self.stats, cfg.assembly_timeout_s, cfg.max_images, cfg.max_buffer_bytes,
                                   cfg.image_ttl_s, cfg.max_tx_pixels, cfg.policy.min_received_fraction,
                                   external_bytes=lambda: self._job_bytes)
        self.allow = None
        if cfg.curve_allow_file:
            from .allowlist import load_allow_list
            self.allow = load_allow_list(cfg.curve_allow_file)
        self._jobs: queue.Queue[AttemptJob | None] = queue.Queue(maxsize=cfg.workers)   # hand-off to workers
        self._backlog: deque[AttemptJob] = deque()                                       # <= cfg.max_queue
        self._results: queue.Queue[tuple[AttemptJob, Decision, dict, dict]] = queue.Queue()
        self._streams: OrderedDict[int, int] = OrderedDict()
        self._digests: OrderedDict[bytes, None] = OrderedDict()   # frames accepted, ids excluded (replay guard)
        self._auth = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self._limiter = _RateLimiter(cfg.reject_log_per_s)
        self._error: BaseException | None = None
        self.bound: dict[str, str] = {}
        if cfg.artifacts_dir:
            Path(cfg.artifacts_dir).mkdir(parents=True, exist_ok=True)
        if fallbacks:
            self.log.warning("threshold_fallback", extra={"fields": {
                "restorer": restorer_name, "metrics": {m: e for m, e in fallbacks},
                "note": "no calibrated thresholds for this restorer; using another restorer's entry "
                        "(run infercom calibrate-qoe --restorer NAME)"}})
        if not self.thresholds:
            self.log.warning("no_thresholds", extra={"fields": {
                "metrics": sorted(self.metrics), "note": "every attempt will be acknowledged"}})

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout_s: float = 10.0) -> "InferenceServer":
        io = threading.Thread(target=self._io_loop, name="server-io", daemon=True)
        self._threads = [io] + [threading.Thread(target=self._worker, name=f"server-worker-{i}", daemon=True)
                                for i in range(self.cfg.workers)]
        for t in self._threads:
            t.start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise RuntimeError(f"server did not bind within {timeout_s} s: {self._error}")
        if self._error is not None:
            self.stop()
            raise RuntimeError(f"server failed to start: {self._error}") from self._error
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        for _ in range(self.cfg.workers):
            try:
                self._jobs.put_nowait(None)
            except queue.Full:
                pass
        for t in self._threads:
            t.join(timeout_s)
        self._threads = []
        if self._batching is not None:
            self._batching.close(timeout_s)

    def serve_forever(self) -> None:
        self.start()
        try:
            while not self._stop.is_set():
                time.sleep(0.2)
                if not all(t.is_alive() for t in self._threads):
                    raise RuntimeError(f"a server thread died: {self._error}")
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> "InferenceServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _update_gauges(self) -> None:
        """Called by the I/O thread (which owns the assembler) once per loop."""
        self.stats.set_gauge("queue_depth", self._jobs.qsize() + len(self._backlog))
        self.stats.set_gauge("images_held", len(self.assembler))
        self.stats.set_gauge("buffer_bytes", self.assembler.nbytes + self._job_bytes)
        self.stats.set_gauge("streams_tracked", len(self._streams))

    def status(self) -> dict[str, Any]:
        """Counters, gauges and latency percentiles (safe to call from any thread)."""
        snap = self.stats.snapshot()
        snap.update({"protocol_version": protocol.VERSION, "restorer": getattr(self.restorer, "name", "?"),
                     "qoe": sorted(self.metrics), "thresholds": self.thresholds, "bound": self.bound,
                     "max_attempts": self.cfg.policy.max_attempts})
        b = self._batching
        snap["batching"] = {"max_batch": self.cfg.batch_max, "max_wait_ms": self.cfg.batch_wait_ms,
                            "batches": b.batches if b else 0, "attempts": b.batched_calls if b else 0,
                            "active": b is not None}
        return snap

    # ------------------------------------------------------------------ I/O thread
    def _setup_sockets(self, ctx: zmq.Context) -> tuple[zmq.Socket, zmq.Socket]:
        router = ctx.socket(zmq.ROUTER)
        pub = ctx.socket(zmq.PUB)
        for s in (router, pub):
            s.setsockopt(zmq.LINGER, 500)
        router.setsockopt(zmq.MAXMSGSIZE, _ZMQ_MAXMSGSIZE)
        router.setsockopt(zmq.RCVHWM, 4096)
        router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        pub.setsockopt(zmq.SNDHWM, 4096)
        if self.cfg.curve_secret_file:
            from infercom.zmqcurve import load_keypair
            public, secret = load_keypair(self.cfg.curve_secret_file)
            if self.allow is not None:
                # ZAP: the CURVE handshake of a key not on the allow-list fails (the client delivers nothing)
                from zmq.auth.thread import ThreadAuthenticator
                self._auth = ThreadAuthenticator(ctx)
                self._auth.start()
                self._auth.configure_curve_callback("*", credentials_provider=_AllowListKeys(self.allow))
            for s in (router, pub):
                s.curve_secretkey = secret
                s.curve_publickey = public
                s.curve_server = True
        router.bind(self.cfg.bind)
        pub.bind(self.cfg.feedback_address)
        self.bound = {"soft_frames": router.getsockopt(zmq.LAST_ENDPOINT).decode(),
                      "feedback": pub.getsockopt(zmq.LAST_ENDPOINT).decode()}
        return router, pub

    def _io_loop(self) -> None:
        ctx = zmq.Context()
        try:
            router, pub = self._setup_sockets(ctx)
            self.log.info("listening", extra={"fields": {**self.bound,
                                                         "restorer": getattr(self.restorer, "name", "?"),
                                                         "qoe": sorted(self.metrics),
                                                         "thresholds": self.thresholds,
                                                         "curve": bool(self.cfg.curve_secret_file)}})
            self._ready.set()
            poller = zmq.Poller()
            poller.register(router, zmq.POLLIN)
            while not self._stop.is_set():
                if poller.poll(10):
                    for _ in range(1000):
                        try:
                            parts = router.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        user = parts[-1].get("User-Id") if self._auth is not None else None
                        try:
                            self._on_message(router, pub, [f.bytes for f in parts], user)
                        except Exception as exc:      # noqa: BLE001 - one bad message must not stop the server
                            self._internal_error("message", exc)
                now = time.monotonic()
                jobs, events = self.assembler.poll(now)
                for ev in events:
                    self._on_event(pub, ev)
                for job in jobs:
                    self._enqueue(job)
                while self._backlog and not self._jobs.full():
                    self._jobs.put_nowait(self._backlog.popleft())
                self._update_gauges()
                while True:
                    try:
                        job, dec, scores, lat = self._results.get_nowait()
                    except queue.Empty:
                        break
                    try:
                        self._publish_decision(pub, job, dec, scores, lat)
                    except Exception as exc:          # noqa: BLE001
                        self._internal_error("publish", exc)
        except BaseException as exc:     # noqa: BLE001 - reported through start()/serve_forever()
            self._error = exc
            self.log.error("io_thread_error", extra={"fields": {"error": repr(exc)}})
            self._ready.set()
        finally:
            self._flush_records()
            if self._auth is not None:
                self._auth.stop()
            # every socket of the context, each with its own linger (500 ms: the last decisions go out), also
            # those a failed bind left behind (term() alone would wait for them forever)
            ctx.destroy()

    def _flush_records(self) -> None:
        """On shutdown: a record for every image still undecided (outcome ``unfinished``)."""
        try:
            for key, im in list(self.assembler.images.items()):
                if im.decision is None:
                    rec = im.record(outcome="unfinished")
                    rec["note"] = "the server stopped before deciding this image"
                    self.records.add(rec)
        except Exception as exc:      # noqa: BLE001 - shutdown must complete
            self._internal_error("flush_records", exc)

    def _internal_error(self, where: str, exc: Exception) -> None:
        import traceback
        self.stats.inc("internal_errors")
        self.log.error("internal_error", extra={"fields": {"where": where, "error": repr(exc),
                                                           "traceback": traceback.format_exc()[-2000:]}})

    def _reject(self, reason: str, detail: str) -> None:
        self.stats.reject(reason)
        if self._limiter.allow(reason, time.monotonic()):
            self.log.warning("reject", extra={"fields": {"reason": reason, "detail": detail[:300]}})

    def _on_message(self, router: zmq.Socket, pub: zmq.Socket, frames: list[bytes],
                    user: str | None = None) -> None:
        """One message from peer ``frames[0]`` (routing id); ``user``: its CurveZMQ key (Z85) when the server
        runs with an allow-list (the ZAP handler admitted it)."""
        self.stats.inc("messages_in")
        if len(frames) < 2 or len(frames) > 3 or (len(frames) == 3 and frames[1] != b""):
            self._reject("bad_field", f"expected [identity, (empty,) message], got {len(frames)} frames")
            return
        envelope, payload = frames[:-1], frames[-1]
        try:
            msg = protocol.decode(payload)
        except ProtocolError as exc:
            self._reject(exc.reason, str(exc))
            return
        if isinstance(msg, StatusRequest):
            if self.allow is not None and not self.allow.may_ask_status(user or ""):
                self._reject("unauthorised_status", f"key {user} may not ask for status (allow-list 'status')")
                return
            self._update_gauges()
            body = self.status()
            try:
                out = protocol.encode(protocol.StatusResponse(body))
            except ProtocolError as exc:     # cannot happen with bounded counters; be safe
                out = protocol.encode(protocol.StatusResponse({"error": str(exc)}))
            router.send_multipart(envelope + [out])
            self.stats.inc("status_requests")
            return
        if not isinstance(msg, SoftFrame):
            self._reject("unexpected_type", f"{type(msg).__name__} is not accepted by the server")
            return
        if msg.config.n_symbols() > self.cfg.max_image_symbols:
            self._reject("oversized", f"image of {msg.config.n_symbols()} payload symbols exceeds this server's "
                                      f"max_image_symbols={self.cfg.max_image_symbols}")
            return
        if self.allow is not None and not self.allow.may_send(user or "", msg.tx_id):
            self._reject("unauthorised_tx", f"key {self.allow.names.get(user or '', user)} may not deliver frames "
                                            f"for tx {msg.tx_id}")
            return
        last = self._streams.get(msg.stream_id)
        if last is not None and msg.seq <= last:
            self._reject("replay", f"stream {msg.stream_id:#x} seq {msg.seq} <= last {last}")
            return
        digest = protocol.frame_digest(payload)
        if digest in self._digests:
            self._reject("replay", f"frame (tx {msg.tx_id}, image {msg.image_id}, attempt {msg.attempt}, "
                                   f"frame {msg.frame_idx}) was already accepted (same content, other ids)")
            return
        try:
            events = self.assembler.add(msg, time.monotonic(), source=(user or "").encode() + envelope[0])
        except Rejected as exc:
            self._reject(exc.reason, exc.detail)
            return
        except ValueError as exc:           # a frame the link layer refuses (should be caught by decode)
            self._reject("bad_field", f"assembly refused the frame: {exc}")
            return
        self._streams[msg.stream_id] = msg.seq
        self._streams.move_to_end(msg.stream_id)
        while len(self._streams) > self.cfg.max_streams:
            self._streams.popitem(last=False)
        self._digests[digest] = None
        while len(self._digests) > self.cfg.max_frame_digests:
            self._digests.popitem(last=False)
        for ev in events:
            self._on_event(pub, ev)

    def _on_event(self, pub: zmq.Socket, ev) -> None:
        if ev.kind == "reanswer":
            fb = Feedback(tx_id=ev.key[0], image_id=ev.key[1], attempt=ev.attempt, decision=ev.decision,
                          reason=f"already decided {ev.decision}")
            self._send_feedback(pub, fb)
            self.stats.inc("reanswers")
            self.log.info("reanswer", extra={"fields": {"tx_id": ev.key[0], "image_id": ev.key[1],
                                                        "attempt": ev.attempt, "decision": ev.decision}})
        elif ev.kind == "record":
            outcome = ev.record["outcome"]
            # evictions, expiries and abandoned images come in floods when someone floods: rate-limited
            # (records and log lines alike); the counters count every one
            if not self._limiter.allow(f"closed_{outcome}", time.monotonic()):
                self.stats.inc("records_suppressed")
                return
            self.records.add(ev.record)
            self.log.info("image_closed", extra={"fields": {"tx_id": ev.key[0], "image_id": ev.key[1],
                                                            "outcome": outcome}})

    def _release(self, job: AttemptJob, why: str) -> None:
        """A job leaves without a decision (``why``: superseded | busy): note it in the attempt's record."""
        self._job_bytes -= job.nbytes
        im = self.assembler.get(job.key)
        if im is not None and im.generation == job.generation:
            im.in_flight = max(0, im.in_flight - 1)
            info = im.attempt_info(job.attempt, job.generation)
            if info is not None:
                info.superseded = why == "superseded"
                info.reason = ("no decision: a newer attempt of the image arrived first" if why == "superseded"
                               else "no answer: server busy (inference backlog full); the transmitter resends")

    def _enqueue(self, job: AttemptJob) -> None:
        job.queued_at = time.monotonic()
        self.stats.add_latency("assembly", 1e3 * (job.completed_at - job.first_frame_at))
        older = [j for j in self._backlog if j.key == job.key]
        for j in older:                       # contained in the newer attempt's combination
            self._backlog.remove(j)
            self._release(j, "superseded")
            self.stats.inc("jobs_superseded")
        self._job_bytes += job.nbytes
        over_budget = self.assembler.nbytes + self._job_bytes > self.cfg.max_buffer_bytes and self._job_bytes > job.nbytes
        if len(self._backlog) >= self.cfg.max_queue or over_budget:
            self._release(job, "busy")
            self.stats.inc("busy_dropped")
            if self._limiter.allow("busy", time.monotonic()):
                self.log.warning("busy", extra={"fields": {
                    "tx_id": job.key[0], "image_id": job.key[1], "attempt": job.attempt,
                    "backlog": len(self._backlog), "note": "no answer; the transmitter will time out and resend"}})
            return
        self._backlog.append(job)

    def _send_feedback(self, pub: zmq.Socket, fb: Feedback) -> None:
        pub.send_multipart([protocol.feedback_topic(fb.tx_id), protocol.encode(fb)])
        self.stats.inc("feedback_sent")

    def _publish_decision(self, pub: zmq.Socket, job: AttemptJob, dec: Decision, scores: dict[str, float],
                          lat: dict[str, float]) -> None:
        tx_id, image_id = job.key
        self._job_bytes -= job.nbytes
        im = self.assembler.get(job.key)
        same = im is not None and im.generation == job.generation
        contested = max(job.contested, im.contested if same else 0)
        if contested and dec.decision != "FAIL":
            dec = Decision("FAIL", f"contested: {contested} frames of this image came from another RX peer, so "
                                   f"it cannot be attributed to tx {tx_id} (enable CurveZMQ with an allow-list); "
                                   f"was: {dec.decision} {dec.reason}"[:500])
        nxt = job.attempt + 1 if dec.decision == "NACK" else 0
        if dec.decision == "NACK" and nxt > 15:       # no attempt number left
            dec = Decision("FAIL", f"attempt numbers exhausted; {dec.reason}")
            nxt = 0
        fb = Feedback(tx_id=tx_id, image_id=image_id, attempt=job.attempt, decision=dec.decision,
                      reason=dec.reason[:512], scores={k: v for k, v in scores.items() if math.isfinite(v)},
                      mode=dec.mode if dec.decision == "NACK" else "none", frames=dec.frames,
                      refine_bh=dec.refine_bh, refine_bw=dec.refine_bw, next_attempt=nxt)
        lat = dict(lat)
        lat["total"] = 1e3 * (time.monotonic() - job.completed_at)
        self.stats.add_latency("total", lat["total"])
        self.stats.decision(dec.decision)
        info = im.attempt_info(job.attempt, job.generation) if same else None
        if info is not None:
            info.decision, info.reason, info.mode, info.early = dec.decision, dec.reason, fb.mode, dec.early
            info.scores = dict(scores)
            info.latency_ms = {k: round(v, 3) for k, v in lat.items()}
            info.request = (list(dec.frames) if dec.mode == "selective" else
                            [dec.refine_bh, dec.refine_bw] if dec.mode == "refine" else None)
        if same:
            im.in_flight = max(0, im.in_flight - 1)
            if dec.decision == "NACK" and dec.mode == "selective" and im.newest_attempt == job.attempt:
                im.next_expected = tuple(dec.frames)
            if dec.decision in ("ACK", "FAIL") and im.decision is None:
                im.close(dec.decision, job.attempt)
                self.records.add(im.record())
        self._send_feedback(pub, fb)           # after the record: a decision sent is a decision recorded
        self.log.info("decision", extra={"fields": {
            "tx_id": tx_id, "image_id": image_id, "attempt": job.attempt, "decision": dec.decision,
            "mode": fb.mode, "early": dec.early, "reason": dec.reason, "scores": scores, "attempts_combined": job.attempts_combined,
            "missing_frames": len(job.missing_frames), "latency_ms": {k: round(v, 2) for k, v in lat.items()}}})

    # ------------------------------------------------------------------ inference
    def _worker(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._jobs.get(timeout=0.1)
            except queue.Empty:
                continue
            if job is None:
                break
            try:
                dec, scores, lat = self.process(job)
            except Exception as exc:      # noqa: BLE001 - a failing restorer/metric must not stop the server
                self.stats.inc("inference_errors")
                self.log.error("inference_error", extra={"fields": {"tx_id": job.key[0], "image_id": job.key[1],
                                                                    "attempt": job.attempt, "error": repr(exc)}})
                if job.attempt + 1 >= self.cfg.policy.max_attempts:
                    dec = Decision("FAIL", f"server error at the attempt limit: {exc!r}"[:500])
                else:
                    dec = Decision("NACK", f"server error: {exc!r}"[:500], "chase")
                scores, lat = {}, {}
            self._results.put((job, dec, scores, lat))

    def process(self, job: AttemptJob) -> tuple[Decision, dict[str, float], dict[str, float]]:
        """LLRs -> MMSE low-res image -> restoration -> QoE -> policy decision (runs in a worker thread)."""
        lat = {"queue": 1e3 * (time.monotonic() - job.queued_at)}
        self.stats.add_latency("queue", lat["queue"])
        c = job.config
        if c.system == "nr":
            return self._process_nr(job, lat)
        if job.y is None:         # too little arrived to restore (PolicyConfig.min_received_fraction)
            why = (f"only {100 * job.received_fraction:.1f} % of the payload symbols received (< "
                   f"{100 * self.cfg.policy.min_received_fraction:g} %): not restored")
            return decide({}, self.thresholds, self.higher_is_better, job.attempt, self.cfg.policy,
                          job.frame_snr_db, c.bh, c.bw, insufficient=why), self._received_score(job), lat
        lcfg = c.link_config()
        lay = link.layout(c.height, c.width, c.channels, lcfg)
        j = judge_soft(job.y, job.noise_var, job.frame_snr_db, lcfg, lay, job.attempt, job.attempts_combined,
                       self.restorer, self.metrics, self.thresholds, self.higher_is_better, self.cfg.policy,
                       {"tx_id": job.key[0], "image_id": job.key[1]})
        lat.update(j.latency_ms)
        for k in ("llr", "pixels", "restore", "qoe"):
            self.stats.add_latency(k, lat[k])
        dec, scores, obs, restored, snr_db = j.decision, j.scores, j.obs, j.restored, j.snr_db
        if self.cfg.artifacts_dir:
            self._save_artifacts(job, obs, restored, scores, dec, snr_db, lay, lcfg)
        return dec, scores, lat

    @staticmethod
    def _received_score(job: AttemptJob) -> dict[str, float]:
        """The score an attempt answered without restoring was decided on: the fraction of the image's payload
        symbols received over all its attempts (PolicyConfig.min_received_fraction)."""
        return {"received_fraction": round(float(job.received_fraction), 4)}

    def _process_nr(self, job: AttemptJob, lat: dict) -> tuple[Decision, dict[str, float], dict[str, float]]:
        """An NR transport block (the 5G-NR baseline, docs/nr.md): every attempt's LLRs into the LDPC soft
        buffer (Chase or incremental redundancy, as the header says), one decode, and the NR's own trigger:
        ACK when the CRC passes and the JPEG decodes, else NACK for the next attempt (FAIL at the limit)."""
        from infercom.nr.frames import decode_attempts, nr_fields

        f = nr_fields(job.config)
        pol = self.cfg.policy
        if job.nr_attempts is None:
            why = (f"only {100 * job.received_fraction:.1f} % of the transport block received (< "
                   f"{100 * pol.min_received_fraction:g} %): not decoded")
            return decide_crc(False, why, job.attempt, pol), self._received_score(job), lat
        t1 = time.perf_counter()
        ok, img, info, rx = decode_attempts(job.config, job.nr_attempts)
        t2 = time.perf_counter()
        lat["restore"] = 1e3 * (t2 - t1)          # LLRs + soft-buffer combining + LDPC decode + JPEG decode
        self.stats.add_latency("restore", lat["restore"])
        why = (f"TB of {rx.tb.A} bits in {info.get('n_cb')} code blocks, {len(job.nr_attempts)} attempt(s) "
               f"({f['harq']}), LDPC iterations mean {float(info.get('iterations_mean') or 0):.1f}"
               + ("" if ok else f": {info.get('error')}"))
        dec = decide_crc(ok, why, job.attempt, pol)
        scores = {"crc_ok": float(bool(info.get("crc_ok"))), "cb_crc_ok": float(info.get("cb_crc_ok") or 0)}
        if self.cfg.artifacts_dir and img is not None:
            tx_id, image_id = job.key
            np.savez_compressed(Path(self.cfg.artifacts_dir) /
                                f"nr_tx{tx_id:03d}_img{image_id:04d}_g{job.generation}_a{job.attempt:02d}.npz",
                                restored=img, info=json.dumps({"decision": dec.decision, **info}, default=str))
        return dec, scores, lat

    def _save_artifacts(self, job: AttemptJob, obs: np.ndarray, restored: np.ndarray | None, scores: dict,
                        dec: Decision, snr_db: float, lay, lcfg) -> None:
        """One ``.npz`` per attempt: observation, restored image, and a sample of the combined soft symbols
        with the bit plane each carries (0 = MSB), for reports and debugging."""
        from infercom import interleave
        tx_id, image_id = job.key
        path = Path(self.cfg.artifacts_dir) / f"tx{tx_id:03d}_img{image_id:04d}_g{job.generation}_a{job.attempt:02d}.npz"
        rng = np.random.default_rng(job.attempt)
        ok = np.isfinite(job.noise_var)
        idx = np.flatnonzero(ok)
        if idx.size > 4000:
            idx = np.sort(rng.choice(idx, 4000, replace=False))
        perm = interleave.permutation(lay.n_symbols, interleave.get_keyring(None).key(lcfg.key_id))
        plane = (perm[idx] // lay.n_sym_per_plane).astype(np.int8)
        extra = {} if restored is None else {"restored": restored}      # None: NACKed before restoring
        np.savez_compressed(path, observation=obs.astype(np.float32), **extra,
                            y_sample=job.y[idx], noise_var_sample=job.noise_var[idx], plane_sample=plane,
                            plane_amplitudes=lcfg.plane_amplitudes(),
                            info=json.dumps({"scores": scores, "decision": dec.decision, "reason": dec.reason,
                                             "mode": dec.mode, "early": dec.early, "attempt": job.attempt,
                                             "attempts_combined": job.attempts_combined, "snr_db": snr_db,
                                             "bh": job.config.bh, "bw": job.config.bw}))
