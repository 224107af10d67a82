# SPDX-License-Identifier: GPL-3.0-or-later
"""Burst demodulation: :func:`demod_header`, :func:`demod_payload` and the streaming :class:`BurstDemodulator`.

1. :func:`demod_header` -- at a candidate: fine timing on the preamble energy with the coarse CFO removed (the
   Frank segments' delay-Doppler coupling would bias it), interpolate the symbols of the preamble and header
   region, fine CFO from a zero-padded FFT over the 64 de-rotated segment correlations, channel and noise
   variance from the preamble, pilot phase tracking (complex-averaged pilot correlations, phasor interpolation),
   soft header decoding; then the decoded header is re-encoded and the 4032 known symbols (preamble + header +
   pilots) give the refined CFO (least-squares phase slope), channel ``h`` and noise variance.
2. :func:`demod_payload` -- the payload symbols, timing-tracked (:func:`timing_drift`: the pilot blocks'
   timing errors give the sampling-clock drift across the frame, which free-running oscillators make several
   tenths of a sample over 2^15 symbols), de-rotated with the refined CFO, phase-tracked on the pilots,
   equalised: ``y = x + n`` with ``noise_var = N0/|h|^2``.

The streaming :class:`BurstDemodulator` (history, windows, truncation) lives in :mod:`infercom.sync.window`
and is re-exported here.

Input: float32 real / imaginary windows of the matched-filtered stream (``fmt.sps`` samples per symbol); timings
in (fractional) samples, CFO in cycles per sample at the API (cycles per symbol inside, ``f_sym``), phases in
rad, noise variances complex per symbol, SNR as Es/N0 in dB (capped at :data:`SNR_MAX_DB`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .. import preamble as pre
from ..frame import FrameFormat
from ..header import HEADER_SYMBOLS, codeword_symbols, decode_header_codeword
from .demod_kernels import (
    _equalise_kernel,
    _gain_noise_kernel,
    _pilot_timing_kernel,
    _pilot_track_kernel,
    _pre_energy_kernel,
    _refine_kernel,
)
from .frames import HeaderResult
from .interpolator import _INTERP_HALF, _TAP_TABLE, _interp_taps, _symbols, _symbols_drift
from .templates import _PRE, _PRE_C, _PRE_C_I, _PRE_C_R, NP, L, S

#: Largest Es/N0 (dB) the receiver reports: its own distortion floor (RRC truncation, interpolator, estimation)
#: is ~-38 dB, so a noise variance below |h|^2 * 10^(-SNR_MAX_DB/10) would not be a measurement of the channel;
#: the noise variance is floored there (also keeps LLRs = 2 sqrt(2) Re(y)/noise_var finite on noiseless input).
SNR_MAX_DB = 40.0
_NV_MIN_REL = 10.0 ** (-SNR_MAX_DB / 10.0)


def _pilot_track(y, pidx, pilots_c, smooth: int, pre_tail: int = 256):
    """Block times and smoothed unit phasors (see :func:`_pilot_track_ref`); ``pilots_c`` conjugated pilot
    symbols (n_blocks, 16) (numba)."""
    nb = pidx.shape[0]
    t = np.empty(nb + 1, np.float64)
    ph = np.empty(nb + 1, np.complex128)
    _pilot_track_kernel(y, pidx, pilots_c, _PRE_C, pre_tail, smooth, t, ph)
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


def _pre_template(f_sym: float) -> tuple[np.ndarray, np.ndarray]:
    """conj(preamble) de-rotated by ``f_sym`` cycles/symbol: (real, imag) float32, for :func:`_seg_energy`."""
    if f_sym == 0.0:
        return _PRE_C_R, _PRE_C_I
    # exp(-2 pi j f k), k = 32 a + b, as the outer product of two 32-point phasor sets (64 exponentials
    # instead of 1024; the same values to ~1e-16 before the float32 rounding)
    w = -2j * np.pi * f_sym
    t = (_PRE_C.reshape(32, 32) * (np.exp(w * _K32A)[:, None] * np.exp(w * _K32B)[None, :])).reshape(-1)
    return np.ascontiguousarray(t.real, np.float32), np.ascontiguousarray(t.imag, np.float32)


_K32A = 32.0 * np.arange(32)
_K32B = np.arange(32, dtype=np.float64)


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


#: a timing drift is applied when it is significant (3 standard errors) and moves the frame's last pilot by at
#: least this many samples; larger than MAX_DRIFT_PPM it is not a clock (a bad estimate) and is ignored
MIN_DRIFT_SAMPLES = 0.01
MAX_DRIFT_PPM = 100.0


def timing_drift(zr, zi, hr: HeaderResult, fmt: FrameFormat, pidx: np.ndarray, pil_c: np.ndarray
                 ) -> tuple[float, float]:
    """The timing drift of a burst in samples per symbol (the sampling-clock offset times ``sps``): the
    least-squares slope, through the preamble's timing, of the pilot blocks' timing errors
    (:func:`_pilot_timing_kernel`, trial offsets +-0.175 sps samples; from 64 blocks up the blocks of the
    frame's second half)
    against their centre symbol index.
    Returns ``(drift, stderr)``; ``drift`` is 0.0 unless it is significant (3 standard errors), moves the last
    pilot by at least :data:`MIN_DRIFT_SAMPLES` and is within :data:`MAX_DRIFT_PPM`. ``pidx`` / ``pil_c``: the
    pilot symbol indices (n_blocks, 16) and their conjugated symbols, as :func:`_payload_layout` gives them."""
    if pidx.shape[0] >= 64:
        # a long frame: the blocks of its second half. The slope through the preamble's timing is weighted by
        # the squared symbol index, so they carry 7/8 of its information (0.94 of the precision of every block,
        # at half the cost)
        half = pidx.shape[0] // 2
        pidx, pil_c = pidx[half:], pil_c[half:]
    nb = pidx.shape[0]
    if nb < 4:
        return 0.0, math.inf
    tau = np.empty(nb, np.float64)
    w = np.empty(nb, np.float64)
    fit = np.empty(4, np.float64)
    _pilot_timing_kernel(zr, zi, float(hr.timing), fmt.sps, pidx, pil_c, float(hr.cfo_sym), float(hr.phase0),
                         0.175 * fmt.sps, _TAP_TABLE, tau, w, fit)
    sts, ss, stt, n = fit
    if n < 4:
        return 0.0, math.inf
    slope = sts / ss
    stderr = math.sqrt(max(stt - slope * sts, 0.0) / (n - 1) / ss)
    s_max = float(pidx[-1, pidx.shape[1] // 2])
    if (abs(slope) < 3 * stderr or abs(slope) * s_max < MIN_DRIFT_SAMPLES
            or abs(slope) / fmt.sps > MAX_DRIFT_PPM * 1e-6):
        return 0.0, stderr
    return slope, stderr


def demod_payload(zr, zi, hr: HeaderResult, fmt: FrameFormat | None = None, smooth: int = 4):
    """Equalised payload data symbols of a burst whose header was decoded by :func:`demod_header` (same
    window).  Returns (y complex64 (n,), noise_var float32 (n,)) with ``noise_var = N0/|h|^2``."""
    y, nv = demod_payload_scalar_nv(zr, zi, hr, fmt, smooth)
    return y, np.full(y.size, nv, np.float32)


def demod_payload_scalar_nv(zr, zi, hr: HeaderResult, fmt: FrameFormat | None = None, smooth: int = 4):
    """:func:`demod_payload` with the noise variance as one float32 (the same for every symbol of a frame)."""
    fmt = fmt or FrameFormat()
    h = hr.header
    if h is None:
        raise ValueError("demod_payload needs a decoded header")
    n_pay = h.payload_len()
    n_sym = fmt.frame_symbols(n_pay)
    zr = np.asarray(zr, np.float32)
    zi = np.asarray(zi, np.float32)
    dpos, pidx, pil = _payload_layout(fmt, n_pay)
    drift = timing_drift(zr, zi, hr, fmt, pidx, pil)[0]
    y = None
    if drift:
        try:
            y = _symbols_drift(zr, zi, hr.timing, drift, 0, n_sym, fmt.sps, hr.cfo_sym, hr.phase0)
        except ValueError:          # the drifted frame would leave the window: keep the nominal timing
            y = None
    if y is None:
        y = _symbols(zr, zi, hr.timing, 0, n_sym, fmt.sps, hr.cfo_sym, hr.phase0)
    t_blk, ph_blk = _pilot_track(y, pidx, pil, smooth=smooth)
    out = np.empty(n_pay, np.complex64)
    _equalise_kernel(y, dpos, t_blk, ph_blk, np.float32(1.0 / max(hr.h_abs, 1e-12)), out)
    return out, np.float32(hr.noise_var / max(hr.h_abs**2, 1e-30))


# the streaming demodulator is the windowing stage plus demod_payload (window.py imports demod_header from here)
from .window import BurstDemodulator  # noqa: F401  (re-export)
