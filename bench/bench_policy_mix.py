"""Policy benchmark on the realistic mix: every RCPT check on, postgrey in the same run.

What an MX's policy service sees at RCPT (bench/policyload.py, profile `realistic`: half
never-seen triplets salted per run, half repeats from a pool of known ones, 1.5 RCPTs per
message, the pool's sizes printed) driven into:
- `owlery policyd` with policyd_checks RCPT = recipient, quota, spf, greylist, one worker per
  core (--workers), greylist state in SQLite on tmpfs, then in Redis (the machine's
  127.0.0.1:6379, a private key prefix; --no-redis skips it; Redis's own CPU is not counted);
  the directory is the `files` backend (Postfix-style map files: what most postmasters run,
  a single host with virtual maps, and Owlery's embedded default; LDAP is measured by
  bench/bench_policyd.py): 50 recipients, 5 of them unknown (550 5.1.1), one over quota from
  its maildirsize (552 5.2.2), the others under quota, read from their maildirsize;
  SPF: 100 sender domains, 70% pass, 10% fail (550 5.7.23), 20% no record, HELO checked too;
  answered by the DNS stub (tests/harness/dns.py) behind `DnsCache`, a caching front as a
  local resolver (unbound) is on a real MX, so DNS is cached but every new message still
  costs a full SPF evaluation (pyspf, two lookups). "SPF (cached)" is Owlery's per-message
  cache: the second RCPT of a message reuses the first one's verdict;
- postgrey (Debian's package, its shipped whitelists) with its database on disk, as Debian
  runs it (BerkeleyDB, a sync per write), and on tmpfs for reference. Postgrey only
  greylists: Owlery does more work per request (directory, quota, SPF, then greylist).
Both use greylist delay 1 s so the pool's triplets can be made known before measuring
(sent once, deferred; after the delay sent again, passed): repeats are then passed triplets,
as returning senders are on a real MX; new triplets are deferred whatever the delay.
Runs, servers interleaved in each of --repeat repetitions: saturated at c=1, 10, 100
(--connections) and paced at --rate (default 5,000 decisions/s) at c=10 and 100, latency
from the scheduled send time. Prints medians [min..max], server CPU per decision (and the
DNS front's), the ratio to postgrey(disk), the fraction of each action word per server
(checked against what the profile must give: the run fails loudly on anything else), the
per-check tallies of owlery's decision log, and a summary with the targets (>= 10x
postgrey(disk) at c=10 and 100; p99 < 5 ms paced at c=100), met or NOT met.
Run: .venv/bin/python bench/bench_policy_mix.py [--seconds 2] [--repeat 3] [--rate 5000] [--no-redis]
Talks to: owlery policyd, postgrey, Redis, the DNS stub (all on loopback). Profile tested by
tests/bench/test_policyload.py.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import policyload  # noqa: E402
from bench_greylist import drop_redis_keys  # noqa: E402
from bench_policyd import cpu_seconds, fmt  # noqa: E402
from tests.harness.dns import DNSStub  # noqa: E402
from tests.harness.owlery_daemons import OwleryDaemons  # noqa: E402
from tests.harness.procs import ManagedProcess, free_port, wait_for_tcp  # noqa: E402

PROFILE = "realistic"
DELAY = 1                      # greylist delay of both servers, seconds (see the docstring)
PASSING = ("DUNNO", "PREPEND")
WORDS = ("DEFER_IF_PERMIT", "550", "552") + PASSING    # owlery rejects with the code: action=550 5.1.1 ...
CLASSES = ("DEFER_IF_PERMIT", "550", "552", "pass")
TOLERANCE = 0.005              # largest gap between an action word's expected and seen fraction


class DnsCache:
    """A caching DNS front on 127.0.0.1 (one thread): asks the stub once per question, then
    answers from memory with the client's query id, as a local caching resolver does."""

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)            # to see stop() without a message
        self.port = self.sock.getsockname()[1]
        self.cache: dict[bytes, bytes] = {}
        self.hits = self.misses = 0
        self.tid = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-cache", daemon=True)

    def start(self) -> DnsCache:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def cpu_seconds(self) -> float:
        """CPU used by the front's thread so far (from /proc)."""
        fields = Path(f"/proc/self/task/{self.tid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _ask(self, query: bytes) -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2.0)
            s.sendto(query, self.upstream)
            while True:
                reply, _ = s.recvfrom(65536)
                if reply[:2] == query[:2]:
                    return reply

    def _serve(self) -> None:
        self.tid = threading.get_native_id()
        while not self._stop.is_set():
            try:
                query, client = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(query) < 12:
                continue
            key = query[2:]              # everything but the id: flags, question, EDNS
            reply = self.cache.get(key)
            if reply is None:
                self.misses += 1
                try:
                    reply = self._ask(query)[2:]
                except OSError:
                    continue             # the client times out: SPF temperror, which the checks catch
                self.cache[key] = reply
            else:
                self.hits += 1
            self.sock.sendto(query[:2] + reply, client)


def dns_zone(stub: DNSStub) -> None:
    """SPF of the profile's sender domains (policyload.rl_spf); HELO names exist, without SPF."""
    for d in range(policyload.RL_DOMAINS):
        domain = f"sender{d}.example.net"
        stub.add(domain, "A", f"192.0.2.{d % 250 + 1}")
        stub.add(f"mx.{domain}", "A", f"192.0.2.{d % 250 + 1}")
        spf = policyload.rl_spf(d)
        if spf == "pass":
            stub.add(domain, "TXT", "v=spf1 ip4:10.0.0.0/8 ip4:172.16.0.0/12 -all")
        elif spf == "fail":
            stub.add(domain, "TXT", "v=spf1 -all")


def directory(work: Path) -> str:
    """Files directory of the profile's recipients; the settings naming it."""
    mail = work / "mail"
    boxes, quotas = [], ["@example.org 100M"]
    for r in range(policyload.RL_RCPTS):
        if r in policyload.RL_UNKNOWN:
            continue
        boxes.append(f"user{r}@example.org example.org/user{r}/Maildir")
        maildir = mail / "example.org" / f"user{r}" / "Maildir"
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True)
        used = 104857600 if r in policyload.RL_OVER_QUOTA else 1048576 * (r + 1)
        (maildir / "maildirsize").write_text(f"104857600S\n{used} {r + 10}\n")
    (work / "mailboxes").write_text("\n".join(boxes) + "\n")
    (work / "quotas").write_text("\n".join(quotas) + "\n")
    (work / "domains").write_text("example.org\n")
    return (f'directory_backend = "files"\nfiles_mailboxes = "{work}/mailboxes"\n'
            f'files_quotas = "{work}/quotas"\nfiles_domains = "{work}/domains"\n'
            f'files_maildir_base = "{mail}"\n')


