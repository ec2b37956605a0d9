"""Daemon runner for the Twisted daemons (policyd, lmtpd): listen, drop privileges, reload, drain.

A product hands `run()` a builder `build(settings, reactor) -> Application`. The runner
binds every listen endpoint (unix:, tcp:, systemd: socket activation), then drops to
`daemon_user`, reloads settings on SIGHUP (a bad file is logged and the old settings
kept), and on SIGTERM stops listening and lets open connections finish for up to
`daemon_drain_timeout` seconds before exiting.
Identity and sockets (the milter adapter calls the same helpers): `prepare_listen`
refuses to start as root without `daemon_user` (unless `daemon_allow_root`) and creates a
missing unix socket directory (0750, owner daemon_user, group `daemon_socket_group`, so
Postfix may enter it and nobody else); `drop_privileges` gives each bound unix socket to
daemon_user and that group, then switches user. The default sockets live in Postfix's
queue directory (/var/spool/postfix/owlery/), where a chrooted Postfix reaches them.
At start-up it raises its own soft limit on open files to the hard limit: one connection is
one descriptor, Postfix opens many at once, and systemd starts services with a soft limit of
1024 (LimitNOFILE= sets the hard one); the reactor is epoll-based, so no select() limit applies.
Listen sockets take `daemon_listen_backlog` (not Twisted's 50) for the same bursts.
At the limit itself Twisted closes the connections it cannot take (see _DescriptorShortage):
the daemon serves those it holds, logs one WARNING line a minute at most, and recovers.
With `workers` > 1 (a product's `*_workers` setting) the parent binds, drops privileges
and forks that many worker processes, each running its own reactor on the same sockets
(TCP: one SO_REUSEPORT socket per worker, so the kernel spreads connections evenly;
unix and systemd sockets: one shared socket, each worker accepting one connection per
wake-up; they keep the mode, backlog and path the parent or systemd gave them:
owlery.adopted_port). The parent only supervises (owlery.workers, shared with the milter): it passes
SIGHUP and SIGTERM on, restarts a worker that dies (with back-off), and exits when all have
stopped after SIGTERM.
Under systemd (Type=notify, owlery.sdnotify) it sends READY=1 once the reactor runs on the
bound sockets, WATCHDOG=1 from a reactor timer, STATUS with the application's
`status_counts()` (if it has one) and its connections, RELOADING=1/READY=1 around a
SIGHUP and STOPPING=1 at SIGTERM. A worker parent is the only one that speaks to systemd
(NotifyAccess=main): its workers report to it, and it pings only while all of them ping.
With `<program>_metrics_listen` set it serves Prometheus' /metrics from the same reactor
(owlery.metrics); workers share one metrics socket and one directory of metric files, so a
scrape shows the sum over workers.
Talks to: the OS (sockets, signals, uid), systemd's notify socket. Tests: tests/core/test_daemon.py,
tests/core/test_many_connections.py, tests/core/test_sdnotify.py,
tests/core/test_secure_defaults.py, tests/core/test_adopted_port.py,
tests/e2e/test_exhaustion_s22.py (the open-files limit)
"""

from __future__ import annotations

import dataclasses
import gc
import grp
import logging
import os
import pwd
import resource
import shutil
import signal
import socket
import stat
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from owlery import adopted_port, metrics, sdnotify, workers
from owlery import settings as settings_mod
from owlery.endpoints import ListenEndpoint, clear_stale_socket, parse_endpoint
from owlery.errors import OwleryError
from owlery.settings import Bool, Duration, Str, int_range, setting

DAEMON_USER = setting("daemon_user", Str, None,
                      "User to switch to after the listen sockets are bound (only when started as root). "
                      "Unset: keep running as the starting user; a daemon started as root then refuses "
                      "to start unless daemon_allow_root is set.")
DAEMON_ALLOW_ROOT = setting(
    "daemon_allow_root", Bool, False,
    "Let a daemon started as root without daemon_user keep running as root. For containers "
    "and test rigs only: every daemon parses mail from the Internet, and lmtpd runs users' "
    "Sieve scripts; a flaw in either would then be a root compromise.")
DAEMON_SOCKET_GROUP = setting(
    "daemon_socket_group", Str, "postfix",
    "Group given to the unix sockets a daemon binds (mode from the endpoint, 0660 by default) "
    "and to the socket directory it creates (0750), so that Postfix's processes may connect "
    "and other local users may not. No such group on this host: the daemon's own group.")
