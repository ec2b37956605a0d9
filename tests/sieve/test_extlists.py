"""extlists (RFC 6134): the :list match type, valid_ext_list and redirect :list in the engine
(sieve/extensions/extlists.py), the directory's membership query (Directory.list_member, files
backend and cache), and delivery's mapping of list names to directory groups
(sieve/delivery/extlists.py) through the DeliveryExecutor: members filed, other domains and unknown
lists no match, a directory that is down defers the delivery."""

from __future__ import annotations

import datetime as dt

import pytest

from owlery.directory import ListTooLarge, open_directory
from owlery.errors import DirectoryUnavailable
from owlery.settings import Settings
from owlery.state.memory_store import MemoryStore
from sieve.api import Envelope, MemoryHost, SieveCompileError, SieveTempFailure, compile_script, run
from sieve.delivery.executor import DeliveryExecutor
from sieve.delivery.users import MailUser
from sieve.errors import SieveRuntimeError
from sieve.extensions.extlists import normalise_name

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
ADDRBOOK = "urn:ietf:params:sieve:addrbook:default"
STAFF = "tag:example.org,2011:staff"
MSG = (b"From: Alice <ALICE@example.org>\nTo: carol@example.org, dave@example.org\n"
       b"X-List: bob@example.org\nSubject: hi\n\nhello\n")


class CountingHost(MemoryHost):
    def __init__(self, lists, fail=None):
        super().__init__()
        self.lists = {k: {v.lower() for v in vs} for k, vs in lists.items()}
        self.asked: list[tuple[str, str]] = []
        self.fail = fail

    def list_contains(self, list_name, value):
        self.asked.append((list_name, value))
        if self.fail is not None:
            raise self.fail
        return super().list_contains(list_name, value)


def go(src: str, host, message: bytes = MSG, settings: Settings | None = None):
    s = settings or Settings()
    script = compile_script(src.encode(), name="t", settings=s)
    return run(script, message, Envelope(mail_from="bob@remote.test", rcpt_to="carol@example.org"),
               host=host, settings=s, now=NOW)


def boxes(result):
    return [a.mailbox for a in result.actions if hasattr(a, "mailbox") and type(a).__name__ == "FileInto"]


def compile_error(src: str) -> str:
    with pytest.raises(SieveCompileError) as e:
        compile_script(src.encode(), name="t", settings=Settings())
    return " ".join(d.message for d in e.value.diagnostics)


# --- names ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, want", [
    (":addrbook:default", ADDRBOOK),
    ("URN:IETF:params:sieve:addrbook:default", ADDRBOOK),
    ("tag:Example.ORG,2011:staff", STAFF),
    ("tag:owlery,2026:list/staff@example.org", "tag:owlery,2026:list/staff@example.org"),
    ("http://example.org/list", None),
    ("mailto:staff@example.org", None),
    ("frop", None),
    ("tag:example.org:staff", None),          # no date
    ("urn:x", None),
    (":addrbook:default with space", None),
])
def test_list_names_are_normalised_or_refused(name, want):
    assert normalise_name(name) == want


# --- the :list match type --------------------------------------------------------------------

def test_address_and_header_list_match_members_only():
    host = CountingHost({ADDRBOOK: {"alice@example.org"}, STAFF: {"bob@example.org"}})
    r = go('require ["extlists", "fileinto"];\n'
           'if address :list "from" ":addrbook:default" { fileinto "Known"; }\n'
           'if address :list "to" ":addrbook:default" { fileinto "WrongTo"; }\n'
           'if header :list "x-list" "tag:example.org,2011:staff" { fileinto "Staff"; }\n'
           'if header :list "from" "tag:example.org,2011:staff" { fileinto "WrongStaff"; }\n', host)
    assert r.status == "ok"
    assert boxes(r) == ["Known", "Staff"]


def test_list_match_sets_match_value_zero_to_the_member_found():
    host = CountingHost({ADDRBOOK: {"dave@example.org"}})
    r = go('require ["extlists", "fileinto", "variables"];\n'
           'if address :list "to" ":addrbook:default" { fileinto "m-${0}"; }\n', host)
    assert boxes(r) == ["m-dave@example.org"]


def test_list_match_with_variables_in_the_key_and_string_test():
    host = CountingHost({STAFF: {"bob@example.org"}})
    r = go('require ["extlists", "fileinto", "variables"];\n'
           'set "l" "tag:example.org,2011:staff";\n'
           'if string :list "bob@example.org" "${l}" { fileinto "S"; }\n'
           'if string :list "eve@example.org" "${l}" { fileinto "E"; }\n', host)
    assert boxes(r) == ["S"]


