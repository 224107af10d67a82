# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom server`` command line: a bad --bind (port in use, same port twice, unparsable) fails within a few
seconds with a message naming the option and address, before the restoration model loads; ``--status`` talks
CurveZMQ with the client's own fixed certificate (``--curve-server-key`` + ``--curve-key``), to a real server
and through a ZAP allow-list. (Its --help: tests/test_cli_help.py.)"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from infercom import protocol
from infercom_apps.cli import main as infercom_main
from receiver_server.config import ServerConfig
from receiver_server.restorers import get_restorer
from receiver_server.server import InferenceServer

REPO = Path(__file__).resolve().parents[1]


def _occupied_port(kind=zmq.ROUTER):
    s = zmq.Context.instance().socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    return s, s.bind_to_random_port("tcp://127.0.0.1")


def _server(argv, timeout=60):
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "infercom_apps.cli", "server", *argv], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)
    return proc, time.monotonic() - t0


def test_bad_bind_fails_fast_before_the_model_loads():
    # the default restorer (DEFAULT_RESTORER) takes seconds to load (13 s cold): the probe answers before the
    # server is even built -- no server log line at all (InferenceServer logs from its constructor on)
    held, port = _occupied_port()
    try:
        proc, dt = _server(["--bind", f"tcp://127.0.0.1:{port}"])
        assert proc.returncode == 1 and dt < 5.0, (dt, proc.stderr)
        assert f"--bind) to tcp://127.0.0.1:{port}" in proc.stderr and "in use" in proc.stderr
        assert '"event"' not in proc.stderr, proc.stderr
        proc, dt = _server(["--bind", f"tcp://127.0.0.1:{port - 1}"])        # feedback = port - 1 + 1: taken
        assert proc.returncode == 1 and dt < 5.0, (dt, proc.stderr)
        assert f"--feedback-bind) to tcp://127.0.0.1:{port}" in proc.stderr
    finally:
        held.close(0)
    proc, dt = _server(["--bind", f"tcp://127.0.0.1:{port}", "--feedback-bind", f"tcp://127.0.0.1:{port}"])
    assert proc.returncode == 1 and dt < 5.0 and "--feedback-bind" in proc.stderr, (dt, proc.stderr)
    for bad in ("tcp://127.0.0.1:http", "localhost:5555", "tcp://127.0.0.1:70000"):
        proc, dt = _server(["--bind", bad])
        assert proc.returncode == 2 and dt < 5.0, (bad, dt, proc.stderr)
        assert f"--bind {bad!r}" in proc.stderr and "tcp://HOST:PORT" in proc.stderr
    proc, _ = _server(["--curve-key", "x.key_secret"])       # client keys belong to --status
    assert proc.returncode == 2 and "--status" in proc.stderr


def test_bad_curve_secret_fails_fast_before_the_model_loads(tmp_path):
    import zmq.auth

    zmq.auth.create_certificates(tmp_path, "server")
    for bad, why in ((tmp_path / "missing.key_secret", "does not exist"), (tmp_path / "server.key", "no secret key")):
        proc, dt = _server(["--curve-secret", str(bad)])
        assert proc.returncode == 2 and dt < 5.0, (dt, proc.stderr)
        assert f"--curve-secret: {bad}" in proc.stderr and why in proc.stderr and '"event"' not in proc.stderr


@pytest.fixture()
def certs(tmp_path):
    import zmq.auth

    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("server", "ops", "other"):
        zmq.auth.create_certificates(keys, name)
    return keys


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")
def test_status_over_curve_from_the_command_line(certs, tmp_path, capsys):
    kw = dict(curve_secret_file=str(certs / "server.key_secret"))
    if "curve_allow_file" in {f.name for f in dataclasses.fields(ServerConfig)}:   # the allow-list server
        allow = tmp_path / "allow.yaml"
        allow.write_text(f"clients:\n  - key_file: {certs / 'ops.key'}\n    tx_ids: [0]\n    status: true\n")
        kw["curve_allow_file"] = str(allow)
    cfg = ServerConfig(bind="tcp://127.0.0.1:0", feedback_bind="tcp://127.0.0.1:0",
                       log_file=str(tmp_path / "server.log"), **kw)
    with InferenceServer(cfg, restorer=get_restorer("bicubic"), metrics={}) as srv:
        addr = srv.bound["soft_frames"]
        rc = infercom_main(["server", "--status", "--bind", addr, "--curve-server-key", str(certs / "server.key"),
                            "--curve-key", str(certs / "ops.key_secret")])
        out = capsys.readouterr()
        assert rc == 0, out.err
        st = json.loads(out.out)
        assert st["restorer"] == "bicubic" and st["protocol_version"] == protocol.VERSION
        rc = infercom_main(["server", "--status", "--bind", addr, "--status-timeout", "0.5"])   # no keys
        assert rc == 1 and "--curve-server-key" in capsys.readouterr().err
        rc = infercom_main(["server", "--status", "--bind", addr, "--curve-server-key", str(certs / "server.key")])
        assert rc == 2 and "needs both" in capsys.readouterr().err


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")
def test_status_presents_the_fixed_client_key(certs, tmp_path, capsys):
    """A CURVE REP behind a ZAP allow-list holding only ops's public key answers with the key it saw: the
    command line's --curve-key is the identity presented (not a random keypair); another key gets nothing."""
    import threading

    from infercom import zmqcurve
    from test_zmqcurve import _curve_router

    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "ops.key").write_bytes((certs / "ops.key").read_bytes())
    ctx = zmq.Context()
    try:
        rep, port, auth = _curve_router(ctx, certs, allowed, kind=zmq.REP)
    except BaseException:
        ctx.destroy(linger=0)
        raise

    def serve():
        if rep.poll(10000):
            msg = rep.recv(copy=False)
            assert isinstance(protocol.decode(msg.bytes), protocol.StatusRequest)
            rep.send(protocol.encode(protocol.StatusResponse(body={"who": msg.get("User-Id")})))

    t = threading.Thread(target=serve)
    t.start()
    addr = f"tcp://127.0.0.1:{port}"
    try:
        rc = infercom_main(["server", "--status", "--bind", addr, "--curve-server-key", str(certs / "server.key"),
                            "--curve-key", str(certs / "ops.key_secret")])
        out = capsys.readouterr()
        assert rc == 0, out.err
        assert json.loads(out.out) == {"who": zmqcurve.public_key_of(certs / "ops.key")}
        t.join()
        rc = infercom_main(["server", "--status", "--bind", addr, "--curve-server-key", str(certs / "server.key"),
                            "--curve-key", str(certs / "other.key_secret"), "--status-timeout", "0.8"])
        assert rc == 1 and "allow-list" in capsys.readouterr().err          # not on the list: no answer
    finally:
        t.join()
        auth.stop()
        ctx.destroy(linger=0)
