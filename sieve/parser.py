"""Sieve parser (RFC 5228 section 8.2): tokens to a syntax tree of commands and tests.

Only syntax here; sieve.validator checks names, arguments and requires. Nesting depth
is bounded by sieve_max_nesting. Tests: none directly; tests/sieve/test_limits.py (nesting, string
lists), tests/sieve/test_fuzz.py, the conformance run (tests/sieve/test_conformance.py,
compile/errors/parser.sieve).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sieve.errors import SieveSyntaxError
from sieve.lexer import EOF, IDENT, NUMBER, PUNCT, STRING, TAG, Token, tokenize


@dataclasses.dataclass(slots=True, eq=False)
class Str:
    value: str
    line: int
    column: int
    multiline: bool = False
    parts: Any = None          # variables template, set by the validator when needed


@dataclasses.dataclass(slots=True, eq=False)
class StrList:
    items: list
    line: int
    column: int
    bracketed: bool


@dataclasses.dataclass(slots=True, eq=False)
class Num:
    value: int
    line: int
    column: int


@dataclasses.dataclass(slots=True, eq=False)
class Tag:
    name: str          # without the colon, lower case
    line: int
    column: int


@dataclasses.dataclass(slots=True, eq=False)
class Node:
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
    tags: dict = dataclasses.field(default_factory=dict)
    pos: list = dataclasses.field(default_factory=list)
    data: dict = dataclasses.field(default_factory=dict)
    skip: bool = False


class Parser:
    def __init__(self, tokens: list[Token], max_nesting: int, max_list: int):
        self.toks = tokens
        self.i = 0
        self.max_nesting = max_nesting
        self.max_list = max_list

    def peek(self) -> Token:
        return self.toks[self.i]

    def next(self) -> Token:
        t = self.toks[self.i]
        if t.kind != EOF:
            self.i += 1
        return t

    def error(self, msg: str, tok: Token):
        raise SieveSyntaxError(msg, tok.line, tok.column)

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
                    self.error("end of script before end of block ('}' missing)", t)
                return out
            if t.kind == PUNCT and t.value == "}":
                if top:
                    self.error("unexpected '}' (no block to close)", t)
                return out
            out.append(self.command(depth))

    def command(self, depth: int) -> Node:
        t = self.next()
        if t.kind != IDENT:
            self.error(f"expected command identifier but found {t.describe()}", t)
        args, tests = self.arguments(depth, t)
        nt = self.peek()
        block = None
        if nt.kind == PUNCT and nt.value == ";":
            self.next()
        elif nt.kind == PUNCT and nt.value == "{":
            if depth + 1 > self.max_nesting:
                self.error(f"blocks nested too deeply (sieve_max_nesting {self.max_nesting})", nt)
            self.next()
            block = self.commands(depth + 1, False)
            self.expect_punct("}", "end of block")
        else:
            self.error(f"expected ';' or '{{' after command '{t.value}' but found {nt.describe()}", nt)
        return Node(t.value.lower(), args, tests, block, t.line, t.column, False)

    def arguments(self, depth: int, head: Token):
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
                while True:
                    s = self.next()
                    if s.kind != STRING:
                        self.error(f"expected string in string list but found {s.describe()}", s)
                    items.append(Str(s.value, s.line, s.column, s.multiline))
                    if len(items) > self.max_list:
                        self.error(f"string list too long (sieve_max_string_list {self.max_list})", s)
                    c = self.next()
                    if c.kind == PUNCT and c.value == ",":
                        continue
                    if c.kind == PUNCT and c.value == "]":
                        break
                    self.error(f"expected ',' or ']' in string list but found {c.describe()}", c)
                args.append(StrList(items, t.line, t.column, True))
            else:
                break
        t = self.peek()
        if t.kind == IDENT:
            tests.append(self.test(depth + 1))
        elif t.kind == PUNCT and t.value == "(":
            self.next()
            tests.extend(self.test_list(depth + 1))
        return args, tests

    def test_list(self, depth: int) -> list[Node]:
        out = []
        while True:
            t = self.peek()
            if t.kind != IDENT:
                self.error(f"expected test identifier in test list but found {t.describe()}", t)
            out.append(self.test(depth))
            c = self.next()
            if c.kind == PUNCT and c.value == ",":
                continue
            if c.kind == PUNCT and c.value == ")":
                return out
            self.error(f"expected ',' or ')' in test list but found {c.describe()}", c)

    def test(self, depth: int) -> Node:
        if depth > self.max_nesting * 2:
            self.error(f"tests nested too deeply (sieve_max_nesting {self.max_nesting})", self.peek())
        t = self.next()
        args, tests = self.arguments(depth, t)
        return Node(t.value.lower(), args, tests, None, t.line, t.column, True)


def parse(text: str, max_nesting: int = 32, max_string: int = 1 << 20, max_list: int = 1024) -> list[Node]:
    """Parse script text into a list of top-level command nodes; raises SieveSyntaxError."""
    toks = tokenize(text, max_string)
    p = Parser(toks, max_nesting, max_list)
    return p.commands(0, True)
