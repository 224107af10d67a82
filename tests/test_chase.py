# SPDX-License-Identifier: GPL-3.0-or-later
import math

import numpy as np
import pytest
from scipy.special import erfcinv

from infercom import chase, qpsk


def _noise(rng, n, nv):
    return (np.sqrt(nv / 2) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))).astype(np.complex64)


def test_numba_matches_numpy_and_llr_addition():
    rng = np.random.default_rng(0)
    n = 1000
    x = ((1 - 2 * rng.integers(0, 2, n)) + 1j * (1 - 2 * rng.integers(0, 2, n))) / math.sqrt(2)
    nvs = [np.full(n, 0.5, np.float32), rng.uniform(0.2, 3, n).astype(np.float32), np.float32(1.3)]
    ys = [x + _noise(rng, n, 1.0) for _ in nvs]
    nvs[1][:100] = np.inf
    ys[1][:100] = 0
    y, nv = chase.combine(ys, nvs)
    y_ref, nv_ref = chase.combine_numpy(ys, [np.broadcast_to(v, (n,)) for v in nvs])
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nv, nv_ref, rtol=1e-5)
    amps = np.ones(1, np.float32)
    l_sum = chase.combine_llr([qpsk.llr_values(a, b, amps, 2 * n) for a, b in zip(ys, nvs)])
    np.testing.assert_allclose(qpsk.llr_values(y, nv, amps, 2 * n), l_sum, rtol=1e-4, atol=1e-4)


def test_missing_everywhere_stays_missing():
    c = chase.ChaseCombiner(4)
    c.add(np.array([0, 1, 0, 0], np.complex64), np.array([np.inf, 1, np.inf, np.inf], np.float32))
    c.add(np.array([0, 1, 2, 0], np.complex64), np.array([np.inf, 1, 2, np.inf], np.float32))
    y, nv = c.result()
    assert c.attempts == 2
    assert y[0] == 0 and np.isinf(nv[0]) and y[3] == 0 and np.isinf(nv[3])
    assert nv[1] == pytest.approx(0.5) and y[1] == pytest.approx(1)
    assert nv[2] == pytest.approx(2) and y[2] == pytest.approx(2)
    with pytest.raises(ValueError, match="NaN"):
        c.add(np.full(4, np.nan, np.complex64), 1.0)
    with pytest.raises(ValueError, match="expected 4"):
        c.add(np.zeros(3, np.complex64), 1.0)
    with pytest.raises(ValueError):
        chase.combine([], [])


@pytest.mark.parametrize("snr_db", [-4.0, 0.0])
def test_two_attempts_gain_3db(snr_db):
    """BER of two combined attempts at s equals the BER of one attempt at s + 3.01 dB (within 0.3 dB)."""
    rng = np.random.default_rng(int(snr_db) + 50)
    n = 1_000_000
    b = rng.integers(0, 2, (2, n))
    x = ((1 - 2 * b[0]) + 1j * (1 - 2 * b[1])) / math.sqrt(2)
    nv = 10 ** (-snr_db / 10)
    y, nv_c = chase.combine([x + _noise(rng, n, nv), x + _noise(rng, n, nv)], [nv, nv])
    llr = qpsk.llr_values(y, nv_c, np.ones(1, np.float32), 2 * n)
    ber = np.mean(qpsk.hard_bits(llr)[0] != np.stack([b[0], b[1]], 1).reshape(-1))
    # invert BER = Q(sqrt(Es/N0)) for the effective SNR
    eff_db = 20 * math.log10(math.sqrt(2) * erfcinv(2 * ber))
    assert abs(eff_db - (snr_db + 10 * math.log10(2))) < 0.3
