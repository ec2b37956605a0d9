"""A real local Unix account for a test (root only): useradd now, userdel afterwards.

For the passwd directory tests (tests/delivery/test_lda_passwd.py,
tests/e2e/test_passwd_local_postfix.py): a unique name, no login shell, the home given (not
created: the test makes it with the owner and modes it needs), removed whatever the test did.
"""

from __future__ import annotations

import contextlib
import pwd
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def temporary_account(home_parent: Path, prefix: str = "owlt") -> Iterator[pwd.struct_passwd]:
    """The account's passwd entry; its home is home_parent/NAME (not created)."""
    name = prefix + secrets.token_hex(4)
    subprocess.run(["useradd", "--no-create-home", "--home-dir", str(home_parent / name), "--shell",
                    "/usr/sbin/nologin", "--comment", "owlery test account", name],
                   check=True, capture_output=True, timeout=60)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True, timeout=60)
