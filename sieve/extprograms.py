"""Running the external programs of vnd.dovecot.pipe, vnd.dovecot.filter and vnd.dovecot.execute
(Pigeonhole's extprograms plugin): the settings, the program-name and argument rules, and the
one place that starts a process.

A program is only ever looked up by a plain file name in the extension's configured directory
(sieve_pipe_bin_dir, sieve_filter_bin_dir, sieve_execute_bin_dir; unset: the extension does not
exist, `require` fails). It runs from an argv list (no shell), with Pigeonhole's small
environment (USER, HOME, HOST, SENDER, RECIPIENT, ORIG_RECIPIENT and nothing else: no PATH,
the shell's default applies, as under Pigeonhole), stdin the
message or the :input string (line ends per sieve_<ext>_input_eol), stdout captured up to a size
cap, stderr logged (capped), in its own process group that is killed when the time limit
passes, never as root (as root it runs as the mailbox owner, or not at all), with no file
descriptor of ours but its three pipes.
The extension modules (sieve/extensions/pipe.py, filter.py, execute.py) and the delivery
(sieve/delivery/executor.py) call `run_program` through a runner they can be given (the host's
`run_program`, else this module's): tests fake it. Everything here but `run_program` is pure.
Tests: tests/sieve/test_extprograms.py, tests/delivery/test_pipe_delivery.py, conformance
plugins/extprograms/.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from owlery.lazylog import get_logger
from owlery.record import Record
from owlery.settings import Duration, Size, Str, choice, int_range, setting

log = get_logger("owlery.sieve")

KINDS = ("pipe", "filter", "execute")

SIEVE_PIPE_BIN_DIR = setting(
    "sieve_pipe_bin_dir",
    Str,
    None,
    "Directory of the programs Sieve's vnd.dovecot.pipe may pipe messages to (by plain file name). "
    'Unset: the extension is not available (`require "vnd.dovecot.pipe"` fails).',
)
SIEVE_FILTER_BIN_DIR = setting(
    "sieve_filter_bin_dir",
    Str,
    None,
    "Directory of the programs Sieve's vnd.dovecot.filter may filter messages through. "
    "Unset: the extension is not available.",
)
SIEVE_EXECUTE_BIN_DIR = setting(
    "sieve_execute_bin_dir",
    Str,
    None,
    "Directory of the programs Sieve's vnd.dovecot.execute may run. Unset: the extension is not available.",
)
SIEVE_PIPE_EXEC_TIMEOUT = setting(
    "sieve_pipe_exec_timeout",
    Duration,
    "10s",
    "Longest a vnd.dovecot.pipe program may run; then its process group is killed and the pipe "
    "fails (the message is kept). 0: no limit (as Pigeonhole).",
    unit="s",
)
SIEVE_FILTER_EXEC_TIMEOUT = setting(
    "sieve_filter_exec_timeout",
    Duration,
    "10s",
    "Longest a vnd.dovecot.filter program may run; then it is killed and the filter fails "
    "(a runtime error: the message is kept unchanged). 0: no limit.",
    unit="s",
)
SIEVE_EXECUTE_EXEC_TIMEOUT = setting(
    "sieve_execute_exec_timeout",
    Duration,
    "10s",
    "Longest a vnd.dovecot.execute program may run; then it is killed and execute fails "
    "(false as a test). 0: no limit.",
    unit="s",
)
SIEVE_PIPE_INPUT_EOL = setting(
    "sieve_pipe_input_eol",
    choice("crlf", "lf"),
    "crlf",
    "Line ends of the message piped to a vnd.dovecot.pipe program (Pigeonhole's default crlf).",
)
SIEVE_FILTER_INPUT_EOL = setting(
    "sieve_filter_input_eol",
    choice("crlf", "lf"),
    "crlf",
    "Line ends of the message given to a vnd.dovecot.filter program.",
)
SIEVE_EXECUTE_INPUT_EOL = setting(
    "sieve_execute_input_eol",
    choice("crlf", "lf"),
    "crlf",
    "Line ends of the :input string or :pipe message given to a vnd.dovecot.execute program.",
)
SIEVE_FILTER_MAX_OUTPUT = setting(
    "sieve_filter_max_output",
    Size,
    "10M",
    "Largest output a vnd.dovecot.filter program may write (it becomes the message); more kills "
    "it and the filter fails.",
    unit="bytes",
)
SIEVE_EXECUTE_MAX_OUTPUT = setting(
    "sieve_execute_max_output",
    Size,
    "1M",
    "Largest output a vnd.dovecot.execute program may write (read into the :output variable, "
    "which sieve_max_variable_size then truncates); more kills it and execute fails.",
    unit="bytes",
)
SIEVE_EXTPROGRAMS_MAX_ARGS = setting(
    "sieve_extprograms_max_args",
    int_range(0, 1024),
    64,
    "Most arguments one pipe/filter/execute may give its program (each at most 1024 bytes, no "
    "CR or LF: Pigeonhole's rule); more is a runtime error.",
)

# Pigeonhole's limits (sieve-extprograms-common.c): part of the language, not settings
MAX_NAME_CHARS = 128
MAX_ARG_BYTES = 1024
MAX_STDERR_LOGGED = 4096  # bytes of a program's stderr that reach the log
_EXIT_GRACE = 1.0  # how long pipes are drained after the program itself exited


def name_error(name: str) -> str | None:
    """Why `name` is not a valid program name (Pigeonhole's rule, plus "." and ".."), or None."""
    if not name:
        return "empty"
    if name in (".", ".."):
        return "not a file name"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "not UTF-8"
    if len(name) > MAX_NAME_CHARS:
        return f"longer than {MAX_NAME_CHARS} characters"
    for c in name:
        o = ord(c)
        if o <= 0x1F or c == "/" or o == 0x7F or 0x80 <= o <= 0x9F or o == 0xFF or o in (0x2028, 0x2029):
            return "contains a forbidden character"
    return None


def arg_error(arg: str) -> str | None:
    """Why `arg` is not a valid program argument (Pigeonhole: at most 1024 bytes, no CR/LF;
    and no NUL, which no argv can hold), or None."""
    raw = arg.encode("utf-8", "surrogateescape")
    if len(raw) > MAX_ARG_BYTES:
        return f"longer than {MAX_ARG_BYTES} bytes"
    if b"\r" in raw or b"\n" in raw or b"\0" in raw:
        return "contains a line break or NUL"
    return None


def sanitize(text: str, limit: int = 80) -> str:
    """`text` for an error or log line: controls escaped, cut (Pigeonhole's str_sanitize)."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


def bin_dir(settings, kind: str) -> str | None:
    """The configured directory of extension `kind` ("pipe"...), None when unset or empty."""
    return getattr(settings, f"sieve_{kind}_bin_dir") or None


def timeout(settings, kind: str) -> float | None:
    """The time limit of `kind`'s programs in seconds; None: no limit (setting 0)."""
    t = getattr(settings, f"sieve_{kind}_exec_timeout")
    return t if t and t > 0 else None


def convert_eol(data: bytes, eol: str) -> bytes:
    """Line ends as `eol` ("crlf": every LF preceded by CR; "lf": CRLF becomes LF), as
    Dovecot's crlf/lf input streams."""
    data = data.replace(b"\r\n", b"\n")
    return data.replace(b"\n", b"\r\n") if eol == "crlf" else data


def program_env(envelope, host_name: str | None) -> tuple[tuple[str, str], ...]:
    """The environment Pigeonhole gives a program from the run (USER and HOME come from the
    host that runs it): HOST, SENDER, RECIPIENT, ORIG_RECIPIENT, each only when known."""
    env = []
    if host_name:
        env.append(("HOST", host_name))
    if envelope is not None:
        if envelope.mail_from:
            env.append(("SENDER", envelope.mail_from))
        if envelope.rcpt_to:
            env.append(("RECIPIENT", envelope.rcpt_to))
        if envelope.orig_rcpt:
            env.append(("ORIG_RECIPIENT", envelope.orig_rcpt))
    return tuple((k, v) for k, v in env if "\0" not in v)


class ProgramRun(Record, frozen=True, slots=True):
    """One program run. `path`: the located program; `args`; `env` ((name, value) pairs);
    `input`: stdin (None: /dev/null); `capture`: read stdout (else /dev/null) up to `max_output`
    bytes; `timeout` seconds (None: none); `uid`/`gid`: run as (None: as this process, which
    must not be root). A record (owlery.record): a frozen dataclass costs ~1 ms to define, paid
    by every LDA run that reads a sieve_* setting."""

    kind: str
    name: str
    path: str
    args: tuple = ()
    env: tuple = ()
    input: bytes | None = None
    capture: bool = False
    max_output: int = 0
    timeout: float | None = None
    uid: int | None = None
    gid: int | None = None


class ProgramOutcome(Record, frozen=True, slots=True):
    """status: ok (exit 0) | false (exit status not 0) | not_found | timeout | too_large |
    refused (root, unsafe program) | error (could not run); `output` (stdout when captured),
    `exit_code`, `detail` (for the error line and the log)."""

    status: str
    output: bytes = b""
    exit_code: int | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


Runner = Callable[[ProgramRun], ProgramOutcome]


def locate(settings, kind: str, name: str) -> tuple[str | None, ProgramOutcome | None]:
    """(path, None) of program `name` in `kind`'s directory, or (None, the failure): not_found,
    not a regular file, world-writable (refused, as Pigeonhole), directory unset."""
    directory = bin_dir(settings, kind)
    if directory is None:
        return None, ProgramOutcome("not_found", detail=f"vnd.dovecot.{kind} extension is unconfigured")
    why = name_error(name)
    if why is not None:
        return None, ProgramOutcome("refused", detail=f"invalid program name ({why})")
    path = os.path.join(directory, name)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None, ProgramOutcome("not_found", detail=f"program `{sanitize(name)}' not found")
    except OSError as e:
        return None, ProgramOutcome("error", detail=f"cannot stat program `{sanitize(name)}': {e.strerror}")
    if not stat.S_ISREG(st.st_mode):
        return None, ProgramOutcome("error", detail=f"executable for program `{sanitize(name)}' is not a regular file")
    if st.st_mode & stat.S_IWOTH:
        return None, ProgramOutcome("refused", detail=f"executable for program `{sanitize(name)}' is world-writable")
    return path, None


def request(settings, kind: str, name: str, args, env, *, input: bytes | None, capture: bool) -> ProgramRun | ProgramOutcome:
    """A ProgramRun for `kind`'s program `name` with the settings' limits, or the ProgramOutcome that
    says why there is none (program missing, bad arguments)."""
    args = tuple(args)
    if len(args) > settings.sieve_extprograms_max_args:
        return ProgramOutcome(
            "refused", detail=f"more than {settings.sieve_extprograms_max_args} arguments (sieve_extprograms_max_args)"
        )
    for a in args:
        why = arg_error(a)
        if why is not None:
            return ProgramOutcome("refused", detail=f"specified argument `{sanitize(a, 128)}' is invalid ({why})")
    path, failed = locate(settings, kind, name)
    if failed is not None:
        return failed
    if input is not None:
        input = convert_eol(input, getattr(settings, f"sieve_{kind}_input_eol"))
    max_output = {"filter": settings.sieve_filter_max_output, "execute": settings.sieve_execute_max_output}.get(kind, 0)
    return ProgramRun(kind, name, path, args, tuple(env), input, capture, max_output, timeout(settings, kind))


def run_program(req: ProgramRun) -> ProgramOutcome:
    """Start the program of `req` and wait for it within its time limit (the only I/O here).

    Refuses to run as root: as root, `req.uid`/`req.gid` (the mailbox owner, never 0) are
    taken, with no supplementary groups."""
    import subprocess  # here: the settings above are read by every LDA run, which runs no program

    euid = os.geteuid()
    user: dict = {}
    if euid == 0:
        if not req.uid or req.gid is None:
            return ProgramOutcome("refused", detail="will not run an external program as root (no mailbox owner to run it as)")
        user = {"user": req.uid, "group": req.gid, "extra_groups": []}
    elif req.uid is not None and req.uid != euid:
        return ProgramOutcome("refused", detail=f"cannot run the program as uid {req.uid} (not root)")
    env = {k: v for k, v in req.env if "\0" not in k + v and "=" not in k and k}
    argv = [req.path, *req.args]
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if req.input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if req.capture else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            cwd="/",
            close_fds=True,
            start_new_session=True,
            umask=0o077,
            **user,
        )
    except FileNotFoundError:
        return ProgramOutcome("not_found", detail=f"program `{sanitize(req.name)}' not found")
    except OSError as e:
        return ProgramOutcome("error", detail=f"cannot start program `{sanitize(req.name)}': {e.strerror or e}")
    try:
        return _wait(proc, req)
    finally:
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None:
                f.close()
        if proc.returncode is None:
            _kill(proc)
            proc.wait()


