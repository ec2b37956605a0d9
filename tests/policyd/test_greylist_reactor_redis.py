"""Greylisting on Redis decided on the reactor: `owlery policyd` reads the misses of a reactor
turn in one script and writes its batches pipelined through owlery.state.redis_reactor, with
no worker thread between (policyd/checks/greylist.py). Real daemons, the machine's Redis (a
prefix unique to each test) and a dead port for Redis down.
"""

from __future__ import annotations

import concurrent.futures

import pytest

from policyd.cli import query
from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.procs import free_port, wait_until


def rcpt(i: int, **attrs) -> dict:
    base = {"request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
            "client_address": f"198.51.{i // 250 % 250}.{i % 250 + 1}", "client_name": "unknown",
            "helo_name": "h.sender.example", "sender": f"s{i}@sender.example",
            "recipient": "bob@example.test", "instance": f"r.{i}"}
    base.update(attrs)
    return base


def config(url: str, prefix: str, extra: str = "") -> str:
    return ('policyd_checks = { RCPT = ["greylist"] }\n'
            'state_backend = "redis"\n'
            f'state_redis_url = "{url}"\n'
            f'state_key_prefix = "{prefix}"\n'
            "greylist_whitelist_clients = []\n"
            "greylist_whitelist_recipients = []\n"
            'state_timeout = "1s"\n' + extra)


@pytest.fixture
def prefix(redis_url):
    from tests.harness.stores import drop_redis_prefix, unique_name
    p = unique_name("owlery-test:") + ":"
    yield p
    drop_redis_prefix(redis_url, p)


def test_new_triplets_from_many_connections_are_deferred_and_stored(harness_dirs, redis_url, prefix):
    import redis
    with OwleryDaemons(harness_dirs("mx"), which=("policyd",), extra_config=config(redis_url, prefix)) as d:
        d.wait_log("policyd", "Redis reads and writes on the reactor")
        endpoint = f"tcp:127.0.0.1:{d.ports['policyd']}"
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: query(endpoint, rcpt(i)), range(200)))
        assert all(a.startswith("DEFER_IF_PERMIT 4.7.1 Greylisted") for a in answers), set(answers)
        r = redis.Redis.from_url(redis_url)
        # Written behind, within a flush interval or so: every first sight is in Redis.
        wait_until(lambda: len(list(r.scan_iter(match=f"{prefix}gl:t:*", count=1000))) == 200, 10,
                   "200 first sights stored in Redis")
        # A repeat is still a deferral with the first-seen time kept (not a fresh delay).
        assert query(endpoint, rcpt(7, instance="again")).startswith("DEFER_IF_PERMIT 4.7.1")


def test_redis_down_defers_and_never_passes(harness_dirs):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with OwleryDaemons(harness_dirs("down"), which=("policyd",),
                       extra_config=config(dead, "owlery-test-down:")) as d:
        d.wait_log("policyd", "Redis reads and writes on the reactor")
        endpoint = f"tcp:127.0.0.1:{d.ports['policyd']}"
        for i in range(3):
            answer = query(endpoint, rcpt(i))
            assert answer.startswith(("DEFER_IF_PERMIT 4", "451 4", "450 4")), answer
            assert not answer.startswith(("DUNNO", "PREPEND", "5"))


def test_a_url_the_reactor_client_does_not_serve_keeps_the_thread_path(harness_dirs, redis_url, prefix):
    url = redis_url + ("&" if "?" in redis_url else "?") + "health_check_interval=30"
    with OwleryDaemons(harness_dirs("thread"), which=("policyd",), extra_config=config(url, prefix)) as d:
        d.wait_log("policyd", "Redis calls go through a worker thread")
        endpoint = f"tcp:127.0.0.1:{d.ports['policyd']}"
        assert query(endpoint, rcpt(1)).startswith("DEFER_IF_PERMIT 4.7.1 Greylisted")
