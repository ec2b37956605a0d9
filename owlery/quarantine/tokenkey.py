"""The quarantine token key file: its setting, reading it (refusing a world-readable file) and generating it.

The key signs the release and show links of quarantine digests (owlery.quarantine.tokens);
whoever reads it can release anybody's quarantined mail, so it is never logged, never put
in an error message, and a file that others can read is refused. The file holds one line:
64 hex digits (32 random bytes). `owlery quarantine token-key --generate` writes it (tmp,
fsync, rename), mode 0600, owned by daemon_user when run as root, and will not replace an
existing key unless forced (replacing it voids every link already mailed).
Talks to: the file system. Tests: tests/core/test_quarantine_tokens.py
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from owlery.settings import Str, setting

QUARANTINE_TOKEN_KEY_FILE = setting(
    "quarantine_token_key_file", Str, "/etc/owlery/quarantine-token.key",
    "File holding the key that signs the release and show links of quarantine digests (64 hex "
    "digits; `owlery quarantine token-key --generate` creates it). Must not be readable by others.")

KEY_BYTES = 32


class TokenKeyError(Exception):
    """The token key file is missing, unsafe or not a key."""


def parse_key(text: str, path: str) -> bytes:
    """The key bytes of a key file's first line (hex)."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise TokenKeyError(f"quarantine_token_key_file {path}: not hex digits") from None
    if len(key) < KEY_BYTES:
        raise TokenKeyError(f"quarantine_token_key_file {path}: key shorter than {KEY_BYTES} bytes")
    return key


def read_key(path: str) -> bytes:
    """The key in `path`; TokenKeyError if it is unreadable, empty, not a key or readable by others."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise TokenKeyError(f"quarantine_token_key_file {path}: {e.strerror}") from None
    with os.fdopen(fd, encoding="ascii", errors="replace") as f:
        if os.fstat(f.fileno()).st_mode & 0o007:
            raise TokenKeyError(f"quarantine_token_key_file {path} is accessible to others; "
                                f"chmod o-rwx it (or generate a new one)")
        return parse_key(f.readline(), path)


def load_key(settings: Any) -> bytes:
    return read_key(settings.quarantine_token_key_file)


def generate_key_file(path: str, owner: tuple[int, int] | None, *, force: bool = False) -> None:
    """Write a fresh key to `path` (mode 0600, chowned to `owner` when given)."""
    if os.path.lexists(path) and not force:
        raise TokenKeyError(f"{path} exists; replacing it voids every link already mailed (use --force)")
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        # Name the setting: the path is its value (or the default), and that is what to change.
        raise TokenKeyError(f"quarantine_token_key_file {path}: cannot create a file in {directory}: "
                            f"{e.strerror}") from None
    try:
        os.fchmod(fd, 0o600)     # whatever the umask
        if owner is not None:
            os.fchown(fd, *owner)
        os.write(fd, (secrets.token_bytes(KEY_BYTES).hex() + "\n").encode("ascii"))
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        raise TokenKeyError(f"quarantine_token_key_file {path}: cannot write it: {e.strerror}") from None
    finally:
        if fd >= 0:
            os.close(fd)
        if os.path.lexists(tmp):
            os.unlink(tmp)
