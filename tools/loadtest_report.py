"""Report of one tools/loadtest.py run: report.json, report.md, rate.png and latency.png (matplotlib, Agg)."""

from __future__ import annotations

import json
import os


def write_report(result: dict, out_dir: str, rtt: list[tuple[float, float, int]], plots: bool = True) -> None:
    os.makedirs(out_dir, exist_ok=True)
    if plots:
        result["plots"] = {"rate": "rate.png", "latency": "latency.png"}
        plot_rate(result, os.path.join(out_dir, "rate.png"))
        plot_latency(result, rtt, os.path.join(out_dir, "latency.png"))
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(result, f, indent=2, default=str)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(markdown(result))


# ---------------------------------------------------------------------------------------------------- markdown

def _fmt(v, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown(r: dict) -> str:
    target = r["target"] if isinstance(r["target"], str) else " and ".join(r["target"])
    sched = ", ".join(f"{s['rate']:g}/s from {s['from_s']:g} s" for s in r["schedule"])
    lat = r["latency_ms"]
    lines = [f"# Load test: {r['scenario']}", "",
             f"- target: {target}", f"- started: {r['started']}",
             f"- planned: {r['planned_calls']} calls over {r['duration_s']:g} s ({sched})",
             f"- result: **{'PASS' if r['ok'] else 'FAIL'}** ({r['successful']} successful, {r['failed']} failed)",
             ""]
    for e in r.get("events", []):
        lines.append(f"- {e}")
    lines += ["", "## Throughput", "", "| metric | value |", "| --- | --- |",
              f"| calls attempted | {r['calls']} |", f"| successful | {r['successful']} |",
              f"| failed | {r['failed']} |",
              f"| achieved rate (attempts/s while loading) | {_fmt(r['achieved_rate'], 2)} |",
              f"| successful/s while loading | {_fmt(r['successful_rate'], 2)} |",
              f"| peak rate (1 s window) | {_fmt(r['peak_rate'], 2)} |",
              f"| loading time / whole run | {_fmt(r['load_s'], 2)} s / {_fmt(r['elapsed_s'], 2)} s |",
              f"| retransmissions | {r['retransmissions']} ({_fmt(r['retransmission_pct'], 2)} % of calls) |",
              f"| 503 responses seen by SIPp | {r['status_503']} |"]
    node = r.get("node") or {}
    if node.get("overloaded_503") is not None:
        lines.append(f"| calls refused with 503 (node call_stats.overloaded) | {node['overloaded_503']} |")
    lines += ["", "## Failures by kind", ""]
    if r["failures_by_kind"] or r["unexpected_status_codes"]:
        lines += ["| kind | count |", "| --- | --- |"]
        lines += [f"| {k} | {v} |" for k, v in sorted(r["failures_by_kind"].items())]
        lines += [f"| unexpected SIP {k} | {v} |" for k, v in sorted(r["unexpected_status_codes"].items())]
    else:
        lines.append("none")
    lines += ["", "## Response time (ms, SIPp -trace_rtt, 1 ms resolution)", "",
              "| timer | count | p50 | p90 | p99 | max | mean |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for rtd, s in lat.get("by_rtd", {}).items():
        mark = " (headline)" if str(lat.get("rtd")) == rtd else ""
        lines.append(f"| rtd {rtd}{mark} | {s['count']} | {_fmt(s['p50'])} | {_fmt(s['p90'])} | {_fmt(s['p99'])} "
                     f"| {_fmt(s['max'])} | {_fmt(s['mean'], 2)} |")
    if not lat.get("by_rtd"):
        lines.append("| – | 0 | – | – | – | – | – |")
    if len(r.get("runs", {})) > 1:
        lines += ["", "## Per SIPp run", "", "| run | calls | successful | failed | retransmissions | achieved/s |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, run in r["runs"].items():
            ach = run["calls"] / run["load_s"] if run.get("load_s") else 0
            lines.append(f"| {name} | {run['calls']} | {run['successful']} | {run['failed']} | "
                         f"{run['retransmissions']} | {ach:.2f} |")
    agents = r.get("agents")
    if agents:
        uas = agents.get("uas") or {}
        lines += ["", "## Agents", "",
                  f"{agents['count']} agents ({', '.join(agents['ids'])}), answering after "
                  f"{agents['answer_delay_s']:g} s; customers hold {r.get('hold_s', 0):g} s after the answer.",
                  f"Agent UAS: {uas.get('calls', 0)} offers, {uas.get('successful', 0)} completed, "
                  f"{uas.get('failed', 0)} failed, {uas.get('retransmissions', 0)} retransmissions."]
    queues = node.get("queues")
    if queues:
        lines += ["", "## Queues (GET /api/queues before → after)", "",
                  "| queue | entered | answered | abandoned | waiting | peak waiting | peak longest wait s "
                  "| avg speed of answer s | service level | abandon rate |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, q in queues.items():
            b, a, d = q["before"], q["after"], q["delta"]
            lines.append(f"| {name} | +{d['entered']} | +{d['answered']} | +{d['abandoned']} | "
                         f"{_fmt(b['waiting'])} → {_fmt(a['waiting'])} | {q['peak_waiting']} | "
                         f"{_fmt(q['peak_longest_wait'])} | {_fmt(b['average_speed_of_answer'], 2)} → "
                         f"{_fmt(a['average_speed_of_answer'], 2)} | {_fmt(b['service_level'], 2)} → "
                         f"{_fmt(a['service_level'], 2)} | {_fmt(b['abandon_rate'], 2)} → "
                         f"{_fmt(a['abandon_rate'], 2)} |")
    delta = node.get("call_stats_delta")
    if delta:
        lines += ["", "Node call_stats during the run: " + ", ".join(f"{k} +{v}" for k, v in delta.items())]
    if r.get("plots"):
        lines += ["", "## Plots", "", "![calls per second](rate.png)", "", "![response time](latency.png)"]
    lines += ["", "## Progress (1 s samples)", "", "| s | calls | successful | failed | in progress | rate/s |",
              "| --- | --- | --- | --- | --- | --- |"]
    for p in r.get("progress", []):
        lines.append(f"| {p['elapsed']:.1f} | {p['calls']} | {p['successful']} | {p['failed']} | {p['current']} | "
                     f"{p['rate']:.1f} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------- plots

def percentile(sorted_values: list[float], q: float) -> float:
    k = (len(sorted_values) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_rate(r: dict, path: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 5), dpi=110)
    for name, run in r.get("runs", {}).items():
        s = run.get("series") or []
        if not s:
            continue
        t = [p["t"] for p in s]
        label = "" if len(r["runs"]) == 1 else f" ({name})"
        ax.plot(t, [p["call_rate"] for p in s], "-o", ms=3, label=f"attempted/s{label}")
        ax.plot(t, [p["successful"] / p["period"] for p in s], "-s", ms=3, label=f"successful/s{label}")
        if any(p["failed"] for p in s):
            ax.plot(t, [p["failed"] / p["period"] for p in s], "-x", color="red", label=f"failed/s{label}")
        if any(p["retransmissions"] for p in s):
            ax.plot(t, [p["retransmissions"] / p["period"] for p in s], ":", label=f"retransmissions/s{label}")
    # the planned staircase
    sched = r.get("schedule") or []
    if sched:
        xs, ys = [], []
        for i, st in enumerate(sched):
            end = sched[i + 1]["from_s"] if i + 1 < len(sched) else r["duration_s"]
            xs += [st["from_s"], end]
            ys += [st["rate"], st["rate"]]
        ax.plot(xs, ys, "--", color="grey", label="target rate")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("calls per second")
    ax.set_title(f"{r['scenario']}: achieved {r['achieved_rate']:.1f}/s, {r['successful']} ok, {r['failed']} failed")
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_latency(r: dict, rtt: list[tuple[float, float, int]], path: str) -> None:
    plt = _plt()
    lat = r["latency_ms"]
    fig, ax = plt.subplots(figsize=(10, 5), dpi=110)
    rtds = sorted({x[2] for x in rtt})
    for rtd in rtds:
        pts = [(t, ms) for t, ms, k in rtt if k == rtd]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=6, alpha=0.5, label=f"rtd {rtd} per call")
    # per-second p90 of the headline timer
    main = lat.get("rtd")
    if main is not None:
        buckets: dict[int, list[float]] = {}
        for t, ms, k in rtt:
            if k == main:
                buckets.setdefault(int(t), []).append(ms)
        if buckets:
            xs = sorted(buckets)
            ax.plot([x + 0.5 for x in xs], [percentile(sorted(buckets[x]), 90) for x in xs], "-", color="black",
                    lw=1.2, label=f"rtd {main} p90 per second")
        for q, style in (("p50", ":"), ("p90", "--"), ("p99", "-.")):
            if lat.get(q) is not None:
                ax.axhline(lat[q], linestyle=style, color="tab:red", lw=1, label=f"{q} {lat[q]:.1f} ms")
    if not rtt:
        ax.text(0.5, 0.5, "no response-time samples", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("response time (ms)")
    ax.set_title(f"{r['scenario']}: response time (p50 {_fmt(lat.get('p50'))}, p90 {_fmt(lat.get('p90'))}, "
                 f"p99 {_fmt(lat.get('p99'))} ms)")
    ax.grid(True, alpha=0.3)
    top = max(1.0, max((x[1] for x in rtt), default=1.0) * 1.15)
    ax.set_ylim(bottom=-0.03 * top, top=top)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
