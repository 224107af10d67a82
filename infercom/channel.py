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
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "awgn",
    "rayleigh_coeffs",
    "block_fading",
    "apply_cfo",
    "fractional_delay",
    "rrc_taps",
    "pulse_shape",
    "matched_filter",
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
