# SPDX-License-Identifier: GPL-3.0-or-later
"""Transmitter-side retransmission state machine (pure python, no sockets, no clock of its own).

One :class:`ImageTransfer` per image. The caller owns time: every method takes ``now`` (seconds, any
monotonic clock) and returns what to send next, if anything, as a :class:`SendPlan`:

* :meth:`ImageTransfer.start` -> attempt 0, all frames, the image's initial block size;
* :meth:`ImageTransfer.on_feedback` -> on ``NACK`` the server's request: ``chase`` (the same frames again, to be
  Chase-combined at the receiver), ``selective`` (only the listed frames) or ``refine`` (the image re-encoded
  with a finer block size); on ``ACK`` done; on ``FAIL`` an explicit failure;
* :meth:`ImageTransfer.poll` -> when no feedback came within ``timeout_s`` of the attempt being sent, resend
  all frames as the next attempt (a timeout counts as an attempt).

When the attempt limit is reached without an ACK the transfer ends as an explicit failure. Every image therefore
ends in ``ACK`` or ``FAIL`` with a record of all its attempts (:meth:`ImageTransfer.record`); nothing is
silently lost. :class:`ArqQueue` runs many images of one transmitter with a bounded number in flight.

Attempt numbers are 0..15 (the header field has 4 bits), so ``max_attempts <= 16``.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from .limits import MAX_ATTEMPT, MAX_BLOCK, MAX_IMAGE_ID, MAX_TX_ID

__all__ = ["ArqConfig", "SendPlan", "ImageTransfer", "ArqQueue", "MAX_ATTEMPTS"]

#: attempts per image at most (attempt numbers 0..MAX_ATTEMPT)
MAX_ATTEMPTS = MAX_ATTEMPT + 1
_PENDING, _WAITING, _ACKED, _FAILED = "pending", "waiting", "ACK", "FAIL"


@dataclass(frozen=True)
class ArqConfig:
    """Transmitter ARQ parameters.

    ``max_attempts``: attempts per image in total (first transmission included), 1..16.
    ``timeout_s``: seconds to wait for feedback after an attempt's last frame was sent.
    ``timeout_backoff``: the timeout is multiplied by this after each timed-out attempt (>= 1).
    """

    max_attempts: int = 4
    timeout_s: float = 5.0
    timeout_backoff: float = 1.5

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or not 1 <= self.max_attempts <= MAX_ATTEMPTS:
            raise ValueError(f"max_attempts must be an int in 1..{MAX_ATTEMPTS}, got {self.max_attempts!r}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0 seconds, got {self.timeout_s!r}")
        if not self.timeout_backoff >= 1:
            raise ValueError(f"timeout_backoff must be >= 1, got {self.timeout_backoff!r}")


@dataclass(frozen=True)
class SendPlan:
    """What to transmit next for one image.

    ``frames``: frame indices to send, or ``None`` for all frames. ``bh``, ``bw``: the block size to encode
    with (changes only on ``refine``). ``why``: ``first`` | ``chase`` | ``selective`` | ``refine`` | ``timeout``.
    """

    tx_id: int
    image_id: int
    attempt: int
    frames: tuple[int, ...] | None
    bh: int
    bw: int
    why: str


@dataclass
class _Attempt:
    attempt: int
    why: str
    frames: tuple[int, ...] | None
    bh: int
    bw: int
    planned_at: float
    sent_at: float | None = None
    n_frames_sent: int | None = None
    feedback_at: float | None = None
    decision: str | None = None
    reason: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    timed_out: bool = False


class ImageTransfer:
    """The retransmission state of one image of transmitter ``tx_id``.

    ``bh``, ``bw``: the block size of the first attempt. ``meta``: free-form JSON-able data copied into the
    record (e.g. the image name).
    """

    def __init__(self, tx_id: int, image_id: int, bh: int, bw: int, cfg: ArqConfig | None = None,
                 meta: dict[str, Any] | None = None):
        if not 0 <= int(tx_id) <= MAX_TX_ID or not 0 <= int(image_id) <= MAX_IMAGE_ID:
            raise ValueError(f"tx_id must be 0..{MAX_TX_ID} and image_id 0..{MAX_IMAGE_ID}, got {tx_id}, {image_id}")
        if not (1 <= int(bh) <= MAX_BLOCK and 1 <= int(bw) <= MAX_BLOCK):
            raise ValueError(f"block size must be 1..{MAX_BLOCK}, got {bh}x{bw}")
        self.tx_id, self.image_id = int(tx_id), int(image_id)
        self.cfg = cfg or ArqConfig()
        self.meta = dict(meta or {})
        self._bh, self._bw = int(bh), int(bw)
        self.state = _PENDING
        self.attempts: list[_Attempt] = []
        self.failure: str | None = None
        self.ignored_feedback = 0
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._timeout = self.cfg.timeout_s

    # ----------------------------------------------------------------- state
    @property
    def done(self) -> bool:
        return self.state in (_ACKED, _FAILED)

    @property
    def outcome(self) -> str | None:
        """``"ACK"``, ``"FAIL"`` or ``None`` while in progress."""
        return self.state if self.done else None

    @property
    def current(self) -> _Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def deadline(self) -> float | None:
        """When :meth:`poll` will time the current attempt out (``None``: not waiting)."""
        a = self.current
        if self.state != _WAITING or a is None or a.sent_at is None:
            return None
        return a.sent_at + self._timeout

    # ----------------------------------------------------------------- events
    def start(self, now: float) -> SendPlan:
        """The first attempt: all frames at the initial block size."""
        if self.state != _PENDING or self.attempts:
            raise ValueError(f"image {self.tx_id}/{self.image_id} already started")
        self.started_at = now
        return self._plan(now, 0, "first", None)

    def sent(self, attempt: int, now: float, n_frames: int | None = None) -> None:
        """The caller finished transmitting ``attempt``: the feedback timer starts now."""
        if self.done:        # e.g. a late ACK ended the transfer while this attempt was being sent
            return
        a = self.current
        if a is None or a.attempt != attempt:
            raise ValueError(f"attempt {attempt} of image {self.tx_id}/{self.image_id} is not the current one")
        a.sent_at = now
        a.n_frames_sent = n_frames
        self.state = _WAITING

    def on_feedback(self, fb: Any, now: float) -> SendPlan | None:
        """Act on a ``protocol.Feedback``. Returns the next attempt to send, or ``None``.

        Feedback for another transmitter/image is a caller bug (``ValueError``). Stale feedback (an older
        attempt's NACK/FAIL, or anything after the transfer ended) is counted in ``ignored_feedback`` and
        ignored. An ACK of an older attempt still ends the transfer: the server was satisfied.
        """
        if fb.tx_id != self.tx_id or fb.image_id != self.image_id:
            raise ValueError(f"feedback for {fb.tx_id}/{fb.image_id} given to image {self.tx_id}/{self.image_id}")
        a = self.current
        if self.done or a is None or fb.attempt > a.attempt:
            self.ignored_feedback += 1
            return None
        if fb.attempt < a.attempt and fb.decision != "ACK":
            self.ignored_feedback += 1
            return None
        target = next(x for x in self.attempts if x.attempt == fb.attempt)
        target.feedback_at = now
        target.decision = fb.decision
        target.reason = fb.reason
        target.scores = dict(fb.scores)
        if fb.decision == "ACK":
            self._finish(_ACKED, now, None)
            return None
        if fb.decision == "FAIL":
            self._finish(_FAILED, now, f"server gave up: {fb.reason}")
            return None
        # NACK of the current attempt
        if a.attempt + 1 >= self.cfg.max_attempts:
            self._finish(_FAILED, now, f"attempt limit {self.cfg.max_attempts} reached (last: {fb.reason})")
            return None
        if fb.mode == "chase":
            return self._plan(now, a.attempt + 1, "chase", None)
        if fb.mode == "selective":
            return self._plan(now, a.attempt + 1, "selective", tuple(fb.frames))
        if fb.mode == "refine":
            self._bh, self._bw = fb.refine_bh, fb.refine_bw
            return self._plan(now, a.attempt + 1, "refine", None)
        raise ValueError(f"NACK with unknown resend mode {fb.mode!r}")

    def poll(self, now: float) -> SendPlan | None:
        """Time the current attempt out if its feedback is overdue: resend all frames as the next attempt."""
        dl = self.deadline()
        if dl is None or now < dl:
            return None
        a = self.current
        a.timed_out = True
        if a.attempt + 1 >= self.cfg.max_attempts:
            self._finish(_FAILED, now, f"no feedback within {self._timeout:.3g} s on the last attempt "
                                       f"(limit {self.cfg.max_attempts})")
            return None
        self._timeout *= self.cfg.timeout_backoff
        return self._plan(now, a.attempt + 1, "timeout", None)

    def abort(self, now: float, reason: str) -> None:
        """End the transfer as an explicit failure (e.g. the transmitter shuts down)."""
        if not self.done:
            self._finish(_FAILED, now, reason)

    # ----------------------------------------------------------------- helpers
    def _plan(self, now: float, attempt: int, why: str, frames: tuple[int, ...] | None) -> SendPlan:
        self.attempts.append(_Attempt(attempt=attempt, why=why, frames=frames, bh=self._bh, bw=self._bw,
                                      planned_at=now))
        self.state = _PENDING
        return SendPlan(self.tx_id, self.image_id, attempt, frames, self._bh, self._bw, why)

    def _finish(self, state: str, now: float, failure: str | None) -> None:
        self.state = state
        self.failure = failure
        self.finished_at = now

    def record(self) -> dict[str, Any]:
        """A JSON-able account of the transfer: every attempt, its feedback and timings (seconds)."""
        t0 = self.started_at
        return {
            "tx_id": self.tx_id, "image_id": self.image_id, **({"meta": self.meta} if self.meta else {}),
            "outcome": self.outcome, "failure": self.failure, "n_attempts": len(self.attempts),
            "ignored_feedback": self.ignored_feedback,
            "latency_s": (self.finished_at - t0) if (t0 is not None and self.finished_at is not None) else None,
            "attempts": [{
                "attempt": a.attempt, "why": a.why, "bh": a.bh, "bw": a.bw,
                "frames": list(a.frames) if a.frames is not None else "all", "n_frames_sent": a.n_frames_sent,
                "decision": a.decision, "reason": a.reason, "scores": a.scores, "timed_out": a.timed_out,
                "send_s": (a.sent_at - a.planned_at) if a.sent_at is not None else None,
                "feedback_s": (a.feedback_at - a.sent_at) if (a.feedback_at and a.sent_at) else None,
            } for a in self.attempts],
        }


class ArqQueue:
    """All images of one transmitter: at most ``window`` in flight, the rest queued in order.

    ``add`` images, then loop: ``plans = queue.step(now)`` (starts queued images and times out overdue ones),
    send each plan and call ``queue.sent(plan, now)``; feed every feedback to ``queue.on_feedback``. When
    ``queue.finished`` every image is in ``queue.records()`` with outcome ACK or FAIL.
    """

    def __init__(self, tx_id: int, cfg: ArqConfig | None = None, window: int = 1):
        if not 1 <= window <= MAX_IMAGE_ID + 1:
            raise ValueError(f"window must be 1..{MAX_IMAGE_ID + 1} images in flight, got {window}")
        self.tx_id = int(tx_id)
        self.cfg = cfg or ArqConfig()
        self.window = window
        self._queued: deque[ImageTransfer] = deque()
        self._active: OrderedDict[int, ImageTransfer] = OrderedDict()
        self._done: list[ImageTransfer] = []
        self.unmatched_feedback = 0

    def add(self, image_id: int, bh: int, bw: int, meta: dict[str, Any] | None = None) -> ImageTransfer:
        ids = {t.image_id for t in self._queued} | set(self._active)
        if image_id in ids:
            raise ValueError(f"image_id {image_id} is already queued or in flight")
        t = ImageTransfer(self.tx_id, image_id, bh, bw, self.cfg, meta)
        self._queued.append(t)
        return t

    def step(self, now: float) -> list[SendPlan]:
        plans = []
        for t in list(self._active.values()):
            p = t.poll(now)
            if p is not None:
                plans.append(p)
            self._retire(t)
        while self._queued and len(self._active) < self.window:
            t = self._queued.popleft()
            self._active[t.image_id] = t
            plans.append(t.start(now))
        return plans

    def sent(self, plan: SendPlan, now: float, n_frames: int | None = None) -> None:
        t = self._active.get(plan.image_id)
        if t is not None:    # absent: the image ended (late ACK) while this plan was being sent
            t.sent(plan.attempt, now, n_frames)

    def on_feedback(self, fb: Any, now: float) -> SendPlan | None:
        if fb.tx_id != self.tx_id or fb.image_id not in self._active:
            self.unmatched_feedback += 1
            return None
        t = self._active[fb.image_id]
        plan = t.on_feedback(fb, now)
        self._retire(t)
        return plan

    def next_deadline(self) -> float | None:
        dls = [d for d in (t.deadline() for t in self._active.values()) if d is not None]
        return min(dls) if dls else None

    def _retire(self, t: ImageTransfer) -> None:
        if t.done and t.image_id in self._active:
            del self._active[t.image_id]
            self._done.append(t)

    def abort_all(self, now: float, reason: str) -> None:
        for t in list(self._active.values()) + list(self._queued):
            t.abort(now, reason)
            self._done.append(t)
        self._active.clear()
        self._queued.clear()

    @property
    def finished(self) -> bool:
        return not self._queued and not self._active

    @property
    def in_flight(self) -> Iterable[ImageTransfer]:
        return tuple(self._active.values())

    def records(self) -> list[dict[str, Any]]:
        return [t.record() for t in self._done]
