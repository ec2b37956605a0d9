"""Maildir++ writer: atomic delivery (tmp -> fsync -> rename), flags, keywords, folders, quota.

What Dovecot expects on disk (its `maildir:` storage with the default Maildir++ layout):
  - a message is written to tmp/, fsynced, then renamed into new/ (no flags) or cur/
    with an info suffix `:2,FLAGS` (flags: system letters D F P R S T, then keyword
    letters a..z, each in ASCII order); the name is unique and carries `,S=<bytes on
    disk>,W=<size with CRLF line ends>` so readers need not stat or read the file;
  - IMAP keywords map to letters through `dovecot-keywords` ("<index> <keyword>" lines,
    index 0 = 'a'), a file only ever replaced by rename(), whose mtime must grow on each
    change (Dovecot re-reads it only then);
  - folders are directories `.Name.Sub` at the Maildir root (mailbox names in IMAP
    modified UTF-7, '.' is the hierarchy separator), each holding cur/ new/ tmp/ and an
    empty `maildirfolder` file; new folders are listed in `subscriptions`;
  - quota lives in `maildirsize` (Maildir++): a definition line `<bytes>S,<count>C` then
    "<bytes> <count>" delta lines appended atomically; read by owlery.maildirsize (the one
    reader, shared with policyd's quota check) and recalculated from the file names when
    missing, stale, too long, holding junk or when the definition changed.
Lines are stored with LF ends (Dovecot's default); readers convert to CRLF over IMAP.

Concurrent writers (other deliveries, Dovecot itself) are kept apart with Dovecot's own
dotlocks, so neither side loses the other's update: `subscriptions` is rewritten through
`subscriptions.lock` (created O_EXCL, filled, renamed over the file: the lock is the new
file), new keywords are allocated while holding `dovecot-uidlist.lock` (the lock Dovecot
holds when it allocates one; it carries "pid:host") and written through
`dovecot-keywords.lock`. A lock whose holder is gone (a dead local pid, or no change for
the stale time) is broken, as Dovecot does; waiting longer than `maildir_lock_timeout` is a
temporary failure. Between our own writers, a maildirsize recount holds flock(LOCK_EX) on the
Maildir root while it counts and replaces the file, and a delivery or expunge holds LOCK_SH
from moving its message to appending its delta line (see Maildir._quota_lock): else a delta
appended to the file a recount is about to replace, for a message it did not see, is lost.

Hostile Maildirs. Delivering as root for a mail owner (`maildir_owner`, or a uid from the
directory), everything below the Maildir root is writable by that owner, who may plant
symbolic links, hard links or FIFOs to make root read or write elsewhere. So every path
component is opened relative to a directory descriptor already checked, with O_NOFOLLOW
(O_DIRECTORY for directories), files are created with O_CREAT|O_EXCL|O_NOFOLLOW, owners
are set with fchown() on the descriptor, renames use directory descriptors, and what is
read or appended to must be a regular file with one link, owned by the mail owner or root.
A symbolic link anywhere below the root is refused (a temporary failure and a WARNING
line): Maildir++ needs none, and Dovecot (which follows them) runs as the user, we do not.
The root itself and the directories above it may be reached through a symbolic link only
when the directory holding that link is not writable by the mail owner (owned by someone
else, without group write for the owner's groups nor world write): then root or another
trusted account put it there (an administrator moving /var/vmail to another disk, as
Dovecot allows for its mail location); a link the mail owner could have planted (its own
home, a vmail-owned domain directory) is refused. The root must be owned by the mail
owner (a mail path naming /etc, or the Maildir of another uid, is refused); directories
and files below it by the mail owner or root. Delivering without an owner (as the user
itself) the path to the root is resolved by the kernel: no privilege is at stake there,
and below the root the same no-follow rules apply.

Concurrent first deliveries (lmtpd's threads, several LDA processes). A directory is made
by root and handed to the mail owner with fchown() a moment later; another delivery
opening the new Maildir root in between would see root as its owner. So a delivery with
an owner holds flock(LOCK_EX) on the parent directory from its mkdir to its fchown (flock,
not fcntl locks: these are per process and would not keep lmtpd's threads apart), and one
that finds the root owned by root takes the same lock and looks again: a root still owned
by root once the lock is free (no delivery is making it) is refused as before. Waiting
longer than `maildir_lock_timeout` (the mail owner can flock its own directories) is a
temporary failure. Below the root, directories owned by root are accepted anyway, so cur/,
new/, tmp/ and folders need no lock.

The rename into new/ or cur/ is the commit point: an error after it (the directory fsync
of `maildir_fsync = "always"`, the maildirsize update) is logged as a WARNING and the
delivery still succeeds, since a retry would store the message twice. A delta line that does
not go in whole (a full file system: ENOSPC, or a write cut at a page boundary) removes
maildirsize, so the next delivery recounts it rather than trusting a cut or missing line.

Talks to: the file system only. Used by sieve.delivery (LMTP server, LDA).
Tests: tests/delivery/test_maildir.py, tests/delivery/test_maildir_hostile.py,
tests/delivery/test_exhaustion_units_s22.py (a full tmpfs), and the Dovecot IMAP e2e test in tests/e2e/.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import itertools
import os
import pwd
import stat
import time
from _collections_abc import Callable, Iterable, Sequence   # collections loads ~9 M instructions

from owlery import maildirsize
from owlery.lazylog import get_logger
from owlery.lazyre import lazy
from owlery.record import Record, field
from owlery.settings import Bool, Duration, Str, choice, setting

TYPE_CHECKING = False     # not `from typing import ...`: the LDA's start-up pays for every import
if TYPE_CHECKING:
    from typing import Any

MAILDIR_PATH_TEMPLATE = setting(
    "maildir_path_template", Str, "/var/lib/owlery/mail/{domain}/{localpart}/Maildir",
    "Where a user's Maildir is, from the recipient address: {localpart}, {domain}, {user} "
    "(the full address) are substituted, lowercased and with '/' and leading dots refused. "
    "A directory entry giving a mail path wins.")
MAILDIR_OWNER = setting(
    "maildir_owner", Str, None,
    "When delivering as root: the user (or user:group) that owns created Maildir files and "
    "directories, so the IMAP server can read them. Unset: files belong to the delivering process. "
    "Set, symbolic links the owner could have planted are refused (see owlery.maildir).")
MAILDIR_FSYNC = setting(
    "maildir_fsync", choice("optimized", "always", "never"), "optimized",
    "optimized: fsync each message before it is renamed into new/ or cur/ (Dovecot's default); "
    "always: also fsync the directories after the rename (survives power loss on any file system); "
    "never: for tests and benchmarks only.")
MAILDIR_QUOTA_RECALC_AGE = setting(
    "maildir_quota_recalc_age", Duration, "15m", unit="s",
    doc="A maildirsize file older than this is recalculated when it says the user is over quota "
        "(Maildir++ rule; the file may have drifted).")
MAILDIR_PRIVATE = setting(
    "maildir_private", Bool, True,
    "Create Maildir files 0600 and directories 0700 (true) or 0660/0770 (false, group-shared).")
MAILDIR_LOCK_TIMEOUT = setting(
    "maildir_lock_timeout", Duration, "30s", unit="s",
    doc="Longest wait for a Maildir dotlock (subscriptions.lock, dovecot-uidlist.lock) held by "
        "another delivery or by Dovecot; past it the delivery fails temporarily.")

log = get_logger("owlery.maildir")

#: System IMAP flags and their Maildir info letters.
SYSTEM_FLAGS = {"\\draft": "D", "\\flagged": "F", "\\answered": "R", "\\seen": "S", "\\deleted": "T"}
MAX_KEYWORDS = 26          # letters a..z
MAILDIRSIZE_MAX_BYTES = 5120   # Maildir++: recalculate when the file grows past this
_ATOM_SPECIALS = set('(){ %*"\\]') | {chr(c) for c in range(0, 32)} | {chr(127)}


def gethostname() -> str:
    """This host's name (gethostname(2) is uname's nodename on Linux), read through posix: an
    in-process LDA run would import _socket for this alone (a shared library in many builds)."""
    return os.uname().nodename


class MaildirError(Exception):
    """A problem with the Maildir (bad folder name, I/O error); `temporary` says if retrying may help."""

    def __init__(self, message: str, temporary: bool = True):
        super().__init__(message)
        self.temporary = temporary


class QuotaExceeded(MaildirError):
    """Delivering this message would take the mailbox over its quota."""

    def __init__(self, message: str):
        super().__init__(message, temporary=False)


# ---------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------

def encode_mutf7(name: str) -> str:
    """IMAP modified UTF-7 (RFC 3501 5.1.3): printable ASCII as is, '&' as '&-', rest base64."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            import base64        # here: folder names are ASCII nearly always (LDA start-up)
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def decode_mutf7(text: str) -> str:
    """Inverse of encode_mutf7; raises ValueError on malformed input."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = text.find("-", i)
        if end < 0:
            raise ValueError(f"unterminated &-sequence in {text!r}")
        chunk = text[i + 1:end]
        if not chunk:
            out.append("&")
        else:
            import base64
            b64 = chunk.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            out.append(base64.b64decode(b64, validate=True).decode("utf-16-be"))
        i = end + 1
    return "".join(out)


NAME_MAX = 255    # bytes in one file name (ext4, XFS, btrfs, tmpfs)


def mailbox_levels(mailbox: str) -> list[str]:
    """The hierarchy levels of a mailbox name: '.' and '/' both separate them, and a first level
    that is INBOX in any case is spelt "INBOX" (RFC 3501 5.1: INBOX is case-insensitive, also as
    a parent; Dovecot stores "inbox.sub" as `.INBOX.sub` and lists it as INBOX.sub)."""
    parts = mailbox.replace("/", ".").split(".")
    if parts[0].upper() == "INBOX":
        parts[0] = "INBOX"
    return parts


def canonical_mailbox(mailbox: str) -> str:
    """The one IMAP name (UTF-8, '.' between levels) a mailbox is stored and listed under:
    "Work/Projects" and "work.Projects" differ, "Work/Projects" and "Work.Projects" do not,
    "inbox.sub" is "INBOX.sub"."""
    return "INBOX" if mailbox.upper() == "INBOX" else ".".join(mailbox_levels(mailbox))


def folder_dirname(mailbox: str) -> str | None:
    """The Maildir++ directory name for an IMAP mailbox name (UTF-8), None for INBOX.

    '.' and '/' both separate hierarchy levels ("Work/Projects" and "Work.Projects" are
    the same folder `.Work.Projects`; Dovecot's Maildir++ cannot hold a '/' and refuses it), and
    INBOX as the first level is uppercase (`.INBOX.sub`, as Dovecot makes it). Refused
    (MaildirError, permanent): empty levels, a name starting with '~' (Dovecot's rule; a '~'
    further in, as in "a.~b", is a plain character in the one directory name `.a.~b`),
    control characters (DEL too: RFC 6855 3), overlong names: the whole
    name is one directory (Maildir++), so its encoded form must fit the file system's 255-byte
    name limit; a longer one would fail at mkdir (ENAMETOOLONG), not by rule. Dovecot refuses
    a level over 255 characters the same way ("Mailbox name too long").
    """
    if mailbox.upper() == "INBOX":
        return None
    if not mailbox or len(mailbox.encode("utf-8")) > 512 or mailbox.startswith("~"):
        raise MaildirError(f"bad mailbox name {mailbox!r}", temporary=False)
    parts = mailbox_levels(mailbox)
    for part in parts:
        if not part or any(ord(c) < 0x20 or ord(c) == 0x7f for c in part):
            raise MaildirError(f"bad mailbox name {mailbox!r}", temporary=False)
    dirname = "." + ".".join(encode_mutf7(p) for p in parts)
    if len(dirname.encode("utf-8")) > NAME_MAX:
        raise MaildirError(f"mailbox name too long ({len(dirname)} bytes as a Maildir++ directory, "
                           f"at most {NAME_MAX})", temporary=False)
    return dirname


def _host_part() -> str:
    # '/' and ':' cannot appear in the name: Maildir writers escape them as \057 and \072.
    return gethostname().replace("/", "\\057").replace(":", "\\072")


_counter = itertools.count(1)


def unique_name(size: int, vsize: int, now: float | None = None) -> str:
    """`<sec>.M<usec>P<pid>Q<n>R<random>.<host>,S=<size>,W=<vsize>` (Dovecot's shape)."""
    t = time.time() if now is None else now
    sec = int(t)
    usec = int((t - sec) * 1_000_000)
    rand = os.urandom(4).hex()
    return f"{sec}.M{usec}P{os.getpid()}Q{next(_counter)}R{rand}.{_host_part()},S={size},W={vsize}"


def flags_suffix(flags: Iterable[str], keyword_letters: Iterable[str] = ()) -> str:
    """`:2,` followed by the sorted flag letters (system uppercase, keywords lowercase)."""
    return ":2," + "".join(sorted(set(flags) | set(keyword_letters)))


def split_flags(imap_flags: Iterable[str]) -> tuple[list[str], list[str]]:
    """IMAP flags -> (Maildir system letters, keywords); \\Recent and invalid atoms are dropped."""
    letters, keywords = [], []
    for flag in imap_flags:
        lower = flag.lower()
        if lower in SYSTEM_FLAGS:
            letters.append(SYSTEM_FLAGS[lower])
        elif flag.startswith("\\") or not flag or any(c in _ATOM_SPECIALS or ord(c) > 126 for c in flag):
            continue    # \Recent, unknown system flags, non-atoms: not storable
        elif flag not in keywords:
            keywords.append(flag)
    return letters, keywords


def parse_size_from_name(name: str) -> int | None:
    """The S=<bytes> of a Maildir file name, read as Dovecot's maildir quota reads it
    (quota-maildir.c maildir_sum_dir): the first ",S=", ASCII digits (none at all reads as 0, as
    in Dovecot and Courier), then ':', ',' or the end of the name. Anything else after the
    digits, or more than 20 of them: None, and the caller takes the file's size (Dovecot stats it)."""
    start = name.find(",S=")
    if start < 0:
        return None
    end = start = start + 3
    while end < len(name) and "0" <= name[end] <= "9":
        end += 1
    if (end < len(name) and name[end] not in ":,") or end - start > 20:
        return None
    return int(name[start:end] or 0)


_DELIVERY_TIME = lazy(r"([0-9]{1,12})\.")


def delivery_time(name: str) -> int | None:
    """The delivery time (Unix seconds) at the start of a Maildir file name, None if not Maildir-shaped.

    Upkeep (expiry, ham learning) dates messages by it, not by mtime, which IMAP clients change."""
    m = _DELIVERY_TIME.match(name)
    return int(m.group(1)) if m else None


def _ascii_digits(text: str) -> bool:
    """True for a non-empty run of ASCII 0-9 (str.isdigit also accepts '²' and other scripts)."""
    return text.isascii() and text.isdigit()


# ---------------------------------------------------------------------------
# Ownership
# ---------------------------------------------------------------------------

class Owner(Record, frozen=True):
    uid: int
    gid: int

    @classmethod
    def parse(cls, spec: str) -> "Owner":
        """`user` or `user:group` (names or numbers)."""
        user, _, group = spec.partition(":")
        try:
            pw = pwd.getpwuid(int(user)) if _ascii_digits(user) else pwd.getpwnam(user)
        except KeyError:
            raise ValueError(f"maildir_owner: no such user {user!r}") from None
        gid = pw.pw_gid
        if group:
            try:
                gid = int(group) if _ascii_digits(group) else grp.getgrnam(group).gr_gid
            except KeyError:
                raise ValueError(f"maildir_owner: no such group {group!r}") from None
        return cls(pw.pw_uid, gid)


def owner_from_settings(settings) -> Owner | None:
    """The configured owner, only when running as root (chown needs it and is pointless otherwise)."""
    if settings.maildir_owner is None or os.geteuid() != 0:
        return None
    return Owner.parse(settings.maildir_owner)


# ---------------------------------------------------------------------------
# Quota
# ---------------------------------------------------------------------------

class Quota(Record, frozen=True):
    """A quota limit; 0 means no limit for that dimension.

    `overrun`: bytes a mailbox still under its byte limit may go over with one last message
    (Maildir++ soft quota; at most a tenth of the limit). Not part of the maildirsize
    definition, so not compared.
    """

    bytes: int = 0
    messages: int = 0
    overrun: int = field(default=0, compare=False)

    @property
    def unlimited(self) -> bool:
        return self.bytes == 0 and self.messages == 0

    def definition(self) -> str:
        parts = []
        if self.bytes:
            parts.append(f"{self.bytes}S")
        if self.messages:
            parts.append(f"{self.messages}C")
        return ",".join(parts)

    @classmethod
    def from_file(cls, ms: "maildirsize.MaildirSize") -> "Quota":
        """The definition line of a maildirsize file as read by owlery.maildirsize."""
        return cls(ms.limit_bytes or 0, ms.limit_messages or 0)


class Usage(Record, frozen=True):
    bytes: int
    messages: int


# ---------------------------------------------------------------------------
# Safe file system access (descriptor-relative, no symlinks followed)
# ---------------------------------------------------------------------------

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Directories above the root are only walked through (no read permission needed).
_WALK_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted in place of a file must not hang the delivery in open().
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_SYMLINKS = 40                  # links followed on the way to the root, like the kernel's limit
SUBSCRIPTIONS_MAX_BYTES = 1 << 20  # a larger subscriptions file is left alone (folders still created)
KEYWORDS_MAX_BYTES = 64 << 10      # 26 short lines are expected; never read more
LOCK_STALE_PID_CHECK_S = 2         # a lock older than this whose local pid is gone is stale (Dovecot)
SUBSCRIPTIONS_LOCK_STALE_S = 30    # Dovecot's stale times for the locks we share with it
UIDLIST_LOCK_STALE_S = 120
KEYWORDS_LOCK_STALE_S = 120

_sleep = time.sleep                # while waiting for a lock (tests watch it)


class _Symlink(Exception):
    """Internal: the name just opened with O_NOFOLLOW is a symbolic link."""


class _Fds:
    """The descriptors and locks one Maildir operation holds, released last in, first out when
    its `with` block ends, whatever happens (every release runs; the first error it raises
    follows the block's own). What this module used of contextlib.ExitStack, without importing
    contextlib: its ABC-heavy classes are ~5% of an in-process LDA run (a process per message).
    Tests: tests/delivery/test_maildir.py, tests/delivery/test_maildir_hostile.py"""

    __slots__ = ("_undo",)

    def __init__(self) -> None:
        self._undo: list = []

    def __enter__(self) -> "_Fds":
        return self

    def callback(self, fn: Callable[..., Any], *args: Any) -> None:
        self._undo.append((fn, args, False))

    def enter_context(self, cm: Any) -> Any:
        value = cm.__enter__()
        self._undo.append((cm.__exit__, (), True))
        return value

    def __exit__(self, *exc: Any) -> bool:
        undo, self._undo = self._undo, []
        error: BaseException | None = None
        while undo:
            fn, args, is_exit = undo.pop()
            try:
                fn(*exc) if is_exit else fn(*args)
            except BaseException as e:  # noqa: BLE001 - the others still run; raised below
                if error is None:
                    error = e
        if error is not None:
            raise error
        return False


class _DirLock:
    """Maildir._dir_lock's lock: taken on entering (the descriptor opened then), released by
    closing the descriptor on leaving."""

    __slots__ = ("maildir", "dir_fd", "name", "rel", "shared", "holder", "fd")

    def __init__(self, maildir: "Maildir", dir_fd: int, name: str, rel: str, shared: bool, holder: str):
        self.maildir, self.dir_fd, self.name, self.rel = maildir, dir_fd, name, rel
        self.shared, self.holder, self.fd = shared, holder, -1

    def __enter__(self) -> None:
        fd = os.open(self.name, _DIR_FLAGS, dir_fd=self.dir_fd)
        try:
            deadline = time.monotonic() + self.maildir.lock_timeout
            delay = 0.001
            mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    delay = self.maildir._lock_backoff(deadline, delay, 0.05, self.rel, self.holder)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def __exit__(self, *exc: Any) -> bool:
        fd, self.fd = self.fd, -1
        os.close(fd)              # releases the lock
        return False


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def unlink_quietly(dir_fd: int, name: str) -> None:
    """Remove `name` in dir_fd if it is there (clean-up: any error is ignored)."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def is_link_at(dir_fd: int | None, name: str) -> bool:
    """Whether `name` in dir_fd (None: relative to the working directory) is a symbolic link."""
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_nofollow(dir_fd: int, name: str, flags: int, mode: int = 0o600) -> int | None:
    """os.open relative to dir_fd without following a final symlink: the fd, None when the
    name does not exist (and O_CREAT is not asked for); _Symlink when it is a symbolic link."""
    try:
        return os.open(name, flags, mode, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as e:
        # O_NOFOLLOW on a link: ELOOP; with O_DIRECTORY too: ENOTDIR (as for a plain file).
        if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK) and is_link_at(dir_fd, name):
            raise _Symlink(name) from None
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def replace_file_at(dir_fd: int, name: str, data: bytes, *, tmp: str, mode: int,
                    owner: Owner | None, fsync: bool) -> None:
    """Write `data` to a new file `tmp` in dir_fd (O_EXCL, no links followed), give it to
    `owner`, fsync it (with `fsync`) and rename it over `name`; on any failure `tmp` is removed.
    The caller fsyncs dir_fd when the rename must survive a crash."""
    fd = os.open(tmp, _CREATE_FLAGS, mode, dir_fd=dir_fd)
    try:
        try:
            _write_all(fd, data)
            if owner is not None:
                os.fchown(fd, owner.uid, owner.gid)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        unlink_quietly(dir_fd, tmp)
        raise


def read_all(fd: int, limit: int) -> bytes:
    """Up to `limit` bytes from `fd` (fewer at end of file); callers pass limit+1 to tell an
    over-long file from one of exactly `limit` bytes."""
    chunks, left = [], limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True       # EPERM: it exists, owned by someone else
    return True


class _DotLock:
    """A held `<name>.lock` in a directory: Dovecot's dotlock, also the new file's content."""

    def __init__(self, dir_fd: int, name: str, fd: int, st: os.stat_result):
        self.dir_fd = dir_fd
        self.name = name
        self.lock = name + ".lock"
        self.fd = fd
        self.ident = (st.st_dev, st.st_ino)
        self.done = False

    def _still_ours(self) -> bool:
        try:
            st = os.stat(self.lock, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == self.ident

    def replace(self) -> None:
        """Rename the lock over the file (what was written into it becomes the file)."""
        if not self._still_ours():
            raise MaildirError(f"{self.lock} was broken by another process while held; not replaced")
        os.rename(self.lock, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        self.done = True

    def release(self) -> None:
        _close_quietly(self.fd)
        if not self.done and self._still_ours():
            unlink_quietly(self.dir_fd, self.lock)
        self.done = True


# ---------------------------------------------------------------------------
# The Maildir
# ---------------------------------------------------------------------------

class StoredMessage(Record, frozen=True):
    """Where a message went: absolute path of the file and the folder name."""

    path: str
    folder: str
    size: int


class Expunged(Record):
    """What Maildir.expunge removed (or would remove, dry run): counts per folder, and problems
    it met and skipped (a link where a directory should be, a maildirsize it could not update)."""

    messages: int = 0
    message_bytes: int = 0
    tmp_files: int = 0
    per_folder: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, folder: str, sub: str, size: int) -> None:
        if sub == "tmp":
            self.tmp_files += 1
            return
        self.messages += 1
        self.message_bytes += size
        self.per_folder[folder] = self.per_folder.get(folder, 0) + 1


class Maildir:
    """One user's Maildir++ (root path), created on first use."""

    def __init__(self, root: str, *, owner: Owner | None = None, fsync: str = "optimized",
                 private: bool = True, quota_recalc_age: float = 900.0, lock_timeout: float = 30.0):
        self.root = os.path.abspath(root)
        self.owner = owner
        self.fsync = fsync
        self.dir_mode = 0o700 if private else 0o770
        self.file_mode = 0o600 if private else 0o660
        self.quota_recalc_age = quota_recalc_age
        self.lock_timeout = lock_timeout
        self._groups: frozenset[int] | None = None

    @classmethod
    def from_settings(cls, root: str, settings, owner: Owner | None = None) -> "Maildir":
        return cls(root, owner=owner if owner is not None else owner_from_settings(settings),
                   fsync=settings.maildir_fsync, private=settings.maildir_private,
                   quota_recalc_age=settings.maildir_quota_recalc_age,
                   lock_timeout=settings.maildir_lock_timeout)

    # -- checks --------------------------------------------------------------

    def _unsafe(self, rel: str, why: str) -> MaildirError:
        """Log the refusal (a possible attack by the mail owner) and make the temporary error."""
        what = rel or "the Maildir root"
        log.warning("maildir: %s: refused: %s %s; temporary failure", self.root, what, why)
        return MaildirError(f"{self.root}: unsafe Maildir: {what} {why}", temporary=True)

    def _owner_groups(self) -> frozenset[int]:
        if self._groups is None:
            assert self.owner is not None
            groups = {self.owner.gid}
            try:
                groups.update(os.getgrouplist(pwd.getpwuid(self.owner.uid).pw_name, self.owner.gid))
            except (KeyError, OSError):
                pass
            self._groups = frozenset(groups)
        return self._groups

    def _owner_may_write(self, st: os.stat_result) -> bool:
        """Whether the mail owner can change entries of the directory `st` describes."""
        assert self.owner is not None
        if st.st_uid == self.owner.uid or st.st_mode & stat.S_IWOTH:
            return True
        return bool(st.st_mode & stat.S_IWGRP) and st.st_gid in self._owner_groups()

    def _check_dir(self, fd: int, rel: str) -> None:
        """Below the root a directory belongs to the mail owner (or root, which only we are)."""
        if self.owner is None:
            return
        uid = os.fstat(fd).st_uid
        if uid not in (self.owner.uid, 0, os.geteuid()):
            raise self._unsafe(rel, f"is owned by uid {uid}, not by the mail owner {self.owner.uid}")

    def _check_file(self, fd: int, rel: str, *, replaced_ok: bool = False) -> os.stat_result:
        """What we read or append to: a regular file; with an owner, one link and a trusted owner
        (a hard link to a root-only file would otherwise be read or written through).
        `replaced_ok`: no link at all is fine too (renamed over since we opened it; a reader)."""
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise self._unsafe(rel, "is not a regular file")
        if self.owner is not None:
            if st.st_nlink != 1 and not (replaced_ok and st.st_nlink == 0):
                raise self._unsafe(rel, f"has {st.st_nlink} hard links")
            if st.st_uid not in (self.owner.uid, 0, os.geteuid()):
                raise self._unsafe(rel, f"is owned by uid {st.st_uid}, not by the mail owner {self.owner.uid}")
        return st

    # -- directories ---------------------------------------------------------

    def _mkdir_at(self, parent: int, name: str) -> bool:
        try:
            os.mkdir(name, self.dir_mode, dir_fd=parent)
        except FileExistsError:
            return False
        return True

    def _dir_lock(self, dir_fd: int, name: str, rel: str, *, shared: bool = False,
                  holder: str = "another delivery creating the Maildir?") -> "_DirLock":
        """Hold flock(LOCK_EX, or LOCK_SH with `shared`) on the directory `name` ("." or "..") of
        dir_fd, waiting up to lock_timeout: deliveries making a directory in it hold it from mkdir
        to fchown; on the Maildir root, see _quota_lock."""
        return _DirLock(self, dir_fd, name, rel, shared, holder)

    def _quota_lock(self, root: int, *, recount: bool):
        """flock on the Maildir root keeping maildirsize recounts apart from the changes they
        count: a delivery (or expunge) holds it shared from the rename (unlink) of the message
        to its delta line, a recount exclusively from listing the folders to the rename of the
        new file. Without it a delta appended to the old file while a recount missed its message
        is lost with the old file (threads of lmtpd, several LDAs, `owlery quota` beside them)."""
        return self._dir_lock(root, ".", "the Maildir root (maildirsize)", shared=not recount,
                              holder="a maildirsize recount" if not recount else "deliveries")

    def _lock_backoff(self, deadline: float, delay: float, cap: float, rel: str, holder: str) -> float:
        """Wait `delay` before the next try at a lock; return the next delay (doubled, at most
        `cap`). MaildirError once `deadline` has passed (`holder`: who may be holding it)."""
        if time.monotonic() >= deadline:
            raise MaildirError(f"{self.root}: {rel}: still locked after {self.lock_timeout:g}s ({holder})") from None
        _sleep(delay)
        return min(delay * 2, cap)

    def _make_owned_dir(self, parent: int, name: str) -> int | None:
        """mkdir `name` in parent and give it to the mail owner, holding the parent's lock from
        the mkdir to the fchown (see _open_root); its fd, None when someone else made it first
        or it is gone again (open it as an existing one); _Symlink when a link took its place."""
        assert self.owner is not None
        with self._dir_lock(parent, ".", f"the directory holding {name!r}"):
            if not self._mkdir_at(parent, name):
                return None
            fd = _open_nofollow(parent, name, _DIR_FLAGS)
            if fd is None:
                return None
            try:
                if os.fstat(fd).st_uid == os.geteuid():     # ours (not one swapped in since)
                    os.fchown(fd, self.owner.uid, self.owner.gid)
            except BaseException:
                _close_quietly(fd)
                raise
            return fd

    def _subdir(self, fds: _Fds, parent: int, name: str, rel: str, *,
                create: bool) -> int | None:
        """A directory below the root, opened without following links; None when missing."""
        made = False
        for _ in range(3):
            try:
                fd = _open_nofollow(parent, name, _DIR_FLAGS)
            except _Symlink:
                raise self._unsafe(rel, "is a symbolic link") from None
            if fd is not None:
                break
            if not create:
                return None
            made = self._mkdir_at(parent, name)
        else:
            raise OSError(errno.ENOENT, "keeps disappearing", rel)
        fds.callback(_close_quietly, fd)
        if made and self.owner is not None and os.fstat(fd).st_uid == os.geteuid():
            os.fchown(fd, self.owner.uid, self.owner.gid)      # ours (not one swapped in since)
        else:
            self._check_dir(fd, rel)
        return fd

    def _walk_to_root(self, create: bool) -> int | None:
        """The root's fd, resolving the path one component at a time from '/'. A symbolic link is
        followed only when the directory holding it is not writable by the mail owner."""
        assert self.owner is not None
        parts = [p for p in reversed(self.root.split("/")) if p]     # a stack: next name last
        if not parts:
            return os.open("/", _DIR_FLAGS)
        stack = [os.open("/", _WALK_FLAGS)]
        links = races = 0
        try:
            while parts:
                name = parts.pop()
                if name in ("", "."):
                    continue
                if name == "..":
                    if len(stack) > 1:
                        os.close(stack.pop())
                    continue
                parent = stack[-1]
                try:
                    fd = _open_nofollow(parent, name, _DIR_FLAGS if not parts else _WALK_FLAGS)
                    if fd is None:
                        if not create:
                            return None
                        races += 1
                        if races > 10:
                            raise OSError(errno.ENOENT, "keeps disappearing", name)
                        fd = self._make_owned_dir(parent, name)
                        if fd is None:
                            parts.append(name)       # someone else made it: open it again
                            continue
                        stack.append(fd)
                        continue
                except _Symlink:
                    if self._owner_may_write(os.fstat(parent)):
                        raise self._unsafe(
                            "", f"path goes through the symbolic link {name!r} in a directory the mail "
                                f"owner (uid {self.owner.uid}) can write") from None
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), self.root) from None
                    target = os.readlink(name, dir_fd=parent)
                    if target.startswith("/"):
                        while len(stack) > 1:
                            os.close(stack.pop())
                    parts.extend(reversed(target.split("/")))
                    continue
                stack.append(fd)
            return stack.pop()
        finally:
            for fd in stack:
                _close_quietly(fd)

    def _open_root(self, fds: _Fds, *, create: bool) -> int | None:
        """The Maildir root's fd (created with its parents when asked), None when it is missing."""
        if self.owner is None:
            try:
                fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except FileNotFoundError:
                if not create:
                    return None
                self._makedirs(self.root)
                fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            fds.callback(_close_quietly, fd)
            return fd
        fd = self._walk_to_root(create)
        if fd is None:
            return None
        fds.callback(_close_quietly, fd)
        uid = os.fstat(fd).st_uid
        if uid != self.owner.uid and uid == os.geteuid():
            # Perhaps a concurrent first delivery made it and has not yet handed it to the mail
            # owner: it holds the parent's lock until it has. Wait for that and look again.
            with self._dir_lock(fd, "..", "the directory holding the Maildir root"):
                uid = os.fstat(fd).st_uid
        if uid != self.owner.uid:
            raise self._unsafe("", f"is owned by uid {uid}, not by the mail owner {self.owner.uid}")
        return fd

    def _makedirs(self, path: str) -> None:
        """mkdir -p by path (only without an owner: nobody else's links are at stake)."""
        if os.path.isdir(path):
            return
        parent = os.path.dirname(path)
        if parent and parent != path:
            self._makedirs(parent)
        try:
            os.mkdir(path, self.dir_mode)
        except FileExistsError:
            pass

    def folder_path(self, mailbox: str) -> str:
        name = folder_dirname(mailbox)
        return self.root if name is None else os.path.join(self.root, name)

    def _ensure_at(self, fds: _Fds, root: int, mailbox: str,
                   create: bool) -> tuple[int, str, dict[str, int]]:
        """(folder fd, folder dir name or "", {cur,new,tmp: fd}), creating what is missing.

        A missing folder is created only when `create`; a folder is made in the order
        cur, new, maildirfolder, subscription, tmp, so one whose subscription failed lacks
        tmp/ and is completed (and subscribed) by the next delivery.
        """
        dirname = folder_dirname(mailbox)
        subs = {s: self._subdir(fds, root, s, s, create=True) for s in ("cur", "new", "tmp")}
        if dirname is None:
            return root, "", subs
        folder = self._subdir(fds, root, dirname, dirname, create=False)
        if folder is None:
            if not create:
                raise MaildirError(f"mailbox {mailbox!r} does not exist", temporary=False)
            folder = self._subdir(fds, root, dirname, dirname, create=True)
        subs = {s: self._subdir(fds, folder, s, f"{dirname}/{s}", create=False) for s in ("cur", "new", "tmp")}
        if subs["tmp"] is not None and subs["new"] is not None and subs["cur"] is not None:
            return folder, dirname, subs
        for s in ("cur", "new"):
            subs[s] = self._subdir(fds, folder, s, f"{dirname}/{s}", create=True)
        self._create_marker(folder, f"{dirname}/maildirfolder")
        self._subscribe_at(root, mailbox)
        subs["tmp"] = self._subdir(fds, folder, "tmp", f"{dirname}/tmp", create=True)
        return folder, dirname, subs

    def _create_marker(self, folder: int, rel: str) -> None:
        try:
            fd = _open_nofollow(folder, "maildirfolder", _CREATE_FLAGS, self.file_mode)
        except FileExistsError:
            if is_link_at(folder, "maildirfolder"):
                raise self._unsafe(rel, "is a symbolic link") from None
            return
        except _Symlink:
            raise self._unsafe(rel, "is a symbolic link") from None
        assert fd is not None
        try:
            if self.owner is not None:
                os.fchown(fd, self.owner.uid, self.owner.gid)
        finally:
            os.close(fd)

    def ensure(self, mailbox: str = "INBOX", *, create: bool = True) -> str:
        """The folder's directory, creating root and folder (cur/new/tmp) when allowed."""
        try:
            with _Fds() as fds:
                root = self._open_root(fds, create=True)
                assert root is not None
                self._ensure_at(fds, root, mailbox, create)
        except OSError as e:
            raise MaildirError(f"{self.root}: {mailbox}: {e.strerror or e}") from e
        return self.folder_path(mailbox)

    def folder_exists(self, mailbox: str) -> bool:
        """Whether the folder exists (has cur/); MaildirError for an unsafe or unreadable one."""
        try:
            with _Fds() as fds:
                root = self._open_root(fds, create=False)
                if root is None:
                    return False
                dirname = folder_dirname(mailbox)
                folder = root if dirname is None else self._subdir(fds, root, dirname, dirname, create=False)
                if folder is None:
                    return False
                return self._subdir(fds, folder, "cur", f"{dirname or ''}/cur".lstrip("/"), create=False) is not None
        except OSError as e:
            raise MaildirError(f"{self.root}: {mailbox}: {e.strerror or e}") from e

    def _folder_dirs(self, fds: _Fds, root: int,
                     problems: list[str] | None = None) -> list[tuple[str, int]]:
        """(name, fd) of the real directories `.Name` at the root; links are skipped, not followed.
        A folder that cannot be opened (EACCES...) goes to `problems` when given, else raises."""
        out = []
        for entry in sorted(os.listdir(root)):
            if not entry.startswith(".") or entry in (".", ".."):
                continue
            try:
                fd = _open_nofollow(root, entry, _DIR_FLAGS)
            except _Symlink:
                log.warning("maildir: %s: %s is a symbolic link, not followed", self.root, entry)
                continue
            except NotADirectoryError:
                continue
            except OSError as e:
                if problems is None:
                    raise
                problems.append(f"{entry}: {e.strerror or e}")
                continue
            if fd is None:
                continue
            fds.callback(_close_quietly, fd)
            out.append((entry, fd))
        return out

    def list_folders(self) -> list[str]:
        """IMAP names (UTF-8) of the folders under this Maildir, INBOX first."""
        with _Fds() as fds:
            root = self._open_root(fds, create=False)
            if root is None:
                return []
            names = ["INBOX"]
            for entry, fd in self._folder_dirs(fds, root):
                try:
                    is_dir = stat.S_ISDIR(os.stat("cur", dir_fd=fd, follow_symlinks=False).st_mode)
                except FileNotFoundError:
                    is_dir = False
                if is_dir:
                    names.append(".".join(decode_mutf7(p) for p in entry[1:].split(".")))
            return names

    # -- small files -----------------------------------------------------------

    def _read_file(self, dir_fd: int, name: str, rel: str, limit: int) -> tuple[bytes, os.stat_result] | None:
        """Up to `limit` bytes of a small control file and its stat; None when it does not exist.
        A file renamed over (a maildirsize recount, a new subscriptions) since we opened it has no
        link left: that is the other writer's doing, not an attack, and what we read is the
        version just replaced (as if read a moment earlier)."""
        try:
            fd = _open_nofollow(dir_fd, name, _READ_FLAGS)
        except _Symlink:
            raise self._unsafe(rel, "is a symbolic link") from None
        if fd is None:
            return None
        try:
            st = self._check_file(fd, rel, replaced_ok=True)
            return read_all(fd, limit), st
        finally:
            os.close(fd)

    def _replace_file(self, dir_fd: int, name: str, data: bytes) -> None:
        """Write a new file aside (O_EXCL, no links followed) and rename it over `name`."""
        replace_file_at(dir_fd, name, data, tmp=f"{name}.{os.getpid()}.{os.urandom(3).hex()}.tmp",
                        mode=self.file_mode, owner=self.owner, fsync=self.fsync != "never")

    def _dotlock(self, dir_fd: int, name: str, rel: str, *, stale_after: float, pid: bool = False) -> _DotLock:
        """Take `<name>.lock` in dir_fd (O_EXCL), waiting up to lock_timeout and breaking a stale one.

        With `pid` the lock holds "pid:host" (what Dovecot writes in dovecot-uidlist.lock and
        reads to find a dead holder); otherwise the caller writes the new file into it.
        """
        lock = name + ".lock"
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.002
        while True:
            try:
                fd = os.open(lock, _CREATE_FLAGS, self.file_mode, dir_fd=dir_fd)
            except FileExistsError:
                if not self._break_stale_lock(dir_fd, name, rel, stale_after):
                    delay = self._lock_backoff(deadline, delay, 0.1, rel + ".lock", "another delivery or Dovecot")
                continue
            try:
                if self.owner is not None:
                    os.fchown(fd, self.owner.uid, self.owner.gid)
                if pid:
                    _write_all(fd, f"{os.getpid()}:{gethostname()}".encode("utf-8", "replace"))
                return _DotLock(dir_fd, name, fd, os.fstat(fd))
            except BaseException:
                _close_quietly(fd)
                unlink_quietly(dir_fd, lock)
                raise

    def _break_stale_lock(self, dir_fd: int, name: str, rel: str, stale_after: float) -> bool:
        """True when the lock is gone or was broken (try again now), False to keep waiting.

        Dovecot's rules: a lock older than 2 s holding "pid:<our host>" of a process that no
        longer exists is stale; so is one that, like the file it guards, has not changed for
        `stale_after` seconds.
        """
        lock = name + ".lock"
        try:
            st = os.stat(lock, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return True
        now = time.time()
        changed = max(st.st_mtime, st.st_ctime)
        stale = False
        if now - changed > LOCK_STALE_PID_CHECK_S and stat.S_ISREG(st.st_mode):
            holder = self._lock_pid(dir_fd, lock)
            stale = holder is not None and holder != os.getpid() and not _pid_alive(holder)
        if not stale and now - changed > stale_after:
            try:
                guarded = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                stale = now - max(guarded.st_mtime, guarded.st_ctime) > stale_after
            except FileNotFoundError:
                stale = True
        if not stale:
            return False
        try:
            again = os.stat(lock, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return True
        if (again.st_dev, again.st_ino) == (st.st_dev, st.st_ino):
            unlink_quietly(dir_fd, lock)
            log.warning("maildir: %s: broke the stale lock %s.lock", self.root, rel)
        return True

    @staticmethod
    def _lock_pid(dir_fd: int, lock: str) -> int | None:
        """The pid in a dotlock holding "pid:host" for this host, else None."""
        try:
            fd = _open_nofollow(dir_fd, lock, _READ_FLAGS)
        except (_Symlink, OSError):
            return None
        if fd is None:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            text = os.read(fd, 512).decode("utf-8", "replace").strip()
        except OSError:
            return None
        finally:
            os.close(fd)
        pid, _, host = text.partition(":")
        if host != gethostname() or not _ascii_digits(pid) or len(pid) > 10:
            return None
        return int(pid) or None

    # -- subscriptions -----------------------------------------------------

    def subscriptions(self) -> list[str]:
        try:
            with _Fds() as fds:
                root = self._open_root(fds, create=False)
                got = None if root is None else self._read_file(root, "subscriptions", "subscriptions",
                                                                SUBSCRIPTIONS_MAX_BYTES)
        except OSError as e:
            raise MaildirError(f"{self.root}: subscriptions: {e.strerror or e}") from e
        if got is None:
            return []
        lines = got[0].decode("utf-8", "replace").splitlines()
        if lines and lines[0].startswith("V\t"):
            # Dovecot's version 2 format: header, blank line, UTF-8 names with TAB separators.
            return [line.replace("\t", ".") for line in lines[2:] if line]
        out = []
        for line in lines:
            if line:
                try:
                    out.append(decode_mutf7(line))
                except ValueError:
                    out.append(line)
        return out

    def subscribe(self, mailbox: str) -> None:
        """Add a folder to `subscriptions` (under Dovecot's lock; replaced by rename)."""
        try:
            with _Fds() as fds:
                root = self._open_root(fds, create=True)
                assert root is not None
                self._subscribe_at(root, mailbox)
        except OSError as e:
            raise MaildirError(f"{self.root}: subscriptions: {e.strerror or e}") from e

    def _subscriptions_text(self, root: int) -> str | None:
        """The current subscriptions text ("" when absent), None when too large to rewrite."""
        got = self._read_file(root, "subscriptions", "subscriptions", SUBSCRIPTIONS_MAX_BYTES + 1)
        if got is None:
            return ""
        if len(got[0]) > SUBSCRIPTIONS_MAX_BYTES:
            log.warning("maildir: %s: subscriptions is over %d bytes; new folders are not subscribed",
                        self.root, SUBSCRIPTIONS_MAX_BYTES)
            return None
        return got[0].decode("utf-8", "surrogateescape")

    @staticmethod
    def _with_subscription(text: str, mailbox: str) -> str | None:
        """`text` with the folder added, None when it is already there."""
        lines = text.splitlines()
        v2 = bool(lines) and lines[0].startswith("V\t")
        normalised = canonical_mailbox(mailbox)
        entry = normalised.replace(".", "\t") if v2 else ".".join(
            encode_mutf7(p) for p in normalised.split("."))
        if entry in lines[2 if v2 else 0:]:
            return None
        if text and not text.endswith("\n"):
            text += "\n"
        return text + entry + "\n"

    def _subscribe_at(self, root: int, mailbox: str) -> None:
        text = self._subscriptions_text(root)
        if text is None or self._with_subscription(text, mailbox) is None:
            return
        lock = self._dotlock(root, "subscriptions", "subscriptions", stale_after=SUBSCRIPTIONS_LOCK_STALE_S)
        try:
            text = self._subscriptions_text(root)      # again, now that nobody else can change it
            new = None if text is None else self._with_subscription(text, mailbox)
            if new is None:
                return
            _write_all(lock.fd, new.encode("utf-8", "surrogateescape"))
            if self.fsync != "never":
                os.fsync(lock.fd)
            lock.replace()
        finally:
            lock.release()

    # -- keywords ----------------------------------------------------------

    def _keyword_table(self, folder: int, rel: str) -> tuple[dict[int, str], float | None]:
        """{index: keyword} of the folder's dovecot-keywords (indexes 0..25) and its mtime."""
        got = self._read_file(folder, "dovecot-keywords", rel, KEYWORDS_MAX_BYTES)
        if got is None:
            return {}, None
        table: dict[int, str] = {}
        for line in got[0].decode("utf-8", "replace").splitlines():
            index, _, name = line.partition(" ")
            if _ascii_digits(index) and len(index) <= 2 and int(index) < MAX_KEYWORDS and name:
                table[int(index)] = name
        return table, got[1].st_mtime

    def _keyword_letters(self, folder: int, dirname: str, keywords: Sequence[str]) -> list[str]:
        """Letters for keywords, adding new ones to the folder's dovecot-keywords.

        Keywords beyond the 26 letters are dropped (as Dovecot does for Maildir). New ones
        are allocated holding dovecot-uidlist.lock, as Dovecot does, so two writers never
        give one letter two meanings.
        """
        if not keywords:
            return []
        rel = f"{dirname}/dovecot-keywords" if dirname else "dovecot-keywords"
        table, _ = self._keyword_table(folder, rel)
        if any(kw not in table.values() for kw in keywords) and len(table) < MAX_KEYWORDS:
            uidlist = f"{dirname}/dovecot-uidlist" if dirname else "dovecot-uidlist"
            lock = self._dotlock(folder, "dovecot-uidlist", uidlist, stale_after=UIDLIST_LOCK_STALE_S, pid=True)
            try:
                table, mtime = self._keyword_table(folder, rel)
                added = False
                for kw in keywords:
                    if kw in table.values():
                        continue
                    free = next((i for i in range(MAX_KEYWORDS) if i not in table), None)
                    if free is None:
                        break
                    table[free] = kw
                    added = True
                if added:
                    self._write_keywords(folder, rel, table, mtime)
            finally:
                lock.release()
        by_name = {name: index for index, name in table.items()}
        return [chr(ord("a") + by_name[kw]) for kw in keywords if kw in by_name]

    def _write_keywords(self, folder: int, rel: str, table: dict[int, str], old_mtime: float | None) -> None:
        # We hold dovecot-uidlist.lock, so a dovecot-keywords.lock left behind is stale (Dovecot
        # removes it the same way).
        unlink_quietly(folder, "dovecot-keywords.lock")
        out = self._dotlock(folder, "dovecot-keywords", rel, stale_after=KEYWORDS_LOCK_STALE_S)
        try:
            _write_all(out.fd, "".join(f"{i} {table[i]}\n" for i in sorted(table)).encode("utf-8"))
            st = os.fstat(out.fd)
            if old_mtime is not None and int(st.st_mtime) <= int(old_mtime):
                # Dovecot re-reads the file only when its mtime (seconds) changed.
                os.utime(out.fd, (st.st_atime, int(old_mtime) + 1))
            if self.fsync != "never":
                os.fsync(out.fd)
            out.replace()
        finally:
            out.release()

    # -- quota -------------------------------------------------------------

    def usage(self, quota: Quota, now: float | None = None) -> Usage:
        """Current usage from maildirsize, recalculating it when missing, stale or changed."""
        with _Fds() as fds:
            root = self._open_root(fds, create=False)
            return Usage(0, 0) if root is None else self._usage_at(root, quota, now)

    def _usage_at(self, root: int, quota: Quota, now: float | None, size: int = 0, count: int = 0) -> Usage:
        """Usage from maildirsize, recounted when Maildir++ says not to trust it: missing, 5120
        bytes or more, junk or a negative total, another definition, or (README.maildirquota,
        Courier's docheckquota) when `count` messages of `size` bytes do not fit and the file
        has more than one delta line or is older than quota_recalc_age. usage() passes 0, 0:
        recount only when the file alone is over quota, as Dovecot and Courier report usage."""
        t = time.time() if now is None else now
        got = self._read_file(root, "maildirsize", "maildirsize", MAILDIRSIZE_MAX_BYTES)
        if got is None:
            return self._recalculate_at(root, quota)
        data, st = got
        # The one tolerant reader (shared with policyd's quota check); what it had to skip,
        # a negative total, a changed definition or a long file mean: recount.
        ms = maildirsize.parse(data.decode("ascii", "replace"))
        if (len(data) >= MAILDIRSIZE_MAX_BYTES or not data.strip() or ms.suspect
                or Quota.from_file(ms) != quota):
            return self._recalculate_at(root, quota)
        used = Usage(ms.used_bytes, ms.used_messages)
        if self._over(quota, used, size, count) and (
                ms.delta_lines > 1 or t - st.st_mtime > self.quota_recalc_age):
            return self._recalculate_at(root, quota)
        return used

    def stored_quota(self) -> Quota | None:
        """The limits on maildirsize's definition line (whoever wrote it: us, Dovecot, Courier),
        None when there is no such file or it gives no limit."""
        with _Fds() as fds:
            root = self._open_root(fds, create=False)
            got = None if root is None else self._read_file(root, "maildirsize", "maildirsize", MAILDIRSIZE_MAX_BYTES)
        if got is None:
            return None
        q = Quota.from_file(maildirsize.parse(got[0].decode("ascii", "replace")))
        return None if q.unlimited else q

    def recalculate(self, quota: Quota) -> Usage:
        """Count every message (S= from names, else lstat) and rewrite maildirsize atomically."""
        with _Fds() as fds:
            root = self._open_root(fds, create=False)
            return Usage(0, 0) if root is None else self._recalculate_at(root, quota)

    def count(self) -> Usage:
        """Count every message (S= from names, else lstat) without writing anything: what a
        reader that may not rewrite maildirsize (policyd's quota check) uses when Maildir++ says
        the file is not to be trusted."""
        with _Fds() as fds:
            root = self._open_root(fds, create=False)
            return Usage(0, 0) if root is None else self._count_at(root)

    def _recalculate_at(self, root: int, quota: Quota) -> Usage:
        with self._quota_lock(root, recount=True):
            used = self._count_at(root)
            body = f"{quota.definition()}\n{used.bytes:>12} {used.messages:>12}\n"
            self._replace_file(root, "maildirsize", body.encode("ascii"))
        return used

    def _count_at(self, root: int) -> Usage:
        total_b = total_m = 0
        with _Fds() as fds:
            for dirname, folder in [("", root)] + self._folder_dirs(fds, root):
                for sub in ("new", "cur"):
                    rel = f"{dirname}/{sub}" if dirname else sub
                    try:
                        d = self._subdir(fds, folder, sub, rel, create=False)
                    except MaildirError:
                        continue        # logged; a link is not followed, its messages not counted
                    if d is None:
                        continue
                    for name in os.listdir(d):
                        size = parse_size_from_name(name)
                        if size is None:
                            try:
                                st = os.stat(name, dir_fd=d, follow_symlinks=False)
                            except FileNotFoundError:
                                continue    # expunged while we counted
                            if not stat.S_ISREG(st.st_mode):
                                continue
                            size = st.st_size
                        total_b += size
                        total_m += 1
        return Usage(total_b, total_m)

    @staticmethod
    def _over(quota: Quota, used: Usage, size: int, count: int = 1) -> bool:
        grace = min(quota.overrun, quota.bytes // 10) if used.bytes < quota.bytes else 0
        if quota.bytes and used.bytes + size > quota.bytes + grace:
            return True
        if quota.messages and used.messages + count > quota.messages:
            return True
        return False

    def check_quota(self, quota: Quota | None, size: int, now: float | None = None) -> None:
        """Raise QuotaExceeded when a message of `size` bytes does not fit."""
        if quota is None or quota.unlimited:
            return
        try:
            with _Fds() as fds:
                root = self._open_root(fds, create=False)
                self._check_quota_at(root, quota, size, now)
        except OSError as e:
            raise MaildirError(f"{self.root}: quota: {e.strerror or e}") from e

    def _check_quota_at(self, root: int | None, quota: Quota, size: int, now: float | None) -> None:
        used = Usage(0, 0) if root is None else self._usage_at(root, quota, now, size, 1)
        if self._over(quota, used, size):
            raise QuotaExceeded(
                f"mailbox full: {used.bytes}+{size} of {quota.bytes or '-'} bytes, "
                f"{used.messages}+1 of {quota.messages or '-'} messages")

    def _add_usage(self, root: int, size: int, count: int) -> None:
        try:
            fd = _open_nofollow(root, "maildirsize", _APPEND_FLAGS)
        except _Symlink:
            raise self._unsafe("maildirsize", "is a symbolic link") from None
        if fd is None:
            return       # no quota file: nothing tracks usage for this user
        line = f"{size} {count}\n".encode("ascii")
        try:
            self._check_file(fd, "maildirsize")
            # One write() with O_APPEND is atomic with respect to other appenders.
            try:
                if os.write(fd, line) == len(line):
                    return
                failed = OSError(errno.ENOSPC, "delta line cut short (file system full?)")
            except OSError as e:
                failed = e
            # On a full file system the line is cut at a page boundary (a cut line merges with the
            # next appender's into a plausible wrong one) or missing (the file, still trusted,
            # undercounts). Remove the file, which needs no space: the next delivery recounts it
            # from the messages, Maildir++'s rule for a missing maildirsize.
            unlink_quietly(root, "maildirsize")
            raise failed
        finally:
            os.close(fd)

    # -- upkeep ------------------------------------------------------------

    def expunge(self, select: Callable[[str, str], bool], *, tmp_older_than: float | None = None,
                now: float | None = None, dry_run: bool = False) -> Expunged:
        """Remove the messages `select(folder, filename)` picks (folder: IMAP name, "INBOX" for the
        root) from new/ and cur/, and the files in tmp/ last changed more than `tmp_older_than`
        seconds ago; then take what was removed off maildirsize (negative delta line).

        Safe beside Dovecot: a file renamed meanwhile (flags changed, new/ -> cur/) is missing
        when we unlink it and is simply left for the next run; Dovecot notices removed files at
        its next sync and keeps the UIDs of the rest. Links are never followed (see the class).
        """
        t = time.time() if now is None else now
        done = Expunged()
        with _Fds() as fds:
            root = self._open_root(fds, create=False)
            if root is None:
                return done
            if not dry_run:
                fds.enter_context(self._quota_lock(root, recount=False))
            folders = [("INBOX", "", root)] + [
                (".".join(decode_mutf7(p) for p in entry[1:].split(".")), entry, fd)
                for entry, fd in self._folder_dirs(fds, root, done.problems)]
            for name, dirname, folder in folders:
                for sub in ("new", "cur", "tmp"):
                    rel = f"{dirname}/{sub}" if dirname else sub
                    try:
                        d = self._subdir(fds, folder, sub, rel, create=False)
                        if d is None:
                            continue
                        entries = sorted(os.listdir(d))
                    except FileNotFoundError:
                        continue            # the folder was removed or renamed meanwhile
                    except (MaildirError, OSError) as e:
                        # One unreadable folder (EACCES...) is reported; the others are still expired.
                        done.problems.append(f"{rel}: {e.strerror if isinstance(e, OSError) and e.strerror else e}")
                        continue
                    for entry in entries:
                        try:
                            st = os.stat(entry, dir_fd=d, follow_symlinks=False)
                        except FileNotFoundError:
                            continue        # renamed or expunged meanwhile
                        if not stat.S_ISREG(st.st_mode):
                            continue
                        if sub == "tmp":
                            if tmp_older_than is None or t - st.st_mtime <= tmp_older_than:
                                continue
                        elif not select(name, entry):
                            continue
                        if not dry_run:
                            try:
                                os.unlink(entry, dir_fd=d)
                            except FileNotFoundError:
                                continue    # Dovecot renamed it (flags): the next run sees it again
                        named = None if sub == "tmp" else parse_size_from_name(entry)
                        size = st.st_size if named is None else named
                        done.add(name, sub, size)
            if done.messages and not dry_run:
                try:
                    self._add_usage(root, -done.message_bytes, -done.messages)
                except (OSError, MaildirError) as e:
                    done.problems.append(f"maildirsize: {e}")   # recalculated at the next delivery
        return done

    # -- delivery ----------------------------------------------------------

    def deliver(self, message: bytes, mailbox: str = "INBOX", *, flags: Iterable[str] = (),
                create: bool = True, quota: Quota | None = None, now: float | None = None,
                mtime: float | None = None, enforce_quota: bool = True) -> StoredMessage:
        """Write `message` (LF line ends) into a folder atomically; return where it went.

        enforce_quota=False: counted in maildirsize under `quota` but never refused for it (a
        quota warning must reach a full mailbox: sieve/delivery/quota_warn.py).

        Raises QuotaExceeded, MaildirError(temporary=False) for a bad or missing folder
        (when create is False), MaildirError(temporary=True) for I/O trouble or an unsafe
        Maildir. Once the message is renamed into new/ or cur/ nothing raises any more.
        """
        try:
            with _Fds() as fds:
                root = self._open_root(fds, create=True)
                assert root is not None
                folder, dirname, subs = self._ensure_at(fds, root, mailbox, create)
                if quota is not None and not quota.unlimited and enforce_quota:
                    self._check_quota_at(root, quota, len(message), now)
                letters, keywords = split_flags(flags)
                letters += self._keyword_letters(folder, dirname, keywords)
                vsize = len(message) + message.count(b"\n") - message.count(b"\r\n")
                name = unique_name(len(message), vsize, now)
                sub, final_name = ("cur", name + flags_suffix(letters)) if letters else ("new", name)
                tmp_dir, dest_dir = subs["tmp"], subs[sub]
                assert tmp_dir is not None and dest_dir is not None
                self._write_message(tmp_dir, name, message, mtime)
                counted = quota is not None and not quota.unlimited
                try:
                    if counted:
                        fds.enter_context(self._quota_lock(root, recount=False))
                    os.rename(name, final_name, src_dir_fd=tmp_dir, dst_dir_fd=dest_dir)
                except BaseException:
                    unlink_quietly(tmp_dir, name)
                    raise
                # Committed: the message is in the mailbox. A retry now would store it twice.
                final = os.path.join(self.root, dirname, sub, final_name)
                self._after_commit(root, dest_dir, final, quota, len(message))
                return StoredMessage(final, mailbox, len(message))
        except MaildirError:
            raise
        except OSError as e:
            temporary = e.errno not in (errno.ENAMETOOLONG,)
            raise MaildirError(f"{self.root}: {mailbox}: {e.strerror or e}", temporary=temporary) from e

    def _write_message(self, tmp_dir: int, name: str, message: bytes, mtime: float | None) -> None:
        fd = os.open(name, _CREATE_FLAGS, self.file_mode, dir_fd=tmp_dir)
        try:
            try:
                _write_all(fd, message)
                if self.owner is not None:
                    os.fchown(fd, self.owner.uid, self.owner.gid)
                if mtime is not None:
                    os.utime(fd, (mtime, mtime))
                if self.fsync != "never":
                    os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            unlink_quietly(tmp_dir, name)
            raise

    def _after_commit(self, root: int, dest_dir: int, final: str, quota: Quota | None, size: int) -> None:
        """Best effort after the rename: every error is a WARNING, never a failed delivery."""
        if self.fsync == "always":
            try:
                os.fsync(dest_dir)
            except Exception as e:
                log.warning("maildir: %s: delivered, but the directory fsync failed: %s", final, e,
                            exc_info=not isinstance(e, OSError))
        if quota is not None and not quota.unlimited:
            try:
                self._add_usage(root, size, 1)
            except Exception as e:
                log.warning("maildir: %s: delivered, but maildirsize was not updated (recounted later): %s",
                            final, e, exc_info=not isinstance(e, (OSError, MaildirError)))


def path_for(template: str, address: str) -> str:
    """Fill a path template from an address; refuse values that could escape the directory."""
    local, _, domain = address.rpartition("@")
    if not local:
        local, domain = address, ""
    local, domain = local.lower(), domain.lower()
    for value in (local, domain):
        if "/" in value or value.startswith(".") or "\0" in value:
            raise MaildirError(f"address {address!r} cannot name a path", temporary=False)
    return template.format(localpart=local, domain=domain, user=f"{local}@{domain}" if domain else local)
