"""The wallboard's settings: threshold colours per KPI (tenant-wide, optionally per queue), and the service level
goal of a skill queue (`skill_queues[].service_level_goal`), which the wallboard shows beside the service level.

    wallboard:
      thresholds:                                   # any KPI left out keeps its default
        waiting: {warn: 1, alarm: 5}                # calls waiting
        service_level: {warn: 80%, alarm: 60%}      # lower is worse for this one only
      queues:
        support_voice: {thresholds: {waiting: {warn: 3, alarm: 8}}}

A KPI is amber from `warn` on and red from `alarm` on (for the service level: below). Defaults that depend on a
queue (service level, longest wait, speed of answer) are worked out from its service level settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import reader as R
from .reader import Bad, Reader
from .source import Located

# KPI -> (how its values are written, higher is worse). Order is the wallboard's.
KPIS: dict[str, tuple[str, bool]] = {
    "waiting": ("count", True),
    "longest_wait": ("duration", True),
    "service_level": ("percent", False),
    "average_speed_of_answer": ("duration", True),
    "abandon_rate": ("percent", True),
    "average_handle_time": ("duration", True),
}

_PERCENT = re.compile(r"\s*([0-9]{1,3}(?:\.[0-9]{1,6})?)\s*%\s*")


def percent(lo: float = 0.0, hi: float = 100.0):
    """A share written as a percentage, `80%` (read as 0.8). A bare number is refused: 0.8 and 80 both occur."""
    def conv(r, loc, path) -> float:
        v = R.scalar(loc)
        m = _PERCENT.fullmatch(v) if isinstance(v, str) else None
        if not m:
            raise Bad(f"expected a percentage like 80%, got {R.describe(loc)}")
        x = float(m.group(1))
        if not lo <= x <= hi:
            raise Bad(f"must be between {lo:g}% and {hi:g}%")
        return x / 100.0
    return conv


_READ = {"count": R.integer(0, 1_000_000), "duration": R.duration(0, 86400), "percent": percent()}


@dataclass(frozen=True)
class Threshold:
    warn: float | None = None          # None: the default (see resolve)
    alarm: float | None = None


@dataclass(frozen=True)
class WallboardSettings:
    thresholds: dict = field(default_factory=dict, hash=False, compare=True)    # KPI -> Threshold
    queues: dict = field(default_factory=dict, hash=False, compare=True)        # queue -> {KPI -> Threshold}

    def resolve(self, queue) -> dict[str, dict]:
        """Thresholds in force for a configured skill queue: {KPI: {warn, alarm, higher_is_worse}}, queue's own
        over the tenant's over the defaults."""
        sl_time, goal = queue.service_level, queue.service_level_goal
        defaults = {
            "waiting": (1, 5),
            "longest_wait": (sl_time, 2 * sl_time),            # past the service level time the call misses it
            "service_level": (goal, max(0.0, goal - 0.2)),
            "average_speed_of_answer": (sl_time / 2, sl_time),
            "abandon_rate": (0.05, 0.10),
            "average_handle_time": (300.0, 600.0),
        }
        own = self.queues.get(queue.name, {})
        out = {}
        for kpi, (_, worse_up) in KPIS.items():
            warn, alarm = defaults[kpi]
            given_warn = given_alarm = False
            for t in (self.thresholds.get(kpi), own.get(kpi)):
                if t is not None and t.warn is not None:
                    warn, given_warn = t.warn, True
                if t is not None and t.alarm is not None:
                    alarm, given_alarm = t.alarm, True
            # one side given, the other defaulted: the defaulted one moves to keep them in order
            if given_alarm and not given_warn:
                warn = min(warn, alarm) if worse_up else max(warn, alarm)
            else:
                alarm = max(alarm, warn) if worse_up else min(alarm, warn)
            out[kpi] = {"warn": warn, "alarm": alarm, "higher_is_worse": worse_up}
        return out


def _thresholds(r: Reader, loc: Located, path: str) -> dict:
    spec = {kpi: (lambda r, l, p: l, None) for kpi in KPIS}
    raw = r.mapping(loc, path, spec)
    out = {}
    for kpi, sub in raw.items():
        if sub is None:
            continue
        kind, worse_up = KPIS[kpi]
        t = r.mapping(sub, f"{path}.{kpi}", {"warn": (_READ[kind], None), "alarm": (_READ[kind], None)})
        if t["warn"] is not None and t["alarm"] is not None:
            if worse_up and t["alarm"] < t["warn"]:
                r.error(sub.items["alarm"].line, f"{path}.{kpi}.alarm", "must not be below warn (higher is worse)")
            elif not worse_up and t["alarm"] > t["warn"]:
                r.error(sub.items["alarm"].line, f"{path}.{kpi}.alarm", "must not be above warn (lower is worse)")
        out[kpi] = Threshold(t["warn"], t["alarm"])
    return out


def read_wallboard(r: Reader, loc: Located | None, queue_names: set[str]) -> WallboardSettings:
    """The `wallboard` section; queue names it mentions must be skill queues."""
    if loc is None:
        return WallboardSettings()
    w = r.mapping(loc, "wallboard", {"thresholds": (lambda r, l, p: l, None), "queues": (lambda r, l, p: l, None)})
    tenant = _thresholds(r, w["thresholds"], "wallboard.thresholds") if w["thresholds"] is not None else {}
    queues = {}
    qloc = w["queues"]
    if qloc is not None:
        if qloc.kind != "mapping":
            r.error(qloc.line, "wallboard.queues", f"expected a mapping of queue name to settings, got "
                                                   f"{R.describe(qloc)}")
        else:
            for name, sub in qloc.items.items():
                path = f"wallboard.queues.{name}"
                if name not in queue_names:
                    r.error(qloc.key_lines.get(name, sub.line), path, f"no skill queue {name!r}")
                q = r.mapping(sub, path, {"thresholds": (lambda r, l, p: l, None)})
                queues[name] = _thresholds(r, q["thresholds"], f"{path}.thresholds") if q["thresholds"] else {}
    return WallboardSettings(tenant, queues)
