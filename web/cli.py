"""`owlery web`: run the quarantine web application, registered by owlery.app.cli.

Light at import (Twisted loads inside the command), like the other product CLIs.
Tests: tests/web/test_service.py and tests/e2e/test_web_browser.py run `owlery web` as a child process.
"""

from __future__ import annotations

import argparse

TYPE_CHECKING = False     # typing is not imported at run time (owlery.cliutil says why)
if TYPE_CHECKING:
    from typing import Any


def _build() -> Any:
    from web.service import build
    return build


def register(sub: argparse._SubParsersAction) -> None:
    """Add this product's subcommands to the `owlery` parser."""
    from owlery.cliutil import add_daemon_command
    add_daemon_command(sub, "web", "run the quarantine web application (recipients release their own "
                                   "mail, admins search, release, delete and read the audit log)", _build)
