# SPDX-License-Identifier: GPL-3.0-or-later
"""CLIP-based QoE: ``clip_iqa`` (naturalness) and ``clip_sim`` (semantic consistency), CLIP weights from a
local path.

* **CLIP-IQA** (Wang, Chan, Loy, AAAI 2023): with the antonym prompt pair ("Good photo.", "Bad photo."), the
  score is the softmax over the pair of ``100 * cos(image, prompt)`` -- the probability of the positive prompt.
  Higher is better, range [0, 1]; the papers' ACK threshold is 0.8. (The CLIP-IQA paper also drops CLIP's
  positional embedding to accept any input size; here images go through the checkpoint's own processor --
  resize and centre crop to its native resolution -- so scores of a standard CLIP checkpoint are comparable
  across implementations that do the same.)
* **CLIP similarity**: cosine similarity of the CLIP image embeddings of the restored image and a target: the
  observation upsampled to full size (the bicubic baseline; ``against="observation"``, the server's check) or
  ``meta["reference"]`` (``against="reference"``, evaluation). Higher is better, range [-1, 1]; threshold 0.9.

Config keys: ``path`` (directory with a saved ``transformers`` CLIP model + processor; required),
``torch_dtype`` (``fp32`` default, ``fp16``, ``bf16``), ``batch_size`` (16); ``clip_iqa``: ``prompts`` (pair,
positive first), ``logit_scale`` (100); ``clip_sim``: ``against``. Weights are loaded with
``local_files_only=True``; one model is shared by every metric with the same path, device and dtype.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from .base import as_image, as_observation

_CACHE: dict[tuple[str, str, str], "CLIPBackbone"] = {}
_LOCK = threading.Lock()
DTYPES = ("fp32", "fp16", "bf16")


class CLIPBackbone:
    """A local CLIP model and its processor; embeddings are L2-normalised float32 tensors on the CPU."""

    def __init__(self, path: str | Path, device: str = "cpu", dtype: str = "fp32"):
        import torch
        from transformers import CLIPModel, CLIPProcessor

        p = Path(path)
        if not (p / "config.json").is_file():
            raise ValueError(f"CLIP weights not found: {p} has no config.json (a saved transformers CLIP model "
                             "directory is expected)")
        self.device = torch.device(device)
        tdtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
        import transformers

        major = int(transformers.__version__.split(".")[0])
        kw = {"dtype": tdtype} if major >= 5 else {"torch_dtype": tdtype}     # renamed in transformers 5
        self.model = CLIPModel.from_pretrained(str(p), local_files_only=True, **kw)
        self.model.to(self.device).eval()
        self.processor = CLIPProcessor.from_pretrained(str(p), local_files_only=True)
        self.dtype = tdtype
        self._text_cache: dict[tuple[str, ...], object] = {}

    @staticmethod
    def _features(out):
        # transformers < 5 returns the projected tensor, >= 5 an output whose pooler_output is projected
        return out if hasattr(out, "norm") else out.pooler_output

    def image_embeddings(self, images: list[np.ndarray], batch_size: int = 16):
        """uint8 (H, W, 1|3) images -> (N, D) normalised embeddings."""
        import torch

        rgb = [np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a for a in (as_image(i) for i in images)]
        outs = []
        with torch.inference_mode():
            for k in range(0, len(rgb), batch_size):
                px = self.processor(images=rgb[k:k + batch_size], return_tensors="pt")["pixel_values"]
                f = self._features(self.model.get_image_features(pixel_values=px.to(self.device, self.dtype)))
                outs.append(torch.nn.functional.normalize(f.float(), dim=-1).cpu())
        return torch.cat(outs, dim=0)

    def text_embeddings(self, texts: tuple[str, ...]):
        """Prompts -> (len, D) normalised embeddings (cached)."""
        import torch

        key = tuple(texts)
        if key not in self._text_cache:
            tok = self.processor.tokenizer(list(texts), padding=True, return_tensors="pt")
            with torch.inference_mode():
                f = self._features(self.model.get_text_features(
                    input_ids=tok["input_ids"].to(self.device),
                    attention_mask=tok["attention_mask"].to(self.device)))
            self._text_cache[key] = torch.nn.functional.normalize(f.float(), dim=-1).cpu()
        return self._text_cache[key]


def backbone(path: str | Path, device: str = "cpu", dtype: str = "fp32") -> CLIPBackbone:
    """The shared backbone for (path, device, dtype), loaded on first use."""
    if dtype not in DTYPES:
        raise ValueError(f"CLIP torch_dtype must be one of {DTYPES}, got {dtype!r}")
    key = (str(Path(path).resolve()), str(device), dtype)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = CLIPBackbone(path, device, dtype)
        return _CACHE[key]


def _common(config: dict | None, extra: dict) -> dict:
    cfg = dict(config or {})
    if not cfg.get("path"):
        raise ValueError("CLIP metrics need config 'path' (a local CLIP model directory)")
    allowed = {"path", "torch_dtype", "batch_size", *extra}
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ValueError(f"unknown CLIP metric config keys {unknown}")
    out = {"torch_dtype": "fp32", "batch_size": 16, **extra, **cfg}
    if isinstance(out["batch_size"], bool) or not isinstance(out["batch_size"], int) or out["batch_size"] < 1:
        raise ValueError(f"batch_size must be a positive integer, got {out['batch_size']!r}")
    return out


class CLIPIQA:
    """CLIP-IQA probability of the positive prompt; higher is better, [0, 1]."""

    name = "clip_iqa"
    higher_is_better = True
    range = (0.0, 1.0)

    def __init__(self, device: str = "cpu", config: dict | None = None):
        cfg = _common(config, {"prompts": ("Good photo.", "Bad photo."), "logit_scale": 100.0})
        prompts = cfg["prompts"]
        if (not isinstance(prompts, (list, tuple)) or len(prompts) != 2
                or not all(isinstance(t, str) and t for t in prompts)):
            raise ValueError(f"clip_iqa prompts must be a (positive, negative) pair of strings, got {prompts!r}")
        self.prompts = tuple(prompts)
        self.logit_scale = float(cfg["logit_scale"])
        if not self.logit_scale > 0:
            raise ValueError(f"clip_iqa logit_scale must be > 0, got {cfg['logit_scale']!r}")
        self.batch_size = cfg["batch_size"]
        self.clip = backbone(cfg["path"], device, cfg["torch_dtype"])

    def scores(self, images: list[np.ndarray]) -> np.ndarray:
        """CLIP-IQA of several images (batched), float64 (N,)."""
        import torch

        img = self.clip.image_embeddings(images, self.batch_size)
        txt = self.clip.text_embeddings(self.prompts)
        probs = torch.softmax(self.logit_scale * img @ txt.T, dim=-1)
        return probs[:, 0].double().numpy()

    def score(self, restored, observation=None, meta=None) -> float:
        return float(self.scores([restored])[0])


class CLIPSimilarity:
    """Cosine similarity of CLIP image embeddings; higher is better, [-1, 1]."""

    name = "clip_sim"
    higher_is_better = True
    range = (-1.0, 1.0)

    def __init__(self, device: str = "cpu", config: dict | None = None):
        cfg = _common(config, {"against": "observation"})
        if cfg["against"] not in ("observation", "reference"):
            raise ValueError(f"clip_sim against must be 'observation' or 'reference', got {cfg['against']!r}")
        self.against = cfg["against"]
        self.batch_size = cfg["batch_size"]
        self.clip = backbone(cfg["path"], device, cfg["torch_dtype"])

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """Cosine similarity of the CLIP embeddings of two uint8 images."""
        e = self.clip.image_embeddings([a, b], self.batch_size)
        return float((e[0] * e[1]).sum())

    def target(self, observation, meta) -> np.ndarray:
        """The image the restored one is compared with (upsampled observation or the reference)."""
        if self.against == "reference":
            if not meta or meta.get("reference") is None:
                raise ValueError("clip_sim against='reference' needs meta['reference'] (evaluation only)")
            return as_image(meta["reference"], "reference")
        if observation is None or not meta:
            raise ValueError("clip_sim against='observation' needs the observation and its meta")
        from ..restorers.base import check_inputs, upsample_observation

        obs, m = check_inputs(as_observation(observation), meta)
        return upsample_observation(obs, m)

    def score(self, restored, observation=None, meta=None) -> float:
        return self.similarity(restored, self.target(observation, meta))
