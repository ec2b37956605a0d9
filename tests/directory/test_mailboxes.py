"""Directory.mailboxes(): every local mailbox, for the upkeep commands that walk them all,
from map files and from the harness slapd (paged: several pages of two entries)."""

import pytest

from owlery.directory import open_backend, open_directory
from owlery.errors import DirectoryUnavailable
from owlery.settings import Settings
from tests.directory.test_contract import backend_settings  # noqa: F401  (the two-backend fixture)

EXPECTED = {"files": ["alice@example.test", "bob@example.test", "carol@example.test", "erin@example.test"],
            # LDAP also has frank (a user only the spam-levels map names in the files variant);
            # disabled dave, the groups and the @levels.example.test defaults entry are not mailboxes.
            "ldap": ["alice@example.test", "bob@example.test", "carol@example.test", "erin@example.test",
                     "frank@levels.example.test"]}


def test_every_mailbox_once(backend_settings):  # noqa: F811
    d = open_directory(backend_settings.replace(ldap_page_size=2))
    try:
        got = [m.address for m in d.mailboxes()]
        assert sorted(got) == EXPECTED[backend_settings.directory_backend]
        assert len(got) == len(set(got))
        quotas = {m.address: m.quota_bytes for m in d.mailboxes()}
        assert quotas["alice@example.test"] == 10485760
    finally:
        d.close()


def test_a_dead_server_is_unavailable_not_empty():
    s = Settings().replace(directory_backend="ldap", ldap_servers=["ldap://127.0.0.1:9"], ldap_base_dn="dc=x",
                           ldap_connect_timeout=1)
    d = open_backend(s)
    with pytest.raises(DirectoryUnavailable):
        list(d.mailboxes())
    d.close()
