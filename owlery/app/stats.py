"""`owlery stats`: a readable summary of the decision log lines for a time window (like pflogsumm).

Reads log files (`-` for stdin; gzip files by their magic, whatever their name) or, given
none, the files in `stats_log_files` with their rotations beside them (`mail.log.1`,
`mail.log.2.gz`, `mail.log-20250101`; one last written before the window is not opened)
and `quarantine_audit_log_path` when set. The counting is owlery/app/stats_core.py's; this
module does the reading, the options and the two renderings (text, `--json`).
Talks to: the files named. Tests: tests/core/test_stats.py
"""

from __future__ import annotations

import sys

from owlery.settings import StrList, setting

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator
    from typing import Any

    from owlery.app.stats_core import Summary

STATS_LOG_FILES = setting(
    "stats_log_files", StrList, ["/var/log/mail.log"],
    "Log files `owlery stats` reads when given none (with log_target = \"syslog\", where the "
    "mail facility goes); their rotations beside them (.1, .2.gz, -YYYYMMDD) are read too. "
    "Under journald pipe instead: journalctl -u 'owlery*' --since -1d | owlery stats -.")

CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


def register(sub: Any) -> None:
    from owlery.cliutil import add_config_option
    p = sub.add_parser("stats", help="summarise the decision log lines of a time window (like pflogsumm)")
    add_config_option(p)
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="log files, plain or gzip, or - for stdin (default: stats_log_files and their rotations)")
    p.add_argument("--since", default="24h", metavar="WHEN",
                   help="start of the window: a duration back from now (24h, 7d) or an ISO time "
                        "(2025-05-01, 2025-05-01T08:00+02:00); default 24h")
    p.add_argument("--until", default=None, metavar="WHEN", help="end of the window (default: now), same forms")
    p.add_argument("--all", action="store_true", help="no window: every line, undated ones too")
    p.add_argument("--top", type=int, default=10, metavar="N", help="names shown per top list (default 10)")
    p.add_argument("--json", action="store_true", help="one JSON document instead of text")
    p.set_defaults(func=_cmd_stats)


def parse_when(text: str, now: float) -> float:
    """Seconds since the epoch from a duration back from `now` ("24h") or an ISO time
    (local time when it names no offset)."""
    import datetime

    from owlery.settings import parse_duration
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return datetime.datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ValueError(f"expected a duration (24h, 7d) or an ISO time (2025-05-01T08:00), got {text!r}") from None


def _cmd_stats(args: argparse.Namespace) -> int:
    import time

    from owlery.cliutil import load_settings
    now = time.time()
    if args.top < 0:
        print("owlery: stats: --top must be 0 or more", file=sys.stderr)
        return 2
    try:
        since = None if args.all else parse_when(args.since, now)
        until = None if args.all or args.until is None else parse_when(args.until, now)
    except ValueError as e:
        print(f"owlery: stats: {e}", file=sys.stderr)
        return 2
    settings = load_settings(args)
    if args.files:
        paths = list(args.files)
        missing = [p for p in paths if p != "-" and not _readable(p)]
        if missing:
            print(f"owlery: stats: cannot read {', '.join(missing)}", file=sys.stderr)
            return 1
    else:
        paths = default_paths(settings, since)
        if not paths:
            print(f"owlery: stats: none of {', '.join(settings.stats_log_files)} can be read; name the "
                  "files, or pipe the journal: journalctl -u 'owlery*' --since -1d | owlery stats -",
                  file=sys.stderr)
            return 1
    tag2 = settings.spam_tag2_level
    summary = summarise(paths, since, until, now=now, tag_level=tag2 if tag2 is not None else settings.milter_score_tag)
    if args.json:
        import json
        doc = summary.to_dict(args.top)
        doc["files"] = paths
        text = json.dumps(doc, indent=2) + "\n"
    else:
        text = render_text(summary, args.top, paths)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:         # `owlery stats | head`: the reader has what it wanted
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _readable(path: str) -> bool:
    import os
    return os.path.isfile(path) and os.access(path, os.R_OK)


