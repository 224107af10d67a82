# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom rx``: the InferCom receiver over ZeroMQ IQ or a USRP (UHD).

Radio -> the ``infercom_rx`` hier block (``gnuradio.infercom.rx``: RRC matched filter -> ``burst_sync`` ->
``frame_demod`` -> ``chase_combiner``), and with ``--server`` the soft frames go to the inference server
(``server_link``) and its ACK/NACK feedback (from ``--feedback``, default the ``--server`` port + 1) releases the
Chase combiner's frames; ``--curve-server-key`` and ``--curve-key`` make both links CurveZMQ.  ``--soft-out``
writes the Chase-combined soft symbols to a file.  The same graph as grc/rx_zmq.grc and grc/rx_uhd.grc.  Runs until
``--duration`` seconds passed (0 = until Ctrl-C or SIGTERM), then prints the receiver's counters as one JSON
line on stdout (``{"summary": ...}``), preceded by one JSON line per received frame with ``--verbose``; a
one-line "running" notice goes to stderr once the flowgraph runs. With a USRP the receiver's headroom at the
config's sample rate is measured first (``infercom.sync.measure.headroom``: the burst receiver on a busy
synthetic channel) and printed, with a warning before the first frame when the host cannot keep up; the
summary carries it (``headroom``), with UHD's overflows in all and per image (``uhd_overflows``,
``uhd_overflows_per_image``: an overflow between an image's first and last frame; ``uhd_monitor``).

``--record NAME.sigmf-meta`` stores the receiver's input stream (raw IQ before the matched filter, after the
``--snr-db`` / ``--cfo-frac`` channel model if any) as a SigMF recording: a ``file_sink`` writes
``NAME.sigmf-data`` (cf32_le) while it runs, and when the flowgraph stops ``NAME.sigmf-meta`` is written
atomically with the sample rate, centre frequency, radio, gain and one annotation per received frame
(``infercom.sigmf_io``).  ``--replay NAME.sigmf-meta`` (or ``.sigmf-data``) runs the same receiver on a
recording (a ``file_source`` instead of the radio; cf32_le or ci16_le) as fast as the CPU allows, until the
recording is consumed; ``--server`` works as in a live run.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import numpy as np
import pmt
from gnuradio import gr

from . import add_curve_arguments, stop_on_signals


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--radio", choices=("zmq", "uhd"), default="zmq",
                   help="zmq: IQ samples from a ZeroMQ PUSH (infercom tx --radio zmq); uhd: a USRP")
    p.add_argument("--iq-addr", default="tcp://127.0.0.1:5600", help="zmq: the TX's IQ PUSH address (connect)")
    p.add_argument("--hw", default="b210",
                   help="uhd: radio set-up, a name from the shipped hw_configs/ (b210, x310, n210) or a YAML path")
    p.add_argument("--server", default=None,
                   help="inference server's soft-frame address, e.g. tcp://127.0.0.1:5555 (default: none, the "
                        "frames are only counted)")
    p.add_argument("--feedback", default=None, metavar="ADDR",
                   help="the server's feedback PUB address (its --feedback-bind) (default: the --server port + 1)")
    add_curve_arguments(p, "the links to the server (--server and --feedback)")
    p.add_argument("--sps", type=int, default=None,
                   help="zmq: samples per symbol (default: 2, with --replay the recording's; uhd: from the hw "
                        "config)")
    p.add_argument("--samp-rate", type=float, default=None,
                   help="zmq: the stream's sample rate (S/s), written to --record's metadata and checked against "
                        "a --replay recording's (default: unknown, not written / not checked; uhd: from the hw "
                        "config)")
    p.add_argument("--center-freq", type=float, default=None,
                   help="zmq: the centre frequency (Hz) written to --record's metadata (default: unknown, left "
                        "out; uhd: from the hw config)")
    p.add_argument("--record", default=None, metavar="FILE.sigmf-meta",
                   help="record the receiver's raw input IQ as a SigMF recording (FILE.sigmf-data, cf32_le, and "
                        "FILE.sigmf-meta with one annotation per received frame) (default: no recording)")
    p.add_argument("--replay", default=None, metavar="FILE",
                   help="run on a SigMF recording (its .sigmf-meta or .sigmf-data; cf32_le or ci16_le) instead of "
                        "the radio, until it is consumed (default: none, the live radio)")
    p.add_argument("--max-frame-len-log2", type=int, default=15, help="largest frame any TX sends (2**N)")
    p.add_argument("--duration", type=float, default=0.0, help="seconds to run (0 = until Ctrl-C or SIGTERM)")
    p.add_argument("--verbose", action="store_true", help="one JSON line per received frame (default: off)")
    p.add_argument("--snr-db", type=float, default=None,
                   help="zmq: add white noise at this Es/N0 (dB) to the received stream, a radio's noise floor "
                        "(default: none added)")
    p.add_argument("--cfo-frac", type=float, default=0.0,
                   help="zmq: add a carrier offset, as a fraction of the symbol rate")
    p.add_argument("--soft-out", default=None, metavar="FILE",
                   help="write the Chase-combined soft symbols (complex64, frame after frame) to FILE, as the "
                        "grc/rx_*.grc flowgraphs' soft_out (default: none, they are only counted)")


