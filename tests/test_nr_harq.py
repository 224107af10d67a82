# SPDX-License-Identifier: GPL-3.0-or-later
"""Image-level HARQ of the NR baseline: params, bit-exact round trips, CRC-triggered Chase / IR, the cliff."""

from __future__ import annotations

import numpy as np
import pytest

from infercom import channel, imageio
from infercom.nr import harq as H
from infercom.nr.jpeg import decode_jpeg
from infercom.nr.ldpc import encode, encode_xors
from infercom.nr.link import encode_rows_needed, qpsk_llrs, qpsk_modulate, tx_op_count
from infercom.nr.ratematch import rate_match
from infercom.nr.segmentation import attach_tb_crc, segment


@pytest.fixture(scope="module")
def images(datasets_dir):
    files = sorted((datasets_dir / "bsds500" / "test").glob("*.jpg"))[:3]
    return [imageio.load_image(f) for f in files]


@pytest.fixture(scope="module")
def small(images):
    return images[0][:128, :128]        # 2 code blocks at rate 1/9, R = 1/3 (channel-uses)


def _rx_attempt(tx, rx, attempt, snr_db, rng):
    y = channel.awgn(tx.symbols(attempt), snr_db, rng)
    rx.add_attempt(qpsk_llrs(y, 10 ** (-snr_db / 10)), attempt)
    return rx.decode()


def test_params_pack_and_validate():
    assert H.PARAM_BITS == 33 <= 40
    p = {"n_symbols": 525312, "rate_code": 2, "harq": 1, "max_attempts": 4}
    v = H.pack_params(p)
    assert 0 <= v < 2 ** 33 and H.unpack_params(v) == p
    edge = {"n_symbols": 2 ** 24 - 1, "rate_code": 10, "harq": 0, "max_attempts": 16}
    assert H.unpack_params(H.pack_params(edge)) == edge
    tb = H.tb_from_params(p)
    assert tb.G == 2 * 525312 and tb.A == 349080
    for bad in ({**p, "n_symbols": 0}, {**p, "n_symbols": 2 ** 24}, {**p, "rate_code": 11}, {**p, "harq": 2},
                {**p, "max_attempts": 0}, {**p, "max_attempts": 17}, {**p, "extra": 1}, {**p, "harq": True},
                {k: v for k, v in p.items() if k != "harq"}):
        with pytest.raises(ValueError):
            H.check_params(bad)
    with pytest.raises(ValueError):
        H.unpack_params(2 ** 33)
    assert [H.rv_for_attempt("ir", k) for k in range(6)] == [0, 2, 3, 1, 0, 2]
    assert [H.rv_for_attempt("chase", k) for k in range(3)] == [0, 0, 0]


@pytest.mark.parametrize("mode", ["channel-uses", "source-rate"])
@pytest.mark.parametrize("harq", ["ir", "chase"])
def test_noiseless_round_trip_is_bit_exact(images, mode, harq):
    img = images[1]
    tx = H.NrImageTx(img, mode, "1/3", 3, 3, 8, harq, max_attempts=4)
    assert tx.n_symbols == tx.params["n_symbols"] and tx.n_coded_bits == 2 * tx.n_symbols
    rx = H.NrImageRx(H.unpack_params(H.pack_params(tx.params)))   # only the 33-bit params travel
    assert rx.tb == tx.tb
    last = 3 if harq == "ir" else 0
    c = tx.coded_bits(last)
    assert c.dtype == np.uint8 and c.shape == (tx.tb.G,)
    rx.add_attempt(qpsk_llrs(qpsk_modulate(c), 0.05), last)   # any single attempt is self-decodable here
    ok, out, info = rx.decode()
    assert ok and info["crc_ok"] and info["error"] is None and rx.status == "success"
    assert info["jpeg"] == tx.jpeg                                 # bit-exact JPEG bytes
    assert np.array_equal(out, decode_jpeg(tx.jpeg)) and out.shape == img.shape
    assert rx.decode() is rx.decode()                              # no new attempt: same result


def test_grey_round_trip(images):
    img = images[2][:, :, :1]
    tx = H.NrImageTx(img, "channel-uses", "1/2", 2, 2, 8)
    rx = H.NrImageRx(tx.params)
    rx.add_attempt(qpsk_llrs(tx.symbols(0), 0.1), 0)
    ok, out, info = rx.decode()
    assert ok and info["jpeg"] == tx.jpeg and out.shape == img.shape


def test_crc_failure_is_detected_never_a_wrong_image(small):
    tx = H.NrImageTx(small, "channel-uses", "1/3", 3, 3, 8, "ir", max_attempts=1)
    rng = np.random.default_rng(7)
    n_ok = n_fail = 0
    for _ in range(120):                                 # around the threshold: most fail, some pass
        rx = H.NrImageRx(tx.params)
        ok, out, info = _rx_attempt(tx, rx, 0, -1.0, rng)
        if ok:
            n_ok += 1
            assert info["jpeg"] == tx.jpeg               # an accepted image is always the right one
        else:
            n_fail += 1
            assert out is None and not info["crc_ok"] and rx.status == "failed"
            assert info["error"] == "TB CRC failed"
    assert n_fail >= 30 and n_ok >= 10, (n_ok, n_fail)


