# SPDX-License-Identifier: GPL-3.0-or-later
"""Streaming burst receiver: matched filter, CFO-robust preamble detection, timing/CFO/channel/noise
estimation, header decoding, pilot phase tracking and equalisation to soft symbols.

Input: complex64 samples at ``sps`` samples per symbol (default 2), *not* matched-filtered (the receiver applies
the unit-energy RRC matched filter itself, :class:`MatchedFilter`; pass ``prefiltered=True`` when the stream was
already filtered with the same causal RRC filter).  The stages are separately callable, so GNU Radio blocks can
wrap them one by one:

1. :class:`MatchedFilter` -- streaming RRC matched filter (numba).
2. :class:`BurstDetector` -- over the matched-filtered stream, yields :class:`Candidate` s with absolute timing
   (fractional sample index of preamble symbol 0 in the matched-filtered stream), coarse CFO and metrics.
   Stage 1 (every sample): segment correlations ``r[n] = sum_k z[n+k*sps] conj(u_k)`` with the 16-symbol
   preamble segment ``u``, combined non-coherently over the 64 segments, each normalised by the energy ``q_s`` of
   its own 16 samples, ``M1 = (1/64) sum_s |r(n+s*16*sps)|^2 / q_s``: insensitive to CFO and to the signal level
   (also to level changes inside the window), on noise the mean of 64 ratios 16 Beta(1, 15) (mean 1).  Stage 2 (only where ``M1 > T1``, around its peak): the differential metric ``D(n) = sum_s e_s
   c_s conj(c_{s-1})``, normalised by its noise-only variance estimated from the local segment energies
   ``q_s`` (``M2 = |D|^2 / sum_s q_s q_{s-1}``, ~Exp(1) on noise, also across noise/silence edges); its peak gives
   the timing (parabolic interpolation), its phase the coarse CFO.  The peak must dominate the ``W + G`` samples
   after it (the search is extended where needed): at high SNR partial overlaps with a later preamble (cover
   sidelobes) also exceed the noise-normalised threshold.
3. :func:`demod_header` -- at a candidate: fine timing on the preamble energy with the coarse CFO removed (the
   Frank segments' delay-Doppler coupling would bias it), interpolate the symbols of the preamble and header region, fine CFO
   from a zero-padded FFT over the 64 de-rotated segment correlations, channel and noise variance from the
   preamble, pilot phase tracking (complex-averaged pilot correlations, phasor interpolation), soft header
   decoding; then the decoded header is re-encoded and the 4032 known symbols (preamble + header + pilots) give
   the refined CFO (least-squares phase slope), channel ``h`` and noise variance.
4. :func:`demod_payload` -- the payload symbols, de-rotated with the refined CFO, phase-tracked on the pilots,
   equalised: ``y = x + n`` with ``noise_var = N0/|h|^2``.

:class:`BurstReceiver` chains them over a stream, with bounded memory: bursts may straddle ``feed()`` calls,
bursts cut off by the end of the input are counted (``counters['truncated']``) by :meth:`BurstReceiver.flush`.
"""

from __future__ import annotations

import cmath
import math
from dataclasses import dataclass, field
from functools import lru_cache

import numba
import numpy as np

from . import preamble as pre
from .channel import rrc_taps
from .frame import FrameFormat
from .header import HEADER_SYMBOLS, FrameHeader, codeword_symbols, decode_header_codeword

__all__ = ["Candidate", "ReceivedFrame", "HeaderResult", "MatchedFilter", "BurstDetector", "BurstDemodulator",
           "BurstReceiver", "demod_header", "demod_payload", "burst_len_samples", "header_len_samples",
           "detector_thresholds", "stage1_metric", "stage1_metric_ref"]

L = pre.SEG_LEN
S = pre.N_SEG
NP = pre.PREAMBLE_LEN
_U = pre.frank16()
_E = pre.diff_cover().astype(np.float32)
_PRE = pre.preamble()
_PRE_C = np.conj(_PRE)
_PRE_C_R = np.ascontiguousarray(_PRE_C.real)
_PRE_C_I = np.ascontiguousarray(_PRE_C.imag)
S_CONST = NP  # symbols of the preamble window (numba global)
S_SEG = S
_INTERP_HALF = 4  # windowed-sinc symbol interpolator: 8 taps (EVM floor -37.7 dB is the RRC truncation, not this)
#: Largest Es/N0 (dB) the receiver reports: its own distortion floor (RRC truncation, interpolator, estimation)
#: is ~-38 dB, so a noise variance below |h|^2 * 10^(-SNR_MAX_DB/10) would not be a measurement of the channel;
#: the noise variance is floored there (also keeps LLRs = 2 sqrt(2) Re(y)/noise_var finite on noiseless input).
SNR_MAX_DB = 40.0
_NV_MIN_REL = 10.0 ** (-SNR_MAX_DB / 10.0)


# ------------------------------------------------------------------------------------------------------------
# results
@dataclass
class Candidate:
    """A detected preamble.  ``timing``: absolute (fractional) index, in the matched-filtered stream, of the
    peak of preamble symbol 0; ``cfo``: coarse CFO, cycles per sample; ``m1``/``m2``: detector metrics."""

    timing: float
    cfo: float
    m1: float
    m2: float


@dataclass
class ReceivedFrame:
    header: FrameHeader
    y: np.ndarray            # complex64 equalised payload data symbols (pilots removed)
    noise_var: np.ndarray    # float32 per symbol
    snr_db: float            # measured Es/N0 of this frame (from the 4032 known symbols)
    cfo: float               # cycles per sample
    h: complex               # channel estimate (complex gain on unit-power symbols)
    sample_index: int        # absolute index of the burst start (first TX sample) in the input stream
    timing: float = 0.0      # absolute matched-filter index of preamble symbol 0 (fractional)
    metric: float = 0.0      # detector metric M2


@dataclass
class HeaderResult:
    """Output of :func:`demod_header`: the header (or None) and the estimates needed for the payload."""

    header: FrameHeader | None
    cfo_sym: float           # total CFO estimate, cycles per symbol (refined when the header decoded)
    phase0: float            # phase at preamble symbol 0, rad (after the refined CFO)
    h_abs: float
    noise_var: float         # complex noise variance per symbol (before equalisation)
    snr_db: float
    timing: float            # refined timing, window-relative sample index of preamble symbol 0
    extra: dict = field(default_factory=dict)


def burst_len_samples(h: FrameHeader | int, fmt: FrameFormat | None = None) -> int:
    """Samples a whole burst occupies at ``fmt.sps`` (frame symbols + RRC tail)."""
    return (fmt or FrameFormat()).burst_len_samples(h)


def header_len_samples(fmt: FrameFormat | None = None) -> int:
    """Matched-filtered samples needed after the timing of symbol 0 to decode the header (plus interpolator
    margin)."""
    fmt = fmt or FrameFormat()
    return fmt.header_region_symbols() * fmt.sps + 2 * _INTERP_HALF


# ------------------------------------------------------------------------------------------------------------
# matched filter
@numba.njit(cache=True, nogil=True, fastmath=True)
def _fir_kernel(xr, xi, taps, outr, outi):
    """out[n] = sum_k taps[k] * x[n + k], n = 0 .. len(out)-1 (x carries len(taps)-1 samples of history)."""
    nt = taps.size
    for n in range(outr.size):
        ar = np.float32(0.0)
        ai = np.float32(0.0)
        for k in range(nt):
            ar += taps[k] * xr[n + k]
            ai += taps[k] * xi[n + k]
        outr[n] = ar
        outi[n] = ai


