# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-plane LLRs -> pixel values: MMSE estimates or hard decisions (numba + numpy reference).

* MMSE: ``v_hat = sum_{sent k} 2**k P(b_k = 1) + sum_{unsent k} 2**k / 2`` with
  ``P(b_k = 1) = 1 / (1 + exp(L_k))`` (``L = log P(b=0)/P(b=1)``). Unsent planes carry no information, so
  their bits are 1/2 in expectation; a value with all LLRs 0 (missing) is estimated as 127.5.
* Hard: ``b_k = 1`` where ``L_k < 0`` (ties go to 0); the unsent planes are replaced by the midpoint
  convention ``2**(8-m-1)`` (0 when all 8 planes are sent), i.e. the upper of the two central levels of
  the ``2**(8-m)`` possible values, so hard values are integers.

Both are clipped to [0, 255] and returned as float32. LLRs are ``(m, N)`` float32, MSB plane first.

* Posterior variance (:func:`posterior_var`): bits are independent under the posterior (one LLR each), so
  ``Var[v | y] = sum_{sent k} 4**k P_k (1 - P_k) + sum_{unsent k} 4**k / 4`` in grey levels squared, with
  ``P_k (1 - P_k) = e / (1 + e)**2``, ``e = exp(-|L_k|)`` (overflow-free). A value with all LLRs 0 gets the
  variance of a uniform value on 0..255, ``(256**2 - 1) / 12 = 5461.25``. It is the spread of the true value
  around the (unclipped) MMSE estimate; the MMSE sum never leaves [0, 255], so the clipping changes nothing.
"""

from __future__ import annotations

import numba
import numpy as np

from .planes import check_planes, plane_indices

MODES = ("mmse", "hard")


def _check_llr(llr: np.ndarray) -> np.ndarray:
    llr = np.ascontiguousarray(llr, dtype=np.float32)
    if llr.ndim != 2:
        raise ValueError(f"LLRs must be (planes, n_values), got shape {llr.shape}")
    check_planes(llr.shape[0])
    if np.any(np.isnan(llr)):
        raise ValueError("LLRs contain NaN")
    return llr


def unsent_offset(planes: int, mode: str) -> float:
    """Contribution of the ``8 - planes`` unsent LSB planes to a value: ``(2**(8-m) - 1)/2`` for MMSE,
    ``2**(8-m-1)`` (0 for m = 8) for hard decisions."""
    m = check_planes(planes)
    if mode == "mmse":
        return (2.0 ** (8 - m) - 1.0) / 2.0
    if mode == "hard":
        return 0.0 if m == 8 else float(2 ** (8 - m - 1))
    raise ValueError(f"unknown reconstruction mode {mode!r}; choose from {', '.join(MODES)}")


def mmse_values_numpy(llr: np.ndarray) -> np.ndarray:
    llr = _check_llr(llr)
    w = (2.0 ** plane_indices(llr.shape[0]))[:, None]
    p1 = 0.5 * (1.0 - np.tanh(0.5 * llr.astype(np.float64)))   # = 1 / (1 + exp(L)), overflow-free
    v = (w * p1).sum(axis=0) + unsent_offset(llr.shape[0], "mmse")
    return np.clip(v, 0.0, 255.0).astype(np.float32)


def unsent_var(planes: int) -> float:
    """Posterior variance contributed by the ``8 - planes`` unsent LSB planes: ``sum_{k < 8-m} 4**k / 4``
    (each an unknown fair bit), grey levels squared."""
    m = check_planes(planes)
    return (4.0 ** (8 - m) - 1.0) / 12.0


def posterior_var_numpy(llr: np.ndarray) -> np.ndarray:
    """Reference: float32 ``(N,)`` posterior variance of each value (grey levels squared) from LLRs ``(m, N)``."""
    llr = _check_llr(llr)
    w = (4.0 ** plane_indices(llr.shape[0]))[:, None]
    e = np.exp(-np.abs(llr.astype(np.float64)))
    return ((w * (e / (1.0 + e) ** 2)).sum(axis=0) + unsent_var(llr.shape[0])).astype(np.float32)


def hard_values_numpy(llr: np.ndarray) -> np.ndarray:
    llr = _check_llr(llr)
    w = (2.0 ** plane_indices(llr.shape[0]))[:, None]
    v = (w * (llr < 0)).sum(axis=0) + unsent_offset(llr.shape[0], "hard")
    return np.clip(v, 0.0, 255.0).astype(np.float32)


@numba.njit(cache=True, nogil=True)
def _mmse_kernel(llr, offset, out):
    """Plane-major loops (contiguous, SIMD-friendly); ``2**k / (1 + exp(L))``, exp overflow -> 0."""
    m, n = llr.shape
    for i in range(n):
        out[i] = offset
    for j in range(m):
        w = np.float32(1 << (7 - j))
        for i in range(n):
            out[i] += w / (np.float32(1.0) + np.exp(llr[j, i]))
    for i in range(n):
        out[i] = min(max(out[i], np.float32(0.0)), np.float32(255.0))


@numba.njit(cache=True, nogil=True)
def _hard_kernel(llr, offset, out):
    m, n = llr.shape
    for i in range(n):
        out[i] = offset
    for j in range(m):
        w = np.float32(1 << (7 - j))
        for i in range(n):
            if llr[j, i] < 0:
                out[i] += w
    for i in range(n):
        out[i] = min(max(out[i], np.float32(0.0)), np.float32(255.0))


@numba.njit(cache=True, nogil=True)
def _var_kernel(llr, offset, out):
    """Plane-major loops as :func:`_mmse_kernel`; ``4**k e / (1 + e)**2`` with ``e = exp(-|L|)``."""
    m, n = llr.shape
    for i in range(n):
        out[i] = offset
    for j in range(m):
        w = np.float32(1 << (2 * (7 - j)))
        for i in range(n):
            e = np.exp(-abs(llr[j, i]))
            d = np.float32(1.0) + e
            out[i] += w * e / (d * d)


def posterior_var(llr: np.ndarray) -> np.ndarray:
    """float32 ``(N,)`` posterior variance of each value, grey levels squared, from LLRs ``(m, N)`` (numba;
    reference :func:`posterior_var_numpy`). Pairs with the MMSE values of :func:`llr_to_values`."""
    llr = _check_llr(llr)
    out = np.empty(llr.shape[1], np.float32)
    _var_kernel(llr, np.float32(unsent_var(llr.shape[0])), out)
    return out


def llr_to_values(llr: np.ndarray, mode: str = "mmse") -> np.ndarray:
    """float32 ``(N,)`` values in [0, 255] from LLRs ``(m, N)`` (numba)."""
    llr = _check_llr(llr)
    off = np.float32(unsent_offset(llr.shape[0], mode))
    out = np.empty(llr.shape[1], np.float32)
    (_mmse_kernel if mode == "mmse" else _hard_kernel)(llr, off, out)
    return out
