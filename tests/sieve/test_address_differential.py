"""Generated differential of address header parsing against Pigeonhole's sieve-test (Debian
dovecot-sieve 0.5.19): seeded To/From/Cc/Sender/Reply-To/Resent-* fields of every shape RFC 5322
allows and many it does not (display names of atoms, quoted strings and RFC 2047 encoded words,
comments anywhere, obsolete routes, groups, empty list items, domain literals, quoted and dotty
local parts, raw UTF-8, missing or doubled '@', trailing garbage, folding, long fields, repeated
fields, +detail), and for each header what both engines give for `address :matches "*"` under
:all :localpart :domain :user :detail (subaddress, delimiter "+"), `address :count` under :all
:localpart :detail, and `exists`.

The probe writes each value, URL-encoded (`set :encodeurl`), into a header field it adds
(`addheader :last "X-P" "<header>:<part>:<value>"`) and keeps the message; sieve-test runs with
-e and its stored message is read (one run per message, several generated fields a message). A
fileinto folder name would do for short values, but sieve-test prints a folder name cut at 128
octets (str_sanitize), and long fields are under test here.

Every difference must be explained: `explain` rebuilds what sieve-test gave from Owlery's own
parser plus Pigeonhole's faults (DEVIATIONS, each with its RFC reason), field by field. The fixes
this found (sieve/address.py, sieve/extensions/core.py) have regression cases in FIXED
(test_fixed_address_fields; test_sieve_test_reads_the_fixed_fields_so checks them against
sieve-test). CI runs
FIELDS generated fields of SEED on two sieve-test homes at once; a larger run by hand:
    .venv/bin/python -m tests.sieve.test_address_differential N SEED
(prints each unexplained difference and the counts by class).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import datetime as dt
import os
import random
import re
import shutil
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest


from tests.sieve.differential import pigeonhole

SEED = 20261207
FIELDS = 300

HEADERS = ("To", "From", "Cc", "Sender", "Reply-To", "Resent-From", "Resent-To", "Resent-Cc", "Resent-Sender")
PARTS = ("all", "localpart", "domain", "user", "detail")
COUNT_PARTS = ("all", "localpart", "detail")
MAX_COUNT = 15
MAX_FIELDS = 3          # fields of one name in a message, at most


# --- the probe ----------------------------------------------------------------------------

def probe_script() -> bytes:
    """For each header: the first value of each address part, `exists`, and the count (under
    :all :localpart :detail) over all its fields; and the same parts and the :all count of each
    of its first MAX_FIELDS fields alone (`:index`, RFC 5260), so that each field is judged on
    its own. A count is found by halving (0..MAX_COUNT, else "many")."""
    out = ['require ["variables", "enotify", "editheader", "relational", "subaddress", "index", '
           '"comparator-i;ascii-numeric"];\r\n']

    def add(h, what, value):
        return f'addheader :last "X-P" "{h}:{what}:{value}";'

    def count(test: str, h: str, what: str) -> str:
        def tree(lo: int, hi: int) -> str:
            if lo == hi:
                return add(h, what, lo)
            mid = (lo + hi) // 2
            return (f'if {test} "le" :comparator "i;ascii-numeric" "{h}" "{mid}" {{ {tree(lo, mid)} }} '
                    f'else {{ {tree(mid + 1, hi)} }}')
        return (f'if {test} "gt" :comparator "i;ascii-numeric" "{h}" "{MAX_COUNT}" {{ {add(h, what, "many")} }} '
                f'else {{ {tree(0, MAX_COUNT)} }}\r\n')

    for h in HEADERS:
        for p in PARTS:
            out.append(f'if address :matches :{p} "{h}" "*" {{ set :encodeurl "v" "${{1}}"; {add(h, p, "${v}")} }}\r\n')
        out.append(f'if exists "{h}" {{ {add(h, "exists", 1)} }}\r\n')
        for p in COUNT_PARTS:
            out.append(count(f"address :{p} :count", h, "count-" + p))
        for i in range(1, MAX_FIELDS + 1):
            for p in PARTS:
                out.append(f'if address :index {i} :matches :{p} "{h}" "*" {{ set :encodeurl "v" "${{1}}"; '
                           f'{add(h, f"i{i}-{p}", "${v}")} }}\r\n')
            out.append(count(f"address :index {i} :count", h, f"i{i}-count"))
    out.append("keep;\r\n")
    return "".join(out).encode()


def observed(message: bytes) -> dict[tuple[str, str], str]:
    """{(header, what): value} from the X-P fields of a stored message (values URL-decoded:
    octets as UTF-8, bad ones as \\xNN)."""
    m = re.search(rb"\r?\n\r?\n", message)
    head = re.sub(rb"\r?\n[ \t]+", b" ", message if m is None else message[:m.start()])
    out = {}
    for line in re.split(rb"\r?\n", head):
        name, _, value = line.partition(b":")
        if name.strip().lower() != b"x-p":
            continue
        h, what, v = value.strip().decode("ascii", "replace").split(":", 2)
        out[(h, what)] = urllib.parse.unquote_to_bytes(v).decode("utf-8", "backslashreplace")
    return out


def run_owlery(script, message: bytes) -> dict | str:
    """`script`: the probe, compiled (sieve.api.compile_script) or its source."""
    from sieve.api import Envelope, Keep, MemoryHost, compile_script, run
    if isinstance(script, bytes):
        script = compile_script(script, name="probe")
    result = run(script, message, Envelope(mail_from="s@example.com", rcpt_to="r@example.org",
                                            orig_rcpt="r@example.org"),
                 host=MemoryHost(), now=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    if result.status != "ok":
        return f"error {result.status} {[str(e) for e in result.errors]}"
    keeps = [a for a in result.effective_actions() if isinstance(a, Keep)]
    return observed(result.message_for(keeps[0])) if keeps else "error: no keep"


class Peer:
    """One sieve-test home (removed by close())."""

    def __init__(self):
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.dir = tempfile.mkdtemp(prefix="sieve-address-", dir=shm)
        self.ph = pigeonhole.Pigeonhole(Path(self.dir), ())

    def run(self, script_src: bytes, message: bytes) -> dict | str:
        raw = self.ph.run(script_src, message, "s@example.com", "r@example.org", "r@example.org")
        if raw.status != "ok" or len(raw.stored) != 1:
            return f"error {raw.status} {raw.log[-400:]}"
        return observed(raw.stored[0][2])

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def fold_tabs_as_spaces(message: bytes) -> bytes:
    """Dovecot unfolds 'CRLF TAB' to a space where RFC 5322 2.2.3 keeps the TAB (deviation
    unfold-keeps-tab of tests/sieve/differential/deviations.toml): Owlery reads the message
    with those TABs as spaces, so that the rest is compared."""
    return re.sub(rb"(\r?\n)\t", rb"\1 ", message)


# --- the generator ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    fields: tuple[tuple[str, bytes], ...]     # (header name as written, raw value)
    clean: tuple[bool, ...] = ()              # per field: made of well-formed items only

    @property
    def message(self) -> bytes:
        head = b"".join(n.encode() + b":" + v + b"\r\n" for n, v in self.fields)
        return head + b"Subject: probe\r\nMessage-ID: <probe@example.net>\r\n\r\nbody\r\n"

    def values(self, header: str) -> list[bytes]:
        return [v for n, v in self.fields if n.lower() == header.lower()]


_ATOMS = ["a", "john", "john.doe", "J.R.R", "x_y", "o'neil", "a!#$%&'*/=?^`{|}~-b", "Usr", "UPPER", "1234",
          "info", "no-reply", "a=b"]
_DETAILS = ["+tag", "+", "++", "+a+b", "+x.y", "+Tag-1", "++x", "+ü", ""]
_DOTTY = ["x..y", ".x", "y.", "..", ".", "a...b", ".a.", "a.b."]
_QUOTED_LOCALS = ['"a b"', '"a\\"b"', '"a\\\\b"', '""', '"a@b"', '"a+b c"', '"a,b"', '"x"."y"', 'a."b c".d',
                  '"a.b"', '"user+tag"', '" "', '"a\\ b"', '"(c)"', '"a\\\tb"', '"a\r\n b"', '"+d"', '"a"b',
                  '"é"']
_UTF8_LOCALS = ["jörg", "用户", "ñ+tag", "café.x"]
_DOMAINS = ["example.com", "EXAMPLE.Com", "b", "ex-ample.org", "mail.example.co.uk", "x_y.example", "-x.com",
            "123", "a.b.c.d.e.f", "localhost", "xn--mnchen-3ya.de"]
_LITERALS = ["[1.2.3.4]", "[IPv6:2001:db8::1]", "[ 1.2.3.4 ]", "[a\\]b]", "[]", "[x y]", "[1.2.3.4", "[IPv6:::1]",
             "[a[b]"]
_BAD_DOMAINS = ["exa..mple.com", ".example.com", "example.com.", "exa mple.com", "example (c) .com",
                "example . com", "münchen.de", "例え.jp", "a@b", ""]
_COMMENTS = ["(c)", "(a (nested) c)", "(a \\) b)", "((()))", "(x\\(y)", "()", "(=?utf-8?q?c=C3=A9?=)", "(é)",
             "(a,b)", "(a@b)", "(<x@y>)", "(a;b:c)"]
_NAMES = ["John Doe", "J. Doe", "John Q. Public", '"Doe, John"', '"a\\"b"', '"x\\\\"', '"quoted name"',
          "=?utf-8?q?J=C3=B6rg?=", "=?utf-8?b?SsO2cmc=?=", "=?utf-8?q?a b?=", "=?bogus?x?y?=", "=?utf-8?b?!!?=",
          "=?iso-8859-1?q?caf=E9?= x", "Jörg Müller", "日本語", '"Jörg"', "Mr.", ".", "a.b", "It's me",
          "=?utf-8?q?=3Cx=40y=3E?=", '"<a@b>"', "x (c) y", '""', "\"unterminated", "a\\b", "a[b]"]


class _Gen(random.Random):
    """The generator's random source; `clean`: this field gets only well-formed items (RFC
    5322 syntax, obsolete forms included), so that most fields are compared exactly."""
    clean = False


_CLEAN_QUOTED = ['"a b"', '"a\\"b"', '"a\\\\b"', '"a@b"', '"a+b c"', '"a,b"', '"a.b"', '"user+tag"', '" "',
                 '"a\\ b"', '"(c)"', '"+d"']
_CLEAN_LITERALS = ["[1.2.3.4]", "[IPv6:2001:db8::1]", "[ 1.2.3.4 ]", "[a\\]b]", "[IPv6:::1]"]
_BAD_NAMES = {'"unterminated', "a\\b", "a[b]", "."}


def _ws(r: random.Random) -> str:
    return r.choice(["", "", " ", " ", "  ", "\t", " \t "])


def _local(r: random.Random) -> str:
    k = r.random()
    if r.clean:
        if k < 0.6:
            return r.choice(_ATOMS) + (r.choice(_DETAILS) if r.random() < 0.4 else "")
        return r.choice(_DOTTY) if k < 0.75 else r.choice(_CLEAN_QUOTED) if k < 0.95 else r.choice(_UTF8_LOCALS)
    if k < 0.45:
        base = r.choice(_ATOMS)
        if r.random() < 0.4:
            base += r.choice(_DETAILS)
        if r.random() < 0.1:
            base = r.choice(["", "+"]) + r.choice(_DETAILS)       # empty user, '+' first
        return base
    if k < 0.6:
        return r.choice(_DOTTY)
    if k < 0.8:
        return r.choice(_QUOTED_LOCALS)
    if k < 0.9:
        return r.choice(_UTF8_LOCALS)
    # odd: comment or spaces inside, several dots and words
    a, b = r.choice(_ATOMS), r.choice(_ATOMS)
    return r.choice([f"{a} . {b}", f"{a}(c).{b}", f"{a} {b}", f"{a}.(c){b}", f'{a}."{b}"', f"{a}\\.{b}"])


def _domain(r: random.Random) -> str:
    k = r.random()
    if r.clean:
        return r.choice(_DOMAINS) if k < 0.8 else r.choice(_CLEAN_LITERALS)
    if k < 0.7:
        return r.choice(_DOMAINS)
    if k < 0.85:
        return r.choice(_LITERALS)
    return r.choice(_BAD_DOMAINS)


def _addr_spec(r: random.Random) -> str:
    k = r.random()
    local, domain = _local(r), _domain(r)
    if k < 0.82 or r.clean:
        return f"{local}{_ws(r) if r.random() < 0.1 else ''}@{_ws(r) if r.random() < 0.1 else ''}{domain}"
    if k < 0.87:
        return local                                  # missing @
    if k < 0.92:
        return f"{local}@{domain}@{r.choice(_DOMAINS)}"   # several @
    if k < 0.95:
        return f"@{domain}"
    if k < 0.98:
        return f"{local}@"
    return f"{local}@@{domain}"


def _maybe_comment(r: random.Random, s: str) -> str:
    if r.random() < 0.15:
        c = r.choice(_COMMENTS)
        where = r.randrange(3)
        if where == 0:
            return f"{c}{_ws(r)}{s}"
        if where == 1:
            return f"{s}{_ws(r)}{c}"
        # inside: next to the '@'
        return s.replace("@", f"{c}@", 1) if r.random() < 0.5 else s.replace("@", f"@{c}", 1)
    return s


def _route(r: random.Random) -> str:
    return r.choice(["@r1:", "@r1,@r2:", "@r1,,@r2:", "@:", "@r1 ,@r2 :", "@[1.2.3.4]:", "@r1", "@r1,r2:",
                     "@r1.example.com,@r2.example.com:"])


def _mailbox(r: random.Random) -> str:
    k = r.random()
    if k < 0.45:
        return _maybe_comment(r, _addr_spec(r))
    name = r.choice(_NAMES) if r.random() < 0.8 else ""
    if r.clean and name in _BAD_NAMES:
        name = "x"
    inner = _addr_spec(r)
    if r.random() < 0.08:
        inner = (r.choice(["@r1:", "@r1,@r2:", "@r1,,@r2:", "@[1.2.3.4]:", "@r1 , @r2:"]) if r.clean else _route(r)) + inner
    if r.random() < 0.1:
        inner = f"{_ws(r)}{inner}{_ws(r)}"
    angle = f"<{inner}>"
    if r.random() < 0.06 and not r.clean:
        angle = r.choice([f"<{inner}", f"<{inner}>>", f"<<{inner}>", f"<{inner}> x", f"<{inner}>;", "<>",
                          f"<{inner}> <{inner}>"])
    s = f"{name}{_ws(r) or ' ' if name else ''}{angle}" if name else f"{_ws(r)}{angle}"
    return _maybe_comment(r, s)


def _group(r: random.Random) -> str:
    name = r.choice(["undisclosed-recipients", "g", "Group Name", '"quoted group"', "=?utf-8?q?gr=C3=BCn?=", ""])
    k = r.random()
    if k < 0.3:
        members = ""
    else:
        members = ", ".join(_mailbox(r) for _ in range(r.randint(1, 3)))
    end = r.choice([";", ";", ";", " ;", "", ";;"]) if not r.clean else r.choice([";", " ;"])
    if r.random() < 0.05 and not r.clean:
        members = f"h: {members};"                  # nested group
    return f"{name}:{_ws(r)}{members}{end}"


def _item(r: random.Random) -> str:
    k = r.random()
    if r.clean:
        return _mailbox(r) if k < 0.85 else _group(r) if k < 0.95 else ""
    if k < 0.75:
        return _mailbox(r)
    if k < 0.87:
        return _group(r)
    if k < 0.92:
        return ""                                   # an empty item: 'a@b,,c@d'
    if k < 0.95:
        return r.choice(_COMMENTS)                  # a comment alone
    return r.choice(["garbage", "a b c", "<", ">", "@", ":", ";", "\\", '"', "(", "[", "a@b c@d", "a@b <c@d>",
                     "x y <a@b> z", "a@b;", ":;", "<a@b>,", "a@b)"])


def _fold(r: random.Random, value: str) -> str:
    """Fold at some white space (CRLF before it), now and then before a token."""
    out = []
    for i, ch in enumerate(value):
        if ch in " \t" and r.random() < 0.15:
            out.append("\r\n")
        elif i and ch not in " \t" and value[i - 1] in ",<>" and r.random() < 0.03:
            out.append("\r\n" + r.choice([" ", " ", "\t"]))
        out.append(ch)
    return "".join(out)


def field_value(r: random.Random) -> bytes:
    k = r.random()
    if k < 0.03:
        return r.choice([b"", b" ", b"  \t", b" ,", b" ,,", b" ;"])
    n = r.randint(1, 3) if k < 0.9 else r.randint(8, 30)      # some very long fields
    items = [_item(r) for _ in range(n)]
    sep = [r.choice([",", ", ", " ,", ",  ", ",\t", " , "]) for _ in items]
    value = "".join(it + (sep[i] if i < n - 1 else "") for i, it in enumerate(items))
    if r.random() < 0.05:
        value = r.choice([",", ", "]) + value
    if r.random() < 0.05:
        value += r.choice([",", ", ", " ,"])
    if r.random() < 0.04 and value and not r.clean:
        value += r.choice([" garbage", " <", " >", ";", "\\", " (open"])
    value = r.choice([" ", " ", " ", "", "  ", "\t"]) + value + r.choice(["", "", "", " ", "\t "])
    if r.random() < 0.2:
        value = _fold(r, value)
    raw = value.encode("utf-8")
    if r.random() < 0.02 and not r.clean:
        # raw 8-bit text that is not UTF-8 (ISO-8859-1)
        raw = raw.replace(b"o", b"\xf6", 1) if b"o" in raw else raw + b" caf\xe9"
    return raw


def _name_variant(r: random.Random, h: str) -> str:
    k = r.random()
    if k < 0.8:
        return h
    if k < 0.9:
        return h.lower()
    return "".join(c.upper() if r.random() < 0.5 else c.lower() for c in h)


def generate(seed: int, n_fields: int) -> list[Case]:
    """Messages holding `n_fields` generated address fields in all: each 1-4 of HEADERS, one
    field each or now and then two or three of the same name."""
    out: list[Case] = []
    total = 0
    i = 0
    while total < n_fields:
        r = _Gen(f"{seed}:{i}")
        fields = []
        for h in r.sample(HEADERS, r.randint(1, 4)):
            for _ in range(1 if r.random() < 0.85 else r.randint(2, MAX_FIELDS)):
                r.clean = r.random() < 0.5
                fields.append((_name_variant(r, h), field_value(r), r.clean))
        r.shuffle(fields)
        fields = fields[: n_fields - total]
        total += len(fields)
        out.append(Case(f"{seed}-{i}", tuple((n, v) for n, v, _ in fields), tuple(c for _, _, c in fields)))
        i += 1
    return out


# --- comparing ----------------------------------------------------------------------------
#
# A header seen differently is explained when a model of Pigeonhole's reading, built on
# Owlery's own parser (sieve.address) plus the faults below, gives exactly what sieve-test gave.
# The model with no fault must give what Owlery gave (checked for every header compared), so
# the model cannot drift from the engine.

@dataclasses.dataclass(frozen=True)
class Deviation:
    id: str
    rfc: str
    reason: str


DEVIATIONS = {d.id: d for d in (
    Deviation("unparsed-keeps-line-breaks", "RFC 5322 section 2.2.3 (unfolding removes each CRLF)",
              "A field that holds no valid address is matched by :all as its text; Pigeonhole's text keeps the "
              "LF of each folding (and one left at either end), Owlery's is unfolded as every header value."),
    Deviation("raw-octets-in-unparsed-address", "RFC 5228 section 2.4.2 (strings are UTF-8)",
              "The text of such a field, when it holds octets that are not UTF-8: Pigeonhole passes them on "
              "unconverted, Owlery reads each run as U+FFFD like every raw header text."),
    Deviation("pigeonhole-stops-at-syntax-error",
              "RFC 5228 section 2.7.4, RFC 5322 sections 3.4 and 4 (obsolete syntax MUST be accepted)",
              "Pigeonhole (Dovecot's message-address parser) stops reading an address list at the first "
              "token it does not take and keeps what it read before, even an address followed by garbage "
              "('a@b c', '<a@b>>', 'J. Doe <a@b> <c@d>', 'a@b@c', 'a@[1.2.3.4].com' read as a@b / "
              "a@[1.2.3.4]); when that leaves no address, the whole field is one unparsed entry. It also "
              "stops at obsolete syntax RFC 5322 section 4.4 makes valid: quoted words, white space or "
              "comments around the dots of a local part (a.\"b\".c@x, a . b@x, a.(c)b@x) or of a domain "
              "(a@example . com). Owlery reads each item of the list on its own: an "
              "invalid one is not matched by :localpart or :domain (2.7.4), the valid ones still are, and "
              "an address with garbage after it is not valid."),
    Deviation("pigeonhole-empty-field-parts", "RFC 5228 section 2.7.4",
              "An empty field (or white space only) holds no address; Pigeonhole still matches :localpart, "
              ":domain, :user and :detail against an empty string there (and finds no entry at all when the "
              "white space starts with a line break). Owlery matches only :all (the empty text), as for any "
              "field that holds no valid address, wherever the white space is."),
    Deviation("pigeonhole-empty-quoted-local-part", "RFC 5322 section 3.4.1 with 3.2.4 (an empty quoted-string)",
              "'\"\"@example.com': Pigeonhole counts it as an address (:count) but matches none of its parts, "
              "not even :all; Owlery reads it as no valid address (as Pigeonhole's redirect does: 'missing "
              "local part'), so :all sees the field's text when nothing else in it is valid."),
    Deviation("pigeonhole-route-without-colon", "RFC 5322 section 4.4 (obs-route = obs-domain-list \":\")",
              "An angle address with an obsolete route not closed by ':' ('<@r1 a@b>', '<@r1\"a b\"@x>') is not "
              "an address (Owlery); Pigeonhole 0.5.19 skips what it reads as the route and takes the rest "
              "as the address (even '<@r1a..b@x>' as '..b'@x)."),
    Deviation("pigeonhole-quoted-pair-before-line-break", "RFC 5322 sections 2.2.3 and 3.2.1",
              "A backslash right before a folding line break inside a quoted string: unfolding removes the "
              "CRLF, so the backslash quotes the white space after it ('\"a\\<CRLF> b\"' is the local part 'a b', "
              "Owlery); Pigeonhole keeps the backslash ('a\\ b') or reads no address."),
    Deviation("pigeonhole-tab-in-quoted-local-part", "RFC 5322 section 3.2.4 (FWS, and so a TAB, in a quoted-string)",
              "A quoted local part holding a TAB (or a quoted-pair of one) is valid; Pigeonhole 0.5.19 reads it "
              "as invalid (tests/sieve/differential/deviations.toml has the same for the differential runner)."),
)}

# faults that make Pigeonhole read a field its own way, found by the field's shape
_WHOLESALE = (
    ("pigeonhole-tab-in-quoted-local-part", re.compile(r'"[^"]*\t[^"]*"(?:\s|\([^()]*\))*@')),
    ("pigeonhole-route-without-colon", re.compile(r"<(?:\s|\([^()]*\))*@[^:<>@]*@[^:<>]*>")),
    ("pigeonhole-quoted-pair-before-line-break", re.compile(r'"[^"]*\\\r?\n')),
)
_PLACEHOLDER = "owlery-empty-quoted-local"
_EMPTY_QUOTED = re.compile(r'""((?:\s|\([^()]*\))*@)')
# obsolete local parts Pigeonhole stops at: a quoted word next to a dot, white space or a
# comment next to a dot (between words)
_OBS_LOCAL = re.compile(r'"\s*\.|\.\s*"|[^\s.,<>:;@"()](\s|\([^()]*\))+\.|\.(\s|\([^()]*\))+[^\s.,<>:;@"()]')


def header_fields(message: bytes, header: str) -> list[str]:
    """The field values the address test reads (sieve.message)."""
    from sieve.message import Message
    return Message(message).header_raw(header)


def model(fields: list[str], cut: tuple[int, int] | None = None, empty_parts: bool = False,
          empty_quoted: bool = False) -> dict[str, str]:
    """What the probe sees of a header's `fields` (as read by the address test), by Owlery's
    parser; with `cut` (field, position) that field read only up to the position, the whole
    field its :all when nothing in that is valid; `empty_parts`: an empty field also gives empty
    parts; `empty_quoted`: an address with the local part "" counts, but matches nothing."""
    from sieve.address import address_part, only_comments, parse_address_items
    items: list[dict[str, str]] = []
    for j, raw in enumerate(fields):
        text = raw[:cut[1]] if cut is not None and cut[0] == j else raw
        if empty_quoted:
            text = _EMPTY_QUOTED.sub(_PLACEHOLDER + r"\1", text)
        addrs, _valid = parse_address_items(text)
        if not addrs:
            if only_comments(raw):
                continue
            item = {"all": raw}
            if empty_parts and raw.strip(" \t") == "":
                item.update({p: "" for p in PARTS})
            items.append(item)
            continue
        for a in addrs:
            if a.local == _PLACEHOLDER:
                items.append({})
                continue
            items.append({p: v for p in PARTS if (v := address_part(a, p, "+")) is not None})
    out = {}
    for p in PARTS:
        first = next((it[p] for it in items if p in it), None)
        if first is not None:
            out[p] = first
    if fields:
        out["exists"] = "1"
    n = len(items)
    for p in COUNT_PARTS:
        out[f"count-{p}"] = str(n) if n <= MAX_COUNT else "many"
    return out


def _normalise(theirs: dict[str, str]) -> tuple[dict[str, str], set[str]]:
    """Pigeonhole's values with the line breaks and raw octets of unparsed text read as Owlery
    reads them (a folding TAB as a space: fold_tabs_as_spaces), and the deviations that took."""
    out, used = {}, set()
    for k, v in theirs.items():
        if "\n" in v:
            v = v.replace("\n\t", " ").replace("\n", "").strip(" \t")
            used.add("unparsed-keeps-line-breaks")
        w = re.sub(r"(?:\\x[89a-f][0-9a-f])+", "\ufffd", v)
        if w != v:
            # (and a NUL that Pigeonhole's encodeurl adds after them)
            w = w.replace("\x00", "")
            used.add("raw-octets-in-unparsed-address")
        out[k] = w
    return out, used


def _cuts(text: str):
    """Positions a parser may stop at: after each token."""
    for k in range(1, len(text) + 1):
        if text[k - 1] not in " \t" and (k == len(text) or text[k] in ' \t()<>[]:;@\\,."'
                                          or text[k - 1] in '()<>[]:;@\\,."'):
            yield k


def _field_keys(obs: dict[str, str], i: int) -> dict[str, str]:
    """The observations of the i-th field (1-based) alone, named as the model names them."""
    pre = f"i{i}-"
    return {("count-all" if k == pre + "count" else k[len(pre):]): v for k, v in obs.items() if k.startswith(pre)}


def _model_field(field: str, **kw) -> dict[str, str]:
    m = model([field], **kw)
    return {k: v for k, v in m.items() if k in PARTS or k == "count-all"}


def explain_field(field: str, original: str, ours: dict, theirs: dict) -> str | None:
    """The '+'-joined ids of the deviations that give Pigeonhole's `theirs` from one field
    (`field` as Owlery read it, `original` as the message has it, folded), or None; None too when the
    model does not give Owlery's `ours`."""
    if _model_field(field) != ours:
        return None
    theirs, used = _normalise(theirs)
    if theirs == ours:
        return "+".join(sorted(used))
    for dev, shape in _WHOLESALE:
        if shape.search(original):
            return "+".join(sorted(used | {dev}))
    if field.strip(" \t") == "" and original.lstrip(" \t").startswith(("\r", "\n")) and theirs == {"count-all": "0"}:
        # white space after a line break: Pigeonhole finds no entry at all
        return "+".join(sorted(used | {"pigeonhole-empty-field-parts"}))
    flags = {"empty_parts": field.strip(" \t") == "", "empty_quoted": _EMPTY_QUOTED.search(field) is not None}
    if flags["empty_parts"]:
        used.add("pigeonhole-empty-field-parts")
    if flags["empty_quoted"]:
        used.add("pigeonhole-empty-quoted-local-part")
    if _model_field(field, **flags) == theirs:
        return "+".join(sorted(used))
    # a cut only where Owlery too finds the field not wholly valid, or an obsolete local part
    from sieve.address import parse_address_items
    if parse_address_items(field)[1] and not _OBS_LOCAL.search(field):
        return None
    for k in _cuts(field):
        if _model_field(field, cut=(0, k), **flags) == theirs:
            return "+".join(sorted(used | {"pigeonhole-stops-at-syntax-error"}))
    return None


