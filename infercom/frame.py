# SPDX-License-Identifier: GPL-3.0-or-later
"""Frame format: preamble | header | payload, with sparse pilot blocks; segmentation and reassembly.

Symbol layout of one frame (all symbols at unit mean power; the payload keeps its per-plane power scaling)::

    | preamble 1024 | D_0 (256) | P_0 (16) | D_1 (256) | P_1 (16) | ... | D_last (<= 256) | P_last (16) |

``D`` is the *data* stream = the 2832 header symbols followed by the frame's payload symbols, cut into chunks of
``pilot_spacing = 256``; every chunk (also a short last one) is followed by its pilot block
(:func:`infercom.preamble.pilot_block`).  Data symbol ``j`` sits at frame position
``PREAMBLE_LEN + j + PILOT_LEN * (j // pilot_spacing)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import preamble as pre
from .header import CONFIG_FIELDS, HEADER_SYMBOLS, FrameHeader, encode_header
from .limits import MAX_SPS, MIN_SPS, check_field

__all__ = ["FrameFormat", "segment", "build_frame", "image_frames", "payload_frames", "Reassembler", "frame_layout"]


@dataclass(frozen=True)
class FrameFormat:
    """Frame format and the sample-level defaults shared by transmitter and receiver.

    frame_len_log2 : data (payload) symbols per frame = ``2**frame_len_log2`` (default 15: 32768 payload
        symbols; with preamble, header and pilots the frame is 38 864 symbols, 84.3 % payload).
    pilot_spacing : data symbols between pilot blocks (each block is ``PILOT_LEN = 16`` symbols: 5.9 %).
    sps, beta, span : samples per symbol, RRC roll-off and RRC span (symbols) of the sample-level waveform.
    """

    frame_len_log2: int = 15
    pilot_spacing: int = 256
    sps: int = 2
    beta: float = 0.35
    span: int = 8

    def __post_init__(self):
        check_field("frame_len_log2", self.frame_len_log2)      # the header's range (infercom.limits)
        if not isinstance(self.pilot_spacing, (int, np.integer)) or not 16 <= self.pilot_spacing <= 4096:
            raise ValueError(f"pilot_spacing must be in 16..4096, got {self.pilot_spacing!r}")
        if not isinstance(self.sps, (int, np.integer)) or not MIN_SPS <= self.sps <= MAX_SPS:
            raise ValueError(f"sps must be an integer in {MIN_SPS}..{MAX_SPS}, got {self.sps!r}")
        if not 0.0 < float(self.beta) <= 1.0:
            raise ValueError(f"beta must be in (0, 1], got {self.beta!r}")

    @property
    def frame_len(self) -> int:
        return 1 << self.frame_len_log2

    @property
    def pilot_len(self) -> int:
        return pre.PILOT_LEN

    @property
    def preamble_len(self) -> int:
        return pre.PREAMBLE_LEN

    def n_pilot_blocks(self, n_payload: int) -> int:
        return -(-(HEADER_SYMBOLS + int(n_payload)) // self.pilot_spacing)

    def frame_symbols(self, n_payload: int) -> int:
        """Symbols of a frame carrying ``n_payload`` payload symbols."""
        return pre.PREAMBLE_LEN + HEADER_SYMBOLS + int(n_payload) + pre.PILOT_LEN * self.n_pilot_blocks(n_payload)

    def header_region_symbols(self, extra_blocks: int = 2) -> int:
        """Symbols from the frame start up to the end of the pilot block ``extra_blocks`` blocks after the one
        that closes the header (what the receiver needs to decode the header with pilot phase tracking; the
        frame may end earlier when its payload is short)."""
        last = (HEADER_SYMBOLS - 1) // self.pilot_spacing + extra_blocks
        return pre.PREAMBLE_LEN + (last + 1) * (self.pilot_spacing + pre.PILOT_LEN)

    def data_positions(self, j) -> np.ndarray:
        """Frame positions of data symbols ``j`` (array of int)."""
        j = np.asarray(j, dtype=np.int64)
        return pre.PREAMBLE_LEN + j + pre.PILOT_LEN * (j // self.pilot_spacing)

    def pilot_positions(self, n_payload: int) -> np.ndarray:
        """Frame position of the first symbol of every pilot block, int64 ``(n_pilot_blocks,)``."""
        nd = HEADER_SYMBOLS + int(n_payload)
        nb = self.n_pilot_blocks(n_payload)
        i = np.arange(nb, dtype=np.int64)
        ends = np.minimum((i + 1) * self.pilot_spacing, nd)  # data symbols before block i
        return pre.PREAMBLE_LEN + ends + pre.PILOT_LEN * i

    def burst_len_samples(self, h_or_n_payload) -> int:
        """Samples of a frame's burst at ``sps`` including the pulse-shaping tail (``span*sps``)."""
        n = h_or_n_payload.payload_len() if isinstance(h_or_n_payload, FrameHeader) else int(h_or_n_payload)
        return self.frame_symbols(n) * self.sps + self.span * self.sps


