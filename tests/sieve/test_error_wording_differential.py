"""Differential of compile error and warning WORDING against Pigeonhole's sievec: the ordered
(line, severity, text) of every message, for every extension.

Pigeonhole-style testsuites check errors with `test_error :index N :matches "*...*"` and
`:contains`, so the words matter, not only the counts the other differentials compare
(tests/sieve/test_compile_errors_generated.py: refuse/accept and error counts over every
extension; tests/sieve/test_syntax_recovery_differential.py: counts and the first line of
syntax errors; tests/sieve/test_compile_errors_reference.py: core wording).

Scripts: those generators' scripts (the generated compile errors of `generate(SEED)`, the
reference CASES, the syntax-recovery scripts of its seed). Each is compiled by
sieve.validator.compile_source (the Settings of tests/sieve/differential/runner.py, includes
resolved as Pigeonhole does) and by Debian's sievec 0.5.19 (tests/sieve/test_compile_errors_generated.Sievec,
run as `nobody` when the tests run as root). sievec's "script: line N: error: " prefix and
final "." are removed, and the closing "validation failed"/"parse failed" dropped. The two
lists are aligned (difflib) and each pair that differs, or message one side lacks, is counted
under its SHAPE: the text with quoted names and numbers replaced by placeholders, so that a
family shows once however many scripts hit it.

Count differences are the other differentials' subject (their ALLOWED tables apply here
too: a script they excuse is skipped). ALLOWED here lists the wording families kept on purpose,
each with its reason.

Run-time errors: RUNTIME holds scripts that fail while running (values built with variables)
and the words sieve-test logs for each; test_runtime_error_wording checks Owlery's Result.errors
against them without sieve-test, test_runtime_wording_is_what_sieve_test_logs checks the table
against sieve-test (tests/sieve/differential/pigeonhole.py).

CI: CI_SCRIPTS scripts drawn with SEED (~3-6 s). By hand, every script of other seeds (~2,100,
8-20 s): `python -m tests.sieve.test_error_wording_differential N SEED` (N=0 takes them all;
SHOW=k prints k examples per family).
"""

from __future__ import annotations

import concurrent.futures
import difflib
import os
import random
import re
import shutil
import sys
import tempfile
import time

import pytest

from sieve.errors import SieveCompileError
from sieve.validator import compile_source
from tests.sieve import test_compile_errors_generated as generated
from tests.sieve import test_compile_errors_reference as reference
from tests.sieve import test_syntax_recovery_differential as recovery

SEED = 5435
CI_SCRIPTS = 250
RECOVERY_SCRIPTS = 600
FINAL = generated.FINAL

Message = tuple  # (line or None, severity, text)


def corpus(seed: int, recovery_scripts: int = RECOVERY_SCRIPTS) -> list[str]:
    """The scripts the three generators make with `seed` (and the reference cases), in a
    stable order, no repeats."""
    out = generated.generate(seed)
    out += [src for src, _, _ in reference.CASES] + reference.VALID
    out += recovery.generate(recovery_scripts, seed)
    return list(dict.fromkeys(out))


def sample(n: int, seed: int) -> list[str]:
    """`n` scripts of corpus(seed) drawn with `seed` (n <= 0: all of them)."""
    scripts = corpus(seed)
    if n <= 0 or n >= len(scripts):
        return scripts
    return random.Random(seed).sample(scripts, n)


# --- both compilers ----------------------------------------------------------------------

def owlery(src: str, settings) -> list[Message]:
    try:
        script = compile_source(recovery.encode(src), name="t", settings=settings, loader=generated._loader)
    except SieveCompileError as e:
        diags = e.diagnostics
    else:
        diags = script.warnings
    return [(d.line or None, d.severity, d.message) for d in diags if d.message not in FINAL]


_LINE = re.compile(r"^[^:]*: (?:line (\d+): )?(error|warning): (.*)$")


class Runner(generated.Sievec):
    def messages(self, src: str, slot: int) -> list[Message] | None:
        """sievec's messages on `src`, None when it crashed (no reference)."""
        path = os.path.join(self.home, "s", f"w{slot}.sieve")
        with open(path, "wb") as f:
            f.write(recovery.encode(src))      # (the same text as ours: lines at the end count)
        if self.uid is not None:
            os.chown(path, self.uid, self.gid)
        p = self._run([generated.SIEVEC, path, "-"], env=self.env)
        err = p.stderr.decode("utf-8", "replace")
        if p.returncode < 0 or "Panic:" in err or p.returncode not in (0, 89):
            return None
        out = []
        for x in err.splitlines():
            m = _LINE.match(x)
            if not m:
                continue
            text = m.group(3)[:-1] if m.group(3).endswith(".") else m.group(3)
            if text not in FINAL:
                out.append((int(m.group(1)) if m.group(1) else None, m.group(2), text))
        return out


