# SPDX-License-Identifier: GPL-3.0-or-later
"""JPEG source coding of the NR baseline: quality bisection, budget modes, TB-size rule, operation count."""

from __future__ import annotations

import io
import math
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from infercom import imageio, link
from infercom.nr import jpeg, tbs
from infercom.nr.segmentation import segmentable


@pytest.fixture(scope="module")
def bsds(datasets_dir):
    files = sorted((datasets_dir / "bsds500" / "test").glob("*.jpg"))[:3]
    assert len(files) == 3
    return [imageio.load_image(f) for f in files]


def test_rate_table_and_parsing():
    assert tbs.parse_code_rate("1/3") == Fraction(1, 3) and tbs.parse_code_rate(0.5) == Fraction(1, 2)
    assert tbs.parse_code_rate("0.333") == Fraction(1, 3)
    assert len(tbs.RATES) <= 2 ** tbs.RATE_CODE_BITS
    for k, r in enumerate(tbs.RATES):
        assert tbs.rate_code(r) == k and tbs.rate_from_code(k) == r
    for bad in ("0.3", "1/7", "x", "1/0", 1.0):
        with pytest.raises(ValueError):
            tbs.parse_code_rate(bad)
    with pytest.raises(ValueError):
        tbs.rate_from_code(len(tbs.RATES))


@pytest.mark.parametrize("R", ["1/5", "1/3", "1/2", "3/4"])
@pytest.mark.parametrize("G", [600, 44384, 413456, 1050624])
def test_tbs_rule_is_the_largest_fitting_size(G, R):
    Rf = tbs.parse_code_rate(R)
    A = tbs.tbs_for_coded_bits(G, R)
    cap = math.floor(Rf * G)
    assert A % 8 == 0 and segmentable(A, float(Rf))
    assert tbs.cb_payload_bits(A, Rf) <= cap
    # no larger multiple of 8 fits (every one up to the cap checked)
    for a in range(A + 8, cap + 1, 8):
        bp = tbs.cb_payload_bits(a, Rf)
        assert bp is None or bp > cap
    p = tbs.tb_for_coded_bits(G, R)
    assert p.A == A and p.G == G and sum(p.E) == G           # every attempt sends exactly G coded bits
    # inverse: the smallest G for this A gives A back, and 2 bits less gives a smaller TB
    g = tbs.coded_bits_for_tbs(A, R)
    assert g <= G and tbs.tbs_for_coded_bits(g, R) == A
    assert tbs.tbs_for_coded_bits(g - 2, R) < A


def test_tbs_rule_rejects_tiny_and_odd():
    with pytest.raises(ValueError):
        tbs.tbs_for_coded_bits(20, "1/3")
    with pytest.raises(ValueError):
        tbs.tbs_for_coded_bits(1001, "1/3")
    with pytest.raises(ValueError):
        tbs.coded_bits_for_tbs(12, "1/3")


@pytest.mark.parametrize("mode", jpeg.BUDGET_MODES)
def test_quality_is_the_largest_that_fits(bsds, mode):
    for img in bsds:
        H, W, C = img.shape
        b = jpeg.image_budget(H, W, C, mode, "1/3", 3, 3, 8)
        fit = jpeg.fit_quality(img, b.bits)
        assert jpeg.Q_MIN <= fit.quality <= jpeg.Q_MAX
        assert fit.data == jpeg.encode_jpeg(img, fit.quality)       # deterministic encoder
        assert 8 * len(fit.data) <= b.bits
        if fit.quality < jpeg.Q_MAX:                                # one quality step more overshoots
            assert 8 * len(jpeg.encode_jpeg(img, fit.quality + 1)) > b.bits
        assert fit.trials <= 9
    # a budget between two qualities' sizes picks the lower one
    img = bsds[0]
    s40, s41 = (8 * len(jpeg.encode_jpeg(img, q)) for q in (40, 41))
    assert s40 < s41
    assert jpeg.fit_quality(img, s41 - 1).quality == 40 and jpeg.fit_quality(img, s41).quality == 41


