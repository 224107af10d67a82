# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom train-restorer``: train the two-stage InferCom restorer on pairs from :mod:`infercom.degrade`.

Every step draws one rate (block size) for the batch and, per sample, a random patch of a training image and
random link conditions (:class:`infercom.degrade.DegradeSpec`: Es/N0 in [-10, 6] dB, importance/equal profile,
AWGN or per-frame block fading, 1..3 Chase attempts, lost frames), then sends the patch through the real link.

Losses: stage 1 -- Charbonnier on the full-resolution output plus an L1 term on its cleaned low-res image;
stage 2 -- rectified-flow velocity MSE on the scaled residual over the (detached) stage-1 output. ``--stage
both`` trains them jointly (stage 2 sees the current stage 1). Exponential moving averages (EMA) of the weights
are what gets exported.

Files: ``--out CKPT`` is the exported checkpoint (EMA weights + metadata, what the server loads); the resumable
training state (weights, EMA, optimiser, step, numpy/torch RNG) goes to ``--state`` (default
``out/restorer_train/<stem>.state.pt``), the loss curve to ``<log-dir>/<stem>_loss.csv`` and ``.png``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from infercom import degrade, imageio

from .model import CHECKPOINT_FORMAT, checkpoint_version, prepare, to_unit
from .nets import COND_DIM, COND_DIM_V2, SIDE_PER_CHANNEL, Stage1Net, Stage2Net, n_params, widen_from

#: the v1 architecture (the first shipped checkpoint)
ARCH_V1 = {
    "stage1": {"channels": 3, "widths": [32, 64, 96], "blocks": [1, 2, 2], "feat": 16, "head": 24, "emb_dim": 64},
    "stage2": {"channels": 3, "widths": [32, 64, 96], "blocks": [1, 2, 2], "emb_dim": 64},
    "resid_scale": 8.0,
}
#: v2 (the default): v1's networks with the side-feature branch and the power-profile conditions (COND_DIM_V2)
DEFAULT_ARCH = {
    "stage1": {**ARCH_V1["stage1"], "cond_dim": COND_DIM_V2, "side_ch": 3 * SIDE_PER_CHANNEL},
    "stage2": {**ARCH_V1["stage2"], "cond_dim": COND_DIM_V2},
    "resid_scale": 8.0,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", nargs="+", required=True, help="training image folder(s)")
    p.add_argument("--out", required=True, help="exported checkpoint path (.pt)")
    p.add_argument("--state", default=None, help="resumable training state (default out/restorer_train/<stem>.state.pt)")
    p.add_argument("--log-dir", default="out/restorer_train", help="loss curve CSV/PNG folder")
    p.add_argument("--stage", choices=["1", "2", "both"], default="both")
    p.add_argument("--steps", type=int, default=2000, help="total optimiser steps (including resumed ones)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=96, help="training patch side (pixels), multiple of 12 advised")
    p.add_argument("--rates", default="1/4,1/9", help="comma-separated rates (1/N or BHxBW)")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--side-lr-mult", type=float, default=5.0,
                   help="learning-rate factor of stage 1's side-feature branch (v2; it starts at zero)")
    p.add_argument("--ema", type=float, default=0.998)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--save-every", type=int, default=100, help="steps between checkpoints")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop (and save) after this wall time; 0 = no limit")
    p.add_argument("--stop-after", type=int, default=0,
                   help="stop (and save) after this many steps of this invocation; 0 = run to --steps")
    p.add_argument("--resume", action="store_true", help="continue from --state")
    p.add_argument("--init", default=None,
                   help="fine-tune: start both stages (weights and EMA) from this exported checkpoint, with a new "
                        "optimiser and learning-rate schedule (e.g. the shipped one on your own images) "
                        "(default: none, train from scratch)")
    p.add_argument("--no-progress", action="store_true")


# ---------------------------------------------------------------------------------------------------- data


def load_images(dirs, min_side: int) -> tuple[list[np.ndarray], list[str]]:
    """The training images of ``dirs`` with sides of at least ``min_side`` (:func:`infercom.imageio.load_folders`)."""
    return imageio.load_folders(dirs, min_side)


