"""The web application's core: a Request in, a Response out: routes, sessions, CSRF, who may see and do what.

Pages (no JavaScript anywhere):
  GET  /login, POST /login, POST /logout       directory logins, rate-limited per address and client
  GET  /list                                   own quarantine; admins: everybody's, with a search;
                                               newest first, web_list_max a page (?page=N), paged
                                               at most web_search_scan_max deep
  GET  /m/<id>                                 one message: summary, headers, safe rendering
  POST /action                                 release (own; admins: any, or to another address),
                                               delete (admins), one or many ids
  GET  /audit                                  admins: who released or deleted what, newest first,
                                               AUDIT_PAGE a page (?page=N), one message's (?mail_id=)
  GET  /r/<token>, POST /r/<token>             a digest's release link: GET only shows a confirm
                                               page (link scanners fetch links), the POST releases
  GET  /s/<token>                              a digest's show link
Every POST carries the session's synchronizer token (`csrf` field) or is refused with 403; a
visitor not logged in has a session stored nowhere (web.sessions: `new_visitor`), so no flood of
visitors expires another's login form. Logins are limited before the password is checked
(owlery.login_limits.LoginFailures.attempt), so threads checking passwords side by side add no guesses.
The release links work without a login: their session (for that token) has its own cookie,
path /r/, so following a link never replaces a login cookie. A message another recipient
holds answers 404, like one that does not exist. Text from a message (subject, From, addresses)
shows every character that does not print on its own as an escape, and a long one its start and
its end (`_shown`). A session keeps at most NOTES_MAX notes for its next page, however many
POSTs never read one. One log line per decision; logins and
releases/deletes counted in the metrics (owlery.metrics; `route_name` names a request's route).
Sans-I/O apart from the WebBackend (web/backend.py) it is given; the adapter runs `handle` in a
thread pool. Talks to: the WebBackend. Tests: tests/web/test_app.py, tests/web/test_hostile_s19.py,
tests/web/test_people_s21.py (paging, a session ended mid-form, gone and down pages)
"""

from __future__ import annotations

import calendar
import dataclasses
import logging
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from owlery import log as owlery_log
from owlery import metrics
from owlery.errors import DirectoryUnavailable
from owlery.login_limits import LoginFailures, client_key
from owlery.quarantine import (PENDING, ListFilter, QuarantineError, QuarantineNotFound, QuarantineRecord,
                               QuarantineUnavailable, is_valid_id)
from owlery.quarantine.release import ReleaseError
from owlery.quarantine.tokens import BadToken, verify
from web import mailview
from web import templates as t
from web.http import Request, Response, redirect, set_cookie
from web.sessions import Session, SessionStore, is_visitor_id
from web.settings import WebConfig

log = logging.getLogger("owlery.web")

COOKIE = "owlery_session"
LINK_COOKIE = "owlery_link"
BULK_MAX = 500
NOTES_MAX = BULK_MAX + 1          # one bulk action's notes, and one saying that older ones went
SHOWN_MAX = 300                   # characters of a subject or an address shown
AUDIT_PAGE = 200                  # audit entries a page
# spaces other than " " (no-break, em, ideographic ...): one space each, as a browser collapses them
_OTHER_SPACES = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
REASONS = ("", "spam", "virus", "banned", "score")
# another address to release to: no white space, no control character (RFC 5321 4.1.2 has none in
# a path; NUL, ESC and DEL went into RCPT TO), no final line break (\Z, not $)
_ADDRESS = re.compile(r"^[^\s\x00-\x1f\x7f@<>()\[\],;:\"\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\Z")
# A page to go back to after an action: printable ASCII only, to the very end (\Z: "$" would let
# a final line break through into the Location header; non-Latin-1 text could not be sent at all).
_NEXT = re.compile(r"^/(?:list(?:\?[!-\[\]-~]*)?|m/[a-z2-9]{15})\Z")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")    # ASCII digits, no final newline
_ROUTES = {"/": "root", "/login": "login", "/logout": "logout", "/list": "list", "/action": "action",
           "/audit": "audit", "/static/style.css": "static"}
_PREFIX_ROUTES = (("/r/", "release_link"), ("/s/", "show_link"), ("/m/", "message"))


def route_name(path: str) -> str:
    """The route `path` belongs to, as the metrics name it: one of a fixed set, never the path
    itself (a link's path is a bearer token, a message's its id)."""
    if path in _ROUTES:
        return _ROUTES[path]
    return next((name for prefix, name in _PREFIX_ROUTES if path.startswith(prefix)), "other")


