"""`owlery greylist import-postgrey`: postgrey's greylist and auto-whitelist state, carried into Owlery's store.

A postmaster who replaces postgrey should not defer every known correspondent again on the
day of the switch. This reads postgrey's two BerkeleyDB files and writes what Owlery would
hold after the same history, into the store the settings name (SQLite, Redis, memory).

What postgrey keeps (postgrey 1.37, read from its source and dumps of its files):
- postgrey.db: key `lc "<net>/<sender>/<recipient>"`, value `<first>,<last>` (epoch
  seconds; a third field, a host part, is never written by 1.37). <net> is the network
  address of the client's --ipv4cidr (24) / --ipv6cidr (64) network with no length
  (`192.0.2.0`, IPv6 uncompressed: `2001:db8:1:2:0:0:0:0`); with --lookup-by-host it is the
  address with its length (`192.0.2.77/32`). <sender> is already normalised (BATV unwrapped,
  `+ext` cut, digit words `#`; the null sender is empty). A triplet passed once
  `last - first >= --delay`; until then it waits. With --privacy the key is a SHA-1 of it.
- postgrey_clients.db: key the client address as NetAddr::IP prints it (`2001:DB8:0:0:0:0:0:77`,
  not lower-cased), value `<count>,<last counted>`; a SHA-1 of the address with --privacy.
Neither records the network length or the delay: they come from postgrey's options
(`--delay`, `--ipv4cidr`, `--ipv6cidr`; by default read from POSTGREY_OPTS in Debian's
/etc/default/postgrey), and a network with host bits set for them is refused.

How it is read: postgrey writes through a transactional BerkeleyDB environment, and recent
changes live only in its log and shared cache until a checkpoint, so the .db file alone is
stale (empty, even) while postgrey runs or after it was killed. The files and logs are
copied, with postgrey stopped (its `postgrey.lock` is free), into a private directory whose
environment is recovered there by BerkeleyDB's Perl module (postgrey's own dependency; no
Python binding here), which prints every entry hex-encoded; postgrey's directory is never
written.

What Owlery gets (policyd/greylist_core.py formats): a waiting triplet `gl:t:<key>` =
"<first>" until first + greylist_retry_window; a passed one "<first> <last>" until
last + greylist_max_age (postgrey too counts max age from the last sight); a client
`gl:a:<ip>` = its count until last + greylist_max_age, and the once-an-hour gate
`gl:h:<ip>` while last + 1 h is ahead. What Owlery would already have forgotten is skipped
and counted; so is what cannot be mapped (hashed keys, a postgrey network wider than
Owlery's greylist_ipv4_prefix / greylist_ipv6_prefix). Entries Owlery already holds win,
except that a passed triplet replaces a waiting one and a higher client count a lower one,
so running the import twice changes nothing.
Talks to: perl (BerkeleyDB), the state store. Tests: tests/policyd/test_greylist_import.py
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import glob
import ipaddress
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator

from owlery.state import Write
from policyd.greylist_core import (AWL_COUNT_INTERVAL, AWL_GATE_PREFIX, GreylistPolicy, awl_key, client_net,
                                   triplet_key)

POSTGREY_DBDIR = "/var/lib/postgrey"        # postgrey's default --dbdir
POSTGREY_DEFAULTS = "/etc/default/postgrey"  # Debian's file with POSTGREY_OPTS
POSTGREY_DELAY = 300                         # postgrey's defaults for the options it does not record
POSTGREY_IPV4CIDR = 24
POSTGREY_IPV6CIDR = 64
READ_TIMEOUT = 600.0        # seconds for the whole dump: a hung perl must not hang the command
LINE_MAX = 16384            # hex characters of one dumped entry; postgrey cuts fields at 512 bytes
BATCH = 1000                # keys read and written per store round trip / commit

EXIT_OK, EXIT_SKIPPED, EXIT_UNREADABLE = 0, 1, 2

# Skip reasons. The routine ones are what Owlery would have forgotten anyway; the others
# lose state postgrey still had, so the command exits 1 and the postmaster must look.
EXPIRED_WAITING = "waiting triplet past greylist_retry_window"
EXPIRED_PASSED = "passed triplet not seen for greylist_max_age"
EXPIRED_CLIENT = "client not counted for greylist_max_age"
AWL_OFF = "client counts (greylist_auto_whitelist_clients = 0)"
HASHED = "hashed by postgrey --privacy (the addresses cannot be recovered)"
WIDER = "postgrey network wider than Owlery's greylist_ipv4_prefix/greylist_ipv6_prefix"
NOT_ALIGNED = "network with host bits set for postgrey's --ipv4cidr/--ipv6cidr (wrong options?)"
MALFORMED = "unreadable key or value"
AMBIGUOUS = "key whose sender and recipient cannot be told apart ('/' in both)"
ROUTINE = frozenset({EXPIRED_WAITING, EXPIRED_PASSED, EXPIRED_CLIENT, AWL_OFF})

_HASH_RE = re.compile(r"[0-9a-f]{40}")      # postgrey --privacy: Digest::SHA::sha1_hex
AWL_PREFIX_TEXT = awl_key("")

# The dump, run by perl on the private copy: recover the environment there, then print
# "<tag> <hex key> <hex value>" per entry and "end" once everything was read (a dump
# without it was cut short). Arguments: the directory, then tag=file pairs.
_DUMP = r"""
use strict; use warnings; use BerkeleyDB;
my $home = shift @ARGV;
my $env = BerkeleyDB::Env->new(-Home => $home,
    -Flags => DB_CREATE | DB_RECOVER | DB_INIT_TXN | DB_INIT_MPOOL | DB_INIT_LOG)
    or die "cannot recover the database environment: $BerkeleyDB::Error\n";
