"""ReactorRedis (owlery/state/redis_reactor.py): RedisStore's get_many/write_many on the reactor.

Against real servers: the machine's Redis (OWLERY_TEST_REDIS_URL, tests/state/conftest.py) for
the twin runs beside RedisStore, and private redis-servers started here (a password, a unix
socket, a SCRIPT FLUSH, a kill) so nothing shared is disturbed. A few fakes run on the same
reactor for what a real Redis never does (garbage, a late or an extra reply), and a plain
listening socket that never answers stands for a hung server.

The reactor is a private EPollReactor driven by `iterate()` (never installed, never run), so
each wait has its own deadline and no global reactor is touched.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import time
import uuid

import pytest
import redis
from twisted.internet import defer, protocol
from twisted.internet.epollreactor import EPollReactor
from twisted.python.failure import Failure

from owlery.errors import StateUnavailable
from owlery.state.base import Write
from owlery.state.redis_reactor import ReactorRedis
from owlery.state.redis_store import _WRITES_PER_SCRIPT, RedisStore
from owlery.state.resp import ReplyDecoder
from tests.harness.procs import LOOPBACK, ManagedProcess, free_port, wait_until
from tests.harness.stores import drop_redis_prefix

T0 = 1_700_000_000.0
PASSWORD = "s3cr3t-Pa55word"


@pytest.fixture(scope="module")
def reactor():
    return EPollReactor()


def wait(reactor, d: defer.Deferred, timeout: float = 10.0):
    """The Deferred's result (its exception raised), turning the reactor until it fires."""
    box: list = []
    d.addBoth(box.append)
    deadline = time.monotonic() + timeout
    while not box:
        assert time.monotonic() < deadline, f"no result within {timeout} s"
        reactor.iterate(0.002)
    if isinstance(box[0], Failure):
        box[0].raiseException()
    return box[0]


def failure_of(reactor, d: defer.Deferred, timeout: float = 10.0) -> BaseException:
    with pytest.raises(Exception) as info:
        wait(reactor, d, timeout)
    return info.value


