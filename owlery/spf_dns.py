"""DNS answers for pyspf from a dnspython Resolver: the one adapter the policy daemon and the milter share.

pyspf wants `lookup(name, qtype, timeout) -> [((name, qtype), value), ...]` and a
`spf.TempError` for trouble; NXDOMAIN and "no answer" are empty lists (RFC 7208 4.4).
Talks to: the injected resolver only. Tests: tests/policyd/test_spf_rfc7208.py,
tests/milters/test_auth_stages.py (both drive it through their SPF checks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Lookup = Callable[[str, str, float], list]


def dnspython_lookup(resolver: Any) -> Lookup:
    """A pyspf-shaped lookup over a dnspython Resolver (nameservers and port set by the caller)."""
    import dns.exception
    import dns.resolver
    import spf

    def lookup(name: str, qtype: str, timeout: float) -> list:
        try:
            answer = resolver.resolve(name, qtype, lifetime=max(0.1, timeout), raise_on_no_answer=False,
                                      search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as e:
            # Timeouts and SERVFAIL are temporary: temperror, never a pass or a fail.
            raise spf.TempError(f"DNS {e}") from None
        out: list = []
        for rdata in answer.rrset or ():
            if qtype in ("A", "AAAA"):
                out.append(((name, qtype), rdata.address))
            elif qtype == "MX":
                out.append(((name, qtype), (rdata.preference, rdata.exchange.to_text(omit_final_dot=True))))
            elif qtype in ("PTR", "CNAME"):
                out.append(((name, qtype), rdata.target.to_text(omit_final_dot=True)))
            elif qtype in ("TXT", "SPF"):
                out.append(((name, qtype), tuple(rdata.strings)))
        return out
    return lookup
