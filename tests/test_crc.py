# SPDX-License-Identifier: GPL-3.0-or-later
"""CRC-16-CCITT: known check value, detection of every single-bit error, every 2-bit error and bursts <= 16."""

from __future__ import annotations

import numpy as np
import pytest

from infercom import crc


def test_check_value():
    # CRC-16/CCITT-FALSE of ASCII "123456789" is 0x29B1
    bits = np.unpackbits(np.frombuffer(b"123456789", np.uint8))
    assert crc.crc16(bits) == 0x29B1
    assert crc.check_crc(crc.append_crc(bits))
    rng = np.random.default_rng(3)
    for n in (0, 1, 17, 112, 300):  # numba kernel vs bitwise python reference
        b = rng.integers(0, 2, n)
        assert crc.crc16(b) == crc.crc16_ref(b)


def _syndromes(msg):
    """CRC of msg xor e equals CRC(msg) xor CRC_lin(e): compute per-position contributions once."""
    n = msg.size
    base = crc.crc16(msg)
    col = np.empty(n, dtype=np.int64)
    for i in range(n):
        m = msg.copy()
        m[i] ^= 1
        col[i] = crc.crc16(m) ^ base
    return col


def test_single_and_double_bit_errors_all_detected(rng):
    msg = crc.append_crc(rng.integers(0, 2, 96))
    n = msg.size
    for i in range(n):  # exhaustive single-bit errors, including in the CRC field
        m = msg.copy()
        m[i] ^= 1
        assert not crc.check_crc(m), i
    # exhaustive double errors by linearity: the check passes iff the syndromes of the error bits cancel
    data = msg[:-16]
    col = _syndromes(data)  # error in data bit i changes the computed CRC by col[i]
    crc_cols = np.array([1 << (15 - j) for j in range(16)])  # error in received CRC bit j
    syn = np.concatenate([col, crc_cols])
    eq = syn[:, None] == syn[None, :]
    np.fill_diagonal(eq, False)
    assert not eq.any()
    # sanity: the linear model matches the real CRC on random multi-bit errors
    for _ in range(200):
        e = rng.random(n) < 0.05
        m = msg ^ e.astype(np.uint8)
        s = np.bitwise_xor.reduce(syn[e]) if e.any() else 0
        assert crc.check_crc(m) == (s == 0)


def test_bursts_up_to_16_detected(rng):
    msg = crc.append_crc(rng.integers(0, 2, 96))
    n = msg.size
    data = msg[:-16]
    syn = np.concatenate([_syndromes(data), np.array([1 << (15 - j) for j in range(16)])])
    # every burst of length L <= 16 (first and last bits flipped, any inner pattern) at every start:
    # exhaustive for L <= 10, 3000 sampled inner patterns per (start, L) beyond
    for L in range(1, 17):
        for start in range(0, n - L + 1):
            if L <= 2:
                pats = [np.ones(L, bool)]
            else:
                k = 1 << (L - 2)
                inner = np.arange(k) if L <= 10 else rng.integers(0, k, 64)
                pats = ((inner[:, None] >> np.arange(L - 2)) & 1).astype(bool)
                pats = np.concatenate([np.ones((len(inner), 1), bool), pats, np.ones((len(inner), 1), bool)], 1)
            pats = np.atleast_2d(pats)
            s = np.bitwise_xor.reduce(np.where(pats, syn[start:start + L][None, :], 0), axis=1)
            assert np.all(s != 0), (L, start)
    # and through the real CRC for a sample of bursts
    for _ in range(300):
        L = int(rng.integers(1, 17))
        start = int(rng.integers(0, n - L + 1))
        e = np.zeros(n, np.uint8)
        e[start:start + L] = rng.integers(0, 2, L)
        e[start] = e[start + L - 1] = 1
        assert not crc.check_crc(msg ^ e)


def test_bad_input():
    with pytest.raises(ValueError):
        crc.crc16(np.array([0, 2, 1]))
    with pytest.raises(ValueError):
        crc.check_crc(np.zeros(8, np.uint8))
    with pytest.raises(ValueError):
        crc.crc16(np.zeros((2, 2), np.uint8))
