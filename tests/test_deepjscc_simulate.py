# SPDX-License-Identifier: GPL-3.0-or-later
"""Deep-JSCC through the InferCom link's channel (deepjscc.simulate, ``infercom simulate --system deepjscc``):
Chase/MRC gain, the same channel draws as ``infercom simulate``, the retransmission rule of both triggers, the
record, the CLI end to end, and the layer rule of the dispatch. Untrained (random-init) models: the figures of a
trained one are docs/deepjscc.md's."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from infercom import channel, chase, imageio, link  # noqa: E402
from infercom import simulate as core_simulate  # noqa: E402
from infercom_apps import cli  # noqa: E402

model = pytest.importorskip("deepjscc.model")
from deepjscc import simulate as ds  # noqa: E402

DB2 = 10 * math.log10(2)


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth synthetic RGB uint8 image (gradients + sinusoids + a little noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([128 + 80 * np.sin(xx / 7.0 + c) * np.cos(yy / 11.0) + 30 * (yy / h - 0.5) for c in range(3)],
                    axis=-1)
    return np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)


def _codec(preset: str = "paper", seed: int = 0):
    torch.manual_seed(seed)
    return model.DeepJSCCCodec(preset=preset, model=model.DeepJSCC(model.PRESETS[preset]))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Random-init checkpoints of both presets, written with the model's own save_checkpoint."""
    d = tmp_path_factory.mktemp("deepjscc_ck")
    out = {}
    for i, preset in enumerate(model.PRESETS):
        torch.manual_seed(i)
        m = model.DeepJSCC(model.PRESETS[preset])
        out[preset] = model.save_checkpoint(d / f"{preset}.pt", m, {"preset": preset, "snr_db": 5.0,
                                                                   "note": "random init (test)"})
    return out


@pytest.fixture(scope="module")
def img_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("deepjscc_imgs")
    for i, (h, w) in enumerate([(32, 48), (36, 44)]):
        imageio.save_image(d / f"im{i}.png", _image(h, w, i))
    return d


# --------------------------------------------------------------------------------------------- MRC / channel
def test_mrc_of_two_copies_is_a_single_reception_at_plus_3db():
    rng = np.random.default_rng(1)
    n = 200_000
    x = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / math.sqrt(2)).astype(np.complex64)
    chan = channel.SymbolChannel(snr_db=2.0)
    r1, r2 = chan(x, rng), chan(x, rng)
    y, nv = chase.combine([r1.y, r2.y], [r1.noise_var, r2.noise_var])
    # exactly 10 log10(2) in the combined effective noise variance
    assert np.allclose(10 * np.log10(r1.noise_var / nv.astype(np.float64)), DB2, atol=1e-5)
    # statistically in the residual error: the same as one reception at +3.01 dB
    single = channel.SymbolChannel(snr_db=2.0 + DB2)(x, np.random.default_rng(2))
    e2, e1 = np.mean(np.abs(y - x) ** 2), np.mean(np.abs(single.y - x) ** 2)
    assert e2 == pytest.approx(single.noise_var, rel=0.02) and e2 == pytest.approx(e1, rel=0.02)


def test_two_attempts_combine_to_plus_3db_in_the_record():
    codec = _codec("paper")
    gate = ds.PsnrGate(1000.0, max_attempts=2)                    # never passes: both attempts are sent
    rec = ds.simulate_image_deepjscc(codec, _image(32, 48), channel.SymbolChannel(snr_db=4.0),
                                     np.random.default_rng(0), 2, "psnr", gate=gate, final_metrics=False)
    assert rec["attempts_used"] == 2 and rec["snr_db_per_attempt"] == [4.0, 4.0]
    assert rec["combined_snr_db"] == pytest.approx(4.0 + DB2, abs=1e-9)


class _Recording(channel.SymbolChannel):
    """The project's channel, logging what each attempt added to the symbols (``y - x``) and its noise var."""

    log: list = []

    def __call__(self, x, rng):
        rx = super().__call__(x, rng)
        _Recording.log.append((np.asarray(rx.y) - np.asarray(x, np.complex64), np.asarray(rx.noise_var)))
        return rx


