"""Benchmark: greylist decisions/s of `owlery policyd` (SQLite and Redis state) vs postgrey, same run.

Starts postgrey (Debian package) on a private port and dbdir, and `owlery policyd` with only
the greylist check, once on SQLite and once on Redis (the machine's 127.0.0.1:6379 or a
private one), then drives each with the same request stream over N persistent connections
(as Postfix smtpd processes do: one request at a time per connection). Prints decisions/s.
Usage: .venv/bin/python bench/bench_greylist.py [--requests 6000] [--connections 10 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.owlery_daemons import OwleryDaemons  # noqa: E402
from tests.harness.procs import free_ports, wait_for_tcp  # noqa: E402


def request_bytes(i: int, conn: int) -> bytes:
    # A pool of 2000 triplets over 500 /24s: first sight is greylisted, later ones pass or wait.
    t = (i * 7919 + conn * 104729) % 2000
    return (f"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
            f"client_address=10.{t % 250}.{t // 250}.{(i % 5) + 1}\nclient_name=unknown\n"
            f"helo_name=h{t}.example.net\nsender=s{t}@sender{t % 97}.example.net\n"
            f"recipient=user{t % 50}@example.org\ninstance={conn}.{i}\nqueue_id=\nsize=0\n\n").encode()


async def _client(host, port, n, conn, counts):
    reader, writer = await asyncio.open_connection(host, port)
    for i in range(n):
        writer.write(request_bytes(i, conn))
        await writer.drain()
        resp = await reader.readuntil(b"\n\n")
        word = resp.split(b"=", 1)[1].split(None, 1)[0].decode()
        counts[word] = counts.get(word, 0) + 1
    writer.close()


async def drive(port, connections, total):
    per = max(1, total // connections)
    counts: dict[str, int] = {}
    start = time.perf_counter()
    await asyncio.gather(*(_client("127.0.0.1", port, per, c, counts) for c in range(connections)))
    elapsed = time.perf_counter() - start
    return per * connections / elapsed, counts


def start_postgrey(workdir: Path):
    port, = free_ports(1)
    dbdir = workdir / "postgrey-db"
    dbdir.mkdir()
    shutil.chown(dbdir, "postgrey", "postgrey")
    proc = subprocess.Popen(["/usr/sbin/postgrey", f"--inet=127.0.0.1:{port}", f"--dbdir={dbdir}",
                             "--delay=300"], stdout=subprocess.DEVNULL, stderr=open(workdir / "postgrey.log", "wb"))
    wait_for_tcp(port, timeout=30, what="postgrey")
    return proc, port


def start_owlery(workdir: Path, backend: str, redis_url: str | None):
    extra = ['policyd_checks = { RCPT = ["greylist"] }', "greylist_delay = 300"]
    if backend == "sqlite":
        extra.append(f'state_sqlite_path = "{workdir}/state.sqlite"')
    else:
        extra += ['state_backend = "redis"', f'state_redis_url = "{redis_url}"',
                  f'state_key_prefix = "owlery-bench:{os.getpid()}:"']
    d = OwleryDaemons(workdir / backend, which=("policyd",), extra_config="\n".join(extra) + "\n")
    return d.start(), d.ports["policyd"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--connections", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="owlery-bench-greylist-"))
    os.chmod(workdir, 0o755)
    results = []
    procs = []
    try:
        pg_proc, pg_port = start_postgrey(workdir)
        procs.append(("postgrey", pg_proc))
        targets = [("postgrey", pg_port)]
        for backend in ("sqlite", "redis"):
            daemon, port = start_owlery(workdir, backend, args.redis_url)
            procs.append((backend, daemon))
            targets.append((f"owlery/{backend}", port))
        for conns in args.connections:
            for name, port in targets:
                asyncio.run(drive(port, conns, min(500, args.requests)))      # warm-up
                rate, counts = asyncio.run(drive(port, conns, args.requests))
                results.append((name, conns, rate, counts))
                print(f"{name:16s} {conns:4d} connections: {rate:8.0f} decisions/s  {counts}", flush=True)
    finally:
        for name, p in procs:
            if name == "postgrey":
                p.terminate()
                p.wait(timeout=10)
            else:
                p.stop()
        if args.redis_url:
            try:
                import redis
                r = redis.Redis.from_url(args.redis_url)
                for k in r.scan_iter(match=f"owlery-bench:{os.getpid()}:*", count=1000):
                    r.delete(k)
            except Exception as e:  # noqa: BLE001 - cleanup is best effort; say why
                print(f"(could not clean Redis keys: {e})")
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nsummary (decisions/s; ratio to postgrey at the same concurrency)")
    for conns in args.connections:
        base = next(r for n, c, r, _ in results if n == "postgrey" and c == conns)
        for name, c, rate, _ in results:
            if c == conns:
                print(f"  {conns:4d} conns  {name:16s} {rate:8.0f}/s  x{rate / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