@dataclasses.dataclass
class _Ctx:
    req: Request
    now: float
    session: Session | None
    cookies: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    ended: bool = False          # the request's session cookie names a session that has ended

    @property
    def user(self) -> str | None:
        return self.session.user if self.session is not None else None

    @property
    def admin(self) -> bool:
        return self.session is not None and self.session.user is not None and self.session.admin


class WebApp:
    def __init__(self, config: WebConfig, backend: Any, *, clock: Callable[[], float] = time.time):
        self.config, self.backend, self.clock = config, backend, clock
        self.sessions = SessionStore(lifetime=config.session_lifetime, idle=config.session_idle_timeout,
                                     max_sessions=config.sessions_max)
        self.limiter = LoginFailures(per_login=config.login_failures_per_address,
                                     per_client=config.login_failures_per_client,
                                     window=config.login_failure_window)

    # -- entry ---------------------------------------------------------------------------

    def handle(self, req: Request) -> Response:
        if req.method in ("GET", "HEAD") and req.path == "/static/style.css":
            return Response(200, t.STYLE, "text/css; charset=utf-8")
        now = self.clock()
        link = req.path.startswith("/r/")
        sid = req.cookies.get(LINK_COOKIE if link else COOKIE)
        session = self.sessions.get(sid, now) or self.sessions.visitor(sid, now)
        ctx = _Ctx(req, now, session, ended=bool(sid) and session is None and not is_visitor_id(sid))
        try:
            resp = self._dispatch(ctx)
        except (DirectoryUnavailable, QuarantineUnavailable) as e:
            log.error("web: temporary failure: %s", e)
            resp = self._error(ctx, 503, "Try again later", "The quarantine or the directory cannot be "
                                                            "reached just now. Please try again in a few minutes.")
            resp.headers.append(("Retry-After", "120"))
        except QuarantineNotFound as e:
            # listed a moment ago, gone now (expired, deleted by another host, its file removed)
            log.warning("web: gone while shown: %s", e)
            resp = self._error(ctx, 404, "Gone", "This message is no longer in quarantine.",
                               t.Markup('<p><a href="/list">Back to the list</a></p>'))
        resp.headers.extend(ctx.cookies)
        return resp

    def _dispatch(self, ctx: _Ctx) -> Response:
        req = ctx.req
        if req.method not in ("GET", "HEAD", "POST"):
            return Response(405, b"", "text/plain", [("Allow", "GET, HEAD, POST")])
        if req.method == "POST" and (ctx.session is None or not ctx.session.csrf_ok(req.field("csrf"))):
            ended = ctx.session is None and ctx.ended
            owlery_log.decision("web", None, "refused", path=req.path, client=req.client,
                                reason="session-ended" if ended else "csrf")
            if ended and not req.path.startswith("/r/"):
                return self._error(ctx, 403, "Session ended", "Your session has ended (it was unused for too "
                                   "long, or the server restarted), so nothing was done. Log in and try again.",
                                   t.Markup('<p><a href="/login">Log in</a></p>'))
            return self._error(ctx, 403, "Refused", "This form has expired or did not come from this site, "
                                                    "so nothing was done. Go back, reload the page and try again.",
                               t.Markup('<p><a href="/">Back to your messages</a></p>'))
        get = req.method in ("GET", "HEAD")
        path = req.path
        if path.startswith("/r/"):
            return self._link_release(ctx, path[3:], confirm=get)
        if path.startswith("/s/") and get:
            return self._link_show(ctx, path[3:])
        route = {("GET", "/"): self._root, ("GET", "/login"): self._login_form, ("POST", "/login"): self._login,
                 ("POST", "/logout"): self._logout, ("GET", "/list"): self._list, ("POST", "/action"): self._action,
                 ("GET", "/audit"): self._audit}.get(("GET" if get else "POST", path))
        if route is not None:
            return route(ctx)
        if path.startswith("/m/") and get:
            return self._message(ctx, path[3:])
        return self._error(ctx, 404, "Not found", "There is no such page.")

    # -- helpers -------------------------------------------------------------------------

    def _page(self, ctx: _Ctx, title: str, content: t.Markup, status: int = 200) -> Response:
        nav = t.Markup("")
        if ctx.user is not None and not ctx.req.path.startswith(("/r/", "/s/")):
            nav = t.nav(ctx.user, ctx.admin, ctx.session.csrf)
        notes: list[str] = []
        if ctx.session is not None and ctx.session.notes:
            notes, ctx.session.notes = ctx.session.notes, []
        return Response(status, t.page(title, content, nav=nav, notes=notes))

    def _error(self, ctx: _Ctx, status: int, title: str, message: str, more: t.Markup = t.EMPTY) -> Response:
        return self._page(ctx, title, t.fill(t.ERROR, message=message, more=more), status)

    def _ensure_session(self, ctx: _Ctx, *, link_path: str | None = None) -> Session:
        """The visitor's session, made (anonymous, stored nowhere) when there is none, for a form's CSRF token."""
        if ctx.session is None:
            ctx.session = self.sessions.new_visitor(ctx.now)
            name, path = (LINK_COOKIE, link_path) if link_path else (COOKIE, "/")
            ctx.cookies.append(set_cookie(name, ctx.session.sid, path=path, secure=self._secure(ctx)))
        return ctx.session

    def _secure(self, ctx: _Ctx) -> bool:
        return self.config.secure_cookies_always or ctx.req.secure

    def _need_login(self, ctx: _Ctx) -> Response | None:
        if ctx.user is None:
            return redirect("/login")
        return None

    def _may_see(self, ctx: _Ctx, record: QuarantineRecord) -> bool:
        if ctx.admin:
            return True
        state = record.recipient(ctx.user or "")
        return state is not None and state.original

    # -- login ---------------------------------------------------------------------------

    def _root(self, ctx: _Ctx) -> Response:
        return redirect("/list" if ctx.user else "/login")

    def _login_form(self, ctx: _Ctx, *, status: int = 200, username: str = "", message: str = "") -> Response:
        if ctx.user is not None and status == 200:
            return redirect("/list")
        ended = ctx.ended and ctx.session is None
        session = self._ensure_session(ctx)
        content = t.fill(t.LOGIN, csrf=session.csrf, username=username)
        if ended and not message:
            content = t.Markup(t.fill(t.NOTE, message="Your session has ended. Please log in again.") + content)
        if message:
            content = t.Markup(t.fill(t.ERROR, message=message, more="") + content)
        return self._page(ctx, "Log in", content, status)

    def _login(self, ctx: _Ctx) -> Response:
        username = ctx.req.field("username").strip()[:320]
        password = ctx.req.field("password")[:1024]
        client = client_key(ctx.req.client)
        limit = self.limiter.attempt(username, client, ctx.now)     # counted as failed until it is not
        if limit is not None:
            owlery_log.decision("web", None, "login", user=username, client=ctx.req.client, result="rate-limited",
                                limit=limit)
            metrics.WEB_LOGINS.labels("rate-limited").inc()
            resp = self._login_form(ctx, status=429, username=username,
                                    message="Too many failed logins. Please wait a while and try again.")
            resp.headers.append(("Retry-After", str(int(self.config.login_failure_window))))
            return resp
        try:
            address = self.backend.authenticate(username, password) if username and password else None
        except DirectoryUnavailable:
            self.limiter.undo(username, client, ctx.now)
            raise
        if address is None:
            owlery_log.decision("web", None, "login", user=username, client=ctx.req.client, result="failed")
            metrics.WEB_LOGINS.labels("failed").inc()
            return self._login_form(ctx, status=401, username=username, message="Wrong address or password.")
        self.limiter.succeeded(username, client, ctx.now)
        admin = address.lower() in self.config.admins or self._in_admin_group(address)
        ctx.session = self.sessions.login(ctx.session, address, admin, ctx.now)
        ctx.cookies.append(set_cookie(COOKIE, ctx.session.sid, secure=self._secure(ctx)))
        owlery_log.decision("web", None, "login", user=address, client=ctx.req.client, result="ok",
                            admin="yes" if admin else "no")
        metrics.WEB_LOGINS.labels("ok").inc()
        return redirect("/list")

    def _in_admin_group(self, address: str) -> bool:
        try:
            return self.backend.in_admin_group(address)
        except Exception as e:  # noqa: BLE001  a directory failure must not make anybody an admin
            log.error("web: cannot check web_admin_group for %s: %s", address, e)
            return False

    def _logout(self, ctx: _Ctx) -> Response:
        if ctx.session is not None:
            owlery_log.decision("web", None, "logout", user=ctx.user or "-", client=ctx.req.client)
            self.sessions.end(ctx.session)
        ctx.cookies.append(set_cookie(COOKIE, "", secure=self._secure(ctx), max_age=0))
        return redirect("/login")

    # -- lists ---------------------------------------------------------------------------

    def _list(self, ctx: _Ctx) -> Response:
        if (resp := self._need_login(ctx)) is not None:
            return resp
        q = ctx.req
        size = self.config.list_max
        page = _page_number(q.arg("page"))
        first = (page - 1) * size
        # the store pages by a limit alone (newest first): a page fetches what comes before it too,
        # so how deep one may page is bounded, by web_search_scan_max as a search's scan is
        deepest = self.config.search_scan_max
        fetch = min(first + size, deepest) + 1             # one more: is there an older page?
        search = t.Markup("")
        values: dict[str, str] = {}
        if ctx.admin:
            values = {k: q.arg(k).strip()[:320] for k in ("recipient", "sender", "subject", "reason", "since", "until")}
            try:
                records = self._search(values, ctx.now, fetch)
            except ValueError as e:
                records, ctx.session.notes = [], [*ctx.session.notes, str(e)]
            search = t.fill(t.SEARCH, reasons=t.options(REASONS, values["reason"]),
                            **{k: v for k, v in values.items() if k != "reason"})
        else:
            records = self.backend.store.list(ListFilter(recipient=ctx.user, limit=fetch), ctx.now)
            records = [r for r in records if self._may_see(ctx, r)]
        last = min(first + size, deepest)
        shown = records[first:last]
        more = len(records) > last and last < deepest
        beyond = len(records) > deepest                      # older ones exist past what may be paged
        rows = t.join(self._row(r, ctx) for r in shown)
        content = t.fill(t.LIST, search=search, count=_count(first, len(shown), page, beyond), csrf=ctx.session.csrf,
                         rows=rows, buttons=t.ADMIN_BUTTONS if ctx.admin else t.USER_BUTTONS,
                         buttons_end=t.ADMIN_BUTTONS_END if ctx.admin else t.USER_BUTTONS,
                         pages=t.pages(_page_link(values, page - 1) if page > 1 else None,
                                       _page_link(values, page + 1) if more else None, page),
                         next=_page_link(values, page))
        return self._page(ctx, "Quarantined messages" + (f", page {page}" if page > 1 else ""), content)

    def _search(self, v: dict[str, str], now: float, limit: int) -> list[QuarantineRecord]:
        newer = older = None
        if v["since"]:
            newer = max(0.0, now - _day(v["since"]))
        if v["until"]:
            older = now - (_day(v["until"]) + 86400)
        text_filters = v["sender"] or v["subject"]
        f = ListFilter(recipient=v["recipient"] or None, reason=v["reason"] or None, newer_than=newer,
                       older_than=older, limit=self.config.search_scan_max if text_filters else limit)
        records = self.backend.store.list(f, now)
        sender, subject = v["sender"].lower(), v["subject"].lower()
        if sender:
            records = [r for r in records if sender in r.sender.lower() or sender in r.header_from.lower()]
        if subject:
            records = [r for r in records if subject in r.subject.lower()
                       or subject in mailview.visible(_decoded_subject(r.subject)).lower()]
        return records[:limit]

    def _row(self, r: QuarantineRecord, ctx: _Ctx) -> t.Markup:
        rcpts = r.recipients if ctx.admin else [x for x in r.recipients if x.address.lower() == (ctx.user or "").lower()]
        status = ", ".join(sorted({x.status for x in rcpts})) or "-"
        return t.fill(t.ROW, mail_id=r.mail_id, date=t.when(r.created), sender=_shown(r.header_from or r.sender),
                      recipients=", ".join(_shown(x.address) for x in rcpts), subject=_shown(r.subject) or "(none)",
                      reason=r.reason, score="-" if r.score is None else f"{r.score:.1f}", status=status)

    # -- one message ---------------------------------------------------------------------

    def _get(self, mail_id: str) -> QuarantineRecord | None:
        if not is_valid_id(mail_id):
            return None
        try:
            return self.backend.store.get(mail_id)
        except QuarantineNotFound:
            return None

    def _message(self, ctx: _Ctx, mail_id: str) -> Response:
        if (resp := self._need_login(ctx)) is not None:
            return resp
        record = self._get(mail_id)
        if record is None or not self._may_see(ctx, record):
            owlery_log.decision("web", None, "denied", user=ctx.user, quarantine_id=mail_id[:40], what="show")
            return self._error(ctx, 404, "Not found", "There is no such message in your quarantine.")
        buttons = t.ADMIN_ONE if ctx.admin else (
            t.USER_ONE if record.recipient(ctx.user or "").status == PENDING else t.Markup(""))
        actions = t.fill(t.ONE_ACTION, csrf=ctx.session.csrf, mail_id=record.mail_id, buttons=buttons) \
            if buttons else t.Markup("")
        return self._page(ctx, _shown(record.subject) or "(no subject)", self._view(record, ctx, actions))

    def _view(self, record: QuarantineRecord, ctx: _Ctx | None, actions: t.Markup, recipient: str | None = None) -> t.Markup:
        v = mailview.view(self.backend.store.message(record.mail_id), self.config.show_text_max)
        parts = []
        for i, p in enumerate(v.parts, 1):
            label = f"Part {i}: {p.content_type or '-'}" + (f" \u201c{p.filename}\u201d" if p.filename else "") + \
                f", {p.size} bytes" + (" (HTML shown as text)" if p.converted else "") + (" (cut)" if p.cut else "")
            body = t.fill(t.T("<pre>$text</pre>"), text=p.text) if p.text is not None else \
                t.Markup("<p>Not shown (not text). Release the message to get it.</p>")
            parts.append(t.fill(t.PART, label=label, text=body))
        return t.fill(t.MESSAGE, summary=self._summary(record, ctx, recipient), actions=actions,
                      headers=v.headers, parts=t.join(parts))

    def _summary(self, r: QuarantineRecord, ctx: _Ctx | None, recipient: str | None = None) -> t.Markup:
        admin = ctx is not None and ctx.admin
        if admin:
            rcpts = ", ".join(f"{_shown(x.address)} ({x.status}" + (f" by {_shown(x.changed_by or '')} "
                              f"{t.when(x.changed_at)}" if x.status != PENDING else "") + ")" for x in r.recipients)
        else:
            rcpts = recipient or (ctx.user if ctx is not None and ctx.user else "")
        extra = t.Markup("")
        if admin:
            extra = t.fill(t.T("<dt>Detail</dt><dd>$detail</dd><dt>Client</dt><dd>$client</dd>"
                               "<dt>Host</dt><dd>$host</dd><dt>Symbols</dt><dd>$symbols</dd>"),
                           detail=_shown(r.detail), client=f"{_shown(r.client_name)}[{r.client_addr}]",
                           host=_shown(r.host), symbols=", ".join(f"{_shown(n)}={s:g}" for n, s, _ in r.symbols))
        return t.fill(t.SUMMARY, date=t.when(r.created), sender=f"<{_shown(r.sender)}>",
                      header_from=_shown(r.header_from), recipients=rcpts, subject=_shown(r.subject),
                      reason=r.reason, score="-" if r.score is None else f"{r.score:.1f}",
                      mail_id=r.mail_id, extra=extra)

    # -- actions -------------------------------------------------------------------------

    def _action(self, ctx: _Ctx) -> Response:
        if (resp := self._need_login(ctx)) is not None:
            return resp
        action = ctx.req.field("action")
        ids = list(dict.fromkeys(ctx.req.fields("id")))
        to = ctx.req.field("to").strip()
        if action not in ("release", "delete") or not ids or len(ids) > BULK_MAX:
            return self._error(ctx, 400, "Nothing done", f"Select between 1 and {BULK_MAX} messages and an action.")
        if not ctx.admin and (action != "release" or to):
            owlery_log.decision("web", None, "denied", user=ctx.user, what=action, reason="not an admin")
            return self._error(ctx, 403, "Refused", "Only administrators may do that.")
        if to and not _ADDRESS.match(to):
            return self._error(ctx, 400, "Nothing done", "That is not a mail address.")
        notes = [self._act_one(ctx, action, mail_id, to) for mail_id in ids]
        ctx.session.notes = _bounded([*ctx.session.notes, *notes])
        nxt = ctx.req.field("next")
        # back to the page the form was on (a deleted message's own page is gone: the list then)
        back = _NEXT.match(nxt) and (action != "delete" or nxt.startswith("/list"))
        return redirect(nxt if back else "/list")

    def _act_one(self, ctx: _Ctx, action: str, mail_id: str, to: str) -> str:
        note, result = self._act_one_counted(ctx, action, mail_id, to)
        metrics.WEB_QUARANTINE_ACTIONS.labels(action, "form", result).inc()
        return note

    def _act_one_counted(self, ctx: _Ctx, action: str, mail_id: str, to: str) -> tuple[str, str]:
        """(the note for the page, the metrics' result: done, failed or refused)."""
        record = self._get(mail_id)
        label = mail_id[:40]
        if record is None or not self._may_see(ctx, record):
            owlery_log.decision("web", None, "denied", user=ctx.user, quarantine_id=label, what=action)
            return f"{label}: no such message", "refused"
        by = ctx.user or "-"
        try:
            if action == "delete":
                self.backend.delete(record, by, ctx.now)
                return f"{label}: deleted", "done"
            if ctx.admin:
                targets = [to] if to else list(record.pending())
            else:
                state = record.recipient(by)
                targets = [state.address] if state is not None and state.status == PENDING else []
            if not targets:
                return f"{label}: already released" + (" (give another address to send it again)" if ctx.admin
                                                       else ""), "refused"
            result = self.backend.release(record, targets, by, ctx.now)
        except ReleaseError as e:
            return f"{label}: could not be released now ({e}); try again later", "failed"
        except QuarantineNotFound:
            return f"{label}: no such message", "refused"
        except QuarantineError as e:
            return f"{label}: {e}", "failed"
        refused = "".join(f"; refused for {r}" for r in result.refused)
        return f"{label}: released to {', '.join(result.accepted)}{refused}", "done"

    def _audit(self, ctx: _Ctx) -> Response:
        if (resp := self._need_login(ctx)) is not None:
            return resp
        if not ctx.admin:
            owlery_log.decision("web", None, "denied", user=ctx.user, what="audit", reason="not an admin")
            return self._error(ctx, 403, "Refused", "Only administrators may see the audit log.")
        # newest first, AUDIT_PAGE a page (?page=N), one message's entries (?mail_id=): the
        # store pages by a limit alone, so a page fetches what comes before it too, and paging
        # goes as deep as web_search_scan_max, as the list's does
        q = ctx.req
        mail_id = q.arg("mail_id").strip()[:64]
        page = _page_number(q.arg("page"))
        first, deepest = (page - 1) * AUDIT_PAGE, self.config.search_scan_max
        last = min(first + AUDIT_PAGE, deepest)
        entries = self.backend.store.audit_log(limit=last + 1, mail_id=mail_id or None)
        shown, more = entries[first:last], len(entries) > last and last < deepest
        rows = t.join(t.fill(t.AUDIT_ROW, when=t.when(e.at), by=_shown(e.by), action=e.action, mail_id=e.mail_id,
                             mail_link=_audit_link(e.mail_id, 1), detail=_shown(e.detail), host=_shown(e.host))
                      for e in shown)
        count = (f"Entries {first + 1}\u2013{first + len(shown)}, newest first." if shown
                 else "No entries." if page == 1 else "No entries on this page.")
        pages = t.pages(_audit_link(mail_id, page - 1) if page > 1 else None,
                        _audit_link(mail_id, page + 1) if more else None, page, "entries")
        content = t.fill(t.AUDIT, search=t.fill(t.AUDIT_SEARCH, mail_id=mail_id), count=count, pages=pages, rows=rows)
        return self._page(ctx, "Audit log" + (f", page {page}" if page > 1 else ""), content)

    # -- the digest's links ----------------------------------------------------------------

    def _claims(self, ctx: _Ctx, token: str, action: str) -> tuple[Any, QuarantineRecord | None, Response | None]:
        key = self.backend.token_key
        if key is None:
            return None, None, self._error(ctx, 503, "Links unavailable", "Release links are not set up on this "
                                                                          "server; ask your postmaster.")
        try:
            claims = verify(key, token, ctx.now, action)
        except BadToken as e:
            owlery_log.decision("web", None, "refused", what=f"{action}-link", client=ctx.req.client, reason=e.reason)
            text = ("This link has expired." if e.reason == "expired" else "This link is not valid.") + \
                " Log in to see your quarantine."
            return None, None, self._error(ctx, 403, "Link refused", text,
                                           t.Markup('<p><a href="/login">Log in</a></p>'))
        record = self._get(claims.quarantine_id)
        if record is None or record.recipient(claims.recipient) is None:
            return claims, None, self._error(ctx, 404, "Gone", "This message is no longer in quarantine.")
        return claims, record, None

    def _link_release(self, ctx: _Ctx, token: str, *, confirm: bool) -> Response:
        claims, record, refused = self._claims(ctx, token, "release")
        if refused is not None:
            return refused
        state = record.recipient(claims.recipient)
        if state.status != PENDING:
            return self._page(ctx, "Already released", t.fill(t.NOTE, message=f"This message was released "
                              f"{t.when(state.changed_at)}; look in your mailbox."))
        if confirm:
            session = self._ensure_session(ctx, link_path="/r/" + token)
            return self._page(ctx, "Release a message", t.fill(
                t.CONFIRM, recipient=claims.recipient, summary=self._summary(record, None, claims.recipient),
                action="/r/" + token, csrf=session.csrf))
        by = f"link:{claims.recipient}"
        try:
            result = self.backend.release(record, [state.address], by, ctx.now)
        except ReleaseError:
            metrics.WEB_QUARANTINE_ACTIONS.labels("release", "link", "failed").inc()
            return self._error(ctx, 503, "Not released", "The message could not be released just now; "
                                                          "please try the link again later.")
        if not result.accepted:
            metrics.WEB_QUARANTINE_ACTIONS.labels("release", "link", "failed").inc()
            return self._error(ctx, 503, "Not released", "The mail server did not take the message; "
                                                          "please try again later.")
        metrics.WEB_QUARANTINE_ACTIONS.labels("release", "link", "done").inc()
        return self._page(ctx, "Released", t.fill(t.NOTE, message="Released: the message is on its way "
                                                  f"to {claims.recipient}."))

    def _link_show(self, ctx: _Ctx, token: str) -> Response:
        claims, record, refused = self._claims(ctx, token, "show")
        if refused is not None:
            return refused
        return self._page(ctx, _shown(record.subject) or "(no subject)",
                          self._view(record, None, t.Markup(""), claims.recipient))


