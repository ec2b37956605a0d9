"""Command-line helpers every product's subcommands share: --config, --listen, loading settings.

The core half of the `owlery` command: products import these to build their subcommands;
the composition root (owlery/app/cli.py) registers them. Light on purpose (no Twisted,
pymilter or ldap3), since `owlery lda` runs once per message.
Tests: tests/core/test_cli.py
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False     # not `from typing import ...`: typing alone costs ~10 ms without site
if TYPE_CHECKING:
    import argparse

    from owlery import settings as settings_mod_t

EXIT_CONFIG = 1


def settings_module():
    """owlery.settings, imported on first use (the LDA's fast path never needs it)."""
    from owlery import settings
    return settings


def add_config_option(parser: argparse.ArgumentParser) -> None:
    settings_mod = settings_module()
    parser.add_argument("--config", "-c", metavar="FILE", default=None,
                        help=f"settings file (default {settings_mod.DEFAULT_CONFIG_PATH}; "
                             "built-in defaults when it does not exist)")


def add_listen_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", "-l", metavar="ENDPOINT", action="append", default=[],
                        help="listen here instead of the configured endpoints "
                             "(unix:/path, tcp:HOST:PORT, systemd:NAME); repeatable")


def load_settings(args: argparse.Namespace) -> settings_mod_t.Settings:
    """Load --config, exiting with a clear message and status 1 on a bad file."""
    settings_mod = settings_module()
    explicit = args.config is not None
    try:
        return settings_mod.load(args.config, missing_ok=not explicit)
    except settings_mod.SettingsError as e:
        print(f"owlery: {e}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
