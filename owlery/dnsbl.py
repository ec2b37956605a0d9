"""DNS allow/blocklists, postscreen-style: the site grammar, reply filters, error codes, query names, scores.

One parser for `domain[=filter][*weight]` entries with Postfix's own grammar
(postconf(5) postscreen_dnsbl_sites; the filter is ip_match(3)'s IPv4 pattern: four fields,
each a number 0..255 or a `[...]` list of `;`-separated numbers and `lo..hi` ranges), used by
policyd's dnsbl check (policyd/checks/dnsbl.py) and the milter's spam stage (RBL_<ZONE>).
Answers that are list errors never count: anything outside 127.0.0.0/8, any 127.255.255.0/24
(Spamhaus's "query refused / typo / rate limited" codes), a list's own documented "you are
blocked" code (KNOWN_ERROR_ANSWERS) and text that is no IPv4 address. Each entry adds its
weight at most once, as postscreen does; negative weights allowlist.
`lookup_a()` is the one blocking A query (through the owlery.dns resolver): addresses and TTL,
NXDOMAIN/no data as "not listed" with the negative TTL, timeouts and server failures as an
error (never a listing); `ListHealth` skips a list after failed lookups in a row. Sans-I/O
otherwise; dnspython loads only in `lookup_a`.
Talks to: DNS (lookup_a only). Tests: tests/policyd/test_dnsbl.py, tests/policyd/test_dnsbl_milter.py
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from owlery.settings import SettingType

_ERROR_NET = ipaddress.ip_network("127.255.255.0/24")
_LOOPBACK_NET = ipaddress.ip_network("127.0.0.0/8")

# Codes a list documents as "your resolver is blocked" (not a listing), by list domain suffix.
KNOWN_ERROR_ANSWERS: Mapping[str, frozenset[str]] = {
    "dnswl.org": frozenset({"127.0.0.255"}),          # list.dnswl.org: querier over its limit
    "dbl.spamhaus.org": frozenset({"127.0.1.255"}),   # DBL asked about an IP address
    "zrd.spamhaus.org": frozenset({"127.0.1.255"}),
}

_WEIGHT_RE = re.compile(r"^[+-]?[0-9]+$")
_WEIGHT_MAX = 2**31 - 1
_LABEL_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


class FilterError(ValueError):
    """A reply filter that Postfix's ip_match parser would refuse."""


@dataclasses.dataclass(frozen=True)
class AddressFilter:
    """A parsed reply filter: per octet, the (lo, hi) ranges it accepts."""

    fields: tuple[tuple[tuple[int, int], ...], ...]
    text: str

    def matches(self, address: str) -> bool:
        try:
            octets = ipaddress.IPv4Address(address).packed
        except ValueError:
            return False
        return all(any(lo <= o <= hi for lo, hi in ranges) for o, ranges in zip(octets, self.fields))

    def __str__(self) -> str:
        return self.text


def _tokens(pattern: str) -> list[tuple[str, int]]:
    """("N", value) for a decimal number (("E", v) past 255), else (char, 0) per character."""
    out: list[tuple[str, int]] = []
    i = 0
    while i < len(pattern):
        if "0" <= pattern[i] <= "9":
            j = i
            while j < len(pattern) and "0" <= pattern[j] <= "9":
                j += 1
            value = int(pattern[i:j])
            out.append(("N" if value <= 255 else "E", value))
            i = j
        else:
            out.append((pattern[i], 0))
            i += 1
    return out


