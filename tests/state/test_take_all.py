"""take_all / take_all_many contract, against every engine (memory, SQLite, real Redis).

Several token buckets taken as one: all are charged, or none is. Time is injected (`now`),
so refills are exact and nothing sleeps.
"""

from __future__ import annotations

import sys
import threading

import pytest

from owlery.state import bucket_math

T0 = 1_700_000_000.0
SLOW = 1e-9          # tokens/s: no refill worth speaking of within a test


def allowed(takes):
    return [t.allowed for t in takes]


def tokens(takes):
    return [round(t.tokens, 6) for t in takes]


# Each step: (dt, [(key, cost, rate, burst)], expected allowed per bucket, expected tokens per bucket).
# Buckets: "u" 3 per 3 s (user), "ip" 2 per 2 s (client); a bucket starts full.
U = ("u", 1, 1.0, 3)
IP = ("ip", 1, 1.0, 2)
TABLE = [
    ("both_charged",
     [(0, [U, IP], [True, True], [2, 1]),
      (0, [U, IP], [True, True], [1, 0]),
      (0, [U, IP], [True, False], [0, 0]),        # ip has nothing: u is NOT charged
      (0, [U], [True], [0]),                      # ... so u still has its last token
      (0, [U], [False], [0])]),
    ("refusal_charges_nothing_then_refill",
     [(0, [("u", 2, 1.0, 3), IP], [True, True], [1, 1]),
      (0, [("u", 2, 1.0, 3), IP], [False, True], [1, 0]),   # u refuses: ip keeps its token
      (0, [IP], [True], [0]),
      (1, [("u", 2, 1.0, 3), IP], [True, True], [0, 0])]),  # one second refills one each
    ("same_key_twice_is_taken_twice",
     [(0, [("b", 2, 1.0, 3), ("b", 1, 1.0, 3)], [True, True], [1, 0]),
      (2, [("b", 1, 1.0, 3), ("b", 2, 1.0, 3)], [True, False], [1, 1]),   # 2 there: 1 then 2 fails
      (0, [("b", 2, 1.0, 3)], [True], [0])]),                              # the refusal took nothing
    ("capped_at_burst",
     [(0, [U], [True], [2]),
      (1000, [U, IP], [True, True], [2, 1])]),
]


@pytest.mark.parametrize("name,steps", TABLE, ids=[t[0] for t in TABLE])
def test_take_all_table(store, name, steps):
    now = T0
    for i, (dt, takes, want_allowed, want_tokens) in enumerate(steps):
        now += dt
        got = store.take_all(takes, now)
        assert allowed(got) == want_allowed, f"step {i}"
        assert tokens(got) == pytest.approx(want_tokens, abs=1e-6), f"step {i}"


def test_take_all_empty(store):
    assert store.take_all([], T0) == []


def test_take_all_retry_after_per_bucket(store):
    store.take_all([("a", 2, 0.5, 2), ("b", 1, 0.25, 1)], T0)           # both empty now
    got = store.take_all([("a", 1, 0.5, 2), ("b", 1, 0.25, 1), ("c", 1, 1, 5)], T0 + 1)
    assert allowed(got) == [False, False, True]
    assert got[0].retry_after == pytest.approx(1.0)                      # 0.5 there, 0.5 more at 0.5/s
    assert got[1].retry_after == pytest.approx(3.0)                      # 0.25 there, 0.75 at 0.25/s
    never = store.take_all([("a", 3, 0.5, 2), ("c", 1, 1, 5)], T0 + 1)  # more than "a" ever holds
    assert allowed(never) == [False, True] and never[0].retry_after is None
    assert store.take("c", 5, 1, 5, T0 + 1).allowed                     # "c" was never charged


