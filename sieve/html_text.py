"""HTML to plain text for the body test's :text transform (RFC 5173 5.2) and extracttext
(RFC 5703 7), which leave the conversion to the implementation; this one reads as
Pigeonhole's sieve-test does, learnt black-box from its output (the probes are the cases of
tests/sieve/test_pigeonhole_parity_s9.py):

- a tag becomes one space, left out at the start of the text and after a space or a line feed
  (a tab or a CR does not count); inside a <blockquote> every tag becomes "\\n> " instead, the
  blockquote's own start tag too, and its end tag "\\n" (or "\\n> " while still quoted). Only
  "<blockquote" followed by white space or ">" opens one and only the exact "</blockquote>"
  closes it; a quote ('"' or "'") inside a tag runs to the next same quote, so a ">" in an
  attribute value does not end the tag. A tag that never ends is dropped with the rest.
- <script> and <style> (any case, name followed by white space or ">") drop everything up to
  the exact "</script>" / "</style>", which counts as one tag (a space, never "\\n> ").
- comments "<!--" ... "-->" vanish without a space (the end is two dashes, or five..., then
  optional white space, then ">": see _comment_end); "<![CDATA[" ... "]]>" (any case) keeps its
  content as it stands (no entity decoding, no space); unterminated, it runs to the end less
  one or two trailing "]".
- "&name;" for the HTML 4 entities and &apos; (case-sensitive; &lang;/&rang; are U+27E8/9),
  "&#N;" and "&#xH;" (a lower-case x) decode; an unknown one, a surrogate or a number past
  U+10FFFF vanishes. An entity is read up to ";": white space (space, tab, CR, LF) before it,
  or an eleventh byte (UTF-8), makes the "&" vanish and what followed it is read again as
  text (a ";" after ten bytes too); an entity the text ends in vanishes.
- everything else, line breaks and runs of white space among it, stays as it is.

Linear time: every scan is str.find or a regex search without backtracking, each character
is looked at a bounded number of times, and the output is at most 1.5 times the input plus a
constant. Callers bound the input (sieve_max_message_scan). Used by sieve.extensions.body and
sieve.extensions.mime.
"""

from __future__ import annotations

import html.entities
import re

_ENTITIES = {name: chr(cp) for name, cp in html.entities.name2codepoint.items()}
_ENTITIES["apos"] = "'"
# HTML 5 maps these two to the mathematical angle brackets, and so does the reference
_ENTITIES["lang"] = "\u27e8"
_ENTITIES["rang"] = "\u27e9"

_DEC = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
# the bytes (UTF-8) of an entity's name and ";" read before giving up (_entity_end)
_ENTITY_MAX = 10
_SPACE = " \t\r\n"
_ENTITY_NAME = re.compile(r"[^; \t\r\n]*")
_TEXT_STOP = re.compile(r"[<&]")
_TAG_STOP = re.compile(r"[>\"']")
_SCRIPT_END = re.compile(r"</script>", re.I)
_STYLE_END = re.compile(r"</style>", re.I)
# what follows a "<": the special cases; anything else is an ordinary tag
_AFTER_LT = re.compile(
    r"(?P<comment>!--)|(?P<cdata>!\[CDATA\[)|(?P<raw>(?P<raw_name>script|style)(?=[ \t\r\n>]))"
    r"|(?P<quote_open>blockquote(?=[ \t\r\n>]))|(?P<quote_close>/blockquote>)",
    re.I,
)


def _entity(name: str) -> str:
    if name[:1] != "#":
        return _ENTITIES.get(name, "")
    digits, base = name[1:], 10
    if digits[:1] == "x":
        digits, base = digits[1:], 16
    if not digits or not all(c in (_HEX if base == 16 else _DEC) for c in digits):
        return ""
    cp = int(digits, base)
    if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
        return ""
    return chr(cp)


