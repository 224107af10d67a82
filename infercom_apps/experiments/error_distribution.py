# SPDX-License-Identifier: GPL-3.0-or-later
"""``error-distribution``: structured residual errors against scattered ones, restored by the same restorer.

At rate 1/9 (3x3 blocks, N low-res values per image) and equal channel uses, three transmitters (``variant``):

* ``uncoded+interleaver``: the InferCom link as is (8 planes, *equal* power, so that power allocation does not
  confound the comparison; :func:`infercom.link.encode_image`), 4 N channel uses;
* ``uncoded``: the same symbols sent in pre-interleaver (plane-major) order, so consecutive channel symbols
  carry consecutive values of a plane; the receiver puts them back in the transmitted order and demaps with
  the link's own :func:`infercom.link.soft_to_llr`;
* ``conv-1/2-K7``: the top 4 planes (bits 7..4, plane-major, MSB first) through the project's K=7 rate-1/2
  convolutional code (:func:`infercom.fec.encode`, zero tail), Gray QPSK at unit power, soft Viterbi
  (:func:`infercom.fec.viterbi`); decoded values = top 4 bits + 7.5 (the MMSE mid-point of the unsent low planes),
  ``coded bits / 2 = 4 N + 6`` channel uses.

Channel: block Rayleigh fading with one coefficient *per frame* (whatever ``--fading-per`` says: structure
needs fades shorter than an image), ideal CSI, the command's ``--snr-mode`` and ``--frame-len-log2`` (default
the frame format's 2**15 symbols; the quick variant's 192x256 crops carry 1/8 of a Kodak image's symbols, so
there the default is 2**12 and a crop spans as many frames, about two per bit plane, as a full image does:
with 2**15 a whole plane of a crop would sit in one frame and a fade could not be spatially structured). All
variants of one (image, Es/N0) share the generator seed, hence the fading draw. Es/N0 -8 ... +2 dB in 2 dB
steps (quick: -6, 0).

Row fields: ``channel_uses`` (this variant's complex symbols) and ``channel_uses_link`` (the uncoded 8-plane
link's for the same image); ``ber_top4`` (BER over planes 7..4); ``value_error_rate`` (fraction of low-res
values whose top 4 bits -- the 16-level value every variant carries -- are decided wrongly: hard decisions,
for conv after Viterbi); ``clustering`` (of the wrong values with a right and a lower neighbour in the same
colour channel, the fraction with at least one of them also wrong; None without errors) and
``clustering_iid`` (``1 - (1 - value_error_rate)**2``, what independently scattered errors give);
``clustering_bits`` (the same per bit plane: of the wrong bits of planes 7..4, the fraction whose right or
lower neighbour value has that plane's bit wrong too), ``clustering_bits_iid`` (its value for independent
errors at each plane's BER) and ``clustering_excess`` (their difference: 0 for scattered errors, > 0 for
structured ones). The value-level figure saturates at the uncoded link's error rates (most values have one
of their four planes wrong, and a value's planes lie in different frames), so the interleaver's effect is
judged on the bit-level excess;
``psnr`` (dB) / ``ssim`` / ``niqe`` / ``coarse_ssim`` / ``req_met`` of the restored image
(:func:`.systems.score_output`, restorer ``ctx.restorers[-1]``) and ``psnr_bicubic`` (dB) of the plain
bicubic upsampling of the same observation (:func:`infercom.link.upsample`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from infercom import channel, fec, interleave, link, metrics, planes, qpsk, source

from . import report
from .runner import point_rng
from .systems import Context, observe_rx, resource, score_output

#: |LLR| given to the Viterbi decoder's hard bits (certain: P(error) = e^-30)
HARD_LLR = 30.0

SNRS = [-8.0, -6.0, -4.0, -2.0, 0.0, 2.0]
QUICK_SNRS = [-6.0, 0.0]
RATE = "1/9"
BH = BW = 3
VARIANTS = ["uncoded+interleaver", "uncoded", "conv-1/2-K7"]
#: planes the convolutional variant carries (bits 7..4); every variant's value errors are counted on them
TOP = 4
STRUCTURE = ["clustering", "clustering_iid", "clustering_bits", "clustering_bits_iid", "clustering_excess"]
COLUMNS = ["image", "variant", "snr_db", "frame_len", "channel_uses", "channel_uses_link", "value_error_rate",
           "ber_top4", *STRUCTURE, "psnr", "ssim", "niqe", "coarse_ssim", "clip_iqa", "clip_sim", "req_met",
           "psnr_bicubic"]
SCORES = ["channel_uses", "value_error_rate", "ber_top4", *STRUCTURE, "psnr", "ssim", "niqe", "coarse_ssim",
          "clip_iqa", "clip_sim", "req_met", "psnr_bicubic"]


def link_config() -> link.LinkConfig:
    """The uncoded variants' link: 3x3 blocks, 8 planes, equal power."""
    return link.LinkConfig(bh=BH, bw=BW, planes=8, profile="equal")


