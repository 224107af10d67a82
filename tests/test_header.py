# SPDX-License-Identifier: GPL-3.0-or-later
"""Header: field ranges, bit-exact round trip, CRC catches decoded errors, decoding at Es/N0 = -10 dB."""

from __future__ import annotations

import numpy as np
import pytest

from infercom import crc, fec
from infercom import header as H


def _hdr(**kw):
    base = dict(tx_id=7, image_id=1234, attempt=2, frame_idx=3, bh=3, bw=3, planes=8, channels=3,
                profile="importance", design_snr_db=-4, key_id=5, height=512, width=768, frame_len_log2=15)
    base.update(kw)
    return H.FrameHeader(**base)


def test_field_ranges_rejected():
    _hdr()
    for bad in (dict(tx_id=256), dict(image_id=-1), dict(attempt=16), dict(bh=0), dict(bw=9), dict(planes=0),
                dict(channels=2), dict(profile="loud"), dict(design_snr_db=16), dict(key_id=16),
                dict(height=0), dict(width=4097), dict(frame_len_log2=3), dict(frame_len_log2=17),
                dict(frame_idx=100), dict(tx_id=1.5)):
        with pytest.raises(ValueError):
            _hdr(**bad)


def test_bits_round_trip_and_sizes(rng):
    assert H.HEADER_INFO_BITS == 96
    assert H.HEADER_SYMBOLS == H.HEADER_REPS * 118
    for _ in range(200):
        h = _hdr(tx_id=int(rng.integers(0, 256)), image_id=int(rng.integers(0, 4096)),
                 attempt=int(rng.integers(0, 16)), bh=int(rng.integers(1, 9)), bw=int(rng.integers(1, 9)),
                 planes=int(rng.integers(1, 9)), channels=int(rng.choice([1, 3])),
                 profile=str(rng.choice(H.PROFILES)), design_snr_db=int(rng.integers(-16, 16)),
                 key_id=int(rng.integers(0, 16)), height=int(rng.integers(1, 4097)),
                 width=int(rng.integers(1, 4097)), frame_len_log2=int(rng.integers(12, 17)), frame_idx=0)
        b = H.header_bits(h)
        assert b.size == 96 and H.parse_header_bits(b) == h
        assert not b[-8:].any()
        x = H.encode_header(h)
        assert x.dtype == np.complex64 and x.size == H.HEADER_SYMBOLS
        assert H.decode_header(x, 0.1) == h


def test_layout_consistency():
    h = _hdr(frame_len_log2=14)
    lay = h.layout()
    assert lay.n_symbols == h.n_symbols()
    assert h.frame_count() == -(-lay.n_symbols // 2**14)
    last = h.replace(frame_idx=h.frame_count() - 1)
    assert last.payload_len() == lay.n_symbols - (h.frame_count() - 1) * 2**14
    assert h.link_config().key_id == 5


def test_field_checks_reject_valid_crc_with_bad_fields():
    h = _hdr()
    b = H.header_bits(h)
    for pos in (0, 1, 88, 95):  # version and reserved bits
        bb = b.copy()
        bb[pos] ^= 1
        assert H.parse_header_bits(bb) is None
        # even with a correct CRC the decoder rejects it
        cw = fec.encode(crc.append_crc(bb))
        c = np.tile(cw, H.HEADER_REPS) ^ H._SCRAMBLE
        s = (1 - 2 * c.astype(np.float32)) / np.sqrt(2)
        assert H.decode_header((s[0::2] + 1j * s[1::2]).astype(np.complex64), 0.1) is None


def test_decoded_bit_errors_are_caught_by_crc(rng):
    """Every single-bit error and every burst (<= 16) in the decoded 112-bit codeword fails the CRC."""
    cw = crc.append_crc(H.header_bits(_hdr()))
    for i in range(cw.size):
        e = cw.copy()
        e[i] ^= 1
        assert not crc.check_crc(e)
    for _ in range(3000):
        L = int(rng.integers(2, 17))
        s = int(rng.integers(0, cw.size - L + 1))
        e = np.zeros(cw.size, np.uint8)
        e[s:s + L] = rng.integers(0, 2, L)
        e[s] = e[s + L - 1] = 1
        assert not crc.check_crc(cw ^ e)


@pytest.mark.parametrize("snr_db,min_rate", [(-10.0, 0.99)])
def test_header_decodes_at_minus_10_db(snr_db, min_rate):
    """AWGN, perfect sync, 600 seeded trials: >= 99 % decoded, and never a wrong header."""
    rng = np.random.default_rng(2024)
    h = _hdr()
    x = H.encode_header(h)
    n0 = 10 ** (-snr_db / 10)
    ok = wrong = 0
    n = 600
    for _ in range(n):
        y = x + np.sqrt(n0 / 2) * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size))
        d = H.decode_header(y.astype(np.complex64), n0)
        ok += d == h
        wrong += d is not None and d != h
    assert wrong == 0
    assert ok / n >= min_rate


