# SPDX-License-Identifier: GPL-3.0-or-later
"""The server's QoE gate on one InferCom attempt, without the server: soft symbols -> decision.

:func:`judge_soft` is what :meth:`receiver_server.server.InferenceServer.process` does with an assembled
attempt (LLRs -> MMSE block means and their posterior variance -> restoration -> QoE metrics ->
:func:`receiver_server.policy.decide`), as a function of arrays, so that an offline experiment
(``infercom experiment retransmissions``) measures exactly the gate the server applies.
:class:`Gate` bundles the restorer, the metrics, their thresholds and the policy, resolved as the server
resolves them (:func:`build_metrics`, :func:`receiver_server.server.resolve_thresholds`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from infercom import link
from infercom.channel import image_snr_db, snr_spread_db

from .config import PolicyConfig
from .policy import Decision, decide, passes
from .qoe.reliability import expected_psnr
from .restorers.base import restore_for_gate

__all__ = ["Judgement", "judge_soft", "observe", "image_snr_db", "build_metrics", "Gate"]


@dataclass
class Judgement:
    """One judged attempt: the decision, the QoE scores, the MMSE observation ``obs`` (float32 (h, w, C),
    grey levels), its posterior variance ``obs_var`` (grey levels²), the ``missing`` block mask, the restored
    image (uint8 (H, W, C)), the image's combined Es/N0 ``snr_db`` (dB) and the stage latencies (ms)."""

    decision: Decision
    scores: dict[str, float]
    obs: np.ndarray
    obs_var: np.ndarray
    missing: np.ndarray
    restored: np.ndarray | None          # None: NACKed before restoring (``decision.early``)
    snr_db: float
    latency_ms: dict[str, float] = field(default_factory=dict)


def observe(llr: np.ndarray, lay: link.ImageLayout, lcfg: link.LinkConfig, frame_snr_db: np.ndarray,
            attempts: int = 1, attempt: int = 0, **extra) -> tuple[np.ndarray, dict]:
    """The MMSE observation and the meta the server gives the restorer and the QoE metrics
    (:func:`infercom.link.observe`) from combined LLRs and the frames' combined Es/N0 ``frame_snr_db`` (dB):
    ``snr_db`` = :func:`infercom.channel.image_snr_db`, ``frame_snr_spread_db`` =
    :func:`infercom.channel.snr_spread_db`, plus the attempt number and ``extra`` keys."""
    frames = np.asarray(frame_snr_db, dtype=np.float64)
    obs, meta = link.observe(llr, lay, lcfg, image_snr_db(frames), attempts, snr_spread_db(frames))
    return obs, {**meta, "attempt": int(attempt), **extra}


