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
def test_block_yml_make_calls_with_the_constructors_keywords(path):
    """Every make template calls its block with keyword arguments only, and they are exactly the block's
    constructor parameters, each bound to the yml parameter of the same id (a renamed or reordered constructor
    argument breaks here, not in a user's flowgraph)."""
    import inspect
    import re
    from importlib import import_module

    _use_source_tree()
    data = yaml.safe_load(path.read_text())
    name = path.name.removesuffix(".block.yml").removeprefix("infercom_")
    make = " ".join(data["templates"]["make"].split())
    m = re.fullmatch(rf"infercom\.{name}\( ?(.*?),? ?\)", make)
    assert m, make
    pairs = [a.strip() for a in m.group(1).split(",")]
    kws = dict(a.split("=", 1) for a in pairs)
    assert all("=" in a for a in pairs) and len(kws) == len(pairs), make
    cls = getattr(import_module("gnuradio.infercom"), name)
    params = [q for q in inspect.signature(cls.__init__).parameters if q != "self"]
    assert sorted(kws) == sorted(params)
    ids = {q["id"] for q in data.get("parameters", [])}
    for k, v in kws.items():
        assert v == f"${{{k}}}" and k in ids, (k, v)


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
    if block_id in ("infercom_tx_controller", "infercom_tx"):   # need an existing image folder to instantiate
        blk.params["images"].set_value(repr(str(REPO / "tests")))
    fg.rewrite()
    fg.validate()
    errors = [e for e in blk.get_error_messages() if "not connected" not in e and "Port is not" not in e]
    assert not errors, errors


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Every grc/*.grc compiled by grcc into a temporary folder (flowgraph id -> generated .py)."""
    out_dir = tmp_path_factory.mktemp("grcc")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", GRC_BLOCKS_PATH=str(BLOCK_DIR))
    code = ("import sys, gnuradio; gnuradio.__path__.insert(0, sys.argv[1]); "
            "from gnuradio.grc.compiler import main, argument_parser; "
            "main(argument_parser().parse_args(sys.argv[2:]))")
    proc = subprocess.run([sys.executable, "-c", code, str(OOT_SRC), "-o", str(out_dir),
                           *map(str, GRC_FILES)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = {}
    for f in GRC_FILES:
        gid = yaml.safe_load(f.read_text())["options"]["parameters"]["id"]
        out[gid] = out_dir / f"{gid}.py"
    return out


def test_committed_flowgraphs_are_what_gen_flowgraphs_writes(tmp_path):
    """grc/*.grc are generated by gr-infercom/tools/gen_flowgraphs.py: regenerated into a temporary folder they
    must be byte for byte the committed ones (edit the script, re-run it, commit both)."""
    script = REPO / "gr-infercom" / "tools" / "gen_flowgraphs.py"
    proc = subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    fresh = sorted(tmp_path.glob("*.grc"))
    assert [f.name for f in fresh] == [f.name for f in GRC_FILES], "grc/ and gen_flowgraphs.py list other files"
    import difflib

    for new in fresh:
        old = REPO / "grc" / new.name
        if new.read_bytes() != old.read_bytes():
            diff = "".join(difflib.unified_diff(old.read_text().splitlines(True), new.read_text().splitlines(True),
                                                f"grc/{new.name}", f"regenerated/{new.name}"))
            pytest.fail(f"grc/{new.name} differs from gen_flowgraphs.py's output:\n{diff[:4000]}")


def test_flowgraphs_use_the_hier_blocks():
    """Every transmitter and receiver in grc/ is the infercom_tx / infercom_rx hier block (the chain is wired
    once, in gnuradio.infercom.tx / rx, which the apps use too), never the blocks wired again."""
    for f in GRC_FILES:
        ids = [b["id"] for b in yaml.safe_load(f.read_text())["blocks"]]
        assert ("infercom_tx" in ids) or ("infercom_rx" in ids), f.name
        for inner in ("infercom_tx_controller", "infercom_frame_modulator", "infercom_burst_sync",
                      "infercom_frame_demod", "infercom_chase_combiner"):
            assert inner not in ids, f"{f.name} wires {inner} itself"


def test_grcc_compiles_every_flowgraph(generated):
    assert GRC_FILES, "grc/ holds no flowgraphs"
    for gid, path in generated.items():
        assert path.is_file(), f"{gid}: nothing generated"
        compile(path.read_text(), str(path), "exec")


def test_generated_headless_loopback_runs_end_to_end(generated, tmp_path):
    """The grcc output of grc/loopback_headless.grc, run as generated: frames go through the modulator's RRC,
    the channel, sync, demod and Chase into the soft-symbol file, and the soft symbols are the payload."""
    import importlib.util
    import time

    import numpy as np
    from PIL import Image

    from infercom.link import LinkConfig, encode_image

    _use_source_tree()
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (96, 288, 3), dtype=np.uint8)   # 36 864 symbols: a full 2**15 frame + 1
    Image.fromarray(img).save(tmp_path / "img.png")
    soft = tmp_path / "soft.c64"
    spec = importlib.util.spec_from_file_location("loopback_headless_generated", generated["loopback_headless"])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # no server listens on this port: the soft symbols are queued by ZeroMQ, the TX times out and resends
    tb = mod.loopback_headless(images=str(tmp_path / "img.png"), design_snr_db=10, frame_len_log2=15,
                               timeout_s=30.0, gap_min=64, gap_max=256, seed=3, snr_db=10.0, cfo=0.002,
                               timing=0.3, server="tcp://127.0.0.1:5", soft_out=str(soft))
    x, _ = encode_image(img, LinkConfig(3, 3, 8, "importance", 10))
    tb.start()
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60 and (not soft.exists() or soft.stat().st_size < x.size * 8):
            time.sleep(0.1)
    finally:
        tb.stop()
        tb.wait()
    y = np.fromfile(soft, np.complex64)
    assert y.size >= x.size, f"{y.size} soft symbols written, {x.size} sent"
    y = y[: x.size]
    assert np.all(np.isfinite(y))
    # the Chase output of the first attempt, frame after frame, is the payload plus noise (Es/N0 10 dB)
    agree = np.mean((np.sign(y.real) == np.sign(x.real)) & (np.sign(y.imag) == np.sign(x.imag)))
    assert agree > 0.9, agree
