# SPDX-License-Identifier: GPL-3.0-or-later
"""``required-snr``: the Es/N0 at which each system meets the QoE requirement, against compression rate.

Points: image x rate (1/25, 1/16, 1/9, 1/4, 1/2, 1) x system (``infercom/<restorer>`` for the last
``--restorers`` entry and for ``bicubic``, ``nr`` at the channel uses of InferCom's rate, and Deep-JSCC at the
rates it has a checkpoint for: ``channel-uses`` = InferCom 1/9's channel uses, ``paper`` = k/n 1/12). Quick:
rates 1/16, 1/9, 1/4.

Per point, the lowest Es/N0 of the grid (-12 ... +12 dB in 1 dB steps; quick: 2 dB steps) at which the
system's first-attempt output meets the requirement (:func:`~.systems.meets_requirement`, applied to every
system's output alike) is found by bisection over the grid, assuming that the requirement, once met, stays met
at higher Es/N0 (each evaluation draws the channel from a generator seeded by image, rate and Es/N0, so a
repeated evaluation is the same). ``required_snr_db`` is ``inf`` when the requirement is not met at the top of
the grid, the grid's lowest value (with ``below_grid``) when it is met there. Per system and rate the summary
states the median over images and the *90 % point* (90 % of the images meet the requirement at or below it),
and the coverage gain over NR = NR's 90 % point - the system's.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import report
from .runner import point_rng
from .systems import (DEEPJSCC_RATES, RATE_BLOCKS, Context, channel_uses_per_pixel, deepjscc_point, infercom_once,
                      nr_point, rate_value, score_output)

RATES = list(RATE_BLOCKS)
QUICK_RATES = ["1/16", "1/9", "1/4"]
GRID = [float(s) for s in range(-12, 13)]
QUICK_GRID = [float(s) for s in range(-12, 13, 2)]
COLUMNS = ["image", "system", "rate", "rate_value", "channel_uses", "cu_per_pixel", "required_snr_db",
           "below_grid", "evaluations"]
PERCENTILE = 90


def systems(ctx: Context) -> list[str]:
    names = [f"infercom/{r}" for r in dict.fromkeys(("bicubic", ctx.restorers[-1]))]
    return names + ["nr"]


def plan(ctx: Context) -> list[dict]:
    rates = QUICK_RATES if ctx.quick else RATES
    pts = []
    for i in range(len(ctx.images)):
        for rate in rates:
            pts += [{"image": i, "rate": rate, "system": s} for s in systems(ctx)]
        pts += [{"image": i, "rate": r, "system": f"deepjscc/{p}"} for p, r in DEEPJSCC_RATES.items()]
    return pts


def _output(p: dict, ctx: Context, img: np.ndarray, snr_db: float):
    """The system's first-attempt output at ``snr_db`` and its channel uses."""
    chan = ctx.channel(snr_db)
    rng = point_rng(ctx.seed, "channel", ctx.image_name(p["image"]), snr_db, p["rate"])
    system = p["system"]
    if system.startswith("infercom/"):
        r = system.split("/", 1)[1]
        res = infercom_once(img, p["rate"], chan, rng, (r,), ctx)
        return res["images"][r], res["channel_uses"]
    if system == "nr":
        res = nr_point(img, p["rate"], chan, rng, 1, image_key=(ctx.images[p["image"]], ctx.crop))
        return res["_image"], res["channel_uses"]
    res = deepjscc_point(img, system.split("/", 1)[1], chan, rng, ctx, 1)
    return res["_image"], res["channel_uses"]


def first_met(grid: list[float], met) -> tuple[int, list[tuple[float, bool]]]:
    """Bisection for the first index of ``grid`` where ``met(snr)`` holds, assuming it holds from there on;
    ``len(grid)`` when it never does. Returns the index and the evaluations ``[(snr, met), ...]`` in order."""
    lo, hi = 0, len(grid)          # invariant: met fails below lo; holds at hi (hi == len: unknown / never)
    evals = []
    while lo < hi:
        mid = (lo + hi) // 2
        ok = bool(met(grid[mid]))
        evals.append((grid[mid], ok))
        if ok:
            hi = mid
        else:
            lo = mid + 1
    return lo, evals


def evaluate(p: dict, ctx: Context) -> dict:
    img = ctx.image(p["image"])
    grid = QUICK_GRID if ctx.quick else GRID
    uses = {}

    def met(s: float) -> bool:
        out, uses["cu"] = _output(p, ctx, img, s)
        return score_output(img, out, ctx)["req_met"]

    idx, evals = first_met(grid, met)
    return {"image": ctx.image_name(p["image"]), "system": p["system"], "rate": p["rate"],
            "rate_value": rate_value(p["rate"]), "channel_uses": uses["cu"],
            "cu_per_pixel": channel_uses_per_pixel(uses["cu"], img),
            "required_snr_db": grid[idx] if idx < len(grid) else math.inf, "below_grid": idx == 0,
            "evaluations": [[s, ok] for s, ok in evals]}


