# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom loopback``: the headless loopback transceiver (grc/loopback_headless.grc) run end to end.

``infercom_tx`` (TX controller -> frame modulator, RRC-shaped bursts) -> [block fading] -> CFO -> [phase noise]
-> fractional timing offset and sample-clock offset -> AWGN at Es/N0 -> [IQ imbalance] -> [DC offset] ->
``infercom_rx`` (RRC matched filter -> burst sync -> frame demod -> Chase
combiner) -> local reconstruction (MMSE + bicubic via infercom.link), and with ``--server`` the soft frames also
go to the inference server, whose ACK/NACK drives the transmitter's retransmissions.

Reported per image: frames sent / received / lost, header failures, measured vs configured SNR, BER per plane
(MSB first) with its dB-equivalent loss against theory, retransmissions, and the image metrics of
``infercom simulate`` (low-res MSE of MMSE and hard decisions, PSNR / SSIM of the upsampled image).

The radio impairments (docs/phy.md section 1, "Radio impairments"; the numpy models of the same name are in
``infercom.channel``): ``--ppm`` is the frequency error of the transmitter's reference against the receiver's
and drives both the carrier offset (``ppm * 1e-6 * --center-freq`` Hz, added to ``--cfo-hz`` / ``--cfo-frac``)
and the sample-clock offset (resampling ratio ``1 + ppm * 1e-6``); ``--dc-db`` / ``--dc-phase-deg`` a complex DC
offset relative to the burst's sample power ``1/sps``; ``--iq-gain-db`` / ``--iq-phase-deg`` the receiver's IQ
imbalance (GNU Radio's ``channels.iqbal_gen``, receiver mode); ``--phase-noise-hz`` the Lorentzian linewidth
of Wiener phase noise.  Blocks of impairments left at zero are not inserted.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import sys
import threading
import time

import numpy as np
import pmt
from gnuradio import analog, blocks, filter, gr

from infercom.channel import add_channel_arguments, dc_offset_value, oscillator_offsets
from infercom.limits import DESIGN_SNR_MAX_DB, DESIGN_SNR_MIN_DB
from infercom.nr import options as nr_cli

from . import add_link_arguments, block_size, nr_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, help="folder of images (or one image file)")
    p.add_argument("--snr-db", type=float, required=True, help="Es/N0 of the AWGN in dB")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--cfo-hz", type=float, default=None,
                   help="carrier frequency offset in Hz (see --samp-rate; default: 0, or --cfo-frac)")
    g.add_argument("--cfo-frac", type=float, default=None,
                   help="carrier frequency offset as a fraction of the symbol rate (e.g. 0.01 = 1%%; default: "
                        "from --cfo-hz, else 0)")
    p.add_argument("--samp-rate", type=float, default=2e6,
                   help="sample rate in S/s for --cfo-hz, --ppm and --phase-noise-hz (default 2e6)")
    p.add_argument("--ppm", type=float, default=0.0,
                   help="frequency error of the TX reference against the RX's in ppm: carrier offset ppm*1e-6*"
                        "--center-freq Hz (added to --cfo-hz/--cfo-frac) and sample-clock ratio 1+ppm*1e-6 "
                        "(default 0)")
    p.add_argument("--center-freq", type=float, default=2.45e9,
                   help="carrier frequency in Hz for --ppm (default 2.45e9, as hw_configs/)")
    p.add_argument("--dc-db", type=float, default=None,
                   help="receiver DC offset power in dB relative to the burst's sample power 1/sps, e.g. -30 "
                        "(default: none)")
    p.add_argument("--dc-phase-deg", type=float, default=45.0, help="angle of the DC offset in degrees (default 45)")
    p.add_argument("--iq-gain-db", type=float, default=0.0,
                   help="receiver IQ amplitude imbalance, I relative to Q, in dB (default 0)")
    p.add_argument("--iq-phase-deg", type=float, default=0.0,
                   help="receiver IQ phase imbalance (I LO off quadrature) in degrees (default 0)")
    p.add_argument("--phase-noise-hz", type=float, default=0.0,
                   help="Wiener phase noise: Lorentzian linewidth of the oscillator pair in Hz (L(f) = "
                        "lw/(pi f^2); -80 dBc/Hz at 10 kHz per oscillator is ~3.1 Hz each, 6.3 Hz the pair; "
                        "default 0)")
    p.add_argument("--timing", type=float, default=None,
                   help="fractional timing offset in samples (default: drawn from the seed in [0, 1))")
    # the GNU Radio channel cannot normalise an attempt's fading gains: no --snr-mode (always "average")
    add_channel_arguments(p, fading="none", fading_per="image", snr_mode=None, with_frame_len=False)
    p.add_argument("--server", default=None,
                   help="inference server address, e.g. tcp://127.0.0.1:5555 (default: none, images are "
                        "reconstructed locally)")
    p.add_argument("--attempts", type=int, default=1,
                   help="without --server: blind attempts per image, Chase-combined at the receiver")
    p.add_argument("--max-attempts", type=int, default=4, help="with --server: ARQ attempt limit")
    p.add_argument("--timeout-s", type=float, default=10.0, help="with --server: feedback timeout (s)")
    p.add_argument("--sps", type=int, default=2, help="samples per symbol (default 2)")
    p.add_argument("--gap", default="64:1024", help="random idle gap between bursts MIN:MAX symbols")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object per image and a summary")
    p.add_argument("--out", default=None, help="also write the JSON report to this file (default: none)")
    p.add_argument("--save-images", default=None,
                   help="folder for the reconstructed images (PNG) (default: none saved)")
    p.add_argument("--wall-timeout", type=float, default=600.0, help="give up after this many seconds")
    nr_cli.add_arguments(p)
    add_link_arguments(p)


