# SPDX-License-Identifier: GPL-3.0-or-later
"""qa for the tx/rx apps: a transmitter and a receiver flowgraph talking ZeroMQ IQ (as two radios would)
deliver every frame; the hardware configs in hw_configs/ load and bad ones are rejected."""

import argparse
import time

import numpy as np
import pytest
import zmq

from gnuradio.infercom.apps import rx as rx_app
from gnuradio.infercom.apps import tx as tx_app
from gnuradio.infercom.hwconfig import load_hw_config


def _args(mod, argv):
    p = argparse.ArgumentParser()
    mod.add_arguments(p)
    return p.parse_args(argv)


def test_tx_and_rx_over_zeromq_iq(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    s = zmq.Context.instance().socket(zmq.PUSH)
    port = s.bind_to_random_port("tcp://127.0.0.1")
    s.close(0)
    addr = f"tcp://127.0.0.1:{port}"
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
    code = ("import sys, gnuradio; gnuradio.__path__.insert(0, sys.argv[1]); from infercom.cli import main; "
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
    with pytest.raises(ValueError):
        configure_usrp(FakeUsrp(), hw, "both")
