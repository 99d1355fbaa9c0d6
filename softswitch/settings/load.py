"""Build a Config from YAML text, strictly: every problem is reported with file, line and key."""

from __future__ import annotations

import gc
import re
import socket
from pathlib import Path

from . import reader as R
from .model import (QUEUE_TYPES, STRATEGIES, Agent, KeepaliveSettings, SecuritySettings, CalledRoute, Config, Employee, IvrStep, ListenSpec,
                    MediaSettings, Overflow, OverloadSettings, RegistrarSettings, ServerSettings, SipSettings, SkillQueue,
                    StorageSettings)
from .reader import MISSING, Bad, Reader
from .secrets import RULES, PasswordPolicy, hash_password, parse_softphone_hash, valid_password_hash
from .long_lists import read_tree
from .source import ConfigError, Located
from .chat import read_chat
from .prompts import prompt_file
from .trunks import read_trunks
from .wallboard import percent, read_wallboard
from .widgets import read_click_to_dial
from ..registrar.credentials import ha1_pair

NAME = re.compile(r"[A-Za-z0-9_.-]+")
_name_match = NAME.fullmatch


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([(str(path), 0, "", f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([(str(path), 0, "", f"not UTF-8 text: {exc.reason}")]) from None
    return parse_config(text, str(path))


def parse_config(text: str, file: str = "<config>") -> Config:
    # A big tenant is a few hundred thousand long-lived objects made in one go: left on, the cyclic collector
    # walks them again and again while they are built (most of the load time at 20,000 agents).
    paused = gc.isenabled()
    gc.disable()
    try:
        return _parse(text, file)
    finally:
        if paused:
            gc.enable()


def _parse(text: str, file: str) -> Config:
    root = read_tree(text, file)
    r = Reader(file)
    top = r.mapping(root, "", {
        "server": (lambda r, l, p: l, MISSING), "pool": (lambda r, l, p: l, None),
        "password_policy": (lambda r, l, p: l, None), "employees": (lambda r, l, p: l, None),
        "agents": (lambda r, l, p: l, None), "skill_queues": (lambda r, l, p: l, None),
        "called_routes": (lambda r, l, p: l, None), "ivr": (lambda r, l, p: l, None),
        "wallboard": (lambda r, l, p: l, None), "click_to_dial": (lambda r, l, p: l, None),
        "phones": (lambda r, l, p: l, None),
        "chat": (lambda r, l, p: l, None),
        "trunks": (lambda r, l, p: l, None), "dial_plan": (lambda r, l, p: l, None),
    })
    server = _server(r, top["server"])
    policy = _policy(r, top["password_policy"])
    employees = _employees(r, top["employees"], policy)
    agents = _agents(r, top["agents"], policy, server.sip.realm if server else "")
    queues = _queues(r, top["skill_queues"])
    routes = _routes(r, top["called_routes"])
    ivr = _ivr(r, top["ivr"])
    pool = r.mapping(top["pool"], "pool", {"nodes": (_pool_nodes, list)}) if top["pool"] else {"nodes": []}
    wallboard = read_wallboard(r, top["wallboard"], {q.name for q in queues})
    chat = read_chat(r, top["chat"], {a.id: a.queues for a in agents},
                     {q.name for q in queues if q.type == "multimedia"})
    c2d = read_click_to_dial(r, top["click_to_dial"], routes, {q.name: q.type for q in queues}.get)
    trunks = read_trunks(r, top["trunks"], top["dial_plan"], server.sip.realm if server else "",
                         {q.name for q in queues}, {a.id for a in agents}, {a.softphone for a in agents})
    cfg = Config(file, server, policy, tuple(employees), tuple(agents), tuple(queues), tuple(routes), ivr,
                 tuple(pool["nodes"] or ()), wallboard,
                 _phones(r, top["phones"]), chat, click_to_dial=c2d, trunks=trunks)
    if server is not None:
        # also after problems in the sections (a bad value has been read as its default), so one run
        # reports every problem: a wrong name is found beside a typo'd key
        _cross_check(r, cfg, root)
    if r.problems:
        raise ConfigError(r.problems)
    return cfg


# --- sections ---------------------------------------------------------------------------------------------
def _listen(r, loc, path) -> ListenSpec:
    v = R.nonempty(r, loc, path)
    m = re.fullmatch(r"(udp|tcp|ws|wss|tls):(.+)", v)
    if not m:
        raise Bad(f"expected TRANSPORT:HOST:PORT with TRANSPORT one of udp, tcp, tls, ws, wss; got {v!r}")
    host, port = R.host_port(r, Located(m.group(2), loc.line), path)
    return ListenSpec(m.group(1), host, port)


# A pool node as the agent page's browser phone reaches it: its SIP WebSocket URL (it also goes into the page's
# Content-Security-Policy, so nothing but a scheme, a host, a port and a plain path).
_WS_URL = re.compile(r"(wss?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})(/[A-Za-z0-9._~/-]*)?")


def _pool_node(r, loc, path) -> str:
    v = R.nonempty(r, loc, path).strip()
    m = _WS_URL.fullmatch(v)
    if not m or not 1 <= int(m.group(3)) <= 65535:
        raise Bad(f"expected the node's SIP WebSocket URL, ws://HOST:PORT or wss://HOST:PORT; got {v!r}")
    R.host(r, Located(m.group(2).strip("[]"), loc.line), path)
    return v


def _pool_nodes(r, loc, path) -> list[str]:
    out = R.list_of(_pool_node)(r, loc, path)
    if len(out) > 4:
        raise Bad(f"a pool has at most 4 nodes, got {len(out)}")
    if len(set(out)) != len(out):
        raise Bad("a node is listed twice")
    return out


def _ports(r, loc, path) -> tuple[int, int]:
    v = R.text(r, loc, path)
    m = re.fullmatch(r"([0-9]{1,5})-([0-9]{1,5})", v)     # ASCII digits, few: int() stays cheap and total
    if not m or not (1024 <= int(m.group(1)) < int(m.group(2)) <= 65535):
        raise Bad(f"expected LOW-HIGH with 1024 <= LOW < HIGH <= 65535, got {v!r}")
    lo, hi = int(m.group(1)), int(m.group(2))
    return (lo + lo % 2, hi)       # RTP takes even ports


def _digest_algorithms(r, loc, path) -> tuple[str, ...]:
    out = tuple(R.list_of(R.choice("MD5", "SHA-256"), 1)(r, loc, path))
    if len(set(out)) != len(out):
        raise Bad("an algorithm is listed twice")
    return out


def _server(r: Reader, loc: Located) -> ServerSettings | None:
    s = r.mapping(loc, "server", {
        "node_id": (R.nonempty, lambda: socket.gethostname()), "sip": (lambda r, l, p: l, MISSING),
        "drain_timeout": (R.duration(0, 86400), 30.0), "watchdog": (lambda r, l, p: l, None),
        "http": (lambda r, l, p: l, None), "media": (lambda r, l, p: l, None),
        "storage": (lambda r, l, p: l, None)})
    sip = r.mapping(s["sip"], "server.sip", {
        "listen": (R.list_of(_listen, 1), MISSING), "domain": (R.host, MISSING), "realm": (R.nonempty, None),
        "user_agent": (R.nonempty, "softswitch"), "registrar": (lambda r, l, p: l, None),
        "session_expires": (R.duration(90, 86400), 1800.0), "max_calls": (R.integer(0, 1000000), 5000),
        "security": (lambda r, l, p: l, None), "tls": (lambda r, l, p: l, None),
        "overload": (lambda r, l, p: l, None)})
    tls = r.mapping(sip["tls"], "server.sip.tls", {"certificate": (R.readable_file, MISSING),
                                                   "key": (R.readable_file, MISSING)}) if sip["tls"] else None
    if any(spec.transport in ("tls", "wss") for spec in (sip["listen"] or ())) and not tls:
        r.error(s["sip"].line if s["sip"] else 0, "server.sip.tls",
                "tls: and wss: listeners need server.sip.tls {certificate, key}")
    d = RegistrarSettings()
    reg = r.mapping(sip["registrar"], "server.sip.registrar", {
        "min_expires": (R.integer(1, 86400), d.min_expires), "max_expires": (R.integer(1, 604800), d.max_expires),
        "default_expires": (R.integer(1, 604800), d.default_expires),
        "max_contacts": (R.integer(1, 100), d.max_contacts), "randomize_expires": (R.boolean, False),
        "nonce_ttl": (R.duration(5, 86400), d.nonce_ttl), "digest": (_digest_algorithms, d.digest)})
    if reg["min_expires"] and reg["max_expires"] and reg["min_expires"] > reg["max_expires"]:
        r.error(sip["registrar"].line if sip["registrar"] else 0, "server.sip.registrar.min_expires",
                "must not exceed max_expires")
    sec = r.mapping(sip["security"], "server.sip.security", {
        "rate": (R.integer(1, 1000000), 200), "burst": (R.integer(1, 1000000), 400),
        "flood_ban_after": (R.integer(1, 1000000), 200), "auth_failures": (R.integer(1, 10000), 10),
        "window": (R.duration(1, 86400), 60.0), "ban_time": (R.duration(0, 604800), 600.0),
        "scanners": (R.list_of(R.nonempty), None), "exempt": (R.list_of(R.host), list),
        "max_message_size": (R.integer(1024, 65535), 16384), "max_vias": (R.integer(2, 100), 20),
        "outbound_calls_per_minute": (R.integer(1, 100000), 20),
        "account_failures": (R.integer(0, 1000), 10), "account_window": (R.duration(1, 86400), 600.0),
        "account_lock_time": (R.duration(1, 86400), 300.0)})
    ovl = r.mapping(sip["overload"], "server.sip.overload", {
        "enabled": (R.boolean, True), "queue_delay": (R.duration(0.01, 60), 0.2), "sustain": (R.duration(0, 60), 0.5),
        "drop_after": (R.duration(0.01, 600), 2.0), "retry_after": (R.integer(1, 3600), 5),
        "front": (R.boolean, True)})
    wd = r.mapping(s["watchdog"], "server.watchdog", {"stall_threshold": (R.duration(0.001, 60), 0.1)})
    http = r.mapping(s["http"], "server.http", {"listen": (R.host_port, None)})
    media = r.mapping(s["media"], "server.media", {"address": (R.host, "127.0.0.1"),
                                                   "rtp_ports": (_ports, (20000, 29999)), "anchor": (R.boolean, True)})
    storage = r.mapping(s["storage"], "server.storage", {
        "cdr": (_storage_url, StorageSettings.cdr), "state": (_state_url, "memory")})
    if not sip["listen"]:
        return None
    seen = set()
    for spec in sip["listen"]:
        if (spec.transport, spec.host, spec.port) in seen:
            r.error(s["sip"].line, "server.sip.listen", f"{spec} is listed twice")
        seen.add((spec.transport, spec.host, spec.port))
    return ServerSettings(
        node_id=s["node_id"], drain_timeout=s["drain_timeout"],
        sip=SipSettings(tuple(sip["listen"]), sip["domain"] or "", sip["realm"] or sip["domain"] or "",
                        sip["user_agent"], RegistrarSettings(**reg), sip["session_expires"],
                        sip["max_calls"], (tls["certificate"], tls["key"]) if tls else None, SecuritySettings(**{k: (tuple(v) if isinstance(v, list) else v)
                                                              for k, v in sec.items() if v is not None}),
                        OverloadSettings(**ovl)),
        http_listen=http["listen"], media=MediaSettings(**media), storage=StorageSettings(**storage),
        stall_threshold=wd["stall_threshold"])


def _storage_url(r, loc, path) -> str:
    v = R.nonempty(r, loc, path)
    if not re.match(r"(sqlite:///|postgresql://|postgres://)", v):
        raise Bad(f"expected sqlite:///PATH or postgresql://..., got {v!r}")
    return v


def _state_url(r, loc, path) -> str:
    v = R.nonempty(r, loc, path)
    if v != "memory" and not re.match(r"rediss?://", v):
        raise Bad(f"expected memory or redis://HOST:PORT/DB, got {v!r}")
    return v


def _phones(r: Reader, loc: Located | None) -> KeepaliveSettings:
    """phones: {keepalive: {interval, timeout, failures}}: how registered phones are checked."""
    d = KeepaliveSettings()
    p = r.mapping(loc, "phones", {"keepalive": (lambda r, l, p: l, None)})
    k = r.mapping(p["keepalive"], "phones.keepalive", {
        "interval": (R.duration(0, 86400), d.interval), "timeout": (R.duration(0.1, 600), d.timeout),
        "failures": (R.integer(1, 100), d.failures)})
    interval, timeout = k["interval"], k["timeout"]
    if interval and 0 < interval < 1:
        r.error(p["keepalive"].items["interval"].line, "phones.keepalive.interval",
                "must be 0 (off) or at least 1s")
        interval = d.interval
    elif interval and timeout >= interval:
        key = "timeout" if "timeout" in p["keepalive"].items else "interval"
        r.error(p["keepalive"].items[key].line, f"phones.keepalive.{key}",
                f"timeout ({timeout:g}s) must be shorter than interval ({interval:g}s)")
        timeout = min(d.timeout, interval / 2)
    return KeepaliveSettings(interval, timeout, k["failures"])


def _policy(r: Reader, loc: Located | None) -> PasswordPolicy:
    p = r.mapping(loc, "password_policy", {
        "min_length": (R.integer(1, 128), 8), "require": (R.list_of(R.choice(*RULES)), list(RULES)),
        "forbid_account_name": (R.boolean, True)})
    return PasswordPolicy(p["min_length"] or 8, tuple(p["require"] or ()), p["forbid_account_name"])


def _name(r, loc, path) -> str:
    v = loc.value
    if type(v) is str and _name_match(v):
        return v
    v = R.nonempty(r, loc, path)
    if not NAME.fullmatch(v):
        raise Bad(f"use letters, digits, '_', '.' and '-' only; got {v!r}")
    return v


def _secret(r: Reader, e: dict, loc: Located, path: str, account: str, policy: PasswordPolicy,
            plain_key: str, hash_key: str) -> str | None:
    """The plain form is accepted (checked against the policy, hashed at load) but never required."""
    if e[plain_key] is not None and e[hash_key] is not None:
        r.error(loc.line, path, f"give either {plain_key} or {hash_key}, not both")
        return None
    if e[plain_key] is not None:
        bad = policy.violations(e[plain_key], account)
        if bad:
            r.error(loc.items[plain_key].line, f"{path}.{plain_key}",
                    f"password of {account!r} breaks the password policy: {'; '.join(bad)}")
            return None
        return e[plain_key]
    return None


def _employees(r: Reader, loc, policy) -> list[Employee]:
    out = []
    spec = {"account": (_name, MISSING), "name": (R.nonempty, MISSING), "department": (R.text, ""),
            "phone": (R.text, ""), "password_hash": (R.nonempty, None), "password": (R.text, None),
            "role": (R.choice("agent", "supervisor", "admin"), "agent"),
            "must_change_password": (R.boolean, True)}
    for path, item in r.items_of(loc, "employees"):
        e = r.mapping(item, path, spec)
        if e["account"] is None:
            continue
        plain = _secret(r, e, item, path, e["account"], policy, "password", "password_hash")
        encoded = e["password_hash"]
        if encoded is not None and (why := valid_password_hash(encoded)):
            r.error(item.items["password_hash"].line, f"{path}.password_hash", why)
        if plain is not None:
            encoded = hash_password(plain, iterations=20_000)
        if encoded is None and e["password"] is None:
            r.error(item.line, f"{path}.password_hash", "required key is missing (make one with `softswitch passwd`)")
        out.append(Employee(e["account"], e["name"] or "", e["department"], e["phone"], encoded or "", e["role"],
                            e["must_change_password"]))
    return out


def _agents(r: Reader, loc, policy, realm: str) -> list[Agent]:
    out = []
    spec = {"id": (R.number_string, MISSING), "account": (_name, MISSING), "softphone": (R.number_string, MISSING),
            "softphone_password_hash": (R.nonempty, None), "softphone_password": (R.text, None),
            "queues": (R.list_of(_agent_queue), list), "auto_answer_after": (R.duration(0, 60), 2.0),
            "digest": (_digest_algorithms, ())}
    for path, item in r.items_of(loc, "agents"):
        a = r.mapping(item, path, spec)
        if a["id"] is None or a["softphone"] is None:
            continue
        ha1 = None
        plain = _secret(r, a, item, path, a["account"] or a["softphone"], policy,
                        "softphone_password", "softphone_password_hash")
        if plain is not None:
            ha1 = ha1_pair(a["softphone"], realm, plain)
        elif a["softphone_password_hash"] is not None:
            try:
                hrealm, ha1 = parse_softphone_hash(a["softphone_password_hash"])
                if hrealm != realm:
                    r.error(item.items["softphone_password_hash"].line, f"{path}.softphone_password_hash",
                            f"hash was made for realm {hrealm!r} but server.sip.realm is {realm!r}; "
                            f"make a new one with `softswitch passwd --softphone {a['softphone']} --realm {realm}`")
            except ValueError as exc:
                r.error(item.items["softphone_password_hash"].line, f"{path}.softphone_password_hash", str(exc))
        elif a["softphone_password"] is None:
            r.error(item.line, f"{path}.softphone_password_hash", "required key is missing")
        queues = [q for q in (a["queues"] or ()) if q is not None]
        out.append(Agent(a["id"], a["account"] or "", a["softphone"], ha1 or {}, tuple([n for n, _ in queues]),
                         a["auto_answer_after"], {n: p for n, p in queues}, tuple(a["digest"] or ())))
    return out


_dtmf_digit = R.matching(r"[0-9*#]", "one DTMF digit (0-9, * or #)")


_AGENT_QUEUE = {"queue": (_name, MISSING), "penalty": (R.integer(0, 100), 0)}


def _agent_queue(r, loc, path) -> tuple[str, int]:
    """A skill queue of an agent: NAME, or {queue: NAME, penalty: N} (lower penalties are offered first)."""
    if loc.kind == "mapping":
        m = r.mapping(loc, path, _AGENT_QUEUE)
        if m["queue"] is None:
            raise Bad("needs a queue name")
        return m["queue"], m["penalty"]
    return _name(r, loc, path), 0


DISPOSITION = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,39}")


def _dispositions(r, loc, path) -> tuple[str, ...]:
    """Wrap-up codes: short words an agent picks from a list after a call, each once, at most 50."""
    if loc.kind != "list":
        raise Bad(f"expected a list of codes like [sale, no sale, callback], got {R.describe(loc)}")
    if len(loc.seq) > 50:
        raise Bad(f"at most 50 disposition codes, got {len(loc.seq)}")
    out: list[str] = []
    for i, item in enumerate(loc.seq):
        where = f"{path}[{i}]"
        try:
            code = R.nonempty(r, item, where)
        except Bad as exc:
            r.error(item.line, where, str(exc))
            continue
        if not DISPOSITION.fullmatch(code):
            r.error(item.line, where, f"a disposition code is 1-40 letters, digits, spaces, _ . -; got {code!r}")
        elif code.casefold() in {c.casefold() for c in out}:
            r.error(item.line, where, f"duplicate disposition code {code!r}")
        else:
            out.append(code)
    return tuple(out)


def _target(r, loc, path) -> Overflow:
    v = R.nonempty(r, loc, path)
    if v == "hangup":
        return Overflow("hangup")
    m = re.fullmatch(r"(queue|ivr)/([A-Za-z0-9_.-]+)", v)
    if not m:
        raise Bad(f"expected queue/NAME, ivr/NAME or hangup, got {v!r}")
    return Overflow(m.group(1), m.group(2))


def _queues(r: Reader, loc) -> list[SkillQueue]:
    out = []
    d = SkillQueue("x")
    for path, item in r.items_of(loc, "skill_queues"):
        q = r.mapping(item, path, {
            "name": (_name, MISSING), "type": (R.choice(*QUEUE_TYPES), d.type),
            "strategy": (R.choice(*STRATEGIES), d.strategy), "max_wait": (R.duration(1, 86400), d.max_wait),
            "max_calls": (R.integer(1, 100000), d.max_calls), "ring_timeout": (R.duration(1, 600), d.ring_timeout),
            "wrap_up": (R.duration(0, 3600), d.wrap_up), "overflow": (lambda r, l, p: l, None),
            "record": (R.boolean, False), "service_level": (R.duration(1, 3600), d.service_level),
            "short_abandon": (R.duration(0, 600), d.short_abandon), "announce": (lambda r, l, p: l, None),
            "service_level_goal": (percent(1, 100), d.service_level_goal),
            "music_on_hold": (prompt_file, None), "callback_digit": (_dtmf_digit, None),
            "dispositions": (_dispositions, ())})
        ov = r.mapping(q.pop("overflow"), f"{path}.overflow", {"to": (_target, Overflow("hangup"))})
        an = r.mapping(q.pop("announce"), f"{path}.announce", {
            "entry": (prompt_file, None), "every": (R.duration(5, 3600), d.announce_every),
            "position": (R.boolean, True), "wait": (R.boolean, True)})
        if q["name"] is None:
            continue
        out.append(SkillQueue(**q, overflow=ov["to"], announce_entry=an["entry"], announce_every=an["every"],
                              announce_position=an["position"], announce_wait=an["wait"]))
    return out


def _routes(r: Reader, loc) -> list[CalledRoute]:
    out = []
    for path, item in r.items_of(loc, "called_routes"):
        c = r.mapping(item, path, {"called": (R.number_string, MISSING), "ext": (R.number_string, None),
                                   "queue": (_name, None), "ivr": (_name, None),
                                   "media": (R.choice("any", "voice", "video"), "any")})
        if (c["queue"] is None) == (c["ivr"] is None):
            r.error(item.line, path, "give exactly one of queue or ivr")
            continue
        if c["called"] is None:
            continue
        kind = "queue" if c["queue"] else "ivr"
        out.append(CalledRoute(c["called"], c["ext"], kind, c[kind], c["media"]))
    return out


def _ivr(r: Reader, loc) -> dict[str, tuple[IvrStep, ...]]:
    flows: dict[str, tuple[IvrStep, ...]] = {}
    if loc is None:
        return flows
    if loc.kind != "mapping":
        r.error(loc.line, "ivr", "expected a mapping of flow name to a list of steps")
        return flows
    for name, steps_loc in loc.items.items():
        steps = []
        for path, st in r.items_of(steps_loc, f"ivr.{name}"):
            s = r.mapping(st, path, {
                "play": (R.list_of(prompt_file, 1), None), "menu": (lambda r, l, p: l, None),
                "queue": (_name, None), "goto": (_name, None), "hangup": (R.boolean, None),
                "timeout": (R.duration(1, 60), 5.0), "retries": (R.integer(0, 10), 2)})
            kinds = [k for k in ("play", "menu", "queue", "goto", "hangup") if s[k] is not None]
            if len(kinds) != 1:
                r.error(st.line, path, "each step is exactly one of play, menu, queue, goto, hangup")
                continue
            kind = kinds[0]
            if kind == "menu":
                menu = s["menu"]
                if menu.kind != "mapping" or not menu.items:
                    r.error(menu.line, f"{path}.menu", "expected a mapping of digit to queue NAME or ivr/NAME")
                    continue
                choices = []
                for digit, tgt in menu.items.items():
                    if not re.fullmatch(r"[0-9*#]", digit):
                        r.error(menu.key_lines.get(digit, tgt.line), f"{path}.menu.{digit}",
                                "menu keys are single DTMF digits")
                        continue
                    try:
                        t = R.nonempty(r, tgt, f"{path}.menu.{digit}")
                        choices.append((digit, t if "/" in t or t == "hangup" else f"queue/{t}"))
                    except Bad as exc:
                        r.error(tgt.line, f"{path}.menu.{digit}", str(exc))
                steps.append(IvrStep("menu", choices=tuple(choices), timeout=s["timeout"], retries=s["retries"]))
            elif kind == "play":
                steps.append(IvrStep("play", files=tuple(s["play"])))
            elif kind == "hangup":
                steps.append(IvrStep("hangup"))
            else:
                steps.append(IvrStep(kind, target=s[kind]))
        flows[name] = tuple(steps)
    return flows


# --- references between sections ------------------------------------------------------------------------
def _where(root: Located, section: str, index: int | None = None, key: str | None = None) -> int:
    loc = root.items.get(section)
    if loc is None:
        return 0
    if index is not None and loc.seq is not None and index < len(loc.seq):
        loc = loc.seq[index]
        if key and loc.items and key in loc.items:
            return loc.items[key].line
    return loc.line


def _cross_check(r: Reader, cfg: Config, root: Located) -> None:
    def dupes(section, values, key):
        if len(set(values)) == len(values):         # the common case, told at C speed
            return
        seen: dict = {}
        for i, v in enumerate(values):
            if v in seen:
                r.error(_where(root, section, i, key), f"{section}[{i}].{key}",
                        f"{v!r} is already used by {section}[{seen[v]}]")
            else:
                seen[v] = i
    dupes("employees", [e.account for e in cfg.employees], "account")
    dupes("agents", [a.id for a in cfg.agents], "id")
    dupes("agents", [a.softphone for a in cfg.agents], "softphone")
    dupes("agents", [a.account for a in cfg.agents], "account")
    dupes("skill_queues", [q.name for q in cfg.queues], "name")
    dupes("called_routes", [(c.called, c.ext, c.media) for c in cfg.routes], "called")
    accounts = {e.account for e in cfg.employees}
    queues = {q.name for q in cfg.queues}
    for i, a in enumerate(cfg.agents):
        if a.account not in accounts:
            r.error(_where(root, "agents", i, "account"), f"agents[{i}].account",
                    f"no employee with account {a.account!r}")
        for qn in a.queues:
            if qn not in queues:
                r.error(_where(root, "agents", i, "queues"), f"agents[{i}].queues", f"no skill queue {qn!r}")
    softphones = {a.softphone for a in cfg.agents}

    def check_target(kind, name, line, key):
        if kind == "queue" and name not in queues:
            r.error(line, key, f"no skill queue {name!r}")
        elif kind == "ivr" and name not in cfg.ivr:
            r.error(line, key, f"no IVR flow {name!r}")

    for i, c in enumerate(cfg.routes):
        line = _where(root, "called_routes", i, c.kind)
        check_target(c.kind, c.target, line, f"called_routes[{i}].{c.kind}")
        if c.called in softphones:
            r.error(_where(root, "called_routes", i, "called"), f"called_routes[{i}].called",
                    f"{c.called!r} is also an agent's softphone number")
        if c.media == "video" and c.kind == "queue":
            q = cfg.queue(c.target)
            if q and q.type not in ("video", "video_click_to_dial", "multimedia"):
                r.error(line, f"called_routes[{i}].queue", f"video route to {q.type} queue {q.name!r}")
    for i, q in enumerate(cfg.queues):
        if q.overflow.kind in ("queue", "ivr"):
            check_target(q.overflow.kind, q.overflow.target, _where(root, "skill_queues", i, "overflow"),
                         f"skill_queues[{i}].overflow.to")
            if q.overflow.kind == "queue" and q.overflow.target == q.name:
                r.error(_where(root, "skill_queues", i, "overflow"), f"skill_queues[{i}].overflow.to",
                        "a queue cannot overflow to itself")
    ivr_loc = root.items.get("ivr")
    for name, steps in cfg.ivr.items():
        line = ivr_loc.items[name].line if ivr_loc and ivr_loc.items else 0
        for j, s in enumerate(steps):
            if s.kind == "queue":
                check_target("queue", s.target, line, f"ivr.{name}[{j}].queue")
            elif s.kind == "goto":
                check_target("ivr", s.target, line, f"ivr.{name}[{j}].goto")
            for digit, t in s.choices:
                if t != "hangup":
                    kind, _, tname = t.partition("/")
                    if kind not in ("queue", "ivr"):
                        r.error(line, f"ivr.{name}[{j}].menu.{digit}", f"expected queue NAME or ivr/NAME, got {t!r}")
                    else:
                        check_target(kind, tname, line, f"ivr.{name}[{j}].menu.{digit}")
