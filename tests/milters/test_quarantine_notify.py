"""Quarantine notices: digest building (encoding, hostile header text, HTML escaping), the notices
table of both store backends, and notify runs (preferences, schedule, admin rate limit, retries)."""

from __future__ import annotations

import email
import email.policy
import time
import uuid

import pytest

from owlery.quarantine import (ADMIN, NOTICE_ADMIN, NOTICE_RECIPIENT, QuarantineRecord, QuarantineUnavailable,
                               RecipientState, new_id)
from owlery.quarantine.digest import Item, build_admin_notice, build_digest, display
from owlery.quarantine.directory import DirectoryStore
from owlery.quarantine.notify import QuarantineNotifier, digest_due
from owlery.quarantine.postgres import PostgresStore
from owlery.quarantine.preferences import Preferences
from owlery.quarantine.release import ReleaseError
from owlery.quarantine.tokens import verify
from owlery.settings import Settings

NOW = 1_800_000_000.0
KEY = b"k" * 32

HOSTILE_SUBJECTS = [
    "hello\r\nBcc: victim@example.org",
    "=?utf-8?q?hi=0D=0ABcc:_victim@example.org?=",
    "=?utf-8?b?" + "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==" + "?=",       # <script>alert(1)</script>
    "<script>alert(1)</script> & \"quotes\" 'too'",
    "=?bogus-charset?q?x?= =?utf-8?q?broken=ZZ?=",
    "\u202eevil\u2066 \x1b[31mred\x00",
    "x" * 5000,
]


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def item(subject="Hello", **kw) -> Item:
    values = dict(mail_id="abcdefghijkmnpq", created=NOW, sender="src@sender.test",
                  header_from="Src <src@sender.test>", subject=subject, reason="spam", detail="score 12.5",
                  score=12.5, release_url="https://q.example.org/r/TOKEN1", show_url="https://q.example.org/s/TOKEN2")
    values.update(kw)
    return Item(**values)


# --- display -------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, shown", [
    ("=?utf-8?q?Gr=C3=BC=C3=9Fe?=", "Grüße"),
    ("=?iso-8859-1?b?R3L832U=?= und mehr", "Grüße und mehr"),
    ("plain\r\n folded", "plain folded"),
    ("=?utf-8?q?a=0D=0Ab?=", "a b"),
    ("\u202eabc\u2069", "abc"),
    ("", ""),
])
def test_display_decodes_and_neutralises(raw, shown):
    assert display(raw) == shown


@pytest.mark.parametrize("raw", HOSTILE_SUBJECTS)
def test_display_never_returns_controls_and_is_bounded(raw):
    text = display(raw)
    assert not any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f or c in "\u2028\u2029\u202e\u2066" for c in text)
    assert len(text) <= 160


# --- digest messages ---------------------------------------------------------------------------

def test_digest_is_multipart_alternative_with_encoded_parts_and_auto_submitted():
    data = build_digest("alice@example.org", [item("=?utf-8?q?Gr=C3=BC=C3=9Fe_=E2=98=83?=")],
                        from_addr="postmaster@example.org", now=NOW, domain="example.org")
    assert data.isascii(), "7bit on the wire: RFC 2047 headers, quoted-printable bodies"
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")
    msg = parse(data)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["To"] == "alice@example.org" and msg["From"] == "postmaster@example.org"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for p in parts:
        assert p["Content-Transfer-Encoding"] == "quoted-printable"
        assert p.get_content_charset() == "utf-8"
    text, body = parts[0].get_content(), parts[1].get_content()
    assert "Grüße ☃" in text and "Grüße ☃" in body
    assert "https://q.example.org/r/TOKEN1" in text and 'href="https://q.example.org/s/TOKEN2"' in body
    assert "Reason: spam: score 12.5" in text and "Score: 12.5" in text


@pytest.mark.parametrize("subject", HOSTILE_SUBJECTS)
def test_hostile_subjects_stay_in_the_body_escaped(subject):
    data = build_digest("alice@example.org", [item(subject, header_from=subject, detail=subject)],
                        from_addr="postmaster@example.org", now=NOW, domain="example.org")
    msg = parse(data)
    assert msg["Bcc"] is None and msg.defects == []
    assert set(msg.keys()) == {"From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
                               "X-Auto-Response-Suppress", "X-Owlery-Notice", "MIME-Version", "Content-Type"}
    text, body = (p.get_content() for p in msg.iter_parts())
    assert "<script>" not in body and "\x1b" not in text + body and "\r\nBcc" not in text
    if "<script>" in subject or "PHNjcmlwdD5" in subject:
        assert "&lt;script&gt;" in body
    for line in text.splitlines() + body.splitlines():
        assert not line.lower().startswith("bcc:")


