"""The policy checks' long-lived memos hold nothing the cyclic collector walks.

A full collection walks every tracked container the daemon made after its start-up freeze, and
each entry of it. Probed in a policy daemon under the realistic mix (bench/bench_policy_mix.py,
a gc.callbacks probe): the triplet-key memo (~10,000 entries), the client whitelist's memo and
the client-network lru_cache (~7,000 each, its entries tracked objects) were what every full
collection walked: ~11 ms of CPU each time, a stall of every request in flight (the paced p99 at
c=100). A dict whose keys and values are strings, numbers or booleans is never tracked; a tuple
key makes it tracked again at every insert, so each memo is keyed by one NUL-joined string (NUL
never occurs in a policy attribute: the decoder refuses it). The SPF engine's caches keep flat
tuples (tests/policyd/test_spf_from_cache.py).
"""

from __future__ import annotations

import gc

from policyd import greylist_core
from policyd.greylist_core import ClientWhitelist, client_net
from tests.policyd.test_greylist_check import decide, make_pipeline


def test_client_network_memo_is_never_tracked():
    greylist_core._CLIENT_NETS.clear()
    for n in range(2000):
        client_net(f"10.{n % 250}.{n // 250}.7", 24, 64)
        client_net(f"2001:db8::{n:x}", 24, 64)
    assert len(greylist_core._CLIENT_NETS) == 4000
    assert not gc.is_tracked(greylist_core._CLIENT_NETS)
    assert client_net("10.1.2.7", 24, 64) == "10.1.2.0/24" and client_net("10.1.2.7", 32, 64) == "10.1.2.7"


def test_client_network_memo_is_bounded():
    greylist_core._CLIENT_NETS.clear()
    for n in range(greylist_core._CLIENT_NETS_MAX + 10):
        client_net(f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}", 32, 128)
    assert len(greylist_core._CLIENT_NETS) <= greylist_core._CLIENT_NETS_MAX


def test_client_whitelist_memo_is_never_tracked():
    wl = ClientWhitelist.parse(["192.0.2.0/24", "trusted.example", "/^mx[0-9]+\\.big\\.example$/"])
    for n in range(500):
        wl.matches(f"198.51.100.{n % 250}", f"mx{n}.big.example")
        wl.matches(f"203.0.113.{n % 250}", f"host{n}.other.example")
    assert wl.matches("192.0.2.9", "x.example") and wl.matches("203.0.113.1", "a.trusted.example")
    assert not wl.matches("203.0.113.1", "a.untrusted.example")
    assert not gc.is_tracked(wl.__dict__["_memo"])


def test_triplet_key_memo_is_never_tracked(tmp_path):
    pipe = make_pipeline(tmp_path)
    session = pipe.new_session()
    for n in range(50):
        decide(pipe, session, 1000.0 + n, client_address=f"192.0.2.{n}", sender=f"s{n}@sender.example",
               recipient=f"u{n}@example.org", instance=f"i{n}")
    check = pipe.by_state["RCPT"][0]
    assert len(check._keys) == 50
    assert not gc.is_tracked(check._keys)
    # the memo answers with the same key the greylister makes
    first = next(iter(check._keys.values()))
    assert first == check.greylister.key("192.0.2.0", "s0@sender.example", "u0@example.org")


def _memory(entries_max=1000, bytes_max=10 << 20):
    from policyd.greylist_cache import GreylistMemory
    from policyd.greylist_core import GreylistPolicy
    return GreylistMemory(GreylistPolicy(delay=300), ttl=60, entries_max=entries_max, bytes_max=bytes_max)


def test_greylist_memory_is_never_walked_by_the_collector():
    # Its table was an OrderedDict of (until, first) tuples, always tracked: with the default
    # 200,000 entries every full collection of a worker walked it (~8 ms of CPU).
    from policyd.greylist_core import GreylistResult
    memory = _memory(entries_max=7000)
    for n in range(3000):
        memory.learn(GreylistResult("greylisted", f"k{n}", first_seen=1000.0), f"192.0.2.{n % 250}", 1000.0)
        memory.learn(GreylistResult("passed", f"p{n}"), "198.51.100.1", 1000.0)
    gc.collect()
    table = memory._table
    assert not gc.is_tracked(table)
    # hits, new entries and evictions keep it so (nothing tracked goes in)
    for n in range(3000):
        assert memory.answer(f"k{n}", "203.0.113.1", 1001.0).outcome == "greylisted"
        memory.learn(GreylistResult("known", f"q{n}"), "198.51.100.2", 1001.0)
    memory.learn(GreylistResult("auto-whitelisted", "x"), "198.51.100.3", 1001.0)
    assert memory.evicted > 0 and not gc.is_tracked(table)
    assert memory.answer("zz", "198.51.100.3", 1001.0).outcome == "auto-whitelisted"


def test_greylist_memory_evicts_the_least_recently_used_within_both_bounds():
    from policyd.greylist_cache import ENTRY_OVERHEAD
    from policyd.greylist_core import GreylistResult
    memory = _memory(entries_max=160)
    for n in range(160):
        memory.learn(GreylistResult("known", f"k{n:03}"), "192.0.2.1", 1000.0)
    assert memory.answer("k000", "192.0.2.1", 1000.0) is not None       # k000 is now the newest
    memory.learn(GreylistResult("known", "new"), "192.0.2.1", 1000.0)
    assert len(memory) <= 160 and memory.evicted == 11                 # a sixteenth (10) + one for "new"
    assert memory.answer("k000", "192.0.2.1", 1000.0) is not None
    assert memory.answer("new", "192.0.2.1", 1000.0) is not None
    assert memory.answer("k001", "192.0.2.1", 1000.0) is None          # the oldest went first
    assert memory.answer("k012", "192.0.2.1", 1000.0) is not None
    # the byte bound: entries of ~ENTRY_OVERHEAD bytes, room for 50
    small = _memory(entries_max=10_000, bytes_max=50 * (ENTRY_OVERHEAD + 4))
    for n in range(500):
        small.learn(GreylistResult("known", f"k{n:03}"), "192.0.2.1", 1000.0)
        assert small.bytes <= small.bytes_max and len(small) <= 50
    assert small.answer("k499", "192.0.2.1", 1000.0) is not None
