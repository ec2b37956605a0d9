"""Differential test of the generator's opt-in shapes (`--shapes all` of scripts/sieve-differential:
ihave guards, variables modifiers on match variables, HTML parts, edges, matchvars (match variables,
relational lists, set/string, flag variables, redirect duplicates, named loops), mimeactions (RFC 5703
loops, mime tests, extracttext and relational tests on odd MIME trees), and include: a main
script with personal and global scripts it includes): a seeded run with them on must show no difference
tests/sieve/differential/deviations.toml does not explain. CI runs PAIRS pairs of SEED with the
other shapes (ihave, modifiers, html, edges, matchvars, mimeactions: about 8 s on two idle cores) and INCLUDE_PAIRS
pairs of the include shape (about 6 s), all of them whatever the machine's load. The shapes are drawn from other random
streams, so the cases a seed gives without them stay what they were (test_differential.py's seed,
and the deviations found on old seeds, depend on that).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import re

import pytest

from sieve.api import SieveCompileError, compile_script
from tests.sieve.differential import normalise
from tests.sieve.differential.generator import SHAPES_ALL, make_case
from tests.sieve.differential.runner import owlery_settings, parse_shapes, run_owlery
from tests.sieve.differential.test_differential import agreed_run, scratch_runner

SEED = 20261206
PAIRS = 450
# the shapes of PAIRS (include and probes have their own runs: mixed with the others, include
# replaces a third of the scripts and probes makes too many of them errors on one side or the
# other for the run to test much else; test_probes_shape_generates_each_probe checks what it makes)
SHAPES = SHAPES_ALL - {"include", "probes"}
INCLUDE_PAIRS = 400
# what the include shape must have exercised in INCLUDE_PAIRS pairs (a feature the generator names)
INCLUDE_FEATURES = ("include:nested", "include:once", "include:optional", "include:missing", "include:cycle",
                    "include:bad-name", "include:return", "include:global-var", "include:global-namespace",
                    "include:global-decl-main", "include:global-decl-sub", "include:flags", "include:loc-global",
                    "include:loc-personal", "include:sub-compile-error")

# what the matchvars shape must have exercised in PAIRS pairs (a feature the generator names)
MATCHVARS_FEATURES = ("matchvars:matches", "matchvars:regex", "matchvars:sticky", "matchvars:relational",
                      "matchvars:setstring", "matchvars:redirect", "matchvars:loops", "matchvars:flagvars",
                      "matchvars:dates", "matchvars:scores")

# what the mimeactions shape must have exercised in PAIRS pairs (a feature the generator names)
MIMEACTIONS_FEATURES = ("mimeactions:loop", "mimeactions:nested", "mimeactions:extract", "mimeactions:first",
                        "mimeactions:modifiers", "mimeactions:top", "mimeactions:relational", "mimeactions:type",
                        "mimeactions:subtype", "mimeactions:contenttype", "mimeactions:param", "mimeactions:exists",
                        "mimeactions:address", "mimeactions:specialuse", "mimeactions:mailbox")

# sha256 over the first 300 cases of test_differential.SEED without shapes, as the generator gave
# them before the shapes existed: a change here changes what every old seed generates.
OLD_SEED, OLD_CASES = 20240917, 300
OLD_DIGEST = "8ae0759d7a72edc16ebfaefd96ca8f17ac816bfbb39b9354828c96dbc2e157b9"


@pytest.fixture(scope="module")
def runner():
    yield from scratch_runner(SHAPES)


@pytest.fixture(scope="module")
def include_runner():
    yield from scratch_runner(frozenset({"include"}))


@pytest.fixture(scope="module")
def probes_runner():
    yield from scratch_runner(frozenset({"probes"}))


PROBES_PAIRS = 300


def test_generated_probes_pairs_agree_with_pigeonhole(probes_runner):
    """The shapes hand probes found differences in (settled, or argued in deviations.toml)."""
    rep = agreed_run(probes_runner, SEED, PROBES_PAIRS)
    assert rep.features["shape:probes"] == PROBES_PAIRS


def test_generated_pairs_with_new_shapes_agree_with_pigeonhole(runner):
    rep = agreed_run(runner, SEED, PAIRS)
    # every shape is exercised by the run
    for shape in SHAPES:
        assert rep.features["shape:" + shape] > PAIRS // 4, dict(rep.features)
    for feature in MATCHVARS_FEATURES + MIMEACTIONS_FEATURES:
        assert rep.features[feature] > PAIRS // 40, (feature, dict(rep.features))


def test_generated_include_pairs_agree_with_pigeonhole(include_runner):
    rep = agreed_run(include_runner, SEED, INCLUDE_PAIRS)
    assert rep.features["shape:include"] == INCLUDE_PAIRS
    for feature in INCLUDE_FEATURES:
        assert rep.features[feature] > 0, (feature, dict(rep.features))
    # broken includes (missing, circular, not compiling) are refused by both, not most pairs
    refused = sum(n for (_, b), n in rep.statuses.items() if b == "compile-error")
    assert INCLUDE_PAIRS // 20 < refused < INCLUDE_PAIRS // 3, dict(rep.statuses)


def test_both_engines_read_the_same_personal_and_global_scripts(include_runner):
    """A hand-written include pair through the real sieve-test and Owlery: "lib" exists in both
    directories with different contents, a global variable set in one is read in another, flags
    set in an included script reach the stores of a script without imap4flags."""
    case = dataclasses.replace(
        make_case(SEED, 0, frozenset({"include"})),
        script=b'require ["include", "variables", "fileinto"];\r\nglobal "g";\r\n'
               b'include "lib"; include :global "lib";\r\nif string "${g}" "p+global" { fileinto "Bar"; }\r\n',
        scripts=(("personal", "lib", b'require ["include", "variables", "fileinto"]; global "g"; set "g" "p";'
                                     b'fileinto "Foo";'),
                 ("global", "lib", b'require ["include", "imap4flags", "variables"]; global "g";'
                                   b'set "g" "${g}+global"; addflag "Work"; keep;')),
        message=b"From: a@example.com\r\nTo: rcpt@example.org\r\nSubject: hi\r\n\r\nb\r\n",
        mail_from="a@example.com", rcpt_to="rcpt@example.org", orig_rcpt="rcpt@example.org")
    raw = include_runner._ph().run(case.script, case.message, case.mail_from, case.rcpt_to, case.orig_rcpt,
                                   scripts=case.scripts)
    theirs = normalise.from_pigeonhole(raw)
    ours = run_owlery(case, include_runner.settings)
    assert theirs.status == "ok", raw.log
    assert theirs.stores == (("Bar", ("Work",)), ("Foo", ()), ("INBOX", ("Work",))), raw.log
    assert not ours.differences(theirs), (ours, theirs)
    # and a missing include is Pigeonhole's compile error, Owlery's failed run (fallback keep)
    missing = dataclasses.replace(case, scripts=case.scripts[:1])
    raw = include_runner._ph().run(missing.script, missing.message, missing.mail_from, missing.rcpt_to,
                                   missing.orig_rcpt, scripts=missing.scripts)
    assert normalise.from_pigeonhole(raw).status == "compile-error", raw.log
    assert run_owlery(missing, include_runner.settings).status == "error"
    assert run_owlery(missing, include_runner.settings, includes_at_compile_time=True).status == "compile-error"


def test_without_shapes_old_seeds_generate_what_they_did():
    h = hashlib.sha256()
    for i in range(OLD_CASES):
        c = make_case(OLD_SEED, i)
        h.update(repr((c.script, c.message, c.mail_from, c.rcpt_to, c.orig_rcpt)).encode())
    assert h.hexdigest() == OLD_DIGEST


def test_shapes_change_the_cases_and_stay_a_pure_function():
    a, b = make_case(SEED, 5, SHAPES_ALL), make_case(SEED, 5, SHAPES_ALL)
    assert (a.script, a.message) == (b.script, b.message)
    plain = [make_case(SEED, i) for i in range(20)]
    shaped = [make_case(SEED, i, SHAPES_ALL) for i in range(20)]
    assert sum(p.script != s.script for p, s in zip(plain, shaped)) > 10
    assert any(b"text/html" in s.message and b"</html>" in s.message for s in shaped)
    assert any(b"ihave" in s.script for s in shaped)
    assert any(s.scripts and b"include" in s.script for s in shaped)
    assert any(b"X-MV" in s.script for s in shaped)
    assert any(b"foreverypart" in s.script and b"X-Part-Num" in s.message for s in shaped)


def test_mimeactions_shape_generates_valid_scripts_on_odd_mime_messages():
    """The mimeactions shape alone: its own MIME message in every case (nested multiparts,
    message/rfc822 parts, RFC 2231 and odd parameters, missing boundaries, encoded fields) and
    scripts Owlery compiles (but for the main stream's rare missing require and odd keys)."""
    settings = owlery_settings()
    cases = [make_case(SEED, i, frozenset({"mimeactions"})) for i in range(200)]
    compiled = 0
    for c in cases:
        assert b"MIME-Version" in c.message or b"Content-Type" in c.message
        try:
            compile_script(c.script, name="script", settings=settings)
            compiled += 1
        except SieveCompileError:
            pass
    assert compiled > len(cases) * 0.8, compiled
    messages = b"".join(c.message for c in cases)
    for piece in (b"message/rfc822", b"Message/RFC822", b"multipart/alternative", b"name*=utf-8''", b"name*0=",
                  b"boundary*=", b"=?utf-8?", b"x-size=", b"Content-Disposition: attachment"):
        assert piece in messages, piece
    # a message whose own multipart has no boundary
    assert any(b"Content-Type: multipart/" in head and b"boundary" not in head.lower()
               for head in (re.split(rb"\r?\n\r?\n", c.message, maxsplit=1)[0] for c in cases))
    scripts = b"".join(c.script for c in cases)
    for piece in (b"foreverypart :name", b"break :name", b"extracttext", b":anychild", b":param", b":contenttype",
                  b'"i;ascii-numeric"', b"specialuse_exists", b"mailboxexists", b"address :mime", b"exists :mime"):
        assert piece in scripts, piece


# what the probes shape must generate in PROBES_CASES cases (a feature the generator names)
PROBES_CASES = 300
PROBES_FEATURES = ("probes:dates", "probes:dates-variable", "probes:environment", "probes:envref",
                   "probes:relational", "probes:relational-case", "probes:vacation", "probes:vacation-subject",
                   "probes:vacation-from", "probes:notify", "probes:notify-variable", "probes:hasflag",
                   "probes:hexutf8", "probes:inbox", "probes:inbox-copy", "probes:inbox-flags",
                   "probes:inbox-specialuse")


def test_probes_shape_generates_each_probe():
    """The probes shape alone: scripts Owlery compiles (but for the main stream's odd keys and
    missing requires, and an operator from a variable), with each shape hand probes found
    differences in: odd-case and unknown date-parts (literal, from variables, :count/:value),
    environment names and ${env.*} in odd case, relational operators in odd case, vacation
    :subject/:from from variables, percent-encoded mailto URIs, hasflag keys of several flags,
    ${hex:..} UTF-8 octets split across variables, keep/fileinto "INBOX" with :copy/:flags/:specialuse."""
    settings = owlery_settings()
    cases = [make_case(SEED, i, frozenset({"probes"})) for i in range(PROBES_CASES)]
    compiled = 0
    features: dict[str, int] = {}
    for c in cases:
        for f in c.features:
            features[f] = features.get(f, 0) + 1
        try:
            compile_script(c.script, name="script", settings=settings)
            compiled += 1
        except SieveCompileError:
            pass
    assert compiled > len(cases) * 0.7, compiled
    assert features.get("shape:probes") == PROBES_CASES
    for feature in PROBES_FEATURES:
        assert features.get(feature, 0) >= 3, (feature, features)
    scripts = b"".join(c.script for c in cases)
    for rx in (rb'date [^\n]*"(?:YEAR|Month|dAy|DATE|Julian|HOUR|Second|TIME|ISO8601|Zone|WEEKDAY)"',
               rb'date [^\n]*"(?:bogus|Bogus|years|month-day)"', rb'currentdate :count "eq" "\$\{dp\}"',
               rb'date :(?:count|value) "', rb'environment [^\n]*"(?:DOMAIN|Host|NAME|Phase|Version)"',
               rb"\$\{(?:ENV|Env|env)\.[A-Z]", rb':(?:value|count) "(?:GT|Gt|gT|GE|Ge|gE|LT|Lt|lT|LE|Le|lE|EQ|Eq|eQ|NE|Ne|nE)"',
               rb'set "vs" ""', rb'set "vf" "(?:not an address|a@@b)"', rb':subject "\$\{vs\}"', rb':from "\$\{vf\}"',
               rb"%C3%A9", rb"%E2%82\b", rb"%00", rb"%0D%0A", rb"\?subject=a b", rb"mailto:<n@", rb"\?subject&",
               rb"\?to=\W", rb"cc=\W", rb"(?i)bcc=", rb'hasflag :is "[^"]* [^"]*"', rb'hasflag :contains "[^"]* [^"]*"',
               rb'hasflag :matches "[^"]* [^"]*"', rb'set "hb" "\$\{ha\}\$\{(?i:hex):', rb'"\$\{ha\}\$\{hb\}"',
               rb'fileinto [^;]*:copy[^;]*"(?i:inbox)"', rb'fileinto [^;]*:flags[^;]*"(?i:inbox)"',
               rb'fileinto [^;]*:specialuse[^;]*"(?i:inbox)"', rb'"(?:Inbox|iNbOx|inbox)"',
               rb'keep[^;]*;\nfileinto [^;]*"(?i:inbox)"', rb'fileinto [^;]*"(?i:inbox)";\nkeep'):
        assert re.search(rx, scripts), rx


def test_shapes_option_parses_names_and_all():
    assert parse_shapes("all") == SHAPES_ALL
    assert parse_shapes("ihave, html") == {"ihave", "html"}
    assert "include" in parse_shapes("all") and parse_shapes("include") == {"include"}
    with pytest.raises(argparse.ArgumentTypeError):
        parse_shapes("ihave,nosuch")
