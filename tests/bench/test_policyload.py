"""The benches' load generator: the C child sends exactly what the Python child sends.

Both drive a recording policy server on loopback (it answers DUNNO, or DEFER_IF_PERMIT
for every third request) in saturated and paced mode; the requests seen, the counts of
action words and the shape of the results must agree. A run's request limit is shared by
its connections, so how many each one sends depends on scheduling: every connection's
requests are compared with the profile's own sequence for that connection, whatever
their number, never with a fixed count per connection; the answers each connection got
(`replied`, what bench/bench_policy_mix.py derives the expected answers from) must match
what the server saw. The `realistic` profile's mix (half never-seen triplets, half from
the pool the bench sends first) is checked on the Python side, which the C side matches.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.harness.threaded_server import ThreadedServer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import policyload  # noqa: E402


class RecordingServer(ThreadedServer):
    """One thread per connection; records each request block in arrival order per connection."""

    def __init__(self):
        self.requests: dict[int, list[bytes]] = {}
        self.lock = threading.Lock()
        super().__init__(backlog=64)

    def serve_connection(self, conn):
        buf = b""
        seen: list[bytes] = []
        n = 0
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except ConnectionResetError:   # the client stops with a reply unread
                    data = b""
                if not data:
                    break
                buf += data
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    seen.append(block)
                    n += 1
                    try:
                        conn.sendall(b"action=DEFER_IF_PERMIT 4.7.1 wait\n\n" if n % 3 == 0
                                     else b"action=DUNNO\n\n")
                    except OSError:
                        break
        conn_id = int(re.search(rb"instance=([0-9a-f]+)\.", seen[0]).group(1), 16) if seen else -1
        with self.lock:
            self.requests[conn_id] = seen


@pytest.fixture
def server():
    s = RecordingServer()
    yield s
    s.close()


def _drive(server, generator, profile, **kw):
    server.requests.clear()
    result = policyload.run(server.port, profile=profile, generator=generator, **kw)
    deadline = time.monotonic() + 30.0   # connection threads record when the client closes
    while True:
        with server.lock:
            if len(server.requests) == kw["conns"]:
                return result, dict(server.requests)
        assert time.monotonic() < deadline, f"{len(server.requests)} of {kw['conns']} connections recorded"
        threading.Event().wait(0.01)


def _expected(profile, seen, salt=None):
    """What each recorded connection must have received: its first len(seen[conn]) requests."""
    if salt is None:
        make = policyload.PROFILES[profile]
        return {conn: [make(i, conn).rstrip(b"\n") for i in range(len(v))] for conn, v in seen.items()}
    make = policyload.FRESH_PROFILES[profile]
    return {conn: [make(i, conn, salt).rstrip(b"\n") for i in range(len(v))] for conn, v in seen.items()}


needs_cc = pytest.mark.skipif(policyload.c_generator() is None, reason="no C compiler on this machine")


@needs_cc
@pytest.mark.parametrize("profile", ["policyd", "greylist"])
def test_c_child_sends_the_python_childs_requests(server, profile):
    for generator in ("python", "c"):
        result, seen = _drive(server, generator, profile, conns=3, seconds=5.0, requests=150, procs=1)
        assert result["done"] >= 150
        assert sum(result["words"].values()) == result["done"]
        assert set(result["words"]) == {"DUNNO", "DEFER_IF_PERMIT"}   # the action word is read
        assert abs(result["words"]["DEFER_IF_PERMIT"] - result["done"] / 3) <= 3
        assert result["p99"] >= result["p50"] > 0
        assert sorted(seen) == [0, 1, 2]
        assert sum(len(v) for v in seen.values()) >= 150
        assert sum(result["replied"]) == result["done"]
        for conn, got in enumerate(result["replied"]):   # the last request may still be in flight
            assert len(seen[conn]) - 1 <= got <= len(seen[conn]), generator
        assert seen == _expected(profile, seen), generator


@needs_cc
@pytest.mark.parametrize("profile,salted", [("greylist-new", rb"sender=s(\d+)x"), ("realistic", rb"sender=n(\d+)x")])
def test_fresh_profile_differs_only_in_the_run_salt(server, profile, salted):
    salts = set()
    for generator in ("python", "c"):
        _, seen = _drive(server, generator, profile, conns=2, seconds=5.0, requests=80, procs=1)
        assert sorted(seen) == [0, 1]
        senders = [r for v in seen.values() for r in v]
        assert len(set(senders)) == len(senders)     # no request repeats
        run_salts = {m for v in seen.values() for r in v for m in re.findall(salted, r)}
        assert len(run_salts) == 1, generator        # one salt per load process
        salt = run_salts.pop()
        salts.add(salt)
        assert seen == _expected(profile, seen, salt.decode()), generator
    assert len(salts) == 2                           # each run its own salt


def _field(request: bytes, name: str) -> str:
    return re.search(rb"^" + name.encode() + rb"=(.*)$", request, re.M).group(1).decode()


def test_realistic_profile_mixes_new_and_known_triplets():
    """Half the requests are never-seen triplets, half come from the pool the bench sends
    before measuring; the RCPTs of one message share its client, sender and instance; every
    recipient, sender domain and pool pair is used."""
    make = policyload.FRESH_PROFILES["realistic"]
    pool = {(_field(r, "client_address"), _field(r, "sender"), _field(r, "recipient"))
            for r in policyload.realistic_pool()}
    assert len(pool) == 2 * policyload.RL_PAIRS
    new = known = 0
    messages: dict[str, set] = {}
    rcpts, domains = set(), set()
    for conn in (0, 1, 37, 99):
        for i in range(6000):
            r = make(i, conn, "77")
            triplet = (_field(r, "client_address"), _field(r, "sender"), _field(r, "recipient"))
            if triplet in pool:
                known += 1
            else:
                assert "77x" in triplet[1] and triplet[0].startswith("172.")
                new += 1
            messages.setdefault(_field(r, "instance"), set()).add(triplet[:2])
            rcpts.add(triplet[2])
            domains.add(triplet[1].rsplit("@", 1)[1])
            parts = policyload.realistic_parts(i, conn)
            assert parts["new"] == (triplet not in pool)
            assert triplet[2] == f"user{parts['rcpt']}@example.org"
    assert new == known
    assert all(len(v) == 1 for v in messages.values())           # one client and sender per message
    assert len(messages) == 4 * 4 * 6000 // 6                    # 1.5 RCPTs per message
    assert len(rcpts) == policyload.RL_RCPTS and len(domains) == policyload.RL_DOMAINS


@needs_cc
@pytest.mark.parametrize("generator", ["python", "c"])
def test_paced_mode_offers_the_rate(server, generator):
    result, _ = _drive(server, generator, "greylist", conns=4, seconds=1.0, rate=400.0, procs=2)
    assert 300 <= result["done"] <= 420
    assert len(result["replied"]) == 4 and sum(result["replied"]) == result["done"]   # merged over 2 processes
    assert result["offered"] == 400.0
