"""The parsing core of `owlery stats`: decision log lines and a time window in, a Summary out.

Sans-I/O: `split_lines(chunks)` turns byte chunks (a file, a .gz member, stdin) into text
lines, dropping any longer than `LINE_MAX` (counted, never parsed, never held whole);
`StatsParser(since, until, now=...)` takes lines and keeps only bounded counters; its
`summary()` is a `Summary` whose `to_dict(top)` is the `--json` document. It reads the
lines `owlery.log.format_decision` writes for policyd, the milter, lmtpd/lda and the
quarantine CLI, behind any of the prefixes they get on the way to a file: Owlery's own
stderr stamp, syslog (RFC 3164 or RFC 3339 stamps, `owlery-NAME[pid]:` tags), journald
output, the quarantine audit log's ISO stamp. A line it cannot read counts as "other".
Talks to: nothing. Tests: tests/core/test_stats.py
"""

from __future__ import annotations

import calendar
import dataclasses
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

SCHEMA = 1
LINE_MAX = 65536            # characters; a longer line is counted as too long and skipped
KEYS_MAX = 10000            # distinct names kept per top list; later ones count under "(more)"
KEY_TEXT_MAX = 200          # a name (address, host, folder) is cut to this many characters
MARK_WINDOW = 200           # the program name must start within this many characters of the stamp
MORE = "(more)"

# The action words each program writes (owlery.log.format_decision's third argument).
POLICY_ACTIONS = frozenset({
    "reject", "defer", "defer-if-permit", "defer-if-reject", "prepend", "warn", "info", "hold",
    "discard", "filter", "redirect", "bcc", "ok", "dunno"})
MILTER_ACTIONS = frozenset({"accept", "reject", "discard", "tempfail", "quarantine"})
DELIVERY_ACTIONS = frozenset({"delivered", "tempfail", "bounce", "unknown", "reject"})
QUARANTINE_ACTIONS = frozenset({"release", "release-denied", "release-failed", "delete", "expire"})
ACTIONS = {"policyd": POLICY_ACTIONS, "milter": MILTER_ACTIONS, "lmtpd": DELIVERY_ACTIONS,
           "lda": DELIVERY_ACTIONS, "quarantine": QUARANTINE_ACTIONS}

# Authentication evidence: milter symbol -> (method, result).
AUTH_SYMBOLS = {
    "DKIM_VALID": ("dkim", "pass"), "DKIM_INVALID": ("dkim", "fail"), "DKIM_NONE": ("dkim", "none"),
    "DKIM_TEMPERROR": ("dkim", "temperror"),
    "DMARC_POLICY_ALLOW": ("dmarc", "pass"), "DMARC_POLICY_REJECT": ("dmarc", "fail p=reject"),
    "DMARC_POLICY_QUARANTINE": ("dmarc", "fail p=quarantine"),
    "DMARC_POLICY_SOFTFAIL": ("dmarc", "fail p=none"), "DMARC_NA": ("dmarc", "none"),
    "DMARC_TEMPERROR": ("dmarc", "temperror"), "DMARC_BAD_FROM": ("dmarc", "permerror"),
    "DMARC_PERMERROR": ("dmarc", "permerror"),
    "SPF_PASS": ("spf", "pass"), "SPF_FAIL": ("spf", "fail"), "SPF_SOFTFAIL": ("spf", "softfail"),
    "ARC_VALID": ("arc", "pass"), "ARC_INVALID": ("arc", "fail"),
}
_BANNED_SYMBOLS = ("BANNED_ATTACHMENT", "BANNED_ENCRYPTED", "BANNED_UNDECIDABLE")
_JUNK_FOLDERS = frozenset({"junk", "spam", "junk e-mail", "junk email"})
_REJECTED_DELIVERIES = frozenset({"bounce", "unknown", "reject"})

