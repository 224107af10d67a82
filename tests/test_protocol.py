# SPDX-License-Identifier: GPL-3.0-or-later
"""Wire schema: bit-exact round trips, bounds, and rejection of every kind of bad message."""

from __future__ import annotations

import json
import struct
from types import SimpleNamespace

import numpy as np
import pytest

from infercom import protocol as P


def _cfg(**kw):
    base = dict(bh=3, bw=3, planes=8, channels=3, profile="importance", design_snr_db=-4, key_id=0,
                height=64, width=48, frame_len_log2=8)
    base.update(kw)
    return P.ImageConfig(**base)


def _soft(rng, frame_idx=0, per_symbol=True, **kw):
    cfg = kw.pop("config", _cfg())
    n = cfg.frame_payload_len(frame_idx)
    y = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    nv = rng.uniform(0.1, 3.0, n).astype(np.float32) if per_symbol else 0.75
    args = dict(tx_id=7, image_id=1234, attempt=2, frame_idx=frame_idx, config=cfg, snr_db=-4.25,
                noise_var=nv, y=y, stream_id=0xDEADBEEF12345678, seq=99)
    args.update(kw)
    return P.SoftFrame(**args)


def test_layout_arithmetic_matches_contract():
    # 64x48x3 at 3x3 -> 22*16*3 = 1056 values -> 528 symbols per plane -> 4224 symbols, 17 frames of 256
    cfg = _cfg()
    assert cfg.n_symbols() == 8 * 528
    assert cfg.frame_count() == 17
    assert cfg.frame_payload_len(16) == 4224 - 16 * 256
    assert cfg.frame_payload_len(3) == 256
    # odd value count is padded by one value
    assert P.n_payload_symbols(1, 1, 3, 1, 1, 2) == 2 * 2


def test_layout_matches_infercom_link_when_present():
    link = pytest.importorskip("infercom.link")
    if not hasattr(link, "layout"):
        pytest.skip("infercom.link.layout not landed")
    for (h, w, c, bh, bw, m) in [(64, 48, 3, 3, 3, 8), (17, 5, 1, 2, 4, 6), (512, 768, 3, 4, 4, 8)]:
        cfg = link.LinkConfig(bh=bh, bw=bw, planes=m)
        lay = link.layout(h, w, c, cfg)
        assert lay.n_symbols == P.n_payload_symbols(h, w, c, bh, bw, m)


@pytest.mark.parametrize("per_symbol", [True, False])
def test_soft_frame_round_trip_bit_exact(rng, per_symbol):
    for idx in (0, 16):
        msg = _soft(rng, frame_idx=idx, per_symbol=per_symbol)
        buf = P.encode(msg)
        assert P.message_type(buf) == "soft_frame"
        out = P.decode(buf)
        assert isinstance(out, P.SoftFrame)
        for f in ("tx_id", "image_id", "attempt", "frame_idx", "config", "stream_id", "seq"):
            assert getattr(out, f) == getattr(msg, f), f
        assert out.snr_db == np.float32(msg.snr_db)
        assert out.y.dtype == np.complex64 and np.array_equal(out.y.view(np.uint64), msg.y.view(np.uint64))
        if per_symbol:
            assert out.noise_var.dtype == np.float32 and np.array_equal(out.noise_var, msg.noise_var)
        else:
            assert out.noise_var == np.float32(0.75)
            assert np.array_equal(out.noise_var_array(), np.full(msg.y.size, 0.75, np.float32))
        # header bytes are little-endian: tx_id at byte 5, image_id u16 LE at 6..7
        assert buf[:4] == b"IC\x01\x01" and buf[5] == 7 and buf[6:8] == (1234).to_bytes(2, "little")


def test_soft_frame_missing_symbols_inf_noise(rng):
    msg = _soft(rng)
    y = msg.y.copy()
    nv = msg.noise_var.copy()
    y[:10] = 0
    nv[:10] = np.inf
    out = P.decode(P.encode(P.SoftFrame(**{**msg.__dict__, "y": y, "noise_var": nv})))
    assert np.all(np.isinf(out.noise_var[:10])) and np.all(out.y[:10] == 0)
    with pytest.raises(P.ProtocolError) as e:
        y[0] = 1
        P.SoftFrame(**{**msg.__dict__, "y": y, "noise_var": nv})
    assert e.value.reason == "bad_array"


