# SPDX-License-Identifier: GPL-3.0-or-later
"""Image assembly on the server: soft frames -> per-attempt payloads -> Chase-combined image payloads.

One :class:`ImageAssembly` per ``(tx_id, image_id)``. Frames of the attempt being received go into an
``infercom.frame.Reassembler`` (missing frames stay ``y = 0, noise_var = inf``). An attempt is *complete* when
every frame expected for it has arrived (all frames, or the ones a selective NACK asked for), or
``assembly_timeout_s`` after its last frame. A complete attempt is folded into the image's
``infercom.chase.ChaseCombiner`` (MRC over attempts) and handed out as an :class:`AttemptJob` for inference.

Rules for a frame of attempt ``a`` when the image's newest attempt is ``c`` (docs/server.md):

* ``a > c``: a new attempt. An incomplete attempt ``c`` is folded into the combiner without a decision
  (superseded: the transmitter has moved on). A new image configuration (``refine``) restarts the
  combination: earlier attempts were of another block size.
* ``a == c``: added (a duplicate frame index is dropped); after completion: a late frame, dropped.
* ``a < c``: stale, dropped; except ``a == 0``, which starts a new image that reuses the id (a restarted
  transmitter).
* The image was decided (ACK/FAIL) at attempt ``d``: ``a > d`` re-answers the decision once per attempt (the
  transmitter did not get it); ``a == 0`` (or ``a <= d`` with attempt 0) starts a new image.

:class:`Assembler` holds all images within a count and a memory bound, evicting the least recently active
(an evicted image that had not been decided produces a record with ``outcome = "evicted"``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infercom import chase
from infercom.protocol import ImageConfig, SoftFrame

__all__ = ["AttemptJob", "ImageAssembly", "Assembler", "Event"]


@dataclass
class AttemptJob:
    """A complete attempt to run through LLR -> pixels -> restoration -> QoE -> policy."""

    key: tuple[int, int]
    attempt: int
    generation: int                 # increments when the image restarts (refine / id reuse)
    config: ImageConfig
    y: np.ndarray                   # complex64 (n_symbols,), Chase-combined over the generation's attempts
    noise_var: np.ndarray           # float32 (n_symbols,), inf where no attempt delivered the symbol
    frame_snr_db: np.ndarray        # float64 (n_frames,), combined Es/N0 per frame, -inf if never received
    attempts_combined: int
    missing_frames: list[int]       # frames this attempt expected but did not get
    never_received: list[int]       # frames no attempt of this generation delivered
    first_frame_at: float
    completed_at: float
    timed_out: bool
    queued_at: float = 0.0


@dataclass
class Event:
    """Something the server must act on: ``kind`` = ``reanswer`` (resend a decision) or ``record``."""

    kind: str
    key: tuple[int, int]
    attempt: int = 0
    decision: str | None = None
    record: dict[str, Any] | None = None


@dataclass
class _AttemptInfo:
    attempt: int
    generation: int
    bh: int
    bw: int
    expected: tuple[int, ...] | None
    first_at: float
    last_at: float
    frames: dict[int, float] = field(default_factory=dict)     # frame_idx -> measured snr_db
    completed_at: float | None = None
    timed_out: bool = False
    superseded: bool = False
    decision: str | None = None
    reason: str | None = None
    mode: str | None = None
    request: Any = None
    scores: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self, n_frames: int) -> dict[str, Any]:
        snrs = list(self.frames.values())
        exp = self.expected if self.expected is not None else range(n_frames)
        return {
            "attempt": self.attempt, "generation": self.generation, "bh": self.bh, "bw": self.bw,
            "expected": "all" if self.expected is None else list(self.expected),
            "frames_received": len(self.frames), "missing": sorted(set(exp) - set(self.frames)),
            "snr_db": {"mean": float(np.mean(snrs)) if snrs else None,
                       "min": float(np.min(snrs)) if snrs else None,
                       "per_frame": {str(k): round(v, 3) for k, v in sorted(self.frames.items())}},
            "timed_out": self.timed_out, "superseded": self.superseded,
            "decision": self.decision, "reason": self.reason, "mode": self.mode, "request": self.request,
            "scores": self.scores, "latency_ms": self.latency_ms,
        }


def _reassembler_for(msg: SoftFrame):
    from infercom.frame import Reassembler
    return Reassembler(msg.frame_header())


class ImageAssembly:
    """Assembly and Chase-combining state of one image (see the module docstring for the rules)."""

    def __init__(self, msg: SoftFrame, now: float, generation: int = 0):
        self.key = msg.key
        self.created_at = now
        self.last_activity = now
        self.attempts: list[_AttemptInfo] = []
        self.decision: str | None = None          # ACK | FAIL once decided
        self.decided_attempt: int | None = None
        self.reanswered: set[int] = set()
        self.next_expected: tuple[int, ...] | None = None
        self.in_flight = 0                         # jobs handed out, not yet decided
        self.generation = generation - 1
        self._restart(msg.config)

    # ------------------------------------------------------------------ state
    def _restart(self, config: ImageConfig) -> None:
        self.config = config
        self.generation += 1
        self.n_frames = config.frame_count()
        self.n_symbols = config.n_symbols()
        self.combiner = chase.ChaseCombiner(self.n_symbols)
        self.frame_lin = np.zeros(self.n_frames)     # sum over attempts of linear Es/N0 per frame
        self.current: _AttemptInfo | None = None
        self._reasm = None
        self.next_expected = None

    @property
    def nbytes(self) -> int:
        """Approximate soft-symbol memory held (combiner + the attempt being assembled), bytes."""
        if self.combiner is None:
            return 0
        return self.n_symbols * 12 * (2 if self._reasm is not None else 1)

    def close(self, decision: str, attempt: int) -> None:
        """The image is decided: free its soft symbols, keep a tombstone to re-answer late attempts."""
        self.decision, self.decided_attempt = decision, attempt
        self.combiner = None
        self._reasm = None
        for a in self.attempts:
            if a.decision is None and a.reason is None:
                a.reason = f"no decision: the image was decided ({decision}) at attempt {attempt}"

    @property
    def newest_attempt(self) -> int:
        return self.attempts[-1].attempt if self.attempts else -1

    def _start_attempt(self, msg: SoftFrame, now: float) -> None:
        self.current = _AttemptInfo(msg.attempt, self.generation, msg.config.bh, msg.config.bw,
                                    self.next_expected, now, now)
        self.next_expected = None
        self.attempts.append(self.current)
        self._reasm = _reassembler_for(msg)

    def _add_frame(self, msg: SoftFrame, now: float, stats) -> None:
        a = self.current
        if msg.frame_idx in a.frames:
            stats.inc("duplicate_frames")
            return
        n = self.config.frame_payload_len(msg.frame_idx)
        nv = msg.noise_var if np.ndim(msg.noise_var) == 0 else msg.noise_var[:n]
        self._reasm.add(msg.frame_header(), msg.y[:n], nv)
        a.frames[msg.frame_idx] = msg.snr_db
        a.last_at = now
        stats.inc("frames_accepted")

    def _fold(self, now: float, superseded: bool) -> None:
        """Add the current attempt to the combiner and close it."""
        a = self.current
        y, nv = self._reasm.payload()
        self.combiner.add(y, nv)
        for f, snr in a.frames.items():
            self.frame_lin[f] += 10.0 ** (snr / 10.0)
        a.completed_at = now
        a.superseded = superseded
        if superseded:
            a.reason = "no decision: a newer attempt arrived before this one completed"
        self._reasm = None

    def is_complete(self, now: float, timeout_s: float) -> tuple[bool, bool]:
        """(complete, by timeout) for the attempt being assembled."""
        a = self.current
        if a is None or self._reasm is None:
            return False, False
        got = set(a.frames)
        if len(got) == self.n_frames:
            return True, False
        if a.expected is not None and got == set(a.expected):
            return True, False
        if now - a.last_at >= timeout_s:
            return True, True
        return False, False

    def make_job(self, now: float, timed_out: bool) -> AttemptJob:
        a = self.current
        self._fold(now, superseded=False)
        a.timed_out = timed_out
        self.in_flight += 1
        y, nv = self.combiner.result()
        with np.errstate(divide="ignore"):
            frame_snr_db = np.where(self.frame_lin > 0, 10.0 * np.log10(np.maximum(self.frame_lin, 1e-300)),
                                    -np.inf)
        exp = a.expected if a.expected is not None else range(self.n_frames)
        return AttemptJob(key=self.key, attempt=a.attempt, generation=self.generation, config=self.config,
                          y=y, noise_var=nv, frame_snr_db=frame_snr_db,
                          attempts_combined=self.combiner.attempts,
                          missing_frames=sorted(set(exp) - set(a.frames)),
                          never_received=[int(i) for i in np.flatnonzero(self.frame_lin == 0)],
                          first_frame_at=a.first_at, completed_at=now, timed_out=timed_out)

    def record(self, outcome: str | None = None) -> dict[str, Any]:
        return {
            "tx_id": self.key[0], "image_id": self.key[1], "outcome": outcome or self.decision,
            "decided_attempt": self.decided_attempt, "n_attempts": len(self.attempts),
            "height": self.config.height, "width": self.config.width, "channels": self.config.channels,
            "n_frames": self.n_frames, "reanswered": sorted(self.reanswered),
            "attempts": [a.to_json(self.n_frames) for a in self.attempts],
        }

    def attempt_info(self, attempt: int, generation: int) -> _AttemptInfo | None:
        for a in reversed(self.attempts):
            if a.attempt == attempt and a.generation == generation:
                return a
        return None


class Assembler:
    """All images being assembled, bounded in count (``max_images``) and memory (``max_bytes``)."""

    def __init__(self, stats, timeout_s: float = 1.0, max_images: int = 256, max_bytes: int = 1 << 30,
                 ttl_s: float = 120.0):
        self.stats = stats
        self.timeout_s = timeout_s
        self.max_images = max_images
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.images: OrderedDict[tuple[int, int], ImageAssembly] = OrderedDict()

    def __len__(self) -> int:
        return len(self.images)

    @property
    def nbytes(self) -> int:
        return sum(im.nbytes for im in self.images.values())

    def add(self, msg: SoftFrame, now: float | None = None) -> list[Event]:
        """Accept one validated soft frame; returns events (re-answers, records of replaced images)."""
        now = time.monotonic() if now is None else now
        events: list[Event] = []
        im = self.images.get(msg.key)
        if im is None:
            im = self._new(msg, now, events)
        im.last_activity = now
        self.images.move_to_end(msg.key)
        if im.decision is not None:
            if msg.attempt > im.decided_attempt:
                if msg.attempt not in im.reanswered:
                    im.reanswered.add(msg.attempt)
                    events.append(Event("reanswer", msg.key, msg.attempt, im.decision))
                self.stats.inc("frames_after_decision")
                return events
            # attempt <= decided attempt: a new image reusing the id (the decided one is already recorded)
            im = self._new(msg, now, events, generation=im.generation + 1)
        cur = im.newest_attempt
        if msg.attempt > cur:
            if im.current is not None and im._reasm is not None:
                im._fold(now, superseded=True)
                self.stats.inc("attempts_superseded")
            if msg.config != im.config:
                im._restart(msg.config)
                self.stats.inc("image_restarts")
            im._start_attempt(msg, now)
            im._add_frame(msg, now, self.stats)
        elif msg.attempt == cur and msg.config == im.config:
            if im._reasm is None:
                self.stats.inc("late_frames")
            else:
                im._add_frame(msg, now, self.stats)
        elif msg.attempt == 0:
            if im.decision is None:
                events.append(Event("record", msg.key, record=im.record(outcome="abandoned")))
            im = self._new(msg, now, events, generation=im.generation + 1)
            im._start_attempt(msg, now)
            im._add_frame(msg, now, self.stats)
        else:
            self.stats.inc("stale_frames")
        self._enforce_bounds(events, now)
        return events

    def _new(self, msg: SoftFrame, now: float, events: list[Event], generation: int = 0) -> ImageAssembly:
        im = ImageAssembly(msg, now, generation)
        self.images[msg.key] = im
        self.images.move_to_end(msg.key)
        return im

    def poll(self, now: float | None = None) -> tuple[list[AttemptJob], list[Event]]:
        """Complete attempts that are done (all frames or timed out); evict idle images."""
        now = time.monotonic() if now is None else now
        jobs = []
        events: list[Event] = []
        for im in list(self.images.values()):
            done, by_timeout = im.is_complete(now, self.timeout_s)
            if done:
                jobs.append(im.make_job(now, by_timeout))
                if by_timeout:
                    self.stats.inc("attempts_timed_out")
        for key, im in list(self.images.items()):
            if now - im.last_activity > self.ttl_s and im.in_flight == 0:
                del self.images[key]
                if im.decision is None:
                    events.append(Event("record", key, record=im.record(outcome="expired")))
                self.stats.inc("images_expired")
        return jobs, events

    def get(self, key: tuple[int, int]) -> ImageAssembly | None:
        return self.images.get(key)

    def _enforce_bounds(self, events: list[Event], now: float) -> None:
        """Evict decided tombstones first, then the least recently active image, until within bounds."""
        while len(self.images) > self.max_images or (len(self.images) > 1 and self.nbytes > self.max_bytes):
            over_count = len(self.images) > self.max_images
            key = next((k for k, im in self.images.items() if im.decision is not None
                        and (over_count or im.nbytes > 0)), None)
            if key is None:
                key = next(iter(self.images))
            im = self.images.pop(key)
            if im.decision is None:
                events.append(Event("record", key, record=im.record(outcome="evicted")))
            self.stats.inc("images_evicted")
