"""Differential runner: generates cases, runs them through Owlery's engine and Pigeonhole's
`sieve-test`, compares the normalised outcomes, and reports differences by area.

    python -m tests.sieve.differential.runner --pairs 10000 --seed 1 [--workers 2] [--show 5] [--shapes all]

(scripts/sieve-differential wraps this.) Pairs are independent (case N of seed S is fixed), so
a difference is reproduced with `--start N --pairs 1 --show 1`. sieve-test's process start is
the cost (~15 ms a pair); pairs cannot be batched into one sieve-test run (it takes one script
and one message, and `-s` chains scripts into one result), so workers run pairs in parallel,
each with its own sieve-test home. A difference a known deviation explains
(tests/sieve/differential/deviations.toml) is counted apart, not as a failure.
Talks to: generator, pigeonhole, normalise (this folder), sieve.api.
Tests: tests/sieve/differential/test_differential.py.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import datetime as dt
import itertools
import os
import pwd
import re
import socket
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

from tests.sieve.differential import pigeonhole
from tests.sieve.differential.generator import FOLDERS, SHAPES_ALL, Case, make_case
from tests.sieve.differential.normalise import Outcome, from_owlery, from_pigeonhole, header_fields

HERE = Path(__file__).resolve().parent
DEVIATIONS = HERE / "deviations.toml"


def scratch_dir() -> str | None:
    """/dev/shm when there is one (sieve-test writes a Maildir per pair), else the default."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def owlery_settings():
    """Owlery's settings matching the Pigeonhole configuration in pigeonhole.CONF."""
    from owlery.settings import Settings

    return Settings().replace(
        sieve_postmaster_address=pigeonhole.POSTMASTER,
        sieve_spamtest_status_header="X-Spam-Score:(-?[0-9]+(\\.[0-9]+)?)",
        sieve_spamtest_status_type="score",
        sieve_spamtest_max_value="10",
        sieve_virustest_status_header="X-Virus-Scan",
        sieve_virustest_status_type="text",
        sieve_virustest_text_values=["clean", "cured", "unknown", "suspicious", "infected"],
        sieve_max_redirects=4,
        sieve_max_actions=32,
    )


# What sieve-test's environment says (it runs as a mail store, "MS", after delivery, "post";
# host is the machine's name): a delivery passes such items to Owlery's run().
ENVIRONMENT = {
    "host": socket.gethostname(),
    "name": "Pigeonhole Sieve",
    "version": "0.5.19",
    "location": "MS",
    "phase": "post",
    "vnd.dovecot.username": pwd.getpwnam(pigeonhole.RUN_USER).pw_name
    if os.geteuid() == 0
    else pwd.getpwuid(os.geteuid()).pw_name,
}


def run_owlery(case: Case, settings, includes_at_compile_time: bool = False) -> Outcome:
    """Owlery's outcome as its delivery gets it: `include` resolved when it runs, through the
    host (sieve.delivery.executor's load_script; case.scripts are the personal and global
    scripts). includes_at_compile_time: resolved while compiling instead, as `owlery sieve
    check --include-dir` and the testsuite do, and as Pigeonhole always does."""
    from sieve.api import Envelope, MemoryHost, SieveCompileError, compile_script, run

    scripts = {(loc, name): src for loc, name, src in case.scripts}
    loader = (lambda name, loc: scripts.get((loc, name))) if includes_at_compile_time else None
    try:
        script = compile_script(case.script, name="script", settings=settings, loader=loader)
    except SieveCompileError:
        return Outcome("compile-error")
    host = MemoryHost(mailboxes=("INBOX",) + FOLDERS, scripts=scripts)
    # sieve-test authenticates as the user it runs as (envelope "auth")
    env = Envelope(
        mail_from=case.mail_from,
        rcpt_to=case.rcpt_to,
        orig_rcpt=case.orig_rcpt,
        auth_user=ENVIRONMENT["vnd.dovecot.username"],
    )
    result = run(
        script,
        case.message,
        env,
        host=host,
        settings=settings,
        environment=dict(ENVIRONMENT),
        now=dt.datetime.now(dt.timezone.utc),
    )
    return from_owlery(result, case.message, set(FOLDERS))


