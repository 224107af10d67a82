# SPDX-License-Identifier: GPL-3.0-or-later
"""infercom.degrade: training pairs carry exactly the link's damage (BER vs theory, Chase gain, lost frames)."""

from __future__ import annotations

import numpy as np
import pytest

from infercom import degrade, link, planes, power, source


def _bits(img, cfg):
    v = source.lpf_encode(img, cfg.bh, cfg.bw).reshape(-1)
    return planes.values_to_planes(v, cfg.planes)


def _plane_ber(d, img, cfg):
    bits = _bits(img, cfg)
    hard = (d.llr < 0).astype(np.uint8)
    return (hard != bits).mean(axis=1), bits.shape[1]


@pytest.fixture(scope="module")
def noise_img():
    # uniform random values: every bit of every plane is a fair coin
    return np.random.default_rng(7).integers(0, 256, (192, 192, 3), dtype=np.uint8)


@pytest.mark.parametrize("profile,snr_db", [("importance", -4.0), ("equal", -2.0), ("importance", 2.0)])
def test_plane_ber_matches_link_theory(noise_img, profile, snr_db):
    cfg = link.LinkConfig(bh=2, bw=2, profile=profile, design_snr_db=-4)
    d = degrade.degrade(noise_img, cfg, snr_db, np.random.default_rng(1), keep_llr=True)
    ber, n = _plane_ber(d, noise_img, cfg)
    theory = power.plane_ber(cfg.plane_powers(), snr_db)
    for k in range(cfg.planes):
        p = theory[k]
        if p == 0.5:                    # plane without power: LLR 0, hard decision 0 -> wrong half the time
            assert abs(ber[k] - 0.5) < 0.05
            continue
        se = np.sqrt(p * (1 - p) / n)
        assert abs(ber[k] - p) < 5 * se + 1e-4, (k, ber[k], p)


def test_chase_attempts_add_snr(noise_img):
    cfg = link.LinkConfig(bh=2, bw=2, profile="equal")
    snr = -3.0
    for attempts in (2, 3):
        d = degrade.degrade(noise_img, cfg, snr, np.random.default_rng(attempts), attempts=attempts, keep_llr=True)
        ber, n = _plane_ber(d, noise_img, cfg)
        p = float(power.plane_ber(np.ones(1), snr + 10 * np.log10(attempts))[0])
        se = np.sqrt(p * (1 - p) / (n * cfg.planes))
        assert abs(ber.mean() - p) < 5 * se, (attempts, ber.mean(), p)
    one, _ = _plane_ber(degrade.degrade(noise_img, cfg, snr, np.random.default_rng(9), keep_llr=True), noise_img, cfg)
    assert ber.mean() < 0.6 * one.mean()


