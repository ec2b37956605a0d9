"""enclose (RFC 5703 6): wrap the message in a new one, a multipart/mixed of the given text
(text/plain, UTF-8) and the message itself as a message/rfc822 part.

The new message's Subject is :subject (else the old Subject); the fields named in :headers
are copied from the old message; Date and From are made up (now; the envelope recipient,
whose mailbox this is) unless copied. If enclose runs again, only its text counts: the
message enclosed is still the one before the first enclose (RFC 5703 6). Keep and fileinto
asked for afterwards store the new message (sieve.message.Message.snapshot); redirect sends
whatever the message is when it is asked for. Sizes are charged to the memory budget.
Tests: tests/sieve/svtest/replace.svtest (replace and enclose), tests/sieve/test_new_extensions.py.
"""

from __future__ import annotations

import email.utils
import hashlib

from sieve.errors import SieveRuntimeError
from sieve.extensions.base import STRING, STRINGLIST, CommandDef, Extension, TagDef
from sieve.extensions.editheader import PROTECTED, _name_ok
from sieve.extensions.replace import eol_of, header_value, set_body, text_bytes


def _validate(v, node):
    arg = node.tags.get("headers")
    if arg is not None and v.is_literal(arg):
        for item in arg.items:
            if not _name_ok(item.value):
                v.error(item, f"enclose: '{item.value}' is not a valid header field name")
    arg = node.tags.get("subject")
    if arg is not None and v.is_literal(arg):
        from sieve.extensions.editheader import _value_ok
        if not _value_ok(arg.items[0].value):
            v.error(arg, "enclose: the :subject value is not a valid header value")


def _run(rt, node):
    if rt.ext.get("mime_part") is not None:
        raise SieveRuntimeError("enclose cannot be used inside foreverypart")
    text = rt.s(node.pos[0])
    names = [n.lower() for n in rt.sl(node.tags["headers"])] if "headers" in node.tags else []
    for n in names:
        if not _name_ok(n):
            raise SieveRuntimeError(f"enclose: '{n}' is not a valid header field name")
    inner = rt.ext.get("enclosed")
    if inner is None:
        # RFC 5703 6: a later enclose replaces the text, not wrapping twice
        inner = rt.ext["enclosed"] = (rt.msg.to_bytes(), [list(h) for h in rt.msg.headers])
    raw, old_headers = inner
    rt.step(1 + (len(raw) + len(text)) // 1024)
    rt.charge_memory(len(raw) + len(text) + 512)
    heads: list[list[str]] = [list(h) for h in old_headers if h[0].lower() in names
                              and not h[0].lower().startswith("content-") and h[0].lower() != "mime-version"]
    have = {h[0].lower() for h in heads}
    if "subject" in node.tags:
        heads = [h for h in heads if h[0].lower() != "subject"]
        heads.append(["Subject", header_value(rt, "enclose :subject", rt.s(node.tags["subject"]))])
    elif "subject" not in have:
        heads += [list(h) for h in old_headers if h[0].lower() == "subject"][:1]
    if "date" not in have:
        heads.append(["Date", " " + email.utils.format_datetime(rt.now)])
    if "from" not in have:
        heads.append(["From", " <" + (rt.envelope.rcpt_to or "MAILER-DAEMON") + ">"])
    # the trace and loop-detection fields of the delivery stay on the outer message
    heads = [h for h in old_headers if h[0].lower() in PROTECTED] + heads
    eol = eol_of(rt)
    boundary = "=_owlery-enclose-" + hashlib.sha256(raw + text.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    b = boundary.encode()
    body = eol.join([
        b"This is a MIME-encapsulated message.", b"",
        b"--" + b,
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Transfer-Encoding: " + (b"7bit" if text.isascii() else b"8bit"), b"",
        text_bytes(rt, text),
        b"--" + b,
        b"Content-Type: message/rfc822", b"",
        raw,
        b"--" + b + b"--", b""])
    rt.msg.headers = heads
    rt.msg.header_rest = b""    # fields past sieve_max_header_fields are inside the enclosed message
    set_body(rt, [["Content-Type", f' multipart/mixed; boundary="{boundary}"']], body)


EXTENSION = Extension(
    name="enclose",
    commands=(
        CommandDef("enclose", positional=(STRING,),
                   tags=(TagDef("subject", STRING), TagDef("headers", STRINGLIST)),
                   validate=_validate, run=_run),
    ),
)
