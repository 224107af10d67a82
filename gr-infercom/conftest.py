# SPDX-License-Identifier: GPL-3.0-or-later
"""pytest glue for the OOT module's qa_*.py tests: they always test the *source tree*.

``gr-infercom/python/infercom`` is a package named ``infercom``, which pytest's default import mode would load as
``infercom.qa_x`` and thereby collide with the core ``infercom`` library.  Instead:

* ``gnuradio.infercom`` is made to resolve to ``gr-infercom/python/infercom`` (the source, not a possibly stale
  installed copy in the venv), by putting that folder first on ``gnuradio.__path__``;
* each ``qa_*.py`` is imported as ``gnuradio.infercom.qa_<name>``.

The same holds under ctest, which runs ``python -m pytest <qa file>`` from the repository root.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SRC_PARENT = Path(__file__).resolve().parent / "python"


def _use_source_tree() -> None:
    import gnuradio

    src = str(SRC_PARENT)
    if src not in list(gnuradio.__path__):
        gnuradio.__path__.insert(0, src)
    mod = sys.modules.get("gnuradio.infercom")
    if mod is not None and not str(Path(mod.__file__).resolve()).startswith(src):
        # an installed copy was imported before this conftest ran: drop it so the source is used
        for name in [n for n in sys.modules if n == "gnuradio.infercom" or n.startswith("gnuradio.infercom.")]:
            del sys.modules[name]


_use_source_tree()


class _QaModule(pytest.Module):
    """A qa_*.py file imported as gnuradio.infercom.<stem> instead of by its file path."""

    def _getobj(self):
        name = f"gnuradio.infercom.{self.path.stem}"
        try:
            return importlib.import_module(name)
        except pytest.skip.Exception as exc:
            raise self.CollectError(str(exc)) from exc


def pytest_pycollect_makemodule(module_path: Path, parent):
    if module_path.name.startswith("qa_") and module_path.parent == SRC_PARENT / "infercom":
        return _QaModule.from_parent(parent, path=module_path)
    return None
