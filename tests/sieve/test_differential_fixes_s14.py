"""Fixes and settled differences from the fourteenth differential session (seeds 5150001, 5150002
and 88123 with --shapes all; 661177 and 7777777 without): each case is decided by the RFC and by what
Pigeonhole's own delivery (Dovecot LMTP) stores.

1. fileinto :specialuse F "INBOX" that finds no folder with its special use, with a keep and a
   later plain fileinto "INBOX": the one INBOX copy takes the last fileinto's flags, as Dovecot
   LMTP stores them (sieve/result.py sets FileInto.fallback_flags, sieve/delivery/planner.py
   uses them). Before the fix the :specialuse fileinto's flags stood ("b" where Dovecot has "c").
2. seed 661177 pair 1247: `fileinto :copy "${hex:69}nbox"; setflag ...; keep;` is the
   inbox-flags-as-delivered difference with INBOX spelled by encoded characters: Owlery stores
   as Dovecot LMTP does; the deviation inbox-flags-as-delivered-encoded explains the pair.
3. seed 7777777 pair 1479: extracttext of a base64 part with a line break between non-ASCII
   words, added to a field: Pigeonhole loses the break (RFC 2047 6.2); the deviation
   pigeonhole-encoded-words-lose-line-breaks-added-encoded-part explains it.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.delivery.test_maildir_dovecot_differential import SPECIAL_USE_CONF
from tests.harness.dovecot import DovecotInstance
from tests.sieve.differential import pigeonhole
from tests.sieve.differential.generator import FOLDERS, make_case
from tests.sieve.differential.normalise import from_pigeonhole
from tests.sieve.differential.runner import explain, load_deviations, owlery_settings, run_owlery
from tests.sieve.test_differential_fixes_s12 import _run     # one driver for the fix files
from tests.sieve.test_outgoing_parity import SENDER, USER
from tests.sieve.test_pigeonhole_leftovers_s13 import MESSAGE, _inbox_flags
from tests.sieve.test_pigeonhole_probes_s13c import SU, _deliver

# === 1. a :specialuse fileinto fallen back to INBOX, then a plain fileinto "INBOX" ================
#
# RFC 5228 2.10.3: one copy per mailbox; RFC 8579 3: with no folder of that special use the
# :specialuse fileinto stores into the named mailbox; RFC 5232 says nothing of which :flags a
# merged store takes. Dovecot LMTP (what really stores) merges every store naming INBOX into one
# copy whose flags are the last fileinto's (:specialuse or not); a keep adds none of its own.
# (script, INBOX flags) with no Junk folder; each checked against Dovecot LMTP below.

FALLBACK_CASES = [
    # the known leftover: Dovecot "c", Owlery had "b"
    ('keep; fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; fileinto :flags "c" "INBOX";', ("c",)),
    ('fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; keep; fileinto :flags "c" "INBOX";', ("c",)),
    ('keep :flags "a"; fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; fileinto :flags "c" "INBOX"; '
     'keep :flags "d";', ("c",)),
    ('keep; fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; fileinto :copy :flags "c" "INBOX";', ("c",)),
    ('keep; fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; fileinto "INBOX";', ()),
    ('keep; fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; fileinto :flags "c" "inbox";', ("c",)),
    ('keep :flags "a"; fileinto :copy :specialuse "\\\\Junk" :flags "b" "INBOX"; fileinto :flags "c" "INBOX";',
     ("c",)),
    ('fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; keep :flags "a"; fileinto :flags "c" "INBOX"; '
     'keep :flags "d"; fileinto :flags "e" "INBOX";', ("e",)),
    ('setflag "z"; fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; keep; fileinto "INBOX";', ("z",)),
    # guards (right before the fix too): the last fileinto is the :specialuse one
    ('keep; fileinto :flags "c" "INBOX"; fileinto :specialuse "\\\\Junk" :flags "b" "INBOX";', ("b",)),
    ('fileinto :flags "c" "INBOX"; keep; fileinto :specialuse "\\\\Junk" :flags "b" "INBOX";', ("b",)),
    ('keep; fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; fileinto :flags "c" "INBOX"; '
     'fileinto :specialuse "\\\\Junk" :flags "e" "INBOX";', ("e",)),
    ('fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; fileinto :copy :flags "c" "INBOX";', ("c",)),
]

# With a Junk folder the :specialuse fileinto stores there with its own flags and the keep's
# INBOX copy takes the plain fileinto's (RFC 8579 3, RFC 5228 4.1); Dovecot LMTP takes the keep
# for a duplicate of the fileinto's named mailbox and stores only into Junk (allow-listed in
# tests/sieve/test_pigeonhole_probes_s13c.py, ALLOWED_LMTP_JUNK). (script, INBOX, Junk)
JUNK_CASES = [
    ('keep; fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; fileinto :flags "c" "INBOX";',
     [("c",)], [("b",)]),
    ('fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; keep; fileinto :flags "c" "INBOX";',
     [("c",)], [("b",)]),
]


@pytest.mark.parametrize("script, expected", FALLBACK_CASES)
def test_specialuse_fallback_takes_last_fileinto_flags(tmp_path, script, expected):
    _deliver(tmp_path, SU + script)
    assert _inbox_flags(tmp_path / "Maildir") == [expected]
    assert not (tmp_path / "Maildir" / ".Junk").exists()


@pytest.mark.parametrize("script, inbox, junk", JUNK_CASES)
def test_specialuse_folder_keeps_its_own_flags(tmp_path, script, inbox, junk):
    _deliver(tmp_path, SU + script, junk=True)
    assert _inbox_flags(tmp_path / "Maildir") == inbox
    assert _inbox_flags(tmp_path / "Maildir" / ".Junk") == junk


def test_engine_result_carries_the_fallback_flags():
    """The engine keeps the :specialuse fileinto apart from the keep (its folder is known only at
    delivery) and records the later fileinto's flags on it; a later :specialuse fileinto naming
    INBOX takes them back."""
    src = 'require ["fileinto", "imap4flags", "special-use"];\n'
    r = _run(src + 'keep; fileinto :specialuse "\\\\Junk" :flags "b" "INBOX"; fileinto :flags "c" "INBOX";')
    [su] = [a for a in r.actions if getattr(a, "special_use", None)]
    assert (tuple(su.flags), su.fallback_flags) == (("b",), ("c",))
    r = _run(src + 'keep; fileinto :flags "c" "INBOX"; fileinto :specialuse "\\\\Junk" :flags "b" "INBOX";')
    [su] = [a for a in r.actions if getattr(a, "special_use", None)]
    assert (tuple(su.flags), su.fallback_flags) == (("b",), None)


# === 2. INBOX spelled with encoded characters (seed 661177 pair 1247) ============================

EC = 'require ["fileinto", "imap4flags", "copy", "encoded-character"];\n'
ENCODED_CASES = [
    ('fileinto :copy "${hex:69}nbox"; setflag "\\\\Draft a"; keep;', ()),
    ('fileinto :flags "b" "${unicode:49}NBOX"; keep :flags "a";', ("b",)),
]


@pytest.mark.parametrize("script, expected", ENCODED_CASES)
def test_encoded_inbox_flags(tmp_path, script, expected):
    _deliver(tmp_path, EC + script)
    assert _inbox_flags(tmp_path / "Maildir") == [expected]


def _both(script: bytes, message: bytes):
    """The differential's case for `script` and `message`, Owlery's outcome and sieve-test's."""
    assert os.path.exists(pigeonhole.SIEVE_TEST), "sieve-test missing: apt-get install dovecot-sieve"
    case = dataclasses.replace(make_case(1, 0), script=script, message=message, mail_from=SENDER, rcpt_to=USER,
                               orig_rcpt=USER, scripts=())
    ours = run_owlery(case, owlery_settings())
    d = Path(tempfile.mkdtemp(prefix="sieve-s14-"))
    os.chmod(d, 0o755)
    try:
        raw = pigeonhole.Pigeonhole(d / "ph", FOLDERS).run(script, message, SENDER, USER, USER)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return case, ours, from_pigeonhole(raw)