def test_budget_modes(bsds):
    img = bsds[0]
    H, W, C = img.shape
    for bh, bw, planes in ((3, 3, 8), (2, 2, 6)):
        lay = link.layout(H, W, C, link.LinkConfig(bh, bw, planes))
        b = jpeg.image_budget(H, W, C, "channel-uses", "1/3", bh, bw, planes)
        assert b.n_symbols == lay.n_symbols == b.infercom_symbols and b.tb.G == 2 * lay.n_symbols
        assert b.bits == b.tb.A == tbs.tbs_for_coded_bits(2 * lay.n_symbols, "1/3")
        s = jpeg.image_budget(H, W, C, "source-rate", "1/3", bh, bw, planes)
        src = 8 * H * W * C // (bh * bw)
        assert s.source_bits == src and src - 8 * 40 < s.bits <= src   # within a few bytes of 1/(bh bw)
        assert s.tb.A == tbs.tbs_for_coded_bits(s.tb.G, "1/3")          # the receiver's rule recovers A
        assert s.n_symbols == s.tb.G // 2 and sum(s.tb.E) == s.tb.G
        assert tbs.tbs_for_coded_bits(s.tb.G - 2, "1/3") < s.bits        # G is the smallest for this A
    with pytest.raises(ValueError):
        jpeg.image_budget(H, W, C, "bits", "1/3")


def test_too_small_budget_raises(bsds):
    img = bsds[0]
    q1 = 8 * len(jpeg.encode_jpeg(img, 1))
    assert jpeg.fit_quality(img, q1).quality == 1
    with pytest.raises(ValueError, match="too small for any JPEG"):
        jpeg.fit_quality(img, q1 - 1)
    tiny = img[:40, :40]
    with pytest.raises(ValueError, match="too small for any JPEG"):
        from infercom.nr.harq import NrImageTx
        NrImageTx(tiny, "channel-uses", "1/3", 5, 5, 8)


