"""LMTP against hostile clients: unbounded pipelining while a lookup or delivery is pending
(the adapter stops reading, the machine caps what it holds), replies left unread (write-side
back-pressure), and control characters in MAIL FROM / RCPT TO paths (refused, so they never
reach the Return-Path or Delivered-To of a stored message).

Sans-I/O transcripts for the machine; the Twisted adapter over a StringTransport, with the
thread pool replaced by Deferreds the test fires."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock, StringTransport

from owlery.reply import Reply
from owlery.settings import parse_text
from sieve.delivery import lmtp
from sieve.delivery.lmtpd import LMTPApplication
from sieve.delivery.users import MailUser

OK_RCPT = Reply(250, "2.1.5", "Ok")
HELLO = b"LHLO client\r\nMAIL FROM:<bob@remote.test>\r\nRCPT TO:<alice@example.org>\r\n"


# --- the sans-I/O machine -------------------------------------------------------------------

def _replies(actions) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, lmtp.SendReply))


def _pending_rcpt(limits=lmtp.Limits()):
    m = lmtp.LMTPServer("mx.test", limits)
    m.start()
    actions = m.feed(HELLO)
    assert isinstance(actions[-1], lmtp.CheckRecipient) and m.waiting
    return m


def test_pipelined_input_while_a_lookup_is_pending_is_capped():
    m = _pending_rcpt(lmtp.Limits(pipeline_buffer=4096))
    for _ in range(1000):                          # 6 MB of NOOPs while the lookup runs
        assert m.feed(b"NOOP\r\n" * 1000) == []
        assert m.buffered <= 4096                  # before: grew to 6 MB
    out = m.recipient_checked(OK_RCPT, "alice")
    assert _replies(out).startswith(b"250 2.1.5")
    assert b"421 4.5.0" in _replies(out) and isinstance(out[-1], lmtp.CloseConnection)
    assert m.feed(b"NOOP\r\n") == []


def test_pipelined_input_while_a_delivery_is_pending_is_capped_after_the_replies():
    m = _pending_rcpt(lmtp.Limits(pipeline_buffer=4096))
    m.recipient_checked(OK_RCPT, "alice")
    actions = m.feed(b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n")
    assert isinstance(actions[-1], lmtp.Deliver) and m.waiting
    m.feed(b"RSET\r\n" * 10_000)
    assert m.buffered <= 4096
    out = m.delivered([Reply(250, "2.0.0", "<alice@example.org> Saved")])
    text = _replies(out)
    # the delivery's reply is not lost: it goes out first, then the connection ends
    assert text.startswith(b"250 2.0.0 <alice@example.org> Saved\r\n421 4.5.0")
    assert isinstance(out[-1], lmtp.CloseConnection)


def test_legitimate_pipelining_within_the_cap_is_answered_in_order():
    m = _pending_rcpt()
    assert m.feed(b"RCPT TO:<carol@example.org>\r\nDATA\r\n") == []
    out = m.recipient_checked(OK_RCPT, "alice")
    assert isinstance(out[-1], lmtp.CheckRecipient) and out[-1].address == "carol@example.org"
    out = m.recipient_checked(OK_RCPT, "carol")
    assert _replies(out) == b"250 2.1.5 Ok\r\n354 Start mail input; end with <CRLF>.<CRLF>\r\n"


BAD = [b"\x00", b"\x01", b"\x08", b"\x1b", b"\x7f", b"\xc2\x85", b"\xe2\x80\xa8"]


@pytest.mark.parametrize("bad", BAD + [b"\t"], ids=repr)
@pytest.mark.parametrize("quoted", [False, True])
def test_control_characters_in_mail_from_are_refused(bad, quoted):
    local = b'"bo' + bad + b'b"' if quoted else b"bo" + bad + b"b"
    m = lmtp.LMTPServer("mx.test")
    m.start()
    out = m.feed(b"LHLO client\r\nMAIL FROM:<" + local + b"@remote.test>\r\n")
    assert _replies(out).endswith(b"501 5.1.7 Bad sender address syntax\r\n")   # before: 250 2.1.0


@pytest.mark.parametrize("bad", BAD + [b"\r", b"\t"], ids=repr)
def test_control_characters_in_rcpt_to_are_refused(bad):
    m = lmtp.LMTPServer("mx.test")
    m.start()
    out = m.feed(b'LHLO client\r\nMAIL FROM:<bob@remote.test>\r\nRCPT TO:<"al' + bad + b'ice"@example.org>\r\n')
    assert not any(isinstance(a, lmtp.CheckRecipient) for a in out)
    assert _replies(out).endswith(b"501 5.1.3 Bad recipient address syntax\r\n")


def test_control_characters_in_the_user_parameter_are_refused():
    m = lmtp.LMTPServer("mx.test")
    m.start()
    out = m.feed(b"LHLO client\r\nMAIL FROM:<bob@remote.test>\r\n"
                 b"RCPT TO:<alice@example.org> X-OWLERY-USER=al+00ice\r\n")
    assert _replies(out).endswith(b"555 5.5.4 Unsupported parameter\r\n")


def test_printable_paths_are_still_accepted():
    m = lmtp.LMTPServer("mx.test")
    m.start()
    out = m.feed(b'LHLO client\r\nMAIL FROM:<"bob smith"@remote.test>\r\nRCPT TO:<j\xc3\xb6rg@example.org>\r\n')
    assert b"250 2.1.0" in _replies(out)
    assert out[-1] == lmtp.CheckRecipient("j\u00f6rg@example.org", '"bob smith"@remote.test')


# --- the Twisted adapter ----------------------------------------------------------------------

class Resolver:
    def __init__(self, tmp_path):
        self.tmp = tmp_path

    def expand(self, address):
        return MailUser(address.lower(), str(self.tmp / "Maildir"), None)


class Connection:
    """One lmtpd connection over a StringTransport; thread-pool jobs wait for `fire()` unless
    `sync` runs them at once (then the real executor writes the Maildir)."""

    def __init__(self, tmp_path, settings="", sync=False):
        s = parse_text(settings)
        self.app = LMTPApplication(s, MemoryReactorClock(), resolver=Resolver(tmp_path), threadpool=object())
        self.jobs: list[tuple[defer.Deferred, Any, tuple, dict]] = []
        self.sync = sync
        self.app.in_thread = self._in_thread
        self.proto = self.app.factory.buildProtocol(None)
        self.tr = StringTransport()
        self.proto.makeConnection(self.tr)

    def _in_thread(self, f, *args, **kw):
        if self.sync:
            return defer.maybeDeferred(f, *args, **kw)
        d = defer.Deferred()
        self.jobs.append((d, f, args, kw))
        return d

    def fire(self):
        """Run the oldest pending job now and hand its result back."""
        d, f, args, kw = self.jobs.pop(0)
        d.callback(f(*args, **kw))

    def send(self, data: bytes) -> None:
        self.proto.dataReceived(data)

    def replies(self) -> bytes:
        return self.tr.value()


def test_adapter_stops_reading_while_a_lookup_is_pending(tmp_path):
    c = Connection(tmp_path)
    assert c.tr.producerState == "producing"
    c.send(HELLO)
    assert len(c.jobs) == 1
    assert c.tr.producerState == "paused"                  # before: kept reading
    c.send(b"NOOP\r\n" * 3)                                # what one read already held
    c.fire()
    assert c.tr.producerState == "producing"
    assert c.replies().endswith(b"250 2.1.5 <alice@example.org> Ok\r\n" + b"250 2.0.0 Ok\r\n" * 3)


def test_adapter_stops_reading_while_a_delivery_is_pending(tmp_path):
    c = Connection(tmp_path)
    c.send(HELLO)
    c.fire()
    c.send(b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n")
    assert c.tr.producerState == "paused" and len(c.jobs) == 1
    c.fire()                                               # the real executor stores it
    assert c.tr.producerState == "producing"
    assert c.replies().endswith(b"354 Start mail input; end with <CRLF>.<CRLF>\r\n"
                                b"250 2.0.0 <alice@example.org> Saved\r\n")


def test_adapter_caps_what_it_holds_and_closes_after_the_pending_reply(tmp_path, caplog):
    c = Connection(tmp_path, 'lmtpd_pipeline_buffer_limit = "1k"')
    c.send(HELLO)
    c.send(b"NOOP\r\n" * 10_000)                           # one huge read while paused
    assert c.proto.machine.buffered == 0 and c.proto.machine.overflowed
    assert "pipelined more than lmtpd_pipeline_buffer_limit" in caplog.text
    c.fire()
    assert c.replies().endswith(b"250 2.1.5 <alice@example.org> Ok\r\n"
                                b"421 4.5.0 Too much pipelined input, closing connection\r\n")
    assert c.tr.disconnecting and c.tr.producer is None


def test_unread_replies_pause_reading_until_they_drain(tmp_path):
    c = Connection(tmp_path)
    assert c.tr.producer is c.proto and c.tr.streaming      # before: no write-side back-pressure
    c.proto.pauseProducing()                               # the transport's buffer is full
    assert c.tr.producerState == "paused"
    c.send(HELLO)                                          # a lookup starts meanwhile
    c.fire()                                               # lookup done, output still full
    assert c.tr.producerState == "paused"
    c.proto.resumeProducing()                              # drained
    assert c.tr.producerState == "producing"


def test_close_unregisters_the_producer_so_the_connection_really_closes(tmp_path):
    # Twisted does not finish loseConnection while a producer is registered and paused
    c = Connection(tmp_path)
    c.send(b"LHLO client\r\nQUIT\r\n")
    assert c.tr.disconnecting and c.tr.producer is None
    c = Connection(tmp_path)
    c.proto.pauseProducing()
    c.tr.loseConnection()                                  # e.g. the daemon draining
    c.proto.resumeProducing()                              # the output drained
    assert c.tr.producer is None


def test_control_characters_never_reach_stored_trace_headers(tmp_path):
    c = Connection(tmp_path, sync=True)
    c.send(b'LHLO client\r\nMAIL FROM:<"x\rDelivered-To: evil"@remote.test>\r\n'
           b"MAIL FROM:<bob\x00@remote.test>\r\n"
           b"MAIL FROM:<bob@remote.test>\r\n"
           b'RCPT TO:<"alice\x1b[2J"@example.org>\r\n'
           b"RCPT TO:<alice@example.org>\r\n"
           b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n")
    text = c.replies()
    assert text.count(b"501 5.1.7") == 2 and text.count(b"501 5.1.3") == 1
    [stored] = [p for p in (tmp_path / "Maildir" / "new").iterdir()]
    head = stored.read_bytes().split(b"\n\n", 1)[0]
    assert head.startswith(b"Return-Path: <bob@remote.test>\nDelivered-To: alice@example.org\n")
    assert not any(b < 0x20 and b not in (0x09, 0x0A) or b == 0x7F for b in head), head