def test_encode_soft_frame_from_header_like_object(rng):
    cfg = _cfg(channels=1, height=20, width=30, bh=1, bw=1, planes=4, frame_len_log2=6, profile="equal")
    h = SimpleNamespace(tx_id=255, image_id=4095, attempt=15, frame_idx=3, **cfg.__dict__)
    y = np.ones(64, np.complex64)
    out = P.decode(P.encode_soft_frame(h, y, 0.5, 3.0, stream_id=1, seq=2 ** 64 - 1))
    assert out.config == cfg and out.tx_id == 255 and out.image_id == 4095 and out.seq == 2 ** 64 - 1


def test_frame_header_conversion_when_present(rng):
    header = pytest.importorskip("infercom.header")
    msg = _soft(rng, frame_idx=5)
    h = msg.frame_header()
    assert isinstance(h, header.FrameHeader)
    assert (h.tx_id, h.image_id, h.attempt, h.frame_idx) == (7, 1234, 2, 5)
    assert h.frame_count() == msg.config.frame_count()
    assert P.ImageConfig.from_header(h) == msg.config


@pytest.mark.parametrize("field,value", [
    ("tx_id", 256), ("tx_id", -1), ("image_id", 4096), ("attempt", 16), ("frame_idx", 17),
    ("stream_id", 0), ("snr_db", float("nan")), ("snr_db", 1e9), ("noise_var", 0.0), ("noise_var", -1.0),
    ("noise_var", float("nan")), ("tx_id", 1.5), ("tx_id", True),
])
def test_soft_frame_field_validation(rng, field, value):
    with pytest.raises(P.ProtocolError) as e:
        _soft(rng, per_symbol=False, **{field: value})
    assert e.value.reason == "bad_field"
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("field,value", [
    ("bh", 0), ("bw", 9), ("planes", 0), ("channels", 2), ("profile", "foo"), ("design_snr_db", 16),
    ("key_id", 16), ("height", 0), ("width", 4097), ("frame_len_log2", 17), ("frame_len_log2", 3),
])
def test_image_config_validation(field, value):
    with pytest.raises(P.ProtocolError) as e:
        _cfg(**{field: value})
    assert e.value.reason == "bad_field"


def test_image_config_frame_count_bound():
    with pytest.raises(P.ProtocolError, match="frames"):
        _cfg(height=4096, width=4096, bh=1, bw=1, frame_len_log2=4)


def test_soft_frame_array_validation(rng):
    msg = _soft(rng)
    d = msg.__dict__
    for y, nv in [(msg.y[:-1], msg.noise_var[:-1]),            # wrong length for this frame
                  (msg.y.real.copy(), msg.noise_var),           # not complex
                  (msg.y.reshape(2, -1), msg.noise_var),        # not 1-D
                  (msg.y, msg.noise_var[:-1]),                  # nv shape mismatch
                  (np.where(np.arange(msg.y.size) == 3, np.nan, msg.y).astype(np.complex64), msg.noise_var)]:
        with pytest.raises(P.ProtocolError) as e:
            P.SoftFrame(**{**d, "y": y, "noise_var": nv})
        assert e.value.reason == "bad_array"
    bad_nv = msg.noise_var.copy()
    bad_nv[4] = -1
    with pytest.raises(P.ProtocolError):
        P.SoftFrame(**{**d, "noise_var": bad_nv})


def test_last_frame_may_be_padded_to_full_length(rng):
    cfg = _cfg()
    y = np.zeros(256, np.complex64)
    P.SoftFrame(tx_id=0, image_id=0, attempt=0, frame_idx=16, config=cfg, snr_db=0, noise_var=1.0, y=y,
                stream_id=1, seq=0)
    with pytest.raises(P.ProtocolError):   # but not a middle frame that is short
        P.SoftFrame(tx_id=0, image_id=0, attempt=0, frame_idx=15, config=cfg, snr_db=0, noise_var=1.0,
                    y=y[:128], stream_id=1, seq=0)


def _reason(buf):
    with pytest.raises(P.ProtocolError) as e:
        P.decode(buf)
    return e.value.reason


def test_decode_rejects_malformed_envelopes(rng):
    good = P.encode(_soft(rng))
    assert _reason(b"") == "empty"
    assert _reason(b"IC") == "truncated"
    assert _reason(b"XX" + good[2:]) == "bad_magic"
    assert _reason(b"IC\x02" + good[3:]) == "bad_version"
    assert _reason(b"IC\x01\x09" + good[4:]) == "unknown_type"
    assert _reason(good[:20]) == "truncated"
    assert _reason(good[:-1]) == "truncated"
    assert _reason(good + b"\x00") == "oversized"
    assert _reason(b"\x00" * 4 + good) == "bad_magic"
    with pytest.raises(P.ProtocolError):
        P.decode(12345)


