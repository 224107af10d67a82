# SPDX-License-Identifier: GPL-3.0-or-later
"""Radio set-ups from ``hw_configs/*.yaml``: UHD device args, rates, gains, frequency, antennas, clock.

``load_hw_config("b210")`` finds ``b210.yaml`` from any working directory; it looks, in this order, in
``$INFERCOM_HW_CONFIGS``, in ``./hw_configs`` and the ``hw_configs`` of every parent folder (a set-up of your
own next to your work wins), then in the shipped set-ups: ``<prefix>/share/gr-infercom/hw_configs`` (installed
there by CMake, ``scripts/install_oot.sh``, for the prefix this module is installed in) and, when this module
runs from the source tree, the repository's ``hw_configs/``.  A path to a file works too.  Every field is
checked.
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
OPTIONAL = {"name": str, "master_clock_rate": float, "bandwidth": float}
CLOCK_SOURCES = ("internal", "external", "gpsdo", "mimo")


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
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of fields")
    cfg = {}
    for key, typ in {**REQUIRED, **OPTIONAL}.items():
        if key not in data:
            if key in REQUIRED:
                raise ValueError(f"{path}: missing field {key!r}")
            continue
        v = data[key]
        try:
            v = typ(v) if not (typ is int and isinstance(v, float) and not v.is_integer()) else None
        except (TypeError, ValueError):
            v = None
        if v is None or isinstance(data[key], bool):
            raise ValueError(f"{path}: field {key!r} must be {typ.__name__}, got {data[key]!r}")
        cfg[key] = v
    unknown = set(data) - set(REQUIRED) - set(OPTIONAL)
    if unknown:
        raise ValueError(f"{path}: unknown fields {sorted(unknown)}")
    for key in ("sample_rate", "center_freq"):
        if not (math.isfinite(cfg[key]) and cfg[key] > 0):
            raise ValueError(f"{path}: {key} must be > 0, got {cfg[key]}")
    if not 1 <= cfg["sps"] <= 64:
        raise ValueError(f"{path}: sps must be 1..64, got {cfg['sps']}")
    for key in ("clock_source", "time_source"):
        if cfg[key] not in CLOCK_SOURCES:
            raise ValueError(f"{path}: {key} must be one of {CLOCK_SOURCES}, got {cfg[key]!r}")
    cfg.setdefault("name", path.stem)
    cfg.setdefault("bandwidth", 0.0)
    cfg["path"] = str(path)
    return cfg


def configure_usrp(usrp, hw: dict, direction: str, all_mboards=None) -> None:
    """Apply a :func:`load_hw_config` set-up to a ``uhd.usrp_source`` (``direction="rx"``) or ``usrp_sink``
    (``"tx"``), channel 0: master clock (when given), clock and time source, sample rate (S/s), centre frequency
    (Hz), the direction's gain (dB) and antenna, analog bandwidth (Hz, when non-zero).  ``all_mboards`` is
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