def parse_filter(pattern: str) -> AddressFilter:
    """An ip_match(3) IPv4 pattern, e.g. `127.0.0.[2..11]` or `127.0.[0..255].[1;3]`.

    Raises FilterError with the reason Postfix gives. As in Postfix, `[...]` around the
    whole pattern is dropped, a range needs lo <= hi, and nothing may follow the fourth field.
    """
    text = pattern
    if pattern.startswith("["):
        level, end = 0, -1
        for i, c in enumerate(pattern):
            if c == "[":
                level += 1
            elif c == "]":
                level -= 1
                if level == 0:
                    end = i
                    break
        if end < 0:
            raise FilterError(f'missing "]" character in {text!r}')
        if end == len(pattern) - 1:
            pattern = pattern[1:-1]
    if not pattern:
        raise FilterError("empty address pattern")
    toks = _tokens(pattern)
    pos = 0

    def take() -> tuple[str, int]:
        nonlocal pos
        if pos >= len(toks):
            return ("", 0)
        pos += 1
        return toks[pos - 1]

    fields: list[tuple[tuple[int, int], ...]] = []
    while True:
        kind, value = take()
        if kind == "N":
            fields.append(((value, value),))
        elif kind == "[":
            ranges: list[tuple[int, int]] = []
            while True:
                kind, lo = take()
                if kind != "N":
                    raise FilterError(f"need decimal number 0..255 in {text!r}")
                hi = lo
                after = take()
                if after[0] == ".":
                    dot, end = take(), take()
                    if dot[0] != "." or end[0] != "N" or lo > end[1]:
                        raise FilterError(f"numeric range error in {text!r}")
                    hi = end[1]
                    after = take()
                ranges.append((lo, hi))
                if after[0] == ";":
                    continue
                if after[0] == "]":
                    break
                raise FilterError(f'need ";" or "]" in {text!r}')
            fields.append(tuple(ranges))
        else:
            raise FilterError(f'need decimal number 0..255 or "[" in {text!r}')
        if len(fields) == 4:
            if pos < len(toks):
                raise FilterError(f"garbage after pattern in {text!r}")
            return AddressFilter(tuple(fields), text)
        if take()[0] != ".":
            raise FilterError(f'need "." in {text!r}')


def valid_domain(name: str) -> bool:
    """A DNSBL domain as Postfix's valid_hostname() takes it: ASCII letters, digits, '-' and
    '_', labels of 1..63 without a leading or trailing '-', at most 255 characters, no empty
    label (so no trailing dot), and not all-numeric like an IPv4 address."""
    if not name or len(name) > 255 or not name.isascii():
        return False
    labels = name.split(".")
    if not all(_LABEL_RE.match(label) for label in labels):
        return False
    return not all(label.isdigit() for label in labels)


@dataclasses.dataclass(frozen=True)
class Site:
    """One `domain[=filter][*weight]` entry."""

    domain: str                       # lower case
    filter: AddressFilter | None
    weight: int

    def __str__(self) -> str:
        out = self.domain
        if self.filter is not None:
            out += f"={self.filter}"
        if self.weight != 1:
            out += f"*{self.weight}"
        return out

    def counts(self, answers: Sequence[str]) -> bool:
        """Whether these (error-free) answers add this entry's weight."""
        if self.filter is None:
            return bool(answers)
        return any(self.filter.matches(a) for a in answers)


def parse_site(entry: str) -> Site:
    """One entry, split as postscreen does: the weight after the first '*', then the filter
    after the first '='. Raises ValueError naming what is wrong."""
    rest, star, weight_text = entry.partition("*")
    weight = 1
    if star:
        if not _WEIGHT_RE.match(weight_text) or abs(int(weight_text)) > _WEIGHT_MAX:
            raise ValueError(f'bad DNSBL weight factor "{weight_text}" in "{entry}"')
        weight = int(weight_text)
    domain, eq, pattern = rest.partition("=")
    flt = parse_filter(pattern) if eq else None
    if not valid_domain(domain):
        raise ValueError(f'bad DNSBL domain name "{domain}" in "{entry}"')
    return Site(domain.lower(), flt, weight)


def split_entries(value: str | Iterable[str]) -> list[str]:
    """Entries separated by commas or white space (one string, or a list of strings)."""
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"expected a string, got {item!r}")
        out += [e for e in re.split(r"[,\s]+", item) if e]
    return out


