"""RESP2, the Redis wire protocol, sans-I/O: commands to bytes, bytes to replies.

`encode_command("GET", "k")` gives the bytes of one command (an array of bulk strings).
`ReplyDecoder().feed(data)` takes whatever arrived (any split, any number of replies) and
returns the replies it completed, in order: simple strings and bulk strings as str (UTF-8,
surrogateescape, so no byte is lost), integers as int, nil as None, arrays as lists (nested),
and an error reply as a `RespError` value (returned, not raised: in a pipeline one command's
error must not hide the replies after it).

The server is not trusted: a bulk string, an array, the nesting depth and the bytes held for
one unfinished reply are bounded; past a bound, or on anything that is not RESP2, `feed`
raises RespProtocolError and the decoder stays broken (the caller drops the connection, since
nothing after it can be matched to a command). Parsing is incremental: an array whose
elements arrive over many reads is not parsed again from its start on every read.
Talks to: nothing (bytes in, values out); owlery/state/redis_reactor.py carries the bytes.
Tests: tests/state/test_resp.py
"""

from __future__ import annotations

import dataclasses
from typing import Any

# Bounds for a hostile or broken server. Greylist values are tens of bytes and a reply is one
# element per key or write, so these leave room for any honest use of the state store.
MAX_BULK = 16 * 1024 * 1024          # one bulk string
MAX_ARRAY = 1024 * 1024              # elements of one array
MAX_DEPTH = 8                        # arrays inside arrays (our scripts return depth 1 or 2)
MAX_PENDING = 64 * 1024 * 1024       # bytes held for one reply not yet complete
MAX_LINE = 64 * 1024                 # a simple string, an error, a header line

_CRLF = b"\r\n"


class RespProtocolError(Exception):
    """The byte stream is not RESP2, or a reply exceeds a bound: drop the connection."""


@dataclasses.dataclass(frozen=True)
class RespError:
    """An error reply ("-ERR ...", "-NOSCRIPT ..."), as a value in the list of replies."""

    message: str

    @property
    def code(self) -> str:
        """The first word, by Redis's convention the error's kind: "NOSCRIPT", "WRONGPASS"."""
        return self.message.split(" ", 1)[0]


def _encode_mixed(args: tuple) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            b = a.encode("utf-8", "surrogateescape")
        elif isinstance(a, (bytes, bytearray, memoryview)):
            b = bytes(a)
        else:   # an int or a float would go out as whatever str() gives: the caller formats numbers
            raise TypeError(f"a Redis command argument is str or bytes, not {type(a).__name__}")
        parts.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(parts)


def encode_command(*args: str | bytes) -> bytes:
    """One command as RESP2: an array of bulk strings.

    All-str commands (every command the state store sends) are built as one str and
    encoded once: a write_many batch has hundreds of arguments, and this is ~3x faster
    than encoding each (the lengths are of the UTF-8 bytes; ASCII needs no encoding to
    know it)."""
    if not args:
        raise ValueError("a Redis command needs at least its name")
    parts = [f"*{len(args)}"]
    for a in args:
        if type(a) is not str:
            return _encode_mixed(args)
        parts.append(f"${len(a) if a.isascii() else len(a.encode('utf-8', 'surrogateescape'))}")
        parts.append(a)
    parts.append("")
    return "\r\n".join(parts).encode("utf-8", "surrogateescape")


def _length(line: bytes | bytearray) -> int:
    """A header's length: digits, or -1 (nil). int() alone would take " 5", "+5" or "1_0"."""
    if line.isdigit() and len(line) <= 19:
        return int(line)
    if line == b"-1":
        return -1
    raise RespProtocolError(f"bad length {bytes(line[:40])!r}")


