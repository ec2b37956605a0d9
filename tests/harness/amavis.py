"""A private amavisd-new (Debian's package) judging banned attachments only, for differential tests.

Runs /usr/sbin/amavisd in the foreground as `nobody` (when started as root; else as the
caller) with everything in its own work directory (temp, db, pid, lock, log; no syslog, no
quarantine, no BerkeleyDB, no AM.PDP socket), listening on a free loopback port. It reads
Debian's /etc/amavis/conf.d/01-debian (file(1) and decoder programs) and 20-debian_defaults
(among others `$banned_filename_re`, exactly as shipped), then a file of its own that turns
spam, virus and bad-header checks off, makes a banned message `D_REJECT`ed (the SMTP reply
tells banned or not) and forwards passed mail to `SmtpSink`, an in-process SMTP server that
accepts and drops everything. Readiness: the port answers `220` (polled with a deadline).
Used by tests/milters/test_banned_amavis_differential.py.
"""

from __future__ import annotations

import os
import pwd
import shutil
import smtplib
import socket
import threading
from pathlib import Path

from .procs import LOOPBACK, HarnessError, ManagedProcess, ServerProcess, log_tail, make_dir, wait_until
from .threaded_server import ThreadedServer

AMAVISD = shutil.which("amavisd") or "/usr/sbin/amavisd"
DEBIAN_CONF = ("/etc/amavis/conf.d/01-debian", "/etc/amavis/conf.d/20-debian_defaults")
RUN_AS = "nobody"

_CONF = r"""use strict;
# Owlery test instance: everything below {home}; read after Debian's 01-debian and 20-debian_defaults
$MYHOME = '{home}';
$TEMPBASE = '{home}/tmp';
$ENV{{TMPDIR}} = $TEMPBASE;
$db_home = '{home}/db';
$helpers_home = '{home}';
$pid_file = '{home}/amavisd.pid';
$lock_file = '{home}/amavisd.lock';
$QUARANTINEDIR = undef;
$daemon_user = undef;
$daemon_group = undef;
$myhostname = 'amavis.owlery.test';
$mydomain = 'owlery.test';
@local_domains_maps = (['.owlery.test']);
$DO_SYSLOG = 0;
$LOGFILE = '{home}/amavis.log';
$log_level = {log_level};
$enable_db = 0;
$enable_global_cache = 0;
$enable_zmq = 0;
$enable_dkim_verification = 0;
$enable_dkim_signing = 0;
$unix_socketname = undef;
$inet_socket_bind = '127.0.0.1';
$inet_socket_port = {port};
@inet_acl = qw(127.0.0.1);
$max_servers = {servers};
$max_requests = 100000;
$child_timeout = 120;
@bypass_spam_checks_maps = (1);
@bypass_virus_checks_maps = (1);
@bypass_header_checks_maps = (1);
@av_scanners = ();
@av_scanners_backup = ();
$final_banned_destiny = D_REJECT;
$final_virus_destiny = D_PASS;
$final_spam_destiny = D_PASS;
$final_bad_header_destiny = D_PASS;
$final_unchecked_destiny = D_PASS;
$banned_files_quarantine_method = undef;
$virus_quarantine_method = undef;
$spam_quarantine_method = undef;
$bad_header_quarantine_method = undef;
$unchecked_quarantine_method = undef;
$clean_quarantine_method = undef;
$archive_quarantine_method = undef;
$virus_admin = undef;
$banned_admin = undef;
$warnbannedrecip = 0;
$warnbannedsender = 0;
$forward_method = 'smtp:[127.0.0.1]:{sink_port}';
$notify_method = 'smtp:[127.0.0.1]:{sink_port}';
1;
"""


