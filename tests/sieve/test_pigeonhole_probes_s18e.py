"""Hand-probed behaviours settled against Pigeonhole 0.5.19 (Debian's sieve-test) and the RFCs,
in areas the earlier rounds (test_pigeonhole_probes_s18.py, test_pigeonhole_probes_s18b.py,
test_pigeonhole_probes_s18c.py, test_pigeonhole_probes_s18d.py) left out:

1. a script chain (delivery_sieve_before; sieve-test's -s): an earlier script's explicit keep
   stands as that script asked, flags and all, when a later script ends with its implicit keep
   (sieve/delivery/executor.py, DeliveryExecutor.plan); the rest of the chain agrees, but for a
   later fileinto that repeats an earlier script's one (allow-listed);
2. the index extension (RFC 5260 4) on header, address and date, with :last, counts and values
   (agreement pins; a number past 2^32 is allow-listed);
3. implicit keep and its cancellation, imap4flags on keep and fileinto :copy, reject's conflicts
   with other actions, size on LF, CRLF and unterminated messages, exists and :count on empty and
   repeated fields (agreement pins).

Each case runs through Owlery's engine and through sieve-test; a difference that
tests/sieve/differential/deviations.toml explains (the redirected copy's Message-ID, the keep
lost after a failed action) is not counted. Where Pigeonhole and the RFC disagree, Owlery follows
the RFC and the ALLOWED_* tables say why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from owlery.settings import parse_text
from owlery.state.memory_store import MemoryStore
from sieve.delivery.executor import DeliveryExecutor
from sieve.delivery.users import MailUser
from tests.sieve.differential import pigeonhole, runner
from tests.sieve.differential.generator import FOLDERS, Case
from tests.sieve.differential.normalise import from_pigeonhole

SENDER = "sender@example.com"
USER = "rcpt@example.org"


@pytest.fixture(scope="module")
def ph():
    assert os.path.exists(pigeonhole.SIEVE_TEST), "sieve-test missing: apt-get install dovecot-sieve"
    d = Path(tempfile.mkdtemp(prefix="sieve-s18e-"))
    os.chmod(d, 0o755)  # sieve-test runs as nobody when the tests run as root
    try:
        yield pigeonhole.Pigeonhole(d / "ph", FOLDERS)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _message(extra: str = "") -> bytes:
    return f"From: a@example.org\r\nTo: {USER}\r\nSubject: hi\r\n{extra}\r\nbody\r\n".encode()


def _differing(ph: pigeonhole.Pigeonhole, cases) -> dict[str, str]:
    """{case name: what differs} over (name, script, message) cases that no known deviation
    explains; both engines as tests/sieve/differential/runner.py runs them."""
    settings = runner.owlery_settings()
    deviations = runner.load_deviations()
    out = {}
    for name, script, message in cases:
        case = Case(0, 0, script.encode(), message, SENDER, USER, USER, frozenset())
        ours = runner.run_owlery(case, settings)
        theirs = from_pigeonhole(ph.run(case.script, message, SENDER, USER, USER))
        if ours.differences(theirs) and runner.explain(deviations, case, ours, theirs) is None:
            out[name] = f"ours {ours} theirs {theirs}"
    return out


# === 1. a script chain ==========================================================================
#
# Pigeonhole runs the sieve_before scripts (sieve-test -s) in turn while each ends with a keep.
# RFC 5228 says nothing of chains; Pigeonhole's result is the reference. Its keep is one action:
# an explicit keep in an earlier script stands with the flags it gave (and a later discard or
# fileinto still cancels it); a later script's implicit keep adds nothing to it, whatever that
# script's imap4flags say; a later explicit keep, or a store into INBOX, replaces it. Owlery let
# the later implicit keep replace it, with the later script's flags (none, mostly).

F = 'require ["fileinto", "imap4flags", "copy", "variables"];\n'
CHAIN_MESSAGE = b"From: a@example.org\nTo: alice@example.org\nSubject: hi\n\nhello\n"
# (name, scripts in the order they run: the last is the user's, the others delivery_sieve_before)
CHAIN_CASES = [
    ("keep flags | implicit keep", [F + 'keep :flags "\\\\Seen";', ""]),
    ("keep flags | addflag", [F + 'keep :flags "\\\\Seen";', F + 'addflag "\\\\Flagged";']),
    ("keep flags | fileinto :copy", [F + 'keep :flags "\\\\Seen";', F + 'fileinto :copy "Foo";']),
    ("keep flags | implicit | implicit", [F + 'keep :flags "\\\\Seen";', "", ""]),
    ("two keeps | implicit", [F + 'keep :flags "\\\\Seen"; keep :flags "\\\\Flagged";', ""]),
    ("addflag keep | removeflag", [F + 'addflag "\\\\Seen"; keep;', F + 'removeflag "\\\\Seen";']),
    ("addflag keep | addflag", [F + 'addflag "\\\\Seen"; keep;', F + 'addflag "\\\\Flagged";']),
    # agreement pins
    ("keep flags | keep", [F + 'keep :flags "\\\\Seen";', "keep;"]),
    ("keep flags | keep flags", [F + 'keep :flags "\\\\Seen";', F + 'keep :flags "\\\\Flagged";']),
    ("keep flags | setflag keep", [F + 'keep :flags "\\\\Seen";', F + 'setflag "\\\\Draft"; keep;']),
    ("keep flags | fileinto INBOX", [F + 'keep :flags "\\\\Seen";', F + 'fileinto "INBOX";']),
    ("keep flags | fileinto :copy INBOX", [F + 'keep :flags "\\\\Seen";', F + 'fileinto :copy "INBOX";']),
    ("keep flags | fileinto :copy :flags INBOX",
     [F + 'keep :flags "\\\\Seen";', F + 'fileinto :copy :flags "\\\\Draft" "INBOX";']),
    ("keep flags | discard", [F + 'keep :flags "\\\\Seen";', "discard;"]),
    ("keep flags | fileinto", [F + 'keep :flags "\\\\Seen";', F + 'fileinto "Foo";']),
    ("keep | keep | discard", ["keep;", "keep;", "discard;"]),
    ("addflag | implicit keep", [F + 'addflag "\\\\Seen";', ""]),
    ("addflag keep | keep", [F + 'addflag "\\\\Seen"; keep;', "keep;"]),
    ("fileinto :copy :flags INBOX | implicit", [F + 'fileinto :copy :flags "\\\\Draft" "INBOX";', ""]),
    ("setflag | fileinto :flags", [F + 'setflag "\\\\Flagged";', F + 'fileinto :flags "\\\\Seen" "Foo";']),
    ("discard | fileinto", ["discard;", F + 'fileinto "Foo";']),
    ("stop | fileinto", ["stop;", F + 'fileinto "Foo";']),
    ("fileinto | fileinto", [F + 'fileinto "Foo";', F + 'fileinto "Bar";']),
    ("fileinto :copy | fileinto", [F + 'fileinto :copy "Foo";', F + 'fileinto "Bar";']),
    ("fileinto :copy | discard", [F + 'fileinto :copy "Foo";', "discard;"]),
    ("fileinto :copy INBOX | discard", [F + 'fileinto :copy "INBOX";', "discard;"]),
    ("fileinto | fileinto :copy", [F + 'fileinto "Foo";', F + 'fileinto :copy "Foo";']),
    ("fileinto :copy | fileinto fileinto", [F + 'fileinto :copy "Foo";', F + 'fileinto "Foo"; fileinto "Bar";']),
    ("redirect :copy | fileinto", [F + 'redirect :copy "x@example.com";', F + 'fileinto "Foo";']),
    ("failed fileinto | fileinto", [F + 'fileinto "Nope";', F + 'fileinto "Foo";']),
    ("set | fileinto ${a}", [F + 'set "a" "Foo";', F + 'fileinto "${a}Bar";']),
    # Pigeonhole drops a later script's fileinto that repeats an earlier one's, and with it its
    # cancelling of the implicit keep
    ("fileinto :copy | fileinto same", [F + 'fileinto :copy "Foo";', F + 'fileinto "Foo";']),
    ("fileinto :copy :flags | fileinto same", [F + 'fileinto :copy :flags "\\\\Seen" "Foo";', F + 'fileinto "Foo";']),
    ("implicit | fileinto :copy | fileinto same", ["", F + 'fileinto :copy "Foo";', F + 'fileinto "Foo";']),
]
CHAIN_FIXED = {name for name, _ in CHAIN_CASES[:7]}
ALLOWED_CHAIN = {
    name: "Pigeonhole 0.5.19 drops a later script's fileinto that repeats an earlier script's one "
          "and keeps the message into INBOX as well; RFC 5228 4.1: fileinto cancels the implicit keep "
          "of the script that runs it"
    for name in ("fileinto :copy | fileinto same", "fileinto :copy :flags | fileinto same",
                 "implicit | fileinto :copy | fileinto same")
}


class _Submitter:
    def __init__(self):
        self.sent: list[str] = []

    def send(self, env_from, rcpts, message):
        self.sent += rcpts


def _stores(maildir: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(mailbox, flags) of the messages in a Maildir++ (keywords by dovecot-keywords)."""
    out = []
    for d in [maildir] + sorted(p for p in maildir.iterdir() if p.name.startswith(".") and p.is_dir()):
        keywords = {}
        if (d / "dovecot-keywords").exists():
            for line in (d / "dovecot-keywords").read_text().splitlines():
                n, _, word = line.partition(" ")
                keywords[chr(ord("a") + int(n))] = word
        for sub in ("new", "cur"):
            for p in (d / sub).iterdir() if (d / sub).is_dir() else ():
                flags = [pigeonhole._SYSTEM_LETTERS.get(ch) or keywords.get(ch, ch) for ch in p.name.partition(":2,")[2]]
                out.append(("INBOX" if d == maildir else d.name[1:], tuple(sorted(flags))))
    return sorted(out)


