# SPDX-License-Identifier: GPL-3.0-or-later
"""Streaming causal RRC matched filter (numba kernel + :class:`MatchedFilter`).

Input complex64 samples at ``sps`` samples per symbol; output float32 real / imaginary parts, same length and
absolute sample indexing as the input (causal: ``span * sps + 1`` taps, group delay ``span * sps / 2`` samples).
"""

from __future__ import annotations

import numba
import numpy as np

from ..channel import rrc_taps


@numba.njit(cache=True, nogil=True, fastmath=True)
def _fir_kernel(xr, xi, taps, outr, outi):
    """out[n] = sum_k taps[k] * x[n + k], n = 0 .. len(out)-1 (x carries len(taps)-1 samples of history)."""
    nt = taps.size
    for n in range(outr.size):
        ar = np.float32(0.0)
        ai = np.float32(0.0)
        for k in range(nt):
            ar += taps[k] * xr[n + k]
            ai += taps[k] * xi[n + k]
        outr[n] = ar
        outi[n] = ai


class MatchedFilter:
    """Streaming causal RRC matched filter (unit energy): ``z[m] = sum_k t[k] x[m-k]``, same length and
    absolute indexing as the input (the stream starts with zero history)."""

    def __init__(self, sps: int = 2, beta: float = 0.35, span: int = 8):
        self.taps = rrc_taps(sps, beta, span)[::-1].copy()
        self.ntaps = self.taps.size
        # persistent work buffers: [ntaps-1 samples of history | chunk] (no per-chunk concatenation)
        self._br = np.zeros(self.ntaps - 1 + (1 << 16), np.float32)
        self._bi = np.zeros(self.ntaps - 1 + (1 << 16), np.float32)

    def process(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Filter a chunk; returns (real, imag) float32 arrays of the matched-filtered chunk."""
        x = np.asarray(x, dtype=np.complex64)
        n, h = x.size, self.ntaps - 1
        outr = np.empty(n, np.float32)
        outi = np.empty(n, np.float32)
        if n:
            if self._br.size < h + n:
                br = np.zeros(h + n, np.float32)
                bi = np.zeros(h + n, np.float32)
                br[:h], bi[:h] = self._br[:h], self._bi[:h]
                self._br, self._bi = br, bi
            br, bi = self._br[: h + n], self._bi[: h + n]
            br[h:] = x.real
            bi[h:] = x.imag
            _fir_kernel(br, bi, self.taps, outr, outi)
            br[:h] = br[n: n + h].copy()
            bi[:h] = bi[n: n + h].copy()
        return outr, outi
