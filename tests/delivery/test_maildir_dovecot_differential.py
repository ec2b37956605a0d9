"""Differential test: where and how `owlery lmtpd` and Dovecot's LMTP (Pigeonhole) store a message.

For each case (a Sieve script doing fileinto [:create] [:flags] [:specialuse], keep :flags,
setflag/addflag/removeflag, into folder names that stress the Maildir++ mapping: non-ASCII,
'&', '~', '.', '/', spaces, INBOX children, long names, control characters, names already in
modified UTF-7, '%' and '*', empty levels; flags: system flags, \\Recent, keywords with odd
characters, more than 26 keywords, keywords differing in case, invalid atoms) the same message
goes, with the same script, through Dovecot's LMTP into uNNN@d.example's Maildir and through owlery
lmtpd into uNNN@o.example's; one private Dovecot (tests/harness/dovecot.py) serves both homes.
Also compared: the LMTP reply code each recipient got after DATA.
Then, with Dovecot's IMAP as the reference reader, per user: LIST and LSUB (names as IMAP shows
them, with their attributes), and per message the mailbox it is in, its FLAGS (system flags and
keywords; \\Recent left out, it says who looked first) and its text without the trace fields
(Return-Path, Delivered-To, Received). Before IMAP looks (a SELECT moves new/ to cur/), the raw
layout on disk: the folder directories, and per message file its directory, new/ or cur/, its
system flag letters and its keywords (letters resolved through the folder's dovecot-keywords).

Cases: hand-written CASES, then GENERATED seeded ones (fixed seed). Each case has two fresh
users, so no case sees another's folders or keywords; some start with folders made beforehand
(a special-use folder that exists, a keyword table already full).

Where the two differ for a reason, ALLOWED names the situation and the reason (Dovecot departing
from the RFCs, or a deliberate Owlery choice); KNOWN_OWLERY_BUGS names Owlery differences owned by
files outside this test's remit (sieve/), open until fixed. An entry that no case needs any more
fails the test (test_allow_list_is_not_stale), so both lists stay true. Fixes this test found:
tests/delivery/test_maildir_parity_s12.py.

The Owlery defaults are kept (delivery_mailbox_autocreate, the special-use table), and Dovecot is
configured to match them (lda_mailbox_autocreate, special_use in the inbox namespace, and
sieve_extensions = +special-use: Pigeonhole 0.5 does not enable RFC 8579 by default).
"""

from __future__ import annotations

import collections
import dataclasses
import imaplib
import random
import re
import smtplib
import time
from pathlib import Path

import pytest

from tests.delivery.daemon import Lmtpd, remove_workdir, shared_workdir
from tests.delivery.test_lmtp_dovecot_differential import strip_trace
from tests.harness.dovecot import DovecotInstance
from tests.harness.procs import LOOPBACK

SEED = 20261206
GENERATED = 120
BATCH = 40  # recipients per LMTP transaction

SPECIAL_USE_CONF = """
plugin {
  sieve_extensions = +special-use
}
namespace inbox {
  inbox = yes
  separator = .
  mailbox Junk {
    special_use = \\Junk
  }
  mailbox Trash {
    special_use = \\Trash
  }
  mailbox Sent {
    special_use = \\Sent
  }
  mailbox "Sent Messages" {
    special_use = \\Sent
  }
  mailbox Drafts {
    special_use = \\Drafts
  }
  mailbox Archive {
    special_use = \\Archive
  }
}
"""

MESSAGE = (
    b"From: Sender <s@remote.test>\r\n"
    b"To: <someone@example.org>\r\n"
    b"Subject: maildir differential\r\n"
    b"Message-ID: <maildir-diff@remote.test>\r\n"
    b"Date: Sun, 06 Dec 2026 12:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"caf\xc3\xa9 body\r\n"
    b"..dot-stuffed line\r\n"
    b"last line\r\n"
)


# -- cases -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    label: str
    script: str
    # folders made on both sides before delivery (Dovecot's Maildir++ directory names), and
    # per folder directory ("" = INBOX) a dovecot-keywords table to start from
    setup: tuple = ()
    keywords: tuple = ()


