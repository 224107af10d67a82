# SPDX-License-Identifier: GPL-3.0-or-later
"""Training pairs with exactly this link's damage (numpy only; reuses the link, no second copy of it).

One sample goes through the real chain:

``image -> infercom.link.encode_image`` (block-mean LPF, bit planes, importance/equal power, keyed
interleaving, Gray QPSK) ``-> infercom.channel.SymbolChannel`` (optional Rayleigh block fading, one
coefficient per image attempt or per frame, AWGN at Es/N0, perfect-CSI equalisation ``y = r / h`` with
``noise_var = N0 / |h|^2``: the very channel of ``infercom simulate`` and of the server's simulated
transmitters) ``->`` lost frames (``y = 0``, ``noise_var = inf``) ``-> infercom.chase.combine`` over 1..3
attempts ``-> infercom.link.soft_to_llr -> infercom.link.llr_to_lowres`` (MMSE pixels).

Frames are contiguous runs of ``frame_len`` *transmitted* (interleaved) symbols, so a fade or a lost frame
lands on symbols scattered over the whole image after deinterleaving -- as on the air.

SNR convention (``snr_mode``, :data:`infercom.channel.SNR_MODES`): with ``"instantaneous"`` (the default)
``snr_db`` is the mean Es/N0 of every attempt (dB, Es = 1): the power gains ``|h|^2`` of each attempt are
normalised to a symbol-weighted mean of 1, so the papers' "results against instantaneous SNR" hold: a fade only
redistributes the SNR between frames. With ``"average"`` the gains are the raw Rayleigh draws and
:attr:`Degraded.snr_db` reports the resulting instantaneous mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import channel, chase, link, source
from .limits import MAX_ATTEMPT


@dataclass
class Degraded:
    """One degraded observation of an image.

    observation: float32 ``(h, w, C)`` MMSE low-res pixels in [0, 255]
    clean: uint8 ``(H, W, C)`` the original image
    lowres_clean: float32 ``(h, w, C)`` the transmitted low-res values (error-free), for auxiliary losses
    missing: bool ``(h, w)`` low-res pixels that got no symbol at all (every LLR of every channel is 0)
    snr_db: realised mean Es/N0 per attempt over the received symbols (dB; -inf when nothing was received)
    fading, fading_per, snr_mode: the channel (:mod:`infercom.channel` vocabulary; fading_per None without
    fading)
    llr: float32 ``(planes, N)`` combined LLRs, MSB plane first (only with ``keep_llr=True``)
    receiver_meta: the restorer's meta from the combined LLRs, as the server builds it
    (:func:`infercom.link.observe`; its ``snr_db`` is the combined Es/N0 of the frames,
    :func:`infercom.channel.image_snr_db`)
    """

    observation: np.ndarray
    clean: np.ndarray
    lowres_clean: np.ndarray
    missing: np.ndarray
    bh: int
    bw: int
    snr_db: float
    attempts: int
    fading: str
    profile: str
    missing_frac: float          # fraction of payload symbols lost in *every* attempt
    fading_per: str | None = None
    snr_mode: str = "instantaneous"
    llr: np.ndarray | None = None
    layout: link.ImageLayout | None = field(default=None, repr=False)
    receiver_meta: dict = field(default_factory=dict, repr=False)

    def meta(self) -> dict:
        """The Restorer ``meta`` dict of docs/internals.md for this observation (a copy; ``snr_db``: combined
        Es/N0) plus ``missing_frac``."""
        m = dict(self.receiver_meta)
        m["missing"] = m["missing"].copy()
        return {**m, "missing_frac": float(self.missing_frac)}


def lowres_clean(img: np.ndarray, bh: int, bw: int) -> np.ndarray:
    """The transmitted low-res values (``infercom.source.lpf_encode``: block means, rounded) as float32."""
    return source.lpf_encode(source.as_image3(img), bh, bw).astype(np.float32)


def _attempt(x: np.ndarray, chan: channel.SymbolChannel, frame_len: int, missing_frac: float,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """One transmission of payload ``x`` over ``chan``, then ``round(missing_frac * n_frames)`` of its
    ``frame_len``-symbol frames lost -> (y, float32 per-symbol noise_var, mean linear Es/N0 of the received
    symbols, 0 when none)."""
    n = x.size
    n_frames = max(1, -(-n // frame_len))
    rx = chan(x, rng)
    y = rx.y
    nv = np.full(n, rx.noise_var, np.float32) if np.isscalar(rx.noise_var) else rx.noise_var
    received = np.ones(n_frames, bool)
    n_lost = int(round(missing_frac * n_frames))
    sym_received = None
    if n_lost:
        lost = rng.choice(n_frames, size=min(n_lost, n_frames), replace=False)
        received[lost] = False
        sym_lost = np.repeat(~received, frame_len)[:n]
        y[sym_lost] = 0
        nv[sym_lost] = np.inf
        sym_received = ~sym_lost
    if not received.any():
        return y, nv, 0.0
    return y, nv, channel.db_to_lin(chan.realised_db(rx.fading.mean_gain(mask=sym_received)))


def degrade(img, cfg: link.LinkConfig, snr_db: float, rng: np.random.Generator, *, attempts: int = 1,
            fading: str = "none", fading_per: str = "image", snr_mode: str = "instantaneous",
            frame_len: int = 1024, missing_frac: float = 0.0, keep_llr: bool = False, keyring=None) -> Degraded:
    """Send ``img`` (uint8 ``(H, W[, C])``) over the simulated link ``attempts`` times and return the MMSE
    low-res observation after Chase combining.

    ``snr_db``: Es/N0 per attempt (dB, finite); ``fading`` / ``fading_per`` / ``snr_mode``: the channel in the
    vocabulary of :mod:`infercom.channel` (``"none"`` | ``"block"``; ``"image"``: one Rayleigh coefficient per
    attempt, ``"frame"``: one per frame of ``frame_len`` transmitted symbols; ``"instantaneous"`` |
    ``"average"``); ``missing_frac``: fraction of the frames lost in each attempt (independently per
    attempt), in [0, 1].
    """
    a = source.as_image3(img)
    if not (isinstance(frame_len, (int, np.integer)) and frame_len > 0):
        raise ValueError(f"frame_len must be a positive integer, got {frame_len!r}")
    chan = channel.SymbolChannel(snr_db, fading, fading_per, snr_mode, int(frame_len))
    if not (isinstance(attempts, (int, np.integer)) and 1 <= attempts <= MAX_ATTEMPT + 1):
        raise ValueError(f"attempts must be an integer in 1..{MAX_ATTEMPT + 1}, got {attempts!r}")
    if not np.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite, got {snr_db}")
    if not (0.0 <= missing_frac <= 1.0):
        raise ValueError(f"missing_frac must be in [0, 1], got {missing_frac}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    x, lay = link.encode_image(a, cfg, keyring=keyring)
    ys, nvs, snrs = [], [], []
    for _ in range(int(attempts)):
        y, nv, s = _attempt(x, chan, int(frame_len), float(missing_frac), rng)
        ys.append(y)
        nvs.append(nv)
        snrs.append(s)
    if len(ys) == 1:
        y, nv = ys[0], nvs[0]
    else:
        y, nv = chase.combine(ys, nvs)
    llr = link.soft_to_llr(y, nv, lay, cfg, keyring=keyring)
    frames = channel.frame_snr_db(nv, int(frame_len))
    obs, rmeta = link.observe(llr, lay, cfg, channel.image_snr_db(frames), int(attempts),
                              channel.snr_spread_db(frames))
    missing = rmeta["missing"]
    lost_frac = float(np.mean(~np.isfinite(nv)))
    mean_snr = float(np.mean(snrs))
    return Degraded(observation=obs.astype(np.float32), clean=a, lowres_clean=lowres_clean(a, cfg.bh, cfg.bw),
                    missing=missing, bh=cfg.bh, bw=cfg.bw,
                    snr_db=channel.lin_to_db(mean_snr),
                    attempts=int(attempts), fading=fading, profile=cfg.profile, missing_frac=lost_frac,
                    fading_per=fading_per if fading == "block" else None, snr_mode=snr_mode,
                    llr=llr if keep_llr else None, layout=lay, receiver_meta=rmeta)


# --------------------------------------------------------------------------------------------------------
# random training pairs


@dataclass(frozen=True)
class DegradeSpec:
    """Distribution of link conditions for training pairs (the issue's operating range by default)."""

    rates: tuple = ((2, 2), (3, 3))
    snr_db: tuple = (-10.0, 6.0)             # uniform, instantaneous Es/N0 per attempt
    profiles: tuple = ("importance", "importance", "equal")
    design_snr_db: tuple = (-8, -4, -4, 0)
    attempts_p: tuple = (0.6, 0.25, 0.15)     # P(attempts = 1, 2, 3)
    fadings: tuple = ("none", "block")        # drawn uniformly (infercom.channel.FADINGS)
    fading_per: str = "frame"                 # coherence of the block fading
    p_missing: float = 0.25                   # probability that a sample has lost frames at all
    max_missing: float = 0.3                  # lost-frame fraction ~ U(0, max_missing) then
    frame_len: int = 1024


def sample_pair(img: np.ndarray, spec: DegradeSpec, rng: np.random.Generator, *, rate=None,
                snr_db=None, keyring=None) -> Degraded:
    """Degrade ``img`` under link conditions drawn from ``spec`` (``rate``/``snr_db`` override the draw)."""
    bh, bw = rate if rate is not None else spec.rates[rng.integers(len(spec.rates))]
    profile = spec.profiles[rng.integers(len(spec.profiles))]
    design = int(spec.design_snr_db[rng.integers(len(spec.design_snr_db))])
    cfg = link.LinkConfig(bh=int(bh), bw=int(bw), profile=profile, design_snr_db=design)
    s = float(rng.uniform(*spec.snr_db)) if snr_db is None else float(snr_db)
    attempts = int(rng.choice(len(spec.attempts_p), p=np.asarray(spec.attempts_p) / sum(spec.attempts_p))) + 1
    fading = spec.fadings[rng.integers(len(spec.fadings))]
    miss = float(rng.uniform(0, spec.max_missing)) if rng.random() < spec.p_missing else 0.0
    return degrade(img, cfg, s, rng, attempts=attempts, fading=fading, fading_per=spec.fading_per,
                   frame_len=spec.frame_len, missing_frac=miss, keyring=keyring)


def random_patch(img: np.ndarray, patch: int, rng: np.random.Generator, augment: bool = True) -> np.ndarray:
    """Random ``patch x patch`` crop (with random flip / 90-degree rotation when ``augment``)."""
    H, W = img.shape[:2]
    if H < patch or W < patch:
        raise ValueError(f"image {H}x{W} is smaller than the patch {patch}")
    y0, x0 = int(rng.integers(H - patch + 1)), int(rng.integers(W - patch + 1))
    p = img[y0:y0 + patch, x0:x0 + patch]
    if augment:
        p = np.rot90(p, int(rng.integers(4)))
        if rng.random() < 0.5:
            p = p[:, ::-1]
    return np.ascontiguousarray(p)
