"""Postfix socketmap protocol codec (socketmap_table(5)), sans-I/O: netstrings in, requests out.

Every request and every reply is one netstring (`LEN:DATA,`, LEN the decimal length of
DATA with no extra leading zero, https://cr.yp.to/proto/netstrings.txt). A request is
`NAME SP KEY` (the key may hold spaces); a reply is `OK DATA`, `NOTFOUND `, `TEMP REASON`,
`TIMEOUT REASON` or `PERM REASON`. Postfix sends one request and waits for its reply,
but the decoder also takes several requests in one read (pipelined).

`SocketmapRequestDecoder.feed(bytes)` gives `SocketmapRequest` values and `BadRequest` values, in order. A
netstring whose framing is wrong (a length that is not digits, a leading zero, a missing
comma, a length over `length_max`) is a fatal BadRequest: the stream cannot be read on, so
the adapter answers PERM and closes, and the decoder ignores everything after it. A
well-framed request without a space is a BadRequest that is not fatal (PERM, and the
connection goes on). Bytes are decoded as UTF-8 with surrogateescape, so a raw 8-bit key
reaches the lookup (which finds nothing for it) unchanged.

`SocketmapAnswer` is a reply value; `encode_reply` makes its netstring. `NetstringDecoder` and
`parse_reply` also serve the client side (tests, bench).
Talks to: nothing. Tests: tests/socketmap/test_protocol.py
"""

from __future__ import annotations

import dataclasses

STATUSES = ("OK", "NOTFOUND", "TEMP", "TIMEOUT", "PERM")


@dataclasses.dataclass(frozen=True)
class SocketmapRequest:
    """One lookup: the map name and the key, as Postfix sent them."""

    name: str
    key: str


@dataclasses.dataclass(frozen=True)
class BadRequest:
    """Input that is no request; `fatal`: the framing is broken and the connection must close."""

    reason: str
    fatal: bool


@dataclasses.dataclass(frozen=True)
class SocketmapAnswer:
    """One reply: a status of STATUSES and its data (OK) or reason (the others)."""

    status: str
    text: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"not a socketmap status: {self.status!r}")


NOTFOUND = SocketmapAnswer("NOTFOUND")


def ok(data: str) -> SocketmapAnswer:
    return SocketmapAnswer("OK", data)


def temp(reason: str) -> SocketmapAnswer:
    return SocketmapAnswer("TEMP", reason)


def timeout(reason: str) -> SocketmapAnswer:
    return SocketmapAnswer("TIMEOUT", reason)


def perm(reason: str) -> SocketmapAnswer:
    return SocketmapAnswer("PERM", reason)


def netstring(data: bytes) -> bytes:
    return b"%d:%s," % (len(data), data)


def _utf8(text: str) -> bytes:
    """UTF-8, raw bytes kept (surrogateescape); a lone surrogate no decoder made becomes "?"."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def printable(text: str) -> str:
    """A reason fit for Postfix's log: control characters (C0, DEL, C1, U+2028 and U+2029, which
    some log readers take for line ends) become '?'."""
    return "".join(c if " " <= c and not "\x7f" <= c <= "\x9f" and c not in "\u2028\u2029" else "?"
                   for c in text)


def encode_reply(answer: SocketmapAnswer, length_max: int | None = None) -> bytes:
    """The netstring of a reply (a reason loses its control characters, and is cut to make the
    reply at most `length_max` bytes, Postfix's socketmap_max_reply_size; OK data is sent as it
    is, the maps check it)."""
    text = answer.text if answer.status == "OK" else printable(answer.text)
    data = _utf8(f"{answer.status} {text}")
    if length_max is not None and len(data) > length_max and answer.status != "OK":
        data = data[:length_max].decode("utf-8", "ignore").encode("utf-8")     # (no cut character)
    return netstring(data)


def encode_request(name: str, key: str) -> bytes:
    return netstring(_utf8(f"{name} {key}"))


class NetstringDecoder:
    """Netstrings from a byte stream. Broken framing sets `error` (a reason) and `broken`;
    feed() still returns the netstrings framed before the break, then nothing more."""

    def __init__(self, length_max: int):
        self.length_max = length_max
        self._digits_max = len(str(length_max))
        self._buf = bytearray()
        self.error: str | None = None

    @property
    def broken(self) -> bool:
        return self.error is not None

    @property
    def pending(self) -> bool:
        """Part of a netstring is buffered."""
        return bool(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        if self.error is not None:
            return []
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        while pos < len(buf):
            colon = buf.find(b":", pos, pos + self._digits_max + 1)
            digits = buf[pos:colon] if colon >= 0 else buf[pos:pos + self._digits_max + 1]
            self.error = self._bad_length(digits, complete=colon >= 0)
            if self.error is not None:
                self._buf = bytearray()
                return out
            if colon < 0:
                break                # the length is still arriving
            length = int(digits)
            end = colon + 1 + length
            if end >= len(buf):
                break                # the data or its comma is still arriving
            if buf[end] != 0x2C:
                self.error = f"netstring of length {length} not ended by a comma"
                self._buf = bytearray()
                return out
            out.append(bytes(buf[colon + 1:end]))
            pos = end + 1
        del buf[:pos]
        return out

    def _bad_length(self, digits: bytes | bytearray, complete: bool) -> str | None:
        """Why `digits` cannot start a netstring (None: they can, so far). The reason is that of
        the shortest prefix showing a fault, so it does not depend on how the reads cut the length."""
        for i, b in enumerate(digits):
            if not 0x30 <= b <= 0x39:
                return f"netstring length holds {bytes([b])!r}: not decimal digits"
            if i == 1 and digits[0] == 0x30:
                return "netstring length with a leading zero"
            if i == self._digits_max:
                return f"netstring length field longer than the limit of {self.length_max} bytes allows"
        if complete and not digits:
            return "netstring without a length"
        if complete and int(digits) > self.length_max:
            return f"netstring of {int(digits)} bytes, over the limit of {self.length_max}"
        return None


class SocketmapRequestDecoder:
    """Socketmap requests from a byte stream (see the module docstring)."""

    def __init__(self, length_max: int):
        self._netstrings = NetstringDecoder(length_max)

    @property
    def pending(self) -> bool:
        return self._netstrings.pending

    @property
    def broken(self) -> bool:
        return self._netstrings.broken

    def feed(self, data: bytes) -> list[SocketmapRequest | BadRequest]:
        if self._netstrings.broken:
            return []
        out: list[SocketmapRequest | BadRequest] = [_request(s) for s in self._netstrings.feed(data)]
        if self._netstrings.error is not None:
            out.append(BadRequest(self._netstrings.error, fatal=True))
        return out


def _request(data: bytes) -> SocketmapRequest | BadRequest:
    text = data.decode("utf-8", "surrogateescape")
    name, sep, key = text.partition(" ")
    if not sep or not name:
        return BadRequest("request is not NAME SPACE KEY", fatal=False)
    return SocketmapRequest(name, key)


def parse_reply(data: bytes) -> SocketmapAnswer:
    """A reply netstring's content as a SocketmapAnswer (client side); ValueError if it is none."""
    text = data.decode("utf-8", "surrogateescape")
    status, _, rest = text.partition(" ")
    return SocketmapAnswer(status, rest)