def test_html_escapes_quotes_in_links():
    body = parse(build_digest("a@example.org", [item(release_url='https://x/r/"><script>')],
                              from_addr="p@example.org", now=NOW, domain="example.org")).get_body("html")
    assert 'href="https://x/r/&quot;&gt;&lt;script&gt;"' in body.get_content()


def test_admin_notice_subject_with_crlf_in_the_virus_name_is_one_header():
    data = build_admin_notice("admin@example.org", item(reason="virus", detail="Eicar\r\nBcc: x@evil.test",
                                                        release_url=None, show_url=None),
                              from_addr="postmaster@example.org", now=NOW, domain="example.org", host="mx1")
    msg = parse(data)
    assert msg["Bcc"] is None
    assert msg["Subject"] == "Quarantined (virus): Eicar Bcc: x@evil.test"
    assert "owlery quarantine show abcdefghijkmnpq" in msg.get_body("plain").get_content()


def test_digest_to_a_non_ascii_address_uses_smtputf8():
    msg = parse(build_digest("jösé@example.org", [item()], from_addr="postmaster@example.org", now=NOW,
                             domain="example.org"))
    assert msg["To"] == "jösé@example.org"


def test_digest_due_follows_the_local_hour():
    lt = time.localtime(NOW)
    seven = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 7, 0, 0, 0, 0, -1))
    assert digest_due(None, seven + 60, 7)
    assert not digest_due(seven + 10, seven + 3600, 7)           # told after today's 07:00
    assert digest_due(seven - 10, seven + 3600, 7)               # told before it
    assert not digest_due(seven - 7200, seven - 3600, 7)         # 06:00: yesterday's 07:00 counts
    assert digest_due(seven - 86400 - 10, seven - 3600, 7)


# --- the store's notices table, both backends ---------------------------------------------

def record(reason="spam", rcpts=("alice@example.org",), created=NOW - 600, subject="Hello") -> QuarantineRecord:
    return QuarantineRecord(mail_id=new_id(), secret_id=new_id(), created=created, reason=reason,
                            detail="score 12.5" if reason == "spam" else "Eicar-Test-Signature",
                            sender="src@sender.test", recipients=tuple(RecipientState(r) for r in rcpts),
                            size=10, subject=subject, header_from="Src <src@sender.test>", score=12.5,
                            client_addr="192.0.2.7", client_name="mx.sender.test")


@pytest.fixture(params=["directory", "postgresql"])
def store(request, tmp_path):
    if request.param == "directory":
        yield DirectoryStore(str(tmp_path / "q"), timeout=5)
        return
    dsn = request.getfixturevalue("pg_dsn")
    s = PostgresStore(dsn, schema="owlery_qnotify_" + uuid.uuid4().hex[:12], timeout=5)
    try:
        s._setup()
    except QuarantineUnavailable as e:
        pytest.fail(f"PostgreSQL not reachable at {dsn!r}: {e}")
    yield s
    s.drop_schema()


