"""pymilter adapter: the ONLY module that imports Milter; translates callbacks to MilterSession.

It opens the listen socket itself (so TCP sockets get TCP_NODELAY and unix sockets their
mode; libmilter takes it as `fd:N`), runs libmilter (one thread per connection), feeds
each callback to a `milters.session.MilterSession` and applies the `Outcome` at
end-of-message. It decides nothing: any exception becomes TEMPFAIL with a log line.
libmilter can run only once per process; SIGTERM/SIGINT stop it after open messages
finish. SIGHUP re-reads the settings file: a valid one gives NEW connections a new stage
pipeline (open ones finish with the old, closed when its last connection ends); a bad
one is logged and the old settings kept. libmilter's own signal thread sigwaits for
SIGHUP, SIGTERM and SIGINT too and would stop the milter by itself, so the main thread
keeps all three unblocked with handlers (SIGHUP's with SA_NODEFER) and every other thread
blocks them: Linux hands a process signal to the main thread first when it can take it
(see _run_until_signal for the start-up window).
With `milter_metrics_listen` set it serves Prometheus' /metrics from one thread (no reactor
runs here) and counts each end-of-message (`count_message`, from what the session measured).
Under systemd (Type=notify) a thread of owlery.sdnotify.ProbeWatch negotiates with the milter
through its own listen socket, as Postfix would (`negotiate_probe`): READY=1 after the first
answer, and, with WatchdogSec=, WATCHDOG=1 only after each answer. An answer proves that
libmilter's accept loop runs, that it can start a connection thread, and that Python code
runs in it (pymilter creates our OwleryMilter at negotiation); it proves nothing about the
threads already busy with a message (a stage stuck on a scanner is bounded by its own
timeouts, not by this watchdog).
With `milter_workers` > 1 (milters.workers) this process binds the socket, drops privileges
and forks that many workers, each running libmilter on the shared socket with its own
pipeline and DNS cache (`stage_resolver`); worker 0 serves /metrics summed over all
workers' files; the parent removes the unix socket at exit and tells systemd READY=1 once
every worker runs (workers report to it, not to systemd).

SECURITY: trusts Postfix's macros ({auth_authen}, client address) to say who the client
is: whoever can reach the milter socket can pose as an authenticated local sender and
have mail DKIM-signed, so listen on a unix socket (group postfix, 0660) or loopback only,
and keep milter_internal_networks narrow. The message itself is hostile input: MIME and
archives are walked under budgets, scanners get bounded streams. Runs as `daemon_user`;
reads the DKIM keys (0600/0640, refused when readable by others) and writes only the
quarantine.
Talks to: Postfix (milter protocol via libmilter). Tests: tests/milters/test_auth_stages.py and
tests/milters/test_content_stages.py (OwleryMilter driven with milters.testing's fake context),
tests/milters/test_miltertest.py (a real process driven by miltertest),
tests/milters/test_milter_stop.py (SIGINT and SIGTERM together),
tests/milters/test_milter_reload.py (SIGHUP: new settings for new connections),
tests/milters/test_milter_workers.py (milter_workers = 2),
tests/e2e/test_metrics_e2e.py (/metrics after miltertest traffic).
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import Milter

from owlery import metrics, sdnotify
from owlery.endpoints import ListenEndpoint, clear_stale_socket, parse_endpoint
from owlery.reply import Reply

from milters import effects as fx
from milters import macros as macro_lists
from milters import settings as _declared  # noqa: F401 - milter_listen & co., declared light
from milters.session import MACROS, MilterSession

log = logging.getLogger("owlery.milter")

# Actions we may take; telling libmilter lets the MTA skip what we never do.
ACTION_FLAGS = Milter.ADDHDRS | Milter.CHGHDRS | Milter.QUARANTINE | Milter.DELRCPT | Milter.SETSYMLIST

# The macro lists asked for at negotiation, and read at the other steps: milters.macros.
_CONNECT_MACROS = macro_lists.NEGOTIATED["connect"]
_MAIL_MACROS = macro_lists.NEGOTIATED["mail"]
_EOM_MACROS = macro_lists.NEGOTIATED["end_of_data"]
_RCPT_MACROS = macro_lists.FROM_POSTFIX_DEFAULTS["rcpt"]
_DATA_MACROS = macro_lists.FROM_POSTFIX_DEFAULTS["data"]


def _milter_reply(reply: Reply) -> tuple[str, str, str]:
    # libmilter drops a reply with a single '%': double them.
    return str(reply.code), reply.dsn, reply.text.replace("%", "%%")


class Generation:
    """One configuration: settings, their stage pipeline, and how many connections use it."""

    __slots__ = ("settings", "pipeline", "users", "retired")

    def __init__(self, settings: Any, pipeline: Any):
        self.settings = settings
        self.pipeline = pipeline
        self.users = 0
        self.retired = False


def _close_pipeline(pipeline: Any) -> None:
    try:
        pipeline.close()
    except Exception:   # a stage that fails to close must not stop the milter
        log.exception("milter: closing the stages of old settings failed")


class Configurations:
    """What a new connection gets: the current Generation, replaced whole (under the lock)
    by `swap()` on reload. A connection holds its generation from start to close; a
    retired generation's pipeline is closed when its last connection ends."""

    def __init__(self, settings: Any, pipeline: Any):
        self._lock = threading.Lock()
        self._current = Generation(settings, pipeline)
        self._retired: list[Generation] = []

    @property
    def current(self) -> Generation:
        return self._current

    def acquire(self) -> Generation:
        with self._lock:
            generation = self._current
            generation.users += 1
            return generation

    def release(self, generation: Generation) -> None:
        with self._lock:
            generation.users -= 1
            done = generation.retired and generation.users == 0 and generation in self._retired
            if done:
                self._retired.remove(generation)
        if done:
            log.debug("milter: last connection of the old settings ended; closing their stages")
            _close_pipeline(generation.pipeline)

    def swap(self, settings: Any, pipeline: Any) -> None:
        """New connections get `settings` and `pipeline` from now on."""
        new = Generation(settings, pipeline)
        with self._lock:
            old, self._current = self._current, new
            old.retired = True
            idle = old.users == 0
            if not idle:
                self._retired.append(old)
        if idle:
            _close_pipeline(old.pipeline)

    def retired_in_use(self) -> int:
        with self._lock:
            return len(self._retired)

    def close(self) -> None:
        """At exit: close every pipeline, in use or not."""
        with self._lock:
            generations = [self._current, *self._retired]
            self._retired.clear()
        for generation in generations:
            _close_pipeline(generation.pipeline)


