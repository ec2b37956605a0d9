"""Which mailboxes an upkeep command works on: the addresses and `--maildir` paths it was given.

Addresses are resolved as delivery resolves them (sieve/delivery/users.py: the directory's
mail path, uid and quota, else the templates and default quota); a path stands for itself,
with the default quota and `maildir_owner`. Shared by `owlery mailbox` and `owlery quota`.
Tests: tests/delivery/test_mailbox_expire.py, tests/delivery/test_quota_cli.py
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from owlery.maildir import Owner, Quota, owner_from_settings


@dataclasses.dataclass(frozen=True)
class Selected:
    """One mailbox to work on."""

    label: str                 # the address, or the path given
    maildir: str
    owner: Owner | None
    quota: Quota | None


def add_selection_options(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("addresses", nargs="*", metavar="ADDRESS", help=f"users whose mailboxes to {verb}")
    p.add_argument("--maildir", action="append", default=[], metavar="PATH",
                   help=f"a Maildir to {verb} (repeatable), besides the addresses")
    p.add_argument("--all-users", action="store_true", help="every mailbox the directory lists")


def selected(args: argparse.Namespace, settings: Any) -> list[Selected]:
    """The mailboxes named on the command line (and every one the directory lists with
    --all-users). Raises LookupError for an unknown address, DirectoryUnavailable when the
    directory cannot answer."""
    from sieve.delivery.users import UserResolver
    owner = owner_from_settings(settings)
    resolver = (UserResolver.from_settings(settings) if args.addresses or args.all_users
                else UserResolver(settings))
    out = [Selected(path, path, owner, resolver.default_quota()) for path in args.maildir]

    def add(user) -> None:
        who = owner
        if user.uid is not None:
            who = Owner(user.uid, user.gid if user.gid is not None else user.uid)
        out.append(Selected(user.address, user.maildir, who, user.quota))

    for address in args.addresses:
        user = resolver.lookup(address)
        if user is None:
            raise LookupError(f"{address}: unknown user")
        add(user)
    if args.all_users:
        for user in resolver.every_mailbox():
            add(user)
    return out