def explain(case: Case, header: str, ours: dict, theirs: dict) -> str | None:
    """The '+'-joined ids of the deviations that explain every difference in one header's
    observations, or None. Each field is explained on its own (its :index observations); the
    observations over all the fields then differ only when some field does."""
    fields = header_fields(fold_tabs_as_spaces(case.message), header)
    originals = [v.decode("utf-8", "replace") for v in case.values(header)]
    if len(fields) > MAX_FIELDS:
        return None
    ids: set[str] = set()
    for j, (f, orig) in enumerate(zip(fields, originals)):
        o, t = _field_keys(ours, j + 1), _field_keys(theirs, j + 1)
        if o == t:
            continue
        e = explain_field(f, orig, o, t)
        if e is None:
            return None
        ids.update(x for x in e.split("+") if x)
    whole_o = {k: v for k, v in ours.items() if not k.startswith("i")}
    whole_t = {k: v for k, v in theirs.items() if not k.startswith("i")}
    if whole_o != whole_t:
        norm, used = _normalise(whole_t)
        if model(fields) != whole_o or (norm != whole_o and not ids):
            return None
        ids |= used
    return "+".join(sorted(ids)) if ids else None


def header_diffs(case: Case, ours: dict, theirs: dict) -> dict[str, tuple[dict, dict]]:
    """{header: (Owlery's observations, Pigeonhole's)} of each header seen differently."""
    out = {}
    for h in HEADERS:
        o = {w: v for (hh, w), v in ours.items() if hh == h}
        t = {w: v for (hh, w), v in theirs.items() if hh == h}
        if o != t:
            out[h] = (o, t)
    return out


