# SPDX-License-Identifier: GPL-3.0-or-later
"""Layered normalised (offset) min-sum LDPC decoder for NR codes (numba, batched, GIL released).

Input: channel LLRs ``L = log P(x=0)/P(x=1)`` float32 ``(n_cw, n_bits)`` in codeword order (the full
``n_cols Zc`` bits: punctured bits 0, fillers large; see :func:`infercom.nr.ratematch.decoder_llrs`).

Schedule: one base-graph row (a *layer* of ``Zc`` independent checks) at a time, rows in order, for
``max_iter`` iterations or until the hard decisions satisfy every check (early stop per codeword, checked
after each iteration). For layer ``i``, every edge ``e = (i, j, s)`` and check ``r = 0..Zc-1`` (variable
``v = j Zc + (r + s) mod Zc``)::

    t_e[r]  = APP[v] - R_e[r]                                      (variable-to-check)
    R_e[r]  = (-1)^(sum of the other signs) * max(alpha * min_{e' != e} |t_e'[r]| - beta, 0)
    APP[v]  = t_e[r] + R_e[r]

with ``alpha`` the normalisation and ``beta`` the offset (in LLR units): defaults 0.9 and 0.3, chosen on
BG1/BG2 waterfalls at 10 iterations (docs/nr.md): better than pure normalisation (best ``alpha`` ~0.7, ``beta = 0``)
by about 0.1 dB at R = 1/2 and never worse at R = 0.2 .. 0.8. All arithmetic
is float32 in exactly this order, so the numpy reference :func:`decode_numpy` gives bit-identical results.
The inner loops run over the ``Zc`` checks of a layer on contiguous memory (the cyclic shift splits each edge
into two contiguous runs), so they vectorise.

Only the base rows whose degree-1 parity column carries information are processed: rows ``i >= 4`` whose
column ``kb + i`` has all-zero LLRs (never transmitted) pass exactly zero messages to every other variable,
so dropping them changes no decision (``m_rows`` is derived from the LLRs unless given). "Syndrome OK" then
refers to those rows; the remaining parity bits follow from the decoded ones by re-encoding.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

from .basegraph import LiftedCode

__all__ = ["DecodeResult", "decode", "decode_numpy", "rows_needed"]

ALPHA = 0.9
BETA = 0.3


@dataclass
class DecodeResult:
    """``bits`` uint8 ``(n_cw, n_dec)`` hard decisions of the decoded columns (``n_dec = (kb + m_rows) Zc``,
    systematic bits first); ``iterations`` int32 ``(n_cw,)`` iterations run; ``ok`` bool ``(n_cw,)`` zero
    syndrome reached; ``m_rows`` base rows used."""

    bits: np.ndarray
    iterations: np.ndarray
    ok: np.ndarray
    m_rows: int


# --------------------------------------------------------------------------------------------- kernels
@numba.njit(cache=True, nogil=True)
def _syndrome_zero(app, row_ptr, col, shift, m_rows, z, par):
    """True when the hard decisions of ``app`` (bit 1 where ``app < 0``) satisfy the first ``m_rows`` layers;
    stops at the first layer with an unsatisfied check. ``par``: uint8 scratch of ``z``."""
    zero = np.float32(0.0)
    for i in range(m_rows):
        par[:] = 0
        for e in range(row_ptr[i], row_ptr[i + 1]):
            base = col[e] * z
            s = shift[e]
            n1 = z - s
            a1 = app[base + s:base + z]
            for r in range(n1):
                par[r] ^= np.uint8(a1[r] < zero)
            a2 = app[base:base + s]
            p2 = par[n1:]
            for r in range(s):
                p2[r] ^= np.uint8(a2[r] < zero)
        acc = 0
        for r in range(z):
            acc |= par[r]
        if acc:
            return False
    return True


@numba.njit(cache=True, nogil=True, inline="always")
def _pass1(av, rv, tv, m1, m2, sg, n):
    """Variable-to-check messages of one edge over ``n`` contiguous checks; running two minima and signs."""
    zero = np.float32(0.0)
    for r in range(n):
        v = av[r] - rv[r]
        tv[r] = v
        a = abs(v)
        a1 = m1[r]
        m2[r] = min(m2[r], max(a, a1))
        m1[r] = min(a1, a)
        sg[r] ^= np.uint8(v < zero)


@numba.njit(cache=True, nogil=True, inline="always")
def _pass2(av, rv, tv, m1, m2, sg, n, alpha, beta):
    """Check-to-variable messages of one edge over ``n`` contiguous checks and the APP update."""
    zero = np.float32(0.0)
    for r in range(n):
        v = tv[r]
        a = abs(v)
        mn = m1[r]
        mag = m2[r] if a == mn else mn
        mag = max(alpha * mag - beta, zero)
        neg = sg[r] ^ np.uint8(v < zero)
        nr = -mag if neg else mag
        rv[r] = nr
        av[r] = v + nr


@numba.njit(cache=True, nogil=True)
def _decode_kernel(llr, row_ptr, col, shift, m_rows, z, n_dec, max_iter, alpha, beta, early_stop,
                   bits, iters, ok):
    n_cw = llr.shape[0]
    nnz = row_ptr[m_rows]
    dmax = 0
    for i in range(m_rows):
        d = row_ptr[i + 1] - row_ptr[i]
        if d > dmax:
            dmax = d
    R = np.empty(nnz * z, np.float32)
    app = np.empty(n_dec, np.float32)
    t = np.empty(dmax * z, np.float32)
    m1 = np.empty(z, np.float32)
    m2 = np.empty(z, np.float32)
    sg = np.empty(z, np.uint8)
    par = np.empty(z, np.uint8)
    inf = np.float32(np.inf)
    for w in range(n_cw):
        for k in range(n_dec):
            app[k] = llr[w, k]
        R[:] = 0.0
        done = False
        it = 0
        while it < max_iter:
            it += 1
            for i in range(m_rows):
                e0 = row_ptr[i]
                d = row_ptr[i + 1] - e0
                m1[:] = inf
                m2[:] = inf
                sg[:] = 0
                for k in range(d):
                    e = e0 + k
                    base = col[e] * z
                    s = shift[e]
                    ro = e * z
                    to = k * z
                    n1 = z - s
                    _pass1(app[base + s:base + z], R[ro:ro + n1], t[to:to + n1], m1, m2, sg, n1)
                    _pass1(app[base:base + s], R[ro + n1:ro + z], t[to + n1:to + z], m1[n1:], m2[n1:],
                           sg[n1:], s)
                for k in range(d):
                    e = e0 + k
                    base = col[e] * z
                    s = shift[e]
                    ro = e * z
                    to = k * z
                    n1 = z - s
                    _pass2(app[base + s:base + z], R[ro:ro + n1], t[to:to + n1], m1, m2, sg, n1, alpha, beta)
                    _pass2(app[base:base + s], R[ro + n1:ro + z], t[to + n1:to + z], m1[n1:], m2[n1:],
                           sg[n1:], s, alpha, beta)
            if early_stop and _syndrome_zero(app, row_ptr, col, shift, m_rows, z, par):
                done = True
                break
        if not early_stop:
            done = _syndrome_zero(app, row_ptr, col, shift, m_rows, z, par)
        for k in range(n_dec):
            bits[w, k] = 1 if app[k] < 0 else 0
        iters[w] = it
        ok[w] = done


# -------------------------------------------------------------------------------------------- wrappers
def rows_needed(llr: np.ndarray, code: LiftedCode) -> int:
    """Base rows the decoder must process: 4 core rows plus the extension rows whose degree-1 column has a
    non-zero LLR in at least one codeword of the batch (float32 ``(n_cw, >= kb+4 Zc)``)."""
    z = code.z
    n_blocks = min(llr.shape[-1] // z, code.n_cols)
    nz = np.flatnonzero(np.any(llr[..., : n_blocks * z].reshape(-1, n_blocks, z) != 0, axis=(0, 2)))
    last = int(nz[-1]) if nz.size else 0
    return code.rows_for_columns(last + 1)


def _prep(llr, code, m_rows):
    llr = np.asarray(llr, np.float32)
    llr2 = llr.reshape(1, -1) if llr.ndim == 1 else llr
    if llr2.ndim != 2:
        raise ValueError(f"LLRs must be (n_cw, n_bits), got shape {llr.shape}")
    if m_rows is None:
        m_rows = rows_needed(llr2, code)
    m_rows = int(m_rows)
    if not 4 <= m_rows <= code.m:
        raise ValueError(f"m_rows must be in 4..{code.m}, got {m_rows}")
    n_dec = (code.kb + m_rows) * code.z
    if llr2.shape[1] < n_dec:
        raise ValueError(f"need at least {n_dec} LLRs per codeword, got {llr2.shape[1]}")
    if not np.all(np.isfinite(llr2[:, :n_dec])):
        raise ValueError("LLRs must be finite")
    return np.ascontiguousarray(llr2[:, :n_dec]), m_rows, n_dec


def decode(llr, code: LiftedCode, max_iter: int = 10, alpha: float = ALPHA, beta: float = BETA,
           early_stop: bool = True, m_rows: int | None = None, threads: int = 1) -> DecodeResult:
    """Decode a batch of NR LDPC codewords (numba layered min-sum; releases the GIL).

    ``llr``: float32 ``(n_cw, n_bits)`` or ``(n_bits,)``, ``n_bits >= (kb + m_rows) Zc`` (normally the full
    ``n_cols Zc``). ``threads > 1`` splits the batch over a thread pool (``0``: ``os.cpu_count()``).
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    llr2, m_rows, n_dec = _prep(llr, code, m_rows)
    n_cw = llr2.shape[0]
    bits = np.empty((n_cw, n_dec), np.uint8)
    iters = np.empty(n_cw, np.int32)
    ok = np.empty(n_cw, np.bool_)
    args = (code.row_ptr, code.col, code.shift, m_rows, code.z, n_dec, int(max_iter), np.float32(alpha),
            np.float32(beta), bool(early_stop))
    threads = (os.cpu_count() or 1) if threads == 0 else int(threads)
    threads = max(1, min(threads, n_cw))
    if threads == 1:
        _decode_kernel(llr2, *args, bits, iters, ok)
    else:
        edges = np.linspace(0, n_cw, threads + 1).astype(int)
        with ThreadPoolExecutor(threads) as ex:
            futs = [ex.submit(_decode_kernel, llr2[a:b], *args, bits[a:b], iters[a:b], ok[a:b])
                    for a, b in zip(edges[:-1], edges[1:]) if b > a]
            for f in futs:
                f.result()
    if np.ndim(llr) == 1:
        return DecodeResult(bits[0], iters[:1], ok[:1], m_rows)
    return DecodeResult(bits, iters, ok, m_rows)


