"""Sieve validator: binds each command/test of the syntax tree to its definition from the
extension registry, checks arguments, blocks, requires and limits, and collects every
error with line:column. Produces the `Script` that sieve.interpreter runs.

Talks to: sieve.parser, sieve.extensions (registry). Tests: none directly; the conformance run
(tests/sieve/test_conformance.py: compile/errors.svtest), tests/sieve/test_api.py (line:column),
tests/sieve/test_limits.py (script size, nesting), tests/sieve/test_cli.py (`owlery sieve check`).
"""

from __future__ import annotations

import re

from owlery.settings import Settings
from sieve.errors import Diagnostic, SieveCompileError, SieveSyntaxError
from sieve.extensions.base import NUMBER, STRING, STRINGLIST, CommandDef
from sieve.parser import Node, Num, Str, StrList, Tag, parse

MATCH_TYPE_EXT = {"is": None, "contains": None, "matches": None,
                  "count": "relational", "value": "relational", "regex": "regex"}
ADDRESS_PART_EXT = {"all": None, "localpart": None, "domain": None,
                    "user": "subaddress", "detail": "subaddress"}
COMPARATOR_EXT = {"i;octet": None, "i;ascii-casemap": None,
                  "i;ascii-numeric": "comparator-i;ascii-numeric",
                  "i;unicode-casemap": "comparator-i;unicode-casemap"}


