# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom <command> --help`` shows every option's default (infercom_apps.cli.HelpFormatter): for the commands
that need no GNU Radio here (tx, rx and loopback: gr-infercom/python/infercom/qa_apps.py, on the source tree);
``infercom server --help`` names the real default restorer; the formatter's rules."""

from __future__ import annotations

import argparse
import re

import pytest

from infercom_apps.cli import COMMANDS, HelpFormatter, main

NON_GR_COMMANDS = [n for n, (mod, _) in COMMANDS.items() if not mod.startswith("gnuradio.")]


def help_blocks(text: str) -> dict[str, str]:
    """``--help`` output -> {first option string: its help text (lines joined)} for every option."""
    out = {}
    for block in re.split(r"\n(?=  -)", text.split("options:", 1)[1]):
        block = block.strip()
        if block.startswith("-"):
            out[block.split()[0].rstrip(",")] = " ".join(block.split())
    return out


def _help(name: str, capsys) -> str:
    with pytest.raises(SystemExit) as ex:
        main([name, "--help"])
    assert ex.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", NON_GR_COMMANDS)
def test_every_option_shows_its_default(name, capsys):
    import importlib

    text = _help(name, capsys)
    p = argparse.ArgumentParser()
    importlib.import_module(COMMANDS[name][0]).add_arguments(p)
    required = {a.option_strings[0] for a in p._actions if a.required and a.option_strings}
    blocks = help_blocks(text)
    assert len(blocks) == len([a for a in p._actions if a.option_strings])       # every option parsed
    missing = [o for o, b in blocks.items() if o != "-h" and o not in required and "default" not in b]
    assert not missing, f"infercom {name}: options whose --help shows no default: {missing}"


def test_server_help_names_the_real_default_restorer(capsys):
    from receiver_server.restorers import DEFAULT_RESTORER

    blocks = help_blocks(_help("server", capsys))
    assert f"default {DEFAULT_RESTORER}" in blocks["--restorer"].replace("- ", "-")
    assert {"--curve-secret", "--curve-allow", "--curve-server-key", "--curve-key"} <= set(blocks)


def test_help_formatter_rules():
    p = argparse.ArgumentParser(prog="x", formatter_class=HelpFormatter)
    p.add_argument("--n", type=int, default=3, help="count")
    p.add_argument("--m", type=int, default=5)                                 # no help text
    p.add_argument("--said", default=8, help="planes (default 8)")             # already says it
    p.add_argument("--flag", action="store_true", help="do it")
    p.add_argument("--opt", default=None, help="an address")                   # None: the text must say
    p.add_argument("--req", required=True, help="needed")
    blocks = help_blocks(p.format_help())
    assert blocks["--n"].endswith("count (default: 3)")
    assert blocks["--m"].endswith("(default: 5)")
    assert blocks["--said"].count("default") == 1
    assert blocks["--flag"].endswith("do it (default: off)")
    assert "default" not in blocks["--opt"] and "default" not in blocks["--req"]
