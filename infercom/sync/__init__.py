# SPDX-License-Identifier: GPL-3.0-or-later
"""Streaming burst receiver: matched filter, CFO-robust preamble detection, timing/CFO/channel/noise
estimation, header decoding, pilot phase tracking and equalisation to soft symbols.

Input: complex64 samples at ``sps`` samples per symbol (default 2), *not* matched-filtered (the receiver applies
the unit-energy RRC matched filter itself; pass ``prefiltered=True`` when the stream was already filtered with
the same causal RRC filter).  The stages are separately callable, so GNU Radio blocks can wrap them one by one.

| submodule | holds |
|---|---|
| ``matched_filter`` | :class:`MatchedFilter`, streaming RRC matched filter (numba) |
| ``detector`` | :class:`BurstDetector` (two-stage preamble detector -> :class:`Candidate` s), its thresholds |
| ``detector_kernels`` | its numba kernels (segment correlations, stage 1, stage 2) |
| ``demod`` | :func:`demod_header`, :func:`demod_payload`, ``SNR_MAX_DB`` |
| ``window`` | :class:`BurstWindower` (history, header decoding, burst windows, margins), :class:`BurstDemodulator` |
| ``demod_kernels`` | their numba kernels (pilot tracking, equalisation, fine timing, gain / noise, refinement) |
| ``interpolator`` | fractional-timing symbol interpolation with CFO de-rotation (numba) |
| ``receiver`` | :class:`BurstReceiver`: the three stages chained over a stream, bounded memory |
| ``frames`` | :class:`Candidate`, :class:`HeaderResult`, :class:`BurstWindow`, :class:`ReceivedFrame`, burst lengths |
| ``templates`` | preamble geometry and templates shared by the above |
| ``reference`` | numpy references of the kernels (tests) |
| ``measure`` | :func:`benchmark`, :func:`measure_detection`, :func:`noise_statistics` (docs/phy.md numbers) |

Every name is re-exported here (``infercom.sync.X``), private ones included (tests use them).
"""

from .demod import demod_header, demod_payload
from .detector import BurstDetector, detector_thresholds, stage1_metric
from .frames import BurstWindow, Candidate, HeaderResult, ReceivedFrame, burst_len_samples, header_len_samples
from .matched_filter import MatchedFilter
from .receiver import BurstReceiver
from .reference import stage1_metric_ref
from .window import (PRE_SAMPLES, BurstDemodulator, BurstWindower, burst_window_len, busy_until, demod_window,
                     header_window_len)

# re-exported for tests, tools and the docs' commands (``infercom.sync.X`` as before the split into a package)
from .demod import (  # noqa: F401
    _NV_MIN_REL, SNR_MAX_DB, _fine_cfo_preamble, _header_layout, _payload_layout, _pilot_track, _pre_template,
    _seg_energy, timing_drift)
from .demod_kernels import (  # noqa: F401
    _equalise_kernel, _gain_noise_kernel, _pilot_timing_kernel, _pilot_track_kernel, _pre_energy_kernel,
    _refine_kernel)
from .detector import _T1_DEFAULT, _T2_DEFAULT, _stage1_noise_tail, stage1_noise_tail  # noqa: F401
from .detector_kernels import (  # noqa: F401
    S_CONST, S_SEG, _frank_corr_kernel, _segcorr_kernel, _stage1_kernel, _stage1_scan_kernel, _stage2_kernel)
from .interpolator import (  # noqa: F401
    _INTERP_HALF, _NTAB, _TAP_TABLE, _interp_taps, _interp_taps_exact, _symbols, _symbols_drift, _symbols_kernel,
    drift_chunk)
from .matched_filter import _fir_kernel  # noqa: F401
from .measure import benchmark, measure_detection, noise_statistics  # noqa: F401
from .reference import (  # noqa: F401
    _pilot_timing_ref, _pilot_track_ref, _refine_ref, _seg_energy_ref, _symbols_drift_ref, equalise_ref, stage2_ref,
    symbols_ref)
from .templates import _E, _PRE, _PRE_C, _PRE_C_I, _PRE_C_R, NP, L, S, _U  # noqa: F401

__all__ = ["Candidate", "ReceivedFrame", "HeaderResult", "MatchedFilter", "BurstDetector", "BurstDemodulator",
           "BurstReceiver", "BurstWindower", "BurstWindow", "demod_window", "PRE_SAMPLES", "header_window_len",
           "burst_window_len", "busy_until", "demod_header", "demod_payload", "burst_len_samples", "header_len_samples",
           "detector_thresholds", "stage1_metric", "stage1_metric_ref"]
