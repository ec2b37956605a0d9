"""The socketmap adapter: cache fast path, the thread pool path, order, limits, timeouts, errors,
reload (in memory, with a clock and a pool the test drives) and `owlery socketmap` over a real socket."""

import logging

import pytest
from twisted.internet import defer, task
from twisted.internet.testing import StringTransport

from owlery.directory import MISS, open_directory
from owlery.errors import TemporaryFailure
from owlery.settings import Settings
from socketmap import maps
from socketmap.protocol import NetstringDecoder, encode_request, parse_reply
from socketmap.service import CacheMiss, PeekDirectory, SocketmapApp
from tests.socketmap.daemon import Client, SocketmapDaemon


class ManualPool:
    """Lookups wait here until the test runs them (run()), or forever."""

    def __init__(self):
        self.jobs = []

    def submit(self, fn, *args):
        d = defer.Deferred()
        self.jobs.append((d, fn, args))
        return d

    def run(self):
        jobs, self.jobs = self.jobs, []
        for d, fn, args in jobs:
            if d.called:
                continue
            try:
                result = fn(*args)
            except Exception:  # noqa: BLE001 - the pool hands any failure to the Deferred
                d.errback()
            else:
                d.callback(result)

    def close(self):
        pass


class FullPool(ManualPool):
    def submit(self, fn, *args):
        return defer.fail(TemporaryFailure("lookup threads saturated (1000 lookups waiting)"))


@pytest.fixture
def files(tmp_path):
    (tmp_path / "mailboxes").write_text("alice@example.org\nbob@example.org\n")
    (tmp_path / "aliases").write_text("sales@example.org alice@example.org, bob@example.org\n")
    (tmp_path / "mail_hosts").write_text("bob@example.org backend-b.example.org\n")
    return {f"files_{n}": str(tmp_path / n) for n in ("mailboxes", "aliases", "mail_hosts")}


@pytest.fixture
def server(files):
    """(app, connect) with a manual pool and a task.Clock; connect() -> (protocol, transport)."""
    clock = task.Clock()
    settings = Settings().replace(**files)
    pool = ManualPool()
    app = SocketmapApp(settings, clock, directory=open_directory(settings, clock=clock.seconds), pool=pool)

    def connect():
        proto = app.factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport
    yield app, connect
    app.close()
    app.directory.close()


def replies(transport):
    return [parse_reply(s) for s in NetstringDecoder(1 << 20).feed(transport.value())]


def texts(transport):
    return [f"{a.status} {a.text}".rstrip() for a in replies(transport)]


def test_cold_lookup_in_the_pool_then_warm_from_the_cache(server):
    app, connect = server
    proto, t = connect()
    proto.dataReceived(encode_request("virtual_alias_maps", "sales@example.org"))
    assert t.value() == b"" and len(app.pool.jobs) == 1
    app.pool.run()
    assert texts(t) == ["OK alice@example.org,bob@example.org"]
    t.clear()
    proto.dataReceived(encode_request("virtual_alias_maps", "sales@example.org"))
    assert texts(t) == ["OK alice@example.org,bob@example.org"] and app.pool.jobs == []


def test_replies_keep_the_order_of_requests(server):
    app, connect = server
    proto, t = connect()
    proto.dataReceived(encode_request("virtual_mailbox_domains", "example.org"))
    app.pool.run()                                          # example.org is now cached
    t.clear()
    proto.dataReceived(encode_request("transport_maps", "bob@example.org")
                       + encode_request("virtual_mailbox_domains", "example.org")
                       + encode_request("nosuch", "x"))
    assert t.value() == b""                                 # the cached answer waits its turn
    app.pool.run()
    assert texts(t) == ["OK lmtp:inet:backend-b.example.org:24", "OK OK", "PERM unknown map 'nosuch'; known: "
                        "virtual_mailbox_domains, virtual_mailbox_maps, virtual_alias_maps, transport_maps, "
                        "relay_recipient_maps"]


