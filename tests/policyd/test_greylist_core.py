"""Greylist decisions with an injected clock: keys, sender normalisation, whitelists, the state walk."""

from __future__ import annotations

import os

import pytest

from owlery.state.memory_store import MemoryStore
from policyd import greylist_core
from policyd.greylist_core import (ClientWhitelist, Greylister, GreylistPolicy, RecipientWhitelist,
                                   WhitelistFiles, client_net, format_header, format_reply_text,
                                   parse_triplet_key, triplet_key)
from policyd.sender import normalise_sender

T0 = 1_700_000_000.0


@pytest.mark.parametrize("sender,expected", [
    ("", ""),
    ("User@Example.COM", "user@example.com"),
    ("prvs=1234abcdef=bounce@example.com", "bounce@example.com"),
    ("PRVS=0123ABCDEF=Bounce@example.com", "bounce@example.com"),
    ("msprvs1=19123abcd=bounces@mail.example.com", "bounces@mail.example.com"),
    ("btv1==123abc==user@example.com", "user@example.com"),
    ("user+tag@example.com", "user@example.com"),
    ("prvs=1234abcdef=user+tag@example.com", "user@example.com"),
    ("bounce-12345-678@lists.example.org", "bounce-#-#@lists.example.org"),
    ("list-bounces-12345-user=example.org@lists.example.net", "list-bounces-#-user=example.org@lists.example.net"),
    ("user2@example.com", "user2@example.com"),      # digits inside a word stay
    ("+only@example.com", "+only@example.com"),
    ("MAILER-DAEMON", "mailer-daemon"),
])
def test_normalise_sender(sender, expected):
    assert normalise_sender(sender) == expected


@pytest.mark.parametrize("address,v4,v6,expected", [
    ("192.0.2.77", 24, 64, "192.0.2.0/24"),
    ("192.0.2.77", 32, 64, "192.0.2.77"),
    ("192.0.2.77", 16, 64, "192.0.0.0/16"),
    ("2001:db8:1:2:3:4:5:6", 24, 64, "2001:db8:1:2::/64"),
    ("2001:db8:1:2:3:4:5:6", 24, 48, "2001:db8:1::/48"),
    ("::ffff:192.0.2.9", 24, 64, "192.0.2.0/24"),
    ("not-an-ip", 24, 64, "not-an-ip"),
])
def test_client_net(address, v4, v6, expected):
    assert client_net(address, v4, v6) == expected


def test_triplet_key_normalises_and_parses_back():
    k = triplet_key("192.0.2.0/24", "prvs=1234abcdef=Bounce@Example.com", "User@Example.org")
    assert k == "gl:t:192.0.2.0/24/bounce@example.com/user@example.org"
    assert parse_triplet_key(k) == ("192.0.2.0/24", "bounce@example.com", "user@example.org")
    assert triplet_key("n", "", "r@x").endswith("/<>/r@x")
    private = triplet_key("192.0.2.0/24", "a@b", "c@d", privacy=True)
    assert "a@b" not in private and parse_triplet_key(private) is None


def test_reply_text_and_header_templates():
    assert format_reply_text("Greylisted for %s seconds (%r), 100%%", 42, "U@Example.ORG") == \
        "Greylisted for 42 seconds (example.org), 100%"
    assert format_header("X-Greylist: delayed %t seconds by owlery at %h; %d", 301, "mx1", "DATE") == \
        "X-Greylist: delayed 301 seconds by owlery at mx1; DATE"


# --- the state walk: (dt from T0, client, sender, rcpt, outcome, seconds_left) ---------------

