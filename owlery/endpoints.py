"""Listen endpoints written as strings: `unix:/path[:mode=660]`, `tcp:HOST:PORT`, `systemd:NAME`.

One grammar for every daemon (policyd, lmtpd, milter); the daemon runner turns a parsed
endpoint into a Twisted listener, the milter adapter into a socket it binds (or adopts from
systemd) and hands to libmilter as `fd:N`.
The blocking clients (clamd, spamd, `owlery check`, `owlery policyd query`) dial one with
`connect` and bound each read and write by one deadline with `arm`.
Tests: tests/core/test_endpoints.py, tests/core/test_review_followups_s20.py (clear_stale_socket)
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time

from owlery.record import Record


class ListenEndpoint(Record, frozen=True):
    kind: str            # "unix", "tcp" or "systemd"
    path: str = ""       # unix socket path
    host: str = ""       # tcp address (IPv4 or IPv6 literal)
    port: int = 0        # tcp port
    mode: int = 0o660    # unix socket permissions
    name: str = ""       # systemd FileDescriptorName

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "tcp":
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"tcp:{host}:{self.port}"
        return f"systemd:{self.name}"


def parse_endpoint(text: str) -> ListenEndpoint:
    """Parse an endpoint string; raise ValueError saying what is wrong."""
    kind, sep, rest = text.partition(":")
    if not sep or not rest:
        raise ValueError(f"endpoint {text!r} must look like unix:/path, tcp:HOST:PORT or systemd:NAME")
    if kind == "unix":
        path, _, opts = rest.partition(":")
        mode = 0o660
        if opts:
            key, _, value = opts.partition("=")
            if key != "mode":
                raise ValueError(f"unknown unix endpoint option {key!r} (only mode=NNN)")
            try:
                mode = int(value, 8)
            except ValueError:
                raise ValueError(f"bad octal mode {value!r}") from None
        if not path.startswith("/"):
            raise ValueError(f"unix socket path must be absolute, got {path!r}")
        return ListenEndpoint("unix", path=path, mode=mode)
    if kind == "tcp":
        if rest.startswith("["):
            host, _, port = rest[1:].partition("]:")
        else:
            host, _, port = rest.rpartition(":")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"tcp endpoint needs an IP address, got {host!r}") from None
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"bad tcp port {port!r}")
        return ListenEndpoint("tcp", host=host, port=int(port))
    if kind == "systemd":
        if not rest.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"bad systemd socket name {rest!r}")
        return ListenEndpoint("systemd", name=rest)
    raise ValueError(f"unknown endpoint kind {kind!r} (unix, tcp or systemd)")


class ListenPathTaken(ValueError):
    """A unix listen path holds something that is not a stale socket of ours to replace."""


def clear_stale_socket(path: str) -> None:
    """Make room for binding a unix socket at `path`: remove a socket a previous run left
    there (nobody accepts on it: ECONNREFUSED), and nothing else. A path that is not a socket
    (a listen setting that names a file by mistake) or a socket something still listens on
    (another instance, another daemon) raises ListenPathTaken instead of being deleted: the
    second instance would take the first one's clients and leave it running unreachable."""
    import stat
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ListenPathTaken(f"{path} exists and is not a socket; not replacing it")
    except FileNotFoundError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)                 # stale: its process is gone
        return
    except FileNotFoundError:
        return                          # removed meanwhile
    except OSError as e:                # a full backlog, no permission: someone may be there
        raise ListenPathTaken(f"{path}: cannot tell whether a process listens on it ({e.strerror}); "
                              "remove it by hand if none does") from None
    finally:
        probe.close()
    raise ListenPathTaken(f"{path}: a process listens on it already (another instance?)")


def connect(endpoint: ListenEndpoint, timeout: float, *, nodelay: bool = False) -> socket.socket:
    """A blocking stream socket connected to a unix: or tcp: endpoint within `timeout` seconds
    (kept as the socket's timeout). OSError when it cannot connect (the socket is closed then),
    ValueError for a systemd: endpoint. `nodelay`: TCP_NODELAY on a TCP socket."""
    if endpoint.kind == "unix":
        sock, address = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), endpoint.path
    elif endpoint.kind == "tcp":
        family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
        sock, address = socket.socket(family, socket.SOCK_STREAM), (endpoint.host, endpoint.port)
    else:
        raise ValueError(f"cannot dial {endpoint}")
    try:
        sock.settimeout(timeout)
        sock.connect(address)
        if nodelay and endpoint.kind == "tcp":
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def arm(sock: socket.socket, deadline: float, what: str = "") -> None:
    """Give `sock` what is left until `deadline` (a time.monotonic() value) as its timeout;
    socket.timeout when nothing is left (`what`: what was to be done, for the message)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise socket.timeout(f"deadline passed while {what}" if what else "deadline passed")
    sock.settimeout(remaining)
