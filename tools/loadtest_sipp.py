"""SIPp for the load tool: the processes (stat CSV, response-time CSV, error log, control socket), the agent UAS
variant, and what their files say once a run is over (counts, per-second series, response-time percentiles)."""

from __future__ import annotations

import argparse
import csv
import glob
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIO_DIR = os.path.join(ROOT, "tools", "sipp")
# SIPp's own socket buffer (64 KB by default) overflows at a few thousand answers a second: the load generator
# then loses answers and re-sends requests already served. Sized as for any high-rate UDP client (the kernel
# caps it at net.core.rmem_max); the benchmarks pass the same.
SIPP_BUFFER = ("-buff_size", str(8 << 20))


class SetupError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------------- small helpers

def parse_seconds(text: str | float) -> float:
    """'2s', '500ms', '1.5', '2m' -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m)?\s*", str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r}")
    value, unit = float(m.group(1)), m.group(2) or "s"
    return value / 1000.0 if unit == "ms" else value * 60.0 if unit == "m" else value


def parse_hostport(text: str, default_port: int = 5060) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host:
        return text, default_port
    return host, int(port)


def parse_ramp(text: str) -> tuple[float, float, float]:
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("--ramp wants R1:R2:STEP_SECONDS")
    r1, r2, step = float(parts[0]), float(parts[1]), parse_seconds(parts[2])
    if r1 <= 0 or r2 <= 0 or step <= 0:
        raise argparse.ArgumentTypeError("--ramp values must be positive")
    return r1, r2, step


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def local_ip_for(host: str) -> str:
    """The local address that reaches `host` (what SIPp should put in Via/Contact)."""
    if host.startswith("127."):
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((socket.gethostbyname(host), 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def schedule(rate: float | None, ramp: tuple[float, float, float] | None, duration: float) -> list[tuple[float, float]]:
    """[(start second, calls/s)] stairs covering [0, duration)."""
    if ramp is None:
        return [(0.0, float(rate or 10.0))]
    r1, r2, step = ramp
    n = max(1, math.ceil(duration / step - 1e-9))
    if n == 1:
        return [(0.0, r1)]
    return [(i * step, r1 + (r2 - r1) * i / (n - 1)) for i in range(n)]


def rate_at(stairs: list[tuple[float, float]], t: float) -> float:
    rate = stairs[0][1]
    for start, r in stairs:
        if t >= start:
            rate = r
    return rate


def planned_calls(stairs: list[tuple[float, float]], duration: float) -> int:
    total = 0.0
    for i, (start, rate) in enumerate(stairs):
        end = stairs[i + 1][0] if i + 1 < len(stairs) else duration
        total += rate * max(0.0, min(end, duration) - start)
    return max(1, int(round(total)))


def sipp_rate(rate: float) -> str:
    return f"{rate:.3f}".rstrip("0").rstrip(".")


def hms_us_to_ms(text: str) -> float | None:
    """SIPp's HH:MM:SS:uuuuuu -> milliseconds."""
    m = re.fullmatch(r"(\d+):(\d+):(\d+):(\d+)", text or "")
    if not m:
        return None
    h, mi, s, us = (int(g) for g in m.groups())
    return ((h * 60 + mi) * 60 + s) * 1000.0 + us / 1000.0


def stat_time(text: str) -> float | None:
    """SIPp's 'YYYY-MM-DD\\tHH:MM:SS.ffffff\\tEPOCH' time column -> epoch seconds."""
    try:
        return float(text.split("\t")[-1])
    except (ValueError, AttributeError):
        return None


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return float(sorted_values[lo])
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo))


# ---------------------------------------------------------------------------------------------------- SIPp