def percentile_point(values: list[float], q: float = PERCENTILE) -> float:
    """The Es/N0 at which ``q`` % of the images meet the requirement: the q-th percentile (nearest rank) of the
    per-image required Es/N0 (``inf`` when more than 100 - q % never meet it)."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    rank = max(1, math.ceil(q / 100 * v.size))
    return float(v[rank - 1])


def summarise(records: list[dict], ctx: Context, out: Path) -> dict:
    grid = QUICK_GRID if ctx.quick else GRID
    rows = []
    for system in dict.fromkeys(r["system"] for r in records):
        for rate in dict.fromkeys(r["rate"] for r in records if r["system"] == system):
            rs = [r for r in records if r["system"] == system and r["rate"] == rate]
            req = [float(r["required_snr_db"]) for r in rs]
            point = percentile_point(req)
            rows.append({"system": system, "rate": rate, "rate_value": rs[0]["rate_value"],
                         "cu_per_pixel": float(np.mean([r["cu_per_pixel"] for r in rs])), "n": len(rs),
                         "median_db": float(np.median(req)), f"p{PERCENTILE}_db": point,
                         "never_met": sum(math.isinf(v) for v in req),
                         "below_grid": sum(bool(r["below_grid"]) for r in rs),
                         # met at the grid's bottom: the point is at most the bottom, the gain at least its value
                         f"p{PERCENTILE}_bound": point <= grid[0]})
    nr = {r["rate"]: r[f"p{PERCENTILE}_db"] for r in rows if r["system"] == "nr"}
    for r in rows:            # defined where both meet the requirement within the grid
        base, own = nr.get(r["rate"]), r[f"p{PERCENTILE}_db"]
        r["gain_over_nr_db"] = (base - own if r["system"] != "nr" and base is not None and math.isfinite(base)
                                and math.isfinite(own) else None)
    rows.sort(key=lambda r: (r["system"], r["rate_value"]))
    report.write_table(out / "summary.csv", rows)
    bound_note = f"open triangle: met at the grid's bottom ({grid[0]:g} dB) by {PERCENTILE} % of the images, a bound"
    report.rate_figure(out / "required_snr.png", rows, f"p{PERCENTILE}_db", "system",
                       f"Es/N0 where {PERCENTILE} % of images meet the QoE requirement (dB)",
                       "required-snr: required Es/N0 against rate (not met in -12..+12 dB: left out)",
                       bound=(f"p{PERCENTILE}_bound", "v", bound_note + " (at most)"))
    gains = [r for r in rows if r["gain_over_nr_db"] is not None and math.isfinite(r["gain_over_nr_db"])]
    if gains:
        report.rate_figure(out / "coverage_gain.png", gains, "gain_over_nr_db", "system",
                           "coverage gain over NR (dB)", "required-snr: coverage gain over NR per rate",
                           bound=(f"p{PERCENTILE}_bound", "^", bound_note + " (the gain at least)"))
    nr_rows = sorted((r for r in rows if r["system"] == "nr"), key=lambda r: r["rate_value"])
    checks = {
        # NR's channel code (LDPC rate 1/3, QPSK) is the same at every rate, so wherever its JPEG meets the
        # requirement at all, its required Es/N0 is the code's decoding threshold: within 2 dB across rates
        "nr_threshold_common": _spread([r[f"p{PERCENTILE}_db"] for r in nr_rows]) <= 2.0,
        "every_point_present": len(records) == len({(r["image"], r["system"], r["rate"]) for r in records}),
    }
    cols = ["system", "rate", "cu_per_pixel", "median_db", f"p{PERCENTILE}_db", "never_met", "below_grid",
            f"p{PERCENTILE}_bound", "gain_over_nr_db"]
    md = "\n".join([
        f"Required instantaneous Es/N0 (dB) to meet the QoE requirement on the first attempt, per system and "
        f"rate; grid {grid[0]:g} ... {grid[-1]:g} dB "
        f"('not met': not within it). Gain = NR's {PERCENTILE} % point - the system's (where both are met).", "",
        report.markdown_table(rows, cols, ["system", "rate", "ch. uses/px", "median dB", f"{PERCENTILE} % dB",
                                           "never met", "met at grid bottom", f"{PERCENTILE} % point a bound",
                                           "gain over NR dB"]), "",
        "Checks: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in checks.items()) + "."])
    return {"markdown": md, "rows": rows, "checks": checks,
            "coverage_gain_db": {f"{r['system']}@{r['rate']}": r["gain_over_nr_db"] for r in rows
                                 if r["gain_over_nr_db"] is not None}}


def _spread(values: list[float]) -> float:
    v = [x for x in values if math.isfinite(x)]
    return float(max(v) - min(v)) if v else 0.0
