"""What an expansion passes through and where mailboxes live, from map files and from slapd.

`Recipient.lists`: the protected lists whose policy governs an address (the address itself
when it is one, else the first protected list on each path of its expansion), so the
policy daemon applies a list's policy when it is reached through an alias, a forward or a
domain alias (issue 15, item 3). `Mailbox.mail_host`: the back end ("mail home server")
holding a mailbox, from `files_mail_hosts` or `ldap_mail_host_attribute` (item 4).
"""

import textwrap

import pytest

from owlery.directory import open_backend, open_directory
from owlery.directory.base import parse_mail_host
from owlery.directory.files import FilesDirectory, MapError
from owlery.settings import Settings
from tests.harness.slapd import seed_ldif

FILES = {
    "mailboxes": """
        alice@example.test
        bob@example.test
        carol@example.test
        erin@example.test
    """,
    "aliases": """
        csall@example.test           alice@example.test, bob@example.test
        staff@example.test           alice@example.test, erin@example.test
        team@example.test            staff@example.test
        everyone@example.test        csall@example.test
        outer@example.test           csall@example.test
        @alias.example.test          @example.test
    """,
    "lists": """
        csall@example.test   members, authenticated
        staff@example.test   members, authenticated
        team@example.test    members, authenticated
        outer@example.test   members, authenticated
    """,
    "mail_hosts": """
        alice@example.test   Backend-A.Example.Test.
        @example.test        backend-b.example.test
        carol@example.test   -
    """,
}

# The same shapes in LDAP, added to the seed directory: a forwarding entry into csall, a
# group whose member is the csall group, a mailHost on alice (misc.schema's attribute) and bob.
LDAP_EXTRA = """
dn: uid=everyone,ou=people,dc=example,dc=test
objectClass: inetOrgPerson
objectClass: qmailUser
uid: everyone
cn: Everyone
sn: Forward
mail: everyone@example.test
mailForwardingAddress: csall@example.test
accountStatus: active

dn: cn=outer,ou=groups,dc=example,dc=test
objectClass: groupOfNames
objectClass: qmailUser
cn: outer
mail: outer@example.test
member: cn=csall,ou=groups,dc=example,dc=test
"""
LDAP_HOSTS = """
dn: uid=alice,ou=people,dc=example,dc=test
changetype: modify
add: mailHost
mailHost: Backend-A.Example.Test.

dn: uid=bob,ou=people,dc=example,dc=test
changetype: modify
add: mailHost
mailHost: backend-b.example.test
"""


def files_settings(tmp_path, **over):
    values = {}
    for name, text in FILES.items():
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        values["files_" + name] = str(path)
    values.update(over)
    return Settings().replace(directory_backend="files", **{k: v for k, v in values.items() if v is not None})


@pytest.fixture(params=["files", "ldap"])
def make(request, tmp_path):
    """make(**settings) -> a backend of the parametrised kind holding the shapes above."""
    opened = []
    if request.param == "files":
        def build(**over):
            over.pop("ldap_mail_host_attribute", None)
            d = open_backend(files_settings(tmp_path, **over))
            opened.append(d)
            return d
    else:
        server = request.getfixturevalue("make_slapd")(ldif_text=seed_ldif() + LDAP_EXTRA)
        server.modify_ldif(LDAP_HOSTS)

        def build(**over):
            over.setdefault("ldap_mail_host_attribute", "mailHost")
            over.pop("files_mail_hosts", None)
            d = open_backend(Settings().replace(directory_backend="ldap", ldap_servers=[server.url],
                                                ldap_base_dn=server.base_dn, **over))
            opened.append(d)
            return d
    yield build
    for d in opened:
        d.close()


@pytest.mark.parametrize("address,lists", [
    ("alice@example.test", ()),
    ("nobody@example.test", ()),
    ("csall@example.test", ("csall@example.test",)),         # the list itself
    ("csall+tag@example.test", ("csall@example.test",)),
    ("everyone@example.test", ("csall@example.test",)),      # alias / forward into a list
    ("team@example.test", ("team@example.test",)),           # a protected name for a list: its own policy
    ("outer@example.test", ("outer@example.test",)),         # a list inside a list: the outer governs
])
def test_lists_along_the_expansion(make, address, lists):
    assert make().resolve(address).lists == lists


