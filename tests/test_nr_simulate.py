# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom simulate --system nr``: records, summaries, the same channel as the InferCom link, the cliff."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from infercom import imageio, link
from infercom_apps import cli


@pytest.fixture(scope="module")
def img_dir(tmp_path_factory, datasets_dir):
    # two small crops of BSDS500 test images, written to a temporary folder (the datasets stay where they are)
    d = tmp_path_factory.mktemp("nr_imgs")
    files = sorted((datasets_dir / "bsds500" / "test").glob("*.jpg"))[:2]
    for i, f in enumerate(files):
        Image.fromarray(imageio.load_image(f)[:160, :200]).save(d / f"crop{i}.png")
    return d


def _run(capsys, *argv):
    rc = cli.main(["simulate", *argv])
    out = capsys.readouterr().out
    return rc, [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _strip(recs):
    return [{k: v for k, v in r.items() if k != "time_link_s"} for r in recs]


def test_cli_nr_json_records_and_summary(capsys, img_dir, tmp_path):
    out = tmp_path / "nr.jsonl"
    argv = ["--system", "nr", "--images", str(img_dir), "--snr-db=-6,1", "--harq", "chase", "--max-attempts",
            "2", "--json", "--seed", "4"]
    rc, recs = _run(capsys, *argv, "--out", str(out))
    assert rc == 0 and len(recs) == 6
    assert [json.loads(x) for x in out.read_text().splitlines()] == recs
    imgs = [r for r in recs if r["record"] == "image"]
    summ = [r for r in recs if r["record"] == "summary"]
    assert len(imgs) == 4 and [s["snr_db"] for s in summ] == [-6.0, 1.0]
    lay = link.layout(160, 200, 3, link.LinkConfig(3, 3, 8))
    for r in imgs:
        assert r["system"] == "nr" and r["budget_mode"] == "channel-uses" and r["code_rate_str"] == "1/3"
        assert r["payload_symbols"] == lay.n_symbols == r["infercom_symbols"]
        assert r["coded_bits"] == 2 * lay.n_symbols
        assert r["channel_uses"] == lay.n_symbols * r["attempts_used"]
        assert r["jpeg_bits"] <= r["budget_bits"] == r["tbs_bits"] and 1 <= r["jpeg_quality"] <= 95
        assert r["tx_ops"] == r["tx_ops_jpeg"] + r["tx_ops_crc"] + r["tx_ops_ldpc"]
        assert len(r["crc_ok_per_attempt"]) == r["attempts_used"] and not r["undetected"]
        if r["snr_db"] == 1.0:                             # above the cliff: first attempt decodes
            assert r["success"] and r["attempts_used"] == 1 and r["psnr"] == r["psnr_jpeg"] > 18
            assert 0 < r["ssim"] == r["ssim_jpeg"] < 1
        else:                                              # far below: both Chase attempts fail, image lost
            assert not r["success"] and r["status"] == "failed" and r["attempts_used"] == 2
            assert r["psnr"] is None and r["ssim"] is None and r["channel_uses"] == 2 * lay.n_symbols
    lo, hi = summ
    assert lo["success_rate"] == 0 and lo["bler_per_attempt"] == [1.0, 1.0] and lo["psnr_mean"] is None
    assert hi["success_rate"] == 1 and hi["bler_per_attempt"] == [0.0, None] and hi["n_per_attempt"] == [2, 0]
    assert hi["psnr_mean"] == pytest.approx(np.mean([r["psnr"] for r in imgs if r["snr_db"] == 1.0]))
    # reproducible
    rc, again = _run(capsys, *argv)
    assert rc == 0 and _strip(again) == _strip(recs)


def test_cli_nr_table_csv_fading_and_bad_input(capsys, img_dir, tmp_path):
    out = tmp_path / "nr.csv"
    rc = cli.main(["simulate", "--system", "nr", "--images", str(img_dir / "crop1.png"), "--snr-db", "3",
                   "--budget", "source-rate", "--fading", "block", "--fading-per", "frame", "--frame-len-log2", "12",
                   "--max-attempts", "3", "--out", str(out), "--save-images", str(tmp_path / "rec")])
    text = capsys.readouterr().out
    assert rc == 0 and "crop1.png" in text and "BLER per attempt" in text
    rows = list(csv.DictReader(out.open()))
    assert [r["record"] for r in rows] == ["image", "summary"]
    r = rows[0]
    assert r["budget_mode"] == "source-rate" and r["fading_per"] == "frame" and "crc_ok_attempt0" in r
    assert int(r["budget_bits"]) <= 8 * 160 * 200 * 3 // 9 and int(r["params_n_symbols"]) == int(r["payload_symbols"])
    if r["success"] == "True":
        assert (tmp_path / "rec" / "crop1_snr3_nr.png").is_file()
    base = ["simulate", "--system", "nr", "--images", str(img_dir), "--snr-db", "0"]
    assert cli.main([*base, "--code-rate", "0.3"]) == 2
    assert cli.main([*base, "--max-attempts", "0"]) == 2
    assert cli.main([*base, "--max-attempts", "17"]) == 2
    capsys.readouterr()
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(tiny / "t.png")
    assert cli.main(["simulate", "--system", "nr", "--images", str(tiny), "--snr-db", "0", "--rate", "1/25"]) == 2
    assert "too small for any JPEG" in capsys.readouterr().err


def test_same_channel_draws_as_infercom(capsys, img_dir):
    # channel-uses budget: the same number of symbols, so the same seed gives the same fades and noise;
    # the realised (average-mode) instantaneous SNR of every (image, SNR) is identical between the systems
    common = ["--images", str(img_dir), "--snr-db=-1,4", "--fading", "block", "--fading-per", "frame",
              "--frame-len-log2", "11", "--snr-mode", "average", "--json", "--no-ssim", "--seed", "9"]
    rc1, ic = _run(capsys, *common)
    rc2, nr = _run(capsys, "--system", "nr", "--max-attempts", "1", *common)
    nr = [r for r in nr if r["record"] == "image"]
    assert rc1 == rc2 == 0 and len(ic) == len(nr) == 4
    for a, b in zip(ic, nr):
        assert (a["image"], a["snr_db"]) == (b["image"], b["snr_db"])
        assert a["payload_symbols"] == b["payload_symbols"] and a["inst_snr_db"] == b["inst_snr_db"]
    assert len({r["inst_snr_db"] for r in nr}) == 4


def _cliff(capsys, images, budget, snrs, max_images):
    rc, recs = _run(capsys, "--system", "nr", "--images", str(images), "--max-images", str(max_images),
                    "--budget", budget, "--max-attempts", "1", "--no-ssim", "--json",
                    "--snr-db=" + ",".join(str(s) for s in snrs))
    assert rc == 0
    return {r["snr_db"]: r["success_rate"] for r in recs if r["record"] == "summary"}


@pytest.mark.parametrize("budget", ["channel-uses", "source-rate"])
def test_cliff_quick(capsys, datasets_dir, budget):
    # AWGN, one attempt, R = 1/3: image success jumps from <= 10 % to >= 90 % within 2 dB (BSDS500 images)
    snrs = [-2.0, -1.5, -1.0, -0.5, 0.0]
    succ = _cliff(capsys, datasets_dir / "bsds500" / "test", budget, snrs, 3)
    rates = [succ[s] for s in snrs]
    assert all(a <= b for a, b in zip(rates, rates[1:])), rates
    lo = max(s for s in snrs if succ[s] <= 0.1)
    hi = min(s for s in snrs if succ[s] >= 0.9)
    assert 0 < hi - lo <= 2.0, succ


@pytest.mark.slow
@pytest.mark.parametrize("budget,threshold", [("channel-uses", -0.84), ("source-rate", -0.79)])
def test_cliff_kodak24(capsys, kodak_dir, budget, threshold):
    # docs/nr.md §12: all 24 Kodak images, rate 1/9, R = 1/3, one attempt, 0.05 dB steps (about 25 + 50 s)
    snrs = [round(-1.0 + 0.05 * k, 2) for k in range(11)]
    succ = _cliff(capsys, kodak_dir, budget, snrs, 24)
    lo = max(s for s in snrs if succ[s] <= 0.05)
    hi = min(s for s in snrs if succ[s] >= 0.95)
    assert hi - lo <= 0.3 and lo < threshold < hi, succ
