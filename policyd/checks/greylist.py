"""Greylisting check (RCPT): DEFER_IF_PERMIT 4.7.1 for an unknown triplet, X-Greylist on the accepted retry.

Skips authenticated senders, listed networks, whitelisted clients and recipients (postgrey's
file formats, re-read on change) and, optionally, senders whose SPF passes (for a listed
domain, or any with greylist_skip_spf_pass), clients a DNSWL allowlists
(dnsbl_allowlist_threshold) and, with greylist_only_listed, every client without a positive
DNSBL weight (score-gated greylisting, as Rspamd does). At RCPT only SPF and DNS lists are
known; both come from engines shared with the spf and dnsbl checks (computed once per
message or client, whichever check asks first), which run before greylist in the default
order. Whitelists are matched here, on the reactor. Then greylisting is decided in memory
and persisted behind (policyd/greylist_cache.py says why that stays consistent across
workers and MX hosts): repeats come from this process's `GreylistMemory`; a miss reads the
triplet from the store (inline on engines with `Capability.LOCAL_READS`, SQLite; on Redis,
the misses of one reactor turn in one script through `ReactorRedis`, a client on the reactor
itself, or through the state worker thread when that client cannot serve the URL, e.g.
rediss://), `Greylister.step` decides on the reactor, and the writes go to a `WriteBehind`
queue that one flush persists every greylist_flush_interval or greylist_flush_records writes
(SQLite: on the "state-flush" worker thread; Redis: pipelined from the reactor), and at
shutdown (`close`). The one exception is a pass (rare: one per triplet's life): it is answered once
stored, so a worker or MX host asked right after sees it passed (no second header). A store
that is down answers a 4xx (never a pass, never a 5xx); a flush that fails is retried, and a
write it loses costs one more deferral.
Talks to: the state store (ctx.resource "state"), whitelist files, the SPF and DNSBL engines (optional).
Tests: tests/policyd/test_greylist_check.py, tests/policyd/test_greylist_writebehind.py,
tests/policyd/test_dnsbl_greylist.py,
tests/policyd/test_greylist_reactor_redis.py, tests/policyd/test_pending_headers.py,
tests/e2e/test_greylist_postfix.py,
tests/e2e/test_greylist_headers_e2e.py
"""

from __future__ import annotations

import email.utils
import functools
import logging
import socket
import threading
from typing import Any

from owlery.errors import TemporaryFailure
from owlery.reply import Reply
from owlery.settings import Bool, Duration, Networks, Size, Str, StrList, int_range, setting
from owlery.state import Capability
from policyd import actions
from policyd.actions import DUNNO
from policyd.checks import Check, CheckContext, Verdict
from policyd.greylist_cache import GreylistMemory, WriteBehind
from policyd.greylist_core import (ClientWhitelist, Greylister, GreylistPolicy, RecipientWhitelist,
                                   WhitelistFiles, format_header, format_reply_text)
from policyd.netmatch import NetworkMatcher
from policyd.sender import address_domain

GREYLIST_DELAY = setting("greylist_delay", Duration, 300,
                         "How long a new (client network, sender, recipient) triplet is deferred.", unit="s")
GREYLIST_RETRY_WINDOW = setting("greylist_retry_window", Duration, "2d",
                                "How long after the first attempt a retry still counts; later, the "
                                "triplet starts over.", unit="s")
GREYLIST_MAX_AGE = setting("greylist_max_age", Duration, "35d",
                           "A passed triplet (and a client's auto-whitelist count) is forgotten this "
                           "long after it was last seen.", unit="s")
GREYLIST_IPV4_PREFIX = setting("greylist_ipv4_prefix", int_range(0, 32), 24,
                               "Prefix length of the client network in the triplet for IPv4 "
                               "(big senders retry from another host of the same pool).")
GREYLIST_IPV6_PREFIX = setting("greylist_ipv6_prefix", int_range(0, 128), 64,
                               "Prefix length of the client network in the triplet for IPv6.")
GREYLIST_AUTO_WHITELIST_CLIENTS = setting(
    "greylist_auto_whitelist_clients", int_range(0, 100000), 5,
    "A client IP that passed greylisting this many times (counted at most once an hour) is no "
    "longer greylisted; 0 turns the auto-whitelist off.")
