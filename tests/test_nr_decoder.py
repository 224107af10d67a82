# SPDX-License-Identifier: GPL-3.0-or-later
"""Layered min-sum decoder: numba kernel == numpy reference, decoding under AWGN, row skipping, threads."""

from __future__ import annotations

import numpy as np
import pytest

from infercom.nr.basegraph import lifted
from infercom.nr.decoder import decode, decode_numpy, rows_needed
from infercom.nr.ldpc import encode_full, syndrome_ok


def _bpsk_llrs(x, ebn0_db, rate, rng, punct=0):
    """BPSK (+1 for bit 0) over AWGN; exact LLRs 2y/sigma^2, the first ``punct`` bits punctured (LLR 0)."""
    sigma = np.sqrt(1.0 / (2.0 * rate * 10 ** (ebn0_db / 10)))
    y = (1.0 - 2.0 * x) + sigma * rng.standard_normal(x.shape)
    llr = (2.0 * y / sigma**2).astype(np.float32)
    llr[..., :punct] = 0
    return llr


@pytest.mark.parametrize("bg,z", [(1, 4), (1, 13), (2, 5), (2, 8), (2, 15)])
@pytest.mark.parametrize("alpha,beta", [(0.9, 0.3), (0.75, 0.0)])
def test_numba_matches_numpy_reference(bg, z, alpha, beta, rng):
    code = lifted(bg, z)
    c = rng.integers(0, 2, (12, code.K)).astype(np.uint8)
    x = encode_full(c, code)
    rate = code.K / (code.n_bits - 2 * z)
    # SNRs from hopeless to easy, so some words stop early, some run out of iterations
    llr = np.concatenate([_bpsk_llrs(x[i::3], eb, rate, rng, 2 * z) for i, eb in enumerate((-1.0, 1.5, 4.0))])
    for early in (True, False):
        for max_iter in (1, 7):
            a = decode(llr, code, max_iter=max_iter, alpha=alpha, beta=beta, early_stop=early)
            b = decode_numpy(llr, code, max_iter=max_iter, alpha=alpha, beta=beta, early_stop=early)
            assert a.m_rows == b.m_rows == code.m
            assert np.array_equal(a.bits, b.bits)
            assert np.array_equal(a.iterations, b.iterations)
            assert np.array_equal(a.ok, b.ok)
    # the mix really exercised both outcomes
    r = decode(llr, code, max_iter=7)
    assert r.ok.any() and not r.ok.all() and (r.iterations < 7).any()


def test_numba_matches_numpy_with_row_skipping(rng):
    code = lifted(1, 10)
    c = rng.integers(0, 2, (6, code.K)).astype(np.uint8)
    x = encode_full(c, code)
    llr = _bpsk_llrs(x, 2.0, 0.5, rng, 20)
    llr[:, 40 * 10:] = 0                                  # columns >= 40 never sent
    assert rows_needed(llr, code) == 18
    a, b = decode(llr, code, max_iter=8), decode_numpy(llr, code, max_iter=8)
    assert a.m_rows == b.m_rows == 18 and a.bits.shape == (6, 40 * 10)
    assert np.array_equal(a.bits, b.bits) and np.array_equal(a.iterations, b.iterations)


def test_skipped_rows_change_no_decision(rng):
    # rows whose degree-1 parity column was never transmitted pass zero messages: identical decisions
    code = lifted(1, 96)
    c = rng.integers(0, 2, (8, code.K)).astype(np.uint8)
    x = encode_full(c, code)
    llr = _bpsk_llrs(x, 1.2, 0.5, rng, 2 * 96)
    llr[:, 46 * 96:] = 0
    part = decode(llr, code, max_iter=6, early_stop=False)
    full = decode(llr, code, max_iter=6, early_stop=False, m_rows=code.m)
    assert part.m_rows == 24 and full.m_rows == 46
    assert np.array_equal(part.bits, full.bits[:, :part.bits.shape[1]])


def test_noiseless_decodes_in_one_iteration(rng):
    code = lifted(2, 64)
    c = rng.integers(0, 2, (3, code.K)).astype(np.uint8)
    x = encode_full(c, code)
    llr = (4.0 * (1.0 - 2.0 * x)).astype(np.float32)
    llr[:, :128] = 0                                      # punctured systematic bits recovered
    r = decode(llr, code, max_iter=10)
    assert r.ok.all() and (r.iterations == 1).all()
    assert np.array_equal(r.bits, x)


@pytest.mark.parametrize("bg,z,ebn0", [(1, 384, 2.5), (2, 384, 2.5), (2, 20, 4.0)])
def test_awgn_comfortable_snr(bg, z, ebn0, rng):
    code = lifted(bg, z)
    c = rng.integers(0, 2, (16, code.K)).astype(np.uint8)
    x = encode_full(c, code)
    # rate-1/2-like: send columns 2 .. kb*2+1 (the rest never transmitted)
    n_cols = 2 * code.kb + 2
    llr = _bpsk_llrs(x, ebn0, 0.5, rng, 2 * z)
    llr[:, n_cols * z:] = 0
    r = decode(llr, code, max_iter=20)
    assert r.ok.all()
    assert np.array_equal(r.bits[:, :code.K], c)
    assert syndrome_ok(r.bits, code, r.m_rows).all()


def test_threads_give_identical_results(rng):
    code = lifted(1, 64)
    c = rng.integers(0, 2, (9, code.K)).astype(np.uint8)
    llr = _bpsk_llrs(encode_full(c, code), 1.5, 0.5, rng, 128)
    a = decode(llr, code, max_iter=10, threads=1)
    b = decode(llr, code, max_iter=10, threads=2)
    assert np.array_equal(a.bits, b.bits) and np.array_equal(a.iterations, b.iterations)


def test_bad_input():
    code = lifted(2, 8)
    with pytest.raises(ValueError):
        decode(np.zeros((2, 10), np.float32), code)
    bad = np.zeros((1, code.n_bits), np.float32)
    bad[0, 3] = np.nan
    with pytest.raises(ValueError):
        decode(bad, code)
    with pytest.raises(ValueError):
        decode(np.zeros((1, code.n_bits), np.float32), code, max_iter=0)
    with pytest.raises(ValueError):
        decode(np.zeros((1, code.n_bits), np.float32), code, m_rows=50)
