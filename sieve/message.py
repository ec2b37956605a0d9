"""The message as Sieve tests see it: header fields (unfolded, RFC 2047 decoded), size,
body, MIME parts (bounded), and header edits (editheader) re-serialised to bytes.

Parses raw bytes only; never fails on malformed mail (best effort, bounded), and decodes
headers and bodies as Dovecot does (what Pigeonhole's tests see). Used by sieve.interpreter
and the extensions. Tests: conformance (test-header, body, mime, editheader),
tests/sieve/test_fuzz.py, tests/sieve/test_decoding_fixes.py and the differential
tests/sieve/test_decoding_differential.py; MIME structure (parse_mime): the differential
tests/sieve/test_mime_differential.py, with its hand-written cases and hostile-input bounds;
parameter values (parse_content_type_all): tests/sieve/test_pigeonhole_probes_s18.py.
"""

from __future__ import annotations

import binascii
import codecs

from owlery.charsets import codec_name
from owlery.lazyre import lazy

# `re` is imported where a pattern is built at run time (MIME boundaries), not here: with enum
# and functools it costs an in-process delivery that parses no MIME ~20 M instructions.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

# the media type of a part whose Content-Type names none: no type or subtype a script can name
UNKNOWN_TYPE = "/"
# the types whose text the body test's :text and extracttext read as plain text (sieve.html_text)
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# bounds the plain texts one message keeps converted (characters)
_HTML_CACHE_CHARS = 16 << 20
# the fields of one header the tests read: sieve_max_header_fields' default (sieve.limits),
# for a Message made without settings
MAX_HEADER_FIELDS = 10_000

# An encoded word (RFC 2047 2), read as Dovecot reads one: the text runs to the first "?",
# which must start the closing "?=", and may hold spaces and raw 8-bit octets (sloppy
# senders' words, which Dovecot and mail readers decode); the white space after it is dropped
# when another word follows (RFC 2047 6.2). Each part is a run of non-"?" characters (possessive:
# a word that does not close costs one scan to the next "?"), so a pass is linear.
# The words, their Q escapes and base64 are read with str and bytes methods, not patterns:
# most messages have an encoded word somewhere a script looks, and `re` (with enum and
# functools) would cost each in-process LDA run ~20 M instructions. tests/sieve/test_message_scan.py
# holds each to the pattern it stands for:
#   a word run  =\?([^?]++)\?([qQbB])\?([^?]*+)\?=(?:[ \t\r\n]++(?=<another word>))?   (finditer)
#   Q escapes   =([0-9A-Fa-f]{2})|_                                               (sub)
_HEX_DIGITS = frozenset(b"0123456789ABCDEFabcdef")
# octets a charset could not read are lone surrogates (surrogateescape) until _replace_bad
_BAD_RUN = lazy("\ufffd?[\ud800-\udfff]+")
# past this length _replace_bad scans for them rather than trying to encode the text
_ENCODE_CHECK_CHARS = 1 << 16
# labels Dovecot reads with its own UTF-8 reader, not iconv: 8-bit text labelled US-ASCII is
# UTF-8 in practice
_UTF8_LABELS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
# base64's alphabet as b"A" and every other octet as b"!", to find where the data stops in C
_B64_CLASS = bytes(0x41 if chr(o).isascii() and (chr(o).isalnum() or chr(o) in "+/") else 0x21
                   for o in range(256))
# Quoted-printable as Dovecot decodes it (learnt black-box from sieve-test's extracttext and
# body tests; cases in tests/sieve/test_pigeonhole_parity_s9.py): a hard line break (LF or
# CRLF) becomes CRLF, the raw spaces and tabs before it dropped (RFC 2045 6.7 rule 3); "=",
# spaces or tabs, then a line break is a soft one and vanishes; at the end of the body a lone
# CR, trailing spaces and tabs, "=" with spaces or tabs and a CR, or "=" with one hex digit
# vanish (the decoder still waited for more); any other "=" not before two hex digits is a
# literal "=" ("=\r" before no LF among them). One left-to-right pass: a run of white space is
# tried as a line's end only from its first character (the lookbehind after it), so it is
# linear; every branch starts with one of "= \t\r\n", which lets the engine skip text fast.
_QP_LINES = lazy(
    rb"(?P<soft>=[ \t]*+(?:\r?\n|\r?\Z)|=[0-9A-Fa-f]?\Z)"
    rb"|(?P<bad>=(?![0-9A-Fa-f]{2}))"
    rb"|[ \t](?<![ \t][ \t])[ \t]*+(?:(?P<hard>\r?\n)|\r?\Z)"
    rb"|(?P<newline>\r?\n)|\r\Z"
)
_QP_REPLACE = {"soft": b"", "bad": b"=3D", "hard": b"\r\n", "newline": b"\r\n"}


def _qp_token(m: re.Match) -> bytes:
    return _QP_REPLACE.get(m.lastgroup, b"")


def decode_qp(body: bytes) -> bytes:
    """Quoted-printable `body` decoded as Dovecot does (see _QP_LINES): every "=" left after
    the first pass starts a valid escape, which a2b_qp decodes leaving the rest as it is."""
    return binascii.a2b_qp(_QP_LINES.sub(_qp_token, body))


def bytes_to_text(b: bytes) -> str:
    """Header/body bytes to str: UTF-8 when valid, else Latin-1 (never fails)."""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def raw_text(b: bytes) -> str:
    """Octets as the body test's :raw transform compares them: UTF-8, each octet that is not
    part of valid UTF-8 a lone surrogate, which no key (a string of the script) can match, as
    Pigeonhole matches the raw octets (a Latin-1 0xE9 must not match "é")."""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("utf-8", "surrogateescape")


def utf8_text(b: bytes) -> str:
    """Octets read as UTF-8 the way Dovecot reads text that names no charset (a multipart's
    prologue and epilogue): each run of octets that are not UTF-8 one U+FFFD."""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return _replace_bad(b.decode("utf-8", "surrogateescape"))


