"""Listening ports on sockets someone else bound: the worker parent or systemd.

Twisted's `reactor.adoptStreamPort` treats an adopted unix socket as its own. Its
`unix.Port` chmods the path to its default mode 0666, calls listen() again with its default
backlog of 50, and unlinks the path when the port stops. For a socket the worker parent bound
for every worker (or that systemd passed), that meant:
- a socket configured `mode=660` (the default), meant for Postfix only, became world-writable
  as soon as a worker started: any local user could then speak LMTP to lmtpd or ask the
  policy daemon;
- `daemon_listen_backlog` fell back to 50;
- one worker that stopped alone (SIGTERM to its pid) shut the shared socket down for every
  process (shutdown(2) at stop: Twisted skips it only for adopted TCP sockets) and removed
  its path. Workers restarted after that could not start ("No such file or directory"), and
  nothing could connect until the whole daemon was restarted.

`adopt_stream_port` keeps the path's mode and owner and the backlog as the binder set them,
and leaves the path alone when the port stops. Whoever bound the
path removes it: the worker parent once every worker has stopped (`owlery.daemon`), or
systemd. TCP sockets go through Twisted's own adoption, which touches neither the backlog nor
any file. Tests: tests/core/test_adopted_port.py
"""

from __future__ import annotations

import socket
from typing import Any


def adopt_stream_port(reactor: Any, fd: int, family: int, factory: Any) -> Any:
    """Serve the bound, listening, non-blocking stream socket `fd` (the port works on a
    duplicate: the caller keeps its own descriptor)."""
    if family != socket.AF_UNIX:
        return reactor.adoptStreamPort(fd, family, factory)
    port = _inherited_unix_port_class()._fromListeningDescriptor(reactor, fd, factory)
    port.startListening()
    return port


_PORT_CLASS: Any = None


def _inherited_unix_port_class() -> Any:
    """Defined on first use: Twisted is imported only by the processes that serve."""
    global _PORT_CLASS
    if _PORT_CLASS is not None:
        return _PORT_CLASS
    from twisted.internet import tcp, unix

    class InheritedUnixPort(unix.Port):
        """A unix listening port on an inherited socket: no chmod, no unlink."""

        def startListening(self) -> None:
            skt, self._preexistingSocket = self._preexistingSocket, None
            # shutdown() at stop would end listening for every process sharing the socket.
            self._shouldShutdown = False
            self.factory.doStart()
            self.connected = True
            self.socket = skt
            self.fileno = skt.fileno
            self.numberAccepts = 100
            self.startReading()

        def connectionLost(self, reason: Any) -> None:
            # The path belongs to whoever bound it (see the module docstring): not unlinked.
            tcp.Port.connectionLost(self, reason)

    _PORT_CLASS = InheritedUnixPort
    return _PORT_CLASS
