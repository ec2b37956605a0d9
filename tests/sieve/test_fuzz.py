"""Property test: random and mutated scripts and messages give only clean SieveErrors.

Feeds hypothesis-generated scripts (token soup and mutations of real scripts) to the
compiler and the interpreter, and random bytes as messages: every failure must be a
SieveError subclass, and no run may go past the CPU step limit.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from owlery.settings import Settings
from sieve.api import Envelope, MemoryHost, SieveError, compile_script, run

# every extension on, those off by default too (the deprecated imapflags and notify, report)
SETTINGS = Settings().replace(sieve_max_cpu_steps=20000, sieve_extensions_disabled=[])
NOW = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)

SEED_SCRIPTS = [
    b'require ["fileinto", "variables", "regex", "relational", "comparator-i;ascii-numeric"];\n'
    b'if header :matches "subject" "*frop*" { set "a" "${1}"; fileinto "INBOX.${a}"; }\n'
    b'elsif address :regex :localpart "from" "^(a|b)+$" { redirect "x@example.org"; }\n'
    b'else { if header :count "ge" :comparator "i;ascii-numeric" "to" "2" { discard; stop; } keep; }\n',
    b'require ["body", "imap4flags", "editheader", "mime", "foreverypart", "date", "index"];\n'
    b'foreverypart { if header :mime :type "content-type" "text" { addflag "\\\\Seen"; } }\n'
    b'if body :text :contains "money" { addheader "X-Spam" "yes"; deleteheader :index 1 "received"; }\n'
    b'if date :zone "+0100" "date" "year" "2024" { keep :flags "a b"; }\n',
    b'require ["vacation", "envelope", "subaddress", "enotify", "duplicate", "include"];\n'
    b'if envelope :detail "to" "lists" { vacation :days 3 :subject "away" "I am away"; }\n'
    b'if duplicate :seconds 10 { discard; }\n'
    b'notify :message "hi" "mailto:a@example.org";\n',
    b'require ["imapflags", "notify", "fileinto", "relational"];\n'
    b'if header :contains "subject" "frop" { mark; setflag ["\\\\Seen", "x y"]; fileinto "F"; }\n'
    b'notify :method "mailto" :id "n1" :options ["a@example.org", "B <b@example.org>"] :low\n'
    b'  :message "$from$ $env-from$: $subject$ $text[20]$";\n'
    b'if size :over 1 { denotify :low :value "ge" "n1"; unmark; removeflag "x"; }\n',
]

TOKENS = ["if", "elsif", "else", "require", "keep", "discard", "stop", "redirect", "fileinto",
          "header", "address", "envelope", "exists", "size", "allof", "anyof", "not", "true",
          "false", "set", "string", "body", "vacation", "addheader", "deleteheader", "foreverypart",
          ":is", ":contains", ":matches", ":regex", ":count", ":value", ":over", ":under", ":all",
          ":localpart", ":domain", ":comparator", ":mime", ":index", ":last", ":flags", ":copy",
          '"fileinto"', '"variables"', '"regex"', '"subject"', '"*"', '"${1}"', '"(a+)+$"',
          '"i;ascii-numeric"', '"ge"', "[", "]", "(", ")", "{", "}", ";", ",", "1K", "0", "99999999999",
          "text:\nline\n.\n", '"\\"', "#c\n", "/* x */", '"${hex:41}"', '"${unicode:1F600}"',
          "mark", "unmark", "setflag", "notify", "denotify", ":options", ":message", ":low", '"imapflags"',
          '"notify"', '"$text[3]$"']

MESSAGES = [
    b"From: a@example.com\r\nTo: b@example.org, (c) <c@example.org>\r\nSubject: frop\r\n\r\nbody\r\n",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--\r\n",
    b"",
]


def _check(script_bytes: bytes, message: bytes) -> None:
    try:
        script = compile_script(script_bytes, settings=SETTINGS)
    except SieveError:
        return
    result = run(script, message, Envelope("s@example.com", "r+d@example.org"), host=MemoryHost(),
                 settings=SETTINGS, now=NOW)
    assert result.status in ("ok", "error", "resource_limit")
    if result.status == "resource_limit":
        assert any("CPU" in e or "limit" in e or "recursion" in e for e in result.errors)


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=60), st.sampled_from(MESSAGES))
def test_token_soup(tokens, message):
    _check(" ".join(tokens).encode(), message)


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEED_SCRIPTS), st.lists(st.tuples(st.integers(0, 10_000), st.binary(max_size=4)),
                                              max_size=6), st.binary(max_size=300))
def test_mutated_scripts_and_messages(seed, edits, message):
    s = bytearray(seed)
    for pos, data in edits:
        p = pos % (len(s) + 1)
        s[p:p + len(data) % 3] = data
    _check(bytes(s), message)
    _check(seed, message)
