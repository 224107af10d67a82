# SPDX-License-Identifier: GPL-3.0-or-later
"""Execution of an experiment's points: seeds from coordinates, a resumable CSV, a process pool or Ray.

A *point* is a dict of JSON scalars (its coordinates: image, system, rate, Es/N0, ...). Its key is the
canonical JSON of the coordinates, its random generator is seeded from them (:func:`point_rng`), so a point's
result depends on nothing but its coordinates and the base seed: not on the worker count, the order, or which
other points ran. An experiment's ``evaluate(point, ctx)`` returns one row (a dict) per point; rows hold only
values that are deterministic functions of the point (no timings), so two runs write the same CSV.

The CSV (``points.csv``) is appended to and flushed as each point finishes, so a crash or Ctrl-C leaves every
finished point on disk. ``resume=True`` reads it back (a torn last line is dropped), skips the finished points,
and at the end the file is rewritten in the points' canonical order, atomically: a resumed run's CSV equals an
uninterrupted one's. Values are written as ``str()`` of Python scalars (floats round-trip exactly), lists as
JSON, None as the empty cell.

Execution (:func:`run_points`): ``workers == 1`` in this process; ``workers > 1`` a
``concurrent.futures.ProcessPoolExecutor`` (spawned processes, one torch / numba thread each); ``ray`` an
address of an existing cluster (``ray.init(address=...)``) or ``"local"`` (an in-process cluster of
``workers`` CPUs), the same points as Ray tasks. Progress: a tqdm bar with rate and ETA on stderr.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["point_key", "point_seed", "point_rng", "format_cell", "parse_cell", "PointStore", "run_points",
           "init_worker", "evaluate_in_worker"]

#: columns every row starts with
KEY = "key"


def point_key(point: dict) -> str:
    """The canonical key of a point: JSON of its coordinates with sorted keys, no spaces."""
    return json.dumps(point, sort_keys=True, separators=(",", ":"))


def point_seed(seed: int, *coords: Any) -> int:
    """A 63-bit seed from the base ``seed`` and coordinates (any JSON values): SHA-256 of their canonical JSON.
    Points that share coordinates (e.g. the same image, Es/N0 and rate for two systems) share the seed."""
    text = json.dumps([int(seed), *coords], sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def point_rng(seed: int, *coords: Any) -> np.random.Generator:
    """``numpy.random.default_rng(point_seed(seed, *coords))``."""
    return np.random.default_rng(point_seed(seed, *coords))


def format_cell(v: Any) -> str:
    """A row value as a CSV cell: None -> '', bool -> 'True'/'False', float -> repr (nan/inf as 'nan', 'inf'),
    numpy scalars as Python's, list/tuple/dict -> compact JSON."""
    if v is None:
        return ""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, separators=(",", ":"), default=lambda x: x.item() if isinstance(x, np.generic) else str(x))
    if isinstance(v, float):
        return repr(v)
    return str(v)


def parse_cell(text: str) -> Any:
    """Inverse of :func:`format_cell` for reading rows back: '' -> None, 'True'/'False' -> bool, numbers ->
    int/float, JSON lists/objects -> Python, anything else the string."""
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    if text[0] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


