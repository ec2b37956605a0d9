"""A greylisted triplet let through at last is a decision line at info (policyd.pipeline `_log`,
checks.Verdict `noteworthy`): before, a pass answered DUNNO and logged nothing above debug, so
"why did this sender's mail get in" had no answer in the log, while postgrey says
"action=pass, reason=triplet found". This mattered with greylist_header = "" (no header);
with the default header the pass was, and stays, logged as its PREPEND. Only that change is at
info: later requests of a known triplet stay at debug (a busy MX would log every recipient).
"""

from __future__ import annotations

import logging

from tests.policyd.test_greylist_check import T0, decide, make_pipeline


def _lines(caplog) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "owlery.policyd"]


def test_the_pass_after_the_delay_is_an_info_line_and_repeats_are_not(tmp_path, caplog):
    pipe = make_pipeline(tmp_path, greylist_header="")
    s = pipe.new_session()
    with caplog.at_level(logging.DEBUG, logger="owlery.policyd"):
        decide(pipe, s, T0)
        caplog.clear()
        passed = decide(pipe, s, T0 + 301, instance="i2", queue_id="4F3A21C")
        assert passed.action.verb == "DUNNO"
        lines = _lines(caplog)
        assert len(lines) == 1 and lines[0][0] == logging.INFO, lines
        assert lines[0][1].startswith("policyd: 4F3A21C: dunno: RCPT from mail.sender.example[192.0.2.10]")
        assert "check=greylist" in lines[0][1] and "greylist=passed delayed=301" in lines[0][1]
        caplog.clear()
        decide(pipe, s, T0 + 400, instance="i3")
        assert [level for level, _ in _lines(caplog)] == [logging.DEBUG]


def test_another_checks_action_answers_a_pass(tmp_path, caplog):
    """The pass is noted only when the request's answer is DUNNO: a refusal by a later check is
    that check's line (here: greylist_header's PREPEND)."""
    pipe = make_pipeline(tmp_path)
    s = pipe.new_session()
    decide(pipe, s, T0)
    with caplog.at_level(logging.DEBUG, logger="owlery.policyd"):
        d = decide(pipe, s, T0 + 301, instance="i2")
    assert d.action.verb == "PREPEND"
    [(level, line)] = _lines(caplog)
    assert level == logging.INFO and "prepend" in line and "greylist=passed" in line
