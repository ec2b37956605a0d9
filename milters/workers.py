"""Milter worker processes (`milter_workers` > 1): several libmilters on one listen socket.

libmilter runs once per process and every callback of ours holds the GIL, so one milter
process tops out at about one core. With milter_workers > 1 the adapter binds the socket
as before, drops privileges and hands `supervise()` a function that runs one worker; the
parent forks that many. Each worker runs its own libmilter on the inherited descriptor
(`fd:N`: the same socket, unix or TCP, made non-blocking so that the workers that lose the
race for a connection get EAGAIN, which libmilter's accept loop skips), with its own stage
pipeline, DNS cache and DKIM key cache; the quarantine store is shared through its backend
(directory files with their SQLite index, or PostgreSQL).
The parent never runs libmilter and starts no thread (a fork copies only the forking
thread). It supervises: SIGHUP and SIGTERM/SIGINT go on to every worker (each reloads, or
drains, by itself), a worker that dies is started again with back-off, and once all have
stopped after SIGTERM the adapter removes the unix socket. Under systemd only the parent
speaks (NotifyAccess=main): workers report READY and WATCHDOG over a socketpair
(`WorkerBeat`) and owlery.sdnotify.WorkerNotices says READY=1 once every worker is ready.
Talks to: the OS (fork, signals). Tests: tests/milters/test_milter_workers.py
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from owlery import sdnotify

log = logging.getLogger("owlery.milter")

_RESTART_DELAY_MAX = 30.0


class WorkerBeat:
    """A worker's reports to the parent, with the interface of owlery.sdnotify.ProbeWatch
    (which the single milter process uses; a probe through the shared socket would reach any
    worker, not this one): a thread sends READY=1 once `running()` says libmilter runs here,
    again after each reload, and, with a watchdog, WATCHDOG=1 every half period while it
    still runs, each with this worker's counts (COUNTS=) and PID=."""

    def __init__(self, notifier: sdnotify.Notifier, running: Callable[[], bool],
                 counts: Callable[[], dict[str, int]], *, retry: float = 0.05):
        import threading

        self.notifier = notifier
        self.running = running
        self.counts = counts
        self.retry = retry
        self.ready = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="milter-worker-notify", daemon=True)

    @property
    def interval(self) -> float:
        if self.notifier.watchdog is None:
            return sdnotify.STATUS_INTERVAL
        return min(self.notifier.watchdog / 2, sdnotify.STATUS_INTERVAL)

    def _send(self, *lines: str) -> None:
        try:
            counts = sdnotify.encode_counts(self.counts())
        except Exception:  # noqa: BLE001 - a broken counter must not stop the pings
            log.exception("milter: cannot read counters for the worker parent")
            counts = ""
        self.notifier.send(*lines, *([counts] if counts else []), f"PID={os.getpid()}")

    def tick(self) -> None:
        """One turn of the thread (tests call it directly)."""
        if not self.ready:
            if self.running():
                self.ready = True
                self._send("READY=1")
            return
        if self.notifier.watchdog is not None and self.running():
            self._send("WATCHDOG=1")
        else:
            self._send()

    def _run(self) -> None:
        while not self._done.is_set():
            self.tick()
            self._done.wait(self.interval if self.ready else self.retry)

    def start(self) -> None:
        if self.notifier.enabled:
            self._thread.start()

    def stop(self) -> None:
        self._done.set()

    def reloading(self) -> None:
        """Nothing: the parent told systemd RELOADING=1 before passing SIGHUP on."""

    def reloaded(self) -> None:
        self._send("READY=1")

    def stopping(self) -> None:
        """Nothing: the parent said STOPPING=1; pings go on while messages drain."""


def share_listener(sock: socket.socket) -> None:
    """Make the listening socket fit for several libmilters: non-blocking (a loser of the race
    for a connection would otherwise sit in accept() until the next one arrives)."""
    sock.setblocking(False)