# Program name preceded by a space or the line start: `owlery-policyd[12]: policyd: ...` is
# found at the second name (a hyphen or "[" never precedes it).
_MARK = re.compile(r"(?:^| )(policyd|milter|lmtpd|lda|quarantine): ")
# Where the key=value fields start: the first key each program writes first, at the start
# or after the reply's "; " (a Received-SPF or X-Greylist header in a reply has none of them).
_FIELDS = re.compile(r"(?:^|; )(?=(?:from=<|to=<|quarantine_id=|stages=|check=|sasl_username=))")
_NEXT_KEY = re.compile(r" [a-z][a-z0-9_]*=")
_ISO_TAIL = re.compile(r"(?:[.,]\d{1,9})?(Z|[+-]\d\d:?\d\d)?")
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"), 1)}


# --- lines -----------------------------------------------------------------------------

class LineCounter:
    """How many lines `split_lines` dropped for their length."""

    def __init__(self) -> None:
        self.too_long = 0


def split_lines(chunks: Iterable[bytes], counter: LineCounter, line_max: int = LINE_MAX) -> Iterator[list[str]]:
    """Lists of text lines from byte chunks (a list per chunk: the parser loops over lists,
    not a generator per line); a line over `line_max` bytes is counted and skipped without
    ever being held whole (at most one chunk plus `line_max` bytes are kept)."""
    carry = b""
    skipping = False                 # inside an over-long line: drop up to its newline
    for chunk in chunks:
        if not chunk:
            continue
        if skipping:
            newline = chunk.find(b"\n")
            if newline < 0:
                continue
            skipping, chunk = False, chunk[newline + 1:]
        data = carry + chunk if carry else chunk
        end = data.rfind(b"\n")
        if end < 0:
            carry = data
        else:
            yield _decoded(data[:end], counter, line_max)
            carry = data[end + 1:]
        if len(carry) > line_max:
            counter.too_long += 1
            carry, skipping = b"", True
    if carry:
        yield _decoded(carry, counter, line_max)


def _decoded(block: bytes, counter: LineCounter, line_max: int) -> list[str]:
    lines = block.decode("utf-8", "replace").split("\n")
    if len(block) > line_max and max(map(len, lines)) > line_max:
        kept = [line for line in lines if len(line) <= line_max]
        counter.too_long += len(lines) - len(kept)
        return kept
    return lines


# --- counters ----------------------------------------------------------------------------

class Top:
    """A counter with at most KEYS_MAX names (hostile logs cannot grow it without bound)."""

    __slots__ = ("counts", "more")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.more = 0

    def add(self, key: str, n: int = 1) -> None:
        counts = self.counts
        if len(key) > KEY_TEXT_MAX:
            key = key[:KEY_TEXT_MAX]
        if key in counts:
            counts[key] += n
        elif len(counts) < KEYS_MAX:
            counts[key] = n
        else:
            self.more += n

    def total(self) -> int:
        return sum(self.counts.values()) + self.more

    def top(self, n: int | None) -> list[tuple[str, int]]:
        items = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if n is not None:
            items = items[:n]
        if self.more and (n is None or len(items) < n):
            items.append((MORE, self.more))
        return items

    def as_dict(self) -> dict[str, int]:
        out = dict(sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])))
        if self.more:
            out[MORE] = self.more
        return out


def _pairs(top: Top, n: int | None) -> list[dict[str, Any]]:
    return [{"name": k, "count": v} for k, v in top.top(n)]


def median(counts: dict[int, int]) -> float | None:
    """The median of values given as {value: how many times}."""
    total = sum(counts.values())
    if not total:
        return None
    ordered = sorted(counts.items())
    low_rank, high_rank = (total - 1) // 2, total // 2
    seen, low = 0, None
    for value, n in ordered:
        if low is None and seen + n > low_rank:
            low = value
        if seen + n > high_rank:
            return (low + value) / 2
        seen += n
    return None     # not reached: the ranks lie within total


# --- the summary ---------------------------------------------------------------------------

