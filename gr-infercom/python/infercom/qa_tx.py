# SPDX-License-Identifier: GPL-3.0-or-later
"""qa for the infercom_tx hier block: it produces exactly the samples and burst tags of tx_controller ->
frame_modulator wired separately (and those are the RRC-shaped frames of infercom.frame.image_frames); every
parameter reaches its sub-block; 1 sample/symbol (no shaping) and bad values are rejected."""

import time

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio.infercom import frame_modulator, tx, tx_controller
from infercom.channel import pulse_shape, rrc_taps
from infercom.frame import FrameFormat, image_frames
from infercom.link import LinkConfig

KW = dict(tx_id=9, bh=2, bw=2, planes=7, profile="importance", design_snr_db=2, frame_len_log2=9,
          use_feedback=False, blind_attempts=2)
MOD = dict(sps=2, beta=0.35, span=8, gap_min=0, gap_max=0, continuous=False, tail_symbols=0, seed=4)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    from PIL import Image

    d = tmp_path_factory.mktemp("tx_images")
    img = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(img).save(d / "a.png")
    return d, img


def _run(build, timeout=30.0):
    """Run a TX graph in burst mode (no idle output) until every frame left the modulator; return the samples,
    the tags (offset, key, value) and the controller."""
    tb = gr.top_block()
    ctl, mod, out = build(tb)
    sink = blocks.vector_sink_c()
    tb.connect(out, sink)
    tb.start()
    try:
        assert ctl.finished.wait(timeout), dict(ctl.counters)
        t0 = time.monotonic()
        # until every burst's tx_eob reached the sink (the modulator's own counters run ahead of the scheduler)
        while time.monotonic() - t0 < timeout and sum(pmt.symbol_to_string(t.key) == "tx_eob"
                                                      for t in sink.tags()) < ctl.counters["frames"]:
            time.sleep(0.01)
    finally:
        tb.stop()
        tb.wait()
    tags = [(t.offset, pmt.symbol_to_string(t.key), pmt.write_string(t.value)) for t in sink.tags()]
    return np.asarray(sink.data(), np.complex64), sorted(tags), ctl


def test_hier_block_equals_the_separately_wired_blocks(image):
    folder, img = image

    def hier(tb):
        t = tx(images=str(folder), **KW, **MOD)
        return t.ctl, t.mod, t

    def separate(tb):
        ctl = tx_controller(images=str(folder), **KW)
        mod = frame_modulator(**MOD)
        tb.msg_connect(ctl, "frames", mod, "in")
        tb.msg_connect(mod, "sent", ctl, "sent")
        return ctl, mod, mod

    x_hier, tags_hier, ctl = _run(hier)
    x_sep, tags_sep, _ = _run(separate)
    n_frames = ctl.counters["frames"]
    assert n_frames >= 4 and [r["outcome"] for r in ctl.records] == ["sent"]
    assert x_hier.size == x_sep.size and np.array_equal(x_hier, x_sep)
    assert tags_hier == tags_sep
    assert sum(k == "tx_sob" for _, k, _ in tags_hier) == n_frames == sum(k == "tx_eob" for _, k, _ in tags_hier)
    # ... and the samples are the frames of the image, attempt 0 then 1, each shaped by the RRC
    cfg = LinkConfig(KW["bh"], KW["bw"], KW["planes"], KW["profile"], KW["design_snr_db"])
    fmt = FrameFormat(frame_len_log2=KW["frame_len_log2"])
    taps = rrc_taps(MOD["sps"], MOD["beta"], MOD["span"])
    ref = np.concatenate([pulse_shape(sym, MOD["sps"], taps) for a in range(KW["blind_attempts"])
                          for _, sym in image_frames(img, cfg, KW["tx_id"], 0, attempt=a, fmt=fmt)])
    assert x_hier.size == ref.size and np.allclose(x_hier, ref, atol=1e-6)


def test_parameters_reach_the_sub_blocks(image):
    folder, _ = image
    t = tx(images=str(folder), tx_id=7, bh=2, bw=4, planes=6, profile="equal", design_snr_db=3, key_id=0,
           frame_len_log2=10, use_feedback=False, blind_attempts=3, max_attempts=5, timeout_s=2.5, window=2,
           max_in_flight=16, first_image_id=5, max_images=1, sps=4, beta=0.25, span=6, gap_min=10, gap_max=20,
           continuous=False, tail_symbols=2, max_queue=99, seed=11)
    c, m = t.ctl, t.mod
    assert (c.tx_id, c.frame_len_log2, c.use_feedback, c.blind_attempts) == (7, 10, False, 3)
    assert c.link_cfg == LinkConfig(bh=2, bw=4, planes=6, profile="equal", design_snr_db=3, key_id=0)
    assert (c.arq_cfg.max_attempts, c.arq_cfg.timeout_s, c.window, c.max_in_flight) == (5, 2.5, 2, 16)
    assert (c.first_image_id, len(c.images), c.system) == (5, 1, "infercom")
    assert (m.sps, m.gap_min, m.gap_max, m.continuous, m.tail, m.max_queue) == (4, 10, 20, False, 2, 99)
    assert np.array_equal(m.taps, rrc_taps(4, 0.25, 6))
    assert m.rng.integers(0, 1 << 30) == np.random.default_rng(11).integers(0, 1 << 30)
    assert t.finished is c.finished
    nr = tx(images=str(folder), system="nr", nr_code_rate="1/2", nr_harq="chase", nr_budget="source-rate")
    assert nr.ctl.system == "nr"
    assert nr.ctl.nr == {"code_rate": "1/2", "harq": "chase", "budget_mode": "source-rate"}
    assert nr.mod.sps == 2 and nr.mod.tail == 0            # the hier block's defaults: shaped at sps 2, no tail


def test_bad_parameters_are_rejected(image):
    folder, _ = image
    with pytest.raises(ValueError, match="sps"):
        tx(images=str(folder), sps=1)                       # no shaping: wire the two blocks separately
    with pytest.raises(ValueError, match="tx_id"):
        tx(images=str(folder), tx_id=300)
    with pytest.raises(ValueError):
        tx(images=str(folder), gap_min=10, gap_max=5)
