"""The local-accounts directory (owlery/directory/passwd.py): who is a mailbox, where it lives,
which local parts are never looked up, aliases(5), and the real account database.

Accounts come from an injected getpwnam (a dict); the last tests ask this machine's own
database (root, nobody and the system accounts exist on every Debian system) and create no
account."""

from __future__ import annotations

import errno
import logging
import os
import pwd
import re

import pytest

import owlery.directory.passwd as passwd_mod
from owlery.directory import open_backend, open_directory
from owlery.directory.files import MapError
from owlery.directory.passwd import PasswdDirectory, account_name_ok, read_aliases, system_getpwnam
from owlery.errors import DirectoryUnavailable
from owlery.settings import Settings, SettingsError, parse_text


def entry(name, uid, home=None, gid=100):
    return pwd.struct_passwd((name, "x", uid, gid, "", f"/home/{name}" if home is None else home, "/bin/sh"))


ACCOUNTS = {e.pw_name: e for e in (
    entry("alice", 1001, gid=1001), entry("bob", 1002), entry("carol", 1003), entry("john.doe", 1004),
    entry("Mixed", 1005), entry("edge-low", 1000), entry("edge-high", 60000), entry("toohigh", 60001),
    entry("sysacct", 999), entry("root", 0, "/root"), entry("nobody", 65534, "/nonexistent"),
    entry("relhome", 1010, "home/relhome"), entry("dothome", 1011, "/home/../etc"), entry("slashhome", 1012, "/"),
    entry("ctlhome", 1013, "/home/a\nb"))}


class Source:
    """An account database that records every name it is asked about."""

    def __init__(self, accounts=None, error=None):
        self.accounts = ACCOUNTS if accounts is None else accounts
        self.error = error
        self.asked: list[str] = []

    def getpwnam(self, name):
        self.asked.append(name)
        if self.error is not None:
            raise self.error
        return self.accounts[name]

    def getpwall(self):
        if self.error is not None:
            raise self.error
        return list(self.accounts.values())


def make(tmp_path=None, aliases=None, source=None, **values):
    values.setdefault("passwd_domains", ["example.org", "mail.example.org"])
    if aliases is not None:
        path = tmp_path / "aliases"
        path.write_text(aliases)
        values["passwd_aliases"] = str(path)
    source = source or Source()
    d = PasswdDirectory(Settings().replace(directory_backend="passwd", **values),
                        getpwnam=source.getpwnam, getpwall=source.getpwall)
    d.source = source
    return d


# --- settings -----------------------------------------------------------------------

@pytest.mark.parametrize("values,key", [
    ({"passwd_domains": []}, "passwd_domains"),
    ({"passwd_domains": ["a/b"]}, "passwd_domains"),
    ({"passwd_domains": ["@example.org"]}, "passwd_domains"),
    ({"passwd_uid_min": 2000, "passwd_uid_max": 1999}, "passwd_uid_min"),
    ({"passwd_maildir_template": "Maildir"}, "passwd_maildir_template"),             # relative
    ({"passwd_maildir_template": "{localpart}/Maildir"}, "passwd_maildir_template"),
    ({"passwd_maildir_template": "/var/mail/{uid}"}, "passwd_maildir_template"),     # unknown field
    ({"passwd_maildir_template": "{home.__class__}/x"}, "passwd_maildir_template"),
    ({"passwd_maildir_template": "{home!r}/x"}, "passwd_maildir_template"),
    ({"passwd_sieve_script_template": "~/.dovecot.sieve"}, "passwd_sieve_script_template"),
])
def test_a_bad_setting_does_not_start_and_names_the_setting(values, key):
    values.setdefault("passwd_domains", ["example.org"])
    with pytest.raises(SettingsError) as e:
        open_backend(Settings().replace(directory_backend="passwd", **values))
    assert e.value.key == key


def test_the_error_for_no_domains_names_the_file_and_line(tmp_path):
    settings = parse_text('directory_backend = "passwd"\npasswd_domains = []\n', str(tmp_path / "owlery.toml"))
    with pytest.raises(SettingsError, match=r"owlery\.toml:2: passwd_domains: .*at least one domain"):
        open_backend(settings)


