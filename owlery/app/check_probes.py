"""The probes of `owlery check`: each asks one service a harmless question in its own protocol.

A daemon probe writes the few bytes of its protocol itself (no client library): a policy
request at protocol_state VRFY (no check can run there, so the answer is DUNNO and nothing is
written to any store), a milter option negotiation (SMFIC_OPTNEG, then SMFIC_QUIT), LHLO,
a socketmap lookup, the ManageSieve greeting and CAPABILITY, clamd's zPING and spamd's PING.
The backend probes resolve the probe address in the directory, ping the state store and
prove the quarantine store writable (a temporary file or row, removed at once). Each returns
a `ProbeResult`; a probe raises `ConfigProblem` (UNKNOWN), `Mismatch` (CRITICAL: something
answered, wrongly) or OSError / TimeoutError (CRITICAL) and owlery/app/check.py judges those.
Talks to: the daemons, clamd, spamd, the directory, Redis/SQLite, the quarantine store,
postqueue. Tests: tests/core/test_check.py, tests/e2e/test_check_e2e.py
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import time
from typing import Any

from owlery.endpoints import ListenEndpoint, connect, parse_endpoint

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATUS_WORDS = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
REPLY_MAX = 65536          # a greeting or reply longer than this is no answer of ours


@dataclasses.dataclass(frozen=True)
class Perf:
    """One perfdata item: 'label'=value[UOM];warn;crit;min;max (Nagios plugin guidelines)."""

    label: str
    value: float
    uom: str = ""
    warn: float | None = None
    crit: float | None = None
    min: float | None = None
    max: float | None = None

    def render(self) -> str:
        label = f"'{self.label}'" if any(c in self.label for c in " '=") else self.label
        fields = [f"{_num(self.value)}{self.uom}"] + ["" if v is None else _num(v)
                                                      for v in (self.warn, self.crit, self.min, self.max)]
        while fields[-1] == "":
            fields.pop()
        return f"{label}={';'.join(fields)}"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.6f}".rstrip("0")


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    status: int
    text: str
    perf: tuple[Perf, ...] = ()


class ConfigProblem(Exception):
    """The settings do not say what to probe (UNKNOWN)."""


class Mismatch(Exception):
    """Something answered, but not as the service should (CRITICAL)."""


class Deadline:
    """The time one probe may still take; `left()` raises TimeoutError once it is spent."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no answer within {self.seconds:g} s")
        return remaining


def endpoint_of(value: Any, what: str) -> ListenEndpoint:
    """The first endpoint of a *_listen value (a string or a list) that can be dialled."""
    items = [value] if isinstance(value, str) else list(value or ())
    for item in items:
        endpoint = parse_endpoint(item)
        if endpoint.kind != "systemd":
            return endpoint
    raise ConfigProblem(f"{what} has no unix: or tcp: endpoint to dial ({', '.join(items) or 'empty'}); "
                        "set check_endpoints")


class Stream:
    """A connected socket read and written against a Deadline."""

    def __init__(self, endpoint: ListenEndpoint, deadline: Deadline):
        self.deadline = deadline
        if endpoint.kind not in ("unix", "tcp"):
            raise ConfigProblem(f"cannot dial {endpoint}")
        self.buf = b""
        self.sock = connect(endpoint, deadline.left())

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.settimeout(self.deadline.left())
        self.sock.sendall(data)

    def _fill(self) -> None:
        self.sock.settimeout(self.deadline.left())
        chunk = self.sock.recv(4096)
        if not chunk:
            raise Mismatch("connection closed before a full answer"
                           + (f" (got {self.buf[:80]!r})" if self.buf else ""))
        self.buf += chunk
        if len(self.buf) > REPLY_MAX:
            raise Mismatch(f"answer longer than {REPLY_MAX} bytes")

    def read_until(self, delimiter: bytes) -> bytes:
        while delimiter not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(delimiter)
        return head

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        head, self.buf = self.buf[:n], self.buf[n:]
        return head

    def read_reply(self, final: str) -> list[str]:
        """SMTP/LMTP-style reply lines up to the one whose 4th character is `final` (" ")."""
        lines = []
        while True:
            line = self.read_until(b"\n").rstrip(b"\r").decode("utf-8", "replace")
            lines.append(line)
            if line[3:4] == final or len(line) < 4:
                return lines


