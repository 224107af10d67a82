# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom rx``: the InferCom receiver over ZeroMQ IQ or a USRP (UHD).

Radio -> the ``infercom_rx`` hier block (``gnuradio.infercom.rx``: RRC matched filter -> ``burst_sync`` ->
``frame_demod`` -> ``chase_combiner``), and with ``--server`` the soft frames go to the inference server
(``server_link``) and its ACK/NACK feedback (from ``--feedback``, default the ``--server`` port + 1) releases the
Chase combiner's frames; ``--curve-server-key`` and ``--curve-key`` make both links CurveZMQ.  ``--soft-out``
writes the Chase-combined soft symbols to a file.  The same graph as grc/rx_zmq.grc and grc/rx_uhd.grc.  Runs until
``--duration`` seconds passed (0 = until Ctrl-C or SIGTERM), then prints the receiver's counters as one JSON
line on stdout (``{"summary": ...}``), preceded by one JSON line per received frame with ``--verbose``; a
one-line "running" notice goes to stderr once the flowgraph runs.
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
    p.add_argument("--sps", type=int, default=2, help="zmq: samples per symbol (uhd: from the hw config)")
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

    def __init__(self, verbose: bool, keep: int = 10000):
        gr.basic_block.__init__(self, name="infercom_rx_frame_log", in_sig=None, out_sig=None)
        self.verbose = verbose
        self.keep = keep
        self.frames: list[dict] = []
        self.lock = threading.Lock()
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self._on)

    def _on(self, msg):
        from ..tags import meta_from_pmt

        m = meta_from_pmt(pmt.car(msg))
        m.pop("noise_var", None)
        rec = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in m.items()}
        with self.lock:
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
        from ..hwconfig import configure_usrp, load_hw_config

        rx = block_class("rx")       # the class (the package attribute may be the module)
        if not args.server and (args.feedback or args.curve_server_key or args.curve_key):
            raise ValueError("--feedback, --curve-server-key and --curve-key need --server")
        self.hw = load_hw_config(args.hw) if args.radio == "uhd" else None
        sps = self.hw["sps"] if self.hw else args.sps
        if args.radio == "zmq":
            from gnuradio import zeromq

            self.src = zeromq.pull_source(gr.sizeof_gr_complex, 1, args.iq_addr, 100, False, -1)
        else:
            from gnuradio import uhd

            hw = self.hw
            self.src = uhd.usrp_source(hw["device_args"], uhd.stream_args(cpu_format="fc32", channels=[0]))
            configure_usrp(self.src, hw, "rx", uhd.ALL_MBOARDS)
        src = self.src
        if args.radio == "zmq" and (args.snr_db is not None or args.cfo_frac):
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
        self.log = _frame_log(args.verbose)
        self.connect(src, self.rx)
        self.msg_connect(self.rx, "frames", self.log, "in")
        if args.soft_out:
            from gnuradio import blocks, pdu

            # the Chase-combined soft symbols, frame after frame (complex64), as grc/rx_*.grc's soft_out
            self.p2s = pdu.pdu_to_tagged_stream(gr.types.complex_t, "packet_len")
            self.p2s.set_min_output_buffer(2 * 2 ** 16)      # a whole frame's soft symbols must fit
            self.soft_file = blocks.file_sink(gr.sizeof_gr_complex, args.soft_out, False)
            self.msg_connect(self.rx, "combined", self.p2s, "pdus")
            self.connect(self.p2s, self.soft_file)

    def counters(self) -> dict:
        return self.rx.counters()


def run(args: argparse.Namespace) -> int:
    try:
        fg = RxFlowgraph(args)
    except (ValueError, RuntimeError) as exc:   # bad config / images, or no radio found by UHD
        print(f"infercom rx: {exc}", file=sys.stderr)
        return 2
    with stop_on_signals() as stop:
        fg.start()
        src = args.iq_addr if args.radio == "zmq" else fg.hw["name"]
        link = (f", soft frames -> {fg.link.server_addr}, feedback <- {fg.link.feedback_addr}"
                f"{' (CurveZMQ)' if fg.link.curve else ''}") if fg.link is not None else ""
        until = f"{args.duration:g} s" if args.duration > 0 else "Ctrl-C or SIGTERM"
        print(f"infercom rx: running ({args.radio} {src}{link}) until {until}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        try:
            while not stop.wait(0.2):
                if args.duration > 0 and time.monotonic() - t0 >= args.duration:
                    break
        finally:
            fg.stop()
            fg.wait()
    counters = fg.counters()
    counters["run_s"] = round(time.monotonic() - t0, 3)
    counters["stopped_by"] = getattr(stop, "signame", "signal") if stop.is_set() else "duration"
    print(json.dumps({"summary": counters}), flush=True)
    return 0