def test_encoded_inbox_pair_is_explained():
    """sieve-test gives the INBOX copy the keep's flags; the deviation (only the INBOX flags taken
    from Owlery's outcome) explains the reduced pair, and nothing else does."""
    script = (EC + ENCODED_CASES[0][0] + "\n").encode()
    case, ours, theirs = _both(script, MESSAGE)
    assert dict(ours.stores)["INBOX"] == ()
    assert dict(theirs.stores)["INBOX"] == ("\\draft", "a")
    assert ours.differences(theirs) == ["stores"]
    devs = load_deviations()
    assert explain(devs, case, ours, theirs) == "inbox-flags-as-delivered-encoded"
    # the plain spelling is inbox-flags-as-delivered's, not this entry's
    plain = dataclasses.replace(case, script=script.replace(b"${hex:69}nbox", b"inbox"))
    assert explain(devs, plain, ours, theirs) == "inbox-flags-as-delivered"


# === 3. a line break between non-ASCII words of a base64 part, added to a field (seed 7777777) ===
#
# RFC 2047 6.2: white space between adjacent encoded-words is not displayed. Pigeonhole writes an
# added value "Grüße" CRLF "ΑΒΓ x" as encoded-words folded at the break, so its field reads
# "GrüßeΑΒΓ x"; Owlery's reads "Grüße ΑΒΓ x" (the unfolded line, RFC 5322 2.2.3). The same as the
# deviation pigeonhole-encoded-words-lose-line-breaks-added, for a part whose text is base64 or
# quoted-printable (the break is not in the raw message).

