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
from infercom.planes import values_to_planes
from infercom.source import check_block

from .nets import PLANES, SIDE_PER_CHANNEL, Stage1Net, Stage2Net, cond_vector, cond_vector_v2, side_features

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
#: the checkpoints shipped with the package, by version: v1 (issue #5: MMSE observation, rate, SNR, attempts,
#: missing fraction) and v2 (issue #15: also the per-plane soft bits, the power profile and its design SNR and
#: the frames' SNR spread), the default
CHECKPOINTS = {"v1": CHECKPOINT_DIR / "infercom_restorer.pt", "v2": CHECKPOINT_DIR / "infercom_restorer_v2.pt"}
DEFAULT_CHECKPOINT = CHECKPOINTS["v2"]
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
    "temperature": None,       # std of the initial noise (1 = the trained prior); None: TEMPERATURE of the checkpoint
    "guidance": True,          # restoration-guided sampling (block-mean projection)
    "tol": 3.0,                # projection tolerance, grey levels
    "reliable": 6.0,           # |obs - stage-1 block mean| below this (grey levels) = reliable observation
    "seed": 0,
    "threads": None,           # torch intra-op threads on CPU (None: leave torch's setting)
    "dtype": "fp32",           # fp32 | fp16 (CUDA only) | bf16: autocast precision of the networks
}

#: the sampler's default temperature per checkpoint version, each chosen on bsds500/test images (never kodak24):
#: v1 0.3 (docs/restorers.md §3.3); v2 0.85: its stage 2 adds little texture at 0.3 (NIQE as stage 1's), at
#: 0.85 NIQE falls below v1's at a PSNR cost of <= 0.07 dB, and from 0.95 on it costs PSNR (§3.8)
TEMPERATURE = {1: 0.3, 2: 0.85}

#: autocast dtypes of the ``dtype`` config
DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def to_unit(v: torch.Tensor) -> torch.Tensor:
    """Grey levels [0, 255] -> [-1, 1]."""
    return v / 127.5 - 1.0


def from_unit(v: torch.Tensor) -> torch.Tensor:
    return (v + 1.0) * 127.5


def to_image(t: torch.Tensor, height: int, width: int) -> np.ndarray:
    """One unit-scale image ``(3, H', W')`` -> uint8 ``(height, width, 3)`` (cropped, rounded, on the CPU)."""
    return from_unit(t[:, :height, :width]).round().clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()


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


def initial_noise(shape, seed: int, device) -> torch.Tensor:
    """The sampler's starting noise ``(B, C, H, W)``: each image's ``N(0, I)`` from its own CPU generator seeded
    with ``seed``, so an image starts from the same noise alone or in a batch, on any device."""
    B = shape[0]
    return torch.cat([torch.randn((1, *shape[1:]), generator=torch.Generator().manual_seed(int(seed)))
                      for _ in range(B)]).to(device)


def flow_sample(s2: Stage2Net, s1_out: torch.Tensor, cond: torch.Tensor, bh: int, bw: int, *, steps: int,
                temperature: float, resid_scale: float, seed: int = 0, target: torch.Tensor | None = None,
                tol: float = 0.0, smooth_iters: int = 2) -> torch.Tensor:
    """Rectified-flow sampling of ``s1_out + residual`` (unit scale, ``(B, C, h*bh, w*bw)``).

    Euler steps from t=0 (noise, :func:`initial_noise` with ``seed``, times ``temperature``) to t=1
    (residual * ``resid_scale``). With ``target`` (low-res, unit scale), the predicted clean estimate is
    projected after every step (:func:`project_block_means`) and the state is re-formed from the projected
    estimate and the implied noise (DDIM-style).
    """
    x = initial_noise(s1_out.shape, seed, s1_out.device) * temperature
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


#: |LLR| of the bits of an observation given without its plane LLRs (read as certain)
CERTAIN_LLR = 20.0


