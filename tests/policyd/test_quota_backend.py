"""Over quota across hosts, the relay side (issue 15, item 4): the codec and classification of a
back end's answer, the client protocol on a fake transport, and the quota check on a files
directory whose mailboxes live on back ends, asking a fake client (no sockets)."""

import logging

import pytest
from twisted.internet import defer, task
from twisted.internet.testing import StringTransport

from owlery.settings import Settings
from policyd.checks.quota_backend import (QUERY_CONTEXT, BackendClient, BackendError, ReplyReader, _protocol_class,
                                          classify, endpoint_for, query_bytes)
from policyd.protocol import RequestDecoder

from policyd_testlib import ask, make_pipeline, request, write_maildirsize, write_maps

FULL = "552 5.2.2 Mailbox full"
UNAVAILABLE = "DEFER_IF_PERMIT 4.3.0 Quota lookup temporarily unavailable, try again later"


# -- sans-I/O parts ------------------------------------------------------------------------

@pytest.mark.parametrize("template,host,expected", [
    ("tcp:{host}:10040", "backend-b.example.org", ("backend-b.example.org", 10040)),
    ("tcp:{host}:12340", "192.0.2.7", ("192.0.2.7", 12340)),
    ("tcp:[{host}]:10040", "2001:db8::7", ("2001:db8::7", 10040)),
    ("tcp:{host}.mgmt.example.org:10040", "b1", ("b1.mgmt.example.org", 10040)),
])
def test_endpoint_for(template, host, expected):
    assert endpoint_for(template, host) == expected


@pytest.mark.parametrize("template", ["tcp:backend:10040", "unix:/run/{host}.sock", "tcp:{host}:0",
                                      "tcp:{host}:99999", "tcp:{host}", "{host}:10040"])
def test_endpoint_for_refuses(template):
    with pytest.raises(ValueError):
        endpoint_for(template, "b")


def test_query_is_a_policy_request_about_the_mailbox():
    original = request(recipient="team@example.org", size="4242", queue_id="ABC123", sasl_username="x")
    [q] = RequestDecoder(line_length_max=4096, attributes_max=100).feed(query_bytes(original, "carol@example.org"))
    assert q.recipient == "carol@example.org"
    assert q.protocol_state == "RCPT"
    assert q.size == 4242
    assert q.attr("policy_context") == QUERY_CONTEXT
    assert q.sender == "someone@sender.test" and q.queue_id == "ABC123"
    assert q.attr("sasl_username") == ""          # not passed on: it is the relay's client's


def test_query_refuses_a_line_break():
    with pytest.raises(ValueError):
        query_bytes(request(recipient="a@example.org"), "a@example.org\nrecipient=b@example.org")


def test_reply_reader_splits_and_limits():
    r = ReplyReader(length_max=64)
    assert r.feed(b"action=DU") == []
    assert r.feed(b"NNO\n\naction=552 5.2.2 Mailbox full\n\n") == ["DUNNO", "552 5.2.2 Mailbox full"]
    with pytest.raises(BackendError):
        ReplyReader(length_max=64).feed(b"action=" + b"x" * 100)
    with pytest.raises(BackendError):
        ReplyReader().feed(b"nothing here\n\n")
    with pytest.raises(BackendError):
        ReplyReader().feed(b"other=1\n\n")


@pytest.mark.parametrize("text,kind,rendered", [
    ("DUNNO", "ok", None),
    ("OK", "ok", None),
    ("dunno", "ok", None),
    ("PREPEND X-Foo: bar", "ok", None),
    ("552 5.2.2 Mailbox full", "refuse", "552 5.2.2 Mailbox full"),
    ("552 5.2.2 Mailbox is full", "refuse", "552 5.2.2 Mailbox is full"),        # Dovecot's quota-status
    ("452 4.2.2 Mailbox full, try again later", "refuse", "452 4.2.2 Mailbox full, try again later"),
    ("550 Nope", "refuse", "550 5.0.0 Nope"),
    ("REJECT Unknown user", "refuse", "554 5.7.1 Unknown user"),
    ("DEFER", "refuse", "450 4.7.1 Try again later"),
    ("DEFER_IF_PERMIT 4.3.0 Recipient lookup temporarily unavailable", "unknown", None),
    ("552 4.2.2 class disagrees", "unknown", None),
    ("352 3.2.2 x", "unknown", None),
    ("BOGUS", "unknown", None),
    ("", "unknown", None),
])
def test_classify(text, kind, rendered):
    answer = classify(text)
    assert answer.kind == kind
    assert (answer.action.render() if answer.action else None) == rendered


