# SPDX-License-Identifier: GPL-3.0-or-later
"""Gray QPSK with per-plane amplitude: mapper, exact LLRs, hard decisions.

Mapping (docs/internals.md): ``x = a_k * ((1 - 2 b_I) + 1j (1 - 2 b_Q)) / sqrt(2)`` with ``a_k = sqrt(p_k)``.
For ``y = x + n``, ``n ~ CN(0, noise_var)`` (``noise_var/2`` per real dimension) the exact bit LLRs are linear:
``L_I = log P(b_I=0)/P(b_I=1) = 2 sqrt(2) a_k Re(y) / noise_var`` and ``L_Q`` likewise with ``Im(y)``.

The hot paths are numba kernels fused with the (optional) interleaver permutation, each with a numpy
reference (``*_numpy``) that the tests compare against:

* :func:`map_values` — uint8 values -> power-scaled (and interleaved, ``tx = pre[perm]``) symbols;
* :func:`llr_values` — soft symbols + noise variance -> per-plane LLRs ``(m, N)`` (de-interleaving included).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .limits import MAX_PLANES
from .planes import planes_to_pairs, sym_per_plane, values_to_planes

INV_SQRT2 = 1.0 / math.sqrt(2.0)
LLR_SCALE = 2.0 * math.sqrt(2.0)


# --------------------------------------------------------------------------------------- numpy references
def modulate(b_i: np.ndarray, b_q: np.ndarray, amp) -> np.ndarray:
    """Gray QPSK of bit arrays (any shape) with amplitude ``amp`` (broadcast), complex64."""
    a = np.asarray(amp, dtype=np.float32) * np.float32(INV_SQRT2)
    re = a * (1 - 2 * np.asarray(b_i, dtype=np.float32))
    im = a * (1 - 2 * np.asarray(b_q, dtype=np.float32))
    return (re + 1j * im).astype(np.complex64)


def bit_llrs(y: np.ndarray, noise_var, amp) -> tuple[np.ndarray, np.ndarray]:
    """Exact Gray-QPSK LLRs ``(L_I, L_Q)`` (float32) of symbols ``y`` with amplitude ``amp``."""
    c = LLR_SCALE * np.asarray(amp, dtype=np.float64) / np.asarray(noise_var, dtype=np.float64)
    y = np.asarray(y)
    return (c * y.real).astype(np.float32), (c * y.imag).astype(np.float32)


def hard_bits(llr: np.ndarray) -> np.ndarray:
    """Hard decisions from LLRs: bit 1 where ``L < 0``, 0 otherwise (ties, L = 0, go to 0). uint8."""
    return (np.asarray(llr) < 0).astype(np.uint8)


def map_values_numpy(values: np.ndarray, amps: np.ndarray, perm: np.ndarray | None = None) -> np.ndarray:
    """Reference mapper: values -> plane-major symbols (MSB plane first), then ``tx = pre[perm]``."""
    amps = np.asarray(amps, dtype=np.float32)
    b_i, b_q = planes_to_pairs(values_to_planes(values, amps.size))
    pre = modulate(b_i, b_q, amps[:, None]).reshape(-1)
    return pre if perm is None else pre[perm]


def llr_values_numpy(y, noise_var, amps, n_values: int, perm: np.ndarray | None = None) -> np.ndarray:
    """Reference demapper: ``pre[perm] = y``; per-plane LLRs float32 ``(m, n_values)``, MSB plane first."""
    amps = np.asarray(amps, dtype=np.float64)
    m, s = amps.size, sym_per_plane(n_values)
    y = np.asarray(y, dtype=np.complex64)
    nv = np.broadcast_to(np.asarray(noise_var, dtype=np.float32), y.shape)
    if perm is not None:
        y_pre = np.empty_like(y)
        y_pre[perm] = y
        nv_pre = np.empty(y.shape, np.float32)
        nv_pre[perm] = nv
        y, nv = y_pre, nv_pre
    l_i, l_q = bit_llrs(y.reshape(m, s), nv.reshape(m, s), amps[:, None])
    out = np.empty((m, 2 * s), np.float32)
    out[:, 0::2] = l_i
    out[:, 1::2] = l_q
    return out[:, :n_values]


# ------------------------------------------------------------------------------------------ numba kernels
@numba.njit(cache=True, nogil=True)
def _map_kernel(values, amps, out):
    n_val = values.size
    m = amps.size
    s_per = (n_val + 1) // 2
    for j in range(m):
        k = 7 - j
        a = np.float32(amps[j] * INV_SQRT2)
        base = j * s_per
        for i in range(s_per):
            bi = (values[2 * i] >> k) & 1
            bq = 0
            if 2 * i + 1 < n_val:
                bq = (values[2 * i + 1] >> k) & 1
            out[base + i] = complex(a * (1 - 2 * np.float32(bi)), a * (1 - 2 * np.float32(bq)))


@numba.njit(cache=True, nogil=True)
def _map_perm_kernel(values, amps, perm, out):
    n_val = values.size
    s_per = (n_val + 1) // 2
    m = amps.size
    a_tab = np.empty(m, np.float32)
    for j in range(m):
        a_tab[j] = amps[j] * INV_SQRT2
    for t in range(perm.size):
        s = perm[t]
        j = s // s_per
        i = s - j * s_per
        k = 7 - j
        a = a_tab[j]
        bi = (values[2 * i] >> k) & 1
        bq = 0
        if 2 * i + 1 < n_val:
            bq = (values[2 * i + 1] >> k) & 1
        out[t] = complex(a * (1 - 2 * np.float32(bi)), a * (1 - 2 * np.float32(bq)))


@numba.njit(cache=True, nogil=True)
def _llr_kernel(y, nv, amps, n_val, out):
    m = amps.size
    s_per = (n_val + 1) // 2
    scalar_nv = nv.size == 1
    for j in range(m):
        c0 = LLR_SCALE * amps[j]
        for i in range(s_per):
            t = j * s_per + i
            v = nv[0] if scalar_nv else nv[t]
            c = np.float32(c0 / v)
            out[j, 2 * i] = c * y[t].real
            if 2 * i + 1 < n_val:
                out[j, 2 * i + 1] = c * y[t].imag


@numba.njit(cache=True, nogil=True)
def _llr_perm_kernel(y, nv, amps, n_val, perm, out):
    m = amps.size
    s_per = (n_val + 1) // 2
    scalar_nv = nv.size == 1
    c_tab = np.empty(m, np.float64)
    for j in range(m):
        c_tab[j] = LLR_SCALE * amps[j]
    for t in range(perm.size):
        s = perm[t]
        j = s // s_per
        i = s - j * s_per
        v = nv[0] if scalar_nv else nv[t]
        c = np.float32(c_tab[j] / v)
        out[j, 2 * i] = c * y[t].real
        if 2 * i + 1 < n_val:
            out[j, 2 * i + 1] = c * y[t].imag


# ----------------------------------------------------------------------------------------------- wrappers
def map_values(values: np.ndarray, amps: np.ndarray, perm: np.ndarray | None = None) -> np.ndarray:
    """Fast mapper (numba): uint8 values ``(N,)`` -> complex64 symbols ``(m * ceil(N/2),)``.

    ``amps``: per-plane amplitudes ``sqrt(p_k)``, MSB plane first (``m = len(amps)`` planes sent).
    ``perm``: optional interleaver permutation (``tx = pre[perm]``).
    """
    v = np.ascontiguousarray(values)
    if v.dtype != np.uint8 or v.ndim != 1:
        raise ValueError(f"values must be a 1-D uint8 array, got {v.dtype} with shape {v.shape}")
    a = np.ascontiguousarray(amps, dtype=np.float32)
    if not 1 <= a.size <= MAX_PLANES:
        raise ValueError(f"need 1..{MAX_PLANES} plane amplitudes, got {a.size}")
    n = a.size * sym_per_plane(v.size)
    out = np.empty(n, np.complex64)
    if perm is None:
        _map_kernel(v, a, out)
    else:
        if perm.size != n:
            raise ValueError(f"permutation length {perm.size} != number of symbols {n}")
        _map_perm_kernel(v, a, np.ascontiguousarray(perm, dtype=np.int64), out)
    return out


def check_soft(y: np.ndarray, noise_var, n_symbols: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate soft symbols and noise variance; return (complex64 y, float32 nv of size 1 or len(y)).

    Raises ValueError on NaN/inf soft values, NaN or non-positive noise variance (``inf`` is allowed: it
    marks a missing symbol, whose LLRs are exactly 0), or a length mismatch.
    """
    y = np.ascontiguousarray(y, dtype=np.complex64).reshape(-1)
    if n_symbols is not None and y.size != n_symbols:
        raise ValueError(f"expected {n_symbols} soft symbols, got {y.size}")
    if not np.all(np.isfinite(y)):
        raise ValueError("soft symbols contain NaN or inf (mark missing symbols with y = 0, noise_var = inf)")
    nv = np.ascontiguousarray(noise_var, dtype=np.float32).reshape(-1)
    if nv.size not in (1, y.size):
        raise ValueError(f"noise_var must be a scalar or have {y.size} entries, got {nv.size}")
    if np.any(np.isnan(nv)) or np.any(nv <= 0):
        raise ValueError("noise_var must be > 0 (inf marks a missing symbol); got NaN or a value <= 0")
    return y, nv


def llr_values(y, noise_var, amps, n_values: int, perm: np.ndarray | None = None) -> np.ndarray:
    """Fast demapper (numba): soft symbols -> float32 LLRs ``(m, n_values)``, MSB plane first.

    ``noise_var``: scalar or per-symbol (complex, both dimensions). ``perm``: the interleaver permutation the
    symbols were sent with (de-interleaving is fused in).
    """
    a = np.ascontiguousarray(amps, dtype=np.float64)
    n = a.size * sym_per_plane(n_values)
    y, nv = check_soft(y, noise_var, n)
    out = np.empty((a.size, int(n_values)), np.float32)
    if perm is None:
        _llr_kernel(y, nv, a, int(n_values), out)
    else:
        if perm.size != n:
            raise ValueError(f"permutation length {perm.size} != number of symbols {n}")
        _llr_perm_kernel(y, nv, a, int(n_values), np.ascontiguousarray(perm, dtype=np.int64), out)
    return out
