"""A newcomer's first mistakes, from README.rst, each answered with one clear line.

Found by trying the README's commands on a test box: a pipe into `head`, a DKIM key written
where the milter does not look, a whitelist or key file that cannot be written, a policy
query with nowhere to go, a map file that is not there. Each must end with one line that
names the setting (and where it is set) and a non-zero exit, never a traceback, and never a
daemon that starts and then fails every request.
"""

import os
import subprocess
import sys

import pytest
from twisted.internet.testing import MemoryReactorClock

from owlery.settings import load

OWLERY = [sys.executable, "-m", "owlery.app.cli"]


def run(*args, timeout=120):
    return subprocess.run(OWLERY + list(args), capture_output=True, text=True, timeout=timeout)


def one_line_error(r):
    """stderr is one line, no traceback."""
    assert "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr.strip()


def not_a_directory(tmp_path):
    """A path no one (root included) can create: its parent is a regular file."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    return blocker / "sub"


def test_config_show_into_head_ends_quietly():
    # `owlery config show | head`: the reader has gone (here before the first write, so the
    # outcome does not depend on how much the pipe buffers).
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        r = subprocess.run(OWLERY + ["config", "show"], stdout=write_end, stderr=subprocess.PIPE,
                           text=True, timeout=60)
    finally:
        os.close(write_end)
    assert "Traceback" not in r.stderr and "BrokenPipeError" not in r.stderr, r.stderr
    assert r.returncode == 141


@pytest.fixture
def genkey_in(tmp_path, monkeypatch):
    """`owlery dkim genkey` in this process, writing nothing outside tmp_path whatever directory
    it picks (a directory elsewhere, /etc/owlery/dkim say, fails as if not writable);
    returns (main, the directories asked for)."""
    from milters import dkimkeys
    from owlery.app.cli import main
    real_generate = dkimkeys.generate
    asked = []

    def generate(domain, selector, directory, **kw):
        asked.append(directory)
        if not str(directory).startswith(str(tmp_path)):
            raise PermissionError(13, "Permission denied")
        return real_generate(domain, selector, directory, **kw)
    monkeypatch.setattr(dkimkeys, "generate", generate)
    return main, asked


def test_dkim_genkey_writes_where_the_milter_reads(tmp_path, genkey_in):
    main, asked = genkey_in
    keys = tmp_path / "keys"
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'dkim_key_directory = "{keys}"\n')
    assert main(["dkim", "genkey", "--config", str(cfg), "example.org", "s1", "--type", "ed25519"]) == 0
    assert asked == [str(keys)]
    assert (keys / "example.org.s1.key").is_file()


def test_dkim_genkey_names_the_setting_it_cannot_write(tmp_path, genkey_in, capsys):
    main, _ = genkey_in
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'log_level = "info"\ndkim_key_directory = "{not_a_directory(tmp_path)}"\n')
    assert main(["dkim", "genkey", "--config", str(cfg), "example.org", "s1", "--type", "ed25519"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "dkim_key_directory" in err and f"{cfg}:2" in err, err


def test_greylist_whitelist_add_names_the_setting_it_cannot_write(tmp_path):
    cfg = tmp_path / "owlery.toml"
    target = not_a_directory(tmp_path) / "clients"
    cfg.write_text(f'greylist_whitelist_clients = ["{target}"]\n')
    r = run("greylist", "whitelist", "add", "--config", str(cfg), "mail.example.com")
    assert r.returncode == 1
    line = one_line_error(r)
    assert "greylist_whitelist_clients" in line and f"{cfg}:1" in line and str(target) in line, line


def test_token_key_names_the_setting_it_cannot_write(tmp_path):
    cfg = tmp_path / "owlery.toml"
    key = not_a_directory(tmp_path) / "token.key"
    cfg.write_text(f'quarantine_token_key_file = "{key}"\n')
    r = run("quarantine", "token-key", "--generate", "--config", str(cfg))
    assert r.returncode == 1
    assert "quarantine_token_key_file" in one_line_error(r)


def test_policyd_query_is_a_client_and_says_what_to_check(tmp_path):
    text = " ".join(run("policyd-query", "--help").stdout.split())
    assert "--endpoint" in text and "listen here" not in text and "the policy daemon to ask" in text, text
    endpoint = f"unix:{tmp_path / 'policyd.sock'}"      # nothing listens there
    r = run("policyd-query", "--endpoint", endpoint, "--recipient", "a@example.org")
    assert r.returncode == 75
    line = one_line_error(r)
    assert endpoint in line and "owlery policyd" in line and "--config" in line, line


@pytest.fixture
def missing_mailboxes(tmp_path):
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'log_level = "info"\nfiles_mailboxes = "{tmp_path / "nowhere" / "mailboxes"}"\n'
                   f'state_sqlite_path = "{tmp_path / "state.sqlite"}"\n'
                   f'policyd_listen = ["unix:{tmp_path / "policyd.sock"}"]\ndaemon_allow_root = true\n')
    return cfg


def test_policyd_refuses_to_build_on_a_missing_map_file(missing_mailboxes):
    from policyd.service import PolicyApp
    settings = load(str(missing_mailboxes))
    with pytest.raises(ValueError) as e:
        PolicyApp(settings, MemoryReactorClock())
    assert str(e.value).startswith(f"{missing_mailboxes}:2: files_mailboxes: cannot read "), e.value


def test_policyd_with_a_missing_map_file_exits_at_start(missing_mailboxes):
    # Before: it started, then every request was an internal error with a traceback.
    try:
        r = run("policyd", "--config", str(missing_mailboxes), timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("owlery policyd started with a missing files_mailboxes")
    assert r.returncode != 0
    assert f"{missing_mailboxes}:2: files_mailboxes: cannot read" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, r.stderr


def test_root_refusal_without_a_file_says_how_to_make_one(tmp_path, monkeypatch):
    from owlery import daemon
    from owlery.settings import Settings
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(daemon.RootRefused, match="owlery config init"):
        daemon.check_user(Settings(), "policyd")


def test_config_check_reads_the_map_files(tmp_path, missing_mailboxes):
    r = run("config", "check", "--config", str(missing_mailboxes))
    assert r.returncode == 1
    assert one_line_error(r).startswith(f"owlery: {missing_mailboxes}:2: files_mailboxes: cannot read "), r.stderr
    aliases = tmp_path / "aliases"
    aliases.write_text("sales@example.org\n")          # an alias without a target
    cfg = tmp_path / "broken.toml"
    cfg.write_text(f'files_aliases = "{aliases}"\n')
    r = run("config", "check", "--config", str(cfg))
    assert r.returncode == 1 and f"{aliases}:1: alias sales@example.org has no target" in one_line_error(r)


def test_milter_help_promises_one_listen_endpoint():
    # `owlery milter --listen A --listen B` is refused (libmilter takes one): the help says so.
    text = " ".join(run("milter", "--help").stdout.split())     # argparse wraps the help
    assert "one endpoint only" in text and "repeatable" not in text, text


def test_config_check_says_what_the_passwd_directory_needs(tmp_path):
    cfg = tmp_path / "owlery.toml"
    cfg.write_text('directory_backend = "passwd"\n')        # passwd_domains is required
    r = run("config", "check", "--config", str(cfg))
    assert r.returncode == 1 and "passwd_domains" in one_line_error(r), r.stderr


def test_quarantine_notify_dry_run_says_when_there_is_nothing(tmp_path):
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'quarantine_directory = "{tmp_path / "quarantine"}"\n')
    r = run("quarantine", "notify", "--dry-run", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "would send nothing: no quarantined message waits for a notice", r.stdout


def test_milter_names_the_line_of_a_key_it_cannot_read(tmp_path):
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'dkim_key_directory = "{tmp_path / "keys"}"\n'
                   'dkim_sign_keys = { "example.org" = ["2025r"] }\n'      # never generated
                   f'milter_listen = "unix:{tmp_path / "milter.sock"}"\ndaemon_allow_root = true\n')
    r = run("milter", "--config", str(cfg), timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    # (a test runs as root: the milter's "running as root" warning comes first)
    [line] = [x for x in r.stderr.splitlines() if "WARNING milter: running as root" not in x]
    assert line.startswith(f"owlery: milter: {cfg}:2: dkim_sign_keys.example.org: cannot read "), line
