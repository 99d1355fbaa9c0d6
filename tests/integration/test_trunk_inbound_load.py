"""SIPp as the carrier at a steady rate, the path benchmarks/trunk_bench.py drives at 200 calls/s: a node
(`softswitch serve`) takes calls over a trunk trusted by its address into a skill queue of SIPp agent phones,
the DID in the carrier's format and the caller's number only in P-Asserted-Identity; then the same INVITEs come
from an address that is no trunk's. The rate is one a busy two-core machine keeps; nothing here is timed."""

from __future__ import annotations

import pytest

from benchmarks.trunk_bench import inbound
from tests.support.sipp import SIPP

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp missing: run tools/install-sysdeps.sh")


def test_a_carriers_calls_all_reach_agents_with_the_pai_number_and_untrusted_copies_are_challenged(tmp_path):
    # each customer stays 1 s after the switch answers: an agent must answer within it, which a busy machine
    # does (with 300 ms, one call in 80 was hung up before its agent's 200 arrived); 60 agents for 20 at once
    f = inbound(rate=20, seconds=4, agents=60, hold_ms=1000, work=str(tmp_path), untrusted=20)
    assert (f["ok"], f["failed"], f["overloaded"]) == (80, 0, 0)
    assert f["by_agent"] == 80                       # every call answered by an agent before its caller left
    assert f["cdrs"] == f["cdrs_with_pai"] == 80      # "Customer N" <sip:+4930123N@carrier.test> in every CDR
    assert (f["challenged"], f["untrusted_failed"]) == (20, 0)
