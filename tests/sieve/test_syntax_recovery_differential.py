"""Generated differential of syntax errors and parser recovery against Pigeonhole's sievec:
compiles or not, how many errors, and (when the parse failed) the line of the first one.

A seeded generator (`generate(n, seed)`: script i is a pure function of seed and i) takes a
valid script of POOL (many extensions, nesting, if/elsif/else, allof/anyof/not, string
lists, `text:` strings, both comment forms, K/M/G numbers, tags, encoded characters) and
applies one to four mutations (MUTATIONS) at the token or character level: a token deleted,
duplicated or swapped, a ';' '}' ']' ')' ',' dropped, stray characters (8-bit, NUL, control
characters), a string's closing quote broken, an unterminated comment, a `text:` without its
final '.', bad numbers, unknown tags, commands and tests, wrong argument types, tests where
commands belong and the other way round, a require after other commands, a character
deleted, doubled or inserted, the script cut short, a piece of another script spliced in,
blocks and tests nested about as deep as the limit (32), over-long identifiers. Several errors in
one script exercise the recovery (RFC 5228 8 defines the grammar; how far a parser reads on
after an error is Pigeonhole's, and `test_error :count` in its testsuite counts it).

Each script is compiled by sieve.validator.compile_source (the Settings of
tests/sieve/differential/runner.py) and by Debian's sievec (dovecot-sieve 0.5.19, a private
config, run as `nobody` when the tests run as root: tests/sieve/test_compile_errors_generated.Sievec),
one process per script, two at a time. sievec has no cap of its own on errors (2,000 parser
and validator errors were all printed); Owlery's parser stops at parser.MAX_ERRORS: scripts
over COUNT_CAP errors on either side compare only the decision. ALLOWED lists the
differences kept on purpose, each with its reason. REGRESSIONS and FIRST_LINES are plain
expectations, each a case that failed before its fix (test_regressions_are_what_sievec_says
checks them against sievec).

CI: CI_SCRIPTS scripts (~3 s). By hand, thousands (~4 ms a script):
`python -m tests.sieve.test_syntax_recovery_differential N SEED` (SHOW=k prints k differences).
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import sys
import tempfile
import time

import pytest

from sieve.errors import SieveCompileError, SieveError
from sieve.validator import compile_source
from tests.sieve.test_compile_errors_generated import FINAL, SIEVEC, Sievec, _loader, owlery_settings

SEED = 5228
CI_SCRIPTS = 250
COUNT_CAP = 40

# --- the pool of valid scripts ----------------------------------------------------------

POOL: list[str] = [
    # core, fileinto, envelope, nesting, both comment forms, string lists, K/M/G numbers
    """require ["fileinto", "envelope"];
# sort the lists
if allof (header :contains "list-id" ["owlery", "sieve"], not exists "x-spam") {
    fileinto "lists";
} elsif anyof (size :over 10M, envelope :domain :is "from" "example.org") {
    /* large or from a friend */
    if header :matches "subject" "*urgent*" {
        keep;
        stop;
    }
    discard;
} else {
    keep;
}
""",
    # variables, text: strings, vacation
    """require ["variables", "vacation"];
set "name" "Owlery";
if header :matches "subject" "*" {
    set :lower "subject" "${1}";
}
vacation :days 3 :subject "Away: ${subject}" :addresses ["me@example.com", "you@example.com"] text:
I am away from ${name}.
..a line that starts with a dot
.
;
""",
    # relational, numeric comparator, imap4flags
    """require ["relational", "comparator-i;ascii-numeric", "imap4flags", "fileinto"];
if header :value "ge" :comparator "i;ascii-numeric" "x-priority" "3" {
    addflag "\\\\Flagged";
    fileinto :flags ["\\\\Seen", "$label1"] "prio";
} elsif header :count "gt" :comparator "i;ascii-numeric" ["to", "cc"] ["5"] {
    setflag "many";
}
""",
    # encoded characters, regex, subaddress, copy, redirect
    """require ["encoded-character", "regex", "subaddress", "copy", "fileinto"];
