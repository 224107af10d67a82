# SPDX-License-Identifier: GPL-3.0-or-later
"""Symbol interpolation at a fractional timing, with de-rotation by a CFO.

Times in samples of the matched-filtered stream (``sps`` per symbol), symbol indices relative to preamble
symbol 0, frequencies in cycles per symbol, phases in rad.  The interpolator is a ``2 * _INTERP_HALF``-tap
windowed sinc, its taps tabulated at 1/1024 sample (:func:`_interp_taps`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

_INTERP_HALF = 4  # windowed-sinc symbol interpolator: 8 taps (EVM floor -37.7 dB is the RRC truncation, not this)


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
        # operands as slices indexed by the loop variable (no negative-index wrap-around test per computed
        # index, so LLVM vectorises; the same arithmetic)
        sr_e, si_e = zr[q0:q0 + 2 * ne:2], zi[q0:q0 + 2 * ne:2]
        sr_o, si_o = zr[q0 + 1:q0 + 1 + 2 * ne:2], zi[q0 + 1:q0 + 1 + 2 * ne:2]
        for m in range(ne):
            er[m] = sr_e[m]
            ei[m] = si_e[m]
            orr[m] = sr_o[m]
            oi[m] = si_o[m]
        for j in range(h):
            a = w[2 * j]
            b = w[2 * j + 1]
            er_j, orr_j, ei_j, oi_j = er[j:j + n_sym], orr[j:j + n_sym], ei[j:j + n_sym], oi[j:j + n_sym]
            for k in range(n_sym):
                yr[k] += a * er_j[k] + b * orr_j[k]
                yi[k] += a * ei_j[k] + b * oi_j[k]
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
        yr_b, yi_b, o_b = yr[b0:b0 + m], yi[b0:b0 + m], out_f[2 * b0:2 * b0 + 2 * m]
        for j in range(m):
            o_b[2 * j] = yr_b[j] * pr[j] - yi_b[j] * pi_[j]
            o_b[2 * j + 1] = yr_b[j] * pi_[j] + yi_b[j] * pr[j]
        t = br * sr - bi * si
        bi = br * si + bi * sr
        br = t
        mag = 1.0 / np.sqrt(br * br + bi * bi)
        br *= mag
        bi *= mag


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


#: the largest timing error (samples) :func:`_symbols_drift` allows within a chunk of constant timing
DRIFT_TOL = 0.005


def drift_chunk(drift: float) -> int:
    """Symbols per chunk of constant timing for ``drift`` samples per symbol: the largest power of two in
    64 .. 4096 whose half-length drifts at most :data:`DRIFT_TOL` samples (1024 at 4 ppm and sps 2)."""
    if drift == 0.0:
        return 4096
    n = 2.0 * DRIFT_TOL / abs(drift)
    return int(min(4096, max(64, 2 ** math.floor(math.log2(max(n, 1.0))))))


@numba.njit(cache=True, nogil=True)
def _symbols_drift_kernel(zr, zi, timing, drift, sps, k0, n_sym, f_sym, ph0, table, chunk, out_f):
    """:func:`_symbols_kernel` with a timing that drifts by ``drift`` samples per symbol: symbol ``k`` at
    ``timing + k * (sps + drift)``, piecewise constant over chunks of ``chunk`` symbols (each chunk at the timing
    of its centre; taps from ``table``, rows at 1/(rows - 1) sample)."""
    ntab = table.shape[0] - 1
    for c0 in range(0, n_sym, chunk):
        m = min(chunk, n_sym - c0)
        kc = k0 + c0
        t = timing + drift * (kc + 0.5 * (m - 1))
        n0 = int(np.floor(t))
        fi = int(np.floor((t - n0) * ntab + 0.5))
        _symbols_kernel(zr, zi, n0, table[fi], sps, kc, m, f_sym, ph0, out_f[2 * c0:2 * (c0 + m)])


def _symbols_drift(zr, zi, timing: float, drift: float, k0: int, n_sym: int, sps: int, f_sym: float,
                   ph0: float) -> np.ndarray:
    """:func:`_symbols` with the symbol spacing ``sps + drift`` samples (a sampling-clock offset of
    ``drift / sps``); ValueError when the drifted symbols leave the window."""
    first = timing + drift * k0
    last = timing + drift * (k0 + n_sym - 1)
    if math.floor(min(first, last)) + k0 * sps - (_INTERP_HALF - 1) < 0 \
            or math.floor(max(first, last)) + 1 + (k0 + n_sym - 1) * sps + _INTERP_HALF + 1 > zr.size:
        raise ValueError("sample window too short for the requested symbols")
    out = np.empty(n_sym, np.complex64)
    _symbols_drift_kernel(zr, zi, float(timing), float(drift), sps, k0, n_sym, f_sym, ph0, _TAP_TABLE,
                          drift_chunk(drift), out.view(np.float32))
    return out
