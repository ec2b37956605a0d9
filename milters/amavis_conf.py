"""A reader of the Perl subset amavisd.conf files are written in: it never runs Perl.

amavisd-new's configuration is Perl, evaluated by amavisd at start. This module reads the
part of Perl postmasters use in it, without evaluating anything: scalar, array and hash
assignments (`$x = 5;`, `@x = qw(a b);`, `%x = (k => 1);`, `$x{k} = ...;`), quoted strings
with the interpolation of scalars already known (`"postmaster\\@$mydomain"`), numbers and
`*`, `+`, `-`, `/`, `.` on them, lists, `[...]` and `{...}`, `\\@x`-style references,
`qw()`, `qr//` patterns, the D_PASS/D_BOUNCE/D_REJECT/D_DISCARD constants, calls of
amavis' table builders (`new_RE`, `read_hash`, ...) and `dkim_key(...)`, `use strict;`,
`1;`, comments and POD. Whatever else a statement holds (backticks, `system`, `do FILE`,
`BEGIN` blocks, `sub {...}` outside a list, unknown functions, `eval`...) makes that
statement "not understood", reported with file:line, and every variable it may have set
becomes Unknown: nothing is guessed. A `sub {...}` inside a list (amavis' @av_scanners)
becomes an opaque Code value, its text skipped, so the list's other entries are still read.
Input is bounded (file size, statement length, nesting depth, items and characters of a
value, and the work of building values: `@a = (@a, @a);` over and over doubles a list, and
`$a = [$a, $a];` a tree, each time, which a few dozen lines took to memory's and time's end).
Numbers are Perl's: an integer past 2**64 - 1 becomes a double, so no sum or literal grows to
thousands of digits, and a double interpolates as Perl prints it ("%.15g", Inf, NaN).
Talks to: nothing (text in, values out; milters/amavis_import.py reads the files).
Tests: tests/milters/test_amavis_import.py, tests/fuzz/test_amavis_conf.py, tests/fuzz/test_fuzz_findings_s21.py
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

MAX_STATEMENT_CHARS = 64 * 1024   # Debian's longest (@av_scanners) is about 16 KiB
MAX_DEPTH = 32                    # brackets nested; amavis' own files go to 4
MAX_TOKENS = 200_000              # per file (a 1 MiB file of punctuation)
MAX_VALUE_ITEMS = 100_000         # items of one value, nested ones counted each time they appear
MAX_VALUE_CHARS = 1 << 20         # characters of one string built by '.' or interpolation
MAX_WORK = 2_000_000              # items (and 64-character pieces of strings) built per file
UV_MAX = (1 << 64) - 1            # Perl's largest integer; past it a number is a double (NV)

DESTINIES = ("D_PASS", "D_BOUNCE", "D_REJECT", "D_DISCARD", "D_TEMPFAIL")
# Functions a value may call: amavis' table builders and reading helpers. Their arguments are
# read, the call recorded; none is evaluated (a file named is not opened).
VALUE_FUNCTIONS = ("new_RE", "read_hash", "read_array", "read_text", "read_cidr", "lc", "uc",
                   "ask_daemon", "Amavis::Lookup::RE->new")
# Functions a statement may call on its own: recorded for the import to judge.
STATEMENT_FUNCTIONS = ("dkim_key", "read_l10n_templates", "include_config_files", "include_optional_config_files")
# Words that open a block ending a statement at its closing brace (no `;` after it).
BLOCK_WORDS = ("BEGIN", "END", "INIT", "CHECK", "UNITCHECK", "sub", "if", "unless", "for", "foreach",
               "while", "until", "package", "eval", "do")
_PACKAGE_PREFIXES = ("Amavis::Conf::", "main::", "::")


@dataclasses.dataclass(frozen=True)
class Where:
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


@dataclasses.dataclass(frozen=True)
class Unknown:
    """A value this reader cannot know (why, in words)."""
    reason: str


@dataclasses.dataclass(frozen=True)
class PerlRegex:
    pattern: str
    flags: str


@dataclasses.dataclass(frozen=True)
class Const:
    name: str            # D_PASS...


@dataclasses.dataclass(frozen=True)
class Ref:
    sigil: str           # "\\@x": "@", "\\%x": "%", "\\$x": "$", "\\&x": "&"
    name: str


@dataclasses.dataclass(frozen=True)
class PerlCall:
    name: str
    args: tuple


@dataclasses.dataclass(frozen=True)
class Code:
    """A `sub {...}`: never looked into."""
    where: Where


@dataclasses.dataclass(frozen=True)
class Array:
    """An anonymous array `[...]` (a list in parentheses is a plain Python list)."""
    items: tuple


@dataclasses.dataclass(frozen=True)
class Hash:
    """An anonymous hash `{...}` or a hash's contents: (key, value) pairs in order."""
    pairs: tuple


