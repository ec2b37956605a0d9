"""Policy checks: the check interface, the shared context, and THE registry of checks.

Writing a check (one file per check under policyd/checks/):

    class GreylistCheck(Check):
        name = "greylist"                      # the name used in settings (policyd_checks)
        states = frozenset({"RCPT"})           # protocol_state values it can run at
        enabled_by_default = False             # opt in (True: in the default pipeline for those states)

        def __init__(self, ctx: CheckContext):
            super().__init__(ctx)
            self.store = ctx.state                 # shared services come from the context, not other checks

        async def evaluate(self, request: PolicyRequest, now: float) -> PolicyAction:
            seen = await self.ctx.run_blocking(self.store.get, key, timeout=self.ctx.settings.state_timeout)
            ...
            return defer_if_permit(GREYLISTED)   # or DUNNO, prepend(...), reject(reply)...

then add one line to `CHECKS` below. `evaluate` may be a plain function returning a
`PolicyAction` (fast path: cached answers cost no thread hop), an `async def`, or return a
Twisted Deferred. It may also return `Verdict(action, log={"delay": 12})` to add
key=value fields to the decision log line.

Rules the pipeline (policyd/pipeline.py) applies to every check:
- `now` is the reactor clock's time for this request; use it, never time.time().
- Blocking work (ldap3, pyspf, sqlite3, redis-py, file reads) goes through
  `ctx.run_blocking(fn, *args, timeout=...)`: a bounded thread pool; past `timeout`
  seconds the Deferred fails with `twisted.internet.defer.TimeoutError`; when the
  pool's queue is full it fails at once with `TemporaryFailure`.
- Raising `owlery.errors.TemporaryFailure` (or a subclass such as
  `DirectoryUnavailable`, `StateUnavailable`), or letting a `TimeoutError` escape,
  answers `DEFER_IF_PERMIT 4.3.0 ...` with the error's reply: a backend being down
  never yields a 5xx. Any other exception is a bug: the daemon logs it and
  disconnects without a reply, and Postfix applies its default action.
- A passing check returns `DUNNO` (never `OK`, which would end Postfix's restriction list).
- `PREPEND`, `WARN`, `INFO` are annotations: the pipeline goes on with the next check.
  Postfix takes one action per reply, so when every check passes the pipeline answers
  the FIRST annotation and keeps the others for the next request of the same
  `instance` on that connection (e.g. the next RCPT, or DATA if
  `smtpd_data_restrictions` calls the policy service). A PREPEND whose header name was
  already sent for this instance is dropped: a check that prepends at every RCPT gets
  one header per message. PREPEND is never sent at END-OF-MESSAGE (Postfix refuses it
  there). When a later check is decisive, its action is answered and the annotations
  of this request are dropped (the recipient is refused or deferred anyway).
- The first decisive action (anything but DUNNO/PREPEND/WARN/INFO) ends the pipeline.

Shared resources: `ctx.settings`, `ctx.clock` (IReactorTime), `ctx.directory`
(owlery.directory, cached), `ctx.resolver` (DNS resolver injected by the service or a
test; None means "build your own from settings"), `ctx.resource(name, factory)`
(one lazily built object per name shared by all checks, e.g. the state store; it is
closed with the context if it has a `close()`).
Tests: tests/policyd/test_pipeline.py, tests/policyd/test_checks_*.py
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from owlery import metrics
from owlery.errors import TemporaryFailure
from policyd.actions import PolicyAction
from policyd.protocol import PolicyRequest

log = logging.getLogger("owlery.policyd")

SHUTDOWN_WAIT = 5.0     # seconds ThreadPoolExecutor.close() waits, in all, for calls still running

# THE registry: check name -> "module:Class", in default pipeline order.
# Recipient existence first (no point greylisting a user who does not exist), then
# list protection and quota (permanent answers), then the costlier and temporary ones:
# dnsbl and spf before greylist, which reads their results (greylist_only_listed,
# greylist_skip_spf_pass) and would otherwise defer mail they refuse outright.
CHECKS: dict[str, str] = {
    "recipient": "policyd.checks.recipient:RecipientCheck",
    "lists": "policyd.checks.lists:ListsCheck",
    "quota": "policyd.checks.quota:QuotaCheck",
    "dnsbl": "policyd.checks.dnsbl:DnsblCheck",
    "spf": "policyd.checks.spf:SpfCheck",
    "greylist": "policyd.checks.greylist:GreylistCheck",
    "ratelimit": "policyd.checks.ratelimit:RateLimitCheck",
}


@dataclasses.dataclass(frozen=True)
class Verdict:
    """An action plus key=value fields for the decision log line. A DUNNO is logged at debug,
    unless `noteworthy`: then at info, as a change a postmaster looks for (a greylisted triplet
    let through at last), when no other check's action answers the request."""

    action: PolicyAction
    log: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    noteworthy: bool = False