def start_owlery(work: Path, backend: str, common: str, args) -> OwleryDaemons:
    extra = common + ('policyd_checks = { RCPT = ["recipient", "quota", "spf", "greylist"] }\n'
                      f"greylist_delay = {DELAY}\npolicyd_workers = {args.workers}\n")
    if backend == "sqlite":
        extra += f'state_sqlite_path = "{work}/{backend}-state.sqlite"\n'
    else:
        extra += (f'state_backend = "redis"\nstate_redis_url = "{args.redis_url}"\n'
                  f'state_key_prefix = "owlery-bench-mix:{os.getpid()}:"\n')
    return OwleryDaemons(work / backend, which=("policyd",), extra_config=extra).start()


def start_postgrey(workdir: Path, dbdir_base: Path) -> tuple[ManagedProcess, int]:
    """Debian's postgrey with its shipped whitelists, greylist delay DELAY (bench_policyd's
    start_postgrey fixes 300 s and empty whitelists), dbdir under dbdir_base."""
    workdir.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("postgrey") or "/usr/sbin/postgrey"
    dbdir = Path(tempfile.mkdtemp(prefix="owlery-bench-postgrey-", dir=dbdir_base))
    shutil.chown(dbdir, "postgrey", "postgrey")
    port = free_port()
    proc = ManagedProcess([exe, f"--inet=127.0.0.1:{port}", f"--dbdir={dbdir}", f"--delay={DELAY}"],
                          "postgrey", workdir / "postgrey.log").start()
    proc.dbdir = dbdir
    wait_for_tcp(port, timeout=30, proc=proc, what="postgrey")
    return proc, port


