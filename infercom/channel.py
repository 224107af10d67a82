# SPDX-License-Identifier: GPL-3.0-or-later
"""Channel models and pulse shaping, at symbol or sample level.

Conventions (docs/internals.md section 1):

* ``snr_db`` is Es/N0 per QPSK symbol with Es = 1 (the mean payload power).
* Complex noise of variance ``N0`` means ``E|n|^2 = N0`` (``N0/2`` per real dimension).
* :func:`rrc_taps` has unit energy (``sum(taps**2) == 1``).  A symbol stream of mean power 1 shaped by
  :func:`pulse_shape` and passed through :func:`awgn` with ``snr_db`` (noise variance ``N0 = 10**(-snr_db/10)``
  per *sample*) gives exactly Es/N0 = ``snr_db`` after the matched filter (the same taps) sampled at the
  symbol instants: the matched filter scales the symbol by ``sum(taps**2) = 1`` and the white noise variance
  by ``sum(taps**2) = 1``.
* CFO is given in cycles per sample (divide a frequency in Hz by the sample rate).

The symbol-level channel of every simulation (``infercom simulate`` for the InferCom link and the NR baseline,
the training pairs of :mod:`infercom.degrade`, the server's simulated transmitters in
``receiver_server.simlink``) is :class:`SymbolChannel`: block Rayleigh fading, AWGN at Es/N0 and an ideal
(genie-CSI) equaliser, with one vocabulary (:data:`FADINGS`, :data:`FADING_PER`, :data:`SNR_MODES`), one
deep-fade floor (:data:`GAIN_FLOOR`) and one set of command-line flags (:func:`add_channel_arguments`).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numba
import numpy as np

from .limits import MAX_FRAME_LEN_LOG2, MIN_FRAME_LEN_LOG2

__all__ = [
    "awgn",
    "rayleigh_coeffs",
    "block_fading",
    "apply_cfo",
    "fractional_delay",
    "oscillator_offsets",
    "resample",
    "wiener_phase",
    "apply_phase_noise",
    "iq_imbalance",
    "dc_offset_value",
    "dc_offset",
    "rrc_taps",
    "pulse_shape",
    "matched_filter",
    "FADINGS",
    "FADING_PER",
    "SNR_MODES",
    "GAIN_FLOOR",
    "NOISELESS_VAR",
    "floor_gain",
    "db_to_lin",
    "lin_to_db",
    "default_frame_len",
    "SymbolChannel",
    "Fading",
    "Received",
    "add_channel_arguments",
    "channel_from_args",
]


def _as_complex(x, name: str = "x") -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    a = a.astype(np.complex64, copy=False)
    if a.size and not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _check_finite_scalar(v, name: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {v!r}") from None
    if not np.isfinite(f):
        raise ValueError(f"{name} must be finite, got {v!r}")
    return f


def awgn(x, snr_db, rng: np.random.Generator, signal_power: float = 1.0) -> np.ndarray:
    """Add complex white Gaussian noise.

    The noise variance per element (complex, both dimensions) is ``signal_power / 10**(snr_db/10)``.
    ``signal_power`` is the *reference* power (Es = 1 by default), not measured from ``x``: burst signals with
    silence, or pulse-shaped samples, keep the intended Es/N0.  Returns complex64 of the shape of ``x``.
    """
    a = _as_complex(x)
    snr = _check_finite_scalar(snr_db, "snr_db")
    p = _check_finite_scalar(signal_power, "signal_power")
    if p < 0:
        raise ValueError(f"signal_power must be >= 0, got {signal_power}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    n0 = p / 10.0 ** (snr / 10.0)
    s = np.float32(np.sqrt(n0 / 2.0))
    noise = np.empty(a.shape, dtype=np.complex64)
    noise.real = rng.standard_normal(a.shape, dtype=np.float32)
    noise.imag = rng.standard_normal(a.shape, dtype=np.float32)
    noise *= s
    return (a + noise).astype(np.complex64, copy=False)


def rayleigh_coeffs(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` independent CN(0, 1) coefficients (E|h|^2 = 1), complex64 ``(n,)``."""
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    h = np.empty(int(n), dtype=np.complex64)
    h.real = rng.standard_normal(int(n), dtype=np.float32)
    h.imag = rng.standard_normal(int(n), dtype=np.float32)
    h *= np.float32(np.sqrt(0.5))
    return h


