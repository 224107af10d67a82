#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Build and install the gr-infercom OOT module into the project's venv (idempotent, a few seconds):
#   python blocks -> .venv/lib/python3.X/site-packages/gnuradio/infercom/   (from gnuradio import infercom)
#   GRC yml       -> .venv/share/gnuradio/grc/blocks/                       (export GRC_BLOCKS_PATH=that dir)
#   hw_configs    -> .venv/share/gr-infercom/hw_configs/                    (--hw b210 from any directory)
# Called by scripts/setup.sh and by `make` whenever the OOT sources change.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-$ROOT/.venv}
PY=$VENV/bin/python
BUILD=${BUILD:-$ROOT/build}
log() { printf '\033[1m[install_oot]\033[0m %s\n' "$*"; }

[ -x "$PY" ] || { echo "install_oot.sh: no venv at $VENV (run scripts/setup.sh first)" >&2; exit 1; }
# The venv's own site-packages, relative to its prefix (lib/python3.11/site-packages).
PYDIR=$("$PY" -c "import os, sysconfig; print(os.path.relpath(sysconfig.get_path('platlib'), sysconfig.get_config_var('base')))")
GRCDIR=share/gnuradio/grc/blocks
HWDIR=share/gr-infercom/hw_configs       # = INFERCOM_HW_CONFIGS_DIR in gr-infercom/CMakeLists.txt

# Configure only when needed (first run, or the install prefix changed); cmake re-globs sources itself.
if [ ! -f "$BUILD/CMakeCache.txt" ] || ! grep -q "^CMAKE_INSTALL_PREFIX:PATH=$VENV\$" "$BUILD/CMakeCache.txt"; then
  log "configuring into $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_INSTALL_PREFIX="$VENV" -DGR_PYTHON_DIR="$PYDIR" \
        -DGRC_BLOCKS_DIR="$GRCDIR" -DINFERCOM_PYTHON="$PY" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD" -j 2 >/dev/null
cmake --install "$BUILD" >/dev/null

# Remove installed files whose sources are gone (a renamed block must not linger in the venv).
"$PY" - "$ROOT" "$VENV/$PYDIR/gnuradio/infercom" "$VENV/$GRCDIR" "$VENV/$HWDIR" <<'PYEOF'
import sys
from pathlib import Path
root, pkg, grc, hw = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
src = root / "gr-infercom" / "python" / "infercom"
for sub in ("", "apps"):
    for f in (pkg / sub).glob("*.py"):
        if not (src / sub / f.name).exists() or f.name.startswith("qa_"):
            f.unlink()
for f in grc.glob("infercom_*.block.yml"):
    if not (root / "gr-infercom" / "grc" / f.name).exists():
        f.unlink()
for f in hw.glob("*.yaml"):
    if not (root / "hw_configs" / f.name).exists():
        f.unlink()
PYEOF

"$PY" -c "from gnuradio import infercom" || { echo "install_oot.sh: gnuradio.infercom does not import" >&2; exit 1; }
log "installed gnuradio.infercom into $VENV/$PYDIR; GRC blocks in $VENV/$GRCDIR; hw configs in $VENV/$HWDIR"
log "for GNU Radio Companion: export GRC_BLOCKS_PATH=$VENV/$GRCDIR"