# --- shapes and differences ------------------------------------------------------------------

_QUOTED = re.compile(r"'[^']*'|`[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\b\d+\b")


def shape(text: str) -> str:
    """`text` with quoted names and numbers as placeholders: one family per wording."""
    return _NUMBER.sub("N", _QUOTED.sub("Q", text))


def pairs(theirs: list[Message], ours: list[Message]):
    """Aligned (sievec, owlery) messages that differ; None stands for a message one side lacks.
    Aligned on the text shapes, so that one extra message does not shift the rest."""
    a = [f"{s}:{shape(t)}" for _, s, t in theirs]
    b = [f"{s}:{shape(t)}" for _, s, t in ours]
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out += [(t, o) for t, o in zip(theirs[i1:i2], ours[j1:j2], strict=True) if t != o]
        elif op == "replace" and i2 - i1 == j2 - j1:
            out += list(zip(theirs[i1:i2], ours[j1:j2], strict=True))
        else:
            out += [(t, None) for t in theirs[i1:i2]] + [(None, o) for o in ours[j1:j2]]
    return out


def family(t: Message | None, o: Message | None) -> str:
    """The key a difference is counted under."""
    if t is None:
        return f"only owlery: {o[1]}: {shape(o[2])}"
    if o is None:
        return f"only sievec: {t[1]}: {shape(t[2])}"
    if t[1:] == o[1:]:
        return f"line: {t[1]}: {shape(t[2])}"
    return f"sievec {t[1]}: {shape(t[2])}\n    owlery {o[1]}: {shape(o[2])}"


def _other_differential_excuses(src: str) -> str | None:
    return generated.allowed(src) or recovery.allowed(src)


_ANY = r""
# (regex searched in the script, or a predicate; regex searched in the family key; reason)
ALLOWED: list[tuple] = [
    (_ANY, r"^only owlery: warning: (folder name .* will be refused by the mail store|empty folder name for "
           r"fileinto|specified :addresses item .* is not a valid address|ihave: .* is not expanded)",
     "Owlery's own advisory warnings (the script compiles on both sides): what delivery will do with a "
     "folder the store refuses or an empty one, an :addresses item that names no one, an ihave that "
     "cannot be true"),
    (_ANY, r"^only owlery: warning: specified :zone argument",
     "RFC 5322 3.3: a zone's minutes are 00-59; sievec takes \"+0160\" without a word"),
    (_ANY, r"^only sievec: warning: (specified :(seconds|days) value .* (under the minimum|over the maximum)|"
           r"specified header field name)",
     "sievec warns about a tag's value while reading the tag, before it finds the command's error "
     "(a repeated tag, a bad argument after it); Owlery checks the values of a command whose "
     "arguments are right only (the errors agree)"),
    (_ANY, r"^only sievec: warning: no newline \(CRLF\) at end of hash comment",
     "sievec's lexer warns about a final hash comment even when the parse failed before it; Owlery "
     "looks at it only in a script that parsed"),
    (r"deleteheader(\s+:\w+(\s+\d+)?)*\s+\d", r"deleteheader command expects a string",
     "RFC 5293 5: deleteheader's field name is a string; sievec takes a string list (the wording says "
     "which each expects)"),
    (r"\$\{hex:00\}", r"included personal script|include: invalid script name",
     "RFC 5228 2.4.2.4 and RFC 6609 2: a NUL cannot be in a script name; sievec cuts the name at the "
     "NUL (a C string) and looks for the rest"),
    (r":specialuse \"[^\"]*\";", r"specialuse tag: invalid special-use flag",
     "the tag took the folder name: sievec checks the flag before the positional count, Owlery the "
     "count first (one error either way)"),
]


def allowed(src: str, key: str) -> str | None:
    for pat, fam, reason in ALLOWED:
        if re.search(fam, key) and (pat(src) if callable(pat) else re.search(pat, src)):
            return reason
    return None


