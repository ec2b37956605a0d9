"""Aliases and groups that reach delivery unexpanded: every member once, or refused; never one member.

The LMTP dialogue is the real lmtpd adapter (StringTransport, the thread pool run inline) with the
real UserResolver on a files directory or the harness slapd, the real DeliveryExecutor and a SQLite state
store; forwards go to a recording submitter. Then the LDA as the MTA runs it (`owlery lda`,
`owlery-lda`, and `owlery-lda` handing the message to a running `owlery lmtpd`).
Proves: one reply per RCPT for a group of N; nested aliases reach a member once; each member's own
Sieve script, quota and Maildir; an address with its own mailbox is that mailbox alone (what
Postfix's expansion hands over); a member over quota bounces the group naming that member while
the others keep their copy; a temporary failure of one member is retried without a second copy for
the others (nor for a forward); a state store that cannot be read defers the group before anything
is stored; `delivery_alias_expansion = "refuse"` answers 550 5.1.1 / exit 67; remote targets are
forwarded with the redirect loop header; an LDAP groupOfNames reaches all its active members.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock, StringTransport

from owlery.settings import Settings
from sieve.delivery.executor import DeliveryExecutor
from sieve.delivery.lmtpd import LMTPApplication
from sieve.delivery.submission import SubmissionError
from sieve.delivery.users import Group, MailUser, UserResolver

ROOT = Path(__file__).resolve().parents[2]
OWLERY = str(ROOT / ".venv" / "bin" / "owlery")
LDA_COMMANDS = {"owlery lda": [OWLERY, "lda"], "owlery-lda": [OWLERY + "-lda"]}

MAILBOXES = """\
alice@example.org
bob@example.org
carol@example.org
dave@example.org
self@example.org
"""
ALIASES = """\
team@example.org    alice@example.org, bob@example.org, carol@example.org
devs@example.org    bob@example.org, carol@example.org
# alice directly and through team; bob and carol through team and through devs
all@example.org     team@example.org, devs@example.org, alice@example.org
# an alias naming itself: self has a mailbox of its own
self@example.org    self@example.org, alice@example.org, bob@example.org
alt@example.org     alice@example.org
ext@example.org     alice@example.org, friend@remote.test
full@example.org    alice@example.org, bob@example.org
"""


def site_settings(tmp_path: Path, **over) -> Settings:
    (tmp_path / "mailboxes").write_text(MAILBOXES)
    (tmp_path / "aliases").write_text(ALIASES)
    if not (tmp_path / "quotas").exists():
        (tmp_path / "quotas").write_text("")
    values = dict(files_mailboxes=str(tmp_path / "mailboxes"), files_aliases=str(tmp_path / "aliases"),
                  files_quotas=str(tmp_path / "quotas"), files_check_interval=0,
                  maildir_path_template=f"{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir",
                  delivery_sieve_script_template=f"{tmp_path}/mail/{{domain}}/{{localpart}}/sieve/active.sieve",
                  state_sqlite_path=str(tmp_path / "state.sqlite"), maildir_fsync="never")
    values.update(over)
    return Settings().replace(**values)


class Submitter:
    """Records what would go to the MTA; `fail` raises instead."""

    def __init__(self):
        self.sent: list[tuple[str, list[str], bytes]] = []
        self.fail: Exception | None = None

    def send(self, env_from, rcpts, message):
        if self.fail is not None:
            raise self.fail
        self.sent.append((env_from, list(rcpts), message))


class Lmtpd:
    """The lmtpd adapter over a StringTransport, lookups and deliveries run inline."""

    def __init__(self, settings: Settings, submitter: Submitter | None = None):
        self.submitter = submitter or Submitter()
        executor = DeliveryExecutor(settings, submitter=self.submitter, program="lmtpd")
        self.app = LMTPApplication(settings, MemoryReactorClock(), executor=executor, threadpool=object())
        self.app.in_thread = lambda f, *a, **kw: defer.maybeDeferred(f, *a, **kw)

    def session(self, rcpts: list[str], message: bytes, sender: str = "someone@sender.test") -> list[str]:
        """One transaction; the RCPT replies then the DATA replies (LHLO/MAIL/354 left out)."""
        proto = self.app.factory.buildProtocol(None)
        tr = StringTransport()
        proto.makeConnection(tr)
        commands = [b"LHLO mx.example.org", f"MAIL FROM:<{sender}>".encode()]
        commands += [f"RCPT TO:<{r}>".encode() for r in rcpts] + [b"DATA"]
        proto.dataReceived(b"".join(c + b"\r\n" for c in commands))
        proto.dataReceived(message.replace(b"\n", b"\r\n") + b".\r\nQUIT\r\n")
        lines = tr.value().decode().split("\r\n")
        return [ln for ln in lines if ln[:3] not in ("220", "221", "354") and not ln.startswith("250-")
                and ln not in ("", "250 2.1.0 Ok")][1:]       # [0] is the LHLO's last line


def msg(tag: str, size: int = 0) -> bytes:
    return (f"From: someone@sender.test\nTo: list\nSubject: {tag}\nMessage-ID: <{tag}@sender.test>\n\n"
            f"hello {tag}\n").encode() + b"x" * size + (b"\n" if size else b"")


def stored(tmp_path: Path, user: str, folder: str = "") -> list[bytes]:
    base = tmp_path / "mail/example.org" / user / "Maildir" / folder
    return [p.read_bytes() for sub in ("new", "cur") if (base / sub).is_dir() for p in sorted((base / sub).iterdir())]


def count(tmp_path: Path, user: str, tag: str, folder: str = "") -> int:
    return sum(1 for data in stored(tmp_path, user, folder) if f"Subject: {tag}\n".encode() in data)


# --- what an address expands to ------------------------------------------------------------------

@pytest.mark.parametrize("address,kind,members", [
    ("alice@example.org", "user", ["alice@example.org"]),
    ("alice+x@example.org", "user", ["alice@example.org"]),
    ("alt@example.org", "user", ["alice@example.org"]),                  # one target: that mailbox
    ("self@example.org", "user", ["self@example.org"]),                  # its own mailbox alone
    ("team@example.org", "group", ["alice@example.org", "bob@example.org", "carol@example.org"]),
    ("all@example.org", "group", ["alice@example.org", "bob@example.org", "carol@example.org"]),
    ("ext@example.org", "group", ["alice@example.org"]),
    ("nobody@example.org", None, []),
])
def test_expand(tmp_path, address, kind, members):
    from owlery.directory import open_directory
    s = site_settings(tmp_path)
    found = UserResolver(s, open_directory(s)).expand(address)
    if kind is None:
        assert found is None
    elif kind == "user":
        assert isinstance(found, MailUser) and [found.address] == members
    else:
        assert isinstance(found, Group) and sorted(m.address for m in found.members) == members
        assert found.address == address
    if address == "ext@example.org":
        assert found.remote == ("friend@remote.test",)


# --- lmtpd --------------------------------------------------------------------------------------

def test_group_reaches_every_member_once_each_through_its_own_script(tmp_path):
    script = tmp_path / "mail/example.org/carol/sieve/active.sieve"
    script.parent.mkdir(parents=True)
    script.write_text('require ["fileinto", "envelope"];\n'
                      'if envelope :is "to" "carol@example.org" { fileinto "Team"; }\n')
    server = Lmtpd(site_settings(tmp_path))
    replies = server.session(["all@example.org", "dave@example.org"], msg("g1"))
    # one RCPT reply each, then one DATA reply per RCPT, in RCPT order
    assert replies[0].startswith("250 2.1.5 <all@example.org>") and replies[1].startswith("250 2.1.5"), replies
    assert replies[2] == "250 2.0.0 <all@example.org> Saved for 3 targets", replies
    assert replies[3].startswith("250 2.0.0 <dave@example.org>") and len(replies) == 4, replies
    assert count(tmp_path, "alice", "g1") == 1                      # before: alice only
    assert count(tmp_path, "bob", "g1") == 1                        # reached twice, stored once
    assert count(tmp_path, "carol", "g1", ".Team") == 1             # carol's own script ran for carol
    assert count(tmp_path, "carol", "g1") == 0
    assert count(tmp_path, "dave", "g1") == 1
    [bob] = stored(tmp_path, "bob")
    assert bob.startswith(b"Return-Path: <someone@sender.test>\nDelivered-To: bob@example.org\n")
    assert b"\tfor <all@example.org>; " in bob                     # lmtpd's Received names the RCPT


def test_an_address_with_its_own_mailbox_is_that_mailbox_alone(tmp_path):
    """Postfix expands self -> self, alice, bob and hands lmtpd all three: one copy each.
    Expanding self@ again here would give alice and bob a second copy."""
    server = Lmtpd(site_settings(tmp_path))
    replies = server.session(["self@example.org", "alice@example.org", "bob@example.org"], msg("s1"))
    assert [r[:3] for r in replies] == ["250"] * 6, replies
    assert [count(tmp_path, u, "s1") for u in ("self", "alice", "bob")] == [1, 1, 1]


def test_member_over_quota_bounces_the_group_naming_it_while_the_others_keep_their_copy(tmp_path):
    (tmp_path / "quotas").write_text("bob@example.org 1k\n")
    server = Lmtpd(site_settings(tmp_path))
    replies = server.session(["full@example.org"], msg("q1", 2000))
    assert replies[-1] == ("552 5.2.2 <full@example.org> delivered to 1 of 2 targets; refused by "
                           "<bob@example.org> (552 5.2.2 Mailbox full)"), replies
    assert count(tmp_path, "alice", "q1") == 1 and count(tmp_path, "bob", "q1") == 0


def test_member_over_quota_with_quota_tempfail_is_retried_without_a_second_copy(tmp_path):
    (tmp_path / "quotas").write_text("bob@example.org 1k\n")
    server = Lmtpd(site_settings(tmp_path, delivery_quota_full_tempfail=True))
    replies = server.session(["full@example.org"], msg("q2", 2000))
    assert replies[-1].startswith("452 4.2.2 <full@example.org> delivered to 1 of 2 targets; will retry "
                                  "<bob@example.org>"), replies
    (tmp_path / "quotas").write_text("bob@example.org 10M\n")     # a bigger quota, lmtpd restarted:
    server = Lmtpd(site_settings(tmp_path, delivery_quota_full_tempfail=True))     # the MTA retries
    assert server.session(["full@example.org"], msg("q2", 2000))[-1].startswith("250 2.0.0"), replies
    assert count(tmp_path, "alice", "q2") == 1 and count(tmp_path, "bob", "q2") == 1


def test_temporary_failure_of_one_member_is_retried_without_duplicates_for_the_others(tmp_path):
    blocker = tmp_path / "mail/example.org/carol"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where carol's directory should be")
    server = Lmtpd(site_settings(tmp_path))
    replies = server.session(["team@example.org"], msg("t1"))
    assert replies[-1].startswith("451 4.3.0 <team@example.org> delivered to 2 of 3 targets; will retry "
                                  "<carol@example.org>"), replies
    assert [count(tmp_path, u, "t1") for u in ("alice", "bob")] == [1, 1]
    blocker.unlink()                                               # fixed; Postfix retries the same message
    replies = server.session(["team@example.org"], msg("t1"))
    assert replies[-1] == "250 2.0.0 <team@example.org> Saved for 3 targets", replies
    assert [count(tmp_path, u, "t1") for u in ("alice", "bob", "carol")] == [1, 1, 1]
    # the record is per message: the next message reaches everyone again
    server.session(["team@example.org"], msg("t2"))
    assert [count(tmp_path, u, "t2") for u in ("alice", "bob", "carol")] == [1, 1, 1]


def test_group_is_deferred_before_anything_is_stored_when_the_state_store_cannot_be_read(tmp_path):
    (tmp_path / "not-a-dir").write_text("")
    server = Lmtpd(site_settings(tmp_path, state_sqlite_path=str(tmp_path / "not-a-dir/state.sqlite")))
    replies = server.session(["team@example.org", "dave@example.org"], msg("d1"))
    assert replies[-2].startswith("451 4.3.0 <team@example.org>"), replies
    assert replies[-1].startswith("250 2.0.0 <dave@example.org>"), replies     # one mailbox needs no record
    assert [count(tmp_path, u, "d1") for u in ("alice", "bob", "carol", "dave")] == [0, 0, 0, 1]


def test_refuse_setting_refuses_groups_at_rcpt_and_delivers_single_mailboxes(tmp_path):
    server = Lmtpd(site_settings(tmp_path, delivery_alias_expansion="refuse"))
    replies = server.session(["team@example.org", "alt@example.org", "self@example.org"], msg("r1"))
    assert replies[0].startswith("550 5.1.1 <team@example.org> is an alias or group"), replies
    assert "virtual_alias_maps" in replies[0]
    assert [r[:3] for r in replies[1:]] == ["250"] * 4, replies
    assert [count(tmp_path, u, "r1") for u in ("alice", "self", "bob", "carol")] == [1, 1, 0, 0]


def test_remote_targets_are_forwarded_once_across_retries(tmp_path):
    server = Lmtpd(site_settings(tmp_path))
    server.submitter.fail = SubmissionError("MTA down")
    replies = server.session(["ext@example.org"], msg("f1"))
    assert replies[-1].startswith("451 4.3.0 <ext@example.org> delivered to 1 of 2 targets; will retry "
                                  "<friend@remote.test>"), replies
    server.submitter.fail = None
    assert server.session(["ext@example.org"], msg("f1"))[-1] == "250 2.0.0 <ext@example.org> Saved for 2 targets"
    assert server.session(["ext@example.org"], msg("f1"))[-1].startswith("250 2.0.0")   # a stray retry
    assert count(tmp_path, "alice", "f1") == 1
    [(env_from, rcpts, data)] = server.submitter.sent
    assert env_from == "someone@sender.test" and rcpts == ["friend@remote.test"]
    assert data.startswith(b"X-Sieve-Redirected-From: ext@example.org\n") and b"Subject: f1\n" in data
    # the forwarded copy coming back to the alias is a loop: refused, not sent round again
    replies = server.session(["ext@example.org"], data.replace(b"Subject: f1", b"Subject: f1-back"))
    assert replies[-1].startswith("550 5.4.6 <ext@example.org> delivered to 1 of 2 targets"), replies
    assert len(server.submitter.sent) == 1


def test_ldap_group_reaches_all_its_active_members(tmp_path, slapd):
    s = Settings().replace(directory_backend="ldap", ldap_servers=[slapd.url], ldap_base_dn=slapd.base_dn,
                           maildir_path_template=f"{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir",
                           delivery_sieve_script_template=f"{tmp_path}/sieve/{{localpart}}.sieve",
                           state_sqlite_path=str(tmp_path / "state.sqlite"), maildir_fsync="never")
    server = Lmtpd(s)
    # csall: groupOfNames with alice, bob and dave (disabled); bob forwards to bob@elsewhere.test
    replies = server.session(["csall@example.test"], msg("l1"))
    assert replies[-1] == "250 2.0.0 <csall@example.test> Saved for 3 targets", replies
    for user in ("alice", "bob"):
        [data] = [p.read_bytes() for p in (tmp_path / f"mail/example.test/{user}/Maildir/new").iterdir()]
        assert f"Delivered-To: {user}@example.test\n".encode() in data
    assert not (tmp_path / "mail/example.test/dave").exists()
    assert [rcpts for _, rcpts, _ in server.submitter.sent] == [["bob@elsewhere.test"]]


# --- the LDA -------------------------------------------------------------------------------------

def lda_config(tmp_path: Path, extra: str = "") -> str:
    s = site_settings(tmp_path)       # writes the map files
    conf = tmp_path / "owlery.toml"
    conf.write_text(f"""