if address :detail :is "to" "${hex:6c 69 73 74}" {
    fileinto :copy "${unicode:4E 0042}";
}
if header :regex "subject" "^\\\\[(a|b)[0-9]+\\\\]" { redirect :copy "a@example.net"; }
if not address :user :is ["from", "sender"] ["root", "daemon"] { keep; }
""",
    # body, date, index, mailbox, spamtest
    """require ["body", "date", "index", "mailbox", "spamtest", "relational", "comparator-i;ascii-numeric", "fileinto"];
if body :text :contains ["viagra", "lottery"] { discard; }
if date :index 1 :zone "+0200" :value "ge" "received" "hour" "18" {
    fileinto :create "late";
}
if spamtest :value "ge" :comparator "i;ascii-numeric" "7" { fileinto "Junk"; }
if mailboxexists "Archive" { keep; }
""",
    # editheader, environment, duplicate, ihave
    """require ["editheader", "environment", "duplicate", "ihave"];
if environment :is "name" "dovecot" {
    addheader :last "X-Seen" "yes";
    deleteheader :index 1 "x-old";
}
if duplicate :seconds 3600 :header "message-id" { discard; }
if ihave "fileinto" { keep; } else { keep; }
""",
    # deep nesting of blocks and tests, numbers with K and G
    """if anyof (not allof (size :under 1K, header :is "a" "b"), true) {
    if size :over 2G {
        if exists ["a", "b", "c"] {
            if not not exists "x-y" { stop; }
            elsif true { keep; }
        } else { discard; }
    }
}
""",
    # reject, include, multi-line string with a comment after text:
    """require ["reject", "include", "variables"];
include :personal "inc1";
if header :is "x-reject" "yes" {
    reject text: # why
Go away.
.
;
}
""",
    # string lists spread over lines, comments between arguments
    """require "fileinto";
if header :contains /* names */ [
        "from",   # the sender
        "reply-to"
    ] [ "boss@example.com",
        "ceo@example.com" ] {
    fileinto "boss";
}
""",
    # envelope, vacation :seconds, variables with set modifiers
    """require ["vacation-seconds", "variables", "envelope"];
set :upperfirst :length "len" "abc";
if envelope :all :comparator "i;octet" :contains "to" "@" {
    vacation :seconds 60 :from "me@example.com" :mime :handle "h1" "Sorry";
}
""",
]


# --- the generator ----------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<text>text:[ \t]*(?:\#[^\n]*)?\n(?:[^\n]*\n)*?\.\n)
  | (?P<string>"(?:\\.|[^"\\])*")
  | (?P<comment>\#[^\n]*|/\*.*?\*/)
  | (?P<ws>\s+)
  | (?P<tag>:[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>[0-9]+[KMGkmg]?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[;,\[\](){}])
  | (?P<other>.)
""", re.X | re.S)


def tokens(src: str) -> list[tuple[str, str]]:
    """(kind, text) of every piece of `src`, white space and comments included."""
    return [(m.lastgroup, m.group()) for m in _TOKEN.finditer(src)]


STRAY = ["$", "@", "!", "%", "&", "*", "=", "\x00", "\x01", "\x07", "\x1b", "\x7f", "\udce9", "\udcff",
         "\u00e9", "`", "|", "\\", "?", ">", "<", "'", "~", "^", "$$$", "\x0c", "\r"]
UNKNOWN_CMDS = ["frop", "fileinto2", "vacationx", "setflags", "include_me", "x", "a" * 33, "b" * 40]
UNKNOWN_TESTS = ["frip", "sizex", "headers", "isnot", "y"]
TESTS_AS_CMDS = ['true', 'false', 'exists "a"', 'header "a" "b"', 'size :over 1', 'not true',
                 'anyof (true)', 'address "to" "x"']
CMDS_AS_TESTS = ['keep', 'stop', 'discard', 'redirect "a@b.c"', 'fileinto "x"', 'require "x"']
BAD_NUMBERS = ["99999999999999999999999", "18446744073709551616", "17179869184G", "10X", "5kb", "1Mx",
               "0x10", "12e3", "3 G", "007"]
