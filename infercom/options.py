# SPDX-License-Identifier: GPL-3.0-or-later
"""The command-line options of the InferCom link's transmitter configuration, shared by ``infercom simulate``,
``loopback`` and ``tx``: ``--rate`` / ``--block``, ``--planes``, ``--profile``, ``--design-snr-db``.  One
definition of the names, choices, defaults and help, so the subcommands cannot drift apart.  The channel's
options are :func:`infercom.channel.add_channel_arguments`, the NR baseline's :mod:`infercom.nr.options`."""

from __future__ import annotations

import argparse
import math

from .imageio import parse_rate
from .limits import DESIGN_SNR_MAX_DB, DESIGN_SNR_MIN_DB, MAX_PLANES, PROFILES

__all__ = ["add_link_arguments", "block_size", "parse_snr_db", "DEFAULT_RATE", "SNR_RANGE_DB"]

#: the source rate when neither --rate nor --block is given
DEFAULT_RATE = "1/9"
#: Es/N0 values a command accepts (dB, inclusive); beyond them a simulation says nothing new
SNR_RANGE_DB = (-40.0, 60.0)


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


def parse_snr_db(tokens, allow_noiseless: bool = False) -> list[float]:
    """``--snr-db`` tokens (``--snr-db -4 0 4`` or ``--snr-db=-4,0,4``; each token may be comma-separated) ->
    Es/N0 values in dB within :data:`SNR_RANGE_DB`; ``inf`` (the noiseless channel) only where
    ``allow_noiseless``.  ValueError naming ``--snr-db`` for anything else, or for no value at all."""
    lo, hi = SNR_RANGE_DB
    out = []
    for tok in tokens:
        for part in str(tok).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                v = float(part)
            except ValueError:
                raise ValueError(f"--snr-db: cannot parse {part!r} (dB{', or inf' if allow_noiseless else ''})") \
                    from None
            if not (lo <= v <= hi or (allow_noiseless and v == math.inf)):
                raise ValueError(f"--snr-db: {part!r} is outside {lo:g}..{hi:g} dB"
                                 f"{' (or inf, noiseless)' if allow_noiseless else ''}")
            out.append(v)
    if not out:
        raise ValueError("--snr-db: no Es/N0 given")
    return out
