"""Session behaviour aligned with Pigeonhole's managesieved, found by the differential test
(tests/managesieve/test_dovecot_differential.py); each test pins one of those fixes without Dovecot.
"""

from tests.managesieve import test_session as transcripts
from tests.managesieve.helpers import literal, plain

USER, PASSWORD, logged_in = transcripts.USER, transcripts.PASSWORD, transcripts.logged_in
home, make = transcripts.home, transcripts.make  # the fixtures of tests/managesieve/test_session.py

NO_UTF8 = b'NO "Syntax error: invalid UTF-8 in quoted string."\r\n'


def test_bad_commands_after_login_count_only_in_a_row(make):
    d = logged_in(make, max_bad_commands=3)
    for _ in range(5):  # a command that runs resets the count
        assert d.say("FOO\r\nBAR\r\n") == b'NO "Unknown command."\r\n' * 2
        assert d.say("NOOP\r\n") == b'OK "Done"\r\n'
    assert d.say("FOO\r\nBAR\r\nBAZ\r\n") == b'NO "Unknown command."\r\n' * 2 + b'BYE "Too many invalid commands."\r\n'
    assert d.closed


def test_before_login_three_bad_commands_in_all_end_the_connection(make):
    d = make()
    assert d.say("LISTSCRIPTS\r\n") == b'NO "Authenticate first."\r\n'  # not allowed yet: bad
    assert d.say("NOOP\r\n") == b'OK "Done"\r\n'  # does not reset
    assert d.say("CAPABILITY x\r\n") == b'NO "Bad arguments for CAPABILITY."\r\n'
    assert d.say("FOO\r\n") == b'BYE "Too many invalid commands."\r\n' and d.closed


def test_login_starts_a_fresh_count(make):
    d = make(max_bad_commands=2)
    assert d.say("FOO\r\n") == b'NO "Unknown command."\r\n'
    assert d.say(f'AUTHENTICATE "PLAIN" "{plain(USER, PASSWORD)}"\r\n') == b'OK "Logged in."\r\n'
    assert d.say("FOO\r\n") == b'NO "Unknown command."\r\n'
    assert d.say('AUTHENTICATE "PLAIN" ""\r\n') == b'BYE "Too many invalid commands."\r\n'  # not after login


def test_an_empty_line_is_a_bad_command(make):
    d = logged_in(make)
    assert d.say("\r\n") == b'NO "Syntax error: a command name was expected."\r\n'
    assert d.session.bad_commands == 1


def test_a_long_line_after_login_is_refused_and_skipped(make):
    d = logged_in(make, max_line_length=512)
    assert d.say(b"NOOP " + b"x" * 600) == b'NO "Syntax error: line too long."\r\n'  # before its LF
    assert d.say(b"y" * 5000 + b' "DELETESCRIPT"\r\nNOOP "t"\r\n') == b'OK (TAG "t") "Done"\r\n'
    assert d.session.reader.buffered == 0
    d = make(max_line_length=512)
    assert d.say(b"NOOP " + b"x" * 600 + b"\r\n") == b'BYE "Connection closed: line too long."\r\n'


def test_quoted_strings_and_tags_must_be_utf8(make):
    d = logged_in(make)
    assert d.say(b'NOOP "\xff"\r\n') == NO_UTF8
    assert d.say(b'GETSCRIPT "caf\xe9"\r\n') == NO_UTF8
    assert d.say(b"NOOP " + literal(b"\xff") + b"\r\n") == b'NO "The tag is not UTF-8."\r\n'
    assert d.say('NOOP "caf\u00e9"\r\n'.encode()) == 'OK (TAG "caf\u00e9") "Done"\r\n'.encode()


def test_a_literal_size_beyond_a_number_ends_the_connection(make):
    d = logged_in(make)
    assert d.say("NOOP {99999999999+}\r\n") == b'BYE "Connection closed: literal too large."\r\n'


def test_the_reserved_name_is_no_script(make):
    d = logged_in(make)
    for command in ('GETSCRIPT "active"', 'DELETESCRIPT "active"', 'SETACTIVE "active"', 'RENAMESCRIPT "active" "x"'):
        assert d.say(command + "\r\n") == b"NO (NONEXISTENT) \"There is no script 'active'.\"\r\n", command
    assert (
        d.say(b'PUTSCRIPT "active" ' + literal(b"keep;") + b"\r\n") == b'NO "Invalid script name: it is reserved."\r\n'
    )


def test_rename_of_a_missing_script_is_nonexistent_before_the_new_name_is_checked(make):
    d = logged_in(make)
    assert d.say('RENAMESCRIPT "missing" "a/b"\r\n') == b"NO (NONEXISTENT) \"there is no script 'missing'\"\r\n"
    assert d.say(b'PUTSCRIPT "here" ' + literal(b"keep;") + b"\r\n") == b'OK "Putscript completed."\r\n'
    assert d.say('RENAMESCRIPT "here" "a/b"\r\n') == b'NO "Invalid script name: it contains a slash."\r\n'


def test_names_may_start_with_a_dot(make, home):
    d = logged_in(make)
    for name in (".hidden", ".", ".."):
        assert d.say(f'PUTSCRIPT "{name}" "keep;"\r\n'.encode()) == b'OK "Putscript completed."\r\n'
    assert d.say("LISTSCRIPTS\r\n") == b'"."\r\n".."\r\n".hidden"\r\nOK "Listscripts completed."\r\n'
    assert (home / "sieve" / "...sieve").read_bytes() == b"keep;"