class ReplyDecoder:
    """Incremental RESP2 reply parser; `feed` returns the replies completed so far."""

    def __init__(self, *, max_bulk: int = MAX_BULK, max_array: int = MAX_ARRAY, max_depth: int = MAX_DEPTH,
                 max_pending: int = MAX_PENDING, max_line: int = MAX_LINE):
        self.max_bulk = max_bulk
        self.max_array = max_array
        self.max_depth = max_depth
        self.max_pending = max_pending
        self.max_line = max_line
        self._buf: bytearray = bytearray()   # bytes received and not consumed yet
        # Arrays being filled, outermost first: [elements still expected, the list so far].
        self._stack: list[list[Any]] = []
        self._held = 0            # bytes consumed into the unfinished reply (the stack)
        self._broken: RespProtocolError | None = None

    def feed(self, data: bytes) -> list[Any]:
        if self._broken is not None:
            raise self._broken
        if self._buf:
            self._buf += data
            buf: bytes | bytearray = self._buf
        else:
            buf = data           # the usual case: whole replies in one read, parsed without a copy
        try:
            out, pos, start = self._parse(buf)
        except RespProtocolError as e:
            self._broken = e
            raise
        rest = len(buf) - pos
        if self._stack:
            self._held += pos - start     # what this read added to the unfinished reply
        if rest:
            if buf is self._buf:
                del self._buf[:pos]
            else:
                self._buf = bytearray(buf[pos:])
        else:
            self._buf = bytearray()
        if self._held + rest > self.max_pending:
            self._broken = RespProtocolError(f"a reply over {self.max_pending} bytes")
            raise self._broken
        return out

    def _parse(self, buf: bytes | bytearray) -> tuple[list[Any], int, int]:
        """Every reply complete in buf: (replies, bytes consumed, where the unfinished reply
        starts). Arrays not complete stay open on the stack for the next read."""
        out: list[Any] = []
        stack = self._stack
        pos, end, start = 0, len(buf), 0
        while pos < end:
            limit = pos + self.max_line + 3            # type byte, at most max_line, CRLF
            eol = buf.find(_CRLF, pos, limit)
            if eol < 0:
                if end >= limit:
                    raise RespProtocolError(f"a line over {self.max_line} bytes")
                break                                  # the line is not all here yet
            kind = buf[pos]
            line = buf[pos + 1:eol]
            if kind == 0x24:                           # $ bulk string
                n = _length(line)
                if n < 0:
                    value: Any = None
                    pos = eol + 2
                else:
                    if n > self.max_bulk:
                        raise RespProtocolError(f"a bulk string of {n} bytes (at most {self.max_bulk})")
                    stop = eol + 2 + n
                    if stop + 2 > end:
                        break      # not all here: its header is read again next time (a few bytes)
                    if buf[stop:stop + 2] != _CRLF:
                        raise RespProtocolError("a bulk string not followed by CRLF")
                    value = buf[eol + 2:stop].decode("utf-8", "surrogateescape")
                    pos = stop + 2
            elif kind == 0x2a:                         # * array
                n = _length(line)
                pos = eol + 2
                if n > 0:
                    if n > self.max_array:
                        raise RespProtocolError(f"an array of {n} elements (at most {self.max_array})")
                    if len(stack) >= self.max_depth:
                        raise RespProtocolError(f"arrays nested deeper than {self.max_depth}")
                    stack.append([n, []])
                    continue
                value = None if n < 0 else []
            elif kind == 0x2b:                         # + simple string
                value = line.decode("utf-8", "surrogateescape")
                pos = eol + 2
            elif kind == 0x2d:                         # - error
                value = RespError(line.decode("utf-8", "surrogateescape"))
                pos = eol + 2
            elif kind == 0x3a:                         # : integer
                digits = line[1:] if line[:1] == b"-" else line
                if not digits.isdigit() or len(digits) > 19:
                    raise RespProtocolError(f"bad integer {bytes(line[:40])!r}")
                value = int(line)
                pos = eol + 2
            else:
                raise RespProtocolError(f"unknown reply type {bytes(buf[pos:pos + 1])!r}")
            # A value is complete: it fills the innermost open array, which may close others.
            while stack:
                top = stack[-1]
                top[1].append(value)
                top[0] -= 1
                if top[0]:
                    break
                stack.pop()
                value = top[1]
            else:
                out.append(value)
                self._held, start = 0, pos
        return out, pos, start
