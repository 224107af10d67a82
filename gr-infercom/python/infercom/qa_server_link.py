# SPDX-License-Identifier: GPL-3.0-or-later
"""qa for server_link: soft frames reach a ROUTER intact, feedback from a PUB comes out as messages, a missing
server neither blocks nor grows memory, bad PDUs and bad feedback are counted; with CurveZMQ certificates both
sockets talk to CURVE servers that admit only the client's own public key, on a feedback address that is not
the server port + 1."""

import time

import numpy as np
import pmt
import pytest
import zmq
from gnuradio import blocks, gr

from gnuradio.infercom import server_link
from gnuradio.infercom.server_link import default_feedback_addr
from gnuradio.infercom.tags import make_pdu
from infercom import protocol
from infercom.netports import free_tcp_port

CFG = dict(bh=3, bw=3, planes=8, channels=3, profile="importance", design_snr_db=-4, key_id=0, height=64,
           width=64, frame_len_log2=10)


def _soft_pdu(rng, frame_idx=0):
    y = (rng.standard_normal(1024) + 1j * rng.standard_normal(1024)).astype(np.complex64)
    meta = dict(CFG, tx_id=3, image_id=9, attempt=1, frame_idx=frame_idx, noise_var=np.float32(0.5), snr_db=3.0)
    return make_pdu(meta, y), y


def _router_and_default_pub(ctx):
    """A ROUTER on a free loopback port and a PUB on the port above it (the feedback address server_link takes
    by default); the ports are chosen by the binds themselves."""
    for _ in range(20):
        router, pub = ctx.socket(zmq.ROUTER), ctx.socket(zmq.PUB)
        for sock in (router, pub):
            sock.setsockopt(zmq.LINGER, 0)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        try:
            pub.bind(f"tcp://127.0.0.1:{port + 1}")
            return router, pub, port
        except zmq.ZMQError:
            router.close(0)
            pub.close(0)
    pytest.fail("no free pair of loopback ports in 20 tries")


def test_soft_frames_out_feedback_in():
    rng = np.random.default_rng(1)
    ctx = zmq.Context()
    try:
        router, pub, port = _router_and_default_pub(ctx)
        tb = gr.top_block()
        link = server_link(f"tcp://127.0.0.1:{port}", "", [3], 100)
        dbg = blocks.message_debug()
        tb.msg_connect(link, "feedback", dbg, "store")
        tb.start()
        pdus = [_soft_pdu(rng, f) for f in range(2)]
        for p, _ in pdus:
            link.to_basic_block()._post(pmt.intern("in"), p)
        got = []
        router.setsockopt(zmq.RCVTIMEO, 5000)
        for _ in range(2):
            ident, buf = router.recv_multipart()
            got.append(protocol.decode(buf))
        assert [m.frame_idx for m in got] == [0, 1]
        assert np.array_equal(got[0].y, pdus[0][1]) and got[0].noise_var == pytest.approx(0.5)
        assert got[1].seq > got[0].seq and got[0].tx_id == 3 and got[0].attempt == 1
        fb = protocol.Feedback(tx_id=3, image_id=9, attempt=1, decision="NACK", mode="selective", frames=(0, 2),
                               next_attempt=2, reason="clipiqa low", scores={"clipiqa": 0.5})
        other = protocol.Feedback(tx_id=4, image_id=9, attempt=1, decision="ACK")
        t0 = time.monotonic()
        while dbg.num_messages() == 0 and time.monotonic() - t0 < 5:   # slow joiner: publish until received
            pub.send_multipart([protocol.feedback_topic(4), protocol.encode(other)])
            pub.send_multipart([protocol.feedback_topic(3), protocol.encode(fb)])
            pub.send_multipart([protocol.feedback_topic(3), b"ICjunk"])
            time.sleep(0.05)
        time.sleep(0.1)
        tb.stop()
        tb.wait()
        msgs = [pmt.to_python(dbg.get_message(i)) for i in range(dbg.num_messages())]
        assert msgs and all(m["tx_id"] == 3 for m in msgs)     # only the subscribed transmitter
        assert msgs[0]["decision"] == "NACK" and list(msgs[0]["frames"]) == [0, 2]
        assert link.counters["bad_feedback"] >= 1
    finally:
        ctx.destroy(linger=0)


