# SPDX-License-Identifier: GPL-3.0-or-later
"""Radio set-ups from ``hw_configs/*.yaml``: UHD device args, rates, gains, frequency, antennas, clock.

``load_hw_config("b210")`` finds ``b210.yaml`` from any working directory; it looks, in this order, in
``$INFERCOM_HW_CONFIGS``, in ``./hw_configs`` and the ``hw_configs`` of every parent folder (a set-up of your
own next to your work wins), then in the shipped set-ups: ``<prefix>/share/gr-infercom/hw_configs`` (installed
there by CMake, ``scripts/install_oot.sh``, for the prefix this module is installed in) and, when this module
runs from the source tree, the repository's ``hw_configs/``.  A path to a file works too.

Every field is checked by :func:`validate_hw_config` against the schema (:data:`REQUIRED`, :data:`OPTIONAL`)
and the limits of the USRP family (:data:`FAMILIES`, :data:`DAUGHTERBOARDS`): docs/ota.md lists the rules.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import yaml

REQUIRED = {
    "device_args": str, "sample_rate": float, "sps": int, "center_freq": float, "tx_gain": float,
    "rx_gain": float, "tx_antenna": str, "rx_antenna": str, "clock_source": str, "time_source": str,
}
OPTIONAL = {"name": str, "master_clock_rate": float, "bandwidth": float, "device": str, "daughterboard": str,
            "tx_device_args": str, "rx_device_args": str, "recv_frame_size": int, "send_frame_size": int,
            "max_sample_rate": float, "rx_dc_offset_auto": bool, "rx_iq_balance_auto": bool}
CLOCK_SOURCES = ("internal", "external", "gpsdo", "mimo")


def _ad9361_decim(d: int) -> bool:
    """Decimations (= interpolations) of the DDC/DUC after an AD9361 (B2xx, E3xx): 1, 2, 3, even 4..256, a
    multiple of 4 in 256..512, of 8 in 512..1008 (MathWorks, "Baseband Sample Rate in NI USRP Radios", the E320
    row; the B2xx FPGA has the same ``rx_dsp_core_3000`` halfband + CIC structure)."""
    return d in (1, 2, 3) or (4 <= d <= 256 and d % 2 == 0) or (256 < d <= 512 and d % 4 == 0) \
        or (512 < d <= 1008 and d % 8 == 0)


def _x300_decim(d: int) -> bool:
    """X3xx DDC: any integer 1..128, even to 256, a multiple of 4 to 512, of 8 to 1016 (same MathWorks page)."""
    return 1 <= d <= 128 or (128 < d <= 256 and d % 2 == 0) or (256 < d <= 512 and d % 4 == 0) \
        or (512 < d <= 1016 and d % 8 == 0)


def _n200_decim(d: int) -> bool:
    """N2xx ``dsp_core_200``: CIC 1..128 then up to two halfbands: any integer 1..128, even to 256, a multiple
    of 4 to 512 (100 MHz / 512 = 195.3 kS/s, the N210's documented lowest rate)."""
    return 1 <= d <= 128 or (128 < d <= 256 and d % 2 == 0) or (256 < d <= 512 and d % 4 == 0)


#: what each USRP family can do.  Sources: Ettus/NI data sheets and the UHD manual (files.ettus.com/manual:
#: "USRP B2x0 Series", "USRP2 and N2x0 Series", "USRP X3x0 Series", "USRP E3x0 Series", "Transport Notes").
#: ``mcr``: master clock range (AD9361 parts: any rate in it; N2xx fixed; X3xx one of two); ``max_rate``: the
#: most the host link carries for one channel of sc16 (B2xx USB 3: 61.44 Msps; N2xx GigE: 25 Msps; X3xx
#: 10GbE: 200 Msps; E3xx: 61.44 Msps into the FPGA, far less into the ARM, see hw_configs/e320.yaml);
#: gains (dB) and frequency (Hz) of the AD9361 families are the chip's; N2xx/X3xx take their daughterboard's.
FAMILIES: dict[str, dict] = {
    "b200": dict(label="USRP B200/B210", types=("b200",), mcr=(5e6, 61.44e6), mcr_default=None,
                 max_rate=61.44e6, tx_gain=(0.0, 89.75), rx_gain=(0.0, 76.0), freq=(70e6, 6e9),
                 bandwidth=(200e3, 56e6), decim=_ad9361_decim, frame_size=(256, 16360),
                 clock=("internal", "external", "gpsdo"), tx_antennas=("TX/RX",), rx_antennas=("TX/RX", "RX2")),
    "n200": dict(label="USRP N200/N210", types=("usrp2",), mcr=(100e6, 100e6), mcr_default=100e6,
                 max_rate=25e6, decim=_n200_decim, frame_size=(256, 8000),
                 clock=("internal", "external", "gpsdo", "mimo")),
    "x300": dict(label="USRP X300/X310", types=("x300",), mcr=(184.32e6, 200e6), mcr_choices=(184.32e6, 200e6),
                 mcr_default=200e6, max_rate=200e6, decim=_x300_decim, frame_size=(256, 8000),
                 clock=("internal", "external", "gpsdo")),
    "e3xx": dict(label="USRP E310/E320", types=("e3xx", "e3x0", "e310", "e320"), mcr=(220e3, 61.44e6),
                 mcr_default=None, max_rate=61.44e6, tx_gain=(0.0, 89.75), rx_gain=(0.0, 76.0), freq=(70e6, 6e9),
                 bandwidth=(200e3, 56e6), decim=_ad9361_decim, frame_size=(256, 8000),
                 clock=("internal", "external", "gpsdo"), tx_antennas=("TX/RX",), rx_antennas=("TX/RX", "RX2")),
}
#: daughterboards of the N2xx/X3xx (UHD manual "Daughterboards"; Ettus data sheets): frequency range (Hz),
#: TX and RX gain range (dB), widest analog bandwidth (Hz).  WBX: the v3+ TX range (a WBX v2 stops at 25 dB).
DAUGHTERBOARDS: dict[str, dict] = {
    "sbx": dict(freq=(400e6, 4.4e9), tx_gain=(0.0, 31.5), rx_gain=(0.0, 31.5), bandwidth=(0.0, 40e6)),
    "wbx": dict(freq=(50e6, 2.2e9), tx_gain=(0.0, 31.0), rx_gain=(0.0, 31.5), bandwidth=(0.0, 40e6)),
    "cbx": dict(freq=(1.2e9, 6e9), tx_gain=(0.0, 31.5), rx_gain=(0.0, 31.5), bandwidth=(0.0, 40e6)),
    "ubx": dict(freq=(10e6, 6e9), tx_gain=(0.0, 31.5), rx_gain=(0.0, 31.5), bandwidth=(0.0, 160e6)),
}
DB_ANTENNAS = dict(tx_antennas=("TX/RX",), rx_antennas=("TX/RX", "RX2"))


#: where the installed set-ups live below an install prefix (gr-infercom/CMakeLists.txt installs them there)
SHARE_SUBDIR = Path("share") / "gr-infercom" / "hw_configs"


def shipped_dirs() -> list[Path]:
    """The folders of the shipped set-ups that exist, nearest to this module first: ``<prefix>/share/gr-infercom/
    hw_configs`` for every prefix above this file (the install) and ``sys.prefix``, and the repository's
    ``hw_configs/`` when this file is in the source tree (a parent folder holding ``gr-infercom/``)."""
    out: list[Path] = []
    for d in Path(__file__).resolve().parents:
        for cand in (d / SHARE_SUBDIR, d / "hw_configs" if (d / "gr-infercom").is_dir() else None):
            if cand is not None and cand.is_dir() and cand not in out:
                out.append(cand)
    prefix = Path(sys.prefix) / SHARE_SUBDIR
    if prefix.is_dir() and prefix not in out:
        out.append(prefix)
    return out


def _search_dirs() -> list[Path]:
    env = os.environ.get("INFERCOM_HW_CONFIGS")
    here = Path.cwd().resolve()
    return ([Path(env)] if env else []) + [d / "hw_configs" for d in (here, *here.parents)] + shipped_dirs()


def load_hw_config(name_or_path: str) -> dict:
    """The radio configuration as a dict with the fields of :data:`REQUIRED` (+ optional ones), validated;
    ``path`` is the file it came from. ``name_or_path``: a file path, or a name (``b210``, ``b210.yaml``)
    looked up as the module docstring says."""
    p = Path(str(name_or_path))
    fname = p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml"
    dirs = _search_dirs()
    path = p if p.is_file() else None
    if path is None and not p.is_absolute():        # a name (or hw_configs/NAME.yaml): search by file name
        path = next((d / fname for d in dirs if (d / fname).is_file()), None)
    if path is None:
        shown = [d for d in dirs if d.is_dir()] or dirs[:1]
        raise ValueError(f"hardware config {name_or_path!r} not found (a YAML path, or a name looked up in "
                         f"$INFERCOM_HW_CONFIGS, ./hw_configs and its parents' and the shipped set-ups; "
                         f"existing folders searched: {', '.join(str(d) for d in shown)})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    cfg = validate_hw_config(data, str(path))
    cfg.setdefault("name", path.stem)
    cfg["path"] = str(path)
    return cfg


def _device_type(args: str) -> str | None:
    """The ``type=`` of a UHD device address (``"type=b200,serial=X"`` -> ``"b200"``), or None."""
    for part in args.split(","):
        k, _, v = part.partition("=")
        if k.strip() == "type":
            return v.strip()
    return None


def _family_of(types: list[str]) -> str | None:
    for fam, spec in FAMILIES.items():
        if types and all(t in spec["types"] for t in types):
            return fam
    return None


def _coerce(key: str, typ: type, v):
    """``v`` as ``typ`` or None.  Floats: a number, or a numeric string (PyYAML reads ``2.0e6`` as a string: YAML
    1.1 wants ``2.0e+6``); ints: an integer, an integral float or a string of digits; strings: a string.
    A bool is never a number; a bool field takes only true / false."""
    if typ is bool:
        return v if isinstance(v, bool) else None
    if isinstance(v, bool):
        return None
    if typ is str:
        return v if isinstance(v, str) else None
    if typ is float:
        try:
            out = float(v) if isinstance(v, (int, float, str)) else None
        except ValueError:
            return None
        return out if out is not None and math.isfinite(out) else None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().isdigit():
        return int(v)
    return None


def validate_hw_config(data, source: str = "<config>") -> dict:
    """Check a radio set-up (the mapping read from a YAML) against the schema and the device family's limits;
    return the normalised config (see :func:`load_hw_config`).  Raises ``ValueError`` naming ``source`` and
    every problem found, one per line: unknown / missing keys, bad types, a sample rate that is not the master
    clock over an allowed decimation or is above the safe maximum, gains / frequency / bandwidth outside the
    device's (or daughterboard's) range, an ``sps`` the receiver does not support, unknown clock, time or
    antenna names, frame sizes out of range."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping of fields, got {type(data).__name__}")
    problems: list[str] = []
    unknown = sorted(set(map(str, data)) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        problems.append(f"unknown fields {unknown} (allowed: {sorted({**REQUIRED, **OPTIONAL})})")
    cfg: dict = {}
    for key, typ in {**REQUIRED, **OPTIONAL}.items():
        if key not in data:
            if key in REQUIRED:
                problems.append(f"missing field {key!r}")
            continue
        v = _coerce(key, typ, data[key])
        if v is None:
            problems.append(f"field {key!r} must be {typ.__name__}, got {data[key]!r}")
        else:
            cfg[key] = v
    if problems:                         # the value checks below need every field, well typed
        raise ValueError(_message(source, problems))

    def need(cond: bool, msg: str) -> bool:
        if not cond:
            problems.append(msg)
        return cond

    for key in ("sample_rate", "center_freq"):
        need(cfg[key] > 0, f"{key} must be > 0, got {cfg[key]}")
    # the receiver's chain (infercom.frame.FrameFormat: burst_sync, frame_demod) takes sps MIN_SPS..MAX_SPS;
    # infercom.limits, not the frame module: reading a config must not need the numba kernels
    from infercom.limits import MAX_SPS, MIN_SPS

    sps = cfg["sps"]
    if isinstance(sps, bool) or not isinstance(sps, int) or not MIN_SPS <= sps <= MAX_SPS:
        problems.append(f"sps {sps} is not supported by the receiver (infercom.frame.FrameFormat: sps must be an "
                        f"integer in {MIN_SPS}..{MAX_SPS})")
    for key in ("clock_source", "time_source"):
        need(cfg[key] in CLOCK_SOURCES, f"{key} must be one of {CLOCK_SOURCES}, got {cfg[key]!r}")
    # the device family: `device:`, else the type= of every device address
    addrs = {d: cfg.get(f"{d}_device_args", cfg["device_args"]) for d in ("tx", "rx")}
    types = sorted({t for t in map(_device_type, [cfg["device_args"], *addrs.values()]) if t})
    fam = cfg.get("device")
    if fam is not None and fam not in FAMILIES:
        problems.append(f"device must be one of {sorted(FAMILIES)}, got {fam!r}")
        return _fail(source, problems)
    by_type = _family_of(types)
    if fam is None:
        if by_type is None:
            problems.append(f"cannot tell the USRP family from the device args (type= {types or 'missing'}): add "
                            f"'device: {'|'.join(FAMILIES)}' or a type= of "
                            f"{sorted(t for s in FAMILIES.values() for t in s['types'])}")
            return _fail(source, problems)
        fam = by_type
    elif types and by_type != fam:
        problems.append(f"device {fam!r} but the device args say type={','.join(types)}")
    spec = dict(FAMILIES[fam])
    db = cfg.get("daughterboard")
    if "tx_gain" not in spec:                        # N2xx / X3xx: the daughterboard sets gains and frequency
        if db is None or db not in DAUGHTERBOARDS:
            problems.append(f"{spec['label']}: daughterboard must be one of {sorted(DAUGHTERBOARDS)}, got {db!r}")
            return _fail(source, problems)
        spec.update(DAUGHTERBOARDS[db], **DB_ANTENNAS)
    elif db is not None:
        problems.append(f"{spec['label']} has no daughterboard (the AD9361 is on the board), got {db!r}")
    # rates: sample_rate = master clock / an allowed decimation, <= the safe maximum
    lo, hi = spec["mcr"]
    mcr = cfg.get("master_clock_rate")
    if mcr is not None:
        ok = mcr in spec["mcr_choices"] if "mcr_choices" in spec else lo <= mcr <= hi
        need(ok, f"master_clock_rate {mcr:g} Hz: the {spec['label']} takes "
                 + (f"one of {[f'{c:g}' for c in spec['mcr_choices']]}" if "mcr_choices" in spec
                    else f"{lo:g}..{hi:g} Hz"))
    safe = cfg.get("max_sample_rate", spec["max_rate"])
    need(0 < safe <= spec["max_rate"], f"max_sample_rate {safe:g} S/s: must be in (0, {spec['max_rate']:g}] "
                                       f"(the {spec['label']}'s host link, sc16, one channel)")
    rate = cfg["sample_rate"]
    if rate > 0:
        need(rate <= safe, f"sample_rate {rate:g} S/s is above the safe maximum {safe:g} S/s")
        clocks = [mcr] if mcr is not None else ([spec["mcr_default"]] if spec["mcr_default"] else None)
        if clocks is None:                   # AD9361: UHD picks the master clock; some allowed one must do
            ok = any(spec["decim"](d) and lo <= rate * d <= hi for d in range(1, 1009))
            need(ok, f"sample_rate {rate:g} S/s: no master clock in {lo:g}..{hi:g} Hz is it times an allowed "
                     f"decimation")
        else:
            d = clocks[0] / rate
            di = round(d)
            need(abs(d - di) < 1e-9 * d and spec["decim"](di),
                 f"sample_rate {rate:g} S/s: master clock {clocks[0]:g} Hz / {d:g} is not an allowed decimation "
                 f"({spec['decim'].__doc__.split(':', 1)[1].split('(')[0].strip()})")
    for d in ("tx", "rx"):
        g0, g1 = spec[f"{d}_gain"]
        need(g0 <= cfg[f"{d}_gain"] <= g1, f"{d}_gain {cfg[f'{d}_gain']:g} dB is outside the {spec['label']}"
                                          f"{' ' + db.upper() if db else ''} range {g0:g}..{g1:g} dB")
        ants = spec[f"{d}_antennas"]
        need(cfg[f"{d}_antenna"] in ants, f"{d}_antenna must be one of {list(ants)}, got {cfg[f'{d}_antenna']!r}")
    f0, f1 = spec["freq"]
    need(f0 <= cfg["center_freq"] <= f1, f"center_freq {cfg['center_freq']:g} Hz is outside {f0:g}..{f1:g} Hz")
    bw = cfg.get("bandwidth", 0.0)
    b0, b1 = spec["bandwidth"]
    need(bw == 0 or b0 <= bw <= b1, f"bandwidth {bw:g} Hz: 0 (UHD's default) or {b0:g}..{b1:g} Hz")
    for key in ("clock_source", "time_source"):
        if cfg[key] in CLOCK_SOURCES:
            need(cfg[key] in spec["clock"], f"{key} {cfg[key]!r}: the {spec['label']} takes {list(spec['clock'])}")
    s0, s1 = spec["frame_size"]
    for key in ("recv_frame_size", "send_frame_size"):
        if key in cfg:
            need(s0 <= cfg[key] <= s1, f"{key} {cfg[key]} bytes: the {spec['label']} link takes {s0}..{s1}")
    if problems:
        raise ValueError(_message(source, problems))
    cfg["device"] = fam
    cfg["max_sample_rate"] = safe
    cfg.setdefault("bandwidth", 0.0)
    for d in ("tx", "rx"):
        cfg[f"{d}_device_addr"] = _with_frame_sizes(addrs[d], cfg)
    return cfg


def _with_frame_sizes(args: str, cfg: dict) -> str:
    keys = {p.partition("=")[0].strip() for p in args.split(",")}
    extra = [f"{k}={cfg[k]}" for k in ("recv_frame_size", "send_frame_size") if k in cfg and k not in keys]
    return ",".join([a for a in [args.strip(",")] if a] + extra)


def _message(source: str, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{source}: {problems[0]}"
    return f"{source}: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


def _fail(source: str, problems: list[str]):
    raise ValueError(_message(source, problems))


def device_addr(hw: dict, direction: str) -> str:
    """The UHD device address of the ``"tx"`` or ``"rx"`` radio of a :func:`load_hw_config` set-up: its
    ``tx_device_args`` / ``rx_device_args`` (two radios) or ``device_args``, with ``recv_frame_size`` /
    ``send_frame_size`` appended unless the args give them already."""
    if direction not in ("rx", "tx"):
        raise ValueError(f"device_addr: direction must be 'rx' or 'tx', got {direction!r}")
    return hw.get(f"{direction}_device_addr") or hw["device_args"]


def configure_usrp(usrp, hw: dict, direction: str, all_mboards=None) -> None:
    """Apply a :func:`load_hw_config` set-up to a ``uhd.usrp_source`` (``direction="rx"``) or ``usrp_sink``
    (``"tx"``), channel 0: master clock (when given), clock and time source, sample rate (S/s), centre frequency
    (Hz), the direction's gain (dB) and antenna, analog bandwidth (Hz, when non-zero); for RX the automatic DC
    offset and IQ balance correction (``rx_dc_offset_auto``, ``rx_iq_balance_auto``, default true).  ``all_mboards`` is
    ``uhd.ALL_MBOARDS`` (imported here when not given)."""
    if direction not in ("rx", "tx"):
        raise ValueError(f"configure_usrp: direction must be 'rx' or 'tx', got {direction!r}")
    if hw.get("master_clock_rate"):
        if all_mboards is None:
            from gnuradio import uhd

            all_mboards = uhd.ALL_MBOARDS
        usrp.set_clock_rate(hw["master_clock_rate"], all_mboards)
    usrp.set_clock_source(hw["clock_source"], 0)
    usrp.set_time_source(hw["time_source"], 0)
    usrp.set_samp_rate(hw["sample_rate"])
    usrp.set_center_freq(hw["center_freq"], 0)
    usrp.set_gain(hw[f"{direction}_gain"], 0)
    usrp.set_antenna(hw[f"{direction}_antenna"], 0)
    if hw.get("bandwidth"):
        usrp.set_bandwidth(hw["bandwidth"], 0)
    if direction == "rx":
        # the radio's own DC-offset and IQ-imbalance correction, before the receiver's detector (on unless the
        # config says false); a device without the control keeps its default
        for setter, key in (("set_auto_dc_offset", "rx_dc_offset_auto"), ("set_auto_iq_balance", "rx_iq_balance_auto")):
            try:
                getattr(usrp, setter)(bool(hw.get(key, True)), 0)
            except (RuntimeError, AttributeError, NotImplementedError):
                pass


# ------------------------------------------------------------------------------------------ probe results
def probe_path(hw: dict) -> Path:
    """Where ``infercom hw probe`` writes its results for the config ``hw``: ``<config>.probe.json`` beside it."""
    p = Path(hw["path"])
    return p.with_name(p.stem + ".probe.json")


def load_probe(hw: dict) -> dict | None:
    """The last ``infercom hw probe`` results of this set-up (None when it was never probed or the file is not
    valid JSON), with ``stale`` (the config file changed after the probe) and ``path`` added."""
    import json

    path = probe_path(hw)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        data["stale"] = Path(hw["path"]).stat().st_mtime > path.stat().st_mtime
    except OSError:
        data["stale"] = False
    data["path"] = str(path)
    return data


def probe_notes(probe: dict | None, direction: str) -> tuple[str | None, list[str]]:
    """What ``infercom tx|rx`` print at start from :func:`load_probe`: one line with the cabled calibration
    (``direction`` "rx": SNR, Es/N0, CFO, SCO, DC, IQ; "tx": underflows) and the warnings (a failed check,
    overflows / underflows during the probe, a probe older than the config). ``(None, [])`` without a probe."""
    if not probe:
        return None, []
    cal = probe.get("calibration") or {}
    warn = []
    failed = [c.get("check") for c in probe.get("checks", []) if isinstance(c, dict) and c.get("ok") is False]
    if failed:
        warn.append(f"the probe found failed checks: {', '.join(map(str, failed))} (rerun infercom hw probe)")
    for k in ("overflows", "underflows", "seq_errors"):
        if cal.get(k):
            warn.append(f"the probe saw {cal[k]} {k} at this rate: lower sample_rate (docs/ota.md section 5)")
    if probe.get("stale"):
        warn.append("the config changed after the probe: its calibration may not apply (rerun infercom hw probe)")

    def f(key, fmt):
        v = cal.get(key)
        return None if v is None else fmt.format(v)

    parts = [f("snr_db", "SNR {:.1f} dB"), f("esn0_db", "Es/N0 {:.1f} dB"), f("cfo_hz", "CFO {:.0f} Hz"),
             f("sco_ppm", "SCO {:.2f} ppm"), f("dc_dbc", "DC {:.1f} dBc"), f("iq_gain_db", "IQ {:.2f} dB"),
             f("iq_phase_deg", "/ {:.1f} deg")] if direction == "rx" else \
        [f("tx_gain", "TX gain {:g} dB"), f("underflows", "underflows {:d}")]
    got = " ".join(p for p in parts if p)
    line = f"cabled calibration of {probe.get('time', '?')} ({probe['path']}): {got or 'no calibration'}"
    return line, warn

