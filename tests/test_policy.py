# SPDX-License-Identifier: GPL-3.0-or-later
"""ACK/NACK policy, server configuration, and the assembly rules (no sockets)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from infercom import chase
from infercom.protocol import ImageConfig, SoftFrame
from receiver_server.assembly import Assembler
from receiver_server.config import PolicyConfig, ServerConfig, feedback_address, is_loopback_address, load_config
from receiver_server.policy import decide, passes
from receiver_server.records import ServerStats, merge_records, percentiles

HIB = {"iqa": True, "niqe": False}
TH = {"iqa": 0.8, "niqe": 6.0}


def _decide(scores, attempt=0, snr=None, bh=3, bw=3, **pol):
    snr = np.full(8, 0.0) if snr is None else np.asarray(snr, float)
    return decide(scores, TH, HIB, attempt, PolicyConfig(**pol), snr, bh, bw)


def test_passes_respects_direction_and_missing_scores():
    assert passes({"iqa": 0.8, "niqe": 6.0}, TH, HIB)[0]           # thresholds are inclusive
    ok, fails = passes({"iqa": 0.79, "niqe": 6.1}, TH, HIB)
    assert not ok and len(fails) == 2 and "iqa 0.79 < 0.8" in fails[0] and "niqe 6.1 > 6" in fails[1]
    ok, fails = passes({"iqa": 0.9}, TH, HIB)
    assert not ok and fails == ["niqe missing"]
    assert passes({"x": 1.0}, {}, {})[0]


def test_ack_nack_fail_by_attempt_limit():
    assert _decide({"iqa": 0.9, "niqe": 3}).decision == "ACK"
    d = _decide({"iqa": 0.5, "niqe": 3}, attempt=0, max_attempts=3)
    assert d.decision == "NACK" and d.mode == "chase" and d.failed_metrics == ("iqa",)
    d = _decide({"iqa": 0.5, "niqe": 3}, attempt=2, max_attempts=3)
    assert d.decision == "FAIL" and "attempt limit 3" in d.reason


def test_auto_mode_selective_for_missing_and_faded_frames():
    snr = [0, 0.5, -np.inf, 0.2, -9.0, 0.1, 0.3, 0.0]
    d = _decide({"iqa": 0.1, "niqe": 3}, snr=snr)
    assert d.mode == "selective" and d.frames == (2, 4)
    # too many bad frames -> chase
    snr = [-np.inf] * 5 + [0.0] * 3
    assert _decide({"iqa": 0.1, "niqe": 3}, snr=snr).mode == "chase"


def test_auto_mode_refines_when_channel_is_good():
    d = _decide({"iqa": 0.1, "niqe": 3}, snr=np.full(8, 20.0), bh=4, bw=3)
    assert d.mode == "refine" and (d.refine_bh, d.refine_bw) == (3, 2)
    # already at full resolution: chase instead
    assert _decide({"iqa": 0.1, "niqe": 3}, snr=np.full(8, 20.0), bh=1, bw=1).mode == "chase"
    # low SNR: chase
    assert _decide({"iqa": 0.1, "niqe": 3}, snr=np.full(8, 0.0), bh=4, bw=4).mode == "chase"


def test_forced_modes():
    s = {"iqa": 0.1, "niqe": 3}
    assert _decide(s, mode="chase", snr=[-np.inf] + [0] * 7).mode == "chase"
    assert _decide(s, mode="selective", snr=[0.0] * 8).mode == "chase"      # nothing stands out
    d = _decide(s, mode="refine", bh=2, bw=2)
    assert (d.mode, d.refine_bh, d.refine_bw) == ("refine", 1, 1)


@pytest.mark.parametrize("kw", [dict(max_attempts=0), dict(max_attempts=17), dict(mode="x"),
                                dict(thresholds={"a": float("nan")}), dict(selective_max_fraction=0),
                                dict(worst_margin_db=-1)])
def test_policy_config_validation(kw):
    with pytest.raises(ValueError):
        PolicyConfig(**kw)


def test_server_config_validation_and_loading(tmp_path):
    assert ServerConfig().feedback_address == "tcp://127.0.0.1:5556"
    assert feedback_address("tcp://localhost:7000") == "tcp://localhost:7001"
    assert is_loopback_address("tcp://127.0.0.1:1") and is_loopback_address("tcp://[::1]:1")
    assert not is_loopback_address("tcp://10.0.0.1:1")
    with pytest.raises(ValueError, match="loopback"):
        ServerConfig(bind="tcp://0.0.0.0:5555")
    ServerConfig(bind="tcp://0.0.0.0:5555", allow_remote=True)
    with pytest.raises(ValueError):
        ServerConfig(bind="udp://127.0.0.1:1")
    with pytest.raises(ValueError):
        ServerConfig(max_images=0)
    with pytest.raises(ValueError):
        ServerConfig(device="tpu")
    f = tmp_path / "s.yaml"
    f.write_text("restorer: bicubic\nqoe: [niqe]\npolicy:\n  thresholds: {niqe: 5.5}\n  max_attempts: 3\n")
    cfg = load_config(f, bind="tcp://127.0.0.1:6000")
    assert cfg.policy.thresholds == {"niqe": 5.5} and cfg.policy.max_attempts == 3
    assert cfg.qoe == ("niqe",) and cfg.bind == "tcp://127.0.0.1:6000"
    f.write_text("bogus: 1\n")
    with pytest.raises(ValueError, match="bogus"):
        load_config(f)
    f.write_text("policy: {bogus: 1}\n")
    with pytest.raises(ValueError, match="bogus"):
        load_config(f)
    j = tmp_path / "s.json"
    j.write_text(json.dumps({"max_queue": 3}))
    assert load_config(j).max_queue == 3
    with pytest.raises(ValueError):
        load_config(tmp_path / "absent.yaml")


# ------------------------------------------------------------------ assembly
CFG = ImageConfig(bh=2, bw=2, planes=8, channels=1, profile="importance", design_snr_db=-4, key_id=0,
                  height=32, width=32, frame_len_log2=8)     # 256 values -> 128 sym/plane -> 1024 sym, 4 frames


def _frame(rng, idx, attempt=0, cfg=CFG, tx=1, img=5, seq=[0], nv=0.5):
    n = cfg.frame_payload_len(idx)
    seq[0] += 1
    y = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    return SoftFrame(tx_id=tx, image_id=img, attempt=attempt, frame_idx=idx, config=cfg, snr_db=3.0,
                     noise_var=nv, y=y, stream_id=1, seq=seq[0])


def test_assembly_completes_on_all_frames_and_chase_combines(rng):
    st = ServerStats()
    asm = Assembler(st, timeout_s=10.0)
    f0 = [_frame(rng, i) for i in range(4)]
    for f in f0[:3]:
        asm.add(f, 0.0)
    assert asm.poll(1.0)[0] == []
    asm.add(f0[3], 1.0)
    jobs, _ = asm.poll(1.0)
    assert len(jobs) == 1 and jobs[0].attempt == 0 and not jobs[0].timed_out and jobs[0].missing_frames == []
    assert np.allclose(jobs[0].noise_var, 0.5)
    f1 = [_frame(rng, i, attempt=1, nv=1.5) for i in range(4)]
    for f in f1:
        asm.add(f, 2.0)
    jobs, _ = asm.poll(2.0)
    assert jobs[0].attempts_combined == 2
    ref_y, ref_nv = chase.combine_numpy([np.concatenate([f.y for f in f0]), np.concatenate([f.y for f in f1])],
                                        [0.5, 1.5])
    assert np.allclose(jobs[0].y, ref_y, atol=1e-5) and np.allclose(jobs[0].noise_var, ref_nv)
    # per-frame combined SNR: 3 dB twice -> 6.01 dB
    assert np.allclose(jobs[0].frame_snr_db, 3.0 + 10 * np.log10(2))


def test_assembly_timeout_marks_missing_frames(rng):
    st = ServerStats()
    asm = Assembler(st, timeout_s=0.5)
    asm.add(_frame(rng, 0), 0.0)
    asm.add(_frame(rng, 2), 0.1)
    assert asm.poll(0.5)[0] == []
    jobs, _ = asm.poll(0.7)
    j = jobs[0]
    assert j.timed_out and j.missing_frames == [1, 3] and j.never_received == [1, 3]
    assert np.all(np.isinf(j.noise_var[256:512])) and np.all(j.y[256:512] == 0)
    assert np.all(np.isinf(j.frame_snr_db[[1, 3]]))
    assert st.counters["attempts_timed_out"] == 1


def test_assembly_selective_expectation_and_superseded_attempts(rng):
    st = ServerStats()
    asm = Assembler(st, timeout_s=5.0)
    for i in (0, 2, 3):
        asm.add(_frame(rng, i), 0.0)
    jobs, _ = asm.poll(6.0)
    asm.get((1, 5)).next_expected = (1,)          # what the server does on a selective NACK
    asm.add(_frame(rng, 1, attempt=1), 7.0)
    jobs, _ = asm.poll(7.0)                      # the one requested frame completes the attempt
    assert len(jobs) == 1 and jobs[0].never_received == [] and jobs[0].attempts_combined == 2
    # attempt 2 is superseded by attempt 3 before it completes: folded without a job
    asm.add(_frame(rng, 0, attempt=2), 8.0)
    asm.add(_frame(rng, 0, attempt=3), 8.1)
    assert st.counters["attempts_superseded"] == 1
    assert asm.get((1, 5)).attempts_combined == 3
    # a duplicate, a stale and a late frame are dropped and counted
    asm.add(_frame(rng, 0, attempt=3), 8.2)
    asm.add(_frame(rng, 1, attempt=2), 8.3)
    assert st.counters["duplicate_frames"] == 1 and st.counters["stale_frames"] == 1


def test_assembly_refine_restarts_and_decided_images_reanswer(rng):
    st = ServerStats()
    asm = Assembler(st, timeout_s=5.0)
    for i in range(4):
        asm.add(_frame(rng, i), 0.0)
    asm.poll(0.0)
    fine = ImageConfig(**{**CFG.__dict__, "bh": 1, "bw": 1})
    im = asm.get((1, 5))
    gen = im.generation
    asm.add(_frame(rng, 0, attempt=1, cfg=fine), 1.0)
    im = asm.get((1, 5))
    assert im.generation == gen + 1 and im.config == fine and im.n_frames == fine.frame_count()
    assert st.counters["image_restarts"] == 1
    # decided ACK at attempt 1; frames of attempt 2 -> one re-answer; attempt 0 -> a new image
    im.close("ACK", 1)
    ev = asm.add(_frame(rng, 0, attempt=2, cfg=fine), 2.0)
    ev += asm.add(_frame(rng, 1, attempt=2, cfg=fine), 2.0)
    assert [(e.kind, e.attempt, e.decision) for e in ev] == [("reanswer", 2, "ACK")]
    asm.add(_frame(rng, 0, attempt=0), 3.0)
    assert asm.get((1, 5)).decision is None and asm.get((1, 5)).config == CFG


def test_assembly_bounds_evict_and_expire(rng):
    st = ServerStats()
    asm = Assembler(st, timeout_s=5.0, max_images=3, ttl_s=10.0)
    events = []
    for img in range(5):
        events += asm.add(_frame(rng, 0, img=img), float(img))
    assert len(asm) == 3 and st.counters["images_evicted"] == 2
    assert [e.record["outcome"] for e in events] == ["evicted", "evicted"]
    assert [e.record["image_id"] for e in events] == [0, 1]
    per_frame = CFG.frame_payload_len(0) * 12       # memory held grows with the frames that arrived
    asm2 = Assembler(st, timeout_s=5.0, max_bytes=int(3.5 * per_frame))
    for img in range(6):
        asm2.add(_frame(rng, 0, img=img), 0.0)
    assert asm2.nbytes <= 3.5 * per_frame and len(asm2) == 3
    jobs, ev = asm.poll(100.0)                  # incomplete attempts time out first ...
    assert len(jobs) == 3 and len(asm) == 3       # ... and are held while their jobs are in flight
    for j in jobs:
        asm.get(j.key).in_flight -= 1            # what the server does when the decision is published
    _, ev = asm.poll(200.0)
    assert len(asm) == 0 and st.counters["images_expired"] == 3


def test_records_helpers():
    assert percentiles([]) == {"p50": None, "p99": None}
    p = percentiles(range(101))
    assert p["p50"] == 50 and abs(p["p99"] - 99) < 1e-9
    st = ServerStats()
    st.reject("replay")
    st.decision("ACK")
    st.add_latency("restore", 3.0)
    snap = st.snapshot()
    assert snap["rejected"] == {"replay": 1} and snap["images_served"] == 1
    assert snap["latency_ms"]["restore"]["p50"] == 3.0
    json.dumps(snap)
    m = merge_records([{"tx_id": 1, "image_id": 2, "outcome": "ACK"}],
                      [{"tx_id": 1, "image_id": 2, "outcome": "ACK"}, {"tx_id": 1, "image_id": 3}])
    assert len(m) == 1 and len(m[0]["server"]) == 1


def test_cli_build_config(tmp_path):
    import argparse

    from receiver_server import cli
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    f = tmp_path / "s.yaml"
    f.write_text("policy: {thresholds: {niqe: 7.0, consistency: 0.9}, max_attempts: 5}\nmax_queue: 9\n")
    args = p.parse_args(["--config", str(f), "--threshold", "niqe=6.5", "--mode", "selective", "--qoe",
                         "niqe,consistency", "--bind", "tcp://127.0.0.1:7000", "--assembly-timeout", "0.25"])
    cfg, qoe = cli.build_config(args)
    assert cfg.policy.thresholds == {"niqe": 6.5, "consistency": 0.9}
    assert cfg.policy.max_attempts == 5 and cfg.policy.mode == "selective" and cfg.max_queue == 9
    assert qoe == ("niqe", "consistency") and cfg.feedback_address == "tcp://127.0.0.1:7001"
    assert cfg.assembly_timeout_s == 0.25
    with pytest.raises(ValueError, match="METRIC=VALUE"):
        cli.build_config(p.parse_args(["--threshold", "niqe"]))
    with pytest.raises(ValueError):
        cli.build_config(p.parse_args(["--max-attempts", "40"]))
