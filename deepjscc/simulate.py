# SPDX-License-Identifier: GPL-3.0-or-later
"""``infercom simulate --system deepjscc``: the Deep-JSCC baseline through the InferCom link's channel.

Per image and Es/N0 (``snr_db``, dB, per complex channel use with the latent at unit mean power): the codec
(:class:`deepjscc.model.DeepJSCCCodec`, numpy interface) encodes the image once into ``k`` complex latent
symbols; every attempt sends the *same* ``k`` symbols through one call of the project's one channel,
:class:`infercom.channel.SymbolChannel` (AWGN, or block Rayleigh per image / per frame with ideal
equalisation, instantaneous or average SNR: docs/link.md §7.1), with the generator of ``infercom simulate``
(``numpy.random.default_rng([seed, image index, SNR index])``, attempts drawing in turn from it), so for the
same ``k`` the channel draws are the InferCom link's. The receiver Chase-combines the analog symbols of all
attempts so far with the project's MRC (:class:`infercom.chase.ChaseCombiner`: ``y = sum(y_a/nv_a) /
sum(1/nv_a)``, ``nv = 1/sum(1/nv_a)``; two equal-SNR attempts = +3.01 dB) and decodes the combined symbols.

Retransmission rule (:class:`QoEGate`, :class:`PsnrGate`): after each attempt the decoded image is judged;
on a pass the image is acknowledged, else another attempt is sent, up to ``max_attempts``; at the limit the
image ends as an explicit failure (``success`` False; its last decoded image is still scored -- Deep-JSCC
always delivers an image, it just may be bad). Triggers:

* ``qoe`` (default): the InferCom server's gate (:func:`receiver_server.policy.decide`, Chase mode) with the
  server's no-reference naturalness metric ``niqe`` (:mod:`receiver_server.qoe`) at the threshold the server
  applies with its default restorer (:func:`receiver_server.qoe.thresholds.threshold` with
  ``receiver_server.restorers.DEFAULT_RESTORER``; that restorer has no NIQE entry of its own, so this is the
  calibrated default entry, NIQE <= 9.77 in ``receiver_server/qoe/thresholds.json``). The server's other two
  default metrics, ``consistency`` and ``reliability``, and its error-free ("clean") rule score InferCom's
  *observation* (block means and their posterior variance from the LLRs); Deep-JSCC's receiver has no such
  evidence, so they do not apply. As in the server, NIQE is skipped (does not gate: the image passes) for an
  image smaller than two 96x96 patches.
* ``psnr``: an oracle for reference: PSNR of the decoded image against the original >= ``psnr_threshold_db``.

Record per image and SNR (:func:`simulate_image_deepjscc`; ``"record": "image"``), then one
``"record": "summary"`` row per SNR (:func:`summarize_deepjscc`). docs/deepjscc.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from infercom import channel, chase, metrics, source
from infercom.limits import MAX_ATTEMPT
from infercom.simulate import (_channel_fields, _head_nr, _loaded, _write_records, emit_record, emit_summary,
                               mean_snr_db, run_inputs)

from .presets import TRIGGERS

__all__ = ["TRIGGERS", "Verdict", "QoEGate", "PsnrGate", "make_gate", "niqe_or_none", "train_snr_db",
           "simulate_image_deepjscc", "summarize_deepjscc", "run"]

#: the attempt limit of the protocol (attempt numbers 0..MAX_ATTEMPT)
MAX_ATTEMPTS = MAX_ATTEMPT + 1


class Verdict:
    """One judgement of a decoded attempt: ``ok`` (acknowledged), ``decision`` (ACK | NACK | FAIL, the
    server's words), ``reason`` (readable), ``scores`` (metric name -> value; NIQE unitless, PSNR in dB)."""

    __slots__ = ("ok", "decision", "reason", "scores")

    def __init__(self, ok: bool, decision: str, reason: str, scores: dict[str, float]):
        self.ok, self.decision, self.reason, self.scores = bool(ok), decision, reason, dict(scores)


def _check_max_attempts(max_attempts: int) -> int:
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, (int, np.integer)) \
            or not 1 <= max_attempts <= MAX_ATTEMPTS:
        raise ValueError(f"max_attempts must be an integer in 1..{MAX_ATTEMPTS}, got {max_attempts!r}")
    return int(max_attempts)


