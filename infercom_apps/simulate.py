# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom simulate``: the core's link-level simulator (:mod:`infercom.simulate`: ``--system infercom|nr``)
plus the systems of layers above the core, dispatched here: ``--system deepjscc`` runs the Deep-JSCC baseline
(:mod:`deepjscc.simulate`, torch) through the same channel, seeds and output format (docs/deepjscc.md).

The core cannot import the Deep-JSCC package (no torch in ``infercom/``), so this apps-layer command reuses
:func:`infercom.simulate.add_arguments` with ``deepjscc`` added to ``--system`` and a Deep-JSCC option group,
and imports :mod:`deepjscc.simulate` only when ``--system deepjscc`` runs (``--help`` and the other systems
import no torch).
"""

from __future__ import annotations

import argparse
import sys

from infercom import simulate as core
from deepjscc.presets import TRIGGERS, preset_arg  # no torch
from infercom.nr.options import SYSTEMS as CORE_SYSTEMS

#: ``--system`` choices of ``infercom simulate``
SYSTEMS: tuple[str, ...] = (*CORE_SYSTEMS, "deepjscc")


def add_arguments(p: argparse.ArgumentParser) -> None:
    core.add_arguments(p, systems=SYSTEMS)
    g = p.add_argument_group("Deep-JSCC baseline (--system deepjscc; docs/deepjscc.md)")
    g.add_argument("--preset", type=preset_arg, default=None, metavar="PRESET",
                   help="latent size: channel-uses = InferCom's payload symbols at rate 1/9, 8 planes; paper = "
                        "k/n = 1/12; ratio-R = k/n = R (e.g. ratio-0.25; needs its own trained --checkpoint) "
                        "(default: the checkpoint's; channel-uses without --checkpoint)")
    g.add_argument("--checkpoint", default=None,
                   help="Deep-JSCC checkpoint (.pt) (default: the one shipped in deepjscc/checkpoints/ for "
                        "--preset, chosen by --train-snr-db when several ship)")
    g.add_argument("--train-snr-db", type=float, default=None,
                   help="pick the shipped checkpoint trained at this Es/N0 in dB (default: the only one shipped)")
    g.add_argument("--trigger", choices=TRIGGERS, default="qoe",
                   help="retransmission trigger: qoe = the server's QoE gate (NIQE at the default restorer's "
                        "threshold), psnr = oracle PSNR against the original >= --psnr-threshold "
                        "(default %(default)s)")
    g.add_argument("--psnr-threshold", type=float, default=None, metavar="DB",
                   help="PSNR in dB an image must reach with --trigger psnr (default: none; required with "
                        "--trigger psnr)")
    g.add_argument("--niqe-threshold", type=float, default=None,
                   help="NIQE threshold of --trigger qoe instead of the server's calibrated one (default: "
                        "receiver_server/qoe/thresholds.json for the server's default restorer)")
    g.add_argument("--device", default="cpu", help="torch device of the codec (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    if args.system != "deepjscc":
        return core.run(args)
    if args.trigger == "psnr" and args.psnr_threshold is None:
        print("infercom simulate: --trigger psnr needs --psnr-threshold DB", file=sys.stderr)
        return 2
    try:
        from deepjscc import simulate as deepjscc_simulate  # noqa: PLC0415 - torch
    except ImportError as exc:
        print(f"infercom simulate: --system deepjscc needs torch and the deepjscc package: {exc}",
              file=sys.stderr)
        return 2
    return deepjscc_simulate.run(args)
