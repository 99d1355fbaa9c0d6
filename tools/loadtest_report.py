"""Report of one tools/loadtest.py run: the verdict, report.json, report.md, rate.png and latency.png (matplotlib,
Agg, imported only to draw)."""

from __future__ import annotations

import json
import os

from tools.loadtest_node import COUNTERS


def write_report(result: dict, out_dir: str, rtt: list[tuple[float, float, int]], plots: bool = True) -> None:
    os.makedirs(out_dir, exist_ok=True)
    if plots:
        result["plots"] = {"rate": "rate.png", "latency": "latency.png"}
    # the figures first: a plot that fails must not cost the report
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(result, f, indent=2, default=str)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(markdown(result))
    if plots:
        plot_rate(result, os.path.join(out_dir, "rate.png"))
        plot_latency(result, rtt, os.path.join(out_dir, "latency.png"))


# What each SIPp response-time timer (rtd) of the bundled scenarios measures.
MEASURES = {
    "calls": {"1": "INVITE to 200 OK (the switch answers the customer, before its prompt)"},
    "register": {"1": "REGISTER to 401 challenge", "2": "REGISTER to 200 OK (first request to registered)"},
    "pool-register": {"1": "REGISTER to 401 challenge", "2": "REGISTER to 200 OK (first request to registered)"},
    "options": {"1": "OPTIONS to 200 OK"},
}



def verdict(result: dict) -> dict:
    """PASS for calls means every customer's call was answered by an agent: nothing abandoned, overflowed,
    refused with 503 or failed. Other scenarios pass when every transaction succeeded."""
    node = result.get("node") or {}
    refused = max(result.get("status_503") or 0, node.get("overloaded_503") or 0)
    offered, failed = result["calls"], result["failed"]
    why: list[str] = []
    outcome = {"offered": offered, "failed": failed, "refused_503": refused}
    if result["scenario"] == "calls":
        queues = node.get("queues")
        if not queues:
            why.append("no queue statistics: give --http and a supervisor --account/--password to check that "
                       "agents answered")
        else:
            for k in COUNTERS:
                outcome[k] = sum(q["delta"][k] for q in queues.values())
            if outcome["answered"] < offered:
                why.append(f"{offered - outcome['answered']} of {offered} calls not answered by an agent")
            if outcome["abandoned"]:
                why.append(f"{outcome['abandoned']} abandoned: the customer hung up (after --hold "
                           f"{result.get('hold_s', 0):g} s) before an agent answered; a lower rate, more agents "
                           "or a longer --hold")
            if outcome["overflowed"]:
                why.append(f"{outcome['overflowed']} overflowed (no agent signed in, queue full or max wait)")
    elif result["successful"] == 0:
        why.append("nothing succeeded")
    if refused:
        why.append(f"{refused} refused with 503 (overload or draining)")
    if failed:
        why.append(f"{failed} failed in SIPp (see failures by kind)")
    ok = not why and offered > 0
    return {"ok": ok, "verdict": "PASS" if ok else "FAIL", "outcome": outcome, "why": why}


# ---------------------------------------------------------------------------------------------------- markdown