class QoEGate:
    """The server's QoE gate on a decoded image: NIQE (lower is better) at the server's threshold, decided by
    :func:`receiver_server.policy.decide` with ``PolicyConfig(mode="chase", max_attempts=max_attempts)``.

    ``restorer``: whose calibrated NIQE threshold to use (default: the server's default restorer, which falls
    back to the default calibration entry); ``niqe_threshold``: an explicit threshold instead; ``niqe_config``:
    the NIQE metric's config (default: the server's)."""

    trigger = "qoe"

    def __init__(self, max_attempts: int = 1, restorer: str | None = None, niqe_threshold: float | None = None,
                 niqe_config: dict | None = None):
        from receiver_server.config import PolicyConfig  # noqa: PLC0415 - server layer, no torch
        from receiver_server.qoe import get_qoe  # noqa: PLC0415
        from receiver_server.qoe.thresholds import threshold  # noqa: PLC0415
        from receiver_server.restorers import DEFAULT_RESTORER  # noqa: PLC0415

        self.max_attempts = _check_max_attempts(max_attempts)
        self.metric = get_qoe("niqe", "cpu", niqe_config)
        if niqe_threshold is not None:
            t = threshold("niqe", overrides={"niqe": niqe_threshold})
        else:
            t = threshold("niqe", restorer=restorer or DEFAULT_RESTORER)
        self.threshold = float(t.value)
        self.source = t.source
        self.thresholds = {"niqe": self.threshold}
        self.higher_is_better = {"niqe": bool(t.higher_is_better)}
        self.policy = PolicyConfig(thresholds=dict(self.thresholds), max_attempts=self.max_attempts, mode="chase")

    def judge(self, decoded: np.ndarray, original: np.ndarray, attempt: int, combined_snr_db: float) -> Verdict:
        """Judge attempt ``attempt`` (0-based) whose combined symbols decoded to ``decoded`` (uint8 (H, W, C));
        ``original`` is not used (no reference in the loop); ``combined_snr_db``: the MRC output's Es/N0 (dB),
        for the server's reason text."""
        from receiver_server.policy import decide  # noqa: PLC0415

        h, w = decoded.shape[:2]
        skipped: tuple[str, ...] = ()
        scores: dict[str, float] = {}
        if self.metric.applies(h, w):
            scores["niqe"] = float(self.metric.score(decoded))
        else:
            skipped = ("niqe",)
        d = decide(scores, self.thresholds, self.higher_is_better, attempt, self.policy,
                   np.array([combined_snr_db], np.float64), 1, 1, evidence_db=None, skipped=skipped)
        return Verdict(d.decision == "ACK", d.decision, d.reason, scores)

    def describe(self) -> dict:
        return {"trigger": "qoe", "trigger_metric": "niqe", "trigger_threshold": self.threshold,
                "trigger_source": self.source}


class PsnrGate:
    """The oracle trigger: acknowledged when the PSNR (dB) of the decoded image against the original is at
    least ``threshold_db``."""

    trigger = "psnr"

    def __init__(self, threshold_db: float, max_attempts: int = 1):
        if threshold_db is None or isinstance(threshold_db, bool) or not math.isfinite(float(threshold_db)):
            raise ValueError(f"the psnr trigger needs a finite threshold in dB, got {threshold_db!r}")
        self.threshold = float(threshold_db)
        self.max_attempts = _check_max_attempts(max_attempts)

    def judge(self, decoded: np.ndarray, original: np.ndarray, attempt: int, combined_snr_db: float) -> Verdict:
        p = float(metrics.psnr(original, decoded))
        if p >= self.threshold:
            return Verdict(True, "ACK", f"PSNR {p:.2f} dB >= {self.threshold:g} dB", {"psnr": p})
        why = f"PSNR {p:.2f} dB < {self.threshold:g} dB"
        if attempt + 1 >= self.max_attempts:
            return Verdict(False, "FAIL", f"attempt limit {self.max_attempts} reached; {why}", {"psnr": p})
        return Verdict(False, "NACK", f"{why}; resend the latent for Chase combining", {"psnr": p})

    def describe(self) -> dict:
        return {"trigger": "psnr", "trigger_metric": "psnr", "trigger_threshold": self.threshold,
                "trigger_source": "oracle (full reference)"}