def send_all(port: int, requests: list[bytes], conns: int = 8) -> collections.Counter:
    """Each request once over `conns` connections (one in flight each); count the action words."""
    words: collections.Counter = collections.Counter()
    lock = threading.Lock()

    def worker(share: list[bytes]) -> None:
        seen: collections.Counter = collections.Counter()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            for req in share:
                s.sendall(req)
                buf = b""
                while not buf.endswith(b"\n\n"):
                    data = s.recv(65536)
                    if not data:
                        raise RuntimeError(f"port {port} closed the connection")
                    buf += data
                seen[buf[7:].split(None, 1)[0].decode() if buf.startswith(b"action=") else "?"] += 1
        with lock:
            words.update(seen)

    threads = [threading.Thread(target=worker, args=(requests[k::conns],)) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return words


def known(port: int, name: str) -> None:
    """Make the pool's triplets known: sent, deferred; after the delay sent again, passed."""
    pool = policyload.realistic_pool(str(os.getpid()))
    t0 = time.monotonic()
    first = send_all(port, pool)
    time.sleep(DELAY + 0.2)    # the greylist delay must pass since the last first sight: real time is the condition
    second = send_all(port, pool)
    if second["DEFER_IF_PERMIT"] or set(second) - set(WORDS) or sum(second.values()) != len(pool):
        raise SystemExit(f"{name}: the pool's triplets did not pass after the delay: {dict(second)} "
                         f"(first sight: {dict(first)})")
    print(f"  {name}: pool sent twice in {time.monotonic() - t0:.1f} s; first {dict(first)}, then {dict(second)}")


def expected(server: str, replied: list[int]) -> dict[str, float]:
    """Fractions of DEFER_IF_PERMIT, 550 (unknown user, SPF fail), 552 (over quota) and passing
    (DUNNO/PREPEND) the profile must give for the requests answered (`replied[conn]` each)."""
    counts: collections.Counter = collections.Counter()
    owlery = server.startswith("owlery")
    for conn, answered in enumerate(replied):
        for i in range(answered):
            r = policyload.realistic_parts(i, conn)
            if owlery and r["rcpt"] in policyload.RL_UNKNOWN:
                counts["550"] += 1      # the checks run in order: recipient, quota, spf, greylist
            elif owlery and r["rcpt"] in policyload.RL_OVER_QUOTA:
                counts["552"] += 1
            elif owlery and policyload.rl_spf(r["d"]) == "fail":
                counts["550"] += 1
            else:
                counts["DEFER_IF_PERMIT" if r["new"] else "pass"] += 1
    total = max(1, sum(counts.values()))
    return {k: counts[k] / total for k in CLASSES}


def seen_fractions(words: dict[str, int]) -> dict[str, float]:
    total = max(1, sum(words.values()))
    out = {k: words.get(k, 0) / total for k in CLASSES}
    out["pass"] = sum(words.get(w, 0) for w in PASSING) / total
    return out


def check_words(server: str, label: str, conns: int, r: dict) -> list[str]:
    """Problems with one run's answers: an unexpected word, or a fraction off the profile's."""
    problems = []
    odd = {w: c for w, c in r["words"].items() if w not in WORDS}
    if odd:
        problems.append(f"{server} {label} c={conns}: unexpected answers {odd}")
    want, got = expected(server, r["replied"]), seen_fractions(r["words"])
    r["gap"] = max(abs(want[k] - got[k]) for k in want)
    for k in want:
        if abs(want[k] - got[k]) > TOLERANCE:
            problems.append(f"{server} {label} c={conns}: {k} {got[k]:.1%} of answers, the profile gives {want[k]:.1%}")
    return problems


def log_tally(path: Path) -> tuple[collections.Counter, collections.Counter, int]:
    """From owlery's decision log: (action, check) lines, spf= results, temporary failures."""
    by_check: collections.Counter = collections.Counter()
    spf: collections.Counter = collections.Counter()
    temporary = 0
    line_re = re.compile(r"policyd: (?:\S+: )?(\w+): .*? check=(\w+)")
    spf_re = re.compile(r" spf=(\w+)")
    with open(path, errors="replace") as f:
        for line in f:
            if "temporary failure" in line or "timed out" in line:
                temporary += 1
            m = line_re.search(line)
            if m is None:
                continue
            by_check[(m.group(1), m.group(2))] += 1
            s = spf_re.search(line)
            if s:
                spf[s.group(1)] += 1
    return by_check, spf, temporary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each run (default 2)")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions, servers interleaved (default 3)")
    ap.add_argument("--connections", default="1,10,100", help="saturated runs (default 1,10,100); "
                    "paced runs at those above 1")
    ap.add_argument("--rate", type=float, default=5000.0,
                    help="offered load of the paced runs, decisions/s over all connections (default 5000)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="policyd_workers for owlery (default: the number of cores, as README advises)")
    ap.add_argument("--redis", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure owlery with its state in Redis (default on)")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--tmpfs", default="/dev/shm", help="where the SQLite file and postgrey(tmpfs)'s dbdir go")
    ap.add_argument("--disk", default=tempfile.gettempdir(), help="where postgrey(disk)'s dbdir goes")
    args = ap.parse_args()
    conns_list = [int(c) for c in args.connections.split(",")]
    work = Path(tempfile.mkdtemp(prefix="owlery-bench-mix-", dir=args.tmpfs))
    os.chmod(work, 0o755)
    stub = DNSStub(ttl=3600).start()
    dns_zone(stub)
    cache = DnsCache(stub.port).start()
    started: list = []
    postgreys: list = []
    rows: dict = {}
    problems: list[str] = []
    try:
        common = directory(work) + f'dns_nameservers = ["127.0.0.1"]\ndns_port = {cache.port}\n'
        targets: dict[str, tuple[int, list[int]]] = {}
        for backend in ("sqlite", "redis") if args.redis else ("sqlite",):
            d = start_owlery(work, backend, common, args)
            started.append(d)
            targets[f"owlery/{backend}"] = (d.ports["policyd"], [d.procs["policyd"].pid])
        for name, base in (("postgrey(disk)", Path(args.disk)), ("postgrey(tmpfs)", Path(args.tmpfs))):
            pg, port = start_postgrey(work / name.strip(")").replace("(", "-"), base)
            postgreys.append(pg)
            targets[name] = (port, [pg.pid])
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; owlery "
              f"workers={args.workers}, checks recipient, quota, spf, greylist (files directory, DNS via a "
              f"caching front); postgrey greylists only; load generator: {policyload.generator_name()}")
        print(f"profile {PROFILE}: {policyload.POOLS[PROFILE]}")
        print(f"making the pool known (greylist delay {DELAY} s on every server):")
        for name, (port, _) in targets.items():
            known(port, name)
        modes = [("saturated", c, 0.0) for c in conns_list] + \
                [("paced", c, args.rate) for c in conns_list if c > 1 and args.rate > 0]
        for _rep in range(args.repeat):
            for mode, conns, rate in modes:
                for name, (port, pids) in targets.items():
                    cpu0, dns0 = cpu_seconds(pids), cache.cpu_seconds()
                    r = policyload.run(port, profile=PROFILE, conns=conns, seconds=args.seconds, rate=rate)
                    r["cpu_us"] = (cpu_seconds(pids) - cpu0) / max(1, r["done"]) * 1e6
                    r["dns_us"] = (cache.cpu_seconds() - dns0) / max(1, r["done"]) * 1e6
                    problems += check_words(name, mode, conns, r)
                    rows.setdefault((name, mode, conns), []).append(r)
        load_end = os.getloadavg()[0]
        tallies = {name: log_tally(d.workdir / "policyd.log") for name, d in zip(targets, started)}
    finally:
        for pg in postgreys:
            pg.stop()
            shutil.rmtree(pg.dbdir, ignore_errors=True)
        for d in started:
            d.stop()
        cache.stop()
        stub.stop()
        if args.redis:
            drop_redis_keys(args.redis_url, f"owlery-bench-mix:{os.getpid()}:*")
        shutil.rmtree(work, ignore_errors=True)
    return report(rows, tallies, problems, cache, args, load_end)