def test_missing_server_drops_not_blocks():
    rng = np.random.default_rng(2)
    port = free_tcp_port()
    link = server_link(f"tcp://127.0.0.1:{port}", "", [], 5)
    link.start()
    try:
        pdu, _ = _soft_pdu(rng)
        t0 = time.monotonic()
        for _ in range(50):
            link._on_pdu(pdu)
        assert time.monotonic() - t0 < 2.0
        assert link.counters["sent"] <= 6 and link.counters["dropped"] >= 44   # bounded by the HWM
        link._on_pdu(pmt.intern("junk"))
        link._on_pdu(make_pdu(dict(CFG, tx_id=3), np.zeros(4, np.complex64)))
        assert link.counters["bad_pdus"] == 2
    finally:
        link.stop()


def test_addresses():
    assert default_feedback_addr("tcp://10.0.0.1:7000") == "tcp://10.0.0.1:7001"
    with pytest.raises(ValueError):
        default_feedback_addr("ipc:///tmp/x")
    with pytest.raises(ValueError):
        server_link("tcp://127.0.0.1:5555", "", [300])


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")
def test_curve_keys_and_a_non_default_feedback_address(tmp_path):
    import zmq.auth
    from zmq.auth.thread import ThreadAuthenticator

    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    for name in ("server", "rx"):
        zmq.auth.create_certificates(keys, name)
    (allowed / "rx.key").write_bytes((keys / "rx.key").read_bytes())   # ZAP admits rx's public key only
    rx_public = zmq.auth.load_certificate(keys / "rx.key")[0].decode()
    public, secret = zmq.auth.load_certificate(keys / "server.key_secret")
    ctx = zmq.Context()
    auth = ThreadAuthenticator(ctx)
    try:
        auth.start()
        auth.configure_curve(domain="*", location=str(allowed))
        router, pub = ctx.socket(zmq.ROUTER), ctx.socket(zmq.PUB)
        for sock in (router, pub):
            sock.setsockopt(zmq.LINGER, 0)
            sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True
        port = router.bind_to_random_port("tcp://127.0.0.1")
        fb_port = pub.bind_to_random_port("tcp://127.0.0.1")
        while fb_port == port + 1:                              # must not be the default address
            pub.unbind(f"tcp://127.0.0.1:{fb_port}")
            fb_port = pub.bind_to_random_port("tcp://127.0.0.1")
        rng = np.random.default_rng(4)
        tb = gr.top_block()
        link = server_link(f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{fb_port}", [3], 100,
                           str(keys / "server.key"), str(keys / "rx.key_secret"))
        assert link.feedback_addr == f"tcp://127.0.0.1:{fb_port}"
        dbg = blocks.message_debug()
        tb.msg_connect(link, "feedback", dbg, "store")
        tb.start()
        pdu, y = _soft_pdu(rng)
        link.to_basic_block()._post(pmt.intern("in"), pdu)
        assert router.poll(5000), "no soft frame through CURVE"
        frames = router.recv_multipart(copy=False)
        assert frames[1].get("User-Id") == rx_public              # the client's fixed key, not a random one
        msg = protocol.decode(frames[1].bytes)
        assert msg.frame_idx == 0 and np.array_equal(msg.y, y)
        fb = protocol.Feedback(tx_id=3, image_id=9, attempt=1, decision="ACK", reason="ok", scores={"niqe": 5.0})
        t0 = time.monotonic()
        while dbg.num_messages() == 0 and time.monotonic() - t0 < 5:   # slow joiner (plus the handshake)
            pub.send_multipart([protocol.feedback_topic(3), protocol.encode(fb)])
            time.sleep(0.05)
        tb.stop()
        tb.wait()
        assert dbg.num_messages() >= 1, "no feedback through CURVE on the non-default feedback address"
        got = pmt.to_python(dbg.get_message(0))
        assert got["decision"] == "ACK" and got["tx_id"] == 3 and link.counters["feedback"] >= 1
    finally:
        auth.stop()
        ctx.destroy(linger=0)


def test_curve_bad_key_files_fail_at_construction(tmp_path):
    import zmq.auth

    zmq.auth.create_certificates(tmp_path, "server")
    with pytest.raises(ValueError, match="server_link: .*needs both"):
        server_link("tcp://127.0.0.1:5555", "", [], 10, str(tmp_path / "server.key"), "")
    with pytest.raises(ValueError, match="server_link: .*server.key: holds no secret key"):
        server_link("tcp://127.0.0.1:5555", "", [], 10, str(tmp_path / "server.key"), str(tmp_path / "server.key"))
    with pytest.raises(ValueError, match="missing.key_secret: certificate file does not exist"):
        server_link("tcp://127.0.0.1:5555", "", [], 10, str(tmp_path / "server.key"),
                    str(tmp_path / "missing.key_secret"))
