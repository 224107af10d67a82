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


# ------------------------------------------------------------------------ posterior variance (QoE relies on it)

def _brute_force_moments(llr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and variance by enumerating all 256 values: P(v) = prod over sent planes of P(b_k(v)),
    unsent planes uniform (LLR 0)."""
    m, n = llr.shape
    full = np.zeros((8, n))
    full[:m] = llr                                            # MSB first; unsent LSB planes: LLR 0
    v = np.arange(256)
    bits = (v[None, :] >> np.arange(7, -1, -1)[:, None]) & 1  # (8, 256), MSB first
    p1 = 1.0 / (1.0 + np.exp(full.astype(np.float64)))       # (8, n)
    logp = np.zeros((n, 256))
    for j in range(8):
        pb = np.where(bits[j][None, :] == 1, p1[j][:, None], 1.0 - p1[j][:, None])
        logp += np.log(np.maximum(pb, 1e-300))
    w = np.exp(logp - logp.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    mean = w @ v
    return mean, w @ (v.astype(np.float64) ** 2) - mean ** 2


@pytest.mark.parametrize("m", [1, 3, 8])
def test_posterior_var_matches_brute_force_and_numpy(m):
    rng = np.random.default_rng(10 + m)
    llr = (rng.standard_normal((m, 400)) * 4).astype(np.float32)
    llr[:, :5] = 0
    llr[:, 5:10] = 30.0                                       # near-certain, both signs
    llr[:, 10:15] = -30.0
    mean, var = _brute_force_moments(llr)
    np.testing.assert_allclose(reconstruct.mmse_values_numpy(llr), mean, atol=1e-3)
    np.testing.assert_allclose(reconstruct.posterior_var_numpy(llr), var, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(reconstruct.posterior_var(llr), var, rtol=1e-4, atol=1e-3)
    sat = np.full((m, 2), 1e4, np.float32)
    sat[:, 1] = -1e4                                          # exp(-|L|) underflows: only unsent planes remain
    np.testing.assert_allclose(reconstruct.posterior_var(sat), reconstruct.unsent_var(m), atol=1e-6)
    with pytest.raises(ValueError, match="NaN"):
        reconstruct.posterior_var(np.full((m, 2), np.nan, np.float32))


def test_missing_symbols_give_maximal_variance():
    from infercom import link
    cfg = link.LinkConfig(planes=5)
    lay = link.layout(9, 12, 3, cfg)
    llr = link.soft_to_llr(np.zeros(lay.n_symbols, np.complex64), np.inf, lay, cfg)
    var = link.llr_to_lowres_var(llr, lay, cfg)
    assert var.shape == (lay.low_h, lay.low_w, 3) and var.dtype == np.float32
    np.testing.assert_allclose(var, (256 ** 2 - 1) / 12, rtol=1e-6)   # uniform on 0..255: the maximum
    rng = np.random.default_rng(0)
    some = (rng.standard_normal(llr.shape) * 3).astype(np.float32)
    assert np.all(reconstruct.posterior_var(some) < (256 ** 2 - 1) / 12)
    with pytest.raises(ValueError, match="LLR shape"):
        link.llr_to_lowres_var(llr[:, :-1], lay, cfg)


def test_posterior_var_is_calibrated_and_shrinks_with_snr():
    """Over many draws of uniform values (the prior the MMSE assumes), the empirical MSE of the MMSE values
    equals the mean posterior variance (the property the QoE consistency metric relies on), at several SNRs;
    the variance falls as the SNR rises."""
    from infercom import link
    rng = np.random.default_rng(5)
    cfg = link.LinkConfig(bh=1, bw=1)
    img = rng.integers(0, 256, (120, 120, 3), dtype=np.uint8)
    x, lay = link.encode_image(img, cfg)
    prev = np.inf
    for snr_db in (-6.0, 0.0, 6.0, 12.0):
        nv = 10 ** (-snr_db / 10)
        y = (x + np.sqrt(nv / 2) * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size))
             ).astype(np.complex64)
        llr = link.soft_to_llr(y, nv, lay, cfg)
        mu = link.llr_to_lowres(llr, lay, cfg).astype(np.float64)
        var = link.llr_to_lowres_var(llr, lay, cfg).astype(np.float64)
        sq = (img.astype(np.float64) - mu) ** 2
        se = sq.std() / np.sqrt(sq.size)                      # standard error of the empirical MSE
        assert abs(sq.mean() - var.mean()) < 4 * se + 1e-3 * var.mean(), (snr_db, sq.mean(), var.mean())
        # and the standardised errors are not wildly off per value: ~all within 4 posterior sigmas + 0.5
        assert np.mean(np.abs(img - mu) <= 4 * np.sqrt(var) + 0.5) > 0.99
        assert var.mean() < prev
        prev = var.mean()
