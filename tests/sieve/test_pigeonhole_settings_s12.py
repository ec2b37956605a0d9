"""Pigeonhole's redirect, vacation and editheader settings as Owlery settings, each checked three
ways: on the engine and the delivery (the old code had no such setting, or ignored it), against
Pigeonhole's `sieve-test -e` (Debian dovecot-sieve 0.5.19) with the same setting in its config,
and through the .svtest harness (`test_config_set` + `test_config_reload`, sieve/testsuite.py).

Settings: sieve_redirect_envelope_from (sieve/limits.py, chosen in
sieve.extensions.core.redirect_envelope_from); vacation_envelope_from (sieve/delivery/vacation.py,
Pigeonhole's sieve_vacation_send_from_recipient); sieve_vacation_to_header_ignore_envelope,
sieve_vacation_max_period = 0 (no limit), sieve_vacation_default_subject (only for a message
without Subject) (sieve/extensions/vacation.py); sieve_editheader_forbid_add,
sieve_editheader_forbid_delete, sieve_editheader_protected (sieve/extensions/editheader.py).
The sieve-test helpers are tests/sieve/test_outgoing_parity.py's (run_pigeonhole, run_owlery,
compare: every difference must be one its ALLOWED list explains).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from owlery.settings import Settings, SettingsError, parse_text
from sieve import api
from sieve.testsuite import run_file
from tests.sieve.differential import pigeonhole
from tests.sieve.test_outgoing_parity import SENDER, SETTINGS, USER, Case, compare, msg, run_owlery, run_pigeonhole

ENV = api.Envelope(mail_from="alice@example.org", rcpt_to="bob+box@example.net", orig_rcpt="robert@example.net")
MSG = b"From: alice@example.org\r\nTo: bob+box@example.net\r\nSubject: hi\r\nMessage-ID: <1@example.org>\r\n\r\nx\r\n"


def _run(src: str, message: bytes = MSG, envelope: api.Envelope = ENV, **over):
    settings = Settings().replace(**over)
    script = api.compile_script(src.encode(), settings=settings)
    return api.run(script, message, envelope, settings=settings)


def _actions(result, kind):
    return [a for a in result.actions if isinstance(a, kind)]


# --- the sieve-test side -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ph():
    """One sieve-test set-up; `configure(lines)` rewrites its plugin {} block for the next run."""
    assert os.path.exists(pigeonhole.SIEVE_TEST), "sieve-test missing: apt-get install dovecot-sieve"
    d = Path(tempfile.mkdtemp(prefix="sieve-s12-"))
    os.chmod(d, 0o755)  # sieve-test runs as nobody when the tests run as root
    p = pigeonhole.Pigeonhole(d / "ph", ())
    base = (p.home / "dovecot.conf").read_text()

    def configure(lines: str) -> None:
        (p.home / "dovecot.conf").write_text(base.replace("plugin {\n", "plugin {\n" + lines + "\n", 1))
        p.env = p._config_env()

    p.configure = configure
    try:
        yield p, d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@dataclasses.dataclass
class Diff:
    name: str
    dovecot: str  # lines for sieve-test's plugin {} block
    owlery: str  # the same in owlery.toml
    script: str
    message: bytes = dataclasses.field(default_factory=msg)
    mail_from: str = SENDER


def _differential(ph, d: Diff):
    p, tmp = ph
    p.configure(d.dovecot)
    case = Case(d.name, d.script, d.message, d.mail_from)
    theirs = run_pigeonhole(p, d.script.encode(), d.message, d.mail_from)
    ours = run_owlery(tmp, d.script.encode(), d.message, d.mail_from, settings=SETTINGS + d.owlery)
    assert theirs.status == "ok" and ours.status == "ok", (theirs.log[-1500:], ours)
    assert theirs.sent, theirs.log[-1500:]
    unexplained, _ = compare(case, theirs, ours)
    assert not unexplained, "\n".join(unexplained)
    return theirs, ours


def _svtest(tmp_path, body: str):
    t = tmp_path / "t.svtest"
    t.write_text('require "vnd.dovecot.testsuite";\n' + body)
    rep = run_file(str(t))
    assert rep.blocks and all(b.status == "PASS" for b in rep.blocks), "\n".join(rep.output)
    return rep


# === 1. sieve_redirect_envelope_from ==========================================================

REDIRECT = 'redirect "other@example.com";'


@pytest.mark.parametrize(
    "source, over, expected",
    [
        ("sender", {}, "alice@example.org"),
        ("default", {}, "alice@example.org"),
        ("recipient", {}, "bob+box@example.net"),
        ("orig_recipient", {}, "robert@example.net"),
        ("user_email", {}, "bob+box@example.net"),  # unset: the recipient (as Pigeonhole)
        ("user_email", {"sieve_user_email": "Bob <bob@example.net>"}, "bob@example.net"),
        ("postmaster", {"sieve_postmaster_address": "pm@example.net"}, "pm@example.net"),
        (" Recipient ", {}, "bob+box@example.net"),
        ("<Bounces@Example.NET>", {}, "Bounces@Example.NET"),  # as written: a local part is case-sensitive
        ("<>", {}, ""),
    ],
)
def test_redirect_envelope_from_source(source, over, expected):
    r = _run(REDIRECT, sieve_redirect_envelope_from=source, **over)
    [red] = _actions(r, api.Redirect)
    assert red.envelope_from == expected


@pytest.mark.parametrize(
    "source", ["sender", "recipient", "orig_recipient", "user_email", "postmaster", "<bounces@example.net>"]
)
def test_redirect_from_null_sender_keeps_null_sender(source):
    # RFC 5228 4.2: a message from <> is redirected from <> (no loop of bounces), whatever the setting
    r = _run(REDIRECT, envelope=dataclasses.replace(ENV, mail_from=""), sieve_redirect_envelope_from=source)
    [red] = _actions(r, api.Redirect)
    assert red.envelope_from == ""


@pytest.mark.parametrize("bad", ["bogus", "<not an address>", "<a@b", "", 3])
def test_redirect_envelope_from_refuses_bad_values(bad):
    with pytest.raises(SettingsError):
        Settings().replace(sieve_redirect_envelope_from=bad)


def test_delivery_sends_redirect_from_the_chosen_address_and_srs_rewrites_only_the_sender(tmp_path):
    srs = 'redirect_srs_domain = "srs.example.net"\nredirect_srs_secret = "s3cret"\n'
    run = run_owlery(
        tmp_path,
        REDIRECT.encode(),
        msg(),
        SENDER,
        settings=SETTINGS + srs + 'sieve_redirect_envelope_from = "recipient"\n',
    )
    assert [(k, f) for k, f, _, _ in run.sent] == [("redirect", USER)]
    run = run_owlery(tmp_path, REDIRECT.encode(), msg(), SENDER, settings=SETTINGS + srs)
    assert run.sent[0][1].startswith("SRS0=") and run.sent[0][1].endswith("@srs.example.net")


@pytest.mark.parametrize(
    "dovecot, owlery",
    [
        ("sender", "sender"),
        ("recipient", "recipient"),
        ("orig_recipient", "orig_recipient"),
        ("user_email", "user_email"),
        ("postmaster", "postmaster"),
        ('"<bounces@example.net>"', "<bounces@example.net>"),
        ("bogus", "sender"),  # sieve-test warns and keeps the default; Owlery refuses the file instead
    ],
)
def test_redirect_envelope_from_against_sieve_test(ph, dovecot, owlery):
    theirs, ours = _differential(
        ph,
        Diff(
            f"redirect-{owlery}",
            f"  sieve_redirect_envelope_from = {dovecot}",
            f'sieve_redirect_envelope_from = "{owlery}"\n',
            REDIRECT,
        ),
    )
    assert theirs.sent[0][1] == ours.sent[0][1]


def test_redirect_envelope_from_user_email_against_sieve_test(ph):
    # the envelope only: sieve-test also names sieve_user_email in X-Sieve-Redirected-From, where
    # Owlery's delivery names the mailbox owner (the loop check reads it: sieve/delivery/redirect.py)
    p, tmp = ph
    p.configure("  sieve_redirect_envelope_from = user_email\n  sieve_user_email = me@example.com")
    theirs = run_pigeonhole(p, REDIRECT.encode(), msg(), SENDER)
    ours = run_owlery(
        tmp,
        REDIRECT.encode(),
        msg(),
        SENDER,
        settings=SETTINGS + ('sieve_redirect_envelope_from = "user_email"\nsieve_user_email = "me@example.com"\n'),
    )
    assert [f for _, f, _, _ in theirs.sent] == [f for _, f, _, _ in ours.sent] == ["me@example.com"]


def test_redirect_envelope_from_through_the_harness(tmp_path):
    _svtest(
        tmp_path,
        """require "envelope";
