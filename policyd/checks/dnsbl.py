"""DNSBL/DNSWL check (RCPT), postscreen-style: weighted lists, reply filters, a threshold, RHSBL.

The client address is looked up in `dnsbl_sites`, the MAIL FROM domain in
`dnsbl_rhsbl_sender_sites` and the HELO name in `dnsbl_rhsbl_helo_sites`, all written in
postscreen_dnsbl_sites syntax (`zen.spamhaus.org=127.0.0.[2..11]*3`,
`list.dnswl.org=127.0.[0..255].[1..3]*-2`; parsed and scored by owlery.dnsbl). A total at or
over `dnsbl_threshold` gets `dnsbl_reject_reply` (554 5.7.1 naming the lists, never their TXT);
at or under a negative `dnsbl_allowlist_threshold` the client is allowlisted (greylisting
trusts it). List errors never count: error answers (127.255.255.x and the like) and timeouts
or server failures are logged and read as "not listed", so a list that is down never
refuses mail. All lookups of one client run at once in the blocking pool (owlery.dns's
resolver, as SPF); answers are kept for their TTL (bounded by dnsbl_cache_min_ttl/max_ttl) in
memory and, when the state store is shared (Redis), there too so several MX hosts ask DNS
once; a store that fails is just no shared cache. Repeated RCPTs are answered from memory
without a thread hop. A list that fails `dnsbl_down_after` lookups in a row is skipped (read as
not listed) and probed once per `dnsbl_down_retry`, so a dead list costs new clients nothing.
The score of a request goes in `request.memo["dnsbl"]`; `client_score()` gives it to other
checks (greylist's greylist_only_listed), computing it when this check has not run.
Talks to: DNS via owlery.dns, the state store (optional). Tests: tests/policyd/test_dnsbl.py,
tests/policyd/test_dnsbl_greylist.py, tests/policyd/test_dnsbl_down.py,
tests/e2e/test_dnsbl_postfix.py
"""

from __future__ import annotations

import collections
import logging
from typing import Any

from owlery import dnsbl as core
from owlery.dns import build_resolver
from owlery.errors import TemporaryFailure
from owlery.reply import Reply
from owlery.settings import (Bool, Duration, Int, Networks, SettingType, int_range, matching,
                             setting, table_of)
from owlery.state import Capability, Write
from policyd import actions
from policyd.actions import DUNNO
from policyd.checks import Check, CheckContext, Verdict
from policyd.netmatch import NetworkMatcher
from policyd.sender import address_domain

log = logging.getLogger("owlery.policyd")


