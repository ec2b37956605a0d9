"""SPF check (RCPT, DATA): HELO and MAIL FROM identities, pypolicyd-spf style actions, RFC 7372 codes.

The MAIL FROM identity (postmaster@HELO for the null sender) and, when enabled, the HELO
identity are checked once per message `instance` (cached across its RCPTs) by pyspf in the
blocking pool, with the DNS lookup from `ctx.resolver` or the core resolver (owlery.dns, the
dns_* settings) and ONE time budget for both (spf_query_time_limit, from the moment the request
asks; the HELO check may use half of it, so a HELO name whose servers never answer leaves the
MAIL FROM check the other half, and the decision still ends within the budget, before Postfix's
policy timeout; tests/policyd/test_spf_deadline_s20.py).
Each result maps to reject / defer / header / none by setting;
rejections use 5.7.23 (fail) and 5.7.24 (permerror), deferrals 4.7.23 / 4.7.24 (RFC 7372).
Received-SPF and/or Authentication-Results are PREPENDed once per instance (with "both",
Received-SPF at RCPT and Authentication-Results at DATA; `owlery postfix` then prints the
smtpd_data_restrictions line, as it does when greylisting's X-Greylist must wait for DATA
beside SPF's RCPT header). Skipped for authenticated
senders, listed networks and trusted forwarders (relays whose mail SPF cannot judge).
`mailfrom_result()` lets other checks (greylist SPF pass-through) reuse the cached verdict.
Talks to: DNS via owlery.dns. Tests: tests/policyd/test_spf_check.py,
tests/policyd/test_spf_rfc7208.py, tests/policyd/test_pending_headers.py, tests/policyd/test_spf_parity_s12.py,
tests/e2e/test_spf_postfix.py
"""

from __future__ import annotations

import collections
import marshal
import socket
import time
from typing import Any

from owlery.reply import Reply
from owlery.dns import (NotCached, SpfResult, SpfTimeLimit, build_resolver, cached_lookup, dnspython_lookup,
                        evaluate, trace_headers)
from owlery.settings import Bool, Networks, Str, choice, int_range, setting
from policyd import actions
from policyd.actions import DUNNO
from policyd.checks import Check, CheckContext, Verdict
from policyd.netmatch import NetworkMatcher


ActionChoice = choice("reject", "defer", "header", "none")

# Seconds an SPF decision may run past spf_query_time_limit before the pool gives up on it: the
# lookup running at the deadline ends at its lifetime, but dnspython may first sleep its back-off
# between rounds of its servers (0.1 s doubling, at most 2 s) and a lookup started just before
# the deadline takes its 0.1 s minimum. owlery/app/postfix.py counts it in Postfix's policy timeout.
SPF_DEADLINE_SLACK = 2.5

SPF_QUERY_TIME_LIMIT = setting("spf_query_time_limit", SpfTimeLimit, 20,
                               "Whole time budget of one request's SPF verdicts, the HELO and MAIL FROM "
                               "identities together (RFC 7208 4.6.4); what is past it is temperror "
                               "(spf_temperror_action). `owlery postfix` counts it in Postfix's policy "
                               "timeout.", unit="s")
SPF_HELO_CHECK = setting("spf_helo_check", Bool, True, "Also check the HELO identity (RFC 7208 2.3).")
SPF_HELO_FAIL_ACTION = setting("spf_helo_fail_action", ActionChoice, "reject",
                               "What a HELO fail does: reject (550 5.7.23), defer (450 4.7.23), "
                               "header, or none.")
SPF_FAIL_ACTION = setting("spf_fail_action", ActionChoice, "reject",
                          "What a MAIL FROM fail does: reject (550 5.7.23), defer, header or none.")
SPF_SOFTFAIL_ACTION = setting("spf_softfail_action", ActionChoice, "header",
                              "What a MAIL FROM softfail does: reject, defer, header or none.")
