# SPDX-License-Identifier: GPL-3.0-or-later
"""What the receiver stages hand on: detector :class:`Candidate` s, :class:`HeaderResult` s of
:func:`~infercom.sync.demod.demod_header`, :class:`ReceivedFrame` s; and the burst lengths in samples at
``fmt.sps`` (:func:`burst_len_samples`, :func:`header_len_samples`).

Units: timings in (fractional) samples of the matched-filtered stream, CFO in cycles per sample unless a name
says per symbol, phases in rad, SNR as Es/N0 in dB, noise variances complex (both dimensions) per symbol.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..frame import FrameFormat
from ..header import FrameHeader
from .interpolator import _INTERP_HALF


@dataclass
class Candidate:
    """A detected preamble.  ``timing``: absolute (fractional) index, in the matched-filtered stream, of the
    peak of preamble symbol 0; ``cfo``: coarse CFO, cycles per sample; ``m1``/``m2``: detector metrics."""

    timing: float
    cfo: float
    m1: float
    m2: float


@dataclass
class ReceivedFrame:
    header: FrameHeader
    y: np.ndarray            # complex64 equalised payload data symbols (pilots removed)
    noise_var: np.ndarray    # float32 per symbol
    snr_db: float            # measured Es/N0 of this frame (from the 4032 known symbols)
    cfo: float               # cycles per sample
    h: complex               # channel estimate (complex gain on unit-power symbols)
    sample_index: int        # absolute index of the burst start (first TX sample) in the input stream
    timing: float = 0.0      # absolute matched-filter index of preamble symbol 0 (fractional)
    metric: float = 0.0      # detector metric M2


@dataclass
class HeaderResult:
    """Output of :func:`demod_header`: the header (or None) and the estimates needed for the payload."""

    header: FrameHeader | None
    cfo_sym: float           # total CFO estimate, cycles per symbol (refined when the header decoded)
    phase0: float            # phase at preamble symbol 0, rad (after the refined CFO)
    h_abs: float
    noise_var: float         # complex noise variance per symbol (before equalisation)
    snr_db: float
    timing: float            # refined timing, window-relative sample index of preamble symbol 0
    extra: dict = field(default_factory=dict)


@dataclass
class BurstWindow:
    """A burst's samples as :class:`~infercom.sync.window.BurstWindower` hands them on: the detector's
    ``candidate`` (absolute timing), the :class:`HeaderResult` (``header.header`` None when the header failed;
    ``header.timing`` relative to the window), ``start`` = absolute index of ``z[0]`` in the matched-filtered
    stream, complex64 ``z`` (a view into the windower's history, valid only inside the sink call: copy what must
    stay; ``zr`` / ``zi`` its real / imaginary parts, strided views) and the frame's ``n_symbols`` (0 for a
    failed header)."""

    candidate: Candidate
    header: HeaderResult
    start: int
    z: np.ndarray
    n_symbols: int

    @property
    def zr(self) -> np.ndarray:
        return self.z.real

    @property
    def zi(self) -> np.ndarray:
        return self.z.imag


def burst_len_samples(h: FrameHeader | int, fmt: FrameFormat | None = None) -> int:
    """Samples a whole burst occupies at ``fmt.sps`` (frame symbols + RRC tail)."""
    return (fmt or FrameFormat()).burst_len_samples(h)


def header_len_samples(fmt: FrameFormat | None = None) -> int:
    """Matched-filtered samples needed after the timing of symbol 0 to decode the header (plus interpolator
    margin)."""
    fmt = fmt or FrameFormat()
    return fmt.header_region_symbols() * fmt.sps + 2 * _INTERP_HALF