class _frame_log(gr.basic_block):
    """Keeps per-frame summaries (bounded) and prints them when verbose."""

    def __init__(self, verbose: bool, keep: int = 10000, sps: int | None = None):
        gr.basic_block.__init__(self, name="infercom_rx_frame_log", in_sig=None, out_sig=None)
        self.verbose = verbose
        self.keep = keep
        self.frames: list[dict] = []
        self.n_frames = 0                      # frames seen (``frames`` keeps the last ``keep``)
        self.sps = sps                         # set: a SigMF annotation per frame (``--record``), all kept
        self.annotations: list[dict] = []
        self.lock = threading.Lock()
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self._on)

    def _on(self, msg):
        from infercom.sigmf_io import frame_annotation

        from ..tags import meta_from_pmt

        m = meta_from_pmt(pmt.car(msg))
        m.pop("noise_var", None)
        rec = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in m.items()}
        ann = frame_annotation(rec, self.sps) if self.sps is not None else None
        with self.lock:
            self.n_frames += 1
            if ann is not None:
                self.annotations.append(ann)
            self.frames.append(rec)
            if len(self.frames) > self.keep:
                del self.frames[: len(self.frames) - self.keep]
        if self.verbose:
            print(json.dumps(rec), flush=True)


class RxFlowgraph(gr.top_block):
    """Radio (ZeroMQ IQ or USRP) [-> channel model] -> the ``infercom_rx`` hier block [-> soft-symbol file]: the
    graph of grc/rx_zmq.grc and grc/rx_uhd.grc."""

    def __init__(self, args):
        gr.top_block.__init__(self, "infercom_rx")
        from .. import block_class
        from ..hwconfig import configure_usrp, device_addr, load_hw_config

        rx = block_class("rx")       # the class (the package attribute may be the module)
        if not args.server and (args.feedback or args.curve_server_key or args.curve_key):
            raise ValueError("--feedback, --curve-server-key and --curve-key need --server")
        self.hw = load_hw_config(args.hw) if args.radio == "uhd" else None
        self.recording = None                  # the replayed recording (infercom.sigmf_io.Recording)
        if self.hw and args.sps is not None and args.sps != self.hw["sps"]:
            raise ValueError(f"--sps {args.sps} with --radio uhd: the hw config {self.hw['name']} sets "
                             f"{self.hw['sps']}")
        sps = self.hw["sps"] if self.hw else args.sps
        samp_rate = self.hw["sample_rate"] if self.hw else args.samp_rate
        replay, record = getattr(args, "replay", None), getattr(args, "record", None)
        if replay:
            from gnuradio import blocks

            from infercom.sigmf_io import open_recording

            self.recording = rec = open_recording(replay, sps=sps, sample_rate=samp_rate)
            sps = rec.sps
            samp_rate = rec.sample_rate if samp_rate is None else samp_rate
            if rec.datatype == "cf32_le":
                self.src = blocks.file_source(gr.sizeof_gr_complex, str(rec.data_path), False)
            else:                               # ci16_le: int16 I/Q -> complex64 / 32768
                from infercom.sigmf_io import CI16_SCALE

                self.file_src = blocks.file_source(gr.sizeof_short, str(rec.data_path), False)
                self.src = blocks.interleaved_short_to_complex(False, False, CI16_SCALE)
                self.connect(self.file_src, self.src)
        elif args.radio == "zmq":
            from gnuradio import zeromq

            self.src = zeromq.pull_source(gr.sizeof_gr_complex, 1, args.iq_addr, 100, False, -1)
        else:
            from gnuradio import uhd

            hw = self.hw
            self.src = uhd.usrp_source(device_addr(hw, "rx"), uhd.stream_args(cpu_format="fc32", channels=[0]))
            configure_usrp(self.src, hw, "rx", uhd.ALL_MBOARDS)
            from ..uhd_monitor import rx_overflows

            self.overflows = rx_overflows()          # counts UHD's overflows (a new rx_time tag after each)
            self.connect(self.src, self.overflows)
        sps = 2 if sps is None else sps
        self.sps, self.samp_rate = sps, samp_rate
        src = self.src
        if (args.radio == "zmq" or replay) and (args.snr_db is not None or args.cfo_frac):
            from gnuradio import channels

            n0 = 10 ** (-args.snr_db / 10.0) if args.snr_db is not None else 0.0
            self.channel = channels.channel_model(noise_voltage=float(np.sqrt(n0)),
                                                  frequency_offset=args.cfo_frac / sps, epsilon=1.0, taps=[1.0],
                                                  noise_seed=0, block_tags=False)
            self.connect(self.src, self.channel)
            src = self.channel
        self.rx = rx(sps=sps, max_frame_len_log2=args.max_frame_len_log2, max_frames=4096, timeout_s=60.0,
                     server_addr=args.server or "", feedback_addr=args.feedback or "", tx_ids=[], hwm=1000,
                     curve_server_key=args.curve_server_key or "", curve_key=args.curve_key or "")
        self.sync, self.demod, self.chase, self.link = self.rx.sync, self.rx.demod, self.rx.chase, self.rx.link
        self.log = _frame_log(args.verbose, sps=sps if record else None)
        self.connect(src, self.rx)
        self.record_meta = None                # --record: (meta path, build_meta keywords but annotations)
        if record:
            from gnuradio import blocks

            from infercom.sigmf_io import recording_paths

            meta_path, data_path = recording_paths(record)
            if replay and data_path.resolve() == self.recording.data_path.resolve():
                raise ValueError(f"--record {record}: the --replay recording itself")
            # the stream as the receiver takes it, in large unbuffered-off writes: no load on the receiver
            self.rec_sink = blocks.file_sink(gr.sizeof_gr_complex, str(data_path), False)
            self.rec_sink.set_unbuffered(False)
            self.connect(src, self.rec_sink)
            self.record_meta = (meta_path, self._record_keywords(args, sps, samp_rate))
        self.msg_connect(self.rx, "frames", self.log, "in")
        if args.soft_out:
            from gnuradio import blocks, pdu

            # the Chase-combined soft symbols, frame after frame (complex64), as grc/rx_*.grc's soft_out
            self.p2s = pdu.pdu_to_tagged_stream(gr.types.complex_t, "packet_len")
            self.p2s.set_min_output_buffer(2 * 2 ** 16)      # a whole frame's soft symbols must fit
            self.soft_file = blocks.file_sink(gr.sizeof_gr_complex, args.soft_out, False)
            self.msg_connect(self.rx, "combined", self.p2s, "pdus")
            self.connect(self.p2s, self.soft_file)

    def _record_keywords(self, args, sps: int, samp_rate: float | None) -> dict:
        """``infercom.sigmf_io.build_meta`` keywords of ``--record`` (all but the datetime / annotations)."""
        if self.recording is not None:
            r = self.recording
            g = r.meta["global"]
            kw = dict(hw=g.get("core:hw"), frequency=r.frequency, description=f"replay of {r.meta_path.name}")
        elif self.hw:
            hw = self.hw
            kw = dict(hw=f"{hw.get('name', 'usrp')} (UHD {hw['device_args']}, antenna {hw['rx_antenna']})",
                      frequency=hw["center_freq"], gains={"rx_gain_db": hw["rx_gain"]})
        else:
            kw = dict(hw=f"ZeroMQ IQ from {args.iq_addr}", frequency=args.center_freq)
        notes = [kw.get("description")] if kw.get("description") else []
        if args.snr_db is not None or args.cfo_frac:
            notes.append(f"receiver channel model: snr_db={args.snr_db}, cfo_frac={args.cfo_frac:g}")
        kw["description"] = "; ".join(notes) or None
        return dict(kw, sample_rate=samp_rate, sps=sps)

    def start(self, *a, **kw):
        from infercom.sigmf_io import utc_now

        self.started_at = utc_now()
        return gr.top_block.start(self, *a, **kw)

    def write_recording_meta(self):
        """``--record``: write the ``.sigmf-meta`` (atomically) with one annotation per frame received so far;
        call after the flowgraph stopped.  Returns its path (None without ``--record``)."""
        if self.record_meta is None:
            return None
        from infercom.sigmf_io import build_meta, write_meta

        meta_path, kw = self.record_meta
        with self.log.lock:
            ann = list(self.log.annotations)
        return write_meta(meta_path, build_meta(**kw, datetime=getattr(self, "started_at", None), annotations=ann))

    def replay_drained(self, settle_s: float = 0.3) -> bool:
        """``--replay``: every sample of the recording was read, no burst waits for samples,
        every demodulated frame reached the frame log, and nothing changed for ``settle_s`` seconds (the
        message queues between the blocks are empty)."""
        r = self.recording
        # all samples read from the file (the matched filter may hold back the last part of one FFT block)
        if r is None or self.src.nitems_written(0) < r.n_samples or not self.sync.idle():
            return False
        with self.log.lock:
            n = self.log.n_frames
        snap = (self.sync.counters.get("bursts", 0), self.demod.counters["frames"], n,
                self.chase.counters["combined"])
        now = time.monotonic()
        if n < self.demod.counters["frames"] or snap != getattr(self, "_drain_snap", None):
            self._drain_snap, self._drain_t = snap, now
            return False
        return now - self._drain_t >= settle_s

    def counters(self) -> dict:
        out = self.rx.counters()
        ov = getattr(self, "overflows", None)
        if ov is not None:
            out["uhd_overflows"] = ov.log.counts().get("overflow", 0)
            out["uhd_overflows_per_image"] = overflows_per_image(self.log.frames, ov.log, self.sps)
        return out