def q(text: str) -> str:
    """A Sieve quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def qlist(items) -> str:
    return "[" + ", ".join(q(i) for i in items) + "]"


REQUIRE = 'require ["fileinto", "imap4flags", "mailbox", "special-use"];\n'

LONG = "x" * 250
NAMES = [
    "Work",
    "Work.Projects",
    "Work/Projects",
    "caf\u00e9",
    "\u65e5\u672c",
    "\U0001f4e7 mail",
    "caf\u00e9.\u65e5\u672c",
    "a&b",
    "&",
    "&AOk-",
    "&Jjo-",
    "&-",
    "~tilde",
    "a~b",
    "a.~b",
    "a.",
    ".lead",
    "a..b",
    "a//b",
    "a/",
    "/a",
    " lead",
    "trail ",
    "two  spaces",
    "  ",
    "INBOX/x",
    "INBOX.x",
    "inbox",
    "Inbox",
    "inbox.sub",
    "INBOX",
    "x" * 250,
    "x" * 254,
    "x" * 255,
    "x" * 256,
    "\u00e9" * 40,
    "\u00e9" * 90,
    "a." + "y" * 252,
    ".".join(["lvl%02d" % i for i in range(40)]),
    ".".join(["lvl%02d" % i for i in range(60)]),
    "ctl\x01x",
    "tab\tx",
    "del\x7fx",
    "esc\x1bx",
    "%",
    "a*b",
    "a%b",
    'quote"x',
    "back\\slash",
    "[brackets]",
    "Junk",
    "Sent Messages",
    "a:b",
    "a,b",
    "-dash",
    "\u00a0nbsp",
    "\u200bzero-width",
    "e\u0301",
    "\U0001f600.\U0001f4e7",
]

FLAGS = [
    "\\Seen",
    "\\Answered",
    "\\Flagged",
    "\\Deleted",
    "\\Draft",
    "\\Recent",
    "\\seen",
    "\\FLAGGED",
    "\\Bogus",
    "$Label1",
    "$label1",
    "Foo",
    "foo",
    "FOO",
    "NonJunk",
    "$Junk",
    "a]b",
    "a(b",
    "a%b",
    "a*b",
    "a{b",
    'a"b',
    "a\\b",
    "caf\u00e9",
    "k" * 50,
    "k" * 51,
    "tab\tx",
    "ctl\x01x",
    "two words",
    "",
    "$Forwarded",
    "~tilde",
    "a.b",
    "a/b",
    "&amp",
]

SPECIAL = ["\\Junk", "\\junk", "\\Trash", "\\Sent", "\\Drafts", "\\Archive", "\\All", "\\Bogus", "Junk"]


def many_keywords(n: int, prefix: str = "kw") -> list[str]:
    return [f"{prefix}{i:02d}" for i in range(n)]


def folder_dir(name: str) -> str:
    """A folder directory name as Dovecot's Maildir++ layout makes it (for setups only)."""
    from owlery.maildir import encode_mutf7

    return "." + ".".join(encode_mutf7(p) for p in name.split("."))


