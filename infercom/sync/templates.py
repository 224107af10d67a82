# SPDX-License-Identifier: GPL-3.0-or-later
"""Known preamble templates shared by the detector, the demodulator and the references.

Geometry in symbols: the preamble is ``S`` = 64 segments of ``L`` = 16 symbols (``NP`` = 1024 symbols).
``_U``: the Frank-16 segment (complex, unit-modulus symbols); ``_E``: the differential cover ``e_s`` (float32,
+-1, length ``S - 1``); ``_PRE``: the whole preamble (complex64, unit power), ``_PRE_C`` its conjugate and
``_PRE_C_R`` / ``_PRE_C_I`` the float32 real / imaginary parts of that (contiguous, for the numba kernels).
"""

from __future__ import annotations

import numpy as np

from .. import preamble as pre

L = pre.SEG_LEN
S = pre.N_SEG
NP = pre.PREAMBLE_LEN
_U = pre.frank16()
_E = pre.diff_cover().astype(np.float32)
_PRE = pre.preamble()
_PRE_C = np.conj(_PRE)
_PRE_C_R = np.ascontiguousarray(_PRE_C.real)
_PRE_C_I = np.ascontiguousarray(_PRE_C.imag)
