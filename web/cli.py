"""`owlery web`: run the quarantine web application, registered by owlery.app.cli.

Light at import (Twisted loads inside the command), like the other product CLIs.
Tests: tests/web/test_service.py and tests/e2e/test_web_browser.py run `owlery web` as a child process.
"""

from __future__ import annotations

import argparse


def _cmd_web(args: argparse.Namespace) -> int:
    from owlery import cliutil as cli
    from owlery.daemon import run
    cli.load_settings(args)          # a bad file fails here with file:line and status 1
    from web.service import build
    return run("web", args.config, args.listen, "web_listen", build)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this product's subcommands to the `owlery` parser."""
    from owlery.cliutil import add_config_option, add_listen_option
    p = sub.add_parser("web", help="run the quarantine web application (recipients release their own "
                                   "mail, admins search, release, delete and read the audit log)")
    add_config_option(p)
    add_listen_option(p)
    p.set_defaults(func=_cmd_web)