DAEMON_POSTFIX_QUEUE_DIRECTORY = setting(
    "daemon_postfix_queue_directory", Str, "/var/spool/postfix",
    "Postfix's queue_directory (postconf -h queue_directory), the root of its chrooted "
    "processes. `owlery postfix` names a unix socket under it relative to it "
    "(unix:owlery/policyd.sock), which Postfix resolves there chrooted or not.")
DAEMON_GROUP = setting("daemon_group", Str, None,
                       "Group to switch to with daemon_user. Unset: the user's primary group.")
DAEMON_DRAIN_TIMEOUT = setting("daemon_drain_timeout", Duration, 30, unit="s",
                               doc="On SIGTERM, how long open connections may take to finish before exit.")
DAEMON_LISTEN_BACKLOG = setting(
    "daemon_listen_backlog", int_range(1, 65535), 4096,
    "Connections the kernel queues on a tcp: or unix: listen socket until the daemon accepts them "
    "(listen(2) backlog; Linux caps it at net.core.somaxconn). A burst of connections past it "
    "waits for the client's SYN retransmission, 1 s or more each. systemd: sockets set Backlog= in "
    "their .socket unit. Read at start-up.")

log = logging.getLogger("owlery.daemon")

METRICS_SAMPLE_INTERVAL = 1.0   # seconds between a worker's flushes of counts kept elsewhere


class Application(Protocol):
    """What a product gives the runner."""

    factory: Any                       # a twisted ServerFactory

    def reload(self, settings: settings_mod.Settings) -> None: ...

    def close(self) -> Any: ...        # release resources; may return a Deferred


def systemd_fd(name: str, environ: dict[str, str] | None = None) -> int:
    """The file descriptor systemd passed under FileDescriptorName=name (LISTEN_FDNAMES)."""
    env = os.environ if environ is None else environ
    if env.get("LISTEN_PID") != str(os.getpid()):
        raise ValueError(f"systemd:{name}: not started by systemd socket activation (LISTEN_PID)")
    count = int(env.get("LISTEN_FDS", "0"))
    names = env.get("LISTEN_FDNAMES", "").split(":") if env.get("LISTEN_FDNAMES") else []
    for index in range(count):
        fd_name = names[index] if index < len(names) else "unknown"
        if fd_name == name or (not names and count == 1):
            return 3 + index
    raise ValueError(f"systemd:{name}: no passed socket named {name!r} (have {names or count})")


class RootRefused(ValueError):
    """Started as root with nobody to become: the message says which setting to set (the
    caller puts the program's name in front)."""


def check_user(settings: Any, program: str) -> None:
    """Refuse to run as root without `daemon_user` (unless `daemon_allow_root`), and refuse a
    daemon_user or daemon_group this host does not have, before anything is bound."""
    if os.geteuid() != 0:
        return
    where = settings.path or settings_mod.DEFAULT_CONFIG_PATH
    if settings.daemon_user is None:
        if settings.daemon_allow_root:
            log.warning("%s: running as root (daemon_allow_root = true)", program)
            return
        # Running on built-in defaults, the file to set it in is not there yet: say how to make it.
        missing = (f"; {where} does not exist yet: `owlery config init --config {where}` writes one"
                   if settings.path is None else "")
        raise RootRefused(
            f"refusing to run as root: set daemon_user in {where} (the user to switch to "
            "once the sockets are bound, e.g. daemon_user = \"owlery\"); daemon_allow_root = true "
            f"keeps root, for containers and tests only{missing}")
    try:
        pwd.getpwnam(settings.daemon_user)
    except KeyError:
        raise RootRefused(f"daemon_user {settings.daemon_user!r} (in {where}): no such user; create it "
                          "(useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "
                          f"{settings.daemon_user}) or name another") from None
    if settings.daemon_group is not None:
        try:
            grp.getgrnam(settings.daemon_group)
        except KeyError:
            raise RootRefused(f"daemon_group {settings.daemon_group!r} (in {where}): "
                              "no such group") from None


