"""Greylisting check (RCPT): DEFER_IF_PERMIT 4.7.1 for an unknown triplet, X-Greylist on the accepted retry.

Skips authenticated senders, listed networks, whitelisted clients and recipients (postgrey's
file formats, re-read on change) and, optionally, senders whose SPF passes for a listed
domain. Whitelists are matched here, on the reactor; repeats whose answer cannot have
changed (a triplet still waiting out its delay, a known triplet, an auto-whitelisted
client) come from this process's `GreylistMemory` at once; everything else (new
triplets, the retry that passes) is decided by `policyd.greylist_core.Greylister` on the
state worker thread against the store shared with the rate-limit check (SQLite, or Redis
for several MX hosts). A store that is down answers a 4xx (never a pass, never a 5xx).
Talks to: the state store (ctx.resource "state"), whitelist files, the SPF engine (optional).
Tests: tests/policyd/test_greylist_check.py, tests/policyd/test_pending_headers.py,
tests/e2e/test_greylist_postfix.py, tests/e2e/test_greylist_headers_e2e.py
"""

from __future__ import annotations

import email.utils
import functools
import socket
from typing import Any

from owlery.reply import Reply
from owlery.settings import Bool, Duration, Networks, Str, StrList, int_range, setting
from policyd import actions
from policyd.actions import DUNNO
from policyd.checks import Check, CheckContext, Verdict
from policyd.greylist_core import (ClientWhitelist, Greylister, GreylistMemory, GreylistPolicy,
                                   RecipientWhitelist, WhitelistFiles, format_header, format_reply_text)
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

GREYLIST_MEMORY_TTL = setting(
    "greylist_memory_ttl", Duration, 60,
    "How long this daemon reuses what the store told it about a triplet that is still waiting, "
    "one that passed, or an auto-whitelisted client, instead of asking the store again (a purge "
    "or removal with `owlery greylist` is seen by every daemon within this time). 0: always ask.",
    unit="s")
GREYLIST_MEMORY_ENTRIES = setting(
    "greylist_memory_entries", int_range(0, 10_000_000), 200_000,
    "Most triplets remembered per daemon process for greylist_memory_ttl (about 150 bytes each).")

GREYLIST_DSN = "4.7.1"
_KEYS_REMEMBERED = 65536     # triplet keys kept per check


def policy_from(settings: Any) -> GreylistPolicy:
    return GreylistPolicy(delay=settings.greylist_delay, retry_window=settings.greylist_retry_window,
                          max_age=settings.greylist_max_age, v4_prefix=settings.greylist_ipv4_prefix,
                          v6_prefix=settings.greylist_ipv6_prefix,
                          auto_whitelist_clients=settings.greylist_auto_whitelist_clients,
                          privacy=settings.greylist_privacy)


def open_state(ctx: CheckContext) -> Any:
    """The state store shared by greylist and rate-limit checks (one per daemon)."""
    from owlery.state import open_store
    return ctx.resource("state", lambda: open_store(ctx.settings))


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
        self.memory = GreylistMemory(self.greylister.policy, s.greylist_memory_ttl, s.greylist_memory_entries)
        self.store = open_state(ctx)
        self.clients = WhitelistFiles(s.greylist_whitelist_clients, ClientWhitelist.parse)
        self.recipients = WhitelistFiles(s.greylist_whitelist_recipients, RecipientWhitelist.parse)
        self.skip_networks = NetworkMatcher(s.greylist_skip_networks)
        self.reply_text = s.greylist_reply_text
        self.header = s.greylist_header
        self.hostname = s.greylist_hostname if s.greylist_hostname is not None else socket.gethostname()
        self.spf_domains = frozenset(d.lower().rstrip(".") for d in s.greylist_spf_pass_domains)
        self.timeout = s.state_timeout
        self._keys: dict[tuple[str, str, str], str] = {}
        # One action per (seconds left, recipient domain): built and validated once, reused.
        self._deferral = functools.lru_cache(maxsize=4096)(self._make_deferral)

    def _make_deferral(self, seconds_left: int, domain: str) -> Any:
        text = Reply.safe_text(format_reply_text(self.reply_text, seconds_left, f"x@{domain}"))
        return actions.defer_if_permit(Reply(450, GREYLIST_DSN, text))

    def _batch(self, items: list[tuple[str, str, str, float]]) -> list[tuple[bool, Any]]:
        """In the state worker thread: the store decides for all queued items at once (one
        Redis round trip, or one SQLite transaction each)."""
        return self.greylister.decide_many(self.store, items)

    async def evaluate(self, request, now):
        if request.sasl_username:
            return Verdict(DUNNO, {"greylist": "authenticated"})
        client = request.client_address
        if client in self.skip_networks:
            return Verdict(DUNNO, {"greylist": "skip-network"})
        if self.spf_domains and request.sender:
            domain = address_domain(request.sender)
            if domain and _domain_listed(domain, self.spf_domains):
                from policyd.checks.spf import mailfrom_result
                result = await mailfrom_result(self.ctx, request)
                if result == "pass":
                    return Verdict(DUNNO, {"greylist": "spf-pass"})
        # Whitelist files are stat'ed at most once a second and re-read only when changed.
        if self.clients.current(now).matches(client, request.client_name):
            return Verdict(DUNNO, {"greylist": "whitelisted-client"})
        if self.recipients.current(now).matches(request.recipient):
            return Verdict(DUNNO, {"greylist": "whitelisted-recipient"})
        triplet = (client, request.sender, request.recipient)
        key = self._keys.get(triplet)
        if key is None:     # normalising the sender and the client network costs; triplets repeat
            if len(self._keys) >= _KEYS_REMEMBERED:
                self._keys.clear()
            key = self._keys[triplet] = self.greylister.key(*triplet)
        result = self.memory.answer(key, client, now)
        if result is None:
            result = await self.ctx.run_batched("state", self._batch, (client, request.sender, request.recipient, now),
                                                timeout=self.timeout)
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
        return Verdict(DUNNO, {"greylist": result.outcome})
