"""`owlery sieve check|test|testsuite|extensions|import-dovecot`: compile-check a script, dry-run
it on a message, run .svtest files, list the supported extensions with their RFCs, turn a
Dovecot/Pigeonhole configuration into Owlery settings (registered into the `owlery` command by
owlery.app.cli).

Talks to: sieve.api, sieve.testsuite, sieve.dovecot_import (imported inside the commands to keep
start-up light); doveconf (a child process, for import-dovecot). Tests: tests/sieve/test_cli.py,
tests/sieve/test_cli_extensions.py, tests/sieve/test_dovecot_import.py.
"""

from __future__ import annotations

import argparse
import os
import sys


def _settings(args):
    from owlery.cliutil import load_settings
    return load_settings(args)


def _dir_loader(include_dir: str | None, global_dir: str | None):
    if include_dir is None and global_dir is None:
        return None

    def load(name: str, location: str):
        base = global_dir if location == "global" else include_dir
        if base is None:
            return None
        try:
            with open(os.path.join(base, name + ".sieve"), "rb") as f:
                return f.read()
        except OSError:
            return None
    return load


def cmd_check(args: argparse.Namespace) -> int:
    from sieve.api import SieveCompileError, compile_script
    settings = _settings(args)
    status = 0
    for path in args.script:
        try:
            with open(path, "rb") as f:
                src = f.read(settings.sieve_max_script_size + 1)
        except OSError as e:
            print(f"{path}: error: cannot read: {e.strerror}", file=sys.stderr)
            status = 1
            continue
        try:
            script = compile_script(src, name=path, settings=settings,
                                    loader=_dir_loader(args.include_dir, args.global_dir))
        except SieveCompileError as e:
            for d in e.diagnostics:
                if d.message not in ("validation failed", "parse failed"):
                    print(str(d), file=sys.stderr)
            status = 1
            continue
        for w in script.warnings:
            print(str(w), file=sys.stderr)
        print(f"{path}: OK (requires: {', '.join(sorted(script.requires - {'core'})) or 'nothing'})")
    return status


def cmd_test(args: argparse.Namespace) -> int:
    import datetime as dt

    from sieve.api import Envelope, MemoryHost, SieveCompileError, compile_script, run
    settings = _settings(args)
    try:
        with open(args.script, "rb") as f:
            src = f.read(settings.sieve_max_script_size + 1)
        if args.message == "-":
            message = sys.stdin.buffer.read()
        else:
            with open(args.message, "rb") as f:
                message = f.read()
    except OSError as e:
        print(f"owlery sieve test: {e.filename}: {e.strerror}", file=sys.stderr)
        return 1
    loader = _dir_loader(args.include_dir, args.global_dir)
    try:
        script = compile_script(src, name=args.script, settings=settings, loader=loader)
    except SieveCompileError as e:
        for d in e.diagnostics:
            if d.message not in ("validation failed", "parse failed"):
                print(str(d), file=sys.stderr)
        return 1
    host = MemoryHost(mailboxes=tuple(["INBOX"] + (args.mailbox or [])))
    env = Envelope(mail_from=args.mail_from, rcpt_to=args.rcpt_to, orig_rcpt=args.rcpt_to,
                   auth_user=args.auth_user)
    result = run(script, message, env, host=host, settings=settings, now=dt.datetime.now(dt.timezone.utc))
    print(f"status: {result.status}")
    for e in result.errors:
        print(f"error: {e}")
    print("actions:")
    for line in result.describe():
        print(f"  {line}")
    if result.message != message:
        print("(the message was edited by editheader)")
    return 0 if result.status == "ok" else 2


