"""A newcomer past the quick start, from README.rst: migrations, shared state, Postfix lines.

Found by following the README's sections on a test box (session 21): a Dovecot configuration
that enables a Pigeonhole extprogram without its plugin, a greylist whitelist edited for a
settings file elsewhere, amavis' Debian files with the values --define supplies, `owlery
postfix`'s lines fed to a real `postconf`. Each must end in one clear line (or clean output),
never a traceback, and never a file written where the postmaster did not point.
"""

import subprocess
import sys

import pytest

OWLERY = [sys.executable, "-m", "owlery.app.cli"]


def run(*args, timeout=120):
    return subprocess.run(OWLERY + list(args), capture_output=True, text=True, timeout=timeout)


# --- owlery sieve import-dovecot --------------------------------------------------------

DOVECONF_PIPE_WITHOUT_PLUGIN = """\
mail_location = maildir:/var/vmail/%d/%n/Maildir
mail_home = /var/vmail/%d/%n
protocol lmtp {
  mail_plugins = " sieve"
}
plugin {
  sieve = file:~/sieve;active=~/.dovecot.sieve
  sieve_extensions = +vnd.dovecot.pipe +editheader
}
"""


def test_dovecot_import_extprogram_without_its_plugin_is_reported(tmp_path):
    # `sieve_extensions = +vnd.dovecot.pipe` without `sieve_plugins = sieve_extprograms`: a
    # common half-done Pigeonhole setup. The import names it and goes on (exit 1), no traceback.
    saved = tmp_path / "doveconf-n.txt"
    saved.write_text(DOVECONF_PIPE_WITHOUT_PLUGIN)
    r = run("sieve", "import-dovecot", "--doveconf-output", str(saved))
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1, r.stderr
    assert "vnd.dovecot.pipe needs sieve_plugins = sieve_extprograms" in r.stderr
    disabled = [line for line in r.stdout.splitlines() if line.startswith("sieve_extensions_disabled")]
    assert len(disabled) == 1 and '"vnd.dovecot.pipe"' in disabled[0] and '"editheader"' not in disabled[0]


# --- owlery greylist whitelist add ------------------------------------------------------

def one_line_error(r):
    assert "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr.strip()


def test_greylist_whitelist_add_creates_no_directory(tmp_path):
    # The default whitelist is /etc/owlery/greylist_whitelist_clients: with the settings file
    # elsewhere and no /etc/owlery, `whitelist add` made /etc/owlery to write it. A directory
    # that is not there is the postmaster's to create: one line naming the setting, exit 1.
    cfg = tmp_path / "owlery.toml"
    target = tmp_path / "absent" / "greylist_whitelist_clients"
    cfg.write_text(f'state_backend = "memory"\ngreylist_whitelist_clients = ["{target}"]\n')
    r = run("greylist", "whitelist", "add", "--config", str(cfg), "mail.example.com")
    assert not target.parent.exists()
    assert r.returncode == 1
    line = one_line_error(r)
    assert "greylist_whitelist_clients" in line and f"{cfg}:2" in line and str(target) in line, line


# --- owlery config check: files_passwords -----------------------------------------------

def test_config_check_refuses_a_missing_passwords_file(tmp_path):
    # ManageSieve and the web start without it and refuse every login as a wrong password.
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'log_level = "info"\nfiles_passwords = "{tmp_path / "passwd"}"\n')
    r = run("config", "check", "--config", str(cfg))
    assert r.returncode == 1
    line = one_line_error(r)
    assert "files_passwords" in line and f"{cfg}:2" in line and str(tmp_path / "passwd") in line, line


def test_config_check_warns_of_passwords_that_never_log_in(tmp_path):
    # Dovecot takes {PLAIN}; Owlery refuses it unless files_passwords_plain, silently at login.
    (tmp_path / "passwd").write_text("bob@example.org:{PLAIN}bobpw\n"
                                     "carol@example.org:{SSHA512}c29tZXRoaW5n\n"
                                     "alice@example.org:{SHA512-CRYPT}$6$salt$abc\n")
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'files_passwords = "{tmp_path / "passwd"}"\n')
    r = run("config", "check", "--config", str(cfg))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("owlery: warning:")]
    assert len(warnings) == 2, r.stderr
    assert "line 1:" in warnings[0] and "files_passwords_plain" in warnings[0], warnings
    assert "line 2:" in warnings[1] and "SSHA512" in warnings[1], warnings
    cfg.write_text(f'files_passwords = "{tmp_path / "passwd"}"\nfiles_passwords_plain = true\n')
    r = run("config", "check", "--config", str(cfg))
    assert r.returncode == 0 and "files_passwords_plain" not in r.stderr, r.stderr


# --- owlery config check: where the Sieve scripts go ------------------------------------

def _settings(text):
    from owlery.settings import import_all_sections, parse_text
    import_all_sections()
    return parse_text(text)


