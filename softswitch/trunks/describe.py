"""`softswitch config route FILE NUMBER --from-trunk NAME`: a dry run of a call arriving on a trunk."""

from __future__ import annotations

import sys

from .inbound import route


def describe_trunk(t) -> str:
    who = ", ".join(t.addresses) or "no address"
    auth = (f"challenged as {t.inbound_auth.username!r}, caller from P-Asserted-Identity"
            + ("" if t.addresses else " (known by these credentials from any address)")
            if t.inbound_auth is not None
            else "trusted by address (no challenge), caller from P-Asserted-Identity" if t.addresses
            else "calls on its registration, from the registrar's address" if t.register is not None
            else "not reachable inbound")
    caps = ", ".join(x for x in (f"{t.calls_per_second:g} calls/s (burst {t.burst})" if t.calls_per_second else "",
                                 f"{t.max_calls} at once" if t.max_calls else "") if x) or "no caps"
    extra = []
    if t.register is not None:
        extra.append(f"registers to {t.register.registrar} as {t.register.secret.username}")
    extra.append(f"codecs {', '.join(t.codecs)}")
    if t.options is not None:
        extra.append(f"OPTIONS every {t.options.interval:g}s, down after {t.options.threshold} misses")
    return (f"trunk {t.name}: {who} over {t.transport}; {auth}; {caps}; may reach {', '.join(t.reach)}"
            + "".join(f"; {x}" for x in extra))


def trunk_route(cfg, router, args) -> int:
    t = cfg.trunks.trunk(args.from_trunk)
    if t is None:
        names = ", ".join(x.name for x in cfg.trunks.trunks) or "none configured"
        print(f"no trunk {args.from_trunk!r} (trunks: {names})", file=sys.stderr)
        return 1
    print(describe_trunk(t))
    d, number = route(t, router, args.number, args.ext, args.media)
    shown = args.number if number == args.number else f"{args.number} -> {number}"
    ext = f" (extension {d.ext})" if d.ext else ""
    if d.kind == "reject":
        print(f"{shown}: rejected {d.status} {d.reason}")
        return 3
    if d.kind == "queue":
        q = cfg.queue(d.target)
        agents = [a.id for a in cfg.agents if q.name in a.queues]
        print(f"{shown}{ext}: skill queue {q.name} (type {q.type}, strategy {q.strategy}, agents "
              f"{', '.join(agents) or 'none'})")
    elif d.kind == "ivr":
        print(f"{shown}{ext}: IVR flow {d.target} ({', '.join(s.kind for s in cfg.ivr[d.target])})")
    else:
        print(f"{shown}: agent {d.target}'s softphone")
    return 0