@dataclasses.dataclass
class Summary:
    """Everything `owlery stats` reports; to_dict() is the --json document (schema SCHEMA)."""

    since: float | None
    until: float | None
    first: float | None = None          # first and last stamp seen inside the window
    last: float | None = None
    lines: dict[str, int] = dataclasses.field(default_factory=dict)
    policy_actions: Top = dataclasses.field(default_factory=Top)
    policy_checks: dict[str, Top] = dataclasses.field(default_factory=dict)
    rejected_senders: Top = dataclasses.field(default_factory=Top)
    rejected_clients: Top = dataclasses.field(default_factory=Top)
    rejected_recipients: Top = dataclasses.field(default_factory=Top)
    greylist: dict[str, int] = dataclasses.field(default_factory=dict)
    greylist_outcomes: Top = dataclasses.field(default_factory=Top)
    greylist_delays: dict[int, int] = dataclasses.field(default_factory=dict)
    milter_actions: Top = dataclasses.field(default_factory=Top)
    milter_tempfail_reasons: Top = dataclasses.field(default_factory=Top)
    symbols: Top = dataclasses.field(default_factory=Top)
    tag_level: float | None = None
    spam: dict[str, int] = dataclasses.field(default_factory=dict)
    virus: dict[str, int] = dataclasses.field(default_factory=dict)
    viruses: Top = dataclasses.field(default_factory=Top)
    banned: dict[str, int] = dataclasses.field(default_factory=dict)
    banned_names: Top = dataclasses.field(default_factory=Top)
    auth: dict[str, Top] = dataclasses.field(default_factory=dict)
    spf_policyd: Top = dataclasses.field(default_factory=Top)
    deliveries: Top = dataclasses.field(default_factory=Top)
    delivery: dict[str, int] = dataclasses.field(default_factory=dict)
    folders: Top = dataclasses.field(default_factory=Top)
    sent: Top = dataclasses.field(default_factory=Top)
    quarantine_held: Top = dataclasses.field(default_factory=Top)
    quarantine: dict[str, int] = dataclasses.field(default_factory=dict)

    def greylist_pass_rate(self) -> float | None:
        """Passed retries per new triplet deferred (capped at 1: a pass may follow a
        deferral from before the window)."""
        new, passed = self.greylist.get("new", 0), self.greylist.get("passed", 0)
        return min(1.0, passed / new) if new else None

    def to_dict(self, top: int | None = 10) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "window": {"since": _iso(self.since), "until": _iso(self.until),
                       "first": _iso(self.first), "last": _iso(self.last)},
            "lines": dict(self.lines),
            "policy": {
                "by_action": self.policy_actions.as_dict(),
                "by_check": {k: v.as_dict() for k, v in sorted(self.policy_checks.items())},
                "top_rejected": {"senders": _pairs(self.rejected_senders, top),
                                 "clients": _pairs(self.rejected_clients, top),
                                 "recipients": _pairs(self.rejected_recipients, top)},
            },
            "greylist": {**self.greylist, "pass_rate": _round(self.greylist_pass_rate()),
                         "median_delay": median(self.greylist_delays),
                         "outcomes": self.greylist_outcomes.as_dict()},
            "milter": {"by_action": self.milter_actions.as_dict(),
                       "tempfail_reasons": _pairs(self.milter_tempfail_reasons, top),
                       "symbols": _pairs(self.symbols, top)},
            "spam": {**self.spam, "tag_level": self.tag_level},
            "virus": {**self.virus, "top": _pairs(self.viruses, top)},
            "banned": {**self.banned, "top": _pairs(self.banned_names, top)},
            "auth": {k: v.as_dict() for k, v in sorted(self.auth.items())} | {"spf_policyd": self.spf_policyd.as_dict()},
            "delivery": {"by_result": self.deliveries.as_dict(), **self.delivery,
                         "folders": _pairs(self.folders, top), "sent": self.sent.as_dict()},
            "quarantine": {"held": self.quarantine_held.as_dict(), **self.quarantine},
        }


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(stamp))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# --- the parser ------------------------------------------------------------------------------

