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
5. redirects, at most sieve_max_redirects over the whole chain (the executor fails the script
   that goes past it: `redirect_limit_error`); a loop, the hop and fan-out limits (judged on the
   message as it arrived: sieve/delivery/redirect.py), a failed send and a redirect past the
   limit in a plan built otherwise become a keep into the default mailbox; a temporary failure
   with nothing else to do is a `Tempfail`;
6. stores, each mailbox once (INBOX in any case), flags merged, except that the keep adds none
   to the copy of a :specialuse fileinto fallen back to INBOX, which has the flags of the last
   fileinto naming INBOX (FileInto.fallback_flags, as Dovecot LMTP); the first store failing means
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
Talks to: nothing. Tests: tests/delivery/test_planner.py, tests/core/test_review_followups_s21.py
"""

from __future__ import annotations

import os
from _collections_abc import Callable, Generator, Mapping, Sequence   # = collections.abc, without loading collections (LDA start-up)

from owlery.record import Factory, Record, field

TYPE_CHECKING = False     # not `from typing import ...`: the LDA's start-up pays for every import (~1.7 ms)
if TYPE_CHECKING:
    from typing import Any
    from sieve import actions as act

FINAL = "final"          # the message as the last script left it
KEEP = "keep"            # as it stood when the script asked for the explicit keep


class Plan(Record):
    """The merged actions of the script chain (executor.DeliveryExecutor.plan builds it)."""

    actions: list = field(default_factory=list)
    keep: bool = True
    keep_flags: tuple[str, ...] = ()
    message: bytes = b""
    errors: list[str] = field(default_factory=list)
    tempfail: str | None = None
    # The message each action stores or sends (RFC 5293 7: as edited when the script asked
    # for it), parallel to `actions`; `keep_message` for the keep.
    action_messages: list[bytes] = field(default_factory=list)
    keep_message: bytes | None = None


class Rules(Record, frozen=True):
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


class Delivery(Record, frozen=True):
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


class Facts(Record, frozen=True):
    """What was looked up before deciding: `folders` maps each name `folders_to_probe` gave to
    whether that folder exists (a folder that cannot be checked counts as missing)."""

    folders: Mapping[str, bool] = Factory(dict)


class Failed(Record, frozen=True):
    """A step that did not work: kind "quota" (QuotaExceeded), "permanent" (a bad or missing
    folder) or "temporary" (I/O trouble, an unsafe path)."""

    kind: str
    detail: str


_NO_FACTS = Facts()


# --- steps -------------------------------------------------------------------------------

class Note(Record, frozen=True):
    """A decision worth a log line (level: info, warning, error)."""

    level: str
    text: str


class CheckQuota(Record, frozen=True):
    size: int


class RedirectStep(Record, frozen=True):
    address: str
    envelope_from: str | None      # None: the original sender
    message: str = FINAL


class PipeStep(Record, frozen=True):
    """Give the message to a vnd.dovecot.pipe program: `action` is the script's Pipe action
    (sieve.extensions.extprograms.Pipe: program, arguments, :try, environment)."""

    action: Any
    message: str = FINAL


class StoreStep(Record, frozen=True):
    folder: str
    flags: tuple[str, ...] = ()
    create: bool = True
    message: str = FINAL


class VacationStep(Record, frozen=True):
    to: str
    envelope_from: str
    reply: bytes
    tracking_key: str = ""
    period: float = 0.0


class SendStep(Record, frozen=True):
    what: str                      # notification, message, report, reject notice
    envelope_from: str
    recipients: tuple[str, ...]
    message: bytes


class Mark(Record, frozen=True):
    key: str
    period: float


# --- the last step: the verdict -----------------------------------------------------------

class Tempfail(Record, frozen=True):
    detail: str


class Refused(Record, frozen=True):
    reason: str


class OverQuota(Record, frozen=True):
    detail: str
    temporary: bool


class Delivered(Record, frozen=True):
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


def redirect_targets(actions: Sequence[Any]) -> list[str]:
    """The distinct addresses `actions` redirect to, in order: a redirect to an address already
    redirected to is no new one (RFC 5228 2.10.3; compared as sieve.result.same_address)."""
    from sieve import actions as act
    from sieve.result import same_address
    targets: list[str] = []
    for a in actions:
        if isinstance(a, act.Redirect) and not any(same_address(a.address, t) for t in targets):
            targets.append(a.address)
    return targets


def redirect_limit_error(earlier: Sequence[Any], added: Sequence[Any], limit: int) -> str | None:
    """The runtime error of a script whose actions (`added`) take the chain's redirects past
    sieve_max_redirects, else None. The limit counts the whole chain of scripts, as Pigeonhole's
    multiscript shares one result (sieve-test -s: the script that goes past it fails, its
    actions are cancelled and the implicit keep taken; the earlier scripts' actions stand)."""
    if not added or len(redirect_targets([*earlier, *added])) <= limit:
        return None
    from sieve.result import redirect_limit_text
    return redirect_limit_text(limit)


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
    fallen_back: set[str] = set()     # where a :specialuse fileinto stores, finding no such folder
    for i, a in enumerate(plan.actions):
        ref = f"action {i}" if plan.action_messages else FINAL
        if isinstance(a, act.FileInto):
            # RFC 8579: an existing folder with that special use wins over the named one.
            box = next((n for n in special_use_folders(rules.delivery_special_use_folders, a.special_use)
                        if facts.folders.get(n)), None) if a.special_use else None
            # fallen back to the named mailbox: a later fileinto into it set the copy's flags
            flags = a.flags if box or a.fallback_flags is None else a.fallback_flags
            stores.append(StoreStep(box or a.mailbox, tuple(flags), a.create or rules.delivery_mailbox_autocreate,
                                ref))
            if a.special_use and box is None:
                fallen_back.add(_inbox_key(a.mailbox))
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
    keep_at = len(stores) if plan.keep else -1
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
    if redirects:
        from sieve.delivery import redirect as redirect_mod     # here: most deliveries redirect nothing
        from sieve.result import same_address
        # The chain enforces sieve_max_redirects (a script past it fails: redirect_limit_error);
        # a plan built otherwise still never drops a copy: one past the limit is kept instead.
        allowed = redirect_targets([r for r, _ in redirects])[: rules.sieve_max_redirects]
    for r, ref in redirects:
        if any(same_address(r.address, t) for t in allowed):
            why = redirect_mod.refusal(d.arrived, d.user, r.address, len(sent), rules)
        else:
            why = f"more redirects than sieve_max_redirects ({rules.sieve_max_redirects})"
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
    for i, s in enumerate(stores):
        key = _inbox_key(s.folder)
        if key in where:
            if i == keep_at and key in fallen_back:
                # a :specialuse fileinto fell back to the keep's mailbox: its flags stand and
                # the keep adds none, as for fileinto "INBOX" + keep (sieve.result; Dovecot LMTP)
                continue
            first = merged[where[key]]
            merged[where[key]] = first.replace(flags=tuple(dict.fromkeys(first.flags + s.flags)))
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
            from sieve.delivery import vacation as vacation_mod
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