class OwleryMilter(Milter.Base):
    """One instance per milter connection (libmilter thread). `make_factory()` sets the class
    attribute `configurations`; each instance takes the current settings and pipeline when
    libmilter creates it and keeps them until close, whatever a reload swaps in meanwhile."""

    configurations: Configurations
    _active = 0
    _messages = 0            # end-of-messages seen, for the systemd STATUS line
    _active_lock = threading.Lock()

    def __init__(self) -> None:
        self._generation: Generation | None = self.configurations.acquire()
        self.settings = self._generation.settings
        self.pipeline = self._generation.pipeline
        self.session = MilterSession(self.settings, self.pipeline, progress=self._progress)
        self._error: str | None = None     # a failure in a no-reply callback, reported at EOM
        self._counted = False

    @classmethod
    def active_connections(cls) -> int:
        return OwleryMilter._active

    def _count(self, delta: int) -> None:
        with OwleryMilter._active_lock:
            OwleryMilter._active += delta

    # --- negotiation -------------------------------------------------------------
    def setsymlist(self, stage: int, *macros: str) -> Any:
        """As Milter.Base.setsymlist, but hands the C context the str it takes: pymilter
        1.0.5's passes bytes, the TypeError made Base.negotiate fall back to ALL_OPTS (no
        no-reply steps, no P_HDR_LEADSPC, no macro lists) and Postfix then waited for an
        answer to every step and every header (tests/milters/test_miltertest.py::
        test_negotiation_asks_for_no_replies_leading_spaces_and_macro_lists)."""
        if not self._actions & Milter.SETSYMLIST:
            raise Milter.DisabledAction("SETSYMLIST")
        if len(macros) > 5:
            raise ValueError("setsymlist limited to 5 macros by MTA")
        return self._ctx.setsymlist(stage, " ".join(macros))

    def negotiate(self, opts: list[int]) -> int:
        code = super().negotiate(opts)
        if code != Milter.CONTINUE:
            # Base.negotiate hides why; everything still works, at a round trip per step.
            log.warning("milter: protocol negotiation failed: every step answers the MTA")
        return code

    # --- helpers -----------------------------------------------------------------
    def _macros(self, names: tuple[str, ...] = MACROS) -> dict[str, str]:
        out = {}
        for name in names:
            value = self.getsymval(name)
            if value is not None:
                out[name] = value
        return out

    def _progress(self) -> None:
        try:
            self.progress()
        except Exception:   # progress is a courtesy; a failure here must not fail the message
            log.debug("milter: progress failed", exc_info=True)

    def _guard(self, what: str, func: Any, *args: Any) -> int:
        try:
            func(*args)
            return Milter.CONTINUE
        except Exception:
            log.exception("milter: internal error in %s", what)
            self._error = what
            return Milter.CONTINUE   # noreply callbacks cannot answer; EOM tempfails

    # --- callbacks (no reply: the MTA does not wait for them) ---------------------
    @Milter.noreply
    @Milter.symlist(*_CONNECT_MACROS)
    def connect(self, hostname: str, family: int, hostaddr: Any) -> int:
        if not self._counted:
            self._counted = True
            self._count(1)
        address = None
        if family in (socket.AF_INET, socket.AF_INET6) and hostaddr:
            address = hostaddr[0]
        return self._guard("connect", self.session.connect, hostname, address, self._macros())

    @Milter.noreply
    def hello(self, hostname: str) -> int:
        return self._guard("helo", self.session.helo, hostname, {})

    @Milter.noreply
    @Milter.symlist(*_MAIL_MACROS)
    def envfrom(self, mailfrom: str, *params: str) -> int:
        self._error = None
        return self._guard("mail", self.session.mail_from, mailfrom, params, self._macros())

    @Milter.noreply
    def envrcpt(self, rcpt: str, *params: str) -> int:
        return self._guard("rcpt", self.session.rcpt, rcpt, params, self._macros(_RCPT_MACROS))

    def data(self) -> int:
        # Answered on purpose (no @noreply), like the end of message: Postfix writes the
        # first header right after DATA, and without an answer in between its Nagle
        # algorithm holds that write until our kernel's delayed ACK, ~40 ms per message
        # (one SMTP session: 22 instead of 340 messages/s). Queue id `i` is known here.
        return self._guard("data", self.session.data, self._macros(_DATA_MACROS))

    @Milter.noreply
    @Milter.decode("bytes")
    def header(self, name: str, value: bytes) -> int:
        if self._protocol & Milter.P_HDR_LEADSPC == 0:
            # Without the leading-space extension the MTA stripped one space.
            value = b" " + value
        return self._guard("header", self.session.header, name, value)

    @Milter.noreply
    def body(self, chunk: bytes) -> int:
        return self._guard("body", self.session.body, chunk)

    @Milter.symlist(*_EOM_MACROS)
    def eom(self) -> int:
        with OwleryMilter._active_lock:
            OwleryMilter._messages += 1
        try:
            if self._error is not None:
                raise RuntimeError(f"earlier failure in {self._error}")
            outcome = self.session.end_of_message(self._macros(_EOM_MACROS))
            count_message(self.session, outcome.action, outcome.symbols)
            return self._apply(outcome)
        except Exception:
            log.exception("milter: internal error at end-of-message; tempfail")
            metrics.MILTER_MESSAGES.labels(fx.TEMPFAIL).inc()
            self.session.abort()
            try:
                self.setreply(*_milter_reply(fx.REPLY_TEMPFAIL))
            except Exception:
                log.debug("milter: setreply failed", exc_info=True)
            return Milter.TEMPFAIL
        finally:
            self._error = None

    def abort(self) -> int:
        self.session.abort()
        self._error = None
        return Milter.CONTINUE

    def close(self) -> int:
        if self._counted:
            self._counted = False
            self._count(-1)
        try:
            self.session.close()
        finally:
            generation, self._generation = self._generation, None
            if generation is not None:
                self.configurations.release(generation)
        return Milter.CONTINUE

    # --- applying the outcome ------------------------------------------------------
    def _value(self, value: str) -> str:
        # With P_HDR_LEADSPC the MTA takes our value verbatim: supply the space.
        return " " + value if self._protocol & Milter.P_HDR_LEADSPC else value

    def _apply(self, outcome: fx.Outcome) -> int:
        if outcome.action == fx.TEMPFAIL:
            self.setreply(*_milter_reply(outcome.reply or fx.REPLY_TEMPFAIL))
            return Milter.TEMPFAIL
        if outcome.action == fx.REJECT:
            assert outcome.reply is not None
            self.setreply(*_milter_reply(outcome.reply))
            return Milter.REJECT
        if outcome.action == fx.DISCARD:
            return Milter.DISCARD
        for effect in outcome.effects:
            if isinstance(effect, fx.AddHeader):
                index = -1 if effect.index is None else effect.index
                self.addheader(effect.name, self._value(effect.value), index)
            elif isinstance(effect, fx.ChangeHeader):
                value = None if effect.value is None else self._value(effect.value)
                self.chgheader(effect.name, effect.occurrence, value)
            elif isinstance(effect, fx.Hold):
                self.quarantine(effect.reason)
            elif isinstance(effect, fx.DelRcpt):
                # In the form envrcpt gave it (<addr>); Postfix matches the original RCPT TO.
                self.delrcpt(f"<{effect.address}>")
        return Milter.ACCEPT


