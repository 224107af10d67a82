# SPDX-License-Identifier: GPL-3.0-or-later
"""``bicubic``: the papers' conventional baseline -- interpolate the MMSE low-res observation to full size.

No prior, no learning: exactly ``infercom.link.upsample`` (PIL bicubic of the block means to the padded size,
then cropped). Config: ``method`` (``bicubic`` default; ``bilinear``, ``nearest``, ``lanczos`` for ablations).
"""

from __future__ import annotations

import numpy as np

from infercom import source

from .base import check_inputs, check_output, upsample_observation


class BicubicRestorer:
    name = "bicubic"

    def __init__(self, device: str = "cpu", config: dict | None = None):
        cfg = dict(config or {})
        self.method = cfg.pop("method", "bicubic")
        if self.method not in source.UPSAMPLE_METHODS:
            raise ValueError(f"bicubic restorer: unknown method {self.method!r}; choose from "
                             f"{', '.join(source.UPSAMPLE_METHODS)}")
        if cfg:
            raise ValueError(f"bicubic restorer: unknown config keys {sorted(cfg)}")
        self.device = device          # unused: runs on the CPU in numpy/PIL

    def restore(self, observation: np.ndarray, meta: dict) -> np.ndarray:
        obs, m = check_inputs(observation, meta)
        return check_output(upsample_observation(obs, m, self.method), m)
