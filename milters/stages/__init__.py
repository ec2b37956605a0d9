"""Milter stages: the Stage interface, THE registry of stage names, and per-message stage selection.

A stage is one file under milters/stages/ with one class:

    class MyStage(Stage):
        name = "mystage"                 # the name used in settings and logs
        def __init__(self, settings, services):   # once per process (and per reload)
            super().__init__(settings, services)
        def check(self, message, report):          # once per message, at end-of-message
            if message.get("Subject") == "bad":
                report.symbol("MY_BAD_SUBJECT", 3.0, "subject is bad")

Rules:
- `check()` runs in libmilter's per-connection thread; stage objects are shared by all
  connections, so keep per-message state in locals (or `report.data`), never on `self`.
- Read the message through `milters.session.MilterMessage` (envelope, macros, raw headers,
  spooled body); answer only through `milters.effects.StageReport` (symbols with scores,
  header edits, reject/tempfail/discard/hold, auth results, `quarantined(ref)`).
- A backend that is down raises `owlery.errors.TemporaryFailure`; what happens then is the
  per-stage setting `milter_stage_on_error` ("tempfail", the default, or "continue").
  `PermanentFailure` rejects with its reply. Any other exception is a bug: the message is
  tempfailed and the traceback logged.
- Blocking I/O takes an explicit timeout; call `report.progress()` while waiting long.
- Register the class below in `STAGES` (one line, "module:Class", imported lazily).

Which stages run for a message (`StagePipeline.select`): `milter_daemon_stages[{daemon_name}]`
when listed, else `milter_outbound_stages` for SASL-authenticated clients and clients in
`milter_internal_networks`, else `milter_inbound_stages`.
Talks to: nothing itself. Tests: tests/milters/test_session.py (selection, unknown stage, stage
errors), tests/milters/test_auth_stages.py (a stage registered at run time).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

from owlery.settings import Networks, choice, list_of, registered, setting, table_of

# THE registry: stage name -> "module:Class". Imported only when a configured list names it.
STAGES: dict[str, str] = {
    "spf": "milters.stages.spf:SpfStage",
    "dkim_verify": "milters.stages.dkim_verify:DkimVerify",
    "arc_verify": "milters.stages.arc_verify:ArcVerify",
    "dmarc": "milters.stages.dmarc:Dmarc",
    "authres": "milters.stages.authres:AuthResults",
    "dkim_sign": "milters.stages.dkim_sign:DkimSign",
    "arc_seal": "milters.stages.arc_seal:ArcSeal",
    "antivirus": "milters.stages.antivirus:AntivirusStage",
    "spam": "milters.stages.spam:SpamStage",
    "banned": "milters.stages.banned:BannedStage",
    "quarantine": "milters.stages.quarantine:QuarantineStage",
}

ON_ERROR_CHOICES = ("tempfail", "continue")

StageName = registered(STAGES, "milter stage")
StageList = list_of(StageName, name="list of milter stages")

MILTER_INBOUND_STAGES = setting(
    "milter_inbound_stages", StageList, ["spf", "dkim_verify", "arc_verify", "dmarc", "authres"],
    "Stages run, in order, for mail from unauthenticated clients outside milter_internal_networks.")
MILTER_OUTBOUND_STAGES = setting(
    "milter_outbound_stages", StageList, ["dkim_sign", "authres"],
    "Stages run, in order, for mail from SASL-authenticated clients or milter_internal_networks.")
MILTER_INTERNAL_NETWORKS = setting(
    "milter_internal_networks", Networks, ["127.0.0.0/8", "::1/128"],
    "Clients whose mail counts as outbound (signed, not verified) even without SASL "
    "authentication. Mail Postfix makes itself (sendmail, bounces) arrives from 127.0.0.1.")
MILTER_DAEMON_STAGES = setting(
    "milter_daemon_stages", table_of(StageList, name="table of daemon_name = [milter stages]"), {},
    "Stage lists by Postfix {daemon_name} (set with -o milter_macro_daemon_name=NAME in "
    "master.cf), overriding the inbound/outbound choice, e.g. { submission = [\"dkim_sign\"] }.")
MILTER_STAGE_ON_ERROR = setting(
    "milter_stage_on_error", table_of(choice(*ON_ERROR_CHOICES), keys=StageName), {},
    "What a stage does when its backend is down, by stage name: \"tempfail\" (default; the "
    "client retries) or \"continue\" (log, add symbol NAME_ERROR, go on).")


class Services:
    """What the process gives every stage: DNS (a dnspython-style resolver), the clock, and
    the resources stages share: the quarantine store (owlery.quarantine) and the directory
    (owlery.directory). The adapter builds one Services per settings generation; each
    resource is opened on first use (a stage that never quarantines costs no store), once,
    from the settings the stage passes (the pipeline's), and closed with the StagePipeline. A
    `quarantine_store` or `directory` given here is used instead, and left open."""

    def __init__(self, resolver: Any, now: Callable[[], float] = time.time, *,
                 quarantine_store: Any = None, directory: Any = None):
        self.resolver = resolver
        self.now = now
        self._given = {"quarantine store": quarantine_store, "directory": directory}
        self._opened: dict[str, Any] = {}
        self._lock = threading.Lock()

    def quarantine_store(self, settings: Any) -> Any:
        """The quarantine store every content stage writes (milters.stages.quarantine.Quarantiner)."""
        def open_it() -> Any:
            from owlery.quarantine import open_store
            return open_store(settings)
        return self._get("quarantine store", open_it)

    def directory(self, settings: Any) -> Any:
        """The directory, e.g. for per-recipient spam levels."""
        def open_it() -> Any:
            from owlery.directory import open_directory
            return open_directory(settings)
        return self._get("directory", open_it)

    def _get(self, name: str, opener: Callable[[], Any]) -> Any:
        if self._given[name] is not None:
            return self._given[name]
        # Stages may ask from libmilter's connection threads: open each resource once.
        with self._lock:
            if name not in self._opened:
                self._opened[name] = opener()
            return self._opened[name]

    def close(self) -> None:
        """Close what was opened here (at reload once the old stages are idle, and at exit)."""
        with self._lock:
            opened, self._opened = list(self._opened.items()), {}
        for name, resource in opened:
            try:
                resource.close()
            except Exception:  # noqa: BLE001 - closing must go on for the others
                logging.getLogger("owlery.milter").exception("milter: closing the %s failed", name)


class Stage:
    """Base class of a milter stage; see the module docstring for the contract."""

    name: ClassVar[str] = ""

    def __init__(self, settings: Any, services: Services):
        self.settings = settings
        self.services = services

    def check(self, message: Any, report: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (connection pools, files) at shutdown or reload."""


class ConfigError(ValueError):
    """A stage list names an unknown stage or a stage refuses its settings."""


def stage_class(name: str) -> type[Stage]:
    try:
        target = STAGES[name]
    except KeyError:
        raise ConfigError(f"unknown milter stage {name!r} (known: {', '.join(sorted(STAGES))})") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


class StagePipeline:
    """The configured stages of one process, built once from settings; picks them per message."""

    def __init__(self, settings: Any, services: Services):
        self.settings = settings
        self.services = services
        # The settings' types have checked every name against STAGES when the file was read.
        names: list[str] = list(settings.milter_inbound_stages) + list(settings.milter_outbound_stages)
        for stages in settings.milter_daemon_stages.values():
            names += stages
        self.stages: dict[str, Stage] = {}
        for name in names:
            if name not in self.stages:
                self.stages[name] = stage_class(name)(settings, services)
        self._inbound = [self.stages[n] for n in settings.milter_inbound_stages]
        self._outbound = [self.stages[n] for n in settings.milter_outbound_stages]
        self._by_daemon = {d: [self.stages[n] for n in s] for d, s in settings.milter_daemon_stages.items()}

    def is_outbound(self, message: Any) -> bool:
        if message.auth_user:
            return True
        ip = message.client_ip()
        if ip is None:
            # No client address: a local submission (sendmail/pickup) or a unix-socket client.
            return message.client_address is None
        ip = getattr(ip, "ipv4_mapped", None) or ip
        return any(ip in net for net in self.settings.milter_internal_networks
                   if net.version == ip.version)

    def select(self, message: Any) -> list[Stage]:
        daemon = message.daemon_name
        if daemon is not None and daemon in self._by_daemon:
            return self._by_daemon[daemon]
        return self._outbound if self.is_outbound(message) else self._inbound

    def on_error(self, stage_name: str) -> str:
        return self.settings.milter_stage_on_error.get(stage_name, "tempfail")

    def close(self) -> None:
        for stage in self.stages.values():
            stage.close()
        self.services.close()           # the shared quarantine and directory, after their users

