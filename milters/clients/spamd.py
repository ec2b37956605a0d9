"""spamd client: the SPAMC/1.5 protocol (CHECK, SYMBOLS, REPORT, HEADERS, TELL, PING), sans-I/O plus a socket runner.

`encode_request()` builds request bytes and `ResponseParser` turns bytes from spamd into a
`SpamdResponse`; neither touches a socket. `SpamdClient` runs them over a unix or TCP
socket with one deadline per request (spamd answers one request per connection).
Numbers spamd sends (status code, Content-length, scores) are read only when they are
bounded runs of ASCII digits; anything else is a SpamdProtocolError (a ScannerUnavailable).
The message is sent from the caller's buffer after the header block (and an optional prefix,
the synthesized Received field), never copied whole.
Talks to: spamd (SpamAssassin). Tests: tests/milters/test_content_clients.py,
tests/milters/test_spamd_hostile.py, tests/milters/test_received_for_scanners.py
"""

from __future__ import annotations

import dataclasses
import re
import socket
import time
from typing import Any

from milters.clients import ScannerUnavailable
from owlery.endpoints import arm, connect, parse_endpoint
from owlery.settings import Duration, Endpoint, Size, Str, setting

SPAMD_ENDPOINT = setting("spamd_endpoint", Endpoint, "tcp:127.0.0.1:783",
                         "Where spamd listens: tcp:ADDR:PORT (spamd --listen) or unix:/path (--socketpath).")
SPAMD_TIMEOUT = setting("spamd_timeout", Duration, "30s",
                        "Longest time one spamd request may take, connect to last byte of the answer.", unit="s")
SPAMD_MAX_SIZE = setting("spamd_max_size", Size, "500k",
                         "Messages larger than this are not sent to spamd (like spamc -s; "
                         "amavis uses 400k). The milter's own evidence still counts.", unit="bytes")
SPAMD_USER = setting("spamd_user", Str, "owlery",
                     "User name sent in the User header (spamd picks per-user preferences and Bayes by it).")

PROTOCOL = "SPAMC/1.5"
COMMANDS = ("CHECK", "SYMBOLS", "REPORT", "REPORT_IFSPAM", "HEADERS", "PROCESS", "TELL", "PING")
# spamd's header block is small; anything bigger is not spamd talking.
MAX_HEADER_BYTES = 64 * 1024
# The message goes out in slices of the caller's buffer (no copy of the whole).
_SEND_CHUNK = 256 * 1024

# Numbers are ASCII digits only ([0-9], never \d: in a str pattern \d takes every Unicode
# digit, which int() and float() would accept too) and bounded, so nothing spamd sends can
# make int() refuse a huge literal or float() overflow to inf.
_NUMBER = r"-?[0-9]{1,9}(?:\.[0-9]{1,9})?"
_STATUS_RE = re.compile(r"^SPAMD/([0-9]{1,4}\.[0-9]{1,4}) ([0-9]{1,9}) (.*)$")
_SPAM_RE = re.compile(rf"^(True|False|Yes|No)\s*;\s*({_NUMBER})\s*/\s*({_NUMBER})$", re.I)
# A rule line of a REPORT body: "1000 GTUBE   BODY: Generic Test ..." or "-0.0 NO_RELAYS  Informational".
_RULE_RE = re.compile(rf"^\s*({_NUMBER})\s+([A-Z0-9][A-Z0-9_]*)\b\s*(.*)$")
_LENGTH_RE = re.compile(r"[0-9]{1,15}")


class SpamdProtocolError(ScannerUnavailable):
    """spamd said something that is not SPAMD/1.x, or answered with an error code."""


