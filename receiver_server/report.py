# SPDX-License-Identifier: GPL-3.0-or-later
"""The demo's HTML report: original / received / restored side by side, QoE per attempt, retransmissions and
constellation plots, from the transmission records and the server's per-attempt artifacts.

Inputs: the transmitter records (``infercom.arq`` records, or the GNU Radio loopback's), the server's records
(``records_file``, one JSON line per image) and its ``artifacts_dir`` (one ``.npz`` per attempt: the MMSE
observation, the restored image and a sample of the Chase-combined soft symbols). Output: ``report.html`` and
the images it shows (JPEG/PNG) in one folder, self-contained and relative-linked.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from infercom import link, metrics

__all__ = ["load_artifacts", "write_report", "constellation_png"]


def load_artifacts(artifacts_dir: str | Path, tx_id: int, image_id: int) -> list[dict[str, Any]]:
    """All attempt artifacts of one image, in (generation, attempt) order."""
    out = []
    for p in sorted(Path(artifacts_dir).glob(f"tx{tx_id:03d}_img{image_id:04d}_g*_a*.npz")):
        with np.load(p) as z:
            d = {k: z[k] for k in z.files}
        d["info"] = json.loads(str(d["info"]))
        d["path"] = p
        gen = int(p.stem.split("_g")[1].split("_")[0])
        d["generation"] = gen
        out.append(d)
    out.sort(key=lambda d: (d["generation"], d["info"]["attempt"]))
    return out


def constellation_png(path: Path, samples: list[tuple[str, np.ndarray, np.ndarray | None]], title: str) -> None:
    """Scatter plots of equalised soft symbols, one panel per ``(label, y, plane)``; ``plane`` (0 = MSB plane,
    or None) colours the points by the bit plane they carry (each plane has its own amplitude). PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(samples), figsize=(4.0 * len(samples), 3.8), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, (label, y, plane) in zip(axes[0], samples):
        y = np.asarray(y)
        if plane is None:
            ax.scatter(y.real, y.imag, s=1.5, alpha=0.35, color="tab:blue", rasterized=True)
        else:
            n_pl = int(plane.max()) + 1 if plane.size else 1
            for k in range(n_pl):
                m = plane == k
                if np.any(m):
                    ax.scatter(y.real[m], y.imag[m], s=1.5, alpha=0.45, color=cmap(k / max(n_pl - 1, 1)),
                               label=f"bit {7 - k}", rasterized=True)
            ax.legend(fontsize=6, markerscale=4, loc="upper right", ncol=2)
        lim = float(np.clip(np.percentile(np.abs(np.concatenate([y.real, y.imag])), 99.5) * 1.1, 1.5, 6))
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.axhline(0, color="0.6", lw=0.5)
        ax.axvline(0, color="0.6", lw=0.5)
        ax.set_aspect("equal")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("I")
        ax.set_ylabel("Q")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _save(img: np.ndarray, path: Path) -> str:
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    Image.fromarray(a).save(path, quality=90)
    return path.name


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))


