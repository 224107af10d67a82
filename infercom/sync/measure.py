# SPDX-License-Identifier: GPL-3.0-or-later
"""Measurements of the receiver (the docs/phy.md numbers): throughput (:func:`benchmark`, Msps; :func:`headroom`, the real-time factor at a sample rate), detection /
SNR / timing / CFO statistics over sample-level loopback (:func:`measure_detection`; SNR as Es/N0 in dB, timing
in samples, CFO in cycles per symbol) and detector statistics on white noise (:func:`noise_statistics`).
"""

from __future__ import annotations

import numpy as np

from ..channel import rrc_taps
from ..frame import FrameFormat
from .demod import BurstDemodulator
from .detector import _T1_DEFAULT, _T2_DEFAULT, BurstDetector, stage1_metric
from .detector_kernels import _stage2_kernel
from .matched_filter import MatchedFilter
from .receiver import BurstReceiver
from .templates import _E, _U


def busy_stream(fmt: FrameFormat, n_frames: int, snr_db: float = 0.0, cfo_sym: float = 0.005, seed: int = 1):
    """A busy channel: ``n_frames`` back-to-back bursts of random payload (gaps of 0..200 samples), CFO
    ``cfo_sym`` cycles/symbol, AWGN at ``snr_db`` dB. Returns (complex64 samples, the frames)."""
    from ..channel import apply_cfo, awgn, pulse_shape
    from ..frame import image_frames
    from ..link import LinkConfig

    rng = np.random.default_rng(seed)
    cfg = LinkConfig(bh=1, bw=1, planes=8, profile="equal")
    side = int(np.sqrt(n_frames * fmt.frame_len * 2 / 8 / 3)) + 1
    img = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    frames = image_frames(img, cfg, 1, 1, fmt=fmt)[:n_frames]
    taps = rrc_taps(fmt.sps, fmt.beta, fmt.span)
    parts = []
    for _, sym in frames:
        parts.append(np.zeros(int(rng.integers(0, 200)), np.complex64))
        parts.append(pulse_shape(sym, fmt.sps, taps))
    return awgn(apply_cfo(np.concatenate(parts), cfo_sym / fmt.sps), snr_db, rng), frames


