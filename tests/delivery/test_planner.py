"""The delivery decisions alone (sieve/delivery/planner.py): a Sieve plan and the facts in, the
steps out, with no Maildir, MTA or state store. Each row drives the planner with canned results
for the steps (a store that fails, a redirect that loops...) and checks every step it asked for
and the verdict. tests/delivery/test_executor.py checks the same rules carried out on disk."""

from __future__ import annotations

import dataclasses

import pytest

from owlery.record import RecordType
from sieve import actions as act
from sieve.delivery import planner
from sieve.delivery.planner import Failed, Plan

MSG = b"From: bob@remote.test\nTo: alice@example.org\nSubject: hi\nMessage-ID: <m1@remote.test>\n\nhello\n"
SENDER = "bob@remote.test"
USER = "alice@example.org"
ROOT = "/m"

RULES = planner.Rules(
    default_mailbox="INBOX", delivery_mailbox_autocreate=True, delivery_quota_full_tempfail=False,
    sieve_max_redirects=4, redirect_max_hops=5, redirect_max_targets_redirected=1,
    vacation_envelope_from="recipient",
    delivery_special_use_folders={"Junk": ["Quarantaine", "Spam"], "Trash": ["Trash"]})


def rules(**over):
    return RULES.replace(**over)


def _path(folder: str) -> str:
    return f"{ROOT}/new/1" if folder.upper() == "INBOX" else f"{ROOT}/.{folder}/new/1"


def _default(step):
    if isinstance(step, planner.StoreStep):
        return _path(step.folder)
    if isinstance(step, planner.RedirectStep):
        return "sent"
    if isinstance(step, (planner.VacationStep, planner.SendStep)):
        return True
    return None


def _key(step) -> tuple[str, str]:
    if isinstance(step, planner.StoreStep):
        return ("store", step.folder)
    if isinstance(step, planner.RedirectStep):
        return ("redirect", step.address)
    if isinstance(step, planner.CheckQuota):
        return ("quota", "")
    if isinstance(step, planner.VacationStep):
        return ("vacation", step.to)
    return (type(step).__name__.lower(), "")


def show(step) -> str:
    if isinstance(step, planner.StoreStep):
        return (f"store {step.folder}" + (f" flags={','.join(step.flags)}" if step.flags else "")
                + ("" if step.create else " no-create") + (f" msg={step.message}" if step.message != "final" else ""))
    if isinstance(step, planner.RedirectStep):
        return f"redirect {step.address}" + (f" msg={step.message}" if step.message != "final" else "")
    if isinstance(step, planner.CheckQuota):
        return f"quota {step.size}"
    if isinstance(step, planner.Note):
        return f"note {step.level} {step.text}"
    if isinstance(step, planner.VacationStep):
        return f"vacation {step.to} from=<{step.envelope_from}>"
    if isinstance(step, planner.SendStep):
        return f"send {step.what} {','.join(step.recipients)}"
    if isinstance(step, planner.Mark):
        return f"mark {step.key}"
    raise AssertionError(step)


def verdict(v) -> str:
    if isinstance(v, planner.Delivered):
        return f"delivered {v.detail} [{','.join(v.results)}]"
    if isinstance(v, planner.OverQuota):
        return f"over-quota {'4xx' if v.temporary else '5xx'}"
    if isinstance(v, planner.Refused):
        return f"reject {v.reason}"
    return f"tempfail {v.detail}"


def run(plan: Plan, *, answers=None, facts=None, rules_=RULES, arrived=MSG, sender=SENDER, has_quota=False):
    """Drive the planner; `answers` maps (kind, name) to a step's result (default: it worked)."""
    answers = dict(answers or {})
    seen: list = []

    def carry_out(step):
        seen.append(step)
        key = _key(step)
        if key in answers:
            got = answers[key]
            return got.pop(0) if isinstance(got, list) else got
        return _default(step)

    d = planner.Delivery(plan, arrived, sender, USER, USER, has_quota, ROOT)
    v = planner.drive(planner.steps(d, rules_, facts or planner.Facts()), carry_out)
    return [show(s) for s in seen], verdict(v)


