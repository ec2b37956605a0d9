"""Include and warning differences between Owlery's Sieve compiler and Pigeonhole 0.5.19, found
beside the ManageSieve differential (tests/managesieve/test_dovecot_differential_s19.py): each
case runs through both, sievec (or managesieved, for uploads; sieve-test for a run) and Owlery.

- `include :once` of the top script (by its own name): the running script counts as included,
  so the include does nothing (RFC 6609 3.2); sievec compiles it, and managesieved activates
  it. A loop through it (top -> b -> :once top, top including b without :once) is still
  "circular include" (RFC 6609 3.3), as sievec says. At run time the body runs once (delivery
  knows the top script by its text: it reads it through the "active" link).
- Warnings of an included script are the including script's too (sievec, and managesieved's
  OK (WARNINGS) on PUTSCRIPT and SETACTIVE).
- Upload (compile_script(upload=True), with the stored scripts as loader, as managesieved
  compiles PUTSCRIPT and CHECKSCRIPT): a missing :personal or :global include and a circular
  one are warnings "(ignored during upload)", not errors (RFC 6609 3.2: the scripts may be
  uploaded in any order); the uploaded script is not yet the stored one of its name.
- Warnings sievec gives and Owlery did not: vacation :days/:seconds under the minimum, an
  invalid IMAP flag in setflag/addflag/removeflag's one literal string, deleteheader of a field
  that may not be deleted, a hash comment cut short by the end of the file.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import re
import subprocess

import pytest

from owlery.settings import Settings
from owlery.state.memory_store import MemoryStore
from sieve.api import Envelope, MemoryHost, SieveCompileError, compile_script, run
from sieve.delivery.executor import DeliveryExecutor
from sieve.delivery.users import MailUser
from sieve.validator import compile_source
from tests.sieve.test_compile_errors_generated import SIEVEC, owlery_settings, private_sievec

R = 'require "include";\n'
FINAL = {"validation failed", "code generation failed", "parse failed"}
NOTIFY_WARN = 'require "enotify";\nnotify "mailto:";\n'          # a warning on both
COUNTER = 'require ["include", "variables", "fileinto"];\nglobal "n";\nset "n" "${n}x";\n'


@dataclasses.dataclass
class Case:
    """A compile: `top` (at `top_loc`: personal, global, or "s", stored nowhere include
    looks) and the scripts include finds, {(location, name): source}. "%" in names and
    sources becomes the case's own prefix (the cases share one sievec home)."""

    top_loc: str
    top_name: str
    top: str
    scripts: dict = dataclasses.field(default_factory=dict)


INCLUDE_CASES = {
    "self-once": Case("personal", "%self", R + 'include :once "%self";\nkeep;\n'),
    "self-once-optional": Case("personal", "%self", R + 'include :once :optional "%self";\nkeep;\n'),
    "self-once-not-stored": Case("s", "%self", R + 'include :once "%self";\nkeep;\n'),
    "self-once-global": Case("global", "%self", R + 'include :once :global "%self";\nkeep;\n'),
    "self-once-twice": Case("personal", "%self", R + 'include :once "%self";\ninclude :once "%self";\n'),
    "self": Case("personal", "%self", R + 'include "%self";\nkeep;\n'),
    "loop-through-top-once": Case("personal", "%a", R + 'include "%b";\n',
                                  {("personal", "%b"): R + 'include :once "%a";\n'}),
    "once-both-ways": Case("personal", "%a", R + 'include :once "%b";\n',
                           {("personal", "%b"): R + 'include :once "%a";\n'}),
    "loop": Case("personal", "%a", R + 'include "%b";\n', {("personal", "%b"): R + 'include "%a";\n'}),
    "included-warns": Case("personal", "%t", R + 'include "%w";\n', {("personal", "%w"): NOTIFY_WARN}),
    "included-twice-warns-once": Case("personal", "%t", R + 'include "%w";\ninclude "%w";\n',
                                      {("personal", "%w"): NOTIFY_WARN}),
    "nested-warnings": Case("personal", "%t", R + 'include :global "%m";\n', {
        ("global", "%m"): 'require ["include", "enotify"];\nnotify "mailto:";\ninclude :personal "%w";\n',
        ("personal", "%w"): NOTIFY_WARN}),
    "missing-personal": Case("personal", "%t", R + 'include "%nosuch";\n'),
    "missing-global": Case("personal", "%t", R + 'include :global "%nosuch";\n'),
}