class _collector(gr.basic_block):
    """Message sink of the app: per-attempt frames, Chase-combined frames, TX status, fading reports."""

    def __init__(self):
        gr.basic_block.__init__(self, name="infercom_loopback_collector", in_sig=None, out_sig=None)
        self.lock = threading.Lock()
        self.frames = []          # (meta without arrays) of every demodulated frame, per attempt
        self.nr_frames = {}       # NR frames: (tx_id, image_id, attempt, frame_idx) -> (meta, y, nv)
        self.combined = {}        # (tx_id, image_id, frame_idx) -> (meta, y, nv) latest Chase combination
        self.n_combined = 0       # combined PDUs received
        self.status = []
        self.fading = []
        for port, fn in (("frames", self._on_frame), ("combined", self._on_combined), ("status", self._on_status),
                         ("fading", self._on_fading)):
            self.message_port_register_in(pmt.intern(port))
            self.set_msg_handler(pmt.intern(port), fn)

    def _on_frame(self, msg):
        from ..tags import meta_from_pmt

        from ..tags import parse_pdu

        if meta_from_pmt(pmt.car(msg)).get("system") == "nr":
            meta, y = parse_pdu(msg, np.complex64)
            key = (int(meta["tx_id"]), int(meta["image_id"]), int(meta["attempt"]), int(meta["frame_idx"]))
            with self.lock:
                self.nr_frames[key] = (dict(meta), y, meta["noise_var"])
        meta = meta_from_pmt(pmt.car(msg))
        meta.pop("noise_var", None)
        with self.lock:
            self.frames.append(meta)

    def _on_combined(self, msg):
        from ..tags import parse_pdu

        meta, y = parse_pdu(msg, np.complex64)
        key = (int(meta["tx_id"]), int(meta["image_id"]), int(meta["frame_idx"]))
        with self.lock:
            self.combined[key] = (meta, y, meta["noise_var"])
            self.n_combined += 1

    def _on_status(self, msg):
        with self.lock:
            self.status.append(pmt.to_python(msg))

    def _on_fading(self, msg):
        with self.lock:
            self.fading.append(pmt.to_python(msg))