def _owlery_chain(tmp: Path, scripts: list[str]) -> tuple[bool, list, list[str]]:
    """(ok, stores, redirected to) for Owlery's delivery: all but the last script run as
    delivery_sieve_before; existing folders Foo and Bar, nothing created on the fly."""
    maildir = tmp / "Maildir"
    for folder in ("", ".Foo", ".Bar"):
        for sub in ("cur", "new", "tmp"):
            (maildir / folder / sub).mkdir(parents=True, exist_ok=True)
    paths = []
    for i, source in enumerate(scripts):
        (tmp / f"s{i}.sieve").write_text(source)
        paths.append(str(tmp / f"s{i}.sieve"))
    before = ", ".join(f'"{p}"' for p in paths[:-1])
    settings = parse_text(f"delivery_sieve_before = [{before}]\ndelivery_mailbox_autocreate = false\n")
    submitter = _Submitter()
    ex = DeliveryExecutor(settings, submitter=submitter, state=MemoryStore(), program="test")
    try:
        outcome = ex.deliver(CHAIN_MESSAGE, "bob@remote.test", "alice@example.org",
                             MailUser("alice@example.org", str(maildir), paths[-1]))
    finally:
        ex.close()
    return outcome.ok, _stores(maildir), sorted(submitter.sent)