def _drop_pigeonhole_message_id(case, ours, theirs):
    """sieve-test gives a redirected message without a Message-ID one of its own."""

    def fix(headers):
        return tuple(
            (
                t,
                tuple(
                    f
                    for f in fields
                    if not (t.startswith("redirect:") and f[0] == "message-id" and f[1].startswith("<dovecot-sieve-"))
                ),
            )
            for t, fields in headers
        )

    return ours, dataclasses.replace(theirs, headers=fix(theirs.headers))


def _vacation_from_casefold(case, ours, theirs):
    def fix(o):
        return dataclasses.replace(o, vacations=tuple(sorted((to, fr.lower(), subj) for to, fr, subj in o.vacations)))

    return fix(ours), fix(theirs)


def _no_reply_senders(case, ours, theirs):
    return ours, dataclasses.replace(theirs, vacations=())


def _empty_subject(case, ours, theirs):
    def fix(o):
        return dataclasses.replace(o, vacations=tuple(sorted((to, fr, "") for to, fr, _ in o.vacations)))

    return fix(ours), fix(theirs)


def _copy_then_plain(case, ours, theirs):
    """Pigeonhole keeps the implicit keep after `fileinto :copy X; fileinto X;`."""
    return ours, dataclasses.replace(
        theirs,
        stores=tuple(x for x in theirs.stores if x[0] != "INBOX"),
        headers=tuple(x for x in theirs.headers if x[0] != "store:INBOX"),
    )


def _vacation_from_user(case, ours, theirs):
    """Both replies come from one of the user's addresses (recipient, its base without
    +detail, original recipient, or one the script's :addresses names as the user's, RFC 5230
    4.5): which one is the implementation's choice."""

    def base(a):
        local, _, dom = a.lower().partition("@")
        return local.split("+", 1)[0] + "@" + dom

    mine = {case.rcpt_to.lower(), case.orig_rcpt.lower(), base(case.rcpt_to), base(case.orig_rcpt)}
    for arg in re.findall(r':addresses\s+("[^"]*"|\[[^\]]*\])', case.script.decode("utf-8", "replace")):
        mine.update(a.lower() for a in re.findall(r'"([^"]*)"', arg))

    def fix(o):
        return dataclasses.replace(
            o,
            vacations=tuple(sorted((to, "(user)" if fr.lower() in mine else fr, subj) for to, fr, subj in o.vacations)),
        )

    return fix(ours), fix(theirs)


def _flags_after_duplicate(case, ours, theirs):
    """Pigeonhole's :flags drops the rest of a flag string after a repeated flag: where its
    flags are a subset of Owlery's, take its list (only used when a :flags list repeats one)."""
    repeated = False
    text = re.sub(
        r"\$\{hex:([0-9a-fA-F]{2})\}", lambda m: chr(int(m.group(1), 16)), case.script.decode("utf-8", "replace")
    )
    for arg in re.findall(r':flags\s+("(?:[^"\\]|\\.)*"|\[[^\]]*\])', text):
        seen = set()
        for f in re.findall(r'[^\s"\[\],]+', arg):
            repeated |= f.lower() in seen
            seen.add(f.lower())
        repeated |= "${" in arg  # a variable's flags may repeat one too
    if not repeated:
        return ours, theirs
    ph_flags = dict(theirs.stores)
    stores = tuple(
        (box, ph_flags[box] if box in ph_flags and set(ph_flags[box]) < set(flags) else flags)
        for box, flags in ours.stores
    )
    return dataclasses.replace(ours, stores=stores), theirs


def _lost_keep(case, ours, theirs):
    """sieve-test reports 'resolved with successful implicit keep' but stored nothing."""
    if theirs.status == "error" and not theirs.stores:
        theirs = dataclasses.replace(theirs, stores=(("INBOX", ()),))
    return ours, theirs


def _base(addr: str) -> str:
    local, _, dom = addr.lower().partition("@")
    return local.split("+", 1)[0] + "@" + dom


def _vacation_own_base(case, ours, theirs):
    """For recipient user+detail@domain, Owlery counts user@domain as the user's address: it
    does not answer it, and a message to it is addressed to the user."""
    if "+" not in case.rcpt_to.split("@")[0]:
        return ours, theirs
    base = _base(case.rcpt_to)
    theirs = dataclasses.replace(
        theirs, vacations=tuple(v for v in theirs.vacations if v[0].lower() not in (base, case.orig_rcpt.lower()))
    )
    if not theirs.vacations and base in case.message.decode("utf-8", "replace").lower():
        ours = dataclasses.replace(ours, vacations=())
    return ours, theirs


