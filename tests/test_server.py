# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end through the real protocol and server: simulated transmitters (symbol-level channel) at two SNRs,
Chase combining raising the QoE score, selective and refine retransmissions, records, status, CLI, CurveZMQ."""

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

from infercom import metrics as M
from infercom.arq import ArqConfig
from infercom.link import LinkConfig
from infercom.netports import free_tcp_port_pair
from receiver_server.config import PolicyConfig, ServerConfig
from receiver_server.records import load_records, merge_records
from receiver_server.restorers import get_restorer
from receiver_server.server import InferenceServer
from receiver_server.simlink import ChannelSpec, SimTransmitter, status_request

REPO = Path(__file__).resolve().parents[1]
LOOP = "tcp://127.0.0.1:0"


def synth_images(n: int, h: int = 72, w: int = 96, seed: int = 0) -> list[np.ndarray]:
    """Smooth synthetic colour images with edges (no dataset needed)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = []
    for _ in range(n):
        a = rng.uniform(0.02, 0.1, 3)
        ph = rng.uniform(0, 2 * np.pi, 3)
        img = np.stack([127 + 100 * np.sin(a[c] * xx + ph[c]) * np.cos(a[(c + 1) % 3] * yy) for c in range(3)], -1)
        img += 20 * np.sin(rng.uniform(0.6, 1.2) * xx)[..., None] * np.sin(rng.uniform(0.6, 1.2) * yy)[..., None]
        cx, cy, r = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h, rng.uniform(8, 20)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


class OracleQoE:
    """Test-only QoE: PSNR of the restored image against the transmitted original (full reference)."""

    name = "psnr_oracle"
    higher_is_better = True
    range = (0.0, float("inf"))

    def __init__(self, refs: dict[tuple[int, int], np.ndarray]):
        self.refs = refs
        self.calls = 0

    def score(self, restored, observation=None, meta=None):
        self.calls += 1
        return float(M.psnr(self.refs[(meta["tx_id"], meta["image_id"])], restored))


def make_server(tmp_path, refs, threshold=22.0, **kw):
    pol = kw.pop("policy", {})
    cfg = ServerConfig(bind=LOOP, feedback_bind=LOOP, assembly_timeout_s=kw.pop("assembly_timeout_s", 1.0),
                       records_file=str(tmp_path / "server_records.jsonl"), log_file=str(tmp_path / "server.log"),
                       policy=PolicyConfig(thresholds={"psnr_oracle": threshold}, **pol), **kw)
    return InferenceServer(cfg, restorer=get_restorer("bicubic"), metrics={"psnr_oracle": OracleQoE(refs)})


def run_tx(srv, tx_id, imgs, snr_db, fading="none", fading_per="image", seed=1, fll=10, max_attempts=4, timeout_s=3.0, loss=0.0,
           bh=2, bw=2, deadline=90.0, first_id=0):
    tx = SimTransmitter(tx_id, [(first_id + i, im, {"name": f"img{i}"}) for i, im in enumerate(imgs)],
                        srv.bound["soft_frames"], srv.bound["feedback"], LinkConfig(bh=bh, bw=bw),
                        ArqConfig(max_attempts=max_attempts, timeout_s=timeout_s),
                        ChannelSpec(snr_db=snr_db, fading=fading, fading_per=fading_per, frame_loss=loss), seed=seed, frame_len_log2=fll)
    recs = tx.run(deadline)
    return tx, recs