BatchFn = Callable[[list], list]   # items -> one (ok, value-or-exception) per item, in order


class Executor:
    """Runs blocking callables off the reactor thread; returns Deferreds."""

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:  # -> Deferred
        raise NotImplementedError

    def submit_batched(self, name: str, fn: BatchFn, item: Any) -> Any:  # -> Deferred
        """Queue `item` for `fn`, which is called with every item queued meanwhile (see BatchWorker)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def _settle(d: Any, outcome: tuple[bool, Any]) -> None:
    ok, value = outcome
    if d.called:
        return          # timed out or cancelled meanwhile: the late answer is dropped
    if ok:
        d.callback(value)
    else:
        d.errback(value)


class InlineExecutor(Executor):
    """Runs the callable at once in the calling thread (tests, and backends that never block)."""

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from twisted.internet import defer
        return defer.maybeDeferred(fn, *args, **kwargs)

    def submit_batched(self, name: str, fn: BatchFn, item: Any) -> Any:
        from twisted.internet import defer
        d = defer.Deferred()
        try:
            [outcome] = fn([item])
        except Exception as e:  # noqa: BLE001 - the batch function failed as a whole
            outcome = (False, e)
        _settle(d, outcome)
        return d


class BatchWorker:
    """One dedicated thread that runs each batch function over everything queued for it since its last run.

    For a state store, this turns N concurrent decisions into one thread wake-up, one
    trip back to the reactor (one callFromThread for the whole batch) and, on Redis, one
    network round trip (pipelined scripts), instead of N of each: under load the batches
    grow by themselves, idle there is no waiting. The function comes with each item (a
    reloaded pipeline brings new ones); it must give one outcome per item (an error in
    one item must not fail the others). At most `queue_max` items wait; beyond, `submit`
    fails at once with TemporaryFailure.
    """

    def __init__(self, reactor: Any, queue_max: int, name: str):
        import queue
        self.reactor = reactor
        self.queue_max = queue_max
        self.waiting = 0            # items submitted and not yet handed back (reactor thread only)
        self._queue: Any = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"policyd-{name}", daemon=True)
        self._thread.start()

    def submit(self, fn: BatchFn, item: Any) -> Any:
        from twisted.internet import defer
        if self.waiting >= self.queue_max:
            return defer.fail(TemporaryFailure(f"state worker saturated ({self.waiting} jobs waiting)"))
        d = defer.Deferred()
        self.waiting += 1
        self._queue.put((d, fn, item))
        return d

    def _run(self) -> None:
        import queue
        get, get_nowait = self._queue.get, self._queue.get_nowait
        while True:
            jobs = [get()]
            try:
                while True:
                    jobs.append(get_nowait())
            except queue.Empty:
                pass
            stop = any(job is None for job in jobs)
            jobs = [job for job in jobs if job is not None]
            groups: dict[Any, list] = {}
            for job in jobs:
                groups.setdefault(job[1], []).append(job)
            deferreds, outcomes = [], []
            for fn, group in groups.items():
                try:
                    got = fn([item for _, _, item in group])
                    if len(got) != len(group):
                        raise RuntimeError(f"batch function gave {len(got)} outcomes for {len(group)} items")
                except Exception as e:  # noqa: BLE001 - the whole batch fails; each request answers 4xx or logs
                    got = [(False, e)] * len(group)
                deferreds += [d for d, _, _ in group]
                outcomes += got
            if deferreds:
                self.reactor.callFromThread(self._deliver, deferreds, outcomes)
            if stop:
                return

    def _deliver(self, deferreds: list, outcomes: list) -> None:
        self.waiting -= len(deferreds)
        for d, outcome in zip(deferreds, outcomes):
            _settle(d, outcome)

    def close(self, timeout: float = SHUTDOWN_WAIT) -> bool:
        """Run what is queued, then end the thread; wait at most `timeout` s. False: still busy."""
        self._queue.put(None)
        self._thread.join(timeout=timeout)
        return not self._thread.is_alive()


class ThreadPoolExecutor(Executor):
    """A bounded Twisted thread pool: `threads_max` workers, at most `queue_max` waiting jobs."""

    def __init__(self, reactor: Any, threads_max: int, queue_max: int):
        from twisted.python.threadpool import ThreadPool
        self.reactor = reactor
        self.queue_max = queue_max
        self.pending = 0
        self.pool = ThreadPool(minthreads=1, maxthreads=threads_max, name="policyd-blocking")
        # Daemon threads: a call stuck in a backend (a hung NFS read, a server that never
        # answers) must not keep the process alive after the reactor stopped.
        self.pool.threadFactory = functools.partial(threading.Thread, daemon=True)
        self.pool.start()
        self.workers: dict[str, BatchWorker] = {}

    def submit_batched(self, name: str, fn: BatchFn, item: Any) -> Any:
        worker = self.workers.get(name)
        if worker is None:
            worker = self.workers[name] = BatchWorker(self.reactor, self.queue_max, name)
        return worker.submit(fn, item)

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from twisted.internet import defer, threads
        if self.pending >= self.queue_max:
            return defer.fail(TemporaryFailure(
                f"blocking pool saturated ({self.pending} jobs waiting)"))
        self.pending += 1

        def done(result: Any) -> Any:
            self.pending -= 1
            return result
        return threads.deferToThreadPool(self.reactor, self.pool, fn, *args, **kwargs).addBoth(done)

    def close(self) -> None:
        """At shutdown: let the batch workers and the pool finish what runs, for SHUTDOWN_WAIT s in all.

        ThreadPool.stop() joins its threads without a limit, and it runs on the reactor thread
        in the daemon's shutdown: one call stuck in a backend would hold the stop until the
        service manager killed the daemon. It is stopped from a helper thread instead, waited
        for until the deadline, then left (its threads are daemon threads; tested in
        tests/policyd/test_workers_shutdown.py)."""
        deadline = time.monotonic() + SHUTDOWN_WAIT
        busy = [name for name, worker in self.workers.items()
                if not worker.close(max(0.0, deadline - time.monotonic()))]
        self.workers.clear()
        stopper = threading.Thread(target=self.pool.stop, name="policyd-pool-stop", daemon=True)
        stopper.start()
        stopper.join(max(0.0, deadline - time.monotonic()))
        if stopper.is_alive():
            busy.append("blocking pool")
        if busy:
            log.warning("policyd: still running at shutdown after %g s, not waited for: %s",
                        SHUTDOWN_WAIT, ", ".join(busy))


_BATCH_BACKENDS = {"state": "state", "state-flush": "state"}     # batch worker -> the backend it waits on


def _timed(d: Any, backend: str | None) -> Any:
    """`d`, observing how long it took to fire as `backend`'s latency (nothing while metrics are off)."""
    if backend is None or not metrics.enabled():
        return d
    started = time.perf_counter()

    def observe(result: Any) -> Any:
        metrics.BACKEND_DURATION.labels(backend).observe(time.perf_counter() - started)
        return result
    return d.addBoth(observe)


