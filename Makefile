# SPDX-License-Identifier: GPL-3.0-or-later
# make setup | make demo | make test | make bench     (see README.md)
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done
OOT_STAMP := $(VENV)/.oot-installed
OOT_SOURCES := $(shell find gr-infercom hw_configs CMakeLists.txt -type f -not -path '*/__pycache__/*' 2>/dev/null)
export QT_QPA_PLATFORM ?= offscreen
export PYTHONUNBUFFERED := 1

.PHONY: experiments setup test test-fast demo bench clean oot

setup:
	bash scripts/setup.sh

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

# Re-install the OOT module whenever its sources change (python blocks, GRC yml and hw_configs are copied,
# not linked).
$(OOT_STAMP): $(STAMP) $(OOT_SOURCES)
	@if [ -f CMakeLists.txt ]; then bash scripts/install_oot.sh; fi
	@touch $@

oot: $(OOT_STAMP)

test: $(OOT_STAMP)
	$(PY) -m pytest -q

test-fast: $(OOT_STAMP)
	$(PY) -m pytest -q -m "not slow"

demo: $(OOT_STAMP)
	$(VENV)/bin/infercom demo

bench: $(OOT_STAMP)
	$(VENV)/bin/infercom bench

# docs/results.md: every experiment on kodak24, the three headline ones also on the held-out second folder
# (resumable: rerun after an interruption and finished points are kept)
DATASETS ?= ../shared/datasets
SECOND ?= $(DATASETS)/bsds500/test
SECOND_N ?= 50
experiments: $(OOT_STAMP)
	for e in qoe-vs-snr required-snr retransmissions tx-complexity error-distribution power-allocation; do \
	  $(VENV)/bin/infercom experiment $$e --images $(DATASETS)/kodak24 --out out/results/kodak24 --resume || exit 1; done
	for e in qoe-vs-snr required-snr retransmissions; do \
	  $(VENV)/bin/infercom experiment $$e --images $(SECOND) --max-images $(SECOND_N) --out out/results/second --resume || exit 1; done

clean:
	rm -rf build out .pytest_cache
