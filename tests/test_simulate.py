# SPDX-License-Identifier: GPL-3.0-or-later
import json

import numpy as np
import pytest
from PIL import Image

from infercom import channel, link, power, simulate
from infercom_apps import cli


@pytest.fixture(scope="module")
def img_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:301, 0:257]
    for i in range(2):
        base = 128 + 90 * np.sin(xx / (15 + 10 * i)) * np.cos(yy / 23)
        img = np.clip(base[:, :, None] + rng.normal(0, 10, (301, 257, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(d / f"im{i}.png")
    (d / "readme.txt").write_text("not an image")
    return d


def _run(capsys, *argv):
    rc = cli.main(["simulate", *argv])
    out = capsys.readouterr().out
    return rc, [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_cli_json_records(capsys, img_dir, tmp_path):
    out = tmp_path / "o" / "sim.jsonl"
    rc, recs = _run(capsys, "--images", str(img_dir), "--snr-db=-4,2", "--rate", "1/4", "--json",
                    "--out", str(out), "--seed", "3")
    assert rc == 0 and len(recs) == 4
    assert [json.loads(x) for x in out.read_text().splitlines()] == recs
    r = recs[0]
    lay = link.layout(301, 257, 3, link.LinkConfig(2, 2))
    assert r["payload_symbols"] == lay.n_symbols and r["channel_uses"] == lay.n_symbols
    assert r["tx_ops"] == lay.n_values * 5                      # 3 adds + 1 division + 1 rounding
    assert len(r["ber_per_plane"]) == 8 and r["design_snr_db"] == -4
    assert r["lowres_mse_mmse"] < r["lowres_mse_hard"]
    assert 0 < r["ssim"] < 1 and r["psnr"] > 10
    # the higher SNR is better, and per-plane BER is near the theory Q(sqrt(p_k Es/N0)) (random-ish bits)
    assert recs[1]["psnr"] > recs[0]["psnr"]
    for rec in recs:
        exp = np.array(rec["expected_ber_per_plane"])
        got = np.array(rec["ber_per_plane"])
        n_bits = lay.n_values
        assert np.all(np.abs(got - exp) < 5 * np.sqrt(exp * (1 - exp) / n_bits) + 1e-4)
    # reproducible with the same seed
    rc, again = _run(capsys, "--images", str(img_dir), "--snr-db=-4,2", "--rate", "1/4", "--json", "--seed", "3")
    strip = [{k: v for k, v in x.items() if k != "time_link_s"} for x in again]
    assert strip == [{k: v for k, v in x.items() if k != "time_link_s"} for x in recs]


def test_cli_table_and_bad_input(capsys, img_dir):
    rc = cli.main(["simulate", "--images", str(img_dir), "--snr-db", "0", "--max-images", "1", "--no-ssim",
                   "--block", "3x3", "--planes", "5", "--profile", "equal"])
    out = capsys.readouterr().out
    assert rc == 0 and "im0.png" in out and "MEAN" in out and "im1.png" not in out
    assert cli.main(["simulate", "--images", str(img_dir / "nope"), "--snr-db", "0"]) == 2
    assert cli.main(["simulate", "--images", str(img_dir), "--snr-db", "0", "--rate", "2/3"]) == 2
    assert cli.main(["simulate", "--images", str(img_dir), "--snr-db", "x"]) == 2
    assert cli.main(["simulate", "--images", str(img_dir), "--snr-db", "0", "--attempts", "0"]) == 2
    assert "2/3" in capsys.readouterr().err


def test_chase_attempts_help_under_fading():
    rng = np.random.default_rng(9)
    img = np.random.default_rng(1).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    cfg = link.LinkConfig(1, 1, 8, "importance", 0)
    fading = channel.SymbolChannel(0.0, "block", "frame", "instantaneous", 1024)
    one = [simulate.simulate_image(img, cfg, fading, rng, 1, final_metrics=False)["lowres_mse_mmse"]
           for _ in range(3)]
    two = [simulate.simulate_image(img, cfg, fading, rng, 2, final_metrics=False)["lowres_mse_mmse"]
           for _ in range(3)]
    assert np.mean(two) < 0.7 * np.mean(one)
    d = power.expected_mse(cfg.plane_powers(), 0.0)
    r = simulate.simulate_image(img, cfg, channel.SymbolChannel(0.0), rng, 1, final_metrics=False)
    assert r["lowres_mse_hard"] == pytest.approx(d, rel=0.1)     # uniform random pixels: theory holds


def test_csv_out_and_saved_images(capsys, img_dir, tmp_path):
    out = tmp_path / "sim.csv"
    rc = cli.main(["simulate", "--images", str(img_dir / "im1.png"), "--snr-db=-2,6", "--out", str(out),
                   "--save-images", str(tmp_path / "rec"), "--rate", "1/6"])
    assert rc == 0
    import csv

    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 and rows[0]["image"] == "im1.png" and float(rows[1]["snr_db"]) == 6.0
    assert 0 <= float(rows[0]["ber_plane7"]) <= float(rows[0]["ber_plane0"]) <= 1
    saved = sorted(p.name for p in (tmp_path / "rec").iterdir())
    assert saved == ["im1_snr-2_mmse.png", "im1_snr6_mmse.png"]
    rec = Image.open(tmp_path / "rec" / "im1_snr6_mmse.png")
    assert rec.size == (257, 301)
    orig = np.asarray(Image.open(img_dir / "im1.png"), dtype=np.float64)
    psnr = 10 * np.log10(255**2 / np.mean((np.asarray(rec, dtype=np.float64) - orig) ** 2))
    assert psnr == pytest.approx(float(rows[1]["psnr"]), abs=1e-6)
