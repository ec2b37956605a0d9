"""fileinto :specialuse takes a special-use attribute, a backslash and an atom (RFC 8579 4,
RFC 6154 2): a constant that is none ("Junk") is a compile error; one built at run time is a
runtime error, and the implicit keep stores into INBOX. Found by the Maildir differential
against Dovecot (tests/delivery/test_maildir_dovecot_differential.py)."""

import pytest

from sieve.api import Envelope, MemoryHost, SieveCompileError, compile_script, run

ENV = Envelope(mail_from="a@example.org", rcpt_to="b@example.org")
MSG = b"From: a@example.org\r\nSubject: x\r\n\r\nhi\r\n"


def test_constant_flag_without_backslash_is_a_compile_error():
    with pytest.raises(SieveCompileError, match="specialuse tag: invalid special-use flag `Junk' specified"):
        compile_script('require ["fileinto", "special-use"]; fileinto :specialuse "Junk" "Spam";')


def test_flag_built_at_run_time_is_a_runtime_error_and_keeps():
    script = compile_script('require ["fileinto", "special-use", "variables"]; set "f" "Junk";'
                            ' fileinto :specialuse "${f}" "Spam";')
    result = run(script, MSG, ENV, host=MemoryHost())
    assert result.status == "error" and result.implicit_keep


def test_a_valid_flag_still_files():
    script = compile_script('require ["fileinto", "special-use"]; fileinto :specialuse "\\\\Junk" "Spam";')
    result = run(script, MSG, ENV, host=MemoryHost())
    assert result.ok and [a.special_use for a in result.actions] == ["\\Junk"]
