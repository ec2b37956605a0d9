"""Differential test of MIME-structure-dependent Sieve behaviour against Pigeonhole's sieve-test
(Debian dovecot-sieve): seeded generated MIME trees (nested multipart/mixed, alternative, related,
digest with implicit message/rfc822 parts, message/rfc822 attachments with their own multiparts,
parts without Content-Type, odd charset parameters, RFC 2231 parameters, Content-Disposition
filename beside Content-Type name, missing, duplicated and prefix boundaries, preambles and
epilogues, CRLF and LF, base64/quoted-printable/8bit with broken padding, non-UTF-8 charsets, empty
parts, deep nesting) each run with one of a fixed set of probe SCRIPTS (body :raw/:content/:text,
header/address/exists :mime with :type/:subtype/:contenttype/:param/:anychild, foreverypart nested
and named with break :name, extracttext with :first and modifiers, size). What each engine's tests
saw comes back as URL-encoded (`set :encodeurl`) header fields the script adds after its loops
(Pigeonhole loses the current part after an addheader inside foreverypart), so values compare
exactly; actions (keep, fileinto) compare through tests/sieve/differential/normalise.py.

A difference must be explained by Pigeonhole departures from RFC 5173/5703/2045/2046/2231: the
precise entries of tests/sieve/differential/deviations.toml (those whose transform re-runs Owlery
as Pigeonhole reads the message) and this file's own re-running transforms (Peer.explain), then
this file's DEVIATIONS, which normalise only the observations they concern. Owlery runs with
Dovecot's MIME nesting limit (100) instead of its default 32. Without sieve-test the differential
test fails, as tests/sieve/differential/test_differential.py does. By hand:
`.venv/bin/python -m tests.sieve.test_mime_differential [PAIRS] [SEED]` prints the differences.
The fixes it found have sieve-test-free regression tests at the end of this file, with bounds on
hostile MIME structure (sieve.message.parse_mime).
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import dataclasses
import itertools
import os
import quopri
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.sieve.differential import normalise, pigeonhole
from tests.sieve.differential.generator import Case
from tests.sieve.differential.runner import FOLDERS, TRANSFORMS, _ph_anychild_parts, load_deviations, \
    owlery_settings, run_owlery, scratch_dir

SEED = 20261207
PAIRS = 200

# --- the message generator ---------------------------------------------------------------------

# words a part's text is made of; "tokN" marks the N-th leaf so a body probe tells which parts it read
_WORDS = ("alpha", "beta", "gamma", "delta", "caf\u00e9", "na\u00efve", "\u20acuro", "\u041f\u0440\u0438\u0432\u0435\u0442",
          "=3D", "a=b", "boundary", "From: x", "--", "tab\there")
# (no UTF-16: Pigeonhole reads UTF-16 text as UTF-8, a charset matter, not one of MIME structure)
_CHARSETS = ("utf-8", "UTF-8", '"utf-8"', "Utf-8", "us-ascii", "iso-8859-1", '"ISO-8859-1"', "windows-1252",
             "koi8-r", "x-unknown", "", "latin1", "shift_jis")
_LEAF_TYPES = ("text/plain", "Text/PLAIN", "text/html", "application/octet-stream", "image/png", "text/x-odd",
               "application/pdf", "TEXT/plain")
_MULTI = ("mixed", "alternative", "related", "digest", "Mixed", "x-unknown", "parallel")


@dataclasses.dataclass
class Gen:
    r: random.Random
    eol: str
    leaves: int = 0
    features: set = dataclasses.field(default_factory=set)
    max_depth: int = 4

    def feat(self, name: str) -> None:
        self.features.add(name)


def _text(g: Gen) -> str:
    n = g.leaves
    g.leaves += 1
    words = [f"tok{n}"] + [g.r.choice(_WORDS) for _ in range(g.r.randint(0, 4))]
    lines, cur = [], []
    for w in words:
        cur.append(w)
        if g.r.random() < 0.3:
            lines.append(" ".join(cur))
            cur = []
    lines.append(" ".join(cur))
    return g.eol.join(lines) + (g.eol if g.r.random() < 0.85 else "")


def _charset_param(g: Gen) -> tuple[str, str]:
    """(the parameter as written, the charset the text is encoded in)."""
    cs = g.r.choice(_CHARSETS)
    name = g.r.choice(("charset", "charset", "CHARSET", "CharSet"))
    label = cs.strip('"').lower()
    k = g.r.random()
    if k < 0.06:
        g.feat("charset-2231")
        return f"{name}*=''{label or 'utf-8'}", label or "utf-8"
    if k < 0.1:
        g.feat("charset-spaced")
        return f"{name} = {cs or 'utf-8'}", label or "utf-8"
    if k < 0.13:
        g.feat("charset-twice")
        return f"{name}={cs or 'utf-8'}; {name}=iso-8859-1", label or "utf-8"
    if label != "utf-8":
        g.feat("charset-" + (label or "empty"))
    return f"{name}={cs}", label


def _encode_text(text: str, label: str, g: Gen) -> bytes:
    codec = {"x-unknown": "utf-8", "": "utf-8", "us-ascii": "utf-8", "latin1": "iso-8859-1"}.get(label, label)
    if g.r.random() < 0.05:
        g.feat("mislabelled")
        codec = "iso-8859-1" if codec == "utf-8" else "utf-8"
        # ending in ASCII: Pigeonhole carries the octets of a character cut at a part's end
        # over into the next part (test_decoding_differential's held-octets-leak-into-next-part)
        text += " end" + g.eol
    return text.encode(codec, "replace")


def _cte(g: Gen, raw: bytes) -> tuple[str | None, bytes]:
    """(Content-Transfer-Encoding as written or None, the encoded body)."""
    eol = g.eol.encode()
    enc = g.r.choice((None, None, "7bit", "8bit", "base64", "Base64", "quoted-printable", "QUOTED-PRINTABLE",
                      "binary", "x-uuencode"))
    if enc is None or enc in ("7bit", "8bit", "binary", "x-uuencode"):
        if enc:
            g.feat("cte-" + enc)
        return enc, raw.replace(b"\r\n", b"\n").replace(b"\n", eol)
    if enc.lower() == "base64":
        b = base64.b64encode(raw)
        k = g.r.random()
        if k < 0.1:
            b = b.rstrip(b"=")
            g.feat("b64-nopad")
        elif k < 0.15:
            b = b[:-1] if len(b) > 4 else b
            g.feat("b64-truncated")
        elif k < 0.2:
            b = b[:4] + b"!*" + b[4:]
            g.feat("b64-garbage")
        elif k < 0.25:
            b = b + b"=="
            g.feat("b64-overpad")
        g.feat("cte-base64")
        width = g.r.choice((76, 76, 8, 3))
        return enc, eol.join(b[i:i + width] for i in range(0, len(b), width)) + eol
    g.feat("cte-qp")
    body = quopri.encodestring(raw.replace(b"\r\n", b"\n"))
    k = g.r.random()
    if k < 0.1:
        body += b"=ZZ bad=4"
        g.feat("qp-bad-escape")
    elif k < 0.15:
        body = body.rstrip(b"\n") + b"="
        g.feat("qp-trailing-equals")
    elif k < 0.2:
        body = body.replace(b" ", b"  \t", 1) + b"soft=\n" + b"line   \n"
        g.feat("qp-soft-break")
    return enc, body.replace(b"\n", eol)


def _name_params(g: Gen) -> tuple[str, str]:
    """(Content-Type name parameter text or "", Content-Disposition parameters or "")."""
    ct, cd = "", ""
    r = g.r
    if r.random() < 0.35:
        k = r.random()
        if k < 0.25:
            ct = f'; name="rep{r.randint(0, 9)}.txt"'
        elif k < 0.45:
            ct = "; name*=UTF-8''caf%C3%A9.txt"
            g.feat("name-2231")
        elif k < 0.6:
            ct = '; name*0="part"; name*1="ed.txt"'
            g.feat("name-2231-sections")
        elif k < 0.7:
            ct = "; name*0*=iso-8859-1''caf%E9; name*1=.txt"
            g.feat("name-2231-latin1")
        elif k < 0.8:
            ct = '; name="=?utf-8?q?caf=C3=A9?=.txt"'
            g.feat("name-2047")
        else:
            ct = "; NAME=plain.txt"
    if r.random() < 0.35:
        disp = r.choice(("attachment", "inline", "Attachment", "form-data"))
        k = r.random()
        if k < 0.3:
            cd = f'{disp}; filename="file{r.randint(0, 9)}.bin"'
        elif k < 0.45:
            cd = f"{disp}; filename*=utf-8''na%C3%AFve.bin"
            g.feat("filename-2231")
        elif k < 0.55:
            cd = f'{disp}; filename*0="a"; filename*1="b"; filename*3="d"'
            g.feat("filename-2231-gap")
        elif k < 0.65:
            cd = f'{disp}; filename="one.bin"; filename="two.bin"'
            g.feat("filename-twice")
        elif k < 0.75:
            cd = f'{disp}; FileName="q\\"uoted.bin"'
            g.feat("filename-escaped-quote")
        else:
            cd = disp
        g.feat("disposition")
    return ct, cd


def _leaf(g: Gen) -> tuple[list[str], bytes]:
    r = g.r
    heads = []
    text = _text(g)
    mtype = r.choice(_LEAF_TYPES)
    name_ct, cd = _name_params(g)
    label = "us-ascii"
    k = r.random()
    if k < 0.1:
        g.feat("no-content-type")
    elif k < 0.14:
        heads.append("Content-Type: " + r.choice(("text", "garbage", "text/plain/extra", "", "/plain")) + name_ct)
        g.feat("bad-content-type")
    else:
        params = ""
        if mtype.lower().startswith("text/") and r.random() < 0.8:
            p, label = _charset_param(g)
            params += "; " + p
        if mtype.lower() == "text/html":
            text = f"<html><body><p>{text.strip()}</p></body></html>"
        if r.random() < 0.08:
            params += " (a comment)"
            g.feat("ct-comment")
        heads.append(f"Content-Type: {mtype}{params}{name_ct}")
    raw = _encode_text(text, label, g)
    enc, body = _cte(g, raw)
    if enc:
        heads.append(f"Content-Transfer-Encoding: {enc}")
    if cd:
        heads.append(f"Content-Disposition: {cd}")
    if r.random() < 0.2:
        heads.append(f"Content-Description: d{g.leaves - 1} =?utf-8?q?caf=C3=A9?=")
    if r.random() < 0.12:
        heads.append(f"From: Part {g.leaves - 1} <p{g.leaves - 1}@example.com>")
        g.feat("part-from")
    if r.random() < 0.05:
        heads, body = [], b""
        g.feat("empty-part")
    if r.random() < 0.05 and heads:
        body = b""
        g.feat("empty-body")
    r.shuffle(heads)
    return heads, body


def _boundary(g: Gen, depth: int, outer: str | None) -> str:
    r = g.r
    k = r.random()
    if outer is not None and k < 0.15:
        g.feat("boundary-prefix")
        return outer + r.choice(("x", "-", "--", "_1"))
    if outer is not None and k < 0.2 and len(outer) > 3:
        g.feat("boundary-prefix-of-outer")
        return outer[:-1]
    return f"b{depth}_{r.randint(0, 999)}" + r.choice(("", "", "=_q", "'()+_,-./:=?", " sp"))


def _multipart(g: Gen, depth: int, outer: str | None) -> tuple[list[str], bytes]:
    r = g.r
    sub = r.choice(_MULTI)
    g.feat("multipart-" + sub.lower())
    boundary = _boundary(g, depth, outer)
    eol = g.eol
    k = r.random()
    quoted = '"' + boundary + '"'
    if k < 0.04:
        ct = f"multipart/{sub}"
        g.feat("multipart-no-boundary")
    elif k < 0.07:
        ct = f"multipart/{sub}; boundary={quoted[:-1]}zz\""
        g.feat("multipart-unused-boundary")
    elif k < 0.1:
        ct = f"multipart/{sub}; boundary*0={quoted}"
        g.feat("boundary-2231")
    else:
        bname = r.choice(("boundary", "boundary", "Boundary", "BOUNDARY"))
        plain = r.random() >= 0.7 and re.fullmatch(r"[\w.-]+", boundary)
        ct = f"multipart/{sub}; {bname}={boundary if plain else quoted}"
        if sub == "related" and r.random() < 0.5:
            ct += '; type="text/html"; start="<x@y>"'
    heads = [f"Content-Type: {ct}"]
    out = []
    if r.random() < 0.3:
        out.append(f"preamble text {r.choice(_WORDS)}{eol}".encode())
        g.feat("preamble")
    n = r.randint(0, 4) if r.random() < 0.1 else r.randint(1, 3)
    if n == 0:
        g.feat("multipart-no-parts")
    for _ in range(n):
        if sub.lower() == "digest" and r.random() < 0.6:
            g.feat("digest-implicit")
            ph, pb = [], _rfc822_text(g, depth + 1, boundary)
            if r.random() < 0.3:
                ph = ["Content-Type: message/rfc822"]
        else:
            ph, pb = _entity(g, depth + 1, boundary)
        pad = r.choice(("", "", "", " ", "\t "))
        if pad:
            g.feat("boundary-padding")
        out.append(f"--{boundary}{pad}{eol}".encode() + "".join(h + eol for h in ph).encode("utf-8") + eol.encode()
                   + pb)
        if not pb.endswith(eol.encode()) and pb:
            out.append(eol.encode())
        if r.random() < 0.04:
            out.append(f"--{boundary}{eol}".encode())
            g.feat("boundary-duplicated")
    k = r.random()
    if k < 0.1:
        g.feat("final-boundary-missing")
    elif k < 0.13:
        out.append(f"--{boundary}--".encode())
        g.feat("final-boundary-no-eol")
    else:
        out.append(f"--{boundary}--{eol}".encode())
        if r.random() < 0.2:
            out.append(f"epilogue text {r.choice(_WORDS)}{eol}".encode())
            g.feat("epilogue")
        if r.random() < 0.04:
            out.append(f"--{boundary}{eol}Content-Type: text/plain{eol}{eol}after close{eol}".encode())
            g.feat("part-after-close")
    return heads, b"".join(out)


def _rfc822_text(g: Gen, depth: int, outer: str | None) -> bytes:
    r = g.r
    eol = g.eol
    heads = [f"From: Inner {depth} <inner{depth}@example.org>", f"Subject: inner {depth}"]
    if r.random() < 0.7:
        heads.append("MIME-Version: 1.0")
    if depth < g.max_depth and r.random() < 0.6:
        mh, body = _multipart(g, depth, outer)
    else:
        mh, body = _leaf(g)
    return (eol.join(heads + mh) + eol + eol).encode("utf-8") + body


def _entity(g: Gen, depth: int, outer: str | None) -> tuple[list[str], bytes]:
    k = g.r.random()
    if depth < g.max_depth and k < 0.35:
        return _multipart(g, depth, outer)
    if depth < g.max_depth and k < 0.47:
        g.feat("message-rfc822")
        heads = ["Content-Type: " + g.r.choice(("message/rfc822", "Message/RFC822", "message/rfc822; x=y"))]
        body = _rfc822_text(g, depth + 1, outer)
        if g.r.random() < 0.15:
            g.feat("rfc822-base64")
            heads.append("Content-Transfer-Encoding: base64")
            b = base64.b64encode(body)
            body = g.eol.encode().join(b[i:i + 76] for i in range(0, len(b), 76)) + g.eol.encode()
        return heads, body
    return _leaf(g)


def _deep(g: Gen, levels: int) -> tuple[list[str], bytes]:
    """A chain of `levels` nested multipart/mixed with a text leaf at the bottom."""
    g.feat("deep")
    eol = g.eol
    heads, body = _leaf(g)
    for d in range(levels):
        b = f"d{d}"
        body = (f"--{b}{eol}".encode() + "".join(h + eol for h in heads).encode() + eol.encode() + body
                + f"{eol}--{b}--{eol}".encode())
        heads = [f'Content-Type: multipart/mixed; boundary="{b}"']
    return heads, body


def make_message(seed: int, index: int) -> tuple[bytes, frozenset[str]]:
    r = random.Random(f"{seed}:{index}:mime")
    g = Gen(r, "\r\n" if r.random() < 0.7 else "\n")
    if g.eol == "\n":
        g.feat("lf")
    g.max_depth = r.choice((2, 3, 4, 4, 5))
    k = r.random()
    if k < 0.04:
        mh, body = _deep(g, r.choice((12, 30, 31, 32, 33, 40)))
    elif k < 0.12:
        mh, body = _leaf(g)
    else:
        mh, body = _multipart(g, 0, None)
    heads = ["From: Sender <sender@example.com>", "To: r@example.org", f"Subject: mime {index}",
             f"Message-ID: <m{index}@example.com>"]
    if r.random() < 0.9:
        heads.append("MIME-Version: 1.0")
    msg = (g.eol.join(heads + mh) + g.eol + g.eol).encode("utf-8") + body
    return msg, frozenset(g.features)


# --- the probe scripts -------------------------------------------------------------------------

_REQ = ('require ["variables", "editheader", "foreverypart", "mime", "extracttext", "body", "fileinto", '
        '"relational", "comparator-i;ascii-numeric", "regex", "enotify"];\r\n')


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _show(name: str, var: str) -> str:
    return f'set :encodeurl "{var}" "${{{var}}}"; addheader "X-M-{name}" "${{{var}}}";\r\n'


_BODY_KEYS = tuple(f"tok{i}" for i in range(12)) + (
    "preamble", "epilogue", "From: x", "Inner", "Content-Type", "caf\u00e9", "\ufffd", "=3D", "boundary",
    "\u20acuro", "<p>", "\u041f\u0440\u0438", "tab\there", "--")
_BODY_TRANSFORMS = (("R", ":raw"), ("T", ":text"), ("C", ':content "text"'), ("M", ':content "multipart"'),
                    ("E", ':content ""'), ("F", ':content "message/rfc822"'), ("H", ':content "text/html"'),
                    ("A", ':content "application"'), ("P", ':content ["image/png", "text/plain"]'),
                    ("X", ':content "message"'))


def script_body() -> str:
    out = [_REQ, 'set "b" "";\r\n']
    for code, tr in _BODY_TRANSFORMS:
        for i, key in enumerate(_BODY_KEYS):
            out.append(f'if body {tr} :contains {_q(key)} {{ set "b" "${{b}}{code}{i},"; }}\r\n')
        out.append(f'if body {tr} :is "" {{ set "b" "${{b}}{code}empty,"; }}\r\n')
        # (not "*tok?*": Pigeonhole 0.5.19's :matches mishandles "?*" at a value's end, and
        # sieve-test panics on `string :matches "tok" "tok?*"`)
        out.append(f'if body {tr} :matches "*t?k*" {{ set "b" "${{b}}{code}m,"; }}\r\n')
        out.append(f'if body {tr} :regex "^tok[0-9]+" {{ set "b" "${{b}}{code}r,"; }}\r\n')
        out.append(f'if body {tr} :regex "alpha$" {{ set "b" "${{b}}{code}$,"; }}\r\n')
    out.append(_show("B", "b"))
    return "".join(out)


# the part-level observations of the walk scripts: (code, test); each true test appends the code
# and the value ${0} it matched. A :param test matches "?*", not "*": Pigeonhole 0.5.19 gives a
# part without the parameter a value "" that "*" matches (deviations.toml's
# pigeonhole-absent-mime-param); "?*" reads the parameters there are, in both engines
_PART_TESTS = (
    ("t", 'header :mime :type :matches "Content-Type" "*"'),
    ("s", 'header :mime :subtype :matches "Content-Type" "*"'),
    ("c", 'header :mime :contenttype :matches "Content-Type" "*"'),
    ("cs", 'header :mime :param "charset" :matches "Content-Type" "?*"'),
    ("bo", 'header :mime :param "boundary" :matches "Content-Type" "?*"'),
    ("n", 'header :mime :param "name" :matches "Content-Type" "?*"'),
    ("fn", 'header :mime :param "filename" :matches "Content-Disposition" "?*"'),
    ("dt", 'header :mime :type :matches "Content-Disposition" "*"'),
    ("de", 'header :mime :matches "Content-Description" "*"'),
    ("fr", 'address :mime :all :matches "From" "*"'),
    ("fd", 'address :mime :domain :matches "From" "*"'),
)
_PART_FLAGS = (
    ("X", 'exists :mime "Content-Type"'),
    ("U", 'header :mime :subtype "Content-Type" ["html", "plain"]'),
    ("S", 'header :mime :type :is "Content-Type" ""'),
    ("N", 'header :mime :param "filename" :count "ge" :comparator "i;ascii-numeric" "Content-Disposition" "2"'),
)


# the :anychild flags, written between two "#" (the deviation pigeonhole-anychild-headerless-or-digest
# drops them where Pigeonhole's :anychild is known to read other parts)
_ANYCHILD_FLAGS = (
    ("Y", 'exists :mime :anychild "Content-Disposition"'),
    ("Z", 'header :mime :anychild :contenttype "Content-Type" "text/plain"'),
    ("W", 'header :mime :anychild :type "Content-Type" "multipart"'),
    ("V", 'header :mime :anychild :param "filename" :contains "Content-Disposition" "bin"'),
    ("Q", 'address :mime :anychild :domain :is "From" "example.com"'),
)


def _part_probe(var: str) -> str:
    out = []
    for code, test in _PART_TESTS:
        out.append(f'if {test} {{ set :encodeurl "v" "${{0}}"; set "{var}" "${{{var}}}{code}=${{v}};"; }} ')
    for code, test in _PART_FLAGS:
        out.append(f'if {test} {{ set "{var}" "${{{var}}}{code}"; }} ')
    out.append(f'set "{var}" "${{{var}}}#"; ')
    for code, test in _ANYCHILD_FLAGS:
        out.append(f'if {test} {{ set "{var}" "${{{var}}}{code}"; }} ')
    out.append(f'set "{var}" "${{{var}}}#"; ')
    return "".join(out)


def script_walk() -> str:
    """Every part foreverypart visits, with what the mime tests read of it, and its extracttext."""
    return (_REQ + 'set "w" "";\r\n'
            'foreverypart {\r\n set "w" "${w}|";\r\n ' + _part_probe("w") + "\r\n"
            ' extracttext "x"; set :length "l" "${x}"; set :encodeurl "x" "${x}"; set "w" "${w}L${l}:${x}";\r\n'
            "}\r\n" + _show("W", "w"))


def script_top() -> str:
    """The mime tests at the top level (the message itself, :anychild over every part)."""
    # the sizes first: the fields added later differ where Pigeonhole's :anychild does
    return (_REQ + 'set "z" "";\r\n'
            + 'if size :over 2K { set "z" "${z}over2k,"; }\r\n'
            + 'if size :under 400 { set "z" "${z}under400,"; }\r\n'
            + 'if size :over 700 { set "z" "${z}over700,"; }\r\n'
            + 'set "w" "";\r\n' + _part_probe("w") + "\r\n" + _show("T", "w") + _show("Z", "z")
            + 'if header :mime :anychild :contenttype :matches "Content-Type" "*/*" '
              '{ set :encodeurl "v" "${0}"; addheader "X-M-A" "${v}"; }\r\n'
            + 'if header :mime :anychild :param "charset" :matches "Content-Type" "?*" '
              '{ set :encodeurl "v" "${0}"; addheader "X-M-C" "${v}"; }\r\n'
            + 'if header :mime :anychild :param "filename" :regex "Content-Disposition" "^(.*)\\\\.(.*)$" '
              '{ set :encodeurl "v" "${1}/${2}"; addheader "X-M-F" "${v}"; }\r\n'
            + 'if header :mime :anychild :count "ge" :comparator "i;ascii-numeric" "Content-Type" "3" '
              '{ addheader "X-M-K" "many"; }\r\n'
            + 'if header :mime :type "Content-Type" "multipart" { fileinto "Foo"; }\r\n'
            + "keep;\r\n")


def script_nested() -> str:
    """Nested and named foreverypart with break :name: the order of the parts each loop visits.
    Each inner loop is the last command of its block: sieve-test 0.5.19 panics ("sieve-result.c:
    line 1891: unreached") when a command follows an inner foreverypart that visited no part, or
    when an if skips one."""
    return (_REQ + 'set "o" "";\r\n'
            'foreverypart :name "outer" {\r\n'
            ' if header :mime :contenttype :matches "Content-Type" "*" { set "c" "${0}"; } else { set "c" "-"; }\r\n'
            ' set "o" "${o}[${c}";\r\n'
            ' if header :mime :subtype "Content-Type" "digest" { break; }\r\n'
            ' foreverypart :name "inner" {\r\n'
            '  if header :mime :subtype :matches "Content-Type" "*" { set "o" "${o} ${0}"; } else { set "o" "${o} -"; }\r\n'
            '  if header :mime :subtype "Content-Type" "html" { set "o" "${o}!"; break :name "outer"; }\r\n'
            '  if header :mime :param "name" :contains "Content-Type" "ed" { break :name "inner"; }\r\n'
            '  foreverypart { set "o" "${o}~"; break; }\r\n'
            ' }\r\n'
            "}\r\n" + _show("N", "o")
            + 'if string :matches "${o}" "*text/html*" { fileinto "Bar"; }\r\n')


def script_extract() -> str:
    """extracttext with :first and the variables modifiers, per part."""
    return (_REQ + 'set "e" "";\r\n'
            'foreverypart {\r\n'
            ' extracttext :first 12 "a"; extracttext :upper "u"; extracttext :lower :first 5 "lo";\r\n'
            ' extracttext :length "n"; extracttext :quotewildcard "qw";\r\n'
            ' if string :matches "${u}" "TOK*" { set "k" "${1}"; } else { set "k" "-"; }\r\n'
            ' set :encodeurl "a" "${a}"; set :encodeurl "lo" "${lo}"; set :encodeurl "k" "${k}";\r\n'
            ' set :encodeurl "qw" "${qw}";\r\n'
            ' set "e" "${e}|${a}/${lo}/${n}/${k}/${qw}";\r\n'
            ' if header :mime :contenttype "Content-Type" "text/html" {\r\n'
            '  extracttext "h"; if string :contains "${h}" "<" { set "e" "${e}<"; } }\r\n'
            "}\r\n" + _show("E", "e"))


SCRIPTS = {"body": script_body, "walk": script_walk, "top": script_top, "nested": script_nested,
           "extract": script_extract}


def make_case(seed: int, index: int) -> Case:
    message, features = make_message(seed, index)
    names = sorted(SCRIPTS)
    name = names[index % len(names)]
    return Case(seed, index, SCRIPTS[name]().encode("utf-8"), message, "sender@example.com", "r@example.org",
                "r@example.org", features | {"script-" + name})


# --- comparison --------------------------------------------------------------------------------


def seen(outcome: normalise.Outcome) -> list[tuple[str, str]]:
    """The X-M-* fields of the kept or filed message(s), URL-decoded (bad UTF-8 as \\xNN)."""
    out = []
    for target, fields in outcome.headers:
        for name, value in fields:
            if name.startswith("x-m-"):
                raw = urllib.parse.unquote_to_bytes(value)
                out.append((f"{target}:{name}", raw.decode("utf-8", "backslashreplace")))
    return sorted(out)


@dataclasses.dataclass(frozen=True)
class Deviation:
    """A Pigeonhole departure: when the case's message matches `message` (and its script
    `script`), `fix` (field, value) -> value (None: leave the field out) is applied to what both
    engines saw; the pair is explained when that makes them equal."""

    id: str
    reason: str
    fix: Callable[[str, str], str | None]
    message: str = ""
    script: str = ""

    def covers(self, case: Case) -> bool:
        # (the message read as ISO-8859-1: a regex may name 8-bit octets as \x80-\xff)
        return (re.search(self.message, case.message.decode("latin-1"), re.M) is not None
                and re.search(self.script, case.script.decode("utf-8")) is not None)


def _each_part(field: str, value: str, names: tuple[str, ...], fn: Callable[[str], str]) -> str:
    """`value` of an X-M-W/X-M-T/X-M-E field with fn applied to each part's segment."""
    if not field.endswith(names):
        return value
    return "|".join(fn(seg) for seg in value.split("|"))