def check(got, expected_steps, expected_verdict):
    steps, v = got
    assert len(steps) == len(expected_steps), (steps, expected_steps)
    for s, e in zip(steps, expected_steps):
        # a note is matched by level and a part of its text; other steps exactly
        assert (s.startswith(e.split(" ~ ")[0]) and e.split(" ~ ")[1] in s) if " ~ " in e else s == e, (steps, e)
    assert v == expected_verdict


def P(*actions, keep=False, **kw):
    return Plan(actions=list(actions), keep=keep, message=kw.pop("message", MSG), **kw)


FULL = Failed("quota", "mailbox full: 900+100 of 1000 bytes")
MISSING = Failed("permanent", "no such folder")
IO = Failed("temporary", "I/O error")
LOOPED = b"X-Sieve-Redirected-From: alice@example.org\n" + MSG
HOPPED = b"X-Sieve-Redirected-From: x@a.test\n" * 5 + MSG
ONCE = b"X-Sieve-Redirected-From: x@a.test\n" + MSG
LISTMAIL = b"List-Id: <l.example.org>\n" + MSG
RED = act.Redirect(address="carol@other.test", envelope_from=SENDER)
RED2 = act.Redirect(address="dave@other.test", envelope_from=SENDER)
VAC = act.Vacation(to=SENDER, tracking_key="vk", period=86400, reply=b"Subject: away\n\nx\n")

