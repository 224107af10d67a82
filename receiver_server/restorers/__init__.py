# SPDX-License-Identifier: GPL-3.0-or-later
"""Restorers chosen by name: ``get_restorer(name, device="cpu", config=None)``.

Implementations are imported lazily from ``"module:Class"`` strings, so importing this package imports no
torch; a restorer whose module (or its dependencies) cannot be imported gives a clear error naming it.

| name | what | needs |
|---|---|---|
| ``bicubic`` | the papers' conventional baseline (``infercom.link.upsample``) | numpy, Pillow |
| ``infercom-restorer`` | the project's own SUPIR-style model (``.infercom_restorer``) | torch, checkpoint |
| ``infercom-restorer-stage1`` | its fast regression stage alone (outlier removal + upsampling) | torch, checkpoint |
| ``infercom-restorer-v1``, ``-v1-stage1`` | the first checkpoint (no soft bits, no power profile), for comparison | torch |
| ``supir`` | adapter for the official SUPIR code and checkpoints (paths in the config) | SUPIR repo, GPU |
| ``diffusers`` | any local diffusers img2img / upscale pipeline directory | diffusers, torch |

See docs/restorers.md.
"""

from __future__ import annotations

import importlib

from .base import Restorer, check_inputs, upsample_observation

#: restorer name -> "module:Class"; the class is called as ``Class(device=..., config=...)``
REGISTRY: dict[str, str] = {
    "bicubic": "receiver_server.restorers.bicubic:BicubicRestorer",
    "infercom-restorer": "receiver_server.restorers.infercom_restorer.model:InferComRestorer",
    "infercom-restorer-stage1": "receiver_server.restorers.infercom_restorer.model:InferComRestorerStage1",
    "infercom-restorer-v1": "receiver_server.restorers.infercom_restorer.model:InferComRestorerV1",
    "infercom-restorer-v1-stage1": "receiver_server.restorers.infercom_restorer.model:InferComRestorerV1Stage1",
    "supir": "receiver_server.restorers.supir:SupirRestorer",
    "diffusers": "receiver_server.restorers.diffusers_pipeline:DiffusersRestorer",
}

#: the server's default: the project's own model with its shipped checkpoint (issue #5); ``bicubic`` is the
#: papers' conventional baseline (name it explicitly, e.g. ``--restorer bicubic``)
DEFAULT_RESTORER = "infercom-restorer"


def available() -> list[str]:
    """Registered restorer names (whether or not their dependencies are installed)."""
    return sorted(REGISTRY)


def resolve(target: str):
    """Import ``"module:Class"`` and return the class; ImportError with the target named when it fails."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"cannot import {module_name!r} for {target!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImportError(f"module {module_name!r} has no {attr!r} (needed for {target!r})") from None


def get_restorer(name: str, device: str = "cpu", config: dict | None = None) -> Restorer:
    """Build the restorer registered as ``name`` on ``device`` with its ``config`` dict.

    ValueError for an unknown name or a bad config; ImportError (naming the module) when the implementation
    or one of its dependencies is not installed.
    """
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown restorer {name!r}; choose from {', '.join(available())}")
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"restorer config must be a dict or None, got {type(config).__name__}")
    if not isinstance(device, str) or not device:
        raise ValueError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}")
    try:
        cls = resolve(REGISTRY[name])
    except ImportError as exc:
        raise ImportError(f"restorer {name!r} is not available: {exc}") from exc
    return cls(device=device, config=config)


__all__ = ["Restorer", "REGISTRY", "DEFAULT_RESTORER", "available", "get_restorer", "resolve",
           "check_inputs", "upsample_observation"]
