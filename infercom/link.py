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
from .limits import check_channels, check_field
from .planes import sym_per_plane


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
        # the limits are the header's (infercom.limits.FIELD_RANGES): a LinkConfig always fits a frame header
        source.check_block(self.bh, self.bw)
        check_field("planes", self.planes)
        power.check_profile(self.profile)
        check_field("design_snr_db", self.design_snr_db)
        check_field("key_id", self.key_id)

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


def _n_symbols(n_values: int, planes: int) -> int:
    """Payload symbols of ``n_values`` low-res values with ``planes`` planes sent: ``planes * ceil(N/2)``."""
    return sym_per_plane(n_values) * int(planes)


def n_payload_symbols(height: int, width: int, channels: int, bh: int, bw: int, planes: int) -> int:
    """Payload QPSK symbols of one image: ``planes * ceil(N/2)``, ``N = ceil(H/bh)*ceil(W/bw)*C`` (no checks).

    The one definition of the count (``ImageLayout.n_symbols``, ``FrameHeader.n_symbols`` of an InferCom frame
    and ``infercom.protocol.n_payload_symbols`` are this function); docs/internals.md §1 has the layout."""
    lh, lw = source.lowres_shape(height, width, bh, bw)
    return _n_symbols(lh * lw * int(channels), planes)


def layout(height: int, width: int, channels: int, cfg: LinkConfig) -> ImageLayout:
    """Payload layout of an ``height x width x channels`` image under ``cfg``."""
    for name, v in (("height", height), ("width", width)):
        check_field(name, v, "image")
    check_channels(channels)
    lh, lw = source.lowres_shape(height, width, cfg.bh, cfg.bw)
    n_val = lh * lw * int(channels)
    return ImageLayout(int(height), int(width), int(channels), cfg.bh, cfg.bw, lh, lw, n_val,
                       sym_per_plane(n_val), _n_symbols(n_val, cfg.planes))


def _perm(lay: ImageLayout, cfg: LinkConfig, keyring) -> np.ndarray:
    key = interleave.get_keyring(keyring).key(cfg.key_id)
    return interleave.permutation(lay.n_symbols, key)


def _check_layout(lay: ImageLayout, cfg: LinkConfig) -> None:
    if (lay.bh, lay.bw) != (cfg.bh, cfg.bw) or lay.n_symbols != _n_symbols(lay.n_values, cfg.planes):
        raise ValueError("ImageLayout does not match LinkConfig (block size or plane count differ)")


def encode_lowres(lowres: np.ndarray, cfg: LinkConfig, keyring=None) -> np.ndarray:
    """uint8 low-res image (h, w, C) -> payload symbols (complex64, interleaved, power-scaled)."""
    v = np.ascontiguousarray(lowres, dtype=np.uint8).reshape(-1)
    key = interleave.get_keyring(keyring).key(cfg.key_id)
    perm = interleave.permutation(_n_symbols(v.size, cfg.planes), key)
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


def llr_planes_image(llr: np.ndarray, lay: ImageLayout, cfg: LinkConfig) -> np.ndarray:
    """LLRs (planes, n_values) -> float32 (low_h, low_w, C, planes): each low-res value's LLRs, MSB plane
    first, on the image grid (what a soft-input restorer reads, ``meta["plane_llr"]``)."""
    _check_layout(lay, cfg)
    llr = np.asarray(llr, dtype=np.float32)
    if llr.shape != (cfg.planes, lay.n_values):
        raise ValueError(f"LLR shape {llr.shape} != ({cfg.planes}, {lay.n_values})")
    return np.ascontiguousarray(llr.T).reshape(lay.low_h, lay.low_w, lay.channels, cfg.planes)


def observe(llr: np.ndarray, lay: ImageLayout, cfg: LinkConfig, snr_db: float, attempts: int = 1,
            spread_db: float = 0.0) -> tuple[np.ndarray, dict]:
    """What a receiver knows of an image from its (Chase-combined) LLRs: ``(observation, meta)``.

    ``observation``: the MMSE low-res image (:func:`llr_to_lowres`); ``meta``: the restorer's meta
    (docs/internals.md): block and image size, ``snr_db`` (the combined Es/N0, dB), ``attempts`` combined,
    ``missing`` (bool (low_h, low_w): values with no symbol at all, every LLR of every channel 0),
    ``obs_var`` (:func:`llr_to_lowres_var`), ``plane_llr`` (:func:`llr_planes_image`), the power allocation
    (``profile``, ``design_snr_db`` dB, ``plane_amplitudes`` float32 (planes,) ``sqrt(p_k)`` MSB first) and
    ``frame_snr_spread_db`` (the standard deviation of the frames' Es/N0, dB:
    :func:`infercom.channel.snr_spread_db`). One builder for the server, the experiments, the QoE calibration
    and the restorer's training pairs.
    """
    obs = llr_to_lowres(llr, lay, cfg, "mmse")
    missing = np.all(np.asarray(llr) == 0, axis=0).reshape(lay.low_h, lay.low_w, lay.channels).all(axis=2)
    meta = {"bh": lay.bh, "bw": lay.bw, "height": lay.height, "width": lay.width, "channels": lay.channels,
            "snr_db": float(snr_db), "attempts": int(attempts), "missing": missing,
            "obs_var": llr_to_lowres_var(llr, lay, cfg), "plane_llr": llr_planes_image(llr, lay, cfg),
            "profile": cfg.profile, "design_snr_db": float(cfg.design_snr_db),
            "plane_amplitudes": cfg.plane_amplitudes(), "frame_snr_spread_db": float(spread_db)}
    return obs, meta


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
