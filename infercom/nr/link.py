# SPDX-License-Identifier: GPL-3.0-or-later
"""The NR transport-block chain end to end: TB bits <-> rate-matched coded bits <-> QPSK, and its XOR count.

Transmitter (:func:`nr_encode_tb`): TB CRC (CRC24A / CRC16) -> code-block segmentation with CRC24B and filler
bits -> LDPC encoding (BG1/BG2, lifting ``Zc``) -> rate matching (circular buffer, ``rv``) and bit
interleaving -> :func:`qpsk_modulate`.

QPSK (TS 38.211 §5.1.3): ``d(i) = [(1 - 2 b(2i)) + j (1 - 2 b(2i+1))] / sqrt(2)``. This is exactly
:func:`infercom.qpsk.modulate` with ``b_I = b(2i)``, ``b_Q = b(2i+1)`` and amplitude 1, and the exact LLRs
``L = log P(b=0)/P(b=1) = 2 sqrt(2) Re(y) / N0`` (``Im`` for the odd bits) of :func:`infercom.qpsk.bit_llrs`
have the decoder's sign convention (positive = bit 0), so both are reused unchanged: there is no sign or
ordering difference between the two modules.

Receiver (:func:`nr_decode_tb`): LLRs -> de-interleaving and de-rate-matching into the HARQ circular buffers
(:class:`~infercom.nr.ratematch.HarqBuffer`, LLR accumulation) -> layered min-sum decoding of all code blocks
as one batch -> CB CRC24B and TB CRC checks.

SNR: ``Es/N0`` per QPSK symbol (``Es = 1``); ``Eb/N0 = Es/N0 - 10 log10(Qm A / G)`` with ``Eb`` the energy per
TB payload bit (``A`` bits, CRCs excluded) of the first transmission.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import qpsk as _qpsk
from . import crc as _crc
from .decoder import ALPHA, BETA, decode
from .ldpc import encode, encode_xors
from .ratematch import HarqBuffer, rate_match, selection_positions
from .segmentation import TbParams, attach_tb_crc, desegment, segment, tb_params

__all__ = [
    "nr_encode_tb", "nr_decode_tb", "nr_decode_tb_detail", "TbDecodeResult", "qpsk_modulate", "qpsk_llrs",
    "ebn0_to_esn0_db", "esn0_to_ebn0_db", "tx_op_count", "encode_rows_needed",
]


def encode_rows_needed(p: TbParams, rvs=(0,)) -> int:
    """Base rows of parity the transmitter must compute so that rate matching for the given redundancy
    versions reads only computed bits (an ``E > Ncb`` wrap or ``rv != 0`` may need all of them)."""
    last = 0
    for rv in rvs:
        for E in set(p.E):
            last = max(last, int(selection_positions(p, rv, E).max()))
    n_cols = (last + 2 * p.Zc) // p.Zc + 1
    return p.code.rows_for_columns(n_cols)


def nr_encode_tb(bits, R: float, rv: int = 0, G: int | None = None, Qm: int = 2,
                 params: TbParams | None = None) -> tuple[list[np.ndarray], TbParams]:
    """Encode one transport block: ``bits`` (uint8 0/1, ``A`` of them) at target code rate ``R`` and
    redundancy version ``rv`` -> (per-CB rate-matched, interleaved bits ``f_r`` uint8 ``(E_r,)``, params).

    ``G`` (coded bits of the TB, multiple of ``Qm``) defaults to ``Qm ceil(A / (R Qm))``. ``params`` (from an
    earlier call / :func:`~infercom.nr.segmentation.tb_params`) fixes the sizes for a retransmission.
    """
    a = np.asarray(bits, np.uint8).reshape(-1)
    if a.size and a.max() > 1:
        raise ValueError("bits must be 0 or 1")
    p = tb_params(a.size, R, G, Qm) if params is None else params
    if p.A != a.size:
        raise ValueError(f"params are for A={p.A} bits, got {a.size}")
    c = segment(attach_tb_crc(a), p)
    d = encode(c, p.code, m_rows=encode_rows_needed(p, (rv,)))
    return [rate_match(d[r], p, rv, E) for r, E in enumerate(p.E)], p


def qpsk_modulate(bits) -> np.ndarray:
    """TS 38.211 §5.1.3 QPSK of an even number of bits: complex64 ``(n/2,)``, unit mean power."""
    b = np.asarray(bits, np.uint8).reshape(-1)
    if b.size % 2:
        raise ValueError(f"QPSK needs an even number of bits, got {b.size}")
    return _qpsk.modulate(b[0::2], b[1::2], 1.0)


def qpsk_llrs(y, noise_var) -> np.ndarray:
    """Exact LLRs (float32 ``(2 n,)``, bit order ``b(2i), b(2i+1)``) of QPSK symbols ``y`` with complex noise
    variance ``noise_var`` (scalar or per symbol), via :func:`infercom.qpsk.bit_llrs`."""
    y = np.asarray(y, np.complex64).reshape(-1)
    nv = np.asarray(noise_var, np.float64)
    if np.any(~(nv > 0)):
        raise ValueError("noise_var must be > 0")
    li, lq = _qpsk.bit_llrs(y, nv, 1.0)
    out = np.empty(2 * y.size, np.float32)
    out[0::2] = li
    out[1::2] = lq
    return out


def ebn0_to_esn0_db(ebn0_db: float, p: TbParams) -> float:
    """Es/N0 (dB, per QPSK/Qm symbol) for an Eb/N0 per TB payload bit (dB)."""
    return float(ebn0_db) + 10.0 * math.log10(p.Qm * p.A / p.G)


def esn0_to_ebn0_db(esn0_db: float, p: TbParams) -> float:
    """Inverse of :func:`ebn0_to_esn0_db`."""
    return float(esn0_db) - 10.0 * math.log10(p.Qm * p.A / p.G)


@dataclass
class TbDecodeResult:
    """``bits`` uint8 ``(A,)`` decoded payload, ``crc_ok`` TB CRC passed, ``cb_crc_ok`` bool ``(C,)`` (all
    True for one CB), ``iterations`` int32 ``(C,)``, ``syndrome_ok`` bool ``(C,)``, ``harq`` the soft buffers
    (pass back in for the next attempt)."""

    bits: np.ndarray
    crc_ok: bool
    cb_crc_ok: np.ndarray
    iterations: np.ndarray
    syndrome_ok: np.ndarray
    harq: HarqBuffer


def nr_decode_tb_detail(llr, p: TbParams, rv: int = 0, harq: HarqBuffer | None = None, max_iter: int = 10,
                        alpha: float = ALPHA, beta: float = BETA, threads: int = 1) -> TbDecodeResult:
    """Receive one transmission of a TB: ``llr`` float32 ``(G,)`` in transmission order (concatenated CBs) is
    combined into ``harq`` (a new buffer when None; Chase: same rv again, IR: rv 0, 2, 3, 1), then all CBs
    are decoded as one batch and the CRCs checked."""
    if harq is None:
        harq = HarqBuffer(p)
    elif harq.p != p:
        raise ValueError("HARQ buffer belongs to another transport block configuration")
    harq.add(llr, rv)
    res = decode(harq.llrs(), p.code, max_iter=max_iter, alpha=alpha, beta=beta, threads=threads)
    b, cb_ok = desegment(res.bits[:, :p.K], p)
    tb_ok = bool(_crc.check(b, p.tb_crc))
    return TbDecodeResult(b[:p.A].copy(), tb_ok and bool(cb_ok.all()), cb_ok, res.iterations, res.ok, harq)


def nr_decode_tb(llr, p: TbParams, rv: int = 0, harq: HarqBuffer | None = None, max_iter: int = 10,
                 alpha: float = ALPHA, beta: float = BETA, threads: int = 1) -> tuple[np.ndarray, bool]:
    """:func:`nr_decode_tb_detail` reduced to ``(bits (A,), crc_ok)``."""
    r = nr_decode_tb_detail(llr, p, rv, harq, max_iter, alpha, beta, threads)
    return r.bits, r.crc_ok


def tx_op_count(p: TbParams, rv: int = 0) -> dict:
    """Exact bit-XOR count of the transmitter for one TB (CRC LFSRs and LDPC encoding; rate matching,
    interleaving and QPSK mapping are bit selection / table look-up, no arithmetic).

    * ``crc_tb``: ``A`` message bits through the TB-CRC LFSR, :func:`infercom.nr.crc.lfsr_xors_per_bit` each;
    * ``crc_cb``: ``C (K' - 24)`` bits through the CRC24B LFSR when ``C > 1``;
    * ``ldpc``: ``C`` times :func:`infercom.nr.ldpc.encode_xors` for the parity rows rate matching needs with
      this ``rv`` (``ldpc_full``: all rows of the mother code);
    * ``total`` = crc_tb + crc_cb + ldpc; ``per_info_bit`` = total / A.
    """
    crc_tb = p.A * _crc.lfsr_xors_per_bit(p.tb_crc)
    crc_cb = p.C * (p.Kp - 24) * _crc.lfsr_xors_per_bit("24B") if p.L_cb else 0
    m_rows = encode_rows_needed(p, (rv,))
    ldpc = p.C * encode_xors(p.code, m_rows)
    ldpc_full = p.C * encode_xors(p.code)
    total = crc_tb + crc_cb + ldpc
    return {"crc_tb": crc_tb, "crc_cb": crc_cb, "ldpc": ldpc, "ldpc_rows": m_rows, "ldpc_full": ldpc_full,
            "total": total, "per_info_bit": total / p.A}
