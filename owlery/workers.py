"""The worker parent: fork N worker processes, keep them running, speak for them to systemd.

One supervisor for every daemon that runs workers: owlery.daemon (Twisted workers: policyd,
lmtpd) and milters.workers (libmilter workers). The caller binds its sockets and drops
privileges first, then hands `supervise()` a `run_worker(index, notifier)` that serves in the
forked child and returns its exit status. The parent starts no thread and runs no reactor (a
fork copies only the forking thread); it waits for signals with sigwaitinfo:
- SIGTERM or SIGINT: STOPPING=1, SIGTERM to every worker, return once all have exited;
- SIGHUP: RELOADING=1, `reload_settings()` (settings for workers started from now on), then
  SIGHUP to every worker; READY=1 again once each has reloaded (owlery.sdnotify.WorkerNotices);
- SIGCHLD: a worker that died is started again after a back-off (1 s, doubling up to 30 s,
  back to 1 s once a worker lived longer than that); one that exits with EXIT_CANNOT_START
  (its application could not be built from the settings: a map file missing, a bad value)
  stops the daemon with that status, as one process would stop, instead of being started
  again for ever while the parent looks alive to systemd;
- SIGIO: under systemd (NotifyAccess=main) workers report READY/WATCHDOG/counts over a
  socketpair whose arrivals raise SIGIO (O_ASYNC); WorkerNotices turns them into READY=1,
  WATCHDOG=1 (only while every worker pings) and STATUS.
No Twisted and no pymilter here: the core stays light (tests/core/test_settings_light.py).
Talks to: the OS (fork, signals, waitpid), systemd's notify socket. Tests:
tests/core/test_daemon.py, tests/policyd/test_workers_shutdown.py,
tests/milters/test_milter_workers.py, tests/core/test_sdnotify.py
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Collection
from typing import Any

from owlery import sdnotify

RESTART_DELAY_MAX = 30.0        # seconds: the longest back-off before a worker is restarted
EXIT_CANNOT_START = os.EX_CONFIG   # sysexits.h: a worker that cannot start from the settings

RunWorker = Callable[[int, "sdnotify.Notifier | None"], int]


def supervise(program: str, count: int, run_worker: RunWorker, *,
              reload_settings: Callable[[], Any] | None = None,
              worker_unblock: Collection[int] = (signal.SIGCHLD,),
              logger: logging.Logger | None = None) -> int:
    """Fork `count` workers, each `run_worker(index, notifier)` (its exit status; the notifier
    reaches the parent, None when systemd is not listening), and keep them running until
    SIGTERM or SIGINT; return 0 once all have stopped (EXIT_CANNOT_START when a worker could not
    start and the daemon stopped for it). `reload_settings` runs in the parent on
    SIGHUP before the signal goes on (an exception is logged and the old settings kept).
    A worker starts with the parent's signals blocked but `worker_unblock`: those it leaves
    blocked it takes by itself (sigwait, or unblocked once its handlers are set)."""
    parent = _Parent(program, run_worker, reload_settings, frozenset(worker_unblock),
                     logger or logging.getLogger("owlery.workers"))
    try:
        for index in range(count):
            parent.spawn(index)
        parent.loop()
    finally:
        parent.close()
    return parent.status


class _Parent:
    """The supervisor's state: the workers' pids and start times, the restarts due."""

    def __init__(self, program: str, run_worker: RunWorker, reload_settings: Callable[[], Any] | None,
                 worker_unblock: frozenset[int], logger: logging.Logger):
        self.program = program
        self.run_worker = run_worker
        self.reload_settings = reload_settings
        self.worker_unblock = worker_unblock
        self.log = logger
        self.signals = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
        self.notices = sdnotify.WorkerNotices(sdnotify.Notifier.from_environ(unset=True), program)
        self.reports: socket.socket | None = None       # the parent's end of the workers' reports
        self.worker_end: socket.socket | None = None
        if self.notices.notifier.enabled:
            self._open_reports()
        signal.pthread_sigmask(signal.SIG_BLOCK, self.signals)
        self.pids: dict[int, int] = {}           # pid -> worker index
        self.started: dict[int, float] = {}      # worker index -> start time
        self.delay: dict[int, float] = {}        # worker index -> back-off before its next restart
        self.due: dict[int, float] = {}          # worker index -> when to restart it
        self.stopping = False
        self.status = 0

    def _open_reports(self) -> None:
        """The socketpair workers report on; its datagrams raise SIGIO, so the wait wakes."""
        self.reports, self.worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        fd = self.reports.fileno()
        self.reports.setblocking(False)
        fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
        self.signals.add(signal.SIGIO)

    def spawn(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:
            self._child(index)          # never returns
        self.pids[pid] = index
        self.notices.spawned(pid)
        self.started[index] = time.monotonic()
        self.log.info("%s: worker %d started (pid %d)", self.program, index, pid)

    def _child(self, index: int) -> None:
        status = 1
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self.worker_unblock)
            if self.reports is not None:
                self.reports.close()
            notifier = None if self.worker_end is None else sdnotify.Notifier(
                sock=self.worker_end, watchdog=self.notices.notifier.watchdog, to_parent=True)
            status = self.run_worker(index, notifier)
        except BaseException:  # noqa: BLE001 - a worker must never return into the parent's loop
            self.log.exception("%s: worker %d failed", self.program, index)
        finally:
            logging.shutdown()
            os._exit(status)

    def loop(self) -> None:
        while self.pids or (self.due and not self.stopping):
            info = self._wait()
            if info is not None:
                self._on_signal(info.si_signo)
            self._reap()
            self._read_reports()
            self._restart_due()

    def _wait(self) -> Any:
        """The next signal, or None when a restart falls due first."""
        if self.due and not self.stopping:
            return signal.sigtimedwait(self.signals, max(0.0, min(self.due.values()) - time.monotonic()))
        return signal.sigwaitinfo(self.signals)

    def _on_signal(self, signo: int) -> None:
        if self.stopping:
            return              # stopping: only the workers' exits matter now
        if signo in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
            self.notices.stopping()
            self.log.info("%s: signal %d: stopping %d workers", self.program, signo, len(self.pids))
            self._tell_all(signal.SIGTERM)
        elif signo == signal.SIGHUP:
            self.notices.reloading()        # READY again once every worker has reloaded
            if self.reload_settings is not None:
                try:
                    self.reload_settings()
                except Exception as e:  # noqa: BLE001 - the workers judge (and log) the file too
                    self.log.debug("%s: worker parent keeps its settings: %s", self.program, e)
            self._tell_all(signal.SIGHUP)

    def _tell_all(self, signo: int) -> None:
        for pid in self.pids:
            os.kill(pid, signo)

    def _reap(self) -> None:
        while self.pids:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            index = self.pids.pop(pid, None)
            self.notices.exited(pid)
            if index is None or self.stopping:
                continue
            if os.waitstatus_to_exitcode(status) == EXIT_CANNOT_START:
                self.log.error("%s: worker %d (pid %d) cannot start from the settings: stopping", self.program,
                               index, pid)
                self.status = EXIT_CANNOT_START
                self.stopping = True
                self.notices.stopping()
                self._tell_all(signal.SIGTERM)
                continue
            self._schedule_restart(index, pid, status)

    def _schedule_restart(self, index: int, pid: int, status: int) -> None:
        lived = time.monotonic() - self.started[index]
        self.delay[index] = 1.0 if lived > RESTART_DELAY_MAX else \
            min(RESTART_DELAY_MAX, 2 * self.delay.get(index, 0.5))
        self.due[index] = time.monotonic() + self.delay[index]
        self.log.error("%s: worker %d (pid %d) exited with status %s; restarting in %.0f s",
                       self.program, index, pid, os.waitstatus_to_exitcode(status), self.delay[index])

    def _read_reports(self) -> None:
        while self.reports is not None:
            try:
                self.notices.message(self.reports.recv(4096))
            except BlockingIOError:
                return

    def _restart_due(self) -> None:
        for index, when in list(self.due.items()):
            if not self.stopping and when <= time.monotonic():
                del self.due[index]
                self.spawn(index)

    def close(self) -> None:
        if self.reports is not None:
            self.reports.close()
