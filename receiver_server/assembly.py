# SPDX-License-Identifier: GPL-3.0-or-later
"""Image assembly on the server: soft frames -> per-attempt payloads -> Chase-combined image payloads.

One :class:`ImageAssembly` per ``(tx_id, image_id)``. Frames of the attempt being received go into an
``infercom.frame.Reassembler`` (missing frames stay ``y = 0, noise_var = inf``). An attempt is *complete* when
every frame expected for it has arrived (all frames, or the ones a selective NACK asked for), or
``assembly_timeout_s`` after its last frame. A complete attempt is folded into the image's
``infercom.chase.ChaseCombiner`` (MRC over attempts) and handed out as an :class:`AttemptJob` for inference.

Rules for a frame of attempt ``a`` when the image's newest attempt is ``c`` (docs/server.md):

* ``c < a <= c + MAX_ATTEMPT_JUMP``: a new attempt (a jump of 2 allows one attempt lost whole). An incomplete
  attempt ``c`` is folded into the combination without a decision (superseded: the transmitter has moved on). A
  new image configuration (``refine``) restarts the combination: earlier attempts were of another block size.
  A larger jump is rejected (``attempt_jump``): a transmitter never skips attempts it was not told about.
* ``a == c``: added (a duplicate frame index is dropped); after completion: a late frame, dropped.
* ``a < c``: stale, dropped; except ``a == 0`` from the image's own RX peer, which starts a new image reusing
  the id (a restarted transmitter).
* The image was decided (ACK/FAIL) at attempt ``d``: ``a > d`` re-answers the decision once per attempt (the
  transmitter did not get it); ``a == 0`` starts a new image that reuses the id.
* An undecided image belongs to the RX peer that delivered its first frame (``source``: its ZeroMQ routing id,
  which the ROUTER assigns and a client cannot choose): a frame of it from another peer is rejected
  (``foreign_stream``) and marks the image *contested*; a contested image is never acknowledged
  (docs/server.md, Security). Another RX stream therefore cannot reset or complete an image in progress.

Memory grows with what arrived, not with what a header declares: an attempt keeps only its received frames and
the combination only the frames some attempt delivered (``infercom.frame.Reassembler``, MRC per frame); whole
image arrays are built for inference only when at least ``min_received_fraction`` of the image's payload
symbols arrived (otherwise the job carries none and is answered without restoring).

:class:`Assembler` holds all images within a count, a memory bound (buffers plus the queued jobs' arrays,
``external_bytes``) and a pixel bound per transmitter, evicting the least recently active (an evicted image
that had not been decided produces a record with ``outcome = "evicted"``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infercom.frame import Reassembler
from infercom.protocol import ImageConfig, SoftFrame

__all__ = ["AttemptJob", "ImageAssembly", "Assembler", "Event", "Rejected", "MAX_ATTEMPT_JUMP"]

#: a new attempt may exceed the newest one received by at most this (one attempt lost whole in between)
MAX_ATTEMPT_JUMP = 2


class Rejected(Exception):
    """A frame the assembly refuses; ``reason`` is counted by the server like a protocol reject."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class AttemptJob:
    """A complete attempt to run through LLR -> pixels -> restoration -> QoE -> policy."""

    key: tuple[int, int]
    attempt: int
    generation: int                 # increments when the image restarts (refine / id reuse)
    config: ImageConfig
    y: np.ndarray | None            # complex64 (n_symbols,), Chase-combined over the generation's attempts;
    noise_var: np.ndarray | None    # float32 (n_symbols,), inf where no attempt delivered the symbol; both None
                                    # when less than min_received_fraction arrived (answered without restoring)
    frame_snr_db: np.ndarray        # float64 (n_frames,), combined Es/N0 per frame, -inf if never received
    attempts_combined: int
    missing_frames: list[int]       # frames this attempt expected but did not get
    never_received: list[int]       # frames no attempt of this generation delivered
    first_frame_at: float
    completed_at: float
    timed_out: bool
    received_fraction: float = 1.0  # payload symbols delivered by some attempt of this generation / n_symbols
    contested: int = 0              # frames of this image rejected from other streams (never ACKed if > 0)
    # NR transport blocks: [(attempt, y, noise_var), ...] per attempt (y and noise_var above stay None)
    nr_attempts: list | None = None
    queued_at: float = 0.0

    @property
    def nbytes(self) -> int:
        """Bytes of the soft-symbol arrays this job holds."""
        arrays = [(y, nv) for _, y, nv in self.nr_attempts] if self.nr_attempts else [(self.y, self.noise_var)]
        return sum(int(y.nbytes + nv.nbytes) for y, nv in arrays if y is not None)


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
    early: bool = False               # decided before restoring (PolicyConfig.early_nack)
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
            "decision": self.decision, "reason": self.reason, "mode": self.mode, "early": self.early,
            "request": self.request,
            "scores": self.scores, "latency_ms": self.latency_ms,
        }