SPF_PERMERROR_ACTION = setting("spf_permerror_action", ActionChoice, "header",
                               "What a permerror (broken SPF record) does: reject (550 5.7.24), defer, "
                               "header or none.")
SPF_TEMPERROR_ACTION = setting("spf_temperror_action", ActionChoice, "header",
                               "What a temperror (DNS trouble) does: defer (451 4.7.24), header or none "
                               "(reject is treated as defer: a DNS hiccup never rejects).")
SPF_HEADER_TYPE = setting("spf_header_type", choice("received-spf", "authentication-results", "both", "none"),
                          "received-spf", "Trace header(s) PREPENDed, once per message.")
SPF_AUTHSERV_ID = setting("spf_authserv_id", Str, None,
                          "authserv-id of the Authentication-Results header (unset: this host's name).")
SPF_HIDE_RECEIVER = setting("spf_hide_receiver", Bool, True,
                            "Write receiver=<UNKNOWN> in Received-SPF instead of this host's name "
                            "(RFC 7208 9.1: receiver is the host name of the SPF verifier).")
SPF_SKIP_NETWORKS = setting("spf_skip_networks", Networks, ["127.0.0.0/8", "::1/128"],
                            "Clients never SPF-checked (local submitters).")
SPF_TRUSTED_FORWARDERS = setting("spf_trusted_forwarders", Networks, [],
                                 "Relays that forward outside mail to us (a campus relay, a backup MX): "
                                 "SPF cannot judge their clients, so they are not checked.")
SPF_ENHANCED_STATUS_CODES = setting("spf_enhanced_status_codes", Bool, True,
                                    "Use RFC 7372 codes (5.7.23, 5.7.24); false: 5.7.1 / 4.7.1.")
SPF_CACHE_INSTANCES = setting("spf_cache_instances", int_range(1, 1000000), 10000,
                              "Messages (instances) whose SPF verdicts are remembered, so a message "
                              "with many recipients is checked once; as many verdicts per (client, "
                              "sender, HELO) are reused by later messages while every DNS answer they "
                              "rest on is still live (dns_cache_entries > 0).")


# A message's verdicts as the engine keeps them: (HELO, MAIL FROM) as one marshalled bytes
# value (the fields of each SpfResult, its trace tuple included), then the trace header texts
# built for it at RCPT and at DATA (_NOT_BUILT until asked; None: no header). Nothing in an
# entry is an object the cyclic collector walks: holding SpfResult objects and the PolicyActions
# made from them, the two caches of 10,000 entries made every full collection of a policy daemon
# take ~55 ms instead of ~5 ms (a stall of every request in flight: the p99 at c=100). Nested
# tuples of strings are not enough: the collector untracks a tuple only when its items already
# are, and its reachability pass moves an entry's inner tuples behind the entry, so thousands of
# entries were promoted still tracked (seen after each gen1 collection, with a gc.callbacks
# probe) and every full collection walked them again. A flat tuple of bytes and strings is
# untracked by the first collection it meets. Tests: tests/policyd/test_spf_from_cache.py
_NOT_BUILT = False
_HEADER_SLOT = {"RCPT": 1, "DATA": 2}


def _pack(result: dict[str, SpfResult | None]) -> bytes:
    helo, mail = result["helo"], result["mailfrom"]
    return marshal.dumps((None if helo is None else tuple(helo), None if mail is None else tuple(mail)))


def _unpack(packed: bytes) -> dict[str, SpfResult | None]:
    helo, mail = marshal.loads(packed)
    return {"helo": None if helo is None else SpfResult._make(helo),
            "mailfrom": None if mail is None else SpfResult._make(mail)}