def test_noise_never_decodes(rng):
    """Pure noise: the CRC + field checks reject (expected pass rate ~1e-9 per trial)."""
    for _ in range(300):
        y = (rng.standard_normal(H.HEADER_SYMBOLS) + 1j * rng.standard_normal(H.HEADER_SYMBOLS)) / np.sqrt(2)
        assert H.decode_header(y.astype(np.complex64), 1.0) is None


def test_decode_bad_input():
    with pytest.raises(ValueError):
        H.decode_header(np.zeros(10, np.complex64), 1.0)
    with pytest.raises(ValueError):
        H.decode_header(np.full(H.HEADER_SYMBOLS, np.nan, np.complex64), 1.0)
    with pytest.raises(ValueError):
        H.decode_header(np.zeros(H.HEADER_SYMBOLS, np.complex64), -1.0)


def test_kernels_match_references(rng):
    for _ in range(5):
        cw = rng.integers(0, 2, 112).astype(np.uint8)
        assert np.array_equal(H.codeword_symbols(cw), H.codeword_symbols_ref(cw))
        y = (rng.standard_normal(H.HEADER_SYMBOLS) + 1j * rng.standard_normal(H.HEADER_SYMBOLS)).astype(np.complex64)
        assert np.allclose(H.header_llr(y, 0.7), H.header_llr_ref(y, 0.7), rtol=1e-4, atol=1e-3)
        nv = rng.uniform(0.2, 2, H.HEADER_SYMBOLS).astype(np.float32)
        nv[:100] = np.inf  # erased symbols carry no information
        assert np.allclose(H.header_llr(y, nv), H.header_llr_ref(y, nv), rtol=1e-4, atol=1e-3)


# --- one table of limits (infercom.limits): the header is where it comes from -------------------------------

def _boundary_base(field):
    """A header whose other fields let ``field`` take both ends of its range (frame_idx 4095 needs an image of
    exactly 4096 frames: 128x128 grey, 1x1 blocks, 8 planes = 65536 symbols in frames of 16)."""
    if field == "frame_idx":
        return dict(height=128, width=128, channels=1, bh=1, bw=1, planes=8, frame_len_log2=4)
    return dict(frame_idx=0)


def test_field_ranges_are_the_limits_table():
    from infercom import limits

    for name, (lo, hi) in limits.FIELD_RANGES.items():
        base = _boundary_base(name)
        for v in (lo, hi):
            h = _hdr(**{**base, name: v})
            assert H.parse_header_bits(H.header_bits(h)) == h, (name, v)
        for v in (lo - 1, hi + 1):
            with pytest.raises(ValueError, match=name):
                _hdr(**{**base, name: v})
    # every range but frame_len_log2 fills its header bits exactly; frame_len_log2 fits them
    for name, width, off in H._FIELDS:
        if name in limits.FIELD_RANGES:
            lo, hi = limits.FIELD_RANGES[name]
            assert lo + off >= 0 and hi + off <= 2 ** width - 1, name
            if name != "frame_len_log2":
                assert (lo + off, hi + off) == (0, 2 ** width - 1), name
    assert (H.MIN_FRAME_LEN_LOG2, H.MAX_FRAME_LEN_LOG2) == limits.FIELD_RANGES["frame_len_log2"]


def test_one_definition_of_profiles_and_fields():
    import dataclasses

    from infercom import limits, power, protocol

    assert H.PROFILES is limits.PROFILES is power.PROFILES is protocol.PROFILES
    assert protocol.CONFIG_FIELDS is H.CONFIG_FIELDS
    assert protocol.SYSTEMS is H.SYSTEMS
    fields = tuple(f.name for f in dataclasses.fields(H.FrameHeader))
    assert sorted(fields) == sorted(H.ID_FIELDS + H.CONFIG_FIELDS)
    assert set(limits.FIELD_RANGES) <= set(fields)
    # every header field but the enumerations has a range
    assert set(fields) - set(limits.FIELD_RANGES) == {"channels", "profile", "system"}


def test_non_integer_channels_rejected():
    for bad in (True, 3.0, "3"):
        with pytest.raises(ValueError, match="channels"):
            _hdr(channels=bad)