CASES = [
    Case("keep-plain", "keep;\n"),
    Case("no-script-actions", "# nothing\n"),
    Case("keep-system-flags", 'keep :flags ["\\\\Seen", "\\\\Answered", "\\\\Flagged", "\\\\Deleted", "\\\\Draft"];\n'),
    Case("keep-recent", 'keep :flags ["\\\\Recent", "\\\\Seen"];\n'),
    Case("keep-bogus-system", 'keep :flags ["\\\\Bogus", "Foo"];\n'),
    Case("keep-30-keywords", f"keep :flags {qlist(many_keywords(30))};\n"),
    Case("fileinto-30-keywords", f'fileinto :flags {qlist(many_keywords(30))} "Tags";\n'),
    Case(
        "keep-26-plus-existing",
        f"keep :flags {qlist(many_keywords(3, 'new'))};\n",
        keywords=(("", tuple(many_keywords(25, "old"))),),
    ),
    Case(
        "keep-existing-keyword-reused",
        'keep :flags ["old03", "fresh"];\n',
        keywords=(("", tuple(many_keywords(26, "old"))),),
    ),
    Case("keep-case-keywords", 'keep :flags ["Foo", "foo", "FOO", "$Label1", "$label1"];\n'),
    Case("setflag-case", 'setflag ["Foo", "foo"];\naddflag "FOO";\n'),
    Case("removeflag-case", 'setflag ["Foo", "Bar", "\\\\Seen"];\nremoveflag ["foo", "\\\\SEEN"];\n'),
    Case("flags-split-spaces", 'keep :flags ["a b  c", " d "];\n'),
    Case("invalid-atoms", "keep :flags " + qlist(["a]b", "a(b", "a%b", "a*b", "a{b", "ok1"]) + ";\n"),
    Case("keyword-quote-backslash", "keep :flags " + qlist(['a"b', "a\\\\b", "ok2"]) + ";\n"),
    Case("keyword-8bit", "keep :flags " + qlist(["caf\u00e9", "ok3"]) + ";\n"),
    Case("keyword-long", "keep :flags " + qlist(["k" * 50, "l" * 51, "m" * 200]) + ";\n"),
    Case("keyword-controls", "keep :flags " + qlist(["ctl\x01x", "ok4"]) + ";\n"),
    Case("specialuse-exists", 'fileinto :specialuse "\\\\Junk" "Spam";\n', setup=("Junk",)),
    Case("specialuse-missing", 'fileinto :specialuse "\\\\Junk" "Spam";\n'),
    Case("specialuse-missing-create", 'fileinto :specialuse "\\\\Junk" :create "Spam";\n'),
    Case("specialuse-second-sent", 'fileinto :specialuse "\\\\Sent" "Out";\n', setup=("Sent Messages",)),
    Case("specialuse-bogus", 'fileinto :specialuse "\\\\Bogus" "Spam";\n'),
    Case("specialuse-noslash", 'fileinto :specialuse "Junk" "Spam";\n', setup=("Junk",)),
    Case("specialuse-named-is-it", 'fileinto :specialuse "\\\\Trash" "Trash";\n'),
    Case("specialuse-flags", 'fileinto :specialuse "\\\\Archive" :flags "\\\\Seen" "Old";\n', setup=("Archive",)),
    Case("fileinto-twice-flags-merged", 'fileinto :flags "\\\\Seen" "Two";\nfileinto :flags "x1" "Two";\n'),
    Case("fileinto-and-keep", 'fileinto :flags "\\\\Seen" "Box";\nkeep :flags "\\\\Flagged";\n'),
    Case("fileinto-inbox-flags", 'fileinto :flags "\\\\Seen" "INBOX";\n'),
    Case("fileinto-inbox-and-keep", 'fileinto :flags "\\\\Seen" "inbox";\nkeep :flags "x2";\n'),
    Case("fileinto-existing-folder-nocreate", 'fileinto "Old";\n', setup=("Old",)),
    Case("fileinto-child-of-existing", 'fileinto "Old.child";\n', setup=("Old",)),
    Case(
        "fileinto-same-folder-two-spellings", 'fileinto :flags "\\\\Seen" "Work.Projects";\nfileinto "Work/Projects";\n'
    ),
    Case("fileinto-inbox-child-two-spellings", 'fileinto "inbox.sub";\nfileinto :flags "x3" "INBOX.sub";\n'),
    # Pigeonhole rolls back the INBOX store with the refused one and answers 250: a lost message
    Case("fileinto-inbox-then-refused-name", 'fileinto "INBOX";\nfileinto "ctl\x01x";\n'),
]
# each name alone (fileinto :create), each flag alone and beside a valid keyword (keep :flags)
CASES += [Case(f"name-{i:02d}", f"fileinto :create {q(name)};\n") for i, name in enumerate(NAMES)]
CASES += [Case(f"flag-{i:02d}", "keep :flags " + qlist([flag, "ok"]) + ";\n") for i, flag in enumerate(FLAGS)]
CASES += [Case(f"flag-alone-{i:02d}", "fileinto :flags " + q(flag) + ' "F";\n') for i, flag in enumerate(FLAGS)]


def _script(rnd: random.Random) -> str:
    roll = rnd.random()
    name = rnd.choice(NAMES)

    def flags(k=None):
        k = rnd.randint(1, 4) if k is None else k
        return [rnd.choice(FLAGS) for _ in range(k)]

    if roll < 0.45:
        args = []
        if rnd.random() < 0.5:
            args.append(":create")
        if rnd.random() < 0.5:
            args.append(":flags " + qlist(flags()))
        if rnd.random() < 0.12:
            args.append(":specialuse " + q(rnd.choice(SPECIAL)))
        rnd.shuffle(args)
        return f"fileinto {' '.join(args)} {q(name)};\n".replace("  ", " ")
    if roll < 0.6:
        return f"keep :flags {qlist(flags())};\n"
    if roll < 0.85:
        body = ""
        for _ in range(rnd.randint(1, 3)):
            body += f"{rnd.choice(['setflag', 'addflag', 'removeflag'])} {qlist(flags())};\n"
        end = rnd.random()
        if end < 0.4:
            body += f"fileinto {q(name)};\n"
        elif end < 0.6:
            body += f"fileinto :flags {qlist(flags())} {q(name)};\n"
        elif end < 0.7:
            body += "keep;\n"
        return body
    # two stores
    other = rnd.choice(NAMES)
    return f"fileinto :flags {qlist(flags())} {q(name)};\nfileinto :create {q(other)};\n"


def generated(seed: int = SEED, count: int = GENERATED) -> list[Case]:
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        setup = ("Junk",) if rnd.random() < 0.1 else ()
        out.append(Case(f"gen-{i:03d}", _script(rnd), setup))
    return out


ALL = CASES + generated()


