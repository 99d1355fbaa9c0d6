"""Prometheus metrics, read from live state at scrape time (no bookkeeping on the hot paths)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from ..chat.metrics import chat_metrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class NodeCollector:
    def __init__(self, node) -> None:
        self.node = node

    def collect(self):
        node = self.node
        ep = node.endpoint
        yield counters("softswitch_sip_requests", "SIP requests received", "method", ep.method_counts)
        yield counters("softswitch_sip_responses", "SIP responses sent", "code", ep.status_counts)
        counts = ep.layer.counts()
        tx = GaugeMetricFamily("softswitch_sip_transactions", "Live SIP transactions", labels=["side"])
        tx.add_metric(["server"], counts["server"])
        tx.add_metric(["client"], counts["client"])
        yield tx
        yield GaugeMetricFamily("softswitch_sip_dialogs", "Live dialogs", value=len(node.calls.dialogs))
        yield GaugeMetricFamily("softswitch_calls", "Calls in progress", value=len(node.calls.calls))
        yield counters("softswitch_call_events", "Call outcomes", "kind", node.calls.stats)
        yield counters("softswitch_registrar", "Registrar events", "kind", node.registrar.stats)
        phones = getattr(node, "phones", None)
        if phones is not None:
            yield counters("softswitch_keepalive", "OPTIONS keepalives to registered phones, their verdicts, and "
                           "connections that closed with bindings", "kind", {**phones.core.stats, **phones.stats})
        yield GaugeMetricFamily("softswitch_overload_busy", "Share of time spent handling SIP (smoothed)",
                                value=node.calls.busy)
        yield GaugeMetricFamily("softswitch_loop_lag_seconds", "Event loop lateness (smoothed)",
                                value=node.calls.loop_lag)
        yield counters("softswitch_calls_refused_overloaded", "New calls answered 503 for overload, per measure "
                       "past its ceiling (a refusal counts under each)", "reason", node.calls.refusals.by_reason)
        wd = getattr(node, "watchdog", None)
        if wd is not None:
            stalls = CounterMetricFamily("softswitch_loop_stalls", "Inputs that held the event loop past the "
                                         "stall threshold", labels=["kind"])
            hist = HistogramMetricFamily("softswitch_handler_seconds", "Time one input held the event loop "
                                         "(datagram, stream chunk, WebSocket message, HTTP request)", labels=["kind"])
            for kind, h in wd.hist.items():
                stalls.add_metric([kind], wd.stalls[kind])
                if h.count:
                    hist.add_metric([kind], h.cumulative(), h.total)
            yield stalls
            yield hist
        ovl = getattr(node, "overload", None)
        if ovl is not None:
            yield counters("softswitch_overload", "Datagrams sorted before parsing because they waited "
                           "in the receive queue past the bound", "kind", ovl.stats)
            yield GaugeMetricFamily("softswitch_receive_queue_age_seconds", "Age of queued datagrams (smoothed)",
                                    value=node.calls.backlog)
        front = getattr(node, "front", None)
        if front is not None:
            yield counters("softswitch_overload_front", "UDP datagrams the front process passed to the node, "
                           "answered 503 itself, or dropped, as the node's backlog stood", "kind", front.stats)
            yield GaugeMetricFamily("softswitch_overload_front_wait_seconds", "How long the oldest datagram the front "
                                    "passed on and the node had not handled yet had waited", value=front.wait)
        lane = getattr(node.endpoint, "register_lane", None)
        if lane is not None:
            yield counters("softswitch_register_lane", "REGISTER datagrams the plain-REGISTER reader challenged, "
                           "passed to the registrar, or left to the general parser", "kind", lane.stats)
        if node.guard is not None:
            yield counters("softswitch_guard", "Requests dropped and sources banned", "kind", node.guard.stats)
            yield GaugeMetricFamily("softswitch_guard_bans_active", "Sources banned now", value=len(node.guard.bans))
        if getattr(node, "widgets", None) is not None:
            yield counters("softswitch_click_to_dial", "Click-to-dial nonces and tokens issued, requests refused or "
                           "rate-limited, calls let in and refused", "kind", node.widgets.stats)
        lockout = getattr(getattr(node, "authn", None), "lockout", None)
        if lockout is not None:
            yield counters("softswitch_account_lockout", "Failed digest attempts per account, "
                           "lockouts, and attempts refused while locked", "kind", lockout.stats)
            yield GaugeMetricFamily("softswitch_accounts_locked", "Accounts (usernames) locked now",
                                    value=lockout.active(time.time()))
        connector = getattr(ep, "connector", None)
        if connector is not None:
            yield counters("softswitch_sip_client_connections", "TCP/TLS connections the node opened to peers: "
                           "opened, failed (refused, unverified, timed out), messages dropped while one was "
                           "opening", "kind", connector.stats)
        if getattr(node, "trunks", None) is not None:
            yield from node.trunks.metric_families()
        if getattr(node, "pool", None) is not None:
            yield GaugeMetricFamily("softswitch_pool_redis_up", "Redis reachable (pool mode)", value=int(node.pool.up))
            yield counters("softswitch_pool", "Pool reservations and state sharing", "kind", node.pool.stats)
        center = node.center
        if center is not None:
            waiting = GaugeMetricFamily("softswitch_queue_waiting", "Calls waiting", labels=["queue"])
            longest = GaugeMetricFamily("softswitch_queue_longest_wait_seconds", "Longest wait", labels=["queue"])
            agents = GaugeMetricFamily("softswitch_queue_agents", "Agents by state", labels=["queue", "state"])
            totals = CounterMetricFamily("softswitch_queue_calls", "Calls by outcome", labels=["queue", "outcome"])
            sl = GaugeMetricFamily("softswitch_queue_service_level", "Answered within threshold", labels=["queue"])
            need = GaugeMetricFamily("softswitch_queue_agents_needed", "Erlang-C agents for the service level goal",
                                     labels=["queue"])
            for name in center.acd.queues:
                v = center.acd.queue_view(name)
                waiting.add_metric([name], v["waiting"])
                longest.add_metric([name], v["longest_wait"])
                for state, n in v["agents"].items():
                    agents.add_metric([name, state], n)
                for outcome in ("entered", "answered", "abandoned", "overflowed"):
                    totals.add_metric([name, outcome], v[outcome])
                if v["service_level"] is not None:
                    sl.add_metric([name], v["service_level"])
                if v["agents_needed"] is not None:
                    need.add_metric([name], v["agents_needed"])
            yield from (waiting, longest, agents, totals, sl, need)
            yield GaugeMetricFamily("softswitch_reconciler_corrections", "States repaired", value=center.corrections)
        if getattr(node, "chat", None) is not None:
            yield from chat_metrics(node.chat.kpis())
        engine = node.media_engine
        if engine is not None:
            media = CounterMetricFamily("softswitch_media_ticks", "Media ticks", labels=["kind"])
            for kind in ("ticks", "late_ticks", "skipped_ticks"):
                media.add_metric([kind], engine.stats.get(kind, 0))
            yield media
            yield GaugeMetricFamily("softswitch_media_streams", "Open RTP streams", value=len(engine.streams))
            yield GaugeMetricFamily("softswitch_media_max_lateness_seconds", "Worst tick lateness",
                                    value=engine.stats.get("max_lateness_ms", 0.0) / 1000.0)


def counters(name: str, text: str, label: str, stats: dict) -> CounterMetricFamily:
    """One counter family with a sample per key of `stats` (the nodes' stats dicts), in key order."""
    family = CounterMetricFamily(name, text, labels=[label])
    for key, n in sorted(stats.items()):
        family.add_metric([str(key)], n)
    return family


def render(node) -> bytes:
    registry = CollectorRegistry()
    registry.register(NodeCollector(node))
    return generate_latest(registry)