class Validator:
    def __init__(self, name: str, settings: Settings, extra_extensions=(), ihave_allowed=True):
        from sieve.extensions import REGISTRY
        self.name = name
        self.settings = settings
        self.registry = REGISTRY
        self.disabled = set(settings.sieve_extensions_disabled)
        self.extra = set(extra_extensions)
        self.required: set[str] = set()
        self.diags: list[Diagnostic] = []
        self.cmds: dict[str, CommandDef] = {}
        self.tsts: dict[str, CommandDef] = {}
        self.loader = None
        self.include_chain: tuple = ()
        self.seen_non_require = False
        self.in_test_block = False
        self.loop_depth = 0
        self.ihave_depth = 0
        self.ihave_caps: list[set] = []
        self.data: dict = {}          # per-script validator state for extensions
        self._load("core")

    # --- diagnostics ---
    def error(self, where, msg: str) -> None:
        self.diags.append(Diagnostic(self.name, getattr(where, "line", 0), getattr(where, "column", 0), msg))

    def warning(self, where, msg: str) -> None:
        self.diags.append(Diagnostic(self.name, getattr(where, "line", 0), getattr(where, "column", 0),
                                     msg, "warning"))

    @property
    def errors(self) -> int:
        return sum(1 for d in self.diags if d.severity == "error")

    # --- extensions ---
    def known(self, ext: str) -> bool:
        e = self.registry.get(ext)
        if e is None or ext in self.disabled:
            return False
        if e.hidden and ext not in self.extra:
            return False
        return True

    def _load(self, ext: str) -> None:
        if ext in self.required:
            return
        e = self.registry[ext]
        self.required.add(ext)
        for c in e.commands:
            (self.cmds if c.kind == "command" else self.tsts)[c.name] = c
        for imp in e.implies:
            if self.known(imp):
                self._load(imp)

    def require(self, ext: str, where) -> bool:
        if ext.startswith("comparator-") and ext[len("comparator-"):] in COMPARATOR_EXT:
            if ext in self.registry:
                self._load(ext)
            return True
        if not self.known(ext):
            self.error(where, f"require: unknown Sieve capability '{ext}'")
            return False
        self._load(ext)
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

    # --- the tree ---
    def validate_block(self, nodes: list[Node], depth: int, toplevel: bool) -> None:
        prev = None
        for node in nodes:
            if node.is_test:
                self.error(node, f"'{node.name}' is a test, not a command")
                continue
            self.validate_command(node, depth, toplevel, prev)
            prev = node

    def validate_command(self, node: Node, depth: int, toplevel: bool, prev: Node | None) -> None:
        if node.name == "require":
            if not toplevel:
                self.error(node, "require command can only be placed at top level")
            elif self.seen_non_require and not self.settings_allow_late_require():
                self.error(node, "require command can only be placed at top level at the beginning of the file")
            self.bind(node, self.cmds["require"], depth)
            if node.pos and isinstance(node.pos[0], StrList):
                for s in node.pos[0].items:
                    self.require(s.value, s)
            return
        self.seen_non_require = True
        d = self.cmds.get(node.name)
        if d is None:
            other = self.tsts.get(node.name)
            if other is not None:
                self.error(node, f"'{node.name}' is a test, not a command")
            else:
                self.error(node, f"unknown command '{node.name}' (did you forget a require?)")
            return
        if d.toplevel_only and not toplevel:
            self.error(node, f"{node.name} command can only be used at top level")
        if node.name in ("elsif", "else"):
            if prev is None or prev.name not in ("if", "elsif"):
                self.error(node, f"{node.name} command must follow an if or elsif command")
        self.bind(node, d, depth)
        if node.block is not None and not node.skip:
            was = self.in_test_block
            if d.name == "test":
                self.in_test_block = True
            loop = d.name == "foreverypart"
            if loop:
                self.loop_depth += 1
                if self.loop_depth > self.settings.sieve_max_loop_nesting:
                    self.error(node, f"foreverypart loops nested too deeply "
                                     f"(sieve_max_loop_nesting {self.settings.sieve_max_loop_nesting})")
            try:
                self.validate_block(node.block, depth + 1, False)
            finally:
                self.in_test_block = was
                if loop:
                    self.loop_depth -= 1

    def settings_allow_late_require(self) -> bool:
        return False

    def bind(self, node: Node, d: CommandDef, depth: int) -> None:
        errors_before = self.errors
        node.defn = d
        what = "test" if d.kind == "test" else "command"
        args = list(node.args)
        allowed = {t.name: t for t in d.tags}
        for ext in self.required:
            for cname, t in self.registry[ext].extra_tags:
                if cname == d.name:
                    allowed[t.name] = t
        i = 0
        # tagged arguments come first
        while i < len(args) and isinstance(args[i], Tag):
            tag = args[i]
            tname = tag.name
            i += 1
            if d.match and tname == "comparator":
                if i >= len(args) or not isinstance(args[i], StrList) or len(args[i].items) != 1:
                    self.error(tag, f"the :comparator tag for the {d.name} {what} requires one string argument")
                    continue
                cmp_ = args[i].items[0].value
                i += 1
                ext = COMPARATOR_EXT.get(cmp_, "unknown")
                if ext == "unknown" or (ext is not None and ext not in self.required):
                    self.error(tag, f"unknown comparator '{cmp_}'")
                    continue
                if "comparator" in node.tags:
                    self.error(tag, "multiple comparators specified")
                node.tags["comparator"] = cmp_
                continue
            if d.match and tname in MATCH_TYPE_EXT:
                ext = MATCH_TYPE_EXT[tname]
                if ext is not None and ext not in self.required:
                    self.error(tag, f"unknown tagged argument ':{tname}' for the {d.name} {what} "
                                    f"(the {ext} extension is not required)")
                    continue
                if "match-type" in node.tags:
                    self.error(tag, f"multiple match types specified for the {d.name} {what}")
                node.tags["match-type"] = tname
                if tname in ("count", "value"):
                    if i >= len(args) or not isinstance(args[i], StrList) or len(args[i].items) != 1:
                        self.error(tag, f"the :{tname} match type requires a relational operator string")
                        continue
                    op = args[i].items[0].value.lower()
                    i += 1
                    if op not in ("gt", "ge", "lt", "le", "eq", "ne"):
                        self.error(tag, f"invalid relational match '{op}'")
                    node.tags["relation"] = op
                continue
            if d.address_part and tname in ADDRESS_PART_EXT:
                ext = ADDRESS_PART_EXT[tname]
                if ext is not None and ext not in self.required:
                    self.error(tag, f"unknown tagged argument ':{tname}' for the {d.name} {what}")
                    continue
                if "address-part" in node.tags:
                    self.error(tag, f"multiple address parts specified for the {d.name} {what}")
                node.tags["address-part"] = tname
                continue
            t = allowed.get(tname)
            if t is None:
                self.error(tag, f"unknown tagged argument ':{tname}' for the {d.name} {what}")
                # skip a following parameter-looking argument? no: keep going
                continue
            slot = t.slot
            if slot in node.tags and (t.group or slot == t.name):
                self.error(tag, f"duplicate or conflicting tagged argument ':{tname}' for the {d.name} {what}")
            if t.param is None:
                node.tags[slot] = tname if t.group else True
            else:
                if i >= len(args) or not self._type_ok(args[i], t.param):
                    self.error(tag, f"the :{tname} tag for the {d.name} {what} requires a "
                                    f"{t.param.replace('-', ' ')} argument")
                    continue
                val = args[i]
                i += 1
                node.tags[slot] = val
                if t.group:
                    node.tags[slot + ":tag"] = tname
        if any(k in node.tags for k in ("anychild", "mimeopt")) and "mime" not in node.tags:
            self.error(node, f"the :anychild, :type, :subtype, :contenttype and :param tags of the "
                             f"{d.name} {what} require the :mime tag")
        if "mimeopt" in node.tags and d.name != "header":
            self.error(node, f"the :{node.tags.get('mimeopt:tag', node.tags['mimeopt'])} tag is only "
                             f"allowed for the header test")
        if d.name in ("break", "extracttext") and self.loop_depth == 0:
            self.error(node, f"the {d.name} command is not valid outside a foreverypart loop")
        pos = args[i:]
        for a in pos:
            if isinstance(a, Tag):
                self.error(a, f"unexpected tagged argument ':{a.name}' after positional arguments "
                              f"of the {d.name} {what}")
        pos = [a for a in pos if not isinstance(a, Tag)]
        need = len(d.positional)
        if len(pos) > need or len(pos) < need - d.optional_positional:
            self.error(node, f"the {d.name} {what} expects {need} positional argument(s), but {len(pos)} "
                             f"were found")
        else:
            for k, a in enumerate(pos):
                if not self._type_ok(a, d.positional[k]):
                    self.error(a, f"the {d.name} {what} expects a {d.positional[k].replace('-', ' ')} as "
                                  f"positional argument {k + 1}, but {self._kind(a)} was found")
        node.pos = pos
        # strings: encoded-character and variables templates
        for a in node.args:
            if isinstance(a, StrList):
                for s in a.items:
                    self.prepare_string(s)
        # subtests
        if d.subtests == 0 and node.tests:
            self.error(node, f"the {d.name} {what} accepts no sub-tests")
        elif d.subtests == 1 and len(node.tests) != 1:
            self.error(node, f"the {d.name} {what} requires one sub-test")
        elif d.subtests == "list" and not node.tests:
            self.error(node, f"the {d.name} {what} requires a list of tests")
        # block
        if d.kind == "command":
            if d.block == "none" and node.block is not None:
                self.error(node, f"the {d.name} command does not accept a block")
            elif d.block == "required" and node.block is None:
                self.error(node, f"the {d.name} command requires a block")
        if d.match:
            cmp_ = node.tags.get("comparator", "i;ascii-casemap")
            mt = node.tags.get("match-type", "is")
            from sieve.match import check_match_spec
            err = check_match_spec(cmp_, mt)
            if err:
                self.error(node, err)
            elif mt == "regex" and node.pos:
                from sieve.match import RegexError, compile_regex
                keys = node.pos[-1]
                if isinstance(keys, StrList):
                    cache = []
                    for k in keys.items:
                        if k.parts is not None:
                            cache.append(None)      # compiled at run time
                            continue
                        try:
                            cache.append(compile_regex(k.value, cmp_, self.settings.sieve_max_regex_length,
                                                       self.settings.sieve_max_regex_memory))
                        except RegexError as e:
                            cache.append(None)
                            self.error(k, f"invalid regular expression '{k.value}' for regex match: {e}")
                    node.data["regex_cache"] = cache
        for t in node.tests:
            self.validate_test(t, depth + 1)
        # const-false dead code (Pigeonhole skips `if false {}` blocks)
        if d.name in ("if", "elsif") and len(node.tests) == 1 and node.tests[0].name == "false" \
                and not node.tests[0].args:
            node.skip = True
        if d.validate is not None and self.errors == errors_before:
            # extension checks assume well-typed arguments
            d.validate(self, node)
        if self.errors == errors_before:
            for ext in self.required:
                for cname, check in self.registry[ext].tag_checks:
                    if cname == d.name:
                        check(self, node)
        # RFC 5463: the block of `if ihave "unknown"` is never run and need not validate
        if d.name in ("if", "elsif") and len(node.tests) == 1 and node.tests[0].name == "ihave" \
                and node.tests[0].data.get("known") is False:
            node.skip = True

    def validate_test(self, node: Node, depth: int) -> None:
        if depth > self.settings.sieve_max_nesting * 2:
            self.error(node, "tests nested too deeply")
            return
        d = self.tsts.get(node.name)
        if d is None:
            if node.name in self.cmds:
                self.error(node, f"'{node.name}' is a command, not a test")
            else:
                self.error(node, f"unknown test '{node.name}' (did you forget a require?)")
            return
        self.bind(node, d, depth)

    def _type_ok(self, a, t: str) -> bool:
        if t == NUMBER:
            return isinstance(a, Num)
        if t == STRING:
            return isinstance(a, StrList) and len(a.items) == 1 and not a.bracketed or \
                (isinstance(a, StrList) and len(a.items) == 1)
        if t == STRINGLIST:
            return isinstance(a, StrList)
        return False

    def _kind(self, a) -> str:
        if isinstance(a, Num):
            return "a number"
        if isinstance(a, Tag):
            return "a tag"
        if isinstance(a, StrList):
            return "a string list" if len(a.items) != 1 else "a string"
        return "something else"


