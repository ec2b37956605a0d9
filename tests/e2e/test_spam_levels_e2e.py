"""Per-recipient spam levels end to end: real Postfix -> `owlery milter` -> real spamd, levels from real slapd.

The milter runs the spam and quarantine stages with spam_directory_levels on, its directory
the harness slapd (seed: bob has a low amavisSpamKillLevel of 3; alice tag2 4.5, kill 12.5),
wired into Postfix with the README's lines (smtpd_milters and non_smtpd_milters). A spamd of
this module's own scores a marker phrase at 5.5, so one message lands between the two
recipients' levels:

- bob's copy is taken off the envelope (delrcpt) and quarantined for him alone; alice gets
  the message, flagged as spam by her own tag2 level;
- bob's copy, released with `owlery quarantine release` through Postfix's sendmail (README
  wiring: non_smtpd_milters sees it as a local client, so it is not scanned again), reaches him;
- a message both are over (GTUBE) is quarantined whole, for both.
"""

import pytest

from tests.e2e.quarantine_stack import GTUBE, OUTSIDE, SENDER, owlery, quarantine_stack, quarantined
from tests.harness.postfix import build_message
from tests.harness.spamd import Spamd

MARKER = "owlery midscore marker phrase"
ALICE, BOB = "alice@example.test", "bob@example.test"
MILTER_KEYS = ("smtpd_milters", "non_smtpd_milters", "milter_default_action", "milter_connect_macros",
               "milter_mail_macros")


@pytest.fixture(scope="module")
def marker_spamd(harness_dirs):
    server = Spamd(harness_dirs("levels-spamd"), extra_cf=[
        f"body OWLERY_MIDSCORE /{MARKER}/", "score OWLERY_MIDSCORE 5.5",
        "describe OWLERY_MIDSCORE test phrase between the recipients' levels"]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(postfix_factory, harness_dirs, marker_spamd, slapd):
    def wiring(daemons):
        return {k: v for k, v in daemons.main_cf(["example.test"]).items() if k in MILTER_KEYS}

    def release(pf):
        return ('quarantine_release_method = "sendmail"\n'
                f'quarantine_release_sendmail_config_directory = "{pf.config_dir}"\n')

    with quarantine_stack(postfix_factory, harness_dirs("levels-owlery"), "levels-postfix", (
            'milter_inbound_stages = ["spam", "quarantine"]\n'
            f'spamd_endpoint = "tcp:127.0.0.1:{marker_spamd.port}"\n'
            'spamd_timeout = "20s"\n'
            'spam_quarantine_level = 6.9\n'
            'spam_directory_levels = true\n'
            'directory_backend = "ldap"\n'
            f'ldap_servers = ["{slapd.url}"]\n'
            f'ldap_base_dn = "{slapd.base_dn}"\n'), main_cf=wiring, release=release) as parts:
        yield parts


def test_recipient_over_own_kill_level_is_quarantined_the_other_gets_it_then_sendmail_release(stack, pf):
    _, daemons, cli_config = stack
    msg = build_message(sender=SENDER, to=ALICE, subject="mid-score offer", body=f"Hello, {MARKER}, see you.\n",
                        headers={"Cc": BOB})
    result = pf.send(SENDER, [ALICE, BOB], msg, xclient=OUTSIDE)
    assert result.data[0] == 250 and result.accepted == [ALICE, BOB]
    [delivered] = pf.wait_sent(1)
    assert delivered.rcpts == [ALICE]                             # bob taken off the envelope
    assert delivered["X-Spam-Flag"] == "YES"                      # alice's own tag2 is 4.5
    assert "OWLERY_MIDSCORE" in delivered["X-Spam-Status"] and "required=4.5" in delivered["X-Spam-Status"]
    [rec] = quarantined(cli_config, "--recipient", BOB)
    assert rec["reason"] == "spam" and rec["queue_id"] == result.queue_id
    assert 4.5 <= rec["score"] < 12.5                             # over bob's 3, under alice's kill level
    assert [r["address"] for r in rec["recipients"]] == [BOB]
    assert quarantined(cli_config, "--recipient", ALICE) == []
    pf.wait_for_log(r"%s: to=<%s>.*status=sent" % (result.queue_id, ALICE))
    log = daemons.log("milter")
    assert f"quarantine: END-OF-MESSAGE from mx.sender.test[192.0.2.7]: from=<{SENDER}> to=<{BOB}> " \
           f"quarantine_id={rec['mail_id']}" in log
    assert f"{result.queue_id}: accept: " in log and f"removed={BOB}" in log

    # Released through Postfix's sendmail: non_smtpd_milters sees a local client, so the
    # milter does not scan (and quarantine) the copy again.
    released = owlery(cli_config, "quarantine", "release", rec["mail_id"], "--by", "postmaster")
    assert released.returncode == 0, released.stderr
    assert released.stdout == f"released {rec['mail_id']} to <{BOB}>\n"
    [copy] = [m for m in pf.wait_sent(2) if m.rcpts == [BOB]]
    assert copy.mail_from == SENDER and copy["Subject"] == "mid-score offer"
    assert f"id={rec['mail_id']}" in copy["X-Quarantine-Released"] and MARKER in copy.raw.decode()
    assert len(quarantined(cli_config, "--recipient", BOB)) == 1    # not quarantined a second time
    assert f"from localhost[127.0.0.1]: from=<{SENDER}> to=<{BOB}> stages=dkim_sign,authres" in daemons.log("milter")
    [state] = quarantined(cli_config, "--status", "released")
    assert state["mail_id"] == rec["mail_id"]
    assert "method=sendmail" in (cli_config.parent / "audit.log").read_text()


def test_message_both_are_over_is_quarantined_whole(stack, pf):
    _, _, cli_config = stack
    msg = build_message(sender=SENDER, to=ALICE, subject="cheap watches", body=GTUBE + "\n", headers={"Cc": BOB})
    result = pf.send(SENDER, [ALICE, BOB], msg, xclient=OUTSIDE)
    assert result.data[0] == 250
    pf.wait_for_log(r"%s: milter-discard" % result.queue_id)
    assert pf.sent_messages() == []
    [rec] = [r for r in quarantined(cli_config, "--reason", "spam") if r["queue_id"] == result.queue_id]
    assert sorted(r["address"] for r in rec["recipients"]) == [ALICE, BOB] and rec["score"] >= 1000