ROWS = [
    # id, plan, options, steps, verdict
    ("implicit keep", P(keep=True), {}, ["store INBOX"], "delivered stored=INBOX [stored]"),
    ("discard", P(), {}, [], "delivered discarded [discarded]"),
    ("discard with a quota checks nothing", P(), {"has_quota": True}, [], "delivered discarded [discarded]"),
    ("fileinto, autocreate on", P(act.FileInto(mailbox="Work")), {}, ["store Work"],
     "delivered stored=.Work [folder]"),
    ("fileinto missing folder without :create, autocreate off: INBOX instead",
     P(act.FileInto(mailbox="Work")), {"rules_": rules(delivery_mailbox_autocreate=False),
                                       "answers": {("store", "Work"): MISSING}},
     ["store Work no-create", "note warning ~ cannot store into 'Work' (no such folder); keeping into INBOX",
      "store INBOX"], "delivered stored=INBOX [stored]"),
    ("fileinto :create, autocreate off", P(act.FileInto(mailbox="Work", create=True)),
     {"rules_": rules(delivery_mailbox_autocreate=False)}, ["store Work"], "delivered stored=.Work [folder]"),
    ("keep + fileinto inbox: one copy, flags merged",
     P(act.FileInto(mailbox="inbox", flags=("\\Flagged",)), keep=True, keep_flags=("\\Seen",)), {},
     ["store inbox flags=\\Flagged,\\Seen"], "delivered stored=INBOX [stored]"),
    ("fileinto the same folder twice: one copy, flags merged",
     P(act.FileInto(mailbox="Work", flags=("\\Seen",)), act.FileInto(mailbox="Work", flags=("$A", "\\Seen"))),
     {}, ["store Work flags=\\Seen,$A"], "delivered stored=.Work [folder]"),
    ("Work and work are two folders", P(act.FileInto(mailbox="Work"), act.FileInto(mailbox="work")), {},
     ["store Work", "store work"], "delivered stored=.Work,.work [folder]"),
    ("keep and fileinto elsewhere", P(act.FileInto(mailbox="Work"), keep=True), {},
     ["store Work", "store INBOX"], "delivered stored=.Work,INBOX [stored,folder]"),
    ("ereject refuses, nothing stored", P(act.Reject(reason="go away\nnow", ereject=True), keep=True), {},
     [], "reject go away\nnow"),
    ("reject without a notice address refuses", P(act.Reject(reason="no")), {}, [], "reject no"),
    ("reject with a notice: sent after the keep", P(act.Reject(reason="no", mdn_to=SENDER, mdn=b"x"), keep=True),
     {}, ["store INBOX", f"send reject notice {SENDER}"], "delivered stored=INBOX [stored]"),
    ("reject alone: the notice only", P(act.Reject(reason="no", mdn_to=SENDER, mdn=b"x")), {},
     [f"send reject notice {SENDER}"], "delivered rejected with notice [rejected]"),
    ("over quota bounces", P(keep=True), {"has_quota": True, "answers": {("quota", ""): FULL}},
     [f"quota {len(MSG)}"], "over-quota 5xx"),
    ("over quota, quota_full_tempfail", P(keep=True),
     {"has_quota": True, "answers": {("quota", ""): FULL}, "rules_": rules(delivery_quota_full_tempfail=True)},
     [f"quota {len(MSG)}"], "over-quota 4xx"),
    ("quota unreadable: retry", P(keep=True), {"has_quota": True, "answers": {("quota", ""): IO}},
     [f"quota {len(MSG)}"], "tempfail I/O error"),
    ("quota checked before any redirect", P(RED, keep=True), {"has_quota": True, "answers": {("quota", ""): FULL}},
     [f"quota {len(MSG)}"], "over-quota 5xx"),
    ("quota is checked for the largest copy",
     P(act.FileInto(mailbox="A"), act.FileInto(mailbox="B"), action_messages=[b"x" * 10, b"y" * 99]),
     {"has_quota": True}, ["quota 99", "store A msg=action 0", "store B msg=action 1"],
     "delivered stored=.A,.B [folder]"),
    ("redirect", P(RED), {}, ["redirect carol@other.test"], "delivered redirected=carol@other.test [redirected]"),
    ("redirect sent before (duplicate) counts as sent", P(RED), {"answers": {("redirect", "carol@other.test"): "duplicate"}},
     ["redirect carol@other.test"], "delivered redirected=carol@other.test [redirected]"),
    ("failed redirect is kept", P(RED), {"answers": {("redirect", "carol@other.test"): "failed"}},
     ["redirect carol@other.test", "store INBOX"], "delivered stored=INBOX [stored]"),
    ("failed redirect keeps the message as edited for it", P(RED, action_messages=[b"edited\n"]),
     {"answers": {("redirect", "carol@other.test"): "failed"}},
     ["redirect carol@other.test msg=action 0", "store INBOX msg=action 0"], "delivered stored=INBOX [stored]"),
    ("redirect tempfail alone: retry", P(RED), {"answers": {("redirect", "carol@other.test"): "tempfail"}},
     ["redirect carol@other.test"], "tempfail redirect to <carol@other.test> failed"),
    ("redirect tempfail with a keep: one INBOX copy", P(RED, keep=True),
     {"answers": {("redirect", "carol@other.test"): "tempfail"}},
     ["redirect carol@other.test", "store INBOX"], "delivered stored=INBOX [stored]"),
    # (the executor's chain fails the script going past the limit; a plan past it keeps the rest)
    ("sieve_max_redirects caps the redirects, keeping what it does not send", P(RED, RED2),
     {"rules_": rules(sieve_max_redirects=1)},
     ["redirect carol@other.test", "note warning ~ sieve_max_redirects (1)", "store INBOX"],
     "delivered stored=INBOX redirected=carol@other.test [stored,redirected]"),
    ("redirect loop is kept", P(RED), {"arrived": LOOPED},
     ["note warning ~ redirect loop: alice@example.org already redirected", "store INBOX"],
     "delivered stored=INBOX [stored]"),
    ("redirect to the own address is a loop", P(act.Redirect(address="Alice@example.org")), {},
     ["note warning ~ redirects to its own address", "store INBOX"], "delivered stored=INBOX [stored]"),
    ("hop limit", P(RED), {"arrived": HOPPED}, ["note warning ~ redirect hop limit", "store INBOX"],
     "delivered stored=INBOX [stored]"),
    ("fan-out of an already redirected message", P(RED, RED2), {"arrived": ONCE},
     ["redirect carol@other.test", "note warning ~ redirect fan-out limit", "store INBOX"],
     "delivered stored=INBOX redirected=carol@other.test [stored,redirected]"),
    ("fan-out counts only what went out", P(RED, RED2),
     {"arrived": ONCE, "answers": {("redirect", "carol@other.test"): "failed"}},
     ["redirect carol@other.test", "redirect dave@other.test", "store INBOX"],
     "delivered stored=INBOX redirected=dave@other.test [stored,redirected]"),
    ("vacation after the store", P(VAC, keep=True), {},
     ["store INBOX", f"vacation {SENDER} from=<{USER}>"], "delivered stored=INBOX [stored,vacation]"),
    ("vacation from the null sender", P(VAC, keep=True), {"rules_": rules(vacation_envelope_from="null")},
     ["store INBOX", f"vacation {SENDER} from=<>"], "delivered stored=INBOX [stored,vacation]"),
    ("vacation not sent (already answered)", P(VAC, keep=True), {"answers": {("vacation", SENDER): False}},
     ["store INBOX", f"vacation {SENDER} from=<{USER}>"], "delivered stored=INBOX [stored]"),
    ("no vacation to a list", P(VAC, keep=True, message=LISTMAIL), {},
     ["store INBOX", f"note info vacation reply to <{SENDER}> suppressed: List-Id header"],
     "delivered stored=INBOX [stored]"),
    ("no vacation to the null sender", P(VAC, keep=True), {"sender": ""},
     ["store INBOX", "note info ~ suppressed: null sender"], "delivered stored=INBOX [stored]"),
    ("no vacation to mailer-daemon", P(VAC, keep=True), {"sender": "MAILER-DAEMON@remote.test"},
     ["store INBOX", "note info ~ suppressed: system sender"], "delivered stored=INBOX [stored]"),
    ("special use: the first existing folder with the use",
     P(act.FileInto(mailbox="Junk", special_use="\\Junk")),
     {"facts": planner.Facts({"Quarantaine": False, "Spam": True})}, ["store Spam"], "delivered stored=.Spam [folder]"),
    ("special use: none exists, the named folder",
     P(act.FileInto(mailbox="Junk", special_use="\\junk")), {"facts": planner.Facts({"Spam": False})},
     ["store Junk"], "delivered stored=.Junk [folder]"),
    ("special use unknown: the named folder", P(act.FileInto(mailbox="X", special_use="\\Archive")), {},
     ["store X"], "delivered stored=.X [folder]"),
    ("script tempfail delivers nothing", P(act.FileInto(mailbox="Work"), tempfail="x.sieve: backend down"), {},
     [], "tempfail sieve: x.sieve: backend down"),
    ("runtime error keeps, noted", P(keep=True, errors=["x.sieve: error: boom"]), {},
     ["note warning ~ sieve runtime error for alice@example.org, keeping into INBOX: x.sieve: error: boom",
      "store INBOX"], "delivered stored=INBOX sieve-error-keep [stored]"),
    ("first store fails: retry, nothing committed", P(act.FileInto(mailbox="Work"), keep=True),
     {"answers": {("store", "Work"): IO}}, ["store Work"], "tempfail I/O error"),
    ("a later store fails: that copy lost, noted", P(act.FileInto(mailbox="Work"), keep=True),
     {"answers": {("store", "INBOX"): IO}},
     ["store Work", "store INBOX", "note error ~ store into 'INBOX' failed after another copy was saved"],
     "delivered stored=.Work [folder]"),
    ("first store over quota", P(act.FileInto(mailbox="Work")), {"answers": {("store", "Work"): FULL}},
     ["store Work"], "over-quota 5xx"),
    ("a later store over quota: copy skipped", P(act.FileInto(mailbox="Work"), keep=True),
     {"answers": {("store", "INBOX"): FULL}},
     ["store Work", "store INBOX", "note warning ~ INBOX over quota after a first copy; copy skipped"],
     "delivered stored=.Work [folder]"),
    ("bad default folder is no fallback: retry", P(keep=True), {"answers": {("store", "INBOX"): MISSING}},
     ["store INBOX"], "tempfail no such folder"),
    ("the fallback fails too: retry", P(act.FileInto(mailbox="Bad")),
     {"answers": {("store", "Bad"): MISSING, ("store", "INBOX"): IO}},
     ["store Bad", "note warning ~ cannot store into 'Bad'", "store INBOX"], "tempfail I/O error"),
    ("two bad folders: one fallback copy", P(act.FileInto(mailbox="A"), act.FileInto(mailbox="B")),
     {"answers": {("store", "A"): MISSING, ("store", "B"): MISSING}},
     ["store A", "note warning ~ cannot store into 'A'", "store INBOX", "store B",
      "note warning ~ cannot store into 'B'"],
     "delivered stored=INBOX [stored]"),
    ("bad folder beside a keep: no second INBOX copy", P(act.FileInto(mailbox="Bad"), keep=True),
     {"answers": {("store", "Bad"): MISSING}},
     ["store Bad", "note warning ~ cannot store into 'Bad'", "store INBOX"], "delivered stored=INBOX [stored]"),
    ("the LDA's -m folder is the default mailbox", P(keep=True), {"rules_": rules(default_mailbox="Lists")},
     ["store Lists"], "delivered stored=.Lists [folder]"),
    ("edited copies: each action its own, the keep its own",
     P(act.FileInto(mailbox="Work"), keep=True, action_messages=[b"a\n"], keep_message=b"k\n"), {},
     ["store Work msg=action 0", "store INBOX msg=keep"], "delivered stored=.Work,INBOX [stored,folder]"),
    ("replies and marks come last, in order",
     P(act.Notify(recipients=("n@x.test",), message=b"n"), act.Notify(method="xmpp:x"),
       act.SendMessage(recipients=("s@x.test",), message=b"s"), act.Report(address="abuse@x.test", message=b"r"),
       act.DuplicateMark(tracking_key="dk", period=60), keep=True), {},
     ["store INBOX", "send notification n@x.test", "send message s@x.test", "send report abuse@x.test", "mark dk"],
     "delivered stored=INBOX [stored]"),
]


