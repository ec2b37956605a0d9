"""The Postfix queue id of a message, from its topmost Received header Postfix added.

It keys lmtpd's and the LDA's log lines. A module of its own, standard library `re` only, so
the in-process LDA reads it without loading the LMTP machine (sieve.delivery.lmtp, which
re-exports it, with its dataclasses and email.utils).
Talks to: nothing. Tests: tests/delivery/test_lmtp.py, tests/fuzz/test_lmtp.py
"""

from __future__ import annotations

from owlery.lazyre import lazy

_POSTFIX_BY = lazy(r"\bby\s+\S+\s+\(Postfix\b[^)]*\)")
_QUEUE_ID = lazy(r"\bid\s+([0-9A-Za-z]{5,32})\b")
HEADER_SCAN_LIMIT = 65536     # bytes of header looked at for the queue id


def postfix_queue_id(message: bytes) -> str | None:
    """The queue id from the topmost Received header that Postfix added (`by HOST (Postfix) ...
    id QUEUEID`), or None. Only the header block (bounded) is read."""
    head = message[:HEADER_SCAN_LIMIT]
    end = head.find(b"\n\n")
    if end >= 0:
        head = head[:end]
    current: list[bytes] = []
    fields: list[bytes] = []
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        if line[:1] in (b" ", b"\t") and current:
            current.append(line)
        else:
            if current:
                fields.append(b" ".join(current))
            current = [line]
    if current:
        fields.append(b" ".join(current))
    for field in fields:
        if field[:9].lower() != b"received:":
            continue
        value = field[9:].decode("ascii", "replace")
        by = _POSTFIX_BY.search(value)
        if by:
            m = _QUEUE_ID.search(value, by.end())
            return m.group(1) if m else None
    return None
