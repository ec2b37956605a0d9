"""Differential test of what Owlery signs and seals: its DKIM signatures and ARC sets against the peers.

A seeded generator (random.Random, fixed seeds) makes odd messages: folded and unfolded
headers, `Subject :` and tabs around the colon, repeated Subject/To/Cc, long header lines,
8-bit UTF-8 in headers and body, bodies with trailing blank lines, no final newline, only a
CRLF, whitespace-only lines, trailing spaces and tabs, no body at all, bare LF line ends, a
lone '.' line, bare CR, lines longer than 998 octets, 8-bit "binary-ish" bytes, base64 parts,
multipart, a body larger than one milter chunk. Each message goes through Owlery as Postfix
hands it to a milter (header names without the blanks before the colon, values raw with
P_HDR_LEADSPC, folds as LF, body in CRLF in chunks of 64 KiB), and the edits the milter asks
for are applied as Postfix applies them; then:

- the outbound stages (dkim_sign, RSA r1 + Ed25519 e1 for example.net) sign it; both
  signatures must give dkim=pass at OpenDKIM (verify mode, over miltertest, one batch) and
  R_DKIM_ALLOW at Rspamd (HTTP /checkv2), and verify with this file's own RFC 6376 reading;
- a forwarder's inbound stages (dkim_verify, arc_verify, authres, arc_seal; example.org a1)
  seal the signed message: Rspamd must say ARC_ALLOW (and still R_DKIM_ALLOW for both
  signatures); OpenDKIM has no ARC (OpenARC is not installed), it checks the DKIM signatures
  of the sealed message;
- Rspamd seals the signed message (example.org arc1): Owlery's arc_verify must say arc=pass;
  Owlery then seals i=2 over Rspamd's i=1 and Rspamd must validate the two-set chain;
- our headers are checked against the RFC rules directly: lines <= 998 octets and folded near
  78, h= lists From once more than present and nothing that changes in transit (Received,
  Return-Path, ...), d= the From domain or its parent, no i= outside d=, ARC instance numbers,
  ARC-Seal without h=, AMS h= without ARC fields, AAR copied from our Authentication-Results.
Disagreements the RFCs decide against a peer are in ALLOWED with the reason (Rspamd: repeated
singleton fields, `Subject :`, form feed, lone CR; OpenDKIM: lone CR, a message without body);
an allowance no longer met fails the run. test_header_edits_of_earlier_stages_are_signed_and_sealed
checks that what dkim_sign and arc_seal cover is the header as it leaves (after a Subject tag).
Peers: tests/harness/rspamd.py (Rspamd 3.4 over /checkv2), OpenDKIM in verify mode as in
test_dkim_differential.py (miltertest; `opendkim -t` for messages with a field over ~1 KiB,
which miltertest 1.6 cannot send). SIGNDIFF_DUMP=FILE writes every problem met to FILE.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import time
from dataclasses import dataclass, field

import Milter
import pytest

from milters import dkimkeys
from milters.testing import FakeMilterContext
from owlery.settings import Settings, import_section
from tests.harness.owlery_milter import lua_session_helpers, run_miltertest
from tests.harness.rspamd import ARC_FAIL, ARC_PASS, DKIM_FAIL, DKIM_PASS, Rspamd, apply_headers

from . import test_dkim_differential as _diff
from .test_dkim_differential import canon_body, canon_header, dkim_verdicts, select_fields, strip_comments
from .test_dkim_interop import lua_string

# OpenDKIM in verify mode, as the DKIM differential runs it (the fixture is registered here too).
opendkim = _diff.opendkim_verifier

for _section in ("milter", "milter_spf", "dkim", "dmarc", "arc"):
    import_section(_section)

SEEDS = (6376, 8617, 1342)
COUNT = 126                      # messages per run, spread over the seeds
AUTHSERV = "mx.owlery.test"
NOW = int(time.time())
KEYS = (("example.net", "r1", "rsa"), ("example.net", "e1", "ed25519"), ("example.org", "a1", "rsa"),
        ("example.org", "arc1", "rsa"))
AUTHED = dict(sender="<alice@example.net>", mail_macros={"{auth_authen}": "alice"})
OUTSIDE = dict(sender="<alice@example.net>", client=("relay.example.com", "192.0.2.99"))
NOT_SIGNED = {b"received", b"return-path", b"bcc", b"resent-bcc", b"dkim-signature", b"arc-seal",
              b"arc-message-signature", b"arc-authentication-results", b"authentication-results",
              b"x-owlery-score", b"delivered-to", b"x-original-to", b"comments", b"keywords"}
OPENDKIM_TIMEOUT = 8
WIDTH_CHECKED = ("DKIM-Signature", "ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results")
CHUNK = 65536                    # libmilter's body chunk
MILTERTEST_FIELD_MAX = 1000      # miltertest 1.6 smashes its stack on a longer name + value


# ---- the generator --------------------------------------------------------------------------
WORDS = ("owl barn tawny snowy eagle hoot feather perch night wing talon moon pellet roost "
         "mouse vole hollow oak").split()
UTF8 = ("Grüße", "Ünïcödé", "日本語", "Ελληνικά", "emoji 🦉", "naïve café", "Øre")


@dataclass
class Msg:
    """One generated message: header lines (raw, folds as CRLF WSP, no final CRLF) and body."""

    n: int
    kinds: list
    headers: list
    body: bytes
    eol: bytes = b"\r\n"         # b"\n": the client sent bare LF line ends
    blank: bool = True           # the blank line between header and body is there

    def smtp(self):
        """The message as the client sent it."""
        out = b"".join(h + b"\r\n" for h in self.headers)
        out += (b"\r\n" if self.blank else b"") + self.body
        return out.replace(b"\r\n", b"\n") if self.eol == b"\n" else out


def mta_view(raw):
    """(fields [(name, value)], body): what Postfix hands a milter, and what it forwards.

    Line ends become CRLF (Postfix stores lines, a lone CR inside a line stays, a body without
    a final line end gets one); header names
    lose the blanks before the colon (cleanup's is_header), values keep their leading blanks
    (P_HDR_LEADSPC) with folds joined by LF."""
    raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, body = raw.removesuffix(b"\r\n"), b""
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"            # the last line too is a line: SMTP's CRLF.CRLF, or Postfix's record
    fields = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + b"\n" + line)
        else:
            name, colon, value = line.partition(b":")
            assert colon, line
            fields.append((name.rstrip(b" \t").decode("ascii"), value))
    return fields, body


def wire(fields, body):
    """The message Postfix forwards: fields with CRLF folds, blank line, body."""
    return b"".join(n.encode() + b":" + v.replace(b"\n", b"\r\n") + b"\r\n" for n, v in fields) + b"\r\n" + body


def _words(rng, lo, hi):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def _text(rng, lines):
    return b"".join(_words(rng, 1, 12).encode() + b"\r\n" for _ in range(lines))


class Generator:
    """Message n: header kind HEADER_KINDS[n % ...], body kind BODY_KINDS[5n % ...], plus one
    more header kind from rng; the words, sizes and positions come from rng."""

    def make(self, rng, n):
        self.rng = rng
        self.m = Msg(n, [], [
            b"From: Alice <alice@example.net>",
            b"To: Bob <bob@example.com>",
            b"Subject: " + _words(rng, 1, 6).encode(),
            b"Date: Mon, 01 Jan 2024 10:00:00 +0000",
            b"Message-ID: <%d.%d@example.net>" % (n, rng.randrange(10**9)),
            b"MIME-Version: 1.0",
            b"Content-Type: text/plain; charset=utf-8",
        ], _text(rng, rng.randint(1, 6)))
        hk = HEADER_KINDS[n % len(HEADER_KINDS)]
        bk = BODY_KINDS[n * 5 % len(BODY_KINDS)]        # 5 and 17 coprime: every body kind meets many header kinds
        extra = rng.choice(HEADER_KINDS)
        for kind in (bk, hk, extra):          # body first: some body kinds set Content-Type
            getattr(self, kind)()
            self.m.kinds.append(kind)
        return self.m

    def set_header(self, name, line):
        for i, h in enumerate(self.m.headers):
            if h.lower().startswith(name.lower() + b":"):
                self.m.headers[i] = line
                return
        self.m.headers.append(line)

    # header kinds -----------------------------------------------------------------------
    def h_plain(self):
        pass

    def h_folded(self):
        sep = self.rng.choice([b"\r\n\t", b"\r\n ", b"\r\n    "])
        self.set_header(b"Subject", b"Subject: " + sep.join(_words(self.rng, 2, 5).encode() for _ in range(4)))
        self.set_header(b"To", b"To: Bob <bob@example.com>," + sep + b"Carol <carol@example.com>," + sep
                        + b"\"Dave, Jr.\" <dave@example.com>")

    def h_space_before_colon(self):
        self.set_header(b"Subject", b"Subject : " + _words(self.rng, 1, 4).encode())

    def h_tabs(self):
        self.set_header(b"Subject", b"Subject:\t" + _words(self.rng, 1, 3).encode() + b" \t  end\t ")
        self.set_header(b"To", b"To:\t\tbob@example.com")

    def h_no_space(self):
        self.set_header(b"Subject", b"Subject:" + _words(self.rng, 1, 3).encode())
        self.set_header(b"Date", b"Date:Mon, 01 Jan 2024 10:00:00 +0000")

    def h_repeated(self):
        self.m.headers.append(b"Subject: second " + _words(self.rng, 1, 3).encode())
        self.m.headers.append(b"To: other@example.com")
        self.m.headers.insert(1, b"Cc: one@example.com")
        self.m.headers.append(b"Cc: two@example.com")

    def h_long_line(self):
        n = self.rng.randint(700, 990 - len(b"Subject: "))
        self.set_header(b"Subject", b"Subject: " + (_words(self.rng, 200, 200).encode() * 2)[:n])

    def h_long_folded(self):
        refs = b"\r\n ".join(b"<%d.%s@example.net>" % (i, _words(self.rng, 1, 1).encode()) for i in range(60))
        self.m.headers.append(b"References: " + refs)
        self.m.headers.append(b"In-Reply-To: <59.x@example.net>")

    def h_utf8(self):
        self.set_header(b"Subject", b"Subject: " + self.rng.choice(UTF8).encode() + b" " + _words(self.rng, 1, 3).encode())
        self.set_header(b"From", b"From: " + self.rng.choice(UTF8).encode() + b" <alice@example.net>")
        self.set_header(b"To", b"To: \xe5\xa4\xaa\xe9\x83\x8e <bob@example.com>")

    def h_encoded_words(self):
        self.set_header(b"Subject", b"Subject: =?UTF-8?B?" + base64.b64encode("Grüße 🦉".encode()) + b"?= tail")
        self.set_header(b"From", b"From: =?utf-8?q?Al=C3=AFce?= <alice@example.net>")

    def h_case(self):
        self.m.headers = [h.split(b":", 1)[0].upper() + b":" + h.split(b":", 1)[1] if self.rng.random() < 0.5
                          else h.split(b":", 1)[0].lower() + b":" + h.split(b":", 1)[1] for h in self.m.headers]
        self.set_header(b"From", b"From: Alice <Alice@EXAMPLE.NET>")

    def h_trace(self):
        self.m.headers[:0] = [b"Return-Path: <alice@example.net>",
                              b"Received: from client.example (client.example [192.0.2.10])\r\n\tby mx.example.net"
                              b" (Postfix) with ESMTPSA id 4ABCDE1\r\n\tfor <bob@example.com>; Mon, 01 Jan 2024 10:00:01 +0000",
                              b"Received: from localhost by client.example; Mon, 01 Jan 2024 10:00:00 +0000",
                              b"Delivered-To: alice@example.net"]

    def h_list(self):
        self.m.headers += [b"Sender: list-bounces@example.net", b"Reply-To: list@example.net",
                           b"List-Id: Owls <owls.example.net>",
                           b"List-Unsubscribe: <mailto:leave@example.net>,\r\n <https://example.net/leave>",
                           b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Post: <mailto:owls@example.net>",
                           b"Keywords: owls", b"Comments: not signed", b"Bcc: hidden@example.com"]

    def h_many_fields(self):
        # h= long enough to need several folds (List-Post may repeat; RFC 5322 3.6 singletons
        # are h_repeated's), among many trace fields
        self.m.headers += [b"List-Post: <mailto:owls-%d@example.net>" % i for i in range(self.rng.randint(20, 40))]
        self.m.headers[:0] = [b"Received: from hop%d.example (hop%d.example [192.0.2.%d]) by mx; "
                              b"Mon, 01 Jan 2024 10:00:00 +0000" % (i, i, i) for i in range(30)]

    def h_subdomain(self):
        self.set_header(b"From", b"From: Alice <alice@Lists.Example.net>")

    def h_empty_values(self):
        self.set_header(b"Subject", b"Subject:")
        self.m.headers.append(b"Cc: \t ")
        self.m.headers.append(b"X-Empty:")

    def h_unknown_and_existing_sig(self):
        self.m.headers += [b"X-Mailer: owl-o-matic 1.0", b"X-Spam: maybe",
                           b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=old; h=from; bh=AAAA; b=AAAA"]

    # body kinds -------------------------------------------------------------------------
    def b_plain(self):
        pass

    def b_trailing_blank_lines(self):
        self.m.body += b"\r\n" * self.rng.randint(1, 6)

    def b_no_final_newline(self):
        self.m.body = self.m.body.removesuffix(b"\r\n") + self.rng.choice([b"", b" ", b"\t", b"last words  "])

    def b_only_crlf(self):
        self.m.body = b"\r\n" * self.rng.randint(1, 3)

    def b_whitespace_lines(self):
        self.m.body = b"first\r\n" + b"".join(self.rng.choice([b" ", b"\t", b"  \t ", b""]) + b"\r\n"
                                             for _ in range(5)) + b"middle\r\n \t \r\n\t\r\n"

    def b_trailing_ws(self):
        self.m.body = b"".join(_words(self.rng, 1, 5).encode() + self.rng.choice([b" ", b"\t", b" \t ", b"\t\t"]) + b"\r\n"
                               for _ in range(5))
        self.m.body += b"inner \t  runs\t\tof  white space\r\n"

    def b_empty(self):
        self.m.body = b""
        self.m.blank = self.rng.random() < 0.5

    def b_bare_lf(self):
        self.m.eol = b"\n"
        self.m.body += b"\r\n  indented\r\n\r\n"

    def b_lone_dot(self):
        self.m.body = b"before\r\n.\r\n..\r\n. \r\nafter\r\n.\r\n"

    def b_bare_cr_at_end(self):
        # A lone CR just before the line end is part of the line (RFC 6376 3.4.4: only WSP goes)
        self.m.body = self.rng.choice([b"line\r\r\n", b"space then cr \r\r\n", b"two\r\r\r\n",
                                       b"\r\r\n"]) + b"end\r\n"

    def b_bare_cr_inside(self):
        self.m.body = self.rng.choice([b"mid\rline\r\n", b"cr then space\r \r\n", b"\rstart\r\n"]) + b"end\r\n"

    def b_long_lines(self):
        self.m.body = b"short\r\n" + (_words(self.rng, 400, 400).encode())[:self.rng.randint(999, 2500)] + b"\r\n" \
            + b"x" * 5000 + b"\r\n" + b"y" * 998 + b"\r\n"

    def b_utf8(self):
        self.m.body = "Grüße aus dem Eulenhaus 🦉\r\nκαλημέρα\r\n日本語の本文\r\n".encode()
        self.set_header(b"Content-Transfer-Encoding", b"Content-Transfer-Encoding: 8bit")

    def b_binaryish(self):
        alphabet = bytes(b for b in range(1, 256) if b not in (10, 12, 13))    # form feed: b_form_feed
        lines = [bytes(self.rng.choice(alphabet) for _ in range(self.rng.randint(0, 120))) for _ in range(8)]
        self.m.body = b"\r\n".join(lines) + b"\r\n"
        self.set_header(b"Content-Type", b"Content-Type: application/octet-stream")
        self.set_header(b"Content-Transfer-Encoding", b"Content-Transfer-Encoding: 8bit")

    def b_form_feed(self):
        self.m.body = b"page one\r\n\x0c\r\npage\x0c two \x0c\r\n"

    def b_multipart(self):
        data = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(100, 3000)))
        b64 = base64.encodebytes(data).replace(b"\n", b"\r\n")
        bnd = b"=_owl_%d" % self.rng.randrange(10**6)
        self.set_header(b"Content-Type", b"Content-Type: multipart/mixed;\r\n\tboundary=\"" + bnd + b"\"")
        self.m.body = (b"This is a multi-part message in MIME format.\r\n\r\n--" + bnd + b"\r\n"
                       b"Content-Type: multipart/alternative; boundary=\"alt" + bnd + b"\"\r\n\r\n"
                       b"--alt" + bnd + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
                       b"Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe  \r\nsoft=\r\nbreak\r\n"
                       b"--alt" + bnd + b"\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\t\r\n"
                       b"--alt" + bnd + b"--\r\n\r\n--" + bnd + b"\r\n"
                       b"Content-Type: application/octet-stream; name=\"owl.bin\"\r\n"
                       b"Content-Transfer-Encoding: base64\r\n"
                       b"Content-Disposition: attachment; filename=\"owl.bin\"\r\n\r\n" + b64
                       + b"--" + bnd + b"--\r\n" + b"\r\n" * self.rng.randint(0, 2))

    def b_large(self):
        # Lines that straddle the 64 KiB chunk boundary at a CR, at trailing blanks, at blank lines.
        pad = _text(self.rng, 2000)
        tail, cont = self.rng.choice([(b"x\r", b"\n"), (b"x  ", b"\t \r\n"), (b"\r\n\r", b"\n\r\n"),
                                      (b"y\t \t", b" \r\n")])
        head = pad[:CHUNK - len(tail)]
        if head.endswith(b"\r"):       # the cut split a CRLF: no lone CR but the one `tail` may place
            head = head[:-1] + b"x"
        self.m.body = head + tail + cont + _text(self.rng, 50) + b"\r\n \r\n"


HEADER_KINDS = sorted(k for k in vars(Generator) if k.startswith("h_"))
BODY_KINDS = sorted(k for k in vars(Generator) if k.startswith("b_"))


def generate(count=COUNT, seeds=SEEDS):
    gen, out = Generator(), []
    for s, seed in enumerate(seeds):
        rng = random.Random(seed)
        for _ in range(count // len(seeds) + (1 if s < count % len(seeds) else 0)):
            out.append(gen.make(rng, len(out)))
    return out


# ---- Owlery, driven as Postfix drives a milter --------------------------------------------------
@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("signdiff-keys")
    paths, txt, public = {}, {}, {}
    for domain, sel, alg in KEYS:
        path, _ = dkimkeys.generate(domain, sel, str(d), algorithm=alg)
        paths[(domain, sel)] = path
        key = dkimkeys.load_key(path, domain, sel)
        txt[f"{sel}._domainkey.{domain}"] = dkimkeys.public_txt(key.key)
        public[(domain, sel)] = key.key.public_key()
    return d, paths, txt, public


@pytest.fixture(scope="module")
def dns(dns_stub, keys):
    saved = dns_stub.snapshot()
    for name, value in keys[2].items():
        dns_stub.set(name, "TXT", value)
    dns_stub.set("_dmarc.example.net", "TXT", "v=DMARC1; p=none")
    yield dns_stub
    dns_stub.restore(saved)


@pytest.fixture(scope="module")
def rspamd(harness_dirs, dns, keys):
    server = Rspamd(harness_dirs("rspamd-signdiff"), dns.port,
                    arc_keys={"example.org": ("arc1", keys[1][("example.org", "arc1")])}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def owlery(dns, keys):
    """build(**settings) -> run(fields, body, **drive kwargs) -> (code, FakeMilterContext)."""
    from milters.adapter import make_factory
    from milters.stages import Services, StagePipeline
    from owlery.dns import build_resolver

    def build(**values):
        settings = Settings().replace(milter_authserv_id=AUTHSERV, milter_internal_networks=[],
                                      dkim_key_directory=str(keys[0]), dns_nameservers=["127.0.0.1"],
                                      dns_port=dns.port, dns_timeout=2, **values)
        pipeline = StagePipeline(settings, Services(resolver=build_resolver(settings), now=lambda: float(NOW)))
        cls = make_factory(settings, pipeline)

        def run(fields, body, **kw):
            ctx = OrderedContext()
            return feed(cls(), ctx, fields, body, **kw), ctx
        return run
    return build


class OrderedContext(FakeMilterContext):
    """FakeMilterContext that also keeps the header edits in the order the milter made them."""

    def __init__(self):
        super().__init__()
        self.log = []

    def addheader(self, name, value, idx=-1):
        super().addheader(name, value, idx)
        self.log.append(("add", name, value, idx))

    def chgheader(self, name, idx, value):
        super().chgheader(name, idx, value)
        self.log.append(("chg", name, idx, value))


def feed(milter, ctx, fields, body, *, sender, client=("client.example", "192.0.2.10"), mail_macros=None):
    """One message through a milter object in libmilter's order (milters.testing.drive, but with
    the fields as Postfix passes them rather than re-split from bytes)."""
    import socket
    milter._setctx(ctx)
    milter._protocol = Milter.P_HDR_LEADSPC
    milter.connect(client[0], socket.AF_INET, (client[1], 40000))
    milter.hello("client.example")
    ctx.macros.update(mail_macros or {})
    milter.envfrom(sender)
    ctx.macros["i"] = "4ABCDE1"
    milter.envrcpt("<bob@example.com>")
    milter.data()
    for name, value in fields:
        milter.header(name, value)
    milter.eoh()
    for i in range(0, len(body), CHUNK):
        milter.body(body[i:i + CHUNK])
    return milter.eom()


def postfix_edits(fields, ctx):
    """The header list after the milter's edits, applied in order as Postfix applies them:
    addheader appends, insheader(idx) inserts (idx 0: top), chgheader(name, n) changes or
    deletes the n-th field of that name. Values from the milter go in verbatim (LEADSPC)."""
    out = list(fields)
    for entry in ctx.log:
        if entry[0] == "add":
            _, name, value, idx = entry
            value = value.encode()
            if idx is None or idx < 0:
                out.append((name, value))
            else:
                out.insert(idx, (name, value))
        else:
            _, name, occ, value = entry
            hits = [i for i, (n, _) in enumerate(out) if n.lower() == name.lower()]
            if occ - 1 < len(hits):
                if value is None:
                    del out[hits[occ - 1]]
                else:
                    out[hits[occ - 1]] = (out[hits[occ - 1]][0], value.encode())
            elif value is not None:
                out.append((name, value.encode()))
    return out


# ---- an RFC 6376 reading of our signatures (independent of milters/dkimkeys.py) -----------------
def parse_tags(value):
    tags = {}
    for part in value.split(b";"):
        k, eq, v = part.partition(b"=")
        if eq:
            tags[k.strip().decode()] = re.sub(rb"[ \t\r\n]+", b"", v) if k.strip() in (b"b", b"bh", b"h") \
                else v.strip()
    return tags


def raw_fields(message):
    """[raw field bytes without the final CRLF] of a wire-form message."""
    head = message.partition(b"\r\n\r\n")[0]
    out = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and out:
            out[-1] += b"\r\n" + line
        else:
            out.append(line)
    return out


def rfc_verify(message, sig_field, public):
    """Verify one relaxed/relaxed DKIM-Signature field of `message` (wire form) as RFC 6376
    3.7 writes it; returns a reason or None."""
    name, _, value = sig_field.partition(b":")
    tags = parse_tags(value)
    body = message.partition(b"\r\n\r\n")[2]
    if tags["c"] != b"relaxed/relaxed":
        return f"c={tags['c']!r}"
    digest = hashlib.sha256(canon_body(body, "relaxed")).digest()
    if base64.b64decode(tags["bh"]) != digest:
        return "body hash"
    h = [x.decode() for x in tags["h"].split(b":")]
    data = b"".join(canon_header(f, "relaxed") for f in select_fields(raw_fields(message), h))
    unsigned = re.sub(rb"(^|;)([ \t\r\n]*b[ \t\r\n]*=)[^;]*", rb"\1\2", sig_field)
    data += canon_header(unsigned, "relaxed")[:-2]
    from cryptography.exceptions import InvalidSignature
    sig = base64.b64decode(tags["b"])
    try:
        if tags["a"] == b"ed25519-sha256":
            public.verify(sig, hashlib.sha256(data).digest())
        else:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding
            public.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return "b= does not verify"
    return None


def header_problems(fields, added, msg_fields):
    """RFC rules on the fields we added (list of (name, value) as they go out)."""
    problems = []
    n_from = sum(1 for n, _ in msg_fields if n.lower() == "from")
    from_domain = None
    for n, v in msg_fields:
        if n.lower() == "from":
            from_domain = v.decode("utf-8", "replace").rsplit("@", 1)[-1].strip(" >\t\r\n").lower()
    for name, value in added:
        text = name.encode() + b":" + value.replace(b"\n", b"\r\n")
        for line in text.split(b"\r\n"):
            if len(line) > 998:
                problems.append(f"{name}: a line of {len(line)} octets (RFC 5322 2.1.1: at most 998)")
            elif len(line) > 78 and name in WIDTH_CHECKED:
                problems.append(f"{name}: a line of {len(line)} octets (RFC 5322 2.1.1: SHOULD be <= 78): {line[:60]!r}")
        if name in ("DKIM-Signature", "ARC-Message-Signature", "ARC-Seal"):
            tags = parse_tags(value)
            if name != "ARC-Seal":
                h = tags["h"].lower().split(b":")
                if h.count(b"from") != n_from + 1:
                    problems.append(f"{name}: h= names From {h.count(b'from')} times for {n_from} From field(s) "
                                    "(not oversigned)")
                bad = sorted({x.decode() for x in h} & NOT_SIGNED)
                if bad:
                    problems.append(f"{name}: h= signs fields changed in transit or ARC/A-R fields: {bad}")
                present = {n.lower().encode() for n, _ in msg_fields}
                if name == "DKIM-Signature":
                    want = {w.encode() for w in Settings().dkim_sign_headers} & present
                    if not want <= set(h):
                        problems.append(f"{name}: h= leaves out {sorted(want - set(h))}")
            elif "h" in tags:
                problems.append("ARC-Seal: h= present (RFC 8617 4.1.3: MUST NOT)")
            d = tags["d"].decode().lower()
            if name == "DKIM-Signature":
                if from_domain is None or not (from_domain == d or from_domain.endswith("." + d)):
                    problems.append(f"DKIM-Signature: d={d} not aligned with From domain {from_domain}")
                if "i" in tags:
                    idom = tags["i"].decode().rsplit("@", 1)[-1].lower()
                    if not (idom == d or idom.endswith("." + d)):
                        problems.append(f"DKIM-Signature: i={tags['i']!r} outside d={d} (RFC 6376 3.5)")
                if tags.get("t") != str(NOW).encode():
                    problems.append(f"DKIM-Signature: t={tags.get('t')!r}, expected the session's clock {NOW}")
    return problems


def arc_problems(added, our_ar, expect_i, expect_cv):
    """RFC 8617 rules on one ARC set we added: instance numbers, cv=, AAR = our A-R."""
    problems = []
    arc = {n: v for n, v in added if n.startswith("ARC-")}
    if set(arc) != {"ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results"}:
        return [f"ARC set incomplete: {sorted(arc)}"]
    for name, value in arc.items():
        m = re.match(rb"\s*i\s*=\s*(\d+)\s*;", value)
        if not m or int(m.group(1)) != expect_i:
            problems.append(f"{name}: instance {m and m.group(1)!r}, expected i={expect_i} first")
    seal = parse_tags(arc["ARC-Seal"])
    if seal.get("cv") != expect_cv.encode():
        problems.append(f"ARC-Seal: cv={seal.get('cv')!r}, expected {expect_cv}")
    aar = arc["ARC-Authentication-Results"].decode().split(";", 1)[1]      # after "i=N;"
    aar_payload = aar.split(";", 1)[1] if ";" in aar else ""
    srv = aar.split(";", 1)[0].strip()
    if srv != AUTHSERV:
        problems.append(f"AAR authserv-id {srv!r}, ours is {AUTHSERV}")

    def resinfo(payload):
        return sorted(" ".join(p.split()) for p in strip_comments(payload).split(";") if p.strip())
    ar_payload = our_ar.split(";", 1)[1]
    if resinfo(aar_payload) != resinfo(ar_payload):
        problems.append(f"AAR {resinfo(aar_payload)} is not our A-R {resinfo(ar_payload)}")
    return problems


# ---- the peers ------------------------------------------------------------------------------------
def from_address(fields):
    import email.utils
    value = [v for n, v in fields if n.lower() == "from"][0].decode("utf-8", "replace")
    return email.utils.parseaddr(value.replace("\n", ""))[1]


def crlf(value):
    return value.replace(b"\n", b"\r\n")


def opendkim_batch(tmp_path, server, messages):
    """Every message (wire form) through OpenDKIM in verify mode, one miltertest run:
    {index: [A-R values]} and the indexes OpenDKIM never answered."""
    blocks = []
    for n, raw in enumerate(messages):
        fields, body = mta_view(raw)
        hdrs = "\n  ".join(f"hdr({lua_string(name.encode())}, {lua_string(crlf(v))})" for name, v in fields)
        chunks = "\n  ".join(f"assert(mt.bodystring(conn, {lua_string(body[i:i + 65535])}) == nil, 'body')"
                             for i in range(0, len(body), 65535))
        blocks.append(f"""