def test_take_all_and_take_share_buckets(store):
    """take_all reads and writes the same buckets as take, with the same arithmetic."""
    tokens_, stamp = None, None
    now = T0
    for i in range(30):
        now += (i * 7 % 5) * 0.3
        cost = 1 + i % 3
        want, left, _ = bucket_math(tokens_, stamp, cost, 0.8, 4, now)
        if want:
            tokens_, stamp = left, now
        got = store.take_all([("walk", cost, 0.8, 4)], now)[0] if i % 2 else store.take("walk", cost, 0.8, 4, now)
        assert got.allowed is want, f"step {i}"
        assert got.tokens == pytest.approx(left, abs=1e-6), f"step {i}"


def test_take_all_many_independent_calls_in_order(store):
    batch = [
        ([("m", 1, SLOW, 2), ("x", 1, SLOW, 5)], T0),
        ([("m", 1, SLOW, 2), ("y", 9, SLOW, 5)], T0),     # y can never: m not charged
        ([], T0),
        ([("m", 1, SLOW, 2)], T0),                        # sees the first call's charge
        ([("m", 1, SLOW, 2), ("x", 1, SLOW, 5)], T0),     # m is empty now
    ]
    got = store.take_all_many(batch)
    assert [allowed(r) for r in got] == [[True, True], [True, False], [], [True], [False, True]]
    assert store.take("x", 4, SLOW, 5, T0).allowed       # x was charged once only
    assert store.take_all_many([]) == []


def test_take_all_many_damaged_bucket_fails_only_its_call(store):
    store.set("bad", "not a bucket", 100, T0)
    got = store.take_all_many([([("ok1", 1, SLOW, 1)], T0), ([("ok2", 1, SLOW, 1), ("bad", 1, SLOW, 1)], T0),
                               ([("ok3", 1, SLOW, 1)], T0)])
    assert allowed(got[0]) == [True] and allowed(got[2]) == [True]
    assert isinstance(got[1], Exception)
    assert store.take("ok1", 1, SLOW, 1, T0).allowed is False        # calls 1 and 3 stand
    assert store.take("ok3", 1, SLOW, 1, T0).allowed is False
    assert store.take("ok2", 1, SLOW, 1, T0).allowed is True         # the failed call charged nothing


@pytest.fixture
def busy_switching():
    """Threads switch every microsecond, so a check-then-charge race would show up."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def run_threads(target, n):
    errors = []

    def guarded(i):
        try:
            target(i)
        except Exception as e:  # noqa: BLE001 - report any failure from the thread
            errors.append(e)
    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_take_all_is_all_or_nothing(store):
    """Six threads, each [shared (50), own (5)] twenty times. Each own bucket lets 5 through,
    so exactly 30 succeed; if the refused takes charged `shared`, fewer would, and `shared`
    would end below 20. Five rounds, as one round may not interleave badly enough."""
    for rnd in range(5):
        wins = []

        def worker(n, rnd=rnd, wins=wins):
            for _ in range(20):
                takes = [(f"shared{rnd}", 1, SLOW, 50), (f"own{rnd}.{n}", 1, SLOW, 5)]
                if all(allowed(store.take_all(takes, T0))):
                    wins.append(n)
        run_threads(worker, 6)
        assert len(wins) == 30 and all(wins.count(n) == 5 for n in range(6)), f"round {rnd}"
        assert not store.take(f"shared{rnd}", 21, SLOW, 50, T0).allowed, f"round {rnd}"
        assert store.take(f"shared{rnd}", 20, SLOW, 50, T0).allowed, f"round {rnd}"


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_take_all_many_never_overspends(store):
    wins = []

    def worker(_):
        for _ in range(10):
            got = store.take_all_many([([("pool", 1, SLOW, 25), ("other", 1, SLOW, 1000)], T0)] * 3)
            wins.extend(1 for r in got if all(allowed(r)))
    run_threads(worker, 4)
    assert len(wins) == 25
    assert store.take("other", 975, SLOW, 1000, T0).allowed          # charged exactly 25 times
    assert not store.take("other", 1, SLOW, 1000, T0).allowed
