# SPDX-License-Identifier: GPL-3.0-or-later
"""frame_modulator: frame PDUs (symbols) -> a tagged stream of bursts.

Two output modes:

* ``sps = 1``: one sample per symbol; upsampling and pulse shaping are GNU Radio's: follow this block with
  ``filter.interp_fir_filter_ccf(sps, rrc_taps)`` (taps from ``infercom.channel.rrc_taps``) or a
  ``pfb_arb_resampler_ccf``.
* ``sps >= 2``: the block shapes each burst itself with the root-raised-cosine (``infercom.channel.pulse_shape``,
  the polyphase numba kernel the simulator uses, which releases the GIL) and outputs ``sps`` samples per symbol.
  The waveform equals ``interp_fir_filter_ccf(sps, rrc_taps(sps, beta, span))`` fed with the symbols and
  ``span`` extra zero symbols: every burst carries its filter's whole response, so bursts are self-contained
  (no ringing leaks into the next UHD burst).  GNU Radio's C++ interpolator runs ~67 Msps out on one core of
  the reference machine, which leaves little headroom for a 40 Msps TX chain on two cores; the kernel runs
  ~350 Msps, this block ~100 Msps with its Python overhead (``make bench``, suite gnuradio).

Each burst carries ``tx_sob`` on its first and ``tx_eob`` on its last item (UHD burst tags), a ``packet_len``
length tag (items) and an ``infercom_frame`` tag (tx_id, image_id, attempt, frame_idx) for channel helpers such
as ``block_fading``.
"""

from __future__ import annotations

import collections
import threading
import time

import numpy as np
import pmt
from gnuradio import gr

from infercom.channel import pulse_shape, rrc_taps

from .tags import EOB_TAG, FRAME_TAG, LEN_TAG, SOB_TAG, frame_key_pmt, parse_pdu

MAX_FRAME_SYMBOLS = 1 << 18
OUTPUT_BUFFER = 1 << 17   # items


