# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom simulate``: link-level Monte-Carlo of images over the uplink, at symbol level.

Per image and Es/N0: TX (:func:`infercom.link.encode_image`) -> channel (:class:`infercom.channel.SymbolChannel`:
optional Rayleigh block fading per image or per frame, AWGN, perfect sync and CSI: ``y = r / h``, effective
noise variance ``N0 / |h|^2``) -> Chase combining of ``--attempts`` independent attempts
(:mod:`infercom.chase`) -> LLRs -> MMSE and hard low-res images -> bicubic upsampling -> metrics.

The channel flags (``--fading none|block``, ``--fading-per image|frame``, ``--snr-mode
instantaneous|average``, ``--frame-len-log2``) are :func:`infercom.channel.add_channel_arguments`. SNR convention
(``--snr-mode``), as in the papers, which report against the *instantaneous* SNR:

* ``instantaneous`` (default): the fading power gains of an attempt are normalised to mean 1 over its
  symbols (frames weighted by their length), so the mean Es/N0 of every attempt is exactly ``snr_db``.
  With one coefficient per image the fade only rotates the phase (equalised away); per frame it
  redistributes the SNR between frames.
* ``average``: raw CN(0, 1) coefficients, N0 = 1/Es/N0; the realised instantaneous SNR
  (``10 log10(mean |h|^2) + snr_db``, averaged over attempts) is reported as ``inst_snr_db``.

Frames for per-frame fading are contiguous runs of ``frame_len`` transmitted (interleaved) payload symbols
(as :func:`infercom.frame.segment` cuts them), so a deep fade lands on symbols scattered over the whole image.

Output per image and SNR (table on stdout, or JSON lines with ``--json``; ``--out FILE`` also writes the
JSON lines): BER per plane (MSB first), low-res pixel MSE of the MMSE and hard reconstructions, PSNR/SSIM
of the bicubic-upsampled MMSE (and hard) image against the original, channel uses (payload symbols per
attempt; all attempts; with the frame overhead of :func:`infercom.frame.image_frames`), and the
transmitter's exact source-coding operation count.

``--system nr`` runs the 5G-NR baseline instead (:mod:`infercom.nr.harq`: JPEG at a bit budget, one LDPC
transport block per image, CRC-triggered HARQ with Chase or incremental redundancy, up to ``--max-attempts``
attempts) through the same :class:`~infercom.channel.SymbolChannel` with the same seeds; rows then carry ``"record": "image"``
(success, CRC per attempt, PSNR/SSIM of the decoded JPEG or None when the image is lost, JPEG quality and
bits, budget, channel uses, transmitter operation count) and, after them, one ``"record": "summary"`` row
per SNR (image success rate, BLER per attempt, mean PSNR/SSIM over the decoded images). docs/nr.md §11.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from . import channel, chase, imageio, link, metrics, options, power, qpsk, source
from .frame import image_frames


def frame_overhead_uses(img: np.ndarray, cfg: link.LinkConfig) -> int:
    """Total channel uses (symbols, all frames incl. preamble/header/pilots) of one attempt of ``img``."""
    return int(sum(len(sym) for _, sym in image_frames(img, cfg, tx_id=0, image_id=0)))


def mean_snr_db(snrs_db) -> float:
    """Mean of Es/N0 values in dB taken in linear power (how ``inst_snr_db`` averages attempts), in dB."""
    return channel.lin_to_db(float(np.mean([channel.db_to_lin(s) for s in snrs_db])))


def _channel_fields(chan: channel.SymbolChannel) -> dict:
    """The channel's fields of a record (``fading_per`` only with block fading)."""
    return {"fading": chan.fading, "fading_per": chan.fading_per if chan.fading == "block" else None,
            "snr_mode": chan.snr_mode}