def compare_all(cases: list[Case], workers: int = 2) -> list[tuple[Case, dict | str, dict | str]]:
    """(case, Owlery's observations, Pigeonhole's) for every case, on `workers` sieve-test
    homes at once (each thread runs Owlery too, so both cores work)."""
    from sieve.api import compile_script
    source = probe_script()
    script = compile_script(source, name="probe")
    peers = [Peer() for _ in range(workers)]
    try:
        def half(k: int):
            return [(c, run_owlery(script, fold_tabs_as_spaces(c.message)), peers[k].run(source, c.message))
                    for c in cases[k::workers]]
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(half, range(workers)))
    finally:
        for p in peers:
            p.close()
    return [x for part in parts for x in part]


def classify(compared) -> tuple[collections.Counter, list[str]]:
    """Counts of header groups by class ("same", a deviation id) and the unexplained ones,
    described."""
    counts: collections.Counter = collections.Counter()
    unexplained = []
    for case, ours, theirs in compared:
        if isinstance(ours, str) or isinstance(theirs, str):
            unexplained.append(f"{case.name}: run failed\n    Owlery: {ours}\n    Pigeonhole: {theirs}")
            continue
        diffs = header_diffs(case, ours, theirs)
        for h in HEADERS:
            if not case.values(h):
                continue
            if h not in diffs:
                counts["same"] += 1
                continue
            o, t = diffs[h]
            dev = explain(case, h, o, t)
            if dev is None:
                counts["unexplained"] += 1
                keys = sorted(w for w in o.keys() | t.keys() if o.get(w) != t.get(w))
                unexplained.append(f"{case.name} {h}: {case.values(h)!r}\n"
                                   f"    Owlery:     {({w: o[w] for w in keys if w in o})}\n"
                                   f"    Pigeonhole: {({w: t[w] for w in keys if w in t})}")
            else:
                counts.update(dev.split("+"))
                counts["explained"] += 1
    return counts, unexplained