def test_two_snrs_ack_first_time_vs_chase_raises_qoe(tmp_path):
    imgs = synth_images(6)
    refs = {(1, i): im for i, im in enumerate(imgs)} | {(2, i): im for i, im in enumerate(imgs)}
    with make_server(tmp_path, refs) as srv:
        _, high = run_tx(srv, 1, imgs, snr_db=6.0)
        _, low = run_tx(srv, 2, imgs, snr_db=-4.0, seed=2)
        status = status_request(srv.bound["soft_frames"])
    # every image ends in ACK or an explicit failure, with its attempts recorded
    for recs in (high, low):
        assert sorted(r["image_id"] for r in recs) == list(range(6))
        assert all(r["outcome"] in ("ACK", "FAIL") for r in recs)
        assert all(r["failure"] for r in recs if r["outcome"] == "FAIL")
        assert all(len(r["attempts"]) == r["n_attempts"] >= 1 for r in recs)
    first_time = sum(r["outcome"] == "ACK" and r["n_attempts"] == 1 for r in high)
    assert first_time >= 5                                          # most ACK at once at the higher SNR
    assert all(r["n_attempts"] >= 2 for r in low)                    # NACKs trigger retransmissions
    for r in low:
        att = r["attempts"]
        assert att[0]["decision"] == "NACK" and att[1]["why"] == "chase"
        q = [a["scores"]["psnr_oracle"] for a in att if a["scores"]]
        assert all(b > a + 0.3 for a, b in zip(q, q[1:])), q        # Chase combining raises the score
    assert sum(r["outcome"] == "ACK" for r in low) >= 4
    # server records are complete and agree with the transmitters
    srec = load_records(tmp_path / "server_records.jsonl")
    merged = merge_records(high + low, srec)
    for m in merged:
        assert len(m["server"]) >= 1
        s = m["server"][-1]
        assert s["outcome"] == m["outcome"]
        assert len(s["attempts"]) == m["tx"]["n_attempts"]
        for a in s["attempts"]:
            assert a["frames_received"] == s["n_frames"] and a["missing"] == []      # AWGN: nothing lost
            assert a["decision"] in ("ACK", "NACK", "FAIL") and a["reason"]
            assert a["snr_db"]["mean"] is not None and set(a["latency_ms"]) >= {"llr", "pixels", "restore", "qoe",
                                                                                  "total"}
            assert "psnr_oracle" in a["scores"]
    # low SNR measured Es/N0 is about -4 dB
    snrs = [a["snr_db"]["mean"] for m in merged if m["tx_id"] == 2 for a in m["server"][-1]["attempts"]]
    assert abs(np.mean(snrs) - (-4.0)) < 0.3
    assert status["images_served"] == 12 and status["rejected_total"] == 0
    assert status["decisions"]["NACK"] >= 6
    assert status["latency_ms"]["restore"]["p50"] is not None and status["queue_depth"] == 0
    # structured logs: one JSON object per line, a decision per feedback
    lines = [json.loads(x) for x in (tmp_path / "server.log").read_text().splitlines()]
    assert sum(x["event"] == "decision" for x in lines) == status["decisions"]["ACK"] + status["decisions"]["NACK"] \
        + status["decisions"].get("FAIL", 0)


def test_attempt_limit_gives_explicit_failure(tmp_path):
    imgs = synth_images(2, seed=3)
    refs = {(4, i): im for i, im in enumerate(imgs)}
    with make_server(tmp_path, refs, threshold=60.0, policy={"max_attempts": 3}) as srv:
        _, recs = run_tx(srv, 4, imgs, snr_db=0.0, max_attempts=3)
    assert [r["outcome"] for r in recs] == ["FAIL", "FAIL"]
    for r in recs:
        assert r["n_attempts"] == 3 and "server gave up" in r["failure"] and "attempt limit 3" in r["failure"]
        assert r["attempts"][-1]["decision"] == "FAIL"
    srec = load_records(tmp_path / "server_records.jsonl")
    assert [s["outcome"] for s in srec] == ["FAIL", "FAIL"]