def _drop_anychild(field: str, value: str) -> str | None:
    if field.endswith(("x-m-a", "x-m-c", "x-m-f", "x-m-k")):
        return None
    return _each_part(field, value, ("x-m-w", "x-m-t"), lambda seg: re.sub(r"#[A-Z]*#", "##", seg))


def _first_octets(field: str, value: str) -> str:
    """An extract segment "a/lo/n/k/qw" with a (:first 12) and lo (:first 5) left out when the
    text's first 12 characters are not all ASCII (qw is the text with "\\", "*" and "?" escaped)."""
    def fix(seg: str) -> str:
        comps = seg.split("/")
        if len(comps) >= 5 and not re.sub(r"\\(.)", r"\1", urllib.parse.unquote(comps[4]))[:12].isascii():
            comps[0] = comps[1] = "?"
        return "/".join(comps)
    return _each_part(field, value, ("x-m-e",), fix)


def _param_as_text(field: str, value: str) -> str:
    """The n= and fn= values read as UTF-8, or else as ISO-8859-1 octets."""
    def text(m: re.Match) -> str:
        raw = urllib.parse.unquote_to_bytes(m.group(2))
        try:
            t = raw.decode("utf-8")
        except UnicodeDecodeError:
            t = raw.decode("latin-1")
        return m.group(1) + urllib.parse.quote(t) + ";"
    return re.sub(r"((?:^|;|\|)f?n=)([^;]*);", text, value) if field.endswith(("x-m-w", "x-m-t")) else value