XA = b'require ["extracttext", "foreverypart", "editheader", "variables", "fileinto"];\n'


@pytest.mark.parametrize("cte, body", [
    (b"base64", base64.encodebytes("Grüße\r\nΑΒΓ x\r\n".encode()).replace(b"\n", b"\r\n")),
    (b"quoted-printable", b"Gr=C3=BC=C3=9Fe\r\n=CE=91=CE=92=CE=93 x\r\n"),
])
def test_encoded_part_line_break_in_added_field(cte, body):
    message = (b"From: a@example.org\r\nTo: user@example.net\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: " + cte + b"\r\n\r\n" + body)
    script = XA + b'foreverypart { extracttext "x"; }\naddheader "X-Added" "${x}";\nfileinto "Archive";\n'
    case, ours, theirs = _both(script, message)

    def added(o):
        return [v for _, fields in o.headers for n, v in fields if n == "x-added"]

    assert added(ours) == ["Grüße ΑΒΓ x"]
    assert added(theirs) == ["GrüßeΑΒΓ x"]
    assert ours.differences(theirs) == ["headers"]
    devs = load_deviations()
    assert explain(devs, case, ours, theirs) == "pigeonhole-encoded-words-lose-line-breaks-added-encoded-part"
    # the same text unencoded is the older entry's
    raw = message.replace(b"Content-Transfer-Encoding: " + cte, b"Content-Transfer-Encoding: 8bit").replace(
        body, "Grüße\r\nΑΒΓ x\r\n".encode())
    assert explain(devs, dataclasses.replace(case, message=raw), ours, theirs) == \
        "pigeonhole-encoded-words-lose-line-breaks-added"


# === Dovecot LMTP: every case above, delivered by Pigeonhole's own delivery =======================


def test_flags_match_dovecot_lmtp():
    """Dovecot LMTP (special-use enabled, Junk configured as \\Junk) delivers each script; Owlery's
    delivery stores the same flags, except where a Junk folder exists (Dovecot stores only into
    it: ALLOWED_LMTP_JUNK in test_pigeonhole_probes_s13c.py)."""
    work = Path(tempfile.mkdtemp(prefix="owlery-s14-", dir="/tmp"))
    try:
        os.chmod(work, 0o755)
        cases = [(SU + s, [e], [], False) for s, e in FALLBACK_CASES]
        cases += [(EC + s, [e], [], False) for s, e in ENCODED_CASES]
        cases += [(SU + s, i, j, True) for s, i, j in JUNK_CASES]
        users = {}
        for n, (script, _, _, junk) in enumerate(cases):
            home = work / f"d{n}"
            (home / "sieve").mkdir(parents=True)
            (home / "sieve" / "active.sieve").write_text(script)
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
            maildir = work / f"d{n}" / "Maildir"
            theirs = (_inbox_flags(maildir), _inbox_flags(maildir / ".Junk"))
            _deliver(work / f"o{n}", script, junk=junk)
            ours = (_inbox_flags(work / f"o{n}" / "Maildir"), _inbox_flags(work / f"o{n}" / "Maildir" / ".Junk"))
            assert ours == (inbox, junk_flags), (script, ours)
            if junk:
                # Dovecot: one copy, in Junk, with the last fileinto's flags
                assert theirs == ([], [("c",)]), (script, theirs)
            else:
                assert theirs == ours, (script, theirs, ours)
    finally:
        shutil.rmtree(work, ignore_errors=True)
