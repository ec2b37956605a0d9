"""Injection audit (session 14): hostile text through the real code paths that write mail headers,
notices, HTTP answers, socketmap replies and log lines, outside the Sieve engine.

Each test feeds what a sender (or a user of the web UI) controls and checks the output stays
well-formed: no CR, LF or NUL that could start a field or a log line of its own, lines within
RFC 5322's 998 octets (2.1.1), addresses quoted as RFC 5322 3.4.1 asks, one record per log line.
"""

from __future__ import annotations

import email
import email.policy
import io
import logging

import pytest

from milters import effects as fx
from milters.clients.spamd import RuleHit, SpamResult
from milters.session import MilterSession
from milters.stages import Services
from milters.stages.authres import AuthResults
from milters.stages.spam import SpamStage
from milters.stages.spf import SpfStage
from milters.testing import split_message
from owlery.log_stderr import StderrFormatter, StderrHandler
from owlery.quarantine import QuarantineRecord, RecipientState, new_id
from owlery.quarantine.digest import Item, build_digest
from owlery.quarantine.directory import DirectoryStore
from owlery.quarantine.notify import QuarantineNotifier
from owlery.quarantine.preferences import Preferences
from owlery.quarantine.release import released_copy
from owlery.settings import Settings
from socketmap.protocol import encode_reply, temp
from tests.milters.session_driver import NOW, FixedPipeline

MAX_LINE = 998
KEY = b"k" * 32


def field_lines(name: str, value: str) -> list[bytes]:
    """The wire lines of a field the adapter sends (LF folds, as Postfix takes them)."""
    return f"{name}: {value}".encode("utf-8", "surrogateescape").split(b"\n")


def assert_safe_field(name: str, value: str) -> None:
    """One field, however hostile its text: folds only, no controls, every line within 998 octets."""
    lines = field_lines(name, value)
    assert all(len(line) <= MAX_LINE for line in lines), [len(line) for line in lines]
    assert all(line[:1] in (b" ", b"\t") and line.strip() for line in lines[1:]), lines[:3]
    assert not any(c in value for c in "\r\0\x1b\x7f")


def run(settings, stages, raw, *, sender="alice@sender.test"):
    session = MilterSession(settings, FixedPipeline(stages, "tempfail"), now=lambda: NOW)
    session.connect("mx.sender.test", "203.0.113.5", {"j": "mx.owlery.test"})
    session.helo("mx.sender.test", {})
    session.mail_from(f"<{sender}>", (), {})
    session.rcpt("<bob@example.test>", (), {"i": "QID1"})
    session.data({})
    fields, body = split_message(raw)
    for name, value in fields:
        session.header(name, value)
    session.end_of_headers({})
    session.body(body)
    return session.end_of_message({})


class FakeSpamd:
    def __init__(self, score, rules):
        self.score, self.rules = score, rules

    def scan(self, data, prefix=b""):
        return SpamResult(self.score, 5.0, self.score >= 5, tuple(RuleHit(n, s) for n, s in self.rules))


@pytest.fixture
def settings(tmp_path):
    return Settings().replace(quarantine_directory=str(tmp_path / "q"), quarantine_host_name="mx1",
                              milter_authserv_id="mx.owlery.test")


def spam(settings, score=7.5, rules=(("BAYES_99", 7.5),)):
    return SpamStage(settings, Services(resolver=None, now=lambda: NOW), client=FakeSpamd(score, list(rules)))


def changed(outcome, name):
    return [e.value for e in outcome.effects if isinstance(e, fx.ChangeHeader) and e.name == name]


def added(outcome, name):
    return [e.value for e in outcome.effects if isinstance(e, fx.AddHeader) and e.name == name]


# --- milter: Subject tagging -------------------------------------------------------------------

