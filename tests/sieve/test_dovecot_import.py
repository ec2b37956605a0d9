"""`owlery sieve import-dovecot` (sieve/dovecot_import.py, sieve/cli.py): doveconf -n texts to
Owlery settings, and a differential run proving the mapping on behaviour.

Unit tests: tables of doveconf -n texts (plugin {} blocks, protocol lmtp/lda sections, numbered
sieve_before2..., comments and quoted values, unknown sieve_* names) and the exit codes.
Differential: one private Dovecot (tests/harness/dovecot.py) with non-default Pigeonhole settings;
`doveconf -n -c` on its configuration is imported, and the same messages are delivered through
Dovecot's LMTP and through Owlery's delivery (in process, with the imported settings), each
user's script exercising one imported setting; the folders stored and the messages sent (to a
recording SMTP server both submit to) must agree.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from owlery.settings import parse_text
from sieve.dovecot_import import DoveconfError, import_doveconf, parse_doveconf

ROOT = Path(__file__).resolve().parents[2]
OWLERY = str(ROOT / ".venv" / "bin" / "owlery")

HEAD = """\
# 2.3.19.1 (9b53102964): /etc/dovecot/dovecot.conf
# Pigeonhole version 0.5.19 (4eae2f79)
# OS: Linux 6.1.0 x86_64 Debian 12.11
"""
# Everything an import needs to map all: a fixed postmaster, a home, a Maildir location
COMPLETE = HEAD + """\
mail_home = /var/vmail/%d/%n
mail_location = maildir:~/Maildir
postmaster_address = postmaster@example.org
lda_mailbox_autocreate = yes
lda_mailbox_autosubscribe = yes
plugin {
  sieve = file:~/sieve;active=~/.dovecot.sieve
  sieve_quota_max_scripts = 0
}
protocol lmtp {
  mail_plugins = " sieve"
}
"""


def imported(text: str, **kw):
    r = import_doveconf(text, **kw)
    values = parse_text(r.toml())          # what is printed is an Owlery settings file
    return r, values


def test_complete_configuration_maps_all_and_loads():
    r, s = imported(COMPLETE)
    assert r.not_mapped == [] and r.exit_code == 0
    assert s.maildir_path_template == "/var/vmail/{domain}/{localpart}/Maildir"
    assert s.delivery_sieve_script_template == "/var/vmail/{domain}/{localpart}/.dovecot.sieve"
    assert s.managesieve_script_dir_template == "/var/vmail/{domain}/{localpart}/sieve"
    assert s.managesieve_max_scripts == 0
    assert s.sieve_postmaster_address == "postmaster@example.org"
    assert s.delivery_mailbox_autocreate is True
    # nothing set: Dovecot's defaults, which differ from Owlery's
    assert s.submission_method == "sendmail" and s.submission_sendmail_command == ("/usr/sbin/sendmail",)
    assert "editheader" in s.sieve_extensions_disabled and "vacation" not in s.sieve_extensions_disabled


@pytest.mark.parametrize("plugin, expect", [
    # Pigeonhole's syntax, relative to its own default set (editheader is off there)
    ("sieve_extensions = +editheader -imap4flags", {"imap4flags"}),
    ("sieve_extensions = -vacation", {"vacation", "editheader"}),
    # a plain name makes the list the whole set
    ("sieve_extensions = fileinto +vacation", {"envelope", "imap4flags", "editheader"}),
])
def test_sieve_extensions(plugin, expect):
    text = COMPLETE.replace("  sieve_quota_max_scripts = 0\n", f"  sieve_quota_max_scripts = 0\n  {plugin}\n")
    _, s = imported(text)
    enabled_wanted = {"editheader"} if "+editheader" in plugin else set()
    disabled = set(s.sieve_extensions_disabled)
    assert expect - enabled_wanted <= disabled
    assert not enabled_wanted & disabled
    if plugin.startswith("sieve_extensions = fileinto"):
        assert "fileinto" not in disabled and "vacation" not in disabled


def test_pigeonhole_values_are_translated():
    text = COMPLETE.replace("  sieve_quota_max_scripts = 0\n", """\
  sieve_quota_max_scripts = 0
  sieve_max_redirects = 1
  sieve_vacation_min_period = 2 days
  sieve_vacation_dont_check_recipient = yes
  sieve_vacation_send_from_recipient = yes
  sieve_redirect_envelope_from = recipient
  sieve_max_script_size = 64 k
  sieve_editheader_protected = X-Seen X-Other
  sieve_virustest_text_value1 = clean
  sieve_virustest_text_value3 = infected
