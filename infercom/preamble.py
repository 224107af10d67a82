# SPDX-License-Identifier: GPL-3.0-or-later
"""Preamble and pilot sequences.

The preamble is ``S = 64`` segments of ``L = 16`` symbols: segment ``s`` is ``d_s * u`` with ``u`` the length-16
Frank sequence (``u[4a+b] = exp(j*pi/2*a*b)``, a perfect periodic-autocorrelation CAZAC in the QPSK alphabet
{1, j, -1, -j}) and ``d_s`` a fixed +-1 cover sequence.  1024 symbols, unit power.

Why this structure (see docs/phy.md):

* the detector correlates the stream with the short ``u`` only (16 taps per sample) and combines the segment
  correlations ``c_s`` non-coherently (``sum |c_s|^2``, insensitive to CFO) for a cheap first stage, then
  differentially (``D = sum e_s c_s conj(c_{s-1})``, ``e_s = d_s d_{s-1}``), which removes the CFO phase ramp
  and whose phase gives the CFO;
* the +-1 cover is chosen (by a fixed search, reproduced by :func:`_choose_cover`) so that ``e`` has low
  aperiodic autocorrelation sidelobes: ``D`` has one sharp peak instead of a plateau, so timing is unambiguous.

Pilot blocks are ``PILOT_LEN = 16`` QPSK symbols from a fixed PRBS; block ``i`` uses its own 16 symbols
(:func:`pilot_block`), so the pilot pattern has no short period.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SEG_LEN", "N_SEG", "PREAMBLE_LEN", "PILOT_LEN", "frank16", "cover", "preamble", "pilot_block",
           "pilot_symbols", "diff_cover"]

SEG_LEN = 16
N_SEG = 64
PREAMBLE_LEN = SEG_LEN * N_SEG
PILOT_LEN = 16


def frank16() -> np.ndarray:
    """Length-16 Frank sequence, complex64, values in {1, j, -1, -j}."""
    a, b = np.divmod(np.arange(16), 4)
    ph = (a * b) % 4
    return np.array([1, 1j, -1, -1j], dtype=np.complex64)[ph]


def _lfsr_bits(n: int, seed: int) -> np.ndarray:
    """PRBS-23 (x^23 + x^18 + 1) bits from a non-zero seed, uint8."""
    reg = seed & 0x7FFFFF or 1
    out = np.empty(n, dtype=np.uint8)
    for i in range(n):
        b = ((reg >> 22) ^ (reg >> 17)) & 1
        reg = ((reg << 1) | b) & 0x7FFFFF
        out[i] = b
    return out


def _max_sidelobe(e: np.ndarray) -> float:
    ac = np.correlate(e, e, "full")
    c = ac.size // 2
    return float(np.max(np.abs(np.delete(ac, c))))


def _choose_cover(n_seeds: int = 256) -> np.ndarray:
    """The +-1 cover d (length N_SEG) whose differential sequence e has the smallest peak aperiodic
    autocorrelation sidelobe among PRBS-23 seeds 1..n_seeds (deterministic)."""
    best, best_d = None, None
    for seed in range(1, n_seeds + 1):
        d = 1.0 - 2.0 * _lfsr_bits(N_SEG, seed * 7919).astype(np.float64)
        e = d[1:] * d[:-1]
        ms = _max_sidelobe(e)
        if best is None or ms < best:
            best, best_d = ms, d
    return best_d.astype(np.float32)


_COVER = _choose_cover()
_PREAMBLE = (np.repeat(_COVER, SEG_LEN) * np.tile(frank16(), N_SEG)).astype(np.complex64)
_PILOT_BITS = _lfsr_bits(2 * PILOT_LEN * 4096, 0x2B5A3).astype(np.float32)
_PS = (1.0 - 2.0 * _PILOT_BITS) / np.float32(np.sqrt(2.0))
_PILOTS = (_PS[0::2] + 1j * _PS[1::2]).astype(np.complex64).reshape(4096, PILOT_LEN)


def cover() -> np.ndarray:
    """The +-1 segment cover ``d`` (float32, ``(N_SEG,)``)."""
    return _COVER.copy()


def diff_cover() -> np.ndarray:
    """``e_s = d_s * d_{s-1}``, s = 1 .. N_SEG-1 (float32)."""
    return (_COVER[1:] * _COVER[:-1]).astype(np.float32)


def preamble() -> np.ndarray:
    """The preamble symbols, complex64 ``(PREAMBLE_LEN,)``, unit power."""
    return _PREAMBLE.copy()


def pilot_block(i: int) -> np.ndarray:
    """Pilot block ``i`` (16 Gray-QPSK symbols, unit power, complex64); the pattern repeats every 4096
    blocks."""
    return _PILOTS[int(i) % 4096].copy()


def pilot_symbols(n_blocks: int) -> np.ndarray:
    """Blocks 0 .. n_blocks-1 concatenated, complex64 ``(n_blocks * PILOT_LEN,)``."""
    if n_blocks < 0:
        raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
    idx = np.arange(int(n_blocks)) % 4096
    return _PILOTS[idx].reshape(-1).copy()