ok, err = pcall(function()
  local conn = start()
  function hdr(name, value)
    -- no SMFIP_HDR_LEADSPC: the MTA drops one leading space, OpenDKIM puts it back
    if value:sub(1, 1) == " " then value = value:sub(2) end
    assert(mt.header(conn, name, value) == nil, "header " .. name)
  end
  {hdrs}
  if not mt.test_option(conn, SMFIP_NOEOH) then assert(mt.eoh(conn) == nil, "eoh") end
  {chunks}
  finish(conn, {n})
end)
if not ok then mt.echo("CASE {n} NOANSWER " .. tostring(err)) end""")
    script = tmp_path / "signdiff.lua"
    script.write_text(f"""
{lua_session_helpers("192.0.2.77", OPENDKIM_TIMEOUT)}
function finish(conn, n)
  mt.macro(conn, string.byte("E"), "i", "ODQID")
  assert(mt.eom(conn) == nil, "eom")
  echo_results(conn, n)
end
{"".join(blocks)}
""")
    code, out = run_miltertest(script, server["spec"], timeout=120)
    assert code == 0, out[-3000:] + server["proc"].log_tail()
    found = {n: [] for n in range(len(messages))}
    for m in re.finditer(r"CASE (\d+) AR<<(.*?)>>", out, re.S):
        found[int(m.group(1))].append(m.group(2))
    return found, {int(n) for n in re.findall(r"CASE (\d+) NOANSWER", out)}


def opendkim_file(tmp_path, raw, keys_txt):
    """`opendkim -t FILE` (its own message reader, keys from TestPublicKeys): the A-R value it
    would add, for messages miltertest cannot send (it overflows on a field over ~1 KiB)."""
    import subprocess
    (tmp_path / "keys").write_text("".join(f"{name} {value}\n" for name, value in keys_txt.items()))
    conf = tmp_path / "opendkim-t.conf"
    conf.write_text(f"Mode v\nTestPublicKeys {tmp_path / 'keys'}\nSyslog no\nAlwaysAddARHeader yes\n"
                    "AuthservID opendkim.test\nMinimumKeyBits 1024\n")
    msg = tmp_path / "msg.eml"
    msg.write_bytes(raw)
    done = subprocess.run([_diff.OPENDKIM, "-x", str(conf), "-vvv", "-t", str(msg)], capture_output=True,
                          text=True, timeout=30)
    return done.returncode, done.stdout + done.stderr


def rspamd_dkim(reply):
    """{selector: 'pass'|'fail'|...} from Rspamd's DKIM_TRACE options ("domain:+", ...) and the
    R_DKIM_* symbols' options."""
    syms = reply.get("symbols", {})
    out = {}
    for sym, verdict in ((DKIM_PASS, "pass"), (DKIM_FAIL, "fail"), ("R_DKIM_TEMPFAIL", "temperror"),
                         ("R_DKIM_PERMFAIL", "permerror")):
        for opt in (syms.get(sym) or {}).get("options", []):
            out.setdefault(opt, []).append(verdict)
    return out, set(syms)


