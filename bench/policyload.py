"""Cheap load generator for Postfix policy servers (owlery policyd, postgrey), shared by the benches.

Runs as its own process(es) so it does not share an interpreter with anything measured, and
costs little per request: raw non-blocking sockets on one epoll loop, requests pre-encoded,
one request in flight per connection (what Postfix's smtpd processes do). Two modes:
- saturated: every connection sends its next request as soon as its reply is in;
- paced: each connection sends on a fixed schedule (offered load = `rate` over all
  connections, start times spread evenly); latency is measured from the SCHEDULED send
  time, so a slow reply that delays the next request is counted (no coordinated omission).
`run(port, ...)` starts `procs` child processes (each with its share of the connections),
starts them together, and merges their results: decisions/s over the common wall time,
p50/p99 latency, and the count of each action word.
The children are the C twin `policyload.c` (same requests, same protocol), built with the
system's cc into a cache directory on first use, because the Python child's own CPU per
request came out of the 2 cores the server under test shares; `generator="python"` (or
no C compiler) runs the Python child instead.
Used by: bench/bench_policyd.py, bench/bench_greylist.py. Child entry: `python policyload.py --child`.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import resource
import shutil
import selectors
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

_RECIPIENTS = ["alice@example.test", "bob@example.test", "erin@example.test", "carol@example.test",
               "nobody@example.test", "postmaster@example.test", "alice+tag@example.test"]


def _policyd_request(i: int, conn: int) -> bytes:
    # Recipient + quota bench: a handful of hosted recipients (known, unknown, full, +tag).
    rcpt = _RECIPIENTS[(i + conn) % len(_RECIPIENTS)]
    return (f"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
            f"client_address=198.51.100.{(i + conn) % 250 + 1}\nclient_name=mx.sender.test\n"
            f"reverse_client_name=mx.sender.test\nhelo_name=mx.sender.test\n"
            f"sender=user{(i * 31 + conn) % 97}@sender.test\nrecipient={rcpt}\nrecipient_count=0\n"
            f"queue_id=\ninstance={conn:x}.{i:x}\nsize=2048\netrn_domain=\nstress=\n"
            f"sasl_method=\nsasl_username=\nsasl_sender=\nccert_subject=\nccert_issuer=\n"
            f"ccert_fingerprint=\nencryption_protocol=\nencryption_cipher=\nencryption_keysize=0\n"
            f"client_port=40000\npolicy_context=\nserver_address=192.0.2.1\nserver_port=25\n\n").encode()


def _greylist_request(i: int, conn: int) -> bytes:
    # A pool of 2000 triplets over 500 /24s: first sight is greylisted, later ones wait (delay 300 s).
    t = (i * 7919 + conn * 104729) % 2000
    return (f"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
            f"client_address=10.{t % 250}.{t // 250}.{(i % 5) + 1}\nclient_name=unknown\n"
            f"helo_name=h{t}.example.net\nsender=s{t}@sender{t % 97}.example.net\n"
            f"recipient=user{t % 50}@example.org\ninstance={conn}.{i}\nqueue_id=\nsize=0\n\n").encode()


def _greylist_new_request(i: int, conn: int, salt: str) -> bytes:
    # Every request a triplet never seen before (salted per run): each one is a store write
    # (first sight, deferred), the worst case for the store and the memory in front of it.
    return (f"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
            f"client_address=10.{conn % 250}.{(i // 250) % 250}.{i % 250 + 1}\nclient_name=unknown\n"
            f"helo_name=h{conn}.example.net\nsender=s{salt}x{conn}x{i}@sender{i % 97}.example.net\n"
            f"recipient=user{i % 50}@example.org\ninstance={conn}.{i}\nqueue_id=\nsize=0\n\n").encode()


def _greylist_mix_request(i: int, conn: int, salt: str) -> bytes:
    # The realistic mix: even requests a never-seen triplet (as greylist-new), odd ones a
    # repeat from the 2000-triplet pool (as greylist): half first sights, half repeats.
    return _greylist_new_request(i, conn, salt) if i % 2 == 0 else _greylist_request(i, conn)


PROFILES = {"policyd": _policyd_request, "greylist": _greylist_request}
# Made per request in the load process instead of pre-encoded: no request repeats.
FRESH_PROFILES = {"greylist-new": _greylist_new_request, "greylist-mix": _greylist_mix_request}
# What each greylist profile sends, printed beside the figures.
POOLS = {"greylist": "a pool of 2000 triplets (500 /24s, 97 sender domains, 50 recipients), cycled",
         "greylist-new": "every request a triplet never seen before (salted per run)",
         "greylist-mix": "50% never-seen triplets, 50% repeats from the 2000-triplet pool"}
_PER_CONN = 400   # distinct pre-encoded requests per connection, cycled


def _child(args: dict) -> dict:
    """One load process: connect, wait for 'go' on stdin, drive, print results as JSON."""
    fresh = FRESH_PROFILES.get(args["profile"])
    make = PROFILES.get(args["profile"])
    salt = f"{os.getpid()}{time.time_ns() % 10**9}"
    first, count = args["first_conn"], args["conns"]
    seconds, rate_per_conn, limit = args["seconds"], args["rate_per_conn"], args["requests"]
    sel = selectors.EpollSelector()
    socks = []
    reqs = []
    for c in range(first, first + count):
        s = socket.create_connection(("127.0.0.1", args["port"]))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
        reqs.append([make(i, c) for i in range(_PER_CONN)] if make else [])
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    n = len(socks)
    sent_at = [0.0] * n        # scheduled (paced) or actual (saturated) send time of the in-flight request
    idx = [0] * n
    buf = [b""] * n
    inflight = [False] * n
    lat: list[float] = []
    words: dict[str, int] = {}
    fds = {}
    for k, s in enumerate(socks):
        sel.register(s, selectors.EVENT_READ, k)
        fds[k] = s
    start = time.perf_counter()
    deadline = start + seconds
    done = 0
    sent = 0
    interval = 1.0 / rate_per_conn if rate_per_conn else 0.0
    due: list[tuple[float, int]] = []

    def send(k: int, at: float) -> None:
        nonlocal sent
        sent_at[k] = at
        inflight[k] = True
        fds[k].send(fresh(idx[k], first + k, salt) if fresh else reqs[k][idx[k] % _PER_CONN])
        idx[k] += 1
        sent += 1

    if interval:
        for k in range(n):
            heapq.heappush(due, (start + interval * k / n, k))
    else:
        now = time.perf_counter()
        for k in range(n):
            send(k, now)
    owed: dict[int, float] = {}    # paced: conn -> earliest slot missed while its reply was outstanding
    while True:
        now = time.perf_counter()
        if now >= deadline or (limit and done >= limit):
            break
        if interval:
            while due and due[0][0] <= now:
                at, k = heapq.heappop(due)
                heapq.heappush(due, (at + interval, k))
                if inflight[k]:
                    owed.setdefault(k, at)
                else:
                    send(k, at)
            timeout = max(0.0, min(due[0][0] - now, deadline - now)) if due else deadline - now
        else:
            timeout = deadline - now
        for key, _ in sel.select(timeout):
            k = key.data
            try:
                data = fds[k].recv(65536)
            except BlockingIOError:
                continue
            if not data:
                raise RuntimeError(f"server closed connection {k} (after {idx[k]} requests)")
            b = buf[k] + data
            if not b.endswith(b"\n\n"):
                buf[k] = b
                continue
            buf[k] = b""
            t = time.perf_counter()
            lat.append(t - sent_at[k])
            inflight[k] = False
            done += 1
            w = b[7:].split(None, 1)[0] if b.startswith(b"action=") else b"?"
            word = w.decode()
            words[word] = words.get(word, 0) + 1
            if interval:
                if k in owed:
                    send(k, owed.pop(k))
            else:
                send(k, t)
    end = time.perf_counter()
    for s in socks:
        s.close()
    return {"done": done, "start": start, "end": end, "lat": lat, "words": words}



_built: dict[str, str | None] = {}


def c_generator() -> str | None:
    """Path of the built C child (built once per source version), None without a compiler."""
    source = os.path.join(HERE, "policyload.c")
    if source in _built:
        return _built[source]
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    exe = None
    if cc:
        with open(source, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "owlery-bench")
        os.makedirs(cache, exist_ok=True)
        exe = os.path.join(cache, f"policyload-{digest}")
        if not os.path.exists(exe):
            tmp = f"{exe}.{os.getpid()}"
            built = subprocess.run([cc, "-O2", "-Wall", "-o", tmp, source], capture_output=True, text=True)
            if built.returncode != 0:
                print(f"(C load generator not built, using the Python one: {built.stderr.strip()})")
                exe = None
            else:
                os.replace(tmp, exe)
    _built[source] = exe
    return exe


def generator_name(generator: str = "auto") -> str:
    """Which child `run` uses: "c" or "python"."""
    return "c" if generator != "python" and c_generator() else "python"


def run(port: int, *, profile: str, conns: int, seconds: float, rate: float = 0.0,
        procs: int = 1, requests: int = 0, generator: str = "auto") -> dict:
    """Drive `port` with `conns` connections from `procs` processes; merged results.

    rate 0 = saturated; otherwise offered decisions/s over all connections (paced).
    requests caps the decisions per process (0 = only the time limit).
    generator: "auto" (C when it builds), "c" or "python".
    """
    procs = max(1, min(procs, conns))
    exe = c_generator() if generator != "python" else None
    if generator == "c" and exe is None:
        raise RuntimeError("the C load generator could not be built")
    children = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for p in range(procs):
        share = conns // procs + (1 if p < conns % procs else 0)
        first = sum(conns // procs + (1 if q < conns % procs else 0) for q in range(p))
        spec = {"port": port, "profile": profile, "first_conn": first, "conns": share,
                "seconds": seconds, "rate_per_conn": rate / conns if rate else 0.0, "requests": requests}
        if exe:
            argv = [exe] + [str(spec[k]) for k in ("port", "profile", "first_conn", "conns", "seconds",
                                                  "rate_per_conn", "requests")]
        else:
            argv = [sys.executable, os.path.join(HERE, "policyload.py"), "--child", json.dumps(spec)]
        children.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for ch in children:
        line = ch.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"load process failed to connect: {line!r}")
    for ch in children:
        ch.stdin.write("go\n")
        ch.stdin.flush()
    results = []
    for ch in children:
        out, _ = ch.communicate()
        if ch.returncode != 0:
            raise RuntimeError(f"load process exited {ch.returncode}")
        results.append(json.loads(out))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    done = sum(r["done"] for r in results)
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    lat = sorted(x for r in results for x in r["lat"])
    words: dict[str, int] = {}
    for r in results:
        for w, c in r["words"].items():
            words[w] = words.get(w, 0) + c
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0] if lat else 0.0] * 99
    return {"done": done, "rate": done / wall if wall else 0.0, "p50": q[49] * 1000, "p99": q[98] * 1000,
            "words": words, "offered": rate, "generator_cpu_us": own_cpu / max(1, done) * 1e6}


def summarise(rows: list[dict]) -> dict:
    """Median and spread (min..max) of rate, p50, p99 over repetitions."""
    out = {}
    for key in ("rate", "p50", "p99"):
        vals = [r[key] for r in rows]
        out[key] = statistics.median(vals)
        out[key + "_min"] = min(vals)
        out[key + "_max"] = max(vals)
    out["words"] = rows[-1]["words"]
    out["n"] = len(rows)
    return out


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(_child(json.loads(sys.argv[2]))))
    else:
        sys.exit("usage: policyload.py --child JSON (run by bench/bench_policyd.py, bench_greylist.py)")
