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


# ------------------------------------------------------------------------------------ symbol-level channel
def _unit_qpsk(n):
    return np.full(n, (1 + 1j) / np.sqrt(2), np.complex64)


def test_symbol_channel_modes():
    rng = np.random.default_rng(5)
    x = _unit_qpsk(200_000)
    n0 = 10 ** -0.3
    # instantaneous, per image: equalised noise variance is exactly 1/snr
    rx = ch.SymbolChannel(3.0, "block", "image", "instantaneous")(x, rng)
    assert rx.noise_var == pytest.approx(n0) and rx.snr_db == pytest.approx(3.0)
    assert np.mean(np.abs(rx.y - x) ** 2) == pytest.approx(rx.noise_var, rel=0.02)
    # average, per frame: per-symbol noise variance N0/|h|^2 matches the realised error power per frame
    rx = ch.SymbolChannel(3.0, "block", "frame", "average", frame_len=20_000)(x, rng)
    nv = rx.noise_var
    assert nv.shape == x.shape and nv.dtype == np.float32 and len(np.unique(nv)) == 10
    for f in range(10):
        sl = slice(f * 20_000, (f + 1) * 20_000)
        assert np.mean(np.abs(rx.y[sl] - x[sl]) ** 2) == pytest.approx(nv[sl][0], rel=0.06)
    g = n0 / nv
    assert rx.snr_db == pytest.approx(10 * np.log10(g.mean()) + 3.0)
    # instantaneous per frame: gains normalised to mean 1 -> reported SNR is the nominal one
    rx = ch.SymbolChannel(3.0, "block", "frame", "instantaneous", frame_len=30_000)(x, rng)
    assert len(np.unique(rx.noise_var)) == 7                       # 6 full frames + a short last one
    assert np.mean(n0 / rx.noise_var) == pytest.approx(1.0) and rx.snr_db == pytest.approx(3.0)
    # no fading: AWGN, scalar N0, nominal SNR
    rx = ch.SymbolChannel(-2.0)(x, rng)
    assert rx.noise_var == pytest.approx(10 ** 0.2) and rx.snr_db == -2.0
    assert np.mean(np.abs(rx.y - x) ** 2) == pytest.approx(rx.noise_var, rel=0.02)


def test_symbol_channel_draw_order_is_coefficients_then_noise():
    # the documented draws: n_blocks coefficients (rayleigh_coeffs), then awgn over all symbols
    x = _unit_qpsk(5000)
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    rx = ch.SymbolChannel(1.0, "block", "frame", "average", frame_len=1000)(x, a)
    h = ch.rayleigh_coeffs(5, b)
    h_sym = np.repeat(h.astype(np.complex128), 1000).astype(np.complex64)
    r = ch.awgn(x * h_sym, 1.0, b)
    assert np.array_equal(rx.y, (r / h_sym).astype(np.complex64))
    assert np.array_equal(rx.fading.h, h.astype(np.complex128))
    assert a.random() == b.random()                               # nothing else was drawn
    # no fading draws no coefficient: plain awgn
    a, b = np.random.default_rng(4), np.random.default_rng(4)
    assert np.array_equal(ch.SymbolChannel(1.0)(x, a).y, ch.awgn(x, 1.0, b))


@pytest.mark.parametrize("per", ["image", "frame"])
def test_realised_snr_statistics_in_average_mode(per):
    # average mode: E[10**(inst/10)] = Es/N0 and the realised gain is exponential (Rayleigh power)
    rng = np.random.default_rng(11)
    chan = ch.SymbolChannel(4.0, "block", per, "average", frame_len=16)
    x = _unit_qpsk(64)
    n_att = 4000
    g = np.array([ch.db_to_lin(chan(x, rng).snr_db - 4.0) for _ in range(n_att)])
    # mean of one exponential gain (per image) or of 4 (per frame): mean 1, std 1/sqrt(k)
    k = 1 if per == "image" else 4
    assert abs(g.mean() - 1.0) < 4 / np.sqrt(k * n_att)
    if per == "image":
        assert abs(np.mean(g < 0.1) - (1 - np.exp(-0.1))) < 4 * np.sqrt(0.1 / n_att)
    else:                                                          # Gamma(4, 1/4): P(mean < 0.25) = 0.01899
        assert abs(np.mean(g < 0.25) - 0.018988) < 4 * np.sqrt(0.019 / n_att)
    # instantaneous mode: every attempt realises exactly the nominal Es/N0
    inst = ch.SymbolChannel(4.0, "block", per, "instantaneous", frame_len=16)
    assert all(inst(x, rng).snr_db == pytest.approx(4.0, abs=1e-9) for _ in range(50))


