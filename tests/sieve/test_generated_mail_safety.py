"""Mail the engine generates (vacation replies, mailto notifications, reject notices) cannot
be steered by the message it answers: header values are decoded, cleaned of control
characters and re-encoded; script addresses are re-checked at run time; a reply's
In-Reply-To/References carry only well-formed message ids; mailto recipients are capped
per action and per run. The last tests go through the delivery executor and look at the
bytes the MTA would receive."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.header
import email.policy
import email.utils
import logging
import re

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from owlery.settings import Settings, parse_text
from owlery.state.memory_store import MemoryStore
from sieve.api import (Envelope, MemoryHost, Notify, Reject, SieveCompileError, Vacation, compile_script,
                       run)
from sieve.delivery import submission
from sieve.delivery import vacation as delivery_vacation
from sieve.delivery.executor import DeliveryExecutor
from sieve.delivery.users import MailUser

NOW = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
ENV = Envelope("mallory@remote.test", "alice@example.org", None)

INJECTED = "hi\r\nBcc: victim@x\r\n\r\nbody"
SUBJECTS = {
    "q-encoded": b"=?utf-8?q?hi=0D=0ABcc:_victim@x=0D=0A=0D=0Abody?=",
    "b-encoded": b"=?utf-8?b?" + base64.b64encode(INJECTED.encode()) + b"?=",
    "q-folded": b"=?utf-8?q?hi=0D=0ABcc:_victim@x?=\r\n =?UTF-8?Q?=0D=0A=0D=0Abody?=",
    "raw-bare-cr": b"hi\rBcc: victim@x\r\rbody",
    "raw-8bit-utf8": b"h\xc3\xa9\rBcc: victim@x\r\rbody",
    "raw-8bit-latin1": b"caf\xe9\rBcc: victim@x",
    "latin1-encoded": b"=?iso-8859-1?q?caf=E9=0ABcc:_victim@x?=",
}
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def message(subject: bytes = b"Hello", extra: bytes = b"") -> bytes:
    return (b"From: Mallory <mallory@remote.test>\r\nTo: alice@example.org\r\n"
            b"Subject: " + subject + b"\r\nMessage-ID: <m1@remote.test>\r\n" + extra + b"\r\nHello Alice\r\n")


def go(src: str, msg: bytes, *, env: Envelope = ENV, settings: Settings | None = None):
    return run(compile_script(src), msg, env, host=MemoryHost(), settings=settings, now=NOW)


def only(result, kind):
    found = [a for a in result.actions if isinstance(a, kind)]
    assert result.ok, result.errors
    assert len(found) == 1, result.actions
    return found[0]


def check_wire(raw: bytes) -> email.message.EmailMessage:
    """The header block is well-formed RFC 5322 (CRLF lines, no stray CR/LF or control
    bytes, every line a field or a continuation, short lines); returns the parsed message."""
    head, sep, _ = raw.partition(b"\r\n\r\n")
    assert sep, raw
    for line in head.split(b"\r\n"):
        assert b"\r" not in line and b"\n" not in line, line
        assert not any(b < 32 and b != 9 or b == 127 for b in line), line
        assert line[:1] in (b" ", b"\t") or re.match(rb"[!-9;-~]+:", line), line
        assert len(line) <= 998, line
    return email.message_from_bytes(raw, policy=email.policy.default)


def assert_no_injection(raw: bytes, body: bytes) -> email.message.EmailMessage:
    parsed = check_wire(raw)
    names = [k.lower() for k in parsed.keys()]
    assert "bcc" not in names, raw
    assert len([n for n in names if n == "subject"]) == 1, raw
    assert raw.partition(b"\r\n\r\n")[2].rstrip(b"\r\n") == body, raw
    subject = str(parsed["subject"])
    assert not CONTROL.search(subject), subject
    return parsed


# --- vacation --------------------------------------------------------------------

@pytest.mark.parametrize("subject", list(SUBJECTS.values()), ids=list(SUBJECTS))
def test_vacation_reply_to_injected_subject_has_our_headers_and_body(subject):
    r = go('require "vacation"; vacation "I am away";', message(subject))
    v = only(r, Vacation)
    parsed = assert_no_injection(v.reply, b"I am away")
    decoded = str(parsed["subject"])
    # the text is kept, as text: the run of CR/LF became one space
    assert decoded.startswith("Auto: ") and "Bcc: victim@x" in decoded
    assert "  " not in decoded
    assert not CONTROL.search(v.subject)


def test_vacation_subject_collapses_control_runs_to_one_space():
    r = go('require "vacation"; vacation "I am away";', message(SUBJECTS["q-encoded"]))
    parsed = assert_no_injection(only(r, Vacation).reply, b"I am away")
    assert str(parsed["subject"]) == "Auto: hi Bcc: victim@x body"


def test_vacation_variable_built_subject_is_cleaned():
    src = ('require ["vacation", "variables"];\n'
           'if header :matches "subject" "*" { set "s" "${1}"; }\n'
           'vacation :subject "Re: ${s}" "I am away";')
    v = only(go(src, message(SUBJECTS["q-encoded"])), Vacation)
    parsed = assert_no_injection(v.reply, b"I am away")
    assert str(parsed["subject"]) == "Re: hi Bcc: victim@x body"


@pytest.mark.parametrize("subject", ["Отпуск " * 30, "Away " * 40, "x" * 200])
def test_vacation_long_subject_is_encoded_and_folded(subject):
    v = only(go('require "vacation"; vacation :subject "' + subject + '" "away";', message()), Vacation)
    parsed = check_wire(v.reply)
    head = v.reply.partition(b"\r\n\r\n")[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n")), head
    assert head.isascii()
    assert str(parsed["subject"]) == subject.strip()


def test_vacation_subject_from_a_huge_original_is_cut():
    v = only(go('require "vacation"; vacation "away";', message(b"spam " * 5000)), Vacation)
    parsed = check_wire(v.reply)
    subject = str(parsed["subject"])
    assert len(subject) == 256 and subject.startswith("Auto: spam spam") and subject.endswith("\u2026")


@pytest.mark.parametrize("header", [
    b"X-From: =?utf-8?q?alice@example.org=0D=0ABcc:_victim@x?=",
    b"X-From: alice@example.org, bob@example.org",
    b"X-From: not an address",
])
def test_vacation_from_built_at_run_time_must_be_one_clean_address(header):
    src = ('require ["vacation", "variables"];\n'
           'if header :matches "x-from" "*" { set "f" "${1}"; }\n'
           'vacation :from "${f}" "I am away";')
    r = go(src, message(extra=header + b"\r\n"))
    assert r.status == "error" and "from" in r.errors[0]
    assert not [a for a in r.actions if isinstance(a, Vacation)]


def test_vacation_from_with_encoded_display_name_is_reencoded():
    src = 'require "vacation"; vacation :from "=?utf-8?q?G=C3=BCnther=0D=0A=0D=0ABcc?= <alice@example.org>" "x";'
    v = only(go(src, message()), Vacation)
    parsed = check_wire(v.reply)
    assert parsed["from"].addresses[0].addr_spec == "alice@example.org"
    assert parsed["from"].addresses[0].display_name == "Günther Bcc"
    assert v.reply.partition(b"\r\n\r\n")[0].isascii()


def test_vacation_addresses_from_variables_are_checked():
    # an :addresses item that is two addresses (or garbage) names none of the user's
    # addresses: the message is not to the user, no reply
    src = ('require ["vacation", "variables"];\n'
           'set "a" "carol@example.org, dave@example.org";\n'
           'vacation :addresses ["${a}", "x\r\ny"] "I am away";')
    msg = message().replace(b"To: alice@example.org", b"To: carol@example.org")
    r = go(src, msg)
    assert r.ok and not [a for a in r.actions if isinstance(a, Vacation)]


def test_vacation_handle_is_never_written():
    src = ('require ["vacation", "variables"];\n'
           'if header :matches "subject" "*" { set "h" "${1}"; }\n'
           'vacation :subject "Away" :handle "${h}" "I am away";')
    v = only(go(src, message(SUBJECTS["q-encoded"])), Vacation)
    assert_no_injection(v.reply, b"I am away")


@pytest.mark.parametrize("extra, in_reply_to", [
    (b"", "<m1@remote.test>"),
    (b"References: <r1@remote.test>\rBcc: victim@x\r\n", "<m1@remote.test>"),
    (b"References: <r1@remote.test>\r\n\tjunk <r2 x@remote.test> <r3@remote.test>\r\n", "<m1@remote.test>"),
])
def test_vacation_in_reply_to_and_references_are_well_formed(extra, in_reply_to):
    v = only(go('require "vacation"; vacation "away";', message(extra=extra)), Vacation)
    parsed = assert_no_injection(v.reply, b"away")
    assert str(parsed["in-reply-to"]) == in_reply_to
    refs = str(parsed["references"]).split()
    assert refs[-1] == in_reply_to
    assert all(re.fullmatch(r"<[!-;=?-~]+@[!-;=?-~]+>", x) for x in refs), refs
    if b"r3@" in extra:
        assert refs == ["<r1@remote.test>", "<r3@remote.test>", "<m1@remote.test>"]


@pytest.mark.parametrize("msgid", [
    b"<m1@remote.test>\rBcc: victim@x",
    b"<a b@remote.test>",
    b"<m1@remote.test>\r\n Bcc: victim@x",
    b"m1 at remote",
    b"<" + b"x" * 2000 + b"@remote.test>",
])
def test_vacation_broken_message_id_does_not_break_the_reply(msgid):
    msg = message().replace(b"Message-ID: <m1@remote.test>", b"Message-ID: " + msgid)
    v = only(go('require "vacation"; vacation "away";', msg), Vacation)
    parsed = assert_no_injection(v.reply, b"away")
    irt = parsed["in-reply-to"]
    assert irt is None or str(irt) == "<m1@remote.test>"


@pytest.mark.parametrize("sender", ['"a\\\rb"@remote.test', "a@[1.2.3.4\r\nBcc: x]"])
def test_vacation_to_a_sender_that_cannot_be_written_is_skipped(sender, caplog):
    env = Envelope(sender, "alice@example.org", None)
    with caplog.at_level(logging.INFO):
        r = go('require "vacation"; vacation "away";', message(), env=env)
    assert r.ok and not [a for a in r.actions if isinstance(a, Vacation)]
    assert any("vacation" in rec.getMessage() and "skipped" in rec.getMessage() for rec in caplog.records)


def test_vacation_mime_reason_keeps_only_mime_headers():
    src = ('require ["vacation", "variables"];\n'
           'if header :matches "subject" "*" { set "s" "${1}"; }\n'
           'vacation :mime "Content-Type: text/plain; charset=utf-8\r\nBcc: victim@x\r\n'
           'X-Note: ${s}\r\n\r\nI am away";')
    v = only(go(src, message(SUBJECTS["q-encoded"])), Vacation)
    parsed = check_wire(v.reply)
    assert "bcc" not in [k.lower() for k in parsed.keys()]
    assert "x-note" not in [k.lower() for k in parsed.keys()]
    assert parsed.get_content_type() == "text/plain"
    assert v.reply.endswith(b"\r\n\r\nI am away")


# --- reject ----------------------------------------------------------------------

@pytest.mark.parametrize("subject", [SUBJECTS["q-encoded"], SUBJECTS["raw-bare-cr"]], ids=["q", "raw"])
def test_reject_notice_subject_is_cleaned(subject):
    r = go('require "reject"; reject "no thanks";', message(subject))
    [rej] = [a for a in r.actions if isinstance(a, Reject)]
    parsed = check_wire(rej.mdn)
    assert "bcc" not in [k.lower() for k in parsed.keys()]
    assert str(parsed["subject"]).startswith("Rejected: hi Bcc: victim@x")


# --- enotify ---------------------------------------------------------------------

def notify_message(r) -> bytes:
    n = only(r, Notify)
    assert n.message and n.recipients
    return n.message


@pytest.mark.parametrize("subject", list(SUBJECTS.values()), ids=list(SUBJECTS))
def test_notify_default_subject_from_injected_message_is_cleaned(subject):
    raw = notify_message(go('require "enotify"; notify "mailto:bob@example.org";', message(subject)))
    parsed = check_wire(raw)
    assert "bcc" not in [k.lower() for k in parsed.keys()]
    assert not CONTROL.search(str(parsed["subject"]))
    assert "Bcc: victim@x" in str(parsed["subject"])


def test_notify_variable_message_is_cleaned_in_the_subject():
    src = ('require ["enotify", "variables"];\n'
           'if header :matches "subject" "*" { set "s" "${1}"; }\n'
           'notify :message "New: ${s}" "mailto:bob@example.org";')
    raw = notify_message(go(src, message(SUBJECTS["b-encoded"])))
    parsed = check_wire(raw)
    assert "bcc" not in [k.lower() for k in parsed.keys()]
    assert str(parsed["subject"]) == "New: hi Bcc: victim@x body"


@pytest.mark.parametrize("uri", [
    "mailto:bob@example.org?X-Note=a%0D%0ABcc:%20victim@x%0D%0A%0D%0Abody",
    "mailto:bob@example.org?subject=a%0ABcc:%20victim@x",
])
def test_notify_uri_with_a_line_break_in_a_header_is_invalid(uri):
    # RFC 6068 2 / 5: a header value may not hold an encoded CR or LF; sievec refuses the URI
    # (tests/sieve/test_compile_errors_generated.py), and at run time no notification is made
    with pytest.raises(SieveCompileError):
        compile_script(f'require "enotify"; notify "{uri}";')
    src = ('require ["enotify", "variables"];\n'
           f'set "u" "{uri}";\n'
           'notify "${u}";')
    r = go(src, message())
    assert not [a for a in r.actions if isinstance(a, Notify)]


@pytest.mark.parametrize("header", [
    b"X-From: =?utf-8?q?alice@example.org=0D=0ABcc:_victim@x?=",
    b"X-From: alice@example.org, bob@example.org",
])
def test_notify_from_built_at_run_time_must_be_one_clean_address(header):
    src = ('require ["enotify", "variables"];\n'
           'if header :matches "x-from" "*" { set "f" "${1}"; }\n'
           'notify :from "${f}" "mailto:bob@example.org";')
    r = go(src, message(extra=header + b"\r\n"))
    assert r.status == "error" and "from" in r.errors[0]
    assert not [a for a in r.actions if isinstance(a, Notify)]


def test_notify_recipient_with_control_character_is_an_invalid_uri():
    with pytest.raises(SieveCompileError):
        compile_script('require "enotify"; notify "mailto:%22a%5C%0Db%22@example.org";')
    src = ('require ["enotify", "variables"];\n'
           'set "u" "mailto:%22a%5C%0Db%22@example.org";\n'
           'notify "${u}";')
    r = go(src, message())
    assert r.status == "error" and not [a for a in r.actions if isinstance(a, Notify)]


def _uri(n: int, start: int = 0) -> str:
    return "mailto:" + "%2C".join(f"u{i}@example.org" for i in range(start, start + n))


def test_notify_recipients_capped_per_action(caplog):
    with caplog.at_level(logging.INFO):
        r = go(f'require "enotify"; notify "{_uri(12)}";', message())
    n = only(r, Notify)
    assert list(n.recipients) == [f"u{i}@example.org" for i in range(8)]
    parsed = check_wire(n.message)
    assert [a.addr_spec for a in parsed["to"].addresses] == list(n.recipients)
    assert any("dropped" in rec.getMessage() and "4" in rec.getMessage() for rec in caplog.records)


def test_notify_recipients_cap_counts_cc_and_bcc_names_no_one():
    r = go('require "enotify"; notify "mailto:a@example.org?cc=b@example.org,c@example.org&bcc=d@example.org";',
           message(), settings=Settings({"sieve_notify_mailto_max_recipients": 2}))
    n = only(r, Notify)
    assert list(n.recipients) == ["a@example.org", "b@example.org"]     # bcc: RFC 5436 2.7, as Pigeonhole
    parsed = check_wire(n.message)
    assert [a.addr_spec for a in parsed["cc"].addresses] == ["b@example.org"]


def test_notify_recipients_capped_per_run(caplog):
    settings = Settings({"sieve_notify_mailto_max_run_recipients": 10})
    src = (f'require "enotify"; notify "{_uri(8)}"; notify "{_uri(8, 8)}"; '
           f'notify "{_uri(3, 16)}";')
    with caplog.at_level(logging.INFO):
        r = go(src, message(), settings=settings)
    assert r.ok
    sent = [list(a.recipients) for a in r.actions if isinstance(a, Notify)]
    assert sent == [[f"u{i}@example.org" for i in range(8)], ["u8@example.org", "u9@example.org"]]
    assert sum("dropped" in rec.getMessage() for rec in caplog.records) == 2


def test_notify_cap_settings_are_declared():
    s = parse_text("sieve_notify_mailto_max_recipients = 3\nsieve_notify_mailto_max_run_recipients = 5\n")
    assert (s.sieve_notify_mailto_max_recipients, s.sieve_notify_mailto_max_run_recipients) == (3, 5)
    d = Settings()
    assert (d.sieve_notify_mailto_max_recipients, d.sieve_notify_mailto_max_run_recipients) == (8, 32)


# --- through the delivery: the bytes the MTA receives ------------------------------

class FakeSubmitter:
    def __init__(self):
        self.sent: list[tuple[str, list[str], bytes]] = []

    def send(self, env_from, rcpts, message):
        self.sent.append((env_from, list(rcpts), message))


@pytest.mark.parametrize("subject", [SUBJECTS["q-encoded"], SUBJECTS["b-encoded"], SUBJECTS["raw-bare-cr"]],
                         ids=["q", "b", "raw"])
def test_delivered_vacation_reply_has_no_injected_headers(tmp_path, subject):
    script = tmp_path / "user.sieve"
    script.write_text('require ["vacation", "enotify"]; vacation "I am away"; notify "mailto:bob@example.org";')
    sub = FakeSubmitter()
    ex = DeliveryExecutor(parse_text(""), submitter=sub, state=MemoryStore(), program="test")
    user = MailUser("alice@example.org", str(tmp_path / "Maildir"), str(script))
    outcome = ex.deliver(message(subject).replace(b"\r\n", b"\n"), "mallory@remote.test", "alice@example.org", user)
    assert outcome.ok
    by_rcpt = {tuple(rcpts): msg for _, rcpts, msg in sub.sent}
    assert set(by_rcpt) == {("mallory@remote.test",), ("bob@example.org",)}
    assert_no_injection(by_rcpt[("mallory@remote.test",)], b"I am away")
    parsed = check_wire(by_rcpt[("bob@example.org",)])
    assert "bcc" not in [k.lower() for k in parsed.keys()]


@pytest.mark.parametrize("sender", ["mallory@remote.test\r\nRCPT TO:<victim@x>", "a\x00b@remote.test"])
def test_delivery_refuses_to_answer_a_sender_with_control_characters(sender):
    assert delivery_vacation.refusal(message(), sender, "alice@example.org") == "control character in sender address"


@pytest.mark.parametrize("env_from, rcpt", [
    ("alice@example.org", "victim@x\r\nRCPT TO:<other@x>"),
    ("alice@example.org\r\nRSET", "bob@example.org"),
    ("alice@example.org", "bob@example.org\x00"),
])
def test_submission_refuses_envelope_addresses_with_control_characters(monkeypatch, env_from, rcpt):
    import smtplib

    class NoConnection:
        def __init__(self, *a, **kw):
            raise AssertionError("an unsafe envelope must not reach the MTA")
    monkeypatch.setattr(smtplib, "SMTP", NoConnection)
    for submitter in (submission.SMTPSubmitter("127.0.0.1", 25, 5),
                      submission.SendmailSubmitter(["/nonexistent/sendmail"], 5)):
        with pytest.raises(submission.SubmissionError) as e:
            submitter.send(env_from, [rcpt], b"Subject: x\r\n\r\nx\r\n")
        assert e.value.temporary is False


# --- the encoder itself, on any text ---------------------------------------------------

@hsettings(max_examples=400, deadline=None, derandomize=True)
@given(st.text(max_size=300))
def test_any_text_becomes_one_clean_unstructured_field(text):
    from sieve.outgoing import header_text, unstructured
    field = unstructured("Subject", text)
    assert field.isascii()
    parsed = check_wire((field + "\r\n\r\nbody").encode("ascii"))
    assert list(parsed.keys()) == ["Subject"]
    assert str(parsed["subject"]) == header_text(text, decode=False)


@hsettings(max_examples=400, deadline=None, derandomize=True)
@given(st.text(max_size=120))
def test_any_display_name_becomes_one_clean_mailbox(display):
    from sieve.outgoing import address_field, header_text
    field = address_field("From", [(display, "alice@example.org")])
    assert field.isascii()
    parsed = check_wire((field + "\r\n\r\nbody").encode("ascii"))
    assert list(parsed.keys()) == ["From"]
    assert parsed["from"].addresses[0].addr_spec == "alice@example.org"
    # RFC 2047 6.2: white space between adjacent encoded words is not text (Python's
    # address parser keeps it, so the phrase is decoded here with decode_header)
    name, addr = email.utils.parseaddr(field[len("From:"):].replace("\r\n", ""))
    assert addr == "alice@example.org"
    shown = str(email.header.make_header(email.header.decode_header(name)))
    assert " ".join(shown.split()) == " ".join(header_text(display, decode=False).split())
