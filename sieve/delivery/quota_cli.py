"""`owlery quota recalc` and `owlery quota report`: Maildir++ quota upkeep without cron scripts.

recalc: recount each mailbox (file names' S=, else sizes) and rewrite maildirsize
atomically with the user's limits (the directory's, else the defaults, else the limits
already on the file's definition line). report: usage against the limits, highest first,
`--over PERCENT` to list only the fullest; `--map FILE` writes the addresses at or over
`--map-over` percent (default 100) as a Postfix-style table, the format `files_over_quota`
reads (atomic rename, so the policy daemon never reads half a file). Dovecot's maildir
quota backend reads the same maildirsize (tests/e2e/test_quota_dovecot.py).
Exit status: 0 done, 1 settings error, 2 usage, 75 some mailbox could not be read.
Tests: tests/delivery/test_quota_cli.py, tests/e2e/test_quota_dovecot.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from os import EX_TEMPFAIL



def _boxes(args: argparse.Namespace):
    from owlery.cliutil import load_settings
    from owlery.errors import DirectoryUnavailable
    from owlery.maildir import MaildirError
    from sieve.delivery.mailbox_select import selected
    settings = load_settings(args)
    try:
        boxes = selected(args, settings)
    except (LookupError, DirectoryUnavailable, MaildirError) as e:
        print(f"owlery: quota: {e}", file=sys.stderr)
        raise SystemExit(EX_TEMPFAIL if isinstance(e, DirectoryUnavailable) else 1) from None
    if not boxes:
        print("owlery: quota: name addresses, --maildir PATH or --all-users", file=sys.stderr)
        raise SystemExit(2)
    return settings, boxes


def _percent(used, quota) -> float:
    ratios = []
    if quota.bytes:
        ratios.append(used.bytes / quota.bytes)
    if quota.messages:
        ratios.append(used.messages / quota.messages)
    return 100.0 * max(ratios)


def _cmd_recalc(args: argparse.Namespace) -> int:
    from owlery.maildir import Maildir, MaildirError
    settings, boxes = _boxes(args)
    failed = 0
    for box in boxes:
        maildir = Maildir.from_settings(box.maildir, settings, owner=box.owner)
        try:
            quota = box.quota or maildir.stored_quota()
            if quota is None:
                print(f"{box.label}: no quota, nothing to keep")
                continue
            used = maildir.recalculate(quota)
        except (OSError, MaildirError) as e:
            failed += 1
            print(f"owlery: quota recalc: {box.label}: {e}", file=sys.stderr)
            continue
        print(f"{box.label}: {used.bytes} bytes, {used.messages} messages ({quota.definition()})")
    return EX_TEMPFAIL if failed else 0


def _write_map(path: str, addresses: list[str]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".owlery-over-quota.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("# written by `owlery quota report --map`: mailboxes at or over their quota\n")
            for address in addresses:
                f.write(f"{address}\tover quota\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _cmd_report(args: argparse.Namespace) -> int:
    from owlery.maildir import Maildir, MaildirError
    settings, boxes = _boxes(args)
    rows, failed = [], 0
    for box in boxes:
        maildir = Maildir.from_settings(box.maildir, settings, owner=box.owner)
        try:
            quota = box.quota or maildir.stored_quota()
            if quota is None:
                continue
            used = maildir.usage(quota)
        except (OSError, MaildirError) as e:
            failed += 1
            print(f"owlery: quota report: {box.label}: {e}", file=sys.stderr)
            continue
        rows.append((_percent(used, quota), box.label, used, quota))
    rows.sort(key=lambda r: (-r[0], r[1]))
    print(f"{'percent':>7}  {'bytes':>14} {'limit':>14}  {'msgs':>8} {'limit':>8}  address")
    for pct, label, used, quota in rows:
        if pct >= args.over:
            print(f"{pct:>6.1f}%  {used.bytes:>14} {quota.bytes or '-':>14}  {used.messages:>8} "
                  f"{quota.messages or '-':>8}  {label}")
    if args.map:
        _write_map(args.map, sorted(label for pct, label, _, _ in rows if pct >= args.map_over and "@" in label))
    return EX_TEMPFAIL if failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `owlery quota ...` to the `owlery` parser."""
    from owlery.cliutil import add_config_option
    from sieve.delivery.mailbox_select import add_selection_options
    p = sub.add_parser("quota", help="Maildir++ quota upkeep: recount usage, report the fullest mailboxes")
    actions = p.add_subparsers(dest="quota_command", metavar="ACTION")
    r = actions.add_parser("recalc", help="recount usage and rewrite maildirsize")
    add_config_option(r)
    add_selection_options(r, "recount")
    r.set_defaults(func=_cmd_recalc)
    r = actions.add_parser("report", help="usage against the limits, fullest first")
    add_config_option(r)
    add_selection_options(r, "report")
    r.add_argument("--over", type=float, default=0.0, metavar="PERCENT", help="list only mailboxes at least this full")
    r.add_argument("--map", metavar="FILE", help="write the addresses at or over --map-over percent as a "
                                                 "Postfix-style table (the files_over_quota format)")
    r.add_argument("--map-over", type=float, default=100.0, metavar="PERCENT", help="threshold for --map (default 100)")
    r.set_defaults(func=_cmd_report)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
