"""Twisted Web adapter of `owlery web`: HTTP(S) in, the core's Response out; decides nothing.

One leaf resource takes every request, turns it into a web.http.Request (the peer address and
scheme after web_trusted_proxies, the form body, at most web.http.MAX_FORM_BYTES) and runs
WebApp.handle in a bounded thread pool (web_threads: password checks, the store and releases
block), then writes the status, headers and body, counted by route name and status in the
metrics (web_metrics_listen). A request whose client went away is not written to. HTTPS, when
web_tls_cert_file is set, is web/tls.py. `build()` is what owlery.daemon.run calls; `reload()`
takes new settings (sessions survive; a bad certificate keeps the old one).
SECURITY: listens on loopback by default (a reverse proxy in front); runs as daemon_user, who
must be able to read the quarantine store and the token key.
Talks to: the reactor, a thread pool, the core. Tests: tests/web/test_service.py,
tests/e2e/test_web_browser.py, tests/e2e/test_metrics_more_e2e.py
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any

from twisted.web import http, resource, server

from owlery import metrics
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
        log.error("web: internal error on %s: %s", request.path[:200], failure.getTraceback())
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


class _BoundedRequest(server.Request):
    """A request whose body may not pass MAX_FORM_BYTES. Twisted spools any body to a temporary
    file before a resource sees it (a declared Content-Length of 100 GB had 50 MB written with
    no answer); here a declared length over the bound, or chunked data growing past it, gets
    413 at once and the connection is closed, and what still arrives is dropped unread.
    Tests: tests/web/test_service.py::test_huge_body_is_refused_at_once."""

    _body_bytes = 0
    _refused = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The core parses the form itself (web.http.parse_form); Twisted's own parse of a POST
        # body raised out of the channel on a Content-Type holding \x85 or \x0b (the email
        # package's header check), and the connection was dropped with a traceback logged.
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(*args, **kwargs)

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > MAX_FORM_BYTES:
            self._refuse()
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        self._body_bytes += len(data)
        if self._body_bytes > MAX_FORM_BYTES:
            self._refuse()
        if not self._refused:
            super().handleContentChunk(data)

    def process(self) -> None:
        if not self._refused:
            super().process()

    def _refuse(self) -> None:
        if self._refused:
            return
        self._refused = True
        body = b"Request body too large.\n"
        self.channel.transport.write(
            b"HTTP/1.1 413 Content Too Large\r\nServer: Owlery\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        self.channel.transport.loseConnection()
        log.info("web: refused: body over %d bytes", MAX_FORM_BYTES)


class _DeadlineChannel(http.HTTPChannel):
    """An HTTP connection whose every request must arrive whole within `request_timeout` of its
    first byte (web_request_timeout), else the connection is closed. Twisted's own timeOut is an
    idle limit that each byte restarts. Tests: tests/web/test_service.py::test_a_slow_request_is_cut_off."""

    request_timeout = 30.0
    _deadline: Any = None

    def dataReceived(self, data: bytes) -> None:
        if self._deadline is None and not self._handlingRequest:
            self._deadline = self.callLater(self.request_timeout, self._too_slow)
        super().dataReceived(data)

    def _maybeChooseTransferDecoder(self, header: bytes, data: bytes) -> bool:
        # Twisted reads Content-Length with int(), which raises ValueError past Python's limit
        # for int() of a str (4300 digits) out of dataReceived: no answer, the connection
        # dropped, a traceback logged per request (found by tests/fuzz/test_web_http.py). A
        # length longer than the bound's digits is over the bound: _BoundedRequest answers 413.
        if header == b"Content-Length" and data.isdigit():
            data = data.lstrip(b"0") or b"0"
            if len(data) > len(str(MAX_FORM_BYTES)):
                data = b"%d" % (MAX_FORM_BYTES + 1)
        return super()._maybeChooseTransferDecoder(header, data)

    def allContentReceived(self) -> None:
        self._disarm()
        super().allContentReceived()

    def connectionLost(self, reason: Any) -> None:
        self._disarm()
        super().connectionLost(reason)

    def _disarm(self) -> None:
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        log.info("web: closing a connection from %s: no whole request within %g s",
                 getattr(self.transport.getPeer(), "host", "?"), self.request_timeout)
        self.transport.loseConnection()


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
        site = server.Site(_Everything(self))
        site.requestFactory = _BoundedRequest
        self.request_timeout = settings.web_request_timeout
        site.protocol = self._channel
        site.displayTracebacks = False
        site.log = lambda request: None          # the core logs one line per decision
        self.factory = TLSFactory(site, lambda: self.tls) if self.tls is not None else site
        if self.tls is None and settings.web_tls_key_file:
            raise ValueError("web_tls_key_file is set but web_tls_cert_file is not")

    def _channel(self) -> Any:
        """The protocol of one connection: Twisted's HTTP/1.1-or-HTTP/2 wrapper around our channel."""
        channel = _DeadlineChannel()
        channel.request_timeout = self.request_timeout
        return http._GenericHTTPChannelProtocol(channel)

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
        self.request_timeout = settings.web_request_timeout
        self.tls = tls
        old.close()

    def close(self) -> None:
        self.app.backend.close()
        if self._own_pool:
            self.threadpool.stop()


def build(settings: Any, reactor: Any) -> WebApplication:
    return WebApplication(settings, reactor)