def test_classify_cleans_reply_text():
    answer = classify("552 5.2.2 full\x1b[31m \u00e9")
    assert answer.action.render() == "552 5.2.2 full?[31m ?"


# -- the client's protocol on a fake transport ---------------------------------------------

def connected(client=None):
    client = client or BackendClient(task.Clock(), idle_max=1)
    proto = _protocol_class()(client, ("192.0.2.7", 10040))
    transport = StringTransport()
    proto.makeConnection(transport)
    return client, proto, transport


def test_protocol_one_question_one_answer_then_idle():
    client, proto, transport = connected()
    d = proto.ask(b"request=smtpd_access_policy\n\n")
    assert transport.value() == b"request=smtpd_access_policy\n\n"
    got = []
    d.addCallback(got.append)
    proto.dataReceived(b"action=552 5.2.2 Mai")
    assert got == []
    proto.dataReceived(b"lbox full\n\n")
    assert got == ["552 5.2.2 Mailbox full"]
    assert client._idle[("192.0.2.7", 10040)] == [proto] and proto.usable()


def test_protocol_idle_pool_is_bounded():
    client, first, t1 = connected()
    _, second, t2 = connected(client)
    for proto in (first, second):
        proto.ask(b"q\n\n")
        proto.dataReceived(b"action=DUNNO\n\n")
    assert client._idle[("192.0.2.7", 10040)] == [first]
    assert t2.disconnecting and not t1.disconnecting


@pytest.mark.parametrize("data", [b"action=DUNNO\n\naction=DUNNO\n\n", b"garbage\n\n", b"x" * 2000])
def test_protocol_bad_reply_fails_and_drops(data):
    client, proto, transport = connected()
    d = proto.ask(b"q\n\n")
    failures = []
    d.addErrback(failures.append)
    proto.dataReceived(data)
    assert failures and failures[0].check(BackendError)
    assert client._idle.get(("192.0.2.7", 10040)) in (None, [])


def test_protocol_connection_lost_while_waiting():
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure
    client, proto, _ = connected()
    d = proto.ask(b"q\n\n")
    failures = []
    d.addErrback(failures.append)
    proto.connectionLost(Failure(ConnectionDone()))
    assert failures[0].check(ConnectionDone)
    assert not proto.usable()


def test_protocol_cancel_aborts():
    _, proto, transport = connected()
    d = proto.ask(b"q\n\n")
    d.addErrback(lambda f: f.trap(defer.CancelledError))
    d.cancel()
    assert transport.disconnecting or getattr(transport, "disconnected", False)


# -- the quota check with back ends, against a fake client ---------------------------------

MAPS = {
    "mailboxes": """
        alice@example.org     example.org/alice
        bob@example.org       example.org/bob
        carol@example.org     example.org/carol
        dave@example.org      example.org/dave
        erin@example.org      example.org/erin
        here@example.org      example.org/here
    """,
    "aliases": """
        team@example.org      alice@example.org, carol@example.org
        all-full@example.org  carol@example.org, dave@example.org
        mixed@example.org     here@example.org, carol@example.org
        fwd@example.org       carol@example.org, x@remote.test
    """,
    "mail_hosts": """
        @example.org          backend-b.example.org
        alice@example.org     backend-a.example.org
        here@example.org      relay1.example.org
    """,
    "over_quota": """
        erin@example.org
    """,
}


class FakeClient:
    """Stands in for BackendClient: answers per (host, mailbox), records every question."""

    def __init__(self, answers):
        self.answers = answers        # (host, recipient) or host -> str | Exception | "hang"
        self.asked = []

    async def ask(self, host, port, payload, timeout):
        [q] = RequestDecoder(line_length_max=4096, attributes_max=100).feed(payload)
        self.asked.append((host, port, q.recipient, q.size))
        answer = self.answers.get((host, q.recipient), self.answers.get(host, "DUNNO"))
        if answer == "hang":
            return await defer.Deferred()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self):
        pass


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "dir"
    write_maps(r, MAPS)
    write_maildirsize(r, "example.org/here", "1000S\n10 1\n")       # room
    return r


def relay(root, answers, clock=None, **over):
    values = write_maps(root, MAPS)
    values.update({"quota_backend_endpoint": "tcp:{host}:10040", **over})
    p = make_pipeline(Settings().replace(**values), {"RCPT": ["recipient", "quota"], "END-OF-MESSAGE": ["quota"]},
                      clock=clock)
    fake = FakeClient(answers)
    p.ctx.resource("quota_backend_client", lambda: fake)
    return p, fake


