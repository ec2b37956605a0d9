"""Content scanning end to end: real Postfix -> `owlery milter` -> real clamd and spamd; quarantine and release.

- EICAR is refused with 554 5.7.1 naming the virus;
- GTUBE is quarantined (accepted, not delivered), listed and released with the CLI, and the
  released copy reaches its recipient through Postfix's reinjection port (the sink);
- a clean message is delivered with X-Spam-* and X-Virus-Scanned headers;
- with clamd stopped the milter answers 4xx, the upstream Postfix keeps the message queued
  and delivers it once clamd is back;
- PostgreSQL quarantine: a second milter process (EICAR quarantined by setting) stores in
  PostgreSQL; the CLI, run as another host would (its own config, its own process), lists
  and releases it.
"""

import uuid

import pytest

from owlery.quarantine.postgres import PostgresStore
from tests.e2e.quarantine_stack import GTUBE, SENDER, milter_main_cf, owlery, quarantine_stack, quarantined
from tests.harness.clamd import EICAR, EICAR_NAME, Clamd
from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.postfix import build_message


def content_config(clamd, spamd, extra=""):
    return (f'milter_inbound_stages = ["antivirus", "banned", "spam", "quarantine"]\n'
            f'milter_internal_networks = []\n'
            f'clamd_endpoint = "unix:{clamd.socket_path}"\n'
            f'clamd_timeout = "10s"\n'
            f'spamd_endpoint = "tcp:127.0.0.1:{spamd.port}"\n'
            f'spamd_timeout = "20s"\n'
            f'spam_quarantine_level = 6.9\n' + extra)


