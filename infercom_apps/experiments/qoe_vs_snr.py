# SPDX-License-Identifier: GPL-3.0-or-later
"""``qoe-vs-snr``: QoE scores and PSNR/SSIM of every system's first-attempt output against instantaneous Es/N0.

Points: image x Es/N0 (-10 ... +4 dB in 2 dB steps; quick: -10, -6, -2, +2; NR also on a 1 dB grid) x
system, block Rayleigh fading at instantaneous SNR (the command's channel flags; default one coefficient per
image attempt, which ideal CSI equalises: the result is that of AWGN at the instantaneous SNR, the papers' x
axis; ``--fading-per frame`` spreads the SNR over the image's frames). Systems, all at rate about 1/9:
``infercom/<restorer>`` for each ``--restorers`` entry (one observation per image and Es/N0, restored by each),
``nr`` (equal channel uses with InferCom 1/9), ``deepjscc/channel-uses`` (equal channel uses) and
``deepjscc/paper`` (k/n = 1/12, 3/16 of InferCom's channel uses). One attempt each: this is the quality the
channel leaves, before any retransmission.
"""

from __future__ import annotations

from pathlib import Path

from . import report
from .runner import point_rng
from .systems import (DEEPJSCC_RATES, Context, channel_uses_per_pixel, deepjscc_point, infercom_once, nr_point,
                      score_output)

SNRS = [-10.0, -8.0, -6.0, -4.0, -2.0, 0.0, 2.0, 4.0]
QUICK_SNRS = [-10.0, -6.0, -2.0, 2.0]
#: NR alone is also run on a 1 dB grid over the same range: its cliff is narrower than the 2 dB steps
NR_SNRS = [float(s) for s in range(-10, 5)]
RATE = "1/9"
COLUMNS = ["image", "system", "snr_db", "rate", "channel_uses", "cu_per_pixel", "psnr", "ssim", "niqe",
           "coarse_ssim", "clip_iqa", "clip_sim", "req_met", "ber", "nr_success"]
SCORES = ["psnr", "ssim", "niqe", "coarse_ssim", "clip_iqa", "clip_sim", "req_met", "ber", "nr_success",
          "cu_per_pixel"]


def systems(ctx: Context) -> list[str]:
    return [f"infercom/{r}" for r in ctx.restorers] + ["nr"] + [f"deepjscc/{p}" for p in DEEPJSCC_RATES]


def plan(ctx: Context) -> list[dict]:
    snrs = QUICK_SNRS if ctx.quick else SNRS
    grid = sorted(set(snrs) | set(NR_SNRS))
    return [{"image": i, "snr_db": s, "system": sysname}
            for i in range(len(ctx.images)) for s in grid for sysname in systems(ctx)
            if s in snrs or sysname == "nr"]


def evaluate(p: dict, ctx: Context) -> dict:
    img = ctx.image(p["image"])
    chan = ctx.channel(p["snr_db"])
    rng = point_rng(ctx.seed, "channel", ctx.image_name(p["image"]), p["snr_db"], RATE)
    system = p["system"]
    row = {"image": ctx.image_name(p["image"]), "system": system, "snr_db": p["snr_db"], "rate": RATE}
    if system.startswith("infercom/"):
        r = system.split("/", 1)[1]
        res = infercom_once(img, RATE, chan, rng, (r,), ctx)
        out, row["ber"], cu = res["images"][r], res["ber"], res["channel_uses"]
    elif system == "nr":
        res = nr_point(img, RATE, chan, rng, 1, image_key=(ctx.images[p["image"]], ctx.crop))
        out, row["nr_success"], cu = res["_image"], res["success"], res["channel_uses"]
    else:
        res = deepjscc_point(img, system.split("/", 1)[1], chan, rng, ctx, 1)
        out, cu = res["_image"], res["channel_uses"]
    row.update(channel_uses=cu, cu_per_pixel=channel_uses_per_pixel(cu, img), **score_output(img, out, ctx))
    return row


def nr_cliff(means: list[dict]) -> dict:
    """The NR cliff from the mean success per Es/N0: the first Es/N0 with success >= 0.5 (dB), and the width
    from the last point <= 0.1 to the first >= 0.9 (dB; None where the sweep does not reach both)."""
    pts = sorted((m["snr_db"], m["nr_success"]) for m in means if m["system"] == "nr")
    half = next((s for s, v in pts if v >= 0.5), None)
    lo = [s for s, v in pts if v <= 0.1]
    hi = [s for s, v in pts if v >= 0.9]
    width = (min(hi) - max(s for s in lo if s < min(hi))) if hi and any(s < min(hi) for s in lo) else None
    return {"nr_cliff_snr_db": half, "nr_cliff_width_db": width}


def summarise(records: list[dict], ctx: Context, out: Path) -> dict:
    means = report.group_means(records, ("system", "snr_db"), SCORES)
    report.write_table(out / "summary.csv", means)
    cu = {m["system"]: m["cu_per_pixel"] for m in means}

    def label(s):
        return f"{s} ({cu.get(s, 0):.3g} ch. uses/pixel)"

    for y, ylabel in (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("niqe", "NIQE (lower is better)"),
                      ("coarse_ssim", "coarse SSIM (4x4 area-averaged)"), ("req_met", "QoE requirement met (share)")):
        report.line_figure(out / f"{y}.png", means, "snr_db", y, "system", "instantaneous Es/N0 (dB)", ylabel,
                           f"qoe-vs-snr: {ylabel}, first attempt, {ctx.fading} fading per {ctx.fading_per}", label)
    if ctx.clip:
        for y in ("clip_iqa", "clip_sim"):
            report.line_figure(out / f"{y}.png", means, "snr_db", y, "system", "instantaneous Es/N0 (dB)", y,
                               f"qoe-vs-snr: {y}", label)
    cliff = nr_cliff(means)
    ber = [m["ber"] for m in sorted(means, key=lambda m: m["snr_db"]) if m["system"] == f"infercom/{ctx.restorers[0]}"]
    nr = [m["nr_success"] for m in sorted(means, key=lambda m: m["snr_db"]) if m["system"] == "nr"]
    checks = {"uncoded_ber_falls": report.monotone(ber, decreasing=True),
              "nr_success_rises": report.monotone(nr, decreasing=False),
              "nr_cliff_within_2db": cliff["nr_cliff_width_db"] is not None and cliff["nr_cliff_width_db"] <= 2.0}
    cols = ["system", "snr_db", "cu_per_pixel", "psnr", "ssim", "niqe", "coarse_ssim", "req_met", "ber", "nr_success"]
    md = "\n".join([
        f"Means over images per system and instantaneous Es/N0 (dB), one attempt, rate {RATE} (InferCom, NR), "
        f"{ctx.fading} fading per {ctx.fading_per}.", "",
        report.markdown_table(means, cols, ["system", "Es/N0 dB", "ch. uses/px", "PSNR dB", "SSIM", "NIQE",
                                            "coarse SSIM", "req. met", "BER", "NR success"]), "",
        f"NR cliff (success >= 0.5 first at): {cliff['nr_cliff_snr_db']} dB; 10 % -> 90 % width: "
        f"{cliff['nr_cliff_width_db']} dB.", "",
        "Checks: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in checks.items()) + "."])
    return {"markdown": md, "means": means, **cliff, "checks": checks}
