"""A quarantined message, released with the CLI, lands in its recipient's Maildir.

Real Postfix -> `owlery milter` (spam + quarantine stages, real spamd) quarantines GTUBE for
dave@deliver.test; `owlery quarantine release` re-injects it on Postfix's port that skips
the milters; Postfix hands it over LMTP to `owlery lmtpd`, which files it into dave's
Maildir INBOX (new/), carrying the header that says who released it.
"""

from __future__ import annotations

import pytest

from tests.delivery.daemon import maildir_lmtpd
from tests.e2e.quarantine_stack import GTUBE, SENDER, owlery, quarantine_stack, quarantined, spam_milter_config
from tests.harness.postfix import build_message
from tests.harness.procs import wait_until


@pytest.fixture(scope="module")
def stack(postfix_factory, harness_dirs, spamd):
    with maildir_lmtpd("owlery-release-") as (work, lmtpd), \
            quarantine_stack(postfix_factory, harness_dirs("release-owlery"), "release-postfix",
                             spam_milter_config(spamd),
                             transports={"deliver.test": f"lmtp:inet:127.0.0.1:{lmtpd.port}"}) as (pf, _, cli_config):
        yield pf, work, cli_config, lmtpd


def test_released_message_reaches_the_recipients_maildir(stack):
    pf, work, cli_config, lmtpd = stack
    msg = build_message(sender=SENDER, to="dave@deliver.test", subject="cheap watches", body=GTUBE + "\n")
    result = pf.send(SENDER, ["dave@deliver.test"], msg)
    assert result.data[0] == 250
    pf.wait_for_log(r"%s: milter-discard" % result.queue_id)
    inbox = work / "mail" / "deliver.test" / "dave" / "Maildir"
    assert not (inbox / "new").exists() or not list((inbox / "new").iterdir())
    [rec] = quarantined(cli_config, "--recipient", "dave@deliver.test")
    released = owlery(cli_config, "quarantine", "release", rec["mail_id"], "--by", "postmaster")
    assert released.returncode == 0, released.stderr
    wait_until(lambda: (inbox / "new").is_dir() and list((inbox / "new").iterdir()), 30,
               "released message in dave's Maildir")
    [path] = list((inbox / "new").iterdir())
    delivered = path.read_bytes()
    assert GTUBE.encode() in delivered and b"Subject: cheap watches" in delivered
    assert f"id={rec['mail_id']}".encode() in delivered and b"X-Quarantine-Released:" in delivered
    assert b"Delivered-To: dave@deliver.test" in delivered
    shown = owlery(cli_config, "quarantine", "show", rec["mail_id"])
    assert "Recipient: <dave@deliver.test> released by postmaster" in shown.stdout
