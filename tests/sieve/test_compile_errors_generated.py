"""Generated compile-error differential against Pigeonhole's sievec: refuses or accepts, and
how many errors.

A seeded generator (`generate(SEED)`, a pure function of the seed) takes one valid script
template per command or test of each extension both engines have, and mutates it: a
positional argument dropped or added, a wrong argument type, an unknown, repeated or
conflicting tag, a tag without its value, a missing `require`, a value checked at compile time
(header names, variable names, comparators, relational operators, date parts and zones, flags,
notify methods and options, vacation addresses, mailbox and script names, index 0, ...), a
command out of place (require after a command, elsif without if, break outside a loop,
extracttext outside foreverypart...). Each script is compiled by sieve.validator.compile_source
(the Settings of tests/sieve/differential/runner.py, includes resolved while compiling as
Pigeonhole does) and by Debian's sievec (dovecot-sieve), run as `nobody` when the tests run as
root, with the extensions tests/sieve/differential/pigeonhole.py enables plus the metadata ones.
Error counts exclude the closing "validation failed"/"parse failed" line; wording is not
compared (tests/sieve/test_compile_errors_reference.py checks it for the core rules). An error
sievec reports counts as a refusal even when it compiles the script anyway (`differs`).

Not in the differential (Pigeonhole 0.5.19 has no such extension): ereject,
comparator-i;unicode-casemap, extlists, replace, enclose, vnd.dovecot.report; extprograms
(needs its directories). ALLOWED lists the differences kept on purpose, each with its reason;
sievec 0.5.19 crashes on `hasflag :is` without arguments (that script has no reference).
About 1,450 scripts, 20-45 s (one sievec run each, ~10 ms, plus the machine's load).

The regression cases (REGRESSIONS) are plain expectations that run without sievec; the
differential needs sievec and fails when it is missing (scripts/install-deps installs it).
"""

from __future__ import annotations

import concurrent.futures
import os
import pwd
import random
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

import pytest

from owlery.settings import Settings
from sieve.errors import SieveCompileError
from sieve.validator import compile_source

SEED = 20261207
FINAL = ("validation failed", "parse failed")
SIEVEC = shutil.which("sievec") or "/usr/bin/sievec"
RUN_USER = "nobody"

# The scripts `include` can find, on both sides: (location, name) -> source.
INCLUDED = {("personal", "inc1"): "keep;\n", ("global", "gl1"): "keep;\n",
            ("personal", "vars"): 'require ["include", "variables"];\nglobal "g";\nset "g" "1";\n'}


# --- templates ---------------------------------------------------------------------------
# An argument is a Sieve literal (positional), ":tag" (a tag without value) or (":tag", value).

@dataclass
class T:
    """One valid use of a command or test: `require [req]; cmd args` (a test stands in
    `if ... { keep; }`), wrapped in `ctx` ("{}" is where it goes)."""

    req: tuple[str, ...]
    cmd: str
    args: list
    test: bool = False
    ctx: str = "{}"
    # invalid values: (argument index, replacement) or a whole replacement args list
    bad: list = field(default_factory=list)
    # tags that conflict with one the template has, added before the positionals
    conflicts: list = field(default_factory=list)
    block: str | None = None        # the block a command takes (foreverypart)


def _t(req, cmd, args, **kw) -> T:
    return T(tuple(req.split()) if isinstance(req, str) else tuple(req), cmd, list(args), **kw)