def test_subject_tag_keeps_the_folds_of_a_long_subject(settings):
    s = settings.replace(spam_subject_tag="***Spam*** ")
    words = ["word%03d" % i for i in range(400)]                 # ~3200 characters, folded
    folded = "\r\n ".join(" ".join(words[i:i + 10]) for i in range(0, 400, 10))
    raw = b"From: a@sender.test\r\nSubject: " + folded.encode() + b"\r\n\r\nbody\r\n"
    [value] = changed(run(s, [spam(s)], raw), "Subject")
    assert_safe_field("Subject", value)
    assert " ".join(value.replace("\n", "").split()) == "***Spam*** " + " ".join(words)


def test_subject_tag_with_an_overlong_unfolded_line_is_folded(settings):
    s = settings.replace(spam_subject_tag="[SPAM] ")
    raw = b"From: a@sender.test\r\nSubject: " + b"x" * 3000 + b" " + b"y" * 50 + b"\r\n\r\nbody\r\n"
    [value] = changed(run(s, [spam(s)], raw), "Subject")
    assert_safe_field("Subject", value)


@pytest.mark.parametrize("subject", [b"hi\rX-Evil: 1", b"hi\x00there", b"hi\x1b[31m", b"hi\r\nX-Evil: 1"])
def test_subject_tag_never_sends_a_control_character(settings, subject):
    s = settings.replace(spam_subject_tag="[SPAM] ")
    fields = [("From", b" a@sender.test"), ("Subject", b" " + subject)]
    session = MilterSession(s, FixedPipeline([spam(s)], "tempfail"), now=lambda: NOW)
    session.connect("mx.sender.test", "203.0.113.5", {"j": "mx.owlery.test"})
    session.mail_from("<a@sender.test>", (), {})
    session.rcpt("<bob@example.test>", (), {"i": "Q"})
    session.data({})
    for name, value in fields:
        session.header(name, value)
    session.end_of_headers({})
    session.body(b"body\r\n")
    [value] = changed(session.end_of_message({}), "Subject")
    assert_safe_field("Subject", value)
    assert value.startswith("[SPAM] hi")


# --- milter: X-Spam-Status, X-Owlery-Score, any header a stage adds --------------------------------

def test_x_spam_status_with_many_rules_is_folded(settings):
    rules = [(f"RULE_NUMBER_{i:03d}", 0.1) for i in range(120)]
    out = run(settings, [spam(settings, 12.0, rules)], b"From: a@sender.test\r\nSubject: x\r\n\r\nb\r\n")
    [status] = added(out, "X-Spam-Status")
    assert_safe_field("X-Spam-Status", status)
    assert max(len(line) for line in field_lines("X-Spam-Status", status)) <= 78
    assert all(f"RULE_NUMBER_{i:03d}=0.1" in status for i in range(120))


def test_x_owlery_score_with_many_symbols_is_folded():
    report = fx.StageReport(Settings())
    for i in range(200):
        report.symbol(f"SYMBOL_NUMBER_{i:03d}", 0.01)
    [value] = [e.value for e in report.finish().effects if isinstance(e, fx.AddHeader) and e.name == "X-Owlery-Score"]
    assert_safe_field("X-Owlery-Score", value)
    assert all(f"SYMBOL_NUMBER_{i:03d}=0.01" in value for i in range(200))


@pytest.mark.parametrize("value", [
    "evil\r\nBcc: victim@example.org",
    "evil\nX-Spam-Flag: NO",
    "evil\rX-Spam-Flag: NO",
    "nul\x00byte, esc\x1b, del\x7f",
    "trailing fold\n",
    "blank fold\n \n\tnext",
    "x" * 5000,
    "\u00e9" * 3000,
    ("word " * 1000).strip(),
])
def test_every_header_a_stage_adds_or_changes_is_well_formed(value):
    report = fx.StageReport(Settings())
    report.add_header("X-Virus-Status", value)
    report.append_header("X-Content-Alert", value)
    report.change_header("Subject", 1, value)
    for effect in report.effects:
        assert_safe_field(effect.name, effect.value)


