"""A private SpamAssassin spamd with Debian's stock rules, offline, for spam-check tests.

Runs spamd as a child on a free loopback port, children as debian-spamd, no user config,
--local (no network tests), --allow-tell, Bayes database in its private dir; ready when the
SPAMC PING answers PONG (the port opens ~1 s before the children answer). Also a raw SPAMC
client (check/symbols/report/tell). Tested by tests/harness_selftest/test_servers.py.

GTUBE (the constant below) scores 1000.
"""

import shutil
import socket

from .procs import LOOPBACK, HarnessError, ManagedProcess, ServerProcess, make_dir, wait_until

SPAMD = shutil.which("spamd") or "/usr/sbin/spamd"
SPAMD_USER = "debian-spamd"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def spamc_request(port, verb, message=b"", headers=None, host=LOOPBACK, timeout=30.0):
    """One SPAMC/1.5 request (verb: PING, CHECK, SYMBOLS, REPORT, HEADERS, PROCESS, TELL);
    returns (status_line, headers_dict, body_bytes)."""
    lines = ["%s SPAMC/1.5" % verb]
    hdrs = dict(headers or {})
    if verb != "PING":
        hdrs.setdefault("Content-length", str(len(message)))
    lines += ["%s: %s" % kv for kv in hdrs.items()]
    req = ("\r\n".join(lines) + "\r\n\r\n").encode() + (message if verb != "PING" else b"")
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(req)
        s.shutdown(socket.SHUT_WR)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    hlines = head.decode("utf-8", "replace").split("\r\n")
    out = {}
    for line in hlines[1:]:
        k, _, v = line.partition(":")
        out[k.strip()] = v.strip()
    return hlines[0], out, body


def parse_spam_header(value):
    """'True ; 1000.0 / 5.0' -> (True, 1000.0, 5.0)."""
    flag, _, rest = value.partition(";")
    score, _, threshold = rest.partition("/")
    return flag.strip().lower() in ("true", "yes"), float(score), float(threshold)


class Spamd(ServerProcess):
    """spamd on 127.0.0.1:<port>. extra_cf: extra config lines passed as --cf (e.g. rules).

    Attributes: port, workdir, log_path. Methods: start(), stop(), ping() -> bool,
    check(msg) -> (is_spam, score, threshold), symbols(msg) -> list of rule names,
    tell(msg, "spam"|"ham") -> headers dict.
    """

    start_timeout = 90.0
    stop_timeout = 15

    def __init__(self, workdir, extra_cf=()):
        self.workdir = make_dir(workdir, 0o755, owner=SPAMD_USER)
        self.bayes_dir = make_dir(self.workdir / "bayes", 0o755, owner=SPAMD_USER)
        self.log_path = self.workdir / "spamd.log"
        self.extra_cf = list(extra_cf)

    def _spawn(self, timeout):
        argv = [SPAMD, "--listen=%s:%d" % (LOOPBACK, self.port), "--allowed-ips=127.0.0.1",
                "-u", SPAMD_USER, "-g", SPAMD_USER, "--helper-home-dir=%s" % self.workdir,
                "--nouser-config", "--local", "--allow-tell", "--max-children=2", "--min-children=1",
                "--syslog=%s" % self.log_path, "--pidfile=%s" % (self.workdir / "spamd.pid"),
                "--cf=bayes_path %s/bayes" % self.bayes_dir, "--cf=bayes_auto_learn 0",
                "--cf=bayes_min_ham_num 1", "--cf=bayes_min_spam_num 1"]
        argv += ["--cf=%s" % line for line in self.extra_cf]
        with self._started(ManagedProcess(argv, "spamd", self.workdir / "spamd.out",
                                          extra_logs=[self.log_path])) as proc:
            wait_until(self.ping, timeout, "spamd on port %d" % self.port, proc, interval=0.05)

    def ping(self):
        try:
            status, _, _ = spamc_request(self.port, "PING", timeout=2.0)
        except OSError:
            return False
        return "PONG" in status

    def check(self, msg):
        status, headers, _ = spamc_request(self.port, "CHECK", msg)
        if "EX_OK" not in status:
            raise HarnessError("spamd CHECK: %s" % status)
        return parse_spam_header(headers["Spam"])

    def symbols(self, msg):
        status, _, body = spamc_request(self.port, "SYMBOLS", msg)
        if "EX_OK" not in status:
            raise HarnessError("spamd SYMBOLS: %s" % status)
        return [s for s in body.decode().strip().split(",") if s]

    def tell(self, msg, message_class="spam"):
        status, headers, _ = spamc_request(self.port, "TELL", msg, headers={
            "Message-class": message_class, "Set": "local", "User": SPAMD_USER})
        if "EX_OK" not in status:
            raise HarnessError("spamd TELL: %s" % status)
        return headers
