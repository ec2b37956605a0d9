"""The vnd.dovecot.testsuite harness against Pigeonhole's own testsuite extension
(src/testsuite/*.c): the commands, objects and settings a reference test may use behave as
there. Each case is a small self-written .svtest run through sieve.testsuite.run_file."""

from __future__ import annotations

from sieve import testsuite
from sieve.testsuite import run_file

HEAD = 'require "vnd.dovecot.testsuite";\n'


def _run(tmp_path, body: str, files: dict[str, str] | None = None, requires: str = ""):
    for name, text in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    t = tmp_path / "t.svtest"
    t.write_text(HEAD + requires + body)
    return run_file(str(t))


def _blocks(rep):
    return [(b.name, b.status) for b in rep.blocks]


# --- test_set objects -----------------------------------------------------------------------


def test_set_bare_envelope_object_compiles_and_does_nothing(tmp_path):
    # testsuite-objects.c: "envelope" without a member is a known object; setting it is a no-op
    rep = _run(
        tmp_path,
        """
test_set "envelope.from" "a@example.net";
test_set "envelope" "b@example.net";
test "unchanged" {
    if not envelope :is "from" "a@example.net" { test_fail "envelope changed"; }
}
""",
        requires='require "envelope";\n',
    )
    assert rep.case_error is None, rep.output
    assert _blocks(rep) == [("unchanged", "PASS")]


def test_set_unknown_member_is_a_compile_error_with_pigeonhole_wording(tmp_path):
    rep = _run(tmp_path, 'test_set "message.from" "x";\ntest "x" {}\n')
    assert rep.case_error == "failed to compile testcase script"
    assert any("member 'from' does not exist for testsuite object 'message'" in line for line in rep.output)


def test_set_object_with_a_variable_is_checked_as_written(tmp_path):
    # Pigeonhole reads the object argument's text at compile time: "${o}" names no object
    rep = _run(tmp_path, 'set "o" "message";\ntest_set "${o}" "x";\ntest "x" {}\n', requires='require "variables";\n')
    assert rep.case_error == "failed to compile testcase script"
    assert any("unknown testsuite object '${o}'" in line for line in rep.output)


# --- test_mailbox_create / test_mailbox_delete ------------------------------------------------


def test_mailbox_delete_removes_the_mailbox(tmp_path):
    rep = _run(
        tmp_path,
        """
test_mailbox_create "INBOX.Old";
test "created" {
    if not mailboxexists "INBOX.Old" { test_fail "not created"; }
}
test_mailbox_delete "INBOX.Old";
test "deleted" {
    if mailboxexists "INBOX.Old" { test_fail "still there"; }
    fileinto "INBOX.Old";
    if test_result_execute { test_fail "stored into a deleted mailbox"; }
}
test "deleting a missing mailbox fails the test" {
    test_mailbox_delete "INBOX.Never";
}
test "INBOX cannot be deleted" {
    test_mailbox_delete "INBOX";
}
""",
        requires='require ["mailbox", "fileinto"];\n',
    )
    assert rep.case_error is None, rep.output
    assert _blocks(rep) == [
        ("created", "PASS"),
        ("deleted", "PASS"),
        ("deleting a missing mailbox fails the test", "FAIL"),
        ("INBOX cannot be deleted", "FAIL"),
    ]


def test_mailbox_create_checks_utf8_at_compile_time_only(tmp_path):
    # sieve_mailbox_check_name checks UTF-8 only: a literal that is not UTF-8 does not compile
    rep = _run(tmp_path, 'test_mailbox_create "a${hex:ff}b";\ntest "x" {}\n', requires='require "encoded-character";\n')
    assert rep.case_error == "failed to compile testcase script"
    # a name the store refuses creates nothing and the file runs on (Pigeonhole ignores it)
    rep = _run(
        tmp_path,
        """
test_mailbox_create "INBOX..x";
test "still running" {
    if mailboxexists "INBOX..x" { test_fail "created"; }
}
""",
        requires='require "mailbox";\n',
    )
    assert rep.case_error is None, rep.output
    assert _blocks(rep) == [("still running", "PASS")]


# --- printing commands ------------------------------------------------------------------------


