# SPDX-License-Identifier: GPL-3.0-or-later
"""``power-allocation``: the importance power profile against equal power per bit plane.

Points: image x Es/N0 (-10 ... +2 dB in 2 dB steps; quick: -8, -2) x ``profile`` (``importance``: the
minimum expected hard-decision MSE allocation at the design Es/N0 of -4 dB, :func:`infercom.power.plane_powers`;
``equal``), the InferCom link at rate 1/9 (3x3 blocks, all 8 planes, one attempt) over the command's channel
(default block Rayleigh fading per image at instantaneous SNR, which ideal CSI turns into AWGN at Es/N0).
Both profiles of one (image, Es/N0) share the generator seed, hence the fading draw.

Row fields: ``ber_plane7`` ... ``ber_plane0`` (hard-decision BER of each plane, bit 7 the MSB,
:func:`infercom.simulate.lowres_metrics`), ``ber_plane7_theory`` (``Q(sqrt(p_7 Es/N0))``,
:func:`infercom.power.plane_ber`, only where the channel is AWGN-equivalent: no fading, or one coefficient
per image at instantaneous SNR; else None), ``lowres_mse`` / ``lowres_mse_hard`` (low-res MSE of the MMSE /
hard-decision reconstruction, grey levels squared), ``psnr_bicubic`` (dB, plain bicubic upsampling of the MMSE
observation), and ``psnr`` (dB) / ``ssim`` / ``niqe`` / ``coarse_ssim`` / ``req_met`` of the image restored
by ``ctx.restorers[-1]`` (:func:`.systems.score_output`); ``n_values`` (low-res values, i.e. bits per plane)
and ``channel_uses`` (complex symbols).
"""

from __future__ import annotations

import math
from pathlib import Path

from infercom import link, power
from infercom.simulate import lowres_metrics

from . import report
from .error_distribution import restore_and_score
from .runner import point_rng
from .systems import Context, observe_rx

SNRS = [-10.0, -8.0, -6.0, -4.0, -2.0, 0.0, 2.0]
QUICK_SNRS = [-8.0, -2.0]
RATE = "1/9"
BH = BW = 3
PROFILES = ["importance", "equal"]
#: plane bit indices, MSB first (the order of ``ber_per_plane``)
PLANE_BITS = list(range(7, -1, -1))
BER_COLS = [f"ber_plane{k}" for k in PLANE_BITS]
#: z-score of the per-plane spread allowed by ``equal_planes_equal``
Z_TOL = 5.0
COLUMNS = ["image", "profile", "snr_db", *BER_COLS, "ber_plane7_theory", "lowres_mse", "lowres_mse_hard",
           "psnr_bicubic", "psnr", "ssim", "niqe", "coarse_ssim", "clip_iqa", "clip_sim", "req_met", "n_values",
           "channel_uses"]
SCORES = [*BER_COLS, "ber_plane7_theory", "lowres_mse", "lowres_mse_hard", "psnr_bicubic", "psnr", "ssim", "niqe",
          "coarse_ssim", "clip_iqa", "clip_sim", "req_met", "n_values"]


def link_config(profile: str) -> link.LinkConfig:
    return link.LinkConfig(bh=BH, bw=BW, planes=8, profile=profile)


def awgn_equivalent(ctx: Context) -> bool:
    """Whether the channel is AWGN at Es/N0 after ideal equalisation: no fading, or one coefficient per image
    attempt scaled to unit gain (instantaneous SNR)."""
    return ctx.fading == "none" or (ctx.fading_per == "image" and ctx.snr_mode == "instantaneous")


def plan(ctx: Context) -> list[dict]:
    snrs = QUICK_SNRS if ctx.quick else SNRS
    return [{"image": i, "snr_db": s, "profile": pr} for i in range(len(ctx.images)) for s in snrs for pr in PROFILES]


def evaluate(p: dict, ctx: Context) -> dict:
    img = ctx.image(p["image"])
    name = ctx.image_name(p["image"])
    cfg = link_config(p["profile"])
    rng = point_rng(ctx.seed, "channel", name, p["snr_db"], RATE)        # shared by the two profiles
    x, lay = link.encode_image(img, cfg)
    rx = ctx.channel(p["snr_db"])(x, rng)
    llr = link.soft_to_llr(rx.y, rx.noise_var, lay, cfg)
    obs, meta = observe_rx(llr, lay, cfg, rx, ctx.channel(p["snr_db"]).block_len)
    stats, _ = lowres_metrics(img, llr, obs, link.llr_to_lowres(llr, lay, cfg, "hard"), cfg)
    theory = float(power.plane_ber(cfg.plane_powers(), p["snr_db"])[0]) if awgn_equivalent(ctx) else None
    row = {"image": name, "profile": p["profile"], "snr_db": p["snr_db"],
           **dict(zip(BER_COLS, stats["ber_per_plane"])), "ber_plane7_theory": theory,
           "lowres_mse": stats["lowres_mse_mmse"], "lowres_mse_hard": stats["lowres_mse_hard"],
           "n_values": stats["n_values"], "channel_uses": int(x.size)}
    row.update(restore_and_score(img, obs, meta, lay, ctx))
    return row


