# SPDX-License-Identifier: GPL-3.0-or-later
"""The image-level link API: image <-> interleaved, power-scaled QPSK payload symbols.

Transmitter: image -> block-mean low-res image (:mod:`infercom.source`) -> values ``v`` (C order) -> top-m
bit planes -> Gray QPSK, two bits of one plane per symbol, amplitude ``sqrt(p_k)`` (:mod:`infercom.power`)
-> keyed interleaver (:mod:`infercom.interleave`). Receiver: equalised soft symbols + noise variance ->
LLRs (de-interleaved) -> MMSE or hard low-res values -> (bicubic) upsampling. Conventions:
docs/internals.md §1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import interleave, power, qpsk, reconstruct, source
from .planes import check_planes, sym_per_plane


@dataclass(frozen=True)
class LinkConfig:
    """Transmitter configuration (everything the header carries about the payload)."""

    bh: int = 3
    bw: int = 3
    planes: int = 8
    profile: str = "importance"
    design_snr_db: int = -4
    key_id: int = 0

    def __post_init__(self):
        source.check_block(self.bh, self.bw)
        check_planes(self.planes)
        if self.profile not in power.PROFILES:
            raise ValueError(f"unknown power profile {self.profile!r}; choose from {', '.join(power.PROFILES)}")
        d = self.design_snr_db
        if not isinstance(d, (int, np.integer)) or not power.DESIGN_SNR_MIN_DB <= d <= power.DESIGN_SNR_MAX_DB:
            raise ValueError(f"design_snr_db must be an integer in {power.DESIGN_SNR_MIN_DB}.."
                             f"{power.DESIGN_SNR_MAX_DB} dB, got {d!r}")
        if not isinstance(self.key_id, (int, np.integer)) or not 0 <= self.key_id <= interleave.MAX_KEY_ID:
            raise ValueError(f"key_id must be in 0..{interleave.MAX_KEY_ID}, got {self.key_id!r}")

    def rate(self) -> float:
        """Source rate: low-res values per image value, ``1/(bh*bw)``."""
        return 1.0 / (self.bh * self.bw)

    def plane_powers(self) -> np.ndarray:
        """float64 (planes,) powers ``p_k`` for k = 7 .. 8-m (MSB first), mean 1 (read-only)."""
        return power.plane_powers(self.profile, self.design_snr_db, self.planes)

    def plane_amplitudes(self) -> np.ndarray:
        """float32 (planes,) amplitudes ``sqrt(p_k)``, MSB first."""
        return power.plane_amplitudes(self.profile, self.design_snr_db, self.planes)


@dataclass(frozen=True)
class ImageLayout:
    """Sizes of one image's payload."""

    height: int
    width: int
    channels: int
    bh: int
    bw: int
    low_h: int
    low_w: int
    n_values: int
    n_sym_per_plane: int
    n_symbols: int


