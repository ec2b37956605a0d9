"""Twisted Web adapter of `owlery web`: HTTP(S) in, the core's Response out; decides nothing.

One leaf resource takes every request, turns it into a web.http.Request (the peer address and
scheme after web_trusted_proxies, the form body, at most web.http.MAX_FORM_BYTES) and runs
WebApp.handle in a bounded thread pool (web_threads: password checks, the store and releases
block), then writes the status, headers and body, counted by route name and status in the
metrics (web_metrics_listen). A request whose client went away is not written to. HTTPS, when
web_tls_cert_file is set, is web/tls.py. HTTP/1.1 itself is owlery.bounded_http's site: request
line, header block and body bounded, a whole request within web_request_timeout, connections
within web_max_connections and web_max_connections_per_client. `build()` is what owlery.daemon.run calls; `reload()`
takes new settings (sessions survive; a bad certificate keeps the old one).
SECURITY: listens on loopback by default (a reverse proxy in front); runs as daemon_user, who
must be able to read the quarantine store and the token key.
Talks to: the reactor, a thread pool, the core. Tests: tests/web/test_service.py,
tests/e2e/test_web_browser.py, tests/e2e/test_metrics_more_e2e.py, tests/core/test_http_hostile_s21.py
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any

from twisted.web import resource, server

from owlery import metrics
from owlery.bounded_http import BoundedSite, HttpLimits
from web.app import WebApp, route_name
from web.http import MAX_FORM_BYTES, Request, Response, client_address, parse_cookies, parse_form, parse_qs
from web.settings import WebConfig
from web.tls import TLSFactory, tls_context

log = logging.getLogger("owlery.web")


def _header(request: Any, name: bytes) -> str | None:
    value = request.getHeader(name)
    return None if value is None else value.decode("latin-1")


class _Everything(resource.Resource):
    isLeaf = True

    def __init__(self, web: "WebApplication"):
        super().__init__()
        self.web = web

    def render(self, request: Any) -> Any:
        gone: list[bool] = []
        request.notifyFinish().addBoth(lambda _: gone.append(True))
        try:
            core = self.web.to_core(request)
        except ValueError as e:
            self._write(request, Response(413 if "large" in str(e) else 400, str(e).encode(), "text/plain"), gone)
            return server.NOT_DONE_YET
        d = self.web.in_thread(self.web.app.handle, core)
        d.addCallback(lambda resp: self._write(request, resp, gone))
        d.addErrback(self._failed, request, gone)
        return server.NOT_DONE_YET

    def _failed(self, failure: Any, request: Any, gone: list[bool]) -> None:
        route = route_name(urllib.parse.unquote(request.path.decode("latin-1")))   # never the path: it may be a token
        log.error("web: internal error on route=%s: %s", route, failure.getTraceback())
        self._write(request, Response(500, b"Internal error", "text/plain; charset=utf-8"), gone)

    def _write(self, request: Any, resp: Response, gone: list[bool]) -> None:
        metrics.WEB_REQUESTS.labels(route_name(urllib.parse.unquote(request.path.decode("latin-1"))), resp.status).inc()
        if gone:
            return
        request.setResponseCode(resp.status)
        request.responseHeaders.setRawHeaders(b"server", [b"Owlery"])
        for name, value in resp.all_headers():
            request.responseHeaders.addRawHeader(name.encode("latin-1"), value.encode("latin-1"))
        request.setHeader(b"content-length", str(len(resp.body)).encode())
        request.write(resp.body)
        request.finish()


class WebApplication:
    """What owlery.daemon.run drives: the factory, reload and close."""

    def __init__(self, settings: Any, reactor: Any, *, backend: Any = None, threadpool: Any = None):
        from twisted.python.threadpool import ThreadPool
        self.reactor = reactor
        self.tls = tls_context(settings.web_tls_cert_file, settings.web_tls_key_file)
        if backend is None:
            from web.backend import WebBackend
            backend = WebBackend.from_settings(settings)
        self.app = WebApp(WebConfig.from_settings(settings), backend)
        self._own_pool = threadpool is None
        if threadpool is None:
            threadpool = ThreadPool(minthreads=1, maxthreads=settings.web_threads, name="web")
            threadpool.start()
        self.threadpool = threadpool
        # the core logs one line per decision; the site no access log (a link's path is a token)
        self.site = BoundedSite(_Everything(self), self._limits(settings), "web", reactor=reactor)
        self.factory = TLSFactory(self.site, lambda: self.tls) if self.tls is not None else self.site
        if self.tls is None and settings.web_tls_key_file:
            raise ValueError("web_tls_key_file is set but web_tls_cert_file is not")

    @staticmethod
    def _limits(settings: Any) -> HttpLimits:
        """The bounds of one connection (owlery.bounded_http): a form's body, web_request_timeout,
        the connection caps; a trusted proxy speaks for everybody, so only the total counts it."""
        return HttpLimits(body_max=MAX_FORM_BYTES, request_timeout=settings.web_request_timeout,
                          connections_max=settings.web_max_connections,
                          connections_per_client_max=settings.web_max_connections_per_client,
                          shared_clients=tuple(settings.web_trusted_proxies))

    def to_core(self, request: Any) -> Request:
        """The core's view of a Twisted request; ValueError for a body it will not read."""
        peer = request.getClientAddress()
        host = getattr(peer, "host", "") or ""
        client, secure = client_address(host, _header(request, b"x-forwarded-for"),
                                        _header(request, b"x-forwarded-proto"),
                                        self.app.config.trusted_proxies, self.tls is not None)
        method = request.method.decode("ascii", "replace").upper()
        form: dict[str, list[str]] = {}
        if method == "POST":
            body = request.content.read(MAX_FORM_BYTES + 1) if request.content is not None else b""
            form = parse_form(body, _header(request, b"content-type") or "")
        uri = request.uri.decode("latin-1")
        path, _, query = uri.partition("?")
        return Request(method=method, path=urllib.parse.unquote(path, errors="replace"), query=parse_qs(query),
                       form=form, cookies=parse_cookies(_header(request, b"cookie") or ""),
                       client=client, secure=secure)

    def in_thread(self, f: Any, *args: Any) -> Any:
        from twisted.internet.threads import deferToThreadPool
        return deferToThreadPool(self.reactor, self.threadpool, f, *args)

    def reload(self, settings: Any) -> None:
        tls = tls_context(settings.web_tls_cert_file, settings.web_tls_key_file)   # a bad certificate refuses
        if (tls is None) != (self.tls is None):
            raise ValueError("switching HTTPS on or off needs a restart")
        from web.backend import WebBackend
        old = self.app.backend
        self.app.backend = WebBackend.from_settings(settings)
        self.app.config = WebConfig.from_settings(settings)
        self.site.update(self._limits(settings))
        self.tls = tls
        old.close()

    def close(self) -> None:
        self.app.backend.close()
        if self._own_pool:
            self.threadpool.stop()


def build(settings: Any, reactor: Any) -> WebApplication:
    return WebApplication(settings, reactor)
