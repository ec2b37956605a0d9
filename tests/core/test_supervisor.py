"""`owlery run` (the Quick start's daemon set): starts all three, prints Postfix lines, stops cleanly.

The tests run as root: a settings file they write says daemon_allow_root = true. A first
start (the starter set) is run as a normal user (nobody, in a directory of its own), as
scripts/quickstart does without root; as root it needs the system user `owlery`
(tests/core/test_secure_defaults.py covers that path without it).
"""

import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.harness.procs import free_ports, tcp_connects, wait_until

ROOT = Path(__file__).resolve().parents[2]
NORMAL_USER = "nobody"


def start_run(config, *extra, user=None):
    as_user = {}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if user is not None:
        pw = pwd.getpwnam(user)
        as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        env.update(HOME=str(Path(config).parent), USER=user, LOGNAME=user)
    return subprocess.Popen([sys.executable, "-m", "owlery.app.cli", "run", "--config", str(config), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env, **as_user)


@pytest.fixture
def user_dir():
    """A directory the normal user owns, where it may reach (tmp_path's parents are root's, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="owlery-run-user."))
    pw = pwd.getpwnam(NORMAL_USER)
    os.chmod(path, 0o755)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_run_starts_everything_prints_postfix_lines_and_stops(tmp_path):
    policy, milter, lmtp = free_ports(3)
    config = tmp_path / "owlery.toml"
    config.write_text(f'policyd_listen = ["tcp:127.0.0.1:{policy}"]\n'
                      f'milter_listen = "tcp:127.0.0.1:{milter}"\n'
                      f'lmtpd_listen = ["tcp:127.0.0.1:{lmtp}"]\n'
                      f'maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"\n'
                      'delivery_use_directory = false\n'
                      'daemon_allow_root = true\n')
    proc = start_run(config, "--domain", "example.org")
    try:
        first = proc.stdout.readline()          # printed only once every daemon listens
        assert first == "# /etc/postfix/main.cf\n", proc.stderr.read() if proc.poll() is not None else first
        lines = [first]
        while not lines[-1].startswith("  flags="):
            lines.append(proc.stdout.readline())
        text = "".join(lines)
        assert f"check_policy_service {{ inet:127.0.0.1:{policy}, timeout=47s }}" in text
        assert f"smtpd_milters = inet:127.0.0.1:{milter}" in text
        assert f"virtual_transport = lmtp:inet:127.0.0.1:{lmtp}" in text
        assert all(tcp_connects(p) for p in (policy, milter, lmtp))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not any(tcp_connects(p) for p in (policy, milter, lmtp))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_first_run_writes_a_starter_set_and_its_try_it_line_delivers(user_dir):
    """A newcomer's first `owlery run` as a normal user: settings, a postmaster@ mailbox, a swaks
    line that works, and the daemons on loopback TCP (the user can give Postfix no unix socket)."""
    tmp_path = user_dir
    config = tmp_path / "etc" / "owlery.toml"
    proc = start_run(config, "--domain", "newcomer.test", user=NORMAL_USER)
    try:
        lines = []
        while not lines or not lines[-1].startswith("owlery: it lands in "):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.poll() is not None else "stdout closed"
            lines.append(line.rstrip("\n"))
        text = config.read_text()
        assert "#policyd_listen = " in text                      # every default, commented out
        assert f'files_mailboxes = "{tmp_path}/etc/mailboxes"' in text
        assert 'policyd_listen = ["tcp:127.0.0.1:10040"]\n' in text   # a normal user: loopback TCP
        assert "daemon_user" not in text.split("#")[0]
        assert oct(config.stat().st_mode & 0o777) == "0o640"
        assert "postmaster@newcomer.test" in (tmp_path / "etc" / "mailboxes").read_text()
        assert (tmp_path / "etc" / "aliases").exists()
        # The endpoints the starter wrote for a normal user (the ones README.rst shows) come up.
        assert all(tcp_connects(p) for p in (10040, 10041, 10042))
        command = lines[-2].strip()
        assert command.startswith("swaks --server 127.0.0.1 --port 10042 --protocol LMTP")
        maildir_new = Path(lines[-1].removeprefix("owlery: it lands in "))
        assert maildir_new == tmp_path / "etc" / "mail" / "newcomer.test" / "postmaster" / "Maildir" / "new"
        assert shutil.which("swaks"), "swaks is installed by scripts/install-deps"
        sent = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        [message] = wait_until(lambda: list(maildir_new.iterdir()), 30, "the test message", None)
        assert b"Subject: Hello from Owlery" in message.read_bytes()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert not any(tcp_connects(p) for p in (10040, 10041, 10042))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_second_run_overwrites_nothing(user_dir):
    etc = user_dir / "etc"
    etc.mkdir()
    (etc / "mailboxes").write_text("alice@mine.test  mine.test/alice/Maildir\n")
    shutil.chown(etc, NORMAL_USER)
    config = etc / "owlery.toml"
    proc = start_run(config, "--domain", "mine.test", user=NORMAL_USER)
    try:
        line = ""
        while "no mailbox" not in line:      # printed once every daemon listens
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.poll() is not None else "stdout closed"
        assert line.strip() == ("owlery: the directory has no mailbox postmaster@mine.test; "
                                "add one to try a delivery")
        assert (etc / "mailboxes").read_text() == "alice@mine.test  mine.test/alice/Maildir\n"
        before = config.read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    config.write_text(before + "# mine\n")
    again = start_run(config, "--domain", "mine.test", user=NORMAL_USER)
    try:
        assert again.stdout.readline() == "# /etc/postfix/main.cf\n"   # all listen
        again.send_signal(signal.SIGINT)
        assert again.wait(timeout=60) == 0
    finally:
        if again.poll() is None:
            again.kill()
            again.wait()
    assert config.read_text().endswith("# mine\n")


def test_run_reports_a_daemon_that_cannot_start(tmp_path):
    config = tmp_path / "owlery.toml"
    # The other two on sockets of their own: the defaults would be the machine's queue directory.
    config.write_text('lmtpd_listen = ["unix:/proc/forbidden/lmtpd.sock"]\ndaemon_allow_root = true\n'
                      f'policyd_listen = ["unix:{tmp_path}/policyd.sock"]\nmilter_listen = "unix:{tmp_path}/milter.sock"\n')
    proc = start_run(config)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "lmtpd exited" in err


@pytest.mark.parametrize("overrides,socketmap", [
    ({}, False),
    ({"directory_backend": "ldap"}, True),
    ({"files_mailboxes": "/srv/mailboxes", "files_mail_hosts": "/srv/mail_hosts"}, True),   # a files relay
])
def test_run_starts_the_socketmap_when_postfix_reads_the_directory_through_it(overrides, socketmap):
    from owlery.app import supervisor
    from owlery.settings import Settings
    names = [name for name, _ in supervisor.daemons(Settings().replace(**overrides))]
    assert names[:3] == ["policyd", "milter", "lmtpd"]
    assert ("socketmap" in names) is socketmap
