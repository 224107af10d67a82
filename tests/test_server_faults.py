# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault and load tests (loopback only, bounded in time): bad messages, 8 concurrent transmitters, a server
killed and restarted mid-run, failing and slow restorers."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import zmq

from infercom import protocol
from infercom.arq import ArqConfig
from infercom.header import FrameHeader
from infercom.link import LinkConfig
from infercom.netports import free_tcp_port_pair
from receiver_server.records import load_records
from receiver_server.restorers import get_restorer
from receiver_server.simlink import ChannelSpec, SimTransmitter, status_request
from test_server import REPO, _wait_ready, make_server, run_tx, synth_images


def _good_frame(seq, stream=77, tx=9, img=0, idx=0):
    h = FrameHeader(tx_id=tx, image_id=img, attempt=0, frame_idx=idx, bh=2, bw=2, planes=8, channels=3,
                    profile="importance", design_snr_db=-4, key_id=0, height=72, width=96, frame_len_log2=10)
    y = np.zeros(h.payload_len(), np.complex64) + 0.5
    return protocol.encode_soft_frame(h, y, 0.1, 10.0, stream_id=stream, seq=seq)


def test_bad_messages_rejected_counted_logged_and_server_keeps_serving(tmp_path):
    imgs = synth_images(2, seed=11)
    refs = {(1, i): im for i, im in enumerate(imgs)}
    with make_server(tmp_path, refs, threshold=20.0) as srv:
        ctx = zmq.Context.instance()
        d = ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.connect(srv.bound["soft_frames"])
        good = _good_frame(5)
        bad = {
            "bad_magic": b"XX" + good[2:],
            "bad_version": good[:2] + b"\x07" + good[3:],
            "unknown_type": good[:3] + b"\x63" + good[4:],
            "truncated": good[: len(good) // 2],
            "oversized": good + b"\x00" * (protocol.MAX_SOFT_FRAME_BYTES + 10),
            "empty": b"",
            "bad_field": bytearray(good),
            "bad_json": b"IC\x01\x03" + struct.pack("<I", 3) + b"{x}",
        }
        bad["bad_field"][4 + 7] = 0                               # bh = 0
        bad["bad_field"] = bytes(bad["bad_field"])
        for buf in bad.values():
            d.send(buf)
        # a valid frame of an image too large for this server (4096x4096 at 1x1: 2**26 symbols)
        hh = FrameHeader(tx_id=9, image_id=1, attempt=0, frame_idx=0, bh=1, bw=1, planes=8, channels=3,
                         profile="importance", design_snr_db=-4, key_id=0, height=4096, width=4096,
                         frame_len_log2=16)
        d.send(protocol.encode_soft_frame(hh, np.zeros(1 << 16, np.complex64), 0.1, 10.0, stream_id=78, seq=1))
        d.send(good)
        d.send(good)                                              # replayed: same stream, same seq
        d.send(_good_frame(3))                                    # replayed: older seq
        d.send_multipart([b"a", b"b", b"c"])                      # not [identity, (empty,) message]
        # feedback is not accepted on the soft-frame socket
        d.send(protocol.encode(protocol.Feedback(tx_id=1, image_id=1, attempt=0, decision="ACK")))
        t_end = time.monotonic() + 20
        while True:                 # the status request travels on another connection: wait for the 14
            st = status_request(srv.bound["soft_frames"])
            if st["rejected_total"] + st["counters"].get("frames_accepted", 0) >= 14 or time.monotonic() > t_end:
                break
            time.sleep(0.1)
        rej = st["rejected"]
        for reason in bad:
            assert rej.get(reason, 0) >= 1, (reason, rej)
        assert rej["replay"] == 2 and rej["unexpected_type"] == 1 and rej["oversized"] == 2
        assert rej["bad_field"] >= 2                              # bh=0 and the 3-part message
        assert st["counters"]["frames_accepted"] == 1             # only the first good frame
        d.close(0)
        # ... and it keeps serving a real transmitter
        _, recs = run_tx(srv, 1, imgs, snr_db=8.0)
        assert [r["outcome"] for r in recs] == ["ACK", "ACK"]
    log = [json.loads(x) for x in (tmp_path / "server.log").read_text().splitlines()]
    logged = {x["reason"] for x in log if x["event"] == "reject"}
    assert set(bad) | {"replay", "unexpected_type"} <= logged


def test_eight_concurrent_transmitters_no_loss_no_crosstalk_bounded_memory(tmp_path):
    n_tx, n_img = 8, 3
    imgs = synth_images(n_tx * n_img, h=48, w=64, seed=12)
    refs = {(10 + t, i): imgs[t * n_img + i] for t in range(n_tx) for i in range(n_img)}
    per_image = 2 * (24 * 32 * 3 // 2) * 8 * 12     # combiner + attempt buffer of one 48x64 image at 2x2, bytes
    max_bytes = 10 * per_image                      # room for ten images' soft symbols
    results: dict[int, tuple] = {}
    with make_server(tmp_path, refs, threshold=21.0, max_images=12, max_buffer_bytes=max_bytes,
                     assembly_timeout_s=5.0) as srv:       # no loss on loopback: attempts complete by frames
        peak = {"images": 0, "bytes": 0}
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                try:
                    peak["images"] = max(peak["images"], len(srv.assembler))
                    peak["bytes"] = max(peak["bytes"], srv.assembler.nbytes)
                except RuntimeError:        # the I/O thread changed the dict while we iterated
                    pass
                time.sleep(0.005)

        def one(t):
            tx = SimTransmitter(10 + t, [(i, imgs[t * n_img + i], {}) for i in range(n_img)],
                                srv.bound["soft_frames"], srv.bound["feedback"], LinkConfig(bh=2, bw=2),
                                ArqConfig(max_attempts=4, timeout_s=10.0),
                                ChannelSpec(snr_db=[-2.0, 8.0][t % 2]), seed=100 + t, frame_len_log2=9)
            results[t] = (tx, tx.run(120))

        w = threading.Thread(target=watch, daemon=True)
        w.start()
        threads = [threading.Thread(target=one, args=(t,)) for t in range(n_tx)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(150)
        stop.set()
        st = status_request(srv.bound["soft_frames"])
    assert len(results) == n_tx
    sent = sum(tx.frames_sent for tx, _ in results.values())
    for t, (tx, recs) in results.items():
        assert tx.bad_feedback == 0                       # nothing cross-delivered
        assert sorted(r["image_id"] for r in recs) == list(range(n_img))
        assert all(r["outcome"] in ("ACK", "FAIL") for r in recs)
        assert all(r["ignored_feedback"] == 0 for r in recs)
        assert tx.send_dropped == 0
    # every frame sent arrived and was used: no losses, no duplicates, nothing stale or late
    c = st["counters"]
    assert c["frames_accepted"] == sent
    for k in ("duplicate_frames", "stale_frames", "late_frames"):
        assert c.get(k, 0) == 0, (k, c)
    assert st["rejected_total"] == 0
    # server records: one per image, each from its own transmitter, attempts match the transmitter's
    srec = load_records(tmp_path / "server_records.jsonl")
    by_key = {(s["tx_id"], s["image_id"]): s for s in srec}
    assert len(by_key) == n_tx * n_img
    for t, (tx, recs) in results.items():
        for r in recs:
            s = by_key[(10 + t, r["image_id"])]
            assert s["outcome"] == r["outcome"] and len(s["attempts"]) == r["n_attempts"]
    # bounded memory: at most max_images held (+1 while an insertion is being evicted), soft symbols within
    # the bound (+ one image in the same window); decided images keep no soft symbols
    assert peak["images"] <= 13
    assert 0 < peak["bytes"] <= max_bytes + per_image
    assert st["buffer_bytes"] == 0 and st["images_held"] <= 12
    assert c["images_evicted"] >= n_tx * n_img - 12             # the bound was exercised
    assert st["images_served"] == n_tx * n_img


def test_server_killed_and_restarted_mid_run(tmp_path):
    port = free_tcp_port_pair()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "infercom_apps.cli", "server", "--bind", f"tcp://127.0.0.1:{port}", "--qoe", "none",
           "--assembly-timeout", "0.3", "--records", str(tmp_path / "srv.jsonl")]

    def start():
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO)
        _wait_ready(p)
        return p

    proc = start()
    imgs = synth_images(10, h=48, w=64, seed=13)
    seen = []
    killed = threading.Event()

    def on_event(kind, data):
        if kind == "feedback":
            seen.append(data)
            if len(seen) == 3 and not killed.is_set():
                os.kill(proc.pid, signal.SIGKILL)         # killed with image 3 on its way
                killed.set()

    tx = SimTransmitter(20, [(i, im, {}) for i, im in enumerate(imgs)], f"tcp://127.0.0.1:{port}",
                        f"tcp://127.0.0.1:{port + 1}", LinkConfig(bh=2, bw=2),
                        ArqConfig(max_attempts=8, timeout_s=1.0, timeout_backoff=1.5),   # ~30 s of retries
                        ChannelSpec(snr_db=8.0), seed=5, frame_len_log2=10, on_event=on_event)
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("recs", tx.run(60)))
    th.start()
    assert killed.wait(30)
    proc.wait(10)
    time.sleep(1.5)                                      # the transmitter times out meanwhile
    proc = start()
    try:
        th.join(60)
        assert not th.is_alive()
    finally:
        proc.terminate()
        proc.wait(20)
    recs = out["recs"]
    assert sorted(r["image_id"] for r in recs) == list(range(10))
    assert all(r["outcome"] == "ACK" for r in recs)         # nothing lost
    timed_out = [r for r in recs if any(a["timed_out"] for a in r["attempts"])]
    assert timed_out, "the kill should have forced at least one timeout"
    assert all(a["why"] == "timeout" for r in timed_out for a in r["attempts"][1:2])
    # the restarted server saw the resent images from scratch and recorded them
    srec = load_records(tmp_path / "srv.jsonl")
    assert {s["image_id"] for s in srec} == set(range(10))


