"""The endpoint's connection table: a set that finds the connection to a peer by one lookup."""

from __future__ import annotations

from softswitch.transport.connections import Connections


class Conn:
    def __init__(self, proto: str, host: str, port: int) -> None:
        self.proto, self.peer, self.closed = proto, (host, port), False


def test_find_by_transport_and_peer_and_iterate_like_a_set():
    t = Connections()
    a, b, w = Conn("tcp", "10.0.0.1", 5060), Conn("tcp", "10.0.0.2", 5060), Conn("ws", "10.0.0.1", 5060)
    for c in (a, b, w, a):
        t.add(c)
    assert len(t) == 3 and list(t) == [a, b, w] and a in t and t
    assert t.find("tcp", "10.0.0.1", 5060) is a and t.find("ws", "10.0.0.1", 5060) is w
    assert t.find("tls", "10.0.0.1", 5060) is None and t.find("tcp", "10.0.0.1", 5061) is None
    a.closed = True
    assert t.find("tcp", "10.0.0.1", 5060) is None            # closing, not yet discarded: not sent on
    for c in list(t):                                          # discarding while iterating is allowed
        t.discard(c)
    t.discard(b)
    assert not t and len(t) == 0 and t.find("tcp", "10.0.0.2", 5060) is None


def test_a_newer_connection_from_the_same_address_is_the_one_found():
    t = Connections()
    old, new = Conn("tcp", "10.0.0.1", 40000), Conn("tcp", "10.0.0.1", 40000)
    t.add(old)
    t.add(new)
    t.discard(old)                                             # the old one's late close leaves the new one
    assert t.find("tcp", "10.0.0.1", 40000) is new and list(t) == [new]


def test_a_lookup_looks_at_one_connection_however_many_there_are():
    looked = []

    class Watched(Conn):
        @property
        def closed(self) -> bool:
            looked.append(self)
            return False

        @closed.setter
        def closed(self, value: bool) -> None:
            pass

    t = Connections()
    conns = [Watched("tcp", "10.0.0.1", 10000 + i) for i in range(20000)]
    for c in conns:
        t.add(c)
    assert t.find("tcp", "10.0.0.1", 10000 + 12345) is conns[12345] and looked == [conns[12345]]