def test_backend_says_room(root):
    p, fake = relay(root, {"backend-b.example.org": "DUNNO"})
    assert ask(p, recipient="carol+tag@example.org", size="5000") == "DUNNO"
    assert fake.asked == [("backend-b.example.org", 10040, "carol@example.org", 5000)]


@pytest.mark.parametrize("answer", [FULL, "552 5.2.2 Mailbox is full", "452 4.2.2 Mailbox full, try again later"])
def test_backend_says_full_its_reply_is_passed_on(root, answer):
    p, _ = relay(root, {"backend-b.example.org": answer})
    assert ask(p, recipient="carol@example.org") == answer


def test_end_of_message_asks_with_the_real_size(root):
    p, fake = relay(root, {"backend-b.example.org": FULL})
    assert ask(p, protocol_state="END-OF-MESSAGE", recipient="carol@example.org", size="123456",
               recipient_count="1") == FULL
    assert fake.asked[-1][2:] == ("carol@example.org", 123456)


@pytest.mark.parametrize("answer", [BackendError("127.0.0.1:10040: ConnectionRefusedError"),
                                    "DEFER_IF_PERMIT 4.3.0 Recipient lookup temporarily unavailable",
                                    "999 nonsense"])
def test_backend_cannot_tell_defers_by_default(root, answer, caplog):
    p, _ = relay(root, {"backend-b.example.org": answer})
    with caplog.at_level(logging.WARNING, logger="owlery.policyd"):
        assert ask(p, recipient="carol@example.org") == UNAVAILABLE
    assert "back end backend-b.example.org cannot tell about carol@example.org" in caplog.text


def test_backend_cannot_tell_accept_setting(root):
    p, _ = relay(root, {"backend-b.example.org": BackendError("refused")}, quota_backend_unreachable="accept")
    assert ask(p, recipient="carol@example.org") == "DUNNO"


def test_backend_hangs_times_out_and_defers(root):
    clock = task.Clock()
    p, _ = relay(root, {"backend-b.example.org": "hang"}, clock=clock, quota_backend_timeout=2)
    d = p.decide(request(recipient="carol@example.org"), p.new_session(), 0)
    clock.advance(1.9)
    assert not d.called
    clock.advance(0.2)
    out = []
    d.addBoth(out.append)
    assert out[0].action.render() == UNAVAILABLE


def test_not_asked_without_endpoint(root):
    p, fake = relay(root, {"backend-b.example.org": FULL}, quota_backend_endpoint="")
    assert ask(p, recipient="carol@example.org") == "DUNNO"          # as before: its Maildir here (none)
    assert ask(p, recipient="here@example.org", size="5000") == FULL
    assert fake.asked == []


def test_local_hosts_are_checked_here(root):
    p, fake = relay(root, {"relay1.example.org": "DUNNO"}, quota_backend_local_hosts=["Relay1.Example.Org."])
    assert ask(p, recipient="here@example.org", size="5000") == FULL     # 10 + 5000 + 4k > 1000, from maildirsize
    assert ask(p, recipient="here@example.org", size="0") == FULL
    assert fake.asked == []


def test_relay_question_is_answered_here_never_forwarded(root):
    p, fake = relay(root, {"backend-b.example.org": FULL})
    assert ask(p, recipient="carol@example.org", policy_context=QUERY_CONTEXT) == "DUNNO"
    assert fake.asked == []


def test_directory_over_quota_mark_refuses_without_asking(root):
    p, fake = relay(root, {"backend-b.example.org": "DUNNO"})
    assert ask(p, recipient="erin@example.org") == FULL
    assert fake.asked == []


@pytest.mark.parametrize("rcpt,answers,expected,asked", [
    # one member on each back end: refused only when both are full
    ("team@example.org", {"backend-a.example.org": FULL, "backend-b.example.org": FULL}, FULL, 2),
    ("team@example.org", {"backend-a.example.org": FULL, "backend-b.example.org": "DUNNO"}, "DUNNO", 2),
    ("team@example.org", {"backend-a.example.org": "DUNNO", "backend-b.example.org": FULL}, "DUNNO", 1),
    # a mailbox here with room: no back end is asked
    ("mixed@example.org", {"backend-b.example.org": FULL}, "DUNNO", 0),
    # a remote target takes the mail anyway: nobody asked
    ("fwd@example.org", {"backend-b.example.org": FULL}, "DUNNO", 0),
    # back-end answers differ in kind: our own reply for the alias
    ("all-full@example.org", {("backend-b.example.org", "carol@example.org"): "452 4.2.2 later",
                              ("backend-b.example.org", "dave@example.org"): FULL}, FULL, 2),
    ("all-full@example.org", {("backend-b.example.org", "carol@example.org"): FULL,
                              ("backend-b.example.org", "dave@example.org"): BackendError("x")}, UNAVAILABLE, 2),
])
def test_aliases_across_back_ends(root, rcpt, answers, expected, asked):
    p, fake = relay(root, answers, quota_backend_local_hosts=["relay1.example.org"])
    if rcpt == "mixed@example.org":
        write_maildirsize(root, "example.org/here", "100000000S\n10 1\n")
    assert ask(p, recipient=rcpt) == expected
    assert len(fake.asked) == asked