def make_gate(trigger: str = "qoe", max_attempts: int = 1, psnr_threshold_db: float | None = None,
              niqe_threshold: float | None = None):
    """The gate of ``trigger`` (one of :data:`TRIGGERS`); ``psnr_threshold_db`` (dB) is required for
    ``psnr``; ``niqe_threshold`` overrides the server's NIQE threshold for ``qoe``."""
    if trigger == "qoe":
        return QoEGate(max_attempts, niqe_threshold=niqe_threshold)
    if trigger == "psnr":
        return PsnrGate(psnr_threshold_db, max_attempts)
    raise ValueError(f"trigger must be one of {TRIGGERS}, got {trigger!r}")


def niqe_or_none():
    """The server's NIQE metric, or None where it cannot be built (its pristine parameters missing: ``make
    setup`` fetches them)."""
    try:
        from receiver_server.qoe import get_qoe  # noqa: PLC0415

        return get_qoe("niqe")
    except (ImportError, OSError, ValueError):
        return None


def train_snr_db(meta: dict) -> float | list[float] | None:
    """The training Es/N0 (dB) a codec's ``meta`` records (``snr_db`` of :func:`deepjscc.model.checkpoint_meta`:
    one value, or ``[lo, hi]`` for a range drawn per image), else None (e.g. an untrained model)."""
    v = (meta or {}).get("snr_db")
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(a, (int, float)) for a in v):
        return [float(a) for a in v]
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return None


