"""vnd.dovecot.pipe in real deliveries: `owlery lmtpd` (a child process, LMTP over TCP) and
`owlery lda` run a user's `pipe` to a small program in a temporary sieve_pipe_bin_dir.

Proves: the program gets the message (CRLF line ends, Pigeonhole's default), its arguments and
Pigeonhole's environment (USER, HOME, SENDER, RECIPIENT, ORIG_RECIPIENT, nothing of ours), as the
mailbox owner, never as root; a successful pipe cancels the implicit keep (:copy does not); a
failing, timed-out or missing program loses nothing (the message is kept in INBOX, with :try or
without), each recipient getting its own 250.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
from pathlib import Path

import pytest

from tests.delivery.daemon import Lmtpd, base_config, remove_workdir, shared_workdir
from tests.delivery.test_lmtpd import converse
from tests.harness.procs import wait_until

ROOT = Path(__file__).resolve().parents[2]
OWLERY = str(ROOT / ".venv" / "bin" / "owlery")

SCRIPTS = {
    "alice": 'require "vnd.dovecot.pipe"; pipe "record" ["one", "two words"];',
    "bob": 'require "vnd.dovecot.pipe"; pipe "fail";',
    "carol": 'require "vnd.dovecot.pipe"; pipe :try "missing";',
    "dave": 'require ["vnd.dovecot.pipe", "copy"]; pipe :copy "record";',
    "erin": 'require "vnd.dovecot.pipe"; pipe "slow";',
}
PROGRAMS = {
    "record": '#!/bin/sh\nd={out}/$RECIPIENT.$$\ncat > "$d.msg"\nenv > "$d.env"\nid -u > "$d.uid"\n'
    'printf "%s\\n" "$@" > "$d.args"\n',
    "fail": "#!/bin/sh\ncat >/dev/null\necho 'cannot deliver' >&2\nexit 1\n",
    "slow": "#!/bin/sh\nexec sleep 30\n",
}


def _owner() -> tuple[int, int]:
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def _setup(work: Path) -> tuple[Path, Path]:
    """bin/ with the programs (root-owned, not writable by others), out/ writable by nobody,
    each user's script owned by the mailbox owner (lmtpd reads it as root only then)."""
    uid, gid = _owner()
    bindir, out = work / "bin", work / "out"
    bindir.mkdir()
    out.mkdir()
    os.chmod(bindir, 0o755)
    os.chmod(out, 0o777)
    for name, text in PROGRAMS.items():
        p = bindir / name
        p.write_text(text.format(out=out))
        os.chmod(p, 0o755)
    for user, script in SCRIPTS.items():
        d = work / "mail" / "example.org" / user / "sieve"
        d.mkdir(parents=True)
        (d / "active.sieve").write_text(script + "\n")
        for p in (d.parent.parent, d.parent, d, d / "active.sieve"):
            if os.geteuid() == 0:
                os.chown(p, uid, gid)
    return bindir, out


def _inbox(work: Path, user: str) -> list[Path]:
    base = work / "mail" / "example.org" / user / "Maildir"
    return [p for sub in ("new", "cur") if (base / sub).is_dir() for p in (base / sub).iterdir()]


def _recorded(out: Path, rcpt: str, what: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted(out.glob(f"{rcpt}.*.{what}"))]


MESSAGE = b"From: sender@remote.test\r\nTo: team@example.org\r\nSubject: piped\r\n\r\nhello\r\n.\r\n"


@pytest.fixture(scope="module")
def delivery():
    work = shared_workdir("owlery-pipe-")
    bindir, out = _setup(work)
    lmtpd = Lmtpd(
        work,
        base_config(work)
        + f"""
delivery_use_directory = false
sieve_pipe_bin_dir = "{bindir}"
sieve_pipe_exec_timeout = "1s"
""",
    )
    try:
        lmtpd.start()
        yield work, out, lmtpd
    finally:
        lmtpd.stop()
        remove_workdir(work)


@pytest.fixture(scope="module")
def replies(delivery):
    work, out, lmtpd = delivery
    rcpts = [f"{u}@example.org" for u in SCRIPTS]
    lines = ["LHLO test", "MAIL FROM:<sender@remote.test>"] + [f"RCPT TO:<{r}>" for r in rcpts] + ["DATA"]
    got = converse(lmtpd.port, lines, MESSAGE, replies_after_data=len(rcpts))
    return dict(zip(rcpts, got[-1 - len(rcpts) : -1]))


def test_every_recipient_gets_its_250(replies):
    assert all(r.startswith("250 2.0.0") for r in replies.values()), replies


