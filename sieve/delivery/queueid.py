"""The Postfix queue id of a message, from its topmost Received header Postfix added.

It keys lmtpd's and the LDA's log lines. A module of its own, standard library only, so
the in-process LDA reads it without loading the LMTP machine (sieve.delivery.lmtp, which
re-exports it, with its dataclasses and email.utils).
Talks to: nothing. Tests: tests/delivery/test_queueid.py, tests/delivery/test_lmtp.py, tests/fuzz/test_lmtp.py
"""

from __future__ import annotations

HEADER_SCAN_LIMIT = 65536     # bytes of header looked at for the queue id
_QUEUE_ID_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

# The two searches below are written out by hand, not as regular expressions: every message
# Postfix hands the in-process LDA has such a Received field, and `re` (with enum and
# functools) would cost that run ~20 M instructions. They find what these patterns find, with
# re's Unicode \s, \S and \b (tests/delivery/test_queueid.py compares them on generated text):
#   by:  \bby\s+\S+\s+\(Postfix\b[^)]*\)      (its end)
#   id:  \bid\s+([0-9A-Za-z]{5,32})\b          (searched from there; the id)


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"


def _starts_word(text: str, i: int) -> bool:
    return i == 0 or not _is_word(text[i - 1])


def _spaces_end(text: str, i: int) -> int:
    """Where the run of white space at i ends (i itself when there is none)."""
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _postfix_by_end(value: str) -> int:
    """The end of the first `by HOST (Postfix...)` in a Received value, or -1."""
    at = value.find("by")
    while at >= 0:
        if _starts_word(value, at):
            i = _spaces_end(value, at + 2)
            if i > at + 2:
                host = i
                while i < len(value) and not value[i].isspace():
                    i += 1
                j = _spaces_end(value, i)
                if i > host and j > i and value.startswith("(Postfix", j):
                    k = j + 8
                    close = value.find(")", k)
                    if close >= 0 and (k == len(value) or not _is_word(value[k])):
                        return close + 1
        at = value.find("by", at + 1)
    return -1


def _queue_id_after(value: str, start: int) -> str | None:
    """The id of the first `id QUEUEID` at or after start (5 to 32 letters and digits that end
    a word), or None."""
    at = value.find("id", start)
    while at >= 0:
        if _starts_word(value, at):
            i = _spaces_end(value, at + 2)
            if i > at + 2:
                j = i
                while j < len(value) and value[j] in _QUEUE_ID_CHARS:
                    j += 1
                if 5 <= j - i <= 32 and (j == len(value) or not _is_word(value[j])):
                    return value[i:j]
        at = value.find("id", at + 1)
    return None


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
        end = _postfix_by_end(value)
        if end >= 0:
            return _queue_id_after(value, end)
    return None
