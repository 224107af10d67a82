# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom hw probe [--hw FILE]``: find the USRPs, check a ``hw_configs/*.yaml`` set-up against the device's
real ranges, and run a short cabled loopback calibration (docs/ota.md).

pyuhd (``import uhd``) and GNU Radio's ``gnuradio.uhd`` cannot share a process, so everything that talks to
the radio runs in a child process (``python -c "from infercom_apps.hw import device_main; ..."``, the request
as JSON on stdin, the answer as one JSON line on stdout); this module imports neither at the top.  The child
sends two tones (at ``F1 = 1/16`` and ``F2 = 3/16`` of the sample rate, together as strong as a frame's burst)
from TX to RX and hands the capture to :func:`estimate_loopback` (pure numpy, tested on synthetic captures):
SNR and Es/N0, carrier offset, sample-clock offset, DC offset, IQ imbalance.  The result goes to
``<config>.probe.json`` next to the config (``hw_configs/b210.yaml`` -> ``hw_configs/b210.probe.json``).

Exit status: 0 all checks passed, 1 a check failed, 2 no device / no pyuhd / the config is invalid / timeout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

#: the two calibration tones, in cycles/sample (both positive, so their images sit at -F1, -F2, apart from them)
F1, F2 = 1.0 / 16.0, 3.0 / 16.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["probe"], help="probe: list devices, check --hw against them, calibrate")
    p.add_argument("--hw", default=None, metavar="FILE",
                   help="a hw_configs set-up (name or path) to check and calibrate (default: only list devices)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="where to write the probe results (default: <config>.probe.json next to the config)")
    p.add_argument("--no-calibrate", action="store_true", help="check ranges only, send nothing")
    p.add_argument("--seconds", type=float, default=0.25, help="length of the loopback capture")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before the device process is stopped")
    p.add_argument("--python", default=sys.executable, help="the interpreter that has pyuhd (`import uhd`)")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")


# ------------------------------------------------------------------ estimators (pure numpy; tested on synthetics)


def tone_signal(n: int, amplitude: float, f1: float = F1, f2: float = F2) -> np.ndarray:
    """``n`` samples (complex64) of two equal tones at ``f1`` and ``f2`` cycles/sample; total power
    ``amplitude**2`` (each tone ``amplitude**2 / 2``). ``n`` a multiple of 16 makes it periodic (sent in a loop)."""
    k = np.arange(n)
    a = amplitude / math.sqrt(2.0)
    return (a * (np.exp(2j * np.pi * f1 * k) + np.exp(2j * np.pi * f2 * k))).astype(np.complex64)


def _refine_freq(x: np.ndarray, f: float, iters: int = 3) -> float:
    """A tone's frequency (cycles/sample) near ``f``: mix down, compare the phase of the two halves' sums."""
    n = x.size
    h = n // 2
    k = np.arange(n)
    for _ in range(iters):
        z = x * np.exp(-2j * np.pi * f * k)
        w = np.hanning(h)
        ph = np.angle(np.sum(z[h:2 * h] * w) * np.conj(np.sum(z[:h] * w)))
        f += ph / (2 * np.pi * h)
    return float(f)


def _coarse_freq(x: np.ndarray, f: float, halfwidth: float) -> float:
    n = x.size
    m = 4 * n
    spec = np.abs(np.fft.fft(x * np.hanning(n), m))
    freqs = np.fft.fftfreq(m)
    sel = np.flatnonzero(np.abs(((freqs - f + 0.5) % 1.0) - 0.5) <= halfwidth)
    i = sel[np.argmax(spec[sel])]
    a, b, c = np.log(spec[(i - 1) % m] + 1e-30), np.log(spec[i] + 1e-30), np.log(spec[(i + 1) % m] + 1e-30)
    den = a - 2 * b + c
    return float(freqs[i] + (0.5 * (a - c) / den if den != 0 else 0.0) / m)


def estimate_loopback(x: np.ndarray, sps: int | None = None, sample_rate: float | None = None,
                      f1: float = F1, f2: float = F2) -> dict:
    """Impairments of a capture of :func:`tone_signal` (RX samples, complex).  The tones arrive at
    ``m_i = f_i (1 + eps) + delta`` (``delta``: carrier offset, ``eps``: RX-vs-TX sample-clock offset), so two
    measured frequencies give both; a least-squares fit of the tones, their mirror images at ``-m_i`` and DC
    leaves the noise.  Needs ``|delta| < 1/32`` cycles/sample and a few thousand samples.

    Returns ``snr_db`` (tone power / noise power per sample), ``esn0_db`` (= ``snr_db + 10 log10(sps)``: what the
    receiver would measure on a burst of the same power, with ``sps``), ``cfo`` (cycles/sample; ``cfo_hz`` with
    ``sample_rate``), ``sco_ppm``, ``dc_dbc`` (DC power relative to the signal), the RX IQ imbalance of the model
    ``y = mu x + nu conj(x)`` with ``mu = (1 + g e^{-j phi}) / 2``, ``nu = (1 - g e^{j phi}) / 2``:
    ``iq_gain_db`` (20 log10 g), ``iq_phase_deg`` (phi), ``image_rejection_db`` (20 log10 |mu / nu|)."""
    x = np.asarray(x, np.complex128).ravel()
    if x.size < 1024:
        raise ValueError(f"estimate_loopback: need at least 1024 samples, got {x.size}")
    xd = x - x.mean()
    m1 = _refine_freq(xd, _coarse_freq(xd, f1, 1.0 / 32))
    m2 = _refine_freq(xd, _coarse_freq(xd, f2, 1.0 / 32))
    eps = (m2 - m1) / (f2 - f1) - 1.0
    delta = m1 - f1 * (1.0 + eps)
    k = np.arange(x.size)
    basis = np.stack([np.exp(2j * np.pi * f * k) for f in (m1, m2, -m1, -m2)] + [np.ones(x.size)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    a1, a2, b1, b2, dc = coef
    noise = float(np.mean(np.abs(x - basis @ coef) ** 2))
    p_sig = float(abs(a1) ** 2 + abs(a2) ** 2)
    rho = np.mean([a1 * b1 / abs(a1) ** 2, a2 * b2 / abs(a2) ** 2])       # = nu / conj(mu)
    ge = (1 - rho) / (1 + rho)                                             # = g e^{j phi}
    snr_db = 10 * math.log10(p_sig / max(noise, 1e-30))
    out = {
        "snr_db": snr_db,
        "esn0_db": snr_db + 10 * math.log10(sps) if sps else None,
        "cfo": delta,
        "cfo_hz": delta * sample_rate if sample_rate else None,
        "sco_ppm": eps * 1e6,
        "dc_dbc": 10 * math.log10(max(abs(dc) ** 2, 1e-30) / p_sig),
        "iq_gain_db": 20 * math.log10(abs(ge)),
        "iq_phase_deg": math.degrees(float(np.angle(ge))),
        "image_rejection_db": -20 * math.log10(max(abs(rho), 1e-15)),
        "signal_power": p_sig,
        "noise_power": noise,
        "samples": int(x.size),
    }
    return {key: (float(v) if isinstance(v, (float, np.floating)) else v) for key, v in out.items()}


def check_against_device(hw: dict, dev: dict) -> list[dict]:
    """The config's values against the ranges the device reported (``dev``: the child's ``ranges`` dict, each
    range ``[start, stop]``, and lists of antennas / clock and time sources).  One ``{check, ok, detail}`` per
    item; a range the device did not report is skipped."""
    checks = []

    def add(name, ok, detail):
        checks.append({"check": name, "ok": bool(ok), "detail": detail})

    def within(name, value, rng, unit):
        if rng:
            lo, hi = rng
            add(name, lo - 1e-6 * max(abs(lo), 1) <= value <= hi + 1e-6 * max(abs(hi), 1),
                f"{value:g} {unit} in device range {lo:g}..{hi:g}")

    for d in ("tx", "rx"):
        r = dev.get(d, {})
        within(f"{d}_rate", hw["sample_rate"], r.get("rate"), "S/s")
        if r.get("actual_rate"):
            add(f"{d}_rate_exact", abs(r["actual_rate"] - hw["sample_rate"]) <= 1e-6 * hw["sample_rate"],
                f"asked {hw['sample_rate']:g}, device set {r['actual_rate']:g} S/s")
        within(f"{d}_gain", hw[f"{d}_gain"], r.get("gain"), "dB")
        within(f"{d}_freq", hw["center_freq"], r.get("freq"), "Hz")
        if r.get("antennas"):
            add(f"{d}_antenna", hw[f"{d}_antenna"] in r["antennas"], f"{hw[f'{d}_antenna']!r} in {r['antennas']}")
        for key in ("clock_sources", "time_sources"):
            src = hw[key[:-1]]
            if r.get(key):
                add(f"{d}_{key[:-1]}", src in r[key], f"{src!r} in {r[key]}")
        if hw.get("master_clock_rate") and r.get("master_clock_rate"):
            add(f"{d}_master_clock_rate", abs(r["master_clock_rate"] - hw["master_clock_rate"]) < 1.0,
                f"asked {hw['master_clock_rate']:g}, device runs {r['master_clock_rate']:g} Hz")
    return checks


# ------------------------------------------------------------------ the device side (child process, pyuhd)


def _range(r) -> list[float]:
    return [float(r.start()), float(r.stop())]


def _describe(uhd, usrp, d: str, hw: dict) -> dict:
    """One direction's ranges as the device reports them, after applying the config (to read back the rate)."""
    g = lambda name: getattr(usrp, f"get_{d}_{name}")      # noqa: E731
    out = {"rate": _range(g("rates")(0)), "gain": _range(g("gain_range")(0)), "freq": _range(g("freq_range")(0)),
           "antennas": list(g("antennas")(0)), "mboard": usrp.get_mboard_name(0),
           "clock_sources": list(usrp.get_clock_sources(0)), "time_sources": list(usrp.get_time_sources(0))}
    if hw.get("master_clock_rate"):
        usrp.set_master_clock_rate(hw["master_clock_rate"])
    out["master_clock_rate"] = float(usrp.get_master_clock_rate())
    getattr(usrp, f"set_{d}_rate")(hw["sample_rate"], 0)
    out["actual_rate"] = float(g("rate")(0))
    return out


def _configure(uhd, usrp, d: str, hw: dict) -> None:
    usrp.set_clock_source(hw["clock_source"])
    usrp.set_time_source(hw["time_source"])
    getattr(usrp, f"set_{d}_rate")(hw["sample_rate"], 0)
    getattr(usrp, f"set_{d}_freq")(uhd.types.TuneRequest(hw["center_freq"]), 0)
    getattr(usrp, f"set_{d}_gain")(hw[f"{d}_gain"], 0)
    getattr(usrp, f"set_{d}_antenna")(hw[f"{d}_antenna"], 0)
    if hw.get("bandwidth"):
        getattr(usrp, f"set_{d}_bandwidth")(hw["bandwidth"], 0)


def _loopback(uhd, tx_usrp, rx_usrp, req: dict) -> dict:
    """Send the tones continuously from TX, capture ``n`` samples on RX after ``settle`` seconds; count
    overflows (RX metadata) and underflows / sequence errors (TX async messages)."""
    import threading

    hw = req["hw"]
    n = int(req["seconds"] * hw["sample_rate"]) // 16 * 16 or 4096
    skip = int(0.05 * hw["sample_rate"])
    st = uhd.usrp.StreamArgs("fc32", "sc16")
    st.channels = [0]
    txs, rxs = tx_usrp.get_tx_stream(st), rx_usrp.get_rx_stream(st)
    block = tone_signal(16 * 4096, req["amplitude"]).reshape(1, -1)
    stop, counts = threading.Event(), {"overflows": 0, "underflows": 0, "seq_errors": 0, "rx_errors": []}

    def send():
        md = uhd.types.TXMetadata()
        md.start_of_burst, md.end_of_burst, md.has_time_spec = True, False, False
        while not stop.is_set():
            txs.send(block, md)
            md.start_of_burst = False
        md.end_of_burst = True
        txs.send(np.zeros((1, 16), np.complex64), md)

    t = threading.Thread(target=send, daemon=True)
    t.start()
    time.sleep(0.2)                                          # TX running, LOs settled
    cmd = uhd.types.StreamCMD(uhd.types.StreamMode.start_cont)
    cmd.stream_now = True
    rxs.issue_stream_cmd(cmd)
    buf = np.zeros((1, rxs.get_max_num_samps()), np.complex64)
    out = np.zeros(skip + n, np.complex64)
    md, got = uhd.types.RXMetadata(), 0
    deadline = time.monotonic() + 5.0 + 2 * req["seconds"]
    while got < out.size and time.monotonic() < deadline:
        k = rxs.recv(buf, md, 1.0)
        if md.error_code == uhd.types.RXMetadataErrorCode.overflow:
            counts["overflows"] += 1
        elif md.error_code != uhd.types.RXMetadataErrorCode.none:
            counts["rx_errors"].append(str(md.error_code))
            if len(counts["rx_errors"]) > 10:
                break
        k = min(k, out.size - got)
        out[got:got + k] = buf[0, :k]
        got += k
    rxs.issue_stream_cmd(uhd.types.StreamCMD(uhd.types.StreamMode.stop_cont))
    stop.set()
    t.join(5.0)
    amd = uhd.types.TXAsyncMetadata()
    codes = uhd.types.TXMetadataEventCode
    while txs.recv_async_msg(amd, 0.1):
        if amd.event_code in (codes.underflow, codes.underflow_in_packet):
            counts["underflows"] += 1
        elif amd.event_code in (codes.seq_error, codes.seq_error_in_packet):
            counts["seq_errors"] += 1
    if got < out.size:
        return {**counts, "error": f"captured {got} of {out.size} samples"}
    est = estimate_loopback(out[skip:], hw["sps"], hw["sample_rate"])
    return {**counts, **est, "tx_gain": hw["tx_gain"], "rx_gain": hw["rx_gain"]}


def device_main(req: dict) -> dict:
    """The child's work (``req``: ``find`` args, ``hw`` (the config or None), ``calibrate``, ``seconds``,
    ``amplitude``) -> a JSON-able answer with ``status`` ``no_pyuhd`` | ``no_device`` | ``found`` | ``probed``."""
    try:
        import uhd
    except ImportError as exc:
        return {"status": "no_pyuhd", "error": str(exc)}
    found = [str(a.to_string()) if hasattr(a, "to_string") else str(a) for a in uhd.find(req["find"])]
    if not found:
        return {"status": "no_device", "find": req["find"], "devices": []}
    hw = req.get("hw")
    if not hw:
        return {"status": "found", "devices": found}
    addrs = {d: hw[f"{d}_device_addr"] for d in ("tx", "rx")}
    usrps = {a: uhd.usrp.MultiUSRP(a) for a in set(addrs.values())}
    ranges = {d: _describe(uhd, usrps[addrs[d]], d, hw) for d in ("tx", "rx")}
    result = {"status": "probed", "devices": found, "ranges": ranges}
    if req.get("calibrate"):
        for d in ("tx", "rx"):
            _configure(uhd, usrps[addrs[d]], d, hw)
        result["calibration"] = _loopback(uhd, usrps[addrs["tx"]], usrps[addrs["rx"]], req)
    return result


def _child_main() -> None:                 # stdin: the request (JSON); stdout: the answer, one JSON line
    req = json.loads(sys.stdin.read())
    try:
        ans = device_main(req)
    except Exception as exc:               # noqa: BLE001 -- a UHD error: report it, the parent decides
        ans = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write("\n" + json.dumps(ans) + "\n")


# ------------------------------------------------------------------ the parent (the CLI)


def burst_power(sps: int) -> float:
    """Mean power per sample of a frame's RRC-shaped QPSK burst at ``sps`` (what frame_modulator sends), so the
    tones are as strong as a real burst and the measured SNR is the one the frames see."""
    from infercom.channel import pulse_shape, rrc_taps

    rng = np.random.default_rng(0)
    sym = ((rng.integers(0, 2, 8192) * 2 - 1) + 1j * (rng.integers(0, 2, 8192) * 2 - 1)) / math.sqrt(2)
    y = pulse_shape(sym.astype(np.complex64), sps, rrc_taps(sps, 0.35, 8))
    return float(np.mean(np.abs(y[8 * sps:-8 * sps]) ** 2))


def run_device(req: dict, python: str, timeout: float) -> dict:
    """Run :func:`device_main` in a child ``python``; its stderr (UHD's log) is kept in ``stderr``."""
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])]))
    code = "from infercom_apps.hw import _child_main; _child_main()"
    try:
        proc = subprocess.run([python, "-c", code], input=json.dumps(req), capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "error": f"the device process ran past {timeout:g} s"}
    except OSError as exc:
        return {"status": "no_pyuhd", "error": f"cannot run {python}: {exc}"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"status": "error", "error": f"device process exited {proc.returncode}: "
                                            f"{proc.stderr.strip().splitlines()[-1:] or 'no output'}"}
    return {**json.loads(lines[-1]), "stderr": proc.stderr[-4000:]}


