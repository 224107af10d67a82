# SPDX-License-Identifier: GPL-3.0-or-later
"""LDPC rate matching and its inverse (TS 38.212 §5.4.2), with HARQ soft combining.

Transmitter, per code block (all lengths in bits):

* circular buffer = the encoder output ``d`` (``N`` bits, 66 or 50 Zc); ``Ncb = N``: full buffer, no
  limited-buffer rate matching (``I_LBRM = 0``; LBRM only matters for UE soft-buffer limits, not for a link
  simulation);
* starting position ``k0`` (Table 5.4.2.1-2) for redundancy version ``rv``::

      rv   BG1                              BG2
      0    0                                0
      1    floor(17 Ncb / (66 Zc)) Zc       floor(13 Ncb / (50 Zc)) Zc
      2    floor(33 Ncb / (66 Zc)) Zc       floor(25 Ncb / (50 Zc)) Zc
      3    floor(56 Ncb / (66 Zc)) Zc       floor(43 Ncb / (50 Zc)) Zc

* bit selection: ``e_k = d[(k0 + j) mod Ncb]`` for successive ``j``, skipping the <NULL> filler positions
  ``d[K' - 2Zc .. K - 2Zc - 1]``, until ``E`` bits are read (``E > Ncb`` wraps round the buffer);
* bit interleaving (§5.4.2.2): ``f[i + j Qm] = e[i E/Qm + j]`` (for QPSK the two halves of ``e`` alternate).

Receiver: :func:`deinterleave` the ``E`` LLRs, then :func:`accumulate` them into a float32 circular buffer of
``Ncb`` LLRs at the same positions (repeated bits add up); :func:`decoder_llrs` expands the buffer to the
``n_cols Zc`` decoder input: LLR 0 for the ``2 Zc`` punctured bits and for bits never received,
:data:`FILLER_LLR` (a known 0) at the filler positions. :class:`HarqBuffer` keeps those buffers across
transmissions: Chase combining is a retransmission with the same ``rv`` (LLR addition at the same positions),
incremental redundancy the sequence rv = 0, 2, 3, 1 (new positions fill in).

LLR convention: ``L = log P(b=0) / P(b=1)`` (positive means 0), float32.
"""

from __future__ import annotations

import functools

import numpy as np

from .segmentation import TbParams

__all__ = [
    "FILLER_LLR", "RV_SEQUENCE", "k0", "selection_positions", "interleave", "deinterleave", "rate_match",
    "accumulate", "decoder_llrs", "HarqBuffer",
]

#: LLR given to filler bits (known zeros) in the decoder input.
FILLER_LLR = np.float32(1.0e4)
#: The usual redundancy-version order of incremental redundancy.
RV_SEQUENCE = (0, 2, 3, 1)


