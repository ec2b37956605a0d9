"""What a ManageSieve session asks of the rest of Owlery: logins, the user's script storage, compiling.

`Accounts(settings)` implements session.ManageSieveBackend: `login()` checks the password with
owlery.directory.auth, resolves the address like delivery does (sieve.delivery.users:
directory entry or path templates, so the server writes exactly where lmtpd and the LDA read)
and opens that user's storage (sieve/managesieve/storage.py); `check()` compiles with the
Sieve engine's validator under the same settings as delivery (on SETACTIVE with the includes
resolved). Blocking: the adapter calls it from its thread pool.
Talks to: the directory, the file system, the Sieve engine. Tests: tests/managesieve/test_service.py,
tests/managesieve/test_sieve_connect_e2e.py, tests/managesieve/test_dovecot_differential_s19.py
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from owlery.maildir import MaildirError
from sieve.managesieve.session import Account, CheckResult
from sieve.managesieve.storage import SUFFIX, StorageError, for_user

log = logging.getLogger("owlery.managesieve")


class Accounts:
    """session.ManageSieveBackend over the directory, delivery's user resolution and the Sieve engine."""

    def __init__(self, settings: Any, *, authenticator: Any = None, resolver: Any = None):
        from owlery.directory.auth import Authenticator
        from sieve.delivery.users import UserResolver
        self.settings = settings
        self.authenticator = authenticator if authenticator is not None else Authenticator(settings)
        self.resolver = resolver if resolver is not None else UserResolver.from_settings(settings)

    def login(self, username: str, password: str) -> Account | None:
        address = self.authenticator.authenticate(username, password)     # DirectoryUnavailable
        if address is None:
            return None
        try:
            user = self.resolver.lookup(address)                              # DirectoryUnavailable
            if user is None:
                log.warning("managesieve: %s: right password but no mailbox in the directory; login refused",
                            address)
                return None
            return Account(user.address, for_user(user, self.settings))      # ValueError: no script path
        except MaildirError as e:                     # an address that cannot name a path
            raise ValueError(str(e)) from None

    def check(self, source: bytes, name: str, storage: Any = None, upload: bool = False) -> CheckResult:
        """Compile `source`; with `storage` its includes are resolved as delivery will:
        :personal from the user's scripts, :global from delivery_sieve_global_dir. On SETACTIVE
        a missing, circular or broken include refuses the activation; on PUTSCRIPT and
        CHECKSCRIPT (`upload`) a missing or circular one is a warning, since scripts may be
        uploaded in any order (RFC 6609 3.2), and only an included script that does not compile
        refuses it, as Pigeonhole's managesieved does.
        Tests: tests/managesieve/test_dovecot_differential_s19.py, tests/sieve/test_include_pigeonhole_s19.py"""
        from sieve.api import SieveCompileError, compile_script
        loader = None if storage is None else self._loader(storage)
        try:
            script = compile_script(source, name=name, settings=self.settings, loader=loader, upload=upload,
                                    max_errors=self.settings.managesieve_max_compile_errors)
        except SieveCompileError as e:
            errors = [str(d) for d in e.diagnostics if d.severity == "error" and d.line > 0]
            return CheckResult(errors=errors or [str(e)])
        return CheckResult(warnings=[str(w) for w in script.warnings])

    def _loader(self, storage: Any) -> Callable[[str, str], bytes | None]:
        """loader(name, location) for compile_script: an included script's source, or None."""
        from sieve.delivery.userfiles import UnsafeUserFile, read_user_file
        global_dirs = list(self.settings.delivery_sieve_global_dir)
        limit = self.settings.sieve_max_script_size

        def load(name: str, location: str) -> bytes | None:
            if location == "personal":
                try:
                    return storage.get(name)
                except StorageError as e:
                    if e.temporary:
                        raise
                    return None                     # NONEXISTENT, or a name no script can have
            for d in global_dirs:
                try:
                    return read_user_file(os.path.join(d, name + SUFFIX), None, limit)
                except FileNotFoundError:
                    continue
                except UnsafeUserFile as e:
                    log.warning("managesieve: global include ignored: %s", e)
                    return None
            return None
        return load

    def close(self) -> None:
        self.authenticator.close()
