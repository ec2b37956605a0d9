"""The web core as a browser would meet it: logins, CSRF, who sees and releases what, links, escaping, headers.

Real directory store in a temp dir; fake directory passwords and a fake Postfix (what was
re-injected is recorded). Time is the World's clock.
"""

import pytest

from owlery.quarantine import RELEASED
from owlery.quarantine.tokens import sign
from web.settings import WebConfig

from .helpers import KEY, NOW, World, make_record


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


def test_security_headers_and_cookie_flags(world):
    c = world.client()
    resp = c.get("/login")
    headers = dict(resp.all_headers())
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    [cookie] = [v for k, v in resp.headers if k == "Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert b"<script" not in resp.body


def test_cookies_are_secure_behind_https(tmp_path):
    w = World(tmp_path, config=WebConfig(base_url="https://q.example.test"))
    [cookie] = [v for k, v in w.client().get("/login").headers if k == "Set-Cookie"]
    assert "Secure" in cookie


def test_login_then_list_own_messages_only(world):
    mine = world.put(make_record(subject="for alice"))
    world.put(make_record(rcpts=("bob@example.test",), subject="for bob"))
    c = world.client()
    page = c.login("alice@example.test").body.decode()
    assert "for alice" in page and "for bob" not in page and mine.mail_id in page


def test_login_replaces_the_session_id(world):
    c = world.client()
    c.get("/login")
    before = c.cookies["owlery_session"]
    c.post("/login", username="alice@example.test", password="alice-pw")
    assert c.cookies["owlery_session"] != before
    assert world.app.sessions.get(before, NOW) is None


def test_wrong_password_is_refused(world):
    c = world.client()
    c.get("/login")
    assert c.post("/login", username="alice@example.test", password="nope").status == 401
    assert c.get("/list").status == 303


def test_post_without_or_with_wrong_csrf_is_refused(world):
    rec = world.put(make_record())
    c = world.client()
    c.login("alice@example.test")
    assert c.post("/action", csrf=False, action="release", id=rec.mail_id).status == 403
    assert c.post("/action", csrf="x" * 43, action="release", id=rec.mail_id).status == 403
    assert world.postfix.sent == []
    # a login form needs its token too (no login CSRF)
    fresh = world.client()
    assert fresh.post("/login", csrf=False, username="alice@example.test", password="alice-pw").status == 403
    # another visitor's token is not ours
    other = world.client()
    other.get("/login")
    assert c.post("/action", csrf=other.csrf(), action="release", id=rec.mail_id).status == 403


def test_recipient_releases_own(world):
    rec = world.put(make_record())
    c = world.client()
    c.login("alice@example.test")
    resp = c.post("/action", action="release", id=rec.mail_id)
    assert resp.status == 303
    [(sender, rcpts, data)] = world.postfix.sent
    assert rcpts == ("alice@example.test",) and b"X-Quarantine-Released: by alice@example.test" in data
    assert world.store.get(rec.mail_id).recipient("alice@example.test").status == RELEASED
    assert "released to alice@example.test" in c.get("/list").body.decode()
    [entry] = world.store.audit_log()
    assert (entry.action, entry.by, entry.mail_id) == ("release", "alice@example.test", rec.mail_id)


def test_recipient_cannot_see_or_release_anothers(world):
    theirs = world.put(make_record(rcpts=("bob@example.test",), subject="bob's secret"))
    c = world.client()
    c.login("alice@example.test")
    resp = c.get(f"/m/{theirs.mail_id}")
    assert resp.status == 404 and "secret" not in resp.body.decode()
    c.post("/action", action="release", id=theirs.mail_id)
    assert world.postfix.sent == []
    assert "no such message" in c.get("/list").body.decode()
    # nor to another address, nor delete: admins only
    mine = world.put(make_record())
    assert c.post("/action", action="release", id=mine.mail_id, to="eve@evil.test").status == 403
    assert c.post("/action", action="delete", id=mine.mail_id).status == 403
    assert world.postfix.sent == [] and world.store.get(mine.mail_id)


def test_admin_only_pages(world):
    c = world.client()
    c.login("alice@example.test")
    assert c.get("/audit").status == 403
    assert c.get("/list").body.decode().count('name="recipient"') == 0      # no search form


def test_not_logged_in_goes_to_login(world):
    c = world.client()
    for path in ("/list", "/audit", "/m/abcdefghijkmnpq", "/"):
        resp = c.get(path)
        assert resp.status == 303 and resp.header("Location") == "/login", path


def test_admin_searches_releases_in_bulk_and_deletes(world):
    a = world.put(make_record(subject="cheap watches"))
    b = world.put(make_record(rcpts=("bob@example.test",), subject="Cheap pills", sender="x@spam.test"))
    other = world.put(make_record(rcpts=("bob@example.test",), subject="invoice", reason="virus",
                                  created=NOW - 40 * 86400))
    c = world.client()
    c.login("admin@example.test")
    page = c.get("/list", subject="cheap").body.decode()
    assert a.mail_id in page and b.mail_id in page and other.mail_id not in page
    page = c.get("/list", sender="spam.test").body.decode()
    assert b.mail_id in page and a.mail_id not in page
    page = c.get("/list", reason="virus").body.decode()
    assert other.mail_id in page and a.mail_id not in page
    page = c.get("/list", recipient="bob@example.test", since="2027-01-01").body.decode()
    assert b.mail_id in page and other.mail_id not in page and a.mail_id not in page
    c.post("/action", action="release", id=[a.mail_id, b.mail_id])
    assert sorted(r for _, rcpts, _ in world.postfix.sent for r in rcpts) == ["alice@example.test", "bob@example.test"]
    c.get("/list")
    c.post("/action", action="release", id=other.mail_id, to="helpdesk@example.test")
    assert world.postfix.sent[-1][1] == ("helpdesk@example.test",)
    c.get("/list")
    c.post("/action", action="delete", id=[a.mail_id, other.mail_id])
    assert [r.mail_id for r in world.store.list(__import__("owlery.quarantine").quarantine.ListFilter(), NOW)] \
        == [b.mail_id]
    audit = c.get("/audit").body.decode()
    assert audit.count(">delete<") == 2 and audit.count(">release<") == 3 and "admin@example.test" in audit


def test_bad_date_in_search_is_said(world):
    c = world.client()
    c.login("admin@example.test")
    assert "YYYY-MM-DD" in c.get("/list", since="yesterday").body.decode()


HOSTILE_SUBJECT = '<script>alert(1)</script><img src=x onerror=alert(2)> "quoted"'
HOSTILE_HTML = ("<html><head><style>body{}</style><script>steal()</script></head><body>"
                "<p>Click <a href='http://evil.test/'>here</a></p><img src='http://evil.test/track.gif' alt='logo'>"
                "<iframe src='http://evil.test/'></iframe></body></html>")


def test_hostile_subject_and_html_body_are_escaped(world):
    msg = ("From: src@sender.test\r\nSubject: " + HOSTILE_SUBJECT + "\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/html; charset=utf-8\r\n\r\n" + HOSTILE_HTML + "\r\n").encode()
    rec = world.put(make_record(subject=HOSTILE_SUBJECT), msg)
    c = world.client()
    for page in (c.login("alice@example.test").body.decode(), c.get(f"/m/{rec.mail_id}").body.decode()):
        assert "<script" not in page and "<img" not in page and "<iframe" not in page and "onerror=alert" \
            not in page.replace("onerror=alert(2)&gt;", "")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    shown = c.get(f"/m/{rec.mail_id}").body.decode()
    assert "Click here" in shown and "[image: logo]" in shown and "steal()" not in shown.split("<h2>Content</h2>")[1]
    assert "http://evil.test/track.gif" not in shown.split("<h2>Content</h2>")[1]
    assert "(HTML shown as text)" in shown


def test_login_rate_limit_per_address_and_client(world):
    cfg = WebConfig(login_failures_per_address=3, login_failures_per_client=5, login_failure_window=600)
    world.app.__init__(cfg, world.backend, clock=lambda: world.clock[0])
    c = world.client("203.0.113.9")
    c.get("/login")
    for _ in range(3):
        assert c.post("/login", username="alice@example.test", password="guess").status == 401
    calls = world.auth.calls
    resp = c.post("/login", username="alice@example.test", password="alice-pw")
    assert resp.status == 429 and resp.header("Retry-After") == "600"
    assert world.auth.calls == calls          # the directory was not asked
    # another address from the same client still works until the client limit
    assert c.post("/login", username="bob@example.test", password="guess").status == 401
    assert c.post("/login", username="bob@example.test", password="guess").status == 401
    assert c.post("/login", username="bob@example.test", password="bob-pw").status == 429
    # another client is limited for alice (address limit), not for bob
    d = world.client("198.51.100.77")
    d.get("/login")
    assert d.post("/login", username="alice@example.test", password="alice-pw").status == 429
    assert d.post("/login", username="bob@example.test", password="bob-pw").status == 303
    world.clock[0] += 601
    e = world.client("203.0.113.9")
    e.login("alice@example.test")


def test_release_link_get_shows_and_post_releases(world):
    rec = world.put(make_record())
    token = sign(KEY, "release", rec.mail_id, "alice@example.test", int(NOW + 86400))
    c = world.client()
    resp = c.get(f"/r/{token}")
    assert resp.status == 200 and world.postfix.sent == []          # a GET never releases
    [cookie] = [v for k, v in resp.headers if k == "Set-Cookie"]
    assert cookie.startswith("owlery_link=") and f"Path=/r/{token}" in cookie
    csrf = c.csrf()
    assert c.post(f"/r/{token}", csrf=False).status == 403 and world.postfix.sent == []
    assert c.post(f"/r/{token}", csrf=csrf).status == 200
    assert world.postfix.sent[0][1] == ("alice@example.test",)
    assert world.store.audit_log()[0].by == "link:alice@example.test"
    again = c.get(f"/r/{token}")
    assert again.status == 200 and "Already released" in again.body.decode()
    assert len(world.postfix.sent) == 1


def test_forged_expired_and_wrong_action_links_are_refused(world):
    rec = world.put(make_record())
    c = world.client()
    expired = sign(KEY, "release", rec.mail_id, "alice@example.test", int(NOW - 1))
    forged = sign(b"x" * 32, "release", rec.mail_id, "alice@example.test", int(NOW + 3600))
    show = sign(KEY, "show", rec.mail_id, "alice@example.test", int(NOW + 3600))
    for token, words in ((expired, "expired"), (forged, "not valid"), (show, "not valid"), ("garbage", "not valid")):
        resp = c.get(f"/r/{token}")
        assert resp.status == 403 and words in resp.body.decode(), token
    # a token for bob's copy does not reach alice's message
    bobs = sign(KEY, "release", rec.mail_id, "bob@example.test", int(NOW + 3600))
    assert c.get(f"/r/{bobs}").status == 404
    assert world.postfix.sent == []


def test_show_link_renders_safely_without_login(world):
    msg = ("From: src@sender.test\r\nSubject: hi\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
           "boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain <b>text</b>\r\n--b\r\n"
           "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"x.exe\"\r\n"
           "\r\nMZ\r\n--b--\r\n").encode()
    rec = world.put(make_record(subject="hi"), msg)
    token = sign(KEY, "show", rec.mail_id, "alice@example.test", int(NOW + 3600))
    page = world.client().get(f"/s/{token}").body.decode()
    assert "plain &lt;b&gt;text&lt;/b&gt;" in page and "x.exe" in page and "Not shown" in page
    assert 'action="/action"' not in page


def test_links_without_a_key_say_so(tmp_path):
    w = World(tmp_path, key=None)
    assert w.client().get("/r/abc").status == 503


def test_postgresql_store_release_and_audit(tmp_path, pg_dsn):
    import uuid

    from owlery.quarantine.postgres import PostgresStore
    store = PostgresStore(pg_dsn, schema="owlery_wapp_" + uuid.uuid4().hex[:12], timeout=5)
    try:
        w = World(tmp_path, store=store)
        rec = w.put(make_record(subject="pg held"))
        c = w.client()
        assert "pg held" in c.login("alice@example.test").body.decode()
        c.post("/action", action="release", id=rec.mail_id)
        assert w.postfix.sent[0][1] == ("alice@example.test",)
        admin = w.client()
        admin.login("admin@example.test")
        assert f"{rec.mail_id}" in admin.get("/audit").body.decode()
    finally:
        store.drop_schema()
