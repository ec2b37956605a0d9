"""The per-message budget of a content scan: bytes inflated, archive members, MIME parts, time.

A `ScanBudget` is made for one message and handed to the MIME and archive walkers, which
charge it as they go (`inflated()`, `member()`, `part()`) and call `check_time()` inside
their loops, so hostile input (zip bombs, millions of members or parts) stops the work
by itself, without a watchdog. Whatever runs out raises `BudgetExceeded` with a reason
for the log; the caller turns it into a verdict. The limits on one stream or one level
(compression ratio, nesting depth) are the walkers' business and stop only that item.
Talks to: nothing (the clock is an argument). Tests: tests/milters/test_banned_hostile.py
"""

from __future__ import annotations

import time
from collections.abc import Callable


class BudgetExceeded(Exception):
    """A per-message budget ran out: what is left of the message cannot be judged."""


class ScanBudget:
    """Counters and limits of one scan; not shared between messages or threads."""

    def __init__(self, *, inflate_bytes_max: int, members_max: int, parts_max: int, time_max: float,
                 clock: Callable[[], float] = time.monotonic):
        self.inflate_bytes_max = inflate_bytes_max
        self.members_max = members_max
        self.parts_max = parts_max
        self.time_max = time_max
        self._clock = clock
        self._deadline = clock() + time_max
        self.inflated_bytes = 0
        self.members = 0
        self.parts = 0

    def check_time(self) -> None:
        if self._clock() > self._deadline:
            raise BudgetExceeded(f"scan time over {self.time_max:g}s")

    def inflated(self, n: int) -> None:
        """Charge `n` bytes taken out of an archive (decompressed or stored)."""
        self.inflated_bytes += n
        if self.inflated_bytes > self.inflate_bytes_max:
            raise BudgetExceeded(f"more than {self.inflate_bytes_max} bytes inflated")

    def inflate_room(self) -> int:
        """Bytes that may still be inflated (one more shows that the budget is exceeded)."""
        return max(0, self.inflate_bytes_max - self.inflated_bytes) + 1

    def member(self) -> None:
        """Charge one archive member (counted over all the message's archives)."""
        self.members += 1
        if self.members > self.members_max:
            raise BudgetExceeded(f"more than {self.members_max} archive members")
        self.check_time()

    def part(self) -> None:
        """Charge one MIME part (containers count too)."""
        self.parts += 1
        if self.parts > self.parts_max:
            raise BudgetExceeded(f"more than {self.parts_max} MIME parts")
        self.check_time()