def test_a_byte_that_was_not_utf8_cannot_fail_the_message_at_end_of_message():
    report = fx.StageReport(Settings())
    report.add_header("X-Content-Alert", "file \udcff\udcfe.exe")
    report.effects[0].value.encode("utf-8")          # what libmilter is handed


def test_a_clean_folded_value_is_left_as_it_is():
    report = fx.StageReport(Settings())
    value = "mx.owlery.test;\n\tdkim=pass header.d=example.net;\n\tspf=pass smtp.mailfrom=a@example.net"
    report.add_header("Authentication-Results", value)
    assert report.effects[0].value == value


def test_hold_reason_is_one_bounded_line():
    report = fx.StageReport(Settings())
    report.hold("banned for some recipients (" + ", ".join(["a\nb@example.org"] * 500) + ")")
    [hold] = report.effects
    assert hold.reason.isprintable() and len(hold.reason) <= 300


# --- milter: Authentication-Results ---------------------------------------------------------------

@pytest.mark.parametrize("sender", ["x" * 2000, "\"" * 700, "a\\" * 700])
def test_authentication_results_with_an_overlong_mail_from_stays_within_998(settings, sender):
    s = settings.replace(milter_spf_source="header")
    out = run(s, [SpfStage(s, Services(resolver=None)), AuthResults(s, Services(resolver=None))],
              b"From: a@sender.test\r\nSubject: x\r\n\r\nb\r\n", sender=sender)
    [value] = added(out, "Authentication-Results")
    assert_safe_field("Authentication-Results", value)
    assert "spf=none" in value


# --- quarantine notices --------------------------------------------------------------------------

def _item(**kw):
    values = dict(mail_id="abcdefghijkmnpq", created=NOW, sender="src@sender.test", header_from="Src <src@sender.test>",
                  subject="Hello", reason="spam", detail="score 12.5", score=12.5)
    values.update(kw)
    return Item(**values)


@pytest.mark.parametrize("to, username", [
    ("a,b@example.org", "a,b"),                     # unquoted on the envelope: one address, quoted
    ("john doe@example.org", "john doe"),
    ('"john doe"@example.org', "john doe"),
    ('"a\\"b"@example.org', 'a"b'),
])
def test_digest_to_field_names_exactly_the_recipient(to, username):
    data = build_digest(to, [_item()], from_addr="postmaster@example.org", now=NOW, domain="example.org")
    msg = email.message_from_bytes(data, policy=email.policy.default)
    [address] = msg["To"].addresses
    assert (address.username, address.domain) == (username, "example.org")
    assert not msg["To"].defects


def test_digest_to_an_overlong_recipient_keeps_every_line_within_998():
    to = "user+" + "t" * 1100 + "@example.org"
    data = build_digest(to, [_item()], from_addr="postmaster@example.org", now=NOW, domain="example.org")
    assert all(len(line) <= MAX_LINE for line in data.split(b"\r\n"))
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["To"] is not None and not msg["To"].defects


def _record(rcpt):
    return QuarantineRecord(mail_id=new_id(), secret_id=new_id(), created=NOW - 600, reason="spam",
                            detail="score 12.5", sender="src@sender.test", recipients=(RecipientState(rcpt),),
                            size=10, subject="Hello", header_from="Src <src@sender.test>", score=12.5,
                            client_addr="192.0.2.7", client_name="mx.sender.test")


def test_a_recipient_no_token_can_name_does_not_stop_the_notify_run(tmp_path):
    store = DirectoryStore(str(tmp_path / "q"))
    long_rcpt = "alice+" + "t" * 1100 + "@example.org"       # a sender picks the +tag
    for rcpt in (long_rcpt, "bob@example.org"):
        store.put(_record(rcpt), b"Subject: x\r\n\r\nx\r\n")
    sent = []
    s = Settings().replace(quarantine_web_url="https://q.example.org/quarantine")
    notifier = QuarantineNotifier(s, store, lambda sender, rcpts, data: sent.append((rcpts, data)),
                                  prefs=Preferences(s), key=KEY, host="mx1", log=lambda *a, **k: None)
    out = notifier.run(NOW)
    assert sorted(a for _, a, _ in out.sent) == sorted([long_rcpt, "bob@example.org"])
    for _rcpts, data in sent:
        assert all(len(line) <= MAX_LINE for line in data.split(b"\r\n"))
    [(_, bob)] = [(r, d) for r, d in sent if r == ["bob@example.org"]]
    assert b"https://q.example.org/quarantine/r/" in bob


