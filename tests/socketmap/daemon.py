"""`owlery socketmap` as a child process on a free loopback port, a small client, and Postfix's postmap.

`SocketmapDaemon(workdir, config_text)` writes a settings file (listen port, daemon_allow_root,
the given text), starts `owlery socketmap` with it and waits until the port accepts.
`Client(port)` speaks the protocol over one connection (`ask`, `ask_many` pipelined).
`postmap(port, name, keys, config_dir)` runs Postfix's own socketmap client, `postmap -q -`
(one process, one connection, keys from stdin), and returns {key: value} for the keys found.
Used by tests/socketmap/test_service.py, tests/socketmap/test_postmap.py and bench/bench_socketmap.py.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

from socketmap.protocol import NetstringDecoder, encode_request, parse_reply
from tests.harness.procs import ManagedProcess, free_port, wait_for_tcp

ROOT = Path(__file__).resolve().parents[2]
POSTMAP = "/usr/sbin/postmap"


class SocketmapDaemon:
    def __init__(self, workdir, config_text=""):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config_path = self.workdir / "owlery.toml"
        self.config_path.write_text(f'socketmap_listen = ["tcp:127.0.0.1:{self.port}"]\n'
                                    f"daemon_allow_root = true\n{config_text}\n")
        self.log_path = self.workdir / "socketmap.log"
        self.proc = None

    def start(self):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = ManagedProcess([sys.executable, "-m", "owlery.app.cli", "socketmap", "--config", self.config_path],
                                   "owlery-socketmap", self.log_path, cwd=ROOT, env=env).start()
        try:
            wait_for_tcp(self.port, timeout=30, proc=self.proc, what="owlery socketmap")
        except Exception:
            self.stop()
            raise
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop(timeout=15)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Client:
    """One connection to a socketmap server; answers are protocol.SocketmapAnswer values."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.decoder = NetstringDecoder(10_000_000)

    def send(self, data):
        self.sock.sendall(data)

    def read(self, count):
        """`count` answers; fewer if the server closes first."""
        got = []
        while len(got) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            got += [parse_reply(s) for s in self.decoder.feed(chunk)]
            assert not self.decoder.broken, self.decoder.error
        return got

    def ask(self, name, key):
        self.send(encode_request(name, key))
        [answer] = self.read(1)
        return answer

    def ask_many(self, pairs):
        self.send(b"".join(encode_request(n, k) for n, k in pairs))
        return self.read(len(pairs))

    def closed_by_server(self):
        return self.sock.recv(1) == b""

    def close(self):
        self.sock.close()


def postfix_config_dir(workdir):
    """A config directory postmap can read (it needs a main.cf; nothing in it matters here)."""
    path = Path(workdir) / "postfix-etc"
    path.mkdir(parents=True, exist_ok=True)
    (path / "main.cf").write_text("compatibility_level = 3.6\n")
    return path


def postmap(port, name, keys, config_dir):
    """Postfix's own socketmap client over `keys`: ({key: value} of the keys found, stderr)."""
    proc = subprocess.run([POSTMAP, "-c", str(config_dir), "-q", "-", f"socketmap:inet:127.0.0.1:{port}:{name}"],
                          input="".join(k + "\n" for k in keys), capture_output=True, text=True, timeout=60)
    found = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("\t")
        found[key] = value
    return found, proc.stderr


def postmap_one(port, name, key, config_dir):
    """`postmap -q KEY`: (exit status, value or "", stderr)."""
    proc = subprocess.run([POSTMAP, "-c", str(config_dir), "-q", key, f"socketmap:inet:127.0.0.1:{port}:{name}"],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout.rstrip("\n"), proc.stderr
