# SPDX-License-Identifier: GPL-3.0-or-later
"""The ZeroMQ wire schema between RX flowgraphs, the inference server and transmitters (version 1).

Pure bytes in, bytes out: no sockets here (see ``docs/protocol.md`` for the socket pattern). Every message is
one ZeroMQ frame that starts with a 4-byte envelope ``b"IC" | version u8 | type u8`` followed by a fixed,
little-endian header for its type and then raw little-endian arrays (soft frames) or a bounded UTF-8 JSON
object (feedback details, status). Every field is validated and every size is bounded on decode *and* on
encode; a bad message raises :class:`ProtocolError` (a ``ValueError``) whose ``reason`` is one of
:data:`REJECT_REASONS`, so a server can count rejections per reason.

Message types
-------------
``soft_frame`` (RX -> server)
    one received frame: ids, the image configuration fields of ``infercom.header.FrameHeader``, the measured
    Es/N0, the effective noise variance (scalar or per symbol), the equalised payload data symbols ``y``
    (complex64, pilots removed, *not* Chase-combined: one message per attempt) and a replay guard
    ``(stream_id, seq)``.
``feedback`` (server -> TX)
    the decision on one image attempt (``ACK`` / ``NACK`` / ``FAIL``), the reason, the QoE scores and, on NACK,
    what to resend (``chase``: all frames, ``selective``: listed frames, ``refine``: a new block size) and the
    attempt number to use.
``status_request`` / ``status`` (any client <-> server)
    a JSON object with counters and latency percentiles.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

# the field ranges, profiles, the config field list, its validation and the payload-size arithmetic are the
# frame header's (one definition each: infercom.limits, infercom.header, infercom.link), re-exported here
from .header import CONFIG_FIELDS, ID_FIELDS, SYSTEMS, ImageFields, check_config, frame_count, frame_payload_len
from .limits import (FIELD_RANGES, MAX_ATTEMPT, MAX_BLOCK, MAX_FRAME_LEN_LOG2, MAX_FRAMES, MAX_TX_ID,
                     MIN_FRAME_LEN_LOG2, PROFILES)
from .link import n_payload_symbols

__all__ = [
    "VERSION", "MAGIC", "MSG_SOFT_FRAME", "MSG_FEEDBACK", "MSG_STATUS_REQUEST", "MSG_STATUS",
    "MAX_FRAME_LEN_LOG2", "MAX_SOFT_FRAME_BYTES", "MAX_JSON_BYTES", "MAX_STATUS_BYTES", "REJECT_REASONS",
    "PROFILES", "DECISIONS", "RESEND_MODES", "ProtocolError", "ImageConfig", "SoftFrame", "Feedback",
    "StatusRequest", "StatusResponse", "encode", "decode", "encode_soft_frame", "message_type",
    "feedback_topic", "frame_digest", "CONFIG_FIELDS", "n_payload_symbols", "frame_count", "frame_payload_len",
    "MIN_FRAME_LEN_LOG2", "MAX_FRAMES", "SYSTEMS",
]

MAGIC = b"IC"
VERSION = 1

MSG_SOFT_FRAME = 1
MSG_FEEDBACK = 2
MSG_STATUS_REQUEST = 3
MSG_STATUS = 4
_TYPE_NAMES = {MSG_SOFT_FRAME: "soft_frame", MSG_FEEDBACK: "feedback",
               MSG_STATUS_REQUEST: "status_request", MSG_STATUS: "status"}

# frames carry 2**MIN_FRAME_LEN_LOG2 .. 2**MAX_FRAME_LEN_LOG2 (= 2**16) data symbols; an image has at most
# MAX_FRAMES (4096) frames, which also bounds feedback frame lists (infercom.limits)
#: bound on the JSON part of a feedback message (reason + scores), bytes
MAX_JSON_BYTES = 4096
#: bound on status request/response bodies, bytes
MAX_STATUS_BYTES = 65536

DECISIONS = ("ACK", "NACK", "FAIL")
RESEND_MODES = ("none", "chase", "selective", "refine")

#: why a message was rejected (the server keeps one counter per reason; "replay" is the server's own)
REJECT_REASONS = ("empty", "bad_magic", "bad_version", "unknown_type", "truncated", "oversized",
                  "bad_field", "bad_array", "bad_json", "replay", "unexpected_type")

_ENVELOPE = struct.Struct("<2sBB")
# soft_frame fixed header, after the envelope:
#  flags u8 | tx_id u8 | image_id u16 | attempt u8 | frame_idx u16 |
#  bh u8 | bw u8 | planes u8 | channels u8 | profile u8 | design_snr_db i8 | key_id u8 |
#  height u16 | width u16 | frame_len_log2 u8 |
#  stream_id u64 | seq u64 | snr_db f32 | noise_var f32 | n_sym u32
_SOFT = struct.Struct("<BBHBH BBBBBbB HHB QQffI".replace(" ", ""))
#: byte range of stream_id + seq inside a soft_frame message (what a replay under fresh ids changes)
_SOFT_IDS = slice(_ENVELOPE.size + struct.calcsize("<BBHBH BBBBBbB HHB".replace(" ", "")),
                  _ENVELOPE.size + struct.calcsize("<BBHBH BBBBBbB HHB QQ".replace(" ", "")))
_FLAG_NV_PER_SYMBOL = 0x01
_FLAG_NR = 0x02            # the frame comes from the 5G-NR baseline link (header field ``system``)
_SOFT_FLAGS = _FLAG_NV_PER_SYMBOL | _FLAG_NR
# feedback fixed header, after the envelope:
#  tx_id u8 | image_id u16 | attempt u8 | decision u8 | mode u8 | next_attempt u8 |
#  refine_bh u8 | refine_bw u8 | n_frames u16 | json_len u16
_FEEDBACK = struct.Struct("<BHBBBBBBHH")
_STATUS_LEN = struct.Struct("<I")

MAX_SOFT_FRAME_BYTES = _ENVELOPE.size + _SOFT.size + (2 ** MAX_FRAME_LEN_LOG2) * (8 + 4)
_MAX_FEEDBACK_BYTES = _ENVELOPE.size + _FEEDBACK.size + 2 * MAX_FRAMES + MAX_JSON_BYTES


class ProtocolError(ValueError):
    """A message that does not follow the schema. ``reason`` is one of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, message: str):
        assert reason in REJECT_REASONS, reason
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ProtocolError("bad_field", f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if not lo <= value <= hi:
        raise ProtocolError("bad_field", f"{name}={value} out of range [{lo}, {hi}]")
    return value


@dataclass(frozen=True)
class ImageConfig(ImageFields):
    """The image configuration fields that ``FrameHeader`` carries (``infercom.header.ImageFields``: the same
    fields, sizes and link config; see ``docs/internals.md``), validated as the header validates them plus
    the bound of :data:`MAX_FRAMES` frames per image.

    ``frame_len_log2``: data symbols per frame = ``2**frame_len_log2``.
    """

    def __post_init__(self) -> None:
        try:
            check_config(self, "config field")     # the header's own check: same ranges, same rules
        except ValueError as exc:
            raise ProtocolError("bad_field", str(exc)) from None
        if self.frame_count() > MAX_FRAMES:
            raise ProtocolError("bad_field", f"image needs {self.frame_count()} frames, more than {MAX_FRAMES}")

    @classmethod
    def from_header(cls, h: Any) -> "ImageConfig":
        """The config fields of a ``FrameHeader`` (or any object with those attributes)."""
        return cls(**{f: getattr(h, f) for f in CONFIG_FIELDS})


@dataclass(frozen=True, eq=False)
class SoftFrame:
    """One received frame, RX -> server.

    ``y``: complex64 ``(n,)`` equalised payload data symbols of this frame (pilots removed), ``n`` = the
    frame's payload length. ``noise_var``: effective noise variance ``E|n|^2`` — a float (same for all
    symbols) or float32 ``(n,)``; ``inf`` marks a missing symbol (its ``y`` must be 0). ``snr_db``: measured
    Es/N0 of the frame in dB. ``stream_id`` (random, non-zero, per RX process) and ``seq`` (strictly increasing
    within a stream) let the server reject replayed messages.
    """

    tx_id: int
    image_id: int
    attempt: int
    frame_idx: int
    config: ImageConfig
    snr_db: float
    noise_var: float | np.ndarray
    y: np.ndarray
    stream_id: int
    seq: int

    def __post_init__(self) -> None:
        for name in ID_FIELDS:
            _check_int(name, getattr(self, name), *FIELD_RANGES[name])
        if not isinstance(self.config, ImageConfig):
            raise ProtocolError("bad_field", "config must be an ImageConfig")
        nframes = self.config.frame_count()
        if self.frame_idx >= nframes:
            raise ProtocolError("bad_field", f"frame_idx={self.frame_idx} but the image has {nframes} frames")
        _check_int("stream_id", self.stream_id, 1, 2 ** 64 - 1)
        _check_int("seq", self.seq, 0, 2 ** 64 - 1)
        snr = float(self.snr_db)
        if not math.isfinite(snr) or not -60.0 <= snr <= 100.0:
            raise ProtocolError("bad_field", f"snr_db={snr} must be finite and in [-60, 100] dB")
        object.__setattr__(self, "snr_db", snr)
        y = np.asarray(self.y)
        if y.ndim != 1 or not np.iscomplexobj(y):
            raise ProtocolError("bad_array", f"y must be a 1-D complex array, got {y.dtype} {y.shape}")
        y = np.ascontiguousarray(y, dtype=np.complex64)
        n = y.size
        expected = self.config.frame_payload_len(self.frame_idx)
        full = 1 << self.config.frame_len_log2
        last = self.frame_idx == nframes - 1
        if n != expected and not (last and n == full):
            raise ProtocolError("bad_array", f"frame {self.frame_idx} carries {expected} data symbols, got {n}")
        if not np.all(np.isfinite(y)):
            raise ProtocolError("bad_array", "y has non-finite values")
        nv = self.noise_var
        if np.ndim(nv) == 0:
            nv = float(np.float32(nv))
            if math.isnan(nv) or nv <= 0:
                raise ProtocolError("bad_field", f"noise_var={nv} must be > 0")
            if math.isinf(nv) and np.any(y != 0):
                raise ProtocolError("bad_array", "noise_var=inf (missing) needs y == 0")
        else:
            nv = np.ascontiguousarray(nv, dtype=np.float32)
            if nv.shape != y.shape:
                raise ProtocolError("bad_array", f"noise_var shape {nv.shape} != y shape {y.shape}")
            if np.any(np.isnan(nv)) or np.any(nv <= 0):
                raise ProtocolError("bad_array", "noise_var must be > 0 (inf marks a missing symbol)")
            if np.any(y[np.isinf(nv)] != 0):
                raise ProtocolError("bad_array", "symbols with noise_var=inf (missing) must have y == 0")
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "noise_var", nv)

    @property
    def key(self) -> tuple[int, int]:
        """``(tx_id, image_id)``: the image this frame belongs to."""
        return (self.tx_id, self.image_id)

    def noise_var_array(self) -> np.ndarray:
        """The noise variance per symbol, float32 ``(n,)``."""
        if isinstance(self.noise_var, np.ndarray):
            return self.noise_var
        return np.full(self.y.size, self.noise_var, dtype=np.float32)

    def frame_header(self):
        """The ``infercom.header.FrameHeader`` of this frame."""
        from infercom.header import FrameHeader
        return FrameHeader(tx_id=self.tx_id, image_id=self.image_id, attempt=self.attempt,
                           frame_idx=self.frame_idx,
                           **{f: getattr(self.config, f) for f in CONFIG_FIELDS})