def cmd_testsuite(args: argparse.Namespace) -> int:
    from sieve.testsuite import run_file
    files: list[str] = []
    for p in args.files:
        if os.path.isdir(p):
            for root, _dirs, names in os.walk(p):
                files.extend(os.path.join(root, n) for n in names if n.endswith(".svtest"))
        else:
            files.append(p)
    files.sort()
    totals = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    failed_files = 0
    for path in files:
        echo = print if args.verbose else None
        rep = run_file(path, echo=echo, expect_failure=True if args.expect_failure else None)
        c = {k: rep.count(k) for k in totals}
        for k in totals:
            totals[k] += c[k]
        verdict = "PASS" if rep.passed else "FAIL"
        if not rep.passed:
            failed_files += 1
        extra = f" ({rep.case_error})" if rep.case_error else ""
        if rep.skipped_reason:
            extra = f" (skipped: {rep.skipped_reason})"
        print(f"{verdict}: {path}: {c['PASS']} succeeded, {c['FAIL']} failed, {c['SKIP']} skipped{extra}")
        if not args.verbose:
            if rep.case_error:
                for line in rep.output:
                    if ": error: " in line:
                        print(f"    {line}")
            for b in rep.blocks:
                if b.status == "FAIL":
                    print(f"    {b.index:2d}: Test '{b.name}' FAILED: {b.reason}")
    n = sum(totals.values())
    print(f"TOTAL: {len(files)} files, {n} blocks: {totals['PASS']} succeeded, {totals['FAIL']} failed, "
          f"{totals['SKIP']} skipped; {failed_files} file(s) failed")
    return 1 if totals["FAIL"] or failed_files else 0


def extension_lines(settings=None) -> list[str]:
    """One line per capability a script may require (the registry, hidden ones left out):
    name, specification, description; "(disabled)" for sieve_extensions_disabled. Extensions
    that need a setting to exist (vnd.dovecot.pipe and friends: sieve_*_bin_dir) only with it."""
    from owlery.settings import Settings
    from sieve.extensions import REGISTRY, available
    disabled = set(settings.sieve_extensions_disabled) if settings is not None else set()
    exts = sorted((e for e in REGISTRY.values() if not e.hidden and available(e.name, settings or Settings())),
                  key=lambda e: e.name)
    width = max(len(e.name) for e in exts)
    rfcw = max(len(e.rfc) for e in exts)
    out = []
    for e in exts:
        off = " (disabled)" if e.name in disabled else ""
        out.append(f"{e.name:{width}s}  {e.rfc or '?':{rfcw}s}  {e.summary}{off}")
    return out


def cmd_extensions(args: argparse.Namespace) -> int:
    settings = _settings(args)
    print("Sieve base language: RFC 5228. Extensions (require \"NAME\"):")
    for line in extension_lines(settings):
        print("  " + line)
    return 0


DOVECONF = "doveconf"
DOVECONF_TIMEOUT = 30      # seconds; doveconf reads local files only


def _bounded_output(argv: list[str], limit: int) -> bytes:
    """At most `limit` bytes of a command's standard output (no shell); OSError when it fails,
    or gives no answer in DOVECONF_TIMEOUT seconds (it is killed then)."""
    import subprocess
    import tempfile
    import threading

    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        timer = threading.Timer(DOVECONF_TIMEOUT, proc.kill)
        timer.start()
        try:
            out = proc.stdout.read(limit)
            proc.stdout.close()       # a longer output is refused: doveconf may stop writing
            rc = proc.wait()
        finally:
            timer.cancel()
        if len(out) >= limit:
            return out
        if rc != 0:
            err.seek(0)
            lines = err.read(65536).decode("utf-8", "replace").strip().splitlines()
            why = "no answer in %d s" % DOVECONF_TIMEOUT if rc == -9 else f"exit {rc}"
            raise OSError(f"{' '.join(argv)}: {why}: {lines[-1] if lines else 'no message'}")
        return out


def _doveconf_text(args: argparse.Namespace) -> str:
    """The doveconf -n text: the saved file, else doveconf's output (no shell, bounded)."""
    from sieve.dovecot_import import MAX_DOVECONF_BYTES
    if args.doveconf_output is not None:
        from owlery.cliutil import FileRefused, read_regular_file
        try:
            raw = read_regular_file(args.doveconf_output, MAX_DOVECONF_BYTES)
        except FileRefused as e:
            raise OSError(str(e)) from None
    else:
        argv = [DOVECONF, "-n"] + (["-c", args.dovecot_config] if args.dovecot_config else [])
        raw = _bounded_output(argv, MAX_DOVECONF_BYTES + 1)
    if len(raw) > MAX_DOVECONF_BYTES:
        raise OSError(f"the configuration is over {MAX_DOVECONF_BYTES} bytes")
    return raw.decode("utf-8", "replace")


