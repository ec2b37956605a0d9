"""Sieve parser (RFC 5228 section 8.2): tokens to a syntax tree of commands and tests.

Only syntax here; sieve.validator checks names, arguments and requires. Nesting is bounded
by sieve_max_nesting (32), at the depths sieve-test refuses: command blocks count the
script's top level as level 1 (so 31 blocks may nest), tests count the command holding them
as level 1 (so 31 tests may nest in one command, whatever block it sits in); the longest
chain is thus 2 x 31 levels. The parser recovers from errors as Pigeonhole's does (see
Parser.recover), reading the lexer's tokens only as far as it goes, so that it reports the
errors sievec reports, no more, no fewer (Pigeonhole's testsuite counts them). Tests:
tests/sieve/test_syntax_recovery_differential.py (generated broken scripts against sievec),
tests/sieve/test_compile_errors_reference.py,
tests/sieve/test_limits.py (nesting, string lists), tests/sieve/test_fuzz.py, the conformance
run (tests/sieve/test_conformance.py, compile/errors/parser.sieve),
tests/sieve/test_enotify_nesting_s14.py (the nesting depths against sieve-test).
"""

from __future__ import annotations

from owlery.record import Record, field
from sieve.errors import SieveSyntaxError
from sieve.lexer import EOF, ERROR, IDENT, NUMBER, PUNCT, STRING, TAG, Token, scan

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
    written: str       # as the script has it (diagnostics show it so, as Pigeonhole)

    def __init__(self, name: str, line: int, column: int, written: str = ""):
        self.name, self.line, self.column, self.written = name, line, column, written or name


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


# Error recovery, as Pigeonhole's parser does it (so that error counts agree with sievec's, which
# Pigeonhole's testsuite checks): after an error the parser skips tokens to the end of the
# structure it was reading, `;` for a command, `)` for a test list, `]` for a string list, `}`
# for a block, counting that structure's own nesting, and stopping (failed) at a token of a
# structure that ranks higher (a block's braces over `;` over parentheses over brackets). A
# command given up on that way at a `{` still has its block read. At the top level, a token that
# starts no command ends the script: an error then when none came before.
_RANK = {"[": 0, "]": 0, "(": 1, ")": 1, ";": 2, "{": 3, "}": 3}
_OPENS = {0: "[", 1: "(", 2: None, 3: "{"}
_CLOSES = {0: "]", 1: ")", 2: ";", 3: "}"}

# Pigeonhole's parse results: OK (read, maybe with errors it recovered from), LOST (an error not
# recovered from yet: the caller recovers), GIVE_UP (a test list with no test read in it, of a
# command: the parse ends, as in Pigeonhole; a test's own test list is only LOST for the test
# holding it). A limit of Owlery's own raises _Abort.
OK, LOST, GIVE_UP = 1, 0, -1


class _Abort(Exception):
    """A limit of Owlery's own (sieve_max_string_list, MAX_ERRORS): the parse ends here."""


