# SPDX-License-Identifier: GPL-3.0-or-later
"""The Deep-JSCC autoencoder of Bourtsoulatze, Kurka and Gündüz (IEEE TCCN 2019), its bandwidth presets,
puncturing, power normalisation, checkpoints and a numpy-facing codec.

Model (as in the 2019 paper: GDN-free, PReLU activations, no quantisation, no entropy coding):

* encoder: 5x5 convolutions 16 (stride 2), 32 (stride 2), 32, 32, ``c`` (stride 1), each followed by a
  channel-wise PReLU; then the average power normalisation;
* decoder (mirrored): 5x5 transposed convolutions 32, 32, 32 (stride 1), 16 (stride 2), 3 (stride 2), PReLU
  after each but the last, which is followed by a sigmoid.

Padding 2 on every layer (and output padding 1 on the stride-2 transposed convolutions) makes an input of
``(H, W)``, multiples of 4, give a latent ``(c, H/4, W/4)`` and the decoder return exactly ``(H, W)``. Any other
size is edge-replicated up to the next multiple of 4 (bottom and right) and the output cropped back.

Channel symbols: the latent is flattened in C order (channel-major: all of channel 0 row by row, then channel
1, ...) and consecutive real values are paired into complex symbols, ``z[i] = l[2i] + 1j*l[2i+1]``. Exactly the
first ``k`` symbols are sent (``k = n_channel_uses(preset, H, W, C)``, the bandwidth preset); the receiver puts
zeros in the unsent positions, and training punctures the same way, so the model learns it. The ``k`` sent
symbols of each image are scaled to a mean power ``mean |z|^2 = 1`` exactly (Es = 1, so ``snr_db`` is Es/N0
per complex symbol as everywhere in the project, docs/internals.md §1).

Pixels are scaled to ``[0, 1]`` (``x / 255``); the decoder's sigmoid output is mapped back by ``round(255 x)``.
Grey images are replicated to 3 channels at the encoder and the decoder's 3 channels averaged back; their
channel uses follow the preset for ``C = 1``.
"""

from __future__ import annotations

import math
import pickle
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from infercom.channel import db_to_lin
from infercom.source import as_image3

from .presets import (LINK_BH, LINK_BW, LINK_PLANES, PRESETS, STRIDE, _check_size, check_capacity,  # noqa: F401
                      check_preset, latent_capacity, latent_channels, latent_shape, n_channel_uses, padded_size,
                      preset_arg)

CHECKPOINT_FORMAT = "infercom-deepjscc-1"
CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"


# ---------------------------------------------------------------------------------------------------- model


def _conv(cin: int, cout: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 5, stride=stride, padding=2)


def _tconv(cin: int, cout: int, stride: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 5, stride=stride, padding=2, output_padding=stride - 1)


