"""The tenant's long lists (employees, agents: tens of thousands of records) read without the YAML composer.

libyaml's composer makes a node, two marks and a tag resolution in Python for every value: at 20,000 agents
that is most of a `config check`. A record of such a list is nearly always written one way: a flow mapping on
one line (`- {id: "1001", account: alice, queues: [q1, {queue: q2, penalty: 1}]}`) or a block mapping of
`key: value` lines. This module reads lists made only of records of those shapes, with a strict subset of
YAML's scalars (no escapes, no anchors or tags, plain scalars without `:` `#` or flow indicators), into the
same Located trees as softswitch/settings/source.py makes, with the same lines. Anything outside the subset,
however valid, makes the whole list go through libyaml as before: the subset may refuse YAML, never read it
differently. Time linear in the text: each regular expression is matched at a given position and either
consumes what it matched or ends the fast reading of that list.
"""

from __future__ import annotations

import re

import yaml

from .source import _BY_FIRST, _NO_KEYS, _WILD, ConfigError, Located, _scalar, load_located

MIN_ITEMS = 100        # shorter lists cost libyaml little: they are read by it alone, as any other part

_STR = "tag:yaml.org,2002:str"
# tags a plain scalar of the subset may resolve to (a timestamp, a merge key... end the fast reading)
_SIMPLE = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"}
# characters that make the whole text go to libyaml: YAML's other line breaks (line numbers would differ),
# a byte-order mark, and what libyaml refuses as not printable
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufeff\ufffe\uffff\u2028\u2029]")

_KEY = r"[A-Za-z_][A-Za-z0-9_-]{0,63}"
_PLAIN = r"(?:[A-Za-z0-9_.+/~$(]|-(?=[A-Za-z0-9_.]))(?:[^,\[\]{}#:\"'\x00-\x1f]*[^ ,\[\]{}#:\"'\x00-\x1f])?"
# a value's pattern, one group each, by kind: double-quoted, single-quoted, plain, and (for _Shapes) a flow
# collection with at most one level inside, taken whole and read as any other after
_DOUBLE, _SINGLE, _PLAIN_KIND, _COLLECTION = range(4)
_GROUPS = (r'"([^"\\\x00-\x1f]*)"', r"'((?:[^'\x00-\x1f]|'')*)'", f"({_PLAIN})",
           r"(\[[^\[\]{}]*(?:\{[^\[\]{}]*\}[^\[\]{}]*)*\]|\{[^\[\]{}]*(?:\[[^\[\]{}]*\][^\[\]{}]*)*\})")
_SCALAR = f"(?:{'|'.join(_GROUPS[:_COLLECTION])})"      # groups: double, single, plain
_TOP_KEY = re.compile(rf"({_KEY}):(?:[ ]+(?:#.*)?)?")
_SKIP = re.compile(r"[ ]*(?:#.*)?")                      # a blank or comment line
_ITEM = re.compile(r"([ ]*)-[ ]+")
# one match per entry of a flow collection: the scalar and the separator after it, or an opening bracket
_ENTRY = re.compile(rf"[ ]*({_KEY}):[ ]+(?:{_SCALAR}[ ]*([,}}\]])|([\[{{]))")
_SEQ_ITEM = re.compile(rf"[ ]*(?:{_SCALAR}[ ]*([,}}\]])|([\[{{]))")
_BLOCK_ENTRY = re.compile(rf"({_KEY}):[ ]+(?:{_SCALAR}((?:[ ]+#.*)?[ ]*)$|([\[{{]))")
_SEP = re.compile(r"[ ]*([,}\]])")
_EMPTY = re.compile(r"[ ]*([}\]])")
_END = re.compile(r"(?:[ ]+#.*)?[ ]*")                   # what may follow a record or a block value
_RESOLVED = frozenset(k for k in _BY_FIRST if k)         # first characters of plain scalars that may not be
                                                        # strings (assumed below: no resolver for any other)
assert not _WILD


class _NotSubset(Exception):
    """This list is not of the subset: libyaml reads it."""


def read_tree(text: str, file: str) -> Located:
    """`load_located` (softswitch/settings/source.py), the long lists read here: the same tree, the same
    problems. A text with a problem anywhere is read again whole by libyaml, whose messages are the ones given."""
    blanked, lists = split(text)
    if lists:
        try:
            root = load_located(blanked, file)
        except ConfigError:
            root = None
        if root is not None and graft(root, lists):
            return root
    return load_located(text, file)


