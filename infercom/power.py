# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-bit-plane power profiles for uncoded Gray QPSK: ``equal`` and ``importance``.

A bit of plane ``k`` (k = 0 is the LSB) costs ``4**k`` in squared pixel error when it flips, and with Gray
QPSK at per-symbol Es/N0 ``g`` (linear) and amplitude ``sqrt(p_k)`` it flips with probability
``Q(sqrt(p_k * g))``. The *importance* profile minimises the expected hard-decision pixel MSE

    D(p) = sum_k 4**k * Q(sqrt(p_k * g))     subject to  mean_k p_k = 1,  p_k >= 0

over the sent planes. ``f(p) = Q(sqrt(g p))`` is convex on p >= 0 with ``f'(0) = -inf``, so the optimum is
interior: every sent plane gets positive (for the LSBs possibly negligible, ~1e-5) power and the KKT
conditions reduce to stationarity, ``-w_k f'(p_k) = lambda`` for all k. With ``x = g p_k`` this reads

    log(w_k g / (2 sqrt(2 pi))) - log(lambda) = x/2 + log(x)/2

whose right side is increasing in x, so each plane's power is a decreasing function of ``lambda``, solved
(vectorised, in the log domain, by Newton from above) for each trial multiplier; the multiplier itself is
found by bisection on ``log(lambda)`` so that the mean power is 1.

Powers are returned MSB plane first (``k = 7, 6, ..., 8-m``), float64, mean exactly 1 (up to rounding).
Profiles are designed for an integer *design* Es/N0 in dB (the transmitter has no CSI).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.special import erfc

# profile names accepted everywhere (header, CLI, LinkConfig) and the design SNR range the header can carry
# (dB, inclusive): defined in infercom.limits, re-exported here
from .limits import DESIGN_SNR_MAX_DB, DESIGN_SNR_MIN_DB, PROFILES, check_field

__all__ = ["PROFILES", "DESIGN_SNR_MIN_DB", "DESIGN_SNR_MAX_DB", "qfunc", "plane_weights", "check_profile",
           "plane_powers", "plane_amplitudes", "plane_ber", "expected_mse", "kkt_residual"]

_LOG_NORM = math.log(2.0 * math.sqrt(2.0 * math.pi))


def qfunc(x):
    """Gaussian tail probability ``Q(x) = P(N(0,1) > x)`` (vectorised)."""
    return 0.5 * erfc(np.asarray(x, dtype=np.float64) / math.sqrt(2.0))


def plane_weights(planes: int = 8) -> np.ndarray:
    """Squared-error cost ``4**k`` of the sent planes, MSB first (k = 7 .. 8-planes), float64."""
    check_field("planes", planes)
    k = np.arange(7, 7 - planes, -1)
    return 4.0 ** k


def check_profile(profile: str) -> str:
    """``profile`` if it is one of :data:`PROFILES`, else ValueError."""
    if profile not in PROFILES:
        raise ValueError(f"unknown power profile {profile!r}; choose from {', '.join(PROFILES)}")
    return profile


def _solve_x(c: np.ndarray) -> np.ndarray:
    """Solve ``u/2 + exp(u)/2 = c`` for u (vectorised Newton from above); return ``x = exp(u)``.

    The left side is increasing and convex in u, so Newton started right of the root converges
    monotonically. Both ``2c`` and (when ``2c >= 1``) ``log(2c)`` are upper bounds of the root.
    """
    c = np.asarray(c, dtype=np.float64)
    u = 2.0 * c
    big = 2.0 * c >= 1.0
    u = np.where(big, np.minimum(u, np.log(np.where(big, 2.0 * c, 1.0))), u)
    for _ in range(100):
        eu = np.exp(u)
        f = 0.5 * u + 0.5 * eu - c
        step = f / (0.5 + 0.5 * eu)
        u = u - step
        if np.all(np.abs(step) <= 1e-13 * np.maximum(1.0, np.abs(u))):
            break
    return np.exp(u)


