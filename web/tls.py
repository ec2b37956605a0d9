"""HTTPS without pyOpenSSL: the standard library's ssl over memory BIOs, under Twisted Web's HTTP channel.

Twisted's own TLS needs pyOpenSSL, which pins an older `cryptography` than Owlery uses (the
ManageSieve server solves the same problem the same way). `TLSFactory` wraps the Site's
factory: each connection's `_TLSProtocol` decrypts what arrives and hands plaintext to the
HTTP channel, and encrypts what the channel writes. The context (TLS 1.2 or later, no
renegotiation) is asked for at each connection, so a reload's new certificate applies to
new connections. A failed handshake closes the connection and logs one line.
Talks to: the transport below, the HTTP channel above. Tests: tests/web/test_service.py
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import Any

from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

log = logging.getLogger("owlery.web")


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The server context of web_tls_cert_file / web_tls_key_file, or None when no certificate is set."""
    if not cert:
        if key:
            raise ValueError("web_tls_key_file is set but web_tls_cert_file is not")
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.load_cert_chain(cert, key or None)
    return ctx


class _TLSProtocol(ProtocolWrapper):
    def __init__(self, factory: "TLSFactory", wrapped: Any):
        super().__init__(factory, wrapped)
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = factory.context().wrap_bio(self._in, self._out, server_side=True)
        self._ready = False

    def _flush(self) -> None:
        data = self._out.read()
        if data and self.transport is not None:
            self.transport.write(data)

    def dataReceived(self, data: bytes) -> None:
        self._in.write(data)
        try:
            if not self._ready:
                try:
                    self._tls.do_handshake()
                except ssl.SSLWantReadError:
                    self._flush()
                    return
                self._ready = True
            chunks = []
            while True:
                try:
                    chunk = self._tls.read(65536)
                except ssl.SSLWantReadError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        except ssl.SSLZeroReturnError:
            self._flush()
            self.transport.loseConnection()
            return
        except ssl.SSLError as e:
            log.info("web: TLS failed with %s: %s", self.transport.getPeer(), e.reason or e)
            self._flush()
            self.transport.loseConnection()
            return
        self._flush()
        if chunks and self.wrappedProtocol is not None:
            self.wrappedProtocol.dataReceived(b"".join(chunks))

    def write(self, data: bytes) -> None:
        if not data:
            return
        try:
            self._tls.write(data)
        except ssl.SSLError as e:
            log.info("web: TLS write failed: %s", e)
            self.transport.loseConnection()
            return
        self._flush()

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self.disconnecting = 1
        if self._ready:
            try:
                self._tls.unwrap()          # close_notify; the peer's answer is not awaited
            except ssl.SSLError:
                pass
            self._flush()
        self.transport.loseConnection()


class TLSFactory(WrappingFactory):
    protocol = _TLSProtocol

    def __init__(self, wrapped: Any, context: Callable[[], ssl.SSLContext]):
        super().__init__(wrapped)
        self.context = context
