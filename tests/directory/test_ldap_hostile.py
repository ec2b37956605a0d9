"""Hostile recipient addresses against the LDAP backend: no pool leak, "unknown" not an outage, escaping.

Real slapd (the session `slapd` fixture, tests/harness/slapd.py) plus unit tests on a fake
connection for the pool bookkeeping of LdapDirectory.search.
"""

import itertools

import pytest

from owlery.directory.ldap import LdapDirectory, escape, lookup_value
from owlery.errors import DirectoryUnavailable
from owlery.settings import Settings

# Undecodable bytes arrive as lone surrogates (the policy codec decodes with surrogateescape).
NOT_UTF8 = b"\xff\xfeuser@example.test".decode("utf-8", "surrogateescape")
HOSTILE = [
    NOT_UTF8,
    "alice@" + b"example.test\xc3".decode("utf-8", "surrogateescape"),
    "ali\0ce@example.test",
    "alice\0@example.test",
    "alice@example.test\0",
    "al\x01ice@example.test",
    "alice\r\n@example.test",
]


def ldap_settings(slapd, **over):
    values = dict(directory_backend="ldap", ldap_servers=[slapd.url], ldap_base_dn=slapd.base_dn,
                  ldap_timeout=1, ldap_connect_timeout=1, ldap_pool_size=2)
    values.update(over)
    return Settings().replace(**values)


def assert_pool_intact(d, size):
    """Every connection made is idle in the pool again, and no more than the pool size were made."""
    assert d._created <= size
    assert d._pool.qsize() == d._created


# ---- against the real slapd ----------------------------------------------------------------

def test_twenty_hostile_lookups_then_a_normal_one(slapd):
    d = LdapDirectory(ldap_settings(slapd))
    try:
        for address in itertools.islice(itertools.cycle(HOSTILE), 20):
            assert d.resolve(address).kind == "unknown", address
            assert d.list_policy(address) is None
            assert d.identities(address) == frozenset()
            assert d.spam_levels(address).empty
        r = d.resolve("alice@example.test")
        assert r.kind == "mailbox" and [m.address for m in r.mailboxes] == ["alice@example.test"]
        assert_pool_intact(d, 2)
    finally:
        d.close()


def test_search_that_raises_outside_ldap3_returns_no_leak(slapd):
    """A filter ldap3 cannot encode raises (not an LDAPException): the connection must not leak."""
    d = LdapDirectory(ldap_settings(slapd))
    try:
        for _ in range(20):
            with pytest.raises(UnicodeError):
                d.search(f"(mail={NOT_UTF8})")
        assert d.resolve("bob@example.test").exists
        assert_pool_intact(d, 2)
    finally:
        d.close()


@pytest.mark.parametrize("address,kind", [
    ("*@example.test", "unknown"),                       # unescaped: (mail=*@example.test) matches everyone
    ("a*e@example.test", "unknown"),                     # unescaped: matches alice
    ("*", "unknown"),
    ("nobody)(|(mail=*@example.test", "unknown"),        # filter injection in the local part
    ("x\\2a@example.test", "unknown"),                   # a literal backslash, not an escape
    ("alice@example.test)(mail=*", "not_local"),         # ... and in the domain
    ("alice@*", "not_local"),
])
def test_filter_metacharacters_are_escaped(slapd, address, kind):
    d = LdapDirectory(ldap_settings(slapd))
    try:
        assert d.resolve(address).kind == kind
        assert d.identities(address) == frozenset()
        assert_pool_intact(d, 2)
    finally:
        d.close()


def test_hostile_domains_are_not_ours(slapd):
    d = LdapDirectory(ldap_settings(slapd))
    try:
        assert not d.hosts_domain("*")
        assert not d.hosts_domain("example.test)(mail=*")
        assert not d.hosts_domain(b"example.test\xff".decode("utf-8", "surrogateescape"))
        assert not d.hosts_domain("example.test\0")
        assert d.hosts_domain("example.test")
    finally:
        d.close()


def test_non_ascii_utf8_address_is_looked_up(slapd):
    """Valid UTF-8 (SMTPUTF8) is an ordinary lookup: unknown here, not refused before the search."""
    d = LdapDirectory(ldap_settings(slapd))
    try:
        assert d.resolve("jörg@example.test").kind == "unknown"
        assert_pool_intact(d, 2)
    finally:
        d.close()


# ---- unit: escaping and the pool on a fake connection --------------------------------------

@pytest.mark.parametrize("value,escaped", [
    ("plain", "plain"), ("*", "\\2a"), ("(", "\\28"), (")", "\\29"), ("\\", "\\5c"), ("\0", "\\00"),
    ("a\\2a", "a\\5c2a"), ("jörg", "jörg"),
])
def test_escape_rfc4515(value, escaped):
    assert escape(value) == escaped


@pytest.mark.parametrize("text", HOSTILE + ["\x7f@example.test", "a\tb@example.test"])
def test_lookup_value_refuses(text):
    with pytest.raises(ValueError):
        lookup_value(text)


@pytest.mark.parametrize("text", ["alice@example.test", "jörg@例え.jp", "\"odd local\"@example.test"])
def test_lookup_value_accepts(text):
    assert lookup_value(text) == text


class FakeConn:
    """Just enough of an ldap3 Connection for LdapDirectory.search."""

    def __init__(self, outcome):
        self.outcome = outcome
        self.result = None
        self.response = None
        self.unbound = False

    def search(self, *args, **kwargs):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        self.result = {"result": 0, "description": "success"}
        self.response = self.outcome

    def unbind(self):
        self.unbound = True


class BrokenResponse:
    def __iter__(self):
        raise KeyError("dn")


def fake_directory(monkeypatch, outcomes):
    """An LdapDirectory (pool of 2, short wait) whose connections come from `outcomes` in turn."""
    d = LdapDirectory(Settings().replace(directory_backend="ldap", ldap_pool_size=2, ldap_timeout=0.2))
    made = []
    it = iter(outcomes)

    def connect():
        made.append(FakeConn(next(it)))
        return made[-1]

    monkeypatch.setattr(d, "_connect", connect)
    return d, made


@pytest.mark.parametrize("error", [UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed"),
                                   RuntimeError("bug"), BrokenResponse()])
def test_any_exception_discards_the_connection(monkeypatch, error):
    good = [{"type": "searchResEntry", "dn": "uid=a,dc=x", "attributes": {"mail": ["a@x.test"]}}]
    d, made = fake_directory(monkeypatch, [error] * 20 + [good])
    for _ in range(20):
        with pytest.raises((UnicodeError, RuntimeError, KeyError)):
            d.search("(mail=x)")
    assert all(c.unbound for c in made) and d._created == 0 and d._pool.qsize() == 0
    [entry] = d.search("(mail=a@x.test)")
    assert entry.first("mail") == "a@x.test"
    assert d._created == 1 and d._pool.qsize() == 1        # the good one went back to the pool
    assert not made[-1].unbound


def test_ldap_error_still_retries_then_unavailable(monkeypatch):
    from ldap3.core.exceptions import LDAPSocketReceiveError
    d, made = fake_directory(monkeypatch, [LDAPSocketReceiveError("gone")] * 2)
    with pytest.raises(DirectoryUnavailable):
        d.search("(mail=x)")
    assert len(made) == 2 and all(c.unbound for c in made) and d._created == 0