def test_decode_rejects_bad_soft_frame_fields(rng):
    good = bytearray(P.encode(_soft(rng)))
    hdr = 4
    bad = bytearray(good)
    bad[hdr] = 0x80                        # unknown flag
    assert _reason(bytes(bad)) == "bad_field"
    bad = bytearray(good)
    bad[hdr + 11] = 2                      # profile code out of range
    assert _reason(bytes(bad)) == "bad_field"
    bad = bytearray(good)
    bad[hdr + 7] = 0                       # bh = 0
    assert _reason(bytes(bad)) == "bad_field"
    # n_sym claims a huge array: rejected as oversized before any allocation
    bad = bytearray(good)
    bad[P._ENVELOPE.size + P._SOFT.size - 4:P._ENVELOPE.size + P._SOFT.size] = struct.pack("<I", 2 ** 31)
    assert _reason(bytes(bad)) == "oversized"
    # a non-finite symbol in the raw array
    bad = bytearray(good)
    off = P._ENVELOPE.size + P._SOFT.size
    bad[off:off + 4] = struct.pack("<f", float("inf"))
    assert _reason(bytes(bad)) == "bad_array"
    # too large overall
    assert _reason(good[:4] + b"\x00" * P.MAX_SOFT_FRAME_BYTES) == "oversized"


def test_feedback_round_trip():
    msgs = [
        P.Feedback(tx_id=3, image_id=9, attempt=0, decision="ACK", reason="qoe ok",
                   scores={"niqe": 4.5, "consistency": 0.93}),
        P.Feedback(tx_id=3, image_id=9, attempt=1, decision="NACK", reason="niqe 9.1 > 7", scores={"niqe": 9.1},
                   mode="chase", next_attempt=2),
        P.Feedback(tx_id=255, image_id=4095, attempt=0, decision="NACK", reason="missing frames",
                   mode="selective", frames=(0, 5, 4095), next_attempt=1),
        P.Feedback(tx_id=1, image_id=2, attempt=14, decision="NACK", mode="refine", refine_bh=2, refine_bw=2,
                   next_attempt=15),
        P.Feedback(tx_id=1, image_id=2, attempt=15, decision="FAIL", reason="attempt limit"),
    ]
    for m in msgs:
        buf = P.encode(m)
        assert P.message_type(buf) == "feedback"
        assert P.decode(buf) == m


@pytest.mark.parametrize("kw", [
    dict(decision="MAYBE"), dict(decision="NACK"),                                   # NACK without mode
    dict(decision="NACK", mode="chase", next_attempt=3),                             # wrong next attempt
    dict(decision="ACK", mode="chase", next_attempt=1),                              # ACK with a request
    dict(decision="NACK", mode="selective", next_attempt=1),                         # selective w/o frames
    dict(decision="NACK", mode="chase", frames=(1,), next_attempt=1),                # frames w/o selective
    dict(decision="NACK", mode="selective", frames=(3, 1), next_attempt=1),          # unsorted
    dict(decision="NACK", mode="selective", frames=(1, 1), next_attempt=1),          # duplicate
    dict(decision="NACK", mode="refine", refine_bh=0, refine_bw=2, next_attempt=1),  # bad refine
    dict(decision="NACK", mode="chase", refine_bh=2, refine_bw=2, next_attempt=1),
    dict(decision="ACK", scores={"x": float("inf")}), dict(decision="ACK", scores={"": 1.0}),
    dict(decision="ACK", scores={f"m{i}": 1.0 for i in range(33)}), dict(decision="ACK", reason="r" * 513),
    dict(decision="NACK", mode="bogus", next_attempt=1),
])
def test_feedback_validation(kw):
    with pytest.raises(P.ProtocolError):
        P.Feedback(tx_id=1, image_id=1, attempt=0, **kw)