def _fmt(v, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def outcome_text(r: dict) -> str:
    o = r["outcome"]
    if "answered" in o:
        return (f"{o['offered']} offered, {o['answered']} answered by agents, {o['abandoned']} abandoned, "
                f"{o['overflowed']} overflowed, {o['refused_503']} refused with 503, {o['failed']} failed")
    return (f"{r['successful']} of {r['calls']} successful, {o['refused_503']} refused with 503, "
            f"{o['failed']} failed")


def _ms(v) -> str:
    """SIPp's whole milliseconds: 0 is under one."""
    return "–" if v is None else "<1" if v < 1 else f"{v:.1f}"


def markdown(r: dict) -> str:
    target = r["target"] if isinstance(r["target"], str) else " and ".join(r["target"])
    sched = ", ".join(f"{s['rate']:g}/s from {s['from_s']:g} s" for s in r["schedule"])
    lat = r["latency_ms"]
    lines = [f"# Load test: {r['scenario']}", "",
             f"- target: {target}", f"- started: {r['started']}",
             f"- planned: {r['planned_calls']} calls over {r['duration_s']:g} s ({sched})",
             f"- result: **{r['verdict']}** ({outcome_text(r)})"]
    lines += [f"  - {w}" for w in r["why"]]
    if r["scenario"] == "calls":
        lines.append(f"- customers hold {r['hold_s']:g} s after the switch answers ({r['hold_from']}); PASS means "
                     "every call was answered by an agent")
    lines.append("")
    for e in r.get("events", []):
        lines.append(f"- {e}")
    lines += ["", "## Throughput", "", "| metric | value |", "| --- | --- |",
              f"| calls attempted | {r['calls']} |", f"| completed in SIPp{' (the customer side; answered by agents: above)' if r['scenario'] == 'calls' else ''} "
              f"| {r['successful']} |",
              f"| failed | {r['failed']} |",
              f"| achieved rate (attempts/s while loading) | {_fmt(r['achieved_rate'], 2)} |",
              f"| completed/s while loading | {_fmt(r['successful_rate'], 2)} |",
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
    lines += ["", "## Response time (ms, SIPp -trace_rtt, whole milliseconds)", "",
              "| measure | count | p50 | p90 | p99 | max | mean |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for rtd, s in lat.get("by_rtd", {}).items():
        mark = " (headline)" if str(lat.get("rtd")) == rtd else ""
        lines.append(f"| {s.get('measure', 'rtd ' + rtd)}{mark} | {s['count']} | {_ms(s['p50'])} | "
                     f"{_ms(s['p90'])} | {_ms(s['p99'])} | {_ms(s['max'])} | {_fmt(s['mean'], 2)} |")
    if not lat.get("by_rtd"):
        lines.append("| – | 0 | – | – | – | – | – |")
    if r["scenario"] == "calls":
        lines += ["", "Time to an agent: the queues' average speed of answer below (queue wait until an agent "
                  "answered, from GET /api/queues), plotted over the run in latency.png."]
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
                  "| queue | entered | answered | abandoned | overflowed | waiting | peak waiting "
                  "| peak longest wait s | avg speed of answer s | service level | abandon rate |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, q in queues.items():
            b, a, d = q["before"], q["after"], q["delta"]
            lines.append(f"| {name} | +{d['entered']} | +{d['answered']} | +{d['abandoned']} | +{d['overflowed']} | "
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
    queued = any("answered" in p for p in r.get("progress", []))
    lines += ["", "## Progress (1 s samples)", "",
              "| s | calls | successful | failed | in progress | rate/s |" +
              (" waiting | answered | abandoned | overflowed |" if queued else ""),
              "| --- | --- | --- | --- | --- | --- |" + (" --- | --- | --- | --- |" if queued else "")]
    for p in r.get("progress", []):
        row = (f"| {p['elapsed']:.1f} | {p['calls']} | {p['successful']} | {p['failed']} | {p['current']} | "
               f"{p['rate']:.1f} |")
        if queued:
            row += " " + " | ".join(str(p.get(k, "–")) for k in ("waiting", "answered", "abandoned", "overflowed"))
            row += " |"
        lines.append(row)
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


def per_second(samples: list[dict], key: str) -> tuple[list[float], list[float]]:
    """Cumulative counter samples -> (times, rate per second over each interval)."""
    xs, ys = [], []
    for prev, cur in zip(samples, samples[1:]):
        dt = cur["elapsed"] - prev["elapsed"]
        if dt > 0:
            xs.append(cur["elapsed"])
            ys.append((cur.get(key, 0) - prev.get(key, 0)) / dt)
    return xs, ys


def plot_rate(r: dict, path: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 5), dpi=110)
    calls = r["scenario"] == "calls"
    for name, run in r.get("runs", {}).items():
        s = run.get("series") or []
        if not s:
            continue
        t = [p["t"] for p in s]
        label = "" if len(r["runs"]) == 1 else f" ({name})"
        ax.plot(t, [p["created"] / p["period"] for p in s], "-o", ms=3,
                label=f"{'offered (customers calling)' if calls else 'attempted'}/s{label}")
        if not calls:
            ax.plot(t, [p["successful"] / p["period"] for p in s], "-s", ms=3, label=f"successful/s{label}")
        if any(p["failed"] for p in s):
            ax.plot(t, [p["failed"] / p["period"] for p in s], "-x", color="red", label=f"failed/s{label}")
        if any(p["retransmissions"] for p in s):
            ax.plot(t, [p["retransmissions"] / p["period"] for p in s], ":", label=f"retransmissions/s{label}")
    samples = (r.get("node") or {}).get("queue_samples") or []
    if calls and len(samples) > 1:
        for key, style, color in (("answered", "-s", "tab:green"), ("abandoned", "-v", "tab:orange"),
                                  ("overflowed", "-^", "tab:purple")):
            xs, ys = per_second(samples, key)
            if key == "answered" or any(ys):
                ax.plot(xs, ys, style, ms=3, color=color, label=f"{key} by the queue/s")
    sched = r.get("schedule") or []
    if sched:
        xs, ys = [], []
        for i, st in enumerate(sched):
            end = sched[i + 1]["from_s"] if i + 1 < len(sched) else r["duration_s"]
            xs += [st["from_s"], end]
            ys += [st["rate"], st["rate"]]
        ax.plot(xs, ys, "--", color="grey", label="target rate")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("calls per second" if calls else "transactions per second")
    ax.set_title(f"{r['scenario']}: {r['verdict']}: {outcome_text(r)}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_latency(r: dict, rtt: list[tuple[float, float, int]], path: str) -> None:
    plt = _plt()
    lat = r["latency_ms"]
    samples = (r.get("node") or {}).get("queue_samples") or []
    two = r["scenario"] == "calls" and bool(samples)
    fig, axes = plt.subplots(2 if two else 1, 1, figsize=(10, 8 if two else 5), dpi=110, squeeze=False)
    ax = axes[0][0]
    names = {int(k): v.get("measure", f"rtd {k}") for k, v in lat.get("by_rtd", {}).items()}
    for rtd in sorted({x[2] for x in rtt}):
        pts = [(t, ms) for t, ms, k in rtt if k == rtd]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=6, alpha=0.5, label=f"{names.get(rtd, rtd)}, per call")
    main = lat.get("rtd")
    if main is not None:
        buckets: dict[int, list[float]] = {}
        for t, ms, k in rtt:
            if k == main:
                buckets.setdefault(int(t), []).append(ms)
        if buckets:
            xs = sorted(buckets)
            ax.plot([x + 0.5 for x in xs], [percentile(sorted(buckets[x]), 90) for x in xs], "-", color="black",
                    lw=1.2, label="p90 per second")
        for q, style in (("p50", ":"), ("p90", "--"), ("p99", "-.")):
            if lat.get(q) is not None:
                ax.axhline(lat[q], linestyle=style, color="tab:red", lw=1, label=f"{q} {_ms(lat[q])} ms")
    if not rtt:
        ax.text(0.5, 0.5, "no response-time samples", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("ms")
    ax.set_title(f"{lat.get('measure', 'response time')}: p50 {_ms(lat.get('p50'))}, p90 {_ms(lat.get('p90'))}, "
                 f"p99 {_ms(lat.get('p99'))} ms (SIPp, whole milliseconds)", fontsize=9)
    ax.grid(True, alpha=0.3)
    top = max(1.0, max((x[1] for x in rtt), default=1.0) * 1.15)
    ax.set_ylim(bottom=-0.03 * top, top=top)
    ax.legend(loc="upper left", fontsize=8)
    if two:
        ax = axes[1][0]
        queues = sorted({q for s in samples for q, v in s["queues"].items()       # the queues the calls reached
                         if v.get("longest_wait") or v.get("average_speed_of_answer") is not None})
        for q in queues:
            pts = [(s["elapsed"], s["queues"][q].get("average_speed_of_answer")) for s in samples
                   if q in s["queues"]]
            pts = [(t, v) for t, v in pts if v is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "-o", ms=3,
                        label=f"{q}: average speed of answer (queue wait until an agent answered)")
            ax.plot([s["elapsed"] for s in samples if q in s["queues"]],
                    [s["queues"][q].get("longest_wait") or 0 for s in samples if q in s["queues"]], ":",
                    label=f"{q}: longest wait of a caller waiting now")
        ax.set_xlabel("seconds since start")
        ax.set_ylabel("seconds")
        ax.set_title("Time to an agent (GET /api/queues each second; the agents answer after "
                     f"{(r.get('agents') or {}).get('answer_delay_s', 0):g} s of ringing)", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
