# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom tx``: the InferCom transmitter over ZeroMQ IQ (a radio stand-in) or a USRP (UHD).

Images -> the ``infercom_tx`` hier block (``gnuradio.infercom.tx``: ``tx_controller`` (frames, ARQ) ->
``frame_modulator`` (RRC-shaped bursts)) -> radio.  With ``--feedback ADDR`` the transmitter subscribes to the
inference server's feedback PUB and retransmits on NACK or timeout (ARQ); without it every image is sent
``--attempts`` times.  ``--curve-server-key`` and ``--curve-key`` make that subscription CurveZMQ.  The same
graph as grc/tx_zmq.grc and grc/tx_uhd.grc; the radio set-up comes from ``hw_configs/<name>.yaml`` (``--hw``).
Prints one JSON record per image and a JSON summary on stdout when every image ended, or on Ctrl-C / SIGTERM.
With a USRP the bursts carry ``tx_sob``/``tx_eob`` (UHD burst mode), ``--start-delay-s`` times the first one,
and UHD's async events (underflows, sequence errors, late bursts: ``gnuradio.infercom.uhd_monitor``) are
counted into each image's record (``uhd_events``: those since the previous image ended) and the summary.
"""

from __future__ import annotations

import argparse
import json
import sys

from gnuradio import blocks, gr

from infercom.nr import options as nr_cli

from . import add_curve_arguments, add_link_arguments, block_size, nr_options, stop_on_signals


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, help="folder of images (or one image file)")
    p.add_argument("--radio", choices=("zmq", "uhd"), default="zmq",
                   help="zmq: IQ samples on a ZeroMQ PUSH (for infercom rx --radio zmq); uhd: a USRP")
    p.add_argument("--iq-addr", default="tcp://127.0.0.1:5600",
                   help="zmq: address the IQ PUSH socket binds (the RX connects)")
    p.add_argument("--hw", default="b210",
                   help="uhd: radio set-up, a name from the shipped hw_configs/ (b210, x310, n210) or a YAML path")
    p.add_argument("--samp-rate", type=float, default=2e6, help="zmq: sample rate the stream is paced at (S/s)")
    p.add_argument("--amplitude", type=float, default=0.5, help="uhd: baseband amplitude (0..1)")
    p.add_argument("--start-delay-s", type=float, default=0.0,
                   help="uhd: timed transmission, the first burst at the device's time now + this (s; needs a "
                        "device with timed commands, every USRP; 0 = as soon as possible)")
    p.add_argument("--feedback", default=None, metavar="ADDR",
                   help="the server's feedback PUB address, e.g. tcp://127.0.0.1:5556; enables ARQ (default: "
                        "none, blind --attempts)")
    add_curve_arguments(p, "the --feedback subscription")
    p.add_argument("--attempts", type=int, default=1, help="without --feedback: blind attempts per image")
    p.add_argument("--max-attempts", type=int, default=4, help="with --feedback: attempts per image (ARQ limit)")
    p.add_argument("--timeout-s", type=float, default=10.0,
                   help="with --feedback: seconds without feedback before an attempt is resent")
    p.add_argument("--sps", type=int, default=2, help="zmq: samples per symbol (uhd: from the hw config)")
    p.add_argument("--gap", default="64:1024", help="idle gap between bursts MIN:MAX symbols (zmq)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random idle gaps")
    p.add_argument("--tail-s", type=float, default=1.0, help="seconds to keep the stream up after the last frame")
    add_link_arguments(p)
    nr_cli.add_arguments(p)


class TxFlowgraph(gr.top_block):
    """The ``infercom_tx`` hier block [+ a feedback-only ``server_link``] -> radio (ZeroMQ IQ or USRP): the graph
    of grc/tx_zmq.grc and grc/tx_uhd.grc."""

    def __init__(self, args):
        gr.top_block.__init__(self, "infercom_tx")
        from .. import block_class
        from ..hwconfig import configure_usrp, device_addr, load_hw_config
        from infercom.frame import FrameFormat

        server_link, tx = block_class("server_link"), block_class("tx")   # the classes, not the modules
        if not args.feedback and (args.curve_server_key or args.curve_key):
            raise ValueError("--curve-server-key and --curve-key need --feedback")
        bh, bw = block_size(args)
        self.hw = load_hw_config(args.hw) if args.radio == "uhd" else None
        sps = self.hw["sps"] if self.hw else args.sps
        fmt = FrameFormat(frame_len_log2=args.frame_len_log2, sps=sps)
        design = args.design_snr_db if args.design_snr_db is not None else -4
        gap = tuple(int(g) for g in args.gap.split(":"))
        continuous = args.radio == "zmq"
        self.txb = tx(images=args.images, tx_id=args.tx_id, bh=bh, bw=bw, planes=args.planes, profile=args.profile,
                      design_snr_db=design, key_id=0, frame_len_log2=args.frame_len_log2,
                      use_feedback=args.feedback is not None, blind_attempts=args.attempts,
                      max_attempts=args.max_attempts, timeout_s=args.timeout_s, window=1, max_in_flight=8,
                      first_image_id=0, max_images=args.max_images, **nr_options(args),
                      sps=sps, beta=fmt.beta, span=fmt.span, gap_min=gap[0] if continuous else 0,
                      gap_max=gap[1] if continuous else 0, continuous=continuous, tail_symbols=0, max_queue=4096,
                      seed=args.seed)
        self.tx, self.mod = self.txb.ctl, self.txb.mod
        if args.feedback:
            self.fb = server_link(server_addr="", feedback_addr=args.feedback, tx_ids=[args.tx_id], hwm=1000,
                                  curve_server_key=args.curve_server_key or "", curve_key=args.curve_key or "")
            self.msg_connect(self.fb, "feedback", self.txb, "feedback")
        if args.radio == "zmq":
            from gnuradio import zeromq

            self.throttle = blocks.throttle(gr.sizeof_gr_complex, args.samp_rate, True)
            self.sink = zeromq.push_sink(gr.sizeof_gr_complex, 1, args.iq_addr, 100, False, -1)
            self.connect(self.txb, self.throttle, self.sink)
        else:
            from gnuradio import uhd

            hw = self.hw
            self.amp = blocks.multiply_const_cc(args.amplitude)
            self.sink = uhd.usrp_sink(device_addr(hw, "tx"), uhd.stream_args(cpu_format="fc32", channels=[0]), "")
            configure_usrp(self.sink, hw, "tx", uhd.ALL_MBOARDS)
            self.connect(self.txb, self.amp, self.sink)
            # UHD's async events (underflows, sequence errors, late bursts), counted and put in each image's record
            from ..uhd_monitor import tx_events

            self.events = tx_events()
            self.msg_connect(self.sink, "async_msgs", self.events, "async_msgs")
            self.tx.annotate = lambda rec: rec.__setitem__("uhd_events", self.events.log.take())
            if args.start_delay_s > 0:      # timed transmission: the first burst at device time now + delay
                self.sink.set_start_time(self.sink.get_time_now() + uhd.time_spec(float(args.start_delay_s)))


def run(args: argparse.Namespace) -> int:
    try:
        fg = TxFlowgraph(args)
    except (ValueError, RuntimeError) as exc:   # bad config / images, or no radio found by UHD
        print(f"infercom tx: {exc}", file=sys.stderr)
        return 2
    if fg.hw is not None:
        from ..hwconfig import load_probe, probe_notes

        line, warns = probe_notes(load_probe(fg.hw), "tx")
        for text in ([line] if line else []) + [f"WARNING: {w}" for w in warns]:
            print(f"infercom tx: {text}", file=sys.stderr, flush=True)
    with stop_on_signals() as stop:
        fg.start()
        try:
            while not stop.is_set() and not fg.tx.finished.wait(0.2):
                pass
            if fg.tx.finished.is_set():
                stop.wait(max(args.tail_s, 0.0))     # the last bursts leave the radio (a signal cuts it short)
        finally:
            if not fg.tx.finished.is_set():
                print(f"infercom tx: interrupted ({getattr(stop, 'signame', 'Ctrl-C')}) before every image "
                      "ended", file=sys.stderr)
            fg.stop()
            fg.wait()
    for rec in fg.tx.records:
        print(json.dumps(rec))
    summary = {"images": len(fg.tx.records), "frames": fg.tx.counters["frames"], "counters": dict(fg.tx.counters)}
    if getattr(fg, "events", None) is not None:
        summary["uhd_events"] = fg.events.log.counts()
    print(json.dumps({"summary": summary}))
    return 0 if all(r.get("outcome") in ("ACK", "sent") for r in fg.tx.records) else 1
