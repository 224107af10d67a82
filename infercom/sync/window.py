# SPDX-License-Identifier: GPL-3.0-or-later
"""Burst windowing: the bounded history of the matched-filtered stream, header decoding at each detector
:class:`~infercom.sync.frames.Candidate`, and the window of samples each decoded burst occupies
(:class:`BurstWindower`, :class:`~infercom.sync.frames.BurstWindow`).

This is the one place that decides which samples a burst needs; :class:`~infercom.sync.demod.BurstDemodulator`
(and so :class:`~infercom.sync.receiver.BurstReceiver`) and the GNU Radio blocks ``burst_sync`` /
``frame_demod`` all use it, so a burst is cut, decoded and truncated identically everywhere.  The margins follow
from the interpolator's half-length :data:`~infercom.sync.interpolator._INTERP_HALF` (H):

* a window starts :data:`PRE_SAMPLES` = 2H samples before ``floor(timing)`` of preamble symbol 0 (the
  interpolator reads H - 1 samples before a symbol; the fine-timing search moves the timing by up to 0.35
  samples, so 2H leaves at least H + 1);
* header decoding needs :func:`header_window_len` samples (``floor(timing) + header_len_samples + 4H``;
  :func:`~infercom.sync.frames.header_len_samples` already holds the 2H the interpolator reads around the
  header region, the other 2H cover the fine-timing shift and leave room);
* the whole burst needs :func:`burst_window_len` samples (``ceil(timing) + frame_symbols * sps + 2H``: the
  interpolator reads H + 1 samples past the last symbol).

Timings are (fractional) sample indices of the matched-filtered stream, window-relative unless a name says
absolute.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Callable

import numpy as np

from ..frame import FrameFormat
from ..limits import MAX_FRAME_LEN_LOG2, MIN_FRAME_LEN_LOG2
from .demod import demod_header, demod_payload
from .frames import (
    BurstWindow,
    Candidate,
    HeaderResult,
    ReceivedFrame,
    header_len_samples,
)
from .interpolator import _INTERP_HALF
from .templates import NP

#: window samples before ``floor(timing)`` of preamble symbol 0
PRE_SAMPLES = 2 * _INTERP_HALF


def header_window_len(timing: float, fmt: FrameFormat) -> int:
    """Samples a window needs for :func:`~infercom.sync.demod.demod_header` when preamble symbol 0 is at
    window-relative ``timing``."""
    return math.floor(timing) + header_len_samples(fmt) + 4 * _INTERP_HALF


def burst_window_len(timing: float, n_frame_symbols: int, sps: int) -> int:
    """Samples a window needs for :func:`~infercom.sync.demod.demod_payload` of a frame of ``n_frame_symbols``
    symbols whose (refined) symbol-0 timing is window-relative ``timing``."""
    return math.ceil(timing) + n_frame_symbols * sps + 2 * _INTERP_HALF


def busy_until(timing_abs: float, n_frame_symbols: int, sps: int) -> float:
    """Absolute index up to which the stream belongs to a decoded burst (its end minus half a preamble: bursts do
    not overlap, so no later preamble can start before it)."""
    return timing_abs + (n_frame_symbols - NP // 2) * sps


class BurstWindower:
    """Bounded history of the matched-filtered stream; decodes the header at each candidate (in stream order,
    skipping candidates inside a burst already decoded) and, once a decoded burst's samples have all arrived,
    hands its window to a ``sink``.

    ``feed(zr, zi, candidates)``: append float32 real / imaginary parts (any length; views of a complex
    array are fine) or complex64 samples (``zi=None``), queue the candidates (absolute timing), process;
    ``self.sink(window)`` is called for every complete :class:`BurstWindow` while its ``z`` view into the
    history is valid (only during the call); the sink's results are returned as a list.  ``max_queue`` bounds
    the candidates waiting for samples (more are dropped and counted as ``pending_overflow``).
    ``emit_failures=True`` also hands over candidates whose header failed (``window.header.header is None``,
    the header window).  Frames longer than ``max_frame_len_log2`` are counted as truncated (and ``too_long``)
    and skipped (a policy: the history always holds two bursts of the longest frame, 2**16 payload symbols).
    ``flush()`` at the end of the input counts what cannot complete as truncated.
    """

    def __init__(self, fmt: FrameFormat | None = None, max_frame_len_log2: int = 16, emit_failures: bool = False,
                 sink: Callable[[BurstWindow], object] | None = None, max_queue: int | None = None):
        self.fmt = fmt or FrameFormat()
        self.sps = self.fmt.sps
        if not MIN_FRAME_LEN_LOG2 <= int(max_frame_len_log2) <= MAX_FRAME_LEN_LOG2:
            raise ValueError(f"max_frame_len_log2 must be {MIN_FRAME_LEN_LOG2}..{MAX_FRAME_LEN_LOG2}, "
                             f"got {max_frame_len_log2}")
        self.max_frame_len_log2 = int(max_frame_len_log2)
        self.emit_failures = bool(emit_failures)
        self.sink = sink
        self.max_queue = max_queue  # candidates waiting for their samples at most (None: unbounded)
        # the history is sized for the largest frame the header can announce (2**16 payload symbols) whatever
        # max_frame_len_log2 says: it also has to cover how far the detector runs behind the stream (its
        # look-ahead, minimum chunk and the backlog it holds while a header waits), up to ~110 k samples
        big = FrameFormat(frame_len_log2=16, sps=self.sps, beta=self.fmt.beta, span=self.fmt.span)
        self.max_burst = big.burst_len_samples(1 << 16) + 4 * _INTERP_HALF
        self._cap = 2 * self.max_burst + (1 << 18)
        self.max_push = self._cap // 4
        # complex64 history: GNU Radio hands complex samples (one memcpy in), a window goes out as one slice, and
        # the kernels read its real / imaginary parts as strided views (no de-interleaving copies)
        self._z = np.zeros(self._cap, np.complex64)
        self._n = 0
        self._base = 0
        self._queue: list[Candidate] = []
        self._pending: tuple[Candidate, HeaderResult] | None = None   # decoded header (absolute timing)
        self._busy_until = -1
        self._hdr_len = header_len_samples(self.fmt)
        self.counters = {"frames": 0, "header_fail": 0, "truncated": 0, "overlap_skipped": 0,
                         "dropped_candidates": 0}

    # history ----------------------------------------------------------------------------------------------
    def _append(self, zr, zi=None):
        """Append float32 real / imaginary parts, or complex64 samples ``zr`` with ``zi=None``."""
        n = zr.size
        if self._n + n > self._cap:
            keep = self._base + self._n - self.max_burst  # never keep less than one burst of history
            if self._pending is not None:
                keep = min(keep, int(self._pending[0].timing) - 4 * _INTERP_HALF)
            if self._queue:
                keep = min(keep, int(self._queue[0].timing) - 4 * _INTERP_HALF)
            keep = max(keep, self._base)
            k = keep - self._base
            if self._n - k + n > self._cap:  # a candidate older than the history bound: drop it
                keep = self._base + self._n + n - self._cap
                k = keep - self._base
            self._z[: self._n - k] = self._z[k: self._n]
            self._n -= k
            self._base = keep
        if zi is None:
            self._z[self._n: self._n + n] = zr
        else:
            self._z.real[self._n: self._n + n] = zr
            self._z.imag[self._n: self._n + n] = zi
        self._n += n

    @property
    def _zr(self) -> np.ndarray:
        """Real part of the history (a view)."""
        return self._z.real

    @property
    def _zi(self) -> np.ndarray:
        return self._z.imag

    def feed(self, zr, zi=None, candidates=()) -> list:
        """Append float32 ``zr``, ``zi`` (or complex64 samples ``zr`` with ``zi=None``), queue ``candidates``,
        process; returns the sink's results."""
        if zi is None:
            zr = np.asarray(zr, np.complex64)
        else:
            zr = np.asarray(zr, np.float32)
            zi = np.asarray(zi, np.float32)
        for c in candidates:
            if self.max_queue is not None and len(self._queue) >= self.max_queue:
                self.counters["pending_overflow"] = self.counters.get("pending_overflow", 0) + 1
                continue
            self._queue.append(c)
        out: list = []
        step = self.max_push
        for i in range(0, max(zr.size, 1), step):
            self._append(zr[i:i + step], None if zi is None else zi[i:i + step])
            self._process(self.sink, out)
        return out

    # windows ----------------------------------------------------------------------------------------------
    def _process(self, sink, out: list) -> None:
        end = self._base + self._n
        fmt, sps = self.fmt, self.sps
        while True:
            if self._pending is None:
                if not self._queue:
                    return
                cand = self._queue[0]
                if cand.timing < self._busy_until:
                    self._queue.pop(0)
                    self.counters["overlap_skipped"] += 1
                    continue
                lo = math.floor(cand.timing) - PRE_SAMPLES
                if lo < self._base:
                    self._queue.pop(0)
                    self.counters["dropped_candidates"] += 1
                    continue
                rel = cand.timing - lo
                n_hdr = header_window_len(rel, fmt)
                if end < lo + n_hdr:
                    return
                self._queue.pop(0)
                a = lo - self._base
                w = self._z[a:a + n_hdr]
                hr = demod_header(w.real, w.imag, rel, cand.cfo, fmt)
                if hr.header is None:
                    self.counters["header_fail"] += 1
                    if self.emit_failures and sink is not None:
                        out.append(sink(BurstWindow(cand, hr, lo, w, 0)))
                    continue
                hr.timing += lo  # absolute
                n_sym = fmt.frame_symbols(hr.header.payload_len())
                self._busy_until = busy_until(hr.timing, n_sym, sps)
                if hr.header.frame_len_log2 > self.max_frame_len_log2:
                    self.counters["truncated"] += 1   # longer than the history is sized for
                    self.counters["too_long"] = self.counters.get("too_long", 0) + 1
                    continue
                self._pending = (cand, hr)
            cand, hr = self._pending
            n_sym = fmt.frame_symbols(hr.header.payload_len())
            lo = math.floor(hr.timing) - PRE_SAMPLES
            rel = hr.timing - lo
            n_win = burst_window_len(rel, n_sym, sps)
            if end < lo + n_win:
                return
            a = lo - self._base
            hr_rel = HeaderResult(hr.header, hr.cfo_sym, hr.phase0, hr.h_abs, hr.noise_var, hr.snr_db, rel,
                                  hr.extra)
            self._pending = None
            self.counters["frames"] += 1
            if sink is not None:
                out.append(sink(BurstWindow(cand, hr_rel, lo, self._z[a:a + n_win], n_sym)))

    @property
    def waiting(self) -> bool:
        """True while a candidate or a decoded header waits for more samples."""
        return bool(self._queue) or self._pending is not None

    @property
    def busy_until(self) -> float:
        """Absolute sample index up to which the stream belongs to a burst whose header has decoded (a
        detector need not look for preambles before it)."""
        return self._busy_until

    def flush(self) -> list:
        """End of input: count the pending burst and queued candidates that lack samples as truncated."""
        out: list = []
        self._process(self.sink, out)
        n = (1 if self._pending is not None else 0) + len(self._queue)
        self.counters["truncated"] += n
        self._pending = None
        self._queue.clear()
        return out


