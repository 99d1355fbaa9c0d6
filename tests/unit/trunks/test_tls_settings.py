"""A trunk's `tls:` block: read into settings, files checked when the config is (a wrong CA path, a file with
no certificate, a key that is not the certificate's), contradictions refused, every problem as file:line: key."""

from __future__ import annotations

import textwrap

import pytest

from softswitch.settings import ConfigError, parse_config
from softswitch.settings.trunks import register_proto
from tests.integration.test_settings import BASE
from tests.support.certs import Ca


def cfg(extra: str, path: str = "cc.yaml"):
    return parse_config(BASE + textwrap.dedent(extra), path)


def problems(extra: str, path: str = "cc.yaml"):
    with pytest.raises(ConfigError) as exc:
        cfg(extra, path)
    return {(line, key): msg for _, line, key, msg in exc.value.problems}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = Ca(d)
    return ca, ca.issue("node", ["node.test"]), Ca(d, "Other CA").issue("other", ["other.test"])


def test_tls_block_is_read_with_files_relative_to_the_config(pki, tmp_path):
    ca, node, _ = pki
    (tmp_path / "ca.pem").write_bytes(ca.pem.read_bytes())
    t = cfg(f"""\
        trunks:
          - name: carrier
            proxy: sbc.carrier.test
            transport: tls
            tls: {{ca_file: ca.pem, server_name: sbc.carrier.test, certificate: "{node.cert}", key: "{node.key}",
                  connect_timeout: 2s}}
        """, str(tmp_path / "cc.yaml")).trunks.trunks[0]
    assert t.target() == ("sbc.carrier.test", 5061)
    assert t.tls.ca_file == str(tmp_path / "ca.pem") and t.tls.server_name == "sbc.carrier.test"
    assert t.tls.certificate == (str(node.cert), str(node.key)) and t.tls.connect_timeout == 2.0
    assert not t.tls.insecure_skip_verify and t.tls.pins == ()


def test_pins_and_insecure_skip_verify(pki):
    _, node, _ = pki
    pinned = cfg(f"""\
        trunks: [{{name: c, proxy: 192.0.2.1, transport: tls, tls: {{pin_sha256: ["{node.sha256}"]}}}}]
        """).trunks.trunks[0]
    assert pinned.tls.pins == (bytes.fromhex(node.sha256.replace(":", "")),)
    lab = cfg("trunks: [{name: c, proxy: 192.0.2.1, transport: tls, tls: {insecure_skip_verify: true}}]\n")
    assert lab.trunks.trunks[0].tls.insecure_skip_verify


def test_a_sips_registrar_goes_over_tls():
    t = cfg("trunks: [{name: p, register: {registrar: 'sips:provider.test', username: u, password: p},\n"
            "          tls: {server_name: provider.test}}]\n").trunks.trunks[0]
    assert register_proto(t.register) == "tls" and t.transport == "udp" and t.tls.server_name == "provider.test"
    t = cfg("trunks: [{name: p, register: {registrar: 'sip:provider.test;transport=TLS', username: u, "
            "password: p}}]\n").trunks.trunks[0]
    assert register_proto(t.register) == "tls"


def test_every_tls_problem_with_line_and_key(pki, tmp_path):
    ca, node, other = pki
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    start = BASE.count("\n")
    got = problems(f"""\
        trunks:
          - name: a
            proxy: 192.0.2.1
            transport: tls
            tls:
              ca_file: /nonexistent/ca.pem
              pin_sha256: [abc]
              insecure_skip_verify: maybe
              conect_timeout: 3s
          - name: b
            proxy: 192.0.2.2
            transport: tls
            tls: {{ca_file: "{junk}", certificate: "{node.cert}", key: "{other.key}"}}
          - name: c
            proxy: 192.0.2.3
            transport: tcp
            tls: {{insecure_skip_verify: true}}
          - name: d
            proxy: 192.0.2.4
            transport: tls
            tls: {{insecure_skip_verify: true, ca_file: "{ca.pem}"}}
          - name: e
            proxy: 192.0.2.5
            transport: tls
            tls: {{certificate: "{node.cert}"}}
        """)

    def at(offset, key):
        return got[(start + offset, key)]
    assert "cannot read /nonexistent/ca.pem" in at(6, "trunks[0].tls.ca_file")
    assert "SHA-256 fingerprint" in at(7, "trunks[0].tls.pin_sha256[0]")
    assert "true or false" in at(8, "trunks[0].tls.insecure_skip_verify")
    assert "did you mean 'connect_timeout'?" in at(9, "trunks[0].tls.conect_timeout")
    assert "holds no CA certificate" in at(13, "trunks[1].tls.ca_file")
    assert "do not load together" in at(13, "trunks[1].tls.key")
    assert "only used with transport: tls" in at(17, "trunks[2].tls")
    assert "ca_file and pin_sha256 would be ignored" in at(21, "trunks[3].tls.insecure_skip_verify")
    assert "required with certificate" in at(25, "trunks[4].tls.key")
