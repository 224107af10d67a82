# SPDX-License-Identifier: GPL-3.0-or-later
"""chase_combiner: maximum-ratio (Chase) combining of retransmitted frames, with bounded memory.

Soft-symbol PDUs of the same frame (tx_id, image_id, frame_idx, same image configuration) from different
attempts are combined with ``infercom.chase.ChaseCombiner`` (MRC = LLR addition).  Each input PDU produces one
output PDU holding the combination of every attempt seen so far.  State is dropped when the server ACKs or
FAILs the image (``feedback`` port), when an entry is older than ``timeout_s``, or, least-recently-used first,
when more than ``max_frames`` frames are held — so memory stays bounded when feedback never comes.
"""

from __future__ import annotations

import collections
import time

import numpy as np
import pmt
from gnuradio import gr

from infercom.chase import ChaseCombiner
from infercom.protocol import CONFIG_FIELDS

from . import pmtvec
from .tags import OPTIONAL_META, feedback_from_pmt, value_from_pmt

_NOT_FOUND = pmt.intern("__infercom_chase_not_found__")
_WANTED = ("tx_id", "image_id", "frame_idx", "attempt", "noise_var") + tuple(CONFIG_FIELDS)
_KEYS = {k: pmt.intern(k) for k in _WANTED + ("chase_attempts", "snr_db")}


def _parse(msg) -> tuple[object, dict, np.ndarray]:
    """(PMT metadata dict, the fields this block reads, a read-only *view* of the symbols): only the keys it
    needs are converted, and the vector is not copied (only read by ``ChaseCombiner.add`` while ``msg`` is
    alive).  Same errors as ``tags.parse_pdu``."""
    if not pmt.is_pair(msg):
        raise ValueError("not a PDU (expected a pair of metadata dict and vector)")
    car = pmt.car(msg)
    if pmt.is_null(car):
        car = pmt.make_dict()
    elif not pmt.is_dict(car):
        raise ValueError("PDU metadata is not a dict")
    meta = {}
    for k in _WANTED:
        v = pmt.dict_ref(car, _KEYS[k], _NOT_FOUND)
        if not pmt.eq(v, _NOT_FOUND):
            meta[k] = value_from_pmt(v)
    try:
        vec = pmtvec.view_pmt(pmt.cdr(msg), np.complex64)
    except ValueError as exc:
        raise ValueError(f"PDU vector: {exc}") from None
    return car, meta, vec


class _Entry:
    __slots__ = ("comb", "attempts", "config", "updated")

    def __init__(self, n, config, now):
        self.comb = ChaseCombiner(n)
        self.attempts: set[int] = set()
        self.config = config
        self.updated = now


