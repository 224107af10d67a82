# SPDX-License-Identifier: GPL-3.0-or-later
"""ACK/NACK thresholds of the QoE metrics.

* CLIP metrics: the papers' defaults, CLIP-IQA >= 0.8 and CLIP similarity >= 0.9.
* Offline metrics (``niqe``, ``consistency``, ``reliability``): calibrated on bsds500 by ``infercom
  calibrate-qoe`` (:mod:`receiver_server.qoe.calibrate`) and stored, with the command that produced them, in
  ``receiver_server/qoe/thresholds.json`` (method: docs/qoe.md). Before a calibration file exists, or when it
  lacks a metric, ``load_thresholds`` raises for that metric rather than inventing a value.
* The offline thresholds depend on the restorer whose outputs are scored (a generative restorer is sharper
  and removes bit errors), so the file holds one entry per calibrated restorer under ``"restorers"``; the
  top-level ``"thresholds"`` are the default restorer's (``"default_restorer"``, bicubic). ``threshold(...,
  restorer=NAME)`` picks NAME's own entry and falls back to the default entry for a restorer without one
  (``Threshold.restorer`` says which entry was used, so the caller can log the fallback).

A threshold says which side passes: ``higher_is_better`` metrics pass when ``value >= threshold``, the others
(NIQE) when ``value <= threshold``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

CALIBRATION_FILE = Path(__file__).resolve().parent / "thresholds.json"

#: the papers' defaults (InferCom / GenCom): CLIP-IQA >= 0.8, CLIP similarity >= 0.9
PAPER_DEFAULTS = {"clip_iqa": 0.8, "clip_sim": 0.9}
DIRECTION = {"clip_iqa": True, "clip_sim": True, "consistency": True, "reliability": True, "niqe": False,
             "psnr": True, "ssim": True}


@dataclass(frozen=True)
class Threshold:
    metric: str
    value: float
    higher_is_better: bool
    source: str            # "paper" or "calibrated (<file>, <restorer>)" or "config"
    restorer: str | None = None   # the calibration entry used (None: not from the calibration file)

    def passes(self, score: float) -> bool:
        """True when ``score`` is on the acceptable side (NaN never passes)."""
        if not isinstance(score, (int, float)) or math.isnan(score):
            return False
        return score >= self.value if self.higher_is_better else score <= self.value


def load_calibration(path: str | Path | None = None) -> dict:
    """The calibration JSON (``{"thresholds": {metric: value}, "command": ..., ...}``); {} if absent."""
    p = Path(path) if path is not None else CALIBRATION_FILE
    if not p.is_file():
        return {}
    with open(p, encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or not isinstance(doc.get("thresholds"), dict):
        raise ValueError(f"{p}: not a threshold calibration file (no 'thresholds' object)")
    return doc


def threshold(metric: str, overrides: dict | None = None, calibration: str | Path | None = None,
              restorer: str | None = None) -> Threshold:
    """The ACK threshold of ``metric``: ``overrides`` (e.g. from the server config) first, then the papers'
    defaults for CLIP metrics, then the calibration file: ``restorer``'s own entry when it has one, else the
    default restorer's (top-level ``thresholds``). ValueError when none applies."""
    if metric not in DIRECTION:
        raise ValueError(f"no threshold rule for metric {metric!r}; known: {', '.join(sorted(DIRECTION))}")
    hib = DIRECTION[metric]
    if overrides and metric in overrides:
        v = float(overrides[metric])
        if not math.isfinite(v):
            raise ValueError(f"threshold for {metric} must be finite, got {overrides[metric]!r}")
        return Threshold(metric, v, hib, "config")
    if metric in PAPER_DEFAULTS:
        return Threshold(metric, PAPER_DEFAULTS[metric], hib, "paper")
    doc = load_calibration(calibration)
    p = Path(calibration) if calibration is not None else CALIBRATION_FILE
    entries = doc.get("restorers") or {}
    if not isinstance(entries, dict):
        raise ValueError(f"{p}: 'restorers' must be an object restorer -> entry")
    own = entries.get(restorer) if restorer is not None else None
    if isinstance(own, dict) and metric in (own.get("thresholds") or {}):
        return Threshold(metric, float(own["thresholds"][metric]), hib, f"calibrated ({p.name}, {restorer})",
                         restorer)
    if metric in doc.get("thresholds", {}):
        default = doc.get("default_restorer", doc.get("restorer"))
        return Threshold(metric, float(doc["thresholds"][metric]), hib,
                         f"calibrated ({p.name}, {default or 'default'})", default)
    raise ValueError(f"no threshold for {metric!r}: run `infercom calibrate-qoe` or set one "
                     "in the config")


def load_thresholds(metrics: list[str] | tuple[str, ...] = ("clip_iqa", "clip_sim", "niqe", "consistency"),
                    overrides: dict | None = None, calibration: str | Path | None = None,
                    restorer: str | None = None) -> dict[str, Threshold]:
    """Thresholds of several metrics (see :func:`threshold`)."""
    return {m: threshold(m, overrides, calibration, restorer) for m in metrics}
