"""Benchmark: `owlery stats` over a 1,000,000-line mail log, beside pflogsumm over Postfix's own.

Writes a log of decision lines made by owlery.log.format_decision (the daemons' formatter),
as the stderr handler stamps them: policyd greylist deferrals, passes, rejects and DUNNO
lines, milter verdicts with symbols, quarantine lines, lmtpd deliveries into INBOX, Junk and
other folders, with one line in ten a Postfix line Owlery does not read. Times the whole
`owlery stats` path (read, split, parse, count; the text rendering included) in this process
and prints lines/s. When `pflogsumm` is installed (Debian package pflogsumm) it times that
too, on a file of the same number of Postfix syslog lines (smtpd connect/reject, cleanup,
qmgr, lmtp delivery): a different log, the same job for the other half of the mail system.
Usage: .venv/bin/python bench/bench_stats.py [--lines 1000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from owlery.log import format_decision  # noqa: E402


def owlery_lines(count: int, start: float) -> list[str]:
    """`count` stamped lines, one distinct second per 50 lines (as a busy MX writes them)."""
    out = []
    i = 0
    kinds = 20
    while len(out) < count:
        qid = f"{0x4F3A21C + i:X}"
        client = f"mx{i % 997}.sender{i % 13}.example[198.51.{i % 250}.{i % 200 + 1}]"
        sender, rcpt = f"user{i % 5000}@sender{i % 13}.example", f"rcpt{i % 3000}@example.org"
        k = i % kinds
        if k < 4:
            line = format_decision("policyd", None, "defer-if-permit", head=f"RCPT from {client}",
                                   reply="DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 300 seconds",
                                   from_=sender, to=rcpt, check="greylist", instance=f"{i:x}.1",
                                   greylist="new", delay_left=300)
        elif k < 6:
            line = format_decision("policyd", qid, "prepend", head=f"RCPT from {client}",
                                   reply=f"PREPEND X-Greylist: delayed {300 + i % 600} seconds by Owlery at mx.test",
                                   from_=sender, to=rcpt, check="greylist", instance=f"{i:x}.2",
                                   greylist="passed", delayed=300 + i % 600)
        elif k < 8:
            line = format_decision("policyd", None, "reject", head=f"RCPT from {client}",
                                   reply=f"550 5.1.1 <{rcpt}>: User unknown", from_=sender, to=rcpt,
                                   check="recipient", instance=f"{i:x}.3", reason="unknown_user")
        elif k < 9:
            line = f"postfix/smtpd[{1000 + i % 50}]: connect from {client}"
        elif k < 13:
            spam = 12.5 if k == 12 else 0.4
            line = format_decision("milter", qid, "accept" if k < 12 else "discard",
                                   head=f"END-OF-MESSAGE from {client}", reply=None, from_=sender, to=rcpt,
                                   stages="spf,dkim_verify,dmarc,antivirus,spam", score=f"{spam:g}",
                                   symbols=f"SPF_PASS(0),DKIM_VALID(0),DMARC_POLICY_ALLOW(0),SPAMD({spam:g})",
                                   reason=f"quarantined spam {i:x}" if k == 12 else None)
        elif k < 14:
            line = format_decision("milter", qid, "quarantine", head=f"END-OF-MESSAGE from {client}",
                                   from_=sender, to=rcpt, quarantine_id=f"{i:016x}", reason="spam",
                                   detail="score 12.5", store="DirectoryStore")
        else:
            folder = ("INBOX", "INBOX", "INBOX", ".Junk", ".Lists.owlery", "INBOX")[k - 14]
            line = format_decision("lmtpd", qid, "delivered", reply=f"250 2.0.0 <{rcpt}> Saved",
                                   from_=sender, to=rcpt, detail=f"stored={folder}", delay="0.012")
        when = start + i // 50
        out.append(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(when))},{i % 1000:03d} INFO {line}")
        i += 1
    return out


def postfix_lines(count: int, start: float) -> list[str]:
    """Postfix syslog lines for pflogsumm: a message's life in five lines, some rejects."""
    out = []
    i = 0
    while len(out) < count:
        stamp = time.strftime("%b %e %H:%M:%S", time.localtime(start + i // 10))
        qid = f"{0x4F3A21C + i:X}"
        client = f"mx{i % 997}.sender{i % 13}.example[198.51.{i % 250}.{i % 200 + 1}]"
        sender, rcpt = f"user{i % 5000}@sender{i % 13}.example", f"rcpt{i % 3000}@example.org"
        out += [
            f"{stamp} mx postfix/smtpd[1234]: connect from {client}",
            f"{stamp} mx postfix/smtpd[1234]: NOQUEUE: reject: RCPT from {client}: 450 4.7.1 <{rcpt}>: "
            f"Recipient address rejected: Greylisted; from=<{sender}> to=<{rcpt}> proto=ESMTP helo=<mx>",
            f"{stamp} mx postfix/cleanup[1235]: {qid}: message-id=<{i}@sender.example>",
            f"{stamp} mx postfix/qmgr[99]: {qid}: from=<{sender}>, size={1000 + i % 5000}, nrcpt=1 (queue active)",
            f"{stamp} mx postfix/lmtp[1236]: {qid}: to=<{rcpt}>, relay=owlery, delay=0.1, "
            f"delays=0.01/0/0.01/0.08, dsn=2.0.0, status=sent (250 2.0.0 Saved)",
        ]
        i += 1
    return out[:count]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    args = ap.parse_args()
    from owlery.app.stats import render_text, summarise

    now = time.time()
    start = now - 20 * 3600
    with tempfile.TemporaryDirectory() as tmp:
        ours = Path(tmp) / "owlery.log"
        ours.write_text("\n".join(owlery_lines(args.lines, start)) + "\n")
        size = ours.stat().st_size
        t0 = time.perf_counter()
        summary = summarise([str(ours)], now - 86400, None, now=now, tag_level=5.0)
        render_text(summary, 10, [str(ours)])
        took = time.perf_counter() - t0
        lines = summary.lines
        assert lines["in_window"] == args.lines, lines
        print(f"owlery stats: {args.lines:,} lines ({size / 1e6:.0f} MB) in {took:.2f} s: "
              f"{args.lines / took:,.0f} lines/s ({lines['decisions']:,} decisions, {lines['other']:,} other)")

        pflogsumm = shutil.which("pflogsumm")
        if pflogsumm is None:
            print("pflogsumm: not installed (apt-get install pflogsumm to compare)")
            return 0
        theirs = Path(tmp) / "mail.log"
        theirs.write_text("\n".join(postfix_lines(args.lines, start)) + "\n")
        t0 = time.perf_counter()
        r = subprocess.run([pflogsumm, str(theirs)], capture_output=True, text=True,
                           env={**os.environ, "LC_ALL": "C"})
        took_pf = time.perf_counter() - t0
        if r.returncode != 0:
            print(f"pflogsumm failed ({r.returncode}): {r.stderr[-500:]}")
            return 1
        print(f"pflogsumm:    {args.lines:,} Postfix lines ({theirs.stat().st_size / 1e6:.0f} MB) in "
              f"{took_pf:.2f} s: {args.lines / took_pf:,.0f} lines/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
