"""`owlery policyd` with two workers (greylisting on SQLite) stops at once on SIGTERM and exits 0.

The failure this guards against: the 1,000-connection test (tests/core/test_many_connections.py)
was killed once in a full CI run because a worker never handled the SIGTERM its parent passed
on. CPython's C handler only notes a signal; the Python handler (which asks the reactor to
stop) runs when the main thread next executes bytecode. A signal landing after the reactor's
last check and before it enters epoll_wait() was only noted, and an idle worker slept on with
no timer left to wake it (measured: about 1 lost SIGHUP in 20,000 sent right after a reply, on
this 2-core machine under load). A signal the kernel gives to another thread of the worker
(the blocking pool, the greylist flush thread) meets the same fate every time; the first test
sends it so (tgkill), which turns the rare race into a certain one. owlery.daemon now sets
`signal.set_wakeup_fd` so that every signal wakes the reactor.
The second test stops the daemon while clients are still sending, a few times, and checks that
it exits 0 quickly with every greylist first sight still queued stored by the shutdown.
The third checks that policyd's blocking pool no longer waits without limit at shutdown for a
call stuck in a backend (ThreadPool.stop() joins its threads with no time limit).
"""

from __future__ import annotations

import ctypes
import os
import re
import selectors
import signal
import socket
import sqlite3
import threading
import time

import pytest

from policyd.protocol import encode_request
from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.procs import child_pids, wait_until

STOP_DEADLINE_S = 5.0       # SIGTERM to exit; the harness kills at 10 s


def _config(db, extra: str = "") -> str:
    return ('policyd_checks = { RCPT = ["greylist"] }\n'
            f'state_sqlite_path = "{db}"\n'
            "policyd_workers = 2\n"
            "greylist_whitelist_clients = []\n"
            "greylist_whitelist_recipients = []\n" + extra)


def _request(n: int, tag: str) -> bytes:
    """A new triplet per n: greylisted (a first sight, queued for the store)."""
    return encode_request({"request": "smtpd_access_policy", "protocol_state": "RCPT",
                           "protocol_name": "ESMTP", "client_address": f"198.51.{n // 200}.{n % 200 + 1}",
                           "client_name": "mx.sender.example", "helo_name": "mx.sender.example",
                           "sender": f"{tag}@sender.example", "recipient": f"u{n}@example.test",
                           "instance": f"{tag}.{n}"})


