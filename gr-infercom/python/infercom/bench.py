# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom bench`` suite ``gnuradio``: throughput of the gr-infercom blocks and of the whole RX and TX chains,
next to GNU Radio C++ blocks measured in the same run.

``run_bench(out_dir) -> dict`` writes ``out_dir/gnuradio.json`` and prints a table.  Every figure is items per
second of wall time through a real GNU Radio flowgraph (one thread per block), best of ``REPEATS`` runs:

* GNU Radio references (C++): ``corr_est_cc`` (64-symbol sync word, sps 2), ``costas_loop_cc`` (order 4),
  ``constellation_soft_decoder_cf`` (QPSK), ``fir_filter_ccf`` and ``fft_filter_ccf`` (the 17-tap RRC matched
  filter, direct form and FFT overlap-save) — Msps of input;
* InferCom stream blocks: ``block_fading`` (Msps), ``burst_sync`` (Msps of matched-filtered input with bursts;
  detection and header decoding);
* InferCom message blocks: ``frame_demod`` (Msps of the burst windows it demodulates: the payload, from
  ``burst_sync``'s header results), ``chase_combiner`` and
  ``server_link`` (M soft symbols/s), ``frame_modulator`` (M symbols/s out at sps 1, Msps out when it shapes);
* RX chain: ``vector_source -> fft_filter_ccf (RRC matched filter) -> burst_sync -> frame_demod ->
  chase_combiner`` on a busy channel (back-to-back 2**15-symbol frames, Es/N0 3 dB, CFO, fractional timing),
  Msps of input samples until every frame came out of the combiner; targets >= 20 Msps and >= 2x
  ``costas_loop_cc`` in the same run (``ratio_to_costas_loop_cc``: a ratio, so that the load of the machine
  cancels out as far as it can; the chain uses both cores, costas_loop_cc one);
* RX real-time factor per shipped hardware set-up (:func:`config_real_time`): the RX chain's Msps over the
  config's sample rate and over its safe maximum rate;
* TX chain: ``tx_controller`` (image -> frames, Kodak image at rate 1/9, six transmissions) ``->
  frame_modulator`` (RRC shaping inside, sps 2), Msps of output samples from start-up to the last sample,
  including the image encoding; target >= 40 Msps.  Next to it: the same chain with GNU Radio's
  ``interp_fir_filter_ccf`` doing the shaping, and that filter alone (C++ reference, Msps out).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pmt
from gnuradio import blocks, digital, filter, gr

REPEATS = 3
SPS = 2
RX_TARGET_MSPS = 20.0
#: the RX chain must run at least this many times as fast as GNU Radio's costas_loop_cc in the same run
RX_TARGET_RATIO_COSTAS = 2.0
COSTAS_REF = "costas_loop_cc (order 4)"
BUFFER = 1 << 17  # min output buffer (items) of the stream blocks, the same for references and ours
TX_TARGET_MSPS = 40.0
INTERP_REF = "interp_fir_filter_ccf (RRC x2, 17 taps; Msps out)"


def _quick() -> bool:
    return os.environ.get("INFERCOM_BENCH_QUICK") == "1"


def _best(fn, repeats: int = REPEATS) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = fn()
        best = min(best, t)
    return best


def _timed_run(tb) -> float:
    t0 = time.perf_counter()
    tb.run()
    return time.perf_counter() - t0


def stream_msps(make_chain, data: np.ndarray, n_items: int, repeats: int = REPEATS) -> float:
    """Msps of ``vector_source(data, repeat) -> head(n_items) -> chain -> null_sink``."""
    def once():
        tb = gr.top_block()
        src = blocks.vector_source_c(data, True)
        head = blocks.head(gr.sizeof_gr_complex, n_items)
        src.set_min_output_buffer(BUFFER)
        head.set_min_output_buffer(BUFFER)
        chain = make_chain()
        tb.connect(src, head, *chain)
        last = chain[-1]
        sig = last.output_signature()
        if sig.max_streams() != 0:
            tb.connect(last, blocks.null_sink(sig.sizeof_stream_item(0)))
        tb._keep = (src, head, chain)
        return _timed_run(tb)

    return n_items / _best(once, repeats) / 1e6


def gnuradio_references(n_items: int) -> dict:
    """Msps of GNU Radio's C++ blocks on noisy QPSK at 2 samples per symbol."""
    from infercom.channel import rrc_taps

    rng = np.random.default_rng(1)
    data = ((rng.standard_normal(1 << 16) + 1j * rng.standard_normal(1 << 16)) * 0.7).astype(np.complex64)
    pre = np.exp(2j * np.pi * rng.random(64)).astype(np.complex64)
    qpsk = digital.constellation_qpsk().base()
    taps = rrc_taps(SPS, 0.35, 8).tolist()
    refs = {
        "corr_est_cc (64-symbol sync word, sps 2)":
            lambda: [digital.corr_est_cc(pre.tolist(), SPS, 0, 0.9, digital.THRESHOLD_ABSOLUTE)],
        COSTAS_REF: lambda: [digital.costas_loop_cc(0.0628, 4, False)],
        "constellation_soft_decoder_cf (QPSK)": lambda: [digital.constellation_soft_decoder_cf(qpsk)],
        "fir_filter_ccf (RRC matched filter, 17 taps)": lambda: [filter.fir_filter_ccf(1, taps)],
        "fft_filter_ccf (RRC matched filter, 17 taps)": lambda: [filter.fft_filter_ccf(1, taps, 1)],
    }
    out = {name: stream_msps(make, data, n_items) for name, make in refs.items()}
    # the pulse shaper a GNU Radio TX would use: Msps of *output* samples (2 per input symbol)
    out[INTERP_REF] = SPS * stream_msps(lambda: [filter.interp_fir_filter_ccf(SPS, taps)], data, n_items // SPS)
    return out


# ------------------------------------------------------------------------------------------------ workloads
def matched_filter(sps: int = SPS, beta: float = 0.35, span: int = 8):
    """The receiver's RRC matched filter as GNU Radio's ``fft_filter_ccf`` (one thread): the same causal filter
    as ``fir_filter_ccf(1, rrc_taps(sps, beta, span))`` (equal up to float rounding), about twice as fast
    for these 17 taps, so it leaves more of the CPU to the Python blocks."""
    from infercom.channel import rrc_taps

    return filter.fft_filter_ccf(1, rrc_taps(sps, beta, span).tolist(), 1)

def _kodak_or_random(rng):
    from infercom.bench_core import DATASETS
    from infercom.imageio import load_image

    cand = DATASETS / "kodak24" / "kodim01.png"
    if cand.is_file():
        return load_image(cand), cand.name
    return rng.integers(0, 256, (512, 768, 3), dtype=np.uint8), "random 768x512"


def rx_workload(n_frames: int, snr_db: float = 3.0, seed: int = 2):
    """A busy channel: ``n_frames`` back-to-back frames (2**15 payload symbols) at sps 2 with CFO, fractional
    timing and AWGN, plus the frames' headers. Returns (samples, headers)."""
    from infercom.channel import apply_cfo, awgn, fractional_delay, pulse_shape, rrc_taps
    from infercom.frame import FrameFormat, image_frames
    from infercom.link import LinkConfig

    rng = np.random.default_rng(seed)
    img, _ = _kodak_or_random(rng)
    fmt = FrameFormat()
    taps = rrc_taps(SPS, fmt.beta, fmt.span)
    headers, pieces = [], [np.zeros(4096, np.complex64)]
    image_id = 0
    while len(headers) < n_frames:
        for h, sym in image_frames(img, LinkConfig(), 1, image_id, fmt=fmt):
            pieces.append(pulse_shape(sym, SPS, taps))
            pieces.append(np.zeros(2 * int(rng.integers(16, 256)), np.complex64))
            headers.append(h)
            if len(headers) == n_frames:
                break
        image_id += 1
    pieces.append(np.zeros(1 << 17, np.complex64))
    x = fractional_delay(apply_cfo(np.concatenate(pieces), 0.003), 0.41)
    return awgn(x, snr_db, rng), headers


class _counter(gr.basic_block):
    """Counts PDUs; sets ``done`` after ``expected`` of them."""

    def __init__(self, expected: int):
        gr.basic_block.__init__(self, name="infercom_bench_counter", in_sig=None, out_sig=None)
        import threading

        self.expected = expected
        self.n = 0
        self.done = threading.Event()
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self._on)

    def _on(self, msg):
        self.n += 1
        if self.n >= self.expected:
            self.done.set()


def rx_chain_msps(samples: np.ndarray, n_frames: int, repeats: int = REPEATS) -> dict:
    """Matched filter (fft_filter_ccf) -> burst_sync -> frame_demod -> chase_combiner: Msps until all frames
    came out."""
    from . import burst_sync, chase_combiner, frame_demod

    def once():
        tb = gr.top_block()
        src = blocks.vector_source_c(samples, False)
        mf = matched_filter()
        mf.set_min_output_buffer(BUFFER)
        src.set_min_output_buffer(BUFFER)
        sync = burst_sync(SPS, 0.35, 8, True, 15)
        demod = frame_demod(SPS, 0.35, 8)
        comb = chase_combiner(4096, 600.0)
        cnt = _counter(n_frames)
        tb.connect(src, mf, sync)
        tb.msg_connect(sync, "bursts", demod, "in")
        tb.msg_connect(demod, "out", comb, "in")
        tb.msg_connect(comb, "out", cnt, "in")
        t0 = time.perf_counter()
        tb.start()
        ok = cnt.done.wait(600)
        dt = time.perf_counter() - t0
        tb.stop()
        tb.wait()
        once.frames = cnt.n
        once.ok = ok
        return dt

    t = _best(once, repeats)
    return {"msps": samples.size / t / 1e6, "frames_out": once.frames, "frames_in": n_frames,
            "samples": int(samples.size)}


def _post_and_time(block, in_port: str, out_port: str, pdus: list, expected: int, connect_extra=None) -> float:
    tb = gr.top_block()
    cnt = _counter(expected)
    if out_port:
        tb.msg_connect(block, out_port, cnt, "in")
    if connect_extra:
        connect_extra(tb)
    tb.start()
    t0 = time.perf_counter()
    for p in pdus:
        block.to_basic_block()._post(pmt.intern(in_port), p)
    if out_port:
        cnt.done.wait(600)
    dt = time.perf_counter() - t0
    tb.stop()
    tb.wait()
    return dt


def message_blocks(samples: np.ndarray, n_frames: int) -> dict:
    """frame_demod (Msps of burst samples), chase_combiner and server_link (M soft symbols/s)."""
    import zmq

    from . import burst_sync, chase_combiner, frame_demod, server_link

    # bursts and soft frames from one pass of the real receiver
    tb = gr.top_block()
    src = blocks.vector_source_c(samples, False)
    mf = matched_filter()
    sync = burst_sync(SPS, 0.35, 8, True, 15)
    demod = frame_demod(SPS, 0.35, 8)
    dbg_b, dbg_s = blocks.message_debug(), blocks.message_debug()
    tb.connect(src, mf, sync)
    tb.msg_connect(sync, "bursts", demod, "in")
    tb.msg_connect(sync, "bursts", dbg_b, "store")
    tb.msg_connect(demod, "out", dbg_s, "store")
    tb.start()
    t0 = time.monotonic()
    while dbg_s.num_messages() < n_frames and time.monotonic() - t0 < 600:
        time.sleep(0.01)
    tb.stop()
    tb.wait()
    bursts = [dbg_b.get_message(i) for i in range(dbg_b.num_messages())]
    softs = [dbg_s.get_message(i) for i in range(dbg_s.num_messages())]
    burst_samples = sum(pmt.length(pmt.cdr(b)) for b in bursts)
    soft_symbols = sum(pmt.length(pmt.cdr(s)) for s in softs)
    out = {}
    out["frame_demod"] = burst_samples / _best(
        lambda: _post_and_time(frame_demod(SPS, 0.35, 8), "in", "out", bursts, len(bursts))) / 1e6
    out["chase_combiner"] = soft_symbols / _best(
        lambda: _post_and_time(chase_combiner(4096, 600.0), "in", "out", softs, len(softs))) / 1e6

    ctx = zmq.Context.instance()

    def link_once():
        router = ctx.socket(zmq.ROUTER)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        link = server_link(f"tcp://127.0.0.1:{port}", "", [], 100000)
        import threading

        got = threading.Event()

        def drain():
            n = 0
            while n < len(softs):
                router.recv_multipart()
                n += 1
            got.set()

        th = threading.Thread(target=drain, daemon=True)
        th.start()
        tb2 = gr.top_block()
        tb2.msg_connect(link, "feedback", blocks.message_debug(), "store")
        tb2.start()
        t0 = time.perf_counter()
        for p in softs:
            link.to_basic_block()._post(pmt.intern("in"), p)
        got.wait(600)
        dt = time.perf_counter() - t0
        tb2.stop()
        tb2.wait()
        router.close(0)
        return dt

    out["server_link"] = soft_symbols / _best(link_once) / 1e6
    return out


def tx_blocks(n_images: int) -> dict:
    """TX chain (tx_controller -> frame_modulator shaping at sps 2), the same chain with GNU Radio's
    interpolator doing the shaping (frame_modulator at 1 sample/symbol -> interp_fir_filter_ccf), and
    frame_modulator alone."""
    from infercom.channel import rrc_taps
    from infercom.frame import FrameFormat, image_frames
    from infercom.link import LinkConfig

    from . import frame_modulator, tx_controller
    from .tags import header_to_meta, make_pdu

    rng = np.random.default_rng(3)
    img, name = _kodak_or_random(rng)
    fmt = FrameFormat()
    frames = image_frames(img, LinkConfig(), 0, 0, fmt=fmt)
    tail = fmt.span // 2
    n_frames = len(frames) * n_images
    n_sym = sum(s.size for _, s in frames) * n_images

    def burst_items(sps: int) -> int:
        """Items the modulator sends: symbols + tails at sps 1; at sps >= 2 samples, the RRC response included
        (the interpolator variant gets ``span`` extra zero symbols per burst, so it sends as many samples)."""
        return (n_sym + n_frames * tail) * sps + (n_frames * fmt.span * sps if sps > 1 else 0)

    taps = rrc_taps(SPS, fmt.beta, fmt.span).tolist()

    def chain_once(gr_interp: bool):
        # burst mode (as for a USRP): no idle zeros, so only burst samples are counted; the flowgraph runs
        # until every burst sample reached the sink.  Both variants send the same pulses: the GNU Radio
        # interpolator gets ``span`` zero symbols per burst so that its output holds the filter's whole response
        tb = gr.top_block()
        ctl = tx_controller([img] * n_images, 0, 3, 3, 8, "importance", -4, 0, 15, False, 1, 4, 5.0, 1, 16, 0, 0)
        sink = blocks.null_sink(gr.sizeof_gr_complex)
        if gr_interp:
            mod = frame_modulator(tail + fmt.span, 0, 0, False, 4096, 0)
            interp = filter.interp_fir_filter_ccf(SPS, taps)
            interp.set_min_output_buffer(BUFFER)
            tb.connect(mod, interp, sink)
        else:
            mod = frame_modulator(tail, 0, 0, False, 4096, 0, SPS, fmt.beta, fmt.span)
            tb.connect(mod, sink)
        tb.msg_connect(ctl, "frames", mod, "in")
        tb.msg_connect(mod, "sent", ctl, "sent")
        n_out = burst_items(SPS)
        t0 = time.perf_counter()
        tb.start()
        while sink.nitems_read(0) < n_out and time.perf_counter() - t0 < 600:
            time.sleep(0.0005)
        dt = time.perf_counter() - t0
        tb.stop()
        tb.wait()
        return n_out / dt / 1e6

    def mod_once(sps: int):
        tb = gr.top_block()
        mod = frame_modulator(tail, 0, 0, True, 4096, 0, sps, fmt.beta, fmt.span)
        pdus = [make_pdu(header_to_meta(h), s) for h, s in frames] * n_images
        for p in pdus:
            mod.to_basic_block()._post(pmt.intern("in"), p)
        n_items = burst_items(sps)
        head = blocks.head(gr.sizeof_gr_complex, n_items)
        tb.connect(mod, head, blocks.null_sink(gr.sizeof_gr_complex))
        return n_items / _timed_run(tb) / 1e6

    return {"tx_chain_msps": max(chain_once(False) for _ in range(REPEATS)),
            "tx_chain_gr_interp_msps": max(chain_once(True) for _ in range(REPEATS)),
            "frame_modulator_msps": max(mod_once(1) for _ in range(REPEATS)),
            "frame_modulator_shaping_msps": max(mod_once(SPS) for _ in range(REPEATS)), "tx_image": name,
            "tx_images": n_images, "tx_samples": burst_items(SPS)}


def stream_blocks(samples: np.ndarray, n_items: int) -> dict:
    from infercom.channel import rrc_taps

    from . import block_fading, burst_sync

    mfz = np.convolve(samples[: 1 << 21], rrc_taps(SPS, 0.35, 8)).astype(np.complex64)[: 1 << 21]
    return {
        "block_fading": stream_msps(lambda: [block_fading("frame", 0.0, 0)], mfz, n_items),
        "burst_sync (matched-filtered input, bursts present)":
            stream_msps(lambda: [burst_sync(SPS, 0.35, 8, True, 15)], mfz, n_items),
    }


def config_real_time(rx_msps: float) -> dict:
    """The RX chain's real-time factor for every shipped hardware set-up: measured input Msps / the config's
    ``sample_rate`` (and / its ``max_sample_rate``, the fastest the set-up may be run at). A factor below 1
    means the host cannot keep up with that radio at that rate (overflows). The chain was measured at sps 2;
    its cost per sample barely depends on sps (matched filter and detection run per sample), so the factor
    holds for the configs' other sps to first order."""
    from .hwconfig import load_hw_config, shipped_dirs

    out = {}
    for d in shipped_dirs()[:1]:
        for f in sorted(d.glob("*.yaml")):
            try:
                cfg = load_hw_config(str(f))
            except ValueError as exc:
                out[f.stem] = {"error": str(exc)}
                continue
            sr, mx = float(cfg["sample_rate"]), float(cfg.get("max_sample_rate") or cfg["sample_rate"])
            out[cfg["name"]] = {"sample_rate": sr, "sps": int(cfg["sps"]), "real_time_factor": rx_msps * 1e6 / sr,
                                "max_sample_rate": mx, "real_time_factor_at_max": rx_msps * 1e6 / mx,
                                "keeps_up": bool(rx_msps * 1e6 >= sr)}
    return out


def run_bench(out_dir: Path) -> dict:
    """Run the gnuradio suite, print a table, write ``out_dir/gnuradio.json``; return the record."""
    from infercom.bench_core import machine

    info = machine()
    quick = _quick()
    n_items = 2_000_000 if quick else 10_000_000
    n_frames = 12 if quick else 48
    t_all = time.perf_counter()
    refs = gnuradio_references(n_items)
    samples, headers = rx_workload(n_frames)
    rx = rx_chain_msps(samples, n_frames)
    blocks_msps = stream_blocks(samples, n_items)
    blocks_msps.update(message_blocks(samples, n_frames))
    tx = tx_blocks(1 if quick else 6)
    blocks_msps["frame_modulator (symbols out)"] = tx.pop("frame_modulator_msps")
    blocks_msps[f"frame_modulator (RRC x{SPS} inside, samples out)"] = tx.pop("frame_modulator_shaping_msps")
    corr = refs["corr_est_cc (64-symbol sync word, sps 2)"]
    costas = refs[COSTAS_REF]
    ratio_costas = rx["msps"] / costas
    record = {
        "suite": "gnuradio", "machine": info, "quick": quick,
        "gnuradio_reference_msps": refs,
        "infercom_block_msps": blocks_msps,
        "ratio_to_corr_est_cc": {k: v / corr for k, v in blocks_msps.items()},
        "rx_chain": {**rx, "target_msps": RX_TARGET_MSPS, "pass": bool(rx["msps"] >= RX_TARGET_MSPS),
                     "chain": "vector_source -> fft_filter_ccf (RRC) -> burst_sync -> frame_demod -> "
                              "chase_combiner", "ratio_to_corr_est_cc": rx["msps"] / corr,
                     "ratio_to_costas_loop_cc": ratio_costas, "target_ratio_to_costas_loop_cc": RX_TARGET_RATIO_COSTAS,
                     "pass_ratio_to_costas_loop_cc": bool(ratio_costas >= RX_TARGET_RATIO_COSTAS)},
        "rx_real_time_factor": config_real_time(rx["msps"]),
        "tx_chain": {"msps": tx["tx_chain_msps"], "target_msps": TX_TARGET_MSPS,
                     "pass": bool(tx["tx_chain_msps"] >= TX_TARGET_MSPS), "image": tx["tx_image"],
                     "images": tx["tx_images"], "samples": tx["tx_samples"],
                     "chain": "tx_controller (image -> frames) -> frame_modulator (RRC shaping, sps 2) -> sink",
                     "ratio_to_interp_fir_filter_ccf": tx["tx_chain_msps"] / refs[INTERP_REF],
                     "gr_interp_chain_msps": tx["tx_chain_gr_interp_msps"],
                     "gr_interp_chain": "tx_controller -> frame_modulator (1 sample/symbol) -> "
                                        "interp_fir_filter_ccf (RRC, sps 2) -> sink"},
        "seconds": time.perf_counter() - t_all,
        "notes": "wall-clock Msps through real flowgraphs (one thread per block), best of "
                 f"{REPEATS}; RX workload: {n_frames} back-to-back 2**15-symbol frames, Es/N0 3 dB, CFO 0.003 "
                 "cycles/sample, timing 0.41 samples",
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gnuradio.json").write_text(json.dumps(record, indent=2))
    m = info
    print(f"gnuradio suite ({m['cpu']}, {m['cores']} cores, load {m.get('load_average_1min') or 0:.1f} at start)")
    print(f"{'GNU Radio C++ reference':<58} {'Msps':>8}")
    for k, v in refs.items():
        print(f"{k:<58} {v:8.1f}")
    print(f"{'InferCom block':<58} {'M/s':>8} {'vs corr_est':>11}")
    for k, v in blocks_msps.items():
        print(f"{k:<58} {v:8.1f} {v / corr:10.2f}x")
    print(f"RX chain (MF -> sync -> demod -> Chase): {rx['msps']:.1f} Msps "
          f"(target >= {RX_TARGET_MSPS:g}: {'ok' if record['rx_chain']['pass'] else 'MISS'}), "
          f"{ratio_costas:.2f}x costas_loop_cc (target >= {RX_TARGET_RATIO_COSTAS:g}x: "
          f"{'ok' if record['rx_chain']['pass_ratio_to_costas_loop_cc'] else 'MISS'}), "
          f"{rx['frames_out']}/{n_frames} frames")
    print("RX real-time factor per hardware set-up (measured Msps / sample rate; at its max sample rate):")
    for name, r in record["rx_real_time_factor"].items():
        if "error" in r:
            print(f"  {name:<12} {r['error']}")
            continue
        print(f"  {name:<12} {r['sample_rate'] / 1e6:6.2f} MS/s: {r['real_time_factor']:6.1f}x   "
              f"{r['max_sample_rate'] / 1e6:6.2f} MS/s: {r['real_time_factor_at_max']:5.2f}x"
              f"{'' if r['real_time_factor_at_max'] >= 1 else '  (cannot keep up at the max rate)'}")
    print(f"TX chain (controller -> modulator shaping x{SPS}): {tx['tx_chain_msps']:.1f} Msps "
          f"(target >= {TX_TARGET_MSPS:g}: {'ok' if record['tx_chain']['pass'] else 'MISS'}; "
          f"{record['tx_chain']['ratio_to_interp_fir_filter_ccf']:.2f}x interp_fir_filter_ccf alone); "
          f"with GNU Radio's interpolator instead: {tx['tx_chain_gr_interp_msps']:.1f} Msps")
    return record