# the body probe's keys that are not ASCII (their codes are the key's index)
_NON_ASCII_KEYS = "|".join(str(i) for i, k in enumerate(_BODY_KEYS) if not k.isascii())


def _drop_codes(value: str, pattern: str) -> str:
    return ",".join(c for c in value.split(",") if not re.fullmatch(pattern, c))


def _non_ascii_runs(field: str, value: str) -> str:
    """Each run of non-ASCII text one "?", the lengths (L27:, /27/) left out, and the body
    probe's codes for non-ASCII keys."""
    if field.endswith("x-m-b"):
        return _drop_codes(value, f"[A-Z]({_NON_ASCII_KEYS})")
    value = re.sub(r"(?:%[89A-Fa-f][0-9A-Fa-f])+|[^\x00-\x7f]+", "?", value)
    return re.sub(r"(?<=[L/])\d+(?=[:/])", "n", value)


def _epilogue_non_ascii(field: str, value: str) -> str:
    return _drop_codes(value, f"[ME]({_NON_ASCII_KEYS})") if field.endswith("x-m-b") else value


def _rfc822_body(field: str, value: str) -> str:
    """The body probe's codes a message/rfc822 part's header text changes: the empty values,
    :content "message/rfc822" and "message", and :content "" on its header's words and on
    "*t?k*" (a base64 "header", RFC 2046 5.2.1's forbidden encoding read as it stands, holds
    such letters: "T4K", seed 2109 pair 1245)."""
    return _drop_codes(value, r"[A-Z]empty|[FX]\w+|E(15|16|20|m)") if field.endswith("x-m-b") else value


