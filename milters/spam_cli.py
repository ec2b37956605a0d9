"""`owlery spam learn`: feed spam and ham to spamd's Bayes database, the job sa-learn does from cron.

Three ways in:
- FOLDER...: Maildir folders (cur/ and new/) or plain directories of message files;
- `--maildir ROOT` (or `--all-users`: every mailbox the directory lists, each with its own
  Bayes database when `spam_learn_per_user`): a user's Maildir; its spam folders (`spam_learn_spam_folders`, any
  case, e.g. Junk) are taught as spam, and with `--ham-inbox` its INBOX messages delivered
  at least `spam_learn_ham_age` ago as ham;
- `--stdin`: one message, for Dovecot's imapsieve learn-on-move (a Sieve script run when a
  user moves mail into or out of Junk pipes it here; README "Spam learning").
What was taught is remembered in the state store (milters/spam_learn.py), so a nightly run
over every Junk folder sends only new messages to spamd.
Files are opened without following links and must be regular files (a link planted in a
Junk folder is skipped): this may run as root over users' Maildirs.
Exit status: 0 done, 1 a folder or file could not be read, 75 spamd unavailable.
Tests: tests/milters/test_spam_learn.py, tests/milters/test_quarantine_cli.py (the progress bar),
tests/e2e/test_spam_learn_imapsieve.py
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from collections.abc import Iterator

EX_TEMPFAIL = 75
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def maildir_files(folder: str) -> list[str]:
    """Message files of a Maildir folder (cur/ and new/), or of a plain directory (links not followed)."""
    subdirs = [os.path.join(folder, d) for d in ("cur", "new")
               if stat.S_ISDIR(_lstat_mode(os.path.join(folder, d)))]
    if not subdirs:
        subdirs = [folder]
    out = []
    for d in subdirs:
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            if not name.startswith(".") and stat.S_ISREG(_lstat_mode(path)):
                out.append(path)
    return out


def _lstat_mode(path: str) -> int:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return 0


def read_message(path: str, limit: int) -> bytes | None:
    """Up to limit+1 bytes of a regular file, never through a link; None when it is not one."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        from owlery.maildir import read_all
        return read_all(fd, limit + 1)
    finally:
        os.close(fd)


def maildir_jobs(root: str, spam_folders: tuple[str, ...], ham_inbox: bool, ham_age: float,
                 now: float) -> Iterator[tuple[str, str]]:
    """(path, class) for one Maildir root: its spam folders, and old INBOX messages as ham."""
    from owlery.maildir import decode_mutf7, delivery_time
    wanted = {name.lower() for name in spam_folders}
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return
    for entry in entries:
        if not entry.startswith(".") or entry in (".", ".."):
            continue
        name = ".".join(decode_mutf7(p) for p in entry[1:].split("."))
        path = os.path.join(root, entry)
        if name.lower() in wanted and stat.S_ISDIR(_lstat_mode(path)):
            for f in maildir_files(path):
                yield f, "spam"
    if ham_inbox and stat.S_ISDIR(_lstat_mode(os.path.join(root, "cur"))):
        for f in maildir_files(root):
            delivered = delivery_time(os.path.basename(f))
            if delivered is not None and now - delivered >= ham_age:
                yield f, "ham"


class ProgressBar:
    """A one-line progress bar on a stream: `[#####.....] 12/40 learned=10 known=2 failed=0`."""

    def __init__(self, total: int, stream, enabled: bool, width: int = 30):
        self.total, self.stream, self.enabled, self.width = total, stream, enabled, width
        self._last = 0.0

    def update(self, done: int, note: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1 and done != self.total:
            return
        self._last = now
        filled = self.width * done // max(self.total, 1)
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} {note}")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _jobs(args: argparse.Namespace, settings, now: float, user: str) -> list[tuple[str, str, str]]:
    """(path, class, spamd user) of every message to teach."""
    jobs = [(f, args.message_class, user) for folder in args.folders for f in maildir_files(folder)]
    roots = [(root, user) for root in args.maildir]
    if args.all_users:
        from owlery.directory import open_directory
        from owlery.maildir import path_for
        directory = open_directory(settings)
        try:
            for box in directory.mailboxes():        # may raise DirectoryUnavailable
                path = box.maildir or path_for(settings.maildir_path_template, box.address)
                roots.append((path, box.address if settings.spam_learn_per_user else user))
        finally:
            directory.close()
    for root, who in roots:
        jobs += [(path, klass, who) for path, klass in maildir_jobs(
            root, tuple(settings.spam_learn_spam_folders), args.ham_inbox, settings.spam_learn_ham_age, now)]
    return jobs


def _open_store(settings):
    if settings.spam_learn_memory <= 0:
        return None
    from owlery.errors import StateUnavailable
    from owlery.state import open_store
    try:
        return open_store(settings)
    except (StateUnavailable, OSError) as e:
        print(f"owlery: spam learn: state store unavailable, teaching without memory: {e}", file=sys.stderr)
        return None


