"""`owlery run` (the Quick start's daemon set): starts all three, prints Postfix lines, stops cleanly."""

import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.harness.procs import free_ports, tcp_connects, wait_until

ROOT = Path(__file__).resolve().parents[2]


def start_run(config, *extra):
    return subprocess.Popen([sys.executable, "-m", "owlery.app.cli", "run", "--config", str(config), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_run_starts_everything_prints_postfix_lines_and_stops(tmp_path):
    policy, milter, lmtp = free_ports(3)
    config = tmp_path / "owlery.toml"
    config.write_text(f'policyd_listen = ["tcp:127.0.0.1:{policy}"]\n'
                      f'milter_listen = "tcp:127.0.0.1:{milter}"\n'
                      f'lmtpd_listen = ["tcp:127.0.0.1:{lmtp}"]\n'
                      f'maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"\n'
                      'delivery_use_directory = false\n')
    proc = start_run(config, "--domain", "example.org")
    try:
        first = proc.stdout.readline()          # printed only once every daemon listens
        assert first == "# /etc/postfix/main.cf\n", proc.stderr.read() if proc.poll() is not None else first
        lines = [first]
        while not lines[-1].startswith("  flags="):
            lines.append(proc.stdout.readline())
        text = "".join(lines)
        assert f"check_policy_service {{ inet:127.0.0.1:{policy}, timeout=10s }}" in text
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


def test_first_run_writes_a_starter_set_and_its_try_it_line_delivers(tmp_path):
    """A newcomer's first `owlery run`: settings, a postmaster@ mailbox, and a swaks line that works."""
    config = tmp_path / "etc" / "owlery.toml"
    proc = start_run(config, "--domain", "newcomer.test")
    try:
        lines = []
        while not lines or not lines[-1].startswith("owlery: it lands in "):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.poll() is not None else "stdout closed"
            lines.append(line.rstrip("\n"))
        text = config.read_text()
        assert "#policyd_listen = " in text                      # every default, commented out
        assert f'files_mailboxes = "{tmp_path}/etc/mailboxes"' in text
        assert oct(config.stat().st_mode & 0o777) == "0o640"
        assert "postmaster@newcomer.test" in (tmp_path / "etc" / "mailboxes").read_text()
        assert (tmp_path / "etc" / "aliases").exists()
        # Built-in default endpoints (the ones README.rst shows) come up.
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


def test_a_second_run_overwrites_nothing(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "mailboxes").write_text("alice@mine.test  mine.test/alice/Maildir\n")
    config = etc / "owlery.toml"
    proc = start_run(config, "--domain", "mine.test")
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
    again = start_run(config, "--domain", "mine.test")
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
    config.write_text('lmtpd_listen = ["unix:/proc/forbidden/lmtpd.sock"]\n')
    proc = start_run(config)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "lmtpd exited" in err
