"""Fail closed (issue 14, item 8), policyd's part: a directory whose package cannot be imported
(ldap3 missing, found at the first lookup or when the directory is opened) never answers DUNNO
for a recipient: the request fails, the adapter hangs up without a reply, and Postfix answers
451 4.3.5 (server configuration problem) and keeps the mail."""

import pytest

from owlery.directory import CachingDirectory
from owlery.directory.base import Directory
from owlery.settings import Settings

from policyd_testlib import ask, make_pipeline


class NoPackage(Directory):
    def _fail(self, *a):
        raise ImportError("No module named 'ldap3'")

    hosts_domain = resolve = list_policy = identities = _fail


@pytest.mark.parametrize("check", ["recipient", "lists", "quota"])
def test_a_lookup_that_cannot_import_its_package_is_no_dunno(check):
    directory = CachingDirectory(NoPackage(), positive_ttl=60, negative_ttl=60, entries_max=10)
    p = make_pipeline(Settings(), {"RCPT": [check]}, directory=directory)
    with pytest.raises(ImportError):
        ask(p, recipient="nobody@example.org")


def test_a_directory_that_cannot_be_opened_is_no_dunno(monkeypatch):
    import owlery.directory

    def no_package(*a, **kw):
        raise ImportError("No module named 'ldap3'")
    p = make_pipeline(Settings(), {"RCPT": ["recipient"]}, directory=object())
    p.ctx._directory = None                       # opened on first use, from the settings
    monkeypatch.setattr(owlery.directory, "open_directory", no_package)
    with pytest.raises(ImportError):
        ask(p, recipient="nobody@example.org")
