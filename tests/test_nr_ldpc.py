# SPDX-License-Identifier: GPL-3.0-or-later
"""NR LDPC base graphs, lifting and encoder (TS 38.212 §5.3.2): H c = 0 over GF(2) for every lifting size."""

from __future__ import annotations

import numpy as np
import pytest

from infercom.nr import make_tables
from infercom.nr.basegraph import (
    LIFTING_SETS, LIFTING_SIZES, base_graph, lifted, parity_check_matrix, set_index,
)
from infercom.nr.ldpc import encode, encode_full, encode_full_numpy, encode_xors, syndrome_ok
from infercom.nr.tables import basegraphs


def test_stored_tables_digest():
    # the generated module is not edited by hand: its content hash is the one the generator wrote
    tables = {1: [tuple(e) for e in basegraphs.BG1], 2: [tuple(e) for e in basegraphs.BG2]}
    assert make_tables.digest(tables) == basegraphs.SHA256


def test_base_graph_shapes():
    g1, g2 = base_graph(1), base_graph(2)
    assert (g1.m, g1.n, g1.kb, g1.nnz) == (46, 68, 22, 316)
    assert (g2.m, g2.n, g2.kb, g2.nnz) == (42, 52, 10, 197)
    for g in (g1, g2):
        assert g.row.max() == g.m - 1 and g.col.max() == g.n - 1
        assert g.V.min() >= 0 and g.V.max() < 384
        assert len({(r, c) for r, c in zip(g.row, g.col)}) == g.nnz
    # row degrees of the core rows (Tables 5.3.2-2/-3): 19 for BG1; 8, 10, 8, 10 for BG2
    assert np.bincount(g1.row)[:4].tolist() == [19, 19, 19, 19]
    assert np.bincount(g2.row)[:4].tolist() == [8, 10, 8, 10]


def test_spot_values_independent_transcription():
    # iLS = 0 values from a third, independent transcription of the spec (C tables of another project)
    g1, g2 = base_graph(1), base_graph(2)
    row0 = g1.V[(g1.row == 0) & (g1.col < 22), 0].tolist()
    assert row0 == [250, 69, 226, 159, 100, 10, 59, 229, 110, 191, 9, 195, 23, 190, 35, 239, 31]
    assert g1.V[(g1.row == 1) & (g1.col < 22), 0].tolist()[:5] == [2, 239, 117, 124, 71]
    r0 = (g2.row == 0)
    assert g2.col[r0].tolist() == [0, 1, 2, 3, 6, 9, 10, 11]
    assert g2.V[r0, 0].tolist() == [9, 117, 204, 26, 189, 205, 0, 0]
    r1 = (g2.row == 1)
    assert g2.V[r1, 0].tolist() == [167, 166, 253, 125, 226, 156, 224, 252, 0, 0]
    # the iLS-dependent core shifts: BG1 row 1 col 22 is 105 for iLS 6; BG2 col 10 is 1/0 swapped for iLS 3, 7
    assert g1.V[(g1.row == 1) & (g1.col == 22)][0].tolist() == [0, 0, 0, 0, 0, 0, 105, 0]
    assert g2.V[(g2.row == 0) & (g2.col == 10)][0].tolist() == [0, 0, 0, 1, 0, 0, 0, 1]


def test_lifting_sets():
    assert len(LIFTING_SIZES) == 51 and LIFTING_SIZES[0] == 2 and LIFTING_SIZES[-1] == 384
    assert LIFTING_SETS[0] == (2, 4, 8, 16, 32, 64, 128, 256)
    assert LIFTING_SETS[1][-1] == 384 and LIFTING_SETS[7] == (15, 30, 60, 120, 240)
    assert set_index(384) == 1 and set_index(208) == 6 and set_index(13) == 6
    with pytest.raises(ValueError):
        set_index(17)


def _random_blocks(code, n, rng):
    return rng.integers(0, 2, (n, code.K)).astype(np.uint8)


@pytest.mark.parametrize("bg", [1, 2])
def test_codewords_satisfy_expanded_H_every_lifting_size(bg, rng):
    for z in LIFTING_SIZES:  # all 51, Zc <= 64 included
        code = lifted(bg, z)
        c = _random_blocks(code, 3, rng)
        x = encode_full(c, code)
        assert x.shape == (3, code.n_bits)
        assert np.array_equal(x[:, :code.K], c)  # systematic
        H = parity_check_matrix(code)
        assert H.shape == (code.m * z, code.n_bits) and H.nnz == code.nnz * z
        s = (H @ x.T.astype(np.int64)) % 2
        assert not s.any(), (bg, z)
        assert syndrome_ok(x, code).all()
        # a single flipped bit breaks the syndrome (checks that the test itself has teeth)
        y = x[0].copy()
        y[rng.integers(code.n_bits)] ^= 1
        assert not syndrome_ok(y, code)