@dataclasses.dataclass(frozen=True)
class Assigned:
    value: Any
    where: Where
    text: str            # the statement, white space folded, for the comments


@dataclasses.dataclass(frozen=True)
class NotUnderstood:
    where: Where
    text: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.text!r}: {self.reason}"


class ReadError(Exception):
    """A statement outside the subset (its reason); the reader reports it, never raises it out."""


@dataclasses.dataclass
class PerlToken:
    kind: str            # var, str, istr (to interpolate), num, word, op, qw, qr, cmd
    value: Any
    line: int
    start: int
    end: int


@dataclasses.dataclass
class Config:
    """What the files set, the last assignment of each name winning (as when amavisd runs them)."""
    scalars: dict[str, Assigned] = dataclasses.field(default_factory=dict)
    arrays: dict[str, Assigned] = dataclasses.field(default_factory=dict)
    hashes: dict[str, Assigned] = dataclasses.field(default_factory=dict)
    elements: dict[tuple[str, Any], Assigned] = dataclasses.field(default_factory=dict)  # $h{k} = ...
    calls: list[tuple[PerlCall, Where, str]] = dataclasses.field(default_factory=list)
    not_understood: list[NotUnderstood] = dataclasses.field(default_factory=list)
    # statements not read that only set what --define gives (Debian's `chomp($mydomain = `...`)`)
    stood_in_for: list[NotUnderstood] = dataclasses.field(default_factory=list)
    defined: dict[str, str] = dataclasses.field(default_factory=dict)    # --define: never marked Unknown
    files: list[str] = dataclasses.field(default_factory=list)
    work: int = dataclasses.field(default=0, repr=False, compare=False)   # built in the file being read
    # id of an Array, Hash or PerlCall built -> (it, its items counted as in MAX_VALUE_ITEMS); the
    # value held keeps its id from being reused. A value shares what it was built of, so a tree
    # is only counted item by item once.
    weights: dict[int, tuple[Any, int]] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def table(self, sigil: str) -> dict[str, Assigned]:
        return {"$": self.scalars, "@": self.arrays, "%": self.hashes}[sigil]

    def get(self, sigil: str, name: str) -> Assigned | None:
        return self.table(sigil).get(name)


# --- tokens -----------------------------------------------------------------------------

_IDENT = re.compile(r"(?:::)?[A-Za-z_][A-Za-z_0-9]*(?:::[A-Za-z_][A-Za-z_0-9]*)*")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F_]+|(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][+-]?\d+)?", re.ASCII)
_FLAGS = re.compile(r"[a-z]*")
_DIGITS = "0123456789"
_OPS = ("||=", "//=", "**=", "=>", "->", "..", "==", "!=", "=~", "!~", "||", "&&", "//", "**", "<<", ">>",
        "<=", ">=", ".=", "+=", "-=", "*=", "/=", "x=", "++", "--")
_PAIRS = {"(": ")", "[": "]", "{": "}", "<": ">"}
_POD = re.compile(r"=[A-Za-z]")       # at the start of a line: POD, up to =cut


def _name(raw: str) -> str:
    for prefix in _PACKAGE_PREFIXES:
        if raw.startswith(prefix):
            return raw[len(prefix):]
    return raw