def cmd_import_dovecot(args: argparse.Namespace) -> int:
    from sieve.dovecot_import import DoveconfError, import_doveconf
    try:
        result = import_doveconf(_doveconf_text(args), home_template=args.home_template)
    except (OSError, DoveconfError) as e:
        print(f"owlery sieve import-dovecot: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(result.toml())
    sys.stderr.write(result.comments())
    return result.exit_code


def register(sub) -> None:
    """Add `owlery sieve check|test|testsuite|extensions|import-dovecot`."""
    from owlery.cliutil import add_config_option
    p = sub.add_parser("sieve", help="check, dry-run and test Sieve scripts",
                       description="Sieve (RFC 5228) tools. `owlery sieve extensions` lists every "
                                   "supported extension with its RFC.")
    s = p.add_subparsers(dest="sieve_command", metavar="ACTION")
    s.required = True

    c = s.add_parser("check", help="compile scripts; print errors as FILE:LINE:COLUMN; exit 1 on error")
    add_config_option(c)
    c.add_argument("script", nargs="+", help="Sieve script file(s)")
    c.add_argument("--include-dir", help="directory of personal scripts for include (NAME.sieve)")
    c.add_argument("--global-dir", help="directory of global scripts for include :global")
    c.set_defaults(func=cmd_check)

    t = s.add_parser("test", help="dry run: print the actions a script takes on a message")
    add_config_option(t)
    t.add_argument("script", help="Sieve script file")
    t.add_argument("message", help="RFC 5322 message file ('-' for standard input)")
    t.add_argument("--from", dest="mail_from", default="sender@example.com", help="envelope sender")
    t.add_argument("--to", dest="rcpt_to", default="recipient@example.org", help="envelope recipient")
    t.add_argument("--auth", dest="auth_user", default=None, help="SMTP AUTH user (envelope \"auth\")")
    t.add_argument("--mailbox", action="append", help="a mailbox that exists (repeatable)")
    t.add_argument("--include-dir", help="directory of personal scripts for include (NAME.sieve)")
    t.add_argument("--global-dir", help="directory of global scripts for include :global")
    t.set_defaults(func=cmd_test)

    ts = s.add_parser("testsuite", help="run vnd.dovecot.testsuite .svtest files (or directories)")
    ts.add_argument("files", nargs="+", help=".svtest files or directories holding them")
    ts.add_argument("-v", "--verbose", action="store_true", help="print every block's result")
    ts.add_argument("-F", dest="expect_failure", action="store_true",
                    help="expect failure (crash-regression files); default for files under failures/")
    ts.set_defaults(func=cmd_testsuite)

    e = s.add_parser("extensions", help="list the supported Sieve extensions with their RFCs")
    add_config_option(e)
    e.set_defaults(func=cmd_extensions)

    d = s.add_parser("import-dovecot", help="print Dovecot's Pigeonhole and delivery settings as Owlery settings",
                     description="Reads `doveconf -n` (or a saved copy) and prints Owlery's settings as TOML on "
                                 "stdout, with '# note:' and '# not mapped:' lines on stderr. Exit 0: all "
                                 "mapped; 1: something not mapped; 2: the configuration could not be read.")
    src = d.add_mutually_exclusive_group()
    src.add_argument("--doveconf-output", metavar="FILE", help="a saved `doveconf -n` output instead of running it")
    src.add_argument("-c", dest="dovecot_config", metavar="DOVECOT_CONF",
                     help="Dovecot's configuration file, for `doveconf -n -c`")
    d.add_argument("--home-template", metavar="TEMPLATE",
                   help="Dovecot's user home in Owlery's fields ({localpart}, {domain}, {user}), for ~ "
                        "when the configuration has no mail_home")
    d.set_defaults(func=cmd_import_dovecot)
