"""The Postfix lines Owlery prints (owlery.app.postfix)."""

import pytest

from owlery.app import postfix
from owlery.endpoints import parse_endpoint
from owlery.settings import Settings


@pytest.mark.parametrize("text,expected", [
    ("tcp:127.0.0.1:10040", "inet:127.0.0.1:10040"),
    ("tcp:[::1]:10040", "inet:[::1]:10040"),
    ("unix:/run/owlery/policyd.sock", "unix:/run/owlery/policyd.sock"),
])
def test_endpoint_spelling(text, expected):
    assert postfix.postfix_endpoint(parse_endpoint(text)) == expected


def test_systemd_endpoint_has_no_postfix_address():
    with pytest.raises(ValueError, match="systemd"):
        postfix.postfix_endpoint(parse_endpoint("systemd:policyd"))


def test_policy_service_runs_after_relay_control():
    cf = dict(postfix.main_cf(Settings(), ["example.org"]))
    assert cf["smtpd_relay_restrictions"].endswith("reject_unauth_destination")
    assert "check_policy_service" not in cf["smtpd_relay_restrictions"]
    assert cf["smtpd_recipient_restrictions"].startswith("check_policy_service")
    assert cf["milter_default_action"] == "tempfail"


def test_render_follows_settings():
    s = Settings().replace(policyd_listen=["unix:/run/p.sock"], milter_listen="tcp:127.0.0.1:7000",
                           lmtpd_listen=["unix:/run/l.sock"])
    text = postfix.render(s, ["a.example", "b.example"], command="/opt/owlery/bin/owlery")
    assert "check_policy_service { unix:/run/p.sock, timeout=47s }" in text
    assert "smtpd_milters = inet:127.0.0.1:7000" in text
    assert "virtual_transport = lmtp:unix:/run/l.sock" in text
    assert "virtual_mailbox_domains = a.example b.example" in text
    assert "argv=/opt/owlery/bin/owlery-lda -f" in text


@pytest.mark.parametrize("overrides,calls", [
    ({}, 0),                                                                 # defaults: no header, no DATA
    ({"policyd_checks": {"RCPT": ["greylist"]}}, 0),                        # X-Greylist goes out at RCPT
    ({"policyd_checks": {"RCPT": ["spf"]}}, 0),
    # the bug: SPF's header takes the RCPT reply, X-Greylist must wait for DATA
    ({"policyd_checks": {"RCPT": ["spf", "greylist"]}}, 1),
    ({"policyd_checks": {"RCPT": ["spf", "greylist"]}, "spf_header_type": "none"}, 0),
    ({"policyd_checks": {"RCPT": ["spf", "greylist"]}, "greylist_header": ""}, 0),
    ({"policyd_checks": {"RCPT": ["spf"], "DATA": ["spf"]}}, 1),            # a check runs at DATA
    ({"policyd_checks": {"RCPT": ["spf"], "DATA": ["spf"]}, "spf_header_type": "both"}, 1),
    # Received-SPF and X-Greylist at RCPT, Authentication-Results at DATA: two DATA replies
    ({"policyd_checks": {"RCPT": ["spf", "greylist"], "DATA": ["spf"]}, "spf_header_type": "both"}, 2),
])
def test_data_restrictions_when_a_check_runs_or_a_header_waits_for_data(overrides, calls):
    cf = dict(postfix.main_cf(Settings().replace(**overrides), ["example.org"]))
    if calls == 0:
        assert "smtpd_data_restrictions" not in cf
    else:
        assert cf["smtpd_data_restrictions"] == ", ".join([cf["smtpd_recipient_restrictions"]] * calls)


def test_lda_line_names_a_non_default_settings_file(tmp_path):
    """The pipe transport's LDA reads the file the lines were printed for (else: defaults)."""
    from owlery import settings as settings_mod
    cfg = tmp_path / "owlery.toml"
    cfg.write_text("")
    [line] = [x for x in postfix.master_cf(settings_mod.load(str(cfg)), command="/usr/bin/owlery").splitlines()
              if "argv=" in x]
    assert f"argv=/usr/bin/owlery-lda -c {cfg} -f ${{sender}}" in line
    [default] = [x for x in postfix.master_cf(Settings(), command="/usr/bin/owlery").splitlines() if "argv=" in x]
    assert "argv=/usr/bin/owlery-lda -f ${sender}" in default


