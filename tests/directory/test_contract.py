"""One contract for every directory backend: the same questions, the same answers, from map
files and from a real slapd loaded with the harness seed directory (tests/harness/slapd.py).

The local-accounts backend (owlery/directory/passwd.py) holds no quotas, protected lists or
spam levels, so it answers the address questions only (the `any_directory` tests: who
exists, what aliases reach, which domains are ours), from an injected account database and
aliases(5) file holding the same seed; tests/directory/test_passwd.py has the rest."""

import pwd
import textwrap

import pytest

import owlery.directory.passwd
from owlery.directory import open_backend, open_directory
from owlery.settings import Settings

# The harness seed directory, written as map files (dave is disabled: absent here).
FILES = {
    "mailboxes": """
        alice@example.test
        bob@example.test
        carol@example.test
        erin@example.test
    """,
    "aliases": """
        postmaster@example.test      alice@example.test
        alice.example@example.test   alice@example.test
        alice@alias.example.test     alice@example.test
        bob@example.test             bob@example.test, bob@elsewhere.test
        erin@example.test            erin@example.test, erin@elsewhere.test, erin.backup@elsewhere.test
        erin@alias.example.test      erin@example.test
        csall@example.test           alice@example.test, bob@example.test
        staff@example.test           alice@example.test, erin@example.test
        team@example.test            staff@example.test
    """,
    "quotas": """
        alice@example.test   10485760
        bob@example.test     52428800
        carol@example.test   1
    """,
    "lists": """
        csall@example.test   members, authenticated
        staff@example.test   members, authenticated
        team@example.test    members, authenticated
    """,
    "spam_levels": """
        alice@example.test          tag=-999 tag2=4.5 kill=12.5 reject=30
        bob@example.test            quarantine=3
        frank@levels.example.test   tag2=2.5
        @levels.example.test        tag2=4, quarantine=8
    """,
}


# The same seed as local accounts and an aliases(5) file (`\name`: the account, not the alias).
PASSWD_ACCOUNTS = {name: pwd.struct_passwd((name, "x", uid, 100, "", f"/home/{name}", "/bin/sh"))
                   for name, uid in (("alice", 1001), ("bob", 1002), ("carol", 1003), ("erin", 1005))}
PASSWD_ALIASES = r"""
postmaster:     alice
alice.example:  alice
bob:            \bob, bob@elsewhere.test
erin:           \erin, erin@elsewhere.test, erin.backup@elsewhere.test
csall:          alice, bob
staff:          alice, erin
team:           staff
"""


def passwd_getpwnam(name):
    return PASSWD_ACCOUNTS[name]


def make_settings(kind, request, tmp_path):
    if kind == "passwd":
        request.getfixturevalue("monkeypatch").setattr(owlery.directory.passwd, "system_getpwnam", passwd_getpwnam)
        aliases = tmp_path / "aliases"
        aliases.write_text(PASSWD_ALIASES)
        return Settings().replace(directory_backend="passwd", passwd_domains=["example.test", "alias.example.test"],
                                  passwd_aliases=str(aliases))
    if kind == "files":
        values = {}
        for name, text in FILES.items():
            path = tmp_path / name
            path.write_text(textwrap.dedent(text).lstrip("\n"))
            values["files_" + name] = str(path)
        return Settings().replace(directory_backend="files", **values)
    slapd = request.getfixturevalue("slapd")
    return Settings().replace(directory_backend="ldap", ldap_servers=[slapd.url], ldap_base_dn=slapd.base_dn,
                              ldap_spam_reject_level_attribute="owlerySpamRejectLevel")


@pytest.fixture(params=["files", "ldap"])
def backend_settings(request, tmp_path):
    return make_settings(request.param, request, tmp_path)


@pytest.fixture(params=["files", "ldap", "passwd"])
def any_settings(request, tmp_path):
    """Every backend, for the address questions."""
    return make_settings(request.param, request, tmp_path)


@pytest.fixture
def directory(backend_settings):
    d = open_backend(backend_settings)
    yield d
    d.close()


@pytest.fixture
def any_directory(any_settings):
    d = open_backend(any_settings)
    yield d
    d.close()


def mailbox_addresses(r):
    return sorted(m.address for m in r.mailboxes)


ERIN_FWD = ["erin.backup@elsewhere.test", "erin@elsewhere.test"]


