"""One load-test run: the node's API, the agents (registered on a SIPp UAS, signed in, signed out and
unregistered again whatever happens), the SIPp customers, a progress line a second, and the collected result."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from tools.loadtest_node import COUNTERS, NodeApi, node_stats
from tools.loadtest_report import MEASURES, verdict
from tools.loadtest_sipp import (SCENARIO_DIR, SetupError, SippRun, agent_uas_variant, aggregate, free_udp_port,
                                 latency_stats, parse_hostport, planned_calls, rate_at, read_rtt, schedule,
                                 sipp_cmd, sipp_rate, summarize_run, _count_lines, local_ip_for)


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
    realm: str = "cc.example.com"
    password_format: str = "Pw-{user}!"
    user: list[str] = field(default_factory=list)
    number: str = "4001"
    hold: float = 10.0
    hold_from: str = "--hold"      # how the hold was chosen, for the report
    direct: bool = False
    agents: int = 0
    agent: list[str] = field(default_factory=list)
    agent_password_format: str = "Phone-{user}!"
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
        self.secret_dir: str | None = None
        self.run_id = os.urandom(4).hex()
        self.cseq = 0

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
        """[(agent id or None, softphone number, password)] from --agent; --agents N alone is resolved later,
        through the API."""
        out: list[tuple[str | None, str, str]] = []
        for spec in self.cfg.agent:
            parts = spec.split(":", 2)
            if len(parts) == 3:
                out.append((parts[0], parts[1], parts[2]))
            elif len(parts) == 2:
                out.append((None, parts[0], parts[1]))
            else:
                raise SetupError(f"--agent wants [ID:]NUMBER:PASSWORD, got {spec!r}")
        if self.cfg.agents and out:
            out = out[:self.cfg.agents]
        return out

    def discover_agents(self) -> list[tuple[str | None, str, str]]:
        """--agents N without --agent: the node's first N agents that serve a skill queue, as the supervisor sees
        them in GET /api/agents; passwords from --agent-password-format (the demo tenant's pattern by default)."""
        listed = self.api.call("GET", "/api/agents")
        usable = sorted((a for a in listed if a.get("softphone") and a.get("queues")), key=lambda a: str(a["id"]))
        if len(usable) < self.cfg.agents:
            raise SetupError(f"--agents {self.cfg.agents}: the node has {len(usable)} agent(s) in skill queues "
                             f"({', '.join(str(a['id']) for a in usable) or 'none'}); ask for fewer")
        # a signed-in agent or a real phone of theirs would share the test's calls, and the test signs them out
        busy = [str(a["id"]) for a in usable[:self.cfg.agents]
                if a.get("state") not in (None, "offline") or a.get("registered")]
        if busy:
            raise SetupError(f"agents {', '.join(busy)} are signed in or have a phone registered: sign them out "
                             "and quit their phones first, or name others with --agent")
        return [(str(a["id"]), str(a["softphone"]), self.cfg.agent_password_format.format(user=a["softphone"]))
                for a in usable[:self.cfg.agents]]

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
        if not wanted and not self.cfg.agents:
            return
        if not self.api or not self.api.token:
            raise SetupError("agents need --http, --account (a supervisor) and --password to sign them in")
        if not wanted:
            wanted = self.discover_agents()
        uas_port = self.uas_port = free_udp_port(local_ip)
        scenario = agent_uas_variant(self.cfg.out, self.cfg.agent_delay)
        self.uas = sipp_cmd(scenario, "", local_ip, self.cfg.out, "agents", ["-t", "u1", "-aa"], 0,
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
        # known before anything is registered, so the teardown undoes whatever part of the set-up happened
        self.agent_phones = [(n, p) for _, n, p in agents]
        self.agent_ids = [a for a, _, _ in agents]
        t0 = time.perf_counter()
        ok = self._register(host, port, local_ip, 3600)
        if ok != len(agents):
            raise SetupError(f"only {ok} of {len(agents)} agents registered (wrong password, or realm "
                             f"{self.cfg.realm} is not the node's domain: --realm)")
        signed = 0
        for agent_id in self.agent_ids:
            state = self.api.call("POST", f"/api/agents/{agent_id}/sign-in", {}).get("state")
            signed += state == "idle"
        if signed != len(agents):
            raise SetupError(f"only {signed} of {len(agents)} agents signed in idle")
        self.events.append(f"{ok} agents ({', '.join(self.agent_ids)}) registered to the agent UAS on "
                           f"{local_ip}:{uas_port}, {signed} signed in idle ({time.perf_counter() - t0:.1f} s), "
                           f"answer delay {self.cfg.agent_delay:g} s")
        self.say(self.events[-1])

    def _register(self, host: str, port: int, local_ip: str, expires: int) -> int:
        """REGISTER (expires > 0) or remove (expires 0) every agent's binding to the agent UAS; how many got 200.
        One Call-ID per agent and run with a rising CSeq: the registrar refuses an old CSeq on a known Call-ID."""
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
                            f"{user}-{self.run_id}-{cseq};rport\r\nMax-Forwards: 70\r\n"
                            f"From: <sip:{user}@{realm}>;tag=lt{user}\r\nTo: <sip:{user}@{realm}>\r\n"
                            f"Call-ID: lt-agent-{user}-{self.run_id}@{local_ip}\r\n"
                            f"CSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local_ip}:{self.uas_port}>\r\n"
                            f"Expires: {expires}\r\n{auth}Content-Length: 0\r\n\r\n").encode()
                self.cseq += 2
                sock.sendto(req(self.cseq - 1), (host, port))
                ch = parse_message(sock.recv(65535))
                if ch.status != 401:
                    continue
                value = make_authorization(ch.get_all("WWW-Authenticate")[0], "REGISTER", f"sip:{realm}", user,
                                           password)
                sock.sendto(req(self.cseq, f"Authorization: {value}\r\n"), (host, port))
                ok += parse_message(sock.recv(65535)).status == 200
        finally:
            sock.close()
        return ok

    def teardown_agents(self, host: str, port: int, local_ip: str) -> None:
        """Sign the agents out and remove the bindings the run added; errors here must not hide the first one."""
        if not self.agent_ids:
            return
        signed_out = 0
        if self.api and self.api.token:
            for agent_id in self.agent_ids:
                try:
                    self.api.call("POST", f"/api/agents/{agent_id}/sign-out", {})
                    signed_out += 1
                except (OSError, ValueError, urllib.error.URLError):
                    pass
        removed = 0
        try:
            removed = self._register(host, port, local_ip, 0)
        except (OSError, ValueError, IndexError):
            pass
        self.events.append(f"{signed_out} of {len(self.agent_ids)} agents signed out, {removed} bindings removed")
        self.say(self.events[-1])

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
            # SIPp needs the passwords in its -inf file: a private folder, removed when the run ends
            self.secret_dir = tempfile.mkdtemp(prefix="loadtest-users-")
            csv_path = os.path.join(self.secret_dir, "users.csv")
            write_users_csv(csv_path, users, cfg.realm)
            self.events.append(f"{len(users)} users (realm {cfg.realm}) in a users CSV removed after the run")
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
                f.write(" ".join(redact_argv(sys.argv)) + "\n")
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
                if self.secret_dir:
                    shutil.rmtree(self.secret_dir, ignore_errors=True)
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
                counts = {k: sum(q.get(k) or 0 for q in qs) for k in COUNTERS}
                self.queue_samples.append({"elapsed": round(elapsed, 2), **counts,
                                           "queues": {q["name"]: {"waiting": q.get("waiting"),
                                                                  "longest_wait": q.get("longest_wait"),
                                                                  "average_speed_of_answer":
                                                                      q.get("average_speed_of_answer")}
                                                      for q in qs}})
                sample["waiting"] = sum(q.get("waiting") or 0 for q in qs)
                first = self.queue_samples[0]
                sample.update({k: counts[k] - first[k] for k in ("answered", "abandoned", "overflowed")})
        self.progress.append(sample)
        line = (f"  {elapsed:5.1f}s  calls {total:7d}  successful {ok:7d}  failed {failed:5d}  "
                f"in progress {current:5d}  rate {rate:8.1f}/s (target {target:g}/s)")
        if "waiting" in sample:
            line += (f"  queued {sample['waiting']}  answered {sample['answered']}  abandoned {sample['abandoned']}"
                     f"  overflowed {sample['overflowed']}")
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
        names = MEASURES.get(cfg.scenario, {})
        for rtd, entry in latency["by_rtd"].items():
            entry["measure"] = names.get(rtd, f"SIPp timer rtd {rtd}")
        latency["measure"] = names.get(str(latency["rtd"]), "response time")
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
            result["hold_from"] = cfg.hold_from
            result["number"] = cfg.number
            result["agents"] = {"count": len(self.agent_ids), "ids": self.agent_ids,
                                "answer_delay_s": cfg.agent_delay}
            if self.uas is not None:
                result["agents"]["uas"] = summarize_run(self.uas)
        if self.api:
            result["node"] = node_stats(self.before, self.after, self.queue_samples)
        result.update(verdict(result))
        result["rtt_points"] = len(rtt)
        # the raw response-time samples are kept for the latency plot but not in the JSON
        self._rtt = rtt
        return result


SECRET_OPTIONS = ("--password", "--password-format", "--agent-password-format")
SECRET_PAIRS = ("--agent", "--user")          # [ID:]NUMBER:PASSWORD


def redact_argv(argv: list[str]) -> list[str]:
    """The command line as given, with passwords replaced by ***: reports are shared, secrets are not."""
    out: list[str] = []
    pending = None
    for arg in argv:
        if pending is not None:
            out.append(_redact_value(pending, arg))
            pending = None
            continue
        name, eq, value = arg.partition("=")
        if name in SECRET_OPTIONS + SECRET_PAIRS:
            if eq:
                out.append(f"{name}={_redact_value(name, value)}")
            else:
                out.append(arg)
                pending = name
            continue
        out.append(arg)
    return out


def _redact_value(option: str, value: str) -> str:
    # split as the options are parsed, so a password with ':' in it goes whole
    if option == "--agent" and ":" in value:
        return ":".join(value.split(":", 2)[:-1] + ["***"])
    if option == "--user" and ":" in value:
        return value.partition(":")[0] + ":***"
    return "***"
