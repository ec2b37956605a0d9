"""The Received field Postfix will add, synthesized for spamd and kept with a quarantined copy.

Postfix does not show milters its own Received line: without it SpamAssassin reports
NO_RECEIVED / NO_RELAYS and cannot run its relay and DNSBL rules; and a quarantined copy
released later lacked it and every header the milter would have added.
"""

from __future__ import annotations

import socket
import threading

import pytest

from milters import effects as fx
from milters.clients.spamd import SpamdClient
from owlery.quarantine import ListFilter
from owlery.quarantine.directory import DirectoryStore
from owlery.quarantine.release import released_copy
from milters.received import received_header
from milters.stages import Services
from milters.stages.authres import AuthResults
from milters.stages.quarantine import edited_header_block
from milters.stages.spam import SpamStage
from owlery.settings import Settings
from tests.milters.session_driver import NOW, run_session

DATE = "Fri, 15 Jan 2027 08:00:00 +0000"
CLEAN = (b"From: Alice <alice@sender.test>\r\nTo: bob@example.test\r\nSubject: hello\r\n"
         b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <1@sender.test>\r\n"
         b"X-Spam-Flag: NO\r\n\r\nHi Bob\r\n")
MX = {"j": "mx.example.test", "i": "4ZxQ1b2c3d"}


# --- the field's exact form -------------------------------------------------------------

CASES = [
    pytest.param(MX, "mail.sender.test", "192.0.2.7", "mail.sender.test", ["bob@example.test"],
                 "Received: from mail.sender.test (mail.sender.test [192.0.2.7])\r\n"
                 "\tby mx.example.test (Postfix) with ESMTP id 4ZxQ1b2c3d\r\n"
                 f"\tfor <bob@example.test>; {DATE}\r\n", id="ipv4"),
    pytest.param(MX, "mail6.sender.test", "2001:db8:0:0::25", "[IPv6:2001:db8::25]", ["bob@example.test"],
                 "Received: from [IPv6:2001:db8::25] (mail6.sender.test [IPv6:2001:db8::25])\r\n"
                 "\tby mx.example.test (Postfix) with ESMTP id 4ZxQ1b2c3d\r\n"
                 f"\tfor <bob@example.test>; {DATE}\r\n", id="ipv6"),
    # Postfix gives milters "[addr]" for a client without a verified name; it writes "unknown"
    pytest.param(MX, "[198.51.100.9]", "198.51.100.9", "spammer.test", ["bob@example.test"],
                 "Received: from spammer.test (unknown [198.51.100.9])\r\n"
                 "\tby mx.example.test (Postfix) with ESMTP id 4ZxQ1b2c3d\r\n"
                 f"\tfor <bob@example.test>; {DATE}\r\n", id="unknown-client-name"),
    pytest.param({**MX, "{client_name}": "unknown"}, "whatever.test", "198.51.100.9", "x.test", ["b@example.test"],
                 "Received: from x.test (unknown [198.51.100.9])\r\n"
                 "\tby mx.example.test (Postfix) with ESMTP id 4ZxQ1b2c3d\r\n"
                 f"\tfor <b@example.test>; {DATE}\r\n", id="client-name-macro-unknown"),
    pytest.param(MX, "mail.sender.test", "192.0.2.7", "", ["bob@example.test"],
                 "Received: from mail.sender.test (mail.sender.test [192.0.2.7])\r\n"
                 "\tby mx.example.test (Postfix) with ESMTP id 4ZxQ1b2c3d\r\n"
                 f"\tfor <bob@example.test>; {DATE}\r\n", id="no-helo-uses-name"),
    pytest.param(MX, "[192.0.2.7]", "192.0.2.7", None, ["bob@example.test"],
                 "Received: from unknown (unknown [192.0.2.7])\r\n"
                 "\tby mx.example.test (Postfix) with ESMTP id 4ZxQ1b2c3d\r\n"
                 f"\tfor <bob@example.test>; {DATE}\r\n", id="no-helo-no-name"),
    pytest.param({**MX, "{tls_version}": "TLSv1.3", "{cipher}": "TLS_AES_256_GCM_SHA384", "{cipher_bits}": "256"},
                 "mail.sender.test", "192.0.2.7", "mail.sender.test", ["bob@example.test"],
                 "Received: from mail.sender.test (mail.sender.test [192.0.2.7])\r\n"
                 "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n"
                 "\tby mx.example.test (Postfix) with ESMTPS id 4ZxQ1b2c3d\r\n"
                 f"\tfor <bob@example.test>; {DATE}\r\n", id="tls"),
    pytest.param({**MX, "{tls_version}": "TLSv1.2", "{cipher}": "ECDHE-RSA-AES128-GCM-SHA256",
                  "{auth_authen}": "alice"},
                 "laptop.sender.test", "192.0.2.8", "laptop", ["bob@example.test", "carol@example.test"],
                 "Received: from laptop (laptop.sender.test [192.0.2.8])\r\n"
                 "\t(using TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256)\r\n"
                 "\tby mx.example.test (Postfix) with ESMTPSA id 4ZxQ1b2c3d;\r\n"
                 f"\t{DATE}\r\n", id="tls-auth-two-recipients"),
    pytest.param({"j": "mx.example.test"}, "a.test", "192.0.2.7", "a.test", ["x@example.test", "x@example.test"],
                 "Received: from a.test (a.test [192.0.2.7])\r\n"
                 "\tby mx.example.test (Postfix) with ESMTP\r\n"
                 f"\tfor <x@example.test>; {DATE}\r\n", id="no-queue-id-one-distinct-rcpt"),
    pytest.param(MX, "localhost", None, "", ["bob@example.test"],
                 "Received: by mx.example.test (Postfix) id 4ZxQ1b2c3d\r\n"
                 f"\tfor <bob@example.test>; {DATE}\r\n", id="local-sendmail"),
    pytest.param(MX, "evil.test", "192.0.2.7", "a\r\nX-Injected: 1", ["bob@example.test"],
                 "Received: from a??X-Injected:?1 (evil.test [192.0.2.7])\r\n"
                 "\tby mx.example.test (Postfix) with ESMTP id 4ZxQ1b2c3d\r\n"
                 f"\tfor <bob@example.test>; {DATE}\r\n", id="helo-cannot-fold-or-end-the-field"),
]


