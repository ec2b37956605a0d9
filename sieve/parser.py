"""Sieve parser (RFC 5228 section 8.2): tokens to a syntax tree of commands and tests.

Only syntax here; sieve.validator checks names, arguments and requires. Nesting is bounded
by sieve_max_nesting (32), at the depths sieve-test refuses: command blocks count the
script's top level as level 1 (so 31 blocks may nest), tests count the command holding them
as level 1 (so 31 tests may nest in one command, whatever block it sits in); the longest
chain is thus 2 x 31 levels. Like Pigeonhole, the parser reads past stray characters,
too many arguments and too-deep nesting (skipping that command) to report every such error;
other syntax errors end the parse. Tests: tests/sieve/test_compile_errors_reference.py,
tests/sieve/test_limits.py (nesting, string lists), tests/sieve/test_fuzz.py, the conformance
run (tests/sieve/test_conformance.py, compile/errors/parser.sieve),
tests/sieve/test_enotify_nesting_s14.py (the nesting depths against sieve-test).
"""

from __future__ import annotations

from owlery.record import Record, field
from sieve.errors import SieveSyntaxError
from sieve.lexer import EOF, GARBAGE, IDENT, NUMBER, PUNCT, STRING, TAG, Token, tokenize

TYPE_CHECKING = False     # not `from typing import ...`: the LDA's start-up pays for every import (~1.7 ms)
if TYPE_CHECKING:
    from typing import Any

# errors reported by one parse at most (the parser resumes after stray characters and
# too-deep nesting, as Pigeonhole does, so a script can hold many)
MAX_ERRORS = 50
# arguments of one command or test: no Sieve command needs a dozen; Pigeonhole refuses more than 32
MAX_ARGUMENTS = 32


class SieveSyntaxErrors(SieveSyntaxError):
    """Every lexer/parser error of one script (`all`, in order); the first is self."""

    def __init__(self, errors: list[SieveSyntaxError]):
        first = errors[0]
        super().__init__(first.message, first.line, first.column)
        self.all = list(errors)


class _Resume(Exception):
    """The parser skipped what it could not read and goes on with the next command."""


# The parse tree's records write their __init__ out: Record's generic one costs ~2 us a call,
# and a script has many nodes.
class Str(Record, slots=True, eq=False):
    value: str
    line: int
    column: int
    multiline: bool = False
    parts: Any = None          # variables template, set by the validator when needed

    def __init__(self, value: str, line: int, column: int, multiline: bool = False, parts: Any = None):
        self.value, self.line, self.column, self.multiline, self.parts = value, line, column, multiline, parts


class StrList(Record, slots=True, eq=False):
    items: list
    line: int
    column: int
    bracketed: bool

    def __init__(self, items: list, line: int, column: int, bracketed: bool):
        self.items, self.line, self.column, self.bracketed = items, line, column, bracketed


class Num(Record, slots=True, eq=False):
    value: int
    line: int
    column: int

    def __init__(self, value: int, line: int, column: int):
        self.value, self.line, self.column = value, line, column


class Tag(Record, slots=True, eq=False):
    name: str          # without the colon, lower case
    line: int
    column: int

    def __init__(self, name: str, line: int, column: int):
        self.name, self.line, self.column = name, line, column


class Node(Record, slots=True, eq=False):
    """A command (statement) or a test; the validator fills the binding fields."""

    name: str
    args: list
    tests: list
    block: list | None
    line: int
    column: int
    is_test: bool
    # filled by the validator
    defn: Any = None
    tags: dict = field(default_factory=dict)
    pos: list = field(default_factory=list)
    data: dict = field(default_factory=dict)
    skip: bool = False
    test_list: bool = False    # the tests were written as a parenthesized test-list

    def __init__(self, name: str, args: list, tests: list, block: list | None, line: int, column: int,
                 is_test: bool, defn: Any = None, tags: dict | None = None, pos: list | None = None,
                 data: dict | None = None, skip: bool = False, test_list: bool = False):
        self.name, self.args, self.tests, self.block = name, args, tests, block
        self.line, self.column, self.is_test, self.defn = line, column, is_test, defn
        self.tags = {} if tags is None else tags
        self.pos = [] if pos is None else pos
        self.data = {} if data is None else data
        self.skip, self.test_list = skip, test_list