GREYLIST_WHITELIST_CLIENTS = setting(
    "greylist_whitelist_clients", StrList,
    ["/etc/owlery/greylist_whitelist_clients", "/etc/postgrey/whitelist_clients",
     "/etc/postgrey/whitelist_clients.local"],
    "Files of clients never greylisted, in postgrey's format (name suffix, IP, CIDR, partial "
    "IPv4, /regex/ on the client name); missing files are empty; re-read when changed.")
GREYLIST_WHITELIST_RECIPIENTS = setting(
    "greylist_whitelist_recipients", StrList,
    ["/etc/owlery/greylist_whitelist_recipients", "/etc/postgrey/whitelist_recipients",
     "/etc/postgrey/whitelist_recipients.local"],
    "Files of recipients never greylisted, in postgrey's format (user@, user@domain, domain, "
    "/regex/); missing files are empty; re-read when changed.")
GREYLIST_SKIP_NETWORKS = setting("greylist_skip_networks", Networks, ["127.0.0.0/8", "::1/128"],
                                 "Clients in these networks are never greylisted.")
GREYLIST_REPLY_TEXT = setting("greylist_reply_text", Str, "Greylisted, please try again in %s seconds",
                              "Text of the 4.7.1 deferral: %s = seconds left, %r = recipient domain.")
GREYLIST_HEADER = setting("greylist_header", Str, "X-Greylist: delayed %t seconds by Owlery at %h; %d",
                          "Header PREPENDed (once per message) when a greylisted message is "
                          "accepted on retry: %t = seconds delayed, %h = host, %d = date. Empty: none.")
GREYLIST_HOSTNAME = setting("greylist_hostname", Str, None,
                            "Host name for %h in greylist_header (unset: this machine's name).")
GREYLIST_PRIVACY = setting("greylist_privacy", Bool, False,
                           "Store triplets as SHA-256 hashes instead of readable addresses "
                           "(`owlery greylist list` then shows hashes).")
GREYLIST_SPF_PASS_DOMAINS = setting(
    "greylist_spf_pass_domains", StrList, [],
    "Sender domains (and their subdomains) that skip greylisting when their MAIL FROM SPF "
    "result is pass, e.g. big providers that retry from other pools.")
GREYLIST_SKIP_SPF_PASS = setting(
    "greylist_skip_spf_pass", Bool, False,
    "Skip greylisting for every sender whose MAIL FROM SPF result is pass (the SPF check's "
    "settings and cache; an SPF lookup that fails greylists as usual). Clients at or under a "
    "negative dnsbl_allowlist_threshold (DNSWL) also skip it.")
GREYLIST_ONLY_LISTED = setting(
    "greylist_only_listed", Bool, False,
    "Greylist only clients with a positive DNSBL weight (dnsbl_sites and the RHSBL lists, "
    "below dnsbl_threshold, since at it the dnsbl check refuses them); others pass at once.")

GREYLIST_MEMORY_TTL = setting(
    "greylist_memory_ttl", Duration, 60,
    "How long this daemon reuses what the store told it about a triplet that is still waiting, "
    "one that passed, or an auto-whitelisted client, instead of asking the store again (a purge "
    "or removal with `owlery greylist` is seen by every daemon within this time). 0: always ask.",
    unit="s")
GREYLIST_MEMORY_ENTRIES = setting(
    "greylist_memory_entries", int_range(0, 10_000_000), 200_000,
    "Most triplets remembered per daemon process for greylist_memory_ttl; 0 turns the memory off.")
GREYLIST_MEMORY_MAX = setting(
    "greylist_memory_max", Size, "64M",
    "Most memory the remembered triplets take per daemon process (an estimate: about 300 bytes "
    "plus the key each); beyond it the least recently used are forgotten.", unit="bytes")
GREYLIST_FLUSH_INTERVAL = setting(
    "greylist_flush_interval", Duration, "20ms",
    "Greylist writes (first sights, passes) are answered at once and stored in one batch at most "
    "this long after; keep it far below greylist_delay (another worker or MX host reads a first "
    "sight from the store). A crash loses at most this interval's writes: one more deferral each.",
    unit="s")