def count_message(session: MilterSession, action: str, symbols: Any) -> None:
    """Count one end-of-message in the metrics (no-ops while they are off): the action, the
    symbols, the size, each stage's time (and its backend's), each stage's backend failure."""
    metrics.MILTER_MESSAGES.labels(action).inc()
    for symbol in symbols:
        metrics.MILTER_SYMBOLS.labels(symbol.stage or "none", symbol.name).inc()
    metrics.MILTER_MESSAGE_SIZE.observe(session.last_size)
    for stage, seconds in session.last_timings:
        metrics.MILTER_STAGE_DURATION.labels(stage).observe(seconds)
        backend = metrics.STAGE_BACKENDS.get(stage)
        if backend is not None:
            metrics.BACKEND_DURATION.labels(backend).observe(seconds)
    for stage in session.last_errors:
        metrics.MILTER_STAGE_ERRORS.labels(stage).inc()
        metrics.BACKEND_ERRORS.labels(metrics.STAGE_BACKENDS.get(stage, stage)).inc()


def quarantine_totals(settings: Any) -> list[tuple[tuple[str, ...], float]]:
    """(messages, bytes) in the quarantine store, from the directory store's SQLite index
    (read-only, one query) or the PostgreSQL table (one count): for the owlery_quarantine_*
    gauges (owlery.metrics.Cached reads it at most once a minute)."""
    import sqlite3
    if settings.quarantine_backend == "postgresql":
        from owlery.quarantine import open_store
        store = open_store(settings)
        try:
            count, size = store.totals()
        finally:
            store.close()
        return [((), float(count)), ((), float(size))]
    index = os.path.join(settings.quarantine_directory, "index.sqlite3")
    if not os.path.exists(index):
        return []
    db = sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=1.0)
    try:
        count, size = db.execute("SELECT count(*), coalesce(sum(size), 0) FROM messages").fetchone()
    finally:
        db.close()
    return [((), float(count)), ((), float(size))]


