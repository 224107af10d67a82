# SPDX-License-Identifier: GPL-3.0-or-later
"""Full-reference image quality (evaluation only): PSNR and SSIM.

* PSNR: ``10 log10(255**2 / MSE)`` in dB over all pixels and channels (``inf`` for identical images).
* SSIM: Wang et al. (2004) with an 11x11 Gaussian window (sigma 1.5, scipy ``gaussian_filter`` truncated at
  3.5 sigma = radius 5), ``K1 = 0.01``, ``K2 = 0.03``, ``L = 255``, population (not sample) moments,
  symmetric ('reflect') boundary and the 5-pixel border excluded from the mean — the same definition as
  scikit-image's ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255)``. ``channel="rgb"`` (default) computes SSIM per colour
  channel and averages; ``channel="y"`` computes it on BT.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_PAD = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)   # 5 -> 11x11 window


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.size == 0:
        raise ValueError("empty image")
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("image contains NaN or inf")
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"images must be (H, W) or (H, W, C), got {a.shape}")
    return a, b


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error in (grey level)**2 over all pixels and channels."""
    a, b = _pair(a, b)
    return float(np.mean((a - b) ** 2))


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """PSNR in dB (``inf`` when equal)."""
    m = mse(a, b)
    return math.inf if m == 0 else 10.0 * math.log10(data_range**2 / m)


def _luma(x: np.ndarray) -> np.ndarray:
    if x.shape[2] == 1:
        return x
    if x.shape[2] != 3:
        raise ValueError(f"luma needs 1 or 3 channels, got {x.shape[2]}")
    return (0.299 * x[:, :, 0] + 0.587 * x[:, :, 1] + 0.114 * x[:, :, 2])[:, :, None]


def _ssim_2d(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2

    def f(z):
        return gaussian_filter(z, SSIM_SIGMA, truncate=SSIM_TRUNCATE, mode="reflect")

    ux, uy = f(x), f(y)
    vx = f(x * x) - ux * ux
    vy = f(y * y) - uy * uy
    vxy = f(x * y) - ux * uy
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    p = SSIM_PAD
    if s.shape[0] > 2 * p and s.shape[1] > 2 * p:
        s = s[p:-p, p:-p]
    return float(s.mean())


def ssim(a: np.ndarray, b: np.ndarray, channel: str = "rgb", data_range: float = 255.0) -> float:
    """Gaussian-window SSIM in [-1, 1]; ``channel``: ``"rgb"`` (mean over channels) or ``"y"`` (luma)."""
    a, b = _pair(a, b)
    if channel == "y":
        a, b = _luma(a), _luma(b)
    elif channel != "rgb":
        raise ValueError(f"channel must be 'rgb' or 'y', got {channel!r}")
    return float(np.mean([_ssim_2d(a[:, :, c], b[:, :, c], data_range) for c in range(a.shape[2])]))