def encode_soft_frame(header: Any, y: np.ndarray, noise_var: float | np.ndarray, snr_db: float,
                      stream_id: int, seq: int) -> bytes:
    """Encode one received frame from its ``FrameHeader`` (or an object with the same attributes)."""
    msg = SoftFrame(tx_id=header.tx_id, image_id=header.image_id, attempt=header.attempt,
                    frame_idx=header.frame_idx, config=ImageConfig.from_header(header), snr_db=snr_db,
                    noise_var=noise_var, y=y, stream_id=stream_id, seq=seq)
    return encode(msg)


@dataclass(frozen=True)
class Feedback:
    """The server's decision on one image attempt, server -> TX.

    ``decision``: ``ACK`` (done), ``NACK`` (resend as described) or ``FAIL`` (the server gives up; explicit
    failure). ``scores``: QoE metric name -> value. On NACK, ``mode`` says what to send as attempt
    ``next_attempt`` (= ``attempt + 1``): ``chase`` all frames again, ``selective`` only ``frames``,
    ``refine`` the image re-encoded with block size ``refine_bh x refine_bw``. ACK/FAIL carry ``mode="none"``.
    """

    tx_id: int
    image_id: int
    attempt: int
    decision: str
    reason: str = ""
    scores: Mapping[str, float] = field(default_factory=dict)
    mode: str = "none"
    frames: tuple[int, ...] = ()
    refine_bh: int = 0
    refine_bw: int = 0
    next_attempt: int = 0

    def __post_init__(self) -> None:
        for name in ("tx_id", "image_id", "attempt"):
            _check_int(name, getattr(self, name), *FIELD_RANGES[name])
        if self.decision not in DECISIONS:
            raise ProtocolError("bad_field", f"decision must be one of {DECISIONS}, got {self.decision!r}")
        if self.mode not in RESEND_MODES:
            raise ProtocolError("bad_field", f"mode must be one of {RESEND_MODES}, got {self.mode!r}")
        if not isinstance(self.reason, str) or len(self.reason) > 512:
            raise ProtocolError("bad_field", "reason must be a string of at most 512 characters")
        if not isinstance(self.scores, Mapping) or len(self.scores) > 32:
            raise ProtocolError("bad_field", "scores must be a mapping of at most 32 entries")
        scores = {}
        for k, v in self.scores.items():
            if not isinstance(k, str) or not 0 < len(k) <= 64:
                raise ProtocolError("bad_field", f"score name {k!r} must be a 1..64 character string")
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) \
                    or not math.isfinite(float(v)):
                raise ProtocolError("bad_field", f"score {k}={v!r} must be a finite number")
            scores[k] = float(v)
        object.__setattr__(self, "scores", scores)
        frames = tuple(_check_int("frames[i]", f, 0, MAX_FRAMES - 1) for f in self.frames)
        if len(frames) != len(set(frames)) or list(frames) != sorted(frames):
            raise ProtocolError("bad_field", "frames must be sorted and unique")
        object.__setattr__(self, "frames", frames)
        _check_int("next_attempt", self.next_attempt, 0, MAX_ATTEMPT)
        _check_int("refine_bh", self.refine_bh, 0, MAX_BLOCK)
        _check_int("refine_bw", self.refine_bw, 0, MAX_BLOCK)
        if self.decision == "NACK":
            if self.mode == "none":
                raise ProtocolError("bad_field", "a NACK must say what to resend (mode)")
            if self.next_attempt != self.attempt + 1:
                raise ProtocolError("bad_field",
                                    f"next_attempt={self.next_attempt} must be attempt+1={self.attempt + 1}")
        elif self.mode != "none" or self.frames or self.next_attempt or self.refine_bh or self.refine_bw:
            raise ProtocolError("bad_field", f"{self.decision} carries no resend request")
        if (self.mode == "selective") != bool(frames):
            raise ProtocolError("bad_field", "frames are given exactly for mode 'selective' (and not empty)")
        if self.mode == "refine":
            if not (self.refine_bh >= 1 and self.refine_bw >= 1):
                raise ProtocolError("bad_field", f"mode 'refine' needs refine_bh, refine_bw in 1..{MAX_BLOCK}")
        elif self.refine_bh or self.refine_bw:
            raise ProtocolError("bad_field", "refine_bh/refine_bw are only for mode 'refine'")


