"""Benchmark: greylist decisions/s of `owlery policyd` (SQLite and Redis state) vs postgrey, same run.

Starts postgrey (Debian package; private port, dbdir on tmpfs so its per-write fsync does
not make it swing with the disk, decision lines to a file) and `owlery policyd` with only
the greylist check (delay 300 s), once on SQLite (file on the same tmpfs) and once on Redis
(the machine's 127.0.0.1:6379, a private key prefix), then drives each with the same load
generator (bench/policyload.py: separate process, raw epoll, one request in flight per
connection as Postfix's smtpd does), servers interleaved in
each repetition. Modes (--modes): `mix` (default: half never-seen triplets, half repeats
from the pool: real traffic, where first sights are the costly part), `repeats`, `new`.
Prints decisions/s (median [min..max]), p50/p99, server CPU per decision
and the ratio to postgrey; also p99 at a paced realistic load.
Usage: .venv/bin/python bench/bench_greylist.py [--seconds 3] [--repeat 3] [--connections 10 100]
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
from bench_policyd import bench, start_postgrey  # noqa: E402
from tests.harness.owlery_daemons import OwleryDaemons  # noqa: E402


def start_owlery(workdir: Path, backend: str, redis_url: str, workers: int):
    extra = ['policyd_checks = { RCPT = ["greylist"] }', "greylist_delay = 300"]
    if backend == "sqlite":
        extra.append(f'state_sqlite_path = "{workdir}/state.sqlite"')
    else:
        extra += ['state_backend = "redis"', f'state_redis_url = "{redis_url}"',
                  f'state_key_prefix = "owlery-bench:{os.getpid()}:"']
    if workers != 1:
        extra.append(f"policyd_workers = {workers}")
    d = OwleryDaemons(workdir / backend, which=("policyd",), extra_config="\n".join(extra) + "\n")
    return d.start(), d.ports["policyd"]


def drop_redis_keys(url: str, pattern: str) -> None:
    """Remove a bench's keys from Redis (best effort; says why when it cannot)."""
    try:
        import redis
        r = redis.Redis.from_url(url)
        for k in r.scan_iter(match=pattern, count=1000):
            r.delete(k)
    except Exception as e:  # noqa: BLE001 - cleanup is best effort; say why
        print(f"(could not clean Redis keys: {e})")


MODES = {"mix": "greylist-mix", "repeats": "greylist", "new": "greylist-new"}
NAMES = ("postgrey", "postgrey(disk)", "owlery/sqlite", "owlery/redis")


def summary(mode: str, res: dict, connections: list[int]) -> None:
    """Saturated decisions/s and p99 of each server, with the ratio to postgrey (same run)."""
    print(f"\nsummary, {mode} (saturated decisions/s and p99, median; ratio to postgrey at the same concurrency)")
    for conns in connections:
        base = res[("postgrey", "saturated", conns)]["rate"]
        disk = res.get(("postgrey(disk)", "saturated", conns))
        for name in NAMES:
            s = res.get((name, "saturated", conns))
            if s is None:
                continue
            vs_disk = f"  x{s['rate'] / disk['rate']:.2f} vs postgrey(disk)" if disk else ""
            paced = res.get((name, "paced", conns))
            p99_paced = f"  paced p99 {paced['p99']:6.2f} ms" if paced else ""
            print(f"  {conns:4d} conns  {name:16s} {s['rate']:8.0f}/s  p99 {s['p99']:6.2f} ms{p99_paced}  "
                  f"x{s['rate'] / base:.2f} vs postgrey(tmpfs){vs_disk}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each run (default 3)")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions, servers interleaved (default 3)")
    ap.add_argument("--connections", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--rate", type=float, default=2000.0,
                    help="offered load of the paced runs, decisions/s (default 2000)")
    ap.add_argument("--client-procs", type=int, default=1, help="load-generator processes (default 1)")
    ap.add_argument("--load-generator", choices=("auto", "c", "python"), default="auto",
                    help="load-generator child: C (built with cc; auto falls back to Python) or Python")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="policyd_workers for owlery (default: the number of cores, as README advises)")
    ap.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["mix"],
                    help="request mixes: mix (half new triplets, half repeats; default), repeats, new")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--tmpfs", default="/dev/shm", help="where postgrey's dbdir and the SQLite file go")
    ap.add_argument("--postgrey-disk", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure a postgrey with its dbdir on disk, as Debian runs it (default on)")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="owlery-bench-greylist-", dir=args.tmpfs))
    os.chmod(workdir, 0o755)
    procs = []
    pg = None
    extra_pg: list = []
    results: dict = {}
    try:
        pg, pg_port = start_postgrey(workdir, Path(args.tmpfs))
        targets = {"postgrey": (pg_port, [pg.pid])}
        if args.postgrey_disk:
            pg_disk, pgd_port = start_postgrey(workdir / "disk", Path(tempfile.gettempdir()))
            extra_pg.append(pg_disk)
            targets["postgrey(disk)"] = (pgd_port, [pg_disk.pid])
        for backend in ("sqlite", "redis"):
            daemon, port = start_owlery(workdir, backend, args.redis_url, args.workers)
            procs.append(daemon)
            targets[f"owlery/{backend}"] = (port, [daemon.procs["policyd"].pid])
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
              f"owlery workers={args.workers}; load generator: {args.client_procs} {policyload.generator_name(args.load_generator)} process(es); "
              "Redis CPU is not counted in owlery/redis's CPU per decision")
        for mode in args.modes:
            profile = MODES[mode]
            print(f"\n{mode}: {policyload.POOLS[profile]}")
            mode_args = args if mode != "new" else argparse.Namespace(**{**vars(args), "repeat": 1, "rate": 0})
            results[mode] = bench(targets, profile, args.connections, mode_args)
        print(f"load average {os.getloadavg()[0]:.2f} at end")
    finally:
        for p in [pg] + extra_pg:
            if p is not None:
                p.stop()
                shutil.rmtree(p.dbdir, ignore_errors=True)
        for d in procs:
            d.stop()
        drop_redis_keys(args.redis_url, f"owlery-bench:{os.getpid()}:*")
        shutil.rmtree(workdir, ignore_errors=True)
    for mode, res in results.items():
        summary(mode, res, args.connections)
    return 0


if __name__ == "__main__":
    sys.exit(main())
