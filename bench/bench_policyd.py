"""Policy daemon benchmark: decisions/s and p50/p99 latency at 1, 10 and 100 reused connections.

Starts a private slapd (the harness seed directory), `owlery policyd` with the recipient
and quota checks on the LDAP backend (cache warmed before measuring; quota usage from a
maildirsize file; decision lines logged at the default level to a file) and Debian's
postgrey (private port, dbdir on tmpfs so its per-write fsync does not make it swing with
the disk, its decision lines to a file), then drives both with the SAME load generator
(bench/policyload.py: separate processes, raw epoll, one request in flight per connection
as Postfix's smtpd does), interleaving the servers in each repetition:
- saturated: decisions/s and latency with every connection busy (latency there is
  queueing: connections / throughput, Little's law);
- paced: p50/p99 at a fixed realistic offered load (default 2000 decisions/s over the
  connections), measured from the scheduled send time.
Prints the median and spread (min..max) over --repeat runs, the server's CPU per
decision, and the owlery/postgrey ratio. With --dnsbl (the default) a second owlery policyd
runs the same checks plus the dnsbl check (three lists, client and sender, answered by the
in-process DNS stub and then from its cache, as on a busy MX where clients come back), and
the two are printed side by side.
Run: .venv/bin/python bench/bench_policyd.py [--seconds 3] [--repeat 3] [--workers 1] [--no-dnsbl]
Talks to: slapd, owlery policyd, postgrey, the DNS stub (all started here, on loopback).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import policyload  # noqa: E402
from tests.harness.dns import DNSStub  # noqa: E402
from tests.harness.owlery_daemons import OwleryDaemons  # noqa: E402
from tests.harness.procs import ManagedProcess, free_port, wait_for_tcp  # noqa: E402
from tests.harness.slapd import Slapd  # noqa: E402


def cpu_seconds(pids: list[int]) -> float:
    """user+system CPU of these processes and their children so far (from /proc)."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        for p in [pid] + _children(pid):
            try:
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
    return total / tick


def _children(pid: int) -> list[int]:
    try:
        kids = [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in _children(k)]


def start_postgrey(workdir: Path, dbdir_base: Path) -> tuple[ManagedProcess, int]:
    """postgrey as Debian ships it (it fsyncs each write: DB_AUTO_COMMIT, no DB_TXN_NOSYNC),
    on a private port, its dbdir under dbdir_base (tmpfs: fsync is free), empty whitelists,
    decision lines (log level 2, as default) to a file."""
    workdir.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("postgrey") or "/usr/sbin/postgrey"
    dbdir = Path(tempfile.mkdtemp(prefix="owlery-bench-postgrey-", dir=dbdir_base))
    shutil.chown(dbdir, "postgrey", "postgrey")
    empty = workdir / "empty"
    empty.write_text("")
    port = free_port()
    proc = ManagedProcess([exe, f"--inet=127.0.0.1:{port}", f"--dbdir={dbdir}", "--delay=300",
                           f"--whitelist-clients={empty}", f"--whitelist-recipients={empty}"],
                          "postgrey", workdir / "postgrey.log").start()
    proc.dbdir = dbdir
    wait_for_tcp(port, timeout=30, proc=proc, what="postgrey")
    return proc, port


def dnsbl_setup(extra: str) -> tuple[DNSStub, str]:
    """The DNS stub answering three lists for the load generator's 250 clients (every 7th
    listed, every 11th allowlisted, the senders' domain on an RHSBL below the threshold: no
    decision changes, only the work), and the settings for a policyd that asks it. TTLs of an
    hour (negative answers too: the stub's SOA) keep every answer cached for the whole run."""
    stub = DNSStub(ttl=3600).start()
    for n in range(1, 251):
        if n % 7 == 0:
            stub.add(f"{n}.100.51.198.bl.bench.test", "A", "127.0.0.2")
        if n % 11 == 0:
            stub.add(f"{n}.100.51.198.wl.bench.test", "A", "127.0.10.2")
    stub.add("sender.test.dbl.bench.test", "A", "127.0.1.2")
    dnsbl = extra.replace('policyd_checks = { RCPT = ["recipient", "quota"] }',
                          'policyd_checks = { RCPT = ["recipient", "quota", "dnsbl"] }')
    dnsbl += ('dnsbl_sites = ["bl.bench.test=127.0.0.[2..11]*2", "wl.bench.test=127.0.[0..255].[1..3]*-2"]\n'
              'dnsbl_rhsbl_sender_sites = ["dbl.bench.test=127.0.1.[2..99]"]\n'
              'dnsbl_threshold = 5\ndnsbl_skip_networks = []\n'
              f'dns_nameservers = ["127.0.0.1"]\ndns_port = {stub.port}\n')
    return stub, dnsbl


