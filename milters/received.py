"""The Received header Postfix will add for a message, synthesized from the milter macros.

Postfix does not hand milters its own Received line, so a scanner given the message as the
milter sees it (spamd) finds no trace of the client: SpamAssassin then reports NO_RECEIVED
and NO_RELAYS and its relay and DNSBL rules cannot fire. `received_header()` writes the
line Postfix's smtpd writes (from HELO (name [addr]), the TLS comment, by host (Postfix)
with ESMTP[S][A] id QUEUEID, for <rcpt> when there is exactly one, the date), as
spamass-milter does; the milter sends it to spamd before the message and stores it with a
quarantined copy. A pure function: macros and `now` in, bytes out.
Talks to: nothing. Tests: tests/milters/test_received_for_scanners.py
"""

from __future__ import annotations

import datetime
import email.utils
import ipaddress
from collections.abc import Mapping, Sequence

MAIL_NAME = "Postfix"          # Postfix's mail_name, the comment after the "by" host
_UNKNOWN = "unknown"           # Postfix's name for a client without a verified name


def _clean(value: str, limit: int = 255) -> str:
    """One token of the header: printable, no spaces or controls (nothing can fold or end it)."""
    return "".join(c if c.isprintable() and not c.isspace() else "?" for c in value.strip())[:limit]


def rfc_address(address: str) -> str:
    """The address as Postfix writes it between brackets: IPv6 with its "IPv6:" tag (RFC 5321)."""
    bare = address.strip().removeprefix("[").removesuffix("]")
    if bare[:5].lower() == "ipv6:":
        bare = bare[5:]
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        return _clean(bare, 64)
    return f"IPv6:{ip.compressed}" if ip.version == 6 else str(ip)


def client_label(name: str | None) -> str:
    """The client's verified name, "unknown" when it has none (Postfix gives milters "[addr]")."""
    name = (name or "").strip()
    if not name or name.startswith("[") or name.lower() == _UNKNOWN:
        return _UNKNOWN
    return _clean(name)


def protocol(macros: Mapping[str, str]) -> str:
    """ESMTP, plus S over TLS and A after SASL authentication (RFC 3848), as Postfix records it."""
    return ("ESMTP" + ("S" if macros.get("{tls_version}") else "")
            + ("A" if macros.get("{auth_authen}") else ""))


def received_header(macros: Mapping[str, str], *, client_name: str | None, client_address: str | None,
                    helo: str | None, recipients: Sequence[str], now: float) -> bytes:
    """The whole field, folded like Postfix's and ending in CRLF.

    `macros`: `j` (our host name), `i` (queue id), `{client_name}`, `{client_addr}`,
    `{tls_version}`, `{cipher}`, `{cipher_bits}`, `{auth_authen}`; the other arguments are the
    connect and HELO facts (they win over the macros). Without a client address (mail from
    the local sendmail) the line has no "from" part.
    """
    lines: list[str] = []
    address = client_address or macros.get("{client_addr}") or ""
    if address:
        name = client_label(macros.get("{client_name}") or client_name)
        greeting = _clean(helo or "") or name
        lines.append(f"from {greeting} ({name} [{rfc_address(address)}])")
        tls = _clean(macros.get("{tls_version}", ""), 64)
        if tls:
            cipher = _clean(macros.get("{cipher}", ""), 128) or _UNKNOWN
            bits = macros.get("{cipher_bits}", "").strip()
            strength = f" ({bits}/{bits} bits)" if bits.isascii() and bits.isdigit() else ""
            lines.append(f"(using {tls} with cipher {cipher}{strength})")
    by = f"by {_clean(macros.get('j', '')) or 'localhost'} ({MAIL_NAME})"
    if address:
        by += f" with {protocol(macros)}"
    queue_id = _clean(macros.get("i", ""), 64)
    if queue_id:
        by += f" id {queue_id}"
    date = email.utils.format_datetime(datetime.datetime.fromtimestamp(now, datetime.timezone.utc))
    distinct = list(dict.fromkeys(recipients))
    if len(distinct) == 1:
        lines.append(by)
        lines.append(f"for <{_clean(distinct[0], 512)}>; {date}")
    else:
        lines.append(by + ";")
        lines.append(date)
    return ("Received: " + "\r\n\t".join(lines) + "\r\n").encode("utf-8")
