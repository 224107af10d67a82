# SPDX-License-Identifier: GPL-3.0-or-later
"""burst_sync: matched-filtered sample stream in -> one PDU per detected burst out.

Detection, coarse timing and coarse CFO are ``infercom.sync.BurstDetector``'s (two-stage, CFO-robust preamble
correlator, numba).  This block keeps a bounded history of the stream and, for every detection, cuts the
window a whole frame can occupy (``max_frame_len_log2``) starting just before the preamble, and publishes it
with the detection results.  ``frame_demod`` then does the fine estimation (timing, CFO, channel, noise),
header decoding, pilot tracking and equalisation on that window.
"""

from __future__ import annotations

import collections
import math

import numpy as np
import pmt
from gnuradio import gr

from infercom.frame import FrameFormat
from infercom.sync import BurstDetector, MatchedFilter, header_len_samples

from .tags import make_pdu

#: samples kept before the preamble's symbol-0 timing (fine-timing search + interpolator half-widths)
PRE_MARGIN = 48
POST_MARGIN = 48


class burst_sync(gr.sync_block):
    """Detect InferCom bursts in a complex sample stream and publish each as a PDU.

    Parameters
    ----------
    sps : samples per symbol of the stream.
    beta, span : RRC roll-off and span (symbols) of the matched filter (used when ``prefiltered`` is False).
    prefiltered : True: the input is already matched-filtered with the causal unit-energy RRC filter
        (GNU Radio ``fir_filter_ccf(1, infercom.rrc_taps(sps, beta, span))``, or ``fft_filter_ccf`` with the
        same taps: equal up to float rounding, cheaper); False: filter here.
    max_frame_len_log2 : the largest frame the transmitters send (payload 2**n symbols); sets the window cut
        per burst (longer frames are reported truncated by ``frame_demod``).
    t1, t2 : detector thresholds (0 = the library defaults, ~1e-6 false alarms per position and stage).
    max_pending : detections waiting for their samples at most (more are dropped and counted).

    Output ``bursts``: PDUs with meta ``timing`` (fractional index of preamble symbol 0 inside the window),
    ``cfo`` (coarse, cycles/sample), ``m1``, ``m2`` (detector metrics), ``window_start`` and
    ``sample_index`` (absolute input-stream indices) and ``sps``; vector: the matched-filtered window.
    """

    def __init__(self, sps: int = 2, beta: float = 0.35, span: int = 8, prefiltered: bool = True,
                 max_frame_len_log2: int = 15, t1: float = 0.0, t2: float = 0.0, max_pending: int = 64):
        gr.sync_block.__init__(self, name="infercom_burst_sync", in_sig=[np.complex64], out_sig=None)
        if not 4 <= int(max_frame_len_log2) <= 16:
            raise ValueError(f"burst_sync: max_frame_len_log2 must be 4..16, got {max_frame_len_log2}")
        self.fmt = FrameFormat(frame_len_log2=int(max_frame_len_log2), sps=int(sps), beta=float(beta),
                               span=int(span))
        self.sps = int(sps)
        self.mf = None if prefiltered else MatchedFilter(self.sps, self.fmt.beta, self.fmt.span)
        self.delay = self.fmt.span * self.sps   # matched-filter delay: burst start = timing - delay
        self.detector = BurstDetector(self.sps, float(t1) or None, float(t2) or None)
        # a short frame still needs the header region (header + two pilot blocks) for header decoding
        self.window = max(self.fmt.burst_len_samples(1 << int(max_frame_len_log2)),
                          header_len_samples(self.fmt)) + PRE_MARGIN + POST_MARGIN
        self.max_pending = int(max_pending)
        # history: a candidate is confirmed up to min_chunk + look-ahead samples after its preamble arrived
        self._hist = self.window + self.detector.min_chunk + self.detector.la + PRE_MARGIN
        self._cap = 2 * self._hist + (1 << 17)
        self._buf = np.zeros(self._cap, np.complex64)
        self._n = 0
        self._base = 0                          # absolute index of _buf[0]
        self._pending: collections.deque = collections.deque()
        self.counters = collections.Counter()
        self.message_port_register_out(pmt.intern("bursts"))
        self.set_output_multiple(1)

    def idle(self) -> bool:
        """No detection waiting for samples (used to know the receiver drained)."""
        return not self._pending

    def _append(self, x: np.ndarray) -> None:
        if self._n + x.size > self._cap:
            end = self._base + self._n
            keep = end - self._hist
            if self._pending:
                keep = min(keep, int(math.floor(self._pending[0].timing)) - PRE_MARGIN)
            keep = max(keep, self._base)
            if self._n - (keep - self._base) + x.size > self._cap:   # cannot happen with bounded chunks
                keep = end + x.size - self._cap
            k = keep - self._base
            self._buf[: self._n - k] = self._buf[k: self._n]
            self._n -= k
            self._base = keep
        self._buf[self._n: self._n + x.size] = x
        self._n += x.size

    def _emit_ready(self) -> None:
        end = self._base + self._n
        while self._pending:
            c = self._pending[0]
            lo = int(math.floor(c.timing)) - PRE_MARGIN
            if lo < self._base:
                self._pending.popleft()
                self.counters["dropped_candidates"] += 1
                continue
            if lo + self.window > end:
                return
            self._pending.popleft()
            a = lo - self._base
            meta = {"timing": float(c.timing - lo), "cfo": float(c.cfo), "m1": float(c.m1), "m2": float(c.m2),
                    "window_start": int(lo), "sample_index": int(round(c.timing)) - self.delay,
                    "sps": self.sps}
            self.counters["bursts"] += 1
            self.message_port_pub(pmt.intern("bursts"), make_pdu(meta, self._buf[a:a + self.window]))

    def work(self, input_items, output_items):
        x = input_items[0]
        # bounded chunks keep the history buffer bounded whatever the scheduler hands us
        step = 1 << 16
        for i in range(0, len(x), step):
            xi = x[i:i + step]
            # one reduction instead of an element-wise test: NaN/inf propagate into the sum
            if not np.isfinite(np.sum(xi.view(np.float32))):
                self.counters["nonfinite_chunks"] += 1
                xi = np.nan_to_num(xi, nan=0.0, posinf=0.0, neginf=0.0)
            if self.mf is not None:
                zr, zi = self.mf.process(xi)
                z = np.empty(zr.size, np.complex64)
                z.real, z.imag = zr, zi
            else:
                z = np.asarray(xi, np.complex64)
                zr, zi = np.ascontiguousarray(z.real), np.ascontiguousarray(z.imag)
            self._append(z)
            for c in self.detector.feed(zr, zi):
                if len(self._pending) >= self.max_pending:
                    self.counters["pending_overflow"] += 1
                    continue
                self._pending.append(c)
            self._emit_ready()
        for k, v in self.detector.counters.items():
            self.counters[f"detector_{k}"] = v
        return len(x)
