"""Six behaviours settled against Pigeonhole 0.5.19 (Debian's sieve-test; Dovecot LMTP where the
delivery itself decides) and the RFCs:

1. an unknown date-part in date/currentdate: a compile-time warning and a false test, not a
   compile error (sieve/extensions/date.py);
2. environment item names are matched exactly, not case-insensitively
   (sieve/extensions/environment.py);
3. relational operators in upper case (:value "LT"): accepted, as RFC 5234 2.3 reads the ABNF
   (no change; Pigeonhole refuses them: allow-listed);
4. vacation :subject that expands to "": the default subject (sieve/extensions/vacation.py);
5. vacation :from that expands to an invalid address: a runtime error, no reply (no change;
   Pigeonhole sends with the bad From: allow-listed);
6. fileinto :specialuse falling back to INBOX together with a keep: one copy, the fileinto's
   flags, the keep adds none, as Dovecot LMTP (sieve/result.py, sieve/delivery/planner.py).

Where Pigeonhole and the RFC disagree, Owlery follows the RFC and ALLOWED_* below say why.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from owlery.settings import Settings, parse_text
from owlery.state.memory_store import MemoryStore
from sieve import api
from sieve.delivery.executor import DeliveryExecutor
from sieve.delivery.users import MailUser
from sieve.errors import SieveCompileError
from tests.delivery.test_maildir_dovecot_differential import SPECIAL_USE_CONF
from tests.harness.dovecot import DovecotInstance
from tests.sieve.test_outgoing_parity import SENDER, SETTINGS, USER, Recorder, header_values, msg, run_owlery
from tests.sieve.test_outgoing_parity import run_pigeonhole as run_pigeonhole_sent
from tests.sieve.test_pigeonhole_leftovers_s13 import MESSAGE, _inbox_flags, ph_box  # noqa: F401
from tests.sieve.test_pigeonhole_settings_s12 import ph  # noqa: F401

ENV = api.Envelope(mail_from=SENDER, rcpt_to=USER, orig_rcpt=USER)


def _owlery_box(script: str) -> bool:
    """Does Owlery's engine file MESSAGE into "Box" with `script`?"""
    compiled = api.compile_script(script.encode(), settings=Settings())
    result = api.run(compiled, MESSAGE, ENV, settings=Settings())
    assert result.status == "ok", result.errors
    return any(isinstance(a, api.FileInto) and a.mailbox == "Box" for a in result.actions)


def _pigeonhole_box(ph_box, script: str) -> bool | str:  # noqa: F811
    """Does sieve-test store MESSAGE into "Box"? "compile-error" when it refuses the script."""
    raw = ph_box.run(script.encode(), MESSAGE, SENDER, USER, USER)
    if raw.status == "compile-error":
        return "compile-error"
    assert raw.status == "ok", raw.log[-800:]
    return any(box == "Box" for box, _, _ in raw.stored)


# === 1. an unknown date-part =====================================================================
#
# RFC 5260 4.2 lists the date-parts (case-insensitive) and gives no other a meaning; it does not
# make one a compile error. Pigeonhole warns at compile time ("specified date part `bogus' is
# not known") and, at run time, makes the test false whatever the match type (tst-date.c).

D = 'require ["date", "fileinto", "relational", "variables"];\n'
DATE_CASES = [
    ('if date :is "date" "bogus" "x" { fileinto "Box"; }', False),
    ('if not date :is "date" "bogus" "x" { fileinto "Box"; }', True),
    ('if not currentdate :is "Bogus" "x" { fileinto "Box"; }', True),
    ('if date :count "eq" "date" "bogus" "0" { fileinto "Box"; }', False),
    ('if currentdate :count "eq" "bogus" "0" { fileinto "Box"; }', False),
    ('if not date :matches "date" "bogus" "*" { fileinto "Box"; }', True),
    ('set "p" "bogus"; if not date :is "date" "${p}" "x" { fileinto "Box"; }', True),
    ('set "p" "bogus"; if currentdate :count "eq" "${p}" "0" { fileinto "Box"; }', False),
    ('if date :is "date" "YEAR" "2026" { fileinto "Box"; }', False),  # MESSAGE has no Date
    ('if currentdate :matches "YEAR" "*" { fileinto "Box"; }', True),
]


@pytest.mark.parametrize("script, expected", DATE_CASES)
def test_unknown_date_part_is_a_false_test(script, expected):
    assert _owlery_box(D + script) is expected


def test_unknown_date_part_warns_at_compile_time():
    compiled = api.compile_script((D + DATE_CASES[0][0]).encode(), settings=Settings())
    assert [w.message for w in compiled.warnings] == ["specified date part `bogus' is not known"]


