"""One ManageSieve (RFC 5804) connection as a sans-I/O state machine: bytes in, actions out.

States: NOT-AUTHENTICATED (CAPABILITY, STARTTLS, AUTHENTICATE, NOOP, LOGOUT), AUTHENTICATED
(CAPABILITY, HAVESPACE, PUTSCRIPT, LISTSCRIPTS, SETACTIVE, GETSCRIPT, DELETESCRIPT,
RENAMESCRIPT, CHECKSCRIPT, NOOP, UNAUTHENTICATE, LOGOUT) and LOGOUT (closed).
`start()`, `receive(data)`, `resume(value)` / `resume_error(exc)` and `timed_out()` return
actions for the adapter: `Send(bytes)`; `Call(fn)`: run the blocking `fn()` (password
check, directory lookup, script storage, compiling) in a thread and hand its result to
`resume()` (its exception to `resume_error()`); `Wait(seconds)`: resume after a delay (a
failed login is slowed by `login_failure_delay`); `StartTLS()`: start TLS now and resume when
the handshake is done; `Timeout(seconds)`: the idle (or login) timeout from now on; `Active()`: a
whole command arrived after login, the idle timeout starts again (input bytes alone never restart
it; before login nothing does); `Close()`. While a
Call, Wait or StartTLS is outstanding, input is only buffered: one command at a time.
SASL PLAIN and LOGIN are offered only over TLS, or on loopback, or always, as
`plaintext_auth` says; an authorization identity other than the user is refused. Limits:
line length and (before login) literal size; after login a literal other than a script's
must fit in the line with its command, or BYE (as in Dovecot); bad commands, login failures, script count,
size and total storage (QUOTA/MAXSCRIPTS, QUOTA/MAXSIZE, QUOTA), name length. Scripts are
compiled by the `ManageSieveBackend` (our Sieve validator) on PUTSCRIPT, CHECKSCRIPT and SETACTIVE;
errors come back as NO with one "name:line:column: error: ..." line each.
Logs: one line per login (success or failure, with the client address, never the password)
and per change (put, delete, rename, activate); the metrics (owlery.metrics) count logins by
result, commands by name and changes by action.
Against hostile clients: a run of buffered commands stops once OUTPUT_BATCH bytes of answers
are queued (`more`: the adapter calls `proceed()` while the client reads) and none runs while
`block_output()` says it reads nothing; failed logins also count in a `LoginFailures` shared by
all connections (past its limits a login is refused unchecked), and a failed login's NO comes
`login_failure_delay` after the command however long the check took.
Talks to: a ManageSieveBackend (login -> Account with a ScriptStorage, check). Tests:
tests/managesieve/test_session.py (transcripts), tests/managesieve/test_literal_after_error.py
(literal bounds by state, a bad line's literal), tests/managesieve/test_hostile_s20.py
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import inspect
import logging
from collections.abc import Callable, Generator
from typing import Any, Protocol

from owlery import metrics
from owlery.errors import DirectoryUnavailable
from owlery.login_limits import LoginFailures, client_key
from sieve.managesieve import protocol as p
from sieve.managesieve.limits import UserConnectionSlot
from sieve.managesieve.settings import SessionConfig
from sieve.managesieve.storage import StorageError, check_name

log = logging.getLogger("owlery.managesieve")

NOT_AUTHENTICATED, AUTHENTICATED, LOGOUT = "NOT-AUTHENTICATED", "AUTHENTICATED", "LOGOUT"
SKIP_MAX = p.NUMBER_MAX          # after login an oversized literal is read and dropped, not fatal
# Output one run of buffered commands may queue before the session hands it to the adapter and
# waits for `proceed()`: 64 KiB of "CAPABILITY\r\n" otherwise queued some 3 MB of answers at once.
OUTPUT_BATCH = 65536


# -- actions ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Send:
    data: bytes


@dataclasses.dataclass(frozen=True)
class Call:
    fn: Callable[[], Any]


@dataclasses.dataclass(frozen=True)
class Wait:
    seconds: float


@dataclasses.dataclass(frozen=True)
class StartTLS:
    pass


@dataclasses.dataclass(frozen=True)
class Timeout:
    seconds: float | None


@dataclasses.dataclass(frozen=True)
class Close:
    pass


@dataclasses.dataclass(frozen=True)
class Active:
    """A whole command arrived after login: the idle timeout starts again from now."""


_READ = object()      # internal: a handler waits for the next input line (a SASL response)


# -- what the session talks to ---------------------------------------------------------

@dataclasses.dataclass
class CheckResult:
    """A compile outcome: error lines (empty: it compiles) and warning lines."""

    errors: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)


class Storage(Protocol):
    """sieve.managesieve.storage.ScriptStorage's interface (blocking)."""

    reserved: frozenset[str]

    def list(self) -> list[tuple[str, bool]]: ...
    def active(self) -> str | None: ...
    def usage(self) -> dict[str, int]: ...
    def get(self, name: str) -> bytes: ...
    def exists(self, name: str) -> bool: ...
    def put(self, name: str, data: bytes) -> None: ...
    def delete(self, name: str) -> None: ...
    def rename(self, old: str, new: str) -> None: ...
    def activate(self, name: str | None) -> None: ...