def report(rows: dict, tallies: dict, problems: list[str], cache: DnsCache, args, load_end: float) -> int:
    res = {}
    for key, rs in rows.items():
        s = res[key] = policyload.summarise(rs)
        s["cpu_us"] = sorted(r["cpu_us"] for r in rs)[len(rs) // 2]
        s["dns_us"] = sorted(r["dns_us"] for r in rs)[len(rs) // 2]
    print(f"\n{'server':<16} {'mode':<12} {'conns':>5}  median [min..max] over {args.repeat} runs of "
          f"{args.seconds:g} s; CPU = server CPU per decision; answers = last run's fractions")
    for (name, mode, conns), s in sorted(res.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        label = mode if mode == "saturated" else f"paced {args.rate:.0f}"
        f = seen_fractions(s["words"])
        dns = f" +DNS {s['dns_us']:3.0f}" if name.startswith("owlery") else " " * 9
        disk = res.get(("postgrey(disk)", mode, conns))
        ratio = f" x{s['rate'] / disk['rate']:5.1f} vs pg(disk)" if disk and mode == "saturated" else ""
        print(f"{name:<16} {label:<12} {conns:>5}  {fmt(s)}  CPU={s['cpu_us']:5.0f} us{dns}{ratio}  "
              f"answers defer {f['DEFER_IF_PERMIT']:.1%} 550 {f['550']:.1%} 552 {f['552']:.1%} "
              f"pass {f['pass']:.1%} {dict(s['words'])}")
    print(f"load average {load_end:.2f} at end; DNS front: {cache.hits} answers from cache, {cache.misses} "
          f"asked of the stub (+DNS = its CPU per decision)")
    for name, (by_check, spf, temporary) in tallies.items():
        checks = ", ".join(f"{w} by {c}: {n}" for (w, c), n in sorted(by_check.items()))
        print(f"{name} decision log (DUNNO is not logged at the default level): {checks}; "
              f"spf= {dict(spf)}; temporary failures {temporary}")
        if temporary:
            problems.append(f"{name}: {temporary} temporary failures or timeouts in its log")
        if not spf.get("fail") or not spf.get("pass") or set(spf) - {"pass", "fail", "none"}:
            problems.append(f"{name}: SPF results in its log are {dict(spf)}, not pass, fail and none")
        if not by_check.get(("reject", "recipient")) or not by_check.get(("reject", "quota")):
            problems.append(f"{name}: no unknown-user or over-quota rejection in its log")
    print("\nPostgrey only greylists; Owlery answers each request after the directory, quota, SPF and greylist checks.")
    print("summary (saturated: decisions/s median; ratio to postgrey with its database on disk, as Debian runs it)")
    owlerys = sorted({k[0] for k in res if k[0].startswith("owlery")})
    for conns in [c for c in (10, 100) if ("postgrey(disk)", "saturated", c) in res]:
        disk = res[("postgrey(disk)", "saturated", conns)]
        tmpfs = res.get(("postgrey(tmpfs)", "saturated", conns))
        for name in owlerys:
            o = res[(name, "saturated", conns)]
            ratio = o["rate"] / disk["rate"]
            ref = f"; x{o['rate'] / tmpfs['rate']:.1f} vs postgrey(tmpfs) {tmpfs['rate']:.0f}/s" if tmpfs else ""
            print(f"  c={conns:<3} {name:<14} {o['rate']:7.0f}/s vs postgrey(disk) {disk['rate']:6.0f}/s = "
                  f"x{ratio:5.1f}  target >= 10x: {'met' if ratio >= 10 else 'NOT met'}{ref}")
    for conns in sorted({k[2] for k in res if k[1] == "paced"}):
        for name in owlerys + ["postgrey(disk)"]:
            p = res.get((name, "paced", conns))
            if p is None:
                continue
            kept = p["rate"] >= 0.95 * args.rate     # a server that falls behind has no p99 at this rate
            ok = kept and p["p99"] < 5.0
            target = (f"  target p99 < 5 ms: {'met' if ok else 'NOT met'}"
                      if name.startswith("owlery") and conns == 100 else "")
            print(f"  paced {args.rate:.0f}/s c={conns:<3} {name:<14} p99 {p['p99']:7.2f} ms [{p['p99_min']:.2f}.."
                  f"{p['p99_max']:.2f}], p50 {p['p50']:.2f} ms, achieved {p['rate']:.0f}/s"
                  f"{'' if kept else ' (did not keep up)'}{target}")
    if problems:
        print("\nANSWERS NOT AS THE PROFILE REQUIRES (the figures above measure something else):")
        for p in problems:
            print(f"  {p}")
        return 1
    gap = max(r["gap"] for rs in rows.values() for r in rs)
    print(f"\nanswers checked: every run's action words within {gap:.2%} (allowed {TOLERANCE:.1%}) of the "
          "fractions its answered requests must give; SPF pass/fail/none, unknown users and a full mailbox seen")
    return 0



if __name__ == "__main__":
    sys.exit(main())