WARNING_CASES = {
    "vacation-days-0": 'require "vacation";\nvacation :days 0 "x";\n',
    "vacation-days-1": 'require "vacation";\nvacation :days 1 "x";\n',
    "vacation-seconds-10": 'require "vacation-seconds";\nvacation :seconds 10 "x";\n',
    "vacation-seconds-86400": 'require "vacation-seconds";\nvacation :seconds 86400 "x";\n',
    "addflag-bogus": 'require "imap4flags";\naddflag "\\\\Bogus";\n',
    "setflag-recent": 'require "imap4flags";\nsetflag "\\\\Recent";\n',
    "removeflag-keyword": 'require "imap4flags";\nremoveflag "a(b";\n',
    "addflag-two-in-one": 'require "imap4flags";\naddflag "x \\\\Bogus a(b";\n',
    "addflag-two-commands": 'require "imap4flags";\naddflag "\\\\Bogus";\naddflag "\\\\Other";\n',
    "addflag-list": 'require "imap4flags";\naddflag ["\\\\Bogus", "a(b"];\n',
    "addflag-variable": 'require ["imap4flags", "variables"];\naddflag "v" "\\\\Bogus";\n',
    "addflag-seen": 'require "imap4flags";\naddflag "\\\\Seen";\n',
    "fileinto-flags": 'require ["imap4flags", "fileinto"];\nfileinto :flags "\\\\Bogus" "x";\n',
    "deleteheader-received": 'require "editheader";\ndeleteheader "Received";\n',
    "deleteheader-auto-submitted": 'require "editheader";\ndeleteheader :index 1 "auto-submitted";\n',
    "deleteheader-delivered-to": 'require "editheader";\ndeleteheader "Delivered-To";\n',
    "comment-at-eof": 'keep;\n# no newline',
    "comment-at-eof-cr": 'keep;\n# no newline\r',
    "comment-only": '# no newline',
    "comment-with-newline": 'keep;\n# newline\n',
    "bracket-comment-at-eof": 'keep;\n/* # */',
    # Owlery's own warnings, allowed below
    "fileinto-empty": 'require "fileinto";\nfileinto "";\n',
    "zone-out-of-range": 'require "date";\nif currentdate :zone "+9999" "year" "2020" { keep; }\n',
    "vacation-addresses-bad": 'require "vacation";\nvacation :addresses "bad" "x";\n',
}

# Warnings only Owlery gives (advisory: the script compiles on both), each with its reason.
ALLOWED_WARNINGS = {
    "fileinto-empty": "RFC 5228 4.1: a mailbox name is a name; \"\" names none and the message is "
                      "stored in INBOX: Owlery says so",
    "zone-out-of-range": "RFC 5260 4.1: a zone is +/-hhmm with minutes under 60; \"+9999\" is none and "
                         "the run uses the message's own: Owlery says so",
    "vacation-addresses-bad": "RFC 5230 4.5: :addresses are addresses; an item that is none names no "
                              "recipient and is skipped: Owlery says so",
}


def _sievec_outcome(sievec, path: str) -> tuple[bool, int, int]:
    p = subprocess.run([SIEVEC, path, "-"], capture_output=True, timeout=30, cwd=sievec.home, env=sievec.env,
                       user=sievec.uid, group=sievec.gid, extra_groups=[] if sievec.uid is not None else None)
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode in (0, 89) and "Panic" not in err, err
    errors = [x for x in err.splitlines() if ": error: " in x and x.split(": error: ", 1)[1].rstrip(".") not in FINAL]
    return p.returncode == 0, len(errors), err.count(": warning: ")


def _owlery_outcome(src: str, name: str, loader) -> tuple[bool, int, int]:
    try:
        # (Pigeonhole's editheader policy: Owlery's default also keeps Delivered-To)
        settings = owlery_settings().replace(sieve_editheader_forbid_delete=[])
        script = compile_source(src, name=name, settings=settings, loader=loader)
    except SieveCompileError as e:
        errors = [d for d in e.diagnostics if d.severity == "error" and d.message not in FINAL]
        return False, len(errors), sum(d.severity == "warning" for d in e.diagnostics)
    return True, 0, len(script.warnings)


