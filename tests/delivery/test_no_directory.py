"""Delivery with no directory configured defers, it never answers "user unknown" (which bounces).

With delivery_use_directory on (the default) and the files backend naming no map file, every
recipient would be unknown and Postfix would bounce all mail: lmtpd refuses to start, the LDA
exits 75 (EX_TEMPFAIL, Postfix retries) naming the settings to fix.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from owlery.settings import Settings, SettingsError
from sieve.delivery.users import UserResolver

ROOT = Path(__file__).resolve().parents[2]


def test_resolver_refuses_settings_without_a_directory():
    with pytest.raises(SettingsError, match="no directory is configured"):
        UserResolver.from_settings(Settings())
    assert UserResolver.from_settings(Settings().replace(delivery_use_directory=False)).directory is None


@pytest.mark.parametrize("command", ["owlery", "owlery-lda"])
def test_lda_defers_when_no_directory_is_configured(tmp_path, command):
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"\n')
    exe = str(ROOT / ".venv" / "bin" / command)
    argv = [exe] + (["lda"] if command == "owlery" else []) + ["-c", str(cfg), "-f", "a@b.test", "-d", "bob@example.org"]
    done = subprocess.run(argv, input=b"Subject: x\n\nhi\n", capture_output=True, timeout=60)
    assert done.returncode == 75, done.stderr
    assert b"no directory is configured" in done.stderr
    assert not (tmp_path / "mail").exists()


def test_lmtpd_does_not_start_without_a_directory(tmp_path):
    from tests.harness.procs import free_port
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'lmtpd_listen = ["tcp:127.0.0.1:{free_port()}"]\ndaemon_allow_root = true\n')
    done = subprocess.run([sys.executable, "-m", "owlery.app.cli", "lmtpd", "--config", str(cfg)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 1
    assert "cannot start" in done.stderr and "no directory is configured" in done.stderr