# a run of non-ASCII text, URL-encoded (or made "?" by _non_ascii_runs: "?" itself is %3F)
_HIGH_RUN = r"(?:%[89A-Fa-f][0-9A-Fa-f]|\?)+"


def _held_octets(field: str, value: str) -> str:
    """The non-ASCII run that begins a part's text left out: the walk's "L27:%C3%A9tok2" is
    "Ln:tok2"; an extract segment is its :quotewildcard text alone (:first, :length and the TOK
    match read the same text); the body probe's ^tok, empty-value and non-ASCII-key codes go."""
    if field.endswith("x-m-b"):
        return _drop_codes(value, f"[A-Z](r|empty|{_NON_ASCII_KEYS})")
    if field.endswith("x-m-w"):
        return re.sub(r"L(?:\d+|n):(?:" + _HIGH_RUN + ")?", "Ln:", value)
    if field.endswith("x-m-e"):
        return "|".join("/".join(["?", "?", "n", "?", re.sub("^" + _HIGH_RUN, "", c[4])] + c[5:])
                        if len(c := seg.split("/")) >= 5 else seg for seg in value.split("|"))
    return value


DEVIATIONS: tuple[Deviation, ...] = (
    Deviation(
        "ambiguous-close-delimiter",
        "RFC 2046 section 5.1.1: a boundary MUST NOT appear as the prefix of any line of the "
        "encapsulated material. A nested multipart whose boundary is the outer one followed by "
        "'--' breaks that MUST: the line '--OUTER--' is both the outer close-delimiter and the "
        "inner delimiter, and the RFC gives no reading. Pigeonhole 0.5.19 closes the outer "
        "multipart there, Owlery takes the inner delimiter (generator shape boundary-prefix); "
        "what depends on the parts is left out of such messages (either boundary may be spelled "
        "as an RFC 2231 section, boundary*0=: generator shape boundary-2231).",
        lambda field, value: None if ":x-m-" in field or field.startswith("x-m-") else value,
        message=r'(?is)boundary(?:\*0)?="?([^"\r\n;]+?)"?\s*(?:;|\r?$)(?:.*?)boundary(?:\*0)?="?\1--"?\s*(?:;|\r?$)'),
    Deviation(
        "pigeonhole-anychild-headerless-or-digest",
        "RFC 5703 4.2 (:anychild: the current part and all its children) with RFC 2046 5.1 and 5.1.5: "
        "deviations.toml's pigeonhole-anychild-headerless-part and anychild-digest-implicit-rfc822. "
        "Pigeonhole 0.5.19's :anychild stops at a part with no header fields, and at a digest's "
        "implicit message/rfc822 part; Owlery reads every part foreverypart visits. The :anychild "
        "observations are left out of such messages (the other observations still compare).",
        _drop_anychild, message=r"^--[^\r\n]+\r?\n(?:\r?\n|--)|(?i:multipart/digest)"),
    Deviation(
        "extracttext-first-counts-octets",
        "RFC 5703 section 7 (:first counts characters): deviations.toml's "
        "extracttext-first-counts-characters. Pigeonhole 0.5.19 keeps the first N octets, so a "
        "non-ASCII text is cut inside a character (and sometimes followed by a NUL).",
        _first_octets, script=r":first"),
    Deviation(
        "rfc2231-charset-ignored",
        "RFC 2231 section 4 (a parameter is percent-encoded in the charset it names): Pigeonhole "
        "0.5.19 percent-decodes name*0*=iso-8859-1''caf%E9 but never converts from the charset, so "
        "the script gets the raw octet 0xE9 (test_decoding_differential's rfc2231-charset-ignored).",
        _param_as_text, message=r"(?i)\*0?\*=iso-8859-1''"),
    Deviation(
        "empty-charset-parameter",
        "RFC 2045 section 5.2 (no charset means US-ASCII, which Dovecot itself reads as UTF-8): "
        "Pigeonhole hands an empty charset label to iconv, which takes the locale's ASCII, so "
        "UTF-8 text reads as U+FFFD (test_decoding_differential's empty-charset-parameter).",
        _non_ascii_runs, message=r"(?i)charset\s*=\s*(\([^)]*\)\s*)?(;|\r?$)"),
    Deviation(
        "pigeonhole-epilogue-in-last-part-charset",
        "RFC 2046 section 5.1.1 (the epilogue belongs to no body part and has no charset) with RFC "
        "5173 section 5.2: Pigeonhole 0.5.19 reads a multipart's epilogue in the charset of the part "
        "before it (after a shift_jis part, UTF-8 '\u20acuro' in the epilogue is not found by "
        "body :content \"multipart\" :contains, checked with sieve-test); Owlery reads it as UTF-8, as "
        "Dovecot reads text that names no charset.",
        _epilogue_non_ascii, message=r"(?i)charset\s*=\s*\"?(?!utf-?8|us-ascii)[^;\s]+(?s:.*)--\r?\n[^\r\n]*[\x80-\xff]"),
    Deviation(
        "pigeonhole-message-rfc822-type-case",
        "RFC 2045 section 5.1 (type and subtype names are case-insensitive) with RFC 5173 section "
        "5.2: for a part labelled 'Message/RFC822' Pigeonhole 0.5.19's body :content \"message/rfc822\" "
        "gives \"\" instead of the enclosed message's header, and :content \"\" does not read that header "
        "(checked with sieve-test; 'message/rfc822' reads as Owlery reads both).",
        _rfc822_body, message=r"(?i)^Content-Type:[ \t]*(?-i:(?!message/rfc822))message/rfc822", script=r"\bbody\b"),
    Deviation(
        "pigeonhole-held-octets-leak-into-next-part",
        "RFC 2045 section 6 and RFC 2046 section 5.1 (each body part's content is decoded on its own): a "
        "part whose text Pigeonhole 0.5.19 reads as UTF-8 although it is not (charset*=''latin1, unread: "
        "Peer.explain's pigeonhole-rfc2231-charset-unread) and that ends inside a character: Pigeonhole "
        "keeps the held octets and puts them before the next part's text, read in that part's charset "
        "(test_decoding_differential's held-octets-leak-into-next-part); so it does with what is left of "
        "an 8-bit epilogue it read in the charset of the part before it (pigeonhole-epilogue-in-last-"
        "part-charset: an ASCII next part began with U+FFFD, checked with sieve-test). A non-ASCII run "
        "that begins a part's text is left out, with what depends on it.",
        _held_octets, message=r"(?i)[;\s]charset\*\s*=\s*''(?!utf-?8|us-ascii)|"
        r"charset\s*=\s*\"?(?!utf-?8|us-ascii)[^;\s]+(?s:.*)--\r?\n[^\r\n]*[\x80-\xff]"),
)
# Owlery re-run as Pigeonhole reads the case, for every run Peer.explain makes (so that they
# compose with the other transforms): (id, flag of _AS_PH, whether it applies), the flags read
# on the explaining thread only (the CI test runs two peers at once)
_AS_PH = threading.local()
_AMBIENT = (
    # RFC 2231 sections 3 and 4 (any parameter, charset too, may be given encoded): Dovecot's
    # parser under Pigeonhole 0.5.19 reads no charset from `charset*=''koi8-r` (its RFC 2231
    # reader keeps the name "charset*", as deviations.toml's pigeonhole-rfc2231-boundary finds for
    # the boundary) and decodes the text as UTF-8; Owlery decodes it in the charset named (the
    # mime test's :param "charset" reads that charset in both)
    ("pigeonhole-rfc2231-charset-unread", "charset",
     lambda case, ours, theirs: re.search(rb"(?i)[;\s]charset\*\s*=", case.message) is not None),
    # not Pigeonhole's fault: a probe's value over sieve_max_header_size (2048 octets, both
    # engines) only because of a difference explained here (Owlery's longer text of a part
    # Pigeonhole reads as U+FFFD); Owlery is re-run without the limit
    ("addheader-limit-after-explained-difference", "unlimited",
     lambda case, ours, theirs: ours.status == "error" and theirs.status == "ok"),
)


