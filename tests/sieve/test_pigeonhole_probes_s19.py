"""Hand-probed behaviours settled against Pigeonhole 0.5.19 (Debian's sieve-test, and Dovecot LMTP
where only a delivery can show them) and the RFCs, in areas the earlier rounds
(test_pigeonhole_probes_s18*.py and before) left out:

1. the duplicate extension (RFC 7352) across deliveries, through Dovecot LMTP: which unique ID a
   message has. Fixed in sieve/extensions/duplicate.py: the default ID is the first msg-id of
   the first Message-ID field without the CFWS, quoting and quoted-pairs around and in it
   (RFC 5322 3.6.4, 3.2.2-3.2.4, 4.5.4: "<a@b> (c)", "( x ) < a @ b >" and '<"a"@b>' are
   "<a@b>"; a field with no "<...@...>" gives no ID and the test is false); a :header ID is the
   field's value decoded (RFC 2047) and unfolded, with white space after the colon dropped and
   the rest kept as written; an omitted :handle is a tracking list apart from :handle ""
   (RFC 7352 3.2). Within one run (sieve-test): agreement pins;
2. fileinto :create and mailboxexists with odd mailbox names (RFC 5228 4.1, RFC 5490 3): hierarchy
   separators, INBOX in any case, "&", 8-bit and control characters (agreement pins; NUL and DEL
   allow-listed);
3. set modifiers on non-ASCII and edge strings (RFC 5229 4.1, RFC 5435 6): agreement pins;
4. imap4flags flag lists held in variables (RFC 5232 3 and 4): parsing, duplicates and case,
   invalid flags, hasflag with :count, :value, :matches and :contains over variables (agreement
   pins);
5. relational :count over address lists (RFC 5231 4.2, RFC 5228 2.7.4) with groups, empty
   members and fields that are no address list (agreement pins);
6. reject reasons and reject beside other actions (RFC 5429 2.1): agreement pins.

Each topic has fixed expectations checked against Owlery alone and a `_against_sieve_test` (or
`_against_dovecot_lmtp`) test that checks Pigeonhole gives the same, one sieve-test run a case
(one Dovecot for all the delivery sequences). Where Pigeonhole and the RFC disagree, Owlery
follows the RFC and the ALLOWED_* tables say why.
"""

from __future__ import annotations

import email
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from owlery.settings import parse_text
from owlery.state.memory_store import MemoryStore
from sieve.delivery.executor import DeliveryExecutor
from sieve.delivery.users import MailUser
from tests.harness.dovecot import DovecotInstance
from tests.sieve.differential import pigeonhole, runner
from tests.sieve.differential.generator import FOLDERS, Case
from tests.sieve.differential.normalise import from_pigeonhole
from tests.sieve.test_outgoing_parity import Recorder

SENDER = "sender@example.com"
USER = "rcpt@example.org"
SETTINGS = runner.owlery_settings()
PLAIN = b"From: a@example.org\r\nTo: rcpt@example.org\r\nSubject: hi\r\nMessage-ID: <m1@example.org>\r\n\r\nbody\r\n"
N = ':comparator "i;ascii-numeric"'


@pytest.fixture(scope="module")
def ph():
    assert os.path.exists(pigeonhole.SIEVE_TEST), "sieve-test missing: apt-get install dovecot-sieve"
    d = Path(tempfile.mkdtemp(prefix="sieve-s19-"))
    os.chmod(d, 0o755)  # sieve-test runs as nobody when the tests run as root
    try:
        yield pigeonhole.Pigeonhole(d / "ph", FOLDERS)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _case(script: str, message: bytes) -> Case:
    return Case(0, 0, script.encode(), message, SENDER, USER, USER, frozenset())


def _ours(script: str, message: bytes = PLAIN):
    """Owlery's outcome, as the differential runner reads it (its mail store: INBOX and FOLDERS)."""
    return runner.run_owlery(_case(script, message), SETTINGS)


def _theirs(ph, script: str, message: bytes = PLAIN):
    return from_pigeonhole(ph.run(script.encode(), message, SENDER, USER, USER))


def _boxes(o) -> tuple[str, ...] | str:
    """The mailboxes a run stored into, or its status when it did not end well."""
    return tuple(box for box, _ in o.stores) if o.status == "ok" else o.status


def _added(o, name: str) -> str | None:
    """The value of the field `name` the script added to the copy it kept."""
    for _, fields in o.headers:
        for n, v in fields:
            if n == name:
                return v
    return None


def _compare(ph, cases, observe, allowed: dict) -> None:
    """Pigeonhole gives each case's expected observation (`observe(outcome)`), but the
    `allowed` ones, which give the value listed there (and no other case may differ)."""
    differ = {}
    for name, script, message, expected in cases:
        got = observe(_theirs(ph, script, message))
        if got != expected:
            differ[name] = got
    assert differ == {name: value for name, (value, _reason) in allowed.items()}


# === 1. duplicate =================================================================================
#
# RFC 7352 3: a message's unique ID is recorded once its delivery succeeded, and a later delivery
# with that ID (and the same handle) finds it. 3.1: the ID is the content of the Message-ID field,
# or of the :header field, or the :uniqueid string. The content of a Message-ID field is its msg-id
# (RFC 5322 3.6.4); the CFWS around it and inside its obsolete form (4.5.4: obs-id-left is a
# local-part, "a . b" is "a.b") is no part of it, nor are a quoted-string's quotes and a
# quoted-pair's backslash (3.2.4, 3.2.1). Dovecot LMTP reads the field so: text before the first
# "<" is skipped, and a "<...>" without "@" is passed over for the next one; a field with none has
# no ID (the test is false and nothing is recorded). A :header field's content is its value as the
# header test reads it (RFC 2047 decoded, unfolded), from its first non-blank character to its end:
# Dovecot keeps white space at its end ("v " is not "v"). 3.2: :handle separates a test from tests
# with a different or omitted handle, so :handle "" is not the omitted handle.
# Each sequence is delivered to one user, message after message (message i has Subject "i"); the
# expected string names where each landed (Dup: the test was true), "-" for a discarded one.

