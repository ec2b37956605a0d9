"""The `owlery` command: core subcommands (config, run, postfix) plus each product's own.

This is the one place that knows all three products (the composition root, see
owlery/app/__init__.py): it lists their CLI modules by name and imports them to register
their subcommands; the helpers they share live in owlery/cliutil.py. CLI modules stay light (no
Twisted, pymilter or ldap3 at import) so `owlery lda` starts fast. This module itself
imports only `sys` and owlery.cliutil at its top: `owlery lda` (one process per message) is dispatched in
main() before argparse or the settings module load (-X importtime: ~15 ms saved).
Tests: tests/core/test_cli.py
"""

from __future__ import annotations

import sys

from owlery.cliutil import EXIT_CONFIG, add_config_option, load_settings
from owlery.cliutil import settings_module as _settings

TYPE_CHECKING = False     # not `from typing import ...`: typing alone costs ~10 ms without site
if TYPE_CHECKING:
    import argparse
    from typing import Any

# The status of a command whose reader closed the pipe (128 + SIGPIPE, as the shell reports a
# command SIGPIPE killed).
EXIT_BROKEN_PIPE = 141

# Each module exposes register(subparsers); a subcommand sets `func(args) -> int`.
PRODUCT_CLI_MODULES = (
    "policyd.cli",
    "policyd.greylist_cli",
    "milters.cli",
    "milters.quarantine_cli",
    "milters.spam_cli",
    "milters.dmarc_cli",
    "sieve.cli",
    "sieve.delivery.cli",
    "sieve.managesieve.cli",
    "socketmap.cli",
    "web.cli",
    "sieve.delivery.mailbox_cli",
    "sieve.delivery.quota_cli",
    "owlery.app.stats",
    "owlery.app.check",
)


# --- owlery config ------------------------------------------------------------------

def _cmd_config_check(args: argparse.Namespace) -> int:
    settings_mod = _settings()
    settings_mod.import_all_sections()
    settings = load_settings(args)
    if settings.directory_backend != "ldap":
        # The map files (files_*, passwd_aliases) and what the backend needs are part of the
        # settings: what stops the daemons at start is said here too, as they say it. LDAP
        # is not asked: a server down now is no mistake in the file.
        from owlery.directory import open_backend
        try:
            open_backend(settings)
        except (ValueError, settings_mod.SettingsError) as e:     # MapError is a ValueError
            print(f"owlery: {e}", file=sys.stderr)
            return EXIT_CONFIG
    from owlery.app.passwords_check import password_file_findings
    errors, warnings = password_file_findings(settings)
    for line in errors:
        print(f"owlery: {line}", file=sys.stderr)
    if errors:
        return EXIT_CONFIG
    from owlery.app.consistency import disagreements
    for line in warnings + disagreements(settings):
        print(f"owlery: warning: {line}", file=sys.stderr)
    print(f"owlery: {settings.path or 'no config file'}: OK")
    return 0


def _cmd_config_show(args: argparse.Namespace) -> int:
    settings_mod = _settings()
    settings_mod.import_all_sections()
    settings = load_settings(args)
    for decl, value in settings.effective(only_non_default=args.non_default):
        if value is None:
            if not args.non_default:
                print(f"# {decl.name} is unset")
            continue
        print(f"{decl.name} = {settings_mod.render_toml_value(decl, value)}")
    return 0


def _cmd_config_doc(args: argparse.Namespace) -> int:
    settings_mod = _settings()
    settings_mod.import_all_sections()
    print(settings_mod.describe(decl for _, decl in sorted(settings_mod.declared().items())))
    return 0


def default_config_text() -> str:
    """A settings file listing every setting, commented out at its default (like postconf -d)."""
    settings_mod = _settings()
    settings_mod.import_all_sections()
    lines = ["# Owlery settings. Every line below is commented out at its built-in default;",
             "# uncomment and change what you need, then run: owlery config check", ""]
    section = None
    for name, decl in sorted(settings_mod.declared().items()):
        if decl.section != section:
            section = decl.section
            lines.append(f"# --- {section} ---")
        unit = f" ({decl.unit})" if decl.unit else ""
        for doc_line in _wrap(decl.doc, 86):
            lines.append(f"# {doc_line}")
        if decl.default is None:
            lines.append(f"#{name} =    # {decl.type.name}{unit}, unset by default")
        else:
            lines.append(f"#{name} = {settings_mod.render_toml_value(decl, decl.default)}"
                         f"    # {decl.type.name}{unit}")
        lines.append("")
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    import textwrap
    return textwrap.wrap(text, width) or [""]


def _cmd_config_init(args: argparse.Namespace) -> int:
    import os
    path = args.config or _settings().DEFAULT_CONFIG_PATH
    if os.path.exists(path) and not args.force:
        print(f"owlery: {path} exists; not overwritten (use --force)", file=sys.stderr)
        return 1
    write_default_config(path)
    print(f"owlery: wrote {path}")
    return 0


def write_default_config(path: str) -> None:
    """The commented-out defaults, written atomically and 0640 (the file may hold passwords)."""
    import os
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o640)
        f.write(default_config_text())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --- owlery postfix / run -----------------------------------------------------------

