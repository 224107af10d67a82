# SPDX-License-Identifier: GPL-3.0-or-later
"""Restorers: registry, bicubic baseline, and the SUPIR / diffusers adapters run end to end on tiny random
models built here (the adapters' real loading and pre/post-processing code; not SUPIR or SD themselves)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from infercom import link, source
from receiver_server.restorers import REGISTRY, get_restorer
from receiver_server.restorers.base import check_inputs


def make_case(rng, height=37, width=50, channels=3, bh=3, bw=3):
    """A smooth test image, its exact block means as the observation, and the meta."""
    yy, xx = np.mgrid[0:height, 0:width]
    planes = [127 + 90 * np.sin(xx / 7.0 + c) * np.cos(yy / 9.0 - c) for c in range(channels)]
    img = np.clip(np.stack(planes, axis=2) + rng.normal(0, 3, (height, width, channels)), 0, 255)
    img = img.astype(np.uint8)
    obs = source.lpf_encode(img, bh, bw).astype(np.float32)
    lh, lw = obs.shape[:2]
    meta = dict(bh=bh, bw=bw, height=height, width=width, channels=channels, snr_db=3.0, attempts=1,
                missing=np.zeros((lh, lw), bool))
    return img, obs, meta


# --------------------------------------------------------------------------------------------- registry

def test_registry_import_is_torch_free_and_lazy():
    import subprocess

    code = ("import sys, receiver_server.restorers as r, receiver_server.qoe as q; "
            "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, 'eager import'")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert REGISTRY["infercom-restorer"] == "receiver_server.restorers.infercom_restorer.model:InferComRestorer"
    assert {"bicubic", "supir", "diffusers", "infercom-restorer"} <= set(REGISTRY)


def test_registry_rejects_unknown_names_and_bad_config():
    with pytest.raises(ValueError, match="unknown restorer"):
        get_restorer("nope")
    with pytest.raises(ValueError, match="config must be a dict"):
        get_restorer("bicubic", config=[1])
    with pytest.raises(ValueError, match="unknown config keys"):
        get_restorer("bicubic", config={"mehtod": "bicubic"})
    with pytest.raises(ValueError, match="config 'path'"):
        get_restorer("diffusers")
    with pytest.raises(ValueError, match="config 'repo'"):
        get_restorer("supir")


def test_registry_import_failure_is_a_clear_error(monkeypatch):
    import receiver_server.restorers as r

    monkeypatch.setitem(r.REGISTRY, "ghost", "receiver_server.no_such_module:Ghost")
    with pytest.raises(ImportError, match="restorer 'ghost' is not available.*no_such_module"):
        get_restorer("ghost")


# --------------------------------------------------------------------------------------------- bicubic

def test_bicubic_is_the_link_upsample(rng):
    img, obs, meta = make_case(rng)
    out = get_restorer("bicubic").restore(obs, meta)
    lay = link.layout(meta["height"], meta["width"], 3, link.LinkConfig(bh=3, bw=3))
    assert out.dtype == np.uint8 and out.shape == img.shape
    np.testing.assert_array_equal(out, link.upsample(obs, lay))
    # the baseline is a sensible reconstruction of a smooth image
    assert np.abs(out.astype(float) - img).mean() < 8


@pytest.mark.parametrize("bad, msg", [
    (lambda o, m: (o[:-1], m), "does not match"),
    (lambda o, m: (o * np.nan, m), "NaN"),
    (lambda o, m: (o + 300, m), r"\[0, 255\]"),
    (lambda o, m: (o, {k: v for k, v in m.items() if k != "bh"}), "lacks required keys"),
    (lambda o, m: (o, {**m, "channels": 2}), "channels"),
    (lambda o, m: (o, {**m, "missing": np.zeros((2, 2), bool)}), "missing"),
    (lambda o, m: (o, {**m, "height": 2.5}), "integer"),
])
def test_inputs_are_validated(rng, bad, msg):
    _, obs, meta = make_case(rng)
    o, m = bad(obs, meta)
    with pytest.raises(ValueError, match=msg):
        get_restorer("bicubic").restore(o, m)


def test_grey_images(rng):
    img, obs, meta = make_case(rng, channels=1, bh=2, bw=4)
    out = get_restorer("bicubic").restore(obs[:, :, 0], meta)          # 2-D observation accepted
    assert out.shape == (meta["height"], meta["width"], 1)
    o, m = check_inputs(obs, meta)
    assert o.dtype == np.float32 and m["channels"] == 1


# --------------------------------------------------------------------------------------------- SUPIR

# A tiny randomly initialised stand-in with the API surface of the official SUPIR code (CKPT_PTH,
# sgm.util.instantiate_from_config, SUPIR.util.{create_SUPIR_model, load_state_dict, PIL2Tensor, Tensor2PIL,
# convert_dtype}, SUPIRModel.{batchify_sample, init_tile_vae, ae_dtype, model.dtype, first_stage_model},
# SUPIR.utils.colorfix). Its "VAE" is a pair of 1x1 convolutions and its "diffusion" pulls pure noise to the
# stage-1 latent plus a control term, so that with identity VAE weights and a zero control the whole pipeline
# must reproduce its input: any error of the adapter in value ranges, channel order, sizes or argument mapping
# shows. It records every call for the test to inspect.
STANDIN = {
    "CKPT_PTH.py": """
        SDXL_CLIP1_PATH = None
        SDXL_CLIP2_CKPT_PTH = None
    """,
    "sgm/__init__.py": "",
    "sgm/util.py": """
        import importlib

        def get_obj_from_str(string):
            module, cls = string.rsplit(".", 1)
            return getattr(importlib.import_module(module), cls)

        def instantiate_from_config(config):
            return get_obj_from_str(config["target"])(**config.get("params", dict()))
    """,
    "SUPIR/__init__.py": "",
    "SUPIR/utils/__init__.py": "",
    "SUPIR/models/__init__.py": "",
    "SUPIR/util.py": """
        import os
        import numpy as np
        import torch
        import yaml
        from PIL import Image
        from torch.nn.functional import interpolate
        from sgm.util import instantiate_from_config
        import CKPT_PTH

        CALLS = []

        def load_state_dict(ckpt_path, location="cpu"):
            if os.path.splitext(ckpt_path)[1].lower() == ".safetensors":
                import safetensors.torch
                sd = safetensors.torch.load_file(ckpt_path, device=location)
            else:
                sd = torch.load(ckpt_path, map_location=torch.device(location))
            return sd.get("state_dict", sd)

        def create_SUPIR_model(config_path, SUPIR_sign=None):
            with open(config_path) as f:
                config = yaml.safe_load(f)
            CALLS.append(("create", config_path, SUPIR_sign, CKPT_PTH.SDXL_CLIP1_PATH, dict(config)))
            model = instantiate_from_config(config["model"]).cpu()
            if config["SDXL_CKPT"] is not None:
                model.load_state_dict(load_state_dict(config["SDXL_CKPT"]), strict=False)
            if config.get("SUPIR_CKPT") is not None:
                model.load_state_dict(load_state_dict(config["SUPIR_CKPT"]), strict=False)
            if SUPIR_sign is not None:
                assert SUPIR_sign in ["F", "Q"]
                key = "SUPIR_CKPT_F" if SUPIR_sign == "F" else "SUPIR_CKPT_Q"
                model.load_state_dict(load_state_dict(config[key]), strict=False)
            return model

        def PIL2Tensor(img, upsacle=1, min_size=1024):
            w, h = img.size
            w *= upsacle
            h *= upsacle
            w0, h0 = round(w), round(h)
            if min(w, h) < min_size:
                s = min_size / min(w, h)
                w *= s
                h *= s
            w = int(np.round(w / 64.0)) * 64
            h = int(np.round(h / 64.0)) * 64
            x = np.array(img.resize((w, h), Image.BICUBIC)).round().clip(0, 255).astype(np.uint8)
            x = x / 255 * 2 - 1
            return torch.tensor(x, dtype=torch.float32).permute(2, 0, 1), h0, w0

        def Tensor2PIL(x, h0, w0):
            x = interpolate(x.unsqueeze(0), size=(h0, w0), mode="bicubic")
            x = (x.squeeze(0).permute(1, 2, 0) * 127.5 + 127.5).cpu().numpy().clip(0, 255).astype(np.uint8)
            return Image.fromarray(x)

        def convert_dtype(dtype_str):
            table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
            if dtype_str not in table:
                raise NotImplementedError
            return table[dtype_str]
    """,
    "SUPIR/utils/colorfix.py": """
        import torch.nn.functional as F

        def _low(x):
            return F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), 5, stride=1)

        def wavelet_reconstruction(content, style):
            return content - _low(content) + _low(style)

        def adaptive_instance_normalization(content, style):
            cm, cs = content.mean((2, 3), keepdim=True), content.std((2, 3), keepdim=True) + 1e-5
            sm, ss = style.mean((2, 3), keepdim=True), style.std((2, 3), keepdim=True)
            return (content - cm) / cs * ss + sm
    """,
    "SUPIR/models/SUPIR_model.py": """
        import torch
        import torch.nn as nn
        from SUPIR.utils.colorfix import wavelet_reconstruction, adaptive_instance_normalization

        class Tiled:
            def __init__(self, net, tile):
                self.net, self.tile = net, tile
                self.calls = 0

            def __call__(self, x):
                self.calls += 1
                rows = []
                for i in range(0, x.shape[2], self.tile):
                    rows.append(torch.cat([self.net.original_forward(x[:, :, i:i + self.tile, j:j + self.tile])
                                           for j in range(0, x.shape[3], self.tile)], dim=3))
                return torch.cat(rows, dim=2)

        class AE(nn.Module):
            def __init__(self, z):
                super().__init__()
                self.encoder = nn.Conv2d(3, z, 1)
                self.denoise_encoder = nn.Conv2d(3, z, 1)
                self.decoder = nn.Conv2d(z, 3, 1)

        class Diffusion(nn.Module):
            def __init__(self, z):
                super().__init__()
                self.control = nn.Conv2d(z, z, 3, padding=1)
                self.dtype = torch.float32
                self.seen_dtypes = []

        class SUPIRModel(nn.Module):
            def __init__(self, z_channels=4, ae_dtype="fp32", diffusion_dtype="fp32", p_p="", n_p=""):
                super().__init__()
                self.first_stage_model = AE(z_channels)
                self.model = Diffusion(z_channels)
                self.ae_dtype = torch.float32
                self.p_p, self.n_p = p_p, n_p
                self.tile_sizes = None
                self.sample_calls = []

            def init_tile_vae(self, encoder_tile_size=512, decoder_tile_size=64):
                self.tile_sizes = (encoder_tile_size, decoder_tile_size)
                fsm = self.first_stage_model
                for net, tile in ((fsm.denoise_encoder, encoder_tile_size), (fsm.encoder, encoder_tile_size),
                                  (fsm.decoder, decoder_tile_size)):
                    net.original_forward = net.forward
                    net.forward = Tiled(net, tile)

            def _ae(self, net, x):
                with torch.autocast(x.device.type, dtype=self.ae_dtype, enabled=self.ae_dtype != torch.float32):
                    return net(x).float()

            @torch.no_grad()
            def batchify_sample(self, x, p, p_p="default", n_p="default", num_steps=100, restoration_scale=4.0,
                                s_churn=0, s_noise=1.003, cfg_scale=4.0, seed=-1, num_samples=1, control_scale=1,
                                color_fix_type="None", use_linear_CFG=False, use_linear_control_scale=False,
                                cfg_scale_start=1.0, control_scale_start=0.0, **kwargs):
                assert len(x) == len(p)
                assert color_fix_type in ["Wavelet", "AdaIn", "None"]
                self.sample_calls.append(dict(x=x.detach().clone(), p=list(p), p_p=p_p, n_p=n_p,
                                              num_steps=num_steps, restoration_scale=restoration_scale,
                                              s_churn=s_churn, s_noise=s_noise, cfg_scale=cfg_scale, seed=seed,
                                              num_samples=num_samples, control_scale=control_scale,
                                              color_fix_type=color_fix_type, use_linear_CFG=use_linear_CFG,
                                              use_linear_control_scale=use_linear_control_scale,
                                              cfg_scale_start=cfg_scale_start,
                                              control_scale_start=control_scale_start))
                torch.manual_seed(seed)
                fsm = self.first_stage_model
                _z = self._ae(fsm.denoise_encoder, x)
                x_stage1 = self._ae(fsm.decoder, _z)
                z_stage1 = self._ae(fsm.encoder, x_stage1)
                with torch.autocast(x.device.type, dtype=self.model.dtype,
                                    enabled=self.model.dtype != torch.float32):
                    ctrl = self.model.control(_z)
                self.model.seen_dtypes.append(ctrl.dtype)
                z = torch.randn_like(_z)
                for i in range(num_steps):
                    t = (i + 1) / num_steps
                    z = (1 - t) * z + t * (z_stage1 + control_scale * ctrl.float())
                samples = self._ae(fsm.decoder, z)
                if color_fix_type == "Wavelet":
                    samples = wavelet_reconstruction(samples, x_stage1)
                elif color_fix_type == "AdaIn":
                    samples = adaptive_instance_normalization(samples, x_stage1)
                return samples
    """,
}


@pytest.fixture(scope="module")
def supir_repo(tmp_path_factory):
    """Write the stand-in SUPIR checkout, its yaml and three checkpoints (SDXL, v0Q, v0F)."""
    torch = pytest.importorskip("torch")
    import safetensors.torch

    root = tmp_path_factory.mktemp("supir")
    repo = root / "SUPIR-checkout"
    for rel, text in STANDIN.items():
        p = repo / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    (repo / "options").mkdir()
    yml = {
        "model": {"target": "SUPIR.models.SUPIR_model.SUPIRModel",
                  "params": {"z_channels": 4, "ae_dtype": "bf16", "diffusion_dtype": "fp16",
                             "p_p": "positive", "n_p": "negative"}},
        "SDXL_CKPT": "/nonexistent/sd_xl_base_1.0_0.9vae.safetensors",
        "SUPIR_CKPT_F": "/nonexistent/SUPIR-v0F.ckpt",
        "SUPIR_CKPT_Q": "/nonexistent/SUPIR-v0Q.ckpt",
        "SUPIR_CKPT": None,
    }
    import yaml

    (repo / "options" / "SUPIR_v0.yaml").write_text(yaml.safe_dump(yml))
    ident_enc = torch.zeros(4, 3, 1, 1)
    ident_enc[:3, :, 0, 0] = torch.eye(3)
    ident_dec = torch.zeros(3, 4, 1, 1)
    ident_dec[:, :3, 0, 0] = torch.eye(3)
    sdxl = {"first_stage_model.encoder.weight": ident_enc, "first_stage_model.encoder.bias": torch.zeros(4),
            "first_stage_model.decoder.weight": ident_dec, "first_stage_model.decoder.bias": torch.zeros(3)}
    ckpts = root / "ckpts"
    ckpts.mkdir()
    safetensors.torch.save_file(sdxl, str(ckpts / "sdxl.safetensors"))
    q = {"first_stage_model.denoise_encoder.weight": ident_enc,
         "first_stage_model.denoise_encoder.bias": torch.zeros(4),
         "model.control.weight": torch.zeros(4, 4, 3, 3), "model.control.bias": torch.zeros(4)}
    g = torch.Generator().manual_seed(7)
    f = dict(q, **{"model.control.weight": 0.2 * torch.randn(4, 4, 3, 3, generator=g),
                   "model.control.bias": 0.1 * torch.randn(4, generator=g)})
    torch.save({"state_dict": q}, str(ckpts / "SUPIR-v0Q.ckpt"))
    torch.save({"state_dict": f}, str(ckpts / "SUPIR-v0F.ckpt"))
    base = {"repo": str(repo), "sdxl_ckpt": str(ckpts / "sdxl.safetensors"),
            "supir_ckpt_q": str(ckpts / "SUPIR-v0Q.ckpt"), "supir_ckpt_f": str(ckpts / "SUPIR-v0F.ckpt"),
            "min_size": 64, "edm_steps": 3, "ae_dtype": "fp32", "diff_dtype": "fp32"}
    yield base, f
    for name in [m for m in sys.modules if m.split(".")[0] in ("SUPIR", "sgm", "CKPT_PTH")]:
        del sys.modules[name]
    if str(repo.resolve()) in sys.path:
        sys.path.remove(str(repo.resolve()))


def test_supir_adapter_identity_standin_reproduces_the_baseline(supir_repo, rng):
    """Identity VAE + zero control (v0Q): the adapter must hand back the bicubic baseline (up to the
    PIL2Tensor resize to >= min_size and the bicubic resize back), with every parameter mapped."""
    import torch

    base, _ = supir_repo
    cfg = dict(base, s_cfg=4.5, s_stage1=2.0, s_stage2=0.8, s_churn=3, s_noise=1.01, seed=99, prompt="a cat, ",
               a_prompt="sharp", n_prompt="blurry", color_fix_type="AdaIn", linear_CFG=True,
               spt_linear_CFG=2.0, linear_s_stage2=True, spt_linear_s_stage2=0.1,
               ckpt_pth={"SDXL_CLIP1_PATH": "/models/clip-vit-large-patch14"})
    r = get_restorer("supir", device="cpu", config=cfg)
    img, obs, meta = make_case(rng, height=45, width=70)
    out = r.restore(obs, meta)
    assert out.dtype == np.uint8 and out.shape == img.shape
    baseline = get_restorer("bicubic").restore(obs, meta)
    assert np.abs(out.astype(float) - baseline).mean() < 1.5
    call = r.model.sample_calls[-1]
    assert call["p"] == ["a cat, "] and call["p_p"] == "sharp" and call["n_p"] == "blurry"
    assert (call["num_steps"], call["restoration_scale"], call["cfg_scale"], call["control_scale"]) == \
        (3, 2.0, 4.5, 0.8)
    assert (call["s_churn"], call["s_noise"], call["seed"], call["num_samples"]) == (3.0, 1.01, 99, 1)
    assert call["color_fix_type"] == "AdaIn" and call["use_linear_CFG"] and call["use_linear_control_scale"]
    assert (call["cfg_scale_start"], call["control_scale_start"]) == (2.0, 0.1)
    x = call["x"]                                        # SUPIR input: (1, 3, H, W) RGB in [-1, 1], /64
    assert x.shape[0] == 1 and x.shape[1] == 3 and x.shape[2] % 64 == 0 and x.shape[3] % 64 == 0
    assert min(x.shape[2:]) >= 64 and -1 <= float(x.min()) and float(x.max()) <= 1
    # channel order: the red plane of the input tensor follows the red plane of the baseline
    small = torch.nn.functional.interpolate(x, size=img.shape[:2], mode="area")[0].numpy()
    corr = np.corrcoef(small[0].ravel(), baseline[:, :, 0].ravel())[0, 1]
    assert corr > 0.98
    import CKPT_PTH
    from SUPIR import util

    assert CKPT_PTH.SDXL_CLIP1_PATH == "/models/clip-vit-large-patch14"
    created = util.CALLS[-1]
    assert created[2] == "Q" and created[4]["SDXL_CKPT"] == str(Path(base["sdxl_ckpt"]).resolve())


def test_supir_sign_f_loads_the_f_checkpoint_and_changes_the_result(supir_repo, rng):
    import torch

    base, f = supir_repo
    rq = get_restorer("supir", config=dict(base, sign="Q"), device="cpu")
    rf = get_restorer("supir", config=dict(base, sign="F"), device="cpu")
    assert torch.equal(rf.model.model.control.weight, f["model.control.weight"])
    assert not torch.equal(rq.model.model.control.weight, f["model.control.weight"])
    _, obs, meta = make_case(rng)
    assert np.abs(rq.restore(obs, meta).astype(int) - rf.restore(obs, meta)).mean() > 1.0


def test_supir_tiled_vae_colour_fix_and_dtypes(supir_repo, rng):
    import torch

    base, _ = supir_repo
    _, obs, meta = make_case(rng, height=40, width=52)
    plain = get_restorer("supir", config=dict(base, sign="F", color_fix_type="None"), device="cpu")
    tiled = get_restorer("supir", config=dict(base, sign="F", color_fix_type="None", use_tile_vae=True,
                                              encoder_tile_size=32, decoder_tile_size=16), device="cpu")
    assert tiled.model.tile_sizes == (32, 16)
    np.testing.assert_array_equal(tiled.restore(obs, meta), plain.restore(obs, meta))
    assert tiled.model.first_stage_model.decoder.forward.calls > 0
    wavelet = get_restorer("supir", config=dict(base, sign="F", color_fix_type="Wavelet"), device="cpu")
    assert not np.array_equal(wavelet.restore(obs, meta), plain.restore(obs, meta))
    bf = get_restorer("supir", config=dict(base, ae_dtype="bf16", diff_dtype="bf16"), device="cpu")
    assert bf.model.ae_dtype == torch.bfloat16 and bf.model.model.dtype == torch.bfloat16
    out = bf.restore(obs, meta)
    assert bf.model.model.seen_dtypes[-1] == torch.bfloat16 and out.shape == (40, 52, 3)


def test_supir_grey_and_upscale(supir_repo, rng):
    base, _ = supir_repo
    _, obs, meta = make_case(rng, channels=1, height=33, width=41)
    r = get_restorer("supir", config=dict(base, upscale=2), device="cpu")
    out = r.restore(obs, meta)
    assert out.shape == (33, 41, 1)
    baseline = get_restorer("bicubic").restore(obs, meta)
    assert np.abs(out.astype(float) - baseline).mean() < 2.0


@pytest.mark.parametrize("patch, msg", [
    ({"sign": "X"}, "sign"), ({"color_fix_type": "Hist"}, "color_fix_type"), ({"ae_dtype": "fp16"}, "NaN"),
    ({"edm_steps": 0}, "edm_steps"), ({"supir_ckpt_q": "/no/such.ckpt"}, "not found"),
    ({"s_cfg": "high"}, "s_cfg"), ({"loading_half_params": True}, "CUDA"), ({"bogus": 1}, "unknown"),
])
def test_supir_config_errors(supir_repo, patch, msg):
    base, _ = supir_repo
    with pytest.raises(ValueError, match=msg):
        get_restorer("supir", config=dict(base, **patch), device="cpu")


def test_supir_missing_checkpoint_in_yaml_is_reported(supir_repo):
    base, _ = supir_repo
    cfg = {k: v for k, v in base.items() if k != "sdxl_ckpt"}
    with pytest.raises(ValueError, match="SDXL_CKPT not found"):
        get_restorer("supir", config=cfg, device="cpu")


# --------------------------------------------------------------------------------------------- diffusers

def write_tiny_clip_tokenizer(path: Path, max_len: int):
    """A character-level CLIP BPE vocabulary (no merges) on disk -> CLIPTokenizer."""
    from transformers import CLIPTokenizer

    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), model_max_length=max_len), vocab


@pytest.fixture(scope="module")
def tiny_img2img(tmp_path_factory):
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionImg2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    root = tmp_path_factory.mktemp("sd")
    tok, vocab = write_tiny_clip_tokenizer(root / "tok", 16)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                norm_num_groups=4, attention_head_dim=2)
    vae = AutoencoderKL(block_out_channels=[8, 16], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        norm_num_groups=4, sample_size=16)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=24,
                                        num_attention_heads=2, num_hidden_layers=1, max_position_embeddings=16,
                                        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                                        pad_token_id=vocab["<|endoftext|>"]))
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionImg2ImgPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=sched,
                                          safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    out = root / "pipe"
    pipe.save_pretrained(str(out))
    return out


def test_diffusers_img2img_end_to_end(tiny_img2img, rng, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = {"path": str(tiny_img2img), "num_inference_steps": 4, "strength": 0.5, "prompt": "a photo",
           "negative_prompt": "blur", "seed": 3}
    r = get_restorer("diffusers", device="cpu", config=cfg)
    assert type(r.pipe).__name__ == "StableDiffusionImg2ImgPipeline" and r.input_mode == "upsampled"
    img, obs, meta = make_case(rng, height=35, width=46)
    out = r.restore(obs, meta)
    assert out.dtype == np.uint8 and out.shape == img.shape
    again = get_restorer("diffusers", device="cpu", config=cfg).restore(obs, meta)
    np.testing.assert_array_equal(out, again)                      # seeded: reproducible
    other = get_restorer("diffusers", device="cpu", config=dict(cfg, seed=4)).restore(obs, meta)
    assert not np.array_equal(out, other)
    kw = r.call_kwargs(None)
    assert kw["strength"] == 0.5 and kw["num_inference_steps"] == 4 and kw["output_type"] == "np"
    assert "noise_level" not in kw                                 # not an argument of img2img
    grey_img, grey_obs, grey_meta = make_case(rng, channels=1, height=30, width=30)
    assert r.restore(grey_obs, grey_meta).shape == (30, 30, 1)


def test_diffusers_concurrent_calls_match_sequential(tiny_img2img, rng):
    """Server worker threads share one restorer; the pipeline's scheduler is stateful, so calls serialise."""
    from concurrent.futures import ThreadPoolExecutor

    r = get_restorer("diffusers", config={"path": str(tiny_img2img), "num_inference_steps": 4, "strength": 0.5})
    cases = [make_case(rng, height=24 + 8 * i, width=32) for i in range(3)]
    sequential = [r.restore(obs, meta) for _, obs, meta in cases]
    with ThreadPoolExecutor(3) as pool:
        parallel = list(pool.map(lambda c: r.restore(c[1], c[2]), cases))
    for a, b in zip(sequential, parallel):
        np.testing.assert_array_equal(a, b)


