# SPDX-License-Identifier: GPL-3.0-or-later
"""Values <-> bit planes <-> QPSK bit pairs (numpy; the fused numba kernels live in :mod:`infercom.qpsk`).

Plane ``k`` is bit ``k`` of a uint8 value (k = 0 the LSB, flipping it costs ``4**k``). The top ``m`` planes
``k = 7 .. 8-m`` are sent, always stored MSB plane first (row ``j`` holds plane ``k = 7 - j``).
A QPSK symbol carries two bits *of the same plane*: symbol ``i`` of plane row ``j`` has I-bit = bit k of
``v[2i]`` and Q-bit = bit k of ``v[2i+1]`` (``v`` padded with one 0 when its length is odd). The payload
before interleaving is plane-major: symbol index ``s = j * S + i`` with ``S = ceil(N / 2)``.
"""

from __future__ import annotations

import numpy as np

from .limits import MAX_PLANES


def check_planes(planes: int) -> int:
    if not isinstance(planes, (int, np.integer)) or not 1 <= planes <= MAX_PLANES:
        raise ValueError(f"planes must be an integer in 1..{MAX_PLANES}, got {planes!r}")
    return int(planes)


def sym_per_plane(n_values: int) -> int:
    """QPSK symbols per plane for ``n_values`` values: ``ceil(n_values / 2)``."""
    return (int(n_values) + 1) // 2


def plane_indices(planes: int) -> np.ndarray:
    """Bit index ``k`` of each sent plane row, MSB first: ``[7, 6, ..., 8-planes]``."""
    return np.arange(7, 7 - check_planes(planes), -1)


def values_to_planes(values: np.ndarray, planes: int = 8) -> np.ndarray:
    """uint8 ``(N,)`` values -> uint8 ``(planes, N)`` bits, MSB plane first."""
    v = np.asarray(values)
    if v.dtype != np.uint8 or v.ndim != 1:
        raise ValueError(f"values must be a 1-D uint8 array, got {v.dtype} with shape {v.shape}")
    k = plane_indices(planes).astype(np.uint8)
    return ((v[None, :] >> k[:, None]) & 1).astype(np.uint8)


def planes_to_values(bits: np.ndarray) -> np.ndarray:
    """uint8 ``(m, N)`` bits (MSB first) -> uint8 values; unsent planes are 0."""
    b = np.asarray(bits)
    m = check_planes(b.shape[0])
    w = (1 << plane_indices(m)).astype(np.int64)
    return (b.astype(np.int64) * w[:, None]).sum(axis=0).astype(np.uint8)


def planes_to_pairs(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(m, N)`` bits -> (I bits, Q bits), each ``(m, ceil(N/2))``; odd N padded with a 0 bit."""
    b = np.asarray(bits, dtype=np.uint8)
    m, n = b.shape
    if n % 2:
        b = np.concatenate([b, np.zeros((m, 1), np.uint8)], axis=1)
    return b[:, 0::2], b[:, 1::2]


def pairs_to_planes(b_i: np.ndarray, b_q: np.ndarray, n_values: int) -> np.ndarray:
    """Inverse of :func:`planes_to_pairs` (drops the padding bit)."""
    m, s = b_i.shape
    out = np.empty((m, 2 * s), dtype=np.asarray(b_i).dtype)
    out[:, 0::2] = b_i
    out[:, 1::2] = b_q
    return out[:, :n_values]