def test_crc_rejects_a_valid_codeword_of_a_wrong_image(small):
    # a payload bit flipped after the TB CRC: the LDPC decoder converges, the CRC rejects it, no image
    tx = H.NrImageTx(small, "channel-uses", "1/3", 3, 3, 8, "chase", max_attempts=2)
    p = tx.tb
    b = attach_tb_crc(tx._bits)
    b[1000] ^= 1
    d = encode(segment(b, p), p.code)
    f = np.concatenate([rate_match(d[r], p, 0, E) for r, E in enumerate(p.E)])
    rx = H.NrImageRx(tx.params)
    rx.add_attempt(qpsk_llrs(qpsk_modulate(f), 0.05), 0)
    ok, out, info = rx.decode()
    assert not ok and out is None and not info["crc_ok"] and info["cb_crc_ok"] == p.C   # CB CRCs pass
    assert rx.status == "pending"                        # one attempt left


@pytest.mark.parametrize("harq", ["ir", "chase"])
def test_retransmission_recovers_below_single_attempt_threshold(small, harq):
    tx = H.NrImageTx(small, "channel-uses", "1/3", 3, 3, 8, harq, max_attempts=2)
    snr = -2.5                                           # ~1.5 dB below the one-attempt threshold
    rng = np.random.default_rng(3)
    for _ in range(5):
        alone = H.NrImageRx(tx.params)
        ok0, _, info0 = _rx_attempt(tx, alone, 0, snr, rng)
        assert not ok0 and alone.status == "pending"       # rv 0 alone fails
        ok1, out, info1 = _rx_attempt(tx, alone, 1, snr, rng)  # + rv 2 (IR) or rv 0 again (Chase)
        assert ok1 and info1["jpeg"] == tx.jpeg and alone.status == "success"
        assert info1["rvs"] == ([0, 2] if harq == "ir" else [0, 0])
    # the attempt limit makes failure explicit
    rx = H.NrImageRx(tx.params)
    _rx_attempt(tx, rx, 0, -6.0, rng)
    ok, out, info = _rx_attempt(tx, rx, 1, -6.0, rng)
    assert not ok and out is None and rx.status == "failed" and info["status"] == "failed"
    with pytest.raises(ValueError):
        rx.add_attempt(np.zeros(tx.tb.G, np.float32), 2)


def test_ir_beats_chase_at_high_rate(small):
    # R = 2/3: rv 2 brings parity rv 0 never sent (a lower-rate code), Chase only 3 dB more of the same bits
    snr = 0.0
    got = {}
    for mode in ("ir", "chase"):
        tx = H.NrImageTx(small, "channel-uses", "2/3", 3, 3, 8, mode, max_attempts=2)
        rng = np.random.default_rng(1)
        n = 0
        for _ in range(6):
            rx = H.NrImageRx(tx.params)
            assert not _rx_attempt(tx, rx, 0, snr, rng)[0]
            n += _rx_attempt(tx, rx, 1, snr, rng)[0]
        got[mode] = n
    assert got == {"ir": 6, "chase": 0}, got


def test_receiver_rejects_bad_input(small):
    tx = H.NrImageTx(small, "channel-uses", "1/3", 3, 3, 8, "ir", max_attempts=2)
    rx = H.NrImageRx(tx.params)
    with pytest.raises(ValueError):
        rx.decode()                                      # nothing received yet
    G = tx.tb.G
    for bad in (np.zeros(G - 2, np.float32), np.full(G, np.nan, np.float32), np.zeros(G, np.int32),
                np.zeros((2, G // 2), np.float32)):
        with pytest.raises(ValueError):
            rx.add_attempt(bad, 0)
    rx.add_attempt(np.zeros(G, np.float32), 0)
    with pytest.raises(ValueError):
        rx.add_attempt(np.zeros(G, np.float32), 0)       # the same attempt twice
    with pytest.raises(ValueError):
        rx.add_attempt(np.zeros(G, np.float32), -1)
    with pytest.raises(ValueError):
        tx.coded_bits(2)
    with pytest.raises(ValueError):
        H.NrImageTx(small, "bits")
    with pytest.raises(ValueError):
        H.NrImageTx(small, harq="hybrid")
    with pytest.raises(ValueError):
        H.NrImageTx(small, max_attempts=17)


def test_tx_op_count(images):
    tx = H.NrImageTx(images[0], "channel-uses", "1/2", 3, 3, 8, "ir", max_attempts=4)
    o1, o4 = tx.op_count(1), tx.op_count(4)
    t = tx_op_count(tx.tb, 0)
    assert o1["ldpc"] == t["ldpc"] and o1["crc_tb"] == t["crc_tb"] and o1["crc_cb"] == t["crc_cb"]
    assert o1["total"] == o1["jpeg"] + t["total"]
    rows = encode_rows_needed(tx.tb, (0, 2, 3, 1))
    assert o4["ldpc"] == tx.tb.C * encode_xors(tx.tb.code, rows) > o1["ldpc"]   # IR needs more parity
    assert o4["jpeg"] == o1["jpeg"] == o1["jpeg_detail"]["total"] > 0
    ch = H.NrImageTx(images[0], "channel-uses", "1/2", 3, 3, 8, "chase", max_attempts=4)
    assert ch.op_count(4)["ldpc"] == ch.op_count(1)["ldpc"]                      # Chase resends the same bits
