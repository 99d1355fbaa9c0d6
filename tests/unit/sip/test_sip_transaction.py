"""The four RFC 3261 s. 17 transaction machines: every (state, event) pair, and timer schedules with a fake clock."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from softswitch.sip.message import make_response
from softswitch.sip.parser import parse_message
from softswitch.sip.transaction import (INITIAL, LIVE_TIMERS, NETWORK_EVENTS, TABLES, Transaction,
                                        TransactionLayer, TransactionStateError)

TU_EVENTS = {"tu_1xx", "tu_2xx", "tu_final"}
TIMER_EVENTS = {f"timer_{n}" for n in "ABDEFGHIJKLM"}
ALL_EVENTS = sorted(NETWORK_EVENTS | TU_EVENTS | TIMER_EVENTS)


def request(method="INVITE", branch="z9hG4bK-1"):
    return parse_message((f"{method} sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n"
                          f"From: <sip:a@b>;tag=f\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: cid\r\n"
                          f"CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode())


def states(kind):
    return sorted({s for s, _ in TABLES[kind]} | {INITIAL[kind]})


PAIRS = [(k, s, e) for k in TABLES for s in states(k) for e in ALL_EVENTS]


@pytest.mark.parametrize("kind,state,event", PAIRS)
def test_every_state_event_pair(kind, state, event):
    layer = TransactionLayer()
    req = request("INVITE" if kind.startswith("invite") else "OPTIONS")
    tx = Transaction(kind, ("k",), req, "target", False, 0.0)
    (layer.server if kind.endswith("server") else layer.client)[tx.key] = tx
    tx.state = state
    tx.last = b"LAST"
    resp = make_response(req, 486)
    entry = TABLES[kind].get((state, event))
    if entry is None:
        if event in TU_EVENTS:
            with pytest.raises(TransactionStateError):
                layer._event(tx, event, 1.0, resp)
        else:
            layer._event(tx, event, 1.0, resp)  # peer input and stale timers never raise
        assert tx.state == state
        return
    layer._event(tx, event, 1.0, resp)
    new, actions = entry
    # zero-delay timers may have moved a reliable transaction on; on UDP the state is exactly the table's
    assert tx.state == new
    sent = [e for e in layer.effects if e[0] == "send"]
    wants_send = any(a in ("send", "resend", "send_ack") for a in actions)
    assert bool(sent) == wants_send
    if new == "terminated":
        assert tx.key not in layer.server and tx.key not in layer.client
    for a in actions:
        if a.startswith("arm_"):
            assert a[4:] in LIVE_TIMERS[kind].get(new, set())


def test_tables_cover_every_network_event_in_live_states():
    for kind, table in TABLES.items():
        net = {"request", "ack", "transport_error"} if kind.endswith("server") else \
              {"rx_1xx", "rx_2xx", "rx_final", "transport_error"}
        for s in states(kind):
            if s == "terminated":
                continue
            for e in net:
                if kind == "non_invite_server" and e == "ack":
                    continue
                assert (s, e) in table, (kind, s, e)


def test_invite_client_udp_retransmission_schedule():
    layer = TransactionLayer()
    req = request()
    layer.send_request(req, "t", False, 0.0)
    sends = [0.0]
    layer.effects.clear()
    now = 0.0
    while layer.client:
        d = layer.next_deadline()
        now = d
        layer.poll(now)
        sends += [now for e in layer.effects if e[0] == "send"]
        timeouts = [e for e in layer.effects if e[0] == "tu"]
        layer.effects.clear()
    # Timer A doubles from T1 (0.5, 1, 2, 4 ...) until Timer B (64*T1 = 32 s) ends the transaction
    assert sends[:6] == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5]
    assert now == pytest.approx(32.0)


def test_non_invite_client_caps_at_t2_and_times_out():
    layer = TransactionLayer()
    events = []
    layer.send_request(request("OPTIONS"), "t", False, 0.0, listener=lambda e, tx, m: events.append(e))
    layer.effects.clear()
    sends = [0.0]
    now = 0.0
    while layer.client:
        now = layer.next_deadline()
        layer.poll(now)
        for e in layer.effects:
            if e[0] == "send":
                sends.append(now)
            else:
                e[1](e[2], e[3], e[4])
        layer.effects.clear()
    gaps = [round(b - a, 3) for a, b in zip(sends, sends[1:])]
    assert gaps[:5] == [0.5, 1.0, 2.0, 4.0, 4.0] and max(gaps) == 4.0
    assert events == ["timeout"] and now == pytest.approx(32.0)


def test_invite_server_error_response_retransmits_until_ack():
    layer = TransactionLayer()
    req = request()
    status, tx = layer.receive_request(req, "t", False, 0.0)
    assert status == "new"
    layer.respond(tx, make_response(req, 486, to_tag="x"), 0.0)
    assert tx.state == "completed"
    layer.effects.clear()
    layer.poll(0.5)
    assert [e[0] for e in layer.effects] == ["send"]  # Timer G
    layer.effects.clear()
    ack = request("ACK")
    assert layer.receive_request(ack, "t", False, 0.6)[0] == "absorbed"
    assert tx.state == "confirmed"
    layer.poll(1.5)
    assert not layer.effects  # G is no longer live
    layer.poll(0.6 + 5.0)     # Timer I = T4
    assert not layer.server


def test_retransmitted_request_gets_the_same_response():
    layer = TransactionLayer()
    req = request("OPTIONS")
    _, tx = layer.receive_request(req, "t", False, 0.0)
    layer.respond(tx, make_response(req, 200), 0.0)
    first = layer.effects[-1][1]
    layer.effects.clear()
    status, same = layer.receive_request(request("OPTIONS"), "t", False, 1.0)
    assert status == "retransmission" and same is tx and layer.effects == [("send", first, "t")]
    layer.poll(32.1)
    assert not layer.server


def test_reliable_transport_terminates_without_timers():
    layer = TransactionLayer()
    req = request("OPTIONS")
    _, tx = layer.receive_request(req, "conn", True, 0.0)
    layer.respond(tx, make_response(req, 200), 0.0)
    assert not layer.server and len(layer.timers) == 0


def test_non_2xx_ack_generated_by_client():
    layer = TransactionLayer()
    req = request()
    layer.send_request(req, "t", True, 0.0)
    layer.effects.clear()
    resp = parse_message(make_response(req, 486, to_tag="zz").serialize())
    layer.receive_response(resp, 0.1)
    ack = parse_message(layer.effects[0][1])
    assert ack.method == "ACK" and ack.to.tag == "zz" and ack.top_via.branch == "z9hG4bK-1"
    assert ack.cseq == (1, "ACK")
    assert not layer.client  # Timer D is 0 on a reliable transport


def test_accepted_invite_server_keeps_neither_request_nor_bytes():
    """A leg holds its INVITE transaction for the whole call: past the 2xx it keeps nothing of the message,
    and a retransmitted INVITE is still absorbed (the TU re-sends the 2xx)."""
    layer = TransactionLayer()
    req = request()
    _, tx = layer.receive_request(req, "t", False, 0.0)
    layer.respond(tx, make_response(req, 200, to_tag="x"), 0.0)
    assert tx.state == "accepted" and tx.request is None and tx.last is None
    assert [e[0] for e in layer.effects] == ["send"]
    layer.effects.clear()
    assert layer.receive_request(request(), "t", False, 1.0)[0] == "retransmission"
    assert not layer.effects
    layer.respond(tx, make_response(req, 200, to_tag="x"), 1.1)      # the TU may still send its 2xx here
    assert [e[0] for e in layer.effects] == ["send"] and tx.last is None


def test_answered_client_transactions_keep_neither_request_nor_bytes():
    layer = TransactionLayer()
    req = request()
    tx = layer.send_request(req, "t", False, 0.0)
    resp = parse_message(make_response(req, 200, to_tag="zz").serialize())
    layer.receive_response(resp, 0.1)
    assert tx.state == "accepted" and tx.request is None and tx.last is None
    layer.effects.clear()
    layer.poll(0.5)                       # Timer A is no longer live: nothing to re-send
    assert not layer.effects
    # A non-2xx: its ACK is kept as bytes and re-sent for every copy of the response.
    req2 = request(branch="z9hG4bK-2")
    tx2 = layer.send_request(req2, "t", False, 0.0)
    err = parse_message(make_response(req2, 486, to_tag="e").serialize())
    layer.receive_response(err, 0.1)
    assert tx2.state == "completed" and tx2.request is None and tx2.last is None
    layer.effects.clear()
    layer.receive_response(err, 0.2)
    assert [e[0] for e in layer.effects] == ["send"] and parse_message(layer.effects[0][1]).method == "ACK"


@given(st.lists(st.sampled_from(["retx", "1xx", "final", "poll"]), max_size=12))
def test_server_transactions_always_end(ops):
    """Whatever order the TU and the network act in, a transaction never outlives its timers."""
    layer = TransactionLayer()
    req = request("OPTIONS")
    _, tx = layer.receive_request(req, "t", False, 0.0)
    now = 0.0
    finished = False
    for op in ops:
        now += 0.3
        if op == "retx":
            layer.receive_request(request("OPTIONS"), "t", False, now)
        elif op == "1xx" and not finished:
            layer.respond(tx, make_response(req, 100), now)
        elif op == "final" and not finished:
            layer.respond(tx, make_response(req, 200), now)
            finished = True
        else:
            layer.poll(now)
    if not finished:
        layer.respond(tx, make_response(req, 200), now)
    layer.poll(now + 64)
    assert not layer.server
