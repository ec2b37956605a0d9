"""What Prometheus metrics cost the policy daemon: decisions/s and CPU per decision, metrics off and on.

Starts two `owlery policyd` with the same settings (files directory, the recipient check on a
warm cache: the cheapest decision, so the largest share for the metrics), one without and one
with `policyd_metrics_listen`, and drives them with bench/policyload.py in turn (never both at
once), interleaved over --repeat rounds; the "on" daemon is scraped after each run, and its
decision counter must have moved by the decisions answered (plus those in flight when the
load stopped, at most one per connection). Prints the median [min..max] of
decisions/s and of the server's CPU per decision, and the overhead of metrics on both; the
target is under 3%. `--workers N` runs N policyd workers each (multiprocess metrics).
Run: .venv/bin/python bench/bench_metrics.py [--seconds 3] [--repeat 5] [--connections 10] [--workers 1]
Talks to: two owlery policyd (started here, on loopback).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import policyload  # noqa: E402
from bench_policyd import cpu_seconds  # noqa: E402
from tests.harness.owlery_daemons import OwleryDaemons  # noqa: E402
from tests.harness.procs import free_port  # noqa: E402


def decisions_counted(port: int) -> float:
    """The sum of owlery_policyd_decisions_total in one scrape."""
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "owlery_policyd_decisions_total")


_CHILD_MODES = ("off", "on", "on-multiprocess")


def child(mode: str, decisions: int, workdir: str) -> None:
    """In-process: the pipeline alone (recipient check, warm cache, no I/O), `decisions` times;
    prints decisions/s. The metrics' share is largest here: nothing else (sockets, log lines)
    dilutes it."""
    if mode == "on-multiprocess":
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(dir=workdir)
    from twisted.internet import task

    from owlery import metrics
    from owlery.settings import parse_text
    from policyd.checks import CheckContext, InlineExecutor
    from policyd.pipeline import Decision, Pipeline
    from policyd.protocol import RequestDecoder

    if mode != "off":
        metrics.enable()
    settings = parse_text(f'files_mailboxes = "{workdir}/mailboxes"\n')
    pipeline = Pipeline(settings, CheckContext(settings, task.Clock(), InlineExecutor()), {"RCPT": ["recipient"]})
    decoder = RequestDecoder(line_length_max=4096, attributes_max=100)
    requests = [r for i in range(400) for r in decoder.feed(policyload._policyd_request(i, 0))]
    session = pipeline.new_session()
    for request in requests:       # fill the directory cache
        pipeline.decide(request, session, 0.0)
    started = time.perf_counter()
    for i in range(decisions):
        result = pipeline.decide_now(requests[i % len(requests)], session, 0.0)
        assert isinstance(result, Decision)
    print(decisions / (time.perf_counter() - started))


def in_process(work: Path, rounds: int, decisions: int) -> dict[str, list[float]]:
    """decisions/s per mode, each round a fresh process per mode, modes interleaved."""
    out: dict[str, list[float]] = {m: [] for m in _CHILD_MODES}
    for _ in range(rounds):
        for mode in _CHILD_MODES:
            done = subprocess.run([sys.executable, __file__, "--child", mode, str(decisions), str(work)],
                                  capture_output=True, text=True, check=True, cwd=ROOT)
            out[mode].append(float(done.stdout.split()[-1]))
    return out


def median_spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.0f} [{min(values):.0f}..{max(values):.0f}]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each run (default 3)")
    ap.add_argument("--repeat", type=int, default=5, help="rounds, off and on interleaved (default 5)")
    ap.add_argument("--connections", type=int, default=10, help="connections of the load (default 10)")
    ap.add_argument("--workers", type=int, default=1, help="policyd_workers of both daemons (default 1)")
    ap.add_argument("--load-generator", choices=("auto", "c", "python"), default="auto")
    ap.add_argument("--decisions", type=int, default=200000,
                    help="decisions per in-process run (default 200000)")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "N", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return 0
    work = Path(tempfile.mkdtemp(prefix="owlery-bench-metrics-"))
    os.chmod(work, 0o755)
    (work / "mailboxes").write_text("".join(f"{u}@example.test\n" for u in ("alice", "bob", "erin", "carol",
                                                                             "postmaster")))
    base = (f'files_mailboxes = "{work}/mailboxes"\npolicyd_checks = {{ RCPT = ["recipient"] }}\n'
            f'state_sqlite_path = "{work}/state.sqlite"\npolicyd_workers = {args.workers}\n')
    metrics_port = free_port()
    daemons = {"off": OwleryDaemons(work / "off", which=("policyd",), extra_config=base),
               "on": OwleryDaemons(work / "on", which=("policyd",), extra_config=base
                                   + f'policyd_metrics_listen = "tcp:127.0.0.1:{metrics_port}"\n')}
    rates: dict[str, list[float]] = {"off": [], "on": []}
    cpus: dict[str, list[float]] = {"off": [], "on": []}
    mismatches = []
    try:
        for d in daemons.values():
            d.start()
        for d in daemons.values():      # warm-up: directory cache, code paths
            policyload.run(d.ports["policyd"], profile="policyd", conns=args.connections, seconds=1.0,
                           generator=args.load_generator)
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; policyd workers="
              f"{args.workers}; {args.connections} connections, saturated; load generator: "
              f"{policyload.generator_name(args.load_generator)}")
        for _ in range(args.repeat):
            for name, d in daemons.items():
                pids = [d.procs["policyd"].pid]
                counted = decisions_counted(metrics_port) if name == "on" else 0.0
                cpu0 = cpu_seconds(pids)
                r = policyload.run(d.ports["policyd"], profile="policyd", conns=args.connections,
                                   seconds=args.seconds, generator=args.load_generator)
                cpus[name].append((cpu_seconds(pids) - cpu0) / max(1, r["done"]) * 1e6)
                rates[name].append(r["rate"])
                if name == "on":
                    # The load stops counting with one request in flight per connection, which
                    # the daemon still answers (and counts): up to `connections` more.
                    # With workers, the ones that did not answer the scrape flush every second.
                    deadline = time.monotonic() + 5
                    while True:
                        moved = decisions_counted(metrics_port) - counted
                        if 0 <= moved - r["done"] <= args.connections or time.monotonic() > deadline:
                            break
                        time.sleep(0.1)
                    if not 0 <= moved - r["done"] <= args.connections:
                        mismatches.append((r["done"], moved))
    finally:
        for d in daemons.values():
            d.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\ndaemon   decisions/s median [min..max]   server CPU per decision (us)")
    for name in ("off", "on"):
        print(f"{name:<8} {median_spread(rates[name])}        {median_spread(cpus[name])}")
    rate_cost = 1 - statistics.median(rates["on"]) / statistics.median(rates["off"])
    cpu_cost = statistics.median(cpus["on"]) / statistics.median(cpus["off"]) - 1
    print(f"overhead of metrics (daemon): {rate_cost * 100:+.1f}% decisions/s, {cpu_cost * 100:+.1f}% CPU "
          f"per decision (target < 3%; the spread above is the machine's noise)")
    work.mkdir(parents=True, exist_ok=True)
    (work / "mailboxes").write_text("".join(f"{u}@example.test\n" for u in ("alice", "bob", "erin", "carol",
                                                                              "postmaster")))
    try:
        pure = in_process(work, args.repeat, args.decisions)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    best_off = max(pure["off"])
    print(f"\nin-process pipeline (best of {args.repeat} runs of {args.decisions} decisions; no sockets, no log lines)")
    for mode in _CHILD_MODES:
        best = max(pure[mode])
        extra_us = (1 / best - 1 / best_off) * 1e6
        print(f"{mode:<16} {best:9.0f} decisions/s  [{min(pure[mode]):.0f}..{best:.0f}]  "
              f"overhead {(1 - best / best_off) * 100:+.1f}%  = {extra_us:+.2f} us per decision, "
              f"{extra_us / statistics.median(cpus['off']) * 100:+.2f}% of the daemon's CPU per decision")
    print("counter check: " + ("owlery_policyd_decisions_total moved by the decisions answered (plus the "
                               "requests in flight at the stop) in every run" if not mismatches
                               else f"MISMATCH (answered, counted): {mismatches}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