class _Lexer:
    def __init__(self, text: str, path: str):
        self.text, self.path, self.pos, self.line = text, path, 0, 1

    def error(self, at_line: int, why: str) -> ReadError:
        return ReadError(why, at_line)

    def _advance(self, to: int) -> None:
        self.line += self.text.count("\n", self.pos, to)
        self.pos = to

    def _delimited(self, open_: str, start_line: int, what: str) -> str:
        """The text up to the delimiter closing `open_` (self.pos just after it); backslashes kept."""
        close = _PAIRS.get(open_, open_)
        depth, i, text = 1, self.pos, self.text
        while i < len(text):
            c = text[i]
            if c == "\\":
                i += 2
                continue
            if c == close:
                depth -= 1
                if depth == 0:
                    body = text[self.pos:i]
                    self._advance(i + 1)
                    return body
            elif c == open_ and close != open_:
                depth += 1
            i += 1
        raise self.error(start_line, f"unterminated {what}: the rest of the file is not read")

    def tokens(self) -> list[PerlToken]:
        """The file's tokens; on ReadError, those read so far stay in self.out."""
        self.out: list[PerlToken] = []
        out = self.out
        text = self.text
        at_line_start = True
        while self.pos < len(text):
            if len(out) > MAX_TOKENS:
                raise self.error(self.line, f"more than {MAX_TOKENS} tokens: the rest of the file is not read")
            c = text[self.pos]
            if c == "\n":
                self._advance(self.pos + 1)
                at_line_start = True
                continue
            if at_line_start and _POD.match(text, self.pos):
                cut = re.compile(r"^=cut\b.*$", re.M).search(text, self.pos)
                self._advance(cut.end() if cut else len(text))
                continue
            at_line_start = False
            if c.isspace():
                self._advance(self.pos + 1)
                continue
            if c == "#":
                nl = text.find("\n", self.pos)
                self._advance(len(text) if nl < 0 else nl)
                continue
            start, line = self.pos, self.line
            tok = self._one(c, line)
            if tok is None:
                break                                     # __END__
            kind, value = tok
            out.append(PerlToken(kind, value, line, start, self.pos))
        return out

    def _one(self, c: str, line: int) -> tuple[str, Any] | None:
        text, pos = self.text, self.pos
        if c in "$@%&" and pos + 1 < len(text):
            m = _IDENT.match(text, pos + 1)
            if m and (c != "%" or not text[pos + 1].isdigit()):
                self._advance(m.end())
                return "var", c + _name(m.group())
            if c == "$" and text.startswith("{", pos + 1):
                m = _IDENT.match(text, pos + 2)
                if m and text.startswith("}", m.end()):
                    self._advance(m.end() + 1)
                    return "var", "$" + _name(m.group())
        if c == "'":
            self._advance(pos + 1)
            return "str", _single_quoted(self._delimited("'", line, "string"))
        if c == '"':
            self._advance(pos + 1)
            return "istr", self._delimited('"', line, "string")
        if c == "`":
            self._advance(pos + 1)
            return "cmd", self._delimited("`", line, "command (backticks)")
        # ASCII digits only: str.isdigit() takes "\u00b2", which no number pattern reads
        if c in _DIGITS or (c == "." and pos + 1 < len(text) and text[pos + 1] in _DIGITS):
            m = _NUMBER.match(text, pos)
            assert m is not None
            self._advance(m.end())
            return _number(m.group().replace("_", ""))
        m = _IDENT.match(text, pos)
        if m:
            word = m.group()
            self._advance(m.end())
            if word in ("__END__", "__DATA__"):
                return None
            if word in ("q", "qq", "qw", "qr", "qx", "m", "s", "tr", "y"):
                return self._quote_like(word, line)
            return "word", word
        for op in _OPS:
            if text.startswith(op, pos):
                self._advance(pos + len(op))
                return "op", op
        self._advance(pos + 1)
        return "op", c

    def _quote_like(self, word: str, line: int) -> tuple[str, Any]:
        text = self.text
        while self.pos < len(text) and text[self.pos] in " \t":
            self._advance(self.pos + 1)
        if self.pos >= len(text) or text[self.pos] in "=,;)" or text[self.pos].isalnum() or text[self.pos] == "_":
            return "word", word                        # a bare word q, s... (a hash key, say)
        open_ = text[self.pos]
        if text[self.pos:self.pos + 2] == "=>":
            return "word", word
        self._advance(self.pos + 1)
        body = self._delimited(open_, line, f"{word}{open_}...")
        if word in ("s", "tr", "y"):
            if open_ in _PAIRS:
                while self.pos < len(text) and text[self.pos].isspace():
                    self._advance(self.pos + 1)
                if self.pos < len(text):
                    o2 = text[self.pos]
                    self._advance(self.pos + 1)
                    self._delimited(o2, line, f"{word}///")
            else:
                self._delimited(open_, line, f"{word}///")
            return "op", f"{word}///"                  # a substitution: never part of the subset
        if word == "q":
            return "str", _single_quoted(body)
        if word == "qq":
            return "istr", body
        if word == "qx":
            return "cmd", body
        if word == "qw":
            return "qw", tuple(body.split())
        flags = _FLAGS.match(text, self.pos).group()      # (not a copy of the rest of the file per qr)
        self._advance(self.pos + len(flags))
        if word == "m":
            return "op", "m//"                         # a match: not a value
        return "qr", PerlRegex(body, flags)


