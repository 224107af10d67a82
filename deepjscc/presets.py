# SPDX-License-Identifier: GPL-3.0-or-later
"""Deep-JSCC's vocabulary without torch: the bandwidth presets (latent channels ``c`` of each), the exact
channel uses ``k`` of an image (:func:`n_channel_uses`), padding to the encoder's stride, the latent's
capacity, and the retransmission triggers.  :mod:`deepjscc.model` builds the network from them; the CLI's ``--help`` reads them without
importing torch."""

from __future__ import annotations

import math

from infercom.limits import check_channels
from infercom.link import n_payload_symbols
from infercom.source import check_image_size

__all__ = ["PRESETS", "RATIO_PREFIX", "latent_channels", "preset_arg", "TRIGGERS", "STRIDE", "LINK_BH", "LINK_BW", "LINK_PLANES", "check_preset", "n_channel_uses",
           "padded_size", "latent_shape", "latent_capacity", "check_capacity"]

#: bandwidth preset -> latent channels ``c`` (see :func:`n_channel_uses` for ``k``)
PRESETS: dict[str, int] = {"channel-uses": 56, "paper": 8}
#: retransmission triggers of deepjscc.simulate: the server's QoE gate, or the oracle PSNR check
TRIGGERS = ("qoe", "psnr")
#: total down-sampling factor of the encoder (two stride-2 layers)
STRIDE = 4
#: the InferCom link configuration whose payload the ``channel-uses`` preset matches: rate 1/9, 8 planes
LINK_BH, LINK_BW, LINK_PLANES = 3, 3, 8


# ---------------------------------------------------------------------------------------------------- sizes


#: prefix of a preset with any bandwidth ratio: ``ratio-R`` sends ``k = round(R * H * W * C)`` symbols
RATIO_PREFIX = "ratio-"


def _ratio_of(preset: str) -> float | None:
    """``R`` of a ``ratio-R`` preset (``0 < R <= 1``), None for a named preset; ValueError otherwise."""
    if not isinstance(preset, str) or not preset.startswith(RATIO_PREFIX):
        return None
    try:
        r = float(preset[len(RATIO_PREFIX):])
    except ValueError:
        r = math.nan
    if not 0.0 < r <= 1.0:
        raise ValueError(f"Deep-JSCC preset {preset!r}: the bandwidth ratio k/n must be a number in (0, 1]")
    return r


def check_preset(preset: str) -> str:
    """The preset name (``channel-uses``, ``paper``, or ``ratio-R`` for any bandwidth ratio ``k/n = R``), or
    ValueError naming the choices."""
    if preset in PRESETS or _ratio_of(preset) is not None:
        return preset
    raise ValueError(f"unknown Deep-JSCC preset {preset!r}; choose from {', '.join(PRESETS)} or "
                     f"{RATIO_PREFIX}R (k/n = R, e.g. {RATIO_PREFIX}0.25)")


def preset_arg(text: str) -> str:
    """argparse type of ``--preset``: :func:`check_preset` with argparse's error."""
    import argparse

    try:
        return check_preset(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def latent_channels(preset: str) -> int:
    """Latent channels ``c`` of a preset: :data:`PRESETS` for the named ones; for ``ratio-R`` the smallest
    even ``c`` whose latent holds ``k`` for every RGB size, ``c = 2 ceil(48 R)`` (``c / 32`` complex symbols per
    pixel against ``3 R``; ``ratio-0.0833`` gives ``paper``'s 8)."""
    r = _ratio_of(check_preset(preset))
    return PRESETS[preset] if r is None else 2 * math.ceil(48 * r - 1e-9)


def _check_size(height: int, width: int, channels: int) -> tuple[int, int, int]:
    """``(H, W, C)`` as ints within the link's limits (``infercom.source.check_image_size``, C in 1, 3)."""
    check_image_size(int(height), int(width))
    return int(height), int(width), check_channels(int(channels))


def n_channel_uses(preset: str, height: int, width: int, channels: int = 3) -> int:
    """Exact channel uses ``k`` (complex symbols sent per image) of a ``height x width x channels`` image.

    * ``channel-uses``: the InferCom link's payload symbols at rate 1/9 with all 8 bit planes,
      ``infercom.link.n_payload_symbols(H, W, C, 3, 3, 8)`` (``8 * ceil(ceil(H/3)*ceil(W/3)*C / 2)``), so both
      systems use the channel equally often;
    * ``paper``: bandwidth ratio ``k/n = 1/12`` of the paper's figures, ``n = H*W*C`` real source values:
      ``k = round(H*W*C / 12)`` with halves rounded up (``(H*W*C + 6) // 12``), at least 1 (for images of fewer
      than 6 values);
    * ``ratio-R``: any bandwidth ratio, ``k = round(R*H*W*C)`` (halves up), at least 1.
    """
    r = _ratio_of(check_preset(preset))
    h, w, c = _check_size(height, width, channels)
    if preset == "channel-uses":
        return int(n_payload_symbols(h, w, c, LINK_BH, LINK_BW, LINK_PLANES))
    if r is not None:
        return max(1, math.floor(r * h * w * c + 0.5))
    return max(1, (h * w * c + 6) // 12)


def padded_size(height: int, width: int) -> tuple[int, int]:
    """``(H', W')``: the image size edge-replicated up to multiples of :data:`STRIDE` (4) pixels."""
    return -(-int(height) // STRIDE) * STRIDE, -(-int(width) // STRIDE) * STRIDE


def latent_shape(c: int, height: int, width: int) -> tuple[int, int, int]:
    """Latent tensor shape ``(c, ceil(H/4), ceil(W/4))`` of one image."""
    hp, wp = padded_size(height, width)
    return int(c), hp // STRIDE, wp // STRIDE


def latent_capacity(c: int, height: int, width: int) -> int:
    """Complex symbols the latent holds: ``c * ceil(H/4) * ceil(W/4) // 2`` (``c`` is even)."""
    a, b, d = latent_shape(c, height, width)
    return a * b * d // 2


def check_capacity(c: int, k: int, height: int, width: int) -> None:
    """ValueError when the latent of an ``height x width`` image holds fewer than ``k`` complex symbols."""
    cap = latent_capacity(c, height, width)
    if k < 1 or k > cap:
        raise ValueError(f"a {height}x{width} image needs k={k} channel uses but the Deep-JSCC latent "
                         f"(c={c}, {latent_shape(c, height, width)}) holds {cap} complex symbols")