def test_every_setting_is_declared_in_the_backend_module():
    from owlery import settings as S
    names = {n for n, d in S.declared().items() if d.module == "owlery.directory.passwd"}
    assert names == {"passwd_domains", "passwd_uid_min", "passwd_uid_max", "passwd_maildir_template",
                     "passwd_sieve_script_template", "passwd_aliases", "passwd_check_interval",
                     "passwd_state_sqlite_template"}
    assert (Settings().passwd_uid_min, Settings().passwd_uid_max) == (1000, 60000)
    assert Settings().passwd_maildir_template == "{home}/Maildir"
    assert Settings().passwd_sieve_script_template == "{home}/.dovecot.sieve"


# --- who is a mailbox -----------------------------------------------------------------

@pytest.mark.parametrize("address,mailbox", [
    ("alice@example.org", "alice@example.org"),
    ("alice@mail.example.org", "alice@example.org"),          # every domain: one account, one address
    ("Alice@EXAMPLE.org", "alice@example.org"),               # folded before getpwnam, as local(8)
    ("alice+news@example.org", "alice@example.org"),
    ("john.doe@example.org", "john.doe@example.org"),
    ("edge-low@example.org", "edge-low@example.org"),         # uid 1000: the first person
    ("edge-high@example.org", "edge-high@example.org"),       # uid 60000
    ("toohigh@example.org", None),                            # 60001
    ("sysacct@example.org", None),                            # 999: a system account
    ("root@example.org", None),
    ("nobody@example.org", None),                             # 65534
    ("Mixed@example.org", None),                              # folded to "mixed": no such account
    ("zed@example.org", None),
])
def test_who_is_a_mailbox(address, mailbox):
    r = make().resolve(address)
    assert [m.address for m in r.mailboxes] == ([mailbox] if mailbox else [])
    assert r.kind == ("mailbox" if mailbox else "unknown")


def test_a_domain_not_listed_is_not_ours():
    d = make()
    assert d.resolve("alice@elsewhere.org").kind == "not_local"
    assert d.source.asked == []
    assert d.hosted_domains() == ["example.org", "mail.example.org"]
    assert d.hosts_domain("Mail.Example.ORG.") and not d.hosts_domain("example.net")


def test_the_uid_range_is_a_setting():
    d = make(passwd_uid_min=0, passwd_uid_max=999)
    assert d.resolve("root@example.org").exists and d.resolve("sysacct@example.org").exists
    assert not d.resolve("alice@example.org").exists


def test_case_sensitive_local_parts_are_looked_up_as_given():
    d = make(directory_local_part_case_sensitive=True)
    assert d.resolve("Mixed@example.org").mailboxes[0].address == "Mixed@example.org"
    assert not d.resolve("mixed@example.org").exists
    assert not d.resolve("Alice@example.org").exists
    assert d.source.asked == ["Mixed", "mixed", "Alice"]


def test_another_recipient_delimiter():
    d = make(directory_recipient_delimiter="-")
    assert d.resolve("alice-news@example.org").mailboxes[0].address == "alice@example.org"
    assert d.resolve("edge-low@example.org").mailboxes[0].address == "edge-low@example.org"   # whole name first


def test_the_mailbox_carries_paths_and_owner():
    [box] = make().resolve("alice+x@mail.example.org").mailboxes
    assert (box.maildir, box.sieve_script, box.uid, box.gid) == (
        "/home/alice/Maildir", "/home/alice/.dovecot.sieve", 1001, 1001)
    assert (box.quota_bytes, box.quota_messages, box.over_quota) == (None, None, False)   # delivery_quota_*


def test_templates_have_four_fields():
    d = make(passwd_maildir_template="/var/mail/{domain}/{user}/{localpart}", passwd_sieve_script_template="")
    [box] = d.resolve("Alice@mail.example.org").mailboxes
    assert (box.maildir, box.sieve_script) == ("/var/mail/example.org/alice/alice", None)