class ImageAssembly:
    """Assembly and Chase-combining state of one image (see the module docstring for the rules)."""

    def __init__(self, msg: SoftFrame, now: float, generation: int = 0, source: bytes | None = None):
        self.key = msg.key
        self.created_at = now
        self.last_activity = now
        self.source = source                       # RX peer (ZeroMQ routing id) owning it while undecided
        self.contested = 0                         # frames rejected from other streams
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
        self.combination: Reassembler | None = Reassembler()   # received frames, MRC over attempts
        # NR transport blocks are combined in the LDPC soft buffer, not by symbol MRC (incremental redundancy
        # sends other bits in each attempt): their attempts are kept apart, attempt -> received frames
        self.nr_attempts: dict[int, Reassembler] | None = {} if config.system == "nr" else None
        self.attempts_combined = 0
        self.frame_lin = np.zeros(self.n_frames)     # sum over attempts of linear Es/N0 per frame
        self.current: _AttemptInfo | None = None
        self._frames: dict[int, tuple[Any, np.ndarray, Any]] | None = None   # current attempt: idx -> h, y, nv
        self.next_expected = None

    @property
    def pixels(self) -> int:
        return int(self.config.height) * int(self.config.width)

    @property
    def nbytes(self) -> int:
        """Soft-symbol memory held (the combination + the attempt being assembled), bytes: 12 per symbol held
        (complex64 y + float32 noise variance), whatever size the header declares."""
        if self.combination is None:
            return 0
        if self.nr_attempts is not None:
            held = sum(self.config.frame_payload_len(i) for r in self.nr_attempts.values() for i in r.received())
        else:
            held = sum(self.config.frame_payload_len(i) for i in self.frame_lin.nonzero()[0])
        held += sum(y.size for _, y, _ in (self._frames or {}).values())
        return 12 * int(held)

    def close(self, decision: str, attempt: int) -> None:
        """The image is decided: free its soft symbols, keep a tombstone to re-answer late attempts."""
        self.decision, self.decided_attempt = decision, attempt
        self.combination = None
        self.nr_attempts = None
        self._frames = None
        for a in self.attempts:
            if a.decision is None and a.reason is None:      # overtaken by the image's decision
                a.superseded = True
                a.reason = f"no decision: the image was decided ({decision}) at attempt {attempt}"

    @property
    def newest_attempt(self) -> int:
        return self.attempts[-1].attempt if self.attempts else -1

    @property
    def assembling(self) -> bool:
        """An attempt is being assembled (frames still welcome)."""
        return self._frames is not None

    def _start_attempt(self, msg: SoftFrame, now: float) -> None:
        self.current = _AttemptInfo(msg.attempt, self.generation, msg.config.bh, msg.config.bw,
                                    self.next_expected, now, now)
        self.next_expected = None
        self.attempts.append(self.current)
        self._frames = {}

    def _add_frame(self, msg: SoftFrame, now: float, stats) -> None:
        a = self.current
        if msg.frame_idx in a.frames:
            stats.inc("duplicate_frames")
            return
        n = self.config.frame_payload_len(msg.frame_idx)
        nv = msg.noise_var if np.ndim(msg.noise_var) == 0 else msg.noise_var[:n]
        self._frames[msg.frame_idx] = (msg.frame_header(), msg.y[:n], nv)
        a.frames[msg.frame_idx] = msg.snr_db
        a.last_at = now
        stats.inc("frames_accepted")

    def _fold(self, now: float, superseded: bool) -> None:
        """Add the current attempt's frames to the combination (MRC per frame) and close the attempt."""
        a = self.current
        target = self.combination
        if self.nr_attempts is not None:
            target = self.nr_attempts.setdefault(a.attempt, Reassembler())
        for h, y, nv in self._frames.values():
            target.add(h, y, nv)
        self.attempts_combined += 1
        for f, snr in a.frames.items():
            self.frame_lin[f] += 10.0 ** (snr / 10.0)
        a.completed_at = now
        a.superseded = superseded
        if superseded:
            a.reason = "no decision: a newer attempt arrived before this one completed"
        self._frames = None

    def is_complete(self, now: float, timeout_s: float) -> tuple[bool, bool]:
        """(complete, by timeout) for the attempt being assembled."""
        a = self.current
        if a is None or self._frames is None:
            return False, False
        got = set(a.frames)
        if len(got) == self.n_frames:
            return True, False
        if a.expected is not None and got == set(a.expected):
            return True, False
        if now - a.last_at >= timeout_s:
            return True, True
        return False, False

    def make_job(self, now: float, timed_out: bool, min_received_fraction: float = 0.0) -> AttemptJob:
        """Fold the current attempt and hand out the combination. Whole-image arrays are built only when at
        least ``min_received_fraction`` of the payload symbols arrived in some attempt; otherwise the job
        carries none (``y = noise_var = None``) and is answered without restoring."""
        a = self.current
        self._fold(now, superseded=False)
        a.timed_out = timed_out
        self.in_flight += 1
        received = [int(i) for i in np.flatnonzero(self.frame_lin > 0)]
        frac = sum(self.config.frame_payload_len(i) for i in received) / max(1, self.n_symbols)
        y = nv = None
        per_attempt = None
        if frac >= min_received_fraction:
            if self.nr_attempts is not None:
                per_attempt = [(att, *r.payload()) for att, r in sorted(self.nr_attempts.items())]
            else:
                y, nv = self.combination.payload()
        with np.errstate(divide="ignore"):
            frame_snr_db = np.where(self.frame_lin > 0, 10.0 * np.log10(np.maximum(self.frame_lin, 1e-300)),
                                    -np.inf)
        exp = a.expected if a.expected is not None else range(self.n_frames)
        return AttemptJob(key=self.key, attempt=a.attempt, generation=self.generation, config=self.config,
                          y=y, noise_var=nv, frame_snr_db=frame_snr_db,
                          attempts_combined=self.attempts_combined,
                          missing_frames=sorted(set(exp) - set(a.frames)),
                          never_received=[int(i) for i in np.flatnonzero(self.frame_lin == 0)],
                          first_frame_at=a.first_at, completed_at=now, timed_out=timed_out,
                          received_fraction=float(frac), contested=self.contested, nr_attempts=per_attempt)

    def record(self, outcome: str | None = None) -> dict[str, Any]:
        return {
            "tx_id": self.key[0], "image_id": self.key[1], "outcome": outcome or self.decision,
            "decided_attempt": self.decided_attempt, "n_attempts": len(self.attempts),
            "height": self.config.height, "width": self.config.width, "channels": self.config.channels,
            "n_frames": self.n_frames, "reanswered": sorted(self.reanswered), "contested_frames": self.contested,
            "attempts": [a.to_json(self.n_frames) for a in self.attempts],
        }

    def attempt_info(self, attempt: int, generation: int) -> _AttemptInfo | None:
        for a in reversed(self.attempts):
            if a.attempt == attempt and a.generation == generation:
                return a
        return None