class frame_modulator(gr.sync_block):
    """Serialise frame PDUs into a burst stream.

    Parameters
    ----------
    tail_symbols : zero symbols appended *inside* each burst (before ``tx_eob``).  With ``sps = 1`` they let the
        downstream pulse-shaping filter's tail go out with the burst (>= half the RRC span in symbols); with
        ``sps >= 2`` the filter's whole response is in the burst already and 0 is enough.
    gap_min, gap_max : idle time between bursts in continuous mode, in symbols: a gap of
        ``uniform{gap_min*sps, ..., gap_max*sps}`` zero samples precedes every burst (random burst start, to
        the sample); in burst mode no gap is produced.
    continuous : True: output zeros while no frame is queued (for channel simulation / ZeroMQ IQ, where the
        stream must keep flowing); False: output nothing while idle (for UHD bursts).
    max_queue : frames held at most; more are dropped with a log line and counted in ``dropped``.
    seed : seed of the gap generator.
    sps : output samples per symbol: 1 = symbols (shape downstream), >= 2 = RRC-shaped samples.
    beta, span : roll-off and span (symbols, even) of the root-raised-cosine used when ``sps >= 2``.

    Message ports: ``in`` (frame PDUs: meta with the FrameHeader fields, c32vector of symbols);
    ``sent`` (out): a dict (tx_id, image_id, attempt, frame_idx, offset) when a frame's last item was produced,
    used by ``tx_controller`` for flow control.
    """

    def __init__(self, tail_symbols: int = 4, gap_min: int = 64, gap_max: int = 256, continuous: bool = True,
                 max_queue: int = 4096, seed: int = 0, sps: int = 1, beta: float = 0.35, span: int = 8):
        gr.sync_block.__init__(self, name="infercom_frame_modulator", in_sig=None, out_sig=[np.complex64])
        if tail_symbols < 0 or gap_min < 0 or gap_max < gap_min:
            raise ValueError(f"frame_modulator: need tail_symbols >= 0 and 0 <= gap_min <= gap_max, got "
                             f"{tail_symbols}, {gap_min}, {gap_max}")
        if max_queue < 1:
            raise ValueError(f"frame_modulator: max_queue must be >= 1, got {max_queue}")
        if int(sps) != sps or not 1 <= int(sps) <= 64:
            raise ValueError(f"frame_modulator: sps must be an integer 1..64, got {sps}")
        self.sps = int(sps)
        # validated by rrc_taps (roll-off in (0, 1], even span >= 2) even when sps == 1, so a bad value fails early
        self.taps = rrc_taps(self.sps, float(beta), int(span))
        self.tail = int(tail_symbols)
        self.gap_min, self.gap_max = int(gap_min), int(gap_max)
        self.continuous = bool(continuous)
        self.max_queue = int(max_queue)
        self.rng = np.random.default_rng(int(seed))
        self._queue: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._cur: np.ndarray | None = None   # burst being output (symbols + tail), preceded by its gap
        self._cur_meta: dict = {}
        self._pos = 0                          # position inside [gap zeros | burst]
        self._gap = 0
        self.frames_in = 0
        self.frames_out = 0
        self.dropped = 0
        self.bad_pdus = 0
        self.idle_items = 0
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self._on_pdu)
        self.message_port_register_out(pmt.intern("sent"))
        # large output buffers: fewer scheduler wake-ups per sample (they dominate on a loaded machine)
        self.set_min_output_buffer(OUTPUT_BUFFER)

    # -- message handling -----------------------------------------------------------------------------------
    def _on_pdu(self, msg) -> None:
        try:
            meta, sym = parse_pdu(msg, np.complex64)
            if sym.size == 0 or sym.size > MAX_FRAME_SYMBOLS:
                raise ValueError(f"frame of {sym.size} symbols (need 1..{MAX_FRAME_SYMBOLS})")
            if not np.all(np.isfinite(sym)):
                raise ValueError("frame symbols contain NaN or inf")
        except ValueError as exc:
            self.bad_pdus += 1
            self.logger.warn(f"frame_modulator: dropped a bad PDU ({exc}); {self.bad_pdus} so far")
            return
        with self._lock:
            if len(self._queue) >= self.max_queue:
                self.dropped += 1
                self.logger.warn(f"frame_modulator: queue full ({self.max_queue} frames), dropped a frame; "
                                 f"{self.dropped} so far")
                return
            self._queue.append((meta, sym))
            self.frames_in += 1

    def queued(self) -> int:
        """Frames waiting (not counting the one being output)."""
        with self._lock:
            return len(self._queue)

    def _next_burst(self) -> bool:
        with self._lock:
            if not self._queue:
                return False
            meta, sym = self._queue.popleft()
        if self.tail:
            padded = np.zeros(sym.size + self.tail, np.complex64)
            padded[: sym.size] = sym
            sym = padded
        burst = pulse_shape(sym, self.sps, self.taps) if self.sps > 1 else sym
        self._cur, self._cur_meta, self._pos = burst, meta, 0
        self._gap = (int(self.rng.integers(self.gap_min * self.sps, self.gap_max * self.sps + 1))
                     if self.continuous else 0)
        return True

    # -- stream ---------------------------------------------------------------------------------------------
    def work(self, input_items, output_items):
        out = output_items[0]
        n = len(out)
        k = 0
        base = self.nitems_written(0)
        while k < n:
            if self._cur is None and not self._next_burst():
                if not self.continuous:
                    if k == 0:
                        time.sleep(0.001)  # idle in burst mode: nothing to send
                    break
                out[k:n] = 0
                self.idle_items += n - k
                k = n
                break
            total = self._gap + self._cur.size
            take = min(n - k, total - self._pos)
            # gap zeros first, then the burst
            gap_left = max(self._gap - self._pos, 0)
            gz = min(gap_left, take)
            if gz:
                out[k:k + gz] = 0
            bstart = self._pos + gz - self._gap
            nb = take - gz
            if nb:
                if bstart == 0:
                    self._tag_start(base + k + gz)
                out[k + gz:k + take] = self._cur[bstart:bstart + nb]
            k += take
            self._pos += take
            if self._pos == total:
                end = base + k - 1
                self.add_item_tag(0, end, pmt.intern(EOB_TAG), pmt.PMT_T)
                self.frames_out += 1
                m = self._cur_meta
                sent = {key: int(m[key]) for key in ("tx_id", "image_id", "attempt", "frame_idx") if key in m}
                sent["offset"] = int(end)
                self.message_port_pub(pmt.intern("sent"), pmt.to_pmt(sent))
                self._cur = None
        return k

    def _tag_start(self, offset: int) -> None:
        self.add_item_tag(0, offset, pmt.intern(SOB_TAG), pmt.PMT_T)
        self.add_item_tag(0, offset, pmt.intern(LEN_TAG), pmt.from_long(int(self._cur.size)))
        m = self._cur_meta
        if all(k in m for k in ("tx_id", "image_id", "attempt", "frame_idx")):
            self.add_item_tag(0, offset, pmt.intern(FRAME_TAG), frame_key_pmt(m))
