"""Load tests against a running node, driven by SIPp: one command, a progress line a second, a report at the end.

    python tools/loadtest.py SCENARIO --target 127.0.0.1:5060 [--rate R | --ramp R1:R2:STEP_SECONDS] --duration S
        [--http 127.0.0.1:8080 --account A --password P]
        [--users N --realm R --password-format 'Pw-{user}!' --first 100000 | --user NUMBER:PASSWORD ...]
        [--number 4001 --hold 5s --agents N --agent-delay 2s --agent [ID:]NUMBER:PASSWORD ...]
        [--target2 HOST:PORT] --out DIR

Scenarios:
  register       digest REGISTER storm (tools/sipp/register_auth.xml) from a users CSV written into DIR
  options        OPTIONS keepalive flood (tools/sipp/options.xml)
  calls          customers dial --number (tools/sipp/customer_call.xml, held --hold); with --agents/--agent a SIPp
                 agent UAS is started first (a variant of tools/sipp/agent_uas.xml that answers after
                 --agent-delay, written into DIR), the agents are registered with their Contact on it and signed in
                 through the API as the --account supervisor; signed out and unregistered at the end
  pool-register  every user registers to two nodes, --target and --target2 (one SIPp per node, same users)

--ramp R1:R2:STEP_SECONDS is a staircase from R1 to R2 calls/s over --duration, one stair every STEP_SECONDS
(the rate is changed through SIPp's control socket). Writes DIR/report.json, DIR/report.md, DIR/rate.png,
DIR/latency.png and keeps SIPp's files (stat CSV, *_rtt.csv, error log) in DIR.
Exit status: 0 when every call succeeded, 1 when some failed, 2 when the test could not be set up.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SCENARIO_DIR = os.path.join(ROOT, "tools", "sipp")
SCENARIOS = ("register", "options", "calls", "pool-register")


class SetupError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------------- small helpers

def parse_seconds(text: str | float) -> float:
    """'2s', '500ms', '1.5', '2m' -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m)?\s*", str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r}")
    value, unit = float(m.group(1)), m.group(2) or "s"
    return value / 1000.0 if unit == "ms" else value * 60.0 if unit == "m" else value


def parse_hostport(text: str, default_port: int = 5060) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host:
        return text, default_port
    return host, int(port)


def parse_ramp(text: str) -> tuple[float, float, float]:
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("--ramp wants R1:R2:STEP_SECONDS")
    r1, r2, step = float(parts[0]), float(parts[1]), parse_seconds(parts[2])
    if r1 <= 0 or r2 <= 0 or step <= 0:
        raise argparse.ArgumentTypeError("--ramp values must be positive")
    return r1, r2, step


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def local_ip_for(host: str) -> str:
    """The local address that reaches `host` (what SIPp should put in Via/Contact)."""
    if host.startswith("127."):
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((socket.gethostbyname(host), 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def schedule(rate: float | None, ramp: tuple[float, float, float] | None, duration: float) -> list[tuple[float, float]]:
    """[(start second, calls/s)] stairs covering [0, duration)."""
    if ramp is None:
        return [(0.0, float(rate or 10.0))]
    r1, r2, step = ramp
    n = max(1, math.ceil(duration / step - 1e-9))
    if n == 1:
        return [(0.0, r1)]
    return [(i * step, r1 + (r2 - r1) * i / (n - 1)) for i in range(n)]


def rate_at(stairs: list[tuple[float, float]], t: float) -> float:
    rate = stairs[0][1]
    for start, r in stairs:
        if t >= start:
            rate = r
    return rate


def planned_calls(stairs: list[tuple[float, float]], duration: float) -> int:
    total = 0.0
    for i, (start, rate) in enumerate(stairs):
        end = stairs[i + 1][0] if i + 1 < len(stairs) else duration
        total += rate * max(0.0, min(end, duration) - start)
    return max(1, int(round(total)))


def sipp_rate(rate: float) -> str:
    return f"{rate:.3f}".rstrip("0").rstrip(".")


def hms_us_to_ms(text: str) -> float | None:
    """SIPp's HH:MM:SS:uuuuuu -> milliseconds."""
    m = re.fullmatch(r"(\d+):(\d+):(\d+):(\d+)", text or "")
    if not m:
        return None
    h, mi, s, us = (int(g) for g in m.groups())
    return ((h * 60 + mi) * 60 + s) * 1000.0 + us / 1000.0


def stat_time(text: str) -> float | None:
    """SIPp's 'YYYY-MM-DD\\tHH:MM:SS.ffffff\\tEPOCH' time column -> epoch seconds."""
    try:
        return float(text.split("\t")[-1])
    except (ValueError, AttributeError):
        return None


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return float(sorted_values[lo])
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo))


# ---------------------------------------------------------------------------------------------------- HTTP API

