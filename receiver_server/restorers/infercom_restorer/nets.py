# SPDX-License-Identifier: GPL-3.0-or-later
"""Networks of the InferCom restorer (small enough to train and run on a CPU).

Tensors are NCHW float32, pixel values scaled to [-1, 1] (``v / 127.5 - 1``).

* :class:`Stage1Net` -- degradation-robust regression. A small U-Net trunk works at the *low* resolution of the
  observation (cheap): it predicts a cleaned low-res image (bit-error outliers removed) and a feature map; a light
  full-resolution head, fed with the bicubic upsampling of the cleaned image, the bilinearly upsampled features and
  the position of each pixel inside its ``bh x bw`` block, predicts the remaining detail. Output = bicubic of the
  MMSE observation + (bicubic of the low-res correction) + detail, i.e. a residual over bicubic-of-MMSE.
* :class:`Stage2Net` -- velocity network of a conditional rectified flow on the residual over stage 1. It works
  at half the output resolution (pixel-unshuffle by 2), conditioned on the stage-1 output, the block position,
  the flow time and the link conditions.

Both are conditioned (FiLM) on a small vector: rate, Es/N0, Chase attempts and missing fraction
(:func:`cond_vector`).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

#: length of the link-condition vector built by :func:`cond_vector`
COND_DIM = 7


def cond_vector(bh, bw, snr_db, attempts, missing_frac, device=None) -> torch.Tensor:
    """Link conditions -> float32 ``(B, COND_DIM)``.

    ``snr_db`` is the mean Es/N0 per attempt (dB); the effective post-MRC SNR ``snr_db + 10 log10(attempts)`` is
    added as its own feature. Scalars or 1-D sequences of equal length are accepted.
    """
    def t(v):
        return torch.as_tensor(v, dtype=torch.float32, device=device).reshape(-1)

    bh_t, bw_t, snr, att, miss = t(bh), t(bw), t(snr_db), t(attempts), t(missing_frac)
    n = max(x.numel() for x in (bh_t, bw_t, snr, att, miss))
    bh_t, bw_t, snr, att, miss = (x.expand(n) if x.numel() == 1 else x for x in (bh_t, bw_t, snr, att, miss))
    eff = snr + 10.0 * torch.log10(att.clamp(min=1.0))
    return torch.stack([bh_t / 4.0, bw_t / 4.0, torch.log(bh_t * bw_t) / 2.0, snr / 8.0, eff / 8.0,
                        att / 3.0, miss * 4.0], dim=1)


def block_position(bh: int, bw: int, height: int, width: int, device=None) -> torch.Tensor:
    """Position of every pixel inside its ``bh x bw`` block, ``(1, 2, height, width)`` in [-0.5, 0.5]."""
    iy = (torch.arange(height, device=device) % bh).float()
    ix = (torch.arange(width, device=device) % bw).float()
    py = ((iy + 0.5) / bh - 0.5).view(1, 1, height, 1).expand(1, 1, height, width)
    px = ((ix + 0.5) / bw - 0.5).view(1, 1, 1, width).expand(1, 1, height, width)
    return torch.cat([py, px], dim=1)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of the flow time ``t`` in [0, 1], ``(B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    arg = t.float().view(-1, 1) * 1000.0 * freqs.view(1, -1)
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class ResBlock(nn.Module):
    """conv3x3 -> FiLM(emb) -> SiLU -> conv3x3, residual (second conv zero-initialised)."""

    def __init__(self, ch: int, emb_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * ch)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x, emb):
        h = self.conv1(F.silu(x))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = h * (1.0 + scale) + shift
        return x + self.conv2(F.silu(h))


class UNet(nn.Module):
    """Three-level U-Net (strides 1, 2, 4) with FiLM-conditioned residual blocks.

    Input height and width must be multiples of 4 (callers pad).
    """

    def __init__(self, in_ch: int, out_ch: int, widths=(32, 64, 96), blocks=(1, 2, 2), emb_dim: int = 64):
        super().__init__()
        w0, w1, w2 = widths
        self.inp = nn.Conv2d(in_ch, w0, 3, padding=1)
        self.enc0 = nn.ModuleList(ResBlock(w0, emb_dim) for _ in range(blocks[0]))
        self.down1 = nn.Conv2d(w0, w1, 3, stride=2, padding=1)
        self.enc1 = nn.ModuleList(ResBlock(w1, emb_dim) for _ in range(blocks[1]))
        self.down2 = nn.Conv2d(w1, w2, 3, stride=2, padding=1)
        self.mid = nn.ModuleList(ResBlock(w2, emb_dim) for _ in range(blocks[2]))
        self.up2 = nn.Conv2d(w2, w1, 3, padding=1)
        self.dec1 = nn.ModuleList(ResBlock(w1, emb_dim) for _ in range(blocks[1]))
        self.up1 = nn.Conv2d(w1, w0, 3, padding=1)
        self.dec0 = nn.ModuleList(ResBlock(w0, emb_dim) for _ in range(blocks[0]))
        self.out = nn.Conv2d(w0, out_ch, 3, padding=1)

    @staticmethod
    def _run(blocks, x, emb):
        for b in blocks:
            x = b(x, emb)
        return x

    def forward(self, x, emb):
        h0 = self._run(self.enc0, self.inp(x), emb)
        h1 = self._run(self.enc1, self.down1(F.silu(h0)), emb)
        h2 = self._run(self.mid, self.down2(F.silu(h1)), emb)
        u1 = h1 + self.up2(F.interpolate(F.silu(h2), scale_factor=2, mode="nearest"))
        u1 = self._run(self.dec1, u1, emb)
        u0 = h0 + self.up1(F.interpolate(F.silu(u1), scale_factor=2, mode="nearest"))
        u0 = self._run(self.dec0, u0, emb)
        return self.out(F.silu(u0))


def _pad_to_multiple(x: torch.Tensor, m: int) -> torch.Tensor:
    ph = (-x.shape[-2]) % m
    pw = (-x.shape[-1]) % m
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


class CondMLP(nn.Module):
    def __init__(self, in_dim: int, emb_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

    def forward(self, c):
        return self.net(c)


class Stage1Net(nn.Module):
    """Degradation-robust regression: low-res observation -> full-resolution estimate.

    forward(obs, missing, cond, bh, bw) with ``obs`` ``(B, C, h, w)`` in [-1, 1], ``missing`` ``(B, 1, h, w)``
    (1 where a low-res pixel had no symbols), ``cond`` ``(B, COND_DIM)`` -> ``(out (B, C, h*bh, w*bw),
    low_clean (B, C, h, w))``.
    """

    def __init__(self, channels: int = 3, widths=(32, 64, 96), blocks=(1, 2, 2), feat: int = 16,
                 head: int = 24, emb_dim: int = 64):
        super().__init__()
        self.channels, self.feat = channels, feat
        self.cond = CondMLP(COND_DIM, emb_dim)
        self.trunk = UNet(channels + 1, channels + feat, widths, blocks, emb_dim)
        self.head1 = nn.Conv2d(channels + feat + 2, head, 1)
        self.head2 = nn.Conv2d(head, head, 3, padding=1)
        self.head3 = nn.Conv2d(head, channels, 3, padding=1)
        nn.init.zeros_(self.head3.weight)
        nn.init.zeros_(self.head3.bias)

    def forward(self, obs, missing, cond, bh: int, bw: int):
        h, w = obs.shape[-2:]
        emb = self.cond(cond)
        x = _pad_to_multiple(torch.cat([obs, missing], dim=1), 4)
        t = self.trunk(x, emb)[..., :h, :w]
        low_clean = obs + t[:, : self.channels]
        feats = t[:, self.channels:]
        H, W = h * bh, w * bw
        up_obs = F.interpolate(obs, size=(H, W), mode="bicubic", align_corners=False)
        up_delta = F.interpolate(low_clean - obs, size=(H, W), mode="bicubic", align_corners=False)
        up_clean = up_obs + up_delta
        fup = F.interpolate(feats, size=(H, W), mode="bilinear", align_corners=False)
        pos = block_position(bh, bw, H, W, obs.device).expand(obs.shape[0], -1, -1, -1)
        z = F.silu(self.head1(torch.cat([up_clean, fup, pos], dim=1)))
        z = F.silu(self.head2(z))
        return up_clean + self.head3(z), low_clean


class Stage2Net(nn.Module):
    """Velocity network of the rectified flow on the (scaled) residual over stage 1.

    forward(x_t, s1, t, cond, bh, bw): ``x_t`` ``(B, C, H, W)`` the current flow state, ``s1`` the stage-1
    estimate in [-1, 1], ``t`` ``(B,)`` flow time in [0, 1] -> velocity ``(B, C, H, W)``.
    """

    def __init__(self, channels: int = 3, widths=(32, 64, 96), blocks=(1, 2, 2), emb_dim: int = 64):
        super().__init__()
        self.channels = channels
        self.emb_dim = emb_dim
        self.cond = CondMLP(COND_DIM + emb_dim, emb_dim)
        self.net = UNet(4 * (2 * channels + 2), 4 * channels, widths, blocks, emb_dim)

    def forward(self, x_t, s1, t, cond, bh: int, bw: int):
        H, W = x_t.shape[-2:]
        pos = block_position(bh, bw, H, W, x_t.device).expand(x_t.shape[0], -1, -1, -1)
        x = torch.cat([x_t, s1, pos], dim=1)
        x = _pad_to_multiple(x, 8)
        emb = self.cond(torch.cat([cond, timestep_embedding(t, self.emb_dim)], dim=1))
        v = self.net(F.pixel_unshuffle(x, 2), emb)
        return F.pixel_shuffle(v, 2)[..., :H, :W]


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