class FlakyRestorer:
    """Raises on its first call, then behaves like bicubic."""

    name = "flaky"

    def __init__(self):
        self.inner = get_restorer("bicubic")
        self.calls = 0

    def restore(self, observation, meta):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("simulated restorer crash")
        return self.inner.restore(observation, meta)


class SlowRestorer(FlakyRestorer):
    name = "slow"

    def restore(self, observation, meta):
        time.sleep(0.3)
        return self.inner.restore(observation, meta)


def test_failing_and_slow_restorers_do_not_stop_the_server(tmp_path):
    imgs = synth_images(2, seed=14)
    refs = {(30, i): im for i, im in enumerate(imgs)} | {(31 + t, 0): imgs[0] for t in range(6)}
    srv = make_server(tmp_path, refs, threshold=20.0)
    srv.restorer = FlakyRestorer()
    with srv:
        _, recs = run_tx(srv, 30, imgs, snr_db=8.0)
        st = status_request(srv.bound["soft_frames"])
    assert [r["outcome"] for r in recs] == ["ACK", "ACK"]
    assert recs[0]["n_attempts"] == 2 and "server error" in recs[0]["attempts"][0]["reason"]
    assert st["counters"]["inference_errors"] == 1
    # a backlog of one with a slow restorer: overflowing attempts get no answer (counted), the transmitters
    # time out and resend, and every image still ends in ACK
    srv = make_server(tmp_path, refs, threshold=20.0, max_queue=1, policy={"max_attempts": 8})
    srv.restorer = SlowRestorer()
    with srv:
        outs = {}
        # six transmitters within a 0.3 s restoration; capacity: one restoring, one handed off, one waiting
        ths = [threading.Thread(target=lambda t=t: outs.setdefault(t, run_tx(srv, 31 + t, imgs[:1], 8.0, seed=t,
                                                                            max_attempts=8, timeout_s=1.0)))
               for t in range(6)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(120)
        st = status_request(srv.bound["soft_frames"])
    assert st["counters"].get("busy_dropped", 0) >= 1
    assert all(outs[t][1][0]["outcome"] == "ACK" for t in range(6))
    assert any(a["timed_out"] for t in range(6) for a in outs[t][1][0]["attempts"])
    log = [json.loads(x) for x in (tmp_path / "server.log").read_text().splitlines()]
    assert any(x["event"] == "busy" for x in log)


def test_internal_error_is_logged_and_survived(tmp_path):
    imgs = synth_images(1, seed=15)
    refs = {(40, 0): imgs[0]}
    with make_server(tmp_path, refs, threshold=20.0) as srv:
        real_add = srv.assembler.add
        calls = {"n": 0}

        def broken_add(msg, now=None, **kw):
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("simulated bug in assembly")
            return real_add(msg, now, **kw)

        srv.assembler.add = broken_add
        ctx = zmq.Context.instance()
        d = ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.connect(srv.bound["soft_frames"])
        d.send(_good_frame(1, stream=99))
        time.sleep(0.3)
        d.close(0)
        _, recs = run_tx(srv, 40, imgs, snr_db=10.0)
        st = status_request(srv.bound["soft_frames"])
    assert recs[0]["outcome"] == "ACK" and st["counters"]["internal_errors"] == 1
    log = [json.loads(x) for x in (tmp_path / "server.log").read_text().splitlines()]
    assert any(x["event"] == "internal_error" and "simulated bug" in x["error"] for x in log)


def test_undecided_images_are_recorded_when_the_server_stops(tmp_path):
    srv = make_server(tmp_path, {}, threshold=20.0, assembly_timeout_s=60.0)
    with srv:
        ctx = zmq.Context.instance()
        d = ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.connect(srv.bound["soft_frames"])
        d.send(_good_frame(1, stream=5, tx=9, img=3, idx=0))     # frame 0 of 21: never completes
        t_end = time.monotonic() + 10
        while status_request(srv.bound["soft_frames"])["counters"].get("frames_accepted", 0) < 1:
            assert time.monotonic() < t_end
            time.sleep(0.05)
        d.close(0)
    recs = load_records(tmp_path / "server_records.jsonl")
    assert len(recs) == 1 and recs[0]["outcome"] == "unfinished" and recs[0]["image_id"] == 3
    assert recs[0]["attempts"][0]["frames_received"] == 1
