"""Overload control for datagrams: decide, before parsing, what to do with a message that waited in the
receive queue.

Past capacity a registrar that answers everything in arrival order answers only requests whose clients have
already retransmitted or given up, and each retransmission adds to the queue: goodput collapses. The UDP shell
reads the kernel's receive time of every datagram; one that waited longer than `queue_delay` goes through
`OverloadPolicy.shed`, which sorts it without the SIP parser:

  - responses: admitted;
  - requests that continue work already started (ACK, BYE, CANCEL, in-dialog requests, a REGISTER or INVITE
    carrying credentials, i.e. the second half of a challenge): admitted, since completing started work is
    what goodput is made of, up to `drop_after`: older ones are dropped, their retransmissions are queued
    behind them (and if such requests alone outrun the node, the queue still stays bounded);
  - a REGISTER without credentials (new work whose normal answer is itself stateless): 503 with Retry-After,
    built from the raw header lines, so it costs a few microseconds instead of a parse and a challenge;
    past `drop_after` it is dropped (the client retransmits or gives up; even a 503 costs too much then);
  - a late copy of a request the node took in (late, or on time while shedding) that was sent before the
    original was taken in: dropped, from the first late datagram on, before shedding starts. It only waited
    behind its original, whose answer answers it; the onset of a storm is when every queued request is
    retransmitted. The common case, a byte-identical copy, is found by the hash of the datagram before any
    peek; while shedding, also a copy whose bytes differ, by its top-Via branch, method and CSeq. A copy sent
    after the original was taken in may mean the answer was lost: one of work the node admitted is served
    (the transaction layer re-sends its answer; a 503 to the copy of a REGISTER already challenged would end
    a registration in progress), one of work answered 503 is sorted as new work again;
  - any other new request (an INVITE above all): admitted up to `drop_after`, so the transaction layer
    absorbs its retransmissions and call admission answers 503 + Retry-After statefully (a stateless answer
    to the retransmission of an INVITE already proceeding would end that call half set up); dropped after.

A storm is sorted datagram by datagram, so the sorting is cheap: `classify` reads a head with one split and
one name lookup per line and no object per datagram, the 503 is one join, and a copy's hash is looked up
before anything is read; odd shapes (folded lines, bare CR or LF) are read line by line by `peek`, which
`classify` agrees with. A datagram that claims credentials only to skip the queue is still parsed,
authenticated and rate-limited per source by the guard. Pure: bytes and ages in, a verdict (and the bytes of
a 503) out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ADMIT, REJECT, DROP = "admit", "reject", "drop"
T1 = 0.5
CONTINUING = frozenset({b"ACK", b"BYE", b"CANCEL", b"PRACK", b"UPDATE", b"INFO", b"REFER", b"NOTIFY"})
_KEEP = {b"via": b"Via", b"v": b"Via", b"from": b"From", b"f": b"From", b"to": b"To", b"t": b"To",
         b"call-id": b"Call-ID", b"i": b"Call-ID", b"cseq": b"CSeq"}
_AUTH = frozenset({b"authorization", b"proxy-authorization"})
_BRANCH = re.compile(rb"[^,; \t]*")         # a branch's value, from after "branch=" (lowercased)
# a picked header is kept as the bytes that start its line in a response; the policy compares them by identity
VIA, FROM, TO, CALL_ID, CSEQ = (b"\r\n" + c + b": " for c in (b"Via", b"From", b"To", b"Call-ID", b"CSeq"))
_LINE = {b"Via": VIA, b"From": FROM, b"To": TO, b"Call-ID": CALL_ID, b"CSeq": CSEQ}
_CRED, _UA = b"credentials", b"user-agent"
_NAME = {k: _LINE[c] for k, c in _KEEP.items()} | {k: _CRED for k in _AUTH} | {b"user-agent": _UA}
_NAME |= {k.title(): c for k, c in _NAME.items()} | {k.upper(): c for k, c in _NAME.items()} | {
    b"Call-ID": CALL_ID, b"CSeq": CSEQ}         # the usual spellings found as sent; any other, lowercased
_SKIP = b"skip"                                 # headers the policy does not read, as phones spell them
_NAME |= dict.fromkeys((b"Contact", b"Max-Forwards", b"Expires", b"Content-Length", b"Content-Type", b"Allow",
                        b"Supported", b"Accept", b"Route", b"Record-Route", b"Event", b"Require", b"Date",
                        b"Allow-Events", b"Subject", b"Timestamp", b"Accept-Language", b"Session-Expires",
                        b"Min-SE", b"Privilege", b"P-Asserted-Identity", b"Organization", b"Server"), _SKIP)
RESPONSE = "response"
_STATUS, _END = b"SIP/2.0 503 Service Unavailable", b"\r\nContent-Length: 0\r\n\r\n"
REARM = 4                          # x sustain: a late run this soon after an episode this long sheds at once
MAX_SEEN = 100000                  # remembered requests (about 25 s at 4,000 late requests/s; ~10 MB at most)


@dataclass
class OverloadOptions:
    queue_delay: float = 0.2       # a datagram older than this was queued behind more than the node can serve
    sustain: float = 0.5           # ... for this long without a break before anything is shed (a short stall
                                   # of the machine drains by itself; retransmissions cover it)
    drop_after: float = 2.0        # new work older than this is dropped without an answer
    give_up: float = 64 * T1       # any request older than this, shedding or not: its client has given up
    retry_after: int = 5           # seconds; each 503 says between this and twice this, to spread the retries


@dataclass
class Peek:
    kind: str                      # "response", "continuing", "new"
    method: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()   # (canonical name, value) of Via/From/To/Call-ID/CSeq
    user_agent: str = ""


def peek(data: bytes) -> Peek | None:
    """Classify a datagram from its raw header lines (None: not SIP enough to answer). Linear in the input:
    one split, and per line one partition and a dictionary lookup."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
    lines = (data if end < 0 else data[:end]).split(b"\n")
    first = lines[0].rstrip(b"\r")
    if first.startswith(b"SIP/2.0 "):
        return Peek("response")
    parts = first.split(b" ")
    if len(parts) != 3 or parts[2] != b"SIP/2.0" or not parts[0].isalpha():
        return None
    method = parts[0]
    kept: list[list[bytes]] = []
    credentials = to_tag = False
    user_agent = ""
    last = None
    for raw in lines[1:]:
        line = raw.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):           # RFC 3261 s. 7.3.1: a folded line continues the header above
            if last is not None:
                last[1] += b" " + line.strip(b" \t")
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            return None
        key = name.strip(b" \t").lower()
        value = value.strip(b" \t")
        canon = _KEEP.get(key)
        if canon is not None:
            last = [canon, value]
            kept.append(last)
            continue
        last = None
        if key in _AUTH:
            credentials = True
        elif key == b"user-agent":
            user_agent = value[:200].decode("latin-1")
    for canon, value in kept:
        if canon == b"To" and b";tag=" in value.lower().replace(b" ", b""):
            to_tag = True
    kind = "continuing" if method in CONTINUING or to_tag or credentials else "new"
    return Peek(kind, method, tuple((c, v) for c, v in kept), user_agent)


