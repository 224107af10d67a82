# SPDX-License-Identifier: GPL-3.0-or-later
"""Channel models: noise calibration at symbol and sample level, fading, CFO, fractional delay, RRC."""

from __future__ import annotations

import numpy as np
import pytest

from infercom import channel as ch


def _qpsk(n, rng):
    b = rng.integers(0, 2, size=(2, n))
    return (((1 - 2 * b[0]) + 1j * (1 - 2 * b[1])) / np.sqrt(2)).astype(np.complex64)


@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 7.0])
def test_awgn_noise_variance(rng, snr_db):
    x = np.zeros(200_000, dtype=np.complex64)
    y = ch.awgn(x, snr_db, rng)
    assert y.dtype == np.complex64 and y.shape == x.shape
    n0 = 10 ** (-snr_db / 10)
    var = np.mean(np.abs(y) ** 2)
    # standard error of the mean of |n|^2 (exponential) is n0/sqrt(N)
    assert abs(var - n0) < 4 * n0 / np.sqrt(x.size)
    # both dimensions carry half the noise, uncorrelated
    assert abs(np.mean(y.real**2) - n0 / 2) < 4 * n0 / np.sqrt(x.size)
    assert abs(np.mean(y.real * y.imag)) < 4 * n0 / np.sqrt(x.size)
    # signal_power scales the reference
    y2 = ch.awgn(x, snr_db, rng, signal_power=4.0)
    assert abs(np.mean(np.abs(y2) ** 2) / (4 * n0) - 1) < 0.05


def test_awgn_is_seeded():
    x = np.ones(100, dtype=np.complex64)
    a = ch.awgn(x, 3, np.random.default_rng(7))
    b = ch.awgn(x, 3, np.random.default_rng(7))
    assert np.array_equal(a, b)


