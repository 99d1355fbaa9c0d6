"""Trunks hot-reloaded: caps change in place keeping the calls counted, a new trunk's pinger starts, a removed
trunk's stops, and a file with a bad trunk changes nothing and says where."""

from __future__ import annotations

from softswitch.node import Node, credentials_from_config, options_from_config
from softswitch.settings import load_config
from tests.conftest import NodeThread, free_port
from tests.integration.test_trunks_kamailio import node_yaml, wait_for

FIRST = "trunks: [{name: carrier, addresses: [192.0.2.0/24], calls_per_second: 5, max_calls: 10}]\n"


def test_reload_changes_trunks_in_place(tmp_path):
    port, http, dead = free_port(), free_port(), free_port()
    path = tmp_path / "node.yaml"
    write = lambda trunks: path.write_text(node_yaml(tmp_path, port, http, trunks))    # noqa: E731
    write(FIRST)
    cfg = load_config(path)
    nt = NodeThread(lambda loop: Node(options_from_config(cfg), cfg, loop, credentials_from_config(cfg)))
    nt.start()
    try:
        svc = nt.call(lambda: nt.node.trunks)
        nt.call(lambda: svc.caps["carrier"].admit("call-1", 0.0))
        write("trunks:\n"
              "  - {name: carrier, addresses: [192.0.2.0/24], calls_per_second: 50, max_calls: 100}\n"
              f"  - {{name: backup, proxy: 127.0.0.1:{dead}, options: {{interval: 100ms, threshold: 2, "
              "timeout: 100ms}}\n")
        result = nt.call(lambda: nt.node.reload(str(path)))
        assert result["ok"] and sorted(result["changes"]["trunks"]) == ["+backup", "carrier"]
        caps = nt.call(lambda: svc.caps["carrier"])
        assert (caps.calls_per_second, caps.max_calls, caps.active) == (50, 100, {"call-1"})
        wait_for(lambda: "backup" in nt.call(lambda: svc.pingers), "the new trunk's pinger")
        wait_for(lambda: nt.call(lambda: svc.pingers["backup"].state) == "down", "the new trunk's pings to fail")
        assert nt.call(lambda: svc.trusted("192.0.2.7")) and not nt.call(lambda: svc.trusted("127.0.0.1"))
        # a bad trunk: the running trunks stay, and the answer names file, line and key
        write("trunks: [{name: carrier, adresses: [192.0.2.1]}]\n")
        bad = nt.call(lambda: nt.node.reload(str(path)))
        assert not bad["ok"] and any("trunks[0].adresses: unknown key (did you mean 'addresses'?)" in e
                                     for e in bad["errors"]), bad
        assert nt.call(lambda: sorted(t.name for t in svc.settings.trunks)) == ["backup", "carrier"]
        # the backup trunk removed: its pinger stops
        write(FIRST)
        assert nt.call(lambda: nt.node.reload(str(path)))["changes"]["trunks"] == ["-backup", "carrier"]
        assert nt.call(lambda: list(svc.pingers)) == []
        assert nt.call(lambda: svc.caps["carrier"].calls_per_second) == 5
    finally:
        nt.stop()