for my $spec (@ARGV) {
    my ($tag, $file) = split /=/, $spec, 2;
    next unless -e "$home/$file";
    my $db = BerkeleyDB::Btree->new(-Filename => $file, -Env => $env, -Flags => DB_RDONLY)
        or die "cannot open $file: $BerkeleyDB::Error\n";
    my $cursor = $db->db_cursor;
    my ($k, $v) = ('', '');
    my $status;
    while (($status = $cursor->c_get($k, $v, DB_NEXT)) == 0) {
        print $tag, ' ', unpack('H*', $k), ' ', unpack('H*', $v), "\n";
    }
    $status == DB_NOTFOUND or die "reading $file: $status\n";
    undef $cursor; undef $db;
}
print "end\n";
"""


class Unreadable(Exception):
    """postgrey's state could not be read (the message says why and what to do)."""


class Skip(Exception):
    """One entry that is not imported; the argument is its reason (one of the constants)."""


@dataclasses.dataclass(frozen=True)
class PostgreyOptions:
    """The postgrey options its files do not record, and where they came from."""

    delay: float = POSTGREY_DELAY
    ipv4cidr: int = POSTGREY_IPV4CIDR
    ipv6cidr: int = POSTGREY_IPV6CIDR
    dbdir: str = POSTGREY_DBDIR
    source: str = "postgrey's defaults"


def options_from_opts(text: str) -> dict:
    """The options that matter here from a postgrey command line (POSTGREY_OPTS):
    --delay, --ipv4cidr, --ipv6cidr, --dbdir, as `--name=value` or `--name value`."""
    words = shlex.split(text)
    found: dict = {}
    for i, word in enumerate(words):
        name, eq, value = word.partition("=")
        if name not in ("--delay", "--ipv4cidr", "--ipv6cidr", "--dbdir"):
            continue
        if not eq:
            if i + 1 >= len(words):
                continue
            value = words[i + 1]
        found[name[2:]] = value if name == "--dbdir" else int(value)
    return found