def test_delivery_takes_the_accounts_paths_owner_and_default_quota():
    from sieve.delivery.users import UserResolver
    d = make(delivery_quota_size="10M")
    user = UserResolver(d.settings.replace(delivery_quota_size="10M"), d).expand("alice+x@mail.example.org")
    assert (user.address, user.maildir, user.sieve_script, user.uid, user.gid, user.detail) == (
        "alice@example.org", "/home/alice/Maildir", "/home/alice/.dovecot.sieve", 1001, 1001, "x")
    assert user.quota.bytes == 10 * 1024 * 1024
    assert UserResolver(d.settings, d).expand("root@example.org") is None


# --- what never reaches getpwnam or {home} ----------------------------------------------

HOSTILE = ["../etc", "..", ".", ".profile", "a/b", "-rf", "-", "a b", "a\tb", "al\x01ice", "al\x7fice",
           "x" * 33, "1000", "0", "ålice", "al*", "a:b", "a\\b", "a$", "a\u0130"]


@pytest.mark.parametrize("local", HOSTILE)
def test_implausible_local_parts_are_never_looked_up(local):
    d = make(directory_local_part_case_sensitive=True)
    assert d.resolve(f"{local}@example.org").kind == "unknown"
    assert d.expand_once(f"{local}@example.org") is None
    assert d.source.asked == []


@pytest.mark.parametrize("name,ok", [("alice", True), ("john.doe", True), ("a-b_c", True), ("x" * 32, True),
                                     ("_svc", True), ("1alice", True), ("x" * 33, False), ("", False),
                                     ("-x", False), (".x", False), ("123", False), ("a/b", False)])
def test_the_account_name_rule(name, ok):
    assert account_name_ok(name) is ok


