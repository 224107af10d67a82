# SPDX-License-Identifier: GPL-3.0-or-later
"""Bench suite ``core`` (``infercom bench``): the core library's numba kernels next to GNU Radio's C++ blocks.

The numba side is :mod:`infercom.bench_core` (one thread, pre-allocated buffers the size of one Kodak image at
rate 1/9). Every GNU Radio figure is a real flowgraph ``vector_source (repeat) -> head -> block(s) ->
null_sink`` run to ``N_ITEMS`` items, best of ``REPEATS`` runs, wall time (GNU Radio runs one thread per block,
so a two-block chain may use two cores). Pairs:

====================================  =====================================================================
numba kernel                          nearest GNU Radio C++ job
====================================  =====================================================================
QPSK mapper + power scaling           ``chunks_to_symbols_bc`` (QPSK) + ``multiply_const_cc``
LLR demapper                          ``constellation_soft_decoder_cf`` (QPSK)
MMSE reconstruction (8 planes)        ``transcendental`` (tanh, float) — one tanh per LLR, the MMSE core
Chase combining (one attempt added)   ``multiply_const_cc`` + ``add_cc`` (2 inputs) — MRC with fixed weights
LPF encoder 3x3                       ``fir_filter_fff`` (9 taps, decimation 9) — block mean of 9 samples
====================================  =====================================================================

:func:`gr_stream_msps` is the reusable measuring helper (the ``server`` suite uses it too). This module sits in
the apps layer because it imports GNU Radio next to the core; without GNU Radio the suite still runs the numba
side and records why the references are missing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from infercom.bench_core import N_ITEMS, REPEATS, best_time, machine, numba_kernels, simulator_time


def gnuradio_version() -> str | None:
    """GNU Radio's version string, None when it does not import (for the suites' machine records)."""
    try:
        from gnuradio import gr  # noqa: PLC0415
    except ImportError:
        return None
    return gr.version()


def gr_stream_msps(make_blocks, data: np.ndarray, n_items: int = N_ITEMS, repeats: int = REPEATS,
                   n_inputs: int = 1) -> float:
    """Throughput (M input items/s) of GNU Radio block(s) in a real flowgraph.

    ``vector_source(data, repeat=True) -> head(n_items) -> blocks[0] -> ... -> blocks[-1] -> null_sink``;
    ``data`` is a numpy array whose dtype picks the source (uint8 -> ``vector_source_b``, float32 ->
    ``_f``, complex64 -> ``_c``). ``make_blocks()`` returns a fresh list of blocks for each run (a flowgraph
    is built per run; references are kept so nothing is garbage-collected while it runs). With
    ``n_inputs > 1`` the head's output is fanned out to that many inputs of ``blocks[0]`` (e.g. ``add_cc``).
    The null sink's item size comes from the last block's output signature. Best of ``repeats`` runs.
    """
    from gnuradio import blocks as grb  # noqa: PLC0415
    from gnuradio import gr  # noqa: PLC0415

    kinds = {np.dtype(np.uint8): (grb.vector_source_b, gr.sizeof_char),
             np.dtype(np.float32): (grb.vector_source_f, gr.sizeof_float),
             np.dtype(np.complex64): (grb.vector_source_c, gr.sizeof_gr_complex)}
    try:
        src_cls, in_size = kinds[np.asarray(data).dtype]
    except KeyError:
        raise ValueError(f"data dtype must be uint8, float32 or complex64, got {np.asarray(data).dtype}") from None

    def once():
        tb = gr.top_block()
        src = src_cls(data, True)
        head = grb.head(in_size, int(n_items))
        chain = list(make_blocks())
        tb.connect(src, head)
        for k in range(n_inputs):
            tb.connect(head, (chain[0], k))
        for a, b in zip(chain[:-1], chain[1:]):
            tb.connect(a, b)
        out_size = chain[-1].output_signature().sizeof_stream_item(0)
        sink = grb.null_sink(out_size)
        tb.connect(chain[-1], sink)
        tb._keep = (src, head, chain, sink)
        tb.run()

    return n_items / best_time(once, repeats) / 1e6


def gnuradio_references(n_items: int = N_ITEMS, repeats: int = REPEATS) -> dict:
    """M items/s of the GNU Radio reference chains listed in the module docstring."""
    from gnuradio import blocks as grb  # noqa: PLC0415
    from gnuradio import digital, filter as grf  # noqa: PLC0415

    rng = np.random.default_rng(1)
    n = 1 << 16
    chunks = rng.integers(0, 4, n, dtype=np.uint8)
    cplx = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) * 0.7).astype(np.complex64)
    flt = rng.standard_normal(n).astype(np.float32)
    qpsk_pts = digital.constellation_qpsk().base()
    pts = [complex(p) / abs(complex(p)) for p in qpsk_pts.points()]
    out = {}
    out["chunks_to_symbols_bc+multiply_const_cc"] = gr_stream_msps(
        lambda: [digital.chunks_to_symbols_bc(pts, 1), grb.multiply_const_cc(0.8)], chunks, n_items, repeats)
    out["constellation_soft_decoder_cf"] = gr_stream_msps(
        lambda: [digital.constellation_soft_decoder_cf(qpsk_pts)], cplx, n_items, repeats)
    out["transcendental(tanh, float)"] = gr_stream_msps(
        lambda: [grb.transcendental("tanh", "float")], flt, n_items, repeats)
    out["add_cc(2 inputs)+multiply_const_cc"] = gr_stream_msps(
        lambda: [grb.add_cc(), grb.multiply_const_cc(0.5)], cplx, n_items, repeats, n_inputs=2)
    out["fir_filter_fff(9 taps, decim 9)"] = gr_stream_msps(
        lambda: [grf.fir_filter_fff(9, [1.0 / 9] * 9)], flt, n_items, repeats)
    return out



PAIRS = [
    ("qpsk_mapper+power (Msym/s)", "chunks_to_symbols_bc+multiply_const_cc", 1.0),
    ("qpsk_mapper+power+interleave (Msym/s)", "chunks_to_symbols_bc+multiply_const_cc", None),
    ("llr_demapper (Msym/s)", "constellation_soft_decoder_cf", 10.0),
    ("llr_demapper+deinterleave (Msym/s)", "constellation_soft_decoder_cf", None),
    ("mmse_reconstruction (M LLR/s)", "transcendental(tanh, float)", None),
    ("chase_combining (Msym/s per attempt)", "add_cc(2 inputs)+multiply_const_cc", None),
    ("lpf_encoder_3x3 (M input values/s)", "fir_filter_fff(9 taps, decim 9)", None),
]


def run_bench(out_dir: Path) -> dict:
    """Run the core suite, print a table, write ``out_dir/core.json``; return the record."""
    info = machine() | {"gnuradio": gnuradio_version()}   # load average before this suite's own load
    quick = os.environ.get("INFERCOM_BENCH_QUICK") == "1"
    n_items = N_ITEMS // 10 if quick else N_ITEMS
    kern = numba_kernels(n_items)
    try:
        refs = gnuradio_references(n_items)
        gr_error = None
    except ImportError as exc:
        refs, gr_error = {}, f"GNU Radio not importable: {exc}"
    sim = simulator_time()
    rows = []
    for k_name, r_name, target in PAIRS:
        ref = refs.get(r_name)
        ratio = kern[k_name] / ref if ref else None
        rows.append({"kernel": k_name, "numba_mitems_s": kern[k_name], "gnuradio_block": r_name,
                     "gnuradio_mitems_s": ref, "ratio": ratio, "target_ratio": target,
                     "pass": None if ratio is None or target is None else bool(ratio >= target)})
    record = {"suite": "core", "machine": info, "n_items": n_items, "rows": rows,
              "simulator_one_kodak_rate_1_9": {**sim, "target_s": 0.2, "pass": sim["best_s"] < 0.2},
              "gnuradio_error": gr_error,
              "notes": "numba: one thread, pre-allocated buffers; GNU Radio: vector_source(repeat)->head->"
                       "block(s)->null_sink flowgraph, one thread per block; best of repeats; wall time"}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "core.json").write_text(json.dumps(record, indent=2))
    m = record["machine"]
    print(f"core suite ({m['cpu']}, {m['cores']} cores, load {m['load_average_1min']:.1f} at start; "
          f"{n_items} items)")
    print(f"{'numba kernel (1 thread)':<40} {'M/s':>8}  {'GNU Radio reference':<40} {'M/s':>8} {'ratio':>7}"
          f" {'target':>6}")
    for r in rows:
        ref = "-" if r["gnuradio_mitems_s"] is None else f"{r['gnuradio_mitems_s']:8.1f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:6.2f}x"
        tgt = "" if r["target_ratio"] is None else (f">={r['target_ratio']:g}x " + ("ok" if r["pass"] else "MISS"))
        print(f"{r['kernel']:<40} {r['numba_mitems_s']:8.1f}  {r['gnuradio_block']:<40} {ref:>8} {ratio:>7} {tgt}")
    s = record["simulator_one_kodak_rate_1_9"]
    print(f"simulator, one Kodak image at rate 1/9 TX->channel->RX: best {s['best_s'] * 1e3:.1f} ms, median "
          f"{s['median_s'] * 1e3:.1f} ms (target < 200 ms: {'ok' if s['pass'] else 'MISS'}); "
          f"uncached interleaver permutation {s['permutation_uncached_s'] * 1e3:.1f} ms")
    if gr_error:
        print(f"GNU Radio references skipped: {gr_error}")
    return record