def test_config_check_warns_when_the_maildirs_move_and_the_scripts_stay(tmp_path):
    # maildir_path_template moved under /srv; ManageSieve would still write (and delivery
    # read) the scripts under the default /var/lib/owlery/mail.
    from owlery.app.consistency import disagreements
    cfg = tmp_path / "owlery.toml"
    cfg.write_text('log_level = "info"\nmaildir_path_template = "/srv/mail/{domain}/{localpart}/Maildir"\n')
    r = run("config", "check", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    line = one_line_error(r)
    assert line.startswith("owlery: warning: maildir_path_template") and f"({cfg}:2)" in line, line
    assert 'delivery_sieve_script_template = "/srv/mail/{domain}/{localpart}/sieve/active.sieve"' in line, line
    both = ('maildir_path_template = "/srv/mail/{domain}/{localpart}/Maildir"\n'
            'delivery_sieve_script_template = "/srv/sieve/{domain}/{localpart}.sieve"\n')
    assert disagreements(_settings(both)) == []                     # both chosen: no opinion
    beneath = 'maildir_path_template = "/var/lib/owlery/mail/{domain}/{localpart}/Mail"\n'
    assert disagreements(_settings(beneath)) == []                  # still beside the scripts
    passwd = ('directory_backend = "passwd"\npasswd_domains = ["example.org"]\n'
              'maildir_path_template = "/srv/mail/{domain}/{localpart}/Maildir"\n')
    assert disagreements(_settings(passwd)) == []                   # {home} templates apply


# --- owlery run, started twice ----------------------------------------------------------

def test_second_owlery_run_refuses_before_claiming_to_listen(tmp_path, monkeypatch, capsys):
    # A second `owlery run` on the same settings took the first one's answers for its own
    # daemons: it printed "policyd pid N listening", the Postfix lines and the swaks line, and
    # only then did its children fail to bind. It must refuse before starting anything.
    import socket

    from owlery.app import supervisor
    from owlery.settings import import_all_sections, parse_text
    from tests.harness.procs import free_ports
    import_all_sections()
    policy, milter, lmtp = free_ports(3)
    settings = parse_text(f'policyd_listen = ["tcp:127.0.0.1:{policy}"]\n'
                          f'milter_listen = "tcp:127.0.0.1:{milter}"\n'
                          f'lmtpd_listen = ["tcp:127.0.0.1:{lmtp}"]\n'
                          'daemon_allow_root = true\n')
    started = []
    monkeypatch.setattr(supervisor.subprocess, "Popen", lambda *a, **k: started.append(a) or pytest.fail("started"))
    with socket.socket() as first:                     # the first instance's milter
        first.bind(("127.0.0.1", milter))
        first.listen(1)
        status = supervisor.run_all(str(tmp_path / "owlery.toml"), settings, ["example.org"])
    out, err = capsys.readouterr()
    assert status == 1 and started == [] and out == ""
    assert f"tcp:127.0.0.1:{milter} (milter_listen) answers already" in err and "listening" not in err, err


def test_a_redis_url_without_its_scheme_is_refused_in_the_file(tmp_path):
    """`state_redis_url = "127.0.0.1:6379"` passed config check, then policyd printed a
    traceback after "listening"; the file is refused with file, line and reason now."""
    from owlery import settings as settings_mod
    from owlery.state import STATE_REDIS_URL  # noqa: F401 - declares the setting
    path = tmp_path / "owlery.toml"
    path.write_text('state_backend = "redis"\nstate_redis_url = "127.0.0.1:6379"\n')
    with pytest.raises(settings_mod.SettingsError) as e:
        settings_mod.load(str(path))
    assert "owlery.toml:2" in str(e.value) and "redis://" in str(e.value)


def test_a_second_milter_on_the_same_port_says_so_in_one_line(tmp_path):
    import socket
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        (tmp_path / "owlery.toml").write_text(f'daemon_allow_root = true\nmilter_listen = "tcp:127.0.0.1:{port}"\n')
        done = run("milter", "-c", str(tmp_path / "owlery.toml"), timeout=60)
    finally:
        taken.close()
    assert done.returncode == 1, done
    assert "cannot listen" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_metrics_endpoint_that_is_not_tcp_is_refused_in_the_file(tmp_path):
    """`*_metrics_listen = "unix:..."` passed config check, then the daemon refused it at start."""
    from owlery import settings as settings_mod
    from owlery.metrics import LMTPD_METRICS_LISTEN  # noqa: F401 - declares the setting
    path = tmp_path / "owlery.toml"
    path.write_text('lmtpd_metrics_listen = "unix:/run/owlery/metrics.sock"\n')
    with pytest.raises(settings_mod.SettingsError) as e:
        settings_mod.load(str(path))
    assert "owlery.toml:1" in str(e.value) and "tcp:" in str(e.value)
    path.write_text('lmtpd_metrics_listen = "tcp:127.0.0.1:9042"\n')
    assert settings_mod.load(str(path)).lmtpd_metrics_listen == "tcp:127.0.0.1:9042"