FEP = "foreverypart {{ {} }}"
TEMPLATES = [
    # RFC 5228 core
    _t("", "header", [":is", '"subject"', '"x"'], test=True,
       conflicts=[":contains", (":comparator", '"i;octet"')],
       bad=[(0, (":comparator", '"i;frop"')), (0, (":comparator", '["i;octet"]'))]),
    _t("", "address", [":all", ":is", '"from"', '"a@b.c"'], test=True, conflicts=[":domain", ":matches"],
       bad=[(2, '"x y"'), (2, '"subject"')]),
    _t("", "exists", ['"subject"'], test=True, bad=[(0, '""'), (0, '"a b"')]),
    _t("", "size", [":over", "100"], test=True, conflicts=[":under"], bad=[(1, '"100"')]),
    _t("", "redirect", ['"a@b.c"'], bad=[(0, '"nobody"'), (0, '""'), (0, '"a@"')]),
    _t("", "keep", []),
    _t("", "discard", []),
    _t("", "stop", []),
    # fileinto, copy, mailbox, imap4flags, special-use
    _t("fileinto", "fileinto", ['"INBOX.a"'], bad=[(0, '""')]),
    _t("fileinto encoded-character", "fileinto", ['"INBOX.${hex:61}"'],
       bad=[(0, '"${hex:ff}"'), (0, '"a${hex:00}b"'), (0, '"${hex:c3}"'), (0, '"a${unicode:7f}"')]),
    _t("mailbox encoded-character", "mailboxexists", ['"INBOX"'], test=True,
       bad=[(0, '"${hex:ff}"'), (0, '["a", "${hex:00}"]')]),
    _t("fileinto copy", "fileinto", [":copy", '"INBOX.a"'], conflicts=[":copy"]),
    _t("fileinto mailbox", "fileinto", [":create", '"INBOX.a"'], conflicts=[":create"]),
    _t("fileinto imap4flags", "fileinto", [(":flags", '"\\\\Seen"'), '"INBOX.a"'],
       conflicts=[(":flags", '"a"')], bad=[(0, (":flags", "1"))]),
    _t("fileinto special-use", "fileinto", [(":specialuse", '"\\\\Junk"'), '"INBOX.a"'],
       conflicts=[(":specialuse", '"\\\\Trash"')], bad=[(0, (":specialuse", '"Junk"')),
                                                        (0, (":specialuse", '"\\\\"'))]),
    _t("copy", "redirect", [":copy", '"a@b.c"'], conflicts=[":copy"]),
    _t("imap4flags", "keep", [(":flags", '["a","b"]')]),
    _t("imap4flags", "setflag", ['"\\\\Seen"'], bad=[(0, "1")]),
    _t("imap4flags variables", "addflag", ['"var"', '["a", "\\\\Flagged"]']),
    _t("imap4flags", "removeflag", ['"a"']),
    _t("imap4flags", "hasflag", [":is", '"a"'], test=True, conflicts=[":contains"]),
    _t("imap4flags variables", "hasflag", [":is", '"v"', '"a"'], test=True),
    _t("mailbox", "mailboxexists", ['"INBOX"'], test=True, bad=[(0, "1")]),
    _t("special-use", "specialuse_exists", ['"\\\\Junk"'], test=True,
       bad=[(0, '"Junk"'), (0, '["\\\\Junk", "x"]')]),
    _t("special-use", "specialuse_exists", ['"INBOX"', '"\\\\Junk"'], test=True, bad=[(1, '"Junk"')]),
    _t("mboxmetadata", "metadata", [":is", '"INBOX"', '"/private/comment"', '"x"'], test=True,
       bad=[(2, '"comment"'), (2, '"/shared/a//b"'), (2, '"/private/"')]),
    _t("mboxmetadata", "metadataexists", ['"INBOX"', '"/private/comment"'], test=True,
       bad=[(1, '"/x/y"')]),
    _t("servermetadata", "servermetadata", [":is", '"/shared/comment"', '"x"'], test=True,
       bad=[(1, '"shared"')]),
    _t("servermetadata", "servermetadataexists", ['"/shared/comment"'], test=True,
       bad=[(0, '"/shared/*"')]),
    # reject
    _t("reject", "reject", ['"no"'], bad=[(0, '["a", "b"]')]),
    # envelope, subaddress
    _t("envelope", "envelope", [":all", ":is", '"from"', '"a@b.c"'], test=True,
       conflicts=[":localpart"], bad=[(2, '"x-frop"'), (2, '["to", "frop"]')]),
    _t("envelope subaddress", "envelope", [":detail", '"to"', '"a"'], test=True, conflicts=[":user"]),
    _t("subaddress", "address", [":user", '"to"', '"a"'], test=True, conflicts=[":all"]),
    # encoded-character
    _t("encoded-character", "header", [":is", '"subject"', '"${hex:41 42}"'], test=True,
       bad=[(2, '"${unicode:D800}"'), (2, '"${unicode:110000}"'), (2, '"${hex:4G}"'),
            (2, '"${unicode:zz}"')]),
    # variables
    _t("variables", "set", ['"a"', '"b"'], conflicts=[":lower", ":upper"],
       bad=[(0, '"1a"'), (0, '"a.b"'), (0, '"${a}"'), (0, '""'), (0, '"' + "a" * 40 + '"'),
            (1, '"${a"'), (1, '"${}"'), (1, '"${1a}"'), (0, '"1"'), (0, '"_a"'), (0, '"a-b"')]),
    _t("variables", "set", [":lower", ":length", '"a"', '"b"'], conflicts=[":quotewildcard"]),
    _t("variables", "set", [":upperfirst", '"a"', '"b"'], conflicts=[":lowerfirst"]),
    _t("variables", "string", [":is", '"${a}"', '"b"'], test=True, conflicts=[":regex"]),
    _t("variables", "header", [":is", '"subject"', '"${a}"'], test=True,
       bad=[(2, '"${a.b}"'), (2, '"${a..b}"'), (2, '"${0}"'), (2, '"${99999999999}"')]),
    # body
    _t("body", "body", [":raw", ":contains", '"x"'], test=True, conflicts=[":text"]),
    _t("body", "body", [(":content", '"text"'), ":contains", '"x"'], test=True,
       conflicts=[":raw"], bad=[(0, (":content", "1")), (0, ":content")]),
    _t("body", "body", [":text", '"x"'], test=True, conflicts=[":text"]),
    # relational, comparator-i;ascii-numeric
    _t("relational", "header", [(":value", '"gt"'), '"x-n"', '"1"'], test=True,
       conflicts=[(":count", '"lt"'), ":is"],
       bad=[(0, (":value", '"gx"')), (0, (":value", '"GT"')), (0, (":value", '["gt"]')),
            (0, (":value", '""'))]),
    _t("relational comparator-i;ascii-numeric", "header",
       [(":count", '"ge"'), (":comparator", '"i;ascii-numeric"'), '"to"', '"2"'], test=True,
       conflicts=[(":comparator", '"i;octet"')], bad=[(0, (":count", "1"))]),
    _t("comparator-i;ascii-numeric", "header", [(":comparator", '"i;ascii-numeric"'), ":is", '"x"', '"1"'],
       test=True, bad=[(1, ":contains"), (1, ":matches")]),
    _t("regex comparator-i;ascii-numeric", "header", [(":comparator", '"i;ascii-numeric"'), ":is", '"x"', '"1"'],
       test=True, bad=[(1, ":regex")]),
    # regex
    _t("regex", "header", [":regex", '"subject"', '"^a.*b$"'], test=True, conflicts=[":is"],
       bad=[(2, '"("'), (2, '"a{2,1}"'), (2, '"[z-a]"'), (2, '"*a"')]),
    _t("regex variables", "header", [":regex", '"subject"', '"${x}("'], test=True),
    _t("regex", "address", [":regex", ":domain", '"from"', '"b\\\\.c$"'], test=True, bad=[(2, '"["')]),
    # vacation
    _t("vacation", "vacation", [(":days", "3"), (":subject", '"s"'), (":from", '"a@b.c"'),
                                (":addresses", '["x@y.z"]'), ":mime", (":handle", '"h"'), '"reason"'],
       conflicts=[(":days", "4"), ":mime"],
       bad=[(0, (":days", '"3"')), (2, (":from", '"not an address"')), (2, (":from", '"a@"')),
            (3, (":addresses", '["x@y.z", "bad"]')), (3, (":addresses", '["@y.z"]')),
            (2, (":from", '"A <a@b.c>"')), (0, (":days", "0")), (1, (":subject", "1")),
            (3, (":addresses", "1"))]),
    _t("vacation vacation-seconds", "vacation", [(":seconds", "60"), '"r"'],
       conflicts=[(":days", "1")], bad=[(0, (":seconds", '"x"')), (0, (":seconds", "0"))]),
    _t("vacation", "vacation", [(":days", "1"), '"r"'], bad=[(0, (":seconds", "60"))]),
    # date, index
    _t("date", "date", [(":zone", '"+0100"'), ":is", '"date"', '"year"', '"2020"'], test=True,
       conflicts=[":originalzone", (":zone", '"-0100"')],
       bad=[(0, (":zone", '"+99xx"')), (0, (":zone", '"0100"')), (0, (":zone", '"+2500"')),
            (3, '"yearx"'), (3, '"Year"'), (3, '["year"]'), (0, (":zone", "1"))]),
    _t("date", "date", [":originalzone", '"received"', '"date"', '"x"'], test=True),
    _t("date", "currentdate", [":is", '"weekday"', '"0"'], test=True, conflicts=[":originalzone"],
       bad=[(1, '"frop"'), (1, '"julian"'), (1, '""')]),
    _t("date relational", "currentdate", [(":value", '"ge"'), '"hour"', '"09"'], test=True),
    _t("index", "header", [(":index", "2"), ":last", '"received"', '"x"'], test=True,
       conflicts=[(":index", "1"), ":last"],
       bad=[(0, (":index", "0")), (0, (":index", '"1"')), (0, ":last")]),
    _t("index date", "date", [(":index", "1"), '"date"', '"year"', '"2020"'], test=True,
       bad=[(0, (":index", "0"))]),
    _t("index", "address", [(":index", "1"), '"from"', '"a@b.c"'], test=True, bad=[(0, ":last")]),
    # editheader
    _t("editheader", "addheader", [":last", '"X-A"', '"v"'], conflicts=[":last"],
       bad=[(1, '"X A"'), (1, '""'), (1, '"X:A"'), (1, '"Received"'), (1, '"auto-submitted"'),
            (1, '"x-é"'), (2, '"a\\r\\nb: c"'), (2, '"' + "v" * 2000 + '"'), (1, '"' + "x" * 1000 + '"')]),
    _t("editheader", "deleteheader", [(":index", "1"), ":last", '"X-A"', '["a"]'],
       conflicts=[(":index", "2")], bad=[(3, '"X A"'), (2, '"Received"'), (2, '"X A"'), (0, (":index", "0"))]),
    _t("editheader", "deleteheader", [":contains", '"X-A"', '"a"'], conflicts=[":is"],
       bad=[(1, '"Subject"'), (1, '"Auto-Submitted"')]),
    # enotify
    _t("enotify", "notify", [(":from", '"a@b.c"'), (":importance", '"1"'), (":options", '["k=v"]'),
                             (":message", '"m"'), '"mailto:x@y.z"'],
       conflicts=[(":importance", '"2"'), (":message", '"n"')],
       bad=[(1, (":importance", '"4"')), (1, (":importance", '"0"')), (1, (":importance", "1")),
            (2, (":options", '["k"]')), (2, (":options", '["=v"]')), (0, (":from", '"not addr"')),
            (4, '"frop:x"'), (4, '"mailto:"'), (4, '"mailto:x@y.z?subject=a%"'), (4, '"x y"'),
            (4, '"mailto:@"'), (4, '"mailto:x@y.z?body"'), (2, (":options", '["a b=c"]'))]),
    _t("enotify", "valid_notify_method", ['"mailto:a@b.c"'], test=True, bad=[(0, "1")]),
    _t("enotify", "notify_method_capability", [":is", '"mailto:a@b.c"', '"online"', '"yes"'], test=True,
       bad=[(1, '"frop:x"'), (2, '"frop"'), (1, '"mailto:"')]),
    _t("enotify variables", "set", [":encodeurl", '"a"', '"b"'], conflicts=[":encodeurl"]),
    # environment
    _t("environment", "environment", [":is", '"domain"', '"x"'], test=True, bad=[(1, '"frop"')]),
    _t("vnd.dovecot.environment", "environment", [":is", '"vnd.dovecot.username"', '"x"'], test=True),
    # ihave
    _t("ihave", "ihave", ['"fileinto"'], test=True, bad=[(0, '"frop"'), (0, "1"), (0, '["fileinto", "frop"]')]),
    _t("ihave", "ihave", ['["fileinto", "copy"]'], test=True),
    # duplicate
    _t("duplicate", "duplicate", [(":handle", '"h"'), (":header", '"message-id"'), (":seconds", "3600"),
                                  ":last"],
       test=True, conflicts=[(":uniqueid", '"u"'), ":last", (":seconds", "1")],
       bad=[(1, (":header", '"a b"')), (2, (":seconds", '"1"')), (1, (":header", '""'))]),
    # mime, foreverypart, extracttext
    _t("mime", "header", [":mime", ":anychild", (":type", None), '"content-type"', '"text"'], test=True,
       conflicts=[(":subtype", None), ":anychild"], bad=[(1, (":param", '"x"'))]),
    _t("mime", "header", [":mime", (":param", '["charset"]'), '"content-type"', '"utf-8"'], test=True,
       conflicts=[":contenttype"], bad=[(1, (":param", "1"))]),
    _t("mime", "exists", [":mime", ":anychild", '"x"'], test=True, bad=[(0, ":anychild")]),
    _t("mime", "address", [":mime", ":anychild", ":domain", '"from"', '"b.c"'], test=True),
    _t("foreverypart", "foreverypart", [], block="{ keep; }"),
    _t("foreverypart", "foreverypart", [(":name", '"x"')], block='{ break :name "x"; }',
       conflicts=[(":name", '"y"')], bad=[(0, (":name", "1"))]),
    _t("foreverypart", "break", [], ctx=FEP),
    _t("foreverypart", "break", [(":name", '"x"')], ctx="foreverypart :name \"x\" {{ {} }}",
       bad=[(0, (":name", '"y"'))]),
    _t("foreverypart extracttext variables", "extracttext", [(":first", "10"), '"v"'], ctx=FEP,
       conflicts=[(":first", "2")], bad=[(0, (":first", '"1"')), (1, '"1v"'), (1, '"${v}"'), (1, '"a.b"'),
                                         (0, (":first", "0")), (1, '"global.v"'), (1, '""')]),
    _t("foreverypart extracttext variables", "extracttext", [":lower", '"v"'], ctx=FEP,
       conflicts=[":upper"]),
    # include
    _t("include", "include", [":personal", '"inc1"'], conflicts=[":global"],
       bad=[(1, '"a/b"'), (1, '""'), (1, '"nope"'), (1, '"inc1\\nx"'), (1, '["inc1"]')]),
    _t("include", "include", [":global", ":once", ":optional", '"gl1"'], conflicts=[":once"],
       bad=[(3, '"nope"'), (3, '"inc1"')]),
    _t("include", "return", []),
    _t("include variables", "global", ['"g"'], bad=[(0, '"1g"'), (0, '"${g}"'), (0, '"a.b"'), (0, "1")]),
    _t("include variables", "include", ['"vars"']),
    # spamtest, virustest
    _t("spamtest relational comparator-i;ascii-numeric", "spamtest", [(":value", '"ge"'), (":comparator", '"i;ascii-numeric"'), '"3"'], test=True,
       bad=[(2, "3"), (0, ":percent")]),
    _t("spamtest", "spamtest", [":is", '"0"'], test=True, conflicts=[":contains"]),
    _t("spamtestplus relational comparator-i;ascii-numeric", "spamtest", [":percent", (":value", '"ge"'), (":comparator", '"i;ascii-numeric"'),
                                    '"50"'], test=True, conflicts=[":percent"]),
    _t("virustest relational comparator-i;ascii-numeric", "virustest", [(":value", '"eq"'), (":comparator", '"i;ascii-numeric"'), '"1"'], test=True,
       bad=[(2, '["1", "2"]')]),
    # vnd.dovecot.debug
    _t("vnd.dovecot.debug", "debug_log", ['"x"'], bad=[(0, "1")]),
]


