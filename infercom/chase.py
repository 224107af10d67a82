# SPDX-License-Identifier: GPL-3.0-or-later
"""Chase combining of retransmitted attempts: maximum-ratio combining of equalised soft symbols.

For attempts ``a`` of the *same* transmitted symbols, ``y_a = x + n_a`` with ``E|n_a|^2 = nv_a``, MRC gives
``nv = 1 / sum_a (1/nv_a)`` and ``y = nv * sum_a (y_a / nv_a)``, which has the same LLRs as adding the
attempts' LLRs (the LLR is linear in ``y / nv``). Missing symbols (``y = 0``, ``nv = inf``) contribute
nothing; a symbol missing in every attempt stays ``y = 0``, ``nv = inf``. Two equal-SNR attempts give a
3.01 dB gain.
"""

from __future__ import annotations

import numba
import numpy as np

from .qpsk import check_soft


def combine_numpy(ys, noise_vars) -> tuple[np.ndarray, np.ndarray]:
    """Reference MRC of ``A`` attempts: ys ``(A, n)``, noise_vars ``(A, n)`` or ``(A,)`` -> (y, nv)."""
    ys = np.asarray(ys, dtype=np.complex128)
    nvs = np.asarray(noise_vars, dtype=np.float64)
    if nvs.ndim == 1:
        nvs = nvs[:, None]
    inv = 1.0 / nvs
    s_inv = np.broadcast_to(inv, ys.shape).sum(axis=0)
    s_y = (ys * inv).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        nv = 1.0 / s_inv
        y = np.where(s_inv > 0, s_y / np.where(s_inv > 0, s_inv, 1.0), 0.0)
    return y.astype(np.complex64), nv.astype(np.float32)


@numba.njit(cache=True, nogil=True)
def _accumulate_kernel(y, nv, acc_y, acc_w):
    """acc_y += y / nv; acc_w += 1 / nv (nv of size 1 broadcasts)."""
    scalar = nv.size == 1
    for t in range(y.size):
        v = nv[0] if scalar else nv[t]
        w = np.float32(1.0) / v
        acc_w[t] += w
        acc_y[t] += y[t] * w


@numba.njit(cache=True, nogil=True)
def _finish_kernel(acc_y, acc_w, y, nv):
    for t in range(acc_y.size):
        w = acc_w[t]
        if w > 0:
            nv[t] = np.float32(1.0) / w
            y[t] = acc_y[t] / w
        else:
            nv[t] = np.inf
            y[t] = 0


class ChaseCombiner:
    """Incremental MRC of attempts of ``n`` symbols: ``add(y, nv)`` per attempt, ``result()`` any time."""

    def __init__(self, n: int):
        if n < 0:
            raise ValueError(f"symbol count must be >= 0, got {n}")
        self.n = int(n)
        self.attempts = 0
        self._acc_y = np.zeros(self.n, np.complex64)
        self._acc_w = np.zeros(self.n, np.float32)

    def add(self, y: np.ndarray, noise_var) -> None:
        y, nv = check_soft(y, noise_var, self.n)
        _accumulate_kernel(y, nv, self._acc_y, self._acc_w)
        self.attempts += 1

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(y complex64 (n,), noise_var float32 (n,)) of all attempts added so far."""
        y = np.empty(self.n, np.complex64)
        nv = np.empty(self.n, np.float32)
        _finish_kernel(self._acc_y, self._acc_w, y, nv)
        return y, nv


def combine(ys, noise_vars) -> tuple[np.ndarray, np.ndarray]:
    """MRC of a sequence of attempts ``ys[a]`` with noise variances ``noise_vars[a]`` (scalars or per
    symbol) -> (y complex64, noise_var float32). Fast (numba); see :func:`combine_numpy`."""
    ys = list(ys)
    nvs = list(noise_vars)
    if not ys or len(ys) != len(nvs):
        raise ValueError("need at least one attempt and one noise variance per attempt")
    comb = ChaseCombiner(np.asarray(ys[0]).size)
    for y, nv in zip(ys, nvs):
        comb.add(y, nv)
    return comb.result()


def combine_llr(llrs) -> np.ndarray:
    """Chase combining in the LLR domain: the sum of the attempts' LLR arrays (float32)."""
    llrs = [np.asarray(x, dtype=np.float32) for x in llrs]
    if not llrs:
        raise ValueError("need at least one attempt")
    out = llrs[0].copy()
    for x in llrs[1:]:
        if x.shape != out.shape:
            raise ValueError(f"LLR shapes differ: {x.shape} vs {out.shape}")
        out += x
    return out
