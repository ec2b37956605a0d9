"""The state store's interface and its pure arithmetic: what every engine builds on.

`StateStore` (the interface), the records it trades in (`Take`, `Write`, `Entry`,
`Capability`) and the token-bucket steps the Python engines share (Redis runs the same in
Lua). A leaf: it imports no engine, so the engines (memory_store, sqlite_store,
redis_store) import it and the factory in `owlery.state` imports them, with no cycle.
Tests: tests/state/test_contract.py, tests/state/test_take_all.py, tests/state/test_twins.py.
"""

from __future__ import annotations

import abc
from _collections_abc import Mapping, Sequence   # = collections.abc, without loading collections (LDA start-up)

from owlery.errors import StateUnavailable
from owlery.record import Record

TYPE_CHECKING = False     # not `from typing import ...`: the LDA's start-up pays for every import (~1.7 ms)
if TYPE_CHECKING:
    from typing import Any


class Take(Record, frozen=True):
    """The outcome of taking tokens from a bucket."""

    allowed: bool
    tokens: float            # tokens left after this call
    retry_after: float | None  # seconds until `cost` tokens are there; None if cost > burst (never)


# One bucket of a take_all: (key, cost, rate in tokens/s, burst).
BucketTake = tuple[str, float, float, float]


class Capability:
    """What an engine declares in `StateStore.capabilities` (callers branch on these, never
    on whether a method happens to exist)."""

    # transaction() runs the calls inside it with no other caller's call between them
    # (SQLite: one write transaction, rolled back on an error; memory: its lock held).
    # Without it each call is atomic on its own only (Redis: every call is one script).
    TRANSACTIONS = "transactions"
    # get/get_many never wait on the network or on a writer: a point read of local memory
    # or of a file in WAL mode (readers do not block behind writers there), so an event
    # loop may read inline instead of paying a thread hop.
    LOCAL_READS = "local-reads"
    # Several hosts see the same state (Redis): what one MX writes, the others read.
    SHARED = "shared"

    ALL = frozenset({TRANSACTIONS, LOCAL_READS, SHARED})


class Write(Record, frozen=True):
    """One write of a `StateStore.write_many` batch.

    op: "add" (only when the key is not live; result True/False), "set" (result True) or
    "incr" (value is the integer amount; result the new count). With `gate`, the write
    happens only when the gate key can be added first (it then lives `gate_ttl`): "at
    most once per interval" counters; a write the gate stopped has the result None.
    """

    op: str
    key: str
    value: str
    ttl: float
    now: float
    gate: str | None = None
    gate_ttl: float = 0.0


class Entry(Record, frozen=True):
    key: str
    value: str
    expires: float


