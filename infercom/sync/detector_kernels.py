# SPDX-License-Identifier: GPL-3.0-or-later
"""Numba kernels of the two-stage preamble detector (:mod:`infercom.sync.detector` wraps them).

All work on float32 real / imaginary arrays of the matched-filtered stream; positions are sample indices into
those arrays; ``sps`` samples per symbol; the preamble segment ``u`` has 16 symbols, ``G = 16 * sps`` samples.
Numpy references: :mod:`infercom.sync.reference`.
"""

from __future__ import annotations

import numba
import numpy as np

from .templates import NP, S

S_CONST = NP  # symbols of the preamble window (numba global)
S_SEG = S


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
        # operands as slices indexed by the loop variable: no negative-index wrap-around test per access, so
        # LLVM vectorises these loops (numba would otherwise check every computed index such as n + 8)
        z0r, z4r, z8r, z12r = zr[b0:b0 + m + 3], zr[b0 + 4:b0 + m + 7], zr[b0 + 8:b0 + m + 11], zr[b0 + 12:b0 + m + 15]
        z0i, z4i, z8i, z12i = zi[b0:b0 + m + 3], zi[b0 + 4:b0 + m + 7], zi[b0 + 8:b0 + m + 11], zi[b0 + 12:b0 + m + 15]
        for j in range(m + 3):
            ar = z0r[j] + z8r[j]
            ai = z0i[j] + z8i[j]
            br = z0r[j] - z8r[j]
            bi = z0i[j] - z8i[j]
            cr = z4r[j] + z12r[j]
            ci = z4i[j] + z12i[j]
            dr = z4r[j] - z12r[j]
            di = z4i[j] - z12i[j]
            t0r[j] = ar + cr
            t0i[j] = ai + ci
            t2r[j] = ar - cr
            t2i[j] = ai - ci
            t1r[j] = br + di
            t1i[j] = bi - dr
            t3r[j] = br - di
            t3i[j] = bi + dr
        o_r, o_i = rr[b0:b0 + m], ri[b0:b0 + m]
        u1r, u2r, u3r = t1r[1:m + 1], t2r[2:m + 2], t3r[3:m + 3]
        u1i, u2i, u3i = t1i[1:m + 1], t2i[2:m + 2], t3i[3:m + 3]
        for j in range(m):
            o_r[j] = t0r[j] + u1r[j] + u2r[j] + u3r[j]
            o_i[j] = t0i[j] + u1i[j] + u2i[j] + u3i[j]


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
    ezG = ez[G:G + nr]  # slices indexed by the loop variable: vectorised (see _frank_corr_kernel)
    for n in range(nr):  # no loop-carried dependency: vectorised
        e = ezG[n] - ez[n]
        p = rr[n] * rr[n] + ri[n] * ri[n]
        t = p / e if e > 0.0 else 0.0
        q[n] = min(t, 16.0)  # Cauchy-Schwarz bound |r|^2 <= 16 q (rounding guard)
    if nr > G:
        qa, qb = q[G:nr], q[0:nr - G]
        for n in range(nr - G):  # running sums along each stride-G chain
            qa[n] += qb[n]
    lag = (n_seg - 1) * G
    ql = q[lag:lag + n_out]
    for n in range(min(G, n_out)):
        m1[n] = ql[n] / n_seg
    if n_out > G:
        m1b, qlb, qm = m1[G:n_out], ql[G:n_out], q[0:n_out - G]
        for n in range(n_out - G):
            m1b[n] = (qlb[n] - qm[n]) / n_seg


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
                src = e2[k:k + nph]   # a slice: vectorised (see below)
                for j in range(nph):
                    tq[j] += src[j]
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
        # through slices: LLVM then sees contiguous, non-aliasing operands and vectorises (10x; same sums)
        src = pr[o:o + m]
        for n in range(m):
            ar[n] += e * src[n]
        src = pi_[o:o + m]
        for n in range(m):
            ai[n] += e * src[n]
        src = pd[o:o + m]
        for n in range(m):
            ad[n] += src[n]
    for n in range(m):
        dr[n] = ar[n]
        di[n] = ai[n]
        den[n] = ad[n]