def _render_arg(a) -> str:
    if isinstance(a, tuple):
        return a[0] if a[1] is None else f"{a[0]} {a[1]}"
    return a


def render(req, cmd, args, test, ctx, block=None) -> str:
    line = " ".join([cmd] + [_render_arg(a) for a in args])
    inner = f"if {line} {{ keep; }}" if test else f"{line} {block}" if block else line + ";"
    body = ctx.format(inner) if ctx != "{}" else inner
    head = ""
    if req:
        head = "require [" + ", ".join(f'"{r}"' for r in req) + "];\n"
    return head + body


def _positional_indexes(args) -> list[int]:
    return [i for i, a in enumerate(args) if isinstance(a, str) and not a.startswith(":")]


def _tag_indexes(args) -> list[int]:
    return [i for i, a in enumerate(args) if isinstance(a, tuple) or a.startswith(":")]


def _wrong_types(a: str) -> list[str]:
    if a.startswith("["):
        return ["1"]
    if a.startswith('"'):
        return ["1", '["a", "b"]']
    return ['"1"']


def mutations(t: T) -> list[tuple[str, list, tuple, str]]:
    """(kind, args, requires, context) of each single mutation of template `t`."""
    out = []
    pos = _positional_indexes(t.args)
    tags = _tag_indexes(t.args)
    first_pos = pos[0] if pos else len(t.args)
    out.append(("valid", t.args, t.req, t.ctx))
    if pos:
        out.append(("drop-positional", t.args[:pos[-1]] + t.args[pos[-1] + 1:], t.req, t.ctx))
        out.append(("drop-first-positional", t.args[:pos[0]] + t.args[pos[0] + 1:], t.req, t.ctx))
        for k in pos:
            for w in _wrong_types(t.args[k]):
                out.append(("wrong-type", t.args[:k] + [w] + t.args[k + 1:], t.req, t.ctx))
    out.append(("add-positional", t.args + ['"extra"'], t.req, t.ctx))
    out.append(("add-number", t.args + ["7"], t.req, t.ctx))
    out.append(("unknown-tag", [":frobnicate"] + t.args, t.req, t.ctx))
    out.append(("tag-after-positional", t.args + [":frobnicate"], t.req, t.ctx))
    for k in tags:
        a = t.args[k]
        out.append(("repeated-tag", t.args[:first_pos] + [a] + t.args[first_pos:], t.req, t.ctx))
        if isinstance(a, tuple) and a[1] is not None:
            out.append(("tag-missing-value", t.args[:k] + [a[0]] + t.args[k + 1:], t.req, t.ctx))
            out.append(("tag-value-at-end", [x for x in t.args if x is not a] + [a[0]], t.req, t.ctx))
        out.append(("known-tag-after-positionals", [x for x in t.args if x is not a] + [a], t.req, t.ctx))
    for c in t.conflicts:
        out.append(("conflicting-tag", t.args[:first_pos] + [c] + t.args[first_pos:], t.req, t.ctx))
    for r in t.req:
        out.append(("missing-require", t.args, tuple(x for x in t.req if x != r), t.ctx))
    for b in t.bad:
        if isinstance(b, list):
            out.append(("bad-value", b, t.req, t.ctx))
        else:
            k, v = b
            out.append(("bad-value", t.args[:k] + [v] + t.args[k + 1:], t.req, t.ctx))
    if not t.test and t.ctx == "{}":
        out.append(("in-block", t.args, t.req, "if true {{ {} }}"))
        out.append(("before-require", t.args, t.req, "{}\nrequire \"fileinto\";"))
        out.append(("twice", t.args, t.req, "{0}\n{0}"))
    if t.test:
        out.append(("as-command", t.args, t.req, "AS_COMMAND"))
        out.append(("negated-in-anyof", t.args, t.req, "NOT"))
    return out


