"""An iterative walk over a message's MIME tree (RFC 2045, RFC 2046), bounded in depth and part count.

`walk(message, budget, depth_max)` yields every entity (the message, containers, leaves)
in the order `email.message.Message.walk()` numbers them, with its header fields, content
type and body, without recursion: a million nested multiparts cost a loop, not the stack.
Children of a container deeper than `depth_max` are not walked (the part says so in
`unexamined`); each entity is charged to the budget (`ScanBudget.part()`), which also
checks the clock. It reads leniently, the way mail programs do, and where readers
differ it errs towards seeing more: a delimiter line is any line starting with
`--boundary` (RFC 2046 5.1.1 compares prefixes), parts after the closing delimiter are
read too, a Content-* field counts wherever it is in the header (a line without a colon
does not end it), every occurrence of a field is kept, a multipart whose boundary never
occurs is split at the one its first `--` line shows, and a multipart with a (forbidden)
base64 or quoted-printable encoding is decoded first. More than FIELDS_MAX Content-*
fields in a part, or mime_params.PARAMS_MAX parameters in one, exceed the budget.
`Part.decoded()` undoes the transfer encoding (base64, quoted-printable, uuencode);
`uu_names()` names the uuencoded files inside text.
Talks to: nothing. Tests: tests/milters/test_banned_hostile.py
"""

from __future__ import annotations

import binascii
import dataclasses
import re
from collections.abc import Iterator

from milters import mime_params
from milters.scan_budget import BudgetExceeded, ScanBudget

_BLANK_LINE = re.compile(rb"\n\r?\n")
_UU_BEGIN = re.compile(rb"^begin(-base64)?[ \t]+[0-7]{1,4}[ \t]+([^\r\n]*?)[ \t]*\r?$", re.M)
# the fields a filter needs, wherever they are in the header, with their continuation lines
_FIELD = re.compile(rb"^(content-type|content-disposition|content-transfer-encoding)[ \t]*:"
                    rb"([^\n]*(?:\n[ \t][^\n]*)*)", re.I | re.M)
_FOLD = re.compile(rb"\r?\n|\r$")
FIELDS_MAX = 100            # Content-* fields in one part: mail has one or two of each
_GUESS_BOUNDARY = re.compile(rb"^--([^\s]+?)(?:--)?[ \t]*\r?$", re.M)
_UU_END = re.compile(rb"^end[ \t]*\r?$", re.M)
_UU_CTES = ("x-uuencode", "uuencode", "x-uue", "uue")
_MESSAGE_TYPES = ("message/rfc822", "message/global")


@dataclasses.dataclass
class Part:
    """One MIME entity. `depth` 0 is the message; `index` counts from 1 in walk order."""

    index: int
    depth: int
    headers: list[tuple[str, str]]          # (lower-cased name, unfolded value) of each Content-* field
    content_type: str                       # of the first Content-Type field, or the default
    container: bool                         # multipart with a boundary, or an attached message
    unexamined: str | None                  # why its children were not walked
    _buf: bytes
    _start: int                             # of the body in _buf
    _end: int

    def values(self, name: str) -> list[str]:
        """Every value of header field `name` (lower case)."""
        return [v for n, v in self.headers if n == name]

    def params(self, field: str) -> list[tuple[str, str]]:
        """The parameters of every occurrence of `field`, in order."""
        out: list[tuple[str, str]] = []
        for value in self.values(field):
            out += _parse(value)[1]
        return out

    def content_types(self) -> list[str]:
        """The main value of every Content-Type field (a filter must not pick just one)."""
        return [_parse(v)[0] for v in self.values("content-type")]

    @property
    def transfer_encoding(self) -> str:
        found = self.values("content-transfer-encoding")
        return mime_params.mechanism(found[0]) if found else ""

    def body(self) -> bytes:
        return self._buf[self._start:self._end]

    def decoded(self) -> bytes:
        """The body with its Content-Transfer-Encoding undone (leniently; never raises)."""
        return decode_body(self.body(), self.transfer_encoding)


def decode_body(raw: bytes, cte: str) -> bytes:
    if cte == "base64":
        return _base64(raw)
    if cte == "quoted-printable":
        return binascii.a2b_qp(raw)
    if cte in _UU_CTES:
        for _name, data in uu_blocks(raw):
            return data
        return b""
    return raw


def _base64(raw: bytes) -> bytes:
    try:
        return binascii.a2b_base64(raw)
    except binascii.Error:
        data = re.sub(rb"[^A-Za-z0-9+/]", b"", raw)
        if len(data) % 4 == 1:
            data = data[:-1]
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))


