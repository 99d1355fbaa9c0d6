"""The `trunks` and `dial_plan` sections: SIP trunks to carriers, SBCs and providers, and which trunks an
outbound number takes (see config/example.yaml for a commented trunk).

    trunks:
      - name: carrier_a
        addresses: [203.0.113.10, 198.51.100.0/24, sbc.carrier.example]   # who it is, by source address
        proxy: sbc.carrier.example:5060      # where requests to it go (default: its first address, port 5060)
        transport: udp                       # udp, tcp or tls
        tls: {ca_file: ..., server_name: ...} # how a tls carrier's certificate is checked (see trunk_tls.py)
        codecs: [PCMA, PCMU]
        called_number: ruri                  # ruri, to, diversion or p-called-party-id (default: to with register)
        numbers: {country_code: "49", strip: "99#", send_as: national}
        calls_per_second: 20                 # its own caps (it is exempt from the per-source flood limit)
        max_calls: 200
        reach: [acd, ivr]                    # acd, ivr, agents, or all
        inbound_auth: {username: ..., password: ...}    # challenge its INVITEs (else trusted by address); a
                                                        # trunk without addresses is known by this username
        outbound_auth: {username: ..., password: ...}   # answer its challenges
        options: {interval: 30s, threshold: 3, timeout: 2s}
        register: {registrar: "sip:provider.example", username: ..., password: ..., expires: 3600}
    dial_plan:
      routes: [{numbers: "+49*", trunks: [carrier_a, carrier_b]}]
      caller_id: {default: "+4930555000", queues: {support_voice: "+4930555100"}, agents: {"1001": "..."}}
      attempt_timeout: 4s                  # a trunk silent this long after an outbound INVITE: the next is tried

Secrets are given as `password` (plain) or `password_hash` (`digest$<realm>$<md5 HA1>$<sha-256 HA1>`, from
`softswitch passwd --softphone USER --realm REALM`: the provider's realm for outbound_auth and register, the
node's for inbound_auth). A provider chooses its own passwords, so the tenant's password policy does not apply.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass, field

from ..sip.errors import SipError
from ..sip.uri import parse_uri
from ..trunks.dialplan import CallerIds, DialPlan, Route, valid_pattern
from ..trunks.numbers import FORMATS, NumberPlan
from . import reader as R
from .reader import MISSING, Bad, Reader
from .secrets import parse_softphone_hash
from .source import Located
from .trunk_tls import TrunkTls, read_trunk_tls

REACH = ("acd", "ivr", "agents", "all")
CODECS = ("PCMU", "PCMA", "telephone-event")
CALLED_FROM = ("ruri", "to", "diversion", "p-called-party-id")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_SIP_URI = re.compile(r"sips?:[^\s<>\"]+")


@dataclass(frozen=True)
class Secret:
    username: str
    password: str | None = None
    ha1: dict = field(default_factory=dict, hash=False, compare=True)     # {"MD5": .., "SHA-256": ..}
    realm: str | None = None             # the realm the ha1 was made for


@dataclass(frozen=True)
class Registration:
    registrar: str                       # sip:host[:port], the REGISTER's Request-URI
    secret: Secret
    domain: str                          # the AoR's domain (default: the registrar's host)
    expires: int = 3600
    retry: float = 5.0
    retry_max: float = 300.0


@dataclass(frozen=True)
class OptionsPing:
    interval: float = 30.0
    threshold: int = 3
    timeout: float = 2.0


@dataclass(frozen=True)
class Trunk:
    name: str
    addresses: tuple[str, ...] = ()
    proxy: tuple[str, int] | None = None
    transport: str = "udp"
    codecs: tuple[str, ...] = ("PCMU", "PCMA", "telephone-event")
    called_number: str = "ruri"
    numbers: NumberPlan = NumberPlan()
    calls_per_second: float = 0.0        # 0: no cap
    burst: int = 0                       # 0: calls_per_second (at least 1)
    max_calls: int = 0                   # 0: no cap
    reach: tuple[str, ...] = ("all",)
    inbound_auth: Secret | None = None
    outbound_auth: Secret | None = None
    options: OptionsPing | None = None
    register: Registration | None = None
    tls: TrunkTls = TrunkTls()

    def may_reach(self, kind: str) -> bool:
        """kind: acd, ivr, agents."""
        return "all" in self.reach or kind in self.reach

    def target(self) -> tuple[str, int] | None:
        """Where requests to the trunk go."""
        if self.proxy is not None:
            return self.proxy
        for a in self.addresses:
            if "/" not in a:
                return (a, 5061 if self.transport == "tls" else 5060)
        return None


@dataclass(frozen=True)
class TrunkSettings:
    trunks: tuple[Trunk, ...] = ()
    dial_plan: DialPlan = DialPlan()

    def trunk(self, name: str) -> Trunk | None:
        return next((t for t in self.trunks if t.name == name), None)


def register_proto(reg: Registration, default: str = "udp") -> str:
    """The transport a registration goes over: the registrar URI's (sips: is TLS), else the trunk's."""
    uri = parse_uri(reg.registrar)
    if uri.scheme == "sips":
        return "tls"
    return (uri.param("transport") or default).lower()


def _address(r, loc, path) -> str:
    v = R.nonempty(r, loc, path)
    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        pass
    if "/" in v:
        try:
            return str(ipaddress.ip_network(v, strict=False))
        except ValueError:
            raise Bad(f"expected an IP address, a network like 198.51.100.0/24 or a host name, got {v!r}") from None
    return R.host(r, loc, path)


def _proxy(r, loc, path) -> tuple[str, int]:
    v = R.nonempty(r, loc, path)
    if re.fullmatch(r"[^:\[\]]+|\[[0-9A-Fa-f:.]+\]", v):
        return (R.host(r, Located(v.strip("[]"), loc.line), path), 0)    # port 0: the transport's default
    return R.host_port(r, loc, path)


def _registrar(r, loc, path) -> str:
    v = R.nonempty(r, loc, path)
    try:
        ok = _SIP_URI.fullmatch(v) is not None and parse_uri(v).is_sip()
    except SipError:
        ok = False
    if not ok:
        raise Bad(f"expected a SIP URI like sip:provider.example:5060, got {v!r}")
    return v


def _secret(r: Reader, loc: Located | None, path: str, extra: dict | None = None) -> tuple[Secret | None, dict]:
    spec = {"username": (R.nonempty, MISSING), "password": (R.nonempty, None), "password_hash": (R.nonempty, None)}
    spec.update(extra or {})
    s = r.mapping(loc, path, spec)
    if s["password"] is not None and s["password_hash"] is not None:
        r.error(loc.line, path, "give either password or password_hash, not both")
        return None, s
    if s["password"] is None and s["password_hash"] is None:
        r.error(loc.line, f"{path}.password", "required key is missing (or give password_hash)")
        return None, s
    if s["username"] is None:
        return None, s
    if s["password_hash"] is not None:
        try:
            realm, ha1 = parse_softphone_hash(s["password_hash"])
        except ValueError as exc:
            r.error(loc.items["password_hash"].line, f"{path}.password_hash", str(exc))
            return None, s
        return Secret(s["username"], None, ha1, realm), s
    return Secret(s["username"], s["password"]), s


def _trunk(r: Reader, item: Located, path: str, realm: str) -> Trunk | None:
    d = Trunk("x")
    t = r.mapping(item, path, {
        "name": (R.nonempty, MISSING), "addresses": (R.list_of(_address), list), "proxy": (_proxy, None),
        "transport": (R.choice("udp", "tcp", "tls"), "udp"), "codecs": (R.list_of(R.choice(*CODECS), 1), None),
        "called_number": (R.choice(*CALLED_FROM), None), "numbers": (lambda r, l, p: l, None),
        "calls_per_second": (R.integer(0, 100000), 0), "burst": (R.integer(0, 1000000), 0),
        "max_calls": (R.integer(0, 1000000), 0), "reach": (R.list_of(R.choice(*REACH), 1), None),
        "inbound_auth": (lambda r, l, p: l, None), "outbound_auth": (lambda r, l, p: l, None),
        "options": (lambda r, l, p: l, None), "register": (lambda r, l, p: l, None),
        "tls": (lambda r, l, p: l, None)})
    n = r.mapping(t["numbers"], f"{path}.numbers", {
        "country_code": (_digits, ""), "national_prefix": (_digits, "0"), "international_prefix": (_digits, "00"),
        "strip": (_prefix, ""), "add": (_prefix, ""), "send_as": (R.choice(*FORMATS), "e164")})
    inbound = _secret(r, t["inbound_auth"], f"{path}.inbound_auth")[0] if t["inbound_auth"] else None
    if inbound is not None and inbound.realm is not None and inbound.realm != realm:
        r.error(t["inbound_auth"].items["password_hash"].line, f"{path}.inbound_auth.password_hash",
                f"hash was made for realm {inbound.realm!r} but the trunk is challenged in server.sip.realm "
                f"{realm!r}")
    outbound = _secret(r, t["outbound_auth"], f"{path}.outbound_auth")[0] if t["outbound_auth"] else None
    options = None
    o = t["options"]
    if o is not None and not (o.kind == "scalar" and o.value is False):
        if o.kind == "scalar" and o.value is True:
            options = OptionsPing()
        else:
            p = r.mapping(o, f"{path}.options", {"interval": (R.duration(0.1, 3600), 30.0),
                                                 "threshold": (R.integer(1, 100), 3),
                                                 "timeout": (R.duration(0.1, 64), 2.0)})
            options = OptionsPing(p["interval"], p["threshold"], p["timeout"])
    register = None
    if t["register"] is not None:
        secret, g = _secret(r, t["register"], f"{path}.register", {
            "registrar": (_registrar, MISSING), "domain": (R.host, None),
            "expires": (R.integer(10, 604800), 3600), "retry": (R.duration(0.1, 3600), 5.0),
            "retry_max": (R.duration(0.1, 86400), 300.0)})
        if g["retry"] and g["retry_max"] and g["retry"] > g["retry_max"]:
            r.error(t["register"].line, f"{path}.register.retry", "must not exceed retry_max")
        if secret is not None and g["registrar"] is not None:
            host = parse_uri(g["registrar"]).host.strip("[]")
            register = Registration(g["registrar"], secret, g["domain"] or host, g["expires"],
                                    g["retry"], g["retry_max"])
    if t["name"] is not None and not _NAME.fullmatch(t["name"]):
        r.error(item.items["name"].line, f"{path}.name", f"use letters, digits, '_', '.' and '-' only; got "
                                                         f"{t['name']!r}")
        return None
    if t["name"] is None:
        return None
    if not t["addresses"] and inbound is None and register is None and t["proxy"] is None:
        r.error(item.line, path, "a trunk needs addresses, inbound_auth, register or a proxy (who it is)")
    tls = read_trunk_tls(r, t["tls"], f"{path}.tls")
    if t["tls"] is not None and t["transport"] != "tls" and (register is None or register_proto(register) != "tls"):
        r.error(item.items["tls"].line, f"{path}.tls", "only used with transport: tls (or a sips: registrar)")
    proxy = t["proxy"]
    if proxy is not None and proxy[1] == 0:
        proxy = (proxy[0], 5061 if t["transport"] == "tls" else 5060)
    cps = t["calls_per_second"] or 0
    return Trunk(t["name"], tuple(t["addresses"] or ()), proxy, t["transport"],
                 tuple(t["codecs"]) if t["codecs"] else d.codecs,
                 # calls on a registration are sent to the registered contact: the DID is in To
                 t["called_number"] or ("to" if register is not None else "ruri"),
                 NumberPlan(**n), float(cps), t["burst"] or max(1, cps), t["max_calls"] or 0,
                 tuple(t["reach"]) if t["reach"] else ("all",), inbound, outbound, options, register, tls)


_digits = R.matching(r"[0-9]{0,6}", 'up to 6 digits (quote it: "49")')
_prefix = R.matching(r"[0-9*#+]{0,16}", "up to 16 of 0-9 * # +")


def _number(r, loc, path) -> str:
    return R.number_string(r, loc, path)


def _number_map(r: Reader, loc: Located | None, path: str, known: set[str], what: str) -> dict:
    out: dict = {}
    if loc is None:
        return out
    if loc.kind != "mapping":
        r.error(loc.line, path, f"expected a mapping of {what} to caller number, got {R.describe(loc)}")
        return out
    for key, sub in loc.items.items():
        line = loc.key_lines.get(key, sub.line)
        if key not in known:
            r.error(line, f"{path}.{key}", f"no {what} {key!r}")
        try:
            out[key] = _number(r, sub, f"{path}.{key}")
        except Bad as exc:
            r.error(sub.line, f"{path}.{key}", str(exc))
    return out


def read_trunks(r: Reader, trunks_loc: Located | None, plan_loc: Located | None, realm: str,
                queues: set[str], agents: set[str], softphones: set[str] = frozenset()) -> TrunkSettings:
    trunks: list[Trunk] = []
    owner: dict[str, str] = {}
    names: set[str] = set()
    known_by: dict[str, str] = {}       # inbound_auth username -> the trunk it alone identifies (no addresses)
    for path, item in r.items_of(trunks_loc, "trunks"):
        t = _trunk(r, item, path, realm)
        if t is None:
            continue
        if t.name in names:
            r.error(item.items["name"].line, f"{path}.name", f"{t.name!r} is already the name of another trunk")
            continue
        names.add(t.name)
        for a in t.addresses:
            if a in owner:
                r.error(item.items["addresses"].line, f"{path}.addresses",
                        f"{a} is already an address of trunk {owner[a]!r}")
            owner.setdefault(a, t.name)
        if t.inbound_auth is not None and not t.addresses:
            # its INVITEs are told from anyone's by this username alone
            user, line = t.inbound_auth.username, item.items["inbound_auth"].line
            if user in softphones:
                r.error(line, f"{path}.inbound_auth.username", f"{user!r} is an agent's softphone number: the "
                        "agent's own calls would be taken for the trunk's")
            elif user in known_by:
                r.error(line, f"{path}.inbound_auth.username", f"{user!r} already identifies trunk "
                        f"{known_by[user]!r}")
            known_by.setdefault(user, t.name)
        trunks.append(t)
    plan = DialPlan()
    if plan_loc is not None:
        p = r.mapping(plan_loc, "dial_plan", {"routes": (lambda r, l, p: l, None),
                                              "caller_id": (lambda r, l, p: l, None),
                                              "attempt_timeout": (R.duration(0.5, 32), 4.0)})
        routes = []
        for path, item in r.items_of(p["routes"], "dial_plan.routes"):
            e = r.mapping(item, path, {"numbers": (R.text, MISSING), "trunks": (R.list_of(R.nonempty, 1), MISSING)})
            if e["numbers"] is not None and not valid_pattern(e["numbers"]):
                r.error(item.items["numbers"].line, f"{path}.numbers",
                        f"expected a number pattern like +49*, +1XXXXXXXXXX or *, got {e['numbers']!r}")
                continue
            for name in e["trunks"] or ():
                if name not in names:
                    hint = _close(name, names)
                    r.error(item.items["trunks"].line, f"{path}.trunks", f"no trunk {name!r}{hint}")
            if e["numbers"] is not None and e["trunks"]:
                routes.append(Route(e["numbers"], tuple(e["trunks"])))
        c = r.mapping(p["caller_id"], "dial_plan.caller_id", {"default": (_number, None),
                                                              "queues": (lambda r, l, p: l, None),
                                                              "agents": (lambda r, l, p: l, None)})
        plan = DialPlan(tuple(routes), CallerIds(
            c["default"], _number_map(r, c["queues"], "dial_plan.caller_id.queues", queues, "skill queue"),
            _number_map(r, c["agents"], "dial_plan.caller_id.agents", agents, "agent")),
            p["attempt_timeout"] if p["attempt_timeout"] is not None else 4.0)
    return TrunkSettings(tuple(trunks), plan)


def _close(name: str, names: set[str]) -> str:
    hint = difflib.get_close_matches(name, sorted(names), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""
