"""Dialogs (RFC 3261 s. 12): identifiers, route sets, CSeq, and building requests inside a dialog.

Pure: the caller supplies our own Via sent-by and Contact, and a branch/tag source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import SipError
from .headers import NameAddr, parse_name_addr
from .message import Request, Response
from .uri import URI, SipURI, parse_uri


@dataclass(slots=True)        # one per leg of every call in progress
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str | None
    local_uri: str          # our address (From on requests we send), as a header value without tag
    remote_uri: str         # theirs (To on requests we send), without tag
    remote_target: URI
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None
    state: str = "early"    # early, confirmed, terminated
    secure: bool = False

    @property
    def id(self) -> tuple[str, str, str | None]:
        return (self.call_id, self.local_tag, self.remote_tag)

    # --- creation ----------------------------------------------------------------------------------------
    @classmethod
    def as_uas(cls, req: Request, local_tag: str) -> "Dialog":
        """RFC 3261 s. 12.1.1: route set = Record-Route in order; remote target = the request's Contact."""
        contacts = req.contacts if req.has("Contact") else []
        if not contacts or contacts == "*":
            raise SipError(400, "dialog-creating request without a Contact")
        return cls(
            call_id=req.call_id, local_tag=local_tag, remote_tag=req.from_.tag,
            local_uri=_without_tag(req.to), remote_uri=_without_tag(req.from_),
            remote_target=contacts[0].uri, route_set=req.values("Record-Route"),
            local_seq=0, remote_seq=req.cseq[0], secure=isinstance(req.uri, SipURI) and req.uri.scheme == "sips",
        )

    @classmethod
    def as_uac(cls, req: Request, resp: Response) -> "Dialog":
        """RFC 3261 s. 12.1.2: route set = Record-Route reversed; remote target = the response's Contact."""
        contacts = resp.contacts if resp.has("Contact") else []
        target = contacts[0].uri if contacts and contacts != "*" else req.uri
        return cls(
            call_id=req.call_id, local_tag=req.from_.tag or "", remote_tag=resp.to.tag,
            local_uri=_without_tag(req.from_), remote_uri=_without_tag(resp.to),
            remote_target=target, route_set=list(reversed(resp.values("Record-Route"))),
            local_seq=req.cseq[0], remote_seq=None,
            state="confirmed" if 200 <= resp.status < 300 else "early",
        )

    def update_from_response(self, resp: Response) -> None:
        """A 2xx confirms an early dialog and refreshes its target (s. 12.1.2, 12.2.1.2)."""
        if resp.has("Contact"):
            contacts = resp.contacts
            if contacts and contacts != "*":
                self.remote_target = contacts[0].uri
        if 200 <= resp.status < 300:
            if self.state == "early":
                self.route_set = list(reversed(resp.values("Record-Route")))
            self.state = "confirmed"

    # --- inside the dialog -------------------------------------------------------------------------------
    def check_remote_cseq(self, req: Request) -> None:
        """s. 12.2.2: a lower CSeq than the last one is out of order (500); ACK/CANCEL reuse theirs."""
        if req.method in ("ACK", "CANCEL"):
            return
        num = req.cseq[0]
        if self.remote_seq is not None and num <= self.remote_seq:
            raise SipError(500, "CSeq out of order", headers=(("Retry-After", "1"),))
        self.remote_seq = num
        if req.method in ("INVITE", "UPDATE") and req.has("Contact"):
            contacts = req.contacts
            if contacts and contacts != "*":
                self.remote_target = contacts[0].uri  # target refresh

    def request(self, method: str, *, via: str, branch: str, contact: str | None,
                cseq: int | None = None, body: bytes = b"", content_type: str | None = None,
                extra: list[tuple[str, str]] | tuple = ()) -> Request:
        """s. 12.2.1.1: R-URI and Route from the remote target and route set (loose or strict routing)."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        uri: URI = self.remote_target
        routes = list(self.route_set)
        if routes:
            first = parse_name_addr(routes[0])
            if isinstance(first.uri, SipURI) and not first.uri.has_param("lr"):
                # strict router: it becomes the R-URI and the remote target goes to the end of the Route set
                uri = first.uri
                routes = routes[1:] + [f"<{self.remote_target}>"]
        to = self.remote_uri + (f";tag={self.remote_tag}" if self.remote_tag else "")
        headers = [["Via", f"{via};branch={branch}"], ["Max-Forwards", "70"],
                   ["From", f"{self.local_uri};tag={self.local_tag}"], ["To", to],
                   ["Call-ID", self.call_id], ["CSeq", f"{cseq} {method}"]]
        for r in routes:
            headers.append(["Route", r])
        if contact and method not in ("ACK", "CANCEL", "BYE"):
            headers.append(["Contact", contact])
        for n, v in extra:
            headers.append([n, v])
        if body and content_type:
            headers.append(["Content-Type", content_type])
        return Request(method, uri.copy() if isinstance(uri, SipURI) else uri, headers, body)


def cancel_for(invite: Request) -> Request:
    """RFC 3261 s. 9.1: CANCEL with the INVITE's R-URI, Call-ID, To, From, CSeq number, top Via and Route."""
    headers = [["Via", str(invite.top_via)]]
    for n, v in invite.headers:
        if n in ("From", "To", "Call-ID", "Route", "Max-Forwards"):
            headers.append([n, v])
    headers.append(["CSeq", f"{invite.cseq[0]} CANCEL"])
    return Request("CANCEL", invite.uri, headers, b"", invite.uri_text)


def _without_tag(addr: NameAddr) -> str:
    params = [(k, v) for k, v in addr.params if k.lower() != "tag"]
    return str(NameAddr(addr.uri, addr.display, params))
