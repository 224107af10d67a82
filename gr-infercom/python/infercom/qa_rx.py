# SPDX-License-Identifier: GPL-3.0-or-later
"""qa for the infercom_rx hier block: on the stream of the infercom_tx hier block (2 attempts, AWGN, CFO,
fractional timing) it gives the same frames, headers, soft symbols and Chase combinations as matched filter ->
burst_sync -> frame_demod -> chase_combiner wired separately, and those are the transmitted frames; its
feedback input releases the Chase combiner; every parameter reaches its sub-block; bad ones are rejected."""

import time

import numpy as np
import pmt
import pytest
from gnuradio import blocks, filter, gr

from gnuradio.infercom import burst_sync, chase_combiner, frame_demod, rx, tx
from gnuradio.infercom.tags import feedback_to_pmt, meta_to_header, parse_pdu
from infercom.channel import apply_cfo, awgn, fractional_delay, rrc_taps
from infercom.frame import FrameFormat, image_frames
from infercom.link import LinkConfig
from infercom.protocol import Feedback

LOG2 = 10
TX_ID = 6
SNR_DB = 6.0


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    """IQ samples of one image sent twice (blind attempts) by the infercom_tx hier block (in burst mode, then
    random gaps put between its bursts at their tx_sob tags), through CFO, a fractional delay and AWGN; returns
    (samples, sent headers in order, payload symbols)."""
    from PIL import Image

    from infercom.link import encode_image

    d = tmp_path_factory.mktemp("rx_images")
    img = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(img).save(d / "a.png")
    tb = gr.top_block()
    t = tx(images=str(d), tx_id=TX_ID, design_snr_db=int(SNR_DB), frame_len_log2=LOG2, use_feedback=False,
           blind_attempts=2, sps=2, continuous=False)
    sink = blocks.vector_sink_c()
    tb.connect(t, sink)
    tb.start()
    try:
        assert t.finished.wait(30)
        t0 = time.monotonic()
        # every burst in the sink: its tx_eob tag arrived (the modulator counts a frame out before the scheduler
        # has passed its last samples on, so its own counters can run ahead of the sink under load)
        while time.monotonic() - t0 < 30 and sum(pmt.symbol_to_string(tg.key) == "tx_eob"
                                                 for tg in sink.tags()) < t.ctl.counters["frames"]:
            time.sleep(0.01)
    finally:
        tb.stop()
        tb.wait()
    bursts = np.asarray(sink.data(), np.complex64)
    starts = sorted(tg.offset for tg in sink.tags() if pmt.symbol_to_string(tg.key) == "tx_sob") + [bursts.size]
    rng = np.random.default_rng(9)
    pieces = []
    for a, b in zip(starts, starts[1:]):
        pieces += [np.zeros(2 * int(rng.integers(100, 800)), np.complex64), bursts[a:b]]
    x = np.concatenate(pieces + [np.zeros(100000, np.complex64)])
    x = awgn(fractional_delay(apply_cfo(x, 0.004, phase0=1.0), 3.3), SNR_DB, rng)
    cfg = LinkConfig(3, 3, 8, "importance", int(SNR_DB))
    fmt = FrameFormat(frame_len_log2=LOG2)
    sent = [h for a in range(2) for h, _ in image_frames(img, cfg, TX_ID, 0, attempt=a, fmt=fmt)]
    assert len(starts) - 1 == len(sent)
    return x.astype(np.complex64), sent, encode_image(img, cfg)[0]


def _run(samples, build, n_expected, timeout=60.0):
    """Feed ``samples`` to the receiver ``build(tb, src)`` makes; collect its per-attempt and combined PDUs."""
    tb = gr.top_block()
    src = blocks.vector_source_c(samples, False)
    frames, combined = blocks.message_debug(), blocks.message_debug()
    (frames_port, combined_port) = build(tb, src)
    tb.msg_connect(*frames_port, frames, "store")
    tb.msg_connect(*combined_port, combined, "store")
    tb.start()
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout and (frames.num_messages() < n_expected
                                                   or combined.num_messages() < n_expected):
            time.sleep(0.02)
        time.sleep(0.1)     # nothing more may come
    finally:
        tb.stop()
        tb.wait()
    return ([parse_pdu(frames.get_message(i), np.complex64) for i in range(frames.num_messages())],
            [parse_pdu(combined.get_message(i), np.complex64) for i in range(combined.num_messages())])


def test_hier_block_equals_the_separately_wired_chain(stream):
    x, sent, payload = stream
    n = len(sent)
    blocks_of = {}

    def hier(tb, src):
        r = rx(sps=2, beta=0.35, span=8, max_frame_len_log2=LOG2, max_frames=64, timeout_s=60.0)
        blocks_of["hier"] = r
        tb.connect(src, r)
        return (r, "frames"), (r, "combined")

    def separate(tb, src):
        mf = filter.fft_filter_ccf(1, rrc_taps(2, 0.35, 8).tolist())
        sync = burst_sync(sps=2, beta=0.35, span=8, prefiltered=True, max_frame_len_log2=LOG2)
        demod = frame_demod(sps=2, beta=0.35, span=8)
        chase = chase_combiner(max_frames=64, timeout_s=60.0)
        blocks_of["separate"] = (mf, sync, demod, chase)    # Python blocks must stay referenced while running
        tb.connect(src, mf, sync)
        tb.msg_connect(sync, "bursts", demod, "in")
        tb.msg_connect(demod, "out", chase, "in")
        return (demod, "out"), (chase, "out")

    f_hier, c_hier = _run(x, hier, n)
    f_sep, c_sep = _run(x, separate, n)
    r = blocks_of["hier"]
    assert r.settled() and r.counters()["samples"] > x.size - 100000 and r.link is None
    # every frame of both attempts detected, its header right, in order -- by both receivers
    assert [meta_to_header(m) for m, _ in f_hier] == sent == [meta_to_header(m) for m, _ in f_sep]
    assert r.counters()["demod"].get("header_fail", 0) == 0
    fl = 1 << LOG2
    for (m_h, y_h), (m_s, y_s) in zip(f_hier + c_hier, f_sep + c_sep):
        assert meta_to_header(m_h) == meta_to_header(m_s)
        assert y_h.size == y_s.size and np.allclose(y_h, y_s, atol=1e-4), np.max(np.abs(y_h - y_s))
        assert m_h["snr_db"] == pytest.approx(m_s["snr_db"], abs=1e-3)
        assert m_h.get("chase_attempts") == m_s.get("chase_attempts")
    # the second attempt's combination is the MRC of both (about 3 dB better than the first alone)
    mse = {}
    for m, y in c_hier:
        h = meta_to_header(m)
        ref = payload[h.frame_idx * fl: h.frame_idx * fl + y.size]
        mse.setdefault(m["chase_attempts"], []).append(np.mean(np.abs(y - ref) ** 2))
    gain_db = 10 * np.log10(np.mean(mse[1]) / np.mean(mse[2]))
    assert gain_db == pytest.approx(3.0, abs=0.5)