# --- tests --------------------------------------------------------------------------------

def test_generated_address_fields_agree_with_sieve_test():
    assert os.path.exists(pigeonhole.SIEVE_TEST), "sieve-test missing: apt-get install dovecot-sieve"
    cases = generate(SEED, FIELDS)
    counts, unexplained = classify(compare_all(cases))
    print(f"{sum(len(c.fields) for c in cases)} fields in {len(cases)} messages: {dict(counts)}")
    assert not unexplained, f"{len(unexplained)} header groups differ:\n" + "\n".join(unexplained[:10])
    # real values were compared: most header groups agree exactly
    groups = counts["same"] + counts["explained"]
    assert counts["same"] > 0.6 * groups, counts


def test_the_generator_covers_the_shapes():
    """The seeded fields hold each shape the generator is for (so that a change to it cannot
    quietly drop one), and about half the fields are well-formed."""
    cases = generate(SEED, FIELDS)
    text = b"\n".join(v for c in cases for _, v in c.fields)
    for shape in (rb"=\?utf-8\?", rb"\(a \(nested\) c\)", rb"<@r1", rb"undisclosed-recipients:", rb"\[IPv6:",
                  rb"\[1\.2\.3\.4\]", rb'"a b"@', rb'"a\\"b"', rb"\.\.", rb"\r\n[ \t]", rb"[\x80-\xff]",
                  rb",\s*,", rb"\+\+", rb"@[^,<>\s]*@", rb"j\xc3\xb6rg", rb"\xe9", rb"g: |Group Name:"):
        assert re.search(shape, text), shape
    assert any(len(v) > 400 for c in cases for _, v in c.fields)
    assert any(len(c.values(h)) > 1 for c in cases for h in HEADERS)
    assert any(n != n.title() and n.lower() != n for c in cases for n, _ in c.fields)
    clean = [x for c in cases for x in c.clean]
    assert 0.35 < sum(clean) / len(clean) < 0.65


