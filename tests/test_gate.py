# SPDX-License-Identifier: GPL-3.0-or-later
"""receiver_server.gate: the server's decision on one attempt, from arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infercom import channel, link
from receiver_server.config import PolicyConfig
from receiver_server.gate import Gate, image_snr_db, judge_soft


def _img(rng, h=192, w=192):
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 // w), (y * 255 // h), ((x + y) * 127 // (h + w)) + 64], axis=2)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def test_image_snr_is_the_linear_mean_over_all_frames():
    assert image_snr_db(np.array([0.0, 0.0])) == pytest.approx(0.0)
    assert image_snr_db(np.array([10.0, -np.inf])) == pytest.approx(10 * math.log10(5))
    assert image_snr_db(np.array([-np.inf])) == -99.0


def test_clean_observation_is_acked_and_noise_is_failed_at_the_limit(rng):
    img = _img(rng)
    cfg = link.LinkConfig(bh=3, bw=3)
    x, lay = link.encode_image(img, cfg)
    gate = Gate("bicubic", policy=PolicyConfig(mode="chase", max_attempts=2))
    assert set(gate.thresholds) == {"niqe", "consistency", "reliability"}     # the server's default set
    j = gate.judge(x, channel.NOISELESS_VAR, np.array([60.0]), cfg, lay, 0, 1)
    assert j.decision.decision == "ACK" and "error-free" in j.decision.reason
    assert j.restored.shape == img.shape and j.restored.dtype == np.uint8
    rx = channel.SymbolChannel(snr_db=-14.0)(x, np.random.default_rng(0))
    j0 = gate.judge(rx.y, rx.noise_var, np.array([-14.0]), cfg, lay, 0, 1)
    j1 = gate.judge(rx.y, rx.noise_var, np.array([-14.0]), cfg, lay, 1, 2)
    assert (j0.decision.decision, j1.decision.decision) == ("NACK", "FAIL")
    # below the limit the reliability metric fails before restoring: an early NACK, nothing restored ...
    assert j0.decision.early and j0.restored is None and set(j0.scores) == {"reliability"}
    assert j0.decision.reason.startswith("early, not restored")
    # ... at the limit the image is restored and fully scored (a FAIL delivers its best image)
    assert not j1.decision.early and j1.restored is not None and set(j1.scores) == set(gate.thresholds)
    assert j0.scores["reliability"] == j1.scores["reliability"]
    # the function and the object agree
    j2 = judge_soft(rx.y, rx.noise_var, np.array([-14.0]), cfg, lay, 0, 1, gate.restorer, gate.metrics,
                    gate.thresholds, gate.higher_is_better, gate.policy)
    assert j2.scores == j0.scores and j2.decision == j0.decision


@pytest.mark.parametrize("snr_db", [-14.0, -8.0, -2.0, 4.0])
def test_early_nack_is_the_full_gates_decision(rng, snr_db):
    """With or without the early NACK the gate reaches the same decision, mode and resend request; only the
    reason, the scores it had and what was restored differ."""
    img = _img(rng)
    cfg = link.LinkConfig(bh=3, bw=3)
    x, lay = link.encode_image(img, cfg)
    early = Gate("bicubic", policy=PolicyConfig(mode="auto", max_attempts=4))
    full = Gate("bicubic", policy=PolicyConfig(mode="auto", max_attempts=4, early_nack=False))
    for a in range(3):
        rx = channel.SymbolChannel(snr_db=snr_db, fading="block", fading_per="frame", frame_len=4096)(
            x, np.random.default_rng(a))
        f_snr = 10 * np.log10(1.0 / np.add.reduceat(np.broadcast_to(rx.noise_var, x.shape), np.arange(0, x.size, 4096))
                              * np.diff(np.append(np.arange(0, x.size, 4096), x.size)))
        je = early.judge(rx.y, rx.noise_var, f_snr, cfg, lay, a, a + 1)
        jf = full.judge(rx.y, rx.noise_var, f_snr, cfg, lay, a, a + 1)
        de, df = je.decision, jf.decision
        assert (de.decision, de.mode, de.frames, de.refine_bh, de.refine_bw) == \
            (df.decision, df.mode, df.frames, df.refine_bh, df.refine_bw)
        assert not df.early and (je.restored is None) == de.early
        if not de.early:
            assert je.scores == jf.scores and np.array_equal(je.restored, jf.restored)
    with pytest.raises(ValueError, match="early_nack"):
        PolicyConfig(early_nack="yes")