def test_feedback_decode_rejections():
    good = P.encode(P.Feedback(tx_id=3, image_id=9, attempt=0, decision="NACK", mode="selective",
                               frames=(1, 2), next_attempt=1, scores={"a": 1.0}))
    assert _reason(good[:-1]) == "truncated"
    assert _reason(good + b" ") == "oversized"
    # replace the JSON body with invalid JSON of the same length
    jlen = struct.unpack_from("<H", good, 4 + P._FEEDBACK.size - 2)[0]
    assert jlen == len(json.dumps({"reason": "", "scores": {"a": 1.0}}, separators=(",", ":")))
    assert _reason(good[:-jlen] + b"{" * jlen) == "bad_json"
    body = b'{"reason":"","scores":{"a":NaN}}'
    head = bytearray(good[:-jlen])
    struct.pack_into("<H", head, 4 + P._FEEDBACK.size - 2, len(body))
    assert _reason(bytes(head) + body) == "bad_json"
    body = b'{"reason":"","scores":{},"extra":1}'
    struct.pack_into("<H", head, 4 + P._FEEDBACK.size - 2, len(body))
    assert _reason(bytes(head) + body) == "bad_json"
    bad = bytearray(good)
    bad[4 + 4] = 7                                 # decision code out of range
    assert _reason(bytes(bad)) == "bad_field"


def test_status_round_trip_and_rejections():
    req = P.encode(P.StatusRequest())
    assert P.decode(req) == P.StatusRequest()
    body = {"images_served": 3, "rejected": {"replay": 1}, "latency_ms": {"restore": {"p50": 1.5}}}
    out = P.decode(P.encode(P.StatusResponse(body)))
    assert isinstance(out, P.StatusResponse) and out.body == body
    assert _reason(req[:-1]) == "truncated"
    assert _reason(req + b"x") == "oversized"
    with pytest.raises(P.ProtocolError):
        P.StatusRequest(what="shutdown")
    with pytest.raises(P.ProtocolError) as e:
        P.encode(P.StatusResponse({"x": "y" * P.MAX_STATUS_BYTES}))
    assert e.value.reason == "oversized"
    raw = b'["not", "an", "object"]'
    assert _reason(b"IC\x01\x04" + struct.pack("<I", len(raw)) + raw) == "bad_json"


def test_feedback_topic_is_prefix_free():
    topics = [P.feedback_topic(i) for i in range(256)]
    assert len(set(topics)) == 256
    for a in topics:
        assert sum(b.startswith(a) for b in topics) == 1
    with pytest.raises(P.ProtocolError):
        P.feedback_topic(256)


def test_fuzzed_bytes_never_crash(rng):
    """Random corruption of valid messages raises ProtocolError or decodes to a valid message, nothing else."""
    goods = [P.encode(_soft(rng, per_symbol=False)), P.encode(_soft(rng, frame_idx=16)),
             P.encode(P.Feedback(tx_id=3, image_id=9, attempt=0, decision="ACK", scores={"a": 1.0})),
             P.encode(P.StatusRequest())]
    for _ in range(400):
        buf = bytearray(goods[rng.integers(len(goods))])
        for _ in range(rng.integers(1, 4)):
            i = rng.integers(min(len(buf), 64))
            buf[i] = rng.integers(256)
        if rng.random() < 0.3:
            buf = buf[:rng.integers(len(buf))]
        try:
            P.decode(bytes(buf))
        except P.ProtocolError:
            pass


# --- the protocol validates exactly what the frame header carries (one table: infercom.limits) -------------

def _accepts(make) -> bool:
    try:
        make()
    except ValueError:
        return False
    return True


def _hdr_kw(name):
    """Config + ids where ``name`` may take both ends of its range in the header *and* the protocol (frame_idx
    4095: an image of exactly 4096 frames, the protocol's MAX_FRAMES)."""
    cfg = dict(bh=1, bw=1, planes=8, channels=3, profile="importance", design_snr_db=-4, key_id=0,
               height=16, width=16, frame_len_log2=16)
    if name == "frame_idx":
        cfg.update(height=128, width=128, channels=1, frame_len_log2=4)
    return dict(tx_id=7, image_id=1234, attempt=2, frame_idx=0), cfg


