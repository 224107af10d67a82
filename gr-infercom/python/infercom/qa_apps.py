# SPDX-License-Identifier: GPL-3.0-or-later
"""qa for the tx/rx apps: a transmitter and a receiver flowgraph talking ZeroMQ IQ (as two radios would)
deliver every frame, and with a CurveZMQ inference server whose feedback PUB is not on the default port
(--feedback) the image is acknowledged and the receiver releases its frames; --help shows every default; rx
prints its summary on SIGTERM; the hardware configs in hw_configs/ load (by name from any working directory)
and bad ones are rejected."""

import argparse
import contextlib
import time

import numpy as np
import pytest
import zmq

from gnuradio.infercom.apps import rx as rx_app
from gnuradio.infercom.apps import tx as tx_app
from gnuradio.infercom.hwconfig import load_hw_config
from infercom.netports import free_tcp_port


def _args(mod, argv):
    p = argparse.ArgumentParser()
    mod.add_arguments(p)
    return p.parse_args(argv)


def test_tx_and_rx_over_zeromq_iq(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    rx = rx_app.RxFlowgraph(_args(rx_app, ["--iq-addr", addr, "--max-frame-len-log2", "10", "--snr-db", "4",
                                           "--cfo-frac", "0.005"]))
    tx = tx_app.TxFlowgraph(_args(tx_app, ["--images", str(tmp_path), "--iq-addr", addr, "--frame-len-log2", "10",
                                           "--samp-rate", "4e6", "--attempts", "2"]))
    rx.start()
    time.sleep(0.3)   # let the PULL side connect: a PUSH without a peer drops samples, as a radio would
    tx.start()
    try:
        assert tx.tx.finished.wait(30)
        n_sent = tx.tx.counters["frames"]
        t0 = time.monotonic()
        while len(rx.log.frames) < n_sent and time.monotonic() - t0 < 30:
            time.sleep(0.05)
    finally:
        tx.stop()
        tx.wait()
        rx.stop()
        rx.wait()
    got = sorted((f["attempt"], f["frame_idx"]) for f in rx.log.frames)
    assert n_sent >= 4 and len(got) == n_sent and len(set(got)) == n_sent, (n_sent, got)
    assert all(abs(f["snr_db"] - 4.0) < 1.0 for f in rx.log.frames)   # the noise added at the receiver
    assert rx.chase.counters["combined"] == n_sent


def test_rx_soft_out_writes_the_chase_combined_symbols(tmp_path):
    """``infercom rx --soft-out FILE``: the receiver's Chase-combined soft symbols, frame after frame, as the
    grc/rx_*.grc flowgraphs' soft_out; they are the image's payload symbols plus noise."""
    from PIL import Image

    from infercom.link import LinkConfig, encode_image

    img = np.random.default_rng(4).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    addr = f"tcp://127.0.0.1:{free_tcp_port()}"
    soft = tmp_path / "soft.c64"
    rx = rx_app.RxFlowgraph(_args(rx_app, ["--iq-addr", addr, "--max-frame-len-log2", "10", "--snr-db", "10",
                                           "--soft-out", str(soft)]))
    tx = tx_app.TxFlowgraph(_args(tx_app, ["--images", str(tmp_path), "--iq-addr", addr, "--frame-len-log2", "10",
                                           "--samp-rate", "4e6", "--design-snr-db", "10"]))
    x, _ = encode_image(img, LinkConfig(3, 3, 8, "importance", 10))
    rx.start()
    time.sleep(0.3)
    tx.start()
    try:
        assert tx.tx.finished.wait(30)
        t0 = time.monotonic()
        while rx.chase.counters["combined"] < tx.tx.counters["frames"] and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        time.sleep(0.3)                       # the file sink writes the last frame
    finally:
        tx.stop()
        tx.wait()
        rx.stop()
        rx.wait()
    y = np.fromfile(soft, np.complex64)
    assert y.size == x.size, (y.size, x.size)
    agree = np.mean((np.sign(y.real) == np.sign(x.real)) & (np.sign(y.imag) == np.sign(x.imag)))
    assert agree > 0.95, agree


def test_hw_configs_load_and_bad_ones_are_rejected(tmp_path):
    for name in ("b210", "x310", "n210"):
        cfg = load_hw_config(name)
        assert cfg["sample_rate"] > 0 and cfg["sps"] >= 1 and cfg["device_args"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("device_args: x\nsample_rate: -1\n")
    with pytest.raises(ValueError, match="missing field"):
        load_hw_config(str(bad))
    good = dict(device_args="type=b200", sample_rate=1e6, sps=2, center_freq=1e9, tx_gain=1, rx_gain=1,
                tx_antenna="A", rx_antenna="B", clock_source="internal", time_source="internal")
    import yaml

    bad.write_text(yaml.safe_dump({**good, "sample_rate": 0}))
    with pytest.raises(ValueError, match="sample_rate"):
        load_hw_config(str(bad))
    bad.write_text(yaml.safe_dump({**good, "clock_source": "sun"}))
    with pytest.raises(ValueError, match="clock_source"):
        load_hw_config(str(bad))
    bad.write_text(yaml.safe_dump({**good, "gain": 3}))
    with pytest.raises(ValueError, match="unknown"):
        load_hw_config(str(bad))
    with pytest.raises(ValueError, match="not found"):
        load_hw_config("no_such_radio")


def test_cli_json_output_is_pure_json(tmp_path):
    """``infercom loopback --json`` prints only JSON lines on stdout: GNU Radio's own log (stdout by default)
    is sent to stderr by the CLI, so the output pipes into ``jq`` or a script."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from PIL import Image

    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (48, 96, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    src = Path(__file__).resolve().parents[1]          # the source tree's gnuradio.infercom, as in the other qa
    code = ("import sys, gnuradio; gnuradio.__path__.insert(0, sys.argv[1]); from infercom_apps.cli import main; "
            "sys.exit(main(sys.argv[2:]))")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("GR_CONF_LOG")}
    proc = subprocess.run([sys.executable, "-c", code, str(src), "loopback", "--images", str(tmp_path),
                           "--snr-db", "6", "--frame-len-log2", "10", "--json"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    records = [json.loads(line) for line in lines]      # fails on any non-JSON line
    assert records and "summary" in records[-1] and records[-1]["summary"]["frames_received"] > 0


def test_configure_usrp_applies_the_direction_s_settings():
    from gnuradio.infercom.hwconfig import configure_usrp

    class FakeUsrp:
        def __init__(self):
            self.calls = []

        def __getattr__(self, name):
            return lambda *a: self.calls.append((name, *a))

    hw = load_hw_config("x310")
    for direction in ("rx", "tx"):
        dev = FakeUsrp()
        configure_usrp(dev, hw, direction, all_mboards="ALL")
        calls = {c[0]: c[1:] for c in dev.calls}
        assert calls["set_gain"] == (hw[f"{direction}_gain"], 0)
        assert calls["set_antenna"] == (hw[f"{direction}_antenna"], 0)
        assert calls["set_samp_rate"] == (hw["sample_rate"],) and calls["set_center_freq"] == (hw["center_freq"], 0)
        assert calls["set_clock_source"] == (hw["clock_source"], 0)
        assert ("set_clock_rate" in calls) == bool(hw.get("master_clock_rate"))
        assert ("set_bandwidth" in calls) == bool(hw.get("bandwidth"))
        rx = direction == "rx"        # the radio's DC / IQ correction: RX only, on by default
        assert calls.get("set_auto_dc_offset") == ((True, 0) if rx else None)
        assert calls.get("set_auto_iq_balance") == ((True, 0) if rx else None)
    dev = FakeUsrp()
    configure_usrp(dev, {**hw, "rx_dc_offset_auto": False}, "rx", all_mboards="ALL")
    assert dict((c[0], c[1:]) for c in dev.calls)["set_auto_dc_offset"] == (False, 0)
    with pytest.raises(ValueError):
        configure_usrp(FakeUsrp(), hw, "both")


REPO = __import__("pathlib").Path(__file__).resolve().parents[3]


def _help_blocks(text: str) -> dict[str, str]:
    """``--help`` output -> {first option string: its help text (joined lines)}."""
    import re

    out = {}
    for block in re.split(r"\n(?=  -)", text.split("options:", 1)[1]):
        block = block.strip()
        if block.startswith("-"):
            out[block.split()[0].rstrip(",")] = " ".join(block.split())
    return out


@pytest.mark.parametrize("app", ["rx", "tx", "loopback"])
def test_help_shows_every_default(app, capsys):
    from gnuradio.infercom.apps import loopback as loopback_app
    from infercom_apps.cli import main

    with pytest.raises(SystemExit) as ex:
        main([app, "--help"])
    assert ex.value.code == 0
    blocks = _help_blocks(capsys.readouterr().out)
    p = argparse.ArgumentParser()
    {"rx": rx_app, "tx": tx_app, "loopback": loopback_app}[app].add_arguments(p)
    assert len(blocks) == len([a for a in p._actions if a.option_strings])       # every option parsed
    required = {a.option_strings[0] for a in p._actions if a.required}          # e.g. tx --images
    missing = [o for o, b in blocks.items() if o != "-h" and o not in required and "default" not in b]
    assert not missing, f"infercom {app}: options whose --help shows no default: {missing}"
    if app != "loopback":
        assert {"--curve-server-key", "--curve-key", "--feedback", "--hw"} <= set(blocks)
        assert "(default: b210)" in blocks["--hw"] and "tcp://127.0.0.1:5600" in blocks["--iq-addr"]
    if app == "rx":
        assert "port + 1" in blocks["--feedback"]


def test_rx_prints_its_summary_on_sigterm():
    import json
    import os
    import selectors
    import signal
    import subprocess
    import sys

    port = free_tcp_port()
    src = REPO / "gr-infercom" / "python"          # the source tree's gnuradio.infercom, as in the other qa
    code = ("import sys, gnuradio; gnuradio.__path__.insert(0, sys.argv[1]); from infercom_apps.cli import main; "
            "sys.exit(main(sys.argv[2:]))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(src), "rx", "--iq-addr", f"tcp://127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stderr, selectors.EVENT_READ)
        err, t0 = "", time.monotonic()
        while "infercom rx: running" not in err and time.monotonic() - t0 < 60 and proc.poll() is None:
            if sel.select(0.5):
                err += proc.stderr.readline()
        assert "infercom rx: running" in err, err
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err + rest
    summary = json.loads(out.strip().splitlines()[-1])["summary"]
    assert summary["stopped_by"] == "SIGTERM" and summary["samples"] == 0 and "chase_held_frames" in summary


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")
def test_rx_and_tx_with_a_curve_server_on_a_non_default_feedback_address(tmp_path):
    """The three-process set-up of docs/zmq_setup.md, in one process: server (bicubic, no QoE: every attempt
    is acknowledged) with CurveZMQ and --feedback-bind on another port; rx --feedback; tx --feedback."""
    import dataclasses

    import zmq.auth
    from PIL import Image

    from receiver_server.config import ServerConfig
    from receiver_server.restorers import get_restorer
    from receiver_server.server import InferenceServer

    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("server", "rx", "tx"):
        zmq.auth.create_certificates(keys, name)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(imgs / "a.png")
    port = free_tcp_port()
    fb_port = free_tcp_port(avoid=(port, port + 1))          # not the default (port + 1)
    iq = f"tcp://127.0.0.1:{free_tcp_port(avoid=(port, fb_port))}"
    kw = dict(curve_secret_file=str(keys / "server.key_secret"))
    if "curve_allow_file" in {f.name for f in dataclasses.fields(ServerConfig)}:
        allow = tmp_path / "allow.yaml"
        allow.write_text(f"clients:\n  - key_file: {keys / 'rx.key'}\n    tx_ids: [5]\n"
                         f"  - key_file: {keys / 'tx.key'}\n    tx_ids: [5]\n")
        kw["curve_allow_file"] = str(allow)
    cfg = ServerConfig(bind=f"tcp://127.0.0.1:{port}", feedback_bind=f"tcp://127.0.0.1:{fb_port}",
                       log_file=str(tmp_path / "server.log"), assembly_timeout_s=0.3, **kw)
    curve = ["--curve-server-key", str(keys / "server.key")]
    with InferenceServer(cfg, restorer=get_restorer("bicubic"), metrics={}) as srv:
        rx = rx_app.RxFlowgraph(_args(rx_app, ["--iq-addr", iq, "--max-frame-len-log2", "10", "--snr-db", "8",
                                               "--server", f"tcp://127.0.0.1:{port}",
                                               "--feedback", f"tcp://127.0.0.1:{fb_port}",
                                               *curve, "--curve-key", str(keys / "rx.key_secret")]))
        tx = tx_app.TxFlowgraph(_args(tx_app, ["--images", str(imgs), "--iq-addr", iq, "--frame-len-log2", "10",
                                               "--samp-rate", "4e6", "--tx-id", "5", "--timeout-s", "8",
                                               "--feedback", f"tcp://127.0.0.1:{fb_port}",
                                               *curve, "--curve-key", str(keys / "tx.key_secret")]))
        assert rx.link.feedback_addr == f"tcp://127.0.0.1:{fb_port}" and rx.link.curve is not None
        rx.start()
        tx.start()
        time.sleep(0.3)
        try:
            assert tx.tx.finished.wait(45), tx.tx.counters
            t0 = time.monotonic()
            while rx.chase.held_frames() and time.monotonic() - t0 < 10:
                time.sleep(0.05)
        finally:
            tx.stop()
            tx.wait()
            rx.stop()
            rx.wait()
        status = srv.status()
    assert [r["outcome"] for r in tx.tx.records] == ["ACK"], tx.tx.records
    assert rx.link.counters["sent"] >= 1 and rx.link.counters["feedback"] >= 1, dict(rx.link.counters)
    assert rx.chase.held_frames() == 0                       # the ACK released the receiver's frames
    assert status["images_served"] == 1 and status["decisions"].get("ACK") == 1


def test_bad_app_link_options_are_rejected(tmp_path):
    import zmq.auth

    zmq.auth.create_certificates(tmp_path, "c")
    with pytest.raises(ValueError, match="need --server"):
        rx_app.RxFlowgraph(_args(rx_app, ["--feedback", "tcp://127.0.0.1:7000"]))
    with pytest.raises(ValueError, match="need --feedback"):
        tx_app.TxFlowgraph(_args(tx_app, ["--images", str(tmp_path), "--curve-key", str(tmp_path / "c.key_secret")]))
    with pytest.raises(ValueError, match="needs both"):
        rx_app.RxFlowgraph(_args(rx_app, ["--server", "tcp://127.0.0.1:7000",
                                          "--curve-key", str(tmp_path / "c.key_secret")]))


def test_hw_config_names_resolve_from_any_working_directory(tmp_path, monkeypatch):
    import yaml

    monkeypatch.delenv("INFERCOM_HW_CONFIGS", raising=False)
    monkeypatch.chdir(tmp_path)                              # no hw_configs/ here or above
    shipped = REPO / "hw_configs" / "b210.yaml"
    assert load_hw_config("b210")["path"] == str(shipped)
    assert load_hw_config("hw_configs/x310.yaml")["path"] == str(REPO / "hw_configs" / "x310.yaml")
    with pytest.raises(ValueError, match="not found"):
        load_hw_config(str(tmp_path / "hw_configs" / "b210.yaml"))     # an absolute path is taken as given
    local = yaml.safe_load(shipped.read_text())
    local["device_args"] = "type=b200,serial=LOCAL"
    (tmp_path / "hw_configs").mkdir()
    (tmp_path / "hw_configs" / "b210.yaml").write_text(yaml.safe_dump(local))
    sub = tmp_path / "work" / "deeper"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)                                   # a set-up of one's own, in a parent folder, wins
    assert load_hw_config("b210")["device_args"] == "type=b200,serial=LOCAL"
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "b210.yaml").write_text(yaml.safe_dump({**local, "device_args": "type=b200,serial=ENV"}))
    monkeypatch.setenv("INFERCOM_HW_CONFIGS", str(env_dir))
    assert load_hw_config("b210")["device_args"] == "type=b200,serial=ENV"


def _burst_iq(seed: int, sps: int = 2, impaired: bool = False) -> np.ndarray:
    """One image's frames (48x64, frame_len_log2 10) as RRC-shaped bursts with zero gaps and seeded noise at
    Es/N0 12 dB: a deterministic IQ stream, complex64. ``impaired``: through every radio impairment of the
    loopback first (4 ppm tied CFO/SFO at 2.4 GHz and 2 MS/s, 6.3 Hz phase noise, 0.5 dB / 3 degree IQ
    imbalance, DC -30 dB)."""
    from infercom import channel as ch
    from infercom.channel import pulse_shape, rrc_taps
    from infercom.frame import FrameFormat, image_frames
    from infercom.link import LinkConfig

    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    fmt = FrameFormat(frame_len_log2=10, sps=sps)
    taps = rrc_taps(sps)
    parts = [np.zeros(3000, np.complex64)]
    for _, sym in image_frames(img, LinkConfig(3, 3, 8, "importance", 10), 1, 2, fmt=fmt):
        parts += [pulse_shape(sym, sps, taps), np.zeros(int(rng.integers(2000, 4000)), np.complex64)]
    parts.append(np.zeros(40000, np.complex64))
    x = np.concatenate(parts)
    if impaired:
        cfo, ratio = ch.oscillator_offsets(4.0, 2.4e9, 2e6)
        x = ch.resample(ch.apply_phase_noise(ch.apply_cfo(x, cfo), 6.3, 2e6, rng), ratio, 0.3)
    x = x + (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size)) * np.sqrt(10 ** -1.2 / 2)
    if impaired:
        x = ch.dc_offset(ch.iq_imbalance(x, 0.5, 3.0), -30.0, signal_power=1.0 / sps)
    return x.astype(np.complex64)


def _replay(argv, wall_s: float = 60.0):
    fg = rx_app.RxFlowgraph(_args(rx_app, argv))
    fg.start()
    t0 = time.monotonic()
    try:
        while not fg.replay_drained() and time.monotonic() - t0 < wall_s:
            time.sleep(0.05)
    finally:
        fg.stop()
        fg.wait()
    assert fg.replay_drained(settle_s=0.0), "the replay did not drain"
    return fg


@contextlib.contextmanager
def _iq_push():
    """``(push, addr)``: a PUSH socket bound to a free loopback port (chosen by the bind itself: no port probe
    that can race) on a context of its own (no other test's sockets or authenticator), as ``infercom tx --radio
    zmq`` listens; destroyed on the way out, whatever happened (a context left open with a socket in it blocks
    the interpreter's garbage collection at exit, in ``zmq_ctx_term``)."""
    ctx = zmq.Context()
    try:
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.setsockopt(zmq.SNDTIMEO, 20_000)     # a send that cannot go through fails the test, not blocks it
        port = push.bind_to_random_port("tcp://127.0.0.1")
        yield push, f"tcp://127.0.0.1:{port}"
    finally:
        ctx.destroy(linger=0)


def _live_run(x: np.ndarray, push: zmq.Socket, argv: list) -> "rx_app.RxFlowgraph":
    """A live ``infercom rx`` over ZeroMQ IQ (``argv``, with ``--iq-addr`` the address of ``push`` from
    ``_iq_push`` and ``--record``): ``x`` pushed as ``infercom tx --radio zmq`` does, run until every sample was
    received and recorded and every frame went through the Chase combiner; the stopped flowgraph (its
    recording's metadata not yet written)."""
    fg = rx_app.RxFlowgraph(_args(rx_app, argv))
    fg.start()
    try:
        time.sleep(0.3)
        for i in range(0, x.size, 8192):
            try:
                push.send(x[i:i + 8192].tobytes())
            except zmq.Again:
                pytest.fail(f"the receiver took no IQ for 20 s after {i} samples: {fg.counters()}")
        t0 = time.monotonic()
        while fg.rx.samples() < x.size - 65536 and time.monotonic() - t0 < 60:
            time.sleep(0.05)
        while not (fg.sync.idle() and fg.log.n_frames >= fg.demod.counters["frames"]
                   and fg.chase.counters["combined"] >= fg.log.n_frames
                   and fg.rec_sink.nitems_read(0) >= x.size) and time.monotonic() - t0 < 60:
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        fg.stop()
        fg.wait()
    return fg


def test_rx_record_then_replay_gives_the_same_frames_bit_exact(tmp_path):
    """``infercom rx --record``: a live ZeroMQ IQ run writes a SigMF recording the ``sigmf`` validator accepts,
    one annotation per frame; ``--replay`` of it gives the same frames, headers, SNR/CFO and Chase-combined soft
    symbols, bit for bit; a ci16_le copy decodes the same headers; bad recordings are clear errors."""
    import json

    sigmf = pytest.importorskip("sigmf")
    from infercom.sigmf_io import build_meta, to_ci16, write_meta

    x = _burst_iq(7)
    rec_meta = tmp_path / "cap.sigmf-meta"
    with _iq_push() as (push, addr):
        live = _live_run(x, push, ["--iq-addr", addr, "--max-frame-len-log2", "10", "--samp-rate", "2e6",
                                   "--record", str(rec_meta), "--soft-out", str(tmp_path / "live.c64")])
    live.write_recording_meta()
    n = live.log.n_frames
    assert n == 5 and live.rec_sink.nitems_read(0) == x.size, (n, live.rec_sink.nitems_read(0))
    f = sigmf.sigmffile.fromfile(str(rec_meta))
    f.validate()
    assert np.array_equal(f.read_samples(), x)                       # the raw input stream, as it came
    g = f.get_global_info()
    assert g["core:sample_rate"] == 2e6 and g["infercom:sps"] == 2 and g["core:hw"].startswith("ZeroMQ IQ")
    assert "core:frequency" not in f.get_captures()[0]               # no --center-freq: unknown, left out
    anns = f.get_annotations()
    assert [a["core:sample_start"] for a in anns] == sorted(fr["sample_index"] for fr in live.log.frames)
    assert all(a["core:sample_count"] > 1024 * 2 and a["infercom:tx_id"] == 1 for a in anns)

    for path in (rec_meta, tmp_path / "cap.sigmf-data"):             # either file of the recording
        soft = tmp_path / "replay.c64"
        rep = _replay(["--replay", str(path), "--max-frame-len-log2", "10", "--soft-out", str(soft)])
        assert rep.sps == 2 and rep.samp_rate == 2e6
        assert rep.log.frames == live.log.frames                     # headers, sample_index, snr_db, cfo, h
        assert soft.read_bytes() == (tmp_path / "live.c64").read_bytes() and soft.stat().st_size > 0

    # ci16_le (another tool's recording): the same headers
    meta = json.loads(rec_meta.read_text())
    to_ci16(x).tofile(tmp_path / "c16.sigmf-data")
    write_meta(tmp_path / "c16.sigmf-meta", build_meta(sample_rate=2e6, sps=2, datatype="ci16_le"))
    rep = _replay(["--replay", str(tmp_path / "c16.sigmf-meta"), "--max-frame-len-log2", "10"])
    key = ("tx_id", "image_id", "attempt", "frame_idx", "height", "width", "frame_len_log2")
    assert [tuple(fr[k] for k in key) for fr in rep.log.frames] == [tuple(fr[k] for k in key)
                                                                    for fr in live.log.frames]

    # bad recordings / settings: clear errors
    with pytest.raises(ValueError, match="recorded at 2e.06 S/s"):
        rx_app.RxFlowgraph(_args(rx_app, ["--replay", str(rec_meta), "--samp-rate", "1e6"]))
    with pytest.raises(ValueError, match="2 samples/symbol.*set to 4"):
        rx_app.RxFlowgraph(_args(rx_app, ["--replay", str(rec_meta), "--sps", "4"]))
    meta["global"]["core:datatype"] = "cu8"
    (tmp_path / "bad.sigmf-meta").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="datatype 'cu8' not supported"):
        rx_app.RxFlowgraph(_args(rx_app, ["--replay", str(tmp_path / "bad.sigmf-meta")]))
    with pytest.raises(ValueError, match="data file not found"):
        rx_app.RxFlowgraph(_args(rx_app, ["--replay", str(_meta_without_data(tmp_path, meta))]))


def _meta_without_data(tmp_path, meta):
    import json

    meta = json.loads(json.dumps(meta))
    meta["global"]["core:datatype"] = "cf32_le"
    p = tmp_path / "nodata.sigmf-meta"
    p.write_text(json.dumps(meta))
    return p


def _decisions(records_file) -> list[tuple]:
    """(tx_id, image_id, [(attempt, decision, scores), ...]) of every image record the server wrote."""
    from receiver_server.records import load_records

    out = []
    for r in load_records(records_file):
        atts = [(a.get("attempt"), a.get("decision"), a.get("scores")) for a in r.get("attempts", [])]
        out.append((r.get("tx_id"), r.get("image_id"), atts))
    return sorted(out)


def _serve_stream(tmp_path, name: str, rx_argv: list, feed=None) -> list[tuple]:
    """Run a receiver (``rx_argv`` + ``--server``) into a fresh in-process server (bicubic restorer, the default
    offline consistency and reliability metrics at their calibrated thresholds, one attempt: every image ends in
    ACK or FAIL); ``feed``: pushes the live IQ.
    Returns the server's decisions."""
    from receiver_server.config import PolicyConfig, ServerConfig
    from receiver_server.qoe import get_qoe
    from receiver_server.restorers import get_restorer
    from receiver_server.server import InferenceServer

    records = tmp_path / f"{name}_records.jsonl"
    metrics = {m: get_qoe(m) for m in ("consistency", "reliability")}
    for _ in range(5):        # a port found free can be taken before the server binds it: try fresh ones
        port = free_tcp_port()
        fb = free_tcp_port(avoid=(port,))
        cfg = ServerConfig(bind=f"tcp://127.0.0.1:{port}", feedback_bind=f"tcp://127.0.0.1:{fb}",
                           log_file=str(tmp_path / f"{name}.log"), records_file=str(records),
                           assembly_timeout_s=0.3, policy=PolicyConfig(max_attempts=1))   # every image ACK or FAIL
        srv = InferenceServer(cfg, restorer=get_restorer("bicubic"), metrics=metrics)
        try:
            srv.start()
            break
        except RuntimeError as exc:
            if "Address already in use" not in str(exc):
                raise
    else:
        pytest.fail("no free port pair for the server in 5 tries")
    try:
        argv = rx_argv + ["--server", f"tcp://127.0.0.1:{port}", "--feedback", f"tcp://127.0.0.1:{fb}"]
        if feed is None:
            _replay(argv)
        else:
            feed(argv)
        t0 = time.monotonic()
        while srv.status()["images_served"] < 1 and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        srv.stop()
    return _decisions(records)


def test_replay_gives_the_live_runs_server_decisions(tmp_path):
    """A live run of the impaired loopback's IQ into a server, recorded to SigMF (the recording validates), then
    replayed into a fresh server: the same Chase-combined soft symbols (bit-exact), images, attempts, QoE scores
    and ACK/NACK decisions."""
    sigmf = pytest.importorskip("sigmf")
    x = _burst_iq(9, impaired=True)
    rec_meta = tmp_path / "live.sigmf-meta"
    with _iq_push() as (push, addr):            # held while the server's ports are probed: they cannot clash

        def live(argv):
            _live_run(x, push, argv).write_recording_meta()

        got_live = _serve_stream(tmp_path, "live", ["--iq-addr", addr, "--max-frame-len-log2", "10", "--samp-rate",
                                                    "2e6", "--record", str(rec_meta), "--soft-out",
                                                    str(tmp_path / "live.c64")], feed=live)
    sigmf.sigmffile.fromfile(str(rec_meta)).validate()
    got_replay = _serve_stream(tmp_path, "replay", ["--replay", str(rec_meta), "--max-frame-len-log2", "10",
                                                    "--soft-out", str(tmp_path / "replay.c64")])
    live_soft = (tmp_path / "live.c64").read_bytes()
    assert live_soft and (tmp_path / "replay.c64").read_bytes() == live_soft     # soft symbols bit-exact
    assert len(got_live) == 1 and got_live[0][2], got_live                  # one image, decided
    assert got_live[0][2][0][1] in ("ACK", "NACK", "FAIL") and got_live[0][2][0][2]   # with its QoE scores
    assert got_replay == got_live