# ---- allowances -----------------------------------------------------------------------------------
# (peer prefix of the problem, message kind, text in the problem) -> why the peer, not Owlery, is
# wrong. Each is met in every run (test_every_allowance_is_still_needed).
_RSPAMD_DUPLICATES = (
    "Rspamd 3.4 fails on purpose every signature over a message holding twice a field that RFC 5322 3.6 "
    "allows once (its log: 'header subject is intended to be unique by email standards, but we have 2 "
    "headers of this type, artificially break DKIM check'); RFC 6376 5.4.2 defines signing several "
    "instances (bottom up), and OpenDKIM, dkimpy and the RFC reading here pass these signatures.")
_RSPAMD_COLON = (
    "`Subject : x`: Rspamd keeps the blank in the field name, so h=subject finds no Subject; RFC 6376 "
    "3.4.2 (relaxed) deletes WSP before the colon, RFC 5322 4.5 allows it (obs-subject, obs-optional); OpenDKIM and "
    "dkimpy pass.")
_RSPAMD_FF = (
    "Rspamd's relaxed body canonicalisation treats a form feed as white space; RFC 6376 3.4.4 reduces "
    "only WSP (SP and HTAB, RFC 5234); OpenDKIM and dkimpy keep the FF and pass.")
_RSPAMD_CR = (
    "Rspamd takes a lone CR in the body for a line end ('a\\rb' hashed as 'a CRLF b'); RFC 6376 3.4.4 "
    "touches only WSP and CRLF, a lone CR is line content (RFC 5322 2.3 forbids it, Postfix passes it on); "
    "dkimpy and the RFC reading agree with Owlery.")
