"""Directory.expand_once: one step of alias expansion for exactly one key, from map files and slapd.

The contract: the key is taken as it is (an extension is not stripped); a mailbox answers its
own address (and its forwards); an alias or group its targets one level deep; None for
nothing. Applied recursively the way Postfix applies virtual_alias_maps (an address that
maps to itself stops), it reaches exactly what resolve() reaches.
"""

import pytest

from owlery.directory import MISS, open_backend, open_directory
from owlery.settings import Settings
from tests.directory import test_contract as contract
from tests.harness.slapd import seed_ldif


# The contract suite's fixtures: the harness seed directory as map files and in a real slapd.
backend_settings = contract.backend_settings
directory = contract.directory


@pytest.mark.parametrize("key,targets", [
    ("alice@example.test", ["alice@example.test"]),                      # a mailbox: itself
    ("ALICE@Example.TEST", ["alice@example.test"]),
    ("postmaster@example.test", ["alice@example.test"]),                 # alias / alternate address
    ("alice@alias.example.test", ["alice@example.test"]),
    ("bob@example.test", ["bob@elsewhere.test", "bob@example.test"]),    # itself and its forward
    ("erin@example.test", ["erin.backup@elsewhere.test", "erin@elsewhere.test", "erin@example.test"]),
    ("csall@example.test", ["alice@example.test", "bob@example.test"]),  # a group; disabled dave left out
    ("staff@example.test", ["alice@example.test", "erin@example.test"]),
    ("alice+x@example.test", None),                                      # exact key: no extension stripping
    ("nobody@example.test", None),
    ("dave@example.test", None),                                         # disabled
    ("dave.alias@example.test", None),
    ("x@elsewhere.test", None),                                          # not our domain
    ("@example.test", None),                                             # no catch-all
    ("a*@example.test", None),                                           # no filter injection
    ("*)(mail=*@example.test", None),
    ("not an address", None),
    ("alice\x00@example.test", None),
])
def test_expand_once(directory, key, targets):
    got = directory.expand_once(key)
    assert (sorted(got) if got is not None else None) == targets


def postfix_expand(directory, address, depth=0):
    """The final addresses Postfix's cleanup reaches by recursing on virtual_alias_maps."""
    assert depth < 10, "alias loop"
    targets = directory.expand_once(address)
    if targets is None:
        return {address}
    out = set()
    for target in targets:
        out |= {target} if target == address else postfix_expand(directory, target, depth + 1)
    return out


@pytest.mark.parametrize("address", ["alice@example.test", "postmaster@example.test", "bob@example.test",
                                     "erin@alias.example.test", "csall@example.test", "staff@example.test",
                                     "team@example.test"])
def test_recursive_expansion_reaches_what_resolve_reaches(directory, address):
    r = directory.resolve(address)
    assert postfix_expand(directory, address) == {m.address for m in r.mailboxes} | set(r.remote)


def test_cache_keeps_expand_once(backend_settings):
    d = open_directory(backend_settings)
    assert d.peek_expand_once("csall@example.test") is MISS
    first = d.expand_once("csall@example.test")
    assert d.peek_expand_once("csall@example.test") == first and d.hits == 1
    assert d.expand_once("nobody@example.test") is None
    assert d.peek_expand_once("nobody@example.test") is None          # negative answers are cached too
    assert d.peek_hosts_domain("example.test") is MISS
    assert d.hosts_domain("example.test") is True and d.peek_hosts_domain("example.test") is True
    d.close()


def test_files_catch_alls_and_domain_aliases(tmp_path):
    (tmp_path / "mailboxes").write_text("alice@example.test\n@catch.test\n")
    (tmp_path / "aliases").write_text("@old.test @example.test\n@example.test postmaster@example.test\n"
                                      "alice@catch.test alice@example.test\n")
    d = open_backend(Settings().replace(files_mailboxes=str(tmp_path / "mailboxes"),
                                        files_aliases=str(tmp_path / "aliases")))
    assert d.expand_once("@old.test") == ["@example.test"]                 # stays a domain alias
    assert d.expand_once("@example.test") == ["postmaster@example.test"]   # catch-all alias
    assert d.expand_once("alice@example.test") == ["alice@example.test"]   # not hidden by it
    assert d.expand_once("@catch.test") == ["@catch.test"]                 # catch-all mailbox
    assert d.expand_once("alice@catch.test") == ["alice@example.test"]
    assert d.expand_once("bob@old.test") is None                           # exact keys only


NESTED = """
dn: cn=all,ou=groups,dc=example,dc=test
objectClass: groupOfNames
objectClass: qmailUser
cn: all
mail: all@example.test
member: cn=staff,ou=groups,dc=example,dc=test
member: cn=unnamed,ou=groups,dc=example,dc=test
member: uid=dave,ou=people,dc=example,dc=test

dn: cn=unnamed,ou=groups,dc=example,dc=test
objectClass: groupOfNames
cn: unnamed
member: uid=carol,ou=people,dc=example,dc=test
"""


def test_ldap_nested_groups_and_catch_all(make_slapd):
    server = make_slapd(ldif_text=seed_ldif() + NESTED)
    d = open_backend(Settings().replace(directory_backend="ldap", ldap_servers=[server.url],
                                        ldap_base_dn=server.base_dn))
    # A member group with an address stays an address (Postfix expands it next); one without
    # an address is expanded here; the disabled member is left out.
    assert sorted(d.expand_once("all@example.test")) == ["carol@example.test", "staff@example.test"]
    assert postfix_expand(d, "all@example.test") == {"alice@example.test", "carol@example.test",
                                                    "erin@example.test", "erin@elsewhere.test",
                                                    "erin.backup@elsewhere.test"}
    # The seed's domain entry holds mail @levels.example.test: a catch-all mailbox.
    assert d.expand_once("@levels.example.test") == ["@levels.example.test"]
    assert d.expand_once("frank@levels.example.test") == ["frank@levels.example.test"]
    d.close()