class Assembler:
    """All images being assembled, bounded in count (``max_images``), memory (``max_bytes``: the images'
    soft symbols plus ``external_bytes()``, the arrays of the jobs waiting for or in inference) and pixels per
    transmitter (``max_tx_pixels``: height x width summed over a transmitter's undecided images)."""

    def __init__(self, stats, timeout_s: float = 1.0, max_images: int = 256, max_bytes: int = 1 << 30,
                 ttl_s: float = 120.0, max_tx_pixels: int = 1 << 24, min_received_fraction: float = 0.0,
                 external_bytes=None):
        self.stats = stats
        self.timeout_s = timeout_s
        self.max_images = max_images
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.max_tx_pixels = max_tx_pixels
        self.min_received_fraction = min_received_fraction
        self.external_bytes = external_bytes or (lambda: 0)
        self.images: OrderedDict[tuple[int, int], ImageAssembly] = OrderedDict()

    def __len__(self) -> int:
        return len(self.images)

    @property
    def nbytes(self) -> int:
        return sum(im.nbytes for im in self.images.values())

    def tx_pixels(self, tx_id: int, exclude: tuple[int, int] | None = None) -> int:
        """Pixels (height x width) of the undecided images of ``tx_id`` held, except ``exclude``."""
        return sum(im.pixels for k, im in self.images.items()
                   if k[0] == tx_id and k != exclude and im.decision is None)

    def add(self, msg: SoftFrame, now: float | None = None, source: bytes | None = None) -> list[Event]:
        """Accept one validated soft frame from RX stream ``source``; returns events (re-answers, records of
        replaced images). Raises :class:`Rejected` for a frame the rules refuse (nothing is changed then,
        except that a frame from a foreign stream marks its image contested)."""
        now = time.monotonic() if now is None else now
        events: list[Event] = []
        im = self.images.get(msg.key)
        if im is not None and im.decision is None and source is not None and im.source not in (None, source):
            im.contested += 1
            raise Rejected("foreign_stream", f"image (tx {msg.key[0]}, image {msg.key[1]}) is being received "
                                             f"from another RX stream; frame from peer {source.hex()} refused")
        if im is not None and im.decision is not None and msg.attempt > im.decided_attempt:
            if msg.attempt not in im.reanswered:
                im.reanswered.add(msg.attempt)
                events.append(Event("reanswer", msg.key, msg.attempt, im.decision))
            self.stats.inc("frames_after_decision")
            im.last_activity = now
            return events
        fresh = im is None or im.decision is not None
        cur = -1 if fresh else im.newest_attempt
        if msg.attempt > cur + MAX_ATTEMPT_JUMP:
            raise Rejected("attempt_jump", f"attempt {msg.attempt} of (tx {msg.key[0]}, image {msg.key[1]}) after "
                                           f"attempt {cur}: at most {MAX_ATTEMPT_JUMP} ahead is accepted")
        if fresh or msg.config != im.config:
            have = self.tx_pixels(msg.key[0], exclude=msg.key)
            want = int(msg.config.height) * int(msg.config.width)
            if have + want > self.max_tx_pixels:
                raise Rejected("tx_pixel_cap", f"tx {msg.key[0]} would hold {have + want} pixels of undecided "
                                               f"images, more than max_tx_pixels={self.max_tx_pixels}")
        if fresh:
            generation = 0 if im is None else im.generation + 1
            im = self._new(msg, now, events, generation=generation, source=source)
        im.last_activity = now
        self.images.move_to_end(msg.key)
        if msg.attempt > cur:
            if im.current is not None and im.assembling:
                im._fold(now, superseded=True)
                self.stats.inc("attempts_superseded")
            if msg.config != im.config:
                im._restart(msg.config)
                self.stats.inc("image_restarts")
            im._start_attempt(msg, now)
            im._add_frame(msg, now, self.stats)
        elif msg.attempt == cur and msg.config == im.config:
            if not im.assembling:
                self.stats.inc("late_frames")
            else:
                im._add_frame(msg, now, self.stats)
        elif msg.attempt == 0:      # the same RX peer: a restarted transmitter reusing the id
            events.append(Event("record", msg.key, record=im.record(outcome="abandoned")))
            im = self._new(msg, now, events, generation=im.generation + 1, source=source)
            im._start_attempt(msg, now)
            im._add_frame(msg, now, self.stats)
        else:
            self.stats.inc("stale_frames")
        self._enforce_bounds(events, now)
        return events

    def _new(self, msg: SoftFrame, now: float, events: list[Event], generation: int = 0,
             source: bytes | None = None) -> ImageAssembly:
        im = ImageAssembly(msg, now, generation, source)
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
                jobs.append(im.make_job(now, by_timeout, self.min_received_fraction))
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
        while len(self.images) > self.max_images or \
                (len(self.images) > 1 and self.nbytes + self.external_bytes() > self.max_bytes):
            over_count = len(self.images) > self.max_images
            key = next((k for k, im in self.images.items() if im.decision is not None
                        and (over_count or im.nbytes > 0)), None)
            if key is None:
                key = next(iter(self.images))
            im = self.images.pop(key)
            if im.decision is None:
                events.append(Event("record", key, record=im.record(outcome="evicted")))
            self.stats.inc("images_evicted")
