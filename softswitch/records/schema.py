"""The records' tables: their columns and the migrations that create them (SQLite and PostgreSQL alike)."""

from __future__ import annotations

CDR_COLUMNS = ("id", "call_id", "node", "caller", "called", "queue", "agent_id", "started_at", "answered_at",
               "connected_at", "ended_at", "wait_s", "talk_s", "outcome", "end_reason", "recording", "extra",
               "channel", "page")
QUEUE_LOG_COLUMNS = ("id", "at", "queue", "call_id", "agent_id", "event", "old", "new", "reason", "wait", "talk")
WRAPUP_COLUMNS = ("id", "call_id", "agent_id", "at", "disposition", "notes")
OUTCOMES = ("answered", "abandoned", "overflowed", "rejected", "outbound", "failed", "interrupted")

# Each entry moves the schema one version up; never edit a released entry, append a new one.
# {pk} and {real} are filled in by the backend (SQLite: INTEGER PRIMARY KEY, REAL - the original text).
MIGRATIONS = [
    """
    CREATE TABLE cdr (id {pk}, call_id TEXT UNIQUE, node TEXT, caller TEXT, called TEXT,
        queue TEXT, agent_id TEXT, started_at {real}, answered_at {real}, connected_at {real}, ended_at {real},
        wait_s {real}, talk_s {real}, outcome TEXT, end_reason TEXT, recording TEXT, extra TEXT);
    CREATE INDEX cdr_started_at ON cdr (started_at);
    CREATE TABLE queue_log (id {pk}, at {real}, queue TEXT, call_id TEXT, agent_id TEXT,
        event TEXT, old TEXT, new TEXT, reason TEXT, wait {real});
    CREATE INDEX queue_log_at ON queue_log (at);
    CREATE INDEX queue_log_call_id ON queue_log (call_id);
    CREATE INDEX queue_log_agent_id ON queue_log (agent_id);
    """,
    # complete rows carry the talk time in its own column (wait keeps the answer's wait)
    "ALTER TABLE queue_log ADD COLUMN talk {real}",
    # the agent's wrap-up of a call (disposition code, notes): a row per save, the latest per call_id counts
    """
    CREATE TABLE call_wrapup (id {pk}, call_id TEXT NOT NULL, agent_id TEXT, at {real}, disposition TEXT,
        notes TEXT);
    CREATE INDEX call_wrapup_call_id ON call_wrapup (call_id);
    CREATE INDEX cdr_agent_id ON cdr (agent_id, started_at);
    """,
    # the journal of calls in progress (written at enqueue/answer, deleted with the final CDR), each node's
    # agents' states and the node's last sign of life: what a restart after a crash needs to close its books
    """
    CREATE TABLE open_call (call_id TEXT PRIMARY KEY, node TEXT, caller TEXT, called TEXT, queue TEXT,
        agent_id TEXT, started_at {real}, answered_at {real});
    CREATE INDEX open_call_node ON open_call (node);
    CREATE TABLE agent_state (node TEXT NOT NULL, agent_id TEXT NOT NULL, state TEXT, reason TEXT, at {real},
        resume TEXT, PRIMARY KEY (node, agent_id));
    CREATE TABLE node_alive (node TEXT PRIMARY KEY, at {real});
    """,
    # how the customer came (phone, click_to_dial) and, from a website widget, the page they called from
    "ALTER TABLE cdr ADD COLUMN channel TEXT; ALTER TABLE cdr ADD COLUMN page TEXT",
]
COMPONENT = "records"  # the cdr file is shared (credentials live there too): versions are per component
# Web chats: one row per chat when it ends, its transcript a JSON list of messages (seq, from, agent_id, text,
# at, delivered_at, read_at). A component of its own, so its versions never interleave with the calls' ones.
CHAT_COLUMNS = ("id", "chat_id", "node", "queue", "agent_id", "agents", "visitor", "origin", "page", "address",
                "started_at", "answered_at", "ended_at", "wait_s", "outcome", "end_reason", "messages", "transcript")
CHAT_MIGRATIONS = [
    """
    CREATE TABLE chats (id {pk}, chat_id TEXT UNIQUE, node TEXT, queue TEXT, agent_id TEXT, agents TEXT,
        visitor TEXT, origin TEXT, page TEXT, address TEXT, started_at {real}, answered_at {real},
        ended_at {real}, wait_s {real}, outcome TEXT, end_reason TEXT, messages INTEGER, transcript TEXT);
    CREATE INDEX chats_started_at ON chats (started_at);
    """,
]
SCHEMAS = ((COMPONENT, MIGRATIONS), ("chat", CHAT_MIGRATIONS))
TABLES = {"cdr": (CDR_COLUMNS, "started_at"), "queue_log": (QUEUE_LOG_COLUMNS, "at"),
           "call_wrapup": (WRAPUP_COLUMNS, "at"), "chats": (CHAT_COLUMNS, "started_at")}
WRAPUP_EXPORT = ("disposition", "notes")   # appended to each exported CDR: its latest wrap-up
JSON_COLUMNS = ("extra", "agents", "transcript")     # stored as JSON text