def _subject_control(case, ours, theirs):
    return ours, dataclasses.replace(
        theirs, vacations=tuple((to, fr, subj.replace("\ufffd", " ")) for to, fr, subj in theirs.vacations)
    )


def _keyword_set(case, ours, theirs):
    """Dovecot's store drops every keyword of a message when one is not valid."""
    system = {"\\seen", "\\flagged", "\\answered", "\\draft", "\\deleted"}
    ph = dict(theirs.stores)
    stores = tuple(
        (box, ph[box] if box in ph and set(ph[box]) <= set(flags) and set(ph[box]) <= system else flags)
        for box, flags in ours.stores
    )
    return dataclasses.replace(ours, stores=stores), theirs


def _inbox_flags_as_delivered(case, ours, theirs):
    """sieve-test gives the single INBOX copy the flags of the last keep or fileinto "INBOX";
    Dovecot's delivery (LMTP/LDA) stores a fileinto "INBOX"'s flags and a keep adds none (see
    tests/sieve/test_pigeonhole_leftovers_s13.py). Take Owlery's INBOX flags, nothing else."""
    ph = dict(theirs.stores)
    if "INBOX" not in ph or "INBOX" not in dict(ours.stores):
        return ours, theirs
    stores = tuple((box, dict(ours.stores)["INBOX"] if box == "INBOX" else flags) for box, flags in theirs.stores)
    return ours, dataclasses.replace(theirs, stores=stores)


def _specialuse_fallback_one_copy(case, ours, theirs):
    """Owlery's engine leaves a `fileinto :specialuse F "INBOX"` apart from a keep in its result
    (the special-use folder is known only at delivery); its delivery (sieve/delivery/planner.py)
    finds no such folder here, stores into INBOX and merges the two into one copy, with the
    delivery's flags (tests/sieve/test_pigeonhole_probes_s13c.py, against Dovecot LMTP). Take
    one copy of each mailbox Owlery's result names twice, with sieve-test's flags for it (its
    flags are inbox-flags-as-delivered's difference), and of the header fields the copies have
    (they differ when an edit came between the actions) sieve-test's, when one of them is it."""
    boxes = [box for box, _ in ours.stores]
    dup = {box for box in boxes if boxes.count(box) > 1}
    if not dup:
        return ours, theirs
    ph = dict(theirs.stores)
    stores, seen = [], set()
    for box, flags in ours.stores:
        if box in dup:
            if box in seen:
                continue
            seen.add(box)
            flags = ph.get(box, flags)
        stores.append((box, flags))
    targets = {f"store:{box}" for box in dup}
    theirs_h = {t: h for t, h in theirs.headers}
    headers, done = [], set()
    for t, h in ours.headers:
        if t in targets:
            if t in done:
                continue
            done.add(t)
            mine = [hh for tt, hh in ours.headers if tt == t]
            h = theirs_h[t] if theirs_h.get(t) in mine else mine[0]
        headers.append((t, h))
    return dataclasses.replace(ours, stores=tuple(sorted(stores)), headers=tuple(sorted(headers))), theirs


def _auto_empty_subject(case, ours, theirs):
    """An empty Subject: Owlery replies 'Automated reply', Pigeonhole 'Auto:'."""
    return ours, dataclasses.replace(
        theirs,
        vacations=tuple((to, fr, "Automated reply" if subj == "Auto:" else subj) for to, fr, subj in theirs.vacations),
    )


def _vacation_as_ours(case, ours, theirs):
    return ours, dataclasses.replace(theirs, vacations=ours.vacations)


def _headers_as_ours(case, ours, theirs):
    return ours, dataclasses.replace(theirs, headers=ours.headers)


def _tab_folds_as_spaces(case, ours, theirs):
    """Owlery's outcome for the message with each folding TAB made a space, which is how
    Dovecot unfolds (RFC 5322 2.2.3 removes the CRLF only)."""
    msg = re.sub(rb"(\r?\n)\t", rb"\1 ", case.message)
    if msg == case.message:
        return ours, theirs
    return run_owlery(dataclasses.replace(case, message=msg), owlery_settings()), theirs


