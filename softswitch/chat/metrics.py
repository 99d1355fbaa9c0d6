"""The web chat's Prometheus metrics (read from ChatHub.kpis() at scrape time)."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


def chat_metrics(k: dict):
    per_queue = {
        "waiting": GaugeMetricFamily("softswitch_chat_waiting", "Web chats waiting for an agent", labels=["queue"]),
        "active": GaugeMetricFamily("softswitch_chat_active", "Web chats with an agent", labels=["queue"]),
        "answered": CounterMetricFamily("softswitch_chat_answered", "Web chats an agent took", labels=["queue"]),
        "abandoned": CounterMetricFamily("softswitch_chat_abandoned", "Web chats ended before an agent took them",
                                         labels=["queue"]),
    }
    for q in k["queues"]:
        for key, family in per_queue.items():
            family.add_metric([q["name"]], q[key])
    yield from per_queue.values()
    yield GaugeMetricFamily("softswitch_chat_agents_online", "Agents with the chat panel open",
                            value=k["agents_online"])
    yield GaugeMetricFamily("softswitch_chat_concurrency", "Chats per agent with the panel open (mean)",
                            value=k["concurrency"])
    events = CounterMetricFamily("softswitch_chat_events", "Chat messages carried and visitor input refused",
                                 labels=["kind"])
    for key in ("messages", "bad_frames", "rate_limited", "cut_off", "refused", "agent_rate_limited",
                "agent_cut_off", "agent_refused"):
        events.add_metric([key], k[key])
    yield events
