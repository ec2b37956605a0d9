"""Differential test: `owlery managesieve` against Dovecot's managesieved (Pigeonhole), the reference.

Both servers get the very same bytes; what they answer is compared after normalising what may
legitimately differ (IMPLEMENTATION, human text, the SIEVE list's extensions Pigeonhole lacks):
the kind of each response (OK/NO/BYE), its response code (NONEXISTENT, ALREADYEXISTS, ACTIVE,
QUOTA/..., WARNINGS, TAG with its value, ...), LISTSCRIPTS as a set with the ACTIVE mark,
GETSCRIPT's octets, capabilities, and whether the connection was closed.

Set-up: one private Dovecot (tests/harness/dovecot.py) with a managesieve listener and our
daemon, the same user and password, but each server on its own home (Dovecot's
<work>/dovecot-home/alice, ours <work>/ours/example.org/alice), wiped before each sequence. The
limits that decide QUOTA codes are set equal on both (LIMITS). Every connection comes from a
fresh 127.x.y.z source address: Dovecot's auth penalty (anvil) slows every login from an address
that failed one, which would make timing, not behaviour, differ.

Sequences after login come from a seeded generator (SEEDS x STEPS, constants: no environment
knob). After each generated command the driver sends `NOOP "sync-N"` and reads until that tag's
OK, so a command answered by two responses (a syntax error that splits a line) or by none is
compared as such, and a desynchronised server cannot hide behind the next answer.

Differences where Dovecot departs from RFC 5804, or lacks an optional part of it, or the
difference is harmless, are listed in ALLOWED with the reason; each entry names the exact
situation (a predicate on the command and both answers), never a whole command class.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import os
import random
import re
import shutil
import socket
import time
import unicodedata
from pathlib import Path

import pytest

from tests.delivery.daemon import remove_workdir, shared_workdir
from tests.harness.dovecot import PASSWORD, DovecotInstance
from tests.harness.procs import free_port, wait_for_tcp
from tests.managesieve.helpers import ManageSieveDaemon

USER = "alice@example.org"
SEEDS = tuple(range(1, 121))
STEPS = 60
READ_TIMEOUT = 3.0
# Limits that decide QUOTA codes, equal on both servers (Dovecot name, ours, value).
LIMITS = (
    ("sieve_max_script_size", "managesieve_max_script_size", 4000),
    ("sieve_quota_max_scripts", "managesieve_max_scripts", 5),
    ("sieve_quota_max_storage", "managesieve_max_storage", 10000),
)
MAX_LINE = 8192
# Extensions we implement and Pigeonhole 0.5 (Dovecot 2.3) does not: the only allowed
# difference in the SIEVE capability, and never used by the generated scripts.
OURS_ONLY_EXTENSIONS = {"comparator-i;unicode-casemap", "enclose", "ereject", "extlists", "replace"}


# -- the two servers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def servers():
    from sieve.api import extensions_available

    work = shared_workdir("owlery-managesieve-diff-")
    dovecot_home = work / "dovecot-home" / "alice"
    ours_home = work / "ours" / "example.org" / "alice"
    sieve_port = free_port()
    limits = "\n".join(f"  {dov} = {value}" for dov, _, value in LIMITS)
    dovecot = DovecotInstance(
        work / "dovecot",
        {USER: str(dovecot_home)},
        extra_conf=f"""
protocols = imap lmtp sieve
auth_failure_delay = 0
service managesieve-login {{
  inet_listener sieve {{
    address = 127.0.0.1
    port = {sieve_port}
  }}
}}
protocol sieve {{
  managesieve_max_line_length = {MAX_LINE}
}}
plugin {{
  sieve_max_actions = 32
  sieve_max_redirects = 4
{limits}
  sieve_extensions = {" ".join(extensions_available())}
}}
""",
    ).start()
    ours = None
    try:
        wait_for_tcp(sieve_port, timeout=20, what="dovecot managesieve")
        ours_home.mkdir(parents=True)
        for path in (work / "ours", ours_home.parent, ours_home):
            os.chown(path, dovecot.uid, dovecot.gid)  # our daemon runs as nobody too
        (work / "mailboxes").write_text(f"{USER} example.org/alice/Maildir\n")
        ours_limits = "\n".join(f"{mine} = {value}" for _, mine, value in LIMITS)
        ours = ManageSieveDaemon(
            work,
            f"""