def test_lda_line_runs_owlery_lda_under_owlerys_interpreter(tmp_path):
    """pip writes `#!PYTHON` into `owlery`: the pipe command is `PYTHON -I -S .../owlery-lda`,
    which skips owlery-lda's sh part (~0.6 ms a message); any other first line (env, a sh
    wrapper, an interpreter that is not there) leaves owlery-lda to find its interpreter."""
    import sys
    (tmp_path / "bin").mkdir()
    owlery = tmp_path / "bin" / "owlery"
    owlery.write_text(f"#!{sys.executable}\n# the console script pip writes\n")
    assert postfix.lda_command(str(owlery)) == f"{sys.executable} -I -S {tmp_path}/bin/owlery-lda"
    [line] = [x for x in postfix.master_cf(Settings(), command=str(owlery)).splitlines() if "argv=" in x]
    assert f"argv={sys.executable} -I -S {tmp_path}/bin/owlery-lda -f ${{sender}}" in line
    for first in ("#!/bin/sh", "#!/usr/bin/env python3", f"#!{tmp_path}/gone/python3", ""):
        owlery.write_text(first + "\n")
        assert postfix.lda_command(str(owlery)) == f"{tmp_path}/bin/owlery-lda", first


def test_owlery_postfix_prints_the_directorys_domains(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "mailboxes").write_text("alice@b.test  b.test/alice/Maildir\nbob@a.test  a.test/bob/Maildir\n")
    (tmp_path / "aliases").write_text("@c.test  @a.test\n")
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'files_mailboxes = "{tmp_path}/mailboxes"\nfiles_aliases = "{tmp_path}/aliases"\n')
    out = subprocess.run([sys.executable, "-m", "owlery.app.cli", "postfix", "--config", str(cfg)], cwd=root,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "virtual_mailbox_domains = a.test b.test c.test\n" in out
    cfg.write_text('directory_backend = "ldap"\nldap_domains = ["z.test", "y.test"]\n')
    out = subprocess.run([sys.executable, "-m", "owlery.app.cli", "postfix", "--config", str(cfg)], cwd=root,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    # An LDAP directory's domains and aliases reach Postfix through `owlery socketmap`.
    sm = "socketmap:" + postfix.postfix_endpoint(parse_endpoint(Settings().socketmap_listen[0]),
                                                 Settings().daemon_postfix_queue_directory)
    assert f"virtual_mailbox_domains = {sm}:virtual_mailbox_domains\n" in out
    assert f"virtual_alias_maps = {sm}:virtual_alias_maps\n" in out


def test_release_service_and_alias_maps_are_printed(tmp_path):
    text = postfix.render(Settings(), ["example.org"], command="/usr/bin/owlery")
    assert "127.0.0.1:10025 inet n  -  n  -  -  smtpd\n  -o smtpd_milters=\n" in text
    assert "  -o smtpd_data_restrictions=\n" in text and "virtual_alias_maps" not in text
    s = Settings().replace(quarantine_release_smtp_endpoint="tcp:127.0.0.1:10099",
                           files_aliases=str(tmp_path / "aliases"))
    text = postfix.render(s, ["example.org"], command="/usr/bin/owlery")
    assert "127.0.0.1:10099 inet n" in text
    assert f"virtual_alias_maps = texthash:{tmp_path / 'aliases'}\n" in text
    assert "inet n  -  n" not in postfix.render(s.replace(quarantine_release_method="sendmail"), ["example.org"])


def test_relative_paths_are_printed_absolute(tmp_path, monkeypatch, capsys):
    """pipe(8) runs the LDA in Postfix's queue directory and Postfix opens its maps from there:
    a relative --config, map file or `owlery` found through a relative PATH entry must be
    printed as the absolute path `owlery postfix` itself read."""
    from owlery.app import cli
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "owlery").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "owlery").chmod(0o755)
    monkeypatch.setenv("PATH", "bin")
    (tmp_path / "mailboxes").write_text("alice@a.test a.test/alice/Maildir\n")
    (tmp_path / "aliases").write_text("sales@a.test alice@a.test\n")
    (tmp_path / "files.toml").write_text('files_mailboxes = "mailboxes"\nfiles_aliases = "aliases"\n')
    assert cli.main(["postfix", "--config", "files.toml"]) == 0
    out = capsys.readouterr().out
    [argv] = [line for line in out.splitlines() if "argv=" in line]
    assert f"argv={tmp_path}/bin/owlery-lda -c {tmp_path}/files.toml -f ${{sender}}" in argv, argv
    assert f"virtual_alias_maps = texthash:{tmp_path}/aliases\n" in out
    # the default file, however it is spelled, needs no -c
    monkeypatch.chdir("/etc")
    default = postfix.master_cf(Settings(path="owlery/../owlery/owlery.toml"), command="/usr/bin/owlery")
    assert "argv=/usr/bin/owlery-lda -f " in default


