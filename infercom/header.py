# SPDX-License-Identifier: GPL-3.0-or-later
"""Frame header: fields, bit layout, CRC, channel code and QPSK symbols.

Bit layout (96 info bits, MSB first within each field, fields in this order)::

    version 2 (=1) | tx_id 8 | image_id 12 | attempt 4 | frame_idx 12 |
    bh-1 3 | bw-1 3 | planes-1 3 | channels-1 2 | profile 2 | design_snr_db+16 5 | key_id 4 |
    height-1 12 | width-1 12 | frame_len_log2-4 4 | system 1 | reserved 7 (=0)

``system`` says which link sent the frame: 0 = InferCom (the fields mean what their names say), 1 = the 5G-NR
baseline (``infercom.nr.frames``: the same bits carry its transport-block parameters, and the payload is
``frame_count`` whole frames of LDPC-coded QPSK).

then CRC-16-CCITT (16 bits, :mod:`infercom.crc`) -> 112 bits -> K=7 rate-1/2 convolutional code with zero tail
(:mod:`infercom.fec`) -> 236 coded bits -> repeated ``HEADER_REPS`` times -> XOR with a PRBS-15 scrambler
(breaks the periodicity of the repetitions) -> Gray QPSK (two coded bits per symbol, unit power), i.e.
``118 * HEADER_REPS`` symbols.  The receiver adds the LLRs of the repetitions, runs one soft Viterbi pass, checks
the CRC and then every field (version, reserved bits, channels in {1, 3}, known profile, frame_len_log2 in
4..16, frame_idx < frame_count): a header that fails any check is rejected (``None``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numba
import numpy as np

from . import crc, fec
from .limits import FIELD_RANGES, MAX_FRAME_LEN_LOG2, MIN_FRAME_LEN_LOG2, PROFILES, check_channels, check_field
from .link import n_payload_symbols

__all__ = ["FrameHeader", "encode_header", "decode_header", "decode_header_codeword", "codeword_symbols",
           "header_llr", "HEADER_INFO_BITS",
           "HEADER_REPS", "HEADER_CODED_BITS", "HEADER_SYMBOLS", "HEADER_VERSION", "header_bits",
           "parse_header_bits", "PROFILES", "SYSTEMS", "ImageFields", "CONFIG_FIELDS", "ID_FIELDS", "check_config",
           "payload_symbols", "frame_count", "frame_payload_len", "MIN_FRAME_LEN_LOG2", "MAX_FRAME_LEN_LOG2"]

HEADER_VERSION = 1
#: the links a frame can come from (header field ``system``)
SYSTEMS = ("infercom", "nr")
#: (name, width in bits, offset added when packing)
_FIELDS = (
    ("version", 2, 0),
    ("tx_id", 8, 0),
    ("image_id", 12, 0),
    ("attempt", 4, 0),
    ("frame_idx", 12, 0),
    ("bh", 3, -1),
    ("bw", 3, -1),
    ("planes", 3, -1),
    ("channels", 2, -1),
    ("profile", 2, 0),
    ("design_snr_db", 5, 16),
    ("key_id", 4, 0),
    ("height", 12, -1),
    ("width", 12, -1),
    ("frame_len_log2", 4, -4),
    ("system", 1, 0),
    ("reserved", 7, 0),
)
HEADER_INFO_BITS = sum(w for _, w, _ in _FIELDS)  # 96
assert HEADER_INFO_BITS == 96
_CW_INFO = HEADER_INFO_BITS + crc.CRC_BITS  # 112
HEADER_CODED_BITS = fec.coded_len(_CW_INFO)  # 236
#: repetitions of the coded header; chosen by measurement so that the header decodes at Es/N0 = -10 dB in
#: >= 99 % of trials with margin (see docs/phy.md)
HEADER_REPS = 24
HEADER_SYMBOLS = HEADER_REPS * HEADER_CODED_BITS // 2


def _check_field_bits() -> None:
    """The field ranges are ``infercom.limits.FIELD_RANGES``; each must fit its bits (value + offset in
    ``0 .. 2**width - 1``), or headers would not round-trip."""
    for name, width, off in _FIELDS:
        if name in FIELD_RANGES:
            lo, hi = FIELD_RANGES[name]
            if not (0 <= lo + off and hi + off < 1 << width):
                raise RuntimeError(f"header field {name}: range {lo}..{hi} does not fit {width} bits")


_check_field_bits()


def check_config(c, what: str = "header field") -> None:
    """ValueError unless the image-configuration fields (:data:`CONFIG_FIELDS`) of ``c`` (a
    :class:`FrameHeader`, an ``infercom.protocol.ImageConfig`` or any object with those attributes) are valid:
    integers within ``infercom.limits.FIELD_RANGES``, channels 1 or 3, a known profile and system, and for
    an NR frame the fields that system fixes (``infercom.nr.frames.validate``). ``what`` starts the message."""
    for name in CONFIG_FIELDS:
        if name in FIELD_RANGES:
            check_field(name, getattr(c, name), what)
    check_channels(c.channels, what)
    if c.profile not in PROFILES:
        raise ValueError(f"{what} profile must be one of {PROFILES}, got {c.profile!r}")
    if c.system not in SYSTEMS:
        raise ValueError(f"{what} system must be one of {SYSTEMS}, got {c.system!r}")
    if c.system == "nr":
        from .nr.frames import validate
        validate(c)


def payload_symbols(c) -> int:
    """Payload symbols of the whole image described by the (valid) configuration fields of ``c`` (a
    :class:`FrameHeader` or ``infercom.protocol.ImageConfig``): :func:`infercom.link.n_payload_symbols` for an
    InferCom frame, ``infercom.nr.frames.n_symbols_of`` for an NR one."""
    if c.system == "nr":
        from .nr.frames import n_symbols_of
        return n_symbols_of(c)
    return n_payload_symbols(c.height, c.width, c.channels, c.bh, c.bw, c.planes)


def frame_count(n_symbols: int, frame_len_log2: int) -> int:
    """Frames needed for ``n_symbols`` payload symbols at ``2**frame_len_log2`` data symbols per frame."""
    return -(-int(n_symbols) // (1 << frame_len_log2))


def frame_payload_len(n_symbols: int, frame_len_log2: int, frame_idx: int) -> int:
    """Data symbols carried by frame ``frame_idx`` (the last frame may be shorter; 0 beyond the last)."""
    flen = 1 << frame_len_log2
    return max(0, min(flen, int(n_symbols) - frame_idx * flen))


def _prbs15(n: int) -> np.ndarray:
    """PRBS-15 (x^15 + x^14 + 1), register seeded with all ones; n bits (uint8)."""
    reg = 0x7FFF
    out = np.empty(n, dtype=np.uint8)
    for i in range(n):
        b = ((reg >> 14) ^ (reg >> 13)) & 1
        reg = ((reg << 1) | b) & 0x7FFF
        out[i] = b
    return out


_FIELD_OF_BIT = np.concatenate([np.full(w, i) for i, (_, w, _) in enumerate(_FIELDS)])
_SHIFT_OF_BIT = np.concatenate([np.arange(w - 1, -1, -1) for _, w, _ in _FIELDS])
_WEIGHTS = np.zeros((len(_FIELDS), HEADER_INFO_BITS), np.int64)  # bits -> field values
_WEIGHTS[_FIELD_OF_BIT, np.arange(HEADER_INFO_BITS)] = 1 << _SHIFT_OF_BIT
_OFFSETS = np.array([off for _, _, off in _FIELDS], np.int64)
_SCRAMBLE = _prbs15(HEADER_REPS * HEADER_CODED_BITS)
_SCRAMBLE_SIGN = (1.0 - 2.0 * _SCRAMBLE).astype(np.float32)


@dataclass(frozen=True)
class _FrameIds:
    tx_id: int
    image_id: int
    attempt: int
    frame_idx: int


@dataclass(frozen=True)
class ImageFields:
    """The image-configuration fields a frame carries and what follows from them (sizes, link config): the
    one definition shared by :class:`FrameHeader` and ``infercom.protocol.ImageConfig`` (which validate them
    with :func:`check_config`). ``frame_len_log2``: data symbols per frame = ``2**frame_len_log2``."""

    bh: int
    bw: int
    planes: int
    channels: int
    profile: str
    design_snr_db: int
    key_id: int
    height: int
    width: int
    frame_len_log2: int = 15
    system: str = "infercom"

    def link_config(self):
        """The ``infercom.link.LinkConfig`` of this image (InferCom frames only)."""
        from .link import LinkConfig

        self._infercom_only("link_config")
        return LinkConfig(bh=self.bh, bw=self.bw, planes=self.planes, profile=self.profile,
                          design_snr_db=int(self.design_snr_db), key_id=self.key_id)

    def layout(self):
        """The ``infercom.link.ImageLayout`` of this image (InferCom frames only)."""
        from .link import layout

        self._infercom_only("layout")
        return layout(self.height, self.width, self.channels, self.link_config())

    def _infercom_only(self, what: str) -> None:
        if self.system != "infercom":
            raise ValueError(f"a {self.system} frame has no InferCom {what} (see infercom.nr.frames)")

    def n_symbols(self) -> int:
        """Payload symbols of the whole image (:func:`payload_symbols`; no LinkConfig is built)."""
        return payload_symbols(self)

    def frame_len(self) -> int:
        return 1 << self.frame_len_log2

    def frame_count(self) -> int:
        """Frames of the image: ``ceil(n_symbols / 2**frame_len_log2)``."""
        return frame_count(self.n_symbols(), self.frame_len_log2)

    def frame_payload_len(self, frame_idx: int) -> int:
        """Data symbols carried by frame ``frame_idx`` (the last frame of an image may be shorter)."""
        return frame_payload_len(self.n_symbols(), self.frame_len_log2, frame_idx)


#: the image-configuration fields a frame carries (FrameHeader / protocol.ImageConfig / PDU metadata)
CONFIG_FIELDS = tuple(f.name for f in fields(ImageFields))
#: the per-frame ids, the rest of a header
ID_FIELDS = tuple(f.name for f in fields(_FrameIds))


@dataclass(frozen=True)
class FrameHeader(ImageFields, _FrameIds):
    """Everything a receiver needs to place a frame's payload: ids (``tx_id``, ``image_id``, ``attempt``,
    ``frame_idx``), then the link configuration and image size (:class:`ImageFields`)."""

    def __post_init__(self):
        for name in ID_FIELDS:
            check_field(name, getattr(self, name), "header field")
        check_config(self, "header field")
        n = self.frame_count()
        if self.frame_idx >= n:
            raise ValueError(f"frame_idx {self.frame_idx} out of range: the image has {n} frames")

    @classmethod
    def for_image(cls, cfg, height: int, width: int, channels: int, tx_id: int, image_id: int,
                  frame_idx: int = 0, attempt: int = 0, frame_len_log2: int = 15) -> "FrameHeader":
        """Header of frame ``frame_idx`` of an image sent with :class:`infercom.link.LinkConfig` ``cfg``."""
        return cls(tx_id=tx_id, image_id=image_id, attempt=attempt, frame_idx=frame_idx, bh=cfg.bh, bw=cfg.bw,
                   planes=cfg.planes, channels=channels, profile=cfg.profile, design_snr_db=cfg.design_snr_db,
                   key_id=cfg.key_id, height=height, width=width, frame_len_log2=frame_len_log2)

    def payload_len(self) -> int:
        """Data symbols carried by this frame (the last frame of an image may be shorter)."""
        return self.frame_payload_len(self.frame_idx)

    def replace(self, **kw) -> "FrameHeader":
        from dataclasses import replace

        return replace(self, **kw)


def header_bits(h: FrameHeader) -> np.ndarray:
    """The 96 info bits of ``h`` (uint8, MSB first per field)."""
    if not isinstance(h, FrameHeader):
        raise ValueError(f"expected a FrameHeader, got {type(h).__name__}")
    vals = {f: getattr(h, f) for f, _, _ in _FIELDS if f not in ("version", "reserved", "profile", "system")}
    vals["version"] = HEADER_VERSION
    vals["reserved"] = 0
    vals["profile"] = PROFILES.index(h.profile)
    vals["system"] = SYSTEMS.index(h.system)
    v = np.array([int(vals[name]) for name, _, _ in _FIELDS], np.int64) + _OFFSETS
    return ((v[_FIELD_OF_BIT] >> _SHIFT_OF_BIT) & 1).astype(np.uint8)


def parse_header_bits(bits) -> FrameHeader | None:
    """Inverse of :func:`header_bits`; ``None`` when any field is out of range or a fixed field is wrong."""
    b = np.asarray(bits, dtype=np.int64)
    if b.shape != (HEADER_INFO_BITS,):
        raise ValueError(f"expected {HEADER_INFO_BITS} header bits, got shape {b.shape}")
    v = _WEIGHTS @ b - _OFFSETS
    vals = {name: int(x) for (name, _, _), x in zip(_FIELDS, v)}
    if vals.pop("version") != HEADER_VERSION or vals.pop("reserved") != 0:
        return None
    if vals["profile"] >= len(PROFILES):
        return None
    vals["profile"] = PROFILES[vals["profile"]]
    vals["system"] = SYSTEMS[vals["system"]]
    try:
        return FrameHeader(**vals)
    except ValueError:
        return None


def encode_header(h: FrameHeader) -> np.ndarray:
    """Header symbols: complex64 ``(HEADER_SYMBOLS,)``, Gray QPSK with unit power."""
    return codeword_symbols(crc.append_crc(header_bits(h)))


def codeword_symbols(cw_bits) -> np.ndarray:
    """Header symbols of a 112-bit codeword (96 info bits + CRC): code, repeat, scramble, map (numba)."""
    cw = fec.encode(cw_bits)
    out = np.empty(HEADER_SYMBOLS, np.complex64)
    _map_kernel(cw, _SCRAMBLE, out)
    return out


def codeword_symbols_ref(cw_bits) -> np.ndarray:
    """Numpy reference of :func:`codeword_symbols`."""
    cw = fec.encode(cw_bits)
    c = np.tile(cw, HEADER_REPS) ^ _SCRAMBLE
    s = (1.0 - 2.0 * c.astype(np.float32)) / np.float32(np.sqrt(2.0))
    return (s[0::2] + 1j * s[1::2]).astype(np.complex64)


@numba.njit(cache=True, nogil=True)
def _map_kernel(cw, scr, out):
    n = cw.size
    a = np.float32(1.0 / np.sqrt(2.0))
    for i in range(out.size):
        b0 = cw[(2 * i) % n] ^ scr[2 * i]
        b1 = cw[(2 * i + 1) % n] ^ scr[2 * i + 1]
        out[i] = complex(a * (1 - 2 * np.int32(b0)), a * (1 - 2 * np.int32(b1)))


@numba.njit(cache=True, nogil=True)
def _llr_kernel(y, scale, sign, n_coded, out):
    """out[c] = sum over repetitions of the descrambled LLRs of coded bit c; scale per symbol (0 = erased)."""
    for c in range(n_coded):
        out[c] = 0.0
    for i in range(y.size):
        sc = scale[i] if scale.size > 1 else scale[0]
        j = 2 * i
        out[j % n_coded] += y[i].real * sc * sign[j]
        out[(j + 1) % n_coded] += y[i].imag * sc * sign[j + 1]


def header_llr(y, noise_var) -> np.ndarray:
    """Combined (over repetitions, descrambled) LLRs of the 236 coded header bits, float32 (numba)."""
    yy, scale = _check_header_input(y, noise_var)
    out = np.empty(HEADER_CODED_BITS, np.float32)
    _llr_kernel(yy, scale, _SCRAMBLE_SIGN, HEADER_CODED_BITS, out)
    return out


def _check_header_input(y, noise_var):
    yy = np.asarray(y)
    if yy.shape != (HEADER_SYMBOLS,):
        raise ValueError(f"expected {HEADER_SYMBOLS} header symbols, got shape {yy.shape}")
    yy = yy.astype(np.complex64, copy=False)
    nv = np.asarray(noise_var, dtype=np.float32)
    if nv.ndim > 1 or (nv.ndim == 1 and nv.size != HEADER_SYMBOLS):
        raise ValueError("noise_var must be a scalar or one value per header symbol")
    if not (np.all(np.isfinite(yy)) and np.all(nv > 0)) or np.any(np.isnan(nv)):
        raise ValueError("header symbols must be finite and noise_var > 0")
    scale = np.atleast_1d(np.float32(2.0 * np.sqrt(2.0)) / nv).astype(np.float32)
    scale[~np.isfinite(scale)] = 0.0  # noise_var = inf: no information
    return np.ascontiguousarray(yy), scale


def header_llr_ref(y, noise_var) -> np.ndarray:
    """Numpy reference of :func:`header_llr`."""
    yy, scale = _check_header_input(y, noise_var)
    llr = np.empty(2 * HEADER_SYMBOLS, dtype=np.float32)
    llr[0::2] = yy.real * scale
    llr[1::2] = yy.imag * scale
    llr *= _SCRAMBLE_SIGN
    return fec.combine_repetitions(llr, HEADER_CODED_BITS)


def decode_header(y, noise_var) -> FrameHeader | None:
    """Decode equalised header symbols ``y`` (complex, ``(HEADER_SYMBOLS,)``) with complex noise variance
    ``noise_var`` (scalar or per symbol).  Returns the header, or ``None`` when the CRC or a field check fails."""
    return decode_header_codeword(y, noise_var)[0]


def decode_header_codeword(y, noise_var) -> tuple[FrameHeader | None, np.ndarray]:
    """As :func:`decode_header`, also returning the decoded 112-bit codeword (for re-encoding with
    :func:`codeword_symbols`)."""
    llr = header_llr(y, noise_var)
    bits = fec.viterbi(llr, _CW_INFO)
    if not crc.check_crc(bits):
        return None, bits
    return parse_header_bits(bits[:HEADER_INFO_BITS]), bits


def measure_decoding(snr_db: float, trials: int = 1000, seed: int = 5) -> dict:
    """Header decoding rate over AWGN with perfect sync at Es/N0 = ``snr_db`` (the docs/phy.md curve):
    ``{"snr_db", "trials", "decoded", "wrong"}``."""
    rng = np.random.default_rng(seed)
    h = FrameHeader(tx_id=3, image_id=100, attempt=1, frame_idx=2, bh=3, bw=3, planes=8, channels=3,
                    profile="importance", design_snr_db=-4, key_id=0, height=512, width=768, frame_len_log2=15)
    x = encode_header(h)
    n0 = 10 ** (-snr_db / 10)
    ok = wrong = 0
    for _ in range(int(trials)):
        y = x + np.sqrt(n0 / 2) * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size))
        d = decode_header(y.astype(np.complex64), n0)
        ok += d == h
        wrong += d is not None and d != h
    return {"snr_db": snr_db, "trials": int(trials), "decoded": ok / trials, "wrong": wrong}


def field_pass_rate(n: int = 200_000, seed: int = 9) -> float:
    """Fraction of uniformly random 96-bit words that pass every field check (what a noise header that
    slipped through the CRC must also pass)."""
    rng = np.random.default_rng(seed)
    return sum(parse_header_bits(rng.integers(0, 2, HEADER_INFO_BITS)) is not None for _ in range(int(n))) / n
