# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom bench`` (``make bench``): run every benchmark suite that can run here.

Suites (docs/internals.md §3) live in the layer they measure, or in this apps layer when they measure several
(``core`` and ``server`` set figures next to GNU Radio's C++ blocks). Each suite module defines
``run_bench(out_dir: Path) -> dict``, prints its own table and writes ``out_dir/<suite>.json`` (``--out``). A
suite whose module cannot be imported (GNU Radio, the OOT module or torch missing) is reported as *skipped*
with the reason; one that raises is reported as *failed* with the error, and the others still run. The exit
status is 1 when any selected suite failed, else 0. A summary goes to ``out_dir/index.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

#: suite name -> module that defines run_bench(out_dir)
SUITES: dict[str, str] = {
    "core": "infercom_apps.bench_vs_gnuradio",
    "gnuradio": "gnuradio.infercom.bench",
    "server": "infercom_apps.bench_server",
    "restorer": "receiver_server.restorers.infercom_restorer.bench",
    "nr": "infercom.nr.bench",
    "deepjscc": "deepjscc.bench",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suites", default=",".join(SUITES),
                   help=f"comma-separated subset of {', '.join(SUITES)} (default: all)")
    p.add_argument("--out", default="out/bench", help="output folder: <suite>.json and index.json (default out/bench)")
    p.add_argument("--quick", action="store_true",
                   help="smaller workloads (sets INFERCOM_BENCH_QUICK=1 for suites that honour it)")


def run_suites(names: list[str], out_dir: Path) -> list[dict]:
    results = []
    for name in names:
        module_path = SUITES[name]
        print(f"\n=== bench suite {name} ({module_path}) ===", flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(module_path)
            fn = getattr(module, "run_bench")
        except (ImportError, AttributeError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            print(f"skipped: {reason}")
            results.append({"suite": name, "status": "skipped", "reason": reason})
            continue
        try:
            fn(out_dir)
        except Exception as exc:  # noqa: BLE001 - one suite's failure must not hide the others
            traceback.print_exc()
            results.append({"suite": name, "status": "failed", "reason": f"{type(exc).__name__}: {exc}",
                            "seconds": time.perf_counter() - t0})
            continue
        json_path = out_dir / f"{name}.json"
        results.append({"suite": name, "status": "ok", "seconds": time.perf_counter() - t0,
                        "json": str(json_path) if json_path.is_file() else None})
    return results


def run(args: argparse.Namespace) -> int:
    names = [s.strip() for s in args.suites.split(",") if s.strip()]
    unknown = [s for s in names if s not in SUITES]
    if unknown or not names:
        print(f"infercom bench: unknown suite(s) {', '.join(unknown) or '(none given)'}; choose from "
              f"{', '.join(SUITES)}", file=sys.stderr)
        return 2
    if args.quick:
        os.environ["INFERCOM_BENCH_QUICK"] = "1"
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = run_suites(names, out_dir)
    (out_dir / "index.json").write_text(json.dumps(results, indent=2))
    print("\n=== bench summary ===")
    for r in results:
        extra = f"{r['seconds']:.1f} s, {r.get('json') or ''}" if r["status"] == "ok" else r.get("reason", "")
        print(f"{r['suite']:<10} {r['status']:<8} {extra}")
    return 1 if any(r["status"] == "failed" for r in results) else 0
