"""The UDP listener's kernel queue: asked for past the system's cap when the node may (FORCE), so a storm
waits in a queue that overload control can see instead of overflowing in tens of milliseconds."""

from __future__ import annotations

import os
import socket

from softswitch.transport.udp import SO_RCVBUFFORCE, grow_buffer


def _cap() -> int:
    with open("/proc/sys/net/core/rmem_max") as f:
        return int(f.read())


def test_the_receive_queue_goes_past_the_system_cap_when_the_node_may():
    cap = _cap()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        want = 2 * cap + 65536
        got = grow_buffer(sock, socket.SO_RCVBUF, SO_RCVBUFFORCE, want)
        if os.geteuid() == 0:
            assert got >= want          # Linux reports twice what it grants for use
        else:
            assert got == 2 * cap       # unprivileged: the cap stands, and the node says so at start


def test_a_size_under_the_cap_is_granted_as_asked():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        assert grow_buffer(sock, socket.SO_RCVBUF, None, 65536) >= 65536