def _start_metrics(settings: Any) -> Callable[[], None] | None:
    """Serve /metrics when milter_metrics_listen is set: bound now (before the privilege drop),
    served from one thread (libmilter owns the main loop). Returns the stop function."""
    from owlery.daemon import bind_socket
    endpoint = metrics.endpoint_for(settings, "milter")
    if endpoint is None:
        return None
    stop = _serve_metrics(settings, bind_socket(endpoint))
    log.info("milter: metrics on http://%s/metrics", str(endpoint).removeprefix("tcp:"))
    return stop


def _serve_metrics(settings: Any, sock: socket.socket) -> Callable[[], None]:
    """Turn metrics on and serve /metrics on the bound socket `sock` from one thread (with
    workers: in worker 0, summing every worker's files); returns the stop function."""
    metrics.enable()
    # This thread serves nothing else: the first scrape may wait for the first count.
    totals = metrics.Cached(lambda: quarantine_totals(settings), "quarantine",
                            first_wait=settings.quarantine_db_timeout)
    metrics.add_gauge_source(metrics.QUARANTINE_MESSAGES, lambda: totals()[:1])
    metrics.add_gauge_source(metrics.QUARANTINE_SIZE, lambda: totals()[1:])
    return metrics.serve_in_thread(sock)


# Ask for the raw header values (leading whitespace kept) for exact DKIM canonicalisation.
Milter.enable_protocols(OwleryMilter, Milter.P_HDR_LEADSPC)


def make_factory(settings: Any, pipeline: Any) -> type[OwleryMilter]:
    """A subclass bound to this configuration (libmilter calls it with no arguments);
    `factory.configurations.swap()` changes what its new instances get."""
    return type("ConfiguredOwleryMilter", (OwleryMilter,),
                {"configurations": Configurations(settings, pipeline)})


def open_listener(endpoint: ListenEndpoint, backlog: int) -> socket.socket:
    """Bind and listen; TCP gets TCP_NODELAY (inherited by accepted sockets), unix its mode."""
    if endpoint.kind == "tcp":
        family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # libmilter never sets it; without it Nagle's algorithm holds each small reply until
        # Postfix's delayed ACK, ~40 ms per message.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((endpoint.host, endpoint.port))
    elif endpoint.kind == "unix":
        os.makedirs(os.path.dirname(endpoint.path), exist_ok=True)
        clear_stale_socket(endpoint.path)   # a previous run's socket, never a file or a live one
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(endpoint.path)
        finally:
            os.umask(old)
        os.chmod(endpoint.path, endpoint.mode)
    else:
        from owlery.daemon import systemd_fd
        sock = socket.socket(fileno=systemd_fd(endpoint.name))
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    sock.listen(backlog)
    return sock


def _libmilter_sigwaits(main_tid: int) -> tuple[bool, bool]:
    """(whether another thread of ours, libmilter's signal thread, sleeps in sigwait now;
    whether /proc showed any kernel symbol, without which it cannot tell)."""
    symbols = False
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return False, False
    for tid in tids:
        if tid == str(main_tid):
            continue
        try:
            with open(f"/proc/self/task/{tid}/wchan") as f:
                wchan = f.read()
        except OSError:
            continue
        if "sigtimedwait" in wchan:
            return True, True
        symbols = symbols or wchan not in ("", "0")     # "0": running, or symbols hidden
    return False, symbols