def eicar_message(to):
    import base64
    return (f"From: <{SENDER}>\r\nTo: <{to}>\r\nSubject: invoice\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n'
            "--b\r\nContent-Type: application/octet-stream; name=readme.txt\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.b64encode(EICAR).decode() + "\r\n--b--\r\n").encode()


@pytest.fixture(scope="module")
def av_clamd(harness_dirs):
    """A clamd of this module's own: one test stops and restarts it."""
    server = Clamd(harness_dirs("content-clamd")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(postfix_factory, harness_dirs, av_clamd, spamd):
    # The CLI's own settings file: same store, release to this Postfix's reinjection port.
    with quarantine_stack(postfix_factory, harness_dirs("content-owlery"), "content-postfix",
                          content_config(av_clamd, spamd, 'quarantine_host_name = "mx1.test"\n')) as parts:
        yield parts


def test_clean_message_is_delivered_with_spam_and_virus_headers(stack, pf):
    msg = build_message(sender=SENDER, to="bob@example.test", subject="lunch",
                        body="Shall we meet at noon on Thursday?\n")
    result = pf.send(SENDER, ["bob@example.test"], msg)
    assert result.data[0] == 250
    [sent] = pf.wait_sent(1)
    assert sent["X-Spam-Status"].startswith("No, score=") and "tests=[" in sent["X-Spam-Status"]
    assert sent["X-Spam-Score"] is not None and sent["X-Spam-Flag"] is None
    assert sent["X-Virus-Scanned"].startswith("ClamAV at ")
    assert "accept: END-OF-MESSAGE" in stack[1].log("milter")


def test_eicar_is_refused_naming_the_virus(stack, pf):
    result = pf.send(SENDER, ["bob@example.test"], eicar_message("bob@example.test"), check=False)
    code, text = result.data
    assert code == 554 and text.startswith("5.7.1") and EICAR_NAME in text, result.data
    assert pf.sent_messages() == []


def test_gtube_is_quarantined_then_released_to_its_recipient(stack, pf):
    _, daemons, cli_config = stack
    msg = build_message(sender=SENDER, to="carol@example.test", subject="cheap watches", body=GTUBE + "\n")
    result = pf.send(SENDER, ["carol@example.test"], msg)
    assert result.data[0] == 250                    # accepted, then discarded by the milter
    pf.wait_for_log(r"%s: milter-discard" % result.queue_id)
    assert pf.sent_messages() == []
    [rec] = quarantined(cli_config, "--reason", "spam", "--recipient", "carol@example.test")
    # GTUBE 1000; spamd now sees the Received line from 127.0.0.1, a trusted client: ALL_TRUSTED -1
    assert rec["sender"] == SENDER and rec["score"] >= 999 and rec["host"] == "mx1.test"
    assert rec["queue_id"] == result.queue_id
    assert f"quarantine_id={rec['mail_id']}" in daemons.log("milter")
    released = owlery(cli_config, "quarantine", "release", rec["mail_id"], "--by", "postmaster")
    assert released.returncode == 0, released.stderr
    [sent] = pf.wait_sent(1)
    assert sent.rcpts == ["carol@example.test"] and sent["Subject"] == "cheap watches"
    assert f"id={rec['mail_id']}" in sent["X-Quarantine-Released"]
    assert GTUBE in sent.raw.decode()
    shown = owlery(cli_config, "quarantine", "show", rec["mail_id"])
    assert "Recipient: <carol@example.test> released by postmaster" in shown.stdout
    assert "release: quarantine_id=" + rec["mail_id"] in (cli_config.parent / "audit.log").read_text()


def test_clamd_down_defers_and_mail_arrives_when_it_is_back(stack, pf, av_clamd, make_postfix):
    # An upstream Postfix relays to ours, as an Internet sender would, and retries on 4xx.
    upstream = make_postfix(name="content-upstream", transports={"example.test": f"smtp:[127.0.0.1]:{pf.port}"})
    av_clamd.stop()
    try:
        result = upstream.send(SENDER, ["dave@example.test"],
                               build_message(sender=SENDER, to="dave@example.test", subject="while clamd sleeps"))
        assert result.data[0] == 250
        upstream.wait_for_log(r"dave@example\.test.*status=deferred.*451 4\.7\.1", timeout=30)
        assert pf.sent_messages() == []
    finally:
        av_clamd.start()
    upstream.flush()
    [sent] = pf.wait_sent(1, timeout=60)
    assert sent["Subject"] == "while clamd sleeps" and sent["X-Virus-Scanned"] is not None


@pytest.fixture
def pg_schema_name(pg_dsn):
    name = "owlery_e2e_" + uuid.uuid4().hex[:10]
    yield name
    PostgresStore(pg_dsn, schema=name).drop_schema()


def test_postgresql_quarantine_shared_between_hosts(postfix_factory, harness_dirs, av_clamd, spamd, pg_dsn,
                                                    pg_schema_name):
    workdir = harness_dirs("content-pg-owlery")
    pg_settings = f'quarantine_backend = "postgresql"\nquarantine_pg_dsn = "{pg_dsn}"\n' \
                  f'quarantine_pg_schema = "{pg_schema_name}"\n'
    daemons = OwleryDaemons(workdir, which=("milter",), extra_config=content_config(
        av_clamd, spamd, pg_settings + 'antivirus_infected_action = "quarantine"\n'
                                       'quarantine_host_name = "mx-a.test"\n'))
    daemons.start()
    try:
        pf = postfix_factory(main_cf=milter_main_cf(daemons.ports["milter"]), name="content-pg-postfix")
        result = pf.send(SENDER, ["erin@example.test"], eicar_message("erin@example.test"))
        assert result.data[0] == 250
        pf.wait_for_log(r"%s: milter-discard" % result.queue_id)
        # "Host B": another process with its own settings file naming only the shared database.
        host_b = harness_dirs("content-pg-host-b") / "owlery.toml"
        host_b.write_text(pg_settings + f'quarantine_release_smtp_endpoint = "tcp:127.0.0.1:{pf.reinject_port}"\n')
        [rec] = quarantined(host_b)
        assert rec["reason"] == "virus" and rec["detail"].startswith(EICAR_NAME) and rec["host"] == "mx-a.test"
        released = owlery(host_b, "quarantine", "release", rec["mail_id"], "--to", "postmaster@example.test")
        assert released.returncode == 0, released.stderr
        [sent] = pf.wait_sent(1)
        assert sent.rcpts == ["postmaster@example.test"] and sent["X-Quarantine-Released"] is not None
        states = {r.address: r.status for r in PostgresStore(pg_dsn, schema=pg_schema_name).get(
            rec["mail_id"]).recipients}
        assert states == {"erin@example.test": "pending", "postmaster@example.test": "released"}
        pf.stop()
    finally:
        daemons.stop()
