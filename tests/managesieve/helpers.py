"""Shared pieces of the ManageSieve tests: a synchronous session driver, a blocking client, a test CA.

`Driver(session)` carries out a ManageSieveSession's actions at once (Call runs in this thread, Wait is
recorded instead of waited, StartTLS resumes at once) and collects what was sent.
`Client(host, port)` is a small blocking ManageSieve client over a socket (quoted strings and
{n+} literals, STARTTLS with a CA file) used against our server and Dovecot's.
`make_certificate(dir)` writes a throw-away CA and a server certificate for 127.0.0.1/localhost.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import re
import socket
import ssl
from pathlib import Path

from sieve.managesieve import session as s
from tests.harness.owlery_daemons import OwleryDaemon


class Driver:
    """Runs a sans-I/O ManageSieveSession synchronously; `sent` is every byte it wrote."""

    def __init__(self, session: s.ManageSieveSession):
        self.session = session
        self.sent = b""
        self.waits: list[float] = []
        self.timeouts: list[float | None] = []
        self.closed = False
        self.tls_started = 0
        self._do(session.start())

    def _do(self, actions):
        while actions:
            action, actions = actions[0], actions[1:]
            if isinstance(action, s.Send):
                self.sent += action.data
            elif isinstance(action, s.Call):
                try:
                    value = action.fn()
                except Exception as e:  # noqa: BLE001 - handed back to the session like the adapter does
                    actions = self.session.resume_error(e) + actions
                else:
                    actions = self.session.resume(value) + actions
            elif isinstance(action, s.Wait):
                self.waits.append(action.seconds)
                actions = self.session.resume(None) + actions
            elif isinstance(action, s.StartTLS):
                self.tls_started += 1
                actions = self.session.resume(None) + actions
            elif isinstance(action, s.Timeout):
                self.timeouts.append(action.seconds)
            elif isinstance(action, s.Close):
                self.closed = True

    def take(self) -> bytes:
        out, self.sent = self.sent, b""
        return out

    def say(self, data: bytes | str) -> bytes:
        """Send client bytes; return what the server answered to them."""
        self.take()
        self._do(self.session.receive(data.encode() if isinstance(data, str) else data))
        return self.take()


def plain(user: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def literal(data: bytes | str, plus: bool = True) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return b"{%d%s}\r\n" % (len(raw), b"+" if plus else b"") + raw


class Response:
    def __init__(self, kind: str, code: str | None, text: str, lines: list):
        self.kind, self.code, self.text, self.lines = kind, code, text, lines

    @property
    def ok(self) -> bool:
        return self.kind == "OK"

    def __repr__(self) -> str:
        return f"Response({self.kind} ({self.code}) {self.text!r}, {len(self.lines)} lines)"


_STATUS = re.compile(rb'^(OK|NO|BYE)(?: \(([^)]*)\))?(?: (.*))?$')


class Client:
    """A blocking ManageSieve client (enough for tests against two servers)."""

    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.greeting = self.read_response()
        self.capabilities = dict(self._cap(line) for line in self.greeting.lines)

    @staticmethod
    def _cap(line: list) -> tuple[str, str | None]:
        return line[0].decode(), (line[1].decode() if len(line) > 1 else None)

    def _read_string(self, first: bytes) -> tuple[bytes, bytes]:
        """A string starting at `first` (quoted or {n} literal) and the rest of the line."""
        if first.startswith(b'"'):
            out, i = bytearray(), 1
            while i < len(first) and first[i:i + 1] != b'"':
                if first[i:i + 1] == b"\\":
                    i += 1
                out += first[i:i + 1]
                i += 1
            return bytes(out), first[i + 1:]
        m = re.match(rb"\{(\d+)\+?\}$", first)
        assert m, first
        data = self.file.read(int(m.group(1)))
        return data, self.file.readline().rstrip(b"\r\n")

    def _tokens(self, line: bytes) -> list:
        tokens = []
        while line:
            line = line.lstrip(b" ")
            if line.startswith(b'"') or line.startswith(b"{"):
                value, line = self._read_string(line)
                tokens.append(value)
            else:
                word, _, line = line.partition(b" ")
                tokens.append(word)
        return tokens

    def read_response(self) -> Response:
        lines = []
        while True:
            raw = self.file.readline()
            if not raw:
                raise ConnectionError("connection closed")
            line = raw.rstrip(b"\r\n")
            m = _STATUS.match(line)
            if m:
                text = b""
                if m.group(3):
                    text, _ = self._read_string(m.group(3))
                return Response(m.group(1).decode(), m.group(2).decode() if m.group(2) else None,
                                text.decode("utf-8", "replace"), lines)
            lines.append(self._tokens(line))

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def command(self, *parts: bytes | str) -> Response:
        self.send(b" ".join(p.encode() if isinstance(p, str) else p for p in parts) + b"\r\n")
        return self.read_response()

    def starttls(self, cafile: str, hostname: str = "localhost") -> Response:
        r = self.command("STARTTLS")
        assert r.ok, r
        ctx = ssl.create_default_context(cafile=cafile)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=hostname)
        self.file = self.sock.makefile("rb")
        caps = self.read_response()
        self.capabilities = dict(self._cap(line) for line in caps.lines)
        return caps

    def login(self, user: str, password: str) -> Response:
        return self.command('AUTHENTICATE "PLAIN"', '"' + plain(user, password) + '"')

    def putscript(self, name: str, script: str | bytes) -> Response:
        return self.command(f'PUTSCRIPT "{name}"', literal(script))

    def listscripts(self) -> tuple[list[tuple[str, bool]], Response]:
        r = self.command("LISTSCRIPTS")
        return [(line[0].decode(), len(line) > 1 and line[1] == b"ACTIVE") for line in r.lines], r

    def getscript(self, name: str) -> tuple[bytes | None, Response]:
        r = self.command(f'GETSCRIPT "{name}"')
        return (r.lines[0][0] if r.ok else None), r

    def close(self) -> None:
        try:
            self.command("LOGOUT")
        except OSError:
            pass
        self.sock.close()


def make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server cert.pem, server key.pem) for localhost and 127.0.0.1 (ECDSA P-256)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Owlery test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


class ManageSieveDaemon(OwleryDaemon):
    """`owlery managesieve --config <work>/<name>.toml` on a free loopback port, as a child process."""

    command = "managesieve"
    preamble = ""
