# SPDX-License-Identifier: GPL-3.0-or-later
"""UHD streaming events, counted and attributed to images: what ``infercom tx|rx --radio uhd`` report.

* TX: GNU Radio's ``usrp_sink`` publishes UHD's asynchronous messages on its ``async_msgs`` port as
  ``("uhd_async_msg" . {event_code: (names...), time_spec: (secs . frac), channel: n})``;
  :func:`parse_async_msg` reads one, the :class:`tx_events` block counts them (``underflow``,
  ``underflow_in_packet``, ``seq_error``, ``seq_error_in_burst``, ``time_error`` -- a late burst --, and
  ``burst_ack``).
* RX: after an overflow, ``usrp_source`` starts the next packet with a fresh ``rx_time`` tag (and prints ``O``);
  the :class:`rx_overflows` sink counts every ``rx_time`` tag after the first, with its sample offset.

:class:`EventLog` keeps the counts (thread-safe) and the sample offsets / times of the events, so that a record
can say what happened during one image: :meth:`EventLog.take` (the events since the last take: the
transmitter takes them when an image ends, exact with one image in flight) and :meth:`EventLog.in_span`
(RX: overflows between two sample offsets, e.g. an image's first and last frame).
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import pmt
from gnuradio import gr

__all__ = ["TX_EVENTS", "parse_async_msg", "EventLog", "tx_events", "rx_overflows"]

#: the UHD async event names GNU Radio's usrp_sink publishes (uhd::async_metadata_t event codes)
TX_EVENTS = ("burst_ack", "underflow", "underflow_in_packet", "seq_error", "seq_error_in_burst", "time_error")
ASYNC_KEY = "uhd_async_msg"


def parse_async_msg(msg) -> dict | None:
    """``{"events": [names], "time_spec": (secs, frac) | None, "channel": int | None}`` of one ``async_msgs``
    message, None when it is not a UHD async message (wrong shape or key)."""
    try:
        if not pmt.is_pair(msg) or pmt.is_dict(pmt.car(msg)) or pmt.symbol_to_string(pmt.car(msg)) != ASYNC_KEY:
            return None
        d = pmt.cdr(msg)
        codes = pmt.dict_ref(d, pmt.intern("event_code"), pmt.PMT_NIL)
        events = []
        while pmt.is_pair(codes):
            events.append(pmt.symbol_to_string(pmt.car(codes)))
            codes = pmt.cdr(codes)
        ts = pmt.dict_ref(d, pmt.intern("time_spec"), pmt.PMT_NIL)
        time_spec = (int(pmt.to_long(pmt.car(ts))), float(pmt.to_double(pmt.cdr(ts)))) if pmt.is_pair(ts) else None
        ch = pmt.dict_ref(d, pmt.intern("channel"), pmt.PMT_NIL)
        channel = int(pmt.to_uint64(ch)) if pmt.is_uint64(ch) else (int(pmt.to_long(ch)) if pmt.is_integer(ch)
                                                                    else None)
    except (RuntimeError, ValueError, TypeError):      # pmt's wrong_type surfaces as these
        return None
    return {"events": events, "time_spec": time_spec, "channel": channel}


class EventLog:
    """Counts of named events (thread-safe), with the monotonic time and optional sample offset of each."""

    def __init__(self):
        self._lock = threading.Lock()
        self._total: Counter = Counter()
        self._since: Counter = Counter()
        self._offsets: list[tuple[str, int]] = []

    def add(self, names, offset: int | None = None) -> None:
        with self._lock:
            for n in names:
                self._total[n] += 1
                self._since[n] += 1
                if offset is not None:
                    self._offsets.append((n, int(offset)))

    def counts(self) -> dict[str, int]:
        """All events so far."""
        with self._lock:
            return dict(self._total)

    def take(self) -> dict[str, int]:
        """The events since the previous take (and resets that window)."""
        with self._lock:
            out, self._since = dict(self._since), Counter()
            return out

    def in_span(self, name: str, start: int, end: int) -> int:
        """How many ``name`` events have a sample offset in ``[start, end)``."""
        with self._lock:
            return sum(1 for n, o in self._offsets if n == name and start <= o < end)


class tx_events(gr.basic_block):
    """Message sink for ``usrp_sink``'s ``async_msgs``: every event of :data:`TX_EVENTS` counted in ``log``
    (an :class:`EventLog`); messages of another shape are counted as ``unparsed``."""

    def __init__(self, log: EventLog | None = None):
        gr.basic_block.__init__(self, name="infercom_tx_events", in_sig=None, out_sig=None)
        self.log = log or EventLog()
        self.message_port_register_in(pmt.intern("async_msgs"))
        self.set_msg_handler(pmt.intern("async_msgs"), self.handle)

    def handle(self, msg) -> None:
        got = parse_async_msg(msg)
        self.log.add(["unparsed"] if got is None else got["events"])


class rx_overflows(gr.sync_block):
    """Complex sink beside the receiver on ``usrp_source``'s output: every ``rx_time`` tag after the first marks
    an overflow (UHD dropped samples there); counted in ``log`` as ``overflow`` with the tag's sample offset."""

    def __init__(self, log: EventLog | None = None):
        gr.sync_block.__init__(self, name="infercom_rx_overflows", in_sig=[np.complex64], out_sig=None)
        self.log = log or EventLog()
        self._seen_first = False
        self.started = time.monotonic()

    def work(self, input_items, output_items):
        n = len(input_items[0])
        start = self.nitems_read(0)
        for tag in self.get_tags_in_range(0, start, start + n, pmt.intern("rx_time")):
            if self._seen_first:
                self.log.add(["overflow"], tag.offset)
            self._seen_first = True
        return n
