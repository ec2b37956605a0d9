"""A raw TCP client for hostile-client tests of Owlery's servers (lmtpd, ManageSieve): small
buffers on demand, a byte-at-a-time drip paced by the server's answers, "did it close within
T", and the kernel's view of the connection (TCP_INFO), each bounded by a deadline.
Used by tests/delivery/test_lmtpd_hostile_s20.py and tests/managesieve/test_hostile_s20.py.
"""

from __future__ import annotations

import select
import socket
import struct
import time

TCP_CLOSE, TCP_CLOSE_WAIT = 7, 8     # tcp_info.tcpi_state: reset / the peer closed


def connect(port: int, *, source: str | None = None, rcvbuf: int | None = None,
            sndbuf: int | None = None, timeout: float = 10.0) -> socket.socket:
    """A connected socket to 127.0.0.1:`port`, from `source` when given (another loopback
    address counts as another client), with the buffer sizes asked for (small: the client
    reads or sends little before the kernel stops it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.settimeout(timeout)
    if source:
        sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_until(sock: socket.socket, end: bytes, timeout: float = 10.0, count: int = 1) -> bytes:
    """What the server sent up to `count` occurrences of `end`; fails after `timeout` or on close."""
    deadline = time.monotonic() + timeout
    got = b""
    while got.count(end) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"no {end!r} x{count} within {timeout} s; got {got[-300:]!r}"
        sock.settimeout(left)
        chunk = sock.recv(65536)
        assert chunk, f"closed before {end!r}; got {got[-300:]!r}"
        got += chunk
    return got


def closed_within(sock: socket.socket, timeout: float) -> bytes | None:
    """Everything the server sent until it closed the connection, or None if it did not in time."""
    deadline = time.monotonic() + timeout
    got = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return None
        except ConnectionResetError:
            return got
        if not chunk:
            return got
        got += chunk
    return None


def drip(sock: socket.socket, data: bytes, every: float, timeout: float) -> bytes | None:
    """Send `data` (again and again) one byte per `every` seconds, paced by waiting for the server
    to answer or close; what the server sent when it closed the connection, or None if it did not."""
    deadline = time.monotonic() + timeout
    got = b""
    for byte in data * 1000:
        if time.monotonic() > deadline:
            return None
        try:
            sock.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return got
        readable, _, _ = select.select([sock], [], [], every)
        if readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return got
            if not chunk:
                return got
            got += chunk
    return None


def tcp_state(sock: socket.socket) -> int:
    """The connection's state as the kernel sees it (TCP_CLOSE once reset, ...)."""
    return struct.unpack("B", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[:1])[0]