def test_per_frame_coefficient_boundaries_and_segments():
    chan = ch.SymbolChannel(0.0, "block", "frame", "average", frame_len=4)
    assert ch.SymbolChannel(0.0, "block", "frame", frame_len=4).block_bounds(10).tolist() == [0, 4, 8, 10]
    assert ch.SymbolChannel(0.0, "block", "image", frame_len=4).block_bounds(10).tolist() == [0, 10]
    assert ch.SymbolChannel(0.0, frame_len=4).block_bounds(10).tolist() == [0, 10]
    rx = chan(_unit_qpsk(10), np.random.default_rng(2))
    nv = rx.noise_var
    # constant inside each frame, a new value exactly at symbols 4 and 8
    assert [len(set(nv[s:e])) for s, e in [(0, 4), (4, 8), (8, 10)]] == [1, 1, 1]
    assert nv[3] != nv[4] and nv[7] != nv[8]
    assert np.allclose(nv, np.repeat(rx.n0 / rx.fading.gains, [4, 4, 2]))
    # a frame inside one block: scalar noise variance and its own Es/N0; across blocks: per symbol
    y, v, s = rx.segment(4, 8)
    assert np.array_equal(y, rx.y[4:8]) and isinstance(v, float) and v == pytest.approx(nv[4])
    assert s == pytest.approx(10 * np.log10(rx.fading.gains[1]))
    y, v, s = rx.segment(2, 6)
    assert np.array_equal(v, nv[2:6]) and s == pytest.approx(10 * np.log10(rx.fading.gains[:2].mean()))
    with pytest.raises(ValueError):
        rx.segment(8, 11)
    # instantaneous: a short last frame counts by its length (symbol-weighted mean gain 1)
    f = ch.SymbolChannel(0.0, "block", "frame", "instantaneous", frame_len=4).draw(10, np.random.default_rng(2))
    assert np.sum(f.gains * [4, 4, 2]) / 10 == pytest.approx(1.0)
    assert f.mean_gain() == pytest.approx(1.0)


def test_deep_fade_floor_is_on_power_and_used_by_fade_and_equaliser(monkeypatch):
    h = np.array([0, 1e-4, 3e-4j, -2e-3, 0.5 + 0.5j], np.complex64)
    f = ch.floor_gain(h)
    assert f.dtype == np.complex64 and np.array_equal(h[3:], f[3:])          # |h|^2 >= 1e-6 untouched
    assert np.allclose(np.abs(f[:3]) ** 2, ch.GAIN_FLOOR, rtol=1e-5)
    assert np.allclose(np.angle(f[1:3]), np.angle(h[1:3]))                 # phase kept
    assert ch.GAIN_FLOOR == 1e-6
    # a channel that draws a zero and a -100 dB coefficient: transmitted fade, equaliser and noise variance
    # all use the floored value, so y and noise_var stay finite and consistent
    monkeypatch.setattr(ch, "rayleigh_coeffs", lambda n, rng: np.array([0, 1e-5j, 1], np.complex64)[:n])
    x = _unit_qpsk(30_000)
    rx = ch.SymbolChannel(10.0, "block", "frame", "average", frame_len=10_000)(x, np.random.default_rng(0))
    assert np.all(np.isfinite(rx.y)) and np.all(np.isfinite(rx.noise_var))
    assert np.allclose(rx.fading.gains, [1e-6, 1e-6, 1.0])
    for b in range(3):
        sl = slice(b * 10_000, (b + 1) * 10_000)
        assert np.mean(np.abs(rx.y[sl] - x[sl]) ** 2) == pytest.approx(rx.noise_var[sl][0], rel=0.05)
    nl = ch.SymbolChannel(np.inf, "block", "frame", "average", frame_len=10_000)(x, np.random.default_rng(0))
    assert np.max(np.abs(nl.y - x)) < 1e-5 and np.all(nl.noise_var[:20_000] == np.float32(1e-4))


