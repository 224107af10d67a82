# SPDX-License-Identifier: GPL-3.0-or-later
"""GRC integration: every gr-infercom block yml loads and validates in GNU Radio Companion's platform, and
``grcc`` compiles every flowgraph in grc/ (headless: QT_QPA_PLATFORM=offscreen).

Both use the *source tree*: the yml from gr-infercom/grc and ``gnuradio.infercom`` from gr-infercom/python
(the same as the qa tests; see gr-infercom/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BLOCK_DIR = REPO / "gr-infercom" / "grc"
OOT_SRC = REPO / "gr-infercom" / "python"
GRC_FILES = sorted((REPO / "grc").glob("*.grc"))
SYSTEM_BLOCKS = Path("/usr/share/gnuradio/grc/blocks")

pytestmark = pytest.mark.gnuradio

grc_core = pytest.importorskip("gnuradio.grc.core.platform")


def _use_source_tree():
    import gnuradio

    if str(OOT_SRC) not in list(gnuradio.__path__):
        gnuradio.__path__.insert(0, str(OOT_SRC))


@pytest.fixture(scope="module")
def platform():
    from gnuradio import gr
    from gnuradio.grc.core.platform import Platform

    _use_source_tree()
    p = Platform(name="test", prefs=gr.prefs(), version=gr.version(),
                 version_parts=(gr.major_version(), gr.api_version(), gr.minor_version()))
    p.build_library([str(SYSTEM_BLOCKS), str(BLOCK_DIR)])
    return p


def _block_files():
    return sorted(BLOCK_DIR.glob("*.block.yml"))


def test_every_block_has_a_yml_and_vice_versa():
    from importlib import import_module

    _use_source_tree()
    infercom_oot = import_module("gnuradio.infercom")
    ids = {f.name.removesuffix(".block.yml") for f in _block_files()}
    assert ids == {f"infercom_{b}" for b in infercom_oot.BLOCKS}
    for b in infercom_oot.BLOCKS:
        assert (OOT_SRC / "infercom" / f"{b}.py").is_file()      # file name = class name = block name
        assert (OOT_SRC / "infercom" / f"qa_{b}.py").is_file()   # every block has a qa test


@pytest.mark.parametrize("path", _block_files(), ids=lambda p: p.name)
def test_block_yml_loads_and_validates(platform, path):
    from gnuradio.grc.core.schema_checker import BLOCK_SCHEME, Validator

    data = yaml.safe_load(path.read_text())
    checker = Validator(BLOCK_SCHEME)
    assert checker.run(data), checker.messages
    assert not checker.messages, checker.messages
    assert data["category"] == "[InferCom]"
    assert len(data.get("documentation", "")) > 200
    for p in data.get("parameters", []):
        assert p.get("label"), f"parameter {p['id']} needs a label"
    block_id = data["id"]
    assert block_id in platform.blocks
    fg = platform.make_flow_graph()
    blk = fg.new_block(block_id)
    blk.params["id"].set_value("blk0")
    if block_id == "infercom_tx_controller":   # needs an existing image folder to instantiate
        blk.params["images"].set_value(repr(str(REPO / "tests")))
    fg.rewrite()
    fg.validate()
    errors = [e for e in blk.get_error_messages() if "not connected" not in e and "Port is not" not in e]
    assert not errors, errors


def test_grcc_compiles_every_flowgraph(tmp_path):
    assert GRC_FILES, "grc/ holds no flowgraphs"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", GRC_BLOCKS_PATH=str(BLOCK_DIR))
    code = ("import sys, gnuradio; gnuradio.__path__.insert(0, sys.argv[1]); "
            "from gnuradio.grc.compiler import main, argument_parser; "
            "main(argument_parser().parse_args(sys.argv[2:]))")
    proc = subprocess.run([sys.executable, "-c", code, str(OOT_SRC), "-o", str(tmp_path),
                           *map(str, GRC_FILES)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for f in GRC_FILES:
        data = yaml.safe_load(f.read_text())
        out = tmp_path / f"{data['options']['parameters']['id']}.py"
        assert out.is_file(), f"{f.name}: nothing generated"
        compile(out.read_text(), str(out), "exec")
