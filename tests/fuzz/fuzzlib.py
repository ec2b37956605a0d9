"""Shared pieces of the fuzz suite: seed corpora, byte mutations, input splits, MIME messages.

Each tests/fuzz/test_*.py file fuzzes one target with Hypothesis. In CI (the derandomized
"ci" profile of tests/conftest.py) every test runs a fixed, small number of examples
(`budget(n)`), so the suite gives the same answer every time and stays fast; with
HYPOTHESIS_PROFILE=hunt (scripts/fuzz) the profile's much larger, random example count
applies instead. Seed inputs live in tests/fuzz/corpus/<target>/ (small, real-looking files
the mutators start from). Each target also exposes `fuzz_one(data: bytes)` for coverage-guided
runs with atheris (tests/fuzz/atheris_main.py), which raises AssertionError on a broken property.
Tests: tests/fuzz/test_policyd_protocol.py, tests/fuzz/test_lmtp.py, tests/fuzz/test_milter_session.py,
tests/fuzz/test_sieve.py, tests/fuzz/test_banned.py, tests/fuzz/test_maildirsize.py,
tests/fuzz/test_managesieve.py, tests/fuzz/test_socketmap.py, tests/fuzz/test_web_http.py,
tests/fuzz/test_sieve_message.py, tests/fuzz/test_amavis_conf.py, tests/fuzz/test_bounded_http.py,
tests/fuzz/test_managesieve_auth.py, tests/fuzz/test_login_limits_model.py
"""

from __future__ import annotations

import base64
import binascii
import os
import quopri
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st

CORPUS = Path(__file__).parent / "corpus"
HUNT = os.environ.get("HYPOTHESIS_PROFILE", "ci") != "ci"
MAX_SIZE = 1 << 16          # mutants never grow past this many bytes


def budget(ci_examples: int) -> settings:
    """`ci_examples` examples in CI; the loaded profile's count (e.g. hunt's 20 000) otherwise."""
    if HUNT:
        return settings()
    return settings(max_examples=ci_examples)


def corpus_files(target: str, suffix: str = "") -> list[Path]:
    """The seed files of tests/fuzz/corpus/<target>/ (those ending in `suffix`), in name order."""
    files = sorted(p for p in (CORPUS / target).iterdir() if p.is_file() and p.name.endswith(suffix))
    assert files, f"no seeds in tests/fuzz/corpus/{target}/*{suffix}"
    return files


def corpus(target: str, suffix: str = "") -> list[bytes]:
    """The seeds' contents (see corpus_files)."""
    return [p.read_bytes() for p in corpus_files(target, suffix)]


# --- byte mutations -----------------------------------------------------------------------------

INTERESTING_BYTES = b"\x00\x01\t\n\r \"'()*+,-./09:;<=>?@[\\]{}~\x7f\x80\xa0\xc2\xc3\xe2\xef\xff"
NUMBERS = [b"0", b"-1", b"1", b"00", b"255", b"256", b"65535", b"65536", b"2147483648", b"4294967296",
           b"18446744073709551616", b"9" * 30, b"9" * 5000, "\u00b2".encode(), "\u0661\u0662".encode(),
           "\uff11".encode(), b"1e3", b"0x10", b"+1", b" 1", b"1_0", b"-0"]

_pos = st.integers(0, 1 << 32)
MUTATION = st.one_of(
    st.tuples(st.just("flip"), _pos, st.integers(0, 7)),
    st.tuples(st.just("byte"), _pos, st.sampled_from(INTERESTING_BYTES)),
    st.tuples(st.just("insert"), _pos, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("token"), _pos, st.integers(0, 1 << 16)),
    st.tuples(st.just("delete"), _pos, st.integers(1, 64)),
    st.tuples(st.just("copy"), _pos, st.integers(1, 256), _pos),
    st.tuples(st.just("repeat"), _pos, st.integers(1, 32), st.integers(2, 200)),
    st.tuples(st.just("splice"), st.integers(0, 1 << 16), _pos, _pos),
    st.tuples(st.just("number"), _pos, st.sampled_from(NUMBERS)),
    st.tuples(st.just("cut"), _pos),
)