def frame_len(ctx: Context) -> int:
    """Symbols per frame (fading block): ``--frame-len-log2`` if given, else the frame format's default (the
    quick variant: 1/8 of it, as its crops have 1/8 of a Kodak image's symbols)."""
    if ctx.frame_len is not None:
        return int(ctx.frame_len)
    return channel.default_frame_len() // (8 if ctx.quick else 1)


def frame_channel(snr_db: float, ctx: Context) -> channel.SymbolChannel:
    """Block Rayleigh fading per frame at Es/N0 ``snr_db`` (dB), the context's SNR mode, :func:`frame_len`."""
    return channel.SymbolChannel(snr_db=float(snr_db), fading="block", fading_per="frame", snr_mode=ctx.snr_mode,
                                 frame_len=frame_len(ctx))


def plan(ctx: Context) -> list[dict]:
    snrs = QUICK_SNRS if ctx.quick else SNRS
    return [{"image": i, "snr_db": s, "variant": v} for i in range(len(ctx.images)) for s in snrs for v in VARIANTS]


# ------------------------------------------------------------------------------------------ error statistics
def clustering(wrong: np.ndarray) -> float | None:
    """Of the wrong values (bool (h, w, C)) that have a right and a lower neighbour, the fraction with at least
    one of the two also wrong (same colour channel); None when none is wrong."""
    w = wrong[:-1, :-1, :]
    nb = wrong[:-1, 1:, :] | wrong[1:, :-1, :]
    n = int(w.sum())
    return float((w & nb).sum() / n) if n else None


def iid_clustering(p: float) -> float:
    """:func:`clustering` of errors scattered independently with probability ``p``: ``1 - (1 - p)**2``."""
    return 1.0 - (1.0 - p) ** 2


def bit_clustering(bad: np.ndarray, shape: tuple[int, int, int]) -> tuple[float | None, float | None]:
    """:func:`clustering` per bit plane, pooled over the planes of ``bad`` (bool (planes, N)), and its value
    for independent errors at each plane's BER (weighted alike, by the planes' counted errors)."""
    hit = n = iid = 0.0
    for plane in bad:
        w = plane.reshape(shape)
        inner = w[:-1, :-1, :]
        k = float(inner.sum())
        hit += float((inner & (w[:-1, 1:, :] | w[1:, :-1, :])).sum())
        n += k
        iid += k * iid_clustering(float(plane.mean()))
    return (hit / n, iid / n) if n else (None, None)


def error_stats(true_bits: np.ndarray, got_bits: np.ndarray, shape: tuple[int, int, int]) -> dict:
    """Bit and value error figures of the top planes: ``true_bits`` / ``got_bits`` (TOP, N) MSB first."""
    bad = got_bits != true_bits
    wrong = bad.any(axis=0).reshape(shape)
    ver = float(wrong.mean())
    cb, cb_iid = bit_clustering(bad, shape)
    return {"ber_top4": float(bad.mean()), "value_error_rate": ver, "clustering": clustering(wrong),
            "clustering_iid": iid_clustering(ver), "clustering_bits": cb, "clustering_bits_iid": cb_iid,
            "clustering_excess": None if cb is None else cb - cb_iid}


# ----------------------------------------------------------------------------------------------- restoring
def restore_and_score(img: np.ndarray, obs: np.ndarray, meta: dict, lay: link.ImageLayout, ctx: Context) -> dict:
    """Restore the low-res observation ``obs`` (float (h, w, C), restorer ``meta`` of
    :func:`.systems.observe_rx`) with ``ctx.restorers[-1]`` as the server does; the restored image's scores and
    ``psnr_bicubic`` (dB)."""
    from receiver_server.restorers.base import restore_for_gate

    out = restore_for_gate(resource("restorer", ctx.restorers[-1], ctx), obs, meta)
    bicubic = link.upsample(obs, lay, "bicubic")
    return {**score_output(img, out, ctx), "psnr_bicubic": float(min(metrics.psnr(img, bicubic), 100.0))}