def _replace_bad(text: str) -> str:
    """Each run of octets a charset could not read (lone surrogates) made one U+FFFD, and none
    right after a U+FFFD: Dovecot adds a replacement character only where its output does not
    already end with one (so "\\xff\\xfe", or two bad encoded words in a row, read as one)."""
    if text.isascii():
        return text
    if len(text) > _ENCODE_CHECK_CHARS:
        # the check below allocates up to 3 octets a character before it fails: a long value
        # (a huge folded field) is scanned instead (a text without a bad octet is given back)
        return _BAD_RUN.sub("\ufffd", text)
    try:
        text.encode("utf-8")        # no lone surrogate: nothing to replace (checked in C)
        return text
    except UnicodeEncodeError:
        return _BAD_RUN.sub("\ufffd", text)


def decode_base64(data: bytes) -> bytes:
    """Base64 as Dovecot decodes it (sieve-test's body tests and encoded words): line breaks,
    spaces and tabs skipped; decoding stops at the first "=" or other octet outside the
    alphabet, and a last group of two or three characters still gives its octets (missing
    padding); a lone last character gives none. Linear; never fails."""
    data = data.translate(None, b" \t\r\n")
    n = data.translate(_B64_CLASS).find(b"!")
    if n < 0:
        n = len(data)
    full = n - n % 4
    out = binascii.a2b_base64(data[:full]) if full else b""
    if n - full >= 2:
        out += binascii.a2b_base64(data[full:n] + b"=" * (4 - (n - full)))
    return out


def _decode_marked(raw: bytes, charset: str, *, final: bool) -> tuple[str, bool]:
    """`raw` in the sender-chosen `charset` as str, each octet it cannot read a lone surrogate
    (for _replace_bad), and whether there were any such octets. An unknown label, one that names no text encoding (base64, zlib,
    rot13...) or a codec that cannot replace bad octets (idna, punycode) reads as UTF-8, as
    Dovecot reads a charset iconv does not know. Unless `final`, an incomplete character at
    the end is dropped (Dovecot's charset conversion waits for its missing octets)."""
    label = charset.strip().lower()
    name = "utf_8" if label in _UTF8_LABELS else codec_name(charset)
    try:
        if name is None or not codecs.lookup(name)._is_text_encoding:
            name = "utf_8"
        try:
            return raw.decode(name), False
        except UnicodeDecodeError:
            if name == "utf_8" and not final:
                # only the character cut off here is waited for: an incomplete one before it
                # met a lead octet, so it is no character (U+FFFD), as Dovecot reads
                # "\xe2\x82\xe9" at the end (tests/sieve/test_differential_findings_s21.py)
                raw = raw[:_utf8_pending(raw)]
                final = True
            return codecs.getincrementaldecoder(name)("surrogateescape").decode(raw, final=final), True
    except (LookupError, ValueError, UnicodeError, TypeError):
        if not final:
            raw = raw[:_utf8_pending(raw)]
        return raw.decode("utf-8", "surrogateescape"), True


def _utf8_pending(raw: bytes) -> int:
    """Where the UTF-8 character Dovecot still waits for at the end of `raw` starts (len(raw)
    when none): the first of the last five octets that is a lead octet announcing more octets
    than are left, whatever they are ("\\xe9e" at the end is dropped whole, not read as U+FFFD
    and "e"): Dovecot checks a character's length before its continuation octets, and takes
    the old 5- and 6-octet forms' leads (0xF8-0xFD) for such lengths too (0xC0, 0xC1 for none)."""
    n = len(raw)
    for i in range(max(0, n - 5), n):
        need = _UTF8_NEED[raw[i]]
        if need and i + need > n:
            return i
    return n


# the length a lead octet announces, as Dovecot reads it (0: not a lead it waits on)
_UTF8_NEED = bytes(2 if 0xC2 <= b < 0xE0 else 3 if 0xE0 <= b < 0xF0 else 4 if 0xF0 <= b < 0xF8 else
                   5 if 0xF8 <= b < 0xFC else 6 if 0xFC <= b < 0xFE else 0 for b in range(256))


def decode_charset(raw: bytes, charset: str) -> str:
    """Bytes labelled with a sender-chosen charset to str, never failing, as Dovecot converts
    a MIME part's text: octets the charset cannot read become U+FFFD (one per run), an
    incomplete character at the end is dropped, and an unknown label (or one naming no text
    encoding: base64, zlib, idna...) reads as UTF-8."""
    text, marked = _decode_marked(raw, charset, final=False)
    # (only text with unreadable octets is scanned: the scan costs ~15 ns a character)
    return _replace_bad(text) if marked else text


def _q_decoded(data: bytes) -> bytes:
    """An encoded word's Q text: "=XY" (two hex digits) is that octet, "_" a space, any other
    "=" and every other octet stands as it is."""
    if b"=" not in data:
        return data.replace(b"_", b" ")
    pieces = data.split(b"=")
    out = [pieces[0].replace(b"_", b" ")]
    for piece in pieces[1:]:
        if len(piece) >= 2 and piece[0] in _HEX_DIGITS and piece[1] in _HEX_DIGITS:
            out.append(bytes.fromhex(piece[:2].decode("ascii")) + piece[2:].replace(b"_", b" "))
        else:
            out.append(b"=" + piece.replace(b"_", b" "))
    return b"".join(out)


def _word_at(value: str, start: int) -> tuple[int, str, str, str] | None:
    """The encoded word at `start` ("=?" there): (its end, charset, Q or B, text), or None.
    Each part runs to the next "?" (so a word that does not close costs one scan)."""
    q1 = value.find("?", start + 2)
    if q1 <= start + 2 or value[q1 + 1:q1 + 2] not in ("q", "Q", "b", "B") or value[q1 + 2:q1 + 3] != "?":
        return None
    q3 = value.find("?", q1 + 3)
    if q3 < 0 or value[q3 + 1:q3 + 2] != "=":
        return None
    return q3 + 2, value[start + 2:q1], value[q1 + 1], value[q1 + 3:q3]