class NodeApi:
    """The node's HTTP API (no proxies: the node is reached directly)."""

    def __init__(self, hostport: str, account: str | None = None, password: str | None = None) -> None:
        host, port = parse_hostport(hostport, 8080)
        self.base = f"http://{host}:{port}"
        self.account, self.password = account, password
        self.token: str | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method: str, path: str, body=None, auth: bool = True, timeout: float = 10.0):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        with self._opener.open(req, timeout=timeout) as r:
            return json.loads(r.read() or b"null")

    def login(self) -> bool:
        if not (self.account and self.password):
            return False
        self.token = self.call("POST", "/api/login", {"account": self.account, "password": self.password},
                               auth=False)["token"]
        return True

    def health(self) -> dict | None:
        try:
            return self.call("GET", "/health", auth=False, timeout=5)
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def queues(self) -> list | None:
        if not self.token:
            return None
        try:
            return self.call("GET", "/api/queues", timeout=5)
        except (OSError, ValueError, urllib.error.URLError):
            return None


# ---------------------------------------------------------------------------------------------------- SIPp

@dataclass
class SippRun:
    """One SIPp process with its -trace_stat CSV (-fd 1), -trace_rtt CSV, error log and control port."""
    name: str
    cmd: list[str]
    workdir: str
    stat_file: str
    error_file: str
    control_port: int
    proc: subprocess.Popen | None = None
    started: float = 0.0
    log: object = None
    rtt_file: str | None = None

    def start(self) -> None:
        self.log = open(os.path.join(self.workdir, f"sipp-{self.name}.log"), "w")
        self.started = time.time()
        self.proc = subprocess.Popen(self.cmd, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=self.log,
                                     stdin=subprocess.DEVNULL)

    def control(self, command: str) -> None:
        """SIPp's remote control: 'cset rate N', 'q' (stop making calls, let the current ones end)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.sendto(command.encode(), ("127.0.0.1", self.control_port))
            except OSError:
                pass

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.control("q")
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(3)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        if self.log:
            self.log.close()
            self.log = None

    def rows(self) -> list[dict]:
        return read_stat_rows(self.stat_file)

    def find_rtt_file(self) -> str | None:
        if self.proc is None:
            return None
        hits = glob.glob(os.path.join(self.workdir, f"*_{self.proc.pid}_rtt.csv"))
        self.rtt_file = hits[0] if hits else None
        return self.rtt_file

    def error_codes_file(self) -> str | None:
        if self.proc is None:
            return None
        hits = glob.glob(os.path.join(self.workdir, f"*_{self.proc.pid}_error_codes.csv"))
        return hits[0] if hits else None


def _count_lines(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def read_stat_rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    if len(rows) < 2:
        return []
    header = rows[0]
    return [dict(zip(header, r)) for r in rows[1:] if len(r) >= len(header) - 1]


def sipp_cmd(scenario_path: str, target: str, local_ip: str, workdir: str, name: str, extra: list[str],
             limit: int, timeout_s: float, rate: float | None = None, calls: int | None = None,
             uas_port: int | None = None) -> SippRun:
    stat = os.path.join(workdir, f"{name}_stat.csv")
    err = os.path.join(workdir, f"{name}_errors.log")
    cp = free_udp_port()
    cmd = [shutil.which("sipp") or "sipp"]
    if uas_port is None:
        cmd += [target, "-r", sipp_rate(rate or 1), "-m", str(calls or 1), "-l", str(limit), "-p", "0"]
    else:
        cmd += ["-p", str(uas_port)]
    cmd += ["-sf", scenario_path, "-i", local_ip, "-nostdin", "-cp", str(cp),
            "-trace_stat", "-stf", stat, "-fd", "1", "-trace_err", "-error_file", err, "-trace_error_codes",
            "-trace_rtt", "-rtt_freq", "1", "-timeout", f"{int(timeout_s)}s",
            "-max_recv_loops", "10000", "-max_sched_loops", "10000", *extra]
    for f in (stat, err):
        if os.path.exists(f):
            os.remove(f)
    return SippRun(name, cmd, workdir, stat, err, cp)


def agent_uas_variant(out_dir: str, delay_s: float) -> str:
    """tools/sipp/agent_uas.xml answering after a <pause> of delay_s between 180 and 200. A CANCEL (the customer
    hung up while the agent's phone rang) is answered 200 + 487 wherever it comes: optional="global" recv."""
    with open(os.path.join(SCENARIO_DIR, "agent_uas.xml")) as f:
        text = f.read()
    ms = max(0, int(round(delay_s * 1000)))
    first_recv = '<recv request="INVITE" crlf="true"/>'
    if '<label id="1"/>' not in text or first_recv not in text or "<send>" not in text:
        raise SetupError("tools/sipp/agent_uas.xml changed shape: cannot derive the answer-delay variant")
    text = text.replace(first_recv, '<!-- loadtest: a CANCEL, whenever it comes, goes to "cancelled" -->\n'
                        '  <recv request="CANCEL" optional="global" next="cancelled"/>\n  ' + first_recv, 1)
    text = text.replace('<label id="1"/>', f'<!-- loadtest: the agent answers after {ms} ms -->\n'
                        f'  <pause milliseconds="{ms}"/>\n  <label id="1"/>', 1)
    head, _, tail = text.rpartition("<send>")                      # the last send (200 to BYE) ends the call
    text = head + '<send next="_end">' + tail
    cancel = """  <label id="cancelled"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <send>
    <![CDATA[

      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: [last_cseq_number] INVITE
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK" timeout="5000" ontimeout="_end"/>
  <label id="_end"/>
</scenario>"""
    text = text.replace("</scenario>", cancel, 1)
    text = text.replace('name="auto-answering agent phones"',
                        f'name="auto-answering agent phones, answer after {ms} ms"', 1)
    path = os.path.join(out_dir, f"agent_uas_{ms}ms.xml")
    with open(path, "w") as f:
        f.write(text)
    return path


# ---------------------------------------------------------------------------------------------------- the run

@dataclass
class Config:
    scenario: str
    target: str
    out: str
    duration: float = 10.0
    rate: float | None = None
    ramp: tuple[float, float, float] | None = None
    target2: str | None = None
    http: str | None = None
    account: str | None = None
    password: str | None = None
    users: int = 100
    first: int = 100000
    realm: str = "cc.test"
    password_format: str = "Pw-{user}!"
    user: list[str] = field(default_factory=list)
    number: str = "4001"
    hold: float = 1.0
    direct: bool = False
    agents: int = 0
    agent: list[str] = field(default_factory=list)
    agent_first: int = 200000
    agent_password_format: str = "Agent-{user}!"
    agent_delay: float = 2.0
    transport: str = "u1"
    grace: float | None = None
    plots: bool = True
    quiet: bool = False


class LoadTest:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.runs: list[SippRun] = []
        self.uas: SippRun | None = None
        self.api: NodeApi | None = None
        self.agent_ids: list[str] = []
        self.agent_phones: list[tuple[str, str]] = []
        self.uas_port = 0
        self.stairs: list[tuple[float, float]] = [(0.0, 0.0)]
        self.events: list[str] = []
        self.progress: list[dict] = []
        self.queue_samples: list[dict] = []
        self.before: dict = {}
        self.after: dict = {}

    def say(self, text: str) -> None:
        if not self.cfg.quiet:
            print(text, flush=True)

    # ------------------------------------------------------------------ setup
    def users(self) -> list[tuple[str, str]]:
        if self.cfg.user:
            out = []
            for spec in self.cfg.user:
                number, sep, password = spec.partition(":")
                if not sep:
                    raise SetupError(f"--user wants NUMBER:PASSWORD, got {spec!r}")
                out.append((number, password))
            return out
        return [(str(u), self.cfg.password_format.format(user=u))
                for u in range(self.cfg.first, self.cfg.first + self.cfg.users)]

    def agents_wanted(self) -> list[tuple[str | None, str, str]]:
        """[(agent id or None, softphone number, password)]"""
        out: list[tuple[str | None, str, str]] = []
        for spec in self.cfg.agent:
            parts = spec.split(":", 2)
            if len(parts) == 3:
                out.append((parts[0], parts[1], parts[2]))
            elif len(parts) == 2:
                out.append((None, parts[0], parts[1]))
            else:
                raise SetupError(f"--agent wants [ID:]NUMBER:PASSWORD, got {spec!r}")
        if self.cfg.agents and not out:
            out = [(None, str(u), self.cfg.agent_password_format.format(user=u))
                   for u in range(self.cfg.agent_first, self.cfg.agent_first + self.cfg.agents)]
        elif self.cfg.agents:
            out = out[:self.cfg.agents]
        return out

    def setup_api(self) -> None:
        if not self.cfg.http:
            return
        self.api = NodeApi(self.cfg.http, self.cfg.account, self.cfg.password)
        if self.api.health() is None:
            raise SetupError(f"no node API at {self.api.base}/health")
        if self.cfg.account:
            try:
                self.api.login()
            except urllib.error.HTTPError as e:
                raise SetupError(f"login as {self.cfg.account} refused: HTTP {e.code}") from None

    def snapshot(self) -> dict:
        if not self.api:
            return {}
        return {"time": time.time(), "health": self.api.health(), "queues": self.api.queues()}

    def setup_agents(self, host: str, port: int, local_ip: str) -> None:
        wanted = self.agents_wanted()
        if not wanted:
            return
        if not self.api or not self.api.token:
            raise SetupError("agents need --http, --account (a supervisor) and --password to sign them in")
        from tools.agents_load import register_agents
        uas_port = self.uas_port = free_udp_port(local_ip)
        scenario = agent_uas_variant(self.cfg.out, self.cfg.agent_delay)
        self.uas = sipp_cmd(scenario, "", local_ip, self.cfg.out, "agents", ["-t", "u1"], 0,
                            self.cfg.duration * 10 + 600, uas_port=uas_port)
        self.uas.start()
        time.sleep(0.3)
        if not self.uas.running():
            raise SetupError(f"agent UAS did not start, see {self.uas.log.name if self.uas.log else 'sipp log'}")
        by_phone = {}
        if any(a[0] is None for a in wanted):
            by_phone = {a["softphone"]: a["id"] for a in self.api.call("GET", "/api/agents")}
        agents = []
        for agent_id, number, password in wanted:
            agent_id = agent_id or by_phone.get(number)
            if agent_id is None:
                raise SetupError(f"no agent has softphone {number}")
            agents.append((agent_id, number, password))
        self.agent_phones = [(n, p) for _, n, p in agents]
        self.agent_ids = [a for a, _, _ in agents]
        t0 = time.perf_counter()
        ok = register_agents(port, self.agent_phones, self.cfg.realm, uas_port, host=host) \
            if host == local_ip else self._register_agents_remote(host, port, local_ip, uas_port)
        if ok != len(agents):
            raise SetupError(f"only {ok} of {len(agents)} agents registered (realm {self.cfg.realm}?)")
        signed = 0
        for agent_id in self.agent_ids:
            state = self.api.call("POST", f"/api/agents/{agent_id}/sign-in", {}).get("state")
            signed += state == "idle"
        self.events.append(f"{ok} agents registered to the agent UAS on {local_ip}:{uas_port}, {signed} signed in "
                           f"idle ({time.perf_counter() - t0:.1f} s), answer delay {self.cfg.agent_delay:g} s")
        self.say(self.events[-1])

    def _register_agents_remote(self, host: str, port: int, local_ip: str, uas_port: int) -> int:
        # register_agents binds and sends from one host; a remote node needs our own address in Contact
        from softswitch.sip.digest import make_authorization
        from softswitch.sip.parser import parse_message
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((local_ip, 0))
        sock.settimeout(5)
        local = sock.getsockname()[1]
        realm, ok = self.cfg.realm, 0
        try:
            for user, password in self.agent_phones:
                def req(cseq: int, auth: str = "") -> bytes:
                    return (f"REGISTER sip:{realm} SIP/2.0\r\nVia: SIP/2.0/UDP {local_ip}:{local};branch=z9hG4bK-lt"
                            f"{user}-{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{realm}>;tag=lt{user}\r\n"
                            f"To: <sip:{user}@{realm}>\r\nCall-ID: lt-agent-{user}@{local_ip}\r\n"
                            f"CSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local_ip}:{uas_port}>\r\n"
                            f"Expires: 3600\r\n{auth}Content-Length: 0\r\n\r\n").encode()
                sock.sendto(req(1), (host, port))
                ch = parse_message(sock.recv(65535))
                value = make_authorization(ch.get_all("WWW-Authenticate")[0], "REGISTER", f"sip:{realm}", user,
                                           password)
                sock.sendto(req(2, f"Authorization: {value}\r\n"), (host, port))
                ok += parse_message(sock.recv(65535)).status == 200
        finally:
            sock.close()
        return ok

    def teardown_agents(self, host: str, port: int, local_ip: str) -> None:
        if not self.agent_ids:
            return
        if self.api and self.api.token:
            for agent_id in self.agent_ids:
                try:
                    self.api.call("POST", f"/api/agents/{agent_id}/sign-out", {})
                except (OSError, ValueError, urllib.error.URLError):
                    pass
        if host == local_ip and self.uas is not None:
            try:
                from tools.agents_load import register_agents
                register_agents(port, self.agent_phones, self.cfg.realm, self.uas_port, expires=0, host=host)
            except (OSError, ValueError, IndexError):
                pass

    def build_runs(self, local_ip: str, stairs: list[tuple[float, float]], calls: int) -> None:
        cfg = self.cfg
        peak = max(r for _, r in stairs)
        extra_common = ["-t", cfg.transport]
        hold = cfg.hold if cfg.scenario == "calls" else 0.0
        limit = max(100, int(peak * (hold + cfg.agent_delay + 10)))
        timeout_s = cfg.duration + self.grace() + 30
        if cfg.scenario in ("register", "pool-register"):
            from tools.sipp.users_csv import write_users_csv
            users = self.users()
            if not users:
                raise SetupError("no users")
            csv_path = os.path.join(cfg.out, "users.csv")
            write_users_csv(csv_path, users, cfg.realm)
            self.events.append(f"{len(users)} users written to {csv_path} (realm {cfg.realm})")
            scenario = os.path.join(SCENARIO_DIR, "register_auth.xml")
            extra = extra_common + ["-inf", csv_path, "-default_behaviors", "all,-bye"]
            targets = [("register", cfg.target)]
            if cfg.scenario == "pool-register":
                if not cfg.target2:
                    raise SetupError("pool-register needs --target2")
                targets = [("register_a", cfg.target), ("register_b", cfg.target2)]
            for name, target in targets:
                self.runs.append(sipp_cmd(scenario, target, local_ip, cfg.out, name, extra, limit, timeout_s,
                                          stairs[0][1], calls))
        elif cfg.scenario == "options":
            scenario = os.path.join(SCENARIO_DIR, "options.xml")
            self.runs.append(sipp_cmd(scenario, cfg.target, local_ip, cfg.out, "options",
                                      extra_common + ["-default_behaviors", "all,-bye"], limit, timeout_s,
                                      stairs[0][1], calls))
        elif cfg.scenario == "calls":
            scenario = os.path.join(SCENARIO_DIR, "customer_call_direct.xml" if cfg.direct else "customer_call.xml")
            extra = extra_common + ["-s", cfg.number, "-d", str(int(cfg.hold * 1000))]
            self.runs.append(sipp_cmd(scenario, cfg.target, local_ip, cfg.out, "calls", extra, limit, timeout_s,
                                      stairs[0][1], calls))
        else:
            raise SetupError(f"unknown scenario {cfg.scenario!r}")

    def grace(self) -> float:
        if self.cfg.grace is not None:
            return self.cfg.grace
        return (self.cfg.hold + self.cfg.agent_delay if self.cfg.scenario == "calls" else 0.0) + 15.0

    # ------------------------------------------------------------------ main loop
    def run(self) -> dict:
        cfg = self.cfg
        if not shutil.which("sipp"):
            raise SetupError("sipp is not installed")
        os.makedirs(cfg.out, exist_ok=True)
        host, port = parse_hostport(cfg.target)
        local_ip = local_ip_for(host)
        stairs = self.stairs = schedule(cfg.rate, cfg.ramp, cfg.duration)
        calls = planned_calls(stairs, cfg.duration)
        self.setup_api()
        started_wall = time.time()
        try:
            if cfg.scenario == "calls":
                self.setup_agents(host, port, local_ip)
            self.build_runs(local_ip, stairs, calls)
            self.before = self.snapshot()
            with open(os.path.join(cfg.out, "command.txt"), "w") as f:
                f.write(" ".join(sys.argv) + "\n")
                for r in self.runs:
                    f.write(" ".join(r.cmd) + "\n")
                if self.uas:
                    f.write(" ".join(self.uas.cmd) + "\n")
            plan = " -> ".join(f"{r:g}/s@{t:g}s" for t, r in stairs)
            self.say(f"{cfg.scenario}: {calls} calls per SIPp over {cfg.duration:g} s ({plan}) against "
                     f"{cfg.target}{' and ' + cfg.target2 if cfg.scenario == 'pool-register' else ''}")
            for r in self.runs:
                r.start()
            t0 = time.time()
            self._loop(t0, stairs)
            ended = time.time()
            for r in self.runs:
                r.stop(2)
            self.after = self.snapshot()
        finally:
            for r in self.runs:
                if r.proc is not None:
                    r.stop(1)
            try:
                self.teardown_agents(host, port, local_ip)
            finally:
                if self.uas is not None:
                    self.uas.stop(2)
        return self.collect(stairs, calls, started_wall, t0, ended)

    def _loop(self, t0: float, stairs: list[tuple[float, float]]) -> None:
        cfg = self.cfg
        stair = 0
        quit_sent = False
        deadline = t0 + cfg.duration + self.grace()
        seen_rows = 0
        last_tick = t0
        while any(r.running() for r in self.runs):
            now = time.time()
            while stair + 1 < len(stairs) and now - t0 >= stairs[stair + 1][0]:
                stair += 1
                for r in self.runs:
                    r.control(f"cset rate {sipp_rate(stairs[stair][1])}")
            if now >= deadline and not quit_sent:
                self.say(f"  {now - t0:5.1f}s  duration + grace over: asking SIPp to stop")
                for r in self.runs:
                    r.control("q")
                quit_sent = True
            if now >= deadline + 10:
                for r in self.runs:
                    if r.running():
                        r.proc.send_signal(signal.SIGINT)
                if now >= deadline + 15:
                    for r in self.runs:
                        if r.running():
                            r.proc.kill()
            # one progress line per SIPp statistics dump (-fd 1), or per second if SIPp is late
            rows = _count_lines(self.runs[0].stat_file) - 1
            if rows > seen_rows + (1 if seen_rows == 0 else 0) or now - last_tick >= 1.5:
                if rows > 1 or now - last_tick >= 1.5:
                    time.sleep(0.05)                     # let the other SIPp processes write theirs too
                    seen_rows = max(rows, seen_rows)
                    last_tick = time.time()
                    self._tick(last_tick - t0)
            time.sleep(0.05)
        self._tick(time.time() - t0, final=True)

    def _tick(self, elapsed: float, final: bool = False) -> None:
        total = ok = failed = 0
        rate = target = 0.0
        current = 0
        for r in self.runs:
            rows = r.rows()
            if not rows:
                continue
            last = rows[-1]
            total += int(last.get("TotalCallCreated", 0) or 0)
            ok += int(last.get("SuccessfulCall(C)", 0) or 0)
            failed += int(last.get("FailedCall(C)", 0) or 0)
            current += int(last.get("CurrentCall", 0) or 0)
            rate += float(last.get("CallRate(P)", 0) or 0)
            # the planned rate in the middle of the period that just ended
            target += rate_at(self.stairs, max(0.0, elapsed - 0.5))
        sample = {"elapsed": round(elapsed, 2), "calls": total, "successful": ok, "failed": failed,
                  "current": current, "rate": round(rate, 2), "target_rate": target}
        if self.api and self.api.token and self.cfg.scenario == "calls":
            qs = self.api.queues()
            if qs is not None:
                self.queue_samples.append({"elapsed": round(elapsed, 2),
                                           "queues": {q["name"]: {"waiting": q.get("waiting"),
                                                                  "longest_wait": q.get("longest_wait")}
                                                      for q in qs}})
                sample["waiting"] = sum(q.get("waiting") or 0 for q in qs)
        self.progress.append(sample)
        line = (f"  {elapsed:5.1f}s  calls {total:7d}  successful {ok:7d}  failed {failed:5d}  "
                f"in progress {current:5d}  rate {rate:8.1f}/s (target {target:g}/s)")
        if "waiting" in sample:
            line += f"  queued {sample['waiting']}"
        self.say(line + ("  [done]" if final else ""))

    # ------------------------------------------------------------------ results
    def collect(self, stairs, planned: int, started_wall: float, t0: float, ended: float) -> dict:
        cfg = self.cfg
        per_run = {r.name: summarize_run(r) for r in self.runs}
        agg = aggregate(per_run.values())
        rtt = []
        for r in self.runs:
            path = r.find_rtt_file()
            if path:
                rtt.extend(read_rtt(path, offset_s=r.started - t0))
        latency = latency_stats(rtt)
        result = {
            "scenario": cfg.scenario,
            "target": cfg.target if cfg.scenario != "pool-register" else [cfg.target, cfg.target2],
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started_wall)),
            "duration_s": cfg.duration,
            "wall_s": round(ended - t0, 2),
            "schedule": [{"from_s": t, "rate": r} for t, r in stairs],
            "planned_calls": planned * len(self.runs),
            **agg,
            "latency_ms": latency,
            "runs": per_run,
            "events": self.events,
            "progress": self.progress,
        }
        if cfg.scenario == "calls":
            result["hold_s"] = cfg.hold
            result["number"] = cfg.number
            result["agents"] = {"count": len(self.agent_ids), "ids": self.agent_ids,
                                "answer_delay_s": cfg.agent_delay}
            if self.uas is not None:
                result["agents"]["uas"] = summarize_run(self.uas)
        if self.api:
            result["node"] = node_stats(self.before, self.after, self.queue_samples)
        result["ok"] = agg["failed"] == 0 and agg["successful"] > 0
        result["rtt_points"] = len(rtt)
        # the raw response-time samples are kept for the latency plot but not in the JSON
        self._rtt = rtt
        return result