def _kill(proc) -> None:
    """Kill the program and whatever it started (its own process group)."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:  # the group's leader changed uid: at least the child
        try:
            proc.kill()
        except ProcessLookupError:
            pass


def _wait(proc, req: ProgramRun) -> ProgramOutcome:
    import selectors
    import time

    start = time.monotonic()
    deadline = start + req.timeout if req.timeout else None
    sel = selectors.DefaultSelector()
    out = bytearray()
    err = bytearray()
    data = memoryview(req.input or b"")
    sent = 0
    pidfd = None
    try:
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            if data:
                sel.register(proc.stdin, selectors.EVENT_WRITE)
            else:
                proc.stdin.close()
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                os.set_blocking(f.fileno(), False)
                sel.register(f, selectors.EVENT_READ)
        try:
            pidfd = os.pidfd_open(proc.pid)
            sel.register(pidfd, selectors.EVENT_READ)
        except (AttributeError, OSError):
            pidfd = None
        exited_at = None
        while True:
            if proc.poll() is not None and exited_at is None:
                exited_at = time.monotonic()
                if pidfd is not None:
                    sel.unregister(pidfd)
                    os.close(pidfd)
                    pidfd = None
            readers = [k for k in sel.get_map().values() if k.fileobj in (proc.stdout, proc.stderr)]
            if exited_at is not None and not readers:
                break
            now = time.monotonic()
            limits = []
            if deadline is not None:
                limits.append(deadline - now)
            if exited_at is not None:
                limits.append(exited_at + _EXIT_GRACE - now)  # a leftover child holds the pipes
            if pidfd is None and exited_at is None:
                limits.append(0.05)  # no pidfd: look again soon
            wait = min(limits) if limits else None
            if wait is not None and wait <= 0:
                if exited_at is not None:
                    _kill(proc)  # the program is gone; its leftovers are not waited for
                    break
                _kill(proc)
                proc.wait()
                _log_stderr(req, err)
                return ProgramOutcome(
                    "timeout", bytes(out), None, f"program `{sanitize(req.name)}' timed out after {req.timeout:g} s"
                )
            for key, _events in sel.select(wait):
                f = key.fileobj
                if f is pidfd:
                    continue  # the loop's poll() sees the exit
                if f is proc.stdin:
                    try:
                        n = os.write(proc.stdin.fileno(), data[sent : sent + 65536])
                    except BlockingIOError:
                        continue
                    except (BrokenPipeError, ConnectionResetError):
                        n = len(data) - sent  # the program stopped reading: its choice
                    sent += n
                    if sent >= len(data):
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                    continue
                try:
                    chunk = os.read(f.fileno(), 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(f)
                    continue
                if f is proc.stdout:
                    out += chunk
                    if len(out) > req.max_output:
                        _kill(proc)
                        proc.wait()
                        _log_stderr(req, err)
                        return ProgramOutcome(
                            "too_large",
                            b"",
                            None,
                            f"program `{sanitize(req.name)}' wrote more than {req.max_output} bytes",
                        )
                elif len(err) < MAX_STDERR_LOGGED:
                    err += chunk[: MAX_STDERR_LOGGED - len(err)]
    finally:
        if pidfd is not None:
            os.close(pidfd)
        sel.close()
    code = proc.wait()
    _log_stderr(req, err)
    if code == 0:
        return ProgramOutcome("ok", bytes(out), 0)
    if code < 0:
        return ProgramOutcome("error", b"", code, f"program `{sanitize(req.name)}' killed by signal {-code}")
    return ProgramOutcome("false", bytes(out), code, f"program `{sanitize(req.name)}' exited with status {code}")


def _log_stderr(req: ProgramRun, err: bytearray) -> None:
    if err:
        text = bytes(err).decode("utf-8", "replace")
        log.info(
            "sieve: %s program %s: stderr: %s",
            req.kind,
            sanitize(req.name, 128),
            sanitize(text.replace("\n", " | "), MAX_STDERR_LOGGED),
        )


def runner_of(host) -> Runner:
    """The host's runner (it sets the uid and USER/HOME: the delivery's, the harness's, a
    test's fake), else `run_program`."""
    return getattr(host, "run_program", None) or run_program


