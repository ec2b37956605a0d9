"""Sieve extlists (RFC 6134) at delivery: which list names a user's script may test, answered
from the directory's groups.

Owlery's lists are the directory's groups and aliases (files_aliases entries, LDAP groups).
A script names one as `delivery_sieve_list_prefix` followed by the group's address:

    require "extlists";
    if address :list "from" "tag:owlery,2026:list/staff@example.org" { fileinto "Staff"; }

Members are what Directory.list_member counts: the group's targets and, through member groups
and aliases, the mailboxes they reach. Rules, and why:
- Only groups of the recipient's own domain: a script must not become a way to probe who is
  in another customer's groups. Another domain's group is an unknown list.
- Unknown lists (no such group, another scheme, ":addrbook:default": Owlery keeps no personal
  address books) answer None: the engine then matches nothing and valid_ext_list is false.
- The directory not answering (DirectoryUnavailable, or it cannot be opened) raises
  SieveTempFailure: the delivery is deferred and retried, never run as if nobody were a member.
- A group too large to decide within directory_alias_targets_max (ListTooLarge) raises
  SieveRuntimeError: the script fails and the message is kept into INBOX, logged.
One log line per decision that is not a plain answer ("sieve extlists: ..."); plain answers at
debug level.
Talks to: owlery.directory (blocking; delivery runs in a thread). Tests: tests/sieve/test_extlists.py.
"""

from __future__ import annotations

from _collections_abc import Callable   # = collections.abc, without loading collections (LDA start-up)

from owlery.lazylog import get_logger
from owlery.settings import Str, setting

TYPE_CHECKING = False     # not `from typing import ...`: the LDA's start-up pays for every import (~1.7 ms)
if TYPE_CHECKING:
    from typing import Any

DELIVERY_SIEVE_LIST_PREFIX = setting(
    "delivery_sieve_list_prefix", Str, "tag:owlery,2026:list/",
    "Sieve extlists (RFC 6134): a list name made of this prefix and a group's address "
    "(tag:owlery,2026:list/staff@example.org) names that directory group or alias; only groups "
    "of the recipient's own domain can be tested. Empty: no lists.")

log = get_logger("owlery.delivery")


class DirectoryLists:
    """list_contains(name, value) for one recipient, from the directory.

    `directory` is the directory or a callable returning it (opened on first use: most
    scripts never ask); None, or a callable returning None, means no lists."""

    def __init__(self, settings: Any, user_address: str, directory: Any | Callable[[], Any]):
        self.settings = settings
        self.domain = user_address.rpartition("@")[2].lower()
        self.user = user_address
        self._directory = directory

    def _dir(self) -> Any:
        from sieve.errors import SieveTempFailure
        d = self._directory
        if callable(d) and not hasattr(d, "list_member"):
            try:
                d = d()
            except Exception as e:      # a directory that cannot be opened now: retry later
                log.warning("sieve extlists: user=%s directory unavailable: %s", self.user, e)
                raise SieveTempFailure(f"extlists: directory unavailable: {e}") from e
            self._directory = d
        return d

    def group_of(self, name: str) -> str | None:
        """The group address a list name names, or None (not ours, another domain)."""
        prefix = self.settings.delivery_sieve_list_prefix
        if not prefix or not name.lower().startswith(prefix.lower()):
            return None
        address = name[len(prefix):]
        local, at, domain = address.rpartition("@")
        if not at or not local or domain.lower().rstrip(".") != self.domain:
            return None
        return address

    def list_contains(self, name: str, value: str) -> bool | None:
        from owlery.directory.base import ListTooLarge
        from owlery.errors import DirectoryUnavailable
        from sieve.errors import SieveRuntimeError, SieveTempFailure
        group = self.group_of(name)
        if group is None:
            log.info("sieve extlists: user=%s list=%s unknown (not a group of %s)", self.user, name[:200],
                     self.domain)
            return None
        directory = self._dir()
        if directory is None:
            log.info("sieve extlists: user=%s list=%s unknown (no directory)", self.user, name[:200])
            return None
        try:
            answer = directory.list_member(group, value)
        except DirectoryUnavailable as e:
            log.warning("sieve extlists: user=%s list=%s directory unavailable: %s", self.user, group, e)
            raise SieveTempFailure(f"extlists: directory unavailable: {e}") from e
        except ListTooLarge as e:
            log.warning("sieve extlists: user=%s list=%s too large: %s", self.user, group, e)
            raise SieveRuntimeError(f"extlists: {e}") from e
        if answer is None:
            log.info("sieve extlists: user=%s list=%s unknown (no such group)", self.user, group)
        else:
            log.debug("sieve extlists: user=%s list=%s value=%s member=%s", self.user, group, value[:200], answer)
        return answer
