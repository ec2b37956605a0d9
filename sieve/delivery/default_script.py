"""The site's default Sieve script (`delivery_sieve_default`): run for a user who has no active script.

Like Pigeonhole's sieve_default: when the user's active script path (the symbolic link
ManageSieve maintains, see sieve/managesieve/storage.py) does not exist, delivery runs the
default script in its place, between the global before and after scripts; once the user
activates a script of their own, theirs runs instead (the default is not run as well; a
user who wants it can `include :global` it). A dangling link (the active script deleted by
hand) counts as "no script". Only the existence of the user's path is looked at here; a user
script that does not compile is the user's (delivery logs it and keeps the message), it does
not bring the default back.
Wiring: sieve.delivery.executor.DeliveryExecutor.plan calls `user_or_default(user.sieve_script,
settings)` where it now appends user.sieve_script.
Talks to: the file system (one stat). Tests: tests/managesieve/test_default_script.py
"""

from __future__ import annotations

import os

from owlery.settings import Str, setting

TYPE_CHECKING = False     # not `from typing import ...`: the LDA's start-up pays for every import (~1.7 ms)
if TYPE_CHECKING:
    from typing import Any

DELIVERY_SIEVE_DEFAULT = setting(
    "delivery_sieve_default", Str, None,
    "Sieve script run for users without an active script of their own (like Pigeonhole's "
    "sieve_default), between delivery_sieve_before and delivery_sieve_after; a user's activated "
    "script replaces it. Unset: such users get a plain keep.")


def user_or_default(user_script: str | None, settings: Any) -> str | None:
    """The script to run as the user's: theirs when its path exists (following the active
    link), else delivery_sieve_default (None when unset)."""
    if user_script:
        try:
            os.stat(user_script)
            return user_script
        except FileNotFoundError:
            pass
        except NotADirectoryError:
            pass
        except OSError:
            return user_script            # unreadable: let delivery report it (a temporary failure)
    return settings.delivery_sieve_default