@pytest.mark.parametrize("bg,z", [(1, 2), (1, 13), (1, 208), (1, 384), (2, 2), (2, 7), (2, 15), (2, 64),
                                  (2, 104), (2, 384)])
def test_numba_encoder_matches_numpy_reference_and_xor_count(bg, z, rng):
    code = lifted(bg, z)
    c = _random_blocks(code, 4, rng)
    x = encode_full(c, code)
    for w in range(4):
        xr, n_xor = encode_full_numpy(c[w], code)
        assert np.array_equal(xr, x[w])
        assert n_xor == encode_xors(code)
    for m_rows in (4, 10, code.m):
        xp = encode_full(c, code, m_rows=m_rows)
        assert np.array_equal(xp, x[:, :(code.kb + m_rows) * z])  # a prefix of the full codeword
        _, n_xor = encode_full_numpy(c[0], code, m_rows)
        assert n_xor == encode_xors(code, m_rows)


def test_encoder_is_linear_and_punctures_2z(rng):
    code = lifted(2, 36)
    c1, c2 = _random_blocks(code, 1, rng)[0], _random_blocks(code, 1, rng)[0]
    assert np.array_equal(encode_full(c1 ^ c2, code), encode_full(c1, code) ^ encode_full(c2, code))
    assert not encode_full(np.zeros(code.K, np.uint8), code).any()
    d = encode(c1, code)
    assert d.size == code.N == 50 * 36
    assert np.array_equal(d, encode_full(c1, code)[2 * 36:])


def test_xor_count_by_hand_bg1_z384():
    # systematic blocks per core row and extension-row degrees counted from the stored base graph
    code = lifted(1, 384)
    g = base_graph(1)
    sys_core = [int(((g.row == i) & (g.col < 22)).sum()) for i in range(4)]
    ext = int((g.row >= 4).sum()) - 2 * 42            # each extension row: (deg - 2) XORed blocks
    # p1 = lam0 + P p0 (1 XOR), p2 = lam1 + p1 + P p0 (2), p3 = lam2 + p2 (1)
    expected = 384 * (sum(s - 1 for s in sys_core) + 3 + 1 + 2 + 1 + ext)
    assert encode_xors(code) == expected


def test_bad_encoder_input():
    code = lifted(1, 8)
    with pytest.raises(ValueError):
        encode_full(np.zeros(code.K + 1, np.uint8), code)
    with pytest.raises(ValueError):
        encode_full(np.full(code.K, 2, np.uint8), code)
    with pytest.raises(ValueError):
        encode_full(np.zeros(code.K, np.uint8), code, m_rows=3)
    with pytest.raises(ValueError):
        lifted(3, 8)


def _to_csv(entries) -> str:
    """The stored entries written back in the source packages' CSV layout (row index on a row's first entry)."""
    lines = ["Row index;Column index;Set index ;;;;;;;", ";;0;1;2;3;4;5;6;7"]
    last = None
    for r, c, *v in entries:
        lines.append(";".join([str(r) if r != last else "", str(c)] + [str(x) for x in v]))
        last = r
    return "\r\n".join(lines)


def test_generator_reproduces_committed_module(tmp_path):
    import zipfile

    whl = tmp_path / "sionna_no_rt-2.2.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("sionna/phy/fec/ldpc/codes/5G_bg1.csv", _to_csv(basegraphs.BG1))
        zf.writestr("sionna/phy/fec/ldpc/codes/5G_bg2.csv", _to_csv(basegraphs.BG2))
    assert make_tables.main([str(whl), "--verify"]) == 0
    # a transcription that differs in one shift value is caught by --check
    other = tmp_path / "other"
    other.mkdir()
    bad = [list(e) for e in basegraphs.BG2]
    bad[7][5] ^= 1
    (other / "bg1.csv").write_text(_to_csv(basegraphs.BG1))
    (other / "bg2.csv").write_text(_to_csv(bad))
    assert make_tables.main([str(whl), "--check", str(other), "--verify"]) == 1


def test_generator_rejects_malformed_csv():
    text = _to_csv(basegraphs.BG2)
    with pytest.raises(ValueError):
        make_tables.parse_csv(text, 1)                               # BG2 data is not 316 entries
    with pytest.raises(ValueError):
        make_tables.parse_csv(text.replace("0;0;9;174;", "0;0;400;174;"), 2)  # shift out of range
    with pytest.raises(ValueError):
        make_tables.parse_csv("garbage\n1;2;3", 2)