def summarize_run(r: SippRun) -> dict:
    rows = r.rows()
    out: dict = {"returncode": r.proc.returncode if r.proc else None, "stat_file": os.path.basename(r.stat_file),
                 "rows": len(rows)}
    if not rows:
        out.update({"calls": 0, "successful": 0, "failed": 0, "retransmissions": 0, "failures": {}, "series": []})
        return out
    last = rows[-1]

    def c(col: str) -> int:
        try:
            return int(float(last.get(col, 0) or 0))
        except ValueError:
            return 0
    failures = {}
    for col in last:
        if col.startswith("Failed") and col.endswith("(C)") and col != "FailedCall(C)" and c(col):
            failures[col[len("Failed"):-3]] = c(col)
    series = []
    t_first = stat_time(rows[0].get("CurrentTime", "")) or 0.0
    prev_t = t_first
    prev_row = rows[0]
    for row in rows[1:]:
        t = stat_time(row.get("CurrentTime", "")) or prev_t
        period = t - prev_t
        if period < 0.25 and series:
            # the extra row SIPp writes as it exits, a moment after the last periodic one: fold it in
            last_point = series[-1]
            for k, col in (("successful", "SuccessfulCall(P)"), ("failed", "FailedCall(P)"),
                           ("retransmissions", "Retransmissions(P)")):
                last_point[k] += int(row.get(col, 0) or 0)
            continue
        period = max(1e-3, period)
        series.append({"t": round(t - r.started, 3), "period": round(period, 3),
                       "created": int(row.get("OutgoingCall(P)", 0) or row.get("IncomingCall(P)", 0) or 0),
                       "call_rate": float(row.get("CallRate(P)", 0) or 0),
                       "successful": int(row.get("SuccessfulCall(P)", 0) or 0),
                       "failed": int(row.get("FailedCall(P)", 0) or 0),
                       "retransmissions": int(row.get("Retransmissions(P)", 0) or 0),
                       "target_rate": float(prev_row.get("TargetRate", 0) or 0),
                       "current": int(row.get("CurrentCall", 0) or 0)})
        prev_t, prev_row = t, row
    # when did call creation stop: the end of the last period that created calls
    total = c("TotalCallCreated")
    load_end = None
    for row in rows:
        if int(row.get("TotalCallCreated", 0) or 0) >= total:
            load_end = stat_time(row.get("CurrentTime", ""))
            break
    load_s = max(1e-3, (load_end or prev_t) - t_first)
    codes = read_error_codes(r.error_codes_file())
    mean_rt = {}
    for col, val in last.items():
        m = re.fullmatch(r"ResponseTime(\d+)\(C\)", col)
        if m:
            ms = hms_us_to_ms(val)
            if ms is not None and c("SuccessfulCall(C)"):
                mean_rt[m.group(1)] = round(ms, 3)
    out.update({
        "calls": total, "successful": c("SuccessfulCall(C)"), "failed": c("FailedCall(C)"),
        "retransmissions": c("Retransmissions(C)"), "dead_call_msgs": c("DeadCallMsgs(C)"),
        "out_of_call_msgs": c("OutOfCallMsgs(C)"), "watchdog_major": c("WatchdogMajor(C)"),
        "failures": failures, "unexpected_status_codes": codes, "load_s": round(load_s, 3),
        "elapsed_s": round(prev_t - t_first, 3), "peak_rate": max((s["call_rate"] for s in series), default=0.0),
        "mean_response_ms": mean_rt, "series": series})
    return out


