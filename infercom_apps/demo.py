# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom demo`` (``make demo``): the closed loop end to end, with an HTML report.

1. starts the inference server (``infercom server`` in a subprocess, loopback address, records + per-attempt
   artifacts into the output folder);
2. sends a few kodak24 images at about -4 dB Es/N0 with block fading through
   * ``--path gnuradio`` (default when GNU Radio and ``gnuradio.infercom`` are installed): the headless GNU
     Radio loopback (``gnuradio.infercom.apps.loopback``: TX controller -> modulator -> fading, RRC, CFO,
     timing offset, AWGN -> burst sync -> demod) whose ``server_link`` streams soft frames to the server and
     whose TX controller acts on its ACK/NACK;
   * ``--path sim``: the symbol-level simulated transmitter (``receiver_server.simlink``: the same encoder and
     frames, a symbol-level channel with genie equalisation) through the same protocol and server;
3. stops the server and writes ``OUT/report.html`` (original / received / restored side by side, QoE per
   attempt, retransmissions, constellation plots) and ``OUT/records.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from infercom.netports import free_tcp_port_pair
from receiver_server.config import PolicyConfig

REPO = Path(__file__).resolve().parents[1]
#: a varied default subset of kodak24 (people, architecture, nature, texture)
DEFAULT_IMAGES = ("kodim03.png", "kodim05.png", "kodim23.png")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--path", choices=("auto", "gnuradio", "sim"), default="auto",
                   help="gnuradio: the GNU Radio loopback flowgraph; sim: symbol-level channel (default: "
                        "gnuradio when installed)")
    p.add_argument("--images", default=None,
                   help="folder of images (default: a few of ../shared/datasets/kodak24 or $INFERCOM_DATASETS)")
    p.add_argument("--n-images", type=int, default=3, help="number of images (default 3)")
    p.add_argument("--snr-db", type=float, default=-4.0,
                   help="Es/N0 in dB, the mean over the fading (default -4)")
    from infercom.channel import add_channel_arguments

    # both paths send raw CN(0,1) fades (snr mode "average"); their frames are the transmitter's own
    add_channel_arguments(p, fading="block", fading_per="image", snr_mode=None, with_frame_len=False)
    p.add_argument("--rate", default="1/9",
                   help="source rate 1/(bh*bw), e.g. 1/9, 1/4, or the block size BHxBW (default 1/9)")
    p.add_argument("--max-attempts", type=int, default=8,
                   help="attempts per image before an explicit FAIL (default 8)")
    p.add_argument("--timeout-s", type=float, default=5.0, help="transmitter feedback timeout (s)")
    p.add_argument("--deadline-s", type=float, default=270.0,
                   help="wall-time limit of the transmission; images not decided by then end FAIL (default 270 s)")
    from receiver_server.restorers import DEFAULT_RESTORER, available

    p.add_argument("--restorer", default=None,
                   help=f"server restorer, one of {', '.join(available())} (default {DEFAULT_RESTORER}; "
                        "see docs/restorers.md)")
    p.add_argument("--qoe", default=None, help="server QoE metrics (default: the offline default set)")
    p.add_argument("--threshold", action="append", default=[], metavar="METRIC=VALUE",
                   help="server ACK threshold for a metric (repeatable; default: the QoE package's)")
    p.add_argument("--no-early-nack", action="store_true",
                   help="the server restores every attempt (default: it NACKs at once, before restoring, the "
                        "attempts whose observation already fails the reliability threshold)")
    p.add_argument("--mode", default="chase", choices=("auto", "chase", "selective", "refine"),
                   help="what a NACK asks for (default chase)")
    p.add_argument("--seed", type=int, default=0)
    from infercom.nr import options as nr_options

    nr_options.add_arguments(p)
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")


def _find_images(args) -> list[Path]:
    from infercom.imageio import list_images

    if args.images:
        files = list_images(args.images)
    else:
        root = Path(os.environ.get("INFERCOM_DATASETS", REPO.parent / "shared" / "datasets")) / "kodak24"
        if not root.is_dir():
            raise ValueError(f"kodak24 not found at {root}; pass --images or set INFERCOM_DATASETS")
        files = [root / n for n in DEFAULT_IMAGES if (root / n).is_file()] or list_images(root)
        if len(files) < args.n_images:
            files += [f for f in list_images(root) if f not in files]
    if args.n_images < 1:
        raise ValueError("--n-images must be >= 1")
    return files[: args.n_images]


def _gnuradio_available() -> bool:
    try:
        import gnuradio.infercom.apps.loopback  # noqa: F401
        return True
    except ImportError:
        return False


