"""Quarantine recipients match as the directory compares addresses: the domain always without case
(RFC 5321 2.4), the local part without case by default and exactly with
directory_local_part_case_sensitive = true (where Alice@ and alice@ are two mailboxes). Both store
backends (directory+SQLite and PostgreSQL through the harness `pg_dsn`), rows written as every
earlier version wrote them, the notify run, the preferences map and the web's per-user list,
release and links. Also: the digest's header decoder stays linear in its input's length.
"""

from __future__ import annotations

import time
import uuid

import pytest

from owlery.quarantine import (NOTICE_RECIPIENT, PENDING, RELEASED, ListFilter, QuarantineRecord,
                               QuarantineUnavailable, RecipientState, new_id, open_store)
from owlery.quarantine.notify import QuarantineNotifier
from owlery.quarantine.preferences import Preferences
from owlery.quarantine.tokens import sign
from owlery.settings import Settings
from tests.web.helpers import KEY, NOW, Client, FakePostfix, plain_message
from web.app import WebApp
from web.backend import WebBackend
from web.settings import WebConfig

MSG = b"From: src@sender.test\r\nSubject: Hello\r\n\r\nbody\r\n"


def make_record(*rcpts: str, subject: str = "Hello", created: float = NOW - 600) -> QuarantineRecord:
    return QuarantineRecord(mail_id=new_id(), secret_id=new_id(), created=created, reason="spam",
                            detail="score 12.5", sender="src@sender.test",
                            recipients=tuple(RecipientState(r) for r in rcpts), size=len(MSG), subject=subject,
                            header_from="Src <src@sender.test>", score=12.5, client_addr="192.0.2.7",
                            client_name="mx.sender.test")


def backend_settings(kind: str, tmp_path, pg_schema: str | None, dsn: str | None, **kw) -> Settings:
    values: dict = {"quarantine_db_timeout": "5s", **kw}
    if kind == "directory":
        values.update(quarantine_backend="directory", quarantine_directory=str(tmp_path / "q"))
    else:
        values.update(quarantine_backend="postgresql", quarantine_pg_dsn=dsn, quarantine_pg_schema=pg_schema)
    return Settings().replace(**values)


@pytest.fixture(params=["directory", "postgresql"])
def stores(request, tmp_path):
    """open(case_sensitive) -> a store over ONE set of tables, opened with that setting, as the
    milter, the CLI and the web open it (open_store)."""
    dsn = schema = None
    if request.param == "postgresql":
        dsn = request.getfixturevalue("pg_dsn")
        schema = "owlery_qcase_" + uuid.uuid4().hex[:12]
    opened = []

    def open_with(case_sensitive: bool):
        s = open_store(backend_settings(request.param, tmp_path, schema, dsn,
                                        directory_local_part_case_sensitive=case_sensitive))
        opened.append(s)
        return s

    yield open_with
    if request.param == "postgresql":
        try:
            opened[0].drop_schema()
        except QuarantineUnavailable as e:
            pytest.fail(f"PostgreSQL for the quarantine tests is not reachable at {dsn!r}: {e}")


def ids(records) -> set[str]:
    return {r.mail_id for r in records}


# --- the store: list filter and record.recipient ----------------------------------------------

def test_case_sensitive_local_part_keeps_mailboxes_apart(stores):
    store = stores(True)
    lower = make_record("alice@example.org", subject="for alice")
    upper = make_record("Alice@example.org", subject="for Alice")
    both_domain = make_record("Alice@EXAMPLE.org", subject="Alice, domain in capitals")
    for r in (lower, upper, both_domain):
        store.put(r, MSG)
    assert ids(store.list(ListFilter(recipient="Alice@example.org"), NOW)) == {upper.mail_id, both_domain.mail_id}
    # the domain never has case (RFC 5321 2.4)
    assert ids(store.list(ListFilter(recipient="Alice@Example.ORG"), NOW)) == {upper.mail_id, both_domain.mail_id}
    assert ids(store.list(ListFilter(recipient="alice@EXAMPLE.ORG"), NOW)) == {lower.mail_id}
    assert store.list(ListFilter(recipient="ALICE@example.org"), NOW) == []
    # the limit counts only the user's own mail (nobody else's rows crowd it out)
    assert ids(store.list(ListFilter(recipient="alice@example.org", limit=1), NOW)) == {lower.mail_id}
    got = store.get(lower.mail_id)
    assert got.recipient("Alice@example.org") is None and got.recipient("ALICE@example.org") is None
    assert got.recipient("alice@Example.ORG").address == "alice@example.org"
    got = store.get(both_domain.mail_id)
    assert got.recipient("Alice@example.org").address == "Alice@EXAMPLE.org"
    assert got.recipient("alice@example.org") is None
    assert got == both_domain                      # the setting is not part of the record's value
    # the default (the same rows): the local part has no case either, as before
    default = stores(False)
    assert ids(default.list(ListFilter(recipient="ALICE@example.ORG"), NOW)) == ids([lower, upper, both_domain])
    assert default.get(lower.mail_id).recipient("ALICE@EXAMPLE.ORG").address == "alice@example.org"
    assert default.get(both_domain.mail_id).recipient("alice@example.org").address == "Alice@EXAMPLE.org"


