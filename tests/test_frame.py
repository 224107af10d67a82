# SPDX-License-Identifier: GPL-3.0-or-later
"""Frame build/parse round trip, segmentation, image frames and reassembly with missing frames."""

from __future__ import annotations

import numpy as np
import pytest

from infercom import frame as F
from infercom import preamble as P
from infercom.header import HEADER_SYMBOLS, FrameHeader, decode_header
from infercom.link import LinkConfig, decode_image, encode_image


def _img(rng, h=61, w=47):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_format_sizes():
    f = F.FrameFormat()
    assert f.frame_len == 32768
    n = f.frame_symbols(32768)
    nd = HEADER_SYMBOLS + 32768
    assert n == 1024 + nd + 16 * (-(-nd // 256))
    dpos, ppos = F.frame_layout(32768, f)
    allpos = np.concatenate([np.arange(1024), dpos, ppos])
    assert np.array_equal(np.sort(allpos), np.arange(n))  # every position used exactly once
    assert ppos[-1] == n - 1  # frame ends with a pilot block
    with pytest.raises(ValueError):
        F.FrameFormat(frame_len_log2=17)
    with pytest.raises(ValueError):
        F.FrameFormat(sps=1)


def test_build_frame_round_trip(rng):
    cfg = LinkConfig(bh=2, bw=2, planes=6)
    img = _img(rng)
    fmt = F.FrameFormat(frame_len_log2=10)
    payload, lay = encode_image(img, cfg)
    frames = F.image_frames(img, cfg, tx_id=3, image_id=9, fmt=fmt)
    assert len(frames) == -(-payload.size // 1024)
    for h, sym in frames:
        assert sym.dtype == np.complex64 and sym.size == fmt.frame_symbols(h.payload_len())
        assert np.array_equal(sym[:1024], P.preamble())
        dpos, ppos = F.frame_layout(h.payload_len(), fmt)
        assert decode_header(sym[dpos[:HEADER_SYMBOLS]], 0.5) == h
        lo = h.frame_idx * 1024
        assert np.array_equal(sym[dpos[HEADER_SYMBOLS:]], payload[lo:lo + h.payload_len()])
        assert np.array_equal(sym[ppos], P.pilot_symbols(ppos.size // 16))
        assert len(sym) * fmt.sps + fmt.span * fmt.sps == fmt.burst_len_samples(h)
    # a subset, in the order given
    sub = F.image_frames(img, cfg, 3, 9, attempt=1, fmt=fmt, frames=[2, 0])
    assert [h.frame_idx for h, _ in sub] == [2, 0] and all(h.attempt == 1 for h, _ in sub)
    with pytest.raises(ValueError):
        F.image_frames(img, cfg, 3, 9, fmt=fmt, frames=[99])


def test_build_frame_rejects_bad_chunks(rng):
    cfg = LinkConfig()
    h = FrameHeader.for_image(cfg, 64, 64, 3, 1, 1, frame_len_log2=10)
    with pytest.raises(ValueError):
        F.build_frame(h, np.zeros(h.payload_len() - 1, np.complex64), F.FrameFormat(frame_len_log2=10))
    with pytest.raises(ValueError):
        F.build_frame(h, np.zeros(h.payload_len(), np.complex64), F.FrameFormat(frame_len_log2=11))
    bad = np.zeros(h.payload_len(), np.complex64)
    bad[3] = np.nan
    with pytest.raises(ValueError):
        F.build_frame(h, bad, F.FrameFormat(frame_len_log2=10))


def test_segment():
    x = np.arange(10)
    s = F.segment(x, 4)
    assert [len(c) for c in s] == [4, 4, 2] and np.array_equal(np.concatenate(s), x)
    with pytest.raises(ValueError):
        F.segment(x, 0)


def test_reassembly_with_missing_frames(rng):
    cfg = LinkConfig(bh=2, bw=2, planes=8, profile="equal")
    img = _img(rng)
    fmt = F.FrameFormat(frame_len_log2=9)
    payload, lay = encode_image(img, cfg)
    frames = F.image_frames(img, cfg, 1, 2, fmt=fmt)
    r = F.Reassembler()
    with pytest.raises(ValueError):
        r.payload()
    lost = {1, len(frames) - 1}
    for h, sym in frames:
        if h.frame_idx in lost:
            continue
        dpos, _ = F.frame_layout(h.payload_len(), fmt)
        r.add(h, sym[dpos[HEADER_SYMBOLS:]], 0.01)
    assert r.missing() == sorted(lost)
    y, nv = r.payload()
    assert y.shape == nv.shape == (payload.size,)
    for i in range(len(frames)):
        sl = slice(i * 512, min((i + 1) * 512, payload.size))
        if i in lost:
            assert np.all(y[sl] == 0) and np.all(np.isinf(nv[sl]))
        else:
            assert np.array_equal(y[sl], payload[sl]) and np.allclose(nv[sl], 0.01)
    # noiseless received frames decode exactly where present
    low = decode_image(y, nv, lay, cfg, mode="hard")
    assert low.shape == (lay.low_h, lay.low_w, 3)
    # a second attempt of frame 0 is MRC-combined: noise variance halves
    h0, s0 = frames[0]
    dpos, _ = F.frame_layout(h0.payload_len(), fmt)
    r.add(h0.replace(attempt=1), s0[dpos[HEADER_SYMBOLS:]], 0.01)
    assert np.allclose(r.payload()[1][:512], 0.005)
    # a frame of another image is refused
    other = F.image_frames(img, cfg, 1, 3, fmt=fmt, frames=[0])[0][0]
    with pytest.raises(ValueError, match="does not belong"):
        r.add(other, np.zeros(other.payload_len(), np.complex64), 1.0)
    with pytest.raises(ValueError):
        r.add(h0, np.zeros(3, np.complex64), 1.0)


def test_frame_format_takes_the_header_range():
    from infercom import limits

    lo, hi = limits.FIELD_RANGES["frame_len_log2"]
    for v in (lo, hi):
        assert F.FrameFormat(frame_len_log2=v).frame_len == 2 ** v
    for v in (lo - 1, hi + 1, True):
        with pytest.raises(ValueError, match="frame_len_log2"):
            F.FrameFormat(frame_len_log2=v)


def test_reassembler_key_covers_every_config_field():
    from infercom.header import CONFIG_FIELDS

    h = FrameHeader(tx_id=1, image_id=2, attempt=0, frame_idx=0, bh=2, bw=2, planes=8, channels=3,
                    profile="importance", design_snr_db=-4, key_id=0, height=8, width=8, frame_len_log2=8)
    assert F._image_key(h) == (1, 2) + tuple(getattr(h, f) for f in CONFIG_FIELDS)
    other = {"bh": 1, "bw": 1, "planes": 4, "channels": 1, "profile": "equal", "design_snr_db": 0, "key_id": 1,
             "height": 9, "width": 7, "frame_len_log2": 9}
    assert set(other) | {"system"} == set(CONFIG_FIELDS)
    for f, v in other.items():
        r = F.Reassembler(h)
        h2 = h.replace(**{f: v})
        with pytest.raises(ValueError, match="does not belong"):
            r.add(h2, np.zeros(h2.payload_len(), np.complex64), 1.0)