def default_paths(settings: Any, since: float | None) -> list[str]:
    """The configured files and their rotations, oldest first, skipping files last written
    before `since` (they hold no line of the window) and files that cannot be read."""
    import glob
    import os
    import re
    rotated = re.compile(r"(?:\.(\d+)|-(\d{8,10}))(?:\.gz)?$")
    out: list[str] = []
    bases = list(settings.stats_log_files)
    if settings.quarantine_audit_log_path:
        bases.append(settings.quarantine_audit_log_path)
    for base in bases:
        found = []
        for path in glob.glob(glob.escape(base) + "[.-]*"):
            m = rotated.fullmatch(path[len(base):])
            if m is not None:
                # .1 is newer than .2; -20250102 newer than -20250101
                order = -int(m.group(1)) if m.group(1) is not None else int(m.group(2))
                found.append((0 if m.group(1) is not None else 1, order, path))
        found.sort()
        for _, _, path in [*found, (2, 0, base)]:
            try:
                if since is not None and os.stat(path).st_mtime < since:
                    continue
            except OSError:
                continue
            if _readable(path) and path not in out:
                out.append(path)
    return out


def read_chunks(path: str) -> Iterator[bytes]:
    """The bytes of one file (gunzipped when it starts with gzip's magic) or of stdin ("-")."""
    import gzip
    if path == "-":
        stdin = sys.stdin.buffer
        peek = getattr(stdin, "peek", None)
        if peek is not None and peek(2)[:2] == _GZIP_MAGIC:
            stdin = gzip.GzipFile(fileobj=stdin)        # reads on without seeking
        yield from _chunks_of(stdin, path)
        return
    with open(path, "rb") as raw:
        if raw.read(2) == _GZIP_MAGIC:
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw) as z:
                yield from _chunks_of(z, path)
            return
        raw.seek(0)
        yield from _chunks_of(raw, path)


def _chunks_of(stream: Any, path: str) -> Iterator[bytes]:
    """At most CHUNK bytes at a time (a small .gz may unpack to gigabytes)."""
    import zlib
    try:
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                return
            yield chunk
    except (OSError, EOFError, zlib.error) as e:
        # A gzip file cut short (still being written, or damaged): keep what was read.
        print(f"owlery: stats: {path}: {e}; the rest of it is skipped", file=sys.stderr)


def summarise(paths: list[str], since: float | None, until: float | None, *, now: float,
              tag_level: float | None) -> Summary:
    from owlery.app.stats_core import LineCounter, StatsParser, split_lines
    parser = StatsParser(since, until, now=now, tag_level=tag_level)
    counter = LineCounter()
    for path in paths:
        for lines in split_lines(read_chunks(path), counter):
            parser.feed(lines)
    return parser.summary(counter.too_long)


# --- text ------------------------------------------------------------------------------------

def _n(value: int) -> str:
    return f"{value:,}"


def _when(stamp: float | None, default: str = "-") -> str:
    import time
    return default if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _counts_line(counts: dict[str, int]) -> str:
    shown = [f"{k} {_n(v)}" for k, v in counts.items() if v]
    return ", ".join(shown) if shown else "none"


def _top_block(out: list[str], title: str, pairs: list[tuple[str, int]]) -> None:
    if not pairs:
        return
    out.append(f"  {title}")
    width = max(len(_n(v)) for _, v in pairs)
    out.extend(f"    {_n(v):>{width}}  {_safe(k)}" for k, v in pairs)


