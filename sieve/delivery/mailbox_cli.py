"""`owlery mailbox expire`: remove old messages from folders such as Junk and Trash, and tmp/ leftovers.

Which mailboxes: the addresses given (resolved as delivery resolves them: the directory's
mail path, else maildir_path_template) and/or `--maildir PATH`. What goes: the rules in
sieve/delivery/expire.py (`mailbox_expire_ages`, `mailbox_expire_tmp_age`); the file work
and maildirsize bookkeeping are owlery.maildir.Maildir.expunge. One summary line per run
in the log (and per mailbox at info); a bad mailbox (a link, a permission error) is
reported and skipped, never a crash, never a deletion outside the Maildir.
A progress bar on stderr when it is a terminal (owlery.cliutil.ProgressBar), cleared before
each per-mailbox line so none is glued to it.
Exit status: 0 done, 1 settings error, 75 some mailbox could not be handled (the directory
down, an unreadable Maildir): run again later.
Tests: tests/delivery/test_mailbox_expire.py
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from os import EX_TEMPFAIL

log = logging.getLogger("owlery.mailbox")



def _cmd_expire(args: argparse.Namespace) -> int:
    from owlery.cliutil import ProgressBar, load_settings
    from owlery.errors import DirectoryUnavailable
    from owlery.maildir import Maildir, MaildirError
    from sieve.delivery.expire import ExpiryRules
    from sieve.delivery.mailbox_select import selected
    settings = load_settings(args)
    if settings.log_target != "stderr":      # on a terminal the summary printed below is enough
        from owlery import log as owlery_log
        owlery_log.setup(settings, "mailbox")
    now = time.time() if args.now is None else args.now
    try:
        boxes = selected(args, settings)
    except (LookupError, DirectoryUnavailable, MaildirError) as e:
        print(f"owlery: mailbox expire: {e}", file=sys.stderr)
        return EX_TEMPFAIL if isinstance(e, DirectoryUnavailable) else 1
    if not boxes:
        print("owlery: mailbox expire: name addresses, --maildir PATH or --all-users", file=sys.stderr)
        return 2
    rules = ExpiryRules(settings.mailbox_expire_ages, now)
    totals = {"mailboxes": 0, "messages": 0, "bytes": 0, "tmp": 0, "failed": 0}
    bar = ProgressBar(len(boxes), sys.stderr, sys.stderr.isatty())
    for i, box in enumerate(boxes, 1):
        bar.update(i - 1, f"messages={totals['messages']} failed={totals['failed']}")
        label = box.label
        maildir = Maildir.from_settings(box.maildir, settings, owner=box.owner)
        try:
            done = maildir.expunge(rules.select, tmp_older_than=settings.mailbox_expire_tmp_age,
                                   now=now, dry_run=args.dry_run)
        except (OSError, MaildirError) as e:
            totals["failed"] += 1
            bar.clear()                 # stdout, stderr and the log share the terminal
            log.warning("mailbox: expire: %s: %s: %s", label, box.maildir, e)
            print(f"owlery: mailbox expire: {label}: {e}", file=sys.stderr)
            continue
        if done.problems:
            bar.clear()
        for problem in done.problems:
            log.warning("mailbox: expire: %s: skipped %s", label, problem)
        totals["mailboxes"] += 1
        totals["messages"] += done.messages
        totals["bytes"] += done.message_bytes
        totals["tmp"] += done.tmp_files
        folders = " ".join(f"{name}={n}" for name, n in sorted(done.per_folder.items()))
        log.info("mailbox: expire: %s: messages=%d bytes=%d tmp=%d %s%s", label, done.messages,
                 done.message_bytes, done.tmp_files, folders, " (dry run)" if args.dry_run else "")
        if args.verbose or args.dry_run:
            bar.clear()
            print(f"{label}: {done.messages} messages ({done.message_bytes} bytes), "
                  f"{done.tmp_files} tmp files{': ' + folders if folders else ''}")
    bar.update(len(boxes), f"messages={totals['messages']} failed={totals['failed']}", force=True)
    bar.finish()
    summary = (f"mailbox: expire: mailboxes={totals['mailboxes']} messages={totals['messages']} "
               f"bytes={totals['bytes']} tmp={totals['tmp']} failed={totals['failed']} "
               f"undated={rules.undated}{' dry_run=yes' if args.dry_run else ''}")
    log.info("%s", summary)
    print(summary)
    return EX_TEMPFAIL if totals["failed"] else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `owlery mailbox ...` to the `owlery` parser."""
    from owlery.cliutil import add_config_option
    from sieve.delivery.mailbox_select import add_selection_options
    p = sub.add_parser("mailbox", help="mailbox upkeep: expire old Junk/Trash messages and tmp/ leftovers")
    actions = p.add_subparsers(dest="mailbox_command", metavar="ACTION")
    e = actions.add_parser("expire", help="remove messages older than mailbox_expire_ages from their folders")
    add_config_option(e)
    add_selection_options(e, "expire")
    e.add_argument("--dry-run", "-n", action="store_true", help="count what would go, remove nothing")
    e.add_argument("--verbose", "-v", action="store_true", help="one line per mailbox")
    e.add_argument("--now", type=float, default=None, help=argparse.SUPPRESS)   # tests: the clock
    e.set_defaults(func=_cmd_expire)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
