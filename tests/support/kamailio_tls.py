"""Kamailio as a carrier over TLS (its tls module, Debian's kamailio-tls-modules): a registrar with digest auth
and an SBC in one, on UDP (the tests' own probes) and on one or more TLS ports, with the certificate the test
made. `tcp_accept_aliases` makes it honour the `alias` of a Via (RFC 5923): a request for the switch's Contact
goes back on the connection the switch opened. An INVITE that comes in over TLS is record-routed and relayed to
`callee` (a SIPp UAS over UDP: the called party in the telephone network); in-dialog requests follow their
route set; other requests go to the registered contact, as a provider's calls on a registration do."""

from __future__ import annotations

from pathlib import Path

from tools.kamailioserver import MODULES, Kamailio

CONFIG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=1
auto_aliases=no
enable_tls=yes
tcp_accept_aliases=yes
listen=udp:127.0.0.1:{port}
{tls_listen}
mpath="{modules}"
loadmodule "tls.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "siputils.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
modparam("tls", "certificate", "{certificate}")
modparam("tls", "private_key", "{key}")
modparam("tls", "tls_method", "TLSv1.2+")
modparam("tls", "verify_certificate", 0)
modparam("tls", "require_certificate", 0)
modparam("registrar", "min_expires", 2)
request_route {{
  xlog("L_NOTICE", "RX $rm over $proto from $si:$sp to port $Rp via=<$hdr(Via)> contact=<$hdr(Contact)>\\n");
  if (method == "OPTIONS" && $rU == $null) {{ sl_send_reply("200", "OK"); exit; }}
  if (has_totag()) {{
    if (loose_route()) {{ t_relay(); exit; }}
    if (method == "ACK") {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    sl_send_reply("404", "Not here");
    exit;
  }}
  if (method == "REGISTER") {{
    if ($au != "{user}" || !pv_www_authenticate("$td", "{password}", "0")) {{ www_challenge("$td", "1"); exit; }}
    if (!save("location")) {{ sl_reply_error(); exit; }}
    xlog("L_NOTICE", "REGISTERED $tu contact=$ct over $proto port $Rp\\n");
    exit;
  }}
  if (method == "INVITE" && $proto == "tls") {{
    record_route();
    $du = "sip:127.0.0.1:{callee};transport=udp";
    t_relay();
    exit;
  }}
  if (!lookup("location")) {{ sl_send_reply("404", "Not registered"); exit; }}
  t_relay();
}}
"""


class TlsCarrier(Kamailio):
    def __init__(self, workdir: Path, port: int, tls_ports: list[int], certificate: Path, key: Path,
                 callee: int = 9, user: str = "trunk1", password: str = "S3cret-Trunk") -> None:
        super().__init__(workdir, port, user, password)
        self.tls_ports = tls_ports
        listen = "\n".join(f"listen=tls:127.0.0.1:{p}" for p in tls_ports)
        self.config.write_text(CONFIG.format(port=port, tls_listen=listen, modules=MODULES, certificate=certificate,
                                             key=key, callee=callee, user=user, password=password))

    def received(self, method: str) -> list[str]:
        """The log lines of the requests of `method` this run received."""
        return [line for line in self.lines if f"RX {method} over" in line]
