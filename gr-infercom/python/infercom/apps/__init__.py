# SPDX-License-Identifier: GPL-3.0-or-later
"""Command-line apps of gr-infercom (``infercom loopback|tx|rx``), each with ``add_arguments`` and ``run``.

Shared here: the link/radio arguments and the small glue both TX and RX flowgraphs need.
"""

from __future__ import annotations

import argparse


def add_link_arguments(p: argparse.ArgumentParser) -> None:
    """Transmitter link configuration (the header carries it; the receiver needs none of it)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--rate", help="source rate 1/(bh*bw), e.g. 1/9 (default), 1/4")
    g.add_argument("--block", help="block size BHxBW, e.g. 3x3")
    p.add_argument("--planes", type=int, default=8, help="top-m bit planes sent (1..8, default 8)")
    p.add_argument("--profile", choices=("importance", "equal"), default="importance")
    p.add_argument("--design-snr-db", type=int, default=None,
                   help="design Es/N0 of the importance profile, integer dB (default: the channel's SNR "
                        "rounded, or -4)")
    p.add_argument("--frame-len-log2", type=int, default=15,
                   help="payload symbols per frame = 2**N (4..16, default 15)")
    p.add_argument("--tx-id", type=int, default=0, help="transmitter id 0..255")
    p.add_argument("--max-images", type=int, default=0, help="send at most N images (0 = all)")


def block_size(args) -> tuple[int, int]:
    from infercom.imageio import parse_rate

    return parse_rate(args.block if args.block else (args.rate or "1/9"))