def retry_spread(call_id: bytes, retry_after: int) -> int:
    """Between `retry_after` and twice that, by Call-ID: the refused clients do not all come back at once."""
    return retry_after + (hash(call_id) % max(1, retry_after + 1))


def request_key(p: Peek) -> bytes:
    """What a retransmission shares with its original: top-Via branch, method and CSeq. The branch alone is not
    enough: a CANCEL or the ACK of a failed INVITE carries the INVITE's branch, and some clients (SIPp among
    them) send the second REGISTER of a challenge with the first one's branch; the CSeq tells them apart.
    b"" without a branch."""
    return _key(next((v for c, v in p.headers if c == b"Via"), b""), p.method,
                b"".join(v for c, v in p.headers if c == b"CSeq"))


def service_unavailable(p: Peek, tag: str, retry_after: int, server: str = "") -> bytes | None:
    """A stateless 503 (RFC 3261 s. 8.2.6) echoing the request's Via, From, To, Call-ID and CSeq; None when
    they are not all there exactly once (the parser would have answered 400, and under overload nobody does)."""
    return refusal(p.method, _flat(p), tag.encode(), retry_after,
                   b"\r\nServer: " + server.encode() if server else b"")


def classify(data: bytes) -> str | tuple[bytes, bool, bytes, list[bytes], bytes] | None:
    """What `peek` says of a datagram, without a dataclass: None (not SIP enough to answer), RESPONSE, or a
    request's (method, continuing, request key, picked headers as [line start, value, ...], user agent).

    One split of the head in C, then per line a partition and a lookup of the name as sent (the usual
    spellings are in `_NAME`; another is stripped and lowercased first). A head with a bare CR or LF, or no
    CRLFCRLF, goes to `peek` (linear too), as does a folded line or one without a colon."""
    if data.startswith(b"SIP/2.0 "):
        return RESPONSE
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return _from_peek(peek(data))
    lines = data[:end].split(b"\r\n")
    n = len(lines) - 1
    if data.count(b"\n", 0, end) != n or data.count(b"\r", 0, end) != n:
        return _from_peek(peek(data))
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] != b"SIP/2.0" or not parts[0].isalpha():
        return None
    method = parts[0]
    del lines[0]
    picked = []
    continuing = method in CONTINUING
    via = user_agent = b""
    cseq = b""
    get = _NAME.get
    for raw in lines:
        name, sep, value = raw.partition(b":")
        line = get(name)
        if line is _SKIP and sep:
            continue
        if line is None or not sep:
            if not sep or name[:1] in (b" ", b"\t"):     # not SIP, unless a folded line: `peek` reads them
                return _from_peek(peek(data))
            line = get(name.rstrip(b" \t").lower())
            if line is None or line is _SKIP:
                continue
        value = value.strip(b" \t")
        if line is _CRED:
            continuing = True
        elif line is _UA:
            user_agent = value[:200]
        else:
            picked += (line, value)
            if line is VIA:
                if not via:
                    via = value or b" "         # (an empty top Via is still the top one: no branch)
            elif line is CSEQ:
                cseq += value
            elif line is TO and not continuing and b";tag=" in value.lower().replace(b" ", b""):
                continuing = True
    return method, continuing, _key(via, method, cseq), picked, user_agent