def test_probe_reads_what_both_engines_saw():
    """One plain message through both engines: the probe sees every part, count and exists,
    over the header and per field."""
    case = Case("plain", (("To", b" Joe <joe+x@Example.com>, b@c"), ("To", b" d@e")))
    ours = run_owlery(probe_script(), case.message)
    assert ours[("To", "all")] == "joe+x@Example.com" and ours[("To", "detail")] == "x"
    assert ours[("To", "count-all")] == "3" and ours[("To", "exists")] == "1"
    assert ours[("To", "i1-count")] == "2" and ours[("To", "i2-all")] == "d@e" and ours[("To", "i3-count")] == "0"
    assert ("From", "exists") not in ours and ours[("From", "count-all")] == "0"
    peer = Peer()
    try:
        assert peer.run(probe_script(), case.message) == ours
    finally:
        peer.close()


def test_an_unlisted_difference_is_not_explained():
    """The model explains Pigeonhole's faults, not any difference."""
    case = Case("x", (("To", b" a@b"),))
    ours = run_owlery(probe_script(), case.message)
    o = {w: v for (h, w), v in ours.items() if h == "To"}
    assert explain(case, "To", o, {**o, "all": "x@b", "i1-all": "x@b"}) is None
    assert explain(case, "To", o, {**o, "count-all": "2", "i1-count": "2"}) is None
    # a valid field Pigeonhole read as nothing: no cut point explains it (the field is valid)
    raw = {k: v for k, v in o.items() if k not in PARTS and k[3:] not in PARTS}
    assert explain(case, "To", o, {**raw, "all": "a@b", "i1-all": "a@b"}) is None
    # the same for garbage after an address is Pigeonhole stopping there
    case = Case("y", (("To", b" a@b c"),))
    ours = run_owlery(probe_script(), case.message)
    o = {w: v for (h, w), v in ours.items() if h == "To"}
    theirs = {**o, "all": "a@b", "localpart": "a", "domain": "b", "user": "a",
              "i1-all": "a@b", "i1-localpart": "a", "i1-domain": "b", "i1-user": "a"}
    assert explain(case, "To", o, theirs) == "pigeonhole-stops-at-syntax-error"


