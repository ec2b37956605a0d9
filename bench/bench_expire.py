"""Benchmark: `owlery mailbox expire` over 1,000 mailboxes holding 100,000 messages, beside the
cron-script way (`find .../.Junk/cur -mtime +N -delete` per folder, as the university
cleanup scripts do).

Builds one tree of Maildirs (INBOX 50, Junk 30, Trash 20 messages per mailbox by default;
a third of Junk and Trash older than the limit, names carrying their delivery time and
mtimes set to match, so both tools pick the same files), copies it, then times
`owlery mailbox expire` (one process, every Maildir on its command line; maildirsize
updated) on one copy and `find ... -delete` (which does no quota bookkeeping and trusts
mtimes, which IMAP clients change) on the other, and checks both removed the same count.
Usage: .venv/bin/python bench/bench_expire.py [--mailboxes 1000] [--per-mailbox 100]
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
DAY = 86400


def build(base: Path, mailboxes: int, per_mailbox: int, now: int) -> int:
    """The tree; returns how many messages are past their folder's limit."""
    split = {"": per_mailbox // 2, ".Junk": per_mailbox * 3 // 10}
    split[".Trash"] = per_mailbox - sum(split.values())
    expired = 0
    for m in range(mailboxes):
        md = base / f"user{m:05d}" / "Maildir"
        for folder, count in split.items():
            for sub in ("cur", "new", "tmp"):
                (md / folder / sub).mkdir(parents=True, exist_ok=True)
            if folder:
                (md / folder / "maildirfolder").touch()
            for i in range(count):
                old = folder and i % 3 == 0
                t = now - (40 if old else 2) * DAY - i
                expired += bool(old)
                name = f"{t}.M{i}P{m}Q1.bench,S=400,W=410:2,S"
                p = md / folder / "cur" / name
                p.write_bytes(b"x" * 400)
                os.utime(p, (t, t))
        (md / "maildirsize").write_text(f"0S,0C\n{per_mailbox * 400} {per_mailbox}\n")
    return expired


def count_messages(base: Path) -> int:
    return sum(1 for _ in base.glob("*/Maildir/**/cur/*"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mailboxes", type=int, default=1000)
    ap.add_argument("--per-mailbox", type=int, default=100)
    args = ap.parse_args()
    now = int(time.time())
    work = Path(tempfile.mkdtemp(prefix="owlery-bench-expire-"))
    try:
        a, b = work / "owlery", work / "find"
        t0 = time.perf_counter()
        expired = build(a, args.mailboxes, args.per_mailbox, now)
        shutil.copytree(a, b, symlinks=True)
        total = count_messages(a)
        print(f"tree: {args.mailboxes} mailboxes, {total} messages, {expired} past their limit "
              f"(built in {time.perf_counter() - t0:.1f} s)")
        cfg = work / "owlery.toml"
        cfg.write_text('mailbox_expire_ages = { Junk = "30d", Trash = "30d" }\nmaildir_fsync = "optimized"\n'
                       'log_target = "stderr"\n')
        maildirs = [str(p) for p in sorted(a.glob("*/Maildir"))]
        cmd = [str(ROOT / ".venv/bin/owlery"), "mailbox", "expire", "-c", str(cfg), *sum((["--maildir", p] for p in maildirs), [])]
        subprocess.run(["sync"], check=True)
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        owlery_s = time.perf_counter() - t0
        if out.returncode != 0:
            print(out.stdout, out.stderr, file=sys.stderr)
            return 1
        t0 = time.perf_counter()
        for folder in (".Junk", ".Trash"):
            subprocess.run(["find", str(b), "-path", f"*/Maildir/{folder}/cur/*", "-type", "f",
                            "-mtime", "+30", "-delete"], check=True)
        find_s = time.perf_counter() - t0
        left_a, left_b = count_messages(a), count_messages(b)
        assert total - left_a == expired == total - left_b, (total, left_a, left_b, expired)
        print(f"{'tool':<34} {'seconds':>8} {'messages/s scanned':>20} {'removed':>8}")
        print(f"{'owlery mailbox expire':<34} {owlery_s:>8.2f} {total / owlery_s:>20,.0f} {total - left_a:>8}")
        print(f"{'find -mtime +30 -delete (cron)':<34} {find_s:>8.2f} {total / find_s:>20,.0f} {total - left_b:>8}")
        print(f"ratio owlery/find: {owlery_s / find_s:.2f}x the time "
              "(owlery also keeps maildirsize exact and ignores mtimes clients change)")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