def _write(sievec, path: str, src: str) -> None:
    with open(path, "w") as f:
        f.write(src)
    if sievec.uid is not None:
        os.chown(path, sievec.uid, sievec.gid)


@pytest.fixture(scope="module")
def outcomes():
    """{label: (sievec's outcome, Owlery's)}: (compiles, errors, warnings), every case at once."""
    gen = private_sievec("owlery-include-s19-")
    sievec = next(gen)
    try:
        jobs = {}
        for i, (label, case) in enumerate(INCLUDE_CASES.items()):
            fix = lambda s, i=i: s.replace("%", f"c{i}_")            # noqa: E731
            scripts = {(loc, fix(n)): fix(s) for (loc, n), s in case.scripts.items()}
            top_name = fix(case.top_name)
            for (loc, name), src in scripts.items():
                _write(sievec, os.path.join(sievec.home, loc, name + ".sieve"), src)
            path = os.path.join(sievec.home, case.top_loc, top_name + ".sieve")
            _write(sievec, path, fix(case.top))
            if case.top_loc != "s":
                scripts[(case.top_loc, top_name)] = fix(case.top)
            jobs[label] = (path, fix(case.top), top_name, scripts.get)
        for i, (label, src) in enumerate(WARNING_CASES.items()):
            path = os.path.join(sievec.home, "s", f"w{i}.sieve")
            _write(sievec, path, src)
            jobs[label] = (path, src, f"w{i}", lambda n, loc: None)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            theirs = dict(zip(jobs, pool.map(lambda j: _sievec_outcome(sievec, j[0]), jobs.values())))
        yield {label: (theirs[label], _owlery_outcome(src, name, lambda n, loc, get=get: get((loc, n))))
               for label, (_, src, name, get) in jobs.items()}
    finally:
        gen.close()


@pytest.mark.parametrize("label", list(INCLUDE_CASES))
def test_include_compiles_as_sievec(outcomes, label):
    theirs, ours = outcomes[label]
    assert ours == theirs, (label, "sievec", theirs, "owlery", ours)


def test_include_cases_say_what_they_are_about(outcomes):
    # the cases exercise what they are named for (on both sides, by the test above)
    assert outcomes["self-once"][1] == (True, 0, 0)
    assert outcomes["self"][1][:2] == (False, 1)
    assert outcomes["loop-through-top-once"][1][:2] == (False, 3)
    assert outcomes["nested-warnings"][1] == (True, 0, 2)
    assert outcomes["self-once-not-stored"][1][:2] == (False, 1)


@pytest.mark.parametrize("label", list(WARNING_CASES))
def test_warnings_as_sievec(outcomes, label):
    theirs, ours = outcomes[label]
    if label in ALLOWED_WARNINGS:
        assert theirs == (True, 0, 0) and ours == (True, 0, 1), (label, theirs, ours, ALLOWED_WARNINGS[label])
        return
    assert ours == theirs, (label, "sievec", theirs, "owlery", ours)


def test_warning_texts_are_sievecs():
    def warnings(src):
        return [d.message for d in compile_script(src, name="w", settings=Settings()).warnings]
    assert warnings(WARNING_CASES["vacation-days-0"]) == ["specified :days value '0' is under the minimum"]
    assert warnings(WARNING_CASES["addflag-two-in-one"]) == [
        "IMAP flag '\\Bogus' specified for the addflag command is invalid and will be ignored "
        "(only first invalid is reported)"]
    assert warnings(WARNING_CASES["deleteheader-received"]) == [
        "deleteheader command: deleting specified header field `Received' is forbidden; modification will be denied"]
    # the warning follows the policy the run applies: Owlery's default keeps Delivered-To
    assert len(warnings(WARNING_CASES["deleteheader-delivered-to"])) == 1
    [w] = compile_script(WARNING_CASES["comment-at-eof"], name="w", settings=Settings()).warnings
    assert (w.line, w.message) == (2, "no newline (CRLF) at end of hash comment at end of file")


# --- upload: managesieved's PUTSCRIPT / CHECKSCRIPT / SETACTIVE -------------------------------

