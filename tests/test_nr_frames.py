# SPDX-License-Identifier: GPL-3.0-or-later
"""The NR baseline in the InferCom frame format and through the server (issue #11): header and protocol
round trips of NR frames, the server deciding by CRC with Chase / IR HARQ over the real protocol."""

from __future__ import annotations

import numpy as np
import pytest

from infercom import header, protocol
from infercom.arq import ArqConfig
from infercom.frame import FrameFormat
from infercom.header import FrameHeader, header_bits, parse_header_bits
from infercom.imageio import load_image
from infercom.link import LinkConfig
from infercom.nr.frames import decode_attempts, nr_fields, nr_header, nr_image_frames
from infercom.nr.harq import NrImageTx
from infercom.nr.jpeg import decode_jpeg
from receiver_server.config import PolicyConfig, ServerConfig
from receiver_server.records import load_records
from receiver_server.server import InferenceServer
from receiver_server.simlink import ChannelSpec, SimTransmitter


def test_nr_header_round_trips_through_header_bits_and_protocol():
    for n_sym, code, harq in ((1, 0, "chase"), (1000, 4, "ir"), ((1 << 24) - 1, 10, "ir")):
        h = nr_header(7, 4095, 3, 0, n_sym, code, harq, frame_len_log2=16)
        assert h.system == "nr" and h.n_symbols() == n_sym
        assert nr_fields(h) == {"n_symbols": n_sym, "coded_bits": 2 * n_sym, "rate_code": code, "harq": harq}
        assert parse_header_bits(header_bits(h)) == h
        y = np.zeros(h.payload_len(), np.complex64)
        m = protocol.decode(protocol.encode_soft_frame(h, y, 0.5, 1.0, stream_id=1, seq=1))
        assert m.config.system == "nr" and m.frame_header() == h and m.config.n_symbols() == n_sym
    with pytest.raises(ValueError, match="no InferCom"):
        h.link_config()
    # an NR header's fixed fields are checked: the same bits with planes 7 are not a valid header
    bad = header_bits(h)
    bad_h = FrameHeader(**{**h.__dict__, "system": "infercom"})       # InferCom reading of the same fields
    assert parse_header_bits(header_bits(bad_h)) == bad_h
    with pytest.raises(ValueError, match="fixed"):
        FrameHeader(**{**h.__dict__, "planes": 7})
    assert bad.shape == (header.HEADER_INFO_BITS,)
    # InferCom headers are unchanged on the wire: system defaults to infercom, the bit is 0
    ic = FrameHeader(1, 2, 0, 0, 3, 3, 8, 3, "importance", -4, 0, 64, 64, 10)
    assert ic.system == "infercom" and parse_header_bits(header_bits(ic)) == ic
    assert header.field_pass_rate(50_000) < 2e-4


def test_nr_frames_carry_the_transport_block(datasets_dir):
    img = load_image(datasets_dir / "kodak24" / "kodim19.png")[:96, :128]
    tx = NrImageTx(img, code_rate="1/3", harq="ir")
    fmt = FrameFormat(frame_len_log2=10)
    frames = nr_image_frames(tx, 5, 9, 1, fmt)
    assert len(frames) == -(-tx.n_symbols // 1024) and all(h.system == "nr" for h, _ in frames)
    h0 = frames[0][0]
    assert h0.attempt == 1 and h0.n_symbols() == tx.n_symbols
    # noiseless attempt 1 alone (rv 2) decodes to the JPEG the transmitter sent
    ok, dec, info, rx = decode_attempts(h0, [(1, tx.symbols(1), np.full(tx.n_symbols, 1e-3, np.float32))])
    assert ok and np.array_equal(dec, decode_jpeg(tx.jpeg)) and rx.tb.A == tx.tb.A


@pytest.mark.parametrize("harq", ["ir", "chase"])
def test_server_decides_nr_by_crc_with_harq(tmp_path, datasets_dir, harq):
    imgs = [load_image(datasets_dir / "kodak24" / f"{n}.png")[:128, :192] for n in ("kodim03", "kodim23")]
    cfg = ServerConfig(bind="tcp://127.0.0.1:0", feedback_bind="tcp://127.0.0.1:0", restorer="bicubic",
                       log_level="error", records_file=str(tmp_path / "rec.jsonl"),
                       artifacts_dir=str(tmp_path / "art"), policy=PolicyConfig(max_attempts=6))
    out = {}
    with InferenceServer(cfg) as srv:
        for i, snr in enumerate((-4.0, 2.0)):
            tx = SimTransmitter(20 + i, [(k, im, {}) for k, im in enumerate(imgs)], srv.bound["soft_frames"],
                                srv.bound["feedback"], LinkConfig(), ArqConfig(max_attempts=6, timeout_s=20),
                                ChannelSpec(snr_db=snr), seed=i, frame_len_log2=11,
                                nr={"code_rate": "1/3", "harq": harq})
            out[snr] = tx.run(120)
    # above the cliff the first attempt passes its CRC; well below it HARQ needs retransmissions and gets there
    assert [r["outcome"] for r in out[2.0]] == ["ACK", "ACK"] and all(r["n_attempts"] == 1 for r in out[2.0])
    assert all(r["outcome"] == "ACK" and r["n_attempts"] >= 2 for r in out[-4.0]), out[-4.0]
    srec = load_records(tmp_path / "rec.jsonl")
    for r in srec:
        for a in r["attempts"][:-1]:
            assert a["decision"] == "NACK" and a["reason"].startswith("CRC failed") and a["scores"]["crc_ok"] == 0
        assert r["attempts"][-1]["reason"].startswith("CRC ok")
    # the delivered image is exactly the transmitted JPEG decoded (no partial image, no QoE restoration)
    arts = sorted((tmp_path / "art").glob("nr_tx020_img0000_*.npz"))
    with np.load(arts[-1]) as z:
        tx_ref = NrImageTx(imgs[0], code_rate="1/3", harq=harq, max_attempts=6)
        assert np.array_equal(z["restored"], decode_jpeg(tx_ref.jpeg))
