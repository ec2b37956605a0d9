"""`owlery managesieve`: run the ManageSieve server (RFC 5804), registered by owlery.app.cli.

Light at import (Twisted loads inside the command), like the other product CLIs.
Tests: tests/managesieve/test_sieve_connect_e2e.py runs `owlery managesieve` as a child process.
"""

from __future__ import annotations

import argparse

TYPE_CHECKING = False     # typing is not imported at run time (owlery.cliutil says why)
if TYPE_CHECKING:
    from typing import Any


def _build() -> Any:
    from sieve.managesieve.service import build
    return build


def register(sub: argparse._SubParsersAction) -> None:
    """Add this product's subcommands to the `owlery` parser."""
    from owlery.cliutil import add_daemon_command
    add_daemon_command(sub, "managesieve", "run the ManageSieve server (RFC 5804) users upload their "
                                           "Sieve scripts to", _build)