UPLOAD_STEPS = [
    # (command, name, source): PUTSCRIPT stores what compiles; CHECKSCRIPT has no name; SETACTIVE
    # compiles the stored script with its includes as delivery will (no upload leniency)
    ("PUTSCRIPT", "m1", R + 'include "nosuch";\r\n'),
    ("PUTSCRIPT", "m2", R + 'include :global "nosuch";\r\n'),
    ("PUTSCRIPT", "m3", R + 'include :optional "nosuch";\r\n'),
    ("CHECKSCRIPT", "", R + 'include "nosuch";\r\ninclude :global "nosuch";\r\n'),
    ("PUTSCRIPT", "self", R + 'include "self";\r\n'),        # not stored yet: missing
    ("PUTSCRIPT", "self", R + 'include "self";\r\n'),        # the stored one loops
    ("CHECKSCRIPT", "", R + 'include "self";\r\n'),
    ("PUTSCRIPT", "once", R + 'include :once "once";\r\n'),
    ("PUTSCRIPT", "once", R + 'include :once "once";\r\n'),
    ("SETACTIVE", "once", ""),
    ("PUTSCRIPT", "x", R + 'include "y";\r\n'),
    ("PUTSCRIPT", "y", R + 'include "x";\r\n'),
    ("PUTSCRIPT", "x", R + 'include "y";\r\n'),
    ("SETACTIVE", "x", ""),
    ("PUTSCRIPT", "w", NOTIFY_WARN.replace("\n", "\r\n")),
    ("PUTSCRIPT", "t", R + 'include "w";\r\ninclude "w";\r\n'),
    ("SETACTIVE", "t", ""),
    ("PUTSCRIPT", "g", R + 'include :global "g";\r\ninclude :personal "g";\r\n'),
    ("PUTSCRIPT", "c", 'keep;\r\n# no newline'),
    ("PUTSCRIPT", "ic", R + 'include "c";\r\n'),
    ("PUTSCRIPT", "bad", 'frobnicate;\r\n'),
    ("PUTSCRIPT", "ib", R + 'include "bad";\r\n'),
]
GLOBAL_SCRIPTS = {"g": NOTIFY_WARN}


def _owlery_upload_outcomes() -> list[tuple[str, bool, int]]:
    stored: dict[str, str] = {}
    out = []
    for cmd, name, src in UPLOAD_STEPS:
        def loader(n, loc):
            return stored.get(n) if loc == "personal" else GLOBAL_SCRIPTS.get(n)
        try:
            if cmd == "SETACTIVE":
                script = compile_script(stored[name], name=name, settings=Settings(), loader=loader)
            else:
                script = compile_script(src, name=name, settings=Settings(), loader=loader, upload=True)
        except SieveCompileError:
            out.append((cmd, False, 0))
            continue
        if cmd == "PUTSCRIPT":
            stored[name] = src
        out.append((cmd, True, len(script.warnings)))
    return out


def _dovecot_upload_outcomes() -> list[tuple[str, bool, int]]:
    from tests.delivery.daemon import remove_workdir, shared_workdir
    from tests.harness.dovecot import DovecotInstance
    from tests.harness.procs import free_port, wait_for_tcp
    from tests.managesieve.test_dovecot_differential import USER, lit, login

    work = shared_workdir("owlery-include-s19-ms-")
    port = free_port()
    (work / "global").mkdir()
    dovecot = DovecotInstance(work / "dovecot", {USER: str(work / "alice")}, extra_conf=f"""
protocols = imap lmtp sieve
auth_failure_delay = 0
service managesieve-login {{
  inet_listener sieve {{
    address = 127.0.0.1
    port = {port}
  }}
}}
plugin {{
  sieve_global = {work}/global
}}
""")
    for name, src in GLOBAL_SCRIPTS.items():
        (work / "global" / f"{name}.sieve").write_text(src)
    for p in (work / "global", *(work / "global").iterdir()):
        os.chown(p, dovecot.uid, dovecot.gid)
    dovecot.start()
    try:
        wait_for_tcp(port, timeout=20, what="dovecot managesieve")
        w = login(port)
        out = []
        for cmd, name, src in UPLOAD_STEPS:
            if cmd == "PUTSCRIPT":
                w.send(b'PUTSCRIPT "' + name.encode() + b'" ' + lit(src.encode()) + b"\r\n")
            elif cmd == "CHECKSCRIPT":
                w.send(b"CHECKSCRIPT " + lit(src.encode()) + b"\r\n")
            else:
                w.send(b'SETACTIVE "' + name.encode() + b'"\r\n')
            r = w.response()
            assert r.kind in ("OK", "NO"), r
            text = r.text.decode("utf-8", "replace")
            out.append((cmd, r.kind == "OK", len(re.findall(r": warning: ", text)) if r.kind == "OK" else 0))
        w.close()
        return out
    finally:
        dovecot.stop()
        remove_workdir(work)


