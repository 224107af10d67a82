# SPDX-License-Identifier: GPL-3.0-or-later
"""The restorer interface, meta validation and the image plumbing every restorer shares (no torch here).

Contract (docs/internals.md, ``receiver_server``): ``restore(observation, meta) -> uint8 (height, width, C)``
with ``observation`` the float32 (h, w, C) MMSE low-res image in [0, 255] and ``meta`` holding ``bh``, ``bw``,
``height``, ``width``, ``channels``, ``snr_db``, ``attempts`` and ``missing`` (bool (h, w) mask of low-res
pixels that had no symbols).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from infercom import link, source
from infercom.limits import CHANNELS, check_channels


@runtime_checkable
class Restorer(Protocol):
    name: str

    def restore(self, observation: np.ndarray, meta: dict) -> np.ndarray:
        """float32 (h, w, C) MMSE low-res image in [0, 255] + meta -> uint8 (height, width, C)."""
        ...


REQUIRED_META = ("bh", "bw", "height", "width", "channels")


def as_observation(obs: np.ndarray) -> np.ndarray:
    """Validate an MMSE low-res observation: finite real (h, w, C), C in (1, 3), values in [0, 255].

    Returns float32 (h, w, C) clipped to [0, 255] (a 2-D input gets C = 1); ValueError saying what is wrong.
    """
    a = np.asarray(obs)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in CHANNELS or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"observation must be (h, w, C) with C in {CHANNELS}, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise ValueError(f"observation must be real numbers, got {a.dtype}")
    a = a.astype(np.float32, copy=False)
    if not np.all(np.isfinite(a)):
        raise ValueError("observation contains NaN or inf")
    if a.min() < -1e-3 or a.max() > 255.0 + 1e-3:
        raise ValueError(f"observation must lie in [0, 255], got [{a.min():.3f}, {a.max():.3f}]")
    return np.clip(a, 0.0, 255.0)


def check_inputs(observation: np.ndarray, meta: dict) -> tuple[np.ndarray, dict]:
    """Validate an observation and its meta; return (float32 (h, w, C) clipped to [0, 255], normalised meta).

    Raises ValueError naming the offending field: missing keys, a shape that does not match
    ``ceil(height/bh) x ceil(width/bw) x channels``, NaN/inf, values outside [0, 255], a bad ``missing`` mask.
    """
    if not isinstance(meta, dict):
        raise ValueError(f"meta must be a dict, got {type(meta).__name__}")
    absent = [k for k in REQUIRED_META if k not in meta]
    if absent:
        raise ValueError(f"meta lacks required keys {absent}")
    m = dict(meta)
    for k in REQUIRED_META:
        v = m[k]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"meta[{k!r}] must be an integer, got {v!r}")
        m[k] = int(v)
    source.check_block(m["bh"], m["bw"])
    m["channels"] = check_channels(m["channels"], "meta")
    for k in ("height", "width"):
        if not 1 <= m[k] <= source.MAX_SIDE:
            raise ValueError(f"meta[{k!r}] must be in 1..{source.MAX_SIDE}, got {m[k]}")
    obs = as_observation(observation)
    lh, lw = source.lowres_shape(m["height"], m["width"], m["bh"], m["bw"])
    want = (lh, lw, m["channels"])
    if obs.shape != want:
        raise ValueError(f"observation shape {obs.shape} does not match {want} for a {m['height']}x{m['width']}"
                         f"x{m['channels']} image with {m['bh']}x{m['bw']} blocks")
    missing = m.get("missing")
    if missing is not None:
        mk = np.asarray(missing)
        if mk.shape != (lh, lw) or mk.dtype != np.bool_:
            raise ValueError(f"meta['missing'] must be a bool ({lh}, {lw}) mask, got {mk.dtype} {mk.shape}")
        m["missing"] = mk
    return obs, m


def layout_of(meta: dict) -> link.ImageLayout:
    """The link layout of the image described by (validated) meta."""
    return link.layout(meta["height"], meta["width"], meta["channels"],
                       link.LinkConfig(bh=meta["bh"], bw=meta["bw"]))


def upsample_observation(observation: np.ndarray, meta: dict, method: str = "bicubic") -> np.ndarray:
    """The papers' conventional baseline: interpolate the low-res observation to uint8 (height, width, C)
    (``infercom.link.upsample``)."""
    return link.upsample(observation, layout_of(meta), method=method)


def to_rgb(img: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 1 or 3) -> uint8 (H, W, 3) (grey replicated)."""
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def from_rgb(img: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (H, W, channels); grey = rounded mean of the three planes."""
    if channels == 3:
        return img
    return np.rint(img.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8)


def resize_uint8(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of a uint8 (H, W, C) image to (height, width, C); identity when the size matches."""
    if img.shape[:2] == (height, width):
        return img
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(img[:, :, c])).resize((width, height),
                                                                                   Image.BICUBIC))
              for c in range(img.shape[2])]
    return np.stack(planes, axis=2)


