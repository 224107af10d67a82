# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom-restorer``, the project's own two-stage (SUPIR-style) restorer: one restorer of the registry
(:mod:`receiver_server.restorers`), with its networks, training, evaluation and latency bench.

| module | job |
|---|---|
| :mod:`.nets` | the two networks (``Stage1Net``, ``Stage2Net``) and the condition vector |
| :mod:`.model` | ``InferComRestorer`` (registered as ``infercom-restorer``) and ``InferComRestorerStage1``
  (``infercom-restorer-stage1``), the v1 checkpoint's ``InferComRestorerV1`` / ``InferComRestorerV1Stage1``:
  checkpoint loading, guided few-step sampling, batched restoration, the Restorer interface |
| :mod:`.train` | ``infercom train-restorer`` |
| :mod:`.evaluate` | ``infercom eval-restorer`` |
| :mod:`.bench` | bench suite ``restorer`` (``infercom bench``) |
| ``checkpoints/infercom_restorer_v2.pt`` | the shipped default checkpoint, v2 (package data) |
| ``checkpoints/infercom_restorer.pt`` | the first checkpoint, v1 (``infercom-restorer-v1``), for comparison |

See docs/restorers.md. Imports are lazy: importing this package imports no torch.
"""

__all__ = ["InferComRestorer", "InferComRestorerStage1", "InferComRestorerV1", "InferComRestorerV1Stage1"]


def __getattr__(name):
    if name in __all__:
        from . import model

        return getattr(model, name)
    raise AttributeError(name)
