"""The web chat's settings: which websites may embed the widget, how many chats an agent holds, and the limits a
visitor's browser must keep to. Agents serve chats of the `multimedia` skill queues they are in.

    chat:
      origins: [https://www.example.com]       # pages that may open the widget; the node's own page always may
      concurrency: {chats: 3, while_on_call: 1}
      agents:
        "1001": {chats: 2, while_on_call: 0}    # this agent's own figures
      max_message: 2000                         # characters in one message
      max_frame: 8192                           # bytes; a bigger WebSocket frame gets an error frame, dropped
      rate: {messages: 5, burst: 10}            # per chat, messages (and typing marks) per second
      address_rate: {messages: 20, burst: 40}   # per visitor address, all its chats together
      cut_off_after: 20                         # frames over the rate that end the chat (flood)
      sessions_per_address: 5                   # chats open at once from one address
      agent_rate: {messages: 10, burst: 30}     # per agent panel, and per agent (all their panels together)
      agent_panels: 3                           # chat panels open at once per agent
      byte_rate: {bytes: 32768, burst: 131072}  # per connection (a visitor's chat, an agent's panel), frame
                                                # bytes per second; an address or an agent has at most
                                                # sessions_per_address / agent_panels connections
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import reader as R
from .reader import Bad, Reader
from .source import Located
from ..widget.origins import OriginError, normalize_origin



@dataclass(frozen=True)
class Concurrency:
    chats: int = 3              # chats at once while idle
    while_on_call: int = 1      # while ringing, talking or in wrap-up


@dataclass(frozen=True)
class ChatSettings:
    origins: tuple[str, ...] = ()
    concurrency: Concurrency = Concurrency()
    agents: dict = field(default_factory=dict, hash=False, compare=True)   # agent id -> Concurrency
    max_message: int = 2000
    max_frame: int = 8192
    rate: tuple[float, float] = (5.0, 10.0)             # (per second, burst) per chat
    address_rate: tuple[float, float] = (20.0, 40.0)    # per visitor address
    cut_off_after: int = 20
    sessions_per_address: int = 5
    agent_rate: tuple[float, float] = (10.0, 30.0)      # per agent panel, and per agent
    agent_panels: int = 3
    byte_rate: tuple[float, float] = (32768.0, 131072.0)    # per connection, bytes

    def of(self, agent_id: str) -> Concurrency:
        return self.agents.get(agent_id, self.concurrency)


def origin(r, loc, path) -> str:
    """scheme://host[:port], as a browser sends it in Origin (widget/origins.py normalises every allow-list)."""
    v = R.nonempty(r, loc, path)
    try:
        return normalize_origin(v)
    except OriginError:
        raise Bad(f"expected an origin like https://www.example.com (scheme, host, optional port; no path), "
                  f"got {v!r}") from None


def _concurrency(r: Reader, loc: Located, path: str, base: Concurrency) -> Concurrency:
    c = r.mapping(loc, path, {"chats": (R.integer(0, 50), base.chats),
                              "while_on_call": (R.integer(0, 50), None)})
    chats = c["chats"] if c["chats"] is not None else base.chats
    on_call = c["while_on_call"] if c["while_on_call"] is not None else min(base.while_on_call, chats)
    if on_call > chats:
        r.error(loc.items["while_on_call"].line, f"{path}.while_on_call",
                f"must not exceed chats ({chats})")
        on_call = chats
    return Concurrency(chats, on_call)


def _rate(r: Reader, loc: Located | None, path: str, default: tuple[float, float], unit: str = "messages",
          hi: int = 10000, least: int = 0) -> tuple[float, float]:
    if loc is None:
        return default[0], max(default[1], float(least))
    m = r.mapping(loc, path, {unit: (R.integer(1, hi), int(default[0])),
                              "burst": (R.integer(1, hi * 10), int(default[1]))})
    line = loc.items["burst"].line if "burst" in loc.items else loc.line
    if m["burst"] < m[unit]:
        r.error(line, f"{path}.burst", f"must be at least {unit} ({m[unit]})")
    elif m["burst"] < least:        # a frame of the largest size must fit in the bucket
        r.error(line, f"{path}.burst", f"must be at least max_frame ({least})")
    return float(m[unit]), float(max(m["burst"], m[unit], least))


def read_chat(r: Reader, loc: Located | None, agent_queues: dict[str, tuple[str, ...]],
              multimedia: set[str]) -> ChatSettings:
    """The `chat` section. agent_queues: each agent's skill queues; multimedia: the multimedia queues' names
    (an agent given its own figures must serve one)."""
    if loc is None:
        return ChatSettings()
    d = ChatSettings()
    c = r.mapping(loc, "chat", {
        "origins": (R.list_of(origin), list), "concurrency": (lambda r, l, p: l, None),
        "agents": (lambda r, l, p: l, None), "max_message": (R.integer(1, 100_000), d.max_message),
        "max_frame": (R.integer(256, 1_000_000), d.max_frame), "rate": (lambda r, l, p: l, None),
        "address_rate": (lambda r, l, p: l, None), "cut_off_after": (R.integer(1, 100_000), d.cut_off_after),
        "sessions_per_address": (R.integer(1, 10_000), d.sessions_per_address),
        "agent_rate": (lambda r, l, p: l, None), "agent_panels": (R.integer(1, 100), d.agent_panels),
        "byte_rate": (lambda r, l, p: l, None)})
    base = _concurrency(r, c["concurrency"], "chat.concurrency", d.concurrency) \
        if c["concurrency"] is not None else d.concurrency
    agents = {}
    aloc = c["agents"]
    if aloc is not None:
        if aloc.kind != "mapping":
            r.error(aloc.line, "chat.agents", f"expected a mapping of agent id to {{chats, while_on_call}}, got "
                                              f"{R.describe(aloc)}")
        else:
            for agent_id, sub in aloc.items.items():
                path = f"chat.agents.{agent_id}"
                line = aloc.key_lines.get(agent_id, sub.line)
                if agent_id not in agent_queues:
                    r.error(line, path, f"no agent with id {agent_id!r}")
                elif not set(agent_queues[agent_id]) & multimedia:
                    r.error(line, path, "this agent is in no multimedia skill queue, so never gets a chat")
                agents[agent_id] = _concurrency(r, sub, path, base)
    return ChatSettings(tuple(dict.fromkeys(c["origins"] or ())), base, agents, c["max_message"], c["max_frame"],
                        _rate(r, c["rate"], "chat.rate", d.rate),
                        _rate(r, c["address_rate"], "chat.address_rate", d.address_rate),
                        c["cut_off_after"], c["sessions_per_address"],
                        _rate(r, c["agent_rate"], "chat.agent_rate", d.agent_rate), c["agent_panels"],
                        _rate(r, c["byte_rate"], "chat.byte_rate", d.byte_rate, "bytes", 100_000_000,
                              c["max_frame"]))