""")
    r, s = imported(text)
    assert r.not_mapped == []
    assert s.sieve_max_redirects == 1 and s.sieve_vacation_min_period == 2 * 86400
    assert s.sieve_vacation_check_recipient is False          # the inverted old name
    assert s.vacation_envelope_from == "recipient" and s.sieve_redirect_envelope_from == "recipient"
    assert s.sieve_max_script_size == 64 * 1024
    assert tuple(s.sieve_editheader_protected) == ("X-Seen", "X-Other")
    assert tuple(s.sieve_virustest_text_values) == ("clean", "", "infected")


def test_numbered_scripts_stop_at_the_first_gap():
    text = COMPLETE.replace("  sieve_quota_max_scripts = 0\n", """\
  sieve_quota_max_scripts = 0
  sieve_before = /etc/dovecot/sieve/before.d/
  sieve_before2 = file:/etc/dovecot/sieve/spam.sieve
  sieve_before4 = /etc/dovecot/sieve/never.sieve
  sieve_after = /etc/dovecot/sieve/after.sieve
  sieve_default = /etc/dovecot/sieve/default.sieve
  sieve_global = /etc/dovecot/sieve/global/
""")
    r, s = imported(text)
    assert s.delivery_sieve_before == ("/etc/dovecot/sieve/before.d/", "/etc/dovecot/sieve/spam.sieve")
    assert s.delivery_sieve_after == ("/etc/dovecot/sieve/after.sieve",)
    assert s.delivery_sieve_default == "/etc/dovecot/sieve/default.sieve"
    assert s.delivery_sieve_global_dir == ("/etc/dovecot/sieve/global",)
    assert [n.split(":")[0] for n in r.not_mapped] == ["sieve_before4"] and r.exit_code == 1


def test_lmtp_wins_and_lda_differences_are_reported():
    text = COMPLETE + """\
protocol lda {
  mail_plugins = " sieve"
  postmaster_address = lda-postmaster@example.org
  plugin {
    sieve_max_redirects = 2
  }
}
protocol lmtp {
  recipient_delimiter = -
  plugin {
    sieve_max_redirects = 3
  }
}
"""
    r, s = imported(text)
    assert s.sieve_max_redirects == 3 and s.delivery_recipient_delimiter == "-"
    assert s.sieve_postmaster_address == "postmaster@example.org"
    reported = sorted(n.split(":")[0] for n in r.not_mapped)
    assert reported == ["plugin sieve_max_redirects", "postmaster_address", "recipient_delimiter"]


def test_only_lda_loads_sieve_so_its_section_counts():
    text = COMPLETE.replace('protocol lmtp {\n  mail_plugins = " sieve"\n}\n', "") + """\