def _no_defer(signum: int) -> bool:
    """Add SA_NODEFER to the handler installed for `signum` (glibc on x86_64 or aarch64, where
    struct sigaction is handler, 128-byte mask, int flags, restorer); False where not done.

    Without it the kernel blocks the signal in this thread while the handler runs, and one
    more sent then goes to a thread that waits for it: libmilter's, which stops the milter.
    CPython's C handler only sets flags, so running it nested is safe."""
    import ctypes
    import platform
    import sys

    if sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"):
        return False

    class Sigaction(ctypes.Structure):
        _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16),
                    ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]

    sa_nodefer = 0x40000000
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        act = Sigaction()
        if libc.sigaction(signum, None, ctypes.byref(act)) != 0:
            return False
        act.flags |= sa_nodefer
        if libc.sigaction(signum, ctypes.byref(act), None) != 0:
            return False
        check = Sigaction()
        return libc.sigaction(signum, None, ctypes.byref(check)) == 0 and bool(check.flags & sa_nodefer)
    except (OSError, AttributeError):
        return False


def negotiate_probe(family: int, address: Any, timeout: float) -> None:
    """Negotiate with the milter at `address` as an MTA would (SMFIC_OPTNEG, protocol 6),
    then quit; OSError when it does not answer with its own SMFIC_OPTNEG within `timeout`."""
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        probe.connect(address)
        probe.sendall(struct.pack("!IcIII", 13, b"O", 6, 0x1FF, 0))
        head = b""
        while len(head) < 5:
            chunk = probe.recv(5 - len(head))
            if not chunk:
                raise ConnectionError("the milter closed the connection without negotiating")
            head += chunk
        if head[4:5] != b"O":
            raise ConnectionError(f"the milter answered {head[4:5]!r} to a negotiation")
        probe.sendall(struct.pack("!Ic", 1, b"Q"))


def _probe_address(sock: socket.socket) -> Any:
    """Where a client reaches `sock`: its own address, loopback for a wildcard one."""
    address = sock.getsockname()
    if sock.family == socket.AF_INET and address[0] == "0.0.0.0":
        return ("127.0.0.1", address[1])
    if sock.family == socket.AF_INET6 and address[0] == "::":
        return ("::1", *address[1:])
    return address


DNS_CACHE_SIZE = 50_000        # answers kept per process (dnspython's LRU cache, TTL-bound)


def stage_resolver(settings: Any) -> Any:
    """The stages' resolver: owlery.dns's, with an answer cache of this process (each worker has
    its own). A busy MX sees the same sender domains again and again: without it every message
    cost three round trips (SPF, DKIM key, DMARC record) and their parsing, about half of the
    milter's CPU per message. Answers live no longer than their TTL."""
    import dns.resolver

    from owlery.dns import build_resolver
    resolver = build_resolver(settings)
    resolver.cache = dns.resolver.LRUCache(DNS_CACHE_SIZE)
    return AnswerMemo(resolver)


class AnswerMemo:
    """The stage resolver's front: what `resolve()` returned for the same arguments, until that
    answer's expiration, in one dict lookup. dnspython's cache (behind it, which holds the very
    same Answer objects until the same time) still builds a query name, a resolution and a cache
    key per hit: about 10 us a lookup, three lookups a message. Errors (NXDOMAIN, timeouts) are
    not remembered here: they go to the resolver each time. Every other attribute is the
    resolver's."""

    def __init__(self, resolver: Any, size: int = DNS_CACHE_SIZE, clock: Callable[[], float] = time.time):
        self.resolver = resolver
        self._answers: dict[Any, Any] = {}
        self._size = size
        self._clock = clock

    def resolve(self, qname: Any, rdtype: Any = "A", *args: Any, lifetime: Any = None, **kwargs: Any) -> Any:
        try:
            key = (qname, rdtype, args, tuple(sorted(kwargs.items())))
            answer = self._answers.get(key)
        except TypeError:        # an unhashable argument: no memo
            return self.resolver.resolve(qname, rdtype, *args, lifetime=lifetime, **kwargs)
        if answer is not None and answer.expiration > self._clock():
            return answer
        answer = self.resolver.resolve(qname, rdtype, *args, lifetime=lifetime, **kwargs)
        if isinstance(getattr(answer, "expiration", None), (int, float)):
            if len(self._answers) >= self._size:
                self._answers.clear()
            self._answers[key] = answer
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.resolver, name)


def _drain(seconds: float) -> None:
    """Wait up to `seconds` for the open connections to end."""
    deadline = time.monotonic() + seconds
    while OwleryMilter.active_connections() and time.monotonic() < deadline:
        time.sleep(0.05)
    if OwleryMilter.active_connections():
        log.warning("milter: %d connections still open at exit", OwleryMilter.active_connections())