def overflows_per_image(frames: list[dict], log, sps: int) -> dict[str, int]:
    """``"tx_id/image_id"`` -> the UHD overflows within the samples of that image's received frames (from its
    first frame's start to its last frame's end, every attempt), for the images with at least one; ``log`` an
    :class:`~gnuradio.infercom.uhd_monitor.EventLog` of the receiver's source."""
    from infercom.sigmf_io import frame_annotation

    spans: dict[str, list[int]] = {}
    for f in frames:
        if f.get("sample_index") is None:
            continue
        key = f"{f.get('tx_id')}/{f.get('image_id')}"
        ann = frame_annotation(f, sps)                  # the burst's first sample and length (samples)
        lo = int(ann["core:sample_start"])
        hi = lo + int(ann.get("core:sample_count", 0))
        s = spans.setdefault(key, [lo, hi])
        s[0], s[1] = min(s[0], lo), max(s[1], hi)
    out = {k: log.in_span("overflow", lo, hi) for k, (lo, hi) in spans.items()}
    return {k: v for k, v in out.items() if v}


def run(args: argparse.Namespace) -> int:
    try:
        fg = RxFlowgraph(args)
    except (ValueError, RuntimeError) as exc:   # bad config / images, or no radio found by UHD
        print(f"infercom rx: {exc}", file=sys.stderr)
        return 2
    room = None
    if fg.hw is not None and fg.recording is None:
        from ..hwconfig import load_probe, probe_notes

        line, warns = probe_notes(load_probe(fg.hw), "rx")
        for text in ([line] if line else []) + [f"WARNING: {w}" for w in warns]:
            print(f"infercom rx: {text}", file=sys.stderr, flush=True)
    if args.radio == "uhd" and fg.recording is None:      # a live radio: can this host keep up with it?
        from infercom.sync.measure import headroom

        room = headroom(fg.samp_rate, fg.sps)
        note = (f"infercom rx: headroom {room['factor']:.1f}x real time at {fg.samp_rate / 1e6:g} MS/s "
                f"(burst receiver {room['msps']:.1f} Msps on this host, one thread)")
        if not room["ok"]:
            note += (" -- WARNING: too little to keep up with the radio (overflows, lost frames): lower "
                     "sample_rate or sps in the hw config, or free CPU cores")
        print(note, file=sys.stderr, flush=True)
    with stop_on_signals() as stop:
        fg.start()
        src = args.iq_addr if args.radio == "zmq" else fg.hw["name"]
        if fg.recording is not None:
            src = f"replay of {fg.recording.meta_path}, {fg.recording.n_samples} samples"
        elif args.record:
            src += f", recording -> {args.record}"
        link = (f", soft frames -> {fg.link.server_addr}, feedback <- {fg.link.feedback_addr}"
                f"{' (CurveZMQ)' if fg.link.curve else ''}") if fg.link is not None else ""
        until = f"{args.duration:g} s" if args.duration > 0 else "Ctrl-C or SIGTERM"
        if fg.recording is not None and args.duration <= 0:
            until = "the recording is consumed, Ctrl-C or SIGTERM"
        kind = "sigmf" if fg.recording is not None else args.radio
        print(f"infercom rx: running ({kind} {src}{link}) until {until}", file=sys.stderr, flush=True)
        t0, drained = time.monotonic(), False
        try:
            while not stop.wait(0.05 if fg.recording is not None else 0.2):
                if args.duration > 0 and time.monotonic() - t0 >= args.duration:
                    break
                if fg.recording is not None and fg.replay_drained():
                    drained = True
                    break
        finally:
            fg.stop()
            fg.wait()
            if args.record:
                fg.write_recording_meta()
    counters = fg.counters()
    if room is not None:
        counters["headroom"] = room
    counters["run_s"] = round(time.monotonic() - t0, 3)
    counters["stopped_by"] = (getattr(stop, "signame", "signal") if stop.is_set()
                              else "end of recording" if drained else "duration")
    print(json.dumps({"summary": counters}), flush=True)
    return 0
