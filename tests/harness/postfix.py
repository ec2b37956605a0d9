"""A private Postfix instance (own config, queue and data directories) relaying to smtp-sink.

Talks to the Debian postfix binaries (postfix, postqueue, smtp-sink) and, over SMTP, to the
instance it starts; nothing touches /etc/postfix. Used by tests/e2e and bench/; tested by
tests/harness_selftest/test_servers.py.

Layout under workdir: etc/ (main.cf, master.cf, transport), queue/, data/, maillog,
sink/ (one file per message smtp-sink received), postfix.out, sink.out.
"""

import email
import email.policy
import email.utils
import json
import os
import re
import shutil
import signal
import smtplib
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .procs import (LOOPBACK, HarnessError, ManagedProcess, free_ports, log_tail, make_dir,
                    pid_running, retry_on_port_race, stop_at_exit, wait_until)

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTQUEUE = shutil.which("postqueue") or "/usr/sbin/postqueue"
POSTSUPER = shutil.which("postsuper") or "/usr/sbin/postsuper"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
# The sink drops to this user (it refuses to run as root) and writes sink/ as that user.
SINK_USER = "nobody"

# Queue subdirectories holding messages not yet delivered (hold counted separately).
PENDING_QUEUES = ("maildrop", "incoming", "active", "deferred")

BASE_MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{listen} inet n - n - - smtpd
{reinject_listen} inet n - n - - smtpd
  -o smtpd_milters=
  -o non_smtpd_milters=
  -o smtpd_client_restrictions=
  -o smtpd_helo_restrictions=
  -o smtpd_sender_restrictions=
  -o smtpd_relay_restrictions=
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
  -o smtpd_data_restrictions=
  -o smtpd_end_of_data_restrictions=
  -o mynetworks=127.0.0.0/8
  -o receive_override_options=no_unknown_recipient_checks
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _base_main_cf(p):
    """The default main.cf parameters of an instance (a dict; tests override any of them)."""
    return {
        "compatibility_level": "3.6",
        "queue_directory": str(p.queue_dir),
        "data_directory": str(p.data_dir),
        "maillog_file": str(p.maillog_path),
        "maillog_file_prefixes": str(p.workdir),
        "inet_interfaces": LOOPBACK,
        "inet_protocols": "ipv4",
        "myhostname": "mx.example.test",
        "mydomain": "example.test",
        "myorigin": "$myhostname",
        "mydestination": "",
        "local_recipient_maps": "",
        "alias_maps": "",
        "alias_database": "",
        "relay_domains": "example.test, .example.test, texthash:%s" % p.transport_path,
        "mynetworks": "127.0.0.0/8",
        "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        "recipient_delimiter": "+",
        "disable_dns_lookups": "yes",
        "smtp_dns_support_level": "disabled",
        "smtputf8_enable": "no",
        "biff": "no",
        "append_dot_mydomain": "no",
        "transport_maps": "texthash:%s" % p.transport_path,
        "default_transport": "smtp:[%s]:%d" % (LOOPBACK, p.sink_port),
        "relay_transport": "smtp:[%s]:%d" % (LOOPBACK, p.sink_port),
        "local_transport": "error:5.1.1 no local delivery in the test instance",
        # Fast retries so deferred-then-delivered tests take seconds.
        "queue_run_delay": "1s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "delay_warning_time": "0h",
        "in_flow_delay": "0",
        "smtpd_error_sleep_time": "0s",
        "smtp_connect_timeout": "5s",
        "lmtp_connect_timeout": "5s",
        "milter_connect_timeout": "5s",
        "smtpd_banner": "$myhostname ESMTP owlery-test",
        "default_process_limit": "20",
    }


def _render_main_cf(params):
    lines = ["# written by tests/harness/postfix.py"]
    for k, v in params.items():
        lines.append("%s = %s" % (k, v))
    return "\n".join(lines) + "\n"


def _write_if_changed(path, text, mode=0o644):
    """Rewrite path only when its content differs (a newer main.cf slows 'postfix check')."""
    path = Path(path)
    data = text.encode()
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    backdate(tmp)
    os.replace(tmp, path)
    return True


