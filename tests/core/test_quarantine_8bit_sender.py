"""Quarantined mail whose envelope holds octets that are not UTF-8 (owlery/quarantine/base.py to_column).

Postfix passes an 8-bit local part (MAIL FROM:<j\\xe9r\\xf4me@...>) through the milter, which
gets it as surrogateescape text. A put of such a record used to raise (SQLite and PostgreSQL
text refuse lone surrogates), so the milter tempfailed that sender's mail for ever. Now both
stores (directory+SQLite, and PostgreSQL from the harness) keep every text field exactly; the
CLI, the web pages and the notices show the odd octets escaped (\\xe9), and a release hands
Postfix the sender's original octets (SMTP and sendmail).
"""

from __future__ import annotations

import email
import email.policy
import random
import sqlite3
import stat
import threading

import pytest

from owlery.quarantine import ListFilter, QuarantineRecord, new_id
from owlery.quarantine.base import COLUMN_MARK, NOTICE_ADMIN, NOTICE_RECIPIENT, AuditEntry, from_column, to_column
from tests.harness.threaded_server import ThreadedServer
from tests.milters.test_quarantine_cli import MSG as CLI_MSG
from tests.milters.test_quarantine_cli import env  # noqa: F401
from tests.milters.test_quarantine_store import MSG, NOW, make_record, store  # noqa: F401

SENDER_OCTETS = b"j\xe9r\xf4me\x85@sender.test"          # Latin-1, and a C1 control (NEL) on a terminal
SENDER = SENDER_OCTETS.decode("utf-8", "surrogateescape")
RCPT_OCTETS = b"R\xfcdi@Example.test"
RCPT = RCPT_OCTETS.decode("utf-8", "surrogateescape")


def eight_bit_record(**kw) -> QuarantineRecord:
    values = dict(sender=SENDER, rcpts=("a@example.test", RCPT),
                  client_name="mx.s\udce9nder.test", helo="h\udcc3\udc28lo", queue_id="4F3A\udcff",
                  detail="score 12.5 \udcfe", subject="Caf\udce9", header_from="Src <" + SENDER + ">",
                  message_id="<1\udcff@sender.test>", symbols=(("SPAMD", 12.0, "BAYES \udcff"),))
    values.update(kw)
    return make_record(**values)


# -- the stores ------------------------------------------------------------------------------

def test_put_keeps_8bit_envelope_and_fields_exactly(store):  # noqa: F811
    rec = eight_bit_record()
    store.put(rec, MSG)
    got = store.get(rec.mail_id)
    assert got == rec
    assert got.sender.encode("utf-8", "surrogateescape") == SENDER_OCTETS
    assert [r.address.encode("utf-8", "surrogateescape") for r in got.recipients] == [b"a@example.test", RCPT_OCTETS]
    assert store.message(rec.mail_id) == MSG


def test_filters_releases_and_notices_find_8bit_addresses(store):  # noqa: F811
    rec = eight_bit_record()
    plain = make_record()
    store.put(rec, MSG)
    store.put(plain, MSG)
    ids = lambda **kw: [r.mail_id for r in store.list(ListFilter(**kw), NOW)]  # noqa: E731
    assert ids(recipient=RCPT.upper()) == [rec.mail_id]
    assert ids(sender=SENDER) == [rec.mail_id]
    assert ids(sender="src@sender.test") == [plain.mail_id]
    pairs = {(r.mail_id, a) for r, a in store.unnotified(NOTICE_RECIPIENT, NOW - 10)}
    assert (rec.mail_id, RCPT) in pairs and (rec.mail_id, "a@example.test") in pairs
    assert store.claim_notices(NOTICE_RECIPIENT, [(rec.mail_id, RCPT)], NOW) == [(rec.mail_id, RCPT)]
    assert store.claim_notices(NOTICE_RECIPIENT, [(rec.mail_id, RCPT.lower())], NOW) == []
    assert store.last_notice(NOTICE_RECIPIENT, RCPT) == NOW
    assert (rec.mail_id, RCPT) not in {(r.mail_id, a) for r, a in store.unnotified(NOTICE_RECIPIENT, NOW - 10)}
    store.unclaim_notices(NOTICE_RECIPIENT, [(rec.mail_id, RCPT)])
    assert store.last_notice(NOTICE_RECIPIENT, RCPT) is None
    assert [r.mail_id for r, _ in store.unnotified(NOTICE_ADMIN, NOW - 10)].count(rec.mail_id) == 1
    other = "x\udce9@else.test"
    got = store.mark_released(rec.mail_id, [RCPT.upper(), other], "by \udcff", NOW)
    assert got.pending() == ("a@example.test",)
    assert got.recipient(RCPT).changed_by == "by \udcff" and got.recipient(other).original is False
    assert got.recipient(other).address == other


