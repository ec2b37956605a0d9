"""The .svtest harness maps Dovecot settings set by `test_config_set` onto Owlery's
(sieve/testsuite.py CONFIG_MAP and the extlists lists) and runs the block; a setting with no
Owlery counterpart skips the rest of the file with the reason."""

from __future__ import annotations

from sieve.pigeonhole_settings import dovecot_duration
from sieve.testsuite import run_file

HEAD = 'require "vnd.dovecot.testsuite";\nrequire "vacation";\nrequire "variables";\n'


def _run(tmp_path, body: str, files: dict[str, str] | None = None):
    for name, text in (files or {}).items():
        (tmp_path / name).write_text(text)
    t = tmp_path / "t.svtest"
    t.write_text(HEAD + body)
    return run_file(str(t))


def test_vacation_default_subject_and_template(tmp_path):
    rep = _run(tmp_path, '''
test_set "message" text:
From: a@example.net
To: b@example.org
Subject: Holidays

x
.
;
test_config_set "sieve_vacation_default_subject_template" "Re-%$-%%";
test_config_reload :extension "vacation";
test "template" {
    vacation "away";
    if not test_result_execute { test_fail "execute failed"; }
    test_message :smtp 0;
    if not header :is "subject" "Re-Holidays-%" { test_fail "template not applied"; }
}
test_result_reset;
# (the current message is now the reply, which is never answered: RFC 5230 5)
test_set "message" text:
From: a@example.net
To: b@example.org

x
.
;
test_config_set "sieve_vacation_default_subject" "I am away";
test_config_reload :extension "vacation";
test "default subject" {
    vacation "away";
    if not test_result_execute { test_fail "execute failed"; }
    test_message :smtp 0;
    if not header :is "subject" "I am away" { test_fail "default subject not applied"; }
}
''')
    assert [(b.name, b.status, b.reason) for b in rep.blocks] == [
        ("template", "PASS", ""), ("default subject", "PASS", "")], rep.output


def test_limits_map_onto_owlery_settings(tmp_path):
    rep = _run(tmp_path, '''
test_config_set "sieve_max_redirects" "1";
test_config_reload;
test "one redirect" {
    if not test_script_compile "two.sieve" { test_fail "compile failed"; }
    if test_script_run { test_fail "second redirect should fail the run"; }
}
''', {"two.sieve": 'redirect "a@example.org";\nredirect "b@example.org";\n'})
    assert [(b.status, b.reason) for b in rep.blocks] == [("PASS", "")], rep.output


def test_unknown_dovecot_setting_skips_with_reason(tmp_path):
    rep = _run(tmp_path, '''
test "before" { keep; }
test_config_set "sieve_frobnicate" "1";
test_config_reload;
test "after" { keep; }
''')
    assert [b.status for b in rep.blocks] == ["PASS", "SKIP"]
    assert "sieve_frobnicate" in rep.blocks[1].reason and "no Owlery counterpart" in rep.blocks[1].reason


def test_extlists_lists_from_the_configured_dict_file(tmp_path):
    rep = _run(tmp_path, '''
require "extlists";
test_config_set "sieve_extlists_list" ":addrbook:friends :addrbook:none";
test_config_set "sieve_extlists_list/:addrbook:friends/dict" "file";
test_config_set "sieve_extlists_list/:addrbook:friends/dict/file/driver" "file";
test_config_set "sieve_extlists_list/:addrbook:friends/dict/file/path" "${tst.path}/friends.dict";
test_config_reload :extension "extlists";
test "member" {
    if not address :list "from" ":addrbook:friends" { test_fail "member not found"; }
    if address :list "to" ":addrbook:friends" { test_fail "non-member found"; }
    if address :list "from" ":addrbook:none" { test_fail "empty list matched"; }
    if not valid_ext_list ":addrbook:none" { test_fail "configured empty list unknown"; }
    if valid_ext_list ":addrbook:other" { test_fail "unconfigured list known"; }
}
''', {"friends.dict": "priv/sieve/extlists/sender@example.com\n1\n"})
    assert [(b.status, b.reason) for b in rep.blocks] == [("PASS", "")], rep.output


def test_dovecot_time_values():
    assert dovecot_duration("1d") == 86400
    assert dovecot_duration("2 days") == 172800
    assert dovecot_duration("30 secs") == 30
    assert dovecot_duration("1 weeks") == 604800
