# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom eval-restorer``: restorers on an image folder over the simulated link -> table, JSON, figure grid.

For every image, rate and Es/N0 point one observation is generated with :func:`infercom.degrade.degrade`
(seeded by the image index, rate and SNR, so every restorer sees the same damage) and handed to each restorer
through the Restorer interface. Metrics: PSNR and SSIM (``infercom.metrics``, against the original) and NIQE
(``receiver_server.qoe``, no-reference, lower is better) when available.

The channel flags are every CLI's (:func:`infercom.channel.add_channel_arguments`); the default is per-frame
block Rayleigh fading (``--fading block --fading-per frame``, frames of 1024 symbols) with perfect CSI whose
frame gains are normalised to the image's instantaneous mean SNR (``--snr-mode instantaneous``: results against
instantaneous SNR, as in the papers); one fade per image (``--fading-per image``) is then identical to
``--fading none`` at that SNR.

Outputs in ``--out``: ``results.json`` (per-image rows + means + the issue's target checks), ``table.md``,
``table.csv``, ``grid.png``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from infercom import channel, degrade, imageio, link, metrics, options
from infercom.limits import MAX_ATTEMPT, PROFILES

DEFAULT_SNRS = "-8,-6,-4,-2,0"
STAGE1 = "infercom-restorer-stage1"
FULL = "infercom-restorer"
V1_STAGE1 = "infercom-restorer-v1-stage1"
V1_FULL = "infercom-restorer-v1"
#: the project's model by checkpoint: (stage-1 name, full name, checkpoint version); the two names of one
#: checkpoint share one forward pass
MODEL_NAMES = ((STAGE1, FULL, "v2"), (V1_STAGE1, V1_FULL, "v1"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    # let "--snr-db -8,-6,-4" through: a leading "-" followed by a digit is a value here, never an option
    p._negative_number_matcher = re.compile(r"^-\d[\d.,\-]*$")
    p.add_argument("--images", required=True, help="image folder (e.g. ../shared/datasets/kodak24)")
    p.add_argument("--rates", default="1/9,1/4")
    p.add_argument("--snr-db", nargs="+", default=None,
                   help=f"Es/N0 points in dB, '--snr-db -8 -4 0' or '--snr-db -8,-4,0' (default {DEFAULT_SNRS})")
    p.add_argument("--profile", default="importance", choices=list(PROFILES))
    p.add_argument("--design-snr-db", type=int, default=-4)
    channel.add_channel_arguments(p, fading="block", fading_per="frame", frame_len=1024)
    p.add_argument("--attempts", type=int, default=1)
    p.add_argument("--missing-frac", type=float, default=0.0, help="fraction of frames lost per attempt")
    p.add_argument("--restorers", default=f"bicubic,{V1_STAGE1},{V1_FULL},{STAGE1},{FULL}")
    p.add_argument("--checkpoint", default=None,
                   help=f"checkpoint of {STAGE1} / {FULL} (default: the shipped v2; the v1 names always use v1)")
    p.add_argument("--steps", type=int, default=None, help="flow sampler steps (default: the model's)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N images (0 = all)")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-niqe", action="store_true")
    p.add_argument("--grid-image", type=int, default=0, help="index of the image shown in the grid")
    p.add_argument("--out", default="out/eval_restorer")


def make_restorers(names: list[str], device: str, checkpoint, steps) -> dict:
    """name -> callable(observation, meta) -> dict(name -> uint8 image); stage 1 and the full model share one
    forward pass when both are asked for."""
    from receiver_server.restorers import get_restorer

    out = {}
    cfg = {}
    if checkpoint:
        cfg["checkpoint"] = checkpoint
    if steps:
        cfg["steps"] = int(steps)
    from .model import CHECKPOINTS, InferComRestorer, to_image

    for s1_name, full_name, version in MODEL_NAMES:
        want = tuple(n for n in (s1_name, full_name) if n in names)
        if not want:
            continue
        c = dict(cfg)
        c["checkpoint"] = c.get("checkpoint") if version == "v2" else None
        c["checkpoint"] = c["checkpoint"] or CHECKPOINTS[version]
        model = InferComRestorer(device=device, config=c)

        def run_model(obs, meta, model=model, want=want, s1_name=s1_name, full_name=full_name):
            stage = 2 if full_name in want else 1
            s1, full = model.restore_tensors(obs, meta, stage=stage)
            H, W = meta["height"], meta["width"]
            res = {}
            for n, t in ((s1_name, s1), (full_name, full)):
                if n in want:
                    res[n] = to_image(t[0], H, W)
            res["__seconds__"] = {s1_name: model.last_seconds["stage1"],
                                  full_name: model.last_seconds.get("total", float("nan"))}
            return res

        out[f"__model_{version}__"] = run_model
    for n in names:
        if any(n in pair[:2] for pair in MODEL_NAMES):
            continue
        r = get_restorer(n, device=device)
        out[n] = (lambda r, n: (lambda obs, meta: {n: r.restore(obs, meta)}))(r, n)
    return out


def _niqe_metric(device: str):
    try:
        from receiver_server.qoe import get_qoe

        return get_qoe("niqe", device=device)
    except (ImportError, ValueError, AttributeError):
        try:
            from receiver_server.qoe.niqe import NIQE

            return NIQE(device=device)
        except (ImportError, ValueError) as exc:
            print(f"eval-restorer: NIQE unavailable ({exc}); skipping it", file=sys.stderr)
            return None


def summarise(rows: list[dict], names: list[str], rates, snrs) -> dict:
    means = {}
    for (bh, bw) in rates:
        for s in snrs:
            key = f"{bh}x{bw}@{s:g}"
            means[key] = {}
            for n in names:
                sel = [r for r in rows if r["restorer"] == n and r["bh"] == bh and r["bw"] == bw and r["snr_db"] == s]
                if not sel:
                    continue
                m = {k: float(np.mean([r[k] for r in sel if r.get(k) is not None]))
                     for k in ("psnr", "ssim", "niqe", "seconds") if any(r.get(k) is not None for r in sel)}
                m["n"] = len(sel)
                means[key][n] = m
    return means


def check_targets(means: dict) -> dict:
    """The issue's acceptance checks on the per-point means (only those whose restorers were run)."""
    out = {"stage1_beats_bicubic_psnr_ssim": {}, "full_beats_bicubic_niqe": {}, "full_psnr_loss_vs_stage1_db": {},
           "stage1_gain_db_at_-4": {}, "v2_stage1_gain_over_v1_db": {}, "v2_stage1_gain_ge_1db_at_-4_-6": {},
           "v2_niqe_le_v1": {}}
    for key, m in means.items():
        if "bicubic" in m and STAGE1 in m:
            out["stage1_beats_bicubic_psnr_ssim"][key] = bool(
                m[STAGE1]["psnr"] > m["bicubic"]["psnr"] and m[STAGE1]["ssim"] > m["bicubic"]["ssim"])
            if key.endswith("@-4"):
                out["stage1_gain_db_at_-4"][key] = m[STAGE1]["psnr"] - m["bicubic"]["psnr"]
        if "bicubic" in m and FULL in m and "niqe" in m[FULL] and "niqe" in m["bicubic"]:
            out["full_beats_bicubic_niqe"][key] = bool(m[FULL]["niqe"] < m["bicubic"]["niqe"])
        if STAGE1 in m and FULL in m:
            out["full_psnr_loss_vs_stage1_db"][key] = m[STAGE1]["psnr"] - m[FULL]["psnr"]
        if STAGE1 in m and V1_STAGE1 in m:
            gain = m[STAGE1]["psnr"] - m[V1_STAGE1]["psnr"]
            out["v2_stage1_gain_over_v1_db"][key] = gain
            if key.endswith(("@-4", "@-6")):
                out["v2_stage1_gain_ge_1db_at_-4_-6"][key] = bool(gain >= 1.0)
        if FULL in m and V1_FULL in m and "niqe" in m[FULL] and "niqe" in m[V1_FULL]:
            out["v2_niqe_le_v1"][key] = bool(m[FULL]["niqe"] <= m[V1_FULL]["niqe"])
    return out


def write_tables(means: dict, names: list[str], out: Path) -> str:
    lines = ["| rate | Es/N0 (dB) | restorer | PSNR (dB) | SSIM | NIQE | s/image | n |", "|---|---|---|---|---|---|---|---|"]
    with open(out / "table.csv", "w") as f:
        f.write("rate,snr_db,restorer,psnr,ssim,niqe,seconds,n\n")
        for key, m in means.items():
            rate, s = key.split("@")
            for n in names:
                if n not in m:
                    continue
                v = m[n]
                niqe = f"{v['niqe']:.3f}" if "niqe" in v else "-"
                lines.append(f"| {rate} | {s} | {n} | {v['psnr']:.2f} | {v['ssim']:.4f} | {niqe} | "
                             f"{v['seconds']:.2f} | {v['n']} |")
                f.write(f"{rate},{s},{n},{v['psnr']:.4f},{v['ssim']:.5f},{v.get('niqe', float('nan')):.4f},"
                        f"{v['seconds']:.4f},{v['n']}\n")
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    return text


def write_grid(examples: list[tuple[str, dict]], names: list[str], path: Path, crop: int = 192) -> None:
    """Rows: (rate, SNR) examples; columns: original, observation (nearest), each restorer. Centre crops."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not examples:
        return
    cols = ["original", "observation"] + names
    fig, axes = plt.subplots(len(examples), len(cols), figsize=(2.2 * len(cols), 2.3 * len(examples)), squeeze=False)
    for i, (label, imgs) in enumerate(examples):
        H, W = imgs["original"].shape[:2]
        y0, x0 = max(0, H // 2 - crop // 2), max(0, W // 2 - crop // 2)
        for j, c in enumerate(cols):
            ax = axes[i, j]
            ax.axis("off")
            if c in imgs:
                ax.imshow(imgs[c][y0:y0 + crop, x0:x0 + crop], interpolation="nearest")
            if i == 0:
                ax.set_title(c.replace("infercom-restorer", "infercom"), fontsize=8)
            if j == 0:
                ax.text(-0.05, 0.5, label, transform=ax.transAxes, rotation=90, va="center", ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate(args) -> dict:
    import torch

    torch.set_num_threads(max(1, int(args.threads)))
    rates = [imageio.parse_rate(r) for r in str(args.rates).split(",") if r.strip()]
    snrs = options.parse_snr_db(args.snr_db or [DEFAULT_SNRS])
    names = [n.strip() for n in str(args.restorers).split(",") if n.strip()]
    if not rates or not snrs or not names:
        raise ValueError("--rates, --snr-db and --restorers must each name at least one item")
    if not (1 <= args.attempts <= MAX_ATTEMPT + 1):
        raise ValueError(f"--attempts must be in 1..{MAX_ATTEMPT + 1}, got {args.attempts}")
    files = imageio.list_images(args.images)
    if args.limit:
        files = files[: args.limit]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runners = make_restorers(names, args.device, args.checkpoint, args.steps)
    niqe = None if args.no_niqe else _niqe_metric(args.device)
    rows, examples = [], []
    total = len(files) * len(rates) * len(snrs)
    try:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="eval-restorer", mininterval=5)
    except ImportError:  # pragma: no cover
        bar = None
    grid_snrs = {snrs[0], snrs[len(snrs) // 2], snrs[-1]}
    for ii, f in enumerate(files):
        img = imageio.load_image(f)
        for ri, (bh, bw) in enumerate(rates):
            cfg = link.LinkConfig(bh=bh, bw=bw, profile=args.profile, design_snr_db=args.design_snr_db)
            for si, s in enumerate(snrs):
                rng = np.random.default_rng([args.seed, ii, ri, si])
                d = degrade.degrade(img, cfg, s, rng, attempts=args.attempts, fading=args.fading,
                                    fading_per=args.fading_per, snr_mode=args.snr_mode, frame_len=args.frame_len,
                                    missing_frac=args.missing_frac)
                meta = d.meta()
                results, times = {}, {}
                for key, fn in runners.items():
                    t0 = time.perf_counter()
                    res = fn(d.observation, meta)
                    dt = time.perf_counter() - t0
                    sec = res.pop("__seconds__", {})
                    for n in res:
                        times[n] = sec.get(n, dt)
                    results.update(res)
                for n in names:
                    r = results[n]
                    row = {"image": Path(f).name, "bh": bh, "bw": bw, "snr_db": s, "snr_inst_db": d.snr_db,
                           "restorer": n, "psnr": metrics.psnr(r, img), "ssim": metrics.ssim(r, img),
                           "seconds": times[n]}
                    if niqe is not None:
                        row["niqe"] = float(niqe.score(r))
                    rows.append(row)
                if ii == args.grid_image and s in grid_snrs:
                    obs_up = np.repeat(np.repeat(np.round(d.observation).astype(np.uint8), bh, 0), bw, 1)
                    ex = {"original": img, "observation": obs_up[: img.shape[0], : img.shape[1]]}
                    ex.update(results)
                    examples.append((f"rate 1/{bh * bw}, {s:g} dB", ex))
                if bar is not None:
                    bar.update(1)
        if ii == args.grid_image:
            write_grid(examples, names, out / "grid.png")
        if ii < len(files) - 1:        # partial results after every image: an interrupted run still reports
            _report(args, rows, names, rates, snrs, ii + 1, niqe is not None, out, partial=True)
    if bar is not None:
        bar.close()
    report, table = _report(args, rows, names, rates, snrs, len(files), niqe is not None, out, partial=False)
    print(table)
    targets = report["targets"]
    print(json.dumps(targets, indent=1))
    return report


def _report(args, rows, names, rates, snrs, n_images, has_niqe, out: Path, partial: bool):
    means = summarise(rows, names, rates, snrs)
    targets = check_targets(means)
    table = write_tables(means, names, out)
    report = {"images": str(args.images), "n_images": n_images, "partial": partial,
              "rates": [f"{bh}x{bw}" for bh, bw in rates],
              "snr_db": snrs, "profile": args.profile, "design_snr_db": args.design_snr_db,
              "fading": args.fading, "fading_per": args.fading_per, "snr_mode": args.snr_mode,
              "frame_len": args.frame_len, "attempts": args.attempts, "missing_frac": args.missing_frac,
              "restorers": names, "threads": args.threads, "device": args.device, "niqe": has_niqe,
              "means": means, "targets": targets, "rows": rows}
    (out / "results.json").write_text(json.dumps(report, indent=1))
    return report, table


def run(args) -> int:
    try:
        evaluate(args)
    except ValueError as exc:
        print(f"infercom eval-restorer: {exc}", file=sys.stderr)
        return 2
    return 0
