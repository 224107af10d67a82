# SPDX-License-Identifier: GPL-3.0-or-later
import math

import numpy as np
import pytest

from infercom import metrics


def _ssim_bruteforce(x, y, L=255.0):
    """Direct per-pixel Gaussian-window SSIM with reflect padding, border of 5 excluded."""
    r = 5
    g = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g)
    w /= w.sum()
    xp = np.pad(x, r, mode="symmetric")
    yp = np.pad(y, r, mode="symmetric")
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    vals = []
    for i in range(r, x.shape[0] - r):
        for j in range(r, x.shape[1] - r):
            a = xp[i:i + 2 * r + 1, j:j + 2 * r + 1]
            b = yp[i:i + 2 * r + 1, j:j + 2 * r + 1]
            ma, mb = (w * a).sum(), (w * b).sum()
            va, vb = (w * a * a).sum() - ma * ma, (w * b * b).sum() - mb * mb
            cov = (w * a * b).sum() - ma * mb
            vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_psnr_known_values():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    assert metrics.psnr(a, b) == math.inf
    b[0, 0, 0] = 10                        # MSE = 100 / 48
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 * 48 / 100))


def test_ssim_matches_direct_definition():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (24, 26)).astype(np.float64)
    y = np.clip(x + rng.normal(0, 25, x.shape), 0, 255)
    assert metrics.ssim(x, y) == pytest.approx(_ssim_bruteforce(x, y), rel=1e-9)


def test_ssim_properties():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert metrics.ssim(img, img) == pytest.approx(1.0)
    noisy = [np.clip(img + rng.normal(0, s, img.shape), 0, 255) for s in (5, 20, 60)]
    vals = [metrics.ssim(img, n) for n in noisy]
    assert vals[0] > vals[1] > vals[2]
    assert metrics.ssim(img, noisy[1]) == pytest.approx(metrics.ssim(noisy[1], img))
    y = metrics.ssim(img, noisy[1], channel="y")
    assert 0 < y < 1 and y != pytest.approx(vals[1])


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        metrics.psnr(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.ssim(np.full((3, 3), np.nan), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="channel"):
        metrics.ssim(np.zeros((3, 3)), np.zeros((3, 3)), channel="lab")
    with pytest.raises(ValueError, match="empty"):
        metrics.mse(np.zeros((0, 3)), np.zeros((0, 3)))