def test_lost_frames_get_selective_retransmission(tmp_path):
    imgs = synth_images(3, h=96, w=128, seed=5)
    refs = {(3, i): im for i, im in enumerate(imgs)}
    with make_server(tmp_path, refs, threshold=28.0, assembly_timeout_s=0.5) as srv:
        tx, recs = run_tx(srv, 3, imgs, snr_db=12.0, loss=0.2, fll=8, seed=4)
    assert tx.frames_lost > 0
    sel = [a for r in recs for a in r["attempts"] if a["why"] == "selective"]
    assert sel, "lost frames should be asked for selectively"
    assert all(isinstance(a["frames"], list) and a["frames"] for a in sel)
    assert all(r["outcome"] in ("ACK", "FAIL") for r in recs)
    srec = {s["image_id"]: s for s in load_records(tmp_path / "server_records.jsonl")}
    for r in recs:
        s = srec[r["image_id"]]
        for a_tx, a_srv in zip(r["attempts"], s["attempts"]):
            if a_tx["why"] == "selective":
                assert a_srv["expected"] == a_tx["frames"]


def test_refine_retransmission_recompresses(tmp_path):
    imgs = synth_images(2, seed=6)
    refs = {(5, i): im for i, im in enumerate(imgs)}
    # 4x4 blocks cannot reach 30 dB on these images even without noise: the server asks for finer blocks
    with make_server(tmp_path, refs, threshold=30.0, policy={"refine_min_snr_db": 10.0, "max_attempts": 5}) as srv:
        _, recs = run_tx(srv, 5, imgs, snr_db=25.0, bh=4, bw=4, max_attempts=5)
    for r in recs:
        whys = [a["why"] for a in r["attempts"]]
        assert "refine" in whys
        blocks = [(a["bh"], a["bw"]) for a in r["attempts"]]
        assert blocks[0] == (4, 4) and blocks[-1][0] < 4
        q = [a["scores"]["psnr_oracle"] for a in r["attempts"] if a["scores"]]
        assert q[-1] > q[0] + 1.0


def test_block_fading_frames_mostly_ack(tmp_path):
    imgs = synth_images(4, seed=7)
    refs = {(6, i): im for i, im in enumerate(imgs)}
    with make_server(tmp_path, refs, threshold=20.0) as srv:
        _, recs = run_tx(srv, 6, imgs, snr_db=10.0, fading="block", fading_per="frame", fll=8, seed=8)
    assert all(r["outcome"] in ("ACK", "FAIL") for r in recs)
    assert sum(r["outcome"] == "ACK" for r in recs) >= 3


def _wait_ready(proc, timeout=30.0):
    t_end = time.time() + timeout
    while time.time() < t_end:
        line = proc.stdout.readline()
        if line:
            d = json.loads(line)
            if d.get("event") == "ready":
                return d
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()}")
    raise TimeoutError("server not ready")


