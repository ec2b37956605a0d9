"""Regression tables for the engine fixes the differential run against Pigeonhole found
(tests/sieve/differential/): each case is a script and message whose outcome the RFC (or the
reference implementation, where the RFC leaves the choice) decides, with the section named.
The .svtest files beside them (tests/sieve/svtest/) cover the same areas in Sieve."""

from __future__ import annotations

import datetime as dt

import pytest

from owlery.settings import Settings
from sieve.api import (Envelope, FileInto, Keep, MemoryHost, Redirect, SieveCompileError, Vacation, compile_script,
                       run)

NOW = dt.datetime(2024, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
MSG = (b"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: hello\r\n"
       b"Message-ID: <m1@example.com>\r\n\r\nbody\r\n")
BOXES = ("INBOX", "Foo", "Bar")


def _run(src: str | bytes, message: bytes = MSG, env: Envelope | None = None, environment=None):
    settings = Settings()
    script = compile_script(src, settings=settings)
    return run(script, message, env or Envelope("alice@example.com", "bob@example.org"),
               host=MemoryHost(BOXES), settings=settings, environment=environment or {}, now=NOW)


def _stores(result) -> dict[str, tuple[str, ...]]:
    return {a.mailbox: tuple(sorted(a.flags)) for a in result.effective_actions() if isinstance(a, (Keep, FileInto))}


def _filed(src, message: bytes = MSG, **kw) -> bool:
    """Does the test expression `src` (in an if) hold? (fileinto "Foo" when it does)"""
    return "Foo" in _stores(_run(src, message, **kw))


# --- imap4flags (RFC 5232) ---------------------------------------------------------------

@pytest.mark.parametrize("script, expected", [
    # a second store into one mailbox stores no second copy; the last flag list wins
    ('fileinto :flags "A" "Foo"; fileinto :flags "B" "Foo";', {"Foo": ("B",)}),
    ('keep :flags "A"; keep :flags "B";', {"INBOX": ("B",)}),
    # flags no IMAP store can set are ignored (RFC 3501 2.3.2): \Recent, unknown \Name, non-atoms
    ('keep :flags "\\\\Recent \\\\Bogus a(b \\\\Seen K";', {"INBOX": ("K", "\\Seen")}),
    ('addflag "\\\\Bogus \\\\Seen"; keep;', {"INBOX": ("\\Seen",)}),
    # SP separates flags (RFC 5232 3); a TAB makes one (invalid) flag
    ('addflag "a\tb c"; keep;', {"INBOX": ("c",)}),
    # an explicit store into INBOX replaces the implicit keep (RFC 5228 2.10.3: one copy)
    ('fileinto :copy :flags "A" "INBOX"; setflag "B";', {"INBOX": ("A",)}),
    ('keep :flags "A"; fileinto :create "inbox";', {"INBOX": ()}),
])
def test_flags_and_duplicate_stores(script, expected):
    r = _run('require ["imap4flags", "fileinto", "copy", "mailbox"];' + script)
    assert r.status == "ok", r.errors
    assert _stores(r) == expected


# --- editheader (RFC 5293 7) -------------------------------------------------------------

def test_each_action_stores_the_header_as_it_was_when_asked():
    r = _run('require ["editheader", "fileinto"]; addheader "X-1" "a"; fileinto "Foo"; '
             'addheader "X-2" "b"; redirect "c@example.net"; addheader "X-3" "c";')
    by_kind = {type(a).__name__: r.message_for(a) for a in r.effective_actions()}
    assert b"X-1: a" in by_kind["FileInto"] and b"X-2" not in by_kind["FileInto"]
    assert b"X-2: b" in by_kind["Redirect"] and b"X-3" not in by_kind["Redirect"]
    assert b"X-3: c" in r.message          # the final message (what an implicit keep would store)
    assert by_kind["FileInto"].endswith(b"\r\n\r\nbody\r\n")


def test_keep_after_fileinto_inbox_stores_the_keeps_message():
    r = _run('require ["editheader", "fileinto"]; fileinto "INBOX"; addheader "X-1" "a"; keep;')
    [keep] = r.effective_actions()
    assert isinstance(keep, Keep) and b"X-1: a" in r.message_for(keep)


def test_a_runtime_error_keeps_the_message_as_received():
    r = _run('require ["editheader", "variables"]; addheader "X-1" "a"; set "v" "x"; '
             'redirect "${v}";')
    assert r.status == "error" and r.message == MSG


# --- address test (RFC 5228 2.7.4, 5.1) ----------------------------------------------------

@pytest.mark.parametrize("header, test, expected", [
    ("To: a@, b@example.com", 'address :all :is "To" "b@example.com"', True),          # invalid item skipped
    ("To: a@, nonsense", 'address :all :is "To" "a@, nonsense"', True),               # nothing valid: the text
    ("Resent-Cc: <j\u00fcrgen@example.com>", 'address :localpart :is "Resent-Cc" "j\u00fcrgen"', False),
    ("Cc: nonsense", 'address :localpart :is "Cc" "nonsense"', False),                # :localpart never
    ("To: first@example.com, \"broken <x@y.z>, c@d.e", 'address :all :is "To" "c@d.e"', False),
    ("To: g: a@b.c, Re: x <d@e.f>;", 'address :all :is "To" "d@e.f"', False),         # nested group
    ("To: back\\slash <x@y.z>, c@d.e", 'address :all :is "To" "c@d.e"', False),       # stray backslash
    ("To: a+x@b.c, d@e.f", 'address :detail :count "eq" :comparator "i;ascii-numeric" "To" "2"', True),
    ('To: "x y"@b.c', 'address :all :is "To" "\\"x y\\"@b.c"', True),                 # :all is an addr-spec
    ('To: "x y"@b.c', 'address :localpart :is "To" "x y"', True),
    ("To: undisclosed-recipients:;", 'address :all :is "To" "undisclosed-recipients:;"', True),
    ("To: a@b.c\r\nX-Test: x", 'header :index 2 :is ["To", "X-Test"] "x"', True),  # :index over all names
])
def test_address_test_reads_fields_item_by_item(header, test, expected):
    msg = ("From: s@example.com\r\n" + header + "\r\nSubject: x\r\n\r\nb\r\n").encode()
    src = ('require ["fileinto", "subaddress", "relational", "comparator-i;ascii-numeric", "index"];'
           f'if {test} {{ fileinto "Foo"; }}')
    assert _filed(src, msg) is expected


@pytest.mark.parametrize("name", ["Subject", "X-Test", "Message-ID"])
def test_address_test_on_a_field_without_addresses_is_a_compile_error(name):
    with pytest.raises(SieveCompileError, match="not allowed for the address test"):
        compile_script(f'if address "{name}" "x" {{ keep; }}')


def test_redirect_keeps_a_quoted_local_part():
    r = _run('redirect "\\"quoted local\\"@example.com";')
    [red] = [a for a in r.actions if isinstance(a, Redirect)]
    assert red.address == '"quoted local"@example.com'


# --- mime, body (RFC 5703, RFC 5173) -------------------------------------------------------

MIME_MSG = (b"From: a@example.com\r\nSubject: hello\r\n"
            b"Content-Type: multipart/related; boundary=\"B0\"\r\n\r\npre text\r\n--B0\r\n"
            b"Content-Type: text/plain\r\n\r\ninner\r\n--B0--\r\nepi text\r\n")


@pytest.mark.parametrize("test, expected", [
    ('header :mime :type :is "Content-Type" "multipart"', True),
    ('header :mime :type :contains "Content-Type" "related"', False),     # :type was ignored before
    ('header :mime :subtype :is "Content-Type" "related"', True),
    ('header :mime :contenttype :is "Content-Type" "multipart/related"', True),
    ('header :mime :type :is "Subject" ""', True),                        # not a content type: ""
    ('body :content "multipart" :contains "epi"', True),                  # prologue and epilogue
    ('body :content "multipart" :contains "inner"', False),
])
def test_mime_options_and_multipart_text(test, expected):
    assert _filed(f'require ["mime", "body", "fileinto"]; if {test} {{ fileinto "Foo"; }}', MIME_MSG) is expected


def test_a_part_without_content_type_has_no_field_for_type():
    assert not _filed('require ["mime", "fileinto"]; if header :mime :subtype "Content-Type" "plain" '
                      '{ fileinto "Foo"; }')


@pytest.mark.parametrize("message, test", [
    (b"From: a@example.com\r\nSubject: x\r\n\r\n", 'body :text :is ""'),        # an empty text part is ""
    ("From: a@example.com\r\nSubject: x\r\n\r\nna\u00efve\r\n".encode(), 'body :text :contains "na\u00efve"'),
])
def test_body_text_values(message, test):
    assert _filed(f'require ["body", "fileinto"]; if {test} {{ fileinto "Foo"; }}', message)


def test_header_with_unknown_charset_is_read_as_utf8():
    msg = b"From: a@example.com\r\nSubject: =?bogus?Q?x?=\r\n\r\nb\r\n"
    assert _filed('require "fileinto"; if header :is "Subject" "x" { fileinto "Foo"; }', msg)


# --- environment (RFC 5183), variables (RFC 5229), ihave (RFC 5463) -----------------------

@pytest.mark.parametrize("src, expected", [
    ('if environment :is "remote-host" "" { fileinto "Foo"; }', False),             # unknown item
    ('if environment :is "domain" "example.net" { fileinto "Foo"; }', True),        # from the host name
    ('if environment :is "vnd.dovecot.default-mailbox" "INBOX" { fileinto "Foo"; }', False),
])
def test_environment_items(src, expected):
    assert _filed('require ["environment", "fileinto"];' + src, environment={"host": "mx.example.net"}) is expected


def test_env_namespace_needs_its_extension():
    with pytest.raises(SieveCompileError, match="namespace 'env'"):
        compile_script('require "variables"; if string "${env.location}" "" { keep; }')
    compile_script('require ["variables", "vnd.dovecot.environment"]; if string "${env.location}" "" { keep; }')


def test_vnd_environment_does_not_imply_variables():
    with pytest.raises(SieveCompileError):
        compile_script('require "vnd.dovecot.environment"; set "a" "b";')


def test_case_modifiers_change_ascii_letters_only():
    r = _run('require ["variables", "editheader"]; set :upper "v" "stra\u00dfe \u00e9t\u00e9"; addheader "X-V" "${v}";')
    assert _decoded_x_v(r.message) == "STRA\u00dfE \u00e9T\u00e9"


def _decoded_x_v(message: bytes) -> str:
    import email.header
    line = [ln for ln in message.decode().split("\r\n") if ln.startswith("X-V:")][0]
    return str(email.header.make_header(email.header.decode_header(line[4:].strip())))


@pytest.mark.parametrize("cap, expected", [("variables", False), ("encoded-character", False), ("extracttext", True),
                                           ("fileinto", True)])
def test_ihave(cap, expected):
    assert _filed(f'require ["ihave", "fileinto", "variables"]; if ihave "{cap}" {{ fileinto "Foo"; }}') is expected


# --- vacation (RFC 5230), reject (RFC 5429) -------------------------------------------------

def test_a_second_vacation_is_an_error_even_when_the_first_reply_is_not_due():
    env = Envelope("MAILER-DAEMON@example.com", "bob@example.org")     # no reply is due to it
    r = _run('require "vacation"; vacation "a"; vacation "b";', env=env)
    assert r.status == "error" and "duplicate vacation" in r.errors[0]


def test_reject_after_a_vacation_that_sends_nothing_still_conflicts():
    env = Envelope("MAILER-DAEMON@example.com", "bob@example.org")
    r = _run('require ["vacation", "reject"]; vacation "a"; reject "no";', env=env)
    assert r.status == "error" and "conflicts" in r.errors[0]


def test_vacation_finds_the_user_among_valid_items_of_a_broken_list():
    msg = b"From: a@example.com\r\nTo: a@, bob@example.org\r\nSubject: hi\r\n\r\nb\r\n"
    r = _run('require "vacation"; vacation "away";', msg)
    assert any(isinstance(a, Vacation) for a in r.actions)


# --- lexer (RFC 5228 8.1), date (RFC 5260), spamtest (RFC 5235) -----------------------------

def test_bare_cr_in_a_quoted_string_is_a_syntax_error():
    with pytest.raises(SieveCompileError, match="carriage-return"):
        compile_script(b'require "fileinto"; fileinto "Fo\ro";')


def test_invalid_zone_reads_as_utc():
    msg = b"From: a@example.com\r\nDate: Mon, 12 Feb 2024 13:14:15 +0100\r\nSubject: x\r\n\r\nb\r\n"
    assert _filed('require ["date", "fileinto"]; if date :zone "bogus" :is "date" "hour" "12" { fileinto "Foo"; }', msg)


def test_spamtest_value_needs_relational_required():
    with pytest.raises(SieveCompileError):
        compile_script('require ["spamtest", "comparator-i;ascii-numeric"]; '
                       'if spamtest :value "ge" :comparator "i;ascii-numeric" "3" { keep; }')


@pytest.mark.parametrize("test", ['environment :count "ge" "remote-host" ["0"]',
                                  'environment :count "ge" "remote-host" [""]',
                                  'environment :matches "remote-host" "*"',
                                  'environment :count "eq" "vnd.dovecot.nosuch" ["0"]'])
def test_environment_item_that_does_not_exist_makes_the_test_false(test):
    """RFC 5183 4: an unknown or unset item fails the test whatever the match type (a
    count of zero values is no match), as Pigeonhole's sieve-test does."""
    r = _run(f'require ["environment", "relational", "fileinto"];\nif {test} {{ fileinto "X"; }}\n')
    assert not any(isinstance(a, FileInto) for a in r.actions)


# --- editheader leaves the body alone (RFC 5293 section 4, RFC 5173 section 5) -------------------
# Pigeonhole 0.5.19's body test sees an empty body after a deleteheader (deviation
# "pigeonhole-body-lost-after-deleteheader" in tests/sieve/differential/deviations.toml).

@pytest.mark.parametrize("edits", [
    'deleteheader "X-Nope"; addheader "X-Added" "x";',
    'deleteheader :index 1 :last "Subject";',
    'deleteheader "Subject"; addheader :last "Subject" "new";',
])
def test_body_tests_see_the_body_after_header_edits(edits):
    script = ('require ["body", "editheader", "fileinto"];\n' + edits +
              '\nif body :raw :contains "body" { fileinto "Foo"; }\n')
    assert "Foo" in _stores(_run(script))


@pytest.mark.parametrize("value, key, expected", [
    ("xstar", "a", True),                      # a valid keyword
    ("%2Astar%2A", "a", False),                # "%" and "*" make it no IMAP atom: no flag at all
    ("\\\\Seen bogus%", "seen", True),         # the valid one of two still counts
    ("\\\\Seen bogus%", "bogus", False),
    ("\\\\Bogus", "bogus", False),             # no system flag
])  # (each \\\\ in this file is one backslash in the variable: Python and Sieve each halve it)
def test_hasflag_reads_a_variable_as_the_valid_flags_it_holds(value, key, expected):
    script = ('require ["imap4flags", "variables", "fileinto"];\n'
              f'set "v" "{value}";\nif hasflag :contains "v" "{key}" {{ fileinto "Foo"; }}\n')
    assert ("Foo" in _stores(_run(script))) is expected


@pytest.mark.parametrize("key, matches", [("?s*", False), ("?star*", False), ("?b*", True), ("?bc", True),
                                          ("a?c*", True), ("?*c", True), ("??", False), ("*?", True)])
def test_matches_question_mark_is_one_character_and_the_rest_must_match(key, matches):
    """RFC 5228 2.7.1: "?" is exactly one character. Pigeonhole 0.5.19 says "abc" matches "?s*"
    (a listed deviation, pigeonhole-matches-question-then-literal); Owlery does not."""
    script = ('require ["fileinto", "variables"];\n'
              f'if string :matches "abc" "{key}" {{ fileinto "Foo"; }}\n')
    assert _filed(script) == matches