def _install_as_pigeonhole() -> None:
    """Wrap MimePart.text and editheader's _value_size once: on a thread whose _AS_PH.charset is
    set, a part whose Content-Type gives its charset only as `charset*=` (no plain `charset=`)
    is read as UTF-8; with _AS_PH.unlimited, addheader takes a value of any size."""
    from sieve.extensions import editheader
    from sieve.message import MimePart, decode_charset

    if getattr(MimePart.text, "as_pigeonhole", False):
        return
    text, size = MimePart.text, editheader._value_size

    def ph_text(part):
        if (getattr(_AS_PH, "charset", False) and re.search(r"(?i)(?:^|[;\s])charset\*\s*=", part.ctype_raw)
                and not re.search(r"(?i)(?:^|[;\s])charset\s*=", part.ctype_raw)):
            return decode_charset(part.decoded_body(), "us-ascii")
        return text(part)

    ph_text.as_pigeonhole = True
    MimePart.text = ph_text
    editheader._value_size = lambda value: 0 if getattr(_AS_PH, "unlimited", False) else size(value)


# the deviations.toml entries reused: those whose transform re-runs Owlery as Pigeonhole reads
# the message or script (one that makes any outcome equal would hide every difference)
_PRECISE = {"digest-parts-as-text", "rfc2231-boundary-unread", "pigeonhole-anychild", "tab-folds-as-spaces"}