def aggregate(runs) -> dict:
    runs = list(runs)
    calls = sum(r["calls"] for r in runs)
    ok = sum(r["successful"] for r in runs)
    failed = sum(r["failed"] for r in runs)
    retrans = sum(r["retransmissions"] for r in runs)
    failures: dict[str, int] = {}
    codes: dict[str, int] = {}
    for r in runs:
        for k, v in r["failures"].items():
            failures[k] = failures.get(k, 0) + v
        for k, v in r.get("unexpected_status_codes", {}).items():
            codes[k] = codes.get(k, 0) + v
    load_s = max((r.get("load_s", 0) for r in runs), default=0) or 0
    elapsed = max((r.get("elapsed_s", 0) for r in runs), default=0) or 0
    return {
        "calls": calls, "successful": ok, "failed": failed, "retransmissions": retrans,
        "retransmission_pct": round(100.0 * retrans / calls, 3) if calls else 0.0,
        "failures_by_kind": failures, "unexpected_status_codes": codes, "status_503": codes.get("503", 0),
        "achieved_rate": round(calls / load_s, 3) if load_s else 0.0,
        "successful_rate": round(ok / load_s, 3) if load_s else 0.0,
        "completion_rate": round(ok / elapsed, 3) if elapsed else 0.0,
        "peak_rate": round(sum(r.get("peak_rate", 0) for r in runs), 3),
        "load_s": round(load_s, 3), "elapsed_s": round(elapsed, 3),
    }


