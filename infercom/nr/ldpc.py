# SPDX-License-Identifier: GPL-3.0-or-later
"""NR LDPC encoder (TS 38.212 §5.3.2): systematic, for every base graph and lifting size.

The parity bits come from the structure of ``H`` (checked by :func:`infercom.nr.basegraph.lifted`), not from a
generic solve, so every lifting size works (BG2 with ``Zc <= 64`` included):

* core (rows 0..3, parity blocks ``p_0 .. p_3`` at columns ``kb .. kb+3``): with ``lam_i`` the sum over the
  systematic blocks of row ``i`` of ``P_{s} c_j`` (``(P_s x)[r] = x[(r + s) mod Zc]``), summing the four rows
  cancels ``p_1 .. p_3`` (shift-0 double diagonal) and two of the three ``p_0`` terms, so
  ``P_s p_0 = lam_0 + lam_1 + lam_2 + lam_3``; then ``p_1 = lam_0 + [P p_0]``,
  ``p_2 = lam_1 + p_1 + [P p_0]``, ``p_3 = lam_2 + p_2 + [P p_0]`` (bracketed terms where the row has one);
* extension rows ``i >= 4``: ``p_{kb+i}`` (identity in its own column) = the sum of the row's other blocks.

Bits are uint8 0/1. ``c``: ``(n_cw, K)`` code blocks (fillers as 0), ``K = kb Zc``. :func:`encode_full`
returns the whole codeword ``x`` (``n_cols Zc`` bits, ``H x = 0``); :func:`encode` the §5.3.2 output
``d = x[2 Zc:]`` (``N`` bits: the first ``2 Zc`` systematic bits are punctured). ``m_rows`` limits the
extension parity to the first rows (a transmitter need only compute the parity bits that rate matching reads).

:func:`encode_xors` is the exact XOR count of this encoder from the matrices (the numpy reference
:func:`encode_full_numpy` counts its XORs as it goes, which the tests compare).
"""

from __future__ import annotations

import numba
import numpy as np

from .basegraph import LiftedCode

__all__ = ["encode_full", "encode", "encode_full_numpy", "encode_xors", "syndrome_ok"]


# ------------------------------------------------------------------------------------------ numba kernel
@numba.njit(cache=True, nogil=True)
def _rot_xor(dst, d0, src, s0, s, z):
    """``dst[d0 + r] ^= src[s0 + (r + s) mod z]`` for r = 0..z-1 (uint8)."""
    n1 = z - s
    for r in range(n1):
        dst[d0 + r] ^= src[s0 + s + r]
    for r in range(n1, z):
        dst[d0 + r] ^= src[s0 + s + r - z]


@numba.njit(cache=True, nogil=True)
def _encode_kernel(c, row_ptr, col, shift, kb, m_rows, z, su, p0r0, p0r1, p0r2, out):
    n_cw = c.shape[0]
    K = kb * z
    lam = np.zeros(4 * z, np.uint8)
    p0r = (p0r0, p0r1, p0r2)
    for w in range(n_cw):
        x = out[w]
        for k in range(K):
            x[k] = c[w, k]
        for k in range(K, x.size):
            x[k] = 0
        lam[:] = 0
        for i in range(4):
            for e in range(row_ptr[i], row_ptr[i + 1]):
                j = col[e]
                if j < kb:
                    _rot_xor(lam, i * z, x, j * z, shift[e], z)
        b0 = kb * z
        for r in range(z):
            v = lam[r] ^ lam[z + r] ^ lam[2 * z + r] ^ lam[3 * z + r]
            t = r + su
            if t >= z:
                t -= z
            x[b0 + t] = v
        for q in range(3):
            dst = (kb + 1 + q) * z
            for r in range(z):
                x[dst + r] = lam[q * z + r]
            if q >= 1:
                src = (kb + q) * z
                for r in range(z):
                    x[dst + r] ^= x[src + r]
            a = p0r[q]
            if a >= 0:
                _rot_xor(x, dst, x, b0, a, z)
        for i in range(4, m_rows):
            dst = (kb + i) * z
            for e in range(row_ptr[i], row_ptr[i + 1]):
                j = col[e]
                if j != kb + i:
                    _rot_xor(x, dst, x, j * z, shift[e], z)


def _check_c(c, code: LiftedCode) -> np.ndarray:
    c = np.asarray(c)
    c2 = c.reshape(1, -1) if c.ndim == 1 else c
    if c2.ndim != 2 or c2.shape[1] != code.K:
        raise ValueError(f"expected code blocks of K={code.K} bits, got shape {c.shape}")
    c2 = np.ascontiguousarray(c2, dtype=np.uint8)
    if c2.size and c2.max() > 1:
        raise ValueError("bits must be 0 or 1")
    return c2