# --- daemons ---------------------------------------------------------------------------

# VRFY: no policy check may run there (each declares RCPT, DATA or END-OF-MESSAGE), so
# the answer is DUNNO and no greylist triplet or rate-limit bucket is touched.
POLICY_PROBE = (b"request=smtpd_access_policy\nprotocol_state=VRFY\nprotocol_name=SMTP\n"
                b"client_address=127.0.0.1\nclient_name=localhost\nhelo_name=owlery-check\n"
                b"instance=owlery-check\n\n")


def policyd(endpoint: ListenEndpoint, deadline: Deadline) -> ProbeResult:
    with Stream(endpoint, deadline) as s:
        s.send(POLICY_PROBE)
        reply = s.read_until(b"\n\n").decode("utf-8", "replace")
    if not reply.startswith("action="):
        raise Mismatch(f"not a policy reply: {reply[:80]!r}")
    return ProbeResult(OK, f"{reply.splitlines()[0]} from {endpoint}")


SMFI_VERSION = 6                 # what Postfix 2.6+ and libmilter 8.14+ speak
SMFI_ACTIONS_ALL = 0x1FF         # SMFIF_ADDHDRS .. SMFIF_SETSYMLIST: the MTA allows every action
SMFI_PROTOCOL_ALL = 0x1FFFFF     # SMFIP_NOCONNECT .. SMFIP_HDR_LEADSPC: every step may be skipped


def milter(endpoint: ListenEndpoint, deadline: Deadline) -> ProbeResult:
    with Stream(endpoint, deadline) as s:
        s.send(struct.pack("!IcIII", 13, b"O", SMFI_VERSION, SMFI_ACTIONS_ALL, SMFI_PROTOCOL_ALL))
        (length,) = struct.unpack("!I", s.read_exact(4))
        if not 13 <= length <= REPLY_MAX:
            raise Mismatch(f"milter reply of {length} bytes is no option negotiation")
        body = s.read_exact(length)
        if body[:1] != b"O":
            raise Mismatch(f"milter answered command {body[:1]!r}, not SMFIC_OPTNEG 'O'")
        version, actions, steps = struct.unpack("!III", body[1:13])
        s.send(struct.pack("!Ic", 1, b"Q"))       # SMFIC_QUIT: end the session politely
    return ProbeResult(OK, f"milter protocol version {version} negotiated (actions 0x{actions:x}, "
                       f"steps 0x{steps:x}) at {endpoint}")


def lmtpd(endpoint: ListenEndpoint, deadline: Deadline) -> ProbeResult:
    with Stream(endpoint, deadline) as s:
        greeting = s.read_reply(" ")
        if not greeting[-1].startswith("220"):
            raise Mismatch(f"greeting {greeting[-1][:100]!r}")
        s.send(b"LHLO owlery-check\r\n")
        reply = s.read_reply(" ")
        if not reply[-1].startswith("250"):
            raise Mismatch(f"LHLO answered {reply[-1][:100]!r}")
        s.send(b"QUIT\r\n")
    return ProbeResult(OK, f"LHLO answered 250 ({len(reply)} lines) at {endpoint}")


def netstring(data: bytes) -> bytes:
    return b"%d:%s," % (len(data), data)


def socketmap(endpoint: ListenEndpoint, deadline: Deadline, domain: str) -> ProbeResult:
    """A virtual_mailbox_domains lookup (it reaches the directory): OK and NOTFOUND are answers."""
    with Stream(endpoint, deadline) as s:
        s.send(netstring(f"virtual_mailbox_domains {domain}".encode()))
        length = s.read_until(b":")
        if not length.isdigit() or int(length) > REPLY_MAX:
            raise Mismatch(f"not a netstring: {length[:20]!r}")
        data = s.read_exact(int(length) + 1)
    if data[-1:] != b",":
        raise Mismatch("netstring without its comma")
    answer = data[:-1].decode("utf-8", "replace")
    status = answer.split(" ", 1)[0]
    if status not in ("OK", "NOTFOUND"):
        raise Mismatch(f"virtual_mailbox_domains {domain}: {answer[:120]}")
    return ProbeResult(OK, f"virtual_mailbox_domains {domain}: {status} at {endpoint}")