_STOP_POLL = 0.05     # seconds between looks at the stop and reload flags


def _run_until_signal(sock: socket.socket, mta_timeout: int, drain_seconds: Callable[[], float],
                      reload: Callable[[bool], None] | None = None, watch: Any = None) -> None:
    """Run libmilter in a thread; stop promptly on SIGTERM/SIGINT after open messages finish;
    call `reload(False)` (in this, the main thread) on SIGHUP.

    libmilter's own signal thread sigwaits for SIGHUP, SIGTERM and SIGINT and stops on any
    of them; blocking a signal does not keep it from a thread in sigwait. So this thread
    leaves SIGHUP unblocked with a handler and every other thread blocks it: Linux gives a
    process signal to the main thread whenever it does not block it, and libmilter's thread,
    asleep in sigwait, is not woken. Only while that thread starts could it take a SIGHUP
    on its way to us: SIGHUP is ignored (discarded, never pending) until /proc shows it
    asleep, and `reload(True)` then loads the settings if the file changed meanwhile.
    SIGTERM and SIGINT stay unblocked here for the whole run, with a handler that only
    notes them (one pending since start-up, as when a worker is stopped while it builds its
    stages, arrives at once), and this thread waits in short sleeps: the kernel then gives a
    stop signal to this thread, not to libmilter's. (Blocked here and taken with sigtimedwait,
    as before, a signal that came between two waits went to libmilter's thread, which stops
    libmilter by itself; an open message then got no answer: pymilter clears its interpreter
    when smfi_main returns. tests/milters/test_milter_workers.py::
    test_sigterm_drains_open_messages_stops_all_workers_and_removes_the_socket, under load.)
    Only a stop signal that comes while this thread has another one pending and is not
    running can still reach libmilter's thread; it then stops by itself after its ~5 s poll
    timeout and the worker thread ends: either way the milter stops.
    """
    import signal

    stop_signals = {signal.SIGTERM, signal.SIGINT}
    hup = {signal.SIGHUP}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals | hup)   # serve() blocked them already
    if watch is not None:
        watch.start()       # now: its thread inherits this mask, so SIGHUP never goes to it
    failure: list[BaseException] = []
    reload_requested = [False]      # a plain flag: the handler may run inside any code of this thread

    def on_hup(signum: int, frame: Any) -> None:
        reload_requested[0] = True   # handled by the loop below, not inside whatever was interrupted

    stop_seen: list[int] = []

    def on_stop(signum: int, frame: Any) -> None:
        stop_seen.append(signum)

    def run() -> None:
        # Before libmilter starts its signal thread, which inherits this mask (libmilter blocks
        # the three signals here too): only the main thread may take SIGHUP.
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals | hup)
        try:
            Milter.runmilter("owlery", f"fd:{sock.fileno()}", mta_timeout, rmsock=False)
        except BaseException as e:  # noqa: BLE001  (reported by the main thread)
            failure.append(e)

    # Ignored, and unblocked here: a SIGHUP is dropped when sent, so none can be pending
    # (a pending one from start-up is dropped too) when libmilter's thread enters sigwait.
    old_handler = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, hup)
    worker = threading.Thread(target=run, name="libmilter", daemon=True)
    old_stop = {signum: signal.signal(signum, on_stop) for signum in stop_signals}
    stopping = False
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)    # see the docstring
        if not stop_seen:
            worker.start()
        main_tid = threading.get_native_id()
        started = time.monotonic()
        symbols_seen = False
        while worker.is_alive() and not stop_seen and time.monotonic() < started + 2.0:
            asleep, symbols = _libmilter_sigwaits(main_tid)
            symbols_seen = symbols_seen or symbols
            if asleep:
                break
            if not symbols_seen and time.monotonic() > started + 0.1:
                break       # /proc cannot tell: libmilter's thread got there long ago
            time.sleep(0.002)
        signal.signal(signal.SIGHUP, on_hup)
        if not _no_defer(signal.SIGHUP):
            log.debug("milter: SA_NODEFER not set for SIGHUP; a burst of SIGHUPs may stop the milter")
        reload_requested[0] = False     # one that came meanwhile: the file is read below
        if reload is not None and worker.is_alive() and not stop_seen:
            reload(True)            # a SIGHUP dropped while we started
        while worker.is_alive() or stop_seen:
            if reload_requested[0]:
                reload_requested[0] = False
                if reload is not None:
                    reload(False)
            if not stop_seen:
                time.sleep(_STOP_POLL)      # a signal runs on_stop at once; seen within this time
            received = stop_seen[0] if stop_seen else None
            if received is not None:
                stopping = True
                if watch is not None:
                    watch.stopping()
                log.info("milter: signal %d: stopping (%d connections open)", received,
                         OwleryMilter.active_connections())
                # No new connections. smfi_stop() would block until libmilter's next
                # poll timeout (~5 s); we need not wait for that, only for the messages
                # in progress: the process exits with libmilter's threads.
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                _drain(drain_seconds())
                break
        if not stopping and OwleryMilter.active_connections():
            # libmilter ended by itself (its signal thread took a stop signal): its connection
            # threads go on (smfi_stop lets them finish); the process must not end under them.
            log.info("milter: libmilter stopped; %d connections open", OwleryMilter.active_connections())
            _drain(drain_seconds())
    finally:
        if watch is not None:
            watch.stop()
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        for signum, handler in old_stop.items():
            signal.signal(signum, handler)
        # SIGHUP blocked again before its default action (exit) comes back: serve() consumes it.
        signal.pthread_sigmask(signal.SIG_BLOCK, hup)
        signal.signal(signal.SIGHUP, old_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)   # still blocked: see serve()
    if failure and not stopping:
        raise failure[0]
    if failure:
        # We shut the listening socket down, so libmilter's accept loop may end with
        # "cannot run main" (when, or after, this thread looks): that is our stop, not an error.
        log.debug("milter: libmilter ended with %s while stopping", failure[0])