def test_a_relative_queue_directory_is_taken_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = Settings().replace(daemon_postfix_queue_directory="queue",
                           policyd_listen=[f"unix:{tmp_path}/queue/owlery/policyd.sock"],
                           milter_listen="unix:/run/owlery/milter.sock")
    text = postfix.render(s, ["example.org"], command="/x/owlery")
    assert "check_policy_service { unix:owlery/policyd.sock, timeout=47s }" in text
    assert f"# /run/owlery/milter.sock is outside Postfix's queue directory {tmp_path}/queue:" in text


def test_a_socketmap_socket_outside_the_queue_directory_is_flagged():
    """trivial-rewrite and cleanup ask the socketmap (virtual_mailbox_domains, virtual_alias_maps)
    and run chrooted on Debian: its unix socket must be under the queue directory too."""
    outside = "unix:/run/owlery/socketmap.sock"
    ldap = Settings().replace(directory_backend="ldap", socketmap_listen=[outside])
    assert postfix.unreachable_when_chrooted(ldap) == ["/run/owlery/socketmap.sock"]
    text = postfix.render(ldap, ["example.org"], command="/x/owlery")
    assert ("# /run/owlery/socketmap.sock is outside Postfix's queue directory /var/spool/postfix: a chrooted "
            "trivial-rewrite, cleanup or smtpd (chroot column y in master.cf) cannot reach it") in text
    assert "virtual_alias_maps = socketmap:unix:/run/owlery/socketmap.sock:virtual_alias_maps" in text
    inside = ldap.replace(socketmap_listen=["unix:/var/spool/postfix/owlery/socketmap.sock"])
    assert postfix.unreachable_when_chrooted(inside) == []
    assert "socketmap:unix:owlery/socketmap.sock:virtual_alias_maps" in postfix.render(inside, ["example.org"])
    # a files directory prints no socketmap lines: its socket is nobody's business then
    assert postfix.unreachable_when_chrooted(Settings().replace(socketmap_listen=[outside])) == []


def test_ldap_prints_the_valid_recipients_for_postfix_and_files_does_not(tmp_path):
    """Postfix refuses unknown users of virtual_mailbox_domains itself only with a non-empty
    virtual_mailbox_maps; delivery is over LMTP, so the map need only say "found"."""
    ldap = Settings().replace(directory_backend="ldap", socketmap_listen=["tcp:127.0.0.1:10044"])
    cf = dict(postfix.main_cf(ldap, ["example.org"]))
    assert cf["virtual_mailbox_maps"] == "socketmap:inet:127.0.0.1:10044:relay_recipient_maps"
    assert cf["virtual_transport"].startswith("lmtp:")
    files = Settings().replace(files_mailboxes=str(tmp_path / "mailboxes"))
    assert "virtual_mailbox_maps" not in dict(postfix.main_cf(files, ["example.org"]))


def test_release_service_logs_under_its_own_name():
    """The release smtpd's maillog lines say it took the message, not the scanning smtpd."""
    text = postfix.release_service(Settings())
    assert text.startswith("# Quarantine release (owlery quarantine release): loopback only, not scanned again\n"
                           "127.0.0.1:10025 inet n  -  n  -  -  smtpd\n  -o ")
    assert text.endswith("  -o mynetworks=127.0.0.0/8\n  -o syslog_name=postfix/owlery-release\n")


SM = "socketmap:inet:127.0.0.1:10044"
RELAY_TABLES = {"relay_domains": f"{SM}:virtual_mailbox_domains", "relay_recipient_maps": f"{SM}:relay_recipient_maps",
                "virtual_alias_domains": "", "virtual_alias_maps": f"{SM}:virtual_alias_maps",
                "transport_maps": f"{SM}:transport_maps"}


