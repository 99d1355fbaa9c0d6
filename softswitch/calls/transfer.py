"""Blind transfer of a connected call: where it may go, and what giving it there does.

A target is a skill queue (the customer keeps their priority and their first arrival, and hears no welcome
again), an agent (rung through the ACD only when ready, else the call waits in that agent's queue), an IVR
flow, or a number (the outbound path: a registered phone, else the outbound dial plan's trunks).

Asked from the API (`queue:sales`, `agent:1002`, `ivr:menu`, `number:70009`, or a bare name resolved in that
order and then by the called routes) or by a phone's REFER (RFC 3515), whose Refer-To URI's user part is such a
bare name. The transferring agent leaves: their leg is hung up (after the REFER's final NOTIFY) and the ACD
puts them in wrap-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from urllib.parse import unquote

from .effects import (AcdCallEnded, AcdTransfer, Bridge, CloseMedia, CloseRecording, DialNumber, Forget, HoldCustomer,
                      Log, Notify, Reinvite, StartIvr)
from .errors import RemoteCallError
from .hangup import hangup

KINDS = ("queue", "agent", "ivr", "number")
MAX_TARGET = 128


class TransferError(RemoteCallError):
    """A transfer refused: `status` is the HTTP status to answer (a REFER's SIP status maps from it)."""


@dataclass(frozen=True)
class Target:
    kind: str           # queue, agent, ivr, number
    name: str


def resolve(text: str, *, queues, agents: dict[str, str], flows, route: Callable[[str], tuple[str, str] | None]
            ) -> Target:
    """The target named by `text`. agents: agent id -> softphone; route(number): (kind, target) of the
    called routes, or None."""
    text = (text or "").strip()
    if not text or len(text) > MAX_TARGET or any(c in text for c in "\r\n\0"):
        raise TransferError(400, "a transfer needs a target: queue:NAME, agent:ID, ivr:FLOW or number:DIGITS")
    kind, sep, name = text.partition(":")
    if sep and kind in KINDS:
        name = name.strip()
        if kind == "queue" and name not in queues:
            raise TransferError(404, f"no skill queue {name!r}")
        if kind == "agent":
            name = _agent_id(name, agents)
            if name is None:
                raise TransferError(404, f"no agent {text.partition(':')[2].strip()!r}")
        if kind == "ivr" and name not in flows:
            raise TransferError(404, f"no IVR flow {name!r}")
        if kind == "number" and not _dialable(name):
            raise TransferError(400, f"not a number: {name!r}")
        return Target(kind, name)
    if text in queues:
        return Target("queue", text)
    agent = _agent_id(text, agents)
    if agent is not None:
        return Target("agent", agent)
    if text in flows:
        return Target("ivr", text)
    routed = route(text)
    if routed is not None and routed[0] in ("queue", "ivr"):
        return Target(*routed)
    if _dialable(text):
        return Target("number", text)
    raise TransferError(404, f"no transfer target {text!r}")


def _agent_id(name: str, agents: dict[str, str]) -> str | None:
    if name in agents:
        return name
    return next((a for a, phone in agents.items() if phone == name), None)


def _dialable(name: str) -> bool:
    digits = name[1:] if name.startswith("+") else name
    return 0 < len(digits) <= 32 and digits.isdigit()


def refer_target(uri_user: str | None) -> str:
    """The bare target name a REFER's Refer-To names (the URI's user part)."""
    if not uri_user:
        raise TransferError(400, "Refer-To names no user")
    return uri_user


def replaces_of(uri_headers: str | None) -> tuple[str, str, str] | None:
    """(call-id, to-tag, from-tag) of a Refer-To URI's Replaces header (RFC 3891 s. 6.1, escaped as a URI
    header, RFC 3515 s. 2.1), None without one; TransferError for one that is malformed."""
    for part in (uri_headers or "").split("&"):
        name, _, value = part.partition("=")
        if name.strip().lower() != "replaces":
            continue
        fields = unquote(value).split(";")
        params = dict(p.strip().partition("=")[::2] for p in fields[1:])
        call_id, to_tag, from_tag = fields[0].strip(), params.get("to-tag", ""), params.get("from-tag", "")
        if not call_id or not to_tag or not from_tag or len(call_id) > 256:
            raise TransferError(400, "Replaces needs a call-id, to-tag and from-tag")
        return call_id, to_tag, from_tag
    return None


def check(call, by_agent: str | None) -> None:
    """Whether `call` may be transferred now by `by_agent` (None: a supervisor, any call)."""
    if call is None or call.ended:
        raise TransferError(404, "no such call")
    if call.agent_leg is None or call.outbound_to is not None or call.agent_leg.state != "confirmed":
        raise TransferError(409, "only a customer's call connected to an agent can be transferred")
    if by_agent is not None and call.agent_leg.agent_id != by_agent:
        raise TransferError(403, "agents may only transfer their own calls")


def blind(call, target: Target, now: float, *, by: str, talking: bool, refer=None) -> list:
    """Give the connected call to `target`. talking: the ACD has the call as connected (else the agent's leg
    is simply dropped). refer: the agent leg whose REFER asked it; it hears 100 then 200 (sipfrag) before its
    BYE."""
    check(call, None)
    if call.consult is not None:
        raise TransferError(409, "finish the consult first (complete, conference or cancel)")
    agent = call.agent_leg
    if target.kind == "agent" and target.name == agent.agent_id:
        raise TransferError(409, "an agent cannot transfer a call to themselves")
    if target.kind in ("queue", "agent") and not talking:
        raise TransferError(409, "the call is not known to the ACD: it can go to an IVR or a number only")
    record = {"at": round(now, 3), "from_agent": agent.agent_id, "kind": target.kind, "to": target.name, "by": by}
    call.transfers = [*(call.transfers or ()), record]
    call.agent_leg = None
    out: list = [Log("call_transferred", {"call_id": call.id, **record})]
    if refer is not None:
        out += [Notify(refer, 100, "Trying", False)]
    out += [HoldCustomer(call, music=target.kind != "ivr")]
    if call.recording is not None:
        out.append(CloseRecording(call))
    if target.kind == "queue":
        call.queue = target.name
        out.append(AcdTransfer(call.id, target.name, ""))
    elif target.kind == "agent":
        out.append(AcdTransfer(call.id, "", target.name))
    else:
        if talking:
            out.append(AcdCallEnded(call.id))
        out.append(StartIvr(call, target.name) if target.kind == "ivr" else DialNumber(call, target.name))
    if refer is not None:
        out.append(Notify(refer, 200, "OK", True))
    sup = call.supervisor
    call.supervisor = None
    for leg in (agent, sup):
        if leg is not None:
            out += [*hangup(leg), Forget(leg), CloseMedia(leg)]
    return out


def number_answered(call, leg, body: bytes, anchored: bool) -> list:
    """The number a call was given to answered: it is the call's other party now."""
    call.offers.pop("", None)
    call.agent_leg = leg
    out: list = [Log("transfer_connected", {"call_id": call.id, "to": leg.remote_uri})]
    if anchored and leg.stream is not None and body:
        out.append(Bridge(call, leg, body))
    elif body and call.customer.state == "confirmed":
        out.append(Reinvite(call.customer, body))
    return out


def sip_status(status: int) -> int:
    """A refused REFER's SIP answer for a TransferError's HTTP-like status."""
    return {400: 400, 403: 403, 404: 404, 409: 603, 501: 501}.get(status, 500)