daemon_user = "nobody"
files_passwords = "{dovecot.dir / "users"}"
files_passwords_plain = true
files_mailboxes = "{work}/mailboxes"
files_maildir_base = "{work}/ours"
delivery_sieve_script_template = "{work}/ours/{{domain}}/{{localpart}}/sieve/active.sieve"
managesieve_login_failure_delay = 0
managesieve_max_line_length = {MAX_LINE}
sieve_max_actions = 32
sieve_max_redirects = 4
{ours_limits}
""",
        ).start()
        yield Pair(ours.port, sieve_port, ours_home / "sieve", dovecot_home / "sieve", ours, dovecot)
    finally:
        if ours is not None:
            ours.stop()
        dovecot.stop()
        remove_workdir(work)


@dataclasses.dataclass
class Pair:
    ours: int
    dovecot: int
    ours_sieve: Path
    dovecot_sieve: Path
    ours_daemon: object
    dovecot_server: object

    def wipe(self) -> None:
        for path in (self.ours_sieve, self.dovecot_sieve):
            shutil.rmtree(path, ignore_errors=True)


_source = itertools.count(1)


def _source_address() -> str:
    n = next(_source)
    return f"127.{100 + n // 60000 % 100}.{n // 250 % 240}.{n % 250 + 2}"


# -- a raw client that parses whatever comes back -----------------------------------------


class Closed(Exception):
    pass


class ReadTimeout(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class Resp:
    kind: str  # OK, NO, BYE
    code: tuple  # ("QUOTA/MAXSIZE",) or ("TAG", b"x") or ()
    text: bytes
    lines: tuple  # data lines before it, each a tuple of tokens

    def norm(self) -> tuple:
        return (self.kind, self.code)


class Wire:
    """One connection: send bytes, read responses (quoted strings and {n} literals anywhere)."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=READ_TIMEOUT, source_address=(_source_address(), 0)
        )
        self.buf = b""
        self.closed = False
        self.greeting = self.response()

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def _fill(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise ReadTimeout() from None
        except OSError:
            chunk = b""
        if not chunk:
            self.closed = True
            raise Closed()
        self.buf += chunk

    def _line(self) -> bytes:
        while b"\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\n")
        return line[:-1] if line.endswith(b"\r") else line

    def _octets(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def tokens(self) -> list:
        """One server line as tokens: bytes for strings, ("atom", text), "(" and ")"."""
        out: list = []
        line = self._line()
        i = 0
        while i < len(line):
            c = line[i : i + 1]
            if c == b" ":
                i += 1
            elif c in b"()":
                out.append(c.decode())
                i += 1
            elif c == b'"':
                value, i = bytearray(), i + 1
                while i < len(line) and line[i : i + 1] != b'"':
                    if line[i : i + 1] == b"\\":
                        i += 1
                    value += line[i : i + 1]
                    i += 1
                out.append(bytes(value))
                i += 1
            elif c == b"{" and line.endswith(b"}") and line[i + 1 : -1].rstrip(b"+").isdigit():
                out.append(self._octets(int(line[i + 1 : -1].rstrip(b"+"))))
                line, i = self._line(), 0
            else:
                j = i
                while j < len(line) and line[j : j + 1] not in b" ()":
                    j += 1
                out.append(("atom", line[i:j].decode("latin-1")))
                i = j
        return out

    def response(self) -> Resp:
        lines = []
        while True:
            toks = self.tokens()
            if toks and toks[0] in (("atom", "OK"), ("atom", "NO"), ("atom", "BYE")):
                kind, rest = toks[0][1], toks[1:]
                code: tuple = ()
                if rest[:1] == ["("]:
                    end = rest.index(")")
                    code = tuple(t[1].upper() if isinstance(t, tuple) else t for t in rest[1:end])
                    rest = rest[end + 1 :]
                text = rest[0] if rest and isinstance(rest[0], bytes) else b""
                if kind == "BYE":
                    self.closed = True
                return Resp(kind, code, text, tuple(lines))
            lines.append(tuple(toks))

    def line_or_response(self) -> Resp | tuple:
        """A SASL challenge (a line holding one string) or a response."""
        toks = self.tokens()
        if len(toks) == 1 and isinstance(toks[0], bytes):
            return ("challenge", toks[0])
        self.buf = _unparse(toks) + self.buf
        return self.response()

    def close(self) -> None:
        self.sock.close()


def _unparse(toks: list) -> bytes:
    parts = []
    for t in toks:
        if isinstance(t, bytes):
            parts.append(b"{%d}\r\n" % len(t) + t)
        elif isinstance(t, tuple):
            parts.append(t[1].encode("latin-1"))
        else:
            parts.append(t.encode())
    return b" ".join(parts).replace(b"( ", b"(").replace(b" )", b")") + b"\r\n"


def q(data: bytes) -> bytes:
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def lit(data: bytes, plus: bool = True) -> bytes:
    return b"{%d%s}\r\n" % (len(data), b"+" if plus else b"") + data


def plain(user: str = USER, password: str = PASSWORD, authzid: str = "") -> bytes:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode())


AUTH = b'AUTHENTICATE "PLAIN" "' + plain() + b'"\r\n'


def login(port: int) -> Wire:
    w = Wire(port)
    w.send(AUTH)
    r = w.response()
    assert r.kind == "OK", r
    return w


# -- normalising -----------------------------------------------------------------------

# Capabilities that legitimately differ (RFC 5804 1.7): OWNER SHOULD be sent after login and
# Dovecot does not; UNAUTHENTICATE announces the optional command only we have; MAXREDIRECTS
# may be sent in any state and Dovecot sends it only after login; after login Dovecot drops
# SASL, we keep listing the mechanisms.
CAP_IGNORED = {
    "before": ("IMPLEMENTATION", "OWNER", "UNAUTHENTICATE", "MAXREDIRECTS"),
    "after": ("IMPLEMENTATION", "OWNER", "UNAUTHENTICATE", "SASL"),
}


def capabilities(r: Resp, state: str = "after") -> dict:
    """CAPABILITY lines as {name: value}, minus what legitimately differs."""
    caps = {}
    for line in r.lines:
        name = line[0].decode() if isinstance(line[0], bytes) else line[0][1]
        value = line[1] if len(line) > 1 and isinstance(line[1], bytes) else None
        caps[name.upper()] = value
    for name in CAP_IGNORED[state]:
        caps.pop(name, None)
    if caps.get("SIEVE") is not None:
        caps["SIEVE"] = " ".join(sorted(set(caps["SIEVE"].decode().split()) - OURS_ONLY_EXTENSIONS))
    return caps