class CheckContext:
    """What every check can reach: settings, clock, blocking pool, directory, resolver, resources."""

    def __init__(self, settings: Any, clock: Any, executor: Executor, *,
                 directory: Any = None, resolver: Any = None):
        self.settings = settings
        self.clock = clock
        self.executor = executor
        self.resolver = resolver
        self._directory = directory
        # An injected directory (PolicyApp's, a test's) is its owner's to close; the context
        # closes only the one it opened itself.
        self._owns_directory = directory is None
        self._resources: dict[str, Any] = {}

    def now(self) -> float:
        return self.clock.seconds()

    def run_blocking(self, fn: Callable[..., Any], *args: Any, timeout: float, backend: str | None = None,
                     **kwargs: Any) -> Any:
        """Run fn(*args) in the bounded pool; the Deferred fails with TimeoutError after `timeout` s.
        `backend` (directory, state, dns): the wait is timed in owlery_backend_request_duration_seconds."""
        d = self.executor.submit(fn, *args, **kwargs)
        if timeout and timeout > 0:
            d.addTimeout(timeout, self.clock)
        return _timed(d, backend)

    def run_batched(self, name: str, fn: BatchFn, item: Any, *, timeout: float) -> Any:
        """Queue `item` for the batch worker `name` (one thread per name, see BatchWorker);
        `fn(items)` runs in that thread with all items queued meanwhile for the same fn;
        the Deferred fails with TimeoutError after `timeout` s. The "state" and "state-flush"
        workers wait on the state store: timed as backend "state"."""
        d = self.executor.submit_batched(name, fn, item)
        if timeout and timeout > 0:
            d.addTimeout(timeout, self.clock)
        return _timed(d, _BATCH_BACKENDS.get(name))

    @property
    def directory(self) -> Any:
        """The directory (owlery.directory.CachingDirectory), built from settings on first use."""
        if self._directory is None:
            from owlery.directory import open_directory
            self._directory = open_directory(self.settings, clock=self.now)
            self._owns_directory = True
        return self._directory

    @property
    def directory_if_open(self) -> Any:
        """The directory when one was injected or already opened, else None (opens nothing:
        for the metrics sampler, which must not connect to LDAP to count cache hits)."""
        return self._directory

    @property
    def state(self) -> Any:
        """The shared state store (owlery.state, from the state_* settings), opened on first use
        and closed with the context: greylisting and rate limits keep their entries in one store."""
        from owlery.state import open_store
        return self.resource("state", lambda: open_store(self.settings))

    def resource(self, name: str, factory: Callable[[], Any]) -> Any:
        """One shared object per name (built on first call), closed with the context."""
        if name not in self._resources:
            self._resources[name] = factory()
        return self._resources[name]

    def close(self) -> None:
        for name, res in list(self._resources.items()):
            closer = getattr(res, "close", None)
            if closer is not None:
                try:
                    closer()
                except Exception:  # noqa: BLE001 - closing must go on for the others; log it
                    log.exception("policyd: closing resource %s failed", name)
        self._resources.clear()
        if self._directory is not None and self._owns_directory:
            self._directory.close()
        self._directory = None


class Check:
    """Base class of a policy check; see the module docstring for the contract."""

    name: ClassVar[str] = ""
    states: ClassVar[frozenset[str]] = frozenset()
    enabled_by_default: ClassVar[bool] = False

    def __init__(self, ctx: CheckContext):
        self.ctx = ctx

    def evaluate(self, request: PolicyRequest,
                 now: float) -> PolicyAction | Verdict | Awaitable[PolicyAction | Verdict]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the check holds (resources from ctx.resource are closed by the context)."""


def load_check(name: str) -> type[Check]:
    """The check class registered under `name` (imports its module)."""
    try:
        target = CHECKS[name]
    except KeyError:
        raise ValueError(f"unknown check {name!r} (known: {', '.join(CHECKS)})") from None
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if cls.name != name:
        raise ValueError(f"check {target} calls itself {cls.name!r}, registered as {name!r}")
    return cls


def default_checks() -> dict[str, list[str]]:
    """protocol_state -> check names: every enabled_by_default check, in registry order."""
    out: dict[str, list[str]] = {}
    for name in CHECKS:
        cls = load_check(name)
        if not cls.enabled_by_default:
            continue
        for state in sorted(cls.states):
            out.setdefault(state, []).append(name)
    return out