GREYLIST_FLUSH_RECORDS = setting(
    "greylist_flush_records", int_range(1, 100_000), 500,
    "A greylist batch is stored at once when it reaches this many writes, before the interval.")

GREYLIST_DSN = "4.7.1"
_KEYS_REMEMBERED = 65536     # triplet keys kept per check
_BACKLOG_BATCHES = 100       # writes kept while the store is down: this many full batches
_RETRY_AFTER_FAILURE = 1.0   # seconds before a failed flush is tried again

log = logging.getLogger("owlery.policyd")


def policy_from(settings: Any) -> GreylistPolicy:
    return GreylistPolicy(delay=settings.greylist_delay, retry_window=settings.greylist_retry_window,
                          max_age=settings.greylist_max_age, v4_prefix=settings.greylist_ipv4_prefix,
                          v6_prefix=settings.greylist_ipv6_prefix,
                          auto_whitelist_clients=settings.greylist_auto_whitelist_clients,
                          privacy=settings.greylist_privacy)


def _domain_listed(domain: str, listed: frozenset[str]) -> bool:
    labels = domain.split(".")
    return any(".".join(labels[i:]) in listed for i in range(len(labels)))


class GreylistCheck(Check):
    name = "greylist"
    states = frozenset({"RCPT"})
    enabled_by_default = False   # opt in: policyd_checks = { RCPT = [..., "greylist"] }

    def __init__(self, ctx: CheckContext):
        super().__init__(ctx)
        s = ctx.settings
        self.greylister = Greylister(policy_from(s))
        self.memory = GreylistMemory(self.greylister.policy, s.greylist_memory_ttl, s.greylist_memory_entries,
                                     s.greylist_memory_max)
        self.behind = WriteBehind(s.greylist_flush_records, s.greylist_flush_records * _BACKLOG_BATCHES)
        self.flush_interval = s.greylist_flush_interval
        self.store = ctx.state
        self.clients = WhitelistFiles(s.greylist_whitelist_clients, ClientWhitelist.parse)
        self.recipients = WhitelistFiles(s.greylist_whitelist_recipients, RecipientWhitelist.parse)
        self.skip_networks = NetworkMatcher(s.greylist_skip_networks)
        self.reply_text = s.greylist_reply_text
        self.header = s.greylist_header
        self.hostname = s.greylist_hostname if s.greylist_hostname is not None else socket.gethostname()
        self.spf_domains = frozenset(d.lower().rstrip(".") for d in s.greylist_spf_pass_domains)
        self.spf_all = s.greylist_skip_spf_pass
        self.only_listed = s.greylist_only_listed
        # DNSWL-allowlisted clients (dnsbl_allowlist_threshold < 0) are trusted too.
        self.dnsbl_allowlist = s.dnsbl_allowlist_threshold
        if self.only_listed and not (s.dnsbl_sites or s.dnsbl_rhsbl_sender_sites or s.dnsbl_rhsbl_helo_sites):
            log.warning("policyd: greylist_only_listed is on but no DNS list is set (dnsbl_sites): "
                        "no client will be greylisted")
        self.timeout = s.state_timeout
        self.redis = _reactor_redis(ctx, self.store)
        self._reads: list[tuple[list[str], float, Any]] = []   # misses waiting for this turn's read
        self._keys: dict[str, str] = {}
        # One action per (seconds left, recipient domain): built and validated once, reused.
        self._deferral = functools.lru_cache(maxsize=4096)(self._make_deferral)
        self._timer: Any = None          # the pending flush's DelayedCall
        self._flight: _Flight | None = None
        self._flush_lock = threading.Lock()   # held while a batch is written (close waits on it)
        self._closed = False
        if 0 < s.greylist_delay <= 10 * (self.flush_interval + self.timeout):
            log.warning("policyd: greylist_delay %gs is not far above greylist_flush_interval + state_timeout "
                        "(%gs): a retry on another worker or MX host may miss the first sight and be "
                        "deferred once more", s.greylist_delay, self.flush_interval + self.timeout)

    def _make_deferral(self, seconds_left: int, domain: str) -> Any:
        text = Reply.safe_text(format_reply_text(self.reply_text, seconds_left, f"x@{domain}"))
        return actions.defer_if_permit(Reply(450, GREYLIST_DSN, text))

    # --- reads (memory misses) ----------------------------------------------------------

    def _read_batch(self, items: list[tuple[list[str], float]]) -> list[tuple[bool, Any]]:
        """In the state worker thread: the keys of every miss queued meanwhile, in one read."""
        keys = list(dict.fromkeys(k for ks, _ in items for k in ks))
        # Judged at the latest `now`: a key that died meanwhile reads as absent (a deferral), never
        # as a record still alive.
        values = dict(zip(keys, self.store.get_many(keys, max(now for _, now in items))))
        return [(True, [values[k] for k in ks]) for ks, _ in items]

    async def _stored(self, key: str, client: str, now: float) -> list[str | None]:
        keys = self.greylister.reads(key, client)
        mine = self.behind.record(key)
        if mine is not None:         # our own first sight or pass, its write still on the way
            return [None] * (len(keys) - 1) + [mine]
        if Capability.LOCAL_READS in self.store.capabilities:
            return self.store.get_many(keys, now)
        if self.redis is not None:
            return await self._read_on_reactor(keys, now)
        return await self.ctx.run_batched("state", self._read_batch, (keys, now), timeout=self.timeout)

    def _read_on_reactor(self, keys: list[str], now: float) -> Any:
        """A Deferred of the stored values of `keys`; the misses of one reactor turn go in one
        script (one round trip), judged at the latest `now` as `_read_batch` does."""
        from twisted.internet import defer
        d = defer.Deferred()
        self._reads.append((keys, now, d))
        if len(self._reads) == 1:
            self.ctx.clock.callLater(0, self._send_reads)
        return d

    def _send_reads(self) -> None:
        reads, self._reads = self._reads, []
        keys = list(dict.fromkeys(k for ks, _, _ in reads for k in ks))

        def answer(values: list) -> None:
            got = dict(zip(keys, values))
            for ks, _, d in reads:
                d.callback([got[k] for k in ks])

        def failed(failure: Any) -> None:
            for _, _, d in reads:
                d.errback(failure)
        from twisted.internet import defer
        defer.maybeDeferred(self.redis.get_many, keys, max(now for _, now, _ in reads)).addCallbacks(answer, failed)

    # --- write-behind --------------------------------------------------------------------

    def _queue(self, writes: list) -> None:
        if self.behind.add(writes):
            self._flush()
        elif self._timer is None and self._flight is None:
            self._timer = self.ctx.clock.callLater(self.flush_interval, self._flush)

    def _flush(self) -> "_Flight | None":
        """Send what is queued to the store in one batch (one flush in flight at a time)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._flight is not None or not len(self.behind) or self._closed:
            return None
        flight = self._flight = _Flight(self.behind.take())
        if self.redis is not None:
            d = self.redis.write_many(flight.writes).addCallback(self._written_on_reactor, flight)
        else:
            d = self.ctx.run_batched("state-flush", self._write_batch, flight, timeout=self.timeout)
        d.addCallbacks(self._flushed, self._flush_failed, callbackArgs=(flight,), errbackArgs=(flight,))
        return flight

    async def _write_through(self, writes: list) -> None:
        """A pass is stored before it is answered (passes are rare; first sights are the
        flood): another worker or MX host asked right after then finds it passed and adds
        no second X-Greylist header. It goes with whatever is queued, in the next flush.
        A store that fails it fails the request (a 4xx); the write stays queued."""
        self.behind.add(writes)
        while self._flight is not None:
            try:
                await self._flight.settled()
            except Exception:  # noqa: BLE001 - that earlier batch's failure is not ours; ours follows
                pass
        flight = self._flush()
        if flight is not None:
            await flight.settled()

    @staticmethod
    def _written_on_reactor(results: list, flight: "_Flight") -> list:
        flight.stored = True
        return results

    def _write_batch(self, flights: list["_Flight"]) -> list[tuple[bool, Any]]:
        """In the flush worker thread: each batch in one write_many (normally there is one)."""
        out: list[tuple[bool, Any]] = []
        with self._flush_lock:
            for flight in flights:
                if flight.stored:       # close() stored it meanwhile
                    out.append((True, [None] * len(flight.writes)))
                    continue
                try:
                    results = self.store.write_many(flight.writes)
                except Exception as e:  # noqa: BLE001 - handed back: the batch is kept and retried
                    out.append((False, e))
                else:
                    flight.stored = True
                    out.append((True, results))
        return out

    def _flushed(self, results: list, flight: "_Flight") -> None:
        self._flight = None
        flight.settle(None)
        for key in self.behind.done(flight.writes, results):
            self.memory.forget(key)     # another worker or host saw it first: read its time next
        if len(self.behind) >= self.behind.flush_records:
            self._flush()
        elif len(self.behind) and self._timer is None and not self._closed:
            self._timer = self.ctx.clock.callLater(self.flush_interval, self._flush)

    def _flush_failed(self, failure: Any, flight: "_Flight") -> None:
        if flight.stored:         # timed out here, yet written in the end
            self._flushed([None] * len(flight.writes), flight)
            return
        self._flight = None
        dropped = self.behind.failed(flight.writes)
        flight.settle(failure)
        log.warning("policyd: greylist: storing %d writes failed: %s; kept %d for the next try, dropped %d "
                    "(a lost first sight costs that triplet one more deferral)",
                    len(flight.writes), failure.getErrorMessage(), len(self.behind), dropped)
        if self._timer is None and not self._closed:
            self._timer = self.ctx.clock.callLater(max(self.flush_interval, _RETRY_AFTER_FAILURE), self._flush)

    def close(self) -> None:
        """Shutdown or reload: store what is queued now, in the calling thread (after the batch
        in flight, if any, is through)."""
        self._closed = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self.redis is not None:
            # Nothing can fire on the reactor any more: what is in flight there is written
            # again below (adds and sets are idempotent; a count is gated once an hour).
            self.redis.close()
        if not self._flush_lock.acquire(timeout=self.timeout):
            log.warning("policyd: greylist: a flush still runs at shutdown; %d writes not stored",
                        len(self.behind))
            return
        try:
            writes = self.behind.take()
            flight = self._flight
            if flight is not None and not flight.stored:
                writes = flight.writes + writes     # failed, or not run yet: store it here
            if writes:
                try:
                    self.store.write_many(writes)
                except Exception as e:  # noqa: BLE001 - shutting down: say what is lost, go on
                    log.warning("policyd: greylist: storing %d writes at shutdown failed: %s "
                                "(one more deferral each)", len(writes), e)
                else:
                    if flight is not None:
                        flight.stored = True
                    log.info("policyd: greylist: stored %d writes at shutdown", len(writes))
        finally:
            self._flush_lock.release()

    async def evaluate(self, request, now):
        if request.sasl_username:
            return Verdict(DUNNO, {"greylist": "authenticated"})
        client = request.client_address
        if client in self.skip_networks:
            return Verdict(DUNNO, {"greylist": "skip-network"})
        if (self.spf_all or self.spf_domains) and request.sender:
            domain = address_domain(request.sender)
            if domain and (self.spf_all or _domain_listed(domain, self.spf_domains)):
                if await self._spf_passes(request):
                    return Verdict(DUNNO, {"greylist": "spf-pass"})
        if self.only_listed or self.dnsbl_allowlist < 0:
            from policyd.checks.dnsbl import client_score
            weight = (await client_score(self.ctx, request, now)).total
            if self.dnsbl_allowlist < 0 and weight <= self.dnsbl_allowlist:
                return Verdict(DUNNO, {"greylist": "dnsbl-allowlisted", "dnsbl_score": weight})
            if self.only_listed and weight <= 0:
                return Verdict(DUNNO, {"greylist": "not-listed", "dnsbl_score": weight})
        # Whitelist files are stat'ed at most once a second and re-read only when changed.
        if self.clients.current(now).matches(client, request.client_name):
            return Verdict(DUNNO, {"greylist": "whitelisted-client"})
        if self.recipients.current(now).matches(request.recipient):
            return Verdict(DUNNO, {"greylist": "whitelisted-recipient"})
        # (one string key, NUL-joined: NUL cannot occur in a policy attribute; a dict of strings
        # is never tracked by the cyclic collector, tests/policyd/test_memo_untracked.py)
        triplet = f"{client}\0{request.sender}\0{request.recipient}"
        key = self._keys.get(triplet)
        if key is None:     # normalising the sender and the client network costs; triplets repeat
            if len(self._keys) >= _KEYS_REMEMBERED:
                self._keys.clear()
            key = self._keys[triplet] = self.greylister.key(client, request.sender, request.recipient)
        result = self.memory.answer(key, client, now)
        if result is None:
            if self._closed:
                raise TemporaryFailure("greylist: shutting down")
            result, writes = self.greylister.step(key, client, await self._stored(key, client, now), now)
            if result.outcome == "passed":
                await self._write_through(writes)
            elif writes:
                self._queue(writes)
            self.memory.learn(result, client, now)
        if result.deferred:
            return Verdict(self._deferral(result.seconds_left, address_domain(request.recipient)),
                           {"greylist": "new" if result.new else "early-retry",
                            "delay_left": result.seconds_left})
        if result.outcome == "passed" and self.header:
            header = format_header(self.header, result.delayed, self.hostname,
                                   email.utils.formatdate(now, localtime=True))
            return Verdict(actions.prepend(Reply.safe_text(header, 900)),
                           {"greylist": "passed", "delayed": result.delayed})
        if result.outcome == "passed":        # once per triplet: the end of its greylisting
            return Verdict(DUNNO, {"greylist": "passed", "delayed": result.delayed}, noteworthy=True)
        return Verdict(DUNNO, {"greylist": result.outcome})

    async def _spf_passes(self, request: Any) -> bool:
        """The MAIL FROM SPF result is pass (computed once per message by the SPF engine, which
        the spf check shares); a lookup that fails is no pass, so the client is greylisted."""
        from twisted.internet import defer
        from policyd.checks.spf import mailfrom_result
        try:
            return await mailfrom_result(self.ctx, request) == "pass"
        except (TemporaryFailure, defer.TimeoutError) as e:
            log.info("policyd: greylist: SPF for %s unavailable (%s); greylisting as usual",
                     request.sender, str(e) or type(e).__name__)
            return False


def _reactor_redis(ctx: CheckContext, store: Any) -> Any:
    """A ReactorRedis for a Redis store on a real reactor, else None (the thread path: tests on
    a task.Clock, or a URL the reactor client does not serve, such as rediss://)."""
    if getattr(store, "name", None) != "redis" or not hasattr(ctx.clock, "connectTCP"):
        return None
    from owlery.state import redis_url
    from owlery.state.redis_reactor import ReactorRedis
    s = ctx.settings
    try:
        client = ReactorRedis(ctx.clock, redis_url(s), prefix=s.state_key_prefix, timeout=s.state_timeout)
    except ValueError as e:
        log.info("policyd: greylist: Redis calls go through a worker thread: %s", e)
        return None
    log.info("policyd: greylist: Redis reads and writes on the reactor")
    return client


class _Flight:
    """One batch on its way to the store; `stored` is set in the flush thread once written,
    `settle` on the reactor once its outcome is handled (None, or the failure)."""

    __slots__ = ("writes", "stored", "outcome", "_waiters")

    def __init__(self, writes: list):
        self.writes = writes
        self.stored = False
        self.outcome: Any = _PENDING
        self._waiters: list = []

    def settled(self) -> Any:
        """A Deferred that fires (or fails) with this batch's outcome."""
        from twisted.internet import defer
        if self.outcome is _PENDING:
            d = defer.Deferred()
            self._waiters.append(d)
            return d
        return defer.fail(self.outcome) if self.outcome is not None else defer.succeed(None)

    def settle(self, failure: Any) -> None:
        self.outcome = failure
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            if failure is None:
                d.callback(None)
            else:
                d.errback(failure)


_PENDING = object()
