"""Deploying beside an existing Postfix: a private Postfix wired with exactly what `owlery postfix` prints.

Issue "Deploying beside an existing Postfix" (its other items have their own e2e files:
test_greylist_headers_e2e, test_quota_edge_e2e, test_received_e2e, test_content_e2e,
test_spam_levels_e2e). Here the real `owlery postfix --config FILE` runs as a subprocess on a
settings file naming the test's daemon ports and a directory: variant "files" (map files
with two hosted domains) or "ldap" (the harness slapd, ldap_domains set). Its main.cf
"name = value" lines and master.cf lines go into the harness Postfix unchanged, except what
the harness must own (its own ports and paths; relay_domains, which must not also list the
LDAP variant's example.test; the pipe's user=, see LDA_USER). Then, from an outside client
(XCLIENT ADDR=192.0.2.x):

- the printed virtual_mailbox_domains lists the directory's domains (files variant: both
  map-file domains) or asks `owlery socketmap` (ldap, with virtual_alias_maps: an LDAP
  group sent through Postfix is expanded by Postfix, the maillog shows each member with
  orig_to=<group>, since lmtpd here refuses groups, delivery_alias_expansion = "refuse"),
  and the printed pipe line carries `-c FILE`;
- an unknown user is refused at RCPT (550 5.1.1), a known one is delivered into its Maildir
  by `owlery lmtpd` over the printed LMTP virtual_transport; (ldap) the printed
  virtual_mailbox_maps refuses the unknown user in Postfix itself, policy service removed;
- with virtual_transport switched to the printed `owlery` pipe service, `owlery-lda -c FILE`
  delivers into the same Maildir, handing the message to the running lmtpd it finds through
  FILE's lmtpd_listen (a non-default settings path: without -c it would know neither lmtpd's
  endpoint nor the directory or the Maildir layout);
- (files variant, once) with spamd stopped the milter's spam stage answers 451 4.7.1 at end
  of data, and once spamd is back the client's retry is accepted and delivered;
- (files variant) GTUBE from the outside client is quarantined by the milter; `owlery quarantine
  release --config FILE ID` sends it to the printed release smtpd, whose maillog lines
  (syslog_name postfix/owlery-release) take it without the milter, and it is delivered with
  the Received line of its first arrival, X-Spam-* and X-Quarantine-Released.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.postfix import build_message
from tests.harness.procs import free_port, wait_until
from tests.harness.spamd import Spamd

ROOT = Path(__file__).resolve().parents[2]
OWLERY = Path(sys.executable).parent / "owlery"      # the installed command, as a postmaster runs it
SENDER = "news@outside.test"
OUTSIDE = {"ADDR": "192.0.2.44", "NAME": "mx.outside.test"}
FILES_DOMAINS = ("wired.test", "second.test")
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
# The test's mail tree belongs to nobody (maildir_owner): the printed pipe line runs the LDA as
# that owner, used as printed.
LDA_USER = "nobody"


def owlery_postfix(config_path):
    """Run `owlery postfix --config FILE`; ({main.cf name: value} in order, master.cf text, stdout)."""
    done = subprocess.run([str(OWLERY), "postfix", "--config", str(config_path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0 and done.stderr == "", (done.returncode, done.stderr)
    main, master, section = {}, [], None
    for line in done.stdout.splitlines():
        if line.startswith("# /etc/postfix/"):
            section = line.rpartition("/")[2]
            continue
        if section == "main.cf" and line.strip() and not line.startswith("#"):
            name, sep, value = line.partition(" =")
            assert sep and name not in main, line
            main[name] = value.strip()
        elif section == "master.cf" and line.strip():
            master.append(line)
    assert main and master, done.stdout
    return main, "\n".join(master) + "\n", done.stdout


def common_config(workdir, mail, dns_stub):
    return (f'maildir_path_template = "{mail}/{{domain}}/{{localpart}}/Maildir"\n'
            f'delivery_sieve_script_template = "{workdir}/sieve/{{localpart}}.sieve"\n'
            f'maildir_owner = "{LDA_USER}"\n'
            f'state_sqlite_path = "{workdir}/state/state.sqlite"\n'
            f'lda_log_path = "{workdir}/state/lda.log"\n'
            'policyd_checks = { RCPT = ["recipient"] }\n'
            # the printed release smtpd listens here: a free port, as both variants' Postfix run at once
            f'quarantine_release_smtp_endpoint = "tcp:127.0.0.1:{free_port()}"\n'
            # the milter's default inbound stages (SPF, DKIM, DMARC) ask the DNS stub, never real DNS
            'dns_nameservers = ["127.0.0.1"]\n'
            f'dns_port = {dns_stub.port}\n')


def build_stack(postfix_factory, harness_dirs, dns_stub, variant, extra_config, harness_owned,
                which=("policyd", "milter", "lmtpd")):
    workdir = harness_dirs(f"wiring-{variant}")
    mail = workdir / "mail"
    nobody = pwd.getpwnam(LDA_USER)
    for d in (mail, workdir / "state"):
        d.mkdir()
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
    daemons = OwleryDaemons(workdir, extra_config=common_config(workdir, mail, dns_stub) + extra_config(workdir, mail),
                            which=which)
    daemons.start()
    try:
        main, master, printed = owlery_postfix(daemons.config_path)
        pipe_master = master
        assert f" user={LDA_USER} " in master, master          # the Maildirs' owner, not vmail
        pf = postfix_factory(main_cf={**main, **harness_owned}, master_cf_extra=pipe_master,
                             name=f"wiring-postfix-{variant}")
    except BaseException:
        daemons.stop()
        raise
    return {"pf": pf, "daemons": daemons, "mail": mail, "main": main, "master": master, "printed": printed,
            "harness_owned": harness_owned, "workdir": workdir}


@pytest.fixture(scope="module")
def wiring_spamd(harness_dirs):
    """A spamd of this module's own: the spamd test stops and restarts it (the session one must stay up)."""
    server = Spamd(harness_dirs("wiring-spamd")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def files_stack(postfix_factory, harness_dirs, dns_stub, wiring_spamd):
    def extra(workdir, mail):
        (workdir / "mailboxes").write_text("".join(f"alice@{d} {d}/alice/Maildir\n" for d in FILES_DOMAINS))
        return (f'files_mailboxes = "{workdir}/mailboxes"\n'
                f'files_maildir_base = "{mail}"\n'
                # the default inbound stages plus spamd's score (the spamd-down test) and the
                # quarantine (the release test)
                'milter_inbound_stages = ["spf", "dkim_verify", "arc_verify", "dmarc", "authres", "spam", '
                '"quarantine"]\n'
                f'spamd_endpoint = "tcp:127.0.0.1:{wiring_spamd.port}"\n'
                'spamd_timeout = "20s"\n'
                'spam_quarantine_level = 6.9\n'
                f'quarantine_directory = "{workdir}/quarantine"\n'
                f'quarantine_audit_log_path = "{workdir}/state/quarantine-audit.log"\n')
    stack = build_stack(postfix_factory, harness_dirs, dns_stub, "files", extra, {})
    stack.update(domain=FILES_DOMAINS[0], domains=sorted(FILES_DOMAINS), spamd=wiring_spamd)
    yield stack
    stack["pf"].stop()
    stack["daemons"].stop()


@pytest.fixture(scope="module")
def ldap_stack(postfix_factory, harness_dirs, dns_stub, slapd):
    def extra(workdir, mail):
        return ('directory_backend = "ldap"\n'
                f'ldap_servers = ["{slapd.url}"]\n'
                f'ldap_base_dn = "{slapd.base_dn}"\n'
                'ldap_domains = ["example.test"]\n'
                # lmtpd refuses a group: only Postfix's expansion (virtual_alias_maps) delivers it
                'delivery_alias_expansion = "refuse"\n')
    # The harness relays example.test to its sink by default; Postfix must not see the
    # domain both there and in the printed virtual_mailbox_domains.
    # Postfix reads the LDAP directory's domains and aliases through `owlery socketmap`, which
    # `owlery run` starts beside the others for an LDAP directory (owlery.app.supervisor.daemons).
    stack = build_stack(postfix_factory, harness_dirs, dns_stub, "ldap", extra, {"relay_domains": ""},
                        which=("policyd", "milter", "lmtpd", "socketmap"))
    stack.update(domain="example.test", domains=["example.test"])
    yield stack
    stack["pf"].stop()
    stack["daemons"].stop()


@pytest.fixture(scope="module", params=["files", "ldap"])
def stack(request):
    return request.getfixturevalue(f"{request.param}_stack")


def maildir_files(stack, localpart="alice"):
    base = stack["mail"] / stack["domain"] / localpart / "Maildir"
    return [p for sub in ("new", "cur") if (base / sub).is_dir() for p in sorted((base / sub).iterdir())]


def send_outside(pf, rcpt, subject, client=OUTSIDE):
    msg = build_message(sender=SENDER, to=rcpt, subject=subject, body=f"{subject}\n")
    return pf.send(SENDER, [rcpt], msg, xclient=client, check=False)


def wait_delivered(stack, subject):
    """The Maildir file holding `subject` (waits for it; fails with the logs on timeout)."""
    needle = f"Subject: {subject}\n".encode()

    def found():
        return [p for p in maildir_files(stack) if needle in p.read_bytes()]
    try:
        [path] = wait_until(found, 30, f"delivery of {subject!r}")
    except Exception:  # noqa: BLE001  show every log, whatever went wrong
        lda_log = stack["workdir"] / "state" / "lda.log"
        pytest.fail(f"--- maillog ---\n{stack['pf'].maillog()[-3000:]}\n--- lmtpd ---\n"
                    f"{stack['daemons'].log('lmtpd')[-2000:]}\n--- milter ---\n{stack['daemons'].log('milter')[-2000:]}"
                    f"\n--- lda ---\n{lda_log.read_text()[-2000:] if lda_log.exists() else ''}")
    return path


def test_printed_lines_name_the_directory_domains_and_the_settings_path(stack):
    main, master, pf = stack["main"], stack["master"], stack["pf"]
    ports = stack["daemons"].ports
    if "socketmap" in stack["daemons"].which:
        sm = f"socketmap:inet:127.0.0.1:{ports['socketmap']}"
        assert main["virtual_mailbox_domains"] == f"{sm}:virtual_mailbox_domains", stack["printed"]
        assert main["virtual_alias_maps"] == f"{sm}:virtual_alias_maps"
        assert main["virtual_mailbox_maps"] == f"{sm}:relay_recipient_maps"
    else:
        assert main["virtual_mailbox_domains"].split() == stack["domains"], stack["printed"]
        assert "virtual_mailbox_maps" not in main     # files_mailboxes is no Postfix table (see postfix.py)
    assert main["virtual_transport"] == f"lmtp:inet:127.0.0.1:{ports['lmtpd']}"
    assert main["smtpd_milters"] == f"inet:127.0.0.1:{ports['milter']}"
    assert f"inet:127.0.0.1:{ports['policyd']}" in main["smtpd_recipient_restrictions"]
    # the settings are not at the default path: the LDA line must say where they are
    [argv] = [line for line in master.splitlines() if "argv=" in line]
    assert f"/owlery-lda -c {stack['daemons'].config_path} -f ${{sender}} " in argv, master
    # the running Postfix uses the printed values, not the harness's defaults
    for name, value in main.items():
        if name not in stack["harness_owned"]:
            assert pf.postconf("-h", name).strip() == value, name


def test_outside_client_unknown_user_refused_known_user_delivered_over_lmtp(stack):
    pf, daemons, domain = stack["pf"], stack["daemons"], stack["domain"]
    code, text = send_outside(pf, f"nobody@{domain}", "to nobody").rcpt[f"nobody@{domain}"]
    assert code == 550 and text.startswith(f"5.1.1 <nobody@{domain}>:"), (code, text)
    daemons.wait_log("policyd", f"reject: RCPT from mx.outside.test[192.0.2.44]: 550 5.1.1 <nobody@{domain}>")

    subject = f"over lmtp {domain}"
    result = send_outside(pf, f"alice@{domain}", subject)
    assert result.data is not None and result.data[0] == 250, (result.rcpt, result.data)
    raw = wait_delivered(stack, subject).read_bytes()
    assert f"Delivered-To: alice@{domain}\n".encode() in raw
    assert b" (mx.outside.test [192.0.2.44])\n\tby mx.example.test (Postfix)" in raw, raw.decode()
    assert b"Authentication-Results: " in raw                                # the milter's header
    pf.wait_for_log(r"%s: to=<alice@%s>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d.*status=sent"
                    % (result.queue_id, re.escape(domain), daemons.ports["lmtpd"]))
    daemons.wait_log("lmtpd", f"delivered: 250 2.0.0 <alice@{domain}>")


def test_printed_pipe_transport_delivers_with_its_settings_path(stack):
    pf, domain = stack["pf"], stack["domain"]
    main = {**stack["main"], **stack["harness_owned"]}
    pf.configure(main_cf={**main, "virtual_transport": "owlery"})
    try:
        subject = f"through the lda {domain}"
        result = send_outside(pf, f"alice@{domain}", subject)
        assert result.data is not None and result.data[0] == 250, (result.rcpt, result.data)
        raw = wait_delivered(stack, subject).read_bytes()
        assert raw.startswith(f"Return-Path: <{SENDER}>\n".encode()), raw[:200]
        assert f"Delivered-To: alice@{domain}\n".encode() in raw
        pf.wait_for_log(r"%s: to=<alice@%s>, relay=owlery, .*status=sent" % (result.queue_id, re.escape(domain)))
        pf.wait_queue_empty()
        # The LDA found the running lmtpd where the -c file has it listen (no extra setting) and
        # handed the message over: lmtpd's decision line carries Postfix's queue id.
        stack["daemons"].wait_log("lmtpd", f"lmtpd: {result.queue_id}: delivered: 250 2.0.0 <alice@{domain}>")
    finally:
        pf.configure(main_cf=main)


def test_spamd_stopped_defers_at_end_of_data_and_retry_is_accepted(files_stack):
    pf, spamd, domain = files_stack["pf"], files_stack["spamd"], files_stack["domain"]
    subject = "while spamd sleeps"
    spamd.stop()
    try:
        result = send_outside(pf, f"alice@{domain}", subject)
        assert result.accepted == [f"alice@{domain}"], result.rcpt
        code, text = result.data
        assert code == 451 and text.startswith("4.7.1 Spam scanner temporarily unavailable"), result.data
        assert pf.queue_files() == []
        files_stack["daemons"].wait_log("milter", "tempfail: END-OF-MESSAGE from mx.outside.test[192.0.2.44]: "
                                                  "451 4.7.1 Spam scanner temporarily unavailable")
    finally:
        spamd.start()
    result = send_outside(pf, f"alice@{domain}", subject)
    assert result.data[0] == 250, result.data
    raw = wait_delivered(files_stack, subject).read_bytes()
    assert b"X-Spam-Status: " in raw and b"SPAMD=" in raw          # scored by spamd this time


def test_ldap_group_is_expanded_by_postfix_through_the_socketmap(ldap_stack):
    stack = ldap_stack
    pf, daemons = stack["pf"], stack["daemons"]
    assert daemons.settings.delivery_alias_expansion == "refuse"      # lmtpd would refuse csall itself
    subject = "to the csall group"
    result = send_outside(pf, "csall@example.test", subject)
    assert result.data is not None and result.data[0] == 250, (result.rcpt, result.data)
    for member in ("alice", "bob"):
        # Postfix expanded the group (orig_to) and handed each member to lmtpd on its own
        pf.wait_for_log(r"%s: to=<%s@example\.test>, orig_to=<csall@example\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d"
                        r".*status=sent" % (result.queue_id, member, daemons.ports["lmtpd"]), timeout=30)
        hits = [p for p in (stack["mail"] / "example.test" / member / "Maildir").rglob("*")
                if p.is_file() and p.parent.name in ("new", "cur") and subject.encode() in p.read_bytes()]
        assert len(hits) == 1, (member, pf.maillog()[-3000:])
    assert not re.search(r" to=<csall@example\.test>", pf.maillog())     # never handed to lmtpd as is


def test_ldap_printed_mailbox_map_refuses_unknown_users_in_postfix_itself(ldap_stack):
    """Without the policy service, Postfix's own check against the printed virtual_mailbox_maps
    (the socketmap) still refuses an unknown user at RCPT and lets a known one through."""
    pf, domain = ldap_stack["pf"], ldap_stack["domain"]
    main = {**ldap_stack["main"], **ldap_stack["harness_owned"]}
    unguarded = {name: value for name, value in main.items() if "check_policy_service" not in value}
    pf.configure(main_cf={**unguarded, "smtpd_recipient_restrictions": ""})
    try:
        code, text = send_outside(pf, f"nobody@{domain}", "no policy").rcpt[f"nobody@{domain}"]
        assert (code, text) == (550, f"5.1.1 <nobody@{domain}>: Recipient address rejected: "
                                     "User unknown in virtual mailbox table"), (code, text)
        subject = f"no policy service {domain}"
        result = send_outside(pf, f"alice@{domain}", subject)
        assert result.data is not None and result.data[0] == 250, (result.rcpt, result.data)
        wait_delivered(ldap_stack, subject)
    finally:
        pf.configure(main_cf=main)


def test_quarantined_mail_is_released_through_the_printed_release_service(files_stack):
    pf, daemons, domain = files_stack["pf"], files_stack["daemons"], files_stack["domain"]
    config = daemons.config_path
    release_port = int(daemons.settings.quarantine_release_smtp_endpoint.rpartition(":")[2])
    assert f"127.0.0.1:{release_port} inet n  -  n  -  -  smtpd\n" in files_stack["master"]
    subject = "cheap watches"
    msg = build_message(sender=SENDER, to=f"alice@{domain}", subject=subject, body=GTUBE + "\n")
    result = pf.send(SENDER, [f"alice@{domain}"], msg, xclient=OUTSIDE)
    assert result.data[0] == 250, result.data              # taken, then discarded into the quarantine
    pf.wait_for_log(r"%s: milter-discard" % result.queue_id, timeout=30)
    listed = subprocess.run([str(OWLERY), "quarantine", "list", "--json", "--recipient", f"alice@{domain}",
                             "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    [record] = [json.loads(line) for line in listed.stdout.splitlines()]
    decisions = daemons.log("milter").count("END-OF-MESSAGE")
    start = len(pf.maillog())
    released = subprocess.run([str(OWLERY), "quarantine", "release", "--config", str(config), record["mail_id"]],
                              capture_output=True, text=True, timeout=60)
    assert released.returncode == 0, released.stderr
    assert released.stdout == f"released {record['mail_id']} to <alice@{domain}>\n"
    # the printed release smtpd took it (its own syslog_name), and lmtpd delivered it
    release_id = pf.wait_for_log(r"postfix/owlery-release/smtpd\[\d+\]: (\w+): client=localhost\[127\.0\.0\.1\]",
                                 start=start).group(1)
    pf.wait_for_log(r"%s: to=<alice@%s>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d.*status=sent"
                    % (release_id, re.escape(domain), daemons.ports["lmtpd"]), start=start, timeout=30)
    raw = wait_delivered(files_stack, subject).read_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert f"id={record['mail_id']}" in parsed["X-Quarantine-Released"]
    received = [" ".join(r.split()) for r in parsed.get_all("Received")]
    # lmtpd's line, the release smtpd's (from the CLI on loopback), then the first arrival's
    assert "with LMTP" in received[0] and f"with ESMTP id {release_id} " in received[1], received
    assert "[127.0.0.1]" in received[1].split(" by ")[0], received
    [first] = [r for r in received if "192.0.2.44" in r]                  # the line of its first arrival
    assert first.startswith("from client.example.test (mx.outside.test [192.0.2.44]) by mx.example.test (Postfix) "
                            f"with ESMTP id {result.queue_id} "), first
    assert parsed["X-Spam-Flag"] == "YES"
    assert parsed["X-Spam-Status"].startswith("Yes, score=") and "GTUBE" in parsed["X-Spam-Status"]
    # the milter saw the message once: no decision for the released copy
    assert daemons.log("milter").count("END-OF-MESSAGE") == decisions
    assert release_id not in daemons.log("milter")
