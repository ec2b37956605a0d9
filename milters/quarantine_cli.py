"""`owlery quarantine list|show|release|delete|expire|token-key|notify`: the postmaster's quarantine tools.

The quarantine commands work on the configured store (owlery.quarantine; any host of a
PostgreSQL quarantine can run them); release re-injects through owlery.quarantine.release.
Every release and delete writes an audit line (the log, and quarantine_audit_log_path when
set) and an entry in the store's audit, by "cli:<Unix user>", which the web's audit page shows
beside its own; `expire` drops audit entries older than quarantine_audit_retention. A bad id
is a clear error with exit status 1; a store that is down exits 75.
`list` and `show` print what a sender controls (subject, addresses, headers, scanner details)
with its control characters made visible (ESC as `\x1b`), always, not only on a terminal, so a
hostile message cannot drive the admin's terminal; `show --raw` gives the exact bytes for a
pipe or a file and refuses a terminal unless --force; `list --json` escapes them as JSON does.
(`owlery spam learn` lives in milters/spam_cli.py.) Imports nothing heavy at module top.

SECURITY: an administrator's tool: it trusts its user (whoever may read the settings file
and the store) and treats stored messages as hostile (terminal-safe output). Run as root,
it creates the store as `daemon_user`, so the milter can still write it; released mail
goes to loopback Postfix only (quarantine_release_smtp_endpoint) or through sendmail.
Talks to: the quarantine store, Postfix (release). Tests: tests/milters/test_quarantine_cli.py,
tests/milters/test_quarantine_cli_audit.py (the store's audit, both backends),
tests/milters/test_low_hardening.py (terminal safety)
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import socket
import sys
import time
from os import EX_TEMPFAIL
from typing import Any

from owlery.settings import Bool, Duration, Str, parse_duration, setting

QUARANTINE_EXPIRE_VIRUS_AGE = setting("quarantine_expire_virus_age", Duration, "7d",
                                      "`owlery quarantine expire` deletes virus quarantine older than this.",
                                      unit="s")
QUARANTINE_EXPIRE_SPAM_AGE = setting("quarantine_expire_spam_age", Duration, "10d",
                                     "`owlery quarantine expire` deletes spam quarantine older than this.",
                                     unit="s")
QUARANTINE_EXPIRE_BANNED_AGE = setting("quarantine_expire_banned_age", Duration, "10d",
                                       "`owlery quarantine expire` deletes banned-attachment quarantine older "
                                       "than this.", unit="s")
QUARANTINE_EXPIRE_OTHER_AGE = setting("quarantine_expire_other_age", Duration, "30d",
                                      "`owlery quarantine expire` deletes quarantine of any other reason older "
                                      "than this.", unit="s")
QUARANTINE_RELEASE_SECRET_REQUIRED = setting(
    "quarantine_release_secret_required", Bool, False,
    "Make `owlery quarantine release` demand the message's secret (--secret), as amavis' "
    "auth_required_release does; for wrappers that let users release their own mail.")
QUARANTINE_AUDIT_LOG_PATH = setting("quarantine_audit_log_path", Str, None,
                                    "File that every release and delete appends an audit line to "
                                    "(besides the log). Unset: the log only.")



def register(sub: Any) -> None:
    from owlery.cliutil import add_config_option
    q = sub.add_parser("quarantine", help="list, show, release, delete and expire quarantined mail")
    qs = q.add_subparsers(dest="quarantine_command", metavar="ACTION")
    qs.required = True

    p = qs.add_parser("list", help="list quarantined messages, newest first")
    add_config_option(p)
    p.add_argument("--recipient", help="only mail for this recipient")
    p.add_argument("--sender", help="only mail from this envelope sender (\"\" for <>)")
    p.add_argument("--reason", help="only this reason (virus, spam, banned ...)")
    p.add_argument("--older-than", metavar="AGE", help="only mail older than AGE (e.g. 2d, 12h)")
    p.add_argument("--newer-than", metavar="AGE", help="only mail newer than AGE")
    p.add_argument("--status", choices=("pending", "released", "archived"),
                   help="only mail with a recipient in this state")
    p.add_argument("--limit", type=int, help="at most this many")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_cmd_list)

    p = qs.add_parser("show", help="show one message: envelope, reasons, scores, headers")
    add_config_option(p)
    p.add_argument("id")
    p.add_argument("--raw", action="store_true",
                   help="write the whole stored message, byte for byte, instead (for a pipe or a file)")
    p.add_argument("--force", action="store_true", help="with --raw: write to a terminal too")
    p.add_argument("--secret", action="store_true", help="also print the release secret")
    p.set_defaults(func=_cmd_show)

    p = qs.add_parser("release", help="deliver a quarantined message to its recipients (or --to)")
    add_config_option(p)
    p.add_argument("id")
    p.add_argument("--to", action="append", metavar="ADDR",
                   help="release to this address instead of every pending recipient (repeatable)")
    p.add_argument("--secret", help="the release secret (needed with quarantine_release_secret_required)")
    p.add_argument("--by", help="who releases (recorded; default: the invoking user)")
    p.set_defaults(func=_cmd_release)

    p = qs.add_parser("delete", help="delete a quarantined message")
    add_config_option(p)
    p.add_argument("id", nargs="+")
    p.add_argument("--by", help="who deletes (recorded; default: the invoking user)")
    p.set_defaults(func=_cmd_delete)

    p = qs.add_parser("expire", help="delete quarantine older than its reason's age (cron job)")
    add_config_option(p)
    p.add_argument("--dry-run", action="store_true", help="only list what would go")
    p.set_defaults(func=_cmd_expire)

    p = qs.add_parser("token-key", help="create the key that signs digest release/show links")
    add_config_option(p)
    p.add_argument("--generate", action="store_true", required=True,
                   help="write a new key to quarantine_token_key_file (0600, owned by daemon_user)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing key (every link already mailed stops working)")
    p.set_defaults(func=_cmd_token_key)

    p = qs.add_parser("notify", help="send quarantine digests to recipients and notices to admins (timer job)")
    add_config_option(p)
    p.add_argument("--dry-run", action="store_true", help="only print who would be told of how many messages")
    p.add_argument("--recipient", metavar="ADDR", help="only this recipient's digest (no admin notices)")
    p.set_defaults(func=_cmd_notify)


# --- helpers ---------------------------------------------------------------------------

class _Fail(Exception):
    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def _run(args: argparse.Namespace, body: Any) -> int:
    from owlery.cliutil import load_settings
    from owlery import log as owlery_log
    from owlery.quarantine import QuarantineError, QuarantineUnavailable, open_store
    settings = load_settings(args)
    owlery_log.setup(settings, "quarantine")
    store = None
    try:
        store = open_store(settings)
        return body(settings, store)
    except QuarantineUnavailable as e:
        print(f"owlery: quarantine unavailable: {e}", file=sys.stderr)
        return EX_TEMPFAIL
    except QuarantineError as e:
        print(f"owlery: quarantine: {e}", file=sys.stderr)
        return 1
    except _Fail as e:
        print(f"owlery: {e}", file=sys.stderr)
        return e.status
    finally:
        if store is not None:
            store.close()


def _unix_user() -> str:
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _who(args: argparse.Namespace) -> str:
    return getattr(args, "by", None) or _unix_user()


def _audit(settings: Any, action: str, *, store: Any = None, queue_id: str | None = None, **fields: Any) -> None:
    """The log line, the line in quarantine_audit_log_path and, given the store, its audit entry.
    `queue_id`: the Postfix queue id the message had when it was quarantined, first in the line
    as in the milter's quarantine line, so that grepping it finds the release too.
    The store's entry names the Unix user ("cli:root"), who answers for it whatever --by says
    (that goes in its detail as by=)."""
    from owlery import log as owlery_log
    from owlery.quarantine.base import shown
    # An 8-bit sender's octets as \xNN, as list and show print them (the log made each "?");
    # the store's entry keeps the text exactly.
    line = owlery_log.decision("quarantine", owlery_log.queue_id_or_none(queue_id), action,
                               **{k: shown(v) if isinstance(v, str) else v for k, v in fields.items()})
    if store is not None:
        from owlery.quarantine import AuditEntry
        user = _unix_user()
        detail = " ".join(f"{k.rstrip('_')}={v}" for k, v in fields.items()
                          if k != "quarantine_id" and not (k == "by" and v == user))
        store.add_audit(AuditEntry(time.time(), f"cli:{user}", action, fields["quarantine_id"], detail,
                                   socket.gethostname()))
    if settings.quarantine_audit_log_path:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        try:
            with open(settings.quarantine_audit_log_path, "a", encoding="utf-8") as f:
                f.write(f"{stamp} {line}\n")
        except OSError as e:
            raise _Fail(f"cannot write audit log {settings.quarantine_audit_log_path}: {e}") from e


def _age(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as e:
        raise _Fail(f"bad age {text!r}: {e}") from None


# C0 controls but TAB and LF, DEL, C1 controls (U+009B is CSI for some terminals), the
# bidirectional overrides that reorder what is displayed, and lone surrogates: octets that
# were not UTF-8 (an 8-bit envelope sender kept by surrogateescape), which print() cannot write.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _visible(c: re.Match) -> str:
    # one escape for the CLI, the audit lines and the release header: owlery.quarantine.base
    from owlery.quarantine.base import escaped
    return escaped(ord(c.group()))


def safe(text: Any, *, newlines: bool = False) -> str:
    """`text` fit for a terminal: control characters shown as \\xNN (also LF, unless
    `newlines`); TAB is kept."""
    text = str(text)
    if not newlines:
        text = text.replace("\n", "\\x0a")
    return _UNSAFE.sub(_visible, text)


def safe_bytes(data: bytes) -> str:
    """Message bytes for a terminal: UTF-8 where valid, other bytes as \\xNN, controls visible."""
    return safe(data.decode("utf-8", "backslashreplace"), newlines=True)


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


# --- quarantine commands ---------------------------------------------------------------------

def _cmd_list(args: argparse.Namespace) -> int:
    from owlery.quarantine import ListFilter

    def body(settings: Any, store: Any) -> int:
        f = ListFilter(recipient=args.recipient, sender=args.sender, reason=args.reason,
                       older_than=_age(args.older_than), newer_than=_age(args.newer_than),
                       status=args.status, limit=args.limit)
        records = store.list(f, time.time())
        for r in records:
            if args.json:
                print(json.dumps(r.to_json(), sort_keys=True))
                continue
            rcpts = ",".join(f"{x.address}{'' if x.status == 'pending' else '(' + x.status + ')'}"
                             for x in r.recipients)
            score = "-" if r.score is None else f"{r.score:g}"
            print(safe(f"{r.mail_id}  {_when(r.created)}  {r.reason:<7} {score:>7}  <{r.sender}> -> {rcpts}"
                       f"  {r.detail[:60]}  {r.subject[:60]!r}"))
        if not args.json:
            print(f"{len(records)} message{'s' if len(records) != 1 else ''}", file=sys.stderr)
        return 0
    return _run(args, body)


def _cmd_show(args: argparse.Namespace) -> int:
    def body(settings: Any, store: Any) -> int:
        r = store.get(args.id)
        data = store.message(args.id)
        if args.raw:
            if sys.stdout.isatty() and not args.force:
                raise _Fail("quarantine show --raw: not writing raw message bytes to a terminal (its "
                            "escape sequences would reach it); pipe or redirect it, or add --force")
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return 0
        lines = [f"Quarantine-ID: {r.mail_id}"]
        if args.secret:
            lines.append(f"Secret: {r.secret_id}")
        lines.append(f"Date: {_when(r.created)}")
        lines.append(f"Reason: {r.reason}: {r.detail}")
        lines.append(f"Score: {'-' if r.score is None else f'{r.score:g}'}")
        for name, score, detail in r.symbols:
            lines.append(f"  {name}={score:g}" + (f"  {detail[:100]}" if detail else ""))
        lines.append(f"Sender: <{r.sender}>")
        for x in r.recipients:
            extra = "" if x.status == "pending" else f" by {x.changed_by} at {_when(x.changed_at)}"
            lines.append(f"Recipient: <{x.address}> {x.status}{extra}{'' if x.original else ' (added at release)'}")
        lines.append(f"Client: {r.client_name}[{r.client_addr}] helo={r.helo}")
        lines.append(f"Host: {r.host}  Queue-ID: {r.queue_id or '-'}  Size: {r.size}")
        for line in lines:
            print(safe(line))
        print()
        head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        sys.stdout.write(safe_bytes(head.replace(b"\r\n", b"\n")) + "\n")
        return 0
    return _run(args, body)


def _cmd_release(args: argparse.Namespace) -> int:
    from owlery.quarantine import secret_matches
    from owlery.quarantine.release import ReleaseError, reinject, released_copy

    def body(settings: Any, store: Any) -> int:
        r = store.get(args.id)
        by = _who(args)
        if settings.quarantine_release_secret_required or args.secret is not None:
            if not secret_matches(r, args.secret or ""):
                _audit(settings, "release-denied", store=store, queue_id=r.queue_id, quarantine_id=r.mail_id, by=by,
                       reason="bad secret")
                raise _Fail(f"quarantine: wrong or missing secret for {r.mail_id}")
        targets = list(dict.fromkeys(args.to)) if args.to else list(r.pending())
        if not targets:
            raise _Fail(f"quarantine: {r.mail_id} has no pending recipient (use --to ADDR)")
        now = time.time()
        host = socket.gethostname()
        data = released_copy(store.message(r.mail_id), settings.quarantine_release_header, r.mail_id, by, host, now)
        try:
            result = reinject(settings, r.sender, targets, data)
        except ReleaseError as e:
            _audit(settings, "release-failed", store=store, queue_id=r.queue_id, quarantine_id=r.mail_id, by=by, to=",".join(targets),
                   error=str(e))
            raise _Fail(f"quarantine: release of {r.mail_id} failed: {e}") from e
        store.mark_released(r.mail_id, result.accepted, by, now)
        _audit(settings, "release", store=store, queue_id=r.queue_id, quarantine_id=r.mail_id, by=by, to=",".join(result.accepted),
               reason=r.reason, from_=r.sender, method=settings.quarantine_release_method)
        for rcpt in result.accepted:
            print(safe(f"released {r.mail_id} to <{rcpt}>"))
        for rcpt, why in result.refused.items():
            print(safe(f"refused {r.mail_id} for <{rcpt}>: {why}"), file=sys.stderr)
        return 1 if result.refused else 0
    return _run(args, body)


def _cmd_delete(args: argparse.Namespace) -> int:
    def body(settings: Any, store: Any) -> int:
        by = _who(args)
        status = 0
        from owlery.quarantine import QuarantineNotFound
        for mail_id in args.id:
            try:
                r = store.get(mail_id)
                store.delete(mail_id)
            except QuarantineNotFound as e:
                print(f"owlery: quarantine: {e}", file=sys.stderr)
                status = 1
                continue
            _audit(settings, "delete", store=store, queue_id=r.queue_id, quarantine_id=mail_id, by=by, reason=r.reason, from_=r.sender)
            print(f"deleted {mail_id}")
        return status
    return _run(args, body)


def expire_ages(settings: Any) -> tuple[dict[str, float], float]:
    return ({"virus": settings.quarantine_expire_virus_age, "spam": settings.quarantine_expire_spam_age,
             "banned": settings.quarantine_expire_banned_age, "archive": settings.quarantine_archive_retention},
            settings.quarantine_expire_other_age)


def _cmd_expire(args: argparse.Namespace) -> int:
    from owlery.quarantine import ListFilter

    def body(settings: Any, store: Any) -> int:
        ages, other = expire_ages(settings)
        now = time.time()
        retention = settings.quarantine_audit_retention
        if args.dry_run:
            for r in store.list(ListFilter(), now):
                if r.created < now - ages.get(r.reason, other):
                    print(f"would expire {r.mail_id} ({r.reason}, {_when(r.created)})")
            if retention:
                old = store.expire_audit(now - retention, dry_run=True)
                print(f"would drop {old} audit entr{'ies' if old != 1 else 'y'} from before "
                      f"{_when(now - retention)}")
            return 0
        gone = store.expire(now, ages, other)
        for mail_id in gone:
            _audit(settings, "expire", quarantine_id=mail_id, by=_who(args))
        print(f"expired {len(gone)} message{'s' if len(gone) != 1 else ''}")
        if retention:      # 0: the audit is kept for ever
            dropped = store.expire_audit(now - retention)
            _audit_expired(dropped, now - retention)
            print(f"dropped {dropped} audit entr{'ies' if dropped != 1 else 'y'} from before {_when(now - retention)}")
        return 0
    return _run(args, body)


def _audit_expired(count: int, before: float) -> None:
    from owlery import log as owlery_log
    owlery_log.decision("quarantine", None, "expire-audit", entries=count, before=_when(before))


def _cmd_token_key(args: argparse.Namespace) -> int:
    from owlery.cliutil import load_settings
    from owlery.quarantine import QuarantineError, daemon_owner
    from owlery.quarantine.tokenkey import TokenKeyError, generate_key_file
    settings = load_settings(args)
    path = settings.quarantine_token_key_file
    try:
        owner = daemon_owner(settings) if os.geteuid() == 0 else None
        generate_key_file(path, owner, force=args.force)
    except (TokenKeyError, QuarantineError) as e:
        print(f"owlery: quarantine token-key: {e}", file=sys.stderr)
        return 1
    print(f"wrote a new quarantine token key to {path}")
    return 0


def _cmd_notify(args: argparse.Namespace) -> int:
    from owlery import log as owlery_log
    from owlery.quarantine.notify import QuarantineNotifier, submission_sender
    from owlery.quarantine.preferences import Preferences
    from owlery.quarantine.tokenkey import TokenKeyError, load_key

    def body(settings: Any, store: Any) -> int:
        key = None
        if settings.quarantine_web_url:
            try:
                key = load_key(settings)
            except TokenKeyError as e:
                raise _Fail(f"quarantine notify: {e} (digests need it for their links)") from None
        try:
            prefs = Preferences(settings)
        except ValueError as e:         # MapError: files_quarantine_notify unreadable
            raise _Fail(f"quarantine notify: {e}") from None
        try:
            notifier = QuarantineNotifier(settings, store, submission_sender(settings), prefs=prefs, key=key,
                                host=socket.gethostname(),
                                log=lambda action, **f: owlery_log.decision("quarantine", None, action, **f))
            out = notifier.run(time.time(), dry_run=args.dry_run, only=args.recipient)
        finally:
            prefs.close()
        verb = "would send" if args.dry_run else "sent"
        for kind, to, count in out.sent:
            print(safe(f"{verb} {kind} to <{to}>: {count} message{'s' if count != 1 else ''}"))
        for kind, to, why in out.failed:
            print(safe(f"failed {kind} to <{to}>: {why}"), file=sys.stderr)
        if out.waiting:
            print(f"{len(out.waiting)} recipient{'s' if len(out.waiting) != 1 else ''} "
                  f"wait for their daily digest", file=sys.stderr)
        if args.dry_run and not (out.sent or out.failed or out.waiting):
            # A dry run that prints nothing reads as a command that did nothing; the timer's
            # real runs stay silent (nothing in the journal every 15 minutes).
            print("would send nothing: no quarantined message waits for a notice")
        return EX_TEMPFAIL if out.failed else 0
    return _run(args, body)
