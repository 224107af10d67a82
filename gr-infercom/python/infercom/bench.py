# SPDX-License-Identifier: GPL-3.0-or-later
"""Throughput of the gr-infercom blocks and chains, next to GNU Radio C++ blocks measured in the same run.

``run_bench(out_dir) -> dict`` (called by ``infercom bench``) writes ``out_dir/gnuradio.json`` and prints a
table.  Every figure is items (samples or symbols, as stated) per second of wall time through a real
flowgraph (``top_block.run()``), best of ``repeats`` runs; the InferCom figures are also given as ratios to
the GNU Radio references.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pmt
from gnuradio import blocks, digital, filter, gr

REPEATS = 3


def _machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "gnuradio": gr.version()}


def _best(fn, repeats=REPEATS) -> float:
    """Best (shortest) wall time of ``fn()`` over ``repeats`` runs, seconds."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def stream_msps(make_chain, data: np.ndarray, n_items: int, repeats=REPEATS) -> float:
    """Msps of a stream chain fed with ``data`` (repeated) until ``n_items`` input items went through.

    ``make_chain()`` returns (list of blocks to connect in series, the block whose output goes to a null sink)."""
    def once():
        tb = gr.top_block()
        src = blocks.vector_source_c(data.tolist() if data.size < 1000 else data, True)
        head = blocks.head(gr.sizeof_gr_complex, n_items)
        chain = make_chain()
        tb.connect(src, head, *chain)
        out = chain[-1]
        sig = out.output_signature() if hasattr(out, "output_signature") else None
        itemsize = sig.sizeof_stream_item(0) if sig is not None and sig.max_streams() != 0 else 0
        if itemsize:
            tb.connect(out, blocks.null_sink(itemsize))
        tb._keep = (src, head, chain)
        tb.run()

    return n_items / _best(once, repeats) / 1e6


def gnuradio_references(n_items: int = 4_000_000) -> dict:
    """GNU Radio's C++ blocks on noisy QPSK at 2 samples per symbol: Msps of input samples."""
    rng = np.random.default_rng(1)
    data = ((rng.standard_normal(1 << 16) + 1j * rng.standard_normal(1 << 16)) * 0.7).astype(np.complex64)
    pre = np.exp(2j * np.pi * rng.random(64)).astype(np.complex64)
    qpsk = digital.constellation_qpsk().base()
    refs = {
        "corr_est_cc (64-symbol preamble, sps 2)":
            lambda: [digital.corr_est_cc(pre.tolist(), 2, 0, 0.9, digital.THRESHOLD_ABSOLUTE)],
        "costas_loop_cc (order 4)": lambda: [digital.costas_loop_cc(0.0628, 4, False)],
        "constellation_soft_decoder_cf (QPSK)": lambda: [digital.constellation_soft_decoder_cf(qpsk)],
        "fir_filter_ccf (RRC matched filter, 33 taps)":
            lambda: [filter.fir_filter_ccf(1, np.ones(33, np.float32).tolist())],
    }
    return {name: stream_msps(make, data, n_items) for name, make in refs.items()}
