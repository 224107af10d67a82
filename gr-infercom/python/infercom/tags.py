# SPDX-License-Identifier: GPL-3.0-or-later
"""Tag keys and PDU metadata conventions shared by the gr-infercom blocks (see docs/gnuradio.md).

* Bursts in tagged streams (PHY only): ``tx_sob`` on the first and ``tx_eob`` on the last item of a burst
  (UHD's burst tags), a ``packet_len`` length tag on the first item, and ``infercom_frame`` (a dict with
  ``tx_id``, ``image_id``, ``attempt``, ``frame_idx``) so channel helpers can tell frames and images apart.
* PDUs (``pmt.cons(meta_dict, vector)``) everywhere at packet level; header fields travel as the
  :class:`infercom.header.FrameHeader` field names in the metadata dict.
"""

from __future__ import annotations

from dataclasses import asdict, fields

import numpy as np
import pmt

from . import pmtvec

SOB_TAG = "tx_sob"
EOB_TAG = "tx_eob"
LEN_TAG = "packet_len"
FRAME_TAG = "infercom_frame"
FRAME_KEY_FIELDS = ("tx_id", "image_id", "attempt", "frame_idx")

#: message port names used by several blocks
PORT_IN = "in"
PORT_OUT = "out"
PORT_FEEDBACK = "feedback"


def frame_key_from_pmt(value) -> dict | None:
    """The ``infercom_frame`` tag value as a dict of ints, or None when it is not a well-formed dict."""
    try:
        d = pmt.to_python(value)
    except Exception:  # noqa: BLE001 - any malformed PMT is just "no key"
        return None
    if not isinstance(d, dict):
        return None
    try:
        return {k: int(d[k]) for k in FRAME_KEY_FIELDS if k in d}
    except (TypeError, ValueError):
        return None


def frame_key_pmt(meta: dict):
    """The ``infercom_frame`` tag value (a PMT dict) for a header-field dict."""
    return pmt.to_pmt({k: int(meta[k]) for k in FRAME_KEY_FIELDS if k in meta})


_HEADER_FIELDS: dict[type, tuple[str, ...]] = {}


def header_to_meta(header) -> dict:
    """FrameHeader -> plain dict of its fields (JSON/PMT friendly)."""
    # flat dataclass of scalars: read the fields directly (dataclasses.asdict deep-copies recursively, ~60 us)
    names = _HEADER_FIELDS.get(type(header))
    if names is None:
        names = _HEADER_FIELDS[type(header)] = tuple(f.name for f in fields(header))
    out = {}
    for k in names:
        v = getattr(header, k)
        out[k] = v if isinstance(v, str) else int(v)
    return out


#: FrameHeader fields PDU metadata may omit, with the value they then take: ``system`` did not exist in the
#: metadata of flowgraphs and recordings made before the NR baseline
OPTIONAL_META = {"system": "infercom"}


def meta_to_header(meta: dict):
    """Plain dict -> FrameHeader; raises ValueError when a field is missing or has the wrong type."""
    from infercom.header import FrameHeader

    kwargs = {}
    for f in fields(FrameHeader):
        if f.name not in meta:
            if f.name in OPTIONAL_META:
                continue
            raise ValueError(f"PDU metadata lacks header field {f.name!r}")
        v = meta[f.name]
        kwargs[f.name] = str(v) if f.name in ("profile", "system") else int(v)
    return FrameHeader(**kwargs)


def make_pdu(meta: dict, vector: np.ndarray):
    """``pmt.cons(meta_dict, vector)`` with a complex64 / float32 / uint8 numpy vector."""
    return pmt.cons(to_pmt_dict(meta), pmtvec.to_pmt(np.asarray(vector)))


_KEYS: dict[str, object] = {}   # interned PMT symbols of metadata keys (a handful of distinct names)


def _key(k) -> object:
    sym = _KEYS.get(k)
    if sym is None:
        sym = pmt.intern(str(k))
        if len(_KEYS) < 4096:
            _KEYS[k] = sym
    return sym