def encode_request(command: str, message: bytes = b"", *, user: str | None = None,
                   headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """The bytes of one SPAMC request. PING carries no body; every other command does."""
    head = encode_request_head(command, len(message), user=user, headers=headers)
    return head + (message if command.upper() != "PING" else b"")


def encode_request_head(command: str, length: int, *, user: str | None = None,
                        headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """The request line and header block of a request whose body (the message) is `length`
    bytes: sent before the message itself, which is not copied into one request buffer."""
    command = command.upper()
    if command not in COMMANDS:
        raise ValueError(f"unknown spamd command {command!r}")
    lines = [f"{command} {PROTOCOL}"]
    if command != "PING":
        lines.append(f"Content-length: {length}")
    if user:
        if not re.fullmatch(r"[A-Za-z0-9._@+-]{1,128}", user):
            raise ValueError(f"bad spamd user name {user!r}")
        lines.append(f"User: {user}")
    for name, value in headers:
        if not re.fullmatch(r"[A-Za-z-]+", name) or any(c in value for c in "\r\n"):
            raise ValueError(f"bad spamd request header {name!r}")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


@dataclasses.dataclass(frozen=True)
class RuleHit:
    name: str
    score: float
    description: str = ""


@dataclasses.dataclass(frozen=True)
class SpamdResponse:
    """One spamd answer: status line, headers (lower-case names) and body."""

    version: str
    code: int
    message: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def is_spam(self) -> bool | None:
        spam = self._spam()
        return None if spam is None else spam[0]

    @property
    def score(self) -> float | None:
        spam = self._spam()
        return None if spam is None else spam[1]

    @property
    def threshold(self) -> float | None:
        spam = self._spam()
        return None if spam is None else spam[2]

    def _spam(self) -> tuple[bool, float, float] | None:
        value = self.headers.get("spam")
        if value is None:
            return None
        m = _SPAM_RE.match(value.strip())
        if not m:
            raise SpamdProtocolError(f"spamd: unreadable Spam header {value[:80]!r}")
        return m.group(1).lower() in ("true", "yes"), float(m.group(2)), float(m.group(3))

    def symbols(self) -> list[str]:
        """Rule names of a SYMBOLS answer."""
        text = self.body.decode("ascii", "replace").strip()
        return [s.strip() for s in text.split(",") if s.strip()]

    def rules(self) -> list[RuleHit]:
        """Rules with their scores, from a REPORT answer's table (after the ---- ruler)."""
        text = self.body.decode("utf-8", "replace")
        hits: list[RuleHit] = []
        in_table = False
        for line in text.splitlines():
            if line.startswith("----"):
                in_table = True
                continue
            if not in_table:
                continue
            m = _RULE_RE.match(line)
            if m:
                hits.append(RuleHit(m.group(2), float(m.group(1)), m.group(3).strip()))
            elif hits and line.startswith(" ") and line.strip():
                # a wrapped description continues the previous rule
                last = hits[-1]
                hits[-1] = RuleHit(last.name, last.score, (last.description + " " + line.strip()).strip())
            elif not line.strip():
                continue
        return hits

    def did_set(self) -> tuple[str, ...]:
        """Databases a TELL changed ("local", "remote"), from DidSet."""
        return tuple(x.strip() for x in self.headers.get("didset", "").split(",") if x.strip())

    def did_remove(self) -> tuple[str, ...]:
        return tuple(x.strip() for x in self.headers.get("didremove", "").split(",") if x.strip())


class ResponseParser:
    """Feed bytes from spamd; `done` turns true when a whole response has arrived.

    The body ends at Content-length when spamd gives one, else at end of stream. `max_body`
    bounds memory whatever spamd sends.
    """

    def __init__(self, max_body: int = 16 * 1024 * 1024):
        self.max_body = max_body
        self._buf = bytearray()
        self._head: tuple[str, int, str, dict[str, str]] | None = None
        self._length: int | None = None
        self._eof = False
        self.response: SpamdResponse | None = None

    @property
    def done(self) -> bool:
        return self.response is not None

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        self._buf += data
        self._advance()

    def feed_eof(self) -> None:
        self._eof = True
        self._advance()
        if not self.done:
            if self._head is None:
                raise SpamdProtocolError("spamd closed the connection before a complete status line"
                                    if self._buf else "spamd closed the connection without answering")
            raise SpamdProtocolError(f"spamd closed the connection after {len(self._buf)} of "
                                f"{self._length} body bytes")

    def _advance(self) -> None:
        if self._head is None:
            end = self._buf.find(b"\r\n\r\n")
            sep = 4
            if end < 0:
                # PING's answer is a lone status line and spamd may close right after it
                if self._eof and self._buf.endswith(b"\r\n") and self._buf.count(b"\r\n") == 1:
                    end, sep = len(self._buf) - 2, 2
                elif len(self._buf) > MAX_HEADER_BYTES:
                    raise SpamdProtocolError("spamd sent an over-long header block")
                else:
                    return
            head = bytes(self._buf[:end]).decode("latin-1")
            del self._buf[:end + sep]
            self._head = _parse_head(head)
            length = self._head[3].get("content-length")
            if length is not None:
                if not _LENGTH_RE.fullmatch(length.strip()):
                    raise SpamdProtocolError(f"spamd sent a bad Content-length {length[:40]!r}")
                self._length = int(length)
                if self._length > self.max_body:
                    raise SpamdProtocolError(f"spamd answer of {self._length} bytes exceeds {self.max_body}")
        if len(self._buf) > self.max_body:
            raise SpamdProtocolError(f"spamd answer exceeds {self.max_body} bytes")
        if self._length is not None and len(self._buf) >= self._length:
            body = bytes(self._buf[:self._length])
        elif self._length is None and self._eof:
            # no Content-length: spamd closes the connection after its answer
            body = bytes(self._buf)
        else:
            return
        version, code, message, headers = self._head
        self.response = SpamdResponse(version, code, message, headers, body)


def _parse_head(head: str) -> tuple[str, int, str, dict[str, str]]:
    lines = head.split("\r\n")
    m = _STATUS_RE.match(lines[0])
    if not m:
        raise SpamdProtocolError(f"spamd: unexpected status line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise SpamdProtocolError(f"spamd: bad header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return m.group(1), int(m.group(2)), m.group(3).strip(), headers


@dataclasses.dataclass(frozen=True)
class SpamResult:
    """A scan's outcome: spamd's total, its threshold and the rules that hit."""

    score: float
    threshold: float
    is_spam: bool
    rules: tuple[RuleHit, ...]
    elapsed: float = 0.0


class SpamdClient:
    """Blocking SPAMC client over one connection per request, bounded by a deadline."""

    def __init__(self, endpoint: str, *, timeout: float = 30.0, max_size: int = 500 * 1024,
                 user: str | None = None):
        self.endpoint = parse_endpoint(endpoint)
        if self.endpoint.kind not in ("unix", "tcp"):
            raise ValueError(f"spamd endpoint must be unix: or tcp:, got {endpoint!r}")
        self.timeout = timeout
        self.max_size = max_size
        self.user = user

    @classmethod
    def from_settings(cls, settings: Any) -> "SpamdClient":
        return cls(settings.spamd_endpoint, timeout=settings.spamd_timeout,
                   max_size=settings.spamd_max_size, user=settings.spamd_user)

    def __repr__(self) -> str:
        return f"SpamdClient({str(self.endpoint)!r})"

    def request(self, command: str, message: bytes = b"", *,
                headers: tuple[tuple[str, str], ...] = (), user: str | None = None,
                prefix: bytes = b"") -> SpamdResponse:
        """Send one request and return spamd's answer; ScannerUnavailable on any trouble.

        `prefix` (e.g. the Received field Postfix will add) goes out just before the message,
        which is not copied to join it: spamd reads the two as one message."""
        if command.upper() == "PING":
            message = prefix = b""
        head = encode_request_head(command, len(prefix) + len(message), user=user or self.user,
                                   headers=headers)
        body = memoryview(message)
        deadline = time.monotonic() + self.timeout
        parser = ResponseParser(max_body=max((len(prefix) + len(message)) * 2, 1024 * 1024))
        try:
            sock = self._connect(deadline)
        except OSError as e:
            raise ScannerUnavailable(f"spamd at {self.endpoint}: cannot connect: {e}") from e
        try:
            # the head with the first slice (a small message goes out in one write, as before),
            # then the rest: each write under the deadline
            arm(sock, deadline)
            sock.sendall(head + prefix + body[:_SEND_CHUNK])
            for start in range(_SEND_CHUNK, len(body), _SEND_CHUNK):
                arm(sock, deadline)
                sock.sendall(body[start:start + _SEND_CHUNK])
            while not parser.done:
                arm(sock, deadline)
                chunk = sock.recv(65536)
                if not chunk:
                    parser.feed_eof()
                    break
                parser.feed(chunk)
        except (socket.timeout, TimeoutError) as e:
            raise ScannerUnavailable(f"spamd at {self.endpoint}: timed out after {self.timeout:g}s") from e
        except OSError as e:
            raise ScannerUnavailable(f"spamd at {self.endpoint}: connection failed: {e}") from e
        finally:
            sock.close()
        response = parser.response
        assert response is not None
        if not response.ok:
            raise SpamdProtocolError(f"spamd at {self.endpoint}: error {response.code} {response.message[:120]}")
        return response

    def _connect(self, deadline: float) -> socket.socket:
        return connect(self.endpoint, max(deadline - time.monotonic(), 0.001), nodelay=True)

    # -- commands ------------------------------------------------------------------------

    def ping(self) -> bool:
        return self.request("PING").message == "PONG"

    def check(self, message: bytes) -> SpamdResponse:
        return self.request("CHECK", message)

    def symbols(self, message: bytes) -> SpamdResponse:
        return self.request("SYMBOLS", message)

    def report(self, message: bytes, *, prefix: bytes = b"") -> SpamdResponse:
        return self.request("REPORT", message, prefix=prefix)

    def headers(self, message: bytes) -> SpamdResponse:
        return self.request("HEADERS", message)

    def tell(self, message: bytes, message_class: str, *, remove: bool = False,
             user: str | None = None) -> SpamdResponse:
        """Learn `message` as "spam" or "ham" into the local (Bayes) database, or forget it."""
        if message_class not in ("spam", "ham"):
            raise ValueError(f"message class must be spam or ham, got {message_class!r}")
        action = ("Remove", "local") if remove else ("Set", "local")
        return self.request("TELL", message, headers=(("Message-class", message_class), action), user=user)

    def scan(self, message: bytes, *, prefix: bytes = b"") -> SpamResult | None:
        """Score `prefix` + `message` with REPORT (score, threshold and per-rule points); None
        when over max_size. `prefix` is the Received field Postfix will add (milters.received),
        sent as a first chunk so the message is not copied."""
        if len(prefix) + len(message) > self.max_size:
            return None
        started = time.monotonic()
        response = self.report(message, prefix=prefix)
        if response.score is None or response.threshold is None:
            raise SpamdProtocolError(f"spamd at {self.endpoint}: answer without a Spam header")
        return SpamResult(response.score, response.threshold, bool(response.is_spam),
                          tuple(response.rules()), time.monotonic() - started)
