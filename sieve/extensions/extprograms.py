"""vnd.dovecot.pipe, vnd.dovecot.filter and vnd.dovecot.execute (Pigeonhole's extprograms
plugin, spec-bosch-sieve-extprograms): external programs from an administrator's directory.

- `pipe [:copy] [:try] <program-name> [<arguments>]`: an action (`Pipe`) the delivery carries
  out after the script, like redirect; it cancels the implicit keep unless :copy. A pipe that
  fails is an error, and the message is kept (Pigeonhole's failure keep); with :try the
  failure is logged as a warning, not an error, and the message is still kept
  (sieve/delivery/planner.py: nothing lost, where Pigeonhole's :try stores nothing).
- `filter <program-name> [<arguments>]`: runs now; the program's output replaces the message for
  the rest of the script and the delivery. As a test: true when it ran and exited 0. As a
  command a program that cannot run is a runtime error (the message is kept as received); a
  non-zero exit leaves the message as it was.
- `execute [:input <string> / :pipe] [:output <varname>] <program-name> [<arguments>]`: runs
  now; :output (needs variables) gets its output on success. A test: true on exit 0; a program
  that cannot run is an error line and false, and the script goes on. As a command a program
  that cannot run (missing, refused, killed) is a runtime error, a non-zero exit is not (as
  Pigeonhole; tests/sieve/test_pigeonhole_probes_s18f.py).
The program name must be a constant plain file name (sieve.extprograms.name_error); literal
arguments are checked at compile time, built ones at run time. The extensions exist only when
their sieve_<name>_bin_dir is set (sieve.extensions.available). Programs run through
sieve.extprograms (`runner_of(rt.host)`: the host may give its own runner; tests fake it).
Tests: tests/sieve/test_extprograms.py, tests/sieve/test_pigeonhole_probes_s18f.py; conformance
plugins/extprograms/.
"""

from __future__ import annotations

from owlery.record import field
from sieve import extprograms as xp
from sieve.actions import Action
from sieve.errors import SieveRuntimeError
from sieve.extensions.base import STRING, STRINGLIST, CommandDef, Extension, TagDef


class Pipe(Action, frozen=True):
    """vnd.dovecot.pipe: give the message to `program` (in sieve_pipe_bin_dir) with `args`.
    `try_`: a failure is logged, not an error; `copy`: did not cancel the implicit keep.
    `env`: the run's part of the program's environment (sieve.extprograms.program_env).
    Store `Result.message_for(action)` (as edited when the script asked for it)."""

    name = "pipe"
    program: str = ""
    args: tuple[str, ...] = ()
    try_: bool = False
    copy: bool = False
    env: tuple[tuple[str, str], ...] = ()
    head: bytes | None = field(default=None, kw_only=True, compare=False, repr=False)


_ARG_NAMES = ("program-name", "arguments")


def _validate_program(v, node) -> None:
    """Pigeonhole's sieve_extprogram_command_validate: a constant, valid program name; valid
    literal arguments."""
    d = node.defn
    what = "test" if d.kind == "test" else "command"
    name_arg = node.pos[0]
    if not v.is_literal(name_arg):
        v.error(name_arg, f"the {d.name} {what} requires a constant string for its program-name argument")
        return
    name = name_arg.items[0].value
    if xp.name_error(name) is not None:
        v.error(name_arg, f"{d.name} {what}: invalid program name '{xp.sanitize(name)}'")
        return
    if len(node.pos) > 1:
        for s in node.pos[1].items:
            if s.parts is None and xp.arg_error(s.value) is not None:
                v.error(
                    s, f"{d.name} {what}: specified external program argument `{xp.sanitize(s.value, 128)}' is invalid"
                )
                return


def _validate_pipe(v, node) -> None:
    if node.tags.get("copy") and "copy" not in v.required:
        # :copy belongs to the copy extension (Pigeonhole registers it on pipe only then)
        v.error(
            node,
            "unknown tagged argument ':copy' for the pipe command (reported only once at first "
            "occurrence; the copy extension is not required)",
        )
        return
    _validate_program(v, node)


def _validate_execute(v, node) -> None:
    d = node.defn
    what = "test" if d.kind == "test" else "command"
    out = node.tags.get("output")
    if out is not None:
        if "variables" not in v.required:
            v.error(
                out,
                f"the {d.name} {what} only allows for the specification of an :output argument when "
                "the variables extension is active",
            )
            return
        from sieve.extensions.variables import check_name

        if not v.is_literal(out):
            v.error(out, f"the :output tag of the {d.name} {what} requires a variable name")
            return
        errors = v.errors
        check_name(v, out, out.items[0].value)
        if v.errors != errors:
            return
    _validate_program(v, node)


def _program(rt, node) -> tuple[str, list[str]]:
    name = node.pos[0].items[0].value
    args = rt.sl(node.pos[1]) if len(node.pos) > 1 else []
    if len(args) > rt.settings.sieve_extprograms_max_args:
        raise SieveRuntimeError(
            f"{node.defn.name} action: more than {rt.settings.sieve_extprograms_max_args} "
            "program arguments (sieve_extprograms_max_args)"
        )
    for a in args:
        if xp.arg_error(a) is not None:
            raise SieveRuntimeError(f"specified :args item `{xp.sanitize(a, 128)}' is invalid")
    return name, args


def _env(rt) -> tuple[tuple[str, str], ...]:
    from sieve.extensions.environment import env_value

    return xp.program_env(rt.envelope, env_value(rt, "host"))


