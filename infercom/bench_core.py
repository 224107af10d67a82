# SPDX-License-Identifier: GPL-3.0-or-later
"""The core library's own timings and the benchmarks' shared plumbing (numpy/numba only, like all of ``infercom``).

Every numba figure is one thread (numba kernels are single-threaded), best of several timed calls on
pre-allocated buffers the size of one Kodak image at rate 1/9 (131 328 values, 525 312 symbols), looped to
about ``N_ITEMS`` items (:func:`numba_kernels`); :func:`simulator_time` is the link-level simulator's time for
one Kodak image at rate 1/9 (TX -> AWGN channel -> RX to MMSE low-res pixels, no upsampling/restoration;
target < 0.2 s). :func:`machine`, :func:`time_kernel` and ``DATASETS`` serve every suite.

The bench suite ``core`` (``infercom bench``) sets these figures next to GNU Radio's C++ blocks measured in the
same run: :mod:`infercom_apps.bench_vs_gnuradio` (the apps layer; this module imports no GNU Radio).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

from . import chase, channel, interleave, link, qpsk, reconstruct, source
from .imageio import load_image

N_ITEMS = 10_000_000
REPEATS = 3
DATASETS = Path(os.environ.get("INFERCOM_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
KODAK = DATASETS / "kodak24" / "kodim01.png"


def machine() -> dict:
    """CPU model, core count and versions (numpy, numba), for the JSON record. A suite that measures GNU Radio
    adds its version itself (``infercom_apps.bench_vs_gnuradio.gnuradio_version``)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numba  # noqa: PLC0415

    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__,
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    return info


def best_time(fn, repeats: int) -> float:
    """Best wall time (s) of ``repeats`` calls of ``fn()``."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def time_kernel(fn, items_per_call: int, n_items: int = N_ITEMS, repeats: int = REPEATS) -> float:
    """M items/s of ``fn()`` (which processes ``items_per_call`` items), looped to ~``n_items`` items,
    best of ``repeats``; one warm-up call first (JIT compile / cache load)."""
    fn()
    loops = max(1, int(round(n_items / items_per_call)))

    def many():
        for _ in range(loops):
            fn()

    return loops * items_per_call / best_time(many, repeats) / 1e6


# --------------------------------------------------------------------------------------------- numba side
def _kodak_image() -> np.ndarray:
    if KODAK.is_file():
        return load_image(KODAK)
    rng = np.random.default_rng(0)     # no dataset: a synthetic image of the same size
    return rng.integers(0, 256, (512, 768, 3), dtype=np.uint8)


def numba_kernels(n_items: int = N_ITEMS, repeats: int = REPEATS) -> dict:
    """M items/s (one thread) of the core kernels on one Kodak image's worth of data at rate 1/9."""
    img = _kodak_image()
    cfg = link.LinkConfig()
    low = source.lpf_encode(img, 3, 3)
    v = np.ascontiguousarray(low.reshape(-1))
    amps = cfg.plane_amplitudes()
    amps64 = amps.astype(np.float64)
    lay = link.layout(img.shape[0], img.shape[1], img.shape[2], cfg)
    perm = interleave.permutation(lay.n_symbols)
    n_sym, n_val = lay.n_symbols, lay.n_values
    x = np.empty(n_sym, np.complex64)
    rng = np.random.default_rng(2)
    y = channel.awgn(qpsk.map_values(v, amps, perm), 0.0, rng)
    nv = np.ones(1, np.float32)
    llr = np.empty((8, n_val), np.float32)
    vals = np.empty(n_val, np.float32)
    acc_y = np.zeros(n_sym, np.complex64)
    acc_w = np.zeros(n_sym, np.float32)
    lowbuf = np.empty_like(low)
    img_c = np.ascontiguousarray(img)
    qpsk._llr_perm_kernel(y, nv, amps64, n_val, perm, llr)
    llr_filled = llr.copy()

    res = {
        "qpsk_mapper+power (Msym/s)": time_kernel(lambda: qpsk._map_kernel(v, amps, x), n_sym, n_items, repeats),
        "qpsk_mapper+power+interleave (Msym/s)":
            time_kernel(lambda: qpsk._map_perm_kernel(v, amps, perm, x), n_sym, n_items, repeats),
        "llr_demapper (Msym/s)":
            time_kernel(lambda: qpsk._llr_kernel(y, nv, amps64, n_val, llr), n_sym, n_items, repeats),
        "llr_demapper+deinterleave (Msym/s)":
            time_kernel(lambda: qpsk._llr_perm_kernel(y, nv, amps64, n_val, perm, llr), n_sym, n_items, repeats),
        "mmse_reconstruction (M LLR/s)":
            time_kernel(lambda: reconstruct._mmse_kernel(llr_filled, np.float32(0), vals), 8 * n_val,
                        n_items, repeats),
        "chase_combining (Msym/s per attempt)":
            time_kernel(lambda: chase._accumulate_kernel(y, nv, acc_y, acc_w), n_sym, n_items, repeats),
        "lpf_encoder_3x3 (M input values/s)":
            time_kernel(lambda: source._lpf_kernel(img_c, 3, 3, lowbuf), img.size, n_items, repeats),
    }
    return res


def simulator_time(repeats: int = 5) -> dict:
    """Seconds for one Kodak image at rate 1/9 through TX -> AWGN (0 dB) -> RX to MMSE low-res pixels
    (numba kernels warm, interleaver permutation cached as in a running system; no upsampling)."""
    img = _kodak_image()
    cfg = link.LinkConfig(3, 3, 8, "importance", 0)
    rng = np.random.default_rng(3)

    def once():
        x, lay = link.encode_image(img, cfg)
        y = channel.awgn(x, 0.0, rng)
        comb = chase.ChaseCombiner(x.size)
        comb.add(y, 1.0)
        yc, nvc = comb.result()
        return link.decode_image(yc, nvc, lay, cfg)

    once()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    interleave._permutation_cached.cache_clear()
    t0 = time.perf_counter()
    interleave.permutation(link.layout(img.shape[0], img.shape[1], 3, cfg).n_symbols)
    t_perm = time.perf_counter() - t0
    return {"best_s": min(times), "median_s": float(np.median(times)), "permutation_uncached_s": t_perm}
