"""What the load tool asks the node over its HTTP API (health, queues, agents) and what the answers add up to."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from tools.loadtest_sipp import parse_hostport

COUNTERS = ("entered", "answered", "abandoned", "overflowed")


class NodeApi:
    """The node's HTTP API (no proxies: the node is reached directly)."""

    def __init__(self, hostport: str, account: str | None = None, password: str | None = None) -> None:
        host, port = parse_hostport(hostport, 8080)
        self.base = f"http://{host}:{port}"
        self.account, self.password = account, password
        self.token: str | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method: str, path: str, body=None, auth: bool = True, timeout: float = 10.0):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        with self._opener.open(req, timeout=timeout) as r:
            return json.loads(r.read() or b"null")

    def login(self) -> bool:
        if not (self.account and self.password):
            return False
        self.token = self.call("POST", "/api/login", {"account": self.account, "password": self.password},
                               auth=False)["token"]
        return True

    def health(self) -> dict | None:
        try:
            return self.call("GET", "/health", auth=False, timeout=5)
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def queues(self) -> list | None:
        if not self.token:
            return None
        try:
            return self.call("GET", "/api/queues", timeout=5)
        except (OSError, ValueError, urllib.error.URLError):
            return None


QUEUE_KEYS = ("waiting", "longest_wait", "entered", "answered", "abandoned", "overflowed",
              "average_speed_of_answer", "service_level", "abandon_rate", "average_handle_time")


def node_stats(before: dict, after: dict, samples: list[dict]) -> dict:
    out: dict = {}
    hb, ha = (before or {}).get("health") or {}, (after or {}).get("health") or {}
    if hb or ha:
        cb, ca = hb.get("call_stats") or {}, ha.get("call_stats") or {}
        out["health_before"] = hb
        out["health_after"] = ha
        out["call_stats_delta"] = {k: ca.get(k, 0) - cb.get(k, 0) for k in ca
                                   if isinstance(ca.get(k), (int, float))}
        out["overloaded_503"] = out["call_stats_delta"].get("overloaded")
    qb, qa = (before or {}).get("queues"), (after or {}).get("queues")
    if qb is not None or qa is not None:
        qb_by = {q["name"]: q for q in qb or []}
        queues = {}
        for q in qa or []:
            b = qb_by.get(q["name"], {})
            entry = {"before": {k: b.get(k) for k in QUEUE_KEYS}, "after": {k: q.get(k) for k in QUEUE_KEYS}}
            entry["delta"] = {k: (q.get(k) or 0) - (b.get(k) or 0) for k in ("entered", "answered", "abandoned",
                                                                             "overflowed")}
            waits = [s["queues"].get(q["name"], {}) for s in samples]
            entry["peak_waiting"] = max((w.get("waiting") or 0 for w in waits), default=0)
            entry["peak_longest_wait"] = max((w.get("longest_wait") or 0 for w in waits), default=0.0)
            queues[q["name"]] = entry
        out["queues"] = queues
        out["queue_samples"] = samples
    return out
