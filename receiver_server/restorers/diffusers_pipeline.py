# SPDX-License-Identifier: GPL-3.0-or-later
"""``diffusers``: restore with any local diffusers image-to-image or upscale pipeline directory.

The pipeline is loaded with ``DiffusionPipeline.from_pretrained(path, local_files_only=True)`` (nothing is
downloaded), so any saved ``StableDiffusionImg2ImgPipeline``, ``StableDiffusionUpscalePipeline``, SDXL img2img,
... works. What the pipeline receives:

* ``input = "upsampled"`` (default for img2img pipelines): the bicubic baseline at full size, as the init image
  that ``strength`` of noise is added to;
* ``input = "lowres"`` (default for pipelines whose class name contains ``Upscale``): the rounded low-res
  observation itself; the pipeline's own upscaler does the rest.

The output is resized (bicubic) to the original ``height x width`` when the pipeline's size differs (pipelines
round sizes to multiples of their VAE factor; upscalers have a fixed factor). Grey images go through as RGB
and come back as the mean of the three planes.

Config keys (all optional except ``path``): ``path`` (pipeline directory), ``prompt``, ``negative_prompt``,
``num_inference_steps`` (20), ``strength`` (0.3; img2img), ``guidance_scale`` (7.5), ``noise_level`` (20;
upscalers), ``seed`` (1234), ``torch_dtype`` (``fp32`` | ``fp16`` | ``bf16``), ``input`` (``auto`` |
``upsampled`` | ``lowres``), ``call_kwargs`` (dict passed to the pipeline call as is). Arguments the pipeline's
``__call__`` does not accept are not passed (e.g. ``strength`` to an upscaler).
"""

from __future__ import annotations

import inspect
import threading
import warnings
from pathlib import Path

import numpy as np

from .base import (check_inputs, check_output, float01_to_uint8, from_rgb, resize_uint8, to_rgb,
                   upsample_observation)

DTYPES = ("fp32", "fp16", "bf16")
DEFAULTS = {
    "prompt": "a high-quality, detailed photograph",
    "negative_prompt": "blurry, noisy, low quality, jpeg artifacts",
    "num_inference_steps": 20,
    "strength": 0.3,
    "guidance_scale": 7.5,
    "noise_level": 20,
    "seed": 1234,
    "torch_dtype": "fp32",
    "input": "auto",
    "call_kwargs": {},
}


def torch_dtype(name: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


class DiffusersRestorer:
    name = "diffusers"

    def __init__(self, device: str = "cpu", config: dict | None = None):
        cfg = dict(config or {})
        path = cfg.pop("path", None)
        if not path:
            raise ValueError("diffusers restorer: config 'path' (a local pipeline directory) is required")
        self.path = Path(path)
        if not (self.path / "model_index.json").is_file():
            raise ValueError(f"diffusers restorer: {self.path} is not a diffusers pipeline directory "
                             "(no model_index.json)")
        unknown = sorted(set(cfg) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"diffusers restorer: unknown config keys {unknown}")
        self.cfg = {**DEFAULTS, **cfg}
        if self.cfg["torch_dtype"] not in DTYPES:
            raise ValueError(f"diffusers restorer: torch_dtype must be one of {DTYPES}, "
                             f"got {self.cfg['torch_dtype']!r}")
        if self.cfg["input"] not in ("auto", "upsampled", "lowres"):
            raise ValueError(f"diffusers restorer: input must be auto|upsampled|lowres, got {self.cfg['input']!r}")
        steps = self.cfg["num_inference_steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"diffusers restorer: num_inference_steps must be a positive integer, got {steps!r}")
        if not 0.0 < float(self.cfg["strength"]) <= 1.0:
            raise ValueError(f"diffusers restorer: strength must be in (0, 1], got {self.cfg['strength']!r}")
        if not isinstance(self.cfg["call_kwargs"], dict):
            raise ValueError("diffusers restorer: call_kwargs must be a dict")

        import torch
        from diffusers import DiffusionPipeline

        self.device = torch.device(device)
        if self.device.type == "cpu" and self.cfg["torch_dtype"] == "fp16":
            raise ValueError("diffusers restorer: fp16 needs a GPU; use fp32 or bf16 on the CPU")
        with warnings.catch_warnings():
            # diffusers >= 0.36 renames torch_dtype to dtype; the old name still works and older versions need it
            warnings.simplefilter("ignore", FutureWarning)
            self.pipe = DiffusionPipeline.from_pretrained(str(self.path), local_files_only=True,
                                                          torch_dtype=torch_dtype(self.cfg["torch_dtype"]))
        self.pipe.to(self.device)
        if hasattr(self.pipe, "set_progress_bar_config"):
            self.pipe.set_progress_bar_config(disable=True)
        self.call_params = set(inspect.signature(self.pipe.__call__).parameters)
        if "image" not in self.call_params:
            raise ValueError(f"diffusers restorer: {type(self.pipe).__name__} takes no input image; "
                             "use an image-to-image or upscale pipeline")
        if "strength" in self.call_params and int(steps * float(self.cfg["strength"])) < 1:
            raise ValueError(f"diffusers restorer: num_inference_steps * strength = {steps} * "
                             f"{self.cfg['strength']} runs no denoising step; raise one of them")
        mode = self.cfg["input"]
        if mode == "auto":
            mode = "lowres" if "Upscale" in type(self.pipe).__name__ else "upsampled"
        self.input_mode = mode
        # pipelines are stateful (the scheduler's timesteps): one call at a time when server threads share us
        self._lock = threading.Lock()

    def pipeline_input(self, obs: np.ndarray, meta: dict) -> np.ndarray:
        """uint8 RGB image given to the pipeline (full-size bicubic baseline or the rounded low-res image)."""
        if self.input_mode == "lowres":
            img = np.clip(np.rint(obs), 0, 255).astype(np.uint8)
        else:
            img = upsample_observation(obs, meta)
        return to_rgb(img)

    def call_kwargs(self, image) -> dict:
        """Arguments of the pipeline call, restricted to what its ``__call__`` accepts."""
        import torch

        c = self.cfg
        gen_device = "cpu" if self.device.type == "mps" else self.device
        wanted = {
            "prompt": c["prompt"],
            "negative_prompt": c["negative_prompt"],
            "image": image,
            "num_inference_steps": int(c["num_inference_steps"]),
            "strength": float(c["strength"]),
            "guidance_scale": float(c["guidance_scale"]),
            "noise_level": int(c["noise_level"]),
            "generator": torch.Generator(device=gen_device).manual_seed(int(c["seed"])),
            "output_type": "np",
        }
        kw = {k: v for k, v in wanted.items() if k in self.call_params}
        kw.update(c["call_kwargs"])
        return kw

    def restore(self, observation: np.ndarray, meta: dict) -> np.ndarray:
        import torch
        from PIL import Image

        obs, m = check_inputs(observation, meta)
        inp = self.pipeline_input(obs, m)
        with self._lock, torch.inference_mode():
            result = self.pipe(**self.call_kwargs(Image.fromarray(inp)))
        images = result.images if hasattr(result, "images") else result[0]
        out = np.asarray(images[0] if isinstance(images, (list, tuple)) or np.ndim(images) == 4 else images)
        if out.dtype != np.uint8:
            out = float01_to_uint8(out)
        if out.ndim == 2:
            out = out[:, :, None]
        out = out[:, :, :3] if out.shape[2] >= 3 else to_rgb(out)
        out = resize_uint8(out, m["height"], m["width"])
        return check_output(from_rgb(out, m["channels"]), m)
