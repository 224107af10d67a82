# SPDX-License-Identifier: GPL-3.0-or-later
"""Transport-block sizing of the NR image baseline: the code-rate table and the TB-size rule.

The baseline does not use the 38.214 MCS/TBS tables (docs/nr.md §8); instead a TB is fully described by two
numbers, its coded bits per transmission ``G`` (= 2 x QPSK symbols) and a target code rate ``R`` from the
small table :data:`RATES` (exact fractions, 4-bit code). The payload size follows from them by one rule,
the same at the transmitter and the receiver:

    **TB-size rule.** ``A(G, R)`` = the largest multiple of 8 (bits) that segments evenly (38.212 §5.2.2,
    :func:`infercom.nr.segmentation.segmentable`) and whose code-block payload including every CRC,
    ``B' = A + L_tb + C L_cb`` (TB CRC16/CRC24A, ``C`` CB CRC24Bs when ``C > 1``), satisfies
    ``B' <= floor(R G)``. So the code rate counted with the CRC bits never exceeds ``R``, all ``G`` coded bits
    are sent in every attempt (``sum E_r = G`` exactly) and ``A ~ R G - 16..24 - 24 C``.

The inverse (:func:`coded_bits_for_tbs`): the smallest ``G`` (multiple of ``Qm = 2``) with ``B' <= R G``;
``A(coded_bits_for_tbs(A, R), R) == A`` for every segmentable multiple of 8 (``B'`` grows by >= 8 per 8 bits
of ``A`` while the rounding of ``G`` leaves less than ``2 R < 8`` bits of slack), so a receiver that knows
only ``(G, R)`` recovers ``A`` in both budget modes of :mod:`infercom.nr.jpeg`.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

from .segmentation import TbParams, segmentable, tb_params

__all__ = [
    "RATES", "RATE_CODE_BITS", "QM", "parse_code_rate", "rate_code", "rate_from_code", "cb_payload_bits",
    "tbs_for_coded_bits", "coded_bits_for_tbs", "tb_for_coded_bits", "largest_tbs_at_most",
]

#: Target code rates (TB CRC and CB CRCs counted as payload), indexed by a 4-bit ``rate_code``.
RATES: tuple[Fraction, ...] = tuple(Fraction(f) for f in (
    "1/5", "1/4", "1/3", "2/5", "1/2", "3/5", "2/3", "3/4", "4/5", "5/6", "8/9"))
RATE_CODE_BITS = 4
#: bits per QPSK symbol
QM = 2


def parse_code_rate(value) -> Fraction:
    """A code rate from the table: a Fraction, ``"1/3"``, ``"0.5"`` or a float within 1e-3 of an entry.
    ValueError for anything else (the table is listed in the message)."""
    try:
        if isinstance(value, Fraction):
            r = value
        elif isinstance(value, str) and "/" in value:
            num, den = value.strip().split("/")
            r = Fraction(int(num), int(den))
        else:
            r = float(value)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"cannot parse code rate {value!r} (use e.g. 1/3 or 0.5)") from None
    for q in RATES:
        if (r == q) if isinstance(r, Fraction) else abs(r - float(q)) < 1e-3:
            return q
    raise ValueError(f"code rate {value!r} is not in the table {', '.join(str(q) for q in RATES)}")


def rate_code(R) -> int:
    """The 4-bit index of code rate ``R`` in :data:`RATES`."""
    return RATES.index(parse_code_rate(R))


def rate_from_code(code: int) -> Fraction:
    """Inverse of :func:`rate_code` (ValueError outside the table)."""
    if not isinstance(code, int) or not 0 <= code < len(RATES):
        raise ValueError(f"rate_code must be an int in 0..{len(RATES) - 1}, got {code!r}")
    return RATES[code]


def cb_payload_bits(A: int, R) -> int | None:
    """``B' = A + L_tb + C L_cb = C K'`` (bits) of a TB of ``A`` bits at rate ``R`` (segmentation of
    :func:`infercom.nr.segmentation.tb_params`), or None if it does not segment evenly."""
    if A <= 0:
        return None
    try:
        p = tb_params(int(A), float(R))
    except ValueError:
        return None
    return p.C * p.Kp


@functools.lru_cache(maxsize=4096)
def _tbs(G: int, R: Fraction) -> int:
    cap = math.floor(R * G)
    A = (cap - 16) // 8 * 8
    while A >= 8:
        bp = cb_payload_bits(A, R)
        if bp is not None and bp <= cap:
            return A
        A -= 8
    raise ValueError(f"G={G} coded bits at R={R} leave no room for a TB of >= 8 bits plus its CRC")


def tbs_for_coded_bits(G: int, R) -> int:
    """The TB-size rule (module docstring): payload bits ``A`` for ``G`` coded bits at code rate ``R``."""
    G = int(G)
    if G <= 0 or G % QM:
        raise ValueError(f"G must be a positive multiple of {QM}, got {G}")
    return _tbs(G, parse_code_rate(R))


def coded_bits_for_tbs(A: int, R) -> int:
    """Smallest ``G`` (multiple of 2) with ``B'(A) <= R G``; ValueError when ``A`` does not segment evenly."""
    R = parse_code_rate(R)
    bp = cb_payload_bits(int(A), R)
    if bp is None or A % 8:
        raise ValueError(f"A={A} is not a segmentable multiple of 8 bits at R={R}")
    return QM * math.ceil(Fraction(bp) / (R * QM))


def tb_for_coded_bits(G: int, R) -> TbParams:
    """:class:`~infercom.nr.segmentation.TbParams` of the TB the rule gives for ``(G, R)``: ``G`` coded bits,
    ``sum E_r = G``."""
    R = parse_code_rate(R)
    return tb_params(tbs_for_coded_bits(G, R), float(R), int(G), QM)


def largest_tbs_at_most(bits: int, R) -> int:
    """The largest segmentable multiple of 8 that is ``<= bits`` (ValueError when below 8)."""
    R = parse_code_rate(R)
    A = int(bits) // 8 * 8
    while A >= 8:
        if segmentable(A, float(R)):
            return A
        A -= 8
    raise ValueError(f"a budget of {bits} bits holds no TB")
