# SPDX-License-Identifier: GPL-3.0-or-later
"""Transmitter ARQ state machine: what is sent on ACK/NACK/timeout, attempt limits, nothing silently lost."""

from __future__ import annotations

import json

import numpy as np
import pytest

from infercom.arq import ArqConfig, ArqQueue, ImageTransfer
from infercom.protocol import Feedback


def ack(t, attempt, **kw):
    return Feedback(tx_id=t.tx_id, image_id=t.image_id, attempt=attempt, decision="ACK", **kw)


def nack(t, attempt, mode="chase", **kw):
    return Feedback(tx_id=t.tx_id, image_id=t.image_id, attempt=attempt, decision="NACK", mode=mode,
                    next_attempt=attempt + 1, **kw)


def test_first_attempt_then_ack():
    t = ImageTransfer(3, 10, 3, 3, ArqConfig(max_attempts=4, timeout_s=2.0))
    p = t.start(0.0)
    assert (p.attempt, p.frames, p.bh, p.bw, p.why) == (0, None, 3, 3, "first")
    t.sent(0, 0.5, n_frames=12)
    assert t.deadline() == 2.5
    assert t.poll(2.4) is None
    assert t.on_feedback(ack(t, 0, scores={"niqe": 4.0}), 1.0) is None
    assert t.done and t.outcome == "ACK"
    rec = t.record()
    assert rec["outcome"] == "ACK" and rec["n_attempts"] == 1 and rec["latency_s"] == 1.0
    assert rec["attempts"][0]["scores"] == {"niqe": 4.0} and rec["attempts"][0]["n_frames_sent"] == 12
    json.dumps(rec)


def test_nack_modes_produce_the_requested_resend():
    t = ImageTransfer(1, 2, 4, 4, ArqConfig(max_attempts=5))
    t.start(0)
    t.sent(0, 0)
    p = t.on_feedback(nack(t, 0, "chase"), 1)
    assert (p.attempt, p.frames, p.why, p.bh) == (1, None, "chase", 4)
    t.sent(1, 1)
    p = t.on_feedback(nack(t, 1, "selective", frames=(2, 7)), 2)
    assert (p.attempt, p.frames, p.why) == (2, (2, 7), "selective")
    t.sent(2, 2)
    p = t.on_feedback(nack(t, 2, "refine", refine_bh=2, refine_bw=3), 3)
    assert (p.attempt, p.frames, p.bh, p.bw, p.why) == (3, None, 2, 3, "refine")
    t.sent(3, 3)
    # the refined block size persists into later chase attempts
    p = t.on_feedback(nack(t, 3, "chase"), 4)
    assert (p.attempt, p.bh, p.bw) == (4, 2, 3)
    t.sent(4, 4)
    assert t.on_feedback(ack(t, 4), 5) is None and t.outcome == "ACK"
    assert [a["why"] for a in t.record()["attempts"]] == ["first", "chase", "selective", "refine", "chase"]


def test_attempt_limit_gives_explicit_failure():
    t = ImageTransfer(1, 2, 3, 3, ArqConfig(max_attempts=2))
    t.start(0)
    t.sent(0, 0)
    assert t.on_feedback(nack(t, 0), 1).attempt == 1
    t.sent(1, 1)
    assert t.on_feedback(nack(t, 1, reason="niqe too high"), 2) is None
    assert t.outcome == "FAIL" and "attempt limit 2" in t.failure and "niqe too high" in t.failure
    assert t.record()["outcome"] == "FAIL"


def test_server_fail_ends_transfer():
    t = ImageTransfer(1, 2, 3, 3)
    t.start(0)
    t.sent(0, 0)
    t.on_feedback(Feedback(tx_id=1, image_id=2, attempt=0, decision="FAIL", reason="server limit"), 1)
    assert t.outcome == "FAIL" and "server limit" in t.failure


def test_timeout_resends_all_frames_and_counts_as_attempt():
    t = ImageTransfer(1, 2, 3, 3, ArqConfig(max_attempts=3, timeout_s=1.0, timeout_backoff=2.0))
    t.start(0)
    t.sent(0, 0)
    assert t.poll(0.99) is None
    p = t.poll(1.0)
    assert (p.attempt, p.frames, p.why) == (1, None, "timeout")
    t.sent(1, 1.0)
    assert t.deadline() == 3.0            # backed off to 2 s
    p = t.poll(3.0)
    assert p.attempt == 2
    t.sent(2, 3.0)
    assert t.poll(7.0) is None            # last attempt timed out -> explicit failure
    assert t.outcome == "FAIL" and "no feedback" in t.failure
    assert [a["timed_out"] for a in t.record()["attempts"]] == [True, True, True]


def test_no_timeout_before_sent():
    t = ImageTransfer(1, 2, 3, 3, ArqConfig(timeout_s=1.0))
    t.start(0)
    assert t.poll(100.0) is None and t.deadline() is None


