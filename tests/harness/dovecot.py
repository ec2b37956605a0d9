"""A private Dovecot (IMAP + LMTP with Pigeonhole) over Maildirs we choose, for tests and benchmarks.

`DovecotInstance(workdir, users={"alice@example.org": "/path/to/home"})` writes its own
dovecot.conf (own base_dir/state_dir, passwd-file users owned by `nobody`, plaintext auth,
listeners on free loopback ports), starts `dovecot -F` as a child process and polls the
IMAP and LMTP ports. Mail lives in `<home>/Maildir` (the layout Owlery's default
`maildir_path_template` gives); Sieve's active script is `<home>/sieve/active.sieve`, the
same file Owlery's default `delivery_sieve_script_template` points at. `imap(user)` returns
a logged-in imaplib client; `lda_argv(user, sender)` is a dovecot-lda command line for the
same configuration. Nothing touches /etc/dovecot.
Used by tests/e2e/test_delivery_dovecot.py and bench/bench_delivery.py.
"""

import imaplib
import os
import shutil
import smtplib
import subprocess
from pathlib import Path

from .procs import (LOOPBACK, HarnessError, ManagedProcess, free_ports, log_tail, retry_on_port_race,
                    wait_for_tcp)

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVECOT_LDA = "/usr/lib/dovecot/dovecot-lda"
PASSWORD = "secret"
MAIL_USER = "nobody"

CONF = """\
instance_name = owlery-test-{tag}
base_dir = {d}/run
state_dir = {d}/state
protocols = imap lmtp
listen = 127.0.0.1
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 100
mail_location = maildir:~/Maildir
mail_uid = {uid}
mail_gid = {gid}
default_login_user = dovenull
default_internal_user = dovecot
postmaster_address = postmaster@example.org
lda_mailbox_autocreate = yes
lda_mailbox_autosubscribe = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
service auth {{
  unix_listener auth-userdb {{
    mode = 0666
  }}
}}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
}}
protocol lda {{
  mail_plugins = $mail_plugins sieve
}}
plugin {{
  sieve = file:~/sieve;active=~/sieve/active.sieve
}}
{extra}
"""


class DovecotInstance:
    """A Dovecot serving IMAP and LMTP for `users` (address -> home directory)."""

    def __init__(self, workdir, users, extra_conf="", extra_ports=0):
        """`extra_conf` may name `extra_ports` more listening ports as @PORT0@, @PORT1@...: they
        are picked with IMAP's and LMTP's, afresh on each start attempt (the free_port race)."""
        self.dir = Path(workdir)
        self.users = dict(users)
        self.extra_conf = extra_conf
        self.extra_ports = extra_ports
        self.imap_port = self.lmtp_port = None
        self.ports: list[int] = []
        self.proc = None
        import pwd
        pw = pwd.getpwnam(MAIL_USER)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid

    @property
    def conf_path(self):
        return self.dir / "dovecot.conf"

    def write_config(self):
        for sub in ("run", "state"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        lines = [f"{u}:{{PLAIN}}{PASSWORD}:{self.uid}:{self.gid}::{home}::\n" for u, home in self.users.items()]
        (self.dir / "users").write_text("".join(lines))
        for home in self.users.values():
            # The mail user must own its home (Dovecot writes indexes and .svbin files there).
            Path(home).mkdir(parents=True, exist_ok=True)
            for root, dirs, files in os.walk(home):
                for name in [root] + [os.path.join(root, n) for n in dirs + files]:
                    os.chown(name, self.uid, self.gid)
        self.conf_path.write_text(CONF.format(d=self.dir, tag=os.getpid(), uid=self.uid, gid=self.gid,
                                              imap_port=self.imap_port, lmtp_port=self.lmtp_port,
                                              extra=self._extra()))

    def _extra(self):
        text = self.extra_conf
        for i, port in enumerate(self.ports):
            text = text.replace(f"@PORT{i}@", str(port))
        return text

    def start(self, timeout=20.0):
        def attempt():
            self.imap_port, self.lmtp_port, *self.ports = free_ports(2 + self.extra_ports)
            self.write_config()
            self.proc = ManagedProcess([DOVECOT, "-F", "-c", str(self.conf_path)], "dovecot",
                                       self.dir / "dovecot.out").start()
            try:
                wait_for_tcp(self.imap_port, timeout=timeout, proc=self.proc, what="dovecot imap")
                wait_for_tcp(self.lmtp_port, timeout=timeout, proc=self.proc, what="dovecot lmtp")
                for port in self.ports:
                    wait_for_tcp(port, timeout=timeout, proc=self.proc, what=f"dovecot listener on {port}")
            except HarnessError as e:
                self.proc.stop()
                raise HarnessError(f"{e}\n{log_tail(self.dir / 'dovecot.log')}") from None
        retry_on_port_race(attempt)
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop(timeout=15)
            self.proc = None

    def imap(self, user):
        client = imaplib.IMAP4(LOOPBACK, self.imap_port, timeout=10)
        client.login(user, PASSWORD)
        return client

    def quota(self, user):
        """`doveadm quota get` for `user`: {"STORAGE": (KiB used, KiB limit), "MESSAGE": (count,
        limit)}; a limit of None when Dovecot shows none ("-", empty or 0)."""
        out = subprocess.run(["doveadm", "-c", str(self.conf_path), "-f", "tab", "quota", "get", "-u", user],
                             capture_output=True, text=True, check=True, timeout=30).stdout
        lines = out.strip().splitlines()
        head = lines[0].split("\t")
        got = {}
        for line in lines[1:]:
            row = dict(zip(head, line.split("\t")))
            limit = row["Limit"]
            got[row["Type"]] = (int(row["Value"]), None if limit in ("-", "", "0") else int(limit))
        return got

    def lmtp_send(self, sender, recipient, message):
        """One LMTP transaction to Dovecot's LMTP (Pigeonhole runs the recipient's script)."""
        client = smtplib.LMTP(LOOPBACK, self.lmtp_port, timeout=30)
        try:
            client.sendmail(sender, [recipient], message)
        finally:
            client.quit()

    def lda_argv(self, user, sender="sender@remote.test"):
        return [DOVECOT_LDA, "-c", str(self.conf_path), "-d", user, "-f", sender]

    def log(self):
        return log_tail(self.dir / "dovecot.log", 200)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