# ------------------------------------------------------------------------------------------------- variants
def uncoded(img: np.ndarray, chan: channel.SymbolChannel, rng: np.random.Generator, interleaved: bool) -> dict:
    """The uncoded 8-plane link, with or without its interleaver on the channel. Returns ``llr`` (8, N),
    ``lay``, ``cfg``, ``channel_uses`` and ``snr_db`` (realised, dB)."""
    cfg = link_config()
    x, lay = link.encode_image(img, cfg)
    if interleaved:
        rx = chan(x, rng)
        y, nv = rx.y, rx.noise_var
    else:
        perm = interleave.permutation(lay.n_symbols, interleave.get_keyring(None).key(cfg.key_id))
        rx = chan(interleave.deinterleave(x, perm), rng)          # pre-interleaver (plane-major) order
        y = interleave.interleave(rx.y, perm)                      # back in the order the link demaps
        nv = rx.noise_var if np.ndim(rx.noise_var) == 0 else interleave.interleave(np.asarray(rx.noise_var), perm)
    llr = link.soft_to_llr(y, nv, lay, cfg)
    return {"llr": llr, "lay": lay, "cfg": cfg, "channel_uses": int(x.size), "rx": rx}


def conv(values: np.ndarray, chan: channel.SymbolChannel, rng: np.random.Generator) -> dict:
    """The top TOP planes of ``values`` (uint8 (N,)) over the K=7 rate-1/2 code and unit-power Gray QPSK.
    Returns the decoded ``bits`` (TOP, N), ``channel_uses`` and ``snr_db`` (realised, dB)."""
    info = planes.values_to_planes(values, TOP).reshape(-1)
    coded = fec.encode(info)
    x = qpsk.modulate(coded[0::2], coded[1::2], 1.0)
    rx = chan(x, rng)
    l_i, l_q = qpsk.bit_llrs(rx.y, rx.noise_var, 1.0)
    llr = np.empty(coded.size, np.float32)
    llr[0::2], llr[1::2] = l_i, l_q
    bits = fec.viterbi(llr, info.size).reshape(TOP, values.size)
    return {"bits": bits, "channel_uses": int(x.size), "rx": rx}


def evaluate(p: dict, ctx: Context) -> dict:
    img = ctx.image(p["image"])
    name = ctx.image_name(p["image"])
    chan = frame_channel(p["snr_db"], ctx)
    rng = point_rng(ctx.seed, "channel", name, p["snr_db"], RATE)       # shared by the variants
    cfg = link_config()
    lay = link.layout(img.shape[0], img.shape[1], img.shape[2], cfg)
    low_true = source.lpf_encode(img, BH, BW)
    values = low_true.reshape(-1)
    true_bits = planes.values_to_planes(values, TOP)
    shape = (lay.low_h, lay.low_w, lay.channels)
    if p["variant"] == "conv-1/2-K7":
        res = conv(values, chan, rng)
        got = res["bits"]
        # Viterbi gives no reliabilities: the decoded planes are certain, the others unknown (LLR 0)
        llr = np.zeros((cfg.planes, values.size), np.float32)
        llr[:TOP] = np.where(got.astype(bool), -HARD_LLR, HARD_LLR)
    else:
        res = uncoded(img, chan, rng, interleaved=p["variant"] == "uncoded+interleaver")
        llr = res["llr"]
        got = qpsk.hard_bits(llr[:TOP])
    obs, meta = observe_rx(llr, lay, cfg, res["rx"], chan.block_len)
    row = {"image": name, "variant": p["variant"], "snr_db": p["snr_db"], "frame_len": chan.block_len,
           "channel_uses": res["channel_uses"],
           "channel_uses_link": int(lay.n_symbols), **error_stats(true_bits, got, shape)}
    row.update(restore_and_score(img, obs, meta, lay, ctx))
    return row


# ------------------------------------------------------------------------------------------------- summary
def _series(means: list[dict], variant: str, field: str) -> dict[float, float | None]:
    return {m["snr_db"]: m[field] for m in means if m["variant"] == variant}


def clustering_checks(means: list[dict]) -> dict:
    """``conv_errors_clustered``: at every Es/N0 where the conv variant has errors, its mean (value-level)
    clustering exceeds the interleaved link's; ``interleaver_scatters``: at every Es/N0 where both uncoded
    variants have errors, the interleaved link's clustering excess over independent errors (bit level) is
    below the non-interleaved one's (the value-level figures are dominated by the error rate itself)."""
    a, b, c = "uncoded+interleaver", "uncoded", "conv-1/2-K7"
    ver = {v: _series(means, v, "value_error_rate") for v in VARIANTS}
    cl = {v: _series(means, v, "clustering") for v in VARIANTS}
    ex = {v: _series(means, v, "clustering_excess") for v in VARIANTS}
    conv_ok = all(cl[c][s] is not None and cl[a].get(s) is not None and cl[c][s] > cl[a][s]
                  for s in ver[c] if ver[c][s])
    both = [s for s in ver[a] if ver[a][s] and ver[b].get(s)]
    inter_ok = all(ex[a][s] is not None and ex[b][s] is not None and ex[a][s] < ex[b][s] for s in both)
    return {"conv_errors_clustered": bool(conv_ok), "interleaver_scatters": bool(inter_ok)}


