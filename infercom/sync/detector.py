# SPDX-License-Identifier: GPL-3.0-or-later
"""Streaming two-stage preamble detector (:class:`BurstDetector`), its thresholds and the stage-1 metric.

Over the matched-filtered stream (float32 real / imaginary chunks, ``sps`` samples per symbol), yields
:class:`~infercom.sync.frames.Candidate` s with absolute timing (fractional sample index of preamble symbol 0 in
the matched-filtered stream), coarse CFO (cycles per sample) and metrics.

Stage 1 (every sample): segment correlations ``r[n] = sum_k z[n+k*sps] conj(u_k)`` with the 16-symbol preamble
segment ``u``, combined non-coherently over the 64 segments, each normalised by the energy ``q_s`` of its own 16
samples, ``M1 = (1/64) sum_s |r(n+s*16*sps)|^2 / q_s``: insensitive to CFO and to the signal level (also to
level changes inside the window), on noise the mean of 64 ratios 16 Beta(1, 15) (mean 1).  Stage 2 (only where
``M1 > T1``, around its peak): the differential metric ``D(n) = sum_s e_s c_s conj(c_{s-1})``, normalised by its
noise-only variance estimated from the local segment energies ``q_s`` (``M2 = |D|^2 / sum_s q_s q_{s-1}``,
~Exp(1) on noise, also across noise/silence edges); its peak gives the timing (parabolic interpolation), its
phase the coarse CFO.  The peak must dominate the ``W + G`` samples after it (the search is extended where
needed): at high SNR partial overlaps with a later preamble (cover sidelobes) also exceed the noise-normalised
threshold.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .detector_kernels import _stage1_kernel, _stage1_scan_kernel, _stage2_kernel
from .frames import Candidate
from .templates import _E, _U, NP, L, S


def stage1_metric(zr, zi) -> np.ndarray:
    """Stage-1 detector metric over a matched-filtered, *symbol-spaced* chunk (one sample phase of the
    stream): float32, one value per position whose 1024-symbol window lies in the chunk (numba)."""
    zr = np.ascontiguousarray(zr, np.float32)
    zi = np.ascontiguousarray(zi, np.float32)
    n = zr.size - NP
    m1 = np.zeros(max(n, 0), np.float32)
    if n > 0:
        _stage1_kernel(zr, zi, S, m1)
    return m1


@lru_cache(maxsize=1)
def _stage1_noise_tail() -> tuple[np.ndarray, float]:
    """P(M1 > t) on white noise on a grid of step ``dt``: M1 is the mean of 64 independent per-segment ratios
    |r|^2/q = 16 B, B ~ Beta(1, 15) (|<z, u>|^2 / (|z|^2 |u|^2) for white complex Gaussian z, |u|^2 = 16);
    the density of the sum by FFT convolution (grid 1/256 per segment ratio)."""
    d = 1.0 / 256
    x = np.arange(0.0, 16.0 * S + d, d)
    f = np.where(x < 16.0, (15.0 / 16.0) * np.clip(1.0 - x / 16.0, 0.0, None) ** 14, 0.0)
    f /= f.sum()
    g = np.fft.irfft(np.fft.rfft(f, 2 * x.size) ** S, 2 * x.size)[: x.size]
    g = np.maximum(g, 0.0)
    g /= g.sum()
    tail = np.cumsum(g[::-1])[::-1]
    return tail, d / S  # tail[i] = P(M1 >= i * dt)


def stage1_noise_tail(t: float) -> float:
    """P(M1 > t) per position and sample phase on white noise (see :func:`_stage1_noise_tail`)."""
    tail, dt = _stage1_noise_tail()
    i = int(np.clip(np.ceil(t / dt), 0, tail.size - 1))
    return float(tail[i])


def detector_thresholds(pfa1: float = 1e-6, pfa2: float = 1e-6) -> tuple[float, float]:
    """(T1, T2) for per-position false-alarm probabilities ``pfa1`` of stage 1 (M1 = mean of 64 per-segment
    ratios 16 Beta(1, 15) on noise: :func:`stage1_noise_tail`) and ``pfa2`` of stage 2 (M2 ~ Exp(1) on noise)."""
    tail, dt = _stage1_noise_tail()
    i = int(np.argmax(tail <= pfa1))
    return float(i * dt), float(-np.log(pfa2))


_T1_DEFAULT, _ = detector_thresholds(1e-5)  # ~1 trigger per 10^6 noise samples; stage 2 + header decide
_T2_DEFAULT = 30.0  # per stage-2 position Pfa ~ e^-30 = 1e-13; the header CRC + field checks are the last line


class BurstDetector:
    """Streaming two-stage preamble detector over a matched-filtered stream (see the module docstring).

    ``feed(zr, zi)`` takes float32 real/imag chunks of the matched-filtered stream and returns the
    :class:`Candidate` s confirmed so far (absolute timing).  It keeps ``2*W + margin`` samples of look-ahead
    history (W = 2048 samples at sps = 2) and runs stage 1 on at least ``min_chunk`` new samples at a time.
    """

    def __init__(self, sps: int = 2, t1: float | None = None, t2: float | None = None, min_chunk: int = 1 << 15):
        self.sps = int(sps)
        self.t1 = _T1_DEFAULT if t1 is None else float(t1)
        self.t2 = _T2_DEFAULT if t2 is None else float(t2)
        self.G = L * self.sps
        self.W = NP * self.sps
        self.search = 2 * self.G  # stage-2 margin around the window
        # look-ahead needed past a scan position: the stage-2 window (W + 2G after the crossing), its possible
        # extension by W + G (a peak must dominate the W samples after it, see _stage2) and the W samples the
        # metric reads past its last position
        self.la = 3 * self.W + self.search + 2 * self.G
        self.min_chunk = int(min_chunk)
        self.sub_block = 8192  # stage-1 positions per kernel call
        # ... but the first call after a jump of the scan (a candidate, skip_to past a decoded burst) takes fewer:
        # on a busy channel the next preamble is close (a gap away), and the rest of a long sub-block would be
        # computed for nothing
        self.sub_block_first = 2048
        self._sub = self.sub_block
        self._phases = (0, self.sps // 2)  # two phases half a symbol apart: timing loss <= 1 dB
        self._phases_arr = np.array(self._phases, np.int64)
        self._ur = _U.real.copy()
        self._ui = _U.imag.copy()
        cap = max(4 * self.min_chunk, 1 << 17) + 2 * self.la
        self._cap = cap
        self._zr = np.zeros(cap, np.float32)
        self._zi = np.zeros(cap, np.float32)
        self._n = 0          # valid samples in the buffer
        self._base = 0       # absolute index of buffer[0]
        self._scan = 0       # absolute index of the next position to scan
        self.samples_in = 0
        self.counters = {"stage1": 0, "stage2": 0, "stage2_extended": 0}

    # buffer ---------------------------------------------------------------------------------------------
    def _append(self, zr, zi):
        n = zr.size
        self.samples_in += n
        # samples before the oldest position a scan can read (skip_to inside a burst) are never needed: when the
        # whole buffer lies before it, drop the buffer and the chunk's leading part instead of copying them
        first_needed = self._scan - self.search - 2 * self.G
        end = self._base + self._n
        if first_needed >= end:
            d = min(first_needed - end, n)
            self._n = 0
            self._base = end + d
            zr, zi = zr[d:], zi[d:]
            n -= d
        if self._n + n > self._cap:
            keep_from = min(max(self._scan - self.search - 2 * self.G, self._base), self._base + self._n)
            k = keep_from - self._base
            self._zr[: self._n - k] = self._zr[k: self._n]
            self._zi[: self._n - k] = self._zi[k: self._n]
            self._n -= k
            self._base = keep_from
        assert self._n + n <= self._cap
        self._zr[self._n: self._n + n] = zr
        self._zi[self._n: self._n + n] = zi
        self._n += n

    @property
    def max_push(self) -> int:
        """Largest chunk :meth:`feed` takes in one piece (larger inputs are split)."""
        return self._cap // 4

    @property
    def backlog(self) -> int:
        """Buffered samples not yet scanned."""
        return self._base + self._n - self._scan

    @property
    def scan_position(self) -> int:
        """Absolute index of the next position stage 1 will examine."""
        return self._scan

    def skip_to(self, index: int) -> None:
        """Do not look for preambles before absolute sample ``index`` (e.g. inside a burst whose header has
        decoded; bursts do not overlap)."""
        if int(index) > self._scan:
            self._scan = int(index)
            self._sub = self.sub_block_first

    def feed(self, zr, zi, final: bool = False, max_candidates: int | None = None) -> list[Candidate]:
        """Append a matched-filtered chunk and scan it.  ``final``: the input ends here (scan to the end of
        what the look-ahead allows).  ``max_candidates``: stop scanning after that many candidates (only for
        chunks of at most :attr:`max_push` samples; call again with empty arrays to continue)."""
        zr = np.asarray(zr, np.float32)
        zi = np.asarray(zi, np.float32)
        out: list[Candidate] = []
        step = self._cap // 4
        if max_candidates is not None and zr.size > step:
            raise ValueError(f"max_candidates needs chunks of at most {step} samples")
        for i in range(0, max(zr.size, 1), step):
            self._append(zr[i:i + step], zi[i:i + step])
            out.extend(self._scan_buffer(final and i + step >= zr.size, max_candidates))
        return out

    def _scan_buffer(self, final: bool, max_candidates: int | None = None) -> list[Candidate]:
        out = []
        while True:
            if max_candidates is not None and len(out) >= max_candidates:
                return out
            end = self._base + self._n
            limit = end - self.la  # last scannable position (exclusive)
            if limit - self._scan < (1 if final else self.min_chunk):
                return out
            s0 = self._scan - self._base
            n_dec = (limit - self._scan) // self.sps  # symbol-spaced positions to scan
            if n_dec <= 0:
                return out
            # in sub-blocks, so that scanning stops soon after a preamble (the rest of its burst is skipped)
            n_sub = min(n_dec, self._sub)
            self._sub = self.sub_block
            m1 = np.empty(n_sub + NP, np.float32)
            c = _stage1_scan_kernel(self._zr, self._zi, s0, self.sps, self._phases_arr, n_sub, self.t1, m1)
            if c < 0:
                self._scan += n_sub * self.sps
                continue
            self.counters["stage1"] += 1
            # stage 2 over the whole window the crossing allows: the true apex lies within W samples after the
            # first crossing of its M1 ramp (the flat, noisy top of M1 does not locate it well at low SNR)
            cand = self._stage2(self._scan + c * self.sps - self.G, self._scan + (c + NP) * self.sps + self.G,
                                float(m1[c: c + NP].max()))
            if cand is None:
                self._scan = self._scan + (c + NP) * self.sps  # past the window (a later preamble re-triggers)
            else:
                self.counters["stage2"] += 1
                out.append(cand)
                self._scan = math.floor(cand.timing) + self.W + self.G
            self._sub = self.sub_block_first

    def _stage2_metric(self, a: int, b: int):
        """(D real, D imag, M2) over buffer positions [a, b) (float32, float32, float64)."""
        dr = np.empty(b - a, np.float32)
        di = np.empty(b - a, np.float32)
        den = np.empty(b - a, np.float32)
        _stage2_kernel(self._zr, self._zi, self._ur, self._ui, _E, self.sps, a, b, dr, di, den)
        mag2 = dr.astype(np.float64) ** 2 + di.astype(np.float64) ** 2
        return dr, di, mag2, mag2 / np.maximum(den.astype(np.float64), 1e-30)

    def _later_preamble(self, k: int, b: int) -> bool:
        """Could a better-aligned preamble peak lie in buffer positions [b, k + W + G)?  Cheap test on the
        stage-1 metric: a sidelobe at ``k`` is a partial overlap with a preamble starting later, whose
        (CFO-insensitive) M1 grows with the overlap, so M1 somewhere in [b, k + W + G) exceeds M1 around ``k``.
        After the true peak M1 only decreases (up to noise on its flat top at low SNR, where the extension then
        merely costs time)."""
        ref = np.empty(1, np.float32)  # M1 at k itself (its neighbours may be the better-aligned peak)
        _stage1_scan_kernel(self._zr, self._zi, k, self.sps, self._phases_arr[:1], 0, np.float32(0.0), ref)
        n_out = (k + self.W + self.G - b + self.sps - 1) // self.sps
        if n_out <= 0:
            return False
        m1 = np.empty(n_out, np.float32)
        return _stage1_scan_kernel(self._zr, self._zi, b, self.sps, self._phases_arr, n_out,
                                   np.float32(ref.max()), m1) >= 0

    def _stage2(self, a_abs: int, b_abs: int, m1: float) -> Candidate | None:
        """Stage 2 over absolute positions [a_abs, b_abs), extended to the right until the peak dominates the
        ``W + G`` positions after it (where the peak is at the end of the searched span, or stage 1 indicates a
        better-aligned preamble after it: :meth:`_later_preamble`).

        The extension is what makes detection level-independent: ``M2`` is normalised by the *noise-only*
        variance, so at high SNR the partial overlaps of the window with a preamble that starts up to ``W``
        samples later (differential-cover sidelobes, |D| <= 9/63 of the peak, but ``M2`` far above ``T2``) are
        valid crossings too.  A stage-1 trigger just before a preamble (e.g. at the end of the previous burst,
        where the window energy comes from a few segments) would otherwise yield a sidelobe as the candidate,
        and the scan would then skip the true preamble.  The true peak is always within ``W - G`` samples after
        such a sidelobe and larger than it, so the argmax over [k, k + W + G] is the preamble."""
        a = max(a_abs, self._base) - self._base
        b = b_abs - self._base
        b_max = self._n - self.W  # the metric reads W samples past its last position
        dr, di, mag2, m2 = self._stage2_metric(a, b)
        k = int(np.argmax(m2))
        if m2[k] < self.t2:
            return None
        while a + k + self.W + self.G > b and b < b_max and (a + k >= b - 2 or self._later_preamble(a + k, b)):
            self.counters["stage2_extended"] += 1
            b_new = min(a + k + self.W + self.G, b_max)
            er, ei, emag2, em2 = self._stage2_metric(b, b_new)
            dr, di = np.concatenate([dr, er]), np.concatenate([di, ei])
            mag2, m2 = np.concatenate([mag2, emag2]), np.concatenate([m2, em2])
            b = b_new
            k = int(np.argmax(m2))
        # fractional timing: parabola through |D| at k-1, k, k+1
        frac = 0.0
        if 0 < k < mag2.size - 1:
            y0, y1, y2 = np.sqrt(mag2[k - 1: k + 2])
            den = y0 - 2 * y1 + y2
            if den < 0:
                frac = min(max(0.5 * (y0 - y2) / den, -0.5), 0.5)
        cfo = float(np.arctan2(di[k], dr[k]) / (2 * np.pi * self.G))
        return Candidate(timing=self._base + a + k + frac, cfo=cfo, m1=m1, m2=float(m2[k]))