class StateStore(abc.ABC):
    """Keys with TTLs, counters and token buckets. All methods are blocking and atomic per call.

    `now` is seconds since the epoch (the caller's clock); `ttl` is seconds from `now`.
    A key whose expiry is <= now does not exist, whether or not it was cleaned up yet.
    """

    name = "?"
    capabilities: frozenset[str] = frozenset()    # of Capability.*; each engine declares its own

    @abc.abstractmethod
    def get(self, key: str, now: float) -> str | None:
        """The value of a live key, or None."""

    def get_many(self, keys: Sequence[str], now: float) -> list[str | None]:
        """Values of several keys in one round trip where the engine can."""
        return [self.get(k, now) for k in keys]

    @abc.abstractmethod
    def set(self, key: str, value: str, ttl: float, now: float) -> None:
        """Store value until now + ttl (replacing any value and expiry)."""

    @abc.abstractmethod
    def add(self, key: str, value: str, ttl: float, now: float) -> bool:
        """Store value only if the key does not exist (live); True when stored."""

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove a key; True when it existed."""

    @abc.abstractmethod
    def incr(self, key: str, amount: int, ttl: float, now: float) -> int:
        """Add amount to an integer counter (missing = 0); the key then expires at now + ttl."""

    def take(self, key: str, cost: float, rate: float, burst: float, now: float) -> Take:
        """Token bucket: refill at `rate` tokens/s up to `burst`; take `cost` if there.

        A bucket starts full. A refused take leaves the bucket untouched. (A take_all of one.)
        """
        return self.take_all([(key, cost, rate, burst)], now)[0]

    @abc.abstractmethod
    def take_all(self, takes: Sequence[BucketTake], now: float) -> list[Take]:
        """Several token buckets taken as one, all or nothing; one Take per bucket, in order.

        When every bucket has its `cost`, all are charged; when any has not, NONE is
        charged (a request that is refused must not spend the buckets that had room), and
        the refused buckets are the ones whose Take says `allowed=False` (the others say
        True: they had room). Atomic against every other call on the store, across hosts
        on Redis. A key listed twice is taken twice, in order.
        """

    def take_all_many(self, batch: Sequence[tuple[Sequence[BucketTake], float]]) -> list[list[Take] | Exception]:
        """Independent `take_all(takes, now)` calls at once: one Redis round trip, one SQLite
        commit. One result per call, in order: its Takes, or the exception it raised (the
        others still stand). Raises when the batch failed as a whole (nothing of it stands)."""
        out: list[list[Take] | Exception] = []
        with self.transaction():
            for takes, now in batch:
                try:
                    out.append(self.take_all(takes, now))
                except StateUnavailable:
                    raise     # the engine failed (SQLite has rolled the whole batch back)
                except Exception as e:  # noqa: BLE001 - e.g. a damaged value: only this call fails
                    out.append(e)
        return out

    def write_many(self, writes: Sequence[Write]) -> list[bool | int | None]:
        """Apply writes in order, no other caller's call between them (one SQLite commit,
        one Redis script); one result per write (see `Write`). Raises when the batch failed
        (SQLite rolls all of it back; a Redis script that errs stops where it was).

        This is the Python twin of the Redis engine's `_WRITE_MANY` script; the contract
        suite runs both on the same generated sequences (tests/state/test_twins.py)."""
        for w in writes:     # checked before anything is written, as the Redis engine does
            if w.op not in ("add", "set", "incr"):
                raise ValueError(f"unknown write op {w.op!r}")
        out: list[bool | int | None] = []
        with self.transaction():
            for w in writes:
                if w.gate is not None and not self.add(w.gate, "1", w.gate_ttl, w.now):
                    out.append(None)
                elif w.op == "add":
                    out.append(self.add(w.key, w.value, w.ttl, w.now))
                elif w.op == "set":
                    self.set(w.key, w.value, w.ttl, w.now)
                    out.append(True)
                else:
                    out.append(self.incr(w.key, int(w.value), w.ttl, w.now))
        return out

    @abc.abstractmethod
    def scan(self, prefix: str, now: float, limit: int = 1000) -> list[Entry]:
        """Live entries whose key starts with prefix (at most limit, in no promised order)."""

    def count_live(self, prefix: str, now: float) -> tuple[int, int] | None:
        """(live keys under `prefix` whose value is one word, those whose value has several), for
        gauges read at scrape time (greylist triplets: waiting, passed). None when the engine
        cannot count without walking every key it holds (Redis: keys expire by themselves, so a
        counter kept beside them would drift, and SCAN reads the whole keyspace)."""
        return None

    @abc.abstractmethod
    def expire(self, now: float, limit: int) -> int:
        """Remove up to limit expired entries now; returns how many (Redis expires by itself: 0)."""

    def transaction(self) -> Any:
        """Context manager: the calls made inside it form one atomic unit (one SQLite
        transaction, the memory engine's lock held) on engines that declare
        `Capability.TRANSACTIONS`. The others (Redis) run each call on its own; several
        writes at once there go through `write_many` (one script)."""
        import contextlib      # here: the in-process LDA imports this module, rarely calls this
        return contextlib.nullcontext(self)

    def close(self) -> None:
        """Release connections."""


def bucket_math(tokens: float | None, stamp: float | None, cost: float, rate: float, burst: float,
                now: float) -> tuple[bool, float, float | None]:
    """Pure token-bucket step shared by the Python engines (Redis runs the same in Lua).

    Returns (allowed, tokens_after, retry_after).
    """
    if tokens is None or stamp is None:
        tokens, stamp = burst, now
    elapsed = max(0.0, now - stamp)
    tokens = min(burst, tokens + elapsed * rate)
    if cost <= tokens:
        return True, tokens - cost, 0.0
    if cost > burst or rate <= 0:
        return False, tokens, None
    return False, tokens, (cost - tokens) / rate


def take_all_math(buckets: Mapping[str, tuple[float, float] | None], takes: Sequence[BucketTake],
                  now: float) -> tuple[list[Take], dict[str, tuple[str, float]]]:
    """Pure all-or-nothing step of `StateStore.take_all` for the Python engines (Redis runs
    the same in Lua). `buckets`: each key's stored (tokens, stamp), None when absent.

    Returns the Takes and what to write: {key: (stored value, ttl)}, empty when any
    bucket refused (then nothing is charged).
    """
    work = dict(buckets)
    out: list[Take] = []
    writes: dict[str, tuple[str, float]] = {}
    for key, cost, rate, burst in takes:
        tokens, stamp = work.get(key) or (None, None)
        allowed, left, retry = bucket_math(tokens, stamp, cost, rate, burst, now)
        out.append(Take(allowed, left, retry))
        if allowed:
            work[key] = (left, now)
            writes[key] = (encode_bucket(left, now), bucket_ttl(rate, burst))
    if not all(t.allowed for t in out):
        return out, {}
    return out, writes


def encode_bucket(tokens: float, stamp: float) -> str:
    """A bucket as stored: "tokens,stamp" (the Redis engine writes the same form)."""
    return f"{tokens!r},{stamp!r}"


def decode_bucket(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    tokens, stamp = value.split(",")
    return float(tokens), float(stamp)


def bucket_ttl(rate: float, burst: float) -> float:
    """How long a bucket must be kept: after this it would be full again anyway."""
    if rate <= 0:
        return 86400.0
    return burst / rate + 1.0
