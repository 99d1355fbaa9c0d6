"""The validated configuration: plain frozen dataclasses the node is built from."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from .chat import ChatSettings
from .secrets import PasswordPolicy
from .trunks import TrunkSettings
from .wallboard import WallboardSettings
from .widgets import ClickToDialSettings

QUEUE_TYPES = ("voice", "multimedia", "video", "voice_click_to_dial", "video_click_to_dial")
STRATEGIES = ("longest_idle", "round_robin", "fewest_calls", "random", "ring_all", "linear")


@dataclass(frozen=True)
class ListenSpec:
    transport: str       # udp, tcp, ws
    host: str
    port: int

    def __str__(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{h}:{self.port}"


@dataclass(frozen=True)
class RegistrarSettings:
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts: int = 5
    randomize_expires: bool = False
    nonce_ttl: float = 300.0
    digest: tuple[str, ...] = ("MD5",)   # what Asterisk and Kamailio send: baresip, JsSIP and many desk phones know no SHA-256


@dataclass(frozen=True)
class SecuritySettings:
    rate: int = 200                      # requests/s per source address (token bucket) ...
    burst: int = 400                     # ... with this burst
    flood_ban_after: int = 200           # requests over the limit within `window` that ban the source
    auth_failures: int = 10              # failed authentications within `window` that ban the source
    window: float = 60.0
    ban_time: float = 600.0
    scanners: tuple[str, ...] | None = None   # User-Agent substrings dropped silently (None: built-in list)
    exempt: tuple[str, ...] = ()
    max_message_size: int = 16384        # larger requests get 513
    max_vias: int = 20                   # deeper Via stacks get 483
    outbound_calls_per_minute: int = 20  # per agent account (toll-fraud guard)
    account_failures: int = 10           # failed digest attempts on one username (from any sources) ...
    account_window: float = 600.0        # ... within this time lock it ...
    account_lock_time: float = 300.0     # ... for this long (every attempt gets 403, the right password too)


@dataclass(frozen=True)
class OverloadSettings:
    enabled: bool = True
    queue_delay: float = 0.2             # datagrams queued longer than this ...
    sustain: float = 0.5                 # ... for this long without a break are sorted before parsing ...
    drop_after: float = 2.0              # ... new work queued longer than this is dropped, not answered 503
    retry_after: int = 5                 # seconds in the 503's Retry-After (spread up to twice this)
    front: bool = True                   # with a second core, a front process reads the UDP sockets and
                                         # refuses the excess there (softswitch/transport/front.py)


@dataclass(frozen=True)
class SipSettings:
    listen: tuple[ListenSpec, ...]
    domain: str
    realm: str
    user_agent: str = "softswitch"
    registrar: RegistrarSettings = RegistrarSettings()
    session_expires: float = 1800.0
    max_calls: int = 5000        # calls in progress past which new INVITEs get 503 + Retry-After (0: no cap)
    tls: tuple[str, str] | None = None   # (certificate, key) files for tls: listeners (and wss: later)
    security: SecuritySettings = SecuritySettings()
    overload: OverloadSettings = OverloadSettings()


@dataclass(frozen=True)
class MediaSettings:
    address: str = "127.0.0.1"
    rtp_ports: tuple[int, int] = (20000, 29999)
    anchor: bool = True          # media through the switch (prompts, hold music, recording, supervisor modes);
                                 # false: customer and agent exchange RTP directly (signalling-only switch)


@dataclass(frozen=True)
class StorageSettings:
    cdr: str = "sqlite:///var/softswitch/cdr.db"
    state: str = "memory"


@dataclass(frozen=True)
class ServerSettings:
    node_id: str
    sip: SipSettings
    http_listen: tuple[str, int] | None
    media: MediaSettings
    storage: StorageSettings
    drain_timeout: float = 30.0      # on SIGTERM, how long calls in progress may go on before they are ended
    stall_threshold: float = 0.1     # an input (datagram, chunk, HTTP request step) holding the loop longer is logged


@dataclass(frozen=True)
class Employee:
    account: str
    name: str
    department: str = ""
    phone: str = ""
    password_hash: str = ""
    role: str = "agent"          # agent, supervisor, admin
    must_change_password: bool = True    # the API gives nothing else until a new password is set


@dataclass(frozen=True)
class KeepaliveSettings:
    """OPTIONS keepalives to every registered phone (like Asterisk's qualify)."""
    interval: float = 30.0       # 0: off
    timeout: float = 5.0
    failures: int = 3


@dataclass(frozen=True)
class Agent:
    id: str
    account: str
    softphone: str
    ha1: dict = field(hash=False, compare=True)    # {"MD5": hex, "SHA-256": hex}
    queues: tuple[str, ...] = ()
    auto_answer_after: float = 2.0
    penalties: dict = field(default_factory=dict, hash=False, compare=True)   # queue -> penalty
    digest: tuple[str, ...] = ()         # the softphone's own challenge algorithms (empty: the tenant's)


@dataclass(frozen=True)
class Overflow:
    kind: str                    # queue, ivr, hangup
    target: str = ""


@dataclass(frozen=True)
class SkillQueue:
    name: str
    type: str = "voice"
    strategy: str = "longest_idle"
    max_wait: float = 60.0
    max_calls: int = 100
    ring_timeout: float = 15.0
    wrap_up: float = 5.0
    overflow: Overflow = Overflow("hangup")
    record: bool = False
    service_level: float = 20.0
    short_abandon: float = 5.0
    service_level_goal: float = 0.8  # the share to answer within service_level (wallboard, Erlang-C staffing)
    announce_entry: str | None = None
    announce_every: float = 30.0
    announce_position: bool = True   # "you are caller number N", every announce_every
    announce_wait: bool = True       # "your estimated waiting time is M minutes"
    music_on_hold: str | None = None
    callback_digit: str | None = None   # a waiting caller presses it to hang up and be called back in turn
    dispositions: tuple[str, ...] = ()  # wrap-up codes an agent picks for a call of this queue (empty: notes only)


@dataclass(frozen=True)
class CalledRoute:
    called: str
    ext: str | None
    kind: str                    # queue or ivr
    target: str
    media: str = "any"           # any, voice, video


@dataclass(frozen=True)
class IvrStep:
    kind: str                    # play, menu, queue, hangup, goto
    files: tuple[str, ...] = ()
    choices: tuple[tuple[str, str], ...] = ()      # digit -> target
    target: str = ""
    timeout: float = 5.0
    retries: int = 2


@dataclass(frozen=True)
class Config:
    file: str
    server: ServerSettings
    password_policy: PasswordPolicy
    employees: tuple[Employee, ...]
    agents: tuple[Agent, ...]
    queues: tuple[SkillQueue, ...]
    routes: tuple[CalledRoute, ...]
    ivr: dict = field(hash=False, compare=True)    # flow name -> tuple[IvrStep, ...]
    pool_nodes: tuple[str, ...] = ()
    wallboard: WallboardSettings = WallboardSettings()
    keepalive: KeepaliveSettings = KeepaliveSettings()
    chat: ChatSettings = ChatSettings()
    click_to_dial: ClickToDialSettings = ClickToDialSettings()
    trunks: TrunkSettings = TrunkSettings()      # SIP trunks and the outbound dial plan

    @cached_property
    def _index(self) -> tuple[dict, dict, dict, dict]:
        """Lookups by key, made once (the config never changes): a login or an API call never walks the
        tenant. The first entry wins, as the loader reports any duplicate."""
        def first(items, key):
            out: dict = {}
            for x in items:
                out.setdefault(key(x), x)
            return out
        return (first(self.agents, lambda a: a.id), first(self.agents, lambda a: a.account),
                first(self.queues, lambda q: q.name), first(self.employees, lambda e: e.account))

    def agent(self, agent_id: str) -> Agent | None:
        return self._index[0].get(agent_id)

    def agent_of_account(self, account: str) -> Agent | None:
        """The agent bound to a business account, if it has one."""
        return self._index[1].get(account)

    def queue(self, name: str) -> SkillQueue | None:
        return self._index[2].get(name)

    def employee(self, account: str) -> Employee | None:
        return self._index[3].get(account)
