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
`dnspython_lookup(resolver)` makes one from a Resolver; `within(lookup, deadline)` bounds one
by a wall-clock deadline several evaluations share (one decision's HELO and MAIL FROM).
Blocking: call `evaluate()` from a worker thread (policyd's pool, libmilter's connection
thread). Light at import: dnspython and pyspf load when first used, so reading the settings
imports neither.
Talks to: DNS servers (dnspython), pyspf. Tests: tests/core/test_dns.py,
tests/policyd/test_spf_rfc7208.py, tests/policyd/test_spf_check.py, tests/milters/test_auth_stages.py,
tests/policyd/test_spf_parity_s12.py (headers, IDNs, no HELO), tests/milters/test_dmarc_temperror_text.py,
tests/core/test_spf_compiled.py (the compiled path for simple records, held to pyspf),
tests/policyd/test_spf_deadline_s20.py (one deadline for several evaluations)
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from owlery.settings import Duration, SettingType, int_range, list_of, parse_duration, setting


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


def _parse_spf_time_limit(v: Any) -> float:
    seconds = parse_duration(v)
    if not 0.1 <= seconds <= 20:
        raise ValueError("the SPF DNS time budget must be from 0.1 to 20 seconds (RFC 7208 4.6.4)")
    return seconds


# The type of both SPF time budgets (spf_query_time_limit, milter_spf_query_time_limit): RFC 7208
# 4.6.4 asks for at least 20 s in all; 0 would make every result temperror, a week would hold a
# policy or milter thread for as long as a hostile domain's servers take to answer.
SpfTimeLimit = SettingType("duration", _parse_spf_time_limit, lambda v: int(v) if float(v).is_integer() else v)

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
        except dns.exception.DNSException as e:
            # Timeouts and SERVFAIL are temporary: temperror, never a pass or a fail.
            raise spf.TempError(failure_text(name, e)) from None
        return _records(name, qtype, answer)
    return lookup


def failure_text(name: str, error: BaseException | None) -> str:
    """What a remote party may read about a failed lookup of `name` (an SMTP reply, an
    Authentication-Results or Received-SPF comment): what failed for which name, never which
    server or port was asked (dnspython's own texts name them). A log line may keep str(error).
    `error` is the dnspython exception, or one raised `from None` while handling it."""
    import dns.exception
    import dns.resolver
    seen = 0
    while error is not None and not isinstance(error, dns.exception.DNSException) and seen < 5:
        error, seen = error.__cause__ or error.__context__, seen + 1
    if isinstance(error, dns.exception.Timeout):
        return f"DNS timeout for {name}"
    if isinstance(error, dns.resolver.NoNameservers):
        return f"DNS server failure for {name}"
    return f"DNS error for {name}"


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
    if not name.isascii():
        # Every domain of the evaluation is an A-label by now: what is left is a macro expansion
        # of a non-ASCII local part (%{l}, %{s}), which matches nothing (RFC 8616 section 4).
        return []
    return lookup(name, qtype, timeout)


def _checkable(domain: str) -> bool:
    """Whether check_host() may look `domain` up: an ASCII (A-label) multi-label name whose labels
    are 1 to 63 characters, nothing an address literal or a broken mailbox leaves behind (RFC 7208
    4.3); a U-label that has no A-label (see a_label) is malformed too."""
    labels = domain[:-1].split(".") if domain.endswith(".") else domain.split(".")
    return (domain.isascii() and len(labels) > 1 and len(domain) <= 253 and all(0 < len(label) <= 63 for label in labels)
            and not any(c in domain for c in '[]@" \t\\'))


_FULL_STOPS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})   # IDNA label separators


def a_label(domain: str) -> str | None:
    """`domain` with each U-label as its A-label, the form SPF looks up and expands in macros
    (RFC 8616 section 4; IDNA2008 with the UTS 46 mapping when the idna package is there, else
    the standard library's IDNA 2003). ASCII labels are left as they are (underscores and all);
    None when a label has no A-label (then the name is malformed: RFC 7208 4.3)."""
    if domain.isascii():
        return domain
    try:
        import idna
    except ImportError:                      # pragma: no cover - declared in setup.cfg; a broken install
        idna = None
    out = []
    for label in domain.translate(_FULL_STOPS).split("."):
        if label.isascii():
            out.append(label)
            continue
        try:
            out.append(idna.encode(label, uts46=True).decode("ascii") if idna is not None
                       else label.encode("idna").decode("ascii"))
        except (UnicodeError, ValueError):
            return None
    return ".".join(out)