class Parser:
    def __init__(self, tokens: list[Token], max_nesting: int, max_list: int, errors: list | None = None):
        self.toks = tokens
        self.i = 0
        self.max_nesting = max_nesting
        self.max_list = max_list
        self.errors: list[SieveSyntaxError] = errors if errors is not None else []
        self.starts: list[int] = []       # token index where each command being read starts

    def peek(self) -> Token:
        return self.toks[self.i]

    def next(self) -> Token:
        t = self.toks[self.i]
        if t.kind != EOF:
            self.i += 1
        return t

    def error(self, msg: str, tok: Token):
        raise SieveSyntaxError(msg, tok.line, tok.column)

    def resume(self, msg: str, tok: Token):
        """Record an error the parser can read past, skip the command being read (from its
        start, with balanced brackets, to its ';' or the end of its block), and go on."""
        self.errors.append(SieveSyntaxError(msg, tok.line, tok.column))
        if len(self.errors) >= MAX_ERRORS:
            raise SieveSyntaxErrors(self.errors)
        self.i = self.starts[-1]
        depth = 0
        while True:
            t = self.toks[self.i]
            if t.kind == EOF:
                break
            if t.kind == PUNCT and t.value in "{([":
                depth += 1
            elif t.kind == PUNCT and t.value in "})]":
                if depth == 0:
                    break                 # closes the enclosing block: not ours
                depth -= 1
                if depth == 0 and t.value == "}":
                    self.i += 1
                    break
            elif t.kind == PUNCT and t.value == ";" and depth == 0:
                self.i += 1
                break
            self.i += 1
        raise _Resume()

    def expect_punct(self, p: str, what: str) -> Token:
        t = self.next()
        if t.kind != PUNCT or t.value != p:
            self.error(f"expected {what} ('{p}') but found {t.describe()}", t)
        return t

    def commands(self, depth: int, top: bool) -> list[Node]:
        out = []
        while True:
            t = self.peek()
            if t.kind == EOF:
                if not top:
                    self.error("expected end of compound block '}', but found end of script", t)
                return out
            if t.kind == PUNCT and t.value == "}":
                if top:
                    self.error("unexpected '}' found at (the presumed) end of file", t)
                return out
            start = self.i
            try:
                out.append(self.command(depth))
            except _Resume:
                if self.i == start:       # nothing skipped: do not loop
                    self.next()

    def command(self, depth: int) -> Node:
        self.starts.append(self.i)
        try:
            return self._command(depth)
        finally:
            self.starts.pop()

    def _command(self, depth: int) -> Node:
        t = self.next()
        if t.kind == GARBAGE:
            self.resume("expected a command but found unknown characters", t)
        if t.kind != IDENT:
            if t.kind == PUNCT and t.value in ";}" and depth == 0:
                self.error(f"unexpected '{t.value}' found at (the presumed) end of file", t)
            self.error(f"expected command identifier but found {t.describe()}", t)
        args, tests, paren = self.arguments(1, t)
        nt = self.peek()
        block = None
        if nt.kind == PUNCT and nt.value == ";":
            self.next()
        elif nt.kind == PUNCT and nt.value == "{":
            if depth + 2 > self.max_nesting:      # the block's level: the top level is 1
                self.resume(f"cannot nest command blocks deeper than {self.max_nesting} levels "
                            f"(nested too deeply; sieve_max_nesting)", nt)
            self.next()
            block = self.commands(depth + 1, False)
            nt = self.next()
            if nt.kind != PUNCT or nt.value != "}":
                self.error(f"expected end of compound block '}}', but found {nt.describe()}", nt)
        else:
            msg = (f"expected end of command ';' or the beginning of a compound block '{{', "
                   f"but found {nt.describe()}")
            if nt.kind == GARBAGE:
                self.resume(msg, nt)
            self.error(msg, nt)
        return Node(t.value.lower(), args, tests, block, t.line, t.column, False, test_list=paren)

    def arguments(self, level: int, head: Token):
        """The arguments and tests of a command or test at test level `level` (a command is
        level 1, its tests 2, theirs 3, ...)."""
        args: list = []
        tests: list = []
        while True:
            t = self.peek()
            if t.kind == STRING:
                self.next()
                args.append(StrList([Str(t.value, t.line, t.column, t.multiline)], t.line, t.column, False))
            elif t.kind == NUMBER:
                self.next()
                args.append(Num(t.value, t.line, t.column))
            elif t.kind == TAG:
                self.next()
                args.append(Tag(t.value.lower(), t.line, t.column))
            elif t.kind == PUNCT and t.value == "[":
                self.next()
                items = []
                after = "'['"
                while True:
                    s = self.next()
                    if s.kind != STRING:
                        self.error(f"expecting string after {after} in string list, but found {s.describe()}", s)
                    after = "','"
                    items.append(Str(s.value, s.line, s.column, s.multiline))
                    if len(items) > self.max_list:
                        self.error(f"string list too long (sieve_max_string_list {self.max_list})", s)
                    c = self.next()
                    if c.kind == PUNCT and c.value == ",":
                        continue
                    if c.kind == PUNCT and c.value == "]":
                        break
                    self.error(f"expecting ',' or end of string list ']', but found {c.describe()}", c)
                args.append(StrList(items, t.line, t.column, True))
            else:
                break
            if len(args) > MAX_ARGUMENTS:
                self.resume(f"too many arguments for command '{head.value}' (at most {MAX_ARGUMENTS})", t)
        t = self.peek()
        paren = False
        if t.kind == IDENT:
            tests.append(self.test(level + 1))
        elif t.kind == PUNCT and t.value == "(":
            self.next()
            tests.extend(self.test_list(level + 1, head))
            paren = True
        return args, tests, paren

    def test_list(self, level: int, head: Token) -> list[Node]:
        out = []
        after = "'('"
        while True:
            t = self.peek()
            if t.kind != IDENT:
                msg = f"expecting test identifier after {after} in test list, but found {t.describe()}"
                if not out:
                    # (Pigeonhole adds this second line when the list is empty)
                    self.errors.append(SieveSyntaxError(msg, t.line, t.column))
                    msg = f"failed to accept more tests for command '{head.value}'"
                self.error(msg, t)
            out.append(self.test(level))
            c = self.next()
            if c.kind == PUNCT and c.value == ",":
                after = "','"
                continue
            if c.kind == PUNCT and c.value == ")":
                return out
            self.error(f"expecting ',' or end of test list ')', but found {c.describe()}", c)

    def test(self, level: int) -> Node:
        if level > self.max_nesting:
            self.resume(f"cannot nest tests deeper than {self.max_nesting} levels (nested too deeply; "
                        f"sieve_max_nesting)", self.peek())
        t = self.next()
        args, tests, paren = self.arguments(level, t)
        return Node(t.value.lower(), args, tests, None, t.line, t.column, True, test_list=paren)


def parse(text: str, max_nesting: int = 32, max_string: int = 1 << 20, max_list: int = 1024) -> list[Node]:
    """Parse script text into a list of top-level command nodes; raises SieveSyntaxErrors
    (a SieveSyntaxError) holding every error found."""
    errors: list[SieveSyntaxError] = []
    try:
        toks = tokenize(text, max_string, errors)
        p = Parser(toks, max_nesting, max_list, errors)
        tree = p.commands(0, True)
    except SieveSyntaxErrors:
        raise
    except SieveSyntaxError as e:
        errors.append(e)
    if errors:
        # the lexer runs first: put its errors among the parser's, in script order
        raise SieveSyntaxErrors(sorted(errors, key=lambda x: (x.line, x.column)))
    return tree
