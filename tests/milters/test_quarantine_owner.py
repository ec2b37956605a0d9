"""`owlery quarantine list` run as root first must not leave a store the milter cannot write.

With daemon_user set, whatever root creates in the quarantine belongs to daemon_user, even
when the directory above it (e.g. /var/lib/owlery from quickstart) is root's.
"""

import os
import pwd

from owlery.app.cli import main
from owlery.settings import Settings

NOBODY = pwd.getpwnam("nobody")


def test_cli_as_root_creates_the_store_as_daemon_user(tmp_path, capsys):
    assert os.geteuid() == 0, "the suite runs as root (scripts/test)"
    state = tmp_path / "state"              # root-owned, like /var/lib/owlery on a fresh host
    state.mkdir()
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'quarantine_directory = "{state}/quarantine"\ndaemon_user = "nobody"\n')
    assert main(["quarantine", "list", "--config", str(cfg)]) == 0
    owners = {os.path.relpath(os.path.join(d, n), state): os.lstat(os.path.join(d, n)).st_uid
              for d, dirs, files in os.walk(state / "quarantine") for n in dirs + files + [""]}
    assert owners and set(owners.values()) == {NOBODY.pw_uid}, owners


def test_an_unknown_daemon_user_is_a_clear_error(tmp_path):
    from owlery.quarantine import QuarantineError, open_store
    s = Settings().replace(quarantine_directory=str(tmp_path / "q"), daemon_user="no-such-user-owlery")
    try:
        open_store(s)
    except QuarantineError as e:
        assert "no-such-user-owlery" in str(e)
    else:
        raise AssertionError("an unknown daemon_user was accepted")
