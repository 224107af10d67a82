# SPDX-License-Identifier: GPL-3.0-or-later
"""Bench suite ``server`` (``infercom bench --suites server``): ``out_dir/server.json``.

In the apps layer: it drives the server (``receiver_server``) and measures a GNU Radio block next to it.

Measured through the real server (in-process threads, loopback ZeroMQ) driven by symbol-level simulated
transmitters (``receiver_server.simlink``) at 10 dB AWGN on kodak24 images (full size, rate 1/9, 8 planes, 32768
payload symbols per frame), CPU only, one inference worker:

* per-image latency of each server stage, p50/p99 in ms — ``assembly`` (first frame received -> attempt
  complete; includes the simulated transmitter's own frame generation), ``llr`` and ``pixels`` (LLR -> MMSE
  low-res image), ``restore``, ``qoe`` (the offline default set: NIQE + consistency), ``total`` (attempt
  complete -> feedback sent) — for ``bicubic`` and every offline restorer that loads here (``supir`` and
  ``diffusers`` need external weights and are listed as skipped);
* images/s with 1 and with 8 concurrent transmitters (bicubic; each transmitter sends one image at a time and
  waits for its ACK);
* batched multi-user inference: images/s of 8 transmitters with the default restorer and 8 inference workers,
  unbatched (``batch_max`` 1) and batched (``batch_max`` 8, ``batch_wait_ms`` 50), and their ratio
  (``batching``; the restorations are bit-identical either way, tests/test_batching.py);
* the LLR -> pixels throughput in Msym/s next to GNU Radio's ``constellation_soft_decoder_cf`` (QPSK soft bits
  only) measured in the same run.

``INFERCOM_BENCH_QUICK=1`` shrinks the workloads.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from infercom import link
from infercom.arq import ArqConfig
from infercom.bench_core import DATASETS
from infercom.link import LinkConfig

from receiver_server.config import ServerConfig
from receiver_server.server import InferenceServer
from receiver_server.simlink import ChannelSpec, SimTransmitter, status_request

STAGES = ("assembly", "llr", "pixels", "restore", "qoe", "total")
#: transmitters (and inference workers) of the batching measurement
N_TX_BATCH = 8


def _images(n: int) -> tuple[list[np.ndarray], str]:
    from infercom.imageio import list_images, load_image
    k = DATASETS / "kodak24"
    if k.is_dir():
        files = list_images(k)
        return [load_image(files[i % len(files)]) for i in range(n)], "kodak24"
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (512, 768, 3), dtype=np.uint8) for _ in range(n)], "synthetic 768x512 noise"


def serve(restorer_name: str, images: list[np.ndarray], n_tx: int, timeout_s: float = 120.0, *,
          workers: int = 1, batch_max: int = 1, batch_wait_ms: float = 10.0, snr_db: float = 10.0,
          max_attempts: int = 1, design_snr_db: int = 10, records_file: str | None = None) -> dict[str, Any]:
    """Run ``n_tx`` transmitters, each sending ``images`` once (up to ``max_attempts`` attempts over AWGN at
    ``snr_db``), through a fresh server with ``workers`` inference threads and batches of up to ``batch_max``
    attempts; timings, status and each transmitter's ARQ records (``"arq"``)."""
    cfg = ServerConfig(bind="tcp://127.0.0.1:0", feedback_bind="tcp://127.0.0.1:0", restorer=restorer_name,
                       log_file=os.devnull, assembly_timeout_s=2.0, max_images=64, workers=workers,
                       batch_max=batch_max, batch_wait_ms=batch_wait_ms, records_file=records_file,
                       policy={"max_attempts": max_attempts})
    srv = InferenceServer(cfg)
    results: dict[int, list] = {}
    with srv:
        def one(t: int) -> None:
            tx = SimTransmitter(t, [(i, im, {}) for i, im in enumerate(images)], srv.bound["soft_frames"],
                                srv.bound["feedback"], LinkConfig(design_snr_db=design_snr_db),
                                ArqConfig(max_attempts=max_attempts, timeout_s=timeout_s),
                                ChannelSpec(snr_db=snr_db), seed=t)
            results[t] = tx.run(timeout_s * max_attempts * (len(images) + 1))

        t0 = time.perf_counter()
        ths = [threading.Thread(target=one, args=(t,)) for t in range(n_tx)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        wall = time.perf_counter() - t0
        st = status_request(srv.bound["soft_frames"])
    done = sum(len(r) for r in results.values())
    return {"images": done, "wall_s": wall, "images_per_s": done / wall,
            "latency_ms": {s: st["latency_ms"][s] for s in STAGES}, "decisions": st["decisions"],
            "rejected_total": st["rejected_total"], "restorer": st["restorer"], "qoe": st["qoe"],
            "batching": st["batching"], "arq": results}


def _llr_pixels_msym(img: np.ndarray, repeats: int) -> float:
    cfg = LinkConfig()
    x, lay = link.encode_image(img, cfg)
    rng = np.random.default_rng(0)
    y = (x + 0.5 * (rng.standard_normal(x.size) + 1j * rng.standard_normal(x.size))).astype(np.complex64)
    nv = np.float32(0.5)
    link.decode_image(y, nv, lay, cfg)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        link.decode_image(y, nv, lay, cfg)
        best = min(best, time.perf_counter() - t0)
    return x.size / best / 1e6


def run_bench(out_dir: Path) -> dict:
    from infercom.bench_core import machine

    from .bench_vs_gnuradio import gnuradio_version

    quick = os.environ.get("INFERCOM_BENCH_QUICK") == "1"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_img = 2 if quick else 6
    imgs, source = _images(n_img)
    res: dict[str, Any] = {"machine": machine() | {"gnuradio": gnuradio_version()}, "images": source,
                           "image_shape": list(imgs[0].shape),
                           "link": "rate 1/9, 8 planes, importance profile, 10 dB AWGN, 2**15 symbols/frame",
                           "restorers": {}, "throughput": {}, "batching": {"restorer_device": "cpu"},
                           "skipped": {}}
    from receiver_server.restorers import available, get_restorer
    for name in available():
        if name in ("supir", "diffusers"):
            res["skipped"][name] = "needs external weights (paths in a config); not offline"
            continue
        try:
            get_restorer(name)
        except (ImportError, ValueError, OSError, RuntimeError) as exc:
            res["skipped"][name] = f"{type(exc).__name__}: {exc}"
            continue
        n = n_img if name == "bicubic" else (1 if quick else 2)
        print(f"[server bench] restorer {name}: {n} image(s), 1 transmitter", flush=True)
        res["restorers"][name] = serve(name, imgs[:n], 1)
    for n_tx in (1, 8):
        per = max(1, n_img // n_tx) if n_tx > 1 else n_img
        print(f"[server bench] throughput: {n_tx} transmitter(s) x {per} image(s), bicubic", flush=True)
        r = serve("bicubic", imgs[:per], n_tx)
        res["throughput"][f"{n_tx}_tx"] = {k: r[k] for k in ("images", "wall_s", "images_per_s")}
    from receiver_server.restorers import DEFAULT_RESTORER
    per = 1 if quick else 2
    for label, batch in (("unbatched", 1), ("batched", N_TX_BATCH)):
        print(f"[server bench] {N_TX_BATCH} transmitters x {per} image(s), {DEFAULT_RESTORER}, {label}", flush=True)
        r = serve(DEFAULT_RESTORER, imgs[:per], N_TX_BATCH, workers=N_TX_BATCH, batch_max=batch, batch_wait_ms=50)
        res["batching"][label] = {k: r[k] for k in ("images", "wall_s", "images_per_s", "batching")} \
            | {"restore_ms": r["latency_ms"]["restore"], "total_ms": r["latency_ms"]["total"]}
    res["batching"]["speedup"] = res["batching"]["batched"]["images_per_s"] / res["batching"]["unbatched"]["images_per_s"]
    msym = _llr_pixels_msym(imgs[0], 3 if quick else 5)
    res["llr_to_pixels_msym_per_s"] = msym
    try:
        from gnuradio import digital

        from .bench_vs_gnuradio import gr_stream_msps
        rng = np.random.default_rng(1)
        data = ((rng.standard_normal(1 << 16) + 1j * rng.standard_normal(1 << 16)) * 0.7).astype(np.complex64)
        qpsk = digital.constellation_qpsk().base()
        gr_ref = gr_stream_msps(lambda: [digital.constellation_soft_decoder_cf(qpsk)], data,
                                1 << (20 if quick else 22), 3)
        res["gnuradio_constellation_soft_decoder_cf_msym_per_s"] = gr_ref
        res["llr_to_pixels_vs_gnuradio_soft_decoder"] = msym / gr_ref
    except ImportError as exc:
        res["skipped"]["gnuradio_reference"] = str(exc)
    (out_dir / "server.json").write_text(json.dumps(res, indent=2))
    _print(res)
    return res


def _print(res: dict) -> None:
    print(f"# server bench on {res['machine']['cpu']} ({res['machine']['cores']} cores), {res['images']} "
          f"{res['image_shape']}")
    print(f"{'restorer':<20}" + "".join(f"{s + ' p50/p99 ms':>24}" for s in STAGES))
    for name, r in res["restorers"].items():
        cells = []
        for s in STAGES:
            lat = r["latency_ms"][s]
            cells.append(f"{lat['p50']:.1f}/{lat['p99']:.1f}" if lat["p50"] is not None else "-")
        print(f"{name:<20}" + "".join(f"{c:>24}" for c in cells))
    for k, r in res["throughput"].items():
        print(f"throughput {k}: {r['images']} images in {r['wall_s']:.2f} s = {r['images_per_s']:.2f} images/s")
    b = res["batching"]
    for k in ("unbatched", "batched"):
        r = b[k]
        print(f"{N_TX_BATCH} transmitters, default restorer, {k}: {r['images']} images in {r['wall_s']:.1f} s = "
              f"{r['images_per_s']:.3f} images/s (restore p50 {r['restore_ms']['p50']} ms; "
              f"{r['batching']['batches']} batches of {r['batching']['attempts']} attempts)")
    print(f"batched / unbatched images/s: {b['speedup']:.2f}")
    line = f"LLR->pixels {res['llr_to_pixels_msym_per_s']:.1f} Msym/s"
    if "gnuradio_constellation_soft_decoder_cf_msym_per_s" in res:
        line += (f"; GNU Radio constellation_soft_decoder_cf {res['gnuradio_constellation_soft_decoder_cf_msym_per_s']:.1f}"
                 f" Msym/s (ratio {res['llr_to_pixels_vs_gnuradio_soft_decoder']:.2f})")
    print(line)
    for k, v in res["skipped"].items():
        print(f"skipped {k}: {v}")
