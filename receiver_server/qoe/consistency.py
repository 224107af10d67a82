# SPDX-License-Identifier: GPL-3.0-or-later
"""``consistency``: offline semantic-consistency proxy (the default when no CLIP weights are configured).

Does the restoration stay faithful to what was received? The restored image is passed through the
transmitter's own source encoder (block means over ``bh x bw`` rounded to integers, exactly what was sent:
``infercom.source.lpf_encode``) and compared with what the receiver knows about each sent low-res value.

**v2, posterior-aware** (when ``meta["obs_var"]`` is given -- the server always gives it): the receiver's
knowledge of value ``v`` is its posterior, mean ``mu`` (the MMSE observation) and variance ``obs_var``
(``infercom.link.llr_to_lowres_var``, grey levels squared; bits independent under the posterior). Per value

    z = (blockmean(restored) - mu) / sqrt(obs_var + tau**2)

and the score is the fraction of received values with ``|z| <= z_max``, times the fraction of low-res pixels
received. ``tau`` (grey levels, default :data:`DEFAULT_TAU`) absorbs the rounding of the block means and a
restorer's own smoothing where the posterior is sharp; ``z_max`` (default :data:`DEFAULT_Z_MAX`). The posterior
is calibrated (the empirical MSE of the MMSE values equals the mean posterior variance, tests/test_reconstruct),
so the *true* image passes on almost every value at every SNR; a restorer that removes bit-error outliers moves
towards the true value and passes too, while one that invents or changes content where the observation is
reliable (small ``obs_var``) fails there. Uncertain values (bit errors likely, planes not received) constrain
little -- that is the point: the generative receiver is allowed to repair them.

**v1 fallback, only when ``meta["obs_var"]`` is absent**: SSIM (``infercom.metrics.ssim``) between those block
means and the MMSE observation. It rewards reproducing the noise of the observation: a restorer that removes
bit errors scores 0.4-0.65 where bicubic scores ~0.96 (docs/qoe.md).

In both, low-res pixels that had no symbols at all (``meta["missing"]``, bool (h, w)) carry no observation:
they are excluded and the score is multiplied by the fraction of pixels received -- whatever the restorer made
of a missing region was not checked against anything, so an image with a fraction ``f`` missing scores at most
``1 - f`` (all missing: 0). For an ACK/NACK loop this makes missing frames a reason to NACK unless negligible.

Higher is better; v2 range [0, 1], v1 [-1, 1] (in practice [0, 1]). Config: ``tau``, ``z_max`` (v2 only).
"""

from __future__ import annotations

import math

import numpy as np

from infercom import metrics, source

from ..restorers.base import EVIDENCE_Z
from .base import as_image, as_observation

#: tolerance added (in quadrature) to the posterior standard deviation, grey levels: the rounding of the block
#: means (0.29) and a smooth restorer's own deviation where the posterior is sharp -- bicubic's block means
#: of an error-free bsds500 observation deviate by <= 8 levels for 95 % and <= 14 for 99 % of the values, so
#: with z_max 3 about 99.7 % of them pass (docs/qoe.md)
DEFAULT_TAU = 6.0
#: a value passes when its standardised deviation from the posterior mean is at most this; the same z the
#: server holds every restoration to (``restorers.base.EVIDENCE_Z``), so an output held to the evidence passes
#: wherever the observation was received: 3 sqrt(v) + 1 <= 3 sqrt(v + tau^2) for tau >= 1/3
DEFAULT_Z_MAX = EVIDENCE_Z


class ConsistencyProxy:
    name = "consistency"
    higher_is_better = True
    range = (-1.0, 1.0)

    def __init__(self, device: str = "cpu", config: dict | None = None):
        cfg = dict(config or {})
        unknown = sorted(set(cfg) - {"tau", "z_max"})
        if unknown:
            raise ValueError(f"consistency config takes tau, z_max; got unknown keys {unknown}")
        self.tau = self._positive(cfg.get("tau", DEFAULT_TAU), "tau", allow_zero=True)
        self.z_max = self._positive(cfg.get("z_max", DEFAULT_Z_MAX), "z_max", allow_zero=False)

    @staticmethod
    def _positive(v, what: str, allow_zero: bool) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or v < 0 or (v == 0 and not allow_zero):
            raise ValueError(f"consistency {what} must be a finite number {'>=' if allow_zero else '>'} 0, "
                             f"got {v!r}")
        return float(v)

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
        mk = np.zeros(obs.shape[:2], dtype=bool)
        missing = meta.get("missing")
        if missing is not None:
            mk = np.asarray(missing, dtype=bool)
            if mk.shape != obs.shape[:2]:
                raise ValueError(f"meta['missing'] shape {mk.shape} != observation {obs.shape[:2]}")
        received = 1.0 - float(mk.mean())
        if received == 0.0:
            return 0.0
        var = meta.get("obs_var")
        if var is None:
            return received * self._ssim_v1(means, obs.astype(np.float64), mk)
        return received * self.pass_fraction(means, obs, self._check_var(var, obs.shape), mk)

    def pass_fraction(self, means: np.ndarray, mu: np.ndarray, var: np.ndarray, missing: np.ndarray) -> float:
        """Fraction of received values (``missing`` False) with ``|means - mu| <= z_max sqrt(var + tau^2)``."""
        dev = np.abs(means - mu.astype(np.float64))
        ok = dev <= self.z_max * np.sqrt(var.astype(np.float64) + self.tau ** 2)
        rec = np.broadcast_to(~missing[:, :, None], ok.shape)
        return float(ok[rec].mean())

    @staticmethod
    def _check_var(var, shape) -> np.ndarray:
        v = np.asarray(var)
        if v.ndim == 2:
            v = v[:, :, None]
        if v.shape != shape:
            raise ValueError(f"meta['obs_var'] shape {v.shape} != observation {shape}")
        if not np.issubdtype(v.dtype, np.number) or not np.all(np.isfinite(v)) or v.min() < 0:
            raise ValueError("meta['obs_var'] must be finite and >= 0 (posterior variance, grey levels^2)")
        return v

    @staticmethod
    def _ssim_v1(means: np.ndarray, ref: np.ndarray, mk: np.ndarray) -> float:
        """v1: SSIM(block means, observation), missing pixels filled with the restoration's own means."""
        ref = np.where(mk[:, :, None], means, ref)
        return metrics.ssim(means, ref)