def test_stale_feedback_is_ignored_but_late_ack_accepted():
    t = ImageTransfer(1, 2, 3, 3, ArqConfig(max_attempts=4, timeout_s=1.0))
    t.start(0)
    t.sent(0, 0)
    t.poll(1.5)                           # timeout -> attempt 1 planned
    t.sent(1, 1.6)
    assert t.on_feedback(nack(t, 0), 1.7) is None       # stale NACK of attempt 0
    assert t.on_feedback(nack(t, 5), 1.7) is None       # attempt from the future
    assert t.ignored_feedback == 2 and not t.done
    assert t.on_feedback(ack(t, 0), 1.8) is None        # a late ACK still means the server was satisfied
    assert t.outcome == "ACK"
    assert t.on_feedback(ack(t, 1), 1.9) is None and t.ignored_feedback == 3


def test_feedback_for_another_image_is_an_error():
    t = ImageTransfer(1, 2, 3, 3)
    t.start(0)
    with pytest.raises(ValueError):
        t.on_feedback(Feedback(tx_id=1, image_id=3, attempt=0, decision="ACK"), 0)
    with pytest.raises(ValueError):
        t.on_feedback(Feedback(tx_id=2, image_id=2, attempt=0, decision="ACK"), 0)


@pytest.mark.parametrize("kw", [dict(max_attempts=0), dict(max_attempts=17), dict(timeout_s=0),
                                dict(timeout_backoff=0.5)])
def test_config_validation(kw):
    with pytest.raises(ValueError):
        ArqConfig(**kw)


def test_bad_transfer_args():
    with pytest.raises(ValueError):
        ImageTransfer(256, 0, 3, 3)
    with pytest.raises(ValueError):
        ImageTransfer(0, 0, 9, 3)
    t = ImageTransfer(0, 0, 3, 3)
    t.start(0)
    with pytest.raises(ValueError):
        t.start(0)
    with pytest.raises(ValueError):
        t.sent(3, 0)


def test_queue_random_server_nothing_lost():
    """A randomly behaving server (drops, NACKs, ACKs, late answers): every image ends ACK or FAIL."""
    rng = np.random.default_rng(7)
    cfg = ArqConfig(max_attempts=4, timeout_s=1.0, timeout_backoff=1.0)
    q = ArqQueue(tx_id=9, cfg=cfg, window=3)
    for i in range(50):
        q.add(i, 3, 3, meta={"name": f"img{i}"})
    with pytest.raises(ValueError):
        q.add(0, 3, 3)
    now = 0.0
    inbox: list[tuple[float, Feedback]] = []
    sent_log = []
    while not q.finished and now < 1000:
        for p in q.step(now):
            q.sent(p, now)
            sent_log.append((p.image_id, p.attempt))
            r = rng.random()
            delay = rng.uniform(0.1, 1.5)
            if r < 0.2:
                continue                                      # lost feedback
            t_fb = now + delay
            if r < 0.6:
                mode = ["chase", "selective", "refine"][rng.integers(3)]
                extra = {"selective": dict(frames=(1, 4)), "refine": dict(refine_bh=2, refine_bw=2)}.get(mode, {})
                fb = Feedback(tx_id=9, image_id=p.image_id, attempt=p.attempt, decision="NACK", mode=mode,
                              next_attempt=p.attempt + 1, **extra)
            else:
                fb = Feedback(tx_id=9, image_id=p.image_id, attempt=p.attempt, decision="ACK")
            inbox.append((t_fb, fb))
        now += 0.05
        due = [x for x in inbox if x[0] <= now]
        inbox = [x for x in inbox if x[0] > now]
        for _, fb in due:
            p = q.on_feedback(fb, now)
            if p is not None:
                q.sent(p, now)
                sent_log.append((p.image_id, p.attempt))
                inbox.append((now + 0.2, Feedback(tx_id=9, image_id=p.image_id, attempt=p.attempt,
                                                  decision="ACK")))
        assert len(list(q.in_flight)) <= 3
    assert q.finished
    recs = q.records()
    assert sorted(r["image_id"] for r in recs) == list(range(50))
    assert all(r["outcome"] in ("ACK", "FAIL") for r in recs)
    assert all(r["n_attempts"] <= 4 for r in recs)
    assert all(r["failure"] for r in recs if r["outcome"] == "FAIL")
    outcomes = {r["outcome"] for r in recs}
    assert outcomes == {"ACK", "FAIL"}          # the random server exercised both endings
    # attempts of an image are numbered 0, 1, 2, ... without gaps
    for r in recs:
        assert [a["attempt"] for a in r["attempts"]] == list(range(r["n_attempts"]))
    json.dumps(recs)


def test_queue_unmatched_feedback_and_abort():
    q = ArqQueue(tx_id=1, window=2)
    q.add(0, 3, 3)
    q.add(1, 3, 3)
    q.add(2, 3, 3)
    plans = q.step(0.0)
    assert [p.image_id for p in plans] == [0, 1]
    assert q.on_feedback(Feedback(tx_id=2, image_id=0, attempt=0, decision="ACK"), 0) is None
    assert q.on_feedback(Feedback(tx_id=1, image_id=2, attempt=0, decision="ACK"), 0) is None
    assert q.unmatched_feedback == 2
    q.abort_all(1.0, "shutdown")
    assert q.finished
    recs = q.records()
    assert len(recs) == 3 and all(r["outcome"] == "FAIL" and r["failure"] == "shutdown" for r in recs)
