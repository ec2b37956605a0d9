"""`owlery milter import-amavis`: amavisd-new's configuration carried into Owlery's milter settings.

The Perl-subset reader (milters/amavis_conf.py) on strings: what it reads, and that whatever
else a file holds (commands, calls, blocks, deep nesting, unterminated strings, huge input)
is reported as not understood with file:line and never run (a canary file stays absent).
The mapping (milters/amavis_import.py) on hand-written files in tests/data/amavis/ (each
mapping once, as TOML parsed back) and on Debian's real /etc/amavis/conf.d when installed:
the printed settings pass Owlery's own settings parser and `owlery config check`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from milters import amavis_conf as ac
from milters import amavis_import as ai
from owlery.app.cli import main as owlery_main
from owlery.settings import parse_text

DATA = Path(__file__).resolve().parents[1] / "data" / "amavis"
ROOT = Path(__file__).resolve().parents[2]
DEBIAN = [d for d in ai.DEBIAN_DIRS if os.path.isdir(d)]
CANARY = "/tmp/owlery-amavis-canary"
OWLERY_TOML = DATA / "owlery.toml"     # built-in defaults


def read(text: str, path: str = "amavisd.conf") -> ac.Config:
    config = ai.seeded({})
    ac.read_text(text, path, config)
    return config


def cli(capsys, *argv):
    code = owlery_main(["milter", "import-amavis", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def imported(capsys, *argv, config=None):
    """(exit status, settings printed as a dict, stderr); the TOML must pass Owlery's parser."""
    code, out, err = cli(capsys, *argv, "-c", config or OWLERY_TOML)
    parse_text(out, "<import-amavis>")
    return code, tomllib.loads(out), err


# --- the reader -------------------------------------------------------------------------

@pytest.mark.parametrize("text, var, want", [
    ("$x = 5;", "$x", 5),
    ("$x = 2.5 ;", "$x", 2.5),
    ("$x = 'it''s';", None, None),                    # two strings side by side: not Perl
    ("$x = 'a\\'b';", "$x", "a'b"),
    ('$mydomain = "example.org"; $x = "postmaster\\@$mydomain";', "$x", "postmaster@example.org"),
    ('$mydomain = "example.org"; $x = "mx.${mydomain}";', "$x", "mx.example.org"),
    ("$x = 300*1024*1024;", "$x", 314572800),
    ("$x = 100 * 1024 + 1;", "$x", 102401),
    ("$x = 'a' .\n  'b';", "$x", "ab"),
    ("$x = undef;", "$x", None),
    ("$x = D_DISCARD;", "$x", ac.Const("D_DISCARD")),
    ("@x = qw( 127.0.0.0/8 [::1] );", "@x", ["127.0.0.0/8", "[::1]"]),
    ("@x = ( 'a', 'b', );", "@x", ["a", "b"]),
    ("@x = (1);", "@x", [1]),
    ("@x = ([1..3]);", "@x", [ac.Array((1, 2, 3))]),
    ("%x = ( a => 1, 'b', 2 );", "%x", ac.Hash((("a", 1), ("b", 2)))),
    ("$x = { protocol => 'AM.PDP' };", "$x", ac.Hash((("protocol", "AM.PDP"),))),
    ("@x = (\\%a, \\@b, \\$c);", "@x", [ac.Ref("%", "a"), ac.Ref("@", "b"), ac.Ref("$", "c")]),
    ("$x = new_RE( qr'\\.exe$'i, [ qr/^a$/ => 0 ] );", "$x",
     ac.PerlCall("new_RE", (ac.PerlRegex("\\.exe$", "i"), ac.Array((ac.PerlRegex("^a$", ""), 0))))),
    ("$x = qr{a{2}}x;", "$x", ac.PerlRegex("a{2}", "x")),
    ("@x = (read_hash('/etc/amavis/x'));", "@x", [ac.PerlCall("read_hash", ("/etc/amavis/x",))]),
    ("use strict;\n# a comment; with a semicolon\n$x = 1; # trailing\n1;  # true\n", "$x", 1),
    ("$x = 1;\n=pod\n$x = 2;\n=cut\n", "$x", 1),
    ("$x = 1;\n__END__\n$x = 2;\n", "$x", 1),
    ("$Amavis::Conf::x = 3;", "$x", 3),
    ("$x = 1;\n$x = 2;", "$x", 2),                    # the last assignment wins
    ("$x = 1", "$x", 1),                              # the last ; may be left out
])
def test_reader_values(text, var, want):
    config = read(text)
    if var is None:
        assert config.not_understood
        return
    assert not config.not_understood, config.not_understood
    assert config.get(var[0], var[1:]).value == want


