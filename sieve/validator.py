"""Sieve validator: binds each command/test of the syntax tree to its definition from the
extension registry, checks arguments, blocks, requires and limits, and collects every
error with line:column. Produces the `Script` that sieve.interpreter runs.

Names no extension: the match types, address parts and comparators each extension makes
available, the tags one extension adds to another's command and the checks that go with them
come from the registry (sieve.extensions: MATCH_TYPES, ADDRESS_PARTS, COMPARATORS,
for_command); what the core language needs (require, if/elsif/else, `if false`, loop nesting,
argument types) stays here.
Talks to: sieve.parser, sieve.extensions (registry). Tests: the conformance run
(tests/sieve/test_conformance.py: compile/errors.svtest), tests/sieve/test_compile_errors_reference.py
(Pigeonhole's error rules and wording, differential against sievec),
tests/sieve/test_compile_errors_generated.py (generated scripts of every extension: error counts
and decisions against sievec), tests/sieve/test_api.py (line:column),
tests/sieve/test_limits.py (script size, nesting), tests/sieve/test_cli.py (`owlery sieve check`).
"""

from __future__ import annotations

from owlery.settings import Settings
from sieve import extensions
from sieve.errors import Diagnostic, SieveCompileError, SieveSyntaxError, sanitized
from sieve.extensions.base import NUMBER, STRING, STRINGLIST, CommandDef
from sieve.lexer import hash_comment_at_eof
from sieve.match import check_match_spec
from sieve.parser import Node, Num, Str, StrList, Tag, parse
from sieve.script import Script

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _provider(table: dict, name: str) -> str | None:
    """The extension that makes a match type, address part or comparator available."""
    entry = table.get(name)
    return entry[0] if isinstance(entry, tuple) else entry


def _conflict_message(node: Node, d: CommandDef, what: str, t) -> str:
    """A tag given twice, or with another of its group (TagDef.conflict: the extension's words)."""
    prev = node.tags.get(t.slot + ":tag", node.tags.get(t.slot))
    prev = prev if isinstance(prev, str) else t.name
    text = t.conflict or "encountered duplicate :{tag} argument for the {cmd} {what}"
    return text.format(tag=t.name, prev=prev, cmd=d.name, what=what)


class TooManyErrors(Exception):
    """Validation stopped: Validator.max_errors errors were reported (compile_source's max_errors)."""