class _Progress(threading.Thread):
    """Polls the server's status and prints a line whenever its decisions change."""

    def __init__(self, address: str, n_images: int):
        super().__init__(daemon=True)
        self.address, self.n_images = address, n_images
        self.stop = threading.Event()
        self.last = None
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.poll_once()

    def finish(self) -> None:
        """Stop polling and print the final state once more."""
        self.stop.set()
        self.join(5)
        self.poll_once()

    def poll_once(self) -> None:
        from receiver_server.simlink import status_request
        try:
            st = status_request(self.address, timeout_s=2.0)
        except (TimeoutError, OSError):
            return
        d = st.get("decisions", {})
        cur = (d.get("ACK", 0), d.get("NACK", 0), d.get("FAIL", 0), st["counters"].get("frames_accepted", 0))
        if cur != self.last:
            self.last = cur
            print(f"[demo] {time.monotonic() - self.t0:5.1f} s  frames received {cur[3]:4d}  images decided "
                  f"{cur[0] + cur[2]}/{self.n_images}  (ACK {cur[0]}, FAIL {cur[2]}, NACK so far {cur[1]})",
                  flush=True)


def _early_nacks(srv_records: list[dict]) -> str:
    """``"E of N"``: the server's NACKs that were decided before restoring, of all its NACKs."""
    atts = [a for r in srv_records for a in r.get("attempts", []) if a.get("decision") == "NACK"]
    return f"{sum(bool(a.get('early')) for a in atts)} of {len(atts)}"


def _start_server(args, out: Path, port: int, bh: int, bw: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "infercom_apps.cli", "server", "--bind", f"tcp://127.0.0.1:{port}",
           "--records", str(out / "server_records.jsonl"), "--artifacts-dir", str(out / "artifacts"),
           "--log-file", str(out / "server.log"), "--max-attempts", str(args.max_attempts), "--mode", args.mode,
           "--assembly-timeout", "2.0"]
    if args.restorer:
        cmd += ["--restorer", args.restorer]
    if args.qoe:
        cmd += ["--qoe", args.qoe]
    for t in args.threshold:
        cmd += ["--threshold", t]
    if args.no_early_nack:
        cmd.append("--no-early-nack")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    t_end = time.monotonic() + 120
    while time.monotonic() < t_end:
        line = proc.stdout.readline()
        if line.strip().startswith("{"):
            if json.loads(line).get("event") == "ready":
                return proc
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read()[-2000:]}")
    proc.kill()
    raise RuntimeError("the server did not start within 120 s")


def _run_gnuradio(args, inputs: Path, port: int) -> tuple[list[dict], dict]:
    from gnuradio.infercom.apps import loopback

    p = argparse.ArgumentParser()
    loopback.add_arguments(p)
    argv = ["--images", str(inputs), "--snr-db", str(args.snr_db), "--server", f"tcp://127.0.0.1:{port}",
            "--max-attempts", str(args.max_attempts), "--timeout-s", str(args.timeout_s), "--seed",
            str(args.seed), "--rate", args.rate, "--wall-timeout", f"{args.deadline_s:g}", "--system", args.system,
            "--budget", args.budget, "--code-rate", args.code_rate, "--harq", args.harq]
    if args.fading == "block":
        argv += ["--fading", "block", "--fading-per", args.fading_per]
    report = loopback.run_loopback(p.parse_args(argv))
    tx = [{"tx_id": 0, "image_id": r["image_id"], "outcome": r["tx_outcome"],
           "n_attempts": r["retransmissions"] + 1, "attempts": [],
           "failure": None if r["tx_outcome"] == "ACK" else "see the server record",
           "loopback": {k: v for k, v in r.items() if k not in ("image", "image_id")}} for r in report["images"]]
    return tx, report["summary"]


def _run_sim(args, images, port: int, bh: int, bw: int) -> tuple[list[dict], dict]:
    from infercom.arq import ArqConfig
    from infercom.channel import channel_from_args
    from infercom.link import LinkConfig

    from infercom.nr.options import nr_kwargs

    from infercom.limits import DESIGN_SNR_MAX_DB, DESIGN_SNR_MIN_DB
    from receiver_server.simlink import ChannelSpec, SimTransmitter

    design = int(min(max(round(args.snr_db), DESIGN_SNR_MIN_DB), DESIGN_SNR_MAX_DB))
    tx = SimTransmitter(0, [(i, img, {"name": name}) for i, (name, img) in enumerate(images)],
                        f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{port + 1}",
                        LinkConfig(bh=bh, bw=bw, design_snr_db=design),
                        ArqConfig(max_attempts=args.max_attempts, timeout_s=args.timeout_s),
                        channel_from_args(args, args.snr_db, cls=ChannelSpec, snr_mode="average"),
                        seed=args.seed,
                        nr=nr_kwargs(args))
    t0 = time.perf_counter()
    recs = tx.run(args.deadline_s)
    return recs, {"wall_s": time.perf_counter() - t0, "frames_sent": tx.frames_sent}


