# SPDX-License-Identifier: GPL-3.0-or-later
"""The systems an experiment compares, each as "one image at one operating point -> one row", over the
project's one channel (:class:`infercom.channel.SymbolChannel`), plus the output scoring every system's image
gets alike (:func:`score_output`) and the QoE requirement (:func:`meets_requirement`).

Systems (``system`` column):

* ``infercom/<restorer>``: the InferCom link (:func:`infercom.link.encode_image`, the importance profile) at
  block size ``bh x bw``; the receiver Chase-combines the attempts and the server's gate
  (:class:`receiver_server.gate.Gate`: the restorer, the server's default QoE set with that restorer's
  calibrated thresholds, :func:`receiver_server.policy.decide` in Chase mode) judges each attempt;
  ``infercom-niqe/<restorer>``: the same with NIQE alone as the trigger (Deep-JSCC's);
* ``nr``: the 5G-NR baseline (:class:`infercom.nr.harq.NrImageTx`: JPEG at the InferCom link's channel uses of
  the same rate, LDPC code rate 1/3, HARQ triggered by the CRC: Chase combining as in the papers, or
  incremental redundancy with ``--nr-harq ir``). An image that never
  decodes is shown as mid-grey (128): what the receiver has to display;
* ``deepjscc/<preset>``: the Deep-JSCC baseline (:func:`deepjscc.simulate.simulate_image_deepjscc`, its QoE
  trigger = the server's NIQE gate), ``channel-uses`` (equal channel uses with InferCom at rate 1/9) or
  ``paper`` (bandwidth ratio k/n = 1/12).

Channel draws: a point's generator is seeded from (base seed, image, Es/N0, rate) and *not* the system
(:func:`infercom_apps.experiments.runner.point_rng`), so at one operating point every system's first draw
(the fading coefficients) comes from the same stream. Heavy objects (restorers, metrics, codecs) are built
once per worker process (:func:`resource`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from infercom import channel, chase, imageio, link, metrics, source
from receiver_server.qoe.requirement import coarse_ssim

#: the papers' compression rates and the InferCom block size of each (bh x bw = 1 / rate)
RATE_BLOCKS: dict[str, tuple[int, int]] = {"1/25": (5, 5), "1/16": (4, 4), "1/9": (3, 3), "1/4": (2, 2),
                                           "1/2": (1, 2), "1": (1, 1)}
#: Deep-JSCC presets with a shipped checkpoint, and the compression rate (bandwidth ratio k/n) each is
#: placed at on the papers' axis (``channel-uses`` spends InferCom 1/9's channel uses)
DEEPJSCC_RATES: dict[str, str] = {"channel-uses": "1/9", "paper": "1/12"}
#: the grey an undecodable image is shown as
LOST_GREY = 128


@dataclass(frozen=True)
class Context:
    """What every point of a run shares (picklable: sent once to each worker). Units: dB for SNRs."""

    images: tuple[str, ...]
    seed: int = 0
    quick: bool = False
    crop: tuple[int, int] | None = None         # centre crop (H, W) of every image (the quick variants)
    restorers: tuple[str, ...] = ("bicubic", "infercom-restorer")
    clip: str | None = None                       # a local CLIP model directory: adds clip_iqa / clip_sim
    max_attempts: int = 4
    fading: str = "block"
    fading_per: str = "image"
    snr_mode: str = "instantaneous"
    frame_len: int | None = None
    device: str = "cpu"
    nr_harq: str = "chase"                        # the NR baseline's HARQ: the papers' Chase, or "ir"

    def channel(self, snr_db: float) -> channel.SymbolChannel:
        return channel.SymbolChannel(snr_db=float(snr_db), fading=self.fading, fading_per=self.fading_per,
                                     snr_mode=self.snr_mode, frame_len=self.frame_len)

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` (uint8 (H, W, 3); grey images replicated), centre-cropped to ``crop`` if set."""
        key = ("image", self.images[index], self.crop)
        if key not in _RES:
            img = source.as_image3(imageio.load_image(self.images[index]))
            if img.shape[2] == 1:
                img = np.repeat(img, 3, axis=2)
            if self.crop is not None:
                h, w = min(self.crop[0], img.shape[0]), min(self.crop[1], img.shape[1])
                y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
                img = np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w])
            _forget("image")
            _RES[key] = img
        return _RES[key]

    def image_name(self, index: int) -> str:
        return Path(self.images[index]).stem