def backdate(path, seconds=5):
    """Set path's mtime a few seconds back.

    Postfix waits (in 300 ms steps, up to ~2 s) before using a main.cf or lookup table
    modified within the last second or so, in case it is still being written; tests write
    theirs and use them at once. Use this on any map file a test writes for Postfix.
    """
    t = time.time() - seconds
    os.utime(path, (t, t))


@dataclass
class SinkMessage:
    """One message received by the instance's smtp-sink."""
    path: Path
    client_addr: str
    helo: str
    mail_from: str            # MAIL FROM address without <> (may be "" for bounces)
    rcpts: list               # RCPT TO addresses without <>
    raw: bytes                # message as Postfix delivered it (sink's own headers removed)
    message: email.message.EmailMessage = field(repr=False)

    def __getitem__(self, header):
        return self.message[header]


@dataclass
class SendResult:
    """Outcome of PostfixInstance.send(): per-recipient replies and the DATA reply."""
    rcpt: dict                # address -> (code, text)
    data: tuple = None        # (code, text) or None when no recipient was accepted
    mail: tuple = None        # (code, text) of MAIL FROM

    @property
    def accepted(self):
        return [a for a, (c, _) in self.rcpt.items() if 200 <= c < 300]

    @property
    def refused(self):
        return {a: r for a, r in self.rcpt.items() if not 200 <= r[0] < 300}

    @property
    def queue_id(self):
        if self.data is None:
            return None
        m = re.search(r"queued as ([0-9A-Za-z]+)", self.data[1])
        return m.group(1) if m else None


def _parse_sink_file(path):
    raw = Path(path).read_bytes()
    head, sep, rest = raw.partition(b"\nReceived: ")
    meta = {"X-Client-Addr": "", "X-Helo-Args": "", "X-Mail-Args": ""}
    rcpts = []
    for line in head.decode("utf-8", "replace").splitlines():
        k, _, v = line.partition(": ")
        if k == "X-Rcpt-Args":
            rcpts.append(_addr_arg(v))
        elif k in meta:
            meta[k] = v
    # smtp-sink's own Received: is three lines ("from ..", "by ..", date); the message follows.
    body = rest
    if sep:
        lines = rest.split(b"\n", 3)
        body = lines[3] if len(lines) > 3 else b""
    # smtp-sink appends one empty line after the message.
    if body.endswith(b"\n\n"):
        body = body[:-1]
    msg = email.message_from_bytes(body, policy=email.policy.default)
    return SinkMessage(Path(path), meta["X-Client-Addr"], meta["X-Helo-Args"],
                       _addr_arg(meta["X-Mail-Args"]), rcpts, body, msg)


def _addr_arg(arg):
    """'<a@b> SIZE=12' or 'TO:<a@b>' -> 'a@b'."""
    m = re.search(r"<([^>]*)>", arg)
    return m.group(1) if m else arg.split()[0] if arg.split() else ""


def _as_bytes(msg):
    if isinstance(msg, bytes):
        return msg
    if isinstance(msg, str):
        return msg.encode("utf-8")
    return msg.as_bytes(policy=email.policy.SMTP)


def _smtp_text(resp):
    return resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)