def _pigeonhole_chain(ph: pigeonhole.Pigeonhole, scripts: list[str]) -> tuple[str, list, list[str]]:
    """(status, stores, redirected to) for sieve-test with the first scripts given by -s."""
    ph._cleanup()
    paths = [str(ph._write(f"s{i}.sieve", source.encode())) for i, source in enumerate(scripts)]
    message = ph._write("message.eml", CHAIN_MESSAGE)
    argv = [pigeonhole.SIEVE_TEST, "-c", str(ph.home / "dovecot.conf"), "-e", "-f", "bob@remote.test",
            "-r", "alice@example.org", "-a", "alice@example.org"]
    for p in paths[:-1]:
        argv += ["-s", p]
    proc = subprocess.run(argv + [paths[-1], str(message)], capture_output=True, timeout=20, env=ph.env,
                          cwd=ph.home, user=ph.uid, group=ph.gid, extra_groups=[] if ph.uid is not None else None)
    log = proc.stderr.decode("utf-8", "replace")
    if "final result: success" in log:
        status = "ok"
    elif "final result: failed; resolved with successful implicit keep" in log:
        status = "error"
    else:
        raise AssertionError(log[-800:])
    sent = sorted(rcpt for kind, _from, rcpt, _m in pigeonhole._parse_sent(proc.stdout, log)[0] if kind == "redirect")
    return status, sorted((box, flags) for box, flags, _ in ph._collect()), sent


