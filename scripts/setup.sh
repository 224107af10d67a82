#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# One-command, idempotent set-up on a fresh Debian 12 machine (run as root, or with sudo available):
#   Debian packages (GNU Radio 3.10, UHD, toolchain) -> .venv (--system-site-packages, numpy<2)
#   -> this project (editable, with server and test extras) -> NIQE pristine parameters
#   -> the gr-infercom OOT module and its GRC blocks, installed into the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=$VENV/bin/python
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. Debian packages -----------------------------------------------------------------------------
APT_PKGS="gnuradio gnuradio-dev python3-uhd uhd-host python3-venv python3-dev python3-pip cmake g++ make pkg-config"
missing=""
for p in $APT_PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
else
  log "Debian packages present"
fi

# 2. Virtual environment that sees the distro's GNU Radio ---------------------------------------
if [ ! -x "$PY" ]; then
  log "creating .venv (system site packages, for gnuradio)"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
"$PY" -c "from gnuradio import gr" || { echo "GNU Radio does not import in .venv" >&2; exit 1; }

# 3. Python dependencies (numpy<2: the distro's GNU Radio is built against numpy 1.24) ---------------
log "installing Python dependencies into .venv"
"$PY" -m pip install -q --upgrade "pip>=23" >/dev/null
# torch==2.13.0 is the CPU wheel that lies on these machines; any other spec pulls CUDA builds.
"$PY" -m pip install -q -e ".[server,test,ray]" "numpy<2"
"$PY" -c "import numpy, numba; assert numpy.__version__ < '2', numpy.__version__"

# 4. NIQE pristine parameters from the basicsr sdist (not vendored) ---------------------------------
NIQE=$ROOT/third_party_data/niqe_pris_params.npz
if [ ! -f "$NIQE" ]; then
  log "fetching NIQE pristine parameters (basicsr 1.4.2 sdist)"
  tmp=$(mktemp -d)
  "$PY" -m pip download -q --no-deps --no-build-isolation basicsr==1.4.2 -d "$tmp"
  mkdir -p "$(dirname "$NIQE")"
  tar -xzf "$tmp"/basicsr-1.4.2.tar.gz -C "$tmp" basicsr-1.4.2/basicsr/metrics/niqe_pris_params.npz
  cp "$tmp"/basicsr-1.4.2/basicsr/metrics/niqe_pris_params.npz "$NIQE"
  rm -rf "$tmp"
fi

# 5. The GNU Radio OOT module (python blocks + GRC yml) into the venv ----------------------------
if [ -f "$ROOT/CMakeLists.txt" ]; then
  log "building and installing gr-infercom into .venv"
  bash "$ROOT/scripts/install_oot.sh"
fi

# `source .venv/bin/activate` also points GNU Radio Companion and grcc at the installed InferCom blocks.
if ! grep -q "GRC_BLOCKS_PATH" "$VENV/bin/activate"; then
  printf '\n# gr-infercom: GRC block descriptions installed into this venv\nexport GRC_BLOCKS_PATH="%s/share/gnuradio/grc/blocks${GRC_BLOCKS_PATH:+:$GRC_BLOCKS_PATH}"\n' "$VENV" >> "$VENV/bin/activate"
fi

touch "$VENV/.setup-done"
log "done. Activate with: source .venv/bin/activate"