def _hexpoint(c: str) -> str:
    # RFC 6533 section 3 EmbeddedUnicodeChar; a byte that was not UTF-8 (surrogate escape) is U+FFFD
    return f"\\x{{{0xFFFD if 0xD800 <= ord(c) <= 0xDFFF else ord(c):02X}}}"


def _ascii(text: str) -> str:
    """Free text (a comment, a record's mechanism) as printable ASCII: anything else as \\x{HEX}."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if " " <= c <= "~" else _hexpoint(c) for c in text)


def _xtext(text: str) -> str:
    """RFC 6533 section 3 utf-8-addr-xtext: QCHARs kept, every other character as \\x{HEX}."""
    return "".join(c if "!" <= c <= "~" and c not in "+=\\" else _hexpoint(c) for c in text)


def header_address(address: str) -> str:
    """An envelope address as a header written by a host that cannot know whether the message is
    SMTPUTF8 (RFC 6532) may carry it: printable ASCII unchanged; otherwise the domain as its A-label
    (RFC 8616 section 4) and the local part in RFC 6533's ASCII form (jörg -> j\\x{F6}rg), so no
    8-bit octet or control character reaches the header and nothing is lost to "?"."""
    if address.isascii() and address.isprintable():
        return address
    local, at, domain = address.rpartition("@")
    if not at:
        return _xtext(address)
    alabel = a_label(domain)
    return _xtext(local) + "@" + (alabel if alabel is not None and alabel.isprintable() else _xtext(domain))


def _header_name(name: str) -> str:
    """A HELO name or domain for a header: its A-label, else RFC 6533's ASCII form."""
    alabel = a_label(name)
    return alabel if alabel is not None and alabel.isprintable() else _xtext(name)


def _kv(value: str) -> str:
    """An ASCII value as RFC 7208 9.1 writes it: dot-atom, else quoted-string (no ";", CR or LF
    can end the pair or the field)."""
    import spf
    return spf.quote_value(value)


def _comment(text: str, limit: int = 300) -> str:
    """An RFC 5322 comment of at most `limit` characters of text (cut before quoting, so the cut
    never splits a quoted-pair): "(", ")" and "\\" as quoted-pairs, so no text can close it early."""
    text = _ascii(text)[:limit]
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


_TAGS = {"pass": "Pass", "neutral": "Neutral", "fail": "Fail", "softfail": "SoftFail", "none": "None",
         "temperror": "TempError", "permerror": "PermError"}
_HEADER_VALUE_MAX = 900   # a Received-SPF or A-R value; the policy daemon's PREPEND takes 980 characters


def _fit(head: str, pairs: list[tuple[str, str]], tail: str, sep: str) -> str:
    """head + the key=value pairs + tail within _HEADER_VALUE_MAX, the optional pairs dropped
    from the end of the list first: a value is never cut (a cut quoted-string or comment would
    break the header's syntax)."""
    pairs = list(pairs)
    while True:
        text = head + "".join(f"{k}={v}{sep}" for k, v in pairs) + tail
        if len(text) <= _HEADER_VALUE_MAX or not pairs:
            return text
        pairs.pop()


