# SPDX-License-Identifier: GPL-3.0-or-later
"""qa for frame_modulator: frames come out intact, in order, tagged, with gaps; bad PDUs are counted."""

import time

import numpy as np
import pmt
from gnuradio import blocks, gr

from gnuradio.infercom import frame_modulator
from gnuradio.infercom.tags import make_pdu


def _frames(rng, n):
    out = []
    for i in range(n):
        sym = (rng.standard_normal(50 + 10 * i) + 1j * rng.standard_normal(50 + 10 * i)).astype(np.complex64)
        out.append(({"tx_id": 2, "image_id": 5, "attempt": 0, "frame_idx": i}, sym))
    return out


def _run(mod, msgs, n_items):
    tb = gr.top_block()
    head = blocks.head(gr.sizeof_gr_complex, n_items)
    snk = blocks.vector_sink_c()
    dbg = blocks.message_debug()
    tb.connect(mod, head, snk)
    tb.msg_connect(mod, "sent", dbg, "store")
    for m in msgs:
        mod.to_basic_block()._post(pmt.intern("in"), m)
    tb.run()
    return np.asarray(snk.data(), np.complex64), snk.tags(), dbg


def test_frames_in_order_with_tags_and_gaps():
    rng = np.random.default_rng(1)
    frames = _frames(rng, 4)
    mod = frame_modulator(tail_symbols=3, gap_min=10, gap_max=20, continuous=True, seed=4)
    y, tags, dbg = _run(mod, [make_pdu(m, s) for m, s in frames], 2000)
    sob = sorted(t.offset for t in tags if pmt.symbol_to_string(t.key) == "tx_sob")
    eob = sorted(t.offset for t in tags if pmt.symbol_to_string(t.key) == "tx_eob")
    lens = [pmt.to_long(t.value) for t in sorted(tags, key=lambda t: t.offset)
            if pmt.symbol_to_string(t.key) == "packet_len"]
    assert len(sob) == len(eob) == 4
    prev_end = -1
    for (meta, sym), s, e, n in zip(frames, sob, eob, lens):
        assert 10 <= s - prev_end - 1 <= 20            # random gap of zeros
        assert np.all(y[prev_end + 1:s] == 0)
        assert e - s + 1 == sym.size + 3 == n            # burst = frame + tail, tx_eob on its last item
        assert np.array_equal(y[s:s + sym.size], sym)    # bit-exact symbols
        assert np.all(y[s + sym.size:e + 1] == 0)
        prev_end = e
    assert np.all(y[prev_end + 1:] == 0)                 # idle fill after the last frame
    frame_tags = [pmt.to_python(t.value) for t in tags if pmt.symbol_to_string(t.key) == "infercom_frame"]
    assert [f["frame_idx"] for f in frame_tags] == [0, 1, 2, 3]
    sent = [pmt.to_python(dbg.get_message(i)) for i in range(dbg.num_messages())]
    assert [s["frame_idx"] for s in sent] == [0, 1, 2, 3] and [s["offset"] for s in sent] == eob
    assert mod.frames_out == 4 and mod.bad_pdus == 0


def test_bad_pdus_are_counted_not_fatal():
    rng = np.random.default_rng(2)
    (meta, sym), = _frames(rng, 1)
    bad = [pmt.intern("junk"),
           pmt.cons(pmt.make_dict(), pmt.init_f32vector(3, [1.0, 2.0, 3.0])),     # wrong vector type
           make_pdu(meta, np.array([1 + 1j, np.nan], np.complex64)),              # NaN symbols
           make_pdu(meta, np.zeros(0, np.complex64))]                             # empty frame
    mod = frame_modulator(tail_symbols=0, gap_min=0, gap_max=0, continuous=True)
    y, tags, _ = _run(mod, bad + [make_pdu(meta, sym)], 500)
    assert mod.bad_pdus == 4
    assert mod.frames_out == 1
    assert np.array_equal(y[:sym.size], sym)


def test_queue_is_bounded():
    rng = np.random.default_rng(3)
    frames = _frames(rng, 6)
    mod = frame_modulator(continuous=False, max_queue=2)
    for m, s in frames:
        mod._on_pdu(make_pdu(m, s))
    assert mod.queued() == 2 and mod.dropped == 4