class SpfEngine:
    """Runs and caches SPF verdicts per message instance; shared by the SPF and greylist checks."""

    def __init__(self, ctx: CheckContext):
        self.ctx = ctx
        s = ctx.settings
        resolver = ctx.resolver if ctx.resolver is not None else build_resolver(s)
        self.lookup = dnspython_lookup(resolver) if hasattr(resolver, "resolve") else resolver
        # Every answer the evaluation needs already cached (the next message from a sender
        # domain): evaluated on the reactor, without a trip through the thread pool.
        self.cached = cached_lookup(resolver) if hasattr(resolver, "resolve") else None
        self.limit = s.spf_query_time_limit
        self.helo_check = s.spf_helo_check
        self.hostname = socket.gethostname()
        self.authserv_id = s.spf_authserv_id if s.spf_authserv_id is not None else self.hostname
        self.want_ar = s.spf_header_type in ("authentication-results", "both")
        self.hide_receiver = s.spf_hide_receiver
        self.cache_max = s.spf_cache_instances
        # message key -> packed verdicts and header texts (see _NOT_BUILT above)
        self.cache: collections.OrderedDict[tuple, tuple] = collections.OrderedDict()
        # (client, sender, HELO, receiver) -> (time its first DNS answer expires, *packed verdicts)
        self.reused: collections.OrderedDict[tuple, tuple] = collections.OrderedDict()

    def _blocking(self, ip: str, sender: str, helo: str, receiver: str,
                  lookup: Any = None, deadline: float | None = None) -> dict[str, SpfResult | None]:
        # A lookup from the DNS cache (`_from_cache`): simple records are evaluated compiled.
        # `deadline` (time.monotonic()) ends both identities' DNS: one budget per decision
        # (RFC 7208 4.6.4), so the worst case is spf_query_time_limit, not twice it.
        simple = lookup is not None
        lookup = self.lookup if lookup is None else lookup
        aid = self.authserv_id if self.want_ar else None
        out: dict[str, SpfResult | None] = {"helo": None, "mailfrom": None}
        helo_ok = bool(helo) and "." in helo and not helo.startswith("[")
        # The null sender's MAIL FROM identity is postmaster@HELO whatever the HELO is (RFC 7208
        # 2.4): an IP literal or a bare word still gets its result, none (4.3), and a header.
        # With no HELO at all it has no domain: no verdict (logged as spf=none), no DNS, no header.
        if (helo_ok and self.helo_check) or (helo and not sender):
            # The HELO verdict's trace headers are written only for the null sender (whose
            # MAIL FROM identity it is): otherwise they are not built.
            # With a MAIL FROM to check after it, HELO gets half of what is left: a HELO name
            # whose servers never answer (a lame delegation, common among such names) must not
            # leave the MAIL FROM verdict, the one most sites act on, no time at all.
            helo_deadline = deadline
            if sender and deadline is not None:
                now = time.monotonic()
                helo_deadline = now + max(0.0, deadline - now) / 2
            out["helo"] = evaluate(lookup, ip=ip, sender="", helo=helo, query_time_limit=self.limit,
                                   receiver=receiver, authserv_id=aid, headers=False if sender else "later",
                                   simple=simple, deadline=helo_deadline)
        if sender:
            # No HELO/EHLO (helo_name empty): no helo= key and %{h} empty; never a made-up name
            # (RFC 7208 9.1: helo is the name the client gave).
            # headers="later": built only if a reply carries them (SpfCheck._build_header)
            out["mailfrom"] = evaluate(lookup, ip=ip, sender=sender, helo=helo,
                                       query_time_limit=self.limit, receiver=receiver, authserv_id=aid,
                                       simple=simple, headers="later", deadline=deadline)
        else:
            out["mailfrom"] = out["helo"]   # null sender: the MAIL FROM identity is postmaster@HELO
        return out

    @staticmethod
    def key_of(request: Any) -> tuple:
        """The message a request belongs to, as the verdict cache knows it."""
        return (request.instance or id(request), request.client_address, request.sender.lower(),
                request.attr("helo_name").lower())

    async def verdicts(self, request: Any) -> dict[str, SpfResult | None]:
        """{"helo": ..., "mailfrom": ...} of the request's message: checked once per message."""
        key = self.key_of(request)
        packed = self.cache.get(key)
        if packed is not None:
            self.cache.move_to_end(key)
            return _unpack(packed[0])
        # RFC 7208 9.1: receiver= names the verifier (this host), never a recipient (maybe a Bcc).
        receiver = "<UNKNOWN>" if self.hide_receiver else self.hostname
        args = (request.client_address, request.sender, request.attr("helo_name"), receiver)
        result = self._from_cache(*args)
        if result is None:
            # The budget runs from now: time waiting for a thread of the pool is spent from it too.
            # The pool's own timeout is only a backstop (the evaluations stop at the deadline, give
            # or take SPF_DEADLINE_SLACK): past it the answer is 4.3.0, not temperror.
            deadline = time.monotonic() + self.limit
            result = await self.ctx.run_blocking(self._blocking, *args, deadline=deadline,
                                                 timeout=self.limit + SPF_DEADLINE_SLACK)
        self.cache[key] = (_pack(result), _NOT_BUILT, _NOT_BUILT)
        while len(self.cache) > self.cache_max:
            self.cache.popitem(last=False)
        return dict(result)

    def header_text(self, key: tuple, state: str) -> str | None | bool:
        """The trace header text kept for this message and state: _NOT_BUILT, None or text."""
        packed = self.cache.get(key)
        return _NOT_BUILT if packed is None else packed[_HEADER_SLOT[state]]

    def keep_header_text(self, key: tuple, state: str, text: str | None) -> None:
        packed = self.cache.get(key)
        if packed is not None:          # (not when the message's entry has been dropped meanwhile)
            slot = _HEADER_SLOT[state]
            self.cache[key] = packed[:slot] + (text,) + packed[slot + 1:]

    def _from_cache(self, *args: str) -> dict[str, SpfResult | None] | None:
        """The verdicts when every DNS answer they need is in the resolver's cache, else None.
        Verdicts so made are kept for later messages of the same (client, sender, HELO,
        receiver) until the first of those answers expires (their TTLs, as a new evaluation
        from the cache would see them), at most spf_cache_instances of them."""
        if self.cached is None:
            return None
        now = time.time()          # dnspython's expirations are wall-clock times
        got = self.reused.get(args)
        if got is not None:
            if now < got[0]:
                self.reused.move_to_end(args)
                return _unpack(got[1])
            del self.reused[args]
        missed: list[str] = []
        expiries: list[float] = []
        try:
            result = self._blocking(*args, lookup=self.cached(missed, expiries))
        except NotCached:
            return None
        if missed:
            return None
        if expiries:
            self.reused[args] = (min(expiries), _pack(result))
            while len(self.reused) > self.cache_max:
                self.reused.popitem(last=False)
        return result