class _endless(gr.sync_block):
    """``samples``, then zeros for ever: the stream keeps flowing (a finished stream ends the message blocks)."""

    def __init__(self, samples):
        gr.sync_block.__init__(self, name="qa_endless", in_sig=None, out_sig=[np.complex64])
        self.x, self.pos = samples, 0

    def work(self, input_items, output_items):
        out = output_items[0]
        k = min(len(out), self.x.size - self.pos)
        out[:k] = self.x[self.pos: self.pos + k]
        out[k:] = 0
        self.pos += k
        if k == 0:
            time.sleep(0.001)
        return len(out)


class _inject(gr.basic_block):
    """Publishes messages on demand (the test thread calls ``send``)."""

    def __init__(self):
        gr.basic_block.__init__(self, name="qa_inject", in_sig=None, out_sig=None)
        self.message_port_register_out(pmt.intern("out"))

    def send(self, msg):
        self.message_port_pub(pmt.intern("out"), msg)


def test_feedback_input_releases_the_chase_combiner(stream):
    x, sent, _ = stream
    tb = gr.top_block()
    r = rx(max_frame_len_log2=LOG2)
    inj = _inject()
    src = _endless(x)              # keep the Python block referenced while the flowgraph runs
    tb.connect(src, r)
    tb.msg_connect(inj, "out", r, "feedback")
    tb.start()
    try:
        t0 = time.monotonic()
        while r.chase.counters["combined"] < len(sent) and time.monotonic() - t0 < 60:
            time.sleep(0.02)
        assert r.chase.held_frames() == len(sent) // 2        # both attempts of every frame, combined
        inj.send(feedback_to_pmt(Feedback(tx_id=TX_ID, image_id=0, attempt=1, decision="ACK")))
        t0 = time.monotonic()
        while r.chase.held_frames() and time.monotonic() - t0 < 10:
            time.sleep(0.02)
    finally:
        tb.stop()
        tb.wait()
    assert r.chase.held_frames() == 0 and r.chase.counters["flushed"] == len(sent) // 2


def _scalars(blk) -> dict:
    """A block's public scalar attributes (its configuration, whatever its internals are named)."""
    return {k: v for k, v in vars(blk).items() if not k.startswith("_") and type(v) in (int, float, str, bool)}


def test_parameters_reach_the_sub_blocks():
    kw = dict(sps=4, beta=0.25, span=6)
    r = rx(**kw, max_frame_len_log2=12, t1=0.0, t2=0.0, max_pending=5, max_frames=10, timeout_s=3.0)
    assert np.allclose(r.mf.taps(), rrc_taps(4, 0.25, 6))
    # each sub-block is configured as the same block made with the same keyword arguments (and not the default)
    sync = burst_sync(**kw, prefiltered=True, max_frame_len_log2=12, t1=0.0, t2=0.0, max_pending=5)
    assert _scalars(r.sync) == _scalars(sync) != _scalars(burst_sync())
    assert r.sync.window == sync.window != burst_sync(**kw).window     # the window follows max_frame_len_log2
    assert _scalars(r.demod) == _scalars(frame_demod(**kw)) != _scalars(frame_demod())
    assert _scalars(r.chase) == _scalars(chase_combiner(max_frames=10, timeout_s=3.0)) != _scalars(chase_combiner())
    assert (r.chase.max_frames, r.chase.timeout_s) == (10, 3.0)
    assert r.link is None and "server_link" not in r.counters()
    s = rx(server_addr="tcp://127.0.0.1:7100", tx_ids=[3, 4], hwm=7)
    assert (s.link.server_addr, s.link.feedback_addr, s.link.tx_ids, s.link.hwm) == \
        ("tcp://127.0.0.1:7100", "tcp://127.0.0.1:7101", [3, 4], 7)
    assert s.link.curve is None and s.counters()["server_link"] == {}
    assert rx(server_addr="tcp://127.0.0.1:7100", feedback_addr="tcp://127.0.0.1:7200").link.feedback_addr == \
        "tcp://127.0.0.1:7200"


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="server_addr"):
        rx(feedback_addr="tcp://127.0.0.1:7200")               # a feedback link without the server link
    with pytest.raises(ValueError):
        rx(max_frame_len_log2=20)
    with pytest.raises(ValueError):
        rx(max_frames=0)
    with pytest.raises(ValueError):
        rx(server_addr="tcp://127.0.0.1:7100", tx_ids=[256])