# Placement and structure: hand-picked shapes the templates cannot make.
PLACEMENT = [
    'keep;\nrequire "fileinto";',
    'require "fileinto";\nkeep;\nrequire "copy";\nfileinto :copy "a";',
    'if true { require "fileinto"; }',
    'elsif true { keep; }',
    'else { keep; }',
    'if true { keep; }\nkeep;\nelse { keep; }',
    'if true { keep; } else { keep; } else { keep; }',
    'if true { keep; } elsif true { keep; } elsif false { stop; } else { discard; }',
    'require "foreverypart";\nbreak;',
    'require "foreverypart";\nif true { break; }',
    'require "foreverypart";\nforeverypart { foreverypart { break; } }',
    'require "foreverypart";\nforeverypart :name "a" { foreverypart :name "b" { break :name "a"; } }',
    'require "foreverypart";\nforeverypart :name "a" { foreverypart :name "a" { break :name "a"; } }',
    'require "foreverypart";\nforeverypart :name "a" { keep; }\nforeverypart { break :name "a"; }',
    'require "foreverypart";\nforeverypart :name "" { break :name ""; }',
    'require "foreverypart";\nforeverypart;',
    'require "foreverypart";\nforeverypart "x" { keep; }',
    'require ["extracttext", "variables"];\nextracttext "v";',
    'require ["foreverypart", "extracttext"];\nforeverypart { extracttext "v"; }',
    'require ["foreverypart", "extracttext", "variables"];\nforeverypart { if true { extracttext "v"; } }',
    'require ["foreverypart", "extracttext", "variables"];\nforeverypart { foreverypart { extracttext "v"; } }',
    'require ["mime", "foreverypart"];\nif header :anychild "a" "b" { keep; }',
    'require "mime";\nif header :anychild :mime "a" "b" { keep; }',
    'require "foreverypart";\nif header :mime "a" "b" { keep; }',
    'require "include";\nreturn;\nkeep;',
    'require "include";\nif true { return; }',
    'require ["include", "variables"];\nkeep;\nglobal "a";',
    'require ["include", "variables"];\nif true { global "a"; }',
    'require "variables";\nglobal "a";',
    'require "include";\nglobal "a";',
    'require ["include", "variables"];\nglobal ["a", "b"];\nset "a" "${b}";',
    'require ["include", "variables"];\nglobal "a.b";',
    'require ["include", "variables"];\nset "a" "1";\nglobal "a";',
    'require "ihave";\nif ihave "frop" { frop; }',
    'require "ihave";\nif ihave "fileinto" { fileinto "a"; }',
    'require "ihave";\nif ihave "fileinto" { frop; }',
    'require "ihave";\nif not ihave "fileinto" { keep; } else { fileinto "a"; }',
    'require "ihave";\nif anyof(ihave "fileinto", true) { fileinto "a"; }',
    'require "ihave";\nif ihave ["fileinto", "frop"] { fileinto "a"; }',
    'require "ihave";\nif ihave "fileinto" { keep; }\nfileinto "a";',
    'require "ihave";\nif ihave "variables" { set "a" "b"; }',
    'require "ihave";\nif ihave "${x}" { keep; }',
    'require ["ihave", "variables"];\nif ihave "${x}" { keep; }',
    'require "ihave";\nif ihave "ihave" { keep; }',
    'require "ihave";\nif ihave "" { keep; }',
    'require ["fileinto", "fileinto"];\nfileinto "a";',
    'require [];\nkeep;',
    'require "";',
    'require ["ereject"];',
    'require "imapflags";',
    'require "notify";',
    'require "comparator-i;octet";',
    'require "comparator-i;ascii-casemap";',
    'require "comparator-frop";',
    'require "vacation-seconds";\nvacation :seconds 1 "x";',
    'require "spamtestplus";\nif spamtest :percent "1" { keep; }',
    'require "spamtest";\nif spamtest :percent "1" { keep; }',
    'require "vnd.dovecot.environment";\nif environment "domain" "x" { keep; }',
    'require "extracttext";',
    'require "variables";\nset "a" "b" "c";',
    'require "variables";\nset :lower :lower "a" "b";',
    'require "variables";\nset :lower :upperfirst :quotewildcard :length "a" "b";',
    'require "variables";\nset "a" "${a}${b}${c.d}${1}${e";',
    'require "variables";\nif string :matches "${a" "b" { keep; }',
    'require "variables";\nset "A" "b";\nset "a" "${A}";',
    'require "variables";\nset "${a}b" "x";',
    'require ["variables", "encoded-character"];\nset "${hex:61}" "b";',
    'require ["variables", "encoded-character"];\nset "a" "${hex:24}{x}";',
    'require "encoded-character";\nif header :is "a" "${unicode:D800}${unicode:D801}" { keep; }',
    'require "encoded-character";\nif header :is "${unicode:110000}" ["${unicode:DFFF}", "${hex:FF}"] { keep; }',
    'require "encoded-character";\nkeep "${unicode:D800}";',
    'if header :is "${unicode:D800}" "a" { keep; }',
    'require ["variables", "regex"];\nif header :regex "a" ["(", "${x}"] { keep; }',
    'require "regex";\nif header :regex "a" ["(", "["] { keep; }',
    'require "regex";\nif header :regex "a" "(" { keep; }\nif header :regex "a" "[" { keep; }',
    'require "regex";\nif header :regex :comparator "i;octet" "a" "(" { keep; }',
    'require ["regex", "relational"];\nif header :regex :count "eq" "a" "b" { keep; }',
    'require "relational";\nif header :value "gt" :count "lt" "a" "b" { keep; }',
    'require "relational";\nif address :count "eq" :comparator "i;octet" "to" "1" { keep; }',
    'require "date";\nif date :zone "+0100" :originalzone "date" "year" "1" { keep; }',
    'require "date";\nif date "date" "year" { keep; }',
    'require ["date", "variables"];\nif date :zone "${z}" "date" "${p}" "1" { keep; }',
    'require ["date", "variables"];\nif currentdate "${p}" "1" { keep; }',
    'require "editheader";\naddheader "X-A" "v";\ndeleteheader "X-A";\ndeleteheader :index 1 "X-A";',
    'require "editheader";\ndeleteheader :last "X-A";',
    'require ["editheader", "index"];\ndeleteheader :last "X-A";',
    'require ["editheader", "variables"];\naddheader "${n}" "v";\ndeleteheader "${n}";',
    'require ["editheader", "variables"];\nset "n" "Received";\naddheader "${n}" "v";',
    'require "editheader";\naddheader :frop "X-A" "v";\naddheader :frop "X-B" "v";',
    'require "editheader";\naddheader "X A" "v";\naddheader "Y B" "v";',
    'require "editheader";\ndeleteheader :index 1 :last :comparator "i;octet" :contains "X-A" "v";',
    'require "editheader";\ndeleteheader :count "eq" "X-A" "1";',
    'require ["editheader", "relational"];\ndeleteheader :count "eq" "X-A" "1";',
    'require "vacation";\nvacation :days 1 :days 2 :subject "a" :subject "b" "r";',
    'require "vacation";\nvacation "r" "extra";',
    'require "vacation";\nvacation;',
    'require "vacation";\nvacation :from "a@b.c" :from "d@e.f" "r";',
    'require "vacation";\nvacation :addresses "x@y.z" "r";',
    'require ["vacation", "variables"];\nvacation :from "${f}" :addresses ["${a}"] "r";',
    'require ["vacation", "copy"];\nvacation :copy "r";',
    'require ["enotify", "variables"];\nnotify :importance "${i}" :options ["${o}"] "${m}";',
    'require "enotify";\nnotify "mailto:a@b.c" "extra";',
    'require "enotify";\nnotify :method "mailto:a@b.c";',
    'require "enotify";\nnotify :from "a@b.c" :from "d@e.f" "mailto:a@b.c";',
    'require "enotify";\nnotify "mailto:a@b.c?to=d@e.f&cc=g@h.i";',
    'require "enotify";\nnotify "mailto:a@b.c?from=x@y.z";',
    'require "enotify";\nnotify "mailto:?to=a@b.c";',
    'require "enotify";\nnotify "mailto:a@b.c,d@e.f";',
    'require "enotify";\nnotify "mailto:a%40b.c";',
    'require "enotify";\nnotify "MAILTO:a@b.c";',
    'require "enotify";\nnotify :options "x=y" "mailto:a@b.c";',
    'require "duplicate";\nif duplicate :header "a" :uniqueid "b" { keep; }',
    'require "duplicate";\nif duplicate :seconds 0 { keep; }',
    'require "duplicate";\nif duplicate "x" { keep; }',
    'require ["include", "include"];\ninclude "inc1";\ninclude "inc1";',
    'require "include";\ninclude :personal :global "inc1";',
    'require "include";\ninclude :once :once "inc1";',
    'require "include";\ninclude "gl1";',
    'require "include";\ninclude :optional "nope";',
    'require "include";\ninclude :global "nope";',
    'require "include";\ninclude "..";',
    'require "include";\ninclude ".";',
    'require ["include", "variables"];\ninclude "${x}";',
    'require "mailbox";\nif mailboxexists ["INBOX", "a"] { keep; }',
    'require "mailbox";\nif mailboxexists "" { keep; }',
    'require "fileinto";\nfileinto :create "a";',
    'require ["fileinto", "mailbox"];\nfileinto :create :create "a";',
    'require "special-use";\nkeep :specialuse "\\\\Junk";',
    'require ["fileinto", "special-use"];\nfileinto :specialuse "\\\\Junk" :specialuse "\\\\Sent" "a";',
    'require ["fileinto", "special-use", "variables"];\nfileinto :specialuse "${x}" "a";',
    'require ["imap4flags", "variables"];\nsetflag "${x}";\nif hasflag "${y}" { keep; }',
    'require "imap4flags";\nsetflag "a b" "c";',
    'require "imap4flags";\nkeep :flags "\\\\Frop";',
    'require "imap4flags";\nsetflag ["\\\\Seen", "\\\\Recent", "$Label1"];',
    'require "imap4flags";\nif hasflag :count "eq" "1" { keep; }',
    'require ["imap4flags", "relational"];\nif hasflag :count "eq" "1" { keep; }',
    'require "body";\nif body :content "text" :raw "a" { keep; }',
    'require "body";\nif body :content ["text", "image/png"] :contains "a" { keep; }',
    'require "body";\nif body :content "" :contains "a" { keep; }',
    'require "body";\nif body :content "/" :contains "a" { keep; }',
    'require "body";\nif body :count "eq" "1" { keep; }',
    'require "body";\nif body :comparator "i;octet" :text "a" { keep; }',
    'require "spamtest";\nif spamtest :value "ge" "3" "4" { keep; }',
    'require "spamtest";\nif spamtest :count "ge" "3" { keep; }',
    'require ["spamtest", "relational"];\nif spamtest :count "ge" "3" { keep; }',
    'require "virustest";\nif virustest :percent "3" { keep; }',
    'require ["spamtest", "virustest"];\nif allof(spamtest "1", virustest "1") { keep; }',
    'require "envelope";\nif envelope :all ["from", "to", "auth"] "a" { keep; }',
    'require "envelope";\nif envelope "FROM" "a" { keep; }',
    'require ["envelope", "variables"];\nif envelope "${e}" "a" { keep; }',
    'if address :all ["from", "x-frop", "resent-to"] "a" { keep; }',
    'if address "subject" "a" { keep; }',
    'if address "" "a" { keep; }',
    'if exists ["a", ""] { keep; }',
    'if exists "a:b" { keep; }',
    'if header "a b" "c" { keep; }',
    'if header "" "c" { keep; }',
    'redirect "a@b.c";\nredirect "a@b.c";',
    'redirect "<a@b.c>";',
    'redirect "A <a@b.c>";',
    'redirect "a@b.c, d@e.f";',
    'redirect "\\"a b\\"@c.d";',
    'redirect "a@[1.2.3.4]";',
    'require "variables";\nredirect "${x}";',
    'if size :over 1K { keep; }',
    'if size :over 1X { keep; }',
    'if size :over 1 :under 2 { keep; }',
    'if size 1 { keep; }',
    'if size :over { keep; }',
    'if true { keep; } frop;',
    'if true {}',
    'if true { }\nelsif false {}',
    'require "environment";\nif environment :is "vnd.dovecot.username" "x" { keep; }',
    'require "environment";\nif environment :count "eq" "domain" "1" { keep; }',
    'require ["environment", "relational"];\nif environment :count "eq" "domain" "1" { keep; }',
    'require "index";\nif header :last "a" "b" { keep; }',
    'require "index";\nif exists :index 1 "a" { keep; }',
    'require "index";\nif header :index 1 :index 2 "a" "b" { keep; }',
    'require "index";\nif header :index 99999999999 "a" "b" { keep; }',
    'require ["index", "variables"];\nif string :index 1 "a" "b" { keep; }',
    'require "mime";\nif header :mime :type :subtype "content-type" "text" { keep; }',
    'require "mime";\nif header :mime :param "a" :param "b" "content-type" "text" { keep; }',
    'require "mime";\nif header :mime :param ["a"] "to" "text" { keep; }',
    'require "mime";\nif header :mime :contenttype "content-type" "text" { keep; }',
    'require "mime";\nif header :type "content-type" "text" { keep; }',
    'require "mime";\nif exists :mime :type "content-type" { keep; }',
    'require "mime";\nif address :mime :type "from" "a" { keep; }',
    'require "mime";\nif address :mime :param "x" "from" "a" { keep; }',
    'require "vnd.dovecot.debug";\ndebug_log "a" "b";',
    'require "vacation";\nvacation :days 99999999 "r";',
    'require "vacation";\nvacation :subject "${unicode:D800}" "r";',
    'require ["vacation", "encoded-character"];\nvacation :subject "${unicode:D800}" :from "x" "r";',
    'require "vacation";\nvacation :from "" "r";',
    'require "vacation";\nvacation :addresses [] "r";',
    'require "vacation";\nvacation :handle "" "";',
    'require "vacation";\nvacation text:\nhi\n.\n;',
    'require "vacation";\nvacation :mime "r"\nkeep;',
    'require "duplicate";\nif duplicate :handle "" :header "" { keep; }',
    'require "duplicate";\nif duplicate :uniqueid "" { keep; }',
    'require "duplicate";\nif duplicate :header "received" :seconds 99999999999 { keep; }',
    'require "editheader";\naddheader "X-A" "${unicode:D800}";',
    'require "editheader";\naddheader "Received" "a";\ndeleteheader "Received";',
    'require "editheader";\ndeleteheader "Content-Type";\naddheader "Content-Type" "x";',
    'require "editheader";\naddheader "x-a" text:\nb\n.\n;',
    'require "editheader";\naddheader :last :last :last "x-a" "b";',
    'require "enotify";\nif notify_method_capability "mailto:a@b.c" "online" ["yes", "no"] { keep; }',
    'require "enotify";\nif notify_method_capability :count "eq" "mailto:a@b.c" "online" "1" { keep; }',
    'require "enotify";\nif valid_notify_method ["mailto:a@b.c", "frop:x", "xmpp:a@b.c"] { keep; }',
    'require "enotify";\nif valid_notify_method "" { keep; }',
    'require "enotify";\nnotify :options ["a=b", "c"] :options "d=e" "mailto:a@b.c";',
    'require "enotify";\nnotify :importance "1" :importance "2" :importance "3" "mailto:a@b.c";',
    'require "enotify";\nnotify :message "m" "mailto:a@b.c" "x" "y";',
    'require "enotify";\nnotify "mailto:a@b.c?subject=%ZZ";',
    'require "enotify";\nnotify "mailto:a@b.c?to=bad";',
    'require "enotify";\nnotify "mailto:a@b.c?body=x&body=y";',
    'require "enotify";\nnotify "mailto:a@b.c?in-reply-to=x&received=y";',
    'require ["include", "variables"];\nglobal "a";\nglobal "a";',
    'require ["include", "variables"];\nglobal "";',
    'require ["include", "variables"];\nglobal "global.a";',
    'require ["include", "variables"];\nset "global.a" "1";',
    'require "variables";\nset "global.a" "1";',
    'require "variables";\nif string "${global.a}" "" { keep; }',
    'require "include";\ninclude :optional :optional "nope";',
    'require "include";\ninclude "' + "a" * 300 + '";',
    'require "include";\ninclude "a${hex:00}";',
    'require ["include", "encoded-character"];\ninclude "a${hex:00}";',
    'require "include";\nif true { include "inc1"; return; }',
    'require ["date", "relational"];\nif currentdate :value "gt" :comparator "i;ascii-numeric" "year" "2020" { keep; }',
    'require "date";\nif currentdate :zone "+0100" :zone "+0200" "year" "1" { keep; }',
    'require "date";\nif date :zone "-1300" "date" "zone" "x" { keep; }',
    'require "date";\nif date :zone "+1400" "date" "zone" "x" { keep; }',
    'require "date";\nif date :zone "+0160" "date" "zone" "x" { keep; }',
    'require "date";\nif date :zone "" "date" "zone" "x" { keep; }',
    'require "date";\nif date :zone ["+0100"] "date" "zone" "x" { keep; }',
    'require "date";\nif date "" "year" "x" { keep; }',
    'require "date";\nif date "a b" "year" "x" { keep; }',
    'require "date";\nif currentdate "YEAR" "2020" { keep; }',
    'require "date";\nif currentdate ["year", "month"] "2020" { keep; }',
    'require ["spamtest", "relational", "comparator-i;ascii-numeric"];\n'
    'if spamtest :value "ge" :comparator "i;ascii-numeric" ["1", "x"] { keep; }',
    'require "spamtest";\nif spamtest :matches "*" { keep; }',
    'require "spamtest";\nif spamtest :comparator "i;octet" "1" { keep; }',
    'require "virustest";\nif virustest :regex "1" { keep; }',
    'require "special-use";\nif specialuse_exists "INBOX" ["\\\\Junk", "\\\\Frop"] { keep; }',
    'require "special-use";\nif specialuse_exists ["\\\\All", "\\\\Archive", "\\\\Drafts"] { keep; }',
    'require ["fileinto", "special-use"];\nfileinto :specialuse "\\\\Frop" "a";',
    'require ["fileinto", "special-use"];\nfileinto :specialuse ["\\\\Junk"] "a";',
    'require ["fileinto", "special-use", "mailbox"];\nfileinto :create :specialuse "\\\\Junk" "a";',
    'require ["fileinto", "imap4flags", "copy", "mailbox", "special-use"];\n'
    'fileinto :copy :create :flags "a" :specialuse "\\\\Junk" "INBOX.a";',
    'require ["imap4flags"];\nkeep :flags [];',
    'require ["imap4flags"];\nsetflag [];',
    'require ["imap4flags"];\nif hasflag [] { keep; }',
    'require ["body"];\nif body :raw :content "text" "a" { keep; }',
    'require ["body"];\nif body :content "text" :content "html" "a" { keep; }',
    'require ["body"];\nif body :content "multipart/" "a" { keep; }',
    'require ["body", "variables"];\nif body :content "${t}" "a" { keep; }',
    'require ["mime"];\nif header :mime :param ["a", "b"] "content-type" "x" { keep; }',
    'require ["mime"];\nif header :mime :param [] "content-type" "x" { keep; }',
    'require ["mime"];\nif header :mime :anychild :subtype "content-disposition" "x" { keep; }',
    'require ["mime"];\nif header :mime :contenttype "from" "x" { keep; }',
    'require ["mime", "foreverypart"];\nforeverypart { if header :mime :anychild "a" "b" { break; } }',
    'require ["foreverypart"];\nforeverypart :name "x" { foreverypart :name "y" { break :name "x"; break :name "y"; '
    'break :name "z"; } }',
    'require ["regex", "variables"];\nset :quoteregex "a" "b";',
    'require "variables";\nset :quoteregex "a" "b";',
    'require "variables";\nset :encodeurl "a" "b";',
    'require ["variables", "enotify", "regex"];\nset :quoteregex :encodeurl :quotewildcard "a" "b";',
    'require "variables";\nset :length :length :lower "a" "b";',
    'require "variables";\nset "' + "a" * 32 + '" "b";',
    'require "variables";\nset "' + "a" * 33 + '" "b";',
    'require "variables";\nif string "${' + "a" * 33 + '}" "" { keep; }',
    'require "variables";\nif string :count "eq" "a" "1" { keep; }',
    'require "variables";\nif string :comparator "i;ascii-numeric" "a" "1" { keep; }',
    'require "environment";\nif environment "" "x" { keep; }',
    'require "environment";\nif environment ["domain", "host"] "x" { keep; }',
    'require "environment";\nif environment :matches "vnd.dovecot.frop" "x" { keep; }',
    'require "ihave";\nif ihave "variables" { set "a" "b"; } else { set "c" "d"; }',
    'require "ihave";\nif ihave ["variables", "frop"] { set "a" "b"; } elsif true { set "c" "d"; }',
    'require "ihave";\nif allof(ihave "variables", true) { if string "${a}" "" { keep; } }',
    'require "ihave";\nif ihave "encoded-character" { if header :is "a" "${unicode:D800}" { keep; } }',
    'require "relational";\nif header :count "eq" :comparator "i;ascii-casemap" "to" "1" { keep; }',
    'require ["relational", "comparator-i;ascii-numeric"];\nif header :value "eq" :comparator "i;ascii-numeric" :is "a" "1" { keep; }',
    'require "comparator-i;ascii-numeric";\nif header :comparator "i;ascii-numeric" :matches "a" "1*" { keep; }',
    'if header :comparator "i;octet" :comparator "i;ascii-casemap" "a" "b" { keep; }',
    'if header :comparator "" "a" "b" { keep; }',
    'if header :comparator "I;OCTET" "a" "b" { keep; }',
    'if header :comparator "i;ascii-numeric" "a" "b" { keep; }',
    'if address :comparator "i;octet" :all :localpart "a" "b" { keep; }',
    'if envelope "to" "a" { keep; }',
    'if exists :is "a" { keep; }',
    'if exists :comparator "i;octet" "a" { keep; }',
    'if size :over "1K" { keep; }',
    'if size :under 1G { keep; }',
    'if true { keep; }\nelsif { keep; }',
    'if true { keep; }\nelse true { keep; }',
    'if true { keep; }\nelse :frop { keep; }',
    'stop;\nkeep;\nrequire "fileinto";',
    'require "fileinto";\nfileinto "a"\nfileinto "b";',
    'redirect :copy "a@b.c";',
    'redirect :frop :frop "a@b.c";',
    'redirect "";\nredirect "";',
    'discard :copy;',
    'keep :flags "a";',
    'if true { keep; } else { frop; }',
    'require "enotify";\nnotify :options ["a+b=c"] "mailto:a@b.c";',
    'require "enotify";\nnotify :options ["a_b.c-d=e f"] "mailto:a@b.c";',
    'require "enotify";\nnotify :options ["a=b\nc"] "mailto:a@b.c";',
    'require "enotify";\nnotify "mailto:a@b.c?subject=%0D%0Abcc:%20x@y.z";',
    'require "enotify";\nnotify "mailto:a@b.c?subject=a%09b&body=a%0D%0Ab";',
    'require "enotify";\nnotify "mailto:a@b.c?subject=caf%C3%A9";',
    'require "enotify";\nnotify "mailto:a@b.c?body=%FF";',
    'if true { keep; } elsif false { frop; } else { keep :frop; }',
    'if false { frop; } else { frop2; }',
    'require "mboxmetadata";\nif metadata "INBOX" "/private/a" "b" "c" { keep; }',
    'require ["mboxmetadata", "variables"];\nif metadata "${m}" "${a}" "b" { keep; }',
    'require "mboxmetadata";\nif metadata :count "eq" "INBOX" "/private/a" "1" { keep; }',
    'require "mboxmetadata";\nif metadataexists "INBOX" ["/private/a", "/shared/b"] { keep; }',
    'require "mboxmetadata";\nif metadataexists "INBOX" ["/private/a", "b"] { keep; }',
    'require "servermetadata";\nif servermetadataexists ["/private/a", "/shared/b"] { keep; }',
]