def engine_of(ctx: CheckContext) -> SpfEngine:
    return ctx.resource("spf", lambda: SpfEngine(ctx))


async def mailfrom_result(ctx: CheckContext, request: Any) -> str | None:
    """The MAIL FROM SPF result of this message (checked once, cached), or None."""
    entry = await engine_of(ctx).verdicts(request)
    r = entry["mailfrom"]
    return r.result if r is not None else None


def _clean(text: str, limit: int) -> str:
    return Reply.safe_text(" ".join(text.split()), limit)


class SpfCheck(Check):
    name = "spf"
    states = frozenset({"RCPT", "DATA"})
    enabled_by_default = False   # opt in: policyd_checks = { RCPT = [..., "spf"], DATA = ["spf"] }

    def __init__(self, ctx: CheckContext):
        super().__init__(ctx)
        s = ctx.settings
        self.engine = engine_of(ctx)
        self.skip = NetworkMatcher(s.spf_skip_networks)
        self.forwarders = NetworkMatcher(s.spf_trusted_forwarders)
        self.header_type = s.spf_header_type
        self.enhanced = s.spf_enhanced_status_codes
        self.actions = {"fail": s.spf_fail_action, "softfail": s.spf_softfail_action,
                        "permerror": s.spf_permerror_action, "temperror": s.spf_temperror_action}
        self.helo_fail_action = s.spf_helo_fail_action

    def _reply(self, what: str, result: str, identity: str, explanation: str) -> actions.PolicyAction:
        fail_like = result in ("fail", "softfail")
        if what == "reject" and result != "temperror":
            dsn = ("5.7.23" if fail_like else "5.7.24") if self.enhanced else "5.7.1"
            text = _clean(f"SPF {identity} check {result}: {explanation}", 300)
            return actions.reject(Reply(550, dsn, text))
        dsn = ("4.7.23" if fail_like else "4.7.24") if self.enhanced else "4.7.1"
        code = 451 if result == "temperror" else 450
        text = _clean(f"SPF {identity} check {result}: {explanation or 'try again later'}", 300)
        return actions.defer_if_permit(Reply(code, dsn, text))

    def _header(self, request: Any, entry: dict, state: str) -> Any:
        """The trace header for this request. The pipeline drops a header name already sent
        for the instance, so returning it at every RCPT is safe and survives a RCPT whose
        annotation was dropped because a later check deferred it. With "both",
        Received-SPF goes out at RCPT and Authentication-Results at DATA. Built once per
        message and state: its text is kept with the message's verdicts (SpfEngine)."""
        key = self.engine.key_of(request)
        text = self.engine.header_text(key, state)
        if text is _NOT_BUILT:
            if self.header_type == "none" or (entry["mailfrom"] or entry["helo"]) is None:
                return None

            def build() -> actions.PolicyAction | None:
                # Only when answered: a later check (greylisting) often ends the request first.
                action = self._build_header(entry, state)
                self.engine.keep_header_text(key, state, None if action is None else action.text)
                return action
            return actions.LazyPrepend(build)
        # (checked by actions.prepend when it was built)
        return None if text is None else actions.PolicyAction("PREPEND", text=text)

    def _build_header(self, entry: dict, state: str) -> actions.PolicyAction | None:
        r = entry["mailfrom"] or entry["helo"]
        if r is None or self.header_type == "none":
            return None
        received, ar = trace_headers(r)
        rspf = "Received-SPF: " + received
        if self.header_type == "received-spf":
            line = rspf
        elif self.header_type == "authentication-results":
            line = ar
        else:
            line = rspf if state == "RCPT" else ar
        return actions.prepend(_clean(line, 980)) if line else None

    async def evaluate(self, request, now):
        if request.sasl_username:
            return Verdict(DUNNO, {"spf": "authenticated"})
        client = request.client_address
        if client in self.skip:
            return Verdict(DUNNO, {"spf": "skip-network"})
        if client in self.forwarders:
            return Verdict(DUNNO, {"spf": "trusted-forwarder"})
        entry = await self.engine.verdicts(request)
        helo, mail = entry["helo"], entry["mailfrom"]
        fields = {"spf": mail.result if mail else "none"}
        if helo is not None:
            fields["spf_helo"] = helo.result
        if request.protocol_state == "RCPT":
            if helo is not None and helo.result == "fail" and self.helo_fail_action in ("reject", "defer"):
                return Verdict(self._reply(self.helo_fail_action, "fail", "helo", helo.explanation), fields)
            if mail is not None:
                what = self.actions.get(mail.result, "header")
                if what in ("reject", "defer"):
                    return Verdict(self._reply(what, mail.result, mail.identity, mail.explanation), fields)
                if what == "none":
                    return Verdict(DUNNO, fields)
        elif mail is not None and self.actions.get(mail.result, "header") == "none":
            return Verdict(DUNNO, fields)
        header = self._header(request, entry, request.protocol_state)
        return Verdict(header if header is not None else DUNNO, fields)