def run(args: argparse.Namespace) -> int:
    from infercom.imageio import load_image, parse_rate

    from receiver_server.records import load_records
    from receiver_server.report import write_report

    t_start = time.monotonic()
    try:
        PolicyConfig(max_attempts=args.max_attempts)
        if not 1.0 <= args.deadline_s <= 86400.0:
            raise ValueError(f"--deadline-s must be in [1, 86400] s, got {args.deadline_s:g}")
        bh, bw = parse_rate(args.rate)
        files = _find_images(args)
    except ValueError as exc:
        print(f"infercom demo: {exc}", file=sys.stderr)
        return 2
    path = args.path
    if path == "auto":
        path = "gnuradio" if _gnuradio_available() else "sim"
        if path == "sim":
            print("[demo] GNU Radio loopback not available: using the symbol-level path (--path sim)", flush=True)
    elif path == "gnuradio" and not _gnuradio_available():
        print("infercom demo: gnuradio.infercom is not installed (make oot), or use --path sim", file=sys.stderr)
        return 2
    images = []
    for f in files:                                   # an undecodable file is skipped, as in infercom simulate
        try:
            images.append((f, load_image(f)))
        except ValueError as exc:
            print(f"[demo] skipping {exc}", file=sys.stderr, flush=True)
    if not images:
        print("infercom demo: none of the images could be decoded", file=sys.stderr)
        return 2
    files = [f for f, _ in images]
    images = [(f.name, img) for f, img in images]
    out = Path(args.out)
    for sub in ("artifacts", "inputs"):
        shutil.rmtree(out / sub, ignore_errors=True)
    for f in ("server_records.jsonl", "server.log"):
        (out / f).unlink(missing_ok=True)
    (out / "inputs").mkdir(parents=True)
    for i, f in enumerate(files):                     # links, not copies, in the order of the image ids
        (out / "inputs" / f"{i:02d}_{f.name}").symlink_to(f.resolve())
    print(f"[demo] {len(images)} images ({', '.join(n for n, _ in images)}), Es/N0 {args.snr_db} dB, fading "
          f"{args.fading}, rate 1/{bh * bw}, path {path}, system {args.system}, up to {args.max_attempts} "
          f"attempts", flush=True)
    port = free_tcp_port_pair()
    server = _start_server(args, out, port, bh, bw)
    print(f"[demo] server up on tcp://127.0.0.1:{port} (feedback :{port + 1})", flush=True)
    prog = _Progress(f"tcp://127.0.0.1:{port}", len(images))
    prog.start()
    error = None
    try:
        try:
            if path == "gnuradio":
                tx_records, summary = _run_gnuradio(args, out / "inputs", port)
            else:
                tx_records, summary = _run_sim(args, images, port, bh, bw)
        except Exception as exc:         # noqa: BLE001 - still report what the server saw
            import traceback
            traceback.print_exc()
            error = f"{path} path failed: {exc!r}"
            print(f"[demo] {error}; the report shows the server's records only", file=sys.stderr, flush=True)
            tx_records, summary = [], {"error": error}
        time.sleep(0.5)
        prog.finish()
    finally:
        prog.stop.set()
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    srv_records = load_records(out / "server_records.jsonl") if (out / "server_records.jsonl").exists() else []
    status_line = _last_status(out / "server.log")
    meta = {"path": path, "system": args.system, "images": len(images), "Es/N0 (dB)": args.snr_db, "fading": args.fading,
            "rate": f"1/{bh * bw} ({bh}x{bw} blocks)", "max attempts": args.max_attempts,
            "NACK asks for": args.mode, "restorer": status_line.get("restorer", args.restorer or "default"),
            "QoE (thresholds)": json.dumps(status_line.get("thresholds", {})),
            "transmitter timeout (s)": args.timeout_s, "wall time (s)": round(time.monotonic() - t_start, 1),
            "NACKs decided before restoring (early)": _early_nacks(srv_records)}
    meta.update({f"run: {k}": v for k, v in summary.items() if isinstance(v, (int, float, str)) and v is not None})
    report = write_report(out, [{"tx_id": 0, "image_id": i, "name": n, "image": img}
                                for i, (n, img) in enumerate(images)],
                          tx_records, srv_records, out / "artifacts", meta)
    merged = []
    for i, (n, _) in enumerate(images):
        t = next((r for r in tx_records if r["image_id"] == i), None)
        s_i = [r for r in srv_records if r["image_id"] == i]
        outcome = t["outcome"] if t else (s_i[-1]["outcome"] if s_i else None)
        merged.append({"image": n, "tx_id": 0, "image_id": i, "outcome": outcome, "tx": t,
                       "server": [r for r in srv_records if r["image_id"] == i]})
    (out / "records.json").write_text(json.dumps({"run": meta, "images": merged}, indent=1, default=str))
    acks = sum(m["outcome"] == "ACK" for m in merged)
    fails = sum(m["outcome"] == "FAIL" for m in merged)
    retx = sum(((m["tx"] or {}).get("n_attempts") or sum(len(r["attempts"]) for r in m["server"]) or 1) - 1
               for m in merged)
    print(f"[demo] done in {time.monotonic() - t_start:.1f} s: {acks} ACK, {fails} FAIL, {retx} retransmissions "
          f"(NACKs before restoring: {_early_nacks(srv_records)}); report: {report}", flush=True)
    ok = error is None and all(m["outcome"] in ("ACK", "FAIL") for m in merged) and len(srv_records) >= 1
    return 0 if ok else 1


def _last_status(log: Path) -> dict:
    """The server's ``listening`` log line (restorer, QoE, thresholds)."""
    if not log.exists():
        return {}
    for line in log.read_text().splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if d.get("event") == "listening":
            return d
    return {}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="infercom demo", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