def _number(raw: str) -> tuple[str, Any]:
    """A numeric literal's token: ("num", value) as Perl reads it, or ("bad", why)."""
    if raw[:2].lower() == "0x":
        if len(raw) == 2:
            return "bad", "a hexadecimal number without digits"
        return "num", perl_number(int(raw, 16))          # base 16: no digit limit
    if any(x in raw for x in ".eE"):
        return "num", float(raw)                         # 1e999 is inf, as in Perl
    if len(raw) > len(str(UV_MAX)):
        return "num", float(raw)                         # (int() refuses past 4300 digits)
    return "num", perl_number(int(raw))


def perl_number(n: int | float) -> int | float:
    """`n` as Perl holds it: an integer within 64 bits, else a double (inf past its range)."""
    if isinstance(n, float) or -UV_MAX <= n <= UV_MAX:
        return n
    return float(n) if n.bit_length() <= 1024 else (float("inf") if n > 0 else float("-inf"))


def _single_quoted(body: str) -> str:
    return re.sub(r"\\([\\'])", r"\1", body)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "e": "\x1b", "a": "\x07", "f": "\f"}


def interpolate(body: str, lookup: Any) -> Any:
    """A double-quoted string's value: escapes, and $name/${name} from `lookup(name)` (a str, or
    an Unknown, which makes the whole string Unknown). Array and expression interpolation
    ($x{..}, $x[..], @x, $x->...) are outside the subset."""
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            n = body[i + 1]
            out.append(_ESCAPES.get(n, n))
            i += 2
            continue
        if c == "$" and i + 1 < len(body):
            if body[i + 1] == "{":
                m = _IDENT.match(body, i + 2)
                end = m.end() + 1 if m and body.startswith("}", m.end()) else None
            else:
                m = _IDENT.match(body, i + 1)
                end = m.end() if m else None
            if m is None or end is None:
                raise ReadError(f"{body[i:i + 12]!r} in a string: only $name is interpolated here")
            if body[end:end + 1] in ("[", "{") or body.startswith("->", end):
                raise ReadError(f"{body[i:end + 2]!r}: element or method interpolation is outside the subset read")
            value = lookup(_name(m.group()))
            if isinstance(value, Unknown):
                return value
            if value is None:
                value = ""                               # undef interpolates as ""
            elif not isinstance(value, (str, int, float)):
                # a reference prints as ARRAY(0x55d0...), an address nobody can know (and the
                # text of a shared tree doubles with each level)
                return Unknown(f"${_name(m.group())} interpolated is a reference")
            out.append(_perl_str(value))
            if sum(map(len, out)) > MAX_VALUE_CHARS:
                raise ReadError(f"a string longer than {MAX_VALUE_CHARS} characters")
            i = end
            continue
        if c == "@" and i + 1 < len(body) and (body[i + 1].isalpha() or body[i + 1] in "_{"):
            raise ReadError(f"{body[i:i + 12]!r} in a string: array interpolation is outside the subset "
                            "(write \\@ for a literal @)")
        out.append(c)
        i += 1
    return "".join(out)


# --- statements -------------------------------------------------------------------------

