"""A chrooted Postfix reaches Owlery's unix sockets in its queue directory, wired by `owlery postfix`'s lines.

Issue 13 (item 13 and the low item on chrooted Postfix): the daemons default to unix
sockets in /var/spool/postfix/owlery/ (group postfix, 0660) and `owlery postfix` names
them relative to the queue directory, because a chrooted smtpd or lmtp (Debian's
master.cf chroots both) resolves an absolute path inside its chroot. Here a private
Postfix runs an smtpd and an lmtp transport with the chroot column `y`; the three daemons
listen in QUEUE/owlery/ (the harness points daemon_postfix_queue_directory at the
instance's queue directory); the main.cf lines (owlery.app.postfix, what `owlery postfix`
prints) go in unchanged, except the transport's name (the harness's own `lmtp` service is
not chrooted, so the printed
`lmtp:unix:owlery/lmtpd.sock` is routed through a chrooted twin, same nexthop). A message
through the chrooted smtpd is asked about by the policy daemon, passes the milter (its
Authentication-Results header) and is delivered by the chrooted lmtp into the Maildir;
the chrooted processes really are: /proc/PID/root of each is the queue directory. The same
relative names serve unchrooted processes (every Postfix daemon works in the queue
directory): a message through the harness's unchrooted smtpd to a second domain, routed by
the transport map to the printed `lmtp:unix:owlery/lmtpd.sock` as is, arrives as well.
"""

import email
import email.policy
import os
import re
from pathlib import Path

import pytest

from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.postfix import build_message
from tests.harness.procs import free_port, wait_until

DOMAIN = "chroot.test"          # chrooted smtpd, chrooted lmtp
PLAIN = "plain.test"            # the harness's smtpd and lmtp, not chrooted


@pytest.fixture(scope="module")
def stack(postfix_factory, harness_dirs):
    pf = postfix_factory(name="chroot-postfix", start=False)
    smtpd_port = free_port()
    mail_root = harness_dirs("chroot-mail")
    daemons = OwleryDaemons(harness_dirs("chroot-owlery"), queue_dir=pf.queue_dir, extra_config=(
        f'maildir_path_template = "{mail_root}/{{domain}}/{{localpart}}/Maildir"\n'
        'delivery_use_directory = false\n'
        'log_level = "debug"\n'))   # policyd logs DUNNO at debug
    daemons.start()
    try:
        main_cf = daemons.main_cf([DOMAIN, PLAIN])
        printed_lmtp = main_cf["virtual_transport"]
        main_cf["virtual_transport"] = printed_lmtp.replace("lmtp:", "chrootlmtp:", 1)
        # No reverse lookup of 127.0.0.1 inside the chroot, which has no resolver files.
        pf.configure(main_cf={**main_cf, "smtpd_peername_lookup": "no"},
                     master_cf_extra=(f"127.0.0.1:{smtpd_port} inet n - y - - smtpd\n"
                                      "chrootlmtp unix - - y - - lmtp\n"),
                     transports={PLAIN: printed_lmtp})
        pf.start()
        yield {"pf": pf, "daemons": daemons, "mail": mail_root, "port": smtpd_port, "main": main_cf,
               "printed_lmtp": printed_lmtp}
        pf.stop()
    finally:
        daemons.stop()


def test_printed_lines_name_the_sockets_relative_to_the_queue_directory(stack):
    main = stack["main"]
    assert main["smtpd_recipient_restrictions"] == "check_policy_service { unix:owlery/policyd.sock, timeout=47s }"
    assert main["smtpd_milters"] == "unix:owlery/milter.sock"
    assert stack["printed_lmtp"] == "lmtp:unix:owlery/lmtpd.sock"
    queue = stack["pf"].queue_dir
    for name in ("policyd", "milter", "lmtpd"):
        st = os.stat(queue / "owlery" / f"{name}.sock")
        assert oct(st.st_mode & 0o777) == "0o660", name


def roots(pf, program):
    """/proc/PID/root of this instance's `program` processes (a chrooted one: the queue directory)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            env = Path(f"/proc/{pid}/environ").read_bytes()
            if os.path.basename(cmd[0]) == program.encode() and f"MAIL_CONFIG={pf.config_dir}".encode() in env:
                found.append(os.readlink(f"/proc/{pid}/root"))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("domain, chrooted", [(DOMAIN, True), (PLAIN, False)])
def test_mail_through_postfix_reaches_every_daemon(stack, domain, chrooted):
    pf, daemons = stack["pf"], stack["daemons"]
    rcpt = f"alice@{domain}"
    msg = build_message(sender="someone@example.net", to=rcpt, subject=f"through {domain}")
    start = len(pf.maillog())
    result = pf.send("someone@example.net", [rcpt], msg, port=stack["port"] if chrooted else None)
    assert result.accepted == [rcpt], result.rcpt
    new = stack["mail"] / domain / "alice" / "Maildir" / "new"
    [path] = wait_until(lambda: list(new.iterdir()) if new.is_dir() else [], 30, "delivery into the Maildir")
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
    assert parsed["Subject"] == f"through {domain}"
    assert parsed["Authentication-Results"] is not None        # the milter saw it
    pf.wait_for_log(r"%s: to=<%s>, relay=[^\s\[]*\[owlery/lmtpd\.sock\].*status=sent" % (
        re.escape(result.queue_id), re.escape(rcpt)), start=start)
    daemons.wait_log("policyd", f"to=<{rcpt}>")
    daemons.wait_log("milter", "accept: END-OF-MESSAGE")
    daemons.wait_log("lmtpd", f"delivered: 250 2.0.0 <{rcpt}>")
    assert not re.search(r"warning: .*owlery/", pf.maillog()[start:]), pf.maillog()[start:]
    if chrooted:
        # Idle Postfix processes wait for the next job: the ones that served this message are there.
        for program in ("smtpd", "lmtp"):
            wait_until(lambda p=program: str(pf.queue_dir) in roots(pf, p), 10, f"a {program} chrooted in the queue")
