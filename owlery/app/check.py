"""`owlery check [WHAT]`: a Nagios/Icinga plugin (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).

Prints one status line, `OWLERY POLICYD OK - action=DUNNO from unix:... | time=0.002s;5;10;0;10`
(perfdata as the Nagios plugin guidelines write it; response times in seconds). WHAT is a
daemon (policyd, milter, lmtpd, socketmap, managesieve), a scanner (clamd, spamd) or a
backend (directory, state, quarantine, queue), or `all` (the default): every check the
settings make relevant (or `check_all`), run at once, the worst status overall, one line
summing up and then one line per check (Nagios' long output). Each probe gets `check_timeout`
(or -t): no answer in time, a refused connection or a wrong answer is CRITICAL; settings
that do not say what to probe, or a socket this user may not open, are UNKNOWN. The
probes themselves are in owlery/app/check_probes.py, the settings in check_settings.py.
Talks to: what the probes talk to. Tests: tests/core/test_check.py, tests/e2e/test_check_e2e.py
"""

from __future__ import annotations

import sys
import threading
import time

from owlery.app import check_probes as P
from owlery.app.check_settings import CHECK_NAMES, DAEMON_CHECKS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

LISTEN_SETTINGS = {name: f"{name}_listen" for name in DAEMON_CHECKS}
# Stages that reach clamd, spamd or the quarantine store.
_STAGE_NEEDS = {"clamd": {"antivirus"}, "spamd": {"spam"},
                "quarantine": {"antivirus", "spam", "banned", "quarantine"}}
# How bad a status is when several are summed up: an UNKNOWN part never hides a WARNING.
_SEVERITY = {P.OK: 0, P.UNKNOWN: 1, P.WARNING: 2, P.CRITICAL: 3}
JOIN_GRACE = 0.5           # past the timeout, how long a probe thread may take to report its own


def register(sub: Any) -> None:
    from owlery.cliutil import add_config_option
    p = sub.add_parser("check", help="Nagios/Icinga plugin: probe the daemons and backends "
                                     "(exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)")
    add_config_option(p)
    p.add_argument("what", nargs="?", default="all", metavar="WHAT",
                   help=f"one of {', '.join(CHECK_NAMES)} or all (default: all)")
    p.add_argument("-t", "--timeout", type=_seconds, default=None, metavar="SECONDS",
                   help="seconds each probe may take (default check_timeout)")
    p.add_argument("--endpoint", default=None, metavar="ENDPOINT",
                   help="probe this unix:/path or tcp:HOST:PORT instead of the configured one "
                        "(a daemon, clamd or spamd check only)")
    p.error = lambda message: _usage_error(p, message)   # Nagios reads exit 2 as CRITICAL
    p.set_defaults(func=_cmd_check)


def _seconds(text: str) -> float:
    import argparse
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to 3600, got {text!r}")
    return value


def _usage_error(parser: Any, message: str) -> None:
    parser.print_usage(sys.stderr)
    print(f"OWLERY UNKNOWN - {_clean(message)}")       # Nagios reads stdout
    raise SystemExit(P.UNKNOWN)


def _cmd_check(args: Any) -> int:
    from owlery.cliutil import settings_module
    what = args.what.lower()
    settings_mod = settings_module()
    try:
        settings = settings_mod.load(args.config, missing_ok=args.config is None)
    except settings_mod.SettingsError as e:
        return _print_unknown(what, f"settings: {str(e).splitlines()[0]}")
    if what != "all" and what not in CHECK_NAMES:
        return _print_unknown(what, f"unknown check {args.what!r} (one of {', '.join(CHECK_NAMES)}, all)")
    if args.endpoint is not None and what not in DAEMON_CHECKS + ("clamd", "spamd"):
        return _print_unknown(what, "--endpoint goes with one daemon, clamd or spamd check")
    timeout = args.timeout if args.timeout is not None else settings.check_timeout
    names = [what] if what != "all" else list(settings.check_all or relevant(settings))
    results = run(names, settings, timeout, args.endpoint)
    text, status = render(what, results, settings.check_response_warning, timeout)
    print(text)
    return status


def _print_unknown(what: str, text: str) -> int:
    print(f"OWLERY {what.upper()} UNKNOWN - {_clean(text)}")
    return P.UNKNOWN