@pytest.mark.parametrize("directory", [
    {"directory_backend": "ldap"},
    {"files_mailboxes": "/srv/mailboxes", "files_mail_hosts": "/srv/mail_hosts"},
    {"files_mailboxes": "/srv/mailboxes"},       # --role relay: the socketmap serves transport_maps
])
def test_relay_role_prints_the_relay_tables(directory):
    """A relay in front of back ends: relay_domains, relay_recipient_maps, aliases expanded
    there and transport_maps to each user's back end, from the socketmap; no local delivery."""
    s = Settings().replace(socketmap_listen=["tcp:127.0.0.1:10044"], **directory)
    assert postfix.uses_socketmap(s, "relay")
    cf = dict(postfix.main_cf(s, ["example.org"], role="relay"))
    assert {k: cf[k] for k in RELAY_TABLES if k in cf} == RELAY_TABLES
    for backend_only in ("virtual_mailbox_domains", "virtual_mailbox_maps", "virtual_transport",
                         "owlery_destination_recipient_limit"):
        assert backend_only not in cf
    assert cf["smtpd_recipient_restrictions"].startswith("check_policy_service")   # the relay's checks
    text = postfix.render(s, ["example.org"], command="/x/owlery", role="relay")
    assert "transport_maps = socketmap:inet:127.0.0.1:10044:transport_maps\n" in text
    assert "argv=" not in text and "127.0.0.1:10025 inet n" in text    # no LDA; the release smtpd stays


def test_files_mail_hosts_reads_the_directory_through_the_socketmap():
    """Mail hosts in map files: Postfix asks `owlery socketmap` (as for LDAP), so `owlery run`
    starts it and the back end's lines name it; without them Postfix reads the files itself."""
    files = Settings().replace(files_mailboxes="/srv/mailboxes", socketmap_listen=["tcp:127.0.0.1:10044"])
    assert not postfix.uses_socketmap(files)
    hosts = files.replace(files_mail_hosts="/srv/mail_hosts")
    assert postfix.uses_socketmap(hosts)
    cf = dict(postfix.main_cf(hosts, ["example.org"]))
    assert cf["virtual_mailbox_domains"] == f"{SM}:virtual_mailbox_domains"
    assert cf["virtual_transport"].startswith("lmtp:") and "transport_maps" not in cf


def test_owlery_postfix_role_option(tmp_path, capsys):
    from owlery.app import cli
    cfg = tmp_path / "owlery.toml"
    cfg.write_text('directory_backend = "ldap"\nldap_domains = ["z.test"]\nsocketmap_listen = ["tcp:127.0.0.1:10044"]\n')
    assert cli.main(["postfix", "--role", "relay", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    for name, value in RELAY_TABLES.items():
        assert f"\n{name} = {value}".rstrip() + "\n" in out
    assert "virtual_transport" not in out
    assert cli.main(["postfix", "--config", str(cfg)]) == 0          # default: a back end
    out = capsys.readouterr().out
    assert f"virtual_mailbox_domains = {SM}:virtual_mailbox_domains\n" in out and "transport_maps" not in out
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["postfix", "--role", "mx"])


def test_local_accounts_get_local8_lines_and_no_virtual_ones(tmp_path):
    """directory_backend = "passwd": Postfix's local(8) delivers, running the LDA as each account
    (tests/e2e/test_passwd_local_postfix.py loads these lines into a real Postfix)."""
    s = Settings().replace(directory_backend="passwd", passwd_domains=["a.test", "b.test"],
                           passwd_aliases=str(tmp_path / "aliases"))
    cf = dict(postfix.main_cf(s, ["a.test", "b.test"], command="/usr/bin/owlery"))
    assert cf["mydestination"] == "$myhostname, localhost.$mydomain, localhost, a.test, b.test"
    assert cf["local_recipient_maps"] == "proxy:unix:passwd.byname $alias_maps"
    assert cf["alias_maps"] == f"hash:{tmp_path / 'aliases'}"
    assert cf["mailbox_command"].endswith('owlery-lda -a "$RECIPIENT" -d "$USER"')
    assert not {"virtual_mailbox_domains", "virtual_transport", "virtual_alias_maps"} & set(cf)
    text = postfix.render(s, ["a.test"], command="/usr/bin/owlery")
    assert "pipe\n" not in text and "owlery_destination_recipient_limit" not in text
    relay = dict(postfix.main_cf(s, ["a.test"], role="relay"))
    assert "mailbox_command" not in relay and "relay_domains" in relay