def socket_owner(settings: Any) -> tuple[int, int]:
    """(uid, gid) for the unix sockets and socket directories a daemon creates; -1 keeps one.

    The uid is daemon_user's when running as root; the gid is `daemon_socket_group`'s, or,
    when this host has no such group, daemon_group's (or daemon_user's primary group)."""
    uid = gid = -1
    root = os.geteuid() == 0
    if root and settings.daemon_user is not None:
        pw = pwd.getpwnam(settings.daemon_user)
        uid = pw.pw_uid
        gid = grp.getgrnam(settings.daemon_group).gr_gid if settings.daemon_group else pw.pw_gid
    if settings.daemon_socket_group:
        try:
            gid = grp.getgrnam(settings.daemon_socket_group).gr_gid
        except KeyError:
            pass
    return uid, gid


def _give(path: str, uid: int, gid: int, what: str) -> None:
    """chown `path` as far as we may; a group we cannot give (not root, not a member) is logged."""
    if uid == -1 and gid == -1:
        return
    try:
        os.chown(path, uid, gid, follow_symlinks=False)
    except PermissionError:
        log.warning("cannot give %s %s to gid %d (not a member of that group): Postfix may be unable "
                    "to connect", what, path, gid)


def prepare_listen(settings: Any, program: str, endpoints: Sequence[ListenEndpoint]) -> None:
    """Before binding: `check_user`, then create each missing unix socket directory, 0750,
    owned by daemon_user and the socket group (its parents, if missing too, get the usual
    0755). An existing directory is left as it is."""
    check_user(settings, program)
    for ep in endpoints:
        if ep.kind != "unix":
            continue
        directory = os.path.dirname(ep.path)
        if os.path.isdir(directory):
            continue
        os.makedirs(os.path.dirname(directory), exist_ok=True)
        try:
            os.mkdir(directory, 0o750)
        except FileExistsError:
            continue            # another daemon made it meanwhile
        uid, gid = socket_owner(settings)
        _give(directory, uid, gid, "socket directory")
        os.chmod(directory, 0o750)
        log.info("%s: created %s for its socket (mode 0750)", program, directory)