def spin(reactor, predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        reactor.iterate(0.002)


@pytest.fixture
def clients(reactor):
    """make(url, **kw) -> a ReactorRedis with a unique prefix; all closed afterwards."""
    made: list[ReactorRedis] = []

    def make(url, prefix=None, timeout=2.0, **kw):
        prefix = f"owlery-test:{uuid.uuid4().hex}:" if prefix is None else prefix
        c = ReactorRedis(reactor, url, prefix, timeout, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()
    for _ in range(5):
        reactor.iterate(0)


def count_connects(client) -> list[int]:
    n = [0]
    real = client._connect

    def counting():
        n[0] += 1
        real()
    client._connect = counting
    return n


# --- private redis-servers ------------------------------------------------------------------

class PrivateRedis:
    """redis-server on a free loopback port (and a unix socket), optionally with a password."""

    def __init__(self, workdir, password=None):
        self.workdir, self.password = workdir, password
        self.port = free_port()
        self.sock = str(workdir / "redis.sock")
        args = ["--port", self.port, "--bind", LOOPBACK, "--save", "", "--appendonly", "no",
                "--dir", workdir, "--unixsocket", self.sock, "--unixsocketperm", "700"]
        if password:
            args += ["--requirepass", password]
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = ManagedProcess([binary, *args], "redis-server", workdir / "redis.log")

    def url(self, db=0, password=None):
        auth = f":{password}@" if password else ""
        return f"redis://{auth}{LOOPBACK}:{self.port}/{db}"

    def admin(self, db=0):
        return redis.Redis(host=LOOPBACK, port=self.port, db=db, password=self.password, socket_timeout=2,
                           decode_responses=True)

    def _answers(self):
        try:
            return self.admin().ping()
        except redis.RedisError:
            return False

    def start(self):
        self.proc.start()
        wait_until(self._answers, 15, f"redis-server on port {self.port}", self.proc)
        return self

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.popen.wait(10)


@pytest.fixture
def private_redis(tmp_path):
    made: list[PrivateRedis] = []

    def start(password=None):
        server = PrivateRedis(tmp_path / f"r{len(made)}", password)
        server.workdir.mkdir()
        made.append(server)
        return server.start()
    yield start
    for server in made:
        server.proc.stop()


# --- fake servers on the test's reactor -----------------------------------------------------

class FakeRedisProtocol(protocol.Protocol):
    def connectionMade(self):
        self.decoder = ReplyDecoder()
        self.factory.connections.append(self)

    def dataReceived(self, data):
        for command in self.decoder.feed(data):
            self.factory.commands.append(command)
            answer = self.factory.answer(self, command)
            if answer is not None:
                self.transport.write(answer)


class FakeRedisFactory(protocol.ServerFactory):
    protocol = FakeRedisProtocol

    def __init__(self, answer):
        self.answer = answer
        self.connections: list = []
        self.commands: list = []


@pytest.fixture
def fake_redis(reactor):
    """fake(answer(proto, command) -> bytes | None) -> (factory, url)."""
    ports = []

    def start(answer):
        factory = FakeRedisFactory(answer)
        port = reactor.listenTCP(0, factory, interface=LOOPBACK)
        ports.append(port)
        return factory, f"redis://{LOOPBACK}:{port.getHost().port}/0"
    yield start
    for port in ports:
        port.stopListening()
    for _ in range(5):
        reactor.iterate(0)


# --- twins with RedisStore ------------------------------------------------------------------

@pytest.fixture
def twins(state_redis_url, clients):
    """(RedisStore, ReactorRedis) on the machine's Redis, each under its own prefix."""
    prefix = f"owlery-test:{uuid.uuid4().hex}:"
    store = RedisStore(state_redis_url, prefix=prefix + "sync:", timeout=2)
    client = clients(state_redis_url, prefix=prefix + "reactor:")
    yield store, client
    store.close()
    drop_redis_prefix(state_redis_url, prefix)


def _sequence(seed: int, count: int = 150):
    """get_many and write_many steps (add/set/incr, gates, time moving so keys die)."""
    rnd = random.Random(seed)
    now = T0
    keys = [f"k:{i}" for i in range(5)] + ["ü:✓", "sp ace*?"]
    counters, gates = [f"c:{i}" for i in range(3)], [f"g:{i}" for i in range(3)]

    def write():
        op = rnd.choice(("add", "set", "incr"))
        gate = rnd.choice(gates) if rnd.random() < 0.4 else None
        ttl, gate_ttl = float(rnd.randint(1, 30)), float(rnd.randint(1, 20))
        when = now + rnd.choice((0.0, 0.0, 0.25))
        if op == "incr":
            return Write("incr", rnd.choice(counters), str(rnd.randint(-2, 5)), ttl, when, gate, gate_ttl)
        return Write(op, rnd.choice(keys), rnd.choice(["v", "", "ümlaut ✓", f"v{rnd.randint(0, 99)}"]), ttl,
                     when, gate, gate_ttl)

    for _ in range(count):
        now += rnd.choice((0.0, 0.25, 0.5, 1.0, 2.5, 7.0))
        if rnd.random() < 0.4:
            yield "get_many", (rnd.sample(keys + counters + gates, rnd.randint(1, 6)), now)
        else:
            yield "write_many", ([write() for _ in range(rnd.randint(1, 8))],)


@pytest.mark.parametrize("seed", range(12))
def test_twin_of_redis_store_on_generated_sequences(reactor, twins, seed):
    store, client = twins
    for step, (name, args) in enumerate(_sequence(seed)):
        want = getattr(store, name)(*args)
        got = wait(reactor, getattr(client, name)(*args))
        assert got == want, (step, name, args)
        assert [type(v) for v in got] == [type(v) for v in want]


def test_twin_of_a_batch_longer_than_one_script(reactor, twins):
    """Several scripts pipelined; counts and gates carry across the script boundaries."""
    store, client = twins
    rnd = random.Random(7)
    writes = [Write(rnd.choice(("add", "incr")), f"k{rnd.randint(0, 9)}" if i % 2 else "c", "1", 60, T0 + i * 0.001,
                    rnd.choice((None, "g")), 0.5) for i in range(2 * _WRITES_PER_SCRIPT + 37)]
    writes = [Write("incr", w.key, "1", w.ttl, w.now, w.gate, w.gate_ttl) if w.key == "c" else w for w in writes]
    want = store.write_many(writes)
    assert wait(reactor, client.write_many(writes)) == want
    keys = [f"k{i}" for i in range(10)] + ["c", "g"]
    assert wait(reactor, client.get_many(keys, T0 + 1)) == store.get_many(keys, T0 + 1)


def test_twin_failures(reactor, twins, state_redis_url):
    store, client = twins
    bad = [Write("add", "x", "v", 1, T0), Write("frobnicate", "k", "v", 1, T0)]
    with pytest.raises(ValueError):
        store.write_many(bad)
    assert isinstance(failure_of(reactor, client.write_many(bad)), ValueError)
    # A key that is not a hash: the script errs, both give StateUnavailable.
    admin = redis.Redis.from_url(state_redis_url)
    admin.set(store.prefix + "plain", "x")
    admin.set(client.prefix + "plain", "x")
    admin.close()
    with pytest.raises(StateUnavailable):
        store.get_many(["plain"], T0)
    assert isinstance(failure_of(reactor, client.get_many(["plain"], T0)), StateUnavailable)
    with pytest.raises(StateUnavailable):
        store.write_many([Write("set", "plain", "v", 10, T0)])
    assert isinstance(failure_of(reactor, client.write_many([Write("set", "plain", "v", 10, T0)])), StateUnavailable)
    # ... and the connection still serves the next call
    assert wait(reactor, client.get_many(["nothing"], T0)) == store.get_many(["nothing"], T0) == [None]


def test_empty_calls_need_no_server(reactor, clients):
    client = clients(f"redis://{LOOPBACK}:{free_port()}/0")
    connects = count_connects(client)
    assert wait(reactor, client.get_many([], T0)) == []
    assert wait(reactor, client.write_many([])) == []
    assert connects[0] == 0


# --- pipelining -----------------------------------------------------------------------------

def test_a_thousand_calls_in_flight_at_once_answered_in_order(reactor, clients, state_redis_url):
    client = clients(state_redis_url)
    connects = count_connects(client)
    order: list[int] = []
    in_flight_at_first_answer: list[int] = []
    deferreds = []
    for i in range(1000):
        if i % 2 == 0:    # set k{i}, then the next call reads it back: FIFO on the server too
            d = client.write_many([Write("set", f"k{i}", f"value {i}", 60, T0)])
        else:
            d = client.get_many([f"k{i - 1}", "never"], T0)

        def answered(result, i=i):
            if not order:
                in_flight_at_first_answer.append(len(client._calls))
            order.append(i)
            return result
        deferreds.append(d.addCallback(answered))
    results = wait(reactor, defer.gatherResults(deferreds))
    assert order == list(range(1000))
    assert results == [[True] if i % 2 == 0 else [f"value {i - 1}", None] for i in range(1000)]
    assert connects[0] == 1
    assert in_flight_at_first_answer == [999]        # all were written before the first reply
    drop_redis_prefix(state_redis_url, client.prefix)


def test_calls_made_while_connecting_share_one_connect(reactor, clients, state_redis_url):
    client = clients(state_redis_url)
    connects = count_connects(client)
    ds = [client.get_many([f"k{i}"], T0) for i in range(50)]
    assert wait(reactor, defer.gatherResults(ds)) == [[None]] * 50
    assert connects[0] == 1


# --- NOSCRIPT -------------------------------------------------------------------------------

def test_noscript_is_loaded_and_retried(reactor, clients, private_redis):
    server = private_redis()
    client = clients(server.url())
    # A new server knows no script: the very first calls go through NOSCRIPT -> SCRIPT LOAD.
    assert wait(reactor, client.write_many([Write("set", "a", "1", 60, T0)])) == [True]
    assert wait(reactor, client.get_many(["a"], T0)) == ["1"]
    for _ in range(3):
        server.admin().script_flush()
        big = [Write("incr", "n", "1", 60, T0)] * (_WRITES_PER_SCRIPT + 3)     # two scripts, both missing
        ds = [client.get_many(["a", "b"], T0), client.write_many(big), client.get_many(["n"], T0)]
        got = wait(reactor, defer.gatherResults(ds))
        assert got[0] == ["1", None]
        assert got[1][-1] - got[1][0] == _WRITES_PER_SCRIPT + 2
        assert got[2] == [str(got[1][-1])]
    assert all(server.admin().script_exists(client_sha) for client_sha in _shas())


def _shas():
    from owlery.state import redis_reactor
    return [redis_reactor._GET_SHA, redis_reactor._WRITE_SHA]


def test_noscript_twice_fails_after_one_retry(reactor, clients, fake_redis):
    """A server that keeps answering NOSCRIPT: one SCRIPT LOAD, one retry, then StateUnavailable."""
    def answer(proto, command):
        if command[0] == "SCRIPT":
            return b"$40\r\n" + _shas()[0].encode() + b"\r\n"      # "loaded" (it says)
        return b"-NOSCRIPT No matching script.\r\n"
    factory, url = fake_redis(answer)
    client = clients(url)
    e = failure_of(reactor, client.get_many(["a"], T0))
    assert isinstance(e, StateUnavailable) and "NOSCRIPT" in str(e)
    assert [c[0] for c in factory.commands] == ["EVALSHA", "SCRIPT", "EVALSHA"]


# --- URLs, AUTH, SELECT ---------------------------------------------------------------------

def test_auth_and_select(reactor, clients, private_redis):
    server = private_redis(password=PASSWORD)
    for url, db in [(server.url(db=3, password=PASSWORD), 3),
                    (f"redis://default:{PASSWORD}@{LOOPBACK}:{server.port}/2", 2),
                    (f"redis://{LOOPBACK}:{server.port}?db=4&password={PASSWORD}", 4),
                    (f"unix://{server.sock}?db=5&password={PASSWORD}", 5)]:
        client = clients(url, prefix="p:")
        assert wait(reactor, client.write_many([Write("set", "k", url, 60, T0)])) == [True]
        assert wait(reactor, client.get_many(["k"], T0)) == [url]
        assert server.admin(db).hget("p:k", "v") == url          # in that database ...
        assert server.admin(0).exists("p:k") == 0                   # ... not in 0


def test_refused_auth_fails_without_the_password(reactor, clients, private_redis):
    server = private_redis(password=PASSWORD)
    wrong = "Wr0ng-" + PASSWORD
    for url in [server.url(password=wrong), server.url(), f"redis://alice:{wrong}@{LOOPBACK}:{server.port}/0"]:
        client = clients(url)
        e = failure_of(reactor, client.get_many(["k"], T0))
        assert isinstance(e, StateUnavailable)
        assert PASSWORD not in repr(e) and wrong not in repr(e) and wrong not in str(e.__context__)
    client = clients(server.url(password=wrong))
    server.kill()                            # lost and refused connections say the URL redacted too
    for _ in range(2):
        e = failure_of(reactor, client.get_many(["k"], T0))
        assert isinstance(e, StateUnavailable) and "***" in str(e) and wrong not in str(e)


@pytest.mark.parametrize("url,where,setup", [
    ("redis://127.0.0.1:6380/1", ("tcp", "127.0.0.1", 6380), [b"*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n"]),
    ("redis://h", ("tcp", "h", 6379), []),
    ("redis://:pw@h/0", ("tcp", "h", 6379), [b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"]),
    ("redis://u:p%40w@[::1]:7000", ("tcp", "::1", 7000), [b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$3\r\np@w\r\n"]),
    ("unix:///run/redis.sock?db=2", ("unix", "/run/redis.sock"), [b"*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n"]),
    ("REDIS://h:1/0", ("tcp", "h", 1), []),
])
def test_urls_read_as_redis_py_reads_them(url, where, setup):
    from owlery.state.redis_reactor import _target
    assert _target(url) == (where, setup)


@pytest.mark.parametrize("url", [
    f"rediss://:{PASSWORD}@h/0", f"redis://:{PASSWORD}@h/0?socket_timeout=3", "redis://h/0?protocol=3",
    f"http://:{PASSWORD}@h/0", f"redis://:{PASSWORD}@h/0?db=x", "unix://?db=1",
])
def test_what_the_reactor_client_does_not_do_is_refused_at_construction(reactor, url):
    with pytest.raises(ValueError) as info:
        ReactorRedis(reactor, url, "p:", 1.0)
    assert PASSWORD not in str(info.value)


# --- failures: never a hang -----------------------------------------------------------------

def _sent(client) -> bool:
    """Everything written has left the client's buffers (Twisted FileDescriptor internals)."""
    t = client._proto.transport
    return not t._tempDataBuffer and t.offset >= len(t.dataBuffer)


def test_connection_lost_fails_calls_in_flight_then_reconnects(reactor, clients, private_redis):
    server = private_redis()
    client = clients(server.url())
    assert wait(reactor, client.write_many([Write("set", "k", "v", 60, T0)])) == [True]
    server.proc.send_signal(signal.SIGSTOP)            # it reads nothing more: calls stay in flight
    ds = [client.get_many(["k"], T0) for _ in range(20)]
    spin(reactor, lambda: _sent(client), what="calls written to the socket")
    server.kill()
    for d in ds:
        e = failure_of(reactor, d, timeout=1.5)          # under the client's 2 s timeout: the loss, seen
        assert isinstance(e, StateUnavailable) and "connection lost" in str(e)
    server.start()                                      # the same port, empty
    assert wait(reactor, client.get_many(["k"], T0)) == [None]
    assert wait(reactor, client.write_many([Write("add", "k", "w", 60, T0)])) == [True]


def test_a_silent_server_times_out_and_the_connection_is_dropped(reactor, clients):
    with socket.socket() as listener:                  # accepts connections (backlog), never answers
        listener.bind((LOOPBACK, 0))
        listener.listen(16)
        url = f"redis://:{PASSWORD}@{LOOPBACK}:{listener.getsockname()[1]}/0"
        client = clients(url, timeout=0.4)
        connects = count_connects(client)
        for attempt in (1, 2):
            start = time.monotonic()
            ds = [client.get_many(["k"], T0), client.write_many([Write("set", "k", "v", 1, T0)])]
            for d in ds:
                e = failure_of(reactor, d, timeout=5)
                assert isinstance(e, StateUnavailable) and "no reply within 0.4 s" in str(e)
                assert PASSWORD not in str(e)
            assert 0.35 <= time.monotonic() - start < 0.4 + 0.6
            assert client._proto is None and connects[0] == attempt    # dropped; the next call reconnects


def test_a_late_reply_is_never_matched_to_a_later_call(reactor, clients, fake_redis):
    """The first EVALSHA is answered after the timeout: that connection is gone by then."""
    def answer(proto, command):
        value = b"*1\r\n$%d\r\n%s\r\n" % (len(command[3]), command[3].encode())   # echo the key
        if len(proto.factory.commands) == 1:
            reactor.callLater(0.5, proto.transport.write, value)
            return None
        return value
    factory, url = fake_redis(answer)
    client = clients(url, prefix="", timeout=0.2)
    assert isinstance(failure_of(reactor, client.get_many(["first"], T0)), StateUnavailable)
    assert wait(reactor, client.get_many(["second"], T0)) == ["second"]
    spin(reactor, lambda: factory.connections[0].transport.disconnected, what="the first connection closed")
    assert wait(reactor, client.get_many(["third"], T0)) == ["third"]
    assert len(factory.connections) == 2


@pytest.mark.parametrize("garbage", [b"%1\r\n", b"$5\r\nab\r\n\r\nxx", b"*1\r\n:1\r\n", b"*2\r\n$-1\r\n$-1\r\n",
                                     b"+OK\r\n+OK\r\n"])
def test_a_server_out_of_step_or_not_speaking_resp_is_dropped(reactor, clients, fake_redis, garbage):
    """Garbage, a reply of the wrong shape, an extra reply: StateUnavailable, then a new connection."""
    def answer(proto, command):
        if proto is proto.factory.connections[0]:
            return garbage
        return b"*1\r\n$-1\r\n"
    factory, url = fake_redis(answer)
    client = clients(url)
    assert isinstance(failure_of(reactor, client.get_many(["k"], T0)), StateUnavailable)
    spin(reactor, lambda: factory.connections[0].transport.disconnected, what="the connection dropped")
    assert wait(reactor, client.get_many(["k"], T0)) == [None]
    assert len(factory.connections) == 2


def test_redis_down_fails_at_once_and_does_not_retry_in_a_loop(reactor, clients):
    client = clients(f"redis://:{PASSWORD}@{LOOPBACK}:{free_port()}/0", timeout=5, reconnect_delay=0.3)
    connects = count_connects(client)
    start = time.monotonic()
    e = failure_of(reactor, client.get_many(["k"], T0))
    assert time.monotonic() - start < 1.0               # refused: not the 5 s timeout
    assert isinstance(e, StateUnavailable) and "cannot connect" in str(e) and PASSWORD not in str(e)
    ds = [client.get_many(["k"], T0) for _ in range(200)] + [client.write_many([Write("set", "k", "v", 1, T0)])]
    assert all(d.called for d in ds)                     # failed before returning: no connect, no wait
    for d in ds:
        assert isinstance(failure_of(reactor, d), StateUnavailable)
    assert connects[0] == 1
    for _ in range(50):                                  # the reactor turns: nothing retries by itself
        reactor.iterate(0.002)
    assert connects[0] == 1
    # after reconnect_delay the next call tries again (and fails again)
    spin(reactor, lambda: not client.get_many(["k"], T0).addErrback(lambda _: None).called, timeout=5,
         what="a new connect attempt")
    assert connects[0] == 2


def test_close_fails_what_is_in_flight_and_later_calls(reactor, clients, state_redis_url):
    client = clients(state_redis_url)
    assert wait(reactor, client.get_many(["k"], T0)) == [None]
    ds = [client.get_many(["k"], T0) for _ in range(10)]
    client.close()
    assert all(d.called for d in ds)
    for d in ds + [client.get_many(["k"], T0), client.write_many([Write("set", "k", "v", 1, T0)])]:
        e = failure_of(reactor, d)
        assert isinstance(e, StateUnavailable) and "closed" in str(e)


def test_a_reply_nobody_asked_for_drops_the_connection(reactor, clients, fake_redis):
    def answer(proto, command):
        extra = b"+OK\r\n" if proto is proto.factory.connections[0] else b""
        return b"*1\r\n$1\r\nv\r\n" + extra
    factory, url = fake_redis(answer)
    client = clients(url)
    assert wait(reactor, client.get_many(["k"], T0)) == ["v"]      # its own reply came first
    spin(reactor, lambda: factory.connections[0].transport.disconnected, what="the connection dropped")
    assert wait(reactor, client.get_many(["k"], T0)) == ["v"]
    assert len(factory.connections) == 2


def test_a_cancelled_call_keeps_the_others_in_step(reactor, clients, state_redis_url):
    """A caller's timeout (Deferred.addTimeout) cancels its call: its reply, when it comes, is
    dropped and the calls after it still get their own."""
    client = clients(state_redis_url)
    assert wait(reactor, client.write_many([Write("set", "a", "A", 60, T0), Write("set", "b", "B", 60, T0)])) == [True,
                                                                                                                True]
    first, second = client.get_many(["a"], T0), client.get_many(["b"], T0)
    first.cancel()
    assert isinstance(failure_of(reactor, first), defer.CancelledError)
    assert wait(reactor, second) == ["B"]
    assert wait(reactor, client.get_many(["a", "b"], T0)) == ["A", "B"]
    drop_redis_prefix(state_redis_url, client.prefix)