def test_encode_decode_and_bad_input(bsds):
    img = bsds[1]
    d = jpeg.encode_jpeg(img, 75)
    assert d[:2] == b"\xff\xd8" and d[-2:] == b"\xff\xd9"
    out = jpeg.decode_jpeg(d)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert 10 * np.log10(255 ** 2 / np.mean((out.astype(float) - img) ** 2)) > 28
    grey = img[:, :, 0]
    g = jpeg.decode_jpeg(jpeg.encode_jpeg(grey, 50))
    assert g.shape == grey.shape + (1,)
    for q in (0, 96, 50.0):
        with pytest.raises(ValueError):
            jpeg.encode_jpeg(img, q)
    with pytest.raises(ValueError):
        jpeg.decode_jpeg(b"not a jpeg")
    with pytest.raises(ValueError):
        jpeg.decode_jpeg(d[: len(d) // 3])


def test_coefficient_model_matches_libjpeg(bsds):
    # the model's quantised luma coefficients, dequantised and inverse-transformed, reproduce libjpeg's own
    # decoded Y plane (decoded without colour conversion) to a fraction of a grey level
    img = bsds[2]
    H, W = img.shape[:2]
    hp, wp = -(-H // 16) * 16, -(-W // 16) * 16
    D = jpeg.dct_matrix()

    def luma(q_model, q_file):
        y_q = jpeg.quantised_coefficients(img, jpeg.encode_jpeg(img, q_model))[0]
        with Image.open(io.BytesIO(jpeg.encode_jpeg(img, q_file))) as im:
            im.draft("YCbCr", None)
            y_lib = np.asarray(im, float)[:, :, 0]
        with Image.open(io.BytesIO(jpeg.encode_jpeg(img, q_model))) as im:
            qt = np.asarray(im.quantization[0], float).reshape(8, 8)
        nat = np.empty_like(y_q)
        nat[:, jpeg.ZIGZAG] = y_q
        blk = D.T @ (nat.reshape(-1, 8, 8) * qt) @ D + 128
        y = blk.reshape(hp // 8, wp // 8, 8, 8).swapaxes(1, 2).reshape(hp, wp)[:H, :W]
        return np.abs(np.clip(np.rint(y), 0, 255) - y_lib)

    for q in (20, 75):
        diff = luma(q, q)
        assert diff.mean() < 0.3 and np.mean(diff > 2) < 0.03, (q, diff.mean(), np.mean(diff > 2))
    wrong = luma(75, 20)                                     # control: another quality's coefficients
    assert wrong.mean() > 1.0 and np.mean(wrong > 2) > 0.1


def test_zigzag():
    assert jpeg.ZIGZAG[:10].tolist() == [0, 1, 8, 16, 9, 2, 3, 10, 17, 24]
    assert sorted(jpeg.ZIGZAG.tolist()) == list(range(64)) and jpeg.ZIGZAG[-1] == 63


def _entropy_reference(zz):
    """libjpeg's encode_one_block loop, written out: (non-zero AC, ZRL, EOB) counts."""
    nz = zrl = eob = 0
    for blk in zz:
        r = 0
        for k in range(1, 64):
            if blk[k] == 0:
                r += 1
            else:
                while r > 15:
                    zrl += 1
                    r -= 16
                nz += 1
                r = 0
        eob += r > 0
    return nz, zrl, eob


def test_op_count_formula(bsds):
    img = bsds[0][:320, :480]                  # multiples of 16: every block is a real block
    H, W, _ = img.shape
    d = jpeg.encode_jpeg(img, 60)
    ops = jpeg.jpeg_op_count(img, d)
    nb = H * W // 64 + 2 * (H // 16) * (W // 16)
    assert ops["blocks"] == nb
    assert ops["colour"] == 20 * H * W
    assert ops["downsample"] == 5 * 2 * (H // 2) * (W // 2)
    assert ops["dct"] == 16 * (5 + 29) * nb and ops["quant"] == 128 * nb and ops["level_shift"] == 64 * nb
    assert ops["zigzag"] == 0
    zz = np.concatenate(jpeg.quantised_coefficients(img, d))
    nz, zrl, eob = _entropy_reference(zz)
    assert (ops["nonzero_ac"], ops["zrl"], ops["eob"]) == (nz, zrl, eob)
    assert ops["coded_coefficients"] == nb + nz
    assert ops["entropy"] == nb + 63 * nb + (63 * nb - nz) + 8 * (nb + nz) + 3 * zrl + 2 * eob
    assert ops["total"] == sum(ops[k] for k in ("colour", "downsample", "level_shift", "dct", "quant",
                                                "zigzag", "entropy"))
    assert ops["total"] == ops["muls"] + ops["adds"] + ops["rounds"] + ops["entropy"]
    # other DCT algorithms cost more, quality raises only the entropy part, grey skips colour
    islow = jpeg.jpeg_op_count(img, d, dct="islow")
    assert islow["dct"] - ops["dct"] == 16 * (7 + 3) * nb
    hi = jpeg.jpeg_op_count(img, jpeg.encode_jpeg(img, 90))
    assert hi["entropy"] > ops["entropy"] and hi["dct"] == ops["dct"]
    g = jpeg.jpeg_op_count(img[:, :, :1], jpeg.encode_jpeg(img[:, :, :1], 60))
    assert g["colour"] == g["downsample"] == 0 and g["blocks"] == H * W // 64
    with pytest.raises(ValueError):
        jpeg.jpeg_op_count(img, d, dct="fft")
    # edge replication: a ragged size counts the MCU-padded blocks
    H0, W0, _ = bsds[0].shape
    assert H0 % 16 and W0 % 16
    r = jpeg.jpeg_op_count(bsds[0], jpeg.encode_jpeg(bsds[0], 60))
    assert r["blocks"] == 6 * math.ceil(H0 / 16) * math.ceil(W0 / 16)
