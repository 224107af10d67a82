# SPDX-License-Identifier: GPL-3.0-or-later
"""Block-mean low-pass source coding, its exact operation count, and upsampling back to full size.

Encoder: the image (H, W, C) is padded by edge replication to ``(h*bh, w*bw)`` with ``h = ceil(H/bh)``,
``w = ceil(W/bw)``; each colour channel's ``bh x bw`` block is summed and its mean rounded half up:
``v = floor(sum / n + 1/2) = (sum + n // 2) // n`` with ``n = bh*bw`` (exact integer arithmetic). The rate is
``1/(bh*bw)`` values per input value; ``bh = bw = 1`` is lossless.

Operation count (what the transmitter computes, padding included since padded samples enter the sums):
per low-res value ``n - 1`` additions, one division (a multiply by ``1/n`` in floating point) and one
rounding; nothing at all for ``n = 1``. Edge replication is a copy, not arithmetic.

Upsampling (the receiver's conventional baseline): bicubic interpolation (Pillow, ``a = -0.5``) of the
low-res image to the padded size ``(h*bh, w*bw)``, then a crop to ``(H, W)``. Pillow maps output pixel
centre ``x + 1/2`` to input coordinate ``(x + 1/2) / bw``, so a block mean sits at the centre of its block.
"""

from __future__ import annotations

import numba
import numpy as np
from PIL import Image

# block size 1..MAX_BLOCK and image sides 1..MAX_SIDE: the header's limits, defined in infercom.limits
from .limits import CHANNELS, MAX_BLOCK, MAX_SIDE, check_field  # noqa: F401  (MAX_BLOCK re-exported)

UPSAMPLE_METHODS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST,
                    "lanczos": Image.LANCZOS}


def check_block(bh: int, bw: int) -> tuple[int, int]:
    """``(bh, bw)`` as ints if both are integers in 1..MAX_BLOCK, else ValueError naming the bad one."""
    return check_field("bh", bh, "block size"), check_field("bw", bw, "block size")


def check_image_size(height: int, width: int, what: str = "image") -> None:
    """ValueError unless ``1 <= height, width <= MAX_SIDE`` (the header's image size limit)."""
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        zero = " (zero-size image)" if height < 1 or width < 1 else ""
        raise ValueError(f"{what}: size {height}x{width} (height x width) is outside 1..{MAX_SIDE} pixels per "
                         f"side{zero}")


def as_image3(img: np.ndarray, what: str = "image") -> np.ndarray:
    """Validate an image: uint8 (H, W) or (H, W, C) with C in {1, 3}, 1 <= H, W <= MAX_SIDE -> (H, W, C)
    (a view; a 2-D input gets C = 1). ValueError starting with ``what`` says what is wrong.

    The one image validator of the project: ``infercom.imageio.check_image`` (which keeps the input's shape),
    ``infercom.degrade`` and the QoE metrics (``receiver_server.qoe.base.as_image``) call it."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise ValueError(f"{what}: pixels must be uint8, got {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in CHANNELS:
        raise ValueError(f"{what}: shape must be (H, W), (H, W, 1) or (H, W, 3), got {np.asarray(img).shape}")
    check_image_size(a.shape[0], a.shape[1], what)
    return a


def lowres_shape(height: int, width: int, bh: int, bw: int) -> tuple[int, int]:
    """``(ceil(H/bh), ceil(W/bw))``."""
    return -(-int(height) // bh), -(-int(width) // bw)


def lpf_encode_numpy(img: np.ndarray, bh: int, bw: int) -> np.ndarray:
    """Reference block-mean encoder -> uint8 (h, w, C)."""
    bh, bw = check_block(bh, bw)
    a = as_image3(img)
    hh, ww = lowres_shape(a.shape[0], a.shape[1], bh, bw)
    p = np.pad(a, ((0, hh * bh - a.shape[0]), (0, ww * bw - a.shape[1]), (0, 0)), mode="edge")
    s = p.astype(np.int64).reshape(hh, bh, ww, bw, a.shape[2]).sum(axis=(1, 3))
    n = bh * bw
    return ((s + n // 2) // n).astype(np.uint8)


@numba.njit(cache=True, nogil=True)
def _lpf_kernel(img, bh, bw, out):
    hgt, wid, ch = img.shape
    hh, ww, _ = out.shape
    n = bh * bw
    half = n // 2
    for y in range(hh):
        for x in range(ww):
            for c in range(ch):
                s = 0
                for dy in range(bh):
                    yy = min(y * bh + dy, hgt - 1)
                    for dx in range(bw):
                        xx = min(x * bw + dx, wid - 1)
                        s += img[yy, xx, c]
                out[y, x, c] = (s + half) // n


def lpf_encode(img: np.ndarray, bh: int, bw: int) -> np.ndarray:
    """Block-mean encoder (numba) -> uint8 (ceil(H/bh), ceil(W/bw), C). A 2-D image gives C = 1."""
    bh, bw = check_block(bh, bw)
    a = np.ascontiguousarray(as_image3(img))
    hh, ww = lowres_shape(a.shape[0], a.shape[1], bh, bw)
    out = np.empty((hh, ww, a.shape[2]), np.uint8)
    if bh == 1 and bw == 1:
        out[...] = a
    else:
        _lpf_kernel(a, bh, bw, out)
    return out


def block_means(img: np.ndarray, bh: int, bw: int) -> np.ndarray:
    """Unrounded block means (float64 (h, w, C)) of a real (H, W, C) image with the encoder's edge padding."""
    a = np.asarray(img, dtype=np.float64)
    hh, ww = lowres_shape(a.shape[0], a.shape[1], bh, bw)
    p = np.pad(a, ((0, hh * bh - a.shape[0]), (0, ww * bw - a.shape[1]), (0, 0)), mode="edge")
    return p.reshape(hh, bh, ww, bw, a.shape[2]).mean(axis=(1, 3))


