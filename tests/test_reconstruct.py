# SPDX-License-Identifier: GPL-3.0-or-later
import numpy as np
import pytest

from infercom import reconstruct


@pytest.mark.parametrize("m", [1, 4, 8])
def test_numba_matches_numpy(m):
    rng = np.random.default_rng(m)
    llr = (rng.standard_normal((m, 5000)) * 20).astype(np.float32)
    llr[:, :10] = 0
    llr[:, 10:20] = 1e4                                    # saturated in both directions
    llr[:, 20:30] = -1e4
    np.testing.assert_allclose(reconstruct.llr_to_values(llr, "mmse"),
                               reconstruct.mmse_values_numpy(llr), atol=2e-3)
    np.testing.assert_array_equal(reconstruct.llr_to_values(llr, "hard"),
                                  reconstruct.hard_values_numpy(llr))


def test_known_values():
    big = 50.0
    v = np.array([0, 1, 200, 255], np.uint8)
    bits = (v[None, :] >> np.arange(7, -1, -1)[:, None]) & 1
    llr = np.where(bits == 1, -big, big).astype(np.float32)
    np.testing.assert_allclose(reconstruct.llr_to_values(llr, "mmse"), v, atol=1e-3)
    np.testing.assert_array_equal(reconstruct.llr_to_values(llr, "hard"), v)
    # no information: MMSE = mean of 0..255; unsent planes are 1/2 in expectation
    assert reconstruct.llr_to_values(np.zeros((8, 3), np.float32), "mmse")[0] == pytest.approx(127.5)
    top2 = llr[:2]
    np.testing.assert_allclose(reconstruct.llr_to_values(top2, "mmse"), (v & 0xC0) + 31.5, atol=1e-3)
    np.testing.assert_array_equal(reconstruct.llr_to_values(top2, "hard"), (v & 0xC0) + 32)
    # MMSE is the posterior mean: P(b7=1) = 0.25 -> 32 + 63.5 (other planes unknown)
    llr1 = np.zeros((8, 1), np.float32)
    llr1[0, 0] = np.log(3.0)
    assert reconstruct.llr_to_values(llr1, "mmse")[0] == pytest.approx(0.25 * 128 + 63.5, abs=1e-3)


def test_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        reconstruct.llr_to_values(np.full((8, 2), np.nan, np.float32))
    with pytest.raises(ValueError, match="planes"):
        reconstruct.llr_to_values(np.zeros((9, 2), np.float32))
    with pytest.raises(ValueError, match="mode"):
        reconstruct.llr_to_values(np.zeros((8, 2), np.float32), "median")