@pytest.mark.parametrize("name", sorted(CHAIN_FIXED))
def test_an_explicit_keep_stands_through_later_implicit_keeps(tmp_path, name):
    scripts = dict(CHAIN_CASES)[name]
    _ok, stores, _sent = _owlery_chain(tmp_path, scripts)
    flags = {"keep flags | implicit keep": ("\\seen",), "keep flags | addflag": ("\\seen",),
             "keep flags | fileinto :copy": ("\\seen",), "keep flags | implicit | implicit": ("\\seen",),
             "two keeps | implicit": ("\\flagged",), "addflag keep | removeflag": ("\\seen",),
             "addflag keep | addflag": ("\\seen",)}[name]
    assert ("INBOX", flags) in stores, stores


def test_script_chains_against_sieve_test(ph, tmp_path):
    differ = {}
    for i, (name, scripts) in enumerate(CHAIN_CASES):
        ph_status, ph_stores, ph_sent = _pigeonhole_chain(ph, scripts)
        ok, stores, sent = _owlery_chain(tmp_path / str(i), scripts)
        if (ph_stores, ph_sent) != (stores, sent):
            differ[name] = f"sieve-test {ph_status} {ph_stores} {ph_sent}; owlery {ok} {stores} {sent}"
    assert set(differ) == set(ALLOWED_CHAIN), differ


# === 2. index ===================================================================================
#
# RFC 5260 4: :index counts the named fields from 1 (from the last with :last); a position past
# the count matches nothing; :last without :index, and :index 0, are errors. RFC 5228 2.4.1: a
# number means its value (31 bits at least, more allowed); Pigeonhole keeps a number's low 32
# bits, so :index 4294967297 is its :index 1.

IX = 'require ["index", "fileinto", "relational", "comparator-i;ascii-numeric", "date", "variables"];\n'
IX_MESSAGE = _message("X-A: one\r\nX-A: two\r\nX-A: three\r\nX-A:\r\nCc: b@x.org, c@y.org\r\nCc: d@z.org\r\n"
                      "Date: Mon, 7 Dec 2026 10:00:00 +0000\r\nDate: Tue, 8 Dec 2026 11:00:00 +0000\r\n")
INDEX_CASES = [
    *[(f"header :index {n}{last}",
       f'if header :index {n}{last} :is "x-a" "two" {{ fileinto "Foo"; }} '
       f'if header :index {n}{last} :is "x-a" "" {{ fileinto "Bar"; }} '
       f'if header :index {n}{last} :matches "x-a" "*" {{ fileinto "Junk"; }}')
      for n in (1, 2, 3, 4, 5, 100) for last in ("", " :last")],
    ("index 0", 'if header :index 0 :is "x-a" "one" { fileinto "Foo"; }'),
    ("last alone", 'if header :last :is "x-a" "one" { fileinto "Foo"; }'),
    ("index twice", 'if header :index 1 :index 2 :is "x-a" "two" { fileinto "Foo"; }'),
    ("index from a variable", 'set "n" "2"; if header :index "${n}" :is "x-a" "two" { fileinto "Foo"; }'),
    ("index 1K", 'if header :index 1K :is "x-a" "one" { fileinto "Foo"; }'),
    ("index 2^32+1", 'if header :index 4294967297 :is "x-a" "one" { fileinto "Foo"; }'),
    ("index :count", 'if header :index 2 :count "eq" :comparator "i;ascii-numeric" "x-a" "1" { fileinto "Foo"; }'),
    ("index past :count", 'if header :index 9 :count "eq" :comparator "i;ascii-numeric" "x-a" "0" { fileinto "Foo"; }'),
    ("index :count two names",
     'if header :index 1 :count "eq" :comparator "i;ascii-numeric" ["x-a", "cc"] "2" { fileinto "Foo"; }'),
    ("index :value", 'if header :index 3 :value "gt" "x-a" "s" { fileinto "Foo"; }'),
    ("index two names", 'if header :index 2 :is ["cc", "x-a"] "two" { fileinto "Foo"; } '
                        'if header :index 2 :is ["cc", "x-a"] "d@z.org" { fileinto "Bar"; }'),
    ("address :index 1", 'if address :index 1 :is "cc" "c@y.org" { fileinto "Foo"; } '
                         'if address :index 1 :is "cc" "b@x.org" { fileinto "Bar"; }'),
    ("address :index 2", 'if address :index 2 :is "cc" "d@z.org" { fileinto "Foo"; }'),
    ("address :last", 'if address :index 1 :last :is "cc" "d@z.org" { fileinto "Foo"; } '
                      'if address :last :index 2 :is "cc" "b@x.org" { fileinto "Bar"; }'),
    ("address :index :count",
     'if address :index 1 :count "eq" :comparator "i;ascii-numeric" "cc" "2" { fileinto "Foo"; }'),
    ("date :index", 'if date :index 2 "date" "day" "08" { fileinto "Foo"; } '
                    'if date :index 1 :last "date" "day" "08" { fileinto "Bar"; }'),
    ("date past the count", 'if not date :index 3 "date" "day" "08" { fileinto "Foo"; }'),
    ("date :index :count", 'if date :index 2 :count "eq" :comparator "i;ascii-numeric" "date" "day" "1" { fileinto "Foo"; }'),
    ("currentdate :index", 'if currentdate :index 1 "year" "2026" { fileinto "Foo"; }'),
    ("exists :index", 'if exists :index 1 "x-a" { fileinto "Foo"; }'),
]
ALLOWED_INDEX = {
    "index 2^32+1": "Pigeonhole 0.5.19 keeps the low 32 bits of a number (4294967297 is 1); RFC 5228 "
                    "2.4.1: implementations MAY provide more than 31 bits, and a number is its value",
}