def compare(scripts: list[str], workers: int = 2):
    """(families {key: [(src, sievec pair side, owlery side)]}, crashed, excused {reason: n}, seconds)."""
    start = time.monotonic()
    home = tempfile.mkdtemp(prefix="owlery-sievec-wording-")
    try:
        runner = Runner(home)
        parts = [scripts[k::workers] for k in range(workers)]
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            got = list(pool.map(lambda k: [runner.messages(s, k) for s in parts[k]], range(workers)))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    theirs_all: list = [None] * len(scripts)
    for k in range(workers):
        theirs_all[k::workers] = got[k]
    settings = generated.owlery_settings()
    families: dict[str, list] = {}
    crashed, excused = [], {}
    for src, theirs in zip(scripts, theirs_all, strict=True):
        if theirs is None:
            crashed.append(src)
            continue
        ours = owlery(src, settings)
        diffs = pairs(theirs, ours)
        if not diffs:
            continue
        other = _other_differential_excuses(src)
        for t, o in diffs:
            key = family(t, o)
            reason = allowed(src, key) or other
            if reason:
                excused[reason[:70]] = excused.get(reason[:70], 0) + 1
            else:
                families.setdefault(key, []).append((src, t, o))
    return families, crashed, excused, time.monotonic() - start


def show(families: dict, examples: int = 1) -> str:
    out = []
    for key, hits in sorted(families.items(), key=lambda kv: -len(kv[1])):
        out.append(f"{len(hits):4d} {key}")
        for src, t, o in hits[:examples]:
            out.append(f"       script {src!r}\n       sievec {t}\n       owlery {o}")
    return "\n".join(out)


# --- run-time errors ------------------------------------------------------------------------
# (script after `require [RT_REQUIRE..., extension]`, the error sieve-test logs for it at run
# time, as Owlery's Result.errors must word it after its "line N: ")
RT_REQUIRE = '"variables", "encoded-character"'
RUNTIME: list[tuple[str, str, str]] = [
    ("editheader", 'set "n" "X A"; addheader "${n}" "v";', "addheader action: specified field name `X A' is invalid"),
    ("editheader", 'set "v" "a${hex:00}b"; addheader "X-A" "${v}";',
     "addheader action: specified value `a' is invalid (contains NUL character)"),
    ("editheader", 'set "n" "X A"; deleteheader "${n}";', "deleteheader action: specified field name `X A' is invalid"),
    ("enotify", 'set "m" "frop:x"; notify "${m}";', "invalid notify method 'frop'"),
    ("enotify", 'set "m" "x y"; notify "${m}";', "invalid scheme part for method URI 'x y'"),
    ("enotify", 'set "m" "mailto:nobody"; notify "${m}";',
     "notify_action: mailto URI: invalid recipient 'nobody': invalid or lonely local part 'nobody' (expecting '@')"),
    ("enotify", 'set "m" "mailto:a@b.c?subject=%"; notify "${m}";', "notify_action: mailto URI: invalid % encoding"),
    ("enotify", 'set "f" "bad"; notify :from "${f}" "mailto:a@b.c";',
     "notify_action: specified :from address 'bad' is invalid for the mailto method: invalid or lonely local "
     "part 'bad' (expecting '@')"),
    ("", 'set "a" "a@"; redirect "${a}";', "specified redirect address 'a@' is invalid: invalid or missing domain"),
    ("", 'set "a" "nobody"; redirect "${a}";',
     "specified redirect address 'nobody' is invalid: invalid or lonely local part 'nobody' (expecting '@')"),
    ("", 'set "a" ""; redirect "${a}";', "specified redirect address '' is invalid: empty address"),
    ("vacation", 'set "f" "a@"; vacation :from "${f}" "r";',
     "specified :from address 'a@' is invalid for vacation action: invalid or missing domain"),
    ("fileinto", 'set "f" "${hex:ff}"; fileinto "${f}";', "fileinto command: invalid folder name `\ufffd' specified: invalid utf-8"),
    ("fileinto special-use", 'set "f" "Junk"; fileinto :specialuse "${f}" "INBOX";',
     "specialuse tag: invalid special-use flag `Junk' specified"),
    ("special-use", 'set "f" "Junk"; if specialuse_exists "${f}" { keep; }',
     "specialuse_exists test: invalid special-use flag `Junk' specified"),
    ("regex", 'set "p" "a{2,1}"; if header :regex "subject" "${p}" { keep; }',
     "invalid regular expression 'a{2,1}' for regex match: invalid content of \\{\\}"),
    ("regex", 'set "p" "*a"; if string :regex "x" "${p}" { keep; }',
     "invalid regular expression '*a' for regex match: invalid preceding regular expression"),
    ("regex", 'set "p" "a{1"; if header :regex "subject" "${p}" { keep; }',
     "invalid regular expression 'a{1' for regex match: unmatched \\{"),
    ("regex", 'set "p" "[[:frop:]]"; if header :regex "subject" "${p}" { keep; }',
     "invalid regular expression '[[:frop:]]' for regex match: invalid character class name"),
    ("regex", 'set "p" "(a)\\\\2"; if header :regex "subject" "${p}" { keep; }',
     "invalid regular expression '(a)\\2' for regex match: invalid back reference"),
    ("ihave", 'if ihave "frop" { keep; } else { error "custom failure"; }', "custom failure"),
    ("enotify", 'set "m" "mailto:a@b.c?x y=1"; notify "${m}";',
     "notify_action: mailto URI: invalid character ' ' in header field name part"),
    ("enotify", 'set "m" "mailto:a@b.c?subject=%0D%0Ax"; notify "${m}";',
     "notify_action: mailto URI: invalid header field body"),
    ("editheader", 'set "n" "X:A"; addheader "${n}" "v";', "addheader action: specified field name `X:A' is invalid"),
    ("editheader", 'set "n" "x${hex:e9}"; addheader "${n}" "v";', "addheader action: specified field name `x...' is invalid"),
    ("", 'set "a" "a@b.c, d@e.f"; redirect "${a}";',
     "specified redirect address 'a@b.c, d@e.f' is invalid: not a single address (found ',')"),
    ("", 'set "a" "<a@b.c"; redirect "${a}";', "specified redirect address '<a@b.c' is invalid: missing '>'"),
    ("", 'set "a" "a@b.c x"; redirect "${a}";',
     "specified redirect address 'a@b.c x' is invalid: address ends in invalid characters"),
    ("", 'set "a" "@b.c"; redirect "${a}";', "specified redirect address '@b.c' is invalid: invalid local part"),
]
RT_MESSAGE = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n"