def test_release_header_stays_one_line_within_998():
    data = released_copy(b"Subject: x\r\n\r\nx\r\n", "X-Quarantine-Released", "abcdefghijkmnpq",
                         "link:alice+" + "\u00e9" * 2000 + "\n@example.org", "mx1", NOW)
    first = data.split(b"\r\n", 1)[0]
    assert len(first) <= MAX_LINE and b"\n" not in first and first.startswith(b"X-Quarantine-Released: by link:")


# --- web: where to go after an action --------------------------------------------------------------

@pytest.mark.parametrize("nxt", ["/list\n", "/list?page=2\r\nSet-Cookie: a=b", "/list?s=\u20ac", "/list?\x00"])
def test_action_redirect_never_carries_a_control_or_non_latin1_character(tmp_path, nxt):
    from tests.web.helpers import World, make_record
    world = World(tmp_path)
    rec = world.put(make_record())
    c = world.client()
    c.login("alice@example.test")
    resp = c.post("/action", action="release", id=rec.mail_id, next=nxt)
    assert resp.status == 303
    location = resp.header("Location")
    assert location == "/list"
    for _name, value in resp.all_headers():
        value.encode("latin-1")
        assert value.isprintable()


# --- socketmap replies ---------------------------------------------------------------------------

def test_socketmap_reason_loses_c1_controls_and_line_separators():
    data = encode_reply(temp("lookup of a\x85b\u2028c\u2029d\x9be\nf failed"))
    text = data.decode("utf-8")
    assert not any(c in text for c in "\x85\u2028\u2029\x9b\n")
    assert text.startswith(f"{len(data.split(b':', 1)[1]) - 1}:TEMP lookup of a?b?c?d?e?f failed")


# --- log lines -----------------------------------------------------------------------------------

FORGED = "evil\n2026-12-07 00:00:00,000 INFO milter: Q: accept: forged"


def _stderr_logger():
    stream = io.StringIO()
    handler = StderrHandler(stream, StderrFormatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("owlery.test_injection_audit_s14")
    logger.propagate = False
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG)
    return logger, stream


def _records(text: str) -> list[str]:
    """Lines that start at the left margin: each is one record."""
    return [line for line in text.splitlines() if line and line[0] not in " \t"]


def test_a_line_break_in_logged_text_cannot_start_a_log_record():
    logger, stream = _stderr_logger()
    logger.warning("milter: %s: stage %s failed: %s", "Q", "spam", FORGED + "\r\u2028\x00")
    assert len(_records(stream.getvalue())) == 1
    assert not any(c in stream.getvalue() for c in "\r\u2028\x00")


def test_a_line_break_in_an_exception_message_cannot_start_a_log_record():
    logger, stream = _stderr_logger()
    try:
        raise ValueError(FORGED)
    except ValueError:
        logger.exception("milter: internal error")
    text = stream.getvalue()
    assert len(_records(text)) == 1
    assert "Traceback" in text and "forged" in text


def test_syslog_records_are_one_line_too(tmp_path):
    import socket
    from owlery import log as owlery_log
    path = str(tmp_path / "log.sock")
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(path)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        owlery_log.setup(Settings().replace(log_target="syslog", log_syslog_socket=path), "test")
        logging.getLogger("owlery_s14_syslog").warning("x %s", FORGED)
        sink.settimeout(5)
        datagram = sink.recv(65536).decode()
        assert "\n" not in datagram.rstrip("\x00").replace("\n\t", "") and "forged" in datagram
    finally:
        for handler in list(root.handlers):
            if getattr(handler, "_owlery", False):
                root.removeHandler(handler)
                handler.close()
        for handler in saved[0]:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(saved[1])
        owlery_log._stderr = None
        sink.close()


