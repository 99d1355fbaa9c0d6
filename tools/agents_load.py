"""Register many agent softphones whose Contact is one SIPp UAS, and sign them in: the agent side of load
tests (benchmarks/call_bench.py and the SIPp call tests).

Registration is done here over UDP with digest auth (each agent its own account); the bindings name the
SIPp UAS address so the switch's offers reach it.
"""

from __future__ import annotations

import json
import socket
import urllib.request

from softswitch.sip.digest import make_authorization
from softswitch.sip.parser import parse_message


def register_agents(sip_port: int, agents: list[tuple[str, str]], realm: str, contact_port: int,
                    expires: int = 3600, host: str = "127.0.0.1") -> int:
    """agents: (softphone number, password). Returns how many got 200."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(5)
    local = sock.getsockname()[1]
    ok = 0

    def req(user: str, cseq: int, auth: str = "") -> bytes:
        return (f"REGISTER sip:{realm} SIP/2.0\r\nVia: SIP/2.0/UDP {host}:{local};branch=z9hG4bK-ag{user}-{cseq};rport"
                f"\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{realm}>;tag=ag{user}\r\nTo: <sip:{user}@{realm}>\r\n"
                f"Call-ID: agent-{user}@{host}\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:{user}@{host}:{contact_port}>\r\nExpires: {expires}\r\n{auth}"
                "Content-Length: 0\r\n\r\n").encode()
    try:
        for user, password in agents:
            sock.sendto(req(user, 1), (host, sip_port))
            ch = parse_message(sock.recv(65535))
            value = make_authorization(ch.get_all("WWW-Authenticate")[0], "REGISTER", f"sip:{realm}", user, password)
            sock.sendto(req(user, 2, f"Authorization: {value}\r\n"), (host, sip_port))
            if parse_message(sock.recv(65535)).status == 200:
                ok += 1
    finally:
        sock.close()
    return ok


def api(base: str, method: str, path: str, body=None, token: str | None = None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def sign_in_all(http_port: int, supervisor: str, password: str, agent_ids: list[str]) -> int:
    base = f"http://127.0.0.1:{http_port}"
    token = api(base, "POST", "/api/login", {"account": supervisor, "password": password})["token"]
    n = 0
    for agent_id in agent_ids:
        if api(base, "POST", f"/api/agents/{agent_id}/sign-in", {}, token)["state"] == "idle":
            n += 1
    return n