def test_message_print_and_result_print_write_output(tmp_path):
    rep = _run(
        tmp_path,
        """
test_set "message" "Subject: hello-print\\r\\n\\r\\nbody\\r\\n";
test "print" {
    fileinto "INBOX.Box";
    test_message_print;
    test_result_print;
}
""",
        requires='require "fileinto";\n',
    )
    assert _blocks(rep) == [("print", "PASS")]
    out = "\n".join(rep.output)
    assert "--MESSAGE: " in out and "Subject: hello-print" in out and "--MESSAGE--" in out
    assert "store INBOX.Box" in out


# --- test_fail inside a script run by the test ------------------------------------------------


def test_fail_in_a_sub_script_fails_the_open_block(tmp_path):
    # testsuite-common.c: a test_fail in another interpreter counts a failure and stops that
    # script; the block that ran it fails even when it does not call test_fail itself
    rep = _run(
        tmp_path,
        """
test "sub-script failure" {
    if not test_script_compile "sub.sieve" { test_fail "compile"; }
    if test_script_run { }
}
test "next block unaffected" {
}
""",
        files={"sub.sieve": 'require "vnd.dovecot.testsuite";\ntest_fail "inner failure";\n'},
    )
    assert _blocks(rep) == [("sub-script failure", "FAIL"), ("next block unaffected", "PASS")]
    assert "inner failure" in rep.blocks[0].reason


# --- test_config_reload and settings ----------------------------------------------------------


def test_config_reload_of_an_unknown_extension_aborts_the_file(tmp_path):
    rep = _run(tmp_path, 'test "a" {}\ntest_config_reload :extension "no-such-extension";\ntest "b" {}\n')
    assert rep.case_error is not None and "unknown extension" in rep.case_error
    assert [b.status for b in rep.blocks] == ["PASS", "FAIL"]


def test_config_sieve_environment_item(tmp_path):
    rep = _run(
        tmp_path,
        """
test_config_set "sieve_environment/display_name" "Jane Doe";
test_config_reload :extension "vnd.dovecot.environment";
test "config item" {
    if not environment :is "vnd.dovecot.config.display_name" "Jane Doe" { test_fail "missing"; }
}
""",
        requires='require "vnd.dovecot.environment";\n',
    )
    assert _blocks(rep) == [("config item", "PASS")]


def test_config_vacation_dont_check_recipient(tmp_path):
    # the older Pigeonhole name, inverted: "yes" turns the recipient check off
    rep = _run(
        tmp_path,
        """
test_set "message" text:
From: friend@example.net
To: list@example.org
Subject: hi

x
.
;
test_set "envelope.to" "me@example.com";
test_config_set "sieve_vacation_dont_check_recipient" "yes";
test_config_reload :extension "vacation";
test "reply although not addressed to me" {
    vacation "away";
    if not test_result_execute { test_fail "execute failed"; }
    if not test_message :smtp 0 { test_fail "no reply sent"; }
}
test_result_reset;
test_set "message" text:
From: friend@example.net
To: list@example.org
Subject: hi

x
.
;
test_set "envelope.to" "me@example.com";
test_config_set "sieve_vacation_dont_check_recipient" "no";
test_config_reload :extension "vacation";
test "no reply when the check is on" {
    vacation "away";
    if not test_result_execute { test_fail "execute failed"; }
    if test_message :smtp 0 { test_fail "reply sent"; }
}
""",
        requires='require "vacation";\n',
    )
    assert _blocks(rep) == [
        ("reply although not addressed to me", "PASS"),
        ("no reply when the check is on", "PASS"),
    ], rep.output


def test_config_sieve_max_cpu_time_limits_scripts_run_after_the_reload(tmp_path, monkeypatch):
    # a clock that advances 10 ms each time it is read: the CPU time a script uses grows
    # with the steps it runs, deterministically
    ticks = iter(range(10**9))
    monkeypatch.setattr(testsuite, "_cpu_time", lambda: next(ticks) / 100)
    heavy = "".join(f'if header :contains "subject" "x{i}" {{ keep; }}\n' for i in range(300))
    rep = _run(
        tmp_path,
        """
test_config_set "sieve_max_cpu_time" "1s";
test_config_reload;
test "heavy script stopped" {
    if not test_script_compile "heavy.sieve" { test_fail "compile"; }
    if test_script_run { test_fail "ran past the CPU limit"; }
    if not test_error :count "eq" "1" { test_fail "no error"; }
    if not test_error :contains "CPU time limit" { test_fail "wrong error"; }
}
test "light script runs" {
    if not test_script_compile "light.sieve" { test_fail "compile"; }
    if not test_script_run { test_fail "stopped"; }
}
test_config_set "sieve_max_cpu_time" "0";
test_config_reload;
test "no limit again" {
    if not test_script_compile "heavy.sieve" { test_fail "compile"; }
    if not test_script_run { test_fail "stopped without the limit"; }
}
""",
        files={"heavy.sieve": heavy, "light.sieve": "keep;\n"},
        requires='require "relational";\nrequire "comparator-i;ascii-numeric";\n',
    )
    assert _blocks(rep) == [
        ("heavy script stopped", "PASS"),
        ("light script runs", "PASS"),
        ("no limit again", "PASS"),
    ], rep.output