def test_audit_keeps_8bit_text(store):  # noqa: F811
    entry = AuditEntry(NOW, "root", "delete", new_id(), f"reason=spam from=<{SENDER}>", "mx1")
    store.add_audit(entry)
    assert store.audit_log() == [entry]
    assert store.audit_log(mail_id=entry.mail_id) == [entry]


@pytest.mark.parametrize("text", ["", "plain@example.test", "back\\slash \\u0041", COLUMN_MARK,
                                  COLUMN_MARK + "starts with the mark \\udce9", "nul\x00inside", "\ud800\udfff",
                                  "caf\u00e9 \U0001f600 \ufeff"])
def test_awkward_text_round_trips(store, text):  # noqa: F811
    rec = make_record(sender=text, rcpts=(text or "x", "b@example.test"), subject=text, detail=text)
    store.put(rec, MSG)
    assert store.get(rec.mail_id) == rec


def test_plain_text_is_stored_as_it_was(tmp_path):
    """Rows without odd octets look as before (older Owlery reads them, and rows it wrote read
    the same), and a legacy value that starts with the mark but is no escape comes back as is."""
    from owlery.quarantine.directory import DirectoryStore
    s = DirectoryStore(str(tmp_path / "q"), timeout=5)
    plain, odd = make_record(), eight_bit_record()
    s.put(plain, MSG)
    s.put(odd, MSG)
    db = sqlite3.connect(tmp_path / "q" / "index.sqlite3")
    rows = dict(db.execute("SELECT mail_id, sender FROM messages"))
    assert rows[plain.mail_id] == "src@sender.test"
    assert rows[odd.mail_id] == COLUMN_MARK + SENDER.replace("\udce9", "\\udce9").replace("\udcf4", "\\udcf4") \
        .replace("\udc85", "\\udc85")
    legacy = COLUMN_MARK + "not \\q an escape"
    db.execute("UPDATE messages SET sender = ? WHERE mail_id = ?", (legacy, plain.mail_id))
    db.commit()
    db.close()
    assert s.get(plain.mail_id).sender == legacy


def test_to_column_is_a_reversible_storable_encoding():
    rng = random.Random(1)
    alphabet = ["a", "Z", "@", "\\", "u", "0", "d", "c", "\x00", "\udc80", "\udcff", "\ud800", COLUMN_MARK, "\u00e9",
                "\U0001f600"]
    for _ in range(3000):
        text = "".join(rng.choices(alphabet, k=rng.randrange(0, 12)))
        stored = to_column(text)
        assert from_column(stored) == text, repr(text)
        stored.encode("utf-8")                                  # strict: what SQLite and PostgreSQL take
        assert "\x00" not in stored
        if not any(c in text for c in ("\x00", "\udc80", "\udcff", "\ud800")) and not text.startswith(COLUMN_MARK):
            assert stored == text
        assert to_column(text.lower()) == to_column(text).lower() or not text.isascii()


# -- what people see ---------------------------------------------------------------------------

def _no_raw(text: str) -> None:
    assert not any(0xD800 <= ord(c) <= 0xDFFF or ord(c) < 0x20 and c not in "\n\t" or 0x7F <= ord(c) <= 0x9F
                   for c in text), ascii(text)


def test_cli_list_and_show_escape_the_octets(env, capsys):  # noqa: F811
    rec = eight_bit_record(rcpts=(RCPT,))
    env.store.put(rec, CLI_MSG)
    assert env("quarantine", "list") == 0
    out = capsys.readouterr().out
    _no_raw(out)
    assert "<j\\xe9r\\xf4me\\x85@sender.test>" in out and "R\\xfcdi@Example.test" in out
    assert env("quarantine", "list", "--sender", SENDER) == 0
    assert rec.mail_id in capsys.readouterr().out
    assert env("quarantine", "show", rec.mail_id) == 0
    out = capsys.readouterr().out
    _no_raw(out)
    assert "Sender: <j\\xe9r\\xf4me\\x85@sender.test>" in out and "Recipient: <R\\xfcdi@Example.test>" in out
    assert "mx.s\\xe9nder.test" in out


