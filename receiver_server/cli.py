# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom server``: run the inference server (docs/server.md).

    infercom server --bind tcp://127.0.0.1:5555 [--feedback-bind ADDR] [--restorer NAME] [--qoe NAME[,NAME]]
                    [--device cpu|cuda] [--config FILE] [--records FILE] [--log-file FILE]
                    [--curve-secret FILE --curve-allow FILE]
    infercom server --bind ADDR --status [--curve-server-key FILE --curve-key FILE]

Both addresses are bind-probed and the CurveZMQ secret certificate is read before the restoration model loads,
so a port in use or an address that cannot be bound (exit status 1) or a bad certificate (exit status 2) fails
in well under a second instead of after the model load.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .config import DEFAULT_BIND, PolicyConfig, ServerConfig, _parse_tcp, load_config
from .restorers import DEFAULT_RESTORER, available


def _default(cls, name: str):
    """The default of a config dataclass field (so --help never retypes it)."""
    import dataclasses

    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bind", default=None, help=f"ROUTER address for soft frames and status (default {DEFAULT_BIND})")
    p.add_argument("--feedback-bind", default=None, help="PUB address for feedback (default: --bind port + 1)")
    p.add_argument("--restorer", default=None,
                   help=f"restorer name, one of {', '.join(available())} (default {DEFAULT_RESTORER}; "
                        "see docs/restorers.md)")
    p.add_argument("--qoe", default=None,
                   help="comma-separated QoE metric names (default: the offline default set); 'none': no QoE "
                        "gating, every attempt is acknowledged")
    p.add_argument("--device", default=None, choices=("cpu", "cuda"),
                   help=f"device for restorer and QoE (default {_default(ServerConfig, 'device')})")
    p.add_argument("--config", default=None,
                   help="YAML/JSON file of server settings (docs/server.md); command-line options override it "
                        "(default: none, built-in defaults)")
    p.add_argument("--threshold", action="append", default=[], metavar="METRIC=VALUE",
                   help="ACK threshold for a metric (repeatable; overrides the config and the defaults)")
    p.add_argument("--max-attempts", type=int, default=None,
                   help=f"attempts per image before FAIL (1..16; default {_default(PolicyConfig, 'max_attempts')})")
    p.add_argument("--mode", default=None, choices=("auto", "chase", "selective", "refine"),
                   help=f"what a NACK asks for (default {_default(PolicyConfig, 'mode')})")
    p.add_argument("--no-early-nack", action="store_true",
                   help="restore every attempt, also those the observation-only metrics (reliability) already "
                        "fail (default: NACK those at once, before restoring; policy.early_nack)")
    p.add_argument("--workers", type=int, default=None, help="inference threads (default 1)")
    p.add_argument("--batch-max", type=int, default=None,
                   help="restore up to this many attempts that are waiting at once in one batched forward pass "
                        "(needs --workers >= it and a restorer with restore_batch; default 1: no batching)")
    p.add_argument("--batch-wait-ms", type=float, default=None,
                   help="longest an attempt waits for others to batch with (default 10)")
    p.add_argument("--assembly-timeout", type=float, default=None,
                   help="seconds after an attempt's last frame before it is processed incomplete "
                        f"(default {_default(ServerConfig, 'assembly_timeout_s')})")
    p.add_argument("--records", default=None,
                   help="append one JSON record per finished image to this file (default: none)")
    p.add_argument("--artifacts-dir", default=None,
                   help="save observation/restored/soft symbols per attempt (default: none saved)")
    p.add_argument("--log-file", default=None, help="JSON-lines log file (default stderr)")
    p.add_argument("--log-level", default=None, choices=("debug", "info", "warning", "error"),
                   help=f"log level (default {_default(ServerConfig, 'log_level')})")
    p.add_argument("--allow-remote", action="store_true", default=None,
                   help="allow binding a non-loopback address (use --curve-secret too; default: loopback only)")
    p.add_argument("--curve-secret", default=None, metavar="FILE",
                   help="the server's own zmq.auth secret certificate (server.key_secret): enable CurveZMQ on "
                        "both sockets (default: none, plain ZeroMQ)")
    p.add_argument("--curve-allow", default=None, metavar="FILE",
                   help="with --curve-secret: YAML allow-list of client public keys and the tx ids each may use "
                        "(docs/server.md, Security) (default: none)")
    p.add_argument("--status", action="store_true",
                   help="do not serve: ask the server at --bind for its status and print it as JSON "
                        "(default: serve)")
    p.add_argument("--curve-server-key", default=None, metavar="FILE",
                   help="with --status, for a CurveZMQ server: its public certificate (server.key) "
                        "(default: none, plain ZeroMQ)")
    p.add_argument("--curve-key", default=None, metavar="FILE",
                   help="with --status, for a CurveZMQ server: this client's secret certificate "
                        "(NAME.key_secret, allowed status requests on the server's --curve-allow list) "
                        "(default: none)")
    p.add_argument("--status-timeout", type=float, default=5.0,
                   help="with --status: seconds to wait for the answer (default %(default)s)")


