"""SMTP replies as validated values: `Reply(450, "4.7.1", "Greylisted, try again later")`.

A Reply refuses a DSN class that disagrees with its code, control or non-ASCII
characters, and a line longer than SMTP allows (RFC 5321 4.5.3.1.5: 512 octets with
CRLF). Products keep their named replies in one catalogue each.
Tests: tests/core/test_reply.py
"""

from __future__ import annotations

from owlery.record import Record

MAX_REPLY_LINE = 510  # 512 octets less CRLF


class Reply(Record, frozen=True):
    code: int
    dsn: str
    text: str

    def __post_init__(self) -> None:
        if isinstance(self.code, bool) or not isinstance(self.code, int) or not 200 <= self.code <= 599 \
                or self.code // 100 == 3:
            raise ValueError(f"reply code {self.code!r} is not a 2xx, 4xx or 5xx SMTP code")
        # class.subject.detail (RFC 3463 2): ASCII digits only, nothing after (a regex's `$`
        # would let "5.1.1\n" through into the reply line)
        parts = self.dsn.split(".") if isinstance(self.dsn, str) else ()
        if len(parts) != 3 or parts[0] not in ("2", "4", "5") \
                or not all(0 < len(p) <= 3 and p.isascii() and p.isdigit() for p in parts[1:]):
            raise ValueError(f"enhanced status code {self.dsn!r} is not class.subject.detail")
        if int(parts[0]) != self.code // 100:
            raise ValueError(f"enhanced status class {parts[0]} disagrees with reply code {self.code}")
        if not isinstance(self.text, str):
            raise ValueError("reply text must be a string")
        if not (self.text.isascii() and self.text.isprintable()):      # = every character in " ".."~"
            bad = next(c for c in self.text if not " " <= c <= "~")
            raise ValueError(f"reply text contains a non-printable or non-ASCII character {bad!r}")
        if len(str(self)) > MAX_REPLY_LINE:
            raise ValueError(f"reply is {len(str(self))} characters; SMTP allows {MAX_REPLY_LINE}")

    def __str__(self) -> str:
        return f"{self.code} {self.dsn} {self.text}".rstrip()

    @property
    def is_temporary(self) -> bool:
        return self.code // 100 == 4

    @property
    def is_permanent(self) -> bool:
        return self.code // 100 == 5

    def with_text(self, text: str) -> "Reply":
        return Reply(self.code, self.dsn, text)

    @classmethod
    def safe_text(cls, text: str, limit: int = 400) -> str:
        """Make arbitrary text (e.g. from a remote server) fit a reply: printable ASCII, bounded."""
        text = text[:limit]
        if text.isascii() and text.isprintable():     # the usual case, checked in C
            return text
        return "".join(c if " " <= c <= "~" else "?" for c in text)
