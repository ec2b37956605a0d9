"""Sieve interpreter: walks a validated script against one message and builds a Result.

No I/O: questions go to the Host (sieve.api.Host). Every command, test and comparison
costs CPU steps; past sieve_max_cpu_steps the run stops with a resource-limit error. Every
string the run builds is charged to a memory budget (`charge_memory`); past sieve_max_memory
the run stops the same way. Runtime errors end the run with status "error" (the delivery
then keeps into INBOX).
Names no extension: what extensions add to a run (string expansion, flags for the implicit
keep, tags on another extension's action) comes through the registry's hooks
(sieve.extensions: begin_run, end_run, expand_string, action_hooks); their per-run state
lives in `Runtime.ext`.
Talks to: sieve.result, sieve.match, sieve.message, the extensions' run functions and hooks.
Tests: conformance (every execute-time block), tests/sieve/test_api.py, tests/sieve/test_limits.py,
tests/sieve/test_budgets_hostile.py.
"""

from __future__ import annotations

from owlery import datetimes as _dt   # not datetime: its pure-Python copy runs first (LDA start-up)
from sieve import extensions, validator
from sieve.errors import SieveError, SieveResourceLimit, SieveRuntimeError, SieveTempFailure
from sieve.extensions.base import ReturnScript, StopScript
from sieve.message import Message
from sieve.parser import Num, Str, StrList
from sieve.result import Result, ResultBuilder

__all__ = ["Runtime", "execute", "run_toplevel", "StopScript", "ReturnScript"]


class Runtime:
    """The state of one run: message, envelope, variables, result, step budget."""

    def __init__(self, script, message: bytes, envelope, *, host, settings, environment, now,
                 result: ResultBuilder | None = None, msg: Message | None = None,
                 context: dict[str, dict] | None = None):
        self.script = script
        self.envelope = envelope
        self.host = host
        self.settings = settings
        self.environment = environment
        self.now = now if now.tzinfo else now.replace(tzinfo=_dt.timezone.utc)
        self.msg = msg if msg is not None else Message(message, settings.sieve_max_message_scan,
                                                          settings.sieve_max_header_fields)
        self.result = result if result is not None else ResultBuilder(settings, settings.sieve_default_mailbox)
        self.steps = 0
        self.max_steps = settings.sieve_max_cpu_steps
        self.memory = 0                   # bytes of strings built by this run (cumulative)
        self.max_memory = settings.sieve_max_memory
        self.max_match_subject = settings.sieve_max_match_subject
        self.vars: dict[str, str] = {}    # the current script's variables (sieve.match sets ${N})
        self.match_values: list[str] = []
        self.match_vars_enabled = False   # does matching set ${N}? (an extension's begin_run says)
        self.requires = script.requires   # the capabilities of the script now running
        self.ext: dict = {}               # per-run state of the extensions, each under its own keys
        # extensions whose message context an earlier script of this delivery left (they act
        # here too, as if required: Pigeonhole's multiscript) and that state itself
        self.context_extensions = frozenset(context or ())
        # the same, started by a script of this run's include tree (share_message_context)
        self.tree_extensions: frozenset[str] = frozenset()
        for state in (context or {}).values():
            self.ext.update(state)
        self.testsuite = None             # the harness, when running .svtest files
        self.errors: list[str] = []
        self._snapshot: tuple | None = None     # (message, its version, header block)
        extensions.begin_run(self)

    def uses(self, extension: str) -> bool:
        """Whether `extension` acts in this run: the running script requires it, an earlier
        script of the delivery left its message context, or a script of this run's include
        tree that requires it has started."""
        return (extension in self.requires or extension in self.context_extensions
                or extension in self.tree_extensions)

    def share_message_context(self, requires) -> None:
        """An included script starts: of its extensions and the running script's, those whose
        state belongs to the message (imap4flags' flags) act from now on in every script of
        the run (`uses`; Pigeonhole registers them on the result as such a script starts)."""
        self.tree_extensions = self.tree_extensions | extensions.message_context_extensions(
            self.requires | requires)

    def compile_source(self, source: bytes, *, name: str, settings):
        """Compile a script the run loads itself (include at run time), as compile_script does."""
        return validator.compile_source(source, name=name, settings=settings)

    # --- budget ---
    def step(self, n: int = 1) -> None:
        self.steps += n
        if self.steps > self.max_steps:
            raise SieveResourceLimit(f"execution exceeded CPU limit (sieve_max_cpu_steps {self.max_steps})")

    def charge_memory(self, n: int) -> None:
        """Charge `n` bytes of strings about to be built; call it before building them."""
        self.memory += n
        if self.memory > self.max_memory:
            raise SieveResourceLimit(
                f"execution exceeded memory limit (sieve_max_memory {self.max_memory} bytes)")

    # --- strings ---
    def s(self, s) -> str:
        if isinstance(s, StrList):
            s = s.items[0]
        if s.parts is None:
            return s.value
        return extensions.expand_string(self, s.parts)

    def sl(self, sl) -> list[str]:
        if isinstance(sl, Str):
            return [self.s(sl)]
        return [self.s(x) for x in sl.items]

    def num(self, n: Num) -> int:
        return n.value

    def set_match_values(self, values: list[str]) -> None:
        limit = self.settings.sieve_max_match_values
        kept = values[: limit + 1]
        # Match variables are variables (RFC 5229 6): a value past sieve_max_variable_size is
        # truncated as `set` truncates one, at a UTF-8 character boundary, as Pigeonhole does.
        size = self.settings.sieve_max_variable_size
        kept = [v if len(v) * 4 <= size or len(raw := v.encode("utf-8", "surrogateescape")) <= size
                else raw[:size].decode("utf-8", "ignore") for v in kept]
        self.charge_memory(sum(len(v) for v in kept))
        self.match_values = kept

    # --- matching ---
    def match(self, node, values, keys: list[str]) -> bool:
        from sieve.match import do_match
        spec = node.data.get("spec")
        if spec is None:
            spec = {"cmp": node.tags.get("comparator", "i;ascii-casemap"),
                    "mt": node.tags.get("match-type", "is"),
                    "rel": node.tags.get("relation"),
                    "regex_cache": node.data.get("regex_cache")}
            node.data["spec"] = spec
        return do_match(self, spec, values, keys)

    # --- tree walking ---
    def run_block(self, nodes) -> None:
        done = True   # result of the previous if/elsif chain: True = skip elsif/else
        for node in nodes:
            self.step()
            name = node.name
            if name == "if":
                done = False
                if node.skip:
                    continue
                if self.test(node.tests[0]):
                    done = True
                    self.run_block(node.block)
                continue
            if name == "elsif":
                if done or node.skip:
                    continue
                if self.test(node.tests[0]):
                    done = True
                    self.run_block(node.block)
                continue
            if name == "else":
                if not done:
                    done = True
                    self.run_block(node.block)
                continue
            done = True
            try:
                node.defn.run(self, node)
            except SieveRuntimeError as e:
                if not e.line:
                    e.line, e.column = node.line, node.column
                    e.args = (f"line {node.line}: {e.message}",)
                raise

    def test(self, node) -> bool:
        self.step()
        return bool(node.defn.run(self, node))

    def act(self, node, action, cancels_keep: bool = True) -> None:
        """Add the action command `node` asks for, as the extensions that add tags to that
        command complete it (imap4flags :flags, copy :copy, mailbox :create, ...)."""
        for _name, hook in extensions.action_hooks(node.defn.name):
            action, cancels_keep = hook(self, node, action, cancels_keep)
        self.add(action, cancels_keep)

    def add(self, action, cancels_keep: bool = True) -> None:
        if self.msg.edited and hasattr(action, "head") and action.head is None:
            # RFC 5293 7: an action that stores or sends the message uses the header as
            # edited so far; later edits do not reach it (one snapshot per edit state)
            snap = self._snapshot
            if snap is None or snap[0] is not self.msg or snap[1] != self.msg.version:
                head = self.msg.snapshot()
                self.charge_memory(len(head))
                snap = self._snapshot = (self.msg, self.msg.version, head)
            action = action.replace(head=snap[2])
        self.result.script_name = self.script_name_now()
        self.result.add(action, cancels_keep)

    def script_name_now(self) -> str:
        """The name of the script running now (an included one while it runs)."""
        stack = self.ext.get("include_stack")
        return stack[-1] if stack else self.script.name


