"""The state-store contract, run against every engine (memory, SQLite, real Redis).

Time is injected: expiry is judged against the `now` each call passes, so these tests
move a fake clock against the real engines without sleeping.
"""

from __future__ import annotations

import math
import threading

import pytest

T0 = 1_700_000_000.0


def test_get_missing_is_none(store):
    assert store.get("nope", T0) is None
    assert store.get_many(["a", "b"], T0) == [None, None]
    assert store.get_many([], T0) == []


def test_set_get_and_expiry(store):
    store.set("k", "v1", 300, T0)
    assert store.get("k", T0) == "v1"
    assert store.get("k", T0 + 299.9) == "v1"
    assert store.get("k", T0 + 300) is None          # expiry <= now means gone
    store.set("k", "v2", 10, T0 + 400)                 # set revives a dead key
    assert store.get("k", T0 + 405) == "v2"


def test_set_replaces_value_and_expiry(store):
    store.set("k", "old", 1000, T0)
    store.set("k", "new", 5, T0)
    assert store.get("k", T0 + 4) == "new"
    assert store.get("k", T0 + 6) is None


def test_get_many_mixed(store):
    store.set("a", "1", 100, T0)
    store.set("c", "3", 1, T0)
    assert store.get_many(["a", "b", "c"], T0 + 2) == ["1", None, None]


@pytest.mark.parametrize("value", ["", "x,y;z", "ümlaut ✓", "a" * 5000, "0", "-1.5"])
def test_values_round_trip(store, value):
    store.set("k", value, 60, T0)
    assert store.get("k", T0) == value


@pytest.mark.parametrize("key", ["a:b/c", "weird*key?[x]", "100%_under", "ünï", "sp ace"])
def test_keys_round_trip(store, key):
    store.set(key, "v", 60, T0)
    assert store.get(key, T0) == "v"
    assert [e.key for e in store.scan(key, T0)] == [key]


def test_add_only_when_absent(store):
    assert store.add("k", "first", 100, T0) is True
    assert store.add("k", "second", 100, T0 + 1) is False
    assert store.get("k", T0 + 1) == "first"
    assert store.add("k", "third", 100, T0 + 100) is True   # the first one died at T0+100
    assert store.get("k", T0 + 150) == "third"


def test_delete(store):
    store.set("k", "v", 100, T0)
    assert store.delete("k") is True
    assert store.delete("k") is False
    assert store.get("k", T0) is None


def test_incr_counts_and_slides_expiry(store):
    assert store.incr("c", 1, 100, T0) == 1
    assert store.incr("c", 1, 100, T0 + 90) == 2
    assert store.incr("c", 5, 100, T0 + 180) == 7     # expiry moved to T0+190 by the last incr
    assert store.get("c", T0 + 200) == "7"
    assert store.get("c", T0 + 281) is None
    assert store.incr("c", 1, 100, T0 + 300) == 1     # a dead counter starts again


def test_incr_negative(store):
    assert store.incr("c", 3, 100, T0) == 3
    assert store.incr("c", -5, 100, T0) == -2


# (cost, rate, burst, [(dt, allowed, tokens_left)]) -- a bucket starts full
BUCKET_CASES = [
    ("drain", 1, 1.0, 3, [(0, True, 2), (0, True, 1), (0, True, 0), (0, False, 0), (1, True, 0)]),
    ("refill_capped", 1, 1.0, 3, [(0, True, 2), (100, True, 2)]),
    ("big_cost", 5, 1.0, 10, [(0, True, 5), (0, True, 0), (2, False, 2), (3, True, 0)]),
    ("slow_rate", 1, 1 / 3600, 2, [(0, True, 1), (0, True, 0), (1800, False, 0.5), (1800, True, 0)]),
]


@pytest.mark.parametrize("name,cost,rate,burst,steps", BUCKET_CASES, ids=[c[0] for c in BUCKET_CASES])
def test_token_bucket_table(store, name, cost, rate, burst, steps):
    now = T0
    for i, (dt, allowed, left) in enumerate(steps):
        now += dt
        r = store.take("b", cost, rate, burst, now)
        assert r.allowed is allowed, f"step {i}"
        assert r.tokens == pytest.approx(left, abs=1e-6), f"step {i}"


def test_token_bucket_retry_after(store):
    store.take("b", 2, 0.5, 2, T0)                      # empty now
    r = store.take("b", 1, 0.5, 2, T0 + 1)              # 0.5 token there, need 1
    assert not r.allowed and r.retry_after == pytest.approx(1.0)
    never = store.take("b", 3, 0.5, 2, T0 + 1)          # more than the bucket holds
    assert not never.allowed and never.retry_after is None
    assert store.take("b", 1, 0.5, 2, T0 + 2).allowed   # the refusals took nothing


def test_token_bucket_keys_independent(store):
    assert store.take("x", 1, 1, 1, T0).allowed
    assert not store.take("x", 1, 1, 1, T0).allowed
    assert store.take("y", 1, 1, 1, T0).allowed


def test_scan_prefix_and_liveness(store):
    store.set("gl:a", "1", 100, T0)
    store.set("gl:b", "2", 10, T0)
    store.set("gm:c", "3", 100, T0)
    store.set("g", "4", 100, T0)
    got = {e.key: (e.value, e.expires) for e in store.scan("gl:", T0 + 20)}
    assert got == {"gl:a": ("1", pytest.approx(T0 + 100))}
    assert len(store.scan("g", T0, limit=2)) == 2


def test_expire_removes_dead_entries_in_batches(store):
    for i in range(5):
        store.set(f"d{i}", "x", 10, T0)
    store.set("alive", "x", 1000, T0)
    removed = 0
    for _ in range(10):
        n = store.expire(T0 + 20, 2)
        assert n <= 2
        removed += n
        if n == 0:
            break
    assert removed in (0, 5)   # 0: Redis expires by itself
    assert store.get("alive", T0 + 20) == "x"
    assert store.scan("d", T0 + 20) == []


def test_concurrent_incr_and_add_are_atomic(store):
    """Many threads hitting one key: no lost update, exactly one add wins."""
    wins = []
    errors = []

    def worker():
        try:
            for _ in range(25):
                store.incr("n", 1, 100, T0)
            wins.append(store.add("once", "x", 100, T0))
        except Exception as e:  # noqa: BLE001 - report any failure from the thread
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.get("n", T0) == "200"
    assert wins.count(True) == 1


def test_concurrent_take_never_overspends(store):
    taken = []

    def worker():
        for _ in range(20):
            if store.take("bucket", 1, 1e-9, 50, T0).allowed:
                taken.append(1)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 50


def test_bucket_math_matches_engines(store):
    """The pure helper and the engine agree on a random-looking walk."""
    from owlery.state import bucket_math
    tokens = stamp = None
    now = T0
    for i in range(40):
        now += (i * 7 % 5) * 0.3
        cost = 1 + i % 3
        allowed, left, retry = bucket_math(tokens, stamp, cost, 0.8, 4, now)
        if allowed or tokens is None:
            tokens, stamp = left, now
        r = store.take("walk", cost, 0.8, 4, now)
        assert r.allowed is allowed
        assert r.tokens == pytest.approx(left, abs=1e-6)
        assert (r.retry_after is None) == (retry is None)
        if retry is not None and not math.isinf(retry):
            assert r.retry_after == pytest.approx(retry, abs=1e-6)