_OPENDKIM_CR = (
    "OpenDKIM drops a lone CR from the body ('mid\\rline' hashed as 'midline', 'a \\r' + CRLF as 'a'); "
    "RFC 6376 3.4.4 removes only WSP, a lone CR is line content; dkimpy and the RFC reading agree with Owlery.")
_OPENDKIM_EMPTY = (
    "a message with no body (no body chunk over the milter protocol): OpenDKIM fails it though the "
    "relaxed hash of the empty body (RFC 6376 3.4.4, erratum 1376) is right; its `-t` mode and "
    "Rspamd pass the same signature (as in test_dkim_differential's allowance).")
ALLOWED: dict[tuple[str, str, str], str] = {
    ("rspamd: DKIM", "h_repeated", ""): _RSPAMD_DUPLICATES,
    ("rspamd: ARC of our seal", "h_repeated", ""): _RSPAMD_DUPLICATES + " (our AMS signs them too)",
    ("rspamd: DKIM", "h_space_before_colon", ""): _RSPAMD_COLON,
    ("rspamd: ARC of our seal", "h_space_before_colon", ""): _RSPAMD_COLON,
    ("rspamd: DKIM", "b_form_feed", ""): _RSPAMD_FF,
    ("rspamd: ARC of our seal", "b_form_feed", ""): _RSPAMD_FF,
    ("owlery verifying Rspamd's seal", "b_form_feed", "arc=fail"): _RSPAMD_FF + " Rspamd's AMS bh= is thus wrong.",
    ("rspamd: DKIM", "b_bare_cr_inside", ""): _RSPAMD_CR,
    ("rspamd: ARC of our seal", "b_bare_cr_inside", ""): _RSPAMD_CR,
    ("owlery verifying Rspamd's seal", "b_bare_cr_inside", "arc=fail"): _RSPAMD_CR + " Rspamd's AMS bh= is thus wrong.",
    ("rspamd: DKIM", "b_bare_cr_at_end", ""): _RSPAMD_CR,
    ("rspamd: ARC of our seal", "b_bare_cr_at_end", ""): _RSPAMD_CR,
    ("owlery verifying Rspamd's seal", "b_bare_cr_at_end", "arc=fail"): _RSPAMD_CR + " Rspamd's AMS bh= is thus wrong.",
    ("opendkim", "b_bare_cr_inside", "dkim=fail"): _OPENDKIM_CR,
    ("opendkim", "b_bare_cr_at_end", "dkim=fail"): _OPENDKIM_CR,
    ("owlery verifying Rspamd's seal", "h_repeated", "arc=fail"): _RSPAMD_DUPLICATES + " Rspamd's own AMS fails too.",
    ("owlery verifying Rspamd's seal", "h_space_before_colon", "arc=fail"): _RSPAMD_COLON + " Rspamd's AMS misses Subject.",
    ("opendkim", "b_empty", "dkim=fail"): _OPENDKIM_EMPTY,
}


