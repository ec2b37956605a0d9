"""`owlery lda` for a local Unix account (directory_backend = "passwd"): into {home}/Maildir,
through {home}/.dovecot.sieve, files owned by the account; root, unknown names and aliases
only Postfix's local(8) can deliver are refused (67, 5.1.1).

As root (CI) the account is a real one, made by useradd for the test with its home in a
temporary directory and removed by userdel afterwards, and `owlery lda` and `owlery-lda` run
as processes, as Postfix runs them. Not root, the same deliveries run in-process
(sieve.delivery.cli.lda_main) for an injected account with the test's own uid; that path runs
as root too, with an injected account of another uid.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

import owlery.directory.passwd as passwd_mod
from tests.harness.accounts import temporary_account

ROOT = Path(__file__).resolve().parents[2]
OWLERY = str(ROOT / ".venv" / "bin" / "owlery")
COMMANDS = ([OWLERY, "lda"], [OWLERY + "-lda"])
SCRIPT = b'require "fileinto";\nif header :contains "subject" "work" { fileinto "Work"; }\n'


def config(tmp_path, name, uid):
    (tmp_path / "aliases").write_text(f'postmaster: {name}\npiped: {name}, "|/bin/cat"\n')
    conf = tmp_path / "owlery.toml"
    conf.write_text(f"""
directory_backend = "passwd"
passwd_domains = ["example.org", "mail.example.org"]
passwd_aliases = "{tmp_path}/aliases"
passwd_uid_min = {1000 if 1000 <= uid <= 60000 else uid}
passwd_uid_max = {60000 if 1000 <= uid <= 60000 else uid}
state_backend = "memory"
lda_lmtp_handoff = false
""")
    return str(conf)


def make_home(home: Path, uid: int, gid: int) -> None:
    home.mkdir(parents=True)
    (home / ".dovecot.sieve").write_bytes(SCRIPT)
    if os.geteuid() == 0:
        os.chown(home / ".dovecot.sieve", uid, gid)
        os.chown(home, uid, gid)
    home.chmod(0o700)


def messages(home: Path, folder: str = "") -> list[Path]:
    base = home / "Maildir" / folder
    return sorted(p for sub in ("new", "cur") if (base / sub).is_dir() for p in (base / sub).iterdir())


def check_deliveries(run, name: str, home: Path, uid: int, gid: int) -> None:
    """The deliveries every path must make: `run(args, subject)` gives (exit status, stderr)."""
    status, err = run(["-f", "bob@remote.test", "-d", f"{name}@example.org"], "hello")
    assert status == 0, err
    [inbox] = messages(home)
    assert inbox.read_bytes().endswith(b"Subject: hello\n\nbody\n")
    st = inbox.stat()
    assert (st.st_uid, st.st_gid) == (uid, gid)                       # the account owns what was created
    assert (home / "Maildir").stat().st_uid == uid

    status, err = run(["-f", "bob@remote.test", "-d", f"{name.upper()}+x@mail.example.org"], "work plan")
    assert status == 0, err                                           # folded, +detail, second domain
    assert len(messages(home, ".Work")) == 1                          # {home}/.dovecot.sieve ran

    status, err = run(["-f", "bob@remote.test", "-d", "postmaster@example.org"], "to the alias")
    assert status == 0, err
    assert len(messages(home)) == 2

    refused = ["root@example.org", "zz-no-such-owlery@example.org", "piped@example.org", "../etc@example.org"]
    if uid != pwd.getpwnam("nobody").pw_uid:          # (a test run as nobody makes nobody's uid the range)
        refused.append("nobody@example.org")
    for address in refused:
        status, err = run(["-f", "bob@remote.test", "-d", address], "refused")
        assert status == 67 and err.startswith("5.1.1"), (address, status, err)
    assert len(messages(home)) == 2 and len(messages(home, ".Work")) == 1


def in_process(tmp_path, monkeypatch, uid: int, gid: int) -> None:
    from sieve.delivery.cli import lda_main
    name = "owlt"
    home = tmp_path / "home" / name
    make_home(home, uid, gid)
    account = pwd.struct_passwd((name, "x", uid, gid, "", str(home), "/bin/sh"))
    real = passwd_mod.system_getpwnam
    monkeypatch.setattr(passwd_mod, "system_getpwnam", lambda n: account if n == name else real(n))
    conf = config(tmp_path, name, uid)

    def run(args, subject):
        import contextlib
        import io
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            status = lda_main(["-c", conf, *args], f"Subject: {subject}\n\nbody\n".encode())
        return status, err.getvalue()

    check_deliveries(run, name, home, uid, gid)


@pytest.fixture
def real_account(tmp_path):
    """A real account (root only): useradd now, userdel afterwards, whatever the test did."""
    with temporary_account(tmp_path / "home") as pw:
        make_home(Path(pw.pw_dir), pw.pw_uid, pw.pw_gid)
        yield pw
    with pytest.raises(KeyError):
        pwd.getpwnam(pw.pw_name)


def test_the_lda_delivers_into_the_accounts_home(tmp_path, monkeypatch, request):
    """As root with useradd: a real account and the LDA as a process (both commands); else in-process."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        in_process(tmp_path, monkeypatch, os.getuid(), os.getgid())
        return
    pw = request.getfixturevalue("real_account")
    conf = config(tmp_path, pw.pw_name, pw.pw_uid)
    for command in COMMANDS:
        def run(args, subject, command=command):
            r = subprocess.run([*command, "-c", conf, *args], input=f"Subject: {subject}\n\nbody\n".encode(),
                               capture_output=True, timeout=60)
            return r.returncode, r.stderr.decode(errors="replace")
        home = Path(pw.pw_dir)
        check_deliveries(run, pw.pw_name, home, pw.pw_uid, pw.pw_gid)
        shutil.rmtree(home / "Maildir")


def test_the_lda_in_process_with_an_injected_account(tmp_path, monkeypatch):
    uid, gid = (4242, 4243) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    in_process(tmp_path, monkeypatch, uid, gid)