class Validator:
    def __init__(self, name: str, settings: Settings, extra_extensions=(), shared: dict | None = None):
        self.name = name
        self.settings = settings
        self.registry = extensions.REGISTRY
        self.disabled = set(settings.sieve_extensions_disabled)
        self.extra = set(extra_extensions)
        self.required: set[str] = set()
        self.diags: list[Diagnostic] = []
        self.error_count = 0          # errors in diags (counted as they come: checked per command)
        self.max_errors = 0           # stop validating at this many errors (0: report every one)
        self.cmds: dict[str, CommandDef] = {}
        self.tsts: dict[str, CommandDef] = {}
        self.loader = None            # loader(name, location) -> bytes | None, for compile-time includes
        self.seen_non_require = False
        self.enclosing: list[str] = []  # names of the commands whose blocks enclose this point
        self.loop_depth = 0           # how many of those are loops (CommandDef.loop)
        self.loops: list[Node] = []   # those loops, outermost first (break :name reads them)
        # extensions a test loaded for its block (ihave), not `require`: not held to `requires`
        self.conditional_loads: set[str] = set()
        self.data: dict = {}          # per-script validator state for extensions
        self.arguments_failed = False  # set by a string hook: this command's arguments failed
        # state shared by every script of one compile (the top one and those it includes)
        self.shared: dict = shared if shared is not None else {}
        self._load("core")

    # --- diagnostics ---
    def error(self, where, msg: str) -> None:
        self.add(Diagnostic(self.name, getattr(where, "line", 0), getattr(where, "column", 0), msg))

    def add(self, diag: Diagnostic) -> None:
        """Record a diagnostic; raises TooManyErrors once max_errors errors are in."""
        self.diags.append(diag)
        if diag.severity == "error":
            self.error_count += 1
            if self.max_errors and self.error_count >= self.max_errors:
                raise TooManyErrors()

    def warning(self, where, msg: str) -> None:
        self.diags.append(Diagnostic(self.name, getattr(where, "line", 0), getattr(where, "column", 0),
                                     msg, "warning"))

    @property
    def errors(self) -> int:
        # (a counter, not a count over diags: bind() reads it for every command, and a script
        # of 20,000 bad commands took 62 s of CPU when this walked the list each time)
        return self.error_count

    # --- extensions ---
    def known(self, ext: str) -> bool:
        e = self.registry.get(ext)
        if e is None or ext in self.disabled:
            return False
        if e.hidden and ext not in self.extra:
            return False
        # an extension that needs a setting (extprograms' directories) exists only with it
        return ext in self.extra or extensions.available(ext, self.settings)

    def _load(self, ext: str, where=None) -> None:
        """Make `ext` available (require, ihave at `where`). An extension that conflicts with
        one already loaded (Extension.conflicts) is an error each time it is named, as in
        Pigeonhole: the deprecated one named second is not loaded; named first, it keeps the
        names both define (imapflags' setflag, notify's notify)."""
        e = self.registry[ext]
        clash = next((o for o in self.required
                      if o != ext and (o in e.conflicts or ext in self.registry[o].conflicts)), None)
        if clash is not None:
            old, new = (clash, ext) if ext in self.registry[clash].conflicts else (ext, clash)
            self.error(where, f"the (deprecated) {old} extension cannot be used together with the {new} extension")
            if ext == old or ext in self.required:
                return
            self.required.add(ext)
            for c in e.commands:
                (self.cmds if c.kind == "command" else self.tsts).setdefault(c.name, c)
            return
        if ext in self.required:
            return
        self.required.add(ext)
        for c in e.commands:
            (self.cmds if c.kind == "command" else self.tsts)[c.name] = c
        for imp in e.implies:
            if self.known(imp):
                self._load(imp)

    def require(self, ext: str, where) -> bool:
        if ext.startswith("comparator-") and ext[len("comparator-"):] in extensions.COMPARATORS:
            if ext in self.registry:
                self._load(ext)
            return True
        if not self.known(ext):
            if any(c.name == ext and c.kind == "command" for c in self.registry["core"].commands):
                self.error(where, f"require command: `{ext}' is not known as a Sieve capability, but it is known "
                                  f"as a Sieve command that is always available")
            else:
                self.error(where, f"require command: unknown Sieve capability `{sanitized(ext)}'")
            return False
        self._load(ext, where)
        at = self.data.setdefault("required_at", {})
        if ext not in at:
            # Extension.not_with: a pair that should not both be required (a warning, as sievec)
            pairs = [(o, ext) for o in self.registry[ext].not_with if o in at]
            pairs += [(ext, o) for o in at if ext in self.registry[o].not_with]
            for first, second in pairs:
                self.warning(where, f"the {first} and {second} extensions should not be specified at the same time")
        at.setdefault(ext, where)
        return True

    def has(self, ext: str) -> bool:
        return ext in self.required

    # --- strings ---
    def literal(self, s: Str) -> str:
        return s.value

    def is_literal(self, s) -> bool:
        """True when the string cannot change at run time (no variable references)."""
        if isinstance(s, StrList):
            return all(self.is_literal(x) for x in s.items)
        if not isinstance(s, Str):
            return False
        return s.parts is None

    def prepare_string(self, s: Str) -> None:
        from sieve.extensions import prepare_string
        prepare_string(self, s)

    def tag_string_value(self, s: Str) -> str | None:
        """The value of a tag's constant string parameter (a comparator name, a relation) as
        the string hooks leave it, read before the command's strings are prepared: RFC 5228
        2.4.2.4 decodes encoded characters in every string before any other processing, so
        `:comparator "i;${hex:6f}ctet"` names "i;octet". None when the string refers to
        variables or a hook refused it (arguments_failed, its error reported)."""
        probe = Str(s.value, s.line, s.column, s.multiline)
        self.arguments_failed = False
        self.prepare_string(probe)
        if self.arguments_failed or probe.parts is not None:
            return None
        return probe.value

    # --- the tree ---
    def validate_block(self, nodes: list[Node], depth: int, toplevel: bool) -> None:
        prev = None
        for node in nodes:
            if node.is_test:
                self.error(node, f"attempted to use test '{node.name}' as command")
                continue
            self.validate_command(node, depth, toplevel, prev)
            prev = node

    def validate_command(self, node: Node, depth: int, toplevel: bool, prev: Node | None) -> None:
        if node.name == "require":
            if not toplevel or self.seen_non_require and not self.settings_allow_late_require():
                # (a misplaced require's capabilities are not looked at, as in Pigeonhole; its
                # tags, number of arguments, sub-tests and block are, first)
                node.data["misplaced"] = "require commands can only be placed at top level at the beginning of the file"
                self.bind(node, self.cmds["require"], 1)
                return
            errors_before = self.errors
            self.bind(node, self.cmds["require"], 1)
            if self.errors == errors_before and node.pos and isinstance(node.pos[0], StrList):
                for s in node.pos[0].items:
                    self.require(s.value, s)
            return
        d = self.cmds.get(node.name)
        if d is None:
            other = self.tsts.get(node.name)
            if other is not None:
                self.error(node, f"attempted to use test '{node.name}' as command")
            else:
                self._unknown_identifier(node, "command")
            return
        # (an unknown command, or a test used as one, does not make a later require misplaced:
        # one error for `frop; require "x";`, as in Pigeonhole)
        self.seen_non_require = True
        if d.toplevel_only and not toplevel:
            self.error(node, f"{node.name} command can only be used at top level")
        if node.name in ("elsif", "else"):
            if prev is None or prev.name not in ("if", "elsif"):
                # (reported by bind once the command's arguments, test and block are right, as
                # Pigeonhole checks it: one error for a lone `else;`)
                node.data["misplaced"] = f"the {node.name} command must follow an if or elseif command"
            elif prev.data.get("chain_taken"):
                # an earlier if/elsif of the chain is always taken (`if not ihave "x"`): this
                # one never runs, so neither its test nor its block is validated (RFC 5463)
                node.defn = d
                node.skip = True
                node.data["chain_taken"] = True
                return
        self.bind(node, d, 1)      # tests count their level from their command (parser.py)
        if node.name in ("if", "elsif") and len(node.tests) == 1 and node.tests[0].data.get("const_true"):
            node.data["chain_taken"] = True
        # (a block where the command takes none is not looked into, as in Pigeonhole: one error
        # for `keep if true { frop; }`)
        if node.block is not None and not node.skip and d.block != "none":
            self.enclosing.append(d.name)
            if d.loop:
                self.loop_depth += 1
                self.loops.append(node)
                if self.loop_depth > self.settings.sieve_max_loop_nesting:
                    self.error(node, f"{d.name} loops nested too deeply "
                                     f"(sieve_max_loop_nesting {self.settings.sieve_max_loop_nesting})")
            try:
                self.validate_block(node.block, depth + 1, False)
            finally:
                self.enclosing.pop()
                if d.loop:
                    self.loop_depth -= 1
                    self.loops.pop()

    def settings_allow_late_require(self) -> bool:
        return False

    def bind(self, node: Node, d: CommandDef, depth: int) -> None:
        """`depth`: the test level of `node` (a command is 1, its tests 2, ...)."""
        errors_before = self.errors
        node.defn = d
        what = "test" if d.kind == "test" else "command"
        # Pigeonhole's order: arguments, then sub-tests, then the block; a command reports at
        # most one argument error, the block is only checked when both went well, and the
        # sub-tests are validated themselves when the command takes any, even when their number
        # or form was wrong (`if (frop, true)`: two errors), never where it takes none.
        args_ok = self._bind_arguments(node, d, what)
        late = node.data.pop("late_error", None)
        subtests_ok = self._check_subtests(node, d, what)
        block_ok = True
        if (args_ok or late) and subtests_ok:
            before_block = self.errors
            self._check_block(node, d)
            block_ok = self.errors == before_block
            # then the command's own validation: where it stands (require, elsif, else), then
            # its arguments' types
            misplaced = node.data.pop("misplaced", None)
            if misplaced and self.errors == errors_before:
                self.error(node, misplaced)
            if late and self.errors == errors_before:
                self.error(*late)
        if args_ok and subtests_ok and block_ok:
            # (Pigeonhole checks a command's own rules, its match type, comparator or regex,
            # only once its arguments, sub-tests and block passed: `header :regex "s" "[0-"
            # from "x"` is one error, the missing ';', not two)
            self._check_after_arguments(node, d, what)
        if subtests_ok or d.subtests != 0:
            for t in node.tests:
                self.validate_test(t, depth + 1)
                # RFC 5463: what a false ihave guards is never evaluated, so it is not validated
                # (`allof(ihave "x", <x's test>)` and `if not ihave "x" {...} else {<x>}` compile
                # without x, as in sieve-test). Only ihave makes a test constant here: literal
                # true/false guard nothing (deviations.toml: dead-code-not-validated).
                if d.name == "allof" and t.data.get("const_false"):
                    node.data["const_false"] = True     # the tests after it are never run
                    break
                if d.name == "anyof" and t.data.get("const_true"):
                    node.data["const_true"] = True
                    break
                if d.name == "not":
                    if t.data.get("const_false"):
                        node.data["const_true"] = True
                    elif t.data.get("const_true"):
                        node.data["const_false"] = True
        # const-false dead code: Pigeonhole skips `if false {}` blocks; a test that knows at
        # compile time that it is false says so in its data (ihave of an unknown capability)
        if d.name in ("if", "elsif") and len(node.tests) == 1 and (
                node.tests[0].name == "false" and not node.tests[0].args
                or node.tests[0].data.get("const_false")):
            node.skip = True
        if d.validate is not None and self.errors == errors_before:
            # extension checks assume well-typed arguments
            d.validate(self, node)
        if self.errors == errors_before:
            for check in extensions.for_command("tag_checks", d.name, self.required):
                check(self, node)

    def _allowed_tags(self, d: CommandDef) -> dict:
        allowed = {t.name: t for t in d.tags}
        for t in extensions.for_command("extra_tags", d.name, self.required):
            allowed[t.name] = t
        return allowed

    def _tag_known(self, d: CommandDef, allowed: dict, tname: str) -> bool:
        if tname in allowed:
            return True
        if d.match and (tname == "comparator" or _provider(extensions.MATCH_TYPES, tname) in self.required):
            return True
        return d.address_part and _provider(extensions.ADDRESS_PARTS, tname) in self.required

    def _unknown_tag(self, tag: Tag, d: CommandDef, what: str) -> None:
        # reported once per command and tag name, as Pigeonhole does
        seen = self.data.setdefault("unknown_tags", set())
        if (d.name, tag.name) in seen:
            return
        seen.add((d.name, tag.name))
        self.error(tag, f"unknown tagged argument ':{tag.written}' for the {d.name} {what} "
                        f"(reported only once at first occurrence)")

    def _tag_param_error(self, tag: Tag, d: CommandDef, what: str, want: str, found) -> None:
        got = "no parameters were found" if found is None else f"{self.kind(found)} was found"
        tdef = self._allowed_tags(d).get(tag.name)
        words = tdef.param_words if tdef is not None and tdef.param_words else f"{want} as parameter"
        # (at the argument found, where Pigeonhole reports it: the line differs when it is on the next)
        self.error(tag if found is None else found,
                   f"the :{tag.name} tag for the {d.name} {what} requires {words}, but {got}")

    def _bind_arguments(self, node: Node, d: CommandDef, what: str) -> bool:
        """Tagged then positional arguments; stops at the first error (returns False)."""
        args = list(node.args)
        allowed = self._allowed_tags(d)
        # an unknown tag is reported wherever it stands, before anything else
        for a in args:
            if isinstance(a, Tag) and not self._tag_known(d, allowed, a.name):
                self._unknown_tag(a, d, what)
                return False
        if d.arguments_first is not None and d.arguments_first(self, node, args):
            return False
        for check in extensions.for_command("early_checks", d.name, self.required):
            if check(self, node, args):
                return False
        i = 0
        # tagged arguments come first
        while i < len(args) and isinstance(args[i], Tag):
            tag = args[i]
            tname = tag.name
            i += 1
            nxt = args[i] if i < len(args) else None
            if d.match and tname == "comparator":
                if not self._type_ok(nxt, STRING):      # ["i;octet"] is a string list
                    self._tag_param_error(tag, d, what, "a string", nxt)
                    return False
                # comparator names are matched without regard to ASCII case, as sievec does
                # ("I;OCTET"); the capability names `require` takes are not
                name = self.tag_string_value(nxt.items[0])
                if self.arguments_failed:
                    return False
                cmp_ = (nxt.items[0].value if name is None else name).translate(_ASCII_LOWER)
                i += 1
                ext = extensions.COMPARATORS.get(cmp_)
                if ext is None or ext not in self.required:
                    self.error(tag, f"unknown comparator '{sanitized(nxt.items[0].value)}'")
                    return False
                if "comparator" in node.tags:
                    self.error(tag, f"encountered duplicate :comparator argument for the {d.name} {what}")
                    return False
                node.tags["comparator"] = cmp_
                continue
            if d.match and tname in extensions.MATCH_TYPES:
                if "match-type" in node.tags:
                    self.error(tag, f"encountered duplicate MATCH-TYPE argument (:{tname}) for the {d.name} {what}")
                    return False
                node.tags["match-type"] = tname
                mdef = extensions.MATCH_TYPES[tname][1]
                if mdef.bind is not None:
                    took = mdef.bind(self, node, d, what, tag, nxt)
                    if took is None:
                        return False
                    i += took
                continue
            if d.address_part and tname in extensions.ADDRESS_PARTS:
                if "address-part" in node.tags:
                    self.error(tag, f"encountered duplicate ADDRESS-PART argument (:{tname}) for the "
                                    f"{d.name} {what}")
                    return False
                node.tags["address-part"] = tname
                continue
            t = allowed[tname]
            slot = t.slot
            if slot in node.tags and (t.group or slot == t.name) and not t.repeat:
                self.error(tag, _conflict_message(node, d, what, t))
                return False
            if t.param is None:
                node.tags[slot] = tname if t.group else True
            else:
                if not self._type_ok(nxt, t.param):
                    self._tag_param_error(tag, d, what, "a " + t.param.replace("-", " "), nxt)
                    return False
                i += 1
                node.tags[slot] = nxt
                if t.group:
                    node.tags[slot + ":tag"] = tname
        pos = args[i:]
        for a in pos:
            if isinstance(a, Tag):
                self.error(a, f"encountered an unexpected tagged argument ':{a.name}' while validating "
                              f"positional arguments for the {d.name} {what}")
                return False
        node.pos = pos
        need = len(d.positional)
        least = need - d.optional_positional
        # A fixed number of positional arguments is checked here; a number that may vary, and
        # their types, only once the sub-tests and the block are right (Pigeonhole checks those
        # in each command's own validation, which runs last): `fileinto 1 true;` is one error.
        if not least <= len(pos) <= need:
            count = str(need) if least == need else f"{least} to {need}"
            msg = f"the {d.name} {what} requires {count} positional argument(s), but {len(pos)} is/are specified"
            if not pos and least == 1 < need:
                # (Pigeonhole's words where the count may vary)
                msg = f"the {d.name} {what} expects at least one " \
                      f"{'argument' if d.leading_optional else 'positional argument'}, but none was found"
            if least == need:
                self.error(node, msg)
                return False
            node.data["late_error"] = (node, msg)
            return False
        for k, a in enumerate(pos):
            if not self._type_ok(a, d.positional[k]):
                if d.name == "require" or d.single_list_argument:
                    msg = f"the {d.name} command accepts a single string or string list argument, " \
                          f"but {self.kind(a)} was found"
                elif d.leading_optional and len(d.arg_names) == 2:
                    first, flags = d.arg_names
                    msg = f"the {d.name} {what} expects " + (
                        f"either a string ({first}) or a string-list ({flags}) as first argument" if k == 0 else
                        f"a string list ({flags}) as second argument when two arguments are specified") + \
                        f", but {self.kind(a)} was found"
                else:
                    names = d.arg_names
                    label = f"argument {k + 1}" + (f" ({names[k]})" if k < len(names) else "")
                    msg = f"the {d.name} {what} expects a {d.positional[k].replace('-', ' ')} as " \
                          f"{label}, but {self.kind(a)} was found"
                node.data["late_error"] = (a, msg)
                return False
        # strings: encoded-character and variables templates. A hook that finds a string
        # unusable (an invalid ${unicode:...}) sets arguments_failed: the command's arguments
        # failed, its later strings and argument checks are not looked at (one error, as in
        # Pigeonhole)
        self.arguments_failed = False
        for a in node.args:
            if isinstance(a, StrList):
                for s in a.items:
                    self.prepare_string(s)
                    if self.arguments_failed:
                        return False
        return True

    def compile_nested(self, source: bytes | str, *, name: str, data: dict) -> Script:
        """Compile another script within this compile (include): same settings, extra
        extensions, loader and shared state; `data` starts its per-script state."""
        return compile_source(source, name=name, settings=self.settings, extra_extensions=tuple(self.extra),
                              loader=self.loader, shared=self.shared, data=data, max_errors=self.max_errors)

    def _check_subtests(self, node: Node, d: CommandDef, what: str) -> bool:
        tests = node.tests
        if d.subtests == 0:
            if not tests:
                return True
            first = tests[0].name
            if first in self.tsts:
                self.error(node, f"the {d.name} {what} accepts no sub-tests, but tests are specified")
            elif first not in self.cmds and self._tag_known(d, self._allowed_tags(d), first):
                # `if header is "a" "b"`: the colon of a tag was forgotten
                self.error(node, f"missing colon ':' before ':{first}' tag in {d.name} {what}")
            else:
                # `fileinto "x" keep;`: the next command was read as a sub-test
                self.error(node, f"missing semicolon ';' after {d.name} {what}")
            return False
        if d.subtests == 1 and (len(tests) != 1 or node.test_list):
            found = "none is specified" if not tests else "a list of tests is specified"
            self.error(node, f"the {d.name} {what} requires one sub-test, but {found}")
            return False
        if d.subtests == "list" and (not tests or not node.test_list):
            found = "none is specified" if not tests else "a single test is specified"
            self.error(node, f"the {d.name} {what} requires a list of sub-tests, but {found}")
            return False
        return True

    def _check_block(self, node: Node, d: CommandDef) -> None:
        if d.kind != "command":
            return
        if d.block == "none" and node.block is not None:
            self.error(node, f"the {d.name} command does not accept a command block, but one is specified anyway")
        elif d.block == "required" and node.block is None:
            self.error(node, f"the {d.name} command requires a command block, but it is missing")

    def _check_after_arguments(self, node: Node, d: CommandDef, what: str) -> None:
        for check in extensions.for_command("argument_checks", d.name, self.required):
            check(self, node, what)
        if d.match:
            cmp_ = node.tags.get("comparator", "i;ascii-casemap")
            mt = node.tags.get("match-type", "is")
            err = check_match_spec(cmp_, mt)
            if err and mt in ("contains", "matches"):
                # (Pigeonhole's words for a comparator that cannot match substrings)
                err = f"the specified {cmp_} comparator does not support sub-string matching as required " \
                      f"by the :{mt} match type"
            if err:
                self.error(node, err)
            else:
                entry = extensions.MATCH_TYPES.get(mt)
                if entry is not None and entry[1].check is not None:
                    entry[1].check(self, node, cmp_)

    def validate_test(self, node: Node, depth: int) -> None:
        if depth > self.settings.sieve_max_nesting:
            self.error(node, "tests nested too deeply")
            return
        d = self.tsts.get(node.name)
        if d is None:
            if node.name in self.cmds:
                self.error(node, f"attempted to use command '{node.name}' as test")
            else:
                self._unknown_identifier(node, "test")
            return
        self.bind(node, d, depth)

    def _unknown_identifier(self, node: Node, what: str) -> None:
        # once per identifier (whether used as command or test), as Pigeonhole does
        seen = self.data.setdefault("unknown_identifiers", set())
        if node.name not in seen:
            seen.add(node.name)
            self.error(node, f"unknown {what} '{node.name}' (only reported once at first occurrence)")

    def _type_ok(self, a, t: str) -> bool:
        if t == NUMBER:
            return isinstance(a, Num)
        if t == STRING:
            # RFC 5228 2.4.2.1: a lone string may stand for a string list, not the other way
            # round: ["x"] is a string list
            return isinstance(a, StrList) and len(a.items) == 1 and not a.bracketed
        if t == STRINGLIST:
            return isinstance(a, StrList)
        return False

    def kind(self, a) -> str:
        """How a diagnostic names the kind of argument `a` ("a string list", ...)."""
        if isinstance(a, Num):
            return "a number"
        if isinstance(a, Tag):
            return "a tag"
        if isinstance(a, StrList):
            return "a string list" if len(a.items) != 1 or a.bracketed else "a string"
        return "something else"


