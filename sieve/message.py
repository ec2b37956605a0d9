"""The message as Sieve tests see it: header fields (unfolded, RFC 2047 decoded), size,
body, MIME parts (bounded), and header edits (editheader) re-serialised to bytes.

Parses raw bytes only; never fails on malformed mail (best effort, bounded). Used by
sieve.interpreter and the extensions. Tests: conformance (test-header, body, mime,
editheader) and tests/sieve/test_fuzz.py.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import quopri
import re

from owlery.charsets import codec_name

# the types whose text the body test's :text and extracttext read as plain text (sieve.html_text)
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# bounds the plain texts one message keeps converted (characters)
_HTML_CACHE_CHARS = 16 << 20

_EW = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?\s]*)\?=")
_EW_GAP = re.compile(r"(=\?[^?\s]+\?[qQbB]\?[^?\s]*\?=)[ \t\r\n]+(?==\?[^?\s]+\?[qQbB]\?[^?\s]*\?=)")
# Quoted-printable as Dovecot decodes it (learnt black-box from sieve-test's extracttext and
# body tests; cases in tests/sieve/test_pigeonhole_parity_s9.py): a hard line break (LF or
# CRLF) becomes CRLF, the raw spaces and tabs before it dropped (RFC 2045 6.7 rule 3); "=",
# spaces or tabs, then a line break is a soft one and vanishes; at the end of the body a lone
# CR, trailing spaces and tabs, "=" with spaces or tabs and a CR, or "=" with one hex digit
# vanish (the decoder still waited for more); any other "=" not before two hex digits is a
# literal "=" ("=\r" before no LF among them). One left-to-right pass: a run of white space is
# tried as a line's end only from its first character (the lookbehind after it), so it is
# linear; every branch starts with one of "= \t\r\n", which lets the engine skip text fast.
_QP_LINES = re.compile(
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


def decode_charset(raw: bytes, charset: str) -> str:
    """Bytes labelled with a sender-chosen charset to str, never failing: an unknown label,
    one that names no text encoding (base64, zlib, rot13...) or a codec that cannot replace
    bad bytes (idna, punycode) reads as UTF-8, else Latin-1, as Dovecot does."""
    name = codec_name(charset)
    if name is None:
        return bytes_to_text(raw)
    try:
        if not codecs.lookup(name)._is_text_encoding:
            return bytes_to_text(raw)
        return raw.decode(name, "replace")
    except (LookupError, ValueError, UnicodeError, TypeError):
        return bytes_to_text(raw)


def decode_2047(value: str) -> str:
    """Decode RFC 2047 encoded words; whitespace between adjacent ones is dropped."""
    if "=?" not in value:
        return value
    value = _EW_GAP.sub(r"\1", value)

    def one(m: re.Match) -> str:
        charset, enc, text = m.group(1), m.group(2).upper(), m.group(3)
        charset = charset.split("*", 1)[0]
        try:
            if enc == "B":
                raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=False)
            else:
                raw = quopri.decodestring(text.replace("_", " ").encode("ascii", "replace"), header=True)
        except (binascii.Error, ValueError):
            return m.group(0)
        # an unknown charset: the text as UTF-8 (else Latin-1), as Dovecot reads it, rather
        # than the encoded word (RFC 2047 6.2 leaves it to the reader)
        return decode_charset(raw, charset)

    return _EW.sub(one, value)


def unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value)


class FullMessage(bytes):
    """A snapshot of a whole message (header and body) taken after replace/enclose (RFC 5703)
    changed the body; an action's `head` holding one is the message itself, not a header to
    put before the original body (sieve.api.Result.message_for)."""


class Message:
    """A parsed message. `headers` is a list of [name, raw value] (value without the
    leading space after the colon kept raw, folded as received)."""

    def __init__(self, raw: bytes, max_scan: int = 10 << 20):
        self.raw = raw
        self.max_scan = max_scan
        self.headers: list[list[str]] = []
        self.body = b""
        self._parse()
        self._mime = None
        self.edited = False
        self.body_replaced = False  # replace/enclose (RFC 5703) gave it a new body
        self.original_body_len = len(self.body)
        self.version = 0  # bumped by every header edit (invalidate)
        # plain text of HTML parts by content, kept across header edits (which re-parse the
        # MIME structure but leave the parts' content as it was)
        self._html_cache: dict[tuple, str] = {}

    def _parse(self) -> None:
        raw = self.raw
        head, self.body = _split_head(raw)
        self._crlf = b"\r\n" in raw[: len(head) + 2] or b"\n" not in raw[: len(head) + 2]
        self.headers.extend(_parse_fields(head, strict_names=True))

    @property
    def size(self) -> int:
        return len(self.to_bytes()) if self.edited else len(self.raw)

    def header_raw(self, name: str) -> list[str]:
        """Unfolded raw values of every field named `name` (case-insensitive)."""
        n = name.lower()
        return [unfold(v).strip(" \t") for k, v in self.headers if k.lower() == n]

    def header_values(self, name: str) -> list[str]:
        return [decode_2047(v) for v in self.header_raw(name)]

    def has_header(self, name: str) -> bool:
        n = name.lower()
        return any(k.lower() == n for k, _ in self.headers)

    def head_bytes(self) -> bytes:
        """The header block as edited (fields and the empty line that ends it), with the line
        ends the message came with (so that an edit changes the size by what it edits)."""
        eol = "\r\n" if self._crlf else "\n"
        head = "".join(f"{k}:{v}{eol}" for k, v in self.headers)
        if eol == "\n":
            head = head.replace("\r\n", "\n")
        return head.encode("utf-8", "surrogateescape") + eol.encode()

    def snapshot(self) -> bytes:
        """What an action records of the edited message: the header block, or once the
        body was replaced the whole message (a FullMessage)."""
        if self.body_replaced:
            return FullMessage(self.to_bytes())
        return self.head_bytes()

    def to_bytes(self) -> bytes:
        if not self.edited:
            return self.raw
        return self.head_bytes() + self.body

    # --- MIME ---------------------------------------------------------------------

    def mime_parts(self, max_parts: int, max_depth: int) -> list["MimePart"]:
        """Every MIME part in document order (the message itself first)."""
        if self._mime is None:
            self._mime = parse_mime(self.to_bytes()[: self.max_scan], max_parts, max_depth)
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
        self.body = body
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
        if not mtype and self.ctype_raw.strip():
            # a Content-Type that is present but unparseable ("text/plain/stupid"): its content
            # is of unknown type, so body/mime tests must not read it as text (as Pigeonhole)
            mtype = "application/octet-stream"
        if not mtype:
            mtype = "message/rfc822" if (parent is not None and parent.mtype == "multipart/digest") else "text/plain"
        self.mtype = mtype
        self.params = params
        self._decoded: bytes | None = None
        self.html_cache: dict[tuple, str] | None = None

    def header_raw(self, name: str) -> list[str]:
        n = name.lower()
        return [unfold(v).strip(" \t") for k, v in self.headers if k.lower() == n]

    def header_values(self, name: str) -> list[str]:
        return [decode_2047(v) for v in self.header_raw(name)]

    def decoded_body(self) -> bytes:
        """The part's body with its transfer encoding undone (once: every body, mime and
        extracttext test of a run reads it, and a large quoted-printable part costs ~40 ns
        a byte to decode as Dovecot does)."""
        if self._decoded is None:
            self._decoded = self._decode_body()
        return self._decoded

    def _decode_body(self) -> bytes:
        cte = (self.header_raw("content-transfer-encoding") or [""])[0].strip().lower()
        body = self.body
        try:
            if cte == "base64":
                return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", body) + b"==", validate=False)
            if cte == "quoted-printable":
                return decode_qp(body)
            if cte not in ("", "7bit", "8bit", "binary"):
                return b""  # unknown encoding: nothing we can read
        except (binascii.Error, ValueError):
            return body
        return body

    def text(self) -> str:
        charset = (self.params.get("charset", "us-ascii") or "us-ascii").lower()
        raw = self.decoded_body()
        if charset in ("us-ascii", "ascii", "ansi_x3.4-1968") and not raw.isascii():
            # 8-bit text labelled (or defaulting to) US-ASCII is UTF-8 in practice: read it as
            # such (Latin-1 when it is not UTF-8), as Dovecot does, instead of losing it
            return bytes_to_text(raw)
        return decode_charset(raw, charset)

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


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    if not value:
        return "", {}
    parts = _split_params(value)
    mtype = parts[0].strip().lower()
    if "/" not in mtype or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+", mtype):
        mtype = ""
    params = {}
    for p in parts[1:]:
        if "=" in p:
            k, v = p.split("=", 1)
            v = v.strip()
            if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
                v = v[1:-1].replace('\\"', '"')
            params[k.strip().lower()] = v
    return mtype, params


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


def _split_head(raw: bytes) -> tuple[bytes, bytes]:
    """(header block, body): the header block ends at the first empty line."""
    if raw.startswith(b"\r\n"):
        return b"", raw[2:]
    if raw.startswith(b"\n"):
        return b"", raw[1:]
    m = re.search(rb"\r?\n\r?\n", raw)
    if m is None:
        return raw, b""
    return raw[: m.start()], raw[m.end() :]


def _parse_fields(head: bytes, *, strict_names: bool = False) -> list[list[str]]:
    """[name, raw value] of each field of a header block, continuation lines kept folded in;
    a line without a colon is skipped, and with `strict_names` so is a field whose name is not
    printable ASCII (the message's own header; a MIME part's keeps whatever stands there)."""
    # each field's lines are joined once at the end: appending every continuation line to a
    # str copied the field so far each time (quadratic in a field folded over many lines)
    fields: list[tuple[str, list[str]]] = []
    cur: list[str] | None = None
    for line in re.split(r"\r?\n", bytes_to_text(head)):
        if line[:1] in (" ", "\t") and cur is not None:
            cur.append(line)
            continue
        k = line.find(":")
        name = line[:k].rstrip(" \t") if k > 0 else ""
        if k <= 0 or (strict_names and (not name or any(ord(c) < 33 or ord(c) > 126 for c in name))):
            cur = None
            continue
        cur = [line[k + 1 :]]
        fields.append((name, cur))
    return [[name, "\r\n".join(lines)] for name, lines in fields]


def _split_head_body(raw: bytes) -> tuple[list[list[str]], bytes]:
    head, body = _split_head(raw)
    return _parse_fields(head), body


def parse_mime(raw: bytes, max_parts: int, max_depth: int) -> list[MimePart]:
    parts: list[MimePart] = []

    def walk(data: bytes, depth: int, parent: MimePart | None, base: int | None = 0) -> None:
        if len(parts) >= max_parts:
            return
        headers, body = _split_head_body(data)
        part = MimePart(headers, body, depth, parent)
        if base is not None:
            part.span = (base, base + len(data))
        body_base = base + len(data) - len(body) if base is not None else None
        parts.append(part)
        if parent is not None:
            parent.children.append(part)
        if depth >= max_depth:
            return
        if part.mtype.startswith("multipart/"):
            boundary = part.params.get("boundary")
            if not boundary:
                return
            delim = b"--" + boundary.encode("utf-8", "replace")
            pattern = re.compile(rb"(?:^|\r?\n)" + re.escape(delim) + rb"(--)?[ \t]*(?:\r?\n|$)")
            chunks = pattern.split(body)
            # where each delimiter line ends: chunk k + 1 starts there (split and finditer
            # find the same delimiters)
            ends = [m.end() for m in pattern.finditer(body)]
            # chunks: preamble, (closer-flag, part)...
            sub = []
            k = 1
            while k + 1 < len(chunks):
                closer = chunks[k]
                content = chunks[k + 1]
                if closer:
                    break
                sub.append((content, ends[(k - 1) // 2]))
                k += 2
            for s, off in sub:
                walk(s, depth + 1, part, body_base + off if body_base is not None else None)
        elif part.mtype == "message/rfc822":
            inner = part.decoded_body()
            walk(inner, depth + 1, part, body_base if inner is part.body else None)

    walk(raw, 0, None)
    return parts