def test_upload_compiles_as_managesieved():
    ours = _owlery_upload_outcomes()
    theirs = _dovecot_upload_outcomes()
    diffs = [(step[:2], t, o) for step, t, o in zip(UPLOAD_STEPS, theirs, ours) if t != o]
    assert not diffs, diffs
    # what the steps are about, on both sides
    assert [o[1:] for o in ours[:7]] == [(True, 1), (True, 1), (True, 0), (True, 2), (True, 1), (True, 1),
                                        (True, 1)]
    assert ours[9][1:] == (True, 0) and ours[13][1:] == (False, 0) and ours[16][1:] == (True, 1)


# --- run time: `include :once` of the top script runs nothing ---------------------------------

SELF_ONCE = COUNTER + 'include :once "first";\nfileinto "F${n}";\n'
MSG = b"From: a@example.com\r\nTo: rcpt@example.org\r\nSubject: hello\r\n\r\nbody\r\n"


def _folders(result) -> list[str]:
    assert result.status == "ok", result.errors
    return sorted(a.mailbox for a in result.effective_actions())


def test_run_time_include_once_of_the_top_script_does_nothing():
    settings = Settings()
    host = MemoryHost(mailboxes=("INBOX",), scripts={("personal", "first"): SELF_ONCE.encode()})
    script = compile_script(SELF_ONCE, name="first", settings=settings)
    assert _folders(run(script, MSG, Envelope(), host=host, settings=settings)) == ["Fx"]
    # resolved at compile time, the same
    compiled = compile_script(SELF_ONCE, name="first", settings=settings,
                              loader=lambda n, loc: SELF_ONCE if (loc, n) == ("personal", "first") else None)
    assert _folders(run(compiled, MSG, Envelope(), host=host, settings=settings)) == ["Fx"]
    # another script of the name (a global one, another text) is included
    other = COUNTER + 'include :once :global "first";\nfileinto "F${n}";\n'
    host = MemoryHost(mailboxes=("INBOX",), scripts={("global", "first"): COUNTER.encode()})
    assert _folders(run(compile_script(other, name="first", settings=settings), MSG, Envelope(), host=host,
                        settings=settings)) == ["Fxx"]


def test_delivery_reads_the_active_link_and_runs_the_script_once(tmp_path):
    user_dir = tmp_path / "sieve"
    user_dir.mkdir()
    (user_dir / "first.sieve").write_text(SELF_ONCE)
    os.symlink("first.sieve", user_dir / "active.sieve")
    ex = DeliveryExecutor(Settings().replace(delivery_use_directory=False), state=MemoryStore(), program="test")
    user = MailUser("carol@example.org", str(tmp_path / "Maildir"), str(user_dir / "active.sieve"))
    try:
        assert ex.deliver(MSG, "a@example.com", "carol@example.org", user).ok
    finally:
        ex.close()
    assert sorted(p.name for p in (tmp_path / "Maildir").iterdir() if p.name.startswith(".")) == [".Fx"]


def test_sieve_test_runs_it_once_or_fails_the_run():
    """sieve-test on the same script: Pigeonhole 0.5.19 compiles it and then fails the run
    ("corrupt binary", the implicit keep). Allowed: RFC 6609 3.2 (the include of a script
    already included does nothing) asks for the one store Owlery makes."""
    gen = private_sievec("owlery-include-s19-run-")
    sievec = next(gen)
    try:
        path = os.path.join(sievec.home, "personal", "first.sieve")
        _write(sievec, path, SELF_ONCE)
        msg = os.path.join(sievec.home, "s", "msg.eml")
        _write(sievec, msg, MSG.decode())
        p = subprocess.run(["/usr/bin/sieve-test", path, msg], capture_output=True, timeout=30, cwd=sievec.home,
                           env=sievec.env, user=sievec.uid, group=sievec.gid,
                           extra_groups=[] if sievec.uid is not None else None)
        out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
        stores = re.findall(r"store message in folder: (\S+)", out)
        assert stores == ["Fx"] or ("corrupt binary" in err and "final result: failed" in err), (out, err)
    finally:
        gen.close()
