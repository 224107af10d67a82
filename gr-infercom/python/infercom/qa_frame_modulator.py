# SPDX-License-Identifier: GPL-3.0-or-later
"""qa for frame_modulator: frames come out intact, in order, tagged, with gaps; bad PDUs are counted."""


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


def test_shaped_output_equals_gnuradio_interpolator():
    """sps=2: the block's own RRC shaping is GNU Radio's interp_fir_filter_ccf fed with the symbols plus
    ``span`` zero symbols (the filter's whole response), burst after burst; tags sit on samples."""
    from gnuradio import filter as gr_filter
    from infercom.channel import rrc_taps

    rng = np.random.default_rng(5)
    frames = _frames(rng, 3)
    span, sps, tail = 8, 2, 2
    pdus = [make_pdu(m, s) for m, s in frames]
    n_sym = sum(s.size + tail for _, s in frames)
    # continuous with no gaps: bursts back to back, then idle zeros (a burst-mode source never lets head end)
    shaped = frame_modulator(tail_symbols=tail, gap_min=0, gap_max=0, continuous=True, sps=sps, span=span)
    y, tags, dbg = _run(shaped, pdus, n_sym * sps + len(frames) * span * sps)

    ref_mod = frame_modulator(tail_symbols=tail + span, gap_min=0, gap_max=0, continuous=True)
    tb = gr.top_block()
    interp = gr_filter.interp_fir_filter_ccf(sps, rrc_taps(sps, 0.35, span).tolist())
    head = blocks.head(gr.sizeof_gr_complex, y.size)
    snk = blocks.vector_sink_c()
    tb.connect(ref_mod, interp, head, snk)
    for p in pdus:
        ref_mod.to_basic_block()._post(pmt.intern("in"), p)
    tb.run()
    ref = np.asarray(snk.data(), np.complex64)
    assert ref.size == y.size
    assert np.max(np.abs(y - ref)) < 1e-5 and np.mean(np.abs(y) ** 2) > 0.1
    sob = sorted(t.offset for t in tags if pmt.symbol_to_string(t.key) == "tx_sob")
    eob = sorted(t.offset for t in tags if pmt.symbol_to_string(t.key) == "tx_eob")
    lens = [pmt.to_long(t.value) for t in sorted(tags, key=lambda t: t.offset)
            if pmt.symbol_to_string(t.key) == "packet_len"]
    want_len = [(s.size + tail + span) * sps for _, s in frames]
    assert lens == want_len
    assert sob == [0, want_len[0], want_len[0] + want_len[1]]
    assert eob == [s + n - 1 for s, n in zip(sob, want_len)]          # tx_eob on the burst's last sample
    sent = [pmt.to_python(dbg.get_message(i))["offset"] for i in range(dbg.num_messages())]
    assert sent == eob


def test_shaped_gaps_are_in_samples_and_bad_parameters_fail():
    rng = np.random.default_rng(6)
    frames = _frames(rng, 3)
    mod = frame_modulator(tail_symbols=0, gap_min=5, gap_max=9, continuous=True, seed=1, sps=4)
    y, tags, _ = _run(mod, [make_pdu(m, s) for m, s in frames], 4000)
    sob = sorted(t.offset for t in tags if pmt.symbol_to_string(t.key) == "tx_sob")
    eob = sorted(t.offset for t in tags if pmt.symbol_to_string(t.key) == "tx_eob")
    gaps = [sob[0]] + [s - e - 1 for s, e in zip(sob[1:], eob)]
    assert all(20 <= g <= 36 for g in gaps) and len(set(gaps)) > 1     # [5*4, 9*4] samples, to the sample
    import pytest

    for kw in ({"sps": 0}, {"sps": 2.5}, {"sps": 2, "beta": 0.0}, {"sps": 2, "span": 7}):
        with pytest.raises(ValueError):
            frame_modulator(**kw)