@dataclass(frozen=True)
class StatusRequest:
    """Ask the server for its status. ``what``: currently only ``"status"``."""

    what: str = "status"

    def __post_init__(self) -> None:
        if self.what != "status":
            raise ProtocolError("bad_field", f"unknown status request {self.what!r}")


@dataclass(frozen=True)
class StatusResponse:
    """The server's status: a JSON object (counters, queue depth, latency percentiles; see docs/server.md)."""

    body: Mapping[str, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.body, Mapping):
            raise ProtocolError("bad_field", "status body must be a JSON object")


def feedback_topic(tx_id: int) -> bytes:
    """The PUB/SUB topic (first ZeroMQ frame) of feedback for transmitter ``tx_id``: ``b"fb%03d"``.

    Fixed width, so subscribing to ``fb001`` does not also match ``fb0012``.
    """
    return b"fb%03d" % _check_int("tx_id", tx_id, 0, MAX_TX_ID)


def message_type(buf: bytes) -> str:
    """The type name of an encoded message (after checking the envelope)."""
    return _TYPE_NAMES[_envelope(buf)]


def _envelope(buf: bytes) -> int:
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise ProtocolError("bad_field", f"a message is bytes, got {type(buf).__name__}")
    if len(buf) == 0:
        raise ProtocolError("empty", "empty message")
    if len(buf) < _ENVELOPE.size:
        raise ProtocolError("truncated", f"{len(buf)} bytes is shorter than the {_ENVELOPE.size}-byte envelope")
    magic, version, mtype = _ENVELOPE.unpack_from(buf, 0)
    if magic != MAGIC:
        raise ProtocolError("bad_magic", f"magic {bytes(magic)!r} != {MAGIC!r}")
    if version != VERSION:
        raise ProtocolError("bad_version", f"protocol version {version}, this side speaks {VERSION}")
    if mtype not in _TYPE_NAMES:
        raise ProtocolError("unknown_type", f"message type {mtype}")
    return mtype


