# SPDX-License-Identifier: GPL-3.0-or-later
"""qa for burst_sync + frame_demod: bursts with CFO, fractional timing and random start are detected, headers
decoded, soft symbols equalised with the right noise variance; noise yields no frames; bad PDUs are counted."""

import numpy as np
import pmt
import pytest
from gnuradio import blocks, filter, gr

from gnuradio.infercom import burst_sync, frame_demod
from gnuradio.infercom.tags import make_pdu, meta_to_header, parse_pdu
from infercom.channel import apply_cfo, awgn, fractional_delay, pulse_shape, rrc_taps
from infercom.frame import FrameFormat, image_frames
from infercom.link import LinkConfig, encode_image

LOG2 = 10


def make_stream(rng, snr_db, cfo, delay, n_images=1, gap=(500, 3000)):
    """IQ samples (sps 2) of the frames of random images with random gaps; returns (samples, frames, payloads)."""
    fmt = FrameFormat(frame_len_log2=LOG2)
    cfg = LinkConfig(3, 3, 8, "importance", int(np.clip(round(snr_db), -16, 15)))
    taps = rrc_taps(2, fmt.beta, fmt.span)
    pieces, frames, payloads = [], [], []
    for k in range(n_images):
        img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        payloads.append(encode_image(img, cfg)[0])
        for h, sym in image_frames(img, cfg, 4, k, fmt=fmt):
            pieces.append(np.zeros(2 * int(rng.integers(*gap)), np.complex64))
            pieces.append(pulse_shape(sym, 2, taps))
            frames.append(h)
    pieces.append(np.zeros(200000, np.complex64))
    x = np.concatenate(pieces)
    x = fractional_delay(apply_cfo(x, cfo, phase0=rng.uniform(0, 6.28)), delay)
    return awgn(x, snr_db, rng), frames, payloads, cfg


def run_rx(samples, log2=LOG2):
    tb = gr.top_block()
    src = blocks.vector_source_c(samples, False)
    mf = filter.fir_filter_ccf(1, rrc_taps(2, 0.35, 8).tolist())
    sync = burst_sync(2, 0.35, 8, True, log2)
    demod = frame_demod(2, 0.35, 8)
    dbg = blocks.message_debug()
    tb.connect(src, mf, sync)
    tb.msg_connect(sync, "bursts", demod, "in")
    tb.msg_connect(demod, "out", dbg, "store")
    tb.run()
    tb.stop()
    tb.wait()
    out = [parse_pdu(dbg.get_message(i), np.complex64) for i in range(dbg.num_messages())]
    return out, sync, demod


def test_decodes_every_frame_at_0db_with_cfo_and_timing():
    rng = np.random.default_rng(5)
    cfo = 0.01 / 2                         # 1 % of the symbol rate, in cycles per sample at sps 2
    x, frames, payloads, cfg = make_stream(rng, 0.0, cfo, 7.37, n_images=2)
    out, sync, demod = run_rx(x)
    assert [meta_to_header(m) for m, _ in out] == frames          # all detected, all headers right, in order
    assert demod.counters["header_fail"] == 0 and sync.counters["dropped_candidates"] == 0
    fl = 1 << LOG2
    errs, nvs, snrs = [], [], []
    for m, y in out:
        h = meta_to_header(m)
        ref = payloads[h.image_id][h.frame_idx * fl: h.frame_idx * fl + h.payload_len()]
        errs.append(np.abs(y - ref) ** 2)
        nvs.append(float(m["noise_var"]))
        snrs.append(m["snr_db"])
        assert m["cfo"] == pytest.approx(cfo, abs=2e-4)
    mse = np.mean(np.concatenate(errs))
    assert mse == pytest.approx(1.0, rel=0.1)           # Es/N0 = 0 dB: E|y - x|^2 = N0 = 1 (with est. loss)
    assert np.mean(nvs) == pytest.approx(mse, rel=0.1)   # the reported noise variance is the real one
    assert np.mean(snrs) == pytest.approx(0.0, abs=1.0)  # measured SNR within 1 dB


def test_noise_only_gives_no_frames():
    rng = np.random.default_rng(6)
    x = awgn(np.zeros(1_000_000, np.complex64), 0.0, rng)
    out, sync, demod = run_rx(x)
    assert out == [] and demod.counters["frames"] == 0


