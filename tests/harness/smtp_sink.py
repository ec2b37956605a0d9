"""RecordingSmtpSink: an SMTP server on loopback that accepts every message and keeps it.

For tests whose code under test sends mail (vacation, redirects, notifications, reports) and
must show what went out without a real MTA: `take(count)` waits, with a deadline, until
`count` messages arrived and returns them as `Received` (envelope sender, recipients, the
message bytes with dot-stuffing undone). Used by tests/sieve/test_dovecot_import.py.
"""

from __future__ import annotations

import dataclasses
import threading
import time

from .threaded_server import ThreadedServer


@dataclasses.dataclass(frozen=True)
class Received:
    mail_from: str
    rcpts: tuple[str, ...]
    data: bytes

    @property
    def subject(self) -> str:
        """The first Subject field's unfolded value ("" without one)."""
        head = self.data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
        for line in head.split(b"\r\n"):
            if line[:8].lower() == b"subject:":
                return line[8:].decode("latin-1").strip()
        return ""


class RecordingSmtpSink(ThreadedServer):
    def __init__(self):
        self.received: list[Received] = []
        self.cond = threading.Condition()
        super().__init__(backlog=16)

    def serve_connection(self, conn):
        mail_from, rcpts, lines, in_data = "", [], [], False
        with conn, conn.makefile("rb") as rfile:
            conn.sendall(b"220 sink.test ESMTP\r\n")
            for raw in rfile:
                line = raw.rstrip(b"\r\n")
                if in_data:
                    if line != b".":
                        lines.append(line[1:] if line.startswith(b"..") else line)
                        continue
                    in_data = False
                    with self.cond:
                        self.received.append(Received(mail_from, tuple(rcpts), b"\r\n".join(lines) + b"\r\n"))
                        self.cond.notify_all()
                    mail_from, rcpts, lines = "", [], []
                    conn.sendall(b"250 2.0.0 kept\r\n")
                    continue
                text = line.decode("latin-1")
                verb = text[:4].upper()
                if verb in ("EHLO", "LHLO", "HELO"):
                    conn.sendall(b"250-sink.test\r\n250 8BITMIME\r\n")
                    continue
                if verb == "MAIL":
                    mail_from = text.split(":", 1)[1].split()[0].strip("<>")
                elif verb == "RCPT":
                    rcpts.append(text.split(":", 1)[1].split()[0].strip("<>"))
                elif verb == "DATA":
                    in_data = True
                    conn.sendall(b"354 go\r\n")
                    continue
                elif verb == "QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                conn.sendall(b"250 ok\r\n")

    def take(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The messages received once `count` have arrived (or the deadline passed); forgets them."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.received) < count and time.monotonic() < deadline:
                self.cond.wait(deadline - time.monotonic())
            out, self.received = self.received, []
        return out