class DeepJSCC(nn.Module):
    """The 2019 Deep-JSCC autoencoder with ``c`` latent channels (module docstring).

    Tensors: images ``(B, 3, H, W)`` float in ``[0, 1]``; sent symbols as real pairs ``(B, 2k)`` float,
    ``[Re z0, Im z0, Re z1, ...]``, mean power per complex symbol exactly 1 for each image.
    """

    def __init__(self, c: int):
        super().__init__()
        c = int(c)
        if c < 2 or c % 2:
            raise ValueError(f"latent channels c must be an even number >= 2, got {c}")
        self.c = c
        enc = [(3, 16, 2), (16, 32, 2), (32, 32, 1), (32, 32, 1), (32, c, 1)]
        layers: list[nn.Module] = []
        for cin, cout, s in enc:
            layers += [_conv(cin, cout, s), nn.PReLU(cout)]
        self.encoder = nn.Sequential(*layers)
        dec = [(c, 32, 1), (32, 32, 1), (32, 32, 1), (32, 16, 2), (16, 3, 2)]
        layers = []
        for i, (cin, cout, s) in enumerate(dec):
            layers += [_tconv(cin, cout, s), nn.PReLU(cout) if i < len(dec) - 1 else nn.Sigmoid()]
        self.decoder = nn.Sequential(*layers)

    @staticmethod
    def pad(x: torch.Tensor) -> torch.Tensor:
        """Edge-replicate ``(B, 3, H, W)`` at the bottom and right up to multiples of 4."""
        hp, wp = padded_size(x.shape[-2], x.shape[-1])
        if (hp, wp) == tuple(x.shape[-2:]):
            return x
        return F.pad(x, (0, wp - x.shape[-1], 0, hp - x.shape[-2]), mode="replicate")

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder output ``(B, c, ceil(H/4), ceil(W/4))`` of images ``x`` ``(B, 3, H, W)`` in ``[0, 1]``."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(x.shape)}")
        return self.encoder(self.pad(x))

    def encode(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Sent symbols ``(B, 2k)`` (real pairs) of images ``x`` ``(B, 3, H, W)`` in ``[0, 1]``: the first ``k``
        complex symbols of the channel-major latent, each image scaled to mean power 1 per complex symbol."""
        k = int(k)
        check_capacity(self.c, k, x.shape[-2], x.shape[-1])
        s = self.latent(x).flatten(1)[:, :2 * k]
        return normalise_power(s)

    def decode(self, s: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Images ``(B, 3, height, width)`` in ``[0, 1]`` from received real pairs ``s`` ``(B, 2k)``; the
        unsent latent positions are zeros."""
        if s.ndim != 2 or s.shape[1] % 2:
            raise ValueError(f"expected received symbols as real pairs (B, 2k), got {tuple(s.shape)}")
        k = s.shape[1] // 2
        check_capacity(self.c, k, height, width)
        shape = latent_shape(self.c, height, width)
        full = s.new_zeros((s.shape[0], math.prod(shape)))
        full[:, :2 * k] = s
        out = self.decoder(full.view(s.shape[0], *shape))
        return out[:, :, :int(height), :int(width)]

    def forward(self, x: torch.Tensor, k: int, snr_db=None, generator: torch.Generator | None = None):
        """Encode, pass through AWGN at ``snr_db`` (Es/N0 per complex symbol, dB; scalar or one per image;
        ``None``: noiseless) and decode: the reconstruction ``(B, 3, H, W)`` in ``[0, 1]``."""
        s = self.encode(x, k)
        if snr_db is not None:
            s = awgn(s, snr_db, generator)
        return self.decode(s, x.shape[-2], x.shape[-1])


def normalise_power(s: torch.Tensor) -> torch.Tensor:
    """Scale each row of real pairs ``(B, 2k)`` to mean power 1 per complex symbol: ``sum(s^2) = k``.

    An all-zero row (no power to scale) stays zero."""
    k = s.shape[1] // 2
    p = s.square().sum(dim=1, keepdim=True) / k
    return s * torch.rsqrt(p.clamp_min(torch.finfo(s.dtype).tiny))


def awgn(s: torch.Tensor, snr_db, generator: torch.Generator | None = None) -> torch.Tensor:
    """``s + n``: complex AWGN on real pairs ``(B, 2k)`` with unit-power symbols (Es = 1).

    ``snr_db``: Es/N0 per complex symbol in dB, a scalar or one value per image (array of ``B``); ``N0 =
    1 / db_to_lin(snr_db)``, so each real dimension gets variance ``N0 / 2``. The noise is drawn on the CPU
    from ``generator`` (reproducible on any device) and moved to ``s``'s device."""
    n0 = 1.0 / np.broadcast_to(db_to_lin(np.asarray(snr_db, dtype=np.float64)), (s.shape[0],))
    std = torch.from_numpy(np.sqrt(n0 / 2.0).astype(np.float32)).to(s.device).view(-1, 1)
    noise = torch.randn(tuple(s.shape), generator=generator, dtype=torch.float32).to(s.device, s.dtype)
    return s + std * noise


def n_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------------- checkpoints


def snr_tag(snr_db) -> str:
    """File-name tag of a training SNR: ``0`` -> ``"0"``, ``(-2, 8)`` -> ``"-2to8"``."""
    if isinstance(snr_db, (tuple, list)):
        lo, hi = (float(v) for v in snr_db)
        return f"{lo:g}" if lo == hi else f"{lo:g}to{hi:g}"
    return f"{float(snr_db):g}"


def default_checkpoint(preset: str, snr_db) -> Path:
    """Where a checkpoint of ``preset`` trained at ``snr_db`` ships: ``deepjscc/checkpoints/
    deepjscc_<preset>_snr<S>.pt``."""
    return CHECKPOINT_DIR / f"deepjscc_{check_preset(preset)}_snr{snr_tag(snr_db)}.pt"


def save_checkpoint(path, model: DeepJSCC, meta: dict, half: bool = False) -> Path:
    """Write the deployable checkpoint: architecture (``c``), weights (fp32, or fp16 with ``half``) and
    ``meta`` (preset, training SNR, steps, time, command, dataset, ...). Written atomically; returns the path."""
    path = Path(path)
    weights = {n: (t.detach().to("cpu", torch.float16 if half else torch.float32)).clone()
               for n, t in model.state_dict().items()}
    ck = {"format": CHECKPOINT_FORMAT, "c": int(model.c), "dtype": "float16" if half else "float32",
          "weights": weights, "meta": dict(meta)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ck, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path, device="cpu") -> tuple[DeepJSCC, dict]:
    """``(model, meta)`` from a checkpoint written by :func:`save_checkpoint`: a float32 model in eval mode on
    ``device``. ValueError for a file that is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such Deep-JSCC checkpoint")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path} is not a Deep-JSCC checkpoint (unreadable: {exc})") from exc
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a Deep-JSCC checkpoint (format {CHECKPOINT_FORMAT})")
    model = DeepJSCC(ck["c"])
    model.load_state_dict({n: t.float() for n, t in ck["weights"].items()})
    return model.to(device).eval(), dict(ck["meta"])


def find_checkpoint(preset: str, snr_db=None) -> Path:
    """The shipped checkpoint of ``preset`` (trained at ``snr_db`` when given, else the only one shipped).
    FileNotFoundError when there is none (train one with ``infercom train-deepjscc``), ValueError when several
    SNRs ship and none was chosen."""
    if snr_db is not None:
        p = default_checkpoint(preset, snr_db)
        if not p.is_file():
            raise FileNotFoundError(f"no Deep-JSCC checkpoint {p} (train it with infercom train-deepjscc)")
        return p
    found = sorted(CHECKPOINT_DIR.glob(f"deepjscc_{check_preset(preset)}_snr*.pt"))
    if not found:
        raise FileNotFoundError(f"no shipped Deep-JSCC checkpoint of preset {preset!r} in {CHECKPOINT_DIR} "
                                f"(train one with infercom train-deepjscc)")
    if len(found) > 1:
        raise ValueError(f"several Deep-JSCC checkpoints of preset {preset!r} ship "
                         f"({', '.join(p.name for p in found)}); pass snr_db or checkpoint")
    return found[0]


# ---------------------------------------------------------------------------------------------------- codec


class DeepJSCCCodec:
    """Numpy-facing Deep-JSCC transmitter and receiver of one preset.

    ``checkpoint``: a path (``None``: the shipped checkpoint of ``preset``, trained at ``snr_db`` when given);
    ``model``: use this :class:`DeepJSCC` instead (e.g. untrained, in tests); ``device``: torch device.
    Symbols are complex64 with mean power 1 (Es = 1), pixels uint8 ``(H, W, C)``.
    """

    def __init__(self, checkpoint=None, preset: str = "channel-uses", device="cpu", *,
                 model: DeepJSCC | None = None, snr_db=None):
        self.device = torch.device(device)
        if model is not None:
            self.model, self.meta = model.to(self.device).eval(), {"preset": check_preset(preset)}
        else:
            path = Path(checkpoint) if checkpoint is not None else find_checkpoint(preset, snr_db)
            self.model, self.meta = load_checkpoint(path, self.device)
            self.meta.setdefault("checkpoint", str(path))
            preset = self.meta.get("preset", preset)
        self.preset = check_preset(preset)
        self.c = self.model.c

    def n_channel_uses(self, height: int, width: int, channels: int = 3) -> int:
        """Complex symbols per ``height x width x channels`` image (:func:`n_channel_uses`)."""
        return n_channel_uses(self.preset, height, width, channels)

    def encoder_flops(self, height: int, width: int, channels: int = 3) -> int:
        """Exact encoder FLOPs of one image (:func:`deepjscc.flops.encoder_flops`, padding included)."""
        from .flops import encoder_flops

        return encoder_flops(self.model, height, width, self.n_channel_uses(height, width, channels))["total"]

    # ------------------------------------------------------------------ batched torch (training, benches)

    def encode_batch(self, x: torch.Tensor, channels: int = 3) -> torch.Tensor:
        """Sent real pairs ``(B, 2k)`` of images ``(B, 3, H, W)`` in ``[0, 1]`` (``k`` for ``channels``)."""
        return self.model.encode(x.to(self.device), self.n_channel_uses(x.shape[-2], x.shape[-1], channels))

    def decode_batch(self, s: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Images ``(B, 3, height, width)`` in ``[0, 1]`` from received real pairs ``(B, 2k)``."""
        return self.model.decode(s.to(self.device), height, width)

    # ------------------------------------------------------------------ numpy, one image

    def encode(self, img) -> np.ndarray:
        """Transmit symbols complex64 ``(k,)`` of a uint8 image ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``;
        ``mean |z|^2 = 1`` (renormalised in float64 after the float32 network)."""
        a = as_image3(img)
        h, w, ch = a.shape
        x = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float().div_(255.0)[None]
        if ch == 1:
            x = x.expand(1, 3, h, w)
        with torch.no_grad():
            s = self.encode_batch(x, ch)[0].to("cpu", torch.float64).numpy()
        z = s[0::2] + 1j * s[1::2]
        p = float(np.mean(np.abs(z) ** 2))
        if p > 0:
            z = z / math.sqrt(p)
        return z.astype(np.complex64)

    def decode(self, y, height: int, width: int, channels: int = 3) -> np.ndarray:
        """uint8 image ``(height, width, channels)`` from received (equalised) symbols ``y`` complex ``(k,)``;
        a missing symbol is 0. ValueError when ``len(y)`` is not the preset's ``k``."""
        h, w, ch = _check_size(height, width, channels)
        y = np.asarray(y)
        k = self.n_channel_uses(h, w, ch)
        if y.ndim != 1 or y.shape[0] != k:
            raise ValueError(f"expected {k} received symbols for a {h}x{w}x{ch} image "
                             f"(preset {self.preset}), got shape {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError("received symbols contain NaN or inf")
        s = np.empty(2 * k, np.float32)
        s[0::2], s[1::2] = y.real, y.imag
        with torch.no_grad():
            out = self.decode_batch(torch.from_numpy(s)[None], h, w)[0].to("cpu")
        if ch == 1:
            out = out.mean(dim=0, keepdim=True)
        return np.rint(out.clamp(0, 1).numpy().transpose(1, 2, 0) * 255.0).astype(np.uint8)


def checkpoint_meta(preset: str, snr_db, steps: int, seconds: float, command: str, data, **extra) -> dict:
    """The metadata a checkpoint records: preset, latent channels, training SNR (dB, a value or ``[lo, hi]``),
    optimiser steps, training wall time (s), exact command line, dataset folders, creation time; plus ``extra``."""
    return {"preset": check_preset(preset), "c": latent_channels(preset),
            "snr_db": list(snr_db) if isinstance(snr_db, (tuple, list)) else float(snr_db),
            "steps": int(steps), "seconds": float(seconds), "command": str(command),
            "data": [str(d) for d in data], "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "torch": str(torch.__version__), **extra}
