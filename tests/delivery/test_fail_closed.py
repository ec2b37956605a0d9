"""Fail closed (issue 14, item 8), delivery's part: a directory package that cannot be imported
(ldap3 missing) never turns into "accept every address"; lmtpd's reload closes what it
replaced, exactly once, now that the executor shares the resolver's directory.

Before the fix (commit 34e1f8f) UserResolver caught the ImportError and fell back to the path
templates, so every address, known or not, got a mailbox: the first test failed then."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock

import owlery.directory
from owlery.settings import parse_text
from sieve.delivery.lmtpd import RELOAD_CLOSE_DELAY, LMTPApplication
from sieve.delivery.users import UserResolver
from tests.delivery.stand_ins import ResolverStandIn


def _no_package(*a, **kw):
    raise ImportError("No module named 'ldap3'")


@pytest.fixture
def conf(tmp_path):
    (tmp_path / "mailboxes").write_text("alice@example.org\n")
    path = tmp_path / "owlery.toml"
    path.write_text(f'files_mailboxes = "{tmp_path}/mailboxes"\nstate_backend = "memory"\n'
                    f'maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"\n')
    return path


def test_a_missing_directory_package_is_an_error_not_accept_everyone(conf, monkeypatch):
    monkeypatch.setattr(owlery.directory, "open_directory", _no_package)
    with pytest.raises(ImportError):
        UserResolver.from_settings(parse_text(conf.read_text()))


def test_the_lda_defers_and_stores_nothing_without_the_package(conf, monkeypatch, tmp_path):
    from sieve.delivery.cli import lda_main
    monkeypatch.setattr(owlery.directory, "open_directory", _no_package)
    status = lda_main(["-c", str(conf), "-f", "a@b.test", "-d", "nobody@example.org"], b"Subject: x\n\nhi\n")
    assert status == 75
    assert not (tmp_path / "mail").exists()


class Broken:
    """A resolver whose directory package fails at the first lookup (ldap3 imported lazily)."""

    directory = None

    def expand(self, address):
        raise ImportError("No module named 'ldap3'")


def test_lmtpd_answers_451_when_the_lookup_cannot_import_its_package(conf):
    app = LMTPApplication(parse_text(conf.read_text()), MemoryReactorClock(), resolver=Broken(), threadpool=object())
    reply, user = app.check_recipient("nobody@example.org")
    assert (reply.code, reply.dsn, user) == (451, "4.3.0", None)


def test_the_executor_shares_the_resolvers_directory_and_reload_closes_it_once(conf):
    clock = MemoryReactorClock()
    old = ResolverStandIn()
    app = LMTPApplication(parse_text(conf.read_text()), clock, resolver=old, threadpool=object())
    assert app.executor.directory() is old.directory            # extlists asks the same cache
    old_executor = app.executor
    app.reload(parse_text(conf.read_text()))
    assert app.executor is not old_executor and app.executor.directory() is app.resolver.directory
    clock.advance(RELOAD_CLOSE_DELAY)
    assert old.directory.closed == 1                             # closed by the resolver's owner only
    app.close()
