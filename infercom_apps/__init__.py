# SPDX-License-Identifier: GPL-3.0-or-later
"""The apps layer: what drives several layers at once, above all of them (DESIGN §2, docs/internals.md §2).

* :mod:`.cli` -- the ``infercom`` command: one subcommand per job, each dispatched lazily to the module that
  does it (``infercom.simulate``, ``gnuradio.infercom.apps.*``, ``receiver_server.cli``, ...);
* :mod:`.bench` -- ``infercom bench``: runs every benchmark suite of every layer;
* :mod:`.bench_vs_gnuradio` -- suite ``core``: the core's numba kernels next to GNU Radio's C++ blocks;
* :mod:`.bench_server` -- suite ``server``: the inference server's stages, with a GNU Radio reference.

May import every other part of the project; nothing imports it (``tests/test_layers.py`` holds the core to
its side of the rule).
"""
