"""Load tests against a running node, driven by SIPp: one command, a progress line a second, a report at the end.

    .venv/bin/python tools/loadtest.py SCENARIO --target 127.0.0.1:5060 [--rate R | --ramp R1:R2:STEP] --duration S
        [--http 127.0.0.1:8080 --account A --password P]
        [--users N --realm R --password-format 'Pw-{user}!' --first 100000 | --user NUMBER:PASSWORD ...]
        [--number 4001 --hold S --agents N --agent-delay 2s --agent [ID:]NUMBER:PASSWORD ...]
        [--target2 HOST:PORT] --out DIR

On the demo tenant (`make run`), three agents taking a call every four seconds for 20 s:

    .venv/bin/python tools/loadtest.py calls --target 127.0.0.1:5060 --rate 0.25 --duration 20 --agents 3 \\
        --http 127.0.0.1:8080 --account acme_sam --password 'Sam-Demo4!' --out report/

Scenarios:
  register       digest REGISTER storm (tools/sipp/register_auth.xml) from a users CSV SIPp reads from a private
                 folder that is removed after the run
  options        OPTIONS keepalive flood (tools/sipp/options.xml)
  calls          customers dial --number (tools/sipp/customer_call.xml) and stay --hold seconds after the switch
                 answers them. Agents: --agent [ID:]NUMBER:PASSWORD (repeat), or --agents N for the node's first N
                 agents in skill queues as the --account supervisor sees them, with passwords from
                 --agent-password-format (default 'Phone-{user}!', the demo tenant's). A SIPp agent UAS answering
                 after --agent-delay is started first, the agents are registered with their Contact on it and
                 signed in; they are signed out and their bindings removed at the end, on errors and on Ctrl-C too.
  pool-register  every user registers to two nodes, --target and --target2 (one SIPp per node, same users)

The default --hold is --prompt (5 s: the entry announcement the switch plays before queueing; the demo's welcome
is 2.7 s) + --agent-delay (2 s: the phones' auto-answer) + --talk (3 s of conversation) = 10 s. A call waiting in
the queue longer than that is abandoned.

A calls test PASSes when every customer's call was answered by an agent: none abandoned, overflowed, refused with
503 or failed (the queue counters come from GET /api/queues, so --http and a supervisor are needed). The other
scenarios pass when every transaction succeeded.

--ramp R1:R2:STEP_SECONDS is a staircase from R1 to R2 calls/s over --duration, one stair every STEP_SECONDS
(the rate is changed through SIPp's control socket). Writes DIR/report.json, DIR/report.md, DIR/rate.png,
DIR/latency.png, DIR/command.txt (passwords replaced by ***) and keeps SIPp's files (stat CSV, *_rtt.csv, error
log) in DIR. Exit status: 0 PASS, 1 FAIL, 2 the test could not be set up, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.loadtest_run import Config, LoadTest  # noqa: E402
from tools.loadtest_sipp import SetupError, parse_ramp, parse_seconds  # noqa: E402

SCENARIOS = ("register", "options", "calls", "pool-register")


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
    ap.add_argument("--realm", default="cc.example.com",
                    help="SIP domain / digest realm (the node's server.sip.domain; cc.example.com)")
    ap.add_argument("--password-format", default="Pw-{user}!", help="generated users' passwords")
    ap.add_argument("--user", action="append", default=[], metavar="NUMBER:PASSWORD",
                    help="explicit user (repeat); replaces the generated ones")
    ap.add_argument("--number", default="4001", help="number the customers dial (calls)")
    ap.add_argument("--hold", type=parse_seconds,
                    help="customer stays this long after the switch answers (default --prompt + --agent-delay "
                         "+ --talk)")
    ap.add_argument("--prompt", type=parse_seconds, default=5.0,
                    help="announcement the switch plays before queueing, for the default --hold (5s)")
    ap.add_argument("--talk", type=parse_seconds, default=3.0,
                    help="conversation after the agent answers, for the default --hold (3s)")
    ap.add_argument("--direct", action="store_true", help="customer_call_direct.xml (node without media anchor)")
    ap.add_argument("--agents", type=int, default=0,
                    help="agents to register and sign in (calls): the first N of --agent, or of the node's")
    ap.add_argument("--agent", action="append", default=[], metavar="[ID:]NUMBER:PASSWORD",
                    help="explicit agent softphone (repeat); ID looked up through /api/agents when left out")
    ap.add_argument("--agent-password-format", default="Phone-{user}!",
                    help="softphone passwords of --agents N ({user} is the number; the demo tenant's default)")
    ap.add_argument("--agent-delay", type=parse_seconds, default=2.0, help="agent phones answer after (2s)")
    ap.add_argument("--transport", default="u1", help="SIPp -t (u1: one UDP socket)")
    ap.add_argument("--grace", type=parse_seconds, help="time after --duration for calls to end")
    ap.add_argument("--no-plots", action="store_true", help="no rate.png / latency.png (no matplotlib needed)")
    ap.add_argument("--quiet", action="store_true")
    return ap


def config_from_args(argv: list[str] | None = None) -> Config:
    a = build_parser().parse_args(argv)
    if a.hold is not None:
        hold, hold_from = a.hold, "--hold"
    else:
        hold = a.prompt + a.agent_delay + a.talk
        hold_from = f"--prompt {a.prompt:g} s + --agent-delay {a.agent_delay:g} s + --talk {a.talk:g} s"
    return Config(scenario=a.scenario, target=a.target, out=os.path.abspath(a.out), duration=a.duration,
                  rate=a.rate, ramp=a.ramp, target2=a.target2, http=a.http, account=a.account,
                  password=a.password, users=a.users, first=a.first, realm=a.realm,
                  password_format=a.password_format, user=a.user, number=a.number, hold=hold, hold_from=hold_from,
                  direct=a.direct, agents=a.agents, agent=a.agent, agent_password_format=a.agent_password_format,
                  agent_delay=a.agent_delay, transport=a.transport, grace=a.grace, plots=not a.no_plots,
                  quiet=a.quiet)


def missing_prerequisites(cfg: Config) -> list[str]:
    """Everything the run needs that is not there, found before anything is started or registered."""
    import shutil
    problems = []
    if not shutil.which("sipp"):
        problems.append("sipp is not installed (Debian/Ubuntu: apt-get install sip-tester; or make install-test)")
    if cfg.plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            problems.append(f"matplotlib is missing for {sys.executable}: run the tool with the project's "
                            ".venv/bin/python (make install), or add --no-plots")
    return problems


def run_loadtest(cfg: Config) -> dict:
    """Run one load test and write its report; returns the report dict (also in cfg.out/report.json)."""
    from tools.loadtest_report import write_report
    lt = LoadTest(cfg)
    result = lt.run()
    write_report(result, cfg.out, getattr(lt, "_rtt", []), plots=cfg.plots)
    return result


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt     # SIGTERM unwinds like Ctrl-C: the run's clean-up signs out and unregisters


def summary(result: dict) -> str:
    o, lat = result["outcome"], result["latency_ms"]
    if result["scenario"] == "calls" and "answered" in o:
        counts = (f"{o['offered']} offered, {o['answered']} answered by agents, {o['abandoned']} abandoned, "
                  f"{o['overflowed']} overflowed, {o['refused_503']} refused 503, {o['failed']} failed")
    else:
        counts = (f"{result['successful']}/{result['calls']} successful, {o['failed']} failed, "
                  f"{o['refused_503']} refused 503")
    # SIPp times in whole milliseconds: 0 means under a millisecond
    head = f"{lat.get('measure', 'response time')} p50/p90/p99 " + "/".join(
        "-" if lat[q] is None else "<1" if lat[q] < 1 else f"{lat[q]:.1f}" for q in ("p50", "p90", "p99")) + " ms"
    lines = [f"{result['scenario']}: {result['verdict']} ({counts}); achieved {result['achieved_rate']:.1f}/s, "
             f"{head}, {result['retransmissions']} retransmissions"]
    lines += [f"  - {w}" for w in result["why"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    cfg = config_from_args(argv)
    problems = missing_prerequisites(cfg)
    if problems:
        for p in problems:
            print(f"loadtest: {p}", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C stops a run even when it was started from a script's background job, which inherits SIGINT ignored
    previous_int = signal.signal(signal.SIGINT, _interrupt)
    try:
        result = run_loadtest(cfg)
    except SetupError as e:
        print(f"loadtest: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loadtest: interrupted; SIPp stopped, agents signed out and unregistered, no report", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    print(summary(result))
    print(f"report in {os.path.join(cfg.out, 'report.md')}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