def side_inputs(meta: dict, obs: np.ndarray, planes: int = PLANES):
    """The v2 inputs from ``meta`` for the observation ``obs`` (float (h, w, C)): ``(side (h, w, C,
    SIDE_PER_CHANNEL) float32, amplitudes (PLANES,), design_snr_db, spread_db)``.  ``plane_llr`` (h, w, C, m)
    gives the side features (:func:`~.nets.side_features`); a caller without it (not the server, which always
    sends it) gets the observation read as certain (the bits of its rounded values at ``|LLR| =
    CERTAIN_LLR``), which is what a restorer without soft information assumes. ``plane_amplitudes`` default
    to the equal profile's (1 for each of the ``m`` planes), ``design_snr_db`` to 0 (and 0 for the equal
    profile), ``frame_snr_spread_db`` to 0 (at most 20 dB is used).
    """
    h, w, C = obs.shape
    llr = meta.get("plane_llr")
    if llr is None:
        bits = values_to_planes(np.clip(np.round(obs), 0, 255).astype(np.uint8).ravel(), planes)   # MSB first
        llr = np.where(bits.T == 1, -CERTAIN_LLR, CERTAIN_LLR).astype(np.float32).reshape(h, w, C, planes)
    llr = np.asarray(llr, dtype=np.float32)
    if llr.ndim != 4 or llr.shape[:3] != (h, w, C) or not 1 <= llr.shape[3] <= planes:
        raise ValueError(f"meta['plane_llr'] must be ({h}, {w}, {C}, planes <= {planes}), got {llr.shape}")
    if np.any(np.isnan(llr)):
        raise ValueError("meta['plane_llr'] contains NaN")
    m = llr.shape[3]
    amp = np.zeros(planes, np.float32)
    a = np.asarray(meta.get("plane_amplitudes", np.ones(m)), dtype=np.float32).ravel()
    if a.size > planes or not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"meta['plane_amplitudes'] must be <= {planes} finite amplitudes >= 0, got {a}")
    amp[: a.size] = a
    design = float(meta.get("design_snr_db", 0.0)) if meta.get("profile", "importance") != "equal" else 0.0
    spread = float(meta.get("frame_snr_spread_db", 0.0))
    if not (math.isfinite(design) and math.isfinite(spread) and spread >= 0):
        raise ValueError(f"design_snr_db and frame_snr_spread_db must be finite (spread >= 0): {design}, {spread}")
    return side_features(llr), amp, design, min(spread, 20.0)