@dataclass
class Outcome:
    msg: Msg
    problems: list = field(default_factory=list)      # failures on our side or at a peer
    passes: dict = field(default_factory=dict)        # check name -> bool


@pytest.fixture(scope="module")
def run_all(tmp_path_factory, owlery, rspamd, opendkim, keys):
    signer = owlery(dkim_sign_keys={"example.net": ["r1", "e1"]})
    sealer = owlery(milter_inbound_stages=["dkim_verify", "arc_verify", "authres", "arc_seal"],
                    arc_seal_domain="example.org", arc_seal_selector="a1")
    verifier = owlery(milter_inbound_stages=["dkim_verify", "arc_verify", "authres"])
    public = keys[3]
    messages = generate()
    outcomes, sealed_all = [], []
    started = time.monotonic()
    for msg in messages:
        o = Outcome(msg)
        outcomes.append(o)
        fields, body = mta_view(msg.smtp())
        # 1. Owlery signs (outbound)
        code, ctx = signer(fields, body, **AUTHED)
        assert code == Milter.ACCEPT, (msg.kinds, ctx.replies)
        out_fields = postfix_edits(fields, ctx)
        signed = wire(out_fields, body)
        added = [(n, v.encode()) for n, v, _ in ctx.added]
        sigs = [v for n, v in added if n == "DKIM-Signature"]
        if len(sigs) != 2:
            o.problems.append(f"owlery: {len(sigs)} DKIM-Signature(s) added: {ctx.added}")
            sealed_all.append(signed)
            continue
        o.problems += ["ours: " + p for p in header_problems(out_fields, added, fields)]
        o.selectors = {}
        for f in raw_fields(signed):
            if f.lower().startswith(b"dkim-signature:") and b"d=example.net" in f:
                tags = parse_tags(f.partition(b":")[2])
                sel = tags["s"].decode()
                o.selectors[tags["b"][:8].decode()] = sel
                why = rfc_verify(signed, f, public[("example.net", sel)])
                o.passes[f"rfc:{sel}"] = why is None
                if why:
                    o.problems.append(f"RFC 6376 reading: s={sel}: {why}")
        # 2. a forwarder running Owlery seals it
        code, ctx = sealer(*mta_view(signed), **OUTSIDE)
        assert code == Milter.ACCEPT
        sealed_fields = postfix_edits(mta_view(signed)[0], ctx)
        sealed = wire(sealed_fields, body)
        sealed_all.append(sealed)
        added = [(n, v.encode()) for n, v, _ in ctx.added]
        our_ar = ctx.header_value("Authentication-Results")
        if our_ar.count("dkim=pass") != 2:
            o.problems.append(f"owlery-self: dkim_verify (dkimpy) on our own signatures: {our_ar}")
        o.problems += ["ours (ARC i=1): " + p for p in arc_problems(added, our_ar, 1, "none")]
        o.problems += ["ours (ARC i=1): " + p for p in header_problems(sealed_fields, [
            a for a in added if a[0].startswith("ARC-")], mta_view(signed)[0])]
        # 3. Rspamd verifies both DKIM signatures and our ARC set
        reply = rspamd.check(sealed, ip="192.0.2.77", sender="alice@example.net", rcpts=["bob@example.com"])
        dk, syms = rspamd_dkim(reply)
        dkim_ok = sorted(v for opts in dk.values() for v in opts) == ["pass", "pass"]
        o.passes["rspamd:dkim"] = dkim_ok
        o.passes["rspamd:arc(i=1 ours)"] = ARC_PASS in syms and ARC_FAIL not in syms
        if not dkim_ok:
            o.problems.append(f"rspamd: DKIM {dk} ({sorted(s for s in syms if 'DKIM' in s)})")
        if not o.passes["rspamd:arc(i=1 ours)"]:
            o.problems.append(f"rspamd: ARC of our seal: {sorted(s for s in syms if 'ARC' in s)} "
                              f"{reply['symbols'].get(ARC_FAIL) or reply['symbols'].get('ARC_INVALID')}")
        # 4. Rspamd seals our signed message; Owlery verifies its ARC set
        # (envelope sender = the From address: Rspamd seals only when they agree)
        reply = rspamd.check(signed, ip="192.0.2.10", sender=from_address(fields), rcpts=["bob@example.com"])
        if "ARC_SIGNED" not in reply["symbols"]:
            o.problems.append(f"rspamd did not seal: {sorted(reply['symbols'])}")
            continue
        r_sealed = apply_headers(signed, reply)
        code, ctx = verifier(*mta_view(r_sealed), **OUTSIDE)
        ar = " ".join(ctx.header_value("Authentication-Results").split())
        o.passes["owlery:arc(rspamd i=1)"] = "arc=pass" in ar
        if "arc=pass" not in ar or ar.count("dkim=pass") != 2:
            o.problems.append(f"owlery verifying Rspamd's seal: {ar}")
        if not o.passes["owlery:arc(rspamd i=1)"]:
            continue
        # 5. Owlery seals i=2 over Rspamd's i=1 (valid: cv=pass); Rspamd validates the chain
        code, ctx = sealer(*mta_view(r_sealed), **OUTSIDE)
        two = wire(postfix_edits(mta_view(r_sealed)[0], ctx), body)
        added = [(n, v.encode()) for n, v, _ in ctx.added]
        o.problems += ["ours (ARC i=2): " + p for p in arc_problems(added, ctx.header_value("Authentication-Results"),
                                                                     2, "pass")]
        syms = rspamd.symbols(two, ip="192.0.2.77", sender="alice@example.net", rcpts=["bob@example.com"])
        o.passes["rspamd:arc(i=2 ours)"] = ARC_PASS in syms and ARC_FAIL not in syms
        if not o.passes["rspamd:arc(i=2 ours)"]:
            o.problems.append(f"rspamd on Rspamd i=1 + Owlery i=2: {sorted(s for s in syms if 'ARC' in s)}")
    # 6. OpenDKIM verifies the DKIM signatures of every sealed message: over miltertest in one
    # batch, or with `opendkim -t` when a field is too long for miltertest's buffer.
    lua_ok = [n for n, raw in enumerate(sealed_all)
              if all(len(name) + len(v) < MILTERTEST_FIELD_MAX for name, v in mta_view(raw)[0])]
    tmp = tmp_path_factory.mktemp("signdiff-opendkim")
    batch, silent_b = opendkim_batch(tmp, opendkim, [sealed_all[n] for n in lua_ok])
    found = {n: batch[i] for i, n in enumerate(lua_ok)}
    silent = {lua_ok[i] for i in silent_b}
    for n, raw in enumerate(sealed_all):
        if n not in found:
            code, out = opendkim_file(tmp, raw, keys[2])
            found[n] = [m.group(1) for m in re.finditer(r"hname='Authentication-Results' hvalue='(.*?)'", out, re.S)]
            if code != 0 or not found[n]:
                silent.add(n)
    via_file = len(sealed_all) - len(lua_ok)
    for n, o in enumerate(outcomes):
        if not getattr(o, "selectors", None):
            continue
        got = {props.get("header.b", "").strip('"')[:8]: result for result, props in dkim_verdicts(found[n])
               if props.get("header.d", "").lower() == "example.net"}
        mine = {sel: got.get(b8, "none" if n not in silent else "no-answer") for b8, sel in o.selectors.items()}
        for sel, result in mine.items():
            o.passes[f"opendkim:{sel}"] = result == "pass"
            if result != "pass":
                o.problems.append(f"opendkim: s={sel}: dkim={result} ({found[n]})")
    import os
    if os.environ.get("SIGNDIFF_DUMP"):
        with open(os.environ["SIGNDIFF_DUMP"], "w") as f:
            for o in outcomes:
                for p in o.problems:
                    f.write(f"#{o.msg.n} {'+'.join(o.msg.kinds)}: {p}\n")
    print(f"\nsign differential: {len(messages)} messages in {time.monotonic() - started:.1f} s "
          f"({via_file} through `opendkim -t`)")
    return outcomes


