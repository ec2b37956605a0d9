"""Secrets in settings: read from a `*_file` twin, and kept out of log lines.

Every setting that holds a secret (a password, a URL or DSN that may carry one, a key)
has a `NAME_file` twin naming a file whose first line is the value, so the settings
file itself can stay readable by the daemons' group without the secret in it. Setting
both is an error. `redact()` masks the userinfo of URLs (`redis://:pw@host` becomes
`redis://:***@host`) and libpq `password=` keywords in any text bound for a log line or
an error message.
Talks to: the file system (the secret files). Tests: tests/core/test_secrets.py
"""

from __future__ import annotations

import os
import re
from typing import Any

_URL_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]*:)[^@\s/]*@")
_KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|\S+)", re.I)


class SecretError(ValueError):
    """A secret setting that cannot be used (both forms set, unreadable file)."""


def redact(text: str) -> str:
    """`text` with URL passwords and libpq `password=` values replaced by ***."""
    text = _URL_USERINFO.sub(r"\g<head>***@", text)
    return _KEYWORD_PASSWORD.sub(r"\g<head>***", text)


def read_secret(settings: Any, name: str) -> str | None:
    """The value of secret setting `name`, from itself or from the file `name_file` names."""
    value = getattr(settings, name)
    path = getattr(settings, f"{name}_file")
    if value is not None and path is not None:
        raise SecretError(f"set {name} or {name}_file, not both")
    if path is None:
        return value
    return read_secret_file(path, f"{name}_file")


def read_secret_file(path: str, what: str) -> str:
    """The first line of the secret file `path` (the setting `what` names it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise SecretError(f"{what} {path}: {e.strerror}") from None
    with os.fdopen(fd, encoding="utf-8") as f:
        if os.fstat(f.fileno()).st_mode & 0o004:
            raise SecretError(f"{what} {path} is readable by everyone; chmod o-r it")
        line = f.readline().rstrip("\r\n")
    if not line:
        raise SecretError(f"{what} {path} is empty")
    return line
