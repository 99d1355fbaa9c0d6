"""The call core's two error families (as h11's): the peer's fault, carrying the SIP status to answer, and
our own bug (an event the state table does not allow)."""

from __future__ import annotations


class CallError(Exception):
    pass


class RemoteCallError(CallError):
    """The peer asked for something we refuse: `status` is what to answer."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class LocalCallError(CallError):
    """Our bug: a leg was driven through a transition its table does not have."""
