"""`owlery greylist`: list, stats, whitelist add/remove, purge: the postmaster's view of greylist state.

Reads the same settings as the daemon (state_backend, greylist_*), so it sees the SQLite
file or the Redis the daemons share. `import-postgrey` is policyd/greylist_import.py. Whitelist edits go to the first file named in
greylist_whitelist_clients / greylist_whitelist_recipients (written tmp -> rename); the
daemons re-read it within a second; its directory must exist (never created).
Talks to: the state store, whitelist files. Tests: tests/policyd/test_greylist_cli.py,
tests/policyd/test_greylist_import.py, tests/core/test_newcomer_s20.py (a file it cannot write),
tests/core/test_newcomer_s21.py (a directory that is not there)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

TYPE_CHECKING = False     # typing is not imported at run time (owlery.cliutil says why)
if TYPE_CHECKING:
    from typing import Any


def register(sub) -> None:
    from owlery.cliutil import add_config_option
    p = sub.add_parser("greylist", help="inspect and manage greylisting state")
    gsub = p.add_subparsers(dest="greylist_command", metavar="ACTION")
    gsub.required = True

    q = gsub.add_parser("list", help="list greylist triplets (network, sender, recipient, state)")
    add_config_option(q)
    q.add_argument("--limit", type=int, default=1000, help="at most this many entries (default 1000)")
    q.add_argument("--waiting", action="store_true", help="only triplets still being delayed")
    q.set_defaults(func=_cmd_list)

    q = gsub.add_parser("stats", help="count waiting and passed triplets and auto-whitelisted clients")
    add_config_option(q)
    q.set_defaults(func=_cmd_stats)

    q = gsub.add_parser("whitelist", help="add or remove a whitelist entry (postgrey format)")
    wsub = q.add_subparsers(dest="whitelist_command", metavar="ACTION")
    wsub.required = True
    for name, helptext in (("add", "add an entry"), ("remove", "remove an entry")):
        w = wsub.add_parser(name, help=helptext)
        add_config_option(w)
        w.add_argument("entry", help="client: name suffix, IP, CIDR or /regex/; "
                                     "recipient (--recipient): user@, user@domain, domain or /regex/")
        w.add_argument("--recipient", action="store_true", help="edit the recipient whitelist")
        w.set_defaults(func=_cmd_whitelist, add=(name == "add"))

    q = gsub.add_parser("purge", help="remove expired entries now (--all: forget all greylist state)")
    add_config_option(q)
    q.add_argument("--all", action="store_true", help="delete every greylist entry, live or not")
    q.set_defaults(func=_cmd_purge)

    q = gsub.add_parser("import-postgrey", help="carry postgrey's greylist and auto-whitelist state "
                                                "into the state store (postgrey stopped)")
    add_config_option(q)
    q.add_argument("--dbdir", help="postgrey's --dbdir (default: from POSTGREY_OPTS, else /var/lib/postgrey)")
    q.add_argument("--dry-run", action="store_true", help="read and count, write nothing")
    for name, what in (("delay", "seconds"), ("ipv4cidr", "bits"), ("ipv6cidr", "bits")):
        q.add_argument(f"--{name}", type=int, metavar="N",
                       help=f"postgrey's --{name} ({what}; its files do not record it; default: from "
                            "POSTGREY_OPTS, else postgrey's default)")
    q.add_argument("--postgrey-defaults", metavar="FILE", default="/etc/default/postgrey",
                   help="the file whose POSTGREY_OPTS line gives postgrey's options "
                        "(default /etc/default/postgrey; \"\" for none)")
    q.set_defaults(func=_cmd_import_postgrey)


def _open(args):
    from owlery.cliutil import load_settings
    from owlery.errors import StateUnavailable
    from owlery.state import open_store
    settings = load_settings(args)
    try:
        return settings, open_store(settings)
    except StateUnavailable as e:
        print(f"owlery: state store unavailable: {e}", file=sys.stderr)
        raise SystemExit(os.EX_TEMPFAIL) from None


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _cmd_list(args: argparse.Namespace) -> int:
    from policyd.greylist_core import TRIPLET_PREFIX, parse_triplet_key
    settings, store = _open(args)
    now = time.time()
    entries = store.scan(TRIPLET_PREFIX, now, limit=args.limit)
    entries.sort(key=lambda e: float(e.value.split()[0]))
    for e in entries:
        fields = e.value.split()
        first = float(fields[0])
        if len(fields) > 1:
            if args.waiting:
                continue
            state = f"passed {_stamp(float(fields[1]))}"
        else:
            left = settings.greylist_delay - (now - first)
            state = f"waiting {int(left)}s" if left > 0 else "retry-due"
        triplet = parse_triplet_key(e.key)
        who = " ".join(triplet) if triplet else e.key[len(TRIPLET_PREFIX):]
        print(f"{who}  first={_stamp(first)}  {state}  expires={_stamp(e.expires)}")
    store.close()
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from policyd.greylist_core import AWL_PREFIX, TRIPLET_PREFIX
    settings, store = _open(args)
    now = time.time()
    waiting = passed = 0
    for e in store.scan(TRIPLET_PREFIX, now, limit=10_000_000):
        if len(e.value.split()) > 1:
            passed += 1
        else:
            waiting += 1
    clients = store.scan(AWL_PREFIX, now, limit=10_000_000)
    threshold = settings.greylist_auto_whitelist_clients
    whitelisted = sum(1 for e in clients if threshold and int(e.value) >= threshold)
    print(f"backend: {store.name}")
    print(f"triplets waiting: {waiting}")
    print(f"triplets passed: {passed}")
    print(f"clients counted: {len(clients)}")
    print(f"clients auto-whitelisted: {whitelisted} (after {threshold} passes)")
    counter = getattr(store, "count_expired", None)
    if counter is not None:
        print(f"expired rows awaiting cleanup: {counter(now)}")
    store.close()
    return 0


def _cmd_whitelist(args: argparse.Namespace) -> int:
    from owlery.cliutil import load_settings
    from policyd.greylist_core import ClientWhitelist, RecipientWhitelist
    settings = load_settings(args)
    files = settings.greylist_whitelist_recipients if args.recipient else settings.greylist_whitelist_clients
    if not files:
        print("owlery: no whitelist file configured", file=sys.stderr)
        return 1
    path = files[0]
    entry = args.entry.strip()
    if not entry or any(c.isspace() for c in entry):
        print(f"owlery: bad entry {args.entry!r}", file=sys.stderr)
        return 1
    parser = RecipientWhitelist.parse if args.recipient else ClientWhitelist.parse
    if parser([entry]) == parser([]):
        print(f"owlery: {entry!r} is not a valid whitelist entry", file=sys.stderr)
        return 1
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    except OSError as e:
        return _whitelist_file_error(settings, args, path, "read", e)
    present = [i for i, line in enumerate(lines) if line.split("#", 1)[0].strip() == entry]
    if args.add:
        if present:
            print(f"owlery: {entry} already in {path}")
            return 0
        lines.append(entry)
    else:
        if not present:
            print(f"owlery: {entry} not in {path}", file=sys.stderr)
            return 1
        lines = [line for i, line in enumerate(lines) if i not in present]
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        # No directory is created: a missing one (the default /etc/owlery for a settings file
        # kept elsewhere) means the setting points where the postmaster did not look.
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return _whitelist_file_error(settings, args, path, "write", e)
    print(f"owlery: {'added' if args.add else 'removed'} {entry} {'to' if args.add else 'from'} {path}")
    return 0


def _whitelist_file_error(settings: Any, args: argparse.Namespace, path: str, doing: str, e: OSError) -> int:
    """One line naming the file and the setting that chose it (the first of the list is the
    one edited), so the postmaster knows what to change; exit status 1."""
    name = "greylist_whitelist_recipients" if args.recipient else "greylist_whitelist_clients"
    line = settings.line_of(name)
    where = f"{settings.path}:{line}" if line else "its default; set it in your settings file"
    print(f"owlery: cannot {doing} {path} (the first file of {name}, {where}): {e.strerror or e}",
          file=sys.stderr)
    return 1


def _cmd_purge(args: argparse.Namespace) -> int:
    settings, store = _open(args)
    now = time.time()
    removed = 0
    if args.all:
        for prefix in ("gl:t:", "gl:a:", "gl:h:"):
            while True:
                batch = store.scan(prefix, now, limit=1000)
                if not batch:
                    break
                for e in batch:
                    removed += store.delete(e.key)
        print(f"owlery: deleted {removed} greylist entries")
    else:
        # Small batches, each its own transaction, so a running daemon is never blocked long.
        while True:
            n = store.expire(now, settings.state_expire_batch)
            removed += n
            if n == 0:
                break
        print(f"owlery: removed {removed} expired entries"
              + (" (Redis expires keys by itself)" if store.name == "redis" else ""))
    store.close()
    return 0


def _cmd_import_postgrey(args: argparse.Namespace) -> int:
    """Exit 0: everything live was carried over; 1: some entries were not, for reasons the
    postmaster must see (listed); 2: postgrey's state (or its options) could not be read."""
    from owlery.errors import StateUnavailable
    from policyd import greylist_import as gi
    from policyd.checks.greylist import policy_from
    try:
        found = gi.options_from_defaults_file(args.postgrey_defaults) if args.postgrey_defaults else {}
    except (OSError, ValueError) as e:
        print(f"owlery: cannot read postgrey's options from {args.postgrey_defaults}: {e}", file=sys.stderr)
        return gi.EXIT_UNREADABLE
    source = f"POSTGREY_OPTS in {args.postgrey_defaults}" if found else "postgrey's defaults"
    given = {k: getattr(args, k) for k in ("delay", "ipv4cidr", "ipv6cidr", "dbdir") if getattr(args, k) is not None}
    if given.keys() - {"dbdir"}:
        source = "the command line" + (f" and {source}" if found else "")
    options = gi.PostgreyOptions(**{**found, **given}, source=source)
    if not (options.delay >= 0 and 0 <= options.ipv4cidr <= 32 and 0 <= options.ipv6cidr <= 128):
        print(f"owlery: postgrey options out of range: --delay={options.delay} --ipv4cidr={options.ipv4cidr} "
              f"--ipv6cidr={options.ipv6cidr} (from {source})", file=sys.stderr)
        return gi.EXIT_UNREADABLE
    settings, store = _open(args)
    try:
        outcome = gi.import_entries(gi.read_postgrey(options.dbdir), store, options, policy_from(settings),
                                    time.time(), dry_run=args.dry_run)
    except gi.Unreadable as e:
        print(f"owlery: {e}", file=sys.stderr)
        return gi.EXIT_UNREADABLE
    except StateUnavailable as e:     # as _open: the store went away (what was written stays)
        print(f"owlery: state store unavailable: {e}", file=sys.stderr)
        return os.EX_TEMPFAIL
    finally:
        store.close()
    for line in gi.summary(outcome, options, store.name, args.dry_run):
        print(f"owlery: {line}")
    return gi.EXIT_SKIPPED if outcome.must_see else gi.EXIT_OK
