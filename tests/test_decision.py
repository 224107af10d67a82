# SPDX-License-Identifier: GPL-3.0-or-later
"""The ACK/NACK gate is right at the ends of the range (issue #9): a decision sweep through the real protocol and
server (one attempt per image, AWGN from -10 dB to noiseless) for bicubic and the default restorer and for
image sizes from 16x16 to 4096x4096; the evidence projection every restoration goes through; the clean and
too-little-received rules of the policy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infercom import channel, link, source
from infercom.arq import ArqConfig
from infercom.imageio import load_image
from infercom.link import LinkConfig
from receiver_server.config import PolicyConfig, ServerConfig
from receiver_server.policy import decide
from receiver_server.restorers.base import EVIDENCE_Z, evidence_tolerance, honour_evidence
from receiver_server.server import InferenceServer
from receiver_server.simlink import ChannelSpec, SimTransmitter

SNRS = (-10.0, -6.0, -2.0, 2.0, 6.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, math.inf)
KODAK = ("kodim03", "kodim07", "kodim19")


def kodak(datasets_dir, names=KODAK, crop=None) -> list[np.ndarray]:
    out = []
    for n in names:
        a = load_image(datasets_dir / "kodak24" / f"{n}.png")
        out.append(a if crop is None else np.ascontiguousarray(a[: crop[0], : crop[1]]))
    return out


def mosaic(datasets_dir, height: int, width: int) -> np.ndarray:
    """A natural image of any size: kodak24 images tiled (flipped alternately so the seams stay continuous)."""
    tiles = [load_image(p) for p in sorted((datasets_dir / "kodak24").glob("*.png"))]
    tiles = [t if t.shape[0] == 512 else t.transpose(1, 0, 2) for t in tiles]     # all 512x768
    rows, k = [], 0
    for r in range(-(-height // 512)):
        row = []
        for c in range(-(-width // 768)):
            t = tiles[k % len(tiles)]
            k += 1
            row.append(t[:, ::-1] if c % 2 else t)
        rows.append(np.concatenate(row, axis=1)[::-1] if r % 2 else np.concatenate(row, axis=1))
    return np.ascontiguousarray(np.concatenate(rows, axis=0)[:height, :width])


def first_attempt_decisions(restorer: str, images: list[np.ndarray], snrs=SNRS, server_kw=None,
                            restorer_config=None) -> dict[float, list[str]]:
    """Per SNR, the server's decision on the first attempt of every image (one attempt each, AWGN, rate 1/9),
    through SimTransmitter -> protocol -> InferenceServer with its default QoE set and thresholds."""
    if restorer_config is None and restorer.startswith("infercom"):
        restorer_config = {"threads": 2}
    cfg = ServerConfig(bind="tcp://127.0.0.1:0", feedback_bind="tcp://127.0.0.1:0", restorer=restorer,
                       restorer_config=restorer_config or {}, policy=PolicyConfig(max_attempts=4),
                       log_level="error", **(server_kw or {}))
    out: dict[float, list[str]] = {}
    with InferenceServer(cfg) as srv:
        for i, snr in enumerate(snrs):
            tx = SimTransmitter(i + 1, [(k, im, {}) for k, im in enumerate(images)], srv.bound["soft_frames"],
                                srv.bound["feedback"], LinkConfig(), ArqConfig(max_attempts=1, timeout_s=600),
                                ChannelSpec(snr_db=snr), seed=100 + i)
            recs = tx.run(1800)
            assert len(recs) == len(images)
            out[snr] = [r["attempts"][0]["decision"] for r in recs]
    return out


def check_sweep(dec: dict[float, list[str]]) -> None:
    for snr, ds in dec.items():
        if snr >= 20:
            assert ds == ["ACK"] * len(ds), (snr, dec)
    rates = [np.mean([d == "ACK" for d in dec[s]]) for s in sorted(dec)]
    inversions = sum(b < a for a, b in zip(rates, rates[1:]))
    assert inversions <= 1, dec
    assert rates[0] < 1.0, dec          # the gate does gate: at -10 dB nothing passes on the first attempt


@pytest.mark.parametrize("restorer", ["bicubic", "infercom-restorer", "infercom-restorer-stage1"])
def test_decision_sweep_kodak_crops(datasets_dir, restorer):
    check_sweep(first_attempt_decisions(restorer, kodak(datasets_dir, crop=(256, 384))))


@pytest.mark.parametrize("size", [(16, 16), (72, 96)])
@pytest.mark.parametrize("restorer", ["bicubic", "infercom-restorer"])
def test_decision_sweep_small_images(datasets_dir, restorer, size):
    check_sweep(first_attempt_decisions(restorer, kodak(datasets_dir, crop=size)))


@pytest.mark.slow
@pytest.mark.parametrize("restorer", ["bicubic", "infercom-restorer"])
def test_decision_sweep_full_kodak(datasets_dir, restorer):
    check_sweep(first_attempt_decisions(restorer, kodak(datasets_dir)))


@pytest.mark.slow
def test_decision_sweep_4096(datasets_dir):
    """The largest image the protocol allows: bicubic over the whole sweep, the default restorer at the ends
    (its 4096x4096 restoration takes minutes and ~9 GB on this CPU)."""
    img = [mosaic(datasets_dir, 4096, 4096)]
    check_sweep(first_attempt_decisions("bicubic", img))
    dec = first_attempt_decisions("infercom-restorer", img, snrs=(-10.0, 25.0, math.inf))
    assert dec[25.0] == ["ACK"] and dec[math.inf] == ["ACK"] and dec[-10.0] == ["NACK"], dec


def test_mosaic_is_natural_sized(datasets_dir):
    m = mosaic(datasets_dir, 1000, 1600)
    assert m.shape == (1000, 1600, 3) and m.dtype == np.uint8 and m.std() > 20


# ---------------------------------------------------------------------------------------------- evidence


def test_project_block_means_meets_the_tolerance_and_moves_little():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)      # partial edge blocks at 3x3
    means = source.block_means(img, 3, 3)
    target = np.clip(means + rng.normal(0, 20, means.shape), 0, 255)
    tol = rng.uniform(0, 8, means.shape)
    tol[0, 0] = np.inf
    out = source.project_block_means(img, target, tol, 3, 3)
    got = source.block_means(out, 3, 3)
    ok = np.isfinite(tol)
    assert np.all(np.abs(got - target)[ok] <= tol[ok] + 0.5 + 1e-9)
    inside = ok & (np.abs(means - target) <= tol)
    # blocks already within their tolerance move only by the smooth passes' spill-over
    assert np.mean(np.abs(got - means)[inside]) < np.mean(np.abs(got - means)[~inside & ok])
    # at 1x1 with tol 0 the result is the rounded target itself
    t1 = rng.uniform(0, 255, img.shape)
    assert np.array_equal(source.project_block_means(img, t1, 0.0, 1, 1), np.rint(t1).astype(np.uint8))
    with pytest.raises(ValueError, match="target shape"):
        source.project_block_means(img, target[:-1], tol[:-1], 3, 3)
    with pytest.raises(ValueError, match="tol"):
        source.project_block_means(img, target, -1.0, 3, 3)


def test_honour_evidence_returns_the_original_from_an_error_free_observation(datasets_dir):
    img = kodak(datasets_dir, ("kodim19",), crop=(96, 128))[0]
    cfg = LinkConfig(bh=1, bw=1)
    x, lay = link.encode_image(img, cfg)
    llr = link.soft_to_llr(x, np.float32(1e-10), lay, cfg)
    obs, var = link.llr_to_lowres(llr, lay, cfg), link.llr_to_lowres_var(llr, lay, cfg)
    meta = dict(bh=1, bw=1, height=96, width=128, channels=3, obs_var=var, missing=np.zeros((96, 128), bool))
    garbage = np.zeros_like(img)                  # a restorer that ignores the evidence
    assert np.array_equal(honour_evidence(garbage, obs, meta), img)
    assert honour_evidence(garbage, obs, {k: v for k, v in meta.items() if k != "obs_var"}) is garbage
    tol = evidence_tolerance(meta)
    assert tol.shape == (96, 128, 3) and np.allclose(tol, EVIDENCE_Z * np.sqrt(var))


def test_honour_evidence_leaves_uncertain_values_to_the_restorer():
    rng = np.random.default_rng(3)
    cfg = LinkConfig()
    img = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    x, lay = link.encode_image(img, cfg)
    y = channel.awgn(x, -8.0, rng)
    llr = link.soft_to_llr(y, np.float32(10 ** 0.8), lay, cfg)
    obs, var = link.llr_to_lowres(llr, lay, cfg), link.llr_to_lowres_var(llr, lay, cfg)
    meta = dict(bh=3, bw=3, height=48, width=48, channels=3, obs_var=var, missing=np.zeros((16, 16), bool))
    restored = link.upsample(obs, lay)
    out = honour_evidence(restored, obs, meta)
    # at -8 dB the posterior is wide: a smooth restoration is already within it, almost nothing moves
    assert np.mean(np.abs(out.astype(int) - restored.astype(int))) < 0.5


# ---------------------------------------------------------------------------------------------- policy


def _snr(n=4, v=20.0):
    return np.full(n, v)


def test_clean_rule_acks_at_calibrated_rates_and_refines_coarser_ones():
    pol = PolicyConfig()
    failing = {"niqe": 30.0}
    th, up = {"niqe": 9.0}, {"niqe": False}
    d = decide(failing, th, up, 0, pol, _snr(), 3, 3, evidence_db=45.0)
    assert d.decision == "ACK" and "error-free" in d.reason
    d = decide(failing, th, up, 0, pol, _snr(), 4, 4, evidence_db=45.0)
    assert d.decision == "NACK" and d.mode == "refine" and (d.refine_bh, d.refine_bw) == (3, 3)
    assert "compression is the limit" in d.reason and "cannot meet the QoE" in d.reason
    d = decide(failing, th, up, 0, pol, _snr(), 3, 3, evidence_db=39.9)
    assert d.decision == "NACK"                   # below clean_db the metrics decide
    d = decide(failing, th, up, 0, pol, _snr(), 3, 3, evidence_db=None)
    assert d.decision == "NACK"


def test_skipped_metrics_do_not_gate():
    pol = PolicyConfig()
    th, up = {"niqe": 9.0, "reliability": 20.0}, {"niqe": False, "reliability": True}
    d = decide({"reliability": 25.0}, th, up, 0, pol, _snr(), 3, 3, skipped=("niqe",))
    assert d.decision == "ACK" and "niqe skipped" in d.reason
    d = decide({"reliability": 25.0}, th, up, 0, pol, _snr(), 3, 3)
    assert d.decision == "NACK" and "niqe missing" in d.reason
    d = decide({"reliability": 15.0}, th, up, 0, pol, _snr(), 3, 3, skipped=("niqe",))
    assert d.decision == "NACK"


def test_too_little_received_is_nacked_for_chase_not_refine():
    pol = PolicyConfig()
    snr = np.array([30.0] + [-np.inf] * 9)
    d = decide({}, {"niqe": 9.0}, {"niqe": False}, 0, pol, snr, 3, 3, evidence_db=50.0,
               insufficient="only 10 % received")
    assert d.decision == "NACK" and d.mode == "chase" and d.reason.startswith("only 10 %")
    d = decide({}, {"niqe": 9.0}, {"niqe": False}, 3, pol, snr, 3, 3, insufficient="only 10 % received")
    assert d.decision == "FAIL"


def test_niqe_applies_only_from_two_patches():
    from receiver_server.qoe import get_qoe
    q = get_qoe("niqe")
    assert not q.applies(72, 96) and not q.applies(150, 150) and q.applies(96, 192) and q.applies(512, 768)
    with pytest.raises(ValueError, match="two 96x96"):
        q.score(np.zeros((150, 150, 3), np.uint8))