class Parser:
    def __init__(self, tokens, max_nesting: int, max_list: int, lexer_errors: list,
                 errors: list | None = None):
        """`tokens`: an iterator (the lexer's scan, read only as far as the parse goes), that
        appends its errors to `lexer_errors` as it reads the token they belong to."""
        self.tokens = iter(tokens)
        self.max_nesting = max_nesting
        self.max_list = max_list
        self.errors: list[SieveSyntaxError] = errors if errors is not None else []
        self.lexer_errors = lexer_errors
        self.li = 0                       # lexer errors reported so far
        self.valid = True                 # no parser error yet (lexer errors do not count)
        self.cur: Token = next(self.tokens)
        self._reached()

    # --- tokens ---
    def _reached(self) -> None:
        """Report the lexer's errors of the token just read, before anything the parser says."""
        le = self.lexer_errors
        if self.li < len(le):
            self.errors.extend(le[self.li:])
            self.li = len(le)
            if len(self.errors) >= MAX_ERRORS:
                raise _Abort()

    def peek(self) -> Token:
        return self.cur

    def skip(self) -> None:
        if self.cur.kind != EOF:
            self.cur = next(self.tokens)
            if self.li < len(self.lexer_errors):
                self._reached()

    def at(self, p: str) -> bool:
        t = self.cur
        return t.kind == PUNCT and t.value == p

    # --- errors ---
    def error(self, msg: str) -> None:
        """A parser error at the current token; not reported at a token the lexer reported."""
        t = self.cur
        self.valid = False
        if t.kind != ERROR:
            self.errors.append(SieveSyntaxError(msg, t.line, t.column))
            if len(self.errors) >= MAX_ERRORS:
                raise _Abort()

    def recover(self, end: str) -> int:
        """Skip to the `end` token of the structure being read (not past it): OK when found
        (or, for a command, a `{` that starts its block), LOST when a higher-ranking token or
        the end of the script comes first."""
        rank = _RANK[end]
        opens, closes = _OPENS[rank], _CLOSES[rank]
        nesting = 1
        while True:
            t = self.cur
            if t.kind == EOF:
                break
            if t.kind == PUNCT and t.value in _RANK:
                if _RANK[t.value] > rank:
                    break
                if t.value == opens:
                    nesting += 1
                elif t.value == closes:
                    nesting -= 1
                    if nesting == 0:
                        return OK
            self.skip()
        return OK if end == ";" and self.at("{") else LOST

    # --- the grammar ---
    def commands(self, out: list, depth: int) -> int:
        """Commands into `out` while they start with an identifier; `depth`: the block's level
        (the top level is 1)."""
        result = OK
        while result == OK and self.peek().kind == IDENT:
            t = self.peek()
            self.skip()
            node = Node(t.value.lower(), [], [], None, t.line, t.column, False)
            out.append(node)
            result = self.arguments(node, 1)
            if result == GIVE_UP:
                return GIVE_UP
            if result == OK and not (self.at(";") or self.at("{")):
                self.error(f"expected end of command ';' or the beginning of a compound block '{{', "
                           f"but found {self.peek().describe()}")
                result = LOST
            if result == LOST:
                result = self.recover(";")
                if result == LOST:
                    return LOST
            if self.at(";"):
                self.skip()
            elif self.at("{"):
                self.skip()
                if depth + 1 > self.max_nesting:
                    self.error(f"cannot nest command blocks deeper than {self.max_nesting} levels")
                    result = self.recover("}")
                    if result == OK:
                        self.skip()
                    continue
                node.block = []
                result = self.commands(node.block, depth + 1)
                if result == GIVE_UP:
                    return GIVE_UP
                if result == OK:
                    if self.at("}"):
                        self.skip()
                    else:
                        self.error(f"expected end of compound block '}}', but found {self.peek().describe()}")
                        # (the '}' found is left for the enclosing block to read)
                        result = self.recover("}")
                else:
                    result = self.recover("}")
                    if result == OK:
                        self.skip()
        return result

    def arguments(self, node: Node, level: int) -> int:
        """The arguments and tests of a command or test at test level `level` (a command is
        level 1, its tests 2, theirs 3, ...)."""
        result = OK
        args = node.args
        while result == OK:
            if not self.valid and len(self.errors) >= MAX_ERRORS:
                raise _Abort()
            t = self.peek()
            if t.kind == STRING:
                self.skip()
                args.append(StrList([Str(t.value, t.line, t.column, t.multiline)], t.line, t.column, False))
            elif t.kind == NUMBER:
                self.skip()
                args.append(Num(t.value, t.line, t.column))
            elif t.kind == TAG:
                self.skip()
                args.append(Tag(t.value.lower(), t.line, t.column, t.value))
            elif t.kind == PUNCT and t.value == "[":
                self.skip()
                result = self.string_list(t, args)
            else:
                break
            if len(args) > MAX_ARGUMENTS:
                self.error(f"too many arguments for command '{node.name}'")
                return LOST
        if result != OK:
            return result
        t = self.peek()
        if t.kind == IDENT:
            if level + 1 > self.max_nesting:
                self.error(f"cannot nest tests deeper than {self.max_nesting} levels")
                return LOST
            self.skip()
            test = Node(t.value.lower(), [], [], None, t.line, t.column, True)
            node.tests.append(test)
            return OK if self.arguments(test, level + 1) == OK else LOST
        if t.kind == PUNCT and t.value == "(":
            self.skip()
            if level + 1 > self.max_nesting:
                # (from within the list: the recovery skips to the ')' that closes it)
                self.error(f"cannot nest tests deeper than {self.max_nesting} levels")
                result = self.recover(")")
                if result == OK:
                    self.skip()
                return result
            node.test_list = True
            more = True
            after = "'('"
            while more and result == OK:
                more = False
                t = self.peek()
                if t.kind == IDENT:
                    self.skip()
                    test = Node(t.value.lower(), [], [], None, t.line, t.column, True)
                    node.tests.append(test)
                    result = self.arguments(test, level + 1)
                    if result == GIVE_UP:
                        return GIVE_UP
                    if result == LOST:
                        # a test of the list failed: skip to the list's ')' (not past it)
                        result = self.recover(")")
                        break
                    if self.at(","):
                        self.skip()
                        more = True
                        after = "','"
                else:
                    self.error(f"expecting test identifier after {after} in test list, but found {t.describe()}")
                    result = self.recover(")")
            if self.at(")"):
                self.skip()
            else:
                self.error(f"expecting ',' or end of test list ')', but found {self.peek().describe()}")
                result = self.recover(")")
                if result == OK:
                    self.skip()
            if not node.tests:
                # (Pigeonhole says so too when the list is empty, and gives up)
                self.error(f"failed to accept more tests for command '{node.name}'")
                return GIVE_UP
        return result

    def string_list(self, start: Token, args: list) -> int:
        """A string list, its '[' read."""
        result = OK
        items: list = []
        t = self.peek()
        if t.kind == STRING:
            self.skip()
            items.append(Str(t.value, t.line, t.column, t.multiline))
            while self.at(","):
                self.skip()
                t = self.peek()
                if t.kind != STRING:
                    self.error(f"expecting string after ',' in string list, but found {t.describe()}")
                    result = self.recover("]")
                    break
                self.skip()
                items.append(Str(t.value, t.line, t.column, t.multiline))
                if len(items) > self.max_list:
                    self.errors.append(SieveSyntaxError(
                        f"string list too long (sieve_max_string_list {self.max_list})", t.line, t.column))
                    raise _Abort()
        else:
            self.error(f"expecting string after '[' in string list, but found {t.describe()}")
            result = self.recover("]")
        if self.at("]"):
            self.skip()
        else:
            self.error(f"expecting ',' or end of string list ']', but found {self.peek().describe()}")
            result = self.recover("]")
            if result == OK:
                self.skip()
        args.append(StrList(items, start.line, start.column, True))
        return result

    def script(self) -> list[Node]:
        out: list[Node] = []
        if self.commands(out, 1) == OK and self.valid and self.peek().kind != EOF:
            self.error(f"unexpected {self.peek().describe()} found at (the presumed) end of file")
        return out


def parse(text: str, max_nesting: int = 32, max_string: int = 1 << 20, max_list: int = 1024) -> list[Node]:
    """Parse script text into a list of top-level command nodes; raises SieveSyntaxErrors
    (a SieveSyntaxError) holding every error found, in the order Pigeonhole reports them."""
    errors: list[SieveSyntaxError] = []
    lexer_errors: list = []
    try:
        tree = Parser(scan(text, max_string, lexer_errors), max_nesting, max_list, lexer_errors, errors).script()
    except _Abort:
        pass
    except SieveSyntaxError as e:        # a limit (sieve_max_string_length): nothing more is read
        errors = lexer_errors + [e]
    if errors:
        raise SieveSyntaxErrors(errors[:MAX_ERRORS])
    return tree