def test_unknown_and_invalid_lists_match_nothing_and_warn():
    host = CountingHost({})
    r = go('require ["extlists", "fileinto"];\n'
           'if address :list "from" [":addrbook:default", "http://x/y"] { fileinto "X"; }\n', host)
    assert r.status == "ok" and boxes(r) == []
    assert any("not known" in e for e in r.errors) and any("not a valid list name" in e for e in r.errors)


def test_each_list_value_pair_is_asked_once_per_run():
    host = CountingHost({ADDRBOOK: set()})
    go('require ["extlists", "fileinto"];\n'
       'if address :list "to" ":addrbook:default" { fileinto "A"; }\n'
       'if address :list "to" ":addrbook:default" { fileinto "B"; }\n', host)
    assert sorted(host.asked) == sorted({(ADDRBOOK, ""), (ADDRBOOK, "carol@example.org"),
                                         (ADDRBOOK, "dave@example.org")})


def test_lookups_are_charged_to_the_cpu_budget():
    host = CountingHost({ADDRBOOK: set()})
    tos = ", ".join(f"u{i}@example.org" for i in range(200)).encode()
    r = go('require "extlists"; if address :list "to" ":addrbook:default" { keep; }', host,
           message=b"To: " + tos + b"\n\nx\n", settings=Settings().replace(sieve_max_cpu_steps=5000))
    assert r.status == "resource_limit"
    assert len(host.asked) < 200


def test_a_host_that_cannot_answer_makes_the_run_a_temporary_failure():
    host = CountingHost({ADDRBOOK: set()}, fail=SieveTempFailure("directory down"))
    r = go('require ["extlists", "fileinto"];\n'
           'if not address :list "from" ":addrbook:default" { fileinto "Unknown"; }\n', host)
    assert r.status == "tempfail" and boxes(r) == []


def test_a_list_too_large_to_decide_is_a_script_error():
    host = CountingHost({ADDRBOOK: set()}, fail=SieveRuntimeError("extlists: too large"))
    r = go('require "extlists"; if address :list "from" ":addrbook:default" { discard; }', host)
    assert r.status == "error"


def test_list_takes_no_comparator_and_no_second_match_type():
    assert "does not allow a comparator" in compile_error(
        'require "extlists"; if address :list :comparator "i;octet" "from" ":addrbook:default" { keep; }')
    compile_error('require "extlists"; if header :is :list "from" ":addrbook:default" { keep; }')
    compile_error('require "extlists"; if header :list :contains "from" ":addrbook:default" { keep; }')


def test_list_needs_the_extension():
    compile_error('if address :list "from" ":addrbook:default" { keep; }')
    compile_error('if valid_ext_list ":addrbook:default" { keep; }')


def test_redirect_list_is_refused_at_compile_time():
    compile_error('require "extlists"; redirect :list "tag:example.org,2011:staff";')


# --- valid_ext_list -------------------------------------------------------------------------

def test_valid_ext_list_is_true_only_when_every_name_is_a_known_list():
    host = CountingHost({ADDRBOOK: set(), STAFF: {"bob@example.org"}})
    r = go('require ["extlists", "fileinto"];\n'
           'if valid_ext_list [":addrbook:default", "tag:example.org,2011:staff"] { fileinto "Both"; }\n'
           'if valid_ext_list [":addrbook:default", ":addrbook:other"] { fileinto "Unknown"; }\n'
           'if valid_ext_list "frop:666" { fileinto "Invalid"; }\n', host)
    assert boxes(r) == ["Both"]


# --- the directory ---------------------------------------------------------------------------

def files_settings(tmp_path, aliases: str, **extra):
    (tmp_path / "mailboxes").write_text("alice@example.org x\nbob@example.org x\ncarol@example.org x\n"
                                        "dave@example.org x\nzed@other.test x\n")
    (tmp_path / "aliases").write_text(aliases)
    return Settings().replace(files_mailboxes=str(tmp_path / "mailboxes"), files_aliases=str(tmp_path / "aliases"),
                              files_maildir_base=str(tmp_path), **extra)


GROUPS = ("staff@example.org  bob@example.org, team@example.org, x@remote.test\n"
          "team@example.org   dave@example.org\n"
          "loop@example.org   loop2@example.org\n"
          "loop2@example.org  loop@example.org\n"
          "club@other.test    alice@example.org\n")


