"""Small typed readers over located YAML: each collects problems instead of stopping at the first one."""

from __future__ import annotations

import difflib
import ipaddress
import re
from pathlib import Path
from typing import Any, Callable

from .source import Located

MISSING = object()


class Bad(Exception):
    """A value is wrong; the message says what was expected."""


class Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[tuple[str, int, str, str]] = []

    def error(self, line: int, key: str, message: str) -> None:
        self.problems.append((self.file, line, key, message))

    def mapping(self, loc: Located | None, path: str, spec: dict[str, tuple[Callable, Any]]) -> dict[str, Any]:
        """Read a mapping: spec is key -> (converter, default); default MISSING means required.
        Unknown keys are errors (with a suggestion); a converter gets (reader, located, key path)."""
        out: dict[str, Any] = {}
        if loc is None:
            loc = Located(None, 0, items={})
        if loc.kind != "mapping":
            self.error(loc.line, path, f"expected a mapping, got {describe(loc)}")
            return {k: (None if d is MISSING else d) for k, (_, d) in spec.items()}
        items = loc.items
        if not items.keys() <= spec.keys():
            for key, sub in items.items():
                if key not in spec:
                    hint = difflib.get_close_matches(key, list(spec), n=1)
                    more = f" (did you mean {hint[0]!r}?)" if hint else f" (allowed: {', '.join(spec)})"
                    self.error(loc.key_lines.get(key, sub.line), join(path, key), "unknown key" + more)
        # run once per record of a tenant's long lists (40,000 times at 20,000 agents): kept lean
        prefix = path + "." if path else ""
        get = items.get
        for key, (conv, default) in spec.items():
            sub = get(key)
            if sub is not None and (sub.value is not None or default is MISSING or sub.kind != "scalar"):
                try:
                    out[key] = conv(self, sub, prefix + key)
                except Bad as exc:
                    self.error(sub.line, prefix + key, str(exc))
                    out[key] = None if default is MISSING or callable(default) else default
            elif default is MISSING:
                self.error(loc.line, prefix + key, "required key is missing")
                out[key] = None
            else:
                out[key] = default() if callable(default) else default
        return out

    def items_of(self, loc: Located | None, path: str) -> list[tuple[str, Located]]:
        if loc is None or (loc.kind == "scalar" and loc.value is None):
            return []
        if loc.kind != "list":
            self.error(loc.line, path, f"expected a list, got {describe(loc)}")
            return []
        return [(f"{path}[{i}]", sub) for i, sub in enumerate(loc.seq)]


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def describe(loc: Located) -> str:
    if loc.kind != "scalar":
        return f"a {loc.kind}"
    v = loc.value
    return "nothing" if v is None else f"{type(v).__name__} {v!r}"


# --- converters: (reader, located, path) -> value, raising Bad ------------------------------------------
def scalar(loc: Located) -> Any:
    if loc.kind != "scalar":
        raise Bad(f"expected a single value, got {describe(loc)}")
    return loc.value


def text(r: Reader, loc: Located, path: str) -> str:
    v = loc.value
    if type(v) is str:          # only scalars have string values: the common case, checked first
        return v
    v = scalar(loc)
    if isinstance(v, bool) or v is None or not isinstance(v, (str, int)):
        raise Bad(f"expected a string, got {describe(loc)}")
    return str(v)


def nonempty(r, loc, path) -> str:
    v = loc.value
    if type(v) is str and v and not v.isspace():
        return v
    v = text(r, loc, path)
    if not v.strip():
        raise Bad("must not be empty")
    return v


def readable_file(r, loc, path) -> str:
    """A file the node reads (a certificate, a key, a CA bundle): relative to the YAML's directory, and
    readable now, so a wrong path is found at load with its line, not at the first connection."""
    v = nonempty(r, loc, path)
    p = Path(v) if Path(v).is_absolute() else Path(r.file).resolve().parent / v
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise Bad(f"cannot read {p}: {exc.strerror or exc}") from None
    return str(p)


def matching(pattern: str, expected: str) -> Callable:
    """Text that `pattern` matches whole; else "expected EXPECTED, got 'VALUE'"."""
    match = re.compile(pattern).fullmatch

    def conv(r, loc, path) -> str:
        v = loc.value
        if type(v) is str and match(v):
            return v
        v = text(r, loc, path)
        if not match(v):
            raise Bad(f"expected {expected}, got {v!r}")
        return v
    return conv


