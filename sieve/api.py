"""The public host API of the Sieve engine: compile (cached), run, and read the Result.

This is the one module a delivery agent (sieve.delivery: LMTP server, LDA) imports. The
engine is sans-I/O: it reads no mailbox, sends no mail and keeps no database; what it
cannot know it asks the `Host` passed in (mailbox exists? seen this id before? the text of
an included script?). A run returns a `Result`: ordered actions the delivery performs.
Tests: tests/sieve/test_api.py; conformance in tests/sieve/test_conformance.py.

Typical delivery::

    from sieve.api import ScriptCache, Envelope, run, SieveCompileError
    cache = ScriptCache(settings)                       # one per process
    try:
        script = cache.load("/var/vmail/alice/.sieve")  # compiled once per (path, mtime, size)
    except FileNotFoundError:
        script = None                                   # no script: plain keep
    except SieveCompileError as e:
        log(e.diagnostics); script = None               # broken script: plain keep
    result = run(script, message_bytes,
                 Envelope(mail_from="bob@example.com", rcpt_to="alice+x@example.org",
                          orig_rcpt="alice@example.org", auth_user=None),
                 host=my_host, settings=settings, now=datetime.now(timezone.utc))
    if result.status == "tempfail":
        -> reply 451 4.3.0 / exit 75; deliver nothing
    for action in result.effective_actions():           # implicit keep and error keep included
        Keep -> store result.message (or action's) in action.mailbox with action.flags
        FileInto -> store in action.mailbox (create if action.create; else missing = failure)
        Redirect -> send result.message to action.address (MAIL FROM action.envelope_from)
        Reject -> ereject: 5xx in the dialogue if possible; else send action.mdn to action.mdn_to
        Vacation -> send action.reply to action.to from <>; host.mark(action.tracking_key, action.period)
        Notify -> send action.message (mailto) from action.envelope_from to action.recipients
        DuplicateMark -> host.mark(action.tracking_key, action.period)
        SendMessage / Report -> send the ready message
        Discard -> nothing

Runtime errors: RFC 5228 2.10.6. When the script fails while running (status "error") or
exceeds a limit (status "resource_limit"), `result.actions` holds what was collected
(for logging only) and `effective_actions()` is a single Keep into the default mailbox;
`result.errors` says why. When the host raises `SieveTempFailure` the status is
"tempfail": deliver nothing and make the MTA retry. If storing a FileInto fails at
execution (mailbox missing), the executor keeps into INBOX instead (failure implicit keep).

Limits are settings in sieve.limits (sieve_max_script_size, sieve_max_nesting,
sieve_max_string_length, sieve_max_actions, sieve_max_redirects, sieve_max_cpu_steps, ...).
"""

from __future__ import annotations

import os
from _thread import allocate_lock   # not threading: one more module for each LDA start
from _collections_abc import Mapping   # not collections.abc: collections costs each LDA run ~9 M instructions

from owlery import datetimes as _dt   # not datetime: its pure-Python copy runs first (LDA start-up)
from owlery.record import Record
from owlery.settings import Settings
from sieve.actions import (Action, Discard, DuplicateMark, FileInto, Keep, Notify, Redirect,
                           Reject, Report, SendMessage, Vacation)
from sieve.errors import (Diagnostic, SieveCompileError, SieveError, SieveResourceLimit,
                          SieveRuntimeError, SieveTempFailure)
from sieve.result import Result, describe_action
from sieve.script import Script

TYPE_CHECKING = False     # not `from typing import ...`: the LDA's start-up pays for every import (~1.7 ms)
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object          # a plain base at run time; type checkers see the Protocol

__all__ = [
    "Action", "Keep", "FileInto", "Redirect", "Discard", "Reject", "Vacation", "Notify",
    "DuplicateMark", "SendMessage", "Report",
    "Diagnostic", "SieveError", "SieveCompileError", "SieveRuntimeError", "SieveResourceLimit",
    "SieveTempFailure",
    "Envelope", "Host", "BaseHost", "MemoryHost", "Script", "Result", "ScriptCache",
    "compile_script", "run", "extensions_available", "describe_action",
]


class Envelope(Record, frozen=True):
    """The SMTP envelope of one delivery (one recipient).

    mail_from: MAIL FROM address without brackets; "" is the null sender <>.
    rcpt_to: RCPT TO address (the recipient this run is for).
    orig_rcpt: the original recipient (ORCPT / before aliasing), None if unknown.
    auth_user: the SMTP AUTH user of the submitter, None if none (envelope "auth")."""

    mail_from: str = ""
    rcpt_to: str = ""
    orig_rcpt: str | None = None
    auth_user: str | None = None


