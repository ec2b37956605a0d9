"""Recipient, list and quota checks: transcripts (request in, action out) on a files directory,
and every error path (directory down, directory timing out, unreadable maildirsize)."""

import pytest
from twisted.internet import defer, task

from owlery.directory import CachingDirectory
from owlery.directory.base import Directory
from owlery.errors import DirectoryUnavailable
from owlery.settings import Settings
from policyd.checks import Executor

from policyd_testlib import ask, make_pipeline, outcome, request, settings_for, write_maildirsize

RCPT_CHECKS = {"RCPT": ["recipient", "lists", "quota"], "END-OF-MESSAGE": ["quota"]}
USER_UNKNOWN = "550 5.1.1 User unknown"
FULL = "552 5.2.2 Mailbox full"
RESTRICTED = "550 5.7.1 Only authorised senders may post to this list"


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "dir"
    settings_for(r)
    # alice: 1M quota (map), 900000 used; carol: 1000S,10C, 10 messages -> full by count
    write_maildirsize(r, "example.org/alice", "1048576S\n800000 10\n100000 1\n")
    write_maildirsize(r, "example.org/carol", "1000S,10C\n500 10\n")
    write_maildirsize(r, "example.org/bob", "junk line\n12 1\nnot numbers\n")
    return r


@pytest.fixture
def pipe(root):
    return make_pipeline(settings_for(root), RCPT_CHECKS)


@pytest.mark.parametrize("attrs,expected", [
    # recipient verification
    ({"recipient": "alice@example.org"}, "DUNNO"),
    ({"recipient": "ALICE@Example.ORG"}, "DUNNO"),                       # case
    ({"recipient": "alice+news@example.org"}, "DUNNO"),                  # recipient_delimiter
    ({"recipient": "nobody@example.org"}, USER_UNKNOWN),
    ({"recipient": "nobody+x@example.org"}, USER_UNKNOWN),
    ({"recipient": "erin@example.net"}, "DUNNO"),                        # second domain
    ({"recipient": "nobody@example.net"}, USER_UNKNOWN),
    ({"recipient": "anything@catchall.test"}, "DUNNO"),                  # catch-all mailbox
    ({"recipient": "bob@alias.test"}, "DUNNO"),                          # domain alias
    ({"recipient": "nobody@alias.test"}, USER_UNKNOWN),                  # domain alias onto nobody: no backscatter
    ({"recipient": "fwd@example.org"}, "DUNNO"),                         # alias to a remote address
    ({"recipient": "someone@not-ours.test"}, "DUNNO"),                   # not our business
    ({"recipient": ""}, "DUNNO"),
    ({"recipient": "no-at-sign"}, USER_UNKNOWN),
    # quota at RCPT with SIZE= hint
    ({"recipient": "alice@example.org", "size": "0"}, "DUNNO"),
    ({"recipient": "alice@example.org", "size": "100000"}, "DUNNO"),
    ({"recipient": "alice@example.org", "size": "200000"}, FULL),        # 900000 + 200000 > 1 MiB
    ({"recipient": "carol@example.org"}, FULL),                           # message count limit
    ({"recipient": "dave@example.org"}, FULL),                            # over-quota list
    ({"recipient": "bob@example.org", "size": "5000"}, "DUNNO"),          # junk lines skipped, 10M domain quota
    ({"recipient": "erin@example.net", "size": "999999999"}, "DUNNO"),    # no quota anywhere
    # aliases: refused only when every target is full
    ({"recipient": "team@example.org"}, "DUNNO"),                         # alice ok, carol full
    ({"recipient": "full-team@example.org"}, FULL),                       # carol and dave full
    # END-OF-MESSAGE: real size, single recipient only
    ({"protocol_state": "END-OF-MESSAGE", "recipient": "alice@example.org", "size": "300000",
      "recipient_count": "1"}, FULL),
    ({"protocol_state": "END-OF-MESSAGE", "recipient": "", "size": "300000", "recipient_count": "2"}, "DUNNO"),
    # protected lists
    ({"recipient": "csall@example.org", "sender": "stranger@evil.test"}, RESTRICTED),
    ({"recipient": "csall@example.org", "sender": ""}, RESTRICTED),
    ({"recipient": "csall@example.org", "sender": "Bob@Example.org"}, "DUNNO"),         # member by sender
    ({"recipient": "csall@example.org", "sender": "bob+tag@example.org"}, "DUNNO"),
    ({"recipient": "csall@example.org", "sender": "x@evil.test", "sasl_username": "carol"}, "DUNNO"),  # authenticated
    ({"recipient": "csall@example.org", "sender": "boss@partner.test"}, "DUNNO"),       # listed sender
    ({"recipient": "csall@example.org", "sender": "any@friends.test"}, "DUNNO"),        # listed domain
    ({"recipient": "csall@example.org", "sender": "x@evil.test", "client_address": "198.51.100.9"}, "DUNNO"),
    ({"recipient": "csall+x@example.org", "sender": "stranger@evil.test"}, RESTRICTED),
    ({"recipient": "closed@example.org", "sender": "x@evil.test", "sasl_username": "alice"}, RESTRICTED),
    ({"recipient": "closed@example.org", "sender": "boss@partner.test"}, "DUNNO"),
])
def test_transcript(pipe, attrs, expected):
    assert ask(pipe, **attrs) == expected