def test_pipe_gets_message_arguments_and_pigeonhole_environment_as_the_owner(delivery, replies):
    work, out, _ = delivery
    [msg] = _recorded(out, "alice@example.org", "msg")
    assert b"Subject: piped\r\n" in msg and msg.endswith(b"hello\r\n")  # crlf, Pigeonhole's default
    assert b"Delivered-To: alice@example.org" in msg
    assert _recorded(out, "alice@example.org", "args") == [b"one\ntwo words\n"]
    env = dict(line.split("=", 1) for line in _recorded(out, "alice@example.org", "env")[0].decode().splitlines())
    assert env["SENDER"] == "sender@remote.test" and env["RECIPIENT"] == "alice@example.org"
    assert env["USER"] == "alice@example.org" and env["HOME"].endswith("/mail/example.org/alice")
    assert set(env) <= {"USER", "HOME", "HOST", "SENDER", "RECIPIENT", "ORIG_RECIPIENT", "PWD", "SHLVL", "_"}
    [uid] = _recorded(out, "alice@example.org", "uid")
    assert int(uid) != 0 and (os.geteuid() != 0 or int(uid) == _owner()[0])
    assert _inbox(work, "alice") == []  # the pipe took the message: no implicit keep


def test_pipe_copy_keeps_the_implicit_keep(delivery, replies):
    work, out, _ = delivery
    assert len(_recorded(out, "dave@example.org", "msg")) == 1
    assert len(_inbox(work, "dave")) == 1


@pytest.mark.parametrize(
    "user, why", [("bob", "exited with status 1"), ("carol", "not found"), ("erin", "timed out after 1 s")]
)
def test_failed_pipe_loses_nothing(delivery, replies, user, why):
    work, _, lmtpd = delivery
    [kept] = _inbox(work, user)
    assert b"Subject: piped" in kept.read_bytes()
    lmtpd.wait_log(re.compile(rf"{user}@example.org: pipe to program `\w+' failed \(.*{why}"))


def test_pipe_through_the_lda(tmp_path):
    work = shared_workdir("owlery-pipe-lda-")
    try:
        bindir, out = _setup(work)
        conf = work / "owlery.toml"
        conf.write_text(
            base_config(work).replace("state_sqlite_path", "# state_sqlite_path")
            + f"""
state_backend = "memory"
delivery_use_directory = false
lda_lmtp_handoff = false
sieve_pipe_bin_dir = "{bindir}"
"""
        )
        for user, kept in (("alice", 0), ("bob", 1)):
            r = subprocess.run(
                [
                    OWLERY,
                    "lda",
                    "-c",
                    str(conf),
                    "-f",
                    "sender@remote.test",
                    "-a",
                    f"{user}@example.org",
                    "-d",
                    f"{user}@example.org",
                ],
                input=b"Subject: lda\n\nhi\n",
                capture_output=True,
                timeout=60,
            )
            assert r.returncode == 0, r.stderr
            assert len(_inbox(work, user)) == kept
        wait_until(lambda: _recorded(out, "alice@example.org", "msg"), 10, "the LDA's piped message")
        assert _recorded(out, "alice@example.org", "msg")[0].endswith(b"\r\n\r\nhi\r\n")
    finally:
        remove_workdir(work)


# --- the planner's rule alone (sieve/delivery/planner.py) ---------------------------------------


@pytest.mark.parametrize(
    "try_, copy, result, stores",
    [
        (False, False, None, []),
        (False, False, "fail", ["INBOX"]),
        (True, False, "fail", ["INBOX"]),
        (False, True, None, ["INBOX"]),
        (False, True, "fail", ["INBOX"]),
    ],
)
def test_planner_keeps_what_a_failed_pipe_did_not_take(try_, copy, result, stores):
    from sieve.delivery import planner
    from sieve.extensions.extprograms import Pipe

    plan = planner.Plan(actions=[Pipe(program="p", try_=try_, copy=copy)], keep=copy, message=b"m")
    rules = planner.Rules("INBOX", True, False, 4, 30, 4, "null", {})
    d = planner.Delivery(plan, b"m", "s@x", "r@y", "r@y")
    seen: list = []

    def carry_out(step):
        seen.append(step)
        if isinstance(step, planner.PipeStep):
            return planner.Failed("temporary", "boom") if result else None
        if isinstance(step, planner.StoreStep):
            return "/m/new/1"
        return None

    verdict = planner.drive(planner.steps(d, rules), carry_out)
    assert [s.folder for s in seen if isinstance(s, planner.StoreStep)] == stores
    assert isinstance(verdict, planner.Delivered)
    assert ("piped=p" in verdict.detail) is (result is None)
    notes = [s for s in seen if isinstance(s, planner.Note)]
    assert [n.level for n in notes] == ([] if result is None else ["warning" if try_ else "error"])


def test_pipe_keep_that_cannot_be_stored_is_a_tempfail():
    from sieve.delivery import planner
    from sieve.extensions.extprograms import Pipe

    plan = planner.Plan(actions=[Pipe(program="p")], keep=False, message=b"m")
    rules = planner.Rules("INBOX", True, False, 4, 30, 4, "null", {})

    def carry_out(step):
        if isinstance(step, planner.PipeStep):
            return planner.Failed("temporary", "timed out")
        if isinstance(step, planner.StoreStep):
            return planner.Failed("temporary", "disk full")
        return None

    verdict = planner.drive(planner.steps(planner.Delivery(plan, b"m", "s@x", "r@y", "r@y"), rules), carry_out)
    assert isinstance(verdict, planner.Tempfail)  # nothing lost: the MTA retries
