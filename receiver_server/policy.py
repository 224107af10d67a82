# SPDX-License-Identifier: GPL-3.0-or-later
"""The ACK/NACK policy: QoE scores + what the server knows about the channel -> a decision.

An attempt is acknowledged when every thresholded QoE metric is on its good side. Otherwise, below the
attempt limit, the NACK says what to resend (``PolicyConfig.mode``):

* ``chase``: every frame again; the server combines the attempts (MRC), ~3 dB per doubling of attempts;
* ``selective``: only the frames never received plus those whose combined Es/N0 is ``worst_margin_db`` below
  the median frame (deep fades); when that is more than ``selective_max_fraction`` of the frames, or none
  stand out, all frames (Chase);
* ``refine``: the image re-encoded with the next finer block size (``bh-1 x bw-1``, at least 1): worth it when
  the channel is good and the loss is the source coding's; at 1x1, Chase;
* ``auto``: ``selective`` if some frames are missing or deeply faded, else ``refine`` when the combined Es/N0
  is at least ``refine_min_snr_db``, else ``chase``.

Two rules come before the metrics, so that the gate is right by construction at the ends of the range:

* an *error-free* observation (``clean``: its expected PSNR from the posterior is at least
  ``PolicyConfig.clean_db``) at a rate the gate is calibrated for (``bh*bw <= clean_max_block_area``) is
  acknowledged: no retransmission can add information. At a coarser rate the metrics decide, and a failure asks
  for a finer block size (``refine``), saying that the compression is the limit;
* metrics that cannot score the image (``skipped``, e.g. NIQE below two 96x96 patches) do not gate.

At the attempt limit the answer is FAIL, an explicit failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from infercom import channel

from .config import PolicyConfig

__all__ = ["Decision", "decide", "decide_crc", "passes"]


@dataclass(frozen=True)
class Decision:
    decision: str                     # ACK | NACK | FAIL
    reason: str
    mode: str = "none"                # none | chase | selective | refine
    frames: tuple[int, ...] = ()
    refine_bh: int = 0
    refine_bw: int = 0
    failed_metrics: tuple[str, ...] = field(default_factory=tuple)
    early: bool = False               # decided before restoring (PolicyConfig.early_nack)


def passes(scores: dict[str, float], thresholds: dict[str, float],
           higher_is_better: dict[str, bool]) -> tuple[bool, list[str]]:
    """(all thresholded metrics pass, the list of failures as readable strings).

    A thresholded metric without a score (it failed to compute) counts as failing.
    """
    fails = []
    for name, thr in thresholds.items():
        if name not in scores or not math.isfinite(scores[name]):
            fails.append(f"{name} missing")
            continue
        s = scores[name]
        up = higher_is_better.get(name, True)
        if (s < thr) if up else (s > thr):
            fails.append(f"{name} {s:.3g} {'<' if up else '>'} {thr:.3g}")
    return not fails, fails


def decide(scores: dict[str, float], thresholds: dict[str, float], higher_is_better: dict[str, bool],
           attempt: int, cfg: PolicyConfig, frame_snr_db: np.ndarray, bh: int, bw: int,
           evidence_db: float | None = None, skipped: tuple[str, ...] = (), insufficient: str | None = None
           ) -> Decision:
    """Decide on attempt ``attempt`` (0-based) of one image.

    ``frame_snr_db``: float (n_frames,) combined Es/N0 of each frame over all attempts so far (``-inf`` for a
    frame never received). ``bh``, ``bw``: the image's current block size. ``evidence_db``: the expected PSNR
    of the observation from its posterior (``qoe.reliability.expected_psnr``; None: unknown, never clean).
    ``skipped``: metrics that cannot score this image; their thresholds do not gate. ``insufficient``: why
    the attempt was not restored (too little received); it fails, and the NACK asks for what is missing.
    """
    gating = {k: v for k, v in thresholds.items() if k not in skipped}
    note = f" ({', '.join(sorted(skipped))} skipped: cannot score this image size)" if skipped else ""
    clean = evidence_db is not None and evidence_db >= cfg.clean_db and insufficient is None
    if clean and bh * bw <= cfg.clean_max_block_area:
        return Decision("ACK", f"observation error-free (expected PSNR {evidence_db:.1f} dB >= {cfg.clean_db:g}) "
                               f"at rate 1/{bh * bw}{note}")
    ok, fails = (False, [insufficient]) if insufficient else passes(scores, gating, higher_is_better)
    if ok:
        summary = ", ".join(f"{k} {v:.3g}" for k, v in sorted(scores.items()) if k not in skipped)
        return Decision("ACK", (f"QoE ok ({summary})" if summary else "QoE ok (no thresholds)") + note)
    reason = insufficient or ("QoE below threshold: " + "; ".join(fails) + note)
    failed = () if insufficient else tuple(f.split(" ", 1)[0] for f in fails)
    if attempt + 1 >= cfg.max_attempts:
        return Decision("FAIL", f"attempt limit {cfg.max_attempts} reached; {reason}", failed_metrics=failed)
    if clean and (bh > 1 or bw > 1):     # error-free but a rate coarser than the calibrated ones: the source coding is the limit
        nbh, nbw = max(1, bh - 1), max(1, bw - 1)
        return Decision("NACK", f"{reason}; the observation is error-free (expected PSNR {evidence_db:.1f} dB): "
                                f"the compression is the limit, rate 1/{bh * bw} cannot meet the QoE; refine to {nbh}x{nbw}",
                        "refine", refine_bh=nbh, refine_bw=nbw, failed_metrics=failed)
    snr = np.asarray(frame_snr_db, dtype=np.float64)
    n = snr.size
    missing = np.flatnonzero(~np.isfinite(snr))
    finite = snr[np.isfinite(snr)]
    worst: np.ndarray = missing
    if finite.size:
        med = float(np.median(finite))
        worst = np.union1d(missing, np.flatnonzero(np.isfinite(snr) & (snr < med - cfg.worst_margin_db)))
    few = 0 < worst.size <= cfg.selective_max_fraction * n
    image_snr_db = channel.image_snr_db(snr)
    mode = cfg.mode
    if mode == "auto":
        if few:
            mode = "selective"
        elif image_snr_db >= cfg.refine_min_snr_db and (bh > 1 or bw > 1):
            mode = "refine"
        else:
            mode = "chase"
    if mode == "selective" and not few:
        mode = "chase"
    if mode == "refine" and insufficient:       # frames are missing: the channel, not the compression
        mode = "chase"
    if mode == "refine" and bh == 1 and bw == 1:
        mode = "chase"
    if mode == "selective":
        return Decision("NACK", f"{reason}; resend {worst.size} missing/faded frames", "selective",
                        tuple(int(i) for i in worst), failed_metrics=failed)
    if mode == "refine":
        nbh, nbw = max(1, bh - 1), max(1, bw - 1)
        return Decision("NACK", f"{reason}; channel good ({image_snr_db:.1f} dB), refine to {nbh}x{nbw}",
                        "refine", refine_bh=nbh, refine_bw=nbw, failed_metrics=failed)
    return Decision("NACK", f"{reason}; resend all frames for Chase combining", "chase", failed_metrics=failed)


def decide_crc(crc_ok: bool, detail: str, attempt: int, cfg: PolicyConfig) -> Decision:
    """The NR baseline's own trigger (docs/nr.md): ACK when the transport block's CRC passes, else NACK for
    the next HARQ attempt (all frames: the transmitter sends the next redundancy version), FAIL at the
    attempt limit. ``detail``: what was decoded, for the reason."""
    if crc_ok:
        return Decision("ACK", f"CRC ok: {detail}")
    if attempt + 1 >= cfg.max_attempts:
        return Decision("FAIL", f"attempt limit {cfg.max_attempts} reached; CRC failed: {detail}")
    return Decision("NACK", f"CRC failed: {detail}; resend for HARQ combining", "chase")
