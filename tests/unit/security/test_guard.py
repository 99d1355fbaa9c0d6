"""The guard's decisions with a fake clock: rate limits, flood and failure bans, scanners, expiry."""

from softswitch.security.guard import Guard, GuardOptions


def test_rate_limit_bans_a_flooder_and_not_its_neighbour():
    g = Guard(GuardOptions(rate=10, burst=10, flood_ban_after=20, ban_time=30))
    assert all(g.allow("10.0.0.1", "Phone", 0.0) for _ in range(10))
    assert not g.allow("10.0.0.1", "Phone", 0.0)
    for _ in range(19):
        g.allow("10.0.0.1", "Phone", 0.0)
    assert g.banned("10.0.0.1", 1.0) and g.stats["bans"] == 1
    assert g.allow("10.0.0.2", "Phone", 1.0)                  # another source is served
    assert not g.allow("10.0.0.1", "Phone", 29.0)             # still banned, tokens or not
    assert g.allow("10.0.0.1", "Phone", 31.0)                 # the ban expires


def test_tokens_refill_at_the_configured_rate():
    g = Guard(GuardOptions(rate=10, burst=5, flood_ban_after=1000))
    assert sum(g.allow("h", None, 0.0) for _ in range(20)) == 5
    assert sum(g.allow("h", None, 1.0) for _ in range(20)) == 5   # refilled up to the burst
    assert sum(g.allow("h", None, 1.25) for _ in range(20)) == 2     # 2.5 tokens back


def test_scanners_dropped_and_auth_failures_ban():
    g = Guard(GuardOptions(auth_failures=3, window=60, ban_time=100))
    assert not g.allow("h", "friendly-scanner", 0.0) and g.stats["scanner_dropped"] == 1
    assert not g.allow("h", "SIPVicious/0.3", 0.0)
    assert g.allow("h", "Yealink SIP-T46U", 0.0)
    g.auth_failed("h", 1.0)
    g.auth_failed("h", 70.0)            # the first one left the window
    g.auth_failed("h", 71.0)
    assert not g.banned("h", 72.0)
    g.auth_failed("h", 72.0)
    assert g.banned("h", 73.0) and not g.allow("h", "Yealink", 73.0)


def test_exempt_and_sweep():
    g = Guard(GuardOptions(rate=1, burst=1, exempt=("10.9.9.9",), window=10))
    assert all(g.allow("10.9.9.9", None, 0.0) for _ in range(100))
    for i in range(50):
        g.allow(f"10.1.0.{i}", None, 0.0)
    g.allow("10.2.0.1", None, 20.0)
    assert set(g.sources) == {"10.2.0.1"}


def test_a_long_flood_under_a_high_ban_threshold_is_counted_per_window():
    # 20,000 requests/s for 10 s past the limit, a threshold of 50,000 within 1 s: never reached, and the
    # window keeps only its last second (the times age out from the oldest, one per request)
    g = Guard(GuardOptions(rate=1, burst=1, flood_ban_after=50_000, window=1.0))
    now = 0.0
    for _ in range(200_000):
        now += 0.00005
        g.allow("10.0.0.9", None, now)
    assert g.stats["bans"] == 0 and not g.banned("10.0.0.9", now)
    assert 19_000 <= len(g.sources["10.0.0.9"].over) <= 20_001
    assert g.stats["rate_limited"] >= 199_000


def test_a_ban_heard_from_elsewhere_is_kept_to_its_end():
    g = Guard(GuardOptions())
    g.hold("10.0.0.7", 100.0)
    g.hold("10.0.0.7", 50.0)                    # an older word does not shorten it
    assert g.banned("10.0.0.7", 99.0) and not g.allow("10.0.0.7", None, 99.0)
    assert not g.banned("10.0.0.7", 100.0) and g.allow("10.0.0.7", None, 100.0)
