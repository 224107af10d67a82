# SPDX-License-Identifier: GPL-3.0-or-later
"""The NR TB chain end to end: QPSK (38.211 §5.1.3), round trips, HARQ, XOR count, a short BLER check."""

from __future__ import annotations

import numpy as np
import pytest

from infercom import channel, qpsk
from infercom.nr.bench import bler_point, bler_waterfall, crossing_db
from infercom.nr.ldpc import encode, encode_full_numpy, encode_xors
from infercom.nr.link import (
    ebn0_to_esn0_db, encode_rows_needed, esn0_to_ebn0_db, nr_decode_tb, nr_decode_tb_detail, nr_encode_tb,
    qpsk_llrs, qpsk_modulate, tx_op_count,
)
from infercom.nr.ratematch import rate_match
from infercom.nr.segmentation import attach_tb_crc, segment, tb_params


def test_qpsk_is_38211_table():
    s = 1 / np.sqrt(2)
    sym = qpsk_modulate(np.array([0, 0, 0, 1, 1, 0, 1, 1], np.uint8))
    assert np.allclose(sym, [s + 1j * s, s - 1j * s, -s + 1j * s, -s - 1j * s])
    # same as the project's QPSK with amplitude 1, and LLRs positive for bit 0
    b = np.random.default_rng(1).integers(0, 2, 20).astype(np.uint8)
    assert np.array_equal(qpsk_modulate(b), qpsk.modulate(b[0::2], b[1::2], 1.0))
    llr = qpsk_llrs(qpsk_modulate(b), 0.5)
    assert np.array_equal((llr < 0).astype(np.uint8), b)
    assert np.allclose(np.abs(llr), 2 * np.sqrt(2) * s / 0.5)
    with pytest.raises(ValueError):
        qpsk_modulate(np.zeros(3, np.uint8))
    with pytest.raises(ValueError):
        qpsk_llrs(np.zeros(2, np.complex64), 0.0)


@pytest.mark.parametrize("A,R,G", [(8424, 0.5, None), (19968, 0.5, None), (3832, 0.2, None), (100, 0.3, None),
                                   (24, 0.5, 400), (6000, 0.9, None)])
@pytest.mark.parametrize("rv", [0, 3])
def test_noiseless_tb_round_trip(A, R, G, rv, rng):
    a = rng.integers(0, 2, A).astype(np.uint8)
    f, p = nr_encode_tb(a, R, rv=rv, G=G)
    assert [x.size for x in f] == list(p.E) and sum(p.E) == p.G
    y = qpsk_modulate(np.concatenate(f))
    bits, ok = nr_decode_tb(qpsk_llrs(y, 0.1), p, rv=rv)
    assert ok and np.array_equal(bits, a)


def test_crc_flags_a_wrong_tb(rng):
    # a valid LDPC codeword whose TB CRC is wrong: the decoder converges, the CRC says no
    p = tb_params(8424, 0.5)
    c = segment(attach_tb_crc(rng.integers(0, 2, p.A).astype(np.uint8)), p)
    c[0, 100] ^= 1
    f = rate_match(encode(c, p.code)[0], p, 0, p.E[0])
    r = nr_decode_tb_detail(qpsk_llrs(qpsk_modulate(f), 0.1), p)
    assert r.syndrome_ok.all() and not r.crc_ok
    assert np.array_equal(r.bits, c[0, :p.A])                    # it decoded the corrupted block exactly


def test_harq_chase_and_ir_recover_failed_first_attempt(rng):
    p = tb_params(8424, 0.5)
    es = ebn0_to_esn0_db(0.0, p)
    nv = 10 ** (-es / 10)
    a = rng.integers(0, 2, p.A).astype(np.uint8)

    def rx(rv):
        f, _ = nr_encode_tb(a, 0.5, rv=rv, params=p)
        return qpsk_llrs(channel.awgn(qpsk_modulate(np.concatenate(f)), es, rng), nv)

    first = nr_decode_tb_detail(rx(0), p)
    assert not first.crc_ok                                       # 0 dB: hopeless alone
    chase = nr_decode_tb_detail(rx(0), p, rv=0, harq=first.harq)  # + 3 dB of energy on the same bits
    assert chase.harq.rvs == [0, 0]
    assert chase.crc_ok and np.array_equal(chase.bits, a)
    first = nr_decode_tb_detail(rx(0), p)
    ir = nr_decode_tb_detail(rx(2), p, rv=2, harq=first.harq)     # new parity from rv 2
    assert ir.crc_ok and np.array_equal(ir.bits, a)
    with pytest.raises(ValueError):
        nr_decode_tb_detail(rx(0), tb_params(8424, 0.4), harq=first.harq)