BAD_ARGS = ['1', '"s"', '["a", "b"]', ':frobnicate', '[]', '[1]', '["a",]', '("a")', ':', '"x" "y"']
LATE = ['require "fileinto";', 'require ["variables", "frop"];', 'require "x";']


def _ident_positions(toks):
    return [i for i, (k, _) in enumerate(toks) if k == "ident"]


def _significant(toks):
    return [i for i, (k, _) in enumerate(toks) if k not in ("ws", "comment")]


def _mutate_once(rng, src: str) -> tuple[str, str]:
    """One mutation of `src`: (kind, new source); a stray character appended when the kind
    drawn finds nothing to work on (in a script cut short)."""
    state = rng.getstate()
    try:
        return _mutation(rng, src)
    except (IndexError, TypeError, ValueError):
        rng.setstate(state)
        return "stray", src + rng.choice(STRAY)


def _mutation(rng, src: str) -> tuple[str, str]:
    toks = tokens(src)
    sig = _significant(toks)
    kind = rng.choice(MUTATIONS)
    texts = [t for _, t in toks]

    def pick(pred):
        idx = [i for i, t in enumerate(toks) if pred(*t)]
        return rng.choice(idx) if idx else None

    if kind == "delete":
        i = rng.choice(sig)
        texts[i] = ""
    elif kind == "duplicate":
        i = rng.choice(sig)
        texts[i] = texts[i] + rng.choice([" ", "", "\n"]) + texts[i]
    elif kind == "swap":
        k = rng.randrange(len(sig) - 1)
        a, b = sig[k], sig[k + 1]
        texts[a], texts[b] = texts[b], texts[a]
    elif kind == "drop-punct":
        p = rng.choice(";}]),")
        i = pick(lambda k, t: k == "punct" and t == p)
        i = pick(lambda k, t: k == "punct") if i is None else i
        texts[i] = ""
    elif kind == "stray":
        i = rng.randrange(len(texts) + 1)
        s = rng.choice(STRAY)
        texts.insert(i, s)
    elif kind == "stray-in-token":
        i = rng.choice(sig)
        t = texts[i]
        j = rng.randrange(len(t) + 1)
        texts[i] = t[:j] + rng.choice(STRAY) + t[j:]
    elif kind == "break-quote":
        i = pick(lambda k, t: k == "string")
        if i is not None:
            texts[i] = texts[i][:-1] + rng.choice(["", "'", " ", "\n"])
    elif kind == "open-comment":
        i = rng.randrange(len(texts) + 1)
        texts.insert(i, rng.choice(["/*", "/* never closed", "/ *", "*/"]))
    elif kind == "text-no-dot":
        i = pick(lambda k, t: k == "text")
        if i is not None:
            texts[i] = texts[i][:-2] + rng.choice(["", ". \n", "..\n", "x\n"])
        else:
            texts.insert(rng.randrange(len(texts) + 1), rng.choice(["text:\nabc\n", "text: x\n.\n", "text:"]))
    elif kind == "bad-number":
        i = pick(lambda k, t: k == "number")
        bad = rng.choice(BAD_NUMBERS)
        if i is not None:
            texts[i] = bad
        else:
            i = pick(lambda k, t: k == "punct" and t == ";")
            texts[i] = " " + bad + ";"
    elif kind == "unknown-tag":
        i = pick(lambda k, t: k in ("string", "tag", "number"))
        texts[i] = rng.choice([":frobnicate ", ":X ", ":is :is ", ":comparator ", ":" + "t" * 33 + " "]) + texts[i]
    elif kind == "unknown-command":
        i = rng.choice(_ident_positions(toks))
        texts[i] = rng.choice(UNKNOWN_CMDS)
    elif kind == "unknown-test":
        i = pick(lambda k, t: k == "ident" and t in ("header", "exists", "size", "true", "false", "address",
                                                    "envelope", "not", "anyof", "allof", "body", "date"))
        if i is not None:
            texts[i] = rng.choice(UNKNOWN_TESTS)
    elif kind == "wrong-arg":
        i = pick(lambda k, t: k in ("string", "number", "text"))
        texts[i] = rng.choice(BAD_ARGS)
    elif kind == "test-as-command":
        i = pick(lambda k, t: k == "ident" and t in ("keep", "stop", "discard"))
        if i is not None:
            texts[i] = rng.choice(TESTS_AS_CMDS)
        else:
            texts.append(rng.choice(TESTS_AS_CMDS) + ";\n")
    elif kind == "command-as-test":
        i = pick(lambda k, t: k == "ident" and t in ("true", "false", "exists", "header", "size", "not"))
        if i is not None:
            texts[i] = rng.choice(CMDS_AS_TESTS) + " "
        else:
            texts.append("if " + rng.choice(CMDS_AS_TESTS) + " { keep; }\n")
    elif kind == "late-require":
        late = rng.choice(LATE)
        i = pick(lambda k, t: k == "punct" and t in ";}")
        texts[i] = texts[i] + "\n" + late
    elif kind == "nested-block":
        i = pick(lambda k, t: k == "punct" and t == "{")
        if i is not None:
            texts[i] = "{ " + rng.choice(["if { keep; }", "keep", "} keep;", "{ stop; }", "if true keep;",
                                          "elsif true { stop; }", "else;", "if true { ) }", "stop stop;",
                                          "keep; $ keep;", "if anyof(,) {}", "if not { }"]) + "\n"
    elif kind == "deep":
        # blocks or tests nested to about Pigeonhole's limit (32 levels), around a test that is
        # no constant: an elsif after `if not not true` is code sievec does not validate
        # (deviations.toml: dead-code-not-validated)
        k = rng.randrange(28, 36)
        shape = rng.randrange(3)
        test = 'exists "x-d"'
        if shape == 0:
            deep = f"if {test} {{ " * k + "keep;" + " }" * k
        elif shape == 1:
            deep = "if " + "not " * k + test + " { keep; }"
        else:
            deep = "if " + "anyof(" * k + test + ")" * k + " { keep; }"
        i = pick(lambda k_, t: k_ == "punct" and t in ";}")
        texts[i] = texts[i] + "\n" + deep + "\n"
    elif kind == "truncate":
        src = "".join(texts)
        return kind, src[:rng.randrange(len(src))]
    elif kind == "char":
        src = "".join(texts)
        j = rng.randrange(len(src))
        op = rng.randrange(3)
        if op == 0:
            return kind, src[:j] + src[j + 1:]
        if op == 1:
            return kind, src[:j] + src[j] + src[j:]
        return kind, src[:j] + rng.choice(";,[](){}:/*\"#") + src[j:]
    elif kind == "splice":
        other = rng.choice(POOL)
        a = rng.randrange(len(other))
        piece = other[a:a + rng.randrange(1, 80)]
        src = "".join(texts)
        j = rng.randrange(len(src) + 1)
        return kind, src[:j] + piece + src[j:]
    return kind, "".join(texts)