@pytest.mark.parametrize(("macros", "name", "address", "helo", "rcpts", "expected"), CASES)
def test_received_field_has_postfix_form(macros, name, address, helo, rcpts, expected):
    got = received_header(macros, client_name=name, client_address=address, helo=helo, recipients=rcpts,
                          now=NOW)
    assert got.decode() == expected


# --- the bytes spamd receives -------------------------------------------------------------

class RecordingSpamd:
    """A spamd on a unix socket: keeps each request's body, answers a REPORT with score 1."""

    def __init__(self, path):
        self.path, self.bodies = path, []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while b"\r\n\r\n" not in buf:
                    buf += conn.recv(65536)
                head, _, body = buf.partition(b"\r\n\r\n")
                length = int(head.split(b"Content-length: ", 1)[1].split(b"\r\n", 1)[0])
                while len(body) < length:
                    body += conn.recv(65536)
                self.bodies.append(body)
                conn.sendall(b"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: False ; 1.0 / 5.0\r\n\r\n")

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)     # wakes the blocked accept() (Linux)
        self.thread.join(5)
        self.sock.close()
        assert not self.thread.is_alive()


def drive(settings, stages, raw=CLEAN, rcpts=("bob@example.test",), macros=None):
    return run_session(settings, stages, raw, rcpts=rcpts, client=("mail.sender.test", "192.0.2.7"),
                       helo="mail.sender.test", mta="mx.example.test", queue_id="4ZxQ1b2c3d", macros=macros)


RECEIVED = ("Received: from mail.sender.test (mail.sender.test [192.0.2.7])\r\n"
            "\tby mx.example.test (Postfix) with ESMTP id 4ZxQ1b2c3d\r\n"
            f"\tfor <bob@example.test>; {DATE}\r\n").encode()


def test_spamd_receives_the_received_field_then_the_message_unchanged(tmp_path):
    server = RecordingSpamd(str(tmp_path / "spamd.sock"))
    s = Settings().replace(milter_authserv_id="mx.owlery.test", spamd_endpoint=f"unix:{tmp_path}/spamd.sock")
    try:
        out = drive(s, [SpamStage(s, Services(None))])
    finally:
        server.close()
    assert out.action == fx.ACCEPT
    assert server.bodies == [RECEIVED + CLEAN]


def test_spamd_client_sends_prefix_without_joining_it_to_the_message(tmp_path):
    """The Content-length counts both; the message object itself is never copied into a joined buffer."""
    server = RecordingSpamd(str(tmp_path / "spamd.sock"))
    client = SpamdClient(f"unix:{tmp_path}/spamd.sock", timeout=5, max_size=1_000_000)
    message = CLEAN + b"y" * 600_000               # over one send slice
    try:
        result = client.scan(message, prefix=RECEIVED)
    finally:
        server.close()
    assert result is not None and result.score == 1.0
    assert server.bodies == [RECEIVED + message]


def test_spamd_max_size_counts_the_prefix():
    client = SpamdClient("unix:/nonexistent/spamd.sock", max_size=len(CLEAN) + 10)
    assert client.scan(CLEAN, prefix=RECEIVED) is None      # over: not sent, no connection tried


# --- the quarantined copy ------------------------------------------------------------------