WALK = [
    # first attempt: greylisted for the whole delay
    (0, "192.0.2.10", "a@example.com", "u@example.org", "greylisted", 300),
    # retry too early, from another host of the same /24: still greylisted, time counts from first
    (100, "192.0.2.11", "a@example.com", "u@example.org", "greylisted", 200),
    # the BATV/+ext/VERP variant of the same sender is the same triplet
    (299.5, "192.0.2.12", "prvs=9999aaaaaa=A+x@Example.com", "U@example.org", "greylisted", 1),
    # after the delay: passes (and the transition is reported once)
    (300, "192.0.2.10", "a@example.com", "u@example.org", "passed", 0),
    (400, "192.0.2.10", "a@example.com", "u@example.org", "known", 0),
    # another /24 is another triplet
    (400, "198.51.100.1", "a@example.com", "u@example.org", "greylisted", 300),
    # another recipient is another triplet
    (400, "192.0.2.10", "a@example.com", "v@example.org", "greylisted", 300),
]


ENGINES = ["memory", "sqlite", "redis"]   # Python in a lock / one SQLite transaction / one Lua call


@pytest.fixture
def engine_store(request, tmp_path):
    """A store of the engine named by the test's `engine` parameter (Redis: the machine's, a
    private key prefix, removed afterwards; no Redis FAILS the case)."""
    engine = request.getfixturevalue("engine")
    if engine == "memory":
        yield MemoryStore()
    elif engine == "sqlite":
        s = _sqlite(tmp_path)
        yield s
        s.close()
    else:
        import uuid

        from owlery.state.redis_store import RedisStore
        url = os.environ.get("OWLERY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
        s = RedisStore(url, prefix=f"owlery-test:{uuid.uuid4().hex}:", timeout=2)
        try:
            s.ping()
        except Exception as e:  # noqa: BLE001 - turned into a clear failure
            pytest.fail(f"greylist Redis cases need a Redis at {url}: {e}")
        yield s
        for k in s._redis.scan_iter(match=s.prefix + "*", count=1000):
            s._redis.delete(k)
        s.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_greylist_walk(engine, engine_store):
    store = engine_store
    g = Greylister(GreylistPolicy(auto_whitelist_clients=0))
    for i, (dt, client, sender, rcpt, outcome, left) in enumerate(WALK):
        r = g.decide(store, client, sender, rcpt, T0 + dt)
        assert (r.outcome, r.seconds_left) == (outcome, left), f"step {i}: {r}"


def _sqlite(tmp_path):
    from owlery.state.sqlite_store import SQLiteStore
    return SQLiteStore(str(tmp_path / "gl.sqlite"))


def test_passed_reports_delay():
    store, g = MemoryStore(), Greylister(GreylistPolicy(delay=60, auto_whitelist_clients=0))
    g.decide(store, "192.0.2.1", "a@b.c", "r@d.e", T0)
    r = g.decide(store, "192.0.2.1", "a@b.c", "r@d.e", T0 + 3600)
    assert (r.outcome, r.delayed) == ("passed", 3600)


def test_retry_window_expires_unanswered_entry():
    store, g = MemoryStore(), Greylister(GreylistPolicy(auto_whitelist_clients=0))
    g.decide(store, "192.0.2.1", "a@b.c", "r@d.e", T0)
    r = g.decide(store, "192.0.2.1", "a@b.c", "r@d.e", T0 + 2 * 86400 + 1)
    assert (r.outcome, r.seconds_left) == ("greylisted", 300)   # a new first attempt


def test_max_age_expires_passed_entry_and_pass_refreshes_it():
    store, g = MemoryStore(), Greylister(GreylistPolicy(auto_whitelist_clients=0))
    args = ("192.0.2.1", "a@b.c", "r@d.e")
    g.decide(store, *args, T0)
    assert g.decide(store, *args, T0 + 300).outcome == "passed"
    assert g.decide(store, *args, T0 + 30 * 86400).outcome == "known"      # refreshed here
    assert g.decide(store, *args, T0 + 64 * 86400).outcome == "known"      # < 35 d since last pass
    assert g.decide(store, *args, T0 + 100 * 86400).outcome == "greylisted"


@pytest.mark.parametrize("engine", ENGINES)
def test_auto_whitelist_after_five_passes_counted_once_an_hour(engine, engine_store):
    store, g = engine_store, Greylister(GreylistPolicy(auto_whitelist_clients=5))
    client = "192.0.2.50"
    now = T0
    # five different triplets pass, but the first four within one hour count once
    for i in range(4):
        g.decide(store, client, f"s{i}@x.example", "r@y.example", now)
        assert g.decide(store, client, f"s{i}@x.example", "r@y.example", now + 300).outcome == "passed"
    assert store.get("gl:a:" + client, now + 300) == "1"
    for hour in range(1, 5):
        t = now + hour * 3601
        g.decide(store, client, f"h{hour}@x.example", "r@y.example", t)
        assert g.decide(store, client, f"h{hour}@x.example", "r@y.example", t + 300).outcome == "passed"
    assert store.get("gl:a:" + client, now + 5 * 3601) == "5"
    # now a brand-new triplet from that client is not greylisted
    r = g.decide(store, client, "new@z.example", "r@y.example", now + 5 * 3601)
    assert r.outcome == "auto-whitelisted"
    # ...but another host in the same /24 is (the auto-whitelist is per IP, as postgrey)
    assert g.decide(store, "192.0.2.51", "new@z.example", "r@y.example", now + 5 * 3601).deferred


def test_auto_whitelist_disabled_with_zero():
    store, g = MemoryStore(), Greylister(GreylistPolicy(auto_whitelist_clients=0, delay=0))
    for i in range(10):
        g.decide(store, "192.0.2.1", "a@b.c", "r@d.e", T0 + i * 4000)
    assert store.scan("gl:a:", T0 + 40000) == []


def test_delay_zero_passes_at_once_on_the_first_retry():
    store, g = MemoryStore(), Greylister(GreylistPolicy(delay=0, auto_whitelist_clients=0))
    assert g.decide(store, "192.0.2.1", "a@b.c", "r@d.e", T0).outcome == "greylisted"
    assert g.decide(store, "192.0.2.1", "a@b.c", "r@d.e", T0).outcome == "passed"


# --- whitelists --------------------------------------------------------------------

CLIENTS = """
# postgrey style
example.com
mail.example.net.
192.0.2.5
198.51.100.0/24
203.0.113
2001:db8:aa::/48
/^mx[0-9]+\\.regex\\.example$/
/bad[/   # broken regex is skipped with a warning
"""


@pytest.mark.parametrize("address,name,expected", [
    ("10.0.0.1", "example.com", True),
    ("10.0.0.1", "smtp.out.example.com", True),
    ("10.0.0.1", "notexample.com", False),
    ("10.0.0.1", "mail.example.net", True),
    ("10.0.0.1", "other.example.net", False),
    ("192.0.2.5", "unknown", True),
    ("192.0.2.6", "unknown", False),
    ("198.51.100.200", "unknown", True),
    ("203.0.113.9", "unknown", True),
    ("::ffff:203.0.113.9", "unknown", True),
    ("2001:db8:aa:1::5", "unknown", True),
    ("2001:db8:ab::5", "unknown", False),
    ("10.0.0.1", "mx12.regex.example", True),
    ("10.0.0.1", "mx.regex.example", False),
    ("10.0.0.1", "unknown", False),
])
def test_client_whitelist(address, name, expected):
    wl = ClientWhitelist.parse(CLIENTS.splitlines())
    assert wl.matches(address, name) is expected


RCPTS = """
postmaster@
abuse@
special@example.org
whitelisted.example
/^noreply-.*@example\\.net$/
"""


@pytest.mark.parametrize("rcpt,expected", [
    ("postmaster@anything.example", True),
    ("Postmaster+x@anything.example", True),
    ("abuse@example.org", True),
    ("special@example.org", True),
    ("special+tag@example.org", True),
    ("special@example.com", False),
    ("someone@whitelisted.example", True),
    ("someone@sub.whitelisted.example", True),
    ("someone@notwhitelisted.example", False),
    ("noreply-123@example.net", True),
    ("user@example.org", False),
])
def test_recipient_whitelist(rcpt, expected):
    wl = RecipientWhitelist.parse(RCPTS.splitlines())
    assert wl.matches(rcpt) is expected


def test_whitelist_files_reread_on_change(tmp_path):
    a, missing = tmp_path / "clients", tmp_path / "clients.local"
    a.write_text("example.com\n")
    files = WhitelistFiles([str(a), str(missing)], ClientWhitelist.parse)
    assert files.current(T0).matches("1.2.3.4", "x.example.com")
    assert not files.current(T0).matches("1.2.3.4", "x.example.net")
    missing.write_text("example.net\n")
    assert not files.current(T0 + 0.5).matches("1.2.3.4", "x.example.net")   # not re-checked yet
    assert files.current(T0 + 2).matches("1.2.3.4", "x.example.net")
    a.write_text("# emptied\n")
    os.utime(a, ns=(1, 1))
    assert not files.current(T0 + 4).matches("1.2.3.4", "x.example.com")


def test_step_is_pure_and_says_what_to_write():
    """`step` decides from values alone: a first sight is one add (never a set: an earlier
    first sight elsewhere wins), waiting writes nothing, a pass is a set plus the gated
    auto-whitelist count, and nothing is written for an auto-whitelisted client but its count."""
    from owlery.state import Write
    g = Greylister(GreylistPolicy(delay=300, auto_whitelist_clients=2))
    key = g.key("192.0.2.1", "a@b.c", "r@d.e")
    assert g.reads(key, "192.0.2.1") == ["gl:a:192.0.2.1", key]
    r, w = g.step(key, "192.0.2.1", [None, None], T0)
    assert (r.outcome, r.new, r.first_seen) == ("greylisted", True, T0)
    assert w == [Write("add", key, repr(T0), 2 * 86400, T0)]
    r, w = g.step(key, "192.0.2.1", [None, repr(T0)], T0 + 100)
    assert (r.outcome, r.seconds_left, w) == ("greylisted", 200, [])
    r, w = g.step(key, "192.0.2.1", ["1", repr(T0)], T0 + 300)
    count = Write("incr", "gl:a:192.0.2.1", "1", 35 * 86400, T0 + 300, gate="gl:h:192.0.2.1", gate_ttl=3600)
    assert (r.outcome, r.delayed) == ("passed", 300)
    assert w == [Write("set", key, f"{T0!r} {T0 + 300!r}", 35 * 86400, T0 + 300), count]
    r, w = g.step(key, "192.0.2.1", ["2", None], T0 + 300)
    assert r.outcome == "auto-whitelisted" and w == [count]
    assert Greylister(GreylistPolicy(auto_whitelist_clients=0)).reads(key, "192.0.2.1") == [key]


def test_client_net_fast_ipv4_path_agrees_with_ipaddress():
    """The dotted-quad fast path gives what the ipaddress module gives, for good and bad input."""
    import ipaddress
    import random

    def slow(address, v4, v6):
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return address.strip().lower()[:512]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        net = ipaddress.ip_network(f"{ip}/{v4 if ip.version == 4 else v6}", strict=False)
        return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)

    rnd = random.Random(7)
    odd = ["1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.256", "1.2.3.-1", "1.2.3.+4", "1.2.3.4 ", " 1.2.3.4",
           "1.2.3.1_0", "١.2.3.4", "1.2.3.", "0.0.0.0", "255.255.255.255", "1.2.3.0004", "::ffff:1.2.3.4",
           "unknown", "", "1..3.4", "1.2.3.4/24"]
    randoms = [".".join(str(rnd.randint(0, 300)) for _ in range(4)) for _ in range(500)]
    for address in odd + randoms:
        for v4 in (0, 8, 13, 24, 31, 32):
            greylist_core._CLIENT_NETS.clear()
            assert client_net(address, v4, 64) == slow(address, v4, 64), (address, v4)
