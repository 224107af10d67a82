# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom calibrate-qoe``: calibrate the ACK/NACK thresholds of the offline QoE metrics on bsds500.

    infercom calibrate-qoe [--images DIR] [--n-images 40] [--snr-db -8,-6,...,40,inf] [--rate 1/9]
        [--label chase-gain+drop|chase-gain|drop|drop-best] [--max-db 1.0] [--max-drop-db 6]
        [--metrics niqe,consistency | reliability]
        [--seed 1] [--restorer bicubic[,NAME...]] [--restorer-config JSON] [--from-records FILE]
        [--out .../thresholds.json] [--records FILE]

(Records in ``thresholds.json`` written before this was a subcommand name it ``python -m
receiver_server.qoe.calibrate`` with ``--bh B --bw B`` for ``--rate BxB`` and ``--snrs`` for ``--snr-db``.)

Method (docs/qoe.md): each image goes through the link at symbol level (``infercom.link.encode_image`` ->
``infercom.channel.awgn`` at Es/N0 = snr -> LLRs -> MMSE observation and its posterior variance, as the
server computes them) and a restorer (``--restorer``, default the ``bicubic`` baseline), scored with ``niqe``
and ``consistency`` with the server's meta (``obs_var`` included), and labelled *acceptable* or not.

* ``chase-gain+drop`` (default): ``chase-gain`` and the PSNR at most ``--max-drop-db`` (6 dB) below the best
  PSNR the restorer reached on that image in the calibration (removes a false "acceptable" at very low SNR, where the restoration is stuck near the prior
  and one or three retransmissions gain little although more would gain a lot).
* ``chase-gain``: retransmissions would not pay -- one more independent attempt Chase-combined with
  the first (``infercom.chase.combine``, +3 dB) would raise the PSNR by at most ``--max-db``, and three more
  (+6 dB) by at most twice that. (The second condition matters at very low SNR, where a single retransmission
  gains little because the MMSE pixels are still near the prior mean, but a few gain a lot.)