def with_identity(req: ProgramRun, *, user: str | None, home: str | None, uid: int | None, gid: int | None) -> ProgramRun:
    """`req` to run as `uid`/`gid` (when root) with USER and HOME set (Pigeonhole's)."""
    env = dict(req.env)
    if user:
        env.setdefault("USER", user)
    if home:
        env.setdefault("HOME", home)
    return req.replace(env=tuple(env.items()), uid=uid, gid=gid)


def failure_errors(kind: str, name: str, outcome: ProgramOutcome) -> list[str]:
    """The error lines of a failed `kind` run, as Pigeonhole words them: a missing program is
    one line; any other failure the cause, then "failed to ..." (refer to the log)."""
    n = sanitize(name)
    if outcome.status == "not_found":
        if kind == "pipe":
            return [f"pipe action: failed to pipe message to program: program `{n}' not found"]
        return [f"{kind} action: program `{n}' not found"]
    if outcome.status == "false":
        return [f"{kind} action: failed to execute to program `{n}': {outcome.detail}"]
    what = "failed to pipe message to program" if kind == "pipe" else "failed to execute to program"
    return [
        f"{kind} action: {outcome.detail or outcome.status}",
        f"{kind} action: {what} `{n}': refer to server log for more information.",
    ]


__all__ = [
    "KINDS",
    "ProgramOutcome",
    "ProgramRun",
    "Runner",
    "arg_error",
    "bin_dir",
    "convert_eol",
    "failure_errors",
    "locate",
    "name_error",
    "program_env",
    "request",
    "run_program",
    "runner_of",
    "timeout",
    "with_identity",
]
