# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom experiment NAME [--images DIR] [--quick] [--workers N | --ray ADDRESS] [--out DIR] [--resume]``.

Writes to ``OUT/experiments/NAME/`` (``OUT`` default ``out``): ``points.csv`` (one row per point, canonical
order), ``summary.csv`` and the experiment's other tables, PNG figures, ``summary.md`` (the stated numbers and
the physics checks), ``run.json`` (the exact command, versions, seeds, machine, wall time, points computed and
resumed). Docs: docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from infercom import channel, imageio

from . import EXPERIMENTS, get
from .runner import PointStore, point_key, run_points
from .systems import Context

DEFAULT_IMAGES = "../shared/datasets/kodak24"
#: the quick variants' images: the first QUICK_IMAGES of the folder, centre-cropped to QUICK_CROP (H, W) pixels
#: (NIQE needs two 96x96 patches)
QUICK_IMAGES = 2
QUICK_CROP = (192, 256)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", choices=list(EXPERIMENTS), help="the experiment")
    p.add_argument("--images", default=DEFAULT_IMAGES, help="image folder (default %(default)s)")
    p.add_argument("--max-images", type=int, default=None, help="use the first N images (default: all)")
    p.add_argument("--quick", action="store_true",
                   help=f"the quick variant: {QUICK_IMAGES} images cropped to {QUICK_CROP[0]}x{QUICK_CROP[1]}, "
                        "a coarse grid (what CI runs)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes of the local pool (default: the CPU count; 1 = in this process); with "
                        "--ray local the CPUs of the in-process Ray cluster")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run the points as Ray tasks on the cluster at ADDRESS (ray.init(address=...)); "
                        "'local' starts an in-process one with --workers CPUs (pip install '.[ray]'); "
                        "on a cluster, every node needs this project installed (default: none, the local pool)")
    p.add_argument("--out", default="out", help="output root; results go to OUT/experiments/NAME (default %(default)s)")
    p.add_argument("--resume", action="store_true", help="keep the finished points of OUT/.../points.csv")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--restorers", default="bicubic,infercom-restorer",
                   help="InferCom restorers (registry names, comma-separated; the last is the one the gate and "
                        "the single-restorer experiments use) (default %(default)s)")
    p.add_argument("--clip", default=None, metavar="DIR",
                   help="a local CLIP model directory: adds CLIP-IQA / CLIP similarity and uses the papers' "
                        "requirement (default: the offline requirement)")
    p.add_argument("--max-attempts", type=int, default=4, help="attempt limit of every system (default %(default)s)")
    p.add_argument("--nr-harq", choices=("chase", "ir"), default="chase",
                   help="the NR baseline's HARQ: Chase combining as in the papers, or incremental redundancy "
                        "(default %(default)s)")
    p.add_argument("--device", default="cpu")
    channel.add_channel_arguments(p, fading="block", fading_per="image")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def make_context(args: argparse.Namespace) -> Context:
    try:
        files = imageio.list_images(args.images)      # a folder (sorted), or one image file
    except ValueError as exc:
        raise SystemExit(f"infercom experiment: no images: {exc}") from exc
    n = QUICK_IMAGES if args.quick else None
    if args.max_images is not None:
        n = args.max_images if n is None else min(n, args.max_images)
    files = files[:n] if n else files
    good = []
    for f in files:                     # an undecodable file is skipped here, not found by a worker mid-run
        try:
            imageio.load_image(f)
        except ValueError as exc:
            print(f"infercom experiment: skipping {exc}", file=sys.stderr)
            continue
        good.append(f)
    if not good:
        raise SystemExit(f"infercom experiment: no decodable images in {args.images}")
    files = good
    restorers = tuple(r.strip() for r in args.restorers.split(",") if r.strip())
    if not restorers:
        raise SystemExit("infercom experiment: --restorers names none")
    frame_len = None if getattr(args, "frame_len_log2", None) is None else 1 << args.frame_len_log2
    return Context(images=tuple(str(f) for f in files), seed=args.seed, quick=args.quick,
                   crop=QUICK_CROP if args.quick else None, restorers=restorers, clip=args.clip,
                   max_attempts=args.max_attempts, fading=args.fading, fading_per=args.fading_per,
                   snr_mode=args.snr_mode, frame_len=frame_len, device=args.device,
                   nr_harq=args.nr_harq)


def versions() -> dict:
    out = {"python": platform.python_version()}
    for mod in ("numpy", "numba", "scipy", "torch", "ray", "matplotlib"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = None
    try:
        import subprocess

        out["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=Path(__file__).resolve().parents[2], timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["git"] = None
    return out


def run_experiment(args: argparse.Namespace) -> dict:
    """Run (or resume) experiment ``args.name``; returns the summary dict (also written to the output folder)."""
    mod = get(args.name)
    ctx = make_context(args)
    out = Path(args.out) / "experiments" / args.name
    out.mkdir(parents=True, exist_ok=True)
    points = mod.plan(ctx)
    keys = [point_key(p) for p in points]
    if len(set(keys)) != len(keys):
        raise RuntimeError(f"{args.name}: the plan repeats points")
    store = PointStore(out / "points.csv", mod.COLUMNS, keys, resume=args.resume)
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    t0 = time.time()
    stats = run_points(mod.__name__, ctx, points, store, workers=max(1, workers), ray=args.ray,
                       progress=not args.no_progress)
    records = store.records()
    summary = mod.summarise(records, ctx, out)
    info = {"experiment": args.name, "command": "infercom experiment " + " ".join(map(shlex.quote, getattr(args, "_argv", None) or [args.name])),
            "images": list(ctx.images), "n_points": len(points), **stats, "workers": workers, "ray": args.ray,
            "seed": ctx.seed, "context": {k: v for k, v in vars(ctx).items() if k != "images"},
            "versions": versions(), "machine": {"platform": platform.platform(), "cpu": _cpu(),
                                                "cores": os.cpu_count()},
            "finished": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t0 + stats["wall_s"]))}
    (out / "run.json").write_text(json.dumps(info, indent=1, default=str) + "\n")
    md = [f"# {args.name}", "", f"Command: `{info['command']}`", "",
          f"{len(ctx.images)} images from `{args.images}`; {len(points)} points ({stats['computed']} computed, "
          f"{stats['skipped']} resumed) in {stats['wall_s']:.0f} s on {info['machine']['cpu']} "
          f"({workers} workers{', Ray ' + args.ray if args.ray else ''}).", "", summary["markdown"], ""]
    (out / "summary.md").write_text("\n".join(md))
    (out / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "markdown"},
                                                 indent=1, default=str) + "\n")
    return summary


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run(args: argparse.Namespace) -> int:
    summary = run_experiment(args)
    print(summary["markdown"])
    failed = [k for k, v in summary.get("checks", {}).items() if v is False]
    if failed:
        print(f"infercom experiment {args.name}: physics checks failed: {', '.join(failed)}", file=sys.stderr)
    return 0
