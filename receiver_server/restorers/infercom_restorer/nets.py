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
(:func:`cond_vector`, checkpoint v1); v2 appends the power profile (per-plane amplitudes), its design SNR and
the spread of the frames' SNRs (:func:`cond_vector_v2`), and stage 1 of v2 also sees, for every low-res value,
its per-plane soft bits, their confidences and its posterior standard deviation (:func:`side_features`)
through a separate first convolution (``Stage1Net.side``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

#: length of the link-condition vector built by :func:`cond_vector`
COND_DIM = 7
#: bit planes of a pixel value (the side features of v2 always have this many per channel; unsent planes are 0)
PLANES = 8
#: length of :func:`cond_vector_v2`: the v1 features, the ``PLANES`` plane amplitudes, design SNR, SNR spread
COND_DIM_V2 = COND_DIM + PLANES + 2
#: side features per colour channel (:func:`side_features`): soft bits, confidences, log posterior std
SIDE_PER_CHANNEL = 2 * PLANES + 1
#: largest posterior standard deviation of a value (grey levels): a uniform value on 0..255
MAX_STD = math.sqrt((256 ** 2 - 1) / 12)


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


def cond_vector_v2(bh, bw, snr_db, attempts, missing_frac, amplitudes, design_snr_db, spread_db,
                   device=None) -> torch.Tensor:
    """v2 link conditions -> float32 ``(B, COND_DIM_V2)``: :func:`cond_vector` then the power profile.

    ``amplitudes``: ``(B, PLANES)`` or ``(PLANES,)`` per-plane amplitudes ``sqrt(p_k)``, MSB first, 0 for
    unsent planes (``infercom.link.LinkConfig.plane_amplitudes``, padded); ``design_snr_db``: the profile's
    design Es/N0 (dB; 0 for the equal profile); ``spread_db``: standard deviation of the frames' Es/N0 (dB,
    0 without fading). Features: amplitudes / 2, design / 8, spread / 8.
    """
    base = cond_vector(bh, bw, snr_db, attempts, missing_frac, device=device)
    n = base.shape[0]
    amp = torch.as_tensor(np.asarray(amplitudes, dtype=np.float32), device=device).reshape(-1, PLANES)
    des = torch.as_tensor(design_snr_db, dtype=torch.float32, device=device).reshape(-1, 1)
    spr = torch.as_tensor(spread_db, dtype=torch.float32, device=device).reshape(-1, 1)
    amp, des, spr = (x.expand(n, -1) if x.shape[0] == 1 else x for x in (amp, des, spr))
    return torch.cat([base, amp / 2.0, des / 8.0, spr / 8.0], dim=1)


def soft_bits(plane_llr: np.ndarray) -> np.ndarray:
    """Per-plane LLRs ``(..., planes)`` (``L = log P(b=0)/P(b=1)``, MSB first) -> float32 ``(..., PLANES)``
    soft bits ``2 P(b=1) - 1 = -tanh(L/2)`` in [-1, 1]; planes not sent are 0 (an unknown bit)."""
    llr = np.asarray(plane_llr, dtype=np.float32)
    m = llr.shape[-1]
    if m > PLANES:
        raise ValueError(f"at most {PLANES} planes, got {m}")
    out = np.zeros(llr.shape[:-1] + (PLANES,), np.float32)
    out[..., :m] = -np.tanh(0.5 * llr)
    return out


def side_features(plane_llr: np.ndarray) -> np.ndarray:
    """Per-plane LLRs ``(h, w, C, planes)`` -> float32 ``(h, w, C, SIDE_PER_CHANNEL)``: what the MMSE value
    alone does not say about each low-res value -- its :func:`soft_bits` (which of two candidate values), their
    confidences ``|soft|`` in [0, 1] (how sure each plane is: the sign of a soft bit mostly repeats the MMSE
    value, its confidence does not) and ``log(1 + std) / log(1 + MAX_STD)`` of its posterior standard deviation
    (:func:`infercom.reconstruct.posterior_var`, unsent planes unknown)."""
    from infercom import reconstruct

    llr = np.asarray(plane_llr, dtype=np.float32)
    h, w, C, m = llr.shape
    soft = soft_bits(llr)
    var = reconstruct.posterior_var(np.ascontiguousarray(llr.reshape(-1, m).T)).reshape(h, w, C, 1)
    lstd = np.log1p(np.sqrt(np.maximum(var, 0))) / math.log1p(MAX_STD)
    return np.concatenate([soft, np.abs(soft), lstd.astype(np.float32)], axis=3)


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

    def forward(self, x, emb, extra=None):
        """``extra``: added to the first convolution's output (``(B, widths[0], H, W)``; Stage1Net's side
        branch)."""
        h = self.inp(x)
        h0 = self._run(self.enc0, h if extra is None else h + extra, emb)
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

    forward(obs, missing, cond, bh, bw, side=None) with ``obs`` ``(B, C, h, w)`` in [-1, 1], ``missing``
    ``(B, 1, h, w)`` (1 where a low-res pixel had no symbols), ``cond`` ``(B, cond_dim)``, ``side`` ``(B,
    side_ch, h, w)`` the side features (:func:`side_features`, channel-major: colour c's features at ``c *
    SIDE_PER_CHANNEL ..``; required when ``side_ch > 0``) -> ``(out (B, C, h*bh, w*bw), low_clean (B, C, h,
    w))``. v1: ``cond_dim = COND_DIM, side_ch = 0``; v2: ``COND_DIM_V2, channels * SIDE_PER_CHANNEL``. The side
    features enter through their own zero-initialised convolution ``side``, added to the trunk's first one
    (so a v2 network widened from v1 starts as v1, and the trainer can give the branch its own learning rate).
    """

    def __init__(self, channels: int = 3, widths=(32, 64, 96), blocks=(1, 2, 2), feat: int = 16,
                 head: int = 24, emb_dim: int = 64, cond_dim: int = COND_DIM, side_ch: int = 0):
        super().__init__()
        self.channels, self.feat, self.side_ch = channels, feat, side_ch
        self.cond = CondMLP(cond_dim, emb_dim)
        self.trunk = UNet(channels + 1, channels + feat, widths, blocks, emb_dim)
        if side_ch:
            self.side = nn.Conv2d(side_ch, widths[0], 3, padding=1)
            nn.init.zeros_(self.side.weight)
            nn.init.zeros_(self.side.bias)
        self.head1 = nn.Conv2d(channels + feat + 2, head, 1)
        self.head2 = nn.Conv2d(head, head, 3, padding=1)
        self.head3 = nn.Conv2d(head, channels, 3, padding=1)
        nn.init.zeros_(self.head3.weight)
        nn.init.zeros_(self.head3.bias)

    def forward(self, obs, missing, cond, bh: int, bw: int, side=None):
        h, w = obs.shape[-2:]
        emb = self.cond(cond)
        x = _pad_to_multiple(torch.cat([obs, missing], dim=1), 4)
        extra = None
        if self.side_ch:
            if side is None or side.shape[1] != self.side_ch:
                raise ValueError(f"this stage 1 needs {self.side_ch} side-feature channels")
            extra = self.side(_pad_to_multiple(side, 4))
        t = self.trunk(x, emb, extra)[..., :h, :w]
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

    def __init__(self, channels: int = 3, widths=(32, 64, 96), blocks=(1, 2, 2), emb_dim: int = 64,
                 cond_dim: int = COND_DIM):
        super().__init__()
        self.channels = channels
        self.emb_dim = emb_dim
        self.cond_dim = cond_dim
        self.cond = CondMLP(cond_dim + emb_dim, emb_dim)
        self.net = UNet(4 * (2 * channels + 2), 4 * channels, widths, blocks, emb_dim)

    def forward(self, x_t, s1, t, cond, bh: int, bw: int):
        H, W = x_t.shape[-2:]
        pos = block_position(bh, bw, H, W, x_t.device).expand(x_t.shape[0], -1, -1, -1)
        x = torch.cat([x_t, s1, pos], dim=1)
        x = _pad_to_multiple(x, 8)
        emb = self.cond(torch.cat([cond, timestep_embedding(t, self.emb_dim)], dim=1))
        v = self.net(F.pixel_unshuffle(x, 2), emb)
        return F.pixel_shuffle(v, 2)[..., :H, :W]


@torch.no_grad()
def widen_from(dst: nn.Module, src: nn.Module, cond_dim_src: int, cond_dim_dst: int) -> None:
    """Warm start ``dst`` (a v2 network) from ``src`` (the same network of v1): every tensor is copied; where
    ``dst`` has more inputs (the appended condition features) the extra input weights are zero, so ``dst`` computes exactly what ``src`` does until training
    moves them.  The condition MLP's first layer takes ``[cond, ...]``: columns ``cond_dim_src..cond_dim_dst``
    are the new features (stage 2's flow-time embedding follows them); tensors ``src`` lacks (the side branch)
    keep their (zero) initialisation."""
    sd_src = src.state_dict()
    for name, t in dst.state_dict().items():
        if name not in sd_src:
            continue
        s = sd_src[name]
        if s.shape == t.shape:
            t.copy_(s)
            continue
        t.zero_()
        if name.endswith("cond.net.0.weight"):          # (emb, cond_dim [+ temb])
            extra = cond_dim_dst - cond_dim_src
            t[:, :cond_dim_src] = s[:, :cond_dim_src]
            t[:, cond_dim_src + extra:] = s[:, cond_dim_src:]
        else:
            raise ValueError(f"cannot widen {name}: {tuple(s.shape)} -> {tuple(t.shape)}")


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
