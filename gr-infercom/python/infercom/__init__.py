# SPDX-License-Identifier: GPL-3.0-or-later
"""gnuradio.infercom: GNU Radio 3.10 blocks for the InferCom generative uplink.

Thin wrappers around the ``infercom`` core library (see docs/internals.md and docs/gnuradio.md).  Blocks are
imported lazily, so ``from gnuradio import infercom`` is cheap and a block whose kernels are missing only fails
when it is used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: block name -> module (file name = class name = block name, GRC id infercom_<name>)
BLOCKS = (
    "tx_controller",
    "frame_modulator",
    "burst_sync",
    "frame_demod",
    "chase_combiner",
    "server_link",
    "block_fading",
    # hierarchical blocks: the whole chains, built from the blocks above (apps, grc/ and users share them)
    "tx",
    "rx",
)

#: helpers usable in GRC expressions (thin re-exports, no logic of their own)
HELPERS = {
    "rrc_taps": ("infercom.channel", "rrc_taps"),             # unit-energy RRC taps (sps, beta, span)
    "load_hw_config": ("gnuradio.infercom.hwconfig", "load_hw_config"),  # hw_configs/<name>.yaml -> dict
}

__all__ = list(BLOCKS) + list(HELPERS)


def block_class(name: str):
    """The block class ``name``, made this package's attribute (also where its module was imported directly
    first, which leaves the *module* as the package's attribute; the hier blocks get their blocks so)."""
    if name not in BLOCKS:
        raise AttributeError(f"module {__name__!r} has no block {name!r}")
    cls = getattr(importlib.import_module(f"{__name__}.{name}"), name)
    globals()[name] = cls
    return cls


def __getattr__(name: str):
    if name in BLOCKS:
        return block_class(name)
    if name in HELPERS:
        module, attr = HELPERS[name]
        obj = getattr(importlib.import_module(module), attr)
        globals()[name] = obj
        return obj
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(BLOCKS) + list(HELPERS))
