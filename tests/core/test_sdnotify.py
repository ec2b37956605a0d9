"""systemd notifications (owlery.sdnotify): the datagram protocol, the reactor's heartbeat, the
worker parent's bookkeeping, the milter's probe, and the real daemons talking to a fake
$NOTIFY_SOCKET (a bound AF_UNIX datagram socket in a temp dir), read with deadlines."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from twisted.internet import task

from owlery import sdnotify
from policyd.protocol import encode_request
from tests.delivery.daemon import base_config
from tests.harness.procs import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[2]


def fields(data: bytes) -> dict[str, str]:
    return dict(line.partition("=")[::2] for line in data.decode().splitlines())


# --- the protocol -------------------------------------------------------------------------

def test_socket_address_forms():
    assert sdnotify.socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert sdnotify.socket_address("@owlery/notify") == "\0owlery/notify"
    for bad in ("vsock:2:1234", "run/notify", "@"):
        with pytest.raises(ValueError):
            sdnotify.socket_address(bad)


@pytest.mark.parametrize("env,expected", [
    ({"WATCHDOG_USEC": "30000000"}, 30.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30.0),      # meant for us (pid 4242)
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),         # meant for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_watchdog_only_for_the_process_it_names(env, expected):
    assert sdnotify.watchdog_seconds(env, 4242) == expected


def test_from_environ_sends_to_the_path_and_unsets(tmp_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(tmp_path / "notify"))
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "2000000", "OTHER": "x"}
        notifier = sdnotify.Notifier.from_environ(env, unset=True, pid=os.getpid())
        assert env == {"OTHER": "x"}           # what the daemon starts never speaks for it
        assert notifier.watchdog == 2.0
        assert notifier.send("READY=1", "STATUS=up")
        receiver.settimeout(5)
        assert receiver.recv(4096) == b"READY=1\nSTATUS=up"


def test_abstract_namespace_socket():
    name = f"owlery-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        notifier = sdnotify.Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        assert notifier.send("WATCHDOG=1")
        receiver.settimeout(5)
        assert receiver.recv(4096) == b"WATCHDOG=1"


def test_unset_or_unusable_socket_is_a_no_op():
    assert not sdnotify.Notifier.from_environ({}).send("READY=1")
    assert not sdnotify.Notifier.from_environ({"NOTIFY_SOCKET": "vsock:2:9"}).enabled


def test_a_receiver_that_never_reads_does_not_block_the_sender(tmp_path):
    """systemd busy or gone: the reactor must not wait in sendto (a wedged reactor)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(tmp_path / "notify"))
        notifier = sdnotify.Notifier(str(tmp_path / "notify"))
        started = time.monotonic()
        results = [notifier.send("STATUS=" + "x" * 1000) for _ in range(2000)]
        assert time.monotonic() - started < 5
        assert results[0] and not results[-1]          # the queue filled; later ones dropped


# --- the reactor's heartbeat (fake clock) -------------------------------------------------

class Recorder(sdnotify.Notifier):
    def __init__(self, watchdog=None, to_parent=False):
        super().__init__(watchdog=watchdog, to_parent=to_parent)
        self.sent: list[tuple[str, ...]] = []

    @property
    def enabled(self):
        return True

    def send(self, *assignments):
        self.sent.append(assignments)
        return True


def test_heartbeat_pings_at_half_the_watchdog_from_reactor_turns():
    clock = task.Clock()
    counts = {"decisions": 0, "connections": 0, "open": 0}
    notifier = Recorder(watchdog=4.0)
    beat = sdnotify.Heartbeat(notifier, "policyd", lambda: counts, clock)
    beat.ready()
    assert notifier.sent == [("READY=1", "STATUS=policyd: 0 decisions, 0 connections (0 open)")]
    clock.advance(1.9)
    assert len(notifier.sent) == 1
    clock.advance(0.1)
    assert notifier.sent[-1] == ("WATCHDOG=1",)         # unchanged counts: no STATUS again
    counts["decisions"] = 7
    clock.advance(2.0)
    assert notifier.sent[-1] == ("WATCHDOG=1", "STATUS=policyd: 7 decisions, 0 connections (0 open)")
    # A reactor stuck for 10 s in one callback: the clock jumps once, one turn runs, one ping;
    # not the five the elapsed time would have earned. No turn, no ping.
    before = len(notifier.sent)
    clock.advance(10.0)
    assert len(notifier.sent) == before + 1
    clock.advance(0)
    assert len(notifier.sent) == before + 1


