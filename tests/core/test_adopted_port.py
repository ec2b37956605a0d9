"""Unix sockets served by workers (or passed by systemd) keep their mode, backlog and path
(owlery/adopted_port.py): Twisted's adoption made them 0666, listened with a backlog of 50,
and one worker stopping alone unlinked the path the others served."""

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

from tests.harness.procs import ManagedProcess, child_pids, wait_until

ROOT = Path(__file__).resolve().parents[2]
APP = Path(__file__).with_name("daemon_app.py")
ACTIVATE = ("import os, sys\nfd = int(sys.argv[1])\nos.dup2(fd, 3)\nos.environ.update(LISTEN_PID=str(os.getpid()), "
            "LISTEN_FDS='1', LISTEN_FDNAMES='coreapp')\nos.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n")


def pid_over(path: Path) -> int | None:
    """The pid of the worker that answers one connection on `path`, None if none does."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(path))
            s.sendall(b"pid\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(100)
                if not chunk:
                    return None
                buf += chunk
            return int(buf)
    except OSError:
        return None


def backlog_of(path: Path) -> int:
    out = subprocess.run(["ss", "-Hlx", "src", str(path)], capture_output=True, text=True, check=True).stdout.split()
    return int(out[out.index("LISTEN") + 2])


def serving_pids(path: Path, want: set[int], proc, what: str) -> None:
    """Wait until every pid in `want` has answered a connection on `path`."""
    seen: set[int] = set()

    def all_seen() -> bool:
        pid = pid_over(path)
        if pid is not None:
            seen.add(pid)
        return want <= seen
    wait_until(all_seen, 30, what, proc)


def test_workers_keep_the_socket_mode_backlog_and_path_when_one_stops(tmp_path):
    cfg = tmp_path / "o.toml"
    cfg.write_text("coreapp_workers = 2\ndaemon_listen_backlog = 300\ndaemon_allow_root = true\n")
    path = tmp_path / "run" / "app.sock"
    proc = ManagedProcess([sys.executable, str(APP), str(cfg), f"unix:{path}:mode=640"], "coreapp",
                          tmp_path / "app.log", cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT))).start()
    try:
        wait_until(lambda: len(child_pids(proc.pid)) == 2, 30, "two workers", proc)
        workers = set(child_pids(proc.pid))
        serving_pids(path, workers, proc, "both workers answering on the unix socket")
        # Both workers run their reactor on the socket now: what they did to it shows.
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
        assert backlog_of(path) == min(300, int(Path("/proc/sys/net/core/somaxconn").read_text()))

        victim = min(workers)
        os.kill(victim, signal.SIGTERM)          # this worker drains and stops alone
        wait_until(lambda: len(set(child_pids(proc.pid)) - workers) == 1, 30, "the stopped worker replaced", proc)
        replacement = (set(child_pids(proc.pid)) - workers).pop()
        serving_pids(path, {replacement, max(workers)}, proc, "the replacement answering on the same path")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
        assert "cannot listen" not in proc.log_path.read_text()

        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(timeout=30) == 0
        assert not path.exists(), "the worker parent removes the path it bound"
    finally:
        proc.stop()


def test_a_systemd_unix_socket_keeps_its_mode_and_file(tmp_path):
    cfg = tmp_path / "o.toml"
    cfg.write_text("daemon_allow_root = true\n")
    path = tmp_path / "activated.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    os.chmod(path, 0o600)                      # as SocketMode=0600 makes it
    listener.listen(7)
    listener.setblocking(False)
    fd = listener.fileno()
    log = (tmp_path / "app.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-c", ACTIVATE, str(fd), str(APP), str(cfg), "systemd:coreapp"],
                            pass_fds=(fd,), cwd=ROOT, stdout=log, stderr=log,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    # The test keeps its descriptor, as systemd does: the socket outlives the service.
    try:
        wait_until(lambda: pid_over(path) == proc.pid, 30, "the activated daemon answering")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert backlog_of(path) == 7
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert path.exists(), "the socket file is systemd's: the daemon leaves it"
        # Still listening: a client connecting while the service restarts waits in the backlog
        # (a shutdown() at stop refused it, and the restarted service then served nothing).
        with socket.socket(socket.AF_UNIX) as early:
            early.connect(str(path))
        assert backlog_of(path) == 7
    finally:
        listener.close()
        log.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