def prepare(observation: np.ndarray, meta: dict, device="cpu", version: int = 2):
    """Validate a Restorer call and build the network inputs of checkpoint ``version`` (1 or 2).

    ``meta["snr_db"]`` is the Es/N0 after Chase combining (dB), ``meta["attempts"]`` the attempts combined; the
    networks are told the per-attempt Es/N0 ``snr_db - 10 log10(attempts)`` (clipped to ``COND_SNR_DB_MAX``).
    Returns ``(obs (1,3,h,w) unit, missing (1,1,h,w), cond (1,COND_DIM[_V2]), side (1,3*SIDE_PER_CHANNEL,h,w)
    or None, bh, bw, height, width)``.
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
    attempts = max(1, int(meta.get("attempts", 1)))
    snr_db = float(meta.get("snr_db", 0.0))
    if not math.isfinite(snr_db):
        snr_db = -20.0
    snr_db = float(np.clip(snr_db - 10.0 * math.log10(attempts), -20.0, COND_SNR_DB_MAX))
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
    if version == 1:
        cond = cond_vector(bh, bw, snr_db, attempts, float(miss.mean()), device=device)
        return to_unit(o), m, cond, None, bh, bw, height, width
    side, amp, design, spread = side_inputs(meta, obs)
    if C == 1:
        side = np.repeat(side, 3, axis=2)
    st = torch.from_numpy(np.ascontiguousarray(side.transpose(2, 3, 0, 1)).reshape(3 * SIDE_PER_CHANNEL, h, w))[None]
    cond = cond_vector_v2(bh, bw, snr_db, attempts, float(miss.mean()), amp, design, spread, device=device)
    return to_unit(o), m, cond, st.to(device), bh, bw, height, width


def checkpoint_version(stage1: Stage1Net) -> int:
    """1 for a v1 network (no side features, :data:`~.nets.COND_DIM` conditions), 2 for v2."""
    return 2 if stage1.side_ch else 1


class InferComRestorer:
    """Restorer ``infercom-restorer`` (docs/internals.md): ``restore(observation, meta) -> uint8 (H, W, C)``.

    ``config`` keys (all optional): see :data:`DEFAULTS`. ``device``: ``"cpu"`` or ``"cuda"``.
    """

    name = "infercom-restorer"
    default_checkpoint = DEFAULT_CHECKPOINT

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
        if cfg["dtype"] not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {cfg['dtype']!r}")
        if cfg["dtype"] == "fp16" and torch.device(device).type != "cuda":
            raise ValueError("dtype fp16 needs device cuda (use bf16 or fp32 on the CPU)")
        self.config = cfg
        self.device = torch.device(device)
        if cfg["threads"]:
            torch.set_num_threads(int(cfg["threads"]))
        path = cfg["checkpoint"] or self.default_checkpoint
        self.stage1, self.stage2, self.info = load_checkpoint(path, self.device)
        self.version = checkpoint_version(self.stage1)
        if cfg["temperature"] is None:
            cfg["temperature"] = TEMPERATURE[self.version]
        if int(cfg["stage"]) == 2 and self.stage2 is None:
            raise ValueError(f"checkpoint {path} has no stage-2 weights; use config stage=1")
        self._lock = threading.Lock()
        self.last_seconds: dict = {}

    @torch.inference_mode()
    def restore_tensors(self, observation, meta, stage: int | None = None):
        """``(stage1_unit, final_unit)`` tensors ``(B, 3, h*bh, w*bw)``; final is None for stage 1.

        ``observation`` / ``meta``: one image, or lists of images of the same low-res size, block size and image
        size, restored in one batched forward pass (each image's sampler noise is its own,
        :func:`initial_noise`, so a batch differs from its images alone only by the kernels' rounding)."""
        stage = int(self.config["stage"] if stage is None else stage)
        t0 = time.perf_counter()
        dtype = DTYPES[self.config["dtype"]]
        if dtype is not None:
            with torch.autocast(self.device.type, dtype=dtype):
                s1, out = self._restore_tensors(observation, meta, stage, t0)
            return s1.float(), None if out is None else out.float()
        return self._restore_tensors(observation, meta, stage, t0)

    def _restore_tensors(self, observation, meta, stage: int, t0: float):
        if not isinstance(observation, (list, tuple)):
            observation, meta = [observation], [meta]
        parts = [prepare(o, m, self.device, self.version) for o, m in zip(observation, meta)]
        if len({(p[4], p[5], p[6], p[7], tuple(p[0].shape)) for p in parts}) != 1:
            raise ValueError("a batch must hold images of one size and block size")
        obs, miss, cond = (torch.cat([p[i] for p in parts]) for i in range(3))
        side = None if parts[0][3] is None else torch.cat([p[3] for p in parts])
        bh, bw = parts[0][4:6]
        s1, low_clean = self.stage1(obs, miss, cond, bh, bw, side)
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
        out = flow_sample(self.stage2, s1, cond, bh, bw, steps=int(c["steps"]),
                          temperature=float(c["temperature"]), resid_scale=self.info["resid_scale"],
                          seed=int(c["seed"]), target=target, tol=float(c["tol"]) / 127.5)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.last_seconds["total"] = time.perf_counter() - t0
        return s1, out

    def restore(self, observation: np.ndarray, meta: dict) -> np.ndarray:
        return self.restore_batch([observation], [meta])[0]

    def restore_batch(self, observations: list, metas: list) -> list[np.ndarray]:
        """Restore several images at once; the results are in the order given.

        On CUDA the images of one size and block size go through one batched forward pass (the groups in order
        of first appearance). On the CPU they go one after another through the same call: oneDNN's convolutions
        are not batch-invariant (their last bits depend on the batch size and shape) and a batch is slower on
        this CPU than its images one by one (``make bench``, suite ``restorer``), so every result is
        bit-identical to :meth:`restore` of that image alone (tests/test_batching.py)."""
        from receiver_server.restorers.base import check_inputs, check_output, from_rgb

        if len(observations) != len(metas):
            raise ValueError(f"{len(observations)} observations but {len(metas)} metas")
        checked = [check_inputs(o, m) for o, m in zip(observations, metas)]
        groups: dict[tuple, list[int]] = {}
        for i, (o, m) in enumerate(checked):
            groups.setdefault((o.shape[:2], m["bh"], m["bw"], m["height"], m["width"]), []).append(i)
        results: list = [None] * len(checked)
        batches = list(groups.values()) if self.device.type != "cpu" else [[i] for g in groups.values() for i in g]
        for idx in batches:
            with self._lock:
                s1, out = self.restore_tensors([checked[i][0] for i in idx], [checked[i][1] for i in idx])
            img = out if out is not None else s1
            for k, i in enumerate(idx):
                m = checked[i][1]
                one = to_image(img[k], m["height"], m["width"])
                results[i] = check_output(from_rgb(np.ascontiguousarray(one), m["channels"]), m)
        return results


class InferComRestorerStage1(InferComRestorer):
    """Stage 1 alone (``infercom-restorer-stage1``): the regression estimate, no generative refinement."""

    name = "infercom-restorer-stage1"

    def __init__(self, device: str = "cpu", config: dict | None = None):
        cfg = dict(config or {})
        cfg["stage"] = 1
        super().__init__(device=device, config=cfg)


class InferComRestorerV1(InferComRestorer):
    """The first checkpoint (``infercom-restorer-v1``, issue #5), kept loadable by name for comparison."""

    name = "infercom-restorer-v1"
    default_checkpoint = CHECKPOINTS["v1"]


class InferComRestorerV1Stage1(InferComRestorerStage1):
    """Stage 1 of the first checkpoint (``infercom-restorer-v1-stage1``)."""

    name = "infercom-restorer-v1-stage1"
    default_checkpoint = CHECKPOINTS["v1"]
