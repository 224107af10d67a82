# SPDX-License-Identifier: GPL-3.0-or-later
"""Streaming burst receiver: kernels vs references, sample-level loopback through RRC + CFO + fractional delay
+ AWGN at 0 dB and -8 dB, false alarms on noise and other waveforms, streaming and truncated bursts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erfc, gammaincc

from infercom import channel as ch
from infercom import frame as F
from infercom import sync
from infercom.header import HEADER_SYMBOLS
from infercom.link import LinkConfig, soft_to_llr

SPS = 2
TAPS = ch.rrc_taps(SPS)


def _q(x):
    return 0.5 * erfc(x / np.sqrt(2))


def _stream(frames, rng, gap=(0, 4000), lead=1500, tail=6000):
    """Pulse-shaped bursts with random gaps; returns (samples, burst start indices)."""
    parts, starts, pos = [np.zeros(lead, np.complex64)], [], lead
    for _, sym in frames:
        g = int(rng.integers(*gap))
        parts.append(np.zeros(g, np.complex64))
        pos += g
        s = ch.pulse_shape(sym, SPS, TAPS)
        starts.append(pos)
        parts.append(s)
        pos += s.size
    parts.append(np.zeros(tail, np.complex64))
    return np.concatenate(parts), np.array(starts)


def _impair(x, rng, snr_db, cfo_sym, delay):
    x = ch.fractional_delay(x, delay)
    x = ch.apply_cfo(x, cfo_sym / SPS, phase0=float(rng.uniform(0, 2 * np.pi)))
    return ch.awgn(x, snr_db, rng)


def _receive(x, chunk=None, rng=None):
    rx = sync.BurstReceiver(sps=SPS)
    out = []
    if chunk is None:
        out += rx.feed(x)
    else:
        i = 0
        while i < x.size:
            n = int(rng.integers(1, chunk)) if rng is not None else chunk
            out += rx.feed(x[i:i + n])
            i += n
    out += rx.flush()
    return out, rx


# ---------------------------------------------------------------------------------------------------------------
def test_stage1_kernel_matches_reference(rng):
    z = (rng.standard_normal(6000) + 1j * rng.standard_normal(6000)).astype(np.complex64)
    z[2000:3024] += 2 * np.asarray(__import__("infercom.preamble", fromlist=["x"]).preamble())
    a = sync.stage1_metric(z.real, z.imag)
    b = sync.stage1_metric_ref(z)
    assert a.shape == b.shape == (6000 - 1024,)
    assert np.allclose(a, b, rtol=2e-4, atol=1e-5)
    assert int(np.argmax(a)) == 2000


def test_matched_filter_streaming_equals_full(rng):
    x = (rng.standard_normal(10000) + 1j * rng.standard_normal(10000)).astype(np.complex64)
    mf = sync.MatchedFilter(SPS)
    parts = [mf.process(x[i:j]) for i, j in ((0, 7), (7, 3000), (3000, 3001), (3001, 10000))]
    zr = np.concatenate([p[0] for p in parts])
    zi = np.concatenate([p[1] for p in parts])
    full = np.convolve(x, TAPS)[:x.size]  # causal MF = convolution with the (symmetric) taps
    assert np.allclose(zr + 1j * zi, full, atol=1e-5)


def test_noise_m1_distribution_matches_theory(rng):
    """On white noise the stage-1 statistic is the mean of 64 per-segment ratios 16 Beta(1, 15) (mean 1, std
    sqrt(15/17/64)): the threshold's false-alarm rate can be extrapolated from it (docs/phy.md).  It does not
    depend on the noise level, also not on a noise -> silence edge."""
    n = 400_000
    w = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    mf = sync.MatchedFilter(SPS)
    zr, zi = mf.process(w)
    m1 = sync.stage1_metric(zr[100::2], zi[100::2])
    assert abs(np.mean(m1) - 1) < 0.01
    assert abs(np.std(m1) - np.sqrt(15 / 17 / 64)) < 0.01
    for t in (1.3, 1.4):
        emp = np.mean(m1 > t)
        theo = sync.stage1_noise_tail(t)
        assert 0.5 * theo < emp < 2.0 * theo, (t, emp, theo)
    # the tail is a proper tail: Gaussian-like at the centre, lighter than Gamma(64, 1/64) far out
    assert abs(sync.stage1_noise_tail(1.0) - 0.5) < 0.03 and sync.stage1_noise_tail(2.0) < gammaincc(64, 128)
    t1, t2 = sync.detector_thresholds(1e-6, 1e-6)
    assert abs(sync.stage1_noise_tail(t1) / 1e-6 - 1) < 0.02 and abs(t2 - np.log(1e6)) < 1e-9
    # noise -> (near) silence edge: strong noise, then noise 60 dB weaker; no position crosses T1 = 1.57 there
    e = w[:60_000].copy()
    e[30_000:] *= 1e-3
    zr, zi = sync.MatchedFilter(SPS).process(e)
    for ph in (0, 1):
        m = sync.stage1_metric(zr[ph::2], zi[ph::2])
        assert m.max() < sync.detector_thresholds(1e-5)[0], m.max()


def test_no_false_frames_on_noise_and_other_waveforms(rng):
    """1e7 samples of noise and random bursts of other waveforms (RRC-QPSK data, tones, chirps, impulses,
    silence edges): no frame, no crash; stage-2 false alarms stay ~zero."""
    n = 10_000_000
    x = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) * np.sqrt(0.5)).astype(np.complex64)
    pos = 0
    while pos < n - 200_000:
        kind = int(rng.integers(0, 5))
        L = int(rng.integers(5_000, 80_000))
        amp = 10 ** (rng.uniform(-10, 20) / 20)
        if kind == 0:  # other QPSK bursts with the same pulse shape
            b = rng.integers(0, 2, (L // 2, 2))
            s = ch.pulse_shape(((1 - 2 * b) @ np.array([1, 1j]) / np.sqrt(2)).astype(np.complex64), 2, TAPS)
        elif kind == 1:  # tone
            s = np.exp(2j * np.pi * rng.uniform(-0.5, 0.5) * np.arange(L))
        elif kind == 2:  # chirp
            t = np.arange(L)
            s = np.exp(1j * np.pi * rng.uniform(-1, 1) / L * t * t)
        elif kind == 3:  # impulses
            s = np.zeros(L, np.complex64)
            s[rng.integers(0, L, 20)] = 30
        else:  # silence (noise/silence edges)
            s = -x[pos:pos + L] / max(amp, 1e-9)
        s = np.asarray(s, np.complex64)[: n - pos]
        x[pos:pos + s.size] += (amp * s).astype(np.complex64)
        pos += s.size + int(rng.integers(0, 200_000))
    out, rx = _receive(x, chunk=1 << 18)
    assert out == []
    c = rx.counters
    assert c["frames"] == 0 and c["truncated"] == 0
    # stage 2 is the detector's false alarm (each then costs one header decode); on 1e7 samples: ~none
    assert c["stage2"] <= 2, c


def _frames(rng, n_img=1, cfg=None, fmt=None, shape=(128, 128, 3)):
    cfg = cfg or LinkConfig(bh=1, bw=1, planes=8, profile="equal")
    fmt = fmt or F.FrameFormat()
    imgs, frames = [], []
    for i in range(n_img):
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        imgs.append(img)
        frames += F.image_frames(img, cfg, tx_id=5, image_id=i, fmt=fmt)
    return imgs, frames, cfg, fmt


@pytest.mark.parametrize("cfo_sym", [0.01, -0.01])
def test_loopback_0db_all_frames_ber_near_theory(cfo_sym):
    """Es/N0 = 0 dB, CFO = +-1 % of the symbol rate, fractional delay, random gaps: every frame decoded, per-
    plane BER within 0.5 dB of the perfect-sync (theory) link, measured SNR within 1 dB."""
    rng = np.random.default_rng(11 if cfo_sym > 0 else 12)
    imgs, frames, cfg, fmt = _frames(rng)
    x, starts = _stream(frames, rng)
    y = _impair(x, rng, 0.0, cfo_sym, delay=float(rng.uniform(0, 1)))
    out, rx = _receive(y, chunk=100_000, rng=rng)
    assert len(out) == len(frames), rx.counters
    assert sorted(f.header.frame_idx for f in out) == list(range(len(frames)))
    re = F.Reassembler()
    for f in out:
        assert f.header == frames[f.header.frame_idx][0]
        assert abs(f.snr_db - 0.0) < 1.0
        assert abs(f.cfo * SPS - cfo_sym) < 1e-4
        assert abs(f.sample_index - starts[f.header.frame_idx]) <= 1
        re.add(f.header, f.y, f.noise_var)
    assert re.missing() == []
    yy, nv = re.payload()
    lay = out[0].header.layout()
    llr = soft_to_llr(yy, nv, lay, cfg)  # (planes, n_values), MSB first
    truth = ((imgs[0].reshape(-1)[None, :] >> np.arange(7, -1, -1)[:, None]) & 1).astype(bool)
    ber = np.mean((llr < 0) != truth, axis=1)
    p = cfg.plane_powers()
    n_bits = truth.shape[1]
    for k in range(8):
        worse = _q(np.sqrt(p[k] * 10 ** (-0.5 / 10)))  # perfect sync at 0.5 dB less
        ideal = _q(np.sqrt(p[k]))
        se = np.sqrt(ideal * (1 - ideal) / n_bits)
        assert ber[k] < worse, (k, ber[k], worse)
        assert ber[k] > ideal - 4 * se, (k, ber[k], ideal)  # not better than theory: noise scaling honest


def test_loopback_minus8db_detection_rate():
    """Es/N0 = -8 dB: >= 99 % of 120 short frames detected with header decoded; measured SNR within 1 dB."""
    rng = np.random.default_rng(21)
    cfg = LinkConfig(bh=4, bw=4, planes=4, profile="equal")
    fmt = F.FrameFormat(frame_len_log2=10)
    frames = []
    for i in range(120):
        img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        frames += F.image_frames(img, cfg, tx_id=1, image_id=i, fmt=fmt)
    assert len(frames) >= 120
    got, snrs = 0, []
    for part in range(3):  # three streams with different CFO / delay
        fr = frames[part::3]
        x, starts = _stream(fr, rng, gap=(0, 3000))
        cfo = [0.01, -0.0073, 0.0041][part]
        y = _impair(x, rng, -8.0, cfo, delay=float(rng.uniform(0, 1)))
        out, rx = _receive(y, chunk=65536)
        want = {(h.image_id, h.frame_idx) for h, _ in fr}
        ok = {(f.header.image_id, f.header.frame_idx) for f in out if f.header in [h for h, _ in fr]}
        assert ok <= want
        got += len(ok)
        snrs += [f.snr_db for f in out]
    assert got >= 0.99 * len(frames), (got, len(frames))
    assert abs(np.mean(snrs) + 8.0) < 0.3 and np.all(np.abs(np.array(snrs) + 8.0) < 1.0)


def test_streaming_chunking_is_invisible_and_truncation_counted():
    rng = np.random.default_rng(5)
    imgs, frames, cfg, fmt = _frames(rng, cfg=LinkConfig(bh=4, bw=4, planes=8), fmt=F.FrameFormat(frame_len_log2=11),
                                     shape=(64, 64, 3))
    x, starts = _stream(frames, rng, gap=(0, 500))
    y = _impair(x, rng, 3.0, 0.003, 0.4)
    a, _ = _receive(y)
    b, _ = _receive(y, chunk=3000, rng=rng)
    assert len(a) == len(b) == len(frames)
    for fa, fb in zip(a, b):
        assert fa.header == fb.header and fa.sample_index == fb.sample_index
        assert np.allclose(fa.y, fb.y, atol=1e-4)
    # cut the stream in the middle of the last burst: the earlier frames decode, the cut one is counted
    cut = int(starts[-1] + (y.size - starts[-1]) // 3)
    out, rx = _receive(y[:cut], chunk=20000, rng=rng)
    assert len(out) == len(frames) - 1
    assert rx.counters["truncated"] == 1
    # cut inside the preamble: nothing to count but no crash
    out, rx = _receive(y[: int(starts[0]) + 500])
    assert out == []


def test_bad_input_does_not_crash(rng):
    rx = sync.BurstReceiver()
    with pytest.raises(ValueError):
        rx.feed(np.zeros((2, 10), np.complex64))
    x = (rng.standard_normal(50000) + 1j * rng.standard_normal(50000)).astype(np.complex64)
    x[100:200] = np.nan
    x[300] = np.inf
    assert rx.feed(x) == [] and rx.flush() == []
    assert rx.feed(np.zeros(0, np.complex64)) == []
    with pytest.raises(ValueError):
        sync.BurstReceiver(fmt=F.FrameFormat(sps=4), sps=2)


def test_kernels_match_numpy_references(rng):
    z = (rng.standard_normal(8000) + 1j * rng.standard_normal(8000)).astype(np.complex64)
    zr, zi = z.real.copy(), z.imag.copy()
    # symbol interpolator + de-rotation
    for timing, f, ph in ((100.3, 0.0, 0.0), (57.91, 0.0123, 1.1), (20.0, -0.02, -2.0)):
        a = sync._symbols(zr, zi, timing, 3, 1500, 2, f, ph)
        b = sync.symbols_ref(z, timing, 3, 1500, 2, f, ph)
        assert np.allclose(a, b, atol=2e-4)
    # equaliser
    y = z[:3000]
    pos = np.sort(rng.choice(3000, 1200, replace=False))
    t_blk = np.array([-5.0, 300.5, 700.5, 1500.5, 2990.0])
    ph = np.exp(1j * rng.uniform(-np.pi, np.pi, t_blk.size))
    out = np.empty(pos.size, np.complex64)
    sync._equalise_kernel(y, pos, t_blk, ph, np.float32(0.7), out)
    assert np.allclose(out, sync.equalise_ref(y, pos, t_blk, ph, 0.7), atol=1e-4)
    # stage 2
    dr = np.empty(200, np.float32)
    di = np.empty(200, np.float32)
    den = np.empty(200, np.float32)
    sync._stage2_kernel(zr, zi, sync._U.real.copy(), sync._U.imag.copy(), sync._E, 2, 1000, 1200, dr, di, den)
    D, dn = sync.stage2_ref(z, 1000, 1200)
    assert np.allclose(dr + 1j * di, D, rtol=1e-3, atol=1e-2 * np.abs(D).max())
    assert np.allclose(den, dn, rtol=1e-3)


def test_fine_timing_energy_kernel_matches_reference(rng):
    z = (rng.standard_normal(5000) + 1j * rng.standard_normal(5000)).astype(np.complex64)
    zr, zi = z.real.copy(), z.imag.copy()
    for t in (10.0, 33.3, 700.71):
        a = sync._seg_energy(zr, zi, t, 2)
        b = sync._seg_energy_ref(zr, zi, t, 2)
        assert abs(a - b) < 1e-3 * b
        for f in (0.004, -0.01):  # de-rotated template = de-rotated symbols
            a = sync._seg_energy(zr, zi, t, 2, sync._pre_template(f))
            b = sync._seg_energy_ref(zr, zi, t, 2, f)
            assert abs(a - b) < 1e-3 * b


def test_block_fading_gain_and_snr_are_estimated():
    """A frame through a complex gain h: the receiver reports h and the instantaneous SNR |h|^2 Es/N0."""
    rng = np.random.default_rng(8)
    imgs, frames, cfg, fmt = _frames(rng, cfg=LinkConfig(bh=4, bw=4, planes=8), fmt=F.FrameFormat(frame_len_log2=11),
                                     shape=(64, 64, 3))
    x, starts = _stream(frames[:2], rng)
    hch = 0.5 * np.exp(1j * 2.0)
    y = ch.awgn(ch.block_fading(ch.fractional_delay(x, 0.3), hch), 6.0, rng)
    out, _ = _receive(y)
    assert len(out) == 2
    for f in out:
        assert abs(f.snr_db - (6.0 + 20 * np.log10(0.5))) < 0.5
        assert abs(abs(f.h) - 0.5) < 0.03
        dpos, _ = F.frame_layout(f.header.payload_len(), fmt)
        tx = frames[f.header.frame_idx][1][dpos[HEADER_SYMBOLS:]]
        # equalised: y = x + n with noise_var = N0/|h|^2
        assert abs(np.mean(np.abs(f.y - tx) ** 2) / f.noise_var[0] - 1) < 0.1


def test_refinement_kernels_match_references(rng):
    x = (np.exp(1j * np.pi / 2 * rng.integers(0, 4, 4032)) * np.exp(1j * np.pi / 4)).astype(np.complex64)
    k = np.arange(x.size)
    y = (0.8 * np.exp(1j * (2e-4 * k + 0.7)) * x + 0.3 * (rng.standard_normal(x.size)
                                                          + 1j * rng.standard_normal(x.size))).astype(np.complex64)
    a = sync._refine_kernel(y, x, 64)
    b = sync._refine_ref(y, x, 64)
    assert np.allclose(a, b, rtol=1e-4, atol=1e-6)
    assert abs(a[0] - 2e-4) < 2e-5 and abs(a[2] - 0.8) < 0.02 and abs(a[3] - 0.18) < 0.02
    h, nv = sync._gain_noise_kernel(y[:1024], x[:1024])
    hh = np.vdot(x[:1024], y[:1024]) / 1024
    assert abs(h - hh) < 1e-4 and abs(nv - np.mean(np.abs(y[:1024] - hh * x[:1024]) ** 2)) < 1e-4


def test_memory_stays_bounded_on_long_input(rng):
    """Buffers are allocated once: a long stream (3.6 M samples) does not grow them."""
    rx = sync.BurstReceiver()
    sizes = (rx.detector._zr.size, rx.demod._zr.size)
    for i in range(12):
        rx.feed((rng.standard_normal(300_000) + 1j * rng.standard_normal(300_000)).astype(np.complex64))
    assert (rx.detector._zr.size, rx.demod._zr.size) == sizes
    assert rx.detector.samples_in == 12 * 300_000
    assert len(rx.demod._queue) <= 1


@pytest.mark.parametrize("sps", [3, 4])
def test_other_sps_and_prefiltered_input(sps):
    rng = np.random.default_rng(30 + sps)
    fmt = F.FrameFormat(frame_len_log2=11, sps=sps)
    cfg = LinkConfig(bh=4, bw=4, planes=8)
    frames = F.image_frames(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), cfg, 1, 2, fmt=fmt)
    taps = ch.rrc_taps(sps)
    x = np.concatenate([np.concatenate([np.zeros(int(rng.integers(0, 2000)), np.complex64),
                                        ch.pulse_shape(s, sps, taps)]) for _, s in frames]
                       + [np.zeros(5000, np.complex64)])
    y = ch.awgn(ch.apply_cfo(ch.fractional_delay(x, 1.3), 0.01 / sps), -4, rng)
    rx = sync.BurstReceiver(fmt=fmt, sps=sps)
    out = rx.feed(y) + rx.flush()
    assert [f.header for f in out] == [h for h, _ in frames]
    assert all(abs(f.snr_db + 4) < 1 for f in out)
    # the same stream matched-filtered outside (prefiltered=True) gives the same frames
    zr, zi = sync.MatchedFilter(sps).process(y)
    rx = sync.BurstReceiver(fmt=fmt, sps=sps, prefiltered=True)
    out2 = rx.feed(zr + 1j * zi) + rx.flush()
    assert [f.header for f in out2] == [h for h, _ in frames]
    assert [f.sample_index for f in out2] == [f.sample_index for f in out]


# ---------------------------------------------------------------------------------------------------------------
# high SNR, level independence, stream edge cases (regression: at >= 10 dB a stage-1 trigger at the end of a burst
# made stage 2 accept a differential-cover sidelobe of the next preamble -- M2 is normalised by the noise-only
# variance, so sidelobes pass T2 at high SNR -- and the scan then skipped the true preamble)
def _short_frames(rng, n_img, image_id0=0):
    cfg = LinkConfig(bh=4, bw=4, planes=4, profile="equal")
    fmt = F.FrameFormat(frame_len_log2=10)
    frames = []
    for i in range(n_img):
        img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        frames += F.image_frames(img, cfg, tx_id=3, image_id=image_id0 + i, fmt=fmt)
    return frames


def _check_all_received(out, frames, starts, snr_db, cfo_sym, delay=None):
    assert [f.header for f in out] == [h for h, _ in frames]  # every frame, in order, nothing else
    for f, st in zip(out, starts):
        assert abs(f.sample_index - st) <= 1
        if delay is not None:  # fine timing (MF delay 16 samples): CFO-unbiased, not a neighbouring sample
            assert abs(f.timing - 16 - (st + delay)) < 0.15, f.timing - 16 - (st + delay)
        assert abs(f.cfo * SPS - cfo_sym) < 1e-4
        assert np.all(np.isfinite(f.y)) and np.all(np.isfinite(f.noise_var)) and np.all(f.noise_var > 0)
        if np.isfinite(snr_db):
            assert abs(f.snr_db - snr_db) < 1.0, (f.snr_db, snr_db)
        else:  # noiseless: the receiver's own distortion floor, capped at SNR_MAX_DB
            assert 30.0 < f.snr_db <= sync.SNR_MAX_DB + 1e-9, f.snr_db


@pytest.mark.parametrize("snr_db", [10.0, 20.0, 30.0, np.inf])
def test_loopback_high_snr_every_frame(snr_db):
    """Es/N0 of 10, 20, 30 dB and noiseless, CFO +-1 % of the symbol rate, fractional delay, random gaps (some
    shorter than a preamble): every frame decoded with its header, measured SNR within 1 dB (or capped)."""
    rng = np.random.default_rng(40 + int(min(snr_db, 99)))
    for cfo_sym in (0.01, -0.01):
        frames = _short_frames(rng, 5)
        x, starts = _stream(frames, rng, gap=(0, 4000))
        delay = float(rng.uniform(0, 1))
        x = ch.apply_cfo(ch.fractional_delay(x, delay), cfo_sym / SPS, phase0=float(rng.uniform(0, 2 * np.pi)))
        if np.isfinite(snr_db):
            x = ch.awgn(x, snr_db, rng)
        out, rx = _receive(x, chunk=50_000, rng=rng)
        assert rx.counters["header_fail"] == 0, rx.counters
        _check_all_received(out, frames, starts, snr_db, cfo_sym, delay)


def test_back_to_back_bursts_and_feed_boundaries():
    """Bursts with no gap at all, fed in chunks that end exactly at a burst start, inside a preamble and one
    sample after it: every frame, identical results to one feed."""
    rng = np.random.default_rng(51)
    frames = _short_frames(rng, 2)
    x, starts = _stream(frames, rng, gap=(0, 1))
    assert np.all(np.diff(starts) == ch.pulse_shape(frames[0][1], SPS, TAPS).size)  # really back to back
    y = _impair(x, rng, 20.0, 0.0037, 0.6)
    ref, rx = _receive(y)
    assert rx.counters["header_fail"] == 0, rx.counters
    _check_all_received(ref, frames, starts, 20.0, 0.0037)
    for cut_off in (0, 1, 7, 1000, -1):  # chunk boundaries relative to each burst start (MF delay is 16)
        cuts = sorted({int(s) + cut_off for s in starts} | {0, y.size})
        r = sync.BurstReceiver(sps=SPS)
        out = []
        for a, b in zip(cuts[:-1], cuts[1:]):
            out += r.feed(y[a:b])
        out += r.flush()
        assert [f.header for f in out] == [f.header for f in ref]
        for fa, fb in zip(out, ref):
            assert fa.sample_index == fb.sample_index and np.allclose(fa.y, fb.y, atol=1e-4)


@pytest.mark.parametrize("snr_db", [6.0, 30.0])
def test_receiver_does_not_depend_on_signal_level(snr_db):
    """The same stream scaled to 1e-3 and 1e3 of nominal power (noise scaled alike): identical headers and
    timing, the same measured SNR, |h| scaled by sqrt(scale), equalised symbols unchanged."""
    rng = np.random.default_rng(61)
    frames = _short_frames(rng, 2)
    x, starts = _stream(frames, rng, gap=(0, 3000))
    y = _impair(x, rng, snr_db, -0.008, 0.25)
    ref, _ = _receive(y)
    _check_all_received(ref, frames, starts, snr_db, -0.008)
    for scale in (1e-3, 1e3):
        out, rx = _receive((y * np.float32(np.sqrt(scale))).astype(np.complex64))
        assert rx.counters["header_fail"] == 0, (scale, rx.counters)
        assert [f.header for f in out] == [f.header for f in ref]
        for fa, fb in zip(out, ref):
            assert fa.sample_index == fb.sample_index
            assert abs(fa.snr_db - fb.snr_db) < 0.05
            assert abs(abs(fa.h) / np.sqrt(scale) - abs(fb.h)) < 1e-3 * abs(fb.h)
            assert np.allclose(fa.y, fb.y, atol=1e-3)


def test_pilot_track_kernel_matches_reference(rng):
    fmt = F.FrameFormat(frame_len_log2=12)
    dpos, pidx, pil_c = sync._payload_layout(fmt, 1 << 12)
    n = fmt.frame_symbols(1 << 12)
    y = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) * 0.5).astype(np.complex64)
    y[pidx] += np.conj(pil_c) * np.exp(1j * (1e-3 * pidx + 0.4))  # a phase ramp on the pilots
    y[:1024] += np.asarray(sync._PRE) * np.exp(1j * (1e-3 * np.arange(1024) + 0.4))
    for smooth in (0, 2, 4):
        t, ph = sync._pilot_track(y, pidx, pil_c, smooth)
        tr, phr = sync._pilot_track_ref(y, pidx, np.conj(pil_c), smooth)
        assert np.allclose(t, tr) and np.allclose(ph, phr, atol=1e-5)
        assert np.allclose(np.abs(ph), 1.0)


@pytest.mark.parametrize("span", [(-1700, -1500), (-600, 0), (-600, 1)])
def test_stage2_finds_the_peak_beyond_its_window(rng, span):
    """Stage 2 over a span that holds only partial-overlap sidelobes of a 20 dB preamble, or that ends exactly
    at (or one sample after) its peak: the candidate is the true peak, not a sidelobe or a neighbouring sample."""
    frames = _short_frames(rng, 1)
    x, starts = _stream(frames[:1], rng, gap=(0, 1), lead=3000, tail=3000)
    delay = 0.3
    y = _impair(x, rng, 20.0, 0.006, delay)
    zr, zi = sync.MatchedFilter(SPS).process(y)
    t_true = starts[0] + 16 + delay
    det = sync.BurstDetector(SPS)
    det._append(zr, zi)
    p = int(round(t_true))
    cand = det._stage2(p + span[0], p + span[1], 1.0)
    assert cand is not None and abs(cand.timing - t_true) < 0.25, (cand, t_true)
    assert abs(cand.cfo * SPS - 0.006) < 5e-4


def test_windowing_stage_cuts_exact_bursts_and_counts_too_long():
    """BurstReceiver with a windowing stage of its own (what the GNU Radio burst_sync block runs): one window per
    burst, starting PRE_SAMPLES before floor(timing) and exactly burst_window_len long, and demod_window on those
    windows gives bit-identically the default receiver's frames.  Frames longer than max_frame_len_log2 are
    counted as truncated / too_long and skipped, the next frames still decode."""
    rng = np.random.default_rng(61)
    frames = _short_frames(rng, 2)
    x, starts = _stream(frames, rng, gap=(0, 3000))
    y = _impair(x, rng, 3.0, 0.004, 0.3)
    ref, _ = _receive(y)
    fmt = F.FrameFormat()
    windows = []

    def keep(w):
        windows.append(sync.BurstWindow(w.candidate, w.header, w.start, w.z.copy(), w.n_symbols))
        return sync.demod_window(w, fmt, fmt.span * fmt.sps)

    rx = sync.BurstReceiver(sps=SPS, windower=lambda: sync.BurstWindower(fmt, 16, True, sink=keep))
    out = rx.feed(y[:70_000]) + rx.feed(y[70_000:]) + rx.flush()
    assert [f.header for f in out] == [f.header for f in ref] == [h for h, _ in frames]
    for f, g, w in zip(out, ref, windows):
        assert np.array_equal(f.y, g.y) and f.timing == g.timing and f.snr_db == g.snr_db
        n_sym = fmt.frame_symbols(w.header.header.payload_len())
        assert w.n_symbols == n_sym and sync.PRE_SAMPLES <= w.header.timing < sync.PRE_SAMPLES + 1
        assert w.z.size == sync.burst_window_len(w.header.timing, n_sym, SPS)
        assert w.start + w.header.timing == f.timing
    # frames of 2**10 payload symbols with a stage that accepts at most 2**9: counted and skipped
    rx = sync.BurstReceiver(sps=SPS, windower=lambda: sync.BurstWindower(fmt, 9, sink=keep))
    assert rx.feed(y) + rx.flush() == []
    assert rx.counters["truncated"] == rx.counters["too_long"] == len(frames) and rx.counters["header_fail"] == 0


# ------------------------------------------------------------------------------------- timing tracking (SFO)
def test_drift_kernels_match_references(rng):
    n = 3000
    zr = rng.standard_normal(2 * n + 64).astype(np.float32)
    zi = rng.standard_normal(2 * n + 64).astype(np.float32)
    a = sync._symbols_drift(zr, zi, 7.3, 0.0, 3, 2000, 2, 0.01, 0.4)
    assert np.allclose(a, sync._symbols(zr, zi, 7.3, 3, 2000, 2, 0.01, 0.4), atol=1e-5)   # no drift: the same
    for drift in (1e-4, -1.5e-4, 8e-6):
        a = sync._symbols_drift(zr, zi, 7.3, drift, 3, 2000, 2, 0.01, 0.4)
        b = sync._symbols_drift_ref(zr, zi, 7.3, drift, 3, 2000, 2, 0.01, 0.4, sync.drift_chunk(drift))
        assert np.allclose(a, b, atol=2e-6)
        assert sync.drift_chunk(drift) * abs(drift) / 2 <= 0.005
    with pytest.raises(ValueError):
        sync._symbols_drift(zr, zi, 7.3, 0.5, 3, 2900, 2, 0.0, 0.0)              # drifts out of the window
    fmt = F.FrameFormat()
    _, pidx, pil_c = sync._payload_layout(fmt, 1024)
    m = 2 * fmt.frame_symbols(1024) - 40                 # the last pilot blocks fall outside: no estimate there
    zr, zi = rng.standard_normal(m).astype(np.float32), rng.standard_normal(m).astype(np.float32)
    tau = np.empty(pidx.shape[0])
    w = np.empty(pidx.shape[0])
    fit = np.empty(4)
    sync._pilot_timing_kernel(zr, zi, 7.3, 2, pidx, pil_c, 0.01, 0.4, 0.35, sync._TAP_TABLE, tau, w, fit)
    tr, wr = sync._pilot_timing_ref(zr, zi, 7.3, 2, pidx, np.conj(pil_c), 0.01, 0.4, 0.35)
    assert np.allclose(tau, tr, atol=1e-6) and np.allclose(w, wr, rtol=1e-4)
    ok, sc = wr > 0, pidx[:, 8].astype(float)                    # the line fit's sums over the estimated blocks
    assert np.allclose(fit, [np.sum(tr[ok] * sc[ok]), np.sum(sc[ok] ** 2), np.sum(tr[ok] ** 2), ok.sum()])
    assert w[-1] == 0 and np.count_nonzero(w) > 0         # noise: some parabolas open upwards (no estimate)


def _sfo_frames(ppm, snr_db, seed):
    """Three 2^15-symbol frames through tied CFO/SFO of ``ppm`` (2.4 GHz, 2 MS/s) and AWGN; the received
    frames and the transmitted payload chunks."""
    rng = np.random.default_rng(seed)
    fmt = F.FrameFormat()
    cfg = LinkConfig(bh=1, bw=1, planes=8, profile="equal")
    img = rng.integers(0, 256, (128, 256, 3), dtype=np.uint8)
    frames = F.image_frames(img, cfg, tx_id=1, image_id=0, fmt=fmt)[:3]
    parts = [np.zeros(2000, np.complex64)]
    for _, sym in frames:
        parts += [ch.pulse_shape(sym, SPS, TAPS), np.zeros(3000, np.complex64)]
    cfo, ratio = ch.oscillator_offsets(ppm, 2.4e9, 2e6)
    x = ch.resample(ch.apply_cfo(np.concatenate(parts), cfo), ratio, 0.3)
    out, _ = _receive(ch.awgn(x, snr_db, rng, signal_power=1 / SPS))
    from infercom.link import encode_image

    chunks = F.segment(encode_image(img, cfg)[0], fmt.frame_len)
    return out, chunks


def _evm_eighths(f, chunks):
    ref = chunks[f.header.frame_idx]
    e = np.abs(f.y - ref) ** 2
    return np.array([10 * np.log10(np.mean(c)) for c in np.array_split(e, 8)])


def test_timing_is_tracked_across_a_long_frame():
    """4 ppm tied SFO drifts 2^15 symbols by 0.13 symbol: with the pilot-based timing tracking the EVM at the
    frame's end is that of its start and of the unimpaired link (before it: -13.4 dB at the end, -22 at the
    start, at 20 dB Es/N0)."""
    base, chunks = _sfo_frames(0.0, 20.0, 5)
    sfo, chunks4 = _sfo_frames(4.0, 20.0, 5)
    assert len(base) == len(sfo) == 3
    for f0, f4 in zip(sorted(base, key=lambda f: f.header.frame_idx), sorted(sfo, key=lambda f: f.header.frame_idx)):
        e0, e4 = _evm_eighths(f0, chunks), _evm_eighths(f4, chunks4)
        assert e4.max() - e4.min() < 0.5, e4                  # flat along the frame
        assert np.all(e4 < e0 + 0.5), (e4, e0)                # as good as without the offset


def test_drift_estimate_matches_the_clock_offset_and_is_zero_without_one():
    fmt = F.FrameFormat()
    rng = np.random.default_rng(3)
    n_pay = 1 << 15
    x = rng.choice(np.array([1 + 1j, 1 - 1j, -1 + 1j, -1 - 1j], np.complex64) / np.sqrt(2), fmt.frame_symbols(n_pay))
    _, pidx, pil_c = sync._payload_layout(fmt, n_pay)
    x[pidx.reshape(-1)] = np.conj(pil_c).reshape(-1)
    s = np.concatenate([np.zeros(40, np.complex64), ch.pulse_shape(x, SPS, TAPS), np.zeros(200, np.complex64)])
    mf = ch.matched_filter(s, TAPS)
    lag = (TAPS.size - 1)                                    # pulse shaping + matched filter delay (samples)
    hr = sync.HeaderResult(None, 0.0, 0.0, 1.0, 1e-3, 30.0, 40.0 + lag)
    for ratio, want in ((1.0, 0.0), (1 + 5e-6, -1e-5), (1 - 5e-6, 1e-5)):   # TX clock fast: symbols early
        y = ch.resample(mf, ratio, 0.0) if ratio != 1.0 else mf
        yn = (y + 0.05 * (rng.standard_normal(y.size) + 1j * rng.standard_normal(y.size))).astype(np.complex64)
        zr, zi = np.ascontiguousarray(yn.real), np.ascontiguousarray(yn.imag)
        drift, se = sync.timing_drift(zr, zi, hr, fmt, pidx, pil_c)
        if want == 0.0:
            assert drift == 0.0
        else:
            assert drift == pytest.approx(want, rel=0.1) and se < abs(want) / 10


def test_headroom_is_the_measured_rate_over_the_sample_rate():
    from infercom.sync.measure import headroom

    r = headroom(1e6, seconds=0.05)
    assert r["msps"] > 0.2 and r["factor"] == pytest.approx(r["msps"])         # 1 MS/s: factor = Msps
    slow = headroom(r["msps"] * 1e6 * 100, seconds=0.05)                        # a radio 100x this host
    assert not slow["ok"] and slow["factor"] < 0.1
