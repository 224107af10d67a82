# SPDX-License-Identifier: GPL-3.0-or-later
"""NR baseline benchmark and BLER waterfall (suite ``nr``: ``run_bench(out_dir) -> dict``).

Workload: BG1, ``K = 8448`` (TB of ``A = 8424`` bits + CRC24A, one code block, ``Zc = 384``), ``R = 1/2``
(``G = E = 16848`` coded bits), QPSK, AWGN. Codewords go through the whole chain (CRC, encoder, rate
matching, interleaving, QPSK, channel, exact LLRs, de-rate-matching) so the decoder sees real inputs.

Measured (one process, wall time, best of ``REPEATS``; "info bits" = the ``K = 8448`` encoder input bits):

* encoder Mbit/s per core: :func:`infercom.nr.ldpc.encode` of a batch (parity rows needed for R = 1/2 and
  the whole mother code), and the whole transmitter :func:`infercom.nr.link.nr_encode_tb` per TB;
* decoder Mbit/s per core at 5 and 10 iterations, fixed iteration count (early stop off: the worst case),
  one thread, and with 2 threads (thread pool over the batch); plus the early-stop throughput and mean
  iterations at Eb/N0 = 2 dB (an operating point, BLER ~ 0);
* the PyPI ``ldpc`` package's C++ ``BpDecoder`` (min-sum, flooding, scaling 0.75, and product-sum) on the
  *same* LLRs, the same ``H`` rows, the same iteration limits, in the same run, one thread; the ratio is
  ours / theirs. The decoding SNR (Eb/N0 = 1.0 dB) is below the 10-iteration threshold so both decoders
  run every iteration (``ldpc`` cannot switch its early stop off).

:func:`bler_waterfall` / :func:`run_waterfall` give the BLER curve (CSV, JSON, PNG). Environment:
``INFERCOM_BENCH_QUICK=1`` shrinks the workloads.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from .. import channel
from . import crc as _crc
from .basegraph import parity_check_matrix
from .decoder import ALPHA, BETA, decode
from .ldpc import encode
from .link import ebn0_to_esn0_db, encode_rows_needed, nr_encode_tb, qpsk_llrs, qpsk_modulate
from .ratematch import HarqBuffer
from .segmentation import TbParams, desegment, tb_params

__all__ = ["make_tbs", "bler_point", "bler_waterfall", "run_waterfall", "run_bench"]

REPEATS = 3
A_BENCH = 8424
R_BENCH = 0.5


def make_tbs(p: TbParams, n_tb: int, ebn0_db: float, rng: np.random.Generator, rv: int = 0):
    """``n_tb`` random TBs through TX, QPSK and AWGN at ``ebn0_db`` (per TB payload bit): returns
    ``(a (n_tb, A) uint8 payloads, llr (n_tb, C, n_cols Zc) float32 decoder inputs)``."""
    esn0 = ebn0_to_esn0_db(ebn0_db, p)
    nv = 10.0 ** (-esn0 / 10.0)
    a = rng.integers(0, 2, (n_tb, p.A), dtype=np.uint8)
    llr = np.empty((n_tb, p.C, p.code.n_bits), np.float32)
    for t in range(n_tb):
        f, _ = nr_encode_tb(a[t], p.R, rv=rv, params=p)
        y = channel.awgn(qpsk_modulate(np.concatenate(f)), esn0, rng)
        h = HarqBuffer(p)
        h.add(qpsk_llrs(y, nv), rv)
        llr[t] = h.llrs()
    return a, llr


def bler_point(ebn0_db: float, n_tb: int, seed: int = 0, A: int = A_BENCH, R: float = R_BENCH,
               max_iter: int = 10, alpha: float = ALPHA, beta: float = BETA, batch: int = 64,
               threads: int = 1) -> dict:
    """Block error rate of TBs of ``A`` bits at rate ``R`` (QPSK, AWGN) at ``ebn0_db``: a TB is in error when
    its CRC fails or its bits differ (``undetected`` counts CRC-passing wrong TBs). Seeded per point."""
    p = tb_params(A, R)
    rng = np.random.default_rng([int(seed), int(round(ebn0_db * 1000)) & 0xFFFFFFFF])
    errors = undetected = 0
    iters = []
    done = 0
    while done < n_tb:
        n = min(batch, n_tb - done)
        a, llr = make_tbs(p, n, ebn0_db, rng)
        res = decode(llr.reshape(n * p.C, -1), p.code, max_iter=max_iter, alpha=alpha, beta=beta,
                     threads=threads)
        iters.append(res.iterations)
        bits = res.bits[:, :p.K].reshape(n, p.C, p.K)
        for t in range(n):
            b, cb_ok = desegment(bits[t], p)
            ok = bool(cb_ok.all()) and bool(_crc.check(b, p.tb_crc))
            right = bool(np.array_equal(b[:p.A], a[t]))
            errors += not (ok and right)
            undetected += ok and not right
        done += n
    return {"ebn0_db": float(ebn0_db), "esn0_db": ebn0_to_esn0_db(ebn0_db, p), "n_tb": int(n_tb),
            "errors": int(errors), "undetected": int(undetected), "bler": errors / n_tb,
            "mean_iterations": float(np.concatenate(iters).mean()), "A": p.A, "K": p.K, "R": p.rate,
            "max_iter": int(max_iter)}


def bler_waterfall(ebn0_list, n_tb: int = 400, seed: int = 0, **kw) -> list[dict]:
    """:func:`bler_point` for each Eb/N0 (dB) in ``ebn0_list``."""
    return [bler_point(e, n_tb, seed, **kw) for e in ebn0_list]


def crossing_db(rows: list[dict], target: float = 0.1) -> float | None:
    """Eb/N0 (dB) where the BLER curve crosses ``target`` (log-linear interpolation), None if it does not."""
    for lo, hi in zip(rows[:-1], rows[1:]):
        if lo["bler"] >= target > hi["bler"]:
            b_lo = lo["bler"]
            b_hi = max(hi["bler"], 0.5 / hi["n_tb"])  # a zero count is read as half an error
            if b_hi >= b_lo:
                return hi["ebn0_db"]
            f = (math.log(b_lo) - math.log(target)) / (math.log(b_lo) - math.log(b_hi))
            return lo["ebn0_db"] + min(max(f, 0.0), 1.0) * (hi["ebn0_db"] - lo["ebn0_db"])
    return None


def run_waterfall(out_dir: Path, ebn0_list=None, n_tb: int | None = None, seed: int = 0,
                  max_iter: int = 10) -> dict:
    """BLER waterfall of the bench workload; writes ``nr_waterfall.csv``, ``.json`` and ``.png``."""
    quick = os.environ.get("INFERCOM_BENCH_QUICK") == "1"
    if ebn0_list is None:
        ebn0_list = np.round(np.arange(0.8, 2.01, 0.1), 2).tolist()
    if n_tb is None:
        n_tb = 100 if quick else 500
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = bler_waterfall(ebn0_list, n_tb, seed, max_iter=max_iter, threads=2)
    with open(out_dir / "nr_waterfall.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    rec = {"rows": rows, "bler_0.1_at_ebn0_db": crossing_db(rows), "seed": seed}
    (out_dir / "nr_waterfall.json").write_text(json.dumps(rec, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.6))
        nzr = [r for r in rows if r["errors"]]
        zr = [r for r in rows if not r["errors"]]
        ax.semilogy([r["ebn0_db"] for r in nzr], [r["bler"] for r in nzr], "o-", label="BLER")
        if zr:
            ax.semilogy([r["ebn0_db"] for r in zr], [1.0 / r["n_tb"] for r in zr], "v", mfc="none",
                        color="C0", label="no error (below 1/n)")
        ax.axhline(0.1, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("Eb/N0 (dB, per TB payload bit)")
        ax.set_ylabel("BLER")
        ax.legend(fontsize=8)
        ax.set_title(f"BG1 K=8448 R=1/2 QPSK AWGN, {max_iter} it, {n_tb} TB/pt", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / "nr_waterfall.png", dpi=120)
        plt.close(fig)
    except ImportError:  # matplotlib is a project dependency; the CSV is the data either way
        pass
    return rec


def _best(fn, repeats: int = REPEATS) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _ldpc_package(H, llr: np.ndarray, max_iter: int, method: str) -> tuple[float, np.ndarray]:
    """Time the ``ldpc`` package's BpDecoder on each row of ``llr``: (seconds total, decoded words)."""
    from ldpc import BpDecoder

    dec = BpDecoder(H, error_channel=np.full(H.shape[1], 0.1), max_iter=max_iter, bp_method=method,
                    ms_scaling_factor=0.75, schedule="parallel", input_vector_type="received_vector")
    out = np.empty(llr.shape, np.uint8)
    total = 0.0
    for w in range(llr.shape[0]):
        lw = np.abs(llr[w].astype(np.float64))
        probs = np.exp(-lw) / (1.0 + np.exp(-lw))           # P(hard decision wrong) = 1/(1 + e^|L|)
        hard = (llr[w] < 0).astype(np.uint8)
        t0 = time.perf_counter()
        dec.update_channel_probs(probs)
        out[w] = dec.decode(hard)
        total += time.perf_counter() - t0
    return total, out