test_set "message" text:
From: alice@example.org
To: bob@example.net
Subject: hi

x
.
;
test_set "envelope.from" "alice@example.org";
test_set "envelope.to" "bob@example.net";
test "default: the original sender" {
    redirect "other@example.com";
    if not test_result_execute { test_fail "execute failed"; }
    test_message :smtp 0;
    if not envelope :is "from" "alice@example.org" { test_fail "not the original sender"; }
}
test_result_reset;
test_set "message" text:
From: alice@example.org
To: bob@example.net
Subject: hi

x
.
;
test_set "envelope.from" "alice@example.org";
test_set "envelope.to" "bob@example.net";
test_config_set "sieve_redirect_envelope_from" "recipient";
test_config_reload;
test "recipient" {
    redirect "other@example.com";
    if not test_result_execute { test_fail "execute failed"; }
    test_message :smtp 0;
    if not envelope :is "from" "bob@example.net" { test_fail "not the recipient"; }
}
test_result_reset;
test_set "message" text:
From: alice@example.org
To: bob@example.net
Subject: hi

x
.
;
test_set "envelope.from" "";
test_set "envelope.to" "bob@example.net";
test_config_set "sieve_redirect_envelope_from" "<owner@example.net>";
test_config_reload;
test "null sender stays null" {
    redirect "other@example.com";
    if not test_result_execute { test_fail "execute failed"; }
    test_message :smtp 0;
    if not envelope :is "from" "" { test_fail "the null sender was replaced"; }
}
""",
    )


# === 2. vacation ===============================================================================

VACATION = 'require "vacation"; vacation :days 1 "away";'
SRS_FROM = "SRS0=abcd=xy=example.org=alice@fwd.example"


def test_vacation_send_from_recipient_in_the_delivery(tmp_path):
    run = run_owlery(tmp_path, VACATION.encode(), msg(), SENDER)
    assert [(k, f) for k, f, _, _ in run.sent] == [("vacation", "")]
    run = run_owlery(
        tmp_path, VACATION.encode(), msg(), SENDER, settings=SETTINGS + 'vacation_envelope_from = "recipient"\n'
    )
    assert [(k, f) for k, f, _, _ in run.sent] == [("vacation", USER)]


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"Sender": "Bob <bob@example.org>"}, "bob@example.org"),
        ({"Resent-From": "carol@example.org"}, "carol@example.org"),
        ({}, "alice@example.org"),
        ({"From": "undisclosed-recipients:;", "Sender": "x@"}, SRS_FROM),  # no valid address: the envelope
    ],
)
def test_vacation_to_header_ignore_envelope(fields, expected):
    head = {"From": "Alice <alice@example.org>", "To": "bob+box@example.net", "Subject": "hi", **fields}
    message = ("".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\nx\r\n").encode()
    env = dataclasses.replace(ENV, mail_from=SRS_FROM)
    [plain] = _actions(_run(VACATION, message, env), api.Vacation)
    [ignoring] = _actions(_run(VACATION, message, env, sieve_vacation_to_header_ignore_envelope=True), api.Vacation)
    assert plain.to == ignoring.to == SRS_FROM  # the reply goes to the envelope sender either way
    assert f"To: {SRS_FROM}\r\n".encode() in plain.reply
    assert f"To: {expected}\r\n".encode() in ignoring.reply


def test_vacation_max_period_zero_means_no_limit():
    src = 'require "vacation"; vacation :days 200 "away";'
    [v] = _actions(_run(src, sieve_vacation_max_period=0), api.Vacation)
    assert v.period == 200 * 86400
    [v] = _actions(_run(src, sieve_vacation_max_period="30d"), api.Vacation)
    assert v.period == 30 * 86400


def test_vacation_default_subject_only_for_a_message_without_subject():
    [v] = _actions(_run(VACATION, sieve_vacation_default_subject="Away"), api.Vacation)
    assert v.subject == "Auto: hi"
    no_subject = MSG.replace(b"Subject: hi\r\n", b"")
    [v] = _actions(_run(VACATION, no_subject, sieve_vacation_default_subject="Away"), api.Vacation)
    assert v.subject == "Away"


@pytest.mark.parametrize(
    "name, dovecot, owlery, fields, mail_from",
    [
        (
            "send-from-recipient",
            "  sieve_vacation_send_from_recipient = yes",
            'vacation_envelope_from = "recipient"\n',
            {},
            SENDER,
        ),
        (
            "send-from-null",
            "  sieve_vacation_send_from_recipient = no",
            'vacation_envelope_from = "null"\n',
            {},
            SENDER,
        ),
        (
            "to-header-sender",
            "  sieve_vacation_to_header_ignore_envelope = yes",
            "sieve_vacation_to_header_ignore_envelope = true\n",
            {"Sender": "Bob <bob@example.org>"},
            SRS_FROM,
        ),
        (
            "to-header-resent-from",
            "  sieve_vacation_to_header_ignore_envelope = yes",
            "sieve_vacation_to_header_ignore_envelope = true\n",
            {"Resent-From": "carol@example.org"},
            SRS_FROM,
        ),
        (
            "to-header-from",
            "  sieve_vacation_to_header_ignore_envelope = yes",
            "sieve_vacation_to_header_ignore_envelope = true\n",
            {},
            SRS_FROM,
        ),
        ("to-header-envelope", "", "", {}, SRS_FROM),
        (
            "default-subject-with-subject",
            "  sieve_vacation_default_subject = Away",
            'sieve_vacation_default_subject = "Away"\n',
            {},
            SENDER,
        ),
        (
            "default-subject-without-subject",
            "  sieve_vacation_default_subject = Away",
            'sieve_vacation_default_subject = "Away"\n',
            {"Subject": None},
            SENDER,
        ),
        # a Dovecot config file expands %: %%$ there is %$ in the setting
        (
            "subject-template",
            '  sieve_vacation_default_subject_template = "Re-auto: %%$ (%%%%)"',
            'sieve_vacation_subject_template = "Re-auto: %$ (%%)"\n',
            {},
            SENDER,
        ),
    ],
)
def test_vacation_settings_against_sieve_test(ph, name, dovecot, owlery, fields, mail_from):
    theirs, ours = _differential(ph, Diff(name, dovecot, owlery, VACATION, msg(**fields), mail_from))
    assert theirs.sent[0][1] == ours.sent[0][1]  # the envelope sender


def test_vacation_settings_through_the_harness(tmp_path):
    _svtest(
        tmp_path,
        """require "vacation";