def with_credentials(data: bytes) -> bool:
    """A request carrying credentials as phones spell them: a request line, then an Authorization or
    Proxy-Authorization line in the head (`classify` reads it as continuing work too). Two searches in C; any
    other spelling is left to `classify`."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or (data.find(b"\r\nAuthorization:", 0, end) < 0
                   and data.find(b"\r\nProxy-Authorization:", 0, end) < 0):
        return False
    first = data.find(b"\r\n")
    return data.startswith(b" SIP/2.0", first - 8) and data[:1].isalpha() and not data.startswith(b"SIP/2.0 ")


def _from_peek(p: Peek | None):
    """`classify`'s answer from `peek`'s (the shapes its fast path leaves to the line-by-line reading)."""
    if p is None or p.kind == RESPONSE:
        return None if p is None else RESPONSE
    return (p.method, p.kind == "continuing", request_key(p), _flat(p),
            p.user_agent.encode("latin-1"))


def _key(via: bytes, method: bytes, cseq: bytes) -> bytes:
    """`request_key` from the top Via's value and the CSeq values (joined)."""
    top = via.lower()
    i = top.find(b"branch=")
    if i < 0 or top.find(b",", 0, i) >= 0:        # no branch in the topmost Via
        return b""
    branch = _BRANCH.match(top, i + 7).group()
    return branch and b" ".join((branch, method, cseq.replace(b" ", b"").replace(b"\t", b"")))


def _flat(p: Peek) -> list[bytes]:
    """A Peek's headers as `classify` picks them."""
    return [x for c, v in p.headers for x in (_LINE[c], v)]


