# SPDX-License-Identifier: GPL-3.0-or-later
"""Deep-JSCC benchmark (suite ``deepjscc`` of ``infercom bench``: ``run_bench(out_dir) -> dict``).

Per preset (``channel-uses``, ``paper``): wall time in seconds of the numpy-facing codec on the CPU for one
Kodak-size image (512x768 RGB: ``kodak24/kodim01.png`` when the datasets are there, else a seeded synthetic
image of that size -- convolution time does not depend on the content), best of ``REPEATS`` after one warm-up
call, at the torch thread count as set (``torch.get_num_threads()``, recorded): ``encode`` (uint8 image ->
``k`` unit-power complex symbols) and ``decode`` (``k`` symbols -> uint8 image); plus the exact encoder FLOPs
(:func:`deepjscc.flops.encoder_flops`) and the encoder's GFLOP/s.

Weights do not change the time, so a preset without a shipped checkpoint (``deepjscc/checkpoints/``) is timed
with a random-init model of the same architecture; its row says so (``weights``). Writes
``out_dir/deepjscc.json``. ``INFERCOM_BENCH_QUICK=1``: fewer repeats.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
import torch  # the suite is reported skipped where torch is missing (infercom_apps.bench)

from infercom.bench_core import best_time

from .model import PRESETS, DeepJSCC, DeepJSCCCodec, find_checkpoint, latent_channels

__all__ = ["REPEATS", "HEIGHT", "WIDTH", "bench_codec", "run_bench"]

REPEATS = 5
#: the Kodak image size (landscape), pixels
HEIGHT, WIDTH = 512, 768


def _image() -> tuple[np.ndarray, str]:
    from infercom import imageio  # noqa: PLC0415
    from infercom.bench_core import KODAK  # noqa: PLC0415

    if KODAK.is_file():
        img = imageio.load_image(KODAK)
        if img.shape[:2] == (HEIGHT, WIDTH):
            return img, str(KODAK.name)
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8), "synthetic 512x768 (seed 0)"


def _best(fn, repeats: int) -> float:
    """Best wall time (s) of ``repeats`` calls of ``fn()`` after one warm-up call."""
    fn()
    return best_time(fn, repeats)


def bench_codec(codec, img: np.ndarray, repeats: int = REPEATS) -> dict:
    """Encoder and decoder time (s, best of ``repeats``) and encoder FLOPs of ``codec`` on ``img``."""
    h, w, c = img.shape
    k = codec.n_channel_uses(h, w, c)
    z = codec.encode(img)
    y = (z + 0.1 * (np.random.default_rng(1).standard_normal(k) + 1j * np.random.default_rng(2).standard_normal(k))
         ).astype(np.complex64)
    t_enc = _best(lambda: codec.encode(img), repeats)
    t_dec = _best(lambda: codec.decode(y, h, w, c), repeats)
    flops = int(codec.encoder_flops(h, w, c))
    return {"k": int(k), "bandwidth_ratio": k / (h * w * c), "encoder_flops": flops, "encode_s": t_enc,
            "decode_s": t_dec, "encoder_gflops_per_s": flops / t_enc / 1e9}


def run_bench(out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    repeats = 2 if os.environ.get("INFERCOM_BENCH_QUICK") else REPEATS
    img, src = _image()
    rows = []
    for preset in PRESETS:
        try:
            path = find_checkpoint(preset)
            codec = DeepJSCCCodec(checkpoint=path, preset=preset)
            weights = f"checkpoint {path.name}"
        except (FileNotFoundError, ValueError) as exc:
            torch.manual_seed(0)
            codec = DeepJSCCCodec(preset=preset, model=DeepJSCC(latent_channels(preset)))
            weights = f"random init (no single shipped checkpoint: {exc})"
        rows.append({"preset": preset, "c": int(codec.c), "device": "cpu", "weights": weights,
                     **bench_codec(codec, img, repeats)})
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "load_avg_1min": os.getloadavg()[0]}
    res = {"suite": "deepjscc", "image": src, "size": list(img.shape), "repeats": repeats, "timing": "best of "
           f"{repeats} after one warm-up, wall time, seconds", "machine": machine, "rows": rows}
    (out_dir / "deepjscc.json").write_text(json.dumps(res, indent=1))
    print(f"deepjscc bench ({src}, {img.shape[1]}x{img.shape[0]}, cpu, {machine['threads']} threads):")
    print(f"  {'preset':13s} {'k':>7s} {'enc GFLOP':>10s} {'encode s':>9s} {'decode s':>9s} {'GFLOP/s':>8s}  weights")
    for r in rows:
        print(f"  {r['preset']:13s} {r['k']:>7d} {r['encoder_flops'] / 1e9:>10.3f} {r['encode_s']:>9.4f} "
              f"{r['decode_s']:>9.4f} {r['encoder_gflops_per_s']:>8.2f}  {r['weights']}")
    return res
