"""Calls through the ACD with SIPp peers: customers dialling an access code and auto-answering agent phones."""

from __future__ import annotations

import os
import subprocess
import time

from tests.support.cc import ACCOUNTS, PASSWORDS, Api, agent_on_break, cc_node
from tests.conftest import free_port
from tests.support.sipclient import UdpClient
from tests.support.sipp import SCENARIOS, SIPP, run_sipp
from tools.agents_load import register_agents, sign_in_all

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "sipp")


def test_sipp_customers_reach_sipp_agents(tmp_path):
    with cc_node(tmp_path, wrap_up="0s") as (nt, port, http):
        uas_port = free_port()
        # The agents hang up, 200 ms after answering, and each customer stays until the switch hangs up on
        # it: every customer reaches an agent however slowly a busy host gets there (a customer that hung
        # up after a fixed time could leave before being offered, and count as abandoned).
        uas = subprocess.Popen([SIPP, "-sf", f"{DATA}/agent_hangs_up.xml", "-i", "127.0.0.1", "-p", str(uas_port),
                                "-nostdin", "-trace_err", "-aa"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            assert register_agents(port, [(u, PASSWORDS[u]) for u in ("70001", "70002")], "cc.test", uas_port) == 2
            assert sign_in_all(http, "acme_sam", ACCOUNTS["acme_sam"], ["1001", "1002"]) == 2
            res = run_sipp(f"{DATA}/customer_until_bye.xml", port, calls=60, rate=20, workdir=str(tmp_path),
                           extra=["-s", "4001", "-l", "2"], timeout=60)
            assert (res.successful, res.failed) == (60, 0), res.stderr[-400:]
            api = Api(http)
            api.login("acme_sam")
            deadline = time.monotonic() + 20     # the board counts from events handled just after the call
            while True:
                q = api.call("GET", "/api/queues/support", expect=200)[1]
                if q["answered"] == 60 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert q["answered"] == 60 and q["abandoned"] == 0 and q["waiting"] == 0, q
            assert {a["id"]: a["answered"] for a in api.call("GET", "/api/agents")[1]}["1001"] >= 20
            deadline = time.monotonic() + 20
            while nt.call(lambda: len(nt.node.calls.calls)) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert nt.call(lambda: len(nt.node.calls.calls)) == 0       # nothing left behind
            assert nt.call(lambda: len(nt.node.calls.dialogs)) == 0
        finally:
            uas.kill()


def test_past_capacity_new_calls_get_503_with_retry_after(tmp_path):
    with cc_node(tmp_path) as (nt, port, http):
        nt.call(lambda: setattr(nt.node.calls, "max_calls", 3))
        api = agent_on_break(port, http)      # callers stay queued and count as calls in progress
        client = UdpClient(("127.0.0.1", port))

        def invite(i: int) -> bytes:
            return (f"INVITE sip:4001@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{client.addr[1]};"
                    f"branch=z9hG4bK-ov{i};rport\r\nMax-Forwards: 70\r\nFrom: <sip:c{i}@x.test>;tag=c{i}\r\n"
                    f"To: <sip:4001@cc.test>\r\nCall-ID: ov-{i}\r\nCSeq: 1 INVITE\r\n"
                    f"Contact: <sip:c{i}@127.0.0.1:{client.addr[1]}>\r\nContent-Length: 0\r\n\r\n").encode()
        try:
            for i in range(4):
                client.send(invite(i))
            finals = {}
            for m in client.recv_until(lambda got: len({x.call_id for x in got if x.status >= 200}) == 4):
                if m.status >= 200:
                    finals.setdefault(m.call_id, m)
            assert sorted(m.status for m in finals.values()) == [200, 200, 200, 503]
            refused = finals["ov-3"]
            assert refused.get("Retry-After") == "5"
            assert nt.call(lambda: nt.node.calls.stats["overloaded"]) == 1
            assert api.call("GET", "/api/queues/support")[1]["waiting"] == 3
        finally:
            client.close()
