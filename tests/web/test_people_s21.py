"""The web as its people meet it (s21): paging a long quarantine, a message gone while shown, the store down,
a session ended mid-form, the refusal pages, and markup that keeps right-to-left and long text in its place.

Through the app (web.app.WebApp) over a real directory store holding realistic held mail
(tests/web/people_s21_data.py: encoded words in several charsets, right-to-left subjects,
450-character words, messages held for several recipients); fake passwords and Postfix.
The browser side (layout at 360 px and wide, keyboard, no JavaScript) is
tests/e2e/test_web_people_s21.py.
"""

from __future__ import annotations

import html
import os
import re

import pytest

from owlery.quarantine import QuarantineUnavailable
from web.settings import WebConfig

from .helpers import NOW, World
from .people_s21_data import LONG_WORD, held

ADMINS = frozenset({"admin@example.test"})


def seeded(tmp_path, n, **config):
    w = World(tmp_path, config=WebConfig(admins=ADMINS, **config))
    records = []
    for record, message in held(n, NOW):
        w.store.put(record, message)
        records.append(record)
    return w, records


def ids_on(body: bytes) -> list[str]:
    return re.findall(r'name="id" value="([a-z2-9]{15})"', body.decode())


def links(body: bytes, rel: str) -> list[str]:
    return [html.unescape(u) for u in re.findall(rf'<a href="([^"]+)" rel="{rel}">', body.decode())]


def follow(c, url):
    path, _, query = url.partition("?")
    return c.get(path, **dict(kv.split("=", 1) for kv in query.split("&") if kv))


def test_a_recipient_pages_through_all_her_messages_newest_first(tmp_path):
    w, records = seeded(tmp_path, 40, list_max=10)
    hers = [r.mail_id for r in records if r.recipient("alice@example.test")]     # newest first
    c = w.client()
    page = c.login("alice@example.test")
    seen, pages = [], 0
    while True:
        pages += 1
        body = page.body.decode()
        seen += ids_on(page.body)
        first = len(seen) - len(ids_on(page.body)) + 1
        assert f"Messages {first}\u2013{len(seen)}, newest first." in body
        older = links(page.body, "next")
        if not older:
            break
        assert older == [f"/list?page={pages + 1}"]
        page = follow(c, older[0])
        assert page.status == 200 and links(page.body, "prev")
    assert seen == hers and len(hers) > 10 and pages == -(-len(hers) // 10)


def test_paging_is_bounded_and_says_where_it_stops(tmp_path):
    w, records = seeded(tmp_path, 30, list_max=10, search_scan_max=25)
    asked = []
    real_list = w.store.list
    w.store.list = lambda f, now: asked.append(f.limit) or real_list(f, now)
    c = w.client()
    c.login("admin@example.test")
    third = c.get("/list", page="3")
    assert ids_on(third.body) == [r.mail_id for r in records[20:25]]
    assert "Older messages are past the last page" in third.body.decode() and not links(third.body, "next")
    far = c.get("/list", page="999999")
    assert far.status == 200 and ids_on(far.body) == [] and links(far.body, "prev") == ["/list?page=999998"]
    assert max(asked) <= 26                       # the deepest page, and one to tell whether there is more
    assert c.get("/list", page="-1").status == c.get("/list", page="x").status == 200


def test_a_search_keeps_its_terms_on_every_page_and_after_an_action(tmp_path):
    w, records = seeded(tmp_path, 40, list_max=4)
    c = w.client()
    c.login("admin@example.test")
    page = c.get("/list", subject="Rechnung")
    [older] = links(page.body, "next")
    assert older == "/list?subject=Rechnung&page=2"
    second = follow(c, older)
    target = ids_on(second.body)[0]
    assert 'name="next" value="/list?subject=Rechnung&amp;page=2"' in second.body.decode()
    resp = c.post("/action", action="release", id=target, next="/list?subject=Rechnung&page=2")
    assert resp.status == 303 and resp.header("Location") == "/list?subject=Rechnung&page=2"


def test_a_message_gone_between_list_and_show_is_404_not_an_error(tmp_path):
    w, records = seeded(tmp_path, 3)
    c = w.client()
    c.login("alice@example.test")
    mine = records[0].mail_id
    for root, _, files in os.walk(tmp_path / "q" / "msg"):
        for name in files:
            if name.startswith(mine):
                os.unlink(os.path.join(root, name))
    resp = c.get(f"/m/{mine}")
    assert resp.status == 404 and b"no longer in quarantine" in resp.body and b'href="/list"' in resp.body


@pytest.mark.parametrize("path", ["/list", "/m/aaaaaaaaaaaaaaa", "/audit"])
def test_the_store_down_is_503_with_when_to_retry(tmp_path, path):
    w, _ = seeded(tmp_path, 1)
    c = w.client()
    c.login("admin@example.test")

    def down(*a, **kw):
        raise QuarantineUnavailable("quarantine database: cannot connect: connection refused")
    w.store.list = w.store.get = w.store.audit_log = down
    resp = c.get(path)
    assert resp.status == 503 and b"Try again later" in resp.body and b"Traceback" not in resp.body
    assert resp.header("Retry-After") == "120"


def test_a_session_ended_mid_form_says_so_and_leads_to_the_login(tmp_path):
    w, records = seeded(tmp_path, 3)
    c = w.client()
    c.login("alice@example.test")
    csrf = c.csrf()
    w.clock[0] += 1801                                        # web_session_idle_timeout passed
    resp = c.post("/action", csrf=csrf, action="release", id=records[0].mail_id)
    assert resp.status == 403 and b"<title>Session ended" in resp.body and b'href="/login"' in resp.body
    assert not w.postfix.sent
    login = c.get("/login")
    assert b"Your session has ended" in login.body
    assert b"Your session has ended" not in w.client().get("/login").body       # a first visit: no such note


def test_the_csrf_refusal_page_offers_a_way_back(tmp_path):
    w, records = seeded(tmp_path, 1)
    c = w.client()
    c.login("alice@example.test")
    resp = c.post("/action", csrf="forged", action="release", id=records[0].mail_id)
    assert resp.status == 403 and b"nothing was done" in resp.body and b'<a href="/">' in resp.body


def test_list_markup_isolates_right_to_left_subjects_and_labels_each_box(tmp_path):
    w, records = seeded(tmp_path, 13)
    c = w.client()
    body = c.login("alice@example.test").body.decode()
    hebrew = re.search(r"<bdi>([^<]*\u05d7\u05e9\u05d1\u05d5\u05df[^<]*)</bdi>", body)     # "account"
    assert hebrew, body
    assert f'aria-label="Select: {LONG_WORD[:100]}' in body                   # the box says which message
    assert 'data-label="Subject" class="long"' in body and "<th><span class=\"hidden\">Select</span></th>" in body
    assert body.count('value="release"') == 2                            # above and below the list
    admin = w.client()
    page = admin.login("admin@example.test").body.decode()
    assert page.count('name="to"') == 1                                  # one "to": two would send two values


def test_the_stylesheet_answers_a_head_as_its_get(tmp_path):
    w, _ = seeded(tmp_path, 0)
    c = w.client()
    get, head = c.request("GET", "/static/style.css"), c.request("HEAD", "/static/style.css")
    assert head.status == get.status == 200 and head.content_type == get.content_type == "text/css; charset=utf-8"