def _patched_scripts(case, fn):
    """The case with `fn` (text -> text) applied to its script and the scripts it may include,
    or None when that changes nothing."""
    def patch(src: bytes) -> bytes:
        return fn(src.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")

    script, scripts = patch(case.script), tuple((loc, name, patch(src)) for loc, name, src in case.scripts)
    if script == case.script and scripts == case.scripts:
        return None
    return dataclasses.replace(case, script=script, scripts=scripts)


def _string_default_octet(case, ours, theirs):
    """Owlery's outcome with every `string` test that names no comparator given i;octet,
    which is what Pigeonhole 0.5.19 uses for it."""
    patched = _patched_scripts(
        case, lambda text: re.sub(r"\bstring\b(?![^{;]*:comparator)", 'string :comparator "i;octet"', text))
    if patched is None:
        return ours, theirs
    return run_owlery(patched, owlery_settings()), theirs


def _digest_parts_as_text(case, ours, theirs):
    """Owlery's outcome when the parts of a multipart/digest that have no header are typed
    text/plain, which is how Pigeonhole reads them."""
    msg = re.sub(rb"(\n--b\d_[^\r\n]*\r?\n)(\r?\n)", rb"\1Content-Type: text/plain\2", case.message)
    if msg == case.message:
        return ours, theirs
    return run_owlery(dataclasses.replace(case, message=msg), owlery_settings()), theirs


def _set_self_copy(case, ours, theirs):
    """Owlery's outcome with `set "x" "${x}"` (no modifier) made `set "x" ""`, which is what
    Pigeonhole 0.5.19 does with it; also when one side names the variable in the global
    namespace (`set "global.g" "${g}"` after `global "g"`, RFC 6609 3.5: the same variable)."""

    def same(a: str, b: str) -> bool:
        return a.lower().removeprefix("global.") == b.lower().removeprefix("global.")

    patched = _patched_scripts(case, lambda text: re.sub(
        r'\bset\s+"((?:global\.)?[A-Za-z_][A-Za-z0-9_]*)"\s+"\$\{((?:global\.)?\w+)\}"\s*;',
        lambda m: f'set "{m.group(1)}" "";' if same(m.group(1), m.group(2)) else m.group(0),
        text,
    ))
    if patched is None:
        return ours, theirs
    return run_owlery(patched, owlery_settings()), theirs


# the extension a variable namespace needs (RFC 5229 3; RFC 6609 3.5: global. is include's)
_NAMESPACE_EXTENSIONS = {"global": "include", "env": "vnd.dovecot.environment"}


def _required(text: str) -> set[str]:
    """The capabilities a script's require commands name."""
    out: set[str] = set()
    for arg in re.findall(r'\brequire\s*(\[[^\]]*\]|"[^"]*")', text):
        out.update(x.lower() for x in re.findall(r'"([^"]*)"', arg))
    return out


def _unknown_namespace_as_empty(case, ours, theirs):
    """Where Owlery refused a script (or an included one) for a variable reference in a namespace
    that script did not require (${global.x} without include, ${a.b}), Owlery's outcome with each
    such reference made the empty string, which is how Pigeonhole 0.5.19 runs it (it logs the error
    and compiles the script anyway)."""
    if ours.status not in ("compile-error", "error"):
        return ours, theirs

    def fix(text: str) -> str:
        req = _required(text)
        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\.[A-Za-z0-9_.]*\}",
                      lambda m: m.group(0) if _NAMESPACE_EXTENSIONS.get(m.group(1).lower()) in req else "",
                      text)

    patched = _patched_scripts(case, fix)
    if patched is None:
        return ours, theirs
    return run_owlery(patched, owlery_settings()), theirs


_DATE_YEAR = re.compile(rb"((?:^|[\s,])\d{1,2}[ \t]+[A-Za-z]{3}[ \t]+)(\d+)([ \t]+\d{1,2}:\d)", re.M)


def _pigeonhole_years(case, ours, theirs):
    """Owlery's outcome for the message with each date's year (in the header) written as
    Pigeonhole 0.5.19 reads it: a two-digit year 50-69 in the 2000s (RFC 5322 4.3: the 1900s),
    a year of three digits or of five and more none (RFC 5322 3.3 and 4.3: 1900 added to three,
    four or more taken as they are)."""

    def year(m):
        y = m.group(2)
        if len(y) == 2 and 50 <= int(y) <= 69:
            y = b"20" + y
        elif len(y) == 3 or len(y) >= 5:
            y = b"0"  # one digit: no year for either engine
        return m.group(1) + y + m.group(3)

    end = re.search(rb"\r?\n\r?\n", case.message)
    cut = len(case.message) if end is None else end.start()
    msg = _DATE_YEAR.sub(year, case.message[:cut]) + case.message[cut:]
    if msg == case.message:
        return ours, theirs
    new = run_owlery(dataclasses.replace(case, message=msg), owlery_settings())
    # the fields as the message has them (what was stored is compared, not the years rewritten)
    back = {(n, v2): v1 for (n, v1), (_, v2) in zip(header_fields(case.message), header_fields(msg)) if v1 != v2}
    headers = tuple((t, tuple((n, back.get((n, v), v)) for n, v in fields)) for t, fields in new.headers)
    return dataclasses.replace(new, headers=headers), theirs