@dataclasses.dataclass
class Account:
    address: str
    storage: Storage


class ManageSieveBackend(Protocol):
    """Blocking services; sieve.managesieve.backend.Accounts is the real one."""

    def login(self, username: str, password: str) -> Account | None:
        """The account when the password is right; None otherwise; DirectoryUnavailable when
        the directory cannot answer."""

    def check(self, source: bytes, name: str, storage: Storage | None = None, upload: bool = False) -> CheckResult:
        """Compile a script with the engine's validator; with `storage` its includes are read
        from there: on activation they must exist and compile, on upload (`upload`) a missing
        or circular one is a warning."""


class _Bad(Exception):
    """A command's arguments do not fit it (counts as a bad command)."""


class _Quit(Exception):
    """Internal: the connection is being closed (BYE already queued)."""


class ManageSieveSession:
    """One connection (see the module docstring)."""

    def __init__(self, config: SessionConfig, backend: ManageSieveBackend, *, peer: str = "unknown",
                 local: bool = False, secure: bool = False, login_timeout: float | None = None,
                 idle_timeout: float | None = None, failures: LoginFailures | None = None,
                 clock: Callable[[], float] | None = None, user_slots: UserConnectionSlot | None = None):
        self.config = config
        self.backend = backend
        self.peer = peer
        self.local = local
        self.secure = secure
        self.login_timeout = login_timeout
        self.idle_timeout = idle_timeout
        self.failures_limit = failures          # shared by the connections; None: this one's only
        self.clock = clock
        self.user_slots = user_slots            # None: no per-user connection limit
        self.state = NOT_AUTHENTICATED
        self.account: Account | None = None
        self.failures = 0
        self.bad_commands = 0
        self.reader = p.CommandReader(config.max_line_length)
        self._limits()
        self._gen: Generator[Any, Any, None] | None = None
        self._waiting: Any = None         # the Call / Wait / StartTLS / _READ the handler waits on
        self._out: list[Any] = []
        self._queued = 0                  # bytes of Send in _out
        self._active_queued = False       # an Active is in _out
        self.output_blocked = False       # the adapter's peer reads nothing: run no command
        self.more = False                 # commands may wait in the input: call proceed()

    # -- the adapter's entry points ---------------------------------------------------

    @property
    def waiting(self) -> bool:
        """True while a Call, Wait or StartTLS is outstanding (the adapter may stop reading)."""
        return self._waiting is not None and self._waiting is not _READ

    @property
    def pending(self) -> Any:
        """The outstanding Call, Wait or StartTLS, or None."""
        return None if self._waiting is _READ else self._waiting

    @property
    def closed(self) -> bool:
        return self.state == LOGOUT

    def start(self) -> list[Any]:
        self._send(self._capabilities() + p.response("OK", None, f"{self.config.implementation} ManageSieve ready."))
        self._out.append(Timeout(self.login_timeout))
        return self._flush()

    def receive(self, data: bytes) -> list[Any]:
        if not self.closed:
            self.reader.feed(data)
        self._run()
        return self._flush()

    def resume(self, value: Any = None) -> list[Any]:
        if self._gen is not None and self._waiting is not None and self._waiting is not _READ:
            self._waiting = None
            self._step(lambda g: g.send(value))
        self._run()
        return self._flush()

    def resume_error(self, exc: BaseException) -> list[Any]:
        if self._gen is not None and self._waiting is not None and self._waiting is not _READ:
            self._waiting = None
            self._step(lambda g: g.throw(exc))
        self._run()
        return self._flush()

    def proceed(self) -> list[Any]:
        """Run the commands left waiting after a batch of output (`more`)."""
        self._run()
        return self._flush()

    def block_output(self) -> None:
        """The client reads nothing for now (its answers pile up): run no more commands."""
        self.output_blocked = True

    def unblock_output(self) -> list[Any]:
        """The client reads again: run the commands that waited."""
        self.output_blocked = False
        self._run()
        return self._flush()

    def timed_out(self) -> list[Any]:
        if not self.closed:
            self._bye("Disconnected for inactivity.")
        return self._flush()

    def shutting_down(self) -> list[Any] | None:
        """The daemon stops: BYE now if no command is begun, running or answered in part (as
        Dovecot says it, RFC 5804 1.3); None while one is, to be asked again after it."""
        if self.closed:
            return []
        if self._gen is not None or self._waiting is not None or self._out or self.more \
                or not self.reader.between_commands:
            return None
        self._bye("Server shutting down.")
        return self._flush()

    # -- driving handlers ---------------------------------------------------------------

    def _flush(self) -> list[Any]:
        out, self._out = self._out, []
        self._queued = 0
        self._active_queued = False
        return out

    def _send(self, data: bytes) -> None:
        self._queued += len(data)
        if self._out and isinstance(self._out[-1], Send):
            self._out[-1] = Send(self._out[-1].data + data)
        else:
            self._out.append(Send(data))

    def _run(self) -> None:
        """Run buffered commands until one waits (a Call, a Wait), the input runs out, the client
        stops reading (`output_blocked`) or a batch of output is queued (`more`): pipelined
        commands from a client that reads nothing must not pile up answers without end.
        Tests: tests/managesieve/test_hostile_s20.py"""
        self.more = False
        while not self.closed and (self._waiting is None or self._waiting is _READ):
            if self.output_blocked or self._queued >= OUTPUT_BATCH:
                self.more = True
                return
            try:
                item = self.reader.next()
            except Exception:  # noqa: BLE001 - as in _step: a bug ends this connection, not the daemon
                log.exception("managesieve: internal error reading a command (client %s)", self.peer)
                self._bye("Internal error, closing connection.")
                return
            if item is None:
                return
            if self.state == AUTHENTICATED and not self._active_queued and not isinstance(item, p.Fatal):
                # The idle time runs from the last whole command, not the last byte: a client
                # dripping one byte at a time held a connection for ever. Before login nothing
                # restarts it: the login time runs from the connection (or UNAUTHENTICATE), as
                # Dovecot's login processes count it, so NOOPs cannot hold a slot for ever.
                self._active_queued = True
                self._out.append(Active())
            if self._waiting is _READ:
                self._waiting = None
                self._step(lambda g, item=item: g.send(item))
                continue
            if isinstance(item, p.Fatal):
                self._bye(f"Connection closed: {item.reason}.")
                return
            self._gen = self._dispatch(item)
            self._step(lambda g: next(g))

    def _step(self, advance: Callable[[Generator], Any]) -> None:
        assert self._gen is not None
        try:
            request = advance(self._gen)
        except StopIteration:
            self._gen = None
            return
        except _Quit:
            self._gen = None
            return
        except Exception:  # noqa: BLE001 - the session boundary: a bug ends this connection, not the daemon
            log.exception("managesieve: internal error (client %s)", self.peer)
            self._gen = None
            self._bye("Internal error, closing connection.")
            return
        self._waiting = request
        if request is not _READ:
            self._out.append(request)

    def _bye(self, text: str) -> None:
        self._send(p.response("BYE", None, text))
        self._logout()

    def _logout(self) -> None:
        self.state = LOGOUT
        self.reader.discard()
        self._out.append(Close())

    def _limits(self) -> None:
        # Before login an over-long line ends the connection (Pigeonhole's login process does
        # too); after it the line is refused and skipped, as Pigeonhole's managesieve does.
        self.reader.long_line_fatal = self.state != AUTHENTICATED
        if self.state == AUTHENTICATED:
            self.reader.set_limits(self.config.max_script_size, SKIP_MAX)
            # A script (and what follows it) is refused over max_script_size and skipped up to
            # SKIP_MAX; any other literal is bounded by the line, as in Dovecot's managesieve.
            self.reader.script_literal = _script_literal
        else:
            self.reader.set_limits(self.config.max_line_length, self.config.max_line_length)
            self.reader.script_literal = None

    # -- capabilities -----------------------------------------------------------------

    def plaintext_allowed(self) -> bool:
        mode = self.config.plaintext_auth
        return self.secure or mode == "always" or (mode == "loopback" and self.local)

    def _capabilities(self) -> bytes:
        c = self.config
        pairs: list[tuple[str, str | None]] = [("IMPLEMENTATION", c.implementation),
                                               ("SASL", "PLAIN LOGIN" if self.plaintext_allowed() else ""),
                                               ("SIEVE", " ".join(c.sieve_extensions))]
        if "enotify" in c.sieve_extensions:
            pairs.append(("NOTIFY", "mailto"))
        pairs.append(("MAXREDIRECTS", str(c.max_redirects)))
        if c.tls_available and not self.secure and self.state == NOT_AUTHENTICATED:
            pairs.append(("STARTTLS", None))
        if self.account is not None:
            pairs.append(("OWNER", self.account.address))
        pairs += [("UNAUTHENTICATE", None), ("VERSION", "1.0")]
        return p.capability_lines(pairs)

    # -- dispatch ---------------------------------------------------------------------

    _ANY = ("CAPABILITY", "NOOP", "LOGOUT")
    _BEFORE = ("AUTHENTICATE", "STARTTLS")
    _AFTER = ("HAVESPACE", "PUTSCRIPT", "LISTSCRIPTS", "SETACTIVE", "GETSCRIPT", "DELETESCRIPT",
              "RENAMESCRIPT", "CHECKSCRIPT", "UNAUTHENTICATE")

    def _dispatch(self, item: Any) -> Generator[Any, Any, None]:
        if isinstance(item, p.Bad):
            metrics.MANAGESIEVE_COMMANDS.labels("bad").inc()
            yield from self._bad(f"Syntax error: {item.reason}.")
            return
        tokens = item.tokens
        if not tokens or not isinstance(tokens[0], p.Atom):
            metrics.MANAGESIEVE_COMMANDS.labels("bad").inc()
            yield from self._bad("Syntax error: a command name was expected.")
            return
        name = tokens[0].text.upper()
        args = tokens[1:]
        known = name in self._ANY or name in self._BEFORE or name in self._AFTER
        metrics.MANAGESIEVE_COMMANDS.labels(name if known else "unknown").inc()     # a bounded set
        if isinstance(item, p.Oversized):
            if name in ("PUTSCRIPT", "CHECKSCRIPT"):
                self._send(p.response("NO", "QUOTA/MAXSIZE",
                                      f"Script is too large (max {self.config.max_script_size} bytes)."))
            else:
                yield from self._bad("Argument too long.")
            return
        if not known:
            yield from self._bad("Unknown command.")
            return
        # A command of the other state is a bad command there (Pigeonhole: an unknown one).
        if name in self._AFTER and self.state != AUTHENTICATED:
            yield from self._bad("Authenticate first.")
            return
        if name in self._BEFORE and self.state == AUTHENTICATED:
            yield from self._bad(f"{name} is not allowed after login.")
            return
        handler = getattr(self, "_cmd_" + name.lower())
        try:
            result = handler(args)
            if inspect.isgenerator(result):
                yield from result
        except _NoResponse as e:
            self._send(p.response("NO", e.code, str(e)))
        except _Bad as e:
            yield from self._bad(str(e) or f"Bad arguments for {name}.")
            return
        if self.state == AUTHENTICATED:
            self.bad_commands = 0        # only bad commands in a row count after login

    def _bad(self, text: str) -> Generator[Any, Any, None]:
        self.bad_commands += 1
        limit = (self.config.max_bad_commands if self.state == AUTHENTICATED
                 else self.config.max_bad_commands_before_login)
        if self.bad_commands >= limit:
            self._bye("Too many invalid commands.")
            raise _Quit()
        self._send(p.response("NO", None, text))
        return
        yield  # noqa: B901 - makes this a generator for `yield from`

    # -- argument helpers ----------------------------------------------------------------

    @staticmethod
    def _strings(args: tuple, low: int, high: int | None = None) -> list[p.String]:
        high = low if high is None else high
        if not low <= len(args) <= high or not all(isinstance(a, p.String) for a in args):
            raise _Bad()
        return list(args)

    def _name(self, arg: p.String, *, new: bool = False, lookup: bool = True) -> str:
        """The script name in `arg`: `new` for a name to create (its length limit applies),
        `lookup` for an existing script's (the reserved name is then NONEXISTENT)."""
        try:
            name = arg.text()
        except UnicodeDecodeError:
            raise _NoResponse("Script name is not UTF-8.") from None
        reserved = self.account.storage.reserved if self.account is not None else frozenset()
        if lookup and not new and name in reserved:
            # The reserved name (the active link's) is a valid name no script has.
            raise _NoResponse(f"There is no script {name!r}.", "NONEXISTENT")
        why = check_name(name, self.config.max_name_length if new else 1024, reserved)
        if why is not None:
            raise _NoResponse(f"Invalid script name: {why}.")
        return name

    # -- commands in any state ---------------------------------------------------------

    def _cmd_capability(self, args: tuple) -> None:
        if args:
            raise _Bad()
        self._send(self._capabilities() + p.response("OK", None, "Capability completed."))

    def _cmd_noop(self, args: tuple) -> None:
        tag = self._strings(args, 0, 1)
        if tag:
            try:
                tag[0].text()              # echoed in a response: it must be a UTF-8 string
            except UnicodeDecodeError:
                raise _Bad("The tag is not UTF-8.") from None
        code = p.tag_code(tag[0].data) if tag else None
        self._send(p.response("OK", code, "Done"))

    def _cmd_logout(self, args: tuple) -> None:
        if args:
            raise _Bad()
        self._send(p.response("OK", None, "Logout completed."))
        if self.account is not None:
            log.info("managesieve: logout: user=<%s> rip=%s", self.account.address, self.peer)
        self._logout()

    # -- before login -------------------------------------------------------------------

    def _cmd_starttls(self, args: tuple) -> Generator[Any, Any, None]:
        if args:
            raise _Bad()
        if not self.config.tls_available:
            self._send(p.response("NO", None, "TLS is not available."))
            return
        if self.secure:
            self._send(p.response("NO", None, "TLS is already active."))
            return
        self._send(p.response("OK", None, "Begin TLS negotiation now."))
        # Anything the client sent after STARTTLS in the clear must not count as sent over TLS.
        self.reader.discard()
        yield StartTLS()
        self.secure = True
        self._send(self._capabilities() + p.response("OK", None, "TLS negotiation successful."))

    def _cmd_authenticate(self, args: tuple) -> Generator[Any, Any, None]:
        # The mechanism is a string (RFC 5804 4, auth-type); a bare atom is a bad command, as
        # in Pigeonhole.
        strings = self._strings(args, 1, 2)
        mech = strings[0].data.decode("ascii", "replace").upper()
        initial = strings[1] if len(strings) > 1 else None
        if mech not in ("PLAIN", "LOGIN"):
            metrics.MANAGESIEVE_LOGINS.labels("refused").inc()
            self._send(p.response("NO", None, f"Unsupported authentication mechanism {mech}."))
            return
        if not self.plaintext_allowed():
            metrics.MANAGESIEVE_LOGINS.labels("refused").inc()
            self._send(p.response("NO", "ENCRYPT-NEEDED", "Plaintext authentication needs TLS (STARTTLS)."))
            return
        creds = yield from (self._sasl_plain(initial) if mech == "PLAIN" else self._sasl_login(initial))
        if creds is None:
            return
        username, password = creds
        client, now = client_key(self.peer), (self.clock() if self.clock is not None else 0.0)
        shared = self.failures_limit
        # Counted as failed before the check, so logins running side by side in threads (over
        # many connections) cannot pass the limits together; a name that does not exist counts
        # like a wrong password and takes the same path to the same NO.
        refused_by = shared.attempt(username, client, now) if shared is not None else None
        if refused_by is not None:
            self.failures += 1
            limited = self.failures >= self.config.login_failures_max
            metrics.MANAGESIEVE_LOGINS.labels("rate-limited").inc()
            log.warning("managesieve: login refused: user=<%s> method=%s rip=%s: too many failed logins "
                        "(limit=%s)", _printable(username), mech, self.peer, refused_by)
            yield Wait(self.config.login_failure_delay)
            if limited:
                self._bye("Too many failed logins.")
                return
            self._send(p.response("NO", None, "Too many failed logins, try again later."))
            return
        try:
            account = yield Call(lambda: self.backend.login(username, password))
        except DirectoryUnavailable as e:
            if shared is not None:
                shared.undo(username, client, now)
            metrics.MANAGESIEVE_LOGINS.labels("unavailable").inc()
            log.warning("managesieve: login: user=<%s> rip=%s: directory unavailable: %s", _printable(username),
                        self.peer, e)
            self._send(p.response("NO", "TRYLATER", "Authentication service unavailable, try again later."))
            return
        except (ValueError, StorageError, OSError) as e:
            if shared is not None:
                shared.undo(username, client, now)
            metrics.MANAGESIEVE_LOGINS.labels("unavailable").inc()
            log.warning("managesieve: login: user=<%s> rip=%s: no Sieve storage: %s", _printable(username),
                        self.peer, e)
            self._send(p.response("NO", "TRYLATER", "Your Sieve scripts cannot be reached now."))
            return
        if account is None:
            self.failures += 1
            log.warning("managesieve: login failed: user=<%s> method=%s rip=%s failures=%d",
                        _printable(username), mech, self.peer, self.failures)
            limited = self.failures >= self.config.login_failures_max
            metrics.MANAGESIEVE_LOGINS.labels("rate-limited" if limited else "failed").inc()
            # The NO comes login_failure_delay after the command, however long the check took:
            # a name that does not exist (a cheap dummy hash) answered sooner than a wrong
            # password for one that does (its real, slower hash), telling which addresses exist.
            spent = self.clock() - now if self.clock is not None else 0.0
            yield Wait(max(0.0, self.config.login_failure_delay - spent))
            if limited:
                self._bye("Too many failed logins.")
                return
            self._send(p.response("NO", None, "Authentication failed."))
            return
        if shared is not None:
            shared.succeeded(username, client, now)
        if self.user_slots is not None and not self.user_slots.take(account.address):
            metrics.MANAGESIEVE_LOGINS.labels("rate-limited").inc()
            log.warning("managesieve: login refused: user=<%s> rip=%s: %d connections from this "
                        "client already (managesieve_max_userip_connections)", account.address, self.peer,
                        self.user_slots.limits.per_user)
            self._send(p.response("NO", None, "Maximum number of connections from user+IP exceeded."))
            return
        metrics.MANAGESIEVE_LOGINS.labels("ok").inc()
        self.account = account
        self.state = AUTHENTICATED
        self.bad_commands = 0
        self._limits()
        log.info("managesieve: login: user=<%s> method=%s rip=%s%s", account.address, mech, self.peer,
                 " TLS" if self.secure else "")
        self._send(p.response("OK", None, "Logged in."))
        self._out.append(Timeout(self.idle_timeout))

    def _sasl_read(self) -> Generator[Any, Any, bytes | None]:
        """One client SASL response (a string holding base64), or None after NO was sent."""
        item = yield _READ
        if isinstance(item, p.Fatal):
            self._bye(f"Connection closed: {item.reason}.")
            raise _Quit()
        tokens = getattr(item, "tokens", None)
        if isinstance(item, p.Line) and len(tokens) == 1 and isinstance(tokens[0], p.String):
            if tokens[0].data == b"*":
                self._send(p.response("NO", None, "Authentication aborted."))
                return None
            return self._b64(tokens[0].data)
        self._send(p.response("NO", None, "Bad SASL response."))
        return None

    def _b64(self, data: bytes) -> bytes | None:
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            self._send(p.response("NO", None, "Bad base64 in the SASL response."))
            return None

    def _sasl_plain(self, initial: p.String | None) -> Generator[Any, Any, tuple[str, str] | None]:
        if initial is None:
            self._send(b'""\r\n')
            raw = yield from self._sasl_read()
        else:
            raw = self._b64(initial.data)
        if raw is None:
            return None
        parts = raw.split(b"\0")
        try:
            authzid, authcid, password = (x.decode("utf-8") for x in parts) if len(parts) == 3 else ("", "", "")
        except UnicodeDecodeError:
            authzid, authcid, password = "", "", ""
        if not authcid:
            self._send(p.response("NO", None, "Bad PLAIN response."))
            return None
        if authzid and authzid != authcid:
            self._send(p.response("NO", None, "Logging in as another user is not supported."))
            return None
        return authcid, password

    def _sasl_login(self, initial: p.String | None) -> Generator[Any, Any, tuple[str, str] | None]:
        if initial is None:
            self._send(p.string(base64.b64encode(b"Username:")) + b"\r\n")
            user = yield from self._sasl_read()
        else:
            user = self._b64(initial.data)
        if user is None:
            return None
        self._send(p.string(base64.b64encode(b"Password:")) + b"\r\n")
        password = yield from self._sasl_read()
        if password is None:
            return None
        try:
            return user.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            self._send(p.response("NO", None, "Bad LOGIN response."))
            return None

    # -- after login --------------------------------------------------------------------

    def _storage(self) -> Storage:
        assert self.account is not None
        return self.account.storage

    def _call(self, fn: Callable[[], bytes]) -> Generator[Any, Any, None]:
        """Run a storage operation in a thread; it returns the response bytes."""
        try:
            response = yield Call(fn)
        except StorageError as e:
            if e.temporary:
                log.warning("managesieve: user=<%s>: %s", self.account.address if self.account else "?", e)
                self._send(p.response("NO", "TRYLATER", "Your Sieve scripts cannot be reached now."))
            else:
                self._send(p.response("NO", e.code, str(e)))
            return
        except OSError as e:
            log.warning("managesieve: user=<%s>: %s", self.account.address if self.account else "?", e)
            self._send(p.response("NO", "TRYLATER", "Your Sieve scripts cannot be reached now."))
            return
        self._send(response)

    def _quota(self, storage: Storage, name: str, size: int) -> bytes | None:
        """NO (QUOTA...) when storing `size` bytes as `name` would break a limit (in the thread)."""
        c = self.config
        if size > c.max_script_size:
            return p.response("NO", "QUOTA/MAXSIZE", f"Script is too large (max {c.max_script_size} bytes).")
        usage = storage.usage()
        if c.max_scripts and name not in usage and len(usage) >= c.max_scripts:
            return p.response("NO", "QUOTA/MAXSCRIPTS", f"Too many scripts (max {c.max_scripts}).")
        if c.max_storage and sum(usage.values()) - usage.get(name, 0) + size > c.max_storage:
            return p.response("NO", "QUOTA", f"Not enough room for this script (max {c.max_storage} bytes in all).")
        return None

    def _checked(self, source: bytes, name: str, storage: Storage | None = None,
                 upload: bool = False) -> tuple[bytes | None, bytes]:
        """(NO response with the compile errors | None, WARNINGS text or b"") (in the thread);
        with `storage` the script's includes are compiled too (SETACTIVE; PUTSCRIPT and
        CHECKSCRIPT with `upload`)."""
        result = (self.backend.check(source, name, storage, upload=upload) if storage is not None
                  else self.backend.check(source, name))
        if result.errors:
            return p.response("NO", None, "\r\n".join(result.errors)), b""
        return None, "\r\n".join(result.warnings).encode("utf-8", "surrogateescape")   # (a script's bytes)

    def _cmd_havespace(self, args: tuple) -> Generator[Any, Any, None]:
        if len(args) != 2 or not isinstance(args[0], p.String) or not isinstance(args[1], p.Atom) \
                or not args[1].text.isdigit() or int(args[1].text) > p.NUMBER_MAX:
            raise _Bad()
        name = self._name(args[0], new=True)
        size = int(args[1].text)
        storage = self._storage()
        yield from self._call(lambda: self._quota(storage, name, size) or p.response("OK", None, "Putscript would succeed."))

    def _cmd_putscript(self, args: tuple) -> Generator[Any, Any, None]:
        name_arg, script = self._strings(args, 2)
        storage = self._storage()
        name = self._name(name_arg, lookup=False)        # a new name's length is checked below
        data = script.data
        address = self.account.address if self.account else "?"

        def work() -> bytes:
            if not storage.exists(name):
                why = check_name(name, self.config.max_name_length, storage.reserved)
                if why is not None:
                    return p.response("NO", None, f"Invalid script name: {why}.")
            refused = self._quota(storage, name, len(data))
            if refused is not None:
                return refused
            errors, warnings = self._checked(data, name, storage, upload=True)
            if errors is not None:
                return errors
            storage.put(name, data)
            metrics.MANAGESIEVE_SCRIPTS.labels("put").inc()
            log.info("managesieve: putscript: user=<%s> script=%r size=%d", address, name, len(data))
            if warnings:
                return p.response("OK", "WARNINGS", warnings)
            return p.response("OK", None, "Putscript completed.")
        yield from self._call(work)

    def _cmd_checkscript(self, args: tuple) -> Generator[Any, Any, None]:
        (script,) = self._strings(args, 1)
        data = script.data
        storage = self._storage()

        def work() -> bytes:
            if len(data) > self.config.max_script_size:
                return p.response("NO", "QUOTA/MAXSIZE", f"Script is too large (max {self.config.max_script_size} bytes).")
            errors, warnings = self._checked(data, "script", storage, upload=True)
            if errors is not None:
                return errors
            if warnings:
                return p.response("OK", "WARNINGS", warnings)
            return p.response("OK", None, "Script checked successfully.")
        yield from self._call(work)

    def _cmd_listscripts(self, args: tuple) -> Generator[Any, Any, None]:
        if args:
            raise _Bad()
        storage = self._storage()

        def work() -> bytes:
            lines = b"".join(p.string(name) + (b" ACTIVE" if active else b"") + b"\r\n"
                             for name, active in storage.list())
            return lines + p.response("OK", None, "Listscripts completed.")
        yield from self._call(work)

    def _cmd_getscript(self, args: tuple) -> Generator[Any, Any, None]:
        (arg,) = self._strings(args, 1)
        name = self._name(arg)
        storage = self._storage()
        yield from self._call(lambda: p.literal(storage.get(name)) + b"\r\n"
                              + p.response("OK", None, "Getscript completed."))

    def _cmd_setactive(self, args: tuple) -> Generator[Any, Any, None]:
        (arg,) = self._strings(args, 1)
        name = self._name(arg) if arg.data else None
        storage = self._storage()
        address = self.account.address if self.account else "?"

        def work() -> bytes:
            # As in Pigeonhole: activating the active script again changes nothing and is not
            # compiled again; another is compiled with its includes resolved (a missing or broken
            # included script refuses it) and its warnings come back as OK (WARNINGS) (RFC 5804
            # 1.3). Tests: tests/managesieve/test_dovecot_differential_s19.py
            warnings = b""
            if name is not None:
                source = storage.get(name)                                # NONEXISTENT when missing
                if storage.active() == name:
                    return p.response("OK", None, "Script is already active.")
                errors, warnings = self._checked(source, name, storage)
                if errors is not None:
                    return errors
            storage.activate(name)
            metrics.MANAGESIEVE_SCRIPTS.labels("activate" if name is not None else "deactivate").inc()
            log.info("managesieve: setactive: user=<%s> script=%r", address, name or "")
            if warnings:
                return p.response("OK", "WARNINGS", warnings)
            return p.response("OK", None, "Setactive completed.")
        yield from self._call(work)

    def _cmd_deletescript(self, args: tuple) -> Generator[Any, Any, None]:
        (arg,) = self._strings(args, 1)
        name = self._name(arg)
        storage = self._storage()
        address = self.account.address if self.account else "?"

        def work() -> bytes:
            storage.delete(name)
            metrics.MANAGESIEVE_SCRIPTS.labels("delete").inc()
            log.info("managesieve: deletescript: user=<%s> script=%r", address, name)
            return p.response("OK", None, "Deletescript completed.")
        yield from self._call(work)

    def _cmd_renamescript(self, args: tuple) -> Generator[Any, Any, None]:
        old_arg, new_arg = self._strings(args, 2)
        old = self._name(old_arg)
        storage = self._storage()
        address = self.account.address if self.account else "?"
        try:
            new: str | None = self._name(new_arg, new=True)
            refused = b""
        except _NoResponse as e:
            new, refused = None, p.response("NO", e.code, str(e))

        def work() -> bytes:
            # A missing script is NONEXISTENT before the new name is looked at (Pigeonhole's order).
            if not storage.exists(old):
                raise StorageError(f"there is no script {old!r}", "NONEXISTENT")
            if new is None:
                return refused
            storage.rename(old, new)
            metrics.MANAGESIEVE_SCRIPTS.labels("rename").inc()
            log.info("managesieve: renamescript: user=<%s> script=%r new=%r", address, old, new)
            return p.response("OK", None, "Renamescript completed.")
        yield from self._call(work)

    def _cmd_unauthenticate(self, args: tuple) -> None:
        if args:
            raise _Bad()
        if self.account is not None:
            log.info("managesieve: unauthenticate: user=<%s> rip=%s", self.account.address, self.peer)
        self.account = None
        if self.user_slots is not None:
            self.user_slots.release()
        self.state = NOT_AUTHENTICATED
        self.bad_commands = 0
        self._limits()
        self._send(p.response("OK", None, "Unauthenticate completed."))
        self._out.append(Timeout(self.login_timeout))


class _NoResponse(_Bad):
    """A refused argument answered with this NO text and code (not counted as a bad command)."""

    def __init__(self, text: str, code: str | None = None):
        super().__init__(text)
        self.code = code


def _script_literal(tokens: tuple) -> bool:
    """True when a literal after these tokens is a script: PUTSCRIPT's second argument,
    CHECKSCRIPT's first, or an argument after it (the arguments Dovecot streams, bounded by
    the script size rather than the line). Tests: tests/managesieve/test_literal_after_error.py"""
    if not tokens or not isinstance(tokens[0], p.Atom):
        return False
    name = tokens[0].text.upper()
    return (name == "PUTSCRIPT" and len(tokens) >= 2) or name == "CHECKSCRIPT"


def _printable(text: str) -> str:
    """A user name fit for a log line (control characters escaped, bounded)."""
    return text[:320].encode("unicode_escape", "backslashreplace").decode("ascii")