def make_batch(imgs, spec: degrade.DegradeSpec, rate, batch: int, patch: int, rng: np.random.Generator,
               device="cpu", version: int = 2) -> dict:
    """One training batch of a single rate: the network inputs obs/missing/cond/side (low-res, built by
    :func:`~.model.prepare` from each pair's observation and :meth:`~infercom.degrade.Degraded.meta`, exactly as
    at inference) and the targets clean/low_clean (unit scale)."""
    bh, bw = rate
    ins, clean, low = [], [], []
    for _ in range(batch):
        img = imgs[int(rng.integers(len(imgs)))]
        p = degrade.random_patch(img, patch, rng)
        d = degrade.sample_pair(p, spec, rng, rate=(bh, bw))
        ins.append(prepare(d.observation, d.meta(), "cpu", version)[:4])
        clean.append(d.clean)
        low.append(d.lowres_clean)

    def t(arrs):
        return torch.from_numpy(np.stack(arrs).astype(np.float32)).permute(0, 3, 1, 2).contiguous().to(device)

    obs, miss, cond, side = (None if x[0] is None else torch.cat(x).to(device) for x in zip(*ins))
    return {"obs": obs, "missing": miss, "cond": cond, "side": side,
            "clean": to_unit(t(clean)), "low_clean": to_unit(t(low)), "bh": bh, "bw": bw}


# ---------------------------------------------------------------------------------------------------- losses


def charbonnier(a, b, eps: float = 1e-3):
    return torch.sqrt((a - b) ** 2 + eps * eps).mean()


def stage1_loss(s1: Stage1Net, b: dict):
    out, low_clean = s1(b["obs"], b["missing"], b["cond"], b["bh"], b["bw"], b["side"])
    return charbonnier(out, b["clean"]) + 0.5 * F.l1_loss(low_clean, b["low_clean"]), out


def stage2_loss(s2: Stage2Net, s1_out: torch.Tensor, b: dict, resid_scale: float, gen: torch.Generator):
    r = (b["clean"] - s1_out.detach()) * resid_scale
    B = r.shape[0]
    x0 = torch.randn(r.shape, generator=gen).to(r.device)
    t = torch.sigmoid(torch.randn(B, generator=gen)).to(r.device)      # logit-normal time
    tt = t.view(B, 1, 1, 1)
    xt = (1 - tt) * x0 + tt * r
    v = s2(xt, s1_out.detach(), t, b["cond"], b["bh"], b["bw"])
    return F.mse_loss(v, r - x0)


# ---------------------------------------------------------------------------------------------------- state


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.mul_(decay).add_(pm.detach(), alpha=1.0 - decay)


def export(path: Path, arch: dict, ema1, ema2, meta: dict, step: int) -> None:
    """Write the deployable checkpoint: EMA weights (fp32) + architecture + metadata."""
    ck = {"format": CHECKPOINT_FORMAT, "arch": arch, "step": step, "meta": meta,
          "weights": {"stage1": ema1.state_dict(), "stage2": ema2.state_dict() if ema2 is not None else None}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ck, tmp)
    tmp.replace(path)


