# SPDX-License-Identifier: GPL-3.0-or-later
"""qa for block_fading: coefficient held per burst / per image, switches exactly at the tags, reports SNR."""

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio.infercom import block_fading
from gnuradio.infercom.tags import FRAME_TAG, SOB_TAG, frame_key_pmt


def _tag(offset, key, value):
    t = gr.tag_t()
    t.offset = offset
    t.key = pmt.intern(key)
    t.value = value
    return t


def _run(mode, bursts, seed=3, snr_db=5.0):
    """bursts: list of (start, image_id); all-ones input of 1000 items."""
    tags = []
    for start, image_id in bursts:
        tags.append(_tag(start, SOB_TAG, pmt.PMT_T))
        tags.append(_tag(start, FRAME_TAG, frame_key_pmt({"tx_id": 1, "image_id": image_id, "attempt": 0,
                                                          "frame_idx": start})))
    tb = gr.top_block()
    src = blocks.vector_source_c(np.ones(1000, np.complex64).tolist(), False, 1, tags)
    fade = block_fading(mode, snr_db, seed)
    snk = blocks.vector_sink_c()
    dbg = blocks.message_debug()
    tb.connect(src, fade, snk)
    tb.msg_connect(fade, "snr", dbg, "store")
    tb.run()
    reports = [pmt.to_python(dbg.get_message(i)) for i in range(dbg.num_messages())]
    return np.asarray(snk.data(), np.complex64), reports, fade


def test_frame_mode_switches_exactly_at_sob():
    y, reports, _ = _run("frame", [(100, 0), (400, 0), (700, 1)])
    segments = [y[0:100], y[100:400], y[400:700], y[700:]]
    for s in segments:
        assert np.allclose(s, s[0])  # constant within a block
    values = [s[0] for s in segments]
    assert len({complex(v) for v in values}) == 4  # a new coefficient at every burst
    assert len(reports) == 3
    for rep, v in zip(reports, values[1:]):
        assert rep["h_re"] == pytest.approx(v.real, rel=1e-5)
        assert rep["snr_db"] == pytest.approx(5.0 + 20 * np.log10(abs(v)), abs=1e-4)
        assert rep["image_id"] in (0, 1)


def test_image_mode_holds_over_frames_of_one_image():
    y, reports, _ = _run("image", [(100, 7), (400, 7), (700, 8)])
    assert np.allclose(y[100:700], y[100])  # two frames of image 7 share one coefficient
    assert not np.isclose(y[700], y[100])
    assert [r["image_id"] for r in reports] == [7, 8]


def test_seeded_and_rayleigh_statistics():
    a, _, _ = _run("frame", [(i, 0) for i in range(0, 1000, 2)], seed=11)
    b, _, _ = _run("frame", [(i, 0) for i in range(0, 1000, 2)], seed=11)
    assert np.array_equal(a, b)
    h = a[::2]
    # E|h|^2 = 1 (500 samples: standard error 0.045) and |h|^2 exponential: P(|h|^2 < 0.1) = 0.095
    assert np.mean(np.abs(h) ** 2) == pytest.approx(1.0, abs=0.2)
    assert np.mean(np.abs(h) ** 2 < 0.1) == pytest.approx(1 - np.exp(-0.1), abs=0.05)


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="mode"):
        block_fading("sample", 0.0, 0)
    with pytest.raises(ValueError, match="snr_db"):
        block_fading("frame", float("nan"), 0)


def test_wrong_tags_and_nan_input_do_not_crash():
    tags = [_tag(10, FRAME_TAG, pmt.intern("not a dict")), _tag(20, SOB_TAG, pmt.PMT_T),
            _tag(30, FRAME_TAG, pmt.to_pmt({"tx_id": "x"}))]
    x = np.ones(100, np.complex64)
    x[50] = np.nan
    tb = gr.top_block()
    src = blocks.vector_source_c(x.tolist(), False, 1, tags)
    fade = block_fading("image", 0.0, 1)
    snk = blocks.vector_sink_c()
    tb.connect(src, fade, snk)
    tb.run()
    y = np.asarray(snk.data())
    assert y.size == 100 and fade.bad_chunks >= 1 and np.all(np.isfinite(y))