def test_questions_per_recipient_are_bounded(root):
    p, fake = relay(root, {"backend-b.example.org": FULL, "backend-a.example.org": FULL},
                    quota_backend_queries_max=1)
    assert ask(p, recipient="team@example.org") == "DUNNO"
    assert len(fake.asked) == 1


# -- the client: reuse, a stale idle connection, errors, a timeout while connecting ---------

class ScriptedClient(BackendClient):
    """BackendClient whose connections are made on StringTransports (or fail, or hang)."""

    def __init__(self, connect_with=None):
        super().__init__(task.Clock(), idle_max=2)
        self.connect_with = connect_with
        self.made = []

    async def _connect(self, host, port, timeout):
        if self.connect_with is not None:
            return await self.connect_with()
        proto = _protocol_class()(self, (host, port))
        proto.makeConnection(StringTransport())
        self.made.append(proto)
        return proto


def run(coro):
    d = defer.Deferred.fromCoroutine(coro)
    out = []
    d.addBoth(out.append)
    return d, out


def test_client_reuses_an_idle_connection():
    client = ScriptedClient()
    _, out = run(client.ask("192.0.2.7", 10040, b"q1\n\n", 3))
    client.made[0].dataReceived(b"action=DUNNO\n\n")
    assert out == ["DUNNO"]
    _, out = run(client.ask("192.0.2.7", 10040, b"q2\n\n", 3))
    assert len(client.made) == 1 and client.made[0].transport.value() == b"q1\n\nq2\n\n"
    client.made[0].dataReceived(b"action=552 5.2.2 Mailbox full\n\n")
    assert out == ["552 5.2.2 Mailbox full"]


def test_client_retries_once_when_the_idle_connection_was_closed():
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure
    client = ScriptedClient()
    _, out = run(client.ask("192.0.2.7", 10040, b"q1\n\n", 3))
    stale = client.made[0]
    stale.dataReceived(b"action=DUNNO\n\n")
    _, out = run(client.ask("192.0.2.7", 10040, b"q2\n\n", 3))
    stale.connectionLost(Failure(ConnectionDone()))         # the back end had closed it meanwhile
    assert len(client.made) == 2 and client.made[1].transport.value() == b"q2\n\n"
    client.made[1].dataReceived(b"action=DUNNO\n\n")
    assert out == ["DUNNO"]


def test_client_connect_errors_become_backend_errors():
    from twisted.internet.error import ConnectionRefusedError, DNSLookupError

    for error in (ConnectionRefusedError("refused"), DNSLookupError("no such host")):
        client = ScriptedClient(connect_with=lambda e=error: defer.fail(e))
        _, out = run(client.ask("backend-b.example.org", 10040, b"q\n\n", 3))
        assert out[0].check(BackendError), out[0]


def test_check_times_out_while_connecting(root):
    """A connect that hangs is cancelled by the timeout; the endpoint reports that in its own
    words (ConnectingCancelledError), which must still read as "cannot tell", not a crash."""
    from twisted.internet.error import ConnectingCancelledError

    def hanging():
        return defer.Deferred(lambda d: d.errback(ConnectingCancelledError(None)))
    clock = task.Clock()
    values = write_maps(root, MAPS)
    p = make_pipeline(Settings().replace(**values, quota_backend_endpoint="tcp:{host}:10040", quota_backend_timeout=2),
                      {"RCPT": ["quota"]}, clock=clock)
    p.ctx.resource("quota_backend_client", lambda: ScriptedClient(connect_with=hanging))
    d = p.decide(request(recipient="carol@example.org"), p.new_session(), 0)
    clock.advance(2.1)
    out = []
    d.addBoth(out.append)
    assert out and not hasattr(out[0], "raiseException"), out
    assert out[0].action.render() == UNAVAILABLE


def test_bad_endpoint_template_fails_when_the_pipeline_is_built(root):
    values = write_maps(root, MAPS)
    with pytest.raises(ValueError, match="quota_backend_endpoint"):
        make_pipeline(Settings().replace(**values, quota_backend_endpoint="tcp:backend:10040"), {"RCPT": ["quota"]})
