"""The usual university topology end to end: two MX relays in front of two back ends, one LDAP directory.

Issue 15, item 5. Everything runs on loopback, built by tests/harness/topology.py:
- a private slapd of this module (the seed directory plus this module's users, each with a
  misc.schema `mailHost`: back end A is 127.0.0.2, back end B is 127.0.0.3);
- two relays, each a private Postfix reading `owlery socketmap` through exactly the lines
  owlery.app.postfix.socketmap_tables(settings, "relay") gives (relay_domains,
  relay_recipient_maps, virtual_alias_maps, transport_maps -> "smtp:[MAILHOST]:PORT"), with
  `owlery policyd` (recipient, lists, quota asking the back end, greylist in a Redis both
  relays share) and `owlery milter`;
- two back ends, each a private Postfix (socketmap_tables(settings, "backend"), smtpd on its
  own 127.0.0.x address) handing mail to `owlery lmtpd` over LMTP into its own Maildirs, and an
  `owlery policyd` on 127.0.0.x answering the relays' quota questions (policyd_client_networks).
  A private Dovecot per back end serves the same Maildirs over IMAP.

From an outside client (XCLIENT ADDR=192.0.2.44) through a relay: an unknown user gets 550 at
RCPT; a user homed on B lands in B's Maildir, not A's; a group spanning both back ends lands
once in each member's Maildir; a user over quota on B is refused at the relay's RCPT; a
protected list refuses the outsider; a new triplet greylisted at relay 1 passes at relay 2
(shared Redis, delay 0); with slapd stopped the relay answers 4xx at RCPT and the retry
after slapd is back is delivered. And Postfix's own `postmap -q ADDRESS socketmap:...:
relay_recipient_maps` says "exists" for exactly the addresses the relay's policyd does not
refuse as unknown (550 5.1.1).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import redis

from owlery.app.postfix import socketmap_tables
from policyd.cli import query
from tests.harness.postfix import build_message
from tests.harness.procs import wait_until
from tests.harness.topology import Topology

SENDER = "news@outside.test"
OUTSIDE = {"ADDR": "192.0.2.44", "NAME": "mx.outside.test"}
POSTMAP = shutil.which("postmap") or "/usr/sbin/postmap"
GREYLISTED_CLIENT = {"ADDR": "198.51.100.7", "NAME": "mx.other.test"}   # not on the greylist whitelist


@pytest.fixture(scope="module")
def topo(postfix_factory, harness_dirs, dns_stub, redis_url):
    topology = Topology(postfix_factory, harness_dirs, dns_stub, redis_url)
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()


def send(relay, rcpt, subject, client=OUTSIDE):
    msg = build_message(sender=SENDER, to=rcpt, subject=subject, body=f"{subject}\n")
    return relay.send(SENDER, [rcpt], msg, xclient=client, check=False)


def test_unknown_user_refused_at_the_relay(topo):
    code, text = send(topo.relays[0].pf, "nobody@example.test", "to nobody").rcpt["nobody@example.test"]
    assert code == 550 and text.startswith("5.1.1 <nobody@example.test>"), (code, text)
    topo.relays[0].daemons.wait_log("policyd", "550 5.1.1 <nobody@example.test>: User unknown")


def test_user_homed_on_b_lands_in_b_only(topo):
    subject = "for ben on back end B"
    result = send(topo.relays[1].pf, "ben@example.test", subject)
    assert result.data is not None and result.data[0] == 250, (result.rcpt, result.data)
    [path] = topo.wait_delivered("b", "ben", subject)
    raw = path.read_bytes()
    assert b"Delivered-To: ben@example.test\n" in raw
    assert b"by relay2.example.test (Postfix)" in raw and b"by backend-b.example.test (Postfix)" in raw, raw.decode()
    topo.relays[1].pf.wait_for_log(r"%s: to=<ben@example\.test>, relay=127\.0\.0\.3\[127\.0\.0\.3\]:%d.*status=sent"
                                   % (result.queue_id, topo.backend_smtp_port))
    topo.settle()
    assert topo.maildir_hits("a", "ben", subject) == []


def test_group_spanning_both_back_ends_lands_once_per_member(topo):
    subject = "all hands meeting"
    result = send(topo.relays[0].pf, "allhands@example.test", subject)
    assert result.data is not None and result.data[0] == 250, (result.rcpt, result.data)
    topo.wait_delivered("a", "ann", subject)
    topo.wait_delivered("b", "ben", subject)
    topo.settle()
    assert len(topo.maildir_hits("a", "ann", subject)) == 1
    assert len(topo.maildir_hits("b", "ben", subject)) == 1
    # each member went to its own back end only
    assert topo.maildir_hits("b", "ann", subject) == [] and topo.maildir_hits("a", "ben", subject) == []
    # and each back end's Dovecot serves it from there
    assert topo.imap_subjects("a", "ann").count(subject) == 1
    assert topo.imap_subjects("b", "ben").count(subject) == 1


def test_over_quota_user_on_b_refused_at_the_relay(topo):
    code, text = send(topo.relays[0].pf, "cyd@example.test", "to a full mailbox").rcpt["cyd@example.test"]
    assert code in (452, 552) and text[:5] in ("4.2.2", "5.2.2"), (code, text)
    # B's policyd answered the relay's question (the relay has no Maildir for cyd), and A was not asked
    topo.relays[0].daemons.wait_log("policyd", "check=quota")
    assert "full=cyd@example.test backend=127.0.0.3" in topo.relays[0].daemons.log("policyd")
    topo.backends[1].daemons.wait_log("policyd", f"{code} {text[:5]} <cyd@example.test>: Mailbox full")
    assert "cyd@example.test" not in topo.backends[0].daemons.log("policyd")


def test_protected_list_refuses_an_outsider(topo):
    code, text = send(topo.relays[0].pf, "board@example.test", "to the board").rcpt["board@example.test"]
    assert code == 550 and text.startswith("5.7.1 <board@example.test>"), (code, text)
    topo.relays[0].daemons.wait_log("policyd", "check=lists instance=")
    assert topo.maildir_hits("a", "ann", "to the board") == []


def test_greylisting_is_shared_by_the_relays(topo):
    subject = "greylisted once"
    code, text = send(topo.relays[0].pf, "ann@example.test", subject, GREYLISTED_CLIENT).rcpt["ann@example.test"]
    assert code == 450 and text.startswith("4.7.1 <ann@example.test>") and "Greylisted" in text, (code, text)
    # relay 1 writes new triplets behind, in batches (greylist_flush_interval): a retry that came
    # sooner would be one more deferral, as the write-behind design allows; wait for the write
    store = redis.Redis.from_url(topo.redis_url)
    wait_until(lambda: any(store.scan_iter(match=f"{topo.prefix}gl:t:198.51.100.*", count=1000)), 10,
               "relay 1's greylist triplet in Redis")
    # the retry reaches the other relay: it knows the triplet from Redis (delay 0), so it passes
    result = send(topo.relays[1].pf, "ann@example.test", subject, GREYLISTED_CLIENT)
    assert result.data is not None and result.data[0] == 250, (result.rcpt, result.data)
    [path] = topo.wait_delivered("a", "ann", subject)
    assert b"X-Greylist: delayed 0 seconds by Owlery at relay2.example.test" in path.read_bytes()


def test_slapd_down_defers_at_the_relay_and_the_retry_is_delivered(topo):
    subject = "while the directory sleeps"
    topo.slapd.stop()
    try:
        # dora was never looked up before: no cache can answer for her
        code, text = send(topo.relays[0].pf, "dora@example.test", subject).rcpt["dora@example.test"]
        assert code == 451 and text.startswith("4.3.0 "), (code, text)
        topo.relays[0].daemons.wait_log("socketmap", "key=<dora@example.test> status=TEMP")
        assert topo.maildir_hits("a", "dora", subject) == []
    finally:
        topo.slapd.start()
    result = send(topo.relays[0].pf, "dora@example.test", subject)
    assert result.data is not None and result.data[0] == 250, (result.rcpt, result.data)
    topo.wait_delivered("a", "dora", subject)


# address -> in the relay's recipient table (Postfix asking `owlery socketmap` with postmap -q)
PARITY = ["ann@example.test", "ben@example.test", "cyd@example.test", "allhands@example.test", "board@example.test",
          "alice@example.test", "staff@example.test", "team@example.test", "dave@example.test", "ann+tag@example.test",
          "nobody@example.test", "ghost.ann@example.test"]


def test_postmap_and_the_policy_daemon_agree_on_the_recipients(topo):
    relay = topo.relays[0]
    table = dict(socketmap_tables(relay.daemons.settings, "relay"))["relay_recipient_maps"]
    endpoint = f"tcp:127.0.0.1:{relay.daemons.ports['policyd']}"
    postmap, policyd = {}, {}
    for address in PARITY:
        done = subprocess.run([POSTMAP, "-c", str(relay.pf.config_dir), "-q", address, table],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode in (0, 1), (address, done.returncode, done.stderr)
        postmap[address] = done.returncode == 0
        answer = query(endpoint, {"request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
                                  "client_address": "192.0.2.44", "client_name": "mx.outside.test",
                                  "sender": SENDER, "recipient": address, "instance": f"parity.{address}"})
        policyd[address] = not answer.startswith("550 5.1.1")
    assert postmap == policyd, {a: (postmap[a], policyd[a]) for a in PARITY if postmap[a] != policyd[a]}
    assert postmap["ann@example.test"] and not postmap["nobody@example.test"]