def options_from_defaults_file(path: str) -> dict:
    """options_from_opts of the POSTGREY_OPTS="..." line of Debian's defaults file ({} when
    the file or the line is missing). Only that simple assignment is understood."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return {}
    for line in reversed(lines):        # the shell keeps the last assignment
        m = re.match(r"\s*(?:export\s+)?POSTGREY_OPTS=(.*)$", line)
        if m:
            value = shlex.split(m.group(1), comments=True)
            return options_from_opts(value[0]) if value else {}
    return {}


# --- postgrey's entries -> Owlery's records (pure) ------------------------------------

@dataclasses.dataclass(frozen=True)
class Triplet:
    """One postgrey.db entry, parsed."""

    ip: ipaddress.IPv4Address | ipaddress.IPv6Address   # the network address (or host)
    prefix: int
    sender: str
    recipient: str
    first: float
    last: float


def split_sender_recipient(rest: str) -> tuple[str, str]:
    """"<sender>/<recipient>" apart, when a '/' also occurs inside one of them.

    A split is possible where the sender's domain (after its last '@'; the whole sender if
    it has none) holds no '/'; of those, one whose sender is empty (the null sender) or has
    an '@' is preferred. Raises Skip(AMBIGUOUS) when that leaves no single answer."""
    if rest.count("/") == 1:
        sender, _, recipient = rest.partition("/")
        return sender, recipient
    cuts = [i for i, c in enumerate(rest) if c == "/" and "/" not in rest[:i].rpartition("@")[2]]
    preferred = [i for i in cuts if i == 0 or "@" in rest[:i]]
    if len(preferred) == 1:
        cuts = preferred
    if len(cuts) != 1:
        raise Skip(AMBIGUOUS)
    return rest[:cuts[0]], rest[cuts[0] + 1:]


def parse_triplet(key: str, value: str, options: PostgreyOptions) -> Triplet:
    """A postgrey.db entry (key and value as text), or Skip with the reason."""
    if _HASH_RE.fullmatch(key):
        raise Skip(HASHED)
    parts = key.split("/")
    if len(parts) < 3:
        raise Skip(MALFORMED)
    try:
        ip = ipaddress.ip_address(parts[0])
        first, last = (float(x) for x in value.split(",")[:2])
    except ValueError:
        raise Skip(MALFORMED) from None
    full = ip.max_prefixlen
    if len(parts) >= 4 and parts[1] == str(full):      # --lookup-by-host: "<ip>/32/..."
        prefix, rest = full, parts[2:]
    else:
        prefix, rest = (options.ipv4cidr if ip.version == 4 else options.ipv6cidr), parts[1:]
        try:
            ipaddress.ip_network(f"{ip}/{prefix}", strict=True)
        except ValueError:
            raise Skip(NOT_ALIGNED) from None
    sender, recipient = split_sender_recipient("/".join(rest))
    return Triplet(ip, prefix, sender, recipient, first, last)


@dataclasses.dataclass(frozen=True)
class PostgreyRecord:
    """An Owlery greylist record to write: a triplet's value or a client's count."""

    key: str
    value: str
    expires: float
    passed: bool = False      # triplets
    count: int = 0            # clients
    gate_expires: float = 0.0  # clients: the once-an-hour gate, while ahead of now


def triplet_record(t: Triplet, options: PostgreyOptions, policy: GreylistPolicy, now: float) -> PostgreyRecord:
    """What Owlery holds for this triplet after the same history, or Skip."""
    own_prefix = policy.v4_prefix if t.ip.version == 4 else policy.v6_prefix
    if own_prefix > t.prefix:
        raise Skip(WIDER)      # which client of the wider network it was is not recorded
    passed = t.last - t.first >= options.delay
    first, last = min(t.first, now), min(t.last, now)   # postgrey too takes a future first as now
    if passed:
        expires, value = last + policy.max_age, f"{first!r} {last!r}"
    else:
        expires, value = first + policy.retry_window, repr(first)
    if expires <= now:
        raise Skip(EXPIRED_PASSED if passed else EXPIRED_WAITING)
    # Owlery's network is postgrey's or one containing it (own_prefix <= t.prefix): exact.
    net = client_net(str(t.ip), policy.v4_prefix, policy.v6_prefix)
    key = triplet_key(net, t.sender, t.recipient, privacy=policy.privacy)
    return PostgreyRecord(key, value, expires, passed=passed)


def client_record(key: str, value: str, policy: GreylistPolicy, now: float) -> PostgreyRecord:
    """What Owlery holds for this postgrey_clients.db entry, or Skip."""
    if _HASH_RE.fullmatch(key):
        raise Skip(HASHED)
    try:
        ip = ipaddress.ip_address(key)
        fields = value.split(",")
        count, last = int(fields[0]), float(fields[1])
    except (ValueError, IndexError):
        raise Skip(MALFORMED) from None
    if policy.auto_whitelist_clients <= 0:
        raise Skip(AWL_OFF)
    last = min(last, now)
    expires = last + policy.max_age
    if expires <= now:
        raise Skip(EXPIRED_CLIENT)
    # Postfix sends client_address as inet_ntop writes it (2001:db8::77): Owlery's key form.
    return PostgreyRecord(awl_key(str(ip)), str(count), expires, count=count,
                  gate_expires=last + AWL_COUNT_INTERVAL)


def merge(a: PostgreyRecord, b: PostgreyRecord, policy: GreylistPolicy) -> PostgreyRecord:
    """Two postgrey entries that are one Owlery entry (a coarser Owlery network, senders
    postgrey keeps apart and Owlery folds): as if Owlery had seen both histories."""
    if a.key.startswith(AWL_PREFIX_TEXT):
        top = a if (a.count, a.expires) >= (b.count, b.expires) else b
        return dataclasses.replace(top, gate_expires=max(a.gate_expires, b.gate_expires))
    firsts = [float(r.value.split()[0]) for r in (a, b)]
    lasts = [float(r.value.split()[-1]) for r in (a, b) if r.passed]
    if lasts:
        first, last = min(firsts), max(lasts)
        return PostgreyRecord(a.key, f"{first!r} {last!r}", last + policy.max_age, passed=True)
    first = min(firsts)
    return PostgreyRecord(a.key, repr(first), first + policy.retry_window)



# --- reading postgrey's files ---------------------------------------------------------

def read_postgrey(dbdir: str, *, perl: str = "perl") -> Iterator[tuple[str, str, str]]:
    """("t" | "c", key, value) for every entry of postgrey.db / postgrey_clients.db in
    `dbdir`, read from a recovered private copy (see the module docstring). Raises Unreadable."""
    main = os.path.join(dbdir, "postgrey.db")
    if not os.path.isfile(main):
        raise Unreadable(f"no postgrey.db in {dbdir} (give postgrey's --dbdir with --dbdir)")
    with tempfile.TemporaryDirectory(prefix="owlery-postgrey-") as copy:
        _copy_stopped(dbdir, copy)
        yield from _dump(copy, perl)


def _copy_stopped(dbdir: str, copy: str) -> None:
    """Copy the databases and logs while holding postgrey's lock, so it is not running and
    cannot start half way (it takes postgrey.lock exclusively, without waiting)."""
    lock_path = os.path.join(dbdir, "postgrey.lock")
    try:
        lock = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        lock = None          # postgrey never ran its loop here; nothing can be writing
    except OSError as e:
        raise Unreadable(f"cannot open {lock_path}: {e.strerror}") from None
    try:
        if lock is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise Unreadable(f"postgrey is running on {dbdir} ({lock_path} is locked): stop it "
                                     "first (systemctl stop postgrey); its recent changes are not in "
                                     "the files while it runs") from None
                raise
        names = ["postgrey.db", "postgrey_clients.db"] + sorted(
            os.path.basename(p) for p in glob.glob(os.path.join(glob.escape(dbdir), "log.*")))
        for name in names:
            src = os.path.join(dbdir, name)
            if os.path.exists(src):
                shutil.copyfile(src, os.path.join(copy, name))
    except OSError as e:
        raise Unreadable(f"cannot copy postgrey's files from {dbdir}: {e}") from None
    finally:
        if lock is not None:
            os.close(lock)


def _dump(copy: str, perl: str) -> Iterator[tuple[str, str, str]]:
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen([perl, "-e", _DUMP, copy, "t=postgrey.db", "c=postgrey_clients.db"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors)
        except OSError as e:
            raise Unreadable(f"cannot run {perl}: {e.strerror} (postgrey's own perl and "
                             "libberkeleydb-perl read its files)") from None
        watchdog = threading.Timer(READ_TIMEOUT, proc.kill)
        watchdog.start()
        complete = False
        try:
            assert proc.stdout is not None
            while True:
                line = proc.stdout.readline(LINE_MAX + 1)
                if not line:
                    break
                if line == b"end\n":
                    complete = True
                    continue
                while len(line) > LINE_MAX and not line.endswith(b"\n"):
                    line = proc.stdout.readline(LINE_MAX + 1)   # drop the rest, a piece at a time
                    if not line:
                        break
                fields = line.split()
                if len(fields) != 3 or fields[0] not in (b"t", b"c"):
                    yield "t", "", ""     # a line no dump writes: counted as MALFORMED
                    continue
                try:
                    key, value = bytes.fromhex(fields[1].decode()), bytes.fromhex(fields[2].decode())
                except ValueError:
                    yield "t", "", ""
                    continue
                # postgrey's keys are bytes; Owlery's protocol decoder keeps 8-bit bytes the same way
                yield (fields[0].decode(), key.decode("utf-8", "surrogateescape"),
                       value.decode("utf-8", "surrogateescape"))
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
            rc = proc.wait()
            proc.stdout.close()
        if rc != 0 or not complete:
            errors.seek(0)
            why = errors.read(4000).decode("utf-8", "replace").strip() or f"perl exited with status {rc}"
            if "Can't locate BerkeleyDB.pm" in why:
                why = "perl's BerkeleyDB module is missing (Debian: libberkeleydb-perl)"
            raise Unreadable(f"cannot read postgrey's databases: {why}")


# --- the import -------------------------------------------------------------------------

@dataclasses.dataclass
class ImportOutcome:
    triplets_read: int = 0
    clients_read: int = 0
    waiting: int = 0           # imported
    passed: int = 0
    clients: int = 0
    whitelisted: int = 0       # of clients: at Owlery's auto-whitelist count
    merged: int = 0            # postgrey entries that became one Owlery entry with another
    kept: int = 0              # Owlery already had as much
    skipped: Counter = dataclasses.field(default_factory=Counter)   # (kind, reason) -> n

    @property
    def must_see(self) -> bool:
        return any(reason not in ROUTINE for _, reason in self.skipped)


def plan(entries, options: PostgreyOptions, policy: GreylistPolicy, now: float,
         outcome: ImportOutcome) -> dict[str, PostgreyRecord]:
    """Owlery's records from postgrey's entries, by key (pure: no store)."""
    records: dict[str, PostgreyRecord] = {}
    for kind, key, value in entries:
        try:
            if kind == "t":
                outcome.triplets_read += 1
                rec = triplet_record(parse_triplet(key, value, options), options, policy, now)
            else:
                outcome.clients_read += 1
                rec = client_record(key, value, policy, now)
        except Skip as s:
            outcome.skipped["triplets" if kind == "t" else "clients", s.args[0]] += 1
            continue
        old = records.get(rec.key)
        if old is not None:
            outcome.merged += 1
            rec = merge(old, rec, policy)
        records[rec.key] = rec
    return records


def store_writes(records: list[PostgreyRecord], existing: list[str | None], now: float,
                 outcome: ImportOutcome, policy: GreylistPolicy) -> list[Write]:
    """The writes for one batch, given what the store holds for those keys now."""
    writes = []
    for rec, old in zip(records, existing):
        client = rec.key.startswith(AWL_PREFIX_TEXT)
        if old is not None:
            better = (_count(old) < rec.count) if client else (rec.passed and len(old.split()) < 2)
            if not better:
                outcome.kept += 1
                continue
        # add where nothing was: a daemon that wrote meanwhile wins, as the module docstring says
        writes.append(Write("add" if old is None else "set", rec.key, rec.value, rec.expires - now, now))
        if client:
            outcome.clients += 1
            outcome.whitelisted += rec.count >= policy.auto_whitelist_clients
            if rec.gate_expires > now:
                ip = rec.key[len(AWL_PREFIX_TEXT):]
                writes.append(Write("add", AWL_GATE_PREFIX + ip, "1", rec.gate_expires - now, now))
        elif rec.passed:
            outcome.passed += 1
        else:
            outcome.waiting += 1
    return writes


def _count(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


def import_entries(entries, store, options: PostgreyOptions, policy: GreylistPolicy, now: float,
                   *, dry_run: bool = False) -> ImportOutcome:
    """Read postgrey's entries, write Owlery's records to `store` (not with dry_run)."""
    outcome = ImportOutcome()
    records = list(plan(entries, options, policy, now, outcome).values())
    for start in range(0, len(records), BATCH):
        batch = records[start:start + BATCH]
        existing = store.get_many([r.key for r in batch], now)
        writes = store_writes(batch, existing, now, outcome, policy)
        if writes and not dry_run:
            store.write_many(writes)
    return outcome


def summary(outcome: ImportOutcome, options: PostgreyOptions, store_name: str, dry_run: bool) -> list[str]:
    verb = "would import" if dry_run else "imported"
    lines = [
        f"read {options.dbdir}: {outcome.triplets_read} triplets, {outcome.clients_read} clients "
        f"(postgrey --delay={options.delay:g} --ipv4cidr={options.ipv4cidr} --ipv6cidr={options.ipv6cidr}, "
        f"from {options.source})",
        f"{verb} into {store_name}: {outcome.waiting} triplets waiting, {outcome.passed} passed, "
        f"{outcome.clients} clients ({outcome.whitelisted} auto-whitelisted)",
    ]
    if outcome.merged:
        lines.append(f"merged: {outcome.merged} postgrey entries into others (one Owlery key)")
    if outcome.kept:
        lines.append(f"kept: {outcome.kept} entries Owlery already had")
    for (kind, reason), n in sorted(outcome.skipped.items()):
        lines.append(f"skipped {n} {kind}: {reason}" + ("" if reason in ROUTINE else " (not carried over)"))
    return lines
