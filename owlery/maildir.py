"""Maildir++ writer: atomic delivery (tmp -> fsync -> rename), flags, keywords, folders, quota.

What Dovecot expects on disk (its `maildir:` storage with the default Maildir++ layout):
  - a message is written to tmp/, fsynced, then renamed into new/ (no flags) or cur/
    with an info suffix `:2,FLAGS` (flags: system letters D F P R S T, then keyword
    letters a..z, each in ASCII order); the name is unique and carries `,S=<bytes on
    disk>,W=<size with CRLF line ends>` so readers need not stat or read the file;
  - IMAP keywords map to letters through `dovecot-keywords` ("<index> <keyword>" lines,
    index 0 = 'a'), a file only ever replaced by rename();
  - folders are directories `.Name.Sub` at the Maildir root (mailbox names in IMAP
    modified UTF-7, '.' is the hierarchy separator), each holding cur/ new/ tmp/ and an
    empty `maildirfolder` file; new folders are listed in `subscriptions`;
  - quota lives in `maildirsize` (Maildir++): a definition line `<bytes>S,<count>C` then
    "<bytes> <count>" delta lines appended atomically; read by owlery.maildirsize (the one
    reader, shared with policyd's quota check) and recalculated from the file names when
    missing, stale, too long, holding junk or when the definition changed.
Lines are stored with LF ends (Dovecot's default); readers convert to CRLF over IMAP.

Talks to: the file system only. Used by sieve.delivery (LMTP server, LDA).
Tests: tests/delivery/test_maildir.py (and the Dovecot IMAP e2e test in tests/e2e/).
"""

from __future__ import annotations

import base64
import dataclasses
import errno
import itertools
import os
import pwd
import grp
import re
import socket
import time
from collections.abc import Iterable, Sequence

from owlery import maildirsize
from owlery.settings import Bool, Duration, Str, choice, setting

MAILDIR_PATH_TEMPLATE = setting(
    "maildir_path_template", Str, "/var/lib/owlery/mail/{domain}/{localpart}/Maildir",
    "Where a user's Maildir is, from the recipient address: {localpart}, {domain}, {user} "
    "(the full address) are substituted, lowercased and with '/' and leading dots refused. "
    "A directory entry giving a mail path wins.")
MAILDIR_OWNER = setting(
    "maildir_owner", Str, None,
    "When delivering as root: the user (or user:group) that owns created Maildir files and "
    "directories, so the IMAP server can read them. Unset: files belong to the delivering process.")
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

#: System IMAP flags and their Maildir info letters.
SYSTEM_FLAGS = {"\\draft": "D", "\\flagged": "F", "\\answered": "R", "\\seen": "S", "\\deleted": "T"}
MAX_KEYWORDS = 26          # letters a..z
MAILDIRSIZE_MAX_BYTES = 5120   # Maildir++: recalculate when the file grows past this
_ATOM_SPECIALS = set('(){ %*"\\]') | {chr(c) for c in range(0, 32)} | {chr(127)}


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
            b64 = chunk.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            out.append(base64.b64decode(b64, validate=True).decode("utf-16-be"))
        i = end + 1
    return "".join(out)


def folder_dirname(mailbox: str) -> str | None:
    """The Maildir++ directory name for an IMAP mailbox name (UTF-8), None for INBOX.

    '.' and '/' both separate hierarchy levels ("Work/Projects" and "Work.Projects" are
    the same folder `.Work.Projects`). Refused (MaildirError, permanent): empty levels,
    levels starting with '~' or being '..', control characters, overlong names.
    """
    if mailbox.upper() == "INBOX":
        return None
    if not mailbox or len(mailbox.encode("utf-8")) > 512:
        raise MaildirError(f"bad mailbox name {mailbox!r}", temporary=False)
    parts = re.split(r"[./]", mailbox)
    for part in parts:
        if not part or part.startswith("~") or any(ord(c) < 0x20 or ord(c) == 0x7f for c in part):
            raise MaildirError(f"bad mailbox name {mailbox!r}", temporary=False)
    return "." + ".".join(encode_mutf7(p) for p in parts)


