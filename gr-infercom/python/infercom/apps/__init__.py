# SPDX-License-Identifier: GPL-3.0-or-later
"""Command-line apps of gr-infercom (``infercom loopback|tx|rx``), each with ``add_arguments`` and ``run``.

Shared here: the link/radio arguments and the small glue both TX and RX flowgraphs need.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading

from infercom.options import add_link_arguments as add_link_config
from infercom.options import block_size  # noqa: F401  (the apps' import)


def add_link_arguments(p: argparse.ArgumentParser) -> None:
    """Transmitter link configuration (the header carries it; the receiver needs none of it):
    :func:`infercom.options.add_link_arguments`, plus ``--frame-len-log2``, ``--tx-id``, ``--max-images``."""
    add_link_config(p, "the channel's SNR rounded, or -4")
    p.add_argument("--frame-len-log2", type=int, default=15,
                   help="payload symbols per frame = 2**N (4..16, default 15)")
    p.add_argument("--tx-id", type=int, default=0, help="transmitter id 0..255 (default %(default)s)")
    p.add_argument("--max-images", type=int, default=0, help="send at most N images (0 = all, the default)")


def nr_options(args) -> dict:
    """The ``tx_controller`` keyword arguments of ``infercom.nr.options`` (``--system``, ``--budget``,
    ``--code-rate``, ``--harq``)."""
    return {"system": args.system, "nr_code_rate": args.code_rate, "nr_harq": args.harq, "nr_budget": args.budget}


def add_curve_arguments(p: argparse.ArgumentParser, sockets: str) -> None:
    """``--curve-server-key`` / ``--curve-key``: CurveZMQ client certificates for ``sockets`` (infercom.zmqcurve)."""
    p.add_argument("--curve-server-key", default=None, metavar="FILE",
                   help=f"CurveZMQ on {sockets}: the server's public certificate (server.key); needs --curve-key "
                        "(default: none, plain ZeroMQ)")
    p.add_argument("--curve-key", default=None, metavar="FILE",
                   help="CurveZMQ: this client's secret certificate (NAME.key_secret, from "
                        "zmq.auth.create_certificates; its public key must be on the server's --curve-allow "
                        "list) (default: none)")


@contextlib.contextmanager
def stop_on_signals(signals=(signal.SIGINT, signal.SIGTERM)):
    """Yield a ``threading.Event`` that SIGINT (Ctrl-C) and SIGTERM set while inside, so an app stops cleanly
    and prints its summary either way; the event's ``signame`` then names the signal (``"SIGTERM"``). The
    previous handlers come back on exit. Outside the main thread (signals cannot be caught there) the event is
    only set by the caller."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.getsignal(s) for s in signals}

    def _handler(signum, frame):       # noqa: ARG001
        stop.signame = signal.Signals(signum).name
        stop.set()

    for s in signals:
        signal.signal(s, _handler)
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


