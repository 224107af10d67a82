# SPDX-License-Identifier: GPL-3.0-or-later
"""The layer rule (docs/internals.md §2, DESIGN §2): ``infercom/``, the core, imports no GNU Radio and no torch
and names no layer above it (``receiver_server``, ``infercom_apps``), not even lazily.

Every core module (``infercom`` and its subpackages ``infercom.nr``, ``infercom.sync``, walked from the source
tree) is imported in a fresh interpreter in which ``gnuradio``, ``torch``, ``receiver_server`` and
``infercom_apps`` are unimportable, and its source is read for an ``import`` of one of them (at any depth, also
inside a function) or a module path naming one (``"gnuradio.infercom.apps.tx"``, ``"receiver_server.cli:X"``: a
lazy ``importlib.import_module`` target). Dispatchers that name every layer belong to ``infercom_apps``.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "infercom"
#: the layers above the core, and the heavy dependencies it must do without
BLOCKED = ("gnuradio", "torch", "receiver_server", "infercom_apps")
MODULE_PATH = re.compile(r"^(%s)(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*)?$" % "|".join(BLOCKED))


def core_modules(path: Path = CORE, prefix: str = "infercom") -> list[str]:
    """Dotted names of the core package, its modules and (recursively) its subpackages, from the source tree
    (nothing is imported to find them)."""
    names = [prefix]
    for info in pkgutil.iter_modules([str(path)]):
        if info.ispkg:
            names += core_modules(path / info.name, f"{prefix}.{info.name}")
        else:
            names.append(f"{prefix}.{info.name}")
    return names


def source_file(name: str) -> Path:
    p = ROOT.joinpath(*name.split("."))
    return p / "__init__.py" if p.is_dir() else p.with_suffix(".py")


MODULES = core_modules()

#: run in a fresh interpreter: a meta-path finder refuses the blocked packages, then every module is imported
IMPORT_ALL = r"""
import importlib, importlib.abc, json, sys
BLOCKED = tuple(sys.argv[1].split(","))

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"{name} is unimportable in this test (a layer above the core or a heavy dependency)")
        return None

for n in [n for n in sys.modules if n.partition(".")[0] in BLOCKED]:
    del sys.modules[n]
sys.meta_path.insert(0, Refuse())
sys.path.insert(0, sys.argv[2])
result = {}
for name in sys.argv[3].split(","):
    try:
        importlib.import_module(name)
        result[name] = None
    except BaseException as exc:  # noqa: BLE001 - report every failure, keep going
        result[name] = f"{type(exc).__name__}: {exc}"
leaked = sorted(n for n in sys.modules if n.partition(".")[0] in BLOCKED)
print(json.dumps({"imports": result, "leaked": leaked}))
"""


@pytest.fixture(scope="module")
def imported() -> dict:
    proc = subprocess.run([sys.executable, "-c", IMPORT_ALL, ",".join(BLOCKED), str(ROOT), ",".join(MODULES)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_walk_finds_the_subpackages():
    assert {"infercom", "infercom.link", "infercom.nr", "infercom.nr.ldpc", "infercom.sync",
            "infercom.sync.receiver"} <= set(MODULES)


def test_the_blocker_blocks():
    code = IMPORT_ALL.replace("importlib.import_module(name)", "__import__(name)")
    proc = subprocess.run([sys.executable, "-c", code, ",".join(BLOCKED), str(ROOT), "gnuradio,torch,json"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    res = json.loads(proc.stdout.strip().splitlines()[-1])["imports"]
    assert res["json"] is None and "unimportable" in res["gnuradio"] and "unimportable" in res["torch"]


@pytest.mark.parametrize("name", MODULES)
def test_core_module_imports_without_gnuradio_torch_or_upper_layers(imported, name):
    assert imported["imports"][name] is None, f"{name}: {imported['imports'][name]}"


def test_no_upper_layer_module_was_loaded(imported):
    assert imported["leaked"] == []


@pytest.mark.parametrize("name", MODULES)
def test_core_module_names_no_upper_layer(name):
    """Also lazily: an import inside a function, or a "module:attr" string handed to importlib, is a dependency
    on that layer all the same (it fails where the layer is absent, and it couples the core to it)."""
    path = source_file(name)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names
                      if a.name.partition(".")[0] in BLOCKED]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.partition(".")[0] in BLOCKED:
            found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_PATH.match(node.value):
            found.append(f"line {node.lineno}: module path {node.value!r}")
    assert not found, f"{path.relative_to(ROOT)} reaches above the core:\n  " + "\n  ".join(found)