# -- the two servers ---------------------------------------------------------------------------


def _make_folder(root: Path, dirname: str) -> None:
    for sub in ("cur", "new", "tmp"):
        (root / dirname / sub).mkdir(parents=True, exist_ok=True)
    (root / dirname / "maildirfolder").touch()


def _prepare_home(home: Path, case: Case) -> None:
    (home / "sieve").mkdir(parents=True)
    (home / "sieve" / "active.sieve").write_text(REQUIRE + case.script, encoding="utf-8")
    md = home / "Maildir"
    if case.setup or case.keywords:
        for sub in ("cur", "new", "tmp"):
            (md / sub).mkdir(parents=True, exist_ok=True)
    for name in case.setup:
        _make_folder(md, folder_dir(name))
    for dirname, words in case.keywords:
        if dirname:
            _make_folder(md, dirname)
        (md / dirname / "dovecot-keywords").write_text("".join(f"{i} {w}\n" for i, w in enumerate(words)))


@dataclasses.dataclass
class Servers:
    work: Path
    dovecot: DovecotInstance
    lmtpd: Lmtpd
    homes: dict  # (side, index) -> home


DOMAIN_D, DOMAIN_O = "d.example", "o.example"


def user(side: str, i: int) -> str:
    return f"u{i:03d}@{DOMAIN_D if side == 'dovecot' else DOMAIN_O}"


@pytest.fixture(scope="module")
def servers():
    work = shared_workdir("owlery-maildir-diff-")
    homes = {}
    for i, case in enumerate(ALL):
        homes["dovecot", i] = work / "dove" / f"u{i:03d}"
        homes["ours", i] = work / "ours" / DOMAIN_O / f"u{i:03d}"
        for side in ("dovecot", "ours"):
            _prepare_home(homes[side, i], case)
    users = {user(side, i): str(h) for (side, i), h in homes.items()}
    dovecot = DovecotInstance(work / "dovecot", users, extra_conf=SPECIAL_USE_CONF)
    lmtpd = None
    try:
        dovecot.start()
        lmtpd = Lmtpd(
            work,
            f"""
maildir_path_template = "{work}/ours/{{domain}}/{{localpart}}/Maildir"
delivery_sieve_script_template = "{work}/ours/{{domain}}/{{localpart}}/sieve/active.sieve"
state_sqlite_path = "{work}/state.sqlite"
maildir_owner = "nobody"
maildir_fsync = "never"
delivery_use_directory = false
log_level = "warning"
""",
        ).start()
        yield Servers(work, dovecot, lmtpd, homes)
    finally:
        if lmtpd is not None:
            lmtpd.stop()
        dovecot.stop()
        remove_workdir(work)


def deliver_all(port: int, rcpts: list[str]) -> dict:
    """One LMTP transaction per BATCH recipients; {recipient: (code, text)} for each (one reply
    per accepted RCPT after DATA, RFC 2033 4.2)."""
    replies = {}
    for start in range(0, len(rcpts), BATCH):
        client = smtplib.LMTP(LOOPBACK, port, timeout=60)
        try:
            client.ehlo("client.test")
            client.mail("sender@remote.test")
            accepted = []
            for rcpt in rcpts[start : start + BATCH]:
                code, text = client.rcpt(rcpt)
                if code // 100 == 2:
                    accepted.append(rcpt)
                else:
                    replies[rcpt] = (code, text)
            if accepted:
                got = [client.data(MESSAGE)] + [client.getreply() for _ in accepted[1:]]
                replies.update(zip(accepted, got))
            client.quit()
        finally:
            client.close()
    return replies


# -- what each side stored ---------------------------------------------------------------------


def _keywords_table(folder: Path) -> dict:
    try:
        text = (folder / "dovecot-keywords").read_text(errors="replace")
    except FileNotFoundError:
        return {}
    out = {}
    for line in text.splitlines():
        idx, _, word = line.partition(" ")
        if idx.isdigit():
            out[chr(ord("a") + int(idx))] = word
    return out


def disk_view(md: Path) -> tuple:
    """(folder directories, sorted (dir, new|cur, system letters, keywords) per message)."""
    if not md.is_dir():
        return (), ()
    dirs = sorted(e.name for e in md.iterdir() if e.name.startswith(".") and (e / "cur").is_dir())
    msgs = []
    for d in [""] + dirs:
        folder = md / d if d else md
        table = _keywords_table(folder)
        for sub in ("new", "cur"):
            if not (folder / sub).is_dir():
                continue
            for f in (folder / sub).iterdir():
                info = f.name.partition(":2,")[2]
                letters = "".join(c for c in info if c.isupper())
                words = tuple(sorted(table.get(c, "?" + c) for c in info if c.islower()))
                msgs.append((d, sub, letters, words))
    return tuple(dirs), tuple(sorted(msgs))