@pytest.mark.parametrize("plan, options, steps, expected", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_planner(plan, options, steps, expected):
    check(run(plan, **options), steps, expected)


def test_folders_to_probe_are_the_special_use_candidates_once():
    plan = P(act.FileInto(mailbox="Junk", special_use="\\Junk"), act.FileInto(mailbox="J", special_use="junk"),
             act.FileInto(mailbox="Work"))
    assert planner.folders_to_probe(plan, RULES) == ["Quarantaine", "Spam"]


def test_message_references():
    plan = P(act.FileInto(mailbox="A"), keep=True, action_messages=[b"a"], keep_message=b"k", message=b"f")
    d = planner.Delivery(plan, b"arrived", SENDER, USER, USER)
    assert [d.message(r) for r in ("final", "keep", "action 0", "action 7")] == [b"f", b"k", b"a", b"f"]


def test_redirect_judged_on_the_message_as_it_arrived_not_as_edited():
    # A script cannot strip the loop header with editheader: the arrived copy decides.
    plan = P(RED, action_messages=[MSG])
    steps, _ = run(plan, arrived=LOOPED)
    assert steps[0].startswith("note warning redirect loop")


def test_records_behave_as_frozen_dataclasses():
    """The step and verdict types are owlery.record records, not dataclasses (whose per-class method
    compilation cost the in-process LDA ~7 ms per message), with their behaviour."""
    s = planner.StoreStep("Work", ("\\Seen",))
    assert (s.folder, s.flags, s.create, s.message) == ("Work", ("\\Seen",), True, planner.FINAL)
    assert s == planner.StoreStep(folder="Work", flags=("\\Seen",), create=True) and hash(s) == hash(
        planner.StoreStep("Work", ("\\Seen",)))
    assert s != planner.StoreStep("Work") and s != ("Work", ("\\Seen",), True, "final")
    assert repr(s) == "StoreStep(folder='Work', flags=('\\\\Seen',), create=True, message='final')"
    assert s.replace(flags=()) == planner.StoreStep("Work")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.folder = "INBOX"
    with pytest.raises(TypeError):
        planner.StoreStep()
    with pytest.raises(TypeError):
        planner.StoreStep("a", folder="b")
    with pytest.raises(TypeError):
        planner.StoreStep("a", nope=1)
    match s:
        case planner.StoreStep(folder, flags):
            assert (folder, flags) == ("Work", ("\\Seen",))
    a, b = planner.Facts(), planner.Facts()
    assert a.folders == {} and a.folders is not b.folders       # default_factory
    assert all(isinstance(c, RecordType) for c in (planner.StoreStep, planner.Delivered, planner.Rules))
