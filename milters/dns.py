"""The milter's TXT lookups (DKIM and ARC keys, DMARC records) over the core resolver.

The resolver is owlery.dns's, built once from the dns_* settings and injected into every
stage (`Services.resolver`); dkimpy gets `dkim_dnsfunc`, the DMARC lookup `txt_records`.
Tests point it at the DNS stub with `dns_nameservers`/`dns_port`.
Talks to: DNS servers. Tests: none directly; exercised against the DNS stub by
tests/milters/test_auth_stages.py (DKIM, DMARC and SPF lookups, a failing lookup as temperror)
and tests/e2e/test_milter_postfix.py.
"""

from __future__ import annotations

from typing import Any

from owlery.dns import failure_text
from owlery.errors import TemporaryFailure
from owlery.settings import Int, setting

MILTER_DNS_TXT_SIZE_LIMIT = setting(
    "milter_dns_txt_size_limit", Int, 8192,
    "Largest TXT answer accepted (DKIM keys, DMARC records); larger answers count as none.", unit="bytes")


class DnsTempError(TemporaryFailure):
    """A DNS server did not answer (SERVFAIL, timeout): the result is temperror, not none.

    Its text goes into Authentication-Results comments (DKIM, ARC, DMARC), so it says what
    failed for which name (owlery.dns.failure_text), never which server was asked; `detail`
    keeps dnspython's own text, which names it, for the log."""

    def __init__(self, text: str, detail: str = ""):
        super().__init__(text)
        self.detail = detail or text


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
    except dns.exception.DNSException as e:
        # A malformed name (label too long, empty label) has no records.
        if isinstance(e, (dns.name.EmptyLabel, dns.name.LabelTooLong, dns.name.NameTooLong)):
            return []
        raise DnsTempError(failure_text(name, e), detail=f"{name}: {e}") from None
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