@pytest.mark.parametrize("address,exists,mailboxes,remote", [
    ("alice@example.test", True, ["alice@example.test"], []),
    ("ALICE@Example.TEST", True, ["alice@example.test"], []),
    ("alice+lists@example.test", True, ["alice@example.test"], []),
    ("postmaster@example.test", True, ["alice@example.test"], []),
    ("alice.example@example.test", True, ["alice@example.test"], []),
    ("alice@alias.example.test", True, ["alice@example.test"], []),            # second domain
    ("bob@example.test", True, ["bob@example.test"], ["bob@elsewhere.test"]),
    ("erin@example.test", True, ["erin@example.test"], ["erin.backup@elsewhere.test", "erin@elsewhere.test"]),
    # groups / aliases reach members and the members' forwards; disabled dave is left out
    ("csall@example.test", True, ["alice@example.test", "bob@example.test"], ["bob@elsewhere.test"]),
    ("staff@example.test", True, ["alice@example.test", "erin@example.test"], ERIN_FWD),
    ("team@example.test", True, ["alice@example.test", "erin@example.test"], ERIN_FWD),
    ("nobody@example.test", False, [], []),
    ("nobody+x@example.test", False, [], []),
    ("dave@example.test", False, [], []),                                       # disabled
    ("a*@example.test", False, [], []),                                         # no wildcard injection
    ("*)(mail=*@example.test", False, [], []),
])
def test_resolve(any_directory, address, exists, mailboxes, remote):
    r = any_directory.resolve(address)
    assert r.exists is exists, r
    assert r.kind in (("mailbox", "alias") if exists else ("unknown",))
    assert mailbox_addresses(r) == mailboxes
    assert sorted(r.remote) == remote


@pytest.mark.parametrize("address", ["someone@not-ours.test", "bob@elsewhere.test"])
def test_not_our_domain(any_directory, address):
    assert any_directory.resolve(address).kind == "not_local"


@pytest.mark.parametrize("domain,hosted", [("example.test", True), ("Alias.Example.Test", True),
                                           ("elsewhere.test", False), ("test", False)])
def test_hosts_domain(any_directory, domain, hosted):
    assert any_directory.hosts_domain(domain) is hosted


@pytest.mark.parametrize("address,quota", [("alice@example.test", 10485760), ("carol@example.test", 1),
                                           ("erin@example.test", None)])
def test_quota(directory, address, quota):
    [box] = directory.resolve(address).mailboxes[:1]
    assert box.quota_bytes == quota


def is_member(directory, policy, address):
    from owlery.directory import normalise
    return normalise(address) in policy.members or bool(directory.identities(address) & policy.member_ids)


@pytest.mark.parametrize("list_address,who,member", [
    ("csall@example.test", "alice@example.test", True),
    ("csall@example.test", "Bob@Example.Test", True),
    ("csall@example.test", "erin@example.test", False),
    ("csall@example.test", "dave@example.test", False),        # disabled
    ("csall@example.test", "nobody@example.test", False),
    ("staff@example.test", "erin@example.test", True),
    ("staff@example.test", "bob@example.test", False),
])
def test_list_membership(directory, list_address, who, member):
    policy = directory.list_policy(list_address)
    assert policy is not None and policy.allow_members and policy.allow_authenticated
    assert is_member(directory, policy, who) is member


@pytest.mark.parametrize("address", ["alice@example.test", "nobody@example.test", "x@not-ours.test"])
def test_not_a_list(any_directory, address):
    assert any_directory.list_policy(address) is None


def test_lookup_recipient_for_delivery(any_directory):
    assert any_directory.lookup_recipient("alice+x@example.test").address == "alice@example.test"
    assert any_directory.lookup_recipient("postmaster@example.test").address == "alice@example.test"
    assert any_directory.lookup_recipient("nobody@example.test") is None
    assert any_directory.lookup_recipient("csall@example.test") is None      # several mailboxes: resolve()


@pytest.mark.parametrize("address,levels", [
    ("alice@example.test", (-999.0, 4.5, 12.5, 30.0)),
    ("Alice+News@Example.TEST", (-999.0, 4.5, 12.5, 30.0)),
    ("bob@example.test", (None, None, 3.0, None)),                  # only a (low) kill level
    ("frank@levels.example.test", (None, 2.5, 8.0, None)),          # own tag2, kill from @domain
    ("anyone@levels.example.test", (None, 4.0, 8.0, None)),         # the @domain default
    ("carol@example.test", (None, None, None, None)),               # nothing set: all global
    ("nobody@elsewhere.test", (None, None, None, None)),
    ("*)(mail=*@example.test", (None, None, None, None)),           # no wildcard injection
    ("not an address", (None, None, None, None)),
])
def test_spam_levels(directory, address, levels):
    got = directory.spam_levels(address)
    assert (got.tag, got.tag2, got.quarantine, got.reject) == levels


def test_cached_spam_levels(backend_settings):
    d = open_directory(backend_settings)
    first = d.spam_levels("bob@example.test")
    assert d.spam_levels("bob@example.test") == first and first.quarantine == 3.0 and d.hits == 1
    d.close()


def test_cached_directory_same_answers(any_settings):
    d = open_directory(any_settings)
    first = d.resolve("alice@example.test")
    assert d.resolve("alice@example.test") == first and d.hits == 1
    assert d.peek_resolve("alice@example.test") == first
    d.close()