def test_notices_table_contract(store):
    a = record(rcpts=("Alice@Example.org", "bob@example.org"))
    v = record(reason="virus", rcpts=("bob@example.org",), created=NOW - 300)
    old = record(created=NOW - 30 * 86400)
    for r in (a, v, old):
        store.put(r, b"Subject: x\r\n\r\nbody\r\n")
    pairs = store.unnotified(NOTICE_RECIPIENT, NOW - 7 * 86400, skip_reasons=["virus"])
    assert sorted((r.mail_id, addr) for r, addr in pairs) == sorted(
        [(a.mail_id, "Alice@Example.org"), (a.mail_id, "bob@example.org")])
    assert [r for r, _ in pairs][0] == a
    assert store.claim_notices(NOTICE_RECIPIENT, [(a.mail_id, "alice@example.org")], NOW) == \
        [(a.mail_id, "alice@example.org")]
    assert store.claim_notices(NOTICE_RECIPIENT, [(a.mail_id, "ALICE@example.org")], NOW) == []
    assert store.claim_notices(NOTICE_RECIPIENT, [(new_id(), "x@example.org")], NOW) == []   # no such message
    left = {(r.mail_id, addr) for r, addr in store.unnotified(NOTICE_RECIPIENT, 0, skip_reasons=["virus"])}
    assert left == {(a.mail_id, "bob@example.org"), (old.mail_id, "alice@example.org")}
    assert store.last_notice(NOTICE_RECIPIENT, "ALICE@example.org") == NOW
    assert store.last_notice(NOTICE_RECIPIENT, "bob@example.org") is None
    store.unclaim_notices(NOTICE_RECIPIENT, [(a.mail_id, "alice@example.org")])
    assert store.last_notice(NOTICE_RECIPIENT, "alice@example.org") is None
    # admin notices: one per message, whatever its recipients
    admin = store.unnotified(NOTICE_ADMIN, NOW - 86400, reasons=["virus", "banned"])
    assert [(r.mail_id, addr) for r, addr in admin] == [(v.mail_id, ADMIN)]
    assert store.claim_notices(NOTICE_ADMIN, [(v.mail_id, ADMIN)], NOW) == [(v.mail_id, ADMIN)]
    assert store.notices_since(NOTICE_ADMIN, NOW - 3600) == 1 and store.notices_since(NOTICE_ADMIN, NOW + 1) == 0
    # released recipients and deleted messages drop out; deleting removes the notices too
    store.mark_released(a.mail_id, ["bob@example.org"], "root", NOW)
    store.delete(v.mail_id)
    assert store.notices_since(NOTICE_ADMIN, 0) == 0
    assert {(r.mail_id, addr) for r, addr in store.unnotified(NOTICE_RECIPIENT, NOW - 86400)} == \
        {(a.mail_id, "Alice@Example.org")}


# --- notify runs -----------------------------------------------------------------------------

class Outbox:
    def __init__(self):
        self.sent: list[tuple[str, list[str], bytes]] = []
        self.fail: str | None = None

    def __call__(self, sender, rcpts, data):
        if self.fail:
            raise ReleaseError(self.fail)
        self.sent.append((sender, list(rcpts), data))

    def to(self, address):
        return [parse(d) for _, r, d in self.sent if r == [address]]


def settings(tmp_path, **kw):
    """Settings with a web URL and an admin address; a keyword given None unsets that setting."""
    values = dict(quarantine_web_url="https://q.example.org/quarantine", quarantine_admin_address="admin@example.org")
    values.update(kw)
    return Settings().replace(**{k: v for k, v in values.items() if v is not None})


def notifier(s, store, outbox, log=None):
    return QuarantineNotifier(s, store, outbox, prefs=Preferences(s), key=KEY, host="mx1",
                    log=(lambda action, **f: log.append((action, f))) if log is not None else (lambda *a, **f: None))


def test_a_run_sends_digests_with_verifying_links_and_an_admin_notice(tmp_path):
    store = DirectoryStore(str(tmp_path / "q"))
    spam1 = record(subject="first")
    spam2 = record(subject="second", rcpts=("alice@example.org", "bob@example.org"), created=NOW - 300)
    virus = record(reason="virus", rcpts=("carol@example.org",))
    for r in (spam1, spam2, virus):
        store.put(r, b"Subject: x\r\n\r\nx\r\n")
    outbox, log = Outbox(), []
    out = notifier(settings(tmp_path), store, outbox, log).run(NOW)
    assert sorted(out.sent) == [("admin", "admin@example.org", 1), ("digest", "alice@example.org", 2),
                                ("digest", "bob@example.org", 1)]
    assert all(sender == "" for sender, _, _ in outbox.sent)
    assert outbox.to("carol@example.org") == []          # virus: never offered to the recipient
    (alice,) = outbox.to("alice@example.org")
    text = alice.get_body("plain").get_content()
    assert text.index("second") < text.index("first")     # newest first
    links = [w for w in text.split() if w.startswith("https://q.example.org/quarantine/")]
    assert len(links) == 4
    claims = {verify(KEY, link.rsplit("/", 1)[1], NOW, "release" if "/r/" in link else "show") for link in links}
    assert {(c.quarantine_id, c.recipient) for c in claims} == {(spam1.mail_id, "alice@example.org"),
                                                                (spam2.mail_id, "alice@example.org")}
    (admin,) = outbox.to("admin@example.org")
    assert virus.mail_id in admin.get_body("plain").get_content() and "virus" in admin["Subject"]
    assert ("notify", {"to": "alice@example.org", "mode": "digest", "messages": 2,
                       "quarantine_ids": f"{spam2.mail_id},{spam1.mail_id}"}) in log
    # nothing twice
    outbox.sent.clear()
    assert notifier(settings(tmp_path), store, outbox).run(NOW + 86400 * 2).sent == []


