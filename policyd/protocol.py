"""Postfix policy delegation protocol codec (SMTPD_POLICY_README), sans-I/O.

Bytes in, `PolicyRequest` values out (`RequestDecoder.feed`), and an action string in,
reply bytes out (`encode_action`). A request is `name=value` lines ended by an empty
line; the reply is exactly one `action=...` line plus an empty line. Unknown attributes
are kept but ignored by the checks; a repeated attribute keeps its last value (the
README allows either). Values are decoded as UTF-8 with surrogateescape, so raw 8-bit
local parts (SMTPUTF8 or broken clients) survive unchanged into logs and lookups.
Limits (line length, attributes per request) come from settings; going over one, a
line without `=`, a NUL, a numeric attribute (NUMERIC_ATTRIBUTES) that is not empty or
1 to 20 ASCII digits, or a request that is not `smtpd_access_policy` raises
`ProtocolError`, after which the adapter logs and closes the connection.

Why refuse a bad number rather than read it as 0: Postfix writes these attributes from
its own integers (and its smtpd already refuses a SIZE= that is not ASCII digits with
501 5.5.4), so a request with `size=²` or `size=١٢` does not come from Postfix's
policy client. Reading it as 0 would quietly wave the message past the quota check;
closing the connection makes a real Postfix client apply its own rule for a policy
server that fails (a 4xx, the message is retried), so nothing is lost. Only ASCII
0-9 count: str.isdigit() takes superscripts and other scripts' digits.
Talks to: nothing. Tests: tests/policyd/test_protocol.py, tests/policyd/test_protocol_hostile.py
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

# Every attribute Postfix sends up to 3.8 (and 3.12's tls_sni), by the version that added it.
KNOWN_ATTRIBUTES = frozenset({
    # 2.1
    "request", "protocol_state", "protocol_name", "helo_name", "queue_id", "sender",
    "recipient", "recipient_count", "client_address", "client_name", "reverse_client_name",
    "instance",
    # 2.2
    "sasl_method", "sasl_username", "sasl_sender", "size", "ccert_subject", "ccert_issuer",
    "ccert_fingerprint",
    # 2.3
    "encryption_protocol", "encryption_cipher", "encryption_keysize", "etrn_domain",
    # 2.5 / 2.9 / 3.0 / 3.1 / 3.2
    "stress", "ccert_pubkey_fingerprint", "client_port", "policy_context",
    "server_address", "server_port",
    # 3.8 / 3.12
    "compatibility_level", "mail_version", "tls_sni",
})

PROTOCOL_STATES = frozenset({"CONNECT", "EHLO", "HELO", "MAIL", "RCPT", "DATA",
                             "END-OF-MESSAGE", "VRFY", "ETRN"})

REQUEST_TYPE = "smtpd_access_policy"


class ProtocolError(Exception):
    """Input that breaks the protocol or a limit; the connection must be closed without a reply."""


# Attributes Postfix always sends as a decimal integer (empty when it has none). The ports
# are not here: Postfix sends client_port=unknown when it does not know it.
NUMERIC_ATTRIBUTES = ("size", "recipient_count", "encryption_keysize")
_NUMBER_DIGITS_MAX = 20          # 2**64 has 20 digits; int() refuses far longer literals anyway


def is_number(value: str) -> bool:
    """True for 1 to 20 ASCII digits, nothing else (not "²", not "١٢", not " 1", not "+1")."""
    return 0 < len(value) <= _NUMBER_DIGITS_MAX and value.isascii() and value.isdigit()


def _int_attr(value: str) -> int:
    # Postfix sends digits; an absent value arrives as absent, empty or 0 alike. A request
    # from the decoder has had its numbers checked; one built by hand reads as 0.
    return int(value) if is_number(value) else 0


class PolicyRequest(Mapping[str, str]):
    """One policy request: a read-only mapping of attribute name to value, plus typed accessors.

    Missing attributes read as "" (Postfix's "absent", `name=` and `name=0` all mean no
    value). `memo` is scratch space for the checks of this one request (e.g. a directory
    answer one check found and the next reuses); it is not part of the request.
    """

    __slots__ = ("_attrs", "memo")

    def __init__(self, attrs: Mapping[str, str]):
        self._attrs = dict(attrs)
        self.memo: dict = {}

    def __getitem__(self, name: str) -> str:
        return self._attrs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._attrs)

    def __len__(self) -> int:
        return len(self._attrs)

    def __repr__(self) -> str:
        return f"PolicyRequest({self._attrs!r})"

    def attr(self, name: str) -> str:
        return self._attrs.get(name, "")

    @property
    def protocol_state(self) -> str:
        return self._attrs.get("protocol_state", "").upper()

    @property
    def sender(self) -> str:
        return self._attrs.get("sender", "")

    @property
    def recipient(self) -> str:
        return self._attrs.get("recipient", "")

    @property
    def instance(self) -> str:
        return self._attrs.get("instance", "")

    @property
    def queue_id(self) -> str:
        return self._attrs.get("queue_id", "")

    @property
    def client_address(self) -> str:
        return self._attrs.get("client_address", "")

    @property
    def client_name(self) -> str:
        return self._attrs.get("client_name", "")

    @property
    def sasl_username(self) -> str:
        return self._attrs.get("sasl_username", "")

    @property
    def size(self) -> int:
        """MAIL FROM SIZE= before END-OF-MESSAGE (0 when not given), the real size at it."""
        return _int_attr(self.attr("size"))

    @property
    def recipient_count(self) -> int:
        """Accepted recipients; non-zero only at DATA and END-OF-MESSAGE."""
        return _int_attr(self.attr("recipient_count"))

    def log_head(self) -> str:
        """`RCPT from host[addr]`, as Postfix writes the start of a reject line."""
        name = self.client_name or "unknown"
        return f"{self.protocol_state or '?'} from {name}[{self.client_address or '?'}]"


class RequestDecoder:
    """Incremental decoder: feed bytes, get complete requests.

    A request ends at an empty line. Lines end with LF (a CR before it is dropped, for
    hand-typed tests). After a ProtocolError the decoder is unusable: close the connection.
    """

    def __init__(self, *, line_length_max: int, attributes_max: int):
        self.line_length_max = line_length_max
        self.attributes_max = attributes_max
        self._buffer = bytearray()
        self._attrs: dict[str, str] = {}
        self._count = 0
        self.failed = False

    @property
    def pending(self) -> bool:
        """True while a request has started but not ended (data waiting for its empty line)."""
        return bool(self._buffer) or self._count > 0

    def feed(self, data: bytes) -> list[PolicyRequest]:
        if self.failed:
            raise ProtocolError("decoder already failed")
        self._buffer += data
        buf = self._buffer
        try:
            out, start = self._blocks(buf) if self._count == 0 and b"\r" not in buf else ([], 0)
            if self._count or len(buf) - start > self.line_length_max or b"\r" in buf:
                start = self._lines(buf, start, out)
        except ProtocolError:
            self.failed = True
            raise
        del buf[:start]
        return out

    def _blocks(self, buf: bytearray) -> tuple[list[PolicyRequest], int]:
        """Fast path: whole requests (ended by an empty line) split in one go, no per-line loop.

        Used when no request is half-parsed and the buffer has no CR; what is left (a
        partial request) stays in the buffer, or goes to `_lines` when it grows long.
        """
        out: list[PolicyRequest] = []
        start = 0
        while True:
            if buf[start:start + 1] == b"\n":
                raise ProtocolError("empty request")
            end = buf.find(b"\n\n", start)
            if end < 0:
                return out, start
            block = bytes(buf[start:end])
            start = end + 2
            lines = block.decode("utf-8", "surrogateescape").split("\n")
            if len(block) > self.line_length_max and max(map(len, block.split(b"\n"))) > self.line_length_max:
                raise ProtocolError(f"line longer than {self.line_length_max} bytes")
            if len(lines) > self.attributes_max:
                raise ProtocolError(f"more than {self.attributes_max} attributes in one request")
            pairs = [line.split("=", 1) for line in lines]
            for pair in pairs:
                if len(pair) != 2:
                    raise ProtocolError("attribute line without '='")
                if not pair[0]:
                    raise ProtocolError("attribute with an empty name")
            if b"\0" in block:
                raise ProtocolError("NUL byte in attribute")
            out.append(self._request(dict(pairs)))

    def _lines(self, buf: bytearray, start: int, out: list[PolicyRequest]) -> int:
        """Line-at-a-time path: CRLF input, long partial requests, a request split across feeds."""
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            line = bytes(buf[start:end])
            start = end + 1
            if len(line) > self.line_length_max:
                raise ProtocolError(f"line longer than {self.line_length_max} bytes")
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._count == 0:
                    raise ProtocolError("empty request")
                out.append(self._finish())
                continue
            self._add(line)
        if len(buf) - start > self.line_length_max:
            raise ProtocolError(f"line longer than {self.line_length_max} bytes")
        return start

    def _add(self, line: bytes) -> None:
        name, sep, value = line.partition(b"=")
        if not sep:
            raise ProtocolError("attribute line without '='")
        if not name:
            raise ProtocolError("attribute with an empty name")
        if b"\0" in line:
            raise ProtocolError("NUL byte in attribute")
        self._count += 1
        if self._count > self.attributes_max:
            raise ProtocolError(f"more than {self.attributes_max} attributes in one request")
        self._attrs[name.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")

    def _finish(self) -> PolicyRequest:
        attrs, self._attrs, self._count = self._attrs, {}, 0
        return self._request(attrs)

    @staticmethod
    def _request(attrs: dict[str, str]) -> PolicyRequest:
        kind = attrs.get("request")
        if kind != REQUEST_TYPE:
            raise ProtocolError(f"request={kind!r}, expected {REQUEST_TYPE}"
                                if kind is not None else "request without request= attribute")
        for name in NUMERIC_ATTRIBUTES:
            value = attrs.get(name)
            if value and not is_number(value):
                raise ProtocolError(f"{name}={value[:40]!r} is not a decimal number")
        req = PolicyRequest.__new__(PolicyRequest)   # the dict is ours: no copy
        req._attrs = attrs
        req.memo = {}
        return req


def encode_action(action: str) -> bytes:
    """The reply for one request: `action=<action>` LF LF. Refuses text that would break framing."""
    if not action or "\n" in action or "\r" in action or "\0" in action:
        raise ValueError(f"action {action!r} is empty or contains a line break or NUL")
    return b"action=" + action.encode("utf-8", "surrogateescape") + b"\n\n"


def encode_request(attrs: Mapping[str, str]) -> bytes:
    """A request as Postfix writes it (for tests, the benchmark and `owlery policyd` clients)."""
    lines = []
    if "request" not in attrs:
        lines.append(b"request=" + REQUEST_TYPE.encode())
    for name, value in attrs.items():
        lines.append(name.encode("utf-8", "surrogateescape") + b"=" + str(value).encode("utf-8", "surrogateescape"))
    return b"\n".join(lines) + b"\n\n"