def judge_soft(y: np.ndarray, noise_var, frame_snr_db: np.ndarray, lcfg: link.LinkConfig, lay: link.ImageLayout,
               attempt: int, attempts_combined: int, restorer: Any, metrics: dict[str, Any],
               thresholds: dict[str, float], higher_is_better: dict[str, bool], policy: PolicyConfig,
               meta_extra: dict | None = None) -> Judgement:
    """Judge attempt ``attempt`` (0-based) of one image from its Chase-combined soft symbols.

    ``y`` (complex64 (n_symbols,)) and ``noise_var`` (scalar or float32 (n_symbols,); ``inf`` where missing):
    the combined equalised payload symbols, in transmitted (interleaved) order; ``frame_snr_db``: float
    (n_frames,) combined Es/N0 per frame (dB). ``meta_extra``: more keys for the restorer's and metrics' meta
    (the server passes the transmitter and image ids). Returns a :class:`Judgement`."""
    t0 = time.perf_counter()
    llr = link.soft_to_llr(y, noise_var, lay, lcfg)
    t1 = time.perf_counter()
    obs, meta = observe(llr, lay, lcfg, frame_snr_db, attempts_combined, attempt, **(meta_extra or {}))
    obs_var, missing, snr_db = meta["obs_var"], meta["missing"], meta["snr_db"]
    t2 = time.perf_counter()
    evidence = expected_psnr(obs_var, missing)
    scores, skipped = {}, []

    def score(names, restored):
        for name in names:
            m = metrics[name]
            applies = getattr(m, "applies", None)
            if applies is not None and not applies(lay.height, lay.width):
                skipped.append(name)
                continue
            scores[name] = float(m.score(restored, obs, meta))

    pre = [n for n, m in metrics.items() if getattr(m, "needs_restored", True) is False]
    score(pre, None)
    if policy.early_nack and attempt + 1 < policy.max_attempts and evidence < policy.clean_db:
        gating = {k: v for k, v in thresholds.items() if k in pre and k not in skipped}
        if gating and not passes(scores, gating, higher_is_better)[0]:
            dec = decide(scores, gating, higher_is_better, attempt, policy, frame_snr_db, lcfg.bh, lcfg.bw,
                         evidence_db=evidence, skipped=tuple(skipped))
            dec = replace(dec, early=True, reason=f"early, not restored: {dec.reason}")
            t3 = time.perf_counter()
            lat = {"llr": 1e3 * (t1 - t0), "pixels": 1e3 * (t2 - t1), "restore": 0.0, "qoe": 1e3 * (t3 - t2)}
            return Judgement(dec, scores, obs, obs_var, missing, None, float(snr_db), lat)
    t_r = time.perf_counter()
    restored = restore_for_gate(restorer, obs, meta)
    t3 = time.perf_counter()
    score([n for n in metrics if n not in pre], restored)
    t4 = time.perf_counter()
    dec = decide(scores, thresholds, higher_is_better, attempt, policy, frame_snr_db, lcfg.bh, lcfg.bw,
                 evidence_db=evidence, skipped=tuple(skipped))
    lat = {"llr": 1e3 * (t1 - t0), "pixels": 1e3 * (t2 - t1), "restore": 1e3 * (t3 - t_r),
           "qoe": 1e3 * (t4 - t3 + t_r - t2)}
    return Judgement(dec, scores, obs, obs_var, missing, restored, float(snr_db), lat)


def build_metrics(names, device: str = "cpu", configs: dict | None = None) -> dict[str, Any]:
    """The QoE metrics ``names`` (``("none",)``: none) as the server builds them
    (:func:`receiver_server.qoe.get_qoe` with each one's config from ``configs``)."""
    from .qoe import get_qoe

    names = tuple(names)
    if names == ("none",):
        return {}
    configs = configs or {}
    return {n: get_qoe(n, device, dict(configs.get(n, {})) or None) for n in names}


class Gate:
    """The server's gate as an object: ``restorer`` (a name of the registry or an object), the QoE ``metrics``
    (default: the server's default set), their thresholds resolved as the server does (the restorer's
    calibrated entry) unless ``thresholds`` are given, and the ``policy``. :meth:`judge` = :func:`judge_soft`."""

    def __init__(self, restorer: Any = None, metrics=None, policy: PolicyConfig | None = None,
                 thresholds: dict[str, float] | None = None, device: str = "cpu",
                 restorer_config: dict | None = None):
        from .restorers import DEFAULT_RESTORER, get_restorer
        from .server import calibration_name, default_qoe_names, resolve_thresholds

        configured = restorer if isinstance(restorer, str) or restorer is None else None
        if restorer is None or isinstance(restorer, str):
            restorer = get_restorer(restorer or DEFAULT_RESTORER, device, restorer_config)
        self.restorer = restorer
        if metrics is None or isinstance(metrics, (list, tuple)):
            metrics = build_metrics(metrics or default_qoe_names(), device)
        self.metrics = dict(metrics)
        self.policy = policy or PolicyConfig()
        self.restorer_name = calibration_name(restorer, configured)
        self.thresholds = resolve_thresholds(self.metrics, dict(thresholds if thresholds is not None
                                                                else self.policy.thresholds), self.restorer_name)
        self.higher_is_better = {n: bool(m.higher_is_better) for n, m in self.metrics.items()}

    def judge(self, y, noise_var, frame_snr_db, lcfg: link.LinkConfig, lay: link.ImageLayout, attempt: int,
              attempts_combined: int, meta_extra: dict | None = None) -> Judgement:
        return judge_soft(y, noise_var, frame_snr_db, lcfg, lay, attempt, attempts_combined, self.restorer,
                          self.metrics, self.thresholds, self.higher_is_better, self.policy, meta_extra)