def uu_blocks(text: bytes) -> Iterator[tuple[str, bytes]]:
    """(file name, content) of each `begin MODE NAME` ... `end` block in `text`."""
    for m in _UU_BEGIN.finditer(text):
        name = m.group(2).decode("utf-8", "replace")
        if m.group(1):                     # begin-base64 ... ====
            stop = text.find(b"\n====", m.end())
            yield name, _base64(text[m.end():stop if stop >= 0 else len(text)])
            continue
        stop_m = _UU_END.search(text, m.end())
        out = bytearray()
        for line in text[m.end():stop_m.start() if stop_m else len(text)].split(b"\n"):
            line = line.rstrip(b"\r")
            if not line:
                continue
            try:
                out += binascii.a2b_uu(line)
            except binascii.Error:
                # some encoders pad lines; decode as many characters as the length byte says
                try:
                    out += binascii.a2b_uu(line[:(((line[0] - 32) & 63) * 4 + 5) // 3])
                except binascii.Error:
                    continue
        yield name, bytes(out)


def uu_names(text: bytes) -> Iterator[str]:
    """The file names of the uuencoded blocks in `text` (mail programs show them as attachments)."""
    for m in _UU_BEGIN.finditer(text):
        yield m.group(2).decode("utf-8", "replace")


def walk(message: bytes, budget: ScanBudget, depth_max: int) -> Iterator[Part]:
    """Every entity of `message`, depth first, parents before children (raises BudgetExceeded)."""
    stack: list[tuple[bytes, int, int, int, str]] = [(message, 0, len(message), 0, "text/plain")]
    index = 0
    while stack:
        buf, start, end, depth, default = stack.pop()
        budget.part()
        index += 1
        headers, body = _headers(buf, start, end)
        ctype, params = _content_type(headers, default)
        children: list[tuple[bytes, int, int, int, str]] = []
        container = False
        if ctype.startswith("multipart/"):
            cte = next((mime_params.mechanism(v) for n, v in headers if n == "content-transfer-encoding"), "")
            inner, i_start, i_end = buf, body, end
            if cte in ("base64", "quoted-printable"):       # forbidden on multiparts, decoded by some readers
                inner = decode_body(buf[body:end], cte)
                i_start, i_end = 0, len(inner)
            ranges = _multipart(inner, i_start, i_end, params, budget)
            if ranges:
                container = True
                child_default = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
                children = [(inner, s, e, depth + 1, child_default) for s, e in ranges]
        elif ctype in _MESSAGE_TYPES:
            container = True
            cte = next((mime_params.mechanism(v) for n, v in headers if n == "content-transfer-encoding"), "")
            if cte in ("base64", "quoted-printable") + _UU_CTES:
                inner = decode_body(buf[body:end], cte)
                children = [(inner, 0, len(inner), depth + 1, "text/plain")]
            else:
                children = [(buf, body, end, depth + 1, "text/plain")]
        unexamined = None
        if children and depth >= depth_max:
            unexamined = f"MIME nesting deeper than {depth_max}"
            children = []
        yield Part(index, depth, headers, ctype, container, unexamined, buf, body, end)
        stack.extend(reversed(children))


def _headers(buf: bytes, start: int, end: int) -> tuple[list[tuple[str, str]], int]:
    """The Content-* fields of the entity at buf[start:end] (unfolded) and where its body starts."""
    if buf.startswith(b"\n", start, end):
        return [], start + 1
    if buf.startswith(b"\r\n", start, end):
        return [], start + 2
    m = _BLANK_LINE.search(buf, start, end)
    head_end, body = (m.start() + 1, m.end()) if m else (end, end)
    fields: list[tuple[str, str]] = []
    for field in _FIELD.finditer(buf, start, head_end):
        if len(fields) >= FIELDS_MAX:
            raise BudgetExceeded(f"more than {FIELDS_MAX} Content-* fields in one MIME part")
        value = _FOLD.sub(b"", field.group(2)).decode("utf-8", "replace").strip()
        fields.append((field.group(1).decode("ascii").lower(), value))
    return fields, body


def _parse(value: str) -> tuple[str, list[tuple[str, str]]]:
    try:
        return mime_params.parse(value)
    except mime_params.TooManyParameters as e:
        raise BudgetExceeded(str(e)) from None


def _content_type(headers: list[tuple[str, str]], default: str) -> tuple[str, list[tuple[str, str]]]:
    for name, value in headers:
        if name == "content-type":
            main, params = _parse(value)
            if main.count("/") != 1 or " " in main:
                return "text/plain", params
            return main, params
    return default, []


def _multipart(buf: bytes, start: int, end: int, params: list[tuple[str, str]],
               budget: ScanBudget) -> list[tuple[int, int]]:
    """The parts of a multipart body; when its boundary never occurs, the one its first
    `--` line suggests (some readers guess so: a wrong boundary must not hide the parts)."""
    declared = next((v for n, v in params if n == "boundary" and v), None)
    ranges = _split(buf, start, end, declared, budget) if declared is not None else []
    if not ranges:
        guess = _GUESS_BOUNDARY.search(buf, start, end)
        if guess is not None and guess.group(1).decode("utf-8", "surrogateescape") != declared:
            ranges = _split(buf, start, end, guess.group(1).decode("utf-8", "surrogateescape"), budget)
    return ranges


def _split(buf: bytes, start: int, end: int, boundary: str, budget: ScanBudget) -> list[tuple[int, int]]:
    """The body parts of a multipart body in buf[start:end] (ranges without the delimiters)."""
    needle = b"--" + boundary.encode("utf-8", "surrogateescape")
    room = budget.parts_max - budget.parts
    parts: list[tuple[int, int]] = []
    current: int | None = None
    at = buf.find(needle, start, end)
    while at >= 0:
        if at == start or buf[at - 1:at] == b"\n":
            if current is not None:
                stop = at
                if stop > current and buf[stop - 1:stop] == b"\n":
                    stop -= 1
                if stop > current and buf[stop - 1:stop] == b"\r":
                    stop -= 1
                parts.append((current, stop))
                if len(parts) > room:
                    raise BudgetExceeded(f"more than {budget.parts_max} MIME parts")
                if len(parts) % 1024 == 0:
                    budget.check_time()
            if buf.startswith(b"--", at + len(needle), end):
                current = None                 # the close delimiter; its epilogue is not a part
            else:
                newline = buf.find(b"\n", at + len(needle), end)
                current = newline + 1 if newline >= 0 else end
        at = buf.find(needle, at + len(needle), end)
    if current is not None:
        parts.append((current, end))
    return parts