class SmtpSink(ThreadedServer):
    """An SMTP server on loopback that accepts every message and keeps only a count."""

    def __init__(self):
        self.received = 0
        self._lock = threading.Lock()
        super().__init__(backlog=16)

    def serve_connection(self, conn):
        with conn, conn.makefile("rb") as rfile:
            conn.sendall(b"220 sink.owlery.test ESMTP\r\n")
            in_data = False
            for line in rfile:
                if in_data:
                    if line in (b".\r\n", b".\n"):
                        in_data = False
                        with self._lock:
                            self.received += 1
                        conn.sendall(b"250 2.0.0 Ok: kept nowhere\r\n")
                    continue
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    conn.sendall(b"250-sink.owlery.test\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n")
                elif verb == b"DATA":
                    in_data = True
                    conn.sendall(b"354 go ahead\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 2.0.0 Bye\r\n")
                    return
                else:
                    conn.sendall(b"250 2.0.0 Ok\r\n")


class Amavis(ServerProcess):
    """amavisd on 127.0.0.1:<port>, forwarding passed mail to its own SmtpSink.

    verdict(message) -> (banned: bool, reply: str). Attributes: port, workdir, log_path.
    """

    start_timeout = 60.0
    stop_timeout = 20.0

    def __init__(self, workdir, servers=2, log_level=2):
        self.workdir = Path(workdir)
        self.servers = servers
        self.log_level = log_level
        self.sink = None
        self.user = RUN_AS if os.geteuid() == 0 else None
        owner = self.user
        self.home = make_dir(self.workdir / "amavis", 0o750, owner=owner)
        for sub in ("tmp", "db"):
            make_dir(self.home / sub, 0o750, owner=owner)
        self.log_path = self.home / "amavis.log"
        self.conf_path = self.workdir / "amavisd-owlery.conf"

    def _first_start(self):
        for path in (AMAVISD, *DEBIAN_CONF):
            if not os.path.exists(path):
                raise HarnessError(f"{path} missing: install Debian's amavisd-new (scripts/install-deps --test)")
        if self.sink is None:
            self.sink = SmtpSink()

    def _spawn(self, timeout):
        self.conf_path.write_text(
            _CONF.format(
                home=self.home, port=self.port, sink_port=self.sink.port, servers=self.servers, log_level=self.log_level
            )
        )
        os.chmod(self.conf_path, 0o644)
        argv = [AMAVISD]
        for conf in (*DEBIAN_CONF, self.conf_path):
            argv += ["-c", conf]
        argv += ["foreground"]
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C",
            "HOME": str(self.home),
            "TMPDIR": str(self.home / "tmp"),
        }
        group = None
        if self.user is not None:
            group = pwd.getpwnam(self.user).pw_gid
        with self._started(
            ManagedProcess(
                argv,
                "amavisd",
                self.workdir / "amavisd.out",
                cwd=self.home,
                env=env,
                user=self.user,
                group=group,
                extra_logs=[self.log_path],
            )
        ) as proc:
            wait_until(self._greets, timeout, f"amavisd on port {self.port}", proc, interval=0.05)

    def _greets(self):
        with socket.create_connection((LOOPBACK, self.port), timeout=5.0) as s:
            s.settimeout(5.0)
            return s.recv(512).startswith(b"220 ")

    def stop(self):
        super().stop()
        if self.sink is not None:
            self.sink.close()
            self.sink = None

    def session(self, timeout=120.0):
        """An SMTP (ESMTP) session with amavisd; send messages with verdict_in(session, msg)."""
        client = smtplib.SMTP(LOOPBACK, self.port, timeout=timeout)
        client.ehlo("client.owlery.test")
        return client

    def verdict(self, message, client=None):
        """(banned, reply text) for one message: amavisd rejects banned mail (D_REJECT) at DATA."""
        own = client is None
        client = client or self.session()
        try:
            client.mail("sender@example.org")
            code, text = client.rcpt("rcpt@owlery.test")
            if code != 250:
                raise HarnessError(f"amavisd refused the recipient: {code} {text!r}\n{log_tail(self.log_path)}")
            code, text = client.data(message)
        except smtplib.SMTPDataError as exc:
            code, text = exc.smtp_code, exc.smtp_error
            client.rset()
        finally:
            if own:
                client.quit()
        reply = text.decode("utf-8", "replace")
        if code == 250:
            return False, reply
        if code == 554 and "BANNED" in reply:
            return True, reply
        raise HarnessError(f"amavisd answered {code} {reply!r}\n{log_tail(self.log_path)}")
