"""`owlery dmarc report`: send the day's DMARC aggregate reports (RFC 7489) to the domains' rua= addresses.

Run daily by systemd/owlery-dmarc-report.timer (shortly after midnight UTC it reports the
day before), or by hand for one `--day YYYY-MM-DD` (UTC). `--dry-run` sends and claims
nothing and prints what would go where; `--output DIR` also writes each report as
`receiver!domain!begin!end.xml.gz` into DIR. A non-dry run ends by deleting results older
than dmarc_report_retention. The work is milters/dmarc_report.py's; this file only parses
arguments, opens the store, the resolver and the submission path, and prints.
Exit status: 0 done, 1 bad settings or arguments, 75 the store was unavailable or a report
could not be sent (the timer's next run does not resend a day: rerun with --day).
Tests: tests/milters/test_dmarc_report.py (the CLI over a SQLite store), tests/e2e/test_dmarc_report_e2e.py
"""

from __future__ import annotations

import argparse
import sys
import time
from os import EX_TEMPFAIL
from typing import Any



def register(sub: Any) -> None:
    from owlery.cliutil import add_config_option
    d = sub.add_parser("dmarc", help="DMARC aggregate reports from the results the milter recorded")
    ds = d.add_subparsers(dest="dmarc_command", metavar="ACTION")
    ds.required = True
    p = ds.add_parser("report", help="send one UTC day's aggregate reports to the rua= addresses (timer job)")
    add_config_option(p)
    p.add_argument("--day", metavar="YYYY-MM-DD", help="the UTC day to report (default: yesterday)")
    p.add_argument("--dry-run", action="store_true", help="send nothing, claim nothing: print what would be sent")
    p.add_argument("--output", metavar="DIR", help="also write each report (.xml.gz, RFC 7489 file name) into DIR")
    p.set_defaults(func=_cmd_report)


def _safe(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def _cmd_report(args: argparse.Namespace) -> int:
    from owlery import log as owlery_log
    from owlery.cliutil import load_settings
    from owlery.dns import build_resolver
    from owlery.quarantine.notify import submission_sender

    from milters import psl
    from milters.dmarc_report import ReportConfigError, Reporter, day_range
    from milters.dmarc_store import DmarcStoreUnavailable, open_store
    settings = load_settings(args)
    now = time.time()
    try:
        begin, end = day_range(args.day, now)
    except ValueError as e:
        print(f"owlery: dmarc report: {e}", file=sys.stderr)
        return 1
    if args.output is not None:
        import os
        os.makedirs(args.output, exist_ok=True)
    path = settings.dmarc_public_suffix_list
    try:
        store = open_store(settings)
        reporter = Reporter(settings, store, submission_sender(settings), resolver=build_resolver(settings),
                            psl=psl.shared(path) if path is not None else psl.shared(),
                            log=lambda action, **f: owlery_log.decision("dmarc", None, action, **f))
    except ReportConfigError as e:
        print(f"owlery: dmarc report: {e}", file=sys.stderr)
        return 1
    except DmarcStoreUnavailable as e:
        print(f"owlery: dmarc report: {e}", file=sys.stderr)
        return EX_TEMPFAIL
    try:
        out = reporter.run(begin, end, now=now, dry_run=args.dry_run, output_dir=args.output)
        if not args.dry_run:
            store.expire(now - settings.dmarc_report_retention)
    except DmarcStoreUnavailable as e:
        print(f"owlery: dmarc report: {e}", file=sys.stderr)
        return EX_TEMPFAIL
    finally:
        store.close()
    verb = "would send" if args.dry_run else "sent"
    for domain, to, size in out.sent:
        print(_safe(f"{verb} report for {domain} to <{to}>: {size} bytes"))
    for domain, to, why in out.skipped:
        print(_safe(f"skipped report for {domain}{f' to <{to}>' if to else ''}: {why}"))
    for path in out.written:
        print(_safe(f"wrote {path}"))
    for domain, to, why in out.failed:
        print(_safe(f"failed report for {domain} to <{to}>: {why}"), file=sys.stderr)
    if not out.reports:
        print(f"no DMARC results for {time.strftime('%Y-%m-%d', time.gmtime(begin))}")
    return EX_TEMPFAIL if out.failed else 0
