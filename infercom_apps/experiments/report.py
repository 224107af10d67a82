# SPDX-License-Identifier: GPL-3.0-or-later
"""Aggregation, figures and the markdown summary of an experiment's rows.

:func:`group_means` averages rows per group; :func:`line_figure` draws one metric against Es/N0 (dB) for each
system, the legend naming each system's channel uses per pixel; :func:`rate_figure` draws a per-rate result
with the **two x-axes conventions** of the papers' comparisons side by side: the compression rate each paper
states, and the channel uses per pixel actually spent (a system that spends more bandwidth sits further
right). :func:`write_table` writes CSV; :func:`markdown_table` renders rows for ``summary.md``.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import numpy as np

from .runner import format_cell

__all__ = ["group_means", "write_table", "markdown_table", "line_figure", "rate_figure", "monotone"]


def group_means(rows: list[dict], by: tuple[str, ...], fields: Iterable[str]) -> list[dict]:
    """One row per distinct value of ``by`` (sorted), with ``n`` and the mean of every
    field in ``fields`` over the finite values (booleans count as 0/1; None where none is finite)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in by)].append(r)
    out = []
    for key in sorted(groups, key=lambda k: tuple((str(type(v)), v) for v in k)):
        rs = groups[key]
        row = dict(zip(by, key))
        row["n"] = len(rs)
        for f in fields:
            vals = [float(r[f]) for r in rs if isinstance(r.get(f), (int, float, bool)) and r[f] is not None
                    and math.isfinite(float(r[f]))]
            row[f] = float(np.mean(vals)) if vals else None
        out.append(row)
    return out


def write_table(path: Path, rows: list[dict]) -> None:
    """Rows as CSV (columns in first-seen order; values as :func:`runner.format_cell`)."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: format_cell(r.get(k)) for k in cols})


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isinf(v):
            return "not met" if v > 0 else "-inf"
        if abs(v) >= 1000:
            return f"{v:.4g}"
        text = f"{v:.{digits}f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return str(v)


def markdown_table(rows: list[dict], cols: list[str], heads: list[str] | None = None, digits: int = 3) -> str:
    heads = heads or cols
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c), digits) for c in cols) + " |")
    return "\n".join(lines)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def line_figure(path: Path, rows: list[dict], x: str, y: str, series: str, xlabel: str, ylabel: str,
                title: str, label_of=None, logy: bool = False) -> None:
    """``y`` against ``x`` for each value of ``series`` (mean rows from :func:`group_means`); ``label_of``:
    series value -> legend text (e.g. with the system's channel uses per pixel)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for s in sorted({r[series] for r in rows}, key=str):
        pts = sorted((r[x], r[y]) for r in rows if r[series] == s and r.get(y) is not None)
        if not pts:
            continue
        xs, ys = zip(*pts)
        if logy:
            ys = [max(v, 1e-7) for v in ys]
        ax.plot(xs, ys, marker="o", ms=3.5, label=label_of(s) if label_of else str(s))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def rate_figure(path: Path, rows: list[dict], y: str, series: str, ylabel: str, title: str,
                bound: tuple[str, str, str] | None = None) -> None:
    """``y`` per system against the papers' compression rate (left, log axis) and against the channel uses per
    pixel actually spent (right). ``rows`` carry ``rate_value`` and ``cu_per_pixel``; infinite ``y`` (not met
    in the range) is left out of the line. ``bound = (key, marker, note)``: rows whose ``key`` is true are a
    bound, not a value (e.g. met at the grid's edge), drawn as an open ``marker`` and explained by ``note``."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    any_bound = False
    for ax, x, xlabel in ((axes[0], "rate_value", "compression rate (the papers' convention, log scale)"),
                          (axes[1], "cu_per_pixel", "channel uses per pixel (complex symbols / (H x W))")):
        for s in sorted({r[series] for r in rows}, key=str):
            pts = sorted((r[x], r[y], bool(bound and r.get(bound[0]))) for r in rows if r[series] == s
                         and r.get(y) is not None and math.isfinite(r[y]) and r.get(x))
            if pts:
                xs, ys, _ = zip(*pts)
                (line,) = ax.plot(xs, ys, marker="o", ms=4, label=str(s))
                bx = [(a, b) for a, b, is_bound in pts if is_bound]
                if bx:
                    any_bound = True
                    ax.plot(*zip(*bx), linestyle="none", marker=bound[1], ms=10, mfc="none", color=line.get_color())
        ax.set_xscale("log")
        ax.set_xlabel(xlabel, fontsize=9)
        ax.grid(True, alpha=0.3, which="both")
    axes[0].set_ylabel(ylabel)
    axes[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if any_bound:
        fig.subplots_adjust(bottom=0.2)
        fig.text(0.5, 0.01, bound[2], ha="center", fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def monotone(values: list[float | None], decreasing: bool, tol: float = 0.0) -> bool:
    """Whether the finite values (in x order) never rise (``decreasing``) / never fall by more than ``tol``."""
    v = [x for x in values if x is not None and math.isfinite(x)]
    d = np.diff(v)
    return bool(np.all(d <= tol) if decreasing else np.all(d >= -tol))