def test_bad_request_is_perm_and_the_connection_goes_on(server):
    _, connect = server
    proto, t = connect()
    proto.dataReceived(b"20:no-space-in-this-one,")
    assert texts(t) == ["PERM request is not NAME SPACE KEY"] and not t.disconnecting


def test_broken_framing_is_perm_then_closed(server):
    app, connect = server
    proto, t = connect()
    proto.dataReceived(encode_request("virtual_mailbox_domains", "x.test") + b"HELO there\r\n")
    app.pool.run()
    assert texts(t) == ["NOTFOUND", "PERM netstring length holds b'H': not decimal digits"]
    assert t.disconnecting


def test_too_many_queued_requests_close_the_connection(server, caplog):
    app, connect = server
    proto, t = connect()
    proto.dataReceived(encode_request("virtual_alias_maps", "nobody@example.org") * 18)
    assert t.disconnecting and "more than 16 requests queued" in caplog.text


def test_idle_connection_closed_but_not_while_a_lookup_runs(server):
    app, connect = server
    proto, t = connect()
    app.reactor.advance(119)
    assert not t.disconnecting
    proto.dataReceived(encode_request("virtual_alias_maps", "alice@example.org"))
    app.reactor.advance(29)                    # a slow lookup: under socketmap_lookup_timeout (30 s)
    assert not t.disconnecting
    app.pool.run()
    app.reactor.advance(119)
    assert not t.disconnecting
    app.reactor.advance(1)
    assert t.disconnecting


def test_slow_lookup_answers_timeout_and_the_late_result_is_dropped(server):
    app, connect = server
    proto, t = connect()
    proto.dataReceived(encode_request("relay_recipient_maps", "alice@example.org"))
    app.reactor.advance(30)
    assert texts(t) == ["TIMEOUT lookup took longer than 30 s"]
    app.pool.run()                             # the thread finishes after all: nothing more is sent
    assert len(replies(t)) == 1


def test_full_pool_answers_temp(files):
    settings = Settings().replace(**files)
    app = SocketmapApp(settings, task.Clock(), directory=open_directory(settings), pool=FullPool())
    proto = app.factory.buildProtocol(None)
    t = StringTransport()
    proto.makeConnection(t)
    proto.dataReceived(encode_request("virtual_alias_maps", "alice@example.org") * 2)
    assert texts(t) == ["TEMP lookup threads saturated (1000 lookups waiting)"] * 2


def test_cached_replies_go_out_before_an_immediate_pool_answer(files):
    settings = Settings().replace(**files)
    directory = open_directory(settings)
    directory.hosts_domain("example.org")                   # cached
    app = SocketmapApp(settings, task.Clock(), directory=directory, pool=FullPool())
    proto = app.factory.buildProtocol(None)
    t = StringTransport()
    proto.makeConnection(t)
    proto.dataReceived(encode_request("virtual_mailbox_domains", "example.org")
                       + encode_request("virtual_mailbox_domains", "other.test")
                       + encode_request("virtual_mailbox_domains", "example.org"))
    assert texts(t) == ["OK OK", "TEMP lookup threads saturated (1000 lookups waiting)", "OK OK"]


def test_a_bug_answers_temp_and_logs_the_traceback(server, monkeypatch, caplog):
    app, connect = server

    def broken(key, directory, config):
        directory.resolve(key)                 # cold: goes to the pool; then fails there
        raise RuntimeError("bug in a table")
    monkeypatch.setitem(maps.TABLES, "transport_maps", broken)
    proto, t = connect()
    proto.dataReceived(encode_request("transport_maps", "alice@example.org"))
    app.pool.run()
    assert texts(t) == ["TEMP internal error"] and "bug in a table" in caplog.text
    proto.dataReceived(encode_request("transport_maps", "alice@example.org"))   # now warm: the fast path
    assert texts(t) == ["TEMP internal error"] * 2


def test_connection_lost_during_a_lookup(server):
    app, connect = server
    proto, t = connect()
    proto.dataReceived(encode_request("virtual_alias_maps", "alice@example.org"))
    proto.connectionLost(None)
    app.pool.run()
    assert t.value() == b""


