# SPDX-License-Identifier: GPL-3.0-or-later
import math

import numpy as np
import pytest

from infercom import interleave, link, source
from infercom.imageio import list_images, load_image


def _noise(rng, n, nv):
    return (np.sqrt(nv / 2) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))).astype(np.complex64)


@pytest.fixture(scope="module")
def kodak(kodak_dir):
    return [load_image(p) for p in list_images(kodak_dir)]


@pytest.mark.parametrize("shape", [(1, 1, 3), (31, 17, 3), (33, 20), (40, 41, 1)])
@pytest.mark.parametrize("cfg", [link.LinkConfig(), link.LinkConfig(1, 1, 8, "equal", 0),
                                 link.LinkConfig(2, 3, 5, "importance", 4),
                                 link.LinkConfig(3, 3, 8, "importance", -4, 0)])
def test_noiseless_round_trip(shape, cfg):
    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    x, lay = link.encode_image(img, cfg)
    c = shape[2] if len(shape) == 3 else 1
    assert lay == link.layout(shape[0], shape[1], c, cfg)
    assert x.dtype == np.complex64 and x.size == lay.n_symbols == cfg.planes * math.ceil(lay.n_values / 2)
    assert np.mean(np.abs(x) ** 2) == pytest.approx(1.0, rel=1e-5)
    low = source.lpf_encode(img, cfg.bh, cfg.bw)
    keep = np.uint8((0xFF << (8 - cfg.planes)) & 0xFF)
    want = (low & keep).astype(np.float32) + (0 if cfg.planes == 8 else 2 ** (7 - cfg.planes))
    hard = link.decode_image(x, 1e-12, lay, cfg, mode="hard")
    np.testing.assert_array_equal(hard, want)
    np.testing.assert_allclose(link.decode_image(x, 1e-12, lay, cfg), hard - (cfg.planes < 8) * 0.5,
                               atol=1e-3)
    up = link.upsample(hard, lay)
    assert up.shape == (shape[0], shape[1], c)
    if (cfg.bh, cfg.bw, cfg.planes) == (1, 1, 8):
        np.testing.assert_array_equal(up, img.reshape(up.shape))     # rate 1 is lossless


def test_interleaver_key_matters():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)
    kr = interleave.Keyring({7: b"k" * 32})
    cfg7 = link.LinkConfig(key_id=7)
    x, lay = link.encode_image(img, cfg7, kr)
    np.testing.assert_array_equal(link.decode_image(x, 1e-12, lay, cfg7, "hard", kr),
                                  source.lpf_encode(img, 3, 3))
    wrong = link.decode_image(x, 1e-12, lay, link.LinkConfig(key_id=0), "hard", kr)
    assert np.mean(np.abs(wrong - source.lpf_encode(img, 3, 3))) > 30
    with pytest.raises(ValueError, match="no interleaver key"):
        link.encode_image(img, cfg7)


def test_missing_symbols_give_mid_grey():
    cfg = link.LinkConfig()
    lay = link.layout(9, 9, 3, cfg)
    lo = link.decode_image(np.zeros(lay.n_symbols, np.complex64), np.inf, lay, cfg)
    np.testing.assert_allclose(lo, 127.5)


def _lowres_mse(images, cfg, snr_db, rng, modes=("hard",)):
    err = {m: 0.0 for m in modes}
    count = 0
    for img in images:
        x, lay = link.encode_image(img, cfg)
        nv = 10 ** (-snr_db / 10)
        y = x + _noise(rng, x.size, nv)
        ref = source.lpf_encode(img, cfg.bh, cfg.bw).astype(np.float64)
        for m in modes:
            err[m] += np.sum((link.decode_image(y, nv, lay, cfg, m) - ref) ** 2)
        count += ref.size
    return {m: e / count for m, e in err.items()}


@pytest.mark.parametrize("snr_db,min_gain_db", [(0, 5.0), (-4, 3.0)])
def test_importance_beats_equal_on_kodak(kodak, snr_db, min_gain_db):
    rng = np.random.default_rng(snr_db + 20)
    imp = link.LinkConfig(3, 3, 8, "importance", snr_db)
    eq = link.LinkConfig(3, 3, 8, "equal", snr_db)
    modes = ("hard", "mmse") if snr_db == 0 else ("hard",)
    d_imp = _lowres_mse(kodak, imp, snr_db, rng, modes)
    d_eq = _lowres_mse(kodak, eq, snr_db, rng)
    gain = 10 * math.log10(d_eq["hard"] / d_imp["hard"])
    assert gain >= min_gain_db, gain
    if snr_db == 0:
        assert 10 * math.log10(d_imp["hard"] / d_imp["mmse"]) >= 1.0


