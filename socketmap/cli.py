"""`owlery socketmap`: run the socketmap table server Postfix reads its virtual and transport tables from.

Registered by owlery.app.cli; imports nothing heavy at module top (Twisted, ldap3 load
inside the command).
Tests: `owlery socketmap` runs in tests/socketmap/test_postmap.py and tests/socketmap/test_service.py.
"""

from __future__ import annotations

import argparse

TYPE_CHECKING = False     # typing is not imported at run time (owlery.cliutil says why)
if TYPE_CHECKING:
    from typing import Any


def _build() -> Any:
    from socketmap.service import build
    return build


def register(sub: argparse._SubParsersAction) -> None:
    """Add this product's subcommand to the `owlery` parser."""
    from owlery.cliutil import add_daemon_command
    add_daemon_command(sub, "socketmap", "run the Postfix socketmap table server (virtual domains, "
                                         "mailboxes, aliases, transports, relay recipients)", _build,
                       workers_setting="socketmap_workers")
