# SPDX-License-Identifier: GPL-3.0-or-later
"""server_link: the RX flowgraph's ZeroMQ link to the inference server (docs/protocol.md).

Soft-symbol PDUs go out as ``soft_frame`` messages on a DEALER connected to the server's ROUTER; the server's
decisions come back on a SUB socket connected to its feedback PUB and leave this block as feedback dicts on the
``feedback`` port (for ``chase_combiner`` and, in a loopback, ``tx_controller``).  Every byte is packed and
checked by ``infercom.protocol``.  A missing or slow server never blocks the flowgraph: sends are non-blocking,
at most ``hwm`` messages queue in ZeroMQ, and the rest are dropped and counted.  With CurveZMQ certificates
(``curve_server_key`` + ``curve_key``) both sockets are encrypted and authenticated with the client's own fixed
keypair (``infercom.zmqcurve``), which the server's allow-list names.
"""

from __future__ import annotations

import collections
import secrets
import threading
import time

import numpy as np
import pmt
import zmq
from gnuradio import gr

from infercom import protocol, zmqcurve
from infercom.limits import MAX_TX_ID

from .tags import feedback_to_pmt, meta_to_header, parse_pdu


def default_feedback_addr(server_addr: str) -> str:
    """The server's feedback PUB address: the soft-frame address with port + 1 (docs/protocol.md)."""
    head, sep, port = server_addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"server address {server_addr!r} has no numeric port (e.g. tcp://127.0.0.1:5555)")
    return f"{head}:{int(port) + 1}"