def test_every_deviation_has_a_reason():
    for d in DEVIATIONS.values():
        assert d.rfc.startswith("RFC") and len(d.reason) > 80


# --- fixes this differential found (each case fails on the code before it) -----------------

# (To field, :all, :localpart, :domain, :count) as Owlery reads it now; `peer`: sieve-test
# gives the same (False: an allow-listed Pigeonhole fault, named)
FIXED = [
    # obsolete routes: every '@' needs a domain and every domain its '@' (RFC 5322 4.4)
    ("<@:a@b>", "<@:a@b>", None, None, "1", True),
    ("<@r1,r2:a@b>", "<@r1,r2:a@b>", None, None, "1", True),
    ("<@r1..x:a@b>", "<@r1..x:a@b>", None, None, "1", True),
    ("<@r1.:a@b>", "<@r1.:a@b>", None, None, "1", True),
    ('<@"q":a@b>', '<@"q":a@b>', None, None, "1", True),
    ("<@r1,@:a@b>", "<@r1,@:a@b>", None, None, "1", True),
    ("<@[1.2.3.4]x:a@b>", "<@[1.2.3.4]x:a@b>", None, None, "1", True),
    ("x <@r1,@r2:a@b>", "a@b", "a", "b", "1", True),
    ("<@r1,,@r2,:a@b>", "a@b", "a", "b", "1", True),
    ("<@[1.2.3.4] , @r2:a@b>", "a@b", "a", "b", "1", True),
    # domain literals: a quoted-pair inside, no '[' and nothing dotted to them
    ("a@[a\\]b]", "a@[a\\]b]", "a", "[a\\]b]", "1", True),
    ("a@[a\\[b]", "a@[a\\[b]", "a", "[a\\[b]", "1", True),
    ("a@[a[b]", "a@[a[b]", None, None, "1", True),
    ("a@x.[1.2.3.4]", "a@x.[1.2.3.4]", None, None, "1", True),
    ("a@[1.2.3.4].com", "a@[1.2.3.4].com", None, None, "1", False),   # Pigeonhole: a@[1.2.3.4] (stops)
    # a display name starts with a word (obs-phrase, RFC 5322 4.1)
    (". <a@b>", ". <a@b>", None, None, "1", True),
    (".x <a@b>", ".x <a@b>", None, None, "1", True),
    ("(c) . <a@b>", "(c) . <a@b>", None, None, "1", True),
    ('."a" <c@d>, e@f', "e@f", "e", "f", "1", False),                 # Pigeonhole: the field unparsed (stops)
    ("Mr. <a@b>", "a@b", "a", "b", "1", True),
    ("a . b <c@d>", "c@d", "c", "d", "1", True),
    # a field of comments only holds no address at all
    ("(c)", None, None, None, "0", True),
    ("(c) (d)", None, None, None, "0", True),
    ("(open a@b", None, None, None, "0", True),
    ("a@b, (c)", "a@b", "a", "b", "1", True),
    # a ',' after a route's ':' in an angle address left open ends that item
    ("x <@r1:a@b , c@d", "c@d", "c", "d", "1", True),
    ("<@r1,@r2 , @r3:a@b>", "a@b", "a", "b", "1", True),
    ('"unterminated <a@b>', '"unterminated <a@b>', None, None, "1", True),
    # lax dots (empty words) take no white space or comment after a dot
    ("y. @x", "y. @x", None, None, "1", True),
    ("..()@x", "..()@x", None, None, "1", True),
    ("a.b.  @x", "a.b.  @x", None, None, "1", True),
    (".a.(c)@x", ".a.(c)@x", None, None, "1", True),
    ("<.\r\n @b>", "<. @b>", None, None, "1", False),                # Pigeonhole keeps the line break
    ("a .@x", '"a."@x', "a.", "x", "1", True),
    ("a..b.@x", '"a..b."@x', "a..b.", "x", "1", True),
    ('"a. b"@x', '"a. b"@x', "a. b", "x", "1", True),
]


