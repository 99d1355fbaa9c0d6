"""The long lists read without libyaml's composer (softswitch/settings/long_lists.py) give the very tree libyaml
gives, lines included, or are left to libyaml; nothing is ever read differently."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softswitch.settings import load_config
from softswitch.settings.long_lists import _UNSAFE, _unsafe, graft, read_tree, split
from softswitch.settings.source import ConfigError, Located, load_located


def tree(loc: Located):
    """Everything a Located says, nested, comparable with ==."""
    if loc.items is not None:
        return ("map", loc.line, dict(loc.key_lines), [(k, tree(v)) for k, v in loc.items.items()])
    if loc.seq is not None:
        return ("seq", loc.line, [tree(v) for v in loc.seq])
    return ("scalar", loc.line, type(loc.value).__name__, loc.value)


def outcome(read, text: str):
    try:
        return tree(read(text, "t.yaml"))
    except ConfigError as err:
        return ("error", err.problems)


def fast_part(text: str, min_items: int = 1) -> dict:
    """{key: items} of the lists `split` reads itself."""
    return {k: len(loc.seq) for k, (_line, loc) in split(text, min_items)[1].items()}


def test_records_of_both_shapes_read_as_libyaml_reads_them():
    text = ("server: {a: 1}\n"
            "agents:\n"
            "  # the floor\n"
            "  - {id: \"1001\", account: alice, queues: [q1, {queue: q2, penalty: 1}], auto_answer_after: 2s}\n"
            "\n"
            "  - {id: '10''02', name: Bob Smith , flag: false, n: 12, x: ~, f: 1.5, e: [], m: {}}  # bob\n"
            "  - id: \"1003\"\n"
            "    account: carol\n"
            "    # a comment between the keys\n"
            "    queues: [q3]\n"
            "    flag: yes\n"
            "# a comment about the next key\n"
            "called_routes:\n"
            "- {number: \"4001\", queue: q1}\n"
            "- {number: \"4002\", queue: q2}\n")
    assert fast_part(text) == {"agents": 3, "called_routes": 2}
    blanked, lists = split(text, 1)
    assert blanked.count("\n") == text.count("\n")           # every line stays where it was
    root = load_located(blanked, "t.yaml")
    assert graft(root, lists)
    assert tree(root) == tree(load_located(text, "t.yaml"))
    agents = root.items["agents"]
    assert agents.line == 4 and [a.line for a in agents.seq] == [4, 6, 7]
    assert agents.seq[1].items["flag"].value is False and agents.seq[1].items["x"].value is None
    assert agents.seq[2].items["queues"].line == 10


# Shapes outside the subset, valid YAML or not: each list is left to libyaml, whose tree or problems are given
OUTSIDE = [
    "  - {id: \"a\\tb\"}\n",                          # an escape
    "  - {id: &x 1}\n",                                # an anchor
    "  - {id: !!str 1}\n",                             # a tag
    "  - {id: udp:127.0.0.1:5060}\n",                  # a colon in a plain scalar
    "  - {id: 1,\n     name: a}\n",                    # a record over two lines
    "  - {id: 1,}\n",                                  # a trailing comma
    "  - {id: 2026-12-07}\n",                          # a timestamp
    "  - {yes: 1}\n",                                  # a key that is not a string
    "  - {id: 1, id: 2}\n",                            # a duplicate key
    "  - id: 1\n    queues:\n      - q1\n",            # a block value
    "  - id: 1\n      more\n",                         # a plain scalar over two lines
    "  - id: 1\n\tname: x\n",                          # a tab
    "  - [a, b]\n",                                    # a record that is not a mapping
    "  - {id: 1} x\n",                                 # something after the record
    "  - {id: a#b}\n",                                 # a hash in a plain scalar
    "  - {id: [a, {b: [c, {d: 1}]}]}\n  - {id: {a: {b: }}}\n",   # an empty value deep down
    "  - {id: 1}\n - {id: 2}\n",                       # a record out of line
    "  - {<<: {a: 1}}\n",                              # a merge key
]


def test_unsafe_characters_are_found_in_ascii_and_other_texts():
    # the ASCII path deletes the safe characters; every other text is searched with the pattern
    for c in map(chr, [*range(0x200), 0xd800, 0xdfff, 0xfeff, 0xfffe, 0xffff, 0x2028, 0x2029, 0x10ffff]):
        for text in (f"agents:\n  - {{id: {c}}}\n", f"name: \u00e9{c}\n"):
            assert _unsafe(text) == (_UNSAFE.search(text) is not None or "\r" in text), (hex(ord(c)), text)
    assert _unsafe("a: 1\r\n") and not _unsafe("a: 1\n\tb\n") and not _unsafe("")


def test_shapes_outside_the_subset_are_left_to_libyaml():
    for record in OUTSIDE:
        text = f"a: 1\nagents:\n  - {{id: 0}}\n{record}b: 2\n"
        assert fast_part(text) == {}, record
        assert outcome(read_tree, text) == outcome(load_located, text), record


def test_a_key_line_inside_something_else_is_not_taken_for_a_list():
    items = "".join(f"  - {{id: {i}}}\n" for i in range(3))
    for text in (f"motd: \"hello\nagents:\n{items}\"\nb: 1\n",       # in a quoted string over lines
                 f"server: {{a: 1,\nagents:\n{items}b: 2}}\n",        # in a flow mapping over lines
                 f"agents:\n{items}agents:\n{items}",                  # a duplicate top-level key
                 f"---\nagents:\n{items}---\nx: 1\n",                  # two documents
                 f"- a\nagents:\n{items}"):                            # a top level that is no mapping
        assert outcome(read_tree, text) == outcome(load_located, text), text


# --- generated: records from pieces of the subset and just outside it, one adversarial byte at a time -------
_SAFE = ["a", "q1", "Agent 0", "2s", "false", "yes", "no", "on", "~", "null", "1", "-1", "+1", "0x1f", "1_000",
         "1.5", ".inf", "-.5", "1e3", "a b", "a  b", "x-y", "(p)", "$v", "-x", "é", "日本", "  a  "]
_HOSTILE = ["12:30", "2026-12-07", "=", "<<", "-", "@x", "`x", "%x", "!x", "&x", "*x", "|", ">", "a:b", "a: b",
            "a #b", "a#b", "a,b", "[", "]", "{", "}", "'", '"', "\\", "\t", "", " "]
_SAFE_KEYS = ["id", "name", "queues", "_k", "a-b", "Id"]
_HOSTILE_KEYS = ["y", "on", "1", "k k", "<<"]


# Half the lists are made of pieces of the subset only (read here: the two readers must agree on the tree), half
# have pieces just outside it here and there (left to libyaml: they must agree on the tree or the problems).
@st.composite
def scalars(draw, hostile):
    w = draw(st.sampled_from(_SAFE + _HOSTILE) if hostile and draw(st.integers(0, 4)) == 0 else
             st.sampled_from(_SAFE))
    quote = draw(st.sampled_from(["plain", "double", "single"]))
    if quote == "double":
        return f'"{w}"'
    if quote == "single":
        return "'" + w.replace("'", "''") + "'"
    return w


def keys(draw, hostile, n):
    pool = _SAFE_KEYS + _HOSTILE_KEYS if hostile else _SAFE_KEYS
    return draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n, unique=not hostile))


@st.composite
def values(draw, hostile, depth=0):
    kind = draw(st.sampled_from(["scalar", "scalar", "seq", "map"] if depth < 2 else ["scalar"]))
    if kind == "scalar":
        return draw(scalars(hostile))
    if kind == "seq":
        return "[" + ", ".join(draw(st.lists(values(hostile, depth + 1), max_size=3))) + "]"
    return "{" + ", ".join(f"{k}: {draw(values(hostile, depth + 1))}"
                           for k in keys(draw, hostile, draw(st.integers(0, 3)))) + "}"


@st.composite
def records(draw, hostile):
    entries = [(k, draw(values(hostile))) for k in keys(draw, hostile, draw(st.integers(1, 4)))]
    tail = draw(st.sampled_from(["", "  ", "  # c"] + (["#c", " x"] if hostile else [])))
    if draw(st.booleans()):
        return "  - {" + ", ".join(f"{k}: {v}" for k, v in entries) + "}" + tail + "\n"
    first, *rest = entries
    return f"  - {first[0]}: {first[1]}{tail}\n" + "".join(f"    {k}: {v}\n" for k, v in rest)


lists = st.booleans().flatmap(lambda hostile: st.lists(records(hostile), min_size=1, max_size=4))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lists, st.sampled_from(["", "# c\n", "\n"]))
def test_generated_lists_read_as_libyaml_reads_them(recs, between):
    text = "server: {x: 1}\nagents:\n" + between.join(recs) + "b: 2\n"
    blanked, lists = split(text, 1)
    assert outcome(read_tree, text) == outcome(load_located, text)
    if lists:       # read here: libyaml reads the same from the whole text
        assert blanked.count("\n") == text.count("\n")
        root = load_located(text, "t.yaml")
        assert tree(lists["agents"][1]) == tree(root.items["agents"])


@st.composite
def same_shape_lists(draw):
    """Records of one shape (keys in order, kinds of values) as a long list has them, the values varying, some
    records breaking the shape: the records read by one match must read as libyaml reads them."""
    hostile = draw(st.booleans())
    names = keys(draw, False, draw(st.integers(1, 5)))
    kinds = [draw(st.sampled_from(["double", "single", "plain", "seq", "map"])) for _ in names]

    def value(kind):
        if kind in ("seq", "map"):
            return draw(values(hostile, 1)) if kind == "seq" or draw(st.booleans()) else draw(values(hostile))
        w = draw(st.sampled_from(_SAFE + _HOSTILE) if hostile and draw(st.integers(0, 6)) == 0 else
                 st.sampled_from(_SAFE))
        return {"double": f'"{w}"', "single": "'" + w.replace("'", "''") + "'", "plain": w}[kind]

    def record():
        space = draw(st.sampled_from([" ", "", "  "]))
        return ("  - {" + f",{space}".join(f"{k}: {value(kind)}" for k, kind in zip(names, kinds)) + "}"
                + draw(st.sampled_from(["", "", "  # c"])) + "\n")
    return [record() for _ in range(draw(st.integers(2, 8)))]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(same_shape_lists())
def test_records_of_one_shape_read_as_libyaml_reads_them(recs):
    text = "agents:\n" + "".join(recs) + "b: 2\n"
    assert outcome(read_tree, text) == outcome(load_located, text)


def test_collections_that_end_elsewhere_than_their_shape_says():
    # a bracket inside a quoted string, a deeper collection: the one-match read must not take them
    first = "  - {id: a, q: [x, {queue: y, penalty: 1}]}\n"
    for odd in ('  - {id: b, q: ["x]", y]}\n', "  - {id: b, q: [x, {a: [1, {b: 2}]}]}\n",
                '  - {id: b, q: [x, {a: "}"}]}\n', "  - {id: b, q: []}\n", "  - {id: b, q: {}}\n"):
        text = "agents:\n" + first * 3 + odd + first + "b: 2\n"
        assert fast_part(text) == {"agents": 5}, odd
        assert outcome(read_tree, text) == outcome(load_located, text), odd


def test_repeated_collections_are_made_again_on_each_record_line():
    # a collection text read once is made again from its template for later records: same tree and lines as
    # libyaml's, and no record shares a value with another
    texts = ["[q1, {queue: q2, penalty: 1}]", "[q1]", "{a: [x, y]}", "[q1]", "[q1, {queue: q2, penalty: 1}]"]
    recs = "".join(f'  - {{id: "{i}", queues: {t}}}\n' for i, t in enumerate(texts * 30))
    text = "agents:\n" + recs + "b: 2\n"
    assert fast_part(text) == {"agents": 150}
    assert outcome(read_tree, text) == outcome(load_located, text)
    seq = read_tree(text, "t.yaml").items["agents"].seq
    made = [loc.items["queues"] for loc in seq]
    assert len({id(v) for v in made}) == len(made)
    assert [v.line for v in made] == [r.line for r in seq] == list(range(2, 152))


def test_adversarial_runs_are_read_or_refused_whole():
    # long runs of one character class, then a byte that breaks it: the same outcome as libyaml's
    for run, breaker in ((" ", ":"), (" ", "#"), ("a", ":"), ("a ", ","), ("'", "x"), ("-", " "), ("{", "}")):
        value = "x" + run * 20000 + breaker + "y"
        for record in (f"  - {{id: {value}}}\n", f"  - id: {value}\n", f"  - {{id: [{value}]}}\n"):
            text = "agents:\n" + record * 3 + "b: 1\n"
            assert outcome(read_tree, text) == outcome(load_located, text)


def test_a_generated_tenant_loads_to_the_same_config(tmp_path):
    from benchmarks.tenant import write_tenant
    t = write_tenant(str(tmp_path / "t.yaml"), 300, 5)
    text = open(t.path).read()
    assert fast_part(text, 100) == {"employees": 301, "agents": 300}
    assert tree(read_tree(text, t.path)) == tree(load_located(text, t.path))
    cfg = load_config(t.path)
    assert len(cfg.agents) == 300 and cfg.agents[1].queues