def encode_full(c, code: LiftedCode, m_rows: int | None = None) -> np.ndarray:
    """Systematic codewords ``x`` uint8 ``(n_cw, (kb + m_rows) Zc)`` with ``H x = 0`` (numba).

    ``c``: ``(n_cw, K)`` or ``(K,)`` bits; ``m_rows`` (4..m, default all) base rows of parity computed.
    """
    c2 = _check_c(c, code)
    m_rows = code.m if m_rows is None else int(m_rows)
    if not 4 <= m_rows <= code.m:
        raise ValueError(f"m_rows must be in 4..{code.m}, got {m_rows}")
    out = np.empty((c2.shape[0], (code.kb + m_rows) * code.z), np.uint8)
    p = code.core_p0_row
    _encode_kernel(c2, code.row_ptr, code.col, code.shift, code.kb, m_rows, code.z, code.core_p0_shift,
                   p[0], p[1], p[2], out)
    return out[0] if np.ndim(c) == 1 else out


def encode(c, code: LiftedCode, m_rows: int | None = None) -> np.ndarray:
    """§5.3.2 encoder output ``d`` = codeword without its first ``2 Zc`` (punctured) bits: ``N`` bits per row
    (fewer when ``m_rows`` < m)."""
    x = encode_full(c, code, m_rows)
    return x[..., 2 * code.z:].copy()


# ----------------------------------------------------------------------------------- numpy reference
def encode_full_numpy(c, code: LiftedCode, m_rows: int | None = None) -> tuple[np.ndarray, int]:
    """Numpy reference of :func:`encode_full` for one block ``c`` (K,): ``(x, xors)``, ``xors`` counting every
    bit XOR performed (the first term of each sum is a copy, not an XOR)."""
    z, kb = code.z, code.kb
    m_rows = code.m if m_rows is None else int(m_rows)
    c = np.asarray(c, np.uint8).reshape(-1)
    x = np.zeros((kb + m_rows) * z, np.uint8)
    x[: kb * z] = c
    blk = lambda j: x[j * z:(j + 1) * z]  # noqa: E731
    xors = 0

    def acc_sum(terms):
        nonlocal xors
        tot = terms[0].copy()
        for t in terms[1:]:
            tot ^= t
            xors += z
        return tot

    rp, col, sh = code.row_ptr, code.col, code.shift
    lam = []
    for i in range(4):
        terms = [np.roll(blk(col[e]), -sh[e]) for e in range(rp[i], rp[i + 1]) if col[e] < kb]
        lam.append(acc_sum(terms) if terms else np.zeros(z, np.uint8))
    x[kb * z:(kb + 1) * z] = np.roll(acc_sum(lam), code.core_p0_shift)
    for q in range(3):
        terms = [lam[q]]
        if q >= 1:
            terms.append(blk(kb + q).copy())
        if code.core_p0_row[q] >= 0:
            terms.append(np.roll(blk(kb), -code.core_p0_row[q]))
        x[(kb + 1 + q) * z:(kb + 2 + q) * z] = acc_sum(terms)
    for i in range(4, m_rows):
        terms = [np.roll(blk(col[e]), -sh[e]) for e in range(rp[i], rp[i + 1]) if col[e] != kb + i]
        x[(kb + i) * z:(kb + i + 1) * z] = acc_sum(terms)
    return x, xors


def encode_xors(code: LiftedCode, m_rows: int | None = None) -> int:
    """Exact bit-XOR count of encoding one code block with this encoder (cyclic shifts are free re-indexing):

    ``Zc * [ sum_{i<4} (s_i - 1) + 3 + sum_{q<3} (t_q - 1) + sum_{4<=i<m_rows} (deg_i - 2) ]`` with ``s_i`` the
    systematic blocks of core row ``i``, ``t_q`` the terms of ``p_{q+1}`` (``lam_q``, ``p_q`` for q >= 1, and
    ``p_0`` where row q has it) and ``deg_i`` the blocks of extension row ``i``."""
    z, kb = code.z, code.kb
    m_rows = code.m if m_rows is None else int(m_rows)
    rp, col = code.row_ptr, code.col
    n = 0
    for i in range(4):
        s_i = int(np.count_nonzero(col[rp[i]:rp[i + 1]] < kb))
        n += max(s_i - 1, 0)
    n += 3
    for q in range(3):
        n += (1 if q >= 1 else 0) + (1 if code.core_p0_row[q] >= 0 else 0)
    for i in range(4, m_rows):
        n += int(rp[i + 1] - rp[i]) - 2
    return n * z


def syndrome_ok(x, code: LiftedCode, m_rows: int | None = None) -> np.ndarray | bool:
    """True where ``H x = 0`` (first ``m_rows`` base rows) for codeword(s) ``x`` (numpy, vectorised over rows)."""
    x = np.asarray(x, np.uint8)
    x2 = x.reshape(1, -1) if x.ndim == 1 else x
    z = code.z
    m_rows = code.m if m_rows is None else int(m_rows)
    r = np.arange(z)
    ok = np.ones(x2.shape[0], bool)
    for i in range(m_rows):
        s = np.zeros((x2.shape[0], z), np.uint8)
        for e in range(code.row_ptr[i], code.row_ptr[i + 1]):
            s ^= x2[:, code.col[e] * z + (r + code.shift[e]) % z]
        ok &= ~s.any(axis=1)
    return ok if x.ndim == 2 else bool(ok[0])