def test_noiseless_channel():
    x = _unit_qpsk(1000)
    rng = np.random.default_rng(8)
    state = rng.bit_generator.state
    rx = ch.SymbolChannel(np.inf)(x, rng)
    assert rng.bit_generator.state == state                       # no noise drawn
    assert np.array_equal(rx.y, x) and rx.noise_var == ch.NOISELESS_VAR and rx.snr_db == pytest.approx(100.0)
    rx = ch.SymbolChannel(np.inf, "block", "image", "average")(x, rng)
    g = float(rx.fading.gains[0])
    assert np.max(np.abs(rx.y - x)) < 1e-5
    assert rx.noise_var == pytest.approx(ch.NOISELESS_VAR / g) and rx.snr_db == pytest.approx(100 + 10 * np.log10(g))
    with pytest.raises(ValueError):
        ch.awgn(x, np.inf, rng)                                    # the sample-level AWGN stays finite-only


def test_db_helpers():
    assert ch.db_to_lin(10.0) == pytest.approx(10.0) and ch.db_to_lin(-3.0) == pytest.approx(0.501187, rel=1e-5)
    assert ch.lin_to_db(100.0) == pytest.approx(20.0) and isinstance(ch.lin_to_db(2.0), float)
    assert ch.db_to_lin(np.inf) == np.inf and ch.db_to_lin(-np.inf) == 0.0
    assert ch.lin_to_db(0.0) == -np.inf and ch.lin_to_db(np.inf) == np.inf
    v = np.array([-10.0, 0.0, 7.5])
    assert np.allclose(ch.lin_to_db(ch.db_to_lin(v)), v)
    assert ch.lin_to_db(np.array([0.0, 1.0])).tolist() == [-np.inf, 0.0]
    with pytest.raises(ValueError):
        ch.lin_to_db(-1.0)
    # the channel's N0 is the awgn() noise variance: 1 / 10**(snr/10)
    assert ch.SymbolChannel(-4.0).n0 == 1.0 / 10.0 ** (-4.0 / 10.0)


@pytest.mark.parametrize("kwargs", [{"snr_db": float("nan")}, {"snr_db": -np.inf}, {"snr_db": "x"},
                                    {"fading": "awgn"}, {"fading": "rayleigh"}, {"fading_per": "attempt"},
                                    {"snr_mode": "normalised"}, {"frame_len": 0}, {"frame_len": 2.5},
                                    {"frame_len": True}])
def test_symbol_channel_rejects_bad_fields(kwargs):
    args = {"snr_db": 0.0}
    args.update(kwargs)
    with pytest.raises(ValueError):
        ch.SymbolChannel(**args)


def test_symbol_channel_rejects_mismatched_realisation():
    chan = ch.SymbolChannel(0.0, "block", "frame", frame_len=8)
    f = chan.draw(16, np.random.default_rng(0))
    with pytest.raises(ValueError, match="drawn for 16"):
        chan.apply(_unit_qpsk(17), f, np.random.default_rng(0))
    with pytest.raises(ValueError):
        chan.draw(16, 3)


