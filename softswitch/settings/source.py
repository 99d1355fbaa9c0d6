"""YAML read as a tree that remembers where every value came from, so errors name file, line and key.

PyYAML's composer gives nodes with marks; we keep them and refuse what a plain `yaml.safe_load` would
silently accept (duplicate keys, non-string keys, anchors that merge mappings).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class Located:
    """A YAML value plus where it is: scalars as Python values, mappings as dict[str, Located]."""
    value: object
    line: int
    items: dict[str, "Located"] | None = None        # mappings
    seq: list["Located"] | None = None               # sequences
    key_lines: dict[str, int] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        if self.items is not None:
            return "mapping"
        if self.seq is not None:
            return "list"
        return "scalar"


_scalar = SafeConstructor()


def _convert(node: yaml.Node, file: str, problems: list) -> Located:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        items: dict[str, Located] = {}
        key_lines: dict[str, int] = {}
        for knode, vnode in node.value:
            if knode.tag == "tag:yaml.org,2002:merge":
                problems.append((file, knode.start_mark.line + 1, "<<", "merge keys are not supported"))
                continue
            key = _convert(knode, file, problems)
            if key.kind != "scalar" or key.value is None or isinstance(key.value, bool):
                problems.append((file, key.line, "", "mapping keys must be plain strings or numbers"))
                continue
            k = str(key.value)
            if k in items:
                problems.append((file, key.line, k, f"duplicate key (first at line {key_lines[k]})"))
                continue
            items[k] = _convert(vnode, file, problems)
            key_lines[k] = key.line
        return Located(None, line, items=items, key_lines=key_lines)
    if isinstance(node, yaml.SequenceNode):
        return Located(None, line, seq=[_convert(n, file, problems) for n in node.value])
    try:
        value = _scalar.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        problems.append((file, line, "", f"bad value: {exc}"))
        value = None
    return Located(value, line)


def load_located(text: str, file: str) -> Located:
    problems: list = []
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise ConfigError([(file, line, "", f"not valid YAML: {exc.problem or exc}")]) from None
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
