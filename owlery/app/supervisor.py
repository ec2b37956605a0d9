"""`owlery run`: start the policy daemon, milter and LMTP server as child processes.

For one host on embedded defaults and for trying Owlery out: each daemon runs in its
own process (libmilter and Twisted each want their own main loop), the supervisor
refuses endpoints that already answer (a second `owlery run`), waits until every one
listens, prints the Postfix lines that wire them in, forwards SIGTERM/SIGINT/SIGHUP, and
stops all if one dies. Production hosts run the systemd units.
SECURITY: runs the daemons with its own user and settings and writes nothing itself but
the starter set on a first start (owlery/app/starter.py). As root it refuses to start
without `daemon_user` (unless `daemon_allow_root`), like each daemon does: they bind as
root, then switch to that user. Production hosts run the hardened systemd units instead.
Talks to: child processes. Tests: tests/core/test_supervisor.py, tests/core/test_secure_defaults.py,
tests/core/test_newcomer_s21.py (started twice)
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from owlery.endpoints import ListenEndpoint, parse_endpoint

DAEMONS = (("policyd", "policyd_listen"), ("milter", "milter_listen"), ("lmtpd", "lmtpd_listen"))


def daemons(settings: Any) -> tuple[tuple[str, str], ...]:
    """The daemons `owlery run` starts: the three, plus the socketmap table server when
    Postfix reads its tables from it (an LDAP directory; see owlery/app/postfix.py)."""
    from owlery.app.postfix import uses_socketmap
    return DAEMONS + ((("socketmap", "socketmap_listen"),) if uses_socketmap(settings) else ())


def _endpoints(value: Any) -> list[ListenEndpoint]:
    items = [value] if isinstance(value, str) else list(value)
    return [parse_endpoint(v) for v in items]


def listening(endpoint: ListenEndpoint) -> bool:
    """True when something accepts connections at the endpoint."""
    if endpoint.kind == "systemd":
        return True
    family = socket.AF_UNIX if endpoint.kind == "unix" else (
        socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET)
    address: Any = endpoint.path if endpoint.kind == "unix" else (endpoint.host, endpoint.port)
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(address)
        except OSError:
            return False
    return True


def wait_listening(procs: dict[str, subprocess.Popen], endpoints: dict[str, list[ListenEndpoint]],
                   deadline_s: float = 30.0) -> None:
    """Poll until every daemon accepts connections; raise if one exits or time runs out."""
    deadline = time.monotonic() + deadline_s
    pending = {name for name in procs}
    while pending:
        for name in list(pending):
            if procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited with status {procs[name].returncode} during start-up")
            if all(listening(ep) for ep in endpoints[name]):
                pending.discard(name)
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"not listening after {deadline_s:.0f} s: {', '.join(sorted(pending))}")
        if pending:
            time.sleep(0.05)  # polling interval while children bind, not a readiness guess


def run_all(config_path: str, settings: Any, domains: Sequence[str], notes: Sequence[str] = ()) -> int:
    from owlery.app import postfix
    from owlery.daemon import RootRefused, check_user

    try:
        check_user(settings, "owlery run")     # once here, not three times from the children
    except RootRefused as e:
        print(f"owlery: {e}", file=sys.stderr)
        return 1
    command = [sys.executable, "-m", "owlery.app.cli"]
    procs: dict[str, subprocess.Popen] = {}
    started = daemons(settings)
    endpoints = {name: _endpoints(getattr(settings, key)) for name, key in started}
    # An endpoint that answers before any child starts is another instance's: the readiness
    # wait below would take its answer for ours and print "listening" for daemons that fail.
    for name, key in started:
        taken = [ep for ep in endpoints[name] if ep.kind != "systemd" and listening(ep)]
        if taken:
            print(f"owlery: {taken[0]} ({key}) answers already: another `owlery run` or `owlery {name}` "
                  "is running there; stop it first", file=sys.stderr)
            return 1
    for name, _key in started:
        procs[name] = subprocess.Popen(command + [name, "--config", config_path])
    stopping = False

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    try:
        wait_listening(procs, endpoints)
    except RuntimeError as e:
        asked_to_stop = stopping   # a stop requested while the daemons were still starting
        forward(signal.SIGTERM, None)
        _reap(procs)
        if asked_to_stop:
            return 0
        print(f"owlery: {e}", file=sys.stderr)
        return 1
    print(f"owlery: running with settings from {config_path}", file=sys.stderr)
    for name, _key in started:
        print(f"owlery: {name} pid {procs[name].pid} listening on "
              + ", ".join(str(e) for e in endpoints[name]), file=sys.stderr)
    print("owlery: add these lines to Postfix, then run: postfix reload\n", file=sys.stderr)
    print(postfix.render(settings, domains), flush=True)
    if notes:
        print("\n" + "\n".join(notes), flush=True)
    status = 0
    while True:
        for name, proc in procs.items():
            code = proc.poll()
            if code is not None:
                if not stopping:
                    print(f"owlery: {name} exited with status {code}; stopping the others", file=sys.stderr)
                    status = 1
                forward(signal.SIGTERM, None)
                stopping = True
        if stopping:
            break
        time.sleep(0.5)  # supervision tick; signals interrupt it
    _reap(procs)
    return status


def _reap(procs: dict[str, subprocess.Popen], grace_s: float = 40.0) -> None:
    for proc in procs.values():
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