def _rfc2231_boundary_unread(case, ours, theirs):
    """Owlery's outcome for the message with each boundary given in RFC 2231's form
    (`boundary*=''b`, `boundary*0=...`) renamed so that no boundary is read from it, which is
    how Dovecot's parser reads such a field (the multipart then has no parts)."""
    msg = re.sub(rb"(?i)([;\s])(boundary\*)", rb"\1x-\2", case.message)
    if msg == case.message:
        return ours, theirs
    new = run_owlery(dataclasses.replace(case, message=msg), owlery_settings())
    # the fields as the message has them (what was stored is compared, not the renamed parameter)
    headers = tuple((t, tuple((n, re.sub(r"(?i)([;\s])x-(boundary\*)", r"\1\2", v)) for n, v in fields))
                    for t, fields in new.headers)
    return dataclasses.replace(new, headers=headers), theirs


def _envelope_to_is_original(case, ours, theirs):
    """Owlery's outcome when the envelope recipient is the original one (sieve-test's
    envelope "to" is its -a original recipient)."""
    if case.rcpt_to == case.orig_rcpt:
        return ours, theirs
    return run_owlery(dataclasses.replace(case, rcpt_to=case.orig_rcpt), owlery_settings()), theirs


_PH_ANYCHILD = threading.local()


def _ph_anychild_parts(part):
    """The parts Pigeonhole 0.5.19's :anychild reads after `part`: those that follow it in the
    message up to its next sibling, so past its own descendants when it is the last part of its
    multipart (checked with sieve-test: the last text/plain of an inner multipart "has" the
    multipart parts that follow its parent)."""
    root = part
    while root.parent is not None:
        root = root.parent
    flat, stack = [], [root]
    while stack:
        q = stack.pop()
        flat.append(q)
        stack.extend(reversed(q.children))
    out = []
    for q in flat[flat.index(part) + 1:]:
        if part.parent is not None and q.parent is part.parent:
            break
        out.append(q)
    return out


def _install_ph_anychild() -> None:
    """Wrap sieve.extensions.mime's current_part_headers and _descendants once: on a thread
    whose _PH_ANYCHILD.on is set, :anychild reads the parts _ph_anychild_parts gives (thread-local,
    so the other workers' runs are untouched; foreverypart keeps the engine's own walk)."""
    from sieve.extensions import mime

    if getattr(mime.current_part_headers, "ph_anychild", False):
        return
    headers, descendants = mime.current_part_headers, mime._descendants

    def current_part_headers(rt, node, h, raw):
        _PH_ANYCHILD.inside = True
        try:
            return headers(rt, node, h, raw)
        finally:
            _PH_ANYCHILD.inside = False

    def _descendants(part):
        if getattr(_PH_ANYCHILD, "on", False) and getattr(_PH_ANYCHILD, "inside", False):
            return _ph_anychild_parts(part)
        return descendants(part)

    current_part_headers.ph_anychild = True
    mime.current_part_headers, mime._descendants = current_part_headers, _descendants


def _pigeonhole_anychild(case, ours, theirs):
    """Owlery's outcome when :anychild reads the parts Pigeonhole 0.5.19 reads (_ph_anychild_parts)."""
    if b":anychild" not in case.script:
        return ours, theirs
    _install_ph_anychild()
    _PH_ANYCHILD.on = True
    try:
        return run_owlery(case, owlery_settings()), theirs
    finally:
        _PH_ANYCHILD.on = False


def _shown_text_unspaced(case, ours, theirs):
    """The X-MA-Text fields (the mimeactions shape's extracttext text, added) with their white
    space taken out on both sides."""

    def fix(o):
        headers = tuple((t, tuple((n, "".join(v.split()) if n == "x-ma-text" else v) for n, v in fields))
                        for t, fields in o.headers)
        return dataclasses.replace(o, headers=headers)

    return fix(ours), fix(theirs)


