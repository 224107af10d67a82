# SPDX-License-Identifier: GPL-3.0-or-later
"""infercom.netports: a port it returns can be bound by ZeroMQ at once (the probe's close is synchronous), the
pair's upper port too, ``avoid`` is honoured, and running out of tries is a clear error."""

from __future__ import annotations

import pytest
import zmq

from infercom.netports import free_tcp_port, free_tcp_port_pair


def _bind(ctx, kind, port):
    s = ctx.socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    s.bind(f"tcp://127.0.0.1:{port}")
    return s


def test_a_free_port_binds_at_once_and_avoid_is_honoured():
    ctx = zmq.Context()
    try:
        for _ in range(20):                           # over and over: no probe left holding its port
            port = free_tcp_port()
            _bind(ctx, zmq.ROUTER, port)
            assert free_tcp_port(avoid=(port,)) != port
        held = {free_tcp_port() for _ in range(5)}
        assert not held & {free_tcp_port(avoid=held) for _ in range(20)}
    finally:
        ctx.destroy(linger=0)


def test_a_free_pair_binds_both_ports():
    ctx = zmq.Context()
    try:
        for _ in range(10):
            port = free_tcp_port_pair()
            _bind(ctx, zmq.ROUTER, port)
            _bind(ctx, zmq.PUB, port + 1)             # the server's default feedback port
    finally:
        ctx.destroy(linger=0)


def test_no_port_left_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no free TCP port"):
        free_tcp_port(avoid=range(65536))
    with pytest.raises(RuntimeError, match="no free"):
        free_tcp_port_pair(avoid=range(65536))