def outcome(kind: str, responses: list[Resp], closed: bool) -> tuple:
    """What is compared for one command: (kind, code) of each response, its payload, closed."""
    norm = []
    for r in responses:
        payload = None
        if r.kind == "OK" and kind == "LISTSCRIPTS":
            payload = tuple(sorted((line[0], len(line) > 1 and line[1] == ("atom", "ACTIVE")) for line in r.lines))
        elif r.kind == "OK" and kind == "GETSCRIPT":
            payload = r.lines[0][0] if r.lines else None
        elif r.kind == "OK" and kind == "CAPABILITY":
            payload = tuple(sorted(capabilities(r).items()))
        norm.append((r.kind, r.code, payload))
    return (tuple(norm), closed)


@dataclasses.dataclass
class Step:
    kind: str  # the command's name for payload normalising; "raw" otherwise
    data: bytes
    label: str


def run_step(w: Wire, step: Step, n: int) -> tuple:
    """Send one command and `NOOP "sync-n"`; the command's responses (until that OK), closed?"""
    if w.closed:
        return ((), True)
    tag = b"sync-%d" % n
    w.send(step.data + b'NOOP "' + tag + b'"\r\n')
    got = []
    try:
        while True:
            r = w.response()
            if r.kind == "OK" and r.code == ("TAG", tag):
                break
            got.append(r)
            if r.kind == "BYE":
                break
    except Closed:
        pass
    except ReadTimeout:
        got.append(Resp("TIMEOUT", (), b"", ()))
        w.closed = True
    return outcome(step.kind, got, w.closed)


# -- what may differ, and why ------------------------------------------------------------


def _codes(result: tuple) -> list:
    return [(kind, code) for kind, code, _ in result[0]]


ALLOWED = [
    (
        "HAVESPACE with size 0: Dovecot refuses it ('Cannot upload empty script') although it stores an "
        "empty script with PUTSCRIPT; RFC 5804 2.5 only asks whether a script of that size would fit",
        lambda step, ours, dov: (
            step.label.startswith("havespace:0 ")
            and _codes(ours) in ([("OK", ())], [("NO", ("QUOTA/MAXSCRIPTS",))])   # (when no room is left)
            and _codes(dov) == [("NO", ())]
        ),
    ),
    (
        "HAVESPACE with a size beyond 4294967295: not an RFC 5804 number (section 4: 0 <= number < 2^32), "
        "a syntax error for us; Dovecot parses any digits and answers QUOTA/MAXSIZE",
        lambda step, ours, dov: (
            step.label.startswith("havespace:huge ")
            and _codes(ours) == [("NO", ())]
            and _codes(dov) == [("NO", ("QUOTA/MAXSIZE",))]
        ),
    ),
    (
        "UNAUTHENTICATE is optional (RFC 5804 2.14.1, advertised by us); Pigeonhole 0.5 lacks it and "
        "answers 'Unknown command'",
        lambda step, ours, dov: (
            step.kind == "UNAUTHENTICATE" and _codes(ours)[:1] == [("OK", ())] and _codes(dov) == [("NO", ())]
        ),
    ),
    (
        "A NUL inside a literal script name looked up: RFC 5804 1.6 forbids U+0000 in names, we refuse "
        "the name (NO); Dovecot cuts it at the NUL (a C string) and looks up the rest (NONEXISTENT)",
        lambda step, ours, dov: (
            step.kind in ("GETSCRIPT", "DELETESCRIPT", "SETACTIVE", "RENAMESCRIPT")
            and b"x\x00y" in step.data
            and _codes(ours) == [("NO", ())]
            and _codes(dov)[0][0] == "NO"
        ),
    ),
    (
        "Two spaces between arguments, or a space before CRLF: RFC 5804 4 has exactly one SP, so ours "
        "refuses the line; Dovecot's parser skips the extra space",
        lambda step, ours, dov: (
            step.data in (b'GETSCRIPT "a" \r\n', b'GETSCRIPT  "a"\r\n')
            and _codes(ours) == [("NO", ())]
            and _codes(dov)[0][0] in ("OK", "NO")
        ),
    ),
    (
        "An invalid UTF-8 name (quoted or a literal) followed by a literal: Dovecot's parser fails on "
        "the name, skips only the line and reads the next literal's text as commands (extra NOs); "
        "RFC 5804 4 makes the literal part of the command, we read and refuse it once",
        lambda step, ours, dov: (
            step.kind in ("PUTSCRIPT", "RENAMESCRIPT")
            and b"\xff\xfe" in step.data
            and len(_codes(ours)) == 1
            and _codes(ours)[0] in (("NO", ()), ("NO", ("QUOTA/MAXSIZE",)), ("NO", ("NONEXISTENT",)))
            and len(_codes(dov)) > 1
            and all(k == "NO" for k, _ in _codes(dov))
        ),
    ),
    (
        "Which check comes first: RFC 5804 orders none. A name we refuse (NUL, invalid UTF-8, the "
        "active link's name) or a malformed line is NO for us before any size or count; Dovecot "
        "checks the size or the number of scripts first (QUOTA/MAXSIZE, QUOTA/MAXSCRIPTS). Both refuse",
        lambda step, ours, dov: (
            (step.kind in ("PUTSCRIPT", "HAVESPACE") and _bad_name_in(step)
             or step.label == "syntax" and step.data.startswith(b"PUTSCRIPT "))
            and _codes(ours) == [("NO", ())]
            and len(_codes(dov)) == 1
            and _codes(dov)[0][0] == "NO"
            and _codes(dov)[0][1][:1] in (("QUOTA/MAXSIZE",), ("QUOTA/MAXSCRIPTS",))
        ),
    ),
    (
        "RENAMESCRIPT from a name that does not exist to one that is not valid: both refuse; we look the "
        "old name up first (NONEXISTENT), Dovecot checks the new name first (NO); RFC 5804 2.11.1 orders "
        "neither",
        lambda step, ours, dov: (
            step.kind == "RENAMESCRIPT"
            and (b"\xff\xfe" in step.data or b"x\x00y" in step.data)
            and _codes(ours) == [("NO", ("NONEXISTENT",))]
            and _codes(dov) == [("NO", ())]
        ),
    ),
    (
        "A script that would exceed the storage quota: we answer QUOTA (RFC 5804 1.3, the registered "
        "code); Dovecot answers QUOTA/MAXSTORAGE, from draft-bosch-managesieve-quota-maxstorage "
        "(expired 2012, not in IANA's ManageSieve response codes)",
        lambda step, ours, dov: (
            step.kind in ("PUTSCRIPT", "HAVESPACE")
            and _codes(ours) == [("NO", ("QUOTA",))]
            and _codes(dov) == [("NO", ("QUOTA/MAXSTORAGE",))]
        ),
    ),
    (
        "PUTSCRIPT or HAVESPACE of a name holding NUL, or RENAMESCRIPT to one: RFC 5804 1.6 forbids "
        "U+0000, we refuse it; Dovecot cuts the name at the NUL and stores (renames, finds room for) "
        "the script under the rest",
        lambda step, ours, dov: (
            step.kind in ("PUTSCRIPT", "RENAMESCRIPT", "HAVESPACE")
            and b"x\x00y" in step.data
            and _codes(ours) == [("NO", ())]
            and _codes(dov)[0][0] in ("OK", "NO")
        ),
    ),
    (
        "RENAMESCRIPT onto the active link's name: it names no script in this layout "
        "(sieve/active.sieve), we refuse it like PUTSCRIPT of it; Dovecot accepts the rename (and "
        "refuses PUTSCRIPT of the same name)",
        lambda step, ours, dov: (
            step.kind == "RENAMESCRIPT"
            and step.data.endswith((b' "active"\r\n', b"}\r\nactive\r\n"))
            and _codes(ours) == [("NO", ())]
            and _codes(dov) == [("OK", ())]
        ),
    ),
    (
        "HAVESPACE for the active link's name: it names no script in this layout (sieve/active.sieve), "
        "so no script of that name would fit (as PUTSCRIPT of it is refused, by Dovecot too); Dovecot "
        "answers OK",
        lambda step, ours, dov: (
            step.kind == "HAVESPACE"
            and repr(b"active") in step.label
            and _codes(ours) == [("NO", ())]
            and _codes(dov) == [("OK", ())]
        ),
    ),
    (
        "A NUL inside a literal NOOP tag: Dovecot cuts the echoed tag at the NUL (a C string); we echo "
        "the octets we were sent, as a literal",
        lambda step, ours, dov: (
            step.label.startswith("noop:literal-nul") and ours[0][0][0] == "OK" and dov[0][0][0] == "OK"
        ),
    ),
]