def mutate(data: bytes, ops, *, seeds=(), tokens=(), max_size: int = MAX_SIZE) -> bytes:
    """Apply mutation ops (drawn from MUTATION) to `data`; positions wrap around its length."""
    b = bytearray(data)
    for op in ops:
        kind, p = op[0], op[1] % (len(b) + 1)
        if kind == "flip" and p < len(b):
            b[p] ^= 1 << op[2]
        elif kind == "byte" and p < len(b):
            b[p] = op[2]
        elif kind == "insert":
            b[p:p] = op[2]
        elif kind == "token" and tokens:
            b[p:p] = tokens[op[2] % len(tokens)]
        elif kind == "delete":
            del b[p:p + op[2]]
        elif kind == "copy":
            chunk = b[p:p + op[2]]
            q = op[3] % (len(b) + 1)
            b[q:q] = chunk
        elif kind == "repeat":
            chunk = bytes(b[p:p + op[2]])
            b[p:p + len(chunk)] = chunk * op[3]
        elif kind == "splice" and seeds:
            other = seeds[p % len(seeds)]
            q = op[2] % (len(b) + 1)
            r = op[3] % (len(other) + 1)
            b[q:] = other[r:]
        elif kind == "number":
            # replace the run of ASCII digits at or after p (or insert the number there)
            start = p
            while start < len(b) and not 0x30 <= b[start] <= 0x39:
                start += 1
            end = start
            while end < len(b) and 0x30 <= b[end] <= 0x39:
                end += 1
            b[start:end] = op[2]
        elif kind == "cut":
            del b[p:]
        if len(b) > max_size:
            del b[max_size:]
    return bytes(b)


def mutants(seeds: list[bytes], tokens=(), max_ops: int = 6):
    """Seeds, each mutated by up to `max_ops` mutations (the unchanged seed included)."""
    return st.builds(lambda seed, ops: mutate(seed, ops, seeds=seeds, tokens=tokens),
                     st.sampled_from(seeds), st.lists(MUTATION, max_size=max_ops))