def _word_runs(value: str):
    """(start, end, charset, Q or B, text) of each encoded word, left to right; `end` takes
    in the white space after a word when another word follows it (RFC 2047 6.2)."""
    at = value.find("=?")
    while at >= 0:
        word = _word_at(value, at)
        if word is None:
            at = value.find("=?", at + 1)
            continue
        end, charset, enc, text = word
        gap = end
        while gap < len(value) and value[gap] in " \t\r\n":
            gap += 1
        if gap > end and value.startswith("=?", gap) and _word_at(value, gap) is not None:
            end = gap
        yield at, end, charset, enc, text
        at = value.find("=?", end)


def _word_text(charset: str, enc: str, text: str) -> str:
    """One encoded word's text decoded (surrogates marking unreadable octets). Q: "=XY" is an
    octet, "_" a space, any other "=" and every other octet (raw 8-bit ones included) stands as
    it is; B: decode_base64. Dovecot's own UTF-8 reader (UTF-8 and unknown labels) replaces an
    incomplete last character; iconv (every other charset) drops it."""
    data = text.encode("utf-8", "surrogateescape")
    if enc in "bB":
        raw = decode_base64(data)
    else:
        raw = _q_decoded(data)
    # RFC 2231 5: a language after "*" in the charset (=?utf-8*en?q?...?=)
    cs = charset.split("*", 1)[0]
    label = cs.strip().lower()
    name = "utf_8" if label in _UTF8_LABELS else codec_name(cs)
    return _decode_marked(raw, cs, final=name in (None, "utf_8"))[0]


def decode_2047(value: str) -> str:
    """Decode RFC 2047 encoded words as Dovecot does (see _word_runs, _word_text); white space
    between adjacent ones is dropped. Raw octets that are not UTF-8 (surrogates in `value`)
    and unreadable encoded octets become U+FFFD, one a run (_replace_bad), and a NUL a space."""
    if "=?" in value:
        out, pos = [], 0
        for start, end, charset, enc, text in _word_runs(value):
            out.append(value[pos:start])
            out.append(_word_text(charset, enc, text))
            pos = end
        if pos:
            out.append(value[pos:])
            value = "".join(out)
    return _replace_bad(value).replace("\0", " ")


def unfold(value: str) -> str:
    """`value` with each line break (CRLF or LF) that a space or tab follows taken out."""
    if "\n" not in value:
        return value
    lf = value.count("\n")
    if value.count("\r\n") == lf and value.count("\n ") + value.count("\n\t") == lf:
        # every break a CRLF fold (as every parsed field's value): one pass in C, without a
        # string per line (a field folded over many lines cost ~3 times its size)
        return value.replace("\r\n", "")
    lines = value.split("\n")
    out: list[str] = []
    for line, following in zip(lines, lines[1:]):
        if following[:1] in (" ", "\t"):
            out.append(line[:-1] if line.endswith("\r") else line)
        else:
            out += (line, "\n")
    out.append(lines[-1])
    return "".join(out)


def _field_values(headers: list[list[str]], name: str):
    """Unfolded values of every field named `name` (case-insensitive), as parsed: octets that
    are not UTF-8 still lone surrogates, so that an encoded word holding raw 8-bit octets
    decodes them as octets (decode_2047). A generator: a caller that decodes each value keeps
    one unfolded copy at a time, not a list of them beside its own (a header of many fields of
    one name cost a copy of all of them per step; tests/sieve/test_header_memory_s20.py)."""
    n = name.lower()
    return (unfold(v).strip(" \t") for k, v in headers if k.lower() == n)


class FullMessage(bytes):
    """A snapshot of a whole message (header and body) taken after replace/enclose (RFC 5703)
    changed the body; an action's `head` holding one is the message itself, not a header to
    put before the original body (sieve.api.Result.message_for)."""