def _cmd_learn(args: argparse.Namespace) -> int:
    from owlery.cliutil import load_settings
    from milters.clients import ScannerUnavailable
    from milters.clients.spamd import SpamdClient
    from milters.quarantine_cli import safe
    from milters.spam_learn import Teacher
    from owlery.errors import DirectoryUnavailable
    settings = load_settings(args)
    if args.stdin == bool(args.folders or args.maildir or args.all_users):
        print("owlery: spam learn: give FOLDERs, --maildir or --all-users, or --stdin", file=sys.stderr)
        return 2
    if (args.folders or args.stdin) and args.message_class is None:
        print("owlery: spam learn: say what the messages are: --spam or --ham", file=sys.stderr)
        return 2
    for folder in args.folders + args.maildir:
        if not stat.S_ISDIR(_lstat_mode(folder)):
            print(f"owlery: spam learn: {folder}: not a directory", file=sys.stderr)
            return 1
    now = time.time()
    user = args.user or settings.spamd_user
    store = _open_store(settings)
    teacher = Teacher(SpamdClient.from_settings(settings), store, memory=settings.spam_learn_memory, now=now)
    try:
        if args.stdin:
            data = sys.stdin.buffer.read(settings.spamd_max_size + 1)
            if len(data) > settings.spamd_max_size:
                print(f"{args.message_class}: skipped (over spamd_max_size)")
                return 0
            try:
                outcome = teacher.teach(data, args.message_class, user)
            except ScannerUnavailable as e:
                print(f"owlery: spam learn: spamd: {e}", file=sys.stderr)
                return EX_TEMPFAIL
            print(f"{args.message_class}: {outcome}")
            return 0
        try:
            jobs = _jobs(args, settings, now, user)
        except DirectoryUnavailable as e:
            print(f"owlery: spam learn: {e}", file=sys.stderr)
            return EX_TEMPFAIL
        show = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
        bar = ProgressBar(len(jobs), sys.stderr, show)
        counts = {"learned": 0, "known": 0, "skipped": 0, "failed": 0}
        for i, (path, klass, who) in enumerate(jobs, 1):
            data = read_message(path, settings.spamd_max_size)
            if data is None:
                counts["failed"] += 1
                print("\n" + safe(f"owlery: spam learn: {path}: not a readable regular file"), file=sys.stderr)
            elif len(data) > settings.spamd_max_size:
                counts["skipped"] += 1
            else:
                try:
                    counts[teacher.teach(data, klass, who)] += 1
                except ScannerUnavailable as e:
                    bar.finish()
                    print(f"owlery: spam learn: spamd: {e} (stopped after {i - 1} of {len(jobs)})", file=sys.stderr)
                    return EX_TEMPFAIL
            bar.update(i, " ".join(f"{k}={v}" for k, v in counts.items()))
        bar.update(len(jobs), " ".join(f"{k}={v}" for k, v in counts.items()), force=True)
        bar.finish()
        classes = sorted({klass for _, klass, _ in jobs}) or [args.message_class or "spam"]
        print(f"{'+'.join(classes)}: {len(jobs)} messages, learned {counts['learned']}, already known "
              f"{counts['known']}, skipped {counts['skipped']} (over spamd_max_size), failed {counts['failed']}")
        return 1 if counts["failed"] else 0
    finally:
        if store is not None:
            store.close()


def register(sub: argparse._SubParsersAction) -> None:
    """Add `owlery spam learn` to the `owlery` parser."""
    from owlery.cliutil import add_config_option
    s = sub.add_parser("spam", help="train spamd")
    ss = s.add_subparsers(dest="spam_command", metavar="ACTION")
    ss.required = True
    p = ss.add_parser("learn", help="feed Maildir folders or one message to spamd's Bayes database (TELL)")
    add_config_option(p)
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--spam", dest="message_class", action="store_const", const="spam",
                      help="the folders / the message hold spam (e.g. users' Junk)")
    kind.add_argument("--ham", dest="message_class", action="store_const", const="ham",
                      help="the folders / the message hold wanted mail (e.g. users' INBOX)")
    p.add_argument("folders", nargs="*", metavar="FOLDER", help="Maildir folders (cur/ and new/) or directories")
    p.add_argument("--maildir", action="append", default=[], metavar="ROOT",
                   help="a user's Maildir: teach its spam folders (spam_learn_spam_folders) as spam")
    p.add_argument("--all-users", action="store_true",
                   help="every mailbox the directory lists, as --maildir (per-user Bayes: spam_learn_per_user)")
    p.add_argument("--ham-inbox", action="store_true",
                   help="with --maildir/--all-users: also teach INBOX messages older than spam_learn_ham_age as ham")
    p.add_argument("--stdin", action="store_true", help="teach the one message on standard input "
                                                        "(Dovecot imapsieve learn-on-move)")
    p.add_argument("--user", help="spamd user whose database learns (default spamd_user)")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="progress bar on stderr (auto: when stderr is a terminal)")
    p.set_defaults(func=_cmd_learn)