# ---------------------------------------------------------------------------------- numpy reference
def decode_numpy(llr, code: LiftedCode, max_iter: int = 10, alpha: float = ALPHA, beta: float = BETA,
                 early_stop: bool = True, m_rows: int | None = None) -> DecodeResult:
    """Numpy reference of :func:`decode`: the same layered schedule and float32 arithmetic, vectorised over
    the ``Zc`` checks of a layer with fancy indexing (slow: for tests on small codes)."""
    llr2, m_rows, n_dec = _prep(llr, code, m_rows)
    z = code.z
    a32, b32, zero = np.float32(alpha), np.float32(beta), np.float32(0)
    rp = code.row_ptr
    r = np.arange(z)
    idx = [code.col[e] * z + (r + code.shift[e]) % z for e in range(rp[m_rows])]
    n_cw = llr2.shape[0]
    bits = np.empty((n_cw, n_dec), np.uint8)
    iters = np.empty(n_cw, np.int32)
    ok = np.empty(n_cw, bool)

    def syn_ok(app):
        hard = (app < 0).astype(np.uint8)
        for i in range(m_rows):
            par = np.zeros(z, np.uint8)
            for e in range(rp[i], rp[i + 1]):
                par ^= hard[idx[e]]
            if par.any():
                return False, hard
        return True, hard

    for w in range(n_cw):
        app = llr2[w].copy()
        R = np.zeros((rp[m_rows], z), np.float32)
        done, it = False, 0
        while it < max_iter:
            it += 1
            for i in range(m_rows):
                es = range(rp[i], rp[i + 1])
                T = np.stack([app[idx[e]] - R[e] for e in es])          # (d, z) float32
                A = np.abs(T)
                order = np.argmin(A, axis=0)                             # first index of the minimum
                m1 = A[order, r]
                A2 = A.copy()
                A2[order, r] = np.inf
                m2 = A2.min(axis=0)
                m1 = np.maximum(a32 * m1 - b32, zero)
                m2 = np.maximum(a32 * m2 - b32, zero)
                neg = T < zero
                par = np.bitwise_xor.reduce(neg, axis=0)
                for k, e in enumerate(es):
                    mag = np.where(order == k, m2, m1)
                    nr = np.where(par ^ neg[k], -mag, mag).astype(np.float32)
                    R[e] = nr
                    app[idx[e]] = T[k] + nr
            if early_stop:
                done, hard = syn_ok(app)
                if done:
                    break
        if not early_stop:
            done, hard = syn_ok(app)
        elif not done:
            hard = (app < 0).astype(np.uint8)
        bits[w], iters[w], ok[w] = hard, it, done
    if np.ndim(llr) == 1:
        return DecodeResult(bits[0], iters[:1], ok[:1], m_rows)
    return DecodeResult(bits, iters, ok, m_rows)