class Message:
    """A parsed message. `headers` is a list of [name, raw value] (value without the
    leading space after the colon kept raw, folded as received): the first `max_fields`
    fields (sieve_max_header_fields); `header_rest` holds the header's text past them, which no
    test sees and which is written back as it came, after the fields (head_bytes)."""

    def __init__(self, raw: bytes, max_scan: int = 10 << 20, max_fields: int = MAX_HEADER_FIELDS):
        self.raw = raw
        self.max_scan = max_scan
        self.max_fields = max_fields
        self.headers: list[list[str]] = []
        # the header's lines past max_fields, without the line break that ends the last one (a
        # view of `raw`, not a copy); empty when every field was read
        self.header_rest: bytes | memoryview = b""
        # the body once replaced (replace, enclose, a filter); None: raw[_body_start:], read
        # when asked for (a copy of a large body per message is what bounds its memory)
        self._body: bytes | None = None
        self._body_start = len(raw)
        self._parse()
        self._mime = None
        self.edited = False
        self.body_replaced = False  # replace/enclose (RFC 5703) gave it a new body
        self.original_body_len = len(raw) - self._body_start
        self.version = 0  # bumped by every header edit (invalidate)
        # (bytes, version): a replacement message (a filter's output) as it was written, which
        # to_bytes gives while no header edit came after it: parsing and writing it again would
        # lose what is no header field (text without a header block, a line without a colon)
        self.verbatim: tuple[bytes, int] | None = None
        # plain text of HTML parts by content, kept across header edits (which re-parse the
        # MIME structure but leave the parts' content as it was)
        self._html_cache: dict[tuple, str] = {}

    def _parse(self) -> None:
        raw = self.raw
        head_end, self._body_start = _head_bounds(raw)
        self._crlf = raw.find(b"\r\n", 0, head_end + 2) >= 0 or raw.find(b"\n", 0, head_end + 2) < 0
        spans: list[int] = []     # (not an array: `array` loads collections, ~9 M instructions an LDA run)
        fields, rest_at = _parse_fields(raw, 0, head_end, self.max_fields, spans)
        self.headers.extend(fields)
        # each field as parsed (the list, its name and value) and where its octets stand in
        # `raw`: a field an edit left as it was is written back as those octets (_head_pieces)
        self._origin = (fields, [x for f in fields for x in f], spans)
        if rest_at >= 0:
            self.header_rest = memoryview(raw)[rest_at:head_end]
            from owlery.lazylog import get_logger   # here: only such a message pays for it
            get_logger("owlery.sieve").warning(
                "sieve: the message header has more than %d fields (sieve_max_header_fields): "
                "tests see the first %d, the other %d bytes of the header are delivered as they came",
                self.max_fields, self.max_fields, head_end - rest_at)

    @property
    def body(self) -> bytes:
        return self.raw[self._body_start:] if self._body is None else self._body

    @body.setter
    def body(self, value: bytes) -> None:
        self._body = value

    def _body_view(self) -> bytes | memoryview:
        """The body without copying the original's octets."""
        return memoryview(self.raw)[self._body_start:] if self._body is None else self._body

    @property
    def size(self) -> int:
        if not self.edited:
            return len(self.raw)
        if self.verbatim is not None and self.verbatim[1] == self.version:
            return len(self.verbatim[0])
        return len(self.head_bytes()) + len(self._body_view())

    def header_raw(self, name: str) -> list[str]:
        """Unfolded raw values of every field named `name` (case-insensitive); octets that are
        not UTF-8 read as U+FFFD, one a run (as Dovecot reads a header's raw 8-bit text)."""
        return [_replace_bad(v) for v in _field_values(self.headers, name)]

    def header_values(self, name: str) -> list[str]:
        """Decoded values (decode_2047) of every field named `name`; white space a decoded
        word leaves at the end goes, as the raw value's does (as Dovecot reads the message's
        own header; a MIME part's keeps it: MimePart.header_values)."""
        return list(self.iter_header_values(name))

    def iter_header_values(self, name: str):
        """header_values one at a time: a test that matches them as they come holds one
        decoded copy, not one of every field of that name."""
        return (decode_2047(v).rstrip(" \t") for v in _field_values(self.headers, name))

    def has_header(self, name: str) -> bool:
        n = name.lower()
        return any(k.lower() == n for k, _ in self.headers)

    def field_count(self, name: str) -> int:
        """How many fields are named `name` (each is one value of header_values)."""
        n = name.lower()
        return sum(1 for k, _ in self.headers if k.lower() == n)

    def head_bytes(self) -> bytes:
        """The header block as edited (fields and the empty line that ends it), with the line
        ends the message came with (so that an edit changes the size by what it edits); the
        lines past sieve_max_header_fields (header_rest) follow the fields as they came."""
        return b"".join(self._head_pieces())

    def _head_pieces(self) -> list:
        """head_bytes() in pieces: joined once by the caller, with the body when it writes the
        whole message (no copy of the header block as one string, then as bytes, then with the
        body). A run of fields that are as parsed, and whose octets are what writing them gives
        (_written_as_is), is one view of `raw`: an edit costs what it edits, not a copy of the
        whole header."""
        eol = "\r\n" if self._crlf else "\n"
        fields, strs, spans = self._origin
        index = {id(f): i for i, f in enumerate(fields)} if fields else {}
        view = memoryview(self.raw)
        pieces: list = []
        run_start = run_stop = -1
        for f in self.headers:
            i = index.get(id(f))
            if i is not None and f[0] is strs[2 * i] and f[1] is strs[2 * i + 1]:
                a, b = spans[2 * i], spans[2 * i + 1]
                if b >= 0 and self._written_as_is(a, b):
                    if a != run_stop:
                        if run_start >= 0:
                            pieces.append(view[run_start:run_stop])
                        run_start = a
                    run_stop = b
                    continue
            if run_start >= 0:
                pieces.append(view[run_start:run_stop])
                run_start = run_stop = -1
            line = f"{f[0]}:{f[1]}{eol}"
            if eol == "\n":
                line = line.replace("\r\n", "\n")
            pieces.append(line.encode("utf-8", "surrogateescape"))
        if run_start >= 0:
            pieces.append(view[run_start:run_stop])
        if self.header_rest:
            pieces += (self.header_rest, eol.encode())
        pieces.append(eol.encode())
        return pieces

    def _written_as_is(self, a: int, b: int) -> bool:
        """Whether the field at raw[a:b] (its line break included) is written back as those
        octets: no white space before its colon (the name is kept without it) and every line
        break of the kind the header is written with (CRLF, or LF and no CRLF)."""
        raw = self.raw
        colon = raw.find(b":", a, b)
        if colon > a and raw[colon - 1] in (32, 9):
            return False
        if self._crlf:
            return raw.count(b"\n", a, b) == raw.count(b"\r\n", a, b)
        return raw.count(b"\r\n", a, b) == 0

    def snapshot(self) -> bytes:
        """What an action records of the edited message: the header block, or once the
        body was replaced the whole message (a FullMessage)."""
        if self.body_replaced:
            return FullMessage(self.to_bytes())
        return self.head_bytes()

    def to_bytes(self) -> bytes:
        if not self.edited:
            return self.raw
        if self.verbatim is not None and self.verbatim[1] == self.version:
            return self.verbatim[0]
        pieces = self._head_pieces()
        pieces.append(self._body_view())
        return b"".join(pieces)

    # --- MIME ---------------------------------------------------------------------

    def mime_parts(self, max_parts: int, max_depth: int) -> list["MimePart"]:
        """Every MIME part in document order (the message itself first)."""
        if self._mime is None:
            # the message's fields, when these are the octets they were parsed from (a copy of
            # the lists, not of the strings: replace renames fields in place)
            top = [list(f) for f in self.headers] if not self.edited and len(self.raw) <= self.max_scan else None
            self._mime = parse_mime(self.to_bytes()[: self.max_scan], max_parts, max_depth, self.max_fields, top)
            for p in self._mime:
                p.html_cache = self._html_cache
        return self._mime

    def invalidate(self) -> None:
        self._mime = None
        self.version += 1