def _headers(q: Any, result: str, *, ip: str, sender: str, helo: str, receiver: str,
             authserv_id: str | None) -> tuple[str, str]:
    """(Received-SPF value, Authentication-Results line or "") for one evaluation: RFC 7208 9.1 and
    RFC 8601 in pyspf's layout, but every value from the client in printable ASCII, quoted or
    escaped as its place asks, and no key for what is not there (helo= when no HELO/EHLO was
    given: 9.1 says it is the name given; envelope-from= for the null sender)."""
    import spf
    domain = q.o or ""
    q.o = _header_name(domain)
    if domain:
        try:
            comment = f"{receiver}: {q.get_header_comment(result)}"
        except ValueError:
            comment = f"{receiver}: {result}"
    else:
        comment = f"{receiver}: {ip} is neither permitted nor denied: no domain to check"
    comment = _comment(comment)
    envelope_from = header_address(sender) if q.ident == "mailfrom" and sender else ""
    helo_name = _header_name(helo) if helo else ""
    mechanism = getattr(q, "mechanism", None)
    problem = " ".join(q.mech) if result == "permerror" and getattr(q, "mech", None) else ""
    tag = _TAGS[result]
    pairs = [("client-ip", _kv(ip))]
    for key, value in (("envelope-from", envelope_from), ("helo", helo_name)):
        if value:
            pairs.append((key, _kv(value)))
    # receiver as pyspf and pypolicyd-spf write it (a host name, or the literal <UNKNOWN>)
    pairs.append(("receiver", receiver if receiver == "<UNKNOWN>" else _kv(_ascii(receiver))))
    optional = [(k, _kv(_ascii(v))) for k, v in (("problem", problem), ("mechanism", mechanism or "")) if v]
    identity = f"identity={q.ident}"
    received = _fit(f"{tag} {comment} ", pairs + optional, identity, "; ")
    if not authserv_id:
        return received, ""
    # RFC 8601 2.7.2: smtp.mailfrom (the domain checked) or smtp.helo; the rest in a comment.
    facts = [("sender", envelope_from or (f"postmaster@{helo_name}" if helo_name else "")),
             ("helo", helo_name if q.ident == "mailfrom" else ""), ("client-ip", ip),
             ("receiver", _ascii(receiver)), ("mechanism", _ascii(mechanism or ""))]
    note = "; ".join(f"{k}={v}" for k, v in facts if v)
    prop = "smtp.mailfrom" if q.ident == "mailfrom" else "smtp.helo"
    target = q.o if q.ident == "mailfrom" else helo_name
    value = target if spf.RE_DOT_ATOM.match(target or "") and not set(target) & set("()<>@,;:\\\"/[]?=") \
        else '"' + (target or "").replace("\\", "\\\\").replace('"', '\\"') + '"'
    head = f"Authentication-Results: {authserv_id}; spf={result} {comment}"
    # the property, then its comment, each only while the line stays within bounds (both optional)
    for tail in (f" {prop}={value} {_comment(note)}" if note else f" {prop}={value}", f" {prop}={value}", ""):
        if len(head + tail) <= _HEADER_VALUE_MAX:
            break
    return received, head + tail


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
    trace: tuple = ()           # headers="later": what `trace_headers` builds them from (strings)


def trace_headers(r: SpfResult) -> tuple[str, str]:
    """(Received-SPF value, Authentication-Results line or "") of a result: those `evaluate`
    built, or, for one evaluated with headers="later", built now from its `trace`."""
    if not r.trace:
        return r.received_spf, r.authentication_results
    from owlery.spf_compiled import _Query
    o, c, d, ident, mechanism, ip, sender, helo, receiver, authserv_id = r.trace
    return _headers(_Query(o, c, d, ident, mechanism), r.result, ip=ip, sender=sender, helo=helo,
                    receiver=receiver, authserv_id=authserv_id)


def within(lookup: Lookup, deadline: float) -> Lookup:
    """`lookup` bounded by `deadline` (a time.monotonic() value): each query may take only the
    time left, and once none is left it is temperror without asking (the name in the text, as
    failure_text writes a timeout). One deadline shared by the evaluations of one decision (the
    HELO and MAIL FROM identities) bounds the decision, not each evaluation, by the budget."""
    def bounded(name: str, qtype: str, timeout: float) -> list:
        left = deadline - time.monotonic()
        if left <= 0:
            import spf
            raise spf.TempError(f"DNS timeout for {name}")
        return lookup(name, qtype, min(timeout, left))
    return bounded


