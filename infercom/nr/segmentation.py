# SPDX-License-Identifier: GPL-3.0-or-later
"""Transport-block CRC, base-graph selection and code-block segmentation (TS 38.212 §7.2.1, §7.2.2, §5.2.2).

All sizes are in bits. The chain for a transport block (TB) of ``A`` payload bits:

1. TB CRC (§7.2.1): CRC24A when ``A > 3824``, else CRC16: ``B = A + L_tb`` bits.
2. Base graph (§7.2.2, same rule as §6.2.2 for UL-SCH), from ``A`` and the code rate ``R``: BG2 when
   ``A <= 292``, or ``A <= 3824`` and ``R <= 0.67``, or ``R <= 0.25``; BG1 otherwise.
3. Segmentation (§5.2.2): max code-block size ``Kcb = 8448`` (BG1) / ``3840`` (BG2). ``B <= Kcb``: one code
   block (CB), no CB CRC; else ``C = ceil(B / (Kcb - 24))`` blocks, each with a CRC24B, ``B' = B + 24 C``.
   ``K' = B'/C`` bits per CB (data + CB CRC). ``Kb = 22`` (BG1); BG2: ``Kb = 10, 9, 8, 6`` for
   ``B > 640, > 560, > 192``, else. ``Zc`` = the smallest lifting size (Table 5.3.2-1) with ``Kb Zc >= K'``;
   ``K = 22 Zc`` (BG1) or ``10 Zc`` (BG2); the ``F = K - K'`` filler bits ``c_{K'} .. c_{K-1}`` are <NULL>
   (encoded as 0, never transmitted, known at the receiver).
4. Rate matching sizes (§5.4.2.1, one layer, all CBs scheduled): ``E_r = Qm floor(G/(Qm C))`` for the first
   ``C - mod(G/Qm, C)`` blocks, ``Qm ceil(G/(Qm C))`` for the rest; ``Ncb = N`` (no limited-buffer rate
   matching, ``I_LBRM = 0``).

``K' = B'/C`` must be an integer: it is for the transport-block sizes of TS 38.214 §5.1.3.2; for an arbitrary
``A`` use :func:`round_up_tbs` (pad the payload) or expect a ValueError.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import crc as _crc
from .basegraph import LIFTING_SIZES, lifted, set_index

__all__ = [
    "select_base_graph", "tb_crc_name", "TbParams", "tb_params", "segmentable", "round_up_tbs",
    "rate_match_lengths", "attach_tb_crc", "segment", "desegment",
]

KCB = {1: 8448, 2: 3840}


def select_base_graph(A: int, R: float) -> int:
    """LDPC base graph (1 or 2) for a TB of ``A`` bits at code rate ``R`` (§7.2.2)."""
    if A <= 0 or not 0 < R <= 1:
        raise ValueError(f"need A > 0 and 0 < R <= 1, got A={A}, R={R}")
    if A <= 292 or (A <= 3824 and R <= 0.67) or R <= 0.25:
        return 2
    return 1


def tb_crc_name(A: int) -> str:
    """The TB CRC of §7.2.1: ``"24A"`` when ``A > 3824`` bits, else ``"16"``."""
    return "24A" if A > 3824 else "16"


@dataclass(frozen=True)
class TbParams:
    """Everything the chain needs about one transport block (all lengths in bits).

    ``A`` payload, ``L_tb`` TB CRC length, ``B = A + L_tb``; ``bg`` base graph; ``C`` code blocks, ``L_cb`` CB
    CRC length (0 or 24), ``Kp`` = K' (data + CB CRC per block), ``Kb``, ``Zc``, ``ils`` (lifting set),
    ``K`` (systematic bits incl. ``F`` fillers), ``N`` encoder output ``d`` length (66 or 50 Zc), ``Ncb``
    circular-buffer size (= N), ``Qm`` bits per symbol, ``G`` coded bits of the TB, ``E`` per-CB rate-matching
    output lengths (sum = G), ``R`` the target code rate used for the base-graph choice.
    """

    A: int
    R: float
    L_tb: int
    B: int
    bg: int
    C: int
    L_cb: int
    Kp: int
    Kb: int
    Zc: int
    ils: int
    K: int
    F: int
    N: int
    Ncb: int
    Qm: int
    G: int
    E: tuple[int, ...]

    @property
    def tb_crc(self) -> str:
        return tb_crc_name(self.A)

    @property
    def rate(self) -> float:
        """Effective code rate ``A / G`` (TB payload bits per coded bit)."""
        return self.A / self.G

    @property
    def code(self):
        """The :class:`~infercom.nr.basegraph.LiftedCode` of this TB's code blocks."""
        return lifted(self.bg, self.Zc)


