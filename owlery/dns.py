"""The one DNS and SPF adapter: the configured dnspython Resolver, pyspf's DNS hook and SPF evaluation.

Every DNS lookup of the policy daemon and the milter goes through the Resolver that
`build_resolver(settings)` makes from the `dns_*` settings (servers, port, time per lookup).
SPF: pyspf resolves through its module global `spf.DNSLookup`; `evaluate()` points that
global at one dispatcher, which answers from the lookup bound to the *current thread* for
the evaluation, so every query (production resolver, test zone, conformance scenario) uses
exactly the lookup it was given, several threads at once. With no lookup bound it answers
temperror, never the system resolver by accident. A lookup is `fn(name, qtype, timeout) ->
[((name, type), value), ...]` in pyspf's shapes (A/AAAA: text address, MX: (preference,
name), PTR/CNAME: name, TXT: tuple of bytes strings) and raises `spf.TempError` on
timeout/SERVFAIL; NXDOMAIN and "no answer" are empty lists (RFC 7208 4.4).
`dnspython_lookup(resolver)` makes one from a Resolver. Blocking: call `evaluate()` from a
worker thread (policyd's pool, libmilter's connection thread). Light at import: dnspython
and pyspf load when first used, so reading the settings imports neither.
Talks to: DNS servers (dnspython), pyspf. Tests: tests/core/test_dns.py,
tests/policyd/test_spf_rfc7208.py, tests/policyd/test_spf_check.py, tests/milters/test_auth_stages.py
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from owlery.settings import Duration, SettingType, int_range, list_of, setting


def _parse_address(v: Any) -> str:
    try:
        return str(ipaddress.ip_address(v if isinstance(v, str) else ""))
    except ValueError:
        raise ValueError(f"expected an IP address, got {v!r}") from None


DNS_NAMESERVERS = setting(
    "dns_nameservers", list_of(SettingType("IP address", _parse_address), name="list of IP addresses"), [],
    "DNS servers (IP addresses) asked by every lookup: SPF (policy daemon and milter), DKIM, ARC, "
    "DMARC, DNS blocklists. Empty: those of /etc/resolv.conf.")
DNS_PORT = setting(
    "dns_port", int_range(1, 65535), 53,
    "UDP/TCP port of dns_nameservers.")
DNS_TIMEOUT = setting(
    "dns_timeout", Duration, 5,
    "Longest time one DNS lookup may take (all servers and retries). An SPF evaluation also "
    "stops at its whole time budget (spf_query_time_limit, milter_spf_query_time_limit).", unit="s")

DNS_CACHE_ENTRIES = setting(
    "dns_cache_entries", int_range(0, 10_000_000), 10000,
    "DNS answers kept in each process (positive and negative, each for its own TTL), so SPF "
    "and the other checks do not ask again for a sender domain seen a moment ago: a lookup "
    "through dnspython costs about 0.4 ms of CPU even when the local resolver has it cached. "
    "0: ask the servers every time.")

Lookup = Callable[[str, str, float], list]

RESULTS = ("pass", "fail", "softfail", "neutral", "none", "permerror", "temperror")


def build_resolver(settings: Any) -> Any:
    """A dnspython Resolver configured from the dns_* settings."""
    import dns.resolver
    if settings.dns_nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = list(settings.dns_nameservers)
    else:
        resolver = dns.resolver.Resolver(configure=True)
    resolver.port = settings.dns_port
    resolver.timeout = settings.dns_timeout
    resolver.lifetime = settings.dns_timeout
    if settings.dns_cache_entries > 0:
        # Thread-safe; an answer is dropped when its TTL runs out (NXDOMAIN for the SOA's minimum).
        resolver.cache = dns.resolver.LRUCache(settings.dns_cache_entries)
    return resolver


def dnspython_lookup(resolver: Any) -> Lookup:
    """A pyspf-shaped lookup over a dnspython Resolver; each query may take pyspf's time left."""
    import dns.exception
    import dns.resolver
    import spf

    def lookup(name: str, qtype: str, timeout: float) -> list:
        try:
            answer = resolver.resolve(name, qtype, lifetime=max(0.1, timeout), raise_on_no_answer=False,
                                      search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout:
            # Timeouts and SERVFAIL are temporary: temperror, never a pass or a fail. The text
            # reaches the sender in a 4xx reply: what failed for which name, never our servers.
            raise spf.TempError(f"DNS timeout for {name}") from None
        except dns.resolver.NoNameservers:
            raise spf.TempError(f"DNS server failure for {name}") from None
        except dns.exception.DNSException:
            raise spf.TempError(f"DNS error for {name}") from None
        return _records(name, qtype, answer)
    return lookup


def _records(name: str, qtype: str, answer: Any) -> list:
    """A dnspython Answer in pyspf's shapes."""
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


class NotCached(Exception):
    """A cache-only lookup (`cached_lookup`) has no answer for this name and type."""


def cached_lookup(resolver: Any) -> Callable[[list, list], Lookup] | None:
    """For a Resolver with a cache (dns_cache_entries): `make(missed, expiries)` gives a
    pyspf-shaped lookup that answers only from that cache, exactly as `resolve` would from it
    (the records, NXDOMAIN and "no answer" included, each until its TTL; the time each answer
    it used expires is appended to `expiries`), and on a miss appends the name to `missed`
    and raises NotCached. An evaluation that missed must be done again
    through `dnspython_lookup` (pyspf swallows some lookup errors, e.g. for exp=, so look at
    `missed`, not only at the exception). None when the resolver keeps no cache.

    Answers found are also kept already converted, by the name as asked and type, until
    the same expiry: a message from a new client of a known domain then costs no name
    parsing or cache-key hashing in dnspython (about a third of an SPF evaluation from
    the cache). One thread only: the lookups `make` gives share that memo unlocked.
    """
    cache = getattr(resolver, "cache", None)
    if not cache:
        return None
    import dns.name
    import dns.rcode
    import dns.rdataclass
    import dns.rdatatype
    memo: dict[tuple[str, str], tuple[float, list]] = {}
    memo_max = max(1, getattr(cache, "max_size", 10000))

    def remember(key: tuple[str, str], expiration: float, records: list) -> list:
        if len(memo) >= memo_max:
            del memo[next(iter(memo))]      # the oldest entry: bounded like the cache it mirrors
        memo[key] = (expiration, records)
        return list(records)

    def make(missed: list, expiries: list) -> Lookup:
        def lookup(name: str, qtype: str, timeout: float) -> list:
            key = (name, qtype)
            hit = memo.get(key)
            if hit is not None:
                if time.time() < hit[0]:     # dnspython's own test: live while now < expiration
                    expiries.append(hit[0])
                    return list(hit[1])
                del memo[key]
            try:
                qname = dns.name.from_text(name)
                rdtype = dns.rdatatype.from_text(qtype)
            except Exception:  # noqa: BLE001 - a name dnspython cannot take: let resolve() say why
                missed.append(name)
                raise NotCached(name) from None
            answer = cache.get((qname, rdtype, dns.rdataclass.IN))
            if answer is not None:
                expiries.append(answer.expiration)
                return remember(key, answer.expiration, _records(name, qtype, answer))
            nx = cache.get((qname, dns.rdatatype.ANY, dns.rdataclass.IN))
            if nx is not None and nx.response.rcode() == dns.rcode.NXDOMAIN:
                expiries.append(nx.expiration)
                return remember(key, nx.expiration, [])
            missed.append(name)
            raise NotCached(name)
        return lookup
    return make


_bound = threading.local()


def _dispatch(name: str, qtype: str, strict: Any = True, timeout: float = 20) -> list:
    """pyspf's `DNSLookup`: the lookup bound to this thread's evaluation, else temperror."""
    lookup = getattr(_bound, "lookup", None)
    if lookup is None:
        import spf
        raise spf.TempError("DNS: no resolver bound to this SPF evaluation")
    return lookup(name, qtype, timeout)


def _checkable(domain: str) -> bool:
    """Whether check_host() may look `domain` up: a multi-label name whose labels are 1 to 63
    characters, nothing an address literal or a broken mailbox leaves behind (RFC 7208 4.3)."""
    labels = domain[:-1].split(".") if domain.endswith(".") else domain.split(".")
    return (len(labels) > 1 and len(domain) <= 253 and all(0 < len(label) <= 63 for label in labels)
            and not any(c in domain for c in '[]@" \t\\'))


class SpfResult(NamedTuple):
    """One identity's verdict plus what headers need. A tuple of strings: a cache keeps its
    values as plain tuples (`tuple(r)`, back with `SpfResult._make`), which the cyclic
    collector need not walk (policyd/checks/spf.py says why that matters)."""

    result: str                 # one of RESULTS
    identity: str               # "mailfrom" or "helo"
    explanation: str
    domain: str                 # the domain checked
    received_spf: str = ""      # Received-SPF value (without the field name)
    authentication_results: str = ""  # full "Authentication-Results: ..." line, when asked


def evaluate(lookup: Lookup, *, ip: str, sender: str, helo: str, query_time_limit: float,
             receiver: str = "<UNKNOWN>", authserv_id: str | None = None,
             default_explanation: str | None = None, headers: bool = True) -> SpfResult:
    """Check one identity: MAIL FROM `sender` (the null sender means postmaster@helo, as
    RFC 7208 2.4 says), or the HELO identity when `sender` is "" and helo is given.

    `query_time_limit` is the whole DNS time budget of this evaluation (RFC 7208 4.6.4
    suggests at least 20 s); past it the result is temperror. A result pyspf names outside
    RESULTS counts as permerror. `headers=False` leaves received_spf and
    authentication_results empty, for a caller that will not write them (building them is
    about a fifth of an evaluation from cached DNS answers).
    """
    import spf
    spf.DNSLookup = _dispatch
    _bound.lookup = lookup
    try:
        q = spf.query(i=ip, s=sender, h=helo, receiver=receiver, timeout=query_time_limit,
                      querytime=query_time_limit)
        if sender.count("@") > 1:
            # pyspf splits at the first "@"; a quoted local part may hold one ("a@b"@example.org),
            # and the domain is what follows the last (RFC 5321 4.1.2, RFC 7208 4.3).
            local, domain = sender.rsplit("@", 1)
            q.l, q.o, q.d = local or "postmaster", domain, domain
        if default_explanation is not None:
            q.set_default_explanation(default_explanation)
        if _checkable(q.d):
            result, _code, explanation = q.check()
        else:
            # RFC 7208 4.3: a malformed or single-label domain (an IP-literal HELO, a sender
            # without a domain) is "none" at once; pyspf would ask DNS for it.
            q.mechanism = None
            result, explanation = "none", ""
        received = ar = ""
        try:
            if headers:
                received = q.get_header(result, receiver=receiver)
                if authserv_id:
                    ar = "Authentication-Results: " + q.get_header(
                        result, receiver=receiver, header_type="authres", aid=authserv_id
                    ).split(":", 1)[1].strip()
        except (ValueError, AttributeError, TypeError):
            # pyspf cannot describe some early failures (no domain); headers stay minimal
            received = f"{result.capitalize()} identity={q.ident}; client-ip={ip}"
        result = result.lower()
        return SpfResult(result if result in RESULTS else "permerror", q.ident, explanation or "", q.d or "",
                         received, ar)
    finally:
        _bound.lookup = None
