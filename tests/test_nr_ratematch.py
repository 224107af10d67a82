# SPDX-License-Identifier: GPL-3.0-or-later
"""Rate matching / de-rate-matching (TS 38.212 §5.4.2) and HARQ combining."""

from __future__ import annotations

import numpy as np
import pytest

from infercom.nr.decoder import decode
from infercom.nr.ldpc import encode, encode_full
from infercom.nr.ratematch import (
    FILLER_LLR, HarqBuffer, accumulate, decoder_llrs, deinterleave, interleave, k0, rate_match,
    selection_positions,
)
from infercom.nr.segmentation import attach_tb_crc, segment, tb_params


def test_k0_table():
    # BG1, Zc = 384, Ncb = 66 * 384: floor(x * Ncb / (66 Zc)) Zc = x Zc
    n = 66 * 384
    assert [k0(1, rv, n, 384) for rv in (0, 1, 2, 3)] == [0, 17 * 384, 33 * 384, 56 * 384]
    n = 50 * 20
    assert [k0(2, rv, n, 20) for rv in (0, 1, 2, 3)] == [0, 13 * 20, 25 * 20, 43 * 20]
    # a smaller buffer: floor(17 * 20000 / (66 * 384)) = 13
    assert k0(1, 1, 20000, 384) == 13 * 384
    with pytest.raises(ValueError):
        k0(1, 4, n, 20)


def test_interleaver_definition():
    e = np.arange(6)
    assert interleave(e, 2).tolist() == [0, 3, 1, 4, 2, 5]       # f[i + 2j] = e[3i + j]
    assert interleave(np.arange(8), 4).tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    x = np.random.default_rng(0).standard_normal((3, 40))
    for qm in (1, 2, 4, 8):
        assert np.array_equal(deinterleave(interleave(x, qm), qm), x)
    with pytest.raises(ValueError):
        interleave(np.arange(5), 2)


def test_selection_skips_fillers_and_wraps():
    p = tb_params(100, 0.3)                                      # BG2 Zc=20, K'=116, K=200, fillers
    f0, f1 = p.Kp - 2 * p.Zc, p.K - 2 * p.Zc
    for rv in range(4):
        pos = selection_positions(p, rv, 3000)                    # E > Ncb - F: wraps twice
        assert pos[0] == k0(p.bg, rv, p.Ncb, p.Zc) or f0 <= k0(p.bg, rv, p.Ncb, p.Zc) < f1
        assert not np.any((pos >= f0) & (pos < f1))
        n_valid = p.Ncb - p.F
        assert np.array_equal(pos[:n_valid], pos[n_valid:2 * n_valid])      # period = non-filler bits
        assert np.unique(pos[:n_valid]).size == n_valid


CASES = [(8424, 0.5, None), (8424, 0.5, 40000), (100, 0.3, None), (100, 0.3, 3000), (19968, 0.7, None),
         (3832, 0.2, None), (24, 0.5, 200)]


@pytest.mark.parametrize("A,R,G", CASES)
@pytest.mark.parametrize("rv", [0, 1, 2, 3])
def test_exact_rate_match_derate_round_trip(A, R, G, rv, rng):
    p = tb_params(A, R, G)
    c = segment(attach_tb_crc(rng.integers(0, 2, A).astype(np.uint8)), p)
    d = encode(c, p.code)
    harq = HarqBuffer(p)
    sent = []
    for r, E in enumerate(p.E):
        f = rate_match(d[r], p, rv, E)
        assert f.size == E
        sent.append(f)
    llr = np.concatenate([1.0 - 2.0 * f for f in sent]).astype(np.float32)   # noiseless, |L| = 1
    harq.add(llr, rv)
    for r, E in enumerate(p.E):
        pos = selection_positions(p, rv, E)
        count = np.bincount(pos, minlength=p.Ncb)
        # every buffer entry = (number of times that bit was sent) * (+-1 of the bit): exact accumulation
        assert np.array_equal(harq.buf[r], (count * (1.0 - 2.0 * d[r])).astype(np.float32))
    L = harq.llrs()
    assert np.all(L[:, :2 * p.Zc] == 0)                                     # punctured
    assert np.all(L[:, p.Kp:p.K] == FILLER_LLR)                             # fillers known
    # wherever an LLR is non-zero its sign is the transmitted codeword bit
    x = encode_full(c, p.code)
    nz = L != 0
    assert np.array_equal((L[nz] < 0).astype(np.uint8), x[nz])
    # and the decoder recovers every block from these noiseless LLRs
    if rv in (0, 3) or p.E[0] > p.Ncb:   # rv 1/2 alone may miss systematic bits at high rate; see HARQ test
        res = decode(L, p.code, max_iter=20)
        assert res.ok.all()
        assert np.array_equal(res.bits[:, :p.K], c)


def test_derate_rejects_bad_input():
    p = tb_params(100, 0.3)
    with pytest.raises(ValueError):
        accumulate(np.zeros(p.Ncb + 1, np.float32), np.zeros(p.E[0], np.float32), p, 0)
    with pytest.raises(ValueError):
        accumulate(np.zeros(p.Ncb, np.float32), np.full(p.E[0], np.nan, np.float32), p, 0)
    with pytest.raises(ValueError):
        HarqBuffer(p).add(np.zeros(p.G + 2, np.float32), 0)
    d = encode(np.zeros((1, p.K), np.uint8), p.code, m_rows=4)[0]
    with pytest.raises(ValueError):   # rate matching must not read parity bits that were not computed
        rate_match(d, p, 2, p.E[0])


def test_harq_chase_and_incremental_redundancy_buffers(rng):
    p = tb_params(8424, 0.5)
    llr = rng.standard_normal(p.G).astype(np.float32)
    chase = HarqBuffer(p)
    chase.add(llr, 0)
    once = chase.buf.copy()
    chase.add(llr, 0)
    assert np.array_equal(chase.buf, 2 * once)           # same rv: LLR addition at the same positions
    ir = HarqBuffer(p)
    covered = np.zeros(p.Ncb, bool)
    for rv in (0, 2, 3, 1):
        ir.add(llr, rv)
        covered[selection_positions(p, rv, p.E[0])] = True
        assert np.array_equal(ir.buf[0] != 0, covered)
    assert covered.all()                                  # rv 0, 2, 3, 1 at R = 1/2 cover the whole buffer
    assert decoder_llrs(ir.buf, p).shape == (1, 68 * 384)
