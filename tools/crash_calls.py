"""Kill a node with SIGKILL right after calls end, again and again, and check that no record was lost or doubled.

A fork server (`crash_calls.py zygote CONFIG LOG`) imports the switch once and forks a fresh node
(softswitch.node.compose.run, the same as `softswitch serve`) for every round, so a round costs a fork instead of a
Python start. The driver (run_crashes) plays the phones over raw UDP: agents registered once whose phones
answer every offer, customers calling the queue and either side hanging up after a few milliseconds. A call's
end is *seen* when the switch's BYE or its 200 to our BYE arrives; within 0-20 ms of a seen end the node is
killed. The node restarts on the same database each round (and closes the calls the kill interrupted).

Checked after every kill, on the database as the dead node left it:
- every call whose end was seen has its CDR (not `interrupted`) and its closing queue-log line (complete or
  abandon), and for a talked call the agent's state line out of talking;
and after the last restart, over all rounds:
- every call that entered the queue has exactly one CDR and exactly one closing line;
- each agent's state lines form one chain (each line leaves the state the previous one entered): no state line
  lost or doubled, restarts included (`-> offline` at the crash, `offline -> idle` when the node resumes it);
- no call journal is left open and the agents were resumed after every restart (no second sign-in is made).

Usage: python tools/crash_calls.py [--rounds N] [--seed S] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.tenant import SUPERVISOR, TENANT_PASSWORD, write_tenant  # noqa: E402
from softswitch.sip.parser import parse_message  # noqa: E402
from tools.agents_load import register_agents, sign_in_all  # noqa: E402

SDP = ("v=0\r\no=p 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")
CLOSERS = ("complete", "abandon", "overflow", "reject")


# --- the fork server -----------------------------------------------------------------------------------------
def zygote(config: str, log_path: str) -> None:
    """Read `start` lines on stdin; for each fork a node serving `config`, answer `up PID` once it listens."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # no BLAS threads to lose in the fork
    import softswitch.api.server  # noqa: F401  - what a node imports, once, before any fork
    import softswitch.b2bua.call_media  # noqa: F401
    import softswitch.registrar.location_sqlite  # noqa: F401
    import softswitch.settings  # noqa: F401
    import media.engine  # noqa: F401
    from softswitch.node.compose import run
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)          # killed nodes are reaped by the kernel
    ready_fds: list[int] = []
    for line in sys.stdin:
        if line.strip() != "start":
            continue
        for fd in ready_fds:
            os.close(fd)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(w, 1)
            os.dup2(log_fd, 2)
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            os._exit(run(config))
        os.close(w)
        ready_fds = [r]
        out = b""
        while b"records " not in out:                   # the last line a node prints when it has started
            chunk = os.read(r, 4096)
            if not chunk:
                break
            out += chunk
        print(f"up {pid}" if b"records " in out else "failed", flush=True)