def _ours_errors(case, ours, theirs):
    return (theirs, theirs) if ours.status == "error" else (ours, theirs)


def _slash_mailbox(case, ours, theirs):
    """Dovecot refuses a mailbox name with '/' (the store fails; the fallback keep is left)."""
    if theirs.status == "error" and any("/" in box for box, _ in ours.stores):
        return theirs, theirs
    return ours, theirs


def _includes_at_compile_time(case, ours, theirs):
    """Owlery's delivery resolves `include` when the command runs; Pigeonhole resolves every
    include while compiling. When resolving them at compile time makes Owlery refuse the script
    too (a missing or circular include, an included script that does not compile), take that
    outcome: the run-time one failed as the include ran (fallback keep) or never reached it."""
    if not case.scripts and b"include" not in case.script:
        return ours, theirs
    at_compile = run_owlery(case, owlery_settings(), includes_at_compile_time=True)
    return (at_compile, theirs) if at_compile.status == "compile-error" else (ours, theirs)


def _anything(case, ours, theirs):
    return ours, ours


def _ours_refuses(case, ours, theirs):
    """Owlery refuses the script at compile time, whatever Pigeonhole then did."""
    return (theirs, theirs) if ours.status == "compile-error" else (ours, theirs)


TRANSFORMS = {
    "drop-pigeonhole-message-id": _drop_pigeonhole_message_id,
    "vacation-from-casefold": _vacation_from_casefold,
    "vacation-from-user": _vacation_from_user,
    "flags-after-duplicate": _flags_after_duplicate,
    "no-reply-senders": _no_reply_senders,
    "empty-subject": _empty_subject,
    "copy-then-plain": _copy_then_plain,
    "lost-keep": _lost_keep,
    "vacation-own-base": _vacation_own_base,
    "subject-control": _subject_control,
    "keyword-set": _keyword_set,
    "vacation-as-ours": _vacation_as_ours,
    "auto-empty-subject": _auto_empty_subject,
    "specialuse-fallback-one-copy": _specialuse_fallback_one_copy,
    "inbox-flags-as-delivered": _inbox_flags_as_delivered,
    "headers-as-ours": _headers_as_ours,
    "tab-folds-as-spaces": _tab_folds_as_spaces,
    "string-default-octet": _string_default_octet,
    "digest-parts-as-text": _digest_parts_as_text,
    "set-self-copy": _set_self_copy,
    "envelope-to-is-original": _envelope_to_is_original,
    "ours-errors": _ours_errors,
    "slash-mailbox": _slash_mailbox,
    "any": _anything,
    "ours-refuses": _ours_refuses,
    "includes-at-compile-time": _includes_at_compile_time,
    "unknown-namespace-as-empty": _unknown_namespace_as_empty,
    "pigeonhole-years": _pigeonhole_years,
    "rfc2231-boundary-unread": _rfc2231_boundary_unread,
    "pigeonhole-anychild": _pigeonhole_anychild,
    "shown-text-unspaced": _shown_text_unspaced,
}


@dataclasses.dataclass
class Deviation:
    """A known deviation: when the case matches (script/message/sender regexes) and the
    named transform makes the two outcomes equal, the difference is explained."""

    id: str
    transform: str
    script: re.Pattern | None
    message: re.Pattern | None
    sender: re.Pattern | None
    rfc: str
    reason: str

    def matches(self, case: Case) -> bool:
        # the script regex reads the main script and the scripts it may include
        script = b"\n".join((case.script, *(src for _, _, src in case.scripts)))
        for rx, text in (
            (self.script, script),
            (self.message, case.message),
            (self.sender, case.mail_from.encode()),
        ):
            if rx is not None and not rx.search(text.decode("utf-8", "replace")):
                return False
        return True


def load_deviations(path: Path = DEVIATIONS) -> list[Deviation]:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    out = []
    for d in data.get("deviation", []):
        if d["transform"] not in TRANSFORMS:
            raise ValueError(f"{path}: deviation {d['id']}: unknown transform {d['transform']!r}")
        rx = {k: re.compile(d[k], re.S | re.M) if d.get(k) else None for k in ("script", "message", "sender")}
        out.append(Deviation(d["id"], d["transform"], rx["script"], rx["message"], rx["sender"], d["rfc"], d["reason"]))
    return out


