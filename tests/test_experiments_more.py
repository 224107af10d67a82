# SPDX-License-Identifier: GPL-3.0-or-later
"""The quick variants of ``infercom experiment error-distribution`` and ``power-allocation``, run in-process on
two cropped Kodak images: complete CSVs, the physics checks, and the numbers they rest on."""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict

import pytest

from infercom_apps.experiments import cli, error_distribution, power_allocation
from infercom_apps.experiments.runner import parse_cell, point_key


def _args(name: str, images, out) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    return p.parse_args([name, "--quick", "--images", str(images), "--workers", "1", "--out", str(out),
                         "--no-progress"])


def _run(name: str, images, out) -> dict:
    args = _args(name, images, out)
    summary = cli.run_experiment(args)
    folder = out / "experiments" / name
    with open(folder / "points.csv", newline="", encoding="utf-8") as fh:
        rows = [{k: v if k == "key" else parse_cell(v) for k, v in r.items()} for r in csv.DictReader(fh)]
    return {"summary": summary, "rows": rows, "folder": folder, "ctx": cli.make_context(args)}


@pytest.fixture(scope="module")
def errdist(kodak_dir, tmp_path_factory):
    return _run("error-distribution", kodak_dir, tmp_path_factory.mktemp("errdist"))


@pytest.fixture(scope="module")
def power(kodak_dir, tmp_path_factory):
    return _run("power-allocation", kodak_dir, tmp_path_factory.mktemp("power"))


def _complete(res: dict, module) -> None:
    planned = [point_key(p) for p in module.plan(res["ctx"])]
    assert [r["key"] for r in res["rows"]] == planned            # every point once, in canonical order
    assert len(set(planned)) == len(planned)
    assert all(r.get(c) is not None for r in res["rows"] for c in ("psnr", "ssim", "coarse_ssim", "req_met"))


def _binomial_tol(p: float, n: int, z: float = 5.0) -> float:
    return z * math.sqrt(max(p * (1 - p), 1e-12) / n)


# ------------------------------------------------------------------------------------------ error-distribution
def test_error_distribution_complete_and_checks(errdist):
    _complete(errdist, error_distribution)
    checks = errdist["summary"]["checks"]
    assert set(checks) == {"conv_errors_clustered", "interleaver_scatters", "ber_falls"}
    assert all(checks.values()), checks
    for f in ("psnr.png", "value_error_rate.png", "clustering.png", "summary.csv", "summary.md"):
        assert (errdist["folder"] / f).stat().st_size > 0


def test_error_distribution_equal_channel_uses(errdist):
    by = {(r["image"], r["snr_db"], r["variant"]): r for r in errdist["rows"]}
    for (img, snr, variant), r in by.items():
        unc = by[(img, snr, "uncoded+interleaver")]
        assert r["channel_uses_link"] == unc["channel_uses"]
        assert abs(r["channel_uses"] / unc["channel_uses"] - 1) < 0.01, (variant, r["channel_uses"])
    assert all(r["channel_uses"] == r["channel_uses_link"] for r in errdist["rows"] if r["variant"] != "conv-1/2-K7")


def test_error_distribution_physics(errdist):
    rows = errdist["rows"]
    snrs = sorted({r["snr_db"] for r in rows})
    mean = defaultdict(list)
    for r in rows:
        mean[(r["variant"], r["snr_db"])].append(r)

    def m(variant, snr, field):
        return sum(r[field] for r in mean[(variant, snr)]) / len(mean[(variant, snr)])

    for v in ("uncoded+interleaver", "uncoded"):
        assert m(v, snrs[-1], "ber_top4") < m(v, snrs[0], "ber_top4")
        assert 0.0 < m(v, snrs[-1], "ber_top4") < 0.5
    for r in rows:
        # a value is wrong when one of its top 4 bits is: between the BER and 4 x the BER
        assert r["ber_top4"] <= r["value_error_rate"] + 1e-12 <= 4 * r["ber_top4"] + 1e-9
        if r["variant"] == "uncoded+interleaver":
            # the interleaver leaves no structure beyond the error rate's
            assert abs(r["clustering_excess"]) < 0.02, r
            assert abs(r["clustering"] - r["clustering_iid"]) < 0.02, r
    # the restorer gains over bicubic on the interleaved link's scattered errors
    assert all(m("uncoded+interleaver", s, "psnr") > m("uncoded+interleaver", s, "psnr_bicubic") for s in snrs)


def test_error_distribution_deterministic(errdist):
    ctx = errdist["ctx"]
    p = error_distribution.plan(ctx)[2]
    row = error_distribution.evaluate(p, ctx)
    stored = next(r for r in errdist["rows"] if r["key"] == point_key(p))
    assert all(row[k] == stored[k] for k in ("value_error_rate", "ber_top4", "clustering", "channel_uses"))


# --------------------------------------------------------------------------------------------- power-allocation
def test_power_allocation_complete_and_checks(power):
    _complete(power, power_allocation)
    checks = power["summary"]["checks"]
    assert set(checks) == {"importance_protects_msb", "importance_lowers_mse", "equal_planes_equal"}
    assert all(checks.values()), checks
    for f in ("ber_per_plane.png", "psnr.png", "summary.csv", "summary.md"):
        assert (power["folder"] / f).stat().st_size > 0


def test_power_allocation_msb_theory(power):
    """The quick run's channel is the default (one coefficient per image, instantaneous SNR): AWGN at Es/N0,
    so the measured MSB BER of each profile follows Q(sqrt(p_7 Es/N0)) within binomial scatter."""
    assert power_allocation.awgn_equivalent(power["ctx"])
    groups = defaultdict(list)
    for r in power["rows"]:
        groups[(r["profile"], r["snr_db"])].append(r)
    assert {pr for pr, _ in groups} == {"importance", "equal"}
    for (profile, snr), rs in groups.items():
        theory = rs[0]["ber_plane7_theory"]
        assert all(r["ber_plane7_theory"] == theory for r in rs)
        n = sum(r["n_values"] for r in rs)
        measured = sum(r["ber_plane7"] * r["n_values"] for r in rs) / n
        assert abs(measured - theory) <= _binomial_tol(theory, n), (profile, snr, measured, theory)
        if profile == "importance":
            # the unpowered low planes are guesses: the bit is read as 0, wrong wherever it is 1
            assert all(0.35 < r["ber_plane0"] < 0.65 for r in rs)


def test_power_allocation_shared_channel(power):
    """Both profiles of one (image, Es/N0) send the same number of symbols through the same draw."""
    by = defaultdict(dict)
    for r in power["rows"]:
        by[(r["image"], r["snr_db"])][r["profile"]] = r
    for pair in by.values():
        assert pair["importance"]["channel_uses"] == pair["equal"]["channel_uses"]
        assert pair["importance"]["lowres_mse_hard"] < pair["equal"]["lowres_mse_hard"]