def block_fading(x, h, block_len: int | None = None) -> np.ndarray:
    """Multiply ``x`` by one complex coefficient per block of ``block_len`` elements.

    ``block_len=None``: ``h`` is a scalar (or one-element array) applied to all of ``x``.  Otherwise ``h`` needs
    at least ``ceil(len(x)/block_len)`` coefficients; block ``b`` covers ``x[b*block_len:(b+1)*block_len]``.
    """
    a = _as_complex(x)
    hh = np.atleast_1d(np.asarray(h)).astype(np.complex64)
    if hh.ndim != 1 or not np.all(np.isfinite(hh)):
        raise ValueError("h must be a finite scalar or 1-D array")
    if block_len is None:
        if hh.size != 1:
            raise ValueError(f"block_len=None needs one coefficient, got {hh.size}")
        return (a * hh[0]).astype(np.complex64, copy=False)
    if not isinstance(block_len, (int, np.integer)) or block_len <= 0:
        raise ValueError(f"block_len must be a positive integer, got {block_len!r}")
    nb = -(-a.size // int(block_len))
    if hh.size < nb:
        raise ValueError(f"need {nb} coefficients for {a.size} elements in blocks of {block_len}, got {hh.size}")
    gains = np.repeat(hh[:nb], int(block_len))[: a.size]
    return (a * gains).astype(np.complex64, copy=False)


def apply_cfo(x, cfo: float, phase0: float = 0.0) -> np.ndarray:
    """Rotate ``x[n]`` by ``exp(j*(2*pi*cfo*n + phase0))``; ``cfo`` in cycles per sample (or per symbol at
    symbol level), ``phase0`` in radians.  The phase is computed in float64 so it stays exact over long bursts."""
    a = _as_complex(x)
    f = _check_finite_scalar(cfo, "cfo")
    p0 = _check_finite_scalar(phase0, "phase0")
    n = np.arange(a.size, dtype=np.float64)
    ph = np.mod(f * n, 1.0) * (2.0 * np.pi) + p0
    return (a * np.exp(1j * ph).astype(np.complex64)).astype(np.complex64, copy=False)


def _frac_delay_taps(frac: float, half: int = 16, beta: float = 8.0) -> np.ndarray:
    """Kaiser-windowed sinc taps ``h[i] = sinc(i - half - frac) * w``, ``i = 0 .. 2*half``."""
    t = np.arange(-half, half + 1, dtype=np.float64) - frac
    # Kaiser window evaluated at the shifted positions (symmetric about the fractional centre)
    w = np.i0(beta * np.sqrt(np.clip(1.0 - (t / (half + 1.0)) ** 2, 0.0, 1.0))) / np.i0(beta)
    h = np.sinc(t) * w
    return h / h.sum()


def fractional_delay(x, delay: float) -> np.ndarray:
    """Delay ``x`` by ``delay`` samples (any real number; negative advances): ``y[n] = x(n - delay)``.

    Band-limited interpolation with a 33-tap Kaiser-windowed sinc (accurate for content below ~0.4 cycles per
    sample, e.g. RRC beta 0.35 at ``sps >= 2``); integer delays are exact shifts.  Samples of ``x`` outside
    ``0 .. len(x)-1`` are zero, and the output has the length of ``x`` (pad ``x`` if its tail matters).
    """
    a = _as_complex(x)
    d = _check_finite_scalar(delay, "delay")
    n = a.size
    d_int = int(np.floor(d))
    frac = d - d_int
    if frac < 1e-12:
        y = np.zeros(n, dtype=np.complex64)
        if d_int >= 0:
            if d_int < n:
                y[d_int:] = a[: n - d_int]
        elif -d_int < n:
            y[: n + d_int] = a[-d_int:]
        return y
    half = 16
    h = _frac_delay_taps(frac, half).astype(np.float32)
    c = np.convolve(a, h)  # length n + 2*half
    # y[n] = c[n - d_int + half]
    idx = np.arange(n) - d_int + half
    valid = (idx >= 0) & (idx < c.size)
    y = np.zeros(n, dtype=np.complex64)
    y[valid] = c[idx[valid]]
    return y


# ------------------------------------------------------------------------------ radio front-end impairments
# The sample-level models of a real radio pair (docs/phy.md section 1, "Radio impairments"); the loopback
# (gr-infercom apps/loopback.py and grc/loopback*.grc) builds the same models from GNU Radio blocks, and
# gr-infercom/python/infercom/qa_loopback.py checks that both agree.


def oscillator_offsets(ppm: float, center_freq_hz: float, samp_rate: float) -> tuple[float, float]:
    """Carrier and sample-clock offsets of two free-running radios whose references differ by ``ppm``.

    The transmitter's reference runs ``ppm * 1e-6`` fast relative to the receiver's, and both its LO and its
    sample clock derive from it (as in every USRP), so one figure drives both: the carrier offset is
    ``ppm * 1e-6 * center_freq_hz`` Hz, i.e. ``ppm * 1e-6 * center_freq_hz / samp_rate`` cycles per (receiver)
    sample, and the receiver takes ``1 + ppm * 1e-6`` transmitter samples per own sample (the resampling ratio
    of :func:`resample`, GNU Radio's ``mmse_resampler_cc`` ``resamp_ratio`` and ``channel_model``'s
    ``epsilon``).  ``center_freq_hz`` and ``samp_rate`` in Hz and samples/s.  Returns ``(cfo, ratio)``."""
    e = _check_finite_scalar(ppm, "ppm") * 1e-6
    fc = _check_finite_scalar(center_freq_hz, "center_freq_hz")
    fs = _check_finite_scalar(samp_rate, "samp_rate")
    if fs <= 0 or fc < 0:
        raise ValueError(f"need samp_rate > 0 and center_freq_hz >= 0, got {samp_rate}, {center_freq_hz}")
    if abs(e) >= 1e-3:
        raise ValueError(f"|ppm| must be below 1000, got {ppm}")
    return e * fc / fs, 1.0 + e


def resample(x, ratio: float, mu0: float = 0.0) -> np.ndarray:
    """Sample-clock offset: ``y[k] = x(mu0 + k * ratio)`` (``ratio`` input samples per output sample, the
    convention of GNU Radio's ``mmse_resampler_cc``; ``ratio = 1 + ppm*1e-6`` for a transmitter clock ``ppm``
    fast, see :func:`oscillator_offsets`), for every ``k`` with ``mu0 + k*ratio <= len(x) - 1``.

    ``mu0 >= 0`` in input samples.  Band-limited interpolation with the 33-tap Kaiser-windowed sinc of
    :func:`fractional_delay` evaluated at each output's own fractional position (same accuracy: content below
    ~0.4 cycles per sample; inputs outside ``x`` are zero).  Returns complex64."""
    a = _as_complex(x)
    r = _check_finite_scalar(ratio, "ratio")
    m = _check_finite_scalar(mu0, "mu0")
    if not 0.5 <= r <= 2.0:
        raise ValueError(f"ratio must be in [0.5, 2], got {ratio}")
    if m < 0:
        raise ValueError(f"mu0 must be >= 0, got {mu0}")
    if a.size == 0 or m > a.size - 1:
        return np.zeros(0, np.complex64)
    n_out = int(np.floor((a.size - 1 - m) / r)) + 1
    half, beta = 16, 8.0
    pad = np.concatenate([np.zeros(half, np.complex64), a, np.zeros(half + 1, np.complex64)])
    out = np.empty(n_out, np.complex64)
    j = np.arange(-half, half + 1, dtype=np.float64)
    chunk = 1 << 14
    for k0 in range(0, n_out, chunk):
        t = m + np.arange(k0, min(k0 + chunk, n_out), dtype=np.float64) * r
        i = np.floor(t)
        frac = (t - i)[:, None]
        u = j[None, :] + frac                  # x(t) = sum_j x[i - j] * h(j + frac); h(u) = sinc(u) * w(u)
        w = np.i0(beta * np.sqrt(np.clip(1.0 - (u / (half + 1.0)) ** 2, 0.0, 1.0))) / np.i0(beta)
        h = np.sinc(u) * w
        h /= h.sum(axis=1, keepdims=True)
        idx = i.astype(np.int64)[:, None] - j.astype(np.int64)[None, :] + half
        out[k0:k0 + t.size] = np.sum(pad[idx] * h, axis=1)
    return out


def wiener_phase(n: int, linewidth_hz: float, samp_rate: float, rng: np.random.Generator,
                 phase0: float = 0.0) -> np.ndarray:
    """Wiener (random-walk) phase noise of an oscillator pair with 3-dB Lorentzian ``linewidth_hz``: ``n``
    phases (radians, float64), ``phi[0] = phase0 + d[0]``, ``phi[k] = phi[k-1] + d[k]`` with independent
    ``d[k] ~ N(0, 2*pi*linewidth_hz/samp_rate)``, so ``Var(phi[k] - phi[j]) = 2*pi*linewidth_hz*(k-j)/samp_rate``
    (rad^2) grows linearly with the lag.  Its single-sideband spectrum far from the carrier is
    ``L(f) = linewidth_hz / (pi * f**2)`` (1/Hz): -80 dBc/Hz at 10 kHz is a linewidth of ``pi`` Hz.  The linewidths
    of the transmitter's and receiver's oscillators add.  ``samp_rate`` in samples/s."""
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    lw = _check_finite_scalar(linewidth_hz, "linewidth_hz")
    fs = _check_finite_scalar(samp_rate, "samp_rate")
    p0 = _check_finite_scalar(phase0, "phase0")
    if lw < 0 or fs <= 0:
        raise ValueError(f"need linewidth_hz >= 0 and samp_rate > 0, got {linewidth_hz}, {samp_rate}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    d = rng.standard_normal(int(n)) * math.sqrt(2.0 * math.pi * lw / fs)
    return p0 + np.cumsum(d)


def apply_phase_noise(x, linewidth_hz: float, samp_rate: float, rng: np.random.Generator,
                      phase0: float = 0.0) -> np.ndarray:
    """``x[k] * exp(j*phi[k])`` with ``phi`` = :func:`wiener_phase` (``linewidth_hz`` in Hz, ``samp_rate`` in
    samples/s); complex64."""
    a = _as_complex(x)
    ph = wiener_phase(a.size, linewidth_hz, samp_rate, rng, phase0)
    return (a * np.exp(1j * ph).astype(np.complex64)).astype(np.complex64, copy=False)


def iq_imbalance(x, gain_db: float, phase_deg: float) -> np.ndarray:
    """Receiver IQ imbalance, the model of GNU Radio's ``channels.iqbal_gen(gain_db, phase_deg, 1)``: the I
    branch has amplitude gain ``g = 10**(gain_db/20)`` relative to Q and its LO is ``phase_deg`` degrees off
    quadrature, ``I' = g * (cos(phi) * I + sin(phi) * Q)``, ``Q' = Q``.  For a circular input the output's
    ``20*log10(rms(I')/rms(Q'))`` is ``gain_db`` and the I/Q correlation coefficient is ``sin(phi)``; the image
    (the conjugate term ``K2 * conj(x)``, ``y = K1*x + K2*conj(x)``) is ``|K2/K1|**2`` below the signal.
    Returns complex64."""
    a = _as_complex(x)
    g = 10.0 ** (_check_finite_scalar(gain_db, "gain_db") / 20.0)
    ph = math.radians(_check_finite_scalar(phase_deg, "phase_deg"))
    if abs(ph) >= math.pi / 2:
        raise ValueError(f"|phase_deg| must be below 90, got {phase_deg}")
    re = (g * (math.cos(ph) * a.real.astype(np.float64) + math.sin(ph) * a.imag.astype(np.float64)))
    out = np.empty(a.size, np.complex64)
    out.real = re
    out.imag = a.imag
    return out


def dc_offset_value(level_db: float, phase_deg: float = 45.0, signal_power: float = 1.0) -> complex:
    """The complex DC offset of power ``level_db`` dB relative to ``signal_power`` (linear, e.g. ``1/sps`` for
    unit-Es bursts shaped with unit-energy RRC taps) at angle ``phase_deg`` degrees:
    ``sqrt(signal_power * 10**(level_db/10)) * exp(j*radians(phase_deg))``; ``level_db = -inf`` gives 0."""
    lv = float(level_db)
    if np.isnan(lv) or lv == np.inf:
        raise ValueError(f"level_db must be finite or -inf, got {level_db!r}")
    p = _check_finite_scalar(signal_power, "signal_power")
    if p < 0:
        raise ValueError(f"signal_power must be >= 0, got {signal_power}")
    ph = math.radians(_check_finite_scalar(phase_deg, "phase_deg"))
    if lv == -np.inf:
        return 0j
    amp = math.sqrt(p * 10.0 ** (lv / 10.0))
    return complex(amp * math.cos(ph), amp * math.sin(ph))


def dc_offset(x, level_db: float, phase_deg: float = 45.0, signal_power: float = 1.0) -> np.ndarray:
    """``x + dc_offset_value(level_db, phase_deg, signal_power)`` (a receiver's LO leakage / DC), complex64."""
    a = _as_complex(x)
    return (a + np.complex64(dc_offset_value(level_db, phase_deg, signal_power))).astype(np.complex64, copy=False)


def rrc_taps(sps: int, beta: float = 0.35, span: int = 8) -> np.ndarray:
    """Root-raised-cosine taps, ``span*sps + 1`` of them, unit energy (``sum(taps**2) == 1``), float32.

    ``sps`` samples per symbol, ``beta`` roll-off (0 < beta <= 1), ``span`` in symbols (even)."""
    if not isinstance(sps, (int, np.integer)) or sps < 1:
        raise ValueError(f"sps must be a positive integer, got {sps!r}")
    b = _check_finite_scalar(beta, "beta")
    if not 0.0 < b <= 1.0:
        raise ValueError(f"beta must be in (0, 1], got {beta}")
    if not isinstance(span, (int, np.integer)) or span < 2 or span % 2:
        raise ValueError(f"span must be an even integer >= 2, got {span!r}")
    n = np.arange(span * sps + 1, dtype=np.float64) - span * sps / 2.0
    t = n / sps
    h = np.empty_like(t)
    for i, ti in enumerate(t):
        if abs(ti) < 1e-12:
            h[i] = 1.0 - b + 4.0 * b / np.pi
        elif abs(abs(4.0 * b * ti) - 1.0) < 1e-9:
            h[i] = (b / np.sqrt(2.0)) * (
                (1.0 + 2.0 / np.pi) * np.sin(np.pi / (4.0 * b)) + (1.0 - 2.0 / np.pi) * np.cos(np.pi / (4.0 * b))
            )
        else:
            num = np.sin(np.pi * ti * (1.0 - b)) + 4.0 * b * ti * np.cos(np.pi * ti * (1.0 + b))
            den = np.pi * ti * (1.0 - (4.0 * b * ti) ** 2)
            h[i] = num / den
    h /= np.sqrt(np.sum(h * h))
    return h.astype(np.float32)


def pulse_shape(symbols, sps: int, taps) -> np.ndarray:
    """Zero-stuff ``symbols`` to ``sps`` samples per symbol and filter with ``taps``.

    Returns the full convolution, complex64 of length ``len(symbols)*sps + len(taps) - 1``; symbol ``k`` peaks
    at sample ``k*sps + (len(taps)-1)//2`` (and after a matched filter with the same taps at
    ``k*sps + len(taps) - 1``).  Polyphase numba kernel (float32, releases the GIL): only the
    ``ceil(len(taps)/sps)`` taps that meet a symbol are multiplied per output sample."""
    s = _as_complex(symbols, "symbols")
    if not isinstance(sps, (int, np.integer)) or sps < 1:
        raise ValueError(f"sps must be a positive integer, got {sps!r}")
    t = np.asarray(taps, dtype=np.float32)
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)):
        raise ValueError("taps must be a non-empty finite 1-D array")
    out = np.empty(s.size * int(sps) + t.size - 1, dtype=np.complex64)
    if s.size == 0:
        out[:] = 0
        return out
    _pulse_shape_kernel(np.ascontiguousarray(s), int(sps), np.ascontiguousarray(t), out)
    return out


