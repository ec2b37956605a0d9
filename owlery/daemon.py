"""Daemon runner for the Twisted daemons (policyd, lmtpd): listen, drop privileges, reload, drain.

A product hands `run()` a builder `build(settings, reactor) -> Application`. The runner
binds every listen endpoint (unix:, tcp:, systemd: socket activation), then drops to
`daemon_user`, reloads settings on SIGHUP (a bad file is logged and the old settings
kept), and on SIGTERM stops listening and lets open connections finish for up to
`daemon_drain_timeout` seconds before exiting.
Talks to: the OS (sockets, signals, uid). Tests: tests/core/test_daemon.py
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import signal
import socket
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from owlery import settings as settings_mod
from owlery.endpoints import ListenEndpoint, parse_endpoint
from owlery.settings import Duration, Str, setting

DAEMON_USER = setting("daemon_user", Str, None,
                      "User to switch to after the listen sockets are bound (only when started as root). "
                      "Unset: keep running as the starting user.")
DAEMON_GROUP = setting("daemon_group", Str, None,
                       "Group to switch to with daemon_user. Unset: the user's primary group.")
DAEMON_DRAIN_TIMEOUT = setting("daemon_drain_timeout", Duration, 30, unit="s",
                               doc="On SIGTERM, how long open connections may take to finish before exit.")

log = logging.getLogger("owlery.daemon")


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


def listen(reactor: Any, endpoint: ListenEndpoint, factory: Any) -> Any:
    """Start listening on one endpoint; return the listening port."""
    if endpoint.kind == "tcp":
        return reactor.listenTCP(endpoint.port, factory, interface=endpoint.host)
    if endpoint.kind == "unix":
        directory = os.path.dirname(endpoint.path)
        os.makedirs(directory, exist_ok=True)
        # A stale socket from a crashed run would make bind fail; it is ours to replace.
        if os.path.exists(endpoint.path):
            os.unlink(endpoint.path)
        return reactor.listenUNIX(endpoint.path, factory, mode=endpoint.mode)
    fd = systemd_fd(endpoint.name)
    # systemd passes blocking sockets unless NonBlocking=yes; Twisted's accept loop
    # needs a non-blocking one or the whole reactor hangs in accept().
    os.set_blocking(fd, False)
    os.set_inheritable(fd, False)
    probe = socket.socket(fileno=os.dup(fd))
    family = probe.family
    probe.close()
    return reactor.adoptStreamPort(fd, family, factory)


def drop_privileges(user: str | None, group: str | None, chown_paths: Sequence[str] = ()) -> None:
    """Switch to user/group if root; unix sockets we created go to that user first."""
    if user is None or os.getuid() != 0:
        return
    pw = pwd.getpwnam(user)
    gid = grp.getgrnam(group).gr_gid if group else pw.pw_gid
    for path in chown_paths:
        os.chown(path, pw.pw_uid, gid)
    os.setgroups([])
    os.initgroups(user, gid)
    os.setgid(gid)
    os.setuid(pw.pw_uid)
    log.info("running as user=%s uid=%d gid=%d", user, pw.pw_uid, gid)


class _NotReady:
    """Stands in for the application's factory between bind and build (no connection is
    accepted then: the reactor is not running yet)."""

    def doStart(self) -> None:
        pass

    def doStop(self) -> None:
        pass


def run(program: str, config_path: str | None, listen_overrides: Sequence[str],
        listen_setting: str, build: Callable[[settings_mod.Settings, Any], Application]) -> int:
    """Run a Twisted daemon until SIGTERM; return the exit status."""
    from twisted.internet import defer, reactor
    from twisted.internet.error import CannotListenError
    from twisted.protocols.policies import WrappingFactory

    from owlery import log as owlery_log

    current = settings_mod.load(config_path)
    owlery_log.setup(current, program)
    # Bind first (as root if started so), drop privileges, and only then build the
    # application: its files and threads belong to the daemon user, and a socket that
    # cannot be bound stops start-up before any thread exists to keep the process alive.
    tracked = WrappingFactory(_NotReady())
    try:
        endpoints = [parse_endpoint(e) for e in (listen_overrides or getattr(current, listen_setting))]
        ports = [listen(reactor, ep, tracked) for ep in endpoints]
    except (OSError, ValueError, CannotListenError) as e:
        log.error("%s: cannot listen: %s", program, e)
        return 1
    for ep in endpoints:
        log.info("%s: listening on %s", program, ep)
    try:
        drop_privileges(current.daemon_user, current.daemon_group,
                        [ep.path for ep in endpoints if ep.kind == "unix"])
        app = build(current, reactor)
    except (OSError, KeyError, ValueError, settings_mod.SettingsError) as e:
        log.error("%s: cannot start: %s", program, e)
        return 1
    tracked.wrappedFactory = app.factory
    for _ in ports:
        app.factory.doStart()   # what listen() did for the stand-in, once per port

    def reload(*_: Any) -> None:
        nonlocal current
        try:
            new = settings_mod.load(config_path)
        except settings_mod.SettingsError as e:
            log.warning("%s: reload refused, keeping old settings: %s", program, e)
            return
        current = new
        owlery_log.setup(new, program)
        app.reload(new)
        log.info("%s: settings reloaded from %s", program, new.path or "built-in defaults")

    signal.signal(signal.SIGHUP, lambda *a: reactor.callFromThread(reload))

    def drain() -> Any:
        log.info("%s: stopping: no new connections, %d open", program, len(tracked.protocols))
        for port in ports:
            port.stopListening()
        done = defer.Deferred()
        deadline = reactor.seconds() + current.daemon_drain_timeout

        def poll() -> None:
            if not tracked.protocols or reactor.seconds() >= deadline:
                for proto in list(tracked.protocols):
                    proto.transport.loseConnection()
                done.callback(None)
            else:
                reactor.callLater(0.05, poll)
        poll()
        done.addCallback(lambda _: app.close())
        return done

    reactor.addSystemEventTrigger("before", "shutdown", drain)
    reactor.run()
    log.info("%s: stopped", program)
    return 0
