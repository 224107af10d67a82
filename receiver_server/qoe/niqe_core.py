# SPDX-License-Identifier: GPL-3.0-or-later
"""NIQE (Mittal, Soundararajan, Bovik, "Making a completely blind image quality analyzer", IEEE SPL 2013).

The MATLAB reference release (``computequality.m``) as mirrored by basicsr's ``niqe.py``, vectorised over
patches:

1. crop to a whole number of 96x96 patches;
2. at each of two scales: local mean / deviation with a 7x7 Gaussian (sigma 7/6, ``'replicate'`` border),
   MSCN coefficients ``(im - mu) / (sigma + 1)``; per patch (96x96, then 48x48) 18 features: the AGGD shape
   and mean scale of the coefficients, and for the four neighbour products (shifts (0,1), (1,0), (1,1),
   (1,-1), circular) the AGGD shape, mean, left and right scale; between the scales the image is halved with
   MATLAB ``imresize`` (bicubic, antialiased);
3. fit a Gaussian to the 36-d patch features (NaN-mean; covariance over NaN-free patches) and return the
   Mahalanobis-like distance ``sqrt((mu_p - mu_d) pinv((S_p + S_d)/2) (mu_p - mu_d)^T)`` to the pristine model.

Lower is better; natural photographs score roughly 2-6. Input: grey image in [0, 255] (float), at least one
96x96 patch.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import convolve
from scipy.special import gamma

from .imresize import imresize

BLOCK = 96
#: the AGGD shape grid of the reference code: 0.2:0.001:10
GAM = np.arange(0.2, 10.0 + 1e-9, 0.001)
R_GAM = gamma(2.0 / GAM) ** 2 / (gamma(1.0 / GAM) * gamma(3.0 / GAM))
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def aggd_params(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric generalised Gaussian fit, vectorised: ``blocks`` (n, m) -> (alpha, beta_l, beta_r), each (n,).

    Moment matching on the grid ``GAM`` (first minimiser, as MATLAB's ``min``). Blocks without negative (or
    positive) samples give NaN scales (and alpha = 0.2, as the reference), which the caller's NaN-aware
    statistics handle as the reference does.
    """
    b = np.asarray(blocks, dtype=np.float64)
    sq = b * b
    neg = b < 0
    pos = b > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt(np.where(neg, sq, 0.0).sum(axis=1) / neg.sum(axis=1))
        right_std = np.sqrt(np.where(pos, sq, 0.0).sum(axis=1) / pos.sum(axis=1))
        gammahat = left_std / right_std
        rhat = np.mean(np.abs(b), axis=1) ** 2 / np.mean(sq, axis=1)
        rhatnorm = rhat * (gammahat ** 3 + 1) * (gammahat + 1) / (gammahat ** 2 + 1) ** 2
    diff = (R_GAM[None, :] - rhatnorm[:, None]) ** 2
    pos_idx = np.argmin(np.where(np.isnan(diff), np.inf, diff), axis=1)
    alpha = GAM[pos_idx]          # all-NaN rows give GAM[0], as MATLAB's min (index 1) and basicsr's argmin
    with np.errstate(invalid="ignore"):
        ratio = np.sqrt(gamma(1.0 / alpha) / gamma(3.0 / alpha))
    return alpha, left_std * ratio, right_std * ratio


def block_features(structdis: np.ndarray, bh: int, bw: int) -> np.ndarray:
    """18 NIQE features of every ``bh x bw`` block of the MSCN map, (n_blocks, 18), column-major block order."""
    h, w = structdis.shape
    nbh, nbw = h // bh, w // bw
    # (nbw, nbh, bh, bw): blocks ordered column by column like MATLAB's blkproc + reshape
    blocks = structdis[:nbh * bh, :nbw * bw].reshape(nbh, bh, nbw, bw).transpose(2, 0, 1, 3)
    blocks = blocks.reshape(nbw * nbh, bh, bw)
    n = blocks.shape[0]
    feats = np.empty((n, 18), dtype=np.float64)
    alpha, bl, br = aggd_params(blocks.reshape(n, -1))
    feats[:, 0] = alpha
    feats[:, 1] = (bl + br) / 2.0
    for j, shift in enumerate(SHIFTS):
        shifted = np.roll(blocks, shift, axis=(1, 2))        # circshift within each block
        alpha, bl, br = aggd_params((blocks * shifted).reshape(n, -1))
        with np.errstate(invalid="ignore"):
            mean = (br - bl) * (gamma(2.0 / alpha) / gamma(1.0 / alpha))
        feats[:, 2 + 4 * j:6 + 4 * j] = np.stack([alpha, mean, bl, br], axis=1)
    return feats


def mscn(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients ``(im - mu) / (sigma + 1)`` (replicate border)."""
    mu = convolve(img, window, mode="nearest")
    sigma = np.sqrt(np.abs(convolve(img * img, window, mode="nearest") - mu * mu))
    return (img - mu) / (sigma + 1.0)


def niqe_features(img: np.ndarray, window: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Patch features (n_patches, 36) of a grey image in [0, 255] cropped to whole ``block`` patches."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"NIQE works on a grey (H, W) image, got shape {img.shape}")
    h, w = img.shape
    nbh, nbw = h // block, w // block
    if nbh == 0 or nbw == 0:
        raise ValueError(f"NIQE needs at least one {block}x{block} patch; image is {h}x{w}")
    img = img[:nbh * block, :nbw * block]
    per_scale = []
    for scale in (1, 2):
        per_scale.append(block_features(mscn(img, window), block // scale, block // scale))
        if scale == 1:
            img = imresize(img / 255.0, scale=0.5) * 255.0
    return np.concatenate(per_scale, axis=1)


def niqe_distance(feats: np.ndarray, mu_pris: np.ndarray, cov_pris: np.ndarray) -> float:
    """Distance between the patch-feature Gaussian and the pristine model (NIQE score).

    Fewer than two patches with finite features (an image flat almost everywhere: the reference gives NaN)
    returns ``inf`` -- as far from natural as it gets, and never an ACK.
    """
    clean = feats[~np.isnan(feats).any(axis=1)]
    if clean.shape[0] < 2:
        return float("inf")
    mu_d = np.nanmean(feats, axis=0)
    cov_d = np.cov(clean, rowvar=False)
    inv = np.linalg.pinv((cov_pris + cov_d) / 2.0)
    d = (np.ravel(mu_pris) - mu_d)
    q = float(d @ inv @ d)
    return float(np.sqrt(q))


def niqe(img: np.ndarray, mu_pris: np.ndarray, cov_pris: np.ndarray, window: np.ndarray,
         block: int = BLOCK) -> float:
    """NIQE score of a grey image in [0, 255] against pristine parameters (mu (36,), cov (36, 36))."""
    return niqe_distance(niqe_features(img, window, block), mu_pris, cov_pris)
