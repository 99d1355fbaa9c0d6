"""The click-to-dial widgets: which web pages may place calls from a visitor's browser, to which called routes.

    click_to_dial:
      token_ttl: 60s              # how long a visitor's token may start its call
      per_address: 10             # tokens (and nonces) a minute for one client address ...
      per_node: 600               # ... and for everyone together
      secret: ...                 # optional, 32+ characters: the same on every node of a pool
      widgets:
        - name: website
          origins: [https://www.example.com]         # pages allowed to embed the widget (exact origins)
          routes: ["4010", "4011"]                   # called routes of click-to-dial queues it may call

A route must be a called route (no extension) to a `voice_click_to_dial` or `video_click_to_dial` queue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import reader as R
from .reader import MISSING, Bad, Reader
from .source import Located
from ..widget.origins import OriginError, normalize_origin

CLICK_TO_DIAL_TYPES = ("voice_click_to_dial", "video_click_to_dial")


@dataclass(frozen=True)
class Widget:
    name: str
    origins: tuple[str, ...]
    routes: tuple[str, ...]


@dataclass(frozen=True)
class ClickToDialSettings:
    widgets: tuple[Widget, ...] = ()
    token_ttl: float = 60.0
    nonce_ttl: float = 30.0
    per_address: int = 10
    per_node: int = 600
    secret: str | None = None

    def widget(self, name: str) -> Widget | None:
        return next((w for w in self.widgets if w.name == name), None)


def _origin(r, loc, path) -> str:
    try:
        return normalize_origin(R.nonempty(r, loc, path))
    except OriginError as exc:
        raise Bad(str(exc)) from None


def _secret(r, loc, path) -> str:
    v = R.nonempty(r, loc, path)
    if len(v) < 32:
        raise Bad("must be at least 32 characters (a random string, the same on every node of a pool)")
    return v


def read_click_to_dial(r: Reader, loc: Located | None, routes, queue_type) -> ClickToDialSettings:
    """The `click_to_dial` section. `routes`: the parsed called routes; `queue_type(name)`: a queue's type or
    None when there is no such queue."""
    if loc is None:
        return ClickToDialSettings()
    d = ClickToDialSettings()
    c = r.mapping(loc, "click_to_dial", {
        "token_ttl": (R.duration(5, 600), d.token_ttl), "nonce_ttl": (R.duration(5, 600), d.nonce_ttl),
        "per_address": (R.integer(1, 10_000), d.per_address), "per_node": (R.integer(1, 1_000_000), d.per_node),
        "secret": (_secret, None), "widgets": (lambda r, l, p: l, MISSING)})
    widgets: list[Widget] = []
    by_called: dict[str, list] = {}
    for rt in routes:
        if rt.ext is None:
            by_called.setdefault(rt.called, []).append(rt)
    for path, item in r.items_of(c["widgets"], "click_to_dial.widgets"):
        w = r.mapping(item, path, {"name": (R.nonempty, MISSING), "origins": (R.list_of(_origin, 1), MISSING),
                                   "routes": (R.list_of(R.number_string, 1), MISSING)})
        if w["name"] is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", w["name"]):
            r.error(item.items["name"].line, f"{path}.name", "letters, digits, _ . - only (at most 64)")
        if w["name"] is not None and any(x.name == w["name"] for x in widgets):
            r.error(item.items["name"].line, f"{path}.name", f"{w['name']!r} is already used by another widget")
        for j, called in enumerate(w["routes"] or ()):
            line = item.items["routes"].line
            found = by_called.get(called)
            if not found:
                r.error(line, f"{path}.routes[{j}]", f"no called route {called!r} (without an extension)")
            elif any(rt.kind != "queue" or queue_type(rt.target) not in CLICK_TO_DIAL_TYPES for rt in found):
                r.error(line, f"{path}.routes[{j}]",
                        f"route {called!r} must go to a voice_click_to_dial or video_click_to_dial queue")
        if w["name"] and w["origins"] and w["routes"]:
            widgets.append(Widget(w["name"], tuple(dict.fromkeys(w["origins"])), tuple(dict.fromkeys(w["routes"]))))
    return ClickToDialSettings(tuple(widgets), c["token_ttl"], c["nonce_ttl"], c["per_address"], c["per_node"],
                               c["secret"])