def managesieve(endpoint: ListenEndpoint, deadline: Deadline) -> ProbeResult:
    with Stream(endpoint, deadline) as s:
        greeting = _sieve_response(s)
        s.send(b"CAPABILITY\r\n")
        _sieve_response(s)
        s.send(b"LOGOUT\r\n")
    implementation = next((line.split(" ", 1)[1].strip('"') for line in greeting
                           if line.upper().startswith('"IMPLEMENTATION" ')), "?")
    return ProbeResult(OK, f"greeting and CAPABILITY OK ({implementation}) at {endpoint}")


def _sieve_response(s: Stream) -> list[str]:
    lines = []
    while True:
        line = s.read_until(b"\n").rstrip(b"\r").decode("utf-8", "replace")
        word = line.split(" ", 1)[0].upper()
        if word in ("NO", "BYE"):
            raise Mismatch(f"ManageSieve answered {line[:120]!r}")
        if word == "OK":
            return lines
        lines.append(line)


def clamd(endpoint: ListenEndpoint, deadline: Deadline) -> ProbeResult:
    with Stream(endpoint, deadline) as s:
        s.send(b"zPING\0")
        reply = s.read_until(b"\0")
    if reply != b"PONG":
        raise Mismatch(f"clamd answered {reply[:80]!r} to PING")
    return ProbeResult(OK, f"clamd PONG at {endpoint}")


def spamd(endpoint: ListenEndpoint, deadline: Deadline) -> ProbeResult:
    with Stream(endpoint, deadline) as s:
        s.send(b"PING SPAMC/1.5\r\n\r\n")
        line = s.read_until(b"\n").rstrip(b"\r").decode("utf-8", "replace")
    parts = line.split()
    if len(parts) < 3 or not parts[0].startswith("SPAMD/") or parts[1] != "0" or parts[-1] != "PONG":
        raise Mismatch(f"spamd answered {line[:80]!r} to PING")
    return ProbeResult(OK, f"spamd {parts[0]} PONG at {endpoint}")


# --- backends --------------------------------------------------------------------------

def directory(settings: Any, address: str | None, timeout: float) -> ProbeResult:
    """Resolve the probe address through the configured backend, uncached."""
    from owlery.directory import open_backend
    if not address:
        raise ConfigProblem("check_directory_probe is unset (an address the directory must know)")
    if settings.directory_backend == "ldap":
        settings = settings.replace(ldap_connect_timeout=min(timeout, settings.ldap_connect_timeout),
                                    ldap_timeout=min(timeout, settings.ldap_timeout))
    backend = open_backend(settings)
    try:
        recipient = backend.resolve(address)
    finally:
        backend.close()
    if not recipient.exists:
        raise Mismatch(f"{settings.directory_backend} directory does not know {address} ({recipient.kind})")
    return ProbeResult(OK, f"{settings.directory_backend} directory resolves {address} ({recipient.kind}, "
                       f"{len(recipient.mailboxes)} mailbox(es))")


def state(settings: Any, timeout: float) -> ProbeResult:
    kind = settings.state_backend
    if kind == "memory":
        return ProbeResult(OK, "state_backend = memory: nothing to reach")
    if kind == "redis":
        from owlery.state import open_store
        store = open_store(settings.replace(state_redis_timeout=min(timeout, settings.state_redis_timeout)))
        try:
            store.ping()
        finally:
            store.close()
        return ProbeResult(OK, f"Redis answered PING ({store.url})")
    return _sqlite_writable(settings.state_sqlite_path, timeout, "state")


