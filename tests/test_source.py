# SPDX-License-Identifier: GPL-3.0-or-later
import numpy as np
import pytest

from infercom import source


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 5, 3), (37, 51, 1), (64, 64, 3), (13, 9)])
@pytest.mark.parametrize("block", [(1, 1), (1, 2), (2, 3), (3, 3), (5, 5), (8, 8)])
def test_numba_matches_numpy_and_sizes(shape, block):
    rng = np.random.default_rng(sum(shape) + block[0] * 9 + block[1])
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    bh, bw = block
    lo = source.lpf_encode(img, bh, bw)
    h, w = -(-shape[0] // bh), -(-shape[1] // bw)
    c = shape[2] if len(shape) == 3 else 1
    assert lo.shape == (h, w, c) and lo.dtype == np.uint8
    np.testing.assert_array_equal(lo, source.lpf_encode_numpy(img, bh, bw))
    up = source.upsample(lo, shape[0], shape[1], bh, bw)
    assert up.shape == (shape[0], shape[1], c) and up.dtype == np.uint8


def test_block_mean_rounding_and_edge_padding():
    img = np.array([[0, 1, 2], [3, 4, 250]], np.uint8)
    lo = source.lpf_encode(img, 2, 2)[:, :, 0]
    # block 0: (0+1+3+4)/4 = 2; block 1 padded by edge replication: (2+2+250+250)/4 = 126
    assert lo.tolist() == [[2, 126]]
    # round half up: (0+1)/2 = 0.5 -> 1
    assert source.lpf_encode(np.array([[0, 1]], np.uint8), 1, 2)[0, 0, 0] == 1


def test_rate_one_is_lossless_and_upsample_identity():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    lo = source.lpf_encode(img, 1, 1)
    np.testing.assert_array_equal(lo, img)
    np.testing.assert_array_equal(source.upsample(lo.astype(np.float32), 17, 23, 1, 1), img)


def test_upsample_constant_and_block_centres():
    lo = np.full((4, 5, 3), 77.0, np.float32)
    np.testing.assert_array_equal(source.upsample(lo, 11, 14, 3, 3), 77)
    # a linear ramp of block means is reproduced at the block centres (interior blocks)
    lo = np.arange(8, dtype=np.float32)[None, :, None].repeat(3, axis=0) * 10
    up = source.upsample(lo, 9, 24, 3, 3)[4, :, 0]
    centres = np.arange(8) * 3 + 1
    np.testing.assert_allclose(up[centres[1:-1]], lo[0, 1:-1, 0], atol=0.5)
    # an image that is constant within each block comes back close after encode + bicubic (smooth input)
    x = np.linspace(0, 1, 60)
    smooth = (127 + 100 * np.sin(2 * np.pi * x)[:, None] * np.cos(2 * np.pi * x)[None, :]).astype(np.uint8)
    rec = source.upsample(source.lpf_encode(smooth, 3, 3), 60, 60, 3, 3)[:, :, 0]
    assert np.mean(np.abs(rec.astype(float) - smooth)) < 2.0


def _count_ops_by_simulation(hgt, wid, ch, bh, bw):
    adds = muls = rounds = 0
    hh, ww = -(-hgt // bh), -(-wid // bw)
    for _ in range(hh * ww * ch):
        terms = bh * bw
        adds += terms - 1
        if terms > 1:
            muls += 1
            rounds += 1
    return adds, muls, rounds


@pytest.mark.parametrize("args", [(512, 768, 3, 3, 3), (7, 5, 1, 2, 3), (10, 10, 3, 1, 1), (9, 9, 3, 8, 8)])
def test_op_count(args):
    oc = source.op_count(*args)
    assert (oc["adds"], oc["muls"], oc["rounds"]) == _count_ops_by_simulation(*args)
    assert oc["total"] == oc["adds"] + oc["muls"] + oc["rounds"]
    h, w, c, bh, bw = args
    assert oc["padded_values"] == -(-h // bh) * bh * -(-w // bw) * bw * c
    if (bh, bw) == (3, 3) and (h, w) == (512, 768):
        assert oc["values"] == 171 * 256 * 3
        assert oc["total"] == 171 * 256 * 3 * 10          # 8 adds + 1 division + 1 rounding per value


def test_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        source.lpf_encode(np.zeros((4, 4), np.float32), 2, 2)
    with pytest.raises(ValueError, match="shape"):
        source.lpf_encode(np.zeros((4, 4, 2), np.uint8), 2, 2)
    with pytest.raises(ValueError, match="outside"):
        source.lpf_encode(np.zeros((0, 4, 3), np.uint8), 2, 2)
    with pytest.raises(ValueError, match="outside"):
        source.lpf_encode(np.zeros((1, 4097), np.uint8), 2, 2)
    with pytest.raises(ValueError, match="bh"):
        source.lpf_encode(np.zeros((4, 4), np.uint8), 0, 2)
    with pytest.raises(ValueError, match="bw"):
        source.lpf_encode(np.zeros((4, 4), np.uint8), 2, 9)
    with pytest.raises(ValueError, match="does not match"):
        source.upsample(np.zeros((3, 3, 3)), 10, 10, 3, 3)
    with pytest.raises(ValueError, match="NaN"):
        source.upsample(np.full((4, 4, 3), np.nan), 10, 10, 3, 3)
    with pytest.raises(ValueError, match="method"):
        source.upsample(np.zeros((4, 4, 3)), 10, 10, 3, 3, method="sinc")
