# SPDX-License-Identifier: GPL-3.0-or-later
"""Free loopback TCP ports, for a ZeroMQ endpoint that must be named before anything binds it (``infercom
demo``'s server, and the tests' servers and ZeroMQ IQ links).

The probe is a plain socket, closed before the function returns, so the port is free when it does. A probe
with a ZeroMQ socket is not: libzmq closes a socket asynchronously (in its reaper thread), so a bind right after
``close()`` can still find the port taken (``EADDRINUSE``, seen in CI). The port can still be taken by another
program between the probe and the caller's bind; a caller that can bind a random port itself
(``zmq.Socket.bind_to_random_port``) should do that instead.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

MAX_TRIES = 100


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_tcp_port(host: str = "127.0.0.1", avoid: Iterable[int] = ()) -> int:
    """A TCP port on ``host`` that nothing holds now (the OS's choice), not one of ``avoid``.
    ``RuntimeError`` after ``MAX_TRIES`` probes."""
    avoid = set(avoid)
    for _ in range(MAX_TRIES):
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port
    raise RuntimeError(f"no free TCP port on {host} outside {sorted(avoid)} in {MAX_TRIES} tries")


def free_tcp_port_pair(host: str = "127.0.0.1", avoid: Iterable[int] = ()) -> int:
    """A port ``p`` on ``host`` with ``p`` and ``p + 1`` both free and neither in ``avoid``: the inference
    server binds ``p + 1`` for its feedback unless told another address. ``RuntimeError`` after ``MAX_TRIES``."""
    avoid = set(avoid)
    for _ in range(MAX_TRIES):
        port = free_tcp_port(host, avoid)
        if port < 65535 and port + 1 not in avoid and _bindable(host, port + 1):
            return port
    raise RuntimeError(f"no free pair of TCP ports on {host} in {MAX_TRIES} tries")
