"""Maildir++ `maildirsize` reader (the only one): the quota definition and the summed usage, tolerant of junk.

The file (what Dovecot and our LDA maintain) is a definition line such as
"1000000S,1000C" (bytes S, messages C, either may be absent) followed by
"<bytes> <messages>" lines; usage is the sum of those lines (negative deltas
included). This reader never raises on bad content: a policy check must not refuse
mail because a file is odd, so unreadable lines (and a definition line with junk in
it) are skipped and counted in `bad_lines`, and a negative total reads as 0 with
`negative_total` set. The writer (owlery.maildir, at delivery) uses the same reader and
recalculates the file from the messages when `suspect` says it cannot be trusted.
Talks to: the file system (read only). Used by policyd.checks.quota and owlery.maildir.
Tests: tests/directory/test_cache_maildirsize.py, tests/delivery/test_maildir.py
"""

from __future__ import annotations

import dataclasses
import os

MAILDIRSIZE_READ_MAX = 1 << 20   # a maildirsize is meant to stay under 5 KiB; never read more than this


@dataclasses.dataclass(frozen=True)
class MaildirSize:
    limit_bytes: int | None      # None: no byte limit in the definition
    limit_messages: int | None
    used_bytes: int
    used_messages: int
    bad_lines: int = 0
    negative_total: bool = False    # the deltas summed below zero (clamped to 0 above)

    @property
    def suspect(self) -> bool:
        """Junk lines or a negative total: a writer should recount rather than trust it."""
        return self.bad_lines > 0 or self.negative_total


def parse_definition(line: str) -> tuple[int | None, int | None]:
    """(bytes, messages) from "1000000S,1000C"; a 0 or absent part means no limit."""
    size, count, _ = _definition(line)
    return size, count


def _definition(line: str) -> tuple[int | None, int | None, bool]:
    """(bytes, messages, had junk parts)."""
    size = count = None
    junk = False
    for part in line.strip().split(","):
        part = part.strip()
        if not part:
            continue
        if len(part) > 1 and part[:-1].isdigit() and part[-1] in "SC":
            if part[-1] == "S":
                size = int(part[:-1]) or None
            else:
                count = int(part[:-1]) or None
        else:
            junk = True
    return size, count, junk


def parse(text: str) -> MaildirSize:
    lines = text.splitlines()
    if not lines:
        return MaildirSize(None, None, 0, 0)
    size, count, junk = _definition(lines[0])
    used_b = used_m = 0
    bad = 1 if junk else 0
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 2:
                raise ValueError(line)
            b, m = int(fields[0]), int(fields[1])
        except ValueError:
            bad += 1
            continue
        used_b += b
        used_m += m
    return MaildirSize(size, count, max(used_b, 0), max(used_m, 0), bad,
                       negative_total=used_b < 0 or used_m < 0)


def read(maildir: str) -> MaildirSize | None:
    """The maildirsize of a Maildir, or None when it has none (not created yet: usage unknown)."""
    try:
        with open(os.path.join(maildir, "maildirsize"), "rb") as f:
            data = f.read(MAILDIRSIZE_READ_MAX)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return parse(data.decode("ascii", "replace"))