def test_list_member_by_sasl_login(root):
    s = settings_for(root)
    (root / "lists").write_text("csall@example.org members\n")
    p = make_pipeline(s, RCPT_CHECKS)
    assert ask(p, recipient="csall@example.org", sender="x@evil.test", sasl_username="bob") == "DUNNO"
    assert ask(p, recipient="csall@example.org", sender="x@evil.test",
               sasl_username="bob@example.org") == "DUNNO"
    assert ask(p, recipient="csall@example.org", sender="x@evil.test", sasl_username="erin") == RESTRICTED


def test_temporary_quota_reply(root):
    p = make_pipeline(settings_for(root, quota_full_reply="temporary"), RCPT_CHECKS)
    assert ask(p, recipient="dave@example.org") == "452 4.2.2 Mailbox full, try again later"


def test_unknown_check_order_does_not_matter_for_unknown_user(root):
    p = make_pipeline(settings_for(root), {"RCPT": ["quota", "lists", "recipient"]})
    assert ask(p, recipient="nobody@example.org") == USER_UNKNOWN


class DownDirectory(Directory):
    def __init__(self, exc):
        self.exc = exc
        self.calls = 0

    def _fail(self, *a):
        self.calls += 1
        raise self.exc

    hosts_domain = resolve = list_policy = identities = _fail


@pytest.mark.parametrize("check", ["recipient", "lists", "quota"])
def test_directory_down_defers_never_rejects(check):
    backend = DownDirectory(DirectoryUnavailable("ldap://x: connection refused"))
    directory = CachingDirectory(backend, positive_ttl=60, negative_ttl=60, entries_max=10)
    p = make_pipeline(Settings(), {"RCPT": [check]}, directory=directory)
    assert ask(p, recipient="alice@example.org") == \
        "DEFER_IF_PERMIT 4.3.0 Recipient lookup temporarily unavailable"
    assert ask(p, recipient="alice@example.org").startswith("DEFER_IF_PERMIT")
    assert backend.calls == 2        # failures are not cached


class NeverExecutor(Executor):
    """A pool whose jobs never finish (a hung LDAP server)."""

    def submit(self, fn, *args, **kwargs):
        return defer.Deferred()


