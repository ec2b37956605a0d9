"""Start `owlery web` as a child process for tests (free loopback port, polled readiness)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.harness.procs import ManagedProcess, free_port, retry_on_port_race, wait_for_tcp

ROOT = Path(__file__).resolve().parents[2]


def token_key_file(directory: Path) -> Path:
    path = directory / "quarantine-token.key"
    path.write_text(os.urandom(32).hex() + "\n")
    os.chmod(path, 0o600)
    return path


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "web.crt", directory / "web.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class WebServer:
    """`owlery web --config <work>/web.toml` on a free loopback port; `.url`."""

    def __init__(self, work: Path, config: str, *, tls: bool = False):
        self.work, self.config, self.tls = Path(work), config, tls
        self.port: int | None = None
        self.proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> "WebServer":
        def attempt():
            self.port = free_port()
            conf = self.work / "web.toml"
            conf.write_text(f'web_listen = ["tcp:127.0.0.1:{self.port}"]\ndaemon_allow_root = true\n' + self.config)
            self.proc = ManagedProcess([sys.executable, "-m", "owlery.app.cli", "web", "--config", str(conf)],
                                       "owlery-web", self.work / "web.log", cwd=ROOT,
                                       env=dict(os.environ, PYTHONPATH=str(ROOT))).start()
            wait_for_tcp(self.port, timeout=30, proc=self.proc, what="owlery web")
        retry_on_port_race(attempt)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=15)

    def log(self) -> str:
        return (self.work / "web.log").read_text(errors="replace")
