"""A quarantined message made safe to show: its header lines as text, its text parts, HTML reduced to text.

Sans-I/O: message bytes in, plain text values out (the templates escape them). Nothing of
the message is ever served as markup or as a file: text/plain parts are decoded to text,
text/html parts are stripped to their text (script, style and head contents dropped, no
URL fetched: images and links show as their alt text and URL text), every other part is
listed by type, name and size only. Controls (but newline and tab), bidirectional overrides
and other display tricks become visible escapes; a name (a file's, a sender's) shows every
character that does not print on its own as an escape and, when long, its start and its end
(`shown_name`: "invoice.pdf", 300 no-break spaces, ".exe" cannot pass for a PDF). Walks at
most MAX_PARTS parts, MAX_DEPTH levels deep (iteratively: no MIME nesting reaches Python's
recursion limit), reads HTML in linear time and cuts each text to `text_max` characters.
Talks to: nothing. Tests: tests/web/test_mailview.py, tests/web/test_hostile_s19.py
"""

from __future__ import annotations

import dataclasses
import email
import email.errors
import email.policy
import email.utils
import html
import re
from collections.abc import Iterator

from owlery.charsets import codec_name, decode_header_text
from owlery.quarantine.base import escaped

MAX_PARTS = 100
MAX_DEPTH = 30                    # a multipart in a multipart ...: deeper parts are not shown
MAX_HEADER_BYTES = 64 * 1024
NAME_MAX = 200                    # characters of a file name shown: its start and its end
# every Unicode Bidi_Control (U+061C ARABIC LETTER MARK too), C0/C1 controls, the BOM
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
# letters and marks that draw nothing (Hangul fillers, braille blank, combining grapheme joiner,
# Khmer inherent vowels, Mongolian variation selectors): printable to str.isprintable, blank to the eye
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5\u180b\u180c\u180d\u180f")
_BLANK_LINES = re.compile(r"\n[ \t]*\n([ \t]*\n)+")


def visible(text: str) -> str:
    """Controls other than LF and TAB as \\xNN / \\uNNNN, so nothing hidden reaches the page."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                       else f"\\u{ord(m.group()):04x}", text.replace("\r\n", "\n").replace("\r", "\n"))


def shown_name(text: str, limit: int = NAME_MAX) -> str:
    """A name as text that hides nothing: every character that does not print on its own
    (controls, format characters such as bidi overrides and zero-width ones, spaces other than
    " ", lone surrogates, blank fillers) as \\xNN / \\uNNNN; longer than `limit`, its start, "\u2026"
    and its end, so the extension still shows."""
    if len(text) > limit:
        tail = limit // 3
        text = text[:limit - tail - 1] + "\u2026" + text[-tail:]
    if text.isprintable() and _BLANK.isdisjoint(text):
        return text
    return "".join(c if c.isprintable() and c not in _BLANK else escaped(ord(c)) for c in text)


@dataclasses.dataclass(frozen=True)
class PartView:
    content_type: str
    filename: str
    size: int
    text: str | None              # None: not shown (not text)
    converted: bool = False       # HTML reduced to text
    cut: bool = False


@dataclasses.dataclass(frozen=True)
class View:
    headers: str
    parts: tuple[PartView, ...]


# HTML read in one pass, every character looked at a bounded number of times: html.parser
# rescans an unfinished construct from its start, so 240 kB of "<a b='" took 86 s of CPU (the
# GIL held, every page of the server waiting) when a recipient opened the message.
_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript", "svg", "math", "object",
                   "iframe"})
# raw text: no markup inside, only the element's own end tag ends it (HTML's script data)
_RAW = frozenset({"script", "style", "title", "noscript", "iframe", "xmp", "noembed", "noframes"})
_RAW_END = {name: re.compile(rf"</{name}(?=[\s/>])", re.I) for name in _RAW}
_BLOCK = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote",
                    "section", "article", "header", "footer", "hr", "pre", "ul", "ol", "dl", "dt", "dd"})
# A tag: its name, then attributes where only a quote right after "=" opens a value (as HTML
# reads them) and the first ">" outside one ends it. Possessive: a tag with no end fails at once.
_TAG = re.compile(r"""<(/?)([A-Za-z][^\s/>]*+)((?:=\s*+(?:"[^"]*+"|'[^']*+')|[^>=]++|=)*+)>""")
_TAG_START = re.compile(r"</?[A-Za-z]")
_ALT = re.compile(r"""(?:^|[\s/])alt\s*+=\s*+(?:"([^"]*+)"|'([^']*+)'|([^\s>]++))""", re.I)


def html_to_text(markup: str) -> str:
    """The text an HTML part would show, in time linear in its length: script, style and head
    contents dropped, an image as its alt text; what a browser would swallow (a tag, comment
    or script never closed) swallows the rest here too."""
    out: list[str] = []
    skipping = 0
    pos, n = 0, len(markup)
    while pos < n:
        lt = markup.find("<", pos)
        if lt < 0:
            lt = n
        if lt > pos and not skipping:
            out.append(html.unescape(markup[pos:lt]))
        if lt >= n:
            break
        pos = lt
        if markup.startswith("<!--", pos):
            end = markup.find("-->", pos + 4)
            if end < 0:
                break
            pos = end + 3
            continue
        m = _TAG.match(markup, pos)
        if m is None:
            if _TAG_START.match(markup, pos):
                break                     # a tag never ended: the rest is inside it
            if markup[pos + 1:pos + 2] in ("!", "?", "/"):
                end = markup.find(">", pos + 1)     # a declaration, processing instruction or bogus comment
                if end < 0:
                    break
                pos = end + 1
                continue
            if not skipping:
                out.append("<")
            pos += 1
            continue
        pos = m.end()
        closing, name = m.group(1) == "/", m.group(2).lower()
        if closing:
            if name in _SKIP:
                skipping = max(0, skipping - 1)
            elif name in _BLOCK:
                out.append("\n")
            continue
        if name in _RAW:
            end = _RAW_END[name].search(markup, pos)
            if end is None:
                break
            close = markup.find(">", end.end())
            pos = n if close < 0 else close + 1
            continue
        if name in _SKIP:
            skipping += 1
        elif name in _BLOCK:
            out.append("\n")
        elif name == "img" and not skipping:
            alt = _ALT.search(m.group(3))
            if alt and (value := html.unescape(next(g for g in alt.groups() if g is not None))):
                out.append(f"[image: {value}]")
    text = "".join(out)
    text = "\n".join(" ".join(line.split()) for line in text.splitlines())
    return _BLANK_LINES.sub("\n\n", text).strip()


def _decoded(part: email.message.Message) -> str:
    payload = part.get_payload(decode=True) or b""
    # only real codec names reach Python's codec cache (owlery.charsets); email's own
    # get_content_charset lower-cases the label and asks nothing of codecs
    charset = codec_name(part.get_content_charset() or "utf-8") or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except (LookupError, UnicodeError):
        return payload.decode("utf-8", "replace")


def _filename(part: email.message.Message) -> str:
    """The part's file name as email's get_filename gives it, but an RFC 2231 charset label
    (`filename*=x-label''...`) reaches Python's codecs only under its real codec name; a label
    that names none is read as UTF-8, as the text parts are (`_decoded`)."""
    missing = object()
    value = part.get_param("filename", missing, "content-disposition")
    if value is missing:
        value = part.get_param("name", missing, "content-type")
    if value is missing:
        return ""
    if isinstance(value, tuple) and len(value) == 3:
        value = (codec_name(value[0] or "us-ascii") or "utf-8", value[1], value[2])
    name = email.utils.collapse_rfc2231_value(value).strip()
    if "=?" in name and len(name) <= 2000:
        # RFC 2047 words in a parameter break RFC 2047 section 5, but mail programs decode them
        # and show the result: so does this page, or "=?utf-8?B?ZXZpbC5leGU=?=" hides "evil.exe"
        try:
            name = decode_header_text(name)
        except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError):
            pass
    return name


