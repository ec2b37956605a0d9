"""systemd's readiness protocol (sd_notify): READY, STATUS, WATCHDOG, RELOADING, STOPPING.

A service of Type=notify finds an AF_UNIX datagram socket in $NOTIFY_SOCKET (a path, or a
Linux abstract name written with a leading '@') and sends it newline-separated KEY=VALUE
assignments; systemd takes the sender's pid from the socket credentials. With WatchdogSec=
it also sets WATCHDOG_USEC (and WATCHDOG_PID, the process meant): a service that sends no
WATCHDOG=1 for that long is killed and, with Restart=on-failure, started again. This is
that protocol written out on the standard library (no libsystemd, no new dependency).
`Notifier.from_environ(unset=True)` reads and removes the variables, so programs a daemon
starts (the LDA's sendmail, a worker process) never speak for it. Sends never block: a
datagram systemd has no room for is dropped, never waited for by the reactor.
`Heartbeat` is what a Twisted daemon runs: READY=1 once the reactor runs (its listen
sockets are bound by then), then a LoopingCall on the reactor's clock sends WATCHDOG=1 and
a STATUS line with counts every half WATCHDOG_USEC (at most STATUS_INTERVAL apart). The
ping comes from a reactor turn, so a reactor stuck in one callback stops pinging and
systemd restarts the daemon. `WorkerNotices` is the worker parent's side (NotifyAccess=main:
only the main process may speak): each worker reports READY, WATCHDOG and its counts to the
parent over a socketpair, and the parent tells systemd READY when every worker is ready and
WATCHDOG=1 only when every live worker pinged since its previous one.
Talks to: systemd's notify socket (or the worker parent). Tests: tests/core/test_sdnotify.py
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

log = logging.getLogger("owlery.sdnotify")

# STATUS is refreshed at least this often (s) even without a watchdog: `systemctl status`
# then shows counts at most this old.
STATUS_INTERVAL = 10.0
_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def socket_address(value: str) -> str:
    """The AF_UNIX address for a $NOTIFY_SOCKET value: a path, or '@name' as the abstract
    name '\\0name'. ValueError for anything else (vsock:, a relative path)."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    raise ValueError(f"NOTIFY_SOCKET={value!r}: only an absolute path or @abstract-name is supported")