def _to(obs: dict) -> tuple:
    return tuple(obs.get(("To", k)) for k in ("all", "localpart", "domain", "count-all"))


def _fixed_message(field: str) -> bytes:
    return Case("fix", (("To", (" " + field).encode()),)).message


@pytest.mark.parametrize(("field", "all_", "local", "domain", "count", "peer"), FIXED, ids=[f[0] for f in FIXED])
def test_fixed_address_fields(field, all_, local, domain, count, peer):
    """What the address test reads of each field now: obsolete routes, domain literals, a
    display name starting with '.', a field of comments only, lax dots before white space."""
    assert _to(run_owlery(_probe(), _fixed_message(field))) == (all_, local, domain, count)


def test_sieve_test_reads_the_fixed_fields_so():
    """Each FIXED case sieve-test reads the same (but those marked, Pigeonhole's faults)."""
    p = Peer()
    try:
        got = {f[0]: _to(p.run(probe_script(), _fixed_message(f[0]))) for f in FIXED}
    finally:
        p.close()
    assert {f[0]: got[f[0]] for f in FIXED if f[5]} == {f[0]: f[1:5] for f in FIXED if f[5]}
    assert all(got[f[0]] != f[1:5] for f in FIXED if not f[5])


_PROBE = []


def _probe():
    """The probe, compiled once."""
    if not _PROBE:
        from sieve.api import compile_script
        _PROBE.append(compile_script(probe_script(), name="probe"))
    return _PROBE[0]


