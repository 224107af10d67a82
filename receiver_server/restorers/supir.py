# SPDX-License-Identifier: GPL-3.0-or-later
"""``supir``: adapter for the official SUPIR code (github.com/Fanghua-Yu/SUPIR) and its checkpoints.

Nothing of SUPIR is bundled: the config names a SUPIR checkout, its model yaml and the checkpoints, and the
adapter drives SUPIR's own API the way its ``test.py`` / ``gradio_demo.py`` do:

1. ``sys.path`` gets the checkout; ``CKPT_PTH`` attributes (``SDXL_CLIP1_PATH``, ``SDXL_CLIP2_CKPT_PTH``, ...)
   are overridden from ``ckpt_pth`` before SUPIR's modules import them;
2. the model yaml is copied with ``SDXL_CKPT``, ``SUPIR_CKPT_Q``, ``SUPIR_CKPT_F`` (and ``SUPIR_CKPT``) set to
   the configured paths, and ``SUPIR.util.create_SUPIR_model(yaml, SUPIR_sign=sign)`` loads it (SDXL base, then
   the v0Q or v0F weights, ``load_state_dict(..., strict=False)`` as upstream);
3. optional ``model.half()`` (``loading_half_params``) and ``model.init_tile_vae(encoder_tile_size,
   decoder_tile_size)`` (``use_tile_vae``), then ``.to(device)``, ``model.ae_dtype`` / ``model.model.dtype``
   from ``convert_dtype(ae_dtype / diff_dtype)``;
4. per image: the bicubic baseline (``infercom.link.upsample`` of the observation) is the low-quality input;
   ``PIL2Tensor(img, upsacle=upscale, min_size=min_size)`` -> ``model.batchify_sample(...)`` with SUPIR's own
   parameters -> ``Tensor2PIL(sample, h0, w0)``; the result is resized to the original size when ``upscale``
   != 1 and returned as uint8 (grey images go through as RGB, back as the plane mean).

Config keys and defaults (SUPIR ``test.py`` defaults): ``repo`` (required), ``options``
(``<repo>/options/SUPIR_v0.yaml``), ``sdxl_ckpt``, ``supir_ckpt_q``, ``supir_ckpt_f``, ``supir_ckpt`` (paths;
the one the sign needs is required unless the yaml already names an existing file), ``ckpt_pth`` (dict of
``CKPT_PTH`` overrides), ``sign`` ("Q"), ``upscale`` (1), ``min_size`` (1024), ``edm_steps`` (50), ``s_stage1``
(-1), ``s_stage2`` (1.0), ``s_cfg`` (7.5), ``s_churn`` (5), ``s_noise`` (1.003), ``seed`` (1234),
``color_fix_type`` ("Wavelet" | "AdaIn" | "None"), ``linear_CFG`` (False), ``linear_s_stage2`` (False),
``spt_linear_CFG`` (1.0), ``spt_linear_s_stage2`` (0.0), ``ae_dtype`` ("bf16"; "fp32"), ``diff_dtype``
("fp16"; "fp32", "bf16"), ``loading_half_params`` (False), ``use_tile_vae`` (False), ``encoder_tile_size``
(512), ``decoder_tile_size`` (64), ``prompt`` ("": SUPIR's caption slot, LLaVA is not used), ``a_prompt`` and
``n_prompt`` (SUPIR's default positive / negative prompts).
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import yaml

from .base import check_inputs, check_output, from_rgb, resize_uint8, to_rgb, upsample_observation

A_PROMPT = ("Cinematic, High Contrast, highly detailed, taken using a Canon EOS R camera, hyper detailed photo - "
            "realistic maximum detail, 32k, Color Grading, ultra HD, extreme meticulous detailing, skin pore "
            "detailing, hyper sharpness, perfect without deformations.")
N_PROMPT = ("painting, oil painting, illustration, drawing, art, sketch, oil painting, cartoon, CG Style, "
            "3D render, unreal engine, blurring, dirty, messy, worst quality, low quality, frames, watermark, "
            "signature, jpeg artifacts, deformed, lowres, over-smooth")

DEFAULTS = {
    "options": None, "sdxl_ckpt": None, "supir_ckpt_q": None, "supir_ckpt_f": None, "supir_ckpt": None,
    "ckpt_pth": {}, "sign": "Q", "upscale": 1, "min_size": 1024, "edm_steps": 50, "s_stage1": -1,
    "s_stage2": 1.0, "s_cfg": 7.5, "s_churn": 5, "s_noise": 1.003, "seed": 1234, "color_fix_type": "Wavelet",
    "linear_CFG": False, "linear_s_stage2": False, "spt_linear_CFG": 1.0, "spt_linear_s_stage2": 0.0,
    "ae_dtype": "bf16", "diff_dtype": "fp16", "loading_half_params": False, "use_tile_vae": False,
    "encoder_tile_size": 512, "decoder_tile_size": 64, "prompt": "", "a_prompt": A_PROMPT,
    "n_prompt": N_PROMPT,
}
#: yaml key of each checkpoint config key
CKPT_KEYS = {"sdxl_ckpt": "SDXL_CKPT", "supir_ckpt_q": "SUPIR_CKPT_Q", "supir_ckpt_f": "SUPIR_CKPT_F",
             "supir_ckpt": "SUPIR_CKPT"}


def _positive_int(cfg: dict, key: str) -> int:
    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"supir restorer: {key} must be a positive integer, got {v!r}")
    return int(v)


def check_config(config: dict | None) -> dict:
    """Merge ``config`` with the defaults and validate every SUPIR parameter (ValueError naming the key)."""
    cfg = dict(config or {})
    if not cfg.get("repo"):
        raise ValueError("supir restorer: config 'repo' (path of a SUPIR checkout) is required")
    repo = Path(cfg.pop("repo"))
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"supir restorer: unknown config keys {unknown}")
    c = {**DEFAULTS, **cfg, "repo": repo}
    if not (repo / "SUPIR" / "util.py").is_file():
        raise ValueError(f"supir restorer: {repo} is not a SUPIR checkout (no SUPIR/util.py)")
    c["options"] = Path(c["options"]) if c["options"] else repo / "options" / "SUPIR_v0.yaml"
    if not c["options"].is_file():
        raise ValueError(f"supir restorer: model yaml not found: {c['options']}")
    if c["sign"] not in ("Q", "F"):
        raise ValueError(f"supir restorer: sign must be 'Q' or 'F', got {c['sign']!r}")
    if c["color_fix_type"] not in ("Wavelet", "AdaIn", "None"):
        raise ValueError(f"supir restorer: color_fix_type must be Wavelet, AdaIn or None, "
                         f"got {c['color_fix_type']!r}")
    if c["ae_dtype"] not in ("fp32", "bf16"):
        raise ValueError(f"supir restorer: ae_dtype must be fp32 or bf16 (SUPIR: fp16 gives NaN in the AE), "
                         f"got {c['ae_dtype']!r}")
    if c["diff_dtype"] not in ("fp32", "fp16", "bf16"):
        raise ValueError(f"supir restorer: diff_dtype must be fp32, fp16 or bf16, got {c['diff_dtype']!r}")
    for key in ("upscale", "min_size", "edm_steps", "encoder_tile_size", "decoder_tile_size"):
        c[key] = _positive_int(c, key)
    for key in ("s_stage1", "s_stage2", "s_cfg", "s_churn", "s_noise", "spt_linear_CFG",
                "spt_linear_s_stage2"):
        try:
            c[key] = float(c[key])
        except (TypeError, ValueError):
            raise ValueError(f"supir restorer: {key} must be a number, got {c[key]!r}") from None
        if not np.isfinite(c[key]):
            raise ValueError(f"supir restorer: {key} must be finite, got {c[key]!r}")
    if not isinstance(c["seed"], (int, np.integer)) or isinstance(c["seed"], bool):
        raise ValueError(f"supir restorer: seed must be an integer, got {c['seed']!r}")
    for key in ("prompt", "a_prompt", "n_prompt"):
        if not isinstance(c[key], str):
            raise ValueError(f"supir restorer: {key} must be a string")
    if not isinstance(c["ckpt_pth"], dict):
        raise ValueError("supir restorer: ckpt_pth must be a dict of CKPT_PTH attribute overrides")
    for key in CKPT_KEYS:
        if c[key] is not None:
            c[key] = Path(c[key])
            if not c[key].is_file():
                raise ValueError(f"supir restorer: {key} not found: {c[key]}")
    return c


def model_yaml(cfg: dict, out_dir: Path) -> Path:
    """Copy of the model yaml with the configured checkpoint paths (absolute) -> path of the copy.

    Checkpoints the config does not name keep the yaml's value; the one the sign needs must then exist.
    """
    with open(cfg["options"], encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or "model" not in doc:
        raise ValueError(f"supir restorer: {cfg['options']} is not a SUPIR model yaml (no 'model' section)")
    for key, ykey in CKPT_KEYS.items():
        if cfg[key] is not None:
            doc[ykey] = str(cfg[key].resolve())
        else:
            doc.setdefault(ykey, None)
    needed = "SUPIR_CKPT_Q" if cfg["sign"] == "Q" else "SUPIR_CKPT_F"
    for ykey in ("SDXL_CKPT", needed):
        p = doc.get(ykey)
        if p is None or not Path(p).is_file():
            raise ValueError(f"supir restorer: checkpoint {ykey} not found ({p!r}); set it in the config")
    out = out_dir / "supir_model.yaml"
    with open(out, "w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    return out


class SupirRestorer:
    name = "supir"

    def __init__(self, device: str = "cuda", config: dict | None = None):
        self.cfg = check_config(config)
        import torch

        self.device = torch.device(device)
        if self.cfg["loading_half_params"] and self.device.type != "cuda":
            raise ValueError("supir restorer: loading_half_params needs a CUDA device")
        repo = str(self.cfg["repo"].resolve())
        if repo not in sys.path:
            sys.path.insert(0, repo)
        ckpt_pth = importlib.import_module("CKPT_PTH")
        for attr, value in self.cfg["ckpt_pth"].items():
            setattr(ckpt_pth, attr, value)
        util = importlib.import_module("SUPIR.util")
        self.PIL2Tensor = util.PIL2Tensor
        self.Tensor2PIL = util.Tensor2PIL
        with tempfile.TemporaryDirectory(prefix="infercom-supir-") as tmp:
            yml = model_yaml(self.cfg, Path(tmp))
            model = util.create_SUPIR_model(str(yml), SUPIR_sign=self.cfg["sign"])
        if self.cfg["loading_half_params"]:
            model = model.half()
        if self.cfg["use_tile_vae"]:
            model.init_tile_vae(encoder_tile_size=self.cfg["encoder_tile_size"],
                                decoder_tile_size=self.cfg["decoder_tile_size"])
        model = model.to(self.device)
        model.ae_dtype = util.convert_dtype(self.cfg["ae_dtype"])
        model.model.dtype = util.convert_dtype(self.cfg["diff_dtype"])
        model.eval()
        self.model = model
        # batchify_sample rewrites model.sampler_config / model.sampler: one call at a time
        self._lock = threading.Lock()

    def sample_kwargs(self) -> dict:
        """SUPIR's ``batchify_sample`` keyword arguments from the config (names as in SUPIR's test.py)."""
        c = self.cfg
        return dict(num_steps=c["edm_steps"], restoration_scale=c["s_stage1"], s_churn=c["s_churn"],
                    s_noise=c["s_noise"], cfg_scale=c["s_cfg"], control_scale=c["s_stage2"], seed=int(c["seed"]),
                    num_samples=1, p_p=c["a_prompt"], n_p=c["n_prompt"], color_fix_type=c["color_fix_type"],
                    use_linear_CFG=bool(c["linear_CFG"]), use_linear_control_scale=bool(c["linear_s_stage2"]),
                    cfg_scale_start=c["spt_linear_CFG"], control_scale_start=c["spt_linear_s_stage2"])

    def restore(self, observation: np.ndarray, meta: dict) -> np.ndarray:
        import torch
        from PIL import Image

        obs, m = check_inputs(observation, meta)
        lq = to_rgb(upsample_observation(obs, m))
        x, h0, w0 = self.PIL2Tensor(Image.fromarray(lq), upsacle=self.cfg["upscale"],
                                    min_size=self.cfg["min_size"])
        x = x.unsqueeze(0).to(self.device)[:, :3, :, :]
        with self._lock, torch.no_grad():
            samples = self.model.batchify_sample(x, [self.cfg["prompt"]], **self.sample_kwargs())
        out = np.asarray(self.Tensor2PIL(samples[0], h0, w0).convert("RGB"))
        if not np.all(np.isfinite(out)):
            raise ValueError("supir restorer: SUPIR produced non-finite pixels")
        out = resize_uint8(out, m["height"], m["width"])
        return check_output(from_rgb(out, m["channels"]), m)