def _bad_name_in(step: Step) -> bool:
    """Whether the step names one of BAD_NAMES (its label shows each name it uses as bytes' repr)."""
    return any(repr(n) in step.label for n in BAD_NAMES)


def allowed(step: Step, ours: tuple, dov: tuple) -> str | None:
    for reason, match in ALLOWED:
        if match(step, ours, dov):
            return reason
    return None


# -- the generator -------------------------------------------------------------------------

VALID_SCRIPTS = [
    b"keep;\r\n",
    b'require "fileinto";\r\nif header :contains "subject" "owl" { fileinto "Owls"; }\r\n',
    b'require ["vacation"];\r\nvacation :days 3 "Away.";\r\n',
    b"# caf\xc3\xa9 \xe2\x82\xac\r\nkeep;\r\n",  # 8-bit, valid UTF-8
    b"keep;\nstop;\n",  # bare LF
    b"/* a\r\nb */ discard;",
    b"if size :over 100K { discard; }\r\n",
    b'require "variables";\r\nset "a" "\\"q\\\\";\r\nkeep;\r\n',
    b"",  # empty
    b"  \r\n# only a comment\r\n",
]
INVALID_SCRIPTS = [
    b"keep",
    b"frobnicate;\r\n",
    b'require "nonexistent-extension";\r\n',
    b'fileinto "x";\r\n',  # no require
    b"if true { keep;\r\n",
    b'require "fileinto";\r\nfileinto "a\x00b";\r\n',  # NUL in a string
    b"keep;\x00\r\n",  # NUL outside one
    b"keep;\rdiscard;\r\n",  # bare CR
    b'require "fileinto";\r\nfileinto "\xff\xfe";\r\n',  # invalid UTF-8 in a string
    b"# \xff\r\nkeep;\r\n",  # invalid UTF-8 in a comment
    b'vacation "x";\r\n',
    b'redirect "not an address";\r\n',
    b"stop; stop",
]
BIG_SCRIPT = b"#" + b"x" * 3997 + b"\r\n"  # 4000 octets: fits
TOO_BIG_SCRIPT = b"#" + b"x" * 3998 + b"\r\n"  # 4001 octets
NAMES = [
    b"a",
    b"b",
    b"spam",
    b"vacation",
    b"Ferien \xc3\xa9t\xc3\xa9",
    b"with space",
    b'quo"te',
    b"back\\slash",
    b"x" * 128,
]
BAD_NAMES = [
    b"",
    b"/",
    b"a/b",
    b".",
    b"..",
    b".hidden",
    b"x\x00y",
    b"tab\there",
    b"del\x7f",
    b"c1\xc2\x85",
    b"ls\xe2\x80\xa8",
    b"\xff\xfe",
    b"x" * 129,
    b"y" * 300,
    b"active",
]
NFC, NFD = unicodedata.normalize("NFC", "caf\u00e9").encode(), unicodedata.normalize("NFD", "caf\u00e9").encode()


