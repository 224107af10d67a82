# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom train-deepjscc``: train the Deep-JSCC baseline (:mod:`deepjscc.model`) end to end over AWGN.

Every step draws ``--batch`` random ``--patch x --patch`` crops of the training images (random flip / 90-degree
rotation, :func:`infercom.degrade.random_patch`), encodes each into the preset's exact ``k`` channel uses for
that patch size (punctured and power-normalised as at deployment), adds complex AWGN at the training SNR
(Es/N0 per complex symbol, dB: one value, or ``LO,HI`` drawn uniformly per patch) and decodes. Loss: MSE on
pixels in ``[0, 1]``; Adam, a 100-step linear warm-up then a cosine decay to 0.1 x ``--lr`` over ``--steps``.

Files (written every ``--save-every`` steps, at the end, and when ``--time-budget-s`` or ``--stop-after``
stops the run):

* ``--checkpoint`` (default ``deepjscc/checkpoints/deepjscc_<preset>_snr<S>.pt``): the deployable checkpoint,
  weights + metadata (preset, ``c``, training SNR, steps, wall time, exact command line, data folders);
* ``<out>/<stem>.state.pt``: the resumable state (weights, Adam, step, numpy and torch RNG states, elapsed
  time); ``--resume`` continues it bit-exactly;
* ``<out>/<stem>_loss.csv`` and ``_loss.png``: the loss curve (MSE and its PSNR in dB).

The run prints its throughput (patches/s, first step excluded) so that a fixed time budget can be sized.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from infercom import degrade, imageio

from .model import (
    DeepJSCC,
    check_preset,
    checkpoint_meta,
    default_checkpoint,
    latent_channels,
    n_channel_uses,
    n_params,
    preset_arg,
    save_checkpoint,
)

