# SPDX-License-Identifier: GPL-3.0-or-later
"""The QoE metric interface and input validation shared by every metric (no torch here)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from infercom import source

# an observation is defined by the restorer interface; metrics validate it the same way
from ..restorers.base import as_observation  # noqa: F401  (re-exported for the metrics)


@runtime_checkable
class QoEMetric(Protocol):
    """A quality-of-experience score of a restored image.

    ``name``: registry name; ``higher_is_better``: direction; ``range``: (low, high) of possible values
    (``inf`` where unbounded). Optional: ``applies(height, width) -> bool`` (False: the gate skips the metric for
    that size) and ``needs_restored = False`` for a metric that scores the observation alone (``restored`` is
    None then): the gate evaluates it before restoring and NACKs early when it fails (docs/server.md).
    """

    name: str
    higher_is_better: bool
    range: tuple[float, float]

    def score(self, restored: np.ndarray, observation: np.ndarray | None = None,
              meta: dict | None = None) -> float:
        """``restored``: uint8 (H, W, C) or (H, W); ``observation``: float32 (h, w, C) low-res MMSE image in
        [0, 255]; ``meta``: the restorer's meta (bh, bw, height, width, channels, ...)."""
        ...


def as_image(img: np.ndarray, what: str = "restored") -> np.ndarray:
    """Validate a uint8 image and return it as (H, W, C) with C in (1, 3): the link's image validator
    (``infercom.source.as_image3``, sides 1..4096), its messages starting with ``"<what> image"``."""
    return source.as_image3(img, f"{what} image")


def rgb_to_gray(img: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray`` of a uint8 image (rounded to integers, as MATLAB returns uint8), float64 (H, W)."""
    a = as_image(img)
    if a.shape[2] == 1:
        return a[:, :, 0].astype(np.float64)
    coef = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
    return np.round(a.astype(np.float64) @ coef)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Y of MATLAB's ``rgb2ycbcr`` (ITU-R BT.601, [16, 235]) of a uint8 image, float64 (H, W), unrounded."""
    a = as_image(img)
    if a.shape[2] == 1:
        return a[:, :, 0].astype(np.float64)
    rgb = a.astype(np.float64)
    return 16.0 + (rgb @ np.array([65.481, 128.553, 24.966])) / 255.0
