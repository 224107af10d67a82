# SPDX-License-Identifier: GPL-3.0-or-later
"""qa for chase_combiner: +3 dB from two equal-SNR attempts in a flowgraph, bounded memory, flush on ACK."""

import time

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio.infercom import chase_combiner
from gnuradio.infercom.tags import feedback_to_pmt, make_pdu, parse_pdu
from infercom.protocol import Feedback

CFG = dict(bh=3, bw=3, planes=8, channels=3, profile="importance", design_snr_db=-4, key_id=0, height=64,
           width=64, frame_len_log2=10)


def _pdu(rng, x, attempt, frame_idx=0, image_id=1, snr_db=0.0, nv_meta=None):
    nv = 10 ** (-snr_db / 10)
    n = (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size)) * np.sqrt(nv / 2)
    meta = dict(CFG, tx_id=3, image_id=image_id, attempt=attempt, frame_idx=frame_idx,
                noise_var=np.float32(nv) if nv_meta is None else nv_meta, snr_db=snr_db)
    return make_pdu(meta, (x + n).astype(np.complex64))


def _wait(dbg, n, timeout=10.0):
    t0 = time.monotonic()
    while dbg.num_messages() < n and time.monotonic() - t0 < timeout:
        time.sleep(0.005)


def test_two_attempts_give_3db_in_a_flowgraph():
    rng = np.random.default_rng(7)
    x = ((1 - 2 * rng.integers(0, 2, 50000)) + 1j * (1 - 2 * rng.integers(0, 2, 50000))).astype(np.complex64)
    x /= np.sqrt(2)
    tb = gr.top_block()
    comb = chase_combiner(max_frames=16, timeout_s=60)
    dbg = blocks.message_debug()
    tb.msg_connect(comb, "out", dbg, "store")
    tb.start()
    for a in range(2):
        comb.to_basic_block()._post(pmt.intern("in"), _pdu(rng, x, a))
    _wait(dbg, 2)
    tb.stop()
    tb.wait()
    assert dbg.num_messages() == 2
    (m1, y1), (m2, y2) = (parse_pdu(dbg.get_message(i), np.complex64) for i in range(2))
    mse1, mse2 = np.mean(np.abs(y1 - x) ** 2), np.mean(np.abs(y2 - x) ** 2)
    gain_db = 10 * np.log10(mse1 / mse2)
    assert gain_db == pytest.approx(3.01, abs=0.1)     # std error of the MSE ratio ~0.4 % -> 0.03 dB
    assert m2["chase_attempts"] == 2 and m1["chase_attempts"] == 1
    assert np.allclose(m2["noise_var"], 0.5, rtol=1e-6)  # nv = 1/(1/1 + 1/1)
    assert m2["snr_db"] == pytest.approx(3.01, abs=0.01)


def test_memory_bounded_without_acks_and_flush_on_ack():
    rng = np.random.default_rng(8)
    x = np.ones(256, np.complex64)
    comb = chase_combiner(max_frames=10, timeout_s=1e6)
    for img in range(5):
        for f in range(8):
            comb._on_pdu(_pdu(rng, x, 0, frame_idx=f, image_id=img))
    assert comb.held_frames() == 10 and comb.counters["evicted"] == 30
    assert comb.held_bytes() == 10 * 256 * 12
    comb._on_feedback(feedback_to_pmt(Feedback(tx_id=3, image_id=4, attempt=0, decision="ACK")))
    assert comb.held_frames() == 2  # the 8 frames of image 4 went; 2 of image 3 remain
    comb._on_pdu(_pdu(rng, x, 0, frame_idx=7, image_id=4))   # a late frame of the ACKed attempt: dropped
    assert comb.held_frames() == 2 and comb.counters["late"] == 1
    comb._on_feedback(feedback_to_pmt(Feedback(tx_id=3, image_id=3, attempt=0, decision="NACK", mode="chase",
                                               next_attempt=1)))
    assert comb.held_frames() == 2  # a chase NACK keeps the state for the next attempt


def test_timeout_and_duplicates_and_bad_pdus():
    rng = np.random.default_rng(9)
    x = np.ones(64, np.complex64)
    now = [0.0]
    comb = chase_combiner(max_frames=100, timeout_s=5.0)
    comb.clock = lambda: now[0]
    comb._on_pdu(_pdu(rng, x, 0, frame_idx=0))
    comb._on_pdu(_pdu(rng, x, 0, frame_idx=0))          # same attempt again: not combined twice
    assert comb.counters["duplicates"] == 1
    now[0] = 10.0
    comb._on_pdu(_pdu(rng, x, 0, frame_idx=1))
    assert comb.counters["expired"] == 1 and comb.held_frames() == 1
    bad = [pmt.intern("x"),
           _pdu(rng, x, 1, frame_idx=1, nv_meta=np.float32(-1.0)),             # negative noise variance
           _pdu(rng, np.ones(65, np.complex64), 1, frame_idx=1),                # length differs: restart ok
           make_pdu({"tx_id": 3}, x)]                                          # missing fields
    for b in bad:
        comb._on_pdu(b)
    assert comb.counters["bad_pdus"] == 3
    comb._on_feedback(pmt.intern("garbage"))
    assert comb.counters["bad_feedback"] == 1


def test_rejects_bad_parameters():
    with pytest.raises(ValueError):
        chase_combiner(max_frames=0)
