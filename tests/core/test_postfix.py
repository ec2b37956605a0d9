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
    assert "check_policy_service { unix:/run/p.sock, timeout=10s }" in text
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
    assert "virtual_mailbox_domains = socketmap:inet:127.0.0.1:10044:virtual_mailbox_domains\n" in out
    assert "virtual_alias_maps = socketmap:inet:127.0.0.1:10044:virtual_alias_maps\n" in out


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
