"""A trunk's `tls:` block: how the node checks the carrier's certificate when it connects over TLS.

    transport: tls
    tls:
      ca_file: certs/carrier-ca.pem      # CAs to trust (PEM); default: the system's
      server_name: sbc.carrier.example   # checked in the certificate, sent as SNI; default: the proxy's (or the
                                         # registrar's) host as written
      pin_sha256: ["AB:CD:..."]          # instead of CAs: the certificate must be one of these (SHA-256 of DER)
      certificate: certs/node.pem        # ours, for carriers that ask for one (mutual TLS), with its key
      key: certs/node.key
      insecure_skip_verify: true         # lab use only: no check at all (logged at each connection)
      connect_timeout: 5s                # TCP connect plus handshake

Files are read when the config is checked, so a wrong path, a file with no certificate, or a key that does not
fit its certificate is a `file:line: key: message` error, not a failed connection later.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass

from . import reader as R
from .reader import Bad, Reader
from .source import Located

_PIN = re.compile(r"[0-9A-Fa-f]{64}|[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31}")


@dataclass(frozen=True)
class TrunkTls:
    ca_file: str | None = None
    server_name: str | None = None
    pins: tuple[bytes, ...] = ()
    certificate: tuple[str, str] | None = None
    insecure_skip_verify: bool = False
    connect_timeout: float = 5.0


def _ca_file(r: Reader, loc: Located, path: str) -> str:
    p = R.readable_file(r, loc, path)
    try:
        ssl.create_default_context(cafile=p)
    except (ssl.SSLError, ValueError, OSError):
        raise Bad(f"{p} holds no CA certificate in PEM form") from None
    return p


def _pin(r: Reader, loc: Located, path: str) -> bytes:
    v = R.text(r, loc, path).strip()
    if not _PIN.fullmatch(v):
        raise Bad(f"expected a SHA-256 fingerprint, 64 hex digits (colons allowed), got {v!r}")
    return bytes.fromhex(v.replace(":", ""))


def read_trunk_tls(r: Reader, loc: Located | None, path: str) -> TrunkTls:
    if loc is None:
        return TrunkTls()
    t = r.mapping(loc, path, {
        "ca_file": (_ca_file, None), "server_name": (R.host, None), "pin_sha256": (R.list_of(_pin, 1), None),
        "certificate": (R.readable_file, None), "key": (R.readable_file, None), "insecure_skip_verify": (R.boolean, False),
        "connect_timeout": (R.duration(0.1, 120), 5.0)})
    cert = None
    if (t["certificate"] is None) != (t["key"] is None) and loc.kind == "mapping":
        have, need = ("certificate", "key") if t["certificate"] else ("key", "certificate")
        if have in loc.items:
            r.error(loc.items[have].line, f"{path}.{need}", f"required with {have}")
    elif t["certificate"] is not None:
        try:
            ssl.create_default_context(ssl.Purpose.SERVER_AUTH).load_cert_chain(t["certificate"], t["key"])
            cert = (t["certificate"], t["key"])
        except (ssl.SSLError, ValueError, OSError) as exc:
            r.error(loc.items["key"].line, f"{path}.key",
                    f"certificate and key do not load together ({getattr(exc, 'reason', None) or exc})")
    if t["insecure_skip_verify"] and (t["ca_file"] or t["pin_sha256"]):
        r.error(loc.items["insecure_skip_verify"].line, f"{path}.insecure_skip_verify",
                "checks nothing, so ca_file and pin_sha256 would be ignored: give one or the other")
    if t["pin_sha256"] and t["ca_file"]:
        r.error(loc.items["pin_sha256"].line, f"{path}.pin_sha256",
                "a pinned certificate is trusted as it is: ca_file would be ignored, give one or the other")
    return TrunkTls(t["ca_file"], t["server_name"], tuple(t["pin_sha256"] or ()), cert,
                    bool(t["insecure_skip_verify"]), t["connect_timeout"] or 5.0)