def main(argv: list[str]) -> int:
    n = int(argv[1]) if len(argv) > 1 else 1000
    seed = int(argv[2]) if len(argv) > 2 else 1
    cases = generate(seed, n)
    counts, unexplained = classify(compare_all(cases))
    for u in unexplained:
        print("==", u)
    print(f"seed {seed}: {sum(len(c.fields) for c in cases)} fields in {len(cases)} messages: {dict(counts)}")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))


# --- hostile fields: one pass over the tokens ------------------------------------------------
# A header field is the sender's: each shape below, ~150 KB (more than Postfix's whole default
# header_size_limit), parses in well under a second on an idle core. '<@a,@a,...' took 80 s when
# every ',' inside an angle address scanned the item again (a quadratic parse stalls delivery).
HOSTILE_FIELDS = {
    "route-commas": "<" + "@a," * 50_000 + ":a@b>",
    "route-commas-unclosed": "x <@r:" + "a@b , " * 25_000,
    "route-commas-no-colon": "<" + "@a," * 50_000,
    "angle-commas": "<" + "a," * 75_000,
    "lax-dots": "." * 150_000 + "@x",
    "dot-space": ". " * 75_000 + "a@x",
    "literal-escapes": "a@[" + "\\]" * 75_000 + "]",
    "comments": "(" * 150_000,
    "items": "a..b.@x, " * 17_000,
    "groups": "g:" * 75_000,
    "angles": "<" * 150_000,
}


@pytest.mark.parametrize("shape", sorted(HOSTILE_FIELDS))
def test_hostile_fields_parse_in_linear_time(shape):
    from sieve.address import only_comments, parse_address_items
    text = HOSTILE_FIELDS[shape]
    assert len(text) >= 140_000
    t0 = time.process_time()
    parse_address_items(text)
    only_comments(text)
    assert time.process_time() - t0 < 5.0, shape