def _dump_json(obj: Any, limit: int) -> bytes:
    try:
        raw = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ProtocolError("bad_json", f"not JSON-serialisable: {exc}") from exc
    if len(raw) > limit:
        raise ProtocolError("oversized", f"JSON body of {len(raw)} bytes exceeds {limit}")
    return raw


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _load_json(raw: bytes) -> Any:
    try:
        return json.loads(bytes(raw).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("bad_json", f"invalid JSON body: {exc}") from exc


def encode(msg: SoftFrame | Feedback | StatusRequest | StatusResponse) -> bytes:
    """Serialise a message (already validated by its constructor) to one ZeroMQ frame."""
    if isinstance(msg, SoftFrame):
        c = msg.config
        per_symbol = isinstance(msg.noise_var, np.ndarray)
        head = _ENVELOPE.pack(MAGIC, VERSION, MSG_SOFT_FRAME) + _SOFT.pack(
            (_FLAG_NV_PER_SYMBOL if per_symbol else 0) | (_FLAG_NR if c.system == "nr" else 0), msg.tx_id, msg.image_id, msg.attempt, msg.frame_idx,
            c.bh, c.bw, c.planes, c.channels, PROFILES.index(c.profile), c.design_snr_db, c.key_id,
            c.height, c.width, c.frame_len_log2, msg.stream_id, msg.seq, msg.snr_db,
            0.0 if per_symbol else msg.noise_var, msg.y.size)
        parts = [head, msg.y.astype("<c8", copy=False).tobytes()]
        if per_symbol:
            parts.append(msg.noise_var.astype("<f4", copy=False).tobytes())
        return b"".join(parts)
    if isinstance(msg, Feedback):
        body = _dump_json({"reason": msg.reason, "scores": dict(msg.scores)}, MAX_JSON_BYTES)
        frames = np.asarray(msg.frames, dtype="<u2").tobytes()
        return b"".join([
            _ENVELOPE.pack(MAGIC, VERSION, MSG_FEEDBACK),
            _FEEDBACK.pack(msg.tx_id, msg.image_id, msg.attempt, DECISIONS.index(msg.decision),
                           RESEND_MODES.index(msg.mode), msg.next_attempt, msg.refine_bh, msg.refine_bw,
                           len(msg.frames), len(body)),
            frames, body])
    if isinstance(msg, StatusRequest):
        body = _dump_json({"what": msg.what}, MAX_STATUS_BYTES)
        return _ENVELOPE.pack(MAGIC, VERSION, MSG_STATUS_REQUEST) + _STATUS_LEN.pack(len(body)) + body
    if isinstance(msg, StatusResponse):
        body = _dump_json(dict(msg.body), MAX_STATUS_BYTES)
        return _ENVELOPE.pack(MAGIC, VERSION, MSG_STATUS) + _STATUS_LEN.pack(len(body)) + body
    raise TypeError(f"cannot encode {type(msg).__name__}")


def frame_digest(buf: bytes) -> bytes:
    """16-byte BLAKE2b digest of a soft_frame message without its ``stream_id`` and ``seq``: the same frame
    (header fields, measured SNR, symbols, noise variances) has the same digest whatever ids a sender puts on
    it, so a replay guard keyed on it does not depend on ids an attacker chooses."""
    h = hashlib.blake2b(digest_size=16)
    h.update(memoryview(buf)[:_SOFT_IDS.start])
    h.update(memoryview(buf)[_SOFT_IDS.stop:])
    return h.digest()


def decode(buf: bytes) -> SoftFrame | Feedback | StatusRequest | StatusResponse:
    """Parse and validate one message; raises :class:`ProtocolError` with a specific ``reason``."""
    mtype = _envelope(buf)
    n = len(buf)
    off = _ENVELOPE.size
    if mtype == MSG_SOFT_FRAME:
        if n > MAX_SOFT_FRAME_BYTES:
            raise ProtocolError("oversized", f"soft_frame of {n} bytes exceeds {MAX_SOFT_FRAME_BYTES}")
        if n < off + _SOFT.size:
            raise ProtocolError("truncated", f"soft_frame header needs {off + _SOFT.size} bytes, got {n}")
        (flags, tx_id, image_id, attempt, frame_idx, bh, bw, planes, channels, profile, dsnr, key_id,
         height, width, fll, stream_id, seq, snr_db, nv_scalar, n_sym) = _SOFT.unpack_from(buf, off)
        off += _SOFT.size
        if flags & ~_SOFT_FLAGS:
            raise ProtocolError("bad_field", f"unknown flags 0x{flags:02x}")
        if profile >= len(PROFILES):
            raise ProtocolError("bad_field", f"profile code {profile}")
        if n_sym > (1 << MAX_FRAME_LEN_LOG2):
            raise ProtocolError("oversized", f"n_sym={n_sym} exceeds {1 << MAX_FRAME_LEN_LOG2}")
        per_symbol = bool(flags & _FLAG_NV_PER_SYMBOL)
        need = off + n_sym * 8 + (n_sym * 4 if per_symbol else 0)
        if n < need:
            raise ProtocolError("truncated", f"soft_frame with {n_sym} symbols needs {need} bytes, got {n}")
        if n > need:
            raise ProtocolError("oversized", f"soft_frame has {n - need} bytes after its arrays")
        y = np.frombuffer(buf, dtype="<c8", count=n_sym, offset=off).astype(np.complex64)
        off += n_sym * 8
        nv = (np.frombuffer(buf, dtype="<f4", count=n_sym, offset=off).astype(np.float32) if per_symbol
              else nv_scalar)
        cfg = ImageConfig(bh=bh, bw=bw, planes=planes, channels=channels, profile=PROFILES[profile],
                          design_snr_db=dsnr, key_id=key_id, height=height, width=width, frame_len_log2=fll,
                          system="nr" if flags & _FLAG_NR else "infercom")
        return SoftFrame(tx_id=tx_id, image_id=image_id, attempt=attempt, frame_idx=frame_idx, config=cfg,
                         snr_db=snr_db, noise_var=nv, y=y, stream_id=stream_id, seq=seq)
    if mtype == MSG_FEEDBACK:
        if n > _MAX_FEEDBACK_BYTES:
            raise ProtocolError("oversized", f"feedback of {n} bytes exceeds {_MAX_FEEDBACK_BYTES}")
        if n < off + _FEEDBACK.size:
            raise ProtocolError("truncated", f"feedback header needs {off + _FEEDBACK.size} bytes, got {n}")
        (tx_id, image_id, attempt, decision, mode, next_attempt, rbh, rbw, n_frames,
         json_len) = _FEEDBACK.unpack_from(buf, off)
        off += _FEEDBACK.size
        if n_frames > MAX_FRAMES or json_len > MAX_JSON_BYTES:
            raise ProtocolError("oversized", f"feedback lists {n_frames} frames / {json_len} JSON bytes")
        need = off + 2 * n_frames + json_len
        if n < need:
            raise ProtocolError("truncated", f"feedback needs {need} bytes, got {n}")
        if n > need:
            raise ProtocolError("oversized", f"feedback has {n - need} bytes after its body")
        if decision >= len(DECISIONS) or mode >= len(RESEND_MODES):
            raise ProtocolError("bad_field", f"decision code {decision} / mode code {mode}")
        frames = tuple(int(f) for f in np.frombuffer(buf, dtype="<u2", count=n_frames, offset=off))
        off += 2 * n_frames
        body = _load_json(buf[off:off + json_len])
        if not isinstance(body, dict) or set(body) != {"reason", "scores"}:
            raise ProtocolError("bad_json", "feedback body must be {\"reason\": str, \"scores\": {}}")
        return Feedback(tx_id=tx_id, image_id=image_id, attempt=attempt, decision=DECISIONS[decision],
                        reason=body["reason"], scores=body["scores"], mode=RESEND_MODES[mode], frames=frames,
                        refine_bh=rbh, refine_bw=rbw, next_attempt=next_attempt)
    # status request / response: u32 length + JSON object
    if n > off + _STATUS_LEN.size + MAX_STATUS_BYTES:
        raise ProtocolError("oversized", f"status message of {n} bytes exceeds the bound")
    if n < off + _STATUS_LEN.size:
        raise ProtocolError("truncated", "status message has no length field")
    (blen,) = _STATUS_LEN.unpack_from(buf, off)
    off += _STATUS_LEN.size
    if blen > MAX_STATUS_BYTES:
        raise ProtocolError("oversized", f"status body of {blen} bytes exceeds {MAX_STATUS_BYTES}")
    if n != off + blen:
        raise ProtocolError("truncated" if n < off + blen else "oversized",
                            f"status body length {blen} does not match the message ({n - off} bytes)")
    body = _load_json(buf[off:])
    if not isinstance(body, dict):
        raise ProtocolError("bad_json", "status body must be a JSON object")
    if mtype == MSG_STATUS_REQUEST:
        if set(body) != {"what"}:
            raise ProtocolError("bad_json", "status request body must be {\"what\": \"status\"}")
        return StatusRequest(what=body["what"])
    return StatusResponse(body=body)
