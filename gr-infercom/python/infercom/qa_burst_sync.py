# SPDX-License-Identifier: GPL-3.0-or-later
"""qa for burst_sync: one PDU per burst at the right place (random starts, fractional timing); pure noise and
bursts of other waveforms over 10^7 samples give no frames; a burst cut off by the end of the input is not
emitted; NaN input is survived."""

import numpy as np
import pytest
from gnuradio import blocks, filter, gr

from gnuradio.infercom import burst_sync
from gnuradio.infercom.qa_frame_demod import make_stream, run_rx
from gnuradio.infercom.tags import parse_pdu
from infercom.channel import awgn, pulse_shape, rrc_taps
from infercom.frame import FrameFormat
from infercom.header import parse_header_bits
from infercom.sync import PRE_SAMPLES, burst_window_len


def _bursts(samples, log2=10):
    tb = gr.top_block()
    src = blocks.vector_source_c(samples, False)
    mf = filter.fir_filter_ccf(1, rrc_taps(2, 0.35, 8).tolist())
    sync = burst_sync(2, 0.35, 8, True, log2)
    dbg = blocks.message_debug()
    tb.connect(src, mf, sync)
    tb.msg_connect(sync, "bursts", dbg, "store")
    tb.run()
    return [parse_pdu(dbg.get_message(i), np.complex64) for i in range(dbg.num_messages())], sync


def test_one_pdu_per_burst_at_the_burst_start():
    rng = np.random.default_rng(11)
    delay = 3.6
    x, frames, _, _ = make_stream(rng, 6.0, 0.002, delay, n_images=2)
    # true burst starts: find them from a noiseless copy of the same stream
    rng2 = np.random.default_rng(11)
    clean, _, _, _ = make_stream(rng2, 200.0, 0.0, delay, n_images=2)
    bursts, sync = _bursts(x)
    assert len(bursts) == len(frames)
    for (meta, win), frame in zip(bursts, frames):
        s = meta["sample_index"]            # the first sample of the transmitted (delayed) burst
        assert np.abs(clean[max(s - 100, 0):s - 8]).max() < 0.05 < np.abs(clean[s:s + 20]).max()
        # the window is exactly the burst (its header decoded here), starting PRE_SAMPLES before symbol 0
        h = parse_header_bits(meta["header_bits"])
        n_sym = FrameFormat(frame_len_log2=h.frame_len_log2).frame_symbols(h.payload_len())
        assert win.size == burst_window_len(meta["hr_timing"], n_sym, 2) <= sync.window
        assert meta["hr_timing"] == pytest.approx(PRE_SAMPLES, abs=1) and meta["timing"] == pytest.approx(
            meta["hr_timing"], abs=1)
        assert h == frame
    assert sync.idle()


def test_truncated_burst_and_nan_input_do_not_crash():
    rng = np.random.default_rng(12)
    x, frames, _, _ = make_stream(rng, 10.0, 0.0, 0.0, n_images=1)
    first = int(np.flatnonzero(np.abs(x) > 0.5)[0])
    cut = x[: first + 12000].copy()                     # stream ends inside the first burst
    cut[100:110] = np.nan
    bursts, sync = _bursts(cut)
    assert bursts == [] and sync.counters["nonfinite_chunks"] >= 1


def test_no_false_frames_in_1e7_samples_of_noise_and_foreign_bursts():
    rng = np.random.default_rng(13)
    n = 10_000_000
    x = awgn(np.zeros(n, np.complex64), 0.0, rng)
    taps = rrc_taps(2, 0.35, 8)
    pos = 0
    while pos < n - 200_000:                            # foreign bursts: random QPSK, tones, OFDM-like noise
        pos += int(rng.integers(20_000, 120_000))
        kind = rng.integers(0, 3)
        m = int(rng.integers(2000, 60_000))
        if kind == 0:
            sym = (rng.choice([-1, 1], m) + 1j * rng.choice([-1, 1], m)) / np.sqrt(2)
            b = pulse_shape(sym, 2, taps)[: 2 * m]
        elif kind == 1:
            b = np.exp(2j * np.pi * rng.uniform(-0.2, 0.2) * np.arange(m))
        else:
            b = np.fft.ifft(rng.standard_normal((m // 64, 64)) + 1j * rng.standard_normal((m // 64, 64))).ravel() * 8
        b = (b * 10 ** (rng.uniform(-5, 20) / 20)).astype(np.complex64)
        x[pos:pos + b.size] += b[: n - pos]
        pos += b.size
    out, sync, demod = run_rx(x, log2=10)
    assert out == [] and demod.counters["frames"] == 0


def test_no_false_frames_in_1e7_samples_of_impaired_noise():
    """The receiver's noise through every radio impairment of the loopback (6.3 Hz phase noise, 0.5 dB / 3 degree
    IQ imbalance, DC -30 dB and, harder, 0 dB of the noise power): no frame in 10^7 samples."""
    from infercom import channel as ch

    rng = np.random.default_rng(17)
    n = 10_000_000
    x = ch.iq_imbalance(ch.apply_phase_noise(awgn(np.zeros(n, np.complex64), 0.0, rng), 6.3, 2e6, rng), 0.5, 3.0)
    for dc_db in (-30.0, 0.0):
        out, sync, demod = run_rx(ch.dc_offset(x, dc_db, signal_power=1.0), log2=10)
        assert out == [] and demod.counters["frames"] == 0, (dc_db, sync.counters)
