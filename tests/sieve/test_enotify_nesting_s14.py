"""Two behaviours settled against the RFCs and Pigeonhole 0.5.19's sieve-test (Debian
dovecot-sieve), run as in tests/sieve/test_outgoing_parity.py:

1. The Subject and body of a mailto notification (sieve/extensions/enotify.py).
   RFC 5436 2.6: the value of :message "is used as the subject of the notification message,
   and overrides all other mechanisms for determining the subject". RFC 5436 2.7: "The
   "Subject:" field of the notification message SHOULD contain the value defined by the
   :message notify tag [...]. If there is no :message tag and there is a "subject" header on
   the URI, then that value SHOULD be used. If that is also absent, the subject SHOULD be
   retained from the triggering message." and "If the mailto URI contains a "body" header,
   the value of that header SHOULD be used as the body of the notification message. If there
   is no "body" header, it is up to the implementation whether to leave the body empty or to
   use an excerpt of the original message." (RFC 5435 3.6: without :message an
   implementation default holding the From and the Subject is RECOMMENDED.)
   Owlery used the URI's subject over :message, ignored an empty :message when the URI had a
   subject, wrote "<from>: <subject>" where the triggering subject is to be retained, and
   took an empty body= for no body. Pigeonhole agrees with the RFC on :message, the URI
   subject and body=; where it does not (the retained subject: Pigeonhole writes
   "Notification: <subject>"), the RFC is kept and the test says so. Without body= the body
   is the implementation's: Owlery's holds the whole :message (the Subject may be cut, RFC
   5436 2.6) or the RFC 5435 3.6 default; Pigeonhole's is "Notification of new message.".

2. Nesting limits (sieve/parser.py, sieve/validator.py; sieve_max_nesting in sieve/limits.py).
   Pigeonhole refuses 32 nested command blocks ("cannot nest command blocks deeper than 32
   levels": the script's top level counts as level 1) and, independently of the blocks around
   them, 32 nested tests in one command ("cannot nest tests deeper than 32 levels": the
   command counts as level 1). Owlery accepted 32 blocks and counted blocks and tests together
   up to 64. Now sieve_max_nesting (32) is that level for each, so the default accepts and
   refuses at Pigeonhole's depths; the deepest chain is still bounded (2 x 31 levels) and a
   hostile depth is a clean compile error.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from owlery.settings import Settings
from sieve.api import Discard, Envelope, MemoryHost, SieveCompileError, compile_script, run
from tests.sieve.differential import pigeonhole
from tests.sieve.test_outgoing_parity import NOT, SENDER, USER, describe, msg, run_owlery, run_pigeonhole


@pytest.fixture(scope="module")
def engines():
    assert os.path.exists(pigeonhole.SIEVE_TEST), "sieve-test missing: apt-get install dovecot-sieve"
    d = Path(tempfile.mkdtemp(prefix="sieve-s14-"))
    os.chmod(d, 0o755)  # sieve-test runs as nobody when the tests run as root
    try:
        yield pigeonhole.Pigeonhole(d / "ph", ()), d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# === 1. the notification's Subject and body =====================================================

URI = "mailto:alert@example.com"
PH_DEFAULT_BODY = "Notification of new message."
OWL_DEFAULT_TEXT = "Sender Name <sender@example.org>: Hello there"   # RFC 5435 3.6 (From: Subject)

# (name, notify command, expected Subject, expected body from Owlery, expected body from
# Pigeonhole, expected Subject from Pigeonhole when it departs from the RFC)
NOTIFY_CASES = [
    ("message-and-uri-subject", f'notify :message "MSG text" "{URI}?subject=URI%20subj";',
     "MSG text", "MSG text", PH_DEFAULT_BODY, None),
    ("message-uri-subject-and-body", f'notify :message "MSG text" "{URI}?subject=URI%20subj&body=URI%20body";',
     "MSG text", "URI body", "URI body", None),
    ("empty-message-and-uri-subject", f'notify :message "" "{URI}?subject=URI%20subj";',
     "", "", PH_DEFAULT_BODY, None),
    ("message-only", f'notify :message "MSG text" "{URI}";', "MSG text", "MSG text", PH_DEFAULT_BODY, None),
    ("uri-subject-only", f'notify "{URI}?subject=URI%20subj";', "URI subj", OWL_DEFAULT_TEXT, PH_DEFAULT_BODY, None),
    # RFC 5436 2.7: "the subject SHOULD be retained from the triggering message"; Pigeonhole
    # prefixes it with "Notification: " (allowed in test_outgoing_parity.py as notify-default-subject)
    ("neither", f'notify "{URI}";', "Hello there", OWL_DEFAULT_TEXT, PH_DEFAULT_BODY, "Notification: Hello there"),
    ("body-only", f'notify "{URI}?body=URI%20body";', "Hello there", "URI body", "URI body",
     "Notification: Hello there"),
    ("body-and-message", f'notify :message "MSG text" "{URI}?body=URI%20body";',
     "MSG text", "URI body", "URI body", None),
    ("empty-body", f'notify "{URI}?body=";', "Hello there", "", "", "Notification: Hello there"),
    ("empty-body-and-message", f'notify :message "MSG text" "{URI}?body=";', "MSG text", "", "", None),
]
IDS = [c[0] for c in NOTIFY_CASES]


def _notification(ran) -> dict[str, str]:
    assert ran.status == "ok", ran
    [(kind, _, recipients, message)] = ran.sent
    assert kind == "notify" and recipients == ("alert@example.com",)
    return describe(kind, message)


@pytest.mark.parametrize("name, command, subject, body, ph_body, ph_subject", NOTIFY_CASES, ids=IDS)
def test_notification_subject_and_body(tmp_path, name, command, subject, body, ph_body, ph_subject):
    ours = _notification(run_owlery(tmp_path, (NOT + command).encode(), msg(), SENDER))
    assert ours["header:subject"] == subject
    assert ours["body"] == body


def test_notification_subject_and_body_against_sieve_test(engines):
    ph, tmp = engines
    for name, command, subject, _body, ph_body, ph_subject in NOTIFY_CASES:
        theirs = _notification(run_pigeonhole(ph, (NOT + command).encode(), msg(), SENDER))
        ours = _notification(run_owlery(tmp, (NOT + command).encode(), msg(), SENDER))
        # where Pigeonhole keeps to RFC 5436 2.6/2.7 the two agree; ph_subject is its departure
        assert theirs["header:subject"] == (subject if ph_subject is None else ph_subject), name
        assert theirs["body"] == ph_body, name
        assert ours["header:subject"] == subject, name
        if "body=" in command:
            assert ours["body"] == theirs["body"], name    # the URI's body, even empty


def test_uri_subject_never_reaches_the_message_when_message_is_given(tmp_path):
    ran = run_owlery(tmp_path, (NOT + f'notify :message "MSG" "{URI}?subject=Hidden";').encode(), msg(), SENDER)
    [(_, _, _, message)] = ran.sent
    assert b"Hidden" not in message


def test_retained_subject_is_decoded_and_cleaned(tmp_path):
    ran = run_owlery(tmp_path, (NOT + f'notify "{URI}";').encode(),
                     msg(Subject="=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Berlin"), SENDER)
    assert _notification(ran)["header:subject"] == "Grüße aus Berlin"


def test_message_without_subject_gets_a_default_subject(tmp_path):
    ran = run_owlery(tmp_path, (NOT + f'notify "{URI}";').encode(), msg(Subject=None), SENDER)
    got = _notification(ran)
    assert got["header:subject"] == "Notification"
    assert got["body"] == "Sender Name <sender@example.org>"


# === 2. nesting limits ==========================================================================


def blocks(n: int) -> str:
    return "if true { " * n + "keep;" + " }" * n


def nested_tests(n: int, op: str) -> str:
    """An if whose test nests `n` tests deep (n - 1 operators around `true`)."""
    t = "not " * (n - 1) + "true" if op == "not" else f"{op}(" * (n - 1) + "true" + ")" * (n - 1)
    return f"if {t} {{ keep; }}"


def in_blocks(outer: int, script: str) -> str:
    return "if true { " * outer + script + " }" * outer


# (name, script, accepted by both)
NESTING_CASES = [
    ("blocks-31", blocks(31), True),
    ("blocks-32", blocks(32), False),
    ("blocks-40", blocks(40), False),
    *[(f"{op}-tests-{n}", nested_tests(n, op), n <= 31) for op in ("not", "allof", "anyof") for n in (31, 32)],
    ("tests-31-in-30-blocks", in_blocks(30, nested_tests(31, "anyof")), True),
    ("tests-32-in-30-blocks", in_blocks(30, nested_tests(32, "anyof")), False),
    ("tests-2-in-31-blocks", in_blocks(31, nested_tests(2, "not")), False),   # the if's block is level 33
    ("tests-31-in-1-block", in_blocks(1, nested_tests(31, "allof")), True),
    ("not-anyof-31", "if " + "not anyof(" * 15 + "true" + ")" * 15 + " { keep; }", True),
    ("not-anyof-32", "if " + "not anyof(" * 15 + "not true" + ")" * 15 + " { keep; }", False),
    ("deep-branch-31", "if anyof(true, " + "not " * 29 + "true, false) { keep; }", True),
    ("deep-branch-32", "if anyof(true, " + "not " * 30 + "true, false) { keep; }", False),
    ("else-block-31", in_blocks(30, "if false { keep; } elsif true { keep; } else { keep; }"), True),
    ("else-block-32", in_blocks(31, "if false { keep; } else { keep; }"), False),
    ("foreverypart-31", 'require "foreverypart"; ' + in_blocks(27, "foreverypart { " * 4 + "keep;" + " }" * 4), True),
    ("foreverypart-32", 'require "foreverypart"; ' + in_blocks(28, "foreverypart { " * 4 + "keep;" + " }" * 4), False),
]
NESTING_IDS = [c[0] for c in NESTING_CASES]


def _owlery_compiles(script: str, settings: Settings | None = None) -> bool:
    try:
        compile_script(script.encode(), settings=settings or Settings())
    except SieveCompileError as e:
        assert "cannot nest" in str(e) or "nested too deeply" in str(e) or "nests too deeply" in str(e), str(e)
        return False
    return True


@pytest.mark.parametrize("name, script, accepted", NESTING_CASES, ids=NESTING_IDS)
def test_default_nesting_limits(name, script, accepted):
    assert _owlery_compiles(script) is accepted


def test_nesting_limits_against_sieve_test(engines):
    ph, _ = engines
    for name, script, accepted in NESTING_CASES:
        raw = ph.run(script.encode(), msg(), SENDER, USER, USER)
        assert raw.status in ("ok", "compile-error"), (name, raw.log[-800:])
        assert (raw.status == "ok") is accepted, (name, raw.log[-800:])
        assert _owlery_compiles(script) is accepted, name


def test_nesting_error_count_and_wording_against_sieve_test(engines):
    # one error per too-deep block and per too-deep test, each skipped, then the rest parsed
    ph, _ = engines
    script = blocks(33) + " if " + "not " * 40 + "true { keep; }\n" + in_blocks(31, "if false { keep; } else { keep; }")
    raw = ph.run(script.encode(), msg(), SENDER, USER, USER)
    theirs = [line.split("error: ", 1)[1].rstrip(".") for line in raw.log.splitlines() if "error: cannot nest" in line]
    with pytest.raises(SieveCompileError) as e:
        compile_script(script.encode(), settings=Settings())
    ours = [d.message.split(" (nested too deeply")[0] for d in e.value.diagnostics if "cannot nest" in d.message]
    assert ours == theirs == [
        "cannot nest command blocks deeper than 32 levels",
        "cannot nest tests deeper than 32 levels",
        "cannot nest command blocks deeper than 32 levels",
        "cannot nest command blocks deeper than 32 levels",
    ]


def test_the_deepest_accepted_script_runs():
    # 31 blocks around an if with a 31-level test (30 `not` around true): the longest chain the
    # default allows; it compiles and runs within the interpreter's own recursion
    script = in_blocks(30, "if " + "not " * 30 + "true { discard; }")
    settings = Settings()
    r = run(compile_script(script.encode(), settings=settings), b"Subject: x\r\n\r\nbody\r\n",
            Envelope("a@example.org", "b@example.net"), host=MemoryHost(), settings=settings)
    assert r.status == "ok", r.errors
    assert any(isinstance(a, Discard) for a in r.actions)


@pytest.mark.parametrize("limit", [5, 32, 1000])
def test_hostile_depth_stays_a_clean_bounded_error(limit):
    settings = Settings().replace(sieve_max_nesting=limit)
    # (past Python's recursion limit, as with sieve_max_nesting 1000, the parser's own guard
    # makes it "script nests too deeply")
    for script in (blocks(5000), nested_tests(5000, "anyof"), nested_tests(5000, "not"), blocks(min(limit, 999)),
                   in_blocks(min(limit, 999) - 1, nested_tests(min(limit, 999), "anyof"))):
        t0 = time.monotonic()
        assert not _owlery_compiles(script, settings)
        assert time.monotonic() - t0 < 5


def test_a_smaller_setting_bounds_blocks_and_tests_apart():
    settings = Settings().replace(sieve_max_nesting=5)
    assert _owlery_compiles(blocks(4), settings)
    assert not _owlery_compiles(blocks(5), settings)
    assert _owlery_compiles(in_blocks(3, nested_tests(4, "not")), settings)
    assert not _owlery_compiles(in_blocks(3, nested_tests(5, "not")), settings)


def test_a_nesting_limit_that_no_test_could_meet_is_refused():
    # at 1 not even `if true {}` compiles (its test is level 2): a settings file saying so is wrong
    from owlery.settings import Settings, SettingsError
    with pytest.raises(SettingsError, match="sieve_max_nesting"):
        Settings().replace(sieve_max_nesting=1)
    assert Settings().replace(sieve_max_nesting=2).sieve_max_nesting == 2