def error_rate_falls(records: list[dict], variant: str, z: float = 2.0) -> bool:
    """Whether ``variant``'s mean value error rate is non-increasing with Es/N0 within the sampling error: no
    rise between adjacent Es/N0 points above ``z`` standard errors of the difference of the two means (over
    images; 0 with one image). The fading draw of each (image, Es/N0) moves an image's error rate by several
    per cent (most for the non-interleaved link, where one fade takes half a plane), so a strict comparison of
    means over few images would test the draws, not the link."""
    per: dict[float, list[float]] = {}
    for r in records:
        if r["variant"] == variant and r["value_error_rate"] is not None:
            per.setdefault(r["snr_db"], []).append(float(r["value_error_rate"]))
    stats = [(np.mean(v), np.var(v, ddof=1) / len(v) if len(v) > 1 else 0.0) for _, v in sorted(per.items())]
    return all(m1 - m0 <= z * np.sqrt(v0 + v1) for (m0, v0), (m1, v1) in zip(stats, stats[1:]))


def summarise(records: list[dict], ctx: Context, out: Path) -> dict:
    means = report.group_means(records, ("variant", "snr_db"), SCORES)
    report.write_table(out / "summary.csv", means)
    cu = {m["variant"]: m["channel_uses"] for m in means}
    restorer = ctx.restorers[-1]

    def label(v):
        return f"{v} ({cu.get(v, 0):.0f} ch. uses/image)"

    xlabel = "Es/N0 (dB), block Rayleigh fading per frame"
    report.line_figure(out / "psnr.png", means, "snr_db", "psnr", "variant", xlabel, "PSNR (dB)",
                       f"error-distribution: PSNR after {restorer}, rate {RATE}", label)
    report.line_figure(out / "value_error_rate.png", means, "snr_db", "value_error_rate", "variant", xlabel,
                       "value error rate (top 4 bits wrong, share of values)",
                       f"error-distribution: low-res value errors, rate {RATE}", label, logy=True)
    report.line_figure(out / "clustering.png", means, "snr_db", "clustering", "variant", xlabel,
                       "clustering (share of wrong values with a wrong neighbour)",
                       "error-distribution: error structure (independent errors: 1-(1-VER)^2)", label)
    report.line_figure(out / "clustering_excess.png", means, "snr_db", "clustering_excess", "variant", xlabel,
                       "bit-level clustering minus independent errors' (share)",
                       "error-distribution: error structure beyond the error rate (0: scattered)", label)
    checks = clustering_checks(means)
    checks["ber_falls"] = all(error_rate_falls(records, v) for v in ("uncoded+interleaver", "uncoded"))
    a, b = _series(means, "uncoded+interleaver", "psnr"), _series(means, "uncoded", "psnr")
    gain = {s: a[s] - b[s] for s in a if a[s] is not None and b.get(s) is not None}
    cols = ["variant", "snr_db", "channel_uses", "value_error_rate", "ber_top4", "clustering", "clustering_iid",
            "clustering_excess", "psnr", "ssim", "niqe", "coarse_ssim", "req_met", "psnr_bicubic"]
    md = "\n".join([
        f"Means over images per variant and Es/N0 (dB), rate {RATE}, one attempt, block Rayleigh fading per "
        f"frame of {frame_len(ctx)} symbols ({ctx.snr_mode} SNR), restorer {restorer}. Value errors and "
        "clustering count the top 4 bits of each low-res value; clustering_iid is what independently scattered "
        "errors would give; the excess is the bit-level clustering beyond independent errors'.", "",
        report.markdown_table(means, cols, ["variant", "Es/N0 dB", "ch. uses", "value err.", "BER top 4",
                                            "clustering", "clust. iid", "excess (bits)", "PSNR dB", "SSIM",
                                            "NIQE", "coarse SSIM", "req. met", "bicubic PSNR dB"]), "",
        "Restored PSNR gain of the interleaver (uncoded+interleaver minus uncoded, dB): "
        + ", ".join(f"{g:+.2f} at {s:g} dB" for s, g in sorted(gain.items())) + ".", "",
        "ber_falls: both uncoded variants' mean value error rate non-increasing with Es/N0 within 2 standard "
        "errors (over images); interleaver_scatters compares the bit-level clustering excess.", "",
        "Checks: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in checks.items()) + "."])
    return {"markdown": md, "means": means, "psnr_gain_interleaver_db": gain, "checks": checks}