def explain(deviations: list[Deviation], case: Case, ours: Outcome, theirs: Outcome) -> str | None:
    """The id of the deviation that explains the difference, or the '+'-joined ids of two or
    three whose transforms, applied in turn, make the outcomes equal; None if none do."""
    matching = [d for d in deviations if d.matches(case)]
    for size in (1, 2, 3):
        for combo in itertools.permutations(matching, size) if size > 1 else ((d,) for d in matching):
            a, b = ours, theirs
            for d in combo:
                a, b = TRANSFORMS[d.transform](case, a, b)
            if not a.differences(b):
                return "+".join(sorted(d.id for d in combo))
    return None


@dataclasses.dataclass
class PairResult:
    case: Case
    ours: Outcome
    theirs: Outcome
    diff: list[str]
    deviation: str | None = None
    raw_log: str = ""


@dataclasses.dataclass
class Report:
    seed: int
    pairs: int = 0
    seconds: float = 0.0
    differences: list[PairResult] = dataclasses.field(default_factory=list)
    explained: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    harness_errors: list[PairResult] = dataclasses.field(default_factory=list)
    crashes: list[PairResult] = dataclasses.field(default_factory=list)
    statuses: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    features: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def by_area(self) -> collections.Counter:
        c: collections.Counter = collections.Counter()
        for p in self.differences:
            for f in p.diff:
                c[f] += 1
        return c


class Runner:
    """Runs pairs on `workers` threads, each with its own Pigeonhole home under `workdir`."""

    def __init__(self, workdir: Path, workers: int = 2, shapes: frozenset[str] = frozenset()):
        self.workdir = Path(workdir)
        self.shapes = frozenset(shapes)  # the generator's opt-in shapes (none: the old cases)
        os.chmod(self.workdir, 0o755)
        self.workers = workers
        self.settings = owlery_settings()
        self.deviations = load_deviations()
        self._local = threading.local()
        self._count = 0
        self._lock = threading.Lock()

    def _ph(self) -> pigeonhole.Pigeonhole:
        ph = getattr(self._local, "ph", None)
        if ph is None:
            with self._lock:
                self._count += 1
                n = self._count
            ph = pigeonhole.Pigeonhole(self.workdir / f"w{n}", FOLDERS)
            self._local.ph = ph
        return ph

    def pair(self, seed: int, index: int) -> PairResult:
        case = make_case(seed, index, self.shapes)
        ours = run_owlery(case, self.settings)
        raw = self._ph().run(case.script, case.message, case.mail_from, case.rcpt_to, case.orig_rcpt,
                             scripts=case.scripts)
        theirs = from_pigeonhole(raw)
        diff = ours.differences(theirs)
        dev = explain(self.deviations, case, ours, theirs) if diff else None
        if case.scripts and (not diff or dev):
            # the include shape: Owlery with every include resolved while compiling (`owlery
            # sieve check --include-dir`, the testsuite) must agree with Pigeonhole too
            at_compile = run_owlery(case, self.settings, includes_at_compile_time=True)
            ct_diff = at_compile.differences(theirs)
            if ct_diff:
                ct_dev = explain(self.deviations, case, at_compile, theirs)
                if ct_dev is None:
                    return PairResult(case, at_compile, theirs, [f"{f} (includes at compile time)" for f in ct_diff],
                                      None, raw.log)
                dev = dev or ct_dev
                diff = diff or ct_diff
        return PairResult(case, ours, theirs, diff, dev, raw.log)

    def run(self, seed: int, pairs: int, start: int = 0, time_limit: float | None = None) -> Report:
        rep = Report(seed)
        t0 = time.monotonic()
        deadline = None if time_limit is None else t0 + time_limit
        indexes = iter(range(start, start + pairs))
        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            pending = set()
            for _ in range(self.workers * 2):
                i = next(indexes, None)
                if i is not None:
                    pending.add(pool.submit(self.pair, seed, i))
            while pending:
                done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for fut in done:
                    p = fut.result()
                    rep.pairs += 1
                    rep.statuses[(p.ours.status, p.theirs.status)] += 1
                    rep.features.update(p.case.features)
                    if p.theirs.status == "crash":
                        rep.crashes.append(p)  # sieve-test panicked: nothing to compare
                    elif "harness-error" in (p.ours.status, p.theirs.status):
                        rep.harness_errors.append(p)
                    elif p.diff and p.deviation:
                        rep.explained[p.deviation] += 1
                    elif p.diff:
                        rep.differences.append(p)
                    if deadline is None or time.monotonic() < deadline:
                        i = next(indexes, None)
                        if i is not None:
                            pending.add(pool.submit(self.pair, seed, i))
        rep.seconds = time.monotonic() - t0
        rep.differences.sort(key=lambda p: p.case.index)
        return rep