def test_reader_where_and_elements():
    config = read("use strict;\n\n$a =\n   7;\n$h{'k'} = 'v';\n$ENV{PATH} = $path = '/bin';\n")
    assert str(config.scalars["a"].where) == "amavisd.conf:3"
    assert config.elements[("h", "k")].value == "v"
    assert config.scalars["path"].value == "/bin" and config.elements[("ENV", "PATH")].value == "/bin"


def test_reader_sub_inside_a_list_is_opaque_and_the_list_still_read():
    config = read("@av = (['A', sub { chdir('/x') or die \"no: $!\" }, 'b'], ['C']);")
    assert not config.not_understood
    first, second = config.arrays["av"].value
    assert isinstance(first.items[1], ac.Code) and first.items[2] == "b" and second.items == ("C",)


@pytest.mark.parametrize("statement, says", [
    ('system("touch CANARY");', "system(...)"),
    ("`touch CANARY`;", "runs a command"),
    ("$x = `touch CANARY`;", "runs a command"),
    ("$x = qx(touch CANARY);", "runs a command"),
    ("chomp($mydomain = `touch CANARY`);", "runs a command"),
    ('do "CANARY.pl";', "a do of a file"),
    ('require "CANARY.pl";', "require"),
    ('BEGIN { system("touch CANARY") }', "a BEGIN block"),
    ('END { system("touch CANARY") }', "an END block"),
    ('eval { system("touch CANARY") };', "an eval block"),
    ('$x = eval "system(q(touch CANARY))";', "eval"),
    ('$x = sub { system("touch CANARY") };', "a sub"),
    ("open(my $fh, '>', 'CANARY');", "open(...)"),
    ('$x = "${\\ system(\'touch CANARY\') }";', "only $name is interpolated"),
    ('$x = "@{[ system(\'touch CANARY\') ]}";', "array interpolation"),
    ("use POSIX;", "loads code"),
    ("$x = $y{k};", "an element"),
    ("$x .= 'a';", "only '=' assignments"),
    ("$x =~ s/a/b/;", "only '=' assignments"),
    ("push @x, 'a';", "push"),
    ("@x = (1) x 5;", "after the value"),
    ("$x = 1 + 'a';", "on something other than numbers"),
    ("$x = (1, 2);", "a list assigned"),
])
def test_reader_refuses_and_runs_nothing(statement, says, tmp_path):
    canary = tmp_path / "canary"
    text = f"$before = 1;\n{statement.replace('CANARY', str(canary))}\n$after = 2;\n"
    config = read(text)
    assert [str(n.where) for n in config.not_understood] == ["amavisd.conf:2"], config.not_understood
    assert says in config.not_understood[0].reason
    assert config.scalars["before"].value == 1 and config.scalars["after"].value == 2
    assert not canary.exists()


def test_a_variable_set_by_a_statement_not_read_becomes_unknown():
    config = read("$mydomain = 'a.example';\nchomp($mydomain = `head -n 1 /etc/mailname`);\n"
                  "$virus_admin = \"postmaster\\@$mydomain\";\n")
    assert isinstance(config.scalars["mydomain"].value, ac.Unknown)
    admin = config.scalars["virus_admin"].value
    assert isinstance(admin, ac.Unknown) and "amavisd.conf:2" in admin.reason


def test_unterminated_string_stops_the_file_at_its_line():
    config = read("$a = 1;\n$b = 'never closed;\n$c = 3;\n")
    assert config.scalars["a"].value == 1 and "c" not in config.scalars and "b" not in config.scalars
    [n] = config.not_understood
    assert str(n.where) == "amavisd.conf:2" and "unterminated string" in n.reason


@pytest.mark.parametrize("depth", [ac.MAX_DEPTH + 1, 5000])
def test_deep_nesting_is_refused_not_recursed(depth):
    config = read("$x = " + "[" * depth + "1" + "]" * depth + ";\n$y = 2;\n")
    assert "nested deeper" in config.not_understood[0].reason or "longer than" in config.not_understood[0].reason
    assert config.scalars["y"].value == 2


def test_long_statement_is_refused():
    config = read("$x = '" + "a" * (ac.MAX_STATEMENT_CHARS + 1) + "';\n$y = 2;\n")
    assert "longer than" in config.not_understood[0].reason and config.scalars["y"].value == 2


def test_too_many_tokens_stop_the_file():
    config = read("$y = 2;\n" + "(" * (ac.MAX_TOKENS + 10))
    assert config.scalars["y"].value == 2
    assert "tokens" in config.not_understood[-1].reason


