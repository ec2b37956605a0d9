"""Process and readiness helpers shared by every harness server.

Free loopback ports (bind-to-0), polling waits with deadlines (never a fixed sleep), and
ManagedProcess: a child process with its output in a log file, stopped by terminate/wait/kill.
Used by the other tests/harness modules; tested by tests/harness_selftest.
"""

import atexit
import contextlib
import errno
import os
import signal as _signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path

LOOPBACK = "127.0.0.1"
# Poll interval: short enough that a 50 ms server start is noticed quickly, long enough not
# to spin on 2 shared cores.
POLL_INTERVAL = 0.02


class HarnessError(RuntimeError):
    """A harness server could not be started, reached or stopped; message carries its log tail."""


# Servers still running when the interpreter exits (a crashed test run, a benchmark without
# `with`) are stopped here, so no daemon outlives the process that started it.
_LIVE = weakref.WeakSet()


def stop_at_exit(server):
    """Register an object with .stop() to be stopped at interpreter exit (idempotent)."""
    _LIVE.add(server)
    return server


@atexit.register
def _stop_live():
    for server in list(_LIVE):
        try:
            server.stop()
        except Exception:  # noqa: BLE001 -- best effort at exit; keep stopping the others
            pass


def pid_running(pid):
    """True if pid exists and is not a zombie (orphans are reaped late on these machines)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split()[1] != "Z"
    except (OSError, IndexError):
        return False
    return False


def child_pids(pid):
    """The processes whose parent is `pid` (a daemon's workers), sorted, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                out.append(int(entry))
    return sorted(out)


def make_workdir(prefix="owlery-harness-"):
    """A new temp directory, mode 0755 so daemons running as other users can traverse it
    (for use outside pytest, e.g. bench/; the caller removes it)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    return path


def free_port(kind=socket.SOCK_STREAM, host=LOOPBACK):
    """Return a port that was free on host for `kind` a moment ago (bind to port 0).

    Another process may grab it before the server binds; callers that start servers use
    `retry_on_port_race` to pick a new port when the server reports EADDRINUSE.
    """
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_port_tcp_udp(host=LOOPBACK):
    """Return a port free for both TCP and UDP on host (for DNS servers)."""
    for _ in range(50):
        port = free_port(socket.SOCK_STREAM, host)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind((host, port))
        except OSError:
            continue
        return port
    raise HarnessError("no port free for both TCP and UDP on %s" % host)


def free_ports(count, host=LOOPBACK):
    """Return `count` distinct free TCP ports (held open together so they differ)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def is_addr_in_use(text):
    """True when a server's error output says its port was taken (the free_port race)."""
    low = text.lower()
    return "address already in use" in low or "eaddrinuse" in low or "errno 98" in low


def retry_on_port_race(start, attempts=4):
    """Call start() until it does not fail because of a port race.

    start() picks fresh ports itself and raises HarnessError (message with the log tail);
    only errors that mention EADDRINUSE are retried.
    """
    for attempt in range(attempts):
        try:
            return start()
        except HarnessError as exc:
            if attempt == attempts - 1 or not is_addr_in_use(str(exc)):
                raise
        except OSError as exc:
            if attempt == attempts - 1 or exc.errno != errno.EADDRINUSE:
                raise
    raise AssertionError("unreachable")


def wait_until(predicate, timeout, what, proc=None, interval=POLL_INTERVAL):
    """Poll predicate() until it returns a true value (returned) or the deadline passes.

    If proc (a ManagedProcess) exits meanwhile, fail at once. Raises HarnessError naming
    `what` and, when proc is given, with the tail of its log.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            result = predicate()
        except (OSError, EOFError) as exc:
            result, last_exc = None, exc
        if result:
            return result
        if proc is not None and not proc.alive():
            raise HarnessError("%s: %s exited with status %s before it was ready\n%s"
                               % (what, proc.name, proc.returncode, proc.log_tail()))
        if time.monotonic() >= deadline:
            detail = " (last error: %r)" % (last_exc,) if last_exc else ""
            tail = ("\n" + proc.log_tail()) if proc is not None else ""
            raise HarnessError("%s: not ready after %.1f s%s%s" % (what, timeout, detail, tail))
        time.sleep(interval)


def wait_for_text(read, needle, timeout=15.0, what=None):
    """Poll read() (a log's text) until it contains `needle` (a str, or a compiled regex);
    returns the text (or the re.Match). Daemons write their decision lines once per reactor
    turn, after the reply that a test saw: a log is read by waiting, never at once."""
    def found():
        text = read()
        if isinstance(needle, str):
            return text if needle in text else None
        return needle.search(text)
    try:
        return wait_until(found, timeout, what or f"log line with {getattr(needle, 'pattern', needle)!r}")
    except HarnessError as exc:
        raise HarnessError(f"{exc}\n--- log tail ---\n{read()[-3000:]}") from None


def tcp_connects(port, host=LOOPBACK, timeout=0.5):
    """True if a TCP connection to host:port is accepted now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unix_connects(path, timeout=0.5):
    """True if a stream connection to the unix socket at path is accepted now."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_for_tcp(port, host=LOOPBACK, timeout=15.0, proc=None, what=None):
    """Wait until host:port accepts TCP connections (raises HarnessError on deadline)."""
    wait_until(lambda: tcp_connects(port, host), timeout, what or "tcp %s:%d" % (host, port), proc)


def wait_for_unix(path, timeout=15.0, proc=None, what=None):
    """Wait until the unix socket at path accepts connections (raises HarnessError)."""
    wait_until(lambda: unix_connects(path), timeout, what or "unix socket %s" % path, proc)


def request_reply(port, payload, host=LOOPBACK, timeout=2.0, until=None, max_bytes=65536):
    """Send payload over TCP and read the reply until EOF, `until` bytes seen, or max_bytes."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        if payload:
            s.sendall(payload)
        buf = b""
        while len(buf) < max_bytes:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            if until is not None and until in buf:
                break
        return buf


def log_tail(path, lines=40):
    """Last `lines` lines of a text file ('' when missing), for error messages."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return ""
    text = data[-20000:].decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def make_dir(path, mode=0o755, owner=None):
    """mkdir -p with explicit mode (umask-proof) and optional owner name (for daemons' users)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if owner is not None:
        import pwd
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


class ManagedProcess:
    """A server child process, with stdout+stderr in `log_path`, that the harness waits on.

    start() spawns it in its own session (so a terminal ^C reaches pytest only, and stop()
    can signal the whole group); stop() sends SIGTERM, waits, then SIGKILLs the group.
    Extra log files (a daemon's own log) are listed in `extra_logs` for log_tail().
    """

    def __init__(self, argv, name, log_path, cwd=None, env=None, user=None, group=None,
                 extra_logs=()):
        self.argv = [str(a) for a in argv]
        self.name = name
        self.log_path = Path(log_path)
        self.cwd = cwd
        self.env = env
        self.user = user
        self.group = group
        self.extra_logs = [Path(p) for p in extra_logs]
        self.popen = None

    def start(self):
        if self.alive():
            raise HarnessError("%s already running (pid %d)" % (self.name, self.popen.pid))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            try:
                self.popen = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    cwd=self.cwd, env=self.env, user=self.user, group=self.group,
                    start_new_session=True, close_fds=True)
            except OSError as exc:
                raise HarnessError("cannot run %s (%s): %s" % (self.name, self.argv[0], exc)) from exc
        stop_at_exit(self)
        return self

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    @property
    def returncode(self):
        return self.popen.poll() if self.popen else None

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.popen.pid, sig)

    def stop(self, timeout=10.0, sig=_signal.SIGTERM):
        """Terminate (sig), wait up to timeout, then SIGKILL the process group; always reaps."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            try:
                os.kill(self.popen.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill_group()
                self.popen.wait(5)
        return self.popen.returncode

    def kill_group(self):
        try:
            os.killpg(self.popen.pid, _signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def log_tail(self, lines=40):
        parts = ["--- %s (%s) ---\n%s" % (self.name, self.log_path, log_tail(self.log_path, lines))]
        for p in self.extra_logs:
            parts.append("--- %s ---\n%s" % (p, log_tail(p, lines)))
        return "\n".join(parts)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "<ManagedProcess %s pid=%s>" % (self.name, self.pid)


class ServerProcess:
    """Base of a harness server run as one ManagedProcess (`proc`) on loopback port(s) it picks.

    start(timeout) does nothing while the server runs. Otherwise, on the first start (or on
    every start when `keep_port` is false) it calls `_first_start()`, then `_pick_ports()`
    and `_spawn(timeout)`, picking the ports again when another process takes one first
    (retry_on_port_race); a later start (restart()) spawns again on the same port, the
    address its clients know. `_spawn` starts the process with `_started(proc)`, a block in
    which it waits for readiness: a HarnessError there stops the process again.
    stop() stops it (`stop_timeout`); a ServerProcess is also a context manager.
    """

    start_timeout = 30.0
    stop_timeout = 10.0
    keep_port = True
    port = None
    proc = None

    def _first_start(self):
        pass

    def _pick_ports(self):
        self.port = free_port()

    def _spawn(self, timeout):
        raise NotImplementedError

    def start(self, timeout=None):
        timeout = self.start_timeout if timeout is None else timeout
        if self.proc is not None and self.proc.alive():
            return self
        if self.port is None or not self.keep_port:
            self._first_start()

            def attempt():
                self._pick_ports()
                self._spawn(timeout)
            retry_on_port_race(attempt)
        else:
            self._spawn(timeout)
        return self

    @contextlib.contextmanager
    def _started(self, proc):
        """Start `proc` as self.proc; if the block (the readiness wait) fails, stop it again."""
        self.proc = proc.start()
        try:
            yield self.proc
        except HarnessError:
            self.proc.stop()
            raise

    def stop(self):
        if self.proc is not None:
            self.proc.stop(timeout=self.stop_timeout)

    def restart(self):
        self.stop()
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "<%s %s:%s>" % (type(self).__name__, LOOPBACK, self.port)
