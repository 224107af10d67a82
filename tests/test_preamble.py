# SPDX-License-Identifier: GPL-3.0-or-later
"""Preamble and pilots: structure, CAZAC segment, sharp differential timing peak."""

from __future__ import annotations

import numpy as np

from infercom import preamble as P


def test_frank_is_cazac():
    u = P.frank16()
    assert np.allclose(np.abs(u), 1)
    for k in range(1, 16):
        assert abs(np.vdot(u, np.roll(u, k))) < 1e-5  # perfect periodic autocorrelation
    assert np.allclose(np.abs(np.fft.fft(u)), 4)


def test_preamble_structure():
    p = P.preamble()
    assert p.size == P.PREAMBLE_LEN == 1024 and np.allclose(np.abs(p), 1)
    d = P.cover()
    assert set(np.unique(d)) <= {-1.0, 1.0}
    seg = p.reshape(P.N_SEG, P.SEG_LEN)
    assert np.allclose(seg, d[:, None] * P.frank16()[None, :])
    # deterministic
    assert np.array_equal(P.preamble(), p)


def test_differential_metric_has_single_sharp_peak():
    """D(offset) = sum_s e_s c_s conj(c_{s-1}) over symbol offsets: peak 63 at 0, all else <= 20 % of it."""
    p = P.preamble()
    rng = np.random.default_rng(1)
    data = ((1 - 2 * rng.integers(0, 2, (3000, 2))) @ np.array([1, 1j]) / np.sqrt(2)).astype(np.complex64)
    x = np.concatenate([data[:1500], p, data[1500:]])
    u = P.frank16()
    r = np.correlate(x, u, "valid")  # r[n] = sum_k x[n+k] conj(u_k)
    e = P.diff_cover()
    best = []
    for n in range(0, x.size - P.PREAMBLE_LEN):
        c = r[n: n + P.PREAMBLE_LEN: P.SEG_LEN]
        best.append(abs(np.sum(e * c[1:] * np.conj(c[:-1]))))
    best = np.array(best)
    assert int(np.argmax(best)) == 1500
    assert abs(best[1500] - 63 * 256) < 1e-2 * 256
    side = np.delete(best, 1500)
    assert side.max() < 0.2 * best[1500]
    # a tone gives nothing (cover sum is -1 of 63)
    t = np.exp(2j * np.pi * 0.013 * np.arange(4000)).astype(np.complex64)
    rt = np.correlate(t, u, "valid")
    c = rt[:P.PREAMBLE_LEN:P.SEG_LEN]
    assert abs(np.sum(e * c[1:] * np.conj(c[:-1]))) < 0.05 * 63 * np.mean(np.abs(c) ** 2)


def test_pilots():
    b0, b1 = P.pilot_block(0), P.pilot_block(1)
    assert b0.size == P.PILOT_LEN and np.allclose(np.abs(b0), 1)
    assert not np.allclose(b0, b1)
    s = P.pilot_symbols(300)
    assert s.size == 300 * 16 and np.array_equal(s[16 * 7:16 * 8], P.pilot_block(7))
    assert np.array_equal(P.pilot_block(4096 + 3), P.pilot_block(3))
    # balanced: mean close to zero over many blocks
    assert abs(np.mean(P.pilot_symbols(1000))) < 0.05