_RES: dict[tuple, Any] = {}


def _forget(kind: str) -> None:
    """Drop the cached objects of ``kind`` (one image and its NR transmitter are kept at a time)."""
    for k in [k for k in _RES if k[0] == kind]:
        del _RES[k]


def resource(kind: str, name: str, ctx: Context):
    """A per-process cached object: ``("gate", restorer)`` (the server's gate), ``("niqe_gate", restorer)`` (the
    same with NIQE alone, Deep-JSCC's trigger), ``("restorer", name)``, ``("metric", name)``,
    ``("codec", preset)``."""
    key = (kind, name, ctx.device, ctx.clip if kind == "metric" else None,
           ctx.max_attempts if kind in ("gate", "niqe_gate") else None)
    if key in _RES:
        return _RES[key]
    if kind == "restorer":
        from receiver_server.restorers import get_restorer

        obj = get_restorer(name, ctx.device)
    elif kind in ("gate", "niqe_gate"):
        from receiver_server.config import PolicyConfig
        from receiver_server.gate import Gate

        obj = Gate(resource("restorer", name, ctx), metrics=("niqe",) if kind == "niqe_gate" else None,
                   policy=PolicyConfig(mode="chase", max_attempts=ctx.max_attempts))
    elif kind == "metric":
        from receiver_server.qoe import get_qoe

        cfg = {"path": ctx.clip} if name.startswith("clip") else None
        if name == "clip_sim":
            cfg["against"] = "reference"
        obj = get_qoe(name, ctx.device, cfg)
    elif kind == "codec":
        from deepjscc.simulate import load_codec

        obj = load_codec(name, None, ctx.device)
    else:
        raise ValueError(f"unknown resource kind {kind!r}")
    _RES[key] = obj
    return obj


def rate_value(rate: str) -> float:
    """``"1/9"`` -> 0.111..."""
    return float(Fraction(rate))


def channel_uses_per_pixel(channel_uses: int, img: np.ndarray) -> float:
    """Complex channel uses per image pixel (``H x W``; all colour channels together)."""
    return channel_uses / float(img.shape[0] * img.shape[1])


# ---------------------------------------------------------------------------------------------- scoring
@functools.lru_cache(maxsize=2)
def requirement_thresholds(clip: bool) -> dict[str, float]:
    """The requirement's thresholds: with CLIP the papers' (``clip_iqa`` >= 0.8, ``clip_sim`` >= 0.9,
    :data:`receiver_server.qoe.thresholds.PAPER_DEFAULTS`); offline ``niqe`` <= the server's calibrated NIQE
    threshold of its default entry (what Deep-JSCC's gate applies too) and ``coarse_ssim`` >= 0.80
    (:mod:`receiver_server.qoe.requirement`)."""
    from receiver_server.qoe.requirement import offline_thresholds
    from receiver_server.qoe.thresholds import PAPER_DEFAULTS

    return dict(PAPER_DEFAULTS) if clip else offline_thresholds()


def score_output(original: np.ndarray, output: np.ndarray | None, ctx: Context) -> dict:
    """Evaluation scores of a system's output image against the original (None: lost, scored as mid-grey):
    ``psnr`` (dB), ``ssim``, ``niqe`` (None below two 96x96 patches), ``coarse_ssim``, ``clip_iqa`` and
    ``clip_sim`` (None without ``ctx.clip``), and ``req_met`` (:func:`meets_requirement`)."""
    out = np.full_like(original, LOST_GREY) if output is None else source.as_image3(output)
    niqe = resource("metric", "niqe", ctx)
    s = {"psnr": float(min(metrics.psnr(original, out), 100.0)), "ssim": float(metrics.ssim(original, out)),
         "niqe": float(niqe.score(out)) if niqe.applies(*out.shape[:2]) else None,
         "coarse_ssim": coarse_ssim(original, out), "clip_iqa": None, "clip_sim": None}
    if ctx.clip:
        s["clip_iqa"] = float(resource("metric", "clip_iqa", ctx).score(out))
        s["clip_sim"] = float(resource("metric", "clip_sim", ctx).score(out, None, {"reference": original}))
    s["req_met"] = meets_requirement(s, ctx)
    return s