def evaluate(lookup: Lookup, *, ip: str, sender: str, helo: str, query_time_limit: float,
             receiver: str = "<UNKNOWN>", authserv_id: str | None = None,
             default_explanation: str | None = None, headers: bool | str = True, simple: bool = False,
             deadline: float | None = None) -> SpfResult:
    """Check one identity: MAIL FROM `sender` (the null sender means postmaster@helo, as
    RFC 7208 2.4 says), or the HELO identity when `sender` is "" and helo is given. `helo` is
    "" when the client gave no HELO/EHLO: then the null sender has no domain (result none).

    Domains in U-labels (an SMTPUTF8 sender, a HELO name that should not be one) are checked
    as their A-labels (RFC 8616 section 4); a non-ASCII local part expanded by %{l} or %{s}
    matches nothing. `query_time_limit` is the whole DNS time budget of this evaluation (RFC
    7208 4.6.4 suggests at least 20 s); past it the result is temperror. A result pyspf names
    outside RESULTS counts as permerror. The header texts are printable ASCII (see _headers:
    the policy daemon cannot know whether the message is SMTPUTF8). `headers=False` leaves
    received_spf and authentication_results empty, for a caller that will not write them
    (building them is about a fifth of an evaluation from cached DNS answers). `simple=True`
    (for a lookup that answers from the DNS cache) first tries owlery.spf_compiled, which gives
    pyspf's very result for the common simple records without its per-message parsing.
    `headers="later"`: a result of that compiled path carries what `trace_headers` builds the
    headers from, for a caller that may not write them (a RCPT greylisting defers); pyspf's
    results have them built at once (its query object is not kept).
    `deadline` (a time.monotonic() value) ends the evaluation's DNS at that moment instead, for
    a caller whose several evaluations share one budget (the policy daemon's HELO and MAIL FROM
    checks of one request); without it the budget runs from now. What is counted is the wall
    clock (pyspf's own work and a thread pool's queue too), not only the time spent in DNS,
    which is all pyspf counts. A lookup answering from the DNS cache (`simple`) never waits and
    gets no deadline unless one is given.
    """
    if deadline is None and not simple:
        deadline = time.monotonic() + query_time_limit
    if deadline is not None:
        lookup = within(lookup, deadline)
        # pyspf's own budget: what is left (a positive number: 0 would mean "no limit" to it)
        query_time_limit = max(0.001, min(query_time_limit, deadline - time.monotonic()))
    if simple:
        from owlery.spf_compiled import evaluate_simple
        fast = evaluate_simple(lookup, ip=ip, sender=sender, helo=helo, timeout=query_time_limit,
                               default_explanation=default_explanation, checkable=_checkable)
        if fast is not None:
            result, explanation, q = fast
            received = ar = ""
            if headers == "later":
                return SpfResult(result, q.ident, explanation, q.d, "", "",
                                 (q.o, q.c, q.d, q.ident, q.mechanism, ip, sender, helo, receiver, authserv_id))
            if headers:
                received, ar = _headers(q, result, ip=ip, sender=sender, helo=helo, receiver=receiver,
                                        authserv_id=authserv_id)
            return SpfResult(result, q.ident, explanation, q.d, received, ar)
    import spf
    spf.DNSLookup = _dispatch
    _bound.lookup = lookup
    try:
        local, at, domain = sender.rpartition("@")
        alabel = a_label(domain if at else sender)
        checked = sender if alabel is None else (f"{local}@{alabel}" if at else alabel)
        checked_helo = a_label(helo) or helo
        q = spf.query(i=ip, s=checked, h=checked_helo, receiver=receiver, timeout=query_time_limit,
                      querytime=query_time_limit)
        if checked.count("@") > 1:
            # pyspf splits at the first "@"; a quoted local part may hold one ("a@b"@example.org),
            # and the domain is what follows the last (RFC 5321 4.1.2, RFC 7208 4.3).
            local, domain = checked.rsplit("@", 1)
            q.l, q.o, q.d = local or "postmaster", domain, domain
        if default_explanation is not None:
            q.set_default_explanation(default_explanation)
        if _checkable(q.d):
            result, _code, explanation = q.check()
        else:
            # RFC 7208 4.3: a malformed or single-label domain (an IP-literal HELO, a sender
            # without a domain, no HELO at all for the null sender) is "none" at once; pyspf
            # would ask DNS for it.
            q.mechanism = None
            result, explanation = "none", ""
        result = result.lower()
        if result not in RESULTS:
            result = "permerror"
        received = ar = ""
        if headers:
            try:
                received, ar = _headers(q, result, ip=ip, sender=sender, helo=helo, receiver=receiver,
                                        authserv_id=authserv_id)
            except (ValueError, AttributeError, TypeError):
                # pyspf could not describe some early failure: a minimal header, still well-formed
                received = f"{_TAGS[result]} identity={q.ident}; client-ip={_kv(ip)}"
        return SpfResult(result, q.ident, explanation or "", q.d or "", received, ar)
    finally:
        _bound.lookup = None
