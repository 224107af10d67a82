# SPDX-License-Identifier: GPL-3.0-or-later
"""NR LDPC base graphs and their lifting (TS 38.212 §5.3.2).

* :data:`LIFTING_SETS` — Table 5.3.2-1: ``Zc = a * 2**j``, ``a = 2, 3, 5, 7, 9, 11, 13, 15`` for set index
  ``iLS = 0..7``, ``Zc <= 384`` (51 lifting sizes in all).
* :func:`base_graph` — BG1 (46 x 68) or BG2 (42 x 52) with the shift coefficients ``V_ij`` of all eight
  sets (Tables 5.3.2-2 / -3, stored in :mod:`infercom.nr.tables.basegraphs`).
* :func:`lifted` — the code for one lifting size: per base-graph row the list of (column, shift
  ``P_ij = V_ij mod Zc``) in CSR form, checked for the structure the encoder relies on.
* :func:`parity_check_matrix` — the expanded sparse ``H`` (scipy CSR, ``(m Zc, n Zc)``).

Circulant convention (§5.3.2): the entry ``P`` of the base graph is the ``Zc x Zc`` identity cyclically
shifted right by ``P``: its row ``r`` has its one in column ``(r + P) mod Zc``. So lifted check row ``i*Zc + r``
involves the code bits ``x[j*Zc + (r + P_ij) mod Zc]`` for every non-zero ``(i, j)``.

Codeword bit order (columns): ``x = [c_0 .. c_{K-1}, w_0 .. w_{N+2Zc-K-1}]``, ``K = kb Zc`` systematic bits
(``kb = 22`` for BG1, ``10`` for BG2, filler bits included as zeros) followed by the parity bits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .tables import basegraphs as _tables

__all__ = [
    "LIFTING_SETS", "LIFTING_SIZES", "set_index", "BaseGraph", "base_graph", "LiftedCode", "lifted",
    "parity_check_matrix",
]

#: Table 5.3.2-1: set index iLS -> sorted lifting sizes of that set.
LIFTING_SETS: dict[int, tuple[int, ...]] = {
    i: tuple(a * 2**j for j in range(8) if a * 2**j <= 384) for i, a in enumerate((2, 3, 5, 7, 9, 11, 13, 15))
}
#: All 51 lifting sizes, ascending.
LIFTING_SIZES: tuple[int, ...] = tuple(sorted(z for zs in LIFTING_SETS.values() for z in zs))
_SET_OF = {z: i for i, zs in LIFTING_SETS.items() for z in zs}


def set_index(z: int) -> int:
    """Lifting-set index ``iLS`` of lifting size ``z`` (Table 5.3.2-1); ValueError if ``z`` is not one."""
    try:
        return _SET_OF[int(z)]
    except KeyError:
        raise ValueError(f"{z} is not an NR lifting size (Table 5.3.2-1)") from None


@dataclass(frozen=True, eq=False)
class BaseGraph:
    """One NR base graph: ``m x n`` with ``kb`` systematic columns; entries sorted by (row, column).

    ``row``, ``col``: int32 ``(nnz,)``; ``V``: int32 ``(nnz, 8)`` shift coefficients for iLS = 0..7.
    """

    bg: int
    m: int
    n: int
    kb: int
    row: np.ndarray
    col: np.ndarray
    V: np.ndarray

    @property
    def nnz(self) -> int:
        return int(self.row.size)


@functools.lru_cache(maxsize=None)
def base_graph(bg: int) -> BaseGraph:
    """Base graph 1 or 2 (TS 38.212 Tables 5.3.2-2 / 5.3.2-3)."""
    if bg not in (1, 2):
        raise ValueError(f"base graph must be 1 or 2, got {bg!r}")
    data = np.array(_tables.BG1 if bg == 1 else _tables.BG2, dtype=np.int32)
    m, n, kb = (46, 68, 22) if bg == 1 else (42, 52, 10)
    g = BaseGraph(bg, m, n, kb, data[:, 0].copy(), data[:, 1].copy(), data[:, 2:].copy())
    for a in (g.row, g.col, g.V):
        a.setflags(write=False)
    return g


@dataclass(frozen=True, eq=False)
class LiftedCode:
    """The NR LDPC code of base graph ``bg`` lifted by ``z`` (set ``ils``).

    ``row_ptr`` int32 ``(m+1,)``, ``col`` int32 ``(nnz,)``, ``shift`` int32 ``(nnz,)`` (= ``V mod z``): CSR of the
    base graph, columns ascending within a row. Lengths in bits: ``K = kb z`` (systematic, filler included),
    ``n_cols z`` (full codeword, the two punctured columns included), ``N = (n_cols - 2) z`` (the encoder output
    ``d`` of §5.3.2). ``core_p0_shift``: the shift ``s`` with ``P_s p_0 = sum of the four core-row syndromes``
    (the double-diagonal core, see :mod:`infercom.nr.ldpc`); ``core_p0_row``: for core rows 0..2 the shift of
    ``p_0`` in that row, or -1 where the row has no ``p_0`` term.
    """

    bg: int
    z: int
    ils: int
    m: int
    n_cols: int
    kb: int
    row_ptr: np.ndarray
    col: np.ndarray
    shift: np.ndarray
    core_p0_shift: int
    core_p0_row: tuple[int, int, int]

    @property
    def K(self) -> int:
        return self.kb * self.z

    @property
    def N(self) -> int:
        return (self.n_cols - 2) * self.z

    @property
    def n_bits(self) -> int:
        return self.n_cols * self.z

    @property
    def nnz(self) -> int:
        return int(self.col.size)

    def row_degree(self) -> np.ndarray:
        return np.diff(self.row_ptr)

    def rows_for_columns(self, n_cols_used: int) -> int:
        """Number of leading base-graph rows that involve only columns ``< n_cols_used``: the rows a decoder
        needs when the columns ``>= n_cols_used`` are never transmitted (their degree-1 parity bits carry no
        information, so the rows ending in them contribute nothing). At least the 4 core rows."""
        return int(min(self.m, max(4, n_cols_used - self.kb)))


def _check_structure(g: BaseGraph, shift: np.ndarray, z: int) -> tuple[int, tuple[int, int, int]]:
    """Verify the systematic double-diagonal + extension structure of §5.3.2 for this lifting size.

    Core (rows 0..3, parity columns kb..kb+3): column kb+1 in rows 0,1; kb+2 in rows 1,2; kb+3 in rows 2,3, all
    with shift 0; column kb in three of the four rows, two of its shifts equal (they cancel when the four rows
    are summed), so the sum is ``P_s p_0`` for the remaining shift ``s``. Extension rows i >= 4: an identity
    at column kb+i and otherwise only columns < kb+4. Returns ``(s, per-row p_0 shifts of rows 0..2)``.
    """
    kb = g.kb
    ent = {(int(r), int(c)): int(s) for r, c, s in zip(g.row, g.col, shift)}
    for (r, c), s in ent.items():
        if r < 4 and c >= kb + 4:
            raise AssertionError(f"BG{g.bg}: core row {r} touches extension column {c}")
        if r >= 4 and c >= kb + 4 and c != kb + r:
            raise AssertionError(f"BG{g.bg}: extension row {r} touches column {c}")
    for r in range(4, g.m):
        if ent.get((r, kb + r)) != 0:
            raise AssertionError(f"BG{g.bg}: row {r} lacks the identity at column {kb + r}")
    for c, rows in ((kb + 1, (0, 1)), (kb + 2, (1, 2)), (kb + 3, (2, 3))):
        got = tuple(r for r in range(4) if (r, c) in ent)
        if got != rows or any(ent[(r, c)] != 0 for r in rows):
            raise AssertionError(f"BG{g.bg}: column {c} is not a shift-0 double diagonal in rows {rows}")
    p0 = [ent.get((r, kb), -1) for r in range(4)]
    present = [s for s in p0 if s >= 0]
    if len(present) != 3:
        raise AssertionError(f"BG{g.bg}: column {kb} should have 3 core entries, has {len(present)}")
    odd = [s for s in set(present) if present.count(s) % 2 == 1]
    if len(odd) != 1:
        raise AssertionError(f"BG{g.bg} Z={z}: core column shifts {present} do not reduce to one permutation")
    return odd[0], (p0[0], p0[1], p0[2])


@functools.lru_cache(maxsize=None)
def lifted(bg: int, z: int) -> LiftedCode:
    """The lifted code of base graph ``bg`` (1 or 2) and lifting size ``z`` (any of :data:`LIFTING_SIZES`)."""
    g = base_graph(bg)
    ils = set_index(z)
    shift = (g.V[:, ils] % z).astype(np.int32)
    s_core, p0_rows = _check_structure(g, shift, z)
    row_ptr = np.zeros(g.m + 1, np.int32)
    np.add.at(row_ptr, g.row + 1, 1)
    row_ptr = np.cumsum(row_ptr).astype(np.int32)
    code = LiftedCode(bg, int(z), ils, g.m, g.n, g.kb, row_ptr, g.col.copy(), shift, s_core, p0_rows)
    for a in (code.row_ptr, code.col, code.shift):
        a.setflags(write=False)
    return code


def parity_check_matrix(code: LiftedCode, m_rows: int | None = None, n_cols: int | None = None):
    """Expanded binary parity-check matrix as ``scipy.sparse.csr_matrix`` of uint8, ``(m_rows z, n_cols z)``.

    ``m_rows`` (default all) keeps the first base rows; ``n_cols`` (default all) keeps the first base columns
    (they must include every column the kept rows touch).
    """
    import scipy.sparse as sp

    z = code.z
    m_rows = code.m if m_rows is None else int(m_rows)
    n_cols = code.n_cols if n_cols is None else int(n_cols)
    e = int(code.row_ptr[m_rows])
    rows = np.repeat(np.arange(m_rows), np.diff(code.row_ptr[: m_rows + 1]))
    if e and code.col[:e].max() >= n_cols:
        raise ValueError(f"rows 0..{m_rows - 1} touch columns >= {n_cols}")
    r = np.arange(z)
    ri = (rows[:, None] * z + r[None, :]).reshape(-1)
    ci = (code.col[:e, None] * z + (r[None, :] + code.shift[:e, None]) % z).reshape(-1)
    data = np.ones(ri.size, np.uint8)
    return sp.csr_matrix((data, (ri, ci)), shape=(m_rows * z, n_cols * z))