def test_rows_stored_before_the_setting_match_by_their_original_spelling(stores):
    """Rows written under the default (their lower-cased key as every version stored it) are found
    in case-sensitive mode by the spelling they were stored with, and by no other local part."""
    old = stores(False)
    kept = [make_record("Alice@Example.org", "bob@example.org"), make_record("alice@example.org")]
    for r in kept:
        old.put(r, MSG)
    old.mark_released(kept[0].mail_id, ["bob@example.org"], "root", NOW)
    store = stores(True)
    assert ids(store.list(ListFilter(recipient="Alice@example.ORG"), NOW)) == {kept[0].mail_id}
    assert ids(store.list(ListFilter(recipient="alice@example.org"), NOW)) == {kept[1].mail_id}
    assert ids(store.list(ListFilter(recipient="Bob@example.org"), NOW)) == set()
    assert ids(store.list(ListFilter(recipient="bob@example.org"), NOW)) == {kept[0].mail_id}
    assert store.get(kept[0].mail_id).recipient("bob@example.org").status == RELEASED
    # and switching back finds them all again
    assert ids(stores(False).list(ListFilter(recipient="ALICE@EXAMPLE.ORG"), NOW)) == ids(kept)


def test_an_8bit_local_part_matches_exactly(stores):
    """An 8-bit local part (surrogateescape, stored escaped by to_column) compares octet for octet."""
    store = stores(True)
    eight = make_record("J\udcfcrgen\\x@example.org")
    store.put(eight, MSG)
    assert ids(store.list(ListFilter(recipient="J\udcfcrgen\\x@EXAMPLE.org"), NOW)) == {eight.mail_id}
    assert store.list(ListFilter(recipient="j\udcfcrgen\\x@example.org"), NOW) == []
    assert store.get(eight.mail_id).recipient("j\udcfcrgen\\x@example.org") is None


def test_last_notice_is_per_mailbox(stores):
    store = stores(True)
    lower, upper = make_record("alice@example.org"), make_record("Alice@example.org")
    for r in (lower, upper):
        store.put(r, MSG)
    assert store.claim_notices(NOTICE_RECIPIENT, [(upper.mail_id, "Alice@example.org")], NOW) == \
        [(upper.mail_id, "Alice@example.org")]
    assert store.last_notice(NOTICE_RECIPIENT, "Alice@EXAMPLE.org") == NOW
    assert store.last_notice(NOTICE_RECIPIENT, "alice@example.org") is None
    assert stores(False).last_notice(NOTICE_RECIPIENT, "alice@example.org") == NOW


# --- notify: one digest per mailbox, preferences per mailbox ----------------------------------

class Outbox:
    def __init__(self):
        self.sent: list[tuple[list[str], bytes]] = []

    def __call__(self, sender, rcpts, data):
        self.sent.append((list(rcpts), data))


def test_notify_sends_each_mailbox_only_its_own_digest(tmp_path):
    prefs = tmp_path / "notify.map"
    prefs.write_text("alice@example.org none\n")
    s = backend_settings("directory", tmp_path, None, None, directory_local_part_case_sensitive=True,
                         quarantine_web_url="https://q.example.org", files_quarantine_notify=str(prefs))
    store = open_store(s)
    lower = make_record("alice@example.org", subject="lower-case alice's")
    upper = make_record("Alice@example.org", subject="capital Alice's")
    for r in (lower, upper):
        store.put(r, MSG)
    outbox = Outbox()
    out = QuarantineNotifier(s, store, outbox, prefs=Preferences(s), key=KEY, host="mx1",
                             log=lambda *a, **k: None).run(NOW)
    assert out.silenced == ["alice@example.org"]
    assert [(to, n) for _, to, n in out.sent] == [("Alice@example.org", 1)]
    [(rcpts, data)] = outbox.sent
    assert rcpts == ["Alice@example.org"]
    assert upper.mail_id.encode() in data and lower.mail_id.encode() not in data
    assert Preferences(s.replace(directory_local_part_case_sensitive=False)).mode("ALICE@example.org") == "none"


# --- the web: what a logged-in user lists, releases, and what a link reaches -------------------

