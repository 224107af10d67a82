# SPDX-License-Identifier: GPL-3.0-or-later
"""The inference server: soft symbols -> assembled, Chase-combined image -> MMSE pixels -> restoration -> QoE ->
ACK/NACK to the right transmitter (docs/server.md, wire schema in docs/protocol.md).

Submodules: ``server`` (sockets and threads), ``assembly`` (frames -> attempts -> combined payload), ``policy``
(ACK/NACK), ``config``, ``records`` (counters, latency, transmission records), ``simlink`` (symbol-level
simulated transmitters), ``cli`` (``infercom server``), ``demo`` (``infercom demo``), ``report`` (HTML),
``bench`` (``run_bench``); ``restorers`` and ``qoe`` hold the models and metrics chosen by name.
Importing this package imports neither torch nor pyzmq.
"""
