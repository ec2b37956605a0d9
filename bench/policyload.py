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
p50/p99 latency, the count of each action word, and how many answers each connection got
(`replied`, by connection number: what a bench needs to know which requests were answered).
The children are the C twin `policyload.c` (same requests, same protocol), built with the
system's cc into a cache directory on first use, because the Python child's own CPU per
request came out of the 2 cores the server under test shares; `generator="python"` (or
no C compiler) runs the Python child instead.
Used by: bench/bench_policyd.py, bench/bench_greylist.py, bench/bench_policy_mix.py. Child entry: `python policyload.py --child`.
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


# The realistic profile (bench/bench_policy_mix.py): what an MX's policy service sees at RCPT
# with every check on. Per connection, a cycle of 6 requests in 4 messages (1.5 RCPTs per
# message; the RCPTs of one message share its `instance`, so its SPF verdict is computed once):
#   0: new message, 1 RCPT    1: pool message, 1 RCPT
#   2-3: new message, 2 RCPTs  4-5: pool message, 2 RCPTs
# New messages come from 172.16.0.0/12 with a sender salted per run: every triplet never seen.
# Pool messages are RL_PAIRS (client, sender) pairs, each with 2 recipients: 2*RL_PAIRS
# triplets, cycled; the bench sends them all before measuring, so they are known (passed).
# Recipients are user0..user{RL_RCPTS-1}@example.org; the bench's directory leaves out
# RL_UNKNOWN and makes RL_OVER_QUOTA full. Sender domains are sender{d}.example.net, whose SPF
# (answered by the bench's DNS stub) is rl_spf(d).
RL_PAIRS = 1000
RL_NETS = 500          # pool client /24s: pair q is host q // RL_NETS + 1 of /24 number q % RL_NETS
RL_DOMAINS = 100
RL_RCPTS = 50
RL_UNKNOWN = (9, 19, 29, 39, 49)     # not hosted: 550 5.1.1
RL_OVER_QUOTA = (4,)                 # mailbox full: 552 5.2.2
_RL_MSG = (0, 1, 2, 2, 3, 3)         # message of each position in the cycle of 6


def rl_spf(d: int) -> str:
    """SPF of sender{d}.example.net: 70% pass, 10% fail (-all), 20% none (no record)."""
    return "fail" if d % 10 == 7 else "none" if d % 10 >= 8 else "pass"


def realistic_parts(i: int, conn: int) -> dict:
    """What request i of connection conn is, without the salt: the fields the bytes come from."""
    c, pos = divmod(i, 6)
    m = 4 * c + _RL_MSG[pos]
    if pos in (0, 2, 3):
        n = 2 * c + (0 if pos == 0 else 1)              # new message number on this connection
        d = (n * 37 + conn * 11) % RL_DOMAINS
        return {"new": True, "n": n, "d": d, "instance": f"{conn:x}.{m:x}",
                "client": f"172.{16 + conn % 16}.{(n // 250) % 256}.{n % 250 + 1}",
                "rcpt": (7 * n + 3 * conn + 13 * (pos == 3)) % RL_RCPTS}
    p = 2 * c + (0 if pos == 1 else 1)                  # pool message number on this connection
    q = (p * 7919 + conn * 104729) % RL_PAIRS
    s = c % 2 if pos == 1 else pos - 4                  # which of the pair's 2 recipients
    net = q % RL_NETS
    return {"new": False, "q": q, "d": q % RL_DOMAINS, "instance": f"{conn:x}.{m:x}",
            "client": f"10.{net % 250}.{net // 250}.{q // RL_NETS + 1}",
            "rcpt": (2 * q + s + q // 50) % RL_RCPTS}


def _realistic_request(i: int, conn: int, salt: str) -> bytes:
    r = realistic_parts(i, conn)
    d = r["d"]
    if r["new"]:
        sender, name = f"n{salt}x{conn}x{r['n']}@sender{d}.example.net", "unknown"
    else:
        sender, name = f"u{r['q']}@sender{d}.example.net", f"mx.sender{d}.example.net"
    return (f"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
            f"client_address={r['client']}\nclient_name={name}\nreverse_client_name={name}\n"
            f"helo_name=mx.sender{d}.example.net\nsender={sender}\nrecipient=user{r['rcpt']}@example.org\n"
            f"recipient_count=0\nqueue_id=\ninstance={r['instance']}\nsize=20480\netrn_domain=\nstress=\n"
            f"sasl_method=\nsasl_username=\nsasl_sender=\nccert_subject=\nccert_issuer=\n"
            f"ccert_fingerprint=\nencryption_protocol=TLSv1.3\nencryption_cipher=TLS_AES_256_GCM_SHA384\n"
            f"encryption_keysize=256\nclient_port=40000\npolicy_context=\nserver_address=192.0.2.1\n"
            f"server_port=25\n\n").encode()


def realistic_pool(salt: str = "") -> list[bytes]:
    """Every triplet of the realistic profile's pool once (to make them known before measuring)."""
    out = []
    for q in range(RL_PAIRS):
        for s in (0, 1):
            d, net = q % RL_DOMAINS, q % RL_NETS
            name = f"mx.sender{d}.example.net"
            out.append((f"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
                        f"client_address=10.{net % 250}.{net // 250}.{q // RL_NETS + 1}\nclient_name={name}\n"
                        f"reverse_client_name={name}\nhelo_name={name}\nsender=u{q}@sender{d}.example.net\n"
                        f"recipient=user{(2 * q + s + q // 50) % RL_RCPTS}@example.org\nrecipient_count=0\n"
                        f"queue_id=\ninstance=warm{salt}.{q:x}.{s}\nsize=20480\n\n").encode())
    return out


PROFILES = {"policyd": _policyd_request, "greylist": _greylist_request}
# Made per request in the load process instead of pre-encoded: no request repeats.
FRESH_PROFILES = {"greylist-new": _greylist_new_request, "greylist-mix": _greylist_mix_request,
                  "realistic": _realistic_request}
# What each greylist profile sends, printed beside the figures.
POOLS = {"greylist": "a pool of 2000 triplets (500 /24s, 97 sender domains, 50 recipients), cycled",
         "greylist-new": "every request a triplet never seen before (salted per run)",
         "greylist-mix": "50% never-seen triplets, 50% repeats from the 2000-triplet pool",
         "realistic": (f"50% never-seen triplets (salted per run, clients in 172.16.0.0/12), 50% repeats from a "
                       f"pool of {2 * RL_PAIRS} triplets ({RL_PAIRS} client+sender pairs x 2 recipients; "
                       f"{RL_NETS} client /24s, {RL_DOMAINS} sender domains, {RL_RCPTS} recipients of which "
                       f"{len(RL_UNKNOWN)} unknown and {len(RL_OVER_QUOTA)} over quota); 1.5 RCPTs per message; "
                       f"sender SPF 70% pass, 10% fail, 20% none")}
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
    replied = [idx[k] - inflight[k] for k in range(n)]   # answers each connection got
    return {"done": done, "start": start, "end": end, "lat": lat, "words": words, "replied": replied}



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
    replied = [n for r in results for n in r["replied"]]   # children hold consecutive connections
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0] if lat else 0.0] * 99
    return {"done": done, "rate": done / wall if wall else 0.0, "p50": q[49] * 1000, "p99": q[98] * 1000,
            "words": words, "offered": rate, "generator_cpu_us": own_cpu / max(1, done) * 1e6,
            "replied": replied}


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