def relevant(settings: Any) -> list[str]:
    """The checks `all` runs when check_all is unset: those these settings put to work."""
    from owlery.app.postfix import uses_socketmap
    wanted = {"policyd", "milter", "lmtpd"}
    if uses_socketmap(settings):
        wanted.add("socketmap")
    if settings.is_set("managesieve_listen"):
        wanted.add("managesieve")
    stages = set(settings.milter_inbound_stages) | set(settings.milter_outbound_stages)
    for stage_list in settings.milter_daemon_stages.values():
        stages |= set(stage_list)
    wanted |= {name for name, needs in _STAGE_NEEDS.items() if stages & needs}
    if settings.check_directory_probe:
        wanted.add("directory")
    checks = settings.policyd_checks or {}
    if any(name in ("greylist", "ratelimit") for names in checks.values() for name in names):
        wanted.add("state")
    if settings.check_postfix_config_directory or _which(settings.check_postqueue_command):
        wanted.add("queue")
    return [name for name in CHECK_NAMES if name in wanted]


def _which(command: str) -> str | None:
    import os
    import shutil
    # cron and NRPE often run without /usr/sbin in PATH, where Debian puts postqueue
    return shutil.which(command, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


# --- planning and running ----------------------------------------------------------------

def plan(name: str, settings: Any, timeout: float, endpoint: str | None = None
         ) -> tuple[Callable[[P.Deadline], P.ProbeResult], str]:
    """(the probe for check `name`, what it reaches, for messages). Raises ConfigProblem or
    ValueError (a bad endpoint) when the settings do not say what to probe."""
    from owlery.endpoints import parse_endpoint
    if name in DAEMON_CHECKS:
        configured = endpoint or settings.check_endpoints.get(name)
        target = (parse_endpoint(configured) if configured
                  else P.endpoint_of(getattr(settings, LISTEN_SETTINGS[name]), LISTEN_SETTINGS[name]))
        if name == "socketmap":
            probe = settings.check_directory_probe or ""
            domain = probe.rpartition("@")[2] or "owlery-check.invalid"
            return (lambda d: P.socketmap(target, d, domain)), str(target)
        return (lambda d: getattr(P, name)(target, d)), str(target)
    if name in ("clamd", "spamd"):
        target = parse_endpoint(endpoint or getattr(settings, f"{name}_endpoint"))
        return (lambda d: getattr(P, name)(target, d)), str(target)
    if name == "directory":
        return (lambda d: P.directory(settings, settings.check_directory_probe, timeout)), \
            f"{settings.directory_backend} directory"
    if name == "state":
        return (lambda d: P.state(settings, timeout)), f"state_backend {settings.state_backend}"
    if name == "quarantine":
        return (lambda d: P.quarantine(settings, timeout)), f"quarantine_backend {settings.quarantine_backend}"
    if name == "queue":
        command = [_which(settings.check_postqueue_command) or settings.check_postqueue_command]
        if settings.check_postfix_config_directory:
            command += ["-c", settings.check_postfix_config_directory]
        command.append("-j")
        return (lambda d: P.queue(command, d, settings.check_queue_warning, settings.check_queue_critical)), \
            " ".join(command)
    raise P.ConfigProblem(f"unknown check {name!r}")


def judge(exc: BaseException, target: str, timeout: float) -> P.ProbeResult:
    """What a probe's exception means for Nagios."""
    from owlery.errors import TemporaryFailure
    from owlery.secrets import SecretError
    if isinstance(exc, (P.ConfigProblem, SecretError)):
        return P.ProbeResult(P.UNKNOWN, str(exc))
    if isinstance(exc, PermissionError):
        return P.ProbeResult(P.UNKNOWN, f"permission denied reaching {target} (run the check as a user "
                                    f"that may: the daemon user or a member of its group)")
    if isinstance(exc, TimeoutError):
        return P.ProbeResult(P.CRITICAL, f"{target}: no answer within {timeout:g} s")
    if isinstance(exc, ConnectionRefusedError):
        return P.ProbeResult(P.CRITICAL, f"connection refused at {target}")
    if isinstance(exc, FileNotFoundError):
        return P.ProbeResult(P.CRITICAL, f"nothing listens at {target} (no such socket)")
    if isinstance(exc, (P.Mismatch, TemporaryFailure)):
        return P.ProbeResult(P.CRITICAL, f"{target}: {exc}")
    if isinstance(exc, OSError):
        return P.ProbeResult(P.CRITICAL, f"{target}: {exc.strerror or exc}")
    if isinstance(exc, ValueError):       # a bad endpoint or setting value
        return P.ProbeResult(P.UNKNOWN, str(exc))
    return P.ProbeResult(P.UNKNOWN, f"{target}: {type(exc).__name__}: {exc}")


class _Run:
    """One probe in a daemon thread (a hung library call cannot keep the plugin from exiting)."""

    def __init__(self, name: str, settings: Any, timeout: float, endpoint: str | None):
        self.name = name
        self.timeout = timeout
        self.outcome: P.ProbeResult | None = None
        self.elapsed = 0.0
        try:
            self.probe, self.target = plan(name, settings, timeout, endpoint)
        except Exception as e:  # noqa: BLE001 - a plugin reports every failure as a status
            self.outcome, self.thread = judge(e, name, timeout), None
            return
        self.thread = threading.Thread(target=self._work, name=f"check-{name}", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        started = time.monotonic()
        try:
            outcome = self.probe(P.Deadline(self.timeout))
        except Exception as e:  # noqa: BLE001 - see judge()
            outcome = judge(e, self.target, self.timeout)
        self.elapsed = time.monotonic() - started
        self.outcome = outcome

    def wait(self, until: float) -> tuple[str, P.ProbeResult, float | None]:
        if self.thread is not None:
            self.thread.join(max(0.0, until - time.monotonic()))
        if self.outcome is None:
            return self.name, P.ProbeResult(P.CRITICAL, f"{self.target}: no answer within {self.timeout:g} s"), \
                self.timeout
        return self.name, self.outcome, self.elapsed if self.thread is not None else None


def run(names: list[str], settings: Any, timeout: float, endpoint: str | None = None
        ) -> list[tuple[str, P.ProbeResult, float | None]]:
    """(name, outcome, seconds taken or None) for each check, all probed at once."""
    runs = [_Run(name, settings, timeout, endpoint) for name in names]
    until = time.monotonic() + timeout + JOIN_GRACE
    return [r.wait(until) for r in runs]


# --- output -------------------------------------------------------------------------------

def render(what: str, results: list[tuple[str, P.ProbeResult, float | None]], slow: float, timeout: float
           ) -> tuple[str, int]:
    """(the plugin's output, its exit status)."""
    judged = []
    perf: list[P.Perf] = []
    for name, outcome, elapsed in results:
        status, text = outcome.status, outcome.text
        if elapsed is not None and status == P.OK and elapsed > slow:
            status, text = P.WARNING, f"{text}; slow: {elapsed:.3f} s > {slow:g} s"
        judged.append((name, status, text))
        prefix = "" if what != "all" else f"{name}_"
        if elapsed is not None and outcome.status != P.UNKNOWN:    # nothing was asked: no time
            perf.append(P.Perf(f"{prefix}time", round(elapsed, 6), "s", slow, timeout, 0, timeout))
        perf += [p if not prefix or p.label.startswith(name) else
                 P.Perf(prefix + p.label, p.value, p.uom, p.warn, p.crit, p.min, p.max) for p in outcome.perf]
    if not judged:
        return f"OWLERY {what.upper()} UNKNOWN - no checks to run (check_all is empty)", P.UNKNOWN
    worst = max((status for _, status, _ in judged), key=_SEVERITY.__getitem__)
    perfdata = (" | " + " ".join(p.render() for p in perf)) if perf else ""
    if what != "all":
        return f"OWLERY {what.upper()} {P.STATUS_WORDS[worst]} - {_clean(judged[0][2])}{perfdata}", worst
    parts = []
    for status in (P.CRITICAL, P.WARNING, P.UNKNOWN):
        bad = [name for name, s, _ in judged if s == status]
        if bad:
            parts.append(f"{P.STATUS_WORDS[status]}: {', '.join(bad)}")
    good = [name for name, s, _ in judged if s == P.OK]
    if good:
        parts.append(f"{len(good)} OK" if parts else f"{len(good)} checks OK: {', '.join(good)}")
    lines = [f"OWLERY ALL {P.STATUS_WORDS[worst]} - {'; '.join(parts)}{perfdata}"]
    lines += [f"{P.STATUS_WORDS[s]} {name}: {_clean(text)}" for name, s, text in judged]
    return "\n".join(lines), worst


def _clean(text: str) -> str:
    """One line without `|` (Nagios reads what follows a `|` as perfdata)."""
    return " ".join(text.replace("|", "/").split())