def test_missing_frames_are_scattered_and_honoured(noise_img):
    cfg = link.LinkConfig(bh=2, bw=2)
    frame_len = 256
    d = degrade.degrade(noise_img, cfg, 0.0, np.random.default_rng(3), missing_frac=0.25, frame_len=frame_len,
                        keep_llr=True)
    n_sym = d.layout.n_symbols
    n_frames = -(-n_sym // frame_len)
    lost = round(0.25 * n_frames)
    # whole frames lost: the lost symbol count is that of `lost` frames (the last one may be short)
    assert lost * frame_len - frame_len < d.missing_frac * n_sym <= lost * frame_len
    zero = (d.llr == 0).mean()
    assert abs(zero - d.missing_frac) < 0.01
    # interleaving scatters them: every low-res row has some zero-LLR values, and no pixel loses all planes
    per_value = (d.llr == 0).reshape(cfg.planes, d.layout.low_h, -1)
    assert per_value.any(axis=(0, 2)).all()
    assert not d.missing.any()
    # independent losses per attempt: with two attempts only ~f^2 stays lost
    d2 = degrade.degrade(noise_img, cfg, 0.0, np.random.default_rng(4), attempts=2, missing_frac=0.25,
                         frame_len=frame_len)
    assert d2.missing_frac < 0.6 * d.missing_frac


def test_everything_lost_gives_midgrey_and_full_mask():
    img = np.full((30, 30, 3), 200, np.uint8)
    d = degrade.degrade(img, link.LinkConfig(bh=3, bw=3), 0.0, np.random.default_rng(0), missing_frac=1.0)
    assert d.missing.all() and d.missing_frac == 1.0
    assert np.allclose(d.observation, 127.5)


def test_block_fading_costs_ber_at_equal_mean_snr(noise_img):
    cfg = link.LinkConfig(bh=2, bw=2, profile="equal")
    a = degrade.degrade(noise_img, cfg, 2.0, np.random.default_rng(5), keep_llr=True)
    f = degrade.degrade(noise_img, cfg, 2.0, np.random.default_rng(5), fading="block", fading_per="frame",
                        frame_len=128, keep_llr=True)
    ba, _ = _plane_ber(a, noise_img, cfg)
    bf, _ = _plane_ber(f, noise_img, cfg)
    assert bf.mean() > 1.3 * ba.mean()          # Jensen: fades cost more than they give back
    assert abs(f.snr_db - 2.0) < 0.5            # normalised to the instantaneous mean SNR
    # one fade per image, normalised, is AWGN at that SNR
    i = degrade.degrade(noise_img, cfg, 2.0, np.random.default_rng(6), fading="block", fading_per="image",
                        keep_llr=True)
    bi, n = _plane_ber(i, noise_img, cfg)
    p = float(power.plane_ber(np.ones(1), 2.0)[0])
    assert abs(bi.mean() - p) < 5 * np.sqrt(p / (n * 8))


def test_high_snr_observation_is_the_transmitted_lowres():
    img = np.random.default_rng(2).integers(0, 256, (37, 50, 3), dtype=np.uint8)   # odd size: padded blocks
    cfg = link.LinkConfig(bh=3, bw=2, profile="equal")      # importance would leave the LSBs unpowered
    d = degrade.degrade(img, cfg, 30.0, np.random.default_rng(0))
    low = source.lpf_encode(img, 3, 2).astype(np.float32)
    assert d.observation.shape == low.shape == (13, 25, 3)
    assert np.abs(d.observation - low).max() < 0.5
    assert np.array_equal(d.lowres_clean, low)
    m = d.meta()
    assert (m["bh"], m["bw"], m["height"], m["width"], m["channels"]) == (3, 2, 37, 50, 3)


def test_seeded_and_random_pairs():
    img = np.random.default_rng(1).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    spec = degrade.DegradeSpec()
    a = degrade.sample_pair(img, spec, np.random.default_rng(11))
    b = degrade.sample_pair(img, spec, np.random.default_rng(11))
    assert np.array_equal(a.observation, b.observation) and a.snr_db == b.snr_db
    draws = [degrade.sample_pair(img, spec, np.random.default_rng(s)) for s in range(12)]
    assert {(d.bh, d.bw) for d in draws} == set(spec.rates)
    assert {d.attempts for d in draws} <= {1, 2, 3} and len({d.attempts for d in draws}) > 1
    p = degrade.random_patch(img, 48, np.random.default_rng(0))
    assert p.shape == (48, 48, 3)


@pytest.mark.parametrize("kwargs", [{"fading": "rician"}, {"fading": "frame"}, {"fading_per": "attempt"},
                                    {"snr_mode": "peak"}, {"attempts": 0}, {"missing_frac": 1.5},
                                    {"frame_len": 0}, {"snr_db": float("nan")}, {"snr_db": float("inf")}])
def test_bad_input_rejected(kwargs):
    img = np.zeros((12, 12, 3), np.uint8)
    args = {"snr_db": 0.0}
    args.update(kwargs)
    snr = args.pop("snr_db")
    with pytest.raises(ValueError):
        degrade.degrade(img, link.LinkConfig(bh=2, bw=2), snr, np.random.default_rng(0), **args)
    with pytest.raises(ValueError):
        degrade.degrade(np.zeros((12, 12), np.float32), link.LinkConfig(), 0.0, np.random.default_rng(0))


def test_receiver_meta_is_the_servers_and_carries_the_soft_bits():
    """Degraded.meta() is link.observe of the combined LLRs: the plane LLRs on the image grid give back the MMSE
    observation value by value, the power profile is the transmitter's, the combined Es/N0 is the frames'
    linear mean (two attempts: +3 dB), and per-frame fading spreads the frames' SNR where AWGN does not."""
    from infercom import channel, reconstruct

    img = np.random.default_rng(5).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    cfg = link.LinkConfig(bh=3, bw=3, profile="importance", design_snr_db=-4)
    d = degrade.degrade(img, cfg, -2.0, np.random.default_rng(0), attempts=2, fading="block", fading_per="frame",
                        frame_len=64, keep_llr=True)
    m = d.meta()
    pl = m["plane_llr"]
    assert pl.shape == (10, 14, 3, 8)
    v = reconstruct.llr_to_values(np.ascontiguousarray(pl.reshape(-1, 8).T), "mmse").reshape(10, 14, 3)
    assert np.array_equal(v, d.observation)
    assert np.array_equal(pl[4, 7, 1], d.llr[:, (4 * 14 + 7) * 3 + 1])
    assert np.array_equal(m["plane_amplitudes"], cfg.plane_amplitudes())
    assert (m["profile"], m["design_snr_db"], m["attempts"]) == ("importance", -4.0, 2)
    # instantaneous: each attempt's gains have a symbol-weighted mean of 1; the image's Es/N0 weighs the frames
    # equally (the last one is shorter), as the server does
    assert m["snr_db"] == pytest.approx(-2.0 + 10 * np.log10(2), abs=0.15)
    assert m["frame_snr_spread_db"] > 1.0
    flat = degrade.degrade(img, cfg, -2.0, np.random.default_rng(0), frame_len=64).meta()
    assert flat["frame_snr_spread_db"] == pytest.approx(0.0, abs=1e-9)
    # the channel helpers: per-frame Es/N0 of equalised symbols and its spread
    nv = np.array([1.0, 1.0, 0.1, 0.1, np.inf, np.inf])
    f = channel.frame_snr_db(nv, 2)
    assert np.allclose(f[:2], [0.0, 10.0]) and f[2] == -np.inf
    assert channel.snr_spread_db(f) == pytest.approx(5.0)
    assert channel.image_snr_db(f) == pytest.approx(10 * np.log10(11 / 3))
