"""The policy daemon over a real socket: replies sent at once, and in order when the client
is slow to read (the kernel buffer fills, Twisted buffers the rest), with two workers."""

from __future__ import annotations

import socket
import threading

from policyd.protocol import encode_request
from tests.harness.owlery_daemons import OwleryDaemons


def _requests(n):
    # Unknown recipients of a hosted domain get 550, others (not hosted) DUNNO: alternate them.
    return [encode_request({"protocol_state": "RCPT", "sender": "a@example.net",
                            "recipient": f"nobody{i}@example.org" if i % 2 else f"x{i}@elsewhere.test",
                            "client_address": "192.0.2.1", "instance": str(i)}) for i in range(n)]


def test_many_pipelined_requests_with_a_slow_reader_are_answered_in_order(tmp_path):
    (tmp_path / "mailboxes").write_text("alice@example.org alice\n")
    daemons = OwleryDaemons(tmp_path / "o", which=("policyd",), extra_config=(
        'policyd_checks = { RCPT = ["recipient"] }\n'
        f'files_mailboxes = "{tmp_path / "mailboxes"}"\n'
        "policyd_requests_queued_max = 10000\npolicyd_workers = 2\n"))
    daemons.start()
    try:
        n = 6000
        payload = b"".join(_requests(n))
        s = socket.create_connection(("127.0.0.1", daemons.ports["policyd"]), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)    # a slow, small reader
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        sender.join(timeout=30)
        buf = b""
        while buf.count(b"\n\n") < n:
            chunk = s.recv(65536)
            assert chunk, "closed before every reply came"
            buf += chunk
        replies = buf.split(b"\n\n")[:n]
        for i, reply in enumerate(replies):
            expected = b"action=550 5.1.1" if i % 2 else b"action=DUNNO"
            assert reply.startswith(expected), (i, reply)
        s.close()
    finally:
        daemons.stop()