require "envelope";
test_set "message" text:
From: Alice <alice@example.org>
Sender: Bob <bob@example.org>
To: user@example.net
Subject: hi

x
.
;
test_set "envelope.from" "srs0=x=y@fwd.example";
test_set "envelope.to" "user@example.net";
test "defaults: null sender, To the envelope sender" {
    vacation "away";
    if not test_result_execute { test_fail "execute failed"; }
    test_message :smtp 0;
    if not envelope :is "from" "" { test_fail "reply not from <>"; }
    if not address :is "to" "srs0=x=y@fwd.example" { test_fail "To is not the envelope sender"; }
}
test_result_reset;
test_set "message" text:
From: Alice <alice@example.org>
Sender: Bob <bob@example.org>
To: user@example.net
Subject: hi

x
.
;
test_set "envelope.from" "srs0=x=y@fwd.example";
test_set "envelope.to" "user@example.net";
test_config_set "sieve_vacation_send_from_recipient" "yes";
test_config_set "sieve_vacation_to_header_ignore_envelope" "yes";
test_config_reload :extension "vacation";
test "from the recipient, To the Sender field" {
    vacation "away";
    if not test_result_execute { test_fail "execute failed"; }
    test_message :smtp 0;
    if not envelope :is "from" "user@example.net" { test_fail "reply not from the recipient"; }
    if not envelope :is "to" "srs0=x=y@fwd.example" { test_fail "reply not sent to the envelope sender"; }
    if not address :is "to" "bob@example.org" { test_fail "To is not the Sender field's address"; }
}
""",
    )


# === 3. editheader ==============================================================================

EDIT = (
    'require "editheader"; addheader "X-Frop" "new"; deleteheader "X-Hoppa"; addheader "X-Frop2" "n"; '
    'deleteheader "Subject"; addheader "Subject" "S2"; '
)


def _heads(message: bytes) -> list[tuple[str, str]]:
    head = message.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode()
    return [(n.strip().lower(), v.strip()) for n, _, v in (line.partition(":") for line in head.split("\n"))]


@pytest.mark.parametrize(
    "over, gone, kept, added, not_added",
    [
        ({"sieve_editheader_forbid_add": ["x-frop"]}, ["x-hoppa"], [], ["x-frop2"], ["x-frop"]),
        ({"sieve_editheader_forbid_delete": ["X-HOPPA"]}, [], ["x-hoppa"], ["x-frop"], []),
        ({"sieve_editheader_protected": ["X-Frop", "X-Hoppa"]}, [], ["x-hoppa"], ["x-frop2"], ["x-frop"]),
        # Subject can always be added and deleted (RFC 5293 6)
        ({"sieve_editheader_protected": ["Subject"]}, [], [], ["subject"], []),
    ],
)
def test_editheader_settings(over, gone, kept, added, not_added):
    message = b"Subject: hi\r\nX-Hoppa: old\r\nTo: bob@example.net\r\n\r\nx\r\n"
    r = _run(EDIT + "keep;", message, **over)
    heads = _heads(r.message)
    names = [n for n, _ in heads]
    assert all(n not in names for n in gone) and all(n in names for n in kept)
    assert all((n, "new") in heads or (n, "n") in heads or (n, "S2") in heads for n in added)
    assert all((n, "new") not in heads for n in not_added)
    assert ("subject", "hi") not in heads and ("subject", "S2") in heads


@pytest.mark.parametrize("name", ["Received", "Auto-Submitted", "X-Sieve-Redirected-From"])
def test_editheader_never_deletes_received_auto_submitted_or_the_loop_field(name):
    message = f"{name}: old\r\nSubject: hi\r\n\r\nx\r\n".encode()
    r = _run(
        f'require "editheader"; deleteheader "{name}"; keep;',
        message,
        sieve_editheader_forbid_delete=[],
        sieve_editheader_protected=[],
    )
    assert (name.lower(), "old") in _heads(r.message)


def test_editheader_pigeonhole_policy_when_the_lists_are_emptied():
    r = _run(
        'require "editheader"; addheader "Received" "forged"; addheader "X-Sieve-Redirected-From" "x@y"; '
        'deleteheader "Delivered-To"; keep;',
        b"Delivered-To: bob@example.net\r\nSubject: hi\r\n\r\nx\r\n",
        sieve_editheader_forbid_add=[],
        sieve_editheader_forbid_delete=[],
    )
    heads = _heads(r.message)
    assert ("received", "forged") in heads and ("delivered-to", "bob@example.net") not in heads
    assert ("x-sieve-redirected-from", "x@y") not in heads  # never, whatever the lists say


@pytest.mark.parametrize(
    "name, dovecot, owlery",
    [
        ("pigeonhole-defaults", "", "sieve_editheader_forbid_add = []\nsieve_editheader_forbid_delete = []\n"),
        (
            "protected",
            "  sieve_editheader_protected = X-Frop X-Hoppa subject",
            'sieve_editheader_protected = ["X-Frop", "X-Hoppa", "subject"]\n'
            "sieve_editheader_forbid_add = []\nsieve_editheader_forbid_delete = []\n",
        ),
        (
            "forbid-add-delete",
            "  sieve_editheader_forbid_add = X-Frop\n  sieve_editheader_forbid_delete = X-Hoppa",
            'sieve_editheader_forbid_add = ["X-Frop"]\nsieve_editheader_forbid_delete = ["X-Hoppa"]\n',
        ),
    ],
)
def test_editheader_settings_against_sieve_test(ph, name, dovecot, owlery):
    # the edited message as a redirected copy carries it (compare() sees its fields in order)
    script = EDIT + 'addheader "Received" "forged"; deleteheader "Received"; redirect "other@example.com";'
    message = msg(X_Frop="old", X_Hoppa="old").replace(
        b"\n\n", b"\nReceived: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\n\n", 1
    )
    theirs, ours = _differential(ph, Diff(name, dovecot, owlery, script, message))
    received = [[v for n, v in _heads(m) if n == "received"] for _, _, _, m in (theirs.sent[0], ours.sent[0])]
    assert received[0] == received[1] and "forged" in received[0]  # trace fields: compared here


def test_editheader_settings_through_the_harness(tmp_path):
    _svtest(
        tmp_path,
        """require "editheader";
