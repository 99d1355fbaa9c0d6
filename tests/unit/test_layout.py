"""The layout rules of the tree: small modules, imports at the top, no import cycle.

Read from the source with `ast`, so the rules hold for code no test imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("softswitch", "acd", "media")
MAX_LINES = 600
# Third-party modules that are optional at run time (a node without a pool needs no Redis, a node
# that never plays a phone needs no pjsua2): importing them late keeps them optional.
OPTIONAL = {"pjsua2", "uvloop", "psycopg", "psycopg_pool", "redis"}
# What the tree still owes the rules, as a ratchet: these may shrink, nothing may be added. The call core
# and the node's composition module take them to empty.
STILL_LONG: set[str] = set()
STILL_LATE = {"softswitch.b2bua.call_media": 2, "softswitch.phone.command": 2, "softswitch.records.store": 1}


def modules(root: Path = ROOT, packages=PACKAGES) -> dict[str, Path]:
    found = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            found[".".join(parts)] = path
    return found


def _resolve(name: str, node: ast.ImportFrom | ast.Import, known: dict[str, Path]) -> list[str]:
    """Project modules an import statement in module `name` loads."""
    if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = name.split(".")
            is_pkg = known[name].name == "__init__.py"
            pkg = pkg if is_pkg else pkg[:-1]
            pkg = pkg[: len(pkg) - (node.level - 1)]
            base = ".".join([*pkg, base] if base else pkg)
        subs = [f"{base}.{a.name}" for a in node.names]
        # `from pkg import mod` loads pkg's __init__ too, but that is no cycle of ours when pkg's
        # __init__ is what imports us; only names that are not modules need the package itself.
        targets = subs + ([base] if any(t not in known for t in subs) else [])
    out = []
    for t in targets:
        while t and t not in known:
            t = t.rpartition(".")[0]
        if t and t != name:
            out.append(t)
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def top_level_imports(tree: ast.Module):
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.Try):
            for sub in node.body:
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    yield sub


def long_modules(known: dict[str, Path]) -> dict[str, int]:
    return {name: n for name, path in known.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}


def late_imports(known: dict[str, Path]) -> list[str]:
    late = []
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            for sub in node.body if isinstance(node, ast.ClassDef) else ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    mod = sub.module if isinstance(sub, ast.ImportFrom) else sub.names[0].name
                    if (mod or "").split(".")[0] not in OPTIONAL:
                        late.append(f"{name}:{sub.lineno}: {mod}")
    return sorted(set(late))


def import_cycles(known: dict[str, Path]) -> list[str]:
    graph = {name: {d for node in top_level_imports(ast.parse(path.read_text()))
                    for d in _resolve(name, node, known)}
             for name, path in known.items()}
    cycles: list[str] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph[n]):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    return cycles


def test_no_module_over_the_line_limit():
    assert set(long_modules(modules())) - STILL_LONG == set()


def test_imports_are_at_the_top_of_the_file():
    counts: dict[str, list[str]] = {}
    for entry in late_imports(modules()):
        counts.setdefault(entry.split(":")[0], []).append(entry)
    over = {m: found for m, found in counts.items() if len(found) > STILL_LATE.get(m, 0)}
    assert over == {}


def test_no_import_cycle():
    assert import_cycles(modules()) == []


def test_the_rules_can_fail(tmp_path):
    """A two-module cycle, a function-local import and a long module are each seen."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("from . import a\n\n\ndef f():\n    import os\n" + "x = 1\n" * MAX_LINES)
    known = modules(tmp_path, ("pkg",))
    assert import_cycles(known) == ["pkg.a -> pkg.b -> pkg.a"]
    assert late_imports(known) == ["pkg.b:5: os"]
    assert list(long_modules(known)) == ["pkg.b"]