def test_unknown_date_part_against_sieve_test(ph_box):  # noqa: F811
    for script, expected in DATE_CASES:
        assert _pigeonhole_box(ph_box, D + script) is expected, script


# === 2. environment item names ===================================================================
#
# RFC 5183 4 names the items in lower case and says nothing of case-insensitive names (unlike
# RFC 5229's variable names); Pigeonhole looks them up exactly: "Domain" does not exist.

E = 'require ["environment", "vnd.dovecot.environment", "fileinto", "variables", "relational"];\n'
ENV_CASES = [
    ('if environment :matches "domain" "*" { fileinto "Box"; }', True),
    ('if environment :matches "DOMAIN" "*" { fileinto "Box"; }', False),
    ('if environment :matches "Host" "*" { fileinto "Box"; }', False),
    ('if environment :count "eq" "NAME" "0" { fileinto "Box"; }', False),
    ('if environment :matches "VND.DOVECOT.DEFAULT-MAILBOX" "*" { fileinto "Box"; }', False),
    ('if environment :matches "vnd.dovecot.default-mailbox" "*" { fileinto "Box"; }', True),
]


@pytest.mark.parametrize("script, expected", ENV_CASES)
def test_environment_names_are_case_sensitive(script, expected):
    assert _owlery_box(E + script) is expected


def test_environment_names_against_sieve_test(ph_box):  # noqa: F811
    for script, expected in ENV_CASES:
        assert _pigeonhole_box(ph_box, E + script) is expected, script


# === 3. relational operators in upper case =======================================================
#
# RFC 5231 5: relational-match = DQUOTE ("gt" / "ge" / "lt" / "le" / "eq" / "ne") DQUOTE, and
# RFC 5234 2.3 makes ABNF quoted strings case-insensitive: "LT" is "lt". Owlery accepts it.
# Pigeonhole refuses anything but lower case (a compile error): allow-listed.

REL = 'require ["relational", "fileinto"];\n'
REL_CASES = [
    ('if header :value "LT" "subject" "z" { fileinto "Box"; }', True),
    ('if header :value "Gt" "subject" "z" { fileinto "Box"; }', False),
    ('if header :count "GE" "subject" "1" { fileinto "Box"; }', True),
    ('if header :count "eQ" "subject" "2" { fileinto "Box"; }', False),
    ('if header :count "ge" "subject" "1" { fileinto "Box"; }', True),
]
ALLOWED_RELATIONAL = {
    0: "Pigeonhole refuses an upper-case operator; RFC 5234 2.3: ABNF strings are case-insensitive",
    1: "Pigeonhole refuses an upper-case operator; RFC 5234 2.3: ABNF strings are case-insensitive",
    2: "Pigeonhole refuses an upper-case operator; RFC 5234 2.3: ABNF strings are case-insensitive",
    3: "Pigeonhole refuses an upper-case operator; RFC 5234 2.3: ABNF strings are case-insensitive",
}


@pytest.mark.parametrize("script, expected", REL_CASES)
def test_relational_operator_any_case(script, expected):
    assert _owlery_box(REL + script) is expected


def test_relational_operator_from_a_variable_is_refused():
    # RFC 5231 4: the operator is a constant; both refuse "${o}" at compile time
    with pytest.raises(SieveCompileError):
        api.compile_script(b'require ["relational", "variables"]; set "o" "ge";'
                           b' if header :count "${o}" "subject" "1" { keep; }', settings=Settings())


def test_relational_operator_case_against_sieve_test(ph_box):  # noqa: F811
    differ = set()
    for i, (script, expected) in enumerate(REL_CASES):
        theirs = _pigeonhole_box(ph_box, REL + script)
        if theirs is not expected:
            assert i in ALLOWED_RELATIONAL and theirs == "compile-error", (script, theirs)
            differ.add(i)
    assert differ == set(ALLOWED_RELATIONAL), "stale allow-list entries"


# === 4. vacation :subject that expands to "" =====================================================
#
# RFC 5230 4.3 gives the default subject ("Auto: " + the original) when :subject is not
# supplied; RFC 3834 3.1.5 wants a response's Subject to say it is one, which "" cannot.
# Pigeonhole takes an empty :subject (literal or expanded) as none; " " stays " ".

V = 'require ["vacation", "variables"];\n'
SUBJECT_CASES = [
    ('set "s" ""; vacation :subject "${s}" "away";', "Auto: hi"),
    ('vacation :subject "" "away";', "Auto: hi"),
    ('set "s" "Gone"; vacation :subject "${s}" "away";', "Gone"),
    ('vacation "away";', "Auto: hi"),
]