def split(text: str, min_items: int = MIN_ITEMS) -> tuple[str, dict[str, tuple[int, Located]]]:
    """(the text with the long lists' lines blanked, {top-level key: (its line, the list read)}). The blanked
    text keeps every line where it was; the caller composes it and puts the lists in (`graft`)."""
    if _unsafe(text):
        return text, {}
    lines = text.split("\n")
    found: dict[str, tuple[int, Located]] = {}
    i, n = 0, len(lines)
    while i < n:
        m = _TOP_KEY.fullmatch(lines[i])
        if m is None or not _is_str(m.group(1)):
            i += 1
            continue
        try:
            end, loc = _read_list(lines, i + 1)
        except _NotSubset:
            i += 1
            continue
        if loc is not None and len(loc.seq) >= min_items and m.group(1) not in found:
            found[m.group(1)] = (i + 1, loc)
            for j in range(i + 1, end):
                lines[j] = ""
        i = max(end, i + 1)
    return ("\n".join(lines), found) if found else (text, {})


_ASCII_SAFE = bytes(range(0x20, 0x7f)) + b"\t\n"


def _unsafe(text: str) -> bool:
    """Whether the text has a character `_UNSAFE` finds, or a carriage return. An ASCII text (told in
    constant time) can only have control characters: deleting the others at C speed is three times faster
    than the pattern's scan (50 ms on a 10 MB tenant)."""
    if text.isascii():
        return bool(text.encode("ascii").translate(None, _ASCII_SAFE))
    return _UNSAFE.search(text) is not None or "\r" in text


def graft(root: Located, lists: dict[str, tuple[int, Located]]) -> bool:
    """Put the lists read by `split` into the root composed from the blanked text; False when the root does
    not have each of them as an empty top-level key on its line (the key line was part of something else:
    the caller then composes the whole text)."""
    if root.kind != "mapping":
        return False
    key_lines = dict(root.key_lines)
    for key, (kline, _loc) in lists.items():
        sub = root.items.get(key)
        if sub is None or sub.kind != "scalar" or sub.value is not None or key_lines.get(key, sub.line) != kline:
            return False
    for key, (kline, loc) in lists.items():
        root.items[key] = loc
        key_lines[key] = kline
    root.key_lines = key_lines or _NO_KEYS
    return True


# --- one list ---------------------------------------------------------------------------------------------
def _read_list(lines: list[str], start: int) -> tuple[int, Located | None]:
    """Read the block sequence that starts at line index `start` (after its key's line): (the index of the
    first line after it, the list), or raise _NotSubset. (start, None) when no sequence follows."""
    n = len(lines)
    seq: list[Located] = []
    indent = -1
    block: dict[str, Located] | None = None      # the block mapping being read, and its keys' column
    col = -1
    i = start
    skip, item_re = _SKIP.fullmatch, _ITEM.match
    shapes = _Shapes()
    while i < n:
        line = lines[i]
        if skip(line):
            i += 1
            continue
        m = item_re(line)
        if m is not None and (indent < 0 or len(m.group(1)) == indent):
            indent = len(m.group(1))
            pos = m.end()
            if line.startswith("{", pos):
                record = shapes.read(line, pos, i + 1)
                if record is None:
                    items: dict[str, Located] = {}
                    kinds: list | None = [] if shapes.learning else None
                    end = _flow_map(line, pos + 1, i + 1, items, kinds)
                    if _END.fullmatch(line, end) is None:
                        raise _NotSubset
                    if kinds:
                        shapes.learn(kinds)
                    record = Located(None, i + 1, items=items)
                seq.append(record)
                block = None
            else:
                block = {}
                col = pos
                _block_entry(line, pos, i + 1, block)
                seq.append(Located(None, i + 1, items=block))
            i += 1
            continue
        if indent < 0:
            return start, None                  # not a sequence: libyaml's
        if line[0] not in " -\t":
            break                               # the next top-level key (or whatever it is: libyaml's)
        if block is not None and len(line) - len(line.lstrip(" ")) == col:
            _block_entry(line, col, i + 1, block)
            i += 1
            continue
        raise _NotSubset
    if indent < 0:
        return start, None
    # trailing blank and comment lines stay where they are (they may hold a comment about the next key)
    end = i
    while end > start and _SKIP.fullmatch(lines[end - 1]):
        end -= 1
    return end, Located(None, seq[0].line, seq=seq)      # a list is where its first record is


