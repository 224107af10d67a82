# SPDX-License-Identifier: GPL-3.0-or-later
"""TB CRC, base-graph choice, code-block segmentation and E (TS 38.212 §7.2, §5.2.2, §5.4.2.1).

The expected numbers are worked out by hand from the spec's formulas (comments show the arithmetic).
"""

from __future__ import annotations

import numpy as np
import pytest

from infercom.nr import crc
from infercom.nr.segmentation import (
    attach_tb_crc, desegment, rate_match_lengths, round_up_tbs, segment, segmentable, select_base_graph,
    tb_crc_name, tb_params,
)


def test_base_graph_selection_boundaries():
    assert select_base_graph(292, 0.95) == 2          # A <= 292
    assert select_base_graph(293, 0.95) == 1
    assert select_base_graph(3824, 0.67) == 2         # A <= 3824 and R <= 0.67
    assert select_base_graph(3824, 0.68) == 1
    assert select_base_graph(3825, 0.5) == 1
    assert select_base_graph(100000, 0.25) == 2       # R <= 0.25
    assert select_base_graph(100000, 0.26) == 1
    with pytest.raises(ValueError):
        select_base_graph(100, 0.0)


def test_tb_crc_choice():
    assert tb_crc_name(3824) == "16" and tb_crc_name(3825) == "24A"


def test_tbs_8424_one_block_bg1():
    p = tb_params(8424, 0.5)
    # B = 8424 + 24 = 8448 <= Kcb = 8448 -> C = 1, no CB CRC; K' = 8448; 22 Zc >= 8448 -> Zc = 384
    assert (p.bg, p.L_tb, p.B, p.C, p.L_cb, p.Kp, p.Kb, p.Zc, p.ils, p.K, p.F) == \
        (1, 24, 8448, 1, 0, 8448, 22, 384, 1, 8448, 0)
    assert p.N == p.Ncb == 66 * 384
    assert p.G == 16848 and p.E == (16848,)           # G = 2 ceil(8424 / (0.5 * 2))


def test_several_code_blocks_bg1():
    p = tb_params(19968, 0.5)
    # B = 19992; C = ceil(19992 / 8424) = 3; B' = 19992 + 72 = 20064; K' = 6688
    # 22 Zc >= 6688 -> Zc >= 304 -> Zc = 320 (set 2: 5 * 2^6); K = 7040; F = 352
    assert (p.B, p.C, p.L_cb, p.Kp, p.Zc, p.ils, p.K, p.F) == (19992, 3, 24, 6688, 320, 2, 7040, 352)
    # G = 39936 -> G/Qm = 19968, divisible by 3: every E = 2 * 6656
    assert p.E == (13312, 13312, 13312)


def test_bg2_kb_rules():
    # A = 100 (BG2, CRC16): B = 116 <= 192 -> Kb = 6; 6 Zc >= 116 -> Zc = 20; K = 10 Zc = 200; F = 84
    p = tb_params(100, 0.3)
    assert (p.bg, p.L_tb, p.B, p.Kb, p.Zc, p.K, p.F, p.N) == (2, 16, 116, 6, 20, 200, 84, 1000)
    # A = 300: B = 316 in (192, 560] -> Kb = 8; 8 Zc >= 316 -> Zc = 40
    p = tb_params(300, 0.5)
    assert (p.bg, p.Kb, p.Zc, p.K, p.F) == (2, 8, 40, 400, 84)
    # A = 600: B = 616 in (560, 640] -> Kb = 9; 9 Zc >= 616 -> Zc >= 68.4 -> 72
    p = tb_params(600, 0.5)
    assert (p.bg, p.Kb, p.Zc, p.K, p.F) == (2, 9, 72, 720, 104)
    # A = 2000: B = 2016 > 640 -> Kb = 10; Zc >= 201.6 -> 208
    p = tb_params(2000, 0.5)
    assert (p.bg, p.Kb, p.Zc, p.K, p.F) == (2, 10, 208, 2080, 64)


def test_bg2_two_blocks():
    # A = 3832, R = 0.2: BG2; CRC24A; B = 3856 > 3840 -> C = ceil(3856 / 3816) = 2; B' = 3904; K' = 1952
    # Kb = 10 (B > 640); 10 Zc >= 1952 -> Zc = 208; K = 2080; F = 128
    p = tb_params(3832, 0.2)
    assert (p.bg, p.L_tb, p.C, p.Kp, p.Kb, p.Zc, p.K, p.F) == (2, 24, 2, 1952, 10, 208, 2080, 128)
    # TBS 3824 with CRC16 fills one BG2 block exactly: B = 3840, Zc = 384, no fillers
    p = tb_params(3824, 0.2)
    assert (p.bg, p.L_tb, p.C, p.Kp, p.Zc, p.F) == (2, 16, 1, 3840, 384, 0)


def test_non_segmentable_tbs():
    # A = 3825, R = 0.2: B = 3849, C = 2, B' = 3897 is odd -> no integer K'
    assert not segmentable(3825, 0.2)
    with pytest.raises(ValueError):
        tb_params(3825, 0.2)
    assert round_up_tbs(3825, 0.2) == 3826
    assert segmentable(3826, 0.2)


def test_rate_match_lengths():
    # G/Qm = 50, C = 3, mod(50, 3) = 2: the first 3 - 2 = 1 block gets 2*16, the others 2*17
    assert rate_match_lengths(100, 3, 2) == (32, 34, 34)
    assert rate_match_lengths(96, 3, 2) == (32, 32, 32)
    assert sum(rate_match_lengths(12346, 7, 2)) == 12346
    with pytest.raises(ValueError):
        rate_match_lengths(101, 3, 2)


@pytest.mark.parametrize("A,R", [(8424, 0.5), (19968, 0.5), (3832, 0.2), (100, 0.3), (24, 0.9)])
def test_segment_desegment_round_trip(A, R, rng):
    p = tb_params(A, R)
    a = rng.integers(0, 2, A).astype(np.uint8)
    b = attach_tb_crc(a)
    assert b.size == p.B and crc.check(b, p.tb_crc)
    c = segment(b, p)
    assert c.shape == (p.C, p.K)
    assert not c[:, p.Kp:].any()                      # filler bits are 0
    if p.C > 1:
        assert crc.check(c[:, :p.Kp], "24B").all()    # each block carries its CRC24B
    b2, ok = desegment(c, p)
    assert ok.all() and np.array_equal(b2, b)
    if p.C > 1:
        c[1, 5] ^= 1
        _, ok = desegment(c, p)
        assert ok.tolist() == [True, False] + [True] * (p.C - 2)