def lowres_metrics(img: np.ndarray, llr: np.ndarray, low_mmse: np.ndarray, low_hard: np.ndarray,
                   cfg: link.LinkConfig) -> tuple[dict, np.ndarray]:
    """Per-plane bit error rate and low-res pixel MSE of one received image, against the transmitter's truth.

    ``img``: original uint8 (H, W, C); ``llr``: (planes, n_values) from ``link.soft_to_llr``; ``low_mmse`` /
    ``low_hard``: the reconstructions from ``link.llr_to_lowres``. Returns ``(stats, low_true)`` with stats
    ``ber_per_plane`` (MSB first), ``ber``, ``n_values`` and ``lowres_mse_mmse`` / ``lowres_mse_hard`` (grey
    levels squared), and the true block means ``low_true`` (uint8 (h, w, C)). Shared by ``infercom simulate``
    and ``infercom loopback`` so that both report the same figures.
    """
    low_true = source.lpf_encode(img, cfg.bh, cfg.bw)
    v = low_true.reshape(-1)
    k = np.arange(7, 7 - cfg.planes, -1)
    bits = (v[None, :] >> k[:, None].astype(np.uint8)) & 1
    ber_plane = np.mean(qpsk.hard_bits(llr) != bits, axis=1)
    ref = low_true.astype(np.float64)
    stats = {
        "ber_per_plane": [float(b) for b in ber_plane],
        "ber": float(ber_plane.mean()),
        "n_values": int(v.size),
        "lowres_mse_mmse": float(np.mean((low_mmse - ref) ** 2)),
        "lowres_mse_hard": float(np.mean((low_hard - ref) ** 2)),
    }
    return stats, low_true


def simulate_image(img: np.ndarray, cfg: link.LinkConfig, chan: channel.SymbolChannel, rng: np.random.Generator,
                   attempts: int = 1, final_metrics: bool = True, keep_image: bool = False) -> dict:
    """Simulate one image over ``chan`` (its ``snr_db`` is the Es/N0 point, dB) with ``attempts``
    Chase-combined attempts; return the record described in the module docstring.

    ``keep_image``: also return the upsampled MMSE reconstruction (uint8) under the key ``"_image"``."""
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    snr_db = chan.snr_db
    img = source.as_image3(img)
    t0 = time.perf_counter()
    x, lay = link.encode_image(img, cfg)
    comb = chase.ChaseCombiner(x.size)
    insts = []
    for _ in range(attempts):
        rx = chan(x, rng)
        comb.add(rx.y, rx.noise_var)
        insts.append(rx.snr_db)
    y, nv = comb.result()
    llr = link.soft_to_llr(y, nv, lay, cfg)
    low_mmse = link.llr_to_lowres(llr, lay, cfg, "mmse")
    low_hard = link.llr_to_lowres(llr, lay, cfg, "hard")
    t_link = time.perf_counter() - t0

    stats, low_true = lowres_metrics(img, llr, low_mmse, low_hard, cfg)
    rec = {
        "snr_db": float(snr_db),
        "inst_snr_db": mean_snr_db(insts),
        "design_snr_db": cfg.design_snr_db,
        "profile": cfg.profile,
        "rate": cfg.rate(),
        "bh": cfg.bh, "bw": cfg.bw, "planes": cfg.planes,
        **_channel_fields(chan),
        "attempts": attempts,
        "height": lay.height, "width": lay.width, "channels": lay.channels,
        "ber_per_plane": stats["ber_per_plane"],
        "ber": stats["ber"],
        "expected_ber_per_plane": [float(b) for b in power.plane_ber(cfg.plane_powers(), snr_db)]
        if chan.fading == "none" and attempts == 1 else None,
        "lowres_mse_mmse": stats["lowres_mse_mmse"],
        "lowres_mse_hard": stats["lowres_mse_hard"],
        "payload_symbols": lay.n_symbols,
        "channel_uses": lay.n_symbols * attempts,
        "tx_ops": source.op_count(lay.height, lay.width, lay.channels, lay.bh, lay.bw)["total"],
        "time_link_s": t_link,
    }
    if final_metrics or keep_image:
        up = link.upsample(low_mmse, lay)
    if keep_image:
        rec["_image"] = up
    if final_metrics:
        up_hard = link.upsample(low_hard, lay)
        rec.update(psnr=metrics.psnr(img, up), ssim=metrics.ssim(img, up),
                   psnr_hard=metrics.psnr(img, up_hard), ssim_hard=metrics.ssim(img, up_hard),
                   psnr_lpf=metrics.psnr(img, link.upsample(low_true.astype(np.float32), lay)))
    return rec