class Zygote:
    def __init__(self, config: str, log_path: str) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "zygote", config, log_path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

    def start(self) -> int:
        self.proc.stdin.write("start\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().split()
        if line[:1] != ["up"]:
            raise RuntimeError(f"the node did not start: {line}")
        return int(line[1])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


# --- the phones ------------------------------------------------------------------------------------------------
class Phone:
    """One UDP socket: a customer placing calls or an agent's phone answering them. Dialogs by Call-ID."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.dialogs: dict[str, dict] = {}
        self.seq = 0

    def send(self, data: str, to: tuple[str, int]) -> None:
        self.sock.sendto(data.encode(), to)

    def request(self, method: str, d: dict, body: str = "") -> None:
        self.seq += 1
        d["cseq"] += 1
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        self.send(f"{method} {d['target']} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK-"
                  f"{self.name}-{self.seq};rport\r\nMax-Forwards: 70\r\nFrom: {d['local']}\r\nTo: {d['remote']}\r\n"
                  f"Call-ID: {d['call_id']}\r\nCSeq: {d['cseq']} {method}\r\n"
                  f"Contact: <sip:{self.name}@127.0.0.1:{self.port}>\r\n{ctype}Content-Length: {len(body)}\r\n\r\n"
                  f"{body}", d["peer"])

    def respond(self, req, src, status: int, to_tag: str = "", body: str = "") -> None:
        vias = "".join(f"Via: {v}\r\n" for v in req.get_all("Via"))
        to = req.get("To") + (f";tag={to_tag}" if to_tag and "tag=" not in req.get("To") else "")
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        self.send(f"SIP/2.0 {status} OK\r\n{vias}From: {req.get('From')}\r\nTo: {to}\r\nCall-ID: {req.call_id}\r\n"
                  f"CSeq: {req.get('CSeq')}\r\nContact: <sip:{self.name}@127.0.0.1:{self.port}>\r\n{ctype}"
                  f"Content-Length: {len(body)}\r\n\r\n{body}", src)

    def recv(self):
        try:
            data, src = self.sock.recvfrom(65535)
        except BlockingIOError:
            return None, None
        try:
            return parse_message(data), src
        except Exception:
            return None, None


class Calls:
    """The driver's view of every call: placed, connected, hung up by whom, end seen."""

    def __init__(self, sip: tuple[str, int], agents: list[Phone], rng: random.Random, hang_up: bool = True) -> None:
        self.sip, self.agents, self.rng, self.hang_up = sip, agents, rng, hang_up
        self.customer = Phone("cust")
        self.customer.sock.setblocking(False)
        for a in agents:
            a.sock.setblocking(False)
        self.placed: dict[str, dict] = {}        # call id -> the customer dialog
        self.seen_end: list[str] = []
        self.bye_to_200: list[float] = []       # seconds from our BYE to the switch's 200 (its records committed)
        self.hangups: list[tuple[float, Phone, str]] = []   # (when, whose phone, call id); none if not hang_up
        self.n = 0

    def place(self, prefix: str, to: tuple[str, int] | None = None) -> str:
        """Call the queue at the node `to` (the driver's node if not given); returns the Call-ID."""
        self.n += 1
        cid = f"{prefix}-{self.n}"
        to = to or self.sip
        d = {"call_id": cid, "local": "<sip:cust@x.test>;tag=ct" + cid, "remote": "<sip:4001@bench.test>",
             "target": f"sip:4001@{to[0]}:{to[1]}", "peer": to, "cseq": 0, "state": "calling"}
        self.placed[cid] = d
        self.customer.request("INVITE", d, SDP.format(port=40000 + self.n % 1000 * 2))
        return cid

    def pump(self, until: float) -> None:
        """Handle what arrives and the hang-ups that are due, until `until` (monotonic)."""
        phones = [self.customer, *self.agents]
        while True:
            now = time.monotonic()
            for when, phone, cid in [h for h in self.hangups if h[0] <= now and self.hang_up]:
                self.hangups.remove((when, phone, cid))
                d = phone.dialogs.get(cid) if phone is not self.customer else self.placed.get(cid)
                if d is not None and d["state"] == "up":
                    d["state"] = "bye sent"
                    d["bye_at"] = time.monotonic()
                    phone.request("BYE", d)
            if now >= until:
                return
            ready, _, _ = select.select([p.sock for p in phones], [], [], min(0.005, until - now))
            for p in phones:
                if p.sock in ready:
                    while True:
                        msg, src = p.recv()
                        if msg is None:
                            break
                        self._handle(p, msg, src)

    def _handle(self, p: Phone, msg, src) -> None:
        cid = msg.call_id
        if p is self.customer:
            d = self.placed.get(cid)
        else:
            d = p.dialogs.get(cid)
        if hasattr(msg, "status"):
            method = msg.cseq[1]
            if d is None:
                return
            if method == "INVITE" and msg.status >= 200 and p is self.customer:
                if msg.status < 300:
                    if d["state"] == "calling":
                        d["remote"] = msg.get("To")
                        contact = msg.contacts[0].uri
                        d["target"] = str(contact)
                        d["state"] = "up"
                        # the caller gives up while waiting, sometimes
                        self.hangups.append((time.monotonic() + self.rng.uniform(0.005, 0.08), p, cid))
                    p.send(f"ACK {d['target']} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p.port};branch=z9hG4bK-ack-"
                           f"{cid}-{msg.cseq[0]};rport\r\nMax-Forwards: 70\r\nFrom: {d['local']}\r\nTo: {d['remote']}"
                           f"\r\nCall-ID: {cid}\r\nCSeq: {msg.cseq[0]} ACK\r\nContent-Length: 0\r\n\r\n", d["peer"])
                else:
                    d["state"] = "failed"
            elif method == "BYE" and msg.status == 200 and d["state"] == "bye sent":
                d["state"] = "ended"
                if "bye_at" in d:
                    self.bye_to_200.append(time.monotonic() - d["bye_at"])
                if p is self.customer:     # the agent's leg has the switch's Call-ID: its end is seen here too
                    self._ended(cid)
            return
        if msg.method == "INVITE":
            if d is None and p is not self.customer:        # an offer: answer it
                tag = f"ag{p.name}{cid[-6:]}".replace("-", "")
                d = p.dialogs[cid] = {"call_id": cid, "local": msg.get("To") + f";tag={tag}",
                                      "remote": msg.get("From"), "target": str(msg.contacts[0].uri),
                                      "peer": src, "cseq": 100, "state": "answered", "tag": tag,
                                      "offered_at": time.monotonic()}
                p.respond(msg, src, 200, tag, SDP.format(port=42000 + len(p.dialogs) % 1000 * 2))
                return
            if d is not None:                                # a re-INVITE
                p.respond(msg, src, 200, d.get("tag", ""), SDP.format(port=44000))
            else:
                p.respond(msg, src, 481)
        elif msg.method == "ACK":
            if d is not None and d["state"] == "answered":
                d["state"] = "up"
                if self.rng.random() < 0.5:                   # the agent hangs up, or the customer does
                    self.hangups.append((time.monotonic() + self.rng.uniform(0.002, 0.03), p, cid))
                else:
                    self.hangups.append((time.monotonic() + self.rng.uniform(0.002, 0.03), self.customer, cid))
        elif msg.method == "BYE":
            p.respond(msg, src, 200, "")
            if d is not None and d["state"] != "ended":
                if p is self.customer:
                    self._ended(cid)
                d["state"] = "ended"
        elif msg.method in ("OPTIONS", "UPDATE", "INFO", "CANCEL"):
            p.respond(msg, src, 200)

    def _ended(self, cid: str) -> None:
        if cid not in self.seen_end:
            self.seen_end.append(cid)


# --- the checks --------------------------------------------------------------------------------------------
def _rows(db: str, sql: str, args=()) -> list[tuple]:
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def check_seen(db: str, seen: list[str]) -> list[str]:
    """Every call whose end was seen has its CDR and its closing line."""
    problems = []
    cdrs = dict(_rows(db, "SELECT call_id, outcome FROM cdr"))
    closers = {}
    for cid, ev in _rows(db, f"SELECT call_id, event FROM queue_log WHERE event IN {CLOSERS}"):
        closers.setdefault(cid, []).append(ev)
    for cid in seen:
        if cid not in cdrs:
            problems.append(f"{cid}: end seen, no CDR")
        elif cdrs[cid] == "interrupted":
            problems.append(f"{cid}: end seen, CDR says interrupted")
        if not closers.get(cid):
            problems.append(f"{cid}: end seen, no complete/abandon line")
    # a talked call's complete line is followed by its agent's line out of talking, committed with it or before
    for cid, line_id, agent_id in _rows(db, "SELECT call_id, id, agent_id FROM queue_log WHERE event = 'complete'"):
        if cid in seen and not _rows(db, "SELECT id FROM queue_log WHERE event = 'state' AND agent_id = ? AND "
                                         "old = 'talking' AND id > ? LIMIT 1", (agent_id, line_id)):
            problems.append(f"{cid}: end seen, no state line of agent {agent_id} out of talking")
    return problems


def check_all(db: str) -> list[str]:
    """After the last restart: one CDR and one closing line per call that entered the queue; state chains."""
    problems = []
    entered = {r[0] for r in _rows(db, "SELECT DISTINCT call_id FROM queue_log WHERE event = 'enqueue'")}
    cdr_count = dict(_rows(db, "SELECT call_id, count(*) FROM cdr GROUP BY call_id"))
    close_count = dict(_rows(db, f"SELECT call_id, count(*) FROM queue_log WHERE event IN {CLOSERS} GROUP BY call_id"))
    for cid in sorted(entered):
        if cdr_count.get(cid, 0) != 1:
            problems.append(f"{cid}: {cdr_count.get(cid, 0)} CDRs")
        if close_count.get(cid, 0) != 1:
            problems.append(f"{cid}: {close_count.get(cid, 0)} closing lines")
    for agent_id, n in _rows(db, "SELECT agent_id, count(*) FROM queue_log WHERE event = 'complete' GROUP BY agent_id"):
        out = _rows(db, "SELECT count(*) FROM queue_log WHERE event = 'state' AND agent_id = ? AND old = 'talking'",
                    (agent_id,))[0][0]
        if out != n:
            problems.append(f"agent {agent_id}: {n} calls completed, {out} state lines out of talking")
    left = _rows(db, "SELECT call_id FROM open_call")
    if left:
        problems.append(f"journal left open: {left[:5]}")
    for (agent_id,) in _rows(db, "SELECT DISTINCT agent_id FROM queue_log WHERE event = 'state'"):
        state = "offline"
        for i, (old, new, reason) in enumerate(_rows(db, "SELECT old, new, reason FROM queue_log WHERE event = "
                                                         "'state' AND agent_id = ? ORDER BY id", (agent_id,))):
            if old != state:
                problems.append(f"agent {agent_id}: line {i} leaves {old} but the agent was {state} ({reason})")
            state = new
    return problems


# --- the run -------------------------------------------------------------------------------------------------
def run_crashes(workdir: str, rounds: int, seed: int = 1, calls_in_flight: int = 4, agents: int = 3,
                report=None) -> dict:
    rng = random.Random(seed)
    workdir = os.path.abspath(workdir)
    rtp = 30000 + rng.randrange(100) * 200                  # parallel runs rarely share a range
    t = write_tenant(os.path.join(workdir, "crash.yaml"), agents=agents, queues=1, wrap_up="0s",
                     ring_timeout="2s", rtp_ports=f"{rtp}-{rtp + 199}",
                     # a restarted node hears from the kept bindings within a third of the interval
                     keepalive="{interval: 1s, timeout: 0.5s, failures: 3}")
    db = os.path.join(workdir, "cdr.db")
    zyg = Zygote(t.path, os.path.join(workdir, "node.log"))
    phones = [Phone(number) for number, _ in t.phones]
    pid = None
    stats = {"rounds": 0, "seen_ends": 0, "calls": 0, "problems": [], "kill_after_ms": [], "bye_to_200": []}
    try:
        pid = zyg.start()
        for p, cred in zip(phones, t.phones):
            assert register_agents(t.sip_port, [cred], t.realm, p.port) == 1
        # registrations are written behind to the database: wait until they would survive a kill
        deadline = time.monotonic() + 30
        while len(_rows(db, "SELECT aor FROM bindings")) < len(phones):
            assert time.monotonic() < deadline, "bindings never reached the database"
            time.sleep(0.05)
        assert sign_in_all(t.http_port, SUPERVISOR, TENANT_PASSWORD, t.agent_ids) == len(phones)
        for rnd in range(rounds):
            calls = Calls(("127.0.0.1", t.sip_port), phones, rng)
            for p in phones:
                p.dialogs.clear()
            ends_wanted = rng.randint(1, 3)
            deadline = time.monotonic() + 20
            for _ in range(calls_in_flight):
                calls.place(f"r{rnd}")
            while len(calls.seen_end) < ends_wanted:
                assert time.monotonic() < deadline, f"round {rnd}: calls do not end ({len(calls.seen_end)} ends)"
                live = sum(1 for d in calls.placed.values() if d["state"] in ("calling", "up", "bye sent"))
                if live < calls_in_flight:
                    calls.place(f"r{rnd}")
                calls.pump(time.monotonic() + 0.002)
            delay = rng.uniform(0.0, 0.020)
            calls.pump(time.monotonic() + delay)
            os.kill(pid, signal.SIGKILL)
            stats["kill_after_ms"].append(delay * 1000)
            _wait_dead(pid)
            calls.pump(time.monotonic() + 0.005)              # what the node sent before it died
            problems = check_seen(db, calls.seen_end)
            stats["problems"] += [f"round {rnd}: {p}" for p in problems]
            stats["rounds"] += 1
            stats["seen_ends"] += len(calls.seen_end)
            stats["calls"] += len(calls.placed)
            stats["bye_to_200"] += calls.bye_to_200
            if report is not None and (rnd + 1) % 50 == 0:
                report(f"{rnd + 1} rounds, {stats['seen_ends']} ends seen, {len(stats['problems'])} problems")
            pid = zyg.start()                                  # closes what the kill left open
        # the last node started has closed what the last kill left open (before it said it was up)
        os.kill(pid, signal.SIGKILL)
        _wait_dead(pid)
        pid = None
        stats["problems"] += check_all(db)
        resumed = _rows(db, "SELECT count(*) FROM queue_log WHERE event = 'state' AND old = 'offline' "
                            "AND new = 'idle'")[0][0]
        stats["resumed"] = resumed
        stats["interrupted"] = _rows(db, "SELECT count(*) FROM cdr WHERE outcome = 'interrupted'")[0][0]
        stats["cdrs"] = _rows(db, "SELECT count(*) FROM cdr")[0][0]
    finally:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)        # never leave a node behind, whatever failed
            except ProcessLookupError:
                pass
        zyg.close()
        for p in phones:
            p.sock.close()
    return stats


def _wait_dead(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.002)
    raise RuntimeError(f"node {pid} did not die")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        stats = run_crashes(args.workdir or tmp, args.rounds, args.seed, report=print)
    for p in stats["problems"][:20]:
        print("PROBLEM", p)
    print(f"crash: {stats['rounds']} kills, {stats['seen_ends']} call ends seen, {stats['cdrs']} CDRs "
          f"({stats['interrupted']} interrupted), {len(stats['problems'])} lost or doubled")
    return 1 if stats["problems"] else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["zygote"]:
        zygote(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
