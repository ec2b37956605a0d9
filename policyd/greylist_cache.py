"""Greylisting in memory, persisted behind: a bounded per-process view and a write-behind queue.

Sans-I/O (values and `now` in, answers out); policyd/checks/greylist.py drives them on the
reactor and does the store I/O.

`GreylistMemory` answers repeats whose answer cannot have changed elsewhere: a triplet
still waiting out its delay (deferred again with its first-seen time, until the delay is
over: the retry that passes is always decided from the store's record, read again), a
triplet that passed ("known") and an auto-whitelisted client, each for at most `ttl`
seconds (so a purge or removal with `owlery greylist` is seen by every daemon within
that time). It is an LRU bounded both in entries and in bytes (an estimate per entry
checked by tests/policyd/test_greylist_writebehind.py against tracemalloc): a flood of unique
triplets evicts the least recently used, never grows the process. The table is a plain dict
of strings to complex numbers (until + first-seen j), so the cyclic collector never walks it:
an OrderedDict (always tracked) of 200,000 (until, first) tuples cost every full collection of
a policy worker ~8 ms (tests/policyd/test_memo_untracked.py). Recency is insertion order (a hit
re-inserts its key); eviction takes the oldest sixteenth in one pass, since finding a plain
dict's first entry walks the slots its deletions emptied.

`WriteBehind` holds the writes of decisions already answered until a flush persists them
in one batch (`StateStore.write_many`: one SQLite commit, one Redis script). Until then it
also answers "what will the store hold for that triplet?" (this process's first sight, or
its pass) so that neither is forgotten while the write is on its way. The bound that keeps several workers
and MX hosts consistent: a first sight is in the store at most one flush interval plus
one store timeout after it was answered, and another worker or host needs it only when
the client retries after the greylist delay; with flush interval + state timeout well
below the delay (milliseconds against minutes), a retry after the delay on any worker
reads the first sight from the store and passes. What can go wrong costs a deferral, a
4xx, never a 5xx and never an early pass:
- a flush that fails is kept (at most `backlog_max` writes, the oldest dropped beyond)
  and tried again; a write dropped, or lost in a crash (at most the last interval's
  batch; postgrey fsyncs each write), only means the next attempt of that triplet counts
  as a first sight again: one more 450;
- a first-seen add that finds the triplet already there (another worker or host saw it
  first) makes the memory forget its own, later first-seen time, so the next attempt
  reads the earlier one from the store.
The check stores a pass before answering it (write-through, with the queued batch), so the
flush interval never lets two hosts both answer "passed" for one retry.
Greylist state is not a message: nothing a sender handed over is lost with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from owlery.state import Write
from policyd.greylist_core import GreylistPolicy, GreylistResult, whole_seconds

# Bytes one memory entry costs beyond its key's characters: the OrderedDict node and slot,
# the (until, first) tuple and its two floats, the key's str header (tests measure it).
ENTRY_OVERHEAD = 300
_KNOWN = -1.0         # first-seen slot of a triplet that passed
_CLIENT = -2.0        # first-seen slot of an auto-whitelisted client
_CLIENT_PREFIX = "\0awl:"


class GreylistMemory:
    """Per-process LRU view of greylist answers (see the module docstring)."""

    def __init__(self, policy: GreylistPolicy, ttl: float, entries_max: int, bytes_max: int):
        self.policy = policy
        self.ttl = ttl
        self.entries_max = entries_max
        self.bytes_max = bytes_max
        self._table: dict[str, complex] = {}      # key -> complex(until, first), oldest first
        self.bytes = 0
        self.hits = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._table)

    def answer(self, key: str, client_address: str, now: float) -> GreylistResult | None:
        table = self._table
        if not table:
            return None
        client = _CLIENT_PREFIX + client_address
        got = table.get(client)
        if got is not None:
            if now < got.real:
                self.hits += 1
                table[client] = table.pop(client)       # now the most recently used
                return GreylistResult("auto-whitelisted", key)
            self._drop(client)
        got = table.get(key)
        if got is None:
            return None
        until, first = got.real, got.imag
        if now >= until:
            self._drop(key)
            return None
        self.hits += 1
        table[key] = table.pop(key)
        if first == _KNOWN:
            return GreylistResult("known", key)
        return GreylistResult("greylisted", key, seconds_left=whole_seconds(first + self.policy.delay - now),
                              first_seen=first)

    def learn(self, result: GreylistResult, client_address: str, now: float) -> None:
        if self.entries_max <= 0 or self.ttl <= 0 or self.bytes_max <= 0:
            return
        outcome = result.outcome
        if outcome == "auto-whitelisted":
            self._put(_CLIENT_PREFIX + client_address, now + self.ttl, _CLIENT)
        elif outcome in ("known", "passed"):
            self._put(result.key, now + self.ttl, _KNOWN)
        elif outcome == "greylisted" and result.first_seen > 0:
            # Only until the delay is over: the retry that passes reads the store again.
            until = min(now + self.ttl, result.first_seen + self.policy.delay)
            if until > now:
                self._put(result.key, until, result.first_seen)

    def _put(self, key: str, until: float, first: float) -> None:
        table = self._table
        value = complex(until, first)
        if table.pop(key, None) is not None:
            table[key] = value
            return
        cost = ENTRY_OVERHEAD + len(key)
        if len(table) >= self.entries_max or self.bytes + cost > self.bytes_max:
            self._evict(cost)
        table[key] = value
        self.bytes += cost

    def _evict(self, cost: int) -> None:
        """Drop the least recently used entries, a sixteenth of each bound at once (one pass over
        the oldest), so that `cost` more bytes and one more entry fit."""
        table = self._table
        entries_room = self.entries_max - 1 - self.entries_max // 16
        bytes_room = self.bytes_max - max(cost, self.bytes_max // 16)
        left, size = len(table), self.bytes
        gone = []
        for old in table:
            if left <= entries_room and size <= bytes_room:
                break
            gone.append(old)
            left -= 1
            size -= ENTRY_OVERHEAD + len(old)
        for old in gone:
            del table[old]
        self.bytes = size
        self.evicted += len(gone)

    def _drop(self, key: str) -> None:
        if self._table.pop(key, None) is not None:
            self.bytes -= ENTRY_OVERHEAD + len(key)

    def forget(self, key: str | None = None) -> None:
        """Forget one triplet (None: everything)."""
        if key is None:
            self._table.clear()
            self.bytes = 0
        else:
            self._drop(key)


class WriteBehind:
    """Writes of answered decisions waiting for their flush (see the module docstring)."""

    def __init__(self, flush_records: int, backlog_max: int):
        self.flush_records = flush_records
        self.backlog_max = max(backlog_max, flush_records)
        self._pending: list[Write] = []
        self._records: dict[str, str] = {}   # key -> its latest queued value not yet confirmed stored
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._pending)

    def record(self, key: str) -> str | None:
        """This process's latest value of a key whose write is not stored yet (a triplet's
        first sight, or its pass), as the store will hold it."""
        return self._records.get(key) if self._records else None

    def add(self, writes: Sequence[Write]) -> bool:
        """Queue writes; True when a flush is due at once (flush_records reached)."""
        for w in writes:
            if w.op == "add":
                self._records.setdefault(w.key, w.value)     # an add never replaces
            elif w.op == "set":
                self._records[w.key] = w.value
        self._pending.extend(writes)
        if len(self._pending) > self.backlog_max:
            self._drop(len(self._pending) - self.backlog_max)
        return len(self._pending) >= self.flush_records

    def take(self) -> list[Write]:
        """Everything queued, for one flush (their values stay known until `done`)."""
        batch, self._pending = self._pending, []
        return batch

    def done(self, batch: Sequence[Write], results: Sequence[object]) -> list[str]:
        """A flush stored `batch`: the triplet keys whose first-seen add found one already there."""
        lost = []
        for w, r in zip(batch, results):
            self._settled(w)
            if w.op == "add" and r is False:
                lost.append(w.key)
        return lost

    def _settled(self, w: Write) -> None:
        if w.op != "incr" and self._records.get(w.key) == w.value:
            del self._records[w.key]

    def failed(self, batch: Sequence[Write]) -> int:
        """A flush of `batch` failed: queue it again ahead of newer writes; how many were dropped."""
        self._pending[:0] = batch
        before = self.dropped
        if len(self._pending) > self.backlog_max:
            self._drop(len(self._pending) - self.backlog_max)
        return self.dropped - before

    def _drop(self, n: int) -> None:
        for w in self._pending[:n]:
            self._settled(w)
        del self._pending[:n]
        self.dropped += n