def test_domain_alias_into_a_list_files(tmp_path):
    d = open_backend(files_settings(tmp_path))
    assert d.resolve("csall@alias.example.test").lists == ("csall@example.test",)
    assert d.resolve("alice@alias.example.test").lists == ()


def test_no_protected_groups_no_lists(make_slapd):
    server = make_slapd(ldif_text=seed_ldif() + LDAP_EXTRA)
    d = open_backend(Settings().replace(directory_backend="ldap", ldap_servers=[server.url],
                                        ldap_base_dn=server.base_dn, ldap_lists_protect_groups=False))
    assert d.resolve("everyone@example.test").lists == ()
    assert d.resolve("csall@example.test").lists == ()
    d.close()


def test_mail_host(make):
    d = make()
    boxes = {m.address: m for r in (d.resolve("csall@example.test"), d.resolve("erin@example.test"))
             for m in r.mailboxes}
    assert boxes["alice@example.test"].mail_host == "backend-a.example.test"     # normalised
    assert boxes["bob@example.test"].mail_host == "backend-b.example.test"
    assert d.resolve("alice@alias.example.test").mailboxes[0].mail_host == "backend-a.example.test"


def test_mail_host_unset_is_none(make):
    d = make(ldap_mail_host_attribute="", files_mail_hosts=None)
    boxes = d.resolve("csall@example.test").mailboxes
    assert boxes and all(m.mail_host is None for m in boxes)


def test_files_mail_host_override_and_dash(tmp_path):
    d = open_backend(files_settings(tmp_path))
    assert d.resolve("erin@example.test").mailboxes[0].mail_host == "backend-b.example.test"   # domain default
    assert d.resolve("carol@example.test").mailboxes[0].mail_host is None                   # "-": none
    no_map = open_backend(files_settings(tmp_path, files_mail_hosts=None))
    assert no_map.resolve("alice@example.test").mailboxes[0].mail_host is None


def test_files_mail_hosts_adds_no_domain_and_refuses_junk(tmp_path):
    s = files_settings(tmp_path)
    (tmp_path / "mail_hosts").write_text("x@other.test backend.example.test\n")
    assert not open_backend(s).hosts_domain("other.test")
    (tmp_path / "mail_hosts").write_text("alice@example.test bad/host\n")
    with pytest.raises(MapError, match="mail_hosts:1"):
        FilesDirectory(s)


def test_ldap_bad_mail_host_is_ignored(make_slapd, caplog):
    server = make_slapd()
    server.modify_ldif("dn: uid=alice,ou=people,dc=example,dc=test\nchangetype: modify\n"
                       "add: mailHost\nmailHost: evil host}{x\n")
    d = open_backend(Settings().replace(directory_backend="ldap", ldap_servers=[server.url],
                                        ldap_base_dn=server.base_dn, ldap_mail_host_attribute="mailHost"))
    assert d.resolve("alice@example.test").mailboxes[0].mail_host is None
    assert "mailHost" in caplog.text
    d.close()


@pytest.mark.parametrize("text,host", [
    ("backend.example.org", "backend.example.org"), ("MX1.Example.ORG.", "mx1.example.org"),
    ("192.0.2.7", "192.0.2.7"), ("[2001:db8::1]", "2001:db8::1"), ("2001:db8::1", "2001:db8::1"),
    ("", None), ("-", None), ("  ", None),
])
def test_parse_mail_host(text, host):
    assert parse_mail_host(text) == host


@pytest.mark.parametrize("text", ["a b", "x/y", "{host}", "tcp:x:1", "a\nb", "-leading.example", "x" * 300])
def test_parse_mail_host_refuses(text):
    with pytest.raises(ValueError):
        parse_mail_host(text)


def test_cache_keeps_lists_and_hosts(tmp_path):
    d = open_directory(files_settings(tmp_path))
    first = d.resolve("everyone@example.test")
    assert d.peek_resolve("everyone@example.test") is first
    assert first.lists == ("csall@example.test",)