def _failures(outcomes, prefix):
    out = []
    for o in outcomes:
        for p in o.problems:
            if p.startswith(prefix):
                allowed = [r for (peer, kind, what), r in ALLOWED.items()
                           if p.startswith(peer) and kind in o.msg.kinds and what in p]
                if not allowed:
                    out.append(f"#{o.msg.n} {'+'.join(o.msg.kinds)}: {p}")
    return out


def _count(outcomes, check):
    vals = [o.passes[k] for o in outcomes for k in o.passes if k.startswith(check)]
    return f"{check}: {sum(vals)}/{len(vals)} pass"


def test_generator_covers_every_kind():
    kinds = {k for m in generate() for k in m.kinds}
    assert set(HEADER_KINDS) | set(BODY_KINDS) <= kinds


def test_our_dkim_signatures_pass_at_opendkim(run_all):
    print(_count(run_all, "opendkim"))
    assert not _failures(run_all, "opendkim"), "\n".join(_failures(run_all, "opendkim"))


def test_our_dkim_signatures_and_arc_sets_pass_at_rspamd(run_all):
    print(_count(run_all, "rspamd:dkim"), _count(run_all, "rspamd:arc(i=1"), _count(run_all, "rspamd:arc(i=2"))
    fails = _failures(run_all, "rspamd")
    assert not fails, "\n".join(fails)