def save_state(path: Path, arch, s1, s2, ema1, ema2, opt, step, rng, gen, meta) -> None:
    st = {"format": CHECKPOINT_FORMAT, "arch": arch, "step": step, "meta": meta,
          "model": {"stage1": s1.state_dict(), "stage2": s2.state_dict()},
          "ema": {"stage1": ema1.state_dict(), "stage2": ema2.state_dict()},
          "optim": opt.state_dict(), "np_rng": rng.bit_generator.state,
          "torch_gen": gen.get_state(), "torch_rng": torch.get_rng_state()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(st, tmp)
    tmp.replace(path)


def build(arch: dict, lr: float, device, side_lr_mult: float = 1.0):
    """Networks, their EMA copies and AdamW with three parameter groups: stage 1, stage 1's side branch (v2;
    learning rate times ``side_lr_mult``: it starts from zero while the rest is warm), stage 2."""
    s1 = Stage1Net(**arch["stage1"]).to(device)
    s2 = Stage2Net(**arch["stage2"]).to(device)
    ema1, ema2 = copy.deepcopy(s1).eval(), copy.deepcopy(s2).eval()
    for p in list(ema1.parameters()) + list(ema2.parameters()):
        p.requires_grad_(False)
    side = [p for n, p in s1.named_parameters() if n.startswith("side.")]
    rest = [p for n, p in s1.named_parameters() if not n.startswith("side.")]
    opt = torch.optim.AdamW([{"params": rest, "lr_mult": 1.0}, {"params": side, "lr_mult": float(side_lr_mult)},
                             {"params": list(s2.parameters()), "lr_mult": 1.0}], lr=lr, weight_decay=0.0)
    return s1, s2, ema1, ema2, opt


def load_state(path: Path, s1, s2, ema1, ema2, opt, rng, gen) -> int:
    st = torch.load(path, map_location="cpu", weights_only=False)
    if st.get("format") != CHECKPOINT_FORMAT or "optim" not in st:
        raise ValueError(f"{path} is not a resumable InferCom restorer training state")
    s1.load_state_dict(st["model"]["stage1"])
    s2.load_state_dict(st["model"]["stage2"])
    ema1.load_state_dict(st["ema"]["stage1"])
    ema2.load_state_dict(st["ema"]["stage2"])
    opt.load_state_dict(st["optim"])
    rng.bit_generator.state = st["np_rng"]
    gen.set_state(st["torch_gen"])
    torch.set_rng_state(st["torch_rng"])
    return int(st["step"])


def init_weights(path: Path, arch: dict, s1, s2, ema1, ema2) -> dict:
    """Copy an exported checkpoint's weights into the networks and their EMA (fine-tuning start); returns what
    the new checkpoint's metadata records about its origin.  ValueError when the architecture differs."""
    from .model import load_checkpoint

    c1, c2, info = load_checkpoint(path)
    ck_arch = torch.load(path, map_location="cpu", weights_only=False)["arch"]
    widen = ck_arch == ARCH_V1 and arch == DEFAULT_ARCH          # v1 -> v2: zero weights on the new inputs
    if ck_arch != arch and not widen:
        raise ValueError(f"--init {path}: architecture {ck_arch} differs from this trainer's {arch}")
    c1.to(memory_format=torch.contiguous_format)
    if c2 is not None:
        c2.to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        for dst in (s1, ema1):
            widen_from(dst, c1, COND_DIM, COND_DIM_V2) if widen else dst.load_state_dict(c1.state_dict())
        if c2 is not None:
            for dst in (s2, ema2):
                widen_from(dst, c2, COND_DIM, COND_DIM_V2) if widen else dst.load_state_dict(c2.state_dict())
    return {"checkpoint": str(path), "steps": info.get("step"), "command": info.get("command"),
            "stage2": c2 is not None, "widened_from_v1": widen}


def plot_loss(csv_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(csv_path)))
    if not rows:
        return
    step = np.array([int(r["step"]) for r in rows])
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    for i, key in enumerate(("loss1", "loss2")):
        v = np.array([float(r[key]) for r in rows])
        ok = np.isfinite(v)
        ax[i].plot(step[ok], v[ok], lw=0.6, alpha=0.4)
        if ok.sum() > 20:
            k = 20
            sm = np.convolve(v[ok], np.ones(k) / k, mode="valid")
            ax[i].plot(step[ok][k - 1:], sm, lw=1.5)
        ax[i].set_xlabel("step")
        ax[i].set_title({"loss1": "stage 1 (Charbonnier + low-res L1)", "loss2": "stage 2 (flow-matching MSE)"}[key])
        ax[i].set_yscale("log")
        ax[i].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------- main