def test_snr_conversion():
    p = tb_params(8424, 0.5)
    assert ebn0_to_esn0_db(1.0, p) == pytest.approx(1.0)       # Qm A / G = 2 * 8424 / 16848 = 1
    q = tb_params(3832, 0.2)
    assert esn0_to_ebn0_db(ebn0_to_esn0_db(0.7, q), q) == pytest.approx(0.7)
    assert ebn0_to_esn0_db(0.0, q) == pytest.approx(10 * np.log10(2 * 3832 / q.G))


def test_tx_op_count_exact(rng):
    p = tb_params(8424, 0.5)
    ops = tx_op_count(p)
    assert ops["crc_tb"] == 8424 * 13 and ops["crc_cb"] == 0
    m = encode_rows_needed(p)
    assert m == 24 and ops["ldpc_rows"] == 24                   # 16848 bits from column 2 reach column 45
    c = segment(attach_tb_crc(rng.integers(0, 2, p.A).astype(np.uint8)), p)
    _, counted = encode_full_numpy(c[0], p.code, m)              # XORs the reference encoder performed
    assert ops["ldpc"] == counted == encode_xors(p.code, 24)
    assert ops["total"] == ops["crc_tb"] + ops["ldpc"]
    q = tb_params(19968, 0.5)
    oq = tx_op_count(q)
    assert oq["crc_cb"] == 3 * (6688 - 24) * 5
    assert oq["ldpc"] == 3 * encode_xors(q.code, oq["ldpc_rows"])
    assert oq["ldpc_full"] >= oq["ldpc"]


def test_short_bler_check():
    # BG1, K = 8448, R = 1/2, QPSK, AWGN, 10 iterations: clear success at 2 dB, clear failure at 0 dB
    hi = bler_point(2.0, 24, seed=5)
    lo = bler_point(0.0, 12, seed=5)
    assert hi["K"] == 8448 and hi["max_iter"] == 10
    assert hi["bler"] < 0.05
    assert lo["bler"] > 0.5
    assert hi["undetected"] == lo["undetected"] == 0


def test_crossing_interpolation():
    rows = [{"ebn0_db": 1.0, "bler": 1.0, "n_tb": 10}, {"ebn0_db": 2.0, "bler": 0.01, "n_tb": 100}]
    assert crossing_db(rows) == pytest.approx(1.5)
    assert crossing_db(rows[:1]) is None


def test_bler_waterfall_bg1_k8448():
    # BG1, K = 8448, R = 1/2, QPSK, AWGN, 10 iterations: BLER falls monotonically and crosses 0.1 in 0.8..1.6 dB
    rows = bler_waterfall([0.8, 1.0, 1.2, 1.4, 1.6, 1.8], n_tb=300, seed=11, threads=2)
    bler = [r["bler"] for r in rows]
    assert all(b1 >= b2 for b1, b2 in zip(bler, bler[1:])), bler
    assert bler[0] > 0.5 and bler[-1] < 0.01, bler
    x = crossing_db(rows)
    assert x is not None and 0.8 <= x <= 1.6, (x, bler)


@pytest.mark.slow
def test_bler_waterfall_dense():
    # the full curve of docs/nr.md: 0.1 dB steps, 1000 TBs per point (about 15 s on two cores)
    ebn0 = np.round(np.arange(0.8, 2.01, 0.1), 2).tolist()
    rows = bler_waterfall(ebn0, n_tb=1000, seed=11, threads=2)
    bler = [r["bler"] for r in rows]
    assert all(b1 >= b2 for b1, b2 in zip(bler, bler[1:])), bler
    x = crossing_db(rows)
    assert x is not None and 0.8 <= x <= 1.6, (x, bler)
    assert sum(r["undetected"] for r in rows) == 0