def meets_requirement(s: dict, ctx: Context) -> bool:
    """The QoE requirement on one output's scores (:func:`requirement_thresholds`): with CLIP weights the
    papers' (CLIP-IQA >= 0.8 and CLIP similarity to the original >= 0.9); offline NIQE at most the server's
    threshold (where NIQE applies: two 96x96 patches) and coarse SSIM >= 0.80."""
    from receiver_server.qoe.requirement import meets_offline

    t = dict(requirement_thresholds(bool(ctx.clip)))
    if ctx.clip:
        return bool(s["clip_iqa"] >= t["clip_iqa"] and s["clip_sim"] >= t["clip_sim"])
    return meets_offline(s["niqe"], s["coarse_ssim"], t)


# ---------------------------------------------------------------------------------------------- systems
def frame_snr_db(noise_var, n_symbols: int, frame_len: int) -> np.ndarray:
    """Combined Es/N0 (dB) per frame of ``frame_len`` payload symbols from the combined noise variances (what
    the receiver's per-frame estimates give the server): ``10 log10 mean(1 / nv)`` over the frame."""
    nv = np.broadcast_to(np.asarray(noise_var, dtype=np.float64), (n_symbols,))
    bounds = np.arange(0, n_symbols, frame_len)
    inv = np.add.reduceat(1.0 / nv, bounds) / np.diff(np.append(bounds, n_symbols))
    with np.errstate(divide="ignore"):
        return 10 * np.log10(inv)


def infercom_attempts(img: np.ndarray, rate: str, chan: channel.SymbolChannel, rng: np.random.Generator,
                      restorer: str, ctx: Context, max_attempts: int, profile: str = "importance",
                      gate: str = "gate") -> dict:
    """One image over the InferCom link at ``rate`` with the server's gate (restorer ``restorer``; ``gate``
    ``"niqe_gate"``: NIQE alone, Deep-JSCC's trigger), Chase retransmission up to ``max_attempts``. Returns the row fields: ``attempts_used``, ``acked``, ``decision``,
    ``gate_*`` scores of the last attempt, ``ber`` of the last combined observation (all planes),
    ``channel_uses``, and ``_image`` (the restored image of the last attempt)."""
    bh, bw = RATE_BLOCKS[rate]
    cfg = link.LinkConfig(bh=bh, bw=bw, planes=8, profile=profile)
    x, lay = link.encode_image(img, cfg)
    gate = resource(gate, restorer, ctx)
    comb = chase.ChaseCombiner(x.size)
    flen = chan.frame_len or channel.default_frame_len()
    j = None
    for a in range(max_attempts):
        rx = chan(x, rng)
        comb.add(rx.y, rx.noise_var)
        y, nv = comb.result()
        j = gate.judge(y, nv, frame_snr_db(nv, x.size, flen), cfg, lay, a, a + 1)
        if j.decision.decision == "ACK":
            break
    used = a + 1
    low_true = source.lpf_encode(img, bh, bw).astype(np.float64)
    return {"attempts_used": used, "acked": j.decision.decision == "ACK", "decision": j.decision.decision,
            **{f"gate_{k}": v for k, v in sorted(j.scores.items())},
            "lowres_mse": float(np.mean((j.obs - low_true) ** 2)),
            "channel_uses": int(x.size) * used, "_image": j.restored}


def observe_rx(llr: np.ndarray, lay: link.ImageLayout, cfg: link.LinkConfig, rx: channel.Received,
               frame_len: int) -> tuple[np.ndarray, dict]:
    """One attempt's MMSE observation and restorer meta (:func:`infercom.link.observe`) as the server builds
    them: ``snr_db`` the realised Es/N0 of ``rx`` (dB), the SNR spread over its ``frame_len``-symbol frames."""
    spread = channel.snr_spread_db(channel.frame_snr_db(rx.noise_var, frame_len))
    return link.observe(llr, lay, cfg, float(rx.snr_db), 1, spread)