def test_dry_run_claims_nothing_and_a_failed_send_is_retried(tmp_path):
    store = DirectoryStore(str(tmp_path / "q"))
    store.put(record(), b"x\r\n")
    outbox = Outbox()
    s = settings(tmp_path, quarantine_admin_address=None)
    assert notifier(s, store, outbox).run(NOW, dry_run=True).sent == [("digest", "alice@example.org", 1)]
    assert outbox.sent == []
    outbox.fail = "451 4.3.0 try later"
    out = notifier(s, store, outbox).run(NOW)
    assert out.sent == [] and out.failed == [("digest", "alice@example.org", "451 4.3.0 try later")]
    outbox.fail = None
    assert notifier(s, store, outbox).run(NOW + 60).sent == [("digest", "alice@example.org", 1)]


def test_preferences_from_the_map_and_the_daily_schedule(tmp_path):
    store = DirectoryStore(str(tmp_path / "q"))
    prefs = tmp_path / "notify.map"
    prefs.write_text("# who wants what\nbob@example.org none\n@example.net immediate\nodd@example.org sometimes\n")
    s = settings(tmp_path, files_quarantine_notify=str(prefs), quarantine_admin_address=None)
    store.put(record(rcpts=("alice@example.org", "bob@example.org", "dan@example.net", "odd@example.org")), b"x\r\n")
    outbox = Outbox()
    out = notifier(s, store, outbox).run(NOW)
    assert sorted(to for _, to, _ in out.sent) == ["alice@example.org", "dan@example.net", "odd@example.org"]
    assert out.silenced == ["bob@example.org"]
    # an hour later: the digest reader waits for tomorrow, the immediate one hears at once
    store.put(record(rcpts=("alice@example.org", "dan@example.net")), b"x\r\n")
    later = NOW + 3600
    if not digest_due(NOW, later, s.quarantine_notify_digest_hour):
        out = notifier(s, store, outbox).run(later)
        assert [to for _, to, _ in out.sent] == ["dan@example.net"] and out.waiting == ["alice@example.org"]
    out = notifier(s, store, outbox).run(NOW + 86400 + 60)
    assert "alice@example.org" in [to for _, to, _ in out.sent]
    assert all(r != ["bob@example.org"] for _, r, _ in outbox.sent)


def test_admin_notices_are_rate_limited_with_a_summary(tmp_path):
    store = DirectoryStore(str(tmp_path / "q"))
    viruses = [record(reason="virus", created=NOW - 600 + i) for i in range(5)]
    for r in viruses:
        store.put(r, b"x\r\n")
    outbox = Outbox()
    s = settings(tmp_path, quarantine_admin_notice_rate=2, quarantine_notify_skip_reasons=["virus", "spam", "banned"])
    out = notifier(s, store, outbox).run(NOW)
    assert out.sent == [("admin", "admin@example.org", 1)] * 2 + [("admin-summary", "admin@example.org", 3)]
    summary = outbox.to("admin@example.org")[-1]
    assert "rate-limited" in summary["Subject"]
    assert all(r.mail_id in summary.get_body("plain").get_content() for r in viruses[2:])
    # within the hour the budget is spent: new ones go straight into a summary
    store.put(record(reason="banned", created=NOW + 100), b"x\r\n")
    assert notifier(s, store, outbox).run(NOW + 600).sent == [("admin-summary", "admin@example.org", 1)]
    # an hour later, single notices again
    store.put(record(reason="virus", created=NOW + 4000), b"x\r\n")
    assert notifier(s, store, outbox).run(NOW + 4200).sent == [("admin", "admin@example.org", 1)]


def test_without_a_web_url_digests_have_no_links(tmp_path):
    store = DirectoryStore(str(tmp_path / "q"))
    store.put(record(), b"x\r\n")
    outbox = Outbox()
    s = settings(tmp_path, quarantine_web_url=None, quarantine_admin_address=None)
    QuarantineNotifier(s, store, outbox, prefs=Preferences(s), key=None, host="mx1", log=lambda *a, **k: None).run(NOW)
    (msg,) = outbox.to("alice@example.org")
    assert "Release:" not in msg.get_body("plain").get_content() and "href" not in msg.get_body("html").get_content()