def split(data: bytes, cuts) -> list[bytes]:
    """`data` cut at the given positions (wrapped into range), in order; joined they give it back."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points + [len(data)]:
        out.append(data[last:p])
        last = p
    return out


CUTS = st.lists(st.integers(0, 1 << 32), max_size=12)


# --- MIME messages ------------------------------------------------------------------------------

ADDRESSES = ["alice@example.net", "Alice <alice@example.net>", '"Doe, J." <j@example.org>', "<>", "",
             "a@b, c@d", "=?utf-8?b?w6lsw6g=?= <e@example.net>", "x@[192.0.2.1]", "@", "a@", "@b",
             "alice@example.net (comment", "alice@exa mple.net", "x@" + "a." * 120 + "net",
             "undisclosed-recipients:;", "bob@EXAMPLE.NET.", "<bob@example.org", "b\u00f6b@ex\u00e4mple.org",
             "group: a@b, c@d;", "a@b@c", "\"\\\"\"@example.net"]
VALUES = {
    "Subject": ["hello", "=?utf-8?q?caf=C3=A9?=", "=?utf-8?b?broken", "=?x-unknown?q?a?=", "A" * 300,
                "=?utf-8?b?" + "QUFB" * 40 + "?=", "re: [list] \u2603", "", "=?idna?q?xn--a?=", "=?punycode?b?AAAA?=",
                "=?unicode_escape?q?=5Cx4?=", "=?utf-16?b?//5hAA==?=", "=?utf-8*fr?q?a?=", "=?base64?b?QQ==?=",
                "=?uu?q?a?=", "=?rot13?q?a?=", "=?x\x00?q?a?=", "=?utf-8?q?=ZZ?= =?utf-8?q?b?="],
    "Date": ["Mon, 02 Mar 2026 10:00:00 +0000", "Tue, 31 Feb 2026 25:61:61 +9999", "yesterday", "",
             "Mon, 02 Mar 99999 10:00:00 +0000", "Thu, 01 Jan 1970 00:00:00 -1200"],
    "Message-ID": ["<1@example.net>", "<>", "no-brackets", "<" + "x" * 200 + "@y>", "<a@b> <c@d>"],
    "Received": ["from mx.example.org (mx.example.org [192.0.2.7]) by mx.owlery.test (Postfix) with ESMTPS "
                 "id 4ABCDE1 for <bob@example.test>; Mon, 02 Mar 2026 10:00:00 +0000", "from x", "", ";"],
    "MIME-Version": ["1.0", "2.0", "", "1.0 (produced by x)"],
    "DKIM-Signature": ["v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=r1; h=from:to; bh=AAAA; b=AAAA",
                       "v=1; a=ed25519-sha256; d=example.net; s=e1; h=from; bh=; b=", "v=1;;;;", "",
                       "v=2; a=rsa-sha1; d=; s=; h=; bh=!!!; b=???", "v=1; a=rsa-sha256; d=" + "x." * 100 + "net",
                       "v=1; a=rsa-sha256; d=example.net; s=r1; l=99999999999999999999; h=from; bh=AA==; b=AA=="],
    "ARC-Seal": ["i=1; a=rsa-sha256; cv=none; d=example.org; s=a1; b=AAAA", "i=0; cv=fail", "i=99999999999", ""],
    "ARC-Message-Signature": ["i=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=a1; h=from; bh=AA; b=AA"],
    "ARC-Authentication-Results": ["i=1; mx.example.org; spf=pass smtp.mailfrom=example.net", "i=x;"],
    "Authentication-Results": ["mx.owlery.test; spf=pass smtp.mailfrom=example.net",
                               '"mx.owlery.test" (forged) ; dkim=pass header.d=example.net',
                               "MX.OWLERY.TEST.; none", "mx.owlery.test 1; dmarc=pass", "(unclosed; x", "", ";;;"],
    "Received-SPF": ["Pass (mailfrom) identity=mailfrom; client-ip=192.0.2.10; envelope-from=<a@example.net>",
                     "fail", "", "pass identity=mailfrom; envelope-from=\"<>\""],
    "Content-Type": ["text/plain", "text/plain; charset=utf-8", "multipart/mixed", "multipart/mixed; boundary=",
                     "text/html; charset=x-unknown", "message/rfc822", "application/zip; name*0*=utf-8''a%2E; name*1=exe",
                     "/", ";;;", "text/plain; charset=\"utf-16\"", "multipart/alternative; boundary=\"a b\""],
    "Content-Transfer-Encoding": ["base64", "quoted-printable", "7bit", "8bit", "binary", "x-uuencode", "junk", ""],
    "Content-Disposition": ['attachment; filename="evil.exe"', "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf",
                            "inline", "attachment; filename=", 'attachment; filename="=?utf-8?b?ZXZpbC5qcw==?="'],
}
HEADER_NAMES = ["From", "To", "Cc", "Reply-To", "Sender", *VALUES, "X-Spam-Flag", "List-Id", "References",
                "Return-Path", "X-Mailer", "Content-ID", "x", "From ", "Subject\x00", "A" * 100]
VALUE_SOUP = ["a", "@", "<", ">", "\"", "\\", "(", ")", ";", "=", ",", ":", " ", "\t", "=?", "?=", "?q?", "?b?",
              "example.net", "utf-8", "\u00e9", "\udcff", "\x00", "\x7f", "%", "*", "'", "1", "-"]


def _encode_text(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


header_value = st.one_of(
    st.sampled_from(ADDRESSES).map(_encode_text),
    st.sampled_from([v for vs in VALUES.values() for v in vs]).map(_encode_text),
    st.lists(st.sampled_from(VALUE_SOUP), max_size=12).map(lambda xs: _encode_text("".join(xs))),
    st.binary(max_size=40),
)


@st.composite
def header_field(draw, name=None) -> bytes:
    name = name or draw(st.sampled_from(HEADER_NAMES))
    if name in VALUES and draw(st.booleans()):
        value = _encode_text(draw(st.sampled_from(VALUES[name])))
    elif name in ("From", "To", "Cc", "Reply-To", "Sender") and draw(st.booleans()):
        value = _encode_text(draw(st.sampled_from(ADDRESSES)))
    else:
        value = draw(header_value)
    if draw(st.integers(0, 7)) == 0:          # fold it somewhere
        cut = draw(st.integers(0, len(value)))
        value = value[:cut] + b"\r\n\t" + value[cut:]
    return _encode_text(name) + b": " + value + b"\r\n"


FILENAMES = ["evil.exe", "report.pdf", "a.pdf.exe", "=?utf-8?b?ZXZpbC5qcw==?=", "", "x" * 300 + ".js",
             "r\u00e9sum\u00e9.doc", "..\\..\\a.bat", "a.zip", "noext", "a.", ".js", "a.JS ", "a.js\x00.pdf"]
LEAF_TYPES = ["text/plain", "text/html", "application/octet-stream", "application/zip", "image/png",
              "application/x-msdownload", "text/calendar", "application/pdf", "message/rfc822",
              "multipart/mixed", "foo", "", "text/plain; charset=\"utf-8\"", "text/plain; charset=x-junk",
              "application/zip; name*0*=utf-8''a%2E; name*1=exe"]
ENCODINGS = ["7bit", "8bit", "base64", "quoted-printable", "binary", "x-uuencode", "junk", None]
BOUNDARIES = ["b1", "=_x", "a b", "x" * 75, "--", "'q'", "b", "b1b", "\u00e9"]
BODY_TEXTS = [b"hello\r\n", b"", b"MZ\x90\x00" + bytes(60), b"\x7fELF\x02\x01\x01", b"=\r\n=3D=ZZ",
              b"begin 644 evil.js\r\n#86QE<G0H,2D`\r\n`\r\nend\r\n", b"\xff\xfe\x00", b"line\r\n.\r\n..\r\n",
              b"a" * 1000]


def _encode_body(data: bytes, cte: str | None, corrupt: int) -> bytes:
    if cte == "base64":
        out = base64.encodebytes(data).replace(b"\n", b"\r\n")
    elif cte == "quoted-printable":
        out = quopri.encodestring(data).replace(b"\n", b"\r\n")
    elif cte == "x-uuencode":
        out = b"begin 644 f\r\n" + b"".join(binascii.b2a_uu(data[i:i + 45]) for i in range(0, len(data), 45)) \
            + b"`\r\nend\r\n"
    else:
        out = data
    if corrupt and out:
        p = corrupt % len(out)
        out = out[:p] + b"!=?" + out[p + 1:]
    return out


def _leaf_data():
    zips = corpus("banned", ".zip")
    return st.one_of(st.sampled_from(BODY_TEXTS), st.sampled_from(zips), st.binary(max_size=200))


@st.composite
def mime_leaf(draw) -> bytes:
    ctype = draw(st.sampled_from(LEAF_TYPES))
    head = [b"Content-Type: " + _encode_text(ctype)]
    if draw(st.booleans()):
        name = _encode_text(draw(st.sampled_from(FILENAMES)))
        head[0] += b'; name="' + name + b'"'
    if draw(st.booleans()):
        head.append(b'Content-Disposition: attachment; filename="' + _encode_text(draw(st.sampled_from(FILENAMES)))
                    + b'"')
    cte = draw(st.sampled_from(ENCODINGS))
    if cte is not None:
        head.append(b"Content-Transfer-Encoding: " + cte.encode())
    data = draw(_leaf_data())
    corrupt = draw(st.sampled_from([0, 0, 0, 1, 7, 40]))
    return b"\r\n".join(head) + b"\r\n\r\n" + _encode_body(data, cte, corrupt)


def _multipart(children):
    @st.composite
    def build(draw) -> bytes:
        boundary = draw(st.sampled_from(BOUNDARIES)).encode("utf-8")
        sub = draw(st.sampled_from(["mixed", "alternative", "related", "digest", "signed", "x-junk"]))
        quoted = draw(st.booleans())
        head = b"Content-Type: multipart/" + sub.encode() + b"; boundary=" + \
            (b'"' + boundary + b'"' if quoted else boundary) + b"\r\n\r\n"
        parts = draw(st.lists(children, max_size=4))
        body = draw(st.sampled_from([b"", b"preamble\r\n"]))
        for part in parts:
            body += b"--" + boundary + b"\r\n" + part + b"\r\n"
        if draw(st.integers(0, 4)):
            body += b"--" + boundary + b"--\r\n"
        body += draw(st.sampled_from([b"", b"epilogue\r\n", b"--" + boundary + b"\r\n"]))
        return head + body
    return build()


def _rfc822(children):
    @st.composite
    def build(draw) -> bytes:
        fields = b"".join(draw(st.lists(header_field(), max_size=3)))
        return b"Content-Type: message/rfc822\r\n\r\n" + fields + draw(children)
    return build()


mime_node = st.recursive(mime_leaf(), lambda children: st.one_of(_multipart(children), _rfc822(children)),
                         max_leaves=8)


@st.composite
def mime_message(draw) -> bytes:
    """A whole message: a few header fields (realistic and hostile) over a MIME tree; CRLF or LF."""
    fields = [header_field("From"), header_field("To"), header_field("Subject")]
    head = b"".join(draw(f) for f in fields if draw(st.integers(0, 5)))
    head += b"".join(draw(st.lists(header_field(), max_size=6)))
    head += b"MIME-Version: 1.0\r\n" if draw(st.booleans()) else b""
    raw = head + draw(mime_node)
    if draw(st.integers(0, 3)) == 0:
        raw = raw.replace(b"\r\n", b"\n")
    return raw


def split_headers(raw: bytes) -> tuple[list[tuple[str, bytes]], bytes]:
    """Header fields and body as Postfix hands them to a milter.

    A header is printable ASCII up to a colon (Postfix's is_header); a line starting with
    white space continues the previous field (folds joined by LF, as Postfix sends them);
    the first other line (the empty line, or any other) starts the body (CRLF line ends).
    """
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    fields: list[tuple[str, bytes]] = []
    i = 0
    for i, line in enumerate(lines):       # noqa: B007 (i is read after the loop)
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\n" + line)
            continue
        name, colon, value = line.partition(b":")
        if colon and name and all(33 <= c <= 126 for c in name.rstrip(b" \t")) and name.rstrip(b" \t"):
            fields.append((name.rstrip(b" \t").decode("ascii"), value))
            continue
        break
    else:
        i = len(lines)
    rest = lines[i:]
    if rest and rest[0] == b"":
        rest = rest[1:]
    return fields, b"\r\n".join(rest)