def simulate_image_deepjscc(codec, img: np.ndarray, chan: channel.SymbolChannel, rng: np.random.Generator,
                            max_attempts: int = 1, trigger: str = "qoe", psnr_threshold_db: float | None = None,
                            gate=None, final_metrics: bool = True, niqe_metric="auto",
                            keep_image: bool = False) -> dict:
    """One image through Deep-JSCC over ``chan`` (Es/N0 ``chan.snr_db``, dB) with Chase retransmission of the
    latent until the trigger passes or ``max_attempts`` are spent; return the record (module docstring).

    ``codec``: a :class:`deepjscc.model.DeepJSCCCodec` (or any object with its ``encode``, ``decode``,
    ``n_channel_uses``, ``encoder_flops``, ``preset`` and ``meta``). ``gate``: a prebuilt
    :class:`QoEGate` / :class:`PsnrGate` (reuse it across images: NIQE loads its model once); without it one
    is made from ``trigger`` / ``psnr_threshold_db``. ``final_metrics``: SSIM and NIQE of the delivered image
    (PSNR is always computed); ``niqe_metric``: the NIQE metric for the record ("auto": the server's, when
    available; None: no NIQE). ``keep_image``: the delivered image (uint8) under ``"_image"``.

    Record fields: ``psnr`` (dB) / ``ssim`` / ``niqe`` of the last decoded image (``niqe`` None where NIQE
    is unavailable or cannot score the size), ``psnr_per_attempt`` (dB), ``trigger_ok_per_attempt``,
    ``niqe_per_attempt`` (qoe trigger), ``attempts_used``, ``success``, ``decision``, ``reason``,
    ``payload_symbols`` = k, ``channel_uses`` = k x attempts used (complex symbols), ``bandwidth_ratio`` =
    k / (H W C), ``encoder_flops``, ``preset``, ``train_snr_db`` (dB), the trigger's fields, the channel's
    fields, ``inst_snr_db`` (realised Es/N0, dB, linear mean over the attempts), ``snr_db_per_attempt`` (dB),
    ``combined_snr_db`` (Es/N0 after MRC, dB: the linear sum of the attempts'), timings in seconds.
    """
    if gate is None:
        gate = make_gate(trigger, max_attempts, psnr_threshold_db)
    elif gate.trigger != trigger:
        raise ValueError(f"gate is for trigger {gate.trigger!r}, asked for {trigger!r}")
    max_attempts = _check_max_attempts(max_attempts)
    if gate.max_attempts != max_attempts:
        raise ValueError(f"gate allows {gate.max_attempts} attempts, asked for {max_attempts}")
    img = source.as_image3(img)
    hgt, wid, ch = (int(v) for v in img.shape)
    t0 = time.perf_counter()
    x = np.ascontiguousarray(np.asarray(codec.encode(img)).ravel(), dtype=np.complex64)
    t_enc = time.perf_counter() - t0
    k = int(x.size)
    expected = int(codec.n_channel_uses(hgt, wid, ch))
    if k != expected:
        raise ValueError(f"the codec sent {k} symbols, its n_channel_uses says {expected}")
    comb = chase.ChaseCombiner(k)
    insts, oks, psnrs, niqes = [], [], [], []
    verdict, dec, t_dec = None, None, 0.0
    for a in range(max_attempts):
        rx = chan(x, rng)
        comb.add(rx.y, rx.noise_var)
        insts.append(float(rx.snr_db))
        y, _nv = comb.result()
        t1 = time.perf_counter()
        dec = source.as_image3(np.asarray(codec.decode(y, hgt, wid, ch)), "decoded image")
        t_dec += time.perf_counter() - t1
        if dec.shape != img.shape:
            raise ValueError(f"the codec decoded {dec.shape}, expected {img.shape}")
        combined_db = channel.lin_to_db(float(np.sum(channel.db_to_lin(np.asarray(insts)))))
        verdict = gate.judge(dec, img, a, combined_db)
        oks.append(verdict.ok)
        psnrs.append(float(verdict.scores["psnr"]) if "psnr" in verdict.scores else float(metrics.psnr(img, dec)))
        niqes.append(verdict.scores.get("niqe"))
        if verdict.ok:
            break
    used = len(oks)
    meta = dict(getattr(codec, "meta", None) or {})
    rec = {
        "record": "image", "system": "deepjscc",
        "snr_db": float(chan.snr_db),
        "inst_snr_db": mean_snr_db(insts),
        "snr_db_per_attempt": insts,
        "combined_snr_db": combined_db,
        **_channel_fields(chan),
        "height": hgt, "width": wid, "channels": ch,
        "preset": str(codec.preset), "train_snr_db": train_snr_db(meta),
        **gate.describe(),
        "max_attempts": max_attempts, "attempts_used": used, "success": bool(verdict.ok),
        "decision": verdict.decision, "reason": verdict.reason,
        "trigger_ok_per_attempt": oks, "psnr_per_attempt": psnrs,
        "niqe_per_attempt": niqes if gate.trigger == "qoe" else None,
        "payload_symbols": k, "channel_uses": k * used, "bandwidth_ratio": k / (hgt * wid * ch),
        "encoder_flops": int(codec.encoder_flops(hgt, wid)),
        "psnr": psnrs[-1],
        "time_encode_s": t_enc, "time_decode_s": t_dec, "time_link_s": time.perf_counter() - t0,
    }
    if final_metrics:
        rec["ssim"] = float(metrics.ssim(img, dec))
        if gate.trigger == "qoe":
            rec["niqe"] = niqes[-1]
        else:
            m = niqe_or_none() if niqe_metric == "auto" else niqe_metric
            rec["niqe"] = float(m.score(dec)) if m is not None and m.applies(hgt, wid) else None
    else:
        rec.update(ssim=None, niqe=niqes[-1] if gate.trigger == "qoe" else None)
    if keep_image:
        rec["_image"] = dec
    return rec


