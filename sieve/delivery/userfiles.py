"""Reading a file the mail user controls (their Sieve script, its includes) as root, safely.

Delivering as root for a mail owner, the user's script path lies in a directory the user
owns: they can make it a symbolic link (ManageSieve's `active.sieve` legitimately is one),
a hard link or a FIFO pointing anywhere, and a compile error would then copy fragments of,
say, /etc/shadow into the log. Rather than police paths, we check what was opened: a
regular file the mail owner could read without us, i.e. owned by them or readable by
everyone (an administrator's world-readable script is fine; a hard or symbolic link to
/etc/shadow, mode 0640, is not). Whatever the path tricks, the user learns nothing they
could not read anyway. Opened non-blocking (a FIFO cannot stall
delivery), read up to a limit.
Used by sieve/delivery/executor.py. Tests: tests/delivery/test_user_script_safety.py
"""

from __future__ import annotations

import os
import stat

from owlery.maildir import read_all


class UnsafeUserFile(Exception):
    """The file is not a regular file of the mail owner's: ignored (logged), like a bad script."""


_LINK_RETRIES = 5


def _open_following_a_moving_link(path: str) -> int:
    """Open `path`; when it is a symbolic link whose target vanished, resolve it again.

    ManageSieve renames the active script by linking the new name, re-pointing `active.sieve`
    at it, then unlinking the old name: a reader that resolved the link just before and looks
    the old target up just after finds nothing, though a script was active all along. The link
    then already points at the new name, so a fresh resolution succeeds; a link that stays
    dangling is a missing script as before."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    for _ in range(_LINK_RETRIES):
        try:
            return os.open(path, flags)
        except FileNotFoundError:
            try:
                if not stat.S_ISLNK(os.lstat(path).st_mode):
                    raise
            except FileNotFoundError:
                raise
    return os.open(path, flags)


def read_user_file(path: str, owner_uid: int | None, limit: int) -> bytes:
    """Up to limit+1 bytes of `path`; FileNotFoundError when missing, UnsafeUserFile when it is
    not a regular file that `owner_uid` owns or everyone may read (None: no owner to check,
    we run as the user)."""
    fd = _open_following_a_moving_link(path)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeUserFile(f"{path}: not a regular file")
        if owner_uid is not None and st.st_uid != owner_uid and not st.st_mode & stat.S_IROTH:
            raise UnsafeUserFile(f"{path}: owned by uid {st.st_uid} and not world-readable: "
                                 f"not a file the mail owner (uid {owner_uid}) may read")
        return read_all(fd, limit + 1)
    finally:
        os.close(fd)
