"""`owlery managesieve`: run the ManageSieve server (RFC 5804), registered by owlery.app.cli.

Light at import (Twisted loads inside the command), like the other product CLIs.
Tests: tests/managesieve/test_sieve_connect_e2e.py runs `owlery managesieve` as a child process.
"""

from __future__ import annotations

import argparse


def _cmd_managesieve(args: argparse.Namespace) -> int:
    from owlery import cliutil as cli
    from owlery.daemon import run
    cli.load_settings(args)          # a bad file fails here with file:line and status 1
    from sieve.managesieve.service import build
    return run("managesieve", args.config, args.listen, "managesieve_listen", build)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this product's subcommands to the `owlery` parser."""
    from owlery.cliutil import add_config_option, add_listen_option
    p = sub.add_parser("managesieve", help="run the ManageSieve server (RFC 5804) users upload their "
                                           "Sieve scripts to")
    add_config_option(p)
    add_listen_option(p)
    p.set_defaults(func=_cmd_managesieve)