DR = 'require ["fileinto", "duplicate", "variables", "mailbox"];\n'


def _dup(args: str = "") -> str:
    return DR + f'if duplicate{args} {{ fileinto :create "Dup"; }}'


def _split(first: str, other: str) -> str:
    """Message 1 runs the test `first`, the others `other`."""
    return (DR + f'if header :is "subject" "1" {{ if {first} {{ fileinto :create "Dup"; }} }} '
            f'else {{ if {other} {{ fileinto :create "Dup"; }} }}')


def _ids(*values: str) -> list[list[str]]:
    return [[f"Message-ID: {v}"] for v in values]


# (name, script, each message's extra fields, where each landed)
DUP_SEQUENCES = [
    ("same id", _dup(), _ids("<a@b>", "<a@b>"), "INBOX Dup"),
    ("case differs", _dup(), _ids("<A@B>", "<a@b>", "<a@B>"), "INBOX INBOX INBOX"),
    ("comment after", _dup(), _ids("<a@b> (c)", "<a@b>", "(x) <a@b>"), "INBOX Dup Dup"),
    ("nested and unclosed comments", _dup(), _ids("((x)) <a@b>", "(x <a@b>"), "INBOX Dup"),
    ("white space around", _dup(), _ids("  <a@b>  ", "<a@b>", "\t<a@b>"), "INBOX Dup Dup"),
    ("white space inside", _dup(), _ids("< a@b >", "<a@b>", "<a @ b>", "<a . b@c . d>", "<a.b@c.d>"),
     "INBOX Dup Dup INBOX Dup"),
    ("folded", _dup(), _ids("\r\n <a@b>", "<a@b>"), "INBOX Dup"),
    ("comment inside", _dup(), _ids("<a(c)@b>", "<a@b>", "<a@(c)b>"), "INBOX Dup Dup"),
    # white space in a quoted-string is its content; outside one it is CFWS ("<a b@c>" is "<ab@c>")
    ("quoted local part", _dup(), _ids('<"ab"@c>', "<ab@c>", '<"a\\b"@c>', '<"a b"@c>', "<a b@c>"),
     "INBOX Dup Dup INBOX Dup"),
    ("domain literal", _dup(), _ids("<a@[ 1.2.3.4 ]>", "<a@[1.2.3.4]>"), "INBOX Dup"),
    ("quoted domain is no msg-id", _dup(), _ids('<a@"b">', '<a@"b">'), "INBOX INBOX"),
    ("text before", _dup(), _ids("junk <a@b>", "<a@b>"), "INBOX Dup"),
    ("no @ passed over", _dup(), _ids("<bad> <a@b>", "<a@b>", "<ab>", "<ab>", "<>", "<>"),
     "INBOX Dup INBOX INBOX INBOX INBOX"),
    ("text after", _dup(), _ids("<a@b> junk", "<a@b>"), "INBOX Dup"),
    ("two msg-ids in one field", _dup(), _ids("<a@b> <c@d>", "<a@b>", "<c@d>"), "INBOX Dup INBOX"),
    ("no angle brackets", _dup(), _ids("a@b", "<a@b>", "a@b"), "INBOX INBOX INBOX"),
    ("never closed", _dup(), _ids("<a@b", "<a@b"), "INBOX INBOX"),
    ("encoded word", _dup(), _ids("=?utf-8?q?=3Ca@b=3E?=", "<a@b>", "=?utf-8?q?=3Ca@b=3E?="), "INBOX INBOX INBOX"),
    ("empty and blank", _dup(), _ids("", "", " "), "INBOX INBOX INBOX"),
    ("no field", _dup(), [[], []], "INBOX INBOX"),
    ("first field has none", _dup(), [["Message-ID: junk", "Message-ID: <a@b>"], ["Message-ID: <a@b>"],
                                       ["Message-ID: junk", "Message-ID: <a@b>"]], "INBOX INBOX INBOX"),
    ("first field counts", _dup(), [["Message-ID: <x@y>", "Message-ID: <a@b>"], ["Message-ID: <a@b>"],
                                     ["Message-ID: <x@y>"]], "INBOX INBOX Dup"),
    ("loose local parts", _dup(), _ids("<a,b@c>", "<a,b@c>", "<a..b@c>", "<a..b@c>", "<@b>", "<@b>"),
     "INBOX Dup INBOX Dup INBOX Dup"),
    ("8-bit", _dup(), _ids("<\u00e9@b>", "<\u00e9@b>", "<\u00c9@b>"), "INBOX Dup INBOX"),
    (":header value", _dup(' :header "X-Id"'), [["X-Id: v"], ["X-Id: V"], ["X-Id: v"], ["x-id:   v"]],
     "INBOX INBOX Dup Dup"),
    (":header keeps trailing white space", _dup(' :header "X-Id"'),
     [["X-Id: v "], ["X-Id: v"], ["X-Id: v  "], ["X-Id: v\t"], ["X-Id: v "]], "INBOX INBOX INBOX INBOX Dup"),
    (":header unfolded", _dup(' :header "X-Id"'), [["X-Id: a b"], ["X-Id: a\r\n b"], ["X-Id: a  b"]],
     "INBOX Dup INBOX"),
    (":header unfolded, a TAB", _dup(' :header "X-Id"'), [["X-Id: a b"], ["X-Id: a\r\n\tb"]], "INBOX INBOX"),
    (":header decoded", _dup(' :header "X-Id"'),
     [["X-Id: v"], ["X-Id: =?utf-8?q?v?="], ["X-Id: =?utf-8?b?dg==?="]], "INBOX Dup Dup"),
    (":header comment kept", _dup(' :header "X-Id"'), [["X-Id: v (c)"], ["X-Id: v"]], "INBOX INBOX"),
    (":header empty", _dup(' :header "X-Id"'), [["X-Id:"], ["X-Id:"], ["X-Id: "]], "INBOX Dup Dup"),
    (":header first field", _dup(' :header "X-Id"'), [["X-Id: a", "X-Id: b"], ["X-Id: b"], ["X-Id: a"]],
     "INBOX INBOX Dup"),
    (":header missing", _dup(' :header "X-Id"'), [[], []], "INBOX INBOX"),
    (":header Message-ID as written", _dup(' :header "Message-ID"'),
     _ids("<a@b> (c)", "<a@b>", "<a@b> ", "<a@b> "), "INBOX INBOX INBOX Dup"),
    (":header Message-ID and the default", _split("duplicate", 'duplicate :header "message-id"'),
     _ids("<a@b>", "<a@b>"), "INBOX Dup"),
    (":uniqueid and the default", _split("duplicate", 'duplicate :uniqueid "<a@b>"'),
     _ids("<a@b>", "<a@b>"), "INBOX Dup"),
    (":uniqueid and :header", _split('duplicate :header "x-id"', 'duplicate :uniqueid "v"'),
     [["X-Id: v"], ["X-Id: v"]], "INBOX Dup"),
    (":uniqueid as written", _split('duplicate :uniqueid "v"', 'duplicate :uniqueid " v "'), [[], []], "INBOX INBOX"),
    (":uniqueid empty", _dup(' :uniqueid ""'), [[], []], "INBOX Dup"),
    (":handle separates", DR + 'if header :is "subject" ["1", "3"] { if duplicate :handle "a" '
     '{ fileinto :create "Dup"; } } else { if duplicate :handle "b" { fileinto :create "Dup"; } }',
     _ids("<a@b>", "<a@b>", "<a@b>", "<a@b>"), "INBOX INBOX Dup Dup"),
    (":handle empty is a handle", _split('duplicate :handle ""', "duplicate"), _ids("<a@b>", "<a@b>", "<a@b>"),
     "INBOX INBOX Dup"),
    ("omitted :handle is no handle", _split("duplicate", 'duplicate :handle ""'), _ids("<a@b>", "<a@b>", "<a@b>"),
     "INBOX INBOX Dup"),
    (":handle case", _split('duplicate :handle "h"', 'duplicate :handle "H"'), _ids("<a@b>", "<a@b>"), "INBOX INBOX"),
    ("recorded though discarded", DR + 'if duplicate { fileinto :create "Dup"; } '
     'elsif header :is "subject" "1" { discard; }', _ids("<a@b>", "<a@b>"), "- Dup"),
    ("recorded only when tested", DR + 'if header :is "subject" "1" { keep; } elsif duplicate '
     '{ fileinto :create "Dup"; }', _ids("<a@b>", "<a@b>", "<a@b>"), "INBOX INBOX Dup"),
    ("not recorded when the run fails", DR + 'if duplicate { fileinto :create "Dup"; } '
     'elsif header :is "subject" "1" { set "x" ""; redirect "${x}"; }', _ids("<a@b>", "<a@b>"), "INBOX INBOX"),
]
ALLOWED_DUP_LMTP = {
    ":header unfolded, a TAB": ("INBOX Dup", "Dovecot turns the TAB after a fold into a space; RFC 5322 2.2.3: "
                                "unfolding removes the CRLF only, so the value is 'a<TAB>b', not 'a b' "
                                "(deviations.toml: unfold-keeps-tab)"),
}