@numba.njit(cache=True, nogil=True)
def _pulse_shape_kernel(sym, sps, taps, out):
    """``out[n] = sum_k taps[k] * up[n - k]`` with ``up`` = ``sym`` zero-stuffed by ``sps``; ``out`` has the full
    convolution's length.  For ``n = m*sps + p`` only ``taps[p + j*sps] * sym[m - j]`` are non-zero, so each
    phase ``p`` is a short FIR over the symbols, computed as multiply-adds over cache-sized blocks of symbol
    slots (on views indexed from 0, which LLVM vectorises)."""
    n_sym = sym.size
    n_taps = taps.size
    n_out = out.size
    n_m = (n_out + sps - 1) // sps           # symbol slots covering the output
    block = 2048
    f = sym.view(np.float32)                 # interleaved re, im
    o = out.view(np.float32)
    acc = np.empty(2 * block, np.float32)
    for m0 in range(0, n_m, block):
        m1 = min(m0 + block, n_m)
        for p in range(sps):
            acc[:] = 0.0
            j = 0
            while p + j * sps < n_taps:
                h = taps[p + j * sps]
                lo = max(m0, j)               # slots m in [lo, hi) meet a symbol: 0 <= m - j < n_sym
                hi = min(m1, n_sym + j)
                if hi > lo:
                    a = acc[2 * (lo - m0):2 * (hi - m0)]
                    b = f[2 * (lo - j):2 * (hi - j)]
                    for q in range(a.size):
                        a[q] += h * b[q]
                j += 1
            m_end = min(m1, (n_out - p + sps - 1) // sps)   # slots whose phase-p sample exists
            for m in range(m0, m_end):
                q = 2 * (m * sps + p)
                o[q] = acc[2 * (m - m0)]
                o[q + 1] = acc[2 * (m - m0) + 1]


def matched_filter(samples, taps) -> np.ndarray:
    """Full convolution of ``samples`` with the time-reversed ``taps`` (RRC taps are symmetric), complex64 of
    length ``len(samples) + len(taps) - 1``."""
    x = _as_complex(samples, "samples")
    t = np.asarray(taps, dtype=np.float32)
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)):
        raise ValueError("taps must be a non-empty finite 1-D array")
    if x.size == 0:
        return np.zeros(max(t.size - 1, 0), dtype=np.complex64)
    return _fir(x, t[::-1].copy())


