# SPDX-License-Identifier: GPL-3.0-or-later
"""The bench driver's bookkeeping and the core suite's measuring helpers (speed itself is `make bench`)."""

import json
import sys
import types

import numpy as np
import pytest

from infercom import bench_core
from infercom_apps import bench, bench_vs_gnuradio, cli


def test_driver_reports_ok_skipped_failed(tmp_path, monkeypatch, capsys):
    ok = types.ModuleType("fake_ok_suite")

    def run_ok(out_dir):
        (out_dir / "fake.json").write_text(json.dumps({"x": 1}))
        print("fake table")
        return {"x": 1}

    ok.run_bench = run_ok
    bad = types.ModuleType("fake_bad_suite")

    def run_bad(out_dir):
        raise RuntimeError("boom")

    bad.run_bench = run_bad
    monkeypatch.setitem(sys.modules, "fake_ok_suite", ok)
    monkeypatch.setitem(sys.modules, "fake_bad_suite", bad)
    monkeypatch.setattr(bench, "SUITES", {"fake": "fake_ok_suite", "broken": "fake_bad_suite",
                                          "absent": "no_such_module_xyz"})
    rc = cli.main(["bench", "--out", str(tmp_path), "--suites", "fake,absent,broken"])
    assert rc == 1
    index = {r["suite"]: r for r in json.loads((tmp_path / "index.json").read_text())}
    assert index["fake"]["status"] == "ok" and index["fake"]["json"].endswith("fake.json")
    assert index["absent"]["status"] == "skipped" and "no_such_module_xyz" in index["absent"]["reason"]
    assert index["broken"]["status"] == "failed" and "boom" in index["broken"]["reason"]
    out = capsys.readouterr().out
    assert "fake table" in out and "skipped" in out
    assert cli.main(["bench", "--out", str(tmp_path), "--suites", "fake"]) == 0
    assert cli.main(["bench", "--out", str(tmp_path), "--suites", "nonsense"]) == 2


def test_time_kernel_counts_items():
    calls = []
    rate = bench_core.time_kernel(lambda: calls.append(1), 1000, n_items=10_000, repeats=2)
    assert len(calls) == 1 + 2 * 10 and rate > 0


@pytest.mark.gnuradio
def test_gr_stream_msps_runs_real_flowgraph():
    pytest.importorskip("gnuradio")
    from gnuradio import blocks

    made = []

    def make():
        blk = blocks.multiply_const_cc(2.0)
        made.append(blk)
        return [blk]

    rate = bench_vs_gnuradio.gr_stream_msps(make, np.ones(64, np.complex64), n_items=100_000, repeats=2)
    assert rate > 0 and len(made) == 2
    with pytest.raises(ValueError, match="dtype"):
        bench_vs_gnuradio.gr_stream_msps(make, np.ones(4, np.int32), n_items=10)