def k0(bg: int, rv: int, Ncb: int, z: int) -> int:
    """Starting position of redundancy version ``rv`` (0..3) in the circular buffer (Table 5.4.2.1-2)."""
    if rv not in (0, 1, 2, 3):
        raise ValueError(f"rv must be 0..3, got {rv!r}")
    if rv == 0:
        return 0
    num = {1: (17, 33, 56), 2: (13, 25, 43)}[bg][(1, 2, 3).index(rv)]
    den = 66 if bg == 1 else 50
    return ((num * Ncb) // (den * z)) * z


@functools.lru_cache(maxsize=256)
def _positions(bg: int, z: int, Ncb: int, f0: int, f1: int, rv: int, E: int) -> np.ndarray:
    start = k0(bg, rv, Ncb, z)
    seq = (start + np.arange(Ncb)) % Ncb
    seq = seq[(seq < f0) | (seq >= f1)]
    pos = seq[np.arange(E) % seq.size].astype(np.int64)
    pos.setflags(write=False)
    return pos


def selection_positions(p: TbParams, rv: int, E: int) -> np.ndarray:
    """int64 ``(E,)``: the index into ``d`` of each rate-matched bit ``e_k`` of a code block (before the bit
    interleaver) for redundancy version ``rv``."""
    return _positions(p.bg, p.Zc, p.Ncb, p.Kp - 2 * p.Zc, p.K - 2 * p.Zc, int(rv), int(E))


def interleave(e: np.ndarray, Qm: int) -> np.ndarray:
    """§5.4.2.2 bit interleaver ``f[i + j Qm] = e[i E/Qm + j]`` (last axis, length E a multiple of Qm)."""
    e = np.asarray(e)
    E = e.shape[-1]
    if E % Qm:
        raise ValueError(f"E={E} is not a multiple of Qm={Qm}")
    return np.swapaxes(e.reshape(*e.shape[:-1], Qm, E // Qm), -1, -2).reshape(e.shape)


def deinterleave(f: np.ndarray, Qm: int) -> np.ndarray:
    """Inverse of :func:`interleave` (works on bits or LLRs)."""
    f = np.asarray(f)
    E = f.shape[-1]
    if E % Qm:
        raise ValueError(f"E={E} is not a multiple of Qm={Qm}")
    return np.swapaxes(f.reshape(*f.shape[:-1], E // Qm, Qm), -1, -2).reshape(f.shape)


def rate_match(d: np.ndarray, p: TbParams, rv: int, E: int) -> np.ndarray:
    """Bit selection + interleaving of one code block's encoder output ``d`` (``N`` bits, or fewer when only
    the leading parity was computed; then every selected position must lie inside it): ``f`` uint8 ``(E,)``."""
    pos = selection_positions(p, rv, E)
    d = np.asarray(d, np.uint8).reshape(-1)
    if pos.size and pos.max() >= d.size:
        raise ValueError(f"rate matching reads d[{int(pos.max())}] but only {d.size} bits were encoded")
    return interleave(d[pos], p.Qm)


def accumulate(buf: np.ndarray, llr_f: np.ndarray, p: TbParams, rv: int) -> np.ndarray:
    """Add the ``E`` received LLRs of a code block (interleaved order, as sent) into its circular buffer
    ``buf`` (float32 ``(Ncb,)``, in place) at the positions they were read from; returns ``buf``."""
    f = np.asarray(llr_f, np.float32).reshape(-1)
    if buf.shape != (p.Ncb,):
        raise ValueError(f"buffer must have shape ({p.Ncb},), got {buf.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("LLRs must be finite")
    e = deinterleave(f, p.Qm)
    pos = selection_positions(p, rv, e.size)
    if e.size <= p.Ncb - p.F:  # no wrap: positions are distinct
        buf[pos] += e
    else:
        buf += np.bincount(pos, weights=e, minlength=p.Ncb).astype(np.float32)
    return buf


def decoder_llrs(buf: np.ndarray, p: TbParams) -> np.ndarray:
    """Decoder input float32 ``(..., n_cols Zc)`` from circular buffer(s) ``(..., Ncb)``: zeros for the ``2 Zc``
    punctured bits, :data:`FILLER_LLR` at filler positions, the accumulated LLRs elsewhere."""
    buf = np.asarray(buf, np.float32)
    z = p.Zc
    out = np.zeros(buf.shape[:-1] + (p.Ncb + 2 * z,), np.float32)
    out[..., 2 * z:] = buf
    out[..., p.Kp:p.K] = FILLER_LLR
    return out


class HarqBuffer:
    """Soft HARQ buffers of one transport block: float32 ``(C, Ncb)`` LLR circular buffers.

    ``add(llr, rv)`` combines one received transmission (``llr``: the ``G`` LLRs of the TB in transmission
    order, i.e. the concatenated per-CB interleaved LLRs); ``llrs()`` gives the decoder input
    ``(C, n_cols Zc)``. Chase combining: ``add`` with the same rv again; incremental redundancy: rv 0, 2, 3, 1.
    """

    def __init__(self, p: TbParams):
        self.p = p
        self.buf = np.zeros((p.C, p.Ncb), np.float32)
        self.rvs: list[int] = []

    def add(self, llr: np.ndarray, rv: int) -> None:
        llr = np.asarray(llr, np.float32).reshape(-1)
        if llr.size != self.p.G:
            raise ValueError(f"expected G={self.p.G} LLRs, got {llr.size}")
        off = 0
        for r, E in enumerate(self.p.E):
            accumulate(self.buf[r], llr[off:off + E], self.p, rv)
            off += E
        self.rvs.append(int(rv))

    def llrs(self) -> np.ndarray:
        return decoder_llrs(self.buf, self.p)
