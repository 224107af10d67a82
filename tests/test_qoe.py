# SPDX-License-Identifier: GPL-3.0-or-later
"""QoE metrics: MATLAB imresize, NIQE (vectorised vs a per-patch loop re-implementation), CLIP-IQA and CLIP
similarity on a tiny random CLIP built here, the offline consistency proxy, full-reference metrics, thresholds
and the calibration's threshold search."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import convolve, gaussian_filter
from scipy.special import gamma

from infercom import metrics, source
from receiver_server.qoe import REGISTRY, get_qoe
from receiver_server.qoe.base import rgb_to_gray, rgb_to_y
from receiver_server.qoe.imresize import contributions, imresize
from receiver_server.qoe.niqe import DEFAULT_PARAMS, load_pristine
from receiver_server.qoe.thresholds import Threshold, load_thresholds, threshold

needs_params = pytest.mark.skipif(not DEFAULT_PARAMS.is_file(), reason="run `make setup` (NIQE parameters)")


def kodak(kodak_dir: Path, k: int) -> np.ndarray:
    return np.asarray(Image.open(kodak_dir / f"kodim{k:02d}.png").convert("RGB"))


# --------------------------------------------------------------------------------------------- imresize

def test_imresize_interior_matches_pil_antialiased_bicubic(rng):
    """PIL's reducing BICUBIC is the same a = -0.5 kernel stretched by 1/scale; only the borders differ
    (PIL renormalises a truncated kernel, MATLAB mirrors), so the interiors must agree."""
    img = rng.uniform(0, 255, (64, 80)).astype(np.float32)
    ours = imresize(img, scale=0.5)
    pil = np.asarray(Image.fromarray(img, mode="F").resize((40, 32), Image.BICUBIC), dtype=np.float64)
    assert ours.shape == (32, 40)
    np.testing.assert_allclose(ours[3:-3, 3:-3], pil[3:-3, 3:-3], atol=2e-3)
    up = imresize(img, output_shape=(128, 160))                           # enlarging: plain cubic
    pil_up = np.asarray(Image.fromarray(img, mode="F").resize((160, 128), Image.BICUBIC), dtype=np.float64)
    np.testing.assert_allclose(up[4:-4, 4:-4], pil_up[4:-4, 4:-4], atol=2e-3)


def test_imresize_borders_mirror_like_matlab(rng):
    """MATLAB mirrors indices half-sample symmetrically at the borders: resizing the symmetric extension with
    PIL (whose own border handling is then far away) and cropping must give the whole MATLAB result."""
    x = rng.uniform(0, 255, (24, 40)).astype(np.float32)
    padded = np.pad(x, ((24, 24), (40, 40)), mode="symmetric")
    pil = np.asarray(Image.fromarray(padded, mode="F").resize((padded.shape[1] // 2, padded.shape[0] // 2),
                                                              Image.BICUBIC), dtype=np.float64)
    np.testing.assert_allclose(imresize(x, scale=0.5), pil[12:24, 20:40], atol=1e-3)


def test_imresize_properties():
    w, idx = contributions(10, 5, 0.5)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert idx.min() >= 0 and idx.max() <= 9
    const = np.full((21, 13, 3), 77.0)
    np.testing.assert_allclose(imresize(const, scale=0.5), 77.0)
    assert imresize(const, scale=0.5).shape == (11, 7, 3)                  # ceil, as MATLAB
    ramp = np.tile(np.arange(40, dtype=float), (8, 1))                     # cubic reproduces linear functions
    half = imresize(ramp, scale=0.5)
    np.testing.assert_allclose(half[:, 3:-3], np.broadcast_to((np.arange(20) * 2 + 0.5)[3:-3], (4, 14)), atol=1e-9)
    with pytest.raises(ValueError):
        imresize(np.zeros((0, 3)), scale=0.5)
    with pytest.raises(ValueError):
        imresize(const, scale=0.5, output_shape=(3, 3))


# --------------------------------------------------------------------------------------------- NIQE

def _aggd_loop(vec):
    """Reference AGGD fit, straight from the formulas (one block at a time)."""
    gam = np.arange(0.2, 10.001, 0.001)
    r_gam = gamma(2 / gam) ** 2 / (gamma(1 / gam) * gamma(3 / gam))
    left = math.sqrt(np.mean(vec[vec < 0] ** 2))
    right = math.sqrt(np.mean(vec[vec > 0] ** 2))
    g = left / right
    rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec ** 2)
    rn = rhat * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2
    alpha = gam[int(np.argmin((r_gam - rn) ** 2))]
    c = math.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left * c, right * c


def _niqe_loop(grey, mu_p, cov_p, window):
    """Independent re-implementation: explicit loops over scales and patches (basicsr/MATLAB structure)."""
    h, w = grey.shape
    nh, nw = h // 96, w // 96
    img = grey[:nh * 96, :nw * 96].astype(np.float64)
    feats = [[] for _ in range(nh * nw)]
    for scale in (1, 2):
        mu = convolve(img, window, mode="nearest")
        sig = np.sqrt(np.abs(convolve(img * img, window, mode="nearest") - mu * mu))
        d = (img - mu) / (sig + 1)
        b = 96 // scale
        k = 0
        for j in range(nw):
            for i in range(nh):
                blk = d[i * b:(i + 1) * b, j * b:(j + 1) * b]
                a, bl, br = _aggd_loop(blk.ravel())
                f = [a, (bl + br) / 2]
                for sh in ((0, 1), (1, 0), (1, 1), (1, -1)):
                    a, bl, br = _aggd_loop((blk * np.roll(blk, sh, axis=(0, 1))).ravel())
                    f += [a, (br - bl) * gamma(2 / a) / gamma(1 / a), bl, br]
                feats[k] += f
                k += 1
        img = imresize(img / 255.0, scale=0.5) * 255.0
    x = np.array(feats)
    mu_d = x.mean(axis=0)
    cov_d = np.cov(x, rowvar=False)
    diff = mu_p - mu_d
    return float(np.sqrt(diff @ np.linalg.pinv((cov_p + cov_d) / 2) @ diff))


@needs_params
def test_niqe_vectorised_equals_patch_loop_on_kodak(kodak_dir):
    mu, cov, win = load_pristine()
    m = get_qoe("niqe")
    for k in (3, 19):
        img = kodak(kodak_dir, k)
        grey = m.grey(img)
        assert abs(m.score(img) - _niqe_loop(grey, mu, cov, win)) < 1e-6


@needs_params
def test_niqe_ranks_distortions(kodak_dir, rng):
    m = get_qoe("niqe")
    assert m.higher_is_better is False and m.name == "niqe"
    img = kodak(kodak_dir, 7)
    clean = m.score(img)
    blurred = np.clip(gaussian_filter(img.astype(float), (2.5, 2.5, 0)), 0, 255).astype(np.uint8)
    noisy = np.clip(img + rng.normal(0, 25, img.shape), 0, 255).astype(np.uint8)
    assert 1.5 < clean < 6.0                                  # natural photographs
    assert m.score(blurred) > clean + 2 and m.score(noisy) > clean + 2
    grey_cfg = get_qoe("niqe", config={"convert_to": "gray", "crop_border": 4})
    assert abs(grey_cfg.score(img) - clean) < 1.0             # a different grey conversion, same verdict


def test_colour_conversions_match_matlab():
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]], np.uint8)
    np.testing.assert_array_equal(rgb_to_gray(px)[0], [76, 150, 29, 255, 0])      # MATLAB rgb2gray(uint8)
    np.testing.assert_allclose(rgb_to_y(px)[0], [81.481, 144.553, 40.966, 235.0, 16.0], atol=1e-9)


@needs_params
def test_niqe_rejects_bad_input(tmp_path):
    m = get_qoe("niqe")
    with pytest.raises(ValueError, match="96x96"):
        m.score(np.zeros((100, 150, 3), np.uint8))
    assert m.score(np.full((200, 300, 3), 127, np.uint8)) == math.inf      # flat: no texture anywhere
    with pytest.raises(ValueError, match="uint8"):
        m.score(np.zeros((200, 200, 3), np.float32))
    with pytest.raises(ValueError, match="convert_to"):
        get_qoe("niqe", config={"convert_to": "lab"})
    with pytest.raises(FileNotFoundError, match="make setup"):
        get_qoe("niqe", config={"params_path": str(tmp_path / "none.npz")})


# --------------------------------------------------------------------------------------------- CLIP

def _images(rng, n=3):
    return [np.clip(rng.normal(128, 60, (40 + 5 * i, 52, 3)), 0, 255).astype(np.uint8) for i in range(n)]


def test_clip_iqa_is_the_softmax_of_the_models_own_logits(tiny_clip, rng):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    m = get_qoe("clip_iqa", config={"path": str(tiny_clip)})
    assert (m.name, m.higher_is_better, m.range) == ("clip_iqa", True, (0.0, 1.0))
    imgs = _images(rng)
    scores = m.scores(imgs)
    # independent path: the model's forward pass (logits_per_image = exp(logit_scale) * cos)
    model = CLIPModel.from_pretrained(str(tiny_clip), local_files_only=True).eval()
    proc = CLIPProcessor.from_pretrained(str(tiny_clip), local_files_only=True)
    inputs = proc(text=["Good photo.", "Bad photo."], images=imgs, return_tensors="pt", padding=True)
    with torch.no_grad():
        ref = model(**inputs).logits_per_image.softmax(dim=-1)[:, 0].numpy()
    np.testing.assert_allclose(scores, ref, atol=1e-5)
    assert np.all((scores >= 0) & (scores <= 1)) and np.ptp(scores) > 1e-4    # in range, image dependent
    np.testing.assert_allclose([m.score(i) for i in imgs], scores, atol=1e-6)  # single == batched


def test_clip_iqa_prompt_order_matters(tiny_clip, rng):
    imgs = _images(rng)
    good_bad = get_qoe("clip_iqa", config={"path": str(tiny_clip)}).scores(imgs)
    bad_good = get_qoe("clip_iqa", config={"path": str(tiny_clip),
                                           "prompts": ["Bad photo.", "Good photo."]}).scores(imgs)
    np.testing.assert_allclose(good_bad + bad_good, 1.0, atol=1e-6)
    assert np.max(np.abs(good_bad - 0.5)) > 1e-4
    with pytest.raises(ValueError, match="pair"):
        get_qoe("clip_iqa", config={"path": str(tiny_clip), "prompts": ["Good photo."]})


def test_clip_similarity(tiny_clip, rng):
    s = get_qoe("clip_sim", config={"path": str(tiny_clip)})
    a, b, _ = _images(rng)
    assert s.similarity(a, a) == pytest.approx(1.0, abs=1e-5)
    assert s.similarity(a, b) == pytest.approx(s.similarity(b, a), abs=1e-6)
    assert -1.0 <= s.similarity(a, b) < 0.99999
    # against the observation: the target is the bicubic baseline of the observation
    from receiver_server.restorers import get_restorer

    obs = source.lpf_encode(a, 3, 3).astype(np.float32)
    meta = dict(bh=3, bw=3, height=a.shape[0], width=a.shape[1], channels=3)
    base = get_restorer("bicubic").restore(obs, meta)
    assert s.score(base, obs, meta) == pytest.approx(1.0, abs=1e-5)
    assert s.score(b[:a.shape[0]], obs, meta) == pytest.approx(s.similarity(b[:a.shape[0]], base), abs=1e-6)
    with pytest.raises(ValueError, match="observation"):
        s.score(a)
    ref = get_qoe("clip_sim", config={"path": str(tiny_clip), "against": "reference"})
    assert ref.score(a, obs, dict(meta, reference=a)) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="reference"):
        ref.score(a, obs, meta)


def test_clip_metric_config_errors(tmp_path):
    with pytest.raises(ValueError, match="config 'path'"):
        get_qoe("clip_iqa")
    with pytest.raises(ValueError, match="config.json"):
        get_qoe("clip_sim", config={"path": str(tmp_path)})
    with pytest.raises(ValueError, match="unknown"):
        get_qoe("clip_sim", config={"path": str(tmp_path), "prompts": ["a", "b"]})


# --------------------------------------------------------------------------------------------- offline proxy

def test_consistency_proxy(kodak_dir, rng):
    img = kodak(kodak_dir, 5)[:200, :300]
    obs = source.lpf_encode(img, 3, 3).astype(np.float32)
    meta = dict(bh=3, bw=3, height=200, width=300, channels=3,
                missing=np.zeros(obs.shape[:2], bool))
    q = get_qoe("consistency")
    assert q.score(img, obs, meta) == pytest.approx(1.0)            # the original is exactly consistent
    shifted = np.roll(img, 9, axis=1)
    noisy = np.clip(img + rng.normal(0, 40, img.shape), 0, 255).astype(np.uint8)
    assert q.score(shifted, obs, meta) < 0.9 and q.score(noisy, obs, meta) < q.score(img, obs, meta)
    # pixels that had no symbols carry no observation: whatever is there is ignored, and the score is
    # scaled by the fraction received
    bad = obs.copy()
    bad[10:20, 10:30] = 0.0
    meta_missing = dict(meta, missing=np.zeros(obs.shape[:2], bool))
    meta_missing["missing"][10:20, 10:30] = True
    frac = 200 / meta_missing["missing"].size
    assert q.score(img, bad, meta_missing) == pytest.approx(1.0 - frac)
    assert q.score(img, obs, meta_missing) == pytest.approx(1.0 - frac)
    assert q.score(img, bad, meta) < 0.99
    assert q.score(img, bad, dict(meta, missing=np.ones(obs.shape[:2], bool))) == 0.0
    with pytest.raises(ValueError, match="observation and meta"):
        q.score(img)
    with pytest.raises(ValueError, match="do not match"):
        q.score(img[:100], obs, meta)


def _received(img, snr_db, rng, cfg=None):
    """(observation, meta with obs_var) of ``img`` sent once over AWGN at ``snr_db`` (the server's meta)."""
    from infercom import channel, link
    cfg = cfg or link.LinkConfig()
    x, lay = link.encode_image(img, cfg)
    nv = 10.0 ** (-snr_db / 10.0)
    llr = link.soft_to_llr(channel.awgn(x, snr_db, rng), nv, lay, cfg)
    obs = link.llr_to_lowres(llr, lay, cfg)
    meta = dict(bh=cfg.bh, bw=cfg.bw, height=lay.height, width=lay.width, channels=lay.channels,
                missing=np.zeros((lay.low_h, lay.low_w), bool), obs_var=link.llr_to_lowres_var(llr, lay, cfg))
    return obs, meta


def test_consistency_v2_true_image_passes_at_every_snr_where_ssim_proxy_failed(kodak_dir, rng):
    """The original image (a perfect denoiser's output) is consistent with the posterior at every SNR; the v1
    SSIM-vs-noisy-observation proxy (no obs_var) fails it because it rewards reproducing the bit errors."""
    img = kodak(kodak_dir, 7)[:180, :240]
    q = get_qoe("consistency")
    for snr_db in (-8.0, -2.0, 4.0, 10.0, 16.0):
        obs, meta = _received(img, snr_db, rng)
        v2 = q.score(img, obs, meta)
        assert v2 >= 0.98, (snr_db, v2)
        if snr_db <= 4.0:
            v1 = q.score(img, obs, {k: v for k, v in meta.items() if k != "obs_var"})
            assert v1 < 0.9 and v1 < v2 - 0.1, (snr_db, v1, v2)


def test_consistency_v2_rejects_invented_content(kodak_dir, rng):
    """A patch of another image pasted over reliably received values costs clearly more than the true image
    loses (9 % of the area), a quarter of the area falls below the calibration floor 0.9; the bicubic
    restoration (smooth, but faithful) passes -- also with a link designed for high SNR (sharp posterior)."""
    from infercom.link import LinkConfig
    from receiver_server.restorers import get_restorer
    img = kodak(kodak_dir, 7)[:180, :240]
    other = kodak(kodak_dir, 20)
    q = get_qoe("consistency")
    for design, snr_db in ((-4, 4.0), (-4, 12.0), (12, 12.0)):
        obs, meta = _received(img, snr_db, rng, LinkConfig(design_snr_db=design))
        small, quarter = img.copy(), img.copy()
        small[60:114, 60:132] = other[:54, :72]
        quarter[45:135, 60:180] = other[:90, :120]
        truth = q.score(img, obs, meta)
        assert q.score(small, obs, meta) < truth - 0.03, (design, snr_db)
        assert q.score(quarter, obs, meta) < 0.9 < truth, (design, snr_db)
        assert q.score(get_restorer("bicubic").restore(obs, meta), obs, meta) >= 0.98


def test_consistency_v2_tolerance_and_missing():
    """z = (means - mu) / sqrt(obs_var + tau^2): with obs_var 0 an offset d passes iff d <= z_max * tau; the
    posterior variance widens the band; missing pixels are excluded and scale the score."""
    img = np.full((30, 36, 3), 100, np.uint8)
    obs = np.full((10, 12, 3), 100.0, np.float32)
    zero = dict(bh=3, bw=3, height=30, width=36, channels=3, obs_var=np.zeros((10, 12, 3), np.float32))
    q = get_qoe("consistency", config={"tau": 2.0, "z_max": 3.0})
    assert q.score(img, obs, zero) == 1.0
    assert q.score(img + np.uint8(6), obs, zero) == 1.0                       # 6 <= 3 * 2
    assert q.score(img + np.uint8(7), obs, zero) == 0.0
    assert q.score(img + np.uint8(7), obs, dict(zero, obs_var=np.full((10, 12, 3), 4.0, np.float32))) == 1.0
    assert get_qoe("consistency", config={"tau": 3.0}).score(img + np.uint8(7), obs, zero) == 1.0
    half = img.copy()
    half[:, :18] += 50                                                       # the left half of the blocks off
    assert q.score(half, obs, zero) == pytest.approx(0.5)
    # missing: the left half had no symbols -> excluded, the score scaled by the received fraction 1/2
    miss = np.zeros((10, 12), bool)
    miss[:, :6] = True
    assert q.score(half, obs, dict(zero, missing=miss)) == pytest.approx(0.5)
    assert q.score(img, obs, dict(zero, missing=miss)) == pytest.approx(0.5)
    assert q.score(img, obs, dict(zero, missing=np.ones((10, 12), bool))) == 0.0
    with pytest.raises(ValueError, match="obs_var"):
        q.score(img, obs, dict(zero, obs_var=np.zeros((10, 11, 3), np.float32)))
    with pytest.raises(ValueError, match="obs_var"):
        q.score(img, obs, dict(zero, obs_var=np.full((10, 12, 3), -1.0, np.float32)))
    for bad in ({"tau": -1.0}, {"z_max": 0}, {"z_max": float("nan")}, {"zmax": 3}):
        with pytest.raises(ValueError, match="consistency"):
            get_qoe("consistency", config=bad)


# -------------------------------------------------------------------------------------------- reliability

def test_reliability_tracks_the_true_mse_of_the_observation(kodak_dir):
    """reliability = 10 log10(255^2 / mean(obs_var)) predicts the PSNR of the MMSE observation against the
    original's block means (what the link delivered) without the original: within ~1 dB from -4 to 12 dB (e.g.
    +0.8 dB for kodim07 at 0 dB, 1.0 dB at 4 dB with another seed: 1.25 allowed, the 4-draw MSE is
    itself noisy); at -8 dB the uniform prior of the MMSE makes it pessimistic for natural
    images (measured 1.2-2.3 dB below the truth); it rises with the SNR."""
    from infercom import channel, link
    q = get_qoe("reliability")
    cfg = link.LinkConfig()                           # 3x3 blocks (rate 1/9), importance profile
    for k in (3, 7):
        img = kodak(kodak_dir, k)[:240, :360]
        x, lay = link.encode_image(img, cfg)
        truth_means = source.lpf_encode(img, cfg.bh, cfg.bw).astype(np.float64)
        rng = np.random.default_rng(k)
        prev = -np.inf
        for snr_db in (-8.0, -4.0, 0.0, 4.0, 8.0, 12.0):
            nv = 10.0 ** (-snr_db / 10.0)
            se, rs = [], []
            for _ in range(4):                        # a few draws: one draw's MSE is dominated by rare MSB errors
                llr = link.soft_to_llr(channel.awgn(x, snr_db, rng), nv, lay, cfg)
                mu = link.llr_to_lowres(llr, lay, cfg)
                rs.append(q.score(img, mu, dict(bh=3, bw=3, obs_var=link.llr_to_lowres_var(llr, lay, cfg))))
                se.append(np.mean((mu - truth_means) ** 2))
            r = float(np.mean(rs))
            true_psnr = 10 * np.log10(255.0 ** 2 / np.mean(se))
            if snr_db >= -4.0:
                assert abs(r - true_psnr) < 1.25, (k, snr_db, r, true_psnr)
            else:                                     # pessimistic, not optimistic, where nearly nothing arrives
                assert true_psnr - 3.0 < r < true_psnr, (k, snr_db, r, true_psnr)
            assert r > prev
            prev = r


def test_reliability_rises_with_chase_attempts_and_drops_with_missing_frames(kodak_dir):
    """Two Chase-combined attempts at s dB give the reliability of one attempt at s + 3 dB (MRC doubles the
    SNR); missing pixels count at the maximal variance (a uniform value), so missing frames lower it."""
    from infercom import channel, chase, link
    from receiver_server.qoe.reliability import MAX_DB, MISSING_VAR
    q = get_qoe("reliability")
    cfg = link.LinkConfig()
    img = kodak(kodak_dir, 5)[:240, :360]
    x, lay = link.encode_image(img, cfg)
    rng = np.random.default_rng(11)

    def rel(y, nv, missing=None):
        llr = link.soft_to_llr(y, nv, lay, cfg)
        return q.score(None, None, dict(obs_var=link.llr_to_lowres_var(llr, lay, cfg), missing=missing))

    for snr_db in (-6.0, 0.0, 6.0):
        nv = 10.0 ** (-snr_db / 10.0)
        ys = [channel.awgn(x, snr_db, rng) for _ in range(2)]
        one = rel(ys[0], nv)
        yc, nvc = chase.combine(ys, [nv, nv])
        two = rel(yc, nvc)
        plus3 = rel(channel.awgn(x, snr_db + 10 * np.log10(2), rng), nv / 2)
        assert two > one + 1.0 and abs(two - plus3) < 0.3, (snr_db, one, two, plus3)
    # missing: a quarter of the low-res pixels flagged missing -> their variance is the maximal one
    llr = link.soft_to_llr(channel.awgn(x, 6.0, rng), 10 ** -0.6, lay, cfg)
    var = link.llr_to_lowres_var(llr, lay, cfg).astype(np.float64)
    miss = np.zeros((lay.low_h, lay.low_w), bool)
    miss[: lay.low_h // 4] = True
    expect = np.where(miss[:, :, None], MISSING_VAR, var).mean()
    full = q.score(None, None, dict(obs_var=var))
    part = q.score(None, None, dict(obs_var=var, missing=miss))
    assert part == pytest.approx(10 * np.log10(255.0 ** 2 / expect), abs=1e-9) and part < full - 3.0
    # a missing frame's LLRs are 0: llr_to_lowres_var already gives them the maximal variance
    llr0 = llr.copy()
    llr0[:, : llr.shape[1] // 4] = 0.0
    assert q.score(None, None, dict(obs_var=link.llr_to_lowres_var(llr0, lay, cfg))) < full - 3.0
    assert q.score(None, None, dict(obs_var=var, missing=np.ones_like(miss))) == pytest.approx(
        10 * np.log10(255.0 ** 2 / MISSING_VAR))
    assert q.score(None, None, dict(obs_var=np.zeros((4, 5)))) == MAX_DB           # capped
    assert q.higher_is_better and q.range == (0.0, MAX_DB)


def test_reliability_rejects_bad_input():
    q = get_qoe("reliability")
    obs = np.zeros((4, 5, 3), np.float32)
    with pytest.raises(ValueError, match="obs_var"):
        q.score(None, obs, dict(bh=3, bw=3))
    with pytest.raises(ValueError, match="obs_var"):
        q.score(None, obs, None)
    with pytest.raises(ValueError, match="obs_var"):
        q.score(None, obs, dict(obs_var=np.zeros((4, 6, 3))))
    for bad in (np.full((4, 5), -1.0), np.full((4, 5), np.nan)):
        with pytest.raises(ValueError, match="obs_var"):
            q.score(None, None, dict(obs_var=bad))
    with pytest.raises(ValueError, match="missing"):
        q.score(None, None, dict(obs_var=np.ones((4, 5)), missing=np.zeros((5, 4), bool)))
    with pytest.raises(ValueError, match="config"):
        get_qoe("reliability", config={"cap": 50})


def test_full_reference_metrics(kodak_dir, rng):
    img = kodak(kodak_dir, 2)[:128, :128]
    noisy = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
    meta = {"reference": img}
    assert get_qoe("psnr").score(noisy, None, meta) == pytest.approx(metrics.psnr(noisy, img))
    assert get_qoe("ssim", config={"channel": "y"}).score(noisy, None, meta) == \
        pytest.approx(metrics.ssim(noisy, img, channel="y"))
    with pytest.raises(ValueError, match="evaluation only"):
        get_qoe("psnr").score(noisy)


def test_registry():
    from receiver_server.qoe import CLIP_QOE, DEFAULT_QOE

    assert set(REGISTRY) == {"niqe", "clip_iqa", "clip_sim", "consistency", "reliability", "psnr", "ssim"}
    assert DEFAULT_QOE == ("niqe", "consistency", "reliability")
    assert set(DEFAULT_QOE) <= set(REGISTRY) and set(CLIP_QOE) <= set(REGISTRY)
    assert all(threshold(m).source.startswith("calibrated") for m in DEFAULT_QOE)
    with pytest.raises(ValueError, match="unknown QoE metric"):
        get_qoe("brisque")


# --------------------------------------------------------------------------------------------- thresholds

def test_thresholds(tmp_path):
    t = load_thresholds(("clip_iqa", "clip_sim"))
    assert (t["clip_iqa"].value, t["clip_sim"].value) == (0.8, 0.9)
    assert t["clip_iqa"].passes(0.81) and not t["clip_iqa"].passes(0.79) and not t["clip_iqa"].passes(math.nan)
    cal = tmp_path / "t.json"
    cal.write_text(json.dumps({"thresholds": {"niqe": 7.5, "consistency": 0.95}, "command": "x"}))
    n = threshold("niqe", calibration=cal)
    assert n.value == 7.5 and n.passes(7.0) and not n.passes(8.0)          # NIQE: lower passes
    assert threshold("niqe", overrides={"niqe": 6.0}, calibration=cal).value == 6.0
    with pytest.raises(ValueError, match="calibrate"):
        threshold("niqe", calibration=tmp_path / "absent.json")
    assert isinstance(n, Threshold)


def test_shipped_calibration_is_complete():
    from receiver_server.qoe.thresholds import CALIBRATION_FILE

    doc = json.loads(CALIBRATION_FILE.read_text())
    assert set(doc["thresholds"]) == {"niqe", "consistency", "reliability"} and doc["default_restorer"] == "bicubic"
    assert doc["thresholds"] == doc["restorers"]["bicubic"]["thresholds"]
    assert {"bicubic", "infercom-restorer-stage1", "infercom-restorer", "infercom-restorer-v1",
            "infercom-restorer-v1-stage1"} <= set(doc["restorers"])
    for name, e in doc["restorers"].items():
        assert e["restorer"] == name and "reliability" in e["thresholds"]
        # the reliability threshold: its own calibration record (label: the offline QoE requirement met), with
        # its ROC as an early-NACK predictor and the bound on wrong early NACKs
        r = e["calibrations"]["reliability"]
        assert r["threshold"] == e["thresholds"]["reliability"] and r["label"] == "requirement"
        roc = r["roc"]
        assert roc["threshold"] == r["threshold"] and 0.5 < roc["auc"] <= 1.0
        w = roc["wrong_early_nack"]
        assert 0 <= w["rate"] <= w["upper"] <= 1 and w["n_acceptable"] > 10
        assert any(c in r["command"] for c in ("receiver_server.qoe.calibrate", "infercom calibrate-qoe"))
        assert any(m in r["command"] for m in ("--metrics reliability", "--metrics=reliability"))
        assert r["dataset"]["folder"].startswith("bsds500") and "kodak" not in json.dumps(r["dataset"])
        assert r["separation"]["balanced_accuracy"] > 0.6 and r["label_rule"] and r["date_utc"]
        if "niqe" in e["thresholds"]:                   # a joint (niqe, consistency) calibration
            assert set(e["thresholds"]) == {"niqe", "consistency", "reliability"}
            assert "receiver_server.qoe.calibrate" in e["command"] and e["dataset"]["folder"].startswith("bsds500")
            assert "kodak" not in json.dumps(e["dataset"]) and e["date_utc"] and e["label_rule"]
            assert e["consistency_config"]["version"] == 2
            assert e["separation"]["joint"]["balanced_accuracy"] > 0.5       # better than chance
    # a restorer that repairs bit errors tolerates a less reliable observation than bicubic
    rel = {n: e["thresholds"]["reliability"] for n, e in doc["restorers"].items()}
    assert rel["infercom-restorer-stage1"] < rel["bicubic"]
    assert rel["infercom-restorer"] <= rel["infercom-restorer-v1"]       # v2 needs no more information than v1


def test_thresholds_per_restorer_with_fallback(tmp_path):
    from receiver_server.server import resolve_thresholds

    cal = tmp_path / "t.json"
    cal.write_text(json.dumps({"thresholds": {"niqe": 9.0, "consistency": 0.95}, "default_restorer": "bicubic",
                               "restorers": {"bicubic": {"thresholds": {"niqe": 9.0, "consistency": 0.95}},
                                             "gen": {"thresholds": {"niqe": 5.0, "consistency": 0.9}}}}))
    t = threshold("niqe", calibration=cal, restorer="gen")
    assert (t.value, t.restorer) == (5.0, "gen") and "gen" in t.source
    t = threshold("consistency", calibration=cal, restorer="other")
    assert (t.value, t.restorer) == (0.95, "bicubic")                         # fallback: the default entry
    assert threshold("niqe", calibration=cal).value == 9.0
    assert threshold("niqe", overrides={"niqe": 4.0}, calibration=cal, restorer="gen").value == 4.0
    # the shipped file: every calibrated restorer gets its own entry, others the bicubic one (and it is said)
    from receiver_server.qoe.thresholds import CALIBRATION_FILE
    doc = json.loads(CALIBRATION_FILE.read_text())
    metrics_ = {"niqe": object(), "consistency": object(), "reliability": object()}
    for name, e in doc["restorers"].items():
        fb: list = []
        got = resolve_thresholds(metrics_, {}, name, fb)
        assert {k: got[k] for k in e["thresholds"]} == e["thresholds"]
        assert sorted(fb) == sorted((m, "bicubic") for m in metrics_ if m not in e["thresholds"])
        assert all(got[m] == doc["thresholds"][m] for m, _ in fb)
    fb = []
    assert resolve_thresholds(metrics_, {"niqe": 3.0}, "no-such-restorer", fb) == \
        {"niqe": 3.0, "consistency": doc["thresholds"]["consistency"],
         "reliability": doc["thresholds"]["reliability"]}
    assert fb == [("consistency", "bicubic"), ("reliability", "bicubic")]


def test_best_joint_thresholds_and_rule():
    """The AND rule's best pair: NIQE separates the classes; consistency rejects the unfaithful samples that
    NIQE alone passes, and an uninformative consistency stays at the floor (the most lenient cut)."""
    from receiver_server.qoe.calibrate import best_joint_thresholds
    rng = np.random.default_rng(3)
    n = 200
    good0 = rng.random(n) < 0.5
    niqe = np.where(good0, rng.uniform(3, 6, n), rng.uniform(7, 10, n))
    unfaithful = rng.random(n) < 0.2
    cons = np.where(unfaithful, rng.uniform(0.92, 0.95, n), rng.uniform(0.97, 1.0, n))
    good = good0 & ~unfaithful                                   # unfaithful restorations are unacceptable
    r = best_joint_thresholds(niqe, cons, good)
    assert 6 < r["niqe"] < 7 and 0.95 < r["consistency"] < 0.97 and r["balanced_accuracy"] == 1.0
    r = best_joint_thresholds(niqe, cons, good0)                 # consistency unrelated to the label
    assert 6 < r["niqe"] < 7 and r["balanced_accuracy"] == 1.0 and r["consistency"] == 0.9
    r = best_joint_thresholds(niqe, cons, good0, cons_floor=0.8)
    assert r["consistency"] == 0.8
    with pytest.raises(ValueError, match="both"):
        best_joint_thresholds(niqe, cons, np.ones(n, bool))


def test_merge_calibration_keeps_other_restorers():
    from receiver_server.qoe.calibrate import merge_calibration
    a = {"thresholds": {"niqe": 9.0, "consistency": 0.99}, "command": "a", "dataset": {"folder": "bsds500/test"}}
    b = {"thresholds": {"niqe": 6.0, "consistency": 0.95}, "command": "b", "dataset": {"folder": "bsds500/test"}}
    doc = merge_calibration({}, {"gen": b})
    assert doc["default_restorer"] == "gen" and doc["thresholds"] == b["thresholds"]
    doc = merge_calibration(doc, {"bicubic": a})
    assert set(doc["restorers"]) == {"gen", "bicubic"} and doc["default_restorer"] == "bicubic"
    assert doc["thresholds"] == a["thresholds"] and doc["command"] == "a"
    doc = merge_calibration(doc, {"gen": dict(b, thresholds={"niqe": 5.0, "consistency": 0.9})})
    assert doc["restorers"]["gen"]["thresholds"]["niqe"] == 5.0 and doc["thresholds"] == a["thresholds"]


def test_calibration_labels():
    from receiver_server.qoe.calibrate import labels
    rec = [dict(psnr=20.0, psnr_chase2=20.5, psnr_chase4=21.0, psnr_clean=30.0),    # stuck near the prior
           dict(psnr=26.0, psnr_chase2=26.5, psnr_chase4=27.0, psnr_clean=30.0),    # good
           dict(psnr=20.0, psnr_chase2=22.0, psnr_chase4=24.0, psnr_clean=25.0)]    # a retransmission pays
    assert labels(rec, "chase-gain", 1.0).tolist() == [True, True, False]
    assert labels(rec, "chase-gain+drop", 1.0, 6.0).tolist() == [False, True, False]
    assert labels(rec, "drop", 5.0).tolist() == [False, True, True]
    with pytest.raises(ValueError, match="label"):
        labels(rec, "psnr", 1.0)


def test_single_metric_calibration_adds_to_the_restorers_entry():
    """``--metrics reliability``: the metric's best single cut under the drop label, added to the restorer's
    existing thresholds (kept), with its own calibration record; a restorer without an entry gets one."""
    import argparse

    from receiver_server.qoe.calibrate import add_metric_entry, calibrate_single, merge_calibration
    # acceptable (drop <= 1.5 dB vs the error-free 30 dB) exactly when reliability >= 24
    rec = [dict(image=f"i{i % 3}", snr_db=float(s), psnr=30.0 - (2.0 if r < 24 else 1.0), psnr_clean=30.0,
                reliability=float(r)) for i, (s, r) in enumerate([(-4, 15), (0, 20), (4, 23), (8, 25),
                                                                  (12, 28), (14, 30)])]
    res = calibrate_single(rec, ("reliability",), "drop", 1.5)
    assert res["thresholds"]["reliability"] == pytest.approx(24.0)           # midpoint of 23 and 25
    assert res["separation"]["reliability"]["balanced_accuracy"] == 1.0
    assert res["counts"] == {"samples": 6, "acceptable": 3, "unacceptable": 3}
    assert res["per_snr_median"]["8.0"]["acceptable_fraction"] == 1.0 and "psnr_chase2" not in \
        res["per_snr_median"]["8.0"]
    args = argparse.Namespace(label="drop", max_db=1.5, max_drop_db=6.0, bh=3, bw=3, seed=1,
                              images=Path("/data/bsds500/test"))
    old = {"restorer": "bicubic", "thresholds": {"niqe": 9.0, "consistency": 0.9}, "command": "joint"}
    e = add_metric_entry(old, args, "bicubic", ["a", "b"], [-4.0, 14.0], res, "cmd", 1.0)
    assert e["thresholds"] == {"niqe": 9.0, "consistency": 0.9, "reliability": 24.0} and e["command"] == "joint"
    assert e["calibrations"]["reliability"]["threshold"] == 24.0
    assert e["calibrations"]["reliability"]["dataset"]["folder"] == "bsds500/test"
    assert old["thresholds"] == {"niqe": 9.0, "consistency": 0.9}                  # input not modified
    new = add_metric_entry(None, args, "gen", ["a"], [0.0], res, "cmd", 1.0)
    assert new["thresholds"] == {"reliability": 24.0} and new["restorer"] == "gen"
    doc = merge_calibration({"restorers": {"bicubic": old}}, {"bicubic": e, "gen": new})
    assert doc["thresholds"] == e["thresholds"] and set(doc["restorers"]) == {"bicubic", "gen"}
    assert threshold_from(doc, "gen") == 24.0
    # recalibrating a metric with a new checkpoint updates the entry's fingerprint, not only the metric's record
    from receiver_server.qoe import calibrate as cal_mod

    stale = dict(old, restorer_checkpoint={"path": "m.pt", "sha256": "old"})
    orig = cal_mod.checkpoint_fingerprint
    cal_mod.checkpoint_fingerprint = lambda name: {"path": "m.pt", "sha256": "new"}
    try:
        e2 = add_metric_entry(stale, args, "gen", ["a"], [0.0], res, "cmd", 1.0)
    finally:
        cal_mod.checkpoint_fingerprint = orig
    assert e2["restorer_checkpoint"]["sha256"] == "new"
    assert e2["calibrations"]["reliability"]["restorer_checkpoint"]["sha256"] == "new"


def test_calibrate_qoe_flags_are_the_shared_ones():
    """``infercom calibrate-qoe`` spells the link as the other subcommands do: ``--rate`` (1/N or BHxBW) and
    ``--snr-db`` (space- or comma-separated dB values, negative ones too; ``inf`` = the noiseless channel); the
    command it records reproduces the run."""
    import argparse
    import shlex

    from infercom_apps.cli import COMMANDS
    from receiver_server.qoe import calibrate as cal

    assert COMMANDS["calibrate-qoe"][0] == "receiver_server.qoe.calibrate"
    p = argparse.ArgumentParser()
    cal.add_arguments(p)
    a = p.parse_args(["--rate", "2x2", "--snr-db", "-8,-4,inf", "--restorer", "bicubic,infercom-restorer"])
    assert cal.parse_snrs(a.snr_db) == [-8.0, -4.0, math.inf] and a.rate == "2x2"
    assert cal.parse_snrs(p.parse_args(["--snr-db", "-8", "0", "14"]).snr_db) == [-8.0, 0.0, 14.0]
    assert cal.parse_snrs(None) == [float(v) for v in cal.DEFAULT_SNRS.split(",")]
    for bad in (["x"], ["nan"], ["-inf"], [","]):
        with pytest.raises(ValueError, match="snr-db"):
            cal.parse_snrs(bad)
    cmd = cal.command_line(a)
    assert cmd == "infercom calibrate-qoe --snr-db=-8,-4,inf --rate=2x2 --restorer=bicubic,infercom-restorer"
    again = p.parse_args(shlex.split(cmd)[2:])
    assert cal.parse_snrs(again.snr_db) == cal.parse_snrs(a.snr_db) and vars(again) == vars(a) | {
        "snr_db": again.snr_db}
    assert cal.command_line(p.parse_args([])) == "infercom calibrate-qoe"


def test_calibrate_qoe_subcommand_recomputes_from_records(tmp_path, capsys):
    """``infercom calibrate-qoe --from-records`` end to end through the CLI (no restoration run): the entry's
    thresholds are recomputed from the saved samples and the recorded command is the subcommand's."""
    from infercom_apps.cli import main

    images = tmp_path / "bsds500" / "test"
    images.mkdir(parents=True)
    rec = []
    for i in range(12):                     # acceptable: small Chase gain and NIQE <= 6; else a large gain
        good = i % 2 == 0
        rec.append({"image": f"i{i % 3}", "snr_db": float(i), "psnr_clean": 30.0, "psnr": 28.0 if good else 20.0,
                    "psnr_chase2": 28.2 if good else 23.0, "psnr_chase4": 28.4 if good else 26.0,
                    "niqe": 5.0 + 0.1 * i if good else 8.0 + 0.1 * i, "consistency": 0.99})
    records = tmp_path / "records.json"
    records.write_text(json.dumps({"bicubic": rec}))
    out = tmp_path / "thresholds.json"
    out.write_text(json.dumps({"thresholds": {"niqe": 1.0, "consistency": 0.9}, "default_restorer": "bicubic",
                               "restorers": {"bicubic": {"restorer": "bicubic", "command": "old",
                                                         "thresholds": {"niqe": 1.0, "consistency": 0.9}}}}))
    argv = ["calibrate-qoe", "--images", str(images), "--rate", "1/9", "--from-records", str(records),
            "--out", str(out)]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    e = doc["restorers"]["bicubic"]
    assert 6.1 < e["thresholds"]["niqe"] < 8.0 and e["counts"] == {"samples": 12, "acceptable": 6,
                                                                    "unacceptable": 6}
    assert e["command"] == "old" and e["recomputed"]["command"].startswith("infercom calibrate-qoe ")
    assert "--from-records=" in e["recomputed"]["command"] and doc["thresholds"] == e["thresholds"]
    with pytest.raises(SystemExit, match="rate"):
        main(["calibrate-qoe", "--images", str(images), "--rate", "1/11", "--from-records", str(records),
              "--out", str(out)])


def threshold_from(doc: dict, restorer: str) -> float:
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "t.json"
        p.write_text(json.dumps(doc))
        return threshold("reliability", calibration=p, restorer=restorer).value


def test_early_nack_roc_and_its_bound(tmp_path):
    """The early-NACK predictor's ROC: AUC 1 for a separating metric, ~0.5 for noise; the wrong-early-NACK rate
    at the cut counts acceptable samples below it, and its Clopper-Pearson bound is the closed form at k = 0
    (1 - 0.05**(1/n)) and above the rate otherwise; lower-is-better metrics are mirrored."""
    from receiver_server.qoe.calibrate import early_nack_roc, plot_roc

    rng = np.random.default_rng(0)
    good = rng.random(400) < 0.4
    sep = np.where(good, rng.uniform(22, 30, 400), rng.uniform(10, 21, 400))
    r = early_nack_roc(sep, good, 21.5)
    assert r["auc"] == 1.0 and r["wrong_early_nack"]["k"] == 0 and r["caught"] == 1.0
    n = int(good.sum())
    assert r["wrong_early_nack"]["upper"] == pytest.approx(1 - 0.05 ** (1 / n), abs=1e-4)
    noise = rng.uniform(0, 1, 400)
    rn = early_nack_roc(noise, good, 0.5)
    assert abs(rn["auc"] - 0.5) < 0.1
    w = rn["wrong_early_nack"]
    assert w["k"] == int(np.sum(noise[good] < 0.5)) and w["upper"] > w["rate"]
    assert early_nack_roc(-sep, good, -21.5, higher_is_better=False)["auc"] == 1.0
    plot_roc({"sep": r, "noise": rn}, tmp_path / "roc.png", "t")
    assert (tmp_path / "roc.png").stat().st_size > 1000


def test_shipped_thresholds_name_the_checkpoint_they_were_calibrated_on():
    """Every calibrated entry of the project's model records the sha256 of the checkpoint its samples were
    restored with, and it is the checkpoint that name loads today (v1 names: v1, the others: v2): a retrained
    checkpoint without a recalibration fails here."""
    from receiver_server.qoe.calibrate import checkpoint_fingerprint
    from receiver_server.qoe.thresholds import CALIBRATION_FILE

    doc = json.loads(CALIBRATION_FILE.read_text())
    names = [n for n in doc["restorers"] if n.startswith("infercom-restorer")]
    assert {"infercom-restorer", "infercom-restorer-stage1", "infercom-restorer-v1"} <= set(names)
    for name in names:
        now = checkpoint_fingerprint(name)
        rec = doc["restorers"][name]["calibrations"]["reliability"]["restorer_checkpoint"]
        assert rec["sha256"] == now["sha256"], name