def _counts(*names: str) -> dict[str, int]:
    return dict.fromkeys(names, 0)


class StatsParser:
    """Feed lines (`feed`), then read `summary()`. Lines stamped outside [since, until) are
    skipped; undated lines are skipped too unless both ends are open (None: every line).
    `now` dates syslog stamps, which carry no year; `tag_level` is the score from which an
    accepted message counts as tagged spam (None: not counted)."""

    def __init__(self, since: float | None, until: float | None, *, now: float,
                 tag_level: float | None = None):
        self.since, self.until, self.now = since, until, now
        self.s = Summary(since, until, tag_level=tag_level)
        self.s.lines = _counts("read", "in_window", "decisions", "other", "out_of_window", "undated", "too_long")
        self.s.greylist = _counts("deferred", "new", "early_retry", "passed", "errors")
        self.s.spam = _counts("scanned", "tagged", "quarantined", "rejected")
        self.s.virus = _counts("found", "rejected", "quarantined", "unavailable", "unchecked")
        self.s.banned = _counts("found", "rejected", "quarantined")
        self.s.delivery = _counts("stored_inbox", "stored_junk", "stored_other", "redirected", "discarded",
                                  "rejected", "tempfail", "sieve_error_keep", "vacation_sent",
                                  "vacation_suppressed")
        self.s.quarantine = _counts("released", "release_failed", "release_denied", "deleted", "expired")
        self._local: dict[str, float] = {}
        self._utc: dict[str, float] = {}
        self._offsets: dict[str, int] = {}
        self._syslog: dict[str, float] = {}

    # -- time stamps --

    def _stamp(self, line: str) -> tuple[float | None, int]:
        """(seconds since the epoch, where the stamp ends) or (None, 0) for an undated line."""
        if len(line) >= 19 and line[4] == "-" and line[7] == "-" and line[13] == ":" and line[16] == ":":
            key = line[:19]
            if line[19:20] == "," and line[23:24] == " ":      # Owlery's stderr stamp, local time
                when = self._local.get(key)
                if when is None:
                    when = self._local[key] = _parse_iso(key, local=True)
                return when, 23
            m = _ISO_TAIL.match(line, 19)
            tz = m.group(1)
            if tz is None:
                when = self._local.get(key)
                if when is None:
                    when = self._local[key] = _parse_iso(key, local=True)
            else:
                when = self._utc.get(key)
                if when is None:
                    when = self._utc[key] = _parse_iso(key, local=False)
                offset = self._offsets.get(tz)
                if offset is None:
                    offset = self._offsets[tz] = _tz_offset(tz)
                if when is not None:
                    when -= offset
            return when, m.end()
        if len(line) >= 15 and line[3] == " " and line[:3] in _MONTHS and line[12] == ":":
            key = line[:15]
            when = self._syslog.get(key)
            if when is None:
                when = self._syslog[key] = _parse_syslog(key, self.now)
            return when, 15
        return None, 0

    # -- lines --

    def feed(self, lines: Iterable[str]) -> None:
        lines_count = self.s.lines
        since, until = self.since, self.until
        everything = since is None and until is None
        stamp = self._stamp
        mark = _MARK.search
        read = in_window = out = undated = decisions = other = 0
        first, last = self.s.first, self.s.last
        for line in lines:
            read += 1
            when, pos = stamp(line)
            if when is None:
                if not everything:
                    undated += 1
                    continue
            elif (since is not None and when < since) or (until is not None and when >= until):
                out += 1
                continue
            else:
                if first is None or when < first:
                    first = when
                if last is None or when > last:
                    last = when
            in_window += 1
            m = mark(line, pos, pos + MARK_WINDOW)
            if m is not None and self._decision(m.group(1), line, m.end()):
                decisions += 1
            else:
                other += 1
        self.s.first, self.s.last = first, last
        lines_count["read"] += read
        lines_count["in_window"] += in_window
        lines_count["out_of_window"] += out
        lines_count["undated"] += undated
        lines_count["decisions"] += decisions
        lines_count["other"] += other

    def summary(self, too_long: int = 0) -> Summary:
        self.s.lines["too_long"] = too_long
        return self.s

    def _decision(self, program: str, line: str, start: int) -> bool:
        """Count one line from `start` (after "PROGRAM: "); False when it is no decision."""
        word, _, rest = line[start:].partition(": ")
        actions = ACTIONS[program]
        if word not in actions:     # a queue id first (checked as one, then skipped)
            if program in ("lmtpd", "lda") and word.startswith(("sent ", "vacation reply to ")):
                return self._delivery_note(word)
            if not (0 < len(word) <= 32 and word.isalnum() and word.isascii()):
                return False
            word, _, rest = rest.partition(": ")
            if word not in actions:
                if program in ("lmtpd", "lda") and word.startswith(("sent ", "vacation reply to ")):
                    return self._delivery_note(word)
                return False
        head = ""
        if program in ("policyd", "milter") and not rest.startswith(("from=<", "to=<", "quarantine_id=")):
            head, _, rest = rest.partition(": ")
        if program == "quarantine":
            self._audit(word)
            return True
        # Fields are read where they are needed (a find each, no dict per line): from the
        # start of the key=value part on, so a reply's text is never taken for a field.
        at = rest.find("; from=<")
        if at < 0:
            m = _FIELDS.search(rest)
            if m is None:
                at = len(rest)
            elif m.start() == 0 and not rest.startswith(";"):
                rest, at = " " + rest, 0
            else:
                at = m.start()
        if program == "policyd":
            self._policy(word, head, rest, at)
        elif program == "milter":
            if word == "quarantine":
                self._held(rest, at)
            else:
                self._milter(word, head, rest, at)
        else:
            self._delivery(word, rest, at)
        return True

    # -- policyd --

    def _policy(self, action: str, head: str, rest: str, at: int) -> None:
        s = self.s
        s.policy_actions.add(action)
        # the last check= (the sender's address, which comes first, may hold that text)
        check_at = rest.rfind(" check=", at)
        check = _get(rest, " check=", check_at) if check_at >= 0 else "-"
        by_check = s.policy_checks.get(check)
        if by_check is None:
            if len(s.policy_checks) >= 64:
                check = MORE
                by_check = s.policy_checks.setdefault(MORE, Top())
            else:
                by_check = s.policy_checks[check] = Top()
        by_check.add(action)
        if action == "reject":
            s.rejected_senders.add(_get(rest, " from=", at) or "<>")
            s.rejected_clients.add(_client(head))
            rcpt = _get(rest, " to=", at)
            if rcpt is not None:
                s.rejected_recipients.add(rcpt or "<>")
        if check == "greylist":
            self._greylist(action, rest, at)
        elif check == "spf":
            spf = _get(rest, " spf=", at)
            if spf is not None:
                s.spf_policyd.add(spf)

    def _greylist(self, action: str, rest: str, at: int) -> None:
        g = self.s.greylist
        outcome = _get(rest, " greylist=", at)
        if outcome is not None:
            self.s.greylist_outcomes.add(outcome)
        if action.startswith("defer"):
            g["deferred"] += 1
            if outcome == "new":
                g["new"] += 1
            elif outcome == "early-retry":
                g["early_retry"] += 1
            elif _get(rest, " error=", at) is not None:
                g["errors"] += 1
        elif action == "prepend":
            # The X-Greylist header goes out once per message, on the retry that passed. When
            # another check's header took that request, it follows on a later one without
            # the greylist=passed field: the check and the action alone say it passed.
            g["passed"] += 1
            delayed = _get(rest, " delayed=", at) or ""
            if delayed.isdigit() and len(delayed) < 10:
                value = int(delayed)
                delays = self.s.greylist_delays
                if value in delays or len(delays) < KEYS_MAX:
                    delays[value] = delays.get(value, 0) + 1

    # -- milter --

    def _milter(self, action: str, head: str, rest: str, at: int) -> None:
        s = self.s
        s.milter_actions.add(action)
        score_at = rest.find(" score=", at)
        reason = _tail_value(rest, "reason", score_at)
        symbols_text = _get(rest, " symbols=", score_at)
        names = [sym.partition("(")[0] for sym in symbols_text.split(",")] if symbols_text else []
        if "" in names:
            names = [name for name in names if name]
        symbols = s.symbols
        counts = symbols.counts
        auth = s.auth
        for name in names:
            n = counts.get(name)
            if n is not None:                   # the usual case, without a call
                counts[name] = n + 1
            else:
                symbols.add(name)
            method_result = AUTH_SYMBOLS.get(name)
            if method_result is not None:
                method, result = method_result
                top = auth.get(method)
                if top is None:
                    top = auth[method] = Top()
                top.counts[result] = top.counts.get(result, 0) + 1     # a fixed set of results
        if "spam" in (_get(rest, " stages=", at) or "").split(","):
            s.spam["scanned"] += 1
        if action == "accept":
            try:
                score = float(_get(rest, " score=", score_at) or "0")
            except ValueError:
                score = 0.0
            if s.tag_level is not None and score >= s.tag_level:
                s.spam["tagged"] += 1
        elif action == "reject":
            s.rejected_senders.add(_get(rest, " from=", at) or "<>")
            s.rejected_clients.add(_client(head))
            for rcpt in (_get(rest, " to=", at) or "").split(","):
                if rcpt:
                    s.rejected_recipients.add(rcpt)
            if reason.startswith(("spam score ", "score ")):
                s.spam["rejected"] += 1
            elif reason.startswith("virus "):
                s.virus["rejected"] += 1
                s.viruses.add(reason[6:])
            elif reason.startswith("banned "):
                s.banned["rejected"] += 1
                s.banned_names.add(reason[16:] if reason.startswith("banned unchecked ") else reason[7:])
        elif action == "tempfail":
            s.milter_tempfail_reasons.add(reason or "-")
        if "CLAMAV_VIRUS" in names:
            s.virus["found"] += 1
        if "CLAMAV_UNAVAILABLE" in names:
            s.virus["unavailable"] += 1
        if "CLAMAV_UNCHECKED" in names:
            s.virus["unchecked"] += 1
        if any(n in _BANNED_SYMBOLS for n in names):
            s.banned["found"] += 1

    def _held(self, rest: str, at: int) -> None:
        s = self.s
        id_at = rest.find(" quarantine_id=", at)
        reason = _get(rest, " reason=", id_at) or "-"
        s.quarantine_held.add(reason)
        if reason == "spam":
            s.spam["quarantined"] += 1
        elif reason == "virus":
            s.virus["quarantined"] += 1
            s.viruses.add(_tail_value(rest, "detail", id_at) or "-")
        elif reason == "banned":
            s.banned["quarantined"] += 1

    # -- quarantine CLI (its audit lines) --

    def _audit(self, action: str) -> None:
        key = {"release": "released", "release-failed": "release_failed", "release-denied": "release_denied",
               "delete": "deleted", "expire": "expired"}[action]
        self.s.quarantine[key] += 1

    # -- delivery --

    def _delivery(self, action: str, rest: str, at: int) -> None:
        s = self.s
        d = s.delivery
        s.deliveries.add(action)
        if action in _REJECTED_DELIVERIES:
            d["rejected"] += 1
        elif action == "tempfail":
            d["tempfail"] += 1
        elif action == "delivered":
            detail = _get(rest, " detail=", at) or ""
            if detail.startswith("stored="):
                # folder names may hold spaces ("Junk E-mail"): the whole value, less the note after it
                stored = _tail_value(rest, "detail", at)[7:]
                if stored.endswith(" sieve-error-keep"):
                    stored = stored[:-17]
                for folder in stored.split(","):
                    name = folder[1:] if folder.startswith(".") else folder
                    if not name:
                        continue
                    s.folders.add(name)
                    if name == "INBOX":
                        d["stored_inbox"] += 1
                    elif name.lower() in _JUNK_FOLDERS:
                        d["stored_junk"] += 1
                    else:
                        d["stored_other"] += 1
            if detail.startswith("redirected=") or rest.find(" redirected=", at) >= 0:
                d["redirected"] += 1
            if detail.startswith("discarded"):
                d["discarded"] += 1
            elif detail == "rejected":          # "rejected with notice": a Sieve reject sent as an MDN
                d["rejected"] += 1
            if " sieve-error-keep" in rest:
                d["sieve_error_keep"] += 1

    def _delivery_note(self, text: str) -> bool:
        """`lmtpd: sent vacation reply from <a> to <b>`, `... vacation reply to <a> suppressed: why`."""
        if text.startswith("sent "):
            what = text[5:].split(" from <", 1)[0]
            if len(what) > 40:
                return False
            self.s.sent.add(what)
            if what == "vacation reply":
                self.s.delivery["vacation_sent"] += 1
            return True
        if text.endswith(" suppressed") or text.endswith(" already sent"):
            self.s.delivery["vacation_suppressed"] += 1
            return True
        return False