def _cmd_postfix(args: argparse.Namespace) -> int:
    from owlery.app import postfix, starter
    settings = load_settings(args)
    if args.postscreen:
        print(postfix.render_postscreen(settings))
        return 0
    domains = args.domain or _directory_domains(settings, args.role) or [starter.hosted_domain().name]
    print(postfix.render(settings, domains=domains, role=args.role))
    return 0


def _directory_domains(settings, role: str = "backend") -> list[str]:
    """The hosted domains the directory lists ([] when it cannot list them or is down, or
    when Postfix asks the socketmap server for them)."""
    from owlery.app.postfix import uses_socketmap
    from owlery.directory import open_directory
    if uses_socketmap(settings, role):
        return []
    try:
        directory = open_directory(settings)
        try:
            found = directory.hosted_domains()
        finally:
            directory.close()
    except Exception as e:  # noqa: BLE001  the printed lines then fall back, and say so
        print(f"owlery: cannot list the directory's domains ({e}); printing a placeholder",
              file=sys.stderr)
        return []
    if found is None:
        print("owlery: the directory cannot list its domains (set ldap_domains); "
              "printing a placeholder for virtual_mailbox_domains", file=sys.stderr)
        return []
    return found


def _cmd_run(args: argparse.Namespace) -> int:
    import os

    from owlery.app import starter, supervisor
    default_path = _settings().DEFAULT_CONFIG_PATH
    path = args.config or default_path
    domain = (starter.HostedDomain(args.domain[0], "--domain") if args.domain
              else starter.hosted_domain())
    if not os.path.exists(path):
        layout = starter.StarterLayout.for_config(path, default_path)
        try:
            written = starter.write_starter(layout, domain, default_config_text())
        except OSError as e:
            print(f"owlery: cannot write the starter settings: {e}", file=sys.stderr)
            return EXIT_CONFIG
        for written_path in written:
            print(f"owlery: wrote {written_path}", file=sys.stderr)
        print(f"owlery: hosted domain {domain.name} ({domain.source})", file=sys.stderr)
    args.config = path
    settings = load_settings(args)
    return supervisor.run_all(path, settings, domains=args.domain or _directory_domains(settings) or [domain.name],
                              notes=_try_it_lines(settings, domain.name))


def _try_it_lines(settings, domain: str) -> list[str]:
    """How to deliver one message to postmaster@domain, when the directory has that mailbox."""
    from owlery.app import starter
    from sieve.delivery.users import UserResolver
    address = f"postmaster@{domain}"
    try:
        user = UserResolver.from_settings(settings).lookup(address)
    except Exception as e:  # noqa: BLE001  only a hint is lost; the daemons report their own errors
        return [f"owlery: could not look up {address} for a test delivery: {e}"]
    if user is None:
        return [f"owlery: the directory has no mailbox {address}; add one to try a delivery"]
    return starter.try_it(settings, address, user.maildir)


def build_parser() -> argparse.ArgumentParser:
    import argparse
    import importlib
    parser = argparse.ArgumentParser(prog="owlery", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    config = sub.add_parser("config", help="check and show settings")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION")
    config_sub.required = True
    p = config_sub.add_parser("check", help="validate the settings file; exit 1 on error")
    add_config_option(p)
    p.set_defaults(func=_cmd_config_check)
    p = config_sub.add_parser("show", help="print effective settings")
    add_config_option(p)
    p.add_argument("-n", dest="non_default", action="store_true", help="only settings that differ from defaults")
    p.set_defaults(func=_cmd_config_show)
    p = config_sub.add_parser("doc", help="print every setting with type, default, unit and doc")
    p.set_defaults(func=_cmd_config_doc)
    p = config_sub.add_parser("init", help="write a settings file with every default commented out")
    add_config_option(p)
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=_cmd_config_init)

    p = sub.add_parser("postfix", help="print the main.cf and master.cf lines that wire Owlery into Postfix")
    add_config_option(p)
    p.add_argument("--domain", action="append", help="a hosted domain for virtual_mailbox_domains (repeatable)")
    p.add_argument("--postscreen", action="store_true",
                   help="print postscreen(8) in front of smtpd instead, with the dnsbl_* lists")
    p.add_argument("--role", choices=("backend", "relay"), default="backend",
                   help="backend (default): this host keeps the mailboxes; relay: an MX in front of "
                        "back ends (relay_domains, relay_recipient_maps, transport_maps from the socketmap)")
    p.set_defaults(func=_cmd_postfix)

    p = sub.add_parser("run", help="start policy daemon, milter and LMTP server together "
                                   "(writes a default settings file if none exists)")
    add_config_option(p)
    p.add_argument("--domain", action="append", help="a hosted domain for the printed Postfix lines")
    p.set_defaults(func=_cmd_run)

    for name in PRODUCT_CLI_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> Any:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["lda"]:
        # Fast path, before anything heavy is imported: the LDA runs once per message, so skip
        # building every product's parser, and hand the message to a running lmtpd when
        # lda_lmtp_endpoint is set (sieve.delivery.lda_lmtp is standard library only).
        from sieve.delivery.lda_lmtp import main as lda_fast
        return lda_fast(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # `owlery config show | head`: the reader went away. Say nothing (no traceback), as
        # postconf does, and keep the interpreter's last flush from complaining again.
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return status


if __name__ == "__main__":
    sys.exit(main())
