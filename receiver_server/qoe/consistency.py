# SPDX-License-Identifier: GPL-3.0-or-later
"""``consistency``: offline semantic-consistency proxy (the default when no CLIP weights are configured).

Does the restoration stay faithful to what was received? The restored image is passed through the
transmitter's own source encoder (block means over ``bh x bw``, ``infercom.source.lpf_encode``) and compared
with the received MMSE observation by SSIM (``infercom.metrics.ssim``, Gaussian window, mean over channels).
Low-res pixels that had no symbols at all (``meta["missing"]``) carry no observation: they are filled with
the restoration's own block means (they can be neither consistent nor inconsistent), and the SSIM is
multiplied by the fraction of pixels received -- whatever the restorer made of a missing region was not
checked against anything, so an image with a fraction ``f`` missing scores at most ``1 - f`` (all missing: 0).
For an ACK/NACK loop this makes missing frames a reason to NACK unless they are a negligible fraction.

Higher is better; range [-1, 1] (in practice [0, 1]). A restorer that invents content the observation does not
support (or drops content it does) loses SSIM; one that only removes isolated bit-error outliers loses little.
"""

from __future__ import annotations

import numpy as np

from infercom import metrics, source

from .base import as_image, as_observation


class ConsistencyProxy:
    name = "consistency"
    higher_is_better = True
    range = (-1.0, 1.0)

    def __init__(self, device: str = "cpu", config: dict | None = None):
        if config:
            raise ValueError(f"consistency takes no config, got keys {sorted(config)}")

    def score(self, restored: np.ndarray, observation: np.ndarray | None = None,
              meta: dict | None = None) -> float:
        if observation is None or not meta or "bh" not in meta or "bw" not in meta:
            raise ValueError("consistency needs the observation and meta with bh, bw")
        img = as_image(restored)
        obs = as_observation(observation)
        bh, bw = source.check_block(meta["bh"], meta["bw"])
        means = source.lpf_encode(img, bh, bw).astype(np.float64)
        if means.shape != obs.shape:
            raise ValueError(f"block means of the restored image {means.shape} do not match the observation "
                             f"{obs.shape} for {bh}x{bw} blocks")
        ref = obs.astype(np.float64)
        received = 1.0
        missing = meta.get("missing")
        if missing is not None:
            mk = np.asarray(missing, dtype=bool)
            if mk.shape != obs.shape[:2]:
                raise ValueError(f"meta['missing'] shape {mk.shape} != observation {obs.shape[:2]}")
            ref = np.where(mk[:, :, None], means, ref)
            received = 1.0 - float(mk.mean())
        if received == 0.0:
            return 0.0
        return received * metrics.ssim(means, ref)
