"""What one delivery does, decided apart from doing it: the Sieve result in, plain steps out.

sieve/delivery/executor.py runs the script chain into a `Plan`, gathers the facts the rules
need (which special-use folders exist: `folders_to_probe`), then carries out the steps
`steps()` yields and sends each step's result back into it: a sans-I/O generator, like
sieve/delivery/lmtp.py's machine. No file, socket or store is touched here, so the rules are
table-tested apart from any Maildir (tests/delivery/test_planner.py).

The rules, in the order the steps come (executor.py's docstring says why this order is safe):
1. a temporary failure in the scripts delivers nothing (`Tempfail`); runtime errors were
   already turned into a keep by the chain and are noted;
2. fileinto goes to the first existing folder with its :specialuse (RFC 8579), else the named
   one, created when :create or delivery_mailbox_autocreate says so; keep to the default
   mailbox (INBOX, or the LDA's -m), always created;
3. ereject, or a reject without a notice address, refuses in the dialogue (`Refused`), nothing
   stored;
4. quota is checked once, for the largest copy, before anything leaves (`CheckQuota`): full is
   `OverQuota` (452 or 552 by delivery_quota_full_tempfail), a broken maildirsize a `Tempfail`;
5. redirects, at most sieve_max_redirects; a loop, the hop and fan-out limits (judged on the
   message as it arrived: sieve/delivery/redirect.py) and a failed send become a keep into the
   default mailbox; a temporary failure with nothing else to do is a `Tempfail`;
6. stores, each mailbox once (INBOX in any case), flags merged; the first store failing means
   nothing was committed (`Tempfail` / `OverQuota`); a folder that cannot be used falls back
   to the default mailbox once; a later failure only costs that copy (noted);
5b. pipes (vnd.dovecot.pipe, sieve/extprograms.py): a pipe that fails (with or without :try)
   becomes a keep into the default mailbox, as Pigeonhole's failure keep, so nothing is lost;
   :try only makes the log line a warning instead of an error;
7. vacation (unless sieve/delivery/vacation.py refuses the sender), notifications, messages,
   reports, reject notices, duplicate marks: best effort, never failing the delivery;
8. `Delivered`, with the log detail and the result labels for the metrics.

Steps carry messages by reference (`FINAL`, `KEEP`, `action N`); `Delivery.message()` resolves
them. Results sent back: a stored file's path or `Failed` for `StoreStep`; None or `Failed` for
`CheckQuota`; "sent", "duplicate", "tempfail" or "failed" for `RedirectStep`; None (piped) or
`Failed` for `PipeStep`; True when a
`VacationStep` or `SendStep` went out; anything for `Note` and `Mark`.
Talks to: nothing. Tests: tests/delivery/test_planner.py
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sieve.delivery import redirect as redirect_mod
from sieve.delivery import vacation as vacation_mod

if TYPE_CHECKING:
    from sieve import actions as act

FINAL = "final"          # the message as the last script left it
KEEP = "keep"            # as it stood when the script asked for the explicit keep


class Factory:
    """A field default made anew for each record (dataclasses.field(default_factory=...))."""

    def __init__(self, make: Callable[[], Any]):
        self.make = make


class Record:
    """What @dataclasses.dataclass(frozen=True) gives, for the value types below (and
    executor.DeliveryOutcome): fields from the class's annotations in order, each a class
    attribute's default when it has one (a Factory's product); init by position or keyword;
    == between records of the same class,
    hash and repr over the fields; no assignment (FrozenInstanceError); __match_args__;
    `_replace(**changes)` for dataclasses.replace. Why not dataclasses: it compiles each
    class's methods when the module loads (~0.45 ms a frozen class, 7 ms for this module at
    every in-process LDA start); these share one set. Tests: tests/delivery/test_planner.py"""

    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _defaults: dict[str, Any] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls._fields = tuple(cls.__dict__.get("__annotations__", {}))
        cls._defaults = {f: cls.__dict__[f] for f in cls._fields if f in cls.__dict__}
        for f, default in cls._defaults.items():
            if isinstance(default, Factory):
                delattr(cls, f)          # as dataclasses leaves a default_factory field
        cls.__match_args__ = cls._fields

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._fields
        name = type(self).__name__
        if len(args) > len(fields):
            raise TypeError(f"{name}() takes {len(fields)} arguments but {len(args)} were given")
        for k in kwargs:
            if k not in fields:
                raise TypeError(f"{name}() got an unexpected keyword argument {k!r}")
            if fields.index(k) < len(args):
                raise TypeError(f"{name}() got multiple values for argument {k!r}")
        values = dict(zip(fields, args), **kwargs)
        for f in fields:
            if f in values:
                value = values[f]
            elif f in self._defaults:
                value = self._defaults[f]
                value = value.make() if isinstance(value, Factory) else value
            else:
                raise TypeError(f"{name}() missing required argument: {f!r}")
            object.__setattr__(self, f, value)

    def _values(self) -> tuple:
        return tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()     # type: ignore[attr-defined]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__qualname__}({inner})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def _replace(self, **changes: Any) -> Any:
        return type(self)(**{**{f: getattr(self, f) for f in self._fields}, **changes})


@dataclasses.dataclass
class Plan:
    """The merged actions of the script chain (executor.DeliveryExecutor.plan builds it)."""

    actions: list = dataclasses.field(default_factory=list)
    keep: bool = True
    keep_flags: tuple[str, ...] = ()
    message: bytes = b""
    errors: list[str] = dataclasses.field(default_factory=list)
    tempfail: str | None = None
    # The message each action stores or sends (RFC 5293 7: as edited when the script asked
    # for it), parallel to `actions`; `keep_message` for the keep.
    action_messages: list[bytes] = dataclasses.field(default_factory=list)
    keep_message: bytes | None = None


class Rules(Record):
    """The settings the decisions read (attribute names as in the settings, so the pure helpers
    of redirect.py and vacation.py take a Rules where they take settings)."""

    default_mailbox: str
    delivery_mailbox_autocreate: bool
    delivery_quota_full_tempfail: bool
    sieve_max_redirects: int
    redirect_max_hops: int
    redirect_max_targets_redirected: int
    vacation_envelope_from: str
    delivery_special_use_folders: Mapping[str, Sequence[str]]

    @classmethod
    def from_settings(cls, settings: Any, default_mailbox: str | None = None) -> "Rules":
        return cls(default_mailbox or settings.sieve_default_mailbox, settings.delivery_mailbox_autocreate,
                   settings.delivery_quota_full_tempfail, settings.sieve_max_redirects,
                   settings.redirect_max_hops, settings.redirect_max_targets_redirected,
                   settings.vacation_envelope_from, settings.delivery_special_use_folders)


class Delivery(Record):
    """One message for one mailbox: the merged plan and the envelope."""

    plan: Plan
    arrived: bytes          # as it arrived (trace fields included): loops and duplicates are judged on it
    sender: str
    recipient: str          # the envelope recipient, for the notes
    user: str               # the mailbox owner's address (loop header, vacation's own-address rule)
    has_quota: bool = False
    maildir_root: str = ""  # to name the folders of stored paths in the log detail

    def message(self, ref: str) -> bytes:
        """The bytes a step's message reference stands for."""
        plan = self.plan
        if ref == KEEP:
            return plan.keep_message if plan.keep_message is not None else plan.message
        if ref.startswith("action "):
            i = int(ref[7:])
            return plan.action_messages[i] if i < len(plan.action_messages) else plan.message
        return plan.message


