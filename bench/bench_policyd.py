"""Policy daemon benchmark: decisions/s and p50/p99 latency at 1, 10 and 100 reused connections.

Starts a private slapd (the harness seed directory), `owlery policyd` with the recipient
and quota checks on the LDAP backend (cache warmed before measuring; quota usage from a
maildirsize file), and Debian's postgrey on a private port and dbdir, then drives both
with the same stream of RCPT requests from an asyncio client (one request in flight per
connection, as Postfix's smtpd processes do). Prints one line per (server, connections).
Run: .venv/bin/python bench/bench_policyd.py [--requests N] [--seconds S]
Talks to: slapd, owlery policyd, postgrey (all started here, on loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from policyd.protocol import encode_request  # noqa: E402
from tests.harness.owlery_daemons import OwleryDaemons  # noqa: E402
from tests.harness.procs import ManagedProcess, free_port, wait_for_tcp  # noqa: E402
from tests.harness.slapd import Slapd  # noqa: E402

RECIPIENTS = ["alice@example.test", "bob@example.test", "erin@example.test", "carol@example.test",
              "nobody@example.test", "postmaster@example.test", "alice+tag@example.test"]


def requests_stream(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        rcpt = RECIPIENTS[i % len(RECIPIENTS)]
        out.append(encode_request({
            "request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
            "client_address": f"198.51.100.{i % 250 + 1}", "client_name": "mx.sender.test",
            "helo_name": "mx.sender.test", "sender": f"user{i % 97}@sender.test", "recipient": rcpt,
            "queue_id": "", "instance": f"{i:x}.0", "size": "2048", "recipient_count": "0",
            "sasl_username": "", "encryption_protocol": "", "stress": ""}))
    return out


async def one_connection(port: int, reqs: list[bytes], lat: list[float], deadline: float,
                         interval: float = 0.0, offset: float = 0.0) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    next_at = time.perf_counter() + offset
    try:
        for data in reqs:
            if time.perf_counter() > deadline:
                break
            if interval:
                # Paced (open loop per connection): Postfix's smtpd sends a request, then does SMTP.
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += interval
            t0 = time.perf_counter()
            writer.write(data)
            reply = await reader.readuntil(b"\n\n")
            lat.append(time.perf_counter() - t0)
            if not reply.startswith(b"action="):
                raise RuntimeError(f"bad reply {reply!r}")
            done += 1
    finally:
        writer.close()
    return done


async def run_load(port: int, conns: int, total: int, seconds: float,
                   rate: float = 0.0) -> tuple[int, float, list[float]]:
    per = max(1, total // conns)
    stream = requests_stream(per * conns)
    lat: list[float] = []
    t0 = time.perf_counter()
    deadline = t0 + seconds
    interval = conns / rate if rate else 0.0
    counts = await asyncio.gather(*(one_connection(port, stream[i * per:(i + 1) * per], lat, deadline,
                                                   interval, interval * i / conns)
                                    for i in range(conns)))
    return sum(counts), time.perf_counter() - t0, lat


def measure(name: str, port: int, conns: int, total: int, seconds: float, rate: float = 0.0) -> dict:
    n, wall, lat = asyncio.run(run_load(port, conns, total, seconds, rate))
    lat.sort()
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
    row = {"server": name, "conns": conns, "n": n, "rate": n / wall, "p50": q[49] * 1000, "p99": q[98] * 1000}
    mode = f"paced {rate:.0f}/s" if rate else "saturated"
    print(f"{name:<16} {mode:<14} conns={conns:<4} requests={n:<6} decisions/s={row['rate']:8.0f} "
          f"p50={row['p50']:6.2f} ms  p99={row['p99']:6.2f} ms", flush=True)
    return row


def start_postgrey(workdir: Path) -> tuple[ManagedProcess, int]:
    exe = shutil.which("postgrey") or "/usr/sbin/postgrey"
    dbdir = workdir / "postgrey-db"
    dbdir.mkdir()
    shutil.chown(dbdir, "postgrey", "postgrey")
    empty = workdir / "empty"
    empty.write_text("")
    port = free_port()
    proc = ManagedProcess([exe, f"--inet=127.0.0.1:{port}", f"--dbdir={dbdir}", "--delay=300",
                           f"--pidfile={workdir}/postgrey.pid", f"--whitelist-clients={empty}",
                           f"--whitelist-recipients={empty}"], "postgrey", workdir / "postgrey.log").start()
    wait_for_tcp(port, timeout=30, proc=proc, what="postgrey")
    return proc, port


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=6000, help="requests per run (default 6000)")
    ap.add_argument("--seconds", type=float, default=8.0, help="cap per run in seconds (default 8)")
    ap.add_argument("--connections", default="1,10,100")
    ap.add_argument("--rate", type=float, default=2000.0,
                    help="offered load for the paced latency runs, requests/s over all connections")
    args = ap.parse_args()
    conns_list = [int(c) for c in args.connections.split(",")]
    work = Path(tempfile.mkdtemp(prefix="owlery-bench-policyd-"))
    os.chmod(work, 0o755)
    slapd = Slapd(work / "slapd").start()
    mail = work / "mail"
    (mail / "example.test" / "alice" / "Maildir").mkdir(parents=True)
    (mail / "example.test" / "alice" / "Maildir" / "maildirsize").write_text("10485760S\n4096 2\n")
    daemons = OwleryDaemons(work / "owlery", which=("policyd",), extra_config=(
        'policyd_checks = { RCPT = ["recipient", "quota"] }\n'
        'directory_backend = "ldap"\n'
        f'ldap_servers = ["{slapd.url}"]\nldap_base_dn = "{slapd.base_dn}"\n'
        'log_level = "warning"\n'
        f'maildir_path_template = "{mail}/{{domain}}/{{localpart}}/Maildir"\n'))
    postgrey = None
    rows = []
    try:
        daemons.start()
        postgrey, pg_port = start_postgrey(work)
        port = daemons.ports["policyd"]
        measure("owlery(warm-up)", port, 1, len(RECIPIENTS) * 4, 5)      # fills the directory cache
        for c in conns_list:
            rows.append(measure("owlery policyd", port, c, args.requests, args.seconds))
        for c in conns_list:
            if c > 1:
                measure("owlery policyd", port, c, args.requests, args.seconds, rate=args.rate)
        for c in conns_list:
            rows.append(measure("postgrey", pg_port, c, args.requests // 4, args.seconds))
    finally:
        if postgrey is not None:
            postgrey.stop()
        daemons.stop()
        slapd.stop()
        shutil.rmtree(work, ignore_errors=True)
    by = {(r["server"], r["conns"]): r for r in rows}
    for c in conns_list:
        o, p = by[("owlery policyd", c)], by[("postgrey", c)]
        print(f"conns={c:<4} owlery/postgrey decisions/s = {o['rate'] / p['rate']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
