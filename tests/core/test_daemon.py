"""The daemon runner: listen endpoints, SIGHUP reload, SIGTERM drain (owlery.daemon)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from owlery.daemon import systemd_fd
from tests.harness.procs import child_pids

APP = Path(__file__).with_name("daemon_app.py")
ROOT = Path(__file__).resolve().parents[2]


def test_systemd_fd_by_name():
    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "2", "LISTEN_FDNAMES": "policyd:lmtpd"}
    assert systemd_fd("policyd", env) == 3
    assert systemd_fd("lmtpd", env) == 4
    with pytest.raises(ValueError, match="no passed socket"):
        systemd_fd("milter", env)


def test_systemd_fd_refuses_foreign_pid():
    with pytest.raises(ValueError, match="LISTEN_PID"):
        systemd_fd("policyd", {"LISTEN_PID": "1", "LISTEN_FDS": "1"})


def connect_when_ready(path, proc, deadline_s=20):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert proc.poll() is None, proc.stderr.read()
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(str(path))
            s.settimeout(10)
            return s
        except OSError:
            s.close()
            time.sleep(0.02)   # polling interval while the child binds
    raise AssertionError("daemon never listened")


def ask(sock, line):
    sock.sendall(line + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(100)
        assert chunk, "connection closed"
        buf += chunk
    return buf.strip()


def test_reload_and_graceful_stop(tmp_path):
    cfg = tmp_path / "o.toml"
    cfg.write_text('log_level = "info"\ndaemon_allow_root = true\n')
    sock_path = tmp_path / "run" / "app.sock"
    proc = subprocess.Popen([sys.executable, str(APP), str(cfg), f"unix:{sock_path}"], cwd=ROOT,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        s = connect_when_ready(sock_path, proc)
        assert ask(s, b"level") == b"info"

        cfg.write_text('log_level = "debug"\n')
        proc.send_signal(signal.SIGHUP)
        end = time.monotonic() + 10
        while ask(s, b"level") != b"debug":
            assert time.monotonic() < end, "reload not applied"

        cfg.write_text('log_levle = "warning"\n')      # a broken file must not be applied
        proc.send_signal(signal.SIGHUP)
        proc.send_signal(signal.SIGTERM)
        # The open connection is still served while draining...
        assert ask(s, b"still there") == b"still there"
        # ...but no new connection is accepted.
        end = time.monotonic() + 10
        while True:
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(str(sock_path))
            except OSError:
                break
            finally:
                probe.close()
            assert time.monotonic() < end, "still accepting after SIGTERM"
        s.close()                                     # last client leaves: daemon exits
        assert proc.wait(timeout=20) == 0
        err = proc.stderr.read().decode()
        assert "reload refused, keeping old settings" in err and "log_levle" in err
        assert "app closed" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_and_a_forwarded_sigterm_stop_it_once(tmp_path):
    """Ctrl-C under `owlery run`: SIGINT from the terminal and SIGTERM from the supervisor
    both arrive; the daemon stops once, status 0, without a ReactorNotRunning traceback."""
    cfg = tmp_path / "o.toml"
    cfg.write_text("daemon_allow_root = true\n")
    sock_path = tmp_path / "app.sock"
    proc = subprocess.Popen([sys.executable, str(APP), str(cfg), f"unix:{sock_path}"], cwd=ROOT,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        connect_when_ready(sock_path, proc).close()
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        err = proc.stderr.read().decode()
        assert "Traceback" not in err and "app closed" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


ACTIVATE = ("import os, sys; os.dup2(int(sys.argv[1]), 3); "
            "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', LISTEN_FDNAMES='coreapp'); "
            "os.execv(sys.executable, [sys.executable] + sys.argv[2:])")


def test_systemd_socket_activation(tmp_path):
    """A socket passed the way systemd passes it (fd 3, LISTEN_* for our pid) is served."""
    cfg = tmp_path / "o.toml"
    cfg.write_text("daemon_allow_root = true\n")
    path = tmp_path / "activated.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(8)
    fd = listener.fileno()
    proc = subprocess.Popen([sys.executable, "-c", ACTIVATE, str(fd), str(APP), str(cfg), "systemd:coreapp"],
                            pass_fds=(fd,), cwd=ROOT, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    listener.close()     # only the daemon holds it now
    try:
        s = connect_when_ready(path, proc)
        assert ask(s, b"hello systemd") == b"hello systemd"
        s.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _tcp_connect_when_ready(port, proc, deadline_s=20):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert proc.poll() is None, proc.stderr.read()
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            return s
        except OSError:
            time.sleep(0.02)   # polling interval while the parent binds
    raise AssertionError("daemon never listened")


def _children(pid):
    return set(child_pids(pid))


def test_workers_share_sockets_restart_reload_and_stop(tmp_path):
    """coreapp_workers = 2: both workers answer on TCP (SO_REUSEPORT) and on a shared unix
    socket; a killed worker is replaced; SIGHUP reaches every worker; SIGTERM stops them all."""
    from tests.harness.procs import free_port
    cfg = tmp_path / "o.toml"
    cfg.write_text('coreapp_workers = 2\nlog_level = "info"\ndaemon_allow_root = true\n')
    port = free_port()
    sock_path = tmp_path / "run" / "app.sock"
    proc = subprocess.Popen([sys.executable, str(APP), str(cfg), f"tcp:127.0.0.1:{port}", f"unix:{sock_path}"],
                            cwd=ROOT, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    conns = []
    try:
        conns = [_tcp_connect_when_ready(port, proc) for _ in range(24)]
        pids = {int(ask(c, b"pid")) for c in conns}
        assert len(pids) == 2 and proc.pid not in pids, pids
        assert pids == _children(proc.pid)
        u = connect_when_ready(sock_path, proc)
        assert int(ask(u, b"pid")) in pids
        u.close()

        victim = pids.pop()
        os.kill(victim, signal.SIGKILL)
        end = time.monotonic() + 20
        while True:
            now = _children(proc.pid)
            if len(now) == 2 and victim not in now:
                break
            assert time.monotonic() < end, f"worker not replaced: {now}"
            time.sleep(0.05)   # polling interval while the parent restarts it (1 s back-off)
        assert pids <= now

        for c in conns:
            c.close()
        cfg.write_text('coreapp_workers = 2\nlog_level = "debug"\n')
        proc.send_signal(signal.SIGHUP)
        seen_debug = set()
        end = time.monotonic() + 20
        while seen_debug != now:
            assert time.monotonic() < end, f"reload reached only {seen_debug} of {now}"
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            pid = int(ask(c, b"pid"))
            if ask(c, b"level") == b"debug":
                seen_debug.add(pid)
            c.close()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        err = proc.stderr.read().decode()
        assert "restarting in" in err and "with 2 workers" in err
        assert not any(Path(f"/proc/{p}").exists() and "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2]
                       for p in now)
    finally:
        for c in conns:
            c.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_workers_that_cannot_start_stop_the_daemon(tmp_path):
    """coreapp_workers = 2 and an application that cannot be built from the settings: the
    worker parent stops with EX_CONFIG (78) instead of restarting its workers for ever while
    it looks alive to systemd (a missing files_mailboxes under policyd_workers = 2 did)."""
    cfg = tmp_path / "o.toml"
    cfg.write_text('coreapp_workers = 2\ndaemon_allow_root = true\n')
    proc = subprocess.Popen([sys.executable, str(APP), str(cfg), f"unix:{tmp_path / 'app.sock'}"],
                            cwd=ROOT, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "COREAPP_BUILD_FAILS": "1"})
    try:
        assert proc.wait(timeout=30) == 78
        err = proc.stderr.read().decode()
        assert "cannot start: coreapp: cannot build" in err and "cannot start from the settings: stopping" in err
        assert "restarting in" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_one_process_that_cannot_start_exits_1(tmp_path):
    cfg = tmp_path / "o.toml"
    cfg.write_text("daemon_allow_root = true\n")
    proc = subprocess.run([sys.executable, str(APP), str(cfg), f"unix:{tmp_path / 'app.sock'}"], cwd=ROOT,
                          capture_output=True, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "COREAPP_BUILD_FAILS": "1"})
    assert proc.returncode == 1 and b"cannot start: coreapp: cannot build" in proc.stderr


def test_a_listen_path_a_live_daemon_holds_is_not_taken_over(tmp_path):
    """A second instance on the same unix path stops with "cannot listen" and leaves the first
    one serving; before, it deleted the live socket and took the first one's clients."""
    cfg = tmp_path / "o.toml"
    cfg.write_text("daemon_allow_root = true\n")
    sock_path = tmp_path / "app.sock"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen([sys.executable, str(APP), str(cfg), f"unix:{sock_path}"], cwd=ROOT,
                             stderr=subprocess.PIPE, env=env)
    try:
        connect_when_ready(sock_path, first).close()
        second = subprocess.run([sys.executable, str(APP), str(cfg), f"unix:{sock_path}"], cwd=ROOT,
                                capture_output=True, timeout=30, env=env)
        assert second.returncode == 1 and b"listens on it already" in second.stderr, second.stderr
        s = connect_when_ready(sock_path, first)
        assert int(ask(s, b"pid")) == first.pid
        s.close()
    finally:
        first.terminate()
        first.wait(timeout=20)
