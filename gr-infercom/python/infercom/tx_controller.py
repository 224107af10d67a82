# SPDX-License-Identifier: GPL-3.0-or-later
"""tx_controller: the transmitter's control plane — images in, frame PDUs out, retransmissions on feedback.

Frames are built by ``infercom.frame.image_frames`` (source coding, bit planes, power allocation, interleaving,
preamble | header | payload with pilots); retransmission decisions are ``infercom.arq``'s (chase, selective,
refine, timeouts, attempt limit).  This block only schedules: it reads each image when its turn comes, keeps at
most ``max_in_flight`` frames between itself and the modulator (credits returned by ``frame_modulator``'s
``sent`` port), and reports every image's outcome on the ``status`` port.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from pathlib import Path

import numpy as np
import pmt
from gnuradio import gr

from infercom.arq import ArqConfig, ArqQueue
from infercom.imageio import check_image, list_images, load_image
from infercom.link import LinkConfig
from infercom.limits import MAX_ATTEMPT, MAX_IMAGE_ID, MAX_TX_ID

from .tags import feedback_from_pmt, header_to_meta, make_pdu

#: seconds without any 'sent' report before flow control assumes the port is unconnected
CREDIT_TIMEOUT_S = 30.0


def image_list(images) -> list:
    """A folder, a file, a comma-separated string of files, or a list of paths / uint8 arrays -> list."""
    if isinstance(images, (str, Path)):
        text = str(images)
        if "," in text:
            return [Path(p.strip()) for p in text.split(",") if p.strip()]
        return list(list_images(text))
    out = list(images)
    if not out:
        raise ValueError("tx_controller: no images given")
    return out


class tx_controller(gr.basic_block):
    """Send images as frame PDUs and retransmit per the server's feedback.

    Parameters
    ----------
    images : folder of images, one file, comma-separated files, or a list of paths / uint8 arrays.
    tx_id : transmitter id 0..255 (frames carry it; feedback for other ids is ignored).
    bh, bw : block size of the block-mean source code (rate 1/(bh*bw)); planes: top bit planes sent (1..8).
    profile : "importance" or "equal" power allocation; design_snr_db: its design Es/N0 in dB (integer).
    key_id : interleaver key id (0 = public default key).
    frame_len_log2 : data symbols per frame = 2**frame_len_log2.
    use_feedback : True: wait for ACK/NACK per image (ARQ with timeout_s, max_attempts); False: send every image
        ``blind_attempts`` times (attempts 0..n-1, for Chase combining without a server) and move on.
    max_attempts, timeout_s : ARQ attempt limit and feedback timeout (seconds).
    window : images in flight at once.
    max_in_flight : frames published but not yet reported sent by the modulator (flow control; needs the
        modulator's ``sent`` port connected to ``sent``; 0 = no flow control).
    first_image_id : image_id of the first image (ids then count up, modulo 4096).
    max_images : stop after this many images (0 = all).
    system : ``"infercom"`` (the InferCom link) or ``"nr"`` (the 5G-NR baseline of ``infercom.nr``: JPEG to the
        budget of the InferCom link at ``bh x bw`` and ``planes``, one LDPC-coded transport block, CRC-triggered
        HARQ; the frames carry it as ``infercom.nr.frames`` describes; ``profile``, ``design_snr_db`` and
        ``key_id`` do not apply).
    nr_code_rate, nr_harq, nr_budget : the NR transport block's code rate (``infercom.nr.tbs.RATES``), HARQ
        mode (``ir`` | ``chase``) and JPEG budget mode (``channel-uses`` | ``source-rate``).

    Ports: ``frames`` (out) frame PDUs; ``status`` (out) dicts: event "attempt" (an attempt was queued),
    "done" (an image ended: the ARQ record), "finished" (all images ended); ``feedback`` (in) feedback dicts;
    ``sent`` (in) the modulator's per-frame reports.
    """

    def __init__(self, images="", tx_id: int = 0, bh: int = 3, bw: int = 3, planes: int = 8,
                 profile: str = "importance", design_snr_db: int = -4, key_id: int = 0, frame_len_log2: int = 15,
                 use_feedback: bool = True, blind_attempts: int = 1, max_attempts: int = 4, timeout_s: float = 5.0,
                 window: int = 1, max_in_flight: int = 8, first_image_id: int = 0, max_images: int = 0,
                 system: str = "infercom", nr_code_rate: str = "1/3", nr_harq: str = "ir",
                 nr_budget: str = "channel-uses"):
        gr.basic_block.__init__(self, name="infercom_tx_controller", in_sig=None, out_sig=None)
        self.images = image_list(images)
        if max_images:
            self.images = self.images[: int(max_images)]
        if not 0 <= int(tx_id) <= MAX_TX_ID:
            raise ValueError(f"tx_controller: tx_id must be 0..{MAX_TX_ID}, got {tx_id}")
        self.tx_id = int(tx_id)
        self.link_cfg = LinkConfig(bh=int(bh), bw=int(bw), planes=int(planes), profile=str(profile),
                                   design_snr_db=int(design_snr_db), key_id=int(key_id))
        self.frame_len_log2 = int(frame_len_log2)
        if system not in ("infercom", "nr"):
            raise ValueError(f"tx_controller: system must be 'infercom' or 'nr', got {system!r}")
        self.system = system
        self.nr = {"code_rate": str(nr_code_rate), "harq": str(nr_harq), "budget_mode": str(nr_budget)}
        self._nr_tx: dict[int, object] = {}
        self.use_feedback = bool(use_feedback)
        if not 1 <= int(blind_attempts) <= MAX_ATTEMPT + 1:
            raise ValueError(f"tx_controller: blind_attempts must be 1..{MAX_ATTEMPT + 1}, got {blind_attempts}")
        self.blind_attempts = int(blind_attempts)
        self.arq_cfg = ArqConfig(max_attempts=int(max_attempts), timeout_s=float(timeout_s))
        self.window = int(window)
        self.max_in_flight = int(max_in_flight)
        self.first_image_id = int(first_image_id)
        self.counters = collections.Counter()
        self.records: list[dict] = []
        #: called with every image's record before it is kept (e.g. the UHD events during the image)
        self.annotate = None
        self.finished = threading.Event()
        self._feedback: queue.Queue = queue.Queue(maxsize=1024)
        self._cv = threading.Condition()
        self._in_flight = 0
        self._awaiting: dict[tuple[int, int, int], object] = {}   # (image_id, attempt, last frame) -> plan
        self._stop = threading.Event()
        self._thread = None
        self._completed: list = []   # plans whose last frame the modulator reported sent
        self.message_port_register_out(pmt.intern("frames"))
        self.message_port_register_out(pmt.intern("status"))
        self.message_port_register_in(pmt.intern("feedback"))
        self.set_msg_handler(pmt.intern("feedback"), self._on_feedback)
        self.message_port_register_in(pmt.intern("sent"))
        self.set_msg_handler(pmt.intern("sent"), self._on_sent)

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="infercom_tx_controller", daemon=True)
        self._thread.start()
        return True

    def stop(self):
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None
        return True

    # -- message handlers (scheduler thread) ----------------------------------------------------------------
    def _on_feedback(self, msg) -> None:
        try:
            fb = feedback_from_pmt(msg)
        except ValueError as exc:
            self.counters["bad_feedback"] += 1
            self.logger.warn(f"tx_controller: ignored malformed feedback ({exc})")
            return
        if fb.tx_id != self.tx_id:
            self.counters["other_tx_feedback"] += 1
            return
        try:
            self._feedback.put_nowait(fb)
        except queue.Full:
            self.counters["feedback_overflow"] += 1
            self.logger.warn("tx_controller: feedback queue full, dropped one (the ARQ timeout covers it)")
            return
        with self._cv:
            self._cv.notify_all()

    def _on_sent(self, msg) -> None:
        try:
            d = pmt.to_python(msg)
            key = (int(d["image_id"]), int(d["attempt"]), int(d["frame_idx"]))
            if int(d["tx_id"]) != self.tx_id:
                return
        except Exception:  # noqa: BLE001 - any malformed report is ignored, flow control re-syncs by timeout
            self.counters["bad_sent"] += 1
            return
        with self._cv:
            self._in_flight = max(self._in_flight - 1, 0)
            plan = self._awaiting.pop(key, None)
            if plan is not None:
                self._completed.append(plan)
            self._cv.notify_all()

    # -- the transmit loop (own thread) ---------------------------------------------------------------------
    def _image(self, image_id: int) -> np.ndarray:
        idx = (image_id - self.first_image_id) % (MAX_IMAGE_ID + 1)
        src = self.images[idx]
        if isinstance(src, np.ndarray):
            return check_image(src, f"image {idx}")
        return load_image(src)

    def _nr_image(self, image_id: int):
        """The NR transmitter of an image (JPEG + transport block), built once per image."""
        from infercom.nr.harq import NrImageTx

        if image_id not in self._nr_tx:
            self._nr_tx = {image_id: NrImageTx(self._image(image_id), bh=self.link_cfg.bh, bw=self.link_cfg.bw,
                                               planes=self.link_cfg.planes, max_attempts=self.arq_cfg.max_attempts,
                                               **self.nr)}
        return self._nr_tx[image_id]

    def _publish_attempt(self, plan) -> int:
        """Build and publish the frames of one plan; returns the number of frames sent."""
        from infercom.frame import FrameFormat, image_frames

        fmt = FrameFormat(frame_len_log2=self.frame_len_log2)
        which = list(plan.frames) if plan.frames is not None else None
        if self.system == "nr":
            from infercom.nr.frames import nr_image_frames
            frames = nr_image_frames(self._nr_image(plan.image_id), self.tx_id, plan.image_id, plan.attempt, fmt,
                                     which)
        else:
            cfg = LinkConfig(bh=plan.bh, bw=plan.bw, planes=self.link_cfg.planes, profile=self.link_cfg.profile,
                             design_snr_db=self.link_cfg.design_snr_db, key_id=self.link_cfg.key_id)
            frames = image_frames(self._image(plan.image_id), cfg, self.tx_id, plan.image_id,
                                  attempt=plan.attempt, fmt=fmt, frames=which)
        self._status({"event": "attempt", "tx_id": self.tx_id, "image_id": plan.image_id,
                      "attempt": plan.attempt, "why": plan.why, "bh": plan.bh, "bw": plan.bw,
                      "n_frames": len(frames)})
        for i, (hdr, sym) in enumerate(frames):
            with self._cv:
                t_wait = time.monotonic()
                while self.max_in_flight and self._in_flight >= self.max_in_flight and not self._stop.is_set():
                    self._cv.wait(0.1)
                    if time.monotonic() - t_wait > CREDIT_TIMEOUT_S:
                        # no 'sent' reports: the modulator's sent port is probably not connected
                        self.counters["credit_timeouts"] += 1
                        self.logger.warn(f"tx_controller: no frame reported sent for {CREDIT_TIMEOUT_S:.0f} s; "
                                         "is frame_modulator's 'sent' connected to 'sent'? continuing")
                        # flow control off from now on; attempts waiting for their last report count as sent
                        self.max_in_flight = 0
                        self._in_flight = 0
                        self._completed.extend(self._awaiting.values())
                        self._awaiting.clear()
                        break
                if self._stop.is_set():
                    return i
                self._in_flight += 1
                if i == len(frames) - 1 and self.max_in_flight:
                    self._awaiting[(plan.image_id, plan.attempt, hdr.frame_idx)] = plan
            self.message_port_pub(pmt.intern("frames"), make_pdu(header_to_meta(hdr), np.asarray(sym, np.complex64)))
            self.counters["frames"] += 1
        return len(frames)

    def _status(self, d: dict) -> None:
        self.message_port_pub(pmt.intern("status"), pmt.to_pmt(d))

    def _run(self) -> None:
        try:
            if self.use_feedback:
                self._run_arq()
            else:
                self._run_blind()
        except Exception as exc:  # noqa: BLE001 - report, never kill the flowgraph silently
            self.counters["errors"] += 1
            self.logger.error(f"tx_controller: stopped on error: {exc!r}")
        finally:
            self._status({"event": "finished", "tx_id": self.tx_id, "images": len(self.records)})
            self.finished.set()

    def _wait_sent(self, n_awaited: int) -> None:
        """Block until ``n_awaited`` attempts' last frames were reported sent (or flow control is off)."""
        with self._cv:
            while self.max_in_flight and len(self._completed) < n_awaited and not self._stop.is_set():
                self._cv.wait(0.1)

    def _run_blind(self) -> None:
        from infercom.arq import SendPlan

        for k in range(len(self.images)):
            image_id = (self.first_image_id + k) % (MAX_IMAGE_ID + 1)
            attempts = []
            for a in range(self.blind_attempts):
                if self._stop.is_set():
                    return
                plan = SendPlan(self.tx_id, image_id, a, None, self.link_cfg.bh, self.link_cfg.bw, "blind")
                try:
                    n = self._publish_attempt(plan)
                except ValueError as exc:
                    self.counters["bad_images"] += 1
                    self.logger.error(f"tx_controller: image {k} ({self.images[k]}): {exc}")
                    break
                attempts.append({"attempt": a, "why": "blind", "n_frames_sent": n})
            with self._cv:
                self._completed.clear()
            rec = {"tx_id": self.tx_id, "image_id": image_id, "outcome": "sent", "n_attempts": len(attempts),
                   "attempts": attempts, "meta": {"image": str(self.images[k]) if not isinstance(
                       self.images[k], np.ndarray) else f"array {k}"}}
            self._keep(rec)
            self._status({"event": "done", **{k2: v for k2, v in rec.items() if k2 != "attempts"}})
        # the last frames must leave the modulator before we call it finished
        with self._cv:
            while self.max_in_flight and self._in_flight > 0 and not self._stop.is_set():
                self._cv.wait(0.1)

    def _run_arq(self) -> None:
        q = ArqQueue(self.tx_id, self.arq_cfg, window=self.window)
        for k, src in enumerate(self.images):
            meta = {"image": str(src) if not isinstance(src, np.ndarray) else f"array {k}"}
            q.add((self.first_image_id + k) % (MAX_IMAGE_ID + 1), self.link_cfg.bh, self.link_cfg.bw, meta)
        reported = 0
        while not q.finished and not self._stop.is_set():
            now = time.monotonic()
            plans = q.step(now)
            while True:
                try:
                    fb = self._feedback.get_nowait()
                except queue.Empty:
                    break
                plan = q.on_feedback(fb, time.monotonic())
                self.counters[f"feedback_{fb.decision}"] += 1
                if plan is not None:
                    plans.append(plan)
            for plan in plans:
                try:
                    n = self._publish_attempt(plan)
                except ValueError as exc:
                    self.counters["bad_images"] += 1
                    self.logger.error(f"tx_controller: image {plan.image_id}: {exc}; giving up on it")
                    for t in q.in_flight:
                        if t.image_id == plan.image_id:
                            t.abort(time.monotonic(), f"cannot encode: {exc}")
                    continue
                if not self.max_in_flight:
                    q.sent(plan, time.monotonic(), n)
                else:
                    self._pending_sent(q, plan, n)
            with self._cv:
                done_plans, self._completed = self._completed, []
            for plan in done_plans:
                q.sent(plan, time.monotonic(), None)
            recs = q.records()
            for rec in recs[reported:]:
                self._keep(rec)
                self._status({"event": "done", **{k: v for k, v in rec.items() if k != "attempts"}})
            reported = len(recs)
            dl = q.next_deadline()
            with self._cv:
                if self._feedback.empty() and not self._completed:
                    wait = 0.05 if dl is None else min(max(dl - time.monotonic(), 0.0), 0.05)
                    self._cv.wait(wait)
        if self._stop.is_set():
            q.abort_all(time.monotonic(), "transmitter stopped")
            recs = q.records()
            for rec in recs[reported:]:
                self._keep(rec)

    def _keep(self, rec: dict) -> None:
        """Keep an image's record (after :attr:`annotate`, if set, added to it)."""
        if self.annotate is not None:
            try:
                self.annotate(rec)
            except Exception as exc:     # noqa: BLE001 - a failing annotation must not lose the record
                rec["annotate_error"] = repr(exc)
        self.records.append(rec)

    def _pending_sent(self, q, plan, n) -> None:
        """The plan's last frame is in ``_awaiting``; when the modulator reports it, ``_completed`` gets it."""
        if n == 0:
            q.sent(plan, time.monotonic(), 0)