def test_files_directory_membership_walks_groups(tmp_path):
    d = open_directory(files_settings(tmp_path, GROUPS))
    assert d.list_member("staff@example.org", "Bob@Example.org") is True
    assert d.list_member("staff@example.org", "dave@example.org") is True       # through team
    assert d.list_member("staff@example.org", "x@remote.test") is True          # a remote target
    assert d.list_member("staff@example.org", "alice@example.org") is False
    assert d.list_member("staff@example.org", "") is False                       # exists
    assert d.list_member("loop@example.org", "alice@example.org") is False      # a loop ends
    assert d.list_member("alice@example.org", "alice@example.org") is None      # a mailbox
    assert d.list_member("nobody@example.org", "alice@example.org") is None
    assert d.list_member("not an address", "alice@example.org") is None


def test_files_directory_refuses_to_guess_past_the_target_cap(tmp_path):
    big = "big@example.org " + ", ".join(f"m{i}@example.org" for i in range(50)) + "\n"
    d = open_directory(files_settings(tmp_path, big, directory_alias_targets_max=10))
    assert d.list_member("big@example.org", "m3@example.org") is True           # found before the cap
    with pytest.raises(ListTooLarge):
        d.list_member("big@example.org", "m40@example.org")


# --- delivery ---------------------------------------------------------------------------------

SCRIPT = ('require ["extlists", "fileinto"];\n'
          'if address :list "from" "tag:owlery,2026:list/staff@example.org" { fileinto "Staff"; }\n'
          'elsif address :list "from" "tag:owlery,2026:list/club@other.test" { fileinto "Club"; }\n'
          'elsif valid_ext_list ":addrbook:default" { fileinto "Addrbook"; }\n')


class DownDirectory:
    def list_member(self, list_address, address):
        raise DirectoryUnavailable("ldap down")

    def close(self):
        pass


def deliver(tmp_path, sender: str, backend=None):
    s = files_settings(tmp_path, GROUPS)
    (tmp_path / "carol.sieve").write_text(SCRIPT)
    ex = DeliveryExecutor(s, state=MemoryStore(), program="test", directory=backend)
    user = MailUser("carol@example.org", str(tmp_path / "carol"), str(tmp_path / "carol.sieve"))
    msg = f"From: {sender}\nTo: carol@example.org\nSubject: s\n\nbody\n".encode()
    try:
        return ex.deliver(msg, sender, "carol@example.org", user), tmp_path / "carol"
    finally:
        ex.close()


def stored(maildir, folder=""):
    base = maildir / folder if folder else maildir
    return [p for sub in ("new", "cur") if (base / sub).exists() for p in (base / sub).iterdir()]


def test_delivery_files_a_group_member(tmp_path):
    outcome, maildir = deliver(tmp_path, "dave@example.org")
    assert outcome.ok
    assert len(stored(maildir, ".Staff")) == 1 and stored(maildir) == []


def test_delivery_ignores_other_domains_groups_and_address_books(tmp_path):
    outcome, maildir = deliver(tmp_path, "alice@example.org")       # member of club@other.test
    assert outcome.ok
    assert len(stored(maildir)) == 1
    assert stored(maildir, ".Club") == [] and stored(maildir, ".Addrbook") == []


def test_delivery_defers_when_the_directory_is_down(tmp_path):
    outcome, maildir = deliver(tmp_path, "dave@example.org", backend=DownDirectory())
    assert outcome.action == "tempfail" and outcome.exit_code == 75
    assert stored(maildir) == [] and stored(maildir, ".Staff") == []


# --- both directory backends (the contract data of tests/directory/test_contract.py; LDAP on slapd) --

from tests.directory.test_contract import backend_settings, directory  # noqa: E402,F401  (fixtures)


@pytest.mark.parametrize("list_address, who, member", [
    ("csall@example.test", "alice@example.test", True),
    ("csall@example.test", "Bob@Example.Test", True),
    ("csall@example.test", "erin@example.test", False),
    ("csall@example.test", "dave@example.test", False),        # disabled
    ("team@example.test", "erin@example.test", True),          # team -> staff -> erin
    ("team@example.test", "bob@example.test", False),
    ("team@example.test", "", False),                          # the list exists
    ("alice@example.test", "alice@example.test", None),        # a mailbox is no list
    ("nobody@example.test", "alice@example.test", None),
    ("x@not-ours.test", "alice@example.test", None),
])
def test_list_member_on_both_backends(directory, list_address, who, member):  # noqa: F811
    assert directory.list_member(list_address, who) is member