LIST_RE = re.compile(rb'^\((?P<attrs>[^)]*)\) (?:"(?P<sep>[^"]*)"|NIL) (?P<name>.*)$')


def _imap_names(data: list) -> list:
    """(name, attributes) from LIST/LSUB responses (quoted, atom or literal names)."""
    out = []
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):
            head, literal = item
            m = LIST_RE.match(head.rstrip(b"{0123456789}").rstrip() + b" x")
            attrs = m.group("attrs") if m else head
            name = literal
        else:
            m = LIST_RE.match(item)
            assert m, item
            attrs = m.group("attrs")
            name = m.group("name")
            if name.startswith(b'"'):
                name = re.sub(rb"\\(.)", rb"\1", name[1:-1])
        out.append((name.decode("utf-8", "surrogateescape"), tuple(sorted(attrs.decode().split()))))
    return sorted(out)


FLAGS_RE = re.compile(rb"FLAGS \(([^)]*)\)")


def imap_view(client: imaplib.IMAP4) -> tuple:
    """(LIST, LSUB, {mailbox: sorted [(flags, text)]})."""
    typ, data = client.list('""', "*")
    assert typ == "OK", data
    listed = _imap_names(data)
    typ, data = client.lsub('""', "*")
    assert typ == "OK", data
    subscribed = _imap_names(data)
    boxes = {}
    for name, attrs in listed:
        if "\\Noselect" in attrs or "\\NonExistent" in attrs:
            continue
        client.literal = name.encode("utf-8", "surrogateescape")
        typ, data = client.select(None, readonly=True)
        if typ != "OK":
            boxes[name] = ((("SELECT " + typ,), b""),)
            continue
        count = int(data[0])
        msgs = []
        if count:
            typ, data = client.fetch("1:*", "(FLAGS BODY.PEEK[])")
            assert typ == "OK", data
            for item in data:
                if not isinstance(item, tuple):
                    continue
                m = FLAGS_RE.search(item[0])
                flags = tuple(sorted(f for f in m.group(1).decode().split() if f != "\\Recent"))
                msgs.append((flags, strip_trace(item[1].replace(b"\r\n", b"\n"))))
        boxes[name] = tuple(sorted(msgs))
        client.close()
    return tuple(listed), tuple(subscribed), boxes


@dataclasses.dataclass
class View:
    reply: tuple  # (code, text) after DATA, or the RCPT refusal
    disk: tuple
    listed: tuple
    subscribed: tuple
    boxes: dict
    keyword_tables: dict = dataclasses.field(default_factory=dict)  # folder dir -> dovecot-keywords entries


def keyword_tables(md: Path) -> dict:
    if not md.is_dir():
        return {}
    dirs = [""] + [e.name for e in md.iterdir() if e.name.startswith(".") and (e / "cur").is_dir()]
    return {d: len(_keywords_table(md / d if d else md)) for d in dirs}


def collect(srv: Servers) -> dict:
    """Deliver every case on both sides; {(side, i): View}."""
    n = len(ALL)
    replies = {
        "dovecot": deliver_all(srv.dovecot.lmtp_port, [user("dovecot", i) for i in range(n)]),
        "ours": deliver_all(srv.lmtpd.port, [user("ours", i) for i in range(n)]),
    }
    views = {}
    for (side, i), home in srv.homes.items():
        md = home / "Maildir"
        views[side, i] = View(
            replies[side].get(user(side, i), (None, b"no reply")), disk_view(md), (), (), {}, keyword_tables(md)
        )
    for (side, i), view in views.items():
        client = srv.dovecot.imap(user(side, i))
        try:
            view.listed, view.subscribed, view.boxes = imap_view(client)
        finally:
            client.logout()
    return views


# -- comparing -----------------------------------------------------------------------------------