def refusal(method: bytes, picked: list[bytes], tag: bytes, retry_after: int,
            server_line: bytes = b"") -> bytes | None:
    """`service_unavailable` from `classify`'s picked headers, assembled with one join."""
    lines = picked[::2]
    if len(lines) - lines.count(VIA) != 4 or len(set(lines)) != 5 or method == b"ACK":
        return None                             # not Via(s) and each of the other four exactly once
    out = [_STATUS, *picked, b"\r\nRetry-After: ",
           b"%d" % retry_spread(picked[2 * lines.index(CALL_ID) + 1], retry_after), server_line, _END]
    i = lines.index(TO)
    to = picked[2 * i + 1]
    if b";tag=" not in to.lower().replace(b" ", b""):
        out[2 * i + 2] = to + b";tag=" + tag
    return b"".join(out)


class Episodes:
    """Runs of lateness and the shedding episodes they make, as the node's overload policy and the UDP front's
    gate (softswitch/security/gate.py) both count them: shedding starts once late without a break for `sustain`
    seconds, and ends once nothing has been late for `sustain`. The callers say what breaks a run."""
    __slots__ = ("shedding", "late_since", "last_late", "began", "ended", "lasted")

    def __init__(self) -> None:
        self.shedding = False
        self.late_since: float | None = None       # start of a run of late ones, before shedding starts
        self.last_late = float("-inf")
        self.began = 0.0                           # when the current episode began
        self.ended = float("-inf")                 # when the last one ended
        self.lasted = 0.0                          # ... and how long it lasted

    def on_time(self) -> None:
        """Something on time: a run of late ones, before shedding starts, is broken."""
        self.late_since = None

    def late(self, now: float, sustain: float) -> bool:
        """Late at `now`: whether shedding."""
        self.last_late = now
        if not self.shedding:
            if self.late_since is None:
                self.late_since = now
            # shortly after a long episode the queue is old again because the storm goes on: shedding at
            # once, since admitting everything for `sustain` again builds a queue older than the clients' T1
            # (after a short one, e.g. the machine's stalls, the sustained run is asked for again)
            if now - self.late_since >= sustain or (
                    now - self.ended <= REARM * sustain and self.lasted >= REARM * sustain):
                self.shedding, self.late_since, self.began = True, None, now
        return self.shedding

    def end_if_quiet(self, now: float, sustain: float) -> bool:
        """End the episode when nothing has been late for `sustain` seconds at `now`; True when it ended."""
        if self.shedding and now - self.last_late > sustain:
            self.shedding, self.ended, self.lasted = False, self.last_late, self.last_late - self.began
            return True
        return False