def _subject(sent) -> str:
    [(kind, _, _, body)] = sent
    assert kind == "vacation"
    [subject] = header_values(body, "subject")
    return subject.strip()


@pytest.mark.parametrize("script, expected", SUBJECT_CASES)
def test_vacation_empty_subject_is_the_default(tmp_path, script, expected):
    ours = run_owlery(tmp_path, (V + script).encode(), msg(Subject="hi"), SENDER)
    assert ours.status == "ok", ours
    assert _subject(ours.sent) == expected


def test_vacation_empty_subject_against_sieve_test(ph):  # noqa: F811
    p, tmp = ph
    p.configure("")
    for script, expected in SUBJECT_CASES:
        theirs = run_pigeonhole_sent(p, (V + script).encode(), msg(Subject="hi"), SENDER)
        assert theirs.status == "ok", theirs.log[-1500:]
        assert _subject(theirs.sent) == expected, script


# === 5. vacation :from that expands to an invalid address ========================================
#
# RFC 5230 4.4: :from must be a valid address (an invalid one is an error). Owlery: a runtime
# error (implicit keep, no reply). Pigeonhole logs the error and still sends the reply with the
# invalid address in From: allow-listed (a header Owlery will not write).

FROM_CASES = ['set "f" "not an address"; vacation :from "${f}" "away";',
              'set "f" "a@@b"; vacation :from "${f}" "away";']
ALLOWED_FROM = "Pigeonhole logs the invalid :from and sends with it in From (RFC 5230 4.4: an error)"


@pytest.mark.parametrize("script", FROM_CASES)
def test_vacation_invalid_from_at_run_time_is_an_error(tmp_path, caplog, script):
    caplog.set_level(logging.INFO)
    ours = run_owlery(tmp_path, (V + script).encode(), msg(Subject="hi"), SENDER)
    assert ours.status == "ok" and ours.sent == []
    assert "is invalid for vacation action" in caplog.text and "keeping into INBOX" in caplog.text
    compiled = api.compile_script((V + script).encode(), settings=Settings())
    result = api.run(compiled, msg(Subject="hi"), ENV, settings=Settings())
    assert result.status != "ok" and not [a for a in result.actions if isinstance(a, api.Vacation)]


def test_vacation_invalid_from_against_sieve_test(ph):  # noqa: F811
    p, _ = ph
    p.configure("")
    for script in FROM_CASES:
        theirs = run_pigeonhole_sent(p, (V + script).encode(), msg(Subject="hi"), SENDER)
        # the difference ALLOWED_FROM names: sieve-test sends, with the bad address as From
        assert "is invalid for vacation action" in theirs.log, ALLOWED_FROM
        [(_, _, _, body)] = theirs.sent
        assert header_values(body, "from")[0].strip() in ("not an address", "a@@b"), ALLOWED_FROM


# === 6. fileinto :specialuse falling back to INBOX, with a keep ==================================
#
# The rule of tests/sieve/test_pigeonhole_leftovers_s13.py (INBOX_CASES) holds for a
# :specialuse fileinto that finds no folder with its special use and stores into "INBOX": one
# copy, the fileinto's flags (the last fileinto's), the keep (explicit or implicit, before or
# after) adds none of its flags, as Dovecot LMTP stores. With a folder carrying the special
# use, the fileinto goes there and the keep to INBOX, each with its own flags.

SU = 'require ["fileinto", "imap4flags", "copy", "special-use"];\n'
SU_CASES = [
    ('keep :flags "a"; fileinto :specialuse "\\\\Junk" :flags "b" "INBOX";', ("b",)),
    ('fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; keep :flags "a";', ("b",)),
    ('keep; fileinto :specialuse "\\\\Junk" :flags "b" "INBOX";', ("b",)),
    ('keep :flags "a"; fileinto :specialuse "\\\\Junk" "INBOX";', ()),
    ('fileinto :specialuse "\\\\Junk" "INBOX"; keep :flags "a";', ()),
    ('keep; fileinto :specialuse "\\\\Junk" "INBOX";', ()),
    ('fileinto :copy :specialuse "\\\\Junk" :flags "b" "INBOX"; addflag "z";', ("b",)),
    ('addflag "z"; fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; keep;', ("b",)),
    ('fileinto :specialuse "\\\\Junk" :flags "b" "inbox"; keep :flags "a";', ("b",)),
    ('keep :flags "a"; fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; keep :flags "c";', ("b",)),
    ('fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; fileinto :flags "c" "INBOX";', ("c",)),
]
# with a Junk folder: (INBOX flags, Junk flags)
SU_JUNK_CASES = [
    ('fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; keep :flags "a";', [("a",)], [("b",)]),
    ('keep :flags "a"; fileinto :specialuse "\\\\Junk" :flags "b" "INBOX";', [("a",)], [("b",)]),
]
# Dovecot LMTP takes the keep for a duplicate of a fileinto :specialuse ... "INBOX" whose folder
# exists (Pigeonhole compares the names before it resolves the special use) and drops it: the
# message is only in Junk. RFC 5228 2.10.3 merges only stores into the same mailbox; the keep
# stores into INBOX (4.1 / 2.10.2), the fileinto into the special-use folder (RFC 8579 3), so
# Owlery keeps both (the old code kept only an INBOX copy and lost the Junk one).
ALLOWED_LMTP_JUNK = {
    0: (([], [("b",)]), "Dovecot drops the keep as a duplicate of the fileinto's named mailbox"),
    1: (([], [("b",)]), "Dovecot drops the keep as a duplicate of the fileinto's named mailbox"),
}
JUNK_SETTINGS = SETTINGS + 'delivery_special_use_folders = { Junk = "Junk" }\n'