def test_diffusers_lowres_input_mode_and_errors(tiny_img2img, rng, tmp_path):
    r = get_restorer("diffusers", config={"path": str(tiny_img2img), "num_inference_steps": 4, "strength": 0.5,
                                          "input": "lowres"})
    _, obs, meta = make_case(rng, height=48, width=40, bh=2, bw=2)
    lowres = r.pipeline_input(obs, meta)
    assert lowres.shape == (24, 20, 3)
    assert r.restore(obs, meta).shape == (48, 40, 3)
    with pytest.raises(ValueError, match="model_index.json"):
        get_restorer("diffusers", config={"path": str(tmp_path)})
    with pytest.raises(ValueError, match="strength"):
        get_restorer("diffusers", config={"path": str(tiny_img2img), "strength": 0})
    with pytest.raises(ValueError, match="no denoising step"):
        get_restorer("diffusers", config={"path": str(tiny_img2img), "num_inference_steps": 2, "strength": 0.3})
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        get_restorer("diffusers", config={"path": str(tiny_img2img), "torch_dtype": "fp16"})


def test_diffusers_upscale_pipeline_gets_the_lowres_observation(tmp_path, rng, monkeypatch):
    """A tiny x4 StableDiffusionUpscalePipeline: auto mode feeds it the low-res observation, passes
    noise_level (not strength), and the adapter resizes the pipeline's output back to the original size."""
    torch = pytest.importorskip("torch")
    from diffusers import (AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionUpscalePipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok, vocab = write_tiny_clip_tokenizer(tmp_path / "tok", 16)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=7,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                norm_num_groups=4, attention_head_dim=2, num_class_embeds=100)
    vae = AutoencoderKL(block_out_channels=[8, 8, 16], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
                        norm_num_groups=4, sample_size=16, scaling_factor=0.08333)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=24,
                                        num_attention_heads=2, num_hidden_layers=1, max_position_embeddings=16,
                                        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                                        pad_token_id=vocab["<|endoftext|>"]))
    pipe = StableDiffusionUpscalePipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                          low_res_scheduler=DDPMScheduler(),
                                          scheduler=DDIMScheduler(prediction_type="v_prediction", steps_offset=1),
                                          max_noise_level=350)
    pipe.save_pretrained(str(tmp_path / "pipe"))
    r = get_restorer("diffusers", config={"path": str(tmp_path / "pipe"), "num_inference_steps": 3,
                                          "prompt": "a photo", "negative_prompt": "blur", "noise_level": 30})
    assert r.input_mode == "lowres"
    kw = r.call_kwargs(None)
    assert kw["noise_level"] == 30 and "strength" not in kw
    seen = {}
    original = type(r.pipe).__call__

    def spy(self, *args, **kwargs):
        seen["size"] = kwargs["image"].size
        out = original(self, *args, **kwargs)
        seen["out"] = np.asarray(out.images[0]).shape
        return out

    monkeypatch.setattr(type(r.pipe), "__call__", spy)
    _, obs, meta = make_case(rng, height=48, width=40, bh=4, bw=4)
    out = r.restore(obs, meta)
    assert seen["size"] == (10, 12)                                        # PIL size is (w, h)
    assert seen["out"][:2] == (48, 32)      # the pipeline rounds 10 px down to 8 (a VAE multiple), then x4
    assert out.shape == (48, 40, 3) and out.dtype == np.uint8