@dataclasses.dataclass
class Pair:
    case: Case
    ours: normalise.Outcome
    theirs: normalise.Outcome
    ours_only: list
    theirs_only: list
    explained: str | None = None
    log: str = ""


class Peer:
    """One sieve-test home (removed by close())."""

    def __init__(self):
        assert os.path.exists(pigeonhole.SIEVE_TEST), "sieve-test missing: apt-get install dovecot-sieve"
        self.dir = tempfile.mkdtemp(prefix="sieve-mime-", dir=scratch_dir())
        self.ph = pigeonhole.Pigeonhole(Path(self.dir), FOLDERS)
        # Dovecot's parser reads MIME parts nested up to 100 deep (its default); Owlery stops at
        # sieve_max_mime_depth (32): compare like for like (the limit itself is
        # test_a_message_nested_past_the_depth_limit_parses_to_it)
        self.settings = owlery_settings().replace(sieve_max_mime_depth=100)
        self.toml = [d for d in load_deviations() if d.transform in _PRECISE]

    def pair(self, case: Case) -> Pair:
        ours = run_owlery(case, self.settings)
        raw = self.ph.run(case.script, case.message, case.mail_from, case.rcpt_to, case.orig_rcpt)
        theirs = normalise.from_pigeonhole(raw)
        a, b = collections.Counter(seen(ours)), collections.Counter(seen(theirs))
        p = Pair(case, ours, theirs, sorted((a - b).elements()), sorted((b - a).elements()), None, raw.log)
        if ours.differences(theirs):
            p.explained = self.explain(case, ours, theirs)
        return p

    def explain(self, case: Case, ours: normalise.Outcome, theirs: normalise.Outcome) -> str | None:
        """The '+'-joined ids of the deviations that make the outcomes equal: Owlery re-run as
        Pigeonhole reads the case (_AMBIENT: every run below is such a run), deviations.toml's
        precise transforms (none, one or two, in turn), then this file's DEVIATIONS on what the
        scripts saw (all that cover the case at once); None when nothing does."""
        ambient = [(i, flag) for i, flag, applies in _AMBIENT if applies(case, ours, theirs)]
        if not ambient:
            return self._explain(case, ours, theirs, [])
        _install_as_pigeonhole()
        for _, flag in ambient:
            setattr(_AS_PH, flag, True)
        try:
            return self._explain(case, run_owlery(case, self.settings), theirs, [i for i, _ in ambient])
        finally:
            for _, flag in ambient:
                setattr(_AS_PH, flag, False)

    def _explain(self, case: Case, ours: normalise.Outcome, theirs: normalise.Outcome,
                 ambient: list[str]) -> str | None:
        toml = [(d.id, TRANSFORMS[d.transform]) for d in self.toml if d.matches(case)]
        loop = rb'foreverypart\s*(?::name\s*"[^"]*"\s*)?\{'
        if re.search(rb"(?s)" + loop + rb".*" + loop, case.script):
            toml.append(("pigeonhole-nested-foreverypart-overrun", self._overrun))
        if re.search(rb"(?i)multipart/digest", case.message) and b"body :" in case.script:
            toml.append(("pigeonhole-digest-part-as-empty-text", self._digest_as_text))
        local = [d for d in DEVIATIONS if d.covers(case)]
        combos = [()] + [(d,) for d in toml] + list(itertools.permutations(toml, 2))
        for combo in combos:
            a, b = ours, theirs
            for _, transform in combo:
                a, b = transform(case, a, b)
            if not a.differences(b):
                return "+".join(ambient + [i for i, _ in combo]) or None
            if a.status != b.status or a.stores != b.stores:
                continue
            sa, sb, used = seen(a), seen(b), []
            for d in local:
                fa = sorted((f, x) for f, v in sa if (x := d.fix(f, v)) is not None)
                fb = sorted((f, x) for f, v in sb if (x := d.fix(f, v)) is not None)
                if (fa, fb) != (sa, sb):
                    used.append(d.id)
                sa, sb = fa, fb
            if sa == sb and used:
                return "+".join(ambient + [i for i, _ in combo] + used)
        return None

    def _digest_as_text(self, case: Case, ours: normalise.Outcome, theirs: normalise.Outcome):
        """Owlery's outcome when the body test reads a digest's part without Content-Type as
        Pigeonhole 0.5.19 does: an empty text/plain part (the message inside it still read),
        not a message/rfc822 one (deviations.toml's digest-default-type and
        digest-implicit-rfc822-empty-text: RFC 2046 5.1.5 makes it message/rfc822)."""
        from sieve.message import Message
        saved = Message.mime_parts

        def mime_parts(msg, *args):
            parts = saved(msg, *args)
            for p in parts:
                if (p.mtype == "message/rfc822" and not p.header_raw("content-type") and p.parent is not None
                        and p.parent.mtype == "multipart/digest"):
                    p.mtype, p.body, p._decoded = "text/plain", b"", b""
            return parts

        Message.mime_parts = mime_parts
        try:
            return run_owlery(case, self.settings), theirs
        finally:
            Message.mime_parts = saved

    def _overrun(self, case: Case, ours: normalise.Outcome, theirs: normalise.Outcome):
        """Owlery's outcome when a nested foreverypart reads the parts Pigeonhole 0.5.19's does:
        none for a part without children, else the parts after it up to its next sibling, so
        past its own descendants when it is the last part of its multipart (as
        runner._ph_anychild_parts; checked with sieve-test). RFC 5703 3: the inner loop visits
        the children of the current part, as Owlery's does."""
        from sieve.extensions import mime
        saved = mime._descendants
        mime._descendants = lambda part: _ph_anychild_parts(part) if part.children else []
        try:
            return run_owlery(case, self.settings), theirs
        finally:
            mime._descendants = saved

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def describe(p: Pair) -> str:
    c = p.case
    lines = [f"=== {c.seed}/{c.index} script={[f for f in c.features if f.startswith('script-')]} "
             f"features={sorted(f for f in c.features if not f.startswith('script-'))}",
             "--- message", repr(c.message[:2500]),
             f"--- status/stores: owlery {p.ours.status} {p.ours.stores}; pigeonhole {p.theirs.status} {p.theirs.stores}",
             f"--- owlery only:     {p.ours_only}", f"--- pigeonhole only: {p.theirs_only}"]
    if p.theirs.status != "ok":
        lines.append("--- log: " + "\n".join(x for x in p.log.splitlines() if "rror" in x)[:800])
    return "\n".join(lines)