def supervise(count: int, run_worker: Callable[[int, sdnotify.Notifier | None], int],
              reload_settings: Callable[[], Any] | None = None) -> int:
    """Fork `count` workers, each `run_worker(index, notifier)` (its exit status; the notifier
    reaches the parent, None when systemd is not listening), and keep them
    running until SIGTERM or SIGINT; return 0 once all have stopped. `reload_settings` runs
    in the parent on SIGHUP before the signal goes on (new settings for workers started
    later; an exception is logged and the old ones kept)."""
    signals = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    notices = sdnotify.WorkerNotices(sdnotify.Notifier.from_environ(unset=True), "milter")
    reports = worker_end = None
    if notices.notifier.enabled:
        # Worker datagrams raise SIGIO (O_ASYNC), so the signal wait below wakes for them.
        reports, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        reports.setblocking(False)
        fcntl.fcntl(reports.fileno(), fcntl.F_SETOWN, os.getpid())
        fcntl.fcntl(reports.fileno(), fcntl.F_SETFL, fcntl.fcntl(reports.fileno(), fcntl.F_GETFL) | os.O_ASYNC)
        signals.add(signal.SIGIO)
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    pids: dict[int, int] = {}              # pid -> worker index
    started: dict[int, float] = {}         # worker index -> start time
    delay: dict[int, float] = {}           # worker index -> back-off before its next restart
    due: dict[int, float] = {}             # worker index -> when to restart it

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                # SIGTERM, SIGINT and SIGHUP stay blocked: the adapter's signal loop takes them.
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                if reports is not None:
                    reports.close()
                notifier = None if worker_end is None else \
                    sdnotify.Notifier(sock=worker_end, watchdog=notices.notifier.watchdog, to_parent=True)
                status = run_worker(index, notifier)
            except BaseException:  # noqa: BLE001 - a worker must never return into the parent's loop
                log.exception("milter: worker %d failed", index)
            finally:
                logging.shutdown()
                os._exit(status)
        pids[pid] = index
        notices.spawned(pid)
        started[index] = time.monotonic()
        log.info("milter: worker %d started (pid %d)", index, pid)

    for index in range(count):
        spawn(index)
    stopping = False
    while pids or (due and not stopping):
        timeout = max(0.0, min(due.values()) - time.monotonic()) if due and not stopping else None
        info = signal.sigtimedwait(signals, timeout) if timeout is not None else signal.sigwaitinfo(signals)
        if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT) and not stopping:
            stopping = True
            notices.stopping()
            log.info("milter: signal %d: stopping %d workers", info.si_signo, len(pids))
            for pid in pids:
                os.kill(pid, signal.SIGTERM)
        elif info is not None and info.si_signo == signal.SIGHUP and not stopping:
            notices.reloading()         # READY again once every worker has reloaded
            if reload_settings is not None:
                try:
                    reload_settings()
                except Exception as e:  # noqa: BLE001 - the workers judge (and log) the file too
                    log.debug("milter: worker parent keeps its settings: %s", e)
            for pid in pids:
                os.kill(pid, signal.SIGHUP)
        while pids:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            index = pids.pop(pid, None)
            notices.exited(pid)
            if index is None or stopping:
                continue
            lived = time.monotonic() - started[index]
            delay[index] = 1.0 if lived > _RESTART_DELAY_MAX else min(_RESTART_DELAY_MAX, 2 * delay.get(index, 0.5))
            due[index] = time.monotonic() + delay[index]
            log.error("milter: worker %d (pid %d) exited with status %s; restarting in %.0f s",
                      index, pid, os.waitstatus_to_exitcode(status), delay[index])
        while reports is not None:
            try:
                notices.message(reports.recv(4096))
            except BlockingIOError:
                break
        for index, when in list(due.items()):
            if not stopping and when <= time.monotonic():
                del due[index]
                spawn(index)
    if reports is not None:
        reports.close()
    return 0
