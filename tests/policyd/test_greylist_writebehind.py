"""Greylisting decided in memory and stored behind: batch boundary, workers and MX hosts
sharing a store, flush failure, crash, shutdown, and memory under a flood.

"Workers" are two pipelines each with its own store object on the same SQLite file (own
connections, as two policyd processes); "MX hosts" are two pipelines each with its own
connection to the machine's Redis under one key prefix. The reactor clock is a task.Clock:
the write-behind flush runs when the test moves it past greylist_flush_interval.
"""

from __future__ import annotations

import os
import tracemalloc
import uuid

import pytest
from twisted.internet import task

from owlery.errors import StateUnavailable
from owlery.settings import Settings
from policyd.checks import CheckContext, InlineExecutor
from policyd.greylist_cache import ENTRY_OVERHEAD, GreylistMemory, WriteBehind
from policyd.greylist_core import GreylistPolicy, GreylistResult
from policyd.pipeline import Pipeline
from policyd.protocol import PolicyRequest

T0 = 1_700_000_000.0
REDIS_URL = os.environ.get("OWLERY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def make_pipeline(tmp_path, **overrides):
    values = dict(state_backend="memory", greylist_delay=300, greylist_whitelist_clients=[],
                  greylist_whitelist_recipients=[], greylist_hostname="mx.test",
                  greylist_flush_interval=0.02, greylist_flush_records=500)
    values.update(overrides)
    settings = Settings().replace(**values)
    ctx = CheckContext(settings, task.Clock(), InlineExecutor())
    return Pipeline(settings, ctx, checks={"RCPT": ["greylist"]})


def check_of(pipe):
    return pipe.by_state["RCPT"][0]


def decide(pipe, now, rcpt="u@example.org", client="192.0.2.10", sender="a@sender.example", instance="i"):
    base = {"request": "smtpd_access_policy", "protocol_state": "RCPT", "client_address": client,
            "client_name": "mail.sender.example", "sender": sender, "recipient": rcpt, "instance": instance}
    out = []
    pipe.decide(PolicyRequest(base), pipe.new_session(), now).addBoth(out.append)
    assert out, "decision did not complete synchronously"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def flush(pipe):
    """Time passes on the reactor: the flush timer fires."""
    pipe.ctx.clock.advance(1)


def stored_triplets(pipe, now):
    return check_of(pipe).store.scan("gl:t:", now)


@pytest.fixture
def redis_prefix():
    import redis
    prefix = f"owlery-test:{uuid.uuid4().hex}:"
    r = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        r.ping()
    except redis.RedisError as e:
        pytest.fail(f"greylist Redis cases need a Redis at {REDIS_URL}: {e}")
    yield prefix
    for k in r.scan_iter(match=prefix + "*", count=1000):
        r.delete(k)


def two_daemons(kind, tmp_path, request, **overrides):
    """Two policyd processes (sqlite: workers on one file) or MX hosts (redis: one Redis)."""
    if kind == "sqlite":
        common = dict(state_backend="sqlite", state_sqlite_path=str(tmp_path / "state.sqlite"))
    else:
        common = dict(state_backend="redis", state_redis_url=REDIS_URL,
                      state_key_prefix=request.getfixturevalue("redis_prefix"))
    common.update(overrides)
    a, b = make_pipeline(tmp_path, **common), make_pipeline(tmp_path, **common)
    assert check_of(a).store is not check_of(b).store
    yield a, b
    for p in (a, b):
        p.close()
        p.ctx.close()


@pytest.fixture(params=["sqlite", "redis"])
def pair(request, tmp_path):
    yield from two_daemons(request.param, tmp_path, request)


# --- the batch boundary ----------------------------------------------------------------

def test_writes_wait_for_the_interval_then_go_in_one_batch(tmp_path):
    pipe = make_pipeline(tmp_path, greylist_flush_records=10)
    store = check_of(pipe).store
    batches = []
    write_many = store.write_many
    store.write_many = lambda writes: batches.append(len(writes)) or write_many(writes)
    for i in range(9):
        assert decide(pipe, T0, rcpt=f"u{i}@example.org").log["greylist"] == "new"
    assert batches == [] and stored_triplets(pipe, T0) == []      # answered, not stored yet
    pipe.ctx.clock.advance(0.019)
    assert batches == []
    pipe.ctx.clock.advance(0.002)                                 # greylist_flush_interval is over
    assert batches == [9] and len(stored_triplets(pipe, T0)) == 9


def test_a_full_batch_is_stored_at_once(tmp_path):
    pipe = make_pipeline(tmp_path, greylist_flush_records=10)
    store = check_of(pipe).store
    batches = []
    write_many = store.write_many
    store.write_many = lambda writes: batches.append(len(writes)) or write_many(writes)
    for i in range(10):
        decide(pipe, T0, rcpt=f"u{i}@example.org")
    assert batches == [10]                                        # the 10th write, no timer needed
    decide(pipe, T0, rcpt="u10@example.org")
    assert batches == [10]
    flush(pipe)
    assert batches == [10, 1]


def test_a_repeat_before_the_flush_is_answered_from_what_is_queued(tmp_path):
    """Memory off: the early retry and the pass before any flush still use this process's own
    first sight (queued), never a second first sight."""
    pipe = make_pipeline(tmp_path, greylist_memory_entries=0)
    assert decide(pipe, T0).log["greylist"] == "new"
    assert decide(pipe, T0 + 100).log == {"greylist": "early-retry", "delay_left": 200}
    assert decide(pipe, T0 + 300).log["greylist"] == "passed"
    assert decide(pipe, T0 + 301).action.verb == "DUNNO"                  # known
    flush(pipe)
    [entry] = stored_triplets(pipe, T0 + 301)
    assert entry.value == f"{T0!r} {T0 + 300!r}"


# --- several workers, several MX hosts --------------------------------------------------

def test_retry_after_the_delay_on_the_other_worker_or_mx_passes(pair):
    a, b = pair
    assert decide(a, T0).log["greylist"] == "new"
    flush(a)                                        # within greylist_flush_interval, far below the delay
    d = decide(b, T0 + 120)                         # b never saw it: it reads a's first sight
    assert d.log == {"greylist": "early-retry", "delay_left": 180}
    d = decide(b, T0 + 301, instance="m2")
    assert d.action.verb == "PREPEND" and d.log == {"greylist": "passed", "delayed": 301}
    # A pass is stored before it is answered: a, asked right after (no flush interval), finds
    # it passed and adds no second X-Greylist header.
    assert decide(a, T0 + 301.5, instance="m3").action.verb == "DUNNO"


def test_a_pass_the_store_cannot_take_is_a_4xx_and_stays_queued(tmp_path):
    pipe = make_pipeline(tmp_path)
    store = check_of(pipe).store
    decide(pipe, T0)
    flush(pipe)
    write_many = store.write_many
    store.write_many = lambda writes: (_ for _ in ()).throw(StateUnavailable("down"))
    d = decide(pipe, T0 + 301)
    assert d.action.verb == "DEFER_IF_PERMIT" and d.action.reply.code == 451
    store.write_many = write_many
    pipe.ctx.clock.advance(1.0)                          # the queued pass is stored on the retry
    [entry] = stored_triplets(pipe, T0 + 302)
    assert entry.value == f"{T0!r} {T0 + 301!r}"


def test_the_earliest_first_sight_wins_and_the_later_one_is_forgotten(pair):
    """Both saw the triplet before either flushed: the store keeps the earlier; the worker
    whose add lost forgets its own later time and reads the earlier one."""
    a, b = pair
    decide(a, T0)
    decide(b, T0 + 60)
    flush(a)
    flush(b)
    [entry] = stored_triplets(a, T0 + 60)
    assert entry.value == repr(T0)
    assert decide(b, T0 + 100).log == {"greylist": "early-retry", "delay_left": 200}
    assert decide(b, T0 + 300, instance="m2").log["greylist"] == "passed"


def test_a_failed_flush_is_kept_and_stored_later(pair, caplog):
    a, b = pair
    store = check_of(a).store
    write_many = store.write_many
    down = {"on": True}

    def flaky(writes):
        if down["on"]:
            raise StateUnavailable("store down")
        return write_many(writes)
    store.write_many = flaky
    decide(a, T0)
    flush(a)
    assert "storing 1 writes failed: store down; kept 1 for the next try, dropped 0" in caplog.text
    assert decide(b, T0 + 1).log["greylist"] == "new"    # not in the store yet: b defers it too
    down["on"] = False
    a.ctx.clock.advance(1.0)                             # the retry after a failure
    assert [e.value for e in stored_triplets(a, T0 + 1)] == [repr(T0)]
    flush(b)                                             # b's own later add finds a's
    assert decide(b, T0 + 301, instance="m2").action.verb == "PREPEND"


def test_a_lost_write_costs_one_more_deferral_never_a_reject(pair):
    """A first sight that never reaches the store (dropped, or the process crashed before the
    flush): the retry on the other daemon is deferred once more with 450 4.7.1, and the
    retry after that passes."""
    a, b = pair
    decide(a, T0)
    check_of(a).behind.take()                            # lost: nothing of it reaches the store
    flush(a)
    assert stored_triplets(a, T0) == []
    d = decide(b, T0 + 301)
    assert d.action.render() == "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 300 seconds"
    assert d.action.reply.code == 450 and d.log["greylist"] == "new"
    flush(b)
    assert decide(b, T0 + 602, instance="m2").action.verb == "PREPEND"


def test_a_crash_loses_at_most_the_unflushed_batch(tmp_path, request):
    for a, b in two_daemons("sqlite", tmp_path, request):
        decide(a, T0, rcpt="old@example.org")
        flush(a)                                         # stored
        decide(a, T0 + 10, rcpt="new@example.org")       # answered; a dies before its flush
        check_of(a).behind.take()
        assert decide(b, T0 + 301, rcpt="old@example.org").log["greylist"] == "passed"
        assert decide(b, T0 + 311, rcpt="new@example.org").log["greylist"] == "new"


def test_shutdown_stores_what_is_queued(tmp_path):
    path = tmp_path / "state.sqlite"
    pipe = make_pipeline(tmp_path, state_backend="sqlite", state_sqlite_path=str(path))
    for i in range(5):
        decide(pipe, T0, rcpt=f"u{i}@example.org")
    assert stored_triplets(pipe, T0) == []
    pipe.close()                                         # no flush timer ran
    from owlery.state.sqlite_store import SQLiteStore
    other = SQLiteStore(str(path))
    assert len(other.scan("gl:t:", T0)) == 5
    other.close()
    pipe.ctx.close()


def test_shutdown_stores_a_batch_whose_flush_failed(tmp_path):
    pipe = make_pipeline(tmp_path)
    store = check_of(pipe).store
    write_many = store.write_many
    store.write_many = lambda writes: (_ for _ in ()).throw(StateUnavailable("down"))
    decide(pipe, T0)
    flush(pipe)
    assert stored_triplets(pipe, T0) == []
    store.write_many = write_many
    pipe.close()
    assert [e.value for e in store.scan("gl:t:", T0)] == [repr(T0)]


# --- memory bounded under a flood -------------------------------------------------------

def test_memory_stays_under_its_byte_cap_under_a_flood_of_unique_triplets(tmp_path):
    cap = 256 * 1024
    pipe = make_pipeline(tmp_path, greylist_memory_max=cap, greylist_flush_records=200)
    check = check_of(pipe)
    for i in range(20_000):
        decide(pipe, T0 + i * 0.001, rcpt=f"user{i}@example.org", sender=f"s{i}@flood.example")
        assert check.memory.bytes <= cap
        assert len(check.behind) < 200                   # full batches go out at once
    assert check.memory.evicted > 15_000
    assert len(check.memory) <= cap // ENTRY_OVERHEAD
    flush(pipe)
    assert len(check.store.scan("gl:t:", T0 + 30, limit=100_000)) == 20_000   # every first sight stored


def test_entry_estimate_covers_what_an_entry_really_takes():
    memory = GreylistMemory(GreylistPolicy(), ttl=60, entries_max=10**6, bytes_max=10**9)
    keys = [f"gl:t:10.{i % 250}.{i // 250 % 250}.0/24/s{i}@sender.example/user{i}@example.org"
            for i in range(20_000)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for k in keys:
        memory.learn(GreylistResult("greylisted", k, first_seen=T0), "192.0.2.1", T0)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # keys themselves are counted too (the table keeps its own reference to each)
    real = used + sum(len(k) + 49 for k in keys)
    assert real <= memory.bytes, (real / len(keys), memory.bytes / len(keys))


def test_lru_keeps_what_is_used():
    memory = GreylistMemory(GreylistPolicy(), ttl=60, entries_max=2, bytes_max=10**6)
    for k in ("a", "b"):
        memory.learn(GreylistResult("known", k), "192.0.2.1", T0)
    assert memory.answer("a", "192.0.2.1", T0 + 1).outcome == "known"    # a used: b is the oldest
    memory.learn(GreylistResult("known", "c"), "192.0.2.1", T0 + 2)
    assert memory.answer("b", "192.0.2.1", T0 + 3) is None
    assert memory.answer("a", "192.0.2.1", T0 + 3) is not None


def test_write_behind_backlog_is_bounded():
    behind = WriteBehind(flush_records=10, backlog_max=30)
    from owlery.state import Write
    for i in range(25):
        behind.add([Write("add", f"k{i}", "1", 60, T0)])
    batch = behind.take()
    behind.add([Write("add", f"n{i}", "1", 60, T0) for i in range(10)])
    assert behind.failed(batch) == 5 and len(behind) == 30
    assert behind.record("k0") is None and behind.record("k5") == "1"    # the oldest went
