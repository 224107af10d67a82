# SPDX-License-Identifier: GPL-3.0-or-later
"""block_fading: block Rayleigh fading with one coefficient per frame or per image transmission.

GNU Radio's ``channels`` blocks fade continuously (Jakes/flat fader); the InferCom papers use *block* fading:
one CN(0, 1) coefficient held over a frame or over a whole image, with results reported against the
instantaneous SNR.  This block multiplies its input by such a coefficient and switches to a new one at burst
boundaries given by stream tags (``tx_sob`` as written by ``frame_modulator``), drawing coefficients with
``infercom.channel.rayleigh_coeffs`` from a seeded generator and the symbol-level channel's deep-fade floor
(``infercom.channel.floor_gain``: ``|h|^2 >= GAIN_FLOOR``, -60 dB).  ``mode`` is the coherence vocabulary of
``infercom.channel.FADING_PER``.
"""

from __future__ import annotations

import math

import numpy as np
import pmt
from gnuradio import gr

from infercom.channel import FADING_PER, floor_gain, rayleigh_coeffs
from infercom.channel import block_fading as apply_block_fading

from .tags import FRAME_TAG, SOB_TAG, frame_key_from_pmt

MODES = FADING_PER        # ("image", "frame")


class block_fading(gr.sync_block):
    """Multiply the stream by a block-constant Rayleigh coefficient (E|h|^2 = 1).

    Parameters
    ----------
    mode : "image" (default) draws a new coefficient only when the frame tag (``infercom_frame``: tx_id,
        image_id, attempt) names a different image transmission; "frame" at every ``tx_sob`` tag.
    snr_db : nominal Es/N0 in dB of the AWGN added after this block; only used to report the instantaneous
        SNR ``snr_db + 20*log10(|h|)``.
    seed : seed of the ``numpy.random.Generator`` the coefficients are drawn from.

    Output: the faded stream (tags pass through, plus an ``infercom_fading`` tag with ``h`` where a new
    coefficient starts) and, on message port ``snr``, one dict per coefficient: ``h_re``, ``h_im``,
    ``gain_db``, ``snr_db`` (instantaneous) and the frame key fields when known.
    """

    def __init__(self, mode: str = "image", snr_db: float = 0.0, seed: int = 0):
        gr.sync_block.__init__(self, name="infercom_block_fading", in_sig=[np.complex64], out_sig=[np.complex64])
        if mode not in MODES:
            raise ValueError(f"block_fading: mode must be one of {MODES}, got {mode!r}")
        if not math.isfinite(float(snr_db)):
            raise ValueError(f"block_fading: snr_db must be finite, got {snr_db!r}")
        self.mode = mode
        self.snr_db = float(snr_db)
        self.rng = np.random.default_rng(int(seed))
        self.h = self._draw()
        self._image_key = None
        self.n_coeffs = 1
        self.bad_chunks = 0
        self.history_h: list[complex] = [self.h]  # bounded below
        self.max_history = 4096
        self.message_port_register_out(pmt.intern("snr"))

    # -- helpers ----------------------------------------------------------------------------------------
    def _draw(self) -> complex:
        return complex(floor_gain(rayleigh_coeffs(1, self.rng))[0])

    def _new_coeff(self, offset: int, key: dict | None) -> None:
        self.h = self._draw()
        self.n_coeffs += 1
        self.history_h.append(self.h)
        if len(self.history_h) > self.max_history:
            del self.history_h[: len(self.history_h) - self.max_history]
        gain_db = 20.0 * math.log10(max(abs(self.h), 1e-30))
        report = {"h_re": self.h.real, "h_im": self.h.imag, "gain_db": gain_db,
                  "snr_db": self.snr_db + gain_db, "offset": int(offset)}
        if key:
            report.update(key)
        self.add_item_tag(0, offset, pmt.intern("infercom_fading"), pmt.from_complex(self.h))
        self.message_port_pub(pmt.intern("snr"), pmt.to_pmt(report))

    def _boundaries(self, start: int, n: int) -> list[tuple[int, dict | None]]:
        """Absolute offsets inside [start, start+n) where a new coefficient begins."""
        sob = {t.offset for t in self.get_tags_in_window(0, 0, n, pmt.intern(SOB_TAG))}
        frames = {t.offset: frame_key_from_pmt(t.value) for t in self.get_tags_in_window(0, 0, n, pmt.intern(FRAME_TAG))}
        out = []
        for off in sorted(sob | set(frames)):
            key = frames.get(off)
            if self.mode == "frame":
                if off in sob:
                    out.append((off, key))
            else:
                if key is None:
                    continue  # a burst without an image identity keeps the current coefficient
                image_key = (key.get("tx_id"), key.get("image_id"), key.get("attempt"))
                if image_key != self._image_key:
                    self._image_key = image_key
                    out.append((off, key))
        return out

    def work(self, input_items, output_items):
        x = input_items[0]
        y = output_items[0]
        n = len(y)
        start = self.nitems_read(0)
        pos = 0
        for off, key in self._boundaries(start, n):
            rel = off - start
            if rel > pos:
                y[pos:rel] = self._fade(x[pos:rel])
                pos = rel
            self._new_coeff(off, key)
        if pos < n:
            y[pos:n] = self._fade(x[pos:n])
        return n

    def _fade(self, x: np.ndarray) -> np.ndarray:
        try:
            return apply_block_fading(x, self.h)
        except ValueError as exc:          # NaN/inf input: zeros out, counted, never an exception
            self.bad_chunks += 1
            if self.bad_chunks == 1 or self.bad_chunks % 1000 == 0:
                self.logger.warn(f"block_fading: {exc}; output zeroed ({self.bad_chunks} chunks so far)")
            return np.zeros(x.size, np.complex64)
