"""Subcommands of `owlery` for the milter: `owlery milter`, `owlery milter import-amavis`,
`owlery dkim genkey` and `owlery dkim import-opendkim`.

Registered by owlery.app.cli; imports nothing heavy at module top (pymilter and dkimpy are
imported inside the commands).
Tests: tests/milters/test_units.py and tests/milters/test_low_hardening.py (`owlery dkim genkey`:
the key's owner and mode), tests/milters/test_dkim_import.py (`owlery dkim import-opendkim`),
tests/milters/test_amavis_import.py (`owlery milter import-amavis`);
`owlery milter` runs in
tests/milters/test_miltertest.py, tests/milters/test_milter_stop.py and
tests/milters/test_milter_reload.py (SIGHUP re-reads --config) through tests/harness/owlery_milter.py.
"""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False     # typing is not imported at run time (owlery.cliutil says why)
if TYPE_CHECKING:
    from typing import Any


def _cmd_milter(args: argparse.Namespace) -> int:
    from owlery import settings as settings_mod
    from owlery.cliutil import load_settings
    from owlery.settings import SettingsError

    settings = load_settings(args)
    if len(args.listen) > 1:
        print("owlery: the milter listens on one endpoint only", file=sys.stderr)
        return 1
    listen = args.listen[0] if args.listen else None
    from milters import adapter
    from milters.stages import ConfigError

    def reload_settings() -> settings_mod.Settings:
        # SIGHUP: the same file as at start, read the same way (SettingsError if bad).
        return settings_mod.load(args.config, missing_ok=args.config is None)
    try:
        return adapter.serve(settings, listen, reload_settings)
    except (ConfigError, SettingsError, ValueError) as e:
        print(f"owlery: milter: {_located(settings, str(e))}", file=sys.stderr)
        return 1


def _located(settings: Any, text: str) -> str:
    """`text` with the settings file and line in front when it starts with the name of a
    setting the file sets ("dkim_sign_keys.example.org: cannot read ..."), as a bad value is
    reported: the postmaster sees which line to change."""
    name = text.split(":", 1)[0].split(".", 1)[0].strip()
    line = settings.line_of(name) if name.isidentifier() else None
    return f"{settings.path}:{line}: {text}" if line and settings.path else text