# mutations every template gets; of the others (generic ones: wrong types, extra and misplaced
# arguments, contexts) a seeded 40%
ALWAYS = {"valid", "bad-value", "conflicting-tag", "repeated-tag", "tag-missing-value", "missing-require"}
COMBINATIONS = 100


def generate(seed: int = SEED) -> list[str]:
    """The template mutations (ALWAYS, and half of the others drawn with `seed`), the
    placement shapes, then COMBINATIONS mutations of mutations and scripts of two mutated
    templates (a pure function of the seed)."""
    out: list[str] = []
    seen: set[str] = set()

    def add(src: str) -> None:
        if src not in seen:
            seen.add(src)
            out.append(src)

    rng = random.Random(seed)
    for t in TEMPLATES:
        for kind, args, req, ctx in mutations(t):
            if kind in ALWAYS or rng.random() < 0.4:
                add(_render_mutation(t, args, req, ctx))
    for src in PLACEMENT:
        add(src)
    for _ in range(COMBINATIONS):
        t = rng.choice(TEMPLATES)
        ms = [m for m in mutations(t) if m[0] not in ("valid", "as-command", "negated-in-anyof")]
        kind, args, req, ctx = rng.choice(ms)
        t2 = T(req, t.cmd, args, t.test, ctx, t.bad, t.conflicts, t.block)
        more = [m for m in mutations(t2) if m[0] in ("unknown-tag", "bad-value", "missing-require",
                                                      "repeated-tag", "drop-positional", "wrong-type",
                                                      "conflicting-tag", "in-block")]
        if more:
            _, args, req, ctx = rng.choice(more)
        add(_render_mutation(t2, args, req, ctx))
        # two templates in one script: errors add up across commands
        u = rng.choice(TEMPLATES)
        _, uargs, ureq, uctx = rng.choice(mutations(u))
        a = _render_mutation(t2, args, req, ctx)
        b = _render_mutation(u, uargs, ureq, uctx)
        add(_merge(a, b))
    return out