def test_rrc_taps_unit_energy_symmetric_nyquist():
    for sps in (2, 4, 8):
        t = ch.rrc_taps(sps, 0.35, 8)
        assert t.dtype == np.float32 and t.size == 8 * sps + 1
        assert abs(np.sum(t.astype(np.float64) ** 2) - 1) < 1e-5
        assert np.allclose(t, t[::-1], atol=1e-7)
        rc = np.convolve(t, t)
        c = rc.size // 2
        assert abs(rc[c] - 1) < 1e-5
        others = rc[c % sps :: sps]
        others = np.delete(others, c // sps)
        # truncated RRC: residual ISI well below the -10 dB operating point
        assert np.max(np.abs(others)) < 0.02


@pytest.mark.parametrize("snr_db", [-8.0, 0.0, 6.0])
def test_sample_level_calibration_after_matched_filter(rng, snr_db):
    """RRC (unit energy) + awgn on samples at snr_db -> Es/N0 = snr_db after the matched filter."""
    sps = 2
    taps = ch.rrc_taps(sps)
    sym = _qpsk(60_000, rng)
    tx = ch.pulse_shape(sym, sps, taps)
    assert tx.size == sym.size * sps + taps.size - 1
    # mean sample power is Es/sps
    mid = tx[taps.size : -taps.size]
    assert abs(np.mean(np.abs(mid) ** 2) - 1 / sps) < 0.02
    rx = ch.awgn(tx, snr_db, rng)
    mf = ch.matched_filter(rx, taps)
    d = taps.size - 1
    y = mf[d : d + sym.size * sps : sps]
    assert y.size == sym.size
    err = y - sym
    n0_meas = np.mean(np.abs(err[10:-10]) ** 2)
    n0 = 10 ** (-snr_db / 10)
    # within 3 % (ISI of the truncated RRC is far below the noise at these SNRs)
    assert abs(n0_meas / n0 - 1) < 0.03
    # signal gain through TX+MF is exactly 1: regression of y on sym
    g = np.vdot(sym, y) / np.vdot(sym, sym)
    assert abs(g - 1) < 3 * np.sqrt(n0 / sym.size) + 1e-3


def test_rayleigh_coeffs_statistics(rng):
    h = ch.rayleigh_coeffs(100_000, rng)
    assert h.dtype == np.complex64 and h.shape == (100_000,)
    assert abs(np.mean(np.abs(h) ** 2) - 1) < 0.02
    assert abs(np.mean(np.abs(h)) - np.sqrt(np.pi) / 2) < 0.01
    assert abs(np.mean(h)) < 0.02
    # P(|h|^2 < 0.1) = 1 - exp(-0.1)
    assert abs(np.mean(np.abs(h) ** 2 < 0.1) - (1 - np.exp(-0.1))) < 0.005
    with pytest.raises(ValueError):
        ch.rayleigh_coeffs(-1, rng)


def test_block_fading():
    x = np.ones(10, dtype=np.complex64)
    y = ch.block_fading(x, [1, 2j, 3], block_len=4)
    assert np.allclose(y, [1] * 4 + [2j] * 4 + [3] * 2)
    assert np.allclose(ch.block_fading(x, 0.5j), 0.5j)
    with pytest.raises(ValueError, match="coefficients"):
        ch.block_fading(x, [1, 2], block_len=4)
    with pytest.raises(ValueError):
        ch.block_fading(x, [1, 2])
    with pytest.raises(ValueError):
        ch.block_fading(x, [1], block_len=0)


def test_apply_cfo_phase_ramp_and_inverse(rng):
    x = _qpsk(5000, rng)
    y = ch.apply_cfo(x, 0.01, phase0=0.3)
    ph = np.angle(y * np.conj(x))
    expect = np.angle(np.exp(1j * (2 * np.pi * 0.01 * np.arange(5000) + 0.3)))
    assert np.max(np.abs(np.angle(np.exp(1j * (ph - expect))))) < 1e-4
    back = ch.apply_cfo(y, -0.01, phase0=-0.3)
    assert np.max(np.abs(back - x)) < 1e-4
    # long bursts keep exact phase (float64 ramp)
    z = ch.apply_cfo(np.ones(3_000_000, np.complex64), 1e-3)
    assert abs(np.angle(z[-1] * np.exp(-2j * np.pi * 1e-3 * (z.size - 1)))) < 1e-4


def test_fractional_delay_integer_exact(rng):
    x = _qpsk(100, rng)
    y = ch.fractional_delay(x, 3.0)
    assert np.array_equal(y[3:], x[:-3]) and np.all(y[:3] == 0)
    y = ch.fractional_delay(x, -2.0)
    assert np.array_equal(y[:-2], x[2:]) and np.all(y[-2:] == 0)
    assert np.array_equal(ch.fractional_delay(x, 0.0), x)


@pytest.mark.parametrize("delay", [0.25, 0.5, 3.7, -1.3])
def test_fractional_delay_matches_analytic_shift(rng, delay):
    """An RRC-shaped burst delayed by the filter equals the same burst synthesised at the shifted instants."""
    sps = 2
    sym = _qpsk(400, rng)
    n = np.arange(sym.size * sps + 200, dtype=np.float64)
    beta = 0.35

    def rrc(t):  # continuous RRC in symbol units (unnormalised)
        t = np.asarray(t, dtype=np.float64)
        out = np.empty_like(t)
        z = np.abs(t) < 1e-9
        s = np.abs(np.abs(4 * beta * t) - 1) < 1e-9
        o = ~(z | s)
        out[z] = 1 - beta + 4 * beta / np.pi
        out[s] = (beta / np.sqrt(2)) * (
            (1 + 2 / np.pi) * np.sin(np.pi / (4 * beta)) + (1 - 2 / np.pi) * np.cos(np.pi / (4 * beta))
        )
        to = t[o]
        out[o] = (np.sin(np.pi * to * (1 - beta)) + 4 * beta * to * np.cos(np.pi * to * (1 + beta))) / (
            np.pi * to * (1 - (4 * beta * to) ** 2)
        )
        return out

    def synth(shift):
        s = np.zeros(n.size, dtype=np.complex128)
        for k, a in enumerate(sym):
            c = 100 + k * sps + shift
            lo, hi = int(max(0, c - 16 * sps)), int(min(n.size, c + 16 * sps))
            s[lo:hi] += a * rrc((n[lo:hi] - c) / sps)
        return s

    x = synth(0.0).astype(np.complex64)
    want = synth(delay)
    got = ch.fractional_delay(x, delay)
    sl = slice(80, n.size - 80)
    err = np.mean(np.abs(got[sl] - want[sl]) ** 2) / np.mean(np.abs(want[sl]) ** 2)
    assert err < 1e-4  # better than -40 dB


@pytest.mark.parametrize("sps", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("span", [2, 8])
def test_pulse_shape_equals_zero_stuffed_convolution(rng, sps, span):
    """The polyphase kernel against the definition (zero-stuff, full float64 convolution), at the edges too:
    lengths shorter than the filter, one block (2048 slots) and more than one."""
    taps = ch.rrc_taps(sps, 0.35, span)
    for n in (0, 1, 3, span + 1, 2047, 2048, 5001):
        sym = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
        up = np.zeros(n * sps, np.complex128)
        up[::sps] = sym
        want = np.convolve(up, taps.astype(np.float64)) if n else np.zeros(taps.size - 1)
        got = ch.pulse_shape(sym, sps, taps)
        assert got.dtype == np.complex64 and got.shape == want.shape
        assert np.max(np.abs(got - want), initial=0.0) < 1e-5
    strided = (rng.standard_normal(64) + 1j * rng.standard_normal(64)).astype(np.complex64)[::2]
    assert np.array_equal(ch.pulse_shape(strided, sps, taps), ch.pulse_shape(strided.copy(), sps, taps))


def test_pulse_shape_peaks_and_bad_input(rng):
    taps = ch.rrc_taps(4)
    sym = np.zeros(20, np.complex64)
    sym[5] = 1
    y = ch.pulse_shape(sym, 4, taps)
    assert int(np.argmax(np.abs(y))) == 5 * 4 + (taps.size - 1) // 2
    with pytest.raises(ValueError):
        ch.pulse_shape(np.ones((2, 2)), 2, taps)
    with pytest.raises(ValueError, match="NaN"):
        ch.awgn(np.array([np.nan], np.complex64), 0, rng)
    with pytest.raises(ValueError):
        ch.awgn(np.ones(4), float("inf"), rng)
    with pytest.raises(ValueError):
        ch.rrc_taps(0)
    with pytest.raises(ValueError):
        ch.rrc_taps(2, beta=0)
    with pytest.raises(ValueError):
        ch.apply_cfo(np.ones(4), float("nan"))
