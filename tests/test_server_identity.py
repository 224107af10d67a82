# SPDX-License-Identifier: GPL-3.0-or-later
"""Transmitter identity and bounded memory (issue #9): the CurveZMQ allow-list, the forge-first / attempt-jump /
fresh-id replay attacks without CURVE, and the server's RSS under a huge declared size and a frame flood."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from infercom import protocol
from infercom.header import FrameHeader
from receiver_server.allowlist import load_allow_list
from receiver_server.assembly import Assembler, Rejected
from receiver_server.records import ServerStats, load_records
from receiver_server.simlink import status_request
from test_server import LOOP, make_server, run_tx, synth_images

REPO = Path(__file__).resolve().parents[1]


def _frame(tx, img, attempt=0, idx=0, stream=5, seq=1, height=72, width=96, fill=0.5, fll=10, b=2):
    h = FrameHeader(tx_id=tx, image_id=img, attempt=attempt, frame_idx=idx, bh=b, bw=b, planes=8, channels=3,
                    profile="importance", design_snr_db=-4, key_id=0, height=height, width=width,
                    frame_len_log2=fll)
    y = np.zeros(h.payload_len(), np.complex64) + fill
    return protocol.encode_soft_frame(h, y, 0.1, 10.0, stream_id=stream, seq=seq)


def _dealer(srv, keys=None, server_key=None):
    d = zmq.Context.instance().socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 0)
    if server_key is not None:
        d.curve_serverkey = server_key
        d.curve_publickey, d.curve_secretkey = keys
    d.connect(srv.bound["soft_frames"])
    return d


def _wait(pred, timeout_s=5.0):
    t = time.monotonic() + timeout_s
    while time.monotonic() < t:
        if pred():
            return True
        time.sleep(0.02)
    return False


# ------------------------------------------------------------------------------------- without CURVE


def test_forge_first_is_not_acknowledged_as_the_real_transmitter(tmp_path):
    """A forger sends the first frame of (tx 52, image 0); the real transmitter's frames then arrive from
    another RX peer. The forged content must not be ACKed: the image is contested and FAILs explicitly."""
    imgs = synth_images(1, seed=21)
    refs = {(52, 0): imgs[0]}
    with make_server(tmp_path, refs, threshold=15.0, assembly_timeout_s=3.0) as srv:
        d = _dealer(srv)
        d.send(_frame(52, 0, idx=0, stream=0xBAD, fill=-0.5))        # frame 0 of 4: the attempt stays open
        assert _wait(lambda: srv.stats.snapshot()["counters"].get("frames_accepted", 0) == 1)
        _, recs = run_tx(srv, 52, imgs, snr_db=10.0, max_attempts=2, timeout_s=6.0)
        st = status_request(srv.bound["soft_frames"])
        d.close(0)
    assert recs[0]["outcome"] == "FAIL" and "contested" in recs[0]["failure"]
    assert st["rejected"]["foreign_stream"] >= 1 and st["decisions"].get("ACK", 0) == 0
    srec = load_records(tmp_path / "server_records.jsonl")
    assert srec[-1]["outcome"] == "FAIL" and srec[-1]["contested_frames"] >= 1


def test_attempt_jump_is_rejected_and_harmless(tmp_path):
    imgs = synth_images(1, seed=22)
    refs = {(9, 0): imgs[0]}
    with make_server(tmp_path, refs, threshold=15.0) as srv:
        d = _dealer(srv)
        d.send(_frame(9, 0, attempt=15, stream=0xBAD))                # a spurious FAIL before the fix
        assert _wait(lambda: srv.stats.snapshot()["rejected"].get("attempt_jump", 0) == 1)
        _, recs = run_tx(srv, 9, imgs, snr_db=10.0)
        d.close(0)
    assert recs[0]["outcome"] == "ACK" and recs[0]["n_attempts"] == 1


def test_replay_under_fresh_stream_ids_is_rejected(tmp_path):
    imgs = synth_images(1, seed=23)
    refs = {(3, 0): imgs[0], (3, 1): imgs[0]}
    with make_server(tmp_path, refs, threshold=15.0) as srv:
        d = _dealer(srv)
        first = _frame(3, 1, idx=0, stream=1, seq=1)
        d.send(first)
        assert _wait(lambda: srv.stats.snapshot()["counters"].get("frames_accepted", 0) == 1)
        # the same frame under 4100 fresh stream ids, then once more exactly: all replays
        for k in range(4100):
            buf = bytearray(first)
            buf[protocol._SOFT_IDS] = (1000 + k).to_bytes(8, "little") + (1).to_bytes(8, "little")
            d.send(bytes(buf))
        d.send(first)
        assert _wait(lambda: srv.stats.snapshot()["rejected"].get("replay", 0) == 4101, 20.0)
        st = srv.stats.snapshot()
        d.close(0)
    assert st["counters"]["frames_accepted"] == 1


def test_new_stream_cannot_reset_an_image_in_progress():
    st = ServerStats()
    asm = Assembler(st, timeout_s=5.0)
    msg = protocol.decode(_frame(1, 2, attempt=1, idx=0))
    asm.add(msg, 0.0, source=b"rx-a")
    with pytest.raises(Rejected) as e:
        asm.add(protocol.decode(_frame(1, 2, attempt=0, idx=1)), 0.1, source=b"rx-b")
    assert e.value.reason == "foreign_stream" and asm.get((1, 2)).contested == 1
    # the owner itself restarting at attempt 0 (a restarted transmitter) is still a new image
    asm.add(protocol.decode(_frame(1, 2, attempt=0, idx=1)), 0.2, source=b"rx-a")
    assert asm.get((1, 2)).generation == 1 and asm.get((1, 2)).contested == 0


# ------------------------------------------------------------------------------------- memory


def test_memory_grows_with_frames_not_declared_size_and_counts_jobs():
    st = ServerStats()
    queued = {"bytes": 0}
    asm = Assembler(st, timeout_s=1.0, max_bytes=8 << 20, min_received_fraction=0.5,
                    external_bytes=lambda: queued["bytes"])
    asm.add(protocol.decode(_frame(1, 0, height=4096, width=4096, fll=15, b=3)), 0.0, source=b"a")
    frame_bytes = 12 * (1 << 15)
    assert asm.nbytes == frame_bytes                                # not 12 * 22.4 M symbols
    jobs, _ = asm.poll(2.0)
    assert len(jobs) == 1 and jobs[0].y is None and jobs[0].nbytes == 0 and jobs[0].received_fraction < 0.01
    # queued jobs count in the same budget: over it, images are evicted
    asm.add(protocol.decode(_frame(2, 0, fll=10)), 3.0, source=b"a")
    asm.add(protocol.decode(_frame(3, 0, fll=10)), 3.0, source=b"a")
    queued["bytes"] = (8 << 20) - 12 * 1024
    asm.add(protocol.decode(_frame(4, 0, fll=10)), 3.1, source=b"a")
    assert st.counters["images_evicted"] >= 1 and asm.nbytes + queued["bytes"] <= (8 << 20) + 12 * 1024


def test_pixel_cap_per_transmitter():
    st = ServerStats()
    asm = Assembler(st, max_tx_pixels=2 * 72 * 96)
    asm.add(protocol.decode(_frame(1, 0)), 0.0, source=b"a")
    asm.add(protocol.decode(_frame(1, 1)), 0.0, source=b"a")
    with pytest.raises(Rejected) as e:
        asm.add(protocol.decode(_frame(1, 2)), 0.0, source=b"a")
    assert e.value.reason == "tx_pixel_cap"
    asm.add(protocol.decode(_frame(2, 0)), 0.0, source=b"a")        # another transmitter has its own cap


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_server_rss_bounded_under_huge_declared_size_and_flood(tmp_path):
    """A real ``infercom server`` process: one frame declaring 4096x4096 and a paced flood of 100 such frames
    (100 transmitters) leave its RSS within max_buffer_bytes (64 MiB here) + 96 MiB of its idle RSS. Before the
    fix one such frame allocated the whole image and restored it (> 1 GB)."""
    from infercom.netports import free_tcp_port_pair

    port = free_tcp_port_pair()                 # the server binds port and port + 1 (feedback): both must be free
    cfg = tmp_path / "server.yaml"
    cfg.write_text(f"bind: tcp://127.0.0.1:{port}\nfeedback_bind: tcp://127.0.0.1:{port + 1}\n"
                   f"max_buffer_bytes: {64 << 20}\nmax_image_symbols: {1 << 25}\nassembly_timeout_s: 0.5\n"
                   "restorer: bicubic\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.Popen([sys.executable, "-m", "receiver_server.cli", "--config", str(cfg),
                          "--log-file", str(tmp_path / "log.jsonl")], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert json.loads(p.stdout.readline())["event"] == "ready"
        time.sleep(0.5)
        idle = _rss_mb(p.pid)
        d = zmq.Context.instance().socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.connect(f"tcp://127.0.0.1:{port}")
        peak = idle
        d.send(_frame(1, 0, height=4096, width=4096, fll=15, b=3, stream=1, seq=1))
        for _ in range(30):                    # past the assembly timeout: the attempt is decided
            time.sleep(0.05)
            peak = max(peak, _rss_mb(p.pid))
        for k in range(100):
            d.send(_frame(10 + k, 0, height=4096, width=4096, fll=15, b=3, stream=2, seq=k + 1, fill=0.1 * (k % 7)))
            time.sleep(0.01)
            peak = max(peak, _rss_mb(p.pid))
        for _ in range(40):
            time.sleep(0.05)
            peak = max(peak, _rss_mb(p.pid))
        st = status_request(f"tcp://127.0.0.1:{port}")
        d.close(0)
    finally:
        p.terminate()
        p.wait(10)
    assert st["counters"]["frames_accepted"] == 101
    assert st["decisions"]["NACK"] >= 100            # decided without restoring: too little received
    assert peak - idle < 64 + 96, (idle, peak)


# ------------------------------------------------------------------------------------- CURVE allow-list


@pytest.fixture()
def keys(tmp_path):
    from zmq.auth import create_certificates, load_certificate
    d = tmp_path / "keys"
    d.mkdir()
    out = {}
    for name in ("server", "rx1", "rx2", "stranger"):
        pub_file, sec_file = create_certificates(str(d), name)
        out[name] = load_certificate(sec_file)
        out[name + "_file"] = Path(pub_file)
    allow = tmp_path / "allow.yaml"
    allow.write_text("clients:\n"
                     f"  - {{name: rx1, key_file: keys/rx1.key, tx_ids: [52], status: true}}\n"
                     f"  - {{name: rx2, public_key: \"{out['rx2'][0].decode()}\", tx_ids: [7]}}\n")
    out["allow"] = allow
    out["server_secret"] = str(d / "server.key_secret")
    return out


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")
def test_allow_list_maps_keys_to_tx_ids(tmp_path, keys):
    imgs = synth_images(1, seed=24)
    refs = {(52, 0): imgs[0]}
    server_pub = keys["server"][0]
    with make_server(tmp_path, refs, threshold=15.0, curve_secret_file=keys["server_secret"],
                     curve_allow_file=str(keys["allow"])) as srv:
        # an allowed key under another key's tx id: rejected and counted (rx2 may use tx 7 only)
        d2 = _dealer(srv, keys["rx2"], server_pub)
        d2.send(_frame(52, 0, stream=9))
        assert _wait(lambda: srv.stats.snapshot()["rejected"].get("unauthorised_tx", 0) == 1)
        # an unknown key delivers nothing (its CURVE handshake is refused by the ZAP handler)
        d3 = _dealer(srv, keys["stranger"], server_pub)
        d3.send(_frame(52, 0, stream=10))
        time.sleep(0.5)
        assert srv.stats.snapshot()["counters"].get("frames_accepted", 0) == 0
        # the allow-listed key works end to end, and may ask for status
        from receiver_server.simlink import SimTransmitter
        from infercom.arq import ArqConfig
        from infercom.link import LinkConfig
        tx = SimTransmitter(52, [(0, imgs[0], {})], srv.bound["soft_frames"], srv.bound["feedback"],
                            LinkConfig(bh=2, bw=2), ArqConfig(max_attempts=2, timeout_s=5.0), frame_len_log2=10,
                            curve_server_key=server_pub, curve_client_keys=keys["rx1"])
        recs = tx.run(60)
        st = status_request(srv.bound["soft_frames"], curve_server_key=server_pub, curve_client_keys=keys["rx1"])
        with pytest.raises(TimeoutError):         # rx2 is not allowed to ask for status: no answer
            status_request(srv.bound["soft_frames"], timeout_s=1.0, curve_server_key=server_pub,
                           curve_client_keys=keys["rx2"])
        d2.close(0)
        d3.close(0)
    assert recs[0]["outcome"] == "ACK"
    assert st["rejected"]["unauthorised_tx"] == 1


def test_allow_list_file_errors(tmp_path, keys):
    al = load_allow_list(keys["allow"])
    assert al.may_send(keys["rx1"][0].decode(), 52) and not al.may_send(keys["rx1"][0].decode(), 7)
    assert al.may_ask_status(keys["rx1"][0].decode()) and not al.may_ask_status(keys["rx2"][0].decode())
    bad = {
        "clients: 3\n": "one key 'clients'",
        "clients:\n  - {tx_ids: [1]}\n": "exactly one of public_key, key_file",
        "clients:\n  - {public_key: abc, tx_ids: [1]}\n": "Z85",
        "clients:\n  - {key_file: nowhere.key}\n": "does not exist",
        f"clients:\n  - {{key_file: {keys['rx1_file']}, tx_ids: [300]}}\n": "0..255",
        f"clients:\n  - {{key_file: {keys['rx1_file']}, colour: red}}\n": "unknown keys",
    }
    for text, msg in bad.items():
        f = tmp_path / "bad.yaml"
        f.write_text(text)
        with pytest.raises(ValueError, match=msg):
            load_allow_list(f)
    from receiver_server.config import ServerConfig
    with pytest.raises(ValueError, match="needs curve_secret_file"):
        ServerConfig(bind=LOOP, curve_allow_file=str(keys["allow"]))


def test_too_little_received_is_answered_without_restoring(tmp_path):
    """One frame of a 48-frame image, then the assembly timeout: the attempt is NACKed on the received
    fraction alone (no restoration, no QoE call), and the record says why, with the score it was decided on."""
    imgs = synth_images(1, seed=25)
    with make_server(tmp_path, {(8, 0): imgs[0]}, threshold=15.0, assembly_timeout_s=0.3) as srv:
        d = _dealer(srv)
        d.send(_frame(8, 0, idx=1, stream=3, height=128, width=128, fll=10))   # 1024 of 49152 symbols
        assert _wait(lambda: srv.stats.snapshot()["decisions"].get("NACK", 0) == 1)
        oracle_calls = srv.metrics["psnr_oracle"].calls
        d.close(0)
    assert oracle_calls == 0
    rec = [json.loads(x) for x in (tmp_path / "server.log").read_text().splitlines() if '"decision"' in x]
    dec = [r for r in rec if r.get("event") == "decision"][0]
    assert dec["decision"] == "NACK" and "not restored" in dec["reason"] and dec["mode"] == "chase"
    assert dec["scores"] == {"received_fraction": round(1024 / 49152, 4)}
