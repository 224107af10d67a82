# SPDX-License-Identifier: GPL-3.0-or-later
"""The offline QoE requirement a delivered image must meet, against its original (evaluation and calibration
only: the server never has the original).

The papers' requirement is CLIP-IQA >= 0.8 and CLIP similarity to the original >= 0.9 (``--clip``, with local
CLIP weights). Without CLIP the project uses an offline stand-in, chosen a priori and not fitted to any result
(docs/results.md §1): **naturalness** -- NIQE at most the server's calibrated NIQE threshold of its default
entry (9.77; where NIQE applies: two 96x96 patches) -- and **content and layout** -- SSIM (luma) of the 4x4
area-averaged images >= 0.80 (:func:`coarse_ssim`), blind to the fine texture a generative restorer
re-synthesises. ``infercom experiment`` scores every system's output with it, and ``infercom calibrate-qoe
--label requirement`` labels a calibration sample acceptable when its restoration meets it.
"""

from __future__ import annotations

import numpy as np

from infercom import metrics, source

#: the stand-in for semantic similarity: SSIM of the ``COARSE_FACTOR x COARSE_FACTOR`` area-averaged images
COARSE_FACTOR, COARSE_SSIM_MIN = 4, 0.80


def coarse_ssim(a: np.ndarray, b: np.ndarray, factor: int = COARSE_FACTOR) -> float:
    """SSIM (luma) of the two images after ``factor x factor`` area averaging: similarity of content and layout
    at thumbnail scale, blind to the fine texture a generative restorer re-synthesises."""
    def down(x):
        x = source.as_image3(x).astype(np.float64)
        h, w = (x.shape[0] // factor) * factor, (x.shape[1] // factor) * factor
        x = x[:h, :w].reshape(h // factor, factor, w // factor, factor, x.shape[2]).mean(axis=(1, 3))
        return np.clip(np.round(x), 0, 255).astype(np.uint8)

    return float(metrics.ssim(down(a), down(b), channel="y"))


def offline_thresholds() -> dict[str, float]:
    """``{"niqe": the server's calibrated NIQE threshold (default entry), "coarse_ssim": COARSE_SSIM_MIN}``."""
    from .thresholds import threshold

    return {"niqe": threshold("niqe").value, "coarse_ssim": COARSE_SSIM_MIN}


def meets_offline(niqe: float | None, coarse: float, thresholds: dict[str, float] | None = None) -> bool:
    """The offline requirement on one image's scores: ``niqe`` (None: NIQE does not apply to the size) at most
    the NIQE threshold and ``coarse`` (:func:`coarse_ssim` against the original) at least ``COARSE_SSIM_MIN``."""
    t = thresholds or offline_thresholds()
    return bool((niqe is None or niqe <= t["niqe"]) and coarse >= t["coarse_ssim"])