class OverloadPolicy:
    def __init__(self, options: OverloadOptions | None = None, tag: str = "ovl", server: str = "") -> None:
        self.o = options or OverloadOptions()
        self.queue_delay = self.o.queue_delay      # the shells compare against this before calling `shed`
        self.tag = tag
        self.server = server
        self._tag = tag.encode()                   # ... as the 503 carries them
        self._server = b"\r\nServer: " + server.encode() if server else b""
        self.stats = {"admitted_late": 0, "rejected": 0, "dropped": 0, "dropped_given_up": 0,
                      "dropped_retransmission": 0}
        self.worst = 0.0                           # oldest datagram seen while shedding, since `take_worst`
        # how late the event loop runs ready callbacks (the node's watcher sets it): what a stream
        # connection's bytes wait, at least, before they are read
        self.loop_lag = 0.0
        self.episodes = Episodes()
        # requests taken in late, or served on time while shedding -> (when, admitted): their late copies are
        # dropped or served, not answered 503 (a 503 after the 401 would end a registration the node is
        # already serving), see `_original`. Two generations: when `seen` holds half the bound it becomes
        # `older` and the one before is dropped whole (evicting entry by entry from the front of a dict costs
        # a scan over the holes left at its front, quadratic in a storm).
        self.seen: dict[int | bytes, tuple[float, bool]] = {}
        self.older: dict[int | bytes, tuple[float, bool]] = {}

    def reconfigure(self, options: OverloadOptions) -> None:
        """New thresholds from a reload; the shedding state and the counters stay."""
        self.o = options
        self.queue_delay = options.queue_delay

    def decide(self, kind: str, method: bytes, age: float) -> str:
        """The policy table. `age`: seconds the datagram waited in the receive queue."""
        if kind == "response":
            return ADMIT
        if age > self.o.drop_after:
            return DROP
        if kind == "continuing" or age <= self.o.queue_delay:
            return ADMIT
        return REJECT if method == b"REGISTER" else ADMIT

    def on_time(self) -> None:
        """A datagram that did not wait past `queue_delay`: a run of late ones is broken (the shells call this
        only while a run is counted: `watching`)."""
        self.episodes.on_time()

    def served_on_time(self, data: bytes, now: float) -> None:
        """While shedding, the shells pass every datagram that was on time: a request among them is about to be
        served, so its bytes are remembered (a hash and a dictionary entry: no parse on the path of the work
        being served)."""
        if self.episodes.end_if_quiet(now, self.o.sustain):
            return                          # the episode is over: nothing more to remember (what is remembered
                                            # expires)
        if not data.startswith(b"SIP/2.0 "):
            self.remember(hash(data), now)

    def remember(self, key, now: float, admitted: bool = True, also: bytes = b"") -> None:
        """`key`: the hash of a datagram (its byte-identical copies, found without a parse) or its request_key
        (copies that differ in bytes); taken in at `now`, `admitted` or answered 503. `also`: a second key
        (the request key beside the hash) for the same entry."""
        seen = self.seen
        entry = (now, admitted)
        if key:
            seen[key] = entry
        if also:
            seen[also] = entry
        if len(seen) >= MAX_SEEN // 2:
            self.older, self.seen = seen, {}

    def _original(self, key, now: float) -> tuple[float, bool] | None:
        """(taken in at, admitted) of the request this hash or request key belongs to, when it was taken in less
        than `give_up` ago; a copy sent before that only queued behind it (the original's answer answers it),
        one sent after asks again (the client may have lost the answer)."""
        entry = self.seen.get(key) or self.older.get(key)
        return entry if entry is not None and now - entry[0] <= self.o.give_up else None

    def retransmission(self, key, now: float) -> bool:
        """A copy of a request taken in less than `give_up` seconds ago (sent whenever)."""
        return self._original(key, now) is not None

    def late(self, now: float) -> bool:
        """A datagram waited past `queue_delay` at `now`: True once they have done so without a break for
        `sustain` seconds; shedding then lasts until none has been late for `sustain` seconds."""
        ep, sustain = self.episodes, self.o.sustain
        ep.end_if_quiet(now, sustain)
        return ep.late(now, sustain)

    def take(self, data: bytes, age: float, now: float, allowed=None) -> tuple[str, bytes | None]:
        """Any datagram (the shells call this only when `age > queue_delay` or `watching`, one attribute test
        per datagram otherwise): the verdict and the 503 to send back, as `shed`."""
        if age > self.queue_delay:
            return self.shed(data, age, now, allowed)
        ep = self.episodes
        if ep.late_since is not None:
            self.on_time()
        elif ep.shedding:
            self.served_on_time(data, now)
        return ADMIT, None

    @property
    def watching(self) -> bool:
        """An on-time datagram still matters: it breaks a run of late ones, or is remembered while shedding."""
        ep = self.episodes
        return ep.late_since is not None or ep.shedding

    @property
    def shedding(self) -> bool:
        return self.episodes.shedding

    @shedding.setter
    def shedding(self, on: bool) -> None:
        self.episodes.shedding = on

    def shed(self, data: bytes, age: float, now: float, allowed=None, host=None) -> tuple[str, bytes | None]:
        """(verdict, 503 bytes to send back or None) for a datagram that waited `age` seconds (> queue_delay),
        read at `now`. `allowed`: the per-source guard, fn(user_agent) -> bool, or fn(host, user_agent) when
        `host` is given, asked before anything is answered (a banned or rate-limited source, or a scanner, gets
        nothing, overloaded or not)."""
        shedding = self.late(now)
        o = self.o
        if (shedding or age > o.give_up) and age > self.worst:
            self.worst = age
        stats = self.stats
        h = hash(data)
        sent = now - age
        first = self._original(h, now)
        if first is not None and sent < first[0]:
            stats["dropped_retransmission"] += 1           # a byte-identical copy: not even classified
            return DROP, None
        if not shedding and age <= o.give_up:
            # not shedding (yet): served as usual, remembered by its bytes only, not classified on the way of
            # work that is served anyway (a peek here made a node just past capacity slower still)
            if not data.startswith(b"SIP/2.0 "):
                self.remember(h, now)
            stats["admitted_late"] += 1
            return ADMIT, None
        if age <= o.drop_after and with_credentials(data):
            # the second half of a challenge, most of the work a storm's goodput is made of: admitted as
            # `classify` would admit it, without its cost (a copy that differs in bytes is absorbed by the
            # transaction the first one opened), remembered by its bytes
            self.remember(h, now)
            stats["admitted_late"] += 1
            return ADMIT, None
        c = classify(data)
        if c is None:
            stats["dropped"] += 1
            return DROP, None
        if c is RESPONSE:
            stats["admitted_late"] += 1
            return ADMIT, None
        method, continuing, key, picked, user_agent = c
        if first is None and key:
            first = self._original(key, now)
            if first is not None and sent < first[0]:
                stats["dropped_retransmission"] += 1
                return DROP, None
        if first is not None and first[1] and age <= o.drop_after:
            # asked again after the node answered work it took in: served (the transaction layer re-sends its
            # answer; a 503 now would end what the node has started)
            verdict = ADMIT
        else:
            verdict = self.decide("continuing" if continuing else "new", method, age)
        if verdict == ADMIT:
            self.remember(h, now, True, key)
            stats["admitted_late"] += 1
            return ADMIT, None
        if verdict == REJECT:
            reply = refusal(method, picked, self._tag, o.retry_after, self._server)
            if reply is not None and (allowed is None or (
                    allowed(user_agent.decode("latin-1")) if host is None else
                    allowed(host, user_agent.decode("latin-1")))):
                self.remember(h, now, False, key)
                stats["rejected"] += 1
                return REJECT, reply
        stats["dropped_given_up" if age > o.give_up else "dropped"] += 1
        return DROP, None

    # --- stream connections (TCP, TLS, WebSocket) -----------------------------------------------------------
    # No kernel stamp per message there: a message's age is the loop's lag plus what it waited behind the
    # messages read with it. Reliable transports have no retransmissions to drop, and a request left without
    # an answer waits for its client's 32 s timer: new work is answered 503 (any method: with no copy to come,
    # a stateless 503 ends an INVITE cleanly, before any call exists), started work is served, only what its
    # client has given up on is dropped.
    def note_loop_lag(self, lag: float) -> None:
        self.loop_lag = lag

    def stream_late(self, waited: float) -> float | None:
        """The age of a stream message that waited `waited` s behind others read with it, or None when it
        is on time (the shells' one test per message)."""
        age = self.loop_lag + waited
        return age if age > self.queue_delay else None

    def shed_stream(self, kind: str, age: float, now: float) -> str:
        """ADMIT, REJECT (answer 503) or DROP for a stream request of `kind` ("new"/"continuing") that is late
        (`stream_late`), read at `now` (the clock of `shed`)."""
        shedding = self.late(now)
        if shedding and age > self.worst:
            self.worst = age
        if age > self.o.give_up:
            self.stats["dropped_given_up"] += 1
            return DROP
        if kind == "new" and shedding:
            self.stats["rejected"] += 1
            return REJECT
        self.stats["admitted_late"] += 1
        return ADMIT

    def shed_stream_bytes(self, data: bytes, age: float, now: float) -> tuple[str, bytes | None]:
        """`shed_stream` for a message not parsed yet (a WebSocket frame): the verdict and the 503's bytes."""
        c = classify(data)
        if c is None or c is RESPONSE:
            return ADMIT, None                  # the parser answers what it can; responses are started work
        method, continuing, _key, picked, _ua = c
        verdict = self.shed_stream("continuing" if continuing else "new", age, now)
        if verdict == REJECT:
            reply = refusal(method, picked, self._tag, self.o.retry_after, self._server)
            if reply is not None:
                return REJECT, reply
            self.stats["rejected"] -= 1         # no headers to answer with: the parser answers 400
            self.stats["admitted_late"] += 1
            return ADMIT, None
        return verdict, None

    def take_worst(self) -> float:
        """The oldest queued datagram seen since the last call (0 when none waited past `queue_delay`)."""
        w, self.worst = self.worst, 0.0
        return w