class PointStore:
    """The experiment's ``points.csv``: the rows of finished points, appended as they come.

    ``columns``: the row fields, fixed for the experiment (the first is always ``key``); a row with other fields
    is an error (the experiment's contract). ``resume``: keep and skip the finished points already in the file
    (rows whose key is not a planned point, or torn, are dropped); else the file is started afresh."""

    def __init__(self, path: Path, columns: list[str], planned_keys: list[str], resume: bool):
        self.path = Path(path)
        self.columns = [KEY] + [c for c in columns if c != KEY]
        self.order = {k: i for i, k in enumerate(planned_keys)}
        self.rows: dict[str, dict[str, str]] = {}
        self.dropped = 0
        if resume and self.path.exists():
            self._load()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rewrite(self.path)             # a clean file (valid header, only kept rows) to append to
        self._fh = open(self.path, "a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._fh, fieldnames=self.columns)

    def _load(self) -> None:
        with open(self.path, newline="", encoding="utf-8") as fh:
            text = fh.read()
        if text and not text.endswith("\n"):         # a torn last line (killed mid-write)
            text = text[:text.rfind("\n") + 1]
            self.dropped += 1
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None:
            return
        if list(reader.fieldnames) != self.columns:
            raise ValueError(f"{self.path}: its columns are not this experiment's (was it written by another "
                             f"version or experiment?); move it away or run without --resume")
        for row in reader:
            if None in row or any(v is None for v in row.values()) or row[KEY] not in self.order:
                self.dropped += 1
                continue
            self.rows[row[KEY]] = row

    def done(self, key: str) -> bool:
        return key in self.rows

    def add(self, key: str, row: dict) -> None:
        """Append the row of the finished point ``key`` (flushed to disk at once)."""
        extra = set(row) - set(self.columns)
        if extra:
            raise ValueError(f"row of {key} has fields outside the experiment's columns: {sorted(extra)}")
        cells = {c: format_cell(row.get(c)) for c in self.columns}
        cells[KEY] = key
        self.rows[key] = cells
        self._writer.writerow(cells)
        self._fh.flush()

    def _rewrite(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=self.columns)
            w.writeheader()
            for k in sorted(self.rows, key=self.order.__getitem__):
                w.writerow(self.rows[k])
        os.replace(tmp, path)

    def close(self) -> None:
        """Close the file and rewrite it in the points' canonical order (atomic replace)."""
        if not self._fh.closed:
            self._fh.close()
            self._rewrite(self.path)

    def records(self) -> list[dict]:
        """The finished rows in canonical order, values parsed back (:func:`parse_cell`)."""
        return [{c: parse_cell(v) for c, v in self.rows[k].items()}
                for k in sorted(self.rows, key=self.order.__getitem__)]


# --------------------------------------------------------------------------------------------- workers
def init_worker() -> None:
    """Each worker computes with one thread (torch, numba, BLAS): ``workers`` processes use ``workers`` cores,
    and results do not depend on a thread count."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


_CACHE: dict[str, Any] = {}


def evaluate_in_worker(module: str, ctx: Any, point: dict) -> dict:
    """Run ``module.evaluate(point, ctx)`` (the experiment's function, imported by name so that Ray and spawned
    processes can reach it) and return its row."""
    import importlib

    if not _CACHE.get("init"):
        init_worker()
        _CACHE["init"] = True
    return importlib.import_module(module).evaluate(point, ctx)


def run_points(module: str, ctx: Any, points: list[dict], store: PointStore, workers: int = 1,
               ray: str | None = None, progress: bool = True, on_row: Callable[[dict, dict], None] | None = None
               ) -> dict:
    """Evaluate every point of ``points`` not yet in ``store`` with ``module.evaluate(point, ctx)``; add each
    row to ``store`` as it finishes. Returns ``{"computed": n, "skipped": n_resumed, "wall_s": s}``.

    ``workers``: processes of the local pool (1: in this process); ``ray``: run as Ray tasks instead (an
    address, or ``"local"``). ``on_row(point, row)``: called in this process for every new row."""
    from tqdm import tqdm

    todo = [p for p in points if not store.done(point_key(p))]
    skipped = len(points) - len(todo)
    t0 = time.perf_counter()
    bar = tqdm(total=len(points), initial=skipped, unit="point", file=sys.stderr, disable=not progress,
               dynamic_ncols=True, smoothing=0.1)

    def finish(p: dict, row: dict) -> None:
        store.add(point_key(p), row)
        if on_row is not None:
            on_row(p, row)
        bar.update(1)

    try:
        if ray:
            _run_ray(module, ctx, todo, workers, ray, finish)
        elif workers <= 1:
            for p in todo:
                finish(p, evaluate_in_worker(module, ctx, p))
        else:
            _run_pool(module, ctx, todo, workers, finish)
    finally:
        bar.close()
        store.close()
    return {"computed": len(todo), "skipped": skipped, "wall_s": time.perf_counter() - t0}


def _run_pool(module: str, ctx: Any, todo: list[dict], workers: int, finish) -> None:
    import multiprocessing as mp

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
        pending = {}
        it = iter(todo)

        def submit_next() -> None:
            p = next(it, None)
            if p is not None:
                pending[ex.submit(evaluate_in_worker, module, ctx, p)] = p

        for _ in range(2 * workers):          # a bounded queue: Ctrl-C loses at most 2 x workers points
            submit_next()
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    p = pending.pop(f)
                    finish(p, f.result())
                    submit_next()
        except BaseException:
            for f in pending:
                f.cancel()
            raise


def _run_ray(module: str, ctx: Any, todo: list[dict], workers: int, address: str, finish) -> None:
    try:
        import ray
    except ImportError as exc:
        raise SystemExit("--ray needs the optional extra: pip install '.[ray]' "
                         f"(cannot import ray: {exc})") from exc
    started = False
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
        else:
            ray.init(address=address, log_to_driver=False)
        started = True
    try:
        task = ray.remote(num_cpus=1, max_retries=2)(evaluate_in_worker)
        ctx_ref = ray.put(ctx)
        pending = {}
        it = iter(todo)
        in_flight = max(2, 2 * int(ray.available_resources().get("CPU", workers) or workers))

        def submit_next() -> None:
            p = next(it, None)
            if p is not None:
                pending[task.remote(module, ctx_ref, p)] = p

        for _ in range(in_flight):
            submit_next()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                p = pending.pop(ref)
                finish(p, ray.get(ref))
                submit_next()
    finally:
        if started:
            ray.shutdown()
