"""Redis engine specifics of batches: one round trip per batch, NOSCRIPT recovery, an outage.

Against the machine's real Redis (tests/state/conftest.py), a unique key prefix per test.
"""

from __future__ import annotations

import pytest
import redis.connection

from owlery.errors import StateUnavailable
from tests.state.conftest import drop_redis_keys, make_redis_store

T0 = 1_700_000_000.0
SLOW = 1e-9


@pytest.fixture
def rstore(state_redis_url):
    s = make_redis_store(state_redis_url)
    yield s
    drop_redis_keys(s)


@pytest.fixture
def sends(monkeypatch):
    """How many times the client writes to a Redis socket (one per round trip)."""
    count = [0]
    real = redis.connection.AbstractConnection.send_packed_command

    def counting(self, *args, **kwargs):
        count[0] += 1
        return real(self, *args, **kwargs)
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return count


def test_take_all_many_is_one_round_trip(rstore, sends):
    rstore.take_all([("warm", 1, SLOW, 1)], T0)              # script loaded, connection open
    sends[0] = 0
    got = rstore.take_all_many([([(f"k{i}", 1, SLOW, 3), ("all", 1, SLOW, 100)], T0) for i in range(20)])
    assert len(got) == 20 and all(t.allowed for r in got for t in r)
    assert sends[0] == 1


def test_take_all_is_one_round_trip(rstore, sends):
    rstore.take_all([("warm", 1, SLOW, 1)], T0)
    sends[0] = 0
    assert [t.allowed for t in rstore.take_all([("a", 1, SLOW, 1), ("b", 1, SLOW, 1), ("c", 1, SLOW, 1)], T0)] \
        == [True, True, True]
    assert sends[0] == 1


def test_script_unknown_to_the_server_is_loaded_and_run_once(rstore):
    rstore._take_all.sha = "0" * 40                            # as after a Redis restart: NOSCRIPT
    got = rstore.take_all_many([([("n", 1, SLOW, 2)], T0), ([("n", 1, SLOW, 2)], T0)])
    assert [r[0].tokens for r in got] == [pytest.approx(1), pytest.approx(0)]   # each ran exactly once
    assert rstore._take_all.sha != "0" * 40


def test_redis_down_fails_the_batch_as_a_whole():
    from owlery.state.redis_store import RedisStore
    s = RedisStore("redis://127.0.0.1:1/0", timeout=0.5)      # nothing listens on port 1
    with pytest.raises(StateUnavailable):
        s.take_all_many([([("a", 1, SLOW, 1)], T0)])
    with pytest.raises(StateUnavailable):
        s.take_all([("a", 1, SLOW, 1)], T0)