def test_heartbeat_without_watchdog_only_refreshes_status():
    clock = task.Clock()
    notifier = Recorder()
    counts = {"open": 0}
    beat = sdnotify.Heartbeat(notifier, "lmtpd", lambda: counts, clock)
    beat.ready()
    clock.advance(sdnotify.STATUS_INTERVAL)
    assert notifier.sent == [("READY=1", "STATUS=lmtpd: 0 connections open")]
    counts["open"] = 2
    clock.advance(sdnotify.STATUS_INTERVAL)
    assert notifier.sent[-1] == ("STATUS=lmtpd: 2 connections open",)


def test_heartbeat_to_the_parent_carries_pid_and_counts_with_each_ping():
    clock = task.Clock()
    notifier = Recorder(watchdog=1.0, to_parent=True)
    beat = sdnotify.Heartbeat(notifier, "policyd", lambda: {"decisions": 3, "open": 1}, clock)
    beat.ready()
    clock.advance(0.5)
    clock.advance(0.5)
    tag = f"PID={os.getpid()}"
    assert notifier.sent == [("READY=1", "COUNTS=decisions=3,open=1", tag),
                             ("WATCHDOG=1", "COUNTS=decisions=3,open=1", tag),
                             ("WATCHDOG=1", "COUNTS=decisions=3,open=1", tag)]


def test_heartbeat_reload_and_stop():
    clock = task.Clock()
    notifier = Recorder()
    beat = sdnotify.Heartbeat(notifier, "socketmap", lambda: {"lookups": 1}, clock)
    beat.ready()
    beat.reloading()
    beat.reloaded()
    beat.stopping()
    kinds = [m[0].split("=")[0] for m in notifier.sent]
    assert kinds == ["READY", "RELOADING", "READY", "STOPPING"]
    assert notifier.sent[1][1].startswith("MONOTONIC_USEC=")


# --- the worker parent --------------------------------------------------------------------

def worker_says(notices, pid, *lines):
    notices.message("\n".join((*lines, f"PID={pid}")).encode())


def test_parent_ready_only_when_every_worker_is():
    notifier = Recorder(watchdog=2.0)
    notices = sdnotify.WorkerNotices(notifier, "policyd")
    notices.spawned(11)
    notices.spawned(12)
    worker_says(notices, 11, "READY=1", "COUNTS=decisions=0,connections=0,open=0")
    assert notifier.sent == []
    worker_says(notices, 12, "READY=1", "COUNTS=decisions=0,connections=0,open=0")
    assert notifier.sent == [("READY=1", "STATUS=policyd: 0 decisions, 0 connections (0 open), 2 workers")]


def test_parent_pings_only_while_every_worker_pings():
    notifier = Recorder(watchdog=2.0)
    notices = sdnotify.WorkerNotices(notifier, "policyd")
    for pid in (11, 12):
        notices.spawned(pid)
        worker_says(notices, pid, "READY=1")
    notifier.sent.clear()
    worker_says(notices, 11, "WATCHDOG=1", "COUNTS=decisions=5")
    assert notifier.sent == []                       # 12 has not pinged yet
    worker_says(notices, 12, "WATCHDOG=1", "COUNTS=decisions=2")
    assert notifier.sent[-1][0] == "WATCHDOG=1" and "7 decisions" in notifier.sent[-1][1]
    # Worker 12 wedged: 11 keeps pinging, the parent does not.
    for _ in range(5):
        worker_says(notices, 11, "WATCHDOG=1", "COUNTS=decisions=5")
    assert [m for m in notifier.sent if m[0] == "WATCHDOG=1"] == notifier.sent[-1:]
    assert len(notifier.sent) == 1
    # It died and was restarted: its counts are kept, the new one must ping too.
    notices.exited(12)
    assert notifier.sent[-1][0] == "WATCHDOG=1"     # every live worker (11) pinged meanwhile
    notices.spawned(13)
    worker_says(notices, 11, "WATCHDOG=1", "COUNTS=decisions=6")
    assert len(notifier.sent) == 2
    worker_says(notices, 13, "WATCHDOG=1", "COUNTS=decisions=1")
    assert notifier.sent[-1] == ("WATCHDOG=1", "STATUS=policyd: 9 decisions, 0 connections open, 2 workers")


def test_parent_reload_waits_for_every_worker():
    notifier = Recorder()
    notices = sdnotify.WorkerNotices(notifier, "socketmap")
    for pid in (21, 22):
        notices.spawned(pid)
        worker_says(notices, pid, "READY=1")
    notices.reloading()
    assert notifier.sent[-1][0] == "RELOADING=1"
    worker_says(notices, 21, "RELOADING=1")
    worker_says(notices, 21, "READY=1")
    assert notifier.sent[-1][0] == "RELOADING=1"
    worker_says(notices, 22, "READY=1")
    assert notifier.sent[-1][0] == "READY=1"
    worker_says(notices, 99, "READY=1")             # not ours: ignored
    notices.stopping()
    assert notifier.sent[-1] == ("STOPPING=1",)