def test_bad_bursts_are_counted():
    demod = frame_demod()
    demod._on_burst(pmt.intern("junk"))
    demod._on_burst(make_pdu({"timing": 5.0, "cfo": 0.0, "window_start": 0}, np.zeros(100, np.complex64)))
    demod._on_burst(make_pdu({"timing": 1e9, "cfo": 0.0, "window_start": 0}, np.zeros(100, np.complex64)))
    demod._on_burst(make_pdu({"cfo": 0.0}, np.zeros(100, np.complex64)))
    assert demod.counters["bad_pdus"] == 3 and demod.counters["truncated"] == 1
    rng = np.random.default_rng(7)
    noise = (rng.standard_normal(40000) + 1j * rng.standard_normal(40000)).astype(np.complex64)
    demod._on_burst(make_pdu({"timing": 100.0, "cfo": 0.0, "window_start": 0}, noise))
    assert demod.counters["header_fail"] == 1
    with pytest.raises(ValueError):
        burst_sync(max_frame_len_log2=20)


def test_gnuradio_chain_equals_burst_receiver():
    """One impaired stream (CFO, fractional timing, AWGN, bursts with and without gaps, work() calls of at most
    3000 samples so that every burst straddles several) through fft_filter_ccf -> burst_sync -> frame_demod and
    through infercom.sync.BurstReceiver: the same headers and the same soft symbols.

    Given the same matched-filtered samples (BurstReceiver(prefiltered=True) on the GNU Radio filter's output,
    fed in other chunks) the results are bit-identical: both paths run one BurstReceiver (detector, windowing,
    header) over the same samples and demod_payload on the same window.  BurstReceiver with its own (numba,
    direct-form) matched filter sees samples that differ from fft_filter_ccf's by float32 rounding (~1e-7
    relative), which moves the estimates a little: soft symbols (|y| ~ 1) then differ by < 1e-6 (measured
    8.6e-7 at most), so the test allows 1e-5; noise variances 1e-5 relative, SNR 1e-5 dB (measured 4e-8 dB)."""
    from infercom.sync import BurstReceiver

    rng = np.random.default_rng(21)
    x1, f1, _, _ = make_stream(rng, 3.0, 0.004, 2.37, n_images=1)
    x2, f2, _, _ = make_stream(rng, 3.0, 0.004, 2.37, n_images=1, gap=(0, 8))   # (nearly) back to back
    x = np.concatenate([x1[:-150_000], x2])
    frames = f1 + f2
    tb = gr.top_block()
    src = blocks.vector_source_c(x, False)
    mf = filter.fft_filter_ccf(1, rrc_taps(2, 0.35, 8).tolist(), 1)
    sync = burst_sync(2, 0.35, 8, True, LOG2)
    sync.set_max_noutput_items(3000)
    demod = frame_demod(2, 0.35, 8)
    z_sink = blocks.vector_sink_c()
    dbg = blocks.message_debug()
    tb.connect(src, mf, sync)
    tb.connect(mf, z_sink)
    tb.msg_connect(sync, "bursts", demod, "in")
    tb.msg_connect(demod, "out", dbg, "store")
    chunks = []
    feed = sync.rx.feed
    sync.rx.feed = lambda s: (chunks.append(len(s)), feed(s))[1]
    tb.run()
    gr_out = [parse_pdu(dbg.get_message(i), np.complex64) for i in range(dbg.num_messages())]
    assert max(chunks) <= 3000 and len(chunks) > len(frames) * 3
    assert [meta_to_header(m) for m, _ in gr_out] == frames
    assert demod.counters["header_fail"] == 0 and sync.counters["header_fail"] == 0

    # the same matched-filtered samples, other chunks: bit-identical
    z = np.asarray(z_sink.data(), np.complex64)
    rx = BurstReceiver(FrameFormat(), 2, prefiltered=True)
    out, i = [], 0
    while i < z.size:
        n = int(rng.integers(1, 50_000))
        out += rx.feed(z[i:i + n])
        i += n
    out += rx.flush()
    assert [f.header for f in out] == frames
    for (m, y), f in zip(gr_out, out):
        assert np.array_equal(y, f.y)
        assert np.float32(m["noise_var"]) == f.noise_var[0] and np.all(f.noise_var == f.noise_var[0])
        assert m["snr_db"] == f.snr_db and m["cfo"] == f.cfo and m["sample_index"] == f.sample_index
        assert complex(m["h_re"], m["h_im"]) == pytest.approx(f.h, rel=1e-12) and m["metric"] == f.metric

    # raw samples, BurstReceiver's own matched filter: equal up to the filters' float rounding
    rx = BurstReceiver(FrameFormat(), 2)
    out = rx.feed(x) + rx.flush()
    assert [f.header for f in out] == frames
    for (m, y), f in zip(gr_out, out):
        assert np.max(np.abs(y - f.y)) < 1e-5
        assert m["noise_var"] == pytest.approx(float(f.noise_var[0]), rel=1e-5)
        assert m["snr_db"] == pytest.approx(f.snr_db, abs=1e-5) and m["sample_index"] == f.sample_index
