# SPDX-License-Identifier: GPL-3.0-or-later
"""The command-line options that choose the 5G-NR baseline, shared by ``infercom simulate``, ``loopback``,
``tx`` and ``demo``: ``--system infercom|nr``, ``--budget``, ``--code-rate``, ``--harq`` (docs/nr.md)."""

from __future__ import annotations

import argparse

from .harq import HARQ_MODES
from .jpeg import BUDGET_MODES
from .tbs import RATES

__all__ = ["add_arguments", "nr_kwargs"]


#: the systems of ``--system`` without an apps-layer extension
SYSTEMS: tuple[str, ...] = ("infercom", "nr")


def add_arguments(p: argparse.ArgumentParser, systems: tuple[str, ...] = SYSTEMS):
    """Add the option group (defaults: InferCom; for NR: channel-uses budget, code rate 1/3, IR) and return
    it (a command adds its own NR options to it). ``systems``: the choices of ``--system`` (an apps-layer
    command may add a system of a layer above the core, e.g. ``deepjscc`` for ``infercom simulate``; the
    default is :data:`SYSTEMS`)."""
    systems = tuple(systems)
    if not set(SYSTEMS) <= set(systems):
        raise ValueError(f"--system choices must include {SYSTEMS}, got {systems}")
    extra = [s for s in systems if s not in SYSTEMS]
    g = p.add_argument_group("5G-NR baseline (--system nr; docs/nr.md)")
    g.add_argument("--system", choices=systems, default="infercom",
                   help="the InferCom link, or the NR baseline: JPEG + CRC + LDPC + CRC-triggered HARQ"
                        + (f", or {', '.join(extra)} (see its option group)" if extra else "")
                        + " (default %(default)s)")
    g.add_argument("--budget", choices=BUDGET_MODES, default=BUDGET_MODES[0],
                   help="NR JPEG budget: the InferCom link's channel uses at --rate/--planes, or JPEG bits = "
                        "original bits x rate (default %(default)s)")
    g.add_argument("--code-rate", default="1/3",
                   help=f"NR target code rate, fixed (one of {' '.join(str(r) for r in RATES)}; "
                        "default %(default)s)")
    g.add_argument("--harq", choices=HARQ_MODES[::-1], default="ir",
                   help="NR retransmissions: incremental redundancy (rv 0,2,3,1) or Chase (rv 0 again) "
                        "(default %(default)s)")
    return g


def nr_kwargs(args) -> dict | None:
    """``NrImageTx`` keyword arguments of the parsed options (None for ``--system infercom``)."""
    if args.system != "nr":
        return None
    return {"budget_mode": args.budget, "code_rate": args.code_rate, "harq": args.harq}