def differences(case: Case, ours: View, dov: View) -> list:
    """(kind, detail) for each way the two sides differ."""
    out = []
    if ours.reply[0] != dov.reply[0]:
        out.append(("reply", f"ours {ours.reply} | dovecot {dov.reply}"))
    if [n for n, _ in ours.listed] != [n for n, _ in dov.listed]:
        out.append(("list-names", f"ours {[n for n, _ in ours.listed]} | dovecot {[n for n, _ in dov.listed]}"))
    elif ours.listed != dov.listed:
        out.append(("list-attributes", f"ours {ours.listed} | dovecot {dov.listed}"))
    if ours.subscribed != dov.subscribed:
        out.append(("lsub", f"ours {[n for n, _ in ours.subscribed]} | dovecot {[n for n, _ in dov.subscribed]}"))
    if ours.disk[0] != dov.disk[0]:
        out.append(("disk-dirs", f"ours {ours.disk[0]} | dovecot {dov.disk[0]}"))
    where = lambda v: {b: len(m) for b, m in v.boxes.items() if m}  # noqa: E731
    if where(ours) != where(dov):
        out.append(("mailbox", f"ours {where(ours)} | dovecot {where(dov)}"))
    else:
        flags = lambda v: {b: [f for f, _ in m] for b, m in v.boxes.items() if m}  # noqa: E731
        if flags(ours) != flags(dov):
            out.append(("flags", f"ours {flags(ours)} | dovecot {flags(dov)}"))
        text = lambda v: {b: [t for _, t in m] for b, m in v.boxes.items() if m}  # noqa: E731
        if text(ours) != text(dov):
            out.append(("text", f"ours {text(ours)} | dovecot {text(dov)}"))
        if ours.disk[1] != dov.disk[1] and [m[:2] for m in ours.disk[1]] == [m[:2] for m in dov.disk[1]]:
            out.append(("disk-flags", f"ours {ours.disk[1]} | dovecot {dov.disk[1]}"))
        elif [m[:2] for m in ours.disk[1]] != [m[:2] for m in dov.disk[1]]:
            out.append(("disk-files", f"ours {ours.disk[1]} | dovecot {dov.disk[1]}"))
    return out


# -- what may differ, and why ----------------------------------------------------------------------

ATOM_SPECIALS = set('(){ %*"\\]')
DOVECOT_KEYWORD_MAX = 50  # Dovecot's mail_max_keyword_length default


def rfc_invalid_keyword(flag: str) -> bool:
    """Not an RFC 3501 atom (flag-keyword = atom): atom-specials, CTL, 8-bit."""
    return any(c in ATOM_SPECIALS or ord(c) < 0x21 or ord(c) > 0x7E for c in flag)


def _sieve_strings(text: str, i: int) -> tuple[list[str], int]:
    """The string or string list starting at text[i] (after blanks), and where it ends."""
    while text[i] in " \t":
        i += 1
    out, in_list = [], text[i] == "["
    if in_list:
        i += 1
    while True:
        while text[i] in " ,\t":
            i += 1
        if text[i] == "]":
            return out, i + 1
        assert text[i] == '"', text[i:]
        j, buf = i + 1, []
        while text[j] != '"':
            if text[j] == "\\":
                j += 1
            buf.append(text[j])
            j += 1
        out.append("".join(buf))
        i = j + 1
        if not in_list:
            return out, i


def stored_flags(script: str) -> list[str]:
    """Every flag a script's :flags, setflag and addflag name (space-separated lists split)."""
    out = []
    for m in re.finditer(r"(:flags|setflag|addflag)\b", script):
        strings, _ = _sieve_strings(script, m.end())
        out += [f for s in strings for f in s.split(" ") if f]
    return out


def fileinto_names(script: str) -> list[str]:
    """The mailbox names of a script's fileinto commands (the last string of each)."""
    names = []
    for line in script.splitlines():
        if line.startswith("fileinto"):
            names.append(_sieve_strings(line, line.rindex(' "'))[0][0])
    return names


def _split(flags: tuple) -> tuple:
    return tuple(f for f in flags if f.startswith("\\")), tuple(f for f in flags if not f.startswith("\\"))


def _placed(view: View) -> dict:
    """{mailbox: number of messages} for the mailboxes holding any."""
    return {b: len(m) for b, m in view.boxes.items() if m}


def _keywords_differ_only(ours: View, dov: View, kind: str, relation) -> bool:
    """Same mailboxes, same system flags, and per message relation(our keywords, Dovecot's)."""
    if kind in ("flags",):
        if _placed(ours) != _placed(dov):
            return False
        for box, msgs in ours.boxes.items():
            for (of, _), (df, _) in zip(msgs, dov.boxes[box]):
                (osys, okw), (dsys, dkw) = _split(of), _split(df)
                if osys != dsys or not (okw == dkw or relation(set(okw), set(dkw))):
                    return False
        return True
    if kind in ("disk-flags", "disk-files"):
        om, dm = sorted(ours.disk[1], key=lambda m: m[0]), sorted(dov.disk[1], key=lambda m: m[0])
        if len(om) != len(dm):
            return False
        for (odir, _, olet, okw), (ddir, dsub, dlet, dkw) in zip(om, dm):
            if odir != ddir or olet != dlet or not (okw == dkw or relation(set(okw), set(dkw))):
                return False
            if kind == "disk-files" and dsub == "new" and (dlet or dkw):
                return False
        return True
    return False


