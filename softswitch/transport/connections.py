"""The endpoint's open stream connections (TCP, TLS, WebSocket): a set, indexed by (transport, peer address)
so that finding the connection to send a message on costs one dictionary lookup, not a scan over every
connection the node holds."""

from __future__ import annotations

from typing import Any, Iterator


class Connections:
    def __init__(self) -> None:
        self._all: dict[Any, None] = {}                     # insertion-ordered set
        self._by_peer: dict[tuple[str, str, int], Any] = {}

    def add(self, conn) -> None:
        self._all[conn] = None
        # a newer connection from the same address (the port reused after a close) is the one to answer on
        self._by_peer[(conn.proto, conn.peer[0], conn.peer[1])] = conn

    def discard(self, conn) -> None:
        if self._all.pop(conn, 0) is None:
            key = (conn.proto, conn.peer[0], conn.peer[1])
            if self._by_peer.get(key) is conn:
                del self._by_peer[key]

    def find(self, proto: str, host: str, port: int):
        conn = self._by_peer.get((proto, host, port))
        return conn if conn is not None and not conn.closed else None

    def __iter__(self) -> Iterator:
        return iter(list(self._all))

    def __len__(self) -> int:
        return len(self._all)

    def __bool__(self) -> bool:
        return bool(self._all)

    def __contains__(self, conn) -> bool:
        return conn in self._all
