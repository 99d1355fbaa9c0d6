"""The security and overload sections of the YAML as the options of the guard, the account lockout, the
overload policy and the per-agent digest lists, and how a reload changes them on a running node.

A reload replaces the options and keeps what the components have counted (rate-limit buckets, bans, failed
attempts, locks, the shedding state): changing a limit must not unban a flooder or unlock an account.
"""

from __future__ import annotations

from .gate import GateOptions, gate_settings, guard_settings
from .guard import SCANNERS, GuardOptions
from .lockout import LockoutOptions
from .overload import OverloadOptions


def agent_algorithms(cfg) -> dict[str, tuple[str, ...]]:
    """Softphone number -> its own digest algorithms, for the agents that have a list of their own."""
    return {a.softphone: a.digest for a in cfg.agents if a.digest}


def guard_options(sec) -> GuardOptions:
    return GuardOptions(sec.rate, sec.burst, sec.flood_ban_after, sec.auth_failures, sec.window, sec.ban_time,
                        sec.scanners if sec.scanners is not None else SCANNERS, sec.exempt)


def lockout_options(sec) -> LockoutOptions:
    return LockoutOptions(sec.account_failures, sec.account_window, sec.account_lock_time)


def overload_options(ovl) -> OverloadOptions:
    return OverloadOptions(ovl.queue_delay, ovl.sustain, ovl.drop_after, retry_after=ovl.retry_after)


def front_options(ovl) -> GateOptions:
    """The UDP front's gate: new REGISTERs refused there a little before the node would sort what it reads as
    late itself (so it does not), nothing passed on past half of `drop_after`."""
    return GateOptions(wait=0.75 * ovl.queue_delay, sustain=ovl.sustain, hard=ovl.drop_after / 2,
                       retry_after=ovl.retry_after)


def reconfigure(node, old, new) -> tuple[list[str], list[str]]:
    """Apply `new`'s security and overload settings to `node`: (sections applied, sections needing a restart)."""
    applied: list[str] = []
    restart: list[str] = []
    osec, nsec = old.server.sip.security, new.server.sip.security
    if osec != nsec:
        if node.guard is not None:
            node.guard.reconfigure(guard_options(nsec))
            front = getattr(node, "front", None)
            if front is not None:
                front.tell({"guard": guard_settings(node.guard.o)})
        lockout = getattr(getattr(node, "authn", None), "lockout", None)
        if lockout is not None:
            lockout.reconfigure(lockout_options(nsec))
        ep = node.endpoint
        ep.max_message_size, ep.max_vias = nsec.max_message_size, nsec.max_vias
        node.calls.outbound_per_minute = nsec.outbound_calls_per_minute
        applied.append("server.sip.security")
    oovl, novl = old.server.sip.overload, new.server.sip.overload
    if oovl != novl:
        if oovl.enabled != novl.enabled or oovl.front != novl.front or node.overload is None:
            # the receive path is chosen when the sockets open
            restart.append("server.sip.overload." + ("enabled" if oovl.enabled != novl.enabled else "front"))
        else:
            node.overload.reconfigure(overload_options(novl))
            front = getattr(node, "front", None)
            if front is not None:
                front.tell({"gate": gate_settings(front_options(novl))})
            applied.append("server.sip.overload")
    return applied, restart