def _message(subject: str, fields: list[str]) -> bytes:
    return (f"From: a@example.org\r\nTo: {USER}\r\nSubject: {subject}\r\n" + "".join(f + "\r\n" for f in fields)
            + "\r\nbody\r\n").encode()


def _landed(maildir: Path, count: int) -> str:
    """Where each of messages 1..count is, from the Subject of each file in INBOX and Dup."""
    where: dict[str, list[str]] = {}
    for box, d in (("INBOX", maildir), ("Dup", maildir / ".Dup")):
        for sub in ("new", "cur"):
            if (d / sub).is_dir():
                for entry in os.scandir(d / sub):
                    with open(entry.path, "rb") as f:
                        where.setdefault(email.message_from_binary_file(f)["subject"], []).append(box)
    return " ".join("+".join(sorted(where.get(str(i), ["-"]))) for i in range(1, count + 1))


def _deliver_sequence(home: Path, script: str, messages: list[list[str]]) -> str:
    """Owlery's delivery of each message in turn (one state store: the tracking list)."""
    (home / "Maildir").mkdir(parents=True)
    (home / "user.sieve").write_text(script)
    ex = DeliveryExecutor(parse_text(f'sieve_postmaster_address = "{pigeonhole.POSTMASTER}"\n'),
                          submitter=Recorder(), state=MemoryStore(), program="test")
    user = MailUser(USER, str(home / "Maildir"), str(home / "user.sieve"))
    for n, fields in enumerate(messages, 1):
        ex.deliver(_message(str(n), fields), SENDER, USER, user, original_recipient=USER)
    return _landed(home / "Maildir", len(messages))