def test_directory_timeout_defers():
    clock = task.Clock()
    s = Settings().replace(directory_lookup_timeout=3)
    directory = CachingDirectory(DownDirectory(AssertionError("not called")), positive_ttl=60,
                                 negative_ttl=60, entries_max=10, clock=clock.seconds)
    p = make_pipeline(s, RCPT_CHECKS, directory=directory, clock=clock, executor=NeverExecutor())
    d = p.decide(request(recipient="alice@example.org"), p.new_session(), 0)
    assert not d.called
    clock.advance(2.9)
    assert not d.called
    clock.advance(0.2)
    assert outcome(d).action.render() == "DEFER_IF_PERMIT 4.3.0 Lookup timed out, try again later"


def test_cache_answers_without_thread_hop(root):
    clock = task.Clock()
    s = settings_for(root)
    p = make_pipeline(s, RCPT_CHECKS, clock=clock)
    assert ask(p, recipient="alice@example.org") == "DUNNO"
    # same pipeline, but now every blocking job would hang: the cache must answer
    p.ctx.executor = NeverExecutor()
    assert ask(p, recipient="alice@example.org") == "DUNNO"
    d = p.decide(request(recipient="nobody@example.org"), p.new_session(), 0)
    assert not d.called


def test_unreadable_maildirsize_is_not_full(root):
    d = root / "mail" / "example.org" / "alice" / "maildirsize"
    d.unlink()
    d.mkdir()                                    # reading it fails with IsADirectoryError
    p = make_pipeline(settings_for(root), RCPT_CHECKS)
    assert ask(p, recipient="alice@example.org", size="999999") == "DUNNO"


def test_quota_read_in_thread(root):
    p = make_pipeline(settings_for(root, quota_read_in_thread=True), RCPT_CHECKS)
    assert ask(p, recipient="alice@example.org", size="200000") == FULL


def test_usage_cache_rereads_a_changed_maildirsize(tmp_path):
    from policyd.checks.quota import UsageCache
    cache = UsageCache()
    (tmp_path / "maildirsize").write_text("1000S\n100 1\n")
    assert cache.read(str(tmp_path)).used_bytes == 100
    with open(tmp_path / "maildirsize", "a") as f:     # the LDA appends a delta line
        f.write("50 1\n")
    assert cache.read(str(tmp_path)).used_bytes == 150
    (tmp_path / "new").write_text("1000S\n7 1\n")       # recalculated: written aside, renamed over
    (tmp_path / "new").rename(tmp_path / "maildirsize")
    assert cache.read(str(tmp_path)).used_bytes == 7
    (tmp_path / "maildirsize").unlink()
    assert cache.read(str(tmp_path)) is None


def test_usage_cache_stats_at_most_once_a_second(tmp_path):
    from policyd.checks.quota import UsageCache
    cache = UsageCache()
    (tmp_path / "maildirsize").write_text("1000S\n100 1\n")
    assert cache.read(str(tmp_path), 10.0).used_bytes == 100
    with open(tmp_path / "maildirsize", "a") as f:
        f.write("50 1\n")
    assert cache.read(str(tmp_path), 10.5).used_bytes == 100     # within the second: not stat'ed
    assert cache.read(str(tmp_path), 11.0).used_bytes == 150     # a second later: seen
    assert cache.read(str(tmp_path), 5.0).used_bytes == 150      # clock stepped back: stat again


def test_a_maildir_that_cannot_be_recounted_keeps_the_files_word(root, monkeypatch):
    """alice's maildirsize says full for 200000 bytes and has two delta lines: with a Maildir
    beside it, it is recounted; a recount that fails leaves the file's answer, not an error."""
    from owlery.maildir import Maildir, MaildirError

    def refuse(self):
        raise MaildirError("unsafe Maildir: cur is a symlink")
    (root / "mail" / "example.org" / "alice" / "cur").mkdir()
    monkeypatch.setattr(Maildir, "count", refuse)
    p = make_pipeline(settings_for(root), RCPT_CHECKS)
    assert ask(p, recipient="alice@example.org", size="200000") == FULL