def to_pmt_dict(meta: dict):
    """A python dict -> PMT dict; numpy arrays become uniform vectors, numpy scalars plain numbers."""
    d = pmt.make_dict()
    for k, v in meta.items():
        t = type(v)
        # fast paths for the plain scalars that make up most metadata (same PMT types as pmt.to_pmt gives)
        if t is int:
            pv = pmt.from_long(v)
        elif t is float:
            pv = pmt.from_double(v)
        elif isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype in (np.complex64, np.float32, np.uint8):
            pv = pmtvec.to_pmt(v)
        elif isinstance(v, np.ndarray):
            pv = pmt.to_pmt(v.tolist())
        elif isinstance(v, np.generic):
            pv = pmt.to_pmt(v.item())
        else:
            pv = pmt.to_pmt(v)
        d = pmt.dict_add(d, _key(k), pv)
    return d


def meta_from_pmt(car) -> dict:
    """PMT dict -> python dict (uniform vectors become numpy arrays); ValueError when it is not a dict."""
    if pmt.is_null(car):
        return {}
    if not pmt.is_dict(car):
        raise ValueError("PDU metadata is not a dict")
    out = {}
    items = pmt.dict_items(car)
    while pmt.is_pair(items):   # walk the list once (pmt.nth would make it quadratic)
        kv = pmt.car(items)
        items = pmt.cdr(items)
        k = pmt.symbol_to_string(pmt.car(kv)) if pmt.is_symbol(pmt.car(kv)) else str(pmt.to_python(pmt.car(kv)))
        out[k] = value_from_pmt(pmt.cdr(kv))
    return out


def value_from_pmt(v):
    """One PMT metadata value -> python: int, float, numpy arrays for c32/f32/u8 vectors, else
    ``pmt.to_python`` (whose first checks, null, bool and symbol, are false for integers and reals)."""
    if pmt.is_integer(v):
        return pmt.to_long(v)
    if pmt.is_real(v):
        return pmt.to_double(v)
    if pmt.is_c32vector(v):
        return pmtvec.from_pmt(v, np.complex64)
    if pmt.is_f32vector(v):
        return pmtvec.from_pmt(v, np.float32)
    if pmt.is_u8vector(v):
        return pmtvec.from_pmt(v, np.uint8)
    return pmt.to_python(v)


def parse_pdu(msg, dtype) -> tuple[dict, np.ndarray]:
    """Split a PDU into (meta dict, numpy vector of ``dtype``); raises ValueError on anything malformed."""
    if not pmt.is_pair(msg):
        raise ValueError("not a PDU (expected a pair of metadata dict and vector)")
    meta = meta_from_pmt(pmt.car(msg))
    try:
        vec = pmtvec.from_pmt(pmt.cdr(msg), dtype)
    except ValueError as exc:
        raise ValueError(f"PDU vector: {exc}") from None
    return meta, vec


def feedback_to_pmt(fb):
    """A ``protocol.Feedback`` -> PMT dict (the message the ``feedback`` ports carry)."""
    d = asdict(fb)
    d["frames"] = [int(f) for f in d["frames"]]
    d["scores"] = {str(k): float(v) for k, v in d["scores"].items()}
    return pmt.to_pmt(d)


def feedback_from_pmt(msg):
    """PMT dict -> validated ``protocol.Feedback``; ValueError (``ProtocolError``) when malformed."""
    from infercom.protocol import Feedback

    if not pmt.is_dict(msg):
        raise ValueError("feedback message is not a PMT dict")
    d = pmt.to_python(msg)
    if not isinstance(d, dict):
        raise ValueError("feedback message is not a dict")
    try:
        return Feedback(tx_id=int(d["tx_id"]), image_id=int(d["image_id"]), attempt=int(d["attempt"]),
                        decision=str(d["decision"]), reason=str(d.get("reason", "")),
                        scores=dict(d.get("scores") or {}), mode=str(d.get("mode", "none")),
                        frames=tuple(int(f) for f in (d.get("frames") or ())),
                        refine_bh=int(d.get("refine_bh", 0)), refine_bw=int(d.get("refine_bw", 0)),
                        next_attempt=int(d.get("next_attempt", 0)))
    except KeyError as exc:
        raise ValueError(f"feedback message lacks field {exc}") from None
    except TypeError as exc:
        raise ValueError(f"feedback message has a malformed field: {exc}") from None