def test_index_against_sieve_test(ph):
    differ = _differing(ph, [(name, IX + body, IX_MESSAGE) for name, body in INDEX_CASES])
    assert set(differ) == set(ALLOWED_INDEX), differ


# === 3. keeps, flags, reject, size, exists ======================================================

R = 'require ["fileinto", "imap4flags", "copy", "variables", "reject", "vacation"];\n'
ACTION_CASES = [
    ("keep discard", "keep; discard;"),
    ("discard keep", "discard; keep;"),
    ("discard fileinto", 'discard; fileinto "Foo";'),
    ("fileinto keep", 'fileinto "Foo"; keep;'),
    ("fileinto :copy discard", 'fileinto :copy "Foo"; discard;'),
    ("fileinto INBOX keep", 'fileinto "INBOX"; keep;'),
    ("fileinto stop", 'if true { fileinto "Foo"; stop; } keep;'),
    ("failed fileinto after fileinto", 'fileinto "Foo"; fileinto "Nope";'),
    ("discard then a failed fileinto", 'discard; fileinto "Nope";'),
    ("fileinto an empty name", 'fileinto "Foo"; set "m" ""; fileinto "${m}";'),
    ("discard stop keep", "discard; stop; keep;"),
    ("keep flags discard", 'keep :flags "\\\\Seen"; discard;'),
    ("duplicate flags in a variable", 'set "f" "\\\\Seen \\\\seen \\\\SEEN"; keep :flags "${f}";'),
    ("system flags in any case", 'keep :flags ["\\\\FLAGGED", "\\\\answered", "\\\\DrAfT"];'),
    ("\\Recent", 'keep :flags "\\\\Recent";'),
    ("addflag \\Recent", 'addflag "\\\\Recent";'),
    ("unknown system flag", 'keep :flags "\\\\Foo";'),
    ("keyword with a parenthesis", 'keep :flags "a(b";'),
    ("keyword with 8-bit bytes", 'keep :flags "caf\u00e9";'),
    ("keywords differing in case", 'keep :flags ["$Junk", "$junk", "$JUNK"];'),
    ("addflag after fileinto :copy", 'setflag "\\\\Seen"; fileinto :copy "Foo"; addflag "\\\\Flagged";'),
    ("removeflag after fileinto :copy", 'setflag ["\\\\Seen", "\\\\Flagged"]; fileinto :copy "Foo"; removeflag "\\\\Seen";'),
    ("setflag after fileinto :copy INBOX", 'setflag "\\\\Seen"; fileinto :copy "INBOX"; setflag "\\\\Flagged";'),
    ("flags with extra spaces", 'keep :flags "  \\\\Seen   a  ";'),
    ("a lone backslash", 'keep :flags "\\\\";'),
    ("reject fileinto", 'reject "no"; fileinto "Foo";'),
    ("fileinto reject", 'fileinto "Foo"; reject "no";'),
    ("reject keep", 'reject "no"; keep;'),
    ("keep reject", 'keep; reject "no";'),
    ("reject redirect", 'reject "no"; redirect "x@example.com";'),
    ("redirect reject", 'redirect "x@example.com"; reject "no";'),
    ("reject vacation", 'reject "no"; vacation "away";'),
    ("vacation reject", 'vacation "away"; reject "no";'),
    ("reject reject", 'reject "no"; reject "no2";'),
    ("reject discard", 'reject "no"; discard;'),
    ("two vacations", 'vacation "a"; vacation "b";'),
    ("vacation discard", 'vacation "a"; discard;'),
    ("reject in a branch not taken", 'if true { reject "no"; } if false { fileinto "Foo"; }'),
    ("fileinto :copy reject", 'fileinto :copy "Foo"; reject "no";'),
    ("setflag reject", 'setflag "\\\\Seen"; reject "no";'),
]
LF = b"From: a@example.org\nTo: rcpt@example.org\nSubject: hi\n\nbody\n"
SIZE_MESSAGES = {"LF": LF, "CRLF": LF.replace(b"\n", b"\r\n"), "LF unterminated": LF[:-1],
                 "CRLF unterminated": LF.replace(b"\n", b"\r\n")[:-2], "header only": b"Subject: hi\n"}