# --- policyd: a reply that echoes what the client sent (a guard: policyd needed no fix) ----------

@pytest.mark.parametrize("recipient", ["u@exa\x00mple.org", "u@ex\u2028ample.org", "u@\u00e9xample.org",
                                       "u@" + "x" * 2000 + ".org", "u@ex\rample.org"])
def test_greylist_deferral_echoing_the_recipient_domain_is_one_printable_line(tmp_path, recipient):
    from tests.policyd.test_greylist_check import decide, make_pipeline
    from policyd.protocol import encode_action
    pipe = make_pipeline(tmp_path, greylist_reply_text="Greylisted for %r, try again in %s seconds")
    d = decide(pipe, pipe.new_session(), 1_700_000_000.0, recipient=recipient)
    assert d.action.verb == "DEFER_IF_PERMIT"
    wire = encode_action(d.action.render())
    assert wire.endswith(b"\n\n") and wire.count(b"\n") == 2 and len(wire) <= 520
    assert wire[:-2].decode("ascii").isprintable()


# --- milter: X-Content-Alert naming a file the sender named ------------------------------------------

def test_content_alert_with_a_non_ascii_file_name_is_rfc2047_encoded(tmp_path):
    import email.header
    from milters.stages.banned import BannedStage
    from tests.milters.test_content_banned import mime
    from tests.milters.test_content_stages import header
    from tests.milters.test_content_stages import run as run_stages
    (tmp_path / "policy").write_text("lover@example.test banned_files_lover\n")
    s = Settings().replace(quarantine_directory=str(tmp_path / "q"), quarantine_host_name="mx1",
                           milter_authserv_id="mx.owlery.test", files_content_policy=str(tmp_path / "policy"))
    raw = mime(("application/octet-stream", "x.exe", b"hello")).replace(
        b'filename="x.exe"', b"filename*=utf-8''r%C3%A9sum%C3%A9%E2%98%83%0D%0ABcc:%20v@example.org.exe")
    out = run_stages(s, [BannedStage(s, Services(resolver=None, now=lambda: NOW))], raw=raw,
                     rcpts=("lover@example.test",))
    value = header(out, "X-Content-Alert")
    assert_safe_field("X-Content-Alert", value)
    assert value.isascii()                  # an 8-bit field only in an SMTPUTF8 message (RFC 6532)
    shown = str(email.header.make_header(email.header.decode_header(value.replace("\n", ""))))
    assert shown.startswith("BANNED, message contains r\u00e9sum\u00e9\u2603") and "\r" not in shown


# --- anchors that let a final newline through ("$"), made \Z ------------------------------
# (the first three were also refused by a later check; these pin the rule at the first one)

def test_policyd_prepend_refuses_a_header_with_a_final_line_break():
    from policyd.actions import prepend
    assert prepend("X-Test: ok").text == "X-Test: ok"
    for bad in ("X-Test: ok\n", "X-Test: ok\r\n", "X-Test: a\nX-Forged: b"):
        with pytest.raises(ValueError):
            prepend(bad)


def test_web_dates_are_ascii_digits_and_nothing_after():
    from web.app import _DATE
    assert _DATE.match("2026-12-06")
    for bad in ("2026-12-06\n", "\uff12\uff10\uff12\uff16-12-06", "2026-12-06 "):
        assert not _DATE.match(bad)


def test_quarantine_tokens_refuse_a_final_line_break():
    from owlery.quarantine.tokens import _B64
    assert _B64.match("abc_-9") and not _B64.match("abc\n")


def test_quarantine_cli_shows_line_and_paragraph_separators():
    from milters.quarantine_cli import safe
    assert safe("a\u2028b\u2029c") == "a\\u2028b\\u2029c"
