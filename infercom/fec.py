# SPDX-License-Identifier: GPL-3.0-or-later
"""Header channel code: K=7 rate-1/2 convolutional code (133, 171 octal), zero tail, soft-decision Viterbi.

Encoder: ``encode(bits)`` appends ``K-1 = 6`` zero tail bits and emits two coded bits per input bit
(generator 133 first, then 171), i.e. ``2*(n + 6)`` bits.  Decoder: ``viterbi(llr, n)`` takes LLRs
``L = log P(c=0)/P(c=1)`` of the coded bits (float32, any scale) and returns the maximum-likelihood ``n`` info
bits.  The numba kernel :func:`viterbi` is checked against the numpy reference :func:`viterbi_ref`.

Repetition: the header codeword is sent ``R`` times; the receiver adds the ``R`` LLR copies (soft combining,
:func:`combine_repetitions`) before one Viterbi pass.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["K", "G", "encode", "viterbi", "viterbi_ref", "coded_len", "combine_repetitions"]

K = 7
G = (0o133, 0o171)
_NSTATE = 1 << (K - 1)


def _parity(x: int) -> int:
    return bin(x).count("1") & 1


def _tables():
    """For state s (last K-1 input bits, newest in the MSB) and input u: next state and the two output bits."""
    nxt = np.zeros((_NSTATE, 2), dtype=np.int32)
    out = np.zeros((_NSTATE, 2, 2), dtype=np.int8)
    for s in range(_NSTATE):
        for u in range(2):
            reg = (u << (K - 1)) | s  # K bits: u is the newest (MSB)
            for g_i, g in enumerate(G):
                out[s, u, g_i] = _parity(reg & g)
            nxt[s, u] = reg >> 1
    return nxt, out


_NEXT, _OUT = _tables()


def coded_len(n_info: int) -> int:
    """Coded bits for ``n_info`` info bits: ``2*(n_info + K - 1)``."""
    return 2 * (int(n_info) + K - 1)


def encode(bits) -> np.ndarray:
    """Convolutionally encode 0/1 ``bits`` (zero-terminated); uint8 of length ``coded_len(len(bits))``."""
    b = np.asarray(bits)
    if b.ndim != 1 or (b.size and (b.min() < 0 or b.max() > 1)):
        raise ValueError("bits must be a 1-D array of 0/1")
    n = b.size + K - 1
    b = np.concatenate([b.astype(np.int64), np.zeros(K - 1, np.int64)])  # zero tail
    out = np.empty(2 * n, dtype=np.uint8)
    for i, g in enumerate(G):
        taps = np.array([(g >> (K - 1 - d)) & 1 for d in range(K)], dtype=np.int64)  # tap on u[t-d]
        out[i::2] = np.convolve(b, taps)[:n] & 1
    return out


def encode_ref(bits) -> np.ndarray:
    """State-machine reference of :func:`encode` (trellis tables, one bit at a time)."""
    b = np.asarray(bits)
    b = np.concatenate([b.astype(np.int64), np.zeros(K - 1, np.int64)])
    out = np.empty(2 * b.size, dtype=np.uint8)
    s = 0
    for i, u in enumerate(b.tolist()):
        out[2 * i] = _OUT[s, u, 0]
        out[2 * i + 1] = _OUT[s, u, 1]
        s = _NEXT[s, u]
    return out


@numba.njit(cache=True, nogil=True)
def _viterbi_kernel(llr, n_steps, nxt, out):
    ns = nxt.shape[0]
    inf = np.float32(1e30)
    metric = np.full(ns, -inf, dtype=np.float32)
    metric[0] = 0.0
    new = np.empty(ns, dtype=np.float32)
    prev_state = np.empty((n_steps, ns), dtype=np.int32)
    prev_bit = np.empty((n_steps, ns), dtype=np.int8)
    for t in range(n_steps):
        l0 = llr[2 * t]
        l1 = llr[2 * t + 1]
        for j in range(ns):
            new[j] = -inf
        for s in range(ns):
            m = metric[s]
            if m <= -inf:
                continue
            for u in range(2):
                # correlation metric: + L/2 for bit 0, - L/2 for bit 1
                bm = (l0 if out[s, u, 0] == 0 else -l0) + (l1 if out[s, u, 1] == 0 else -l1)
                j = nxt[s, u]
                v = m + np.float32(0.5) * bm
                if v > new[j]:
                    new[j] = v
                    prev_state[t, j] = s
                    prev_bit[t, j] = u
        for j in range(ns):
            metric[j] = new[j]
    # zero tail: end in state 0
    bits = np.empty(n_steps, dtype=np.uint8)
    s = 0
    for t in range(n_steps - 1, -1, -1):
        bits[t] = prev_bit[t, s]
        s = prev_state[t, s]
    return bits


def _check_llr(llr, n_info):
    lv = np.asarray(llr, dtype=np.float32)
    if lv.ndim != 1:
        raise ValueError("llr must be 1-D")
    if not isinstance(n_info, (int, np.integer)) or n_info < 0:
        raise ValueError(f"n_info must be a non-negative integer, got {n_info!r}")
    if lv.size != coded_len(n_info):
        raise ValueError(f"expected {coded_len(n_info)} LLRs for {n_info} info bits, got {lv.size}")
    if not np.all(np.isfinite(lv)):
        raise ValueError("llr contains NaN or inf")
    return np.ascontiguousarray(lv)


def viterbi(llr, n_info: int) -> np.ndarray:
    """Soft-decision Viterbi decoding (numba). ``llr``: ``coded_len(n_info)`` LLRs; returns uint8 info bits."""
    lv = _check_llr(llr, n_info)
    bits = _viterbi_kernel(lv, n_info + K - 1, _NEXT, _OUT)
    return bits[:n_info].copy()


def viterbi_ref(llr, n_info: int) -> np.ndarray:
    """Numpy reference Viterbi (vectorised over states), same result as :func:`viterbi`."""
    lv = _check_llr(llr, n_info).astype(np.float64)
    n_steps = n_info + K - 1
    sgn = 1.0 - 2.0 * _OUT.astype(np.float64)  # (S, 2, 2)
    metric = np.full(_NSTATE, -np.inf)
    metric[0] = 0.0
    back = []
    for t in range(n_steps):
        bm = 0.5 * (sgn[:, :, 0] * lv[2 * t] + sgn[:, :, 1] * lv[2 * t + 1])  # (S, 2)
        cand = metric[:, None] + bm
        new = np.full(_NSTATE, -np.inf)
        ps = np.zeros(_NSTATE, dtype=np.int64)
        pb = np.zeros(_NSTATE, dtype=np.int64)
        for s in range(_NSTATE):  # same tie-breaking order as the kernel: first strictly better wins
            for u in range(2):
                j = _NEXT[s, u]
                if cand[s, u] > new[j]:
                    new[j] = cand[s, u]
                    ps[j] = s
                    pb[j] = u
        metric = new
        back.append((ps, pb))
    bits = np.empty(n_steps, dtype=np.uint8)
    s = 0
    for t in range(n_steps - 1, -1, -1):
        ps, pb = back[t]
        bits[t] = pb[s]
        s = ps[s]
    return bits[:n_info]


def combine_repetitions(llr, n_coded: int) -> np.ndarray:
    """Sum ``R`` consecutive LLR copies of an ``n_coded``-bit codeword (soft combining); float32 (n_coded,)."""
    lv = np.asarray(llr, dtype=np.float32)
    if lv.ndim != 1 or n_coded <= 0 or lv.size % n_coded:
        raise ValueError(f"llr length {lv.size} is not a multiple of the codeword length {n_coded}")
    return lv.reshape(-1, n_coded).sum(axis=0, dtype=np.float32)
