# SPDX-License-Identifier: GPL-3.0-or-later
"""Full-reference metrics for evaluation only: ``psnr`` (dB) and ``ssim`` against ``meta["reference"]``.

They wrap ``infercom.metrics`` (one definition in the project). The server never has the reference, so these
are not ACK/NACK criteria; evaluation scripts pass the original image as ``meta["reference"]`` (uint8, same
shape as the restored image). Config: ``ssim`` takes ``channel`` (``"rgb"`` mean over channels, default, or
``"y"`` luma).
"""

from __future__ import annotations

import numpy as np

from infercom import metrics

from .base import as_image


def reference_of(restored: np.ndarray, meta: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """(restored, reference) as validated uint8 (H, W, C) arrays of the same shape."""
    if not meta or meta.get("reference") is None:
        raise ValueError("full-reference metric needs meta['reference'] (the original image); "
                         "it is for evaluation only")
    a = as_image(restored, "restored")
    b = as_image(meta["reference"], "reference")
    if a.shape != b.shape:
        raise ValueError(f"restored {a.shape} and reference {b.shape} differ in shape")
    return a, b


class PSNR:
    name = "psnr"
    higher_is_better = True
    range = (0.0, float("inf"))

    def __init__(self, device: str = "cpu", config: dict | None = None):
        if config:
            raise ValueError(f"psnr takes no config, got keys {sorted(config)}")

    def score(self, restored, observation=None, meta=None) -> float:
        return metrics.psnr(*reference_of(restored, meta))


class SSIM:
    name = "ssim"
    higher_is_better = True
    range = (-1.0, 1.0)

    def __init__(self, device: str = "cpu", config: dict | None = None):
        cfg = dict(config or {})
        self.channel = cfg.pop("channel", "rgb")
        if self.channel not in ("rgb", "y"):
            raise ValueError(f"ssim channel must be 'rgb' or 'y', got {self.channel!r}")
        if cfg:
            raise ValueError(f"unknown ssim config keys {sorted(cfg)}")

    def score(self, restored, observation=None, meta=None) -> float:
        return metrics.ssim(*reference_of(restored, meta), channel=self.channel)