# Read once at start: a reload that changes them says so and keeps the old value.
RESTART_ONLY = ("milter_listen", "milter_listen_backlog", "milter_mta_timeout", "daemon_user", "daemon_group")
_LOG_SETTINGS = ("log_target", "log_syslog_socket", "log_level")


def serve(settings: Any, listen: str | None = None,
          load_settings: Callable[[], Any] | None = None) -> int:
    """Run the milter until SIGTERM or SIGINT; return the exit status. On SIGHUP,
    `load_settings()` (default: re-read settings.path) gives the new settings."""
    import signal

    # Stop signals wait (blocked, pending) until _run_until_signal takes them: one that comes
    # while we start up must stop us cleanly, not kill us (-15) or raise KeyboardInterrupt.
    # They stay blocked after the milter stopped: Ctrl-C under `owlery run` brings SIGINT and
    # a forwarded SIGTERM, and the second, still pending, would kill the process (-15) on its
    # way out. Consumed here; the process exits next. SIGHUP likewise: one during start-up is
    # a reload once running, one during the stop is dropped.
    held = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    if load_settings is None:
        from owlery import settings as settings_mod
        path = settings.path

        def load_settings() -> Any:
            return settings_mod.load(path, missing_ok=path is None)
    try:
        return _serve(settings, listen, load_settings)
    finally:
        while signal.sigtimedwait(held, 0) is not None:
            pass


def _serve(settings: Any, listen: str | None, load_settings: Callable[[], Any]) -> int:
    from owlery import log as owlery_log
    from owlery.daemon import drop_privileges, prepare_listen

    from milters.stages import Services, StagePipeline

    owlery_log.setup(settings, "milter")
    endpoint = parse_endpoint(listen if listen is not None else settings.milter_listen)
    prepare_listen(settings, "milter", [endpoint])     # root without daemon_user: RootRefused
    pipeline = StagePipeline(settings, Services(resolver=stage_resolver(settings)))
    try:
        sock = open_listener(endpoint, settings.milter_listen_backlog)
    except OSError as e:        # a second milter on the port or path: one line, as the other daemons
        pipeline.close()
        log.error("milter: cannot listen on %s: %s", endpoint, e)
        return 1
    if settings.milter_workers > 1:
        pipeline.close()        # it proved the settings; each worker builds its own after fork
        return _serve_workers(settings, listen, load_settings, endpoint, sock)
    stop_metrics = _start_metrics(settings)
    drop_privileges(settings, [endpoint.path] if endpoint.kind == "unix" else [])
    address = _probe_address(sock)
    watch = sdnotify.ProbeWatch(
        sdnotify.Notifier.from_environ(unset=True), "milter",
        lambda timeout: negotiate_probe(sock.family, address, timeout),
        lambda: {"messages": OwleryMilter._messages, "open": OwleryMilter.active_connections()})
    try:
        _run(settings, settings, listen, load_settings, endpoint, sock, pipeline, watch)
    finally:
        if stop_metrics is not None:
            stop_metrics()
        _remove_socket(endpoint)
    log.info("milter: stopped")
    return 0


