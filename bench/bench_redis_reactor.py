"""Microbenchmark: CPU per greylist Redis call, on the reactor (ReactorRedis) vs through a thread.

The thread path is what policyd does today: RedisStore (redis-py, blocking) called from a
policyd BatchWorker thread, the answer handed back with callFromThread. The reactor path is
owlery/state/redis_reactor.py. Same Redis (OWLERY_TEST_REDIS_URL or the machine's
127.0.0.1:6379, a private key prefix, removed afterwards), same process, paths interleaved
in each repetition. Two calls: get_many of one key (a greylist read) and write_many of 50
adds (a write-behind flush). Two shapes: `lone` (one call in flight at a time: a lone
request, latency-bound) and `burst` (20 calls issued at once, awaited together).
Prints process CPU (all threads, time.process_time) and wall time per call, median of the
repetitions [min..max], with the load average before and after (the machine is shared).
Usage: .venv/bin/python bench/bench_redis_reactor.py [--calls 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twisted.internet import defer, task  # noqa: E402

from owlery.state.base import Write  # noqa: E402
from owlery.state.redis_reactor import ReactorRedis  # noqa: E402
from owlery.state.redis_store import RedisStore  # noqa: E402
from policyd.checks import BatchWorker  # noqa: E402

NOW = 1_700_000_000.0
BURST = 20


def thread_path(reactor, store):
    """(get, write) through a BatchWorker, batch functions shaped like the greylist check's."""
    worker = BatchWorker(reactor, queue_max=10_000, name="bench")

    def read_batch(items):     # one get_many for every queued read, as GreylistCheck._read_batch
        keys = sorted({k for ks, _ in items for k in ks})
        values = dict(zip(keys, store.get_many(keys, max(now for _, now in items))))
        return [(True, [values[k] for k in ks]) for ks, _ in items]

    def write_batch(items):    # one write_many per flight, as GreylistCheck._write_batch
        return [(True, store.write_many(writes)) for writes in items]
    return (lambda keys, now: worker.submit(read_batch, (keys, now)),
            lambda writes: worker.submit(write_batch, writes), worker)


async def measure(make_call, calls: int, shape: str) -> tuple[float, float]:
    """(CPU s, wall s) per call."""
    cpu, wall = time.process_time(), time.perf_counter()
    if shape == "lone":
        for _ in range(calls):
            await make_call()
    else:
        for _ in range(calls // BURST):
            await defer.gatherResults([make_call() for _ in range(BURST)])
    return (time.process_time() - cpu) / calls, (time.perf_counter() - wall) / calls


async def main(reactor, args):
    url = os.environ.get("OWLERY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"owlery-bench:{uuid.uuid4().hex}:"
    store = RedisStore(url, prefix=prefix + "t:", timeout=2)
    client = ReactorRedis(reactor, url, prefix=prefix + "r:", timeout=2)
    tget, twrite, worker = thread_path(reactor, store)
    paths = {"reactor": (client.get_many, client.write_many), "thread": (tget, twrite)}
    seq = itertools.count()

    def adds():     # 50 new keys per call: every add stores
        n = next(seq)
        return [Write("add", f"w:{n}:{i}", "1", 30.0, NOW) for i in range(50)]
    ops = {"get_many(1 key)": lambda get, write: get([f"grey:{next(seq)}"], NOW),   # a new key each call
           "write_many(50 adds)": lambda get, write: write(adds())}
    load_before = os.getloadavg()
    for get, write in paths.values():      # warm up: connect, scripts loaded
        await get(["grey:k"], NOW)
        await write(adds())
    results: dict = {}
    for _ in range(args.repeat):
        for op, call in ops.items():
            for shape in ("lone", "burst"):
                for name, (get, write) in paths.items():
                    got = await measure(lambda get=get, write=write, call=call: call(get, write), args.calls, shape)
                    results.setdefault((op, shape, name), []).append(got)
    load_after = os.getloadavg()
    client.close()
    worker.close()
    store.close()
    from tests.harness.stores import drop_redis_prefix
    drop_redis_prefix(url, prefix)

    print(f"Redis {url}, {args.calls} calls x {args.repeat} repetitions; burst = {BURST} in flight")
    print("load average before %.2f %.2f %.2f, after %.2f %.2f %.2f" % (*load_before, *load_after))
    print(f"{'call':22} {'shape':6} {'path':8} {'CPU us/call':>24} {'wall us/call':>24}")
    for (op, shape, name), runs in results.items():
        cpu = [c * 1e6 for c, _ in runs]
        wall = [w * 1e6 for _, w in runs]
        print(f"{op:22} {shape:6} {name:8} {statistics.median(cpu):8.1f} [{min(cpu):6.1f}..{max(cpu):6.1f}]"
              f" {statistics.median(wall):8.1f} [{min(wall):6.1f}..{max(wall):6.1f}]")
    for op in ops:
        for shape in ("lone", "burst"):
            r = statistics.median(c for c, _ in results[(op, shape, "reactor")])
            t = statistics.median(c for c, _ in results[(op, shape, "thread")])
            print(f"CPU ratio reactor/thread, {op}, {shape}: {r / t:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, options)))
