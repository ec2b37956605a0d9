"""body (RFC 5173): the body test with :raw, :content and :text transforms.

Reads decoded MIME parts from sieve.message (bounded by sieve_max_message_scan and
sieve_max_mime_parts). Tests: conformance extensions/body/, tests/sieve/test_rfc_fixes.py,
tests/sieve/test_mime_differential.py (against sieve-test, on generated MIME trees),
tests/sieve/test_mime_differential_fixes_s16.py (a multipart without parts).
"""

from __future__ import annotations

from sieve.extensions.base import STRINGLIST, CommandDef, Extension, TagDef
from sieve.message import UNKNOWN_TYPE, raw_text, utf8_text


def _type_matches(part_type: str, want: str) -> bool:
    want = want.lower()
    if want == "":
        return True
    if part_type == UNKNOWN_TYPE:
        return False
    if want.count("/") > 1:
        return False
    if "/" in want:
        return part_type == want
    return part_type.split("/", 1)[0] == want


def body_values(rt, transform: str, types: list[str] | None) -> list[str]:
    msg = rt.msg
    if transform == "raw":
        body = msg.body  # editheader never changes the body
        # the octets as they are: one that is not UTF-8 matches no key (raw_text)
        return [raw_text(body[: rt.settings.sieve_max_message_scan])] if body else []
    parts = msg.mime_parts(rt.settings.sieve_max_mime_parts, rt.settings.sieve_max_mime_depth)
    out = []
    for p in parts:
        rt.step(1 + len(p.body) // 4096)
        if p.mtype.startswith("multipart/"):
            if transform == "content" and types and any(_type_matches(p.mtype, t) for t in types):
                # RFC 5173 5.2: a multipart's own text is its prologue and epilogue
                out.extend(_prologue_epilogue(p))
            continue
        if not p.has_body:
            # no empty line ended its header: there is no body to read (as Pigeonhole)
            continue
        if p.mtype == "message/rfc822":
            if transform == "content" and types and any(_type_matches(p.mtype, t) for t in types):
                sub = [c for c in p.children]
                if sub:
                    out.append(_header_text(sub[0]))
            continue
        if transform == "text":
            if p.mtype.startswith("text/") or p.mtype == "application/xhtml+xml":
                # an empty text part is the value "" (body :text :is "" matches it); HTML reads
                # as plain text (sieve.html_text)
                out.append(p.readable_text())
        else:
            if any(_type_matches(p.mtype, t) for t in types or []):
                # RFC 5173 5.2: :content is the decoded content as it stands, HTML tags and all
                out.append(p.text())
    return out


def _prologue_epilogue(part) -> list[str]:
    """The text before a multipart's first delimiter line, and the text after its close
    delimiter when there is any (as sieve.message.parse_mime found them; UTF-8, octets that are
    not UTF-8 as U+FFFD, as sieve-test reads them). An empty prologue is a value (""), an empty
    or missing epilogue none, as Pigeonhole reads them. A multipart whose body holds delimiter
    lines but no part (only a close delimiter; RFC 2046 5.1.1 wants one part or more) has one
    text, that around the delimiter lines, as extracttext reads it (and sieve-test: one value,
    "" when there is none)."""
    pre = part.prologue if part.prologue is not None else part.body
    if part.delimited and not part.children:
        return [utf8_text(pre + (part.epilogue or b""))]
    out = [utf8_text(pre)]
    if part.epilogue:
        out.append(utf8_text(part.epilogue))
    return out


def _header_text(part) -> str:
    """A message/rfc822 part's own text for :content (RFC 5173 5.2): the header of the message
    it holds, each line ended by CRLF, as it stands (lines that are no fields too, as in an
    encoded message/rfc822, which RFC 2046 5.2.1 does not allow and Pigeonhole reads as is)."""
    if part.head_raw is None:
        return "".join(f"{k}:{v}\r\n" for k, v in part.headers)
    if not part.head_raw:
        return ""
    return "".join(line.removesuffix(b"\r").decode("utf-8", "surrogateescape") + "\r\n"
                   for line in part.head_raw.split(b"\n"))


def _run(rt, node):
    tr = node.tags.get("transform:tag") or node.tags.get("transform") or "text"
    types = rt.sl(node.tags["transform"]) if tr == "content" else None
    values = body_values(rt, tr, types)
    if "spec" not in node.data:
        # RFC 5173 5: the body test does not set match variables
        node.data["spec"] = {
            "cmp": node.tags.get("comparator", "i;ascii-casemap"),
            "mt": node.tags.get("match-type", "is"),
            "rel": node.tags.get("relation"),
            "regex_cache": node.data.get("regex_cache"),
            "no_vars": True,
        }
    return rt.match(node, values, rt.sl(node.pos[0]))


EXTENSION = Extension(
    name="body",
    commands=(
        CommandDef(
            "body",
            arg_names=("key list",),
            kind="test",
            positional=(STRINGLIST,),
            match=True,
            tags=(
                TagDef("raw", group="transform"),
                TagDef("content", STRINGLIST, group="transform"),
                TagDef("text", group="transform"),
            ),
            run=_run,
        ),
    ),
)
