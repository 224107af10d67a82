# SPDX-License-Identifier: GPL-3.0-or-later
"""InferComRestorer: the project's own two-stage (SUPIR-style) restorer behind the Restorer interface.

Stage 1 (:class:`~.nets.Stage1Net`) regresses a faithful full-resolution estimate from the MMSE low-res
observation (removing bit-error outliers, upsampling by ``bh x bw``). Stage 2 (:class:`~.nets.Stage2Net`) is a
conditional rectified flow on the residual over stage 1, sampled with a few Euler steps; after every step the
predicted clean image is projected so that its ``bh x bw`` block means stay within ``tol`` grey levels of the
low-res target (the observation where it agrees with stage 1, stage 1's block means elsewhere) --
restoration-guided sampling in the spirit of SUPIR.

Both stages are conditioned on the rate (``bh``, ``bw``), the Es/N0 per attempt ``snr_db`` (dB), the number of
Chase ``attempts`` and the fraction of low-res pixels with no symbols. Deterministic for a given ``seed``.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from infercom.limits import CHANNELS
from infercom.source import check_block

from .nets import Stage1Net, Stage2Net, cond_vector

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "infercom_restorer.pt"
CHECKPOINT_FORMAT = "infercom-restorer/1"

#: the largest Es/N0 per attempt (dB) the networks are told: the shipped checkpoints were trained on -10..6 dB
#: per attempt with up to 3 attempts (effective <= 10.8 dB); told more they drift from the observation (median
#: PSNR 23.2 dB at 25 dB vs 26.4 at 15 dB on bsds500/test), told 10 dB they keep improving with the SNR
COND_SNR_DB_MAX = 10.0

#: defaults of the ``config`` dict (see :class:`InferComRestorer`)
DEFAULTS = {
    "checkpoint": None,        # path; None = the shipped checkpoint
    "stage": 2,                # 1 = regression only, 2 = regression + generative refinement
    "steps": 4,                # Euler steps of the flow sampler
    "temperature": 0.3,        # std of the initial noise (1 = the trained prior); 0.3 chosen on bsds500 images
    "guidance": True,          # restoration-guided sampling (block-mean projection)
    "tol": 3.0,                # projection tolerance, grey levels
    "reliable": 6.0,           # |obs - stage-1 block mean| below this (grey levels) = reliable observation
    "seed": 0,
    "threads": None,           # torch intra-op threads on CPU (None: leave torch's setting)
}


def to_unit(v: torch.Tensor) -> torch.Tensor:
    """Grey levels [0, 255] -> [-1, 1]."""
    return v / 127.5 - 1.0


def from_unit(v: torch.Tensor) -> torch.Tensor:
    return (v + 1.0) * 127.5


def load_checkpoint(path, device="cpu") -> tuple[Stage1Net, Stage2Net | None, dict]:
    """Load ``(stage1, stage2 or None, info)`` from a checkpoint written by ``infercom train-restorer``.

    Accepts both the exported checkpoint and the resumable training state (its EMA weights are used).
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"restorer checkpoint not found: {p}")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises pickle/zip/runtime errors for foreign files
        raise ValueError(f"{p} is not a readable torch checkpoint: {exc}") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{p} is not an InferCom restorer checkpoint (format {CHECKPOINT_FORMAT})")
    arch = ck["arch"]
    s1 = Stage1Net(**arch["stage1"])
    weights = ck.get("ema") or ck["weights"]
    s1.load_state_dict({k: v.float() for k, v in weights["stage1"].items()})
    s2 = None
    if weights.get("stage2") is not None:
        s2 = Stage2Net(**arch["stage2"])
        s2.load_state_dict({k: v.float() for k, v in weights["stage2"].items()})
        s2.to(device).eval()
    s1.to(device).eval()
    if torch.device(device).type == "cpu":          # oneDNN convolutions are faster in NHWC on the CPU
        s1.to(memory_format=torch.channels_last)
        if s2 is not None:
            s2.to(memory_format=torch.channels_last)
    info = dict(ck.get("meta", {}))
    info["resid_scale"] = float(arch.get("resid_scale", 8.0))
    info["step"] = int(ck.get("step", 0))
    return s1, s2, info


def block_mean(x: torch.Tensor, bh: int, bw: int) -> torch.Tensor:
    """Mean over non-overlapping ``bh x bw`` blocks of ``(B, C, h*bh, w*bw)`` -> ``(B, C, h, w)``."""
    return F.avg_pool2d(x, (bh, bw), stride=(bh, bw))