class chase_combiner(gr.basic_block):
    """Chase-combine soft-symbol PDUs per (tx_id, image_id, frame_idx).

    Parameters
    ----------
    max_frames : frames held at most (memory ~ 12 bytes per symbol per frame); the least recently updated
        frame is evicted beyond it.
    timeout_s : seconds after its last update when a frame's state is dropped.

    Ports: ``in`` soft PDUs (meta: FrameHeader fields, ``noise_var`` float or f32vector, ``snr_db``; vector:
    complex64 equalised symbols) -> ``out`` combined PDUs (same meta, ``noise_var`` as f32vector per symbol,
    ``chase_attempts`` the attempts combined so far, ``snr_db`` of the combination);
    ``feedback`` (in): feedback dicts as published by ``server_link``; ACK / FAIL / NACK-refine flush the image.
    """

    def __init__(self, max_frames: int = 4096, timeout_s: float = 60.0):
        gr.basic_block.__init__(self, name="infercom_chase_combiner", in_sig=None, out_sig=None)
        if int(max_frames) < 1 or not float(timeout_s) > 0:
            raise ValueError(f"chase_combiner: need max_frames >= 1 and timeout_s > 0, got {max_frames}, "
                             f"{timeout_s}")
        self.max_frames = int(max_frames)
        self.timeout_s = float(timeout_s)
        self.clock = time.monotonic
        self._frames: collections.OrderedDict[tuple, _Entry] = collections.OrderedDict()
        # images ended by ACK/FAIL: (tx_id, image_id) -> (last attempt, time); late frames of them are dropped
        self._finished: collections.OrderedDict[tuple, tuple[int, float]] = collections.OrderedDict()
        self.max_finished = 4096
        self.counters = collections.Counter()
        for port in ("in", "feedback"):
            self.message_port_register_in(pmt.intern(port))
        self.set_msg_handler(pmt.intern("in"), self._on_pdu)
        self.set_msg_handler(pmt.intern("feedback"), self._on_feedback)
        self._out = pmt.intern("out")
        self.message_port_register_out(self._out)

    # -- state ----------------------------------------------------------------------------------------------
    def held_frames(self) -> int:
        return len(self._frames)

    def held_bytes(self) -> int:
        return sum(e.comb.n * 12 for e in self._frames.values())

    def _expire(self, now: float) -> None:
        while self._frames:
            key, e = next(iter(self._frames.items()))
            if now - e.updated <= self.timeout_s:
                break
            del self._frames[key]
            self.counters["expired"] += 1

    def _is_late(self, tx_id: int, image_id: int, attempt: int, now: float) -> bool:
        f = self._finished.get((tx_id, image_id))
        if f is None:
            return False
        if now - f[1] > self.timeout_s:
            del self._finished[(tx_id, image_id)]
            return False
        return attempt <= f[0]

    def _flush_image(self, tx_id: int, image_id: int) -> int:
        keys = [k for k in self._frames if k[0] == tx_id and k[1] == image_id]
        for k in keys:
            del self._frames[k]
        self.counters["flushed"] += len(keys)
        return len(keys)

    # -- handlers -------------------------------------------------------------------------------------------
    def _on_pdu(self, msg) -> None:
        now = self.clock()
        self._expire(now)
        try:
            car, meta, y = _parse(msg)
            key = (int(meta["tx_id"]), int(meta["image_id"]), int(meta["frame_idx"]))
            attempt = int(meta["attempt"])
            config = tuple(meta[f] if f in meta else OPTIONAL_META[f] for f in CONFIG_FIELDS)
            nv = meta.get("noise_var")
            if nv is None:
                raise ValueError("PDU metadata lacks noise_var")
            if self._is_late(key[0], key[1], attempt, now):
                self.counters["late"] += 1   # a frame of an image the server already decided on
                return
            e = self._frames.get(key)
            if e is not None and (e.config != config or e.comb.n != y.size):
                # a re-encoded (refine) version of the image, or a different frame length: start afresh
                del self._frames[key]
                self.counters["restarted"] += 1
                e = None
            if e is not None and attempt in e.attempts:
                self.counters["duplicates"] += 1
                self.logger.debug(f"chase_combiner: duplicate attempt {attempt} of frame {key} ignored")
                return
            new = _Entry(y.size, config, now) if e is None else e
            new.comb.add(y, nv)   # ValueError on NaN/inf symbols, bad noise variance, length mismatch
        except (ValueError, KeyError, TypeError) as exc:
            self.counters["bad_pdus"] += 1
            self.logger.warn(f"chase_combiner: dropped a bad PDU ({exc!s}); {self.counters['bad_pdus']} so far")
            return
        new.attempts.add(attempt)
        new.updated = now
        self._frames[key] = new
        self._frames.move_to_end(key)
        while len(self._frames) > self.max_frames:
            self._frames.popitem(last=False)
            self.counters["evicted"] += 1
        yc, nvc = new.comb.result()
        self.counters["combined"] += 1
        # the input metadata with noise_var, chase_attempts and snr_db set (added to the PMT dict itself: the
        # other fields are passed on unchanged, without a round trip through python)
        out = pmt.dict_add(car, _KEYS["noise_var"], pmtvec.to_pmt(nvc))
        out = pmt.dict_add(out, _KEYS["chase_attempts"], pmt.from_long(len(new.attempts)))
        mean_nv = np.mean(nvc) if nvc.size else np.inf
        if not np.isfinite(mean_nv):   # missing symbols (nv = inf): average over the received ones only
            finite = np.isfinite(nvc)
            mean_nv = np.mean(nvc[finite]) if np.any(finite) else None
        if mean_nv is not None:
            out = pmt.dict_add(out, _KEYS["snr_db"], pmt.from_double(float(10.0 * np.log10(1.0 / mean_nv))))
        self.message_port_pub(self._out, pmt.cons(out, pmtvec.to_pmt(yc)))

    def _on_feedback(self, msg) -> None:
        try:
            fb = feedback_from_pmt(msg)
        except ValueError as exc:
            self.counters["bad_feedback"] += 1
            self.logger.warn(f"chase_combiner: ignored malformed feedback ({exc})")
            return
        if fb.decision in ("ACK", "FAIL") or fb.mode == "refine":
            self._flush_image(fb.tx_id, fb.image_id)
        if fb.decision in ("ACK", "FAIL"):
            key = (fb.tx_id, fb.image_id)
            self._finished[key] = (fb.attempt, self.clock())
            self._finished.move_to_end(key)
            while len(self._finished) > self.max_finished:
                self._finished.popitem(last=False)
        self._expire(self.clock())