def run(args: argparse.Namespace) -> int:
    from gnuradio.infercom.hwconfig import load_hw_config

    hw = None
    if args.hw:
        try:
            hw = load_hw_config(args.hw)
        except ValueError as exc:
            print(f"infercom hw probe: {exc}", file=sys.stderr)
            return 2
    find = hw["device_args"] if hw else ""     # two radios: what both have in common; each opened apart
    req = {"find": find, "hw": hw, "calibrate": not args.no_calibrate, "seconds": args.seconds,
           "amplitude": math.sqrt(burst_power(hw["sps"])) if hw else 0.0}
    ans = run_device(req, args.python, args.timeout)
    status = ans.get("status")
    if status == "no_pyuhd":
        print(f"infercom hw probe: pyuhd is not available to {args.python} ({ans.get('error')}); install UHD's "
              f"Python API (Debian: python3-uhd) or pass --python", file=sys.stderr)
        return 2
    if status == "no_device":
        print(f"infercom hw probe: no USRP found for device args {find!r} (uhd.find returned nothing)",
              file=sys.stderr)
        return 2
    if status in ("timeout", "error"):
        print(f"infercom hw probe: {ans.get('error')}", file=sys.stderr)
        return 2
    if status == "found":
        for d in ans["devices"]:
            print(d)
        return 0
    checks = check_against_device(hw, ans.get("ranges", {}))
    cal = ans.get("calibration")
    record = {"config": hw["path"], "name": hw["name"], "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "devices": ans["devices"], "ranges": ans.get("ranges"), "checks": checks, "calibration": cal}
    from gnuradio.infercom.hwconfig import probe_path

    out = Path(args.out) if args.out else probe_path(hw)
    try:
        out.write_text(json.dumps(record, indent=2) + "\n")
    except OSError as exc:
        print(f"infercom hw probe: cannot write {out}: {exc} (use --out)", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(record))
    else:
        for c in checks:
            print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['check']}: {c['detail']}")
        if cal and "snr_db" in cal:
            print(f"loopback: SNR {cal['snr_db']:.1f} dB (Es/N0 {cal['esn0_db']:.1f} dB), CFO {cal['cfo_hz']:.1f} Hz, "
                  f"SCO {cal['sco_ppm']:.2f} ppm, DC {cal['dc_dbc']:.1f} dBc, IQ {cal['iq_gain_db']:.2f} dB / "
                  f"{cal['iq_phase_deg']:.2f} deg, overflows {cal['overflows']}, underflows {cal['underflows']}")
        elif cal:
            print(f"loopback: {cal.get('error')}")
        print(f"wrote {out}")
    bad = [c for c in checks if not c["ok"]] or (cal is not None and "error" in cal)
    return 1 if bad else 0