def read_error_codes(path: str | None) -> dict[str, int]:
    """SIPp's -trace_error_codes file: 'time;elapsed;code,code,' per period -> {code: count}."""
    out: dict[str, int] = {}
    if not path or not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split(";")
            if len(parts) < 3:
                continue
            for code in parts[2].split(","):
                code = code.strip()
                if code:
                    out[code] = out.get(code, 0) + 1
    return out


def read_rtt(path: str, offset_s: float = 0.0) -> list[tuple[float, float, int]]:
    """SIPp's *_rtt.csv (Date_ms;response_time_ms;rtd_no) -> [(seconds since the test start, ms, rtd)]."""
    out = []
    with open(path) as f:
        for line in f:
            parts = line.strip().split(";")
            if len(parts) < 3:
                continue
            try:
                out.append((float(parts[0]) / 1000.0 + offset_s, float(parts[1]), int(parts[2])))
            except ValueError:
                continue
    return out


def latency_stats(rtt: list[tuple[float, float, int]]) -> dict:
    by_rtd: dict[int, list[float]] = {}
    for _, ms, rtd in rtt:
        by_rtd.setdefault(rtd, []).append(ms)
    out: dict = {"resolution_ms": 1, "by_rtd": {}}
    for rtd, values in sorted(by_rtd.items()):
        values.sort()
        out["by_rtd"][str(rtd)] = {
            "count": len(values), "p50": percentile(values, 50), "p90": percentile(values, 90),
            "p99": percentile(values, 99), "max": values[-1], "mean": round(sum(values) / len(values), 3)}
    if by_rtd:
        # the headline is the last timer of the scenario: the whole exchange (e.g. REGISTER to 200 after the 401)
        main = str(max(by_rtd))
        out["rtd"] = int(main)
        out.update({k: out["by_rtd"][main][k] for k in ("count", "p50", "p90", "p99", "max", "mean")})
    else:
        out.update({"rtd": None, "count": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None})
    return out