MUTATIONS = ["delete", "duplicate", "swap", "drop-punct", "stray", "stray-in-token", "break-quote",
             "open-comment", "text-no-dot", "bad-number", "unknown-tag", "unknown-command", "unknown-test",
             "wrong-arg", "test-as-command", "command-as-test", "late-require", "nested-block", "deep",
             "truncate", "char", "splice"]


def script(seed: int, index: int) -> tuple[str, list[str]]:
    """Script `index` of `seed`: (source, the mutations applied), a pure function of both."""
    import random
    rng = random.Random(f"{seed}:{index}")
    src = rng.choice(POOL)
    kinds = []
    for _ in range(rng.choice([1, 1, 2, 2, 3, 4])):
        kind, src = _mutate_once(rng, src)
        kinds.append(kind)
    return src, kinds


def generate(n: int, seed: int = SEED) -> list[str]:
    return [script(seed, i)[0] for i in range(n)]


def encode(src: str) -> bytes:
    # lone surrogates stand for 8-bit octets that are no UTF-8
    return src.encode("utf-8", "surrogateescape")


# --- the two verdicts -------------------------------------------------------------------

Verdict = tuple  # (compiles, [error messages], line of the first error or None, the parse failed)


def owlery(src: str, settings=None) -> Verdict:
    try:
        compile_source(encode(src), name="t", settings=settings or owlery_settings(), loader=_loader)
    except SieveCompileError as e:
        errs = [d for d in e.diagnostics if d.severity == "error" and d.message not in FINAL]
        return (False, [d.message for d in errs], (errs[0].line or None) if errs else None,
                e.diagnostics[-1].message == "parse failed")
    return True, [], None, False


