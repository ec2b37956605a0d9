"""A quarantined message made safe to show: its header lines as text, its text parts, HTML reduced to text.

Sans-I/O: message bytes in, plain text values out (the templates escape them). Nothing of
the message is ever served as markup or as a file: text/plain parts are decoded to text,
text/html parts are stripped to their text (script, style and head contents dropped, no
URL fetched: images and links show as their alt text and URL text), every other part is
listed by type, name and size only. Controls (but newline and tab), bidirectional overrides
and other display tricks become visible escapes. Walks at most MAX_PARTS parts and cuts each
text to `text_max` characters.
Talks to: nothing. Tests: tests/web/test_mailview.py
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import email.utils
import html.parser
import re

from owlery.charsets import codec_name

MAX_PARTS = 100
MAX_HEADER_BYTES = 64 * 1024
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_BLANK_LINES = re.compile(r"\n[ \t]*\n([ \t]*\n)+")


def visible(text: str) -> str:
    """Controls other than LF and TAB as \\xNN / \\uNNNN, so nothing hidden reaches the page."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                       else f"\\u{ord(m.group()):04x}", text.replace("\r\n", "\n").replace("\r", "\n"))


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


class _TextOfHTML(html.parser.HTMLParser):
    """Collects the text an HTML part would show; drops what it would not (script, style, head)."""

    SKIP = {"script", "style", "head", "title", "template", "noscript", "svg", "math", "object", "iframe"}
    BLOCK = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote",
             "section", "article", "header", "footer", "hr", "pre", "ul", "ol", "dl", "dt", "dd"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCK:
            self.out.append("\n")
        elif tag == "img" and not self.skipping:
            alt = dict(attrs).get("alt")
            if alt:
                self.out.append(f"[image: {alt}]")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(data)


def html_to_text(markup: str) -> str:
    parser = _TextOfHTML()
    try:
        parser.feed(markup)
        parser.close()
    except (AssertionError, ValueError):      # malformed beyond what the parser mends
        pass
    text = "".join(parser.out)
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
    return email.utils.collapse_rfc2231_value(value).strip()


def view(message: bytes, text_max: int = 256 * 1024) -> View:
    """What the web shows of `message`."""
    head = message.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0][:MAX_HEADER_BYTES]
    headers = visible(head.decode("utf-8", "replace"))
    msg = email.message_from_bytes(message, policy=email.policy.compat32)
    parts: list[PartView] = []
    for i, part in enumerate(msg.walk()):
        if i >= MAX_PARTS:
            parts.append(PartView("", "", 0, f"(more than {MAX_PARTS} parts; the rest not shown)"))
            break
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        try:
            filename = _filename(part)
        except (ValueError, LookupError, UnicodeError):
            filename = "(undecodable name)"
        raw = part.get_payload(decode=True) or b""
        disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        if ctype in ("text/plain", "text/html") and disposition != "attachment":
            text = _decoded(part)
            converted = ctype == "text/html"
            if converted:
                text = html_to_text(text)
            cut = len(text) > text_max
            parts.append(PartView(ctype, visible(filename), len(raw), visible(text[:text_max]), converted, cut))
        else:
            parts.append(PartView(ctype, visible(filename), len(raw), None))
    return View(headers, tuple(parts))