def _fir(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Full real-tap convolution of a complex64 signal (FFT-based for long inputs)."""
    if x.size * t.size > 1 << 16 and t.size > 32:
        from scipy.signal import oaconvolve

        re = oaconvolve(x.real, t)
        im = oaconvolve(x.imag, t)
    else:
        re = np.convolve(x.real, t)
        im = np.convolve(x.imag, t)
    out = np.empty(re.size, dtype=np.complex64)
    out.real = re
    out.imag = im
    return out


# ------------------------------------------------------------------------------------ symbol-level channel
#: fading models: ``"none"`` (AWGN only) or ``"block"`` (block Rayleigh, CN(0, 1) coefficients)
FADINGS = ("none", "block")
#: block-fading coherence: ``"image"`` = one coefficient per transmission attempt of the image, ``"frame"`` =
#: one per frame of ``frame_len`` transmitted (interleaved) payload symbols
FADING_PER = ("image", "frame")
#: SNR normalisation: ``"instantaneous"`` = the power gains of an attempt are scaled to a symbol-weighted mean
#: of 1, so every attempt's mean Es/N0 is exactly ``snr_db`` (the papers report against it); ``"average"`` =
#: raw CN(0, 1) draws, ``snr_db`` is the mean over the fading and each attempt realises its own Es/N0
SNR_MODES = ("instantaneous", "average")
#: deep-fade floor on the power gain |h|^2 of a drawn coefficient (-60 dB), see :meth:`SymbolChannel.draw`
GAIN_FLOOR = 1e-6
#: noise variance N0 reported for a noiseless channel (``snr_db = inf``): 100 dB Es/N0.  Receivers need a
#: positive one (LLRs divide by it; the protocol rejects 0)
NOISELESS_VAR = 1e-10


def db_to_lin(db):
    """Power ratio ``10**(db/10)`` of a level in dB (``inf`` -> ``inf``, ``-inf`` -> 0).

    A scalar gives a Python float, anything else a float64 array."""
    a = np.asarray(db, dtype=np.float64)
    if a.ndim == 0:
        return 10.0 ** (float(a) / 10.0)
    return np.power(10.0, a / 10.0)


def lin_to_db(lin):
    """Level ``10*log10(lin)`` in dB of a power ratio ``lin >= 0`` (0 -> ``-inf``, ``inf`` -> ``inf``).

    A scalar gives a Python float, anything else a float64 array; a negative ratio is a ``ValueError``."""
    a = np.asarray(lin, dtype=np.float64)
    if np.any(a < 0) or np.any(np.isnan(a)):
        raise ValueError(f"a power ratio must be >= 0, got {lin!r}")
    if a.ndim == 0:
        v = float(a)
        return 10.0 * math.log10(v) if 0.0 < v < math.inf else (-math.inf if v == 0.0 else math.inf)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(a)


def floor_gain(h) -> np.ndarray:
    """Fading coefficients with the deep-fade floor: a coefficient whose power gain ``|h|^2`` is below
    :data:`GAIN_FLOOR` is scaled up to it, keeping its phase (an exact zero becomes ``sqrt(GAIN_FLOOR)``).
    Returns an array of ``h``'s complex dtype and shape (a new one); every fading draw of the project goes
    through it (:meth:`SymbolChannel.draw`, the GNU Radio ``block_fading`` block)."""
    a = np.array(h, copy=True)
    if not np.iscomplexobj(a):
        a = a.astype(np.complex128)
    g = np.abs(a.astype(np.complex128)) ** 2
    deep = g < GAIN_FLOOR
    if np.any(deep):
        ad, gd = a[deep].astype(np.complex128), g[deep]
        phase = np.ones_like(ad)
        nz = gd > 0
        phase[nz] = ad[nz] / np.sqrt(gd[nz])
        a[deep] = (phase * math.sqrt(GAIN_FLOOR)).astype(a.dtype)
    return a


def default_frame_len() -> int:
    """Payload data symbols per frame of the default frame format (``infercom.frame.FrameFormat``: 2**15)."""
    from .frame import FrameFormat  # noqa: PLC0415 - frame pulls in the header code; only needed here

    return int(FrameFormat().frame_len)


def frame_snr_db(noise_var, frame_len: int) -> np.ndarray:
    """Per-frame Es/N0 (dB) of equalised symbols (Es = 1) with per-symbol ``noise_var`` (scalar or (n,), in
    transmitted order; ``inf`` where lost): ``lin_to_db(mean(1 / noise_var))`` over each run of ``frame_len``
    symbols (the last frame may be shorter); ``-inf`` for a frame with nothing received."""
    nv = np.atleast_1d(np.asarray(noise_var, dtype=np.float64))
    inv = np.where(np.isfinite(nv), 1.0 / np.maximum(nv, 1e-30), 0.0)
    starts = np.arange(0, inv.size, int(frame_len))
    sums = np.add.reduceat(inv, starts) if inv.size else np.zeros(0)
    counts = np.diff(np.append(starts, inv.size))
    return lin_to_db(sums / counts)


def image_snr_db(frame_snr_db) -> float:
    """An image's Es/N0 (dB) from its frames' (dB, ``-inf`` for a frame never received): the linear mean over
    all frames, -99 dB when none arrived (the ``snr_db`` a restorer is told)."""
    f = np.asarray(frame_snr_db, dtype=np.float64).ravel()
    finite = f[np.isfinite(f)]
    return float(10 * np.log10(np.sum(10 ** (finite / 10)) / f.size)) if finite.size else -99.0


def snr_spread_db(frame_snr_db) -> float:
    """Standard deviation (dB) of the finite per-frame Es/N0 values ``frame_snr_db`` (dB): how unevenly a fading
    channel spread the image's SNR over its frames; 0 with fewer than two received frames."""
    f = np.asarray(frame_snr_db, dtype=np.float64).ravel()
    f = f[np.isfinite(f)]
    return float(np.std(f)) if f.size > 1 else 0.0


@dataclass(frozen=True)
class Fading:
    """One attempt's fading realisation (what :meth:`SymbolChannel.draw` generates).

    h: complex128 ``(n_blocks,)`` coefficients, after the deep-fade floor and (``instantaneous``) the
    normalisation; ``bounds``: int64 ``(n_blocks + 1,)`` symbol edges, block ``b`` covers symbols
    ``bounds[b] .. bounds[b+1]-1`` of the attempt.  No fading is one block with ``h = 1``.
    """

    h: np.ndarray
    bounds: np.ndarray

    @property
    def n_symbols(self) -> int:
        return int(self.bounds[-1])

    @property
    def lengths(self) -> np.ndarray:
        """Symbols per block, int64 ``(n_blocks,)``."""
        return np.diff(self.bounds)

    @property
    def gains(self) -> np.ndarray:
        """Power gains ``|h|^2`` per block, float64 ``(n_blocks,)``."""
        return np.abs(self.h) ** 2

    def block_of(self, symbol: int) -> int:
        """Index of the block holding symbol ``symbol`` (0 <= symbol < n_symbols)."""
        if not 0 <= symbol < max(self.n_symbols, 1):
            raise ValueError(f"symbol {symbol} outside 0..{self.n_symbols - 1}")
        return int(np.searchsorted(self.bounds, symbol, side="right") - 1)

    def mean_gain(self, start: int = 0, stop: int | None = None, mask: np.ndarray | None = None) -> float:
        """Symbol-weighted mean power gain over symbols ``start .. stop-1`` (default: the attempt), counting
        only the symbols where the bool ``mask`` (``(stop - start,)``) is True; 1.0 for no symbols."""
        stop = self.n_symbols if stop is None else int(stop)
        lo = np.clip(self.bounds[:-1], start, stop)
        hi = np.clip(self.bounds[1:], start, stop)
        if mask is None:
            w = (hi - lo).astype(np.float64)
        else:
            m = np.asarray(mask, bool)
            if m.shape != (stop - start,):
                raise ValueError(f"mask must have shape ({stop - start},), got {m.shape}")
            c = np.concatenate(([0], np.cumsum(m)))
            w = (c[hi - start] - c[lo - start]).astype(np.float64)
        total = float(np.sum(w))
        if total == 0:
            return 1.0
        return float(np.sum(self.gains * w)) / total


@dataclass(frozen=True)
class Received:
    """An attempt after the channel and the ideal equaliser (what :meth:`SymbolChannel.apply` returns).

    y: complex64 ``(n,)`` equalised symbols ``r / h = x + n / h``; noise_var: effective noise variance
    ``N0 / |h|^2`` (complex, both dimensions): a Python float with one coefficient for the attempt, else
    float32 ``(n,)`` per symbol; snr_db: realised Es/N0 of the attempt in dB (the channel's ``snr_db`` + the
    symbol-weighted mean power gain in dB; noiseless: ``lin_to_db(mean gain / NOISELESS_VAR)``, 100 dB + the
    gain); fading: the realisation used; channel: the :class:`SymbolChannel` that produced it.
    """

    y: np.ndarray
    noise_var: float | np.ndarray
    snr_db: float
    fading: Fading
    channel: SymbolChannel

    @property
    def n0(self) -> float:
        return self.channel.n0

    def segment(self, start: int, stop: int) -> tuple[np.ndarray, float | np.ndarray, float]:
        """Symbols ``start .. stop-1`` (e.g. one transmitted frame): ``(y, noise_var, snr_db)`` with a scalar
        noise variance when the run lies in one coefficient block (per-symbol float32 otherwise) and its
        realised Es/N0 in dB (computed as for the whole attempt)."""
        n = self.y.size
        if not 0 <= start < stop <= n:
            raise ValueError(f"segment {start}..{stop} outside the attempt's {n} symbols")
        f = self.fading
        b0, b1 = f.block_of(start), f.block_of(stop - 1)
        nv = float(self.n0 / f.gains[b0]) if b0 == b1 else self.noise_var[start:stop]
        return self.y[start:stop], nv, self.channel.realised_db(f.mean_gain(start, stop))


@dataclass(frozen=True)
class SymbolChannel:
    """Block Rayleigh fading + AWGN + ideal equaliser at symbol level, for one transmission attempt at a time.

    ``snr_db``: Es/N0 per QPSK symbol in dB with Es = 1 (finite, or ``inf`` for a noiseless channel whose
    reported noise variance is :data:`NOISELESS_VAR`); ``fading`` in :data:`FADINGS`; ``fading_per`` in
    :data:`FADING_PER` (only used with ``fading="block"``); ``snr_mode`` in :data:`SNR_MODES`;
    ``frame_len``: payload symbols per frame, the coherence block of ``fading_per="frame"`` (None: the frame
    format's default, :func:`default_frame_len`).  Frames are contiguous runs of *transmitted* (interleaved)
    symbols, exactly as :func:`infercom.frame.segment` cuts them, so a deep fade lands on symbols scattered
    over the whole image.

    Two steps, in the spirit of Sionna's generate / apply channel objects: :meth:`draw` generates an
    attempt's coefficients, :meth:`apply` sends symbols through them; ``channel(x, rng)`` does both.  The
    random draws of an attempt are, in this order: ``n_blocks`` coefficients (real parts, then imaginary
    parts; none without fading), then the noise of all ``len(x)`` symbols (real, then imaginary; none when
    noiseless), so every consumer that sends the same symbols with the same generator gets the same output.
    """

    snr_db: float
    fading: str = "none"
    fading_per: str = "image"
    snr_mode: str = "instantaneous"
    frame_len: int | None = None

    def __post_init__(self) -> None:
        try:
            s = float(self.snr_db)
        except (TypeError, ValueError):
            raise ValueError(f"snr_db must be a real number (dB), got {self.snr_db!r}") from None
        if math.isnan(s) or s == -math.inf:
            raise ValueError(f"snr_db must be finite or inf (noiseless), got {self.snr_db!r}")
        object.__setattr__(self, "snr_db", s)
        if self.fading not in FADINGS:
            raise ValueError(f"fading must be one of {FADINGS}, got {self.fading!r}")
        if self.fading_per not in FADING_PER:
            raise ValueError(f"fading_per must be one of {FADING_PER}, got {self.fading_per!r}")
        if self.snr_mode not in SNR_MODES:
            raise ValueError(f"snr_mode must be one of {SNR_MODES}, got {self.snr_mode!r}")
        if self.frame_len is not None and (isinstance(self.frame_len, bool)
                                           or not isinstance(self.frame_len, (int, np.integer))
                                           or self.frame_len < 1):
            raise ValueError(f"frame_len must be a positive integer or None, got {self.frame_len!r}")

    # -- derived quantities ------------------------------------------------------------------------------
    @property
    def noiseless(self) -> bool:
        return self.snr_db == math.inf

    @property
    def n0(self) -> float:
        """Noise variance N0 = 1 / 10**(snr_db/10) (complex, both dimensions); :data:`NOISELESS_VAR` when
        noiseless."""
        return NOISELESS_VAR if self.noiseless else 1.0 / db_to_lin(self.snr_db)

    def realised_db(self, mean_gain: float) -> float:
        """Realised Es/N0 in dB of symbols with mean power gain ``mean_gain``: ``snr_db + lin_to_db(gain)``
        (noiseless: ``lin_to_db(gain / NOISELESS_VAR)``, what a receiver would measure from the reported
        noise variance)."""
        if self.noiseless:
            return lin_to_db(mean_gain / NOISELESS_VAR)
        return lin_to_db(mean_gain) + self.snr_db

    @property
    def block_len(self) -> int:
        """Symbols per frame (``frame_len`` or the frame format's default)."""
        return int(self.frame_len) if self.frame_len is not None else default_frame_len()

    def block_bounds(self, n_symbols: int) -> np.ndarray:
        """Edges (int64) of the coherence blocks of an attempt of ``n_symbols`` symbols: ``[0, n]`` without
        fading or with ``fading_per="image"``, else every ``frame_len`` symbols (the last block may be
        shorter)."""
        n = int(n_symbols)
        if n < 0:
            raise ValueError(f"n_symbols must be >= 0, got {n_symbols}")
        if self.fading == "none" or self.fading_per == "image" or n == 0:
            return np.array([0, n], np.int64)
        return np.append(np.arange(0, n, self.block_len, dtype=np.int64), np.int64(n))

    # -- generate ----------------------------------------------------------------------------------------
    def draw(self, n_symbols: int, rng: np.random.Generator) -> Fading:
        """Draw the fading of one attempt of ``n_symbols`` symbols.

        Block fading: one CN(0, 1) coefficient per block (:func:`rayleigh_coeffs`); a coefficient whose
        power gain is below :data:`GAIN_FLOOR` (-60 dB, probability ~1e-6 per draw) is raised to it, keeping
        its phase (:func:`floor_gain`).  The floor is on ``|h|^2`` because gains, SNR and noise variance are all power quantities,
        and it is applied to the coefficient itself -- the transmitted fade, the equaliser and the reported
        noise variance all use the floored value, so ``y`` and ``noise_var`` stay consistent and finite in
        float32 (also noiseless: ``NOISELESS_VAR / GAIN_FLOOR = 1e-4``); at -60 dB the equalised symbols are
        noise at any Es/N0 the link is run at, so the floor changes no statistic measurably.  Then, with
        ``snr_mode="instantaneous"``, the coefficients are scaled so that the symbol-weighted mean of
        ``|h|^2`` over the attempt is 1 (a short last frame counts less; one coefficient per image becomes a
        pure phase).
        """
        if not isinstance(rng, np.random.Generator):
            raise ValueError("rng must be a numpy.random.Generator")
        bounds = self.block_bounds(n_symbols)
        if self.fading == "none":
            return Fading(np.ones(1, np.complex128), bounds)
        lens = np.diff(bounds)
        h = floor_gain(rayleigh_coeffs(lens.size, rng).astype(np.complex128))
        g = np.abs(h) ** 2
        n = int(bounds[-1])
        if self.snr_mode == "instantaneous" and n > 0:
            h = h / math.sqrt(float(np.sum(g * lens)) / n)
        return Fading(h, bounds)

    # -- apply -------------------------------------------------------------------------------------------
    def apply(self, x, fading: Fading, rng: np.random.Generator) -> Received:
        """Send the payload symbols ``x`` (complex, 1-D, mean power Es = 1) of one attempt through the
        realisation ``fading`` (from :meth:`draw` for ``len(x)`` symbols): ``r = h x + n`` with
        ``E|n|^2 = N0``, equalised with the true coefficients, ``y = r / h``, ``noise_var = N0 / |h|^2``."""
        a = _as_complex(x)
        if fading.n_symbols != a.size:
            raise ValueError(f"the fading was drawn for {fading.n_symbols} symbols, got {a.size}")
        if not isinstance(rng, np.random.Generator):
            raise ValueError("rng must be a numpy.random.Generator")
        n0 = self.n0
        gains = fading.gains
        lens = fading.lengths
        if self.fading == "none":
            y = a.copy() if self.noiseless else awgn(a, self.snr_db, rng)
        else:
            h_sym = np.repeat(fading.h, lens).astype(np.complex64)
            r = a * h_sym
            if not self.noiseless:
                r = awgn(r, self.snr_db, rng)                      # N0 = 1 / 10**(snr_db/10)
            y = (r / h_sym).astype(np.complex64)
        if gains.size == 1:
            nv: float | np.ndarray = n0 / float(gains[0])
        else:
            nv = np.repeat((n0 / gains).astype(np.float32), lens)
        return Received(y, nv, self.realised_db(fading.mean_gain()), fading, self)

    def __call__(self, x, rng: np.random.Generator) -> Received:
        """One attempt of ``x``: :meth:`draw` then :meth:`apply` with the same generator."""
        n = np.asarray(x).size
        return self.apply(x, self.draw(n, rng), rng)


# ------------------------------------------------------------------------------------------------- CLI
def add_channel_arguments(parser, *, fading: str = "none", fading_per: str = "image",
                          snr_mode: str | None = "instantaneous", frame_len: int | None = None,
                          with_frame_len: bool = True):
    """Add the channel flags of every CLI (one definition of names, choices, defaults and help) to
    ``parser`` (an ``argparse`` parser or group) and return the group they are in:

    ``--fading {none,block}``, ``--fading-per {image,frame}``, ``--snr-mode {instantaneous,average}`` (left
    out when ``snr_mode`` is None: a path that cannot normalise, e.g. the GNU Radio loopback, always runs
    ``average``) and ``--frame-len-log2 N`` (payload symbols per frame = 2**N, the same flag as the frame
    format's in ``infercom loopback|tx``; left out with ``with_frame_len=False``, where the frames are the
    transmitter's own; parsed as ``args.frame_len`` in symbols).  The keyword arguments are the defaults.  :func:`channel_from_args` turns the parsed
    flags into a :class:`SymbolChannel`."""
    if fading not in FADINGS or fading_per not in FADING_PER or (snr_mode is not None and snr_mode not in SNR_MODES):
        raise ValueError(f"bad channel defaults {fading!r}, {fading_per!r}, {snr_mode!r}")
    g = parser.add_argument_group("channel") if isinstance(parser, argparse.ArgumentParser) else parser
    g.add_argument("--fading", choices=FADINGS, default=fading,
                   help=f"none: AWGN only; block: block Rayleigh fading, CN(0,1) coefficients with ideal "
                        f"equalisation (default {fading})")
    g.add_argument("--fading-per", choices=FADING_PER, default=fading_per,
                   help=f"block-fading coherence: image = one coefficient per transmission attempt of the "
                        f"image, frame = one per frame of payload symbols (default {fading_per})")
    if snr_mode is not None:
        g.add_argument("--snr-mode", choices=SNR_MODES, default=snr_mode,
                       help=f"instantaneous: each attempt's fading gains are normalised to mean 1, so its "
                            f"mean Es/N0 is exactly --snr-db (results against instantaneous SNR, as in the "
                            f"papers); average: raw CN(0,1) gains, --snr-db is the mean over the fading "
                            f"(default {snr_mode})")
    if with_frame_len:
        if frame_len is not None and (frame_len < 1 or frame_len & (frame_len - 1)):
            raise ValueError(f"frame_len default must be a power of two, got {frame_len}")
        dflt = "the frame format's, 15" if frame_len is None else str(frame_len.bit_length() - 1)
        g.add_argument("--frame-len-log2", dest="frame_len", type=_frame_len_from_log2, default=frame_len,
                       metavar="N",
                       help=f"payload symbols per frame = 2**N ({MIN_FRAME_LEN_LOG2}..{MAX_FRAME_LEN_LOG2}), "
                            f"the coherence block of --fading-per frame (default {dflt})")
    return g


def _frame_len_from_log2(text: str) -> int:
    """argparse type of ``--frame-len-log2``: ``N`` -> ``2**N`` payload symbols, N within the frame format's
    range."""
    n = int(text)
    if not MIN_FRAME_LEN_LOG2 <= n <= MAX_FRAME_LEN_LOG2:
        raise argparse.ArgumentTypeError(f"must be {MIN_FRAME_LEN_LOG2}..{MAX_FRAME_LEN_LOG2}, got {n}")
    return 1 << n


def channel_from_args(args: argparse.Namespace, snr_db: float, cls=None, **fixed) -> SymbolChannel:
    """The channel of parsed :func:`add_channel_arguments` flags at Es/N0 ``snr_db`` (dB): a ``cls``
    (default :class:`SymbolChannel`; or a subclass, e.g. ``receiver_server.simlink.ChannelSpec``) whose fields
    without a flag keep ``cls``'s defaults unless ``fixed`` sets them (e.g. ``snr_mode="average"``).  Bad
    values raise ``ValueError``."""
    kw = {k: getattr(args, k) for k in ("fading", "fading_per", "snr_mode", "frame_len") if hasattr(args, k)}
    kw.update(fixed)
    return (cls or SymbolChannel)(snr_db=snr_db, **kw)
