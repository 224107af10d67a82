# SPDX-License-Identifier: GPL-3.0-or-later
"""Batched multi-user inference: the attempts that the server's worker threads restore at the same time go
through the restorer together (one batched forward pass per image size on CUDA; docs/server.md).

:class:`BatchingRestorer` wraps a restorer that has ``restore_batch(observations, metas) -> list[uint8]``
(the project's model, :class:`receiver_server.restorers.infercom_restorer.model.InferComRestorer`) and is a
Restorer itself: each ``restore`` call (one worker thread, one transmitter's attempt) is queued; one dispatcher
thread takes up to ``max_batch`` queued calls -- as many as arrive within ``max_wait_ms`` of the oldest -- and
restores them together. ``restore_batch`` groups them by image and block size (a batch never mixes sizes, so
no padding changes a result); on the CPU every image's result is bit-identical to its own ``restore`` call
(tested), so there batching changes the server's scheduling, never a decision.

The batch is bounded in size (``max_batch``) and in the latency it adds (``max_wait_ms``: a call waits at
most that long for company before its batch starts). It can only hold attempts that are being restored at
once, so the server needs ``workers >= max_batch`` inference threads to fill it. A batch whose
``restore_batch`` raises is retried one call at a time, so one bad attempt fails alone.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import numpy as np


class _Call:
    __slots__ = ("obs", "meta", "t", "done", "result", "error")

    def __init__(self, obs: np.ndarray, meta: dict):
        self.obs, self.meta, self.t = obs, meta, time.monotonic()
        self.done = threading.Event()
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None


class BatchingRestorer:
    """A Restorer that batches concurrent ``restore`` calls into ``inner.restore_batch`` (module docstring).

    ``max_batch``: most calls per batch (>= 1); ``max_wait_ms``: longest wait of a call for others (>= 0).
    ``batches`` counts the batches run and ``batched_calls`` their calls (``batched_calls / batches`` = mean
    batch size). ``close()`` stops the dispatcher (pending calls are still served first)."""

    def __init__(self, inner: Any, max_batch: int = 8, max_wait_ms: float = 10.0):
        if not callable(getattr(inner, "restore_batch", None)):
            raise ValueError(f"restorer {getattr(inner, 'name', inner)!r} has no restore_batch: it cannot batch")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be an integer >= 1, got {max_batch!r}")
        if not 0 <= float(max_wait_ms) <= 10_000:
            raise ValueError(f"max_wait_ms must be in [0, 10000], got {max_wait_ms!r}")
        self.inner = inner
        self.name = inner.name
        self.max_batch, self.max_wait_s = int(max_batch), float(max_wait_ms) / 1e3
        self.batches = self.batched_calls = 0
        self._queue: deque[_Call] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._dispatch, name="restorer-batching", daemon=True)
        self._thread.start()

    def __getattr__(self, item: str) -> Any:          # the wrapped restorer's other attributes (config, info)
        if item == "inner":
            raise AttributeError(item)
        return getattr(self.inner, item)

    def restore(self, observation: np.ndarray, meta: dict) -> np.ndarray:
        call = _Call(observation, meta)
        with self._cv:
            if self._closed:
                raise RuntimeError("BatchingRestorer is closed")
            self._queue.append(call)
            self._cv.notify_all()
        call.done.wait()
        if call.error is not None:
            raise call.error
        return call.result

    def restore_batch(self, observations: list, metas: list) -> list[np.ndarray]:
        return self.inner.restore_batch(observations, metas)

    def close(self, timeout_s: float = 10.0) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout_s)

    def _take(self) -> list[_Call] | None:
        """The next batch (None once closed and drained): wait for a call, then for up to ``max_batch`` calls
        or until the oldest has waited ``max_wait_ms``."""
        with self._cv:
            while not self._queue:
                if self._closed:
                    return None
                self._cv.wait(0.5)
            deadline = self._queue[0].t + self.max_wait_s
            while len(self._queue) < self.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            return [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]

    def _dispatch(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                results = self.inner.restore_batch([c.obs for c in batch], [c.meta for c in batch])
                for c, r in zip(batch, results):
                    c.result = r
            except Exception:               # noqa: BLE001 - retry alone so that one bad attempt fails alone
                for c in batch:
                    try:
                        c.result = self.inner.restore_batch([c.obs], [c.meta])[0]
                    except Exception as exc:    # noqa: BLE001 - handed to the caller's thread
                        c.error = exc
            self.batches += 1
            self.batched_calls += len(batch)
            for c in batch:
                c.done.set()
