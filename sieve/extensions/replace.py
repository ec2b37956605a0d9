"""replace (RFC 5703 5): replace the message body with new text, optionally with a new
Subject and From (the old ones kept as Original-Subject / Original-From).

Without :mime the replacement becomes a text/plain; charset=utf-8 body; with :mime it is a
MIME entity (its header fields, then an empty line, then its body) whose fields replace the
message's Content-* fields. Other header fields stay. The edited message is what later tests
and actions see, and what keep/fileinto/redirect asked for afterwards store or send
(sieve.message.Message.snapshot); actions asked for earlier keep the message as it was.
Inside foreverypart, replace replaces the current MIME part (header and body) and ignores
:subject and :from, which are for the whole message (RFC 5703 5); the loop goes on over the
parts it had listed (a part inside a replaced one is gone: replacing it does nothing). A part
inside an encoded (base64, quoted-printable) message/rfc822 cannot be replaced: a runtime
error. Sizes are charged to the run's memory budget.
Tests: tests/sieve/svtest/replace.svtest, tests/sieve/test_new_extensions.py.
"""

from __future__ import annotations

from sieve.errors import SieveRuntimeError
from sieve.extensions.base import STRING, CommandDef, Extension, TagDef
from sieve.extensions.editheader import _encoded, _folded, _shown, _value_ok


def header_value(rt, what: str, value: str) -> str:
    """A field body for a Subject/From given by the script: UTF-8 without NUL, folded, 8-bit
    text as RFC 2047 encoded words (RFC 5703 5: 'MUST convert ... to encoded words')."""
    if not _value_ok(value):
        raise SieveRuntimeError(f"{what}: the value '{_shown(value)}' is not a valid header value")
    return " " + _encoded(_folded(value))


def set_body(rt, content_fields: list[list[str]], body: bytes) -> None:
    """Give rt.msg new MIME fields and body: the Content-* fields go, the new ones follow
    the other fields, MIME-Version is added when missing."""
    msg = rt.msg
    rt.charge_memory(len(body) + sum(len(k) + len(v) for k, v in content_fields))
    heads = [h for h in msg.headers if not h[0].lower().startswith("content-")]
    if not any(k.lower() == "mime-version" for k, _ in heads):
        heads.append(["MIME-Version", " 1.0"])
    msg.headers = heads + content_fields
    msg.body = body
    msg.edited = True
    msg.body_replaced = True
    msg.invalidate()


def eol_of(rt) -> bytes:
    return b"\r\n" if rt.msg._crlf else b"\n"


def text_bytes(rt, text: str) -> bytes:
    """Script text as body octets, with the message's line ends."""
    eol = eol_of(rt)
    lines = text.replace("\r\n", "\n").split("\n")
    return eol.join(line.encode("utf-8", "surrogateescape") for line in lines)


def _validate(v, node):
    for tag, what in (("subject", "subject"), ("from", "from")):
        arg = node.tags.get(tag)
        if arg is not None and v.is_literal(arg) and not _value_ok(arg.items[0].value):
            v.error(arg, f"replace: the :{what} value is not a valid header value")


def _split_entity(text: str) -> tuple[list[list[str]], str]:
    """A MIME entity (RFC 2045 2.4) as (fields, body); fields are [name, value]."""
    from sieve.message import Message
    m = Message(text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8", "surrogateescape"))
    fields = [[k, v] for k, v in m.headers]
    return fields, m.body.decode("utf-8", "surrogateescape").replace("\r\n", "\n")


def _entity(rt, node, text: str) -> bytes:
    """The replacement as a MIME entity: as given with :mime, else a text/plain part."""
    if node.tags.get("mime"):
        return text_bytes(rt, text)
    eol = eol_of(rt)
    cte = b"7bit" if text.isascii() else b"8bit"
    return (b"Content-Type: text/plain; charset=utf-8" + eol + b"Content-Transfer-Encoding: " + cte + eol + eol
            + text_bytes(rt, text))


def _replace_part(rt, node, part, text: str) -> None:
    """Replace one MIME part inside foreverypart: rewrite its octets in the message."""
    if getattr(part, "gone", False):
        return
    if part.span is None:
        raise SieveRuntimeError("replace: this MIME part is inside an encoded message and cannot be replaced")
    new = _entity(rt, node, text)
    raw = rt.msg.to_bytes()
    s, e = part.span
    rt.charge_memory(len(raw) + len(new))
    from sieve.message import Message
    m = Message(raw[:s] + new + raw[e:], rt.msg.max_scan, rt.msg.max_fields)
    rt.msg.headers = m.headers
    rt.msg.header_rest = m.header_rest
    rt.msg.body = m.body
    rt.msg.edited = True
    rt.msg.body_replaced = True
    rt.msg.invalidate()
    # the loop still holds the parts it listed: move their spans past the edit
    root = part
    while root.parent is not None:
        root = root.parent
    delta = len(new) - (e - s)
    stack = [root]
    while stack:
        q = stack.pop()
        stack.extend(q.children)
        if q is part or q.span is None:
            continue
        qs, qe = q.span
        if qs >= e:
            q.span = (qs + delta, qe + delta)
        elif qs <= s and qe >= e:
            q.span = (qs, qe + delta)
        elif qs >= s:
            q.gone = True
            q.span = None
    part.span = (s, s + len(new))
    part.children = []


def _run(rt, node):
    text = rt.s(node.pos[0])
    rt.step(1 + len(text) // 256)
    cur = rt.ext.get("mime_part")
    if cur is not None and cur.parent is not None:
        _replace_part(rt, node, cur, text)
        return
    new_heads = []
    if "subject" in node.tags:
        subj = header_value(rt, "replace :subject", rt.s(node.tags["subject"]))
        for h in rt.msg.headers:
            if h[0].lower() == "subject":
                h[0] = "Original-Subject"
        new_heads.append(["Subject", subj])
    if "from" in node.tags:
        frm = header_value(rt, "replace :from", rt.s(node.tags["from"]))
        for h in rt.msg.headers:
            if h[0].lower() == "from":
                h[0] = "Original-From"
        new_heads.append(["From", frm])
    rt.msg.headers = new_heads + rt.msg.headers
    if node.tags.get("mime"):
        fields, body = _split_entity(text)
        content = [[k, v] for k, v in fields if k.lower().startswith("content-")]
        if not content:
            content = [["Content-Type", " text/plain; charset=us-ascii"]]
        set_body(rt, content, text_bytes(rt, body))
    else:
        cte = "7bit" if text.isascii() else "8bit"
        set_body(rt, [["Content-Type", " text/plain; charset=utf-8"], ["Content-Transfer-Encoding", " " + cte]],
                 text_bytes(rt, text))


EXTENSION = Extension(
    name="replace",
    commands=(
        CommandDef("replace", positional=(STRING,),
                   tags=(TagDef("mime"), TagDef("subject", STRING), TagDef("from", STRING)),
                   validate=_validate, run=_run),
    ),
)
