"""A user's Sieve script read as root (maildir_owner set) is read only if it is a regular file the
mail owner could read themselves (sieve/delivery/userfiles.py): a planted link to a root-only file, a hard link
or a FIFO never gets its content into the log, and never stalls delivery."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OWLERY = str(ROOT / ".venv" / "bin" / "owlery")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="delivering for another owner needs root")


def _setup(tmp_path: Path):
    nobody = pwd.getpwnam("nobody")
    home = tmp_path / "mail/example.org/alice"
    (home / "sieve").mkdir(parents=True)
    for p in (tmp_path / "mail", tmp_path / "mail/example.org"):
        os.chmod(p, 0o755)
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    os.chown(home / "sieve", nobody.pw_uid, nobody.pw_gid)
    secret = tmp_path / "root-only"
    secret.write_text("root:TOPSECRET-HASH:19000:0:99999:7:::\n")
    os.chmod(secret, 0o600)
    conf = tmp_path / "owlery.toml"
    conf.write_text(f"""
maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"
delivery_sieve_script_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/sieve/active.sieve"
maildir_owner = "nobody"
state_backend = "memory"
delivery_use_directory = false
log_level = "debug"
lda_log_path = "{tmp_path}/lda.log"
""")
    return home, secret, conf, nobody


def _deliver(conf: Path) -> str:
    """Deliver one message; the LDA's log."""
    r = subprocess.run([OWLERY, "lda", "-c", str(conf), "-f", "bob@remote.test", "-d", "alice@example.org"],
                       input=b"Subject: offer\n\nhello\n", capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    log = conf.parent / "lda.log"
    return log.read_text() if log.exists() else ""


def _inbox(home: Path) -> int:
    return sum(1 for sub in ("new", "cur") for _ in (home / "Maildir" / sub).iterdir())


def test_a_link_to_a_root_only_file_is_not_read(tmp_path):
    home, secret, conf, _ = _setup(tmp_path)
    os.symlink(secret, home / "sieve/active.sieve")
    log = _deliver(conf)
    assert _inbox(home) == 1
    assert "TOPSECRET" not in log and "not a file the mail owner" in log


def test_a_hard_link_is_not_read(tmp_path):
    home, secret, conf, _ = _setup(tmp_path)
    os.link(secret, home / "sieve/active.sieve")
    log = _deliver(conf)
    assert "TOPSECRET" not in log and "not a file the mail owner" in log and _inbox(home) == 1


def test_a_fifo_does_not_stall_delivery(tmp_path):
    home, _, conf, nobody = _setup(tmp_path)
    os.mkfifo(home / "sieve/active.sieve")
    os.chown(home / "sieve/active.sieve", nobody.pw_uid, nobody.pw_gid)
    log = _deliver(conf)
    assert "not a regular file" in log and _inbox(home) == 1


def test_the_users_own_linked_script_runs(tmp_path):
    home, _, conf, nobody = _setup(tmp_path)
    mine = home / "sieve/mine.sieve"
    mine.write_text('require ["fileinto"];\nif header :contains "subject" "offer" { fileinto "Deals"; }\n')
    os.chown(mine, nobody.pw_uid, nobody.pw_gid)
    os.symlink("mine.sieve", home / "sieve/active.sieve")
    _deliver(conf)
    assert len(list((home / "Maildir/.Deals/new").iterdir())) == 1


def test_an_administrators_world_readable_script_runs(tmp_path):
    home, _, conf, _ = _setup(tmp_path)
    script = home / "sieve/active.sieve"
    script.write_text('require ["fileinto"];\nfileinto "ByAdmin";\n')     # root-owned, 0644
    os.chmod(script, 0o644)
    _deliver(conf)
    assert len(list((home / "Maildir/.ByAdmin/new").iterdir())) == 1
