"""The command line: serve, config check, config route, passwd, records, phone (see SPEC "Command line")."""

from __future__ import annotations

import argparse
import gc
import getpass
import importlib
import os
import sys
from datetime import datetime
from pathlib import Path

import config  # the shipped configs are package data

from .registrar.credentials import Credentials
from .phone.command import add_arguments as phone_arguments
from .phone.command import run as run_phone
from .records.export import MEANINGS
from .b2bua.routing import Router
from .trunks.describe import trunk_route
from .settings import ConfigError, PasswordPolicy, hash_password, load_config, softphone_hash

DEFAULT_CONFIG = "config/example.yaml"


def default_config() -> str:
    if os.path.exists(DEFAULT_CONFIG):
        return DEFAULT_CONFIG
    return str(Path(config.__file__).with_name("example.yaml"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="softswitch", description="Contact-center softswitch: SIP registrar, B2BUA, ACD")
    p.add_argument("--version", action="version", version=f"softswitch {version()}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run a node")
    s.add_argument("--config", default=None, help=f"YAML config (default {DEFAULT_CONFIG})")
    c = sub.add_parser("config", help="check a config or dry-run a route")
    csub = c.add_subparsers(dest="action", required=True)
    ck = csub.add_parser("check", help="validate; errors name file, line and key")
    ck.add_argument("file")
    rt = csub.add_parser("route", help="what a call to NUMBER would reach")
    rt.add_argument("file")
    rt.add_argument("number")
    rt.add_argument("--ext", default=None, help="extension code sent separately (R-URI ;ext=)")
    rt.add_argument("--media", choices=("voice", "video"), default="voice")
    rt.add_argument("--from-agent", default=None, help="the call comes from this agent's softphone")
    rt.add_argument("--from-trunk", default=None, help="the call arrives on this trunk (NUMBER as it delivers it)")
    pw = sub.add_parser("passwd", help="hash a password for the YAML, or reset a softphone password")
    who = pw.add_mutually_exclusive_group()
    who.add_argument("--account", help="business account name (prints password_hash)")
    who.add_argument("--softphone", help="softphone number (prints softphone_password_hash)")
    who.add_argument("--agent", help="agent id; realm and number from --config")
    pw.add_argument("--realm", help="digest realm for --softphone (default: from --config)")
    pw.add_argument("--config", help="take realm and password policy from this config")
    pw.add_argument("--reset", action="store_true",
                    help="store the new softphone password in the node's database (effective at next REGISTER)")
    pw.add_argument("--stdin", action="store_true", help="read the password from standard input")
    rec = sub.add_parser("records", help="export call detail records or the queue log")
    rsub = rec.add_subparsers(dest="action", required=True)
    ex = rsub.add_parser("export", help="write records as CSV or JSON to standard output",
                         description="Write the CDRs or the queue log of the node CONFIG describes to standard "
                                     "output, as CSV (a header row) or a JSON list.",
                         epilog=MEANINGS, formatter_class=argparse.RawDescriptionHelpFormatter)
    ex.add_argument("file", metavar="CONFIG", help="the node's config (its storage.cdr database is read)")
    ex.add_argument("--kind", choices=("cdr", "queue_log", "chats"), default="cdr")
    ex.add_argument("--format", choices=("csv", "json"), default="csv")
    when = "a date (2026-12-01), an ISO time (2026-12-01T09:30, local unless it has an offset) or UNIX seconds"
    ex.add_argument("--since", type=moment, default=None, help=f"first moment exported: {when}")
    ex.add_argument("--until", type=moment, default=None, help=f"end of the export (excluded): {when}")
    phone_arguments(sub.add_parser("phone", help="a SIP softphone: register and answer, or call a number"))
    args = p.parse_args(argv)
    if args.command == "phone":
        return run_phone(args)
    if args.command == "records":
        return records_export(args)
    if args.command == "serve":
        return serve(args.config or default_config())
    if args.command == "config":
        return config_check(args.file) if args.action == "check" else config_route(args)
    return passwd(args)


def serve(config_path: str) -> int:
    # The node (aiohttp, numpy, the media engine: about a second of imports) is loaded to serve only: the other
    # commands, `config check` of a big tenant before each deploy first, do not wait for it. Its imports make
    # objects that all live for the run: the cyclic collector, left on, walks them again and again while they
    # are made (a fifth of the import time). `run` turns it on once the tenant is built.
    gc.disable()
    return importlib.import_module("softswitch.node.compose").run(config_path)


def version() -> str:
    metadata = importlib.import_module("importlib.metadata")
    try:
        return metadata.version("softswitch")
    except metadata.PackageNotFoundError:     # run from a source tree that was never installed
        return "unknown"


def _records():
    """softswitch.records.store, loaded by the commands that use it: with its logging (structlog, asyncio) it
    is a third of the CLI's imports, which `config check` and `passwd` need none of."""
    return importlib.import_module("softswitch.records.store")


def moment(text: str) -> float:
    """UNIX seconds, or an ISO 8601 date / date-time; without an offset it is the machine's local time."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date, ISO time or UNIX seconds: {text!r}") from None


def _load(path: str):
    try:
        return load_config(path)
    except ConfigError as err:
        print(err, file=sys.stderr)
        print(f"{path}: {len(err.problems)} problem(s)", file=sys.stderr)
        return None


def config_check(path: str) -> int:
    cfg = _load(path)
    if cfg is None:
        return 1
    print(f"{path}: ok ({len(cfg.employees)} employees, {len(cfg.agents)} agents, {len(cfg.queues)} skill queues, "
          f"{len(cfg.routes)} called routes, {len(cfg.ivr)} IVR flows)")
    return 0


def config_route(args) -> int:
    cfg = _load(args.file)
    if cfg is None:
        return 1
    router = Router(cfg.routes, {a.softphone: a.id for a in cfg.agents})
    if args.from_trunk is not None:
        return trunk_route(cfg, router, args)
    if args.from_agent and cfg.agent(args.from_agent) is None:
        print(f"no agent {args.from_agent!r}", file=sys.stderr)
        return 1
    d = router.decide(args.number, args.ext, args.media, caller_agent=args.from_agent,
                      caller_signed_in=args.from_agent is not None)
    ext = f" (extension {d.ext})" if d.ext else ""
    if d.kind == "auth":
        print(f"{args.number}: challenged {d.status} {d.reason}: not a called route, so only an agent's "
              f"authenticated call goes further; any other caller gets 403 (the same for every such number, "
              f"an agent's softphone or not)")
        return 3
    if d.kind == "reject":
        print(f"{args.number}: rejected {d.status} {d.reason}")
        return 3
    if d.kind == "queue":
        q = cfg.queue(d.target)
        agents = [a.id for a in cfg.agents if q.name in a.queues]
        print(f"{args.number}{ext}: skill queue {q.name} (type {q.type}, strategy {q.strategy}, "
              f"max wait {q.max_wait:g}s, ring timeout {q.ring_timeout:g}s, agents {', '.join(agents) or 'none'}; "
              f"overflow {q.overflow.kind}{'/' + q.overflow.target if q.overflow.target else ''})")
    elif d.kind == "ivr":
        steps = ", ".join(s.kind for s in cfg.ivr[d.target])
        print(f"{args.number}{ext}: IVR flow {d.target} ({steps})")
    else:
        print(f"{args.number}: outbound call from agent {args.from_agent}")
    return 0


def records_export(args) -> int:
    cfg = _load(args.file)
    if cfg is None:
        return 1
    store = _records().RecordStore(cfg.server.storage.cdr)
    try:
        n = store.export(args.kind, args.format, sys.stdout, since=args.since, until=args.until)
    finally:
        store.close()
    print(f"{n} {args.kind} rows", file=sys.stderr)
    return 0


def _read_password(args) -> str | None:
    if args.stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        print("the two passwords differ", file=sys.stderr)
        return None
    return first


def passwd(args) -> int:
    cfg = None
    if args.config:
        cfg = _load(args.config)
        if cfg is None:
            return 1
    policy = cfg.password_policy if cfg else PasswordPolicy()
    number = args.softphone
    if args.agent:
        if cfg is None or cfg.agent(args.agent) is None:
            print("--agent needs --config with that agent", file=sys.stderr)
            return 1
        number = cfg.agent(args.agent).softphone
    realm = args.realm or (cfg.server.sip.realm if cfg else None)
    if number and not realm:
        print("a softphone hash is bound to the digest realm: give --realm or --config", file=sys.stderr)
        return 1
    if args.reset and (cfg is None or not number):
        print("--reset needs --config and --agent or --softphone", file=sys.stderr)
        return 1
    password = _read_password(args)
    if password is None:
        return 1
    account = args.account or (cfg.agent(args.agent).account if args.agent else "") or number or ""
    bad = policy.violations(password, account)
    if number and not bad:
        bad = policy.violations(password, number)
    if bad:
        print(f"password rejected by the password policy: {'; '.join(bad)}", file=sys.stderr)
        return 1
    if args.reset:
        url = cfg.server.storage.cdr
        path = _records().db_path(url) if url.startswith("sqlite:///") else None
        creds = Credentials(realm, {a.softphone: dict(a.ha1) for a in cfg.agents}, db_path=path)
        try:
            creds.reset(number, password)
        except KeyError:
            print(f"no agent has softphone {number!r}", file=sys.stderr)
            return 1
        finally:
            creds.close()
        print(f"softphone {number}: password reset; the node uses it from the phone's next REGISTER")
        return 0
    if number:
        print(f'softphone_password_hash: "{softphone_hash(number, realm, password)}"')
    else:
        print(f'password_hash: "{hash_password(password)}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
