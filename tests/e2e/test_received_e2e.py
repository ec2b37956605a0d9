"""The synthesized Received field end to end: real Postfix -> `owlery milter` -> real spamd; quarantine and release.

Postfix does not show milters its own Received line. The milter writes the one Postfix adds
and sends it to spamd before the message, and stores it (with the headers the stages added)
with a quarantined copy:

- a message from an outside client (XCLIENT) is scored by spamd without NO_RELAYS or
  NO_RECEIVED (spamd's rules are listed in X-Spam-Status);
- GTUBE from that client is quarantined and released; the released copy carries the
  Received field of its first arrival (client, queue id), X-Spam-Status/Flag and
  X-Quarantine-Released.
"""

import pytest

from tests.e2e.quarantine_stack import (GTUBE, OUTSIDE, SENDER, owlery, quarantine_stack, quarantined,
                                        spam_milter_config)
from tests.harness.postfix import build_message


@pytest.fixture(scope="module")
def stack(postfix_factory, harness_dirs, spamd):
    with quarantine_stack(postfix_factory, harness_dirs("received-owlery"), "received-postfix",
                          spam_milter_config(spamd)) as parts:
        yield parts


def _spamd_tests(status):
    assert "tests=[" in status, status
    return {t.strip().split("=")[0] for t in status.split("tests=[", 1)[1].split("]", 1)[0].split(",")}


def test_spamd_sees_the_outside_client(stack, pf):
    msg = build_message(sender=SENDER, to="bob@example.test", subject="lunch",
                        body="Shall we meet at noon on Thursday?\n")
    result = pf.send(SENDER, ["bob@example.test"], msg, xclient=OUTSIDE)
    assert result.data[0] == 250
    [sent] = pf.wait_sent(1)
    tests = _spamd_tests(sent["X-Spam-Status"])
    assert tests and not tests & {"NO_RELAYS", "NO_RECEIVED"}, tests
    assert sent["X-Spam-Status"].startswith("No, score=")
    # Postfix's own line has the very form the milter synthesizes (see the release test)
    [real] = [" ".join(r.split()) for r in sent.message.get_all("Received") if "192.0.2.7" in r]
    assert real.split("; ")[0] == (f"from client.example.test (mx.sender.test [192.0.2.7]) by mx.example.test "
                                   f"(Postfix) with ESMTP id {result.queue_id} for <bob@example.test>")


def test_released_message_keeps_its_received_and_spam_headers(stack, pf):
    _, _, cli_config = stack
    msg = build_message(sender=SENDER, to="carol@example.test", subject="cheap watches", body=GTUBE + "\n")
    result = pf.send(SENDER, ["carol@example.test"], msg, xclient=OUTSIDE)
    assert result.data[0] == 250                    # accepted, then discarded by the milter
    pf.wait_for_log(r"%s: milter-discard" % result.queue_id)
    [rec] = quarantined(cli_config, "--recipient", "carol@example.test")
    released = owlery(cli_config, "quarantine", "release", rec["mail_id"], "--by", "postmaster")
    assert released.returncode == 0, released.stderr
    [sent] = pf.wait_sent(1)
    assert f"id={rec['mail_id']}" in sent["X-Quarantine-Released"]
    # the line of its first arrival, as Postfix would have written it (the message never left then)
    [first] = [" ".join(r.split()) for r in sent.message.get_all("Received") if "192.0.2.7" in r]
    assert first.split("; ")[0] == (f"from client.example.test (mx.sender.test [192.0.2.7]) by mx.example.test "
                                    f"(Postfix) with ESMTP id {result.queue_id} for <carol@example.test>")
    assert sent["X-Spam-Flag"] == "YES"
    assert sent["X-Spam-Status"].startswith("Yes, score=") and "GTUBE" in sent["X-Spam-Status"]
    assert not _spamd_tests(sent["X-Spam-Status"]) & {"NO_RELAYS", "NO_RECEIVED"}