def infercom_once(img: np.ndarray, rate: str, chan: channel.SymbolChannel, rng: np.random.Generator,
                  restorers: tuple[str, ...], ctx: Context, profile: str = "importance") -> dict:
    """One attempt over the InferCom link; the same observation restored by each of ``restorers``. Returns
    ``{"ber_per_plane", "ber", "channel_uses", "snr_db" (combined, dB), "images": {restorer: uint8}}``."""
    from infercom.simulate import lowres_metrics
    from receiver_server.restorers.base import restore_for_gate

    bh, bw = RATE_BLOCKS[rate]
    cfg = link.LinkConfig(bh=bh, bw=bw, planes=8, profile=profile)
    x, lay = link.encode_image(img, cfg)
    rx = chan(x, rng)
    llr = link.soft_to_llr(rx.y, rx.noise_var, lay, cfg)
    obs, meta = observe_rx(llr, lay, cfg, rx, chan.block_len)
    stats, _ = lowres_metrics(img, llr, obs, link.llr_to_lowres(llr, lay, cfg, "hard"), cfg)
    images = {r: restore_for_gate(resource("restorer", r, ctx), obs, meta) for r in restorers}
    return {"ber_per_plane": stats["ber_per_plane"], "ber": stats["ber"], "channel_uses": int(x.size),
            "images": images}


def nr_point(img: np.ndarray, rate: str, chan: channel.SymbolChannel, rng: np.random.Generator,
             max_attempts: int, image_key: Any = None, harq: str = "chase") -> dict:
    """One image over the NR baseline at the channel uses of InferCom's ``rate``: ``success``,
    ``attempts_used``, ``crc_ok_first``, ``channel_uses``, ``jpeg_quality``, ``tx_ops`` and ``_image`` (the
    decoded image, None when lost). ``harq``: ``"chase"`` (the papers' NR baseline) or ``"ir"``. ``image_key``: identifies ``img`` so that its transmitter (the JPEG fit)
    is reused across the image's Es/N0 points in this process (None: not cached)."""
    from infercom.nr.harq import NrImageTx
    from infercom.simulate import simulate_image_nr

    bh, bw = RATE_BLOCKS[rate]
    key = ("nrtx", image_key, rate, max_attempts, harq)
    tx = _RES.get(key) if image_key is not None else None
    if tx is None:
        tx = NrImageTx(img, "channel-uses", "1/3", bh, bw, 8, harq, max_attempts)
        if image_key is not None:
            _forget("nrtx")
            _RES[key] = tx
    rec = simulate_image_nr(tx, chan, rng, final_metrics=False, keep_image=True)
    return {"success": rec["success"], "acked": rec["success"], "attempts_used": rec["attempts_used"],
            "crc_ok_first": rec["crc_ok_per_attempt"][0], "channel_uses": rec["channel_uses"],
            "jpeg_quality": rec["jpeg_quality"], "tx_ops": rec["tx_ops"],
            "_image": rec["_image"] if rec["success"] else None}


def deepjscc_point(img: np.ndarray, preset: str, chan: channel.SymbolChannel, rng: np.random.Generator,
                   ctx: Context, max_attempts: int) -> dict:
    """One image over Deep-JSCC ``preset`` with its QoE trigger: ``acked``, ``attempts_used``,
    ``channel_uses``, ``tx_ops`` (encoder FLOPs) and ``_image``."""
    from deepjscc.simulate import make_gate, simulate_image_deepjscc

    key = ("djgate", max_attempts)
    if key not in _RES:
        _RES[key] = make_gate("qoe", max_attempts)
    rec = simulate_image_deepjscc(resource("codec", preset, ctx), img, chan, rng, max_attempts, "qoe",
                                  gate=_RES[key], final_metrics=False, keep_image=True)
    return {"acked": rec["success"], "attempts_used": rec["attempts_used"], "channel_uses": rec["channel_uses"],
            "tx_ops": rec["encoder_flops"], "_image": rec["_image"]}