QUEUE_KEYS = ("waiting", "longest_wait", "entered", "answered", "abandoned", "overflowed",
              "average_speed_of_answer", "service_level", "abandon_rate", "average_handle_time")


def node_stats(before: dict, after: dict, samples: list[dict]) -> dict:
    out: dict = {}
    hb, ha = (before or {}).get("health") or {}, (after or {}).get("health") or {}
    if hb or ha:
        cb, ca = hb.get("call_stats") or {}, ha.get("call_stats") or {}
        out["health_before"] = hb
        out["health_after"] = ha
        out["call_stats_delta"] = {k: ca.get(k, 0) - cb.get(k, 0) for k in ca
                                   if isinstance(ca.get(k), (int, float))}
        out["overloaded_503"] = out["call_stats_delta"].get("overloaded")
    qb, qa = (before or {}).get("queues"), (after or {}).get("queues")
    if qb is not None or qa is not None:
        qb_by = {q["name"]: q for q in qb or []}
        queues = {}
        for q in qa or []:
            b = qb_by.get(q["name"], {})
            entry = {"before": {k: b.get(k) for k in QUEUE_KEYS}, "after": {k: q.get(k) for k in QUEUE_KEYS}}
            entry["delta"] = {k: (q.get(k) or 0) - (b.get(k) or 0) for k in ("entered", "answered", "abandoned",
                                                                             "overflowed")}
            waits = [s["queues"].get(q["name"], {}) for s in samples]
            entry["peak_waiting"] = max((w.get("waiting") or 0 for w in waits), default=0)
            entry["peak_longest_wait"] = max((w.get("longest_wait") or 0 for w in waits), default=0.0)
            queues[q["name"]] = entry
        out["queues"] = queues
        out["queue_samples"] = samples
    return out