# --- field helpers ---------------------------------------------------------------------------

def _get(text: str, key: str, at: int) -> str | None:
    """The value of `key` (" name=") found from `at` on: an address without its <>, else up to
    the next space. None when the line has no such field."""
    i = text.find(key, at)
    if i < 0:
        return None
    i += len(key)
    if text.startswith("<", i):
        j = text.find(">", i)
        return text[i + 1:j] if j >= 0 else text[i + 1:]
    j = text.find(" ", i)
    return text[i:j] if j >= 0 else text[i:]


def _tail_value(rest: str, key: str, at: int) -> str:
    """The whole value of a field that may hold spaces (reason=spam score 9), found from `at`
    on: up to the next " name=" or the end of the line."""
    i = rest.find(f" {key}=", max(at, 0))
    if i < 0:
        return ""
    value = rest[i + len(key) + 2:]
    m = _NEXT_KEY.search(value)
    return value[:m.start()] if m is not None else value


def _client(head: str) -> str:
    i = head.find(" from ")
    return head[i + 6:] if i >= 0 else "-"


def _parse_iso(key: str, *, local: bool) -> float | None:
    try:
        parts = (int(key[0:4]), int(key[5:7]), int(key[8:10]), int(key[11:13]), int(key[14:16]), int(key[17:19]))
        if local:
            return time.mktime((*parts, 0, 0, -1))
        return float(calendar.timegm((*parts, 0, 0, 0)))
    except (ValueError, OverflowError):
        return None


def _tz_offset(tz: str) -> int:
    if tz == "Z":
        return 0
    digits = tz[1:].replace(":", "")
    seconds = int(digits[:2]) * 3600 + int(digits[2:4]) * 60
    return seconds if tz[0] == "+" else -seconds


def _parse_syslog(key: str, now: float) -> float | None:
    """An RFC 3164 stamp ("May  1 12:00:00") in local time; the year is the one that puts it
    at most a day after `now` (a December line read in January is last year's)."""
    try:
        month, day = _MONTHS[key[:3]], int(key[4:6])
        hour, minute, second = int(key[7:9]), int(key[10:12]), int(key[13:15])
        year = time.localtime(now).tm_year
        when = time.mktime((year, month, day, hour, minute, second, 0, 0, -1))
        if when > now + 86400:
            when = time.mktime((year - 1, month, day, hour, minute, second, 0, 0, -1))
        return when
    except (ValueError, KeyError, OverflowError):
        return None
