# SPDX-License-Identifier: GPL-3.0-or-later
"""SigMF recordings of the receiver's raw IQ (``infercom rx --record`` / ``--replay``), without GNU Radio.

A recording is a pair ``NAME.sigmf-data`` (the samples) + ``NAME.sigmf-meta`` (JSON metadata, SigMF 1.2,
https://sigmf.org).  This module holds the logic the app calls around GNU Radio's ``file_sink`` /
``file_source``: the file names of a recording, the global + capture metadata (:func:`build_meta`), one
annotation per received frame (:func:`frame_annotation`: ``core:sample_start`` = the burst's first sample,
``core:sample_count`` = its length in samples, the header fields and the measured SNR / CFO under the
``infercom:`` namespace, declared as an optional extension), the atomic write of the meta file
(:func:`write_meta`), and the checks a replay does (:func:`open_recording`: data file present, datatype
supported, size a whole number of samples, sample rate and samples/symbol consistent with the receiver).

Datatypes read: ``cf32_le`` (complex64, what ``--record`` writes) and ``ci16_le`` (interleaved int16 I/Q,
scaled by 1/32768 to complex64: :data:`CI16_SCALE`).  The ``sigmf`` package (validator) is imported lazily.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from . import __version__

META_EXT, DATA_EXT = ".sigmf-meta", ".sigmf-data"
#: SigMF specification version written in ``core:version``
SIGMF_VERSION = "1.2.0"
#: the namespace of gr-infercom's own fields (declared in ``core:extensions``)
NAMESPACE = "infercom"
EXTENSION = {"name": NAMESPACE, "version": __version__, "optional": True}
#: supported datatypes -> bytes per complex sample
DATATYPES = {"cf32_le": 8, "ci16_le": 4}
#: ci16_le full scale: int16 value / CI16_SCALE = float sample
CI16_SCALE = 32768.0
RECORDER = f"gr-infercom {__version__}"


class RecordingError(ValueError):
    """A recording that cannot be replayed (missing data file, bad metadata, unsupported datatype, wrong
    sample rate or samples/symbol); the message says which and why."""


def recording_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(meta path, data path) of a recording given its ``.sigmf-meta`` or ``.sigmf-data`` path or its base
    name (a path without either extension gets both appended)."""
    p = Path(path)
    s = str(p)
    for ext in (META_EXT, DATA_EXT):
        if s.endswith(ext):
            base = s[: -len(ext)]
            return Path(base + META_EXT), Path(base + DATA_EXT)
    if s.endswith(".sigmf"):
        raise RecordingError(f"{p}: SigMF archives (.sigmf) are not supported, extract the .sigmf-meta and "
                             ".sigmf-data files first")
    return Path(s + META_EXT), Path(s + DATA_EXT)