number_string = matching(r"\+?[0-9*#]+", "digits (optionally with + * #)")


def integer(lo: int | None = None, hi: int | None = None) -> Callable:
    def conv(r, loc, path) -> int:
        v = scalar(loc)
        if isinstance(v, bool) or not isinstance(v, int):
            raise Bad(f"expected an integer, got {describe(loc)}")
        if lo is not None and v < lo:
            raise Bad(f"must be at least {lo}")
        if hi is not None and v > hi:
            raise Bad(f"must be at most {hi}")
        return v
    return conv


def boolean(r, loc, path) -> bool:
    v = scalar(loc)
    if not isinstance(v, bool):
        raise Bad(f"expected true or false, got {describe(loc)}")
    return v


# number [unit], spaces allowed around both. The space after the number and the one after the unit are in one
# optional group: as two `\s*` around an optional unit, they backtracked quadratically on a run of spaces.
_DURATION = re.compile(r"\s*([0-9]{1,12}(?:\.[0-9]{1,12})?)\s*(?:(ms|s|m|h)\s*)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def duration(lo: float = 0.0, hi: float | None = None) -> Callable:
    """Seconds, written as a number or with a unit: 2s, 500ms, 5m, 1h."""
    known: dict[str, float] = {}       # texts read before: a tenant writes `2s` on every agent

    def conv(r, loc, path) -> float:
        v = loc.value
        if type(v) is str and (seconds := known.get(v)) is not None:
            return seconds
        v = scalar(loc)
        if isinstance(v, bool):
            raise Bad(f"expected a duration like 15s, got {describe(loc)}")
        if isinstance(v, (int, float)):
            seconds = float(v)
        elif isinstance(v, str) and (m := _DURATION.fullmatch(v)):
            seconds = float(m.group(1)) * _UNITS[m.group(2)]
        else:
            raise Bad(f"expected a duration like 15s, 500ms or 5m, got {describe(loc)}")
        if seconds < lo or (hi is not None and seconds > hi):
            raise Bad(f"must be between {lo:g}s and {hi:g}s" if hi is not None else f"must be at least {lo:g}s")
        if type(v) is str and len(known) < 256:
            known[v] = seconds
        return seconds
    return conv


def choice(*allowed: str) -> Callable:
    def conv(r, loc, path) -> str:
        v = text(r, loc, path)
        if v not in allowed:
            raise Bad(f"must be one of {', '.join(allowed)}; got {v!r}")
        return v
    return conv


def list_of(conv: Callable, min_items: int = 0) -> Callable:
    def read(r: Reader, loc: Located, path: str) -> list:
        out = []
        if loc.kind == "list":
            for i, sub in enumerate(loc.seq):
                try:
                    out.append(conv(r, sub, f"{path}[{i}]"))
                except Bad as exc:
                    r.error(sub.line, f"{path}[{i}]", str(exc))
            if len(loc.seq) < min_items:
                raise Bad(f"needs at least {min_items} item(s)")
        elif loc.kind == "scalar" and loc.value is not None and min_items <= 1:
            try:                        # a single value stands for a one-item list
                out.append(conv(r, loc, path))
            except Bad as exc:
                r.error(loc.line, path, str(exc))
        else:
            raise Bad(f"expected a list, got {describe(loc)}")
        return out
    return read


def host(r, loc, path) -> str:
    v = nonempty(r, loc, path)
    try:
        ipaddress.ip_address(v)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", v):
            raise Bad(f"expected an IP address or host name, got {v!r}") from None
    return v


def host_port(r, loc, path) -> tuple[str, int]:
    v = nonempty(r, loc, path)
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})|([^:\[\]]+):([0-9]{1,5})", v)
    if not m:
        raise Bad(f"expected HOST:PORT (IPv6 as [ADDR]:PORT), got {v!r}")
    h, p = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if not 0 <= int(p) <= 65535:
        raise Bad(f"port {p} is out of range")
    host(r, Located(h, loc.line), path)
    return h, int(p)