FIELDS = _message("X-Empty:\r\nX-Sp: \r\nx-mixed: a\r\nX-MIXED: b\r\nX-Mixed:\r\n")
N = ':comparator "i;ascii-numeric"'
FIELD_CASES = [
    ("exists on an empty field", 'if exists "x-empty" { fileinto "Foo"; }'),
    ("exists on a blank field", 'if exists ["x-sp", "X-EMPTY"] { fileinto "Foo"; }'),
    ("exists, names in any case", 'if exists ["X-mIxEd", "x-empty", "x-nothere"] { fileinto "Foo"; }'),
    (":count over names differing in case",
     f'if header :count "eq" {N} "x-mixed" "3" {{ fileinto "Foo"; }} '
     f'elsif header :count "eq" {N} "x-mixed" "2" {{ fileinto "Bar"; }}'),
    (":count of empty fields", f'if header :count "eq" {N} ["x-empty", "x-sp"] "2" {{ fileinto "Foo"; }} '
                               f'elsif header :count "eq" {N} ["x-empty", "x-sp"] "0" {{ fileinto "Bar"; }}'),
    (":count, a name twice", f'if header :count "eq" {N} ["x-mixed", "X-MIXED"] "6" {{ fileinto "Foo"; }} '
                             f'elsif header :count "eq" {N} ["x-mixed", "X-MIXED"] "3" {{ fileinto "Bar"; }}'),
    (":is an empty value", 'if header :is "x-sp" "" { fileinto "Foo"; }'),
    ("address :count of empty fields",
     f'if address :count "eq" {N} ["x-empty", "x-mixed"] "2" {{ fileinto "Foo"; }} '
     f'elsif address :count "eq" {N} ["x-empty", "x-mixed"] "0" {{ fileinto "Bar"; }}'),
]


def test_keeps_flags_and_conflicts_against_sieve_test(ph):
    cases = [(name, R + body, _message()) for name, body in ACTION_CASES]
    cases += [(name, 'require ["fileinto", "relational", "comparator-i;ascii-numeric"];\n' + body, FIELDS)
              for name, body in FIELD_CASES]
    for kind, message in SIZE_MESSAGES.items():
        cases += [(f"size {kind} {k}", f'require "fileinto"; if size :over {k} {{ fileinto "Foo"; }} '
                                       f'elsif size :under {k} {{ fileinto "Bar"; }}', message)
                  for k in range(len(message) - 2, len(message) + 3)]
    assert _differing(ph, cases) == {}
