# SPDX-License-Identifier: GPL-3.0-or-later
"""NR CRCs (TS 38.212 §5.1) against an independent bitwise long division written here from the spec."""

from __future__ import annotations

import numpy as np
import pytest

from infercom.nr import crc

#: the generator polynomials of 38.212 §5.1 as lists of exponents, typed from the spec
SPEC_EXPONENTS = {
    "24A": [24, 23, 18, 17, 14, 11, 10, 7, 6, 5, 4, 3, 1, 0],
    "24B": [24, 23, 6, 5, 1, 0],
    "16": [16, 12, 5, 0],
}


def long_division_parity(bits, exps) -> list[int]:
    """Parity bits p_0..p_{L-1}: remainder of a(D) D^L divided by g(D), plain GF(2) long division."""
    L = max(exps)
    g = [0] * (L + 1)
    for e in exps:
        g[L - e] = 1  # g[0] is the coefficient of D^L
    reg = [int(b) for b in bits] + [0] * L
    for i in range(len(bits)):
        if reg[i]:
            for k in range(L + 1):
                reg[i + k] ^= g[k]
    return reg[len(bits):]


@pytest.mark.parametrize("name", sorted(SPEC_EXPONENTS))
def test_crc_matches_long_division(name, rng):
    lengths = list(range(1, 70)) + [100, 255, 256, 257, 1000, 3824]
    for A in lengths:
        a = rng.integers(0, 2, A).astype(np.uint8)
        ref = long_division_parity(a, SPEC_EXPONENTS[name])
        assert crc.crc_bits(a, name).tolist() == ref, (name, A)
        assert crc.crc_numpy(a, name) == crc.crc(a, name)


@pytest.mark.parametrize("name", sorted(SPEC_EXPONENTS))
def test_polynomial_constants_match_spec(name):
    L, g = crc.POLYS[name]
    assert L == max(SPEC_EXPONENTS[name])
    assert g == sum(1 << e for e in SPEC_EXPONENTS[name] if e < L)


def test_catalogue_check_values():
    # CRC-24/LTE-A, CRC-24/LTE-B and CRC-16/XMODEM (zero init, no reflection) of ASCII "123456789"
    b = np.unpackbits(np.frombuffer(b"123456789", np.uint8))
    assert crc.crc(b, "24A") == 0xCDE703
    assert crc.crc(b, "24B") == 0x23EF52
    assert crc.crc(b, "16") == 0x31C3


def test_batched_rows_and_numpy_reference(rng):
    a = rng.integers(0, 2, (17, 8424)).astype(np.uint8)
    for name in SPEC_EXPONENTS:
        fast = crc.crc(a, name)
        assert fast.shape == (17,)
        assert np.array_equal(fast, crc.crc_numpy(a, name))
        assert [int(v) for v in fast] == [crc.crc(row, name) for row in a]


def test_attach_check_and_error_detection(rng):
    for name in SPEC_EXPONENTS:
        a = rng.integers(0, 2, 8424).astype(np.uint8)
        w = crc.attach(a, name)
        assert w.size == 8424 + crc.POLYS[name][0]
        assert crc.check(w, name)
        for pos in rng.choice(w.size, 50, replace=False):
            bad = w.copy()
            bad[pos] ^= 1
            assert not crc.check(bad, name)
        # a burst no longer than L is always detected
        L = crc.POLYS[name][0]
        bad = w.copy()
        bad[1000:1000 + L] ^= rng.integers(0, 2, L).astype(np.uint8) | np.eye(1, L, 0, np.uint8)[0]
        assert not crc.check(bad, name)


def test_leading_zeros_do_not_change_crc(rng):
    a = rng.integers(0, 2, 123).astype(np.uint8)
    for name in SPEC_EXPONENTS:
        assert crc.crc(a, name) == crc.crc(np.concatenate([np.zeros(5, np.uint8), a]), name)


def test_bad_input():
    with pytest.raises(ValueError):
        crc.crc(np.array([0, 2, 1]), "24A")
    with pytest.raises(ValueError):
        crc.crc(np.zeros(8), "24C")
    with pytest.raises(ValueError):
        crc.check(np.zeros(10, np.uint8), "24A")
    with pytest.raises(ValueError):
        crc.crc(np.zeros((2, 2, 2), np.uint8))


def test_lfsr_xor_counts():
    # feedback XOR + one per non-zero coefficient among D^1..D^(L-1)
    assert crc.lfsr_xors_per_bit("24A") == 1 + 12
    assert crc.lfsr_xors_per_bit("24B") == 1 + 4
    assert crc.lfsr_xors_per_bit("16") == 1 + 2