class PostfixInstance:
    """A private Postfix relaying everything not in `transports` to its own smtp-sink.

    main_cf: dict of parameters (merged over the defaults; value None deletes one) or a str
    of extra main.cf lines appended after them. master_cf_extra: lines appended to the
    generated master.cf (e.g. a pipe service). transports: {domain: "transport:nexthop"}
    written to a texthash transport map (no postmap needed).

    Attributes: workdir, config_dir, queue_dir, data_dir, maillog_path, sink_dir, port
    (main smtpd), reinject_port (smtpd without milters/restrictions, like amavis' 10025),
    sink_port. Methods: start(), stop(), reload(), configure(...), flush(), queue(),
    wait_queue_empty(), maillog(), wait_for_log(), sent_messages(), wait_sent(),
    clear_sent(), send(), postconf().
    """

    def __init__(self, workdir, main_cf=None, master_cf_extra="", transports=None):
        self.workdir = make_dir(workdir)
        self.config_dir = self.workdir / "etc"
        self.queue_dir = self.workdir / "queue"
        self.data_dir = self.workdir / "data"
        self.maillog_path = self.workdir / "maillog"
        self.sink_dir = self.workdir / "sink"
        self.transport_path = self.config_dir / "transport"
        self.port = self.reinject_port = self.sink_port = None
        self.main_cf = main_cf
        self.master_cf_extra = master_cf_extra
        self.transports = dict(transports) if transports else {}
        self.master = None
        self.sink = None
        stop_at_exit(self)

    # ---- configuration --------------------------------------------------------------
    def _main_cf_text(self):
        params = _base_main_cf(self)
        extra = ""
        if isinstance(self.main_cf, dict):
            for k, v in self.main_cf.items():
                if v is None:
                    params.pop(k, None)
                else:
                    params[k] = v
        elif self.main_cf:
            extra = self.main_cf if self.main_cf.endswith("\n") else self.main_cf + "\n"
        return _render_main_cf(params) + extra

    def _master_cf_text(self):
        text = BASE_MASTER_CF.format(listen="%s:%d" % (LOOPBACK, self.port),
                                     reinject_listen="%s:%d" % (LOOPBACK, self.reinject_port))
        if self.master_cf_extra:
            text += self.master_cf_extra.rstrip("\n") + "\n"
        return text

    def _transport_text(self):
        return "".join("%s %s\n" % (d, t) for d, t in sorted(self.transports.items()))

    def write_config(self):
        """Write main.cf, master.cf and the transport map (each only if changed)."""
        make_dir(self.config_dir)
        changed = _write_if_changed(self.transport_path, self._transport_text())
        changed |= _write_if_changed(self.config_dir / "main.cf", self._main_cf_text())
        changed |= _write_if_changed(self.config_dir / "master.cf", self._master_cf_text())
        return changed

    def configure(self, main_cf=None, master_cf_extra=None, transports=None):
        """Replace any of the three config inputs; rewrite files; reload if running."""
        if main_cf is not None:
            self.main_cf = main_cf
        if master_cf_extra is not None:
            self.master_cf_extra = master_cf_extra
        if transports is not None:
            self.transports = dict(transports)
        if self.port is not None and self.write_config() and self.running:
            self.reload()

    def postconf(self, *args):
        """Run `postconf -c CONFIG_DIR args...` and return stdout (e.g. postconf('-h', 'mynetworks'))."""
        return self._run(["postconf", "-c", str(self.config_dir)] + list(args)).stdout

    # ---- lifecycle ------------------------------------------------------------------
    @property
    def running(self):
        return self.master is not None and self.master.alive()

    def start(self, timeout=20.0):
        """Start smtp-sink and Postfix; return when both answer SMTP. Raises HarnessError."""
        if self.running:
            return self
        if self.port is None:
            return retry_on_port_race(self._start_fresh_ports)
        self._start(timeout)
        return self

    def _start_fresh_ports(self, timeout=20.0):
        self.port, self.reinject_port, self.sink_port = free_ports(3)
        try:
            self._start(timeout)
        except HarnessError:
            self._stop_processes()
            self.port = None
            raise
        return self

    def _start(self, timeout):
        make_dir(self.sink_dir, 0o755, owner=SINK_USER)
        make_dir(self.queue_dir)
        self.write_config()
        if self.sink is None or not self.sink.alive():
            self.sink = ManagedProcess(
                [SMTP_SINK, "-u", SINK_USER, "-h", "sink.test",
                 "-d", str(self.sink_dir) + "/%Y%m%d%H%M%S.", "%s:%d" % (LOOPBACK, self.sink_port), "64"],
                "smtp-sink", self.workdir / "sink.out").start()
        if (self.data_dir / "master.lock").exists() and (self.queue_dir / "pid").is_dir():
            # Directories were created by an earlier start: skip the slow integrity check.
            (self.queue_dir / "quick-start").touch()
        # start-fg keeps master as our descendant (waitable) instead of a daemon.
        self.master = ManagedProcess([POSTFIX, "-c", str(self.config_dir), "start-fg"], "postfix",
                                     self.workdir / "postfix.out", extra_logs=[self.maillog_path])
        self.master.start()
        try:
            wait_until(lambda: self._banner(self.sink_port), timeout, "smtp-sink on port %d" % self.sink_port,
                       self.sink)
            wait_until(lambda: self._banner(self.port) and self._banner(self.reinject_port), timeout,
                       "postfix smtpd on ports %d/%d" % (self.port, self.reinject_port), self.master)
        except HarnessError as exc:
            raise HarnessError("%s\n%s" % (exc, self.sink.log_tail(10))) from None

    @staticmethod
    def _banner(port):
        s = smtplib.SMTP(timeout=2)
        try:
            code, _ = s.connect(LOOPBACK, port)
            return code == 220
        except (OSError, smtplib.SMTPException):
            return False
        finally:
            try:
                s.quit()
            except (OSError, smtplib.SMTPException):
                s.close()

    def _is_our_master(self, pid):
        """The pid file may be stale: check the process is a master of this config dir."""
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            return False
        return b"master" in cmd and ("MAIL_CONFIG=%s" % self.config_dir).encode() in env

    def _master_pid(self):
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, timeout=15.0):
        """Stop Postfix (master and its children) and smtp-sink; safe to call twice."""
        self._stop_processes(timeout)

    def _stop_processes(self, timeout=15.0):
        pid = self._master_pid()
        if pid and pid_running(pid) and self._is_our_master(pid):
            # SIGTERM to master directly: `postfix stop` sleeps in 1 s steps while waiting.
            os.kill(pid, signal.SIGTERM)
            try:
                wait_until(lambda: not pid_running(pid), timeout, "postfix master %d exit" % pid)
            except HarnessError:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
        if self.master is not None:
            self.master.stop(5)
        if self.sink is not None:
            self.sink.stop(timeout)

    def reload(self, timeout=10.0):
        """Rewrite config (if changed) and `postfix reload`; wait until master logged it."""
        self.write_config()
        before = self.maillog().count("reload -- version")
        self._run([POSTFIX, "-c", str(self.config_dir), "reload"])
        wait_until(lambda: self.maillog().count("reload -- version") > before, timeout,
                   "postfix reload", self.master)

    # ---- queue ----------------------------------------------------------------------
    def _run(self, argv, check=True, timeout=30, input=None):
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HarnessError("%s failed: %s\n%s" % (" ".join(argv), exc, log_tail(self.maillog_path))) from exc
        if check and proc.returncode != 0:
            raise HarnessError("%s exited %d: %s%s\n--- maillog ---\n%s" % (
                " ".join(argv), proc.returncode, proc.stdout, proc.stderr, log_tail(self.maillog_path)))
        return proc

    def flush(self):
        """`postqueue -f`: attempt delivery of all queued mail now."""
        self._run([POSTQUEUE, "-c", str(self.config_dir), "-f"])

    def queue(self):
        """Queue contents from `postqueue -j`: list of dicts (queue_name, queue_id, sender,
        recipients=[{address, delay_reason?}], ...)."""
        out = self._run([POSTQUEUE, "-c", str(self.config_dir), "-j"]).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def queue_files(self, include_hold=False):
        """Queue ids of messages on disk not yet delivered (no Postfix process needed)."""
        names = PENDING_QUEUES + (("hold",) if include_hold else ())
        ids = []
        for q in names:
            for _root, _dirs, files in os.walk(self.queue_dir / q):
                ids.extend(files)
        return ids

    def wait_queue_empty(self, timeout=15.0, include_hold=False):
        """Wait until no message is waiting in maildrop/incoming/active/deferred (and hold)."""
        try:
            wait_until(lambda: not self.queue_files(include_hold), timeout, "postfix queue empty")
        except HarnessError as exc:
            raise HarnessError("%s; queue: %s\n--- maillog ---\n%s" % (
                exc, self._queue_summary(), log_tail(self.maillog_path))) from None

    def _queue_summary(self):
        try:
            return json.dumps(self.queue())
        except HarnessError:
            return repr(self.queue_files(True))

    def delete_queue(self):
        """`postsuper -d ALL`: drop every queued message."""
        self._run([POSTSUPER, "-c", str(self.config_dir), "-d", "ALL"])

    # ---- logs and delivered mail -----------------------------------------------------
    def maillog(self):
        """Full text of this instance's maillog ('' before the first line)."""
        try:
            return self.maillog_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern, timeout=15.0, start=0):
        """Wait for a maillog line matching regex `pattern` (searched from char offset start);
        returns the re.Match."""
        rx = re.compile(pattern)
        try:
            return wait_until(lambda: rx.search(self.maillog(), start), timeout,
                              "maillog line matching %r" % pattern)
        except HarnessError as exc:
            raise HarnessError("%s\n--- maillog ---\n%s" % (exc, log_tail(self.maillog_path))) from None

    def sent_messages(self):
        """Messages smtp-sink received, oldest first (complete once the queue is empty)."""
        files = [p for p in self.sink_dir.iterdir() if p.is_file()] if self.sink_dir.exists() else []
        files.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [_parse_sink_file(p) for p in files]

    def wait_sent(self, count=1, timeout=15.0):
        """Wait until the sink holds at least `count` messages and the queue is empty;
        returns sent_messages()."""
        def done():
            n = len(list(self.sink_dir.iterdir())) if self.sink_dir.exists() else 0
            return n >= count and not self.queue_files()
        try:
            wait_until(done, timeout, "%d message(s) in the sink" % count)
        except HarnessError as exc:
            raise HarnessError("%s; queue: %s\n--- maillog ---\n%s" % (
                exc, self._queue_summary(), log_tail(self.maillog_path))) from None
        return self.sent_messages()

    def clear_sent(self):
        """Forget messages received so far by the sink."""
        if self.sink_dir.exists():
            for p in self.sink_dir.iterdir():
                if p.is_file():
                    p.unlink()

    # ---- SMTP client -----------------------------------------------------------------
    def send(self, sender, rcpts, msg, port=None, helo="client.example.test", xclient=None,
             check=True, timeout=30.0):
        """Send one message over SMTP (main port unless `port`), one RCPT per recipient.

        msg: bytes, str or email.message.Message. xclient: optional dict sent as
        XCLIENT (e.g. {"ADDR": "192.0.2.7", "NAME": "[UNAVAILABLE]"}) to appear as another
        client. Returns SendResult (.rcpt {addr: (code, text)}, .data, .queue_id, .accepted,
        .refused). With check=True raises smtplib.SMTPRecipientsRefused when every recipient
        is refused, SMTPSenderRefused / SMTPDataError on MAIL / DATA failure.
        """
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        data = _as_bytes(msg)
        result = SendResult(rcpt={})
        with smtplib.SMTP(LOOPBACK, port or self.port, local_hostname=helo, timeout=timeout) as s:
            s.ehlo()
            if xclient:
                args = " ".join("%s=%s" % (k, v) for k, v in xclient.items())
                code, resp = s.docmd("XCLIENT", args)
                if code != 220:
                    raise smtplib.SMTPResponseException(code, resp)
                s.ehlo_resp = None
                s.ehlo()
            code, resp = s.mail(sender)
            result.mail = (code, _smtp_text(resp))
            if code != 250:
                if check:
                    raise smtplib.SMTPSenderRefused(code, resp, sender)
                return result
            for r in rcpts:
                code, resp = s.rcpt(r)
                result.rcpt[r] = (code, _smtp_text(resp))
            if not result.accepted:
                s.rset()
                if check:
                    raise smtplib.SMTPRecipientsRefused(
                        {a: (c, t.encode()) for a, (c, t) in result.rcpt.items()})
                return result
            code, resp = s.data(data)
            result.data = (code, _smtp_text(resp))
            if code != 250 and check:
                raise smtplib.SMTPDataError(code, resp)
        return result

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "<PostfixInstance %s port=%s>" % (self.workdir, self.port)


def build_message(sender="sender@example.test", to="rcpt@example.test", subject="test",
                  body="test body\n", headers=None):
    """A small RFC 5322 message as bytes (CRLF line ends), for tests that need any mail."""
    lines = ["From: <%s>" % sender, "To: <%s>" % to, "Subject: %s" % subject,
             "Date: %s" % email.utils.formatdate(localtime=False),
             "Message-ID: %s" % email.utils.make_msgid(domain="example.test")]
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    text = "\r\n".join(lines) + "\r\n\r\n" + body.replace("\r\n", "\n").replace("\n", "\r\n")
    return text.encode("utf-8")