def _deliver(home: Path, script: str, junk: bool = False) -> None:
    """Owlery's delivery of MESSAGE with `script` into home/Maildir (with a Junk folder)."""
    (home / "Maildir").mkdir(parents=True, exist_ok=True)
    if junk:
        for sub in ("cur", "new", "tmp"):
            (home / "Maildir" / ".Junk" / sub).mkdir(parents=True, exist_ok=True)
    (home / "user.sieve").write_text(script)
    ex = DeliveryExecutor(parse_text(JUNK_SETTINGS), submitter=Recorder(), state=MemoryStore(), program="test")
    out = ex.deliver(MESSAGE, SENDER, USER, MailUser(USER, str(home / "Maildir"), str(home / "user.sieve")),
                     original_recipient=USER)
    assert out.ok, out


@pytest.mark.parametrize("script, expected", SU_CASES)
def test_specialuse_fallback_copy_flags(tmp_path, script, expected):
    _deliver(tmp_path, SU + script)
    assert _inbox_flags(tmp_path / "Maildir") == [expected]
    assert not (tmp_path / "Maildir" / ".Junk").exists()


@pytest.mark.parametrize("script, inbox, junk", SU_JUNK_CASES)
def test_specialuse_folder_and_keep_both_store(tmp_path, script, inbox, junk):
    _deliver(tmp_path, SU + script, junk=True)
    assert _inbox_flags(tmp_path / "Maildir") == inbox
    assert _inbox_flags(tmp_path / "Maildir" / ".Junk") == junk


def test_specialuse_flags_match_dovecot_lmtp():
    """Dovecot LMTP (special-use enabled, Junk configured as \\Junk) delivers each script, with
    and without a Junk folder; Owlery's delivery of the same script stores the same flags."""
    work = Path(tempfile.mkdtemp(prefix="owlery-s13c-", dir="/tmp"))
    try:
        os.chmod(work, 0o755)
        users = {}
        cases = [(s, [e], None, False) for s, e in SU_CASES] + [(s, i, j, True) for s, i, j in SU_JUNK_CASES]
        for n, (script, _, _, junk) in enumerate(cases):
            home = work / f"d{n}"
            (home / "sieve").mkdir(parents=True)
            (home / "sieve" / "active.sieve").write_text(SU + script)
            if junk:
                for sub in ("cur", "new", "tmp"):
                    (home / "Maildir" / ".Junk" / sub).mkdir(parents=True)
                for root, _dirs, _files in os.walk(home / "Maildir"):
                    os.chmod(root, 0o777)
            users[f"d{n}@example.org"] = str(home)
        with DovecotInstance(work / "dovecot", users, extra_conf=SPECIAL_USE_CONF) as dv:
            for rcpt in users:
                dv.lmtp_send(SENDER, rcpt, MESSAGE)
        for n, (script, inbox, junk_flags, junk) in enumerate(cases):
            theirs = (_inbox_flags(work / f"d{n}" / "Maildir"), _inbox_flags(work / f"d{n}" / "Maildir" / ".Junk"))
            _deliver(work / f"o{n}", SU + script, junk=junk)
            ours = (_inbox_flags(work / f"o{n}" / "Maildir"), _inbox_flags(work / f"o{n}" / "Maildir" / ".Junk"))
            assert ours == (inbox, junk_flags or []), (script, ours)
            if n - len(SU_CASES) in ALLOWED_LMTP_JUNK:
                assert theirs == ALLOWED_LMTP_JUNK[n - len(SU_CASES)][0], (script, theirs)
            else:
                assert theirs == ours, (script, theirs, ours)
    finally:
        shutil.rmtree(work, ignore_errors=True)
