"""Memory of one Sieve run and one delivery against hostile header sections (the LMTP audit of
session 20: 300,000 short fields made one delivery peak at ~130 MB, ~22 times the message).

Each hostile shape (many short fields, a few huge folded fields in ASCII, UTF-8 or raw 8-bit
octets, many encoded words, many address or date fields, wide address lists below the field
cap) runs under scripts that read the header (header :contains, :matches, :count; address :all
and :count; exists; date; editheader; foreverypart with mime); tracemalloc's peak must stay
within a multiple of the message's size (sieve.message keeps two strings per field, decodes one
value at a time, reads at most sieve_max_header_fields fields, and cuts a MIME part's body out of
the message only when asked for: nested multiparts held a copy per level). Normal mail gives the results
recorded from the code before the change (EXPECTED), and fields past the cap are invisible to
tests but delivered byte for byte.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import tracemalloc

import pytest

from owlery.settings import Settings, parse_text
from owlery.state.memory_store import MemoryStore
from sieve.api import Envelope, MemoryHost, compile_script, describe_action, run
from sieve.delivery.executor import DeliveryExecutor
from sieve.delivery.users import MailUser

NOW = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
ENV = Envelope("sender@example.com", "rcpt@example.org")

# peak of one run over the message's size: the strings of the fields read (two a field; an
# 8-bit octet that is not UTF-8 is two bytes of str), one decoded value, and after an edit the
# message written again. Was 6 to 24.
RUN_BOUND = 4
# one delivery adds its own copy of the message with the trace fields (Return-Path, Delivered-To)
DELIVERY_BOUND = 5


def _short_fields(n: int) -> bytes:
    return b"".join(b"X-F%d: v%d\r\n" % (i, i) for i in range(n)) + b"From: a@b.c\r\nSubject: hi\r\n\r\nbody\r\n"


def _folded(fields: int, size: int, line: bytes = b"x" * 60) -> bytes:
    one = b"".join(b"\t" + line + b"\r\n" for _ in range(size // (len(line) + 3)))
    return b"".join(b"X-Big%d: start\r\n" % j + one for j in range(fields)) + b"From: a@b.c\r\n\r\nbody\r\n"


HOSTILE = {
    "short_fields": lambda: _short_fields(150_000),
    "folded_ascii": lambda: _folded(4, 1 << 19),
    "folded_utf8": lambda: _folded(4, 1 << 19, "é€".encode() * 12),
    "folded_8bit": lambda: _folded(4, 1 << 19, b"\xe9\xff" * 30),
    "encoded_words": lambda: b"".join(b"Subject: =?utf-8?q?caf=C3=A9?= =?utf-8?b?w6k=?=\r\n" for _ in range(40_000))
    + b"From: a@b.c\r\n\r\nbody\r\n",
    "address_fields": lambda: b"".join(b'To: "User %d" <u%d@example.com>, v%d@ex.org\r\n' % (i, i, i)
                                       for i in range(40_000)) + b"From: a@b.c\r\n\r\nbody\r\n",
    "date_fields": lambda: b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n" * 50_000 + b"From: a@b.c\r\n\r\nbody\r\n",
    "same_name": lambda: b"".join(b"To: a%d@b.c\r\n" % i for i in range(150_000)) + b"\r\nbody\r\n",
    "wide_lists": lambda: b"".join(b"Cc: " + b", ".join(b"u%d@example.com" % j for j in range(25)) + b"\r\n"
                                   for _ in range(3000)) + b"\r\nbody\r\n",
}

HOSTILE_SCRIPTS = {
    "contains": 'if header :contains ["x-nope", "subject", "to", "x-big0"] "zz" { discard; }',
    "matches": 'require "variables"; if header :matches ["to", "subject", "x-big0"] "*zz*" { discard; }',
    "count": 'require "relational"; if header :count "ge" ["to", "x-big0", "date"] "1" { keep; }',
    "address": 'if address :all :is ["to", "cc"] "nobody@x" { discard; }',
    "address_count": 'require "relational"; if address :count "ge" ["to", "cc"] "1" { keep; }',
    "exists": 'if exists ["x-nope", "subject"] { keep; }',
    "date": 'require "date"; if date :is "date" "year" "1999" { discard; }',
    "editheader": 'require "editheader"; addheader "X-A" "b"; deleteheader "x-nope"; '
                  'if header :contains "x-nope" "z" { discard; }',
    "mime": 'require ["foreverypart", "mime"]; foreverypart { if header :mime :contains "content-type" "zz" '
            '{ discard; } }',
}


def _peak(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def hostile():
    """Each shape built once (the message itself is not counted: it exists before the run)."""
    return {name: make() for name, make in HOSTILE.items()}


@pytest.mark.parametrize("script_name", sorted(HOSTILE_SCRIPTS))
@pytest.mark.parametrize("shape", sorted(HOSTILE))
def test_one_run_peaks_within_a_multiple_of_the_message(hostile, shape, script_name):
    msg = hostile[shape]
    settings = Settings()
    script = compile_script(HOSTILE_SCRIPTS[script_name], settings=settings)
    run(script, b"From: a@b.c\r\nTo: d@e.f\r\n\r\nwarm\r\n", ENV, host=MemoryHost(), settings=settings, now=NOW)
    results = []
    peak = _peak(lambda: results.append(run(script, msg, ENV, host=MemoryHost(), settings=settings, now=NOW)))
    [r] = results
    assert r.status in ("ok", "resource_limit"), r.errors
    assert peak <= RUN_BOUND * len(msg), f"{shape}/{script_name}: peak {peak / len(msg):.1f} x the message"
    if script_name != "editheader" and r.status == "ok":
        assert r.message is msg        # nothing edited: the message itself, not a copy


NESTED_SCRIPTS = [
    'require ["foreverypart", "mime"]; foreverypart { if header :mime :contains "content-type" "zz" { discard; } }',
    'require "body"; if body :text :contains "zz" { discard; }',
    'require "body"; if body :content "multipart" :contains "zz" { discard; }',
    'require ["foreverypart", "mime", "extracttext", "variables"]; foreverypart { extracttext "t"; }',
]


@pytest.mark.parametrize("src", NESTED_SCRIPTS)
def test_nested_multiparts_cost_no_copy_of_the_body_per_level(src):
    # 30 multiparts one inside the other around one 1 MiB text part: each level's body held its
    # own copy of the octets inside it (~32 times the message)
    depth = 30
    msg = (b"From: a@b.c\r\n"
           + b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth))
           + b"Content-Type: text/plain\r\n\r\n" + b"x" * (1 << 20) + b"\r\n"
           + b"".join(b"--b%d--\r\n" % i for i in reversed(range(depth))))
    settings = Settings()
    script = compile_script(src, settings=settings)
    results = []
    peak = _peak(lambda: results.append(run(script, msg, ENV, host=MemoryHost(), settings=settings, now=NOW)))
    assert results[0].status == "ok", results[0].errors
    assert peak <= RUN_BOUND * len(msg), f"peak {peak / len(msg):.1f} x the message"


@pytest.mark.parametrize("script_name", ["contains", "editheader", "mime"])
@pytest.mark.parametrize("shape", ["short_fields", "folded_8bit", "address_fields"])
def test_one_delivery_peaks_within_a_multiple_and_writes_the_message_whole(hostile, tmp_path, shape, script_name):
    msg = hostile[shape].replace(b"\r\n", b"\n")      # as the LDA and lmtpd hand it over
    script = tmp_path / "user.sieve"
    script.write_text(HOSTILE_SCRIPTS[script_name])
    ex = DeliveryExecutor(parse_text(""), submitter=None, state=MemoryStore(), program="test")
    user = MailUser("alice@example.org", str(tmp_path / "Maildir"), str(script), None)
    ex.deliver(b"From: a@b\n\nwarm\n", "bob@x.test", "alice@example.org", user)
    for f in (tmp_path / "Maildir" / "new").iterdir():
        f.unlink()
    outcomes = []
    peak = _peak(lambda: outcomes.append(ex.deliver(msg, "bob@x.test", "alice@example.org", user)))
    assert outcomes[0].action == "delivered", outcomes[0]
    assert peak <= DELIVERY_BOUND * len(msg), f"{shape}/{script_name}: peak {peak / len(msg):.1f} x the message"
    [stored] = (tmp_path / "Maildir" / "new").iterdir()
    data = stored.read_bytes()
    trace = b"Return-Path: <bob@x.test>\nDelivered-To: alice@example.org\n"
    if script_name == "editheader":
        assert data == b"X-A: b\n" + trace + msg
    else:
        assert data == trace + msg


# --- sieve_max_header_fields ---------------------------------------------------------------

def _capped_message(fields: int) -> bytes:
    lines = [b"X-F%d: v%d\r\n" % (i, i) for i in range(fields)]
    lines[fields - 10] = b"X-Late  : after the cap\r\n\tfolded\r\n"     # spelled as no edit would
    return b"".join(lines) + b"\r\nbody\r\n"


def test_the_setting_is_declared_with_its_default_and_minimum():
    assert Settings().sieve_max_header_fields == 10_000
    assert parse_text("sieve_max_header_fields = 100").sieve_max_header_fields == 100
    with pytest.raises(Exception, match="sieve_max_header_fields"):
        parse_text("sieve_max_header_fields = 10")


def test_fields_past_the_cap_are_not_seen_and_the_message_is_kept_whole(caplog):
    settings = parse_text("sieve_max_header_fields = 100")
    msg = _capped_message(150)
    script = compile_script('require "fileinto"; if exists "x-f99" { fileinto "A"; } '
                            'if anyof (exists "x-late", exists "x-f100") { fileinto "B"; }', settings=settings)
    with caplog.at_level(logging.WARNING, logger="owlery.sieve"):
        r = run(script, msg, ENV, host=MemoryHost(mailboxes=("INBOX", "A", "B")), settings=settings, now=NOW)
    assert r.status == "ok"
    assert [describe_action(a) for a in r.effective_actions()] == ["fileinto 'A'"]
    assert r.message is msg
    warned = [rec for rec in caplog.records if "sieve_max_header_fields" in rec.getMessage()]
    assert len(warned) == 1


def test_an_edit_writes_the_fields_past_the_cap_as_they_came():
    settings = parse_text("sieve_max_header_fields = 100")
    msg = _capped_message(150)
    script = compile_script('require "editheader"; addheader "X-New" "1"; deleteheader "x-f0"; '
                            'deleteheader "x-late"; addheader :last "X-End" "2";', settings=settings)
    r = run(script, msg, ENV, host=MemoryHost(), settings=settings, now=NOW)
    assert r.status == "ok"
    rest = msg[msg.index(b"X-F100:"):]
    # the fields read are edited; the others follow them unchanged (X-Late's spelling and fold
    # too), and the field added :last goes before them
    assert r.message == b"X-New: 1\r\n" + msg[msg.index(b"X-F1:"):msg.index(b"X-F100:")] + b"X-End: 2\r\n" + rest


def test_enclose_keeps_the_fields_past_the_cap_inside_the_enclosed_message_only():
    settings = parse_text("sieve_max_header_fields = 100")
    msg = _capped_message(150)
    script = compile_script('require "enclose"; enclose :subject "wrapped" "see attached";', settings=settings)
    r = run(script, msg, ENV, host=MemoryHost(), settings=settings, now=NOW)
    assert r.status == "ok"
    assert r.message.count(b"X-F120: v120\r\n") == 1 and r.message.count(b"X-Late  : after the cap") == 1
    assert msg in r.message


# --- normal mail: the results recorded before the change -------------------------------------

MESSAGES = {
    "plain_crlf": b"From: Bob <bob@example.com>\r\nTo: alice@example.org, \"Carol C\" <carol@x.example>\r\n"
                  b"Subject: Hello there\r\nDate: Tue, 2 Jan 2024 10:11:12 +0100\r\nMessage-ID: <a@b>\r\n\r\nHi!\r\n",
    "plain_lf": b"From: bob@example.com\nTo: alice@example.org\nSubject: lf lines\nDate: Mon, 1 Jan 2024 00:00:00 -0500\n"
                b"\nbody\n",
    "folded": b"From: bob@example.com\r\nSubject: a long\r\n  folded\r\n\tsubject\r\nTo: a@b.c,\r\n c@d.e\r\n\r\nbody\r\n",
    "encoded": b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.de>\r\nSubject: =?ISO-8859-1?Q?caf=E9?= =?utf-8?b?IGF1IGxhaXQ=?=\r\n"
               b"To: =?utf-8?b?w6lsw6huZQ==?= <e@example.fr>\r\n\r\nx\r\n",
    "odd_lines": b" leading: continuation\r\nX-Spaced  : spaced name\r\nno colon line\r\n\tcontinued orphan\r\n"
                 b"Subject:tight\r\nX-8bit: caf\xe9 \xc3\xa9t\xc3\xa9\r\nX-Empty:\r\nX-Multi: one\r\nx-multi: two\r\n"
                 b"X-MULTI: three\r\n\r\nbody\r\n",
    "mixed_eol": b"From: a@b.c\nSubject: mixed\r\nX-A: 1\n\t2\r\n\tthree\nTo: d@e.f\r\n\r\nbody\n",
    "no_body": b"From: a@b.c\r\nSubject: only header\r\n",
    "cr_end": b"From: a@b.c\r\nSubject: cr\r\r\nX-T: t\r\r\n\r\nb\r\n",
    "multipart": b"From: a@b.c\r\nTo: z@y.x\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
                 b"Content-Type: multipart/mixed; boundary=\"BB\"\r\n\r\npre\r\n--BB\r\n"
                 b"Content-Type: text/plain; charset=utf-8\r\nX-Part: one\r\n\r\nhello\r\n--BB\r\n"
                 b"Content-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\n"
                 b"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--BB--\r\nepi\r\n",
    "received": b"".join(b"Received: from h%d.example (h%d.example [192.0.2.%d])\r\n\tby mx.example.org with ESMTP id X%d;"
                         b"\r\n\tTue, 2 Jan 2024 10:%02d:00 +0000\r\n" % (i, i, i, i, i) for i in range(30))
                + b"From: list@lists.example\r\nList-Id: <l.lists.example>\r\nSubject: [l] digest\r\n"
                  b"Date: Tue, 2 Jan 2024 10:59:00 +0000\r\n\r\nbody\r\n",
}

SCRIPTS = {
    "header": 'require "fileinto"; '
              'if header :contains ["subject", "x-multi", "x-8bit", "x-spaced", "leading", " leading"] '
              '["folded", "caf", "two", "spaced", "lait", "tight", "cr"] { fileinto "A"; } '
              'if header :is "x-empty" "" { fileinto "E"; }',
    "header_vars": 'require ["variables", "fileinto", "imap4flags", "relational", "comparator-i;ascii-numeric", "index"]; '
                   'if header :matches "subject" "*" { set "s" "${1}"; } if header :matches "from" "*" { set "f" "${1}"; } '
                   'if header :count "ge" :comparator "i;ascii-numeric" "x-multi" "3" { fileinto "C"; } '
                   'if header :index 2 :is "x-multi" "two" { fileinto "I"; } addflag "${s}|${f}";',
    "address": 'require ["fileinto", "variables"]; '
               'if address :all :contains ["to", "from", "cc"] ["example"] { fileinto "Ex"; } '
               'if address :domain :matches "to" "*" { set "d" "${1}"; fileinto "D-${d}"; } '
               'if address :localpart :is "from" ["bob", "j", "a", "list"] { fileinto "L"; }',
    "exists": 'require "fileinto"; if exists ["x-empty", "subject"] { fileinto "both"; } '
              'if exists "X-SPACED" { fileinto "sp"; } if exists "no colon line" { fileinto "nc"; } '
              'if exists " leading" { fileinto "lead"; } if not exists "nope" { keep; }',
    "date": 'require ["date", "variables", "fileinto", "relational"]; '
            'if date :matches "date" "std11" "*" { set "d" "${1}"; fileinto "D ${d}"; } '
            'if date :value "ge" "date" "year" "2024" { fileinto "Y"; } if currentdate :is "year" "2024" { fileinto "now"; } '
            'if date :originalzone :matches "received" "iso8601" "*" { fileinto "R ${1}"; }',
    "editheader": 'require ["editheader"]; addheader "X-Added" "first"; addheader :last "X-Last" "l\\u00e9ast"; '
                  'deleteheader "x-multi"; deleteheader :index 1 "received"; deleteheader :contains "subject" "digest"; '
                  'if header :contains "x-added" "first" { keep; }',
    "editheader_spaced": 'require ["editheader", "fileinto"]; deleteheader "nothing-here"; addheader "X-A" "b"; '
                         'if header :contains "x-spaced" "name" { fileinto "s"; }',
    "mime": 'require ["foreverypart", "mime", "fileinto", "variables"]; foreverypart { '
            'if header :mime :type :is "content-type" "application" { fileinto "App"; } '
            'if header :mime :param "filename" :matches "content-disposition" "*" { fileinto "F-${1}"; } '
            'if exists :mime :anychild "x-part" { fileinto "XP"; } } '
            'if header :mime :subtype :is "content-type" "mixed" { fileinto "mixed"; }',
    "body": 'require ["body", "fileinto"]; if body :text :contains "hello" { fileinto "hb"; } '
            'if body :raw :contains "AAAA" { fileinto "raw"; }',
    "size": 'require ["editheader", "fileinto"]; if size :over 100 { fileinto "big"; } addheader "X-Pad" "padding"; '
            'if size :over 300 { fileinto "bigger"; }',
}


def _outcome(msg_name: str, script_name: str):
    """(status, each action with its flags and the first 16 hex digits of the SHA-256 of the
    message it stores, the same of the final message)."""
    settings = Settings()
    script = compile_script(SCRIPTS[script_name], settings=settings)
    r = run(script, MESSAGES[msg_name], ENV, host=MemoryHost(mailboxes=("INBOX", "A", "E")), settings=settings, now=NOW)
    acts = []
    for a in r.effective_actions():
        m = r.message_for(a) if hasattr(a, "head") else None
        acts.append((describe_action(a), getattr(a, "flags", None),
                     hashlib.sha256(m).hexdigest()[:16] if m is not None else None))
    return (r.status, tuple(acts), hashlib.sha256(r.message).hexdigest()[:16])


@pytest.mark.parametrize("case", sorted(f"{m}/{s}" for m in MESSAGES for s in SCRIPTS))
def test_normal_mail_gives_the_results_recorded_before_the_change(case):
    assert _outcome(*case.split("/")) == EXPECTED[case]


# recorded with the code before the change (sieve/message.py at the parent commit)
EXPECTED = {'cr_end/address': ('ok', (("fileinto 'L'", (), '383e4046576c79ba'),), '383e4046576c79ba'),
 'cr_end/body': ('ok', (("keep into 'INBOX' (implicit)", (), '383e4046576c79ba'),), '383e4046576c79ba'),
 'cr_end/date': ('ok', (("fileinto 'now'", (), '383e4046576c79ba'),), '383e4046576c79ba'),
 'cr_end/editheader': ('ok', (("keep into 'INBOX'", (), 'c38457f6f248fe93'),), 'c38457f6f248fe93'),
 'cr_end/editheader_spaced': ('ok', (("keep into 'INBOX' (implicit)", (), 'b19a1a9106187064'),), 'b19a1a9106187064'),
 'cr_end/exists': ('ok', (("keep into 'INBOX'", (), '383e4046576c79ba'),), '383e4046576c79ba'),
 'cr_end/header': ('ok', (("fileinto 'A'", (), '383e4046576c79ba'),), '383e4046576c79ba'),
 'cr_end/header_vars': ('ok', (("keep into 'INBOX' (implicit)", (), '383e4046576c79ba'),), '383e4046576c79ba'),
 'cr_end/mime': ('ok', (("keep into 'INBOX' (implicit)", (), '383e4046576c79ba'),), '383e4046576c79ba'),
 'cr_end/size': ('ok', (("keep into 'INBOX' (implicit)", (), 'f4b6f43c41d9e9c2'),), 'f4b6f43c41d9e9c2'),
 'encoded/address': ('ok',
                     (("fileinto 'Ex'", (), '0b29839e208c10af'),
                      ("fileinto 'D-example.fr'", (), '0b29839e208c10af'),
                      ("fileinto 'L'", (), '0b29839e208c10af')),
                     '0b29839e208c10af'),
 'encoded/body': ('ok', (("keep into 'INBOX' (implicit)", (), '0b29839e208c10af'),), '0b29839e208c10af'),
 'encoded/date': ('ok', (("fileinto 'now'", (), '0b29839e208c10af'),), '0b29839e208c10af'),
 'encoded/editheader': ('ok', (("keep into 'INBOX'", (), 'a8d920d8c0bc0588'),), 'a8d920d8c0bc0588'),
 'encoded/editheader_spaced': ('ok', (("keep into 'INBOX' (implicit)", (), '0ad5625009161108'),), '0ad5625009161108'),
 'encoded/exists': ('ok', (("keep into 'INBOX'", (), '0b29839e208c10af'),), '0b29839e208c10af'),
 'encoded/header': ('ok', (("fileinto 'A'", (), '0b29839e208c10af'),), '0b29839e208c10af'),
 'encoded/header_vars': ('ok',
                         (("keep into 'INBOX' (implicit) flags au <j@example.de>",
                           ('au', '<j@example.de>'),
                           '0b29839e208c10af'),),
                         '0b29839e208c10af'),
 'encoded/mime': ('ok', (("keep into 'INBOX' (implicit)", (), '0b29839e208c10af'),), '0b29839e208c10af'),
 'encoded/size': ('ok', (("fileinto 'big'", (), '0b29839e208c10af'),), 'f6c5932510ee4613'),
 'folded/address': ('ok',
                    (("fileinto 'Ex'", (), '8bac68436bb37396'),
                     ("fileinto 'D-b.c'", (), '8bac68436bb37396'),
                     ("fileinto 'L'", (), '8bac68436bb37396')),
                    '8bac68436bb37396'),
 'folded/body': ('ok', (("keep into 'INBOX' (implicit)", (), '8bac68436bb37396'),), '8bac68436bb37396'),
 'folded/date': ('ok', (("fileinto 'now'", (), '8bac68436bb37396'),), '8bac68436bb37396'),
 'folded/editheader': ('ok', (("keep into 'INBOX'", (), '253128eaa2af2769'),), '253128eaa2af2769'),
 'folded/editheader_spaced': ('ok', (("keep into 'INBOX' (implicit)", (), 'b39cf1cc2f73c088'),), 'b39cf1cc2f73c088'),
 'folded/exists': ('ok', (("keep into 'INBOX'", (), '8bac68436bb37396'),), '8bac68436bb37396'),
 'folded/header': ('ok', (("fileinto 'A'", (), '8bac68436bb37396'),), '8bac68436bb37396'),
 'folded/header_vars': ('ok',
                        (("keep into 'INBOX' (implicit) flags a long", ('a', 'long'), '8bac68436bb37396'),),
                        '8bac68436bb37396'),
 'folded/mime': ('ok', (("keep into 'INBOX' (implicit)", (), '8bac68436bb37396'),), '8bac68436bb37396'),
 'folded/size': ('ok', (("keep into 'INBOX' (implicit)", (), '79e710b7ab788c6b'),), '79e710b7ab788c6b'),
 'mixed_eol/address': ('ok',
                       (("fileinto 'D-e.f'", (), 'a2997471970b143a'), ("fileinto 'L'", (), 'a2997471970b143a')),
                       'a2997471970b143a'),
 'mixed_eol/body': ('ok', (("keep into 'INBOX' (implicit)", (), 'a2997471970b143a'),), 'a2997471970b143a'),
 'mixed_eol/date': ('ok', (("fileinto 'now'", (), 'a2997471970b143a'),), 'a2997471970b143a'),
 'mixed_eol/editheader': ('ok', (("keep into 'INBOX'", (), '7fe461268a430577'),), '7fe461268a430577'),
 'mixed_eol/editheader_spaced': ('ok',
                                 (("keep into 'INBOX' (implicit)", (), '640472e8f5c1442d'),),
                                 '640472e8f5c1442d'),
 'mixed_eol/exists': ('ok', (("keep into 'INBOX'", (), 'a2997471970b143a'),), 'a2997471970b143a'),
 'mixed_eol/header': ('ok', (("keep into 'INBOX' (implicit)", (), 'a2997471970b143a'),), 'a2997471970b143a'),
 'mixed_eol/header_vars': ('ok',
                           (("keep into 'INBOX' (implicit) flags mixed|a@b.c",
                             ('mixed|a@b.c',),
                             'a2997471970b143a'),),
                           'a2997471970b143a'),
 'mixed_eol/mime': ('ok', (("keep into 'INBOX' (implicit)", (), 'a2997471970b143a'),), 'a2997471970b143a'),
 'mixed_eol/size': ('ok', (("keep into 'INBOX' (implicit)", (), 'fe9e74652509f5c3'),), 'fe9e74652509f5c3'),
 'multipart/address': ('ok',
                       (("fileinto 'D-y.x'", (), '9a2bd7c4a2eb9d3a'), ("fileinto 'L'", (), '9a2bd7c4a2eb9d3a')),
                       '9a2bd7c4a2eb9d3a'),
 'multipart/body': ('ok',
                    (("fileinto 'hb'", (), '9a2bd7c4a2eb9d3a'), ("fileinto 'raw'", (), '9a2bd7c4a2eb9d3a')),
                    '9a2bd7c4a2eb9d3a'),
 'multipart/date': ('ok', (("fileinto 'now'", (), '9a2bd7c4a2eb9d3a'),), '9a2bd7c4a2eb9d3a'),
 'multipart/editheader': ('ok', (("keep into 'INBOX'", (), '6feb03c2d9616e30'),), '6feb03c2d9616e30'),
 'multipart/editheader_spaced': ('ok',
                                 (("keep into 'INBOX' (implicit)", (), '1b59b2fc78abb45d'),),
                                 '1b59b2fc78abb45d'),
 'multipart/exists': ('ok', (("keep into 'INBOX'", (), '9a2bd7c4a2eb9d3a'),), '9a2bd7c4a2eb9d3a'),
 'multipart/header': ('ok', (("keep into 'INBOX' (implicit)", (), '9a2bd7c4a2eb9d3a'),), '9a2bd7c4a2eb9d3a'),
 'multipart/header_vars': ('ok',
                           (("keep into 'INBOX' (implicit) flags parts|a@b.c",
                             ('parts|a@b.c',),
                             '9a2bd7c4a2eb9d3a'),),
                           '9a2bd7c4a2eb9d3a'),
 'multipart/mime': ('ok',
                    (("fileinto 'XP'", (), '9a2bd7c4a2eb9d3a'),
                     ("fileinto 'App'", (), '9a2bd7c4a2eb9d3a'),
                     ("fileinto 'F-a.pdf'", (), '9a2bd7c4a2eb9d3a'),
                     ("fileinto 'mixed'", (), '9a2bd7c4a2eb9d3a')),
                    '9a2bd7c4a2eb9d3a'),
 'multipart/size': ('ok',
                    (("fileinto 'big'", (), '9a2bd7c4a2eb9d3a'), ("fileinto 'bigger'", (), 'cb8a2e52506c2295')),
                    'cb8a2e52506c2295'),
 'no_body/address': ('ok', (("fileinto 'L'", (), 'a182ce7139850151'),), 'a182ce7139850151'),
 'no_body/body': ('ok', (("keep into 'INBOX' (implicit)", (), 'a182ce7139850151'),), 'a182ce7139850151'),
 'no_body/date': ('ok', (("fileinto 'now'", (), 'a182ce7139850151'),), 'a182ce7139850151'),
 'no_body/editheader': ('ok', (("keep into 'INBOX'", (), 'e30e1b7dd3f85139'),), 'e30e1b7dd3f85139'),
 'no_body/editheader_spaced': ('ok', (("keep into 'INBOX' (implicit)", (), '64545c75cc746785'),), '64545c75cc746785'),
 'no_body/exists': ('ok', (("keep into 'INBOX'", (), 'a182ce7139850151'),), 'a182ce7139850151'),
 'no_body/header': ('ok', (("keep into 'INBOX' (implicit)", (), 'a182ce7139850151'),), 'a182ce7139850151'),
 'no_body/header_vars': ('ok',
                         (("keep into 'INBOX' (implicit) flags only header|a@b.c",
                           ('only', 'header|a@b.c'),
                           'a182ce7139850151'),),
                         'a182ce7139850151'),
 'no_body/mime': ('ok', (("keep into 'INBOX' (implicit)", (), 'a182ce7139850151'),), 'a182ce7139850151'),
 'no_body/size': ('ok', (("keep into 'INBOX' (implicit)", (), '6734784cf3f1f2f7'),), '6734784cf3f1f2f7'),
 'odd_lines/address': ('ok', (("keep into 'INBOX' (implicit)", (), 'f27074477591df5f'),), 'f27074477591df5f'),
 'odd_lines/body': ('ok', (("keep into 'INBOX' (implicit)", (), 'f27074477591df5f'),), 'f27074477591df5f'),
 'odd_lines/date': ('ok', (("fileinto 'now'", (), 'f27074477591df5f'),), 'f27074477591df5f'),
 'odd_lines/editheader': ('ok', (("keep into 'INBOX'", (), 'a0e82d7a7c77a005'),), 'a0e82d7a7c77a005'),
 'odd_lines/editheader_spaced': ('ok', (("fileinto 's'", (), '9c96ae5ae29490d8'),), '9c96ae5ae29490d8'),
 'odd_lines/exists': ('ok',
                      (("fileinto 'both'", (), 'f27074477591df5f'),
                       ("fileinto 'sp'", (), 'f27074477591df5f'),
                       ("fileinto 'lead'", (), 'f27074477591df5f'),
                       ("keep into 'INBOX'", (), 'f27074477591df5f')),
                      'f27074477591df5f'),
 'odd_lines/header': ('ok',
                      (("fileinto 'A'", (), 'f27074477591df5f'), ("fileinto 'E'", (), 'f27074477591df5f')),
                      'f27074477591df5f'),
 'odd_lines/header_vars': ('ok',
                           (("fileinto 'C'", (), 'f27074477591df5f'), ("fileinto 'I'", (), 'f27074477591df5f')),
                           'f27074477591df5f'),
 'odd_lines/mime': ('ok', (("keep into 'INBOX' (implicit)", (), 'f27074477591df5f'),), 'f27074477591df5f'),
 'odd_lines/size': ('ok', (("fileinto 'big'", (), 'f27074477591df5f'),), '22d46be5e1b44636'),
 'plain_crlf/address': ('ok',
                        (("fileinto 'Ex'", (), 'a353723587fd0031'),
                         ("fileinto 'D-example.org'", (), 'a353723587fd0031'),
                         ("fileinto 'L'", (), 'a353723587fd0031')),
                        'a353723587fd0031'),
 'plain_crlf/body': ('ok', (("keep into 'INBOX' (implicit)", (), 'a353723587fd0031'),), 'a353723587fd0031'),
 'plain_crlf/date': ('ok',
                     (("fileinto 'D Tue, 02 Jan 2024 09:11:12 +0000'", (), 'a353723587fd0031'),
                      ("fileinto 'Y'", (), 'a353723587fd0031'),
                      ("fileinto 'now'", (), 'a353723587fd0031')),
                     'a353723587fd0031'),
 'plain_crlf/editheader': ('ok', (("keep into 'INBOX'", (), '8cf99dba9300dcfa'),), '8cf99dba9300dcfa'),
 'plain_crlf/editheader_spaced': ('ok',
                                  (("keep into 'INBOX' (implicit)", (), '9ef2c03f084e90b8'),),
                                  '9ef2c03f084e90b8'),
 'plain_crlf/exists': ('ok', (("keep into 'INBOX'", (), 'a353723587fd0031'),), 'a353723587fd0031'),
 'plain_crlf/header': ('ok', (("keep into 'INBOX' (implicit)", (), 'a353723587fd0031'),), 'a353723587fd0031'),
 'plain_crlf/header_vars': ('ok',
                            (("keep into 'INBOX' (implicit) flags Hello there|Bob <bob@example.com>",
                              ('Hello', 'there|Bob', '<bob@example.com>'),
                              'a353723587fd0031'),),
                            'a353723587fd0031'),
 'plain_crlf/mime': ('ok', (("keep into 'INBOX' (implicit)", (), 'a353723587fd0031'),), 'a353723587fd0031'),
 'plain_crlf/size': ('ok', (("fileinto 'big'", (), 'a353723587fd0031'),), '61c50df882e09de3'),
 'plain_lf/address': ('ok',
                      (("fileinto 'Ex'", (), '531597adc62414c9'),
                       ("fileinto 'D-example.org'", (), '531597adc62414c9'),
                       ("fileinto 'L'", (), '531597adc62414c9')),
                      '531597adc62414c9'),
 'plain_lf/body': ('ok', (("keep into 'INBOX' (implicit)", (), '531597adc62414c9'),), '531597adc62414c9'),
 'plain_lf/date': ('ok',
                   (("fileinto 'D Mon, 01 Jan 2024 05:00:00 +0000'", (), '531597adc62414c9'),
                    ("fileinto 'Y'", (), '531597adc62414c9'),
                    ("fileinto 'now'", (), '531597adc62414c9')),
                   '531597adc62414c9'),
 'plain_lf/editheader': ('ok', (("keep into 'INBOX'", (), 'b954e7359b4bb2c3'),), 'b954e7359b4bb2c3'),
 'plain_lf/editheader_spaced': ('ok',
                                (("keep into 'INBOX' (implicit)", (), '2b5b973579a84be6'),),
                                '2b5b973579a84be6'),
 'plain_lf/exists': ('ok', (("keep into 'INBOX'", (), '531597adc62414c9'),), '531597adc62414c9'),
 'plain_lf/header': ('ok', (("keep into 'INBOX' (implicit)", (), '531597adc62414c9'),), '531597adc62414c9'),
 'plain_lf/header_vars': ('ok',
                          (("keep into 'INBOX' (implicit) flags lf lines|bob@example.com",
                            ('lf', 'lines|bob@example.com'),
                            '531597adc62414c9'),),
                          '531597adc62414c9'),
 'plain_lf/mime': ('ok', (("keep into 'INBOX' (implicit)", (), '531597adc62414c9'),), '531597adc62414c9'),
 'plain_lf/size': ('ok', (("fileinto 'big'", (), '531597adc62414c9'),), 'fe1958ab7fb1b582'),
 'received/address': ('ok',
                      (("fileinto 'Ex'", (), 'ba82da8e3b45b86b'), ("fileinto 'L'", (), 'ba82da8e3b45b86b')),
                      'ba82da8e3b45b86b'),
 'received/body': ('ok', (("keep into 'INBOX' (implicit)", (), 'ba82da8e3b45b86b'),), 'ba82da8e3b45b86b'),
 'received/date': ('ok',
                   (("fileinto 'D Tue, 02 Jan 2024 10:59:00 +0000'", (), 'ba82da8e3b45b86b'),
                    ("fileinto 'Y'", (), 'ba82da8e3b45b86b'),
                    ("fileinto 'now'", (), 'ba82da8e3b45b86b'),
                    ("fileinto 'R 2024-01-02T10:00:00Z'", (), 'ba82da8e3b45b86b')),
                   'ba82da8e3b45b86b'),
 'received/editheader': ('ok', (("keep into 'INBOX'", (), 'ef1265d1ac012873'),), 'ef1265d1ac012873'),
 'received/editheader_spaced': ('ok',
                                (("keep into 'INBOX' (implicit)", (), '10d9b453e4f258d4'),),
                                '10d9b453e4f258d4'),
 'received/exists': ('ok', (("keep into 'INBOX'", (), 'ba82da8e3b45b86b'),), 'ba82da8e3b45b86b'),
 'received/header': ('ok', (("keep into 'INBOX' (implicit)", (), 'ba82da8e3b45b86b'),), 'ba82da8e3b45b86b'),
 'received/header_vars': ('ok',
                          (("keep into 'INBOX' (implicit) flags digest|list@lists.example",
                            ('digest|list@lists.example',),
                            'ba82da8e3b45b86b'),),
                          'ba82da8e3b45b86b'),
 'received/mime': ('ok', (("keep into 'INBOX' (implicit)", (), 'ba82da8e3b45b86b'),), 'ba82da8e3b45b86b'),
 'received/size': ('ok',
                   (("fileinto 'big'", (), 'ba82da8e3b45b86b'), ("fileinto 'bigger'", (), '33378c9a800942b5')),
                   '33378c9a800942b5')}