class SpamdSays:
    def __init__(self, score):
        self.score, self.prefixes = score, []

    def scan(self, data, prefix=b""):
        from milters.clients.spamd import RuleHit, SpamResult
        self.prefixes.append(prefix)
        return SpamResult(self.score, 5.0, self.score >= 5, (RuleHit("GTUBE", self.score),))


@pytest.fixture
def qsettings(tmp_path):
    return Settings().replace(quarantine_directory=str(tmp_path / "q"), quarantine_host_name="mx1",
                              milter_authserv_id="mx.owlery.test", spam_quarantine_level=10.0)


def _stored(settings):
    store = DirectoryStore(settings.quarantine_directory)
    [rec] = store.list(ListFilter(), NOW + 1)
    return rec, store.message(rec.mail_id)


def _fields(raw):
    head = raw.split(b"\r\n\r\n", 1)[0]
    return [line.split(b":", 1)[0].decode() for line in head.split(b"\r\n") if line and line[:1] not in b" \t"]


def test_quarantined_copy_keeps_received_auth_results_and_spam_headers(qsettings):
    spamd = SpamdSays(1000.0)
    out = drive(qsettings, [AuthResults(qsettings, Services(None)), SpamStage(qsettings, Services(None), client=spamd)])
    assert out.action == fx.DISCARD
    assert spamd.prefixes == [RECEIVED]
    rec, raw = _stored(qsettings)
    assert raw.startswith(RECEIVED)
    names = _fields(raw)
    assert names[:6] == ["Received", "X-Spam-Flag", "X-Spam-Level", "X-Spam-Score", "X-Spam-Status",
                         "Authentication-Results"]
    assert b"\r\nAuthentication-Results: mx.owlery.test;" in raw
    assert b"\r\nX-Spam-Status: Yes, score=1000 required=5 tests=[GTUBE=1000" in raw
    assert b"X-Spam-Flag: YES\r\n" in raw and b"X-Spam-Flag: NO" not in raw    # the sender's is gone
    assert raw.endswith(b"\r\n\r\nHi Bob\r\n") and rec.size == len(raw)
    released = released_copy(raw, "X-Quarantine-Released", rec.mail_id, "postmaster", "mx1", NOW)
    assert _fields(released)[:3] == ["X-Quarantine-Released", "Received", "X-Spam-Flag"]


def test_copy_kept_for_some_recipients_carries_their_spam_headers(qsettings):
    """Recipients over their own level: the copy kept for them is tagged; the delivered one too."""
    class Levels:
        def spam_levels(self, rcpt):
            from owlery.directory import SpamLevels
            return SpamLevels(quarantine=3.0) if rcpt == "strict@example.test" else None

    s = qsettings.replace(spam_directory_levels=True)
    stage = SpamStage(s, Services(None), client=SpamdSays(6.0), directory=Levels())
    stage._own_directory = False
    out = drive(s, [stage], rcpts=("strict@example.test", "bob@example.test"))
    assert out.action == fx.ACCEPT
    assert [e.address for e in out.effects if isinstance(e, fx.DelRcpt)] == ["strict@example.test"]
    rec, raw = _stored(s)
    assert [r.address for r in rec.recipients] == ["strict@example.test"]
    assert raw.startswith(b"Received: from mail.sender.test (mail.sender.test [192.0.2.7])\r\n")
    assert b"\r\nX-Spam-Status: Yes, score=6 " in raw and b"\r\nX-Spam-Flag: YES\r\n" in raw


@pytest.mark.parametrize(("effects", "expected"), [
    ([fx.AddHeader("A", "1"), fx.AddHeader("B", "2")], ["B", "A", "X", "Y", "X"]),
    ([fx.AddHeader("Z", "9", None)], ["X", "Y", "X", "Z"]),
    ([fx.ChangeHeader("x", 2, None), fx.AddHeader("X", "new")], ["X", "X", "Y"]),
    ([fx.ChangeHeader("X", 1, "changed")], ["X", "Y", "X"]),
    ([fx.ChangeHeader("X", 5, None)], ["X", "Y", "X"]),               # no such field: nothing
], ids=["top-in-reverse", "append", "delete-then-add", "change", "missing"])
def test_header_edits_apply_like_the_adapter(effects, expected):
    fields = [("X", b" 1"), ("Y", b" 2"), ("X", b" 3")]
    got = edited_header_block(fields, effects)
    assert [n for n, _ in got] == expected
    if any(isinstance(e, fx.ChangeHeader) and e.value == "changed" for e in effects):
        assert got[0] == ("X", b" changed")


def test_received_is_not_part_of_as_bytes():
    """DKIM and ARC read as_bytes(): they must see the message as received, without our line."""
    seen = []

    class Peek:
        name = "peek"

        def check(self, message, report):
            seen.append((message.received, message.as_bytes()))

    drive(Settings().replace(milter_authserv_id="mx.owlery.test"), [Peek()])
    assert seen == [(RECEIVED, CLEAN)]