def _string(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """`data` as a quoted string (when it can be), a {n+} or a {n} literal."""
    forms = ["lit+", "lit"]
    if not any(c in data for c in b"\r\n\0") and len(data) < 1000:
        forms += ["quoted", "quoted"]
    form = rng.choice(forms)
    if form == "quoted":
        return q(data), form
    return lit(data, plus=form == "lit+"), form


class Generator:
    """Commands for one logged-in sequence, biased toward names that exist (a small model)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.known: list[bytes] = []
        self.active: bytes | None = None

    def name(self, fresh_ok: bool = True) -> bytes:
        r = self.rng.random()
        if self.known and r < 0.55:
            return self.rng.choice(self.known)
        if r < 0.9 or not fresh_ok:
            return self.rng.choice(NAMES + [NFC, NFD])
        return self.rng.choice(BAD_NAMES)

    def script(self) -> tuple[bytes, str]:
        r = self.rng.random()
        if r < 0.55:
            return self.rng.choice(VALID_SCRIPTS), "valid"
        if r < 0.9:
            return self.rng.choice(INVALID_SCRIPTS), "invalid"
        return (BIG_SCRIPT, "big") if r < 0.95 else (TOO_BIG_SCRIPT, "toobig")

    def step(self) -> Step:
        rng = self.rng
        choice = rng.choices(
            [
                "put",
                "check",
                "setactive",
                "rename",
                "delete",
                "havespace",
                "get",
                "list",
                "cap",
                "noop",
                "unknown",
                "lower",
                "extra",
                "missing",
                "syntax",
                "unauth",
            ],
            [18, 8, 8, 7, 6, 5, 6, 5, 2, 4, 2, 3, 3, 3, 5, 1],
        )[0]
        if choice == "put":
            name = self.name()
            script, what = self.script()
            nenc, nform = _string(rng, name)
            senc, sform = _string(rng, script)
            if what == "valid" and name not in self.known and name not in BAD_NAMES:
                self.known.append(name)
            return Step(
                "PUTSCRIPT",
                b"PUTSCRIPT " + nenc + b" " + senc + b"\r\n",
                f"put:{what} name={name!r}/{nform} script={script[:30]!r}/{sform}",
            )
        if choice == "check":
            script, what = self.script()
            senc, sform = _string(rng, script)
            return Step("CHECKSCRIPT", b"CHECKSCRIPT " + senc + b"\r\n", f"check:{what} {script[:30]!r}/{sform}")
        if choice == "setactive":
            r = rng.random()
            name = b"" if r < 0.25 else (b"nosuchscript" if r < 0.35 else self.name())
            enc, _ = _string(rng, name)
            return Step("SETACTIVE", b"SETACTIVE " + enc + b"\r\n", f"setactive {name!r}")
        if choice == "rename":
            old = self.name()
            r = rng.random()
            new = old if r < 0.15 else (rng.choice(self.known) if self.known and r < 0.4 else self.name())
            return Step(
                "RENAMESCRIPT",
                b"RENAMESCRIPT " + _string(rng, old)[0] + b" " + _string(rng, new)[0] + b"\r\n",
                f"rename {old!r} -> {new!r}",
            )
        if choice == "delete":
            name = self.active if self.active and rng.random() < 0.3 else self.name()
            return Step("DELETESCRIPT", b"DELETESCRIPT " + _string(rng, name)[0] + b"\r\n", f"delete {name!r}")
        if choice == "havespace":
            size, what = rng.choice(
                [
                    (b"0", "0"),
                    (b"1", "1"),
                    (b"4000", "max"),
                    (b"4001", "over"),
                    (b"9000", "storage"),
                    (b"4294967295", "u32"),
                    (b"4294967296", "huge"),
                    (b"99999999999", "huge"),
                    (b"abc", "nan"),
                    (b"-1", "nan"),
                    (b'"12"', "quoted"),
                    (b"12a", "nan"),
                ]
            )
            name = self.name()
            return Step(
                "HAVESPACE",
                b"HAVESPACE " + _string(rng, name)[0] + b" " + size + b"\r\n",
                f"havespace:{what} {name!r} {size!r}",
            )
        if choice == "get":
            name = self.name() if rng.random() < 0.8 else b"missing"
            return Step("GETSCRIPT", b"GETSCRIPT " + _string(rng, name)[0] + b"\r\n", f"get {name!r}")
        if choice == "list":
            return Step("LISTSCRIPTS", b"LISTSCRIPTS\r\n", "list")
        if choice == "cap":
            return Step("CAPABILITY", b"CAPABILITY\r\n", "capability")
        if choice == "noop":
            data, label = rng.choice(
                [
                    (b"NOOP\r\n", "noop"),
                    (b'NOOP "t\\"1\\\\"\r\n', "noop:escapes"),
                    (b"NOOP {3+}\r\nabc\r\n", "noop:lit"),
                    (b"NOOP {2}\r\nab\r\n", "noop:lit-sync"),
                    (b"NOOP atom\r\n", "noop:atom"),
                    (b'NOOP "a" "b"\r\n', "noop:two"),
                    (b"NOOP {2+}\r\na\x00\r\n", "noop:literal-nul"),
                    (b'NOOP "\xc3\xa9"\r\n', "noop:utf8"),
                    (b'NOOP "\xff"\r\n', "noop:bad-utf8"),
                    (b"NOOP {1+}\r\n\xff\r\n", "noop:bad-utf8-literal"),
                ]
            )
            return Step("NOOP", data, label)
        if choice == "unknown":
            return Step("raw", rng.choice([b"FOO\r\n", b"XYZZY a b\r\n", b"PUT SCRIPT\r\n", b"\r\n"]), "unknown")
        if choice == "lower":
            data = rng.choice(
                [
                    b"listscripts\r\n",
                    b"Listscripts\r\n",
                    b"capability\r\n",
                    b"noop\r\n",
                    b'getscript "a"\r\n',
                    b'putscript "lower" {6+}\r\nkeep;\n\r\n',
                    b'setactive ""\r\n',
                    b'havespace "a" 10\r\n',
                ]
            )
            kind = data.split()[0].decode().upper()
            if kind == "PUTSCRIPT" and b"lower" not in self.known:
                self.known.append(b"lower")
            return Step(
                kind if kind in ("LISTSCRIPTS", "CAPABILITY", "GETSCRIPT") else "raw", data, f"lower {data[:20]!r}"
            )
        if choice == "extra":
            return Step(
                "raw",
                rng.choice(
                    [
                        b"LISTSCRIPTS x\r\n",
                        b'GETSCRIPT "a" "b"\r\n',
                        b'DELETESCRIPT "a" x\r\n',
                        b"CAPABILITY 1\r\n",
                        b'SETACTIVE "a" "b"\r\n',
                        b"LOGOUT now\r\n",
                        b'CHECKSCRIPT "keep;" "x"\r\n',
                        b'RENAMESCRIPT "a" "b" "c"\r\n',
                        b'PUTSCRIPT "a" "keep;" "x"\r\n',
                        b'HAVESPACE "a" 1 2\r\n',
                    ]
                ),
                "extra",
            )
        if choice == "missing":
            return Step(
                "raw",
                rng.choice(
                    [
                        b"PUTSCRIPT\r\n",
                        b'PUTSCRIPT "a"\r\n',
                        b'RENAMESCRIPT "a"\r\n',
                        b"GETSCRIPT\r\n",
                        b"DELETESCRIPT\r\n",
                        b"SETACTIVE\r\n",
                        b'HAVESPACE "a"\r\n',
                        b"HAVESPACE\r\n",
                        b"CHECKSCRIPT\r\n",
                        b"RENAMESCRIPT\r\n",
                    ]
                ),
                "missing",
            )
        if choice == "syntax":
            return Step(
                "raw",
                rng.choice(
                    [
                        b'GETSCRIPT "a\r\n',
                        b'GETSCRIPT "a\\nb"\r\n',
                        b"GETSCRIPT {abc}\r\n",
                        b"GETSCRIPT {-1+}\r\n",
                        b"GETSCRIPT { 1+}\r\nx\r\n",
                        b'PUTSCRIPT "s" {3+}\r\nkeep;\r\n',
                        b'GETSCRIPT "a"x\r\n',
                        b'PUTSCRIPT "s" {5+} "x"\r\n',
                        b"GETSCRIPT (a)\r\n",
                        b'GETSCRIPT  "a"\r\n',
                        b'GETSCRIPT "a" \r\n',
                        b'GETSCRIPT "a\x00"\r\n',
                        b"NOOP\r\r\n",
                        b'SETACTIVE "\xff"\r\n',
                        b"LISTSCRIPTS\n",
                        b"X" * 20000 + b"\r\n",
                    ]
                ),
                "syntax",
            )
        return Step("UNAUTHENTICATE", b"UNAUTHENTICATE\r\n", "unauthenticate")


def run_sequence(pair: Pair, seed: int) -> list[str]:
    """Drive both servers with one seeded sequence; the differences not in ALLOWED."""
    pair.wipe()
    gen = Generator(seed)
    ours, dov = login(pair.ours), login(pair.dovecot)
    problems: list[str] = []
    diverged = False
    try:
        for n in range(STEPS):
            step = gen.step()
            a, b = run_step(ours, step, n), run_step(dov, step, n)
            if step.kind == "UNAUTHENTICATE" and not ours.closed:
                ours.send(AUTH)  # back to the state Dovecot stayed in
                assert ours.response().kind == "OK"
            if a != b:
                if allowed(step, a, b) is None:
                    problems.append(
                        f"seed {seed} step {n} {step.label}: sent {step.data[:120]!r}\n"
                        f"    ours:    {a}\n    dovecot: {b}"
                    )
                    break  # the states may differ from here on
                if step.kind not in (
                    "NOOP",
                    "GETSCRIPT",
                    "LISTSCRIPTS",
                    "CHECKSCRIPT",
                    "HAVESPACE",
                    "CAPABILITY",
                    "UNAUTHENTICATE",
                ):
                    diverged = True
                    break  # an allowed difference that may change the state
            if a[1] or b[1]:
                break
    finally:
        ours.close()
        dov.close()
    if not problems and not diverged:
        so, sd = final_state(pair.ours), final_state(pair.dovecot)
        if so != sd:
            problems.append(f"seed {seed}: final state differs\n    ours:    {so}\n    dovecot: {sd}")
    return problems


def final_state(port: int) -> tuple:
    w = login(port)
    try:
        w.send(b"LISTSCRIPTS\r\n")
        r = w.response()
        listing = sorted((line[0], len(line) > 1) for line in r.lines)
        contents = {}
        for name, _ in listing:
            w.send(b"GETSCRIPT " + lit(name) + b"\r\n")
            g = w.response()
            contents[name] = g.lines[0][0] if g.kind == "OK" else g.kind
        return listing, contents
    finally:
        w.close()


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_generated_sequences_after_login(servers, seed):
    problems = run_sequence(servers, seed)
    assert not problems, "\n".join(problems)


def test_capabilities_before_and_after_login(servers):
    for state in ("before", "after"):
        got = []
        for port in (servers.ours, servers.dovecot):
            w = login(port) if state == "after" else Wire(port)
            greeting = capabilities(w.greeting, "before")
            w.send(b"CAPABILITY\r\n")
            got.append(capabilities(w.response(), state))
            if state == "before":
                assert got[-1] == greeting
            w.close()
        ours, dov = got
        assert ours == dov, state
        assert "STARTTLS" not in ours  # not configured on either


def _pre_login(port: int, steps: list) -> list:
    """Run (bytes, expect) steps on a fresh connection; expect is "response" or "challenge"."""
    w = Wire(port)
    out = []
    try:
        for data, expect in steps:
            if w.closed:
                out.append("closed")
                break
            w.send(data)
            try:
                r = w.line_or_response() if expect == "challenge" else w.response()
            except Closed:
                out.append("closed")
                break
            except ReadTimeout:
                out.append("timeout")
                break
            out.append(r if isinstance(r, tuple) else r.norm())
        else:
            w.send(b'NOOP "end"\r\n')
            try:
                out.append(w.response().norm())
            except (Closed, ReadTimeout):
                out.append("closed")
    finally:
        w.close()
    return out


R, C = "response", "challenge"
B64_USER, B64_PASS = base64.b64encode(USER.encode()), base64.b64encode(PASSWORD.encode())
PRE_LOGIN = {
    "listscripts": [(b"LISTSCRIPTS\r\n", R)],
    "getscript": [(b'GETSCRIPT "a"\r\n', R)],
    "noop-tags": [(b"NOOP\r\n", R), (b'NOOP "x"\r\n', R), (b"noop\r\n", R), (b"NOOP {2+}\r\nab\r\n", R)],
    "capability-lower": [(b"capability\r\n", R)],
    "three-unknown": [(b"FOO\r\n", R), (b"BAR\r\n", R), (b"BAZ\r\n", R)],
    "unknown-then-args": [(b"FOO\r\n", R), (b"CAPABILITY x\r\n", R), (b"LOGOUT x\r\n", R)],
    "empty-lines": [(b"\r\n", R), (b"\r\n", R), (b"\r\n", R)],
    "starttls-absent": [(b"STARTTLS\r\n", R)],
    "unauthenticate": [(b"UNAUTHENTICATE\r\n", R)],
    "logout": [(b"LOGOUT\r\n", R), (b"NOOP\r\n", R)],
    "bad-base64": [(b'AUTHENTICATE "PLAIN" "!!!!"\r\n', R)],
    "wrong-password": [(b'AUTHENTICATE "PLAIN" "' + plain(password="wrong") + b'"\r\n', R)],
    "unknown-user": [(b'AUTHENTICATE "PLAIN" "' + plain(user="nobody@example.org") + b'"\r\n', R)],
    "abort-quoted": [(b'AUTHENTICATE "PLAIN"\r\n', C), (b'"*"\r\n', R)],
    "abort-login": [(b'AUTHENTICATE "LOGIN"\r\n', C), (b'"*"\r\n', R)],
    "continuation-quoted": [(b'AUTHENTICATE "PLAIN"\r\n', C), (b'"' + plain() + b'"\r\n', R), (b"LISTSCRIPTS\r\n", R)],
    "continuation-literal": [(b'AUTHENTICATE "PLAIN"\r\n', C), (lit(plain()) + b"\r\n", R)],
    "continuation-bad-base64": [(b'AUTHENTICATE "PLAIN"\r\n', C), (b'"!!"\r\n', R)],
    "continuation-not-a-string": [(b'AUTHENTICATE "PLAIN"\r\n', C), (b"NOOP\r\n", R)],
    "initial-literal": [(b'AUTHENTICATE "PLAIN" ' + lit(plain()) + b"\r\n", R)],
    "initial-literal-sync": [(b'AUTHENTICATE "PLAIN" ' + lit(plain(), plus=False) + b"\r\n", R)],
    "mechanism-lowercase": [(b'AUTHENTICATE "plain" "' + plain() + b'"\r\n', R)],
    "mechanism-atom": [(b'AUTHENTICATE PLAIN "' + plain() + b'"\r\n', R)],
    "mechanism-unknown": [(b'AUTHENTICATE "CRAM-MD5"\r\n', R)],
    "mechanism-missing": [(b"AUTHENTICATE\r\n", R)],
    "login-mechanism": [(b'AUTHENTICATE "LOGIN"\r\n', C), (q(B64_USER) + b"\r\n", C), (q(B64_PASS) + b"\r\n", R)],
    "login-initial": [(b'AUTHENTICATE "LOGIN" ' + q(B64_USER) + b"\r\n", C), (q(B64_PASS) + b"\r\n", R)],
    "authzid-self": [(b'AUTHENTICATE "PLAIN" "' + plain(authzid=USER) + b'"\r\n', R)],
    "authzid-other": [(b'AUTHENTICATE "PLAIN" "' + plain(authzid="bob@example.org") + b'"\r\n', R)],
    "empty-initial": [(b'AUTHENTICATE "PLAIN" ""\r\n', R)],
    "syntax-errors": [(b'NOOP "a\r\n', R), (b'NOOP "a\\nb"\r\n', R), (b"NOOP {abc}\r\n", R), (b'NOOP "\xff"\r\n', R)],
    "quoted-escapes": [(b'NOOP "a\\"b\\\\c"\r\n', R)],
    "literal-too-large": [(b"NOOP {100000+}\r\n", R)],
    "literal-beyond-number": [(b"NOOP {99999999999+}\r\n", R)],
    "line-too-long": [(b"NOOP " + b"x" * 20000 + b"\r\n", R)],
}
PRE_LOGIN_ALLOWED = {
    "syntax-errors": (
        "Malformed lines count as bad commands before login here (3 end the "
        "connection: the number of commands before authentication stays bounded); "
        "Pigeonhole's login process counts only unknown commands and wrong argument "
        "counts, and answers malformed lines forever",
        [("NO", ()), ("NO", ()), ("BYE", ()), "closed"],
    ),
}


@pytest.mark.parametrize("case", sorted(PRE_LOGIN))
def test_not_authenticated_state(servers, case):
    ours, dov = _pre_login(servers.ours, PRE_LOGIN[case]), _pre_login(servers.dovecot, PRE_LOGIN[case])
    if case in PRE_LOGIN_ALLOWED:
        reason, expected = PRE_LOGIN_ALLOWED[case]
        assert ours == expected and ours != dov, reason
        return
    assert ours == dov, case


def test_putscript_before_login_reads_the_literal(servers):
    """A literal is part of its command even when the command is refused (RFC 5804 4,
    literal-c2s): we skip its octets; Dovecot's login process skips only the line and then reads
    the script's text as commands, so its answers are not the reference here."""
    script = b"LOGOUT\r\n"
    assert _pre_login(servers.ours, [(b'PUTSCRIPT "a" ' + lit(script) + b"\r\n", R)]) == [
        ("NO", ()),
        ("OK", ("TAG", b"end")),
    ]
    got = _pre_login(servers.dovecot, [(b'PUTSCRIPT "a" ' + lit(script) + b"\r\n", R)])
    assert got[0] == ("NO", ())


def test_hostile_input_stays_bounded(servers):
    """Long lines, endless literals and floods end within a bounded time and memory on ours."""
    start = time.monotonic()
    for port in (servers.ours, servers.dovecot):
        w = Wire(port)  # a flood of bad commands before login
        w.send(b"FOO\r\n" * 50)
        kinds = []
        try:
            while True:
                kinds.append(w.response().kind)
        except (Closed, ReadTimeout):
            pass
        assert kinds[-1] == "BYE" and len(kinds) <= 20, (port, kinds)
        w.close()
    w = login(servers.ours)  # a literal far beyond the script size limit
    w.send(b'PUTSCRIPT "huge" {50000000+}\r\n' + b"#" * 65536)
    w.close()
    w = login(servers.ours)
    w.send(b"NOOP " + b"x" * 200000 + b"\r\nNOOP\r\n")
    assert w.response().kind == "NO" and w.response().kind == "OK"
    w.close()
    assert time.monotonic() - start < 20


@pytest.mark.parametrize("errors", [3, 5, 12])
def test_compile_errors_are_capped_as_in_dovecot(servers, errors):
    """managesieve_max_compile_errors (default 5, Dovecot's name and default): a script with
    more errors gets the first five back, on PUTSCRIPT and CHECKSCRIPT alike; fewer are all
    sent. Dovecot adds a 'validation failed' line when room is left; the error lines proper
    (each naming its line) are what both must agree on."""
    script = b"".join(b"frob%d;\r\n" % i for i in range(errors))
    for command in (b'PUTSCRIPT "x" ', b"CHECKSCRIPT "):
        seen = {}
        for who, port in (("ours", servers.ours), ("dovecot", servers.dovecot)):
            w = login(port)
            w.send(command + lit(script) + b"\r\n")
            r = w.response()
            w.close()
            assert r.kind == "NO", (who, r)
            named = [ln for ln in r.text.split(b"\r\n") if b"frob" in ln]
            seen[who] = [re.search(rb"frob\d+", ln).group() for ln in named]
        assert seen["ours"] == seen["dovecot"] == [b"frob%d" % i for i in range(min(errors, 5))], seen