class _Shapes:
    """The records of a long list mostly share their keys, in order, and the kinds of their values: one regular
    expression per such shape, made from the first record of it, reads a whole record in one match, where
    `_flow_map` makes one per entry. What it takes in is what `_flow_map` would read the same way (the same
    patterns per value; a collection is read by `_flow_map` or `_flow_seq` and must end where the match ends);
    a record it does not match is read by `_flow_map`.
    A flow collection in a record (an agent's queues) is mostly one of a few texts repeated through the list:
    each text is read once, kept as a template, and made again with the record's line."""
    MAX = 16                # shapes made per list: past that (records of ever new shapes) no more are made
    MAX_TEMPLATES = 1024

    def __init__(self) -> None:
        self.known: list[tuple[re.Pattern, tuple]] = []
        self.made = 0
        self.templates: dict[str, tuple] = {}

    @property
    def learning(self) -> bool:
        return self.made < self.MAX

    def learn(self, kinds: list[tuple[str, int]]) -> None:
        self.made += 1
        body = r"[ ]*,".join(rf"[ ]*{re.escape(key)}:[ ]+{_GROUPS[kind]}[ ]*" for key, kind in kinds)
        entries = tuple((key, kind, g) for g, (key, kind) in enumerate(kinds, 1))
        self.known.insert(0, (re.compile(rf"\{{{body}\}}(?:[ ]+#.*)?[ ]*"), entries))
        del self.known[8:]          # the ones seen last are tried first; a few are enough

    def read(self, line: str, pos: int, lineno: int) -> Located | None:
        for pattern, entries in self.known:
            m = pattern.fullmatch(line, pos)
            if m is not None:
                break
        else:
            return None
        items: dict[str, Located] = {}
        loc, resolved = Located, _RESOLVED
        for (key, kind, g), text in zip(entries, m.groups()):
            if kind == _DOUBLE:
                items[key] = loc(text, lineno)
            elif kind == _PLAIN_KIND:
                items[key] = loc(_plain(text) if text[0] in resolved else text, lineno)
            elif kind == _SINGLE:
                items[key] = loc(text.replace("''", "'"), lineno)
            elif (template := self.templates.get(text)) is not None:
                items[key] = _made(template, lineno)
            else:
                value, end = _collection(text[0], line, m.start(g) + 1, lineno)
                if end != m.end(g):
                    return None
                items[key] = value
                if len(self.templates) < self.MAX_TEMPLATES:
                    self.templates[text] = _template(value)
        return loc(None, lineno, items=items)


def _template(loc: Located) -> tuple:
    """What `_made` makes a Located like `loc` from, on another line (all of a flow collection is on one):
    (its kind, and its value or its items' templates)."""
    if loc.kind == "list":
        return ("list", tuple(_template(v) for v in loc.seq))
    if loc.kind == "mapping":
        return ("mapping", tuple((k, _template(v)) for k, v in loc.items.items()))
    return ("scalar", loc.value)


def _made(template: tuple, lineno: int) -> Located:
    kind, content = template
    if kind == "scalar":
        return Located(content, lineno)
    if kind == "list":
        return Located(None, lineno, seq=[_made(t, lineno) for t in content])
    return Located(None, lineno, items={k: _made(t, lineno) for k, t in content})


def _block_entry(line: str, pos: int, lineno: int, items: dict) -> None:
    m = _BLOCK_ENTRY.match(line, pos)
    if m is None:
        raise _NotSubset
    key, double, single, plain, _end, bracket = m.groups()
    if key in items or not _is_str(key):
        raise _NotSubset
    if bracket is None:
        items[key] = Located(_scalar_of(double, single, plain), lineno)
        return
    value, end = _collection(bracket, line, m.end(), lineno)
    if _END.fullmatch(line, end) is None:
        raise _NotSubset
    items[key] = value