_LINE = re.compile(r"^[^:]*: (?:line (\d+): )?error: (.*?)\.?$")


class Runner(Sievec):
    def verdict(self, src: str, slot: int) -> Verdict | None:
        path = os.path.join(self.home, "s", f"r{slot}.sieve")
        with open(path, "wb") as f:
            f.write(encode(src))
        if self.uid is not None:
            os.chown(path, self.uid, self.gid)
        p = self._run([SIEVEC, path, "-"], env=self.env)
        err = p.stderr.decode("utf-8", "replace")
        if p.returncode < 0 or "Panic:" in err or p.returncode not in (0, 89):
            return None
        errs = []
        for x in err.splitlines():
            m = _LINE.match(x)
            if m and m.group(2) not in FINAL:
                errs.append((int(m.group(1)) if m.group(1) else None, m.group(2)))
        return p.returncode == 0, [e for _, e in errs], errs[0][0] if errs else None, "error: parse failed" in err


# --- differences kept on purpose ---------------------------------------------------------

def _require_after_require_or_unknown(src: str) -> bool:
    """A top-level require after some other command, right after a require, an unknown command
    or a test used as a command (one the validator did not bind)."""
    from sieve.parser import parse
    from sieve.validator import Validator

    try:
        tree = parse(src)
    except SieveError:
        return False
    v = Validator("t", owlery_settings())
    v.loader = _loader
    try:
        v.validate_block(tree, 0, True)
    except SieveError:
        pass                # (only the nodes' bindings are wanted here)
    seen_other = False
    for prev, node in zip([None] + tree, tree):
        if node.name == "require" and seen_other and (prev.name == "require" or prev.defn is None):
            return True
        seen_other = seen_other or node.name != "require" and node.defn is not None
    return False


# (regex searched in the script, or a predicate; reason)
ALLOWED: list[tuple] = [
    (r"\bsize(\s+:(over|under))?\s+([A-Za-z_]|:(?!(over|under)\b))",
     "Owlery's size takes its limit as the parameter of :over/:under (RFC 5228 5.9's grammar, "
     "tests/sieve/test_compile_errors_reference.py), Pigeonhole as a positional argument: a size "
     "without its limit but with a sub-test is two errors there (the count, the sub-test), one here; "
     "another tag where the limit belongs is one error there, and the missing :over/:under one more here"),
    (r"\bdeleteheader(\s+:\w+(\s+\d+)?)*\s+\[",
     "RFC 5293 5: deleteheader's field-name is a string; sievec takes a string list there"),
    (r'redirect[^;]*"[^"]*[\udc80-\udcff]',
     "RFC 5322 3.4.1 and RFC 6532 3.2: an address is ASCII or UTF-8 text; an octet that is no "
     "UTF-8 makes it invalid; sievec takes it at compile time"),
    (_require_after_require_or_unknown,
     "RFC 5228 3.2: require MUST come before any other command; sievec only looks at the command "
     "right before a require, so it accepts one after `keep; require \"a\";`, or after a command "
     "it does not know (`keep; frop; require \"a\";`: one error there, two here)"),
]


def allowed(src: str) -> str | None:
    for pat, reason in ALLOWED:
        if pat(src) if callable(pat) else re.search(pat, src):
            return reason
    return None


def differs(theirs: Verdict, ours: Verdict, lines: bool = True) -> str | None:
    """What differs (None: they agree). An error sievec reports is a refusal even when it
    compiles the script anyway (as in test_compile_errors_generated.differs). The first
    error's line is compared when both failed to parse: the validator's order among the
    errors of one command is not this test's subject (`vacation :from "a@@b" :handle :x`
    reports the one or the other first)."""
    t_ok, t_errs, t_line, t_syntax = theirs
    o_ok, o_errs, o_line, o_syntax = ours
    if (t_ok and not t_errs) != o_ok:
        return "decision"
    if len(t_errs) > COUNT_CAP or len(o_errs) > COUNT_CAP:
        return None
    if len(t_errs) != len(o_errs):
        return "count"
    if lines and t_syntax and o_syntax and t_line != o_line:
        return "first line"
    return None


