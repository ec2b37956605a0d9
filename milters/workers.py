"""Milter worker processes (`milter_workers` > 1): several libmilters on one listen socket.

libmilter runs once per process and every callback of ours holds the GIL, so one milter
process tops out at about one core. With milter_workers > 1 the adapter binds the socket
as before, drops privileges and hands `supervise()` a function that runs one worker; the
parent forks that many. Each worker runs its own libmilter on the inherited descriptor
(`fd:N`: the same socket, unix or TCP, made non-blocking so that the workers that lose the
race for a connection get EAGAIN, which libmilter's accept loop skips), with its own stage
pipeline, DNS cache and DKIM key cache; the quarantine store is shared through its backend
(directory files with their SQLite index, or PostgreSQL).
The parent (owlery.workers, the supervisor the Twisted daemons use too) never runs libmilter
and starts no thread (a fork copies only the forking thread). It supervises: SIGHUP and SIGTERM/SIGINT go on to every worker (each reloads, or
drains, by itself), a worker that dies is started again with back-off, and once all have
stopped after SIGTERM the adapter removes the unix socket. Under systemd only the parent
speaks (NotifyAccess=main): workers report READY and WATCHDOG over a socketpair
(`WorkerBeat`) and owlery.sdnotify.WorkerNotices says READY=1 once every worker is ready.
Talks to: the OS (fork, signals), through owlery.workers. Tests: tests/milters/test_milter_workers.py
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

from owlery import sdnotify
from owlery import workers as core

log = logging.getLogger("owlery.milter")


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
    running until SIGTERM or SIGINT; return 0 once all have stopped (owlery.workers).
    `reload_settings` runs in the parent on SIGHUP before the signal goes on (new settings for
    workers started later; an exception is logged and the old ones kept). A worker keeps
    SIGTERM, SIGINT and SIGHUP blocked: the adapter's signal loop takes them."""
    return core.supervise("milter", count, run_worker, reload_settings=reload_settings,
                          worker_unblock=(signal.SIGCHLD,), logger=log)
