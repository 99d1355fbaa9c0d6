"""Stream framing for TCP/TLS (RFC 3261 s. 18.3): the same messages whatever way the bytes are split.

Content-Length is mandatory on streams; a bad one leaves no way to find the next message, so the connection
must close (the error says `fatal_stream`). Empty lines between messages are keepalives (RFC 5626 s. 3.5.1).
"""

from __future__ import annotations

import re

from .errors import SipError
from .message import Request, Response
from .parser import parse_content_length, parse_message

_CL_RE = re.compile(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)")


class Keepalive:
    """A double-CRLF ping; the answer is a single CRLF pong."""
    __slots__ = ()


KEEPALIVE = Keepalive()


class StreamFramer:
    """Each byte is looked at a bounded number of times however the stream is split: the header end is searched
    from where the last search stopped, and once found, it and the Content-Length are kept until the body is in."""

    def __init__(self, max_message: int = 65535) -> None:
        self.max_message = max_message
        self.buf = bytearray()
        self.closed = False
        self._scan_from = 0
        self._want: tuple[int, int] | None = None    # (header block end, Content-Length) while the body comes

    @property
    def pending(self) -> int:
        return len(self.buf)

    def feed(self, data: bytes) -> list[Request | Response | SipError | Keepalive]:
        """Add bytes; return complete messages (or per-message errors) in order. After a fatal error the
        framer is closed and returns nothing more."""
        if self.closed:
            return []
        self.buf += data
        out: list[Request | Response | SipError | Keepalive] = []
        buf = self.buf
        while buf:
            if self._want is not None:
                head_end, length = self._want
                if len(buf) < head_end + length:
                    break                 # still waiting for the body
                self._want = None
                if not self._take(out, head_end, length):
                    return out
                continue
            # Keepalives and stray line ends between messages (RFC 5626 s. 3.5.1: CRLFCRLF ping).
            if buf[0] in (13, 10):
                if buf[:4] == b"\r\n\r\n":
                    out.append(KEEPALIVE)
                    del buf[:4]
                    continue
                n = len(buf) - len(buf.lstrip(b"\r\n"))
                if n < len(buf):
                    del buf[:n]           # stray line ends before a message
                    continue
                # Only line ends so far: a ping may still be forming. Keep from the first CRLFCRLF, or else the
                # longest tail that could begin one, so a peer sending nothing but line ends holds 3 bytes.
                ping = buf.find(b"\r\n\r\n")
                if ping > 0:
                    del buf[:ping]
                    continue
                for keep in (3, 2, 1, 0):
                    if buf.endswith(b"\r\n\r"[:keep]):
                        break
                del buf[:len(buf) - keep]
                break
            end = buf.find(b"\r\n\r\n", max(0, self._scan_from - 3))
            if end < 0:
                if len(buf) > self.max_message:
                    return self._fatal(out, SipError(513, "header block too large", fatal_stream=True))
                self._scan_from = len(buf)
                break
            self._scan_from = 0
            head_end = end + 4
            m = None
            for m in _CL_RE.finditer(buf, 0, end + 2):
                pass
            try:
                length = parse_content_length(m.group(1).decode("latin-1")) if m else 0
            except SipError as err:
                # Parse the header block alone so the 400 can still be addressed before the stream closes.
                try:
                    parse_message(bytes(buf[:head_end]), datagram=True)
                except SipError as detailed:
                    err = detailed
                return self._fatal(out, err)
            if head_end + length > self.max_message:
                return self._fatal(out, SipError(513, "message too large", fatal_stream=True))
            if len(buf) < head_end + length:
                self._want = (head_end, length)   # found once; the body's bytes are only counted
                break
            if not self._take(out, head_end, length):
                return out
        return out

    def _take(self, out: list, head_end: int, length: int) -> bool:
        """Parse the message at the front of the buffer; False when the stream is lost."""
        raw = bytes(self.buf[:head_end + length])
        del self.buf[:head_end + length]
        try:
            out.append(parse_message(raw, datagram=False))
        except SipError as err:
            if err.fatal_stream:
                self._fatal(out, err)
                return False
            out.append(err)
        return True

    def _fatal(self, out: list, err: SipError) -> list:
        err.fatal_stream = True
        out.append(err)
        self.closed = True
        self.buf.clear()
        return out