def _prepare_unix_path(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # A stale socket from a crashed run would make bind fail; it is ours to replace. A file,
    # or a socket another process still listens on, is not (ListenPathTaken: cannot listen).
    clear_stale_socket(path)


def listen(reactor: Any, endpoint: ListenEndpoint, factory: Any, backlog: int = 4096) -> Any:
    """Start listening on one endpoint; return the listening port."""
    # Twisted's default backlog is 50: a burst of Postfix connections past it waited seconds.
    if endpoint.kind == "tcp":
        return reactor.listenTCP(endpoint.port, factory, backlog=backlog, interface=endpoint.host)
    if endpoint.kind == "unix":
        _prepare_unix_path(endpoint.path)
        return reactor.listenUNIX(endpoint.path, factory, backlog=backlog, mode=endpoint.mode)
    fd = systemd_fd(endpoint.name)
    # systemd passes blocking sockets unless NonBlocking=yes; Twisted's accept loop
    # needs a non-blocking one or the whole reactor hangs in accept().
    os.set_blocking(fd, False)
    os.set_inheritable(fd, False)
    probe = socket.socket(fileno=os.dup(fd))
    family = probe.family
    probe.close()
    return adopted_port.adopt_stream_port(reactor, fd, family, factory)


def drop_privileges(settings: Any, socket_paths: Sequence[str] = ()) -> None:
    """Give the unix sockets we bound to daemon_user and the socket group (`socket_owner`),
    then, if root, switch to daemon_user/daemon_group."""
    uid, gid = socket_owner(settings)
    for path in socket_paths:
        _give(path, uid, gid, "socket")
    user, group = settings.daemon_user, settings.daemon_group
    if user is None or os.getuid() != 0:
        return
    pw = pwd.getpwnam(user)
    gid = grp.getgrnam(group).gr_gid if group else pw.pw_gid
    os.setgroups([])
    os.initgroups(user, gid)
    os.setgid(gid)
    os.setuid(pw.pw_uid)
    log.info("running as user=%s uid=%d gid=%d", user, pw.pw_uid, gid)


_NOFILE_UNLIMITED_CAP = 1 << 20     # Linux's default fs.nr_open, for an "unlimited" hard limit


def raise_open_files_limit(program: str) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; log the outcome; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _NOFILE_UNLIMITED_CAP if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as e:
            log.warning("%s: cannot raise the open files limit from %d to %d: %s", program, soft, target, e)
            return soft
        log.info("%s: open files limit raised from %d to %d", program, soft, target)
        return target
    log.info("%s: open files limit %s", program, "unlimited" if soft == resource.RLIM_INFINITY else soft)
    return soft


class _DescriptorShortage:
    """A Twisted log observer that puts accept() trouble in the daemon's log, one line a minute
    at most. At its open-files limit Twisted frees a descriptor it keeps in reserve, accepts and
    closes at once each connection waiting in the listen queue, and takes the reserve again
    (twisted/twisted#5368), so the queue drains and the reactor does not spin on a listening
    socket that stays readable; the connections already open are served, and new ones are again
    once some close. It says so only to its own logger, which nothing here reads."""

    EVERY = 60.0

    def __init__(self, program: str, soft_limit: Callable[[], int], clock: Callable[[], float]):
        self.program, self.soft_limit, self.clock = program, soft_limit, clock
        self.closed = 0
        self.logged_at: float | None = None

    def __call__(self, event: dict) -> None:
        try:
            text = event.get("log_format") or ""
            if text.startswith("EMFILE recovery"):
                self.closed += 1
            elif text.startswith("Re-reserving EMFILE"):
                self._say("closed %d new connections at once" % self.closed)
            elif text.startswith("Could not accept new connection"):
                self._say("cannot accept a new connection (%s)" % event.get("acceptError"))
        except Exception:  # noqa: BLE001 - an observer that raises is dropped by Twisted; never lose this one
            pass

    def _say(self, what: str) -> None:
        now = self.clock()
        if self.logged_at is not None and now - self.logged_at < self.EVERY:
            return
        self.logged_at = now
        log.warning("%s: out of file descriptors (open files limit %d): %s; the open ones are served, "
                    "new ones again once some close", self.program, self.soft_limit(), what)
        self.closed = 0


def _watch_descriptor_shortage(program: str) -> None:
    import time

    from twisted.logger import globalLogPublisher
    globalLogPublisher.addObserver(_DescriptorShortage(
        program, lambda: resource.getrlimit(resource.RLIMIT_NOFILE)[0], time.monotonic))


class _NotReady:
    """Stands in for the application's factory between bind and build (no connection is
    accepted then: the reactor is not running yet)."""

    def doStart(self) -> None:
        pass

    def doStop(self) -> None:
        pass


def bind_socket(endpoint: ListenEndpoint, *, reuse_port: bool = False, backlog: int = 4096) -> socket.socket:
    """A listening socket for one endpoint, bound before any reactor exists (worker mode)."""
    if endpoint.kind == "systemd":
        fd = systemd_fd(endpoint.name)
        os.set_blocking(fd, False)
        return socket.socket(fileno=fd)
    if endpoint.kind == "unix":
        _prepare_unix_path(endpoint.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(endpoint.path)
        os.chmod(endpoint.path, endpoint.mode)
    else:
        infos = socket.getaddrinfo(endpoint.host or None, endpoint.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE | socket.AI_NUMERICHOST)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def adopt(reactor: Any, sock: socket.socket, factory: Any, *, shared: bool) -> Any:
    """Listen on a socket bound by the worker parent. A socket shared by several workers
    accepts one connection per wake-up, so a burst of connections is spread over the
    workers instead of all landing in whichever woke first."""
    port = adopted_port.adopt_stream_port(reactor, sock.fileno(), sock.family, factory)
    if shared:
        accept_some = port.doRead

        def accept_one() -> Any:
            port.numberAccepts = 1
            return accept_some()
        port.doRead = accept_one
    return port


def run(program: str, config_path: str | None, listen_overrides: Sequence[str],
        listen_setting: str, build: Callable[[settings_mod.Settings, Any], Application],
        workers_setting: str | None = None) -> int:
    """Run a Twisted daemon until SIGTERM; return the exit status."""
    from owlery import log as owlery_log

    current = settings_mod.load(config_path)
    owlery_log.setup(current, program)
    raise_open_files_limit(program)     # before any fork: workers inherit it
    try:
        endpoints = [parse_endpoint(e) for e in (listen_overrides or getattr(current, listen_setting))]
    except ValueError as e:
        log.error("%s: cannot listen: %s", program, e)
        return 1
    try:
        prepare_listen(current, program, endpoints)
    except RootRefused as e:
        log.error("%s: %s", program, e)
        return 1
    except OSError as e:
        log.error("%s: cannot listen: %s", program, e)
        return 1
    workers = getattr(current, workers_setting) if workers_setting else 1
    try:
        metrics_endpoint = metrics.endpoint_for(current, program)    # None: metrics off
    except ValueError as e:
        log.error("%s: cannot serve metrics: %s", program, e)
        return 1
    if workers > 1:
        return _run_workers(program, config_path, current, endpoints, build, workers, metrics_endpoint)
    return _serve(program, config_path, current, endpoints, build, None, metrics_endpoint,
                  notifier=sdnotify.Notifier.from_environ(unset=True))


def _counts(app: Any, tracked: Any) -> dict[str, int]:
    """The STATUS counts: the application's own, then the connections this reactor took."""
    counts = dict(app.status_counts()) if hasattr(app, "status_counts") else {}
    counts["connections"] = tracked.served
    counts["open"] = len(tracked.protocols)
    return counts


def _serve(program: str, config_path: str | None, current: settings_mod.Settings,
           endpoints: Sequence[ListenEndpoint], build: Callable[[settings_mod.Settings, Any], Application],
           bound: Sequence[tuple[socket.socket, bool]] | None, metrics_endpoint: Any = None,
           metrics_socket: socket.socket | None = None, *, notifier: sdnotify.Notifier | None = None) -> int:
    """One reactor serving `endpoints` (bound here) or the sockets a worker parent bound;
    /metrics on `metrics_endpoint` (bound here) or on the parent's shared `metrics_socket`;
    `notifier` tells systemd (or the worker parent) how it goes."""
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError

    from owlery import log as owlery_log

    # A stop signal from here on, while the ports accept but the application is still being
    # built, is kept and acted on once the reactor runs: the daemon exits cleanly, never by
    # the signal's default action.
    early = _EarlyStop()
    # Bind first (as root if started so), drop privileges, and only then build the
    # application: its files and threads belong to the daemon user, and a socket that
    # cannot be bound stops start-up before any thread exists to keep the process alive.
    tracked = _counting_factory()
    _watch_descriptor_shortage(program)
    try:
        ports = _listen_all(reactor, current, endpoints, bound, tracked, metrics_endpoint, metrics_socket)
    except (OSError, ValueError, CannotListenError) as e:
        log.error("%s: cannot listen: %s", program, e)
        return 1
    if bound is None:
        _log_listening(program, endpoints, metrics_endpoint)
    app = _start_app(program, current, endpoints, build, bound is None, metrics_endpoint is not None, reactor)
    if app is None:
        # a worker says so to its parent, which stops the daemon rather than restart it for ever
        return 1 if bound is None else workers.EXIT_CANNOT_START
    tracked.wrappedFactory = app.factory
    # What start-up made (modules, classes, settings, the application) lives as long as the
    # process: out of the collector's sight, a full collection no longer walks it, which
    # halved its pause (a stall of every request in flight) in bench/bench_policy_mix.py.
    gc.collect()
    gc.freeze()
    for _ in ports.served:
        app.factory.doStart()   # what listen() did for the stand-in, once per port
    beat = sdnotify.Heartbeat(notifier or sdnotify.Notifier(), program, lambda: _counts(app, tracked), reactor)
    reactor.callWhenRunning(beat.ready)     # every port is bound and accepts from the first turn
    running = _Running(program, config_path, current, reactor, app, tracked, ports, beat)
    running.take_reload_signal()
    reactor.addSystemEventTrigger("before", "shutdown", running.drain)
    if metrics_socket is not None:
        _sample_metrics(reactor)
    # Decision lines from the reactor thread: one write per reactor turn, not per line.
    owlery_log.batch_decisions(lambda flush: reactor.callLater(0, flush))
    running.take_stop_signals(early)
    wakeup = _SignalWakeup(reactor)
    reactor.run(installSignalHandlers=False)
    wakeup.close()
    log.info("%s: stopped", program)
    return 0


def _counting_factory() -> Any:
    """The factory every daemon port listens with: a wrapper around the stand-in `_NotReady`
    (the application's factory replaces it once built) that counts the connections it took,
    for the STATUS line, and tracks the open ones, for the drain."""
    from twisted.protocols.policies import WrappingFactory

    class Counting(WrappingFactory):
        served = 0              # connections taken, for the STATUS line

        def registerProtocol(self, p: Any) -> None:
            self.served += 1
            WrappingFactory.registerProtocol(self, p)

    return Counting(_NotReady())


@dataclasses.dataclass
class _Ports:
    served: list[Any]           # the daemon's own listening ports
    metrics: list[Any]          # /metrics, not tracked: a scrape never holds up the drain


def _listen_all(reactor: Any, current: settings_mod.Settings, endpoints: Sequence[ListenEndpoint],
                bound: Sequence[tuple[socket.socket, bool]] | None, tracked: Any,
                metrics_endpoint: Any, metrics_socket: socket.socket | None) -> _Ports:
    """Listen on /metrics, then on every endpoint (bound here, or the parent's `bound` sockets)."""
    backlog = current.daemon_listen_backlog
    # Metrics first: once the daemon's own port accepts, /metrics answers too.
    metrics_ports = []
    if metrics_endpoint is not None:
        site = metrics.http_site()
        metrics_ports.append(listen(reactor, metrics_endpoint, site, backlog) if metrics_socket is None
                             else adopt(reactor, metrics_socket, site, shared=True))
    if bound is None:
        return _Ports([listen(reactor, ep, tracked, backlog) for ep in endpoints], metrics_ports)
    return _Ports([adopt(reactor, sock, tracked, shared=shared) for sock, shared in bound], metrics_ports)


def _log_listening(program: str, endpoints: Sequence[ListenEndpoint], metrics_endpoint: Any) -> None:
    if metrics_endpoint is not None:
        log.info("%s: metrics on http://%s/metrics", program, str(metrics_endpoint).removeprefix("tcp:"))
    for ep in endpoints:
        log.info("%s: listening on %s", program, ep)


def _start_app(program: str, current: settings_mod.Settings, endpoints: Sequence[ListenEndpoint],
               build: Callable[[settings_mod.Settings, Any], Application], drop: bool,
               with_metrics: bool, reactor: Any) -> Application | None:
    """Drop privileges (`drop`: unless a worker parent did), then build the application;
    None (logged) when it cannot start."""
    try:
        if drop:
            drop_privileges(current, [ep.path for ep in endpoints if ep.kind == "unix"])
        if with_metrics:
            metrics.enable()        # before build: the application counts from its first request
        return build(current, reactor)
    except (OSError, KeyError, ValueError, RuntimeError, settings_mod.SettingsError, OwleryError) as e:
        # OwleryError: a backend the settings name cannot be used as written (a state_redis_url
        # without its redis:// scheme), said in one line, not a traceback after "listening"
        log.error("%s: cannot start: %s", program, e)
        return None


def _sample_metrics(reactor: Any) -> None:
    """Workers: a scrape reaches one of them; the others' counts kept elsewhere (batched
    decision counters, cache hits) reach their metric files within a second."""
    from twisted.internet.task import LoopingCall

    sampling = LoopingCall(metrics.sample)
    sampling.clock = reactor
    sampling.start(METRICS_SAMPLE_INTERVAL, now=False)


class _Running:
    """A started daemon's reactions: reload on SIGHUP, drain before shutdown, stop once."""

    def __init__(self, program: str, config_path: str | None, current: settings_mod.Settings,
                 reactor: Any, app: Application, tracked: Any, ports: _Ports, beat: sdnotify.Heartbeat):
        self.program = program
        self.config_path = config_path
        self.current = current
        self.reactor = reactor
        self.app = app
        self.tracked = tracked
        self.ports = ports
        self.beat = beat
        self.stop_requested = False

    def take_reload_signal(self) -> None:
        signal.signal(signal.SIGHUP, lambda *a: self.reactor.callFromThread(self.reload))
        # A worker keeps SIGHUP blocked until here: one sent while it started is reloaded now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})

    def reload(self) -> None:
        from owlery import log as owlery_log

        self.beat.reloading()
        try:
            new = settings_mod.load(self.config_path)
            self.app.reload(new)    # may refuse settings that load but cannot run (no directory...)
        except (settings_mod.SettingsError, ValueError, OSError, KeyError) as e:
            log.warning("%s: reload refused, keeping old settings: %s", self.program, e)
            self.beat.reloaded()
            return
        self.current = new
        owlery_log.setup(new, self.program)
        log.info("%s: settings reloaded from %s", self.program, new.path or "built-in defaults")
        self.beat.reloaded()

    def drain(self) -> Any:
        """Stop listening, let open connections finish (up to daemon_drain_timeout), close.

        A protocol with `close_if_idle()` closes itself at once when nothing is half-read or
        owed, and a busy one as soon as it has answered: Postfix holds policy and socketmap
        connections open between requests for minutes, and retries a request on a new
        connection when it finds the old one closed; a ManageSieve client is told BYE; a web
        connection kept alive between requests is closed. Others (an LMTP session) run to
        their end or to the deadline."""
        from twisted.internet import defer

        self.beat.stopping()
        tracked, reactor = self.tracked, self.reactor
        log.info("%s: stopping: no new connections, %d open", self.program, len(tracked.protocols))
        # Wait for each port to finish closing: Twisted unlinks a unix socket file in the
        # port's connectionLost, a reactor turn later; stopping before that left the file.
        closing = [defer.maybeDeferred(port.stopListening) for port in self.ports.served + self.ports.metrics]
        done = defer.Deferred()
        deadline = reactor.seconds() + self.current.daemon_drain_timeout

        def poll() -> None:
            late = reactor.seconds() >= deadline
            for proto in list(tracked.protocols):
                if late:
                    proto.transport.loseConnection()
                else:
                    _close_if_idle(proto)
            if not tracked.protocols or late:
                done.callback(None)
            else:
                reactor.callLater(0.05, poll)
        poll()
        done.addCallback(lambda _: defer.DeferredList(closing, consumeErrors=True))
        done.addCallback(lambda _: self.app.close())
        return done

    def take_stop_signals(self, early: _EarlyStop | None = None) -> None:
        """Our own stop signals instead of Twisted's: Ctrl-C on a terminal sends SIGINT to every
        process of the group while `owlery run` also forwards SIGTERM, and Twisted's handlers
        then stopped the reactor twice (ReactorNotRunning traceback). Stop once, whatever comes;
        a stop that came during start-up (`early`) stops as soon as the reactor runs."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *a: self.reactor.callFromThread(self.stop_once))
        if early is not None and early.requested:
            self.reactor.callWhenRunning(self.stop_once)

    def stop_once(self) -> None:
        if not self.stop_requested:
            self.stop_requested = True
            self.reactor.stop()


def _close_if_idle(proto: Any) -> None:
    """Ask the protocol under the runner's tracking wrapper (and TLS's, for the web UI over
    HTTPS) to close itself if idle."""
    for _ in range(3):
        close = getattr(proto, "close_if_idle", None)
        if close is not None:
            close()
            return
        proto = getattr(proto, "wrappedProtocol", None)
        if proto is None:
            return


class _EarlyStop:
    """Notes SIGTERM/SIGINT during start-up, until `_Running.take_stop_signals` takes over."""

    def __init__(self) -> None:
        self.requested = False
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._note)

    def _note(self, signum: int, frame: Any) -> None:
        self.requested = True


class _SignalWakeup:
    """Wakes the reactor for every signal (`signal.set_wakeup_fd`), so our handlers run at once.

    CPython's C handler only notes a signal; the Python handler runs when the main thread next
    executes bytecode. A SIGTERM that came after the reactor's last check and before it entered
    epoll_wait(), or that the kernel gave to another thread (the blocking pool, a batch worker),
    left an idle worker asleep with its stop pending until its next event: none came, and it was
    killed (tests/policyd/test_workers_shutdown.py). C writes a byte to this pipe, which the
    reactor watches; Twisted's own handlers, not used here (see stop_once), set one the same way."""

    def __init__(self, reactor: Any):
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        reactor.addReader(self)

    def fileno(self) -> int:
        return self.read_fd

    def doRead(self) -> None:
        try:
            while os.read(self.read_fd, 512):
                pass
        except BlockingIOError:
            pass            # drained; the handlers run as the reactor goes on

    def connectionLost(self, reason: Any) -> None:
        pass                # the reactor's shutdown drops its readers; close() follows

    def logPrefix(self) -> str:
        return "signal-wakeup"

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        os.close(self.read_fd)
        os.close(self.write_fd)


def _bind_for_workers(current: settings_mod.Settings, endpoints: Sequence[ListenEndpoint],
                      count: int) -> list[list[tuple[socket.socket, bool]]]:
    """per_worker[i] = the (socket, shared) pairs worker i listens on: a tcp: endpoint gets one
    SO_REUSEPORT socket per worker, any other endpoint one socket shared by all."""
    backlog = current.daemon_listen_backlog
    per_worker: list[list[tuple[socket.socket, bool]]] = [[] for _ in range(count)]
    for ep in endpoints:
        if ep.kind == "tcp":
            first = bind_socket(ep, reuse_port=True, backlog=backlog)
            # Port 0 picks a free port once; the other workers' sockets join that one.
            ep = dataclasses.replace(ep, port=first.getsockname()[1])
            per_worker[0].append((first, False))
            for i in range(1, count):
                per_worker[i].append((bind_socket(ep, reuse_port=True, backlog=backlog), False))
        else:
            shared = bind_socket(ep, backlog=backlog)
            for i in range(count):
                per_worker[i].append((shared, True))
    return per_worker


def _remove_socket_files(program: str, paths: Sequence[str]) -> None:
    """The worker parent bound these paths, so it removes them once every worker has
    stopped (workers leave them: owlery.adopted_port)."""
    for path in paths:
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("%s: cannot remove the socket file %s: %s", program, path, e)


def bind_worker_metrics(program: str, settings: Any, metrics_endpoint: Any,
                        count: int) -> tuple[socket.socket | None, str | None]:
    """(socket, directory) for /metrics in worker mode, (None, None) without a metrics endpoint:
    one metrics socket for all workers (the milter's worker 0 serves it, every Twisted worker
    does), and the directory of their metric files, which a scrape sums (prometheus_client's
    multiprocess mode, in a directory of our own)."""
    if metrics_endpoint is None:
        return None, None
    sock = bind_socket(metrics_endpoint)
    directory = metrics.multiprocess_dir_prepare(program, socket_owner(settings)[0])
    log.info("%s: metrics on http://%s/metrics (sum of %d workers, files in %s)", program,
             str(metrics_endpoint).removeprefix("tcp:"), count, directory)
    return sock, directory


def _run_workers(program: str, config_path: str | None, current: settings_mod.Settings,
                 endpoints: Sequence[ListenEndpoint], build: Callable[[settings_mod.Settings, Any], Application],
                 count: int, metrics_endpoint: Any = None) -> int:
    """The worker parent: bind, drop privileges, fork `count` workers and keep them running
    (owlery.workers); each worker runs its own reactor on the parent's sockets (`_serve`)."""
    if "twisted.internet.reactor" in sys.modules:
        # A reactor made before fork would share its epoll set with every worker.
        log.error("%s: cannot fork workers: a reactor already exists in this process", program)
        return 1
    try:
        per_worker = _bind_for_workers(current, endpoints, count)
        metrics_socket, metrics_dir = bind_worker_metrics(program, current, metrics_endpoint, count)
    except (OSError, ValueError) as e:
        log.error("%s: cannot listen: %s", program, e)
        return 1
    for ep in endpoints:
        log.info("%s: listening on %s with %d workers", program, ep, count)
    try:
        drop_privileges(current, [ep.path for ep in endpoints if ep.kind == "unix"])
    except (OSError, KeyError) as e:
        log.error("%s: cannot start: %s", program, e)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        return 1
    latest = [current]          # what a worker started from now on gets (SIGHUP re-reads it)

    def reload_settings() -> None:
        try:
            latest[0] = settings_mod.load(config_path)
        except settings_mod.SettingsError as e:
            log.warning("%s: reload refused, keeping old settings: %s", program, e)

    def run_worker(index: int, notifier: sdnotify.Notifier | None) -> int:
        return _serve(program, config_path, latest[0], endpoints, build, per_worker[index],
                      metrics_endpoint, metrics_socket, notifier=notifier)

    # A worker unblocks SIGHUP itself once its handler is set (`_serve`): one sent while it
    # started is reloaded then.
    status = workers.supervise(program, count, run_worker, reload_settings=reload_settings,
                               worker_unblock=(signal.SIGCHLD, signal.SIGTERM, signal.SIGINT), logger=log)
    _remove_socket_files(program, [ep.path for ep in endpoints if ep.kind == "unix"])
    if metrics_dir is not None:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    log.info("%s: stopped", program)
    return status