class server_link(gr.basic_block):
    """Send soft frames to the inference server; publish its ACK/NACK feedback.

    Parameters
    ----------
    server_addr : ZeroMQ address of the server's soft-frame ROUTER, e.g. ``tcp://127.0.0.1:5555``; empty: no
        soft frames are sent (a transmitter's flowgraph that only needs the feedback).
    feedback_addr : address of the server's feedback PUB; empty: ``server_addr`` with port + 1.
    tx_ids : transmitter ids whose feedback to subscribe to (list); empty: all transmitters.
    hwm : messages queued at most towards an absent/slow server (ZeroMQ send high-water mark); beyond it
        frames are dropped and counted in ``counters['dropped']``.
    curve_server_key : path of the server's public certificate (``server.key``); with ``curve_key``, CurveZMQ
        on both sockets; empty (with ``curve_key`` empty): plain ZeroMQ.
    curve_key : path of this client's secret certificate (``NAME.key_secret``, made by
        ``zmq.auth.create_certificates``); its public key must be on the server's allow-list.

    Ports: ``in`` soft PDUs (per attempt, *not* Chase-combined: the server combines) -> the server;
    ``feedback`` (out): one dict per server decision (fields of ``protocol.Feedback``).
    """

    def __init__(self, server_addr: str = "tcp://127.0.0.1:5555", feedback_addr: str = "", tx_ids=(),
                 hwm: int = 1000, curve_server_key: str = "", curve_key: str = ""):
        gr.basic_block.__init__(self, name="infercom_server_link", in_sig=None, out_sig=None)
        self.server_addr = str(server_addr)
        if not self.server_addr and not feedback_addr:
            raise ValueError("server_link: give a server address, a feedback address, or both")
        self.feedback_addr = str(feedback_addr) or default_feedback_addr(self.server_addr)
        self.tx_ids = [int(t) for t in tx_ids]
        for t in self.tx_ids:
            if not 0 <= t <= MAX_TX_ID:
                raise ValueError(f"server_link: tx_id {t} out of range 0..{MAX_TX_ID}")
        if int(hwm) < 1:
            raise ValueError(f"server_link: hwm must be >= 1, got {hwm}")
        self.hwm = int(hwm)
        try:
            self.curve = zmqcurve.optional_client_keys(curve_server_key, curve_key)   # None: no CURVE
        except ValueError as exc:
            raise ValueError(f"server_link: {exc}") from None
        self.stream_id = secrets.randbits(64) or 1
        self.seq = 0
        self.counters = collections.Counter()
        self._ctx = zmq.Context.instance()
        self._dealer = None
        self._thread = None
        self._stop = threading.Event()
        self._last_drop_log = 0.0
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self._on_pdu)
        self.message_port_register_out(pmt.intern("feedback"))

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self):
        if self.server_addr:
            self._dealer = self._ctx.socket(zmq.DEALER)
            self._dealer.setsockopt(zmq.SNDHWM, self.hwm)
            self._dealer.setsockopt(zmq.LINGER, 0)
            zmqcurve.apply(self._dealer, self.curve)
            self._dealer.connect(self.server_addr)
        self._stop.clear()
        self._thread = threading.Thread(target=self._feedback_loop, name="infercom_server_link_fb", daemon=True)
        self._thread.start()
        self.logger.info(f"server_link: soft frames -> {self.server_addr}, feedback <- {self.feedback_addr}"
                         f"{', CurveZMQ' if self.curve else ''}")
        return True

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self._dealer is not None:
            self._dealer.close(linger=0)
            self._dealer = None
        return True

    # -- soft frames out ------------------------------------------------------------------------------------
    def _on_pdu(self, msg) -> None:
        try:
            meta, y = parse_pdu(msg, np.complex64)
            header = meta_to_header(meta)
            nv = meta.get("noise_var")
            if nv is None:
                raise ValueError("PDU metadata lacks noise_var")
            snr_db = float(meta.get("snr_db", 0.0))
            if not np.isfinite(snr_db):
                snr_db = -60.0
            snr_db = min(max(snr_db, -60.0), 100.0)
            buf = protocol.encode_soft_frame(header, y, nv, snr_db, stream_id=self.stream_id, seq=self.seq + 1)
        except (ValueError, KeyError, TypeError) as exc:
            self.counters["bad_pdus"] += 1
            self.logger.warn(f"server_link: dropped a bad soft-frame PDU ({exc}); {self.counters['bad_pdus']} so far")
            return
        if self._dealer is None:
            self.counters["dropped"] += 1
            return
        try:
            self._dealer.send(buf, zmq.NOBLOCK)
        except zmq.Again:
            self.counters["dropped"] += 1
            now = time.monotonic()
            if now - self._last_drop_log > 5.0:
                self._last_drop_log = now
                self.logger.warn(f"server_link: server at {self.server_addr} not keeping up (or absent): "
                                 f"{self.counters['dropped']} frames dropped so far")
            return
        self.seq += 1
        self.counters["sent"] += 1

    # -- feedback in ----------------------------------------------------------------------------------------
    def _feedback_loop(self) -> None:
        sub = self._ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, 10000)
        if self.tx_ids:
            for t in self.tx_ids:
                sub.setsockopt(zmq.SUBSCRIBE, protocol.feedback_topic(t))
        else:
            sub.setsockopt(zmq.SUBSCRIBE, b"fb")
        zmqcurve.apply(sub, self.curve)
        sub.connect(self.feedback_addr)
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                if not dict(poller.poll(100)):
                    continue
                parts = sub.recv_multipart(zmq.NOBLOCK)
                self._on_feedback_parts(parts)
        finally:
            sub.close(linger=0)

    def _on_feedback_parts(self, parts: list[bytes]) -> None:
        try:
            if len(parts) != 2:
                raise ValueError(f"expected [topic, feedback], got {len(parts)} frames")
            fb = protocol.decode(parts[1])
            if not isinstance(fb, protocol.Feedback):
                raise ValueError(f"expected a feedback message, got {type(fb).__name__}")
            if parts[0] != protocol.feedback_topic(fb.tx_id):
                raise ValueError(f"topic {parts[0]!r} does not match tx_id {fb.tx_id}")
        except ValueError as exc:
            self.counters["bad_feedback"] += 1
            self.logger.warn(f"server_link: ignored bad feedback ({exc})")
            return
        self.counters["feedback"] += 1
        self.message_port_pub(pmt.intern("feedback"), feedback_to_pmt(fb))
