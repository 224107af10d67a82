# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom experiment``: seeds from coordinates, the resumable CSV, pool / Ray / in-process equality, and
the quick variants' physics (docs/results.md)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from infercom_apps.experiments import EXPERIMENTS, cli, get
from infercom_apps.experiments.required_snr import first_met, percentile_point
from infercom_apps.experiments.runner import (PointStore, format_cell, parse_cell, point_key, point_rng,
                                              point_seed)

REPO = Path(__file__).resolve().parents[1]


def _args(name: str, images: Path, out: Path, *extra: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    argv = [name, "--quick", "--images", str(images), "--out", str(out), "--no-progress", *extra]
    a = p.parse_args(argv)
    a._argv = argv
    return a


def _rows(out: Path, name: str) -> list[dict]:
    with open(out / "experiments" / name / "points.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _csv_text(out: Path, name: str) -> str:
    return (out / "experiments" / name / "points.csv").read_text()


# ------------------------------------------------------------------------------------------ runner units
def test_point_seed_depends_on_coordinates_only():
    assert point_seed(0, "a", 1.0) == point_seed(0, "a", 1.0)
    assert point_seed(0, "a", 1.0) != point_seed(0, "a", 2.0) != point_seed(1, "a", 2.0)
    assert 0 <= point_seed(5, {"x": [1, 2]}) < 2 ** 63
    a, b = point_rng(3, "img", -4.0).standard_normal(4), point_rng(3, "img", -4.0).standard_normal(4)
    assert np.array_equal(a, b)
    assert point_key({"b": 1, "a": 2.5}) == point_key({"a": 2.5, "b": 1}) == '{"a":2.5,"b":1}'


@pytest.mark.parametrize("v", [None, True, False, 3, -2, 0.1, 1 / 3, 1e-300, math.inf, -math.inf, "x/y",
                               [1.5, 2], {"a": 1}, np.float32(0.25), np.int64(7)])
def test_cell_round_trip(v):
    back = parse_cell(format_cell(v))
    want = v.item() if isinstance(v, np.generic) else v
    assert back == want and type(back) is type(want)


def test_store_drops_torn_and_foreign_rows(tmp_path):
    path = tmp_path / "points.csv"
    keys = [point_key({"i": i}) for i in range(4)]
    s = PointStore(path, ["x"], keys, resume=False)
    s.add(keys[2], {"x": 2.5})
    s.add(keys[0], {"x": None})
    s.close()
    assert [r["x"] for r in s.records()] == [None, 2.5]                    # canonical order, parsed back
    with open(path, "a") as fh:
        fh.write('"{""i"":9}",1\n"{""i"":1}",4')                         # a foreign point, then a torn line
    s2 = PointStore(path, ["x"], keys, resume=True)
    assert s2.done(keys[0]) and s2.done(keys[2]) and not s2.done(keys[1]) and s2.dropped == 2
    s2.close()
    with pytest.raises(ValueError, match="columns"):
        PointStore(path, ["y"], keys, resume=True)
    s3 = PointStore(path, ["x"], keys, resume=False)                       # a fresh run starts over
    assert not s3.done(keys[0])
    with pytest.raises(ValueError, match="outside"):
        s3.add(keys[1], {"zz": 1})
    s3.close()


def test_bisection_finds_first_met():
    grid = [float(s) for s in range(-5, 6)]
    for first in range(len(grid) + 1):
        calls = []

        def met(s, first=first):
            calls.append(s)
            return grid.index(s) >= first
        idx, evals = first_met(grid, met)
        assert idx == first
        assert len(calls) <= math.ceil(math.log2(len(grid) + 1))
        assert [s for s, _ in evals] == calls
    assert percentile_point([3.0, 1.0, 2.0, math.inf], 50) == 2.0
    assert percentile_point([3.0, 1.0, 2.0, math.inf], 90) == math.inf
    assert percentile_point([1.0] * 10 + [5.0], 90) == 1.0


def test_every_experiment_registered_and_documented():
    text = (REPO / "docs" / "results.md").read_text()
    for name, module in EXPERIMENTS.items():
        mod = get(name)
        assert mod.__name__ == module and mod.COLUMNS and callable(mod.plan) and callable(mod.evaluate)
        assert f"infercom experiment {name}" in text, name
    with pytest.raises(ValueError, match="choose from"):
        get("nope")


# ------------------------------------------------------------------------------- quick runs and physics
@pytest.fixture(scope="module")
def qoe_run(tmp_path_factory, kodak_dir):
    """The quick qoe-vs-snr, uninterrupted, in this process: the reference the other executions must equal."""
    out = tmp_path_factory.mktemp("qoe_ref")
    summary = cli.run_experiment(_args("qoe-vs-snr", kodak_dir, out, "--workers", "1"))
    return out, summary


def test_qoe_vs_snr_quick_physics(qoe_run, kodak_dir):
    out, summary = qoe_run
    rows = _rows(out, "qoe-vs-snr")
    mod = get("qoe-vs-snr")
    ctx = cli.make_context(_args("qoe-vs-snr", kodak_dir, out))
    assert sorted(r["key"] for r in rows) == sorted(point_key(p) for p in mod.plan(ctx))   # each point once
    assert summary["checks"] == {"uncoded_ber_falls": True, "nr_success_rises": True, "nr_cliff_within_2db": True}
    assert summary["nr_cliff_width_db"] <= 2.0 and -4.0 <= summary["nr_cliff_snr_db"] <= 3.0
    m = {(r["system"], r["snr_db"]): r for r in summary["means"]}
    # the restorer sees the bicubic observation (same seed): same BER, better PSNR at the lowest SNR
    assert m[("infercom/bicubic", -10.0)]["ber"] == m[("infercom/infercom-restorer", -10.0)]["ber"]
    assert m[("infercom/infercom-restorer", -10.0)]["psnr"] > m[("infercom/bicubic", -10.0)]["psnr"] + 2
    # equal channel uses at rate 1/9 for InferCom, NR and Deep-JSCC channel-uses; 'paper' spends k/n = 1/12
    cu = {s: r["cu_per_pixel"] for (s, _), r in m.items()}
    assert cu["nr"] == pytest.approx(cu["infercom/bicubic"], rel=1e-3)
    assert cu["deepjscc/channel-uses"] == pytest.approx(cu["infercom/bicubic"], rel=1e-3)
    assert cu["deepjscc/paper"] == pytest.approx(3 / 12, rel=1e-2)
    run = json.loads((out / "experiments" / "qoe-vs-snr" / "run.json").read_text())
    assert run["computed"] == len(rows) and run["skipped"] == 0 and run["versions"]["numpy"]
    for png in ("psnr", "ssim", "niqe", "coarse_ssim", "req_met"):
        assert (out / "experiments" / "qoe-vs-snr" / f"{png}.png").stat().st_size > 5000


def test_pool_equals_in_process(qoe_run, kodak_dir, tmp_path):
    ref, _ = qoe_run
    cli.run_experiment(_args("qoe-vs-snr", kodak_dir, tmp_path, "--workers", "2"))
    assert _csv_text(tmp_path, "qoe-vs-snr") == _csv_text(ref, "qoe-vs-snr")


def test_ray_local_equals_pool(qoe_run, kodak_dir, tmp_path):
    pytest.importorskip("ray")
    ref, _ = qoe_run
    cli.run_experiment(_args("qoe-vs-snr", kodak_dir, tmp_path, "--ray", "local", "--workers", "2"))
    assert _csv_text(tmp_path, "qoe-vs-snr") == _csv_text(ref, "qoe-vs-snr")


def test_killed_run_resumes_without_recomputing(qoe_run, kodak_dir, tmp_path):
    """SIGKILL a run once some points are on disk; --resume computes only the rest; the CSV equals the
    uninterrupted run's."""
    ref, _ = qoe_run
    csv_path = tmp_path / "experiments" / "qoe-vs-snr" / "points.csv"
    cmd = [sys.executable, "-m", "infercom_apps", "experiment", "qoe-vs-snr", "--quick", "--images", str(kodak_dir),
           "--out", str(tmp_path), "--workers", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + 120
    while time.time() < deadline:
        if csv_path.exists() and len(csv_path.read_text().splitlines()) > 12:
            break
        if proc.poll() is not None:
            pytest.fail("the run ended before it could be killed")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    with open(csv_path, newline="") as fh:
        text = fh.read()
    kept = len(list(csv.DictReader(io.StringIO(text[:text.rfind("\n") + 1]))))   # a torn last line is dropped
    total = len(_rows(ref, "qoe-vs-snr"))
    assert 0 < kept < total
    cli.run_experiment(_args("qoe-vs-snr", kodak_dir, tmp_path, "--workers", "1", "--resume"))
    run = json.loads((tmp_path / "experiments" / "qoe-vs-snr" / "run.json").read_text())
    assert run["skipped"] == kept and run["computed"] == total - kept
    assert _csv_text(tmp_path, "qoe-vs-snr") == _csv_text(ref, "qoe-vs-snr")
    # resuming a finished run computes nothing and changes nothing
    cli.run_experiment(_args("qoe-vs-snr", kodak_dir, tmp_path, "--workers", "1", "--resume"))
    run = json.loads((tmp_path / "experiments" / "qoe-vs-snr" / "run.json").read_text())
    assert run["computed"] == 0 and _csv_text(tmp_path, "qoe-vs-snr") == _csv_text(ref, "qoe-vs-snr")


def test_required_snr_quick(kodak_dir, tmp_path):
    s = cli.run_experiment(_args("required-snr", kodak_dir, tmp_path, "--workers", "1"))
    assert all(s["checks"].values()), s["checks"]
    rows = {(r["system"], r["rate"]): r for r in s["rows"]}
    nr = [rows[("nr", r)]["p90_db"] for r in ("1/9", "1/4")]
    assert all(-4 <= v <= 4 for v in nr)                # LDPC 1/3 QPSK decodes near 0 dB Es/N0
    for r in ("1/16", "1/9", "1/4"):      # the restorer never needs more SNR than bicubic on the same observation
        assert rows[("infercom/infercom-restorer", r)]["median_db"] <= rows[("infercom/bicubic", r)]["median_db"]
    recs = _rows(tmp_path, "required-snr")
    for rec in recs:                                  # the bisection's evaluations bracket the answer
        ev = json.loads(rec["evaluations"])
        req = float(rec["required_snr_db"])
        assert all((s >= req) == ok for s, ok in ev)
    for (system, rate), row in rows.items():          # a 90 % point is a bound iff 90 % were met at the grid bottom
        bottom = [rec["below_grid"] == "True" for rec in recs if rec["system"] == system and rec["rate"] == rate]
        assert row["p90_bound"] == (sum(bottom) >= math.ceil(0.9 * len(bottom))), (system, rate)


def test_retransmissions_quick(kodak_dir, tmp_path):
    s = cli.run_experiment(_args("retransmissions", kodak_dir, tmp_path, "--workers", "1", "--max-attempts", "3"))
    assert all(s["checks"].values()), s["checks"]
    for r in _rows(tmp_path, "retransmissions"):
        a = int(r["attempts_used"])
        assert 1 <= a <= 3 and int(r["retransmissions"]) == a - 1
        assert (r["acked"] == "True") or a == 3                     # a NACKed image used the whole limit
        cu_one = float(r["channel_uses"]) / a
        assert cu_one == int(cu_one)
    m = {(r["system"], r["snr_db"]): r for r in s["means"]}
    assert m[("nr", -10.0)]["failed"] == 1.0                          # far below the LDPC threshold


def test_tx_complexity_quick(kodak_dir, tmp_path):
    s = cli.run_experiment(_args("tx-complexity", kodak_dir, tmp_path, "--workers", "1"))
    assert all(s["checks"].values()), s["checks"]
    rows = {r["system"]: r for r in s["means"]}
    h, w = cli.QUICK_CROP
    from infercom import source

    assert rows["infercom"]["tx_ops"] == source.op_count(h, w, 3, 3, 3)["total"]
    assert rows["nr"]["ops_source"] > 0 and rows["nr"]["ops_crc"] > 0 and rows["nr"]["ops_channel_code"] > 0
    assert s["ratio_vs_infercom_1_9"]["deepjscc/paper"] > 100


def test_cli_rejects_bad_input(tmp_path, capsys):
    from infercom_apps import cli as top

    with pytest.raises(SystemExit):
        top.main(["experiment", "no-such-experiment"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="no images"):
        top.main(["experiment", "tx-complexity", "--images", str(empty), "--out", str(tmp_path)])


def test_clip_weights_switch_to_the_papers_requirement(tiny_clip):
    """With --clip the scores carry CLIP-IQA and CLIP similarity (to the original), and the requirement is the
    papers'."""
    from infercom_apps.experiments.systems import Context, score_output

    ctx = Context(images=(), clip=str(tiny_clip))
    rng = np.random.default_rng(1)
    img = np.clip(rng.normal(128, 50, (192, 192, 3)), 0, 255).astype(np.uint8)
    for out in (img, np.clip(img.astype(int) + rng.integers(-40, 40, img.shape), 0, 255).astype(np.uint8), None):
        sc = score_output(img, out, ctx)
        assert 0 <= sc["clip_iqa"] <= 1 and -1 <= sc["clip_sim"] <= 1
        assert sc["req_met"] == (sc["clip_iqa"] >= 0.8 and sc["clip_sim"] >= 0.9)
    assert score_output(img, img, ctx)["clip_sim"] == pytest.approx(1.0, abs=1e-5)


def test_an_undecodable_image_is_skipped_up_front(kodak_dir, tmp_path):
    import shutil

    d = tmp_path / "imgs"
    d.mkdir()
    shutil.copy(sorted(kodak_dir.glob("*.png"))[0], d / "a.png")
    (d / "b.png").write_bytes(b"not a png")
    ctx = cli.make_context(_args("tx-complexity", d, tmp_path))
    assert [Path(p).name for p in ctx.images] == ["a.png"]