files_mailboxes = "{s.files_mailboxes}"
files_aliases = "{s.files_aliases}"
files_quotas = "{s.files_quotas}"
files_check_interval = 0
maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"
delivery_sieve_script_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/sieve/active.sieve"
state_sqlite_path = "{tmp_path}/state.sqlite"
maildir_fsync = "never"
{extra}
""")
    return str(conf)


@pytest.fixture(params=list(LDA_COMMANDS))
def lda(request):
    def run(conf, *args, message):
        return subprocess.run([*LDA_COMMANDS[request.param], "-c", conf, *args], input=message,
                              capture_output=True, timeout=60)
    return run


def test_lda_delivers_a_group_to_every_member_and_retries_without_duplicates(tmp_path, lda):
    conf = lda_config(tmp_path)
    blocker = tmp_path / "mail/example.org/carol"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("")
    r = lda(conf, "-f", "someone@sender.test", "-d", "all@example.org", message=msg("a1"))
    assert r.returncode == 75 and r.stderr.startswith(b"4.3.0 <all@example.org> delivered to 2 of 3"), r.stderr
    blocker.unlink()
    r = lda(conf, "-f", "someone@sender.test", "-d", "all@example.org", message=msg("a1"))
    assert r.returncode == 0, r.stderr
    assert [count(tmp_path, u, "a1") for u in ("alice", "bob", "carol")] == [1, 1, 1]


def test_lda_group_member_over_quota_exits_77_naming_it(tmp_path, lda):
    (tmp_path / "quotas").write_text("bob@example.org 1k\n")
    r = lda(lda_config(tmp_path), "-f", "someone@sender.test", "-d", "full@example.org", message=msg("a2", 2000))
    assert r.returncode == 77, r.stderr
    assert r.stderr.startswith(b"5.2.2 <full@example.org> delivered to 1 of 2 targets; refused by <bob@example.org>")
    assert count(tmp_path, "alice", "a2") == 1


def test_lda_refuse_setting_exits_67(tmp_path, lda):
    conf = lda_config(tmp_path, 'delivery_alias_expansion = "refuse"')
    r = lda(conf, "-f", "someone@sender.test", "-d", "team@example.org", message=msg("a3"))
    assert r.returncode == 67 and r.stderr.startswith(b"5.1.1 <team@example.org> is an alias or group"), r.stderr
    assert lda(conf, "-f", "someone@sender.test", "-d", "alt@example.org", message=msg("a3")).returncode == 0
    assert [count(tmp_path, u, "a3") for u in ("alice", "bob", "carol")] == [1, 0, 0]


def test_lda_through_lmtpd_delivers_a_group_with_one_exit_status(tmp_path):
    """`owlery-lda` handing the message to a running `owlery lmtpd` (lda_lmtp_endpoint): the group
    is delivered by the daemon, its one LMTP reply is the LDA's exit status."""
    from tests.delivery.daemon import Lmtpd as LmtpdProcess
    conf = lda_config(tmp_path)
    daemon = LmtpdProcess(tmp_path, Path(conf).read_text()).start()
    try:
        conf = lda_config(tmp_path, f'lda_lmtp_endpoint = "tcp:127.0.0.1:{daemon.port}"')
        (tmp_path / "quotas").write_text("bob@example.org 1k\n")
        run = [OWLERY + "-lda", "-c", conf, "-f", "someone@sender.test", "-d"]
        r = subprocess.run(run + ["team@example.org"], input=msg("a4"), capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(run + ["full@example.org"], input=msg("a5", 2000), capture_output=True, timeout=60)
        assert r.returncode == 77 and r.stderr.startswith(b"5.2.2 <full@example.org> delivered to 1 of 2"), r.stderr
        daemon.wait_log("to=<team@example.org>")
    finally:
        daemon.stop()
    assert [count(tmp_path, u, "a4") for u in ("alice", "bob", "carol")] == [1, 1, 1]
    assert [count(tmp_path, u, "a5") for u in ("alice", "bob")] == [1, 0]
