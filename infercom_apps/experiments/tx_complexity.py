# SPDX-License-Identifier: GPL-3.0-or-later
"""``tx-complexity``: transmitter operations per image for the three systems, from their exact counters.

Points: image x system x rate. Counters (no timing; arithmetic operations on the image's own size):

* InferCom: :func:`infercom.source.op_count` -- the block-mean encoder's additions, divisions and roundings
  (the bit-plane split, Gray QPSK mapping with the per-plane amplitude and the interleaver are table look-ups
  and moves, not arithmetic, and are not counted);
* NR: :meth:`infercom.nr.harq.NrImageTx.op_count` of the first attempt -- one JPEG encode at the chosen
  quality (:func:`infercom.nr.jpeg.jpeg_op_count`: colour conversion, DCT, quantisation, entropy coding), the
  CRCs and the LDPC parity XORs. The quality search's extra encodes (``jpeg_trials``) are reported, not added;
* Deep-JSCC: :meth:`deepjscc.model.DeepJSCCCodec.encoder_flops` -- the encoder network's exact FLOPs
  (multiply-adds count 2) and the power normalisation, at the presets' rates.

Rates: every rate of :data:`~.systems.RATE_BLOCKS` for InferCom and NR (quick: 1/9), Deep-JSCC at its
presets' rates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from infercom import source

from . import report
from .systems import DEEPJSCC_RATES, RATE_BLOCKS, Context, rate_value, resource

COLUMNS = ["image", "system", "rate", "rate_value", "height", "width", "tx_ops", "ops_per_pixel", "ops_source",
           "ops_crc", "ops_channel_code", "jpeg_trials", "jpeg_quality"]


def plan(ctx: Context) -> list[dict]:
    rates = ["1/9"] if ctx.quick else list(RATE_BLOCKS)
    pts = []
    for i in range(len(ctx.images)):
        pts += [{"image": i, "system": s, "rate": r} for r in rates for s in ("infercom", "nr")]
        pts += [{"image": i, "system": f"deepjscc/{p}", "rate": r} for p, r in DEEPJSCC_RATES.items()]
    return pts


def evaluate(p: dict, ctx: Context) -> dict:
    img = ctx.image(p["image"])
    h, w, c = img.shape
    row = {"image": ctx.image_name(p["image"]), "system": p["system"], "rate": p["rate"],
           "rate_value": rate_value(p["rate"]), "height": h, "width": w}
    if p["system"] == "infercom":
        bh, bw = RATE_BLOCKS[p["rate"]]
        ops = source.op_count(h, w, c, bh, bw)
        row.update(tx_ops=ops["total"], ops_source=ops["total"], ops_crc=0, ops_channel_code=0)
    elif p["system"] == "nr":
        from infercom.nr.harq import NrImageTx

        bh, bw = RATE_BLOCKS[p["rate"]]
        tx = NrImageTx(img, "channel-uses", "1/3", bh, bw, 8, "ir", 1)
        ops = tx.op_count(1)
        row.update(tx_ops=ops["total"], ops_source=ops["jpeg"], ops_crc=ops["crc_tb"] + ops["crc_cb"],
                   ops_channel_code=ops["ldpc"], jpeg_trials=ops["jpeg_trials"], jpeg_quality=tx.quality)
    else:
        codec = resource("codec", p["system"].split("/", 1)[1], ctx)
        flops = int(codec.encoder_flops(h, w, c))
        row.update(tx_ops=flops, ops_source=flops, ops_crc=0, ops_channel_code=0)
    row["ops_per_pixel"] = row["tx_ops"] / float(h * w)
    return row


def summarise(records: list[dict], ctx: Context, out: Path) -> dict:
    means = report.group_means(records, ("system", "rate"), ["rate_value", "tx_ops", "ops_per_pixel", "ops_source",
                                                             "ops_crc", "ops_channel_code", "jpeg_trials"])
    base = {m["rate"]: m["tx_ops"] for m in means if m["system"] == "infercom"}
    ref19 = base.get("1/9")
    for m in means:
        b = base.get(m["rate"], ref19)
        m["x_infercom"] = m["tx_ops"] / b if b else None
    means.sort(key=lambda m: (m["system"], m["rate_value"]))
    report.write_table(out / "summary.csv", means)
    plt = report._plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for s in dict.fromkeys(m["system"] for m in means):
        pts = sorted((m["rate_value"], m["ops_per_pixel"]) for m in means if m["system"] == s)
        xs, ys = zip(*pts)
        ax.plot(xs, ys, marker="o", label=s)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("compression rate (the papers' convention)")
    ax.set_ylabel("transmitter operations per pixel")
    ax.set_title("tx-complexity: exact operation counts per image pixel", fontsize=10)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "tx_ops.png", dpi=120)
    plt.close(fig)
    inf = [m for m in means if m["system"] == "infercom"]
    def closed_form(rate) -> float:   # block means: n - 1 additions, one division, one rounding per n values
        bh, bw = RATE_BLOCKS[str(rate)]     # the CSV reads the rate "1" back as the number 1
        n = bh * bw
        return (n + 1) / n if n > 1 else 0.0      # 1x1: the pixels are the values, no arithmetic at all

    per_value = {(r["image"], r["rate"]): r["ops_source"] / (r["height"] * r["width"] * 3)
                 for r in records if r["system"] == "infercom"}
    checks = {"infercom_closed_form": all((v == 0.0) if closed_form(k[1]) == 0.0 else
                                          abs(v / closed_form(k[1]) - 1) < 0.05 for k, v in per_value.items()),
              # at rate 1 InferCom does no arithmetic (the ratio is undefined there)
              "infercom_cheapest_at_every_rate": all(
                  m["x_infercom"] is None or m["x_infercom"] >= 1.0 for m in means if m["system"] != "infercom")}
    md = "\n".join([
        "Transmitter operations per image (means over images); `x InferCom` = the system's count / InferCom's "
        "at the same rate (Deep-JSCC: against InferCom 1/9).", "",
        report.markdown_table(means, ["system", "rate", "tx_ops", "ops_per_pixel", "ops_source", "ops_crc",
                                      "ops_channel_code", "jpeg_trials", "x_infercom"],
                              ["system", "rate", "ops / image", "ops / pixel", "source", "CRC", "channel code",
                               "JPEG trials", "x InferCom"], digits=2), "",
        "Checks: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in checks.items()) + "."])
    return {"markdown": md, "means": means, "checks": checks,
            "ratio_vs_infercom_1_9": {m["system"]: m["x_infercom"] for m in means if m["rate"] in ("1/9", "1/12")
                                      and m["system"] != "infercom"},
            "ops_per_pixel_mean": float(np.mean([m["ops_per_pixel"] for m in inf])) if inf else None}