@pytest.mark.parametrize("name", ["relhome", "dothome", "ctlhome"])
def test_a_home_that_is_not_an_absolute_clean_path_is_a_temporary_failure(name, caplog):
    with pytest.raises(DirectoryUnavailable, match="not an absolute path"):
        make().resolve(f"{name}@example.org")
    assert any(name in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_a_home_of_slash_gives_an_absolute_path():
    assert make().resolve("slashhome@example.org").mailboxes[0].maildir == "/Maildir"


def test_a_bad_home_does_not_matter_to_a_template_without_home():
    d = make(passwd_maildir_template="/var/mail/{user}", passwd_sieve_script_template="")
    assert d.resolve("relhome@example.org").mailboxes[0].maildir == "/var/mail/relhome"


# --- an account database that cannot answer ---------------------------------------------

def test_an_account_database_error_is_unavailable_never_unknown():
    d = make(source=Source(error=OSError(errno.EIO, "Input/output error")))
    with pytest.raises(DirectoryUnavailable):
        d.resolve("alice@example.org")
    with pytest.raises(DirectoryUnavailable):
        list(d.mailboxes())
    cached = open_directory(d.settings)
    cached.backend = d
    with pytest.raises(DirectoryUnavailable):
        cached.resolve("alice@example.org")
    d.source.error = None
    assert cached.resolve("alice@example.org").exists            # the error was not cached


def test_system_getpwnam_tells_a_failed_lookup_from_a_missing_name(monkeypatch):
    monkeypatch.setattr(passwd_mod, "getpwnam_r_status", lambda name: errno.EIO)
    with pytest.raises(OSError) as e:
        system_getpwnam("no-such-account-owlery")
    assert e.value.errno == errno.EIO and not isinstance(e.value, KeyError)
    for status in (0, errno.ENOENT, errno.ESRCH, errno.EBADF, errno.EPERM):
        monkeypatch.setattr(passwd_mod, "getpwnam_r_status", lambda name, s=status: s)
        with pytest.raises(KeyError):
            system_getpwnam("no-such-account-owlery")
    d = PasswdDirectory(Settings().replace(passwd_domains=["example.org"]))
    monkeypatch.setattr(passwd_mod, "getpwnam_r_status", lambda name: errno.ETIMEDOUT)
    with pytest.raises(DirectoryUnavailable):
        d.resolve("no-such-account-owlery@example.org")


def test_getpwnam_r_status_is_zero_for_found_and_missing_names():
    assert passwd_mod.getpwnam_r_status("root") == 0
    assert passwd_mod.getpwnam_r_status("no-such-account-owlery") == 0


# --- aliases(5) -----------------------------------------------------------------------------

ALIASES = r"""
# the usual ones
postmaster: root
root:       alice
abuse:      postmaster
"Sales Team": alice,
    bob, carol@mail.example.org
friends:    alice bob
alice:      \alice, alice@elsewhere.test
loop1:      loop2
loop2:      loop1, bob
Info:       carol
bounces:    "|/usr/local/bin/bounce-handler --flag, x"
archive:    bob, /var/spool/archive
listy:      :include:/etc/mail/listy
vacation:   \bob, "|/usr/bin/vacation bob"
lazy:       vacation
ghost:      nosuchuser
"""


@pytest.fixture
def aliased(tmp_path):
    return make(tmp_path, ALIASES)


@pytest.mark.parametrize("address,mailboxes,remote", [
    ("postmaster@example.org", ["alice@example.org"], ["alice@elsewhere.test"]),     # root -> alice -> \alice
    ("abuse@mail.example.org", ["alice@example.org"], ["alice@elsewhere.test"]),
    ("Sales Team@example.org", ["alice@example.org", "bob@example.org", "carol@example.org"], ["alice@elsewhere.test"]),
    ("friends@example.org", ["alice@example.org", "bob@example.org"], ["alice@elsewhere.test"]),
    ("alice@example.org", ["alice@example.org"], ["alice@elsewhere.test"]),
    ("alice+x@example.org", ["alice@example.org"], ["alice@elsewhere.test"]),
    ("loop1@example.org", ["bob@example.org"], []),
    ("info@example.org", ["carol@example.org"], []),                                  # names fold, as postalias
])
def test_aliases_expand(aliased, address, mailboxes, remote):
    r = aliased.resolve(address)
    assert r.kind == "alias" and r.exists and not r.reaches_nothing
    assert sorted(m.address for m in r.mailboxes) == mailboxes
    assert sorted(r.remote) == remote


def test_an_alias_to_nobody_reaches_nothing(aliased):
    r = aliased.resolve("ghost@example.org")
    assert r.kind == "alias" and r.reaches_nothing


@pytest.mark.parametrize("address,undeliverable", [
    ("bounces@example.org", ["|/usr/local/bin/bounce-handler --flag, x"]),
    ("archive@example.org", ["/var/spool/archive"]),
    ("listy@example.org", [":include:/etc/mail/listy"]),
    ("vacation@example.org", ["|/usr/bin/vacation bob"]),
    ("lazy@example.org", ["|/usr/bin/vacation bob"]),                                   # reached through an alias
])
def test_targets_only_local8_can_deliver_make_the_alias_exist_but_reach_no_mailbox(aliased, address, undeliverable):
    r = aliased.resolve(address)
    assert r.exists and not r.reaches_nothing          # accepted at RCPT: Postfix's local(8) expands it
    assert (r.mailboxes, r.remote, list(r.undeliverable)) == ((), (), undeliverable)


def test_delivery_refuses_such_an_alias_whole(aliased):
    from sieve.delivery.users import UserResolver
    resolver = UserResolver(aliased.settings, aliased)
    assert resolver.expand("vacation@example.org") is None          # -> 550 5.1.1 / LDA exit 67
    assert resolver.expand("archive@example.org") is None           # bob is not delivered alone either
    assert resolver.expand("info@example.org").address == "carol@example.org"


def test_undeliverable_targets_are_logged_once(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="owlery.directory"):
        d = make(tmp_path, ALIASES)
        d.resolve("bounces@example.org")
        d.resolve("bounces@example.org")
        d.reload()
    lines = [r.getMessage() for r in caplog.records if "cannot deliver" in r.getMessage()]
    assert len(lines) == 4, lines
    assert sum("alias bounces" in line for line in lines) == 1
    assert re.search(r"aliases:13: alias bounces: Owlery cannot deliver \|/usr/local/bin/bounce-handler", lines[0])


def test_expand_once_gives_postfix_one_level(aliased):
    assert aliased.expand_once("postmaster@example.org") == ["root@example.org"]
    assert aliased.expand_once("sales team@mail.example.org") == [
        "alice@example.org", "bob@example.org", "carol@mail.example.org"]
    assert aliased.expand_once("alice@example.org") == ["alice@example.org", "alice@elsewhere.test"]
    assert aliased.expand_once("bob@mail.example.org") == ["bob@mail.example.org"]        # an account: itself
    assert aliased.expand_once("vacation@example.org") == ["vacation@example.org"]        # left to local(8)
    assert aliased.expand_once("root+x@example.org") is None                              # the exact key
    assert aliased.expand_once("zed@example.org") is None
    assert aliased.expand_once("@example.org") is None
    assert aliased.expand_once("alice@elsewhere.test") is None


@pytest.mark.parametrize("text,why", [
    ("  continued: x\n", "continuation line without an entry"),
    ("name alice\n", "expected 'name: target"),
    ("empty:\n", "has no target"),
    ('"open: alice\n', "unterminated double quote in the name"),
    ('a: "|cmd\n', "unterminated double quote"),
])
def test_a_broken_aliases_file_does_not_start(tmp_path, text, why):
    with pytest.raises(MapError, match=re.escape(why)) as e:
        make(tmp_path, text + "ok: alice\n")
    assert ":1: " in str(e.value)


def test_the_aliases_file_is_read_as_postfix_reads_it(tmp_path):
    path = tmp_path / "aliases"
    path.write_text('# c\n\n  # indented comment\na: b,\n  c\n\t, d\n"x y": "|p q", \\r\n')
    assert list(read_aliases(str(path))) == [("a", ["b", "c", "d"], 4), ("x y", ["|p q", "\\r"], 7)]


def test_the_aliases_file_is_reread_when_it_changes(tmp_path, caplog):
    path = tmp_path / "aliases"
    path.write_text("sales: alice\n")
    clock = [0.0]
    d = PasswdDirectory(Settings().replace(passwd_domains=["example.org"], passwd_aliases=str(path)),
                        clock=lambda: clock[0], getpwnam=Source().getpwnam)
    assert d.resolve("sales@example.org").mailboxes[0].address == "alice@example.org"
    path.write_text("sales: bob, carol\n")
    os.utime(path, ns=(1, 1))
    assert [m.address for m in d.resolve("sales@example.org").mailboxes] == ["alice@example.org"]   # not yet
    clock[0] = 5.0
    assert [m.address for m in d.resolve("sales@example.org").mailboxes] == ["bob@example.org", "carol@example.org"]
    path.write_text("sales bob\n")                  # broken: the previous aliases stay
    clock[0] = 10.0
    assert [m.address for m in d.resolve("sales@example.org").mailboxes] == ["bob@example.org", "carol@example.org"]
    assert any("keeping the previous aliases" in r.getMessage() for r in caplog.records)


def test_mailboxes_walks_the_accounts_in_range(aliased, caplog):
    """Root, system accounts, nobody, uids past the range, names a lookup could not reach
    (Mixed) are left out; an account with a bad home is skipped with a WARNING."""
    assert [m.address for m in aliased.mailboxes()] == [
        "alice@example.org", "bob@example.org", "carol@example.org", "edge-high@example.org",
        "edge-low@example.org", "john.doe@example.org", "slashhome@example.org"]
    assert {r.getMessage().split()[2] for r in caplog.records if r.levelno == logging.WARNING
            and "home directory" in r.getMessage()} == {"ctlhome", "dothome", "relhome"}


def test_the_backend_knows_no_lists_levels_or_policies(aliased):
    assert aliased.list_policy("sales team@example.org") is None
    assert aliased.list_member("friends@example.org", "alice@example.org") is None
    assert aliased.spam_levels("alice@example.org").empty
    assert aliased.content_policy("alice@example.org") == ()
    assert aliased.identities("Alice+x@Example.org") == frozenset({"alice@example.org"})


# --- the real account database of this machine ---------------------------------------------

@pytest.fixture
def system():
    return PasswdDirectory(Settings().replace(passwd_domains=["example.org"]))


@pytest.mark.parametrize("name", ["root", "nobody", "daemon", "bin", "sys"])
def test_root_and_system_accounts_are_never_mailboxes(system, name):
    pwd.getpwnam(name)                                 # exists on every Debian system
    assert system.resolve(f"{name}@example.org").kind == "unknown"


def test_an_unknown_system_name_is_unknown(system):
    assert system.resolve("no-such-account-owlery@example.org").kind == "unknown"


def test_the_real_database_gives_a_real_home_when_the_range_allows():
    d = open_backend(Settings().replace(directory_backend="passwd", passwd_domains=["example.org"],
                                        passwd_uid_min=0, passwd_uid_max=0))
    [box] = d.resolve("root@example.org").mailboxes
    home = pwd.getpwnam("root").pw_dir
    assert (box.maildir, box.uid, box.gid) == (os.path.join(home, "Maildir"), 0, 0)


def test_the_readme_example_opens_a_passwd_directory(tmp_path):
    """README.rst's local-accounts block is a settings file that starts this backend."""
    from tests.core.test_readme import literal_blocks, section
    [block] = [b for b in literal_blocks(section("Policy daemon: recipients, quota, protected lists"))
               if 'directory_backend = "passwd"' in b]
    settings = parse_text(block, "README.rst")
    assert settings.passwd_aliases == "/etc/aliases"
    (tmp_path / "aliases").write_text("postmaster: root\n")
    settings = settings.replace(passwd_aliases=str(tmp_path / "aliases"))     # /etc/aliases need not exist here
    d = open_backend(settings)
    assert isinstance(d, PasswdDirectory) and d.hosts_domain(settings.passwd_domains[0])


# --- what local(8)'s mailbox_command gives the LDA (tests/e2e/test_passwd_local_postfix.py) ---

def test_a_bare_account_name_is_its_mailbox_in_the_first_domain():
    """`owlery-lda -d "$USER"`: local(8) names the account, without a domain."""
    d = make()
    r = d.resolve("alice")
    assert r.kind == "mailbox" and [m.address for m in r.mailboxes] == ["alice@example.org"]
    assert d.resolve("root").kind == "unknown" and d.resolve("../etc").kind == "unknown"


@pytest.mark.parametrize("euid,backend,template,expected", [
    (1001, "sqlite", "{home}/.owlery-state.sqlite", "/home/alice/.owlery-state.sqlite"),
    (1001, "sqlite", "/var/lib/owlery/users/{user}.sqlite", "/var/lib/owlery/users/alice.sqlite"),
    (1001, "sqlite", "", None),              # empty: state_sqlite_path
    (1001, "redis", "{home}/.owlery-state.sqlite", None),    # a shared store is used as set
    (0, "sqlite", "{home}/.owlery-state.sqlite", None),      # root (lmtpd, a test): as set
    (65534, "sqlite", "{home}/.owlery-state.sqlite", None),  # outside the uid range: no account
])
def test_the_lda_run_as_an_account_keeps_its_state_in_the_accounts_home(monkeypatch, euid, backend, template, expected):
    import owlery.directory.passwd as passwd_mod
    alice = pwd.struct_passwd(("alice", "x", 1001, 1001, "", "/home/alice/", "/bin/sh"))
    monkeypatch.setattr(passwd_mod.os, "geteuid", lambda: euid)
    monkeypatch.setattr(passwd_mod.pwd, "getpwuid", lambda uid: alice if uid == 1001 else pwd.getpwuid(uid))
    settings = Settings().replace(directory_backend="passwd", state_backend=backend,
                                  passwd_state_sqlite_template=template)
    got = passwd_mod.account_state_settings(settings)
    assert got.state_sqlite_path == (expected or settings.state_sqlite_path)


def test_a_state_template_that_gives_no_absolute_path_is_a_temporary_failure(monkeypatch):
    import owlery.directory.passwd as passwd_mod
    from owlery.errors import DirectoryUnavailable
    alice = pwd.struct_passwd(("alice", "x", 1001, 1001, "", "/home/alice", "/bin/sh"))
    monkeypatch.setattr(passwd_mod.os, "geteuid", lambda: 1001)
    monkeypatch.setattr(passwd_mod.pwd, "getpwuid", lambda uid: alice)
    for template in ("state.sqlite", "{home}/{uid}.sqlite"):
        with pytest.raises(DirectoryUnavailable):
            passwd_mod.account_state_settings(Settings().replace(passwd_state_sqlite_template=template))