def project_block_means(img: np.ndarray, target: np.ndarray, tol: np.ndarray | float, bh: int, bw: int,
                        smooth_iters: int = 3, exact_iters: int = 6) -> np.ndarray:
    """Move an image as little as needed so that each ``bh x bw`` block mean (encoder padding) lies within
    ``tol`` grey levels of ``target``.

    ``img``: uint8 (H, W, C); ``target``: (h, w, C) grey levels; ``tol``: scalar or (h, w, C), >= 0, ``inf``
    where a value is unconstrained. Blocks already within ``tol`` are moved only by the spill-over of the
    smooth passes. ``smooth_iters`` passes subtract each block's excess spread by bilinear interpolation
    (no block-edge steps); then ``exact_iters`` passes shift the blocks still outside by their excess
    (repeated because pixels clip at 0 and 255). Returns uint8 (H, W, C): after the final rounding each block
    mean is within ``tol + 0.5`` of its target wherever the target lies in [0, 255].
    """
    bh, bw = check_block(bh, bw)
    a = as_image3(img)
    H, W, C = a.shape
    hh, ww = lowres_shape(H, W, bh, bw)
    t = np.asarray(target, dtype=np.float64)
    if t.ndim == 2:
        t = t[:, :, None]
    if t.shape != (hh, ww, C):
        raise ValueError(f"target shape {t.shape} != ({hh}, {ww}, {C}) for {H}x{W} with {bh}x{bw} blocks")
    r = np.broadcast_to(np.asarray(tol, dtype=np.float64), t.shape)
    if np.any(np.isnan(r)) or np.any(r < 0):
        raise ValueError("tol must be >= 0 (inf: unconstrained)")
    x = a.astype(np.float64)

    def excess() -> np.ndarray:
        d = block_means(x, bh, bw) - t
        return np.where(np.isfinite(r), d - np.clip(d, -r, r), 0.0)

    for _ in range(smooth_iters if bh * bw > 1 else 0):
        e = excess()
        if not np.any(e):
            break
        for c in range(C):
            im = Image.fromarray(np.ascontiguousarray(e[:, :, c], dtype=np.float32), mode="F")
            up = np.asarray(im.resize((ww * bw, hh * bh), Image.BILINEAR), dtype=np.float64)
            x[:, :, c] -= up[:H, :W]
        np.clip(x, 0.0, 255.0, out=x)
    for _ in range(exact_iters):
        e = excess()
        if not np.any(e):
            break
        x -= np.repeat(np.repeat(e, bh, axis=0), bw, axis=1)[:H, :W]
        np.clip(x, 0.0, 255.0, out=x)
    return np.rint(x).astype(np.uint8)


def op_count(height: int, width: int, channels: int, bh: int, bw: int) -> dict:
    """Exact arithmetic of :func:`lpf_encode` for one image (padding included).

    Returns a dict: ``adds``, ``muls`` (the division by ``n``), ``rounds``, ``total`` (= sum of the three,
    the figure compared as "FLOPs"), ``values`` (low-res values), ``input_values`` (H*W*C),
    ``padded_values`` (h*bh * w*bw * C), ``per_input_value`` (total / input_values).
    """
    bh, bw = check_block(bh, bw)
    hh, ww = lowres_shape(height, width, bh, bw)
    n_val = hh * ww * int(channels)
    n = bh * bw
    adds = n_val * (n - 1)
    muls = n_val if n > 1 else 0
    rounds = n_val if n > 1 else 0
    total = adds + muls + rounds
    inp = int(height) * int(width) * int(channels)
    return {"adds": adds, "muls": muls, "rounds": rounds, "total": total, "values": n_val,
            "input_values": inp, "padded_values": hh * bh * ww * bw * int(channels),
            "per_input_value": total / inp if inp else 0.0}


def upsample(lowres: np.ndarray, height: int, width: int, bh: int, bw: int,
             method: str = "bicubic") -> np.ndarray:
    """Interpolate a low-res image (h, w, C) (any real dtype, grey levels) to uint8 (height, width, C)."""
    bh, bw = check_block(bh, bw)
    if method not in UPSAMPLE_METHODS:
        raise ValueError(f"unknown upsampling method {method!r}; choose from {', '.join(UPSAMPLE_METHODS)}")
    lo = np.asarray(lowres, dtype=np.float32)
    if lo.ndim == 2:
        lo = lo[:, :, None]
    hh, ww = lowres_shape(height, width, bh, bw)
    if lo.ndim != 3 or lo.shape[:2] != (hh, ww):
        raise ValueError(f"low-res image shape {lo.shape} does not match ({hh}, {ww}, C) for "
                         f"{height}x{width} with {bh}x{bw} blocks")
    if not np.all(np.isfinite(lo)):
        raise ValueError("low-res image contains NaN or inf")
    out = np.empty((height, width, lo.shape[2]), np.uint8)
    if bh == 1 and bw == 1:
        out[...] = np.clip(np.rint(lo), 0, 255)
        return out
    filt = UPSAMPLE_METHODS[method]
    for c in range(lo.shape[2]):
        im = Image.fromarray(np.ascontiguousarray(lo[:, :, c]), mode="F")
        up = np.asarray(im.resize((ww * bw, hh * bh), filt), dtype=np.float32)
        out[:, :, c] = np.clip(np.rint(up[:height, :width]), 0, 255)
    return out
