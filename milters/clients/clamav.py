"""clamd client: INSTREAM a message to ClamAV over a unix or TCP socket, within a size limit and a deadline.

Wraps the `clamd` PyPI package (its response parsing and error classes) but replaces its
socket handling: the package connects without a timeout, writes with send() (which may
write partially) in 1 KiB chunks, and has no overall deadline. Here a connect, every write
and every read are bounded by one deadline, and any trouble becomes ScannerUnavailable.
The message is streamed from the caller's buffer chunk by chunk (no copy of the whole).
Talks to: clamd. Tests: tests/milters/test_content_clients.py, tests/milters/test_low_hardening.py
"""

from __future__ import annotations

import dataclasses
import socket
import struct
import time
from collections.abc import Iterable, Iterator
from typing import Any

from milters.clients import ScannerUnavailable
from owlery.endpoints import arm, connect, parse_endpoint
from owlery.settings import Duration, Endpoint, Size, setting

CLAMD_ENDPOINT = setting("clamd_endpoint", Endpoint, "unix:/run/clamav/clamd.ctl",
                         "Where clamd listens: unix:/path or tcp:ADDR:PORT (clamd.conf LocalSocket or TCPSocket).")
CLAMD_TIMEOUT = setting("clamd_timeout", Duration, "30s",
                        "Longest time one scan may take, connect to verdict; past it the scan counts as failed.",
                        unit="s")
CLAMD_MAX_SIZE = setting("clamd_max_size", Size, "25M",
                         "Largest message streamed to clamd; keep it at or below clamd.conf StreamMaxLength. "
                         "Larger messages are not scanned: antivirus_oversize_action says what they get.",
                         unit="bytes")

# Chunks well under clamd's default StreamMaxLength; one write per chunk keeps syscalls few.
_CHUNK = 64 * 1024
_MAX_REPLY = 4096


@dataclasses.dataclass(frozen=True)
class ScanResult:
    """What clamd said about one stream: `virus` is the signature name when infected."""

    infected: bool
    virus: str | None = None
    scanned: bool = True       # False when the message was over the size limit and not sent
    elapsed: float = 0.0       # seconds spent talking to clamd
    # why it was not scanned (scanned False): which limit, for the log line and the symbol
    detail: str = dataclasses.field(default="", compare=False)


def _clamd_package() -> Any:
    # Imported lazily: the package looks up its own version with pkg_resources at import.
    import clamd
    return clamd