def _safe(text: str) -> str:
    """Names come from the mail (addresses, file names): nothing that steers a terminal."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def render_text(s: Summary, top: int, paths: list[str]) -> str:
    """The pflogsumm-like report."""
    lines = s.lines
    out = ["Owlery statistics",
           f"  window   {_when(s.since, 'start')} .. {_when(s.until, 'now')}"
           f" (lines from {_when(s.first)} to {_when(s.last)})",
           f"  files    {', '.join(_safe(p) for p in paths)}",
           f"  lines    {_n(lines['read'])} read, {_n(lines['in_window'])} in the window, "
           f"{_n(lines['decisions'])} decisions, {_n(lines['other'])} other"
           + "".join(f", {_n(lines[k])} {k.replace('_', ' ')}" for k in ("out_of_window", "undated", "too_long")
                     if lines[k]),
           ""]

    out.append("Policy decisions (policyd)")
    out.append(f"  by action  {_counts_line(s.policy_actions.as_dict())}")
    for check, actions in sorted(s.policy_checks.items()):
        out.append(f"  {check:<10} {_counts_line(actions.as_dict())}")
    _top_block(out, "top rejected senders (policyd and milter)", s.rejected_senders.top(top))
    _top_block(out, "top rejected client hosts", s.rejected_clients.top(top))
    _top_block(out, "top rejected recipients", s.rejected_recipients.top(top))
    out.append("")

    g = s.greylist
    rate = s.greylist_pass_rate()
    from owlery.app.stats_core import median
    delay = median(s.greylist_delays)
    out.append("Greylisting")
    out.append(f"  deferred {_n(g['deferred'])} (new triplets {_n(g['new'])}, early retries {_n(g['early_retry'])}"
               + (f", store errors {_n(g['errors'])}" if g["errors"] else "") + ")")
    out.append(f"  passed {_n(g['passed'])}, pass rate {'-' if rate is None else f'{rate:.1%}'}, "
               f"median delay {'-' if delay is None else f'{delay:g} s'}")
    out.append("")

    out.append("Content checks (milter)")
    out.append(f"  messages   {_counts_line(s.milter_actions.as_dict())}")
    level = "" if s.tag_level is None else f" (score >= {s.tag_level:g})"
    sp = s.spam
    out.append(f"  spam       scanned {_n(sp['scanned'])}, tagged {_n(sp['tagged'])}{level}, "
               f"quarantined {_n(sp['quarantined'])}, rejected {_n(sp['rejected'])}")
    v = s.virus
    out.append(f"  viruses    found {_n(v['found'])}, rejected {_n(v['rejected'])}, quarantined {_n(v['quarantined'])}"
               + (f"; scanner unavailable {_n(v['unavailable'])}" if v["unavailable"] else "")
               + (f"; not scanned {_n(v['unchecked'])}" if v["unchecked"] else ""))
    _top_block(out, "top viruses", s.viruses.top(top))
    b = s.banned
    out.append(f"  banned     found {_n(b['found'])}, rejected {_n(b['rejected'])}, quarantined {_n(b['quarantined'])}")
    _top_block(out, "top banned files", s.banned_names.top(top))
    _top_block(out, "temporary failures", s.milter_tempfail_reasons.top(top))
    out.append("")

    out.append("Authentication")
    for method in ("spf", "dkim", "dmarc", "arc"):
        if method in s.auth:
            out.append(f"  {method:<13} {_counts_line(s.auth[method].as_dict())}")
    if s.spf_policyd.counts:
        out.append(f"  {'spf (policyd)':<13} {_counts_line(s.spf_policyd.as_dict())}")
    if not s.auth and not s.spf_policyd.counts:
        out.append("  none seen")
    out.append("")

    d = s.delivery
    out.append("Deliveries (lmtpd, lda)")
    out.append(f"  by result  {_counts_line(s.deliveries.as_dict())}")
    out.append(f"  stored     INBOX {_n(d['stored_inbox'])}, Junk {_n(d['stored_junk'])}, "
               f"other folders {_n(d['stored_other'])}")
    out.append(f"  redirected {_n(d['redirected'])}, vacation replies {_n(d['vacation_sent'])} "
               f"(suppressed {_n(d['vacation_suppressed'])}), discarded {_n(d['discarded'])}, "
               f"rejected {_n(d['rejected'])}, tempfail {_n(d['tempfail'])}")
    _top_block(out, "folders", s.folders.top(top))
    out.append("")

    q = s.quarantine
    out.append("Quarantine")
    out.append(f"  held       {_counts_line(s.quarantine_held.as_dict())}")
    out.append(f"  released {_n(q['released'])}, release failed {_n(q['release_failed'])}, "
               f"denied {_n(q['release_denied'])}, deleted {_n(q['deleted'])}, expired {_n(q['expired'])}")
    return "\n".join(out) + "\n"
