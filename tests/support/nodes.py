"""Nodes for tests: a registrar node with known softphone accounts, and digest helpers."""

from __future__ import annotations

from softswitch.registrar.credentials import Credentials, ha1_pair
from softswitch.registrar.registrar import RegistrarOptions
from softswitch.sip.digest import make_authorization
from softswitch.sip.message import Response
from softswitch.sip.parser import parse_message
from tests.conftest import running_node

REALM = "cc.test"
ACCOUNTS = {"70001": "Agent-Pass-1!", "70002": "Agent-Pass-2!", "70003": "Agent-Pass-3!",
            "null-\x00-null": "Nul-Pass-0!", "j.user": "J-User-Pass-9!"}


def credentials(accounts=ACCOUNTS, realm=REALM) -> Credentials:
    return Credentials(realm, {u: ha1_pair(u, realm, p) for u, p in accounts.items()})


def registrar_node(accounts=ACCOUNTS, registrar: RegistrarOptions | None = None, **opts):
    """A running node whose registrar knows `accounts` (user -> password) in realm REALM."""
    reg = registrar or RegistrarOptions(realm=REALM)
    return running_node(credentials=credentials(accounts, reg.realm), registrar=reg, **opts)


def authorize(raw: bytes, challenge: Response, user: str, password: str, cseq_bump: int = 1,
              algorithm: str = "MD5", nc: int = 1) -> bytes:
    """Re-send a request with credentials for the challenge of the given algorithm."""
    req = parse_message(raw)
    value = next(v for v in challenge.get_all("WWW-Authenticate") if f"algorithm={algorithm}" in v)
    req.add("Authorization", make_authorization(value, req.method, req.uri_text or str(req.uri), user, password,
                                                nc=nc))
    num, method = req.cseq
    req.set("CSeq", f"{num + cseq_bump} {method}")
    via = req.top_via
    via.set_param("branch", (via.branch or "z9hG4bK") + f"-a{cseq_bump}")
    req.set_vias(req.vias)
    return req.serialize()
