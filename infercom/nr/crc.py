# SPDX-License-Identifier: GPL-3.0-or-later
"""CRCs of TS 38.212 §5.1: CRC24A (transport block), CRC24B (code block), CRC16 (small transport blocks).

Generator polynomials (§5.1)::

    gCRC24A(D) = D^24 + D^23 + D^18 + D^17 + D^14 + D^11 + D^10 + D^7 + D^6 + D^5 + D^4 + D^3 + D + 1
    gCRC24B(D) = D^24 + D^23 + D^6 + D^5 + D + 1
    gCRC16(D)  = D^16 + D^12 + D^5 + 1

The parity bits ``p_0 .. p_{L-1}`` make ``a_0 D^{A+L-1} + ... + a_{A-1} D^L + p_0 D^{L-1} + ... + p_{L-1}``
divisible by ``g``: an MSB-first CRC with a zero initial register and no final XOR; ``p_0`` (first parity bit
sent) is the remainder's most significant bit. Because the register starts at zero, leading zero bits do not
change the CRC, so a bit array of any length is packed into bytes after left-padding it with zeros.

Bits are uint8 0/1 arrays (one bit per element, transmission order). The fast path is a byte-wise table
kernel (numba) over packed bytes, batched over rows; :func:`crc_numpy` is an independent numpy reference
(the remainder as the XOR of the remainders of ``D^k`` of the set bits).
"""

from __future__ import annotations

import functools

import numba
import numpy as np

__all__ = [
    "POLYS", "crc", "crc_bits", "crc_numpy", "attach", "check", "pack_bits", "lfsr_xors_per_bit",
]

#: name -> (degree L, polynomial without the D^L term, as an int whose bit k is the coefficient of D^k)
POLYS: dict[str, tuple[int, int]] = {
    "24A": (24, 0x864CFB),
    "24B": (24, 0x800063),
    "16": (16, 0x1021),
}


def _poly(name: str) -> tuple[int, int]:
    try:
        return POLYS[name]
    except KeyError:
        raise ValueError(f"unknown CRC {name!r}; one of {sorted(POLYS)}") from None


@functools.lru_cache(maxsize=None)
def _table(name: str) -> np.ndarray:
    """Byte table: remainder of ``b(D) * D^L`` for every byte ``b`` (MSB first), uint32 (256,)."""
    L, g = _poly(name)
    mask = (1 << L) - 1
    t = np.zeros(256, np.uint32)
    for b in range(256):
        reg = b << (L - 8)
        for _ in range(8):
            reg = ((reg << 1) ^ g) if reg & (1 << (L - 1)) else (reg << 1)
            reg &= mask
        t[b] = reg
    t.setflags(write=False)
    return t


def _as_bits(bits) -> np.ndarray:
    b = np.asarray(bits)
    if b.ndim not in (1, 2):
        raise ValueError(f"bits must be 1-D or 2-D (rows = messages), got shape {b.shape}")
    if b.size and not (np.issubdtype(b.dtype, np.integer) or b.dtype == np.bool_):
        raise ValueError(f"bits must be integers 0/1, got dtype {b.dtype}")
    b = b.astype(np.uint8, copy=False)
    if b.size and b.max() > 1:
        raise ValueError("bits must be 0 or 1")
    return b


def pack_bits(bits) -> np.ndarray:
    """Left-pad rows of 0/1 bits with zeros to a multiple of 8 and pack MSB first: uint8 ``(n, ceil(A/8))``."""
    b = _as_bits(bits)
    b2 = b.reshape(1, -1) if b.ndim == 1 else b
    pad = (-b2.shape[1]) % 8
    if pad:
        b2 = np.concatenate([np.zeros((b2.shape[0], pad), np.uint8), b2], axis=1)
    return np.packbits(b2, axis=1)


