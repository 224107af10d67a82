# SPDX-License-Identifier: GPL-3.0-or-later
"""A simulated transmitter + symbol-level channel + receiver that talks to the server over the real protocol.

This is the ``--path sim`` of the demo and the workhorse of the server's end-to-end tests: each attempt's
payload (``infercom.link.encode_image``) goes through the symbol-level channel of every simulation
(:class:`infercom.channel.SymbolChannel`: AWGN at Es/N0, optionally one Rayleigh coefficient per attempt or
per frame, equalised with the true coefficient: ``y = r / h``, ``noise_var = N0 / |h|^2``), is cut into frames
(``infercom.frame.segment``) and each frame is sent to the server as a ``soft_frame`` (measured Es/N0 = the
frame's ``|h|^2 / N0``) through a ZeroMQ DEALER.
Feedback comes back on a SUB filtered by this transmitter's ``tx_id`` and drives ``infercom.arq``. Frames can
also be dropped at random (``frame_loss``: a lost burst or a failed header). No sync, no pulse shaping: the
GNU Radio loopback covers those.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import zmq

from infercom import channel, protocol
from infercom.arq import ArqConfig, ArqQueue, SendPlan
from infercom.frame import segment
from infercom.header import FrameHeader
from infercom.link import LinkConfig, encode_image

__all__ = ["ChannelSpec", "SimTransmitter", "frames_through", "status_request"]

#: measured Es/N0 range the protocol accepts in a soft frame (dB); reports are clipped to it
REPORT_SNR_DB = (-60.0, 100.0)


@dataclass(frozen=True)
class ChannelSpec(channel.SymbolChannel):
    """The simulated transmitter's channel: :class:`infercom.channel.SymbolChannel` (same fields, vocabulary
    and arithmetic) plus ``frame_loss``, the probability that a frame never reaches the server (a lost burst
    or a failed header).

    Defaults for the server's simulations: ``snr_db = 10`` dB, ``snr_mode = "average"`` (``snr_db`` is the
    mean over the fading, each attempt or frame realises its own Es/N0: a transmitter without CSI, as on the
    GNU Radio loopback).  ``snr_db`` must be in -30..60 dB or ``inf`` (noiseless: reported to the server as
    :data:`infercom.channel.NOISELESS_VAR`).  ``frame_len`` must be None or the transmitter's frame length:
    the coherence blocks of ``fading_per = "frame"`` are the transmitter's frames.
    """

    snr_db: float = 10.0
    snr_mode: str = "average"
    frame_loss: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (-30 <= self.snr_db <= 60 or self.snr_db == math.inf):
            raise ValueError(f"snr_db must be in -30..60 dB or inf (noiseless), got {self.snr_db}")
        if not 0 <= self.frame_loss < 1:
            raise ValueError(f"frame_loss must be in [0, 1), got {self.frame_loss}")


def frames_through(chan: ChannelSpec, payload: np.ndarray, frames, frame_len: int, rng: np.random.Generator):
    """One attempt of ``payload`` over ``chan``: yields, for each frame index in ``frames`` (the frames sent,
    in order), ``(index, (y complex64, noise_var, measured Es/N0 dB))`` -- or ``(index, None)`` when the
    frame is lost.

    The whole attempt goes through :class:`~infercom.channel.SymbolChannel` first (coefficients, then the
    noise of every payload symbol, with ``rng``: exactly ``infercom simulate``'s draws), then the frames
    (``frame_len`` symbols, :func:`infercom.frame.segment`'s cut) are taken from it; ``noise_var`` is a scalar
    per frame whenever the frame lies in one coefficient block.  Frame losses are drawn afterwards, one
    uniform per frame sent, and only when ``frame_loss > 0``."""
    if chan.frame_len is not None and chan.frame_len != frame_len:
        raise ValueError(f"the channel's frame_len {chan.frame_len} is not the transmitter's {frame_len}")
    rx = dataclasses.replace(chan, frame_len=frame_len)(payload, rng)
    n = rx.y.size
    for i in frames:
        start = i * frame_len
        if chan.frame_loss and rng.random() < chan.frame_loss:
            yield i, None
            continue
        y, nv, snr = rx.segment(start, min(start + frame_len, n))
        yield i, (y, nv, float(np.clip(snr, *REPORT_SNR_DB)))


class SimTransmitter:
    """One transmitter with its channel and an ideal receiver, driving the server through the protocol.

    ``images``: list of ``(image_id, uint8 image, meta dict)``. ``server`` / ``feedback``: the server's ROUTER
    and PUB addresses. ``run(deadline_s)`` returns the ARQ records (every image ends ACK or FAIL).
    ``on_event(kind, data)`` (optional) is called with ``"feedback"`` / ``"plan"`` for progress display.
    """

    def __init__(self, tx_id: int, images: list[tuple[int, np.ndarray, dict]], server: str, feedback: str,
                 link_cfg: LinkConfig | None = None, arq: ArqConfig | None = None,
                 chan: ChannelSpec | None = None, seed: int = 0, frame_len_log2: int = 15, window: int = 1,
                 curve_server_key: bytes | None = None, curve_client_keys: tuple[bytes, bytes] | None = None,
                 nr: dict | None = None, on_event: Callable[[str, Any], None] | None = None):
        self.tx_id = int(tx_id)
        self.images = {int(i): (np.asarray(img), dict(meta or {})) for i, img, meta in images}
        self.server, self.feedback_addr = server, feedback
        self.link_cfg = link_cfg or LinkConfig()
        self.arq = arq or ArqConfig()
        self.channel = chan or ChannelSpec()
        self.rng = np.random.default_rng(seed)
        self.fll = int(frame_len_log2)
        self.window = window
        self.curve_server_key = curve_server_key
        self.curve_client_keys = curve_client_keys
        self.on_event = on_event
        self.stream_id = secrets.randbits(64) or 1
        self.seq = 0
        self.frames_sent = 0
        self.frames_lost = 0
        self.send_dropped = 0
        self.bad_feedback = 0
        self._payload_cache: dict[tuple[int, int, int], tuple[np.ndarray, Any]] = {}
        # the 5G-NR baseline instead of InferCom: NrImageTx keyword arguments (budget_mode, code_rate, harq);
        # the budget refers to link_cfg's rate and planes
        self.nr = None if nr is None else dict(nr)
        self._nr_tx: dict[int, Any] = {}

    # ------------------------------------------------------------------
    def _payload(self, image_id: int, bh: int, bw: int):
        key = (image_id, bh, bw)
        if key not in self._payload_cache:
            cfg = dataclasses.replace(self.link_cfg, bh=bh, bw=bw)
            self._payload_cache = {k: v for k, v in self._payload_cache.items() if k[0] == image_id}
            self._payload_cache[key] = (*encode_image(self.images[image_id][0], cfg), cfg)
        return self._payload_cache[key]

    def _nr_payload(self, image_id: int, attempt: int):
        from infercom.nr.frames import header_for_tx
        from infercom.nr.harq import NrImageTx

        if image_id not in self._nr_tx:
            self._nr_tx = {image_id: NrImageTx(self.images[image_id][0], bh=self.link_cfg.bh,
                                               bw=self.link_cfg.bw, planes=self.link_cfg.planes,
                                               max_attempts=self.arq.max_attempts, **self.nr)}
        tx = self._nr_tx[image_id]
        return tx.symbols(attempt), header_for_tx(tx, self.tx_id, image_id, attempt, self.fll)

    def _send(self, sock: zmq.Socket, plan: SendPlan) -> int:
        if self.nr is not None:
            payload, h0 = self._nr_payload(plan.image_id, plan.attempt)
        else:
            payload, lay, cfg = self._payload(plan.image_id, plan.bh, plan.bw)
            h0 = FrameHeader.for_image(cfg, lay.height, lay.width, lay.channels, self.tx_id, plan.image_id, 0,
                                       plan.attempt, self.fll)
        frame_len = 1 << self.fll
        n_frames = len(segment(payload, frame_len))
        idx = range(n_frames) if plan.frames is None else [i for i in plan.frames if i < n_frames]
        n = 0
        for i, out in frames_through(self.channel, payload, idx, frame_len, self.rng):
            n += 1
            if out is None:
                self.frames_lost += 1
                continue
            y, nv, snr = out
            self.seq += 1
            buf = protocol.encode_soft_frame(h0.replace(frame_idx=i), y, nv, snr, self.stream_id, self.seq)
            try:
                sock.send(buf, zmq.NOBLOCK)
                self.frames_sent += 1
            except zmq.Again:
                self.send_dropped += 1        # the ARQ timeout covers it
        if self.on_event:
            self.on_event("plan", plan)
        return n

    def _curve(self, s: zmq.Socket) -> None:
        _apply_curve(s, self.curve_server_key, self.curve_client_keys)

    def run(self, deadline_s: float = 120.0) -> list[dict[str, Any]]:
        ctx = zmq.Context.instance()
        dealer = ctx.socket(zmq.DEALER)
        sub = ctx.socket(zmq.SUB)
        try:
            for s in (dealer, sub):
                s.setsockopt(zmq.LINGER, 0)
                self._curve(s)
            dealer.setsockopt(zmq.SNDHWM, 10000)
            dealer.connect(self.server)
            sub.setsockopt(zmq.SUBSCRIBE, protocol.feedback_topic(self.tx_id))
            sub.connect(self.feedback_addr)
            time.sleep(0.2)                  # let the subscription reach the server (slow joiner)
            q = ArqQueue(self.tx_id, self.arq, self.window)
            for image_id, (img, meta) in self.images.items():
                q.add(image_id, self.link_cfg.bh, self.link_cfg.bw, meta)
            t_end = time.monotonic() + deadline_s
            while not q.finished:
                now = time.monotonic()
                if now >= t_end:
                    q.abort_all(now, f"transmitter deadline {deadline_s} s reached")
                    break
                for plan in q.step(now):
                    n = self._send(dealer, plan)
                    q.sent(plan, time.monotonic(), n)
                dl = q.next_deadline()
                wait_ms = 50 if dl is None else int(np.clip(1e3 * (dl - time.monotonic()), 1, 50))
                if sub.poll(wait_ms):
                    while True:
                        try:
                            topic, buf = sub.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        except ValueError:
                            self.bad_feedback += 1
                            continue
                        try:
                            fb = protocol.decode(buf)
                        except protocol.ProtocolError:
                            self.bad_feedback += 1
                            continue
                        if not isinstance(fb, protocol.Feedback) or fb.tx_id != self.tx_id:
                            self.bad_feedback += 1        # cross-delivered: must never happen
                            continue
                        if self.on_event:
                            self.on_event("feedback", fb)
                        plan = q.on_feedback(fb, time.monotonic())
                        if plan is not None:
                            n = self._send(dealer, plan)
                            q.sent(plan, time.monotonic(), n)
            recs = q.records()
            for r in recs:
                r["channel"] = dataclasses.asdict(self.channel)
            return recs
        finally:
            dealer.close(0)
            sub.close(0)


def _apply_curve(s: zmq.Socket, server_key: bytes | None, client_keys: tuple[bytes, bytes] | None) -> None:
    """CurveZMQ client side: the server's public key and this client's keypair ``(public, secret)`` (Z85);
    a fresh random keypair when none is given (a server with an allow-list refuses it)."""
    if server_key is not None:
        pub, sec = client_keys if client_keys is not None else zmq.curve_keypair()
        s.curve_serverkey, s.curve_publickey, s.curve_secretkey = server_key, pub, sec


def status_request(address: str, timeout_s: float = 5.0, curve_server_key: bytes | None = None,
                   curve_client_keys: tuple[bytes, bytes] | None = None) -> dict:
    """Ask the server at ``address`` for its status (REQ socket); ``TimeoutError`` when it does not answer."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    _apply_curve(s, curve_server_key, curve_client_keys)
    try:
        s.connect(address)
        s.send(protocol.encode(protocol.StatusRequest()))
        if not s.poll(int(timeout_s * 1e3)):
            raise TimeoutError(f"no status from {address} within {timeout_s} s")
        msg = protocol.decode(s.recv())
        if not isinstance(msg, protocol.StatusResponse):
            raise ValueError(f"expected a status response, got {type(msg).__name__}")
        return dict(msg.body)
    finally:
        s.close(0)