def write_report(out_dir: str | Path, images: list[dict[str, Any]], tx_records: list[dict[str, Any]],
                 server_records: list[dict[str, Any]], artifacts_dir: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``out_dir/report.html``. ``images``: ``[{"tx_id", "image_id", "name", "image" (uint8)}]``;
    ``meta``: run parameters shown at the top (path, SNR, restorer, ...). Returns the report path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tx_by = {(r["tx_id"], r["image_id"]): r for r in tx_records}
    srv_by: dict[tuple[int, int], list[dict]] = {}
    for r in server_records:
        srv_by.setdefault((r["tx_id"], r["image_id"]), []).append(r)
    rows = []
    summary = {"ACK": 0, "FAIL": 0, "other": 0, "retransmissions": 0}
    for im in images:
        key = (im["tx_id"], im["image_id"])
        stem = f"tx{key[0]}_img{key[1]}"
        orig = im["image"]
        tx = tx_by.get(key, {})
        arts = load_artifacts(artifacts_dir, *key)
        outcome = tx.get("outcome") or (srv_by.get(key, [{}])[-1].get("outcome"))
        summary[outcome if outcome in ("ACK", "FAIL") else "other"] += 1
        n_att = int(tx.get("n_attempts") or len(arts) or 1)
        summary["retransmissions"] += max(n_att - 1, 0)
        cells = [f'<figure><img src="{_save(orig, out / f"{stem}_original.jpg")}"><figcaption>original '
                 f'{orig.shape[1]}x{orig.shape[0]}</figcaption></figure>']
        att_rows = []
        if arts:
            first, last = arts[0], arts[-1]
            for a, label in ((first, "first attempt"), (last, "final (Chase-combined)")):
                inf = a["info"]
                lay = link.layout(orig.shape[0], orig.shape[1], orig.shape[2] if orig.ndim == 3 else 1,
                                  link.LinkConfig(bh=inf["bh"], bw=inf["bw"]))
                rec = link.upsample(a["observation"], lay)
                name = _save(rec, out / f"{stem}_received_a{inf['attempt']}.jpg")
                cells.append(f'<figure><img src="{name}"><figcaption>received, {label}: bicubic of MMSE '
                             f'(attempt {inf["attempt"]}, PSNR {metrics.psnr(orig, rec):.2f} dB)</figcaption>'
                             f'</figure>')
            rest = last.get("restored")
            if rest is not None:
                name = _save(rest, out / f"{stem}_restored.jpg")
                cells.append(f'<figure><img src="{name}"><figcaption>restored, final (PSNR '
                             f'{metrics.psnr(orig, rest):.2f} dB)</figcaption></figure>')
            const = out / f"{stem}_constellation.png"
            constellation_png(const, [(f"attempt {a['info']['attempt']} ({a['info']['attempts_combined']} "
                                       f"combined)", a["y_sample"], a.get("plane_sample"))
                                      for a in ((first, last) if len(arts) > 1 else (first,))],
                              f"{im['name']}: equalised payload soft symbols by bit plane")
            cells.append(f'<figure><img class="const" src="{const.name}"><figcaption>constellation</figcaption>'
                         f'</figure>')
            for a in arts:
                inf = a["info"]
                ps = metrics.psnr(orig, a["restored"]) if "restored" in a else None   # early NACK: not restored
                att_rows.append("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in (
                    inf["attempt"], inf["attempts_combined"], f"{inf['bh']}x{inf['bw']}", inf["snr_db"],
                    ", ".join(f"{k} {v:.3f}" for k, v in sorted(inf["scores"].items())) or "–",
                    "not restored" if ps is None else f"{ps:.2f}",
                    inf["decision"], inf["mode"], inf["reason"])) + "</tr>")
        elif srv_by.get(key):         # no restorer artifacts (the NR baseline): the server's own record
            nr_arts = sorted(Path(artifacts_dir).glob(f"nr_tx{key[0]:03d}_img{key[1]:04d}_g*_a*.npz"))
            if nr_arts:
                with np.load(nr_arts[-1]) as z:
                    dec = z["restored"]
                name = _save(dec, out / f"{stem}_decoded.jpg")
                cells.append(f'<figure><img src="{name}"><figcaption>decoded (CRC ok), PSNR '
                             f'{metrics.psnr(orig, dec):.2f} dB</figcaption></figure>')
            for a in srv_by[key][-1]["attempts"]:
                att_rows.append("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in (
                    a.get("attempt"), "–", f"{a.get('bh')}x{a.get('bw')}", (a.get("snr_db") or {}).get("mean"),
                    ", ".join(f"{k} {v:.3f}" for k, v in sorted((a.get("scores") or {}).items())) or "–", "–",
                    a.get("decision"), a.get("mode"), a.get("reason"))) + "</tr>")
        tx_att = tx.get("attempts", [])
        whys = ", ".join(f"{a.get('attempt')}:{a.get('why')}" + (" (timed out)" if a.get("timed_out") else "")
                         for a in tx_att) or "–"
        rows.append(f"""
<section>
<h2>{html.escape(im['name'])} — <span class="{html.escape(str(outcome))}">{html.escape(str(outcome))}</span>
after {n_att} attempt{'s' if n_att != 1 else ''} ({max(n_att - 1, 0)} retransmission{'s' if n_att != 2 else ''})</h2>
<div class="row">{''.join(cells)}</div>
<p>transmitter attempts: {html.escape(whys)}{('; failure: ' + html.escape(tx['failure'])) if tx.get('failure') else ''}</p>
<table><tr><th>attempt</th><th>combined</th><th>block</th><th>Es/N0 combined (dB)</th><th>QoE</th>
<th>PSNR vs original (dB, evaluation only)</th><th>decision</th><th>resend</th><th>reason</th></tr>
{''.join(att_rows) or '<tr><td colspan="9">no attempt reached the server</td></tr>'}</table>
</section>""")
    params = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(v)}</td></tr>" for k, v in meta.items())
    doc = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>gr-infercom closed-loop demo</title>
<style>
body{{font-family:sans-serif;margin:1.5em;max-width:1800px}} .row{{display:flex;gap:8px;flex-wrap:wrap}}
figure{{margin:0}} figure img{{width:340px}} figure img.const{{width:auto;height:200px}}
figcaption{{font-size:12px;max-width:340px}} table{{border-collapse:collapse;font-size:13px;margin:.5em 0}}
td,th{{border:1px solid #bbb;padding:2px 6px;text-align:left}} .ACK{{color:#070}} .FAIL{{color:#b00}}
section{{border-top:2px solid #ddd;margin-top:1em}}
</style></head><body>
<h1>gr-infercom closed-loop demo</h1>
<p>Images go through the uplink (block-mean source coding, bit planes, importance-aware power, uncoded QPSK),
the channel and the receiver; the inference server restores each attempt, scores its QoE and answers ACK/NACK;
a NACK makes the transmitter resend and the server Chase-combines the attempts. Summary: {summary['ACK']} ACK,
{summary['FAIL']} FAIL, {summary['other']} other, {summary['retransmissions']} retransmissions in total.</p>
<table>{params}</table>
{''.join(rows)}
<p>Records: <a href="records.json">records.json</a> (transmitter + server, per image and attempt).</p>
</body></html>"""
    path = out / "report.html"
    path.write_text(doc)
    return path
