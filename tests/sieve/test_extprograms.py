"""vnd.dovecot.pipe/filter/execute (sieve/extensions/extprograms.py, sieve/extprograms.py) and
vnd.dovecot.debug (sieve/extensions/debug.py).

Proves: Pigeonhole's program-name and argument rules; the extensions exist only with their
sieve_*_bin_dir (require fails, ihave false, not in the capability list); the compile errors
(constant name, :copy needs copy, :output needs variables); the engine calls the host's runner
(faked here) with the request the settings say, and pipe/filter/execute do with the outcome what
Pigeonhole does; the real runner: time limit kills the whole process group, output cap, never
root, Pigeonhole's environment and nothing of ours, no inherited descriptors, CRLF input;
debug_log is bounded and cannot forge log lines. Differential: the same script under
`sieve-test` (Debian's dovecot-sieve with its extprograms plugin, run as nobody) and here.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from owlery.settings import Settings
from sieve import extprograms as xp
from sieve.api import Envelope, MemoryHost, SieveCompileError, compile_script, extensions_available, run
from tests.sieve.differential import pigeonhole

MSG = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
ENV = Envelope(mail_from="snd@example.com", rcpt_to="rcpt@example.org", orig_rcpt="orig@example.org")
EXTS = ("vnd.dovecot.pipe", "vnd.dovecot.filter", "vnd.dovecot.execute")


def _settings(bindir="/nonexistent-bin", **kw) -> Settings:
    return Settings().replace(
        sieve_pipe_bin_dir=str(bindir), sieve_filter_bin_dir=str(bindir), sieve_execute_bin_dir=str(bindir), **kw
    )


# --- names and arguments ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, ok",
    [
        ("program", True),
        ("spam-c.sh", True),
        ("ünïcode", True),
        ("x" * 128, True),
        ("", False),
        (".", False),
        ("..", False),
        ("a/b", False),
        ("/bin/sh", False),
        ("x" * 129, False),
        ("a\nb", False),
        ("a\x01", False),
        ("del\x7f", False),
        ("c1\x85", False),
        ("y\xff", False),
        ("l\u2028", False),
        ("p\u2029", False),
        ("bad\udcff", False),
    ],
)
def test_program_names_follow_pigeonhole(name, ok):
    assert (xp.name_error(name) is None) is ok


@pytest.mark.parametrize(
    "arg, ok",
    [
        ("", True),
        ("a b", True),
        ("x" * 1024, True),
        ("é" * 512, True),
        ("x" * 1025, False),
        ("é" * 513, False),
        ("a\rb", False),
        ("a\nb", False),
        ("a\0b", False),
    ],
)
def test_arguments_follow_pigeonhole(arg, ok):
    assert (xp.arg_error(arg) is None) is ok


def test_eol_conversion():
    assert xp.convert_eol(b"a\nb\r\nc", "crlf") == b"a\r\nb\r\nc"
    assert xp.convert_eol(b"a\nb\r\nc\r\n", "lf") == b"a\nb\nc\n"


# --- availability and compile errors ---------------------------------------------------------


@pytest.mark.parametrize("ext", EXTS)
def test_extension_exists_only_with_its_bin_dir(ext):
    with pytest.raises(SieveCompileError, match="unknown Sieve capability"):
        compile_script(f'require "{ext}";')
    assert ext not in extensions_available()
    kind = ext.rsplit(".", 1)[1]
    s = Settings().replace(**{f"sieve_{kind}_bin_dir": "/usr/lib/x"})
    compile_script(f'require "{ext}";', settings=s)
    assert ext in extensions_available(s)
    src = f'require "ihave"; if ihave "{ext}" {{ discard; }}'
    assert run(compile_script(src), MSG, ENV).implicit_keep
    assert not run(compile_script(src, settings=s), MSG, ENV, settings=s).implicit_keep


def test_debug_is_always_there():
    assert "vnd.dovecot.debug" in extensions_available()


@pytest.mark.parametrize(
    "src, error",
    [
        ('require ["vnd.dovecot.pipe", "variables"]; set "p" "x"; pipe "${p}";', "constant string"),
        ('require "vnd.dovecot.pipe"; pipe "../bin/sh";', "invalid program name"),
        ('require "vnd.dovecot.pipe"; pipe ".";', "invalid program name"),
        ('require "vnd.dovecot.pipe"; pipe "p" ["a\nb"];', "specified external program argument"),
        ('require "vnd.dovecot.pipe"; pipe :copy "p";', "':copy'"),
        ('require "vnd.dovecot.filter"; filter :try "p";', "':try'"),
        ('require "vnd.dovecot.execute"; execute :output "o" "p";', "variables extension"),
        ('require ["vnd.dovecot.execute", "variables"]; execute :output "a.b" "p";', "namespace"),
        ('require "vnd.dovecot.execute"; execute :input "x" :pipe "p";', "duplicate :pipe"),
        ('require "vnd.dovecot.pipe"; pipe;', "positional"),
        ('require "vnd.dovecot.pipe"; pipe "a" "b" "c";', "positional"),
        ('require "vnd.dovecot.pipe"; if pipe "p" { }', "as test"),
    ],
)
def test_compile_errors(src, error):
    with pytest.raises(SieveCompileError) as e:
        compile_script(src, settings=_settings())
    assert error in str(e.value)


# --- the engine with a faked runner ------------------------------------------------------------


class FakeHost(MemoryHost):
    def __init__(self, outcome: xp.ProgramOutcome | None = None, output: bytes = b""):
        super().__init__()
        self.requests: list[xp.ProgramRun] = []
        self.outcome = outcome
        self.output = output

    def run_program(self, req):
        self.requests.append(req)
        return self.outcome or xp.ProgramOutcome("ok", self.output, 0)


@pytest.fixture
def bindir():
    """A program directory anyone may read (real runs drop root to nobody)."""
    d = Path(tempfile.mkdtemp(prefix="owlery-xp-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _prog(d: Path, name: str, text: str, mode: int = 0o755) -> Path:
    p = d / name
    p.write_text("#!/bin/sh\n" + text)
    os.chmod(p, mode)
    return p


def _run(src: str, settings: Settings, host):
    return run(
        compile_script(src, settings=settings),
        MSG,
        ENV,
        host=host,
        settings=settings,
        environment={"host": "mx.example.org"},
    )


def test_execute_calls_the_runner_with_the_settings_request(bindir):
    _prog(bindir, "frame", "cat\n")
    s = _settings(bindir, sieve_execute_exec_timeout="7s", sieve_execute_max_output="2k")
    host = FakeHost(output=b"OUT")
    res = _run(
        'require ["vnd.dovecot.execute", "variables"]; execute :input "A\nB" :output "o" "frame" ["x", "y"];'
        'if string "${o}" "OUT" { discard; }',
        s,
        host,
    )
    [req] = host.requests
    assert (req.kind, req.name, req.path, req.args) == ("execute", "frame", str(bindir / "frame"), ("x", "y"))
    assert req.input == b"A\r\nB" and req.capture and req.max_output == 2048 and req.timeout == 7.0
    assert dict(req.env) == {
        "HOST": "mx.example.org",
        "SENDER": "snd@example.com",
        "RECIPIENT": "rcpt@example.org",
        "ORIG_RECIPIENT": "orig@example.org",
    }
    assert res.ok and not res.implicit_keep


@pytest.mark.parametrize(
    "outcome, truth, errors",
    [
        (xp.ProgramOutcome("ok", b"", 0), True, 0),
        (xp.ProgramOutcome("false", b"", 3, "exited with status 3"), False, 0),
        (xp.ProgramOutcome("timeout", detail="timed out"), False, 2),
        (xp.ProgramOutcome("refused", detail="root"), False, 2),
    ],
)
def test_execute_as_test_is_true_only_on_exit_0_and_the_script_goes_on(bindir, outcome, truth, errors):
    _prog(bindir, "p", "true\n")
    res = _run('require "vnd.dovecot.execute"; if execute "p" { discard; } keep;', _settings(bindir), FakeHost(outcome))
    assert res.ok and len(res.errors) == errors
    assert any(a.name == "discard" for a in res.actions) is truth


def test_execute_missing_program_is_an_error_line_and_false(bindir):
    host = FakeHost()
    res = _run('require "vnd.dovecot.execute"; if not execute "nope" { discard; }', _settings(bindir), host)
    assert res.ok and res.errors == ["execute action: program `nope' not found"] and not host.requests
    assert not res.implicit_keep


def test_filter_replaces_the_message_for_the_rest_of_the_run(bindir):
    _prog(bindir, "up", "true\n")
    host = FakeHost(output=b"X-Filtered: yes\r\nSubject: new\r\n\r\nnew body\r\n")
    res = _run(
        'require ["vnd.dovecot.filter", "fileinto"]; filter "up";if header :is "x-filtered" "yes" { fileinto "F"; }',
        _settings(bindir),
        host,
    )
    [req] = host.requests
    assert req.input == MSG and req.capture
    [store] = res.actions
    assert store.mailbox == "F" and res.message_for(store).startswith(b"X-Filtered: yes\r\n")
    assert res.message.endswith(b"new body\r\n")


def test_filter_lf_message_stays_lf(bindir):
    _prog(bindir, "up", "true\n")
    host = FakeHost(output=b"Subject: new\r\n\r\nbody\r\n")
    s = _settings(bindir)
    res = run(
        compile_script('require "vnd.dovecot.filter"; filter "up";', settings=s),
        b"Subject: a\n\nb\n",
        ENV,
        host=host,
        settings=s,
    )
    assert host.requests[0].input == b"Subject: a\r\n\r\nb\r\n" and res.message == b"Subject: new\n\nbody\n"


@pytest.mark.parametrize("output", [b"hello world\nsecond line\n", b"no colon here\r\n\r\nbody\r\n",
                                    b"X-A: 1\r\nnot a field\r\n\r\nbody\r\n", b""])
def test_filter_output_is_stored_as_written(bindir, output):
    # what the program wrote is the message (as Pigeonhole stores it), though it is no RFC 5322
    # message: parsing it and writing it again lost every line that is no header field
    _prog(bindir, "up", "true\n")
    res = _run('require ["vnd.dovecot.filter", "fileinto"]; filter "up"; fileinto "F";', _settings(bindir),
               FakeHost(output=output))
    [store] = res.actions
    assert res.message_for(store) == output and res.message == output
    # a header edit after it rewrites the message from its fields, as any edit does
    res = _run('require ["vnd.dovecot.filter", "editheader"]; filter "up"; addheader "X-B" "2";',
               _settings(bindir).replace(sieve_extensions_disabled=[]), FakeHost(output=b"X-A: 1\r\n\r\nbody\r\n"))
    assert res.message == b"X-B: 2\r\nX-A: 1\r\n\r\nbody\r\n"


def test_filter_command_that_cannot_run_is_a_runtime_error_and_keeps_the_original(bindir):
    _prog(bindir, "up", "true\n")
    res = _run(
        'require "vnd.dovecot.filter"; filter "up"; discard;',
        _settings(bindir),
        FakeHost(xp.ProgramOutcome("timeout", detail="program `up' timed out after 10 s")),
    )
    assert res.status == "error" and res.message == MSG
    assert [a.name for a in res.effective_actions()] == ["keep"]


def test_filter_nonzero_exit_changes_nothing(bindir):
    _prog(bindir, "up", "true\n")
    res = _run(
        'require "vnd.dovecot.filter"; if not filter "up" { discard; }',
        _settings(bindir),
        FakeHost(xp.ProgramOutcome("false", b"garbage", 1)),
    )
    assert res.ok and res.message == MSG and not res.implicit_keep


def test_pipe_is_an_action_that_cancels_keep_unless_copy(bindir):
    host = FakeHost()
    res = _run('require "vnd.dovecot.pipe"; pipe :try "p" ["a"];', _settings(bindir), host)
    [p] = res.actions
    assert (p.name, p.program, p.args, p.try_, p.copy) == ("pipe", "p", ("a",), True, False)
    assert not res.implicit_keep and not host.requests  # run by the delivery, after the script
    res = _run('require ["vnd.dovecot.pipe", "copy"]; pipe :copy "p";', _settings(bindir), host)
    assert res.implicit_keep and res.actions[0].copy


def test_duplicate_pipe_to_one_program_is_an_error(bindir):
    res = _run('require "vnd.dovecot.pipe"; pipe "p"; pipe "p";', _settings(bindir), FakeHost())
    assert res.status == "error" and "duplicate pipe" in res.errors[0]


def test_built_arguments_are_checked_at_run_time(bindir):
    s = _settings(bindir, sieve_extprograms_max_args=2)
    res = _run(
        'require ["vnd.dovecot.execute", "encoded-character", "variables"]; set "a" "x${hex:0a}";execute "p" "${a}";',
        s,
        FakeHost(),
    )
    assert res.status == "error" and "is invalid" in res.errors[0]
    res = _run('require "vnd.dovecot.execute"; execute "p" ["1", "2", "3"];', s, FakeHost())
    assert res.status == "error" and "sieve_extprograms_max_args" in res.errors[0]


def test_pipe_message_failure_lines_as_pigeonhole():
    from sieve.extensions.extprograms import Pipe, pipe_message

    s = _settings("/nonexistent-bin")
    ok, errors = pipe_message(s, Pipe(program="unknown"), MSG, lambda r: pytest.fail("must not run"))
    assert not ok and errors == ["pipe action: failed to pipe message to program: program `unknown' not found"]


# --- the real runner --------------------------------------------------------------------------


def _identity() -> dict:
    """Run as nobody when the tests run as root (the runner never runs a program as root)."""
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam("nobody")
    return {"uid": pw.pw_uid, "gid": pw.pw_gid}


def _real(d: Path, name: str, **kw) -> xp.ProgramOutcome:
    req = xp.ProgramRun("execute", name, str(d / name), **{"capture": True, "max_output": 1 << 20, **kw, **_identity()})
    return xp.run_program(req)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_timeout_kills_the_whole_process_group(bindir):
    _prog(bindir, "slow", "sleep 30 &\necho $!\nexec sleep 30\n")
    start = time.monotonic()
    got = _real(bindir, "slow", timeout=0.5)
    assert got.status == "timeout" and "timed out after 0.5 s" in got.detail
    assert time.monotonic() - start < 10
    child = int(got.output.split()[0])
    deadline = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _gone(child), "the program's own child survived the timeout"


def test_no_timeout_when_zero(bindir):
    assert xp.timeout(Settings().replace(sieve_pipe_exec_timeout="0"), "pipe") is None
    assert xp.timeout(Settings(), "pipe") == 10.0


def test_output_cap(bindir):
    _prog(bindir, "big", "head -c 5000 /dev/zero\n")
    assert _real(bindir, "big", max_output=4096).status == "too_large"
    got = _real(bindir, "big", max_output=5000)
    assert got.ok and got.output == b"\0" * 5000


def test_input_exit_status_and_stdin_eof(bindir):
    _prog(bindir, "cat", "cat\nexit 4\n")
    got = _real(bindir, "cat", input=b"x" * 300000)
    assert got.status == "false" and got.exit_code == 4 and got.output == b"x" * 300000
    _prog(bindir, "noin", "cat\n")
    assert _real(bindir, "noin").output == b""  # no input: /dev/null, never our stdin


def test_program_that_reads_nothing_of_a_big_input(bindir):
    _prog(bindir, "quick", "exit 0\n")
    assert _real(bindir, "quick", input=b"y" * (1 << 20)).ok


def test_never_as_root(bindir):
    _prog(bindir, "p", "id -u\n")
    req = xp.ProgramRun("pipe", "p", str(bindir / "p"), capture=True, max_output=100)
    if os.geteuid() == 0:
        got = xp.run_program(req)
        assert got.status == "refused" and "root" in got.detail
        assert xp.run_program(xp.ProgramRun("pipe", "p", str(bindir / "p"), uid=0, gid=0)).status == "refused"
        pw = pwd.getpwnam("nobody")
        got = xp.run_program(xp.with_identity(req, user="u", home="/", uid=pw.pw_uid, gid=pw.pw_gid))
        assert got.ok and int(got.output) == pw.pw_uid
    else:
        assert xp.run_program(xp.ProgramRun("pipe", "p", str(bindir / "p"), uid=0, gid=0)).status == "refused"


def test_environment_is_pigeonholes_and_nothing_of_ours(bindir, monkeypatch):
    monkeypatch.setenv("OWLERY_SECRET_MARKER", "leak")
    _prog(bindir, "env", "env\n")
    req = xp.ProgramRun(
        "execute", "env", str(bindir / "env"), env=xp.program_env(ENV, "mx"), capture=True, max_output=1 << 16
    )
    got = xp.run_program(
        xp.with_identity(req, user="rcpt", home="/home/rcpt", **(_identity() or {"uid": None, "gid": None}))
    )
    env = dict(line.split("=", 1) for line in got.output.decode().splitlines())
    assert env.pop("PWD", "/") == "/"
    assert env == {
        "USER": "rcpt",
        "HOME": "/home/rcpt",
        "HOST": "mx",
        "SENDER": "snd@example.com",
        "RECIPIENT": "rcpt@example.org",
        "ORIG_RECIPIENT": "orig@example.org",
    }


def test_no_descriptor_of_ours_is_inherited(bindir):
    fd = os.open("/dev/null", os.O_RDONLY)
    os.set_inheritable(fd, True)
    try:
        _prog(bindir, "fds", 'for f in /proc/$$/fd/*; do echo "${f##*/}"; done\n')
        fds = set(_real(bindir, "fds").output.decode().split())
        assert {"0", "1", "2"} <= fds and str(fd) not in fds
    finally:
        os.close(fd)


def test_locate_refuses_world_writable_and_directories(bindir):
    s = _settings(bindir)
    _prog(bindir, "ww", "true\n", 0o757)
    (bindir / "dir").mkdir()
    assert xp.locate(s, "pipe", "ww")[1].status == "refused"
    assert xp.locate(s, "pipe", "dir")[1].status == "error"
    assert xp.locate(s, "pipe", "none")[1].status == "not_found"
    assert xp.locate(Settings(), "pipe", "x")[1].detail == "vnd.dovecot.pipe extension is unconfigured"


# --- debug_log ----------------------------------------------------------------------------------


def test_debug_log_is_bounded_and_cannot_forge_lines(caplog):
    s = compile_script(
        'require ["vnd.dovecot.debug", "variables", "encoded-character"];'
        'debug_log "a${hex:0a}forged: line"; set "x" "0123456789";'
        'set "x" "${x}${x}${x}${x}${x}${x}${x}${x}${x}${x}"; set "x" "${x}${x}${x}${x}${x}${x}${x}${x}${x}${x}";'
        'set "x" "${x}${x}"; debug_log "${x}";'
    )
    with caplog.at_level(logging.INFO, logger="owlery.sieve"):
        assert run(s, MSG, ENV).ok
    lines = [r.getMessage() for r in caplog.records if "DEBUG:" in r.getMessage()]
    assert lines[0].endswith("DEBUG: a?forged: line") and "\n" not in lines[0]
    assert len(lines[1].split("DEBUG: ", 1)[1]) == 1024 + 3


# --- differential against Pigeonhole's sieve-test ------------------------------------------------

PLUGIN = pigeonhole.EXTPROGRAMS_PLUGIN
DIFF_SCRIPT = r"""require ["vnd.dovecot.execute", "vnd.dovecot.filter", "vnd.dovecot.pipe", "vnd.dovecot.debug",
         "variables"];