# --- the milter's probe thread -------------------------------------------------------------

def test_probe_watch_pings_only_after_an_answer():
    answers = [OSError("refused"), None, None, OSError("timed out"), None]

    def probe(timeout):
        outcome = answers.pop(0)
        if outcome is not None:
            raise outcome

    notifier = Recorder(watchdog=1.0)
    watch = sdnotify.ProbeWatch(notifier, "milter", probe, lambda: {"messages": 0, "open": 0})
    watch.tick()
    assert notifier.sent == []                       # not answering yet: not ready
    watch.tick()
    assert notifier.sent == [("READY=1", "STATUS=milter: 0 messages, 0 connections open")]
    watch.tick()
    assert notifier.sent[-1] == ("WATCHDOG=1",)
    watch.tick()                                     # no answer: no ping
    assert len(notifier.sent) == 2
    watch.tick()
    assert notifier.sent[-1] == ("WATCHDOG=1",)
    watch.stopping()                                 # draining: the socket is shut, pings go on
    watch.tick()
    assert notifier.sent[-2:] == [("STOPPING=1",), ("WATCHDOG=1",)]


# --- the real daemons -----------------------------------------------------------------------

class NotifySocket:
    """The fake systemd: a thread reads every datagram and notes when it came (so a test busy
    elsewhere still knows when each arrived); `next` waits for one with a deadline."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.seen: list[tuple[float, dict[str, str]]] = []
        self.cursor = 0
        self.arrived = threading.Condition()
        self.closed = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self.arrived:
                self.seen.append((time.monotonic(), fields(data)))
                self.arrived.notify_all()

    def next(self, key, timeout=30.0, proc=None, value="1"):
        """The next message (after the last one returned) with key=value; (time, fields)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                while self.cursor < len(self.seen):
                    self.cursor += 1
                    at, got = self.seen[self.cursor - 1]
                    if (key in got) if value is None else got.get(key) == value:
                        return at, got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {key}={value} within {timeout} s; got {[m for _, m in self.seen]}"
                                         + (f"\n{proc.log_tail()}" if proc is not None else ""))
                if proc is not None and not proc.alive():
                    raise AssertionError(f"{proc.name} exited ({proc.returncode})\n{proc.log_tail()}")
                self.arrived.wait(min(left, 0.2))

    def during(self, key, seconds, value="1"):
        """Arrival times of the key=value messages in the next `seconds` (waits them out: this
        asserts an absence)."""
        deadline = time.monotonic() + seconds
        with self.arrived:
            while (left := deadline - time.monotonic()) > 0:
                self.arrived.wait(left)
            found = [at for at, got in self.seen[self.cursor:] if got.get(key) == value]
            self.cursor = len(self.seen)
        return found

    def status(self, needle, timeout=10.0):
        """The first STATUS line so far or within `timeout` that contains `needle`."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                for _, got in self.seen:
                    if needle in got.get("STATUS", ""):
                        return got["STATUS"]
                left = deadline - time.monotonic()
                assert left > 0, f"no STATUS with {needle!r}; got {[m for _, m in self.seen]}"
                self.arrived.wait(min(left, 0.2))

    def close(self):
        self.closed = True
        self.reader.join(5)
        self.sock.close()


def policy_probe(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(encode_request({"request": "smtpd_access_policy", "protocol_state": "RCPT",
                                  "sender": "a@example.net", "recipient": "x@elsewhere.test",
                                  "client_address": "192.0.2.1", "instance": "1"}))
        reply = b""
        while not reply.endswith(b"\n\n"):
            chunk = s.recv(4096)
            assert chunk, reply
            reply += chunk
    assert reply.startswith(b"action=DUNNO"), reply


def socketmap_probe(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        request = b"virtual_mailbox_domains example.org"
        s.sendall(b"%d:%s," % (len(request), request))
        reply = s.recv(4096)
    assert reply[:1].isdigit() and b":" in reply, reply


def greeting_probe(expected):
    def probe(port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            assert s.recv(4096).startswith(expected)
    return probe


def milter_probe(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(struct.pack("!IcIII", 13, b"O", 6, 0x1FF, 0))
        head = s.recv(5)
        assert head[4:5] == b"O", head
        s.sendall(struct.pack("!Ic", 1, b"Q"))


def web_probe(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /login HTTP/1.0\r\nHost: localhost\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0], reply[:200]


def daemon_config(name, port, tmp_path):
    (tmp_path / "mailboxes").write_text("alice@example.org alice\n")
    common = f'daemon_allow_root = true\nfiles_mailboxes = "{tmp_path / "mailboxes"}"\n'
    return common + {
        "policyd": f'policyd_listen = ["tcp:127.0.0.1:{port}"]\npolicyd_checks = {{ RCPT = ["recipient"] }}\n',
        "socketmap": f'socketmap_listen = ["tcp:127.0.0.1:{port}"]\n',
        "lmtpd": f'lmtpd_listen = ["tcp:127.0.0.1:{port}"]\n' + base_config(tmp_path),
        "managesieve": f'managesieve_listen = ["tcp:127.0.0.1:{port}"]\n',
        "milter": f'milter_listen = "tcp:127.0.0.1:{port}"\n',
        "web": f'web_listen = ["tcp:127.0.0.1:{port}"]\nquarantine_directory = "{tmp_path / "quarantine"}"\n',
    }[name]


# The probe that proves the port serves, and the STATUS its traffic leads to.
DAEMONS = {
    "policyd": (policy_probe, "policyd: 1 decisions, 1 connections (0 open)"),
    "socketmap": (socketmap_probe, "socketmap: 1 lookups, 1 connections (0 open)"),
    "lmtpd": (greeting_probe(b"220 "), "lmtpd: 0 deliveries, 1 connections (0 open)"),
    "managesieve": (greeting_probe(b'"IMPLEMENTATION"'), "managesieve: 1 connections (0 open)"),
    "milter": (milter_probe, "milter: 0 messages, 0 connections open"),
    "web": (web_probe, "web: 1 connections (0 open)"),
}
WATCHDOG_USEC = 400_000          # pings every 0.2 s


def start(name, tmp_path, extra="", watchdog_usec=WATCHDOG_USEC, argv=None):
    port = free_port()
    conf = tmp_path / f"{name}.toml"
    conf.write_text(daemon_config(name, port, tmp_path) + extra)
    notify = NotifySocket(tmp_path / "notify.sock")
    env = dict(os.environ, PYTHONPATH=str(ROOT), NOTIFY_SOCKET=notify.path, WATCHDOG_USEC=str(watchdog_usec))
    env.pop("WATCHDOG_PID", None)
    proc = ManagedProcess(argv or [sys.executable, "-m", "owlery.app.cli", name, "--config", conf],
                          f"owlery-{name}", tmp_path / f"{name}.log", cwd=ROOT, env=env).start()
    return proc, notify, port


def assert_cadence(notify, proc, interval, count=4):
    times = [notify.next("WATCHDOG", proc=proc)[0] for _ in range(count + 1)]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) > interval * 0.5, gaps                 # not faster than half WATCHDOG_USEC
    assert sum(gaps) / len(gaps) < interval * 1.75, gaps    # and keeps up with it


@pytest.mark.parametrize("name", DAEMONS)
def test_daemon_notifies_ready_watchdog_status_stopping(name, tmp_path):
    probe, status = DAEMONS[name]
    proc, notify, port = start(name, tmp_path)
    try:
        notify.next("READY", proc=proc)
        probe(port)                     # READY means serving: the port answers its protocol now
        assert_cadence(notify, proc, WATCHDOG_USEC / 2e6)
        assert notify.status(status) == status
        proc.send_signal(signal.SIGTERM)
        notify.next("STOPPING", timeout=15)
        assert proc.popen.wait(15) == 0       # (a second SIGTERM, as stop() sends, may meet Python exiting)
    finally:
        proc.stop()
        notify.close()


def test_workers_ready_reload_and_a_wedged_worker_stops_the_pings(tmp_path):
    proc, notify, port = start("policyd", tmp_path, extra="policyd_workers = 2\n")
    try:
        _, ready = notify.next("READY", proc=proc)
        assert ready["STATUS"].endswith("2 workers"), ready
        policy_probe(port)
        notify.next("WATCHDOG", proc=proc)
        proc.send_signal(signal.SIGHUP)
        notify.next("RELOADING", proc=proc)
        notify.next("READY", proc=proc)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 2
        os.kill(int(children[0]), signal.SIGSTOP)         # one worker's reactor makes no turn
        try:
            stopped_at = time.monotonic()
            pings = notify.during("WATCHDOG", 1.5)      # 7 intervals of 0.2 s
            # At most the round completed just before the stop, none after.
            assert all(at < stopped_at + 0.2 for at in pings), [at - stopped_at for at in pings]
        finally:
            os.kill(int(children[0]), signal.SIGCONT)
        notify.next("WATCHDOG", timeout=5, proc=proc)    # pings resume
        proc.send_signal(signal.SIGTERM)
        notify.next("STOPPING", timeout=15)
        assert proc.popen.wait(15) == 0       # (a second SIGTERM, as stop() sends, may meet Python exiting)
    finally:
        proc.stop()
        notify.close()


BLOCKING_APP = '''
import sys, time
from twisted.internet import protocol
from twisted.protocols.basic import LineOnlyReceiver
from owlery import daemon
from owlery.settings import Endpoints, setting

BLOCKAPP_LISTEN = setting("blockapp_listen", Endpoints, ["tcp:127.0.0.1:0"], "Where the test app listens.")

class Block(LineOnlyReceiver):
    delimiter = b"\\n"
    def lineReceived(self, line):
        time.sleep(float(line))         # the reactor thread stuck in one callback
        self.sendLine(b"done")

class App:
    def __init__(self, settings, reactor):
        self.factory = protocol.ServerFactory.forProtocol(Block)
    def reload(self, settings):
        pass
    def close(self):
        pass

sys.exit(daemon.run("blockapp", sys.argv[1], sys.argv[2:], "blockapp_listen", App))
'''


def test_a_blocked_reactor_stops_the_pings(tmp_path):
    (tmp_path / "blockapp.py").write_text(BLOCKING_APP)
    port = free_port()
    conf = tmp_path / "blockapp.toml"
    conf.write_text("daemon_allow_root = true\n")
    proc, notify, _ = start("policyd", tmp_path, argv=[sys.executable, tmp_path / "blockapp.py", conf,
                                                         f"tcp:127.0.0.1:{port}"])
    try:
        notify.next("READY", proc=proc)
        notify.next("WATCHDOG", proc=proc)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"1.0\n")
            sent = time.monotonic()
            assert s.recv(100) == b"done\n"
        after, _ = notify.next("WATCHDOG", proc=proc)
        while after < sent:
            after, _ = notify.next("WATCHDOG", proc=proc)
        before = [at for at, m in notify.seen if m.get("WATCHDOG") == "1" and at <= sent]
        # No ping while the reactor slept (1 s, five watchdog intervals of 0.2 s).
        assert after - max(before) >= 0.95, (before[-3:], sent, after)
        assert_cadence(notify, proc, WATCHDOG_USEC / 2e6, count=2)      # and they come back
    finally:
        proc.stop()
        notify.close()


ACTIVATE = ("import os, sys; os.dup2(int(sys.argv[1]), 3); "
            "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', LISTEN_FDNAMES='socketmap'); "
            "os.execv(sys.executable, [sys.executable] + sys.argv[2:])")


def test_socket_activated_workers_ready_when_serving(tmp_path):
    """A socket systemd bound and passed (fd 3, LISTEN_*), shared by two workers: READY=1
    comes from the parent once both serve it, and the socket answers then."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    conf = tmp_path / "socketmap.toml"
    conf.write_text(daemon_config("socketmap", port, tmp_path) + "socketmap_workers = 2\n")
    notify = NotifySocket(tmp_path / "notify.sock")
    env = dict(os.environ, PYTHONPATH=str(ROOT), NOTIFY_SOCKET=notify.path, WATCHDOG_USEC=str(WATCHDOG_USEC))
    proc = ManagedProcess([sys.executable, "-c", ACTIVATE, str(listener.fileno()), "-m", "owlery.app.cli",
                           "socketmap", "--config", conf, "--listen", "systemd:socketmap"],
                          "owlery-socketmap", tmp_path / "socketmap.log", cwd=ROOT, env=env)
    # ManagedProcess closes other descriptors: make this one inheritable and pass it by hand.
    os.set_inheritable(listener.fileno(), True)
    with open(proc.log_path, "ab") as log_file:
        proc.popen = subprocess.Popen(proc.argv, stdin=subprocess.DEVNULL, stdout=log_file,
                                      stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True,
                                      pass_fds=(listener.fileno(),))
    listener.close()            # only the daemon holds it now
    try:
        _, ready = notify.next("READY", proc=proc)
        assert ready["STATUS"] == "socketmap: 0 lookups, 0 connections (0 open), 2 workers"
        socketmap_probe(port)
        assert notify.status("socketmap: 1 lookups, 1 connections (0 open), 2 workers")
        notify.next("WATCHDOG", proc=proc)
        proc.send_signal(signal.SIGTERM)
        notify.next("STOPPING", timeout=15)
        assert proc.popen.wait(15) == 0
    finally:
        proc.stop()
        notify.close()