def run_pairs(peer: Peer, seed: int, pairs: int, start: int = 0, step: int = 1) -> tuple[list[Pair], collections.Counter]:
    bad: list[Pair] = []
    counts: collections.Counter = collections.Counter()
    for i in range(start, start + pairs, step):
        p = peer.pair(make_case(seed, i))
        if p.theirs.status in ("harness-error", "crash", "compile-error") or p.ours.status in ("harness-error",
                                                                                              "compile-error"):
            counts["harness"] += 1
            bad.append(p)
        elif not p.ours.differences(p.theirs):
            counts["same"] += 1
        elif p.explained:
            counts.update(p.explained.split("+"))
        else:
            counts["differ"] += 1
            bad.append(p)
    return bad, counts


# --- the differential test (needs sieve-test) --------------------------------------------------


@pytest.fixture(scope="module")
def peer():
    p = Peer()
    yield p
    p.close()


def test_mime_trees_agree_with_pigeonhole(peer):
    t0 = time.monotonic()
    # two sieve-test homes, the even and the odd pairs at once: the suite has two cores
    second = Peer()
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            halves = list(pool.map(lambda k: run_pairs((peer, second)[k], SEED, PAIRS, start=k, step=2), (0, 1)))
    finally:
        second.close()
    bad = halves[0][0] + halves[1][0]
    counts = halves[0][1] + halves[1][1]
    print(f"{PAIRS} pairs in {time.monotonic() - t0:.1f}s: {dict(counts)}")
    assert not bad, f"{len(bad)} of {PAIRS} pairs differ:\n" + "\n\n".join(describe(p) for p in bad[:6])
    # the comparison reads real values: most pairs agree outright
    assert counts["same"] > PAIRS * 0.7, counts