@dataclass
class SippRun:
    """One SIPp process with its -trace_stat CSV (-fd 1), -trace_rtt CSV, error log and control port."""
    name: str
    cmd: list[str]
    workdir: str
    stat_file: str
    error_file: str
    control_port: int
    proc: subprocess.Popen | None = None
    started: float = 0.0
    log: object = None
    rtt_file: str | None = None

    def start(self) -> None:
        self.log = open(os.path.join(self.workdir, f"sipp-{self.name}.log"), "w")
        self.started = time.time()
        self.proc = subprocess.Popen(self.cmd, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=self.log,
                                     stdin=subprocess.DEVNULL)

    def control(self, command: str) -> None:
        """SIPp's remote control: 'cset rate N', 'q' (stop making calls, let the current ones end)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.sendto(command.encode(), ("127.0.0.1", self.control_port))
            except OSError:
                pass

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.control("q")
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(3)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        if self.log:
            self.log.close()
            self.log = None

    def rows(self) -> list[dict]:
        return read_stat_rows(self.stat_file)

    def find_rtt_file(self) -> str | None:
        if self.proc is None:
            return None
        hits = glob.glob(os.path.join(self.workdir, f"*_{self.proc.pid}_rtt.csv"))
        self.rtt_file = hits[0] if hits else None
        return self.rtt_file

    def error_codes_file(self) -> str | None:
        if self.proc is None:
            return None
        hits = glob.glob(os.path.join(self.workdir, f"*_{self.proc.pid}_error_codes.csv"))
        return hits[0] if hits else None


def _count_lines(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def read_stat_rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    if len(rows) < 2:
        return []
    header = rows[0]
    return [dict(zip(header, r)) for r in rows[1:] if len(r) >= len(header) - 1]


def sipp_cmd(scenario_path: str, target: str, local_ip: str, workdir: str, name: str, extra: list[str],
             limit: int, timeout_s: float, rate: float | None = None, calls: int | None = None,
             uas_port: int | None = None) -> SippRun:
    stat = os.path.join(workdir, f"{name}_stat.csv")
    err = os.path.join(workdir, f"{name}_errors.log")
    cp = free_udp_port()
    cmd = [shutil.which("sipp") or "sipp"]
    if uas_port is None:
        cmd += [target, "-r", sipp_rate(rate or 1), "-m", str(calls or 1), "-l", str(limit), "-p", "0"]
    else:
        cmd += ["-p", str(uas_port)]
    cmd += ["-sf", scenario_path, "-i", local_ip, "-nostdin", "-cp", str(cp),
            "-trace_stat", "-stf", stat, "-fd", "1", "-trace_err", "-error_file", err, "-trace_error_codes",
            "-trace_rtt", "-rtt_freq", "1", "-timeout", f"{int(timeout_s)}s",
            "-max_recv_loops", "10000", "-max_sched_loops", "10000", *SIPP_BUFFER, *extra]
    for f in (stat, err):
        if os.path.exists(f):
            os.remove(f)
    return SippRun(name, cmd, workdir, stat, err, cp)


def agent_uas_variant(out_dir: str, delay_s: float) -> str:
    """tools/sipp/agent_uas.xml answering after a <pause> of delay_s between 180 and 200. A CANCEL (the customer
    hung up while the agent's phone rang) is answered 200 + 487 wherever it comes: optional="global" recv."""
    with open(os.path.join(SCENARIO_DIR, "agent_uas.xml")) as f:
        text = f.read()
    ms = max(0, int(round(delay_s * 1000)))
    first_recv = '<recv request="INVITE" crlf="true"/>'
    if '<label id="1"/>' not in text or first_recv not in text or "<send>" not in text:
        raise SetupError("tools/sipp/agent_uas.xml changed shape: cannot derive the answer-delay variant")
    text = text.replace(first_recv, '<!-- loadtest: a CANCEL, whenever it comes, goes to "cancelled" -->\n'
                        '  <recv request="CANCEL" optional="global" next="cancelled"/>\n  ' + first_recv, 1)
    text = text.replace('<label id="1"/>', f'<!-- loadtest: the agent answers after {ms} ms -->\n'
                        f'  <pause milliseconds="{ms}"/>\n  <label id="1"/>', 1)
    head, _, tail = text.rpartition("<send>")                      # the last send (200 to BYE) ends the call
    text = head + '<send next="_end">' + tail
    cancel = """  <label id="cancelled"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <send>
    <![CDATA[

      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: [last_cseq_number] INVITE
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK" timeout="5000" ontimeout="_end"/>
  <label id="_end"/>
</scenario>"""
    text = text.replace("</scenario>", cancel, 1)
    text = text.replace('name="auto-answering agent phones"',
                        f'name="auto-answering agent phones, answer after {ms} ms"', 1)
    path = os.path.join(out_dir, f"agent_uas_{ms}ms.xml")
    with open(path, "w") as f:
        f.write(text)
    return path


def summarize_run(r: SippRun) -> dict:
    rows = r.rows()
    out: dict = {"returncode": r.proc.returncode if r.proc else None, "stat_file": os.path.basename(r.stat_file),
                 "rows": len(rows)}
    if not rows:
        out.update({"calls": 0, "successful": 0, "failed": 0, "retransmissions": 0, "failures": {}, "series": []})
        return out
    last = rows[-1]

    def c(col: str) -> int:
        try:
            return int(float(last.get(col, 0) or 0))
        except ValueError:
            return 0
    failures = {}
    for col in last:
        if col.startswith("Failed") and col.endswith("(C)") and col != "FailedCall(C)" and c(col):
            failures[col[len("Failed"):-3]] = c(col)
    series = []
    t_first = stat_time(rows[0].get("CurrentTime", "")) or 0.0
    prev_t = t_first
    prev_row = rows[0]
    for row in rows[1:]:
        t = stat_time(row.get("CurrentTime", "")) or prev_t
        period = t - prev_t
        if period < 0.25 and series:
            # the extra row SIPp writes as it exits, a moment after the last periodic one: fold it in
            last_point = series[-1]
            for k, col in (("successful", "SuccessfulCall(P)"), ("failed", "FailedCall(P)"),
                           ("retransmissions", "Retransmissions(P)")):
                last_point[k] += int(row.get(col, 0) or 0)
            continue
        period = max(1e-3, period)
        series.append({"t": round(t - r.started, 3), "period": round(period, 3),
                       "created": int(row.get("OutgoingCall(P)", 0) or row.get("IncomingCall(P)", 0) or 0),
                       "call_rate": float(row.get("CallRate(P)", 0) or 0),
                       "successful": int(row.get("SuccessfulCall(P)", 0) or 0),
                       "failed": int(row.get("FailedCall(P)", 0) or 0),
                       "retransmissions": int(row.get("Retransmissions(P)", 0) or 0),
                       "target_rate": float(prev_row.get("TargetRate", 0) or 0),
                       "current": int(row.get("CurrentCall", 0) or 0)})
        prev_t, prev_row = t, row
    # when did call creation stop: the end of the last period that created calls
    total = c("TotalCallCreated")
    load_end = None
    for row in rows:
        if int(row.get("TotalCallCreated", 0) or 0) >= total:
            load_end = stat_time(row.get("CurrentTime", ""))
            break
    load_s = max(1e-3, (load_end or prev_t) - t_first)
    codes = read_error_codes(r.error_codes_file())
    mean_rt = {}
    for col, val in last.items():
        m = re.fullmatch(r"ResponseTime(\d+)\(C\)", col)
        if m:
            ms = hms_us_to_ms(val)
            if ms is not None and c("SuccessfulCall(C)"):
                mean_rt[m.group(1)] = round(ms, 3)
    out.update({
        "calls": total, "successful": c("SuccessfulCall(C)"), "failed": c("FailedCall(C)"),
        "retransmissions": c("Retransmissions(C)"), "dead_call_msgs": c("DeadCallMsgs(C)"),
        "out_of_call_msgs": c("OutOfCallMsgs(C)"), "watchdog_major": c("WatchdogMajor(C)"),
        "failures": failures, "unexpected_status_codes": codes, "load_s": round(load_s, 3),
        "elapsed_s": round(prev_t - t_first, 3), "peak_rate": max((s["call_rate"] for s in series), default=0.0),
        "mean_response_ms": mean_rt, "series": series})
    return out


def aggregate(runs) -> dict:
    runs = list(runs)
    calls = sum(r["calls"] for r in runs)
    ok = sum(r["successful"] for r in runs)
    failed = sum(r["failed"] for r in runs)
    retrans = sum(r["retransmissions"] for r in runs)
    failures: dict[str, int] = {}
    codes: dict[str, int] = {}
    for r in runs:
        for k, v in r["failures"].items():
            failures[k] = failures.get(k, 0) + v
        for k, v in r.get("unexpected_status_codes", {}).items():
            codes[k] = codes.get(k, 0) + v
    load_s = max((r.get("load_s", 0) for r in runs), default=0) or 0
    elapsed = max((r.get("elapsed_s", 0) for r in runs), default=0) or 0
    return {
        "calls": calls, "successful": ok, "failed": failed, "retransmissions": retrans,
        "retransmission_pct": round(100.0 * retrans / calls, 3) if calls else 0.0,
        "failures_by_kind": failures, "unexpected_status_codes": codes, "status_503": codes.get("503", 0),
        "achieved_rate": round(calls / load_s, 3) if load_s else 0.0,
        "successful_rate": round(ok / load_s, 3) if load_s else 0.0,
        "completion_rate": round(ok / elapsed, 3) if elapsed else 0.0,
        "peak_rate": round(sum(r.get("peak_rate", 0) for r in runs), 3),
        "load_s": round(load_s, 3), "elapsed_s": round(elapsed, 3),
    }


def read_error_codes(path: str | None) -> dict[str, int]:
    """SIPp's -trace_error_codes file: 'time;elapsed;code,code,' per period -> {code: count}."""
    out: dict[str, int] = {}
    if not path or not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split(";")
            if len(parts) < 3:
                continue
            for code in parts[2].split(","):
                code = code.strip()
                if code:
                    out[code] = out.get(code, 0) + 1
    return out


def read_rtt(path: str, offset_s: float = 0.0) -> list[tuple[float, float, int]]:
    """SIPp's *_rtt.csv (Date_ms;response_time_ms;rtd_no) -> [(seconds since the test start, ms, rtd)]."""
    out = []
    with open(path) as f:
        for line in f:
            parts = line.strip().split(";")
            if len(parts) < 3:
                continue
            try:
                out.append((float(parts[0]) / 1000.0 + offset_s, float(parts[1]), int(parts[2])))
            except ValueError:
                continue
    return out


def latency_stats(rtt: list[tuple[float, float, int]]) -> dict:
    by_rtd: dict[int, list[float]] = {}
    for _, ms, rtd in rtt:
        by_rtd.setdefault(rtd, []).append(ms)
    out: dict = {"resolution_ms": 1, "by_rtd": {}}
    for rtd, values in sorted(by_rtd.items()):
        values.sort()
        out["by_rtd"][str(rtd)] = {
            "count": len(values), "p50": percentile(values, 50), "p90": percentile(values, 90),
            "p99": percentile(values, 99), "max": values[-1], "mean": round(sum(values) / len(values), 3)}
    if by_rtd:
        # the headline is the last timer of the scenario: the whole exchange (e.g. REGISTER to 200 after the 401)
        main = str(max(by_rtd))
        out["rtd"] = int(main)
        out.update({k: out["by_rtd"][main][k] for k in ("count", "p50", "p90", "p99", "max", "mean")})
    else:
        out.update({"rtd": None, "count": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None})
    return out