def _segment_sizes(B: int, bg: int) -> tuple[int, int, int, int, int, int]:
    """(C, L_cb, K', Kb, Zc, K) of §5.2.2 for ``B`` bits into base graph ``bg``; ValueError if B'/C is fractional."""
    kcb = KCB[bg]
    if B <= kcb:
        L, C = 0, 1
    else:
        L = 24
        C = math.ceil(B / (kcb - L))
    Bp = B + C * L
    if Bp % C:
        raise ValueError(f"B={B}: B'={Bp} is not divisible by C={C} (not a 38.214 TB size; see round_up_tbs)")
    Kp = Bp // C
    if bg == 1:
        Kb = 22
    else:
        Kb = 10 if B > 640 else 9 if B > 560 else 8 if B > 192 else 6
    Zc = next(z for z in LIFTING_SIZES if Kb * z >= Kp)
    K = (22 if bg == 1 else 10) * Zc
    return C, L, Kp, Kb, Zc, K


def rate_match_lengths(G: int, C: int, Qm: int = 2, n_layers: int = 1) -> tuple[int, ...]:
    """Per-CB rate-matching output lengths ``E_r`` (§5.4.2.1) for ``G`` coded bits over ``C`` blocks."""
    q = n_layers * Qm
    if G <= 0 or G % q:
        raise ValueError(f"G={G} must be a positive multiple of NL*Qm={q}")
    g = G // q
    lo, hi = q * (g // C), q * (-(-g // C))
    return tuple(lo if j <= C - (g % C) - 1 else hi for j in range(C))


def tb_params(A: int, R: float, G: int | None = None, Qm: int = 2) -> TbParams:
    """Parameters of a TB of ``A`` bits at target code rate ``R`` (base-graph choice, and
    ``G = Qm ceil(A / (R Qm))`` coded bits unless ``G`` is given)."""
    A = int(A)
    bg = select_base_graph(A, R)
    name = tb_crc_name(A)
    L_tb = _crc.POLYS[name][0]
    B = A + L_tb
    C, L_cb, Kp, Kb, Zc, K = _segment_sizes(B, bg)
    if G is None:
        G = Qm * math.ceil(A / (R * Qm))
    G = int(G)
    E = rate_match_lengths(G, C, Qm)
    N = (66 if bg == 1 else 50) * Zc
    if min(E) < 1:
        raise ValueError(f"G={G} gives an empty code block")
    return TbParams(A, float(R), L_tb, B, bg, C, L_cb, Kp, Kb, Zc, set_index(Zc), K, K - Kp, N, N, Qm, G, E)


def segmentable(A: int, R: float) -> bool:
    """True when a TB of ``A`` bits at rate ``R`` segments into equal code blocks (``B'/C`` integer)."""
    try:
        bg = select_base_graph(A, R)
        _segment_sizes(A + _crc.POLYS[tb_crc_name(A)][0], bg)
    except ValueError:
        return False
    return True


def round_up_tbs(A: int, R: float) -> int:
    """The smallest ``A' >= A`` that :func:`segmentable` accepts (pad the payload with zeros up to it)."""
    a = int(A)
    while not segmentable(a, R):
        a += 1
    return a


def attach_tb_crc(a_bits, A: int | None = None) -> np.ndarray:
    """TB payload bits ``a`` (uint8 0/1, ``A`` of them) followed by their TB CRC: ``b`` (``B`` bits)."""
    a = np.asarray(a_bits, np.uint8).reshape(-1)
    if A is not None and a.size != A:
        raise ValueError(f"expected {A} TB bits, got {a.size}")
    return _crc.attach(a, tb_crc_name(a.size))


def segment(b_bits, p: TbParams) -> np.ndarray:
    """§5.2.2: ``b`` (``B`` bits) -> code blocks ``c`` uint8 ``(C, K)``: ``K' - L_cb`` data bits, the CB CRC24B
    (when ``C > 1``), then ``F`` filler bits stored as 0 (positions ``K' .. K-1``)."""
    b = np.asarray(b_bits, np.uint8).reshape(-1)
    if b.size != p.B:
        raise ValueError(f"expected B={p.B} bits, got {b.size}")
    n_data = p.Kp - p.L_cb
    c = np.zeros((p.C, p.K), np.uint8)
    data = b.reshape(p.C, n_data)
    c[:, :n_data] = data
    if p.L_cb:
        c[:, n_data:p.Kp] = _crc.crc_bits(data, "24B")
    return c


def desegment(c_hat, p: TbParams) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`segment` on decoded blocks ``c_hat`` ``(C, >= K')``: ``(b (B,), cb_crc_ok bool (C,))``;
    ``cb_crc_ok`` is all True when there is a single block (no CB CRC)."""
    c = np.asarray(c_hat, np.uint8)
    if c.ndim != 2 or c.shape[0] != p.C or c.shape[1] < p.Kp:
        raise ValueError(f"expected ({p.C}, >= {p.Kp}) decoded bits, got {c.shape}")
    n_data = p.Kp - p.L_cb
    ok = _crc.check(c[:, :p.Kp], "24B") if p.L_cb else np.ones(p.C, bool)
    return c[:, :n_data].reshape(-1).copy(), np.asarray(ok, bool)