@pytest.mark.parametrize("name, script, messages, expected", DUP_SEQUENCES, ids=[s[0] for s in DUP_SEQUENCES])
def test_duplicate_across_deliveries(tmp_path, name, script, messages, expected):
    assert _deliver_sequence(tmp_path, script, messages) == expected


def test_duplicate_across_deliveries_against_dovecot_lmtp():
    work = Path(tempfile.mkdtemp(prefix="owlery-s19-", dir="/tmp"))
    try:
        os.chmod(work, 0o755)
        users = {}
        for n, (_, script, _, _) in enumerate(DUP_SEQUENCES):
            home = work / f"d{n}"
            (home / "sieve").mkdir(parents=True)
            (home / "sieve" / "active.sieve").write_text(script)
            users[f"d{n}@example.org"] = str(home)
        with DovecotInstance(work / "dovecot", users) as dv:
            for n, (_, _, messages, _) in enumerate(DUP_SEQUENCES):
                for i, fields in enumerate(messages, 1):
                    dv.lmtp_send(SENDER, f"d{n}@example.org", _message(str(i), fields))
        differ = {}
        for n, (name, _, messages, expected) in enumerate(DUP_SEQUENCES):
            got = _landed(work / f"d{n}" / "Maildir", len(messages))
            if got != expected:
                differ[name] = got
        assert differ == {name: value for name, (value, _) in ALLOWED_DUP_LMTP.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# Within one run (sieve-test has no tracking list: every first test is false). A test repeated in
# one run is deviations.toml's duplicate-repeated, not probed here.
DUP_RUN_CASES = [
    ("plain", "duplicate", ("INBOX",)),
    ("not", "not duplicate", ("Foo",)),
    ("no Message-ID", 'not duplicate :header "x-nope"', ("Foo",)),
    (":header empty", 'duplicate :header "X-Empty"', ("INBOX",)),
    (":uniqueid empty", 'duplicate :uniqueid ""', ("INBOX",)),
    (":handle :seconds 0", 'duplicate :handle "h" :seconds 0', ("INBOX",)),
    (":last", "duplicate :last :seconds 1", ("INBOX",)),
    (":seconds past the maximum", "duplicate :seconds 99999999999", ("INBOX",)),
    ("two handles", 'anyof(duplicate :handle "a", duplicate :handle "b")', ("INBOX",)),
    (":header with :uniqueid", 'duplicate :header "a" :uniqueid "b"', "compile-error"),
    ("invalid header name", 'not duplicate :header "X Id"', ("Foo",)),
]
DUP_RUN = [(name, 'require ["fileinto", "duplicate"];\n' + f'if {test} {{ fileinto "Foo"; }}',
            PLAIN.replace(b"\r\n\r\n", b"\r\nX-Empty:\r\n\r\n"), expected) for name, test, expected in DUP_RUN_CASES]


@pytest.mark.parametrize("name, script, message, expected", DUP_RUN, ids=[c[0] for c in DUP_RUN])
def test_duplicate_within_a_run(name, script, message, expected):
    assert _boxes(_ours(script, message)) == expected


def test_duplicate_within_a_run_against_sieve_test(ph):
    _compare(ph, DUP_RUN, _boxes, {})


# === 2. mailbox names =============================================================================
#
# RFC 5228 4.1 leaves valid names to the store; RFC 5490 3.2's mailboxexists names a mailbox as
# fileinto would. Both stores (Dovecot's Maildir++ and owlery.maildir) take "." as the hierarchy
# separator, refuse an empty level and a name starting with "~", read INBOX in any case (RFC 3501
# 5.1) but no other name, and keep "&" and 8-bit names as written (modified UTF-7 on disk only).
# A control character fails the store (fileinto :create: the run keeps into INBOX). fileinto ""
# stores into INBOX in both. A name fileinto :create asked for exists for no mailboxexists of the
# same run (the store creates it once the script ran). ("error": the run failed and kept.)

MR = 'require ["fileinto", "mailbox", "variables", "encoded-character"];\n'
CREATE_CASES = [
    ("a.b", ("a.b",)), ("INBOX.sub", ("INBOX.sub",)), ("inbox.sub", ("INBOX.sub",)), ("Inbox.Sub", ("INBOX.Sub",)),
    ("INBOX", ("INBOX",)), ("iNbOx", ("INBOX",)), ("INBOX.INBOX", ("INBOX.INBOX",)), ("Caf\u00e9", ("Caf\u00e9",)),
    ("&AOk-", ("&AOk-",)), ("a&b", ("a&b",)), ("&", ("&",)), ("", ("INBOX",)), (".a", "error"), ("a.", "error"),
    ("a..b", "error"), ("INBOX.", "error"), ("~a", "error"), ("x" * 300, "error"), ("a b", ("a b",)),
    (" a", (" a",)), ("a ", ("a ",)), ("a%b", ("a%b",)), ("a*b", ("a*b",)), ('a\\"b', ('a"b',)),
    ("a\\\\b", ("a\\b",)), ("#a", ("#a",)), ("-", ("-",)), ("foo", ("foo",)), ("FOO.sub", ("FOO.sub",)),
    ("Foo.Sub.Deep", ("Foo.Sub.Deep",)), ("Sp\u00e9", ("Sp\u00e9",)), ("sp\u00e9", ("sp\u00e9",)),
    ("Spe\u0301", ("Spe\u0301",)), ("\u65e5\u672c", ("\u65e5\u672c",)), ("${hex:09}", "error"),
    ("a${hex:0a}b", "error"), ("a${hex:1f}b", "error"), ("${hex:c2 80}", ("\x80",)),
    ("${unicode:2028}", ("\u2028",)), ("${unicode:feff}x", ("\ufeffx",)), ("${hex:ff}", "compile-error"),
    ("${hex:00}", "error"), ("a${hex:00}b", "error"), ("${hex:7f}", "error"), ("a${hex:7f}", "error"),
]
MAILBOX_CASES = [
    ('fileinto "inbox";', ("INBOX",)),
    ('fileinto "foo";', "error"),
    ('fileinto "Foo.sub";', "error"),
    ('fileinto "Foo.Sub";', ("Foo.Sub",)),
    ('fileinto "sp\u00e9";', "error"),
    ('fileinto "INBOX.Foo";', "error"),
    ('fileinto :create "New"; if mailboxexists "New" { fileinto "Foo"; }', ("New",)),
    ('if mailboxexists "foo" { fileinto "Bar"; }', ("INBOX",)),
    ('if mailboxexists "inBOX" { fileinto "Bar"; }', ("Bar",)),
    ('if mailboxexists "Spe\u0301" { fileinto "Bar"; }', ("INBOX",)),
    ('if mailboxexists ["Foo", "Nope"] { fileinto "Bar"; }', ("INBOX",)),
    ('if mailboxexists ["Foo", "Sp\u00e9", "Foo.Sub"] { fileinto "Bar"; }', ("Bar",)),
    ('if mailboxexists "Foo." { fileinto "Bar"; }', ("INBOX",)),
    ('if mailboxexists ".Foo" { fileinto "Bar"; }', ("INBOX",)),
    ('if mailboxexists "Foo..Sub" { fileinto "Bar"; }', ("INBOX",)),
    ('if mailboxexists "INBOX." { fileinto "Bar"; }', ("INBOX",)),
    ('fileinto :create "N1"; fileinto :create "n1";', ("N1", "n1")),
    ('fileinto :create "Foo"; fileinto "Foo";', ("Foo",)),
    ('set "m" "Foo"; fileinto :create "${m}.${m}";', ("Foo.Foo",)),
]
MAILBOXES = ([(f"create {name!r}", MR + f'fileinto :create "{name}";', PLAIN, expected)
              for name, expected in CREATE_CASES]
             + [(body, MR + body, PLAIN, expected) for body, expected in MAILBOX_CASES])
ALLOWED_MAILBOX = {
    "create '${hex:00}'": (("INBOX",), "Pigeonhole cuts the name at the NUL (a C string) and stores into INBOX, as "
                           "for \"\"; RFC 3501 5.1 and RFC 5198 2: a mailbox name holds no NUL, so the store fails"),
    "create 'a${hex:00}b'": (("a",), "Pigeonhole cuts the name at the NUL and stores into \"a\"; RFC 3501 5.1, "
                             "RFC 5198 2: a name with a NUL is no mailbox name"),
    "create '${hex:7f}'": (("\x7f",), "Dovecot refuses only the C0 controls; DEL is a control character too "
                           "(RFC 5234 B.1 CTL, RFC 5198 2), which owlery.maildir refuses in a name"),
    "create 'a${hex:7f}'": (("a\x7f",), "as for a lone DEL (RFC 5234 B.1, RFC 5198 2)"),
}


@pytest.mark.parametrize("name, script, message, expected", MAILBOXES, ids=[c[0] for c in MAILBOXES])
def test_mailbox_names(name, script, message, expected):
    assert _boxes(_ours(script, message)) == expected


def test_mailbox_names_against_sieve_test(ph):
    _compare(ph, MAILBOXES, _boxes, ALLOWED_MAILBOX)


# === 3. set modifiers =============================================================================
#
# RFC 5229 4.1: :lower, :upper, :lowerfirst and :upperfirst change letters as both engines do, the
# US-ASCII ones only ("straße" stays "STRAßE", "É" stays); :length counts characters (UTF-8
# octets of one character count once); :quotewildcard puts a backslash before "*", "?" and "\";
# precedence 40 (case) > 30 (first) > 20 (quotewildcard) > 15 (encodeurl, RFC 5435 6) > 10
# (length). :encodeurl leaves ALPHA, DIGIT, "-", ".", "_", "~" and percent-encodes the rest, UTF-8
# octet by octet.

VR = 'require ["editheader", "variables", "encoded-character", "enotify"];\n'
MODIFIER_CASES = [
    (":upper", "stra\u00dfe", "STRA\u00dfE"), (":upper", "\u00e9cole", "\u00e9COLE"), (":upper", "\u0131i", "\u0131I"),
    (":upper", "\U0001F600a", "\U0001F600A"), (":lower", "\u00c9COLE", "\u00c9cole"), (":lower", "\u0130X", "\u0130x"),
    (":lower", "\u03a3\u0391\u03a3", "\u03a3\u0391\u03a3"), (":lower", "ABC-\u00c0", "abc-\u00c0"),
    (":upperfirst", "\u00e9cole", "\u00e9cole"), (":upperfirst", "\u01c6x", "\u01c6x"), (":upperfirst", "\ufb01x", "\ufb01x"),
    (":upperfirst", "", ""), (":upperfirst", "1abc", "1abc"), (":upperfirst", " x", " x"),
    (":lowerfirst", "\u00c9COLE", "\u00c9COLE"), (":lowerfirst", "ABC", "aBC"), (":lowerfirst", "", ""),
    (":length", "\u00e9", "1"), (":length", "", "0"), (":length", "a\u20acb", "3"), (":length", "\U0001F600", "1"),
    (":length", "e\u0301", "2"), (":length", "a${hex:00}b", "3"),
    (":quotewildcard", "a*b?c\\\\d", "a\\*b\\?c\\\\d"), (":quotewildcard", "\u00e9*", "\u00e9\\*"),
    (":quotewildcard", "**", "\\*\\*"), (":quotewildcard", "", ""), (":quotewildcard", "[a]{b}", "[a]{b}"),
    (":encodeurl", "a b&c=d/\u00e9~-._", "a%20b%26c%3Dd%2F%C3%A9~-._"),
    (":encodeurl", "%+;:@$,[]#", "%25%2B%3B%3A%40%24%2C%5B%5D%23"), (":encodeurl", "!*'()", "%21%2A%27%28%29"),
    (":encodeurl", "", ""), (":encodeurl", "\U0001F600", "%F0%9F%98%80"),
    (":upper :encodeurl", "\u00e9a", "%C3%A9A"), (":upperfirst :lower", "aBC", "Abc"),
    (":lowerfirst :upper", "abc", "aBC"), (":quotewildcard :length", "a*?", "5"), (":encodeurl :length", "\u00e9 ", "9"),
    (":quotewildcard :upper", "a*b", "A\\*B"), (":encodeurl :quotewildcard", "a*b", "a%5C%2Ab"),
    (":length :upper", "abc", "3"), (":upperfirst :lower :quotewildcard", "xY*", "Xy\\*"),
]
MODIFIERS = [(f"{mods} {value!r}", VR + f'set {mods} "v" "{value}"; addheader "X-V" "<${{v}}>"; keep;', PLAIN,
              f"<{expected}>") for mods, value, expected in MODIFIER_CASES]


def _x_v(o) -> str | None:
    return _added(o, "x-v")


@pytest.mark.parametrize("name, script, message, expected", MODIFIERS, ids=[c[0] for c in MODIFIERS])
def test_set_modifiers(name, script, message, expected):
    assert _x_v(_ours(script, message)) == expected


def test_set_modifiers_against_sieve_test(ph):
    _compare(ph, MODIFIERS, _x_v, {})


# === 4. flag lists in variables ===================================================================
#
# RFC 5232 3: setflag/addflag/removeflag on a variable read each string as space-separated flags;
# a flag that is no flag (an invalid system flag, a keyword with a character atoms forbid or
# 8-bit octets, a TAB inside) is left out, repeats (in any case: 5 "flags are case-insensitive")
# are kept once, as first written. A variable `set` holds its text as written until a flag
# command rewrites it. 4: hasflag matches each flag of the variables against the keys; :count
# counts the flags (a `set` variable's repeats too).

FR = 'require ["editheader", "variables", "imap4flags", "fileinto", "relational", "comparator-i;ascii-numeric", ' \
     '"regex", "mailbox"];\n'
FLAG_VALUE_CASES = [
    ('setflag "f" "a a b";', "a b"), ('setflag "f" "a A b B";', "a b"), ('setflag "f" ["a", "A", "a b"];', "a b"),
    ('setflag "f" "a"; addflag "f" "A";', "a"), ('setflag "f" "a"; addflag "f" ["b", "c a"];', "a b c"),
    ('setflag "f" "a b"; removeflag "f" "A";', "b"), ('setflag "f" "a b"; removeflag "f" ["b", "a"];', ""),
    ('setflag "f" "a"; removeflag "f" "z";', "a"), ('setflag "f" "  a   b  ";', "a b"), ('setflag "f" "a\tb";', ""),
    ('setflag "f" "";', ""), ('setflag "f" "a"; addflag "f" "";', "a"), ('set "f" "x  y x"; addflag "f" "z";', "x y x z"),
    ('set "f" "x  y X"; removeflag "f" "y";', "x X"), ('setflag "f" "\\\\SEEN \\\\seen";', "\\SEEN"),
    ('setflag "f" "\\\\Foo a";', "a"), ('setflag "f" "a b\\\\";', "a"), ('setflag "f" "a(b c)";', ""),
    ('setflag "f" "a* %b";', ""), ('setflag "f" "a\\"b";', ""), ('setflag "f" "a] {b";', ""),
    ('setflag "f" "caf\u00e9 \u00c9";', ""), ('addflag "f" "a";', "a"), ('removeflag "f" "a";', ""),
    ('addflag "f" "\\\\Recent a";', "a"), ('setflag "f" "a b c"; removeflag "f" " b   c ";', "a"),
    ('set "f" "\\\\Seen \\\\FLAGGED"; removeflag "f" "\\\\flagged";', "\\Seen"),
]
HASFLAG_CASES = [
    (f'setflag "f" "a a b"; if hasflag :count "eq" {N} "f" "2" {{ fileinto "Foo"; }}', ("Foo",)),
    (f'setflag "f" "a A"; if hasflag :count "eq" {N} "f" "1" {{ fileinto "Foo"; }}', ("Foo",)),
    (f'set "f" "a a b"; if hasflag :count "eq" {N} "f" "3" {{ fileinto "Foo"; }} '
     f'elsif hasflag :count "eq" {N} "f" "2" {{ fileinto "Bar"; }}', ("Bar",)),
    (f'set "f" ""; if hasflag :count "eq" {N} "f" "0" {{ fileinto "Foo"; }}', ("Foo",)),
    (f'if hasflag :count "eq" {N} "f" "0" {{ fileinto "Foo"; }}', ("Foo",)),
    (f'set "f" "a b"; set "g" "b c"; if hasflag :count "eq" {N} ["f", "g"] "4" {{ fileinto "Foo"; }} '
     f'elsif hasflag :count "eq" {N} ["f", "g"] "3" {{ fileinto "Bar"; }}', ("Foo",)),
    (f'setflag "a b c"; if hasflag :count "eq" {N} "3" {{ fileinto "Foo"; }}', ("Foo",)),
    (f'addflag ["a", "b"]; if hasflag :count "gt" {N} "1" {{ fileinto "Foo"; }}', ("Foo",)),
    (f'set "f" "3"; if hasflag :value "eq" {N} "f" "3" {{ fileinto "Foo"; }}', ("Foo",)),
    (f'set "f" "10 2"; if hasflag :value "lt" {N} "f" "3" {{ fileinto "Foo"; }}', ("Foo",)),
    ('set "f" "abc def"; if hasflag :matches "f" "a*" { fileinto "Foo"; }', ("Foo",)),
    ('set "f" "abc def"; if hasflag :matches "f" "abc*def" { fileinto "Foo"; }', ("INBOX",)),
    ('set "f" "abc def"; if hasflag :matches "f" "* *" { fileinto "Foo"; }', ("INBOX",)),
    ('set "f" "abc def"; if hasflag :matches "f" "*e*" { fileinto :create "${1}"; }', ("d",)),
    ('set "f" "abc def"; if hasflag :contains "f" "c d" { fileinto "Foo"; }', ("Foo",)),
    ('set "f" "abc def"; if hasflag :contains "f" "e" { fileinto "Foo"; }', ("Foo",)),
    ('set "f" "Abc"; if hasflag :is "f" "aBC" { fileinto "Foo"; }', ("Foo",)),
    ('set "f" "Abc"; if hasflag :is :comparator "i;octet" "f" "aBC" { fileinto "Foo"; }', ("INBOX",)),
    ('set "f" ""; if hasflag :is "f" "" { fileinto "Foo"; }', ("INBOX",)),
    ('set "f" "a"; if hasflag :is "f" "" { fileinto "Foo"; }', ("INBOX",)),
    ('set "f" "a b"; if hasflag "f" "b a" { fileinto "Foo"; }', ("Foo",)),
    ('set "f" "a b"; if hasflag "f" "a z" { fileinto "Foo"; }', ("Foo",)),
    ('set "f" "ab cd"; if hasflag :regex "f" "^c" { fileinto "Foo"; }', ("Foo",)),
    ('set "n" "f"; set "f" "a"; if hasflag "${n}" "a" { fileinto "Foo"; }', "compile-error"),
    ('setflag "x y"; removeflag "x"; if hasflag :matches "*" { fileinto "Foo"; }', ("Foo",)),
    (f'setflag "x"; removeflag "x"; if hasflag :count "eq" {N} "0" {{ fileinto "Foo"; }}', ("Foo",)),
]
FLAGS = ([(body, FR + body + ' addheader "X-F" "<${f}>"; keep;', PLAIN, f"<{expected}>")
          for body, expected in FLAG_VALUE_CASES]
         + [(body, FR + body, PLAIN, expected) for body, expected in HASFLAG_CASES])


def _flags_seen(o):
    """What a flag case shows: the X-F field it added, else where it stored."""
    return _added(o, "x-f") or _boxes(o)


@pytest.mark.parametrize("name, script, message, expected", FLAGS, ids=[c[0] for c in FLAGS])
def test_flag_lists_in_variables(name, script, message, expected):
    assert _flags_seen(_ours(script, message)) == expected


def test_flag_lists_in_variables_against_sieve_test(ph):
    _compare(ph, FLAGS, _flags_seen, {})


# === 5. relational :count over address lists ======================================================
#
# RFC 5231 4.2: :count counts the values the test would compare; for address, the addresses of
# every field named, whichever address part (RFC 5228 2.7.4: a field that holds no address list
# gives one value, the field itself; a group gives its members; a comment alone, nothing). One
# script a field: the count under :all :localpart :domain :user :detail, and whether the header
# test counts one field.

AR = 'require ["editheader", "variables", "relational", "comparator-i;ascii-numeric", "subaddress"];\n'
_PARTS = (":all", ":localpart", ":domain", ":user", ":detail")
COUNT_SCRIPT = AR + "".join(
    f'if address :count "eq" {N} {p} ["to", "cc"] "{k}" {{ set "c{p[1:]}" "{k}"; }}\n' for p in _PARTS for k in range(7)
) + (f'if header :count "eq" {N} ["to", "cc"] "1" {{ set "h" "1"; }} else {{ set "h" "n"; }}\n'
     'addheader "X-C" "${call} ${clocalpart} ${cdomain} ${cuser} ${cdetail} ${h}"; keep;')
COUNT_CASES = [
    ("To: a@x, b@y", "2 2 2 2 2 1"), ("To: grp: a@x, b@y;", "2 2 2 2 2 1"), ("To: grp:;", "1 1 1 1 1 1"),
    ("To: grp:; c@z", "1 1 1 1 1 1"), ("To: a@x, , b@y", "2 2 2 2 2 1"), ("To: ,", "1 1 1 1 1 1"),
    ("To: <>", "1 1 1 1 1 1"), ('To: "" <>', "1 1 1 1 1 1"), ("To: undisclosed-recipients:;", "1 1 1 1 1 1"),
    ("To: a@x\r\nTo: b@y, c@z", "3 3 3 3 3 n"), ("To: a@x\r\nCc: b+d@y", "2 2 2 2 2 n"), ("To: a", "1 1 1 1 1 1"),
    ("To: @x", "1 1 1 1 1 1"), ("To: a@", "1 1 1 1 1 1"), ("To: (c)", "0 0 0 0 0 1"), ("To: ", "1 1 1 1 1 1"),
    ("To: g1: a@x;, g2: b@y, c@z;", "3 3 3 3 3 1"), ('To: a@x (c), "q, r" <b@y>', "2 2 2 2 2 1"),
    ("To: a@x; b@y", "1 1 1 1 1 1"), ("To: <a@x>, <b@y", "1 1 1 1 1 1"), ("To: a@x b@y", "1 1 1 1 1 1"),
    ("To: =?utf-8?q?a?= <a@x>, b@y", "2 2 2 2 2 1"), ("To: g: <>;", "1 1 1 1 1 1"),
    ('To: "a"@x, a@x', "2 2 2 2 2 1"), ("To: a+b@x, a+@x, +b@x", "3 3 3 3 3 1"), ('To: a+b+c@x, "a+"@x', "2 2 2 2 2 1"),
    ("Cc: g: a@x, (c) ;, b@y", "2 2 2 2 2 1"), ("To: <@r1,@r2:a@x>, b@y", "2 2 2 2 2 1"),
]
COUNTS = [(field, COUNT_SCRIPT, f"From: s@example.org\r\n{field}\r\nSubject: hi\r\n\r\nbody\r\n".encode(), expected)
          for field, expected in COUNT_CASES]


def _x_c(o) -> str | None:
    return _added(o, "x-c")


@pytest.mark.parametrize("name, script, message, expected", COUNTS, ids=[c[0] for c in COUNTS])
def test_address_counts(name, script, message, expected):
    assert _x_c(_ours(script, message)) == expected


def test_address_counts_against_sieve_test(ph):
    _compare(ph, COUNTS, _x_c, {})


# === 6. reject ====================================================================================
#
# RFC 5429 2.1: reject cancels the implicit keep and cannot stand beside keep, fileinto or redirect
# (with :copy too: a runtime error, the message kept); it can beside notify, discard and flags. Its
# reason goes as written (empty, several lines, 8-bit, a line break from a variable).
# (script, status, stores, reasons)

RR = ('require ["fileinto", "reject", "variables", "imap4flags", "copy", "enotify", "editheader", '
      '"encoded-character"];\n')
REJECT_CASES = [
    ('reject "no"; notify "mailto:n@example.com";', ("ok", (), ("no",))),
    ('notify "mailto:n@example.com"; reject "no";', ("ok", (), ("no",))),
    ('reject "no"; setflag "\\\\Seen";', ("ok", (), ("no",))),
    ('reject "";', ("ok", (), ("",))),
    ('set "r" ""; reject "${r}";', ("ok", (), ("",))),
    ('reject text:\nline one\n\nline three\n.\n;', ("ok", (), ("line one\r\n\r\nline three",))),
    ('reject "Gr\u00fc\u00dfe";', ("ok", (), ("Gr\u00fc\u00dfe",))),
    ('set "r" "a\r\nb"; reject "${r}";', ("ok", (), ("a\r\nb",))),
    ('reject "x"; stop; keep;', ("ok", (), ("x",))),
    ('addheader "X-A" "1"; reject "no";', ("ok", (), ("no",))),
    ('reject "no"; discard; stop;', ("ok", (), ("no",))),
    ('if false { reject "no"; } else { keep; }', ("ok", ("INBOX",), ())),
    ('redirect :copy "x@example.com"; reject "no";', ("error", ("INBOX",), ())),
    ('reject "no"; redirect :copy "x@example.com";', ("error", ("INBOX",), ())),
    ('reject "no"; reject "no";', ("error", ("INBOX",), ())),
    ('reject "no"; fileinto :copy "Foo";', ("error", ("INBOX",), ())),
]
REJECTS = [(body, RR + body, PLAIN, expected) for body, expected in REJECT_CASES]


def _rejected(o):
    return o.status, tuple(box for box, _ in o.stores), o.rejects


@pytest.mark.parametrize("name, script, message, expected", REJECTS, ids=[c[0] for c in REJECTS])
def test_reject(name, script, message, expected):
    assert _rejected(_ours(script, message)) == expected


def test_reject_against_sieve_test(ph):
    _compare(ph, REJECTS, _rejected, {})


# A sender controls the Message-ID field: a "<" whose msg-id holds a comment or a quoted string
# is read token by token, and a comment that never closes runs to the field's end. Only the
# first TOKENISED_TRIES_MAX such "<" are read so (then: no msg-id), so a field of many of them
# costs a few passes over it, not one per "<" (16,000 of them took 11.7 s before).
def test_message_id_reads_a_hostile_field_in_a_few_passes(monkeypatch):
    from sieve.extensions import duplicate
    calls = []
    real = duplicate._parsed_id
    monkeypatch.setattr(duplicate, "_parsed_id", lambda s, i: calls.append(i) or real(s, i))
    assert duplicate.message_id("<(" * 20000 + ">") is None
    assert len(calls) == duplicate.TOKENISED_TRIES_MAX
    calls.clear()
    assert duplicate.message_id('<(c)a@b> <"x>') == "<a@b>"
    assert duplicate.message_id("<x> " * 1000 + "<a@b>") == "<a@b>"      # the quick path has no cap
