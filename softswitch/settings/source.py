"""YAML read as a tree that remembers where every value came from, so errors name file, line and key.

PyYAML's composer (libyaml's C one when PyYAML has it) gives nodes with marks; we keep them and refuse what a
plain `yaml.safe_load` would silently accept (duplicate keys, non-string keys, anchors that merge mappings).
"""

from __future__ import annotations

from types import MappingProxyType

import yaml
from yaml.constructor import SafeConstructor


class ConfigError(Exception):
    """One or more problems in a config file; `problems` are (file, line, key, message)."""

    def __init__(self, problems: list[tuple[str, int, str, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(format_problem(*p) for p in problems))


def format_problem(file: str, line: int, key: str, message: str) -> str:
    where = f"{file}:{line}" if line else file
    return f"{where}: {key}: {message}" if key else f"{where}: {message}"


_NO_KEYS: MappingProxyType = MappingProxyType({})


class Located:
    """A YAML value plus where it is: scalars as Python values, mappings as dict[str, Located]."""
    __slots__ = ("value", "line", "items", "seq", "key_lines", "kind")

    def __init__(self, value: object, line: int, items: dict[str, "Located"] | None = None,
                 seq: list["Located"] | None = None, key_lines: MappingProxyType | dict[str, int] = _NO_KEYS) -> None:
        self.value = value
        self.line = line
        self.items = items            # mappings
        self.seq = seq                # sequences
        # where a mapping's keys are, for those not on their value's line; every other Located shares one
        # read-only empty mapping (a 20,000-agent tenant has 300,000 of them)
        self.key_lines = key_lines
        self.kind = "scalar" if items is None and seq is None else "mapping" if items is not None else "list"

    def __repr__(self) -> str:
        return f"Located({self.kind}, line {self.line}, {self.value!r})"


_scalar = SafeConstructor()
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_ScalarNode = yaml.ScalarNode


# The implicit resolvers to try by a value's first character, the ones for any first character included.
_WILD = tuple(yaml.SafeLoader.yaml_implicit_resolvers.get(None, ()))
_BY_FIRST = {k: tuple(v) + _WILD for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items() if k is not None}


class _FastLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """The safe loader's tag resolution without its per-node bookkeeping for path resolvers (the safe loader
    has none): on a tenant of 20,000 agents that bookkeeping costs as much as libyaml's parsing."""

    _by_first = _BY_FIRST
    _wild = _WILD

    def descend_resolver(self, current_node, current_index) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass

    def resolve(self, kind, value, implicit):
        if kind is yaml.ScalarNode:
            if implicit[0]:
                for tag, regexp in self._by_first.get(value[:1], self._wild):
                    if regexp.match(value):
                        return tag
            return _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP


def _convert(node: yaml.Node, file: str, problems: list) -> Located:
    """The Located tree of a node. Plain-string scalars, most of a tenant, are made inline: a call per value
    costs as much as the value."""
    line = node.start_mark.line + 1
    cls = type(node)
    if cls is _ScalarNode:
        if node.tag == _STR:          # most values: no constructor needed
            return Located(node.value, line)
        try:
            value = _scalar.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problems.append((file, line, "", f"bad value: {exc}"))
            value = None
        return Located(value, line)
    if cls is yaml.SequenceNode:
        seq = []
        for n in node.value:
            if type(n) is _ScalarNode and n.tag == _STR:
                seq.append(Located(n.value, n.start_mark.line + 1))
            else:
                seq.append(_convert(n, file, problems))
        return Located(None, line, seq=seq)
    items: dict[str, Located] = {}
    key_lines: dict[str, int] = {}
    for knode, vnode in node.value:
        if type(knode) is _ScalarNode and knode.tag == _STR:
            k, kline = knode.value, knode.start_mark.line + 1
        elif knode.tag == _MERGE:
            problems.append((file, knode.start_mark.line + 1, "<<", "merge keys are not supported"))
            continue
        else:
            key = _convert(knode, file, problems)
            if key.kind != "scalar" or key.value is None or isinstance(key.value, bool):
                problems.append((file, key.line, "", "mapping keys must be plain strings or numbers"))
                continue
            k, kline = str(key.value), key.line
        if k in items:
            problems.append((file, kline, k, f"duplicate key (first at line {key_lines.get(k, items[k].line)})"))
            continue
        if type(vnode) is _ScalarNode and vnode.tag == _STR:
            sub = items[k] = Located(vnode.value, vnode.start_mark.line + 1)
        else:
            sub = items[k] = _convert(vnode, file, problems)
        if sub.line != kline:
            key_lines[k] = kline
    return Located(None, line, items=items, key_lines=key_lines or _NO_KEYS)


def load_located(text: str, file: str) -> Located:
    problems: list = []
    try:
        node = yaml.compose(text, Loader=_FastLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        message = f"not valid YAML: {exc.problem or exc}"
        ctx = exc.context_mark
        if ctx is not None and "flow" in (exc.context or "") and ctx.line + 1 < line:
            # A flow collection left open is noticed at the next token, often the next line: name the
            # line where it was opened, which is the one to fix.
            message = f"not valid YAML: {exc.context.replace('while parsing ', '')} not closed ({exc.problem} " \
                      f"by line {line})"
            line = ctx.line + 1
        raise ConfigError([(file, line, "", message)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([(file, 0, "", f"not valid YAML: {exc}")]) from None
    if node is None:
        raise ConfigError([(file, 1, "", "the file is empty")])
    root = _convert(node, file, problems)
    if problems:
        raise ConfigError(problems)
    if root.kind != "mapping":
        raise ConfigError([(file, root.line, "", "the top level must be a mapping")])
    return root