test_set "message" text:
Subject: hi
X-Frop: old
X-Hoppa: old
X-Plop: old
Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000

x
.
;
test_config_set "sieve_editheader_protected" "X-Frop";
test_config_set "sieve_editheader_forbid_delete" "X-Hoppa";
test_config_reload :extension "editheader";
test "Pigeonhole 2.3 lists" {
    deleteheader "x-frop";
    addheader "X-Frop" "new";
    deleteheader "x-hoppa";
    addheader "X-Hoppa" "new";
    deleteheader "received";
    deleteheader "subject";
    if not header :is "x-frop" "old" { test_fail "protected field edited"; }
    if not header :is "x-hoppa" ["new", "old"] { test_fail "forbid_delete wrong"; }
    if not exists "received" { test_fail "Received deleted"; }
    if exists "subject" { test_fail "Subject cannot be protected"; }
}
test_config_unset "sieve_editheader_protected";
test_config_unset "sieve_editheader_forbid_delete";
test_config_set "sieve_editheader_header/X-Plop/forbid_add" "yes";
test_config_set "sieve_editheader_header/X-Plop/forbid_delete" "yes";
test_config_reload :extension "editheader";
test "Pigeonhole 2.4 per-header filters" {
    deleteheader "x-plop";
    addheader "X-Plop" "new";
    if not header :is "x-plop" "old" { test_fail "X-Plop edited"; }
    if header :is "x-plop" "new" { test_fail "X-Plop added"; }
    deleteheader "x-frop";
    if exists "x-frop" { test_fail "X-Frop still protected after unset"; }
}
""",
    )


def test_settings_are_declared_with_docs():
    from owlery.settings import declared

    import sieve.delivery.vacation  # noqa: F401  (vacation_envelope_from)
    import sieve.limits  # noqa: F401

    d = declared()
    for name in (
        "sieve_redirect_envelope_from",
        "sieve_vacation_to_header_ignore_envelope",
        "sieve_editheader_forbid_add",
        "sieve_editheader_forbid_delete",
        "sieve_editheader_protected",
        "vacation_envelope_from",
    ):
        assert name in d and d[name].doc
    assert (
        parse_text('sieve_redirect_envelope_from = "<bounces@example.net>"\n').sieve_redirect_envelope_from
        == "<bounces@example.net>"
    )