def _runtime_script(ext: str, body: str) -> str:
    return "require [" + ", ".join([RT_REQUIRE] + [f'"{e}"' for e in ext.split()]) + "];\n" + body


def _owlery_runtime_errors(src: str) -> list[str]:
    import datetime as dt

    from sieve.api import Envelope, MemoryHost, compile_script, run
    settings = generated.owlery_settings()
    result = run(compile_script(src, name="script", settings=settings), RT_MESSAGE,
                 Envelope(mail_from="a@example.org", rcpt_to="b@example.net"), host=MemoryHost(),
                 settings=settings, now=dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc))
    return [re.sub(r"^line \d+: ", "", e) for e in result.errors]


@pytest.mark.parametrize("ext,body,expected", RUNTIME, ids=[f"rt{i}" for i in range(len(RUNTIME))])
def test_runtime_error_wording(ext, body, expected):
    assert expected in _owlery_runtime_errors(_runtime_script(ext, body))


def test_runtime_wording_is_what_sieve_test_logs():
    """The RUNTIME table against sieve-test itself (tests/sieve/differential/pigeonhole.py)."""
    from pathlib import Path

    from tests.sieve.differential import pigeonhole
    from tests.sieve.differential.generator import FOLDERS
    home = Path(tempfile.mkdtemp(prefix="owlery-sieve-test-wording-"))
    try:
        os.chmod(home, 0o755)
        box = pigeonhole.Pigeonhole(home / "ph", FOLDERS)
        missing = [(body, expected) for ext, body, expected in RUNTIME
                   if f"error: {expected}." not in box.run(_runtime_script(ext, body).encode(), RT_MESSAGE,
                                                           "a@example.org", "b@example.net", "b@example.net").log]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert not missing, missing


def test_generators_give_a_stable_corpus():
    assert corpus(SEED, 20) == corpus(SEED, 20) != corpus(SEED + 1, 20)
    assert sample(50, SEED) == sample(50, SEED) != sample(50, SEED + 1)


def test_error_wording_matches_sievec():
    assert os.path.exists(generated.SIEVEC), "sievec missing: apt-get install dovecot-sieve (scripts/install-deps)"
    scripts = sample(CI_SCRIPTS, SEED)
    families, crashed, _excused, secs = compare(scripts)
    print(f"{len(scripts)} scripts in {secs:.1f}s; sievec crashed on {len(crashed)}")
    assert not families, f"{len(families)} message families differ from sievec:\n{show(families)}"


def main(argv: list[str]) -> int:
    n = int(argv[1]) if len(argv) > 1 else 0
    seed = int(argv[2]) if len(argv) > 2 else SEED
    scripts = sample(n, seed)
    families, crashed, excused, secs = compare(scripts)
    hits = sum(len(h) for h in families.values())
    print(f"{len(scripts)} scripts (seed {seed}) in {secs:.1f}s: {len(families)} families differ "
          f"({hits} messages), sievec crashed on {len(crashed)}")
    for k, c in sorted(excused.items(), key=lambda x: -x[1]):
        print(f"  {c:5d} allowed: {k}...")
    print(show(families, int(os.environ.get("SHOW", "1"))))
    return 1 if families else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
