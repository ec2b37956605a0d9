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

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.postfix import build_message

ROOT = Path(__file__).resolve().parents[2]
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
SENDER = "someone@sender.test"
OUTSIDE = {"ADDR": "192.0.2.7", "NAME": "mx.sender.test"}


def owlery(config, *argv):
    return subprocess.run([sys.executable, "-m", "owlery.app.cli", *argv, "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.fixture(scope="module")
def stack(postfix_factory, harness_dirs, spamd):
    workdir = harness_dirs("received-owlery")
    qdir = workdir / "quarantine"
    daemons = OwleryDaemons(workdir, which=("milter",), extra_config=(
        'milter_inbound_stages = ["spam", "quarantine"]\n'
        'milter_internal_networks = []\n'
        f'spamd_endpoint = "tcp:127.0.0.1:{spamd.port}"\n'
        'spamd_timeout = "20s"\n'
        'spam_quarantine_level = 6.9\n'
        f'quarantine_directory = "{qdir}"\n'))
    daemons.start()
    try:
        pf = postfix_factory(main_cf={
            "smtpd_milters": f"inet:127.0.0.1:{daemons.ports['milter']}", "milter_default_action": "tempfail",
            "milter_connect_macros": "j {daemon_name} {daemon_addr} v _ {client_addr} {client_name}",
            "milter_mail_macros": "i {auth_type} {auth_authen} {auth_author} {mail_addr}"}, name="received-postfix")
        cli_config = workdir / "cli.toml"
        cli_config.write_text(f'quarantine_directory = "{qdir}"\n'
                              f'quarantine_release_smtp_endpoint = "tcp:127.0.0.1:{pf.reinject_port}"\n'
                              f'quarantine_audit_log_path = "{workdir / "audit.log"}"\n')
        yield pf, daemons, cli_config
        pf.stop()
    finally:
        daemons.stop()


@pytest.fixture
def pf(stack):
    postfix = stack[0]
    postfix.clear_sent()
    return postfix


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
    listed = owlery(cli_config, "quarantine", "list", "--recipient", "carol@example.test", "--json")
    assert listed.returncode == 0, listed.stderr
    [rec] = [json.loads(line) for line in listed.stdout.splitlines()]
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