def _sockets(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


def _rows(db) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM kv WHERE key LIKE 'gl:t:%'").fetchone()[0]


class Load:
    """`connections` clients, each sending its next new triplet as soon as the last is answered,
    from one thread, until stop(); then every socket is closed (as Postfix's smtpd would)."""

    def __init__(self, port: int, connections: int, tag: str):
        self.port, self.tag = port, tag
        self.answers: list[bytes] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._sel = selectors.DefaultSelector()
        self._next = 0
        for _ in range(connections):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.setblocking(False)
            self._sel.register(s, selectors.EVENT_READ, [b"", 0])     # bytes in, replies
            self._send(s)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _send(self, s: socket.socket) -> None:
        s.sendall(_request(self._next, self.tag))
        self._next += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(0.05):
                try:
                    data = key.fileobj.recv(65536)
                except OSError as e:
                    data, why = b"", str(e)
                else:
                    why = "closed by the daemon"
                if not data:
                    self.errors.append(why)
                    self._sel.unregister(key.fileobj)
                    key.fileobj.close()
                    continue
                key.data[0] += data
                while b"\n\n" in key.data[0]:
                    reply, key.data[0] = key.data[0].split(b"\n\n", 1)
                    self.answers.append(reply)
                    key.data[1] += 1
                    if not self._stop.is_set():
                        self._send(key.fileobj)
        for key in list(self._sel.get_map().values()):
            key.fileobj.close()
        self._sel.close()

    def everyone_answered(self, at_least: int) -> bool:
        """Each connection answered: both workers run their reactors (the kernel spreads the
        connections over the workers' sockets; one still starting holds its share queued)."""
        return all(key.data[1] >= at_least for key in list(self._sel.get_map().values()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _stop_and_time(proc) -> tuple[int | None, float]:
    started = time.monotonic()
    status = proc.stop(timeout=STOP_DEADLINE_S)
    return status, time.monotonic() - started


def test_a_stop_signal_any_thread_of_a_worker_takes_stops_it_at_once(harness_dirs):
    tgkill = getattr(ctypes.CDLL(None, use_errno=True), "tgkill", None)
    if tgkill is None:
        pytest.skip("no tgkill() in this C library")
    work = harness_dirs("workers-shutdown")
    db = work / "state.sqlite"
    # No timer of the workers' falls due within the test (a stale one would wake an idle worker
    # and run the pending handler late): state calls may take 60 s, decisions 120 s.
    daemons = OwleryDaemons(work / "d", which=("policyd",), extra_config=_config(
        db, "state_timeout = 60\npolicyd_decision_timeout = 120\n")).start()
    proc = daemons.procs["policyd"]
    try:
        load = Load(daemons.ports["policyd"], 60, "tg")     # 60 connections: both workers take some
        wait_until(lambda: load.everyone_answered(5), 30, "answers from both workers", proc)
        load.stop()
        assert not load.errors, load.errors[:5]
        assert all(a.startswith(b"action=DEFER_IF_PERMIT 4.7.1 Greylisted") for a in load.answers)
        workers = child_pids(proc.pid)
        assert len(workers) == 2, workers
        # Idle: every connection's end handled (an event would wake the worker), so each holds
        # the listening sockets the parent holds, plus its reactor's copy of its own.
        idle = _sockets(proc.pid) + 1
        wait_until(lambda: all(_sockets(pid) == idle for pid in workers), 10, "the workers idle", proc)
        # ...and every first sight flushed (the flush timer fired, its batch came back).
        wait_until(lambda: _rows(db) == daemons.log("policyd").count(" greylist=new "), 10,
                   "the greylist flushed", proc)
        for pid in workers:
            others = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
            assert others, f"worker {pid} has no thread besides its reactor's"
            assert tgkill(pid, others[-1], signal.SIGTERM) == 0, os.strerror(ctypes.get_errno())
        # Each worker stops (drain, close: its log lines) and exits; the parent, not stopping,
        # then starts a new one in its place.
        wait_until(lambda: daemons.log("policyd").count("policyd: stopping: no new connections") == 2,
                   3, "both workers handling the SIGTERM one of their threads took", proc)
        for pid in workers:
            daemons.wait_log("policyd", re.compile(rf"worker \d \(pid {pid}\) exited with status 0"), 3)
        status, took = _stop_and_time(proc)
    finally:
        daemons.stop()
    assert status == 0 and took < STOP_DEADLINE_S, (status, took)
    assert "Traceback" not in daemons.log("policyd")


@pytest.mark.parametrize("round_", [1, 2])
def test_sigterm_under_load_exits_0_at_once_and_stores_the_queued_greylist(harness_dirs, round_):
    work = harness_dirs(f"workers-shutdown-load-{round_}")
    db = work / "state.sqlite"
    # Flushed only by the shutdown: every first sight answered is still queued at SIGTERM.
    daemons = OwleryDaemons(work / "d", which=("policyd",), extra_config=_config(
        db, 'greylist_flush_interval = "1h"\ngreylist_flush_records = 100000\n')).start()
    proc = daemons.procs["policyd"]
    try:
        load = Load(daemons.ports["policyd"], 40, f"load{round_}")
        wait_until(lambda: load.everyone_answered(10), 30, "the load running on both workers", proc)
        os.kill(proc.pid, signal.SIGTERM)               # while the clients are still sending:
        # both workers stop listening and close each connection once its request in hand is
        # answered (tests/core/test_drain_idle_connections.py), then exit
        wait_until(lambda: not proc.alive()
                   or daemons.log("policyd").count("policyd: stopping: no new connections") == 2,
                   10, "both workers draining")
        load.stop()
        status, took = _stop_and_time(proc)
    finally:
        daemons.stop()
    assert status == 0 and took < STOP_DEADLINE_S, (status, took)
    log = daemons.log("policyd")
    assert "Traceback" not in log
    assert all(a.startswith(b"action=DEFER_IF_PERMIT 4.7.1 Greylisted") for a in load.answers)
    stored = [int(n) for n in re.findall(r"greylist: stored (\d+) writes at shutdown", log)]
    first_sights = log.count(" greylist=new ")
    assert len(load.answers) <= first_sights and sum(stored) == first_sights, (len(load.answers), first_sights, stored)
    assert _rows(db) == first_sights, (_rows(db), first_sights)


def test_the_blocking_pool_does_not_wait_forever_for_a_stuck_call(monkeypatch, caplog):
    from policyd import checks

    class Reactor:                  # the pool hands results back through it; none is needed here
        def callFromThread(self, f, *a, **kw):
            pass

    monkeypatch.setattr(checks, "SHUTDOWN_WAIT", 0.3, raising=False)
    executor = checks.ThreadPoolExecutor(Reactor(), threads_max=2, queue_max=10)
    stuck = threading.Event()
    executor.submit(stuck.wait)                     # a backend call that never returns
    closing = threading.Thread(target=executor.close, daemon=True)
    try:
        closing.start()
        closing.join(3)
        assert not closing.is_alive(), "close() waits for the stuck call"
        assert "still running at shutdown after 0.3 s, not waited for: blocking pool" in caplog.text
    finally:
        stuck.set()
