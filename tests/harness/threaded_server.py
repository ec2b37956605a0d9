"""A small in-process server for tests that play the other side of a protocol.

`ThreadedServer` listens on a free loopback TCP port (or on a unix socket at `unix_path`)
and serves each connection with `serve_connection(conn)` in a daemon thread of its own;
close() stops accepting. A subclass sets its own attributes before calling
`super().__init__()`: the accepting thread starts there.
"""

from __future__ import annotations

import socket
import threading


class ThreadedServer:
    def __init__(self, unix_path=None, backlog=8):
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(str(unix_path))
            self.port = None
            self.endpoint = f"unix:{unix_path}"
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
            self.endpoint = f"tcp:127.0.0.1:{self.port}"
        self.sock.listen(backlog)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve_connection, args=(conn,), daemon=True).start()

    def serve_connection(self, conn):
        raise NotImplementedError

    def close(self):
        self.sock.close()