class MimePart:
    """One MIME part: headers, content type, raw body, children, parent index."""

    def __init__(self, headers: list[list[str]], body: bytes, depth: int, parent: "MimePart | None"):
        self.headers = headers
        self._body = body
        # where the body stands in the octets parsed (buffer, start, end), cut out when asked
        # for: a multipart's body holds its parts', and a copy of each level's cost the depth
        # times the message (30 nested multiparts: ~31 times)
        self._body_at: tuple[bytes, int, int] | None = None
        self.depth = depth
        self.parent = parent
        self.children: list[MimePart] = []
        # (start, end) of the part's octets (header and body) in the message it was parsed
        # from, when they are there as such (not inside an encoded message/rfc822); None else.
        # replace (RFC 5703 5) inside foreverypart rewrites that span.
        self.span: tuple[int, int] | None = None
        ctype = self.header_raw("content-type")
        self.ctype_raw = ctype[0] if ctype else ""
        mtype, params = parse_content_type(self.ctype_raw)
        if not ctype:
            mtype = "message/rfc822" if (parent is not None and parent.mtype == "multipart/digest") else "text/plain"
        elif not mtype:
            # a Content-Type that is present but names no type (empty, "garbage",
            # "text/plain/stupid") leaves the type unknown: only body :content "" reads such a
            # part, not :text nor :content "text" or "application" (as Pigeonhole; RFC 2045 5.2
            # only recommends reading it as text/plain)
            mtype = UNKNOWN_TYPE
        self.mtype = mtype
        self.params = params
        self._decoded: bytes | None = None
        self.html_cache: dict[tuple, str] | None = None
        # a multipart's text before its first delimiter line and after its close delimiter
        # (RFC 2046 5.1.1), as parse_mime found them (None: not there)
        self.prologue: bytes | None = None
        self.epilogue: bytes | None = None
        self.epilogue_start: int | None = None
        # a multipart one of whose delimiter lines was found (it has parts, maybe none)
        self.delimited = False
        # where the header block stands in the octets parsed (buffer, start, end): head_raw
        self._head_at: tuple[bytes, int, int] | None = None
        # whether an empty line ended the header: a part without one has no body (RFC 5322
        # 3.5), which body tests read no value from (as Pigeonhole)
        self.has_body = True

    @property
    def body(self) -> bytes:
        """The part's body as it stands (transfer encoding not undone)."""
        if self._body_at is None:
            return self._body
        buf, start, end = self._body_at
        return buf[start:end]

    @body.setter
    def body(self, value: bytes) -> None:
        self._body = value
        self._body_at = None

    @property
    def head_raw(self) -> bytes | None:
        """The header block as it stands, lines that are no fields too (None: not parsed
        here); cut out when asked for (only a message/rfc822 part's is ever read)."""
        if self._head_at is None:
            return None
        buf, start, end = self._head_at
        return buf[start:end]

    def header_raw(self, name: str) -> list[str]:
        return [_replace_bad(v) for v in _field_values(self.headers, name)]

    def header_values(self, name: str) -> list[str]:
        return [decode_2047(v) for v in _field_values(self.headers, name)]

    def decoded_body(self) -> bytes:
        """The part's body with its transfer encoding undone (once: every body, mime and
        extracttext test of a run reads it, and a large quoted-printable part costs ~40 ns
        a byte to decode as Dovecot does)."""
        if self._decoded is None:
            self._decoded = self._decode_body()
        return self._decoded

    def _decode_body(self) -> bytes:
        # The mechanism token: comments may stand around it (RFC 2045 1 and 6.1, "base64 (c)",
        # "(c) base64"), a ";" ends it (as Pigeonhole reads "base64; x=y"); anything else that
        # is no token ('"base64"', "base64 x") is an unknown mechanism, as Pigeonhole has it.
        value = strip_comments((self.header_raw("content-transfer-encoding") or [""])[0])
        cte = value.split(";", 1)[0].strip().lower()
        body = self.body
        try:
            if cte == "base64":
                return decode_base64(body)
            if cte == "quoted-printable":
                return decode_qp(body)
            if cte not in ("", "7bit", "8bit", "binary"):
                return b""  # unknown encoding: nothing we can read
        except (binascii.Error, ValueError):
            return body
        return body

    def text(self) -> str:
        # no label is US-ASCII (RFC 2045 5.2), which decode_charset reads as UTF-8 (Dovecot)
        charset = self.params.get("charset", "us-ascii") or "us-ascii"
        return decode_charset(self.decoded_body(), charset)

    def readable_text(self) -> str:
        """text(), with HTML converted to plain text (sieve.html_text) as the body test's :text
        transform (RFC 5173 5.2) and extracttext (RFC 5703 7) read it; linear in the part's
        size, and done once per content (html_cache)."""
        if self.mtype not in HTML_TYPES:
            return self.text()
        cache = self.html_cache
        key = (self.body, self.ctype_raw, tuple(self.header_raw("content-transfer-encoding")))
        if cache is not None and key in cache:
            return cache[key]
        from sieve.html_text import html_to_text   # here: only HTML parts pay for its tables (~1.4 ms)
        plain = html_to_text(self.text())
        if cache is not None and sum(map(len, cache.values())) + len(plain) <= _HTML_CACHE_CHARS:
            cache[key] = plain
        return plain


