# SPDX-License-Identifier: GPL-3.0-or-later
"""qa for scripts/install_oot.sh: installs every block module, yml and shipped hw_configs YAML into a prefix,
where the installed hwconfig finds ``b210`` from any working directory; is idempotent (a second run is quick
and changes nothing), and removes files whose sources are gone."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "install_oot.sh"


@pytest.mark.skipif(shutil.which("cmake") is None or not SCRIPT.is_file(), reason="needs cmake and the script")
def test_install_into_a_scratch_prefix(tmp_path):
    venv = tmp_path / "venv"                    # a bare venv sharing the project venv's interpreter
    (venv / "bin").mkdir(parents=True)
    real = Path(sys.prefix)
    if not (real / "pyvenv.cfg").is_file():
        pytest.skip("not running in a venv")
    shutil.copy(real / "pyvenv.cfg", venv / "pyvenv.cfg")
    (venv / "bin" / "python").symlink_to(Path(sys.executable).resolve())
    env = dict(os.environ, VENV=str(venv), BUILD=str(tmp_path / "build"))
    t0 = time.monotonic()
    first = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    pkg = next(venv.glob("lib/python3*/site-packages/gnuradio/infercom"))
    src = REPO / "gr-infercom" / "python" / "infercom"
    blocks = {p.name for p in src.glob("*.py") if not p.name.startswith("qa_")}
    assert blocks <= {p.name for p in pkg.glob("*.py")}
    assert (pkg / "apps" / "loopback.py").is_file() and not list(pkg.glob("qa_*.py"))
    ymls = {p.name for p in (REPO / "gr-infercom" / "grc").glob("*.block.yml")}
    assert ymls == {p.name for p in (venv / "share/gnuradio/grc/blocks").glob("*.yml")}
    hw_dir = venv / "share/gr-infercom/hw_configs"
    assert {p.name for p in (REPO / "hw_configs").glob("*.yaml")} == {p.name for p in hw_dir.glob("*.yaml")}
    # the *installed* module (not the source tree) resolves a bare name from a folder outside the repository
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import gnuradio.infercom.hwconfig as h; assert h.__file__.startswith(%r), h.__file__; "
            "print(h.load_hw_config('b210')['path'])" % str(venv))
    env_run = {k: v for k, v in env.items() if k != "INFERCOM_HW_CONFIGS"}
    env_run["PYTHONPATH"] = str(REPO)                # the core library, as the project venv's editable install
    found = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=elsewhere, env=env_run,
                           capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()) == hw_dir / "b210.yaml"
    stale = pkg / "old_block.py"
    stale.write_text("# stale\n")
    stale_yml = venv / "share/gnuradio/grc/blocks/infercom_old_block.block.yml"
    stale_yml.write_text("id: x\n")
    stale_hw = hw_dir / "old_radio.yaml"
    stale_hw.write_text("device_args: x\n")
    before = {p: p.stat().st_mtime_ns for p in pkg.glob("*.py") if p != stale}
    t1 = time.monotonic()
    second = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert time.monotonic() - t1 < max(10.0, 0.8 * (t1 - t0))        # no reconfiguration: quick
    assert "configuring" not in second.stdout
    assert not stale.exists() and not stale_yml.exists() and not stale_hw.exists()   # removed sources do not linger
    assert before == {p: p.stat().st_mtime_ns for p in pkg.glob("*.py")}   # unchanged files untouched