def train(args) -> dict:
    torch.set_num_threads(max(1, int(args.threads)))
    device = torch.device(args.device)
    rates = [imageio.parse_rate(r) for r in str(args.rates).split(",") if r.strip()]
    if not rates:
        raise ValueError("--rates is empty")
    if args.batch < 1 or args.patch < 8 or args.steps < 1:
        raise ValueError("--batch >= 1, --patch >= 8 and --steps >= 1 are required")
    for bh, bw in rates:
        if args.patch % bh or args.patch % bw:
            raise ValueError(f"--patch {args.patch} must be a multiple of the block size {bh}x{bw}")
    out = Path(args.out)
    state_path = Path(args.state) if args.state else Path("out/restorer_train") / f"{out.stem}.state.pt"
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = log_dir / f"{out.stem}_loss.csv", log_dir / f"{out.stem}_loss.png"

    imgs, names = load_images(args.data, args.patch)
    spec = degrade.DegradeSpec(rates=tuple(rates))
    arch = copy.deepcopy(DEFAULT_ARCH)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    s1, s2, ema1, ema2, opt = build(arch, args.lr, device, args.side_lr_mult)
    version = checkpoint_version(s1)
    step = 0
    init_info = None
    if args.resume and args.init:
        raise ValueError("--resume and --init exclude each other (the state already holds the weights)")
    if args.resume:
        if not state_path.is_file():
            raise ValueError(f"--resume: no training state at {state_path}")
        step = load_state(state_path, s1, s2, ema1, ema2, opt, rng, gen)
    else:
        if args.init:
            init_info = init_weights(Path(args.init), arch, s1, s2, ema1, ema2)
        if csv_path.exists():
            csv_path.unlink()
    command = "infercom train-restorer " + " ".join(shlex.quote(a) for a in sys.argv[2:]) \
        if len(sys.argv) > 1 and sys.argv[1] == "train-restorer" else "train(" + repr(vars(args)) + ")"
    meta = {"command": command, "data": [str(d) for d in args.data], "n_images": len(imgs),
            "rates": [f"{bh}x{bw}" for bh, bw in rates], "batch": args.batch, "patch": args.patch,
            "stage": args.stage, "lr": args.lr, "side_lr_mult": args.side_lr_mult, "seed": args.seed, "spec": repr(spec),
            "params": {"stage1": n_params(s1), "stage2": n_params(s2)}, "torch": torch.__version__}
    if init_info is not None:
        meta["init"] = init_info
    first_step = step
    train1 = args.stage in ("1", "both")
    train2 = args.stage in ("2", "both")
    rs = float(arch["resid_scale"])
    t_start = time.time()
    new_file = not csv_path.exists()
    fcsv = open(csv_path, "a", newline="")
    wr = csv.writer(fcsv)
    if new_file:
        wr.writerow(["step", "loss1", "loss2", "seconds"])
    try:
        from tqdm import tqdm
        bar = tqdm(total=args.steps, initial=step, disable=args.no_progress, desc="train-restorer", mininterval=5)
    except ImportError:  # pragma: no cover
        bar = None
    s1.train(train1)
    s2.train(train2)
    loss1 = loss2 = float("nan")
    while step < args.steps:
        rate = rates[step % len(rates)]
        b = make_batch(imgs, spec, rate, args.batch, args.patch, rng, device, version)
        warm = min(1.0, (step + 1) / 200.0)
        for g in opt.param_groups:
            g["lr"] = g["lr_mult"] * args.lr * warm * (0.5 * (1 + math.cos(math.pi * step / args.steps)) * 0.9 + 0.1)
        opt.zero_grad(set_to_none=True)
        total = 0.0
        if train1:
            l1, s1_out = stage1_loss(s1, b)
            total = total + l1
            loss1 = float(l1.detach())
        else:
            with torch.no_grad():
                s1_out = s1(b["obs"], b["missing"], b["cond"], b["bh"], b["bw"], b["side"])[0]
        if train2:
            l2 = stage2_loss(s2, s1_out, b, rs, gen)
            total = total + l2
            loss2 = float(l2.detach())
        total.backward()
        torch.nn.utils.clip_grad_norm_(list(s1.parameters()) + list(s2.parameters()), 1.0)
        opt.step()
        if train1:
            _ema_update(ema1, s1, args.ema if step > 200 else 0.9)
        if train2:
            _ema_update(ema2, s2, args.ema if step > 200 else 0.9)
        step += 1
        wr.writerow([step, f"{loss1:.6f}", f"{loss2:.6f}", f"{time.time() - t_start:.1f}"])
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss1=f"{loss1:.4f}", loss2=f"{loss2:.4f}", refresh=False)
        out_of_time = (args.max_minutes > 0 and (time.time() - t_start) > 60 * args.max_minutes) or \
            (args.stop_after > 0 and step - first_step >= args.stop_after)
        if step % args.save_every == 0 or step == args.steps or out_of_time:
            fcsv.flush()
            meta["steps"] = step
            save_state(state_path, arch, s1, s2, ema1, ema2, opt, step, rng, gen, meta)
            keep2 = train2 or args.resume or bool(init_info and init_info["stage2"])
            export(out, arch, ema1, ema2 if keep2 else None, meta, step)
            plot_loss(csv_path, png_path)
        if out_of_time:
            break
    fcsv.close()
    if bar is not None:
        bar.close()
    return {"step": step, "loss1": loss1, "loss2": loss2, "checkpoint": str(out), "state": str(state_path),
            "loss_csv": str(csv_path)}


def run(args) -> int:
    try:
        res = train(args)
    except ValueError as exc:
        print(f"infercom train-restorer: {exc}", file=sys.stderr)
        return 2
    print(res)
    return 0
