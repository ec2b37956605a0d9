"""SMTPSubmitter declares an 8-bit body with BODY=8BITMIME (RFC 6152 3) when the server offers
8BITMIME, and sends a 7-bit one without parameters (sieve/delivery/submission.py)."""

import socket
import threading

import pytest

from sieve.delivery import submission


class RecordingServer:
    """A minimal SMTP server on loopback that offers 8BITMIME (or not) and records the
    commands of one session."""

    def __init__(self, offer_8bitmime: bool):
        self.offer = offer_8bitmime
        self.commands: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as r:
            conn.sendall(b"220 test ESMTP\r\n")
            in_data = False
            for raw in r:
                line = raw.decode("latin-1").rstrip("\r\n")
                if in_data:
                    if line == ".":
                        in_data = False
                        conn.sendall(b"250 2.0.0 queued\r\n")
                    continue
                self.commands.append(line)
                verb = line.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    conn.sendall(b"250-test\r\n" + (b"250-8BITMIME\r\n" if self.offer else b"") + b"250 SIZE 1000000\r\n")
                elif verb == "DATA":
                    in_data = True
                    conn.sendall(b"354 go\r\n")
                elif verb == "QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 ok\r\n")

    def mail_line(self) -> str:
        self.thread.join(10)
        return next(c for c in self.commands if c.upper().startswith("MAIL FROM"))


@pytest.mark.parametrize("body, offer, declared", [
    ("Subject: x\r\n\r\ncaf\u00e9\r\n".encode(), True, True),
    ("Subject: x\r\n\r\ncaf\u00e9\r\n".encode(), False, False),    # not offered: not used
    (b"Subject: x\r\n\r\nplain\r\n", True, False),
])
def test_an_8bit_body_is_declared(body, offer, declared):
    server = RecordingServer(offer)
    submission.SMTPSubmitter("127.0.0.1", server.port, 10).send("", ["bob@remote.test"], body)
    params = [p.upper() for p in server.mail_line().split()[2:]]
    assert ("BODY=8BITMIME" in params) is declared