# ------------------------------------------------------------------------------------------------- summary
def _by_snr(means: list[dict], profile: str) -> dict[float, dict]:
    return {m["snr_db"]: m for m in means if m["profile"] == profile}


def equal_spread(m: dict, n_bits: int) -> tuple[float, float]:
    """Largest deviation of an equal-power mean row's plane BERs from their mean, and the tolerance
    ``Z_TOL * sqrt(p (1 - p) / n_bits)`` (``n_bits``: the bits of one plane over all images)."""
    bers = [m[c] for c in BER_COLS]
    pbar = sum(bers) / len(bers)
    return max(abs(b - pbar) for b in bers), Z_TOL * math.sqrt(max(pbar * (1 - pbar), 1e-12) / max(n_bits, 1))


def checks_of(means: list[dict], records: list[dict]) -> dict:
    """``importance_protects_msb``: MSB BER lower with importance at every Es/N0; ``importance_lowers_mse``:
    hard-decision and MMSE low-res MSE lower with importance at every Es/N0 of the grid at or below the design
    Es/N0 (-4 dB); ``equal_planes_equal``: with equal power every plane's BER within :data:`Z_TOL` binomial
    standard deviations of the planes' mean (under any fading: the interleaver spreads every plane over all
    of an image's symbols, so given the fading draw each plane's bits err independently alike)."""
    imp, eq = _by_snr(means, "importance"), _by_snr(means, "equal")
    snrs = sorted(set(imp) & set(eq))
    design = link_config("importance").design_snr_db
    out = {"importance_protects_msb": bool(snrs) and all(imp[s]["ber_plane7"] < eq[s]["ber_plane7"] for s in snrs),
           "importance_lowers_mse": bool([s for s in snrs if s <= design]) and all(
               imp[s][f] < eq[s][f] for s in snrs if s <= design for f in ("lowres_mse_hard", "lowres_mse"))}
    bits = {s: sum(r["n_values"] for r in records if r["profile"] == "equal" and r["snr_db"] == s) for s in eq}
    out["equal_planes_equal"] = bool(eq) and all(d <= t for d, t in (equal_spread(eq[s], bits[s]) for s in eq))
    return out


def summarise(records: list[dict], ctx: Context, out: Path) -> dict:
    means = report.group_means(records, ("profile", "snr_db"), SCORES)
    report.write_table(out / "summary.csv", means)
    restorer = ctx.restorers[-1]
    xlabel = f"Es/N0 (dB), {ctx.fading} fading per {ctx.fading_per}, {ctx.snr_mode} SNR"
    curves = [{"series": f"{m['profile']}: {lab}", "snr_db": m["snr_db"], "v": m[col]}
              for m in means for col, lab in (("ber_plane7", "MSB (bit 7)"), ("ber_plane0", "LSB (bit 0)"))]
    if awgn_equivalent(ctx):
        curves += [{"series": f"{m['profile']}: MSB theory", "snr_db": m["snr_db"], "v": m["ber_plane7_theory"]}
                   for m in means]
    report.line_figure(out / "ber_per_plane.png", curves, "snr_db", "v", "series", xlabel, "bit error rate",
                       f"power-allocation: MSB and LSB BER, rate {RATE}, one attempt", logy=True)
    curves = [{"series": f"{m['profile']}: {lab}", "snr_db": m["snr_db"], "v": m[col]}
              for m in means for col, lab in (("psnr", f"restored ({restorer})"), ("psnr_bicubic", "bicubic"))]
    report.line_figure(out / "psnr.png", curves, "snr_db", "v", "series", xlabel, "PSNR (dB)",
                       f"power-allocation: PSNR, rate {RATE}, one attempt")
    checks = checks_of(means, records)
    powers = {pr: [round(float(v), 4) for v in link_config(pr).plane_powers()] for pr in PROFILES}
    cols = ["profile", "snr_db", "ber_plane7", "ber_plane7_theory", "ber_plane6", "ber_plane4", "ber_plane0",
            "lowres_mse_hard", "lowres_mse", "psnr_bicubic", "psnr", "ssim", "niqe", "coarse_ssim", "req_met"]
    md = "\n".join([
        f"Means over images per power profile and Es/N0 (dB), rate {RATE}, 8 planes, one attempt, {ctx.fading} "
        f"fading per {ctx.fading_per} ({ctx.snr_mode} SNR), restorer {restorer}. Plane powers (bit 7 first): "
        f"importance {powers['importance']}, equal {powers['equal']}. MSE in grey levels squared.", "",
        report.markdown_table(means, cols, ["profile", "Es/N0 dB", "BER b7", "BER b7 theory", "BER b6", "BER b4",
                                            "BER b0", "MSE hard", "MSE MMSE", "bicubic PSNR dB", "PSNR dB", "SSIM",
                                            "NIQE", "coarse SSIM", "req. met"]), "",
        "importance_lowers_mse checks both MSEs at the grid's Es/N0 <= the design -4 dB; equal_planes_equal "
        f"allows {Z_TOL:g} binomial standard deviations of the planes' mean BER.", "",
        "Checks: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in checks.items()) + "."])
    return {"markdown": md, "means": means, "plane_powers": powers, "checks": checks}