protocol lda {
  mail_plugins = " sieve"
  recipient_delimiter = -
}
"""
    r, s = imported(text)
    assert r.notes[0] == "delivery settings as Dovecot's LDA sees them"
    assert s.delivery_recipient_delimiter == "-" and s.sieve_recipient_delimiter == "-"
    assert r.not_mapped == []


@pytest.mark.parametrize("extra, reported", [
    ("  sieve_frobnicate = yes\n", "sieve_frobnicate"),
    ("  sieve_trace_dir = ~/trace\n", "sieve_trace_dir"),
    ("  sieve_max_cpu_time = 30s\n", "sieve_max_cpu_time"),
    ("  sieve_max_redirects = many\n", "sieve_max_redirects"),
    ("  sieve_before = file:~/before.sieve\n", "sieve_before"),
    ("  sieve = ldap:/etc/dovecot/sieve-ldap.conf\n", "sieve = ldap"),
])
def test_not_mapped_plugin_settings(extra, reported):
    r, _ = imported(COMPLETE.replace("  sieve_quota_max_scripts = 0\n", "  sieve_quota_max_scripts = 0\n" + extra))
    assert r.exit_code == 1
    assert any(n.startswith(reported) for n in r.not_mapped), r.not_mapped


@pytest.mark.parametrize("old, new, reported", [
    ("postmaster_address = postmaster@example.org\n", "", "postmaster_address"),
    ("lda_mailbox_autosubscribe = yes\n", "", "lda_mailbox_autosubscribe"),
    ("mail_location = maildir:~/Maildir\n", "mail_location = mdbox:~/mdbox\n", "mail_location"),
    ("mail_location = maildir:~/Maildir\n", "mail_location = maildir:~/Maildir:LAYOUT=fs\n", "mail_location"),
    ("mail_home = /var/vmail/%d/%n\n", "mail_home = /home/%{service}/%n\n", "mail_home"),
    ("lda_mailbox_autocreate = yes\n", "lda_mailbox_autocreate = yes\nlmtp_save_to_detail_mailbox = yes\n",
     "lmtp_save_to_detail_mailbox"),
])
def test_not_mapped_delivery_settings(old, new, reported):
    r, _ = imported(COMPLETE.replace(old, new))
    assert any(n.startswith(reported) for n in r.not_mapped), r.not_mapped


def test_quota_and_connection_sections():
    text = COMPLETE.replace("  sieve_quota_max_scripts = 0\n", """\
  sieve_quota_max_scripts = 0
  quota = maildir:User quota
  quota_rule = *:storage=1024:messages=100
  quota_rule2 = Trash:storage=+10M
  quota_grace = 10%%
