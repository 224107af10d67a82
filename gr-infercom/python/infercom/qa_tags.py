# SPDX-License-Identifier: GPL-3.0-or-later
"""qa for the PDU helpers: the fast numpy <-> PMT vector path is bit-exact with pmt's own conversion, PDUs
round-trip, malformed PDUs are rejected with ValueError, feedback dicts round-trip through protocol.Feedback."""

import numpy as np
import pmt
import pytest

from gnuradio.infercom import pmtvec
from gnuradio.infercom.tags import (feedback_from_pmt, feedback_to_pmt, header_to_meta, make_pdu, meta_to_header,
                                    parse_pdu)
from infercom.header import FrameHeader
from infercom.protocol import Feedback


@pytest.mark.parametrize("dtype,init,elements", [
    (np.complex64, pmt.init_c32vector, pmt.c32vector_elements),
    (np.float32, pmt.init_f32vector, pmt.f32vector_elements),
    (np.uint8, pmt.init_u8vector, pmt.u8vector_elements),
])
def test_fast_vectors_are_bit_exact(dtype, init, elements):
    rng = np.random.default_rng(1)
    if dtype == np.uint8:
        a = rng.integers(0, 256, 1001).astype(np.uint8)
    else:
        a = rng.standard_normal(2002).astype(np.float32)
        a = a.view(np.complex64) if dtype == np.complex64 else a[:1001]
    fast = pmtvec.to_pmt(a)
    assert pmt.equal(fast, init(a.size, a))                           # same PMT as pmt's own constructor
    back = pmtvec.from_pmt(init(a.size, a), dtype)
    assert back.dtype == dtype and np.array_equal(back, np.asarray(elements(init(a.size, a)), dtype))
    assert np.array_equal(pmtvec.from_pmt(fast, dtype), a)
    assert pmtvec.from_pmt(pmtvec.to_pmt(a[:0]), dtype).size == 0
    view = pmtvec.view_pmt(fast, dtype)                                  # zero-copy view of the same storage
    assert np.array_equal(view, a) and not view.flags.writeable
    assert pmtvec.view_pmt(pmtvec.to_pmt(a[:0]), dtype).size == 0
    with pytest.raises(ValueError):
        pmtvec.view_pmt(pmt.init_s32vector(2, [1, 2]), dtype)
    with pytest.raises(ValueError):
        pmtvec.from_pmt(pmt.init_s32vector(2, [1, 2]), dtype)
    with pytest.raises(ValueError):
        pmtvec.to_pmt(np.zeros(3, np.float64))


def test_pdu_round_trip_and_rejection():
    y = (np.arange(10) + 1j).astype(np.complex64)
    nv = np.full(10, 0.5, np.float32)
    meta, vec = parse_pdu(make_pdu({"a": 1, "s": "x", "nv": nv, "f": np.float32(2.5)}, y), np.complex64)
    assert np.array_equal(vec, y) and np.array_equal(meta["nv"], nv) and meta["a"] == 1 and meta["s"] == "x"
    assert meta["f"] == 2.5
    # scalar fast paths give exactly what pmt.to_python gives (types included: bool stays bool, int stays int)
    scalars = {"i": -7, "big": 2**40, "x": 0.1, "t": True, "n": None, "s": "abc", "l": [1, 2], "np": np.int64(3)}
    d = make_pdu(scalars, y)
    got = parse_pdu(d, np.complex64)[0]
    ref = pmt.to_python(pmt.car(d))
    assert got == ref and {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in ref.items()}
    assert type(got["t"]) is bool and type(got["i"]) is int and type(got["x"]) is float
    for bad in (pmt.intern("x"), pmt.cons(pmt.intern("m"), pmtvec.to_pmt(y)), pmt.cons(pmt.make_dict(), pmt.PMT_T)):
        with pytest.raises(ValueError):
            parse_pdu(bad, np.complex64)
    with pytest.raises(ValueError):
        parse_pdu(make_pdu({}, nv), np.complex64)


def test_header_and_feedback_round_trip():
    h = FrameHeader(tx_id=3, image_id=7, attempt=1, frame_idx=0, bh=2, bw=3, planes=6, channels=3,
                    profile="equal", design_snr_db=-3, key_id=2, height=50, width=70, frame_len_log2=12)
    assert meta_to_header(header_to_meta(h)) == h
    with pytest.raises(ValueError, match="frame_len_log2"):
        meta_to_header({k: v for k, v in header_to_meta(h).items() if k != "frame_len_log2"})
    fb = Feedback(3, 7, 1, "NACK", reason="low", scores={"q": 0.5}, mode="selective", frames=(1, 4),
                  next_attempt=2)
    assert feedback_from_pmt(feedback_to_pmt(fb)) == fb
    with pytest.raises(ValueError):
        feedback_from_pmt(pmt.to_pmt({"tx_id": 3}))
    with pytest.raises(ValueError):
        feedback_from_pmt(pmt.to_pmt({"tx_id": 3, "image_id": 7, "attempt": 1, "decision": "MAYBE"}))
