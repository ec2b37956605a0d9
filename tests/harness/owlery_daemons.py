"""Owlery's own daemons (policyd, milter, lmtpd, socketmap) as child processes for end-to-end tests.

`OwleryDaemons(workdir, extra_config)` writes a settings file whose listen endpoints are
free loopback ports, starts the daemons named in `which` with it, polls each port until
it accepts, and gives the Postfix main.cf lines for those settings from owlery.app.postfix
(the very lines README.rst shows). With `queue_dir` (a Postfix instance's queue directory)
they listen instead on unix sockets in QUEUE_DIR/owlery/, as the built-in defaults do in
/var/spool/postfix, and the main.cf lines name them relative to it. `listen` ({name: (host,
port)}) pins some daemons to another loopback address and port (e.g. two back ends' policyd
on 127.0.0.2 and 127.0.0.3 with one port, as relays ask "tcp:{host}:PORT"). The tests run as root:
the settings file says daemon_allow_root = true. Used by tests/e2e; bench/ can reuse it.

`OwleryDaemon` is one daemon on its own settings file (lmtpd, managesieve, web: see their
subclasses in tests/delivery/daemon.py, tests/managesieve/helpers.py, tests/web/server.py).
"""

import os
import sys
from pathlib import Path

from owlery.app import postfix
from owlery.settings import load

from .procs import (HarnessError, ManagedProcess, free_port, free_ports, retry_on_port_race, wait_for_tcp,
                    wait_for_text, wait_for_unix)

ROOT = Path(__file__).resolve().parents[2]
LISTEN_SETTINGS = {"policyd": "policyd_listen", "milter": "milter_listen", "lmtpd": "lmtpd_listen",
                   "socketmap": "socketmap_listen"}


class OwleryDaemons:
    """Start some of `owlery policyd|milter|lmtpd|socketmap` on free ports with one settings file."""

    def __init__(self, workdir, extra_config="", which=("policyd", "milter", "lmtpd"), queue_dir=None, listen=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.which = tuple(which)
        if queue_dir is None:
            self.ports = dict(zip(LISTEN_SETTINGS, free_ports(len(LISTEN_SETTINGS))))
            self.hosts = dict.fromkeys(LISTEN_SETTINGS, "127.0.0.1")
            for name, (host, port) in (listen or {}).items():
                self.hosts[name], self.ports[name] = host, port
            self.sockets = {}
            endpoints = {name: f"tcp:{self.hosts[name]}:{port}" for name, port in self.ports.items()}
            lines = []
        else:
            self.ports, self.hosts = {}, {}
            self.sockets = {name: Path(queue_dir) / "owlery" / f"{name}.sock" for name in LISTEN_SETTINGS}
            endpoints = {name: f"unix:{path}" for name, path in self.sockets.items()}
            lines = [f'daemon_postfix_queue_directory = "{queue_dir}"']
        lines += [f'{LISTEN_SETTINGS[name]} = "{endpoint}"' if name == "milter"
                  else f'{LISTEN_SETTINGS[name]} = ["{endpoint}"]'
                  for name, endpoint in endpoints.items()]
        lines.append("daemon_allow_root = true")
        self.config_path = self.workdir / "owlery.toml"
        self.config_path.write_text("\n".join(lines) + "\n" + extra_config + "\n")
        self.settings = load(str(self.config_path), missing_ok=False)
        self.procs = {}

    def start(self):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        for name in self.which:
            proc = ManagedProcess([sys.executable, "-m", "owlery.app.cli", name, "--config", self.config_path],
                                  f"owlery-{name}", self.workdir / f"{name}.log", cwd=ROOT, env=env)
            self.procs[name] = proc.start()
        try:
            for name in self.which:
                if self.sockets:
                    wait_for_unix(str(self.sockets[name]), timeout=30, proc=self.procs[name], what=f"owlery {name}")
                else:
                    wait_for_tcp(self.ports[name], self.hosts[name], timeout=30, proc=self.procs[name], what=f"owlery {name}")
        except HarnessError:
            self.stop()
            raise
        return self

    def stop(self):
        for proc in self.procs.values():
            proc.stop(timeout=15)

    def log(self, name):
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def wait_log(self, name, needle, timeout=15.0):
        """Wait until daemon `name`'s log holds `needle` (str or compiled regex); see wait_for_text."""
        return wait_for_text(lambda: self.log(name), needle, timeout, f"{name} log line {needle!r}")

    def main_cf(self, domains):
        """main.cf parameters wiring these daemons into Postfix (owlery.app.postfix.main_cf)."""
        return dict(postfix.main_cf(self.settings, domains))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class OwleryDaemon:
    """`owlery <command> --config <work>/<name>.toml` on a free loopback port, as a child process.

    The settings file is `<command>_listen = ["tcp:127.0.0.1:PORT"]`, then `preamble`, then
    `config`; a port taken by someone else between choosing and binding is chosen again
    (procs.retry_on_port_race). The log is <work>/<name>.log. Subclasses set `command`.
    """

    command = ""
    preamble = "daemon_allow_root = true\n"

    def __init__(self, work, config, name=None):
        self.work = Path(work)
        self.config = config
        self.name = name or self.command
        self.port = None
        self.proc = None

    def start(self):
        def attempt():
            self.port = free_port()
            conf = self.work / f"{self.name}.toml"
            conf.write_text(f'{self.command}_listen = ["tcp:127.0.0.1:{self.port}"]\n' + self.preamble + self.config)
            self.proc = ManagedProcess([sys.executable, "-m", "owlery.app.cli", self.command, "--config", str(conf)],
                                       f"owlery-{self.name}", self.work / f"{self.name}.log", cwd=ROOT,
                                       env=dict(os.environ, PYTHONPATH=str(ROOT))).start()
            wait_for_tcp(self.port, timeout=30, proc=self.proc, what=f"owlery {self.command}")
        retry_on_port_race(attempt)
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop(timeout=15)

    def log(self):
        return (self.work / f"{self.name}.log").read_text(errors="replace")

    def wait_log(self, needle, timeout=15.0):
        """Wait until the log holds `needle` (str or compiled regex); see procs.wait_for_text."""
        return wait_for_text(self.log, needle, timeout, f"{self.name} log line {needle!r}")