def compile_source(source: bytes | str, *, name: str, settings: Settings, path: str | None = None,
                   extra_extensions=(), loader=None, include_chain: tuple = (), shared: dict | None = None):
    """Compile script text to a Script (see sieve.api.compile_script). `loader(name, location)`
    resolves includes at compile time when given."""
    from sieve.api import Script
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
        raise SieveCompileError([Diagnostic(name, e.line, e.column, e.message),
                                 Diagnostic(name, e.line, e.column, "parse failed")]) from None
    except RecursionError:
        raise SieveCompileError([Diagnostic(name, 0, 0, "script nests too deeply")]) from None
    v = Validator(name, settings, extra_extensions)
    v.loader = loader
    v.include_chain = include_chain or (("personal", name),)
    if shared is not None:
        v.data["include_count"] = shared.setdefault("include_count", [0])
        v.data["include_cache"] = shared.setdefault("include_cache", {})
    try:
        v.validate_block(tree, 0, True)
    except RecursionError:
        v.error(None, "script nests too deeply")
    for ext in sorted(v.required - v.data.get("ihave_loaded", set())):
        # (an extension ihave loads for its block is not held to what `require` needs)
        for need in v.registry[ext].requires:
            if need not in v.required:
                v.error(None, f"the {ext} extension cannot be used without the {need} extension")
    if v.errors:
        v.diags.append(Diagnostic(name, 0, 0, "validation failed"))
        raise SieveCompileError(v.diags)
    return Script(name=name, source=text, tree=tree, requires=frozenset(v.required),
                  warnings=tuple(d for d in v.diags if d.severity == "warning"), path=path)


_VARNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*|[0-9]+")