def summarize_deepjscc(records: list[dict]) -> list[dict]:
    """Per-SNR summary rows of Deep-JSCC image records: ``n_images``, ``success_rate`` (acknowledged by the
    trigger within the limit), ``nack_per_attempt`` (of the images that sent attempt k, the fraction whose
    combined attempts still failed the trigger; None where no image got that far), ``n_per_attempt``,
    ``attempts_mean``, ``psnr_mean`` (dB) / ``ssim_mean`` / ``niqe_mean`` over all images (every image is
    delivered), ``psnr_success_mean`` (dB, over the acknowledged ones), ``inst_snr_db_mean`` (dB),
    ``channel_uses_mean``, ``encoder_flops_mean``."""
    out = []
    for s in sorted({r["snr_db"] for r in records}):
        rs = [r for r in records if r["snr_db"] == s]
        n_att = max(r["max_attempts"] for r in rs)
        reach = [sum(1 for r in rs if r["attempts_used"] > k) for k in range(n_att)]
        fail = [sum(1 for r in rs if r["attempts_used"] > k and not r["trigger_ok_per_attempt"][k])
                for k in range(n_att)]

        def mean(key, rows=rs):
            vals = [r[key] for r in rows if r.get(key) is not None]
            return float(np.mean(vals)) if vals else None

        out.append({
            "record": "summary", "system": "deepjscc", "snr_db": s, "preset": rs[0]["preset"],
            "trigger": rs[0]["trigger"], "trigger_threshold": rs[0]["trigger_threshold"],
            "max_attempts": n_att, "n_images": len(rs),
            "success_rate": sum(r["success"] for r in rs) / len(rs),
            "nack_per_attempt": [f / n if n else None for f, n in zip(fail, reach)], "n_per_attempt": reach,
            "attempts_mean": mean("attempts_used"),
            "psnr_mean": mean("psnr"), "ssim_mean": mean("ssim"), "niqe_mean": mean("niqe"),
            "psnr_success_mean": mean("psnr", [r for r in rs if r["success"]]),
            "inst_snr_db_mean": mean("inst_snr_db"), "channel_uses_mean": mean("channel_uses"),
            "encoder_flops_mean": mean("encoder_flops"),
        })
    return out


# ------------------------------------------------------------------------------------------------- CLI
_COLS = [("image", "{:<12}"), ("snr_db", "{:>6.2f}"), ("inst_snr_db", "{:>6.2f}"), ("success", "{!s:>5}"),
         ("attempts_used", "{:>3d}"), ("psnr", "{:>6.2f}"), ("ssim", "{:>6.3f}"), ("niqe", "{:>6.2f}"),
         ("channel_uses", "{:>9d}"), ("encoder_flops", "{:>13d}")]
_HEAD = ["image", "snr", "inst", "ok", "att", "PSNR", "SSIM", "NIQE", "ch uses", "enc FLOPs"]
_SUM_COLS = [("snr_db", "{:>6.2f}"), ("success_rate", "{:>7.3f}"), ("nack", "{:<23}"), ("attempts_mean", "{:>5.2f}"),
             ("psnr_mean", "{:>6.2f}"), ("ssim_mean", "{:>6.3f}"), ("niqe_mean", "{:>6.2f}"),
             ("channel_uses_mean", "{:>10.0f}")]
_SUM_HEAD = ["snr", "success", "NACK per attempt", "att", "PSNR", "SSIM", "NIQE", "ch uses"]


