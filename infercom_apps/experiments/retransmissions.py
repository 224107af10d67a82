# SPDX-License-Identifier: GPL-3.0-or-later
"""``retransmissions``: mean retransmissions per image and the retransmission rate against Es/N0.

Points: image x Es/N0 (-10 ... 0 dB in 2 dB steps; quick: -10, -6, -2) x system, rate 1/9. Each system uses its
own trigger and the same attempt limit (``--max-attempts``, default 4):

* ``infercom/<restorer>`` (the last ``--restorers`` entry): the server's QoE gate (restorer + the default
  offline QoE set at that restorer's calibrated thresholds, Chase combining; :class:`receiver_server.gate.Gate`);
* ``infercom-niqe/<restorer>``: the same link and restorer with NIQE alone as the trigger, at the threshold
  Deep-JSCC's trigger uses: the two systems' triggers made alike;
* ``nr``: the CRC, with Chase combining as in the papers (``--nr-harq ir``: incremental redundancy);
* ``deepjscc/channel-uses`` and ``deepjscc/paper``: Deep-JSCC's documented trigger, the server's NIQE gate on
  the decoded image (docs/deepjscc.md §2), Chase combining of the latent.

Row: ``attempts_used``, ``retransmissions`` (= attempts - 1), ``acked`` (the trigger passed within the limit),
the channel uses spent, and the delivered image's scores (the requirement is reported, not the trigger).
Summary: per system and Es/N0 the mean retransmissions, the retransmission rate (share of images that needed
at least one), the failure rate; the reduction at -8 dB = 1 - mean(InferCom) / mean(other).
"""

from __future__ import annotations

import math
from pathlib import Path

from . import report
from .runner import point_rng
from .systems import (DEEPJSCC_RATES, Context, channel_uses_per_pixel, deepjscc_point, infercom_attempts, nr_point,
                      score_output)

SNRS = [-10.0, -8.0, -6.0, -4.0, -2.0, 0.0]
QUICK_SNRS = [-10.0, -6.0, -2.0]
RATE = "1/9"
REDUCTION_AT_DB = -8.0
COLUMNS = ["image", "system", "snr_db", "rate", "attempts_used", "retransmissions", "acked", "channel_uses",
           "cu_per_pixel", "psnr", "ssim", "niqe", "coarse_ssim", "clip_iqa", "clip_sim", "req_met"]


def systems(ctx: Context) -> list[str]:
    return [f"infercom/{ctx.restorers[-1]}", f"infercom-niqe/{ctx.restorers[-1]}", "nr"] + \
        [f"deepjscc/{p}" for p in DEEPJSCC_RATES]


def plan(ctx: Context) -> list[dict]:
    return [{"image": i, "snr_db": s, "system": sysname} for i in range(len(ctx.images))
            for s in (QUICK_SNRS if ctx.quick else SNRS) for sysname in systems(ctx)]


def evaluate(p: dict, ctx: Context) -> dict:
    img = ctx.image(p["image"])
    chan = ctx.channel(p["snr_db"])
    rng = point_rng(ctx.seed, "channel", ctx.image_name(p["image"]), p["snr_db"], RATE)
    system = p["system"]
    if system.startswith(("infercom/", "infercom-niqe/")):
        res = infercom_attempts(img, RATE, chan, rng, system.split("/", 1)[1], ctx, ctx.max_attempts,
                                gate="niqe_gate" if system.startswith("infercom-niqe/") else "gate")
    elif system == "nr":
        res = nr_point(img, RATE, chan, rng, ctx.max_attempts, image_key=(ctx.images[p["image"]], ctx.crop),
                       harq=ctx.nr_harq)
    else:
        res = deepjscc_point(img, system.split("/", 1)[1], chan, rng, ctx, ctx.max_attempts)
    return {"image": ctx.image_name(p["image"]), "system": system, "snr_db": p["snr_db"], "rate": RATE,
            "attempts_used": res["attempts_used"], "retransmissions": res["attempts_used"] - 1,
            "acked": res["acked"], "channel_uses": res["channel_uses"],
            "cu_per_pixel": channel_uses_per_pixel(res["channel_uses"], img),
            **score_output(img, res["_image"], ctx)}


def summarise(records: list[dict], ctx: Context, out: Path) -> dict:
    for r in records:
        r["retx_any"] = r["retransmissions"] > 0
        r["failed"] = not r["acked"]
    means = report.group_means(records, ("system", "snr_db"),
                               ["retransmissions", "retx_any", "failed", "cu_per_pixel", "psnr", "niqe", "req_met"])
    report.write_table(out / "summary.csv", means)
    report.line_figure(out / "retransmissions.png", means, "snr_db", "retransmissions", "system",
                       "instantaneous Es/N0 (dB)", "mean retransmissions per image",
                       f"retransmissions (attempt limit {ctx.max_attempts}, rate {RATE})")
    report.line_figure(out / "retransmission_rate.png", means, "snr_db", "retx_any", "system",
                       "instantaneous Es/N0 (dB)", "retransmission rate (share of images)",
                       "share of images needing at least one retransmission")
    report.line_figure(out / "channel_uses.png", means, "snr_db", "cu_per_pixel", "system",
                       "instantaneous Es/N0 (dB)", "channel uses per pixel, all attempts",
                       "bandwidth spent per image (all attempts)")
    own = f"infercom/{ctx.restorers[-1]}"
    at = REDUCTION_AT_DB if any(m["snr_db"] == REDUCTION_AT_DB for m in means) else \
        min((m["snr_db"] for m in means), key=lambda s: abs(s - REDUCTION_AT_DB))
    mean_at = {m["system"]: m["retransmissions"] for m in means if m["snr_db"] == at}
    reduction = {}
    for mine in (own, f"infercom-niqe/{ctx.restorers[-1]}"):
        for other, v in mean_at.items():
            if not other.startswith("infercom") and v and mine in mean_at:
                reduction[f"{mine} vs {other}"] = 1.0 - mean_at[mine] / v
    checks = {}
    for system in dict.fromkeys(m["system"] for m in means):
        seq = [m["retransmissions"] for m in sorted(means, key=lambda m: m["snr_db"]) if m["system"] == system]
        # a statistical check: the mean over the images may wiggle by one image's extra attempt
        checks[f"{system}_not_rising"] = report.monotone(seq, decreasing=True, tol=1.0 / max(1, len(ctx.images)) + 1e-9)
    cols = ["system", "snr_db", "retransmissions", "retx_any", "failed", "cu_per_pixel", "psnr", "niqe", "req_met"]
    lines = [f"Per system and instantaneous Es/N0 (dB), rate {RATE}, attempt limit {ctx.max_attempts}; each system "
             "with its own trigger (InferCom: the server's QoE gate; infercom-niqe: NIQE alone; NR: CRC; Deep-JSCC: the NIQE gate).", "",
             report.markdown_table(means, cols, ["system", "Es/N0 dB", "retx / image", "retx rate", "failed",
                                                 "ch. uses/px", "PSNR dB", "NIQE", "req. met"]), "",
             f"Reduction of the mean retransmissions at {at:g} dB (1 - InferCom's / the other's; undefined where "
             "the other needs none): " + (", ".join(f"{k}: {100 * v:.0f} %" for k, v in reduction.items())
                                          or "none defined") + ".", "",
             "Checks: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in checks.items()) + "."]
    return {"markdown": "\n".join(lines), "means": means, "reduction_at_db": at,
            "reduction": {k: (v if math.isfinite(v) else None) for k, v in reduction.items()}, "checks": checks}
