"""The Erlang-C estimate's arrival window is kept by dropping old arrivals, so a queue view costs the same
whatever the call rate of the last 15 minutes."""

from __future__ import annotations

from acd.stats import QueueStats


def test_a_view_drops_arrivals_older_than_the_window_and_counts_the_rest():
    s = QueueStats("q", window=900.0)
    s.completed(0.0, 120.0)
    for i in range(6000):
        s.entered(1000.0 + i * 0.1)                 # 10 calls a second for 10 minutes
    busy = s.view(1600.0)["agents_needed"]
    assert busy is not None and busy > 1 and len(s.arrivals) == 6000
    s.view(1000.0 + 900.0 + 300.0)                  # 5 minutes of those calls are now older than the window
    assert len(s.arrivals) == 3000 and s.arrivals[0] >= 1300.0
    quiet = s.view(10_000.0)                        # none left in the window: no arrivals, no agents needed
    assert len(s.arrivals) == 0 and quiet["agents_needed"] == 0
