"""ManageSieve (RFC 5804) wire format, sans-I/O: command lines in (atoms, quoted strings, literals), responses out.

`CommandReader` takes bytes with `feed()` and hands out one item at a time with `next()`, so
the session can change the limits between two commands (a literal allowed after login is
refused before it): `Line(tokens)` for a command line (`Atom` and `String` tokens; a
literal's octets arrive whole inside its String), `Bad` for a line that does not parse (the
rest of it, literal octets included, is skipped, so a script's text can never run as
commands: see `CommandReader.next`), `Oversized` for a line whose literal was longer than
`literal_max` (its octets were read and dropped, never stored; so is one that would make the
literals of one command hold more than `literal_max` plus `max_line` octets in all), `Fatal` when the connection must end (a
literal longer than `skip_max`; a line longer than `max_line` while `long_line_fatal`, else that
line is answered `Bad` at once and skipped to its LF without being kept, as Pigeonhole does
after login; after login a literal that is not a script's, as `script_literal` tells, is bounded
by the line instead: Fatal once the command with it would pass `max_line`). An empty
line is `Line(())`, a command without a name. Quoted strings must be UTF-8 (RFC 5804 4,
SAFE-UTF8-CHAR); a literal's octets are not checked here. Both literal forms are read: `{n+}`
(literal-c2s) and `{n}`; ManageSieve has no continuation request, so the octets of either
follow at once, as Dovecot reads them.
Out: `response("NO", code, text)`, `string(value)` (quoted when it can be, else a literal
`{n}`), `capability_lines(pairs)`.
Talks to: nothing. Tests: tests/managesieve/test_protocol.py,
tests/sieve/test_managesieve_literal_digits.py (literal sizes: leading zeros, many digits),
tests/managesieve/test_literal_after_error.py (a bad line's literal; literal bounds by state)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable

NUMBER_MAX = 4294967295          # RFC 5804 number: 0..4294967295
QUOTED_MAX = 1024                # longer values are sent as literals
_LITERAL = re.compile(rb"\{(\d+)(\+?)\}")          # a size past NUMBER_MAX is fatal, not a syntax error
_ANNOUNCE_MAX = len(b" {4294967295+}")           # the longest literal announcement without leading zeros
_OPEN_ANNOUNCE = re.compile(rb"\{(\d+)(\+?\}?\r?)\Z")      # one at the end of what was read so far
# Atom characters: printable ASCII except the ones that start or end other tokens.
_ATOM_BYTES = frozenset(range(0x21, 0x7f)) - frozenset(b'"{}()\\')


@dataclasses.dataclass(frozen=True)
class Atom:
    """A bare word: a command name, a number (HAVESPACE's size)."""

    text: str


@dataclasses.dataclass(frozen=True)
class String:
    """A quoted string or a literal, as octets."""

    data: bytes
    literal: bool = False

    def text(self) -> str:
        """The value as text; ValueError when it is not UTF-8 (RFC 5804 strings are)."""
        return self.data.decode("utf-8")


@dataclasses.dataclass(frozen=True)
class Line:
    tokens: tuple


@dataclasses.dataclass(frozen=True)
class Bad:
    reason: str


@dataclasses.dataclass(frozen=True)
class Oversized:
    tokens: tuple        # the tokens before the literal that was too long
    size: int


@dataclasses.dataclass(frozen=True)
class Fatal:
    reason: str


class _Syntax(Exception):
    pass


_LINE, _LITERAL_READ, _LITERAL_SKIP, _SKIP_LINE, _DEAD, _SKIP_LONG = range(6)


class CommandReader:
    """Incremental parser of client command lines (see the module docstring)."""

    def __init__(self, max_line: int = 8192, literal_max: int = 8192, skip_max: int = 8192):
        self.max_line = max_line
        self.long_line_fatal = True
        self.literal_max = literal_max
        self.skip_max = skip_max
        # None: every literal follows literal_max / skip_max (before login). Set (after login):
        # a literal for whose tokens before it this returns False is bounded by the line
        # (_line_bound_literal); one for which it returns True (a script) follows the limits.
        self.script_literal: Callable[[tuple], bool] | None = None
        self._buf = bytearray()
        self._reset()
        self._mode = _LINE

    def _reset(self) -> None:
        self._tokens: list = []
        self._line_len = 0
        self._after_literal = False
        self._oversized: int | None = None
        self._bad: str | None = None
        self._need = 0
        self._held = 0                 # literal octets this command keeps
        self._inline = 0               # octets of the literals bounded by the line, so far
        self._literal = bytearray()

    def set_limits(self, literal_max: int, skip_max: int) -> None:
        """Literals up to literal_max are read, up to skip_max dropped (Oversized), longer are Fatal."""
        self.literal_max = literal_max
        self.skip_max = max(skip_max, literal_max)

    def feed(self, data: bytes) -> None:
        if self._mode != _DEAD:
            self._buf += data

    def discard(self) -> None:
        """Drop buffered input (after STARTTLS: what came before the handshake must not count)."""
        self._buf.clear()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    @property
    def between_commands(self) -> bool:
        """No part of a command has come: nothing buffered, no line, literal or skip begun."""
        return self._mode == _LINE and not self._buf and not self._tokens and not self._line_len

    def next(self) -> Line | Bad | Oversized | Fatal | None:
        """The next complete item, or None until more input arrives.

        A line that does not parse but announces a literal ({n+}, or {n}: ManageSieve has no
        continuation request, so a client sends the octets of either at once) is skipped with
        that literal's octets and on to the end of the line after them, in both states, and
        answered by one `Bad`. Dovecot's managesieved (2.3, login process and managesieve
        alike) skips only to the first LF and then runs the literal's octets as commands; we
        do not follow it: RFC 5804 section 4 makes literal-c2s part of the command that
        announced it, and running those octets would let a script's text (a PUTSCRIPT whose
        name has a bad character) or any string a client was given to upload act as
        commands (DELETESCRIPT, SETACTIVE, ...) on the user's behalf.
        Tests: tests/managesieve/test_literal_after_error.py"""
        buf = self._buf
        while True:
            if self._mode == _DEAD:
                return None
            if self._mode in (_LITERAL_READ, _LITERAL_SKIP):
                take = min(self._need, len(buf))
                if self._mode == _LITERAL_READ:
                    self._literal += buf[:take]
                del buf[:take]
                self._need -= take
                if self._need:
                    return None
                if self._mode == _LITERAL_READ:
                    self._tokens.append(String(bytes(self._literal), literal=True))
                    self._literal = bytearray()
                self._mode = _SKIP_LINE if self._bad is not None else _LINE
                self._after_literal = True
                continue
            newline = buf.find(b"\n")
            if self._mode == _SKIP_LONG:
                # The rest of an over-long line: dropped as it comes, never buffered.
                if newline < 0:
                    buf.clear()
                    return None
                del buf[:newline + 1]
                self._reset()
                self._mode = _LINE
                continue
            if self._mode == _SKIP_LINE:
                # Skip the rest of a bad line, including any literal announced at its end: its
                # last bytes are kept until the LF, for they may begin that announcement.
                if newline < 0:
                    m = _OPEN_ANNOUNCE.search(buf)
                    if m:        # kept as its value says, in at most 11 digits: leading zeros go,
                        # 11 nines stand for any size past NUMBER_MAX (too large, whatever follows)
                        size = _literal_size(m.group(1))
                        buf[:] = b"{%d" % min(size, 10 ** 11 - 1) + m.group(2)
                    else:
                        del buf[:-_ANNOUNCE_MAX]
                    return None
                segment = bytes(buf[:newline]).rstrip(b"\r")
                del buf[:newline + 1]
                if self._start_literal(_trailing_literal(segment), skipping=True):
                    continue
                if self._mode == _DEAD:
                    return Fatal("literal too large")
                reason = self._bad or "syntax error"
                self._reset()
                self._mode = _LINE
                return Bad(reason)
            if newline < 0:
                if self._line_len + len(buf) > self.max_line:
                    return self._too_long()
                return None
            length = newline - (1 if newline and buf[newline - 1] == 0x0d else 0)
            if self._line_len + length + 2 > self.max_line:
                return self._too_long()          # (the line is still buffered: skipped to its LF)
            segment = bytes(buf[:length])
            del buf[:newline + 1]
            self._line_len += length + 2
            if not segment and not self._tokens and not self._after_literal:
                self._reset()
                return Line(())               # an empty line: a command without a name
            try:
                literal = self._tokenize(segment)
            except _Syntax as e:
                self._bad = str(e)
                if self._start_literal(_trailing_literal(segment), skipping=True):
                    continue
                if self._mode == _DEAD:
                    return Fatal("literal too large")
                self._reset()
                return Bad(str(e))
            if literal is None:
                tokens = tuple(self._tokens)
                oversized = self._oversized
                self._reset()
                return Oversized(tokens, oversized) if oversized is not None else Line(tokens)
            if not self._start_literal(literal, skipping=False):
                return Fatal("literal too large")

    def _start_literal(self, size: int | None, *, skipping: bool) -> bool:
        """Begin reading (or skipping) `size` octets; False when there is none or it is fatal."""
        if size is None:
            return False
        if not skipping and self.script_literal is not None and not self.script_literal(tuple(self._tokens)):
            return self._line_bound_literal(size)
        if size > self.skip_max:
            self._fatal("literal too large")
            return False
        self._need = size
        if skipping or size > self.literal_max or self._held + size > self.literal_max + self.max_line:
            # (a command keeps one literal of literal_max and a line's worth more, however
            # many it announces)
            if not skipping:
                self._oversized = size
            self._mode = _LITERAL_SKIP
        else:
            self._held += size
            self._mode = _LITERAL_READ
        return True

    def _line_bound_literal(self, size: int) -> bool:
        """Read a literal that is not a script's (after login), or end the session when the
        command so far (every byte up to this literal's "}", earlier literals' octets and line
        ends included) and its octets would pass max_line. This is Dovecot's managesieved:
        with a line limit of 8192, "NOOP {8180+}" is read and "NOOP {8181+}" (and
        "NOOP {4294967295+}") answered BYE at once, not skipped over 4 GiB.
        Tests: tests/managesieve/test_literal_after_error.py"""
        if self._line_len - 2 + self._inline + size > self.max_line:
            self._fatal("literal too large")
            return False
        self._inline += size
        self._held += size
        self._need = size
        self._mode = _LITERAL_READ
        return True

    def _too_long(self) -> Bad | Fatal:
        if self.long_line_fatal:
            return self._fatal("line too long")
        self._reset()
        self._mode = _SKIP_LONG
        return Bad("line too long")

    def _fatal(self, reason: str) -> Fatal:
        self._mode = _DEAD
        self._buf.clear()
        return Fatal(reason)

    def _tokenize(self, seg: bytes) -> int | None:
        """Append the tokens of one physical line; the size of a literal ending it, or None."""
        i = 0
        if self._after_literal:
            self._after_literal = False
            if not seg:
                return None
            if seg[0] != 0x20:
                raise _Syntax("expected a space after a literal")
            i = 1
        n = len(seg)
        if i >= n:
            raise _Syntax("expected an argument")
        while i < n:
            c = seg[i]
            if c == 0x22:                                  # "quoted"
                value, i = _quoted(seg, i)
                self._tokens.append(String(value))
            elif c == 0x7b:                                # {literal}
                m = _LITERAL.fullmatch(seg, i)
                if m is None:
                    raise _Syntax("bad literal")
                return _literal_size(m.group(1))
            elif c in _ATOM_BYTES:
                j = i
                while j < n and seg[j] in _ATOM_BYTES:
                    j += 1
                self._tokens.append(Atom(seg[i:j].decode("ascii")))
                i = j
            else:
                raise _Syntax("unexpected character")
            if i < n:
                if seg[i] != 0x20:
                    raise _Syntax("expected a space between arguments")
                i += 1
                if i >= n:
                    raise _Syntax("trailing space")
        return None


def _trailing_literal(seg: bytes) -> int | None:
    """The size of a literal announced at the end of a (bad) line, so its octets are skipped too."""
    m = re.search(rb"\{(\d+)\+?\}\Z", seg)
    if m is None:
        return None
    return _literal_size(m.group(1))        # as _tokenize reads it


def _literal_size(digits: bytes) -> int:
    """The size a literal announces: its digits' value (RFC 5804 number = 1*DIGIT, so leading
    zeros count for nothing, as in Dovecot's managesieved), NUMBER_MAX + 1 for any value past
    NUMBER_MAX (too large; int() of thousands of digits would raise, so it is never called on
    more than 10 significant ones). Tests: tests/sieve/test_managesieve_literal_digits.py"""
    significant = digits.lstrip(b"0")
    return int(significant or b"0") if len(significant) <= 10 else NUMBER_MAX + 1


def _quoted(seg: bytes, start: int) -> tuple[bytes, int]:
    """The value of the quoted string at seg[start] and the index after its closing quote."""
    out = bytearray()
    i = start + 1
    n = len(seg)
    while i < n:
        c = seg[i]
        if c == 0x22:
            try:
                out.decode("utf-8")
            except UnicodeDecodeError:
                raise _Syntax("invalid UTF-8 in quoted string") from None
            return bytes(out), i + 1
        if c == 0x5c:                                       # backslash: only \" and \\
            if i + 1 >= n or seg[i + 1] not in b'"\\':
                raise _Syntax("bad escape in quoted string")
            out.append(seg[i + 1])
            i += 2
            continue
        if c == 0:
            raise _Syntax("NUL in quoted string")
        out.append(c)
        i += 1
    raise _Syntax("unterminated quoted string")


# -- server output ---------------------------------------------------------------------

def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value


def quoted(value: str | bytes) -> bytes:
    """A quoted string; ValueError for a value that cannot be one (CR, LF, NUL)."""
    data = _as_bytes(value)
    if any(c in data for c in b"\r\n\0"):
        raise ValueError("CR, LF and NUL cannot be quoted")
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def literal(value: str | bytes) -> bytes:
    """A server literal {n} (literal-s2c)."""
    data = _as_bytes(value)
    return b"{%d}\r\n" % len(data) + data


def string(value: str | bytes) -> bytes:
    """Quoted when short and free of CR, LF and NUL; a literal otherwise."""
    data = _as_bytes(value)
    if len(data) <= QUOTED_MAX and not any(c in data for c in b"\r\n\0"):
        return quoted(data)
    return literal(data)


def response(kind: str, code: str | bytes | None = None, text: str | bytes | None = None) -> bytes:
    """`OK`, `NO` or `BYE`, an optional response code (e.g. "QUOTA/MAXSIZE") and text. The text
    is UTF-8 (RFC 5804 4: a string is UTF-8): bytes that are not, e.g. a script's echoed in a
    compile error, become U+FFFD."""
    if kind not in ("OK", "NO", "BYE"):
        raise ValueError(f"not a response: {kind!r}")
    out = kind.encode("ascii")
    if code:
        out += b" (" + _as_bytes(code) + b")"
    if text is not None:
        out += b" " + string(_as_bytes(text).decode("utf-8", "replace"))
    return out + b"\r\n"


def tag_code(tag: bytes) -> bytes:
    """The TAG response code NOOP echoes (RFC 5804 2.15)."""
    return b"TAG " + string(tag)


def capability_lines(pairs: Iterable[tuple[str, str | None]]) -> bytes:
    """One `"NAME" "value"` (or `"NAME"`) line per capability."""
    out = b""
    for name, value in pairs:
        out += quoted(name) + (b" " + string(value) if value is not None else b"") + b"\r\n"
    return out