def test_rspamd_arc_sets_pass_at_owlery(run_all):
    print(_count(run_all, "owlery:arc"))
    fails = _failures(run_all, "owlery")
    assert not fails, "\n".join(fails)


def test_our_signatures_verify_as_rfc6376_reads_and_with_our_verifier(run_all):
    print(_count(run_all, "rfc:"))
    fails = _failures(run_all, "RFC 6376") + _failures(run_all, "owlery-self")
    assert not fails, "\n".join(fails)


def test_our_headers_follow_the_rfc_rules(run_all):
    fails = _failures(run_all, "ours")
    assert not fails, "\n".join(fails[:40]) + f"\n({len(fails)} in all)"


def test_every_allowance_is_still_needed(run_all):
    used = {key for key in ALLOWED for o in run_all for p in o.problems
            if p.startswith(key[0]) and key[1] in o.msg.kinds and key[2] in p}
    assert used == set(ALLOWED), f"allowances no longer met: {set(ALLOWED) - used}"


# ---- header edits by earlier stages --------------------------------------------------------------
from milters.stages import Stage  # noqa: E402

EDITED = (b"From: Alice <alice@example.net>\r\nTo: bob@example.com\r\nCc: carol@example.com\r\n"
          b"Cc: dave@example.com\r\nSubject: quarterly  figures\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
          b"Message-ID: <edit@example.net>\r\n\r\nThe figures.\r\n")