def build_config(args: argparse.Namespace):
    qoe = None
    if args.qoe is not None:
        qoe = tuple(q.strip() for q in args.qoe.split(",") if q.strip())
    if not args.status and (args.curve_server_key or args.curve_key):
        raise ValueError("--curve-server-key/--curve-key are client keys for --status; the server's own "
                         "certificate is --curve-secret (and its clients' keys go in --curve-allow)")
    for opt, addr in (("--bind", args.bind), ("--feedback-bind", args.feedback_bind)):
        if addr is not None:
            try:
                _parse_tcp(addr)
            except ValueError as exc:
                tail = "" if "tcp://HOST:PORT" in str(exc) else " (expected tcp://HOST:PORT)"
                raise ValueError(f"{opt} {addr!r}: {exc}{tail}") from None
    # --status is a client: asking a remote server is fine (the loopback rule is about exposing a server)
    allow_remote = True if args.status else args.allow_remote
    cfg = load_config(args.config, bind=args.bind, feedback_bind=args.feedback_bind, restorer=args.restorer,
                      device=args.device, records_file=args.records, artifacts_dir=args.artifacts_dir,
                      log_file=args.log_file, log_level=args.log_level, allow_remote=allow_remote,
                      curve_secret_file=args.curve_secret, curve_allow_file=args.curve_allow,
                      assembly_timeout_s=args.assembly_timeout, workers=args.workers,
                      batch_max=args.batch_max, batch_wait_ms=args.batch_wait_ms)
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
    if getattr(args, "no_early_nack", False):
        pol["early_nack"] = False
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
        from infercom import zmqcurve

        from .simlink import status_request
        try:
            keys = zmqcurve.optional_client_keys(args.curve_server_key, args.curve_key)
            curve = {} if keys is None else {"curve_server_key": keys.server_public,
                                             "curve_client_keys": (keys.public, keys.secret)}
            print(json.dumps(status_request(cfg.bind, args.status_timeout, **curve), indent=2))
        except ValueError as exc:
            print(f"infercom server: {exc}", file=sys.stderr)
            return 2
        except TimeoutError as exc:
            hint = ("is it running? with CurveZMQ: are --curve-server-key and --curve-key right, and is this key "
                    "on the server's allow-list with status: true?" if keys is not None else
                    "is it running? a CurveZMQ server needs --curve-server-key and --curve-key")
            print(f"infercom server: {exc} ({hint})", file=sys.stderr)
            return 1
        return 0
    try:
        preflight(cfg)
    except ValueError as exc:
        print(f"infercom server: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"infercom server: {exc}", file=sys.stderr)
        return 1
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


def preflight(cfg) -> None:
    """What can fail in the server's sockets, checked in milliseconds before the restoration model loads
    (seconds): the CurveZMQ secret certificate (``infercom.zmqcurve.load_keypair``; ``ValueError`` naming the
    file) and both addresses (:func:`probe_bind`; ``RuntimeError``)."""
    if cfg.curve_secret_file:
        from infercom import zmqcurve

        try:
            zmqcurve.load_keypair(cfg.curve_secret_file)
        except ValueError as exc:
            raise ValueError(f"--curve-secret: {exc}") from None
    probe_bind(cfg)


def probe_bind(cfg) -> None:
    """Bind, then release, the soft-frame ROUTER and feedback PUB addresses of ``cfg`` on a private ZeroMQ
    context, so that a port in use or an address that cannot be bound is reported within milliseconds, before
    the restoration model loads (seconds). ``RuntimeError`` naming the option and address; ``ValueError`` when
    the feedback address cannot be derived."""
    import zmq

    targets = (("soft-frame ROUTER (--bind)", cfg.bind, zmq.ROUTER),
               ("feedback PUB (--feedback-bind)", cfg.feedback_address, zmq.PUB))
    ctx = zmq.Context()
    socks = []
    try:
        for what, addr, kind in targets:
            s = ctx.socket(kind)
            s.setsockopt(zmq.LINGER, 0)
            socks.append(s)
            try:
                s.bind(addr)
            except zmq.ZMQError as exc:
                hint = (" (another server, or another program, holds it: stop it or choose another port)"
                        if exc.errno == zmq.EADDRINUSE else "")
                raise RuntimeError(f"cannot bind the {what} to {addr}: {zmq.strerror(exc.errno)}{hint}") from None
    finally:
        for s in socks:
            s.close(linger=0)
        ctx.term()         # returns once the listeners are closed: the server can bind them right after


def main(argv: list[str] | None = None) -> int:
    """``python -m receiver_server.cli`` = ``infercom server`` (whose ``--help`` also shows every default: the
    dispatcher's formatter lives in the apps layer, which this layer does not import)."""
    p = argparse.ArgumentParser(prog="python -m receiver_server.cli", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
