# SPDX-License-Identifier: GPL-3.0-or-later
"""The Deep-JSCC baseline (``deepjscc``): shapes for any image size and grey images, exact unit mean power per
image, exact channel uses of both bandwidth presets, puncturing (only the first ``k`` symbols matter, in
decoding and in training), bit-exact checkpoint round trips, the FLOP counter against hand counts, AWGN
variance, and a CLI smoke training run that writes its files and resumes bit-exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deepjscc import flops as dflops
from deepjscc.model import (
    PRESETS,
    DeepJSCC,
    DeepJSCCCodec,
    awgn,
    latent_capacity,
    latent_shape,
    load_checkpoint,
    n_channel_uses,
    normalise_power,
    save_checkpoint,
)
from infercom.link import n_payload_symbols

SIZES = [(17, 23), (1, 1), (64, 96)]


@pytest.fixture(scope="module")
def codecs() -> dict:
    torch.manual_seed(0)
    return {p: DeepJSCCCodec(preset=p, model=DeepJSCC(c)) for p, c in PRESETS.items()}


def _img(rng, h, w, c=3):
    return rng.integers(0, 256, (h, w, c) if c else (h, w), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("h,w", SIZES)
def test_any_size_round_trips_in_shape(codecs, rng, preset, h, w):
    cod = codecs[preset]
    for ch, img in ((3, _img(rng, h, w)), (1, _img(rng, h, w, 0)), (1, _img(rng, h, w, 1))):
        z = cod.encode(img)
        assert z.dtype == np.complex64 and z.shape == (n_channel_uses(preset, h, w, ch),)
        out = cod.decode(z, h, w, ch)
        assert out.dtype == np.uint8 and out.shape == (h, w, ch)


def test_latent_and_decoder_shapes_for_multiples_of_4():
    m = DeepJSCC(8)
    x = torch.rand(2, 3, 32, 48)
    lat = m.latent(x)
    assert lat.shape == (2, 8, 8, 12) == (2, *latent_shape(8, 32, 48))
    assert m.decoder(lat).shape == x.shape
    assert latent_shape(8, 17, 23) == (8, 5, 6)


# ---------------------------------------------------------------------------------------------------- power


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("h,w", SIZES)
def test_sent_symbols_have_unit_mean_power_per_image(codecs, rng, preset, h, w):
    z = codecs[preset].encode(_img(rng, h, w))
    assert abs(np.mean(np.abs(z.astype(np.complex128)) ** 2) - 1.0) < 1e-5
    x = torch.rand(4, 3, h, w)
    x[1] *= 0.01                                       # a dark image gets the same power
    s = codecs[preset].encode_batch(x).double()
    k = s.shape[1] // 2
    assert torch.allclose(s.square().sum(1) / k, torch.ones(4, dtype=torch.float64), atol=1e-5, rtol=0)


def test_normalise_power_keeps_an_all_zero_row_zero():
    s = torch.zeros(2, 8)
    s[1] = torch.arange(8.0)
    out = normalise_power(s)
    assert torch.all(out[0] == 0) and abs(float(out[1].square().sum()) / 4 - 1) < 1e-6


# ---------------------------------------------------------------------------------------------------- bandwidth


@pytest.mark.parametrize("h,w,c", [(512, 768, 3), (17, 23, 3), (1, 1, 3), (64, 96, 1), (481, 321, 3), (5, 7, 1)])
def test_channel_uses_are_exact(codecs, rng, h, w, c):
    k_cu = n_channel_uses("channel-uses", h, w, c)
    assert k_cu == n_payload_symbols(h, w, c, 3, 3, 8) == 8 * math.ceil(math.ceil(h / 3) * math.ceil(w / 3) * c / 2)
    k_p = n_channel_uses("paper", h, w, c)
    assert k_p == max(1, math.floor(h * w * c / 12 + 0.5))
    for preset, k in (("channel-uses", k_cu), ("paper", k_p)):
        assert latent_capacity(PRESETS[preset], h, w) >= k
        if h * w <= 64 * 96:                           # the encoder really emits k symbols
            assert codecs[preset].encode(_img(rng, h, w, c)).shape == (k,)


def test_paper_preset_is_one_twelfth_and_fills_the_latent_for_multiples_of_4():
    for h, w in ((512, 768), (64, 96), (128, 128)):
        k = n_channel_uses("paper", h, w)
        assert 12 * k == h * w * 3 and k == latent_capacity(PRESETS["paper"], h, w)
    assert n_channel_uses("channel-uses", 512, 768) == 525312


def test_too_small_a_latent_is_a_clear_error(codecs, rng):
    # a side of 4 pixels: 2 blocks of 3 but 1 latent row -> the c = 56 latent holds fewer than k symbols
    assert latent_capacity(56, 4, 64) < n_channel_uses("channel-uses", 4, 64)
    with pytest.raises(ValueError, match="holds"):
        codecs["channel-uses"].encode(_img(rng, 4, 64))
    with pytest.raises(ValueError, match="preset"):
        n_channel_uses("nope", 8, 8)
    with pytest.raises(ValueError, match="received symbols"):
        codecs["paper"].decode(np.zeros(5, np.complex64), 16, 16)
    with pytest.raises(ValueError, match="uint8"):
        codecs["paper"].encode(np.zeros((8, 8, 3), np.float32))


# ---------------------------------------------------------------------------------------------------- puncturing


def test_decode_depends_only_on_the_first_k_symbols():
    torch.manual_seed(1)
    m = DeepJSCC(8).eval()
    h, w = 20, 28
    k = n_channel_uses("paper", h, w) - 17            # fewer than the capacity: a real puncture
    s = torch.randn(1, 2 * k)
    with torch.no_grad():
        out = m.decode(s, h, w)
        full = torch.zeros(1, math.prod(latent_shape(8, h, w)))
        full[:, :2 * k] = s
        ref = m.decoder(full.view(1, *latent_shape(8, h, w)))
    assert torch.equal(out, ref)
    # encoding ignores what the latent holds beyond the first k symbols: the training gradient there is 0
    x = torch.rand(1, 3, h, w)
    lat = m.latent(x).detach().requires_grad_(True)
    sent = normalise_power(lat.flatten(1)[:, :2 * k])
    m.decode(sent, h, w).sum().backward()
    g = lat.grad.flatten(1)
    assert torch.all(g[:, 2 * k:] == 0) and torch.any(g[:, :2 * k] != 0)


# ---------------------------------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_is_bit_exact(tmp_path, rng):
    torch.manual_seed(2)
    m = DeepJSCC(PRESETS["paper"])
    meta = {"preset": "paper", "snr_db": 0.0, "steps": 0}
    path = save_checkpoint(tmp_path / "ck.pt", m, meta)
    m2, meta2 = load_checkpoint(path, "cpu")
    assert meta2 == meta and m2.c == m.c
    a = DeepJSCCCodec(preset="paper", model=m)
    b = DeepJSCCCodec(checkpoint=path)
    assert b.preset == "paper"
    img = _img(rng, 33, 45)
    za, zb = a.encode(img), b.encode(img)
    assert np.array_equal(za, zb)
    y = za + (0.3 * (rng.standard_normal(za.shape) + 1j * rng.standard_normal(za.shape))).astype(np.complex64)
    assert np.array_equal(a.decode(y, 33, 45), b.decode(y, 33, 45))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a Deep-JSCC checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a Deep-JSCC checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


# ---------------------------------------------------------------------------------------------------- FLOPs


def test_flops_of_one_conv_layer_match_a_hand_count():
    conv = torch.nn.Conv2d(3, 4, 5, stride=2, padding=2)
    rows = dflops.layer_flops(conv, (1, 3, 10, 12))
    # output 4 x 5 x 6 = 120 values, each 3*5*5 = 75 multiply-adds (2 FLOPs) + 1 bias add
    assert len(rows) == 1 and rows[0]["out_shape"] == (1, 4, 5, 6)
    assert rows[0]["macs"] == 120 * 75 and rows[0]["flops"] == 120 * (2 * 75 + 1)
    nobias = torch.nn.Conv2d(2, 2, 3, padding=1, bias=False)
    assert dflops.layer_flops(nobias, (1, 2, 4, 4))[0]["flops"] == 32 * 2 * 18


def test_flops_of_conv_plus_prelu_match_a_hand_count():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 5, stride=2, padding=2), torch.nn.PReLU(16))
    rows = dflops.layer_flops(net, (1, 3, 8, 8))
    n_out = 16 * 4 * 4
    assert [r["type"] for r in rows] == ["Conv2d", "PReLU"]
    assert rows[0]["flops"] == n_out * (2 * 75 + 1) and rows[1]["flops"] == n_out
    with pytest.raises(TypeError, match="no FLOP rule"):
        dflops.layer_flops(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.ReLU()), (1, 1, 2, 2))


def test_encoder_flops_total_matches_the_closed_form():
    h, w = 17, 23                                      # padded to 20 x 24
    k = n_channel_uses("channel-uses", h, w)
    c = PRESETS["channel-uses"]
    res = dflops.encoder_flops(DeepJSCC(c), h, w, k)
    assert res["padded"] == (20, 24)
    hw1, hw2 = 10 * 12, 5 * 6
    convs = [(3, 16, hw1), (16, 32, hw2), (32, 32, hw2), (32, 32, hw2), (32, c, hw2)]
    expect = 3 * h * w + sum(co * n * (2 * ci * 25 + 1) + co * n for ci, co, n in convs) + 6 * k + 1
    assert res["total"] == expect
    cod = DeepJSCCCodec(preset="channel-uses", model=DeepJSCC(c))
    assert cod.encoder_flops(h, w) == expect


# ---------------------------------------------------------------------------------------------------- channel


def test_awgn_has_the_es_n0_variance():
    g = torch.Generator().manual_seed(3)
    s = torch.zeros(2, 200_000)
    n = awgn(s, np.array([0.0, 10.0]), g).double()
    var = n.square().sum(1) / (n.shape[1] // 2)        # E|n|^2 per complex symbol = N0
    assert abs(float(var[0]) - 1.0) < 0.02 and abs(float(var[1]) - 0.1) < 0.002


# ---------------------------------------------------------------------------------------------------- training


def _train(argv, capsys):
    from infercom_apps.cli import main

    assert main(["train-deepjscc", *argv]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_smoke_training_via_the_cli_writes_its_files_and_resumes_bit_exactly(tmp_path, capsys):
    from PIL import Image

    data = tmp_path / "imgs"
    data.mkdir()
    r = np.random.default_rng(4)
    for i in range(3):
        Image.fromarray(r.integers(0, 256, (48, 56, 3), dtype=np.uint8)).save(data / f"im{i}.png")
    common = ["--data", str(data), "--preset", "paper", "--snr-db=-2,8", "--steps", "30", "--batch", "4",
              "--patch", "32", "--save-every", "10", "--no-progress", "--seed", "5"]
    a = _train([*common, "--out", str(tmp_path / "a"), "--checkpoint", str(tmp_path / "a" / "dj.pt")], capsys)
    assert a["step"] == 30 and math.isfinite(a["mse"]) and a["k"] == 32 * 32 * 3 // 12
    for key in ("checkpoint", "state", "loss_csv", "loss_png"):
        assert (tmp_path / "a" / a[key].split("/")[-1]).is_file()
    assert len((tmp_path / "a" / "dj_loss.csv").read_text().splitlines()) == 31
    _, meta = load_checkpoint(a["checkpoint"])
    assert meta["preset"] == "paper" and meta["c"] == 8 and meta["snr_db"] == [-2.0, 8.0] and meta["steps"] == 30
    assert meta["command"].startswith("deepjscc.train") or "train-deepjscc" in meta["command"]
    assert meta["data"] == [str(data)] and meta["seconds"] > 0

    bdir, bck = tmp_path / "b", tmp_path / "b" / "dj.pt"
    b1 = _train([*common, "--out", str(bdir), "--checkpoint", str(bck), "--stop-after", "15"], capsys)
    assert b1["step"] == 15
    b2 = _train([*common, "--out", str(bdir), "--checkpoint", str(bck), "--resume"], capsys)
    assert b2["step"] == 30
    ma, _ = load_checkpoint(a["checkpoint"])
    mb, _ = load_checkpoint(bck)
    for (na, ta), (nb, tb) in zip(ma.state_dict().items(), mb.state_dict().items()):
        assert na == nb and torch.equal(ta, tb), na
    assert len((bdir / "dj_loss.csv").read_text().splitlines()) == 31

    # a wall-time budget stops cleanly after the step that exceeds it, exporting
    c = _train([*common, "--out", str(tmp_path / "c"), "--checkpoint", str(tmp_path / "c" / "dj.pt"),
                "--time-budget-s", "1e-6"], capsys)
    assert c["step"] == 1 and (tmp_path / "c" / "dj.pt").is_file()


def test_training_rejects_bad_settings(tmp_path, capsys):
    from PIL import Image

    from infercom_apps.cli import main

    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "im.png")
    base = ["train-deepjscc", "--data", str(tmp_path), "--patch", "32", "--out", str(tmp_path / "x"),
            "--checkpoint", str(tmp_path / "x.pt")]
    assert main([*base, "--snr-db", "8,-2"]) == 2
    assert "LO <= HI" in capsys.readouterr().err
    assert main([*base, "--resume"]) == 2
    assert "no training state" in capsys.readouterr().err
    assert main([*base, "--patch", "64"]) == 2
    assert "no training image" in capsys.readouterr().err


# --------------------------------------------------------------------------------------- shipped checkpoints
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_shipped_checkpoint_is_trained_small_and_documented(preset):
    """Each preset ships its 0 dB model (<= 10 MB) with its training record; and it is a trained model: on an
    image it never saw (bsds500/test; training used bsds500/train) PSNR rises with the SNR and is far above
    what an untrained network gives (~10 dB)."""
    from pathlib import Path

    from deepjscc.model import DeepJSCCCodec, default_checkpoint
    from infercom import channel, imageio, metrics

    path = default_checkpoint(preset, 0)
    assert path.is_file() and path.stat().st_size <= 10 * 2**20
    codec = DeepJSCCCodec(path)
    meta = codec.meta
    assert meta["preset"] == preset and meta["snr_db"] == 0 and meta["steps"] >= 1000
    assert meta["command"].startswith("infercom train-deepjscc") and meta["seconds"] > 0
    assert not any("kodak" in str(d) for d in meta["data"])            # kodak24 is for evaluation only
    folder = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bsds500" / "test"
    if not folder.is_dir():
        pytest.skip("bsds500/test not available")
    img = imageio.load_image(imageio.list_images(folder)[0])
    z = codec.encode(img)
    rng = np.random.default_rng(5)
    psnr = {}
    for s in (-10.0, 0.0, 10.0):
        r = channel.SymbolChannel(s)(z, rng)
        psnr[s] = metrics.psnr(codec.decode(r.y, *img.shape), img)
    assert psnr[10.0] >= psnr[0.0] - 0.1 and psnr[0.0] >= psnr[-10.0] + 3.0
    assert psnr[0.0] > 20.0


def test_any_bandwidth_ratio_is_a_preset(rng):
    """``ratio-R``: k = round(R H W C) exactly, the latent holds it for any size, ``ratio-1/12`` is ``paper``'s
    network; bad ratios are clear errors (also on the command line)."""
    import argparse

    from deepjscc.presets import latent_channels, preset_arg

    assert latent_channels(f"ratio-{1 / 12}") == PRESETS["paper"] == 8
    for r in (0.05, 0.25, 0.5, 1.0):
        p = f"ratio-{r}"
        for h, w, c in ((17, 23, 3), (64, 96, 3), (5, 9, 1), (512, 768, 3)):
            k = n_channel_uses(p, h, w, c)
            assert k == max(1, math.floor(r * h * w * c + 0.5))
        codec = DeepJSCCCodec(preset=p, model=DeepJSCC(latent_channels(p)))
        img = rng.integers(0, 256, (21, 30, 3), dtype=np.uint8)
        z = codec.encode(img)
        assert z.shape == (n_channel_uses(p, 21, 30, 3),)
        assert codec.decode(z, 21, 30, 3).shape == img.shape
    for bad in ("ratio-0", "ratio-1.5", "ratio-x", "ratio-", "half"):
        with pytest.raises(ValueError, match="preset"):
            n_channel_uses(bad, 8, 8)
        with pytest.raises(argparse.ArgumentTypeError):
            preset_arg(bad)
