# SPDX-License-Identifier: GPL-3.0-or-later
"""MATLAB-compatible ``imresize`` (bicubic, antialiased) in numpy.

NIQE's reference implementation halves the image with MATLAB's ``imresize(im, 0.5)``; the score depends on
that exact filter, so this module reproduces MATLAB's algorithm:

* cubic convolution kernel with ``a = -0.5`` (Keys), support 4 input pixels;
* when shrinking (``scale < 1``) and antialiasing, the kernel is stretched by ``1/scale`` and scaled by
  ``scale`` (MATLAB's ``h = @(x) scale * cubic(scale * x)``);
* output pixel ``i`` (1-based) maps to input coordinate ``u = i/scale + 0.5*(1 - 1/scale)``;
* weights normalised to sum 1 per output pixel; indices outside the image mirror symmetrically
  (``aux = [1:n, n:-1:1]``), exactly as MATLAB's ``contributions``;
* the dimension with the larger scale change is resized first, then the other one.

Works on float arrays of shape ``(H, W)`` or ``(H, W, C)``; values are not rounded or clipped (as MATLAB does
for ``double`` input).
"""

from __future__ import annotations

import math

import numpy as np


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB ``imresize`` ``'bicubic'``)."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1.0)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1.0) & (ax <= 2.0)))


def contributions(in_len: int, out_len: int, scale: float, antialiasing: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(out_len, P)`` and 0-based input indices ``(out_len, P)`` of MATLAB's resampling along one axis.

    Columns whose weights are zero for every output pixel are dropped (as MATLAB does); indices are already
    mirrored into ``[0, in_len)``.
    """
    kernel_width = 4.0
    if scale < 1 and antialiasing:
        kernel_width = kernel_width / scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    p = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(p, dtype=np.float64)[None, :]          # 1-based
    dist = u[:, None] - idx
    if scale < 1 and antialiasing:
        w = scale * cubic(dist * scale)
    else:
        w = cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    keep = np.any(w != 0, axis=0)
    w = w[:, keep]
    idx = idx[:, keep].astype(np.int64)
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    idx = aux[np.mod(idx - 1, aux.size)]
    return w, idx


def _resize_axis(img: np.ndarray, axis: int, out_len: int, scale: float, antialiasing: bool) -> np.ndarray:
    w, idx = contributions(img.shape[axis], out_len, scale, antialiasing)
    moved = np.moveaxis(img, axis, 0)                                       # (in_len, ...)
    gathered = moved[idx]                                                   # (out_len, P, ...)
    wshape = w.shape + (1,) * (moved.ndim - 1)
    out = np.sum(gathered * w.reshape(wshape), axis=1)
    return np.moveaxis(out, 0, axis)


def imresize(img: np.ndarray, scale: float | None = None, output_shape: tuple[int, int] | None = None,
             antialiasing: bool = True) -> np.ndarray:
    """Resize like MATLAB ``imresize(img, scale)`` (bicubic) or ``imresize(img, [rows cols])``.

    ``img``: float array ``(H, W)`` or ``(H, W, C)`` (any value range; integer input is converted to
    float64). Returns float64. Give exactly one of ``scale`` (> 0) or ``output_shape``.
    """
    a = np.asarray(img)
    if a.ndim not in (2, 3):
        raise ValueError(f"imresize expects a (H, W) or (H, W, C) array, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"imresize got an empty image of shape {a.shape}")
    if (scale is None) == (output_shape is None):
        raise ValueError("give exactly one of scale or output_shape")
    a = a.astype(np.float64, copy=False)
    h, w = a.shape[:2]
    if scale is not None:
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        scales = (float(scale), float(scale))
        out_hw = (int(math.ceil(h * scale)), int(math.ceil(w * scale)))
    else:
        oh, ow = (int(v) for v in output_shape)
        if oh <= 0 or ow <= 0:
            raise ValueError(f"output_shape must be positive, got {output_shape}")
        out_hw = (oh, ow)
        scales = (oh / h, ow / w)
    # MATLAB resizes the dimension with the smallest scale first.
    order = np.argsort(scales, kind="stable")
    out = a
    for axis in order:
        out = _resize_axis(out, int(axis), out_hw[axis], scales[axis], antialiasing)
    return out
