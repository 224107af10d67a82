# SPDX-License-Identifier: GPL-3.0-or-later
"""Numpy references of the numba kernels and their wrappers (the tests compare against them; not used by the
receiver).  Same arguments and units as the functions they mirror (samples of the matched-filtered stream,
cycles per symbol, rad).
"""

from __future__ import annotations

import math

import numpy as np

from .. import preamble as pre
from .interpolator import _interp_taps, _symbols
from .templates import _E, _PRE, _PRE_C, _U, NP, L, S


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


def _seg_energy_ref(zr, zi, timing, sps, f_sym=0.0):
    y = _symbols(zr, zi, timing, 0, NP, sps, f_sym, 0.0)
    c = np.sum((y * _PRE_C).reshape(S, L), axis=1)
    return float(np.sum(np.abs(c) ** 2))


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


def _pilot_timing_ref(zr, zi, timing, sps, pidx, pilots, f_sym, ph0, d):
    """Numpy reference of :func:`~infercom.sync.demod_kernels._pilot_timing_kernel` (``pilots`` not
    conjugated): per pilot block the vertex of the parabola through the coherent pilot correlation energies at
    timing offsets -d, 0, +d (clipped to +-d) and the energy at 0; (0, 0) where the parabola opens upwards."""
    nb = pidx.shape[0]
    tau, w = np.zeros(nb), np.zeros(nb)
    for b in range(nb):
        lo = math.floor(timing - d + pidx[b].min() * sps) - 3
        if lo < 0 or math.floor(timing + d + pidx[b].max() * sps) + 5 > len(zr):
            continue                                  # the block leaves the window: no estimate
        e = []
        for o in (-d, 0.0, d):
            y = np.empty(pidx.shape[1], np.complex128)
            for j, k in enumerate(pidx[b]):
                t = timing + o + k * sps
                n0 = math.floor(t)
                taps = _interp_taps(t - n0).astype(np.float64)
                seg = np.asarray(zr[n0 - 3:n0 + 5], np.float64) + 1j * np.asarray(zi[n0 - 3:n0 + 5], np.float64)
                y[j] = np.dot(taps, seg) * np.exp(-1j * (2 * np.pi * f_sym * k + ph0))
            e.append(abs(np.sum(y * np.conj(pilots[b]))) ** 2)
        den = e[0] - 2 * e[1] + e[2]
        if den < 0:
            tau[b] = min(max(0.5 * d * (e[0] - e[2]) / den, -d), d)
            w[b] = e[1]
    return tau, w


def _symbols_drift_ref(zr, zi, timing, drift, k0, n_sym, sps, f_sym, ph0, chunk):
    """Numpy-level reference of :func:`~infercom.sync.interpolator._symbols_drift`: one :func:`_symbols` call
    per chunk of ``chunk`` symbols at the drifted timing of the chunk's centre."""
    out = np.empty(n_sym, np.complex64)
    for c0 in range(0, n_sym, chunk):
        m = min(chunk, n_sym - c0)
        out[c0:c0 + m] = _symbols(zr, zi, timing + drift * (k0 + c0 + 0.5 * (m - 1)), k0 + c0, m, sps, f_sym, ph0)
    return out
