"""The effects model: what milter stages report (evidence, header edits, actions) and the verdict.

Stages never touch pymilter. They call methods on a `StageReport` (one per message); the
session turns the report into an `Outcome` (an action plus an ordered list of plain-data
effects) that `milters.adapter` applies at end-of-message. Symbols carry scores; the
thresholds in settings (`milter_score_*`) turn the total into tag / quarantine / reject,
unless a stage applied its own levels to the score (`settle_score()`: the spam stage with
spam_*_level, global or per recipient), which then stand instead. A stage may take single
recipients off the envelope (`delrcpt()`: the message was quarantined for them).
Talks to: nothing. Tests: tests/milters/test_session.py, tests/milters/test_content_stages.py,
tests/milters/test_effects_cut.py (where header_safe cuts an over-long line)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from owlery.reply import Reply
from owlery.settings import Float, Str, matching, setting, table_of

# A table of symbol scores, as milter_symbol_scores and spam_evidence_scores give them.
SymbolScores = table_of(Float, keys=matching(r"[A-Z0-9_]+", "a symbol name in capitals, like SPF_FAIL"),
                        name="table of SYMBOL = score")

MILTER_SYMBOL_SCORES = setting(
    "milter_symbol_scores", SymbolScores, {},
    "Score overrides by symbol name, e.g. { DKIM_INVALID = 1.0, CLAMAV_VIRUS = 100 }. A symbol "
    "not listed keeps the score its stage gave it.")
MILTER_SCORE_TAG = setting(
    "milter_score_tag", Float, 5.0,
    "Total score from which a message is tagged (milter_tag_header added). These three "
    "milter_score_* numbers are the one set of thresholds a postmaster sets: with the spam "
    "stage they are also its levels (spam_tag2_level, spam_quarantine_level, spam_reject_level "
    "default to them; set those only to differ, or per recipient in the directory) and the "
    "spam stage applies them; without it they apply to the total directly.")
MILTER_SCORE_QUARANTINE = setting(
    "milter_score_quarantine", Float, None,
    "Total score from which a message is quarantined (by the quarantine stage when configured, "
    "else held in Postfix's hold queue). Unset: never quarantine on score. With the spam "
    "stage: its quarantine level unless spam_quarantine_level is set.")
MILTER_SCORE_REJECT = setting(
    "milter_score_reject", Float, 15.0,
    "Total score from which a message is rejected with 550 5.7.1. With the spam stage: its "
    "reject level unless spam_reject_level or spam_quarantine_level is set.")
MILTER_TAG_HEADER = setting(
    "milter_tag_header", Str, "X-Spam-Flag",
    "Header (value YES) added at the top of a tagged message; the X-Owlery-Score header "
    "beside it lists the symbols. With the spam stage it is added at the spam tag2 level.")

# Named replies of the milter (one catalogue for the product).
REPLY_REJECT_SCORE = Reply(550, "5.7.1", "Message rejected as spam")
REPLY_TEMPFAIL = Reply(451, "4.3.0", "Temporary failure while checking the message, try again later")
REPLY_TOO_BIG = Reply(552, "5.3.4", "Message too big for content checks")


# --- header values that are safe to hand to the MTA -------------------------------------

MAX_HEADER_LINE = 998      # octets per line, CRLF excluded (RFC 5322 section 2.1.1)
# control characters but tab (LF is kept, it folds), and lone surrogates (bytes that were not
# UTF-8, which libmilter could not be handed: the message would fail at end-of-message)
_HEADER_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")


def header_safe(name: str, value: str) -> str:
    """`value` as a well-formed field body for the adapter (LF + white space folds, as it sends).

    Whatever a stage put in it (text a sender wrote: a Subject, an address, a scanner's
    words): a CRLF or CR becomes LF; an LF not followed by a blank gets a tab (it could not
    start a field of its own), blank-only and trailing lines go; other control characters
    (NUL, ESC...) become "?"; a line longer than 998 octets ("Name: " counted on
    the first, RFC 5322 2.1.1) is broken before a blank (a fold, which leaves the value as
    it was), or where it has none, at the limit. A lone surrogate (surrogateescape's stand-in
    for a byte that was not UTF-8) becomes "?" too. A value already fine comes back unchanged.
    """
    text = value.replace("\r\n", "\n").replace("\r", "\n") if "\r" in value else value
    if "\n" in text:
        lines = [line for line in text.split("\n") if line.strip(" \t")] or [""]
        text = lines[0] + "".join("\n" + (line if line[0] in " \t" else "\t" + line) for line in lines[1:])
    text = _HEADER_CONTROLS.sub(lambda m: m[0] if m[0] == "\n" else "?", text)
    lead = len(name.encode("utf-8", "replace")) + 2
    if lead + len(text.encode("utf-8", "surrogateescape")) <= MAX_HEADER_LINE:
        return text
    out = []
    for i, line in enumerate(text.split("\n")):
        first = i == 0
        while _octets(line) + (lead if first else 0) > MAX_HEADER_LINE:
            room = MAX_HEADER_LINE - (lead if first else 0)
            cut = _cut_at(line, room)
            blank = max(line.rfind(" ", 1, cut + 1), line.rfind("\t", 1, cut + 1))
            if blank > 0 and line[:blank].strip(" \t"):
                out.append(line[:blank])
                line = line[blank:]
            else:
                out.append(line[:cut])
                line = "\t" + line[cut:]
            first = False
        out.append(line)
    return "\n".join(out)


def fold(name: str, value: str, width: int = 78) -> str:
    """`value` with an LF put before a blank in each line longer than `width` ("Name: " counted
    on the first) where the line has one (RFC 5322 2.1.1: lines SHOULD stay within 78). Only
    folds: unfolded, the value is the same text."""
    out = []
    for i, line in enumerate(value.split("\n")):
        lead = len(name) + 2 if i == 0 else 0
        while lead + len(line) > width:
            cut = max((j for j in range(1, min(len(line), width - lead + 1)) if line[j] in " \t"
                       and line[:j].strip(" \t")), default=-1)
            if cut < 1:
                break
            out.append(line[:cut])
            line, lead = line[cut:], 0
        out.append(line)
    return "\n".join(out)


def _octets(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def _cut_at(line: str, room: int) -> int:
    """The most characters of `line` whose UTF-8 fits in `room` octets (at least 1).

    A bisection over the prefix length (its octet count only grows with it): about
    log2(room) encodings per cut, where stepping back one character at a time took up to
    3/4 of `room` of them on 4-octet characters, attacker-chosen header text
    (tests/milters/test_effects_cut.py compares it with that walk and counts the encodings)."""
    n = min(len(line), room)
    # the whole candidate first: it raises (or not) exactly as the one-step walk did
    if n <= 1 or _octets(line[:n]) <= room:
        return n
    lo, hi = 1, n - 1           # the answer is in [lo, hi]; lo = 1 even if one character is over
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _octets(line[:mid]) <= room:
            lo = mid
        else:
            hi = mid - 1
    return lo


# --- effects (plain data, applied by the adapter in order) ----------------------------

@dataclasses.dataclass(frozen=True)
class AddHeader:
    """Add a header. index 0 = very top (trace headers); None = after the last header."""

    name: str
    value: str
    index: int | None = 0


@dataclasses.dataclass(frozen=True)
class ChangeHeader:
    """Replace (value) or delete (value None) the `occurrence`-th (1-based) header of that name."""

    name: str
    occurrence: int
    value: str | None


@dataclasses.dataclass(frozen=True)
class Hold:
    """Put the message in Postfix's hold queue (smfi_quarantine) with a reason."""

    reason: str


