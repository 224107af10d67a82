# SPDX-License-Identifier: GPL-3.0-or-later
"""uhd_monitor: UHD's async TX events and RX overflows counted and attributed to images, without a radio (the
messages and tags are built exactly as GNU Radio's usrp_sink / usrp_source make them)."""

from __future__ import annotations

import time

import numpy as np
import pmt
from gnuradio import blocks, gr

from gnuradio.infercom.apps.rx import overflows_per_image
from gnuradio.infercom.uhd_monitor import EventLog, parse_async_msg, rx_overflows, tx_events


def _async_msg(events, secs=None, frac=0.0, channel=0):
    """A message as usrp_sink's async_event_loop publishes it."""
    lst = pmt.PMT_NIL
    for e in events:
        lst = pmt.list_add(lst, pmt.intern(e))
    d = pmt.dict_add(pmt.make_dict(), pmt.intern("event_code"), lst)
    if secs is not None:
        d = pmt.dict_add(d, pmt.intern("time_spec"), pmt.cons(pmt.from_long(secs), pmt.from_double(frac)))
    d = pmt.dict_add(d, pmt.intern("channel"), pmt.from_uint64(channel))
    return pmt.cons(pmt.intern("uhd_async_msg"), d)


def test_parse_async_msg():
    got = parse_async_msg(_async_msg(["underflow", "time_error"], 12, 0.25, 1))
    assert got == {"events": ["underflow", "time_error"], "time_spec": (12, 0.25), "channel": 1}
    assert parse_async_msg(_async_msg(["burst_ack"]))["time_spec"] is None
    for bad in (pmt.intern("x"), pmt.cons(pmt.intern("other"), pmt.make_dict()), pmt.from_long(3),
                pmt.cons(pmt.intern("uhd_async_msg"), pmt.from_long(1))):
        assert parse_async_msg(bad) is None or parse_async_msg(bad)["events"] == []


def test_event_log_take_and_span():
    log = EventLog()
    log.add(["underflow", "underflow"])
    log.add(["overflow"], 100)
    assert log.take() == {"underflow": 2, "overflow": 1} and log.take() == {}
    log.add(["overflow"], 900)
    assert log.counts() == {"underflow": 2, "overflow": 2}
    assert log.in_span("overflow", 0, 900) == 1 and log.in_span("overflow", 100, 901) == 2


def test_tx_events_block_counts_the_sinks_messages():
    tb = gr.top_block()
    ev = tx_events()
    strobe = blocks.message_strobe(_async_msg(["underflow"]), 10)     # a stand-in for usrp_sink's port
    tb.msg_connect(strobe, "strobe", ev, "async_msgs")
    tb.start()
    t0 = time.monotonic()
    while ev.log.counts().get("underflow", 0) < 3 and time.monotonic() - t0 < 5:
        time.sleep(0.01)
    tb.stop()
    tb.wait()
    assert ev.log.counts().get("underflow", 0) >= 3
    ev.handle(pmt.intern("garbage"))
    assert ev.log.counts()["unparsed"] == 1


def test_rx_overflows_from_rx_time_tags_and_per_image():
    def tag(off):
        t = gr.tag_t()
        t.offset = off
        t.key = pmt.intern("rx_time")
        t.value = pmt.make_tuple(pmt.from_uint64(0), pmt.from_double(0.0))
        return t

    n = 200_000
    src = blocks.vector_source_c(np.zeros(n, np.complex64), False, 1, [tag(0), tag(50_000), tag(150_000)])
    ov = rx_overflows()
    tb = gr.top_block()
    tb.connect(src, ov)
    tb.run()
    assert ov.log.counts() == {"overflow": 2}                 # the first rx_time tag is the stream's start
    frames = [{"tx_id": 1, "image_id": 2, "attempt": 0, "frame_idx": i, "sample_index": 40_000 + 8000 * i,
               "bh": 3, "bw": 3, "planes": 8, "channels": 3, "profile": "importance", "design_snr_db": -4,
               "key_id": 0, "height": 64, "width": 64, "frame_len_log2": 10} for i in range(3)]
    frames += [dict(frames[0], image_id=3, sample_index=100_000)]
    assert overflows_per_image(frames, ov.log, 2) == {"1/2": 1}    # 50 000 is inside image 2's frames only
