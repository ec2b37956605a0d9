"""SPF for the common simple records without pyspf's per-message work: compiled once, matched by integers.

Most mail on an MX comes from domains it has seen a moment ago, from clients it has not:
each new message costs a whole pyspf evaluation (a query object, the record split and each
term parsed with regular expressions, an ipaddress network built per term) even when every
DNS answer is cached. Most records are a list of networks and includes (`v=spf1
ip4:192.0.2.0/24 include:_spf.example.net -all`), and most HELO names and many sender
domains have no record at all. `evaluate_simple` answers those from the same cached
lookup pyspf would use, with each record's terms parsed once (by pyspf's own
`validate_mechanism`, so the same strings are accepted and refused) and kept as integer
networks; it gives the exact SpfResult pyspf gives through `owlery.dns.evaluate`
(tests/core/test_spf_compiled.py holds the two equal on generated records, clients and
identities), or None, and the caller then runs pyspf.

What is answered here: an ASCII identity (a sender with one "@", or the HELO name) whose
domain is checkable; an IPv4 client in dotted-quad form or a plain IPv6 one; no record
(none); a record whose terms are only `all`, `ip4`, `ip6` and `include`, with at most one
`redirect=`, no macro anywhere, no other modifier (an `exp=` changes the explanation of a
fail), within the ten DNS-querying terms of RFC 7208 4.6.4. Everything else goes to pyspf:
errors of any kind (its texts name the problem), an include that finds no record or an
error, CNAMEs, several records, a non-ASCII record, a void-lookup limit in sight.
Talks to: the lookup it is given (the DNS cache). Tests: tests/core/test_spf_compiled.py
"""

from __future__ import annotations

from typing import Any

_RECORDS_MAX = 4096          # compiled records kept (by domain and text); cleared when full
_compiled: dict[tuple[str, str], Any] = {}
_NOT_SIMPLE = object()
_LOOKUPS_MAX = 10            # RFC 7208 4.6.4; pyspf's MAX_LOOKUP


class _Fallback(Exception):
    """The evaluation leaves the simple subset: pyspf must do it."""


class _Query:
    """What owlery.dns._headers reads of a pyspf query (its header comment is pyspf's own)."""

    __slots__ = ("o", "c", "d", "ident", "mechanism", "mech", "prob")

    def __init__(self, o: str, c: str, d: str, ident: str, mechanism: str | None):
        self.o, self.c, self.d, self.ident, self.mechanism = o, c, d, ident, mechanism
        self.mech: list = []
        self.prob = ""

    def get_header_comment(self, result: str) -> str:
        import spf
        return spf.query.get_header_comment(self, result)


