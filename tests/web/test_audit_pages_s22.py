"""The audit page as a postmaster uses it: paged newest first (web.app.AUDIT_PAGE a page,
?page=N), one message's entries (?mail_id=, the Message column links there), bounded by
web_search_scan_max as the list is. Before, it showed the newest 500 entries and nothing older,
so "who released this message last month" had no answer in the web UI.
Through the app over a real directory store (tests/web/helpers.py World).
"""

from __future__ import annotations

import html
import re

from owlery.quarantine import AuditEntry
from web import app as web_app
from web.settings import WebConfig

from .helpers import World

ADMINS = frozenset({"admin@example.test"})


def _world(tmp_path, n, **config):
    w = World(tmp_path, config=WebConfig(admins=ADMINS, **config))
    for i in range(n):     # entry i at time 1000 + i: the newest is the last
        w.store.add_audit(AuditEntry(1000.0 + i, "admin@example.test", "release", f"mailid{i % 7:09d}",
                                     f"n={i}", "mx1"))
    return w


def _numbers(body: bytes) -> list[int]:
    return [int(n) for n in re.findall(r"n=(\d+)", body.decode())]


def _links(body: bytes, rel: str) -> list[str]:
    return [html.unescape(u) for u in re.findall(rf'<a href="([^"]+)" rel="{rel}">', body.decode())]


def _get(c, url):
    path, _, query = url.partition("?")
    return c.get(path, **dict(kv.split("=", 1) for kv in query.split("&") if kv))


def test_the_audit_pages_through_every_entry_newest_first(tmp_path, monkeypatch):
    monkeypatch.setattr(web_app, "AUDIT_PAGE", 20)
    w = _world(tmp_path, 55)
    c = w.client()
    c.login("admin@example.test")
    page, seen = c.get("/audit"), []
    while True:
        assert page.status == 200
        seen += _numbers(page.body)
        older = _links(page.body, "next")
        if not older:
            break
        page = _get(c, older[0])
    assert seen == list(range(54, -1, -1))
    assert "Entries 41\u201355, newest first." in page.body.decode() and _links(page.body, "prev")


def test_one_messages_entries_and_the_link_to_them(tmp_path):
    w = _world(tmp_path, 30)
    c = w.client()
    c.login("admin@example.test")
    everything = c.get("/audit").body.decode()
    assert 'href="/audit?mail_id=mailid000000003"' in everything
    one = c.get("/audit", mail_id="mailid000000003")
    assert _numbers(one.body) == [n for n in range(29, -1, -1) if n % 7 == 3]
    assert 'value="mailid000000003"' in one.body.decode()


def test_audit_paging_stops_at_the_scan_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(web_app, "AUDIT_PAGE", 10)
    w = _world(tmp_path, 40, search_scan_max=25)
    asked = []
    real = w.store.audit_log
    w.store.audit_log = lambda **kw: asked.append(kw["limit"]) or real(**kw)
    c = w.client()
    c.login("admin@example.test")
    third = c.get("/audit", page="3")
    assert _numbers(third.body) == list(range(19, 14, -1)) and not _links(third.body, "next")
    assert max(asked) <= 26


def test_the_audit_stays_for_admins_only(tmp_path):
    w = _world(tmp_path, 3)
    c = w.client()
    c.login("alice@example.test")
    assert c.get("/audit", mail_id="mailid000000001").status == 403