class HeaderEditor(Stage):
    """Edits signed fields before dkim_sign / arc_seal run, as the spam stage's Subject tag does:
    changes Subject, deletes the first Cc, appends a Reply-To."""

    name = "header_editor"

    def check(self, message, report):
        report.change_header("Subject", 1, "[SPAM] " + message.get_all("Subject")[0].text)
        report.remove_header("Cc", 1)
        report.append_header("Reply-To", "list@example.net")


def test_header_edits_of_earlier_stages_are_signed_and_sealed(owlery, rspamd, keys):
    """The signature and the AMS cover the fields as they leave (after the stages' edits), not as
    they came in: before, a Subject tag broke both at every verifier."""
    from milters.stages import STAGES
    STAGES["header_editor"] = "tests.milters.test_sign_differential:HeaderEditor"
    try:
        signer = owlery(dkim_sign_keys={"example.net": ["r1", "e1"]},
                        milter_outbound_stages=["header_editor", "dkim_sign", "authres"])
        sealer = owlery(milter_inbound_stages=["dkim_verify", "arc_verify", "authres", "header_editor", "arc_seal"],
                        arc_seal_domain="example.org", arc_seal_selector="a1")
        verifier = owlery(milter_inbound_stages=["dkim_verify", "arc_verify", "authres"])
        fields, body = mta_view(EDITED)
        code, ctx = signer(fields, body, **AUTHED)
        out = postfix_edits(fields, ctx)
        signed = wire(out, body)
        assert b"Subject: [SPAM] quarterly  figures" in signed and signed.count(b"Cc:") == 1, signed
        for f in raw_fields(signed):
            if f.startswith(b"DKIM-Signature:"):
                sel = parse_tags(f.partition(b":")[2])["s"].decode()
                assert rfc_verify(signed, f, keys[3][("example.net", sel)]) is None, sel
        dk, _ = rspamd_dkim(rspamd.check(signed, ip="192.0.2.77", sender="alice@example.net"))
        assert sorted(v for opts in dk.values() for v in opts) == ["pass", "pass"], dk
        code, ctx = verifier(*mta_view(signed), **OUTSIDE)
        assert ctx.header_value("Authentication-Results").count("dkim=pass") == 2
        # a forwarder tags it again and seals: its AMS must cover the tagged Subject
        code, ctx = sealer(*mta_view(signed), **OUTSIDE)
        sealed = wire(postfix_edits(mta_view(signed)[0], ctx), body)
        assert b"Subject: [SPAM] [SPAM] quarterly  figures" in sealed
        syms = rspamd.symbols(sealed, ip="192.0.2.77", sender="alice@example.net")
        assert ARC_PASS in syms and ARC_FAIL not in syms, syms
        code, ctx = verifier(*mta_view(sealed), **OUTSIDE)
        assert "arc=pass" in ctx.header_value("Authentication-Results")
    finally:
        del STAGES["header_editor"]
