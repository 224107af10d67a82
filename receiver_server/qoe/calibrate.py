# SPDX-License-Identifier: GPL-3.0-or-later
"""Calibrate the ACK/NACK thresholds of the offline QoE metrics (``niqe``, ``consistency``) on bsds500.

    python -m receiver_server.qoe.calibrate [--images DIR] [--n-images 40] [--snrs -8,-6,...,14]
        [--bh 3 --bw 3] [--label chase-gain|drop] [--max-db 1.0] [--seed 1] [--restorer bicubic]
        [--out .../thresholds.json]

Method (docs/qoe.md): each image goes through the link at symbol level (``infercom.link.encode_image`` ->
``infercom.channel.awgn`` at Es/N0 = snr -> ``decode_image`` MMSE) and a restorer (``--restorer``, default
the ``bicubic`` baseline), and is labelled *acceptable* or not.

* ``chase-gain`` (default): retransmissions would not pay -- one more independent attempt Chase-combined with
  the first (``infercom.chase.combine``, +3 dB) would raise the PSNR by at most ``--max-db``, and three more
  (+6 dB) by at most twice that. (The second condition matters at very low SNR, where a single retransmission
  gains little because the MMSE pixels are still near the prior mean, but a few gain a lot.)
* ``drop``: the PSNR is at most ``--max-db`` below the error-free link (same transmitter, noiseless channel).

Each metric's threshold is the cut that best separates the two classes (maximum balanced accuracy = Youden's
J; the midpoint between neighbouring sample values). The thresholds, per-SNR medians, class counts,
accuracies and the exact command are written to JSON.

Uses bsds500 (never kodak24, the evaluation set): ``--images`` defaults to ``<datasets>/bsds500/test``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_DATASETS = Path(os.environ.get("INFERCOM_DATASETS",
                                       Path(__file__).resolve().parents[3] / "shared" / "datasets"))
DEFAULT_SNRS = "-8,-6,-4,-2,0,2,4,6,8,10,12,14"
METRICS = ("niqe", "consistency")
#: noise variance of the "error-free" reference decode (Es/N0 = 60 dB: every powered bit is certain)
NOISELESS_VAR = 1e-6


def best_threshold(values: np.ndarray, good: np.ndarray, higher_is_better: bool) -> dict:
    """Cut point maximising balanced accuracy for "pass iff value >= t" (or <= t when lower is better).

    Returns ``{"threshold", "balanced_accuracy", "tpr", "tnr"}``; the threshold is the midpoint between the two
    sorted values that bound the best cut (so it does not sit on a sample).
    """
    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(good, dtype=bool)
    ok = np.isfinite(v)
    v, g = v[ok], g[ok]
    if g.all() or (~g).all():
        raise ValueError("calibration needs both acceptable and unacceptable samples; widen the SNR range")
    s = v if higher_is_better else -v
    u = np.unique(s)
    cands = np.concatenate([[u[0] - 1.0], (u[:-1] + u[1:]) / 2.0, [u[-1] + 1.0]])
    passes = s[None, :] >= cands[:, None]                      # (n_cands, n)
    tpr = (passes & g).sum(axis=1) / g.sum()
    tnr = (~passes & ~g).sum(axis=1) / (~g).sum()
    bal = (tpr + tnr) / 2.0
    k = int(np.argmax(bal))
    t = cands[k] if higher_is_better else -cands[k]
    return {"threshold": float(t), "balanced_accuracy": float(bal[k]), "tpr": float(tpr[k]),
            "tnr": float(tnr[k])}


def run_samples(paths: list[Path], snrs: list[float], bh: int, bw: int, seed: int, progress: bool = True,
                restorer_name: str = "bicubic", restorer_config: dict | None = None) -> list:
    """One record per (image, SNR): PSNR of the error-free link, of one attempt and of 2 and 4 Chase-combined
    attempts, and the NIQE and consistency of the one-attempt restoration."""
    from infercom import channel, chase, link, metrics
    from infercom.imageio import load_image
    from receiver_server.qoe import get_qoe
    from receiver_server.restorers import get_restorer

    rng = np.random.default_rng(seed)
    cfg = link.LinkConfig(bh=bh, bw=bw)
    restorer = get_restorer(restorer_name, config=restorer_config)
    qoe = {m: get_qoe(m) for m in METRICS}
    records = []
    t0 = time.time()
    for i, path in enumerate(paths):
        img = load_image(path)
        x, lay = link.encode_image(img, cfg)
        meta = dict(bh=bh, bw=bw, height=lay.height, width=lay.width, channels=lay.channels)
        # the error-free link: a noiseless channel with the same transmitter (planes the importance profile
        # gives zero power stay unknown, exactly as over the air)
        clean_obs = link.decode_image(x, np.float32(NOISELESS_VAR), lay, cfg)
        clean = restorer.restore(clean_obs, dict(meta, snr_db=np.inf, attempts=1))
        psnr_clean = metrics.psnr(clean, img)
        for snr in snrs:
            nv = np.float32(10.0 ** (-snr / 10.0))
            y = channel.awgn(x, snr, rng)
            obs = link.decode_image(y, nv, lay, cfg)
            m = dict(meta, snr_db=snr, attempts=1)
            out = restorer.restore(obs, m)
            rec = {"image": path.name, "snr_db": snr, "psnr_clean": psnr_clean, "psnr": metrics.psnr(out, img)}
            # what Chase retransmissions (MRC with independent attempts: +3 dB, +6 dB) would give
            ys = [y] + [channel.awgn(x, snr, rng) for _ in range(3)]
            for n_att, key in ((2, "psnr_chase2"), (4, "psnr_chase4")):
                yc, nvc = chase.combine(ys[:n_att], [nv] * n_att)
                outc = restorer.restore(link.decode_image(yc, nvc, lay, cfg), dict(m, attempts=n_att))
                rec[key] = metrics.psnr(outc, img)
            for name, q in qoe.items():
                rec[name] = q.score(out, obs, m)
            records.append(rec)
        if progress:
            print(f"\r[calibrate] {i + 1}/{len(paths)} images, {time.time() - t0:.0f} s", end="", file=sys.stderr,
                  flush=True)
    if progress:
        print(file=sys.stderr)
    return records


def labels(records: list, label: str, max_db: float) -> np.ndarray:
    """Acceptable (True) / not, per record.

    ``chase-gain``: one Chase retransmission would raise PSNR by at most ``max_db`` and three by at most
    ``2 * max_db`` (a NACK would not pay);
    ``drop``: PSNR at most ``max_db`` below the error-free link (noiseless channel, same transmitter).
    """
    if label == "chase-gain":
        g1 = np.array([r["psnr_chase2"] - r["psnr"] for r in records])
        g3 = np.array([r["psnr_chase4"] - r["psnr"] for r in records])
        return (g1 <= max_db) & (g3 <= 2 * max_db)
    if label == "drop":
        return np.array([r["psnr_clean"] - r["psnr"] for r in records]) <= max_db
    raise ValueError(f"unknown label {label!r}; choose chase-gain or drop")


def calibrate(records: list, label: str = "chase-gain", max_db: float = 1.0) -> dict:
    """Thresholds and statistics from the per-sample records."""
    from receiver_server.qoe.thresholds import DIRECTION

    good = labels(records, label, max_db)
    out = {"thresholds": {}, "separation": {}}
    for name in METRICS:
        vals = np.array([r[name] for r in records])
        res = best_threshold(vals, good, DIRECTION[name])
        out["thresholds"][name] = round(res["threshold"], 4)
        out["separation"][name] = {k: round(v, 4) for k, v in res.items() if k != "threshold"}
    snrs = sorted({r["snr_db"] for r in records})
    out["per_snr_median"] = {
        str(s): {k: round(float(np.median([r[k] for r in records if r["snr_db"] == s])), 4)
                 for k in ("psnr", "psnr_chase2", "psnr_chase4", "psnr_clean", "niqe",
                                                                  "consistency")}
        | {"acceptable_fraction": round(float(np.mean(good[[r["snr_db"] == s for r in records]])), 4)}
        for s in snrs}
    out["counts"] = {"samples": int(len(records)), "acceptable": int(good.sum()),
                     "unacceptable": int((~good).sum())}
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m receiver_server.qoe.calibrate", description=__doc__.splitlines()[0])
    p.add_argument("--images", type=Path, default=DEFAULT_DATASETS / "bsds500" / "test")
    p.add_argument("--n-images", type=int, default=40, help="first N images (sorted by name)")
    p.add_argument("--snrs", default=DEFAULT_SNRS, help="comma-separated Es/N0 values in dB")
    p.add_argument("--bh", type=int, default=3)
    p.add_argument("--bw", type=int, default=3)
    p.add_argument("--label", choices=("chase-gain", "drop"), default="chase-gain",
                   help="acceptable = a Chase retransmission gains <= --max-db (default), or the PSNR drop vs "
                        "the error-free link is <= --max-db")
    p.add_argument("--max-db", type=float, default=1.0, help="dB limit of the label (see --label)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--restorer", default="bicubic",
                   help="restorer whose outputs are scored (thresholds depend on it; default: the baseline)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "thresholds.json")
    p.add_argument("--records", type=Path, default=None, help="also write the per-sample records (JSON)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from infercom.imageio import list_images

    if "kodak" in str(args.images).lower():
        raise SystemExit("calibrate: kodak24 is the evaluation set; calibrate on bsds500")
    if not args.images.is_dir():
        raise SystemExit(f"calibrate: image folder not found: {args.images}")
    if args.n_images < 2:
        raise SystemExit("calibrate: --n-images must be >= 2")
    try:
        snrs = [float(s) for s in args.snrs.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"calibrate: bad --snrs {args.snrs!r}") from None
    paths = sorted(list_images(args.images))[:args.n_images]
    t0 = time.time()
    records = run_samples(paths, snrs, args.bh, args.bw, args.seed, restorer_name=args.restorer)
    result = calibrate(records, args.label, args.max_db)
    cmd = "python -m receiver_server.qoe.calibrate " + " ".join(argv if argv is not None else sys.argv[1:])
    doc = {
        "thresholds": result["thresholds"],
        "paper_defaults": {"clip_iqa": 0.8, "clip_sim": 0.9},
        "command": cmd.strip(),
        "method": (f"{args.restorer} restorer on bsds500 through infercom.link + infercom.channel.awgn (symbol level, "
                   "MMSE pixels); acceptable = "
                   + (f"one Chase retransmission gains <= {args.max_db} dB PSNR and three <= {2 * args.max_db} dB"
                      if args.label == "chase-gain"
                      else f"PSNR drop vs the error-free link <= {args.max_db} dB")
                   + "; threshold = maximum balanced accuracy cut"),
        "label": args.label, "max_db": args.max_db, "restorer": args.restorer,
        "link": {"bh": args.bh, "bw": args.bw, "planes": 8, "profile": "importance", "design_snr_db": -4},
        "dataset": {"folder": str(args.images.name if args.images.parent.name != "bsds500"
                                  else f"bsds500/{args.images.name}"), "n_images": len(paths)},
        "snrs_db": snrs, "seed": args.seed,
        "separation": result["separation"], "counts": result["counts"], "per_snr_median": result["per_snr_median"],
        "runtime_s": round(time.time() - t0, 1), "machine": platform.platform(),
    }
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    if args.records:
        args.records.write_text(json.dumps(records, indent=1) + "\n")
    print(json.dumps({"thresholds": doc["thresholds"], "separation": doc["separation"],
                      "counts": doc["counts"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