def watchdog_seconds(environ: Mapping[str, str], pid: int) -> float | None:
    """The watchdog timeout meant for process `pid` (WATCHDOG_USEC when WATCHDOG_PID is
    unset or names it), or None."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and owner != str(pid):
        return None
    return int(usec) / 1e6


class Notifier:
    """Sends notify datagrams: to an address (systemd), over a connected socket (a worker to
    its parent), or nowhere (not started by systemd: every send is a no-op).

    `watchdog`: the timeout (s) the receiver enforces, None without one. `to_parent`: the
    receiver is the worker parent, which wants counts rather than a STATUS text."""

    def __init__(self, address: str | None = None, *, sock: socket.socket | None = None,
                 watchdog: float | None = None, to_parent: bool = False):
        self.address = address
        self.watchdog = watchdog
        self.to_parent = to_parent
        self._sock = sock
        self._failed = False
        if sock is None and address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        if self._sock is not None:
            self._sock.setblocking(False)

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] | None = None, *, unset: bool = False,
                     pid: int | None = None) -> Notifier:
        """The notifier $NOTIFY_SOCKET names (a no-op one when unset or unusable); `unset`
        removes the three variables afterwards, as sd_notify(unset_environment=1) does."""
        env = os.environ if environ is None else environ
        value = env.get("NOTIFY_SOCKET")
        watchdog = watchdog_seconds(env, os.getpid() if pid is None else pid)
        if unset:
            for name in _ENV:
                env.pop(name, None)
        if not value:
            return cls()
        try:
            return cls(socket_address(value), watchdog=watchdog)
        except ValueError as e:
            log.warning("sdnotify: %s; not notifying systemd", e)
            return cls()

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *assignments: str) -> bool:
        """One datagram of KEY=VALUE lines; True when it left. A failure is logged once at
        warning (then at debug, since a watchdog would repeat it every few seconds)."""
        if self._sock is None or not assignments:
            return False
        data = "\n".join(assignments).encode()
        try:
            if self.address is None:
                self._sock.send(data)
            else:
                self._sock.sendto(data, self.address)
        except OSError as e:
            log.log(logging.DEBUG if self._failed else logging.WARNING,
                    "sdnotify: cannot notify %s: %s", "the worker parent" if self.to_parent else "systemd", e)
            self._failed = True
            return False
        self._failed = False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def status_text(program: str, counts: Mapping[str, int], workers: int | None = None) -> str:
    """'policyd: 1234 decisions, 57 connections (2 open), 3 workers'."""
    parts = [f"{value} {name}" for name, value in counts.items() if name not in ("connections", "open")]
    if "connections" in counts:
        parts.append(f"{counts['connections']} connections ({counts.get('open', 0)} open)")
    elif "open" in counts:
        parts.append(f"{counts['open']} connections open")
    if workers is not None:
        parts.append(f"{workers} workers")
    return f"{program}: {', '.join(parts)}"


def encode_counts(counts: Mapping[str, int]) -> str:
    return "COUNTS=" + ",".join(f"{name}={value}" for name, value in counts.items())


def decode_counts(value: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in value.split(","):
        name, _, number = item.partition("=")
        if name and number.isdigit():
            out[name] = int(number)
    return out


class Heartbeat:
    """A Twisted daemon's notifications, driven by its reactor (`clock`: the reactor, or a
    task.Clock in tests). `counts()` gives the daemon's counters for the STATUS line."""

    def __init__(self, notifier: Notifier, program: str, counts: Callable[[], Mapping[str, int]], clock: Any):
        self.notifier = notifier
        self.program = program
        self.counts = counts
        self.clock = clock
        self._loop: Any = None
        self._status: str | None = None
        self._tag = (f"PID={os.getpid()}",) if notifier.to_parent else ()

    @property
    def interval(self) -> float:
        """Seconds between ticks: half the watchdog timeout, at most STATUS_INTERVAL. A worker
        ticks twice as often: its parent pings once all workers did, up to two of their ticks
        apart when their phases differ, and that must still be half the timeout."""
        if self.notifier.watchdog is None:
            return STATUS_INTERVAL
        return min(self.notifier.watchdog / (4 if self.notifier.to_parent else 2), STATUS_INTERVAL)

    def _status_line(self, always: bool) -> tuple[str, ...]:
        try:
            counts = dict(self.counts())
        except Exception:  # noqa: BLE001 - a broken counter must not stop the watchdog ping
            log.exception("%s: cannot read counters for the status line", self.program)
            return ()
        line = encode_counts(counts) if self.notifier.to_parent else "STATUS=" + status_text(self.program, counts)
        if line == self._status and not always:
            return ()
        self._status = line
        return (line,)

    def ready(self) -> None:
        """READY=1 (call once the reactor runs), then tick every `interval`."""
        if not self.notifier.enabled:
            return
        self.notifier.send("READY=1", *self._status_line(True), *self._tag)
        if self._loop is None:
            from twisted.internet.task import LoopingCall
            self._loop = LoopingCall(self.tick)
            self._loop.clock = self.clock
            # A tick that raised would end the loop (and the pings, and the daemon with them).
            self._loop.start(self.interval, now=False).addErrback(
                lambda f: log.error("%s: notify loop ended: %s", self.program, f.getTraceback()))

    def tick(self) -> None:
        """WATCHDOG=1 when a watchdog is on; STATUS when the counts changed."""
        lines = ("WATCHDOG=1",) if self.notifier.watchdog is not None else ()
        lines += self._status_line(self.notifier.to_parent)     # the parent wants counts with each ping
        if lines:
            self.notifier.send(*lines, *self._tag)

    def reloading(self) -> None:
        # MONOTONIC_USEC lets Type=notify-reload (systemd 253+) match this to its reload job.
        self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
                           *self._tag)

    def reloaded(self) -> None:
        self.notifier.send("READY=1", *self._status_line(True), *self._tag)

    def stopping(self) -> None:
        """STOPPING=1. The loop keeps pinging while connections drain: the watchdog still runs."""
        self.notifier.send("STOPPING=1", *self._tag)


