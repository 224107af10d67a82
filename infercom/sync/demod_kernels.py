# SPDX-License-Identifier: GPL-3.0-or-later
"""Numba kernels of the burst demodulator (:mod:`infercom.sync.demod` wraps them): pilot phase tracking and
equalisation, fine-timing preamble energy, least-squares gain / noise and the phase-line refinement.

Symbol indices relative to preamble symbol 0, phases in rad, phase slopes in rad per symbol, noise variances
complex (both dimensions) per symbol.  Numpy references: :mod:`infercom.sync.reference`.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, fastmath=True)
def _equalise_kernel(y, pos, t_blk, ph_blk, inv_h, out):
    """out[j] = y[pos[j]] * conj(phasor(pos[j])) * inv_h.  ``pos`` ascending.  The phasor rotates at a constant
    rate between consecutive pilot-block centres (phase interpolated linearly, by the wrapped phase difference
    of the smoothed block phasors); before the first / after the last centre the nearest phasor is held.

    Runs of consecutive positions inside one interval share the rate: their phasors are ``cur * rot**k``, taken
    per block of 32 from a table of ``rot**i`` (complex128) so that the products vectorise instead of one
    serial complex multiplication per symbol."""
    nb = t_blk.size
    npos = pos.size
    B = 32
    R = np.empty(B + 1, np.complex128)
    Rr = np.empty(B, np.float64)
    Ri = np.empty(B, np.float64)
    Pr = np.empty(B, np.float64)
    Pi = np.empty(B, np.float64)
    yf = y.view(np.float32)
    of = out.view(np.float32)
    b = -1  # interval [t_blk[b], t_blk[b+1]); -1: before the first centre
    j = 0
    while j < npos:
        t = pos[j]
        while b < nb - 1 and t >= t_blk[b + 1]:
            b += 1
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
        # the run: consecutive positions in this interval
        r = j + 1
        lim = t_blk[b + 1] if b < nb - 1 else np.inf
        while r < npos and pos[r] == pos[r - 1] + 1 and pos[r] < lim:
            r += 1
        R[0] = 1.0 + 0.0j
        for i in range(1, min(B, r - j) + 1):
            R[i] = R[i - 1] * rot
        for i in range(B):
            Rr[i] = R[i].real
            Ri[i] = R[i].imag
        for b0 in range(j, r, B):
            m = min(B, r - b0)
            cr, ci = cur.real, cur.imag
            for i in range(m):  # conj(cur * R[i]) * inv_h
                Pr[i] = (cr * Rr[i] - ci * Ri[i]) * inv_h
                Pi[i] = -(cr * Ri[i] + ci * Rr[i]) * inv_h
            q = 2 * (t + (b0 - j))
            ys = yf[q: q + 2 * m]
            os_ = of[2 * b0: 2 * b0 + 2 * m]
            for i in range(m):
                yr = ys[2 * i]
                yi = ys[2 * i + 1]
                os_[2 * i] = yr * Pr[i] - yi * Pi[i]
                os_[2 * i + 1] = yr * Pi[i] + yi * Pr[i]
            if m == B:
                cur = cur * R[B]
        j = r


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


@numba.njit(cache=True, nogil=True, fastmath=True)
def _pilot_timing_kernel(zr, zi, timing, sps, pidx, pilots_c, f_sym, ph0, d, table, out_tau, out_w, fit):
    """Timing error of every pilot block, in samples: for block ``b`` the coherent pilot correlations
    ``c_o = sum_j y_o[pidx[b, j]] * pilots_c[b, j]`` at trial offsets ``o = -d, 0, +d`` samples from the nominal
    ``timing + k * sps`` (``y_o``: the interpolated symbol, de-rotated by ``2 pi f_sym k + ph0``; ``table``: the
    interpolator's tap table, one row per 1/(rows - 1) sample), then the vertex of the parabola through
    ``|c_o|^2``, clipped to +-d: ``out_tau[b]``; ``out_w[b] = |c_0|^2`` (0 where the parabola opens upwards or
    the block's samples leave the window: no estimate). ``fit`` (float64 (4,)) gets the sums of the
    least-squares line through the origin over the blocks with an estimate, ``s`` a block's centre symbol:
    ``sum tau*s, sum s*s, sum tau*tau, count``."""
    nb = pidx.shape[0]
    npl = pidx.shape[1]
    nw = table.shape[1]
    ntab = table.shape[0] - 1
    h1 = nw // 2 - 1
    e = np.empty(3)
    fit[:] = 0.0
    rot_r = np.empty(npl)
    rot_i = np.empty(npl)
    for b in range(nb):
        # the de-rotation of the block's symbols, shared by the three trial offsets (pidx[b] is consecutive)
        for j in range(npl):
            a = -(2.0 * np.pi * f_sym * pidx[b, j] + ph0)
            rot_r[j] = np.cos(a)
            rot_i[j] = np.sin(a)
        inside = True
        for oi in range(3):
            o = (oi - 1) * d
            cr = 0.0
            ci = 0.0
            for j in range(npl):
                k = pidx[b, j]
                t = timing + o + k * sps
                n0 = int(np.floor(t))
                fi = int(np.floor((t - n0) * ntab + 0.5))
                q = n0 - h1
                if q < 0 or q + nw > zr.size:
                    inside = False
                    break
                ar = 0.0
                ai = 0.0
                for i in range(nw):
                    ar += table[fi, i] * zr[q + i]
                    ai += table[fi, i] * zi[q + i]
                yr = ar * rot_r[j] - ai * rot_i[j]
                yi = ar * rot_i[j] + ai * rot_r[j]
                pr = pilots_c[b, j].real
                pi_ = pilots_c[b, j].imag
                cr += yr * pr - yi * pi_
                ci += yr * pi_ + yi * pr
            if not inside:
                break
            e[oi] = cr * cr + ci * ci
        den = e[0] - 2.0 * e[1] + e[2]
        if not inside or den >= 0.0:
            out_tau[b] = 0.0
            out_w[b] = 0.0
            continue
        tau = min(max(0.5 * d * (e[0] - e[2]) / den, -d), d)
        out_tau[b] = tau
        out_w[b] = e[1]
        sc = float(pidx[b, npl // 2])
        fit[0] += tau * sc
        fit[1] += sc * sc
        fit[2] += tau * tau
        fit[3] += 1.0