def test_layout_and_config_validation():
    with pytest.raises(ValueError, match="bh"):
        link.LinkConfig(bh=0)
    with pytest.raises(ValueError, match="planes"):
        link.LinkConfig(planes=9)
    with pytest.raises(ValueError, match="profile"):
        link.LinkConfig(profile="water")
    with pytest.raises(ValueError, match="design_snr_db"):
        link.LinkConfig(design_snr_db=16)
    with pytest.raises(ValueError, match="design_snr_db"):
        link.LinkConfig(design_snr_db=1.5)
    with pytest.raises(ValueError, match="key_id"):
        link.LinkConfig(key_id=16)
    with pytest.raises(ValueError, match="height"):
        link.layout(0, 10, 3, link.LinkConfig())
    with pytest.raises(ValueError, match="channels"):
        link.layout(10, 10, 2, link.LinkConfig())
    cfg = link.LinkConfig()
    assert cfg.rate() == pytest.approx(1 / 9)
    assert cfg.plane_powers().mean() == pytest.approx(1.0)
    lay = link.layout(10, 10, 3, cfg)
    with pytest.raises(ValueError, match="expected"):
        link.decode_image(np.zeros(lay.n_symbols - 1, np.complex64), 1.0, lay, cfg)
    with pytest.raises(ValueError, match="NaN"):
        link.decode_image(np.full(lay.n_symbols, np.nan, np.complex64), 1.0, lay, cfg)
    with pytest.raises(ValueError, match="does not match"):
        link.decode_image(np.zeros(lay.n_symbols, np.complex64), 1.0, lay, link.LinkConfig(planes=4))
    with pytest.raises(ValueError, match="mode"):
        link.decode_image(np.zeros(lay.n_symbols, np.complex64), 1.0, lay, cfg, mode="soft")


def test_link_config_accepts_exactly_the_header_ranges():
    """LinkConfig, layout and the modules they lean on take their limits from infercom.limits, so every
    LinkConfig fits a frame header and every header's config is a LinkConfig."""
    from infercom import limits, planes, power

    for name in ("bh", "bw", "planes", "design_snr_db", "key_id"):
        lo, hi = limits.FIELD_RANGES[name]
        for v in (lo, hi):
            assert getattr(link.LinkConfig(**{name: v}), name) == v
        for v in (lo - 1, hi + 1, True, float(lo)):
            with pytest.raises(ValueError, match=name):
                link.LinkConfig(**{name: v})
    for name in ("height", "width"):
        lo, hi = limits.FIELD_RANGES[name]
        for v in (lo, hi):
            assert getattr(link.layout(**{"height": 1, "width": 1, name: v}, channels=1, cfg=link.LinkConfig()),
                           name) == v
        for v in (lo - 1, hi + 1):
            with pytest.raises(ValueError, match=name):
                link.layout(**{"height": 1, "width": 1, name: v}, channels=1, cfg=link.LinkConfig())
    for c in (0, 2, 4, True):
        with pytest.raises(ValueError, match="channels"):
            link.layout(4, 4, c, link.LinkConfig())
    # modules outside this table's reach restate it: catch a drift
    assert interleave.MAX_KEY_ID == limits.MAX_KEY_ID
    assert source.MAX_SIDE == limits.MAX_SIDE and source.MAX_BLOCK == limits.MAX_BLOCK
    assert (power.DESIGN_SNR_MIN_DB, power.DESIGN_SNR_MAX_DB) == limits.FIELD_RANGES["design_snr_db"]
    lo, hi = limits.FIELD_RANGES["planes"]
    assert planes.check_planes(lo) == lo and planes.check_planes(hi) == hi
    for v in (lo - 1, hi + 1):
        with pytest.raises(ValueError):
            planes.check_planes(v)


def test_payload_symbol_count_is_layout():
    for h, w, c, bh, bw, m in [(1, 1, 1, 1, 1, 1), (1, 1, 3, 8, 8, 8), (17, 5, 1, 2, 4, 6), (4096, 4095, 3, 3, 7, 2)]:
        lay = link.layout(h, w, c, link.LinkConfig(bh=bh, bw=bw, planes=m))
        assert link.n_payload_symbols(h, w, c, bh, bw, m) == lay.n_symbols == m * math.ceil(lay.n_values / 2)
        assert lay.n_values == math.ceil(h / bh) * math.ceil(w / bw) * c