class WorkerNotices:
    """The worker parent's bookkeeping (sans-I/O): worker pids in, systemd notifications out.

    READY=1 once every live worker said READY (at start, and again after a reload);
    WATCHDOG=1 each time every live worker has pinged since the previous WATCHDOG=1, so one
    wedged worker stops the pings of the whole service and systemd restarts it; STATUS with
    the sum of the workers' counts (those of exited workers kept, so totals never go back)."""

    def __init__(self, notifier: Notifier, program: str):
        self.notifier = notifier
        self.program = program
        self.live: set[int] = set()
        self.waiting: set[int] = set()      # live workers not READY since start or the last reload
        self.pinged: set[int] = set()       # live workers that pinged since our last WATCHDOG=1
        self.counts: dict[int, dict[str, int]] = {}
        self.retired: dict[str, int] = {}
        self.ready_sent = False
        self.reload_pending = False
        self._status: str | None = None

    def spawned(self, pid: int) -> None:
        self.live.add(pid)
        if not self.ready_sent or self.reload_pending:
            self.waiting.add(pid)

    def exited(self, pid: int) -> None:
        self.live.discard(pid)
        self.waiting.discard(pid)
        self.pinged.discard(pid)
        for name, value in self.counts.pop(pid, {}).items():
            if name != "open":
                self.retired[name] = self.retired.get(name, 0) + value
        self._check()

    def reloading(self) -> None:
        self.reload_pending = True
        self.waiting = set(self.live)
        self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.notifier.send("STOPPING=1")

    def status(self) -> str:
        total = dict(self.retired)
        for counts in self.counts.values():
            for name, value in counts.items():
                total[name] = total.get(name, 0) + value
        total.setdefault("open", 0)
        return "STATUS=" + status_text(self.program, total, len(self.live))

    def message(self, data: bytes) -> None:
        """One datagram from a worker (the lines Heartbeat sends with PID=)."""
        fields = dict(line.partition("=")[::2] for line in data.decode(errors="replace").splitlines())
        pid = int(fields["PID"]) if fields.get("PID", "").isdigit() else None
        if pid is None or pid not in self.live:
            return          # a worker already reaped, or not ours
        if "COUNTS" in fields:
            self.counts[pid] = decode_counts(fields["COUNTS"])
        if fields.get("READY") == "1":
            self.waiting.discard(pid)
        if fields.get("WATCHDOG") == "1":
            self.pinged.add(pid)
        self._check()

    def _check(self) -> None:
        if self.live and not self.waiting and (not self.ready_sent or self.reload_pending):
            self.ready_sent, self.reload_pending = True, False
            self._status = self.status()
            self.notifier.send("READY=1", self._status)
        if self.notifier.watchdog is not None and self.live and self.live <= self.pinged:
            self.pinged.clear()
            status = self.status()
            self.notifier.send("WATCHDOG=1", *((status,) if status != self._status else ()))
            self._status = status
        elif self.ready_sent and self.notifier.watchdog is None and self.status() != self._status:
            self._status = self.status()
            self.notifier.send(self._status)


class ProbeWatch:
    """The notifications of a daemon without a reactor (the milter: libmilter's own accept loop
    and threads). A thread calls `probe(timeout)`, which must talk to the daemon through its
    listen socket as a client would and raise OSError when it gets no answer: READY=1 after
    the first answer, then, with a watchdog, one probe per `interval` and WATCHDOG=1 only
    after an answer. Without a watchdog it probes once and then only refreshes STATUS.
    After `stopping()` (the listen socket is shut down to drain) it pings without probing.

    What a ping proves is what the probe proves (see the caller); nothing about the threads
    already busy with a message."""

    def __init__(self, notifier: Notifier, program: str, probe: Callable[[float], None],
                 counts: Callable[[], Mapping[str, int]], *, retry: float = 0.05):
        import threading

        self.notifier = notifier
        self.program = program
        self.probe = probe
        self.counts = counts
        self.retry = retry
        self.ready = False
        self._stopping = False
        self._failing = False
        self._status: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{program}-sdnotify", daemon=True)

    @property
    def interval(self) -> float:
        if self.notifier.watchdog is None:
            return STATUS_INTERVAL
        return min(self.notifier.watchdog / 2, STATUS_INTERVAL)

    def start(self) -> None:
        if self.notifier.enabled:
            self._thread.start()

    def stop(self) -> None:
        self._done.set()

    def _status_line(self, always: bool) -> tuple[str, ...]:
        try:
            line = "STATUS=" + status_text(self.program, self.counts())
        except Exception:  # noqa: BLE001 - a broken counter must not stop the watchdog ping
            log.exception("%s: cannot read counters for the status line", self.program)
            return ()
        if line == self._status and not always:
            return ()
        self._status = line
        return (line,)

    def check(self) -> bool:
        """One probe; False (logged once per run of failures) when the daemon did not answer."""
        try:
            self.probe(min(5.0, self.interval / 2))
        except OSError as e:
            if self.ready and not self._failing:
                log.warning("%s: watchdog probe got no answer: %s; not pinging systemd", self.program, e)
            self._failing = True
            return False
        if self._failing and self.ready:
            log.info("%s: watchdog probe answered again", self.program)
        self._failing = False
        return True

    def tick(self) -> None:
        """What one turn of the thread does (tests call it directly)."""
        if not self.ready:
            if self.check():
                self.ready = True
                self.notifier.send("READY=1", *self._status_line(True))
            return
        lines: tuple[str, ...] = ()
        if self.notifier.watchdog is not None and (self._stopping or self.check()):
            lines = ("WATCHDOG=1",)
        lines += self._status_line(False)
        if lines:
            self.notifier.send(*lines)

    def _run(self) -> None:
        while not self._done.is_set():
            self.tick()
            self._done.wait(self.interval if self.ready else self.retry)

    def reloading(self) -> None:
        self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def reloaded(self) -> None:
        self.notifier.send("READY=1", *self._status_line(True))

    def stopping(self) -> None:
        self._stopping = True
        self.notifier.send("STOPPING=1")
