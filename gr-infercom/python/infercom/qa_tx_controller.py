# SPDX-License-Identifier: GPL-3.0-or-later
"""qa for tx_controller: frames are exactly infercom.frame's, flow control holds, the ARQ reacts to feedback
(chase, selective, ACK) and to silence (timeout), and every image ends with a record."""

import time

import numpy as np
import pmt
from gnuradio import blocks, gr

from gnuradio.infercom import tx_controller
from gnuradio.infercom.tags import feedback_to_pmt, meta_to_header, parse_pdu
from infercom.frame import FrameFormat, image_frames
from infercom.link import LinkConfig
from infercom.protocol import Feedback


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (24, 40, 3), dtype=np.uint8) for _ in range(n)]


def _collect(dbg):
    return [parse_pdu(dbg.get_message(i), np.complex64) for i in range(dbg.num_messages())]


def _wait(cond, timeout=10.0):
    t0 = time.monotonic()
    while not cond() and time.monotonic() - t0 < timeout:
        time.sleep(0.01)
    return cond()


def test_blind_attempts_match_library_frames():
    imgs = _images(2)
    tb = gr.top_block()
    ctl = tx_controller(imgs, 7, 3, 3, 8, "importance", -4, 0, 10, False, 2, 4, 5.0, 1, 0, 100, 0)
    dbg = blocks.message_debug()
    tb.msg_connect(ctl, "frames", dbg, "store")
    cfg = LinkConfig(3, 3, 8, "importance", -4, 0)
    fmt = FrameFormat(frame_len_log2=10)
    expected = []
    for k, img in enumerate(imgs):
        for a in range(2):
            expected += image_frames(img, cfg, 7, 100 + k, attempt=a, fmt=fmt)
    tb.start()
    assert _wait(ctl.finished.is_set)
    assert _wait(lambda: dbg.num_messages() >= len(expected))   # the debug block's queue drains
    tb.stop()
    tb.wait()
    got = _collect(dbg)
    assert len(got) == len(expected) > 2
    for (meta, sym), (h, ref) in zip(got, expected):
        assert meta_to_header(meta) == h
        assert np.array_equal(sym, ref)
    assert [r["outcome"] for r in ctl.records] == ["sent", "sent"]


def test_flow_control_limits_frames_in_flight():
    imgs = _images(1)
    ctl = tx_controller(imgs, 1, 2, 2, 8, "equal", 0, 0, 8, False, 1, 4, 5.0, 1, 2, 0, 0)
    tb = gr.top_block()
    dbg = blocks.message_debug()
    tb.msg_connect(ctl, "frames", dbg, "store")
    tb.start()
    time.sleep(0.5)
    assert dbg.num_messages() == 2            # nobody reports frames sent: at most max_in_flight published
    for i in range(2):                         # the modulator's reports release two more
        ctl._on_sent(pmt.to_pmt({"tx_id": 1, "image_id": 0, "attempt": 0, "frame_idx": i, "offset": 0}))
    assert _wait(lambda: dbg.num_messages() == 4)
    tb.stop()
    tb.wait()


