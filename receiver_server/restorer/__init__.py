# SPDX-License-Identifier: GPL-3.0-or-later
"""The project's own two-stage (SUPIR-style) restorer: networks, model wrapper, training, evaluation, bench.

``InferComRestorer`` (:mod:`.model`) implements the Restorer interface of docs/internals.md and is registered
as ``infercom-restorer``. Imports are lazy so that ``import receiver_server.restorer`` stays cheap.
"""

__all__ = ["InferComRestorer", "InferComRestorerStage1"]


def __getattr__(name):
    if name in __all__:
        from . import model

        return getattr(model, name)
    raise AttributeError(name)
