"""SPF evaluation on pyspf with an injected DNS lookup: the only module touching pyspf's global hook.

pyspf resolves through the module global `spf.DNSLookup`. We replace it once with a
dispatcher that answers from the lookup function bound to the *current thread* by
`evaluate()`, so every query (production resolver, test zone, conformance scenario) uses
exactly the lookup it was given, several threads at once, and never the system resolver
by accident. A lookup is `fn(name, qtype, timeout) -> [((name, type), value), ...]` in
pyspf's shapes (A/AAAA: text address, MX: (preference, name), PTR/CNAME: name, TXT:
tuple of bytes strings) and raises `spf.TempError` on timeout/SERVFAIL.
`owlery.spf_dns.dnspython_lookup(resolver)` adapts a configured dnspython Resolver.
Blocking: call `evaluate()` from a worker thread (policyd's pool).
Talks to: pyspf, DNS through the lookup. Tests: tests/policyd/test_spf_rfc7208.py,
tests/policyd/test_spf_check.py
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import spf

from owlery.spf_dns import dnspython_lookup  # noqa: F401  (re-exported: the check uses it)

Lookup = Callable[[str, str, float], list]

RESULTS = ("pass", "fail", "softfail", "neutral", "none", "permerror", "temperror")

_local = threading.local()


def _dispatch(name: str, qtype: str, strict: Any = True, timeout: float = 20) -> list:
    lookup = getattr(_local, "lookup", None)
    if lookup is None:
        raise spf.TempError("DNS: no resolver bound to this SPF evaluation")
    return lookup(name, qtype, timeout)


spf.DNSLookup = _dispatch


@dataclasses.dataclass(frozen=True)
class SpfResult:
    """One identity's verdict plus what headers need."""

    result: str                 # one of RESULTS
    identity: str               # "mailfrom" or "helo"
    explanation: str
    domain: str                 # the domain checked
    received_spf: str = ""      # Received-SPF value (without the field name)
    authentication_results: str = ""  # full "Authentication-Results: ..." line, when asked


def evaluate(lookup: Lookup, *, ip: str, sender: str, helo: str, query_time_limit: float,
             receiver: str = "<UNKNOWN>", authserv_id: str | None = None,
             default_explanation: str | None = None) -> SpfResult:
    """Check one identity: MAIL FROM `sender` (the null sender means postmaster@helo, as
    RFC 7208 2.4 says), or the HELO identity when `sender` is "" and helo is given.

    `query_time_limit` is the whole DNS time budget of this evaluation (RFC 7208 4.6.4
    suggests at least 20 s); past it the result is temperror.
    """
    _local.lookup = lookup
    try:
        q = spf.query(i=ip, s=sender, h=helo, receiver=receiver, timeout=query_time_limit,
                      querytime=query_time_limit)
        if default_explanation is not None:
            q.set_default_explanation(default_explanation)
        result, _code, explanation = q.check()
        received = ar = ""
        try:
            received = q.get_header(result, receiver=receiver)
            if authserv_id:
                ar = "Authentication-Results: " + q.get_header(
                    result, receiver=receiver, header_type="authres", aid=authserv_id
                ).split(":", 1)[1].strip()
        except (ValueError, AttributeError, TypeError):
            # pyspf cannot describe some early failures (no domain); headers stay minimal
            received = f"{result.capitalize()} identity={q.ident}; client-ip={ip}"
        return SpfResult(result, q.ident, explanation or "", q.d or "", received, ar)
    finally:
        _local.lookup = None


def build_dnspython_resolver(nameservers: tuple[str, ...], port: int, timeout: float) -> Any:
    """A dnspython Resolver on the given servers (empty: /etc/resolv.conf)."""
    import dns.resolver
    if nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = list(nameservers)
    else:
        resolver = dns.resolver.Resolver(configure=True)
    resolver.port = port
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver
