# SPDX-License-Identifier: GPL-3.0-or-later
"""Streaming burst receiver :class:`BurstReceiver`: raw complex64 samples at ``sps`` samples per symbol in,
:class:`~infercom.sync.frames.ReceivedFrame` s out.

It chains :class:`~infercom.sync.matched_filter.MatchedFilter`, :class:`~infercom.sync.detector.BurstDetector`
and a windowing stage (:class:`~infercom.sync.window.BurstWindower`; by default the
:class:`~infercom.sync.window.BurstDemodulator`, which demodulates each window) over a stream, with bounded
memory: bursts may straddle ``feed()`` calls, bursts cut off by the end of the input are counted
(``counters['truncated']``) by :meth:`BurstReceiver.flush`.  Sample indices are absolute in the input stream.

The GNU Radio block ``burst_sync`` is this same receiver with a windowing stage that publishes each window
(detection and header decoding in that block, the payload in ``frame_demod``), so both paths cut, skip and
decode bursts identically.
"""

from __future__ import annotations

import math

import numpy as np

from ..frame import FrameFormat
from .detector import BurstDetector
from .frames import ReceivedFrame
from .interpolator import _INTERP_HALF
from .matched_filter import MatchedFilter
from .window import BurstDemodulator


class BurstReceiver:
    """Streaming burst receiver: raw samples in (``feed``), :class:`ReceivedFrame` s out.

    ``prefiltered=False`` (default): the input is the raw received stream at ``sps``; the RRC matched filter is
    applied here.  Memory is bounded (two fixed buffers of about two maximum bursts); bursts may straddle
    ``feed`` calls; call :meth:`flush` at the end of the input.

    ``windower``: a factory ``() -> BurstWindower`` for the windowing stage (default: a
    :class:`BurstDemodulator`, so ``feed`` returns :class:`ReceivedFrame` s); ``feed`` / ``flush`` return
    what its sink returns per window.  The stage is created again by :meth:`flush` (a new stream)."""

    def __init__(self, fmt: FrameFormat | None = None, sps: int = 2, prefiltered: bool = False,
                 t1: float | None = None, t2: float | None = None, windower=None):
        self.fmt = fmt or FrameFormat(sps=sps)
        if self.fmt.sps != sps:
            raise ValueError(f"fmt.sps {self.fmt.sps} != sps {sps}")
        self.mf = None if prefiltered else MatchedFilter(sps, self.fmt.beta, self.fmt.span)
        ntaps = self.fmt.span * sps + 1
        self._make_windower = windower or (lambda: BurstDemodulator(self.fmt, sample_offset=ntaps - 1))
        self.detector = BurstDetector(sps, t1, t2)
        self.demod = self._make_windower()

    @property
    def counters(self) -> dict:
        return {**self.detector.counters, **self.demod.counters}

    def feed(self, samples) -> list[ReceivedFrame]:
        """Process complex samples (any length); returns the frames (the windowing stage's outputs) completed."""
        x = np.asarray(samples)
        if x.ndim != 1:
            raise ValueError(f"samples must be 1-D, got shape {x.shape}")
        x = x.astype(np.complex64, copy=False)
        # one BLAS reduction first (NaN/inf propagate into sum |x|^2; 12x cheaper than isfinite + all); the exact
        # element-wise test only when that is not finite (non-finite input, or |x| > 1e19 overflowing the square)
        xf = x.view(np.float32) if x.flags.c_contiguous else np.ascontiguousarray(x).view(np.float32)
        if not math.isfinite(float(np.dot(xf, xf))) and not np.all(np.isfinite(x)):
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
            self.demod.counters["nonfinite_chunks"] = self.demod.counters.get("nonfinite_chunks", 0) + 1
        out: list[ReceivedFrame] = []
        step = min(self.detector.max_push, self.demod.max_push)
        for i in range(0, x.size, step):
            xx = x[i:i + step]
            if self.mf is not None:
                zr, zi = self.mf.process(xx)
                out.extend(self._run(zr, zi))
            else:  # views: both stages copy them into their own buffers (the windower the complex samples)
                out.extend(self._run(xx.real, xx.imag, z=xx))
        return out

    def _run(self, zr, zi, final: bool = False, z=None) -> list[ReceivedFrame]:
        """Push a chunk to both stages, then alternate: the detector stops at each candidate, the demodulator
        decodes what it can, and the detector skips the rest of a burst whose header decoded.  While a
        candidate waits for its header samples the detector only buffers (it would otherwise scan the payload
        of that very burst), unless its backlog grows past half its buffer."""
        out = self.demod.feed(zr, zi) if z is None else self.demod.feed(z)
        self.detector.skip_to(int(self.demod.busy_until))
        e = np.zeros(0, np.float32)
        det = self.detector
        hold = self.demod.waiting and det.backlog < det.max_push * 2
        cands = det.feed(zr, zi, final=final, max_candidates=0 if hold else 1)
        while True:
            out.extend(self.demod.feed(e, e, cands))
            det.skip_to(int(self.demod.busy_until))
            if not cands or (self.demod.waiting and det.backlog < det.max_push * 2):
                return out
            cands = det.feed(e, e, final=final, max_candidates=1)

    def flush(self) -> list[ReceivedFrame]:
        """End of input: the signal is over, so the stream is extended with silence (zeros) just long enough to
        flush the matched filter and the interpolator, and the detector scans to the end; bursts still missing
        samples are then counted as truncated (``counters['truncated']``).  The receiver is then reset: a new
        input stream starts at sample index 0 (counters keep accumulating)."""
        tail = np.zeros(self.fmt.span * self.fmt.sps + 4 * _INTERP_HALF, np.complex64)
        if self.mf is not None:
            zr, zi = self.mf.process(tail)
        else:
            zr, zi = tail.real.copy(), tail.imag.copy()
        out = self._run(zr, zi)
        pad = np.zeros(self.detector.la + self.detector.min_chunk, np.float32)
        # detector look-ahead only (zeros are not signal): candidates it finds are not given new samples
        self.detector._append(pad, pad)
        e = np.zeros(0, np.float32)
        while True:
            cands = self.detector.feed(e, e, final=True, max_candidates=1)
            out.extend(self.demod.feed(e, e, cands))
            self.detector.skip_to(int(self.demod.busy_until))
            if not cands:
                break
        out.extend(self.demod.flush())
        # reset the stream state (new input starts at sample 0 again); counters accumulate
        dc, mc = self.detector.counters, self.demod.counters
        self.mf = None if self.mf is None else MatchedFilter(self.fmt.sps, self.fmt.beta, self.fmt.span)
        self.detector = BurstDetector(self.fmt.sps, self.detector.t1, self.detector.t2)
        self.demod = self._make_windower()
        self.detector.counters, self.demod.counters = dc, mc
        return out
