"""Every script under benchmarks/ runs: each is started with its --quick option (a second or a few of load) and
must exit 0 and print its figure line, so a benchmark cannot silently break. The figures are not checked.

Scripts are discovered, not listed: any benchmarks/*.py with a `__main__` block is one, must take --quick,
and says which output line carries its figure in a module constant FIGURE_LINE (a regular expression); a
script without that constant must end its output with a line that gives a number.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if "__main__" in p.read_text())


def figure_line(path: Path) -> str | None:
    """The FIGURE_LINE constant of a script, read without importing it."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "FIGURE_LINE" for t in node.targets):
            return ast.literal_eval(node.value)
    return None


def test_benchmarks_are_found():
    names = {p.name for p in SCRIPTS}
    assert {"register_bench.py", "call_bench.py", "rtp_relay_bench.py", "tenant.py", "keepalive_bench.py",
            "pool_bench.py", "crash_bench.py", "wallboard_bench.py", "shed_cost.py"} <= names
    assert "common.py" not in names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_benchmark_quick_run_prints_its_figure(script: Path, tmp_path):
    assert '"--quick"' in script.read_text(), f"{script.name} has no --quick option for its smoke run"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [sys.executable, str(script), "--quick"]
    if script.name == "tenant.py":
        args.insert(2, str(tmp_path / "tenant.yaml"))
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout
    assert proc.returncode == 0, f"{script.name} --quick exited {proc.returncode}:\n{out[-2000:]}\n{proc.stderr[-3000:]}"
    pattern = figure_line(script)
    if pattern is not None:
        assert re.search(pattern, out, re.M), f"{script.name}: no line matching {pattern!r} in:\n{out[-2000:]}"
    else:
        lines = [line for line in out.splitlines() if line.strip()]
        assert lines and re.search(r"\d", lines[-1]), f"{script.name}: no figure at the end of:\n{out[-2000:]}"


def test_generated_tenant_loads_with_its_agents_queues_and_routes(tmp_path):
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.tenant import write_tenant
    finally:
        sys.path.remove(str(ROOT))
    from softswitch.settings import check_password, load_config
    t = write_tenant(str(tmp_path / "t.yaml"), agents=40, queues=3)
    cfg = load_config(t.path)
    assert [a.softphone for a in cfg.agents] == [n for n, _ in t.phones]
    assert [q.name for q in cfg.queues] == t.queues == ["q0", "q1", "q2"]
    assert {r.called: r.target for r in cfg.routes}["4002"] == "q1" and "main_menu" in cfg.ivr
    assert "127.0.0.1" in cfg.server.sip.security.exempt
    sup = next(e for e in cfg.employees if e.account == t.supervisor[0])
    assert sup.role == "supervisor" and check_password(t.supervisor[1], sup.password_hash)
    number, password = t.phones[7]
    from softswitch.registrar.credentials import ha1_pair
    assert cfg.agents[7].ha1 == ha1_pair(number, t.realm, password)


def test_call_bench_with_talking_phones_runs(tmp_path):
    # the SIPp phones stream PCMU through the anchored switch (their scenarios and the WAV they play load)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "call_bench.py"), "--quick", "--rtp"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert re.search(r"highest rate .*: 10 calls/s .*both phones talking", proc.stdout), proc.stdout[-2000:]
