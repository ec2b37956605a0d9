"""A quarantined message, released with the CLI, lands in its recipient's Maildir.

Real Postfix -> `owlery milter` (spam + quarantine stages, real spamd) quarantines GTUBE for
dave@deliver.test; `owlery quarantine release` re-injects it on Postfix's port that skips
the milters; Postfix hands it over LMTP to `owlery lmtpd`, which files it into dave's
Maildir INBOX (new/), carrying the header that says who released it.
"""

from __future__ import annotations

import json

import pytest

from tests.delivery.daemon import Lmtpd, base_config, remove_workdir, shared_workdir
from tests.e2e.test_content_e2e import GTUBE, SENDER, milter_main_cf, owlery
from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.postfix import build_message
from tests.harness.procs import wait_until


@pytest.fixture(scope="module")
def stack(postfix_factory, harness_dirs, spamd):
    work = shared_workdir("owlery-release-")
    lmtpd = Lmtpd(work, base_config(work) + "delivery_use_directory = false\n").start()
    workdir = harness_dirs("release-owlery")
    qdir = workdir / "quarantine"
    daemons = OwleryDaemons(workdir, which=("milter",), extra_config=(
        'milter_inbound_stages = ["spam", "quarantine"]\nmilter_internal_networks = []\n'
        f'spamd_endpoint = "tcp:127.0.0.1:{spamd.port}"\nspamd_timeout = "20s"\n'
        f'spam_quarantine_level = 6.9\nquarantine_directory = "{qdir}"\n'))
    daemons.start()
    try:
        pf = postfix_factory(main_cf=milter_main_cf(daemons.ports["milter"]), name="release-postfix",
                             transports={"deliver.test": f"lmtp:inet:127.0.0.1:{lmtpd.port}"})
        cli_config = workdir / "cli.toml"
        cli_config.write_text(f'quarantine_directory = "{qdir}"\n'
                              f'quarantine_release_smtp_endpoint = "tcp:127.0.0.1:{pf.reinject_port}"\n'
                              f'quarantine_audit_log_path = "{workdir / "audit.log"}"\n')
        yield pf, work, cli_config, lmtpd
        pf.stop()
    finally:
        daemons.stop()
        lmtpd.stop()
        remove_workdir(work)


def test_released_message_reaches_the_recipients_maildir(stack):
    pf, work, cli_config, lmtpd = stack
    msg = build_message(sender=SENDER, to="dave@deliver.test", subject="cheap watches", body=GTUBE + "\n")
    result = pf.send(SENDER, ["dave@deliver.test"], msg)
    assert result.data[0] == 250
    pf.wait_for_log(r"%s: milter-discard" % result.queue_id)
    inbox = work / "mail" / "deliver.test" / "dave" / "Maildir"
    assert not (inbox / "new").exists() or not list((inbox / "new").iterdir())
    listed = owlery(cli_config, "quarantine", "list", "--recipient", "dave@deliver.test", "--json")
    assert listed.returncode == 0, listed.stderr
    [rec] = [json.loads(line) for line in listed.stdout.splitlines()]
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