* ``drop``: the PSNR is at most ``--max-db`` below the error-free link (same transmitter, noiseless channel).
* ``drop-best``: ``drop`` against the better of the error-free link and the best one-attempt PSNR the restorer
  reached on that image at any SNR (the project's models do worse when told 60 dB than at 10-20 dB).

``--metrics reliability`` (any metrics other than the joint pair) calibrates each metric on its own -- its best
single cut -- and adds it to the restorer's existing entry (its record under ``"calibrations"``); with a
``drop`` label no Chase-combined restorations are run.

The server ACKs when *every* metric passes, so the pair of thresholds is chosen jointly: the pair of cuts
(NIQE <= a, consistency >= b) with the best balanced accuracy (Youden's J) of that AND rule over a grid of
sample quantiles, consistency cuts no lower than ``--consistency-floor`` (0.9; ties: the most lenient pair, so
the floor stays when consistency earns no accuracy -- a guard against gross invention, not a cut at the edge of
the calibration samples). Each metric's own best single cut is recorded too. The thresholds, per-SNR medians, class counts,
accuracies, date and exact command are written to JSON, one entry per restorer (``"restorers"``; other
restorers' entries already in the file are kept); the top-level ``"thresholds"`` are the default restorer's
(bicubic).

Uses bsds500 (never kodak24, the evaluation set): ``--images`` defaults to ``<datasets>/bsds500/test``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from infercom.options import parse_snr_db

DEFAULT_DATASETS = Path(os.environ.get("INFERCOM_DATASETS",
                                       Path(__file__).resolve().parents[3] / "shared" / "datasets"))
#: Es/N0 grid (dB) of the calibration: the whole range the gate must be right on, clean channels included
#: (``inf``: the noiseless channel itself)
DEFAULT_SNRS = "-8,-6,-4,-2,0,2,4,6,8,10,12,14,20,25,30,40,inf"
METRICS = ("niqe", "consistency")
#: noise variance of the "error-free" reference decode (Es/N0 = 60 dB: every powered bit is certain)
NOISELESS_VAR = 1e-6
NOISELESS_SNR_DB = 60.0
LABELS = ("chase-gain+drop", "chase-gain", "drop", "drop-best", "requirement")


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


def early_nack_roc(values: np.ndarray, good: np.ndarray, threshold: float, higher_is_better: bool = True,
                   confidence: float = 0.95) -> dict:
    """The metric as a predictor of an acceptable restoration, scored *before* restoring (the early NACK).

    ROC over every cut (``fpr`` = unacceptable samples passed, ``tpr`` = acceptable samples passed), its area
    ``auc`` (the probability that an acceptable sample scores above an unacceptable one, ties half), and at
    ``threshold`` (the shipped cut): ``wrong_early_nack`` = the fraction of acceptable samples the cut NACKs
    without restoring (``1 - tpr``) with its one-sided Clopper-Pearson upper bound at ``confidence``
    (``upper``), and ``caught`` = the fraction of unacceptable samples it NACKs early (``1 - fpr``).
    """
    from scipy.stats import beta

    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(good, dtype=bool)
    ok = np.isfinite(v)
    v, g = (v[ok], g[ok]) if higher_is_better else (-v[ok], g[ok])
    t = threshold if higher_is_better else -threshold
    cuts = np.concatenate([[np.inf], np.unique(v)[::-1], [-np.inf]])
    tpr = np.array([np.mean(v[g] >= c) for c in cuts])
    fpr = np.array([np.mean(v[~g] >= c) for c in cuts])
    auc = float(np.trapz(tpr, fpr))
    n_good = int(g.sum())
    k = int(np.sum(v[g] < t))                                  # acceptable, NACKed early
    upper = float(beta.ppf(confidence, k + 1, n_good - k)) if k < n_good else 1.0
    keep = np.unique(np.linspace(0, cuts.size - 1, min(cuts.size, 60)).round().astype(int))
    return {"auc": round(auc, 4), "threshold": threshold,
            "wrong_early_nack": {"rate": round(k / n_good, 4), "k": k, "n_acceptable": n_good,
                                 "upper": round(upper, 4), "confidence": confidence},
            "caught": round(float(np.mean(v[~g] < t)), 4), "n_unacceptable": int((~g).sum()),
            "fpr": [round(float(x), 4) for x in fpr[keep]], "tpr": [round(float(x), 4) for x in tpr[keep]]}


def _roc_summary(r: dict) -> dict:
    return {k: r[k] for k in ("auc", "threshold", "wrong_early_nack", "caught")}


def plot_roc(rocs: dict, path: Path, title: str) -> None:
    """ROC curves ``{label: early_nack_roc(...)}`` with each shipped cut marked, to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    for lab, r in rocs.items():
        line, = ax.plot(r["fpr"], r["tpr"], label=f"{lab} (AUC {r['auc']:.3f})")
        w = r["wrong_early_nack"]
        ax.plot([1 - r["caught"]], [1 - w["rate"]], "o", color=line.get_color())
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("unacceptable restorations passed (FPR)")
    ax.set_ylabel("acceptable restorations passed (TPR)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def best_joint_thresholds(niqe: np.ndarray, cons: np.ndarray, good: np.ndarray, n_grid: int = 300,
                          cons_floor: float = 0.9) -> dict:
    """The pair (NIQE <= a, consistency >= b) maximising the balanced accuracy of "pass iff both pass".

    Candidate cuts: midpoints between neighbouring distinct values, thinned to at most ``n_grid`` quantiles per
    metric. NIQE also gets one cut above all values; consistency cuts are searched in ``[cons_floor, 1]``, with
    ``cons_floor`` itself the most lenient. Ties go to the most lenient pair (lowest consistency cut, then the
    highest NIQE cut): consistency is a faithfulness guard that separates the classes little for an honest
    restorer, and a cut at the edge of the calibration samples would NACK honest restorations of other content
    or link settings; when it does not earn accuracy the floor remains -- a guard against gross invention.
    Returns ``{"niqe", "consistency", "balanced_accuracy", "tpr", "tnr"}``.
    """
    a = np.asarray(niqe, dtype=np.float64)
    c = np.asarray(cons, dtype=np.float64)
    g = np.asarray(good, dtype=bool)
    ok = np.isfinite(c)                          # NIQE may be inf (flat image): it never passes
    a, c, g = a[ok], c[ok], g[ok]
    if g.all() or (~g).all():
        raise ValueError("calibration needs both acceptable and unacceptable samples; widen the SNR range")

    def mids(v):
        u = np.unique(v[np.isfinite(v)])
        m = (u[:-1] + u[1:]) / 2.0
        if m.size > n_grid:
            m = np.unique(np.quantile(m, np.linspace(0, 1, n_grid)))
        return u, m

    u, m = mids(a)
    ca = np.concatenate([m, [u[-1] + 1e-3 * max(1.0, float(u[-1] - u[0]))]])[::-1]   # most lenient first
    _, m = mids(c)
    cc = np.concatenate([[cons_floor], m[m > cons_floor]])                            # most lenient first
    pa = a[None, :] <= ca[:, None]                            # (na, n)
    pc = c[None, :] >= cc[:, None]                            # (nc, n)
    both = pc[:, None, :] & pa[None, :, :]                    # (nc, na, n)
    both_good = both[:, :, g].sum(axis=2)
    tpr = both_good / g.sum()
    tnr = 1.0 - (both.sum(axis=2) - both_good) / (~g).sum()
    bal = (tpr + tnr) / 2.0
    i, j = np.unravel_index(int(np.argmax(bal)), bal.shape)   # first maximum: lowest b, then highest a
    return {"niqe": float(ca[j]), "consistency": float(cc[i]), "balanced_accuracy": float(bal[i, j]),
            "tpr": float(tpr[i, j]), "tnr": float(tnr[i, j])}


def snr_labels(snrs: list[float]) -> list:
    """The Es/N0 grid as written to JSON: dB values, ``"noiseless"`` for the noiseless channel (``inf``)."""
    return [s if np.isfinite(s) else "noiseless" for s in snrs]


def run_samples(paths: list[Path], snrs: list[float], bh: int, bw: int, seed: int, progress: bool = True,
                restorer_name: str = "bicubic", restorer_config: dict | None = None,
                scores: tuple[str, ...] = METRICS, chase_attempts: bool = True) -> list:
    """One record per (image, SNR): PSNR of the error-free link, of one attempt and (``chase_attempts``) of 2
    and 4 Chase-combined attempts, and the scores of the QoE metrics ``scores`` (default NIQE and consistency) of the
    one-attempt restoration, and whether that restoration meets the offline QoE requirement against the original
    (``req_niqe``, ``req_coarse_ssim``, ``req_met``: :mod:`receiver_server.qoe.requirement`).
    ``chase_attempts=False`` (the ``drop`` and ``requirement`` labels need no Chase runs) skips the two extra
    restorations per sample."""
    from infercom import channel, chase, link, metrics
    from infercom.imageio import load_image
    from receiver_server.qoe import get_qoe
    from receiver_server.restorers import get_restorer
    from receiver_server.restorers.base import restore_for_gate

    from .requirement import coarse_ssim, meets_offline, offline_thresholds

    rng = np.random.default_rng(seed)
    cfg = link.LinkConfig(bh=bh, bw=bw)
    restorer = get_restorer(restorer_name, config=restorer_config)
    qoe = {m: get_qoe(m) for m in scores}
    niqe, req = get_qoe("niqe"), offline_thresholds()
    records = []
    t0 = time.time()
    for i, path in enumerate(paths):
        img = load_image(path)
        x, lay = link.encode_image(img, cfg)
        # the error-free link: a noiseless channel with the same transmitter (planes the importance profile
        # gives zero power stay unknown, exactly as over the air)
        # a finite Es/N0 (60 dB, the noise variance used): restorers conditioned on snr_db need a number
        clean = restore_for_gate(restorer, *link.observe(link.soft_to_llr(x, np.float32(NOISELESS_VAR), lay, cfg),
                                                         lay, cfg, NOISELESS_SNR_DB))
        psnr_clean = metrics.psnr(clean, img)
        for snr in snrs:
            noiseless = snr == np.inf                       # a sample of the noiseless channel itself
            nv = np.float32(NOISELESS_VAR if noiseless else 10.0 ** (-snr / 10.0))
            y = x.copy() if noiseless else channel.awgn(x, snr, rng)
            snr_told = NOISELESS_SNR_DB if noiseless else snr
            obs, m = link.observe(link.soft_to_llr(y, nv, lay, cfg), lay, cfg, snr_told)   # as the server's meta
            out = restore_for_gate(restorer, obs, m)
            rec = {"image": path.name, "snr_db": snr, "psnr_clean": psnr_clean, "psnr": metrics.psnr(out, img)}
            # what Chase retransmissions (MRC with independent attempts: +3 dB, +6 dB) would give
            ys = [y] + [x.copy() if noiseless else channel.awgn(x, snr, rng)   # drawn either way: same noise
                        for _ in range(3)]                                       # per seed
            for n_att, key in ((2, "psnr_chase2"), (4, "psnr_chase4")) if chase_attempts else ():
                yc, nvc = chase.combine(ys[:n_att], [nv] * n_att)
                told = snr_told + 10 * np.log10(n_att)                          # the combined Es/N0
                outc = restore_for_gate(restorer, *link.observe(link.soft_to_llr(yc, nvc, lay, cfg), lay, cfg,
                                                                told, n_att))
                rec[key] = metrics.psnr(outc, img)
            for name, q in qoe.items():
                rec[name] = q.score(out, obs, m)
            rec["req_niqe"] = float(niqe.score(out)) if niqe.applies(*out.shape[:2]) else None
            rec["req_coarse_ssim"] = coarse_ssim(img, out)
            rec["req_met"] = meets_offline(rec["req_niqe"], rec["req_coarse_ssim"], req)
            records.append(rec)
        if progress:
            print(f"\r[calibrate] {i + 1}/{len(paths)} images, {time.time() - t0:.0f} s", end="", file=sys.stderr,
                  flush=True)
    if progress:
        print(file=sys.stderr)
    return records


def best_psnr_per_image(records: list) -> dict:
    """Per image: the best PSNR the restorer reached anywhere in the calibration (error-free link, any SNR, any
    number of Chase-combined attempts) -- the reference of the drop clause of ``chase-gain+drop``. Not the
    error-free link alone: a restorer trained on a range of SNRs can do worse on the noiseless decode (out of
    its training range) than at 14 dB (infercom-restorer-stage1: 21.8 vs 25.4 dB median)."""
    best: dict = {}
    for r in records:
        v = max(r["psnr_clean"], r["psnr"], r["psnr_chase2"], r["psnr_chase4"])
        best[r.get("image")] = max(best.get(r.get("image"), -np.inf), v)
    return best


def labels(records: list, label: str, max_db: float, max_drop_db: float = 6.0) -> np.ndarray:
    """Acceptable (True) / not, per record.

    ``chase-gain``: one Chase retransmission would raise PSNR by at most ``max_db`` and three by at most
    ``2 * max_db`` (a NACK would not pay);
    ``drop``: PSNR at most ``max_db`` below the error-free link (noiseless channel, same transmitter);
    ``drop-best``: PSNR at most ``max_db`` below the better of the error-free link and the best one-attempt PSNR
    the restorer reached on that image at any SNR of the calibration (the project's restorers do worse when
    told Es/N0 = 60 dB, outside their training range, than at 10-20 dB: the error-free reference alone would
    call a -10 dB restoration near their prior "acceptable");
    ``chase-gain+drop`` (default): ``chase-gain`` and PSNR at most ``max_drop_db`` below the best PSNR the
    restorer reached on that image (:func:`best_psnr_per_image`);
    ``requirement``: the restoration meets the offline QoE requirement against the original (NIQE <= the
    server's NIQE threshold, SSIM of the 4x4 area-averaged images >= 0.80; :mod:`.requirement`, the criterion
    ``infercom experiment`` scores every system with) -- an absolute criterion, so a restorer that meets it
    from a less reliable observation gets a lower threshold.
    The second clause removes a false "acceptable" at very low SNR, where the restoration is stuck near the
    prior (bicubic: the mid-grey MMSE values; a trained restorer: its prior image) so that one or three
    retransmissions gain little although more would gain a lot.
    """
    if label in ("chase-gain", "chase-gain+drop"):
        g1 = np.array([r["psnr_chase2"] - r["psnr"] for r in records])
        g3 = np.array([r["psnr_chase4"] - r["psnr"] for r in records])
        ok = (g1 <= max_db) & (g3 <= 2 * max_db)
        if label == "chase-gain+drop":
            best = best_psnr_per_image(records)
            ok &= np.array([best[r.get("image")] - r["psnr"] for r in records]) <= max_drop_db
        return ok
    if label == "drop":
        return np.array([r["psnr_clean"] - r["psnr"] for r in records]) <= max_db
    if label == "drop-best":
        best: dict = {}
        for r in records:
            best[r.get("image")] = max(best.get(r.get("image"), -np.inf), r["psnr_clean"], r["psnr"])
        return np.array([best[r.get("image")] - r["psnr"] for r in records]) <= max_db
    if label == "requirement":
        return np.array([bool(r["req_met"]) for r in records])
    raise ValueError(f"unknown label {label!r}; choose from {', '.join(LABELS)}")


def calibrate(records: list, label: str = "chase-gain+drop", max_db: float = 1.0, max_drop_db: float = 6.0,
              cons_floor: float = 0.9) -> dict:
    """Thresholds and statistics from the per-sample records."""
    from receiver_server.qoe.thresholds import DIRECTION

    good = labels(records, label, max_db, max_drop_db)
    out = {"thresholds": {}, "separation": {}, "single_metric_cuts": {}}
    for name in METRICS:
        vals = np.array([r[name] for r in records])
        res = best_threshold(vals, good, DIRECTION[name])
        out["single_metric_cuts"][name] = {k: round(v, 4) for k, v in res.items()}
    joint = best_joint_thresholds(np.array([r["niqe"] for r in records]),
                                  np.array([r["consistency"] for r in records]), good, cons_floor=cons_floor)
    out["thresholds"] = {"niqe": round(joint["niqe"], 4), "consistency": round(joint["consistency"], 4)}
    vals = {n: np.array([r[n] for r in records]) for n in METRICS}
    for name in METRICS:       # how each metric alone does at the chosen cut
        p = vals[name] >= joint[name] if DIRECTION[name] else vals[name] <= joint[name]
        tpr, tnr = float(np.mean(p[good])), float(np.mean(~p[~good]))
        out["separation"][name] = {"balanced_accuracy": round((tpr + tnr) / 2, 4), "tpr": round(tpr, 4),
                                   "tnr": round(tnr, 4)}
    out["separation"]["joint"] = {k: round(joint[k], 4) for k in ("balanced_accuracy", "tpr", "tnr")}
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


def calibrate_single(records: list, metrics: tuple[str, ...], label: str = "drop", max_db: float = 1.5,
                     max_drop_db: float = 6.0) -> dict:
    """Each metric's own best cut (balanced accuracy, :func:`best_threshold`) -- for a metric calibrated on
    its own (``--metrics reliability``) and added to a restorer's existing thresholds. Returns the same keys as
    :func:`calibrate` (``thresholds``, ``separation``, ``single_metric_cuts``, ``per_snr_median``, ``counts``)."""
    from receiver_server.qoe.thresholds import DIRECTION

    good = labels(records, label, max_db, max_drop_db)
    out = {"thresholds": {}, "separation": {}, "single_metric_cuts": {}}
    out["roc"] = {}
    for name in metrics:
        vals = np.array([r[name] for r in records])
        res = best_threshold(vals, good, DIRECTION[name])
        out["thresholds"][name] = round(res["threshold"], 4)
        out["single_metric_cuts"][name] = out["separation"][name] = {k: round(v, 4) for k, v in res.items()
                                                                     if k != "threshold"}
        out["roc"][name] = early_nack_roc(vals, good, out["thresholds"][name], DIRECTION[name])
    keys = ("psnr", "psnr_clean") + tuple(k for k in ("psnr_chase2", "psnr_chase4") if k in records[0]) \
        + tuple(metrics)
    out["per_snr_median"] = {
        str(s): {k: round(float(np.median([r[k] for r in records if r["snr_db"] == s])), 4) for k in keys}
        | {"acceptable_fraction": round(float(np.mean(good[[r["snr_db"] == s for r in records]])), 4)}
        for s in sorted({r["snr_db"] for r in records})}
    out["counts"] = {"samples": int(len(records)), "acceptable": int(good.sum()),
                     "unacceptable": int((~good).sum())}
    return out


def add_metric_entry(old_entry: dict | None, args, restorer: str, paths: list, snrs: list, result: dict,
                     cmd: str, runtime_s: float) -> dict:
    """``restorer``'s entry with the separately calibrated metrics' thresholds added (its other thresholds
    kept) and their calibration record under ``"calibrations"[metric]``; a new entry when it had none."""
    e = dict(old_entry or {"restorer": restorer, "thresholds": {},
                           "restorer_checkpoint": checkpoint_fingerprint(restorer)})
    e["thresholds"] = dict(e.get("thresholds") or {}) | result["thresholds"]
    fingerprint = checkpoint_fingerprint(restorer)
    if fingerprint is not None:      # the entry names the checkpoint of its latest calibration (was kept stale)
        e["restorer_checkpoint"] = fingerprint
    rule = label_rule(args)
    rec = {"threshold": None, "command": cmd, "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "method": (f"{restorer} restorer on bsds500 through infercom.link + infercom.channel.awgn (symbol "
                      f"level, MMSE pixels + posterior variance); {rule}; threshold = the metric's own cut "
                      "with the best balanced accuracy"),
           "label": args.label, "label_rule": rule, "max_db": args.max_db,
           "reference": f"error-free link: noiseless channel, restorer told Es/N0 = {NOISELESS_SNR_DB} dB",
           "link": {"bh": args.bh, "bw": args.bw, "rate": f"1/{args.bh * args.bw}", "planes": 8,
                    "profile": "importance", "design_snr_db": -4},
           "dataset": {"folder": str(args.images.name if args.images.parent.name != "bsds500"
                                     else f"bsds500/{args.images.name}"),
                       "n_images": len(paths), "images": "the first n_images by name"},
           "snrs_db": snr_labels(snrs), "seed": args.seed, "counts": result["counts"],
           "per_snr_median": result["per_snr_median"], "runtime_s": round(runtime_s, 1),
           "machine": platform.platform(), "restorer_checkpoint": fingerprint}
    cal = dict(e.get("calibrations") or {})
    for m, t in result["thresholds"].items():
        cal[m] = dict(rec, threshold=t, separation=result["separation"][m], roc=result["roc"][m])
    e["calibrations"] = cal
    return e


def add_arguments(p: argparse.ArgumentParser) -> None:
    # let "--snr-db -8,-6,...,inf" through: a leading "-" followed by a digit is a value here, never an option
    p._negative_number_matcher = re.compile(r"^-\d[\d.,\-a-z]*$")
    p.add_argument("--images", type=Path, default=DEFAULT_DATASETS / "bsds500" / "test",
                   help="calibration image folder (bsds500; never kodak24, the evaluation set)")
    p.add_argument("--n-images", type=int, default=40, help="first N images (sorted by name)")
    p.add_argument("--snr-db", nargs="+", default=None,
                   help="Es/N0 values in dB, '--snr-db -8 -4 0' or '--snr-db -8,-4,0'; 'inf' is the noiseless "
                        f"channel itself (default {DEFAULT_SNRS})")
    p.add_argument("--rate", default="1/9", help="source rate 1/(bh*bw), e.g. 1/9, 1/4, or the block size BHxBW")
    p.add_argument("--label", choices=LABELS, default="chase-gain+drop",
                   help="acceptable = a Chase retransmission gains <= --max-db and the PSNR drop vs the "
                        "error-free link is <= --max-drop-db (default); chase-gain alone; the drop <= --max-db; or "
                        "requirement: the restoration meets the offline QoE requirement against the original")
    p.add_argument("--max-drop-db", type=float, default=6.0, help="dB limit of the drop clause of chase-gain+drop")
    p.add_argument("--max-db", type=float, default=1.0, help="dB limit of the label (see --label)")
    p.add_argument("--consistency-floor", type=float, default=0.9,
                   help="lowest (and, when consistency earns no accuracy, the) consistency threshold")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--metrics", default=",".join(METRICS),
                   help="metrics to calibrate: niqe,consistency (jointly, the default) or others on their own "
                        "(e.g. reliability: each its best single cut, added to the restorer's existing entry)")
    p.add_argument("--restorer", default="bicubic",
                   help="comma-separated restorers whose outputs are scored (thresholds depend on the restorer; "
                        "default bicubic, the baseline, whose entry restorers without their own fall back to)")
    p.add_argument("--restorer-config", default=None,
                   help='JSON config dict given to every restorer, e.g. \'{"threads": 1}\' (default: none)')
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "thresholds.json",
                   help="calibration file to update (default: the shipped receiver_server/qoe/thresholds.json)")
    p.add_argument("--records", type=Path, default=None,
                   help="also write the per-sample records (JSON) to this file (default: none)")
    p.add_argument("--roc", type=Path, default=None,
                   help="with --metrics reliability: write the metric's ROC as an early-NACK predictor (every "
                        "restorer, the shipped cut marked) to this PNG (default: none)")
    p.add_argument("--from-records", type=Path, default=None,
                   help="recompute the thresholds of the restorers in a --records file (no restoration run); "
                        "their entries in --out keep their run metadata and get 'recomputed' added (default: none, "
                        "run the restorations)")


def parse_snrs(tokens: list[str] | None) -> list[float]:
    """``--snr-db`` tokens (each may be comma-separated; None: :data:`DEFAULT_SNRS`) -> Es/N0 values in dB;
    ``inf`` = the noiseless channel (:func:`infercom.options.parse_snr_db`)."""
    return parse_snr_db(tokens if tokens is not None else [DEFAULT_SNRS], allow_noiseless=True)


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (the options that differ from their defaults), for the records."""
    p = argparse.ArgumentParser(add_help=False)
    add_arguments(p)
    parts = ["infercom", "calibrate-qoe"]
    for a in p._actions:
        value = getattr(args, a.dest, None)
        if not a.option_strings or value == a.default:
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        parts.append(f"{a.option_strings[0]}={shlex.quote(str(value))}")
    return " ".join(parts)


def checkpoint_fingerprint(restorer: str) -> dict | None:
    """Path and sha256 of the checkpoint ``infercom-restorer*`` loads by default (v1 for the ``-v1`` names;
    None for other restorers)."""
    if not restorer.startswith("infercom-restorer"):
        return None
    import hashlib

    from receiver_server.restorers.infercom_restorer.model import CHECKPOINTS
    p = Path(CHECKPOINTS["v1" if restorer.startswith("infercom-restorer-v1") else "v2"])
    if not p.is_file():
        return {"path": str(p), "sha256": None}
    root = Path(__file__).resolve().parents[2]
    return {"path": str(p.relative_to(root) if p.is_relative_to(root) else p),
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}


def label_rule(args) -> str:
    """The label rule in words (stored with the thresholds)."""
    rule = (f"acceptable = one Chase retransmission gains <= {args.max_db} dB PSNR and three <= "
            f"{2 * args.max_db} dB" if args.label.startswith("chase-gain")
            else f"acceptable = PSNR drop vs the error-free link <= {args.max_db} dB" if args.label == "drop"
            else ("acceptable = the restoration meets the offline QoE requirement against the original (NIQE <= "
                  "the server's NIQE threshold and SSIM of the 4x4 area-averaged images >= 0.80)"
                  if args.label == "requirement" else
                  f"acceptable = PSNR drop <= {args.max_db} dB vs the better of the error-free link (Es/N0 = "
                  f"{NOISELESS_SNR_DB} dB) and the best one-attempt PSNR the restorer reached on that image at "
                  "any SNR of the calibration"))
    if args.label == "chase-gain+drop":
        rule += (f", and the PSNR is at most {args.max_drop_db} dB below the best PSNR the restorer reached on "
                 "that image in the calibration (error-free link, any SNR, up to 4 Chase-combined attempts)")
    return rule


def restorer_entry(args, restorer: str, paths: list, snrs: list, records: list, result: dict, cmd: str,
                   runtime_s: float) -> dict:
    """One restorer's calibration entry (what ``thresholds.json`` stores under ``restorers[NAME]``)."""
    from receiver_server.qoe.consistency import DEFAULT_TAU, DEFAULT_Z_MAX

    rule = label_rule(args)
    return {
        "thresholds": result["thresholds"],
        "command": cmd,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "method": (f"{restorer} restorer on bsds500 through infercom.link + infercom.channel.awgn (symbol level, "
                   f"MMSE pixels + posterior variance); {rule}; thresholds = the (niqe, consistency) pair "
                   "with the best balanced accuracy of the server's AND rule"),
        "label": args.label, "label_rule": rule, "max_db": args.max_db, "max_drop_db": args.max_drop_db,
        "consistency_floor": args.consistency_floor,
        "restorer": restorer,
        "consistency_config": {"tau": DEFAULT_TAU, "z_max": DEFAULT_Z_MAX, "version": 2},
        "link": {"bh": args.bh, "bw": args.bw, "planes": 8, "profile": "importance", "design_snr_db": -4},
        "dataset": {"folder": str(args.images.name if args.images.parent.name != "bsds500"
                                  else f"bsds500/{args.images.name}"),
                    "n_images": len(paths), "images": "the first n_images by name"},
        "snrs_db": snr_labels(snrs), "seed": args.seed,
        "separation": result["separation"], "single_metric_cuts": result["single_metric_cuts"],
        "counts": result["counts"], "per_snr_median": result["per_snr_median"],
        "runtime_s": round(runtime_s, 1), "machine": platform.platform(),
        "restorer_checkpoint": checkpoint_fingerprint(restorer),
    }


def merge_calibration(old: dict, entries: dict, default_restorer: str = "bicubic") -> dict:
    """The calibration document with ``entries`` (restorer -> entry) added to / replacing those in ``old``.
    Top level: the default restorer's entry (thresholds, command, dataset, ...), for readers of one entry."""
    restorers = dict(old.get("restorers") or {})
    restorers.update(entries)
    default = default_restorer if default_restorer in restorers else sorted(restorers)[0]
    top = restorers[default]
    doc = {"thresholds": dict(top["thresholds"]), "default_restorer": default,
           "paper_defaults": {"clip_iqa": 0.8, "clip_sim": 0.9},
           "note": ("per-restorer thresholds under 'restorers'; receiver_server.qoe.thresholds.threshold(..., "
                    "restorer=NAME) picks NAME's entry and falls back to the default restorer's (top level)")}
    doc.update({k: v for k, v in top.items() if k not in ("thresholds",)})
    doc["restorers"] = restorers
    return doc


def recompute(args, cmd: str) -> int:
    """``--from-records``: new thresholds from saved per-sample records, written into the existing entries."""
    from receiver_server.qoe.thresholds import load_calibration

    saved = json.loads(args.from_records.read_text())
    old = load_calibration(args.out)
    entries = {}
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    if tuple(sorted(metrics)) != tuple(sorted(METRICS)):          # metrics calibrated on their own
        rocs: dict = {}
        for name, records in saved.items():
            e = dict((old.get("restorers") or {}).get(name) or {})
            if not all(m in (e.get("calibrations") or {}) for m in metrics):
                raise SystemExit(f"calibrate-qoe: {args.out} has no {metrics} calibration of {name!r} to recompute")
            result = calibrate_single(records, metrics, args.label, args.max_db, args.max_drop_db)
            e["thresholds"] = dict(e["thresholds"]) | result["thresholds"]
            cal = dict(e["calibrations"])
            for m in metrics:
                cal[m] = dict(cal[m], threshold=result["thresholds"][m], separation=result["separation"][m],
                              roc=result["roc"][m],
                              label=args.label, max_db=args.max_db, label_rule=label_rule(args),
                              counts=result["counts"], per_snr_median=result["per_snr_median"],
                              recomputed={"command": cmd,
                                          "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
                cal[m]["method"] = cal[m]["method"].split("; ")[0] + "; " + label_rule(args) + \
                    "; threshold = the metric's own cut with the best balanced accuracy"
            e["calibrations"] = cal
            entries[name] = e
            rocs.update({f"{name}: {m}": result["roc"][m] for m in metrics})
            print(json.dumps({"restorer": name, "thresholds": result["thresholds"],
                              "separation": result["separation"], "counts": result["counts"],
                              "early_nack": {m: _roc_summary(result["roc"][m]) for m in metrics}}), flush=True)
        args.out.write_text(json.dumps(merge_calibration(old, entries), indent=2) + "\n")
        if args.roc:
            plot_roc(rocs, args.roc, f"early-NACK predictor on {args.images.parent.name}/{args.images.name}, label {args.label}")
        return 0
    for name, records in saved.items():
        if name not in (old.get("restorers") or {}):
            raise SystemExit(f"calibrate-qoe: {args.out} has no entry for {name!r} to recompute")
        e = dict(old["restorers"][name])
        e.update(label=args.label, max_db=args.max_db, max_drop_db=args.max_drop_db, label_rule=label_rule(args),
                 consistency_floor=args.consistency_floor)
        result = calibrate(records, args.label, args.max_db, args.max_drop_db, args.consistency_floor)
        e.update({k: result[k] for k in ("thresholds", "separation", "single_metric_cuts", "counts",
                                         "per_snr_median")})
        e["recomputed"] = {"command": cmd, "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if "restorer_checkpoint" not in e:           # an entry written before the fingerprint was recorded
            e["restorer_checkpoint"] = checkpoint_fingerprint(name)
            if e["restorer_checkpoint"]:
                e["restorer_checkpoint"]["note"] = "hashed when recomputed, not when the samples were run"
        entries[name] = e
        print(json.dumps({"restorer": name, "thresholds": result["thresholds"],
                          "separation": result["separation"]}, indent=2), flush=True)
    args.out.write_text(json.dumps(merge_calibration(old, entries), indent=2) + "\n")
    return 0


def run(args: argparse.Namespace) -> int:
    from infercom.imageio import list_images, parse_rate
    from receiver_server.qoe.thresholds import load_calibration

    if "kodak" in str(args.images).lower():
        raise SystemExit("calibrate-qoe: kodak24 is the evaluation set; calibrate on bsds500")
    if not args.images.is_dir():
        raise SystemExit(f"calibrate-qoe: image folder not found: {args.images}")
    if args.n_images < 2:
        raise SystemExit("calibrate-qoe: --n-images must be >= 2")
    try:
        snrs = parse_snrs(args.snr_db)
        args.bh, args.bw = parse_rate(args.rate)
    except ValueError as exc:
        raise SystemExit(f"calibrate-qoe: {exc}") from None
    cmd = command_line(args)
    if args.from_records is not None:
        return recompute(args, cmd)
    restorers = [r.strip() for r in args.restorer.split(",") if r.strip()]
    if not restorers:
        raise SystemExit("calibrate-qoe: --restorer needs at least one name")
    try:
        rcfg = json.loads(args.restorer_config) if args.restorer_config else None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"calibrate-qoe: --restorer-config is not JSON: {exc}") from None
    if rcfg is not None and not isinstance(rcfg, dict):
        raise SystemExit("calibrate-qoe: --restorer-config must be a JSON object")
    paths = sorted(list_images(args.images))[:args.n_images]
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    if tuple(sorted(metrics)) != tuple(sorted(METRICS)):
        return calibrate_metrics(args, metrics, restorers, rcfg, paths, snrs, cmd)
    entries, all_records = {}, {}
    for name in restorers:
        t0 = time.time()
        records = run_samples(paths, snrs, args.bh, args.bw, args.seed, restorer_name=name,
                              restorer_config=rcfg)
        result = calibrate(records, args.label, args.max_db, args.max_drop_db, args.consistency_floor)
        entries[name] = restorer_entry(args, name, paths, snrs, records, result, cmd, time.time() - t0)
        all_records[name] = records
        print(json.dumps({"restorer": name, "thresholds": result["thresholds"], "separation": result["separation"],
                          "counts": result["counts"]}, indent=2), flush=True)
    old = load_calibration(args.out) if args.out.is_file() else {}
    if old and "restorers" not in old and "thresholds" in old:      # a v1 file: one (bicubic) entry, replaced
        old = {}
    args.out.write_text(json.dumps(merge_calibration(old, entries), indent=2) + "\n")
    if args.records:
        args.records.write_text(json.dumps(all_records, indent=1) + "\n")
    return 0


def calibrate_metrics(args, metrics: tuple[str, ...], restorers: list, rcfg: dict | None, paths: list,
                      snrs: list, cmd: str) -> int:
    """``--metrics`` other than the (niqe, consistency) pair: each metric's own best cut per restorer, added
    to that restorer's entry in ``--out`` (:func:`add_metric_entry`)."""
    from receiver_server.qoe import REGISTRY
    from receiver_server.qoe.thresholds import DIRECTION, load_calibration

    bad = [m for m in metrics if m not in REGISTRY or m not in DIRECTION or m in METRICS]
    if not metrics or bad:
        raise SystemExit(f"calibrate-qoe: --metrics is niqe,consistency (jointly) or metrics calibrated on their "
                         f"own ({', '.join(sorted(set(DIRECTION) & set(REGISTRY) - set(METRICS)))}); got {bad}")
    old = load_calibration(args.out) if args.out.is_file() else {}
    entries, all_records, rocs = {}, {}, {}
    for name in restorers:
        t0 = time.time()
        records = run_samples(paths, snrs, args.bh, args.bw, args.seed, restorer_name=name, restorer_config=rcfg,
                              scores=metrics, chase_attempts=args.label.startswith("chase"))
        result = calibrate_single(records, metrics, args.label, args.max_db, args.max_drop_db)
        entries[name] = add_metric_entry((old.get("restorers") or {}).get(name), args, name, paths, snrs, result,
                                         cmd, time.time() - t0)
        all_records[name] = records
        rocs.update({f"{name}: {m}": result["roc"][m] for m in metrics})
        print(json.dumps({"restorer": name, "thresholds": result["thresholds"], "separation": result["separation"],
                          "counts": result["counts"],
                          "early_nack": {m: _roc_summary(result["roc"][m]) for m in metrics}}, indent=2), flush=True)
    args.out.write_text(json.dumps(merge_calibration(old, entries), indent=2) + "\n")
    if args.roc:
        plot_roc(rocs, args.roc, f"early-NACK predictor on {args.images.parent.name}/{args.images.name}, label {args.label}")
    if args.records:
        args.records.write_text(json.dumps(all_records, indent=1) + "\n")
    return 0
