"""Command-line helpers every product's subcommands share: --config, --listen, loading settings,
a progress bar.

The core half of the `owlery` command: products import these to build their subcommands;
the composition root (owlery/app/cli.py) registers them. Light on purpose (no Twisted,
pymilter or ldap3), since `owlery lda` runs once per message.
Tests: tests/core/test_cli.py, tests/delivery/test_mailbox_expire.py (the progress bar)
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False     # not `from typing import ...`: typing alone costs ~10 ms without site
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

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


def add_listen_option(parser: argparse.ArgumentParser, *, repeatable: bool = True) -> None:
    """--listen ENDPOINT; `repeatable` False for a daemon that listens on one endpoint (the
    milter: libmilter takes one), so its help does not promise more."""
    parser.add_argument("--listen", "-l", metavar="ENDPOINT", action="append", default=[],
                        help="listen here instead of the configured endpoints "
                             "(unix:/path, tcp:HOST:PORT, systemd:NAME); "
                             + ("repeatable" if repeatable else "one endpoint only"))


def load_settings(args: argparse.Namespace) -> settings_mod_t.Settings:
    """Load --config, exiting with a clear message and status 1 on a bad file."""
    settings_mod = settings_module()
    explicit = args.config is not None
    try:
        return settings_mod.load(args.config, missing_ok=not explicit)
    except settings_mod.SettingsError as e:
        print(f"owlery: {e}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def add_daemon_command(sub: argparse._SubParsersAction, program: str, help: str,
                       load_build: Callable[[], Callable[..., Any]], *,
                       workers_setting: str | None = None) -> argparse.ArgumentParser:
    """Add `owlery <program>` (with --config and --listen): load the settings (a bad file fails
    with file:line and status 1), then run the Twisted daemon (owlery.daemon.run) on the
    `<program>_listen` endpoints with the application builder `load_build()` returns (it
    imports the product's service module: Twisted loads inside the command, not at
    registration). `workers_setting`: the product's `*_workers` setting, if it has one."""
    parser = sub.add_parser(program, help=help)
    add_config_option(parser)
    add_listen_option(parser)

    def command(args: argparse.Namespace) -> int:
        from owlery.daemon import run
        load_settings(args)
        return run(program, args.config, args.listen, f"{program}_listen", load_build(),
                   workers_setting=workers_setting)

    parser.set_defaults(func=command)
    return parser


class ProgressBar:
    """A one-line progress bar on a terminal: `[#####.....] 12/40 learned=10 known=2 failed=0`.

    `enabled` False: draws nothing (not a terminal, --progress never). Anything else printed
    while the bar is up (a per-item line, a warning, on stdout or stderr: one screen) must
    come after `clear()`, or it is glued to the bar; the next `update()` draws it again.
    Used by `owlery spam learn` and `owlery mailbox expire`."""

    def __init__(self, total: int, stream, enabled: bool, width: int = 30):
        self.total, self.stream, self.enabled, self.width = total, stream, enabled, width
        self._last = 0.0
        self._drawn = 0           # characters of the bar on the screen now

    def update(self, done: int, note: str = "", force: bool = False) -> None:
        if not self.enabled:
            return
        import time
        now = time.monotonic()
        if not force and self._drawn and now - self._last < 0.1 and done != self.total:
            return
        self._last = now
        filled = self.width * done // max(self.total, 1)
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} {note}".rstrip()
        self.stream.write("\r" + line + " " * max(self._drawn - len(line), 0))
        self.stream.flush()
        self._drawn = max(len(line), self._drawn)

    def clear(self) -> None:
        """Blank the bar's line and put the cursor at its start (before printing a line)."""
        if self.enabled and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
            self._drawn = 0

    def finish(self) -> None:
        """Leave the last state drawn and end its line."""
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0


class FileRefused(Exception):
    """A file a command reads cannot be used: missing, unreadable, not a regular file, too big."""


def read_regular_file(path: str, limit: int) -> bytes:
    """A regular file's bytes, at most `limit` (FileRefused otherwise, with the path and the
    reason), for commands that read another program's configuration. O_NONBLOCK: a FIFO put
    in place of the file neither blocks the open nor is read. Tests: tests/core/test_cli.py"""
    import os
    import stat
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise FileRefused(f"{path}: {e.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileRefused(f"{path}: not a regular file")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise FileRefused(f"{path}: {e.strerror}") from None
    if len(data) > limit:
        raise FileRefused(f"{path}: larger than {limit} bytes")
    return data
