"""LDAP backend specifics against a real slapd: bind, server down and back, escaping, settings."""

import pytest

from owlery.directory.ldap import LdapDirectory, escape
from owlery.errors import DirectoryUnavailable
from owlery.settings import Settings


def ldap_settings(slapd, **over):
    return Settings().replace(directory_backend="ldap", ldap_servers=[slapd.url], ldap_base_dn=slapd.base_dn,
                              ldap_timeout=2, ldap_connect_timeout=1, **over)


@pytest.mark.parametrize("value,escaped", [("a*b", "a\\2ab"), ("x)(y", "x\\29\\28y"), ("back\\slash", "back\\5cslash"),
                                           ("nul\0", "nul\\00")])
def test_escape(value, escaped):
    assert escape(value) == escaped


def test_authenticated_bind_and_password_file(slapd, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(slapd.admin_password + "\n")
    settings = ldap_settings(slapd, ldap_bind_dn=slapd.admin_dn, ldap_bind_password_file=str(pw))
    with pytest.raises(ValueError, match="readable by everyone"):     # 0644: refused
        LdapDirectory(settings)
    pw.chmod(0o640)
    d = LdapDirectory(settings)
    assert d.resolve("alice@example.test").exists
    d.close()


def test_wrong_password_is_unavailable_not_unknown(slapd):
    d = LdapDirectory(ldap_settings(slapd, ldap_bind_dn=slapd.admin_dn, ldap_bind_password="wrong"))
    with pytest.raises(DirectoryUnavailable):
        d.resolve("alice@example.test")


def test_nothing_listening_is_unavailable():
    from tests.harness.procs import free_port
    s = Settings().replace(directory_backend="ldap", ldap_servers=[f"ldap://127.0.0.1:{free_port()}"],
                           ldap_connect_timeout=1)
    with pytest.raises(DirectoryUnavailable):
        LdapDirectory(s).resolve("alice@example.test")


def test_server_stopped_then_back(make_slapd):
    server = make_slapd()
    d = LdapDirectory(ldap_settings(server, ldap_pool_size=2))
    assert d.resolve("alice@example.test").exists          # pool now holds a live connection
    server.stop()
    with pytest.raises(DirectoryUnavailable):
        d.resolve("alice@example.test")
    server.start()
    assert d.resolve("alice@example.test").exists          # stale connections dropped, fresh one made
    d.close()


def test_list_policy_attribute_and_no_protection(make_slapd):
    server = make_slapd()
    server.modify_ldif("dn: cn=csall,ou=groups,dc=example,dc=test\nchangetype: modify\n"
                       "replace: description\ndescription: boss@partner.test\n")
    d = LdapDirectory(ldap_settings(server, ldap_list_policy_attribute="description"))
    p = d.list_policy("csall@example.test")
    assert "boss@partner.test" in p.senders and not p.allow_members
    d2 = LdapDirectory(ldap_settings(server, ldap_lists_protect_groups=False))
    assert d2.list_policy("csall@example.test") is None


def test_fixed_domains_setting(slapd):
    d = LdapDirectory(ldap_settings(slapd, ldap_domains=["example.test"]))
    assert d.hosts_domain("example.test") and not d.hosts_domain("alias.example.test")
    assert d.resolve("alice@alias.example.test").kind == "not_local"


def test_over_quota_and_usage_attributes(make_slapd):
    server = make_slapd()
    d = LdapDirectory(ldap_settings(server, ldap_over_quota_attribute="description",
                                    ldap_usage_attribute="employeeNumber"))
    server.modify_ldif("dn: uid=alice,ou=people,dc=example,dc=test\nchangetype: modify\n"
                       "add: employeeNumber\nemployeeNumber: 4096\n")
    [box] = d.resolve("alice@example.test").mailboxes
    assert box.usage_bytes == 4096 and not box.over_quota
    server.modify_ldif("dn: uid=erin,ou=people,dc=example,dc=test\nchangetype: modify\n"
                       "add: description\ndescription: TRUE\n")
    [box] = d.resolve("erin@example.test").mailboxes
    assert box.over_quota


def test_spam_levels_of_an_entry_found_by_any_address(slapd):
    d = LdapDirectory(ldap_settings(slapd))
    # postmaster@ is one of alice's addresses: her entry's levels (the reject one is not mapped by default)
    levels = d.spam_levels("postmaster@example.test")
    assert (levels.tag, levels.tag2, levels.quarantine, levels.reject) == (-999.0, 4.5, 12.5, None)
    assert LdapDirectory(ldap_settings(slapd, ldap_spam_tag2_level_attribute="",
                                       ldap_spam_quarantine_level_attribute="")).spam_levels(
        "alice@example.test").tag2 is None
    d.close()


def test_spam_level_that_is_not_a_number_falls_back_and_server_down_raises(make_slapd):
    server = make_slapd()
    server.modify_ldif("dn: uid=bob,ou=people,dc=example,dc=test\nchangetype: modify\n"
                       "add: amavisSpamTag2Level\namavisSpamTag2Level: high\n")
    d = LdapDirectory(ldap_settings(server))
    levels = d.spam_levels("bob@example.test")
    assert (levels.tag2, levels.quarantine) == (None, 3.0)
    server.stop()
    with pytest.raises(DirectoryUnavailable):
        d.spam_levels("bob@example.test")
    d.close()