def _serve_workers(settings: Any, listen: str | None, load_settings: Callable[[], Any],
                   endpoint: ListenEndpoint, sock: socket.socket) -> int:
    """milter_workers > 1 (milters.workers): this process binds /metrics, drops privileges and
    supervises; each forked worker builds its own pipeline and runs libmilter on `sock`."""
    import shutil

    from owlery.daemon import bind_worker_metrics, drop_privileges

    from milters import workers
    from milters.stages import Services, StagePipeline

    count = settings.milter_workers
    # prometheus_client's multiprocess mode (chosen when it is imported, in each worker):
    # every worker writes its counts to files in metrics_dir; worker 0 serves the sum of them all.
    metrics_sock, metrics_dir = bind_worker_metrics("milter", settings, metrics.endpoint_for(settings, "milter"),
                                                    count)
    workers.share_listener(sock)
    current = [settings]        # what a worker started from now on gets (SIGHUP re-reads it)

    def reload_settings() -> None:
        current[0] = load_settings()

    def run_worker(index: int, notifier: sdnotify.Notifier | None) -> int:
        now = current[0]
        pipeline = StagePipeline(now, Services(resolver=stage_resolver(now)))
        stop_metrics = None
        if metrics_sock is not None:
            if index == 0:
                stop_metrics = _serve_metrics(now, metrics_sock)
            else:
                metrics.enable()        # counts to this worker's files; worker 0 serves them
        watch = workers.WorkerBeat(
            notifier or sdnotify.Notifier(), _libmilter_running,
            lambda: {"messages": OwleryMilter._messages, "open": OwleryMilter.active_connections()})
        try:
            _run(now, settings, listen, load_settings, endpoint, sock, pipeline, watch)
        finally:
            if stop_metrics is not None:
                stop_metrics()
        log.info("milter: worker %d stopped", index)
        return 0

    try:
        drop_privileges(settings, [endpoint.path] if endpoint.kind == "unix" else [])
        log.info("milter: listening on %s with %d workers", endpoint, count)
        return workers.supervise(count, run_worker, reload_settings)
    finally:
        sock.close()
        if metrics_sock is not None:
            metrics_sock.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        _remove_socket(endpoint)
        log.info("milter: stopped")


def _libmilter_running() -> bool:
    """Whether libmilter runs in this process: its thread is alive and its signal thread
    sleeps in sigwait (or /proc cannot tell), as _run_until_signal waits for at start."""
    if not any(t.name == "libmilter" and t.is_alive() for t in threading.enumerate()):
        return False
    asleep, symbols = _libmilter_sigwaits(threading.main_thread().native_id or 0)
    return asleep or not symbols


def _remove_socket(endpoint: ListenEndpoint) -> None:
    if endpoint.kind == "unix":
        try:
            os.unlink(endpoint.path)
        except OSError:
            pass


def _run(settings: Any, started: Any, listen: str | None, load_settings: Callable[[], Any],
         endpoint: ListenEndpoint, sock: socket.socket, pipeline: Any, watch: Any) -> None:
    """Serve `sock` with libmilter and `pipeline` until SIGTERM/SIGINT, reloading on SIGHUP (the
    one milter process, or one worker); `started`: the settings read at start (RESTART_ONLY)."""
    import milter

    from owlery import log as owlery_log

    from milters.stages import StagePipeline, Services

    factory = make_factory(settings, pipeline)
    Milter.factory = factory
    milter.set_flags(ACTION_FLAGS)
    # An exception escaping a callback (a bug below our guards) must not accept mail.
    milter.set_exception_policy(Milter.TEMPFAIL)
    log.info("milter: listening on %s (stages in=%s out=%s)", endpoint,
             ",".join(settings.milter_inbound_stages), ",".join(settings.milter_outbound_stages))

    def values(s: Any) -> list[tuple[str, Any]]:
        return [(decl.name, value) for decl, value in s.effective()]

    def reload(only_if_changed: bool) -> None:
        old = factory.configurations.current.settings
        try:
            new = load_settings()
            if only_if_changed and values(new) == values(old):
                return
            watch.reloading()
            new_pipeline = StagePipeline(new, Services(resolver=stage_resolver(new)))
        except Exception as e:   # noqa: BLE001 -- whatever fails, the milter keeps running
            log.warning("milter: reload refused, keeping old settings: %s", e)
            watch.reloaded()
            return
        if any(getattr(new, name) != getattr(old, name) for name in _LOG_SETTINGS):
            owlery_log.setup(new, "milter")
        for name in RESTART_ONLY:
            if name == "milter_listen" and listen is not None:
                continue     # --listen overrides it
            if getattr(new, name) != getattr(started, name):
                log.warning("milter: %s changed, needs a restart: still %s", name, getattr(started, name))
        open_before = OwleryMilter.active_connections()
        factory.configurations.swap(new, new_pipeline)
        log.info("milter: settings reloaded from %s (stages in=%s out=%s; %d open connections keep the old)",
                 new.path or "built-in defaults", ",".join(new.milter_inbound_stages),
                 ",".join(new.milter_outbound_stages), open_before)
        watch.reloaded()

    try:
        _run_until_signal(sock, int(settings.milter_mta_timeout),
                          lambda: factory.configurations.current.settings.daemon_drain_timeout, reload, watch)
    finally:
        factory.configurations.close()
        sock.detach()     # libmilter owns (and closes) the descriptor