def test_generated_trees_cover_the_shapes():
    feats: collections.Counter = collections.Counter()
    for i in range(PAIRS):
        feats.update(make_case(SEED, i).features)
    for f in ("multipart-digest", "digest-implicit", "message-rfc822", "no-content-type", "boundary-prefix",
              "final-boundary-missing", "preamble", "epilogue", "lf", "b64-nopad", "qp-bad-escape", "name-2231",
              "filename-2231", "empty-part", "deep", "multipart-alternative", "multipart-related", "rfc822-base64"):
        assert feats[f] >= 2, (f, feats)
    assert all(feats["script-" + s] >= PAIRS // len(SCRIPTS) for s in SCRIPTS)


def test_a_real_difference_is_not_explained(peer):
    """The allow-lists do not swallow differences: a seen value changed by hand is reported."""
    for name, field in (("extract", "x-m-e"), ("body", "x-m-b")):
        # the first pair of the script both engines ran alike, that no transform re-running
        # Owlery concerns (such a transform reads Owlery's outcome afresh, not the one faked here)
        first = sorted(SCRIPTS).index(name)
        p = next(q for q in (peer.pair(make_case(SEED, i)) for i in range(first, 300, len(SCRIPTS)))
                 if not q.ours.differences(q.theirs) and not any(d.matches(q.case) for d in peer.toml)
                 and not any(applies(q.case, q.ours, q.theirs) for _, _, applies in _AMBIENT)
                 and b"digest" not in q.case.message.lower())
        assert any(f.endswith(field) for f, _ in seen(p.ours)), name
        headers = tuple((t, tuple((n, v + ",x") if n == field else (n, v) for n, v in fields))
                        for t, fields in p.ours.headers)
        fake = dataclasses.replace(p.ours, headers=headers)
        assert fake.differences(p.theirs) == ["headers"]
        assert peer.explain(p.case, fake, p.theirs) is None, name


def test_every_deviation_has_a_reason():
    assert len({d.id for d in DEVIATIONS}) == len(DEVIATIONS)
    for d in DEVIATIONS:
        assert len(d.reason.split()) >= 15 and re.search(r"RFC \d+", d.reason), d.id


# --- regression cases for the fixes (no sieve-test needed) --------------------------------------


def _seen_owlery(script: str, message: bytes) -> dict[str, str]:
    case = Case(0, 0, script.encode(), message, "sender@example.com", "r@example.org", "r@example.org", frozenset())
    out = run_owlery(case, owlery_settings())
    assert out.status == "ok", out
    return {f.split(":")[-1]: v for f, v in seen(out) if f.startswith("store:INBOX:")}


# each part foreverypart visits as "content type (or -): extracted text"
_WALK = (_REQ + 'set "w" "";\r\nforeverypart { if header :mime :contenttype :matches "Content-Type" "*" '
         '{ set "c" "${0}"; } else { set "c" "-"; } extracttext "x"; set "w" "${w}|${c}:${x}"; }\r\n'
         + _show("W", "w"))


def _walk(message: bytes) -> list[str]:
    return _seen_owlery(_WALK, message)["x-m-w"].split("|")[1:]


def _body(test: str, message: bytes) -> bool:
    return "x-m-t" in _seen_owlery(_REQ + f'if {test} {{ addheader "X-M-T" "yes"; }}\r\n', message)


_MIXED = b"From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n"


def test_a_boundary_need_only_begin_the_delimiter_line():
    # RFC 2046 5.1.1: "it is sufficient that the boundary appear in its entirety following the
    # CRLF" (and sieve-test splits there); before, "--bx" and "--b  x" were part content
    msg = _MIXED + b"--b  x\nContent-Type: text/x-a\n\nA\n--bx\nContent-Type: text/x-c\n\nC\n--b--x\nepi\n"
    assert _walk(msg) == ["multipart/mixed:", "text/x-a:A", "text/x-c:C"]


def test_the_longest_boundary_that_begins_a_line_wins():
    # an inner boundary that extends the outer one ("b" and "b--"): "--b--" is the inner's
    # delimiter, not the outer's close (as sieve-test); before, the outer multipart ended there
    msg = (_MIXED + b"--b\nContent-Type: multipart/mixed; boundary=\"b--\"\n\n--b--\nContent-Type: text/x-a\n\nA\n"
           b"--b--\nContent-Type: text/x-c\n\nC\n--b----\n--b\nContent-Type: text/x-d\n\nD\n--b--\n")
    assert _walk(msg) == ["multipart/mixed:", "multipart/mixed:", "text/x-a:A", "text/x-c:C", "text/x-d:D"]
    # an outer boundary the inner one begins ("bx" and "b"): "--bx" ends the inner multipart
    msg = (b"From: a@example.com\nContent-Type: multipart/mixed; boundary=bx\n\n--bx\nContent-Type: multipart/mixed;"
           b" boundary=b\n\n--b\nContent-Type: text/x-a\n\nA\n--bx\nContent-Type: text/x-c\n\nC\n--b--\nE\n--bx--\n")
    assert _walk(msg) == ["multipart/mixed:", "multipart/mixed:", "text/x-a:A", "text/x-c:C\n--b--\nE"]


def test_two_delimiter_lines_in_a_row_make_an_empty_part():
    # line by line, as sieve-test: before, the second line was read as the next part's header
    msg = _MIXED + b"--b\nContent-Type: text/x-a\n\nA\n--b\n--b\nContent-Type: text/x-c\n\nC\n--b--\n"
    assert _walk(msg) == ["multipart/mixed:", "text/x-a:A", "-:", "text/x-c:C"]
    # that empty part has no header and no body: the body test reads no value from it
    assert not _body('body :text :is ""', msg)


def test_content_type_comments_and_spaces_are_not_the_type():
    # RFC 2045 5.1 (its own example: "text/plain; charset=us-ascii (Plain text)"): before, a
    # comment made the type unparseable and the part application/octet-stream
    for ct in (b"image/png (a comment)", b"(c) image/png", b"image / png"):
        msg = _MIXED + b"--b\nContent-Type: " + ct + b"\n\ntok\n--b--\n"
        assert _body('body :content "image/png" :contains "tok"', msg), ct
        assert not _body('body :content "application" :contains "tok"', msg), ct
        assert _walk(msg)[1] == "image/png:tok", ct
    msg = _MIXED + b"--b\nContent-Type: text/plain; charset=iso-8859-1 (Latin)\n\ncaf\xe9\n--b--\n"
    assert _body('body :text :contains "caf\u00e9"', msg)


def test_a_content_type_naming_no_type_is_of_no_type():
    # as sieve-test: only :content "" reads it (not :text, :content "text" or "application"),
    # and its parameters are not read either
    for ct in (b"garbage; name=x.txt", b"text/plain/extra", b"", b"text; charset=utf-8"):
        msg = _MIXED + b"--b\nContent-Type: " + ct + b"\n\ntok\n--b--\n"
        assert _body('body :content "" :contains "tok"', msg), ct
        for t in ('body :text :contains "tok"', 'body :content "text" :contains "tok"',
                  'body :content "application" :contains "tok"',
                  'header :mime :anychild :param "name" :matches "Content-Type" "?*"'):
            assert not _body(t, msg), (ct, t)


def test_prologue_and_epilogue_values():
    # RFC 5173 5.2 reads a multipart's prologue and epilogue; an empty prologue is a value, an
    # empty or missing epilogue none (as sieve-test; before, an empty epilogue was "")
    pre = _MIXED + b"pre\n--b\n\ntok\n--b--\n"
    assert not _body('body :content "multipart" :is ""', pre)
    assert not _body('body :content "multipart" :is ""', _MIXED + b"pre\n--b\n\ntok\n")
    assert _body('body :content "multipart" :is ""', _MIXED + b"--b\n\ntok\n--b--\nepi\n")
    assert _body('body :content "multipart" :contains "epi"', _MIXED + b"pre\n--b\n\ntok\n--b--\nepi")


def test_a_part_without_an_empty_line_has_no_body():
    # RFC 5322 3.5: the body follows an empty line; without one, the body test reads no value
    # (as sieve-test; before, such a part was an empty text/plain value)
    assert not _body('body :text :is ""', _MIXED + b"--b\nContent-Type: text/plain\n--b--\n")
    assert _body('body :text :is ""', _MIXED + b"--b\nContent-Type: text/plain\n\n--b--\n")
    assert not _body('body :text :is ""', b"From: a@example.com\nContent-Type: text/plain\n")


def test_an_encoded_message_rfc822_is_read_as_it_stands():
    # RFC 2046 5.2.1 allows no encoding but 7bit, 8bit and binary; sieve-test reads the octets
    # as they are (the inner "header" is the base64 line), not decoded; before, Owlery decoded it
    inner = base64.b64encode(b"Subject: hi\r\nContent-Type: application/x\r\n\r\ntok\r\n")
    msg = _MIXED + b"--b\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n" + inner + b"\n--b--\n"
    assert _walk(msg) == ["multipart/mixed:", "message/rfc822:", "-:"]
    assert _body(f'body :content "message/rfc822" :contains "{inner[:8].decode()}"', msg)
    assert not _body('body :content "" :contains "tok"', msg)


def test_extracttext_of_a_multipart_with_only_a_close_delimiter():
    # the text around the delimiter lines, not the close line itself (as sieve-test; before,
    # such a multipart read as a leaf whose content was "--b--")
    assert _walk(_MIXED + b"--b--\n") == ["multipart/mixed:"]
    assert _walk(_MIXED + b"--b--\nepilogue\n")[0] == "multipart/mixed:epilogue\n"
    assert _walk(_MIXED + b"pre\n--b--\n")[0] == "multipart/mixed:pre"


def test_a_message_nested_past_the_depth_limit_parses_to_it():
    # sieve_max_mime_depth (32 by default; Dovecot's parser goes to 100): the parts below it are
    # not made, and the body test does not read the text at the bottom
    from sieve.message import parse_mime
    g = Gen(random.Random(1), "\r\n")
    heads, body = _deep(g, 40)
    msg = b"From: a@example.com\r\n" + "".join(h + "\r\n" for h in heads).encode() + b"\r\n" + body
    parts = parse_mime(msg, 1000, 32)
    assert len(parts) == 33 and parts[-1].depth == 32 and not parts[-1].children
    assert not _body('body :text :contains "tok0"', msg)
    assert len(parse_mime(msg, 1000, 100)) == 41     # 40 multiparts and the text


_HOSTILE = {
    # every line a delimiter; lines that start with "--" but are none; parts whose header no
    # empty line ends; a long line after "--"; 40 open multiparts and many other "--" lines;
    # message/rfc822 parts each holding the next; empty lines between non-delimiters
    "delimiters": lambda n: _MIXED + b"--b\n" * n,
    "non-delimiters": lambda n: _MIXED + b"--b\n\n" + b"--x\n" * n,
    "no-empty-line": lambda n: _MIXED + b"--b\nX: y\n" * n,
    "long-line": lambda n: _MIXED + b"--b\n\n--" + b"x" * (4 * n),
    "deep-and-dashes": lambda n: b"From: a\n" + b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i) for i in range(40)) + b"--b1x\n" * n,
    "rfc822-chain": lambda n: _MIXED + b"--b\nContent-Type: message/rfc822\n\n" * n,
    "prefix-boundaries": lambda n: b"From: a\n" + b"".join(
        b"Content-Type: multipart/mixed; boundary=" + b"b" * (i + 1) + b"\n\n--" + b"b" * (i + 1) + b"\n"
        for i in range(30)) + (b"--" + b"b" * 15 + b"x\n") * (n // 4),
}


@pytest.mark.parametrize("shape", sorted(_HOSTILE))
def test_hostile_mime_structure_parses_in_linear_time(shape):
    # one forward pass (sieve.message.parse_mime): a megabyte of each shape parses in well under
    # a second on an idle core; a parse that went back over the text per part or per line (a
    # quadratic one) would take minutes at this size
    from sieve.message import parse_mime
    msg = _HOSTILE[shape](250_000)
    assert len(msg) > 900_000
    t0 = time.process_time()
    parts = parse_mime(msg, 1000, 32)
    assert time.process_time() - t0 < 5.0, shape
    assert 1 <= len(parts) <= 1000


def main(argv: list[str]) -> int:
    pairs = int(argv[0]) if argv else 200
    seed = int(argv[1]) if len(argv) > 1 else SEED
    start = int(argv[2]) if len(argv) > 2 else 0
    peer = Peer()
    try:
        t0 = time.monotonic()
        bad, counts = run_pairs(peer, seed, pairs, start)
        for p in bad[:int(os.environ.get("SHOW", "5"))]:
            print(describe(p))
            print()
        print(f"{pairs} pairs in {time.monotonic() - t0:.1f}s: {dict(counts)}")
        by = collections.Counter(f for p in bad for f in p.case.features)
        print("features of differing pairs:", by.most_common(25))
    finally:
        peer.close()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
