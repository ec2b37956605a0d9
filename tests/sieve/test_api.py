"""The public host API (sieve.api): compile/cache, run, Result semantics (implicit keep,
runtime error keep, tempfail), actions and the Host questions."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from owlery.settings import Settings
from sieve.api import (BaseHost, Discard, Envelope, FileInto, Keep, MemoryHost, Redirect, Reject,
                       ScriptCache, SieveCompileError, SieveTempFailure, Vacation, compile_script, run)

NOW = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
ENV = Envelope("alice@example.com", "bob+lists@example.org", "bob@example.org", None)
MSG = (b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: Hello\r\n"
       b"Message-ID: <1@example.com>\r\n\r\nHi Bob\r\n")


def _run(src, host=None, message=MSG, env=ENV, settings=None):
    return run(compile_script(src), message, env, host=host or MemoryHost(), settings=settings, now=NOW)


@pytest.mark.parametrize("src, expected, implicit", [
    ("", [], True),
    ("keep;", [Keep], False),
    ("discard;", [Discard], False),
    ('require "fileinto"; fileinto "INBOX.x";', [FileInto], False),
    ('redirect "c@example.net";', [Redirect], False),
    ('require "reject"; reject "no";', [Reject], False),
    ('require "vacation"; vacation "away";', [Vacation], True),
    ('require "fileinto"; fileinto "INBOX"; keep;', [Keep], False),
])
def test_actions_and_implicit_keep(src, expected, implicit):
    r = _run(src)
    assert r.ok
    assert [type(a) for a in r.actions] == expected
    assert r.implicit_keep is implicit


def test_compile_errors_carry_line_and_column():
    with pytest.raises(SieveCompileError) as e:
        compile_script(b'keep;\nif header :frob "a" "b" { keep; }\n', name="s")
    d = e.value.diagnostics[0]
    assert (d.line, d.column) == (2, 11) and "frob" in d.message
    assert str(d).startswith("s:2:11: error:")


def test_runtime_error_keeps_into_inbox():
    r = _run('require ["fileinto", "variables"]; set "b" "no address"; fileinto "x"; redirect "${b}";')
    assert r.status == "error" and "line 1" in r.errors[0]
    assert r.effective_actions() == [Keep(mailbox="INBOX", implicit=True)]


def test_tempfail_from_host_delivers_nothing():
    class Down(BaseHost):
        def seen(self, key):
            raise SieveTempFailure("tracking database down")
    r = _run('require "duplicate"; if duplicate { discard; }', host=Down())
    assert r.status == "tempfail" and r.effective_actions() == []


def test_vacation_is_decided_and_tracked():
    host = MemoryHost()
    r = _run('require "vacation"; vacation :days 2 :subject "Away" "I am away";', host=host)
    v = r.actions[0]
    assert v.to == "alice@example.com" and v.period == 2 * 86400 and b"Subject: Away" in v.reply
    assert b"Auto-Submitted: auto-replied" in v.reply and b"In-Reply-To: <1@example.com>" in v.reply
    host.mark(v.tracking_key, v.period)           # what the executor does after sending
    r = _run('require "vacation"; vacation :days 2 :subject "Away" "I am away";', host=host)
    assert r.actions == []
    # RFC 3834: no reply to lists / auto-submitted mail
    r = _run('require "vacation"; vacation "x";', message=b"List-Id: <l.example.com>\r\n" + MSG)
    assert r.actions == []


def test_editheader_result_message():
    r = _run('require "editheader"; addheader "X-Seen" "yes"; deleteheader "subject";')
    assert r.message.startswith(b"X-Seen: yes\r\n") and b"Subject" not in r.message


def test_host_questions_mailbox_and_include():
    host = MemoryHost(mailboxes=("INBOX", "INBOX.Work"), scripts={("global", "spam"): b"discard;"})
    r = _run('require ["mailbox", "fileinto", "include"]; if mailboxexists "INBOX.Work" '
             '{ fileinto "INBOX.Work"; } include :global "spam";', host=host)
    assert [type(a) for a in r.actions] == [FileInto, Discard]


def test_envelope_parts_and_subaddress():
    r = _run('require ["envelope", "subaddress", "fileinto", "variables"];'
             'if envelope :detail :matches "to" "*" { fileinto "INBOX.${1}"; }')
    assert r.actions[0].mailbox == "INBOX.lists"


def test_script_cache(tmp_path):
    p = tmp_path / "a.sieve"
    p.write_bytes(b"keep;")
    cache = ScriptCache(Settings())
    s1 = cache.load(p)
    assert cache.load(p) is s1 and cache.hits == 1
    p.write_bytes(b"discard; ")
    os.utime(p, ns=(1, 1))
    assert cache.load(p) is not s1
    p.write_bytes(b"if {")
    os.utime(p, ns=(2, 2))
    with pytest.raises(SieveCompileError):
        cache.load(p)
    assert cache.compile(b"keep;") is cache.compile(b"keep;")


def test_no_script_is_plain_keep():
    r = run(None, MSG, ENV)
    assert r.effective_actions() == [Keep(mailbox="INBOX", implicit=True)]