def execute(script, message: bytes, envelope, *, host, settings, environment, now, context=None):
    """Run a compiled script; the public entry point is sieve.api.run."""
    rt = Runtime(script, message, envelope, host=host, settings=settings, environment=environment, now=now,
                 context=context)
    status = "ok"
    errors: list[str] = []
    try:
        run_toplevel(rt)
    except SieveTempFailure as e:
        status = "tempfail"
        errors.append(str(e))
    except SieveResourceLimit as e:
        status = "resource_limit"
        errors.append(str(e))
    except SieveRuntimeError as e:
        status = "error"
        errors.append(str(e))
    except SieveError as e:
        status = "error"
        errors.append(str(e))
    except RecursionError:
        status = "resource_limit"
        errors.append("script recursion too deep")
    res = rt.result
    # RFC 5293 7: after an error the implicit keep stores the message as received
    final = rt.msg.to_bytes() if status == "ok" else message
    return Result(status=status, actions=list(res.actions), implicit_keep=res.implicit_keep,
                  keep_flags=res.keep_flags, message=final, errors=errors + rt.errors,
                  default_mailbox=settings.sieve_default_mailbox, original=message,
                  body_offset=len(message) - rt.msg.original_body_len,
                  context=extensions.message_context(rt))


def run_toplevel(rt: Runtime) -> None:
    """Run rt.script; stop ends it normally. Errors propagate (SieveError)."""
    try:
        rt.run_block(rt.script.tree)
    except (StopScript, ReturnScript):
        pass
    extensions.end_run(rt)
