"""Config hot reload: validate the new file first, then apply the difference without dropping calls.

Routes, IVR flows, queue settings, agents and softphone secrets change in place. A queue that disappears
keeps serving the calls already in it (no new calls are routed there); an agent that disappears is signed
out (after the current call, if talking). Trunks change in place (caps keep their counts; a registration or
pinger restarts only when its own settings changed). The web chat's settings, queues and agents' figures change
in place (chat/config.py). Security and overload limits change in place, keeping the bans,
locks and counts already made. Listen addresses, media ports and storage need a restart: a
change there is reported, not applied.
"""

from __future__ import annotations

from acd import Agent

from ..b2bua.contact_center import agent_queues, queue_spec
from ..registrar.phones import keepalive_options
from ..b2bua.routing import Router
from ..chat.config import reconfigure as reconfigure_chat
from ..security.config import agent_algorithms, reconfigure


def apply_config(node, new) -> dict:
    """Apply `new` (an already validated Config) to a running node; returns what changed."""
    old = node.config
    changes: dict[str, list] = {"queues_added": [], "queues_removed": [], "queues_changed": [],
                                "agents_added": [], "agents_removed": [], "agents_changed": [],
                                "routes": [], "needs_restart": [], "security": [], "trunks": []}
    for key, label in ((lambda c: c.server.sip.listen, "server.sip.listen"),
                       (lambda c: c.server.media, "server.media"), (lambda c: c.server.storage, "server.storage"),
                       (lambda c: c.server.http_listen, "server.http"), (lambda c: c.server.sip.realm, "realm")):
        if key(old) != key(new):
            changes["needs_restart"].append(label)
    applied, restart = reconfigure(node, old, new)
    changes["security"] = applied
    changes["needs_restart"].extend(restart)
    node.credentials.update_config({a.softphone: dict(a.ha1) for a in new.agents})
    if getattr(node, "phones", None) is not None and old.keepalive != new.keepalive:
        node.phones.set_options(keepalive_options(new.keepalive))
        changes["phones"] = ["keepalive"]
    if getattr(node, "authn", None) is not None:
        node.authn.per_user = agent_algorithms(new)
    node.router = node.calls.router = Router(new.routes, {a.softphone: a.id for a in new.agents})
    if {(r.called, r.ext, r.media, r.kind, r.target) for r in old.routes} != \
            {(r.called, r.ext, r.media, r.kind, r.target) for r in new.routes}:
        changes["routes"].append(f"{len(old.routes)} -> {len(new.routes)}")
    center = node.center
    if center is not None:
        acd = center.acd
        new_queues = {q.name: q for q in new.queues}
        for name, q in new_queues.items():
            spec = queue_spec(q)
            if name not in acd.queues:
                changes["queues_added"].append(name)
            elif acd.queues[name] != spec:
                changes["queues_changed"].append(name)
            else:
                continue
            acd.set_queue(spec)
        for name in list(acd.queues):
            if name not in new_queues:
                changes["queues_removed"].append(name)   # kept for the calls already in it; nothing new arrives
        new_agents = {a.id: a for a in new.agents}
        for i, a in enumerate(new.agents):
            queues = agent_queues(a)
            cur = acd.agents.get(a.id)
            if cur is None:
                acd.add_agent(Agent(a.id, a.softphone, queues, a.auto_answer_after, order=i))
                changes["agents_added"].append(a.id)
                if center.bindings.get(a.softphone):
                    center.run(acd.registration, a.id, True)
            elif (cur.softphone, cur.queues, cur.auto_answer_after) != (a.softphone, queues, a.auto_answer_after):
                acd.update_agent(a.id, a.softphone, queues, a.auto_answer_after, i)
                changes["agents_changed"].append(a.id)
        for agent_id in list(acd.agents):
            if agent_id not in new_agents:
                changes["agents_removed"].append(agent_id)
                center.run(acd.sign_out, agent_id)
                if acd.agents[agent_id].state == "offline":
                    acd.remove_agent(agent_id)
        center.cfg = new
        center.run(acd.dispatch)          # new agents or queues may match waiting calls now
    if getattr(node, "trunks", None) is not None:
        changes["trunks"] = node.trunks.reconfigure(new.trunks)
    if getattr(node, "chat", None) is not None:
        changes["chat"] = reconfigure_chat(node.chat, old, new)
    node.calls.queue_settings = {q.name: q for q in new.queues}
    if node.calls.ivr_runner is not None:
        node.calls.ivr_runner.flows = new.ivr
    node.config = new
    return {k: v for k, v in changes.items() if v}