def demod_window(w: BurstWindow, fmt: FrameFormat, sample_offset: int = 0) -> ReceivedFrame:
    """Payload of a complete decoded :class:`BurstWindow`: pilot tracking and equalisation
    (:func:`~infercom.sync.demod.demod_payload`) -> :class:`ReceivedFrame` (absolute timing,
    ``sample_index = round(timing) - sample_offset``)."""
    hr = w.header
    y, nv = demod_payload(w.zr, w.zi, hr, fmt)
    timing = hr.timing + w.start
    return ReceivedFrame(header=hr.header, y=y, noise_var=nv, snr_db=hr.snr_db, cfo=hr.cfo_sym / fmt.sps,
                         h=cmath.rect(hr.h_abs, hr.phase0), sample_index=int(round(timing)) - sample_offset,
                         timing=timing, metric=w.candidate.m2)


class BurstDemodulator(BurstWindower):
    """Streaming demodulation of detected bursts: a :class:`BurstWindower` whose sink demodulates each window
    (:func:`demod_window`).  ``feed(zr, zi, candidates)`` returns the :class:`ReceivedFrame` s completed;
    ``flush()`` at the end of the input counts bursts that cannot complete as truncated."""

    def __init__(self, fmt: FrameFormat | None = None, sample_offset: int = 0):
        super().__init__(fmt, 16, False, self._demod)
        self.sample_offset = int(sample_offset)  # matched-filter delay (reported sample_index = timing - this)

    def _demod(self, w: BurstWindow) -> ReceivedFrame:
        return demod_window(w, self.fmt, self.sample_offset)