def headroom(sample_rate: float, sps: int = 2, seconds: float = 0.25) -> dict:
    """How many times faster than ``sample_rate`` (samples/s) this host runs the burst receiver on a busy
    channel at ``sps`` (one thread, after a warm-up; about ``seconds`` of computing): ``{"msps", "factor",
    "ok"}`` with ``factor`` = measured samples/s / ``sample_rate`` and ``ok`` = factor >= 1.5 (the GNU Radio
    chain adds the flowgraph's overhead; below 1 the radio overflows). ``infercom rx`` checks it at start-up."""
    import time

    fmt = FrameFormat(frame_len_log2=13, sps=sps)
    x, _ = busy_stream(fmt, 6, 3.0, 0.003, 7)
    chunk = 1 << 16

    def once(xx):
        rx = BurstReceiver(fmt, sps)
        for i in range(0, xx.size, chunk):
            rx.feed(xx[i:i + chunk])
        rx.flush()

    once(x[: x.size // 3])                      # warm-up: numba's cache, the first bursts
    n, t0 = 0, time.perf_counter()
    while True:
        once(x)
        n += x.size
        dt = time.perf_counter() - t0
        if dt >= seconds:
            break
    msps = n / dt / 1e6
    factor = msps * 1e6 / float(sample_rate)
    return {"msps": msps, "factor": factor, "ok": bool(factor >= 1.5)}


def benchmark(n_frames: int = 24, snr_db: float = 0.0, cfo_sym: float = 0.005, seed: int = 1,
              frame_len_log2: int = 15) -> dict:
    """Throughput on a stream of back-to-back bursts (random gaps of 0..200 samples, AWGN at ``snr_db``), one
    thread, numba warm.  Msps by thread-CPU time (``*_cpu``; what the stage costs) and wall time:

    * ``receiver``: :class:`BurstReceiver` (matched filter + detector + demodulator; the detector skips bursts
      whose header decoded);
    * ``matched_filter``; ``detector_full_stream``: :class:`BurstDetector` over every sample (what a separate
      detector block does); ``demod``: :class:`BurstDemodulator` given the candidates;
    * ``detect_plus_demod``: receiver minus matched filter."""
    import time

    fmt = FrameFormat(frame_len_log2=frame_len_log2)
    x, frames = busy_stream(fmt, n_frames, snr_db, cfo_sym, seed)
    n = x.size
    chunk = 1 << 16

    def receiver(xx):
        rx = BurstReceiver(fmt, fmt.sps)
        out = []
        for i in range(0, xx.size, chunk):
            out += rx.feed(xx[i:i + chunk])
        return out + rx.flush()

    receiver(x[: min(n, 400_000)])  # warm-up (numba cache load / compile)
    w0, c0 = time.perf_counter(), time.thread_time()
    out = receiver(x)
    wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
    # stages separately
    mf = MatchedFilter(fmt.sps, fmt.beta, fmt.span)
    c0 = time.thread_time()
    zs = [mf.process(x[i:i + chunk]) for i in range(0, n, chunk)]
    t_mf = time.thread_time() - c0
    det = BurstDetector(fmt.sps)
    c0 = time.thread_time()
    cands = [det.feed(zr, zi) for zr, zi in zs]
    t_det = time.thread_time() - c0
    dem = BurstDemodulator(fmt, sample_offset=fmt.span * fmt.sps)
    c0 = time.thread_time()
    n_dem = sum(len(dem.feed(zr, zi, c)) for (zr, zi), c in zip(zs, cands))
    t_dem = time.thread_time() - c0
    return {
        "samples": int(n), "frames_sent": len(frames), "frames_received": len(out),
        "frames_received_demod_stage": n_dem, "snr_db": snr_db,
        "msps_receiver_wall": n / wall / 1e6, "msps_receiver_cpu": n / cpu / 1e6,
        "msps_matched_filter_cpu": n / max(t_mf, 1e-9) / 1e6,
        "msps_detector_full_stream_cpu": n / max(t_det, 1e-9) / 1e6,
        "msps_demod_cpu": n / max(t_dem, 1e-9) / 1e6,
        "msps_detect_plus_demod_cpu": n / max(cpu - t_mf, 1e-9) / 1e6,
    }


def measure_detection(snr_db: float, n_frames: int = 300, seed: int | None = None) -> dict:
    """Sample-level loopback statistics (the docs/phy.md table): ``n_frames`` short frames (frame_len_log2 = 10)
    in three streams with CFO +1 %, -1 % and +0.37 % of the symbol rate, a uniform fractional delay, random gaps
    of 0..3000 samples and AWGN at ``snr_db``, through :class:`BurstReceiver`.  Returns the fraction received
    with the right header, the measured-SNR mean/std and the rms timing (samples) and CFO (cycles/symbol)
    errors."""
    from ..channel import apply_cfo, awgn, fractional_delay, pulse_shape
    from ..frame import image_frames
    from ..link import LinkConfig

    rng = np.random.default_rng(int(100 - snr_db) if seed is None else seed)
    cfg = LinkConfig(bh=4, bw=4, planes=4, profile="equal")
    fmt = FrameFormat(frame_len_log2=10)
    taps = rrc_taps(2)
    frames = []
    for i in range(n_frames):
        img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        frames += image_frames(img, cfg, tx_id=1, image_id=i % 4096, fmt=fmt)
    got, snrs, terr, ferr = 0, [], [], []
    for part, cfo in enumerate((0.01, -0.01, 0.0037)):
        fr = frames[part::3]
        parts, starts, pos = [np.zeros(1500, np.complex64)], [], 1500
        for _, sym in fr:
            g = int(rng.integers(0, 3000))
            parts.append(np.zeros(g, np.complex64))
            pos += g
            s = pulse_shape(sym, 2, taps)
            starts.append(pos)
            parts.append(s)
            pos += s.size
        parts.append(np.zeros(6000, np.complex64))
        d = float(rng.uniform(0, 1))
        x = awgn(apply_cfo(fractional_delay(np.concatenate(parts), d), cfo / 2, 1.0), snr_db, rng)
        rx = BurstReceiver()
        out = rx.feed(x) + rx.flush()
        want = {h: st for (h, _), st in zip(fr, starts)}
        for f in out:
            if f.header in want:
                got += 1
                snrs.append(f.snr_db)
                terr.append(f.timing - 16 - (want[f.header] + d))
                ferr.append(f.cfo * 2 - cfo)
    snrs = np.array(snrs)
    return {"snr_db": snr_db, "frames": len(frames), "received": got / len(frames),
            "snr_mean": float(snrs.mean()) if snrs.size else float("nan"),
            "snr_std": float(snrs.std()) if snrs.size else float("nan"),
            "timing_rms_samples": float(np.sqrt(np.mean(np.square(terr)))) if terr else float("nan"),
            "cfo_rms_cycles_per_symbol": float(np.sqrt(np.mean(np.square(ferr)))) if ferr else float("nan")}


def noise_statistics(n_samples: int = 2_000_000, seed: int = 9) -> dict:
    """Detector statistics on white noise (the docs/phy.md false-alarm extrapolation): stage-1 M1 (mean, std,
    max over both phases) and stage-2 M2 tail probabilities at 400-position windows every 4000 samples."""
    rng = np.random.default_rng(seed)
    n = int(n_samples)
    w = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    zr, zi = MatchedFilter().process(w)
    m1a = stage1_metric(zr[::2], zi[::2])
    m1b = stage1_metric(zr[1::2], zi[1::2])
    m1 = np.maximum(m1a[: m1b.size], m1b)
    m2 = []
    for a in range(1000, n - 5000, 4000):
        dr = np.empty(400, np.float32)
        di = np.empty(400, np.float32)
        den = np.empty(400, np.float32)
        _stage2_kernel(zr, zi, _U.real.copy(), _U.imag.copy(), _E, 2, a, a + 400, dr, di, den)
        m2.append((dr.astype(np.float64) ** 2 + di.astype(np.float64) ** 2) / den)
    m2 = np.concatenate(m2)
    return {"m1_mean": float(m1a.mean()), "m1_std": float(m1a.std()), "m1_max_two_phases": float(m1.max()),
            "t1": _T1_DEFAULT, "m2_positions": int(m2.size), "m2_mean": float(m2.mean()),
            "p_m2_gt_5": float(np.mean(m2 > 5)), "p_m2_gt_10": float(np.mean(m2 > 10)), "m2_max": float(m2.max()),
            "t2": _T2_DEFAULT}
