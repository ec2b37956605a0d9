"""Maildir++ `maildirsize` reader (the only one): the quota definition and the summed usage, tolerant of junk.

The file (what Dovecot and our LDA maintain) is a definition line such as
"1000000S,1000C" (bytes S, messages C, either may be absent) followed by
"<bytes> <messages>" lines; usage is the sum of those lines (negative deltas
included). This reader never raises on bad content: a policy check must not refuse
mail because a file is odd, so unreadable lines (a definition line with junk in it, an
empty or blank line, a last line without its LF, an empty file: what Dovecot's reader
also refuses to trust) are skipped and counted in `bad_lines`, and a negative total
reads as 0 with `negative_total` set. Numbers are ASCII digits only, at most 20 of them (str.isdigit and
int() also take '²', other scripts' digits, '_' and '+', and int() refuses very long
ones): anything else is junk. The writer (owlery.maildir, at delivery) uses the same
reader and recalculates the file from the messages when `suspect` says it cannot be trusted.
Talks to: the file system (read only). Used by policyd.checks.quota and owlery.maildir.
Tests: tests/directory/test_cache_maildirsize.py, tests/delivery/test_maildir.py,
tests/delivery/test_maildir_hostile.py
"""

from __future__ import annotations

import os

from owlery.record import Record, field

MAILDIRSIZE_READ_MAX = 1 << 20   # a maildirsize is meant to stay under 5 KiB; never read more than this
# Read without regular expressions: `re` (with enum and functools) would cost an in-process
# delivery more than the file's few dozen lines do.
_MAX_DIGITS = 20


def _delta(field: str) -> bool:
    """An optionally negative run of 1..20 digits; the caller has checked the line is ASCII
    (where str.isdigit means 0-9 only)."""
    digits = field[1:] if field.startswith("-") else field
    return 0 < len(digits) <= _MAX_DIGITS and digits.isdigit()


class MaildirSize(Record, frozen=True):
    limit_bytes: int | None      # None: no byte limit in the definition
    limit_messages: int | None
    used_bytes: int
    used_messages: int
    bad_lines: int = 0
    negative_total: bool = False    # the deltas summed below zero (clamped to 0 above)
    # "<bytes> <count>" lines read (Maildir++: over quota with more than one, recount), and the
    # file's mtime when read() read it: what a reader needs to know whether to trust a full file.
    delta_lines: int = field(default=0, compare=False)
    mtime: float | None = field(default=None, compare=False)

    def recount_when_full(self, now: float, age: float) -> bool:
        """Maildir++ (README.maildirquota; Courier, Dovecot): a file saying the mailbox is full is
        not to be trusted, but recounted, when it has more than one delta line or is older than
        `age` seconds (or holds junk or a negative total)."""
        return self.suspect or self.delta_lines > 1 or (self.mtime is not None and now - self.mtime > age)

    @property
    def suspect(self) -> bool:
        """Junk lines or a negative total: a writer should recount rather than trust it."""
        return self.bad_lines > 0 or self.negative_total


def _definition(line: str) -> tuple[int | None, int | None, bool]:
    """(bytes, messages, had junk parts)."""
    size = count = None
    junk = False
    for part in line.strip().split(","):
        part = part.strip()
        if not part:
            continue
        digits, kind = part[:-1], part[-1]
        if kind not in "SC" or not (0 < len(digits) <= _MAX_DIGITS and digits.isascii() and digits.isdigit()):
            junk = True
        elif kind == "S":
            size = int(digits) or None
        else:
            count = int(digits) or None
    return size, count, junk


def parse(text: str) -> MaildirSize:
    lines = text.splitlines()
    if not lines:
        # An empty file is a broken one (a writer died before its first line): recount it.
        return MaildirSize(None, None, 0, 0, bad_lines=1)
    size, count, junk = _definition(lines[0])
    used_b = used_m = 0
    bad = 1 if junk else 0
    body = lines[1:]
    if text[-1] != "\n":
        # Every writer ends its line with LF in one write: a last line without it is cut short
        # (or not ours). It is not counted, and the file is recounted, as Dovecot does with a
        # file that does not end in LF (quota-maildir.c maildirsize_read).
        bad += 1
        if body:
            body.pop()
    if not body:
        return MaildirSize(size, count, 0, 0, bad)
    ascii_text = text.isascii()
    good = 0
    for line in body:
        fields = line.split()
        # An empty or blank line is junk too: Dovecot's reader (sscanf of "%lld %d") recounts
        # a file holding one, so a file Dovecot would not trust is not trusted here either.
        if len(fields) != 2 or not (ascii_text or line.isascii()) \
                or not _delta(fields[0]) or not _delta(fields[1]):
            bad += 1
            continue
        used_b += int(fields[0])
        used_m += int(fields[1])
        good += 1
    return MaildirSize(size, count, max(used_b, 0), max(used_m, 0), bad,
                       negative_total=used_b < 0 or used_m < 0, delta_lines=good)


def read(maildir: str) -> MaildirSize | None:
    """The maildirsize of a Maildir, or None when it has none (not created yet: usage unknown)."""
    try:
        with open(os.path.join(maildir, "maildirsize"), "rb") as f:
            data = f.read(MAILDIRSIZE_READ_MAX)
            mtime = os.fstat(f.fileno()).st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return None
    return parse(data.decode("ascii", "replace")).replace(mtime=mtime)
