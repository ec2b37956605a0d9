"""`owlery run` (the Quick start's daemon set): starts all three, prints Postfix lines, stops cleanly."""

import os
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
                      f'maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"\n')
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


def test_run_writes_default_settings_when_missing(tmp_path):
    config = tmp_path / "etc" / "owlery.toml"
    proc = start_run(config)
    try:
        wait_until(lambda: config.exists(), 30, "default settings file", None)
        assert "#policyd_listen = " in config.read_text()
        # Built-in default endpoints (the ones README.rst shows) come up.
        wait_until(lambda: all(tcp_connects(p) for p in (10040, 10041, 10042)), 60, "default ports")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_reports_a_daemon_that_cannot_start(tmp_path):
    config = tmp_path / "owlery.toml"
    config.write_text('lmtpd_listen = ["unix:/proc/forbidden/lmtpd.sock"]\n')
    proc = start_run(config)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "lmtpd exited" in err