def layout(height: int, width: int, channels: int, cfg: LinkConfig) -> ImageLayout:
    """Payload layout of an ``height x width x channels`` image under ``cfg``."""
    for name, v in (("height", height), ("width", width)):
        if not isinstance(v, (int, np.integer)) or not 1 <= v <= source.MAX_SIDE:
            raise ValueError(f"image {name} must be an integer in 1..{source.MAX_SIDE}, got {v!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    lh, lw = source.lowres_shape(height, width, cfg.bh, cfg.bw)
    n_val = lh * lw * int(channels)
    s = sym_per_plane(n_val)
    return ImageLayout(int(height), int(width), int(channels), cfg.bh, cfg.bw, lh, lw, n_val, s,
                       s * cfg.planes)


def _perm(lay: ImageLayout, cfg: LinkConfig, keyring) -> np.ndarray:
    key = interleave.get_keyring(keyring).key(cfg.key_id)
    return interleave.permutation(lay.n_symbols, key)


def _check_layout(lay: ImageLayout, cfg: LinkConfig) -> None:
    if (lay.bh, lay.bw) != (cfg.bh, cfg.bw) or lay.n_symbols != lay.n_sym_per_plane * cfg.planes:
        raise ValueError("ImageLayout does not match LinkConfig (block size or plane count differ)")


def encode_lowres(lowres: np.ndarray, cfg: LinkConfig, keyring=None) -> np.ndarray:
    """uint8 low-res image (h, w, C) -> payload symbols (complex64, interleaved, power-scaled)."""
    v = np.ascontiguousarray(lowres, dtype=np.uint8).reshape(-1)
    s = sym_per_plane(v.size)
    key = interleave.get_keyring(keyring).key(cfg.key_id)
    perm = interleave.permutation(s * cfg.planes, key)
    return qpsk.map_values(v, cfg.plane_amplitudes(), perm)


def encode_image(img: np.ndarray, cfg: LinkConfig, keyring=None) -> tuple[np.ndarray, ImageLayout]:
    """Image (uint8 (H, W[, C])) -> (payload symbols complex64 (n_symbols,), layout)."""
    a = source.as_image3(img)
    lay = layout(a.shape[0], a.shape[1], a.shape[2], cfg)
    low = source.lpf_encode(a, cfg.bh, cfg.bw)
    return encode_lowres(low, cfg, keyring), lay


def soft_to_llr(y, noise_var, lay: ImageLayout, cfg: LinkConfig, keyring=None) -> np.ndarray:
    """Equalised soft symbols (as sent, interleaved) + noise variance -> float32 LLRs (planes, n_values),
    MSB plane first. ``noise_var``: scalar or per symbol; missing symbols ``y = 0, noise_var = inf``."""
    _check_layout(lay, cfg)
    return qpsk.llr_values(y, noise_var, cfg.plane_amplitudes(), lay.n_values, _perm(lay, cfg, keyring))


def llr_to_lowres(llr: np.ndarray, lay: ImageLayout, cfg: LinkConfig, mode: str = "mmse") -> np.ndarray:
    """LLRs (planes, n_values) -> float32 low-res image (low_h, low_w, C) in [0, 255] (``mode``: mmse|hard)."""
    _check_layout(lay, cfg)
    llr = np.asarray(llr)
    if llr.shape != (cfg.planes, lay.n_values):
        raise ValueError(f"LLR shape {llr.shape} != ({cfg.planes}, {lay.n_values})")
    if mode not in reconstruct.MODES:
        raise ValueError(f"unknown reconstruction mode {mode!r}; choose from {', '.join(reconstruct.MODES)}")
    return reconstruct.llr_to_values(llr, mode).reshape(lay.low_h, lay.low_w, lay.channels)


def llr_to_lowres_var(llr: np.ndarray, lay: ImageLayout, cfg: LinkConfig) -> np.ndarray:
    """LLRs (planes, n_values) -> float32 (low_h, low_w, C): posterior variance of each low-res value around
    its MMSE estimate (:func:`llr_to_lowres` with ``mode="mmse"``), grey levels squared; unsent planes and
    missing symbols (LLR 0) count as unknown fair bits (all missing: 5461.25, a uniform value on 0..255)."""
    _check_layout(lay, cfg)
    llr = np.asarray(llr)
    if llr.shape != (cfg.planes, lay.n_values):
        raise ValueError(f"LLR shape {llr.shape} != ({cfg.planes}, {lay.n_values})")
    return reconstruct.posterior_var(llr).reshape(lay.low_h, lay.low_w, lay.channels)


def decode_image(y, noise_var, lay: ImageLayout, cfg: LinkConfig, mode: str = "mmse",
                 keyring=None) -> np.ndarray:
    """``llr_to_lowres(soft_to_llr(...))``: float32 (low_h, low_w, C) in [0, 255]."""
    return llr_to_lowres(soft_to_llr(y, noise_var, lay, cfg, keyring), lay, cfg, mode)


def upsample(lowres: np.ndarray, lay: ImageLayout, method: str = "bicubic") -> np.ndarray:
    """Low-res image -> uint8 (height, width, C): interpolate to the padded size, crop (see source.py)."""
    return source.upsample(lowres, lay.height, lay.width, lay.bh, lay.bw, method)


def op_count(lay: ImageLayout) -> dict:
    """Transmitter source-coding arithmetic for this layout (see :func:`infercom.source.op_count`)."""
    return source.op_count(lay.height, lay.width, lay.channels, lay.bh, lay.bw)
