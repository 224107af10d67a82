# SPDX-License-Identifier: GPL-3.0-or-later
"""docs/internals.md is the module map: every file and module it names exists, and every module of the layers
it maps is named there (a moved, renamed or new module breaks this test, not a reader's trust)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "internals.md"
#: section heading folder -> the folder its table rows are relative to
BASES = {"infercom/": REPO / "infercom", "gr-infercom/": REPO / "gr-infercom" / "python" / "infercom",
         "receiver_server/": REPO / "receiver_server", "infercom_apps/": REPO / "infercom_apps",
         "deepjscc/": REPO / "deepjscc"}
FILE = re.compile(r"`([A-Za-z0-9_./-]+\.(?:py|md|json|yml|grc|pt|sh))`")
MODULE = re.compile(r"`((?:infercom|receiver_server|infercom_apps|gnuradio\.infercom)(?:\.[a-z_0-9]+)+)")


def _sections():
    base = REPO
    for line in DOC.read_text().splitlines():
        m = re.match(r"^###\s+`([a-z_-]+/)`", line)
        if m:
            base = BASES[m.group(1)]
        elif line.startswith("## "):
            base = REPO
        yield base, line


def test_every_file_named_exists():
    missing = []
    for base, line in _sections():
        for name in FILE.findall(line):
            if name.startswith(".") or name.startswith("out/"):
                continue                   # an extension (".block.yml"), or an output a command writes
            if not any((b / name).exists() for b in (base, REPO, REPO / "docs")):
                missing.append((str(base.relative_to(REPO)), name))
    assert not missing, missing


def test_every_module_named_imports_or_exists():
    bad = []
    for _, line in _sections():
        for dotted in MODULE.findall(line):
            parts = dotted.split(".")
            if parts[0] == "gnuradio":
                path = REPO / "gr-infercom" / "python" / Path(*parts[1:])
            else:
                path = REPO / Path(*parts)
            # a module, a package, or an attribute of one (infercom.channel.floor_gain)
            ok = any(Path(f"{q}.py").exists() or (q / "__init__.py").exists()
                     for q in (path, path.parent, path.parent.parent))
            if not ok:
                bad.append(dotted)
    assert not bad, bad


def test_every_module_of_the_layers_is_on_the_map():
    text = DOC.read_text()
    absent = []
    for base in BASES.values():
        for f in base.glob("*.py"):
            if f.name in ("__init__.py", "__main__.py", "conftest.py") or f.name.startswith("qa_"):
                continue
            if f"`{f.name}`" not in text and f"`{f.stem}" not in text:
                absent.append(str(f.relative_to(REPO)))
    assert not absent, absent
