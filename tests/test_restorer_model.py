# SPDX-License-Identifier: GPL-3.0-or-later
"""receiver_server.restorers.infercom_restorer: shapes at every rate and odd sizes, the shipped checkpoint beats
bicubic on held-out crops, guided sampling stays faithful, seeded determinism, exact resume of training."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from infercom import degrade, imageio, link, metrics  # noqa: E402
from receiver_server.restorers.infercom_restorer import model as rmodel  # noqa: E402
from receiver_server.restorers.infercom_restorer import train as rtrain  # noqa: E402


@pytest.fixture(scope="module")
def full():
    torch.set_num_threads(1)
    return rmodel.InferComRestorer(config={"steps": 2})


@pytest.fixture(scope="module")
def stage1():
    return rmodel.InferComRestorerStage1()


def _obs(img, bh, bw, snr=-4.0, seed=0):
    d = degrade.degrade(img, link.LinkConfig(bh=bh, bw=bw), snr, np.random.default_rng(seed))
    return d.observation, d.meta()


def test_shapes_every_rate_and_odd_sizes(stage1, full):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for bh in range(1, 9):
        for bw in range(1, 9):
            obs, meta = _obs(img, bh, bw, snr=0.0)
            out = stage1.restore(obs, meta)
            assert out.dtype == np.uint8 and out.shape == (37, 53, 3), (bh, bw)
    for bh, bw in ((2, 2), (3, 3), (2, 3), (5, 7)):
        obs, meta = _obs(img, bh, bw)
        assert full.restore(obs, meta).shape == (37, 53, 3)
    grey = rng.integers(0, 256, (21, 30), dtype=np.uint8)
    obs, meta = _obs(grey, 3, 3)
    assert meta["channels"] == 1
    assert full.restore(obs, meta).shape == (21, 30, 1)


def test_bad_input_rejected(stage1):
    img = np.zeros((24, 24, 3), np.uint8)
    obs, meta = _obs(img, 3, 3)
    with pytest.raises(ValueError):
        stage1.restore(obs[:-1], meta)                       # shape does not match height/width
    with pytest.raises(ValueError):
        stage1.restore(np.full_like(obs, np.nan), meta)
    with pytest.raises(ValueError):
        stage1.restore(obs, {k: v for k, v in meta.items() if k != "bh"})
    with pytest.raises(ValueError):
        rmodel.InferComRestorer(config={"stepz": 3})
    with pytest.raises(ValueError):
        rmodel.InferComRestorer(config={"checkpoint": "/nonexistent/ckpt.pt"})


def test_shipped_checkpoint_beats_bicubic_on_heldout_crops(kodak_dir, stage1, full):
    from receiver_server.restorers import get_restorer

    bic = get_restorer("bicubic")
    gains = []
    for name in ("kodim01.png", "kodim02.png"):               # 160x160 centre crops (not training data)
        full_img = imageio.load_image(kodak_dir / name)
        y0, x0 = full_img.shape[0] // 2 - 80, full_img.shape[1] // 2 - 80
        img = full_img[y0:y0 + 160, x0:x0 + 160]
        for bh, bw in ((2, 2), (3, 3)):
            obs, meta = _obs(img, bh, bw, snr=-4.0, seed=bh)
            p_bic = metrics.psnr(bic.restore(obs, meta), img)
            p_s1 = metrics.psnr(stage1.restore(obs, meta), img)
            p_full = metrics.psnr(full.restore(obs, meta), img)
            assert p_s1 > p_bic + 0.5, (name, bh, p_s1, p_bic)
            assert p_full > p_s1 - 1.5, (name, bh, p_full, p_s1)
            gains.append(p_s1 - p_bic)
    assert np.mean(gains) > 1.0


def test_guided_sampling_keeps_block_means(full):
    img = np.random.default_rng(3).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    obs, meta = _obs(img, 3, 3, snr=-2.0)
    x, miss, cond, soft, bh, bw, H, W = rmodel.prepare(obs, meta)
    with torch.no_grad():
        s1, _ = full.stage1(x, miss, cond, bh, bw, soft)
        target = rmodel.block_mean(s1, bh, bw) + 0.05            # an offset target the prior knows nothing of
        tol = 2.0 / 127.5
        out = rmodel.flow_sample(full.stage2, s1, cond, bh, bw, steps=3, temperature=1.0,
                                 resid_scale=full.info["resid_scale"], seed=0,
                                 target=target, tol=tol)
    err = (rmodel.block_mean(out, bh, bw) - target).abs().max().item()
    assert err <= tol + 1e-5
    # the projection itself: shifts only blocks outside the tolerance, by exactly the excess
    est = torch.zeros(1, 1, 4, 6)
    est[..., :2, :2] = 1.0
    p = rmodel.project_block_means(est, torch.zeros(1, 1, 2, 3), 0.25, 2, 2)
    assert torch.allclose(p[..., :2, :2], torch.full((2, 2), 0.25)) and torch.equal(p[..., 2:, :], est[..., 2:, :])


def test_seeded_and_deterministic():
    img = np.random.default_rng(4).integers(0, 256, (30, 30, 3), dtype=np.uint8)
    obs, meta = _obs(img, 3, 3)
    a = rmodel.InferComRestorer(config={"steps": 2, "seed": 1})
    b = rmodel.InferComRestorer(config={"steps": 2, "seed": 2})
    r1, r2, r3 = a.restore(obs, meta), a.restore(obs, meta), b.restore(obs, meta)
    assert np.array_equal(r1, r2)
    assert not np.array_equal(r1, r3)


def _args(tmp_path, data, steps, resume=False, stop_after=0):
    p = argparse.ArgumentParser()
    rtrain.add_arguments(p)
    return p.parse_args(["--data", str(data), "--out", str(tmp_path / "m.pt"), "--state", str(tmp_path / "m.state.pt"),
                         "--log-dir", str(tmp_path / "log"), "--steps", str(steps), "--batch", "2", "--patch", "24",
                         "--rates", "1/4,1/9", "--save-every", "1", "--no-progress", "--seed", "5",
                         "--stop-after", str(stop_after)]
                        + (["--resume"] if resume else []))


def test_resume_restores_training_exactly(tmp_path):
    torch.set_num_threads(1)
    data = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for i in range(2):
        imageio.save_image(data / f"im{i}.png", rng.integers(0, 256, (40, 44, 3), dtype=np.uint8))
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    rtrain.train(_args(a_dir, data, 3))
    rtrain.train(_args(b_dir, data, 3, stop_after=2))
    rtrain.train(_args(b_dir, data, 3, resume=True))
    sa = torch.load(a_dir / "m.state.pt", weights_only=False)
    sb = torch.load(b_dir / "m.state.pt", weights_only=False)
    assert sa["step"] == sb["step"] == 3
    for part in ("model", "ema"):
        for stage in ("stage1", "stage2"):
            for k, v in sa[part][stage].items():
                assert torch.equal(v, sb[part][stage][k]), (part, stage, k)
    loss_rows = (b_dir / "log" / "m_loss.csv").read_text().strip().splitlines()
    assert len(loss_rows) == 4                                  # header + 3 steps, resumed run appended
    s1, s2, info = rmodel.load_checkpoint(b_dir / "m.pt")
    assert s2 is not None and info["step"] == 3
    with pytest.raises(ValueError):
        rmodel.load_checkpoint(b_dir / "log" / "m_loss.csv")


def test_init_fine_tunes_from_an_exported_checkpoint(tmp_path):
    """--init starts from the checkpoint's weights (a 0-step run re-exports them unchanged), records where they
    came from, trains on from there, and refuses --resume together with it."""
    torch.set_num_threads(1)
    data = tmp_path / "imgs"
    rng = np.random.default_rng(1)
    for i in range(2):
        imageio.save_image(data / f"im{i}.png", rng.integers(0, 256, (40, 44, 3), dtype=np.uint8))
    base = tmp_path / "base"
    base.mkdir()
    rtrain.train(_args(base, data, 2))
    ft = tmp_path / "ft"
    ft.mkdir()
    args = _args(ft, data, 3)
    args.init = str(base / "m.pt")
    args.stop_after = 1
    rtrain.train(args)
    b1, b2, _ = rmodel.load_checkpoint(base / "m.pt")
    f1, f2, info = rmodel.load_checkpoint(ft / "m.pt")
    assert info["init"]["checkpoint"] == str(base / "m.pt") and info["init"]["steps"] == 2
    assert info["step"] == 1
    changed = [not torch.equal(a, b) for a, b in zip(b1.state_dict().values(), f1.state_dict().values())]
    assert any(changed)                                  # one fine-tuning step moved the EMA weights ...
    diff = max(float((a - b).abs().max()) for a, b in zip(b1.state_dict().values(), f1.state_dict().values())
               if a.dtype.is_floating_point)
    assert diff < 0.05                                   # ... a little: it started from the checkpoint
    args = _args(ft, data, 3, resume=True)
    args.init = str(base / "m.pt")
    with pytest.raises(ValueError, match="exclude"):
        rtrain.train(args)


def test_v2_starts_from_v1_exactly_and_reads_the_soft_bits():
    """The v2 networks widened from v1 (zero side branch, zero weights on the new conditions) compute what v1
    computes; the soft bits are 2 P(b=1) - 1; v1 stays loadable by name and ignores the v2 inputs, v2 reads them
    (its output changes without the plane LLRs)."""
    from receiver_server.restorers import get_restorer
    from receiver_server.restorers.infercom_restorer import nets

    assert np.allclose(nets.soft_bits(np.array([[-30.0, 30.0, 0.0]], np.float32)),
                       [[1, -1, 0, 0, 0, 0, 0, 0]], atol=1e-6)
    img = np.random.default_rng(8).integers(0, 256, (36, 48, 3), dtype=np.uint8)
    d = degrade.degrade(img, link.LinkConfig(bh=3, bw=3), -3.0, np.random.default_rng(1), attempts=2,
                        fading="block", fading_per="frame", frame_len=128)
    obs, meta = d.observation, d.meta()
    v1s1, v1s2, _ = rmodel.load_checkpoint(rmodel.CHECKPOINTS["v1"])
    for m in (v1s1, v1s2):
        m.to(memory_format=torch.contiguous_format)
    s1 = nets.Stage1Net(**rtrain.DEFAULT_ARCH["stage1"]).eval()
    s2 = nets.Stage2Net(**rtrain.DEFAULT_ARCH["stage2"]).eval()
    nets.widen_from(s1, v1s1, nets.COND_DIM, nets.COND_DIM_V2)
    nets.widen_from(s2, v1s2, nets.COND_DIM, nets.COND_DIM_V2)
    o1, m1, c1, _, bh, bw, _, _ = rmodel.prepare(obs, meta, version=1)
    o2, m2, c2, soft, *_ = rmodel.prepare(obs, meta, version=2)
    assert c2.shape == (1, nets.COND_DIM_V2) and torch.equal(c2[:, :nets.COND_DIM], c1)
    assert soft.shape == (1, 3 * nets.SIDE_PER_CHANNEL, 12, 16) and soft.abs().max() > 0.5
    with torch.no_grad():
        a, b = v1s1(o1, m1, c1, bh, bw)[0], s1(o2, m2, c2, bh, bw, soft)[0]
        assert torch.allclose(a, b, atol=1e-5)
        t = torch.tensor([0.4])
        assert torch.allclose(v1s2(a, a, t, c1, bh, bw), s2(a, a, t, c2, bh, bw), atol=1e-4)
    v1 = get_restorer("infercom-restorer-v1-stage1")
    v2 = get_restorer("infercom-restorer-stage1")
    assert (v1.version, v2.version) == (1, 2)
    bare = {k: v for k, v in meta.items() if k not in ("plane_llr", "plane_amplitudes", "design_snr_db")}
    assert np.array_equal(v1.restore(obs, meta), v1.restore(obs, bare))
    assert not np.array_equal(v2.restore(obs, meta), v2.restore(obs, bare))
    with pytest.raises(ValueError, match="plane_llr"):
        v2.restore(obs, dict(meta, plane_llr=meta["plane_llr"][:-1]))


def test_eval_targets_compare_v2_with_v1():
    """eval-restorer's target checks: v2's stage-1 gain over v1 per point (>= 1 dB required at -4 and -6 dB)
    and the default v2 output's NIQE against v1's."""
    from receiver_server.restorers.infercom_restorer import evaluate as ev

    def pt(psnr, niqe):
        return {"psnr": psnr, "ssim": 0.5, "niqe": niqe}

    means = {"3x3@-6": {ev.V1_STAGE1: pt(20.0, 7), ev.STAGE1: pt(21.2, 7), ev.V1_FULL: pt(20, 6.0),
                        ev.FULL: pt(21.1, 5.9), "bicubic": pt(15, 13)},
             "3x3@-4": {ev.V1_STAGE1: pt(20.0, 7), ev.STAGE1: pt(20.8, 7), ev.V1_FULL: pt(20, 6.0),
                        ev.FULL: pt(20.7, 6.1), "bicubic": pt(16, 13)}}
    t = ev.check_targets(means)
    assert t["v2_stage1_gain_over_v1_db"] == pytest.approx({"3x3@-6": 1.2, "3x3@-4": 0.8})
    assert t["v2_stage1_gain_ge_1db_at_-4_-6"] == {"3x3@-6": True, "3x3@-4": False}
    assert t["v2_niqe_le_v1"] == {"3x3@-6": True, "3x3@-4": False}
    assert t["stage1_gain_db_at_-4"] == {"3x3@-4": pytest.approx(4.8)}


def test_side_features_describe_each_values_posterior():
    """side_features: the soft bits, their confidences |soft| and the log-scaled posterior std (1 for a value
    with every bit unknown -- the uniform value's std -- and 0 for a certain one); fewer planes sent pad with 0."""
    from receiver_server.restorers.infercom_restorer import nets

    llr = np.zeros((1, 3, 1, 8), np.float32)
    llr[0, 1] = 40.0                                  # certain zeros
    llr[0, 2, 0, 0] = -2.0                            # MSB leaning to 1, the rest unknown
    f = nets.side_features(llr)
    assert f.shape == (1, 3, 1, nets.SIDE_PER_CHANNEL)
    soft, conf, lstd = f[..., :8], f[..., 8:16], f[..., 16]
    assert np.array_equal(conf, np.abs(soft)) and soft[0, 2, 0, 0] == pytest.approx(np.tanh(1.0))
    assert lstd[0, 0, 0] == pytest.approx(1.0, abs=1e-5) and lstd[0, 1, 0] == pytest.approx(0.0, abs=1e-6)
    assert 0.0 < lstd[0, 2, 0] < 1.0
    top4 = nets.side_features(llr[..., :4])
    assert np.array_equal(top4[..., 4:8], np.zeros((1, 3, 1, 4), np.float32))
