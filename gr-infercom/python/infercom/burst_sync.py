# SPDX-License-Identifier: GPL-3.0-or-later
"""burst_sync: matched-filtered sample stream in -> one PDU per detected burst out.

The block is ``infercom.sync.BurstReceiver`` (the same object the link-level receiver uses) with a windowing
stage (``infercom.sync.BurstWindower``) that publishes each burst instead of demodulating it: detection, coarse
timing and CFO (``BurstDetector``, two-stage, CFO-robust, numba) and the header (fine timing, fine CFO,
channel and noise estimation, soft header decoding, header-aided refinement: ``demod_header``) are done here;
the decoded header says how long the burst is, so the window published is exactly the burst and the detector
skips the rest of it (it never scans payloads).  ``frame_demod`` then does the payload (pilot tracking,
equalisation) on that window with the header results carried in the PDU metadata.  A detection whose header
fails is published too (its header window, without header results: ``frame_demod`` counts it).
"""

from __future__ import annotations

import collections

import numpy as np
import pmt
from gnuradio import gr

from infercom.limits import MAX_FRAME_LEN_LOG2, MIN_FRAME_LEN_LOG2
from infercom.frame import FrameFormat
from infercom.header import header_bits
from infercom.sync import PRE_SAMPLES, BurstReceiver, BurstWindower, burst_window_len

from .tags import make_pdu

#: samples kept before the preamble's symbol-0 timing (``infercom.sync.PRE_SAMPLES``, from the interpolator)
PRE_MARGIN = PRE_SAMPLES


class burst_sync(gr.sync_block):
    """Detect InferCom bursts in a complex sample stream, decode their headers and publish each as a PDU.

    Parameters
    ----------
    sps : samples per symbol of the stream.
    beta, span : RRC roll-off and span (symbols) of the matched filter (used when ``prefiltered`` is False).
    prefiltered : True: the input is already matched-filtered with the causal unit-energy RRC filter
        (GNU Radio ``fir_filter_ccf(1, infercom.rrc_taps(sps, beta, span))``, or ``fft_filter_ccf`` with the
        same taps: equal up to float rounding, cheaper); False: filter here.
    max_frame_len_log2 : the largest frame the transmitters send (payload 2**n symbols); longer frames are
        counted as ``truncated`` (and ``too_long``) here and skipped.
    t1, t2 : detector thresholds (0 = the library defaults, ~1e-6 false alarms per position and stage).
    max_pending : detections waiting for their samples at most (more are dropped and counted).

    Output ``bursts``: PDUs with meta ``timing`` (fractional index of preamble symbol 0 inside the window,
    coarse), ``cfo`` (coarse, cycles/sample), ``m1``, ``m2`` (detector metrics), ``window_start`` and
    ``sample_index`` (absolute input-stream indices) and ``sps``; when the header decoded also
    ``header_bits`` (u8 vector: the 96 header info bits, ``infercom.header.parse_header_bits``) and the header
    results ``hr_timing`` (refined, window-relative), ``hr_cfo_sym`` (cycles/symbol), ``hr_phase0`` (rad),
    ``hr_h_abs``, ``hr_noise_var``, ``hr_snr_db``; vector: the matched-filtered window (complex64; exactly the
    burst, ``infercom.sync.burst_window_len`` samples, when the header decoded).
    """

    def __init__(self, sps: int = 2, beta: float = 0.35, span: int = 8, prefiltered: bool = True,
                 max_frame_len_log2: int = 15, t1: float = 0.0, t2: float = 0.0, max_pending: int = 64):
        gr.sync_block.__init__(self, name="infercom_burst_sync", in_sig=[np.complex64], out_sig=None)
        if not MIN_FRAME_LEN_LOG2 <= int(max_frame_len_log2) <= MAX_FRAME_LEN_LOG2:
            raise ValueError(f"burst_sync: max_frame_len_log2 must be {MIN_FRAME_LEN_LOG2}..{MAX_FRAME_LEN_LOG2}, "
                             f"got {max_frame_len_log2}")
        self.fmt = FrameFormat(sps=int(sps), beta=float(beta), span=int(span))
        self.sps = int(sps)
        self.max_frame_len_log2 = int(max_frame_len_log2)
        self.delay = self.fmt.span * self.sps   # matched-filter delay: burst start = timing - delay
        # the largest window published (a burst of the largest frame)
        big = FrameFormat(frame_len_log2=self.max_frame_len_log2, sps=self.sps)
        self.window = burst_window_len(PRE_SAMPLES + 1, big.frame_symbols(big.frame_len), self.sps)
        self.max_pending = int(max_pending)
        self.rx = BurstReceiver(self.fmt, self.sps, bool(prefiltered), float(t1) or None, float(t2) or None,
                                windower=self._windower)
        self.counters = collections.Counter()
        self._port = pmt.intern("bursts")
        self.message_port_register_out(self._port)
        self.set_output_multiple(1)

    def _windower(self) -> BurstWindower:
        return BurstWindower(self.fmt, self.max_frame_len_log2, emit_failures=True, sink=self._publish,
                             max_queue=self.max_pending)

    @property
    def detector(self):
        return self.rx.detector

    def idle(self) -> bool:
        """No detection waiting for samples (used to know the receiver drained)."""
        return not self.rx.demod.waiting

    def _publish(self, w) -> None:
        c, hr = w.candidate, w.header
        meta = {"timing": float(c.timing - w.start), "cfo": float(c.cfo), "m1": float(c.m1), "m2": float(c.m2),
                "window_start": int(w.start), "sps": self.sps}
        if hr.header is None:
            meta["sample_index"] = int(round(c.timing)) - self.delay
        else:
            meta["sample_index"] = int(round(hr.timing + w.start)) - self.delay
            # the decoded header as its 96 info bits (one PMT vector instead of 15 fields: less to convert on
            # both sides) and the header results frame_demod continues from
            meta.update(header_bits=header_bits(hr.header), hr_timing=float(hr.timing),
                        hr_cfo_sym=float(hr.cfo_sym), hr_phase0=float(hr.phase0), hr_h_abs=float(hr.h_abs),
                        hr_noise_var=float(hr.noise_var), hr_snr_db=float(hr.snr_db))
        self.counters["bursts"] += 1
        self.message_port_pub(self._port, make_pdu(meta, w.z))   # one copy: history -> PMT

    def work(self, input_items, output_items):
        x = input_items[0]
        self.rx.feed(x)
        c = self.counters
        for k, v in self.rx.detector.counters.items():
            c[f"detector_{k}"] = v
        for k, v in self.rx.demod.counters.items():   # windower: frames = complete bursts published
            c["windows" if k == "frames" else k] = v
        return len(x)