def test_huge_file_is_unreadable(tmp_path, capsys):
    big = tmp_path / "amavisd.conf"
    big.write_text("# filler\n" * (ai.MAX_FILE_BYTES // 9 + 10))
    code, out, err = cli(capsys, "--amavis-conf", big)
    assert code == ai.EXIT_UNREADABLE and out == "" and "larger than" in err


# --- the mapping ------------------------------------------------------------------------

def test_full_configuration_maps_every_setting(capsys):
    code, s, err = imported(capsys, "--amavis-conf", DATA / "full.conf")
    assert code == ai.EXIT_NOT_CARRIED
    assert s["milter_inbound_stages"] == ["dkim_verify", "authres", "antivirus", "banned", "spam", "quarantine"]
    assert s["milter_outbound_stages"] == ["antivirus", "banned", "spam", "quarantine", "dkim_sign", "authres"]
    assert s["milter_internal_networks"] == ["127.0.0.0/8", "::1/128", "192.0.2.7/32", "198.51.100.0/24",
                                             "2001:db8::/32"]
    assert s["milter_authserv_id"] == "mx1.example.org"
    assert s["milter_workers"] == ai.MAX_WORKERS
    # spam: tag, tag2, kill with D_DISCARD (quarantined, never refused), subject, size
    assert (s["spam_tag_level"], s["milter_score_tag"], s["spam_quarantine_level"]) == (-999.0, 5.5, 8.0)
    assert "milter_score_reject" not in s and "spam_reject_level" not in s
    assert s["spam_subject_tag"] == "[SPAM] " and s["spamd_max_size"] == 400 * 1024
    # viruses: D_REJECT, clamd over TCP, the header's name
    assert s["antivirus_infected_action"] == "reject"
    assert s["clamd_endpoint"] == "tcp:127.0.0.1:3310" and s["antivirus_scanned_header"] == "X-Scanned-By"
    # banned files
    assert s["banned_action"] == "reject"
    assert s["banned_double_extension_extensions"] == ["bat", "cmd", "com", "cpl", "dll", "exe", "pif", "scr", "vbs"]
    assert s["banned_extensions"] == ["ade", "adp", "app", "bas", "bat", "chm", "cmd", "com", "cpl", "crt", "exe",
                                      "hta", "js", "jse", "lnk", "scr", "vbs"]
    assert s["banned_content_types"] == ["application/x-msdownload", "message/partial"]
    assert s["banned_executable_content"] is True
    assert s["banned_undecidable_action"] == s["banned_encrypted_action"] == "reject"
    assert (s["banned_archive_depth_max"], s["banned_archive_members_max"], s["banned_inflate_bytes_max"]) == (
        64, 3000, 500 * 1024 * 1024)
    # quarantine and notices
    assert s["quarantine_action"] == "discard"
    assert s["quarantine_admin_address"] == "postmaster@example.org"
    assert s["quarantine_admin_notice_reasons"] == ["virus", "spam"]
    # DKIM: keys listed, copy commands said, nothing written
    assert s["dkim_sign_keys"] == {"example.org": ["2025a"], "example.net": ["sel1"]}
    assert "install -m 0600 /var/lib/dkim/example.org.2025a.pem /etc/owlery/dkim/example.org.2025a.key" in err
    # what is not carried over, with file:line
    for says in ("'!203.0.113.9' excludes a network", "local domains example.org (and its subdomains), example.net",
                 "the exception [qr'^\\.(Z|gz|bz2)$' => 0]", "bans file(1) types lha", "qr'^[^.]*$'",
                 "spam quarantine to a mailbox", "$some_unknown_setting = 42 (" + str(DATA / "full.conf") + ":73)",
                 "the key options ('a', 'rsa-sha256')"):
        assert any(x.startswith("# not carried over: ") and says in x for x in err.splitlines()), says
    assert "Some Other Scanner" in err and "spamd" in err


def test_every_setting_has_its_source_comment(capsys):
    code, out, err = cli(capsys, "--amavis-conf", DATA / "full.conf", "-c", OWLERY_TOML)
    lines = out.splitlines()
    for k, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[k - 1].startswith("# from "), line
    assert f"# from $sa_tag2_level_deflt = 5.5 ({DATA / 'full.conf'}:20)" in lines


def test_pass_destinies_and_per_recipient_bypass(capsys):
    code, s, err = imported(capsys, "--amavis-conf", DATA / "pass.conf")
    assert code == ai.EXIT_NOT_CARRIED
    assert s["milter_inbound_stages"] == ["antivirus", "spam", "quarantine"]     # no banned names: no stage
    assert "spam_tag_level" not in s and s["milter_score_tag"] == 6.31
    assert s["milter_score_reject"] == ai.NEVER                                   # D_PASS: delivered, tagged
    assert s["antivirus_infected_action"] == "reject"                              # D_BOUNCE
    assert s["clamd_endpoint"] == "unix:/run/clamav/clamd.ctl"
    assert s["antivirus_scanned_header"] == ""                                     # $X_HEADER_LINE = ""
    assert "several sockets" in err and "skips the check for some recipients only" in err
    assert "milter_internal_networks" in s and "10.0.0.0/8" in s["milter_internal_networks"]   # amavis' default


@pytest.mark.parametrize("text, setting, want", [
    ("$final_spam_destiny = D_REJECT; $sa_kill_level_deflt = 7;", "milter_score_reject", 7.0),
    ("$final_spam_destiny = D_BOUNCE; $sa_kill_level_deflt = 7;", "milter_score_reject", 7.0),
    ("$final_spam_destiny = -3; $sa_kill_level_deflt = 7;", "milter_score_reject", 7.0),   # D_REJECT's number
    ("$final_virus_destiny = D_DISCARD; @av_scanners = (['ClamAV-clamd', \\&ask_daemon, "
     "[\"CONTSCAN {}\\n\", '/x.sock']]);", "antivirus_infected_action", "quarantine"),
    ("$final_banned_destiny = D_BOUNCE; $banned_filename_re = new_RE(qr'.\\.(exe)$'i);", "banned_action", "reject"),
    ("$max_servers = 3;", "milter_workers", 3),
    ("@mynetworks_maps = ([qw(192.0.2.0/24)]);", "milter_internal_networks", ["192.0.2.0/24"]),
    ("@mynetworks_maps = ({ '192.0.2.0/24' => 1, '192.0.2.9' => 0 });", "milter_internal_networks", ["192.0.2.0/24"]),
    ("$myhostname = 'mx.example.com';", "milter_authserv_id", "mx.example.com"),
    ("$enable_dkim_verification = 1;", "milter_inbound_stages", ["dkim_verify", "authres", "spam", "quarantine"]),
])
def test_one_mapping(text, setting, want, tmp_path, capsys):
    (tmp_path / "amavisd.conf").write_text(text + "\n1;\n")
    code, s, err = imported(capsys, "--amavis-conf", tmp_path / "amavisd.conf")
    assert s[setting] == want, err


def test_bypass_idiom_turns_checks_off(tmp_path, capsys):
    (tmp_path / "amavisd.conf").write_text("@bypass_virus_checks_maps = (1);\n@bypass_spam_checks_maps = (1);\n"
                                           "$sa_tag2_level_deflt = 3;\n")
    code, s, err = imported(capsys, "--amavis-conf", tmp_path / "amavisd.conf")
    assert s["milter_inbound_stages"] == [] and "milter_score_tag" not in s
    assert "spam checks are off: not printed: $sa_tag2_level_deflt" in err


def test_conf_d_in_name_order_skips_dotted_names(tmp_path, capsys):
    d = tmp_path / "conf.d"
    d.mkdir()
    (d / "20-b").write_text("$max_servers = 5;\n1;\n")
    (d / "10-a").write_text("$max_servers = 4;\n$myhostname = 'a.example';\n1;\n")
    (d / "20-b.dpkg-old").write_text("$max_servers = 7;\n")
    code, s, err = imported(capsys, "--amavis-conf", d)
    assert s["milter_workers"] == 5 and s["milter_authserv_id"] == "a.example"
    assert "dpkg-old" not in err


def test_missing_configuration_is_status_2(tmp_path, capsys):
    code, out, err = cli(capsys, "--amavis-conf", tmp_path / "nope")
    assert code == ai.EXIT_UNREADABLE and out == "" and "nope" in err


def test_hostile_fixture_runs_nothing(capsys):
    if os.path.exists(CANARY):
        os.unlink(CANARY)
    code, s, err = imported(capsys, "--amavis-conf", DATA / "hostile.conf")
    assert code == ai.EXIT_NOT_CARRIED and not os.path.exists(CANARY)
    wheres = [line.split(": ")[1].rsplit(":", 1)[1] for line in err.splitlines() if line.startswith("# not understood")]
    assert wheres == ["4", "5", "6", "7", "8", "9", "10", "11", "12", "14"]
    assert s["milter_score_tag"] == 4.5 and s["milter_score_reject"] == ai.NEVER


def test_define_supplies_what_a_command_computed(tmp_path, capsys):
    (tmp_path / "amavisd.conf").write_text("chomp($mydomain = `head -n 1 /etc/mailname`);\n"
                                           "$virus_admin = \"postmaster\\@$mydomain\";\n")
    code, s, err = imported(capsys, "--amavis-conf", tmp_path / "amavisd.conf")
    assert "quarantine_admin_address" not in s and "amavisd.conf:1" in err
    code, s, err = imported(capsys, "--amavis-conf", tmp_path / "amavisd.conf", "--define", "mydomain=example.org")
    assert s["quarantine_admin_address"] == "postmaster@example.org"


# --- Debian's real files ----------------------------------------------------------------

@pytest.mark.skipif(len(DEBIAN) != 2, reason="amavisd-new's Debian configuration is not installed")
def test_debian_defaults_give_a_config_owlery_accepts(tmp_path, capsys):
    assert ai.default_paths() == DEBIAN            # what amavisd itself reads with no -c
    code, s, err = imported(capsys, "--define", "mydomain=example.org", "--define", "myhostname=mx.example.org")
    assert code == ai.EXIT_NOT_CARRIED             # the local domains, which the directory lists
    # the two backtick lines only compute what the --define options give: noted, not counted
    assert "# not understood" not in err
    assert "# note: not read: /etc/amavis/conf.d/05-domain_id:7:" in err and "--define mydomain stands in" in err
    assert "# note: not read: /etc/amavis/conf.d/05-node_id:6:" in err and "--define myhostname stands in" in err
    # Debian turns spam and virus checks off (/usr/share/amavis/conf.d/20-package) and bans file names
    assert s["milter_inbound_stages"] == ["banned", "quarantine"]
    assert s["banned_action"] == "quarantine" and s["quarantine_action"] == "discard"
    # the lists tests/milters/test_banned_amavis_differential.py calls Debian's
    assert s["banned_extensions"] == sorted(("exe", "vbs", "pif", "scr", "bat", "cmd", "com", "cpl"))
    assert s["banned_double_extension_extensions"] == sorted(("exe", "vbs", "pif", "scr", "bat", "cmd", "com",
                                                              "cpl", "dll"))
    assert s["banned_content_types"] == sorted(("application/x-msdownload", "application/x-msdos-program",
                                                "application/hta"))
    assert s["milter_authserv_id"] == "mx.example.org"
    assert s["quarantine_admin_address"] == "postmaster@example.org"
    # and `owlery config check` takes the file as printed
    code, out, _ = cli(capsys, *[x for d in DEBIAN for x in ("--amavis-conf", d)], "-c", OWLERY_TOML)
    (tmp_path / "owlery.toml").write_text(out)
    r = subprocess.run([sys.executable, "-m", "owlery.app.cli", "config", "check", "-c", str(tmp_path / "owlery.toml")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_owlery_settings_file_is_read_before_or_after_the_action(tmp_path, capsys, where):
    """`owlery milter -c FILE import-amavis` and `owlery milter import-amavis -c FILE` both read
    FILE (its dkim_key_directory names where the keys are copied); the action's own default
    used to undo a -c given before it."""
    cfg = tmp_path / "owlery.toml"
    cfg.write_text(f'dkim_key_directory = "{tmp_path}/keys"\n')
    config = ["-c", str(cfg)]
    argv = ["milter"] + (config if where == "before" else []) + ["import-amavis"] \
        + (config if where == "after" else []) + ["--amavis-conf", str(DATA / "full.conf")]
    owlery_main(argv)
    said = capsys.readouterr()
    assert f"{tmp_path}/keys/example.org.2025a.key" in said.out + said.err


def test_a_statement_that_only_computes_a_defined_name_is_noted_not_counted(tmp_path, capsys):
    """Debian's `chomp($mydomain = `head -n 1 /etc/mailname`);` cannot be read (a command), but
    with --define mydomain= nothing it sets is lost: a note, not a failure. A statement that
    also sets another name stays not understood."""
    (tmp_path / "amavisd.conf").write_text("chomp($mydomain = `head -n 1 /etc/mailname`);\n"
                                           "$virus_admin = \"postmaster\\@$mydomain\";\n")
    code, s, err = imported(capsys, "--amavis-conf", tmp_path / "amavisd.conf", "--define", "mydomain=example.org")
    assert code == ai.EXIT_OK and "# not understood" not in err, err
    assert "--define mydomain stands in for it" in err
    (tmp_path / "amavisd.conf").write_text("($mydomain, $other) = (`hostname`, 1);\n")
    code, s, err = imported(capsys, "--amavis-conf", tmp_path / "amavisd.conf", "--define", "mydomain=example.org")
    assert code == ai.EXIT_NOT_CARRIED and "# not understood" in err, err
