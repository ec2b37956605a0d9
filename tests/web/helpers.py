"""A WebApp over a real directory store, a fake directory and a fake Postfix, and a cookie-keeping client."""

from __future__ import annotations

import html
import re

from owlery.quarantine import QuarantineRecord, RecipientState, new_id
from owlery.quarantine.directory import DirectoryStore
from owlery.quarantine.release import ReleaseResult
from owlery.settings import Settings
from web.app import WebApp
from web.backend import WebBackend
from web.http import Request
from web.settings import WebConfig

NOW = 1_800_000_000.0
KEY = b"k" * 32
PASSWORDS = {"alice@example.test": "alice-pw", "bob@example.test": "bob-pw", "admin@example.test": "admin-pw"}


class FakeAuth:
    def __init__(self):
        self.calls = 0

    def authenticate(self, username, password):
        self.calls += 1
        return username.lower() if PASSWORDS.get(username.lower()) == password else None


class FakePostfix:
    def __init__(self):
        self.sent = []

    def __call__(self, settings, sender, recipients, data):
        self.sent.append((sender, tuple(recipients), data))
        return ReleaseResult(tuple(recipients), {})


def make_record(rcpts=("alice@example.test",), subject="Hello", **kw):
    values = dict(mail_id=new_id(), secret_id=new_id(), created=NOW - 3600, reason="spam", detail="score 12.5",
                  sender="src@sender.test", recipients=tuple(RecipientState(r) for r in rcpts), size=42,
                  queue_id="4F3A21C", client_addr="192.0.2.7", client_name="mx.sender.test",
                  helo="mx.sender.test", host="mx1", subject=subject, header_from="Src <src@sender.test>",
                  message_id="<1@sender.test>", score=12.5, symbols=(("GTUBE", 1000.0, "spamd"),))
    values.update(kw)
    return QuarantineRecord(**values)


def plain_message(subject="Hello", body="hello there\r\n"):
    return (f"From: src@sender.test\r\nTo: alice@example.test\r\nSubject: {subject}\r\n\r\n{body}").encode()


class World:
    def __init__(self, tmp_path, *, config=None, key=KEY, store=None):
        self.store = store or DirectoryStore(str(tmp_path / "q"), timeout=5)
        self.auth = FakeAuth()
        self.postfix = FakePostfix()
        self.clock = [NOW]
        self.backend = WebBackend(Settings(), store=self.store, authenticator=self.auth, sender=self.postfix,
                               token_key=key)
        self.app = WebApp(config or WebConfig(admins=frozenset({"admin@example.test"})), self.backend,
                          clock=lambda: self.clock[0])

    def put(self, record, message=None):
        self.store.put(record, message or plain_message(record.subject))
        return record

    def client(self, ip="198.51.100.1"):
        return Client(self.app, ip)


class Client:
    def __init__(self, app, ip):
        self.app, self.ip, self.cookies, self.last = app, ip, {}, None

    def request(self, method, path, form=None, query=None):
        resp = self.app.handle(Request(method, path, query=query or {}, form={k: v if isinstance(v, list) else [v]
                                                                             for k, v in (form or {}).items()},
                                       cookies=dict(self.cookies), client=self.ip))
        for name, value in resp.headers:
            if name == "Set-Cookie":
                k, _, rest = value.partition("=")
                v = rest.split(";")[0]
                if "Max-Age=0" in value:
                    self.cookies.pop(k, None)
                else:
                    self.cookies[k] = v
        self.last = resp
        return resp

    def get(self, path, **query):
        return self.request("GET", path, query={k: [v] for k, v in query.items()})

    def csrf(self, resp=None):
        body = (resp or self.last).body.decode()
        m = re.search(r'name="csrf" value="([^"]+)"', body)
        assert m, body
        return html.unescape(m.group(1))

    def post(self, path, csrf=True, **form):
        if csrf is True:
            form["csrf"] = self.csrf()
        elif csrf:
            form["csrf"] = csrf
        return self.request("POST", path, form=form)

    def login(self, user, password=None):
        self.get("/login")
        resp = self.post("/login", username=user, password=password or PASSWORDS[user])
        assert resp.status == 303 and resp.header("Location") == "/list", resp.body
        return self.get("/list")