def fmt(s: dict) -> str:
    return (f"decisions/s={s['rate']:7.0f} [{s['rate_min']:.0f}..{s['rate_max']:.0f}]  "
            f"p50={s['p50']:6.2f} ms [{s['p50_min']:.2f}..{s['p50_max']:.2f}]  "
            f"p99={s['p99']:6.2f} ms [{s['p99_min']:.2f}..{s['p99_max']:.2f}]")


def bench(targets: dict, profile: str, conns_list: list[int], args) -> dict:
    """Interleaved repetitions over targets {name: (port, pids)}; prints and returns summaries."""
    rows: dict = {}
    modes = [("saturated", c, 0.0) for c in conns_list] + [("paced", c, args.rate) for c in conns_list if c > 1 and args.rate > 0]
    for port, _pids in targets.values():   # warm-up: caches, JIT-free paths, page cache
        policyload.run(port, profile=profile, conns=10, seconds=1.0, procs=1,
                       generator=getattr(args, "load_generator", "auto"))
    for _rep in range(args.repeat):
        for mode, conns, rate in modes:
            for name, (port, pids) in targets.items():
                cpu0 = cpu_seconds(pids)
                r = policyload.run(port, profile=profile, conns=conns, seconds=args.seconds, rate=rate,
                                   generator=getattr(args, "load_generator", "auto"),
                                   procs=args.client_procs if conns >= 10 else 1)
                r["cpu_us"] = (cpu_seconds(pids) - cpu0) / max(1, r["done"]) * 1e6
                rows.setdefault((name, mode, conns), []).append(r)
    out = {}
    print(f"\n{'server':<18} {'mode':<17} {'conns':>5}  median [min..max] over {args.repeat} runs "
          f"of {args.seconds:g} s; CPU = server CPU per decision")
    for (name, mode, conns), rs in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        s = policyload.summarise(rs)
        cpu = sorted(r["cpu_us"] for r in rs)[len(rs) // 2]
        gen = sorted(r["generator_cpu_us"] for r in rs)[len(rs) // 2]
        label = mode if mode == "saturated" else f"paced {args.rate:.0f}/s"
        print(f"{name:<18} {label:<17} {conns:>5}  {fmt(s)}  CPU={cpu:5.0f} us (load generator {gen:3.0f} us)  {dict(s['words'])}")
        out[(name, mode, conns)] = s
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each run (default 3)")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions, servers interleaved (default 3)")
    ap.add_argument("--connections", default="1,10,100")
    ap.add_argument("--rate", type=float, default=2000.0,
                    help="offered load of the paced runs, decisions/s over all connections (default 2000)")
    ap.add_argument("--client-procs", type=int, default=1, help="load-generator processes (default 1)")
    ap.add_argument("--load-generator", choices=("auto", "c", "python"), default="auto",
                    help="load-generator child: C (built with cc; auto falls back to Python) or Python")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="policyd_workers for owlery (default: the number of cores, as README advises)")
    ap.add_argument("--tmpfs", default="/dev/shm", help="where postgrey's dbdir goes (default /dev/shm)")
    ap.add_argument("--dnsbl", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure owlery with the dnsbl check on (cached answers; default on)")
    ap.add_argument("--postgrey-disk", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure a postgrey with its dbdir on disk, as Debian runs it (fsync per "
                         "write: its rate follows the disk; default on)")
    args = ap.parse_args()
    conns_list = [int(c) for c in args.connections.split(",")]
    work = Path(tempfile.mkdtemp(prefix="owlery-bench-policyd-"))
    os.chmod(work, 0o755)
    slapd = Slapd(work / "slapd").start()
    mail = work / "mail"
    (mail / "example.test" / "alice" / "Maildir").mkdir(parents=True)
    (mail / "example.test" / "alice" / "Maildir" / "maildirsize").write_text("10485760S\n4096 2\n")
    extra = ('policyd_checks = { RCPT = ["recipient", "quota"] }\n'
             'directory_backend = "ldap"\n'
             f'ldap_servers = ["{slapd.url}"]\nldap_base_dn = "{slapd.base_dn}"\n'
             f'maildir_path_template = "{mail}/{{domain}}/{{localpart}}/Maildir"\n')
    if args.workers != 1:
        extra += f"policyd_workers = {args.workers}\n"
    daemons = OwleryDaemons(work / "owlery", which=("policyd",), extra_config=extra)
    postgrey = None
    extra_procs: list = []
    dnsbl_daemons = stub = None
    try:
        daemons.start()
        if args.dnsbl:
            stub, dnsbl_extra = dnsbl_setup(extra)
            dnsbl_daemons = OwleryDaemons(work / "owlery-dnsbl", which=("policyd",), extra_config=dnsbl_extra)
            dnsbl_daemons.start()
        postgrey, pg_port = start_postgrey(work, Path(args.tmpfs))
        port = daemons.ports["policyd"]
        targets = {"owlery policyd": (port, [daemons.procs["policyd"].pid]),
                   "postgrey": (pg_port, [postgrey.pid])}
        if dnsbl_daemons is not None:
            targets["owlery +dnsbl"] = (dnsbl_daemons.ports["policyd"], [dnsbl_daemons.procs["policyd"].pid])
        if args.postgrey_disk:
            pg_disk, pgd_port = start_postgrey(work / "disk", Path(tempfile.gettempdir()))
            extra_procs.append(pg_disk)
            targets["postgrey(disk)"] = (pgd_port, [pg_disk.pid])
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
              f"owlery workers={args.workers}; load generator: {args.client_procs} {policyload.generator_name(args.load_generator)} process(es)")
        res = bench(targets, "policyd", conns_list, args)
        print(f"load average {os.getloadavg()[0]:.2f} at end")
    finally:
        for pg in [postgrey] + extra_procs:
            if pg is not None:
                pg.stop()
                shutil.rmtree(pg.dbdir, ignore_errors=True)
        daemons.stop()
        if dnsbl_daemons is not None:
            dnsbl_daemons.stop()
        if stub is not None:
            stub.stop()
        slapd.stop()
        shutil.rmtree(work, ignore_errors=True)
    print()
    for c in conns_list:
        o, p = res[("owlery policyd", "saturated", c)], res[("postgrey", "saturated", c)]
        line = (f"saturated conns={c:<4} owlery/postgrey decisions/s = {o['rate'] / p['rate']:.1f}x "
                f"(owlery {o['rate']:.0f}/s, postgrey on tmpfs {p['rate']:.0f}/s)")
        d = res.get(("postgrey(disk)", "saturated", c))
        if d:
            line += f"; vs postgrey on disk {o['rate'] / d['rate']:.1f}x ({d['rate']:.0f}/s)"
        print(line)
    if args.dnsbl:
        print("dnsbl check off vs on (answers cached), side by side:")
        for mode in ("saturated", "paced"):
            for c in conns_list:
                off, on = res.get(("owlery policyd", mode, c)), res.get(("owlery +dnsbl", mode, c))
                if off and on:
                    print(f"  {mode:<9} conns={c:<4} off {off['rate']:7.0f}/s p50 {off['p50']:5.2f} ms "
                          f"p99 {off['p99']:6.2f} ms | on {on['rate']:7.0f}/s p50 {on['p50']:5.2f} ms "
                          f"p99 {on['p99']:6.2f} ms | on/off {on['rate'] / off['rate']:.2f}x")
    for c in conns_list:
        if c > 1:
            o = res[("owlery policyd", "paced", c)]
            print(f"paced {args.rate:.0f}/s conns={c:<4} owlery p99 = {o['p99']:.2f} ms "
                  f"(target < 5 ms), achieved {o['rate']:.0f}/s")
    print("Limits: one owlery worker is one Python thread on one core; saturated latency at N "
          "connections is N / decisions-per-second (queueing), so p99 targets are read at the paced load. "
          "The load generator and both servers share this machine's cores (see CPU per decision).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