def _scalar_of(double, single, plain):
    if double is not None:
        return double
    if plain is not None:
        return _plain(plain) if plain[0] in _RESOLVED else plain
    return single.replace("''", "'")


def _collection(bracket: str, line: str, pos: int, lineno: int) -> tuple[Located, int]:
    """The flow collection whose `bracket` is just before `pos`, and the position after its closing one."""
    if bracket == "{":
        items: dict[str, Located] = {}
        return Located(None, lineno, items=items), _flow_map(line, pos, lineno, items)
    seq: list[Located] = []
    return Located(None, lineno, seq=seq), _flow_seq(line, pos, lineno, seq)


def _flow_map(line: str, pos: int, lineno: int, items: dict, kinds: list | None = None) -> int:
    """The entries of a flow mapping whose `{` is just before `pos`, into `items`; the position after `}`.
    `kinds`: a list to note each entry's key and the kind of its value in (_Shapes)."""
    end = _empty(line, pos, "}")
    if end is not None:
        return end
    entry = _ENTRY.match
    while True:
        m = entry(line, pos)
        if m is None:
            raise _NotSubset
        key, double, single, plain, sep, bracket = m.groups()
        if key in items or not _is_str(key):
            raise _NotSubset
        if kinds is not None:
            kinds.append((key, _DOUBLE if double is not None else _PLAIN_KIND if plain is not None else
                          _SINGLE if single is not None else _COLLECTION))
        if bracket is None:
            items[key] = Located(_scalar_of(double, single, plain), lineno)
            pos = m.end()
        else:
            items[key], pos = _collection(bracket, line, m.end(), lineno)
            sep, pos = _separator(line, pos)
        if sep == "}":
            return pos
        if sep != ",":
            raise _NotSubset


def _flow_seq(line: str, pos: int, lineno: int, seq: list) -> int:
    end = _empty(line, pos, "]")
    if end is not None:
        return end
    item = _SEQ_ITEM.match
    while True:
        m = item(line, pos)
        if m is None:
            raise _NotSubset
        double, single, plain, sep, bracket = m.groups()
        if bracket is None:
            seq.append(Located(_scalar_of(double, single, plain), lineno))
            pos = m.end()
        else:
            value, pos = _collection(bracket, line, m.end(), lineno)
            seq.append(value)
            sep, pos = _separator(line, pos)
        if sep == "]":
            return pos
        if sep != ",":
            raise _NotSubset


def _empty(line: str, pos: int, close: str) -> int | None:
    """The position after `close` when the collection opened just before `pos` is empty, else None."""
    e = _EMPTY.match(line, pos)
    if e is None:
        return None
    if e.group(1) != close:
        raise _NotSubset
    return e.end()


def _separator(line: str, pos: int) -> tuple[str, int]:
    """The `,` or closing bracket after a collection that ended at `pos`, and the position after it."""
    s = _SEP.match(line, pos)
    if s is None:
        raise _NotSubset
    return s.group(1), s.end()


def _tag(value: str) -> str:
    """The tag the safe loader resolves a plain scalar to (softswitch/settings/source.py's _FastLoader)."""
    for tag, regexp in _BY_FIRST.get(value[:1], _WILD):
        if regexp.match(value):
            return tag
    return _STR


def _plain(value: str):
    """A plain scalar that may resolve to something else than a string (`false`, `2s`, `1`): these repeat
    through a tenant, so the value is kept (all are immutable)."""
    v = _PLAINS.get(value, _PLAINS)
    if v is not _PLAINS:
        return v
    tag = _tag(value)
    if tag == _STR:
        v = value
    elif tag in _SIMPLE:
        v = _scalar.yaml_constructors[tag](_scalar, yaml.ScalarNode(tag, value))
    else:
        raise _NotSubset
    if len(_PLAINS) < 4096:
        _PLAINS[value] = v
    return v


_PLAINS: dict = {}
_KEYS_OK: dict[str, bool] = {}


def _is_str(key: str) -> bool:
    """A key the loader reads as a string (`yes:` or `1:` are not, and their errors are libyaml's path's)."""
    ok = _KEYS_OK.get(key)
    if ok is None:
        ok = _tag(key) == _STR
        if len(_KEYS_OK) < 4096:
            _KEYS_OK[key] = ok
    return ok