class MatchedFilter:
    """Streaming causal RRC matched filter (unit energy): ``z[m] = sum_k t[k] x[m-k]``, same length and
    absolute indexing as the input (the stream starts with zero history)."""

    def __init__(self, sps: int = 2, beta: float = 0.35, span: int = 8):
        self.taps = rrc_taps(sps, beta, span)[::-1].copy()
        self.ntaps = self.taps.size
        # persistent work buffers: [ntaps-1 samples of history | chunk] (no per-chunk concatenation)
        self._br = np.zeros(self.ntaps - 1 + (1 << 16), np.float32)
        self._bi = np.zeros(self.ntaps - 1 + (1 << 16), np.float32)

    def process(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Filter a chunk; returns (real, imag) float32 arrays of the matched-filtered chunk."""
        x = np.asarray(x, dtype=np.complex64)
        n, h = x.size, self.ntaps - 1
        outr = np.empty(n, np.float32)
        outi = np.empty(n, np.float32)
        if n:
            if self._br.size < h + n:
                br = np.zeros(h + n, np.float32)
                bi = np.zeros(h + n, np.float32)
                br[:h], bi[:h] = self._br[:h], self._bi[:h]
                self._br, self._bi = br, bi
            br, bi = self._br[: h + n], self._bi[: h + n]
            br[h:] = x.real
            bi[h:] = x.imag
            _fir_kernel(br, bi, self.taps, outr, outi)
            br[:h] = br[n: n + h].copy()
            bi[:h] = bi[n: n + h].copy()
        return outr, outi


# ------------------------------------------------------------------------------------------------------------
# detector kernels
@numba.njit(cache=True, nogil=True, fastmath=True)
def _segcorr_kernel(zr, zi, ur, ui, sps, rr, ri):
    """r[n] = sum_k z[n + k*sps] * conj(u_k) for n < len(rr)."""
    nu = ur.size
    for n in range(rr.size):
        ar = np.float32(0.0)
        ai = np.float32(0.0)
        for k in range(nu):
            xr = zr[n + k * sps]
            xi = zi[n + k * sps]
            ar += xr * ur[k] + xi * ui[k]
            ai += xi * ur[k] - xr * ui[k]
        rr[n] = ar
        ri[n] = ai


@numba.njit(cache=True, nogil=True, fastmath=True)
def _frank_corr_kernel(zr, zi, rr, ri):
    """r[n] = sum_k z[n + k] conj(u_k), u = Frank-16 (symbol-spaced stream), via a radix-4 butterfly:
    11 complex additions per output instead of 16 complex multiply-adds."""
    nr = rr.size
    BK = 2048
    t0r = np.empty(BK + 3, np.float32)
    t0i = np.empty(BK + 3, np.float32)
    t1r = np.empty(BK + 3, np.float32)
    t1i = np.empty(BK + 3, np.float32)
    t2r = np.empty(BK + 3, np.float32)
    t2i = np.empty(BK + 3, np.float32)
    t3r = np.empty(BK + 3, np.float32)
    t3i = np.empty(BK + 3, np.float32)
    for b0 in range(0, nr, BK):
        m = min(BK, nr - b0)
        for j in range(m + 3):
            n = b0 + j
            ar = zr[n] + zr[n + 8]
            ai = zi[n] + zi[n + 8]
            br = zr[n] - zr[n + 8]
            bi = zi[n] - zi[n + 8]
            cr = zr[n + 4] + zr[n + 12]
            ci = zi[n + 4] + zi[n + 12]
            dr = zr[n + 4] - zr[n + 12]
            di = zi[n + 4] - zi[n + 12]
            t0r[j] = ar + cr
            t0i[j] = ai + ci
            t2r[j] = ar - cr
            t2i[j] = ai - ci
            t1r[j] = br + di
            t1i[j] = bi - dr
            t3r[j] = br - di
            t3i[j] = bi + dr
        for j in range(m):
            rr[b0 + j] = t0r[j] + t1r[j + 1] + t2r[j + 2] + t3r[j + 3]
            ri[b0 + j] = t0i[j] + t1i[j + 1] + t2i[j + 2] + t3i[j + 3]


@numba.njit(cache=True, nogil=True)
def _stage1_kernel(zr, zi, n_seg, m1):
    """On a symbol-spaced stream (one sample phase): M1[n] = (1/n_seg) sum_s |r_s|^2 / q_s with r_s = r[n + 16 s]
    the segment correlation and q_s = sum_{k<16} |z[n + 16 s + k]|^2 the energy of the same 16 samples (a
    silent segment, q_s = 0, contributes 0), for n < len(m1); needs len(z) >= len(m1) + 16*n_seg."""
    G = 16
    n_out = m1.size
    nr = n_out + (n_seg - 1) * G
    rr = np.empty(nr, np.float32)
    ri = np.empty(nr, np.float32)
    _frank_corr_kernel(zr, zi, rr, ri)
    ez = np.empty(nr + G + 1, np.float64)
    ez[0] = 0.0
    for n in range(nr + G):
        ez[n + 1] = ez[n] + zr[n] * zr[n] + zi[n] * zi[n]
    q = np.empty(nr, np.float64)
    for n in range(nr):  # no loop-carried dependency: vectorised
        e = ez[n + G] - ez[n]
        p = rr[n] * rr[n] + ri[n] * ri[n]
        t = p / e if e > 0.0 else 0.0
        q[n] = min(t, 16.0)  # Cauchy-Schwarz bound |r|^2 <= 16 q (rounding guard)
    for n in range(G, nr):  # running sums along each stride-G chain
        q[n] += q[n - G]
    lag = (n_seg - 1) * G
    for n in range(n_out):
        m1[n] = (q[n + lag] - (q[n - G] if n >= G else 0.0)) / n_seg


@numba.njit(cache=True, nogil=True)
def _stage1_scan_kernel(zr, zi, s0, sps, phases, n_dec, thr, m1):
    """Stage 1 over ``n_dec + 1024`` symbol-spaced positions of each sample phase in ``phases`` (offsets from
    ``s0``), ``m1`` = element-wise max over the phases; returns the first position ``< n_dec`` with
    ``m1 > thr`` or -1."""
    n_out = m1.size
    n_take = n_out + S_CONST
    zer = np.empty(n_take, np.float32)
    zei = np.empty(n_take, np.float32)
    tmp = np.empty(n_out, np.float32)
    for pi_ in range(phases.size):
        off = s0 + phases[pi_]
        for k in range(n_take):
            zer[k] = zr[off + k * sps]
            zei[k] = zi[off + k * sps]
        if pi_ == 0:
            _stage1_kernel(zer, zei, S_SEG, m1)
        else:
            _stage1_kernel(zer, zei, S_SEG, tmp)
            for k in range(n_out):
                if tmp[k] > m1[k]:
                    m1[k] = tmp[k]
    for k in range(n_dec):
        if m1[k] > thr:
            return k
    return -1


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


def stage1_metric_ref(z) -> np.ndarray:
    """Numpy reference of :func:`stage1_metric` (complex symbol-spaced input)."""
    z = np.asarray(z, np.complex128)
    n = z.size - NP
    if n <= 0:
        return np.zeros(0, np.float32)
    r = np.correlate(z, _U.astype(np.complex128), "valid")  # sum z[n+i] conj(u[i])
    q = np.convolve(np.abs(z) ** 2, np.ones(L), "valid")[: r.size]  # segment energies
    t = np.divide(np.abs(r) ** 2, q, out=np.zeros(r.size), where=q > 0)
    P = np.zeros(n)
    for s in range(S):
        P += t[s * L: s * L + n]
    return (P / S).astype(np.float32)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _stage2_kernel(zr, zi, ur, ui, ecov, sps, a, b, dr, di, den, frank=True):
    """For n in [a, b): D(n) = sum_s e_s c_s conj(c_{s-1}) with c_s = r[n + s*G], and its noise-only variance
    estimate den(n) = sum_s q_s q_{s-1}, q_s = sum_k |z[n + s*G + k*sps]|^2 (local segment energies, so that
    the normalisation holds across noise/silence edges).  ``frank=True``: ``u`` is the Frank-16 preamble segment
    (radix-4 butterfly per sample phase); ``False``: generic correlation with ``u``."""
    nu = ur.size
    G = nu * sps
    n_seg = ecov.size + 1
    nr = (b - a) + (n_seg - 1) * G
    rr = np.empty(nr, np.float32)
    ri = np.empty(nr, np.float32)
    q = np.zeros(nr, np.float32)
    if nu == 16 and frank:
        # per sample phase: de-interleave, Frank butterfly correlation, running sum of |z|^2 over 16 symbols
        for ph in range(sps):
            nph = (nr - ph + sps - 1) // sps  # positions n = ph + j*sps < nr
            if nph <= 0:
                continue
            ne = nph + nu
            er = np.empty(ne, np.float32)
            ei = np.empty(ne, np.float32)
            for j in range(ne):
                er[j] = zr[a + ph + j * sps]
                ei[j] = zi[a + ph + j * sps]
            tr = np.empty(nph, np.float32)
            ti = np.empty(nph, np.float32)
            _frank_corr_kernel(er, ei, tr, ti)
            # direct sums (not a running sum: that would lose relative precision at noise -> silence edges)
            e2 = np.empty(ne, np.float32)
            for j in range(ne):
                e2[j] = er[j] * er[j] + ei[j] * ei[j]
            tq = np.zeros(nph, np.float32)
            for k in range(nu):
                for j in range(nph):
                    tq[j] += e2[j + k]
            for j in range(nph):
                rr[ph + j * sps] = tr[j]
                ri[ph + j * sps] = ti[j]
                q[ph + j * sps] = tq[j]
    else:
        _segcorr_kernel(zr[a:], zi[a:], ur, ui, sps, rr, ri)
        for k in range(nu):
            off = a + k * sps
            for n in range(nr):
                q[n] += zr[off + n] * zr[off + n] + zi[off + n] * zi[off + n]
    m = b - a
    # products of adjacent segment correlations, once per position: p[n] = r[n+G] conj(r[n]), pd[n] = q[n+G] q[n];
    # then D(n) = sum_s e_s p[n + (s-1) G] (simple strided sums over contiguous arrays)
    npd = m + (n_seg - 2) * G
    pr = np.empty(npd, np.float32)
    pi_ = np.empty(npd, np.float32)
    pd = np.empty(npd, np.float32)
    for n in range(npd):
        pr[n] = rr[n + G] * rr[n] + ri[n + G] * ri[n]
        pi_[n] = ri[n + G] * rr[n] - rr[n + G] * ri[n]
        pd[n] = q[n + G] * q[n]
    ar = np.zeros(m, np.float32)
    ai = np.zeros(m, np.float32)
    ad = np.zeros(m, np.float32)
    for s in range(n_seg - 1):
        e = ecov[s]
        o = s * G
        for n in range(m):
            ar[n] += e * pr[n + o]
        for n in range(m):
            ai[n] += e * pi_[n + o]
        for n in range(m):
            ad[n] += pd[n + o]
    for n in range(m):
        dr[n] = ar[n]
        di[n] = ai[n]
        den[n] = ad[n]


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
        self._scan = max(self._scan, int(index))

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
            n_sub = min(n_dec, self.sub_block)
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


# ------------------------------------------------------------------------------------------------------------
# demodulation kernels
def _interp_taps(frac: float) -> np.ndarray:
    """Taps for ``frac`` from a table of 1024 fractional phases (timing quantised to 1/1024 sample)."""
    i = int(round(float(frac) * _NTAB))
    if i >= _NTAB:
        return _TAP_TABLE[_NTAB]
    return _TAP_TABLE[max(i, 0)]


def _interp_taps_exact(frac: float) -> np.ndarray:
    """Windowed-sinc taps w[i], i = -(H-1) .. H, for the value at position (n0 + frac), 0 <= frac < 1
    (Blackman window over +-(H+0.5) samples, normalised to unit DC gain)."""
    H = _INTERP_HALF
    t = frac - np.arange(-(H - 1), H + 1, dtype=np.float64)
    x = np.pi * t / (H + 0.5)
    w = np.sinc(t) * (0.42 + 0.5 * np.cos(x) + 0.08 * np.cos(2 * x))
    return (w / w.sum()).astype(np.float32)


_NTAB = 1024
_TAP_TABLE = np.stack([_interp_taps_exact(i / _NTAB) for i in range(_NTAB + 1)])


@numba.njit(cache=True, nogil=True, fastmath=True)
def _symbols_kernel(zr, zi, n0, w, sps, k0, n_sym, f_sym, ph0, out_f):
    """Symbols k = k0 .. k0+n_sym-1: ``(sum_i w[i] z[n0 + k*sps + i - (H-1)]) * exp(-j(2 pi f_sym k + ph0))``,
    written interleaved (re, im) into the float32 array ``out_f`` (a view of a complex64 array).

    sps = 2: polyphase form (even / odd samples de-interleaved, contiguous 4-tap sums, vectorisable);
    otherwise a direct loop.  De-rotation: per block of 64 symbols a float32 phasor table (block phasor in
    float64, renormalised) applied without loop-carried dependency."""
    nw = w.size
    H1 = (nw // 2) - 1
    q0 = n0 + k0 * sps - H1
    yr = np.zeros(n_sym, np.float32)
    yi = np.zeros(n_sym, np.float32)
    if sps == 2 and nw % 2 == 0:
        h = nw // 2
        ne = n_sym + h
        er = np.empty(ne, np.float32)
        ei = np.empty(ne, np.float32)
        orr = np.empty(ne, np.float32)
        oi = np.empty(ne, np.float32)
        for m in range(ne):
            er[m] = zr[q0 + 2 * m]
            ei[m] = zi[q0 + 2 * m]
            orr[m] = zr[q0 + 2 * m + 1]
            oi[m] = zi[q0 + 2 * m + 1]
        for j in range(h):
            a = w[2 * j]
            b = w[2 * j + 1]
            for k in range(n_sym):
                yr[k] += a * er[k + j] + b * orr[k + j]
                yi[k] += a * ei[k + j] + b * oi[k + j]
    else:
        for k in range(n_sym):
            q = q0 + k * sps
            ar = np.float32(0.0)
            ai = np.float32(0.0)
            for i in range(nw):
                ar += w[i] * zr[q + i]
                ai += w[i] * zi[q + i]
            yr[k] = ar
            yi[k] = ai
    B = 64
    ang = -2.0 * np.pi * f_sym
    tr = np.empty(B)
    ti = np.empty(B)
    for j in range(B):
        tr[j] = np.cos(ang * j)
        ti[j] = np.sin(ang * j)
    sr = np.cos(ang * B)
    si = np.sin(ang * B)
    a0 = -(2.0 * np.pi * f_sym * k0 + ph0)
    br = np.cos(a0)
    bi = np.sin(a0)
    pr = np.empty(B, np.float32)
    pi_ = np.empty(B, np.float32)
    for b0 in range(0, n_sym, B):
        m = min(B, n_sym - b0)
        for j in range(m):
            pr[j] = br * tr[j] - bi * ti[j]
            pi_[j] = br * ti[j] + bi * tr[j]
        for j in range(m):
            k = b0 + j
            out_f[2 * k] = yr[k] * pr[j] - yi[k] * pi_[j]
            out_f[2 * k + 1] = yr[k] * pi_[j] + yi[k] * pr[j]
        t = br * sr - bi * si
        bi = br * si + bi * sr
        br = t
        mag = 1.0 / np.sqrt(br * br + bi * bi)
        br *= mag
        bi *= mag


@numba.njit(cache=True, nogil=True)
def _rotate_kernel(y, f_sym, ph0, out):
    """out[k] = y[k] * exp(-j(2 pi f_sym k + ph0)) (float64 phasor recursion, renormalised)."""
    a = -2.0 * np.pi * f_sym
    sr = np.cos(a)
    si = np.sin(a)
    pr = np.cos(-ph0)
    pi_ = np.sin(-ph0)
    for k in range(y.size):
        out[k] = y[k] * complex(pr, pi_)
        t = pr * sr - pi_ * si
        pi_ = pr * si + pi_ * sr
        pr = t
        if (k & 1023) == 1023:
            m = 1.0 / np.sqrt(pr * pr + pi_ * pi_)
            pr *= m
            pi_ *= m


def _symbols(zr, zi, timing: float, k0: int, n_sym: int, sps: int, f_sym: float, ph0: float) -> np.ndarray:
    """Symbols k0 .. k0+n_sym-1 of a burst whose symbol 0 is at (window-relative) ``timing``, de-rotated by
    ``f_sym`` cycles/symbol and ``ph0``."""
    n0 = math.floor(timing)
    w = _interp_taps(timing - n0)
    need = n0 + (k0 + n_sym - 1) * sps + _INTERP_HALF + 1
    if n0 + k0 * sps - (_INTERP_HALF - 1) < 0 or need > zr.size:
        raise ValueError("sample window too short for the requested symbols")
    out = np.empty(n_sym, np.complex64)
    _symbols_kernel(zr, zi, n0, w, sps, k0, n_sym, f_sym, ph0, out.view(np.float32))
    return out


@numba.njit(cache=True, nogil=True)
def _equalise_kernel(y, pos, t_blk, ph_blk, inv_h, out):
    """out[j] = y[pos[j]] * conj(phasor(pos[j])) * inv_h.  ``pos`` ascending.  The phasor rotates at a constant
    rate between consecutive pilot-block centres (phase interpolated linearly, by the wrapped phase difference
    of the smoothed block phasors); before the first / after the last centre the nearest phasor is held."""
    nb = t_blk.size
    b = -1  # interval [t_blk[b], t_blk[b+1]); -1: before the first centre
    cur_t = -1
    cur = ph_blk[0]
    rot = 1.0 + 0.0j
    for j in range(pos.size):
        t = pos[j]
        nb_old = b
        while b < nb - 1 and t >= t_blk[b + 1]:
            b += 1
        if b != nb_old or t != cur_t + 1:
            if b < 0:
                cur = ph_blk[0]
                rot = 1.0 + 0.0j
            elif b >= nb - 1:
                cur = ph_blk[nb - 1]
                rot = 1.0 + 0.0j
            else:
                d = ph_blk[b + 1] * ph_blk[b].conjugate()
                ang = np.arctan2(d.imag, d.real) / (t_blk[b + 1] - t_blk[b])
                rot = complex(np.cos(ang), np.sin(ang))
                a0 = ang * (t - t_blk[b])
                cur = ph_blk[b] * complex(np.cos(a0), np.sin(a0))
        else:
            cur = cur * rot
        cur_t = t
        out[j] = y[t] * cur.conjugate() * inv_h


@numba.njit(cache=True, nogil=True)
def _pilot_track_kernel(y, pidx, pilots_c, pre_c, pre_tail, smooth, t, ph):
    """Numba form of :func:`_pilot_track_ref` (``pilots_c``, ``pre_c``: conjugated pilot / preamble symbols):
    fills block times ``t`` and unit phasors ``ph`` (length n_blocks + 1)."""
    nb = pidx.shape[0]
    npl = pidx.shape[1]
    n_pre = pre_c.size
    g = np.empty(nb + 1, np.complex128)
    acc = 0.0 + 0.0j
    for k in range(n_pre - pre_tail, n_pre):
        acc += pre_c[k] * y[k]
    g[0] = acc * (64.0 / pre_tail)
    t[0] = n_pre - pre_tail / 2.0
    for b in range(nb):
        acc = 0.0 + 0.0j
        for k in range(npl):
            acc += y[pidx[b, k]] * pilots_c[b, k]
        g[b + 1] = acc
        t[b + 1] = pidx[b, 0] + (npl - 1) / 2.0
    n = nb + 1
    for i in range(n):
        if smooth > 0 and n > 1:
            acc = 0.0 + 0.0j
            for j in range(max(i - smooth, 0), min(i + smooth + 1, n)):
                acc += g[j]
        else:
            acc = g[i]
        m = abs(acc)
        ph[i] = acc / (m if m > 1e-30 else 1e-30)


def _pilot_track(y, pidx, pilots_c, smooth: int, pre_tail: int = 256):
    """Block times and smoothed unit phasors (see :func:`_pilot_track_ref`); ``pilots_c`` conjugated pilot
    symbols (n_blocks, 16) (numba)."""
    nb = pidx.shape[0]
    t = np.empty(nb + 1, np.float64)
    ph = np.empty(nb + 1, np.complex128)
    _pilot_track_kernel(y, pidx, pilots_c, _PRE_C, pre_tail, smooth, t, ph)
    return t, ph


def _pilot_track_ref(y, pidx, pilots, smooth: int, pre_tail: int = 256):
    """Block times and smoothed unit phasors: the preamble tail as block -1 plus the pilot blocks at symbol
    indices ``pidx`` (n_blocks, 16) with symbols ``pilots`` (n_blocks, 16).  Smoothing: complex sum over
    ``2*smooth + 1`` neighbouring blocks (no phase unwrapping)."""
    P = pre.PILOT_LEN
    nb = pidx.shape[0]
    t = np.empty(nb + 1, np.float64)
    g = np.empty(nb + 1, np.complex128)
    t[0] = NP - pre_tail / 2.0
    # weight of the preamble pseudo-block: as 64 pilot symbols (so it does not dominate the smoothing)
    g[0] = np.vdot(_PRE[NP - pre_tail:], y[NP - pre_tail:NP]) * (64.0 / pre_tail)
    if nb:
        g[1:] = np.sum(y[pidx] * np.conj(pilots), axis=1)
        t[1:] = pidx[:, 0] + (P - 1) / 2.0
    if smooth > 0 and g.size > 1:
        c = np.concatenate([[0], np.cumsum(g)])
        lo = np.maximum(np.arange(g.size) - smooth, 0)
        hi = np.minimum(np.arange(g.size) + smooth + 1, g.size)
        gs = c[hi] - c[lo]
    else:
        gs = g
    ph = gs / np.maximum(np.abs(gs), 1e-30)
    return t, ph


@lru_cache(maxsize=64)
def _payload_layout(fmt: FrameFormat, n_pay: int):
    """Cached symbol indices of a frame with ``n_pay`` payload symbols: payload data positions, pilot indices
    (n_blocks, 16) and conjugated pilot symbols (n_blocks, 16)."""
    dpos = fmt.data_positions(np.arange(HEADER_SYMBOLS, HEADER_SYMBOLS + n_pay))
    starts = fmt.pilot_positions(n_pay)
    pidx = starts[:, None] + np.arange(pre.PILOT_LEN)[None, :]
    pil = np.conj(pre.pilot_symbols(starts.size).reshape(-1, pre.PILOT_LEN))  # conjugated (_pilot_track)
    for a in (dpos, pidx, pil):
        a.setflags(write=False)
    return dpos, pidx, pil


@lru_cache(maxsize=16)
def _header_layout(fmt: FrameFormat):
    """Cached header-region layout: header data positions, the pilot blocks that follow chunks made only of
    header symbols (their positions do not depend on the payload length; indices and conjugated symbols), and the
    known-symbol template of the contiguous region preamble + header + pilots up to the first payload symbol
    (header symbols zero)."""
    dpos = fmt.data_positions(np.arange(HEADER_SYMBOLS))
    nb = HEADER_SYMBOLS // fmt.pilot_spacing
    starts = fmt.pilot_positions(1 << 16)[:nb]
    pidx = starts[:, None] + np.arange(pre.PILOT_LEN)[None, :]
    pil = pre.pilot_symbols(nb).reshape(-1, pre.PILOT_LEN)
    nk = int(fmt.data_positions(np.array([HEADER_SYMBOLS]))[0])
    x = np.zeros(nk, np.complex64)
    x[:NP] = _PRE
    x[pidx.reshape(-1)] = pil.reshape(-1)
    pil = np.conj(pil)  # conjugated (_pilot_track)
    for a in (dpos, pidx, pil, x):
        a.setflags(write=False)
    return dpos, pidx, pil, x


def _fine_cfo_preamble(yp: np.ndarray) -> float:
    """Residual CFO (cycles/symbol) from the 64 segment correlations of the preamble: zero-padded FFT peak
    with parabolic interpolation (512 points: bias < 1e-5 cycles/symbol); unambiguous over +-1/32."""
    c = np.sum((yp * _PRE_C).reshape(S, L), axis=1)
    nfft = 512
    spec = np.abs(np.fft.fft(c, nfft))
    k = int(np.argmax(spec))
    y0, y1, y2 = spec[(k - 1) % nfft], spec[k], spec[(k + 1) % nfft]
    den = y0 - 2 * y1 + y2
    d = 0.5 * (y0 - y2) / den if den < 0 else 0.0
    kk = k + d
    if kk > nfft / 2:
        kk -= nfft
    return float(kk / nfft / L)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _pre_energy_kernel(zr, zi, n0, w, sps, pc_r, pc_i, seg):
    """sum_s |sum_{k in seg s} y_k conj(p_k)|^2 with y_k interpolated by taps ``w`` at n0 + k*sps."""
    nw = w.size
    H1 = (nw // 2) - 1
    tot = 0.0
    n = pc_r.size
    for s0 in range(0, n, seg):
        cr = 0.0
        ci = 0.0
        for k in range(s0, s0 + seg):
            q = n0 + k * sps - H1
            ar = np.float32(0.0)
            ai = np.float32(0.0)
            for i in range(nw):
                ar += w[i] * zr[q + i]
                ai += w[i] * zi[q + i]
            cr += ar * pc_r[k] - ai * pc_i[k]
            ci += ar * pc_i[k] + ai * pc_r[k]
        tot += cr * cr + ci * ci
    return tot


def _pre_template(f_sym: float) -> tuple[np.ndarray, np.ndarray]:
    """conj(preamble) de-rotated by ``f_sym`` cycles/symbol: (real, imag) float32, for :func:`_seg_energy`."""
    if f_sym == 0.0:
        return _PRE_C_R, _PRE_C_I
    t = _PRE_C * np.exp(-2j * np.pi * f_sym * np.arange(NP))
    return np.ascontiguousarray(t.real, np.float32), np.ascontiguousarray(t.imag, np.float32)


def _seg_energy(zr, zi, timing, sps, template=None):
    """Non-coherent preamble energy sum_s |c_s|^2 at a trial timing (fine timing metric), ``c_s`` the segment
    correlations with ``template`` (default: conj(preamble); pass :func:`_pre_template` of the CFO estimate).

    The CFO must be removed: the Frank segments are polyphase chirps, whose correlation peak moves with the
    frequency offset (delay-Doppler coupling, ~9.3 samples per cycle/symbol at sps 2: 0.075 samples, i.e. a
    -25 dB EVM floor, at 0.8 % CFO)."""
    n0 = math.floor(timing)
    if n0 - (_INTERP_HALF - 1) < 0 or n0 + (NP - 1) * sps + _INTERP_HALF + 1 > zr.size:
        raise ValueError("sample window too short for the preamble")
    tr, ti = (_PRE_C_R, _PRE_C_I) if template is None else template
    return float(_pre_energy_kernel(zr, zi, n0, _interp_taps(timing - n0), sps, tr, ti, L))


def _seg_energy_ref(zr, zi, timing, sps, f_sym=0.0):
    y = _symbols(zr, zi, timing, 0, NP, sps, f_sym, 0.0)
    c = np.sum((y * _PRE_C).reshape(S, L), axis=1)
    return float(np.sum(np.abs(c) ** 2))


@numba.njit(cache=True, nogil=True)
def _gain_noise_kernel(y, x):
    """Least-squares complex gain of ``y ~ h x`` over ``len(x)`` known symbols and the residual noise
    variance ``mean|y - h x|^2``."""
    n = x.size
    num = 0.0 + 0.0j
    den = 0.0
    for k in range(n):
        num += y[k] * x[k].conjugate()
        den += (x[k] * x[k].conjugate()).real
    h = num / den
    e = 0.0
    for k in range(n):
        d = y[k] - h * x[k]
        e += d.real * d.real + d.imag * d.imag
    return h, e / n


@numba.njit(cache=True, nogil=True)
def _refine_kernel(y, x, seg):
    """Phase trajectory of ``y ~ h exp(j(slope k + ph0)) x`` over the known symbols ``x`` (len(x) <= len(y)):
    correlations over segments of ``seg`` symbols, unwrapped phases, |z|^2-weighted least-squares line; then the
    gain magnitude and residual noise variance after removing it.  Returns (slope rad/symbol, ph0 rad, |h|,
    noise variance)."""
    nk = x.size
    ns = nk // seg
    z = np.empty(ns, np.complex128)
    for j in range(ns):
        acc = 0.0 + 0.0j
        for k in range(j * seg, (j + 1) * seg):
            acc += y[k] * x[k].conjugate()
        z[j] = acc
    ph = np.empty(ns)
    prev = 0.0
    for j in range(ns):
        a = np.arctan2(z[j].imag, z[j].real)
        if j > 0:
            d = a - prev
            d -= 2.0 * np.pi * np.floor((d + np.pi) / (2.0 * np.pi))
            a = prev + d
        ph[j] = a
        prev = a
    sw = 0.0
    st = 0.0
    sp = 0.0
    for j in range(ns):
        w = z[j].real * z[j].real + z[j].imag * z[j].imag
        t = j * seg + (seg - 1) / 2.0
        sw += w
        st += w * t
        sp += w * ph[j]
    tm = st / sw
    pm = sp / sw
    num = 0.0
    den = 0.0
    for j in range(ns):
        w = z[j].real * z[j].real + z[j].imag * z[j].imag
        t = j * seg + (seg - 1) / 2.0 - tm
        num += w * t * (ph[j] - pm)
        den += w * t * t
    slope = num / den
    ph0 = pm - slope * tm
    # gain and noise after removing the phase line
    ca = np.cos(slope)
    sa = np.sin(slope)
    pr = np.cos(-ph0)
    pi_ = np.sin(-ph0)
    num_h = 0.0 + 0.0j
    den_h = 0.0
    for k in range(nk):
        v = y[k] * complex(pr, pi_)
        num_h += v * x[k].conjugate()
        den_h += (x[k] * x[k].conjugate()).real
        t = pr * ca + pi_ * sa
        pi_ = pi_ * ca - pr * sa
        pr = t
    h = num_h / den_h
    pr = np.cos(-ph0)
    pi_ = np.sin(-ph0)
    e = 0.0
    for k in range(nk):
        v = y[k] * complex(pr, pi_)
        d = v - h * x[k]
        e += d.real * d.real + d.imag * d.imag
        t = pr * ca + pi_ * sa
        pi_ = pi_ * ca - pr * sa
        pr = t
    return slope, ph0 + np.arctan2(h.imag, h.real), abs(h), e / nk


def _refine_ref(y, x, seg):
    """Numpy reference of :func:`_refine_kernel`."""
    nk = x.size
    ns = nk // seg
    z = np.sum((y[: ns * seg] * np.conj(x[: ns * seg])).reshape(ns, seg), axis=1)
    ph = np.unwrap(np.angle(z))
    w = np.abs(z) ** 2
    tc = np.arange(ns) * seg + (seg - 1) / 2.0
    tm = np.sum(w * tc) / np.sum(w)
    slope = np.sum(w * (tc - tm) * (ph - np.sum(w * ph) / np.sum(w))) / np.sum(w * (tc - tm) ** 2)
    ph0 = float(np.sum(w * ph) / np.sum(w) - slope * tm)
    k = np.arange(nk)
    yk = y[:nk] * np.exp(-1j * (slope * k + ph0))
    hk = np.vdot(x, yk) / np.vdot(x, x)
    nv = float(np.mean(np.abs(yk - hk * x) ** 2))
    return slope, ph0 + float(np.angle(hk)), float(abs(hk)), nv


def demod_header(zr, zi, timing: float, cfo: float, fmt: FrameFormat | None = None,
                 fine_timing: bool = True) -> HeaderResult:
    """Estimate and decode the header of a burst in a matched-filtered window.

    ``zr, zi``: float32 window; ``timing``: window-relative fractional index of preamble symbol 0 (from a
    :class:`Candidate`, minus the window start); ``cfo``: coarse CFO in cycles per sample.  The window must hold
    :func:`header_len_samples` samples after ``timing`` (and ``_INTERP_HALF`` before it)."""
    fmt = fmt or FrameFormat()
    sps = fmt.sps
    zr = np.asarray(zr, np.float32)
    zi = np.asarray(zi, np.float32)
    if fine_timing:
        # parabola through the non-coherent preamble energy at timing -0.35, 0, +0.35 samples, coarse CFO removed
        d = 0.35
        tpl = _pre_template(cfo * sps)
        e = [_seg_energy(zr, zi, timing + o, sps, tpl) for o in (-d, 0.0, d)]
        den = e[0] - 2 * e[1] + e[2]
        if den < 0:
            timing = timing + min(max(0.5 * d * (e[0] - e[2]) / den, -d), d)
    f_sym = cfo * sps
    n_region = fmt.header_region_symbols()
    # fine CFO over the preamble, then the whole header region with the fine CFO removed
    f_sym += _fine_cfo_preamble(_symbols(zr, zi, timing, 0, NP, sps, f_sym, 0.0))
    y = _symbols(zr, zi, timing, 0, n_region, sps, f_sym, 0.0)
    hp, nv = _gain_noise_kernel(y, _PRE)
    hp_abs = max(abs(hp), 1e-30)
    nv = max(nv, hp_abs * hp_abs * _NV_MIN_REL)  # SNR_MAX_DB cap
    # pilot phase tracking over the header region
    dpos, pidx, pil, xk_t = _header_layout(fmt)
    t_blk, ph_blk = _pilot_track(y, pidx, pil, smooth=2)
    yh = np.empty(HEADER_SYMBOLS, np.complex64)
    _equalise_kernel(y, dpos, t_blk, ph_blk, np.float32(1.0 / hp_abs), yh)
    hdr, cw = decode_header_codeword(yh, nv / (hp_abs * hp_abs))
    if hdr is None:
        return HeaderResult(None, f_sym, 0.0, hp_abs, nv, 10.0 * math.log10(hp_abs * hp_abs / nv), timing)
    # refinement on the known sequence: preamble + header + pilots, contiguous up to the first payload symbol
    nk = xk_t.size
    x = xk_t.copy()
    x[dpos] = codeword_symbols(cw)
    slope, ph0, h_abs, nv = _refine_kernel(y, x, 64)
    h_abs = max(float(h_abs), 1e-30)
    nv = max(float(nv), h_abs * h_abs * _NV_MIN_REL)  # SNR_MAX_DB cap
    f_sym += slope / (2 * np.pi)
    return HeaderResult(hdr, float(f_sym), float(ph0), h_abs, nv, 10.0 * math.log10(h_abs * h_abs / nv),
                        timing, {"nk": nk})


def demod_payload(zr, zi, hr: HeaderResult, fmt: FrameFormat | None = None, smooth: int = 4):
    """Equalised payload data symbols of a burst whose header was decoded by :func:`demod_header` (same
    window).  Returns (y complex64 (n,), noise_var float32 (n,)) with ``noise_var = N0/|h|^2``."""
    fmt = fmt or FrameFormat()
    h = hr.header
    if h is None:
        raise ValueError("demod_payload needs a decoded header")
    n_pay = h.payload_len()
    n_sym = fmt.frame_symbols(n_pay)
    y = _symbols(np.asarray(zr, np.float32), np.asarray(zi, np.float32), hr.timing, 0, n_sym, fmt.sps,
                 hr.cfo_sym, hr.phase0)
    dpos, pidx, pil = _payload_layout(fmt, n_pay)
    t_blk, ph_blk = _pilot_track(y, pidx, pil, smooth=smooth)
    out = np.empty(n_pay, np.complex64)
    _equalise_kernel(y, dpos, t_blk, ph_blk, np.float32(1.0 / max(hr.h_abs, 1e-12)), out)
    nv = np.full(n_pay, hr.noise_var / max(hr.h_abs**2, 1e-30), np.float32)
    return out, nv


# ------------------------------------------------------------------------------------------------------------
class BurstDemodulator:
    """Streaming demodulation of detected bursts: keeps a bounded history of the matched-filtered stream,
    takes :class:`Candidate` s (absolute timing) and returns :class:`ReceivedFrame` s when their samples have
    arrived.  ``flush()`` at the end of the input counts bursts that cannot complete as truncated."""

    def __init__(self, fmt: FrameFormat | None = None, sample_offset: int = 0):
        self.fmt = fmt or FrameFormat()
        self.sps = self.fmt.sps
        self.sample_offset = int(sample_offset)  # matched-filter delay (reported sample_index = timing - this)
        self.max_burst = FrameFormat(frame_len_log2=16).burst_len_samples(1 << 16) + 4 * _INTERP_HALF
        self._cap = 2 * self.max_burst + (1 << 18)
        self.max_push = self._cap // 4
        self._zr = np.zeros(self._cap, np.float32)
        self._zi = np.zeros(self._cap, np.float32)
        self._n = 0
        self._base = 0
        self._queue: list[Candidate] = []
        self._pending: tuple[Candidate, HeaderResult] | None = None
        self._busy_until = -1  # absolute index: (end - half a preamble) of the last burst whose header decoded
        self.counters = {"frames": 0, "header_fail": 0, "truncated": 0, "overlap_skipped": 0,
                         "dropped_candidates": 0}

    def _append(self, zr, zi):
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
            self._zr[: self._n - k] = self._zr[k: self._n]
            self._zi[: self._n - k] = self._zi[k: self._n]
            self._n -= k
            self._base = keep
        self._zr[self._n: self._n + n] = zr
        self._zi[self._n: self._n + n] = zi
        self._n += n

    def feed(self, zr, zi, candidates=()) -> list[ReceivedFrame]:
        zr = np.asarray(zr, np.float32)
        zi = np.asarray(zi, np.float32)
        self._queue.extend(candidates)
        out: list[ReceivedFrame] = []
        step = self._cap // 4
        for i in range(0, max(zr.size, 1), step):
            self._append(zr[i:i + step], zi[i:i + step])
            out.extend(self._process())
        return out

    def _process(self) -> list[ReceivedFrame]:
        out = []
        end = self._base + self._n
        while True:
            if self._pending is None:
                if not self._queue:
                    return out
                cand = self._queue[0]
                if cand.timing < self._busy_until:
                    self._queue.pop(0)
                    self.counters["overlap_skipped"] += 1
                    continue
                lo = math.floor(cand.timing) - 2 * _INTERP_HALF
                if lo < self._base:
                    self._queue.pop(0)
                    self.counters["dropped_candidates"] += 1
                    continue
                if end < int(cand.timing) + header_len_samples(self.fmt) + 4 * _INTERP_HALF:
                    return out
                self._queue.pop(0)
                rel = cand.timing - lo
                a = lo - self._base
                b = min(end - self._base, a + int(rel) + header_len_samples(self.fmt) + 4 * _INTERP_HALF)
                hr = demod_header(self._zr[a:b], self._zi[a:b], rel, cand.cfo, self.fmt)
                if hr.header is None:
                    self.counters["header_fail"] += 1
                    continue
                hr.timing += lo  # absolute
                self._pending = (cand, hr)
                self._busy_until = hr.timing + (self.fmt.frame_symbols(hr.header.payload_len()) - NP // 2) * self.sps
            cand, hr = self._pending
            need = math.ceil(hr.timing) + \
                self.fmt.frame_symbols(hr.header.payload_len()) * self.sps + 2 * _INTERP_HALF
            if end < need:
                return out
            lo = math.floor(hr.timing) - 2 * _INTERP_HALF
            a = lo - self._base
            b = need - self._base
            rel_hr = HeaderResult(hr.header, hr.cfo_sym, hr.phase0, hr.h_abs, hr.noise_var, hr.snr_db,
                                  hr.timing - lo)
            y, nv = demod_payload(self._zr[a:b], self._zi[a:b], rel_hr, self.fmt)
            self._pending = None
            self.counters["frames"] += 1
            out.append(ReceivedFrame(header=hr.header, y=y, noise_var=nv, snr_db=hr.snr_db,
                                     cfo=hr.cfo_sym / self.sps, h=cmath.rect(hr.h_abs, hr.phase0),
                                     sample_index=int(round(hr.timing)) - self.sample_offset, timing=hr.timing,
                                     metric=cand.m2))

    @property
    def waiting(self) -> bool:
        """True while a candidate or a decoded header waits for more samples."""
        return bool(self._queue) or self._pending is not None

    @property
    def busy_until(self) -> float:
        """Absolute sample index up to which the stream belongs to a burst whose header has decoded (a
        detector need not look for preambles before it)."""
        return self._busy_until

    def flush(self) -> list[ReceivedFrame]:
        """End of input: count the pending burst and queued candidates that lack samples as truncated."""
        out = self._process()
        n = (1 if self._pending is not None else 0) + len(self._queue)
        self.counters["truncated"] += n
        self._pending = None
        self._queue.clear()
        return out


class BurstReceiver:
    """Streaming burst receiver: raw samples in (``feed``), :class:`ReceivedFrame` s out.

    ``prefiltered=False`` (default): the input is the raw received stream at ``sps``; the RRC matched filter is
    applied here.  Memory is bounded (two fixed buffers of about two maximum bursts); bursts may straddle
    ``feed`` calls; call :meth:`flush` at the end of the input."""

    def __init__(self, fmt: FrameFormat | None = None, sps: int = 2, prefiltered: bool = False,
                 t1: float | None = None, t2: float | None = None):
        self.fmt = fmt or FrameFormat(sps=sps)
        if self.fmt.sps != sps:
            raise ValueError(f"fmt.sps {self.fmt.sps} != sps {sps}")
        self.mf = None if prefiltered else MatchedFilter(sps, self.fmt.beta, self.fmt.span)
        ntaps = self.fmt.span * sps + 1
        self.detector = BurstDetector(sps, t1, t2)
        self.demod = BurstDemodulator(self.fmt, sample_offset=ntaps - 1)

    @property
    def counters(self) -> dict:
        return {**self.detector.counters, **self.demod.counters}

    def feed(self, samples) -> list[ReceivedFrame]:
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
            else:
                zr, zi = np.ascontiguousarray(xx.real), np.ascontiguousarray(xx.imag)
            out.extend(self._run(zr, zi))
        return out

    def _run(self, zr, zi, final: bool = False) -> list[ReceivedFrame]:
        """Push a chunk to both stages, then alternate: the detector stops at each candidate, the demodulator
        decodes what it can, and the detector skips the rest of a burst whose header decoded.  While a
        candidate waits for its header samples the detector only buffers (it would otherwise scan the payload
        of that very burst), unless its backlog grows past half its buffer."""
        out = self.demod.feed(zr, zi)
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
        self.demod = BurstDemodulator(self.fmt, sample_offset=self.demod.sample_offset)
        self.detector.counters, self.demod.counters = dc, mc
        return out


def benchmark(n_frames: int = 24, snr_db: float = 0.0, cfo_sym: float = 0.005, seed: int = 1,
              frame_len_log2: int = 15) -> dict:
    """Throughput on a stream of back-to-back bursts (random gaps of 0..200 samples, AWGN at ``snr_db``), one
    thread, numba warm.  Msps by thread-CPU time (``*_cpu``; what the stage costs) and wall time:

    * ``receiver``: :class:`BurstReceiver` (matched filter + detector + demodulator; the detector skips bursts
      whose header decoded);
    * ``matched_filter``; ``detector_full_stream``: :class:`BurstDetector` over every sample (what a separate
      detector block does); ``demod``: :class:`BurstDemodulator` given the candidates;
    * ``detect_plus_demod``: receiver minus matched filter."""
    import time

    from .channel import apply_cfo, awgn, pulse_shape
    from .frame import image_frames
    from .link import LinkConfig

    rng = np.random.default_rng(seed)
    fmt = FrameFormat(frame_len_log2=frame_len_log2)
    cfg = LinkConfig(bh=1, bw=1, planes=8, profile="equal")
    side = int(np.sqrt(n_frames * fmt.frame_len * 2 / 8 / 3)) + 1
    img = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    frames = image_frames(img, cfg, 1, 1, fmt=fmt)[:n_frames]
    taps = rrc_taps(fmt.sps, fmt.beta, fmt.span)
    parts = []
    for _, sym in frames:
        parts.append(np.zeros(int(rng.integers(0, 200)), np.complex64))
        parts.append(pulse_shape(sym, fmt.sps, taps))
    x = awgn(apply_cfo(np.concatenate(parts), cfo_sym / fmt.sps), snr_db, rng)
    n = x.size
    chunk = 1 << 16

    def receiver(xx):
        rx = BurstReceiver(fmt, fmt.sps)
        out = []
        for i in range(0, xx.size, chunk):
            out += rx.feed(xx[i:i + chunk])
        return out + rx.flush()

    receiver(x[: min(n, 400_000)])  # warm-up (numba cache load / compile)
    w0, c0 = time.perf_counter(), time.thread_time()
    out = receiver(x)
    wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
    # stages separately
    mf = MatchedFilter(fmt.sps, fmt.beta, fmt.span)
    c0 = time.thread_time()
    zs = [mf.process(x[i:i + chunk]) for i in range(0, n, chunk)]
    t_mf = time.thread_time() - c0
    det = BurstDetector(fmt.sps)
    c0 = time.thread_time()
    cands = [det.feed(zr, zi) for zr, zi in zs]
    t_det = time.thread_time() - c0
    dem = BurstDemodulator(fmt, sample_offset=fmt.span * fmt.sps)
    c0 = time.thread_time()
    n_dem = sum(len(dem.feed(zr, zi, c)) for (zr, zi), c in zip(zs, cands))
    t_dem = time.thread_time() - c0
    return {
        "samples": int(n), "frames_sent": len(frames), "frames_received": len(out),
        "frames_received_demod_stage": n_dem, "snr_db": snr_db,
        "msps_receiver_wall": n / wall / 1e6, "msps_receiver_cpu": n / cpu / 1e6,
        "msps_matched_filter_cpu": n / max(t_mf, 1e-9) / 1e6,
        "msps_detector_full_stream_cpu": n / max(t_det, 1e-9) / 1e6,
        "msps_demod_cpu": n / max(t_dem, 1e-9) / 1e6,
        "msps_detect_plus_demod_cpu": n / max(cpu - t_mf, 1e-9) / 1e6,
    }


# ------------------------------------------------------------------------------------------------------------
# numpy references of the numba kernels (tests)
def symbols_ref(z, timing: float, k0: int, n_sym: int, sps: int, f_sym: float, ph0: float) -> np.ndarray:
    """Numpy reference of the symbol interpolator + de-rotation (complex window ``z``)."""
    n0 = math.floor(timing)
    w = _interp_taps(timing - n0).astype(np.float64)
    H1 = w.size // 2 - 1
    k = np.arange(k0, k0 + n_sym)
    idx = n0 + k[:, None] * sps + np.arange(w.size)[None, :] - H1
    y = np.sum(np.asarray(z, np.complex128)[idx] * w[None, :], axis=1)
    return (y * np.exp(-1j * (2 * np.pi * f_sym * k + ph0))).astype(np.complex64)


def equalise_ref(y, pos, t_blk, ph_blk, inv_h) -> np.ndarray:
    """Numpy reference of the pilot-phase equaliser: phase interpolated linearly between block centres by the
    wrapped phase difference, held outside."""
    pos = np.asarray(pos)
    t_blk = np.asarray(t_blk, np.float64)
    ph_blk = np.asarray(ph_blk, np.complex128)
    b = np.searchsorted(t_blk, pos, side="right") - 1
    out = np.empty(pos.size, np.complex128)
    for j, (t, bb) in enumerate(zip(pos, b)):
        if bb < 0:
            p = ph_blk[0]
        elif bb >= t_blk.size - 1:
            p = ph_blk[-1]
        else:
            d = np.angle(ph_blk[bb + 1] * np.conj(ph_blk[bb]))
            p = ph_blk[bb] * np.exp(1j * d * (t - t_blk[bb]) / (t_blk[bb + 1] - t_blk[bb]))
        out[j] = y[t] * np.conj(p) * inv_h
    return out.astype(np.complex64)


def stage2_ref(z, a: int, b: int, sps: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Numpy reference of the stage-2 kernel: (D complex (b-a,), den float (b-a,))."""
    z = np.asarray(z, np.complex128)
    G = L * sps
    taps = np.zeros((L - 1) * sps + 1, np.complex128)
    taps[::sps] = _U
    ones = np.zeros_like(taps.real)
    ones[::sps] = 1.0
    r = np.correlate(z, taps, "valid")
    q = np.correlate(np.abs(z) ** 2, ones, "valid")
    n = np.arange(a, b)
    D = np.zeros(b - a, np.complex128)
    den = np.zeros(b - a)
    for s in range(1, S):
        D += _E[s - 1] * r[n + s * G] * np.conj(r[n + (s - 1) * G])
        den += q[n + s * G] * q[n + (s - 1) * G]
    return D, den


def measure_detection(snr_db: float, n_frames: int = 300, seed: int | None = None) -> dict:
    """Sample-level loopback statistics (the docs/phy.md table): ``n_frames`` short frames (frame_len_log2 = 10)
    in three streams with CFO +1 %, -1 % and +0.37 % of the symbol rate, a uniform fractional delay, random gaps
    of 0..3000 samples and AWGN at ``snr_db``, through :class:`BurstReceiver`.  Returns the fraction received
    with the right header, the measured-SNR mean/std and the rms timing (samples) and CFO (cycles/symbol)
    errors."""
    from .channel import apply_cfo, awgn, fractional_delay, pulse_shape
    from .frame import image_frames
    from .link import LinkConfig

    rng = np.random.default_rng(int(100 - snr_db) if seed is None else seed)
    cfg = LinkConfig(bh=4, bw=4, planes=4, profile="equal")
    fmt = FrameFormat(frame_len_log2=10)
    taps = rrc_taps(2)
    frames = []
    for i in range(n_frames):
        img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        frames += image_frames(img, cfg, tx_id=1, image_id=i % 4096, fmt=fmt)
    got, snrs, terr, ferr = 0, [], [], []
    for part, cfo in enumerate((0.01, -0.01, 0.0037)):
        fr = frames[part::3]
        parts, starts, pos = [np.zeros(1500, np.complex64)], [], 1500
        for _, sym in fr:
            g = int(rng.integers(0, 3000))
            parts.append(np.zeros(g, np.complex64))
            pos += g
            s = pulse_shape(sym, 2, taps)
            starts.append(pos)
            parts.append(s)
            pos += s.size
        parts.append(np.zeros(6000, np.complex64))
        d = float(rng.uniform(0, 1))
        x = awgn(apply_cfo(fractional_delay(np.concatenate(parts), d), cfo / 2, 1.0), snr_db, rng)
        rx = BurstReceiver()
        out = rx.feed(x) + rx.flush()
        want = {h: st for (h, _), st in zip(fr, starts)}
        for f in out:
            if f.header in want:
                got += 1
                snrs.append(f.snr_db)
                terr.append(f.timing - 16 - (want[f.header] + d))
                ferr.append(f.cfo * 2 - cfo)
    snrs = np.array(snrs)
    return {"snr_db": snr_db, "frames": len(frames), "received": got / len(frames),
            "snr_mean": float(snrs.mean()) if snrs.size else float("nan"),
            "snr_std": float(snrs.std()) if snrs.size else float("nan"),
            "timing_rms_samples": float(np.sqrt(np.mean(np.square(terr)))) if terr else float("nan"),
            "cfo_rms_cycles_per_symbol": float(np.sqrt(np.mean(np.square(ferr)))) if ferr else float("nan")}


def noise_statistics(n_samples: int = 2_000_000, seed: int = 9) -> dict:
    """Detector statistics on white noise (the docs/phy.md false-alarm extrapolation): stage-1 M1 (mean, std,
    max over both phases) and stage-2 M2 tail probabilities at 400-position windows every 4000 samples."""
    rng = np.random.default_rng(seed)
    n = int(n_samples)
    w = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    zr, zi = MatchedFilter().process(w)
    m1a = stage1_metric(zr[::2], zi[::2])
    m1b = stage1_metric(zr[1::2], zi[1::2])
    m1 = np.maximum(m1a[: m1b.size], m1b)
    m2 = []
    for a in range(1000, n - 5000, 4000):
        dr = np.empty(400, np.float32)
        di = np.empty(400, np.float32)
        den = np.empty(400, np.float32)
        _stage2_kernel(zr, zi, _U.real.copy(), _U.imag.copy(), _E, 2, a, a + 400, dr, di, den)
        m2.append((dr.astype(np.float64) ** 2 + di.astype(np.float64) ** 2) / den)
    m2 = np.concatenate(m2)
    return {"m1_mean": float(m1a.mean()), "m1_std": float(m1a.std()), "m1_max_two_phases": float(m1.max()),
            "t1": _T1_DEFAULT, "m2_positions": int(m2.size), "m2_mean": float(m2.mean()),
            "p_m2_gt_5": float(np.mean(m2 > 5)), "p_m2_gt_10": float(np.mean(m2 > 10)), "m2_max": float(m2.max()),
            "t2": _T2_DEFAULT}