def test_one_debug_line_per_lookup_one_warning_per_error(server, caplog):
    app, connect = server
    caplog.set_level(logging.DEBUG, logger="owlery.socketmap")
    proto, t = connect()
    proto.dataReceived(encode_request("virtual_alias_maps", "sales@example.org") + encode_request("nosuch", "k"))
    app.pool.run()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "owlery.socketmap"]
    assert lines[0] == ("DEBUG", "socketmap: lookup: map=virtual_alias_maps key=<sales@example.org> status=OK "
                                 "data=<alice@example.org,bob@example.org> from=directory")
    assert lines[1][0] == "WARNING" and lines[1][1].startswith("socketmap: lookup: map=nosuch key=<k> status=PERM")
    assert len(lines) == 2


def test_reload_takes_new_settings(server, files):
    app, connect = server
    app.reload(Settings().replace(socketmap_transport_template="smtp:[{host}]", **files))
    proto, t = connect()
    proto.dataReceived(encode_request("transport_maps", "bob@example.org"))
    app.pool.run()
    assert texts(t) == ["OK smtp:[backend-b.example.org]"]
    with pytest.raises(ValueError):
        app.reload(Settings().replace(socketmap_transport_template="no-host-here", **files))
    assert app.config.transport_template == "smtp:[{host}]"


def test_reload_closes_the_old_directory_once_its_lookups_are_done(files):
    clock = task.Clock()
    settings = Settings().replace(**files)
    app = SocketmapApp(settings, clock, pool=ManualPool())          # opens its own directory
    old = app.directory
    old.resolve("alice@example.org")
    app.reload(settings)
    assert app.directory is not old and old.peek_resolve("alice@example.org") is not MISS
    clock.advance(31)                                                # socketmap_lookup_timeout + 1
    assert old.peek_resolve("alice@example.org") is MISS             # closed (and its cache cleared)
    app.close()


def test_a_key_cannot_forge_a_log_line(server, caplog):
    _, connect = server
    proto, t = connect()
    proto.dataReceived(encode_request("nosuch", "k\n2026-01-01 00:00:00,000 INFO socketmap: forged"))
    [record] = [r for r in caplog.records if r.name == "owlery.socketmap"]
    assert "\n" not in record.getMessage() and "key=<k?2026-01-01" in record.getMessage()


def test_peek_directory_never_blocks(files):
    d = open_directory(Settings().replace(**files))
    peek = PeekDirectory(d)
    with pytest.raises(CacheMiss):
        peek.resolve("alice@example.org")
    d.resolve("alice@example.org")
    assert peek.resolve("alice@example.org").kind == "mailbox"
    for method, arg in (("hosts_domain", "example.org"), ("expand_once", "alice@example.org")):
        with pytest.raises(CacheMiss):
            getattr(peek, method)(arg)
    d.close()


# ---- over a real socket ---------------------------------------------------------------------

@pytest.fixture
def daemon(tmp_path, files):
    lines = "".join(f'{k} = "{v}"\n' for k, v in files.items())
    d = SocketmapDaemon(tmp_path / "d", lines + "socketmap_requests_queued_max = 1000\n")
    yield d.start()
    d.stop()


def test_real_socket_pipelined_and_in_order(daemon):
    c = Client(daemon.port)
    keys = [f"user{i}@example.org" if i % 3 else "sales@example.org" for i in range(600)]
    got = c.ask_many([("virtual_alias_maps", k) for k in keys])
    assert [a.status for a in got] == ["NOTFOUND" if i % 3 else "OK" for i in range(600)]
    assert got[0].text == "alice@example.org,bob@example.org"
    c.close()


def test_real_socket_garbage_gets_perm_and_eof(daemon):
    c = Client(daemon.port)
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [answer] = c.read(1)
    assert answer.status == "PERM" and c.closed_by_server()
    c = Client(daemon.port)                    # the server goes on for everyone else
    assert c.ask("virtual_mailbox_domains", "example.org").text == "OK"
    c.close()