# type "/" subtype, each an RFC 2045 token (lower case by then)
_MEDIA_TYPE = lazy(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+")


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """(media type in lower case, or "" when the field holds none; parameters by lower-cased
    name). A parameter given twice is read with its first value, as Dovecot's parser reads it
    (the charset a part is decoded in, its boundary); parse_content_type_all has them all."""
    mtype, pairs = parse_content_type_all(value)
    params: dict[str, str] = {}
    for k, v in pairs:
        params.setdefault(k, v)
    return mtype, params


def parse_content_type_all(value: str) -> tuple[str, list[tuple[str, str]]]:
    """(media type in lower case or "", every parameter in order as (lower-cased name, value)):
    a name given twice is there twice (the mime test's :param reads each value, RFC 5703 4.2,
    as Pigeonhole does); RFC 2231 sections and encoded values are joined and decoded."""
    if not value:
        return "", []
    if "(" in value:
        value = strip_comments(value)
    parts = _split_params(value)
    # white space may stand around the "/" (RFC 2045 5.1: a structured field, RFC 822 tokens)
    mtype = "".join(parts[0].split()).lower()
    if "/" not in mtype or not _MEDIA_TYPE.fullmatch(mtype):
        # no media type, no parameters either ("text; charset=x", "garbage; name=y"): the
        # field does not parse (as Dovecot reads it)
        return "", []
    pairs: list[tuple[str, str]] = []
    for p in parts[1:]:
        if "=" not in p:
            # no parameter (RFC 2045 5.1: attribute "=" value): the rest of the field is not
            # read, as Dovecot's parser stops there ("multipart/mixed;; boundary=b" has no
            # boundary under Pigeonhole); an empty piece after the last ';' loses nothing
            break
        k, v = p.split("=", 1)
        value = _param_value(v)
        if value is not None:
            pairs.append((k.strip().lower(), value))
    if any("*" in k for k, _ in pairs):
        plain = [(k, v) for k, v in pairs if "*" not in k]
        joined: dict[str, str] = {}
        repeated = set()
        for k, v in pairs:
            if k in joined:
                repeated.add(k)
            joined.setdefault(k, v)
        _rfc2231(joined, repeated)
        names = {k for k, _ in plain}
        pairs = plain + [(k, v) for k, v in joined.items() if "*" not in k and k not in names]
    return mtype, pairs


# RFC 2045 5.1: a token ends at white space, a control or one of the tspecials
_TOKEN_END = lazy(r'[\x00-\x20()<>@,;:\\"/\[\]?=\x7f]')


def _param_value(v: str) -> str | None:
    """A parameter's value (RFC 2045 5.1: value := token / quoted-string): a quoted string's
    text with its quoted-pairs undone (RFC 822 3.4.4: "a\\\\b" is a\\b), else the token the
    value starts with ("x y" is x); what follows, up to the next ';', is no part of it. A
    quoted string that never ends gives no value (the parameter is dropped). Dovecot's parser,
    under Pigeonhole, reads parameters so (checked with sieve-test)."""
    v = v.lstrip(" \t\r\n")
    if v[:1] != '"':
        m = _TOKEN_END.search(v)
        return v if m is None else v[:m.start()]
    out: list[str] = []
    i, n = 1, len(v)
    while i < n:
        c = v[i]
        if c == '"':
            return "".join(out)
        if c == "\\" and i + 1 < n:
            i += 1
            c = v[i]
        out.append(c)
        i += 1
    return None


_PCT = lazy(rb"%([0-9A-Fa-f]{2})")
_SECTION = lazy(r"([^*]+)\*(?:(\d{1,3})(\*)?|)")


def _rfc2231(params: dict[str, str], repeated: frozenset[str] | set[str] = frozenset()) -> None:
    """Parameter values in RFC 2231's forms joined and decoded in place: `name*=charset'lang'
    %XX..` and the sections `name*0`, `name*1*`...; the value is then `name`, unless a plain
    `name=` stands beside it (which is read instead, as Pigeonhole reads it). A section whose
    name ends in "*" is percent-encoded in the charset the first section names. `repeated`:
    the section names given more than once (their first value is in `params`)."""
    sections: dict[str, list[tuple[int, bool, str]]] = {}
    for k in list(params):
        m = _SECTION.fullmatch(k)
        if m is None:
            continue
        # "name*" alone is section 0, encoded
        num, enc = (int(m.group(2)), bool(m.group(3))) if m.group(2) else (0, True)
        sections.setdefault(m.group(1), []).append((num, enc, params.pop(k)))
        if k in repeated:
            sections[m.group(1)].append((num, enc, ""))
    for name, secs in sections.items():
        if name in params:
            continue
        secs.sort()
        charset = ""
        raw = []
        for i, (num, enc, v) in enumerate(secs):
            b = v.encode("utf-8", "surrogateescape")
            if enc and i == 0:
                # ext-value := [charset] "'" [language] "'" extended-other-values
                if b.count(b"'") >= 2:
                    cs, _lang, b = b.split(b"'", 2)
                    charset = cs.decode("ascii", "replace")
                else:
                    b = b"%"        # no charset part: as unreadable as a bad escape
            if num != i or (enc and b.count(b"%") != len(_PCT.findall(b))):
                # RFC 2231 3 and 4: sections follow on, each number once, and "%" starts two
                # hex digits. RFC 2231 says nothing of a value that breaks these rules: one
                # missing or repeated section, a bad escape, an encoded first section without
                # its charset and language leave nothing readable (an empty value, as
                # Pigeonhole reads it; tests/sieve/test_pigeonhole_probes_s18c.py)
                raw, charset = [], ""
                break
            if enc:
                b = _PCT.sub(lambda m: bytes.fromhex(m.group(1).decode()), b)
            raw.append(b)
        data = b"".join(raw)
        params[name] = decode_charset(data, charset) if charset else _replace_bad(
            data.decode("utf-8", "surrogateescape"))


def strip_comments(value: str) -> str:
    """`value` with each RFC 822 comment outside a quoted string ("(...)", nested, with
    backslash escapes) made one space, as RFC 2045 5.1 allows them in Content-Type
    ("text/plain; charset=us-ascii (Plain text)"). One pass, linear."""
    out: list[str] = []
    depth = 0
    quoted = escaped = False
    for c in value:
        if escaped:
            escaped = False
            if not depth:
                out.append(c)
            continue
        if c == "\\" and (quoted or depth):
            escaped = True
            if not depth:
                out.append(c)
            continue
        if depth:
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if not depth:
                    out.append(" ")
            continue
        if c == '"':
            quoted = not quoted
        elif c == "(" and not quoted:
            depth = 1
            continue
        out.append(c)
    return "".join(out)


def _split_params(value: str) -> list[str]:
    out, buf, q = [], [], False
    for c in value:
        if c == '"':
            q = not q
        if c == ";" and not q:
            out.append("".join(buf))
            buf = []
        else:
            buf.append(c)
    out.append("".join(buf))
    return out


def _head_bounds(raw: bytes) -> tuple[int, int]:
    """(where the header block ends, where the body starts): the header block ends at the first
    empty line, which belongs to neither."""
    if raw.startswith(b"\r\n"):
        return 0, 2
    if raw.startswith(b"\n"):
        return 0, 1
    # the first LF that an LF or a CRLF follows, and the CR before it
    lf_lf, lf_crlf = raw.find(b"\n\n"), raw.find(b"\n\r\n")
    if lf_lf < 0 and lf_crlf < 0:
        return len(raw), len(raw)
    first, end = (lf_lf, lf_lf + 2) if lf_crlf < 0 or 0 <= lf_lf < lf_crlf else (lf_crlf, lf_crlf + 3)
    start = first - 1 if first and raw[first - 1] == 13 else first
    return start, end


def _field_value(buf: bytes, start: int, end: int) -> str:
    """The value octets buf[start:end] as _parse_fields gives them: each line break inside (a
    fold) CRLF, whatever the message used."""
    seg = buf[start:end]
    lf = seg.count(b"\n")
    if lf and seg.count(b"\r\n") != lf:
        seg = seg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return seg.decode("utf-8", "surrogateescape")


def _parse_fields(buf: bytes, start: int = 0, end: int | None = None, max_fields: int = MAX_HEADER_FIELDS,
                  spans: list[int] | None = None) -> tuple[list[list[str]], int]:
    """([name, raw value] of each field of the header block buf[start:end], continuation lines
    kept folded in, each fold CRLF; where the lines past `max_fields` start, or -1 when there
    are none). A line without a colon is skipped (and counts towards `max_fields`, so that
    the work is bounded by it too), with the continuation lines after it. A name that is no
    RFC 5322 field-name (empty, with white space, controls or 8-bit octets) is kept as it
    stands, as Dovecot keeps it: a header edit then writes the line back, and a test given
    that name at run time finds it (as sieve-test). `spans`, when given, receives each field's
    first octet and the octet after its line break (-1: the block ends inside the field).
    Reads the octets in place, one line at a time, and makes two strings per field: no copy
    of the block, no string per line (a header of many short fields cost ~20 times its size).
    Octets that are not UTF-8 stay as they came (surrogateescape): head_bytes() writes them
    back unchanged, and a header test reads them as U+FFFD (Message.header_raw), as Dovecot."""
    n = len(buf) if end is None else end
    fields: list[list[str]] = []
    started = 0             # lines read that are no continuation line
    name: str | None = None     # the open field's name (None: no field open)
    val_start = val_end = 0
    pos = start
    while True:
        nl = buf.find(b"\n", pos, n)
        if nl < 0:
            eol = n         # the block's last line keeps a CR at its end
        else:
            eol = nl - 1 if nl > pos and buf[nl - 1] == 13 else nl
        if pos < eol and buf[pos] in (32, 9) and name is not None:
            val_end = eol
        else:
            if name is not None:
                fields.append([name, _field_value(buf, val_start, val_end)])
                if spans is not None:
                    spans.append(pos)
                name = None
            if started == max_fields:
                return fields, pos
            started += 1
            k = buf.find(b":", pos, eol)
            if k >= 0:
                name = buf[pos:k].decode("utf-8", "surrogateescape").rstrip(" \t")
                val_start, val_end = k + 1, eol
                if spans is not None:
                    spans.append(pos)
        if nl < 0:
            break
        pos = nl + 1
    if name is not None:
        fields.append([name, _field_value(buf, val_start, val_end)])
        if spans is not None:
            spans.append(-1)
    return fields, -1


class _Scanner:
    """Forward searches over one message for the MIME parser, each remembered so that a search
    asked again from a later position reuses what it found (the parser only moves forward, so
    the whole parse reads each octet a bounded number of times, whatever the message holds)."""

    def __init__(self, raw: bytes):
        self.raw = raw
        self._found: dict[bytes, tuple[int, int]] = {}

    def find(self, what: bytes, pos: int) -> int:
        """raw.find(what, pos), or len(raw) when not found."""
        last = self._found.get(what)
        if last is not None and last[0] <= pos <= last[1]:
            return last[1]
        at = self.raw.find(what, pos)
        if at < 0:
            at = len(self.raw)
        self._found[what] = (pos, at)
        return at


class _Frame:
    """An open multipart whose boundary is still looked for."""

    __slots__ = ("boundary", "part")

    def __init__(self, boundary: bytes, part: "MimePart"):
        self.boundary = boundary
        self.part = part


def _match_boundary(raw: bytes, at: int, frames: list[_Frame], scan: _Scanner):
    """(index in `frames`, whether it closes, where the line ends) of the boundary the line at
    `at` (which starts with "--") is a delimiter of, or None. As Dovecot's parser, and as RFC
    2046 5.1.1 tells implementors: the boundary need only begin the line ("--b" then anything);
    of several that do, the longest wins (a tie: the innermost), so an inner boundary that
    extends an outer one ("b" and "b-1") still splits its own multipart; "--" after the
    boundary makes the line the multipart's close delimiter."""
    eol = scan.find(b"\n", at)
    end = eol if eol < len(raw) else len(raw)
    if end > at and raw[end - 1] == 13:
        end -= 1
    size = end - at - 2
    trailing_dashes = size > 2 and raw[end - 2:end] == b"--"
    best = None
    for i in range(len(frames) - 1, -1, -1):
        b = frames[i].boundary
        if len(b) <= size and raw.startswith(b, at + 2) and (best is None or len(frames[best].boundary) < len(b)):
            best = i
            # "b--" is boundary "b" closing, or a boundary "b--": the innermost that fits wins
            if len(b) == size or (trailing_dashes and len(b) == size - 2):
                break
    if best is None:
        return None
    n = at + 2 + len(frames[best].boundary)
    return best, raw[n:n + 2] == b"--", min(eol + 1, len(raw))


def parse_mime(raw: bytes, max_parts: int, max_depth: int, max_fields: int = MAX_HEADER_FIELDS,
               top_fields: list[list[str]] | None = None) -> list[MimePart]:
    """Every MIME part of `raw` in document order (the message first), each with its span in
    `raw`. One forward pass, as Dovecot's parser reads a message: a line is a delimiter of the
    open multipart whose boundary begins it (_match_boundary), which ends every part opened
    inside that multipart since its last delimiter; a close delimiter stops looking for that
    boundary (what follows is the epilogue, until an enclosing multipart's delimiter); a
    message/rfc822 part's body is read as the message it holds, in place, whatever its
    Content-Transfer-Encoding (RFC 2046 5.2.1 allows none but 7bit, 8bit and binary). Parts past
    `max_parts` are not made, nor parts deeper than `max_depth` parsed; a part's fields past
    `max_fields` are not read (sieve_max_header_fields). `top_fields`: the message's own fields,
    when the caller parsed them from these octets already (Message.mime_parts). Linear: each search
    resumes where the last one ended (_Scanner)."""
    parts: list[MimePart] = []
    scan = _Scanner(raw)
    n = len(raw)
    frames: list[_Frame] = []
    # the parts whose octets have not ended yet, outermost first, each with where its body starts
    open_: list[tuple[MimePart, int]] = []

    def before_line(at: int, start: int) -> int:
        """Where the content before the delimiter line at `at` ends: the line break before it
        belongs to the delimiter (RFC 2046 5.1.1), unless it ended the line before that."""
        end = at
        if end > start and raw[end - 1] == 10:
            end -= 1
            if end > start and raw[end - 1] == 13:
                end -= 1
        return end

    def finish(part: MimePart, body_start: int, end: int) -> None:
        part._body_at = (raw, body_start, end)
        part.span = (part.span[0], end)
        if part.mtype.startswith("multipart/") and part.prologue is None:
            # a multipart whose boundary never came: its body is all prologue
            part.prologue = part.body

    # per set of open boundaries: a pattern for a line that one of them begins (found in C,
    # however many other lines start with "--"), and where it last found one from where
    patterns: dict[tuple[bytes, ...], tuple[re.Pattern, list[int]]] = {}

    def next_delimiter(pos: int, limit: int):
        """The first delimiter line of an open multipart at or after `pos` and before `limit`:
        (line start, frame index, closes, line end), or None."""
        if not frames:
            return None
        key = tuple(f.boundary for f in frames)
        entry = patterns.get(key)
        if entry is None:
            import re       # here: only a message with a multipart pays for it
            alts = b"|".join(re.escape(b) for b in sorted(set(key), key=len, reverse=True))
            entry = patterns[key] = (re.compile(b"(?m)^--(?:" + alts + b")"), [-1, -1])
        pattern, last = entry
        while True:
            if last[0] <= pos <= last[1]:
                at = last[1]
            else:
                m = pattern.search(raw, pos)
                at = m.start() if m is not None else n
                last[0], last[1] = pos, at
            if at >= limit or at >= n:
                return None
            found = _match_boundary(raw, at, frames, scan)
            if found is not None:
                return (at, *found)
            pos = at + 1

    def open_entity(start: int, depth: int, parent: MimePart | None) -> int:
        """Read the header of the entity at `start`; return where its body starts (or, when a
        delimiter line cuts the header short, that line's start)."""
        blank = True    # an empty line ends the header
        if raw.startswith(b"\r\n", start):
            head_end, body_start = start, start + 2
        elif raw.startswith(b"\n", start):
            head_end, body_start = start, start + 1
        else:
            # the first LF that an LF or a CRLF follows, and the CR before it (_head_bounds)
            lf_lf, lf_crlf = scan.find(b"\n\n", start), scan.find(b"\n\r\n", start)
            if lf_lf <= lf_crlf:
                first, body_start = lf_lf, min(lf_lf + 2, n)
            else:
                first, body_start = lf_crlf, lf_crlf + 3
            head_end = first - 1 if first > start and first < n and raw[first - 1] == 13 else first
            if first >= n:
                head_end = body_start = n
                blank = False
        cut = next_delimiter(start, head_end + 1)
        if cut is not None:
            # a delimiter before the empty line: the entity is a header without a body
            head_end = body_start = before_line(cut[0], start)
        if start == 0 and top_fields is not None:
            fields = top_fields
        else:
            fields = _parse_fields(raw, start, head_end, max_fields)[0]
        part = MimePart(fields, b"", depth, parent)
        part._head_at = (raw, start, head_end)
        part.has_body = blank and cut is None
        part.span = (start, start)
        parts.append(part)
        if parent is not None:
            parent.children.append(part)
        open_.append((part, body_start))
        if depth < max_depth and len(parts) < max_parts:
            if part.mtype.startswith("multipart/"):
                boundary = part.params.get("boundary")
                if boundary and cut is None:
                    frames.append(_Frame(boundary.encode("utf-8", "replace"), part))
            elif part.mtype == "message/rfc822":
                # the message it holds, empty as its body may be (as Dovecot's parser makes it)
                return open_entity(body_start, depth + 1, part)
        return body_start

    pos = open_entity(0, 0, None)
    while True:
        d = next_delimiter(pos, n + 1)
        if d is None:
            break
        at, k, closes, line_end = d
        frame = frames[k]
        owner = frame.part
        # every part opened inside the multipart since its last delimiter ends before this line
        while open_ and open_[-1][0] is not owner:
            part, body_start = open_.pop()
            finish(part, body_start, max(body_start, before_line(at, body_start)))
        del frames[k + 1:]
        owner.delimited = True
        if owner.prologue is None:
            body_start = open_[-1][1]
            owner.prologue = raw[body_start:max(body_start, before_line(at, body_start))]
        if closes:
            frames.pop()
            owner.epilogue_start = line_end
            pos = line_end
        elif len(parts) < max_parts:
            pos = open_entity(line_end, owner.depth + 1, owner)
        else:
            # no more parts are made: what is left belongs to the parts still open
            break
    while open_:
        part, body_start = open_.pop()
        finish(part, body_start, n)
    for part in parts:
        if part.epilogue_start is not None:
            # the text after the close delimiter, when there is any (Pigeonhole gives no value
            # for an empty one, and one for an empty prologue)
            part.epilogue = raw[part.epilogue_start:part.span[1]]
    return parts
