# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom tx``: the InferCom transmitter over ZeroMQ IQ (a radio stand-in) or a USRP (UHD).

Images -> ``tx_controller`` (frames, ARQ) -> ``frame_modulator`` (RRC-shaped bursts) -> radio.  With
``--feedback ADDR`` the transmitter subscribes to the inference server's feedback PUB and retransmits on NACK
or timeout (ARQ); without it every image is sent ``--attempts`` times.  ``--curve-server-key`` and
``--curve-key`` make that subscription CurveZMQ.  Mirrors grc/tx_zmq.grc and grc/tx_uhd.grc; the radio set-up
comes from ``hw_configs/<name>.yaml`` (``--hw``).  Prints one JSON record per image and a JSON summary on
stdout when every image ended, or on Ctrl-C / SIGTERM.
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
    def __init__(self, args):
        gr.top_block.__init__(self, "infercom_tx")
        from .. import frame_modulator, server_link, tx_controller
        from ..hwconfig import configure_usrp, load_hw_config
        from infercom.frame import FrameFormat

        if not args.feedback and (args.curve_server_key or args.curve_key):
            raise ValueError("--curve-server-key and --curve-key need --feedback")
        bh, bw = block_size(args)
        self.hw = load_hw_config(args.hw) if args.radio == "uhd" else None
        sps = self.hw["sps"] if self.hw else args.sps
        fmt = FrameFormat(frame_len_log2=args.frame_len_log2, sps=sps)
        design = args.design_snr_db if args.design_snr_db is not None else -4
        gap = tuple(int(g) for g in args.gap.split(":"))
        self.tx = tx_controller(args.images, args.tx_id, bh, bw, args.planes, args.profile, design, 0,
                                args.frame_len_log2, args.feedback is not None, args.attempts, args.max_attempts,
                                args.timeout_s, 1, 8, 0, args.max_images, **nr_options(args))
        continuous = args.radio == "zmq"
        self.mod = frame_modulator(0, gap[0] if continuous else 0, gap[1] if continuous else 0,
                                   continuous, 4096, args.seed, sps, fmt.beta, fmt.span)
        self.msg_connect(self.tx, "frames", self.mod, "in")
        self.msg_connect(self.mod, "sent", self.tx, "sent")
        if args.feedback:
            self.fb = server_link("", args.feedback, [args.tx_id], 1000, args.curve_server_key or "",
                                  args.curve_key or "")
            self.msg_connect(self.fb, "feedback", self.tx, "feedback")
        if args.radio == "zmq":
            from gnuradio import zeromq

            self.throttle = blocks.throttle(gr.sizeof_gr_complex, args.samp_rate, True)
            self.sink = zeromq.push_sink(gr.sizeof_gr_complex, 1, args.iq_addr, 100, False, -1)
            self.connect(self.mod, self.throttle, self.sink)
        else:
            from gnuradio import uhd

            hw = self.hw
            self.amp = blocks.multiply_const_cc(args.amplitude)
            self.sink = uhd.usrp_sink(hw["device_args"], uhd.stream_args(cpu_format="fc32", channels=[0]), "")
            configure_usrp(self.sink, hw, "tx", uhd.ALL_MBOARDS)
            self.connect(self.mod, self.amp, self.sink)


def run(args: argparse.Namespace) -> int:
    try:
        fg = TxFlowgraph(args)
    except (ValueError, RuntimeError) as exc:   # bad config / images, or no radio found by UHD
        print(f"infercom tx: {exc}", file=sys.stderr)
        return 2
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
    print(json.dumps({"summary": {"images": len(fg.tx.records), "frames": fg.tx.counters["frames"],
                                  "counters": dict(fg.tx.counters)}}))
    return 0 if all(r.get("outcome") in ("ACK", "sent") for r in fg.tx.records) else 1