class Facts(Record):
    """What was looked up before deciding: `folders` maps each name `folders_to_probe` gave to
    whether that folder exists (a folder that cannot be checked counts as missing)."""

    folders: Mapping[str, bool] = Factory(dict)


class Failed(Record):
    """A step that did not work: kind "quota" (QuotaExceeded), "permanent" (a bad or missing
    folder) or "temporary" (I/O trouble, an unsafe path)."""

    kind: str
    detail: str


_NO_FACTS = Facts()


# --- steps -------------------------------------------------------------------------------

class Note(Record):
    """A decision worth a log line (level: info, warning, error)."""

    level: str
    text: str


class CheckQuota(Record):
    size: int


class RedirectStep(Record):
    address: str
    envelope_from: str | None      # None: the original sender
    message: str = FINAL


class PipeStep(Record):
    """Give the message to a vnd.dovecot.pipe program: `action` is the script's Pipe action
    (sieve.extensions.extprograms.Pipe: program, arguments, :try, environment)."""

    action: Any
    message: str = FINAL


class StoreStep(Record):
    folder: str
    flags: tuple[str, ...] = ()
    create: bool = True
    message: str = FINAL


class VacationStep(Record):
    to: str
    envelope_from: str
    reply: bytes
    tracking_key: str = ""
    period: float = 0.0


class SendStep(Record):
    what: str                      # notification, message, report, reject notice
    envelope_from: str
    recipients: tuple[str, ...]
    message: bytes


class Mark(Record):
    key: str
    period: float


# --- the last step: the verdict -----------------------------------------------------------

class Tempfail(Record):
    detail: str


class Refused(Record):
    reason: str


class OverQuota(Record):
    detail: str
    temporary: bool