def _render_mutation(t: T, args, req, ctx) -> str:
    if ctx == "AS_COMMAND":
        return render(req, t.cmd, args, False, "{}", t.block)
    if ctx == "NOT":
        src = render(req, t.cmd, args, True, "{}")
        line = src.split("\n")[-1]
        inner = line[len("if "):-len(" { keep; }")]
        return src[:len(src) - len(line)] + f"if anyof(false, not {inner}) {{ keep; }}"
    return render(req, t.cmd, args, t.test, ctx, t.block)


def _merge(a: str, b: str) -> str:
    """One script of two: their requires first, then both bodies."""
    reqs, bodies = [], []
    for s in (a, b):
        lines = s.split("\n")
        if lines[0].startswith("require ["):
            reqs.extend(re.findall(r'"([^"]*)"', lines[0]))
            lines = lines[1:]
        bodies.append("\n".join(lines))
    head = ("require [" + ", ".join(f'"{r}"' for r in dict.fromkeys(reqs)) + "];\n") if reqs else ""
    return head + "\n".join(bodies)


# --- both compilers -------------------------------------------------------------------------

def owlery_settings() -> Settings:
    from tests.sieve.differential.runner import owlery_settings as settings
    return settings()


def _loader(name: str, location: str):
    return INCLUDED.get((location, name))


def owlery_errors(src: str, settings: Settings | None = None) -> list[str]:
    try:
        compile_source(src, name="t", settings=settings or owlery_settings(), loader=_loader)
    except SieveCompileError as e:
        return [d.message for d in e.diagnostics if d.severity == "error" and d.message not in FINAL]
    return []