def block_expand(x: torch.Tensor, bh: int, bw: int) -> torch.Tensor:
    return x.repeat_interleave(bh, dim=-2).repeat_interleave(bw, dim=-1)


def project_block_means(est: torch.Tensor, target: torch.Tensor, tol: float, bh: int, bw: int,
                        smooth_iters: int = 0) -> torch.Tensor:
    """Move ``est`` (unit scale, ``(B, C, h*bh, w*bw)``) so that each ``bh x bw`` block mean lies within ``tol``
    of ``target`` (``(B, C, h, w)``).

    ``smooth_iters`` back-projection passes first spread each block's excess with a bilinear (smooth) kernel,
    which avoids block-edge artefacts; a final exact pass shifts the blocks still outside the tolerance by
    their excess, so the bound always holds.
    """
    H, W = est.shape[-2:]
    for _ in range(smooth_iters):
        d = block_mean(est, bh, bw) - target
        excess = d - d.clamp(-tol, tol)
        est = est - F.interpolate(excess, size=(H, W), mode="bilinear", align_corners=False)
    d = block_mean(est, bh, bw) - target
    excess = d - d.clamp(-tol, tol)
    return est - block_expand(excess, bh, bw)


def flow_sample(s2: Stage2Net, s1_out: torch.Tensor, cond: torch.Tensor, bh: int, bw: int, *, steps: int,
                temperature: float, resid_scale: float, generator: torch.Generator,
                target: torch.Tensor | None = None, tol: float = 0.0, smooth_iters: int = 2) -> torch.Tensor:
    """Rectified-flow sampling of ``s1_out + residual`` (unit scale, ``(B, C, h*bh, w*bw)``).

    Euler steps from t=0 (noise) to t=1 (residual * ``resid_scale``). With ``target`` (low-res, unit scale),
    the predicted clean estimate is projected after every step (:func:`project_block_means`) and the state is
    re-formed from the projected estimate and the implied noise (DDIM-style).
    """
    x = torch.randn(s1_out.shape, generator=generator, device="cpu").to(s1_out.device) * temperature
    ts = torch.linspace(0.0, 1.0, steps + 1)
    B = s1_out.shape[0]
    for i in range(steps):
        t, t_next = float(ts[i]), float(ts[i + 1])
        v = s2(x, s1_out, torch.full((B,), t, device=s1_out.device), cond, bh, bw)
        x1 = x + (1.0 - t) * v                     # predicted residual (scaled) at t = 1
        if target is not None:
            est = project_block_means(s1_out + x1 / resid_scale, target, tol, bh, bw, smooth_iters)
            x1 = (est - s1_out) * resid_scale
        if i == steps - 1:
            x = x1
            break
        x0 = (x - t * x1) / (1.0 - t)              # implied noise
        x = t_next * x1 + (1.0 - t_next) * x0
    return s1_out + x / resid_scale