class Delivered(Record):
    stored: tuple[str, ...]        # file paths written
    detail: str
    results: tuple[str, ...]       # stored, folder, redirected, vacation, discarded, rejected


Step = Note | CheckQuota | RedirectStep | PipeStep | StoreStep | VacationStep | SendStep | Mark
Verdict = Tempfail | Refused | OverQuota | Delivered


def special_use_folders(table: Mapping[str, Sequence[str]], flag: str) -> list[str]:
    """The folder names configured for special-use `flag` ("\\Junk" or "Junk", any case)."""
    want = flag.lstrip("\\").lower()
    return [n for key, names in table.items() if key.lstrip("\\").lower() == want for n in names]


def folders_to_probe(plan: Plan, rules: Rules) -> list[str]:
    """The folders whose existence the decisions need (fileinto :specialuse candidates)."""
    if not plan.actions:
        return []
    from sieve import actions as act        # only when a script ran: the plain LDA starts faster
    names: list[str] = []
    for a in plan.actions:
        if isinstance(a, act.FileInto) and a.special_use:
            names += special_use_folders(rules.delivery_special_use_folders, a.special_use)
    return list(dict.fromkeys(names))


def folder_label(root: str, path: str) -> str:
    """The folder a stored file is in, as the log names it: INBOX, or its directory (.Work)."""
    folder = os.path.dirname(os.path.dirname(path))
    return "INBOX" if folder == root else os.path.basename(folder)


def _inbox_key(folder: str) -> str:
    return folder.upper() if folder.upper() == "INBOX" else folder


