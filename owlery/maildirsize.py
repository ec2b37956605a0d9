"""Maildir++ `maildirsize` reader: the quota definition and the summed usage, tolerant of junk.

The file (what Dovecot and our LDA maintain) is a definition line such as
"1000000S,1000C" (bytes S, messages C, either may be absent) followed by
"<bytes> <messages>" lines; usage is the sum of those lines (negative deltas
included). This reader never raises on bad content: a policy check must not refuse
mail because a file is odd, so unreadable lines are skipped and counted in `bad_lines`.
The strict reader/writer used when delivering is owlery.maildir.
Talks to: the file system (read only). Tests: tests/directory/test_maildirsize.py
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


def parse_definition(line: str) -> tuple[int | None, int | None]:
    """(bytes, messages) from "1000000S,1000C"; a 0 or absent part means no limit."""
    size = count = None
    for part in line.strip().split(","):
        part = part.strip()
        if len(part) > 1 and part[:-1].isdigit():
            if part[-1] == "S":
                size = int(part[:-1]) or None
            elif part[-1] == "C":
                count = int(part[:-1]) or None
    return size, count


def parse(text: str) -> MaildirSize:
    lines = text.splitlines()
    if not lines:
        return MaildirSize(None, None, 0, 0)
    size, count = parse_definition(lines[0])
    used_b = used_m = bad = 0
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
    return MaildirSize(size, count, max(used_b, 0), max(used_m, 0), bad)


def read(maildir: str) -> MaildirSize | None:
    """The maildirsize of a Maildir, or None when it has none (not created yet: usage unknown)."""
    try:
        with open(os.path.join(maildir, "maildirsize"), "rb") as f:
            data = f.read(MAILDIRSIZE_READ_MAX)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return parse(data.decode("ascii", "replace"))