def test_web_pages_escape_the_octets(tmp_path):
    from tests.web.helpers import World
    world = World(tmp_path)
    rec = world.put(eight_bit_record(rcpts=("alice@example.test",), header_from=""), CLI_MSG)
    c = world.client()
    c.login("admin@example.test")
    for path in ("/list", f"/m/{rec.mail_id}"):
        resp = c.get(path)
        assert resp.status == 200, (path, resp.status)
        page = resp.body.decode("utf-8")                         # strict: a well-formed page
        _no_raw(page.replace("\n", " ").replace("\r", " ").replace("\t", " "))
        assert "j\\xe9r\\xf4me\\x85@sender.test" in page, path
    c.post("/action", action="release", id=rec.mail_id)
    assert world.postfix.sent[-1][0].encode("utf-8", "surrogateescape") == SENDER_OCTETS


def test_notices_escape_the_octets():
    from owlery.quarantine.digest import build_admin_notice, build_digest
    from owlery.quarantine.notify import _item
    rec = eight_bit_record(header_from="")
    for data in (build_admin_notice("admin@example.test", _item(rec, key=None, base_url=None, recipient=None,
                                                                  expires=0),
                                    from_addr="quarantine@example.test", now=NOW, domain="example.test", host="mx1"),
                 build_digest("a@example.test", [_item(rec, key=b"k" * 32, base_url="https://q.example.test",
                                                         recipient="a@example.test", expires=int(NOW) + 3600)],
                              from_addr="quarantine@example.test", now=NOW, domain="example.test")):
        msg = email.message_from_bytes(data, policy=email.policy.default)
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                text = part.get_content()
                _no_raw(text.replace("\n", " ").replace("\r", " "))
                assert "j\\xe9r\\xf4me\\x85@sender.test" in text


# -- release: the sender's octets, exactly ----------------------------------------------------

class SmtpSink(ThreadedServer):
    """Takes one message; keeps the raw MAIL and RCPT command lines."""

    def __init__(self):
        self.commands: list[bytes] = []
        self.done = threading.Event()
        super().__init__()

    def serve_connection(self, conn):
        with conn, conn.makefile("rwb") as f:
            f.write(b"220 sink ESMTP\r\n")
            f.flush()
            in_data = False
            for line in f:
                if in_data:
                    if line == b".\r\n":
                        in_data = False
                        f.write(b"250 2.0.0 queued\r\n")
                        self.done.set()
                    f.flush()
                    continue
                verb = line[:4].upper()
                self.commands.append(verb + line[4:].rstrip(b"\r\n"))      # (smtplib sends "mail FROM:")
                if verb == b"EHLO":
                    f.write(b"250-sink\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    in_data = True
                    f.write(b"354 go on\r\n")
                elif verb == b"QUIT":
                    f.write(b"221 bye\r\n")
                    f.flush()
                    return
                else:
                    f.write(b"250 2.0.0 ok\r\n")
                f.flush()


def test_cli_release_over_smtp_sends_the_original_octets(env, capsys):  # noqa: F811
    sink = SmtpSink()
    try:
        env.write(quarantine_release_smtp_endpoint=sink.endpoint, quarantine_release_smtp_timeout="10s")
        rec = eight_bit_record(rcpts=(RCPT,))
        env.store.put(rec, CLI_MSG)
        assert env("quarantine", "release", rec.mail_id) == 0, capsys.readouterr()
        assert sink.done.wait(10)
        assert b"MAIL FROM:<" + SENDER_OCTETS + b">" in sink.commands, sink.commands
        assert b"RCPT TO:<" + RCPT_OCTETS + b">" in sink.commands, sink.commands
        out = capsys.readouterr().out
        _no_raw(out)
        assert env.store.get(rec.mail_id).pending() == ()
        audit = env.audit.read_text(encoding="utf-8")         # the audit line names it, safely
        _no_raw(audit.rstrip("\n"))
        assert f"quarantine_id={rec.mail_id}" in audit and "from=<j" in audit
    finally:
        sink.sock.close()


def test_cli_release_through_sendmail_passes_the_original_octets(env, capsys, tmp_path):  # noqa: F811
    argv_file = tmp_path / "argv"
    script = tmp_path / "sendmail"
    script.write_text(f"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > {argv_file}\ncat > /dev/null\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env.write(quarantine_release_method="sendmail", quarantine_release_sendmail_path=str(script))
    rec = eight_bit_record(rcpts=(RCPT,))
    env.store.put(rec, CLI_MSG)
    assert env("quarantine", "release", rec.mail_id) == 0, capsys.readouterr()
    argv = argv_file.read_bytes().split(b"\n")
    assert argv[argv.index(b"-f") + 1] == SENDER_OCTETS
    assert argv[argv.index(b"--") + 1] == RCPT_OCTETS
