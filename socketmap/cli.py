"""`owlery socketmap`: run the socketmap table server Postfix reads its virtual and transport tables from.

Registered by owlery.app.cli; imports nothing heavy at module top (Twisted, ldap3 load
inside the command).
Tests: `owlery socketmap` runs in tests/socketmap/test_postmap.py and tests/socketmap/test_service.py.
"""

from __future__ import annotations

import argparse


def _cmd_socketmap(args: argparse.Namespace) -> int:
    from owlery import cliutil as cli
    from owlery.daemon import run
    from socketmap.service import build
    cli.load_settings(args)          # a bad file fails here with file:line and status 1
    return run("socketmap", args.config, args.listen, "socketmap_listen", build, workers_setting="socketmap_workers")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this product's subcommand to the `owlery` parser."""
    from owlery.cliutil import add_config_option, add_listen_option
    p = sub.add_parser("socketmap", help="run the Postfix socketmap table server (virtual domains, "
                                         "mailboxes, aliases, transports, relay recipients)")
    add_config_option(p)
    add_listen_option(p)
    p.set_defaults(func=_cmd_socketmap)