def float01_to_uint8(x: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8 with rounding and clipping; NaN is an error, not a black pixel."""
    a = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(a)):
        raise ValueError("restoration produced NaN or inf pixels")
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


#: half-width of the posterior interval a restoration's block means are held to, in posterior standard
#: deviations (about a 95 % interval of the calibrated posterior; :func:`honour_evidence`)
EVIDENCE_Z = 3.0


def evidence_tolerance(meta: dict, z: float = EVIDENCE_Z) -> np.ndarray | None:
    """Per low-res value, how far (grey levels) a restoration's block mean may lie from the MMSE observation:
    ``z * sqrt(obs_var)``, ``inf`` where the pixel had no symbols (``meta["missing"]``). None when ``meta`` has
    no ``obs_var`` (nothing is known of the posterior). The final rounding to uint8 adds at most 0.5."""
    var = meta.get("obs_var")
    if var is None:
        return None
    v = np.asarray(var, dtype=np.float64)
    if v.ndim == 2:
        v = v[:, :, None]
    if not np.all(np.isfinite(v)) or v.min() < 0:
        raise ValueError("meta['obs_var'] must be finite and >= 0 (posterior variance, grey levels^2)")
    tol = z * np.sqrt(v)
    missing = meta.get("missing")
    if missing is not None:
        tol = np.where(np.asarray(missing, dtype=bool)[:, :, None], np.inf, tol)
    return tol


def honour_evidence(restored: np.ndarray, observation: np.ndarray, meta: dict, z: float = EVIDENCE_Z) -> np.ndarray:
    """Hold a restoration to the evidence: move it as little as needed (``infercom.source.project_block_means``,
    smooth passes first) so that every received block mean lies within :func:`evidence_tolerance` of the MMSE
    observation. The server applies it to every restorer's output before the QoE test, so an observation
    without bit errors comes back as itself at the source-coding level (at 1x1 blocks: the original image),
    whatever a restorer makes of it; where the posterior is wide (bit errors likely) the restorer stays free.
    Returns ``restored`` unchanged when ``meta`` has no ``obs_var``."""
    tol = evidence_tolerance(meta, z)
    if tol is None:
        return restored
    img = np.asarray(restored)
    grey = img.ndim == 2
    out = source.project_block_means(img, observation, tol, int(meta["bh"]), int(meta["bw"]))
    return out[:, :, 0] if grey else out


def restore_for_gate(restorer: Restorer, observation: np.ndarray, meta: dict) -> np.ndarray:
    """What the server scores and delivers: ``restorer.restore`` held to the evidence (:func:`honour_evidence`).
    The QoE calibration uses the same call, so its thresholds apply to what the server scores."""
    return honour_evidence(restorer.restore(observation, meta), observation, meta)


def check_output(img: np.ndarray, meta: dict) -> np.ndarray:
    """Assert a restorer's output obeys the contract: uint8 (height, width, channels)."""
    want = (meta["height"], meta["width"], meta["channels"])
    if img.dtype != np.uint8 or img.shape != want:
        raise RuntimeError(f"restorer produced {img.dtype} {img.shape}, contract is uint8 {want}")
    return img