def _walk(msg: email.message.Message) -> Iterator[tuple[email.message.Message, int]]:
    """(part, depth) in document order, with an explicit stack (email's walk recurses)."""
    stack = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        yield part, depth
        children = part.get_payload() if part.is_multipart() and depth < MAX_DEPTH else None
        if isinstance(children, list):
            stack.extend((child, depth + 1) for child in reversed(children))


def view(message: bytes, text_max: int = 256 * 1024) -> View:
    """What the web shows of `message`."""
    head = message.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0][:MAX_HEADER_BYTES]
    headers = visible(head.decode("utf-8", "replace"))
    try:
        msg = email.message_from_bytes(message, policy=email.policy.compat32)
    except RecursionError:        # email's parser recurses once per level (1000 levels: 60 kB)
        return View(headers, (PartView("", "", 0, "(MIME parts nested too deeply to show)"),))
    parts: list[PartView] = []
    for i, (part, depth) in enumerate(_walk(msg)):
        if i >= MAX_PARTS:
            parts.append(PartView("", "", 0, f"(more than {MAX_PARTS} parts; the rest not shown)"))
            break
        if part.is_multipart():
            if depth >= MAX_DEPTH:
                parts.append(PartView("", "", 0, f"(parts nested more than {MAX_DEPTH} levels deep not shown)"))
            continue
        ctype = part.get_content_type()
        try:
            filename = _filename(part)
        except (ValueError, LookupError, UnicodeError):
            filename = "(undecodable name)"
        raw = part.get_payload(decode=True) or b""
        disposition = part.get_content_disposition() or ""     # str even for an 8-bit header
        if ctype in ("text/plain", "text/html") and disposition != "attachment":
            text = _decoded(part)
            converted = ctype == "text/html"
            if converted:
                text = html_to_text(text)
            cut = len(text) > text_max
            parts.append(PartView(shown_name(ctype), shown_name(filename), len(raw), visible(text[:text_max]),
                                  converted, cut))
        else:
            parts.append(PartView(shown_name(ctype), shown_name(filename), len(raw), None))
    return View(headers, tuple(parts))
