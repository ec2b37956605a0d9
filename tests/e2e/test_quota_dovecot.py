"""Dovecot's maildir quota backend and Owlery read and write the same maildirsize.

Owlery delivers with a quota (Maildir.deliver: definition line + deltas); a private Dovecot
with `quota = maildir` and no quota rules of its own (it then takes the limits from
maildirsize) reports the same usage and limit through `doveadm quota get`; Dovecot then
saves a message over IMAP (APPEND), and `owlery quota report` sees the usage Dovecot wrote.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from owlery.maildir import Maildir, Owner, Quota

USER = "alice@example.org"
MSG = b"From: a@b.test\nSubject: x\n\n" + b"y" * 2020 + b"\n"      # 2,048 bytes
QUOTA_CONF = """
mail_plugins = $mail_plugins quota
plugin {
  quota = maildir:User quota
}
"""


@pytest.fixture
def home():
    work = Path(tempfile.mkdtemp(prefix="owlery-quota-dovecot-"))
    os.chmod(work, 0o755)
    h = work / "home"
    h.mkdir()
    nobody = pwd.getpwnam("nobody")
    os.chown(h, nobody.pw_uid, nobody.pw_gid)
    yield work, h, Owner(nobody.pw_uid, nobody.pw_gid)
    subprocess.run(["rm", "-rf", str(work)], check=False)


def test_dovecot_and_owlery_agree_on_usage_and_limits(home, capsys):
    from owlery.app.cli import main
    from tests.harness.dovecot import DovecotInstance
    work, h, owner = home
    md = Maildir(str(h / "Maildir"), fsync="never", owner=owner)
    for _ in range(5):
        md.deliver(MSG, quota=Quota(1024 * 1024, 100))
    with DovecotInstance(work / "dovecot", {USER: str(h)}, extra_conf=QUOTA_CONF) as dovecot:
        got = dovecot.quota(USER)
        assert got["STORAGE"] == (10, 1024), got            # KiB: 5 x 2,048 bytes of 1 MiB
        assert got["MESSAGE"] == (5, 100), got
        imap = dovecot.imap(USER)
        typ, _ = imap.append("INBOX", None, None, MSG.replace(b"\n", b"\r\n"))
        assert typ == "OK"
        imap.logout()
        got = dovecot.quota(USER)
        assert got["MESSAGE"] == (6, 100), got
    cfg = work / "owlery.toml"
    cfg.write_text("")
    assert main(["quota", "report", "-c", str(cfg), "--maildir", str(h / "Maildir")]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    # Dovecot stores what IMAP sent with CRLF as LF lines, as we do: 6 x 2,048 bytes.
    stored = 6 * len(MSG)
    used_bytes, limit_bytes, used_msgs, limit_msgs = (int(x) for x in row[1:5])
    assert (used_msgs, limit_bytes, limit_msgs) == (6, 1024 * 1024, 100)
    assert used_bytes == stored, (row, stored)
    assert re.fullmatch(r"[0-9.]+%", row[0])
