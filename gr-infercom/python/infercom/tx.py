# SPDX-License-Identifier: GPL-3.0-or-later
"""tx: the InferCom transmitter as one hierarchical block (GRC ``infercom_tx``).

``tx_controller`` (images -> frame PDUs, ARQ) -> ``frame_modulator`` shaping every burst with the RRC pulse
itself (``sps >= 2``), its ``sent`` reports fed back to the controller for flow control.  ``infercom tx``,
``infercom loopback`` and every transmitter in grc/ are built from this block, so the chain is wired once.
"""

from __future__ import annotations

from gnuradio import gr




class tx(gr.hier_block2):
    """The InferCom transmit chain: TX controller -> frame modulator (RRC-shaped bursts).

    Parameters (keyword; the defaults are the sub-blocks', except ``sps`` 2 and ``tail_symbols`` 0)
    ----------
    images, tx_id, bh, bw, planes, profile, design_snr_db, key_id, frame_len_log2, use_feedback,
    blind_attempts, max_attempts, timeout_s, window, max_in_flight, first_image_id, max_images, system,
    nr_code_rate, nr_harq, nr_budget : ``tx_controller``'s (images, link configuration, ARQ, NR baseline).
    sps, beta, span : samples per symbol (2..64: the modulator shapes the bursts itself; for 1 sample/symbol and
        an external filter wire ``tx_controller`` and ``frame_modulator`` separately), RRC roll-off and span.
    gap_min, gap_max, continuous, tail_symbols, max_queue, seed : ``frame_modulator``'s (idle gaps in symbols,
        zeros while idle or nothing (UHD bursts), zero symbols appended per burst, queue bound, gap seed).

    Ports: message in ``feedback`` (the server's feedback dicts, from a ``server_link``); stream out (complex,
    ``sps`` samples/symbol, bursts tagged ``tx_sob``/``tx_eob``/``packet_len``/``infercom_frame``); message out
    ``status`` (``tx_controller``'s per-attempt and per-image events).

    Attributes: the sub-blocks ``ctl`` (``tx_controller``: ``finished``, ``records``, ``counters``) and ``mod``.
    """

    def __init__(self, images="", tx_id: int = 0, bh: int = 3, bw: int = 3, planes: int = 8,
                 profile: str = "importance", design_snr_db: int = -4, key_id: int = 0, frame_len_log2: int = 15,
                 use_feedback: bool = True, blind_attempts: int = 1, max_attempts: int = 4, timeout_s: float = 5.0,
                 window: int = 1, max_in_flight: int = 8, first_image_id: int = 0, max_images: int = 0,
                 system: str = "infercom", nr_code_rate: str = "1/3", nr_harq: str = "ir",
                 nr_budget: str = "channel-uses", sps: int = 2, beta: float = 0.35, span: int = 8,
                 gap_min: int = 64, gap_max: int = 256, continuous: bool = True, tail_symbols: int = 0,
                 max_queue: int = 4096, seed: int = 0):
        gr.hier_block2.__init__(self, "infercom_tx", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        from . import block_class

        frame_modulator, tx_controller = block_class("frame_modulator"), block_class("tx_controller")
        if int(sps) != sps or not 2 <= int(sps) <= 64:
            raise ValueError(f"tx: sps must be an integer 2..64 (the modulator shapes the bursts), got {sps}")
        self.ctl = tx_controller(images=images, tx_id=tx_id, bh=bh, bw=bw, planes=planes, profile=profile,
                                 design_snr_db=design_snr_db, key_id=key_id, frame_len_log2=frame_len_log2,
                                 use_feedback=use_feedback, blind_attempts=blind_attempts,
                                 max_attempts=max_attempts, timeout_s=timeout_s, window=window,
                                 max_in_flight=max_in_flight, first_image_id=first_image_id,
                                 max_images=max_images, system=system, nr_code_rate=nr_code_rate,
                                 nr_harq=nr_harq, nr_budget=nr_budget)
        self.mod = frame_modulator(tail_symbols=tail_symbols, gap_min=gap_min, gap_max=gap_max,
                                   continuous=continuous, max_queue=max_queue, seed=seed, sps=int(sps),
                                   beta=beta, span=span)
        self.message_port_register_hier_in("feedback")
        self.message_port_register_hier_out("status")
        self.msg_connect(self.ctl, "frames", self.mod, "in")
        self.msg_connect(self.mod, "sent", self.ctl, "sent")
        self.msg_connect(self, "feedback", self.ctl, "feedback")
        self.msg_connect(self.ctl, "status", self, "status")
        self.connect(self.mod, self)

    @property
    def finished(self):
        """``threading.Event`` set when every image ended (ACK, FAIL or all blind attempts sent)."""
        return self.ctl.finished
