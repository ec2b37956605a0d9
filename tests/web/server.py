"""Start `owlery web` as a child process for tests (free loopback port, polled readiness)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.harness.owlery_daemons import OwleryDaemon


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


class WebServer(OwleryDaemon):
    """`owlery web --config <work>/web.toml` on a free loopback port; `.url`."""

    command = "web"

    def __init__(self, work: Path, config: str, *, tls: bool = False):
        super().__init__(work, config)
        self.tls = tls

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