#: exported weights are stored in fp16 when fp32 would exceed this size (bytes)
MAX_CHECKPOINT_BYTES = 10_000_000
WARMUP_STEPS = 100
STATE_FORMAT = "infercom-deepjscc-train-1"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", nargs="+", required=True, help="training image folder(s) (or files)")
    p.add_argument("--preset", type=preset_arg, default="channel-uses", metavar="PRESET",
                   help="bandwidth preset: channel-uses = the InferCom link's payload symbols at rate 1/9, "
                        "paper = k/n 1/12, ratio-R = any k/n = R (e.g. ratio-0.25)"),
    p.add_argument("--snr-db", default="0",
                   help="training Es/N0 per complex symbol in dB: a value, or LO,HI drawn uniformly per patch "
                        "(write a negative range as --snr-db=-2,8)")
    p.add_argument("--steps", type=int, default=20000, help="total optimiser steps (including resumed ones)")
    p.add_argument("--batch", type=int, default=16, help="patches per step")
    p.add_argument("--patch", type=int, default=128, help="training patch side (pixels)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (peak)")
    p.add_argument("--out", default="out/deepjscc_train", help="folder of the training state and loss curve")
    p.add_argument("--checkpoint", default=None,
                   help="exported checkpoint path (default deepjscc/checkpoints/deepjscc_<preset>_snr<S>.pt)")
    p.add_argument("--resume", action="store_true", help="continue from the training state in --out")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--seed", type=int, default=0, help="seed of the patches, SNR draws, noise and weights")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    p.add_argument("--save-every", type=int, default=200, help="steps between saves")
    p.add_argument("--time-budget-s", type=float, default=0.0,
                   help="stop cleanly (saving and exporting) after the step that ends past this wall time of this "
                        "invocation (image loading included), seconds; 0 = no limit")
    p.add_argument("--stop-after", type=int, default=0,
                   help="stop (saving and exporting) after this many steps of this invocation; 0 = run to --steps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


# ---------------------------------------------------------------------------------------------------- data


def parse_snr(text) -> tuple[float, float]:
    """``"0"`` -> ``(0, 0)``; ``"-2,8"`` -> ``(-2, 8)`` (dB). ValueError for anything else."""
    parts = [t.strip() for t in str(text).split(",")]
    try:
        vals = [float(t) for t in parts]
    except ValueError:
        raise ValueError(f"--snr-db must be a number or LO,HI in dB, got {text!r}") from None
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or not all(math.isfinite(v) for v in vals) or vals[0] > vals[1]:
        raise ValueError(f"--snr-db must be a finite number or LO,HI with LO <= HI (dB), got {text!r}")
    return vals[0], vals[1]


def load_images(dirs, min_side: int) -> tuple[list[np.ndarray], list[str]]:
    """The training images of ``dirs`` with sides of at least ``min_side`` (:func:`infercom.imageio.load_folders`)."""
    return imageio.load_folders(dirs, min_side)


def make_batch(imgs, batch: int, patch: int, rng: np.random.Generator) -> torch.Tensor:
    """``(batch, 3, patch, patch)`` float32 in ``[0, 1]``: random augmented crops of random images."""
    ps = [degrade.random_patch(imgs[int(rng.integers(len(imgs)))], patch, rng) for _ in range(batch)]
    return torch.from_numpy(np.stack(ps)).permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def draw_snr(snr: tuple[float, float], batch: int, rng: np.random.Generator) -> np.ndarray:
    """Per-patch training SNR (dB): the value, or uniform draws in ``[lo, hi]``."""
    lo, hi = snr
    return np.full(batch, lo) if lo == hi else rng.uniform(lo, hi, batch)


# ---------------------------------------------------------------------------------------------------- state


def save_state(path: Path, model, opt, step: int, rng, gen, elapsed: float, config: dict) -> None:
    st = {"format": STATE_FORMAT, "config": config, "step": step, "elapsed": elapsed,
          "model": model.state_dict(), "optim": opt.state_dict(), "np_rng": rng.bit_generator.state,
          "torch_gen": gen.get_state(), "torch_rng": torch.get_rng_state()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(st, tmp)
    tmp.replace(path)


def load_state(path: Path, model, opt, rng, gen, config: dict) -> tuple[int, float]:
    """Restore a state written by :func:`save_state`; returns ``(step, elapsed seconds)``. ValueError when it
    is not one or was trained with another preset, SNR, patch or batch."""
    st = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(st, dict) or st.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not a resumable Deep-JSCC training state")
    diff = {k: (st["config"].get(k), v) for k, v in config.items() if st["config"].get(k) != v}
    if diff:
        raise ValueError(f"--resume: {path} was trained with other settings (state, now): {diff}")
    model.load_state_dict(st["model"])
    opt.load_state_dict(st["optim"])
    rng.bit_generator.state = st["np_rng"]
    gen.set_state(st["torch_gen"])
    torch.set_rng_state(st["torch_rng"])
    return int(st["step"]), float(st["elapsed"])


def plot_loss(csv_path: Path, png_path: Path) -> None:
    """Loss (MSE, log scale) and PSNR (dB) against the step, raw and as a 50-step running mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    step = np.array([int(r["step"]) for r in rows])
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    for a, key, title in ((ax[0], "mse", "MSE (pixels in [0, 1])"), (ax[1], "psnr_db", "PSNR (dB)")):
        v = np.array([float(r[key]) for r in rows])
        a.plot(step, v, lw=0.6, alpha=0.4)
        n = 50
        if len(v) > n:
            a.plot(step[n - 1:], np.convolve(v, np.ones(n) / n, mode="valid"), lw=1.5)
        a.set_xlabel("step")
        a.set_title(title)
        a.grid(alpha=0.3)
    ax[0].set_yscale("log")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------- main


def _command(args) -> str:
    if len(sys.argv) > 1 and sys.argv[1] == "train-deepjscc":
        return "infercom train-deepjscc " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    return "deepjscc.train.train(" + repr(vars(args)) + ")"


def train(args) -> dict:
    """Run the training described by the parsed ``args`` (:func:`add_arguments`); returns a summary dict
    (steps, last losses, throughput in patches/s, file paths)."""
    t_call = time.time()                  # --time-budget-s counts from here (image loading included)
    preset = check_preset(args.preset)
    snr = parse_snr(args.snr_db)
    if args.batch < 1 or args.patch < 4 or args.steps < 1 or args.save_every < 1:
        raise ValueError("--batch >= 1, --patch >= 4, --steps >= 1 and --save-every >= 1 are required")
    torch.set_num_threads(max(1, int(args.threads)))
    device = torch.device(args.device)
    snr_label = snr[0] if snr[0] == snr[1] else snr
    ckpt = Path(args.checkpoint) if args.checkpoint else default_checkpoint(preset, snr_label)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / f"{ckpt.stem}.state.pt"
    csv_path, png_path = out / f"{ckpt.stem}_loss.csv", out / f"{ckpt.stem}_loss.png"
    k = n_channel_uses(preset, args.patch, args.patch, 3)

    imgs, _ = load_images(args.data, args.patch)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    model = DeepJSCC(latent_channels(preset)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    config = {"preset": preset, "c": model.c, "snr_db": list(snr), "patch": args.patch, "batch": args.batch}
    step, elapsed0 = 0, 0.0
    if args.resume:
        if not state_path.is_file():
            raise ValueError(f"--resume: no training state at {state_path}")
        step, elapsed0 = load_state(state_path, model, opt, rng, gen, config)
    elif csv_path.exists():
        csv_path.unlink()
    half = n_params(model) * 4 > MAX_CHECKPOINT_BYTES
    extra = {"batch": args.batch, "patch": args.patch, "k_patch": k, "lr": args.lr, "seed": args.seed,
             "n_images": len(imgs), "params": n_params(model), "loss": "mse", "channel": "awgn",
             "weights_dtype": "float16" if half else "float32"}

    new_file = not csv_path.exists()
    fcsv = open(csv_path, "a", newline="")  # noqa: SIM115 - written by the loop, closed after it
    wr = csv.writer(fcsv)
    if new_file:
        wr.writerow(["step", "mse", "psnr_db", "snr_db_mean", "seconds"])
    try:
        from tqdm import tqdm
        bar = tqdm(total=args.steps, initial=step, disable=args.no_progress, desc="train-deepjscc", mininterval=2)
    except ImportError:  # pragma: no cover - tqdm is a dependency; the bar is optional
        bar = None

    def save() -> None:
        fcsv.flush()
        el = elapsed0 + time.time() - t0
        save_state(state_path, model, opt, step, rng, gen, el, config)
        meta = checkpoint_meta(preset, snr_label, step, el, _command(args), args.data, **extra)
        save_checkpoint(ckpt, model, meta, half=half)
        plot_loss(csv_path, png_path)

    model.train()
    t0 = time.time()
    t_first = None                       # end of this invocation's first step (throughput excludes it)
    first_step, mse = step, float("nan")
    recent: list[float] = []
    while step < args.steps:
        x = make_batch(imgs, args.batch, args.patch, rng).to(device)
        snr_b = draw_snr(snr, args.batch, rng)
        warm = min(1.0, (step + 1) / WARMUP_STEPS)
        for g in opt.param_groups:
            g["lr"] = args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((model(x, k, snr_b, gen) - x) ** 2)
        loss.backward()
        opt.step()
        step += 1
        mse = float(loss.detach())
        recent = (recent + [mse])[-100:]
        wr.writerow([step, f"{mse:.7f}", f"{-10 * math.log10(max(mse, 1e-12)):.3f}", f"{snr_b.mean():.2f}",
                     f"{elapsed0 + time.time() - t0:.2f}"])
        if t_first is None:
            t_first = time.time()
        done = step - first_step
        rate = (done - 1) * args.batch / (time.time() - t_first) if done > 1 else float("nan")
        if bar is not None:
            bar.update(1)
            bar.set_postfix(mse=f"{mse:.4f}", patches_s=f"{rate:.1f}", refresh=False)
        stop = (args.time_budget_s > 0 and time.time() - t_call >= args.time_budget_s) or \
            (args.stop_after > 0 and done >= args.stop_after)
        if step % args.save_every == 0 or step == args.steps or stop:
            extra["mse_last100"] = float(np.mean(recent))
            save()
        if stop:
            break
    if step == first_step:                 # nothing to do (already at --steps): still export
        save()
    fcsv.close()
    if bar is not None:
        bar.close()
    done = step - first_step
    rate = (done - 1) * args.batch / (time.time() - t_first) if done > 1 else float("nan")
    print(f"train-deepjscc: {done} steps, throughput {rate:.1f} patches/s ({args.batch} x {args.patch}x"
          f"{args.patch} per step, {torch.get_num_threads()} threads, {device})", file=sys.stderr)
    return {"step": step, "mse": mse, "mse_last100": float(np.mean(recent)) if recent else float("nan"),
            "patches_per_s": rate, "k": k, "checkpoint": str(ckpt), "state": str(state_path),
            "loss_csv": str(csv_path), "loss_png": str(png_path)}


def run(args) -> int:
    try:
        res = train(args)
    except ValueError as exc:
        print(f"infercom train-deepjscc: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(res))
    return 0