def run_bench(out_dir: Path) -> dict:
    """Run the ``nr`` suite: print a table, write ``out_dir/nr.json`` (and the waterfall files); return it."""
    from ..bench_core import machine

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = machine()
    quick = os.environ.get("INFERCOM_BENCH_QUICK") == "1"
    n_cw = 32 if quick else 128
    n_ref = 4 if quick else 16
    p = tb_params(A_BENCH, R_BENCH)
    code = p.code
    rng = np.random.default_rng(20240611)
    K = p.K
    rows = []

    # encoder
    c = rng.integers(0, 2, (n_cw, K), dtype=np.uint8)
    m_needed = encode_rows_needed(p)
    encode(c[:1], code)
    for label, m in (("ldpc encode (rows for R=1/2)", m_needed), ("ldpc encode (full mother code)", None)):
        dt = _best(lambda m=m: encode(c, code, m_rows=m))
        rows.append({"what": label, "threads": 1, "mbps": n_cw * K / dt / 1e6})
    a_tb = rng.integers(0, 2, p.A, dtype=np.uint8)
    nr_encode_tb(a_tb, R_BENCH, params=p)
    n_tx = max(8, n_cw // 4)
    dt = _best(lambda: [nr_encode_tb(a_tb, R_BENCH, params=p) for _ in range(n_tx)])
    rows.append({"what": "transmitter nr_encode_tb (CRC+seg+LDPC+RM)", "threads": 1, "mbps": n_tx * p.A / dt / 1e6})

    # decoder inputs through the chain, below threshold so every iteration runs
    _, llr = make_tbs(p, n_cw, 1.0, rng)
    llr = llr[:, 0]
    decode(llr[:1], code, max_iter=1)
    ours = {}
    for it in (5, 10):
        for th in (1, 2):
            dt = _best(lambda it=it, th=th: decode(llr, code, max_iter=it, early_stop=False, threads=th))
            ours[(it, th)] = n_cw * K / dt / 1e6
            rows.append({"what": f"min-sum decode, {it} it (fixed)", "threads": th, "mbps": ours[(it, th)]})
    dt = _best(lambda: decode(llr, code, max_iter=10, early_stop=False, m_rows=code.m))
    rows.append({"what": "min-sum decode, 10 it, all 46 rows", "threads": 1, "mbps": n_cw * K / dt / 1e6})
    # operating point with early stop
    _, llr2 = make_tbs(p, n_cw, 2.0, rng)
    llr2 = llr2[:, 0]
    res2 = decode(llr2, code, max_iter=10)
    dt = _best(lambda: decode(llr2, code, max_iter=10))
    rows.append({"what": f"min-sum decode, <=10 it, early stop @2 dB (mean {res2.iterations.mean():.2f} it)",
                 "threads": 1, "mbps": n_cw * K / dt / 1e6})

    # the ldpc package on the same LLRs and H rows
    ref = {}
    m_rows = decode(llr[:1], code, max_iter=1).m_rows
    H = parity_check_matrix(code, m_rows, code.kb + m_rows)
    n_dec = H.shape[1]
    try:
        for method in ("minimum_sum", "product_sum"):
            for it in (5, 10):
                t, _ = _ldpc_package(H, llr[:n_ref, :n_dec], it, method)
                ref[(method, it)] = n_ref * K / t / 1e6
                rows.append({"what": f"ldpc pkg BpDecoder {method}, {it} it", "threads": 1,
                             "mbps": ref[(method, it)]})
        ldpc_error = None
    except ImportError as exc:
        ldpc_error = f"{type(exc).__name__}: {exc}"
    ratios = {f"{it}it_vs_{m}": ours[(it, 1)] / ref[(m, it)] for (m, it) in ref}

    wf = run_waterfall(out_dir, n_tb=60 if quick else 300)
    record = {"suite": "nr", "machine": info, "workload": {"bg": p.bg, "K": K, "A": p.A, "Zc": p.Zc, "G": p.G,
              "R": p.rate, "rows_decoded": m_rows, "n_codewords": n_cw, "n_ldpc_pkg": n_ref},
              "rows": rows, "ratio_ours_over_ldpc_pkg": ratios, "ldpc_pkg_error": ldpc_error,
              "waterfall": wf}
    (out_dir / "nr.json").write_text(json.dumps(record, indent=2))
    print(f"nr suite ({info['cpu']}, {info['cores']} cores; BG1 K={K} Zc={p.Zc} R=1/2, info bits = K)")
    print(f"{'what':62s} {'thr':>3s} {'Mbit/s':>9s}")
    for r in rows:
        print(f"{r['what']:62s} {r['threads']:3d} {r['mbps']:9.2f}")
    for k, v in ratios.items():
        print(f"ratio ours/ldpc-package {k}: {v:.1f}x")
    if ldpc_error:
        print(f"ldpc package not measured: {ldpc_error}")
    print(f"BLER = 0.1 at Eb/N0 = {wf['bler_0.1_at_ebn0_db']} dB (10 it)")
    return record