# ---------------------------------------------------------------------------------------------------- entry points

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("scenario", choices=SCENARIOS)
    ap.add_argument("--target", required=True, help="HOST:PORT of the node's SIP UDP listener")
    ap.add_argument("--target2", help="second node for pool-register")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--rate", type=float, help="calls (or registrations, pings) per second, default 10")
    g.add_argument("--ramp", type=parse_ramp, help="R1:R2:STEP_SECONDS staircase over --duration")
    ap.add_argument("--duration", type=parse_seconds, default=10.0, help="seconds of load (default 10)")
    ap.add_argument("--out", required=True, help="directory for the report, plots and SIPp files")
    ap.add_argument("--http", help="HOST:PORT of the node's HTTP API (queue and health statistics)")
    ap.add_argument("--account", help="API account (a supervisor for --agents)")
    ap.add_argument("--password", help="API password")
    ap.add_argument("--users", type=int, default=100, help="generated users for register scenarios")
    ap.add_argument("--first", type=int, default=100000, help="first generated user number")
    ap.add_argument("--realm", default="cc.test", help="SIP domain / digest realm")
    ap.add_argument("--password-format", default="Pw-{user}!", help="generated users' passwords")
    ap.add_argument("--user", action="append", default=[], metavar="NUMBER:PASSWORD",
                    help="explicit user (repeat); replaces the generated ones")
    ap.add_argument("--number", default="4001", help="number the customers dial (calls)")
    ap.add_argument("--hold", type=parse_seconds,
                    help="customer stays this long after the switch answers (default: --agent-delay + 3 s)")
    ap.add_argument("--direct", action="store_true", help="customer_call_direct.xml (node without media anchor)")
    ap.add_argument("--agents", type=int, default=0, help="agents to register and sign in (calls)")
    ap.add_argument("--agent", action="append", default=[], metavar="[ID:]NUMBER:PASSWORD",
                    help="explicit agent softphone (repeat); ID looked up through /api/agents when left out")
    ap.add_argument("--agent-first", type=int, default=200000, help="first generated agent softphone number")
    ap.add_argument("--agent-password-format", default="Agent-{user}!")
    ap.add_argument("--agent-delay", type=parse_seconds, default=2.0, help="agent phones answer after (2s)")
    ap.add_argument("--transport", default="u1", help="SIPp -t (u1: one UDP socket)")
    ap.add_argument("--grace", type=parse_seconds, help="time after --duration for calls to end")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    return ap