def prepare(observation: np.ndarray, meta: dict, device="cpu"):
    """Validate a Restorer call and build the network inputs.

    Returns ``(obs (1,C,h,w) unit, missing (1,1,h,w), cond (1,COND_DIM), bh, bw, height, width)``.
    """
    obs = np.asarray(observation)
    if obs.ndim == 2:
        obs = obs[:, :, None]
    if obs.ndim != 3 or obs.shape[2] not in CHANNELS:
        raise ValueError(f"observation must be (h, w, C) with C in {CHANNELS}, got shape {obs.shape}")
    if not np.issubdtype(obs.dtype, np.number) or not np.all(np.isfinite(obs)):
        raise ValueError("observation must be finite numbers in [0, 255]")
    if not isinstance(meta, dict):
        raise ValueError("meta must be a dict")
    for k in ("bh", "bw"):
        if k not in meta:
            raise ValueError(f"meta is missing {k!r}")
    bh, bw = check_block(meta["bh"], meta["bw"])
    h, w, C = obs.shape
    height = int(meta.get("height", h * bh))
    width = int(meta.get("width", w * bw))
    if not (-(-height // bh) == h and -(-width // bw) == w):
        raise ValueError(f"observation {h}x{w} does not match height x width {height}x{width} at {bh}x{bw}")
    snr_db = float(meta.get("snr_db", 0.0))
    if not math.isfinite(snr_db):
        snr_db = -20.0
    snr_db = float(np.clip(snr_db, -20.0, COND_SNR_DB_MAX))
    attempts = max(1, int(meta.get("attempts", 1)))
    miss = meta.get("missing")
    if miss is None:
        miss = np.zeros((h, w), bool)
    miss = np.asarray(miss, dtype=bool)
    if miss.shape != (h, w):
        raise ValueError(f"meta['missing'] must be a bool ({h}, {w}) mask, got shape {miss.shape}")
    o = torch.from_numpy(np.clip(obs.astype(np.float32), 0, 255)).permute(2, 0, 1)[None].to(device)
    # a grey image is restored as three equal channels (the networks are RGB)
    if C == 1:
        o = o.expand(1, 3, h, w)
    m = torch.from_numpy(miss.astype(np.float32))[None, None].to(device)
    cond = cond_vector(bh, bw, snr_db, attempts, float(miss.mean()), device=device)
    return to_unit(o), m, cond, bh, bw, height, width


class InferComRestorer:
    """Restorer ``infercom-restorer`` (docs/internals.md): ``restore(observation, meta) -> uint8 (H, W, C)``.

    ``config`` keys (all optional): see :data:`DEFAULTS`. ``device``: ``"cpu"`` or ``"cuda"``.
    """

    name = "infercom-restorer"

    def __init__(self, device: str = "cpu", config: dict | None = None):
        cfg = dict(DEFAULTS)
        unknown = set(config or {}) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown InferComRestorer config keys: {sorted(unknown)}")
        cfg.update(config or {})
        if int(cfg["stage"]) not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {cfg['stage']!r}")
        if int(cfg["steps"]) < 1:
            raise ValueError(f"steps must be >= 1, got {cfg['steps']!r}")
        self.config = cfg
        self.device = torch.device(device)
        if cfg["threads"]:
            torch.set_num_threads(int(cfg["threads"]))
        path = cfg["checkpoint"] or DEFAULT_CHECKPOINT
        self.stage1, self.stage2, self.info = load_checkpoint(path, self.device)
        if int(cfg["stage"]) == 2 and self.stage2 is None:
            raise ValueError(f"checkpoint {path} has no stage-2 weights; use config stage=1")
        self._lock = threading.Lock()
        self.last_seconds: dict = {}

    @torch.inference_mode()
    def restore_tensors(self, observation: np.ndarray, meta: dict, stage: int | None = None):
        """``(stage1_unit, final_unit)`` tensors ``(1, 3, h*bh, w*bw)``; final is None for stage 1."""
        stage = int(self.config["stage"] if stage is None else stage)
        t0 = time.perf_counter()
        obs, miss, cond, bh, bw, H, W = prepare(observation, meta, self.device)
        s1, low_clean = self.stage1(obs, miss, cond, bh, bw)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.last_seconds = {"stage1": time.perf_counter() - t0}
        if stage == 1:
            return s1, None
        c = self.config
        target = None
        if c["guidance"]:
            bm = block_mean(s1, bh, bw)
            reliable = ((obs - bm).abs() <= c["reliable"] / 127.5) & (miss < 0.5)
            target = torch.where(reliable, obs, bm)
        gen = torch.Generator().manual_seed(int(c["seed"]))
        out = flow_sample(self.stage2, s1, cond, bh, bw, steps=int(c["steps"]),
                          temperature=float(c["temperature"]), resid_scale=self.info["resid_scale"],
                          generator=gen, target=target, tol=float(c["tol"]) / 127.5)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.last_seconds["total"] = time.perf_counter() - t0
        return s1, out

    def restore(self, observation: np.ndarray, meta: dict) -> np.ndarray:
        from receiver_server.restorers.base import check_inputs, check_output, from_rgb

        obs, m = check_inputs(observation, meta)
        with self._lock:
            s1, out = self.restore_tensors(obs, m)
        img = out if out is not None else s1
        H, W = m["height"], m["width"]
        img = from_unit(img[0, :, :H, :W]).round().clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()
        return check_output(from_rgb(np.ascontiguousarray(img), m["channels"]), m)


class InferComRestorerStage1(InferComRestorer):
    """Stage 1 alone (``infercom-restorer-stage1``): the regression estimate, no generative refinement."""

    name = "infercom-restorer-stage1"

    def __init__(self, device: str = "cpu", config: dict | None = None):
        cfg = dict(config or {})
        cfg["stage"] = 1
        super().__init__(device=device, config=cfg)
