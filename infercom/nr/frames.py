# SPDX-License-Identifier: GPL-3.0-or-later
"""NR transport blocks in the InferCom frame format: the same preamble | header | payload with pilots, so the
5G-NR baseline runs through the real synchroniser, demodulator and server (issue #11).

A frame whose header field ``system`` is ``"nr"`` carries, instead of an InferCom image configuration, what
the NR receiver needs besides the LLRs (``infercom.nr.tbs``: a TB is fully described by its coded bits per
transmission ``G`` and its code-rate code), in the same header bits:

| header field | NR meaning |
|---|---|
| ``height-1`` (12 bits), ``width-1`` (12), ``bh-1`` (3) | ``n_symbols - 1`` (27 bits): QPSK symbols per transmission, ``G = 2 n_symbols`` |
| ``key_id`` (4) | code-rate code (index into ``infercom.nr.tbs.RATES``) |
| ``profile`` | HARQ: ``importance`` = Chase (rv 0 every attempt), ``equal`` = incremental redundancy (rv 0, 2, 3, 1) |
| ``bw``, ``planes``, ``channels``, ``design_snr_db`` | fixed 1, 8, 3, 0 (checked: a header with other values is invalid) |

``tx_id``, ``image_id``, ``attempt``, ``frame_idx`` and ``frame_len_log2`` keep their meaning; the payload of
an attempt is its ``n_symbols`` QPSK symbols (38.211 Gray mapping, unit power: :mod:`infercom.qpsk` with
amplitude 1) split into frames of ``2**frame_len_log2`` symbols, the last one shorter.
"""

from __future__ import annotations

from typing import Any

from .harq import HARQ_MODES, PARAM_FIELDS

__all__ = ["MAX_NR_SYMBOLS", "nr_fields", "nr_header", "n_symbols_of", "validate", "nr_image_frames",
           "header_for_tx"]

#: QPSK symbols per transmission a TB description can hold (``infercom.nr.harq.PARAM_FIELDS``; the header's
#: 27 bits hold more); ``HARQ_MODES`` map onto the header's ``profile`` bit in order
MAX_NR_SYMBOLS = (1 << dict(PARAM_FIELDS)["n_symbols"]) - 1
_FIXED = {"bw": 1, "planes": 8, "channels": 3, "design_snr_db": 0}


def nr_header(tx_id: int, image_id: int, attempt: int, frame_idx: int, n_symbols: int, rate_code: int,
              harq: str, frame_len_log2: int = 15):
    """The ``FrameHeader`` of frame ``frame_idx`` of an NR transport block of ``n_symbols`` QPSK symbols per
    transmission, code-rate code ``rate_code`` (0..15) and HARQ mode ``harq`` (``chase`` | ``ir``)."""
    from infercom.header import PROFILES, FrameHeader

    if not 1 <= int(n_symbols) <= MAX_NR_SYMBOLS:
        raise ValueError(f"NR n_symbols must be in 1..{MAX_NR_SYMBOLS}, got {n_symbols}")
    if not 0 <= int(rate_code) <= 15:
        raise ValueError(f"NR rate_code must be in 0..15, got {rate_code}")
    if harq not in HARQ_MODES:
        raise ValueError(f"NR harq must be one of {HARQ_MODES}, got {harq!r}")
    w = int(n_symbols) - 1
    return FrameHeader(tx_id=tx_id, image_id=image_id, attempt=attempt, frame_idx=frame_idx,
                       bh=(w & 7) + 1, width=((w >> 3) & 0xFFF) + 1, height=(w >> 15) + 1,
                       key_id=int(rate_code), profile=PROFILES[HARQ_MODES.index(harq)],
                       frame_len_log2=frame_len_log2, system="nr", **_FIXED)


def _word(h: Any) -> int:
    return ((int(h.height) - 1) << 15) | ((int(h.width) - 1) << 3) | (int(h.bh) - 1)


def n_symbols_of(h: Any) -> int:
    """QPSK symbols per transmission of an NR frame's transport block (a ``FrameHeader`` or ``ImageConfig``)."""
    return _word(h) + 1


def nr_fields(h: Any) -> dict:
    """``{"n_symbols", "coded_bits", "rate_code", "harq"}`` of an NR frame's header (or ``ImageConfig``)."""
    from infercom.header import PROFILES

    n = n_symbols_of(h)
    return {"n_symbols": n, "coded_bits": 2 * n, "rate_code": int(h.key_id),
            "harq": HARQ_MODES[PROFILES.index(h.profile)]}


def validate(h: Any) -> None:
    """ValueError unless the fields an NR header fixes have their fixed values."""
    bad = {k: getattr(h, k) for k, v in _FIXED.items() if getattr(h, k) != v}
    if bad:
        raise ValueError(f"an NR header has fixed {_FIXED}; got {bad}")


def header_for_tx(tx, tx_id: int, image_id: int, attempt: int, frame_len_log2: int = 15):
    """Frame 0's header of attempt ``attempt`` of an :class:`infercom.nr.harq.NrImageTx`."""
    return nr_header(tx_id, image_id, attempt, 0, tx.n_symbols, tx.params["rate_code"],
                     HARQ_MODES[tx.params["harq"]], frame_len_log2)


def nr_image_frames(tx, tx_id: int, image_id: int, attempt: int = 0, fmt=None, frames=None) -> list:
    """The frames of attempt ``attempt`` (0-based; its redundancy version follows the HARQ mode) of an
    :class:`infercom.nr.harq.NrImageTx`: ``[(header, frame symbols), ...]`` as ``infercom.frame.image_frames``
    gives for an InferCom image (all frames, or the listed indices)."""
    from infercom.frame import FrameFormat, payload_frames

    fmt = fmt or FrameFormat()
    h0 = header_for_tx(tx, tx_id, image_id, attempt, fmt.frame_len_log2)
    return payload_frames(h0, tx.symbols(attempt), fmt, frames)


def decode_attempts(h: Any, attempts: list, max_iter: int = 10) -> tuple[bool, Any, dict, Any]:
    """Decode an NR transport block from its received attempts: ``attempts`` = ``[(attempt, y, noise_var),
    ...]`` with each attempt's whole payload (complex64 ``(n_symbols,)``; missing symbols ``y = 0``,
    ``noise_var = inf``: their LLRs are 0). The LLRs (``infercom.nr.link.qpsk_llrs``) of every attempt go into
    one soft buffer (the header's HARQ mode fixes each attempt's rv), then one decode. ``h``: a frame header
    (or ``ImageConfig``) of the block. Returns ``(ok, image or None, info, NrImageRx)`` as
    :meth:`infercom.nr.harq.NrImageRx.decode` (``ok``: the CRC passed and the JPEG decoded)."""
    from .harq import MAX_ATTEMPTS, NrImageRx
    from .link import qpsk_llrs

    f = nr_fields(h)
    rx = NrImageRx({"n_symbols": f["n_symbols"], "rate_code": f["rate_code"],
                    "harq": HARQ_MODES.index(f["harq"]), "max_attempts": MAX_ATTEMPTS}, max_iter=max_iter)
    for attempt, y, nv in sorted(attempts, key=lambda a: a[0]):
        rx.add_attempt(qpsk_llrs(y, nv), int(attempt))
    ok, img, info = rx.decode()
    return ok, img, info, rx