def test_arq_chase_selective_ack_and_timeout():
    imgs = _images(2, seed=1)
    ctl = tx_controller(imgs, 5, 3, 3, 8, "importance", -4, 0, 9, True, 1, 4, 0.3, 1, 0, 0, 0)
    tb = gr.top_block()
    dbg = blocks.message_debug()
    st = blocks.message_debug()
    tb.msg_connect(ctl, "frames", dbg, "store")
    tb.msg_connect(ctl, "status", st, "store")
    tb.start()
    n0 = len(image_frames(imgs[0], LinkConfig(3, 3, 8, "importance", -4, 0), 5, 0, fmt=FrameFormat(9)))
    assert n0 >= 3
    assert _wait(lambda: dbg.num_messages() == n0)
    ctl._on_feedback(feedback_to_pmt(Feedback(5, 0, 0, "NACK", mode="chase", next_attempt=1)))
    assert _wait(lambda: dbg.num_messages() == 2 * n0)
    ctl._on_feedback(feedback_to_pmt(Feedback(5, 0, 1, "NACK", mode="selective", frames=(0, 2), next_attempt=2)))
    assert _wait(lambda: dbg.num_messages() == 2 * n0 + 2)
    ctl._on_feedback(feedback_to_pmt(Feedback(9, 0, 2, "ACK")))       # another transmitter's: ignored
    ctl._on_feedback(feedback_to_pmt(Feedback(5, 0, 2, "ACK")))
    # image 1 starts; no feedback: a timeout resends it as attempt 1, then ACK
    assert _wait(lambda: any(meta["image_id"] == 1 and meta["attempt"] == 1 for meta, _ in _collect(dbg)))
    ctl._on_feedback(feedback_to_pmt(Feedback(5, 1, 1, "ACK")))
    assert _wait(ctl.finished.is_set)

    def status_events():
        return [pmt.to_python(st.get_message(i))["event"] for i in range(st.num_messages())]
    # status messages reach message_debug through the scheduler's queue: wait for delivery before stopping
    assert _wait(lambda: "finished" in status_events())
    tb.stop()
    tb.wait()
    msgs = _collect(dbg)
    sel = [(m["attempt"], m["frame_idx"]) for m, _ in msgs if m["image_id"] == 0 and m["attempt"] == 2]
    assert sel == [(2, 0), (2, 2)]
    assert [r["outcome"] for r in ctl.records] == ["ACK", "ACK"]
    assert ctl.records[1]["attempts"][0]["timed_out"]
    assert ctl.counters["other_tx_feedback"] == 1
    events = status_events()
    assert events.count("done") == 2 and events[-1] == "finished"


def test_bad_input():
    import pytest

    with pytest.raises(ValueError):
        tx_controller("/nonexistent/folder")
    with pytest.raises(ValueError):
        tx_controller(_images(1), tx_id=300)
    ctl = tx_controller(_images(1))
    ctl._on_feedback(pmt.intern("junk"))
    ctl._on_sent(pmt.intern("junk"))
    assert ctl.counters["bad_feedback"] == 1 and ctl.counters["bad_sent"] == 1


def test_unconnected_sent_port_falls_back_without_deadlock(monkeypatch):
    import importlib

    mod = importlib.import_module("gnuradio.infercom.tx_controller")

    monkeypatch.setattr(mod, "CREDIT_TIMEOUT_S", 0.3)
    imgs = _images(1)
    ctl = tx_controller(imgs, 1, 2, 2, 8, "equal", 0, 0, 8, True, 1, 2, 0.5, 1, 2, 0, 0)
    tb = gr.top_block()
    dbg = blocks.message_debug()
    tb.msg_connect(ctl, "frames", dbg, "store")
    tb.start()
    assert _wait(ctl.finished.is_set, 20)      # no modulator reports: credit timeout, then ARQ timeouts -> FAIL
    tb.stop()
    tb.wait()
    assert ctl.counters["credit_timeouts"] >= 1
    assert ctl.records[0]["outcome"] == "FAIL" and ctl.records[0]["n_attempts"] == 2


def test_annotate_adds_to_every_record_and_a_failure_keeps_it():
    """The hook the UHD transmitter uses (its async events per image): called once per image record, in order;
    a raising hook does not lose the record."""
    for hook, want in ((lambda rec: rec.__setitem__("uhd_events", {"underflow": rec["image_id"]}), None),
                       (lambda rec: 1 / 0, "ZeroDivisionError")):
        tb = gr.top_block()
        ctl = tx_controller(_images(2), 7, 3, 3, 8, "importance", -4, 0, 10, False, 1, 4, 5.0, 1, 0, 100, 0)
        ctl.annotate = hook
        dbg = blocks.message_debug()
        tb.msg_connect(ctl, "frames", dbg, "store")
        tb.start()
        assert _wait(ctl.finished.is_set)
        tb.stop()
        tb.wait()
        assert [r["image_id"] for r in ctl.records] == [100, 101]
        if want is None:
            assert [r["uhd_events"] for r in ctl.records] == [{"underflow": 100}, {"underflow": 101}]
        else:
            assert all(want in r["annotate_error"] for r in ctl.records)