execute :input "X" :output "o" "frame" ["A "];
debug_log "out=${o}";
if execute "fail" { debug_log "fail true"; } else { debug_log "fail false"; }
if execute :pipe :output "m" "cat" { debug_log "cat ${m}"; }
if execute "nope" { debug_log "nope true"; } else { debug_log "nope false"; }
filter "up";
if header :is "x-filtered" "yes" { debug_log "filtered"; }
execute :pipe :output "m" "cat";
debug_log "after filter: ${m}";
execute :output "e" "printenv" "SENDER"; debug_log "SENDER=${e}";
execute :output "e" "printenv" "ORIG_RECIPIENT"; debug_log "ORIG_RECIPIENT=${e}";
"""
DIFF_PROGRAMS = {
    "frame": 'echo -n "FRAMED $1{ "\ncat\necho -n " }"\n',
    "fail": "cat >/dev/null\nexit 3\n",
    "up": 'echo "X-Filtered: yes"\ncat\n',
    "cat": "cat\n",
    "printenv": 'eval echo -n "\\${$1}"\n',
}


@pytest.mark.skipif(not (shutil.which("sieve-test") and PLUGIN.exists()), reason="no sieve-test with extprograms")
def test_differential_against_sieve_test(bindir):
    for name, text in DIFF_PROGRAMS.items():
        _prog(bindir, name, text)
    work = Path(tempfile.mkdtemp(prefix="owlery-xpd-", dir="/tmp"))
    try:
        text = pigeonhole.sieve_test_extprograms(work, bindir, DIFF_SCRIPT, MSG.replace(b"\r\n", b"\n"), ENV)
        theirs = pigeonhole.DEBUG_LINE.findall(text)
        assert theirs, text
    finally:
        shutil.rmtree(work, ignore_errors=True)

    class Host(MemoryHost):
        def run_program(self, req):
            return xp.run_program(
                xp.with_identity(req, user="nobody", home="/", **(_identity() or {"uid": None, "gid": None}))
            )

    s = _settings(bindir)
    script = compile_script(DIFF_SCRIPT, settings=s)
    lines: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record):
            m = record.getMessage()
            if "DEBUG: " in m:
                lines.append(m.split("DEBUG: ", 1)[1])

    h = Catch()
    logging.getLogger("owlery.sieve").addHandler(h)
    old = logging.getLogger("owlery.sieve").level
    logging.getLogger("owlery.sieve").setLevel(logging.INFO)
    try:
        res = run(script, MSG.replace(b"\r\n", b"\n"), ENV, host=Host(), settings=s)
    finally:
        logging.getLogger("owlery.sieve").removeHandler(h)
        logging.getLogger("owlery.sieve").setLevel(old)
    assert res.ok

    # debug_log writes control characters as "?" here (Pigeonhole writes them raw): compare so
    def norm(xs):
        return [re.sub(r"\?+", "?", "".join(c if c.isprintable() else "?" for c in x)) for x in xs]

    assert norm(lines) == norm(theirs)
    assert len(lines) == 8
