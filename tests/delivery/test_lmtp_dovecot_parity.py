"""What the Dovecot LMTP differential (tests/delivery/test_lmtp_dovecot_differential.py) found
wrong in sieve/delivery/lmtp.py, pinned as sans-I/O transcripts: each failed before its fix.

RFC 5321 4.5.2 dot-unstuffing of every line, one copy for a repeated RCPT, quoted local parts,
RSET and QUIT without arguments, 500 5.5.1 (unknown) vs 500 5.5.2 (not a command), esmtp-param
syntax (501), and bad commands counted in a row as Dovecot counts them (lmtpd_bad_command_limit).
"""

from __future__ import annotations

from owlery.reply import Reply
from sieve.delivery import lmtp
from sieve.delivery import lmtpd_settings as _declared  # noqa: F401 - lmtpd_bad_command_limit
from tests.delivery.test_lmtp import codes, run

HELLO = b"LHLO c\r\nMAIL FROM:<s@x.test>\r\n"


def last_line(text: str) -> str:
    return [line for line in text.split("\r\n") if line][-1]


def test_a_leading_dot_is_removed_from_every_line_not_only_from_two_dots():
    # RFC 5321 4.5.2: "If the first character is a period and there are other characters on
    # the line, the first character is deleted." Dovecot: ". x" -> " x"; we kept ". x".
    _, txns = run([HELLO + b"RCPT TO:<a@d.test>\r\nDATA\r\n", b"S: x\r\n\r\n. x\r\n.y\r\n..z\r\n.\r\n"])
    assert txns[0].message == b"S: x\n\n x\ny\n.z\n"


def test_a_repeated_rcpt_is_one_copy_with_a_reply_for_each_rcpt():
    text, txns = run([HELLO + b"RCPT TO:<a@d.test>\r\nRCPT TO:<b@d.test>\r\nRCPT TO:<a@D.TEST>\r\nDATA\r\nx\r\n.\r\n"])
    assert [r.address for r in txns[0].recipients] == ["a@d.test", "b@d.test"]
    tail = [line for line in text.split("\r\n") if line][-3:]
    assert tail == ["250 2.0.0 <a@d.test> Saved", "250 2.0.0 <b@d.test> Saved", "250 2.0.0 <a@d.test> Saved"]


def test_a_quoted_local_part_that_needs_no_quotes_is_the_plain_mailbox():
    seen = []
    run(
        [HELLO + b'RCPT TO:<"alice"@d.test>\r\nRCPT TO:<"al ice"@d.test>\r\nRCPT TO:<"a\\lice"@d.test>\r\n'],
        answer_rcpt=lambda a: seen.append(a) or Reply(250, "2.1.5", "Ok"),
    )
    assert seen == ["alice@d.test", '"al ice"@d.test', "alice@d.test"]


def test_rset_and_quit_take_no_argument():
    text, _ = run([b"LHLO c\r\nRSET x\r\nQUIT x\r\nNOOP\r\n"])
    assert codes(text) == ["220", "250", "501", "501", "250"]


def test_unknown_command_and_no_command_at_all():
    text, _ = run([b"LHLO c\r\nFOO\r\nFOO1\r\nX_Y\r\n" + b"A" * 33 + b"\r\n\xff\xfe\r\n"])
    lines = [line[:9] for line in text.split("\r\n")[-6:-1]]
    assert lines == ["500 5.5.1", "500 5.5.2", "500 5.5.2", "500 5.5.2", "500 5.5.2"]


def test_a_parameter_not_in_esmtp_syntax_is_501_a_wellformed_unknown_one_555():
    text, _ = run(
        [
            b"LHLO c\r\n",
            "MAIL FROM:<a@b.test> X=\u00e9\r\n".encode(),
            b"MAIL FROM:<a@b.test> =1\r\n",
            b"MAIL FROM:<a@b.test> X-Y=1\r\n",
        ]
    )
    assert codes(text)[-3:] == ["501", "501", "555"]


def test_bad_commands_count_in_a_row_and_555_is_not_one():
    limits = lmtp.Limits(errors=3)
    text, _ = run([b"LHLO c\r\nFOO\r\nFOO\r\nNOOP\r\nFOO\r\nMAIL FROM:<a@b> X=1\r\nFOO\r\nFOO\r\n"], limits=limits)
    assert codes(text) == ["220", "250", "500", "500", "250", "500", "555", "500", "500"]
    text, _ = run([b"LHLO c\r\nFOO\r\nFOO\r\nFOO\r\nNOOP\r\n"], limits=limits)
    assert codes(text)[-2:] == ["421", "<cl"]


def test_the_bad_command_limit_is_a_setting():
    from types import SimpleNamespace

    from sieve.delivery.lmtpd import limits_from

    settings = SimpleNamespace(
        lmtpd_command_line_limit=2048,
        lmtpd_message_size_limit=1000,
        lmtpd_recipient_limit=5,
        lmtpd_pipeline_buffer_limit=1 << 20,
        lmtpd_bad_command_limit=11,
    )
    assert limits_from(settings).errors == 11
    assert _declared.LMTPD_BAD_COMMAND_LIMIT.default == 20
