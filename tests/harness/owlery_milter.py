"""`owlery milter` as a child process on its own socket, for miltertest, interop, e2e and bench.

libmilter can run only once per process (and holds its socket a few seconds after stop),
so every user gets a fresh subprocess on a fresh socket: `MilterProcess(workdir, config)`
writes the settings file, starts `python -m owlery.app.cli milter`, and polls the socket until
it accepts. Also `run_miltertest(script, sock, **vars)` runs a Lua script with Debian's
miltertest and returns (exit status, output), and `lua_session_helpers` the Lua every
batch script of the peer differentials starts with.
Owner: the milter engineer. Used by tests/milters/test_miltertest.py, tests/e2e/test_milter_*.py,
bench/bench_milter.py.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .procs import HarnessError, ManagedProcess, free_port, wait_for_tcp, wait_for_text, wait_for_unix

ROOT = Path(__file__).resolve().parents[2]
MILTERTEST = shutil.which("miltertest") or "/usr/bin/miltertest"


class MilterProcess:
    """One `owlery milter`; `listen` is "unix" (socket in workdir) or "tcp" (free port)."""

    def __init__(self, workdir, config_text="", listen="unix"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if listen == "unix":
            self.path = str(self.workdir / "milter.sock")
            self.endpoint = f"unix:{self.path}"
            self.spec = f"unix:{self.path}"          # Postfix and miltertest form
            self.port = None
        else:
            self.port = free_port()
            self.endpoint = f"tcp:127.0.0.1:{self.port}"
            self.spec = f"inet:127.0.0.1:{self.port}"
        self.miltertest_spec = self.spec if listen == "unix" else f"inet:{self.port}@127.0.0.1"
        self.config_path = self.workdir / "owlery.toml"
        # The tests run as root; the milter refuses root without daemon_user otherwise.
        self.config_path.write_text(f'milter_listen = "{self.endpoint}"\ndaemon_allow_root = true\n{config_text}\n')
        self.proc = None

    def start(self, timeout=20.0):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = ManagedProcess([sys.executable, "-m", "owlery.app.cli", "milter", "--config", self.config_path],
                                   "owlery-milter", self.workdir / "milter.log", cwd=ROOT, env=env).start()
        try:
            if self.port is None:
                wait_for_unix(self.path, timeout=timeout, proc=self.proc, what="owlery milter")
            else:
                wait_for_tcp(self.port, timeout=timeout, proc=self.proc, what="owlery milter")
        except HarnessError:
            self.stop()
            raise
        return self

    def stop(self):
        if self.proc is not None:
            return self.proc.stop(timeout=15)
        return None

    def log(self):
        p = self.workdir / "milter.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def wait_log(self, needle, timeout=15.0):
        """Wait until the log holds `needle` (str or compiled regex); see procs.wait_for_text."""
        return wait_for_text(self.log, needle, timeout, f"milter log line {needle!r}")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def run_miltertest(script, sock, timeout=60, **variables):
    """Run a miltertest Lua script with -D name=value variables; (returncode, output)."""
    if not os.path.exists(MILTERTEST):
        raise HarnessError("miltertest not installed (Debian package miltertest)")
    argv = [MILTERTEST, "-D", f"sock={sock}"]
    for k, v in variables.items():
        argv += ["-D", f"{k}={v}"]
    argv += ["-s", str(script)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


def lua_session_helpers(client_ip, timeout):
    """Lua for a miltertest script that sends many messages, one connection each (the DKIM,
    DMARC and signing differentials): `start([sender])` connects as client.example from
    `client_ip`, then HELO (unless the filter declines it), MAIL FROM (alice@example.net by
    default) and RCPT TO bob@example.com; `echo_results(conn, n)` echoes every
    Authentication-Results value the filter added as `CASE n AR<<value>>` and disconnects.
    `timeout`: seconds miltertest waits for each reply."""
    return f"""
mt.set_timeout({timeout})
local function start(sender)
  local conn = mt.connect(sock, 5, 1)
  if conn == nil then error("connect") end
  mt.macro(conn, SMFIC_CONNECT, "j", "mx.example.com")
  assert(mt.conninfo(conn, "client.example", "{client_ip}") == nil, "conninfo")
  if not mt.test_option(conn, SMFIP_NOHELO) then assert(mt.helo(conn, "client.example") == nil, "helo") end
  assert(mt.mailfrom(conn, "<" .. (sender or "alice@example.net") .. ">") == nil, "mailfrom")
  assert(mt.rcptto(conn, "<bob@example.com>") == nil, "rcptto")
  return conn
end
local function echo_results(conn, n)
  local i = 0
  while true do
    local v = mt.getheader(conn, "Authentication-Results", i)
    if v == nil then break end
    mt.echo("CASE " .. n .. " AR<<" .. v .. ">>")
    i = i + 1
  end
  mt.disconnect(conn)
end
"""
