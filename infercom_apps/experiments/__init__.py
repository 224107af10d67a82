# SPDX-License-Identifier: GPL-3.0-or-later
"""The papers' experiments: ``infercom experiment NAME`` (docs/results.md).

Each experiment is a module with ``COLUMNS`` (its CSV row fields), ``plan(ctx) -> list[point]`` (the points in
canonical order; a point is a dict of JSON scalars), ``evaluate(point, ctx) -> row`` (run in a worker) and
``summarise(records, ctx, out_dir) -> dict`` (tables, figures, the stated numbers and the physics checks).
:mod:`.runner` executes the points (seeded from their coordinates, resumable CSV, process pool or Ray),
:mod:`.systems` holds the compared systems and the scoring every output gets alike, :mod:`.report` the
figures and the markdown summary, :mod:`.cli` the command.
"""

from __future__ import annotations

import importlib

#: experiment name -> module
EXPERIMENTS: dict[str, str] = {
    "qoe-vs-snr": "infercom_apps.experiments.qoe_vs_snr",
    "required-snr": "infercom_apps.experiments.required_snr",
    "retransmissions": "infercom_apps.experiments.retransmissions",
    "tx-complexity": "infercom_apps.experiments.tx_complexity",
    "error-distribution": "infercom_apps.experiments.error_distribution",
    "power-allocation": "infercom_apps.experiments.power_allocation",
}


def get(name: str):
    """The module of experiment ``name``; ValueError naming the choices."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name])
