# SPDX-License-Identifier: GPL-3.0-or-later
"""``reliability``: did enough information arrive? The expected PSNR of the received low-res observation,
computed from the posterior alone (no reference, no restoration needed).

The receiver knows, per low-res value, the posterior variance of its MMSE estimate (``meta["obs_var"]``,
grey levels squared, ``infercom.link.llr_to_lowres_var``). The posterior is calibrated (tests/test_reconstruct:
the mean squared error of the MMSE values equals the mean posterior variance), so

    reliability = 10 log10(255^2 / mean(obs_var))      dB

is an unbiased-in-MSE estimate of the PSNR of the MMSE observation against the original's block means. Low-res
pixels that had no symbols at all (``meta["missing"]``, bool (h, w)) count with the maximal variance
:data:`MISSING_VAR` (a uniform value on 0..255), whatever ``obs_var`` says there. The score ignores the restored
image: it measures the evidence, not how natural the restoration looks -- a generative restorer makes every
output look natural and faithful to very uncertain evidence, so naturalness and consistency cannot tell that
too little arrived; this can, at the cost of one mean. Higher is better, range [0, :data:`MAX_DB`] dB (capped
where ``obs_var`` -> 0; the floor is 10 log10(255^2/5461.25) = 10.78 dB). Config: none.
"""

from __future__ import annotations

import math

import numpy as np

from .base import as_observation

#: posterior variance of a value with no information (uniform on 0..255: (256^2 - 1) / 12), grey levels^2
MISSING_VAR = (256.0 ** 2 - 1.0) / 12.0
#: cap of the score (obs_var -> 0 would be +inf), dB
MAX_DB = 100.0


def expected_psnr(obs_var: np.ndarray, missing: np.ndarray | None = None) -> float:
    """``10 log10(255^2 / mean(obs_var))`` in dB, values of ``missing`` pixels at :data:`MISSING_VAR`,
    capped at :data:`MAX_DB`. ``obs_var``: (h, w) or (h, w, C), finite, >= 0; ``missing``: bool (h, w)."""
    v = np.asarray(obs_var)
    if v.ndim == 2:
        v = v[:, :, None]
    if v.ndim != 3 or v.size == 0 or not np.issubdtype(v.dtype, np.number):
        raise ValueError(f"obs_var must be a numeric (h, w) or (h, w, C) array, got {v.dtype} {v.shape}")
    v = v.astype(np.float64)
    if not np.all(np.isfinite(v)) or v.min() < 0:
        raise ValueError("obs_var must be finite and >= 0 (posterior variance, grey levels^2)")
    if missing is not None:
        mk = np.asarray(missing, dtype=bool)
        if mk.shape != v.shape[:2]:
            raise ValueError(f"meta['missing'] shape {mk.shape} != obs_var {v.shape[:2]}")
        v = np.where(mk[:, :, None], MISSING_VAR, v)
    mse = float(v.mean())
    if mse <= 255.0 ** 2 * 10.0 ** (-MAX_DB / 10.0):
        return MAX_DB
    return float(min(MAX_DB, 10.0 * math.log10(255.0 ** 2 / mse)))


class Reliability:
    name = "reliability"
    higher_is_better = True
    needs_restored = False            # scores the observation alone: the gate evaluates it before restoring
    range = (0.0, MAX_DB)

    def __init__(self, device: str = "cpu", config: dict | None = None):
        if config:
            raise ValueError(f"reliability takes no config, got keys {sorted(config)}")

    def score(self, restored: np.ndarray | None = None, observation: np.ndarray | None = None,
              meta: dict | None = None) -> float:
        """Expected PSNR (dB) of the MMSE observation from ``meta["obs_var"]`` (and ``meta["missing"]``);
        ``restored`` is not used. ValueError without ``obs_var`` or when its shape differs from the
        observation's."""
        if not meta or meta.get("obs_var") is None:
            raise ValueError("reliability needs meta['obs_var'] (posterior variance of the MMSE observation, "
                             "infercom.link.llr_to_lowres_var)")
        var = np.asarray(meta["obs_var"])
        if observation is not None:
            obs = as_observation(observation)
            v3 = var[:, :, None] if var.ndim == 2 else var
            if v3.shape != obs.shape:
                raise ValueError(f"meta['obs_var'] shape {var.shape} != observation {obs.shape}")
        return expected_psnr(var, meta.get("missing"))