def test_cli_server_subprocess_and_status(tmp_path):
    port = free_tcp_port_pair()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "infercom_apps.cli", "server", "--bind", f"tcp://127.0.0.1:{port}",
                             "--qoe", "none", "--restorer", "bicubic", "--log-file", str(tmp_path / "log.jsonl")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        ready = _wait_ready(proc)
        assert ready["feedback"] == f"tcp://127.0.0.1:{port + 1}"
        out = subprocess.run([sys.executable, "-m", "infercom_apps.cli", "server", "--bind",
                              f"tcp://127.0.0.1:{port}", "--status"], capture_output=True, text=True, env=env,
                             cwd=REPO, timeout=60)
        assert out.returncode == 0, out.stderr
        st = json.loads(out.stdout)
        assert st["restorer"] == "bicubic" and st["qoe"] == [] and st["protocol_version"] == 1
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
    bad = subprocess.run([sys.executable, "-m", "infercom_apps.cli", "server", "--bind", "tcp://0.0.0.0:1"],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert bad.returncode == 2 and "loopback" in bad.stderr


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")
def test_curve_encrypted_link(tmp_path):
    import zmq.auth
    _, secret_file = zmq.auth.create_certificates(str(tmp_path), "server")
    server_public, _ = zmq.auth.load_certificate(secret_file)
    imgs = synth_images(1, seed=9)
    refs = {(7, 0): imgs[0]}
    with make_server(tmp_path, refs, curve_secret_file=secret_file) as srv:
        tx = SimTransmitter(7, [(0, imgs[0], {})], srv.bound["soft_frames"], srv.bound["feedback"],
                            LinkConfig(bh=2, bw=2), ArqConfig(timeout_s=2.0), ChannelSpec(snr_db=10.0),
                            curve_server_key=server_public)
        recs = tx.run(30)
        assert recs[0]["outcome"] == "ACK"
        st = status_request(srv.bound["soft_frames"], curve_server_key=server_public)
        assert st["images_served"] == 1
        # a client without the server key gets nothing through
        with pytest.raises(TimeoutError):
            status_request(srv.bound["soft_frames"], timeout_s=0.5)


def test_server_bench_quick(tmp_path, monkeypatch):
    """``run_bench`` writes server.json with per-stage percentiles and images/s (bicubic only, quick)."""
    from infercom_apps import bench_server as bench
    from receiver_server import restorers
    monkeypatch.setenv("INFERCOM_BENCH_QUICK", "1")
    monkeypatch.setattr(restorers, "available", lambda: ["bicubic", "supir"])
    res = bench.run_bench(tmp_path)
    saved = json.loads((tmp_path / "server.json").read_text())
    assert saved["throughput"].keys() == {"1_tx", "8_tx"}
    r = res["restorers"]["bicubic"]
    assert r["images"] == 2 and r["rejected_total"] == 0
    for s in bench.STAGES:
        lat = r["latency_ms"][s]
        assert lat["n"] >= 2 and 0 < lat["p50"] <= lat["p99"]
    assert res["throughput"]["8_tx"]["images"] == 8 and res["throughput"]["8_tx"]["images_per_s"] > 0
    assert "supir" in res["skipped"] and res["llr_to_pixels_msym_per_s"] > 0


class _MetaRecorder:
    """Test-only restorer/metric that keeps the meta it was given."""

    name = "meta_recorder"
    higher_is_better = True
    range = (0.0, 1.0)

    def __init__(self):
        self.metas = []

    def restore(self, observation, meta):
        self.metas.append(meta)
        return get_restorer("bicubic").restore(observation, meta)

    def score(self, restored, observation=None, meta=None):
        self.metas.append(meta)
        return 1.0


def test_meta_carries_posterior_variance_and_thresholds_follow_the_restorer(tmp_path):
    """The restorer and every metric get meta["obs_var"] = the posterior variance of the MMSE observation
    (maximal where a frame never arrived); calibrated thresholds come from the restorer's own entry, with a
    logged fallback to the default (bicubic) entry for a restorer that has none."""
    from infercom import link
    from infercom.protocol import ImageConfig
    from receiver_server.assembly import AttemptJob
    from receiver_server.qoe.thresholds import CALIBRATION_FILE

    img = synth_images(1, seed=5)[0]
    lcfg = LinkConfig(bh=2, bw=2)
    x, lay = link.encode_image(img, lcfg)
    rng = np.random.default_rng(0)
    nv = np.full(x.size, 0.5, np.float32)
    y = (x + np.sqrt(0.25) * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size))).astype(np.complex64)
    # every symbol of the first two low-res rows lost (pre-interleaving order: plane-major, symbol i carries
    # values 2i, 2i+1; tx = pre[perm])
    from infercom import interleave
    perm = interleave.permutation(lay.n_symbols, interleave.get_keyring(None).key(0))
    pos = np.argsort(perm)
    lost = pos[(np.arange(8)[:, None] * lay.n_sym_per_plane + np.arange(3 * lay.low_w)[None, :]).ravel()]
    y[lost], nv[lost] = 0, np.inf
    icfg = ImageConfig(bh=2, bw=2, planes=8, channels=3, profile="importance", design_snr_db=-4, key_id=0,
                       height=img.shape[0], width=img.shape[1], frame_len_log2=10)
    job = AttemptJob(key=(1, 0), attempt=0, generation=0, config=icfg, y=y, noise_var=nv,
                     frame_snr_db=np.array([3.0, 3.0]), attempts_combined=1, missing_frames=[], never_received=[],
                     first_frame_at=0.0, completed_at=0.0, timed_out=False)
    rec = _MetaRecorder()
    cfg = ServerConfig(bind=LOOP, feedback_bind=LOOP, log_file=str(tmp_path / "s.log"),
                       policy=PolicyConfig(thresholds={"meta_recorder": 0.5}))
    srv = InferenceServer(cfg, restorer=rec, metrics={"meta_recorder": rec})
    srv.process(job)
    want = link.llr_to_lowres_var(link.soft_to_llr(y, nv, lay, lcfg), lay, lcfg)
    assert len(rec.metas) == 2
    for meta in rec.metas:
        v = meta["obs_var"]
        assert v.dtype == np.float32 and v.shape == (lay.low_h, lay.low_w, 3)
        np.testing.assert_array_equal(v, want)
        assert np.all(v[meta["missing"]] == np.float32((256 ** 2 - 1) / 12))   # no symbols: uniform 0..255
        assert meta["missing"][:2].all() and not meta["missing"][2:].any() and np.all(v[2:] < 5000)
    # thresholds per restorer: a restorer without its own calibration entry falls back, and the log says so
    from receiver_server.qoe import get_qoe
    doc = json.loads(CALIBRATION_FILE.read_text())
    cfg2 = ServerConfig(bind=LOOP, feedback_bind=LOOP, log_file=str(tmp_path / "f.log"))
    srv2 = InferenceServer(cfg2, restorer=rec, metrics={"consistency": get_qoe("consistency")})
    assert srv2.thresholds == {"consistency": doc["thresholds"]["consistency"]}
    logged = [json.loads(line) for line in (tmp_path / "f.log").read_text().splitlines()]
    fb = [e for e in logged if e["event"] == "threshold_fallback"]
    assert fb and fb[0]["restorer"] == "meta_recorder" and fb[0]["metrics"] == {"consistency": "bicubic"}


