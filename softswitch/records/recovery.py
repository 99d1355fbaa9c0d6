"""Closing the books after a crash: what a node finds in its records store when it starts again.

A node that died (SIGKILL, power cut) leaves behind the journal of its calls in progress (open_call: written
with the queue-log line that enqueued or answered a call, deleted in the transaction of the call's CDR) and its
agents' last states (agent_state). At start, before it takes calls, the node gives every journalled call a CDR
with outcome `interrupted` and the closing queue-log line it never wrote (`complete` for a call that was
talking, `abandon` for one still waiting), dated at the last time the node is known to have been alive; and
every agent that was signed in a state line to `offline`. The agents' states are kept to be resumed once the
node knows which phones are registered (resume_agents).

Each call is closed in one transaction with the deletion of its journal row, and what the dead node had
already committed of the call's end (a `complete` line, the CDR) is not written twice, so a crash during the
recovery itself is harmless: the next start does what is left.
"""

from __future__ import annotations

import time

from .. import log
from .store import RecordStore

CLOSERS = ("complete", "abandon", "overflow", "reject")
SIGNED_IN = ("idle", "busy", "rest", "ringing", "talking", "wrap_up")
REASON = "node restarted"


def recover(store: RecordStore, timeout: float = 30.0) -> tuple[list[str], list[dict]]:
    """Close the calls and agent states the node's last run left open. Returns the interrupted call ids and
    the agents to resume ({agent_id, state, reason}); committed before it returns (timeout bounds a hang)."""
    node, ph, now = store.node, store.ph, time.time()
    alive = store.select(f"SELECT at FROM node_alive WHERE node = {ph}", [node])
    last_alive = alive[0]["at"] if alive and alive[0]["at"] is not None else 0.0
    interrupted = []
    futs = []
    for call in store.select(f"SELECT * FROM open_call WHERE node = {ph} ORDER BY started_at", [node]):
        lines = store.select(f"SELECT event, at, agent_id FROM queue_log WHERE call_id = {ph} ORDER BY id",
                             [call["call_id"]])
        known = [t for t in (last_alive, call["started_at"], call["answered_at"], *(x["at"] for x in lines))
                 if t is not None]
        ended = max(known) if known else now
        futs.append(store.write_group(_close_call(store, call, lines, ended, now)))
        interrupted.append(call["call_id"])
    resume = []
    for a in store.select(f"SELECT agent_id, state, reason, at, resume FROM agent_state WHERE node = {ph} "
                          f"ORDER BY agent_id", [node]):
        if a["state"] in SIGNED_IN:
            futs.append(store.write_group(_close_agent(store, a, max(last_alive, a["at"] or 0.0))))
            resume.append({"agent_id": a["agent_id"], "state": a["state"], "reason": a["reason"] or ""})
        elif a["state"] == "offline" and a["resume"]:          # closed by a recovery that did not get further
            resume.append({"agent_id": a["agent_id"], "state": a["resume"], "reason": a["reason"] or ""})
    deadline = time.monotonic() + timeout
    for f in futs:
        f.result(max(0.0, deadline - time.monotonic()))
    if interrupted or resume:
        log.get("records").warning("records_recovered", node=node, interrupted_calls=len(interrupted),
                                   agents_to_resume=len(resume), last_alive=last_alive or None)
    return interrupted, resume


def _close_call(store: RecordStore, call: dict, lines: list[dict], ended: float, now: float) -> list:
    ph, cid = store.ph, call["call_id"]
    stmts = []
    # the last line that opened or closed the call in a queue says whether it is still open there
    last = next((x for x in reversed(lines) if x["event"] in CLOSERS or x["event"] == "enqueue"), None)
    answered = call["answered_at"]
    if last is not None and last["event"] == "enqueue":
        if answered is not None:
            stmts.append(store.insert_stmt("queue_log", {
                "at": ended, "queue": call["queue"], "call_id": cid, "agent_id": call["agent_id"],
                "event": "complete", "reason": "interrupted", "wait": round(ended - answered, 3)}))
        else:
            stmts.append(store.insert_stmt("queue_log", {
                "at": ended, "queue": call["queue"], "call_id": cid, "event": "abandon",
                "reason": "interrupted", "wait": round(ended - last["at"], 3)}))
    if not store.select(f"SELECT id FROM cdr WHERE call_id = {ph}", [cid]):
        started = call["started_at"] if call["started_at"] is not None else ended
        stmts.append(store.insert_stmt("cdr", {
            "call_id": cid, "node": call["node"], "caller": call["caller"], "called": call["called"],
            "queue": call["queue"], "agent_id": call["agent_id"], "started_at": started, "answered_at": started,
            "connected_at": answered, "ended_at": ended, "wait_s": round((answered or ended) - started, 3),
            "talk_s": round(ended - answered, 3) if answered is not None else 0.0, "outcome": "interrupted",
            "end_reason": REASON, "extra": {"recovered_at": now}}))
    stmts.append((f"DELETE FROM open_call WHERE call_id = {ph}", (cid,)))
    return stmts


def _close_agent(store: RecordStore, a: dict, at: float) -> list:
    ph = store.ph
    resume = a["state"] if a["state"] in ("idle", "busy", "rest") else "idle"
    return [store.insert_stmt("queue_log", {"at": at, "agent_id": a["agent_id"], "event": "state", "old": a["state"],
                                        "new": "offline", "reason": REASON}),
            (f"UPDATE agent_state SET state = 'offline', resume = {ph}, at = {ph} WHERE node = {ph} "
             f"AND agent_id = {ph}", (resume, at, store.node, a["agent_id"]))]


def resume_agents(center, store: RecordStore, agents: list[dict]) -> dict[str, str]:
    """Sign the agents in again as they were (busy and rest with their reason; an agent that was on a call is
    idle), those whose softphone is registered; the others stay offline, and are not resumed by a later
    restart either. A binding kept from before the crash must first answer a keepalive: until then the agent
    is held busy (phone_unreachable). Returns agent id -> what was done."""
    acd, out = center.acd, {}
    logger = log.get("acd")
    for a in agents:
        agent = acd.agents.get(a["agent_id"])
        if agent is None:
            out[a["agent_id"]] = "unknown"
            continue
        silent = agent.softphone in center.silent       # kept from before the crash, not yet heard from
        if not agent.registered and not silent:
            out[agent.id] = "offline: no registered softphone"
            logger.warning("agent_not_resumed", agent_id=agent.id, was=a["state"], why="no registered softphone")
            continue
        state = a["state"] if a["state"] in ("idle", "busy", "rest") else "idle"
        try:
            if not agent.registered:
                center.run(acd.registration, agent.id, True)
            center.run(acd.sign_in, agent.id)
            if state != "idle" and agent.state != state:
                center.run(acd.set_state, agent.id, state, a["reason"])
            if silent:
                center.hold_until_reachable(agent.id, state == "idle")
        except Exception as exc:      # a state the table refuses now (config changed): say so, keep starting
            out[agent.id] = f"refused: {exc}"
            logger.warning("agent_not_resumed", agent_id=agent.id, was=a["state"], why=str(exc))
            continue
        out[agent.id] = agent.state
        logger.info("agent_resumed", agent_id=agent.id, state=agent.state, was=a["state"])
    left = [agent_id for agent_id, done in out.items() if done not in ("idle", "busy", "rest")]
    for agent_id in left:
        store.write_group([(f"UPDATE agent_state SET resume = NULL WHERE node = {store.ph} AND agent_id = "
                            f"{store.ph}", (store.node, agent_id))])
    return out