class wiener_phase_noise(gr.hier_block2):
    """Wiener phase noise from GNU Radio blocks, the model of ``infercom.channel.apply_phase_noise``:
    ``out[k] = in[k] * exp(j*phi[k])``, ``phi[k] = phi[k-1] + d[k]``, ``d[k] ~ N(0, variance)`` (rad^2 per
    sample; ``2*pi*linewidth_hz/samp_rate``).  ``analog.noise_source_f`` -> ``iir_filter_ffd`` 1/(1 - z^-1)
    (the accumulator, double state) -> ``phase_modulator_fc`` -> ``multiply_cc``.  (GNU Radio's own
    ``channels.phase_noise_gen`` low-pass filters the noise instead: a bounded jitter, not an oscillator's
    random walk, and its seed is fixed.)"""

    def __init__(self, variance: float, seed: int = 0):
        gr.hier_block2.__init__(self, "wiener_phase_noise", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        if not variance >= 0:
            raise ValueError(f"phase noise variance must be >= 0, got {variance}")
        self.src = analog.noise_source_f(analog.GR_GAUSSIAN, math.sqrt(variance), int(seed))
        self.acc = filter.iir_filter_ffd([1.0], [1.0, 1.0], True)
        self.mod = analog.phase_modulator_fc(1.0)
        self.mult = blocks.multiply_cc()
        self.connect(self.src, self.acc, self.mod, (self.mult, 1))
        self.connect(self, (self.mult, 0))
        self.connect(self.mult, self)


class LoopbackFlowgraph(gr.top_block):
    """The headless loopback of grc/loopback_headless.grc, built in Python from the same blocks with the same
    wiring: the ``infercom_tx`` hier block -> [block fading] -> CFO -> [phase noise] -> fractional timing and
    sample-clock offset -> AWGN -> [IQ imbalance] -> [DC offset] -> the ``infercom_rx`` hier block, whose frames
    and Chase combinations go to the app's collector.

    Channel keywords: ``cfo`` in cycles/sample; ``timing`` the resampler's initial phase in samples;
    ``sfo_ratio`` transmitter samples per receiver sample (``1 + ppm*1e-6``, ``infercom.channel.resample``);
    ``phase_noise_var`` the Wiener phase increment variance per sample in rad^2 (``2*pi*linewidth/samp_rate``,
    ``infercom.channel.wiener_phase``); ``iq_gain_db`` / ``iq_phase_deg`` the receiver IQ imbalance
    (``channels.iqbal_gen`` mode 1 = ``infercom.channel.iq_imbalance``); ``dc`` the complex DC added last
    (``infercom.channel.dc_offset``).  The bracketed blocks are inserted only when non-zero."""

    def __init__(self, images, snr_db: float, *, cfo: float = 0.0, timing: float = 0.0, sfo_ratio: float = 1.0,
                 phase_noise_var: float = 0.0, iq_gain_db: float = 0.0, iq_phase_deg: float = 0.0,
                 dc: complex = 0j, fading: str = "none",
                 fading_per: str = "image", server: str | None = None, attempts: int = 1, max_attempts: int = 4,
                 timeout_s: float = 10.0, sps: int = 2, gap=(64, 1024), seed: int = 0, tx_id: int = 0,
                 bh: int = 3, bw: int = 3, planes: int = 8, profile: str = "importance", design_snr_db: int = -4,
                 frame_len_log2: int = 15, max_images: int = 0, nr: dict | None = None):
        gr.top_block.__init__(self, "infercom_loopback_headless")
        from .. import block_class

        block_fading, rx, tx = (block_class(b) for b in ("block_fading", "rx", "tx"))
        from infercom.frame import FrameFormat

        fmt = FrameFormat(frame_len_log2=frame_len_log2, sps=sps)
        self.fmt = fmt
        self.sps = sps
        self.txb = tx(images=images, tx_id=tx_id, bh=bh, bw=bw, planes=planes, profile=profile,
                      design_snr_db=design_snr_db, key_id=0, frame_len_log2=frame_len_log2,
                      use_feedback=server is not None, blind_attempts=attempts, max_attempts=max_attempts,
                      timeout_s=timeout_s, window=1, max_in_flight=40, first_image_id=0, max_images=max_images,
                      **(nr or {}), sps=sps, beta=fmt.beta, span=fmt.span, gap_min=gap[0], gap_max=gap[1],
                      continuous=True, tail_symbols=0, max_queue=4096, seed=seed)
        self.tx, self.mod = self.txb.ctl, self.txb.mod
        self.rot = blocks.rotator_cc(2 * math.pi * cfo)
        self.delay = filter.mmse_resampler_cc(float(timing), float(sfo_ratio))
        self.noise = analog.noise_source_c(analog.GR_GAUSSIAN, 10 ** (-snr_db / 20.0), int(seed) + 1)
        self.add = blocks.add_cc()
        # phase noise: a Gaussian increment per sample, accumulated (IIR 1/(1 - z^-1), double state), as a phase
        self.pn = wiener_phase_noise(phase_noise_var, int(seed) + 3) if phase_noise_var > 0 else None
        self.iqbal = None
        if iq_gain_db or iq_phase_deg:
            from gnuradio import channels

            self.iqbal = channels.iqbal_gen(float(iq_gain_db), float(iq_phase_deg), 1)
        self.dc = blocks.add_const_cc(complex(dc)) if dc else None
        self.rxb = rx(sps=sps, beta=fmt.beta, span=fmt.span, max_frame_len_log2=frame_len_log2, max_frames=4096,
                      timeout_s=600.0, server_addr=server or "", tx_ids=[tx_id] if server else [], hwm=1000)
        self.sync, self.demod, self.chase = self.rxb.sync, self.rxb.demod, self.rxb.chase
        if server:
            self.link = self.rxb.link
        self.sink = _collector()
        for blk in (self.rot, self.delay, self.add, self.noise):
            blk.set_min_output_buffer(1 << 16)   # fewer scheduler wake-ups per sample
        chain = [self.txb]
        if fading == "block":
            self.fade = block_fading(mode=fading_per, snr_db=snr_db, seed=seed + 2)
            chain.append(self.fade)
            self.msg_connect(self.fade, "snr", self.sink, "fading")
        chain.append(self.rot)
        if self.pn is not None:
            chain.append(self.pn)
        chain.append(self.delay)
        self.connect(*chain)
        self.connect(self.delay, (self.add, 0))
        self.connect(self.noise, (self.add, 1))
        rx_chain = [self.add] + [b for b in (self.iqbal, self.dc) if b is not None] + [self.rxb]
        self.connect(*rx_chain)
        self.msg_connect(self.txb, "status", self.sink, "status")
        self.msg_connect(self.rxb, "frames", self.sink, "frames")
        self.msg_connect(self.rxb, "combined", self.sink, "combined")
        self.msg_connect(self.rxb, "feedback", self.txb, "feedback")    # the server's ACK/NACK drive the ARQ

    def _messages_settled(self) -> bool:
        c = self.chase.counters
        with self.sink.lock:
            n_frames, n_comb_sink = len(self.sink.frames), self.sink.n_combined
        return (self.rxb.settled() and n_frames >= self.demod.counters["frames"]
                and n_comb_sink >= c["combined"])

    def run_until_done(self, wall_timeout: float = 600.0) -> bool:
        """Start, wait until the transmitter finished and the receiver drained its last burst, stop."""
        self.start()
        t0 = time.monotonic()
        ok = False
        try:
            while time.monotonic() - t0 < wall_timeout:
                if self.tx.finished.wait(0.05):
                    break
            else:
                return False
            # drain: the receiver must see every sample of the last burst plus a margin of idle samples
            target = self.mod.nitems_written(0) + (4 * self.fmt.span + 8192) * self.sps
            while time.monotonic() - t0 < wall_timeout:
                if self.sync.nitems_read(0) >= target and self.sync.idle():
                    break
                time.sleep(0.02)
            # ... and every burst must have gone through demod -> chase -> collector (message queues)
            while time.monotonic() - t0 < wall_timeout:
                if self._messages_settled():
                    ok = True
                    break
                time.sleep(0.02)
        finally:
            self.stop()
            self.wait()
        return ok


def _plane_loss_db(ber: np.ndarray, powers: np.ndarray, snr_db: float, n_bits: int) -> list:
    """dB-equivalent loss of each plane: Es/N0 at which theory gives the measured BER, minus ``snr_db``
    (None where the BER carries too little information: no errors, or no power)."""
    from scipy.special import erfcinv

    out = []
    for b, p in zip(ber, powers):
        # near BER 0.5 the BER hardly depends on the SNR: a dB-equivalent there is meaningless
        if p <= 0 or b * n_bits < 20 or b >= 0.3:
            out.append(None)
            continue
        g = 2.0 * erfcinv(2.0 * b) ** 2 / p          # Q(sqrt(p*g)) = b
        out.append(float(snr_db - 10.0 * math.log10(g)))
    return out


def image_report(img, cfg, frames: dict, sent_frames: int, received: list, snr_db: float) -> dict:
    """One image's record: link metrics as ``infercom simulate`` computes them, plus the PHY counts."""
    from infercom import link, metrics, power, source
    from infercom.frame import Reassembler
    from infercom.simulate import lowres_metrics

    from ..tags import meta_to_header

    img3 = source.as_image3(img)
    parts = [(meta_to_header(meta), y, nv) for meta, y, nv in frames.values()]
    if parts:
        # a "refine" retransmission re-encodes the image: report the configuration of the latest attempt
        latest = max(parts, key=lambda p: p[0].attempt)[0]
        cfg = latest.link_config()
        parts = [p for p in parts if p[0].link_config() == cfg and p[0].frame_len_log2 == latest.frame_len_log2]
    lay = link.layout(img3.shape[0], img3.shape[1], img3.shape[2], cfg)
    re = Reassembler()
    for h, y, nv in parts:
        re.add(h, y, nv)
    if re.header is None:
        y = np.zeros(lay.n_symbols, np.complex64)
        nv = np.full(lay.n_symbols, np.inf, np.float32)
        n_frames = None
    else:
        y, nv = re.payload()
        n_frames = re.header.frame_count()
    llr = link.soft_to_llr(y, nv, lay, cfg)
    low_mmse = link.llr_to_lowres(llr, lay, cfg, "mmse")
    low_hard = link.llr_to_lowres(llr, lay, cfg, "hard")
    stats, _ = lowres_metrics(img3, llr, low_mmse, low_hard, cfg)
    snrs = [m["snr_db"] for m in received if "snr_db" in m]
    up = link.upsample(low_mmse, lay)
    up_hard = link.upsample(low_hard, lay)
    attempts = sorted({int(m["attempt"]) for m in received})
    return {
        "frames": n_frames, "bh": cfg.bh, "bw": cfg.bw, "frames_sent": sent_frames, "frames_received": len(received),
        "frames_lost": max(sent_frames - len(received), 0),
        "attempts_received": attempts,
        "snr_db": snr_db,
        "measured_snr_db": float(10 * math.log10(np.mean([10 ** (s / 10) for s in snrs]))) if snrs else None,
        **stats,
        "expected_ber_per_plane": [float(b) for b in power.plane_ber(cfg.plane_powers(), snr_db)],
        "plane_loss_db": _plane_loss_db(np.asarray(stats["ber_per_plane"]), cfg.plane_powers(), snr_db,
                                        stats["n_values"]),
        "psnr": metrics.psnr(img3, up), "ssim": metrics.ssim(img3, up),
        "psnr_hard": metrics.psnr(img3, up_hard),
        "missing_symbols": int(np.sum(np.isinf(nv))),
        "_upsampled": up,
    }


def nr_image_report(img, parts: list, sent_frames: int, received: list) -> dict:
    """One NR image's record: every received attempt combined in the LDPC soft buffer and decoded
    (``infercom.nr.frames.decode_attempts``) as the server would, plus the PHY counts. ``parts``: the
    image's ``(meta, y, noise_var)`` per received frame and attempt."""
    from infercom import metrics, source
    from infercom.frame import Reassembler
    from infercom.nr.frames import decode_attempts

    from ..tags import meta_to_header

    img3 = source.as_image3(img)
    by_attempt: dict[int, Reassembler] = {}
    h = None
    for meta, y, nv in parts:
        h = meta_to_header(meta)
        by_attempt.setdefault(h.attempt, Reassembler()).add(h, y, nv)
    snrs = [m["snr_db"] for m in received if "snr_db" in m]
    rec = {"system": "nr", "frames": None if h is None else h.frame_count(), "frames_sent": sent_frames,
           "frames_received": len(received), "frames_lost": max(sent_frames - len(received), 0),
           "attempts_received": sorted(by_attempt),
           "measured_snr_db": float(10 * math.log10(np.mean([10 ** (s / 10) for s in snrs]))) if snrs else None,
           "crc_ok": False, "psnr": None, "ssim": None, "_upsampled": np.zeros_like(img3)}
    if h is None:
        return rec
    ok, dec, info, rx = decode_attempts(h, [(a, *r.payload()) for a, r in by_attempt.items()])
    rec.update(crc_ok=bool(ok), tb_bits=rx.tb.A, code_blocks=info.get("n_cb"),
               cb_crc_ok=info.get("cb_crc_ok"), ldpc_iterations_mean=info.get("iterations_mean"),
               jpeg_bytes=info.get("jpeg_bytes"), error=info.get("error"))
    if ok and dec.shape == img3.shape:
        rec.update(psnr=metrics.psnr(img3, dec), ssim=metrics.ssim(img3, dec), _upsampled=dec)
    return rec


def impairments(args: argparse.Namespace) -> dict:
    """The radio impairments of the arguments, validated: the total carrier offset as a fraction of the symbol
    rate (``--cfo-hz`` / ``--cfo-frac`` plus the ``--ppm`` carrier offset at ``--center-freq``), the sample-clock
    ratio, and the other flags as given (``dc_db`` None = no DC offset).  ``ValueError`` on a bad value."""
    if not args.samp_rate > 0 or not args.sps >= 1:
        raise ValueError(f"--samp-rate must be > 0, got {args.samp_rate}")
    symbol_rate = args.samp_rate / args.sps
    if not abs(args.ppm) <= 100:
        raise ValueError(f"--ppm {args.ppm} outside -100..100")
    if not 0 <= args.center_freq <= 100e9:
        raise ValueError(f"--center-freq {args.center_freq} outside 0..100e9 Hz")
    cfo_ppm, ratio = oscillator_offsets(args.ppm, args.center_freq, args.samp_rate)   # cycles/sample
    extra = args.cfo_frac if args.cfo_frac is not None else (args.cfo_hz or 0.0) / symbol_rate
    if args.dc_db is not None and not -200 <= args.dc_db <= 10:
        raise ValueError(f"--dc-db {args.dc_db} outside -200..10 dB")
    if not abs(args.iq_gain_db) <= 6 or not abs(args.iq_phase_deg) <= 30:
        raise ValueError(f"--iq-gain-db / --iq-phase-deg ({args.iq_gain_db}, {args.iq_phase_deg}) outside "
                         f"+-6 dB / +-30 degrees")
    if not 0 <= args.phase_noise_hz <= 0.01 * args.samp_rate:
        raise ValueError(f"--phase-noise-hz {args.phase_noise_hz} outside 0..1% of --samp-rate")
    return {"ppm": args.ppm, "center_freq_hz": args.center_freq, "samp_rate": args.samp_rate,
            "cfo_frac_symbol_rate": float(extra + cfo_ppm * args.sps), "sfo_ratio": ratio,
            "dc_db": args.dc_db, "dc_phase_deg": args.dc_phase_deg, "iq_gain_db": args.iq_gain_db,
            "iq_phase_deg": args.iq_phase_deg, "phase_noise_hz": args.phase_noise_hz}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The app's arguments from a list (tests, demo): ``parse_args(["--images", d, "--snr-db", "0"])``."""
    p = argparse.ArgumentParser(prog="infercom loopback")
    add_arguments(p)
    return p.parse_args(argv)


def run_loopback(args, keep_flowgraph: bool = False) -> dict:
    """Build and run the loopback; return the report dict (also used by tests and the demo)."""
    from infercom.imageio import list_images, load_image
    from infercom.link import LinkConfig

    bh, bw = block_size(args)
    files = list_images(args.images)
    if args.max_images:
        files = files[: args.max_images]
    if not -40 <= args.snr_db <= 60:
        raise ValueError(f"--snr-db {args.snr_db} outside -40..60 dB")
    imp = impairments(args)
    cfo_frac = imp["cfo_frac_symbol_rate"]
    if abs(cfo_frac) > 0.05:
        raise ValueError(f"CFO of {cfo_frac:.3g} x symbol rate is beyond what the receiver acquires (5%)")
    rng = np.random.default_rng(args.seed)
    timing = float(rng.random()) if args.timing is None else float(args.timing)
    design = args.design_snr_db if args.design_snr_db is not None else int(
        min(max(round(args.snr_db), DESIGN_SNR_MIN_DB), DESIGN_SNR_MAX_DB))
    gap = tuple(int(x) for x in args.gap.split(":"))
    if len(gap) != 2 or not 0 <= gap[0] <= gap[1]:
        raise ValueError(f"--gap must be MIN:MAX symbols, got {args.gap!r}")
    images = [load_image(f) for f in files]
    cfg = LinkConfig(bh, bw, args.planes, args.profile, design)
    fg = LoopbackFlowgraph(images, args.snr_db, cfo=cfo_frac / args.sps, timing=timing, sfo_ratio=imp["sfo_ratio"],
                           phase_noise_var=2 * math.pi * args.phase_noise_hz / args.samp_rate,
                           iq_gain_db=args.iq_gain_db, iq_phase_deg=args.iq_phase_deg,
                           dc=dc_offset_value(args.dc_db, args.dc_phase_deg, 1.0 / args.sps)
                           if args.dc_db is not None else 0j, fading=args.fading,
                           fading_per=args.fading_per, server=args.server, attempts=args.attempts,
                           max_attempts=args.max_attempts, timeout_s=args.timeout_s, sps=args.sps, gap=gap,
                           seed=args.seed, tx_id=args.tx_id, bh=bh, bw=bw, planes=args.planes, profile=args.profile,
                           design_snr_db=design, frame_len_log2=args.frame_len_log2, nr=nr_options(args))
    t0 = time.perf_counter()
    drained = fg.run_until_done(args.wall_timeout)
    wall = time.perf_counter() - t0
    sink = fg.sink
    per_image = []
    sent = collections.Counter()
    for st in sink.status:
        if st.get("event") == "attempt":
            sent[int(st["image_id"])] += int(st["n_frames"])
    tx_records = {int(r["image_id"]): r for r in fg.tx.records}
    for k, (f, img) in enumerate(zip(files, images)):
        image_id = k % 4096
        frames = {key: v for key, v in sink.combined.items() if key[0] == args.tx_id and key[1] == image_id}
        received = [m for m in sink.frames if int(m["tx_id"]) == args.tx_id and int(m["image_id"]) == image_id]
        rec = {"image": f.name, "image_id": image_id}
        if args.system == "nr":
            parts = [v for key, v in sink.nr_frames.items() if key[0] == args.tx_id and key[1] == image_id]
            rec.update(nr_image_report(img, parts, sent[image_id], received))
        else:
            rec.update(image_report(img, cfg, frames, sent[image_id], received, args.snr_db))
        fades = [r["snr_db"] for r in sink.fading if r.get("image_id") == image_id and r.get("tx_id") == args.tx_id]
        rec["instantaneous_snr_db"] = (float(10 * math.log10(np.mean([10 ** (v / 10) for v in fades])))
                                       if fades else None)     # block fading: configured Es/N0 + |h|^2 (dB)
        tx = tx_records.get(image_id, {})
        rec["tx_outcome"] = tx.get("outcome")
        rec["retransmissions"] = max(int(tx.get("n_attempts", 1)) - 1, 0)
        if args.save_images:
            from pathlib import Path

            from infercom.imageio import save_image

            save_image(Path(args.save_images) / f"{Path(f.name).stem}_loopback.png", rec["_upsampled"])
        rec.pop("_upsampled")
        per_image.append(rec)
    sync_c = dict(fg.sync.counters)
    demod_c = dict(fg.demod.counters)
    summary = {
        "snr_db": args.snr_db, "cfo_frac_symbol_rate": cfo_frac, "timing_samples": timing,
        "fading": args.fading, "fading_per": args.fading_per if args.fading == "block" else None,
        "server": args.server, "system": args.system, "sps": args.sps, "bh": bh, "bw": bw, "planes": args.planes,
        "profile": args.profile, "design_snr_db": design, "frame_len_log2": args.frame_len_log2,
        "images": len(per_image), "wall_s": wall, "drained": drained,
        "samples": int(fg.sync.nitems_read(0)),
        "frames_sent": int(sum(r["frames_sent"] for r in per_image)),
        "frames_received": int(sum(r["frames_received"] for r in per_image)),
        "header_failures": int(demod_c.get("header_fail", 0)),
        "sync": sync_c, "demod": demod_c, "chase": dict(fg.chase.counters),
        "fading_reports": len(sink.fading), "impairments": imp,
    }
    if fg.__dict__.get("link") is not None:
        summary["server_link"] = dict(fg.link.counters)
    snrs = [r["measured_snr_db"] for r in per_image if r["measured_snr_db"] is not None]
    summary["measured_snr_db"] = float(np.mean(snrs)) if snrs else None
    report = {"summary": summary, "images": per_image}
    if keep_flowgraph:
        report["flowgraph"] = fg
    return report


def _print_table(report: dict) -> None:
    s = report["summary"]
    print(f"# loopback Es/N0 {s['snr_db']:.1f} dB, CFO {s['cfo_frac_symbol_rate']:.4f} x symbol rate, timing "
          f"{s['timing_samples']:.2f} samples, fading {s['fading']}, rate 1/{s['bh'] * s['bw']}, "
          f"server {s['server'] or 'none (local MMSE + bicubic)'}")
    print(f"{'image':<14}{'sent':>6}{'recv':>6}{'lost':>6}{'retx':>6}{'SNR meas':>10}{'BER':>10}"
          f"{'MSE mmse':>10}{'PSNR':>8}{'SSIM':>7}  BER per plane (MSB first)")
    for r in report["images"]:
        ms = r["measured_snr_db"]
        if r.get("system") == "nr":
            print(f"{r['image'][:13]:<14}{r['frames_sent']:>6}{r['frames_received']:>6}{r['frames_lost']:>6}"
                  f"{r['retransmissions']:>6}{(f'{ms:.2f}' if ms is not None else '-'):>10}  NR CRC "
                  f"{'ok' if r['crc_ok'] else 'failed'}"
                  + (f", PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.3f}" if r["psnr"] is not None else ""))
            continue
        print(f"{r['image'][:13]:<14}{r['frames_sent']:>6}{r['frames_received']:>6}{r['frames_lost']:>6}"
              f"{r['retransmissions']:>6}{(f'{ms:.2f}' if ms is not None else '-'):>10}{r['ber']:>10.5f}"
              f"{r['lowres_mse_mmse']:>10.1f}{r['psnr']:>8.2f}{r['ssim']:>7.3f}  "
              + " ".join(f"{b:.4f}" for b in r["ber_per_plane"]))
    ms = s["measured_snr_db"]
    print(f"# frames sent {s['frames_sent']}, received {s['frames_received']}, header failures "
          f"{s['header_failures']}, measured SNR {f'{ms:.2f} dB' if ms is not None else '-'}, "
          f"samples {s['samples']}, wall {s['wall_s']:.1f} s")


def run(args: argparse.Namespace) -> int:
    try:
        report = run_loopback(args)
    except ValueError as exc:
        print(f"infercom loopback: {exc}", file=sys.stderr)
        return 2
    if args.json:
        for r in report["images"]:
            print(json.dumps(r))
        print(json.dumps({"summary": report["summary"]}))
    else:
        _print_table(report)
    if args.out:
        from pathlib import Path

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0 if report["summary"]["drained"] else 1
