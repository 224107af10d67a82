# SPDX-License-Identifier: GPL-3.0-or-later
"""QoE metrics chosen by name: ``get_qoe(name, device="cpu", config=None)``.

Implementations are imported lazily (``"module:Class"``), so importing this package imports no torch.

| name | what | direction, range | needs |
|---|---|---|---|
| ``niqe`` | NIQE naturalness (Mittal et al. 2013), pristine model from basicsr | lower, [0, inf) | numpy, scipy |
| ``clip_iqa`` | CLIP-IQA, antonym prompts "Good photo." / "Bad photo." | higher, [0, 1] | CLIP weights |
| ``clip_sim`` | cosine similarity of CLIP image embeddings (vs observation or reference) | higher, [-1, 1] | CLIP |
| ``consistency`` | offline proxy: block means of restored within the posterior of the observation | higher, [0, 1] | numpy |
| ``reliability`` | expected PSNR of the observation from ``obs_var`` (did enough arrive?) | higher, [0, 100] dB | numpy |
| ``psnr`` | full reference (evaluation only): PSNR vs ``meta["reference"]``, dB | higher, [0, inf] | numpy |
| ``ssim`` | full reference (evaluation only): SSIM vs ``meta["reference"]`` | higher, [-1, 1] | numpy |

Thresholds for ACK/NACK: :func:`receiver_server.qoe.thresholds.load_thresholds`. See docs/qoe.md.
"""

from __future__ import annotations

import importlib

from .base import QoEMetric

REGISTRY: dict[str, str] = {
    "niqe": "receiver_server.qoe.niqe:NIQE",
    "clip_iqa": "receiver_server.qoe.clip:CLIPIQA",
    "clip_sim": "receiver_server.qoe.clip:CLIPSimilarity",
    "consistency": "receiver_server.qoe.consistency:ConsistencyProxy",
    "reliability": "receiver_server.qoe.reliability:Reliability",
    "psnr": "receiver_server.qoe.fullref:PSNR",
    "ssim": "receiver_server.qoe.fullref:SSIM",
}

#: the server's default metric set when no CLIP weights are configured: naturalness + semantic consistency +
#: reliability (did enough information arrive? -- a generative restorer looks natural and faithful regardless)
DEFAULT_QOE: tuple[str, ...] = ("niqe", "consistency", "reliability")
#: the set with CLIP weights (config ``path`` for both), as in the papers
CLIP_QOE: tuple[str, ...] = ("clip_iqa", "clip_sim")

#: metrics that need a reference image (evaluation only, never in the ACK/NACK loop)
FULL_REFERENCE = ("psnr", "ssim")


def available() -> list[str]:
    return sorted(REGISTRY)


def get_qoe(name: str, device: str = "cpu", config: dict | None = None) -> QoEMetric:
    """Build the QoE metric registered as ``name``; ValueError for an unknown name or bad config, ImportError
    (naming the module) when its implementation or a dependency cannot be imported."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown QoE metric {name!r}; choose from {', '.join(available())}")
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"QoE config must be a dict or None, got {type(config).__name__}")
    module_name, _, attr = REGISTRY[name].partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"QoE metric {name!r} is not available: cannot import {REGISTRY[name]!r}: {exc}") \
            from exc
    return cls(device=device, config=config)


__all__ = ["QoEMetric", "REGISTRY", "DEFAULT_QOE", "CLIP_QOE", "FULL_REFERENCE", "available", "get_qoe"]