def _importance(esn0: float, weights: np.ndarray) -> np.ndarray:
    m = weights.size
    logw = np.log(weights) + math.log(esn0) - _LOG_NORM   # log(w_k g / (2 sqrt(2 pi)))

    def mean_power(log_lambda: float) -> float:
        return float(np.mean(_solve_x(logw - log_lambda))) / esn0

    # bracket log(lambda): mean power decreases as lambda grows
    lo, hi = float(np.min(logw)) - 50.0, float(np.max(logw)) + 50.0
    while mean_power(lo) < 1.0:
        lo -= 50.0
    while mean_power(hi) > 1.0:
        hi += 50.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mean_power(mid) > 1.0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-14 * max(1.0, abs(mid)):
            break
    p = _solve_x(logw - 0.5 * (lo + hi)) / esn0
    return p * (m / p.sum())


@functools.lru_cache(maxsize=256)
def _profile_cached(profile: str, design_snr_db: float, planes: int) -> np.ndarray:
    if profile == "equal":
        p = np.ones(planes)
    else:
        p = _importance(10.0 ** (design_snr_db / 10.0), plane_weights(planes))
    p.setflags(write=False)
    return p


def plane_powers(profile: str = "importance", design_snr_db: float = -4, planes: int = 8) -> np.ndarray:
    """Per-plane powers ``p_k`` (float64, shape (planes,), MSB plane first, mean 1).

    ``profile``: ``"equal"`` (all 1) or ``"importance"`` (minimum expected hard-decision pixel MSE at the
    design Es/N0 ``design_snr_db`` dB, only the ``planes`` sent planes share the budget). The result is a
    read-only cached array.
    """
    check_profile(profile)
    check_field("planes", planes)
    d = float(design_snr_db)
    if not math.isfinite(d):
        raise ValueError(f"design_snr_db must be finite, got {design_snr_db!r}")
    return _profile_cached(profile, d, int(planes))


def plane_amplitudes(profile: str = "importance", design_snr_db: float = -4, planes: int = 8) -> np.ndarray:
    """``sqrt(p_k)`` as float32, MSB plane first (what the QPSK mapper multiplies by)."""
    return np.sqrt(plane_powers(profile, design_snr_db, planes)).astype(np.float32)


def plane_ber(powers: np.ndarray, snr_db: float) -> np.ndarray:
    """Gray-QPSK bit error probability of each plane, ``Q(sqrt(p_k * Es/N0))``, at Es/N0 ``snr_db`` dB."""
    g = 10.0 ** (np.asarray(snr_db, dtype=np.float64) / 10.0)
    return qfunc(np.sqrt(np.asarray(powers, dtype=np.float64) * g))


def expected_mse(powers: np.ndarray, snr_db: float, include_unsent: bool = True) -> float:
    """Expected hard-decision squared error per value (pixel channel), in (grey level)**2.

    ``sum_k 4**k Q(sqrt(p_k g))`` over the sent planes (MSB first, their number = ``len(powers)``); bit
    errors of different planes are independent and their cross terms average out for uniformly random bits.
    With ``include_unsent`` the unsent LSB planes, replaced by their midpoint, add the variance of a value
    uniform on ``2**(8-m)`` levels, ``(4**(8-m) - 1) / 12``.
    """
    powers = np.asarray(powers, dtype=np.float64)
    m = powers.size
    d = float(np.sum(plane_weights(m) * plane_ber(powers, snr_db)))
    if include_unsent and m < 8:
        d += (4.0 ** (8 - m) - 1.0) / 12.0
    return d


def kkt_residual(powers: np.ndarray, design_snr_db: float) -> tuple[float, float]:
    """KKT check of an importance profile: (relative spread of ``-w_k f'(p_k)`` across planes with
    positive power, |mean power - 1|). Both are ~0 at the optimum."""
    p = np.asarray(powers, dtype=np.float64)
    g = 10.0 ** (design_snr_db / 10.0)
    w = plane_weights(p.size)
    # log of the marginal gain -w f'(p) = w g / (2 sqrt(2 pi) sqrt(g p)) exp(-g p / 2)
    x = g * p
    logm = np.log(w * g) - _LOG_NORM - 0.5 * np.log(x) - 0.5 * x
    pos = p > 0
    spread = float(np.max(logm[pos]) - np.min(logm[pos]))
    return spread, abs(float(np.mean(p)) - 1.0)