""") + "quota_full_tempfail = yes\nlocal 10.0.0.0/8 {\n  postmaster_address = other@example.org\n}\n"
    r, s = imported(text)
    assert s.delivery_quota_size == 1024 * 1024 and s.delivery_quota_messages == 100   # storage= counts KiB
    assert s.delivery_quota_full_tempfail is True
    reported = sorted(n.split(" ")[0].rstrip(":") for n in r.not_mapped)
    assert reported == ["local", "quota_grace", "quota_rule2"]


def test_home_from_mail_location_or_the_command_line():
    text = COMPLETE.replace("mail_home = /var/vmail/%d/%n\n", "")
    r, s = imported(text)
    # ~/Maildir with no mail_home: Owlery's own layout, and the postmaster is told
    assert s.delivery_sieve_script_template == "/var/lib/owlery/mail/{domain}/{localpart}/.dovecot.sieve"
    assert any("--home-template" in n for n in r.not_mapped) and r.exit_code == 1
    r, s = imported(text, home_template="/srv/mail/{domain}/{localpart}/")
    assert r.not_mapped == []
    assert s.maildir_path_template == "/srv/mail/{domain}/{localpart}/Maildir"
    assert s.delivery_sieve_script_template == "/srv/mail/{domain}/{localpart}/.dovecot.sieve"
    # an absolute Maildir needs no home, a ~ script does
    r, s = imported(text.replace("maildir:~/Maildir", "maildir:/var/vmail/%Ld/%Ln/Maildir:INDEX=/var/idx/%u"))
    assert s.maildir_path_template == "/var/vmail/{domain}/{localpart}/Maildir"
    assert [n.split(":")[0] for n in r.not_mapped] == ["sieve active=, sieve"]


def test_parsing_comments_quotes_and_sections():
    root = parse_doveconf(HEAD + '# a comment\nkey = " spaced "\nplugin {\n  # inside\n  a = b = c\n}\n'
                                 "namespace inbox {\n  mailbox \"Sent Messages\" {\n    special_use = \\Sent\n  }\n"
                                 "  prefix = \n}\n")
    assert root.values == {"key": " spaced "}
    assert root.child("plugin")[0].values == {"a": "b = c"}
    assert root.child("namespace")[0].child("mailbox")[0].name == "Sent Messages"
    r, s = imported(COMPLETE + 'namespace inbox {\n  mailbox "Sent Messages" {\n    special_use = \\Sent\n  }\n'
                               "  mailbox Spam {\n    special_use = \\Junk\n  }\n  prefix = \n}\n")
    assert s.delivery_special_use_folders == {"Sent": ("Sent Messages",), "Junk": ("Spam",)}


@pytest.mark.parametrize("text", ["plugin {\n  sieve = x\n", "}\n", "plugin {\n  just words\n}\n"])
def test_unreadable_text(text):
    with pytest.raises(DoveconfError):
        import_doveconf(HEAD + text)


def _cli(*args):
    return subprocess.run([OWLERY, "sieve", "import-dovecot", *args], capture_output=True, text=True, timeout=60)


def test_cli_exit_codes(tmp_path):
    saved = tmp_path / "doveconf.txt"
    saved.write_text(COMPLETE)
    r = _cli("--doveconf-output", str(saved))
    assert r.returncode == 0, r.stderr
    assert parse_text(r.stdout).sieve_postmaster_address == "postmaster@example.org"
    assert "# note:" in r.stderr and "# not mapped:" not in r.stderr
    saved.write_text(COMPLETE + "plugin {\n  sieve_frobnicate = 1\n}\n")
    r = _cli("--doveconf-output", str(saved))
    assert r.returncode == 1 and "# not mapped: sieve_frobnicate" in r.stderr
    saved.write_text("plugin {\n")
    assert _cli("--doveconf-output", str(saved)).returncode == 2
    assert _cli("--doveconf-output", str(tmp_path / "missing")).returncode == 2
    r = _cli("-c", str(tmp_path / "missing.conf"))          # doveconf itself fails
    assert r.returncode == 2 and "doveconf -n -c" in r.stderr


def test_doveconf_output_is_bounded():
    from sieve.cli import _bounded_output
    assert _bounded_output(["yes"], 1000) == b"y\n" * 500      # endless output: cut, the command ended
    with pytest.raises(OSError, match="exit 1"):
        _bounded_output(["false"], 1000)


def test_cli_runs_doveconf(tmp_path):
    conf = tmp_path / "dovecot.conf"
    conf.write_text("mail_location = maildir:/srv/mail/%d/%n/Maildir\nrecipient_delimiter = -\n"
                    "protocol lmtp {\n  mail_plugins = $mail_plugins sieve\n}\n"
                    "plugin {\n  sieve = file:/srv/mail/%d/%n/sieve;active=/srv/mail/%d/%n/active.sieve\n"
                    "  sieve_max_actions = 10\n}\n")
    r = _cli("-c", str(conf))
    s = parse_text(r.stdout)
    assert s.sieve_max_actions == 10 and s.delivery_recipient_delimiter == "-"
    assert s.delivery_sieve_script_template == "/srv/mail/{domain}/{localpart}/active.sieve"
    # Dovecot's default postmaster_address is per domain: Owlery's is one address
    assert r.returncode == 1 and "# not mapped: postmaster_address" in r.stderr


# -- differential: Dovecot LMTP with Pigeonhole against Owlery with the imported settings --------

DOMAIN = "example.org"
SENDER = "sender@remote.test"
# user -> (script, recipient address, subject); each exercises one imported setting
CASES = {
    # sieve_max_redirects = 1: the second redirect is an error: keep, nothing sent
    "alice": ('redirect "one@remote.test";\nredirect "two@remote.test";\n', "alice", "two redirects"),
    # sieve_redirect_envelope_from = recipient
    "bob": ('redirect "fwd@remote.test";\n', "bob", "forward me"),
    # sieve_vacation_send_from_recipient = yes, sieve_vacation_default_subject_template
    "carol": ('require "vacation";\nvacation "I am away.";\n', "carol", "question"),
    # sieve_extensions = +editheader
    "dave": ('require "editheader";\naddheader "X-Imported" "yes";\n', "dave", "edit me"),
    # sieve_extensions = -imap4flags: the script does not compile, keep
    "erin": ('require "imap4flags";\naddflag "\\\\Flagged";\n', "erin", "flag me"),
    # recipient_delimiter = -, lda_mailbox_autocreate
    "frank": ('require ["envelope", "subaddress", "fileinto"];\n'
              'if envelope :detail "to" "news" { fileinto "News"; }\n', "frank-news", "detail"),
    # sieve_before: files [list] mail before the (missing) user script
    "grace": (None, "grace", "[list] digest"),
}
PIGEONHOLE = """\
recipient_delimiter = -
submission_host = 127.0.0.1:{port}
plugin {{
  sieve_before = {site}/before.sieve
  sieve_max_redirects = 1
  sieve_extensions = +editheader -imap4flags
  sieve_redirect_envelope_from = recipient
  sieve_vacation_send_from_recipient = yes
  sieve_vacation_default_subject_template = Away: %%$
}}
"""
BEFORE = 'require "fileinto";\nif header :contains "subject" "[list]" { fileinto "Lists"; }\n'


def _message(to: str, subject: str) -> bytes:
    return (f"From: Sender <{SENDER}>\r\nTo: {to}@{DOMAIN}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}.{to}@remote.test>\r\n"
            "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n\r\nHello.\r\n").encode()


def _stored(maildir: Path) -> dict[str, list[str]]:
    """folder -> per message, 'X-Imported' when it has the header, plus its Maildir flags."""
    out: dict[str, list[str]] = {}
    if not maildir.is_dir():
        return out
    for d in [maildir] + sorted(p for p in maildir.iterdir() if p.name.startswith(".") and p.is_dir()):
        for sub in ("new", "cur"):
            for f in sorted((d / sub).iterdir()) if (d / sub).is_dir() else []:
                flags = f.name.partition(":2,")[2]
                head = f.read_bytes().replace(b"\r\n", b"\n").partition(b"\n\n")[0]
                tag = ("X-Imported " if b"X-Imported: yes" in head.split(b"\n") else "") + f"flags={flags}"
                out.setdefault("INBOX" if d == maildir else d.name[1:], []).append(tag)
    return out


def test_imported_settings_behave_as_pigeonhole():
    from owlery.state.memory_store import MemoryStore
    from sieve.delivery.executor import DeliveryExecutor
    from sieve.delivery.users import UserResolver
    from tests.delivery.daemon import remove_workdir, shared_workdir
    from tests.harness.dovecot import DovecotInstance
    from tests.harness.smtp_sink import RecordingSmtpSink

    tmp_path = shared_workdir("owlery-dovecot-import-")     # Dovecot's auth user must reach it
    site = tmp_path / "site"
    site.mkdir()
    (site / "before.sieve").write_text(BEFORE)
    sink = RecordingSmtpSink()
    homes = {u: tmp_path / "dovecot-home" / u for u in CASES}
    ours = {u: tmp_path / "ours" / u for u in CASES}
    for user, (script, _, _) in CASES.items():
        for home in (homes[user], ours[user]):
            (home / "sieve").mkdir(parents=True)
            if script is not None:
                (home / "sieve" / "active.sieve").write_text(script)
    dovecot = DovecotInstance(tmp_path / "dovecot", {f"{u}@{DOMAIN}": str(h) for u, h in homes.items()},
                              extra_conf=PIGEONHOLE.format(port=sink.port, site=site))
    for root, dirs, files in os.walk(tmp_path):
        for name in [root] + [os.path.join(root, n) for n in dirs + files]:
            os.chown(name, dovecot.uid, dovecot.gid)      # the mail user reads and writes them
    try:
        dovecot.start()
        doveconf = subprocess.run(["doveconf", "-n", "-c", str(dovecot.conf_path)], capture_output=True,
                                  text=True, timeout=30, check=True).stdout
        result = import_doveconf(doveconf, home_template=f"{tmp_path}/ours/{{localpart}}")
        # the harness's postmaster, homes and user/group come through; only paths Owlery has
        # no use for may be reported
        assert result.not_mapped == [], result.comments()
        settings = parse_text(result.toml() + "delivery_use_directory = false\n")
        assert settings.sieve_max_redirects == 1 and settings.delivery_recipient_delimiter == "-"
        ex = DeliveryExecutor(settings, state=MemoryStore(), program="test")
        resolver = UserResolver(settings)
        theirs_sent, ours_sent = {}, {}
        for user, (_, rcpt, subject) in CASES.items():
            msg = _message(user, subject)
            expect = 1 if user in ("bob", "carol") else 0
            dovecot.lmtp_send(SENDER, f"{rcpt}@{DOMAIN}", msg)
            theirs_sent[user] = [(m.mail_from, m.rcpts, m.subject) for m in sink.take(expect)]
            target = resolver.expand(f"{rcpt}@{DOMAIN}")
            outcome = ex.deliver(msg.replace(b"\r\n", b"\n"), SENDER, f"{rcpt}@{DOMAIN}", target)
            assert outcome.ok, outcome
            ours_sent[user] = [(m.mail_from, m.rcpts, m.subject) for m in sink.take(expect)]
        theirs = {u: _stored(homes[u] / "Maildir") for u in CASES}
        mine = {u: _stored(ours[u] / "Maildir") for u in CASES}
        assert mine == theirs, dovecot.log()
        assert ours_sent == theirs_sent
        # and the settings were in effect (not both sides' defaults agreeing)
        assert theirs["alice"] == {"INBOX": ["flags="]} and theirs_sent["alice"] == []
        assert theirs_sent["bob"] == [(f"bob@{DOMAIN}", ("fwd@remote.test",), "forward me")]
        assert theirs_sent["carol"] == [(f"carol@{DOMAIN}", (SENDER,), "Away: question")]
        assert theirs["dave"] == {"INBOX": ["X-Imported flags="]}
        assert theirs["erin"] == {"INBOX": ["flags="]}
        assert theirs["frank"] == {"News": ["flags="]} and theirs["grace"] == {"Lists": ["flags="]}
    finally:
        dovecot.stop()
        sink.close()
        remove_workdir(tmp_path)


def test_system_accounts_become_the_passwd_directory():
    """userdb passwd and no mail_home (Debian's default auth-system.conf.ext): the users are the
    system's accounts and ~ is each one's home, which directory_backend = "passwd" knows."""
    text = (COMPLETE.replace("mail_home = /var/vmail/%d/%n\n", "").replace("maildir:~/Maildir", "maildir:~/Mail/box")
            .replace("active=~/.dovecot.sieve", "active=~/sieve/main.sieve") + "userdb {\n  driver = passwd\n}\n")
    r, s = imported(text)
    assert s.directory_backend == "passwd"
    assert s.passwd_maildir_template == "{home}/Mail/box"               # not the defaults: mapped
    assert s.passwd_sieve_script_template == "{home}/sieve/main.sieve"
    assert not any("--home-template" in n or "absolute" in n for n in r.not_mapped), r.not_mapped
    # Owlery's ManageSieve keeps scripts under its own template, which has no {home}: reported
    assert s.managesieve_script_dir_template is None
    assert any(n.startswith("sieve: managesieve_script_dir_template has no {home}") for n in r.not_mapped)
    assert any(n.startswith("userdb passwd: set passwd_domains") for n in r.not_mapped) and r.exit_code == 1
    assert "the user's home (~) is {home} (from userdb passwd: each account's home)" in r.notes
    # what it prints loads, and with passwd_domains the passwd directory starts on it
    from owlery.directory.passwd import PasswdDirectory
    PasswdDirectory(s.replace(passwd_domains=["example.org"])).close()
    # a mail_home, or a home given on the command line, wins: the users are virtual then
    r, s = imported(COMPLETE + "userdb {\n  driver = passwd\n}\n")
    assert s.directory_backend == "files" and s.maildir_path_template == "/var/vmail/{domain}/{localpart}/Maildir"
    r, s = imported(text, home_template="/srv/mail/{localpart}")
    assert s.directory_backend == "files" and s.maildir_path_template == "/srv/mail/{localpart}/Mail/box"
