"""A private clamd with a tiny signature database made here (EICAR), for antivirus tests.

No network and no freshclam: the DatabaseDirectory holds owlery-test.ndb (a body signature of
the EICAR test string, which clamd also finds base64-encoded inside a MIME message) and
owlery-test.hdb (MD5 of the exact 68-byte eicar.com file). Listens on a free loopback TCP
port and a unix socket; ready when PING answers PONG. Tested by
tests/harness_selftest/test_servers.py.

Virus name as clamd 1.4 reports it (".UNOFFICIAL" is appended to local signatures):
"Owlery.Test.EICAR.UNOFFICIAL", for the exact file as well as inside a message; other ClamAV
versions may report the hash match "Owlery.Test.EICAR-HDB.UNOFFICIAL" for the exact file, so
assert name.startswith(EICAR_NAME).
Extra body signatures: Clamd(workdir, signatures={"Owlery.Test.Foo": b"bytes to find"}).
"""

import hashlib
import shutil
import socket
import struct

from .procs import LOOPBACK, HarnessError, ManagedProcess, ServerProcess, make_dir, wait_until

CLAMD = shutil.which("clamd") or "/usr/sbin/clamd"

# The EICAR anti-virus test file, assembled at run time so this source file itself is not
# flagged by scanners.
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-" + b"TEST-FILE!$H+H*")
EICAR_NAME = "Owlery.Test.EICAR"
EICAR_HDB_NAME = "Owlery.Test.EICAR-HDB"


def clamd_command(port=None, path=None, command=b"PING", payload=None, timeout=5.0):
    """Send one z-command (zPING, zVERSION, zINSTREAM with payload) over TCP port or unix
    path; return the reply without the trailing NUL, decoded."""
    if path is not None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = str(path)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        target = (LOOPBACK, port)
    s.settimeout(timeout)
    try:
        s.connect(target)
        s.sendall(b"z" + command + b"\0")
        if payload is not None:
            for i in range(0, len(payload), 65536):
                chunk = payload[i:i + 65536]
                s.sendall(struct.pack("!L", len(chunk)) + chunk)
            s.sendall(struct.pack("!L", 0))
        buf = b""
        while not buf.endswith(b"\0"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf.rstrip(b"\0").decode("utf-8", "replace")
    finally:
        s.close()


class Clamd(ServerProcess):
    """clamd with a private config and signature database.

    Attributes: port (TCP on 127.0.0.1), socket_path (unix socket, mode 666), db_dir,
    workdir, log_path. Methods: start(), stop(), restart(), ping() -> bool,
    scan_bytes(data) -> ("FOUND", name) | ("OK", None) via INSTREAM.
    """

    def __init__(self, workdir, signatures=None):
        self.workdir = make_dir(workdir)
        self.db_dir = make_dir(self.workdir / "db")
        self.tmp_dir = make_dir(self.workdir / "tmp")
        self.socket_path = self.workdir / "clamd.sock"
        self.conf_path = self.workdir / "clamd.conf"
        self.log_path = self.workdir / "clamd.log"
        self.signatures = dict(signatures or {})

    def _write_db(self):
        ndb = ["%s:0:*:%s" % (EICAR_NAME, EICAR.hex())]
        ndb += ["%s:0:*:%s" % (name, bytes(data).hex()) for name, data in self.signatures.items()]
        (self.db_dir / "owlery-test.ndb").write_text("\n".join(ndb) + "\n")
        (self.db_dir / "owlery-test.hdb").write_text(
            "%s:%d:%s\n" % (hashlib.md5(EICAR).hexdigest(), len(EICAR), EICAR_HDB_NAME))

    def _write_conf(self):
        self.conf_path.write_text(
            "DatabaseDirectory %s\n" % self.db_dir +
            "TCPSocket %d\n" % self.port +
            "TCPAddr %s\n" % LOOPBACK +
            "LocalSocket %s\n" % self.socket_path +
            "LocalSocketMode 666\n"
            "FixStaleSocket yes\n"
            "Foreground yes\n"
            "LogFile %s\n" % self.log_path +
            "LogTime yes\n"
            "TemporaryDirectory %s\n" % self.tmp_dir +
            "MaxThreads 4\n"
            "StreamMaxLength 25M\n"
            "SelfCheck 0\n"
            "Bytecode no\n")

    def _spawn(self, timeout):
        self._write_db()
        self._write_conf()
        with self._started(ManagedProcess([CLAMD, "-c", self.conf_path], "clamd", self.workdir / "clamd.out",
                                          extra_logs=[self.log_path])) as proc:
            wait_until(self.ping, timeout, "clamd on port %d" % self.port, proc)

    def ping(self):
        try:
            return clamd_command(self.port, command=b"PING", timeout=1.0) == "PONG"
        except OSError:
            return False

    def scan_bytes(self, data):
        """INSTREAM data; returns ("FOUND", virus_name) or ("OK", None); raises on ERROR."""
        reply = clamd_command(self.port, command=b"INSTREAM", payload=data)
        # "stream: <name> FOUND" / "stream: OK"
        result = reply.split(": ", 1)[1] if ": " in reply else reply
        if result.endswith(" FOUND"):
            return "FOUND", result[:-len(" FOUND")]
        if result == "OK":
            return "OK", None
        raise HarnessError("clamd INSTREAM: %r" % reply)

    def __repr__(self):
        return "<Clamd 127.0.0.1:%s %s>" % (self.port, self.socket_path)