@pytest.mark.parametrize("fading,per", [("none", "image"), ("block", "image"), ("block", "frame")])
def test_same_seed_same_channel_draws_as_infercom_simulate(fading, per):
    img = _image(36, 48)
    codec = _codec("channel-uses")
    cfg = link.LinkConfig(3, 3, 8)
    assert codec.n_channel_uses(*img.shape) == link.layout(*img.shape, cfg).n_symbols
    chan = _Recording(snr_db=3.0, fading=fading, fading_per=per, frame_len=64)
    _Recording.log = []
    core_simulate.simulate_image(img, cfg, chan, np.random.default_rng([7, 0, 0]), attempts=2, final_metrics=False)
    ic = list(_Recording.log)
    _Recording.log = []
    rec = ds.simulate_image_deepjscc(codec, img, chan, np.random.default_rng([7, 0, 0]), 2, "psnr",
                                     gate=ds.PsnrGate(1000.0, 2), final_metrics=False)
    dj = list(_Recording.log)
    assert rec["attempts_used"] == 2 and len(ic) == len(dj) == 2
    for (n_ic, nv_ic), (n_dj, nv_dj) in zip(ic, dj):
        assert np.allclose(n_ic, n_dj, atol=2e-5 * (1 + np.abs(n_ic)))
        assert np.array_equal(np.broadcast_to(nv_ic, n_ic.shape), np.broadcast_to(nv_dj, n_dj.shape))


# --------------------------------------------------------------------------------------------- retransmission
class _PassAt:
    """A gate that acknowledges attempt ``at`` (0-based) and nothing before: counts what it was shown."""

    trigger = "psnr"

    def __init__(self, at: int, max_attempts: int):
        self.at, self.max_attempts, self.seen = at, max_attempts, []

    def judge(self, decoded, original, attempt, combined_snr_db):
        self.seen.append(attempt)
        ok = attempt >= self.at
        return ds.Verdict(ok, "ACK" if ok else ("FAIL" if attempt + 1 >= self.max_attempts else "NACK"), "test",
                          {"psnr": 0.0})

    def describe(self):
        return {"trigger": "psnr", "trigger_metric": "test", "trigger_threshold": 0.0, "trigger_source": "test"}


@pytest.mark.parametrize("at,limit,used", [(0, 3, 1), (1, 3, 2), (5, 3, 3), (0, 1, 1), (2, 1, 1)])
def test_retransmits_only_when_the_trigger_fails_and_stops_at_the_limit(at, limit, used):
    codec = _codec("paper")
    img = _image(32, 48)
    chan = channel.SymbolChannel(snr_db=0.0, fading="block", fading_per="image")
    gate = _PassAt(at, limit)
    rng = np.random.default_rng(3)
    rec = ds.simulate_image_deepjscc(codec, img, chan, rng, limit, "psnr", gate=gate, final_metrics=False)
    assert gate.seen == list(range(used)) and rec["attempts_used"] == used
    assert rec["success"] == (at < limit) and rec["trigger_ok_per_attempt"] == [a >= at for a in range(used)]
    k = codec.n_channel_uses(*img.shape)
    assert rec["payload_symbols"] == k and rec["channel_uses"] == k * used
    ref = np.random.default_rng(3)                          # exactly `used` channel calls were drawn
    for _ in range(used):
        chan(np.zeros(k, np.complex64), ref)
    assert rng.bit_generator.state == ref.bit_generator.state


def test_psnr_trigger():
    codec, img = _codec("paper"), _image(32, 48)
    chan = channel.SymbolChannel(snr_db=10.0)
    ok = ds.simulate_image_deepjscc(codec, img, chan, np.random.default_rng(0), 4, "psnr", psnr_threshold_db=0.0)
    assert ok["attempts_used"] == 1 and ok["success"] and ok["decision"] == "ACK"
    bad = ds.simulate_image_deepjscc(codec, img, chan, np.random.default_rng(0), 3, "psnr", psnr_threshold_db=99.0)
    assert bad["attempts_used"] == 3 and not bad["success"] and bad["decision"] == "FAIL"
    assert bad["psnr"] == bad["psnr_per_attempt"][-1] < 99.0
    with pytest.raises(ValueError):
        ds.make_gate("psnr", 2, None)
    with pytest.raises(ValueError):
        ds.make_gate("crc", 2)


