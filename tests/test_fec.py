# SPDX-License-Identifier: GPL-3.0-or-later
"""Convolutional code (133,171) and soft Viterbi: numba kernel vs numpy reference, error correction."""

from __future__ import annotations

import numpy as np
import pytest

from infercom import fec


def test_encoder_known_response():
    # impulse response of the (133,171) code: the generator taps interleaved
    c = fec.encode(np.array([1, 0, 0, 0, 0, 0, 0], np.uint8))
    g0 = [int(b) for b in format(0o133, "07b")]
    g1 = [int(b) for b in format(0o171, "07b")]
    assert list(c[0:14:2]) == g0 and list(c[1:14:2]) == g1
    assert c.size == fec.coded_len(7) == 26 and not c[14:].any()


def test_viterbi_matches_reference_and_corrects(rng):
    for trial in range(20):
        b = rng.integers(0, 2, 112).astype(np.uint8)
        c = fec.encode(b)
        llr = (1 - 2 * c.astype(np.float32)) * 2 + rng.standard_normal(c.size).astype(np.float32) * 1.6
        d = fec.viterbi(llr, 112)
        assert np.array_equal(d, fec.viterbi_ref(llr, 112))
    # noiseless with up to 2 strong errors anywhere (free distance 10) is always corrected
    b = rng.integers(0, 2, 112).astype(np.uint8)
    c = fec.encode(b)
    for _ in range(50):
        llr = (1 - 2 * c.astype(np.float32))
        idx = rng.choice(c.size, 2, replace=False)
        llr[idx] *= -1
        assert np.array_equal(fec.viterbi(llr, 112), b)


def test_viterbi_coding_gain(rng):
    """At Eb/N0 = 4 dB (coded BPSK) the K=7 code has bit error rate < 1e-3 (uncoded: 1.2e-2)."""
    ebn0 = 10 ** 0.4
    n, trials, errs = 112, 300, 0
    for _ in range(trials):
        b = rng.integers(0, 2, n).astype(np.uint8)
        c = fec.encode(b)
        es = ebn0 * n / c.size  # energy per coded bit / N0
        sigma2 = 1 / (2 * es)
        y = (1 - 2 * c.astype(np.float64)) + rng.standard_normal(c.size) * np.sqrt(sigma2)
        errs += int(np.sum(fec.viterbi((2 * y / sigma2).astype(np.float32), n) != b))
    assert errs / (n * trials) < 1e-3


def test_combine_and_bad_input():
    llr = np.arange(12, dtype=np.float32)
    assert np.array_equal(fec.combine_repetitions(llr, 4), [12, 15, 18, 21])
    with pytest.raises(ValueError):
        fec.combine_repetitions(llr, 5)
    with pytest.raises(ValueError):
        fec.viterbi(np.zeros(10, np.float32), 112)
    with pytest.raises(ValueError, match="NaN"):
        fec.viterbi(np.full(fec.coded_len(3), np.nan, np.float32), 3)
    with pytest.raises(ValueError):
        fec.encode(np.array([0, 1, 2]))


def test_encoder_matches_state_machine_reference(rng):
    for n in (0, 1, 7, 96, 112):
        b = rng.integers(0, 2, n)
        assert np.array_equal(fec.encode(b), fec.encode_ref(b))