def _host_part() -> str:
    # '/' and ':' cannot appear in the name: Maildir writers escape them as \057 and \072.
    return socket.gethostname().replace("/", "\\057").replace(":", "\\072")


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
    m = re.search(r",S=(\d+)", name)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------------------
# Ownership
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Owner:
    uid: int
    gid: int

    @classmethod
    def parse(cls, spec: str) -> "Owner":
        """`user` or `user:group` (names or numbers)."""
        user, _, group = spec.partition(":")
        try:
            pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            raise ValueError(f"maildir_owner: no such user {user!r}") from None
        gid = pw.pw_gid
        if group:
            try:
                gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
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

@dataclasses.dataclass(frozen=True)
class Quota:
    """A quota limit; 0 means no limit for that dimension."""

    bytes: int = 0
    messages: int = 0

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


@dataclasses.dataclass(frozen=True)
class Usage:
    bytes: int
    messages: int


# ---------------------------------------------------------------------------
# The Maildir
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Delivered:
    """Where a message went: absolute path of the file and the folder name."""

    path: str
    folder: str
    size: int


class Maildir:
    """One user's Maildir++ (root path), created on first use."""

    def __init__(self, root: str, *, owner: Owner | None = None, fsync: str = "optimized",
                 private: bool = True, quota_recalc_age: float = 900.0):
        self.root = os.path.abspath(root)
        self.owner = owner
        self.fsync = fsync
        self.dir_mode = 0o700 if private else 0o770
        self.file_mode = 0o600 if private else 0o660
        self.quota_recalc_age = quota_recalc_age

    @classmethod
    def from_settings(cls, root: str, settings, owner: Owner | None = None) -> "Maildir":
        return cls(root, owner=owner if owner is not None else owner_from_settings(settings),
                   fsync=settings.maildir_fsync, private=settings.maildir_private,
                   quota_recalc_age=settings.maildir_quota_recalc_age)

    # -- directories -------------------------------------------------------

    def _chown(self, path: str) -> None:
        if self.owner is not None:
            os.chown(path, self.owner.uid, self.owner.gid)

    def _mkdir(self, path: str) -> bool:
        try:
            os.mkdir(path, self.dir_mode)
        except FileExistsError:
            return False
        self._chown(path)
        return True

    def _makedirs(self, path: str) -> None:
        """mkdir -p, chowning only the directories we create."""
        if os.path.isdir(path):
            return
        parent = os.path.dirname(path)
        if parent and parent != path:
            self._makedirs(parent)
        self._mkdir(path)

    def folder_path(self, mailbox: str) -> str:
        name = folder_dirname(mailbox)
        return self.root if name is None else os.path.join(self.root, name)

    def folder_exists(self, mailbox: str) -> bool:
        return os.path.isdir(os.path.join(self.folder_path(mailbox), "cur"))

    def ensure(self, mailbox: str = "INBOX", *, create: bool = True) -> str:
        """The folder's directory, creating root and folder (cur/new/tmp) when allowed."""
        path = self.folder_path(mailbox)
        if os.path.isdir(os.path.join(path, "tmp")) and os.path.isdir(os.path.join(path, "new")) \
                and os.path.isdir(os.path.join(path, "cur")):
            return path
        if path != self.root:
            self.ensure("INBOX")
            if not create and not os.path.isdir(path):
                raise MaildirError(f"mailbox {mailbox!r} does not exist", temporary=False)
        self._makedirs(path)
        for sub in ("cur", "new", "tmp"):
            self._mkdir(os.path.join(path, sub))
        if path != self.root:
            marker = os.path.join(path, "maildirfolder")
            if not os.path.exists(marker):
                fd = os.open(marker, os.O_WRONLY | os.O_CREAT, self.file_mode)
                os.close(fd)
                self._chown(marker)
            self.subscribe(mailbox)
        return path

    def list_folders(self) -> list[str]:
        """IMAP names (UTF-8) of the folders under this Maildir, INBOX first."""
        names = ["INBOX"] if os.path.isdir(self.root) else []
        try:
            entries = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return names
        for entry in entries:
            if entry.startswith(".") and entry not in (".", "..") \
                    and os.path.isdir(os.path.join(self.root, entry, "cur")):
                names.append(".".join(decode_mutf7(p) for p in entry[1:].split(".")))
        return names

    # -- subscriptions -----------------------------------------------------

    def subscriptions(self) -> list[str]:
        try:
            with open(os.path.join(self.root, "subscriptions"), encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        if lines and lines[0].startswith("V\t"):
            # Dovecot's version 2 format: header, blank line, UTF-8 names with TAB separators.
            return [line.replace("\t", ".") for line in lines[2:] if line]
        return [decode_mutf7(line) for line in lines if line]

    def subscribe(self, mailbox: str) -> None:
        """Add a folder to `subscriptions` (replaced by rename so readers never see half a file)."""
        path = os.path.join(self.root, "subscriptions")
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            text = ""
        lines = text.splitlines()
        v2 = bool(lines) and lines[0].startswith("V\t")
        normalised = ".".join(re.split(r"[./]", mailbox))
        entry = normalised.replace(".", "\t") if v2 else ".".join(
            encode_mutf7(p) for p in normalised.split("."))
        if entry in lines[2 if v2 else 0:]:
            return
        if not text.endswith("\n") and text:
            text += "\n"
        self._replace_file(path, (text + entry + "\n").encode("utf-8"))

    # -- keywords ----------------------------------------------------------

    def keyword_letters(self, folder_path: str, keywords: Sequence[str]) -> list[str]:
        """Letters for keywords, adding new ones to the folder's dovecot-keywords.

        Keywords beyond the 26 letters are dropped (as Dovecot does for Maildir).
        """
        if not keywords:
            return []
        path = os.path.join(folder_path, "dovecot-keywords")
        table: dict[int, str] = {}
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    index, _, name = line.rstrip("\n").partition(" ")
                    if index.isdigit() and name:
                        table[int(index)] = name
        except FileNotFoundError:
            pass
        by_name = {name: index for index, name in table.items()}
        letters = []
        changed = False
        for kw in keywords:
            if kw not in by_name:
                free = next((i for i in range(MAX_KEYWORDS) if i not in table), None)
                if free is None:
                    continue
                table[free] = kw
                by_name[kw] = free
                changed = True
            letters.append(chr(ord("a") + by_name[kw]))
        if changed:
            body = "".join(f"{i} {table[i]}\n" for i in sorted(table))
            self._replace_file(path, body.encode("utf-8"))
        return letters

    # -- quota -------------------------------------------------------------

    def usage(self, quota: Quota, now: float | None = None) -> Usage:
        """Current usage from maildirsize, recalculating it when missing, stale or changed."""
        path = os.path.join(self.root, "maildirsize")
        t = time.time() if now is None else now
        try:
            with open(path, "rb") as f:
                data = f.read(MAILDIRSIZE_MAX_BYTES)
                st = os.fstat(f.fileno())
        except FileNotFoundError:
            return self.recalculate(quota)
        # The one tolerant reader (shared with policyd's quota check); what it had to skip,
        # a negative total, a changed definition or a long file mean: recount.
        ms = maildirsize.parse(data.decode("ascii", "replace"))
        if (len(data) >= MAILDIRSIZE_MAX_BYTES or not data.strip() or ms.suspect
                or Quota.from_file(ms) != quota):
            return self.recalculate(quota)
        used = Usage(ms.used_bytes, ms.used_messages)
        if self._over(quota, used, 0) and t - st.st_mtime > self.quota_recalc_age:
            return self.recalculate(quota)
        return used

    def recalculate(self, quota: Quota) -> Usage:
        """Count every message (S= from names, else stat) and rewrite maildirsize atomically."""
        total_b = total_m = 0
        folders = [self.root]
        try:
            folders += [os.path.join(self.root, e) for e in os.listdir(self.root)
                        if e.startswith(".") and e not in (".", "..")
                        and os.path.isdir(os.path.join(self.root, e))]
        except FileNotFoundError:
            pass
        for folder in folders:
            for sub in ("new", "cur"):
                d = os.path.join(folder, sub)
                try:
                    names = os.listdir(d)
                except FileNotFoundError:
                    continue
                for name in names:
                    size = parse_size_from_name(name)
                    if size is None:
                        try:
                            size = os.stat(os.path.join(d, name)).st_size
                        except FileNotFoundError:
                            continue    # expunged while we counted
                    total_b += size
                    total_m += 1
        if os.path.isdir(self.root):
            body = f"{quota.definition()}\n{total_b:>12} {total_m:>12}\n"
            self._replace_file(os.path.join(self.root, "maildirsize"), body.encode("ascii"))
        return Usage(total_b, total_m)

    @staticmethod
    def _over(quota: Quota, used: Usage, size: int, count: int = 1) -> bool:
        if quota.bytes and used.bytes + size > quota.bytes:
            return True
        if quota.messages and used.messages + count > quota.messages:
            return True
        return False

    def check_quota(self, quota: Quota | None, size: int, now: float | None = None) -> None:
        """Raise QuotaExceeded when a message of `size` bytes does not fit."""
        if quota is None or quota.unlimited:
            return
        used = self.usage(quota, now)
        if self._over(quota, used, size):
            raise QuotaExceeded(
                f"mailbox full: {used.bytes}+{size} of {quota.bytes or '-'} bytes, "
                f"{used.messages}+1 of {quota.messages or '-'} messages")

    def _add_usage(self, size: int, count: int) -> None:
        path = os.path.join(self.root, "maildirsize")
        try:
            # One write() with O_APPEND is atomic with respect to other appenders.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            return       # no quota file: nothing tracks usage for this user
        try:
            os.write(fd, f"{size} {count}\n".encode("ascii"))
        finally:
            os.close(fd)

    # -- delivery ----------------------------------------------------------

    def deliver(self, message: bytes, mailbox: str = "INBOX", *, flags: Iterable[str] = (),
                create: bool = True, quota: Quota | None = None, now: float | None = None,
                mtime: float | None = None) -> Delivered:
        """Write `message` (LF line ends) into a folder atomically; return where it went.

        Raises QuotaExceeded, MaildirError(temporary=False) for a bad or missing folder
        (when create is False), MaildirError(temporary=True) for I/O trouble.
        """
        try:
            folder = self.ensure(mailbox, create=create)
            self.check_quota(quota, len(message), now)
            letters, keywords = split_flags(flags)
            letters += self.keyword_letters(folder, keywords)
            vsize = len(message) + message.count(b"\n") - message.count(b"\r\n")
            name = unique_name(len(message), vsize, now)
            tmp = os.path.join(folder, "tmp", name)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.file_mode)
            try:
                view = memoryview(message)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if self.owner is not None:
                    os.fchown(fd, self.owner.uid, self.owner.gid)
                if mtime is not None:
                    os.utime(fd, (mtime, mtime))
                if self.fsync != "never":
                    os.fsync(fd)
            except BaseException:
                os.close(fd)
                _unlink_quietly(tmp)
                raise
            os.close(fd)
            if letters:
                final = os.path.join(folder, "cur", name + flags_suffix(letters))
            else:
                final = os.path.join(folder, "new", name)
            try:
                os.rename(tmp, final)
            except BaseException:
                _unlink_quietly(tmp)
                raise
            if self.fsync == "always":
                _fsync_dir(os.path.dirname(final))
            if quota is not None and not quota.unlimited:
                self._add_usage(len(message), 1)
            return Delivered(final, mailbox, len(message))
        except MaildirError:
            raise
        except OSError as e:
            temporary = e.errno not in (errno.ENAMETOOLONG,)
            raise MaildirError(f"{self.root}: {mailbox}: {e.strerror or e}", temporary=temporary) from e

    # -- helpers -----------------------------------------------------------

    def _replace_file(self, path: str, data: bytes) -> None:
        tmp = f"{path}.{os.getpid()}.{os.urandom(3).hex()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.file_mode)
        try:
            os.write(fd, data)
            if self.owner is not None:
                os.fchown(fd, self.owner.uid, self.owner.gid)
            if self.fsync != "never":
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


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