def test_qoe_trigger_is_the_servers_gate():
    from receiver_server.qoe.thresholds import threshold
    from receiver_server.restorers import DEFAULT_RESTORER

    gate = ds.QoEGate(2)
    assert gate.threshold == threshold("niqe", restorer=DEFAULT_RESTORER).value
    assert gate.higher_is_better == {"niqe": False} and gate.policy.mode == "chase"
    codec, img = _codec("paper"), _image(96, 192)                 # two whole NIQE patches
    chan = channel.SymbolChannel(snr_db=6.0)
    never = ds.QoEGate(2, niqe_threshold=0.0)
    rec = ds.simulate_image_deepjscc(codec, img, chan, np.random.default_rng(0), 2, "qoe", gate=never)
    assert rec["attempts_used"] == 2 and not rec["success"] and rec["decision"] == "FAIL"
    assert "attempt limit 2 reached" in rec["reason"] and "niqe" in rec["reason"]
    assert rec["niqe"] == rec["niqe_per_attempt"][-1] > 0 and rec["trigger_threshold"] == 0.0
    always = ds.QoEGate(2, niqe_threshold=1e6)
    rec = ds.simulate_image_deepjscc(codec, img, chan, np.random.default_rng(0), 2, "qoe", gate=always)
    assert rec["attempts_used"] == 1 and rec["success"] and rec["reason"].startswith("QoE ok")
    # below two 96x96 patches NIQE cannot score: skipped, so it does not gate (as in the server)
    small = ds.simulate_image_deepjscc(codec, _image(32, 48), chan, np.random.default_rng(0), 2, "qoe", gate=never)
    assert small["success"] and small["attempts_used"] == 1 and small["niqe"] is None and "skipped" in small["reason"]


def test_record_fields():
    codec, img = _codec("paper"), _image(32, 48)
    chan = channel.SymbolChannel(snr_db=1.0, fading="block", fading_per="frame", frame_len=32,
                                 snr_mode="average")
    rec = ds.simulate_image_deepjscc(codec, img, chan, np.random.default_rng(0), 2, "psnr", psnr_threshold_db=50.0)
    need = {"record", "system", "snr_db", "inst_snr_db", "snr_db_per_attempt", "combined_snr_db", "fading",
            "fading_per", "snr_mode", "height", "width", "channels", "preset", "train_snr_db", "trigger",
            "trigger_metric", "trigger_threshold", "trigger_source", "max_attempts", "attempts_used", "success",
            "decision", "reason", "trigger_ok_per_attempt", "psnr_per_attempt", "payload_symbols", "channel_uses",
            "bandwidth_ratio", "encoder_flops", "psnr", "ssim", "niqe"}
    assert need <= set(rec)
    assert rec["system"] == "deepjscc" and rec["preset"] == "paper" and rec["train_snr_db"] is None
    assert (rec["fading"], rec["fading_per"], rec["snr_mode"]) == ("block", "frame", "average")
    assert rec["payload_symbols"] == model.n_channel_uses("paper", 32, 48) == (32 * 48 * 3 + 6) // 12
    assert rec["bandwidth_ratio"] == pytest.approx(1 / 12, rel=1e-3)
    assert rec["encoder_flops"] == codec.encoder_flops(32, 48) > 0
    assert rec["inst_snr_db"] == pytest.approx(core_simulate.mean_snr_db(rec["snr_db_per_attempt"]))
    assert 0 < rec["ssim"] <= 1 and rec["niqe"] is None                 # 32x48: NIQE cannot score it
    json.dumps(rec)
    s = ds.summarize_deepjscc([rec])[0]
    assert s["record"] == "summary" and s["n_images"] == 1 and len(s["nack_per_attempt"]) == 2
    assert s["channel_uses_mean"] == rec["channel_uses"]


# --------------------------------------------------------------------------------------------- CLI
def _run(capsys, *argv):
    rc = cli.main(["simulate", *argv])
    out = capsys.readouterr()
    return rc, [json.loads(line) for line in out.out.splitlines() if line.startswith("{")], out