def split_statements(tokens: list[PerlToken]) -> tuple[list[list[PerlToken]], list[PerlToken]]:
    """Statements: up to a `;` outside brackets, or a block's closing brace for BEGIN, sub, if...;
    and the tokens after the last one (a statement with no `;` at the end of the file)."""
    out: list[list[PerlToken]] = []
    current: list[PerlToken] = []
    depth = 0
    for tok in tokens:
        if tok.kind == "op" and tok.value == ";" and depth == 0:
            if current:
                out.append(current)
            current = []
            continue
        current.append(tok)
        if tok.kind == "op" and tok.value in "([{":
            depth += 1
        elif tok.kind == "op" and tok.value in ")]}":
            depth = max(0, depth - 1)
            if (depth == 0 and tok.value == "}" and current[0].kind == "word"
                    and current[0].value in BLOCK_WORDS and current[0].value != "do"):
                out.append(current)
                current = []
    return out, current


class _Parser:
    """One statement's tokens into a value; ReadError for anything outside the subset."""

    def __init__(self, toks: list[PerlToken], config: Config, path: str):
        self.toks, self.i, self.config, self.path, self.depth = toks, 0, config, path, 0

    def peek(self, k: int = 0) -> PerlToken | None:
        return self.toks[self.i + k] if self.i + k < len(self.toks) else None

    def is_op(self, value: str, k: int = 0) -> bool:
        t = self.peek(k)
        return t is not None and t.kind == "op" and t.value == value

    def take(self) -> PerlToken:
        t = self.peek()
        if t is None:
            raise ReadError("the statement ends too early")
        self.i += 1
        return t

    def expect(self, value: str) -> None:
        t = self.take()
        if t.kind != "op" or t.value != value:
            raise ReadError(f"{value!r} expected, found {_show(t)}")

    def charge(self, work: int) -> None:
        if self.config.work + work > MAX_WORK:
            raise ReadError(f"the file builds values of more than {MAX_WORK} items")
        self.config.work += work

    def built(self, value: Any) -> Any:
        """`value` (an Array, Hash or PerlCall just built), once its items are counted."""
        weight = 1 + sum(_weight(item, self.config.weights) for item in _items(value))
        if weight > MAX_VALUE_ITEMS:
            raise ReadError(f"a value of more than {MAX_VALUE_ITEMS} items")
        self.config.weights[id(value)] = (value, weight)
        return value

    def lookup(self, name: str) -> Any:
        a = self.config.scalars.get(name)
        if a is None:
            return Unknown(f"${name} is not set in the files read")
        return a.value

    # list := expr ((',' | '=>') expr)* [',']
    def parse_list(self, closer: str | None) -> list[Any]:
        items: list[Any] = []
        while True:
            if self.peek() is None or (closer and self.is_op(closer)):
                return items
            value = self.parse_expr()
            if isinstance(value, list):
                self.charge(len(value))
                items.extend(value)                      # a list in a list flattens, as in Perl
            else:
                self.charge(1)
                items.append(value)
            if len(items) > MAX_VALUE_ITEMS:
                raise ReadError(f"a list of more than {MAX_VALUE_ITEMS} items")
            if self.is_op(",") or self.is_op("=>"):
                self.i += 1
                continue
            return items

    def parse_expr(self) -> Any:
        left = self.parse_sum()
        if self.is_op(".."):
            self.i += 1
            right = self.parse_sum()
            if not (isinstance(left, int) and isinstance(right, int)) or right - left > 10000:
                raise ReadError("a range other than of two small integers")
            self.charge(max(0, right - left + 1))
            return list(range(left, right + 1))
        return left

    def parse_sum(self) -> Any:
        left = self.parse_product()
        while self.is_op(".") or self.is_op("+") or self.is_op("-"):
            op = self.take().value
            right = self.parse_product()
            left = _binary(op, left, right)
            if isinstance(left, str):
                self.charge(1 + len(left) // 64)
        return left

    def parse_product(self) -> Any:
        left = self.parse_term()
        while self.is_op("*") or self.is_op("/"):
            op = self.take().value
            right = self.parse_term()
            left = _binary(op, left, right)
        return left

    def parse_term(self) -> Any:
        t = self.take()
        if t.kind == "num" or t.kind == "str":
            return t.value
        if t.kind == "istr":
            value = interpolate(t.value, self.lookup)
            if isinstance(value, str):
                self.charge(1 + len(value) // 64)       # (a copy of what it interpolates)
            return value
        if t.kind == "qw":
            return list(t.value)
        if t.kind == "qr":
            return t.value
        if t.kind == "cmd":
            raise ReadError("runs a command (backticks): not run")
        if t.kind == "bad":
            raise ReadError(t.value)
        if t.kind == "op" and t.value == "-":
            v = self.parse_term()
            if isinstance(v, (int, float)):
                return -v
            raise ReadError("'-' before something other than a number")
        if t.kind == "op" and t.value in "([{":
            return self.parse_bracket(t.value)
        if t.kind == "op" and t.value == "\\":
            r = self.take()
            if r.kind == "var":
                return Ref(r.value[0], r.value[1:])
            raise ReadError(f"a reference to {_show(r)}")
        if t.kind == "var":
            return self.parse_variable(t.value)
        if t.kind == "word":
            return self.parse_word(t)
        raise ReadError(f"{_show(t)} is outside the subset read")

    def parse_bracket(self, open_: str) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ReadError(f"brackets nested deeper than {MAX_DEPTH}")
        close = _PAIRS[open_]
        items = self.parse_list(close)
        self.expect(close)
        self.depth -= 1
        if open_ == "(":
            return items
        if open_ == "[":
            return self.built(Array(tuple(items)))
        return self.built(_hash(items))

    def parse_variable(self, var: str) -> Any:
        sigil, name = var[0], var[1:]
        if self.is_op("[") or self.is_op("{") or self.is_op("->"):
            raise ReadError(f"an element of {var} read in an expression")
        if sigil == "&":
            raise ReadError(f"calls {var}")
        if sigil == "$":
            return self.lookup(name)
        a = self.config.get(sigil, name)
        if a is None:
            return Unknown(f"{var} is not set in the files read")
        return a.value

    def parse_word(self, t: PerlToken) -> Any:
        word = t.value
        if word in DESTINIES:
            if self.is_op("("):
                self.i += 1
                self.expect(")")
            return Const(word)
        if word == "undef":
            return None
        if word == "sub" and self.is_op("{"):
            if self.depth == 0:
                raise ReadError("a sub {...}: code, not read")
            self.skip_block()
            return Code(Where(self.path, t.line))
        if word == "Amavis::Lookup::RE" and self.is_op("->"):
            self.i += 1
            m = self.take()
            if m.kind != "word" or m.value != "new" or not self.is_op("("):
                raise ReadError("Amavis::Lookup::RE-> other than ->new(...)")
            word = "new_RE"
        if word in VALUE_FUNCTIONS and self.is_op("("):
            self.i += 1
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ReadError(f"brackets nested deeper than {MAX_DEPTH}")
            args = self.parse_list(")")
            self.expect(")")
            self.depth -= 1
            return self.built(PerlCall(word, tuple(args)))
        if self.is_op("=>"):
            return word                                   # a bare hash key: foo => 1
        if self.is_op("}") and self.i >= 2 and self.toks[self.i - 2].kind == "op" and self.toks[self.i - 2].value == "{":
            return word                                   # $h{foo}
        raise ReadError(f"{word!r}{'(...)' if self.is_op('(') else ''}: "
                        f"{'a call of a function' if self.is_op('(') else 'a bare word'} outside the subset read")

    def skip_block(self) -> None:
        depth = 0
        while True:
            t = self.take()
            if t.kind == "op" and t.value == "{":
                depth += 1
            elif t.kind == "op" and t.value == "}":
                depth -= 1
                if depth == 0:
                    return


def _items(value: Any) -> tuple:
    if isinstance(value, Array):
        return value.items
    if isinstance(value, Hash):
        return tuple(x for pair in value.pairs for x in pair)
    if isinstance(value, PerlCall):
        return value.args
    return ()


def _weight(value: Any, weights: dict[int, tuple[Any, int]]) -> int:
    """Items of `value` counted as in MAX_VALUE_ITEMS (what was built is looked up, not walked)."""
    if isinstance(value, (Array, Hash, PerlCall)):
        known = weights.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        return 1 + sum(_weight(item, weights) for item in _items(value))   # (a Hash of a list: small)
    return 1 + len(value) // 64 if isinstance(value, str) else 1


def _show(t: PerlToken) -> str:
    return {"var": t.value, "word": repr(t.value), "op": repr(t.value)}.get(t.kind, t.kind)


def _binary(op: str, left: Any, right: Any) -> Any:
    for v in (left, right):
        if isinstance(v, Unknown):
            return v
    if op == ".":
        if all(isinstance(v, (str, int, float)) for v in (left, right)):
            joined = _perl_str(left) + _perl_str(right)
            if len(joined) > MAX_VALUE_CHARS:
                raise ReadError(f"a string longer than {MAX_VALUE_CHARS} characters")
            return joined
        raise ReadError("'.' joining something other than strings")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
        raise ReadError(f"{op!r} on something other than numbers")
    if op == "+":
        return perl_number(left + right)
    if op == "-":
        return perl_number(left - right)
    if op == "*":
        return perl_number(left * right)
    if right == 0:
        raise ReadError("a division by zero")
    q = left / right                       # within 64 bits (perl_number): no OverflowError
    return perl_number(int(q)) if q.is_integer() else q


def _perl_str(v: Any) -> str:
    """A number as Perl prints it: a double with 15 significant digits ("%.15g"), Inf, NaN."""
    if isinstance(v, float):
        if v != v:
            return "NaN"
        if v in (float("inf"), float("-inf")):
            return "Inf" if v > 0 else "-Inf"
        return "%.15g" % v
    return str(v)


def _hash(items: list[Any]) -> Hash:
    if len(items) % 2:
        raise ReadError("a hash of an odd number of elements")
    return Hash(tuple((items[k], items[k + 1]) for k in range(0, len(items), 2)))


def _fold(toks: list[PerlToken], text: str) -> str:
    """The statement as written, comments and line breaks left out, shortened past 100 characters."""
    parts = [text[toks[0].start:toks[0].end]]
    for prev, t in zip(toks, toks[1:]):
        parts.append((" " if t.start > prev.end else "") + text[t.start:t.end])
        if sum(map(len, parts)) > 200:
            break
    raw = " ".join("".join(parts).split())
    return raw if len(raw) <= 100 else raw[:97] + "..."


def read_statement(toks: list[PerlToken], text: str, path: str, config: Config) -> None:
    """Apply one statement to `config`, or record it as not understood."""
    where = Where(path, toks[0].line)
    shown = _fold(toks, text)
    if toks[-1].end - toks[0].start > MAX_STATEMENT_CHARS:
        _not_understood(config, toks, where, shown, f"a statement longer than {MAX_STATEMENT_CHARS} characters")
        return
    try:
        _statement(toks, config, path, where, shown)
    except ReadError as e:
        _not_understood(config, toks, where, shown, str(e))
    except RecursionError:
        _not_understood(config, toks, where, shown, "nested too deeply")


def _not_understood(config: Config, toks: list[PerlToken], where: Where, shown: str, reason: str) -> None:
    # Every variable the statement might have set is no longer known, but for what --define gives.
    assigned = []
    for k, t in enumerate(toks):
        if t.kind == "var" and t.value[0] in "$@%":
            nxt = toks[k + 1] if k + 1 < len(toks) else None
            if nxt is not None and nxt.kind == "op" and (nxt.value == "=" or nxt.value.endswith("=")
                                                         and nxt.value not in ("==", "=>", "<=", ">=", "!=")):
                assigned.append(t.value)
    kept = [v for v in assigned if not (v[0] == "$" and v[1:] in config.defined)]
    for var in kept:
        config.table(var[0])[var[1:]] = Assigned(
            Unknown(f"{var} is set at {where} by a statement this import does not read"), where, shown)
    if assigned and not kept:
        # it only computes what the postmaster gave with --define: nothing is lost by not reading it
        config.stood_in_for.append(NotUnderstood(where, shown, f"{reason}; --define "
                                                 f"{', '.join(v[1:] for v in assigned)} stands in for it"))
    else:
        config.not_understood.append(NotUnderstood(where, shown, reason))


def _statement(toks: list[PerlToken], config: Config, path: str, where: Where, shown: str) -> None:
    first = toks[0]
    if first.kind == "word" and first.value in ("use", "no"):
        pragma = toks[1].value if len(toks) > 1 else ""
        if pragma in ("strict", "warnings", "utf8", "vars"):
            return
        raise ReadError(f"'{first.value} {pragma}' loads code")
    if len(toks) == 1 and first.kind in ("num", "str"):
        return                                            # 1;  (a file's true value)
    for t in toks:
        if t.kind == "cmd":
            raise ReadError(f"runs a command (`{t.value[:40]}`), which this import never runs")
    if first.kind == "word" and first.value in BLOCK_WORDS:
        what = "do of a file or block" if first.value == "do" else f"{first.value} block"
        raise ReadError(f"{'an' if what[0] in 'aeiouAEIOU' else 'a'} {what}: code, not read")
    p = _Parser(toks, config, path)
    if first.kind == "word" and first.value in STATEMENT_FUNCTIONS and p.is_op("(", 1):
        p.i = 2
        args = p.parse_list(")")
        p.expect(")")
        if p.peek() is not None:
            raise ReadError(f"{_show(p.peek())} after the call")
        config.calls.append((PerlCall(first.value, tuple(args)), where, shown))
        return
    if first.kind == "word" and first.value in ("my", "our", "local"):
        p.i = 1
    elif first.kind == "word":
        raise ReadError(f"{first.value}{'(...)' if p.is_op('(', 1) else ''}: "
                        f"{'a call of a function' if p.is_op('(', 1) else 'a bare word'} outside the subset read")
    _assignment(p, config, where, shown)
    if p.peek() is not None:
        raise ReadError(f"{_show(p.peek())} after the value")


def _assignment(p: _Parser, config: Config, where: Where, shown: str) -> Any:
    """target = value (chained: $a = $b = 1); returns the value assigned."""
    t = p.take()
    if t.kind != "var" or t.value[0] not in "$@%":
        raise ReadError(f"{_show(t)}: not an assignment")
    sigil, name = t.value[0], t.value[1:]
    key = None
    if sigil == "$" and p.is_op("{"):
        p.i += 1
        keys = p.parse_list("}")
        p.expect("}")
        if len(keys) != 1 or not isinstance(keys[0], (str, int)):
            raise ReadError(f"an element of %{name} with a key other than a plain string")
        key = keys[0]
    elif sigil == "$" and p.is_op("["):
        raise ReadError(f"an element of @{name} assigned")
    op = p.take()
    if op.kind != "op" or op.value != "=":
        raise ReadError(f"{_show(op)} after {t.value}: only '=' assignments are read")
    nxt, after = p.peek(), p.peek(1)
    if nxt is not None and nxt.kind == "var" and after is not None and after.kind == "op" and after.value == "=":
        value = _assignment(p, config, where, shown)
    else:
        items = p.parse_list(None)
        value = items[0] if sigil == "$" and len(items) == 1 else items
        if sigil == "$" and len(items) != 1:
            raise ReadError(f"a list assigned to ${name}")
        if sigil == "%":
            value = _hash(items)
    weight = sum(_weight(item, config.weights) for item in (value if isinstance(value, list) else [value]))
    if weight > MAX_VALUE_ITEMS:
        raise ReadError(f"a value of more than {MAX_VALUE_ITEMS} items")
    assigned = Assigned(value, where, shown)
    if key is not None:
        config.elements[(name, key)] = assigned
    else:
        config.table(sigil)[name] = assigned
    return value


def read_text(text: str, path: str, config: Config) -> None:
    """Read one file's text into `config` (in place: files are read in order, later assignments win)."""
    config.files.append(path)
    config.work = 0
    lexer = _Lexer(text, path)
    stop: NotUnderstood | None = None
    try:
        tokens = lexer.tokens()
    except ReadError as e:
        # The statements before the unterminated construct still count; the one it is in is lost.
        stop = NotUnderstood(Where(path, e.args[1]), "", e.args[0])
        tokens = lexer.out
    statements, rest = split_statements(tokens)
    for stmt in statements:
        read_statement(stmt, text, path, config)
    if rest and stop is None:
        read_statement(rest, text, path, config)      # Perl allows the last `;` to be left out
    if stop is not None:
        config.not_understood.append(stop)


def perl_true(value: Any) -> bool | None:
    """Perl's truth of a plain value; None when it cannot be known."""
    if isinstance(value, (Unknown, Code, PerlCall, Ref)):
        return None
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value not in ("", "0")
    return True