class Host(Protocol):
    """What the interpreter asks its host. Methods may raise SieveTempFailure (backend
    down): the run then ends with status "tempfail" and nothing must be delivered."""

    def mailbox_exists(self, mailbox: str) -> bool:
        """Does this mailbox exist for the user (mailbox extension, fileinto checks)?"""

    def special_use_exists(self, mailbox: str | None, flag: str) -> bool:
        """Is there a mailbox with special-use `flag` (e.g. "\\\\Junk"); if `mailbox`
        is given, does that mailbox carry the flag? (special-use extension)"""

    def seen(self, key: str) -> bool:
        """Has `key` been marked and not yet expired? Used by duplicate ("duplicate:...")
        and by vacation ("vacation:...") to avoid answering a sender twice."""

    def mark(self, key: str, period: float) -> None:
        """Remember `key` for `period` seconds. Called by the executor (not the engine)
        for DuplicateMark and Vacation actions once delivery succeeded."""

    def load_script(self, name: str, location: str) -> bytes | None:
        """The source of an included script (`location` is "personal" or "global"),
        or None when it does not exist. `name` is already checked to be a plain name (no "/"
        or control characters; "." and ".." are names too: read NAME.sieve, never NAME)."""

    def metadata(self, mailbox: str | None, annotation: str) -> str | None:
        """IMAP METADATA value (mailbox=None: server entry), or None (RFC 5490 tests)."""

    def list_contains(self, list_name: str, value: str) -> bool | None:
        """extlists: is `value` in `list_name`? None when the list is unknown."""


class BaseHost:
    """A Host that answers "no" to everything: no mailboxes but INBOX, no tracking,
    no includes. Subclass it and override what your delivery knows."""

    def mailbox_exists(self, mailbox: str) -> bool:
        return mailbox.upper() == "INBOX"

    def special_use_exists(self, mailbox: str | None, flag: str) -> bool:
        return False

    def seen(self, key: str) -> bool:
        return False

    def mark(self, key: str, period: float) -> None:
        return None

    def load_script(self, name: str, location: str) -> bytes | None:
        return None

    def metadata(self, mailbox: str | None, annotation: str) -> str | None:
        return None

    def list_contains(self, list_name: str, value: str) -> bool | None:
        return None


class MemoryHost(BaseHost):
    """An in-memory Host for tests and dry runs: mailboxes, tracking keys, scripts."""

    def __init__(self, mailboxes: tuple[str, ...] = ("INBOX",),
                 scripts: Mapping[tuple[str, str], bytes] | None = None,
                 special_use: Mapping[str, str] | None = None):
        self.mailboxes = set(mailboxes)
        self.scripts = dict(scripts or {})          # (location, name) -> source
        self.special_use = dict(special_use or {})  # flag -> mailbox
        self.tracking: dict[str, float] = {}
        self.meta: dict[tuple[str | None, str], str] = {}
        self.lists: dict[str, set[str]] = {}

    def mailbox_exists(self, mailbox: str) -> bool:
        return mailbox in self.mailboxes or mailbox.upper() == "INBOX"

    def special_use_exists(self, mailbox: str | None, flag: str) -> bool:
        target = self.special_use.get(flag.lower()) or self.special_use.get(flag)
        if target is None:
            return False
        return mailbox is None or mailbox == target

    def seen(self, key: str) -> bool:
        return key in self.tracking

    def mark(self, key: str, period: float) -> None:
        self.tracking[key] = period

    def load_script(self, name: str, location: str) -> bytes | None:
        return self.scripts.get((location, name))

    def metadata(self, mailbox: str | None, annotation: str) -> str | None:
        return self.meta.get((mailbox, annotation))

    def list_contains(self, list_name: str, value: str) -> bool | None:
        if list_name not in self.lists:
            return None
        return value.lower() in self.lists[list_name]


def extensions_available(settings: Settings | None = None) -> list[str]:
    """Capability strings scripts may require (the Sieve "capability" list)."""
    from sieve.extensions import capabilities
    return capabilities(settings or Settings())


