# SPDX-License-Identifier: GPL-3.0-or-later
"""CRC-16-CCITT over bit arrays (header integrity check).

Polynomial ``x^16 + x^12 + x^5 + 1`` (0x1021), initial register 0xFFFF, no reflection, no final XOR
("CRC-16/CCITT-FALSE").  Bits are processed MSB first, i.e. in array order.  Being a degree-16 polynomial with a
non-zero constant term, it detects every single-bit error, every odd number of bit errors ((x+1) divides it),
and every burst of length <= 16 in a message of any length used here.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["CRC_BITS", "POLY", "crc16", "crc16_ref", "crc16_bits", "append_crc", "check_crc"]

CRC_BITS = 16
POLY = 0x1021
INIT = 0xFFFF


def _bits(bits) -> np.ndarray:
    b = np.asarray(bits)
    if b.ndim != 1:
        raise ValueError(f"bits must be a 1-D array, got shape {b.shape}")
    if b.size and (not np.issubdtype(b.dtype, np.integer) and b.dtype != np.bool_):
        raise ValueError(f"bits must be integers 0/1, got dtype {b.dtype}")
    b = b.astype(np.uint8)
    if b.size and b.max() > 1:
        raise ValueError("bits must be 0 or 1")
    return b


@numba.njit(cache=True, nogil=True)
def _crc16_kernel(bits):
    reg = INIT
    for i in range(bits.size):
        fb = ((reg >> 15) & 1) ^ bits[i]
        reg = (reg << 1) & 0xFFFF
        if fb:
            reg ^= POLY
    return reg


def crc16_ref(bits) -> int:
    """Pure-python bitwise reference of :func:`crc16`."""
    reg = INIT
    for bit in _bits(bits).tolist():
        fb = ((reg >> 15) & 1) ^ bit
        reg = (reg << 1) & 0xFFFF
        if fb:
            reg ^= POLY
    return reg


def crc16(bits) -> int:
    """CRC-16-CCITT of a 0/1 bit array (MSB-first order), as an int in 0..65535 (numba)."""
    return int(_crc16_kernel(_bits(bits)))


def crc16_bits(bits) -> np.ndarray:
    """The CRC of ``bits`` as 16 bits, MSB first (uint8)."""
    c = crc16(bits)
    return np.array([(c >> (15 - i)) & 1 for i in range(CRC_BITS)], dtype=np.uint8)


def append_crc(bits) -> np.ndarray:
    """``bits`` followed by their CRC (uint8)."""
    b = _bits(bits)
    return np.concatenate([b, crc16_bits(b)])


def check_crc(bits_with_crc) -> bool:
    """True when the last 16 bits are the CRC of the bits before them."""
    b = _bits(bits_with_crc)
    if b.size < CRC_BITS:
        raise ValueError(f"need at least {CRC_BITS} bits, got {b.size}")
    return bool(np.array_equal(crc16_bits(b[:-CRC_BITS]), b[-CRC_BITS:]))