class Sievec:
    """sievec with a private configuration (the differential harness's, plus the metadata
    extensions) in its own directory, run as `nobody` when the tests run as root."""

    def __init__(self, home: str, extra_extensions: str = ""):
        from tests.sieve.differential import pigeonhole

        self.home = home
        for sub in ("personal", "global", "s"):
            os.makedirs(os.path.join(home, sub), exist_ok=True)
        for (loc, name), src in INCLUDED.items():
            with open(os.path.join(home, loc, name + ".sieve"), "w") as f:
                f.write(src)
        with open(os.path.join(home, "dovecot.conf"), "w") as f:
            f.write(pigeonhole.CONF.format(home=home, hostname=pigeonhole.HOSTNAME, postmaster=pigeonhole.POSTMASTER,
                                           extensions=pigeonhole._EXTRA_EXTENSIONS + " +mboxmetadata +servermetadata"
                                           + extra_extensions))
        self.uid = self.gid = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam(RUN_USER)
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
            for root, _dirs, files in os.walk(home):
                os.chown(root, self.uid, self.gid)
                for n in files:
                    os.chown(os.path.join(root, n), self.uid, self.gid)
            os.chmod(home, 0o755)
        self.env = self._config_env()

    def _run(self, argv, **kw):
        return subprocess.run(argv, capture_output=True, timeout=20, cwd=self.home, user=self.uid, group=self.gid,
                              extra_groups=[] if self.uid is not None else None, **kw)

    def _config_env(self) -> dict[str, str]:
        # exported once: sievec started without it execs doveconf first (twice the cost)
        base = {"HOME": self.home, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": "UTC"}
        doveconf = shutil.which("doveconf") or "/usr/bin/doveconf"
        out = self._run([doveconf, "-f", "service=sievec", "-c", os.path.join(self.home, "dovecot.conf"),
                         "-m", "mail", "-e", "/usr/bin/env", "-0"], env=base)
        env = dict(x.split("=", 1) for x in out.stdout.decode("utf-8", "replace").split("\0") if "=" in x)
        assert out.returncode == 0 and env.get("DOVECONF_ENV") == "1", out.stderr.decode("utf-8", "replace")[-500:]
        return env

    def errors(self, src: str, slot: int = 0) -> tuple[bool, list[str]] | None:
        """sievec's verdict on `src`; callers running at once use different slots (files)."""
        path = os.path.join(self.home, "s", f"t{slot}.sieve")
        with open(path, "w") as f:
            f.write(src + "\n")
        if self.uid is not None:
            os.chown(path, self.uid, self.gid)
        p = self._run([SIEVEC, path, "-"], env=self.env)
        err = p.stderr.decode("utf-8", "replace")
        if p.returncode < 0 or "Panic:" in err:
            return None           # sievec crashed: no reference for this script
        assert "Panic" not in err and p.returncode in (0, 89), (p.returncode, err, src)
        lines = [x.split(": error: ", 1)[1].rstrip(".") for x in err.splitlines() if ": error: " in x]
        # (sievec compiles some scripts it reported errors for: the decision is the exit code)
        return p.returncode == 0, [x for x in lines if x not in FINAL]


# --- differences kept on purpose ----------------------------------------------------------

def _extracttext_alone(src: str) -> bool:
    head = src.split("\n", 1)[0]
    return '"extracttext"' in head and not ('"foreverypart"' in head and '"variables"' in head)


# (regex searched in the script, or a predicate; reason): a script it matches may differ in
# count or decision. Each keeps the RFC where Pigeonhole departs from it, or is Owlery's own.
ALLOWED: list[tuple] = [
    (re.escape(':specialuse "\\\\"'),
     "RFC 6154 2: a special-use attribute is a backslash and an atom (1*ATOM-CHAR); a lone "
     "backslash is none. sievec accepts it"),
    (r'specialuse_exists "[^"]*" "[^"]*" [^{]',
     "RFC 8579 4: specialuse_exists takes at most two positional arguments; sievec does not "
     "check a third"),
    (r':(value|count) "GT"',
     "RFC 5231 9 gives the relations as ABNF strings, case-insensitive (RFC 5234 2.3); "
     "sievec refuses \"GT\""),
    (r'addheader( :last)? ""',
     "RFC 5293 4: the field name must be an RFC 5322 field-name (1*ftext), so \"\" is an "
     "error; sievec accepts it at compile time"),
    (r'deleteheader( :\w+( \d+)?)* \[',
     "RFC 5293 5: deleteheader's field name is a string; sievec takes a string list"),
    (r'deleteheader :index 0',
     "RFC 5260 6 counts fields from 1: :index 0 is refused on every command that takes it "
     "(sievec refuses it on header/address/date, not on deleteheader)"),
    (_extracttext_alone,
     "RFC 5703 7: extracttext needs foreverypart and variables, an error at its require; "
     "sievec checks it only once a command follows, reports one of the two, and then stops "
     "validating at the next extracttext"),
    (r'\bif (true|not false|anyof\(true\)) \{[^}]*\}\s*(elsif|else)\b',
     "RFC 5228 2.10.6 and 8.2: a script with an error is not run, however unreachable the "
     "error; sievec does not validate the elsif/else after `if true` "
     "(tests/sieve/differential/deviations.toml: dead-code-not-validated)"),
    (r'"ereject"', "Pigeonhole 0.5.19 has no ereject (RFC 5429), Owlery has"),
    (r'"mailto:[^"]*=[^"&]*%[C-Fc-f][0-9A-Fa-f]%[89ABab][0-9A-Fa-f]',
     "RFC 6068 2 and its example in 6.2 (subject=caf%C3%A9): a header field of a mailto URI "
     "holds UTF-8 text (encoded when the message is made); sievec refuses 8-bit header fields"),
    (r'"mailto:[^"]*[?&]body=[^"&]*%[89A-Fa-f][0-9A-Fa-f]',
     "RFC 6068 2: percent-encoded octets are those of UTF-8 text, so a body that is not UTF-8 "
     "makes the URI invalid; sievec does not check the body"),
    (r'set [^;]*:quoteregex',
     "draft-ietf-sieve-regex 5 adds :quoteregex to set; Pigeonhole 0.5.19 does not have it"),
    (r'set "\$\{hex:',
     "RFC 5228 2.4.2.4: encoded characters are decoded before the string is used: set "
     "\"${hex:61}\" names the variable a; sievec checks the name undecoded"),
    (r':importance "\$\{',
     "RFC 5229 3: variables expand in any string an extension does not exclude (RFC 5435 "
     "does not exclude :importance): a variable one is read at run time; sievec refuses it"),
    (r'"mailto:[^"?]*,',
     "RFC 6068 2: a mailto URI's to part is a comma-separated list of addresses; sievec "
     "refuses the comma"),
    (r'(setflag|addflag|removeflag|hasflag|deleteheader)'
     r'(?>( :(?:count|value|comparator|index) ("[^"]*"|\d+)| :\w+)*)( ("[^"]*"|\[[^\]]*\]|\d+)){3}',
     "RFC 5232 3-5 and RFC 5293 5: the flag commands, hasflag and deleteheader take at most two "
     "positional arguments; sievec does not count them (a third is ignored, or fails its code "
     "generation when nothing else failed)"),
    (r'\$\{(3[3-9]|[4-9]\d|\d{3,})\}',
     "RFC 5229 3.2 leaves the number of match variables to the implementation: Owlery has "
     "no 32 limit; sievec reports an error and compiles anyway"),
]


def allowed(src: str) -> str | None:
    for pat, reason in ALLOWED:
        if pat(src) if callable(pat) else re.search(pat, src):
            return reason
    return None


def differs(theirs: tuple[bool, list[str]], ours: list[str]) -> bool:
    """Count or decision differ. sievec compiles some scripts it reported errors for (the
    specialuse_exists flags, a ${ns.name} of an unknown namespace, deleteheader :last without
    :index: its validator goes on after them); an error reported is a refusal here, as Owlery
    has it."""
    ok, errs = theirs
    return len(errs) != len(ours) or (ok and not errs) != (not ours)


# --- regression cases (no sievec needed) ------------------------------------------------
# (script, number of errors Owlery must report), each as sievec reports it
REGRESSIONS: list[tuple[str, int]] = [
    # a tag parameter that is a string is not a string list, bracketed or not
    ('if header :comparator ["i;octet"] "a" "b" { keep; }', 1),
    ('require "relational";\nif header :value ["gt"] "a" "1" { keep; }', 1),
    ('require "relational";\nif header :count ["eq"] "a" "1" { keep; }', 1),
    # one error per test for its header / envelope part list: the first wrong one
    ('if address ["to", "x", "y"] "a" { keep; }', 1),
    ('if address ["", "x"] "a" { keep; }', 1),
    ('require "envelope";\nif envelope :all ["frop", "frip"] "x" { keep; }', 1),
    # "auth" is no address: an explicit address part on it is an error
    ('require "envelope";\nif envelope :localpart "auth" "x" { keep; }', 1),
    ('require ["envelope", "subaddress"];\nif envelope :user ["to", "auth", "auth"] "x" { keep; }', 1),
    ('require "envelope";\nif envelope "auth" "x" { keep; }', 0),
    # tags that may be repeated (the last counts) and some that may not
    ('require "index";\nif header :index 1 :last :last "a" "b" { keep; }', 0),
    ('require "mime";\nif exists :mime :anychild :anychild "x" { keep; }', 0),
    ('require "foreverypart";\nforeverypart :name "a" :name "b" { break :name "b" :name "b"; }', 0),
    ('require "include";\ninclude :once :optional :once :optional "inc1";', 0),
    ('require "vacation";\nvacation :handle "a" :handle "b" "r";', 0),
    ('require "editheader";\ndeleteheader :index 1 :last :last "a";', 1),
    ('require "duplicate";\nif duplicate :last :last { keep; }', 1),
    ('require "include";\ninclude :personal :personal "inc1";', 1),
    # extracttext's modifiers are set's: two of one precedence are an error
    ('require ["foreverypart", "extracttext", "variables"];\nforeverypart { extracttext :lower :upper "v"; }', 1),
    ('require ["foreverypart", "extracttext", "variables"];\nforeverypart { extracttext :lower :lower "v"; }', 1),
    # an invalid encoded character ends its command's arguments: one error, no further checks
    ('require "encoded-character";\nif header :is "a" "${unicode:D800}${unicode:D801}" { keep; }', 1),
    ('require "encoded-character";\nif header :is "${unicode:110000}" ["${unicode:DFFF}"] { keep; }', 1),
    ('require ["encoded-character", "regex"];\nif header :regex "a" ["(", "${unicode:D800}"] { frop; }', 2),
    ('require "encoded-character";\nif header :is "a" "${unicode:D800}" { keep; }\n'
     'if header :is "a" "${unicode:D800}" { keep; }', 2),
    # the first invalid regex of a key list only
    ('require "regex";\nif header :regex "a" ["(", "["] { keep; }', 1),
    ('require "regex";\nif anyof(header :regex "a" "(", header :regex "a" "[") { keep; }', 2),
    # with two arguments, the flag commands' first is one variable name, not a list
    ('require ["imap4flags", "variables"];\nsetflag ["a"] "x";', 1),
    ('require "imap4flags";\naddflag ["a", "b"] "x";', 1),
    ('require ["imap4flags", "variables"];\nif hasflag ["a", "b"] "x" { keep; }', 0),
    ('require ["imap4flags", "variables"];\nif hasflag ["1a", "b.c"] "x" { keep; }', 1),
    # an unknown command is not one that makes a later require misplaced
    ('frop;\nrequire "fileinto";', 1),
    ('header "a" "b";\nrequire "fileinto";', 1),
    ('frop;\nkeep;\nrequire "fileinto";', 2),
    # comparator names do not depend on ASCII case (a capability name does)
    ('if header :comparator "I;OCTET" "a" "b" { keep; }', 0),
    ('require "comparator-i;ascii-numeric";\nif header :comparator "I;ASCII-NUMERIC" :contains "a" "1" { keep; }', 1),
    ('require "comparator-I;ASCII-NUMERIC";', 1),
    # global declares identifiers, not namespaced names
    ('require ["include", "variables"];\nglobal ["global.a", "b.c"];', 2),
    ('require ["include", "variables"];\nglobal ["global", "A"];', 0),
    # one error for set's modifiers, and for notify's arguments (the first in sievec's order)
    ('require "variables";\nset :lower :upper :lowerfirst :upperfirst "a" "b";', 1),
    ('require ["enotify", "variables"];\nset :encodeurl :encodeurl :encodeurl "a" "b";', 1),
    ('require "enotify";\nnotify :from "a@b.c" :importance "4" :options ["a b=c"] "mailto:x@y.z";', 1),
    ('require "enotify";\nnotify :options ["a", "b"] :from "bad" "frop:x";', 1),
    # notify option names and values, and mailto header fields, as RFC 5435 / RFC 5322 have them
    ('require "enotify";\nnotify :options ["a+b=c"] "mailto:a@b.c";', 1),
    ('require "enotify";\nnotify :options ["a_b.c-d=e f", "1=x"] "mailto:a@b.c";', 0),
    ('require "enotify";\nnotify :options ["a=b\nc"] "mailto:a@b.c";', 1),
    ('require "enotify";\nnotify "mailto:a@b.c?subject=%0D%0Abcc:%20x@y.z";', 1),
    ('require "enotify";\nif valid_notify_method "mailto:a@b.c?x-a=%01" { keep; }', 0),
    ('require "enotify";\nnotify "mailto:a@b.c?subject=a%09b&body=a%0D%0Ab";', 0),
    # :seconds without vacation-seconds is an unknown tag: reported once
    ('require "vacation";\nvacation :seconds 60 "r";\nvacation :seconds 60 "r";', 1),
    ('require "vacation-seconds";\nvacation :seconds 60 :days 1 "r";', 1),
    # an invalid annotation name is a warning (the test is false at run time)
    ('require "mboxmetadata";\nif metadataexists "INBOX" ["a", "/private/"] { keep; }', 0),
    ('require "servermetadata";\nif servermetadata :is "shared" "x" { keep; }', 0),
]


@pytest.mark.parametrize("src,count", REGRESSIONS, ids=[f"r{i}" for i in range(len(REGRESSIONS))])
def test_regression(src, count):
    errs = owlery_errors(src)
    assert len(errs) == count, errs


def test_generation_is_deterministic_and_sized():
    a, b = generate(SEED), generate(SEED)
    assert a == b
    assert 500 <= len(a) <= 1500, len(a)
    assert generate(SEED + 1) != a
    # every template compiles as written, else its mutations test nothing
    bad = [(s, owlery_errors(s)) for s in (_render_mutation(t, t.args, t.req, t.ctx) for t in TEMPLATES)
           if owlery_errors(s)]
    assert not bad, bad


def private_sievec(prefix: str, extra_extensions: str = ""):
    """A module fixture's body (`yield from private_sievec(...)`): a Sievec in a directory of
    its own, removed afterwards; `extra_extensions` (" +imapflags ...") enables more."""
    if not os.path.exists(SIEVEC):
        pytest.fail("sievec (Debian dovecot-sieve) is not installed: scripts/install-deps --test installs it")
    home = tempfile.mkdtemp(prefix=prefix)
    try:
        yield Sievec(home, extra_extensions)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_generated_compile_errors_match_sievec():
    assert os.path.exists(SIEVEC), "sievec missing: apt-get install dovecot-sieve (scripts/install-deps)"
    scripts = generate(SEED)
    settings = owlery_settings()
    home = tempfile.mkdtemp(prefix="owlery-sievec-gen-")
    start = time.monotonic()
    try:
        sievec = Sievec(home)
        diffs, crashed = [], []
        # sievec runs two at a time (a process each, ~30 ms): the suite has two cores
        halves = [scripts[0::2], scripts[1::2]]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            verdicts = list(pool.map(lambda k: [sievec.errors(src, k) for src in halves[k]], (0, 1)))
        theirs_all: list = [None] * len(scripts)
        theirs_all[0::2], theirs_all[1::2] = verdicts
        for src, theirs in zip(scripts, theirs_all, strict=True):
            if theirs is None:
                crashed.append(src)
                continue
            ours = owlery_errors(src, settings)
            if differs(theirs, ours) and not allowed(src):
                diffs.append((src, theirs, ours))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"{len(scripts)} scripts in {time.monotonic() - start:.1f}s; sievec crashed on {crashed}")
    shown = "\n\n".join(f"--- script:\n{s}\n--- sievec (compiled: {t[0]}, {len(t[1])} errors): {t[1]}\n"
                        f"--- owlery ({len(o)}): {o}" for s, t, o in diffs[:15])
    assert not diffs, f"{len(diffs)} of {len(scripts)} scripts differ from sievec:\n{shown}"
    # sievec 0.5.19 dies (SIGSEGV) on `hasflag :is` without arguments; nothing else
    assert all("hasflag :is {" in s for s in crashed), crashed