@numba.njit(cache=True, nogil=True)
def _crc_bytes_kernel(data, table, L, out):
    """CRC of each row of packed bytes ``data`` (uint8 (n, nbytes)) into ``out`` (uint32 (n,))."""
    mask = np.uint32((1 << L) - 1)
    sh = L - 8
    for i in range(data.shape[0]):
        reg = np.uint32(0)
        for k in range(data.shape[1]):
            idx = ((reg >> sh) ^ np.uint32(data[i, k])) & np.uint32(0xFF)
            reg = ((reg << np.uint32(8)) & mask) ^ table[idx]
        out[i] = reg


def crc(bits, name: str = "24A") -> np.ndarray | int:
    """CRC (``name`` in ``"24A"``, ``"24B"``, ``"16"``) of a bit array (int) or of each row of a 2-D one
    (uint32 array). Numba table kernel."""
    L, _ = _poly(name)
    b = _as_bits(bits)
    packed = pack_bits(b)
    out = np.empty(packed.shape[0], np.uint32)
    _crc_bytes_kernel(packed, _table(name), L, out)
    return int(out[0]) if b.ndim == 1 else out


@functools.lru_cache(maxsize=64)
def _dk_remainders(name: str, A: int) -> np.ndarray:
    """uint32 (A,): remainder of ``D^(L + A - 1 - i)`` mod g, i.e. the CRC of the unit message e_i."""
    L, g = _poly(name)
    mask = (1 << L) - 1
    out = np.zeros(A, np.uint32)
    reg = g  # D^L mod g = g without its D^L term
    for k in range(A):  # reg = D^(L+k) mod g
        out[A - 1 - k] = reg
        reg = ((reg << 1) ^ g) & mask if reg & (1 << (L - 1)) else (reg << 1) & mask
    return out


def crc_numpy(bits, name: str = "24A") -> np.ndarray | int:
    """Numpy reference of :func:`crc` by linearity: XOR of the remainders of ``D^(L+A-1-i)`` over set bits."""
    b = _as_bits(bits)
    b2 = b.reshape(1, -1) if b.ndim == 1 else b
    rem = _dk_remainders(name, b2.shape[1])
    out = np.bitwise_xor.reduce(np.where(b2.astype(bool), rem[None, :], np.uint32(0)), axis=1)
    out = np.asarray(out, np.uint32).reshape(b2.shape[0])
    return int(out[0]) if b.ndim == 1 else out


def crc_bits(bits, name: str = "24A") -> np.ndarray:
    """The ``L`` parity bits ``p_0 .. p_{L-1}`` (uint8, MSB first) of ``bits`` (1-D) or of each row (2-D)."""
    L, _ = _poly(name)
    c = np.atleast_1d(np.asarray(crc(bits, name), np.uint32))
    p = ((c[:, None] >> np.arange(L - 1, -1, -1, dtype=np.uint32)[None, :]) & 1).astype(np.uint8)
    return p[0] if np.ndim(bits) == 1 else p


def attach(bits, name: str = "24A") -> np.ndarray:
    """``bits`` followed by their CRC (uint8); rows of a 2-D array each get theirs."""
    b = _as_bits(bits)
    return np.concatenate([b, crc_bits(b, name)], axis=-1)


def check(bits_with_crc, name: str = "24A") -> bool | np.ndarray:
    """True where the message with its CRC appended is divisible by ``g`` (the remainder is zero)."""
    L, _ = _poly(name)
    b = _as_bits(bits_with_crc)
    if b.shape[-1] < L:
        raise ValueError(f"need at least {L} bits, got {b.shape[-1]}")
    r = crc(b, name)
    return (r == 0) if b.ndim == 2 else bool(r == 0)


def lfsr_xors_per_bit(name: str) -> int:
    """XORs per message bit of the serial LFSR divider: one for the feedback (input bit XOR register MSB) plus
    one per non-zero coefficient of ``g`` among ``D^1 .. D^(L-1)`` (the ``D^0`` tap is a plain shift-in of the
    feedback bit, the ``D^L`` term is the register's end)."""
    L, g = _poly(name)
    return 1 + bin(g >> 1).count("1")