@dataclasses.dataclass(frozen=True)
class DelRcpt:
    """Take one recipient off the envelope (smfi_delrcpt): the others still get the message."""

    address: str
    reason: str = ""


Effect = AddHeader | ChangeHeader | Hold | DelRcpt


# --- actions (one per message) -------------------------------------------------------

ACCEPT, DISCARD, REJECT, TEMPFAIL = "accept", "discard", "reject", "tempfail"
# When several stages ask for different actions, the strongest wins: nothing is lost
# (a tempfail beats everything), then a refusal, then a silent discard.
_ACTION_RANK = {ACCEPT: 0, DISCARD: 1, REJECT: 2, TEMPFAIL: 3}


@dataclasses.dataclass(frozen=True)
class Symbol:
    """A named piece of evidence with a score: `Symbol("DKIM_INVALID", 1.0, "body hash")`."""

    name: str
    score: float
    detail: str = ""
    stage: str = ""


@dataclasses.dataclass(frozen=True)
class AuthResult:
    """One RFC 8601 resinfo: `dkim=pass header.d=example.net header.s=sel` (method, result, props)."""

    method: str
    result: str
    reason: str | None = None
    properties: tuple[tuple[str, str], ...] = ()   # (ptype.property, value) pairs, in order
    comment: str | None = None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the session decided at end-of-message: an action, its reply, and effects to apply."""

    action: str
    reply: Reply | None
    effects: tuple[Effect, ...]
    score: float
    symbols: tuple[Symbol, ...]
    reason: str = ""


class StageReport:
    """Collects what the stages say about one message; stages call its methods.

    - header edits: `add_header()` (top by default, as trace headers belong), `append_header()`,
      `change_header()`, `remove_header()`;
    - evidence: `symbol(name, score, detail)`; `score` is the running total after overrides;
    - actions: `reject(reply)`, `tempfail(reply)`, `discard(reason)`, `hold(reason)`;
    - recipients: `delrcpt(address, reason)` takes one off the envelope (`removed` lists them);
    - `settle_score()`: this stage applied its own levels to the score, the milter_score_*
      thresholds stand aside (`verdict()` answers "accept");
    - authentication: `auth_result(...)` results the `authres` stage writes as one header;
    - `quarantined(ref)`: the quarantine stage stored the message (so no hold fallback);
    - `data`: a dict for stages to pass facts along (e.g. "spf" -> the SPF result);
    - `progress()`: tell the MTA we are still working (call during long backend waits).
    """

    def __init__(self, settings: Any, progress: Callable[[], None] | None = None):
        self._settings = settings
        self._progress = progress
        self.effects: list[Effect] = []
        self.symbols: list[Symbol] = []
        self.auth_results: list[AuthResult] = []
        self.action = ACCEPT
        self.reply: Reply | None = None
        self.reason = ""
        self.quarantine_ref: str | None = None
        self.removed: dict[str, str] = {}          # recipient taken off the envelope -> why
        self.score_settled_by: str | None = None
        self.data: dict[str, Any] = {}
        self.stage = ""              # set by the session while a stage runs

    # header edits
    def add_header(self, name: str, value: str, *, index: int | None = 0) -> None:
        self.effects.append(AddHeader(name, header_safe(name, value), index))

    def append_header(self, name: str, value: str) -> None:
        self.effects.append(AddHeader(name, header_safe(name, value), None))

    def change_header(self, name: str, occurrence: int, value: str) -> None:
        self.effects.append(ChangeHeader(name, occurrence, header_safe(name, value)))

    def remove_header(self, name: str, occurrence: int) -> None:
        self.effects.append(ChangeHeader(name, occurrence, None))

    # evidence
    def symbol(self, name: str, score: float = 0.0, detail: str = "") -> Symbol:
        overrides = self._settings.milter_symbol_scores
        if name in overrides:
            score = float(overrides[name])
        sym = Symbol(name, float(score), detail, self.stage)
        self.symbols.append(sym)
        return sym

    @property
    def score(self) -> float:
        return round(sum(s.score for s in self.symbols), 3)

    def has_symbol(self, name: str) -> bool:
        return any(s.name == name for s in self.symbols)

    # actions
    def _act(self, action: str, reply: Reply | None, reason: str) -> None:
        if _ACTION_RANK[action] > _ACTION_RANK[self.action]:
            self.action, self.reply, self.reason = action, reply, reason or self.stage

    def reject(self, reply: Reply, reason: str = "") -> None:
        if not reply.is_permanent:
            raise ValueError(f"reject needs a 5xx reply, got {reply}")
        self._act(REJECT, reply, reason)

    def tempfail(self, reply: Reply = REPLY_TEMPFAIL, reason: str = "") -> None:
        if not reply.is_temporary:
            raise ValueError(f"tempfail needs a 4xx reply, got {reply}")
        self._act(TEMPFAIL, reply, reason)

    def discard(self, reason: str) -> None:
        self._act(DISCARD, None, reason)

    def hold(self, reason: str) -> None:
        # Postfix logs the reason (smfi_quarantine): one line, bounded, whatever a stage put in it
        # (recipients, a scanner's words).
        reason = "".join(c if c.isprintable() else "?" for c in reason)
        self.effects.append(Hold(reason if len(reason) <= 300 else reason[:299] + "\u2026"))

    def quarantined(self, ref: str) -> None:
        self.quarantine_ref = ref

    def delrcpt(self, address: str, reason: str = "") -> None:
        if address not in self.removed:
            self.removed[address] = reason
            self.effects.append(DelRcpt(address, reason))

    def settle_score(self) -> None:
        self.score_settled_by = self.stage or "?"

    def auth_result(self, method: str, result: str, *, reason: str | None = None,
                    comment: str | None = None, **properties: str) -> AuthResult:
        """Record one result; properties as keyword `header_d="x"` -> `header.d=x`."""
        props = tuple((k.replace("_", ".", 1), v) for k, v in properties.items() if v is not None)
        res = AuthResult(method, result, reason, props, comment)
        self.auth_results.append(res)
        return res

    def progress(self) -> None:
        if self._progress is not None:
            self._progress()

    # verdict
    def verdict(self) -> str:
        """The score's action now: "reject", "quarantine", "tag" or "accept" (thresholds from settings).

        "accept" once a stage settled the score: it applied its own levels (which default to
        these very thresholds) and acted on them; acting twice would undo per-recipient levels.
        """
        s = self._settings
        if self.score_settled_by is not None:
            return "accept"
        total = self.score
        if s.milter_score_reject is not None and total >= s.milter_score_reject:
            return "reject"
        if s.milter_score_quarantine is not None and total >= s.milter_score_quarantine:
            return "quarantine"
        if s.milter_score_tag is not None and total >= s.milter_score_tag:
            return "tag"
        return "accept"

    def finish(self) -> Outcome:
        """Apply the score verdict on top of explicit actions and freeze the outcome."""
        verdict = self.verdict()
        effects = list(self.effects)
        if self.action == ACCEPT:
            if verdict == "reject":
                self._act(REJECT, REPLY_REJECT_SCORE, f"score {self.score}")
            elif verdict == "quarantine" and self.quarantine_ref is None \
                    and not any(isinstance(e, Hold) for e in effects):
                effects.append(Hold(f"score {self.score}"))
        if self.action == ACCEPT and verdict in ("tag", "quarantine"):
            effects.append(AddHeader(self._settings.milter_tag_header, "YES", 0))
        if self.symbols and self.action == ACCEPT:
            listed = ", ".join(f"{s.name}={s.score:g}" for s in self.symbols)
            effects.append(AddHeader("X-Owlery-Score", header_safe(
                "X-Owlery-Score", fold("X-Owlery-Score", f"{self.score:g} ({listed})")), 0))
        if self.action != ACCEPT:
            effects = []            # changes are pointless on a refused message
        return Outcome(self.action, self.reply, tuple(effects), self.score, tuple(self.symbols),
                       self.reason)