def _cmd_genkey(args: argparse.Namespace) -> int:
    import os

    from owlery.cliutil import load_settings

    from milters import dkimkeys
    settings = load_settings(args)
    # The key goes to the milter's user, so that the milter (not only root) can read it.
    owner = args.owner if args.owner is not None else settings.daemon_user
    group = settings.daemon_group if args.owner is None else None
    # The milter looks keys up in dkim_key_directory: write them there unless told otherwise.
    directory = args.directory if args.directory is not None else settings.dkim_key_directory
    try:
        path, txt = dkimkeys.generate(args.domain, args.selector, directory,
                                      algorithm=args.type, bits=args.bits, force=args.force,
                                      owner=owner, group=group)
    except (ValueError, FileExistsError) as e:
        print(f"owlery: dkim genkey: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        # Name what to change: the setting (where it is set) or --directory.
        from owlery.settings import DEFAULT_CONFIG_PATH
        line = settings.line_of("dkim_key_directory")
        if args.directory is not None:
            source = "--directory"
        elif line:
            source = f"dkim_key_directory of {settings.path}:{line}"
        else:
            source = (f"default dkim_key_directory; set it in {settings.path or DEFAULT_CONFIG_PATH} "
                      "or give --directory")
        print(f"owlery: dkim genkey: cannot write {directory} ({source}): {e.strerror or e}",
              file=sys.stderr)
        return 1
    st = os.stat(path)
    print(f"; private key written to {path} (mode 0600, owned by {dkimkeys.user_name(st.st_uid)})", file=sys.stderr)
    if st.st_uid == 0 and owner is None and os.geteuid() == 0:
        print("; warning: the key belongs to root; a milter that does not start as root cannot read it "
              "(set daemon_user, or use --owner USER)", file=sys.stderr)
    elif not dkimkeys.can_reach(path, st.st_uid, st.st_gid):
        print(f"; warning: {dkimkeys.user_name(st.st_uid)} cannot get through the directories above {path}",
              file=sys.stderr)
    print(txt)
    return 0


def _cmd_import_opendkim(args: argparse.Namespace) -> int:
    """Exit 0: every rule imported; 1: some skipped (each said on stderr, with the reason);
    2: OpenDKIM's configuration, a table or a key file could not be read."""
    import json
    import os

    from owlery import settings as settings_mod

    from milters import dkim_import, dkimkeys
    if (args.keytable is None) != (args.signingtable is None):
        print("owlery: dkim import-opendkim: --keytable and --signingtable go together", file=sys.stderr)
        return 2
    try:
        settings = settings_mod.load(args.config, missing_ok=args.config is None)
    except settings_mod.SettingsError as e:
        print(f"owlery: {e}", file=sys.stderr)
        return 2
    # Without --opendkim-conf, tables given alone are read alone (not mixed with /etc's file).
    conf = args.opendkim_conf or (None if args.keytable else "/etc/opendkim.conf")
    directory = args.directory if args.directory is not None else settings.dkim_key_directory
    owner_name, group = settings.daemon_user, settings.daemon_group   # as genkey: the milter's user
    try:
        ids = dkimkeys._owner_ids(owner_name, group)
        owner = dkimkeys.KeyOwner.for_daemon(owner_name, group)
    except ValueError as e:
        print(f"owlery: dkim import-opendkim: {e}", file=sys.stderr)
        return 1
    def table(spec: str | None) -> str | None:
        # A bare relative path on the command line is a file here, not (as in opendkim.conf) a list.
        if spec is None or dkim_import.dataset_kind(spec)[0] != "csl" or spec.startswith("csl:"):
            return spec
        return "file:" + os.path.abspath(spec)
    try:
        source = dkim_import.read_opendkim(conf, dkim_import.read_text, keytable=table(args.keytable),
                                           signingtable=table(args.signingtable))
    except dkim_import.OpenDkimUnreadable as e:
        print(f"owlery: dkim import-opendkim: {e}", file=sys.stderr)
        return 2
    plan = dkim_import.plan(source, directory, dkim_import.key_checker(settings.dkim_min_key_bits))
    for line in plan.skipped:
        print(f"# skipped: {line}", file=sys.stderr)
    for line in plan.notes:
        print(f"# note: {line}", file=sys.stderr)
    if settings.dkim_sign_keys and plan.table:
        print(f"# note: {args.config or settings_mod.DEFAULT_CONFIG_PATH} already sets dkim_sign_keys "
              f"({', '.join(sorted(settings.dkim_sign_keys))}): merge the line below into it", file=sys.stderr)
    for c in plan.copies:
        if c.exists:
            print(f"# key: {c.target} already holds {c.source}", file=sys.stderr)
        elif args.dry_run:
            print(f"# key: would copy {c.source} -> {c.target}", file=sys.stderr)
    if not args.dry_run:
        try:
            done = dkim_import.apply(plan, directory, ids, owner, settings.dkim_min_key_bits)
        except (OSError, ValueError, dkim_import.KeyRefused, dkim_import.OpenDkimUnreadable) as e:
            print(f"owlery: dkim import-opendkim: {e}", file=sys.stderr)
            return 1
        for line in done:
            print(f"# key: copied {line} (mode 0600, owned by {dkimkeys.user_name(owner.uid)})", file=sys.stderr)
    if plan.table:
        if os.path.abspath(directory) != os.path.abspath(settings.dkim_key_directory):
            print(f"dkim_key_directory = {json.dumps(os.path.abspath(directory))}")
        print(plan.toml())
    elif not plan.skipped:
        print("# nothing to import: this OpenDKIM configuration signs nothing", file=sys.stderr)
        return 1
    if plan.unreadable:
        return 2
    return 1 if plan.skipped else 0


def _cmd_import_amavis(args: argparse.Namespace) -> int:
    """Exit 0: everything carried over; 1: something not (said on stderr, with the reason);
    2: amavis' configuration could not be read."""
    from owlery import settings as settings_mod

    from milters import amavis_import
    try:
        settings = settings_mod.load(args.config, missing_ok=args.config is None)
    except settings_mod.SettingsError as e:
        print(f"owlery: {e}", file=sys.stderr)
        return 2
    return amavis_import.command(args.amavis_conf, args.define, settings, sys.stdout, sys.stderr)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this product's subcommands to the `owlery` parser."""
    from owlery.cliutil import add_config_option, add_listen_option

    p = sub.add_parser("milter", help="run the milter (DKIM/ARC/DMARC, content stages) for Postfix")
    add_config_option(p)
    add_listen_option(p, repeatable=False)
    p.set_defaults(func=_cmd_milter)
    # `owlery milter` alone runs the milter; `owlery milter ACTION` are tools about it.
    milter_sub = p.add_subparsers(dest="milter_command", metavar="ACTION")
    milter_sub.required = False
    q = milter_sub.add_parser("import-amavis",
                              help="print the Owlery milter settings equivalent to an amavisd-new configuration "
                                   "(what cannot be carried over: on stderr, exit 1); writes nothing")
    # -c before or after the action: SUPPRESS keeps the action's own default from undoing
    # `owlery milter -c FILE import-amavis` (argparse sets a sub-parser's defaults last)
    q.add_argument("--config", "-c", metavar="FILE", default=argparse.SUPPRESS,
                   help="Owlery's settings file, for dkim_key_directory and daemon_user "
                        "(default /etc/owlery/owlery.toml; built-in defaults when it does not exist)")
    q.add_argument("--amavis-conf", metavar="PATH", action="append", default=None,
                   help="amavisd.conf, or a conf.d directory (its files in name order); repeat to read several "
                        "in order (default: /usr/share/amavis/conf.d then /etc/amavis/conf.d, as Debian's "
                        "amavisd reads them, else /etc/amavisd.conf or /etc/amavis/amavisd.conf)")
    q.add_argument("--define", metavar="NAME=VALUE", action="append", default=[],
                   help="the value of an amavis scalar the files compute by running a command (Debian: "
                        "--define mydomain=example.org --define myhostname=mx.example.org)")
    q.set_defaults(func=_cmd_import_amavis)

    dkim = sub.add_parser("dkim", help="DKIM key tools")
    dkim_sub = dkim.add_subparsers(dest="dkim_command", metavar="ACTION")
    dkim_sub.required = True
    p = dkim_sub.add_parser("genkey", help="write a DKIM private key (mode 0600, owned by the milter's user) "
                                           "and print its DNS TXT record")
    add_config_option(p)
    p.add_argument("domain", help="signing domain (d=), e.g. example.org")
    p.add_argument("selector", help="selector (s=), e.g. 2025a")
    p.add_argument("--type", choices=("rsa", "ed25519"), default="rsa", help="key type (default rsa)")
    p.add_argument("--bits", type=int, default=2048, help="RSA key size (default 2048, at least 1024)")
    p.add_argument("--directory", "-d", default=None,
                   help="where to write DOMAIN.SELECTOR.key (default: dkim_key_directory, where the "
                        "milter reads keys; /etc/owlery/dkim unless set)")
    p.add_argument("--force", action="store_true", help="overwrite an existing key file")
    p.add_argument("--owner", metavar="USER",
                   help="user the key is given to when run as root (default: daemon_user, with "
                        "daemon_group; the milter runs as it and alone reads the key)")
    p.set_defaults(func=_cmd_genkey)
    p = dkim_sub.add_parser("import-opendkim",
                            help="take over OpenDKIM's signing keys and rules: copy the keys, print dkim_sign_keys")
    add_config_option(p)
    p.add_argument("--opendkim-conf", metavar="FILE",
                   help="OpenDKIM's configuration (default /etc/opendkim.conf unless --keytable is given)")
    p.add_argument("--keytable", metavar="DATASET", help="KeyTable to read instead of the configuration's "
                                                         "(file:PATH or PATH)")
    p.add_argument("--signingtable", metavar="DATASET", help="SigningTable to read instead of the configuration's "
                                                             "(file:PATH, refile:PATH or PATH)")
    p.add_argument("--directory", "-d", default=None,
                   help="where to copy DOMAIN.SELECTOR.key (default: dkim_key_directory)")
    p.add_argument("--dry-run", "-n", action="store_true", help="say what would be done; write nothing")
    p.set_defaults(func=_cmd_import_opendkim)
