# SPDX-License-Identifier: GPL-3.0-or-later
"""Image loading with validation: anything Pillow reads -> uint8 RGB (H, W, 3); clear errors otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .limits import MAX_BLOCK
from .source import as_image3, check_image_size

#: file suffixes :func:`list_images` picks up
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp", ".gif")


def load_image(path, mode: str = "RGB") -> np.ndarray:
    """Read an image file as uint8 ``(H, W, 3)`` (``mode="RGB"``) or ``(H, W)`` (``mode="L"``).

    Raises ValueError for a missing or non-image file, a zero-size image, or one larger than ``MAX_SIDE``
    (4096) pixels per side (the frame header's limit; checked before the pixels are decoded). Pillow's
    decompression-bomb check is kept.
    """
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such file")
    try:
        with Image.open(p) as im:
            w, h = im.size
            check_image_size(h, w, str(p))
            arr = np.asarray(im.convert(mode), dtype=np.uint8)
    except UnidentifiedImageError:
        raise ValueError(f"{p}: not an image Pillow can read") from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{p}: cannot decode image: {exc}") from None
    return check_image(arr, str(p))


def check_image(img: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate an in-memory image (:func:`infercom.source.as_image3`: uint8, (H, W) or (H, W, 1|3), 1..MAX_SIDE
    per side). Returns it as an array of its own shape (a 2-D image stays 2-D)."""
    as_image3(img, name)
    return np.asarray(img)


def list_images(directory) -> list[Path]:
    """Image files (by suffix) in ``directory``, sorted by name. ValueError if none or not a directory."""
    d = Path(directory)
    if d.is_file():
        return [d]
    if not d.is_dir():
        raise ValueError(f"{d}: no such directory")
    files = sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{d}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def save_image(path, img: np.ndarray) -> None:
    """Write a uint8 image (PNG etc. by suffix), creating the parent folder."""
    a = check_image(img)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


def parse_rate(text: str) -> tuple[int, int]:
    """Source rate -> block size ``(bh, bw)``: ``"1/9"`` -> (3, 3), ``"1/2"`` -> (1, 2), ``"1/6"`` -> (2, 3),
    also ``"0.25"``; the most nearly square block with ``bh <= bw <= 8`` and ``bh*bw = 1/rate``.
    Also accepts ``"BHxBW"``. ValueError for anything else (e.g. rate 1/7, 2/3, 1/100). ``8`` is
    ``infercom.limits.MAX_BLOCK``."""
    t = str(text).strip().lower()
    if "x" in t:
        try:
            bh, bw = (int(v) for v in t.split("x"))
        except ValueError:
            raise ValueError(f"block size must look like BHxBW, got {text!r}") from None
        if not (1 <= bh <= MAX_BLOCK and 1 <= bw <= MAX_BLOCK):
            raise ValueError(f"block size {text!r} outside 1..{MAX_BLOCK} per side")
        return bh, bw
    try:
        if "/" in t:
            num, den = t.split("/")
            r = float(num) / float(den)
        else:
            r = float(t)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"cannot parse rate {text!r} (use e.g. 1/9 or 3x3)") from None
    if not (0 < r <= 1):
        raise ValueError(f"rate must be in (0, 1], got {text!r}")
    n = round(1 / r)
    if abs(1 / r - n) > 1e-6 * n:
        raise ValueError(f"unsupported rate {text!r}: must be 1/n with n = bh*bw")
    best = None
    for bh in range(1, MAX_BLOCK + 1):
        if n % bh == 0 and bh <= n // bh <= MAX_BLOCK:
            best = (bh, n // bh)
    if best is None:
        raise ValueError(f"unsupported rate {text!r}: 1/{n} is not bh*bw with 1 <= bh <= bw <= {MAX_BLOCK}")
    return best


def load_folders(dirs, min_side: int = 1) -> tuple[list[np.ndarray], list[str]]:
    """The images of folders (or files) ``dirs`` (:func:`list_images`, :func:`load_image`) whose sides are at
    least ``min_side`` pixels, with their paths: the training sets of the learned models (the restorer,
    Deep-JSCC). ValueError when none is left."""
    imgs, names = [], []
    for d in dirs:
        for path in list_images(d):
            a = load_image(path)
            if min(a.shape[:2]) >= min_side:
                imgs.append(a)
                names.append(str(path))
    if not imgs:
        raise ValueError(f"no training image of at least {min_side}x{min_side} pixels in {list(dirs)}")
    return imgs, names