def _entity_end(s: str, i: int) -> int:
    """For the entity whose name starts at `i` (after "&"): the index past its ";", -1 when
    the text ends first, or -2 when it is no entity (white space, or a name that reaches its
    eleventh byte of UTF-8: the reference counts bytes)."""
    n = len(s)
    j = _ENTITY_NAME.match(s, i, i + _ENTITY_MAX).end()
    if s[i:j].isascii():
        if j == i + _ENTITY_MAX:
            return -2 if j < n else -1
        if j == n:
            return -1
        return j + 1 if s[j] == ";" else -2
    used = 0
    for j in range(i, n):
        c = s[j]
        if used >= _ENTITY_MAX or c in _SPACE:
            return -2
        if c == ";":
            return j + 1
        o = ord(c)
        used += 1 if o < 0x80 else 2 if o < 0x800 else 3 if o < 0x10000 else 4
        if used > _ENTITY_MAX:
            return -2
    return -1


def _comment_end(s: str, i: int) -> int:
    """Index past the end of the comment whose text starts at `i`, -1 when the text ends
    first. The reference counts dashes modulo three: two of them (or five...), then white space
    or nothing, then ">" end it ("-- >" does, "--->" does not)."""
    n = len(s)
    while True:
        j = s.find("-", i)
        if j < 0:
            return -1
        k = j
        while k < n and s[k] == "-":
            k += 1
        if (k - j) % 3 != 2:
            i = k
            continue
        while k < n and s[k] in _SPACE:
            k += 1
        if k < n and s[k] == ">":
            return k + 1
        # another character (a dash among them) starts the count again after it
        i = k + 1


def _tag_end(s: str, i: int) -> int:
    """Index just past the ">" that ends the tag whose text starts at `i`, quotes honoured;
    -1 when the text ends first."""
    n = len(s)
    while i < n:
        m = _TAG_STOP.search(s, i)
        if m is None:
            return -1
        c = m.group()
        if c == ">":
            return m.end()
        close = s.find(c, m.end())
        if close < 0:
            return -1
        i = close + 1
    return -1


def html_to_text(s: str) -> str:
    """The plain text of HTML `s` (see the module docstring)."""
    out: list[str] = []
    last = ""  # the last character written ("" before any)
    depth = 0  # blockquote nesting
    n = len(s)
    i = 0
    while i < n:
        m = _TEXT_STOP.search(s, i)
        if m is None:
            out.append(s[i:])
            last = s[-1]
            break
        if m.start() > i:
            out.append(s[i : m.start()])
            last = s[m.start() - 1]
        i = m.start() + 1
        if m.group() == "&":
            end = _entity_end(s, i)
            if end == -1:
                break  # the text ends inside the entity: it vanishes
            if end >= 0:
                text = _entity(s[i : end - 1])
                if text:
                    out.append(text)
                    last = text[-1]
                i = end
            # else (-2) white space or too long a name: the "&" vanishes and what follows it
            # is read again as text (so "&</b>" is a tag); at most 10 characters are read twice
            continue
        kind = _AFTER_LT.match(s, i)
        what = kind.lastgroup if kind else None
        if what == "comment":
            end = _comment_end(s, kind.end())
            if end < 0:
                break
            i = end
            continue
        if what == "cdata":
            end = s.find("]]>", kind.end())
            if end < 0:
                # unterminated, the last one or two "]" may be the start of "]]>": they vanish
                body = s[kind.end() :]
                body = body[:-2] if body.endswith("]]") else body[:-1] if body.endswith("]") else body
            else:
                body = s[kind.end() : end]
            if body:
                out.append(body)
                last = body[-1]
            if end < 0:
                break
            i = end + 3
            continue
        end = _tag_end(s, i)
        if end < 0:
            break  # a tag the text ends in vanishes
        i = end
        if what == "raw":
            closer = (_SCRIPT_END if kind.group("raw_name").lower() == "script" else _STYLE_END).search(s, end)
            if closer is None:
                break
            i = closer.end()
            sep = " "  # a space even inside a blockquote
        elif what == "quote_open":
            depth += 1
            sep = "\n> "
        elif what == "quote_close" and depth > 0 and end == kind.end():
            depth -= 1
            sep = "\n> " if depth else "\n"
        else:
            sep = "\n> " if depth else " "
        if sep != " ":
            out.append(sep)
            last = sep[-1]
        elif last not in ("", " ", "\n"):
            out.append(" ")
            last = " "
    return "".join(out)
