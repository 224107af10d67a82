# SPDX-License-Identifier: GPL-3.0-or-later
"""pytest for the whole suite (tests/ and the OOT module's qa_*.py): a watchdog on the session's end.

Once every test has run, a watchdog (``faulthandler``'s own thread, which needs no GIL) is armed: if pytest's
teardown (its final garbage collection) or the interpreter's exit hangs, every thread's stack goes to stderr and
the process exits with status 1 after ``INFERCOM_PYTEST_EXIT_GRACE_S`` seconds (default 120; 0 turns it off, e.g.
for ``pytest.main()`` inside a longer-lived process), instead of holding CI until its own limit.

The hang this caught: a ZeroMQ context whose socket was never closed (a test that failed between creating and
closing it) blocks in ``zmq_ctx_term`` when the garbage collector finalises it. Tests destroy their contexts in a
``finally`` (``ctx.destroy(linger=0)``), and the server's I/O thread destroys its own.
"""

from __future__ import annotations

import faulthandler
import os

import pytest

_STDERR = pytest.StashKey()


def exit_grace_s() -> float:
    """Seconds pytest's teardown and the interpreter's exit may take after the last test (0: no watchdog)."""
    return float(os.environ.get("INFERCOM_PYTEST_EXIT_GRACE_S", "120"))


def pytest_configure(config):
    config.stash[_STDERR] = os.fdopen(os.dup(2), "w")       # the real stderr, whatever capture does later


def pytest_sessionfinish(session, exitstatus):
    if exit_grace_s() > 0:
        faulthandler.dump_traceback_later(exit_grace_s(), exit=True, file=session.config.stash[_STDERR])