def _day(text: str) -> float:
    """Midnight UTC starting the day YYYY-MM-DD; ValueError for anything else."""
    if not _DATE.match(text):
        raise ValueError(f"Dates are YYYY-MM-DD, not {text!r}.")
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%d")))


def _page_number(text: str) -> int:
    """The list page asked for: 1 for anything but a small positive number."""
    return int(text) if text.isascii() and text.isdigit() and 0 < len(text) <= 6 and int(text) > 0 else 1


def _page_link(values: dict[str, str], page: int) -> str:
    """/list with the search `values` and `page` (ASCII: web.app._NEXT takes it back after an action)."""
    query = {k: v for k, v in values.items() if v}
    if page > 1:
        query["page"] = str(page)
    return "/list" + ("?" + urllib.parse.urlencode(query) if query else "")


def _audit_link(mail_id: str, page: int) -> str:
    """/audit for one message's entries (all when mail_id is empty), at `page`."""
    query = {"mail_id": mail_id} if mail_id else {}
    if page > 1:
        query["page"] = str(page)
    return "/audit" + ("?" + urllib.parse.urlencode(query) if query else "")


def _count(first: int, shown: int, page: int, beyond: bool) -> str:
    if not shown:
        text = "No messages." if page == 1 and not beyond else "No messages on this page."
    else:
        text = f"Messages {first + 1}\u2013{first + shown}, newest first."
    if beyond:
        text += " Older messages are past the last page the list goes to: search by date to see them."
    return text


def _decoded_subject(raw: str) -> str:
    from owlery.quarantine.digest import display
    return display(raw, 1000)


def _bounded(notes: list[str]) -> list[str]:
    """The newest notes, at most NOTES_MAX (a client that POSTs and never reads a page grew its
    session by a note per id, 500 a request, without end)."""
    if len(notes) <= NOTES_MAX:
        return notes
    return ["Older notes were dropped.", *notes[-(NOTES_MAX - 1):]]


def _shown(text: str) -> str:
    """A header value for display: RFC 2047 decoded, controls and other characters that draw
    nothing as escapes (mailview.shown_name), long text as its start and its end: a From of
    "service@bank", 400 Hangul fillers and the real address showed no address when cut at its
    end (the template escapes the result)."""
    from owlery.quarantine.digest import display
    return mailview.shown_name(_OTHER_SPACES.sub(" ", display(text or "", 1_000_000)), SHOWN_MAX)