# ------------------------------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser, systems: tuple[str, ...] | None = None) -> None:
    """The options of ``infercom simulate``. ``systems``: the choices of ``--system`` (default: the core's,
    ``infercom`` and ``nr``; the apps layer's ``infercom_apps.simulate`` adds ``deepjscc``)."""
    p.add_argument("--images", required=True, help="folder of images (or one image file)")
    p.add_argument("--snr-db", required=True, nargs="+",
                   help="Es/N0 values in dB: '--snr-db -4 0 4' or '--snr-db=-4,0,4'")
    options.add_link_arguments(p, "each simulated SNR, rounded and clipped")
    channel.add_channel_arguments(p)
    p.add_argument("--attempts", type=int, default=1, help="Chase-combined attempts (default 1)")
    p.add_argument("--max-images", type=int, default=None, help="use at most N images (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-ssim", action="store_true", help="skip upsampling, PSNR and SSIM (faster)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.add_argument("--out", default=None,
                   help="also write the records to this file: JSON lines, or CSV when it ends in .csv "
                        "(e.g. out/sim.jsonl, out/sim.csv; default: none)")
    p.add_argument("--save-images", default=None, metavar="DIR",
                   help="write the upsampled MMSE reconstructions as PNG to DIR (<image>_snr<S>_mmse.png; "
                        "with --system nr the decoded JPEGs, <image>_snr<S>_nr.png; default: none saved)")
    from .nr import options as nr_options

    g = nr_options.add_arguments(p) if systems is None else nr_options.add_arguments(p, systems)
    g.add_argument("--max-attempts", type=int, default=None,
                   help="attempt limit 1..16 of the systems with a retransmission trigger (NR; Deep-JSCC) "
                        "(default: --attempts, the InferCom link's attempt count)")



def _loaded(files, bar, runs_per_image: int):
    """``(index, path, image)`` for every file that loads; an undecodable one is skipped with a message and its
    runs are counted done on the progress bar ``bar`` (the index keeps counting, so seeds stay per file)."""
    for i, f in enumerate(files):
        try:
            img = imageio.load_image(f)
        except ValueError as exc:
            print(f"infercom simulate: skipping {exc}", file=sys.stderr)
            bar.update(runs_per_image)
            continue
        yield i, f, img

_COLS = [("image", "{:<12}"), ("snr_db", "{:>6.1f}"), ("inst_snr_db", "{:>6.1f}"), ("ber", "{:>8.5f}"),
         ("lowres_mse_mmse", "{:>9.1f}"), ("lowres_mse_hard", "{:>9.1f}"), ("psnr", "{:>6.2f}"),
         ("ssim", "{:>6.3f}"), ("channel_uses", "{:>9d}"), ("tx_ops", "{:>9d}")]
_HEAD = ["image", "snr", "inst", "BER", "MSE mmse", "MSE hard", "PSNR", "SSIM", "ch uses", "tx ops"]


def _width(fmt: str) -> int:
    return int(re.match(r"\{:[<>]?(\d+)", fmt).group(1))


def _fmt_row(rec: dict) -> str:
    cells = []
    for (key, fmt), head in zip(_COLS, _HEAD):
        v = rec.get(key)
        width = _width(fmt)
        cells.append(" " * width if v is None else fmt.format(v))
    return " ".join(cells)


def _header_line() -> str:
    widths = [_width(f) for _, f in _COLS]
    return " ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(_HEAD, widths)))


def _csv_row(rec: dict) -> dict:
    """Flatten list fields for CSV (``ber_per_plane`` -> ``ber_plane7``, ..., ``crc_ok_per_attempt`` ->
    ``crc_ok_attempt0``, ...) and dict fields (``params`` -> ``params_n_symbols``, ...)."""
    row = {}
    for key, val in rec.items():
        if isinstance(val, list):
            for j, x in enumerate(val):
                if key.endswith("_per_attempt"):
                    row[f"{key[:-len('_per_attempt')]}_attempt{j}"] = x
                elif key.endswith("_per_plane"):
                    row[f"{key.replace('_per_plane', '')}_plane{7 - j}"] = x
                else:
                    row[f"{key}_{j}"] = x
        elif isinstance(val, dict):
            for k, x in val.items():
                row[f"{key}_{k}"] = x
        else:
            row[key] = val
    return row


