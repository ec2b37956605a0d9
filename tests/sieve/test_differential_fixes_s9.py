"""Engine fixes from the ninth differential session against Pigeonhole's sieve-test
(tests/sieve/differential/): each test is a script whose outcome the RFC decides, with the
section named, and which Owlery got wrong before the fix (the last one pins RFC behaviour where
Pigeonhole is the one that differs: deviations.toml)."""

from __future__ import annotations

import datetime as dt
import re
from email.parser import BytesHeaderParser

import pytest

from owlery.settings import Settings
from sieve.api import Envelope, Keep, MemoryHost, SieveCompileError, Vacation, compile_script, run

NOW = dt.datetime(2024, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
MSG = (
    b"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: hello\r\nMessage-ID: <m1@example.com>\r\n\r\nbody\r\n"
)


def _run(src: str | bytes, message: bytes = MSG, env: Envelope | None = None):
    settings = Settings()
    script = compile_script(src, settings=settings)
    return run(
        script,
        message,
        env or Envelope("alice@example.com", "bob@example.org"),
        host=MemoryHost(("INBOX", "Foo", "Bar")),
        settings=settings,
        environment={},
        now=NOW,
    )


def _added(result, name: str = "X-R") -> list[str]:
    """The values of field `name` in the message the (one) keep stores, unfolded."""
    (keep,) = [a for a in result.effective_actions() if isinstance(a, Keep)]
    values = BytesHeaderParser().parsebytes(result.message_for(keep)).get_all(name) or []
    return [re.sub(r"\r?\n[ \t]", " ", v) for v in values]


# --- lexer: multi-line strings (RFC 5228 2.4.2) ---------------------------------------------


def test_multiline_removes_a_leading_dot_only_before_another_dot():
    # multiline-dotstart: "Remove a leading '.' if followed by another '.'": ".x" stays ".x"
    r = _run('require "editheader";\naddheader "X-R" text:\n..a\n.x\n.\n;\nkeep;\n')
    assert r.status == "ok", r.errors
    assert _added(r) == [".a .x"]


# --- date (RFC 5260 4) ----------------------------------------------------------------------

DATES = (
    b"From: alice@example.com\r\nX-D: garbage\r\nX-D: Mon, 1 Feb 2024 13:14:15 +0100\r\n"
    b"X-D: Sat, 3 Feb 2024 13:14:15 +0100\r\nSubject: hello\r\n\r\nbody\r\n"
)


def test_date_reads_only_the_first_of_repeated_fields():
    # "If multiple header fields with the same name are present, only the first field that is
    # found is used": a first field without a valid date makes the test false
    r = _run(
        'require ["date", "editheader", "variables", "relational", "index"];\n'
        'if date :matches "X-D" "day" "*" { addheader "X-R" "any:${0}"; }\n'
        'if date :count "eq" "X-D" "day" "0" { addheader "X-R" "count0"; }\n'
        'if date :index 3 "X-D" "day" "03" { addheader "X-R" "index3"; }\n'
        "keep;\n",
        DATES,
    )
    assert r.status == "ok", r.errors
    assert _added(r) == ["index3", "count0"]


# --- header and exists with an invalid (empty) name (RFC 5228 5.7) ---------------------------


def test_an_empty_header_name_in_a_test_is_no_error_and_matches_nothing():
    # "no header will match a syntactically invalid header name. An implementation MUST NOT
    # cause an error for syntactically invalid header names in tests"
    r = _run(
        'require ["editheader", "mime"];\n'
        'if exists "" { addheader "X-R" "exists"; }\n'
        'if not exists ["Subject", ""] { addheader "X-R" "not-all"; }\n'
        'if header :contains ["", "Subject"] "hell" { addheader "X-R" "subject"; }\n'
        'if header :mime :anychild :is "" "" { addheader "X-R" "mime"; }\n'
        "keep;\n"
    )
    assert r.status == "ok", r.errors
    assert _added(r) == ["subject", "not-all"]


# --- the extension registry under concurrent first use ---------------------------------------

_RACE = r"""
import threading
import sieve.extensions as ext

building, looked = threading.Event(), threading.Event()
init = ext._ExtensionTables.__init__

def slow_init(self, registry):
    # the loading thread holds here, inside the lock, until the other thread has looked
    if "core" in registry and not building.is_set():
        building.set()
        looked.wait(1)
    init(self, registry)

ext._ExtensionTables.__init__ = slow_init
errors = []

def load():
    ext.REGISTRY["core"]

def look():
    building.wait(10)
    try:
        ext.REGISTRY["core"]
    except Exception as e:
        errors.append(repr(e))
    looked.set()

threads = [threading.Thread(target=load), threading.Thread(target=look)]
for t in threads:
    t.start()
for t in threads:
    t.join(20)
print("errors:", errors)
"""


def test_a_thread_looking_up_while_another_loads_the_core_sees_it():
    # lmtpd's delivery threads compile concurrently; the differential runner's two workers
    # failed with KeyError: 'core' when one looked up while the other was loading
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _RACE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "errors: []", out.stdout


# --- vacation :addresses (RFC 5230 4.5) -----------------------------------------------------


def test_an_invalid_addresses_item_is_no_compile_error_and_is_skipped():
    # RFC 5230 makes no :addresses item an error (Pigeonhole compiles such scripts): an item
    # that is no address names no recipient, and the valid ones still count
    msg = b"From: boss@example.com\r\nTo: alias@example.org\r\nSubject: hi\r\n\r\nhi\r\n"
    r = _run(
        'require "vacation";\nvacation :addresses ["not an address", "alias@example.org", "a@b:c"] "away";\n',
        msg,
        Envelope("boss@example.com", "rcpt@example.org"),
    )
    assert r.status == "ok", r.errors
    assert [a.to for a in r.effective_actions() if isinstance(a, Vacation)] == ["boss@example.com"]


# --- ihave (RFC 5463) -----------------------------------------------------------------------


def test_a_false_ihave_enables_none_of_its_capabilities():
    # ihave ["imap4flags", "<unknown>"] is false: imap4flags is not enabled by it, so a keep
    # :flags outside any true ihave block is an unknown tag (Pigeonhole refuses it too)
    src = (
        'require "ihave";\nif ihave ["imap4flags", "vnd.dovecot.nosuch"] { }\nelsif true { keep :flags "\\\\Seen"; }\n'
    )
    with pytest.raises(SieveCompileError):
        compile_script(src, settings=Settings())
    # a true one does (and, as in Pigeonhole, for the rest of the script)
    r = _run('require "ihave";\nif ihave "imap4flags" { }\nkeep :flags "\\\\Seen";\n')
    assert r.status == "ok", r.errors


def test_star_question_star_matches_a_single_character():
    # RFC 5228 2.7.1: "*" matches zero or more characters, "?" exactly one; Pigeonhole 0.5.19
    # says false here (deviations.toml: pigeonhole-matches-star-questions-star): pinned
    r = _run(
        'require ["variables", "editheader"];\n'
        'if string :matches "r" "*?*" { addheader "X-R" "one"; }\n'
        'if string :matches "ab" "*??*" { addheader "X-R" "two"; }\n'
        "keep;\n"
    )
    assert _added(r) == ["two", "one"]


@pytest.mark.parametrize("source", [
    'require "fileinto";\nfileinto "a\x00b";\n',            # quoted string
    'require "fileinto";\nfileinto text:\na\x00b\n.\n;\n',  # multi-line string
    "# a\x00comment\nkeep;\n",                               # hash comment
    "keep;\n/* a\x00comment */\n",                           # bracket comment
    "keep\x00;\n",                                           # between tokens
])
def test_a_nul_anywhere_in_the_script_is_a_syntax_error(source):
    """RFC 5228 8.1 allows NUL nowhere (octet-not-crlf starts at %x01); sieve-test refuses
    each of these with "encountered NUL character" or, outside strings and comments,
    "unexpected character(s) starting with 0x00"."""
    with pytest.raises(SieveCompileError, match="NUL character|starting with 0x00"):
        compile_script(source)


@pytest.mark.parametrize("source", [
    'require ["fileinto", "imap4flags"];\naddflag "\\\\Seen";\nfileinto "";\n',
    'require ["fileinto", "imap4flags", "variables"];\nset "f" "";\naddflag "\\\\Seen";\nfileinto "${f}";\n',
])
def test_fileinto_an_empty_name_stores_into_inbox_with_its_flags(source):
    """sieve-test -e: "fileinto action: stored mail into mailbox '' (INBOX)", flag \\Seen set;
    before, the literal was a compile error and the variable a run-time error: the implicit
    keep, without the flag."""
    result = run(compile_script(source), MSG, Envelope("a@remote.test", "alice@example.org"), host=MemoryHost())
    boxes = [(a.mailbox, tuple(a.flags)) for a in result.actions if type(a).__name__ == "FileInto"]
    assert boxes == [("INBOX", ("\\Seen",))] and not result.implicit_keep