def _run_now(rt, kind: str, name: str, args, *, input: bytes | None, capture: bool) -> xp.ProgramOutcome:
    req = xp.request(rt.settings, kind, name, args, _env(rt), input=input, capture=capture)
    if isinstance(req, xp.ProgramOutcome):
        return req
    rt.step(100)  # a program run is costly work for the budget too
    return xp.runner_of(rt.host)(req)


# --- pipe -----------------------------------------------------------------------------


def _run_pipe(rt, node):
    name, args = _program(rt, node)
    for a in rt.result.actions:
        if isinstance(a, Pipe) and a.program == name:
            raise SieveRuntimeError(f'duplicate pipe "{xp.sanitize(name)}" action not allowed')
    copy = bool(node.tags.get("copy"))
    action = Pipe(
        program=name, args=tuple(args), try_=bool(node.tags.get("try")), copy=copy, env=_env(rt), line=node.line
    )
    rt.act(node, action, cancels_keep=not copy)
    if not copy:
        # the message goes somewhere: no implicit keep (a failing pipe is kept by the delivery)
        rt.result.implicit_keep = False


def pipe_message(settings, action: Pipe, message: bytes, runner: xp.Runner) -> tuple[bool, list[str]]:
    """Carry out a pipe action (the delivery and the testsuite harness): (piped, the error
    lines when it failed; with :try they are only logged)."""
    req = xp.request(settings, "pipe", action.program, action.args, action.env, input=message, capture=False)
    outcome = req if isinstance(req, xp.ProgramOutcome) else runner(req)
    if outcome.ok:
        xp.log.info("sieve: pipe action: piped message to program `%s'", xp.sanitize(action.program, 128))
        return True, []
    return False, xp.failure_errors("pipe", action.program, outcome)


# --- filter ---------------------------------------------------------------------------


def substitute(rt, raw: bytes) -> None:
    """The message is now `raw` (the filter's output), for the rest of the run and the
    delivery: later actions and the implicit keep store it (as replace does, RFC 5703)."""
    from sieve.message import Message

    msg = rt.msg
    if not msg._crlf:  # keep the delivery's line ends
        raw = raw.replace(b"\r\n", b"\n")
    rt.charge_memory(len(raw))
    m = Message(raw, msg.max_scan, msg.max_fields)
    msg.headers = m.headers
    msg.header_rest = m.header_rest
    msg.body = m.body
    msg._crlf = m._crlf
    msg.edited = True
    msg.body_replaced = True
    msg.invalidate()
    # stored as the program wrote it (as Pigeonhole stores it) until a header edit: text that
    # is no message (no header block) is not lost to a re-parse
    msg.verbatim = (raw, msg.version)


def _run_filter(rt, node):
    name, args = _program(rt, node)
    outcome = _run_now(rt, "filter", name, args, input=rt.msg.to_bytes(), capture=True)
    if outcome.ok:
        substitute(rt, outcome.output)
        return True
    return _not_run(rt, node, "filter", name, outcome)


def _not_run(rt, node, what: str, name: str, outcome) -> bool:
    """False for a program that ran and exited non-zero. One that did not run (missing,
    refused, killed): as a test, false with its error lines; as a command a runtime error
    (Pigeonhole), the script ends and the message is kept."""
    if outcome.status != "false":
        errors = xp.failure_errors(what, name, outcome)
        if node.defn.kind == "test":
            rt.errors.extend(errors)
            return False
        rt.errors.extend(errors[:-1])
        raise SieveRuntimeError(errors[-1])
    return False


# --- execute --------------------------------------------------------------------------


def _run_execute(rt, node):
    name, args = _program(rt, node)
    data = None
    if node.tags.get("input:tag") == "input":
        data = rt.s(node.tags["input"]).encode("utf-8", "surrogateescape")
    elif node.tags.get("input") == "pipe":
        data = rt.msg.to_bytes()
    out = node.tags.get("output")
    outcome = _run_now(rt, "execute", name, args, input=data, capture=out is not None)
    if outcome.ok:
        if out is not None:
            from sieve.extensions.variables import assign

            rt.charge_memory(len(outcome.output))
            assign(rt, out.items[0].value, outcome.output.decode("utf-8", "surrogateescape"))
        return True
    return _not_run(rt, node, "execute", name, outcome)


_PIPE_TAGS = (TagDef("try"), TagDef("copy"))
_EXECUTE_TAGS = (TagDef("input", STRING, group="input"), TagDef("pipe", group="input"), TagDef("output", STRING))


def _defs(name, tags, validate, run, hybrid):
    kinds = ("command", "test") if hybrid else ("command",)
    return tuple(
        CommandDef(
            name,
            kind=k,
            positional=(STRING, STRINGLIST),
            optional_positional=1,
            tags=tags,
            validate=validate,
            run=run,
            arg_names=_ARG_NAMES,
        )
        for k in kinds
    )


EXTENSIONS = (
    Extension(
        name="vnd.dovecot.pipe",
        commands=_defs("pipe", _PIPE_TAGS, _validate_pipe, _run_pipe, False),
        rfc="vendor (Pigeonhole, spec-bosch-sieve-extprograms)",
        summary="pipe the message to a program of sieve_pipe_bin_dir",
    ),
    Extension(
        name="vnd.dovecot.filter",
        commands=_defs("filter", (), _validate_program, _run_filter, True),
        rfc="vendor (Pigeonhole, spec-bosch-sieve-extprograms)",
        summary="replace the message with a program's output (sieve_filter_bin_dir)",
    ),
    Extension(
        name="vnd.dovecot.execute",
        commands=_defs("execute", _EXECUTE_TAGS, _validate_execute, _run_execute, True),
        rfc="vendor (Pigeonhole, spec-bosch-sieve-extprograms)",
        summary="run a program of sieve_execute_bin_dir; its output into a variable",
    ),
)