def test_channel_flags_are_one_definition():
    import argparse

    from infercom import frame, simulate

    assert ch.default_frame_len() == frame.FrameFormat().frame_len == 32768
    p = argparse.ArgumentParser()
    ch.add_channel_arguments(p)
    a = p.parse_args([])
    assert (a.fading, a.fading_per, a.snr_mode, a.frame_len) == ("none", "image", "instantaneous", None)
    c = ch.channel_from_args(p.parse_args(["--fading", "block", "--fading-per", "frame", "--frame-len-log2", "6",
                                           "--snr-mode", "average"]), -3.0)
    assert c == ch.SymbolChannel(-3.0, "block", "frame", "average", 64) and c.block_len == 64
    for bad in (["--fading", "awgn"], ["--fading-per", "attempt"], ["--snr-mode", "peak"], ["--frame-len-log2", "3"],
                ["--frame-len-log2", "17"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)
    # a CLI without --snr-mode / --frame-len-log2 fixes them; simulate's flags are these
    q = argparse.ArgumentParser()
    ch.add_channel_arguments(q, fading="block", snr_mode=None, with_frame_len=False)
    b = q.parse_args([])
    assert not hasattr(b, "snr_mode") and not hasattr(b, "frame_len")
    assert ch.channel_from_args(b, 1.0, snr_mode="average") == ch.SymbolChannel(1.0, "block", "image", "average")
    s = argparse.ArgumentParser()
    simulate.add_arguments(s)
    acts = {a.dest: a for a in s._actions}
    assert tuple(acts["fading"].choices) == ch.FADINGS and tuple(acts["fading_per"].choices) == ch.FADING_PER
    assert tuple(acts["snr_mode"].choices) == ch.SNR_MODES


def test_every_consumer_gets_the_same_channel_output():
    """simulate, degrade, the server's simulated transmitter and the channel itself: bit-identical for the same
    generator (the training data, `infercom simulate` and the server's transmitters cannot drift apart)."""
    from infercom import degrade, link, simulate

    img = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    cfg = link.LinkConfig(bh=2, bw=2)
    x, lay = link.encode_image(img, cfg)
    for fading, per, mode in [("none", "image", "instantaneous"), ("block", "image", "average"),
                              ("block", "frame", "instantaneous"), ("block", "frame", "average")]:
        chan = ch.SymbolChannel(1.5, fading, per, mode, frame_len=512)
        rx = chan(x, np.random.default_rng(21))
        # degrade: the observation is the link's MMSE decoding of exactly this channel output
        d = degrade.degrade(img, cfg, 1.5, np.random.default_rng(21), fading=fading, fading_per=per,
                            snr_mode=mode, frame_len=512, keep_llr=True)
        nv = np.broadcast_to(np.float32(rx.noise_var), x.shape) if np.isscalar(rx.noise_var) else rx.noise_var
        assert np.array_equal(d.llr, link.soft_to_llr(rx.y, nv, lay, cfg)), (fading, per, mode)
        assert d.snr_db == pytest.approx(rx.snr_db, abs=1e-9)
        # simulate: its reconstruction is the same decoding
        r = simulate.simulate_image(img, cfg, chan, np.random.default_rng(21), final_metrics=False,
                                    keep_image=True)
        low = link.llr_to_lowres(link.soft_to_llr(rx.y, rx.noise_var, lay, cfg), lay, cfg, "mmse")
        assert np.array_equal(r["_image"], link.upsample(low, lay))
        assert r["inst_snr_db"] == pytest.approx(rx.snr_db, abs=1e-12)
    pytest.importorskip("zmq")
    from receiver_server.simlink import ChannelSpec, frames_through

    for fading, per in [("none", "image"), ("block", "image"), ("block", "frame")]:
        spec = ChannelSpec(snr_db=1.5, fading=fading, fading_per=per)            # snr_mode "average"
        rx = ch.SymbolChannel(1.5, fading, per, "average", frame_len=512)(x, np.random.default_rng(5))
        got = list(frames_through(spec, x, range(-(-x.size // 512)), 512, np.random.default_rng(5)))
        assert np.array_equal(np.concatenate([out[0] for _, out in got]), rx.y)
        nv = np.broadcast_to(np.asarray(rx.noise_var, np.float64), x.shape)
        for i, (y, v, s) in got:
            b = i if (fading, per) == ("block", "frame") else 0                 # frame i = coefficient block i
            assert isinstance(v, float) and v == pytest.approx(nv[i * 512], rel=1e-6)
            assert s == pytest.approx(1.5 + 10 * np.log10(rx.fading.gains[b]))


def test_simlink_channel_spec_is_the_symbol_channel():
    pytest.importorskip("zmq")
    from receiver_server.simlink import ChannelSpec, frames_through

    spec = ChannelSpec()
    assert isinstance(spec, ch.SymbolChannel)
    assert (spec.snr_db, spec.fading, spec.fading_per, spec.snr_mode, spec.frame_loss) == (
        10.0, "none", "image", "average", 0.0)
    for bad in ({"snr_db": -40.0}, {"snr_db": float("nan")}, {"fading": "block-frame"}, {"frame_loss": 1.0}):
        with pytest.raises(ValueError):
            ChannelSpec(**bad)
    x = _unit_qpsk(2048)
    with pytest.raises(ValueError, match="transmitter"):
        list(frames_through(ChannelSpec(frame_len=1024), x, range(4), 512, np.random.default_rng(0)))
    # noiseless: every frame reported at the protocol's 100 dB ceiling with NOISELESS_VAR / |h|^2
    got = list(frames_through(ChannelSpec(snr_db=np.inf), x, range(4), 512, np.random.default_rng(0)))
    assert all(np.array_equal(y, x[:512]) and v == ch.NOISELESS_VAR and s == 100.0 for _, (y, v, s) in got)
    # frame losses: drawn after the channel, one uniform per frame sent; the delivered frames are unchanged
    lossy = list(frames_through(ChannelSpec(snr_db=3.0, frame_loss=0.5), x, range(4), 512,
                                np.random.default_rng(1)))
    clean = list(frames_through(ChannelSpec(snr_db=3.0), x, range(4), 512, np.random.default_rng(1)))
    assert any(out is None for _, out in lossy) and any(out is not None for _, out in lossy)
    for (i, a), (_, b) in zip(lossy, clean):
        assert a is None or np.array_equal(a[0], b[0])


# ------------------------------------------------------------------------------ radio front-end impairments
def test_oscillator_offsets_tie_cfo_and_sfo_to_one_ppm():
    cfo, ratio = ch.oscillator_offsets(4.0, 2.4e9, 2e6)
    assert cfo == pytest.approx(4e-6 * 2.4e9 / 2e6, rel=1e-12)      # 9.6 kHz at 2 MS/s
    assert ratio == pytest.approx(1 + 4e-6, rel=1e-15)
    cfo_n, ratio_n = ch.oscillator_offsets(-4.0, 2.4e9, 2e6)
    assert cfo_n == pytest.approx(-cfo) and ratio_n == pytest.approx(1 - 4e-6, rel=1e-15)
    for bad in ((1e3, 1e9, 1e6), (1.0, 1e9, 0.0), (float("nan"), 1e9, 1e6), (1.0, -1.0, 1e6)):
        with pytest.raises(ValueError):
            ch.oscillator_offsets(*bad)


@pytest.mark.parametrize("ratio", [1 + 4e-6, 1 + 1e-3, 1 - 2e-3])
def test_resample_ratio_scales_a_tone_and_the_length(ratio):
    n, f0 = 40_000, 0.05
    x = np.exp(2j * np.pi * f0 * np.arange(n)).astype(np.complex64)
    y = ch.resample(x, ratio, 0.25)
    assert y.dtype == np.complex64 and y.size == int(np.floor((n - 1 - 0.25) / ratio)) + 1
    k = np.arange(200, y.size - 200)
    ref = np.exp(2j * np.pi * f0 * (0.25 + k * ratio))                # y[k] = x(mu0 + k*ratio)
    assert np.max(np.abs(y[k] - ref)) < 1e-3
    # the tone's frequency per output sample is f0 * ratio (what a receiver sees of a fast TX clock)
    f_meas = np.angle(np.sum(y[k[1:]] * np.conj(y[k[:-1]]))) / (2 * np.pi)
    assert f_meas == pytest.approx(f0 * ratio, rel=1e-6)


def test_resample_unity_ratio_is_fractional_delay(rng):
    x = ch.pulse_shape(_qpsk(2000, rng), 2, ch.rrc_taps(2))
    y = ch.resample(x, 1.0, 3.3)
    d = ch.fractional_delay(x, -3.3)                                     # y[n] = x(n + 3.3)
    # (the two centre their 33-tap windows on different samples: equal to ~-75 dB, not bit-exact)
    assert np.max(np.abs(y[50:-50] - d[50:y.size - 50])) < 1e-3
    assert np.allclose(ch.resample(x, 1.0, 0.0), x, atol=1e-6)                # integer positions: the samples
    with pytest.raises(ValueError):
        ch.resample(x, 3.0)
    with pytest.raises(ValueError):
        ch.resample(x, 1.0, -1.0)


def test_wiener_phase_variance_grows_linearly(rng):
    lw, fs, n, runs = 50.0, 1e5, 2000, 400
    ph = np.stack([ch.wiener_phase(n, lw, fs, rng) for _ in range(runs)])
    d = ph - ph[:, :1]
    var = np.var(d, axis=0)
    for lag in (100, 500, 1999):
        theory = 2 * np.pi * lw * lag / fs
        assert var[lag] == pytest.approx(theory, rel=0.25), (lag, var[lag], theory)
    inc = np.diff(ph, axis=1)
    assert np.var(inc) == pytest.approx(2 * np.pi * lw / fs, rel=0.02)
    assert abs(np.corrcoef(inc[:, 1:].ravel(), inc[:, :-1].ravel())[0, 1]) < 0.01   # independent increments
    assert np.all(ch.wiener_phase(10, 0.0, fs, rng, 0.3) == 0.3)
    x = np.ones(1000, np.complex64)
    y = ch.apply_phase_noise(x, lw, fs, np.random.default_rng(2))
    assert np.allclose(np.abs(y), 1, atol=1e-6)
    assert np.allclose(np.angle(y), np.angle(np.exp(1j * ch.wiener_phase(1000, lw, fs, np.random.default_rng(2)))),
                       atol=1e-5)
    with pytest.raises(ValueError):
        ch.wiener_phase(10, -1.0, fs, rng)


@pytest.mark.parametrize("gain_db,phase_deg", [(0.5, 3.0), (-1.0, -7.0), (0.0, 0.0)])
def test_iq_imbalance_measured_from_the_output(rng, gain_db, phase_deg):
    n = 400_000
    x = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)
    y = ch.iq_imbalance(x, gain_db, phase_deg)
    g_meas = 10 * np.log10(np.mean(y.real.astype(float) ** 2) / np.mean(y.imag.astype(float) ** 2))
    rho = np.mean(y.real.astype(float) * y.imag) / np.sqrt(np.mean(y.real.astype(float) ** 2) * np.mean(y.imag ** 2))
    assert g_meas == pytest.approx(gain_db, abs=0.03)
    assert np.degrees(np.arcsin(rho)) == pytest.approx(phase_deg, abs=0.3)
    # the widely-linear form y = K1 x + K2 conj(x): the image power |K2/K1|^2 from the output
    k1 = np.vdot(x, y) / np.vdot(x, x)
    k2 = np.vdot(np.conj(x), y) / np.vdot(x, x)
    g, p = 10 ** (gain_db / 20), np.radians(phase_deg)
    assert k1 == pytest.approx((g * np.exp(-1j * p) + 1) / 2, abs=5e-3)
    assert k2 == pytest.approx((g * np.exp(1j * p) - 1) / 2, abs=5e-3)
    assert np.array_equal(y.imag, x.imag)
    with pytest.raises(ValueError):
        ch.iq_imbalance(x[:10], 0.0, 90.0)


def test_dc_offset_level_and_angle(rng):
    n = 200_000
    x = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)
    dc = ch.dc_offset_value(-30.0, 45.0, 0.5)
    assert 10 * np.log10(abs(dc) ** 2 / 0.5) == pytest.approx(-30.0, abs=1e-9)
    assert np.degrees(np.angle(dc)) == pytest.approx(45.0)
    y = ch.dc_offset(x, -10.0, -120.0, 0.5)
    est = np.mean(y)                                   # the DC is the output's mean (the input is zero mean)
    ref = ch.dc_offset_value(-10.0, -120.0, 0.5)
    assert abs(est - ref) < 4 / np.sqrt(n)
    assert np.allclose(y - x, ref, atol=1e-6)
    assert ch.dc_offset_value(-np.inf) == 0
    with pytest.raises(ValueError):
        ch.dc_offset_value(np.nan)
