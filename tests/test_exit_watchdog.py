# SPDX-License-Identifier: GPL-3.0-or-later
"""The suite's exit watchdog (conftest.py): a session whose exit hangs ends with status 1 and every thread's
stack, within the grace time, instead of running into CI's limit; one that exits cleanly is not touched."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(tmp_path, body: str, grace_s: float):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_probe.py").write_text(body)
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               INFERCOM_PYTEST_EXIT_GRACE_S=str(grace_s))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                           "-c", str(tmp_path / "pytest.ini"), str(tmp_path / "test_probe.py")],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    return proc, time.monotonic() - t0


def test_a_hanging_exit_is_cut_short_with_the_stacks(tmp_path):
    # a non-daemon thread that outlives the tests: the interpreter's exit waits for it (here 600 s)
    proc, wall = _run(tmp_path, "import threading, time\n\ndef test_leaves_a_thread():\n"
                                "    threading.Thread(target=time.sleep, args=(600,), name='leak').start()\n", 3)
    assert "1 passed" in proc.stdout
    assert proc.returncode == 1 and wall < 60, (proc.returncode, wall)
    assert "Timeout" in proc.stderr and "threading.py" in proc.stderr       # the stacks of the hung threads


def test_a_clean_exit_keeps_its_status(tmp_path):
    proc, wall = _run(tmp_path, "def test_ok():\n    assert True\n", 10)
    assert proc.returncode == 0 and "1 passed" in proc.stdout and "Timeout" not in proc.stderr
    proc, wall = _run(tmp_path, "def test_bad():\n    assert False\n", 10)
    assert proc.returncode == 1 and "1 failed" in proc.stdout and "Timeout" not in proc.stderr
