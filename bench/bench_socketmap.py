"""Socketmap benchmark: virtual_alias_maps lookups/s, owlery socketmap (warm cache, one worker) vs Postfix's own ldap: table.

Starts a private slapd holding the harness seed directory plus --users generated users, and
`owlery socketmap` on the LDAP backend (one worker process: one core; cache lifetimes long
enough to stay warm). Both tables are driven by the SAME client, Postfix's own `postmap -q -`
(one process, one connection, the keys read from stdin, one lookup at a time as Postfix's
daemons do): `socketmap:inet:...:virtual_alias_maps` against `ldap:` with the equivalent
query (the address attributes, result `mail`), reading the same slapd. Postfix's ldap: table
has no cache: every lookup is an LDAP search; owlery answers from its directory cache after
one warm-up pass. Runs interleave the two tables; each prints the median lookups/s over
--repeat runs with the spread, and the CPU per lookup of the server side (owlery socketmap;
slapd for ldap:). A last line measures the socketmap alone with a pipelined client, to show
how much of the postmap figure is the client's round trip.
Needs Debian's postfix-ldap (the ldap: table) besides postfix and slapd.
Run: .venv/bin/python bench/bench_socketmap.py [--users 5000] [--repeat 3]
Talks to: slapd, owlery socketmap (both started here, on loopback), postmap.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_policyd import cpu_seconds  # noqa: E402
from tests.harness.slapd import Slapd, seed_ldif  # noqa: E402
from tests.socketmap.daemon import POSTMAP, Client, SocketmapDaemon, postfix_config_dir  # noqa: E402

USER = """
dn: uid=bench{i},ou=people,dc=example,dc=test
objectClass: inetOrgPerson
objectClass: qmailUser
uid: bench{i}
cn: Bench {i}
sn: Bench
mail: bench{i}@example.test
mailAlternateAddress: b{i}.alias@example.test
accountStatus: active
"""


def keys_for(users: int) -> list[str]:
    """Existing primary and alternate addresses, and one unknown address in ten."""
    keys = []
    for i in range(users):
        keys.append(f"bench{i}@example.test" if i % 2 else f"b{i}.alias@example.test")
        if i % 10 == 0:
            keys.append(f"nobody{i}@example.test")
    return keys


def ldap_cf(path: Path, slapd: Slapd) -> str:
    path.write_text(f"server_host = {slapd.url}\nsearch_base = {slapd.base_dn}\nversion = 3\n"
                    "query_filter = (|(mail=%s)(mailAlternateAddress=%s)(mailLocalAddress=%s))\n"
                    "result_attribute = mail\n")
    return f"ldap:{path}"


def run_postmap(table: str, keys_file: Path, etc: Path) -> tuple[float, int]:
    """(seconds, keys found) for one `postmap -q - TABLE < keys`."""
    with open(keys_file) as stdin:
        t0 = time.perf_counter()
        proc = subprocess.run([POSTMAP, "-c", str(etc), "-q", "-", table], stdin=stdin, capture_output=True,
                              text=True, timeout=600)
        elapsed = time.perf_counter() - t0
    if proc.stderr.strip():
        raise SystemExit(f"postmap {table}: {proc.stderr.strip()}")
    return elapsed, len(proc.stdout.splitlines())


def pipelined(port: int, keys: list[str], batch: int = 500) -> float:
    """Lookups/s of the socketmap alone: one connection, `batch` requests in flight."""
    c = Client(port)
    t0 = time.perf_counter()
    for i in range(0, len(keys), batch):
        c.ask_many([("virtual_alias_maps", k) for k in keys[i:i + batch]])
    rate = len(keys) / (time.perf_counter() - t0)
    c.close()
    return rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=5000, help="generated LDAP users (default 5000)")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions, tables interleaved (default 3)")
    args = ap.parse_args()
    if not shutil.which("postmap") and not os.path.exists(POSTMAP):
        raise SystemExit("postmap not found (Debian package postfix)")
    work = Path(tempfile.mkdtemp(prefix="owlery-bench-socketmap-"))
    os.chmod(work, 0o755)
    slapd = Slapd(work / "slapd", ldif_text=seed_ldif() + "".join(USER.format(i=i) for i in range(args.users)))
    daemon = None
    try:
        slapd.start()
        daemon = SocketmapDaemon(work / "socketmap", (
            f'directory_backend = "ldap"\nldap_servers = ["{slapd.url}"]\nldap_base_dn = "{slapd.base_dn}"\n'
            "directory_cache_positive_ttl = 3600\ndirectory_cache_negative_ttl = 3600\n"
            f"directory_cache_entries_max = {20 * args.users + 1000}\n"
            "socketmap_requests_queued_max = 1000\nsocketmap_workers = 1\n")).start()
        etc = postfix_config_dir(work)
        if "ldap" not in subprocess.run(["postconf", "-c", str(etc), "-m"], capture_output=True, text=True).stdout:
            raise SystemExit("Postfix has no ldap: table here: install Debian's postfix-ldap")
        keys = keys_for(args.users)
        keys_file = work / "keys"
        keys_file.write_text("".join(k + "\n" for k in keys))
        tables = {"owlery socketmap": (f"socketmap:inet:127.0.0.1:{daemon.port}:virtual_alias_maps",
                                       [daemon.proc.pid]),
                  "postfix ldap:": (ldap_cf(work / "ldap.cf", slapd), [slapd.proc.pid])}
        found = {name: run_postmap(table, keys_file, etc)[1] for name, (table, _) in tables.items()}   # warm-up
        if len(set(found.values())) != 1:
            raise SystemExit(f"the tables disagree on how many keys exist: {found}")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; {len(keys)} keys "
              f"({found['postfix ldap:']} found) per run, client: postmap -q - (one connection, one lookup at a time)")
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in tables}
        for _ in range(args.repeat):
            for name, (table, pids) in tables.items():
                cpu0 = cpu_seconds(pids)
                elapsed, _ = run_postmap(table, keys_file, etc)
                runs[name].append((len(keys) / elapsed, (cpu_seconds(pids) - cpu0) / len(keys) * 1e6))
        medians = {}
        for name, rs in runs.items():
            rates = sorted(r for r, _ in rs)
            cpu = sorted(c for _, c in rs)[len(rs) // 2]
            medians[name] = rates[len(rates) // 2]
            print(f"{name:<18} lookups/s={medians[name]:7.0f} [{rates[0]:.0f}..{rates[-1]:.0f}]  "
                  f"server CPU={cpu:5.0f} us/lookup")
        print(f"\nowlery socketmap / postfix ldap: = {medians['owlery socketmap'] / medians['postfix ldap:']:.1f}x "
              "(same client, same slapd; owlery from its warm cache, ldap: one search per lookup)")
        print(f"owlery socketmap alone, pipelined client: {pipelined(daemon.port, keys):.0f} lookups/s")
        print("Limits: postmap asks one key at a time, so its figure is a round trip per lookup (client, "
              "kernel, server); one owlery worker is one Python thread on one core.")
    finally:
        if daemon is not None:
            daemon.stop()
        slapd.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