def _dropped_all_keywords(case: Case, kind: str, ours: View, dov: View, why) -> bool:
    flags = stored_flags(case.script)
    return why(flags) and _keywords_differ_only(ours, dov, kind, lambda o, d: not d)


def _case_duplicates(flags: list[str]) -> bool:
    seen = {}
    for f in flags:
        seen.setdefault(f.lower(), set()).add(f)
    return any(len(v) > 1 for v in seen.values())


def _rolled_back(case: Case, ours: View, dov: View) -> bool:
    """Dovecot's message is in INBOX alone; ours is in INBOX (the failure keep) and elsewhere."""
    return _placed(dov) == {"INBOX": 1} and _placed(ours).get("INBOX") == 1 and len(_placed(ours)) > 1


FOLDER_KINDS = ("list-names", "list-attributes", "lsub", "disk-dirs", "mailbox", "disk-files")

ALLOWED: list = [
    (
        "pigeonhole-drops-every-keyword",
        "A store whose flags hold a keyword that is not an IMAP atom (RFC 3501 flag-keyword = atom: no "
        "atom-specials, CTL or 8-bit): Pigeonhole logs 'specified IMAP keyword ... is invalid (ignored)' and "
        "then 'invalid keywords set for stored message', and stores the message with NONE of its keywords "
        "(system flags kept). Owlery ignores only the invalid keyword, as Pigeonhole's own warning says it "
        "does and as RFC 5232 asks of flags a store cannot set.",
        lambda case, kind, ours, dov: _dropped_all_keywords(
            case, kind, ours, dov, lambda flags: any(rfc_invalid_keyword(f) for f in flags if not f.startswith("\\"))
        ),
    ),
    (
        "dovecot-keyword-length-limit",
        "A keyword over 50 characters: Dovecot refuses it by its mail_max_keyword_length setting (default "
        "50; no RFC limit, RFC 3501 flag-keyword = atom) and then, as above, Pigeonhole drops every keyword of "
        "that store. Owlery stores it in dovecot-keywords, and Dovecot's IMAP shows it (FLAGS) as it is.",
        lambda case, kind, ours, dov: _dropped_all_keywords(
            case,
            kind,
            ours,
            dov,
            lambda flags: any(len(f) > DOVECOT_KEYWORD_MAX for f in flags if not f.startswith("\\")),
        ),
    ),
    (
        "dovecot-keywords-beyond-26-index-only",
        "More than 26 keywords in a folder: Maildir++ file names hold 26 keyword letters (a-z, through "
        "dovecot-keywords); Dovecot keeps the others in its index only (lost when the index is rebuilt). "
        "Owlery writes no Dovecot index, so it stores the first 26 and drops the rest (owlery.maildir "
        "MAX_KEYWORDS).",
        lambda case, kind, ours, dov: (
            kind == "flags"
            and any(n >= 26 for n in ours.keyword_tables.values())
            and _keywords_differ_only(ours, dov, kind, lambda o, d: o < d)
        ),
    ),
    (
        "pigeonhole-case-duplicate-drops-keyword",
        "Keywords differing only in case ('Foo', 'foo', then '$Label1', '$label1'): both keep the first "
        "spelling of each (flags compare without case, RFC 5232 2), but Pigeonhole then loses a later "
        "distinct keyword ('$Label1' is missing; with one duplicate pair it is kept). Owlery stores both.",
        lambda case, kind, ours, dov: (
            kind in ("flags", "disk-flags")
            and _case_duplicates(stored_flags(case.script))
            and _keywords_differ_only(ours, dov, kind, lambda o, d: d < o)
        ),
    ),
    (
        "slash-is-a-hierarchy-separator",
        "A fileinto name with '/' (\"Work/Projects\", \"INBOX/x\"): Owlery reads '/' as a second hierarchy "
        "separator (owlery.maildir.folder_dirname, deliberate: scripts written for '/'-separator servers "
        "file where their author meant), so it lands in Work.Projects; Dovecot's Maildir++ cannot hold '/' in "
        "a name and refuses it, so Pigeonhole keeps the message in INBOX (and rolls back the script's other "
        "stores, see below).",
        lambda case, kind, ours, dov: (
            kind in FOLDER_KINDS and any("/" in n for n in fileinto_names(case.script)) and _placed(dov) == {"INBOX": 1}
        ),
    ),
    (
        "pigeonhole-rolls-back-every-store",
        "Several stores of which one fails (a name either side refuses): Pigeonhole rolls back every store "
        "of the result and keeps the message in INBOX only; Owlery keeps the stores that worked and adds "
        "the failure keep into INBOX (sieve/delivery/planner.py rule 6). Both keep the message (RFC 5228 "
        "2.10.6); neither loses it.",
        lambda case, kind, ours, dov: (
            kind in FOLDER_KINDS and len(fileinto_names(case.script)) > 1 and _rolled_back(case, ours, dov)
        ),
    ),
    (
        "dovecot-accepts-del-in-names",
        "A mailbox name with DEL (U+007F): Dovecot refuses only characters below 0x20 and creates it (as "
        "del&AH8-x); Owlery refuses it like the other control characters (RFC 6855 3: mailbox names MUST "
        "NOT contain U+007F), so the message goes to INBOX.",
        lambda case, kind, ours, dov: (
            kind in FOLDER_KINDS
            and any("\x7f" in n for n in fileinto_names(case.script))
            and set(_placed(ours)) <= set(_placed(dov)) | {"INBOX"}
        ),
    ),
    (
        "pigeonhole-stores-twice-when-inbox-case-differs",
        'fileinto "inbox.sub" and fileinto "INBOX.sub": the same mailbox (INBOX is case-insensitive, '
        "RFC 3501 5.1); Pigeonhole compares the names as strings and stores two copies, Owlery one (RFC 5228 "
        "4.1: SHOULD NOT deliver to the same mailbox more than once).",
        lambda case, kind, ours, dov: (
            kind == "mailbox"
            and len({n for n in fileinto_names(case.script) if n.upper().startswith("INBOX.")}) > 1
            and {b: 1 for b in _placed(dov)} == _placed(ours)
        ),
    ),
    (
        "pigeonhole-loses-inbox-store-rolled-back",
        'fileinto "INBOX" (any case), then a store Dovecot refuses (a name over its length limit, with a '
        "control character, or with '/'): Pigeonhole rolls the stores back, answers 250 2.0.0 Saved and "
        "stores the message nowhere, a lost message (RFC 5321 6.1: after the 250 the server MUST NOT lose "
        "it; RFC 5228 2.10.6: a failed action falls back to the implicit keep). Owlery keeps it in INBOX "
        "once, with the stores that worked. Found by hand (seed 2321, generated case 93).",
        lambda case, kind, ours, dov: (
            kind in FOLDER_KINDS
            and dov.reply[0] == 250
            and not _placed(dov)
            and _placed(ours).get("INBOX") == 1
            and len(names := fileinto_names(case.script)) > 1
            and names[0].upper() == "INBOX"
        ),
    ),
]

