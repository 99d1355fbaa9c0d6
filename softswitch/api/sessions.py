"""API sessions: business-account sign-on, bearer tokens that expire, roles."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from aiohttp import web


@dataclass
class Session:
    token: str
    account: str
    role: str                    # agent, supervisor, admin
    agent_id: str | None
    expires_at: float


class Sessions:
    def __init__(self, ttl: float = 8 * 3600, clock=time.time) -> None:
        self.ttl = ttl
        self.clock = clock
        self._by_token: dict[str, Session] = {}

    def open(self, account: str, role: str, agent_id: str | None) -> Session:
        self._sweep()
        s = Session(secrets.token_urlsafe(32), account, role, agent_id, self.clock() + self.ttl)
        self._by_token[s.token] = s
        return s

    def get(self, token: str) -> Session | None:
        s = self._by_token.get(token)
        if s is None:
            return None
        if s.expires_at <= self.clock():
            del self._by_token[token]
            return None
        return s

    def close(self, token: str) -> None:
        self._by_token.pop(token, None)

    def _sweep(self) -> None:
        now = self.clock()
        for t in [t for t, s in self._by_token.items() if s.expires_at <= now]:
            del self._by_token[t]


# The application's keys, shared by the API's modules: server builds the app, the pages read it.
SESSION = web.AppKey("session_store", Sessions)
NODE = web.AppKey("node", object)
SESSION_OF = web.RequestKey("session", object)      # the signed-on session of a request
