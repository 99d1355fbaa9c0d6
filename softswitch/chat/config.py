"""What the web chat takes from the node's config: the multimedia queues, each agent's chat figures and shown
name. Used to build the hub, and again on a reload, which changes them in place (the chats open go on; a
queue that disappears takes no new chats; limits apply from the next frame, keeping the budget used so far)."""

from __future__ import annotations

from .hub import ChatHub


def chat_roles(cfg) -> tuple[dict, dict, dict]:
    """(queue name -> (strategy, max_wait, max_calls), agent id -> (queues, chats, while_on_call, order),
    agent id -> name) of a Config."""
    multimedia = {q.name: (q.strategy, q.max_wait, q.max_calls) for q in cfg.queues if q.type == "multimedia"}
    agents, names = {}, {}
    for i, a in enumerate(cfg.agents):
        queues = {qn: a.penalties.get(qn, 0) for qn in a.queues if qn in multimedia}
        if queues:
            c = cfg.chat.of(a.id)
            agents[a.id] = (queues, c.chats, c.while_on_call, i)
            emp = cfg.employee(a.account)
            names[a.id] = emp.name if emp is not None and emp.name else a.id
    return multimedia, agents, names


def add_roles(router, queues: dict, agents: dict) -> None:
    for name, (strategy, max_wait, max_calls) in queues.items():
        router.add_queue(name, strategy, max_wait, max_calls)
    for agent_id, (qs, chats, on_call, order) in agents.items():
        router.add_agent(agent_id, qs, chats, on_call, order=order)


def reconfigure(hub: ChatHub, old, new) -> list[str]:
    """Apply a reloaded Config's chat part to a running hub; what changed, for the reload's answer."""
    queues, agents, names = chat_roles(new)
    before = chat_roles(old)
    changed = []
    if old.chat != new.chat:
        changed.append("settings")
    if before[0] != queues:
        changed.append("queues")
    if before[1] != agents or before[2] != names:
        changed.append("agents")
    for agent_id, a in hub.router.agents.items():
        if agent_id not in agents:      # serves no chat queue now: no new chats; the ones held go on
            agents[agent_id] = ({}, a.max_chats, a.max_on_call, a.order)
    add_roles(hub.router, queues, agents)
    hub.reconfigure(new.chat, set(queues), names)
    return changed
