# SPDX-License-Identifier: GPL-3.0-or-later
"""frame_demod: burst PDU (matched-filtered window from ``burst_sync``) -> equalised soft-symbol PDU.

``burst_sync`` has decoded the header (its results travel in the PDU metadata: ``header_bits`` -- or the
FrameHeader fields -- and ``hr_*``); this block does the payload: pilot phase tracking and equalisation
(``infercom.sync.demod_payload``), ``y = x + n`` with ``noise_var = N0/|h|^2``, as docs/internals.md defines
soft symbols -- the same call on the same window as ``infercom.sync.BurstReceiver``, so both give identical soft
symbols.  A burst PDU without header results (a failed header, or another producer's window) gets the whole
chain here: fine timing, fine CFO, channel and noise estimation, soft header decoding
(``infercom.sync.demod_header``), then the payload.  Window margins: ``infercom.sync.PRE_SAMPLES``,
``header_window_len``, ``burst_window_len``.
"""

from __future__ import annotations

import collections

import numpy as np
import pmt
from gnuradio import gr

from infercom.frame import FrameFormat
from infercom.header import parse_header_bits
from infercom.sync import (
    PRE_SAMPLES,
    HeaderResult,
    burst_window_len,
    busy_until,
    demod_header,
    header_window_len,
)
from infercom.sync.demod import demod_payload_scalar_nv

from . import pmtvec
from .tags import header_to_meta, make_pdu, meta_from_pmt, meta_to_header


class frame_demod(gr.basic_block):
    """Decode the header and equalise the payload of each burst PDU.

    Parameters
    ----------
    sps, beta, span : samples per symbol, RRC roll-off and span of the stream burst_sync saw.

    Input ``in``: burst PDUs of ``burst_sync``.  Output ``out``: soft PDUs — meta: the FrameHeader fields,
    ``noise_var`` (float, per equalised symbol), ``snr_db`` (measured Es/N0 from the 4032 known symbols),
    ``cfo`` (cycles/sample), ``h_re``/``h_im`` (channel estimate), ``sample_index``, ``metric``; vector: the
    complex64 payload data symbols (pilots removed).  Counters: frames, header_fail, truncated,
    overlap_skipped, bad_pdus.
    """

    def __init__(self, sps: int = 2, beta: float = 0.35, span: int = 8):
        gr.basic_block.__init__(self, name="infercom_frame_demod", in_sig=None, out_sig=None)
        self.sps = int(sps)
        self.beta, self.span = float(beta), int(span)
        self._fmts: dict[int, FrameFormat] = {}
        self._busy_until = -np.inf   # absolute matched-filter index where the last decoded burst ends
        self.counters = collections.Counter()
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self._on_burst)
        self._out = pmt.intern("out")
        self.message_port_register_out(self._out)

    def _fmt(self, frame_len_log2: int) -> FrameFormat:
        f = self._fmts.get(frame_len_log2)
        if f is None:
            f = self._fmts[frame_len_log2] = FrameFormat(frame_len_log2=frame_len_log2, sps=self.sps,
                                                         beta=self.beta, span=self.span)
        return f

    def _on_burst(self, msg) -> None:
        try:
            if not pmt.is_pair(msg):
                raise ValueError("not a PDU (expected a pair of metadata dict and vector)")
            meta = meta_from_pmt(pmt.car(msg))
            # a view of the PDU's samples (msg outlives this handler's use of it; nothing keeps a view of it)
            z = pmtvec.view_pmt(pmt.cdr(msg), np.complex64)
            timing = float(meta["timing"])
            cfo = float(meta["cfo"])
            start = int(meta["window_start"])
            if int(meta.get("sps", self.sps)) != self.sps:
                raise ValueError(f"burst at {meta['sps']} samples/symbol, block set to {self.sps}")
            if not (0 <= timing < z.size and np.isfinite(cfo)):
                raise ValueError(f"timing {timing} outside the window of {z.size} samples or bad CFO")
        except (ValueError, KeyError, TypeError) as exc:
            self.counters["bad_pdus"] += 1
            self.logger.warn(f"frame_demod: dropped a bad burst PDU ({exc}); {self.counters['bad_pdus']} so far")
            return
        if start + timing < self._busy_until:
            self.counters["overlap_skipped"] += 1     # a detection inside a burst already decoded
            return
        base = self._fmt(15)
        if "hr_timing" in meta:   # header decoded by burst_sync
            try:
                h = parse_header_bits(np.asarray(meta["header_bits"], np.uint8)) if "header_bits" in meta \
                    else meta_to_header(meta)
                if h is None:
                    raise ValueError("header_bits do not form a valid header")
                hr = HeaderResult(h, float(meta["hr_cfo_sym"]), float(meta["hr_phase0"]), float(meta["hr_h_abs"]),
                                  float(meta["hr_noise_var"]), float(meta["hr_snr_db"]), float(meta["hr_timing"]))
            except (ValueError, KeyError, TypeError) as exc:
                self.counters["bad_pdus"] += 1
                self.logger.warn(f"frame_demod: dropped a burst PDU with bad header results ({exc})")
                return
            zr = zi = None
        else:
            if timing < PRE_SAMPLES or header_window_len(timing, base) > z.size:
                self.counters["truncated"] += 1
                self.logger.warn(f"frame_demod: burst window of {z.size} samples (preamble at {timing:.1f}) is "
                                 f"too short for the header")
                return
            zr, zi = z.real, z.imag   # strided views, as BurstReceiver's (no copies)
            hr = demod_header(zr, zi, timing, cfo, base)
            if hr.header is None:
                self.counters["header_fail"] += 1
                return
            h = hr.header
        fmt = self._fmt(h.frame_len_log2)
        n_sym = fmt.frame_symbols(h.payload_len())
        need = burst_window_len(hr.timing, n_sym, self.sps)
        if hr.timing < PRE_SAMPLES or need > z.size:
            self.counters["truncated"] += 1
            self.logger.warn(f"frame_demod: burst of frame {h.frame_idx} (image {h.image_id}) needs {need} samples, "
                             f"window has {z.size}: raise burst_sync's max_frame_len_log2 to "
                             f">= {h.frame_len_log2}")
            return
        if zr is None:
            zr, zi = z.real[:need], z.imag[:need]
        y, nv = demod_payload_scalar_nv(zr, zi, hr, fmt)
        self._busy_until = busy_until(start + hr.timing, n_sym, self.sps)
        self.counters["frames"] += 1
        hh = complex(hr.h_abs * np.exp(1j * hr.phase0))
        out = header_to_meta(h)
        out.update(noise_var=nv, snr_db=float(hr.snr_db), cfo=float(hr.cfo_sym / self.sps), h_re=hh.real,
                   h_im=hh.imag, sample_index=int(meta.get("sample_index", -1)), metric=float(meta.get("m2", 0.0)))
        self.message_port_pub(self._out, make_pdu(out, y))
