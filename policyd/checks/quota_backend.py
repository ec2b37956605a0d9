"""Asking a mailbox's back end whether it is over quota: the relay side of the quota check.

On a relay the Maildirs are on the back ends, so the quota check (policyd/checks/quota.py)
asks the back end named by the mailbox's `mail_host` one Postfix policy request over TCP, to
the endpoint `quota_backend_endpoint` makes of it (e.g. `tcp:{host}:10040`): the back end's
policyd running the quota check, or Dovecot's quota-status service, which speaks the same
protocol. The request is the relay's own request with `recipient` set to the mailbox address,
`protocol_state=RCPT` (the size attribute carries the SIZE= hint or the real size), and
`policy_context=owlery-quota-query`, which makes an Owlery back end answer from its own
Maildirs and never ask further (no loops between misconfigured hosts).

Sans-I/O parts: `query_bytes` (the request), `ReplyReader` (bytes in, action texts out, with a
length limit) and `classify` (an action text to ok / refuse / unknown). `BackendClient` is the
Twisted adapter: it connects (HostnameEndpoint: host names are resolved by the reactor), keeps
up to `idle_max` idle connections per back end for reuse (a reused connection the back end
has closed meanwhile is retried once on a fresh one), and never decides anything.
Talks to: back-end policy services over TCP. Tests: tests/policyd/test_quota_backend.py (codec,
classification, the check against fakes, a fake back end on loopback),
tests/policyd/test_quota_relay_backend.py (two real policyd processes).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import logging
import re
from typing import Any, Literal

from owlery.reply import Reply
from policyd import actions
from policyd.actions import PolicyAction
from policyd.protocol import PolicyRequest, encode_request

log = logging.getLogger("owlery.policyd")

QUERY_CONTEXT = "owlery-quota-query"      # policy_context of a relay's question to a back end
REPLY_LENGTH_MAX = 1024                   # a reply line longer than this is not a policy server's
# What the relay passes on from its own request (the back end logs them; Dovecot reads size).
_PASSED = ("protocol_name", "queue_id", "sender", "client_address", "client_name", "instance", "size")
_NUMERIC_RE = re.compile(r"^([245])(\d\d)(?:\s+([245]\.\d{1,3}\.\d{1,3}))?(?:\s+(.*))?$", re.S)
_PASSING = frozenset({"DUNNO", "OK", "PREPEND", "WARN", "INFO", "FILTER", "BCC", "HOLD", "REDIRECT", "DISCARD"})


class BackendError(Exception):
    """The back end could not be asked or gave no usable answer (the check treats it as unknown)."""


def endpoint_for(template: str, host: str) -> tuple[str, int]:
    """(host, port) from a template such as `tcp:{host}:10040` and a normalised mail_host.

    Raises ValueError for a template that is not tcp:HOST:PORT with {host} in it.
    """
    kind, sep, rest = template.partition(":")
    if kind != "tcp" or not sep or "{host}" not in rest:
        raise ValueError(f"quota_backend_endpoint {template!r} must look like tcp:{{host}}:PORT")
    target, _, port = rest.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"quota_backend_endpoint {template!r}: bad port {port!r}")
    name = target.replace("{host}", host)
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name, int(port)


def query_bytes(request: PolicyRequest, mailbox: str) -> bytes:
    """The policy request asking about one mailbox (see the module docstring)."""
    attrs = {"request": "smtpd_access_policy", "protocol_state": "RCPT"}
    for name in _PASSED:
        value = request.attr(name)
        if value:
            attrs[name] = value
    attrs["size"] = str(request.size)
    attrs["recipient"] = mailbox
    attrs["policy_context"] = QUERY_CONTEXT
    for value in attrs.values():
        if "\n" in value or "\0" in value:
            raise ValueError("attribute with a line break or NUL")
    return encode_request(attrs)


class ReplyReader:
    """Incremental reader of policy replies: feed bytes, get the text after `action=` of each."""

    def __init__(self, length_max: int = REPLY_LENGTH_MAX):
        self.length_max = length_max
        self._buffer = b""

    def feed(self, data: bytes) -> list[str]:
        self._buffer += data
        out = []
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                if len(self._buffer) > self.length_max:
                    raise BackendError(f"reply longer than {self.length_max} bytes")
                return out
            block, self._buffer = self._buffer[:end], self._buffer[end + 2:]
            if len(block) > self.length_max:
                raise BackendError(f"reply longer than {self.length_max} bytes")
            lines = block.decode("utf-8", "replace").replace("\r", "").split("\n")
            action = None
            for line in lines:
                name, sep, value = line.partition("=")
                if not sep:
                    raise BackendError(f"reply line without '=': {line[:80]!r}")
                if name == "action":
                    action = value
            if action is None:
                raise BackendError("reply without action=")
            out.append(action)


@dataclasses.dataclass(frozen=True)
class BackendAnswer:
    """What a back end said about one mailbox.

    `kind`: "ok" (not full: DUNNO and the other passing actions), "refuse" (a 4xx/5xx reply,
    REJECT or DEFER: `action` is what the relay answers for it), "unknown" (the back end could
    not tell, DEFER_IF_PERMIT, or could not be asked). `detail` is for the log line.
    """

    kind: Literal["ok", "refuse", "unknown"]
    action: PolicyAction | None = None
    detail: str = ""


def classify(text: str) -> BackendAnswer:
    """One action text from a back end, read as Postfix would read it (access(5))."""
    text = text.strip()
    verb, _, rest = text.partition(" ")
    upper = verb.upper()
    if upper in _PASSING:
        return BackendAnswer("ok", detail=upper)
    m = _NUMERIC_RE.match(text)
    try:
        if m:
            code = int(m.group(1) + m.group(2))
            dsn = m.group(3) or f"{m.group(1)}.0.0"
            reply = Reply(code, dsn, _clean(m.group(4) or ""))
            return BackendAnswer("refuse", actions.reject(reply), str(reply))
        if upper == "REJECT":        # Postfix: $access_map_reject_code, 554 5.7.1
            reply = Reply(554, "5.7.1", _clean(rest) or "Rejected by the mailbox's server")
            return BackendAnswer("refuse", actions.reject(reply), str(reply))
        if upper == "DEFER":         # Postfix: $access_map_defer_code, 450 4.7.1
            reply = Reply(450, "4.7.1", _clean(rest) or "Try again later")
            return BackendAnswer("refuse", actions.defer(reply), str(reply))
        if upper in ("DEFER_IF_PERMIT", "DEFER_IF_REJECT"):
            return BackendAnswer("unknown", detail=text[:120])
    except ValueError as e:          # a code or DSN Reply refuses (3xx, class mismatch, junk)
        return BackendAnswer("unknown", detail=f"unusable reply {text[:80]!r}: {e}")
    return BackendAnswer("unknown", detail=f"unknown action {text[:80]!r}")


def _clean(text: str) -> str:
    """Reply text made safe for our own reply: printable ASCII, bounded."""
    return "".join(c if " " <= c <= "~" else "?" for c in text.strip())[:400]


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class BackendClient:
    """Twisted adapter: one question per connection at a time, idle connections kept for reuse."""

    def __init__(self, reactor: Any, idle_max: int):
        self.reactor = reactor
        self.idle_max = idle_max
        self._idle: dict[tuple[str, int], list[Any]] = {}

    async def ask(self, host: str, port: int, payload: bytes, timeout: float) -> str:
        """The action text the back end answers; BackendError (or a Twisted error) when it cannot.

        The caller puts its own timeout around the whole question; `timeout` bounds the connect.
        """
        from twisted.internet import error
        key = (host, port)
        idle = self._idle.get(key)
        while idle:
            proto = idle.pop()
            if not proto.usable():
                continue
            try:
                return await proto.ask(payload)
            except error.ConnectionClosed:
                break        # closed by the back end while idle: once more on a fresh connection
        try:
            proto = await self._connect(host, port, timeout)
            return await proto.ask(payload)
        except (error.ConnectError, error.ConnectionClosed, OSError) as e:
            # refused, unreachable, name not found, closed without an answer: all "could not ask"
            raise BackendError(f"{host}:{port}: {e.__class__.__name__}: {e}") from None

    async def _connect(self, host: str, port: int, timeout: float) -> Any:
        from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
        from twisted.internet.protocol import Factory
        if is_ip(host):
            cls = TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint
            endpoint = cls(self.reactor, host, port, timeout=max(1, int(timeout)))
        else:
            endpoint = HostnameEndpoint(self.reactor, host, port, timeout=max(1.0, timeout))
        cls = _protocol_class()
        return await endpoint.connect(Factory.forProtocol(lambda: cls(self, (host, port))))

    def _release(self, proto: "_QueryProtocol") -> None:
        idle = self._idle.setdefault(proto.key, [])
        if len(idle) < self.idle_max:
            idle.append(proto)
        else:
            proto.transport.loseConnection()

    def _forget(self, proto: "_QueryProtocol") -> None:
        idle = self._idle.get(proto.key)
        if idle and proto in idle:
            idle.remove(proto)

    def close(self) -> None:
        for idle in self._idle.values():
            for proto in idle:
                proto.transport.loseConnection()
        self._idle.clear()


@functools.cache
def _protocol_class() -> type:
    """_QueryProtocol as a Twisted Protocol, made on first use (no Twisted import for settings)."""
    from twisted.internet.protocol import Protocol
    return type("QueryProtocol", (_QueryProtocol, Protocol), {})


class _QueryProtocol:
    """One connection to a back end: one question, one answer, then back to the client's pool."""

    transport: Any = None

    def __init__(self, client: BackendClient, key: tuple[str, int]):
        self.client = client
        self.key = key
        self.reader = ReplyReader()
        self.waiting: Any = None
        self.lost = False

    def usable(self) -> bool:
        return not self.lost and self.waiting is None and self.transport is not None \
            and not getattr(self.transport, "disconnecting", False)

    def ask(self, payload: bytes) -> Any:
        from twisted.internet import defer

        def cancel(_: Any) -> None:
            self.waiting = None
            self.transport.abortConnection()
        self.waiting = defer.Deferred(cancel)
        self.transport.write(payload)
        return self.waiting

    def dataReceived(self, data: bytes) -> None:
        try:
            answers = self.reader.feed(data)
        except BackendError as e:
            self._fail(e)
            return
        if not answers:
            return
        d, self.waiting = self.waiting, None
        if d is None or len(answers) > 1:
            self._fail(BackendError("reply without a question"), d)
            return
        self.client._release(self)
        d.callback(answers[0])

    def _fail(self, error: Exception, d: Any = None) -> None:
        d = d if d is not None else self.waiting
        self.waiting = None
        self.transport.abortConnection()
        if d is not None and not d.called:
            d.errback(error)

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True
        self.client._forget(self)
        d, self.waiting = self.waiting, None
        if d is not None and not d.called:
            d.errback(reason)
