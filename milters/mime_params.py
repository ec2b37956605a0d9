"""MIME header parameters (RFC 2045, RFC 2231) and encoded words (RFC 2047), decoded leniently.

`parse(value)` splits `type/sub; a=b; c="d"` into its main value and the parameters in
order (duplicates kept). `values(params, name)` gives every value a parameter can take:
the plain one, the RFC 2231 one (`name*=charset'lang'%xx`, continuations `name*0*=`,
`name*1=` ...), each also with RFC 2047 encoded words decoded (forbidden in parameters by
RFC 2047 section 5, yet mail programs decode them, so a filter must too). Nothing here
raises on malformed input (what cannot be decoded is kept as it is) except a field with
more than PARAMS_MAX parameters, which raises TooManyParameters.
Talks to: nothing. Tests: tests/milters/test_banned_hostile.py, tests/fuzz/test_banned.py
"""

from __future__ import annotations

import base64
import binascii
import re

from owlery.charsets import codec_name

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")
_PERCENT_Q = re.compile(rb"=([0-9A-Fa-f]{2})")
_SECTION = re.compile(r"^(.*?)\*(\d+)(\*?)$")
# one parameter: quoted strings (a missing closing quote runs to the end) and other characters but ";"
_ITEM = re.compile(r'(?:"(?:[^"\\]|\\.)*(?:"|\Z)|[^;"])+', re.S)
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)', re.S)
_ESCAPE = re.compile(r"\\(.)", re.S)
PARAMS_MAX = 200


class TooManyParameters(ValueError):
    """A header field with more parameters than anyone writes (PARAMS_MAX): hostile."""


def uncommented(text: str) -> str:
    """`text` without its RFC 822 comments ("(...)", nested, with quoted-pairs; one left open
    runs to the end). For main values (type/subtype, a transfer encoding), where no quoted
    string can stand: RFC 2045 1 lets comments stand in every MIME field but
    Content-Disposition, and readers drop them ("multipart/mixed (x)" is multipart)."""
    out, depth, escaped = [], 0, False
    for c in text:
        if escaped:
            escaped = False
            continue
        if c == "\\" and depth:
            escaped = True
        elif c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(c)
    return "".join(out)


def mechanism(value: str) -> str:
    """A Content-Transfer-Encoding's mechanism, lower-cased: its first word once comments are
    dropped, up to a ";" ("base64 (x)", "(x) base64", "base64; y=z" are base64). A scanner
    reads what any reader might decode: a lenient reading is the safe one here."""
    words = uncommented(value).split(";", 1)[0].split()
    return words[0].lower() if words else ""


def parse(value: str) -> tuple[str, list[tuple[str, str]]]:
    """The main value (lower-cased, stripped, comments dropped) and (name lower-cased, value
    unquoted) pairs.

    Raises TooManyParameters past PARAMS_MAX items, so a megabyte of `;a` costs nothing.
    """
    main, _, rest = value.partition(";")
    if "(" in main:
        main = uncommented(main)
    params = []
    for count, m in enumerate(_ITEM.finditer(rest)):
        if count >= PARAMS_MAX:
            raise TooManyParameters(f"more than {PARAMS_MAX} parameters in one header field")
        name, eq, raw = m.group().partition("=")
        name = name.strip().lower()
        if eq and name:
            params.append((name, _unquote(raw.strip())))
    return main.strip().lower(), params


def _unquote(raw: str) -> str:
    m = _QUOTED.match(raw)
    if m is None:
        return raw
    return _ESCAPE.sub(r"\1", m.group(1))


def values(params: list[tuple[str, str]], name: str) -> list[str]:
    """Every value parameter `name` takes (plain, RFC 2231, continued), decoded; duplicates dropped."""
    found: list[str] = []
    sections: dict[tuple[int, str], tuple[str, bool]] = {}
    for pname, raw in params:
        if pname == name:
            found.append(raw)
        elif pname == name + "*":
            found.append(_decode_2231([(raw, True)]))
        else:
            m = _SECTION.match(pname)
            if m and m.group(1) == name:
                sections.setdefault(_section_key(m.group(2)), (raw, bool(m.group(3))))
    if sections:
        found.append(_decode_2231([sections[k] for k in sorted(sections)]))
    out: list[str] = []
    for v in found:
        for candidate in (decode_words(v), v):
            if candidate not in out:
                out.append(candidate)
    return out


def _section_key(digits: str) -> tuple[int, str]:
    """A section number as a sort key ordered like the number, of any length (int() refuses
    more than 4300 digits): (count of significant digits, those digits in ASCII)."""
    significant = "".join(str(int(c)) for c in digits).lstrip("0") or "0"
    return len(significant), significant


def _decode_2231(sections: list[tuple[str, bool]]) -> str:
    """Join RFC 2231 sections; the first extended one may carry charset'language'."""
    charset = "utf-8"
    data = bytearray()
    for i, (raw, extended) in enumerate(sections):
        if extended:
            if i == 0 and raw.count("'") >= 2:
                charset, _lang, raw = raw.split("'", 2)
            data += _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), raw.encode("utf-8", "surrogateescape"))
        else:
            data += raw.encode("utf-8", "surrogateescape")
    return _to_text(bytes(data), charset)


def decode_words(text: str) -> str:
    """`text` with RFC 2047 encoded words decoded; blanks between two encoded words dropped."""
    out: list[str] = []
    pos = 0
    last_was_word = False
    for m in _ENCODED_WORD.finditer(text):
        between = text[pos:m.start()]
        if not (last_was_word and between.strip() == ""):
            out.append(between)
        charset, kind, payload = m.group(1).split("*", 1)[0], m.group(2).lower(), m.group(3)
        if kind == "b":
            data = _b64(payload.encode("ascii", "replace"))
        else:
            data = _PERCENT_Q.sub(lambda q: bytes([int(q.group(1), 16)]),
                                  payload.replace("_", " ").encode("ascii", "replace"))
        out.append(_to_text(data, charset))
        pos = m.end()
        last_was_word = True
    out.append(text[pos:])
    return "".join(out)


def _b64(data: bytes) -> bytes:
    """Lenient base64: other characters dropped, padding repaired."""
    data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    if len(data) % 4 == 1:
        data = data[:-1]
    data += b"=" * (-len(data) % 4)
    try:
        return base64.b64decode(data)
    except (binascii.Error, ValueError):
        return b""


def _to_text(data: bytes, charset: str) -> str:
    charset = codec_name(charset) or "utf-8"      # (never a sender's label into codecs' cache)
    try:
        return data.decode(charset, "replace")
    except (LookupError, ValueError, UnicodeError):
        return data.decode("latin-1")
