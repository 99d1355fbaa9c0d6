"""The stall watchdog: the pure core with a fake clock, then a real node whose handler is made slow by a test
hook that moves the watchdog's (injected) clock, so the verdict never depends on the machine's speed."""

from __future__ import annotations

import urllib.request

from softswitch.security.watchdog import BOUNDS, Watchdog, describe, printable
from tests.support.cc import cc_node
from tests.conftest import running_node
from tests.support.sipclient import TcpClient, UdpClient, options_request


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def warning(self, event: str, **kw) -> None:
        self.lines.append((event, kw))


# --- the core ----------------------------------------------------------------------------------------------
def test_observe_fills_the_histogram_and_flags_only_what_is_over_the_threshold():
    wd = Watchdog(threshold=0.1)
    assert wd.observe("udp", 0.00005) is False
    assert wd.observe("udp", 0.1) is False           # at the threshold is not over it
    assert wd.observe("udp", 0.1000001) is True
    assert wd.observe("http", 7.0) is True
    h = wd.hist["udp"]
    assert h.count == 3 and abs(h.total - 0.2000501) < 1e-9
    buckets = dict(h.cumulative())
    assert buckets[repr(0.0001)] == 1                # 50 us is in the first bucket
    assert buckets[repr(0.1)] == 2                   # le is inclusive: 0.1 counts in the 0.1 bucket
    assert buckets[repr(0.25)] == 3 and buckets["+Inf"] == 3
    assert dict(wd.hist["http"].cumulative())[repr(BOUNDS[-1])] == 0 and wd.hist["http"].cumulative()[-1] == ("+Inf", 1)
    assert wd.stalls == {k: 0 for k in wd.stalls}    # observe only measures; the shell reports a stall


def test_stall_is_counted_logged_and_kept_with_escaped_first_bytes():
    log = Log()
    wd = Watchdog(threshold=0.1, log=log, keep=2)
    s = wd.stall("udp", 0.3, "192.0.2.1:5060", "udp INVITE", b"INVITE sip:x\x00\xff\r\n" + b"A" * 200)
    assert wd.stalls["udp"] == 1 and wd.recent[-1] == s
    assert s.preview.startswith("INVITE sip:x\\x00\\xff\\r\\nAAA") and s.preview.endswith("...")
    event, kw = log.lines[0]
    assert event == "loop_stall" and kw["ms"] == 300.0 and kw["source"] == "192.0.2.1:5060"
    assert kw["what"] == "udp INVITE" and kw["first_bytes"] == s.preview
    for _ in range(3):
        wd.stall("tcp", 0.2, "h:1", "x")
    assert wd.stalls["tcp"] == 3 and len(wd.recent) == 2     # the recent list is bounded


def test_printable_escapes_every_byte_outside_printable_ascii():
    every = bytes(range(256))
    out = printable(every, 256)
    assert all(32 <= ord(c) < 127 for c in out)
    assert "\\x00" in out and "\\xff" in out and "\\x7f" in out and "\\\\" in out and "\\r" in out and "\\n" in out
    assert printable("é€", 10) == "\\xc3\\xa9\\xe2\\x82\\xac"
    assert printable(b"abc", 2) == "ab..."


def test_describe_names_the_method_or_the_status_without_parsing():
    assert describe(b"REGISTER sip:x SIP/2.0\r\nVia: ...") == "REGISTER"
    assert describe(b"SIP/2.0 486 Busy Here\r\n") == "response 486"
    assert describe(b"\x00\x01 junk") == "\\x00\\x01"
    assert describe(b"") == "empty"


# --- a real node --------------------------------------------------------------------------------------------
def _slow_options(nt, clock: FakeClock, seconds: float) -> None:
    """Test hook: OPTIONS whose Call-ID starts with 'slow' move the watchdog's clock while being handled."""
    def install():
        ep = nt.node.endpoint
        nt.node.watchdog.clock = clock
        nt.node.watchdog.log = log = Log()
        fast = ep.handlers["OPTIONS"]

        def handler(tx, req):
            if req.call_id.startswith("slow"):
                clock.t += seconds
            fast(tx, req)
        ep.handlers["OPTIONS"] = handler
        return log
    return nt.call(install)


def test_a_slow_datagram_and_a_slow_stream_chunk_are_logged_and_counted():
    with running_node() as nt:
        clock = FakeClock()
        log = _slow_options(nt, clock, 0.25)
        udp = UdpClient(("127.0.0.1", nt.port))
        udp.send(options_request(nt.port, call_id="fast-1", branch="z9hG4bK-f1"))
        assert udp.recv().status == 200
        udp.send(options_request(nt.port, call_id="slow-1", branch="z9hG4bK-s1"))
        assert udp.recv().status == 200
        tcp = TcpClient(("127.0.0.1", nt.port))
        tcp.send(options_request(nt.port, call_id="slow-2", branch="z9hG4bK-s2", transport="TCP"))
        assert tcp.recv().status == 200
        wd = nt.call(lambda: nt.node.watchdog)
        assert wd.stalls["udp"] == 1 and wd.stalls["tcp"] == 1
        assert wd.hist["udp"].count == 2 and wd.hist["udp"].total == 0.25
        first, second = wd.recent
        assert first.kind == "udp" and first.what == "udp OPTIONS" and first.seconds == 0.25
        assert first.source == f"127.0.0.1:{udp.addr[1]}" and first.preview.startswith("OPTIONS sip:")
        assert second.kind == "tcp" and "OPTIONS" in second.what
        assert [e for e, _ in log.lines] == ["loop_stall", "loop_stall"]
        udp.close()
        tcp.close()


def test_a_slow_http_request_is_logged_with_its_handler_and_exported_on_metrics(tmp_path):
    with cc_node(tmp_path) as (nt, sip_port, http_port):
        clock = FakeClock()
        log = _slow_options(nt, clock, 0.5)

        def slow_count():
            node = nt.node
            real = node.location.count

            async def count():
                clock.t += 0.3                 # the /health handler's step holds the loop "0.3 s"
                return await real()
            node.location.count = count
        nt.call(slow_count)
        udp = UdpClient(("127.0.0.1", sip_port))
        udp.send(options_request(sip_port, call_id="slow-3", branch="z9hG4bK-s3"))
        assert udp.recv().status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=10) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        wd = nt.call(lambda: nt.node.watchdog)
        assert wd.stalls["http"] == 1
        http = [s for s in wd.recent if s.kind == "http"][0]
        assert http.what == "http GET handler health" and http.preview == "GET /health"
        assert abs(http.seconds - 0.3) < 1e-9
        assert http.source == "127.0.0.1"
        assert 'softswitch_loop_stalls_total{kind="udp"} 1.0' in text
        assert 'softswitch_loop_stalls_total{kind="http"} 1.0' in text
        assert 'softswitch_loop_stalls_total{kind="tcp"} 0.0' in text
        assert 'softswitch_handler_seconds_bucket{kind="udp",le="0.5"} 1.0' in text
        assert 'softswitch_handler_seconds_bucket{kind="udp",le="0.25"} 0.0' in text
        assert 'softswitch_handler_seconds_sum{kind="udp"} 0.5' in text
        assert 'softswitch_handler_seconds_count{kind="http"}' in text
        assert sum(1 for e, _ in log.lines if e == "loop_stall") == 2
        udp.close()