class ExactAuth:
    """A directory whose local parts have case: the login is the address as spelled."""

    def authenticate(self, username, password):
        return username if password == "pw" else None


def web(tmp_path, case_sensitive: bool):
    s = backend_settings("directory", tmp_path, None, None, directory_local_part_case_sensitive=case_sensitive)
    postfix = FakePostfix()
    backend = WebBackend(s, authenticator=ExactAuth(), sender=postfix, token_key=KEY)
    app = WebApp(WebConfig(admins=frozenset()), backend, clock=lambda: NOW)
    return backend, app, postfix


def login(app, user):
    c = Client(app, "198.51.100.1")
    c.get("/login")
    assert c.post("/login", username=user, password="pw").status == 303
    return c


def test_web_user_sees_and_releases_only_their_own_mailbox(tmp_path):
    backend, app, postfix = web(tmp_path, True)
    theirs = make_record("alice@example.org", subject="lower-case alice's")
    mine = make_record("Alice@EXAMPLE.org", subject="capital Alice's")
    for r in (theirs, mine):
        backend.store.put(r, plain_message(r.subject))
    c = login(app, "Alice@example.org")
    page = c.get("/list").body.decode()
    assert mine.mail_id in page and theirs.mail_id not in page
    assert c.get(f"/m/{theirs.mail_id}").status == 404
    c.get("/list")
    c.post("/action", action="release", id=theirs.mail_id)
    assert postfix.sent == []
    assert backend.store.get(theirs.mail_id).recipient("alice@example.org").status == PENDING
    c.get("/list")
    c.post("/action", action="release", id=mine.mail_id)
    assert [to for _, to, _ in postfix.sent] == [("Alice@EXAMPLE.org",)]
    # a link signed for one spelling does not reach the other mailbox's message
    token = sign(KEY, "release", theirs.mail_id, "Alice@example.org", int(NOW + 3600))
    assert Client(app, "198.51.100.2").get(f"/r/{token}").status == 404
    # the default: the same store, any case reaches alice@'s message, as before
    backend, app, postfix = web(tmp_path, False)
    c = login(app, "ALICE@Example.org")
    assert theirs.mail_id in c.get("/list").body.decode()
    c.post("/action", action="release", id=theirs.mail_id)
    assert [to for _, to, _ in postfix.sent] == [("alice@example.org",)]


# --- the digest's header decoder: bounded time, the same text --------------------------------

def test_display_decodes_what_it_shows():
    """Values the milter stores (at most 500 characters) decode whole; a hostile longer one is
    decoded from its first DECODED_MAX characters, which is more than display ever shows."""
    from owlery.quarantine.digest import DECODED_MAX, display
    assert display("=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?iso-8859-1?b?S/Zsbg==?=") == "Grüße aus Köln"
    words = "=?utf-8?q?caf=C3=A9?= " * (500 // 22)
    assert display(words, limit=1000) == "café" * (500 // 22)     # (RFC 2047 6.2: no space between words)
    assert display("=?utf-8?q?=C3=A9?=" * DECODED_MAX)[:3] == "ééé"


def _cpu(fn, arg) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        fn(arg)
        best = min(best, time.process_time() - start)
    return best


@pytest.mark.parametrize("unit", ["=?utf-8?q?a?=", "=?utf-8?q?a?= ", "=?utf-8?b?", "=?x?q?x"])
def test_display_is_linear_on_hostile_values(unit):
    """Adjacent encoded words, white space between them, "=?" fragments never closed: 200,000
    characters cost no more than about ten times 20,000 (this process's CPU time, best of three);
    before the cut the cost grew with the square (50x here, and minutes for "=?x?q?x" repeated)."""
    from owlery.quarantine.digest import display
    big = unit * (200_000 // len(unit))
    small = big[:len(big) // 10]
    assert len(big) >= 190_000
    t_small, t_big = _cpu(display, small), _cpu(display, big)
    assert t_big <= 20 * max(t_small, 0.001), (unit, t_small, t_big)


def test_two_spellings_of_one_address_quarantine(stores):
    """A message to Alice@ and alice@ (RCPT TO twice, as a hostile sender may write it) is held
    once for that address; before, the second row broke the recipients key and the store's
    QuarantineUnavailable deferred the message at every retry."""
    store = stores(False)
    record = make_record("Alice@example.org", "alice@EXAMPLE.org", "bob@example.org")
    store.put(record, MSG)
    held = store.get(record.mail_id)
    assert [r.address for r in held.recipients] == ["Alice@example.org", "bob@example.org"]
    assert ids(store.list(ListFilter(recipient="alice@example.org"), NOW)) == {record.mail_id}
