"""The starter set `owlery run` writes on a first start (owlery.app.starter)."""

import os
import stat

import pytest

from owlery import settings as settings_mod
from owlery.app import starter
from owlery.directory import open_directory

DEFAULTS = "# every default, commented out\n#log_level = \"info\"\n"


def fake_postconf(tmp_path, body):
    exe = tmp_path / "postconf"
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(0o755)
    return str(exe)


@pytest.mark.parametrize("body, name, source", [
    ('echo "mail.example.net"\n', "mail.example.net", "Postfix's mydomain"),
    ('echo "Example.COM."\n', "example.com", "Postfix's mydomain"),
    ('echo localdomain\n', "example.org", "Postfix's mydomain 'localdomain' is not a mail domain"),
    ('echo "host.localdomain"\n', "example.org", "Postfix's mydomain 'host.localdomain' is not a mail domain"),
    ('echo "postconf: fatal: open /etc/postfix/main.cf: No such file" >&2; exit 1\n', "example.org",
     "Postfix is not configured (postconf: fatal: open /etc/postfix/main.cf: No such file)"),
])
def test_hosted_domain_comes_from_postfix_when_it_has_a_real_one(tmp_path, body, name, source):
    assert starter.hosted_domain(fake_postconf(tmp_path, body)) == starter.HostedDomain(name, source)


def test_hosted_domain_without_postfix(tmp_path):
    assert starter.hosted_domain(str(tmp_path / "missing")) == starter.HostedDomain(
        "example.org", "Postfix is not installed")


def test_the_default_settings_file_keeps_the_system_layout():
    layout = starter.StarterLayout.for_config("/etc/owlery/owlery.toml", "/etc/owlery/owlery.toml", "owlery")
    assert (layout.maps_dir, layout.data_dir, layout.system) == ("/etc/owlery", "/var/lib/owlery", True)
    assert [name for name, _ in starter.starter_settings(layout)] == ["files_mailboxes", "files_aliases",
                                                                      "daemon_user"]


def test_any_other_settings_file_keeps_everything_beside_it(tmp_path):
    config = tmp_path / "run" / "owlery.toml"
    layout = starter.StarterLayout.for_config(str(config), "/etc/owlery/owlery.toml", daemon_user=None)
    written = starter.write_starter(layout, starter.HostedDomain("newcomer.test", "test"), DEFAULTS)
    assert written == [str(config), str(tmp_path / "run" / "mailboxes"), str(tmp_path / "run" / "aliases")]
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    settings = settings_mod.load(str(config))
    assert settings.files_mailboxes == str(tmp_path / "run" / "mailboxes")
    assert settings.state_sqlite_path == str(tmp_path / "run" / "state" / "state.sqlite")
    assert settings.quarantine_directory == str(tmp_path / "run" / "quarantine")
    found = open_directory(settings).resolve("postmaster@newcomer.test")
    assert [m.maildir for m in found.mailboxes] == [
        str(tmp_path / "run" / "mail" / "newcomer.test" / "postmaster" / "Maildir")]
    assert open_directory(settings).resolve("nobody@newcomer.test").kind == "unknown"


def test_existing_files_are_never_overwritten(tmp_path):
    (tmp_path / "mailboxes").write_text("mine\n")
    (tmp_path / "aliases").symlink_to(tmp_path / "elsewhere")     # not even through a link
    layout = starter.StarterLayout.for_config(str(tmp_path / "owlery.toml"), "/etc/owlery/owlery.toml",
                                              daemon_user=None)
    written = starter.write_starter(layout, starter.HostedDomain("x.test", "test"), DEFAULTS)
    assert written == [str(tmp_path / "owlery.toml")]
    assert (tmp_path / "mailboxes").read_text() == "mine\n"
    assert not (tmp_path / "elsewhere").exists()
    assert starter.write_starter(layout, starter.HostedDomain("x.test", "test"), "changed") == []
    assert "changed" not in (tmp_path / "owlery.toml").read_text()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


class _Settings:
    def __init__(self, listen):
        self.lmtpd_listen = listen


@pytest.mark.parametrize("listen, where", [
    (["tcp:127.0.0.1:10042"], "--server 127.0.0.1 --port 10042"),
    ("tcp:[::1]:2424", "--server ::1 --port 2424"),
    (["unix:/run/owlery/lmtpd.sock"], "--socket /run/owlery/lmtpd.sock"),
])
def test_try_it_is_a_swaks_line_for_the_lmtp_endpoint(listen, where):
    lines = starter.try_it(_Settings(listen), "postmaster@x.test", "/m/x.test/postmaster/Maildir")
    assert lines[1] == (f"  swaks {where} --protocol LMTP --from newcomer@example.net "
                        "--to postmaster@x.test --header 'Subject: Hello from Owlery'")
    assert lines[2] == "owlery: it lands in /m/x.test/postmaster/Maildir/new/"


def test_the_readme_shows_what_a_first_run_prints():
    from tests.core.test_readme import literal_blocks, section
    [block] = literal_blocks(section("Your first message"))
    layout = starter.StarterLayout.for_config("/etc/owlery/owlery.toml", "/etc/owlery/owlery.toml")
    maildir = os.path.join(layout.data_dir, "mail", "example.org", "postmaster", "Maildir")
    assert block.splitlines() == starter.try_it(settings_mod.Settings(), "postmaster@example.org", maildir)


def test_a_data_directory_the_daemon_user_cannot_write_is_named_not_used():
    """A root-owned data directory left by an earlier root run: the first start says how to fix
    it instead of starting daemons that defer every delivery (451 Permission denied)."""
    import os
    import pwd
    import shutil
    import tempfile
    from pathlib import Path
    if os.geteuid() != 0:
        pytest.skip("creating directories for another user needs root")
    tmp_path = Path(tempfile.mkdtemp(prefix="owlery-starter-"))     # /tmp: nobody may enter it
    os.chmod(tmp_path, 0o755)
    config = tmp_path / "run" / "owlery.toml"
    for sub in ("mail", "state", "quarantine"):
        (tmp_path / "run" / sub).mkdir(parents=True)         # root's, 0755: nobody cannot write
    os.chmod(tmp_path / "run", 0o755)
    layout = starter.StarterLayout.for_config(str(config), "/etc/owlery/owlery.toml", daemon_user="nobody")
    with pytest.raises(starter.StarterError, match=r"nobody, who runs the daemons, cannot write in it .*chown -R nobody:"):
        starter.write_starter(layout, starter.HostedDomain("newcomer.test", "test"), DEFAULTS)
    # once the directories are the daemon user's, the same start goes through
    nobody = pwd.getpwnam("nobody")
    for sub in ("mail", "state", "quarantine"):
        os.chown(tmp_path / "run" / sub, nobody.pw_uid, nobody.pw_gid)
    try:
        assert str(config) in starter.write_starter(layout, starter.HostedDomain("newcomer.test", "test"), DEFAULTS)
    finally:
        shutil.rmtree(tmp_path)