def test_cli_system_deepjscc_end_to_end(capsys, img_dir, checkpoints, tmp_path):
    out = tmp_path / "dj.csv"
    rc, recs, _ = _run(capsys, "--system", "deepjscc", "--images", str(img_dir), "--snr-db=-2,8", "--checkpoint",
                       str(checkpoints["paper"]), "--trigger", "psnr", "--psnr-threshold", "60", "--max-attempts",
                       "2", "--fading", "block", "--json", "--seed", "5", "--out", str(out))
    assert rc == 0
    imgs = [r for r in recs if r["record"] == "image"]
    sums = [r for r in recs if r["record"] == "summary"]
    assert len(imgs) == 4 and [s["snr_db"] for s in sums] == [-2.0, 8.0]
    assert all(r["preset"] == "paper" and r["train_snr_db"] == 5.0 and r["attempts_used"] == 2 for r in imgs)
    assert all(r["checkpoint"] == str(checkpoints["paper"]) for r in imgs)
    # the seed convention of infercom simulate: default_rng([seed, image index, SNR index])
    codec = model.DeepJSCCCodec(checkpoint=checkpoints["paper"])
    one = ds.simulate_image_deepjscc(codec, imageio.load_image(img_dir / "im1.png"),
                                     channel.SymbolChannel(snr_db=8.0, fading="block"),
                                     np.random.default_rng([5, 1, 1]), 2, "psnr", psnr_threshold_db=60.0)
    got = next(r for r in imgs if r["image"] == "im1.png" and r["snr_db"] == 8.0)
    assert got["psnr"] == one["psnr"] and got["snr_db_per_attempt"] == one["snr_db_per_attempt"]
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and "psnr_attempt1" in rows[0]
    # the table, with the default QoE trigger and the other preset's checkpoint
    rc, _, o = _run(capsys, "--system", "deepjscc", "--images", str(img_dir), "--snr-db", "0",
                    "--checkpoint", str(checkpoints["channel-uses"]), "--max-images", "1")
    assert rc == 0 and "system deepjscc, preset channel-uses" in o.out and "per SNR" in o.out
    assert "trigger qoe (niqe" in o.out


def test_cli_errors(capsys, img_dir, checkpoints, tmp_path):
    base = ["--system", "deepjscc", "--images", str(img_dir), "--snr-db", "0"]
    assert _run(capsys, *base, "--checkpoint", str(checkpoints["paper"]), "--trigger", "psnr")[0] == 2
    assert _run(capsys, *base, "--checkpoint", str(tmp_path / "none.pt"))[0] == 2
    assert _run(capsys, *base, "--checkpoint", str(checkpoints["paper"]), "--preset", "channel-uses")[0] == 2
    assert _run(capsys, *base, "--checkpoint", str(checkpoints["paper"]), "--max-attempts", "17")[0] == 2


def test_dispatch_imports_no_torch_and_the_core_refuses_deepjscc():
    code = ("import sys, argparse; from infercom_apps import simulate as s; p = argparse.ArgumentParser(); "
            "s.add_arguments(p); a = p.parse_args(['--images', 'x', '--snr-db', '0', '--system', 'deepjscc']); "
            "print('torch' in sys.modules, 'deepjscc.simulate' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "False"]
    import argparse

    p = argparse.ArgumentParser()
    core_simulate.add_arguments(p)
    with pytest.raises(SystemExit):
        p.parse_args(["--images", "x", "--snr-db", "0", "--system", "deepjscc"])     # not a core choice
    args = p.parse_args(["--images", "x", "--snr-db", "0"])
    args.system = "deepjscc"
    assert core_simulate.run(args) == 2


# --------------------------------------------------------------------------------------------- bench
def test_bench_suite_is_registered_and_measures_a_codec():
    from deepjscc import bench
    from infercom_apps.bench import SUITES

    assert SUITES["deepjscc"] == "deepjscc.bench"
    codec = _codec("paper")
    r = bench.bench_codec(codec, _image(32, 48), repeats=1)
    assert r["k"] == codec.n_channel_uses(32, 48) and r["encoder_flops"] == codec.encoder_flops(32, 48)
    assert r["encode_s"] > 0 and r["decode_s"] > 0 and r["encoder_gflops_per_s"] > 0