def config_from_args(argv: list[str] | None = None) -> Config:
    a = build_parser().parse_args(argv)
    return Config(scenario=a.scenario, target=a.target, out=os.path.abspath(a.out), duration=a.duration,
                  rate=a.rate, ramp=a.ramp, target2=a.target2, http=a.http, account=a.account,
                  password=a.password, users=a.users, first=a.first, realm=a.realm,
                  password_format=a.password_format, user=a.user, number=a.number,
                  hold=a.hold if a.hold is not None else a.agent_delay + 3.0, direct=a.direct,
                  agents=a.agents, agent=a.agent, agent_first=a.agent_first,
                  agent_password_format=a.agent_password_format, agent_delay=a.agent_delay,
                  transport=a.transport, grace=a.grace, plots=not a.no_plots, quiet=a.quiet)


def run_loadtest(cfg: Config) -> dict:
    """Run one load test and write its report; returns the report dict (also in cfg.out/report.json)."""
    from tools.loadtest_report import write_report
    lt = LoadTest(cfg)
    result = lt.run()
    write_report(result, cfg.out, getattr(lt, "_rtt", []), plots=cfg.plots)
    return result


def main(argv: list[str] | None = None) -> int:
    cfg = config_from_args(argv)
    try:
        result = run_loadtest(cfg)
    except SetupError as e:
        print(f"loadtest: {e}", file=sys.stderr)
        return 2
    lat = result["latency_ms"]
    print(f"{result['scenario']}: {result['successful']}/{result['calls']} successful, {result['failed']} failed, "
          f"achieved {result['achieved_rate']:.1f}/s, p50/p90/p99 "
          f"{'/'.join('-' if lat[q] is None else f'{lat[q]:.1f}' for q in ('p50', 'p90', 'p99'))} ms, "
          f"{result['retransmissions']} retransmissions; report in {os.path.join(cfg.out, 'report.md')}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