def _write_records(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        rows = [_csv_row(r) for r in records]
        fields: list[str] = []
        for r in rows:
            fields += [k for k in r if k not in fields]
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def run_inputs(args: argparse.Namespace) -> tuple[list[float], list, dict[float, channel.SymbolChannel]]:
    """The parsed inputs every system's ``simulate`` run shares: the Es/N0 points (dB), the image files
    (``--max-images``) and the channel of each point; ``--attempts`` checked. ValueError on a bad value."""
    snrs = options.parse_snr_db(args.snr_db)
    files = imageio.list_images(args.images)
    if args.max_images is not None:
        if args.max_images < 1:
            raise ValueError("--max-images must be >= 1")
        files = files[: args.max_images]
    if args.attempts < 1:
        raise ValueError("--attempts must be >= 1")
    return snrs, files, {s: channel.channel_from_args(args, s) for s in snrs}


def run(args: argparse.Namespace) -> int:
    if getattr(args, "system", "infercom") not in ("infercom", "nr"):
        print(f"infercom simulate: --system {args.system} is not a core system; run it through the `infercom` "
              "command (infercom_apps.simulate dispatches it)", file=sys.stderr)
        return 2
    try:
        snrs, files, chans = run_inputs(args)
        bh, bw = options.block_size(args)
        cfgs = {}
        for s in snrs:
            d = args.design_snr_db if args.design_snr_db is not None else int(
                min(max(round(s), power.DESIGN_SNR_MIN_DB), power.DESIGN_SNR_MAX_DB))
            cfgs[s] = link.LinkConfig(bh, bw, args.planes, args.profile, d)
    except ValueError as exc:
        print(f"infercom simulate: {exc}", file=sys.stderr)
        return 2
    if args.system == "nr":
        return _run_nr(args, snrs, bh, bw, files, chans)
    from tqdm import tqdm  # noqa: PLC0415

    records: list[dict] = []
    save_dir = Path(args.save_images) if args.save_images else None
    try:
        if not args.json:
            print(f"# rate 1/{bh * bw} ({bh}x{bw}), planes {args.planes}, profile {args.profile}, fading "
                  f"{args.fading}{'/' + args.fading_per if args.fading == 'block' else ''}, snr mode "
                  f"{args.snr_mode}, attempts {args.attempts}, seed {args.seed}")
            print(_header_line())
        bar = tqdm(total=len(files) * len(snrs), file=sys.stderr, unit="run", disable=None)
        for i, f, img in _loaded(files, bar, len(snrs)):
            overhead = frame_overhead_uses(img, cfgs[snrs[0]])
            for j, s in enumerate(snrs):
                rng = np.random.default_rng([args.seed, i, j])
                rec = {"image": f.name}
                rec.update(simulate_image(img, cfgs[s], chans[s], rng, args.attempts,
                                          final_metrics=not args.no_ssim, keep_image=save_dir is not None))
                if save_dir is not None:
                    imageio.save_image(save_dir / f"{f.stem}_snr{s:g}_mmse.png", rec.pop("_image"))
                rec["channel_uses_total"] = overhead * args.attempts
                rec["seed"] = args.seed
                records.append(rec)
                if args.json:
                    print(json.dumps(rec), flush=True)
                else:
                    bar.clear()
                    print(_fmt_row(rec), flush=True)
                bar.update(1)
        bar.close()
    finally:
        if args.out:
            _write_records(Path(args.out), records)     # also what was done before an interruption
    if not args.json and records:
        print("# mean over images")
        print(_header_line())
        for s in snrs:
            rs = [r for r in records if r["snr_db"] == s]
            mean = {"image": "MEAN", "snr_db": s}
            for key, _ in _COLS[2:]:
                vals = [r[key] for r in rs if r.get(key) is not None]
                if vals:
                    m = float(np.mean(vals))
                    mean[key] = int(round(m)) if isinstance(vals[0], int) else m
            print(_fmt_row(mean))
    return 0


# ------------------------------------------------------------------------------------------ NR baseline
def simulate_image_nr(tx, chan: channel.SymbolChannel, rng: np.random.Generator, final_metrics: bool = True,
                      keep_image: bool = False, max_iter: int = 10, metrics_cache: dict | None = None) -> dict:
    """One image through the NR baseline over ``chan`` (Es/N0 ``chan.snr_db``, dB): attempts of ``tx``
    (:class:`infercom.nr.harq.NrImageTx`) through the same :class:`~infercom.channel.SymbolChannel` (same
    draws as the InferCom link) until the CRC passes or ``tx.max_attempts`` are spent.

    Returns the record of docs/nr.md §11 (``success``, ``crc_ok_per_attempt``, ``attempts_used``, ``psnr``/
    ``ssim`` of the decoded image or None when lost, ``psnr_jpeg``/``ssim_jpeg`` of the error-free JPEG,
    ``channel_uses`` = symbols per attempt x attempts used, ``tx_ops`` (JPEG + CRC + LDPC for the attempts
    used), the budget and JPEG fields of ``tx.info()``). ``metrics_cache``: a dict reused across SNRs of the
    same image (the error-free JPEG's metrics). ``keep_image``: the decoded image under ``"_image"``."""
    from .nr.harq import NrImageRx  # noqa: PLC0415
    from .nr.jpeg import decode_jpeg  # noqa: PLC0415
    from .nr.link import qpsk_llrs  # noqa: PLC0415

    t0 = time.perf_counter()
    img = tx.img
    cache = {} if metrics_cache is None else metrics_cache
    rx = NrImageRx(tx.params, max_iter=max_iter)
    crc, insts, iters = [], [], []
    ok, dec, info = False, None, {}
    for k in range(tx.max_attempts):
        got = chan(tx.symbols(k), rng)
        rx.add_attempt(qpsk_llrs(got.y, got.noise_var), k)
        ok, dec, info = rx.decode()
        crc.append(bool(info["crc_ok"]))
        insts.append(got.snr_db)
        iters.append(info["iterations_mean"])
        if ok:
            break
    used = len(crc)
    exact = bool(ok and info["jpeg"] == tx.jpeg)
    ops = tx.op_count(used)
    rec = {
        "record": "image", "system": "nr",
        "snr_db": float(chan.snr_db),
        "inst_snr_db": mean_snr_db(insts),
        "rate": 1.0 / (tx.bh * tx.bw), "bh": tx.bh, "bw": tx.bw, "planes": tx.planes,
        **_channel_fields(chan),
        "height": int(img.shape[0]), "width": int(img.shape[1]), "channels": int(img.shape[2]),
        **tx.info(),
        "success": bool(ok), "status": rx.status,
        "undetected": bool(ok and not exact),
        "attempts_used": used, "crc_ok_per_attempt": crc, "ldpc_iterations_per_attempt": iters,
        "channel_uses": tx.n_symbols * used,
        "tx_ops": ops["total"], "tx_ops_jpeg": ops["jpeg"], "tx_ops_crc": ops["crc_tb"] + ops["crc_cb"],
        "tx_ops_ldpc": ops["ldpc"],
        "time_link_s": time.perf_counter() - t0,
    }
    if final_metrics:
        if "psnr_jpeg" not in cache:
            ref = decode_jpeg(tx.jpeg)
            cache.update(psnr_jpeg=metrics.psnr(img, ref), ssim_jpeg=metrics.ssim(img, ref))
        rec.update(psnr_jpeg=cache["psnr_jpeg"], ssim_jpeg=cache["ssim_jpeg"])
        if ok and exact:
            rec.update(psnr=cache["psnr_jpeg"], ssim=cache["ssim_jpeg"])
        elif ok:
            rec.update(psnr=metrics.psnr(img, dec), ssim=metrics.ssim(img, dec))
        else:
            rec.update(psnr=None, ssim=None)
    if keep_image:
        rec["_image"] = dec
    return rec


def summarize_nr(records: list[dict]) -> list[dict]:
    """Per-SNR summary rows of NR image records: ``n_images``, ``success_rate``, ``bler_per_attempt`` (of
    the images that sent attempt k, the fraction still failing the CRC after combining it; None where no image
    got that far), ``n_per_attempt``, ``psnr_mean``/``ssim_mean`` over decoded images (None if none),
    ``channel_uses_mean``, ``tx_ops_mean``, ``jpeg_quality_mean``, ``jpeg_bits_mean``, ``undetected``."""
    out = []
    for s in sorted({r["snr_db"] for r in records}):
        rs = [r for r in records if r["snr_db"] == s]
        n_att = max(r["max_attempts"] for r in rs)
        reach = [sum(1 for r in rs if r["attempts_used"] > k) for k in range(n_att)]
        fail = [sum(1 for r in rs if r["attempts_used"] > k and not r["crc_ok_per_attempt"][k])
                for k in range(n_att)]
        good = [r for r in rs if r["success"] and r.get("psnr") is not None]

        def mean(key, rows=rs):
            vals = [r[key] for r in rows if r.get(key) is not None]
            return float(np.mean(vals)) if vals else None

        out.append({
            "record": "summary", "system": "nr", "snr_db": s, "budget_mode": rs[0]["budget_mode"],
            "code_rate": rs[0]["code_rate"], "harq": rs[0]["harq"], "max_attempts": n_att,
            "n_images": len(rs), "success_rate": sum(r["success"] for r in rs) / len(rs),
            "bler_per_attempt": [f / n if n else None for f, n in zip(fail, reach)], "n_per_attempt": reach,
            "psnr_mean": mean("psnr", good), "ssim_mean": mean("ssim", good),
            "inst_snr_db_mean": mean("inst_snr_db"), "channel_uses_mean": mean("channel_uses"),
            "tx_ops_mean": mean("tx_ops"), "jpeg_quality_mean": mean("jpeg_quality"),
            "jpeg_bits_mean": mean("jpeg_bits"), "undetected": sum(r["undetected"] for r in rs),
        })
    return out


_NR_COLS = [("image", "{:<12}"), ("snr_db", "{:>6.2f}"), ("inst_snr_db", "{:>6.2f}"), ("success", "{!s:>5}"),
            ("attempts_used", "{:>3d}"), ("jpeg_quality", "{:>3d}"), ("jpeg_bits", "{:>9d}"),
            ("psnr", "{:>6.2f}"), ("ssim", "{:>6.3f}"), ("channel_uses", "{:>9d}"), ("tx_ops", "{:>10d}")]
_NR_HEAD = ["image", "snr", "inst", "ok", "att", "q", "JPEG bit", "PSNR", "SSIM", "ch uses", "tx ops"]
_NR_SUM_COLS = [("snr_db", "{:>6.2f}"), ("success_rate", "{:>7.3f}"), ("bler", "{:<23}"),
                ("psnr_mean", "{:>6.2f}"), ("ssim_mean", "{:>6.3f}"), ("channel_uses_mean", "{:>10.0f}"),
                ("tx_ops_mean", "{:>11.0f}"), ("jpeg_quality_mean", "{:>5.1f}"), ("jpeg_bits_mean", "{:>10.0f}")]
_NR_SUM_HEAD = ["snr", "success", "BLER per attempt", "PSNR", "SSIM", "ch uses", "tx ops", "q", "JPEG bit"]


def _width_nr(fmt: str) -> int:
    return int(re.match(r"\{(?:!s)?:[<>]?(\d+)", fmt).group(1))


def _fmt_nr(rec: dict, cols, heads) -> str:
    cells = []
    for (key, fmt), _ in zip(cols, heads):
        v = rec.get(key)
        cells.append(" " * _width_nr(fmt) if v is None else fmt.format(v))
    return " ".join(cells)


def _head_nr(cols, heads) -> str:
    widths = [_width_nr(f) for _, f in cols]
    return " ".join(h.ljust(w) if i == 0 or f.startswith("{:<") else h.rjust(w)
                    for i, (h, w, (_, f)) in enumerate(zip(heads, widths, cols)))


def emit_record(rec: dict, args: argparse.Namespace, bar, records: list, png: Path | None, cols, heads) -> None:
    """One (image, SNR) record of a system with a retransmission trigger (NR, Deep-JSCC): its decoded image to
    ``png`` (when kept and asked for), appended to ``records``, printed as a JSON line (``--json``) or a table
    row (``cols``/``heads``, :func:`_fmt_nr`); the progress ``bar`` advances."""
    im = rec.pop("_image", None)
    if png is not None and im is not None:
        imageio.save_image(png, im)
    records.append(rec)
    if args.json:
        print(json.dumps(rec), flush=True)
    else:
        bar.clear()
        print(_fmt_nr(rec, cols, heads), flush=True)
    bar.update(1)


def emit_summary(summary: list[dict], args: argparse.Namespace, note: str, cols, heads, per_attempt: str,
                 field: str) -> None:
    """The per-SNR summary rows: JSON lines (``--json``), or ``note``, a header and one table row each, with the
    per-attempt rates ``summary[per_attempt]`` shown in column ``field``."""
    if args.json:
        for r in summary:
            print(json.dumps(r), flush=True)
    elif summary:
        print(note)
        print(_head_nr(cols, heads))
        for r in summary:
            row = dict(r, **{field: " ".join("-" if b is None else f"{b:.3f}" for b in r[per_attempt])})
            print(_fmt_nr(row, cols, heads))


def _run_nr(args: argparse.Namespace, snrs: list[float], bh: int, bw: int, files: list,
            chans: dict[float, channel.SymbolChannel]) -> int:
    """``infercom simulate --system nr``: per image one :class:`~infercom.nr.harq.NrImageTx` (budget and JPEG
    once), per SNR the attempts of :func:`simulate_image_nr` with ``default_rng([seed, image, snr])``."""
    from .nr.harq import MAX_ATTEMPTS, NrImageTx  # noqa: PLC0415
    from .nr.tbs import parse_code_rate  # noqa: PLC0415

    try:
        rate = parse_code_rate(args.code_rate)
        max_att = args.max_attempts if args.max_attempts is not None else args.attempts
        if not 1 <= max_att <= MAX_ATTEMPTS:
            raise ValueError(f"--max-attempts must be in 1..{MAX_ATTEMPTS}")
        link.LinkConfig(bh, bw, args.planes)                   # validates --planes
    except ValueError as exc:
        print(f"infercom simulate: {exc}", file=sys.stderr)
        return 2
    from tqdm import tqdm  # noqa: PLC0415

    records: list[dict] = []
    save_dir = Path(args.save_images) if args.save_images else None
    rc = 0
    try:
        if not args.json:
            print(f"# system nr, budget {args.budget} at rate 1/{bh * bw} ({bh}x{bw}), planes {args.planes}, "
                  f"code rate {rate}, harq {args.harq}, max attempts {max_att}, fading {args.fading}"
                  f"{'/' + args.fading_per if args.fading == 'block' else ''}, snr mode {args.snr_mode}, "
                  f"seed {args.seed}")
            print(_head_nr(_NR_COLS, _NR_HEAD))
        bar = tqdm(total=len(files) * len(snrs), file=sys.stderr, unit="run", disable=None)
        for i, f, img in _loaded(files, bar, len(snrs)):
            try:
                tx = NrImageTx(img, args.budget, rate, bh, bw, args.planes, args.harq, max_att)
            except ValueError as exc:                          # e.g. a budget below any JPEG: no fallback
                print(f"infercom simulate: {f.name}: {exc}", file=sys.stderr)
                rc = 2
                break
            cache: dict = {}
            for j, s in enumerate(snrs):
                rng = np.random.default_rng([args.seed, i, j])
                rec = {"image": f.name}
                rec.update(simulate_image_nr(tx, chans[s], rng, final_metrics=not args.no_ssim,
                                             keep_image=save_dir is not None, metrics_cache=cache))
                rec["seed"] = args.seed
                emit_record(rec, args, bar, records, save_dir and save_dir / f"{f.stem}_snr{s:g}_nr.png",
                            _NR_COLS, _NR_HEAD)
        bar.close()
        emit_summary(summarize_nr(records) if records else [], args,
                     "# per SNR: image success rate, BLER per attempt (CRC after combining), means over decoded "
                     "images", _NR_SUM_COLS, _NR_SUM_HEAD, "bler_per_attempt", "bler")
    finally:
        if args.out:
            _write_records(Path(args.out), records + (summarize_nr(records) if records else []))
    return rc
