"""Is a client address in a list of networks: the answer kept per address.

Checks ask this for every request (greylist, SPF and rate-limit skip lists), and the same
clients come back all day; parsing the address and scanning the networks is the costly
part, so each `NetworkMatcher` remembers its answers (a bounded dict, cleared when full).
IPv4-mapped IPv6 addresses match as IPv4; text that is not an address matches nothing.
Talks to: nothing. Tests: tests/policyd/test_netmatch.py
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

_MEMO_MAX = 65536


class NetworkMatcher:
    __slots__ = ("networks", "_memo")

    def __init__(self, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]):
        self.networks = tuple(networks)
        self._memo: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: str) -> bool:
        got = self._memo.get(address)
        if got is None:
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            got = self._memo[address] = self._scan(address)
        return got

    def _scan(self, address: str) -> bool:
        return address_in(address, self.networks)


def address_in(address: str, networks: tuple) -> bool:
    """The scan itself, unremembered (for lists that change per request)."""
    if not networks or not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in n for n in networks if n.version == ip.version)