def utc_now() -> str:
    """The current UTC time as SigMF's ISO-8601 ``core:datetime`` (``2024-05-01T12:00:00.123456Z``)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_meta(*, sample_rate: float | None, sps: int, datatype: str = "cf32_le", frequency: float | None = None,
               hw: str | None = None, datetime: str | None = None, gains: dict | None = None,
               description: str | None = None, annotations: list[dict] | None = None) -> dict:
    """The SigMF metadata dict of a recording.

    sample_rate : samples/s (``core:sample_rate``); None leaves it out (unknown rate).
    sps : samples per symbol of the stream (``infercom:sps``), checked by a replay.
    frequency : centre frequency in Hz (capture ``core:frequency``); None (ZeroMQ IQ without
        ``--center-freq``) leaves it out, as SigMF allows.
    hw : ``core:hw`` text (radio, device args, antenna); gains : e.g. ``{"rx_gain_db": 30.0}``, written as
        ``infercom:<key>`` global fields.
    datetime : capture start (``core:datetime``, ISO-8601 UTC; default now).
    annotations : SigMF annotation dicts (:func:`frame_annotation`), sorted here by ``core:sample_start``.
    """
    if datatype not in DATATYPES:
        raise RecordingError(f"datatype {datatype!r} not supported (supported: {', '.join(DATATYPES)})")
    g = {"core:datatype": datatype, "core:version": SIGMF_VERSION, "core:recorder": RECORDER,
         "core:num_channels": 1, "core:extensions": [dict(EXTENSION)], f"{NAMESPACE}:sps": int(sps)}
    if sample_rate is not None:
        g["core:sample_rate"] = float(sample_rate)
    if hw:
        g["core:hw"] = str(hw)
    if description:
        g["core:description"] = str(description)
    for k, v in (gains or {}).items():
        g[f"{NAMESPACE}:{k}"] = float(v)
    cap = {"core:sample_start": 0, "core:datetime": datetime or utc_now()}
    if frequency is not None:
        cap["core:frequency"] = float(frequency)
    ann = sorted(annotations or [], key=lambda a: a["core:sample_start"])
    return {"global": g, "captures": [cap], "annotations": ann}


def _header_fields() -> tuple[str, ...]:
    from .header import FrameHeader

    return tuple(f.name for f in fields(FrameHeader))


def frame_annotation(rec: dict, sps: int) -> dict:
    """One received frame (the receiver's per-frame record: header fields, ``sample_index``, ``snr_db``,
    ``cfo`` in cycles/sample, ...) -> a SigMF annotation: ``core:sample_start`` = ``sample_index`` (the
    burst's first raw sample), ``core:sample_count`` = the burst length in samples at ``sps`` (frame symbols
    + RRC tail), ``core:label`` (``tx<id> img<id> f<idx> a<attempt>``) and ``infercom:`` fields: every header
    field present, ``snr_db`` (measured Es/N0, dB) and ``cfo`` (cycles/sample)."""
    from .frame import FrameFormat
    from .header import FrameHeader

    names = _header_fields()
    hdr = {k: rec[k] for k in names if k in rec}
    try:
        h = FrameHeader(**hdr)
        count = FrameFormat(sps=int(sps)).burst_len_samples(h)
    except (TypeError, ValueError):              # a header type without all fields: no length known
        count = None
    a = {"core:sample_start": max(0, int(rec.get("sample_index", 0))),
         "core:label": (f"tx{rec.get('tx_id', '?')} img{rec.get('image_id', '?')} f{rec.get('frame_idx', '?')} "
                        f"a{rec.get('attempt', '?')}"),
         "core:generator": RECORDER}
    if count is not None:
        a["core:sample_count"] = int(count)
    for k, v in hdr.items():
        a[f"{NAMESPACE}:{k}"] = v.item() if isinstance(v, np.generic) else v
    for k in ("snr_db", "cfo"):
        if k in rec and np.isfinite(float(rec[k])):
            a[f"{NAMESPACE}:{k}"] = float(rec[k])
    return a


def validate_meta(meta: dict) -> None:
    """Check ``meta`` against the SigMF schema (the ``sigmf`` package's validator); RecordingError if not."""
    import warnings

    from sigmf import validate as sigmf_validate
    from sigmf.error import SigMFError

    try:
        import jsonschema
        errs: tuple = (jsonschema.exceptions.ValidationError, SigMFError)
    except ImportError:                           # pragma: no cover - sigmf depends on jsonschema
        errs = (SigMFError,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            sigmf_validate.validate(meta)
        except errs as exc:
            raise RecordingError(f"invalid SigMF metadata: {getattr(exc, 'message', exc)}") from exc


def write_meta(path: str | os.PathLike, meta: dict) -> Path:
    """Validate ``meta`` and write it to the recording's ``.sigmf-meta`` atomically (a temporary file in the
    same folder, then ``os.replace``): a reader never sees half a file.  Returns the meta path."""
    meta_path, _ = recording_paths(path)
    validate_meta(meta)
    fd, tmp = tempfile.mkstemp(prefix=meta_path.name + ".", suffix=".tmp", dir=meta_path.parent or ".")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)                      # mkstemp's 0600 -> an ordinary data file
        os.replace(tmp, meta_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return meta_path


@dataclass(frozen=True)
class Recording:
    """A recording checked for replay.  ``n_samples``: complex samples in the data file; ``sps``: samples per
    symbol (the recording's ``infercom:sps`` or the receiver's); ``sample_rate`` (samples/s) and
    ``frequency`` (Hz) None when the metadata has none."""

    meta_path: Path
    data_path: Path
    datatype: str
    n_samples: int
    sps: int
    sample_rate: float | None
    frequency: float | None
    meta: dict


def open_recording(path: str | os.PathLike, sps: int | None = None, sample_rate: float | None = None) -> Recording:
    """Read and check a recording for replay.

    path : the ``.sigmf-meta`` or ``.sigmf-data`` path (or the base name).
    sps : the receiver's samples/symbol if fixed (``--sps`` given, or a hw config); None takes the
        recording's ``infercom:sps`` (2 when it has none, a recording from another tool).
    sample_rate : the receiver's sample rate (samples/s) if fixed; must equal the recording's.

    Raises RecordingError (clear message) for: no meta or data file, unreadable JSON, invalid SigMF, a
    datatype other than cf32_le / ci16_le, more than one channel, a data file that is not a whole number of
    samples, or a sample rate / samples-per-symbol mismatch.
    """
    meta_path, data_path = recording_paths(path)
    if not meta_path.is_file():
        raise RecordingError(f"{meta_path}: SigMF metadata file not found")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordingError(f"{meta_path}: not a readable SigMF metadata file ({exc})") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("global"), dict):
        raise RecordingError(f"{meta_path}: not SigMF metadata (no 'global' object)")
    meta.setdefault("captures", [])
    meta.setdefault("annotations", [])
    g = meta["global"]
    dtype = g.get("core:datatype")
    if dtype not in DATATYPES:
        raise RecordingError(f"{meta_path}: datatype {dtype!r} not supported for replay (supported: "
                             f"{', '.join(DATATYPES)})")
    try:
        validate_meta(meta)
    except RecordingError as exc:
        raise RecordingError(f"{meta_path}: {exc}") from exc
    if int(g.get("core:num_channels", 1)) != 1:
        raise RecordingError(f"{meta_path}: {g['core:num_channels']} channels, the receiver takes one")
    if not data_path.is_file():
        raise RecordingError(f"{data_path}: SigMF data file not found (next to {meta_path.name})")
    size = data_path.stat().st_size
    if size % DATATYPES[dtype]:
        raise RecordingError(f"{data_path}: {size} bytes is not a whole number of {dtype} samples "
                             f"({DATATYPES[dtype]} bytes each)")
    rec_sr = g.get("core:sample_rate")
    if sample_rate is not None and rec_sr is not None and not np.isclose(float(rec_sr), float(sample_rate),
                                                                          rtol=1e-9, atol=0.0):
        raise RecordingError(f"{meta_path}: recorded at {float(rec_sr):g} S/s, the receiver is set to "
                             f"{float(sample_rate):g} S/s (change --samp-rate / --hw, or omit it to take the "
                             "recording's)")
    rec_sps = g.get(f"{NAMESPACE}:sps")
    if rec_sps is not None and sps is not None and int(rec_sps) != int(sps):
        raise RecordingError(f"{meta_path}: recorded at {int(rec_sps)} samples/symbol, the receiver is set to "
                             f"{int(sps)} (change --sps / --hw, or omit --sps to take the recording's)")
    use_sps = int(sps if sps is not None else (rec_sps if rec_sps is not None else 2))
    if use_sps < 1:
        raise RecordingError(f"{meta_path}: samples/symbol must be >= 1, got {use_sps}")
    caps = meta["captures"]
    freq = caps[0].get("core:frequency") if caps else None
    return Recording(meta_path, data_path, dtype, size // DATATYPES[dtype], use_sps,
                     float(rec_sr) if rec_sr is not None else None, float(freq) if freq is not None else None, meta)


def read_samples(rec: Recording, start: int = 0, count: int = -1) -> np.ndarray:
    """Samples of a recording as complex64 (ci16_le scaled by 1/:data:`CI16_SCALE`); ``count=-1``: to the end."""
    n = rec.n_samples - start if count < 0 else count
    if rec.datatype == "cf32_le":
        return np.fromfile(rec.data_path, np.dtype("<c8"), n, offset=8 * start).astype(np.complex64)
    iq = np.fromfile(rec.data_path, np.dtype("<i2"), 2 * n, offset=4 * start).astype(np.float32) / CI16_SCALE
    return (iq[0::2] + 1j * iq[1::2]).astype(np.complex64)


def to_ci16(x: np.ndarray) -> np.ndarray:
    """complex samples -> interleaved int16 I/Q (``ci16_le``, x * 32768 rounded and clipped), int16 (2n,)."""
    x = np.asarray(x, np.complex64)
    iq = np.empty(2 * x.size, np.float32)
    iq[0::2], iq[1::2] = x.real, x.imag
    return np.clip(np.rint(iq * CI16_SCALE), -32768, 32767).astype("<i2")
