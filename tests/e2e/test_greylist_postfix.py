"""Greylisting end to end: real Postfix asks `owlery policyd`; first attempt 450 4.7.1, retry accepted.

The policy daemon runs only the greylist check with a 1 s delay on an SQLite state file;
mail arrives over SMTP with XCLIENT as an outside client and is relayed to the sink.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.policyd_stack import greylist_config, policyd_postfix
from tests.harness.postfix import build_message

DELAY_S = 1


@pytest.fixture(scope="module")
def stack(postfix_factory, harness_dirs):
    workdir = harness_dirs("greylist-owlery")
    config = 'policyd_checks = { RCPT = ["greylist"] }\n' + greylist_config(workdir, DELAY_S)
    with policyd_postfix(postfix_factory, workdir, "greylist-postfix", config) as (pf, daemons):
        yield pf, daemons, workdir


def test_first_attempt_greylisted_retry_after_delay_accepted(stack):
    pf, daemons, _ = stack
    client = {"ADDR": "192.0.2.7", "NAME": "mail.sender.example"}
    msg = build_message(sender="news@sender.example", to="bob@example.test", subject="greylist e2e")
    first = pf.send("news@sender.example", ["bob@example.test"], msg, xclient=client, check=False)
    code, text = first.rcpt["bob@example.test"]
    assert code == 450 and "4.7.1" in text and "Greylisted" in text, first.rcpt
    assert pf.sent_messages() == []
    time.sleep(DELAY_S + 0.2)   # the greylist delay itself (the behaviour under test), not a readiness wait
    # the retry comes from another host of the same /24, as big senders do
    second = pf.send("news@sender.example", ["bob@example.test"], msg,
                     xclient={"ADDR": "192.0.2.8", "NAME": "mail2.sender.example"})
    assert second.accepted == ["bob@example.test"], second.rcpt
    sent = pf.wait_sent(1)
    header = sent[-1]["X-Greylist"]
    assert header is not None and header.startswith("delayed "), sent[-1]
    assert int(header.split()[1]) >= DELAY_S
    assert "by Owlery at mx.example.test" in sent[-1]["X-Greylist"]
    daemons.wait_log("policyd", re.compile(r"defer-if-permit: .*check=greylist"))


def test_whitelisted_recipient_not_greylisted(stack):
    pf, daemons, workdir = stack
    (workdir / "wl_rcpts").write_text("postmaster@\n")
    time.sleep(1.1)   # the daemon re-stats whitelist files at most once a second (behaviour, not readiness)
    msg = build_message(sender="x@other.example", to="postmaster@example.test")
    r = pf.send("x@other.example", ["postmaster@example.test"], msg, xclient={"ADDR": "198.51.100.9"})
    assert r.accepted == ["postmaster@example.test"], r.rcpt