def describe(p: PairResult) -> str:
    c = p.case
    lines = [
        f"=== pair seed={c.seed} index={c.index}: differs in {', '.join(p.diff)}",
        f"envelope: from={c.mail_from} to={c.rcpt_to} orig={c.orig_rcpt}",
        "--- script",
        c.script.decode("utf-8", "replace").rstrip(),
        *(x for loc, name, src in c.scripts
          for x in (f"--- {loc} script {name!r}", src.decode("utf-8", "replace").rstrip())),
        "--- message",
        c.message.decode("utf-8", "replace").rstrip()[:3000],
        "--- owlery",
    ]
    for f in Outcome.FIELDS:
        lines.append(f"  {f}: {getattr(p.ours, f)!r}")
    lines.append("--- pigeonhole")
    for f in Outcome.FIELDS:
        lines.append(f"  {f}: {getattr(p.theirs, f)!r}")
    lines.append("--- sieve-test log")
    lines += ["  " + x for x in p.raw_log.splitlines() if "Info: " not in x or "error" in x.lower()][:30]
    return "\n".join(lines)


def summary(rep: Report) -> list[str]:
    rate = rep.pairs / rep.seconds if rep.seconds else 0.0
    out = [
        f"sieve differential: seed {rep.seed}: {rep.pairs} pairs in {rep.seconds:.1f}s ({rate:.0f} pairs/s); "
        f"{len(rep.differences)} unexplained differences, {sum(rep.explained.values())} explained by known "
        f"deviations, {len(rep.harness_errors)} harness errors, {len(rep.crashes)} sieve-test crashes"
    ]
    if rep.differences:
        out.append("unexplained differences by area: " + ", ".join(f"{k} {v}" for k, v in rep.by_area().most_common()))
        out.append("  pairs: " + " ".join(str(p.case.index) for p in rep.differences[:40]))
    if rep.crashes:
        out.append(
            "sieve-test panicked (not compared) on pairs: " + " ".join(str(p.case.index) for p in rep.crashes[:20])
        )
    if rep.explained:
        out.append("known deviations: " + ", ".join(f"{k} {v}" for k, v in rep.explained.most_common()))
    out.append(
        "outcomes (owlery, pigeonhole): " + ", ".join(f"{a}/{b} {n}" for (a, b), n in rep.statuses.most_common())
    )
    return out


def parse_shapes(text: str) -> frozenset[str]:
    """--shapes: 'all', or names from generator.SHAPES_ALL separated by commas."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    if names == {"all"}:
        return SHAPES_ALL
    unknown = names - SHAPES_ALL
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown shape(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(SHAPES_ALL))}, all"
        )
    return frozenset(names)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sieve-differential", description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=10000, help="number of pairs (default 10000)")
    ap.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    ap.add_argument("--start", type=int, default=0, help="first pair index (default 0)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="parallel pairs (default: CPUs)")
    ap.add_argument("--time-limit", type=float, default=None, help="stop starting pairs after this many seconds")
    ap.add_argument("--show", type=int, default=3, help="print this many differing pairs in full (default 3)")
    ap.add_argument("--features", action="store_true", help="print how many pairs touched each area")
    ap.add_argument(
        "--shapes",
        type=parse_shapes,
        default=frozenset(),
        metavar="LIST",
        help="also generate these script/message shapes, comma-separated, or 'all': "
        + ", ".join(sorted(SHAPES_ALL))
        + " (default: none, the cases seeds always gave)",
    )
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sieve-differential-", dir=scratch_dir()) as d:
        rep = Runner(Path(d), args.workers, args.shapes).run(args.seed, args.pairs, args.start, args.time_limit)
    for p in rep.differences[: args.show]:
        print(describe(p))
    for p in rep.harness_errors[: args.show]:
        print(describe(p))
    if args.features:
        print("areas covered: " + ", ".join(f"{k} {v}" for k, v in sorted(rep.features.items())))
    print("\n".join(summary(rep)))
    return 1 if rep.differences or rep.harness_errors else 0


if __name__ == "__main__":
    sys.exit(main())
