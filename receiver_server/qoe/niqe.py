# SPDX-License-Identifier: GPL-3.0-or-later
"""``niqe``: no-reference naturalness (NIQE) with the standard pristine parameters. Lower is better.

The pristine model (``niqe_pris_params.npz``: ``mu_pris_param`` (1, 36), ``cov_pris_param`` (36, 36),
``gaussian_window`` (7, 7)) is the one shipped with the MATLAB release and basicsr; ``make setup`` fetches it
from the basicsr 1.4.2 sdist into ``third_party_data/`` (it is not vendored).

Config keys: ``params_path`` (default ``<repo>/third_party_data/niqe_pris_params.npz``), ``convert_to``
(``"y"``: Y of MATLAB's rgb2ycbcr, basicsr's default; ``"gray"``: MATLAB ``rgb2gray``, as the original
``computequality.m``), ``crop_border`` (pixels cropped on every side before scoring, default 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import as_image, rgb_to_gray, rgb_to_y
from .niqe_core import BLOCK, niqe

DEFAULT_PARAMS = Path(__file__).resolve().parents[2] / "third_party_data" / "niqe_pris_params.npz"


def load_pristine(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu (36,), cov (36, 36), gaussian window (7, 7)) from the basicsr ``niqe_pris_params.npz``."""
    p = Path(path) if path is not None else DEFAULT_PARAMS
    if not p.is_file():
        raise FileNotFoundError(f"NIQE pristine parameters not found at {p}; run `make setup` (it fetches "
                                "niqe_pris_params.npz from the basicsr sdist) or set config 'params_path'")
    with np.load(p) as d:
        try:
            mu = np.asarray(d["mu_pris_param"], dtype=np.float64).ravel()
            cov = np.asarray(d["cov_pris_param"], dtype=np.float64)
            win = np.asarray(d["gaussian_window"], dtype=np.float64)
        except KeyError as exc:
            raise ValueError(f"{p} is not a NIQE parameter file (missing {exc})") from None
    if mu.shape != (36,) or cov.shape != (36, 36) or win.ndim != 2:
        raise ValueError(f"{p}: unexpected NIQE parameter shapes {mu.shape}, {cov.shape}, {win.shape}")
    return mu, cov, win


class NIQE:
    """NIQE score of the restored image (observation and meta are not used)."""

    name = "niqe"
    higher_is_better = False
    range = (0.0, float("inf"))

    def __init__(self, device: str = "cpu", config: dict | None = None):
        cfg = dict(config or {})
        self.convert_to = cfg.pop("convert_to", "y")
        if self.convert_to not in ("y", "gray"):
            raise ValueError(f"niqe convert_to must be 'y' or 'gray', got {self.convert_to!r}")
        self.crop_border = int(cfg.pop("crop_border", 0))
        if self.crop_border < 0:
            raise ValueError(f"niqe crop_border must be >= 0, got {self.crop_border}")
        self.mu, self.cov, self.window = load_pristine(cfg.pop("params_path", None))
        if cfg:
            raise ValueError(f"unknown niqe config keys: {sorted(cfg)}")

    def grey(self, img: np.ndarray) -> np.ndarray:
        """The grey plane NIQE scores: converted, border-cropped and rounded (as the reference)."""
        a = as_image(img)
        g = rgb_to_y(a) if self.convert_to == "y" else rgb_to_gray(a)
        c = self.crop_border
        if c:
            g = g[c:-c, c:-c]
        return np.round(g)

    def applies(self, height: int, width: int) -> bool:
        """Whether an image of ``height x width`` pixels can be scored: NIQE needs two whole 96x96 patches
        after the border crop (e.g. 96x192). The server skips a metric that does not apply (docs/qoe.md)."""
        h, w = height - 2 * self.crop_border, width - 2 * self.crop_border
        return (h // BLOCK) * (w // BLOCK) >= 2

    def score(self, restored: np.ndarray, observation: np.ndarray | None = None,
              meta: dict | None = None) -> float:
        g = self.grey(restored)
        if (g.shape[0] // BLOCK) * (g.shape[1] // BLOCK) < 2:
            raise ValueError(f"NIQE needs an image of at least two {BLOCK}x{BLOCK} patches, got {g.shape}")
        return niqe(g, self.mu, self.cov, self.window)