def _sqlite_writable(path: str, timeout: float, what: str) -> ProbeResult:
    """Open an existing SQLite file read-write and take (then drop) its write lock."""
    import pathlib
    import sqlite3
    if not os.path.exists(path):
        return ProbeResult(WARNING, f"{what} database {path} does not exist yet (made on first write)")
    try:
        conn = sqlite3.connect(pathlib.Path(path).resolve().as_uri() + "?mode=rw", uri=True,
                               timeout=timeout, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")         # the write lock: a full disk or a stuck writer shows
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise Mismatch(f"{what} database {path}: {e}") from None
    return ProbeResult(OK, f"{what} database {path} opened and write-locked")


def quarantine(settings: Any, timeout: float) -> ProbeResult:
    if settings.quarantine_backend == "postgresql":
        return _quarantine_pg(settings, timeout)
    store = settings.quarantine_directory
    if not os.path.isdir(store):
        return ProbeResult(WARNING, f"quarantine directory {store} does not exist yet (made on first use)")
    import tempfile
    tmp = os.path.join(store, "tmp")
    where = tmp if os.path.isdir(tmp) else store
    fd, path = tempfile.mkstemp(prefix=".owlery-check-", dir=where)
    try:
        os.write(fd, b"owlery check\n")
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(path)
    index = os.path.join(store, "index.sqlite3")
    if os.path.exists(index):
        _sqlite_writable(index, timeout, "quarantine index")
    return ProbeResult(OK, f"quarantine directory {store} writable (file made and removed in {where})")


def _quarantine_pg(settings: Any, timeout: float) -> ProbeResult:
    """SELECT 1, then a row inserted into quarantine_meta and rolled back (the store takes writes)."""
    import psycopg
    from psycopg import sql

    from owlery.secrets import read_secret
    dsn = read_secret(settings, "quarantine_pg_dsn")
    if not dsn:
        raise ConfigProblem("quarantine_backend = \"postgresql\" needs quarantine_pg_dsn")
    ms = int(timeout * 1000)
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout)),
                             options=f"-c statement_timeout={ms} -c lock_timeout={ms} "
                                     "-c client_min_messages=error") as conn:
            conn.execute("SELECT 1")
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.quarantine_pg_schema)))
            try:
                conn.execute("INSERT INTO quarantine_meta (key, value) VALUES (%s, 'x')",
                             (f"owlery-check-{os.getpid()}",))
            except psycopg.errors.UndefinedTable:
                return ProbeResult(WARNING, "quarantine database answers; its tables do not exist yet "
                                        "(made on first use)")
            finally:
                conn.rollback()
    except psycopg.Error as e:
        raise Mismatch(f"quarantine database: {str(e).strip()}") from None
    return ProbeResult(OK, f"quarantine database answers SELECT 1 and takes writes "
                       f"(schema {settings.quarantine_pg_schema})")


def queue(command: list[str], deadline: Deadline, warning: int, critical: int) -> ProbeResult:
    """Count `postqueue -j` entries (one JSON object per line), by queue and in all."""
    import subprocess
    try:
        proc = subprocess.run(command, capture_output=True, timeout=deadline.left(), check=False)
    except FileNotFoundError:
        raise ConfigProblem(f"{command[0]} not found (check_postqueue_command)") from None
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"no answer within {deadline.seconds:g} s") from None
    error = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0:
        raise Mismatch(f"exited {proc.returncode}: {error[-1] if error else ''}")
    # As root postqueue reads the queue itself when the master is not running, and says so:
    # the count is right, but nothing is being delivered.
    down = next((line for line in error if "Mail system is down" in line), None)
    by_queue: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        if line.strip():
            try:
                name = json.loads(line).get("queue_name", "?")
            except (ValueError, AttributeError):
                raise Mismatch(f"postqueue -j printed a line that is no JSON object: {line[:80]!r}") from None
            by_queue[name] = by_queue.get(name, 0) + 1
    total = sum(by_queue.values())
    status = CRITICAL if total > critical or down else WARNING if total > warning else OK
    detail = ", ".join(f"{name} {n}" for name, n in sorted(by_queue.items()))
    perf = (Perf("queue", total, "", warning, critical, 0),) + tuple(
        Perf(f"queue_{name}", by_queue.get(name, 0), "", None, None, 0)
        for name in ("active", "deferred", "hold", "incoming", "maildrop"))
    return ProbeResult(status, ("Postfix is not running: " if down else "") + f"{total} messages in the queue"
                   + (f" ({detail})" if detail else "") + f", thresholds {warning}/{critical}", perf)
