"""The errors of the SIP core: one root, split like h11's into the peer's fault and ours.

`RemoteProtocolError` is the peer's fault: it carries the status the server should answer with (400, 416,
420, 505 ...). `SipError` (the message parser and grammar) and `AuthParseError` (credentials and challenges)
are its kinds. `LocalProtocolError` is our bug: the transaction user asked for something the state does not
allow (`TransactionStateError`). Anything else raised out of the core is a bug too.
"""

from __future__ import annotations

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
    200: "OK", 202: "Accepted",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily", 305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    429: "Too Many Requests", 480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


def reason_phrase(status: int) -> str:
    return REASONS.get(status, "Unknown")


class ProtocolError(Exception):
    """Root of the SIP core's errors."""


class RemoteProtocolError(ProtocolError, ValueError):
    """The peer sent something we cannot accept; `status` is what to answer (when answering is possible)."""

    status = 400


class LocalProtocolError(ProtocolError, RuntimeError):
    """Our side asked the core for something its state does not allow: a bug here, not the peer's fault."""


class SipError(RemoteProtocolError):
    """A message or header the grammar refuses; `status` is what to answer (when answering is possible).

    `headers` are extra header lines for that answer (e.g. Unsupported for 420, Accept for 415).
    `fatal_stream` means a stream transport cannot find the next message boundary and must close.
    """

    def __init__(self, status: int, detail: str, *, headers: tuple[tuple[str, str], ...] = (),
                 fatal_stream: bool = False, reason: str | None = None) -> None:
        super().__init__(f"{status} {detail}")
        self.status = status
        self.detail = detail
        self.headers = headers
        self.fatal_stream = fatal_stream
        self.reason = reason or reason_phrase(status)
