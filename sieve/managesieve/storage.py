"""A user's Sieve scripts on disk, in Pigeonhole's layout: NAME.sieve files and the active-script symlink.

The layout, shared with Dovecot's managesieved and read by delivery (lmtpd, the LDA):

    <script dir>/NAME.sieve        one file per script
    <active path> -> NAME.sieve    a relative symbolic link naming the active script

The active path is the user's delivery script (`delivery_sieve_script_template`, default
/var/lib/owlery/mail/{domain}/{localpart}/sieve/active.sieve, or a directory entry's own
path); the script dir is `managesieve_script_dir_template`, by default the directory of the
active path. So by default the link sits among the scripts (sieve/active.sieve ->
first.sieve) and the name "active" is reserved, as Pigeonhole reserves it in that layout; a
site switching to Dovecot sets `sieve = file:~/sieve;active=~/sieve/active.sieve`. With
Pigeonhole's classic layout (~/.dovecot.sieve -> sieve/NAME.sieve) set the template to the
sieve directory and delivery's template to the link. A regular file found at the active
path (an older installation's script) is kept as the script "dovecot.orig" when another
script is activated or the active one is deactivated, as Pigeonhole does.
Writes are atomic: a script is written to a temporary file in the same directory (O_EXCL,
O_NOFOLLOW), fsynced and renamed over NAME.sieve; the link is made under a temporary name and
renamed over the active path; then the directory is fsynced. Delivery reading the link sees
the old script or the new one, never none or half of one. Temporary files start with
".owlery-" and do not end in ".sieve", so neither server lists them.
Symbolic links: script files are opened relative to the directory's descriptor with
O_NOFOLLOW and must be regular files; the script directory itself must not be a link; the
active link is read with readlink() and used only when it names NAME.sieve in the script dir.
Running as root for a mail owner (the directory's uid/gid, else `maildir_owner`), the path is
walked from / one component at a time and a link on it is followed only when the directory
holding it is not writable by the owner (as owlery.maildir does); the directories must be
owned by the owner or root; everything created is given to the owner (fchown / lchown).
Talks to: the file system. Tests: tests/managesieve/test_storage.py (layout, atomicity, links)
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import secrets
import stat
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from owlery.maildir import Owner, is_link_at, read_all, replace_file_at, unlink_quietly

log = logging.getLogger("owlery.managesieve")

SUFFIX = ".sieve"
RESCUE_NAME = "dovecot.orig"
TMP_PREFIX = ".owlery-"
READ_LIMIT = 16 * 1024 * 1024        # GETSCRIPT of a file another tool put there
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_MAX_LINKS = 40


class StorageError(Exception):
    """A refused operation: `code` is the ManageSieve response code (NONEXISTENT, ACTIVE,
    ALREADYEXISTS) or None; `temporary` for a file system failure worth retrying."""

    def __init__(self, message: str, code: str | None = None, *, temporary: bool = False):
        super().__init__(message)
        self.code = code
        self.temporary = temporary


def check_name(name: str, max_length: int = 256, reserved: Iterable[str] = ()) -> str | None:
    """Why `name` cannot be a script name (RFC 5804 1.6 plus what a file name needs), or None.

    A leading dot is allowed, as RFC 5804 and Pigeonhole allow it: NAME.sieve is then a hidden
    file, never one of our temporary files (they do not end in .sieve)."""
    if not name:
        return "it is empty"
    if len(name) > max_length:
        return f"it is longer than {max_length} characters"
    if "/" in name:
        return "it contains a slash"
    for ch in name:
        o = ord(ch)
        if o < 0x20 or 0x7f <= o <= 0x9f or o in (0x2028, 0x2029) or 0xd800 <= o <= 0xdfff:
            return "it contains a control character"
    if len((name + SUFFIX).encode("utf-8")) > 255:
        return "it is too long for a file name"
    if name in reserved:
        return "it is reserved"
    return None


@dataclasses.dataclass
class _Dirs:
    script: int          # descriptor of the script directory
    link: int            # descriptor of the directory holding the active link (may be the same)


class ScriptStorage:
    """One user's scripts (blocking file system calls: run it in a thread)."""

    def __init__(self, script_dir: str, active_path: str, *, owner: Owner | None = None,
                 read_limit: int = READ_LIMIT):
        if not os.path.isabs(script_dir) or not os.path.isabs(active_path):
            raise ValueError("the script directory and the active script path must be absolute")
        self.script_dir = os.path.normpath(script_dir)
        self.active_path = os.path.normpath(active_path)
        self.link_dir, self.link_name = os.path.split(self.active_path)
        self.same_dir = self.link_dir == self.script_dir
        self.rel = os.path.relpath(self.script_dir, self.link_dir)     # "." in the default layout
        if self.rel.startswith(".."):
            raise ValueError(f"the script directory {script_dir} must be at or below {self.link_dir}")
        self.reserved: frozenset[str] = frozenset()
        if self.same_dir and self.link_name.endswith(SUFFIX):
            self.reserved = frozenset({self.link_name[:-len(SUFFIX)]})
        self.owner = owner
        self.chown = owner is not None and os.geteuid() == 0
        self.read_limit = read_limit

    # -- reading ---------------------------------------------------------------------------

    def list(self) -> list[tuple[str, bool]]:
        """(name, active) for every script, sorted by name."""
        with self._dirs(create=False) as d:
            if d is None:
                return []
            active = self._active(d)
            return [(name, name == active) for name in sorted(self._sizes(d))]

    def usage(self) -> dict[str, int]:
        """Size of every script, by name."""
        with self._dirs(create=False) as d:
            return {} if d is None else self._sizes(d)

    def active(self) -> str | None:
        with self._dirs(create=False) as d:
            return None if d is None else self._active(d)

    def get(self, name: str) -> bytes:
        self._check(name)
        with self._dirs(create=False) as d:
            if d is None:
                raise StorageError(f"there is no script {name!r}", "NONEXISTENT")
            fd = self._open_script(d, name)
            try:
                data = read_all(fd, self.read_limit + 1)
            finally:
                os.close(fd)
            if len(data) > self.read_limit:
                raise StorageError(f"script {name!r} is too large to read")
            return data

    def exists(self, name: str) -> bool:
        with self._dirs(create=False) as d:
            return d is not None and self._is_script(d, name)

    # -- writing ---------------------------------------------------------------------------

    def put(self, name: str, data: bytes) -> None:
        """Store (or replace) a script atomically; an active script is replaced in place."""
        self._check(name)
        with self._dirs(create=True) as d:
            assert d is not None
            replace_file_at(d.script, name + SUFFIX, data, tmp=TMP_PREFIX + secrets.token_hex(8) + ".tmp",
                            mode=0o600, owner=self.owner if self.chown else None, fsync=True)
            os.fsync(d.script)

    def delete(self, name: str) -> None:
        self._check(name)
        with self._dirs(create=False) as d:
            if d is None or not self._is_script(d, name):
                raise StorageError(f"there is no script {name!r}", "NONEXISTENT")
            if self._active(d) == name:
                raise StorageError(f"script {name!r} is active; deactivate it first", "ACTIVE")
            os.unlink(name + SUFFIX, dir_fd=d.script)
            os.fsync(d.script)

    def rename(self, old: str, new: str) -> None:
        """Rename a script; the active one stays active under its new name."""
        self._check(old)
        self._check(new)
        with self._dirs(create=False) as d:
            if d is None or not self._is_script(d, old):
                raise StorageError(f"there is no script {old!r}", "NONEXISTENT")
            try:
                # A hard link first: it fails if `new` exists, and the old name stays valid until
                # the active link points at the new one.
                os.link(old + SUFFIX, new + SUFFIX, src_dir_fd=d.script, dst_dir_fd=d.script,
                        follow_symlinks=False)
            except FileExistsError:
                raise StorageError(f"a script {new!r} exists already", "ALREADYEXISTS") from None
            if self._active(d) == old:
                self._set_link(d, new)
            os.unlink(old + SUFFIX, dir_fd=d.script)
            os.fsync(d.script)

    def activate(self, name: str | None) -> None:
        """Make `name` the active script; None deactivates (no script runs for the user)."""
        if name is not None:
            self._check(name)
        with self._dirs(create=name is not None) as d:
            if d is None:
                return                         # nothing stored, nothing active
            if name is not None and not self._is_script(d, name):
                raise StorageError(f"there is no script {name!r}", "NONEXISTENT")
            self._rescue_regular(d)
            if name is not None:
                self._set_link(d, name)     # renamed over the old link or file: never a moment without
                return
            try:
                st = os.stat(self.link_name, dir_fd=d.link, follow_symlinks=False)
            except FileNotFoundError:
                return
            if stat.S_ISLNK(st.st_mode) or stat.S_ISREG(st.st_mode):   # a file was kept just above
                os.unlink(self.link_name, dir_fd=d.link)
                os.fsync(d.link)

    # -- internals -------------------------------------------------------------------------

    def _check(self, name: str) -> None:
        why = check_name(name, 1024, self.reserved)
        if why is not None:
            raise StorageError(f"bad script name {name!r}: {why}")

    def _sizes(self, d: _Dirs) -> dict[str, int]:
        out = {}
        for entry in os.listdir(d.script):
            if not entry.endswith(SUFFIX) or (self.same_dir and entry == self.link_name):
                continue
            name = entry[:-len(SUFFIX)]
            if check_name(name, 1024, self.reserved) is not None:
                continue                     # hidden, not UTF-8, or another tool's file
            try:
                st = os.stat(entry, dir_fd=d.script, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                out[name] = st.st_size
        return out

    def _is_script(self, d: _Dirs, name: str) -> bool:
        try:
            st = os.stat(name + SUFFIX, dir_fd=d.script, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return stat.S_ISREG(st.st_mode)

    def _open_script(self, d: _Dirs, name: str) -> int:
        try:
            fd = os.open(name + SUFFIX, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=d.script)
        except FileNotFoundError:
            raise StorageError(f"there is no script {name!r}", "NONEXISTENT") from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise StorageError(f"there is no script {name!r} (a symbolic link is not one)", "NONEXISTENT") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StorageError(f"there is no script {name!r}", "NONEXISTENT")
        return fd

    def _active(self, d: _Dirs) -> str | None:
        """The active script's name: the link's target when it names an existing script here."""
        try:
            target = os.readlink(self.link_name, dir_fd=d.link)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.EINVAL:        # a regular file (an older script): no named script
                return None
            raise
        name = self.name_from_target(target)
        if name is None or not self._is_script(d, name):
            if target:
                log.warning("managesieve: %s: active link to %r ignored (not a script in %s)",
                            self.active_path, target, self.script_dir)
            return None
        return name

    def name_from_target(self, target: str) -> str | None:
        """The script a link target names, or None when it points anywhere but NAME.sieve here."""
        norm = os.path.normpath(target)
        directory, base = os.path.split(norm)
        if os.path.isabs(norm):
            if directory != self.script_dir:
                return None
        elif (directory or ".") != self.rel:
            return None
        if not base.endswith(SUFFIX):
            return None
        name = base[:-len(SUFFIX)]
        return name if check_name(name, 1024, self.reserved) is None else None

    def _set_link(self, d: _Dirs, name: str) -> None:
        target = name + SUFFIX if self.rel == "." else f"{self.rel}/{name}{SUFFIX}"
        tmp = TMP_PREFIX + secrets.token_hex(8) + ".link"
        os.symlink(target, tmp, dir_fd=d.link)
        try:
            if self.chown:
                os.chown(tmp, self.owner.uid, self.owner.gid, dir_fd=d.link, follow_symlinks=False)
            os.rename(tmp, self.link_name, src_dir_fd=d.link, dst_dir_fd=d.link)
        except BaseException:
            unlink_quietly(d.link, tmp)
            raise
        os.fsync(d.link)

    def _rescue_regular(self, d: _Dirs) -> None:
        """A regular file at the active path is linked as the script "dovecot.orig" (kept, not
        lost); the caller then replaces or removes the active path."""
        try:
            st = os.stat(self.link_name, dir_fd=d.link, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            return
        if not stat.S_ISREG(st.st_mode):
            raise StorageError(f"{self.active_path} is neither a symbolic link nor a file")
        for n in range(1, 100):
            rescue = RESCUE_NAME if n == 1 else f"{RESCUE_NAME}-{n}"
            try:
                os.link(self.link_name, rescue + SUFFIX, src_dir_fd=d.link, dst_dir_fd=d.script,
                        follow_symlinks=False)
            except FileExistsError:
                continue
            log.info("managesieve: %s was a regular file; kept as script %r", self.active_path, rescue)
            return
        raise StorageError(f"{self.active_path}: no free name to keep the old script under")

    @contextlib.contextmanager
    def _dirs(self, *, create: bool) -> Iterator[_Dirs | None]:
        fds: list[int] = []
        try:
            dirs = self._open_dirs(create, fds)
            yield dirs
        finally:
            for fd in fds:
                os.close(fd)

    def _open_dirs(self, create: bool, fds: list[int]) -> _Dirs | None:
        try:
            link = self._open_dir(self.link_dir, create)
            if link is None:
                return None
            fds.append(link)
            if self.same_dir:
                return _Dirs(script=link, link=link)
            script = self._open_dir(self.script_dir, create)
            if script is None:
                return None
            fds.append(script)
            return _Dirs(script=script, link=link)
        except OSError as e:
            raise StorageError(f"{self.script_dir}: {e.strerror or e}", temporary=True) from e

    def _open_dir(self, path: str, create: bool) -> int | None:
        if self.chown:
            return self._walk(path, create)
        try:
            return _open_dir_at(None, path)
        except FileNotFoundError:
            if not create:
                return None
        os.makedirs(path, 0o700, exist_ok=True)
        return _open_dir_at(None, path)

    def _walk(self, path: str, create: bool) -> int | None:
        """Open `path` from / one component at a time (see the module docstring); None if missing."""
        assert self.owner is not None
        parts = deque(p for p in path.split("/") if p not in ("", "."))
        stack = [os.open("/", _DIR_FLAGS)]
        links = 0
        try:
            while parts:
                name = parts.popleft()
                if name == "..":
                    if len(stack) > 1:
                        os.close(stack.pop())
                    continue
                parent = stack[-1]
                try:
                    fd = _open_dir_at(parent, name)
                except FileNotFoundError:
                    if not create:
                        return None
                    try:
                        os.mkdir(name, 0o700, dir_fd=parent)
                    except FileExistsError:
                        pass
                    fd = _open_dir_at(parent, name)
                    if os.fstat(fd).st_uid == os.geteuid():
                        os.fchown(fd, self.owner.uid, self.owner.gid)
                except _LinkFound:
                    # A symbolic link on the way: followed only when the mail owner could not
                    # have put it there, and never as the last component.
                    if not parts:
                        raise
                    st = os.fstat(parent)
                    if (st.st_mode & stat.S_IWOTH or st.st_uid == self.owner.uid
                            or (st.st_mode & stat.S_IWGRP and st.st_gid == self.owner.gid)):
                        raise StorageError(f"{path}: {name} is a symbolic link in a directory the mail "
                                           f"owner can write; not followed") from None
                    links += 1
                    if links > _MAX_LINKS:
                        raise StorageError(f"{path}: too many symbolic links") from None
                    target = os.readlink(name, dir_fd=parent)
                    if target.startswith("/"):
                        while len(stack) > 1:
                            os.close(stack.pop())
                    parts.extendleft(reversed([p for p in target.split("/") if p not in ("", ".")]))
                    continue
                stack.append(fd)
            st = os.fstat(stack[-1])
            if st.st_uid not in (self.owner.uid, 0):
                raise StorageError(f"{path} belongs to uid {st.st_uid}, not to the mail owner")
            return stack.pop()
        finally:
            for fd in stack:
                os.close(fd)


class _LinkFound(StorageError):
    """Internal: the directory to open is a symbolic link."""


def _open_dir_at(parent: int | None, name: str) -> int:
    """A directory opened without following a final symbolic link (StorageError when it is one)."""
    try:
        return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            if is_link_at(parent, name):
                raise _LinkFound(f"{name} is a symbolic link; not followed") from None
            raise StorageError(f"{name} is not a directory") from None
        raise


def for_user(user: Any, settings: Any) -> ScriptStorage:
    """The storage of a delivery user (sieve.delivery.users.MailUser): its active script path,
    the script dir from managesieve_script_dir_template, the owner from the directory or
    maildir_owner. ValueError when the user has no script path."""
    from owlery.maildir import owner_from_settings, path_for
    if not user.sieve_script:
        raise ValueError(f"{user.address}: no Sieve script path (delivery_sieve_script_template is empty)")
    template = settings.managesieve_script_dir_template
    script_dir = path_for(template, user.address) if template else os.path.dirname(user.sieve_script)
    if user.uid is not None:
        owner: Owner | None = Owner(user.uid, user.gid if user.gid is not None else user.uid)
    else:
        owner = owner_from_settings(settings)
    return ScriptStorage(script_dir, user.sieve_script, owner=owner)
