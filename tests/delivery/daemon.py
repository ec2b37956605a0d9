"""Start `owlery lmtpd` as a child process for tests and benchmarks (free port, polled readiness).

Also `shared_workdir()`: a private directory every user can traverse, because Dovecot and
Postfix's pipe(8) read and write the Maildirs as `nobody` (pytest's tmp_path is 0700 root).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from tests.harness.procs import ManagedProcess, free_port, retry_on_port_race, wait_for_tcp, wait_for_text

ROOT = Path(__file__).resolve().parents[2]


def shared_workdir(prefix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(d, 0o755)
    return d


def remove_workdir(d: Path) -> None:
    shutil.rmtree(d, ignore_errors=True)


def base_config(work: Path) -> str:
    """Mail under work/mail/<domain>/<user>/Maildir, scripts in .../<user>/sieve/active.sieve."""
    return f"""
maildir_path_template = "{work}/mail/{{domain}}/{{localpart}}/Maildir"
delivery_sieve_script_template = "{work}/mail/{{domain}}/{{localpart}}/sieve/active.sieve"
state_sqlite_path = "{work}/state/state.sqlite"
maildir_owner = "nobody"
"""


class Lmtpd:
    """`owlery lmtpd --config <work>/owlery.toml` on a free loopback port."""

    def __init__(self, work: Path, config: str, name: str = "lmtpd"):
        self.work = Path(work)
        self.config = config
        self.name = name
        self.port: int | None = None
        self.proc: ManagedProcess | None = None

    def start(self) -> "Lmtpd":
        def attempt():
            self.port = free_port()
            conf = self.work / f"{self.name}.toml"
            conf.write_text(f'lmtpd_listen = ["tcp:127.0.0.1:{self.port}"]\ndaemon_allow_root = true\n' + self.config)
            self.proc = ManagedProcess([sys.executable, "-m", "owlery.app.cli", "lmtpd", "--config", str(conf)],
                                       f"owlery-{self.name}", self.work / f"{self.name}.log", cwd=ROOT,
                                       env=dict(os.environ, PYTHONPATH=str(ROOT))).start()
            wait_for_tcp(self.port, timeout=30, proc=self.proc, what="owlery lmtpd")
        retry_on_port_race(attempt)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=15)

    def log(self) -> str:
        return (self.work / f"{self.name}.log").read_text(errors="replace")

    def wait_log(self, needle, timeout: float = 15.0):
        """Wait until the log holds `needle` (str or compiled regex); see procs.wait_for_text."""
        return wait_for_text(self.log, needle, timeout, f"{self.name} log line {needle!r}")