class ClamdClient:
    """Scan byte strings with clamd's INSTREAM command (one connection per scan)."""

    def __init__(self, endpoint: str, *, timeout: float = 30.0, max_size: int = 25 * 1024 * 1024):
        self.endpoint = parse_endpoint(endpoint)
        if self.endpoint.kind not in ("unix", "tcp"):
            raise ValueError(f"clamd endpoint must be unix: or tcp:, got {endpoint!r}")
        self.timeout = timeout
        self.max_size = max_size

    @classmethod
    def from_settings(cls, settings: Any) -> "ClamdClient":
        return cls(settings.clamd_endpoint, timeout=settings.clamd_timeout, max_size=settings.clamd_max_size)

    def __repr__(self) -> str:
        return f"ClamdClient({str(self.endpoint)!r})"

    # -- socket plumbing -------------------------------------------------------------

    def _connect(self, deadline: float) -> socket.socket:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ScannerUnavailable(f"clamd at {self.endpoint}: timed out before connecting")
        try:
            return connect(self.endpoint, remaining, nodelay=True)
        except OSError as e:
            raise ScannerUnavailable(f"clamd at {self.endpoint}: cannot connect: {e}") from e

    def _read_reply(self, sock: socket.socket, deadline: float) -> bytes:
        """Read one reply terminated by NUL (z-commands) or LF, or by EOF; bounded in size."""
        buf = b""
        while True:
            arm(sock, deadline, "reading the reply")
            data = sock.recv(1024)
            if not data:
                break
            buf += data
            if b"\0" in buf or b"\n" in buf:
                break
            if len(buf) > _MAX_REPLY:
                raise ScannerUnavailable(f"clamd at {self.endpoint}: reply longer than {_MAX_REPLY} bytes")
        return buf.split(b"\0", 1)[0].split(b"\n", 1)[0].strip()

    def _command(self, command: bytes, payload_chunks: Iterable[bytes] = ()) -> str:
        deadline = time.monotonic() + self.timeout
        sock = self._connect(deadline)
        try:
            try:
                arm(sock, deadline, "sending the command")
                sock.sendall(b"z" + command + b"\0")
                try:
                    for chunk in payload_chunks:
                        arm(sock, deadline, "streaming the message")
                        sock.sendall(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    # clamd stops reading and answers as soon as a stream passes its
                    # StreamMaxLength; its reply says so and is still in the socket.
                    pass
                return self._read_reply(sock, deadline).decode("utf-8", "replace")
            except (socket.timeout, TimeoutError) as e:
                raise ScannerUnavailable(f"clamd at {self.endpoint}: timed out after {self.timeout:g}s ({e})") from e
            except OSError as e:
                # clamd closes the socket when a stream exceeds StreamMaxLength: the reply
                # says so, but a write may fail first with EPIPE/ECONNRESET.
                raise ScannerUnavailable(f"clamd at {self.endpoint}: connection failed: {e}") from e
        finally:
            sock.close()

    # -- commands ------------------------------------------------------------------------

    def ping(self) -> bool:
        """True when clamd answers PONG."""
        return self._command(b"PING") == "PONG"

    def version(self) -> str:
        return self._command(b"VERSION")

    def scan(self, message: bytes | memoryview) -> ScanResult:
        """Stream `message` with INSTREAM and return the verdict; ScannerUnavailable on any trouble.

        Not sent (scanned=False, `detail` says why) when over max_size; the chunks are cut from
        the caller's buffer as they are sent, never a second copy of the whole message."""
        if len(message) > self.max_size:
            return ScanResult(infected=False, scanned=False,
                              detail=f"{len(message)} bytes over clamd_max_size ({self.max_size})")
        started = time.monotonic()
        reply = self._command(b"INSTREAM", _instream_chunks(message))
        elapsed = time.monotonic() - started
        return parse_instream_reply(reply, str(self.endpoint), elapsed)


def _instream_chunks(message: bytes | memoryview) -> Iterator[bytes]:
    """INSTREAM framing: each chunk after its 4-byte length, then a zero length; one chunk at a time."""
    view = memoryview(message)
    for start in range(0, len(view), _CHUNK):
        piece = view[start:start + _CHUNK]
        yield struct.pack("!L", len(piece)) + piece
    yield struct.pack("!L", 0)


def parse_instream_reply(reply: str, where: str = "clamd", elapsed: float = 0.0) -> ScanResult:
    """Turn `stream: OK` / `stream: Eicar-Test FOUND` / `... ERROR` into a ScanResult."""
    if not reply:
        raise ScannerUnavailable(f"{where}: closed the connection without a verdict")
    if reply.endswith("size limit exceeded. ERROR"):
        # Retrying cannot help: report it unscanned, as for messages over clamd_max_size.
        return ScanResult(infected=False, scanned=False, elapsed=elapsed,
                          detail="over clamd's StreamMaxLength (clamd.conf; keep clamd_max_size below it)")
    clamd = _clamd_package()
    m = clamd.scan_response.match(reply)
    if m is None or m.group("status") == "ERROR":
        raise ScannerUnavailable(f"{where}: scan error: {reply[:200]}")
    if m.group("status") == "FOUND":
        return ScanResult(infected=True, virus=(m.group("virus") or "unknown").strip(), elapsed=elapsed)
    return ScanResult(infected=False, elapsed=elapsed)