def _v4(text: str) -> int | None:
    """A dotted quad as pyspf prints it back (no leading zeros, no other form), as an integer."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not (part.isascii() and part.isdigit()) or len(part) > 3 or (len(part) > 1 and part[0] == "0"):
            return None
        n = int(part)
        if n > 255:
            return None
        value = value * 256 + n
    return value


def _client(ip: str) -> tuple[int, int, str] | None:
    """(version, address as an integer, the form pyspf writes as client-ip), or None."""
    v4 = _v4(ip)
    if v4 is not None:
        return 4, v4, ip
    if ":" not in ip or not ip.isascii():
        return None
    import ipaddress
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.version != 6 or addr.ipv4_mapped is not None or "%" in ip:
        return None
    return 6, int(addr), str(addr)


def _spf_records(lookup: Any, name: str, timeout: float) -> list[str] | None:
    """The TXT records of `name` that are SPF records, as pyspf's dns_spf finds them; None when
    what came back is anything pyspf treats specially (other names, empty strings)."""
    import spf
    answers = lookup(name.lower(), "TXT", timeout)     # pyspf asks in lower case
    records = []
    for (owner, qtype), value in answers:
        if qtype != "TXT" or owner.lower() != name.lower() or not value:
            raise _Fallback
        text = b"".join(value)
        if spf.RE_SPF.match(text):          # pyspf's own test ("v=spf1\n" is one, by its "$")
            records.append(text)
    out = []
    for text in records:
        try:
            out.append(text.decode("ascii"))
        except UnicodeDecodeError:
            raise _Fallback from None
    return out


def _compile(domain: str, record: str) -> Any:
    """The record's terms as [(kind, result, mech text, data)] and its redirect domain, or
    _NOT_SIMPLE. Terms are parsed by pyspf itself on a query for `domain` (no macro is
    present, so nothing of the query but its domain can enter)."""
    import ipaddress

    import spf
    if "%" in record:
        return _NOT_SIMPLE
    terms = record.split(" ")
    if terms[0].lower() != "v=spf1":
        return _NOT_SIMPLE
    q = spf.query(i="127.0.0.1", s="postmaster@" + domain, h=domain)
    q.d = domain
    compiled: list[tuple[str, str, str, Any]] = []
    redirect = None
    querying = 0
    try:
        for term in (t for t in terms[1:] if t):
            modifier = spf.RE_MODIFIER.split(term)[1:]
            if len(modifier) == 2:
                if modifier[0] != "redirect" or redirect is not None:
                    return _NOT_SIMPLE
                redirect = q.expand_domain(modifier[1])
                if not redirect:
                    return _NOT_SIMPLE
                querying += 1
                continue
            mech, kind, arg, cidr, result = q.validate_mechanism(term)
            if kind not in ("all", "ip4", "ip6", "include") or result not in ("pass", "fail", "softfail", "neutral"):
                return _NOT_SIMPLE
            if kind in ("ip4", "ip6"):
                network = ipaddress.ip_network(arg).supernet(new_prefix=cidr)
                bits = 32 if kind == "ip4" else 128
                mask = ((1 << bits) - 1) ^ ((1 << (bits - cidr)) - 1)
                data: Any = (int(network.network_address), mask)
            elif kind == "include":
                querying += 1
                data = arg
            else:
                data = None
            compiled.append((kind, result, mech, data))
    except (spf.PermError, spf.TempError, ValueError, TypeError):
        return _NOT_SIMPLE
    if querying > _LOOKUPS_MAX:
        return _NOT_SIMPLE
    return compiled, redirect


def _record(lookup: Any, domain: str, timeout: float) -> Any:
    """The compiled record of `domain`: None when it has none, else (terms, redirect)."""
    records = _spf_records(lookup, domain, timeout)
    if not records:
        return None
    if len(records) > 1:
        raise _Fallback
    key = (domain, records[0])
    got = _compiled.get(key)
    if got is None:
        if len(_compiled) >= _RECORDS_MAX:
            _compiled.clear()
        got = _compiled[key] = _compile(domain, records[0])
    if got is _NOT_SIMPLE:
        raise _Fallback
    return got


class _RecordRun:
    __slots__ = ("lookup", "timeout", "version", "address", "lookups")

    def __init__(self, lookup: Any, timeout: float, version: int, address: int):
        self.lookup, self.timeout, self.version, self.address = lookup, timeout, version, address
        self.lookups = 0

    def count(self) -> None:
        self.lookups += 1
        if self.lookups > _LOOKUPS_MAX:
            raise _Fallback

    def check(self, domain: str, compiled: Any, top: bool) -> tuple[str, str | None]:
        """(result, mechanism matched) of one record, as pyspf's check0 gives them."""
        terms, redirect = compiled
        if redirect is not None:
            self.count()            # pyspf counts redirect= when it reads the modifiers
        for kind, result, mech, data in terms:
            if kind == "ip4" or kind == "ip6":
                if (self.version == 4) == (kind == "ip4") and self.address & data[1] == data[0]:
                    return result, mech
            elif kind == "all":
                return result, mech
            else:                   # include
                self.count()
                included = _record(self.lookup, data, self.timeout)
                if included is None:
                    raise _Fallback     # pyspf: permerror (no record for the included domain)
                if self.check(data, included, False)[0] == "pass":
                    return result, mech
        if redirect is not None:
            target = _record(self.lookup, redirect, self.timeout)
            if target is None:
                raise _Fallback         # pyspf: permerror (redirect domain has no SPF record)
            # pyspf evaluates the target at the same depth: at the top, its match is the mechanism
            return self.check(redirect, target, top)
        return "neutral", None


def evaluate_simple(lookup: Any, *, ip: str, sender: str, helo: str, timeout: float,
                    default_explanation: str | None, checkable: Any) -> tuple[str, str, Any] | None:
    """(result, explanation, query stand-in for the headers) as pyspf would give them, or None
    when the evaluation is not in the simple subset (see the module docstring). `checkable`
    is owlery.dns's test of a domain check_host() may look up (RFC 7208 4.3); given by the
    caller, as this module is below owlery.dns."""
    client = _client(ip)
    if client is None:
        return None
    if sender:
        if not (sender.isascii() and sender.isprintable()) or sender.count("@") != 1 or " " in sender:
            return None
        local, _, domain = sender.partition("@")
        if not local:
            return None
        o, ident = domain, "mailfrom"
    else:
        if not helo or not (helo.isascii() and helo.isprintable()) or "@" in helo or " " in helo:
            return None
        o, ident = helo, "helo"
    if not checkable(o) or o.endswith("."):
        return None
    run = _RecordRun(lookup, timeout, client[0], client[1])
    try:
        compiled = _record(lookup, o, timeout)
        if compiled is None:
            result, mechanism = "none", None
        else:
            result, mechanism = run.check(o, compiled, True)
    except _Fallback:
        return None
    except Exception as e:  # a lookup's temperror: pyspf tells it (a NotCached miss goes to the caller)
        import spf
        if isinstance(e, spf.TempError):
            return None
        raise
    import spf
    explanation = spf.EXPLANATIONS[result]
    if default_explanation is not None and result in ("softfail", "fail"):
        explanation = default_explanation
    return result, explanation, _Query(o, client[2], o, ident, mechanism)