def compile_script(source: bytes | str, *, name: str = "script", settings: Settings | None = None,
                   path: str | None = None, extra_extensions: tuple[str, ...] = (),
                   loader=None, max_errors: int = 0, upload: bool = False) -> Script:
    """Parse and validate a script. Raises SieveCompileError (every error, line:column; at
    most `max_errors` of them when it is > 0: validation stops there).

    extra_extensions: names of non-standard extensions to allow (the testsuite harness
    passes "vnd.dovecot.testsuite"). loader(name, location) -> bytes | None, when given,
    resolves `include` at compile time (missing or circular includes are compile errors);
    otherwise includes are loaded at run time through Host.load_script. upload=True (ManageSieve
    PUTSCRIPT, CHECKSCRIPT, with the user's stored scripts as loader): a missing or circular
    include is a warning, as in Pigeonhole's managesieved (RFC 6609 3.2)."""
    from sieve.validator import compile_source
    return compile_source(source, name=name, settings=settings or Settings(), path=path,
                          extra_extensions=extra_extensions, loader=loader, max_errors=max_errors,
                          upload=upload)


class ScriptCache:
    """Compiled scripts by (path, mtime_ns, size, inode), and by content hash for bytes.

    Thread-safe; bounded by sieve_max_cache_scripts (least recently used dropped). A
    compile error is cached too (re-raised) until the file changes."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings()
        self._lock = allocate_lock()
        self._by_key: dict = {}          # least recently used first (insertion order)
        self.hits = 0
        self.misses = 0

    def _get(self, key):
        with self._lock:
            entry = self._by_key.get(key)
            if entry is not None:
                self._by_key[key] = self._by_key.pop(key)      # now the most recent
                self.hits += 1
            return entry

    def _put(self, key, entry) -> None:
        with self._lock:
            self.misses += 1
            self._by_key[key] = entry
            while len(self._by_key) > self.settings.sieve_max_cache_scripts:
                del self._by_key[next(iter(self._by_key))]

    def load(self, path: str | os.PathLike, name: str | None = None) -> Script:
        """The compiled script at `path`; FileNotFoundError if it does not exist."""
        path = os.fspath(path)
        st = os.stat(path)
        key = ("path", path, st.st_mtime_ns, st.st_size, st.st_ino)
        entry = self._get(key)
        if entry is None:
            with open(path, "rb") as f:
                source = f.read(self.settings.sieve_max_script_size + 1)
            entry = self._compile(source, name or _script_name(path), path)
            self._put(key, entry)
        return _unwrap(entry)

    def compile(self, source: bytes | str, name: str = "script") -> Script:
        """The compiled script for this source text (keyed by its SHA-256)."""
        raw = source.encode("utf-8", "surrogateescape") if isinstance(source, str) else source
        from owlery.digests import sha256
        key = ("sha256", sha256(raw).hexdigest(), name)
        entry = self._get(key)
        if entry is None:
            entry = self._compile(raw, name, None)
            self._put(key, entry)
        return _unwrap(entry)

    def _compile(self, source: bytes, name: str, path: str | None):
        try:
            return compile_script(source, name=name, settings=self.settings, path=path)
        except SieveCompileError as e:
            return e


def _unwrap(entry):
    if isinstance(entry, SieveCompileError):
        raise entry
    return entry


def _script_name(path: str) -> str:
    base = os.path.basename(path)
    for ext in (".sieve", ".svtest"):
        if base.endswith(ext):
            return base[: -len(ext)]
    return base


def run(script: Script | None, message: bytes, envelope: Envelope, *, host: Host | None = None,
        settings: Settings | None = None, environment: Mapping[str, str] | None = None,
        now: _dt.datetime | None = None, context: dict[str, dict] | None = None) -> Result:
    """Run `script` on one message for one recipient; never raises on bad scripts/messages.

    script None means "no script": the Result is the implicit keep. `environment` adds or
    overrides environment-extension items (e.g. {"location": "MDA", "phase": "during",
    "remote-host": ..., "remote-ip": ..., "host": ...}). `now` is the delivery time
    (date/currentdate, vacation); default: the current UTC time. `context` is the previous
    script's `Result.context` when several scripts run for one delivery (global before
    scripts, the user's, global after scripts): what belongs to the message, not to one
    script, carries over (imap4flags' internal flags, as Pigeonhole's multiscript does)."""
    settings = settings or Settings()
    host = host if host is not None else BaseHost()
    if now is None:
        now = _dt.datetime.now(_dt.timezone.utc)
    if script is None:
        return Result(message=message, default_mailbox=settings.sieve_default_mailbox, context=dict(context or {}))
    from sieve.interpreter import execute
    return execute(script, message, envelope, host=host, settings=settings,
                   environment=dict(environment or {}), now=now, context=context)
