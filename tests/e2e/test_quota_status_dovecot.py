"""A relay's quota check asking Dovecot's quota-status service (issue 15): the other back end
`quota_backend_endpoint` can name besides an Owlery policyd.

A private Dovecot (tests/harness/dovecot.py) runs `quota-status -p postfix` on a loopback
port, with `quota = maildir` and no quota rules of its own (it takes each mailbox's limits
from its maildirsize, written here by Owlery's delivery). A relay policyd with the
recipient and quota checks at RCPT, no Maildirs of its own and every mailbox's mail host
127.0.0.1, asks it about each recipient: a full mailbox gets the reply Dovecot's
`quota_status_overquota` gives, passed on as is (a 552 or a 452, as configured there), one
with room is accepted.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

from owlery.maildir import Maildir, Owner, Quota
from tests.harness.owlery_daemons import OwleryDaemons
from tests.policyd.test_quota_relay_backend import ask

FULL_USER, ROOMY_USER = "full@example.org", "roomy@example.org"
MSG = b"From: a@b.test\nSubject: x\n\n" + b"y" * 2020 + b"\n"      # 2,048 bytes
QUOTA_STATUS_CONF = """
mail_plugins = $mail_plugins quota
plugin {{
  quota = maildir:User quota
  quota_status_success = DUNNO
  quota_status_nouser = DUNNO
  quota_status_overquota = "{overquota}"
}}
service quota-status {{
  executable = quota-status -p postfix
  inet_listener {{
    address = 127.0.0.1
    port = @PORT0@
  }}
  client_limit = 1
}}
"""


@pytest.fixture
def work():
    """A directory Dovecot's mail user (nobody) may enter (tmp_path's parents are root's, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="owlery-quota-status-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def mailboxes(work: Path) -> dict[str, str]:
    """Two homes with Maildirs Owlery delivered to: one at its message limit, one with room."""
    nobody = pwd.getpwnam("nobody")
    owner = Owner(nobody.pw_uid, nobody.pw_gid)
    homes = {}
    for user, quota, count in ((FULL_USER, Quota(1024 * 1024, 3), 3), (ROOMY_USER, Quota(1024 * 1024, 100), 1)):
        home = work / "homes" / user.split("@")[0]
        home.mkdir(parents=True)
        md = Maildir(str(home / "Maildir"), fsync="never", owner=owner)
        for _ in range(count):
            md.deliver(MSG, quota=quota)
        homes[user] = str(home)
    return homes


def relay_config(root: Path, port: int) -> str:
    (root / "mailboxes").write_text(f"{FULL_USER}\n{ROOMY_USER}\n")
    (root / "mail_hosts").write_text("@example.org 127.0.0.1\n")
    return ('policyd_checks = { RCPT = ["recipient", "quota"] }\n'
            f'quota_backend_endpoint = "tcp:{{host}}:{port}"\n'
            'quota_backend_timeout = "5s"\n'
            'daemon_drain_timeout = "1s"\n'
            f'files_mailboxes = "{root / "mailboxes"}"\n'
            f'files_mail_hosts = "{root / "mail_hosts"}"\n'
            f'files_maildir_base = "{root / "no-maildirs-here"}"\n')


@pytest.mark.parametrize("overquota", ["552 5.2.2 Mailbox is full (Dovecot quota-status)",
                                       "452 4.2.2 Mailbox is full, try again later (Dovecot quota-status)"])
def test_relay_passes_on_dovecot_quota_status(work, overquota):
    from tests.harness.dovecot import DovecotInstance
    conf = QUOTA_STATUS_CONF.format(overquota=overquota)
    with DovecotInstance(work / "dovecot", mailboxes(work), extra_conf=conf, extra_ports=1) as dovecot:
        port = dovecot.ports[0]          # picked with Dovecot's others, retried on a port race
        (work / "relay").mkdir()
        relay = OwleryDaemons(work / "relay" / "o", which=("policyd",), extra_config=relay_config(work / "relay", port))
        relay.start()
        try:
            r_port = relay.ports["policyd"]
            assert ask(r_port, recipient=FULL_USER, size="2048") == overquota
            assert ask(r_port, recipient=ROOMY_USER, size="2048") == "DUNNO"
            assert ask(r_port, recipient="nobody@example.org") == "550 5.1.1 User unknown"   # the relay's own check
            relay.wait_log("policyd", "check=quota")
        finally:
            relay.stop()
