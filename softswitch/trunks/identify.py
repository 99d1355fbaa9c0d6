"""Which trunk a request comes from, by its source address only.

A trunk lists IP addresses, networks (CIDR) and host names; host names are resolved by the shell and handed in
as addresses. Nothing a request says about itself makes it a trunk: an INVITE that names a trunk (a header, a
domain) from an address not on that trunk's list is treated as anyone's.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


def parse_address(text: str):
    """An ip_address or ip_network, or None for a host name (resolved elsewhere)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


@dataclass
class TrunkIndex:
    exact: dict = field(default_factory=dict)          # address text -> trunk name
    networks: list = field(default_factory=list)       # (network, trunk name), most specific first

    @classmethod
    def build(cls, trunks: dict[str, tuple[str, ...]]) -> TrunkIndex:
        """`trunks`: name -> addresses (IPs, CIDRs, already-resolved host names); the first trunk to list an
        address owns it."""
        idx = cls()
        for name, addresses in trunks.items():
            for text in addresses:
                a = parse_address(text)
                if a is None:
                    continue
                if isinstance(a, (ipaddress.IPv4Network, ipaddress.IPv6Network)) and a.num_addresses > 1:
                    idx.networks.append((a, name))
                else:
                    key = str(a.network_address if hasattr(a, "network_address") else a)
                    idx.exact.setdefault(key, name)
        idx.networks.sort(key=lambda x: -x[0].prefixlen)
        return idx

    def by_source(self, host: str) -> str | None:
        name = self.exact.get(host)
        if name is not None or not self.networks:
            return name
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return None
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
            name = self.exact.get(str(ip))
            if name is not None:
                return name
        for net, name in self.networks:
            if ip.version == net.version and ip in net:
                return name
        return None

    def identify(self, host: str, claimed: str | None = None) -> str | None:
        """The trunk a request from `host` belongs to; a request claiming another trunk (or one claiming a
        trunk from an address that is none) is nobody's."""
        name = self.by_source(host)
        if claimed is not None and claimed != name:
            return None
        return name