def compile_source(source: bytes | str, *, name: str, settings: Settings, path: str | None = None,
                   extra_extensions=(), loader=None, shared: dict | None = None, data: dict | None = None,
                   max_errors: int = 0, upload: bool = False):
    """Compile script text to a Script (see sieve.api.compile_script). `loader(name, location)`
    resolves includes at compile time when given; `shared` and `data` are for a script compiled
    within another's compile (Validator.compile_nested). `max_errors` > 0 stops validating at
    that many errors and reports those (ManageSieve's managesieve_max_compile_errors, as
    Dovecot's; the parser stops at parser.MAX_ERRORS whatever it says). `upload`: the script is
    being uploaded (ManageSieve PUTSCRIPT, CHECKSCRIPT): with a loader, a missing or circular
    include is a warning, not an error (RFC 6609 3.2), and the script is not yet the stored one
    of its name (sieve/extensions/include.py)."""
    if isinstance(source, bytes):
        if len(source) > settings.sieve_max_script_size:
            raise SieveCompileError([Diagnostic(name, 0, 0, f"script is too large (more than "
                                                f"{settings.sieve_max_script_size} bytes, sieve_max_script_size)")])
        text = source.decode("utf-8", "surrogateescape")
    else:
        text = source
        if len(text.encode("utf-8", "surrogateescape")) > settings.sieve_max_script_size:
            raise SieveCompileError([Diagnostic(name, 0, 0, "script is too large (sieve_max_script_size)")])
    try:
        tree = parse(text, settings.sieve_max_nesting, settings.sieve_max_string_length,
                     settings.sieve_max_string_list)
    except SieveSyntaxError as e:
        every = [Diagnostic(name, x.line, x.column, x.message) for x in getattr(e, "all", None) or [e]]
        every.append(Diagnostic(name, e.line, e.column, "parse failed"))
        # (Dovecot's cap counts its "parse failed" line too)
        raise SieveCompileError(every[:max_errors] if max_errors else every) from None
    except RecursionError:
        raise SieveCompileError([Diagnostic(name, 0, 0, "script nests too deeply")]) from None
    v = Validator(name, settings, extra_extensions, shared)
    if upload:
        v.shared["include_upload"] = True
    v.loader = loader
    v.max_errors = max_errors
    v.data.update(data or {})
    eof_comment = hash_comment_at_eof(text, settings.sieve_max_string_length)
    if eof_comment is not None:
        # (found while lexing, so before any other warning, as sievec reports it)
        v.diags.append(Diagnostic(name, eof_comment, 0, "no newline (CRLF) at end of hash comment at end of file",
                                  "warning"))
    try:
        try:
            v.validate_block(tree, 0, True)
        except RecursionError:
            v.error(None, "script nests too deeply")
        for ext in sorted(v.required - v.conditional_loads):
            # (an extension a test loads for its block is not held to what `require` needs)
            for need in v.registry[ext].requires:
                if need not in v.required:
                    # (at its require, where sievec reports it)
                    v.error(v.data.get("required_at", {}).get(ext), f"{ext} extension cannot be used without {need} extension")
    except TooManyErrors:
        pass
    v.diags.extend(v.data.get("include_warnings", ()))
    if v.errors:
        v.diags.append(Diagnostic(name, 0, 0, "validation failed"))
        raise SieveCompileError(v.diags)
    return Script(name=name, source=text, tree=tree, requires=frozenset(v.required),
                  warnings=tuple(d for d in v.diags if d.severity == "warning"), path=path)


