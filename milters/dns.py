"""The milter's DNS: one dnspython Resolver built from settings, injected into every stage.

dkimpy (`dnsfunc=`), the DMARC lookup and pyspf all go through `txt_lookup`/the resolver
built here, so tests point it at the DNS stub with `milter_dns_nameservers`/`milter_dns_port`.
Talks to: DNS servers. Tests: none directly; exercised against the DNS stub by
tests/milters/test_auth_stages.py (DKIM, DMARC and SPF lookups, a failing lookup as temperror)
and tests/e2e/test_milter_postfix.py.
"""

from __future__ import annotations

from typing import Any

from owlery.errors import TemporaryFailure
from owlery.settings import Duration, Int, StrList, int_range, setting

MILTER_DNS_NAMESERVERS = setting(
    "milter_dns_nameservers", StrList, None,
    "DNS servers (IP addresses) for DKIM, ARC, DMARC and SPF lookups. Unset: /etc/resolv.conf.")
MILTER_DNS_PORT = setting(
    "milter_dns_port", int_range(1, 65535), 53,
    "UDP/TCP port of milter_dns_nameservers.")
MILTER_DNS_TIMEOUT = setting(
    "milter_dns_timeout", Duration, 5,
    "Total time allowed for one DNS lookup (all servers and retries).", unit="s")
MILTER_DNS_TXT_SIZE_LIMIT = setting(
    "milter_dns_txt_size_limit", Int, 8192,
    "Largest TXT answer accepted (DKIM keys, DMARC records); larger answers count as none.", unit="bytes")


def build_resolver(settings: Any) -> Any:
    """A dnspython Resolver configured from settings."""
    import dns.resolver
    if settings.milter_dns_nameservers is None:
        resolver = dns.resolver.Resolver(configure=True)
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = list(settings.milter_dns_nameservers)
    resolver.port = settings.milter_dns_port
    resolver.timeout = settings.milter_dns_timeout
    resolver.lifetime = settings.milter_dns_timeout
    return resolver


class DnsTempError(TemporaryFailure):
    """A DNS server did not answer (SERVFAIL, timeout): the result is temperror, not none."""


def txt_records(resolver: Any, name: str, size_limit: int = 8192) -> list[bytes]:
    """TXT records of `name` (each record's strings joined). [] for NXDOMAIN/NODATA.

    Raises DnsTempError on timeouts and server failures.
    """
    import dns.exception
    import dns.name
    import dns.resolver
    try:
        answer = resolver.resolve(name, "TXT", raise_on_no_answer=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.resolver.NoNameservers as e:
        raise DnsTempError(f"DNS servers failed for {name}: {e}") from None
    except (dns.exception.Timeout, dns.resolver.LifetimeTimeout) as e:
        raise DnsTempError(f"DNS timeout for {name}: {e}") from None
    except dns.exception.DNSException as e:
        # A malformed name (label too long, empty label) has no records.
        if isinstance(e, (dns.name.EmptyLabel, dns.name.LabelTooLong, dns.name.NameTooLong)):
            return []
        raise DnsTempError(f"DNS error for {name}: {e}") from None
    out = []
    if answer.rrset is None:
        return []
    for rr in answer.rrset:
        data = b"".join(rr.strings)
        if len(data) <= size_limit:
            out.append(data)
    return out


def dkim_dnsfunc(resolver: Any, size_limit: int = 8192):
    """A `dnsfunc(name, timeout=5) -> bytes` for dkimpy over our resolver."""
    def dnsfunc(name: Any, timeout: float = 5) -> bytes:
        if isinstance(name, bytes):
            name = name.decode("ascii", "replace")
        records = txt_records(resolver, name.rstrip("."), size_limit)
        # dkimpy expects one record; several answers make the key ambiguous -> none.
        return records[0] if len(records) == 1 else b""
    return dnsfunc
