# SPDX-License-Identifier: GPL-3.0-or-later
"""rx: the InferCom receiver as one hierarchical block (GRC ``infercom_rx``).

Complex samples at ``sps`` samples/symbol in -> RRC matched filter (GNU Radio's ``fft_filter_ccf`` with
``infercom.rrc_taps(sps, beta, span)``) -> ``burst_sync`` -> ``frame_demod`` -> ``chase_combiner``, and with a
``server_addr`` a ``server_link`` that sends the per-attempt soft frames to the inference server and feeds its
ACK/NACK back to the Chase combiner.  ``infercom rx``, ``infercom loopback`` and every receiver in grc/ are
built from this block, so the chain is wired once.
"""

from __future__ import annotations

from gnuradio import filter, gr


class rx(gr.hier_block2):
    """The InferCom receive chain: matched filter, burst sync, frame demod, Chase combiner [, server link].

    Parameters (keyword; the defaults are the sub-blocks')
    ----------
    sps, beta, span : samples per symbol of the input and the RRC roll-off / span (symbols) of the matched
        filter; must match the transmitter's.
    max_frame_len_log2 : the largest frame any transmitter sends (payload 2**n symbols), ``burst_sync``'s window.
    t1, t2, max_pending : ``burst_sync``'s detector thresholds (0 = library defaults) and detection queue bound.
    max_frames, timeout_s : ``chase_combiner``'s bounds (frames held, seconds after the last update).
    server_addr : the inference server's soft-frame address, e.g. ``tcp://127.0.0.1:5555``; empty (default):
        no ``server_link``, the frames only leave on the ``frames`` / ``combined`` ports.
    feedback_addr, tx_ids, hwm, curve_server_key, curve_key : ``server_link``'s (need ``server_addr``).

    Ports: stream in (complex, raw samples, not matched-filtered); message in ``feedback`` (feedback dicts for
    the Chase combiner, when the server link is outside this block); message out ``frames`` (soft PDUs of every
    attempt, ``frame_demod``'s), ``combined`` (Chase-combined PDUs, ``chase_combiner``'s) and ``feedback`` (the
    server's feedback, from the inner ``server_link``; nothing without ``server_addr``).

    Attributes: the sub-blocks ``mf``, ``sync``, ``demod``, ``chase``, ``link`` (None without a server).
    """

    def __init__(self, sps: int = 2, beta: float = 0.35, span: int = 8, max_frame_len_log2: int = 15,
                 t1: float = 0.0, t2: float = 0.0, max_pending: int = 64, max_frames: int = 4096,
                 timeout_s: float = 60.0, server_addr: str = "", feedback_addr: str = "", tx_ids=(),
                 hwm: int = 1000, curve_server_key: str = "", curve_key: str = ""):
        gr.hier_block2.__init__(self, "infercom_rx", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(0, 0, 0))
        from infercom.channel import rrc_taps

        from . import block_class

        burst_sync, chase_combiner, frame_demod = (block_class(b) for b in ("burst_sync", "chase_combiner",
                                                                            "frame_demod"))
        if not server_addr and (feedback_addr or curve_server_key or curve_key):
            raise ValueError("rx: feedback_addr, curve_server_key and curve_key need a server_addr")
        self.sps, self.beta, self.span = int(sps), float(beta), int(span)
        self.mf = filter.fft_filter_ccf(1, rrc_taps(self.sps, self.beta, self.span).tolist())
        self.mf.set_min_output_buffer(1 << 16)     # fewer scheduler wake-ups per sample
        self.sync = burst_sync(sps=self.sps, beta=self.beta, span=self.span, prefiltered=True,
                               max_frame_len_log2=max_frame_len_log2, t1=t1, t2=t2, max_pending=max_pending)
        self.demod = frame_demod(sps=self.sps, beta=self.beta, span=self.span)
        self.chase = chase_combiner(max_frames=max_frames, timeout_s=timeout_s)
        for port in ("frames", "combined", "feedback"):
            self.message_port_register_hier_out(port)
        self.message_port_register_hier_in("feedback")
        self.connect(self, self.mf, self.sync)
        self.msg_connect(self.sync, "bursts", self.demod, "in")
        self.msg_connect(self.demod, "out", self.chase, "in")
        self.msg_connect(self.demod, "out", self, "frames")
        self.msg_connect(self.chase, "out", self, "combined")
        self.msg_connect(self, "feedback", self.chase, "feedback")
        self.link = None
        if server_addr:
            server_link = block_class("server_link")

            self.link = server_link(server_addr=server_addr, feedback_addr=feedback_addr, tx_ids=list(tx_ids),
                                    hwm=hwm, curve_server_key=curve_server_key, curve_key=curve_key)
            self.msg_connect(self.demod, "out", self.link, "in")
            self.msg_connect(self.link, "feedback", self.chase, "feedback")
            self.msg_connect(self.link, "feedback", self, "feedback")

    def samples(self) -> int:
        """Samples the receiver has consumed so far (``burst_sync``'s input)."""
        return int(self.sync.nitems_read(0))

    def counters(self) -> dict:
        """Every sub-block's counters (plain dicts), as ``infercom rx`` prints them."""
        out = {"samples": self.samples(), "sync": dict(self.sync.counters), "demod": dict(self.demod.counters),
               "chase": dict(self.chase.counters), "chase_held_frames": self.chase.held_frames()}
        if self.link is not None:
            out["server_link"] = dict(self.link.counters)
        return out

    def settled(self) -> bool:
        """No detection waiting for samples and every burst handled by ``frame_demod`` and ``chase_combiner``
        (the message queues between them drained); with a finished input, the receiver's output is complete."""
        d, c = self.demod.counters, self.chase.counters
        handled = sum(d[k] for k in ("frames", "header_fail", "truncated", "overlap_skipped", "bad_pdus"))
        combined = c["combined"] + c["bad_pdus"] + c["duplicates"] + c["late"]
        return self.sync.idle() and handled >= self.sync.counters["bursts"] and combined >= d["frames"]