# Owlery differences that are NOT Dovecot's fault and not deliberate, in files this test does not own:
# listed so the differential passes while they are open; a fix makes the entry stale (and the test fails).
KNOWN_OWLERY_BUGS: list = []
# (fixed: fileinto "inbox" then keep :flags: the keep no longer overrides the store's flags,
# sieve/result.py; tests/sieve/test_pigeonhole_leftovers_s13.py)


def allowed(case: Case, kind: str, ours: View, dov: View) -> str | None:
    for key, _reason, pred in ALLOWED + KNOWN_OWLERY_BUGS:
        if pred(case, kind, ours, dov):
            return key
    return None


@pytest.fixture(scope="module")
def views(servers):
    started = time.monotonic()
    got = collect(servers)
    got["_seconds"] = time.monotonic() - started
    return got


def test_maildir_matches_dovecot(views):
    problems = []
    for i, case in enumerate(ALL):
        ours, dov = views["ours", i], views["dovecot", i]
        for kind, detail in differences(case, ours, dov):
            if allowed(case, kind, ours, dov) is None:
                problems.append(f"{case.label} [{kind}] script={case.script!r}\n    {detail}")
    kinds = collections.Counter(p.split("[", 1)[1].split("]", 1)[0] for p in problems)
    assert not problems, f"{len(problems)} differences {dict(kinds)}:\n" + "\n".join(problems)


def test_allow_list_is_not_stale(views):
    used: collections.Counter = collections.Counter()
    for i, case in enumerate(ALL):
        ours, dov = views["ours", i], views["dovecot", i]
        for kind, _ in differences(case, ours, dov):
            key = allowed(case, kind, ours, dov)
            if key is not None:
                used[key, kind] += 1
    print(f"{len(ALL)} cases in {views['_seconds']:.1f}s; allowed differences: {dict(sorted(used.items()))}")
    used = {key for key, _ in used}
    stale = [key for key, _, _ in ALLOWED + KNOWN_OWLERY_BUGS if key not in used]
    assert not stale, f"allow-list entries no case needs any more: {stale}"


def test_every_case_is_distinct():
    assert len({c.script + repr(c.setup) + repr(c.keywords) for c in ALL}) >= len(ALL) * 0.9
    assert len({c.label for c in ALL}) == len(ALL)