def test_calibration_name_of_the_restorer():
    from types import SimpleNamespace

    from receiver_server.server import calibration_name
    assert calibration_name(SimpleNamespace(name="bicubic")) == "bicubic"
    assert calibration_name(SimpleNamespace(name="infercom-restorer", config={"stage": 1})) == \
        "infercom-restorer-stage1"
    assert calibration_name(SimpleNamespace(name="infercom-restorer", config={"stage": 2})) == "infercom-restorer"
    assert calibration_name(object(), "configured") == "configured"


def test_a_taken_address_fails_start_at_once_and_leaves_no_thread(tmp_path):
    """A server whose feedback port is taken: ``start()`` raises ``RuntimeError`` naming the cause, at once, and
    its I/O thread has ended (its ZeroMQ context destroyed with the soft-frame socket a failed bind left open,
    which ``term()`` alone would wait for forever); the next server starts."""
    import threading

    ctx = zmq.Context()
    try:
        held = ctx.socket(zmq.PUB)
        held.setsockopt(zmq.LINGER, 0)
        fb = held.bind_to_random_port("tcp://127.0.0.1")
        srv = InferenceServer(ServerConfig(bind=LOOP, feedback_bind=f"tcp://127.0.0.1:{fb}",
                                           log_file=str(tmp_path / "server.log")), restorer=get_restorer("bicubic"),
                              metrics={})
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match="Address already in use"):
            srv.start()
        assert time.monotonic() - t0 < 5.0
        assert not any(t.name == "server-io" and t.is_alive() for t in threading.enumerate())
        held.close(0)
        with make_server(tmp_path, {}) as ok:                       # and the next one starts
            assert status_request(ok.bound["soft_frames"])["counters"] is not None
    finally:
        ctx.destroy(linger=0)
