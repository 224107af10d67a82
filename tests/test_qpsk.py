# SPDX-License-Identifier: GPL-3.0-or-later
import math

import numpy as np
import pytest

from infercom import interleave, power, qpsk


def _noise(rng, n, nv):
    return (np.sqrt(nv / 2) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))).astype(np.complex64)


@pytest.mark.parametrize("n_values", [1, 2, 9, 1001])
@pytest.mark.parametrize("m", [1, 3, 8])
def test_mapper_numba_matches_numpy(n_values, m):
    rng = np.random.default_rng(n_values + m)
    v = rng.integers(0, 256, n_values, dtype=np.uint8)
    amps = power.plane_amplitudes("importance", 0, m)
    pre = qpsk.map_values(v, amps)
    assert pre.dtype == np.complex64
    np.testing.assert_allclose(pre, qpsk.map_values_numpy(v, amps), rtol=1e-6, atol=1e-7)
    perm = interleave.permutation(pre.size)
    tx = qpsk.map_values(v, amps, perm)
    np.testing.assert_allclose(tx, qpsk.map_values_numpy(v, amps, perm), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(tx, pre[perm])


def test_gray_mapping_and_plane_power():
    amps = np.sqrt(power.plane_powers("importance", -4)).astype(np.float32)
    v = np.arange(256, dtype=np.uint8).repeat(2)           # both bits of each symbol equal
    x = qpsk.map_values(v, amps).reshape(8, 256)
    # bit 0 -> +a/sqrt2, bit 1 -> -a/sqrt2, on both axes
    for j in range(8):
        bits = (np.arange(256) >> (7 - j)) & 1
        np.testing.assert_allclose(x[j].real, amps[j] / math.sqrt(2) * (1 - 2 * bits), rtol=1e-6)
        np.testing.assert_array_equal(x[j].real, x[j].imag)
        np.testing.assert_allclose(np.abs(x[j]) ** 2, amps[j] ** 2, rtol=1e-5)
    assert np.mean(np.abs(x) ** 2) == pytest.approx(1.0, rel=1e-5)


def test_llr_is_exact_posterior():
    """Compare with the brute-force log posterior ratio over the 4 constellation points."""
    rng = np.random.default_rng(3)
    a, nv = 0.7, 0.37
    y = (rng.standard_normal(200) + 1j * rng.standard_normal(200)).astype(np.complex64)
    pts = {(bi, bq): a * ((1 - 2 * bi) + 1j * (1 - 2 * bq)) / math.sqrt(2) for bi in (0, 1) for bq in (0, 1)}
    like = {b: np.exp(-np.abs(y - s) ** 2 / nv) for b, s in pts.items()}
    l_i = np.log((like[0, 0] + like[0, 1]) / (like[1, 0] + like[1, 1]))
    l_q = np.log((like[0, 0] + like[1, 0]) / (like[0, 1] + like[1, 1]))
    got_i, got_q = qpsk.bit_llrs(y, nv, a)
    np.testing.assert_allclose(got_i, l_i, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_q, l_q, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n_values", [1, 10, 999])
@pytest.mark.parametrize("per_symbol_nv", [False, True])
def test_demapper_numba_matches_numpy(n_values, per_symbol_nv):
    rng = np.random.default_rng(7)
    amps = power.plane_amplitudes("importance", 2, 8)
    v = rng.integers(0, 256, n_values, dtype=np.uint8)
    perm = interleave.permutation(8 * ((n_values + 1) // 2))
    x = qpsk.map_values(v, amps, perm)
    nv = rng.uniform(0.1, 2.0, x.size).astype(np.float32) if per_symbol_nv else 0.5
    if per_symbol_nv:
        nv[::5] = np.inf                                   # missing symbols
    y = x + _noise(rng, x.size, 0.5)
    if per_symbol_nv:
        y[::5] = 0
    ref = qpsk.llr_values_numpy(y, nv, amps, n_values, perm)
    got = qpsk.llr_values(y, nv, amps, n_values, perm)
    assert got.shape == (8, n_values) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(qpsk.llr_values(y, nv, amps, n_values),
                               qpsk.llr_values_numpy(y, nv, amps, n_values), rtol=1e-5, atol=1e-6)
    if per_symbol_nv:
        pre_nv = np.empty_like(nv)
        pre_nv[perm] = nv
        miss = np.isinf(pre_nv.reshape(8, -1))
        assert np.all(got[:, 0::2][miss[:, : got[:, 0::2].shape[1]]] == 0)


@pytest.mark.parametrize("snr_db", [-8, -4, 0, 4])
def test_ber_matches_theory(snr_db):
    """Equal power, AWGN: measured BER = Q(sqrt(Es/N0)) within 3 standard errors."""
    rng = np.random.default_rng(100 + snr_db)
    n_values = 400_000
    v = rng.integers(0, 256, n_values, dtype=np.uint8)
    amps = np.ones(8, np.float32)
    x = qpsk.map_values(v, amps, interleave.permutation(8 * n_values // 2))
    nv = 10 ** (-snr_db / 10)
    y = x + _noise(rng, x.size, nv)
    llr = qpsk.llr_values(y, nv, amps, n_values, interleave.permutation(x.size))
    bits = ((v[None, :] >> np.arange(7, -1, -1)[:, None]) & 1).astype(np.uint8)
    errors = np.count_nonzero(qpsk.hard_bits(llr) != bits)
    n_bits = bits.size
    p = power.qfunc(math.sqrt(10 ** (snr_db / 10)))
    se = math.sqrt(p * (1 - p) / n_bits)
    assert abs(errors / n_bits - p) < 3 * se


def test_bad_soft_input():
    amps = np.ones(8, np.float32)
    y = np.zeros(8, np.complex64)
    with pytest.raises(ValueError, match="NaN or inf"):
        qpsk.llr_values(np.full(8, np.nan, np.complex64), 1.0, amps, 2)
    with pytest.raises(ValueError, match="NaN or inf"):
        qpsk.llr_values(np.full(8, np.inf, np.complex64), 1.0, amps, 2)
    with pytest.raises(ValueError, match="noise_var"):
        qpsk.llr_values(y, 0.0, amps, 2)
    with pytest.raises(ValueError, match="noise_var"):
        qpsk.llr_values(y, np.nan, amps, 2)
    with pytest.raises(ValueError, match="noise_var"):
        qpsk.llr_values(y, np.ones(3), amps, 2)
    with pytest.raises(ValueError, match="expected 8"):
        qpsk.llr_values(y[:7], 1.0, amps, 2)
    with pytest.raises(ValueError, match="uint8"):
        qpsk.map_values(np.zeros(4), amps)
    assert np.all(qpsk.llr_values(y, np.inf, amps, 2) == 0)
