"""Decision log lines (owlery.log)."""

import logging

from owlery.log import decision, format_decision
from owlery.reply import Reply


def test_postfix_style_line_with_queue_id():
    line = format_decision("policyd", "4F3A21C", "reject", head="RCPT from mx.example[192.0.2.7]",
                           reply=Reply(450, "4.7.1", "<b@example.org>: Greylisted"),
                           from_="a@example.net", to="b@example.org", check="greylist")
    assert line == ("policyd: 4F3A21C: reject: RCPT from mx.example[192.0.2.7]: "
                    "450 4.7.1 <b@example.org>: Greylisted; from=<a@example.net> to=<b@example.org> check=greylist")


def test_no_queue_id_and_none_fields_dropped():
    line = format_decision("milter", None, "accept", check="dkim", score=None)
    assert line == "milter: accept: check=dkim"


def test_control_characters_cannot_split_a_line():
    line = format_decision("policyd", "Q", "dunno", helo="evil\r\nmilter: FAKE: accept")
    assert "\n" not in line and "\r" not in line


def test_decision_logs_one_line(caplog):
    with caplog.at_level(logging.INFO):
        decision("lmtpd", "ABC", "deliver", to="u@example.org", folder="INBOX")
    assert caplog.messages == ["lmtpd: ABC: deliver: to=<u@example.org> folder=INBOX"]