@pytest.mark.parametrize("name", sorted(__import__("infercom.limits").limits.FIELD_RANGES))
def test_validators_accept_exactly_the_header_ranges(rng, name):
    from infercom import header, limits
    from infercom.header import FrameHeader

    lo, hi = limits.FIELD_RANGES[name]
    ids, cfg = _hdr_kw(name)
    for v in (lo - 1, lo, lo + 1, hi - 1, hi, hi + 1):
        i, c = dict(ids), dict(cfg)
        (i if name in header.ID_FIELDS else c)[name] = v
        header_ok = _accepts(lambda: FrameHeader(**i, **c))
        if name in header.ID_FIELDS:
            conf = P.ImageConfig(**c)
            n = conf.frame_payload_len(max(0, min(v, conf.frame_count() - 1)))
            proto_ok = _accepts(lambda: P.SoftFrame(**i, config=conf, snr_db=0.0, noise_var=1.0,
                                                    y=np.zeros(n, np.complex64), stream_id=1, seq=0))
        else:
            proto_ok = _accepts(lambda: P.ImageConfig(**c))
        assert header_ok == proto_ok == (lo <= v <= hi), (name, v)
        if header_ok:
            # and a message with that value survives the wire
            h = FrameHeader(**i, **c)
            msg = P.decode(P.encode_soft_frame(h, np.zeros(h.payload_len(), np.complex64), 1.0, 0.0, 1, 0))
            assert msg.frame_header() == h


_SOFT_NAMES = ("flags", "tx_id", "image_id", "attempt", "frame_idx", "bh", "bw", "planes", "channels",
               "profile", "design_snr_db", "key_id", "height", "width", "frame_len_log2", "stream_id", "seq",
               "snr_db", "noise_var", "n_sym")


def test_decode_rejects_out_of_range_wire_values(rng):
    """Values the wire types can hold but the header cannot: decode rejects them as bad_field."""
    from infercom import limits

    buf = bytearray(P.encode(_soft(rng, per_symbol=False)))
    off = 4
    vals = list(P._SOFT.unpack_from(buf, off))
    bad = {"bh": limits.MAX_BLOCK + 1, "bw": 0, "planes": limits.MAX_PLANES + 1, "channels": 2,
           "design_snr_db": limits.DESIGN_SNR_MAX_DB + 1, "key_id": limits.MAX_KEY_ID + 1,
           "attempt": limits.MAX_ATTEMPT + 1, "image_id": limits.MAX_IMAGE_ID + 1, "height": limits.MAX_SIDE + 1,
           "width": 0, "frame_len_log2": limits.MAX_FRAME_LEN_LOG2 + 1, "profile": len(limits.PROFILES)}
    for name, v in bad.items():
        b = bytearray(buf)
        w = list(vals)
        w[_SOFT_NAMES.index(name)] = v
        P._SOFT.pack_into(b, off, *w)
        with pytest.raises(P.ProtocolError) as e:
            P.decode(bytes(b))
        assert e.value.reason == "bad_field", name


def test_payload_count_has_one_definition():
    """protocol.n_payload_symbols is link's; ImageConfig, FrameHeader and link.layout agree over a grid,
    and both config classes dispatch an NR frame to infercom.nr.frames."""
    import itertools

    from infercom import header, link
    from infercom.nr import frames as nrf

    assert P.n_payload_symbols is link.n_payload_symbols
    assert P.frame_count is header.frame_count and P.frame_payload_len is header.frame_payload_len
    for (h, w), (bh, bw), m, c in itertools.product([(1, 1), (5, 7), (64, 48), (4096, 3), (333, 4096)],
                                                    [(1, 1), (1, 2), (3, 3), (2, 5), (8, 8)], [1, 5, 8], [1, 3]):
        cfg = link.LinkConfig(bh=bh, bw=bw, planes=m)
        want = link.layout(h, w, c, cfg).n_symbols
        assert link.n_payload_symbols(h, w, c, bh, bw, m) == want
        ic = P.ImageConfig(bh=bh, bw=bw, planes=m, channels=c, profile="equal", design_snr_db=0, key_id=0,
                           height=h, width=w, frame_len_log2=16)
        fh = header.FrameHeader.for_image(cfg, h, w, c, tx_id=1, image_id=2, frame_len_log2=16)
        assert ic.n_symbols() == fh.n_symbols() == want
        assert ic.frame_count() == fh.frame_count() == -(-want // 2 ** 16)
        last = ic.frame_count() - 1
        assert ic.frame_payload_len(last) == fh.replace(frame_idx=last).payload_len() == want - last * 2 ** 16
    for n_sym in (1, 7, 4096, 100_001):
        h = nrf.nr_header(1, 2, 0, 0, n_sym, 3, "chase", frame_len_log2=12)
        ic = P.ImageConfig.from_header(h)
        assert ic.system == "nr"
        assert ic.n_symbols() == h.n_symbols() == nrf.n_symbols_of(h) == n_sym
        assert ic.frame_count() == h.frame_count() == -(-n_sym // 2 ** 12)