def compare(n: int, seed: int, workers: int = 2, excused: dict | None = None):
    """Compile scripts 0..n-1 of `seed` on both sides: (diffs, crashed, seconds). `excused`
    counts the differences ALLOWED lets pass, by reason."""
    start = time.monotonic()
    scripts = generate(n, seed)
    home = tempfile.mkdtemp(prefix="owlery-sievec-recovery-")
    try:
        runner = Runner(home)
        parts = [scripts[k::workers] for k in range(workers)]
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            verdicts = list(pool.map(lambda k: [runner.verdict(s, k) for s in parts[k]], range(workers)))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    theirs_all: list = [None] * n
    for k in range(workers):
        theirs_all[k::workers] = verdicts[k]
    settings = owlery_settings()
    diffs, crashed = [], []
    for i, (src, theirs) in enumerate(zip(scripts, theirs_all, strict=True)):
        if theirs is None:
            crashed.append(src)
            continue
        ours = owlery(src, settings)
        what = differs(theirs, ours)
        reason = allowed(src) if what else None
        if what and not reason:
            diffs.append((i, what, src, theirs, ours))
        elif what and excused is not None:
            excused[reason[:60]] = excused.get(reason[:60], 0) + 1
    return diffs, crashed, time.monotonic() - start


def show(diffs, limit: int = 12, seed: int = SEED) -> str:
    return "\n\n".join(f"--- #{i} ({what}) {script(seed, i)[1]}:\n{src!r}\n--- sievec {t}\n--- owlery {o}"
                       for i, what, src, t, o in diffs[:limit])


# --- regression cases (no sievec needed): (script, number of errors as sievec reports) ------
REGRESSIONS: list[tuple[str, int]] = [
    # at the top level, what starts no command ends the script: nothing after it is read
    ('keep; $\nkeep; $\n', 2),
    # a block's recovery stops at its '}' (left for the enclosing block): the parse ends there
    ('if true { keep; $ } keep; $', 2),
    # the lexer goes on past an error, from the character that broke a string or comment
    ('keep "a\x00b";\nfrop;', 3),
    ('keep # a\x00 $\n $;', 4),
    ('keep "a\rb $";', 3),
    ('keep text:\nx\r$\n.\n;', 3),            # RFC 5228 8.1: no bare CR in a text: line
    ('keep "a" text:x\n.\n;', 2),
    # and its errors are reported in turn with the parser's
    ('keep $;\nfrop "a', 3),
    # the parser adds nothing at a token the lexer refused; it does at stray characters
    ('keep 99999999999999999999999 frop $;', 2),
    # ':' and '/' that start no tag or comment are tokens of their own
    ('keep : frop $;', 2),
    ('keep /frop $;', 2),
    # test lists: a failed test skips to the list's ')'; a command's empty list ends the parse
    ('if anyof(header "a" ["b", (], true) { keep; }', 3),
    ('if anyof(anyof(true $ ) { keep; }', 3),
    ('if anyof(not anyof(true "x), true) { keep; }', 2),
    ('if anyof(header "a" ["b" ) ) {keep;}', 2),
    ('require "editheader";\naddheader "a" ("b");\nfrop $;', 2),
    ('if header :is "a" ("b") { keep; }\nfrop $;', 4),
    ('if anyof(1) { keep; }\nkeep $;', 4),
    # validation: argument types after the sub-tests and the block; no look into a block a
    # command does not take; the tests of a command that takes tests, whatever their number
    ('require "fileinto";\nfileinto 1 true;', 1),
    ('require "editheader";\ndeleteheader 1 true;', 1),
    ('else;', 1),
    ('keep if true { frop; }', 1),
    ('if (frop, true) { keep; }', 2),
    # a misplaced require: its tags, number of arguments, sub-tests and block come first
    ('if true { require "x" 5 frop; }', 2),
    # set: conflicting modifiers (tags) first, then no look at the name
    ('require "variables";\nset :lower :lower "${1}" "subject";', 1),
]
# (script, line of the first error) where only the line was wrong
FIRST_LINES: list[tuple[str, int]] = [
    ('if header :comparator\n1 "a" "b" { keep; }', 2),          # at the parameter found
    ('keep "a\nb\nc', 3),                                        # at the end of the script
    ('keep "a";\n"b\n\n', 4),                                      # at the end of the script
]


