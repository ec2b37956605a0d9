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
Junk folder is skipped): this may run as root over users' Maildirs. A spam folder that is a
link, or a Maildir or folder that cannot be listed (a permission error), is reported on
stderr and counted as failed; the other mailboxes are still taught.
`--for ADDRESS` names the mailbox a message came from (imapsieve's imap.user): its own Bayes
database with `spam_learn_per_user`, else spamd_user's (contrib/dovecot/owlery-learn).
Exit status: 0 done, 1 a message file could not be read (or a FOLDER given is no directory),
75 spamd unavailable, or a Maildir or folder could not be listed (as `owlery mailbox
expire`): run again later.
Tests: tests/milters/test_spam_learn.py, tests/milters/test_quarantine_cli.py (the progress bar),
tests/e2e/test_spam_learn_imapsieve.py
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import stat
import sys
import time
from collections.abc import Iterator
from os import EX_TEMPFAIL

_BAYES_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+-]{0,127}")     # what spamd's User header takes
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _problem(problems: list[str] | None, path: str, reason: str, err: int = errno.EIO) -> None:
    """Report `path: reason` into problems; without a list, raise it as an OSError."""
    if problems is None:
        raise OSError(err, reason, path)
    problems.append(f"{path}: {reason}")


def maildir_files(folder: str, problems: list[str] | None = None) -> list[str]:
    """Message files of a Maildir folder (cur/ and new/), or of a plain directory (links not
    followed). A cur/ or new/ that is a link, or a directory that cannot be listed, goes to
    `problems` (None: raised as OSError); one that vanished meanwhile is simply empty."""
    modes = {d: _lstat_mode(os.path.join(folder, d)) for d in ("cur", "new")}
    for d, mode in modes.items():
        if stat.S_ISLNK(mode):
            _problem(problems, os.path.join(folder, d), "is a symbolic link, not followed", errno.ELOOP)
    subdirs = [os.path.join(folder, d) for d, mode in modes.items() if stat.S_ISDIR(mode)]
    if not subdirs and not any(stat.S_ISLNK(mode) for mode in modes.values()):
        subdirs = [folder]
    out = []
    for d in subdirs:
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            continue                  # removed or renamed meanwhile: nothing to teach
        except OSError as e:
            _problem(problems, d, f"cannot be listed: {e.strerror or e}", e.errno or errno.EIO)
            continue
        for name in names:
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
                 now: float, problems: list[str] | None = None) -> Iterator[tuple[str, str]]:
    """(path, class) for one Maildir root: its spam folders, and old INBOX messages as ham.
    A root or folder that cannot be listed, or a spam folder that is a link, goes to
    `problems` (None: raised as OSError); a root that does not exist yet is nothing to do."""
    from owlery.maildir import decode_mutf7, delivery_time
    wanted = {name.lower() for name in spam_folders}
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        return                        # no mail delivered yet
    except OSError as e:
        _problem(problems, root, f"cannot be listed: {e.strerror or e}", e.errno or errno.EIO)
        return
    for entry in entries:
        if not entry.startswith(".") or entry in (".", ".."):
            continue
        name = ".".join(decode_mutf7(p) for p in entry[1:].split("."))
        if name.lower() not in wanted:
            continue
        path = os.path.join(root, entry)
        mode = _lstat_mode(path)
        if stat.S_ISLNK(mode):
            _problem(problems, path, "is a symbolic link, not followed", errno.ELOOP)
        elif stat.S_ISDIR(mode):
            for f in maildir_files(path, problems):
                yield f, "spam"
    if ham_inbox and stat.S_ISDIR(_lstat_mode(os.path.join(root, "cur"))):
        for f in maildir_files(root, problems):
            delivered = delivery_time(os.path.basename(f))
            if delivered is not None and now - delivered >= ham_age:
                yield f, "ham"


def _jobs(args: argparse.Namespace, settings, now: float, user: str,
          problems: list[str]) -> list[tuple[str, str, str]]:
    """(path, class, spamd user) of every message to teach; what could not be listed goes to problems."""
    jobs = [(f, args.message_class, user) for folder in args.folders for f in maildir_files(folder, problems)]
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
            root, tuple(settings.spam_learn_spam_folders), args.ham_inbox, settings.spam_learn_ham_age, now,
            problems)]
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
    from owlery.cliutil import ProgressBar
    from owlery.errors import DirectoryUnavailable
    settings = load_settings(args)
    if args.stdin == bool(args.folders or args.maildir or args.all_users):
        print("owlery: spam learn: give FOLDERs, --maildir or --all-users, or --stdin", file=sys.stderr)
        return 2
    if (args.folders or args.stdin) and args.message_class is None:
        print("owlery: spam learn: say what the messages are: --spam or --ham", file=sys.stderr)
        return 2
    if args.for_address is not None and (args.all_users or args.user or not _BAYES_USER.fullmatch(args.for_address)):
        print(f"owlery: spam learn: --for takes one mailbox's address (not {args.for_address!r}), "
              "and not with --all-users or --user", file=sys.stderr)
        return 2
    for folder in args.folders + args.maildir:
        if not stat.S_ISDIR(_lstat_mode(folder)):
            print(f"owlery: spam learn: {folder}: not a directory", file=sys.stderr)
            return 1
    now = time.time()
    user = args.user or settings.spamd_user
    if args.for_address is not None and settings.spam_learn_per_user:
        user = args.for_address.lower()        # the login's case does not make another database
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
        problems: list[str] = []
        try:
            jobs = _jobs(args, settings, now, user, problems)
        except DirectoryUnavailable as e:
            print(f"owlery: spam learn: {e}", file=sys.stderr)
            return EX_TEMPFAIL
        for problem in problems:
            print(safe(f"owlery: spam learn: {problem}"), file=sys.stderr)
        show = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
        bar = ProgressBar(len(jobs), sys.stderr, show)
        counts = {"learned": 0, "known": 0, "skipped": 0, "failed": len(problems)}
        unreadable = 0
        for i, (path, klass, who) in enumerate(jobs, 1):
            data = read_message(path, settings.spamd_max_size)
            if data is None:
                counts["failed"] += 1
                unreadable += 1
                bar.clear()
                print(safe(f"owlery: spam learn: {path}: not a readable regular file"), file=sys.stderr)
            elif len(data) > settings.spamd_max_size:
                counts["skipped"] += 1
            else:
                try:
                    counts[teacher.teach(data, klass, who)] += 1
                except ScannerUnavailable as e:
                    bar.clear()
                    print(f"owlery: spam learn: spamd: {e} (stopped after {i - 1} of {len(jobs)})", file=sys.stderr)
                    return EX_TEMPFAIL
            bar.update(i, " ".join(f"{k}={v}" for k, v in counts.items()))
        bar.update(len(jobs), " ".join(f"{k}={v}" for k, v in counts.items()), force=True)
        bar.finish()
        classes = sorted({klass for _, klass, _ in jobs}) or [args.message_class or "spam"]
        print(f"{'+'.join(classes)}: {len(jobs)} messages, learned {counts['learned']}, already known "
              f"{counts['known']}, skipped {counts['skipped']} (over spamd_max_size), failed {counts['failed']}")
        return EX_TEMPFAIL if problems else 1 if unreadable else 0
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
    p.add_argument("--for", dest="for_address", metavar="ADDRESS",
                   help="the mailbox the messages come from (imapsieve: imap.user): its own Bayes database "
                        "with spam_learn_per_user, else spamd_user's")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="progress bar on stderr (auto: when stderr is a terminal)")
    p.set_defaults(func=_cmd_learn)