def format_reply_text(template: str, client: str, lists: str) -> str:
    """The reply text: %a the client address, %l the lists, %% a percent sign."""
    out, i = [], 0
    while i < len(template):
        c = template[i]
        if c == "%" and i + 1 < len(template):
            nxt = template[i + 1]
            out.append({"a": client, "l": lists, "%": "%"}.get(nxt, "%" + nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _parse_reply(v: Any) -> str:
    """"CODE D.S.N text" with %a (client address), %l (lists) and %% placeholders."""
    if not isinstance(v, str):
        raise ValueError(f"expected a string, got {v!r}")
    parts = v.split(" ", 2)
    if len(parts) < 2 or not parts[0].isdigit():
        raise ValueError(f"expected \"CODE D.S.N text\", got {v!r}")
    code = int(parts[0])
    if code // 100 not in (4, 5):
        raise ValueError(f"the DNSBL reply must be 4xx or 5xx, got {code}")
    Reply(code, parts[1], Reply.safe_text(format_reply_text(parts[2] if len(parts) > 2 else "",
                                                            "192.0.2.1", "bl.example")))
    return v


ReplyTemplate = SettingType("reply", _parse_reply)
_SKIP_DEFAULT = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                 "169.254.0.0/16", "fc00::/7", "fe80::/10"]

DNSBL_SITES = setting(
    "dnsbl_sites", core.SiteList, [],
    "DNS lists the client address is looked up in, as postscreen_dnsbl_sites: "
    "domain[=filter][*weight], e.g. [\"zen.spamhaus.org=127.0.0.[2..11]*3\", "
    "\"list.dnswl.org=127.0.[0..255].[1..3]*-2\"]. Negative weights allowlist.")
DNSBL_RHSBL_SENDER_SITES = setting(
    "dnsbl_rhsbl_sender_sites", core.SiteList, [],
    "Domain lists (RHSBL) the MAIL FROM domain is looked up in, same syntax, e.g. "
    "[\"dbl.spamhaus.org=127.0.1.[2..99]*3\"]; their weights add to the client's.")
DNSBL_RHSBL_HELO_SITES = setting(
    "dnsbl_rhsbl_helo_sites", core.SiteList, [],
    "Domain lists (RHSBL) the HELO name is looked up in (not an address literal), same syntax.")
DNSBL_THRESHOLD = setting(
    "dnsbl_threshold", Int, 1,
    "A client whose combined weight is at or over this is refused with dnsbl_reject_reply "
    "(postscreen_dnsbl_threshold).")
DNSBL_ALLOWLIST_THRESHOLD = setting(
    "dnsbl_allowlist_threshold", Int, 0,
    "Negative: a client whose combined weight is at or under this is allowlisted (greylisting "
    "trusts it, the decision log says dnsbl=allowlisted); 0 turns it off "
    "(postscreen_dnsbl_allowlist_threshold).")
DNSBL_REJECT_REPLY = setting(
    "dnsbl_reject_reply", ReplyTemplate, "554 5.7.1 Service unavailable; client [%a] blocked using %l",
    "Reply to a listed client: code, enhanced code, text; %a is the client address, %l the "
    "lists that counted (their names as dnsbl_reply_names shows them). A 4xx code defers instead.")
# A DNS list's domain as a reply or log line may show it (letters, digits, "-", "_", dots).
_LIST_NAME = matching(r"^(?=.{1,253}$)([A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*"
                      r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?$", "a list domain")
DNSBL_REPLY_NAMES = setting(
    "dnsbl_reply_names", table_of(_LIST_NAME, keys=_LIST_NAME, name="table of list domain = shown name"), {},
    "List domains as replies and logs show them, to hide a key in a list's name, e.g. "
    "{ \"KEY.zen.dq.spamhaus.net\" = \"zen.spamhaus.org\" } (postscreen_dnsbl_reply_map).")
DNSBL_TIMEOUT = setting(
    "dnsbl_timeout", Duration, 5,
    "Longest one list lookup may take (all lookups of a client run at once); a list that "
    "does not answer counts as not listing the client.", unit="s")
DNSBL_DOWN_AFTER = setting(
    "dnsbl_down_after", int_range(0, 1000), 3,
    "Failed lookups in a row (timeouts, server failures) after which a list counts as down: "
    "its lookups are skipped (read as not listed, logged) so that new clients stop waiting "
    "dnsbl_timeout for it; 0 never skips a list.")
DNSBL_DOWN_RETRY = setting(
    "dnsbl_down_retry", Duration, 30,
    "While a list is down, one client's lookup per this period still goes out; its first "
    "answer brings the list back.", unit="s")
DNSBL_CACHE_MIN_TTL = setting("dnsbl_cache_min_ttl", Duration, 60,
                              "Shortest time an answer is kept, whatever its TTL "
                              "(postscreen_dnsbl_min_ttl).", unit="s")
DNSBL_CACHE_MAX_TTL = setting("dnsbl_cache_max_ttl", Duration, "1h",
                              "Longest time an answer is kept (postscreen_dnsbl_max_ttl).", unit="s")
DNSBL_CACHE_ENTRIES = setting("dnsbl_cache_entries", int_range(0, 10_000_000), 100_000,
                              "Answers kept in memory per daemon process (least recently used go "
                              "first); 0 turns the memory cache off.")
DNSBL_SHARED_CACHE = setting(
    "dnsbl_shared_cache", Bool, True,
    "Also keep answers in the state store when it is shared by several MX hosts "
    "(state_backend = \"redis\"), so each list is asked once for all of them.")
DNSBL_SKIP_NETWORKS = setting("dnsbl_skip_networks", Networks, _SKIP_DEFAULT,
                              "Clients never looked up (loopback, private and link-local networks "
                              "are listed nowhere).")

_STORE_PREFIX = "dnsbl:"
_PASSES_REMEMBERED = 65536   # passing verdicts kept per check, by score
_STORE_WARN_EVERY = 60.0     # seconds between two "shared cache unavailable" warnings


def _helo_domain(helo: str) -> str:
    h = helo.strip().rstrip(".").lower()
    return "" if not h or h.startswith("[") or "." not in h else h


class DnsblEngine:
    """Looks up and scores clients; answers kept per TTL in memory and (shared store) Redis."""

    def __init__(self, ctx: CheckContext):
        self.ctx = ctx
        s = ctx.settings
        self.client_sites = tuple(s.dnsbl_sites)
        self.sender_sites = tuple(s.dnsbl_rhsbl_sender_sites)
        self.helo_sites = tuple(s.dnsbl_rhsbl_helo_sites)
        self.resolver = ctx.resolver if ctx.resolver is not None else build_resolver(s)
        self.timeout = s.dnsbl_timeout
        self.min_ttl, self.max_ttl = s.dnsbl_cache_min_ttl, max(s.dnsbl_cache_min_ttl, s.dnsbl_cache_max_ttl)
        self.entries = s.dnsbl_cache_entries
        self.skip = NetworkMatcher(s.dnsbl_skip_networks)
        self.health = core.ListHealth(s.dnsbl_down_after, s.dnsbl_down_retry)
        self.cache: collections.OrderedDict[str, tuple[float, core.Answer]] = collections.OrderedDict()
        self.scores: collections.OrderedDict[tuple, tuple[float, core.Score]] = collections.OrderedDict()
        self._inflight: dict[str, list] = {}
        self.store: Any = None
        if s.dnsbl_shared_cache and s.state_backend != "sqlite":   # SQLite is one host's: memory is enough
            from owlery.state import open_store
            store = ctx.resource("state", lambda: open_store(s))
            if Capability.SHARED in store.capabilities:
                self.store = store
        self.state_timeout = s.state_timeout
        self._store_warned = float("-inf")

    @property
    def configured(self) -> bool:
        return bool(self.client_sites or self.sender_sites or self.helo_sites)

    def subjects(self, request: Any) -> tuple[str, str, str]:
        """What is looked up: (client address, sender domain, HELO domain), "" when not."""
        sender = address_domain(request.sender) if self.sender_sites and request.sender else ""
        helo = _helo_domain(request.attr("helo_name")) if self.helo_sites else ""
        return request.client_address, sender, helo

    def queries(self, subjects: tuple[str, str, str]) -> list[core.Query]:
        client, sender, helo = subjects
        groups = [("client", client, self.client_sites)]
        if sender:
            groups.append(("sender", sender, self.sender_sites))
        if helo:
            groups.append(("helo", helo, self.helo_sites))
        return core.plan(groups)

    def score(self, request: Any, now: float) -> Any:
        """The request's Score at once when every answer is known, else an awaitable of it."""
        memo = request.memo.get("dnsbl")
        if memo is not None:
            return memo
        if request.client_address in self.skip:
            request.memo["dnsbl"] = core.Score()
            return request.memo["dnsbl"]
        subjects = self.subjects(request)
        # Clients come back: their score is kept as long as every answer it was made of.
        known = self.scores.get(subjects)
        if known is not None and known[0] > now:
            request.memo["dnsbl"] = known[1]
            return known[1]
        queries = self.queries(subjects)
        answers, missing = self._remembered(queries, now)
        if not missing:
            return self._scored(request, subjects, queries, answers)
        return self._score_later(request, subjects, queries, answers, missing, now)

    async def _score_later(self, request: Any, subjects: tuple, queries: list, answers: dict, missing: list,
                           now: float) -> core.Score:
        domains = {q.name: q.domain for q in queries}
        answers.update(await self._fetch(missing, now, domains))
        return self._scored(request, subjects, queries, answers)

    def _scored(self, request: Any, subjects: tuple, queries: list, answers: dict) -> core.Score:
        result = request.memo["dnsbl"] = core.score(queries, answers)
        kept = [self.cache.get(q.name) for q in queries]
        if self.entries > 0 and all(k is not None and k[1] is answers[q.name] for k, q in zip(kept, queries)):
            # a failed lookup is not kept, so neither is a score missing its answer
            self.scores[subjects] = (min((k[0] for k in kept if k is not None), default=float("inf")), result)
            while len(self.scores) > self.entries:
                self.scores.popitem(last=False)
        return result

    def _remembered(self, queries: list[core.Query], now: float) -> tuple[dict, list[str]]:
        answers: dict[str, core.Answer] = {}
        missing: list[str] = []
        for q in queries:
            if q.name in answers or q.name in missing:
                continue
            hit = self.cache.get(q.name)
            if hit is not None and hit[0] > now:
                self.cache.move_to_end(q.name)
                answers[q.name] = hit[1]
            else:
                missing.append(q.name)
        return answers, missing

    def _remember(self, name: str, answer: core.Answer, expires: float) -> None:
        if self.entries <= 0:
            return
        self.cache[name] = (expires, answer)
        self.cache.move_to_end(name)
        while len(self.cache) > self.entries:
            self.cache.popitem(last=False)

    def _ttl(self, answer: core.Answer) -> float:
        return min(self.max_ttl, max(self.min_ttl, answer.ttl))

    async def _fetch(self, names: list[str], now: float, domains: dict[str, str]) -> dict[str, core.Answer]:
        from twisted.internet import defer
        got: dict[str, core.Answer] = {}
        if self.store is not None:
            got.update(await self._read_shared(names, now))
        todo = []
        for n in names:
            if n in got:
                continue
            if self.health.skipped(domains.get(n, n), now):
                got[n] = core.Answer(error="list down")    # not cached: asked again once it is back
            else:
                todo.append(n)
        if not todo:
            return got
        fresh = await defer.gatherResults([self._lookup(n) for n in todo])
        writes = []
        for name, answer in zip(todo, fresh):
            got[name] = answer
            self._note_health(domains.get(name, name), answer, now)
            if answer.error is not None:
                log.warning("policyd: dnsbl: lookup of %s failed: %s; not counted", name, answer.error)
                continue
            zone_errors = [a for a in answer.addresses if core.error_reason(name, a)]
            if zone_errors:
                log.warning("policyd: dnsbl: %s answered %s: a list error, not a listing",
                            name, ",".join(zone_errors))
            expires = now + self._ttl(answer)
            self._remember(name, answer, expires)
            if self.store is not None:
                writes.append(Write("set", _STORE_PREFIX + name, f"{expires!r} {' '.join(answer.addresses)}".rstrip(),
                                    expires - now, now))
        if writes:
            d = self.ctx.run_blocking(self.store.write_many, writes, timeout=self.state_timeout)
            d.addErrback(self._store_failed, "write")      # nobody waits for it
        return got

    def _note_health(self, domain: str, answer: core.Answer, now: float) -> None:
        if answer.error is None:
            if self.health.answered(domain):
                log.warning("policyd: dnsbl: list %s answers again; looked up as before", domain)
        elif self.health.failed(domain, now):
            log.warning("policyd: dnsbl: list %s is down (%d failed lookups in a row): skipped, "
                        "read as not listed, probed every %gs", domain, self.health.down_after,
                        self.health.retry)

    def _lookup(self, name: str) -> Any:
        """One A lookup in the blocking pool; concurrent requests for a name share it."""
        from twisted.internet import defer
        waiters = self._inflight.get(name)
        if waiters is not None:
            d = defer.Deferred()
            waiters.append(d)
            return d
        self._inflight[name] = []
        d = self.ctx.run_blocking(core.lookup_a, self.resolver, name, self.timeout, self.min_ttl,
                                  timeout=self.timeout + 1)

        def failed(failure: Any) -> core.Answer:
            failure.trap(defer.TimeoutError, TemporaryFailure)
            return core.Answer(error="timeout" if failure.check(defer.TimeoutError) else failure.getErrorMessage())

        def done(answer: Any) -> Any:
            for w in self._inflight.pop(name, []):
                w.callback(answer)
            return answer

        def broken(failure: Any) -> Any:
            for w in self._inflight.pop(name, []):
                w.errback(failure)
            return failure
        return d.addErrback(failed).addCallbacks(done, broken)

    async def _read_shared(self, names: list[str], now: float) -> dict[str, core.Answer]:
        keys = [_STORE_PREFIX + n for n in names]
        try:
            values = await self.ctx.run_blocking(self.store.get_many, keys, now, timeout=self.state_timeout)
        except Exception as e:  # noqa: BLE001 - a store that fails is just no shared cache
            self._store_failed(e, "read")
            return {}
        out = {}
        for name, value in zip(names, values):
            if value is None:
                continue
            head, _, rest = value.partition(" ")
            try:
                expires = float(head)
            except ValueError:
                continue
            if expires <= now:
                continue
            answer = core.Answer(tuple(rest.split()), expires - now)
            out[name] = answer
            self._remember(name, answer, expires)
        return out

    def _store_failed(self, error: Any, what: str) -> None:
        now = self.ctx.now()
        if now - self._store_warned >= _STORE_WARN_EVERY:
            self._store_warned = now
            text = error.getErrorMessage() if hasattr(error, "getErrorMessage") else str(error) or type(error).__name__
            log.warning("policyd: dnsbl: shared cache %s failed (%s); going on without it", what, text)


def engine_of(ctx: CheckContext) -> DnsblEngine:
    return ctx.resource("dnsbl", lambda: DnsblEngine(ctx))


async def client_score(ctx: CheckContext, request: Any, now: float) -> core.Score:
    """This request's DNSBL Score (the dnsbl check's, or computed now); an empty Score when
    the client is authenticated or no list is configured."""
    engine = engine_of(ctx)
    if request.sasl_username or not engine.configured:
        return core.Score()
    result = engine.score(request, now)
    return result if isinstance(result, core.Score) else await result


class DnsblCheck(Check):
    name = "dnsbl"
    states = frozenset({"RCPT"})
    enabled_by_default = False   # opt in: policyd_checks = { RCPT = [..., "dnsbl", ...] }

    def __init__(self, ctx: CheckContext):
        super().__init__(ctx)
        s = ctx.settings
        self.engine = engine_of(ctx)
        self.threshold = s.dnsbl_threshold
        self.allowlist = s.dnsbl_allowlist_threshold
        code, dsn, *text = s.dnsbl_reject_reply.split(" ", 2)
        self.code, self.dsn, self.text = int(code), dsn, text[0] if text else ""
        self.names = {k.lower().rstrip("."): v for k, v in s.dnsbl_reply_names.items()}
        self._passes: dict[int, tuple[core.Score, Verdict]] = {}
        if not self.engine.configured:
            log.warning("policyd: the dnsbl check runs but dnsbl_sites, dnsbl_rhsbl_sender_sites and "
                        "dnsbl_rhsbl_helo_sites are all empty: it passes everything")

    def evaluate(self, request, now):
        if request.sasl_username:
            return Verdict(DUNNO, {"dnsbl": "authenticated"})
        if request.client_address in self.engine.skip:
            return Verdict(DUNNO, {"dnsbl": "skip-network"})
        if not self.engine.configured:
            return DUNNO
        result = self.engine.score(request, now)
        if isinstance(result, core.Score):
            return self._verdict(request, result)
        return self._later(request, result)

    async def _later(self, request: Any, pending: Any) -> Verdict:
        return self._verdict(request, await pending)

    def _shown(self, hit: core.Hit) -> str:
        name = self.names.get(hit.domain, hit.domain)
        return name if hit.identity == "client" else f"{name} ({hit.identity} domain)"

    def _verdict(self, request: Any, result: core.Score) -> Verdict:
        # A passing verdict depends on the score only: made once per kept score (clients come back).
        known = self._passes.get(id(result))
        if known is not None and known[0] is result:
            return known[1]
        verdict = self._judge(request, result)
        if verdict.action is DUNNO:
            if len(self._passes) >= _PASSES_REMEMBERED:
                self._passes.clear()
            self._passes[id(result)] = (result, verdict)
        return verdict

    def _judge(self, request: Any, result: core.Score) -> Verdict:
        fields: dict[str, Any] = {"dnsbl_score": result.total}
        if result.errors:
            fields["dnsbl_errors"] = ",".join(f"{self.names.get(d, d)}:{why.replace(' ', '_')}"
                                              for d, why in result.errors)
        if result.total >= self.threshold:
            shown = list(dict.fromkeys(self._shown(h) for h in result.hits if h.weight > 0))
            fields = {"dnsbl": "listed", **fields, "dnsbl_lists": ",".join(
                self.names.get(h.domain, h.domain) for h in result.hits if h.weight > 0)}
            text = Reply.safe_text(format_reply_text(self.text, request.client_address, ", ".join(shown)), 380)
            reply = Reply(self.code, self.dsn, text)
            action = actions.reject(reply) if reply.is_permanent else actions.defer_if_permit(reply)
            return Verdict(action, fields)
        if self.allowlist < 0 and result.total <= self.allowlist:
            return Verdict(DUNNO, {"dnsbl": "allowlisted", **fields})
        return Verdict(DUNNO, {"dnsbl": "pass", **fields})