def test_config_sieve_extensions_plus_minus(tmp_path):
    rep = _run(
        tmp_path,
        """
test_config_set "sieve_extensions" "-fileinto";
test_config_reload;
test "fileinto disabled" {
    if test_script_compile "f.sieve" { test_fail "compiled"; }
}
test_config_set "sieve_extensions" "+fileinto";
test_config_reload;
test "fileinto enabled" {
    if not test_script_compile "f.sieve" { test_fail "did not compile"; }
}
test_config_set "sieve_extensions" "envelope";
test_config_reload;
test "only envelope" {
    if test_script_compile "f.sieve" { test_fail "compiled"; }
    if not test_script_compile "e.sieve" { test_fail "envelope did not compile"; }
}
test_config_unset "sieve_extensions";
test_config_reload;
test "back to all" {
    if not test_script_compile "f.sieve" { test_fail "did not compile"; }
}
""",
        files={"f.sieve": 'require "fileinto";\nfileinto "x";\n', "e.sieve": 'require "envelope";\nkeep;\n'},
    )
    assert _blocks(rep) == [
        ("fileinto disabled", "PASS"),
        ("fileinto enabled", "PASS"),
        ("only envelope", "PASS"),
        ("back to all", "PASS"),
    ], rep.output


def test_config_settings_without_visible_effect_do_not_skip(tmp_path):
    # tracing, the user log, and the periods of databases the testsuite lacks
    rep = _run(
        tmp_path,
        """
test_config_set "sieve_trace_level" "matching";
test_config_set "sieve_user_log_path" "/nonexistent/log";
test_config_set "sieve_redirect_duplicate_period" "1h";
test_config_reload;
test "runs" {
    redirect "a@example.net";
    if not test_result_execute { test_fail "execute failed"; }
}
""",
    )
    assert _blocks(rep) == [("runs", "PASS")], rep.output


def test_config_pigeonhole_23_spamtest_names(tmp_path):
    rep = _run(
        tmp_path,
        """
test_set "message" text:
X-Spam-Score: 4
Subject: s

x
.
;
test_config_set "sieve_spamtest_status_type" "score";
test_config_set "sieve_spamtest_status_header" "X-Spam-Score: ([0-9]+)";
test_config_set "sieve_spamtest_max_value" "4";
test_config_reload :extension "spamtest";
test "old name read" {
    if not spamtest :value "eq" :comparator "i;ascii-numeric" "10" { test_fail "max value not applied"; }
}
""",
        requires='require ["spamtest", "relational", "comparator-i;ascii-numeric"];\n',
    )
    assert _blocks(rep) == [("old name read", "PASS")], rep.output


# --- test_imap_metadata_set -------------------------------------------------------------------


def test_imap_metadata_set_mailbox_is_case_insensitive_inbox(tmp_path):
    rep = _run(
        tmp_path,
        """
test_imap_metadata_set :mailbox "inbox" "/private/comment" "hello";
test "INBOX entry" {
    if not metadata "INBOX" "/private/comment" "hello" { test_fail "not found"; }
}
""",
        requires='require "mboxmetadata";\n',
    )
    assert _blocks(rep) == [("INBOX entry", "PASS")], rep.output


def test_imap_metadata_set_invalid_entry_aborts_the_file(tmp_path):
    rep = _run(
        tmp_path,
        """
test "before" {}
test_imap_metadata_set "/other/comment" "x";
test "after" {}
""",
    )
    assert rep.case_error is not None and "/private or /shared" in rep.case_error
    assert [b.status for b in rep.blocks] == ["PASS", "FAIL"]
