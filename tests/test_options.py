# SPDX-License-Identifier: GPL-3.0-or-later
"""infercom.options: the link flags and the --snr-db parser every subcommand shares."""

from __future__ import annotations

import argparse
import math

import pytest

from infercom import limits, options, simulate


def _actions(p: argparse.ArgumentParser) -> dict:
    return {a.dest: (tuple(a.option_strings), a.default, tuple(a.choices or ()), a.type)
            for a in p._actions if a.option_strings and a.dest != "help"}


def test_parse_snr_db_tokens_and_bounds():
    assert options.parse_snr_db(["-4", "0,4", " 6 , "]) == [-4.0, 0.0, 4.0, 6.0]
    lo, hi = options.SNR_RANGE_DB
    assert options.parse_snr_db([f"{lo:g},{hi:g}"]) == [lo, hi]
    for bad in ([f"{lo - 0.01}"], [f"{hi + 0.01}"], ["inf"], ["nan"], ["-inf"], ["x"], [","], []):
        with pytest.raises(ValueError, match="--snr-db"):
            options.parse_snr_db(bad)
    assert options.parse_snr_db(["-8,inf"], allow_noiseless=True) == [-8.0, math.inf]
    for bad in (["-inf"], ["nan"], [f"{hi + 1}"]):
        with pytest.raises(ValueError, match="--snr-db"):
            options.parse_snr_db(bad, allow_noiseless=True)


def test_link_flags_are_one_definition():
    """simulate and the GNU Radio apps get the same --rate/--block/--planes/--profile/--design-snr-db."""
    a = argparse.ArgumentParser()
    options.add_link_arguments(a, "x")
    s = argparse.ArgumentParser()
    simulate.add_arguments(s)
    sa, ss = _actions(a), _actions(s)
    assert set(sa) == {"rate", "block", "planes", "profile", "design_snr_db"}
    assert all(ss[k] == v for k, v in sa.items())
    assert sa["profile"][2] == limits.PROFILES and sa["planes"][1] == limits.MAX_PLANES
    args = a.parse_args(["--block", "2x4"])
    assert options.block_size(args) == (2, 4)
    assert options.block_size(a.parse_args([])) == (3, 3) == options.block_size(a.parse_args(["--rate", "1/9"]))
    with pytest.raises(SystemExit):
        a.parse_args(["--rate", "1/4", "--block", "2x2"])


def test_apps_use_the_core_link_flags():
    pytest.importorskip("gnuradio")
    import gnuradio

    from pathlib import Path
    src = str(Path(__file__).resolve().parents[1] / "gr-infercom" / "python")
    if src not in list(gnuradio.__path__):
        gnuradio.__path__.insert(0, src)
    from gnuradio.infercom import apps

    a = argparse.ArgumentParser()
    options.add_link_arguments(a, "x")
    g = argparse.ArgumentParser()
    apps.add_link_arguments(g)
    ga = _actions(g)
    assert all(ga[k][:3] == v[:3] for k, v in _actions(a).items())
    assert apps.block_size is options.block_size