def load_codec(preset: str | None, checkpoint: str | None, device: str = "cpu", snr_db: float | None = None):
    """:class:`deepjscc.model.DeepJSCCCodec` from ``checkpoint`` (None: the shipped checkpoint of ``preset``,
    trained at ``snr_db`` dB when given, :func:`deepjscc.model.find_checkpoint`). ``preset`` None: the
    checkpoint's (``channel-uses`` for a shipped one); a checkpoint of another preset than the one asked for
    is a ValueError."""
    from .model import DeepJSCCCodec  # noqa: PLC0415 - torch

    codec = DeepJSCCCodec(checkpoint=checkpoint, preset=preset or "channel-uses", device=device, snr_db=snr_db)
    if preset is not None and codec.preset != preset:
        raise ValueError(f"checkpoint {codec.meta.get('checkpoint', checkpoint)} is of preset {codec.preset!r}, "
                         f"not {preset!r}")
    return codec


def run(args: argparse.Namespace, codec=None) -> int:
    """``infercom simulate --system deepjscc`` (options of ``infercom_apps.simulate.add_arguments``): per
    image and SNR :func:`simulate_image_deepjscc` with ``default_rng([seed, image, snr])``; a table (or JSON
    lines with ``--json``; ``--out`` CSV / JSON lines) and one summary per SNR. ``codec``: use this codec
    instead of loading ``--preset`` / ``--checkpoint`` (tests)."""
    try:
        snrs, files, chans = run_inputs(args)
        max_att = _check_max_attempts(args.max_attempts if args.max_attempts is not None else args.attempts)
        gate = make_gate(args.trigger, max_att, args.psnr_threshold, getattr(args, "niqe_threshold", None))
        if codec is None:
            codec = load_codec(args.preset, args.checkpoint, args.device, args.train_snr_db)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"infercom simulate: {exc}", file=sys.stderr)
        return 2
    from tqdm import tqdm  # noqa: PLC0415

    niqe = niqe_or_none() if args.trigger == "psnr" and not args.no_ssim else None
    records: list[dict] = []
    save_dir = Path(args.save_images) if args.save_images else None
    rc = 0
    try:
        if not args.json:
            desc = gate.describe()
            print(f"# system deepjscc, preset {codec.preset}, training SNR {train_snr_db(codec.meta)} dB, "
                  f"checkpoint {codec.meta.get('checkpoint') or 'none (untrained model)'}, trigger {desc['trigger']} "
                  f"({desc['trigger_metric']} {desc['trigger_threshold']:g}, {desc['trigger_source']}), max "
                  f"attempts {max_att}, fading {args.fading}"
                  f"{'/' + args.fading_per if args.fading == 'block' else ''}, snr mode {args.snr_mode}, "
                  f"seed {args.seed}")
            print(_head_nr(_COLS, _HEAD))
        bar = tqdm(total=len(files) * len(snrs), file=sys.stderr, unit="run", disable=None)
        for i, f, img in _loaded(files, bar, len(snrs)):
            for j, s in enumerate(snrs):
                rng = np.random.default_rng([args.seed, i, j])
                rec = {"image": f.name}
                try:
                    rec.update(simulate_image_deepjscc(codec, img, chans[s], rng, max_att, args.trigger,
                                                       args.psnr_threshold, gate=gate,
                                                       final_metrics=not args.no_ssim, niqe_metric=niqe,
                                                       keep_image=save_dir is not None))
                except ValueError as exc:                 # e.g. an image size the codec cannot take
                    print(f"infercom simulate: {f.name}: {exc}", file=sys.stderr)
                    rc = 2
                    bar.update(len(snrs) - j)
                    break
                rec["seed"] = args.seed
                rec["checkpoint"] = codec.meta.get("checkpoint")
                emit_record(rec, args, bar, records, save_dir and save_dir / f"{f.stem}_snr{s:g}_deepjscc.png",
                            _COLS, _HEAD)
        bar.close()
        emit_summary(summarize_deepjscc(records) if records else [], args,
                     "# per SNR: success rate of the trigger, NACK rate per attempt (after combining), means over "
                     "all delivered images", _SUM_COLS, _SUM_HEAD, "nack_per_attempt", "nack")
    finally:
        if args.out:
            _write_records(Path(args.out), records + (summarize_deepjscc(records) if records else []))
    return rc