def parse_sites(value: str | Iterable[str]) -> tuple[Site, ...]:
    return tuple(parse_site(e) for e in split_entries(value))


SiteList = SettingType("list of DNSBL sites", parse_sites, lambda v: [str(s) for s in v])


# --- answers -----------------------------------------------------------------------------

def error_reason(domain: str, answer: str) -> str | None:
    """Why an answer is a list error and no listing, or None when it is a usable answer."""
    try:
        ip = ipaddress.IPv4Address(answer)
    except ValueError:
        return "not an IPv4 address"
    if ip not in _LOOPBACK_NET:
        return "outside 127.0.0.0/8"
    if ip in _ERROR_NET:
        return "127.255.255.0/24 error code"
    for suffix, codes in KNOWN_ERROR_ANSWERS.items():
        if (domain == suffix or domain.endswith("." + suffix)) and answer in codes:
            return f"{suffix} error code"
    return None


def usable(domain: str, answers: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(answers that may count, answers that are list errors)."""
    good, bad = [], []
    for a in answers:
        (bad if error_reason(domain, a) else good).append(a)
    return tuple(good), tuple(bad)


# --- query names -------------------------------------------------------------------------

def ip_query_name(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address, zone: str) -> str | None:
    """`4.3.2.1.zone` for IPv4, 32 reversed nibbles for IPv6 (an IPv4-mapped address as
    IPv4); None for text that is no address."""
    try:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.version == 4:
        return ".".join(reversed(str(ip).split("."))) + "." + zone.strip(".")
    return ".".join(reversed(ip.exploded.replace(":", ""))) + "." + zone.strip(".")


def domain_query_name(domain: str, zone: str) -> str | None:
    """`domain.zone` for an RHSBL, or None when the domain is no usable name (an address
    literal, one label, not ASCII) or the name would be too long for DNS."""
    d = domain.strip().rstrip(".").lower()
    if not d or "." not in d or d.startswith("[") or not valid_domain(d):
        return None
    name = f"{d}.{zone.strip('.')}"
    return name if len(name) <= 253 else None


# --- scores ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Answer:
    """One lookup's outcome: addresses (empty: not listed), seconds it may be kept, or an error."""

    addresses: tuple[str, ...] = ()
    ttl: float = 0.0
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class Query:
    """One DNS name to ask, and the entries (one list domain) its answer is judged by."""

    name: str
    domain: str
    identity: str                     # "client", "sender" or "helo"
    subject: str                      # the address or domain looked up
    sites: tuple[Site, ...]


@dataclasses.dataclass(frozen=True)
class Hit:
    domain: str
    identity: str
    weight: int
    answers: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Score:
    """A client's combined weight, the entries that made it, and the lists that failed."""

    total: int = 0
    hits: tuple[Hit, ...] = ()
    errors: tuple[tuple[str, str], ...] = ()     # (list domain, reason)

    def names(self, positive: bool = True) -> list[str]:
        """List domains that added weight (positive or negative), in order, once each."""
        return list(dict.fromkeys(h.domain for h in self.hits if (h.weight > 0) == positive and h.weight))


def plan(groups: Iterable[tuple[str, str, Sequence[Site]]]) -> list[Query]:
    """Queries for (identity, subject, sites): one per list domain and subject, entries of the
    same domain judged together by one answer."""
    out: list[Query] = []
    for identity, subject, sites in groups:
        by_domain: dict[str, list[Site]] = {}
        for site in sites:
            by_domain.setdefault(site.domain, []).append(site)
        for domain, entries in by_domain.items():
            name = ip_query_name(subject, domain) if identity == "client" else domain_query_name(subject, domain)
            if name is not None:
                out.append(Query(name, domain, identity, subject, tuple(entries)))
    return out


def score(queries: Sequence[Query], answers: Mapping[str, Answer]) -> Score:
    """The combined weight: each entry whose filter matches a usable answer adds its weight once."""
    total = 0
    hits: list[Hit] = []
    errors: list[tuple[str, str]] = []
    for q in queries:
        answer = answers.get(q.name)
        if answer is None:
            continue
        if answer.error is not None:
            errors.append((q.domain, answer.error))
            continue
        good, bad = usable(q.domain, answer.addresses)
        if bad:
            errors.append((q.domain, f"error answer {','.join(bad)}"))
        for site in q.sites:
            if site.counts(good):
                total += site.weight
                hits.append(Hit(q.domain, q.identity, site.weight, good))
    return Score(total, tuple(hits), tuple(errors))


class ListHealth:
    """Which lists are down: after `down_after` failed lookups in a row (timeouts, server
    failures) a list is skipped, its queries answered at once as an error (never a listing),
    so a dead list does not cost every new client `dnsbl_timeout`. While down, one lookup per
    `retry` seconds still goes out as a probe; its first answer brings the list back.
    Sans-I/O: the caller passes `now` and says what each lookup gave.
    """

    def __init__(self, down_after: int, retry: float):
        self.down_after, self.retry = down_after, retry
        self.failures: dict[str, int] = {}          # list domain -> failed lookups in a row
        self.probe_due: dict[str, float] = {}       # down list domain -> when the next probe may go

    def skipped(self, domain: str, now: float) -> bool:
        """Whether a lookup in `domain` is skipped now (down, and no probe due); a due probe
        is let through and the next one scheduled."""
        due = self.probe_due.get(domain)
        if due is None:
            return False
        if now >= due:
            self.probe_due[domain] = now + self.retry
            return False
        return True

    def failed(self, domain: str, now: float) -> bool:
        """Note a failed lookup; True when this one marks the list down."""
        if self.down_after <= 0:
            return False
        n = self.failures[domain] = self.failures.get(domain, 0) + 1
        if n >= self.down_after and domain not in self.probe_due:
            self.probe_due[domain] = now + self.retry
            return True
        return False

    def answered(self, domain: str) -> bool:
        """Note an answer (listed or not); True when the list was down and is back."""
        self.failures.pop(domain, None)
        return self.probe_due.pop(domain, None) is not None

    def down(self) -> list[str]:
        return sorted(self.probe_due)


# --- the blocking lookup -----------------------------------------------------------------

def lookup_a(resolver: Any, name: str, timeout: float, negative_ttl: float) -> Answer:
    """A records of `name` through a dnspython Resolver (blocking; call it from a thread).

    NXDOMAIN and "no A record" are not listed, kept for the SOA's negative TTL (RFC 2308),
    else `negative_ttl`; timeouts, SERVFAIL and other failures are an Answer with an error.
    """
    import dns.exception
    import dns.rdatatype
    import dns.resolver
    try:
        answer = resolver.resolve(name, "A", lifetime=timeout, raise_on_no_answer=False, search=False)
    except dns.resolver.NXDOMAIN as e:
        return Answer((), _soa_ttl(e.responses().values(), negative_ttl))
    except dns.resolver.NoAnswer:
        return Answer((), negative_ttl)
    except (dns.exception.Timeout, dns.resolver.LifetimeTimeout):
        return Answer(error="timeout")
    except dns.resolver.NoNameservers:
        return Answer(error="server failure")
    except dns.exception.DNSException as e:
        return Answer(error=type(e).__name__)
    if answer.rrset is None:
        return Answer((), _soa_ttl([answer.response], negative_ttl))
    addresses = tuple(rr.address for rr in answer.rrset if rr.rdtype == dns.rdatatype.A)
    return Answer(addresses, float(answer.rrset.ttl))


def _soa_ttl(responses: Iterable[Any], default: float) -> float:
    import dns.rdatatype
    for response in responses:
        for rrset in getattr(response, "authority", ()):
            if rrset.rdtype == dns.rdatatype.SOA:
                return float(min([rrset.ttl] + [rr.minimum for rr in rrset]))
    return default
