# SPDX-License-Identifier: GPL-3.0-or-later
"""The one command-line tool, ``infercom``, with one subcommand per job.

Each subcommand lives in its own module, in the layer whose job it is (the core ``infercom``, the OOT module
``gnuradio.infercom``, the server ``receiver_server``, or this apps layer), and defines
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when their subcommand runs, so
``infercom simulate`` works without GNU Radio or torch, and ``infercom server`` without GNU Radio. This
dispatcher names every layer, so it lives in the apps layer above them (``infercom_apps``; nothing imports
it). Run it as the ``infercom`` console script or ``python -m infercom_apps``.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import sys

#: subcommand -> (module path, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("infercom_apps.simulate", "link-level Monte-Carlo simulation of images over the uplink "
                 "(InferCom, the NR baseline, Deep-JSCC)"),
    "loopback": ("gnuradio.infercom.apps.loopback", "run the headless GNU Radio loopback transceiver"),
    "tx": ("gnuradio.infercom.apps.tx", "transmitter over UHD or ZeroMQ IQ"),
    "rx": ("gnuradio.infercom.apps.rx", "receiver over UHD or ZeroMQ IQ"),
    "server": ("receiver_server.cli", "inference server: soft symbols -> restored image -> QoE -> ACK/NACK"),
    "train-restorer": ("receiver_server.restorers.infercom_restorer.train", "train the InferCom restoration model"),
    "eval-restorer": ("receiver_server.restorers.infercom_restorer.evaluate", "evaluate restorers on an image folder"),
    "calibrate-qoe": ("receiver_server.qoe.calibrate", "calibrate the offline QoE metrics' ACK/NACK thresholds"),
    "train-deepjscc": ("deepjscc.train", "train the Deep-JSCC baseline (Bourtsoulatze et al. 2019) over AWGN"),
    # an apps-layer job (it drives the GNU Radio loopback and the server); its module moves here later
    "demo": ("infercom_apps.demo", "closed-loop demo: loopback + server + HTML report"),
    "bench": ("infercom_apps.bench", "throughput benchmarks against GNU Radio's C++ blocks"),
    "experiment": ("infercom_apps.experiments.cli", "the papers' experiments: qoe-vs-snr, required-snr, "
                   "retransmissions, tx-complexity, error-distribution, power-allocation (docs/results.md)"),
    "hw": ("infercom_apps.hw", "hw probe: find USRPs, check a hw_configs set-up on them, loopback calibration"),
}


class HelpFormatter(argparse.HelpFormatter):
    """``--help`` shows every option's default: appends ``(default: X)`` to an option's help (``(default: off)``
    for a flag), also to an option without help text, unless the help already says its default (contains
    "default") or the option is required. A default of ``None`` or ``[]`` is not shown (it means "see the
    text"): help texts of such options say in words what happens without them."""

    @staticmethod
    def _default_note(action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.required or not action.option_strings \
                or action.default in (None, argparse.SUPPRESS) or action.default == []:
            return ""
        if action.default is False and action.nargs == 0:            # a store_true flag
            return "(default: off)"
        return "(default: %(default)s)"

    def _get_help_string(self, action: argparse.Action) -> str:
        return f"{action.help or ''} {self._default_note(action)}".strip()

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and self._default_note(action):
            action = copy.copy(action)          # an option without help text: its default becomes its help
            action.help = self._default_note(action)
        return super()._format_action(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infercom", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # Arguments are added lazily (see main) so that listing commands imports nothing heavy.
    return parser


def quiet_gnuradio_logs() -> None:
    """GNU Radio's logger writes to *stdout* by default, at level debug: its ``set_min_output_buffer`` info
    lines would end up in ``--json`` output.  Unless the user set them, send GNU Radio's log to stderr at level
    warn (environment overrides of the ``[LOG]`` section of gnuradio-runtime.conf; read when GNU Radio's
    logging starts, so this must run before the first ``from gnuradio import gr``)."""
    os.environ.setdefault("GR_CONF_LOG_LOG_FILE", "stderr")
    os.environ.setdefault("GR_CONF_LOG_LOG_LEVEL", "warn")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_gnuradio_logs()
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    name = argv[0]
    if name not in COMMANDS:
        parser.error(f"unknown command {name!r}; choose from {', '.join(COMMANDS)}")
    module_path, help_text = COMMANDS[name]
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        print(f"infercom {name}: cannot load {module_path}: {exc}", file=sys.stderr)
        print("Run `make setup` first (it installs GNU Radio, the OOT module and the server's deps).",
              file=sys.stderr)
        return 2
    sub_parser = argparse.ArgumentParser(prog=f"infercom {name}", description=help_text,
                                         formatter_class=HelpFormatter)
    module.add_arguments(sub_parser)
    args = sub_parser.parse_args(argv[1:])
    args._argv = argv[1:]          # the exact command line, for the commands that record it
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