def steps(d: Delivery, rules: Rules, facts: Facts = _NO_FACTS) -> Generator[Step, Any, Verdict]:
    """The delivery's steps in order (send each one's result back); returns the verdict."""
    plan = d.plan
    if plan.tempfail is not None:
        return Tempfail(f"sieve: {plan.tempfail}")
    for err in plan.errors:
        yield Note("warning", f"sieve runtime error for {d.recipient}, keeping into INBOX: {err}")
    if plan.actions:
        from sieve import actions as act    # only when a script ran: the plain LDA starts faster
    default = rules.default_mailbox
    stores: list[StoreStep] = []
    redirects: list[tuple[act.Redirect, str]] = []
    replies: list[act.Action] = []
    marks: list[act.DuplicateMark] = []
    rejects: list[act.Reject] = []
    pipes: list[tuple[Any, str]] = []
    for i, a in enumerate(plan.actions):
        ref = f"action {i}" if plan.action_messages else FINAL
        if isinstance(a, act.FileInto):
            # RFC 8579: an existing folder with that special use wins over the named one.
            box = next((n for n in special_use_folders(rules.delivery_special_use_folders, a.special_use)
                        if facts.folders.get(n)), None) if a.special_use else None
            stores.append(StoreStep(box or a.mailbox, tuple(a.flags), a.create or rules.delivery_mailbox_autocreate,
                                ref))
        elif isinstance(a, act.Redirect):
            redirects.append((a, ref))
        elif isinstance(a, act.Reject):
            rejects.append(a)
        elif isinstance(a, (act.Vacation, act.Notify, act.SendMessage, act.Report)):
            replies.append(a)
        elif isinstance(a, act.DuplicateMark):
            marks.append(a)
        elif a.name == "pipe":              # sieve.extensions.extprograms.Pipe
            pipes.append((a, ref))
    if plan.keep:
        stores.append(StoreStep(default, tuple(plan.keep_flags), True,
                            KEEP if plan.keep_message is not None else FINAL))

    # ereject (or a reject with nobody to notify): refuse in the dialogue; nothing is stored.
    for r in rejects:
        if r.ereject or not r.mdn_to:
            return Refused(r.reason)

    # Quota first, before anything leaves: a full mailbox must not half-deliver.
    if stores and d.has_quota:
        failed = yield CheckQuota(max(len(d.message(s.message)) for s in stores))
        if isinstance(failed, Failed):
            if failed.kind == "quota":
                return OverQuota(failed.detail, rules.delivery_quota_full_tempfail)
            return Tempfail(failed.detail)

    # Redirects. A refused or failed one becomes a keep so nothing is lost.
    sent: list[str] = []
    for r, ref in redirects[: rules.sieve_max_redirects]:
        why = redirect_mod.refusal(d.arrived, d.user, r.address, len(sent), rules)
        if why is not None:
            yield Note("warning", f"{why}; keeping it (not redirected to <{r.address}>)")
            status = "loop"
        else:
            status = yield RedirectStep(r.address, r.envelope_from, ref)
        if status == "tempfail" and not stores and not sent:
            return Tempfail(f"redirect to <{r.address}> failed")
        if status in ("loop", "tempfail", "failed"):
            if not any(s.folder == default for s in stores):
                stores.append(StoreStep(default, (), True, ref))
        else:
            sent.append(r.address)

    # Pipes. A failed one (:try or not) becomes a keep, as Pigeonhole's failure keep.
    piped: list[str] = []
    for p, ref in pipes:
        got = yield PipeStep(p, ref)
        if isinstance(got, Failed):
            yield Note("warning" if p.try_ else "error",
                       f"{d.recipient}: pipe to program `{p.program}' failed ({got.detail}); keeping it")
            if not any(s.folder == default for s in stores):
                stores.append(StoreStep(default, (), True, ref))
        else:
            piped.append(p.program)

    # Stores, each mailbox once (flags merged).
    merged: list[StoreStep] = []
    where: dict[str, int] = {}
    for s in stores:
        key = _inbox_key(s.folder)
        if key in where:
            first = merged[where[key]]
            merged[where[key]] = first._replace(flags=tuple(dict.fromkeys(first.flags + s.flags)))
            continue
        where[key] = len(merged)
        merged.append(s)
    written: list[str] = []
    fallback_done = False
    for s in merged:
        got = yield s
        if not isinstance(got, Failed):
            written.append(got)
            continue
        if got.kind == "quota":
            if not written:
                return OverQuota(got.detail, rules.delivery_quota_full_tempfail)
            yield Note("warning", f"{d.recipient}: {s.folder} over quota after a first copy; copy skipped")
            continue
        if got.kind == "permanent" and s.folder != default:
            # A bad or missing folder: failure keep into the default mailbox (once).
            yield Note("warning", f"{d.recipient}: cannot store into {s.folder!r} ({got.detail}); "
                                  f"keeping into {default}")
            if not any(m.folder == default for m in merged) and not fallback_done:
                fallback_done = True
                again = yield StoreStep(default, (), True, s.message)
                if not isinstance(again, Failed):
                    written.append(again)
                elif not written:
                    return Tempfail(again.detail)
            continue
        if not written:
            return Tempfail(got.detail)
        yield Note("error", f"{d.recipient}: store into {s.folder!r} failed after another copy was saved: "
                            f"{got.detail}")

    # Replies and marks: best effort, after the message is safe.
    vacation = False
    for a in replies:
        if isinstance(a, act.Vacation):
            why = vacation_mod.refusal(plan.message, d.sender, d.user)
            if why is not None:
                yield Note("info", f"vacation reply to <{d.sender}> suppressed: {why}")
                continue
            went = yield VacationStep(a.to, vacation_mod.envelope_from(rules, d.user), a.reply, a.tracking_key,
                                  a.period)
            vacation = bool(went) or vacation
        elif isinstance(a, act.Notify):
            if a.recipients and a.message:
                yield SendStep("notification", a.envelope_from, tuple(a.recipients), a.message)
        elif isinstance(a, act.SendMessage):
            yield SendStep("message", a.envelope_from, tuple(a.recipients), a.message)
        elif isinstance(a, act.Report):
            yield SendStep("report", a.envelope_from, (a.address,), a.message)
    for r in rejects:
        if not r.ereject and r.mdn_to:
            yield SendStep("reject notice", "", (r.mdn_to,), r.mdn)
    for m in marks:
        yield Mark(m.tracking_key, m.period)
    return _delivered(d, written, sent, bool(rejects), vacation, piped)


def _delivered(d: Delivery, written: list[str], sent: list[str], rejected: bool, vacation: bool,
               piped: Sequence[str] = ()) -> Delivered:
    folders = [folder_label(d.maildir_root, p) for p in written]
    detail = []
    if written:
        detail.append("stored=" + ",".join(folders))
    if sent:
        detail.append("redirected=" + ",".join(sent))
    if piped:
        detail.append("piped=" + ",".join(piped))
    if not written and not sent and not piped:
        detail.append("discarded" if not rejected else "rejected with notice")
    if d.plan.errors:
        detail.append("sieve-error-keep")
    results = (["stored"] if "INBOX" in folders else []) + (["folder"] if set(folders) - {"INBOX"} else []) \
        + (["redirected"] if sent else []) + (["vacation"] if vacation else []) \
        + ([] if written or sent or piped else ["discarded" if not rejected else "rejected"])
    return Delivered(tuple(written), " ".join(detail), tuple(results))


def drive(gen: Generator[Step, Any, Verdict], carry_out: Callable[[Step], Any]) -> Verdict:
    """Run `steps()` to its verdict, carrying out each step with `carry_out(step) -> result`."""
    try:
        step = next(gen)
        while True:
            step = gen.send(carry_out(step))
    except StopIteration as stop:
        return stop.value
