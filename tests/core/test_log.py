"""Decision log lines (owlery.log)."""

import logging
import re
import sys
import threading

import pytest

from owlery import log as owlery_log
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


class _Settings:
    log_target = "stderr"
    log_level = "info"
    log_syslog_socket = "/dev/log"


@pytest.fixture
def batched(capsys):
    """owlery's stderr handler set up, decision batching on with a hand-run 'reactor turn'."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    for h in saved[0]:
        root.removeHandler(h)
    owlery_log.setup(_Settings(), "test")
    turns: list = []
    owlery_log.batch_decisions(turns.append)
    yield turns
    owlery_log.batch_decisions(None)
    for h in root.handlers[:]:
        root.removeHandler(h)
    owlery_log._stderr = None
    for h in saved[0]:
        root.addHandler(h)
    root.setLevel(saved[1])


def _ours_only() -> None:
    # pytest adds its capture handlers to the root for the test's call phase; any foreign
    # handler (rightly) turns queuing off, so the tests of queuing take them away.
    # capsys swaps sys.stderr only now, after the fixtures ran.
    root = logging.getLogger()
    for h in root.handlers[:]:
        if h is not owlery_log._stderr:
            root.removeHandler(h)
    owlery_log._stderr.stream = sys.stderr


def _lines(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_batched_decisions_are_written_once_per_turn_in_the_handler_format(batched, capsys):
    _ours_only()
    decision("policyd", "Q1", "defer_if_permit", to="a@example.org")
    decision("policyd", "Q2", "defer_if_permit", to="b@example.org")
    assert _lines(capsys) == []          # queued until the end of the turn
    assert len(batched) == 1             # one flush scheduled for the turn, not one per line
    batched.pop()()
    lines = _lines(capsys)
    assert [line.split(" ", 3)[3] for line in lines] == [
        "policyd: Q1: defer_if_permit: to=<a@example.org>", "policyd: Q2: defer_if_permit: to=<b@example.org>"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO policyd: .*", line) for line in lines)
    # The logging path (a non-decision record) gives the same shape of line.
    logging.getLogger("owlery.policyd").info("policyd: plain")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO policyd: plain", _lines(capsys)[0])


def test_other_records_write_queued_decisions_first(batched, capsys):
    _ours_only()
    decision("policyd", "Q1", "reject")
    logging.getLogger("owlery.policyd").warning("policyd: backend down")
    lines = _lines(capsys)
    assert [line.split(" ", 2)[2] for line in lines] == ["INFO policyd: Q1: reject", "WARNING policyd: backend down"]
    batched.pop()()                      # the scheduled flush finds nothing left
    assert _lines(capsys) == []


def test_decisions_from_other_threads_are_written_at_once(batched, capsys):
    _ours_only()
    t = threading.Thread(target=decision, args=("lmtpd", "Q9", "deliver"))
    t.start()
    t.join()
    assert [line.split(" ", 2)[2] for line in _lines(capsys)] == ["INFO lmtpd: Q9: deliver"]
    assert batched == []


def test_decisions_below_the_level_are_not_written(batched, capsys):
    _ours_only()
    decision("policyd", "Q1", "dunno", level=logging.DEBUG)
    assert batched == [] and _lines(capsys) == []


def test_a_foreign_handler_gets_decisions_through_logging(batched, caplog):
    with caplog.at_level(logging.INFO):
        decision("policyd", "Q1", "reject")
    assert caplog.messages == ["policyd: Q1: reject"]
    assert batched == []


def test_closing_the_handler_writes_what_is_queued(batched, capsys):
    _ours_only()
    decision("policyd", "Q1", "reject")
    owlery_log.setup(_Settings(), "test")    # a reload replaces the handler and keeps batching
    _ours_only()
    assert [line.split(" ", 2)[2] for line in _lines(capsys)] == ["INFO policyd: Q1: reject"]
    decision("policyd", "Q2", "reject")
    assert _lines(capsys) == []
    batched[-1]()
    assert [line.split(" ", 2)[2] for line in _lines(capsys)] == ["INFO policyd: Q2: reject"]


def test_control_characters_in_the_queue_id_are_replaced_too():
    # The queue id comes from the policy request, so from whoever can talk to the daemon.
    assert format_decision("policyd", "Q\x1b[2J", "dunno") == "policyd: Q?[2J: dunno"