@pytest.mark.parametrize("src,count", REGRESSIONS, ids=[f"r{i}" for i in range(len(REGRESSIONS))])
def test_regression(src, count):
    ok, errs, *_ = owlery(src)
    assert len(errs) == count and ok == (count == 0), errs


def test_regressions_are_what_sievec_says():
    home = tempfile.mkdtemp(prefix="owlery-sievec-recovery-")
    try:
        runner = Runner(home)
        wrong = [(src, count, runner.verdict(src, 0)) for src, count in REGRESSIONS]
        wrong += [(src, line, runner.verdict(src, 0)) for src, line in FIRST_LINES]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    n = len(REGRESSIONS)
    wrong = [w for k, w in enumerate(wrong) if (len(w[2][1]) if k < n else w[2][2]) != w[1]]
    assert not wrong, wrong


@pytest.mark.parametrize("src,line", FIRST_LINES)
def test_first_error_line(src, line):
    ok, errs, first, _ = owlery(src)
    assert not ok and first == line, errs


def test_text_needs_its_final_line_break():
    # RFC 5228 8.1: multi-line-literal ends with "." CRLF; sievec refuses a "." at the end of
    # the file too (Owlery took it)
    ok, errs, first, _ = owlery('keep;\nkeep text:\nabc\n.')
    assert errs == ["end of file before end of multi-line string"] and first == 4


def test_generation_is_deterministic():
    assert generate(50) == generate(50)
    assert generate(50) != generate(50, SEED + 1)
    assert script(SEED, 7) == script(SEED, 7)
    # every kind of mutation is drawn in the CI run
    kinds = {k for i in range(CI_SCRIPTS) for k in script(SEED, i)[1]}
    assert kinds == set(MUTATIONS), set(MUTATIONS) - kinds


def test_pool_compiles_on_both():
    bad = [(s, owlery(s)) for s in POOL if not owlery(s)[0]]
    assert not bad, bad
    home = tempfile.mkdtemp(prefix="owlery-sievec-recovery-")
    try:
        runner = Runner(home)
        refused = [(s, runner.verdict(s, 0)) for s in POOL if runner.verdict(s, 0) != (True, [], None, False)]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert not refused, refused


def test_syntax_recovery_matches_sievec():
    assert os.path.exists(SIEVEC), "sievec missing: apt-get install dovecot-sieve (scripts/install-deps)"
    diffs, crashed, secs = compare(CI_SCRIPTS, SEED)
    print(f"{CI_SCRIPTS} scripts in {secs:.1f}s; sievec crashed on {len(crashed)}")
    assert not crashed, crashed[:3]
    assert not diffs, f"{len(diffs)} of {CI_SCRIPTS} scripts differ from sievec:\n{show(diffs)}"


def main(argv: list[str]) -> int:
    n = int(argv[1]) if len(argv) > 1 else 2000
    seed = int(argv[2]) if len(argv) > 2 else SEED
    excused: dict[str, int] = {}
    diffs, crashed, secs = compare(n, seed, excused=excused)
    kinds: dict[str, int] = {}
    for i, what, *_ in diffs:
        for k in set(script(seed, i)[1]):
            kinds[f"{what}/{k}"] = kinds.get(f"{what}/{k}", 0) + 1
    print(f"{n} scripts (seed {seed}) in {secs:.1f}s: {len(diffs)} differ, sievec crashed on {len(crashed)}")
    for k, c in sorted(kinds.items(), key=lambda x: -x[1]):
        print(f"  {c:5d} {k}")
    for k, c in sorted(excused.items(), key=lambda x: -x[1]):
        print(f"  {c:5d} allowed: {k}...")
    print(show(diffs, int(os.environ.get("SHOW", "10")), seed))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
