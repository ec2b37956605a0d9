"""Sieve engine errors: compile errors with line:column, runtime errors, resource limits.

Every failure the engine reports on bad input is a `SieveError` subclass; anything else
escaping the engine is a bug. Used by every sieve module; tests: tests/sieve/test_fuzz.py
(only these errors come out of random scripts and messages).
"""

from __future__ import annotations

from owlery.record import Record


def sanitized(text: str) -> str:
    """`text` as Pigeonhole's diagnostics show it (str_sanitize): a control character or an
    octet that is no UTF-8 as '?', a sequence the text ends in the middle of cut off, with
    "..." in its place."""
    out = []
    for i, c in enumerate(text):
        o = ord(c)
        if 0xdc80 <= o <= 0xdcff:
            lead = o - 0xdc00
            if 0xc2 <= lead <= 0xf4 and all(0xdc80 <= ord(x) <= 0xdcbf for x in text[i + 1:]):
                return "".join(out) + "..."
            out.append("?")
        else:
            out.append("?" if o < 0x20 else c)
    return "".join(out)


class SieveError(Exception):
    """Base of every error the Sieve engine reports on bad scripts or messages."""


class Diagnostic(Record, frozen=True):
    """One compile message: where (script name, line, column, 1-based) and what."""

    script: str
    line: int
    column: int
    message: str
    severity: str = "error"          # "error" | "warning"

    def __str__(self) -> str:
        return f"{self.script}:{self.line}:{self.column}: {self.severity}: {self.message}"


class SieveCompileError(SieveError):
    """The script does not compile; `.diagnostics` lists every error found, with line:column."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        errors = [d for d in self.diagnostics if d.severity == "error"]
        first = str(errors[0]) if errors else "compile failed"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first + more)


class SieveSyntaxError(SieveError):
    """Internal: one lexer/parser error at a position (collected into SieveCompileError)."""

    def __init__(self, message: str, line: int, column: int):
        super().__init__(f"{line}:{column}: {message}")
        self.message = message
        self.line = line
        self.column = column


class SieveRuntimeError(SieveError):
    """The script failed while running (bad mailbox name, action conflict, limit...).

    RFC 5228 2.10.6: the message is then kept (implicit keep into INBOX); the Result
    records the error text.
    """

    def __init__(self, message: str, line: int = 0, column: int = 0):
        super().__init__(f"{line}:{column}: {message}" if line else message)
        self.message = message
        self.line = line
        self.column = column


class SieveResourceLimit(SieveRuntimeError):
    """The run went past a resource limit (CPU steps, actions, includes...)."""


class SieveTempFailure(SieveError):
    """The host could not answer now (tracking database down...): deliver nothing, retry later.

    Raised by a Host method; `run()` turns it into Result(status="tempfail").
    """


class TestsuiteFailure(SieveError):
    """Internal to the testsuite harness: test_fail jumps to the end of the test block."""

    __test__ = False  # not a pytest class

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
