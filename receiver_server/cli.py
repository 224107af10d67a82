# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom server``: run the inference server (docs/server.md).

    infercom server --bind tcp://127.0.0.1:5555 [--feedback-bind ADDR] [--restorer NAME] [--qoe NAME[,NAME]]
                    [--device cpu|cuda] [--config FILE] [--records FILE] [--log-file FILE] [--status]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .config import DEFAULT_BIND, load_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bind", default=None, help=f"ROUTER address for soft frames and status (default {DEFAULT_BIND})")
    p.add_argument("--feedback-bind", default=None, help="PUB address for feedback (default: --bind port + 1)")
    p.add_argument("--restorer", default=None, help="restorer name (default bicubic; see receiver_server.restorers)")
    p.add_argument("--qoe", default=None,
                   help="comma-separated QoE metric names (default: the offline default set); 'none': no QoE "
                        "gating, every attempt is acknowledged")
    p.add_argument("--device", default=None, choices=("cpu", "cuda"), help="device for restorer and QoE")
    p.add_argument("--config", default=None, help="YAML/JSON file of server settings (docs/server.md)")
    p.add_argument("--threshold", action="append", default=[], metavar="METRIC=VALUE",
                   help="ACK threshold for a metric (repeatable; overrides the config and the defaults)")
    p.add_argument("--max-attempts", type=int, default=None, help="attempts per image before FAIL (1..16)")
    p.add_argument("--mode", default=None, choices=("auto", "chase", "selective", "refine"),
                   help="what a NACK asks for (default auto)")
    p.add_argument("--assembly-timeout", type=float, default=None,
                   help="seconds after an attempt's last frame before it is processed incomplete")
    p.add_argument("--records", default=None, help="append one JSON record per finished image to this file")
    p.add_argument("--artifacts-dir", default=None, help="save observation/restored/soft symbols per attempt")
    p.add_argument("--log-file", default=None, help="JSON-lines log file (default stderr)")
    p.add_argument("--log-level", default=None, choices=("debug", "info", "warning", "error"))
    p.add_argument("--allow-remote", action="store_true", default=None,
                   help="allow binding a non-loopback address (use --curve-secret too)")
    p.add_argument("--curve-secret", default=None,
                   help="zmq.auth secret certificate file: enable CurveZMQ on both sockets")
    p.add_argument("--status", action="store_true",
                   help="do not serve: ask the server at --bind for its status and print it as JSON")


def build_config(args: argparse.Namespace):
    qoe = None
    if args.qoe is not None:
        qoe = tuple(q.strip() for q in args.qoe.split(",") if q.strip())
    cfg = load_config(args.config, bind=args.bind, feedback_bind=args.feedback_bind, restorer=args.restorer,
                      device=args.device, records_file=args.records, artifacts_dir=args.artifacts_dir,
                      log_file=args.log_file, log_level=args.log_level, allow_remote=args.allow_remote,
                      curve_secret_file=args.curve_secret, assembly_timeout_s=args.assembly_timeout)
    pol = {}
    if args.threshold:
        th = dict(cfg.policy.thresholds)
        for item in args.threshold:
            name, sep, val = item.partition("=")
            if not sep:
                raise ValueError(f"--threshold wants METRIC=VALUE, got {item!r}")
            th[name.strip()] = float(val)
        pol["thresholds"] = th
    if args.max_attempts is not None:
        pol["max_attempts"] = args.max_attempts
    if args.mode is not None:
        pol["mode"] = args.mode
    if pol:
        import dataclasses
        cfg = cfg.replace(policy=dataclasses.replace(cfg.policy, **pol))
    return cfg, qoe


def run(args: argparse.Namespace) -> int:
    try:
        cfg, qoe = build_config(args)
    except ValueError as exc:
        print(f"infercom server: {exc}", file=sys.stderr)
        return 2
    if args.status:
        from .simlink import status_request
        try:
            print(json.dumps(status_request(cfg.bind), indent=2))
        except TimeoutError as exc:
            print(f"infercom server: {exc}", file=sys.stderr)
            return 1
        return 0
    from .server import InferenceServer
    if qoe:
        cfg = cfg.replace(qoe=qoe)
    try:
        srv = InferenceServer(cfg)
    except (ValueError, ImportError) as exc:
        print(f"infercom server: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _term(signum, frame):      # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    try:
        srv.start()
    except RuntimeError as exc:
        print(f"infercom server: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"event": "ready", **srv.bound}), flush=True)
    try:
        while not stop.wait(0.5):
            if srv._error is not None:
                print(f"infercom server: {srv._error!r}", file=sys.stderr)
                return 1
    finally:
        srv.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m receiver_server.cli", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