def frame_layout(n_payload: int, fmt: FrameFormat) -> tuple[np.ndarray, np.ndarray]:
    """(data positions int64 ``(HEADER_SYMBOLS + n_payload,)``, pilot positions int64 ``(n_blocks*16,)``).

    The layout depends only on ``n_payload`` and the pilot spacing, so it is computed once and shared:
    the arrays are read-only."""
    return _layout(int(n_payload), int(fmt.pilot_spacing))


@lru_cache(maxsize=64)
def _layout(n_payload: int, pilot_spacing: int) -> tuple[np.ndarray, np.ndarray]:
    fmt = FrameFormat(pilot_spacing=pilot_spacing)
    nd = HEADER_SYMBOLS + n_payload
    dpos = fmt.data_positions(np.arange(nd))
    ppos = (fmt.pilot_positions(n_payload)[:, None] + np.arange(pre.PILOT_LEN)[None, :]).reshape(-1)
    dpos.flags.writeable = False
    ppos.flags.writeable = False
    return dpos, ppos


@lru_cache(maxsize=64)
def _frame_template(n_payload: int, pilot_spacing: int) -> np.ndarray:
    """A frame with its preamble and pilots in place (header and payload slots zero); read-only."""
    _, ppos = _layout(n_payload, pilot_spacing)
    t = np.zeros(FrameFormat(pilot_spacing=pilot_spacing).frame_symbols(n_payload), np.complex64)
    t[: pre.PREAMBLE_LEN] = pre.preamble()
    t[ppos] = pre.pilot_symbols(ppos.size // pre.PILOT_LEN)
    t.flags.writeable = False
    return t


def segment(payload, frame_len: int) -> list[np.ndarray]:
    """Cut an image's payload into consecutive chunks of ``frame_len`` symbols (the last may be shorter)."""
    p = np.asarray(payload)
    if p.ndim != 1:
        raise ValueError(f"payload must be 1-D, got shape {p.shape}")
    if not isinstance(frame_len, (int, np.integer)) or frame_len <= 0:
        raise ValueError(f"frame_len must be a positive integer, got {frame_len!r}")
    return [p[i:i + frame_len] for i in range(0, p.size, int(frame_len))]


def build_frame(h: FrameHeader, payload_chunk, fmt: FrameFormat | None = None) -> np.ndarray:
    """Frame symbols (complex64): preamble | header + payload with pilot blocks."""
    fmt = fmt or FrameFormat(frame_len_log2=h.frame_len_log2)
    if h.frame_len_log2 != fmt.frame_len_log2:
        raise ValueError(f"header frame_len_log2 {h.frame_len_log2} != format's {fmt.frame_len_log2}")
    c = np.asarray(payload_chunk)
    if c.ndim != 1 or c.size != h.payload_len():
        raise ValueError(f"frame {h.frame_idx} must carry {h.payload_len()} payload symbols, got shape {c.shape}")
    c = c.astype(np.complex64, copy=False)
    if not np.all(np.isfinite(c)):
        raise ValueError("payload contains NaN or inf")
    dpos, _ = frame_layout(c.size, fmt)
    out = _frame_template(c.size, fmt.pilot_spacing).copy()
    out[dpos[:HEADER_SYMBOLS]] = encode_header(h)
    out[dpos[HEADER_SYMBOLS:]] = c
    return out


def image_frames(img, cfg, tx_id: int, image_id: int, attempt: int = 0, fmt: FrameFormat | None = None,
                 frames=None, keyring=None) -> list[tuple[FrameHeader, np.ndarray]]:
    """Encode an image and build its frames: ``[(header, frame symbols), ...]`` for all frames
    (``frames=None``) or only the listed frame indices (in the order given)."""
    from .link import encode_image

    fmt = fmt or FrameFormat()
    payload, lay = encode_image(img, cfg, keyring=keyring)
    h0 = FrameHeader.for_image(cfg, lay.height, lay.width, lay.channels, tx_id, image_id, 0, attempt,
                               fmt.frame_len_log2)
    return payload_frames(h0, payload, fmt, frames)


def payload_frames(h0: FrameHeader, payload: np.ndarray, fmt: FrameFormat,
                   frames=None) -> list[tuple[FrameHeader, np.ndarray]]:
    """Split one transmission's ``payload`` symbols (``h0.n_symbols()`` of them) into frames with headers
    ``h0.replace(frame_idx=i)``: all (``frames=None``) or the listed indices, in the order given."""
    n = h0.frame_count()
    if h0.n_symbols() != payload.size:
        raise RuntimeError(f"header payload size {h0.n_symbols()} disagrees with the payload ({payload.size})")
    idx = range(n) if frames is None else list(frames)
    out = []
    for i in idx:
        if not isinstance(i, (int, np.integer)) or not 0 <= i < n:
            raise ValueError(f"frame index {i!r} out of range 0..{n - 1}")
        h = h0.replace(frame_idx=int(i))
        lo = int(i) * fmt.frame_len
        out.append((h, build_frame(h, payload[lo:lo + h.payload_len()], fmt)))
    return out


def _image_key(h: FrameHeader) -> tuple:
    return (h.tx_id, h.image_id) + tuple(getattr(h, f) for f in CONFIG_FIELDS)


class Reassembler:
    """Collects received frames of one image into its payload; missing frames stay ``y = 0``,
    ``noise_var = inf``.  Adding a frame index again (another attempt) combines it by MRC (Chase,
    :func:`infercom.chase.combine`)."""

    def __init__(self, h: FrameHeader | None = None):
        self._key = None if h is None else _image_key(h)
        self._h = h
        self._frames: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def header(self) -> FrameHeader | None:
        return self._h

    def add(self, h: FrameHeader, y, noise_var) -> None:
        if not isinstance(h, FrameHeader):
            raise ValueError(f"expected a FrameHeader, got {type(h).__name__}")
        if self._key is None:
            self._key, self._h = _image_key(h), h
        elif _image_key(h) != self._key:
            raise ValueError(f"frame of image (tx {h.tx_id}, image {h.image_id}) does not belong to this image "
                             f"(tx {self._h.tx_id}, image {self._h.image_id}) or its configuration differs")
        n = h.payload_len()
        yy = np.asarray(y)
        if yy.shape != (n,):
            raise ValueError(f"frame {h.frame_idx} needs {n} symbols, got shape {yy.shape}")
        nv = np.broadcast_to(np.asarray(noise_var, dtype=np.float32), (n,))
        yy = yy.astype(np.complex64)
        if not np.all(np.isfinite(yy)) or np.any(np.isnan(nv)) or np.any(nv <= 0):
            raise ValueError("y must be finite and noise_var > 0 (inf allowed for erased symbols)")
        if h.frame_idx in self._frames:
            from .chase import combine

            y0, nv0 = self._frames[h.frame_idx]
            self._frames[h.frame_idx] = combine([y0, yy], [nv0, nv])
        else:
            self._frames[h.frame_idx] = (yy, nv.astype(np.float32).copy())

    def payload(self) -> tuple[np.ndarray, np.ndarray]:
        """(y complex64 (n_symbols,), noise_var float32 (n_symbols,)) of the whole image."""
        if self._h is None:
            raise ValueError("no frame added yet: the image size is unknown")
        n = self._h.n_symbols()
        fl = self._h.frame_len()
        y = np.zeros(n, np.complex64)
        nv = np.full(n, np.inf, np.float32)
        for i, (fy, fnv) in self._frames.items():
            y[i * fl: i * fl + fy.size] = fy
            nv[i * fl: i * fl + fy.size] = fnv
        return y, nv

    def received(self) -> list[int]:
        """Indices of the frames added so far."""
        return sorted(self._frames)

    def missing(self) -> list[int]:
        if self._h is None:
            raise ValueError("no frame added yet: the frame count is unknown")
        return [i for i in range(self._h.frame_count()) if i not in self._frames]
