# SPDX-License-Identifier: GPL-3.0-or-later
"""Keyed interleaver: a permutation of all payload symbols of an image, drawn from a cryptographic PRF.

``permutation(n, key)`` expands ``SHAKE-256(DOMAIN || len(key) || key || n)`` (lengths and ``n`` as 8-byte
little-endian integers) into ``n - 1`` 64-bit little-endian words ``r_1 .. r_{n-1}`` and runs the
Fisher–Yates shuffle on ``0 .. n-1``: for ``i = n-1 .. 1``, swap ``perm[i]`` with ``perm[r_i mod (i+1)]``
(the modulo bias, ``< n / 2**64``, is negligible). Same (key, n) -> same permutation; without the key the
permutation is unpredictable, so an eavesdropper cannot undo it.

Convention (docs/internals.md): ``tx = pre[perm]``; the receiver undoes it with ``pre[perm] = rx``.

Keys live in a :class:`Keyring` (``key_id`` 0..15 -> key bytes). ``key_id`` 0 is the fixed public key
:data:`PUBLIC_KEY`, which every keyring has: it spreads errors but gives no secrecy.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping

import numba
import numpy as np

from .limits import MAX_KEY_ID  # largest key id the header can carry

#: domain-separation string of the PRF
DOMAIN = b"gr-infercom/interleaver/v1"
#: the public default key (key_id 0); documented, so it provides no secrecy
PUBLIC_KEY = b"gr-infercom public interleaver key 0"


def prf_words(key: bytes, n: int, count: int) -> np.ndarray:
    """``count`` pseudo-random uint64 words from SHAKE-256 over (domain, key, n)."""
    h = hashlib.shake_256()
    h.update(DOMAIN)
    h.update(len(key).to_bytes(8, "little"))
    h.update(key)
    h.update(int(n).to_bytes(8, "little"))
    return np.frombuffer(h.digest(8 * count), dtype="<u8").astype(np.uint64, copy=False)


@numba.njit(cache=True, nogil=True)
def _fisher_yates_kernel(words, perm):
    n = perm.size
    for i in range(n):
        perm[i] = i
    for i in range(n - 1, 0, -1):
        j = np.int64(words[i - 1] % np.uint64(i + 1))
        t = perm[i]
        perm[i] = perm[j]
        perm[j] = t


def fisher_yates_numpy(words: np.ndarray, n: int) -> np.ndarray:
    """Pure-Python/numpy reference of the shuffle (slow; for tests)."""
    perm = np.arange(n, dtype=np.int64)
    w = [int(x) for x in words]
    for i in range(n - 1, 0, -1):
        j = w[i - 1] % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


@functools.lru_cache(maxsize=32)
def _permutation_cached(n: int, key: bytes) -> np.ndarray:
    perm = np.empty(n, dtype=np.int64)
    if n > 0:
        words = prf_words(key, n, max(n - 1, 0)) if n > 1 else np.zeros(0, np.uint64)
        _fisher_yates_kernel(words, perm)
    perm.setflags(write=False)
    return perm


def permutation(n: int, key: bytes = PUBLIC_KEY) -> np.ndarray:
    """The keyed permutation of ``0..n-1`` (int64, read-only, LRU-cached)."""
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"permutation length must be a non-negative integer, got {n!r}")
    if not isinstance(key, (bytes, bytearray)) or len(key) == 0:
        raise ValueError("interleaver key must be non-empty bytes")
    return _permutation_cached(int(n), bytes(key))


def interleave(pre: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """``tx = pre[perm]``."""
    if pre.shape[0] != perm.size:
        raise ValueError(f"length {pre.shape[0]} does not match permutation length {perm.size}")
    return pre[perm]


def deinterleave(rx: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Inverse of :func:`interleave`: ``pre[perm] = rx``."""
    if rx.shape[0] != perm.size:
        raise ValueError(f"length {rx.shape[0]} does not match permutation length {perm.size}")
    pre = np.empty_like(rx)
    pre[perm] = rx
    return pre


class Keyring:
    """``key_id`` (0..15) -> key bytes. Key 0 is always :data:`PUBLIC_KEY` and cannot be replaced."""

    def __init__(self, keys: Mapping[int, bytes] | None = None):
        self._keys: dict[int, bytes] = {0: PUBLIC_KEY}
        for kid, key in (keys or {}).items():
            self.add(kid, key)

    def add(self, key_id: int, key: bytes) -> None:
        if not isinstance(key_id, (int, np.integer)) or not 1 <= key_id <= MAX_KEY_ID:
            raise ValueError(f"key_id must be in 1..{MAX_KEY_ID} (0 is the public key), got {key_id!r}")
        if isinstance(key, str):
            key = bytes.fromhex(key)
        if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
            raise ValueError("a secret interleaver key must be at least 16 bytes")
        self._keys[int(key_id)] = bytes(key)

    def key(self, key_id: int) -> bytes:
        if not isinstance(key_id, (int, np.integer)) or not 0 <= key_id <= MAX_KEY_ID:
            raise ValueError(f"key_id must be in 0..{MAX_KEY_ID}, got {key_id!r}")
        try:
            return self._keys[int(key_id)]
        except KeyError:
            raise ValueError(f"no interleaver key for key_id {key_id} in this keyring") from None

    def __contains__(self, key_id: int) -> bool:
        return key_id in self._keys

    @classmethod
    def from_file(cls, path) -> "Keyring":
        """Read ``key_id hexkey`` lines (``#`` comments allowed)."""
        keys: dict[int, bytes] = {}
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                parts = line.split()
                if len(parts) != 2:
                    raise ValueError(f"{path}:{lineno}: expected 'key_id hexkey'")
                try:
                    keys[int(parts[0])] = bytes.fromhex(parts[1])
                except ValueError as exc:
                    raise ValueError(f"{path}:{lineno}: {exc}") from None
        return cls(keys)


#: the keyring used when none is given: only the public key
DEFAULT_KEYRING = Keyring()


def get_keyring(keyring: Keyring | Mapping[int, bytes] | None) -> Keyring:
    """Accept None (public key only), a :class:`Keyring`, or a plain ``{key_id: bytes}`` mapping."""
    if keyring is None:
        return DEFAULT_KEYRING
    if isinstance(keyring, Keyring):
        return keyring
    if isinstance(keyring, Mapping):
        return Keyring({k: v for k, v in keyring.items() if k != 0})
    raise ValueError(f"keyring must be a Keyring or a mapping, got {type(keyring).__name__}")
