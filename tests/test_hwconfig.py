# SPDX-License-Identifier: GPL-3.0-or-later
"""hw_configs/*.yaml and their schema (gnuradio.infercom.hwconfig): every shipped set-up validates, and each rule
rejects a bad config with a message naming the field; ``infercom hw probe`` without a radio (or without pyuhd)
says so in one line and fails within seconds; its loopback estimators recover known impairments."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "gr-infercom" / "python"))           # the source tree's hwconfig, as qa_apps
import gnuradio  # noqa: E402

gnuradio.__path__.insert(0, str(REPO / "gr-infercom" / "python"))
from gnuradio.infercom.hwconfig import device_addr, load_hw_config, validate_hw_config  # noqa: E402

from infercom_apps import hw as probe  # noqa: E402

SHIPPED = sorted((REPO / "hw_configs").glob("*.yaml"))
B210 = yaml.safe_load((REPO / "hw_configs" / "b210.yaml").read_text())
N210 = yaml.safe_load((REPO / "hw_configs" / "n210.yaml").read_text())


def test_every_shipped_config_validates_and_states_its_set_up():
    names = {p.stem for p in SHIPPED}
    assert {"b210", "n210", "x310", "e320", "two_radios", "two_hosts"} <= names
    for p in SHIPPED:
        cfg = load_hw_config(str(p))
        for key in ("device", "master_clock_rate", "max_sample_rate", "recv_frame_size", "send_frame_size"):
            assert key in yaml.safe_load(p.read_text()), (p.name, key)
        assert cfg["sample_rate"] <= cfg["max_sample_rate"]
        assert f"recv_frame_size={cfg['recv_frame_size']}" in device_addr(cfg, "rx")
        assert p.read_text().startswith("# SPDX-License-Identifier: GPL-3.0-or-later")


def test_two_radios_open_their_own_devices():
    cfg = load_hw_config("two_radios")
    assert device_addr(cfg, "tx").startswith("type=b200,serial=TX_SERIAL")
    assert device_addr(cfg, "rx").startswith("type=b200,serial=RX_SERIAL")
    assert cfg["device_args"] == "type=b200"


def bad(base: dict, **change) -> str:
    data = {**base, **change}
    data = {k: v for k, v in data.items() if v is not ...}
    with pytest.raises(ValueError) as ex:
        validate_hw_config(data, "t.yaml")
    return str(ex.value)


def test_unknown_key():
    assert "unknown fields ['rx_gian']" in bad(B210, rx_gian=3)


def test_missing_key():
    assert "missing field 'sps'" in bad(B210, sps=...)


@pytest.mark.parametrize("key,value,want", [("sample_rate", "fast", "'sample_rate' must be float"),
                                            ("sps", 2.5, "'sps' must be int"),
                                            ("tx_antenna", 2, "'tx_antenna' must be str"),
                                            ("rx_gain", True, "'rx_gain' must be float"),
                                            ("rx_dc_offset_auto", "yes", "'rx_dc_offset_auto' must be bool"),
                                            ("rx_iq_balance_auto", 1, "'rx_iq_balance_auto' must be bool")])
def test_bad_type(key, value, want):
    assert want in bad(B210, **{key: value})


def test_rate_must_be_the_master_clock_over_an_allowed_decimation():
    assert "not an allowed decimation" in bad(B210, sample_rate=3e6)            # 32e6 / 3e6 = 10.67
    assert "not an allowed decimation" in bad(B210, sample_rate=32e6 / 257)     # odd above 3
    assert "not an allowed decimation" in bad(N210, sample_rate=100e6 / 1000)   # beyond the N2xx's 512
    assert "takes 5e+06..6.144e+07" in bad(B210, master_clock_rate=80e6)
    assert "takes one of" in bad(yaml.safe_load((REPO / "hw_configs" / "x310.yaml").read_text()),
                                 master_clock_rate=100e6)


def test_rate_above_the_safe_maximum():
    assert "above the safe maximum 2.5e+07" in bad(N210, sample_rate=50e6)     # 100e6/2: a decimation, too fast
    assert "max_sample_rate" in bad(B210, max_sample_rate=100e6)              # beyond the family's link


def test_gains_frequency_and_bandwidth_out_of_range():
    assert "tx_gain 95 dB is outside the USRP B200/B210 range 0..89.75" in bad(B210, tx_gain=95)
    assert "rx_gain 40 dB is outside the USRP N200/N210 SBX range 0..31.5" in bad(N210, rx_gain=40)
    assert "center_freq 5.8e+09 Hz is outside 4e+08..4.4e+09" in bad(N210, center_freq=5.8e9)
    assert "bandwidth" in bad(B210, bandwidth=100e6)


def test_sps_the_receiver_does_not_support():
    msg = bad(B210, sps=32)
    assert "sps 32 is not supported by the receiver" in msg and "2..16" in msg


def test_device_family_daughterboard_antenna_clock_and_frame_size():
    assert "cannot tell the USRP family" in bad(B210, device=..., device_args="serial=123")
    assert "device 'b200' but the device args say type=x300" in bad(B210, device_args="type=x300")
    assert "daughterboard must be one of" in bad(N210, daughterboard=...)
    assert "rx_antenna must be one of" in bad(B210, rx_antenna="RX1")
    assert "clock_source 'mimo'" in bad(B210, clock_source="mimo")          # a MIMO cable is N2xx only
    assert "recv_frame_size 20000 bytes" in bad(N210, recv_frame_size=20000)


def test_every_problem_is_listed():
    msg = bad(B210, tx_gain=95, rx_gain=-1, sps=1)
    assert "3 problems" in msg and msg.count("\n  - ") == 3


# ---------------------------------------------------------------- infercom hw probe


def _cli(*argv, env=None, timeout=30):
    code = ("import sys, gnuradio; gnuradio.__path__.insert(0, sys.argv[1]); from infercom_apps.cli import main; "
            "sys.exit(main(sys.argv[2:]))")
    return subprocess.run([sys.executable, "-c", code, str(REPO / "gr-infercom" / "python"), "hw", *argv],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def test_probe_without_a_radio_says_so_in_one_line(tmp_path):
    pytest.importorskip("uhd")
    proc = _cli("probe", "--hw", "b210", "--out", str(tmp_path / "p.json"), timeout=30)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no USRP found" in lines[0], proc.stderr
    assert not (tmp_path / "p.json").exists()


def test_probe_without_pyuhd_says_so_in_one_line(tmp_path):
    import os

    (tmp_path / "uhd.py").write_text("raise ImportError('no module named uhd (test)')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    proc = _cli("probe", "--hw", "b210", env=env, timeout=30)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "pyuhd is not available" in lines[0], proc.stderr


def test_probe_rejects_an_invalid_config(tmp_path):
    (tmp_path / "x.yaml").write_text(yaml.safe_dump({**B210, "tx_gain": 100}))
    proc = _cli("probe", "--hw", str(tmp_path / "x.yaml"))
    assert proc.returncode == 2 and "tx_gain 100 dB is outside" in proc.stderr


def test_check_against_device_ranges():
    cfg = load_hw_config("b210")
    dev = {d: {"rate": [0.1e6, 61.44e6], "gain": [0, 89.75 if d == "tx" else 76], "freq": [70e6, 6e9],
               "antennas": ["TX/RX", "RX2"], "clock_sources": ["internal", "external"], "time_sources": ["internal"],
               "master_clock_rate": 32e6, "actual_rate": 2e6} for d in ("tx", "rx")}
    assert all(c["ok"] for c in probe.check_against_device(cfg, dev))
    dev["rx"]["gain"] = [0, 30]                       # a device that cannot do the config's 40 dB
    dev["tx"]["actual_rate"] = 1.999e6
    failed = {c["check"] for c in probe.check_against_device(cfg, dev) if not c["ok"]}
    assert failed == {"rx_gain", "tx_rate_exact"}


def test_estimators_recover_known_impairments():
    rng = np.random.default_rng(7)
    n, sps, fs = 1 << 16, 2, 2e6
    amp = math.sqrt(probe.burst_power(sps))
    cfo, sco, g, phi, dc, snr_db = 0.004, 25e-6, 1.06, math.radians(4.0), 0.01 + 0.02j, 20.0
    k = np.arange(n)
    a = amp / math.sqrt(2)
    x = a * (np.exp(2j * np.pi * (probe.F1 * (1 + sco) + cfo) * k + 0.3j)
             + np.exp(2j * np.pi * (probe.F2 * (1 + sco) + cfo) * k + 1.1j))
    mu, nu = (1 + g * np.exp(-1j * phi)) / 2, (1 - g * np.exp(1j * phi)) / 2
    sigma2 = amp ** 2 * abs(mu) ** 2 / 10 ** (snr_db / 10)
    y = mu * x + nu * np.conj(x) + dc + math.sqrt(sigma2 / 2) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
    est = probe.estimate_loopback(y.astype(np.complex64), sps=sps, sample_rate=fs)
    assert abs(est["cfo"] - cfo) < 1e-6 and abs(est["cfo_hz"] - cfo * fs) < 2.0
    assert abs(est["sco_ppm"] - 25.0) < 1.0
    assert abs(est["snr_db"] - snr_db) < 0.3 and abs(est["esn0_db"] - (snr_db + 10 * math.log10(sps))) < 0.3
    assert abs(est["iq_gain_db"] - 20 * math.log10(g)) < 0.05 and abs(est["iq_phase_deg"] - 4.0) < 0.3
    assert abs(est["image_rejection_db"] - 20 * math.log10(abs(mu) / abs(nu))) < 0.5
    want_dc = 10 * math.log10(abs(dc) ** 2 / (amp ** 2 * abs(mu) ** 2))
    assert abs(est["dc_dbc"] - want_dc) < 0.5


def test_clean_tones_give_no_impairment():
    x = probe.tone_signal(1 << 14, 0.5)
    assert np.isclose(np.mean(np.abs(x) ** 2), 0.25, rtol=0.01)
    est = probe.estimate_loopback(x)
    assert est["snr_db"] > 60 and abs(est["cfo"]) < 1e-9 and abs(est["sco_ppm"]) < 1e-3
    with pytest.raises(ValueError, match="1024"):
        probe.estimate_loopback(x[:100])


def test_probe_results_are_read_back_with_their_warnings(tmp_path):
    """``infercom hw probe`` writes ``<config>.probe.json``; ``infercom tx|rx`` read it (hwconfig.load_probe) and
    print the calibration and what to worry about."""
    import json
    import os

    from gnuradio.infercom.hwconfig import load_probe, probe_notes, probe_path

    cfg_file = tmp_path / "b210.yaml"
    cfg_file.write_text((REPO / "hw_configs" / "b210.yaml").read_text())
    hw = load_hw_config(str(cfg_file))
    assert probe_path(hw) == tmp_path / "b210.probe.json" and load_probe(hw) is None
    assert probe_notes(None, "rx") == (None, [])
    probe = {"time": "2026-12-01T10:00:00Z", "checks": [{"check": "rx_gain", "ok": True}],
             "calibration": {"snr_db": 31.2, "esn0_db": 34.2, "cfo_hz": -812.0, "sco_ppm": 0.31, "dc_dbc": -41.0,
                             "iq_gain_db": 0.12, "iq_phase_deg": 0.8, "overflows": 0, "underflows": 0}}
    probe_path(hw).write_text(json.dumps(probe))
    os.utime(cfg_file, (1, 1))                                     # the config is older than the probe
    got = load_probe(hw)
    assert got["stale"] is False and got["calibration"]["snr_db"] == 31.2
    line, warns = probe_notes(got, "rx")
    assert "SNR 31.2 dB" in line and "SCO 0.31 ppm" in line and warns == []
    probe["checks"].append({"check": "sample_rate", "ok": False})
    probe["calibration"]["overflows"] = 7
    probe_path(hw).write_text(json.dumps(probe))
    os.utime(probe_path(hw), (2, 2))
    os.utime(cfg_file, (3, 3))                                     # the config changed after the probe
    line, warns = probe_notes(load_probe(hw), "tx")
    assert "underflows 0" in line
    assert any("sample_rate" in w for w in warns) and any("7 overflows" in w for w in warns)
    assert any("changed after the probe" in w for w in warns)
    probe_path(hw).write_text("{not json")
    assert load_probe(hw) is None
