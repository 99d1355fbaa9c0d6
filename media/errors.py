"""The errors of the media package: one root, split like h11's into the peer's fault and ours.

`RemoteProtocolError`: bytes from outside (an RTP or RTCP packet, an RFC 4733 event, a WAV file) that
cannot be read; `status` is what a shell that answers for them (an upload through the API, say) should
reply. `RtpError`, `DtmfError` and `WavError` are its kinds. `LocalProtocolError`: the caller asked for
something the media code does not do (a payload type out of range, an unknown digit, a stream of another
engine): a bug in the caller. Both are ValueErrors, as the classes they root always were.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Root of the media package's errors."""


class RemoteProtocolError(ProtocolError, ValueError):
    """Input from a peer (or a file) that cannot be read."""

    status = 400


class LocalProtocolError(ProtocolError, ValueError):
    """A request the media code cannot carry out as asked: the caller's bug."""
