# SPDX-License-Identifier: GPL-3.0-or-later
"""The command-line options of the InferCom link's transmitter configuration, shared by ``infercom simulate``,
``loopback`` and ``tx``: ``--rate`` / ``--block``, ``--planes``, ``--profile``, ``--design-snr-db``.  One
definition of the names, choices, defaults and help, so the subcommands cannot drift apart.  The channel's
options are :func:`infercom.channel.add_channel_arguments`, the NR baseline's :mod:`infercom.nr.options`."""

from __future__ import annotations

import argparse

from .imageio import parse_rate
from .limits import DESIGN_SNR_MAX_DB, DESIGN_SNR_MIN_DB, MAX_PLANES, PROFILES

__all__ = ["add_link_arguments", "block_size", "DEFAULT_RATE"]

#: the source rate when neither --rate nor --block is given
DEFAULT_RATE = "1/9"


def add_link_arguments(p: argparse.ArgumentParser, design_snr_default: str) -> None:
    """Add ``--rate`` / ``--block`` (mutually exclusive), ``--planes``, ``--profile`` and ``--design-snr-db``
    to ``p``.  ``design_snr_default`` says in words what an unset ``--design-snr-db`` (None) means for this
    subcommand (e.g. "each simulated SNR, rounded and clipped")."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--rate", help=f"source rate 1/(bh*bw), e.g. {DEFAULT_RATE} (default), 1/4, 1/6, 1")
    g.add_argument("--block", help="block size BHxBW, e.g. 3x3, instead of --rate (default: from --rate)")
    p.add_argument("--planes", type=int, default=MAX_PLANES,
                   help=f"top-m bit planes sent (1..{MAX_PLANES}, default {MAX_PLANES})")
    p.add_argument("--profile", choices=PROFILES, default=PROFILES[0],
                   help="per-plane power profile (default %(default)s)")
    p.add_argument("--design-snr-db", type=int, default=None,
                   help=f"design Es/N0 of the importance profile, integer dB in {DESIGN_SNR_MIN_DB}.."
                        f"{DESIGN_SNR_MAX_DB} (default: {design_snr_default})")


def block_size(args: argparse.Namespace) -> tuple[int, int]:
    """``(bh, bw)`` of parsed :func:`add_link_arguments` flags (``--block`` wins, else ``--rate``, else
    :data:`DEFAULT_RATE`); a bad value raises ``ValueError``."""
    return parse_rate(args.block if args.block else (args.rate or DEFAULT_RATE))
