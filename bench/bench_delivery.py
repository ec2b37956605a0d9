"""Benchmark: Sieve deliveries per second, Owlery vs Dovecot/Pigeonhole, over LMTP and through the LDA.

Both sides run the same typical user script (a list rule with fileinto :create, a flag for
the boss, a junk rule) on the same message mix, into their own Maildir, in the same run:
  LMTP: `owlery lmtpd` vs Dovecot's LMTP, C client connections each sending whole
        transactions (MAIL/RCPT/DATA) one after another, like Postfix's lmtp(8) clients;
        then Dovecot's IMAP selects every folder of both Maildirs: Dovecot LMTP has updated
        its index and uidlist while delivering, lmtpd has not, so the first SELECT after
        lmtpd's deliveries does that work (scan new/, assign UIDs, index). The "with Dovecot's
        index work" rate adds that time to lmtpd's, so the comparison is like for like;
  LDA:  one process per message, P at a time, `dovecot-lda` against
        - the pipe command `owlery postfix` prints (`owlery-lda`, beside `owlery`) with the
          very settings file lmtpd runs with (no extra setting: it finds lmtpd through
          lmtpd_listen): the default a postmaster gets; target >= 1x dovecot-lda;
        - `owlery lda` (the console script) the same way;
        - `owlery-lda` with lda_lmtp_handoff = false (in-process: settings, directory, Sieve);
          target >= 0.5x dovecot-lda.
        Each LDA figure is the median of --repeat runs, taken in turn (machine noise hits all).
        With 2 cores and 2 LDAs at a time the rate is CPU-bound: "CPU ms" is the CPU time per
        delivery, the LDA processes' own (rusage of the reaped children) plus the daemon side's
        (lmtpd's for Owlery's handoff, Dovecot's processes for dovecot-lda: auth, log), from
        /proc; unlike the rates it hardly moves when other work shares the machine.
Targets (issue 19): LMTP >= Dovecot's rate; the default LDA command >= dovecot-lda's rate,
in-process >= half of it.
Run: .venv/bin/python bench/bench_delivery.py [--messages 600] [--concurrency 4]
     [--lda-messages 150] [--lda-parallel 2] [--repeat 3]
Talks to: a private Dovecot (tests/harness/dovecot.py) and `owlery lmtpd`/`owlery-lda`/`owlery lda`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import pwd
import resource
import shutil
import smtplib
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from owlery.app.postfix import lda_command  # noqa: E402
from tests.delivery.daemon import Lmtpd, shared_workdir  # noqa: E402
from tests.harness.dovecot import DovecotInstance  # noqa: E402

OWLERY = ROOT / ".venv" / "bin" / "owlery"
PYTHON = ROOT / ".venv" / "bin" / "python"
OWLERY_LDA = lda_command(str(OWLERY)).split()     # the pipe command `owlery postfix` prints
USER = "alice@example.org"
OWL = "owl@example.org"           # Dovecot's login for the Maildir lmtpd delivers into
SCRIPT = r"""require ["fileinto", "imap4flags", "mailbox", "envelope"];
if header :contains "List-Id" "owlery" {
    fileinto :create "Lists.Owlery";
    stop;
}
if address :is "from" "boss@remote.test" {
    addflag "\\Flagged";
}
if anyof (header :contains "Subject" ["lottery", "viagra"], header :is "X-Spam-Flag" "YES") {
    fileinto :create "Junk";
    stop;
}
if envelope :domain :is "from" "newsletters.test" {
    fileinto :create "News";
}
"""


def message(n: int) -> bytes:
    kind = n % 4
    head = [f"From: {'boss@remote.test' if kind == 1 else 'someone@remote.test'}",
            f"To: {USER}", f"Subject: {'You won the lottery' if kind == 2 else f'message {n}'}",
            f"Message-ID: <bench-{n}-{time.time_ns()}@remote.test>", "Date: Sat, 21 Nov 2026 10:00:00 +0000",
            "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    if kind == 0:
        head.append("List-Id: Owlery users <owlery.lists.remote.test>")
    body = "".join(f"Line {i} of a fairly ordinary message body, nothing special here.\r\n" for i in range(40))
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


def prepare_home(home: Path) -> None:
    (home / "sieve").mkdir(parents=True, exist_ok=True)
    (home / "sieve" / "active.sieve").write_text(SCRIPT)
    nobody = pwd.getpwnam("nobody")
    for root, dirs, files in os.walk(home):
        for p in [root] + [os.path.join(root, n) for n in dirs + files]:
            os.chown(p, nobody.pw_uid, nobody.pw_gid)


def first_select(dovecot, user: str) -> tuple[float, int]:
    """Seconds for Dovecot to log in and SELECT every folder of `user` (the first time after the
    deliveries), and how many messages it found there."""
    start = time.perf_counter()
    client = dovecot.imap(user)
    try:
        typ, listing = client.list()
        names = [line.decode().rsplit(' "', 1)[-1].rstrip('"') if line.decode().endswith('"')
                 else line.decode().rsplit(" ", 1)[-1] for line in listing or []]
        total = 0
        for name in names:
            typ, data = client.select(f'"{name}"', readonly=True)
            if typ == "OK":
                total += int(data[0])
        client.logout()
    finally:
        try:
            client.shutdown()
        except OSError:
            pass
    return time.perf_counter() - start, total


def count_messages(maildir: Path) -> int:
    total = 0
    for folder in [maildir] + [p for p in maildir.glob(".*") if p.is_dir()]:
        for sub in ("new", "cur"):
            d = folder / sub
            if d.is_dir():
                total += len(os.listdir(d))
    return total


def lmtp_run(port: int, total: int, concurrency: int) -> float:
    """Deliveries per second: `concurrency` connections, each sending its share sequentially."""
    def worker(indices):
        with smtplib.LMTP("127.0.0.1", port, timeout=60) as s:
            for n in indices:
                refused = s.sendmail("sender@remote.test", [USER], message(n))
                if refused:
                    raise RuntimeError(f"refused: {refused}")
    shares = [list(range(i, total, concurrency)) for i in range(concurrency)]
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(worker, share) for share in shares]:
            f.result()
    return total / (time.perf_counter() - start)


# The LDA as Postfix runs it: byte-compiled modules (a normal install compiles them; pipe(8)
# passes no PYTHONDONTWRITEBYTECODE).
LDA_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def tree_cpu(pid: int | None) -> float:
    """CPU seconds used so far by process `pid` and its descendants (their reaped children too)."""
    if pid is None:
        return 0.0
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))   # ppid, u+s+cu+cs
    tree = {pid}
    for _ in range(8):           # descendants, a few levels deep
        tree |= {p for p, (ppid, _) in stats.items() if ppid in tree}
    return sum(stats[p][1] for p in tree if p in stats) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def lda_run(argv_for, total: int, parallel: int, daemon_pid: int | None = None) -> tuple[float, float]:
    """(deliveries per second, CPU ms per delivery: the LDA processes' and the daemon's)."""
    def one(n):
        r = subprocess.run(argv_for(n), input=message(n).replace(b"\r\n", b"\n"), capture_output=True,
                           timeout=60, env=LDA_ENV)
        if r.returncode != 0:
            raise RuntimeError(f"{argv_for(n)[0]} exited {r.returncode}: {r.stderr[:300]!r}")
    cpu0, daemon0 = children_cpu(), tree_cpu(daemon_pid)
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        for f in [pool.submit(one, n) for n in range(total)]:
            f.result()
    elapsed = time.perf_counter() - start
    cpu = children_cpu() - cpu0 + tree_cpu(daemon_pid) - daemon0
    return total / elapsed, cpu / total * 1000


def lda_latency(argv_for, runs: int) -> float:
    """Milliseconds per run, sequential."""
    start = time.perf_counter()
    for n in range(runs):
        subprocess.run(argv_for(n), input=message(n).replace(b"\r\n", b"\n"), capture_output=True,
                       timeout=60, env=LDA_ENV, check=True)
    return (time.perf_counter() - start) / runs * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=600, help="LMTP deliveries per server")
    ap.add_argument("--concurrency", type=int, default=4, help="LMTP client connections")
    ap.add_argument("--lda-messages", type=int, default=150, help="LDA runs per agent and repetition")
    ap.add_argument("--lda-parallel", type=int, default=2, help="LDA processes at a time")
    ap.add_argument("--repeat", type=int, default=3, help="LDA repetitions (the median is reported)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if not os.access(OWLERY_LDA[-1], os.X_OK):
        sys.exit(f"{OWLERY_LDA[-1]} missing: run .venv/bin/pip install -e . --no-deps")

    work = shared_workdir("owlery-bench-delivery-")
    ours_home = work / "ours" / "example.org" / "alice"
    ours_lda_home = work / "ours-lda" / "example.org" / "alice"
    fast_home = work / "ours" / "example.org" / "ldafast"
    cli_home = work / "ours" / "example.org" / "ldacli"
    dove_home = work / "dovecot-home" / "alice"
    dove_lda_home = work / "dovecot-lda-home" / "alice"
    for h in (ours_home, ours_lda_home, fast_home, cli_home, dove_home, dove_lda_home):
        prepare_home(h)
    state = work / "state"
    state.mkdir()
    conf = f"""
maildir_path_template = "{work}/ours/{{domain}}/{{localpart}}/Maildir"
delivery_sieve_script_template = "{work}/ours/{{domain}}/{{localpart}}/sieve/active.sieve"
state_sqlite_path = "{state}/state.sqlite"
maildir_owner = "nobody"
delivery_use_directory = false
log_level = "warning"
"""
    lda_conf = work / "lda.toml"
    # Its own state file: the in-process LDA and lmtpd are separate installations here.
    lda_conf.write_text(conf.replace(f"{work}/ours/", f"{work}/ours-lda/")
                        .replace(f"{state}/state.sqlite", f"{state}/lda-state.sqlite")
                        + "lda_lmtp_handoff = false\n")
    lmtpd = Lmtpd(work, conf).start()
    fast_conf = work / "lmtpd.toml"      # lmtpd's own settings file: nothing added for the LDA
    dovecot = DovecotInstance(work / "dovecot", {USER: str(dove_home), "lda@example.org": str(dove_lda_home),
                                                 OWL: str(ours_home)})     # Dovecot serving lmtpd's Maildir
    dovecot.start()
    try:
        # Warm up both (script compilation, first folder creation), then measure.
        lmtp_run(lmtpd.port, 8, 1)
        lmtp_run(dovecot.lmtp_port, 8, 1)
        ours_lmtp = lmtp_run(lmtpd.port, args.messages, args.concurrency)
        dove_lmtp = lmtp_run(dovecot.lmtp_port, args.messages, args.concurrency)
        ours_lmtp2 = lmtp_run(lmtpd.port, args.messages, args.concurrency)
        dove_lmtp2 = lmtp_run(dovecot.lmtp_port, args.messages, args.concurrency)
        ours_lmtp, dove_lmtp = max(ours_lmtp, ours_lmtp2), max(dove_lmtp, dove_lmtp2)
        # The first IMAP SELECT of every folder after the deliveries: Dovecot's index work.
        ours_select, ours_n = first_select(dovecot, OWL)
        dove_select, dove_n = first_select(dovecot, USER)

        subprocess.run([sys.executable, "-m", "compileall", "-q", "owlery", "sieve", "policyd", "milters"],
                       cwd=ROOT, env=LDA_ENV, stdout=subprocess.DEVNULL, check=False)
        # Name, argv per message number. The first is the postmaster's pipe command.
        agents = {
            "owlery-lda, default (finds lmtpd)": lambda n: [
                *OWLERY_LDA, "-c", str(fast_conf), "-f", "sender@remote.test", "-d", "ldafast@example.org"],
            "owlery lda, via lmtpd": lambda n: [
                str(OWLERY), "lda", "-c", str(fast_conf), "-f", "sender@remote.test", "-d", "ldacli@example.org"],
            "owlery-lda, in-process": lambda n: [
                *OWLERY_LDA, "-c", str(lda_conf), "-f", "sender@remote.test", "-d", USER],
            "dovecot-lda": lambda n: [*dovecot.lda_argv("lda@example.org", "sender@remote.test")],
        }
        # Whose CPU counts besides the LDA's: lmtpd's for a handoff, Dovecot's for dovecot-lda.
        daemon_pid = {"owlery-lda, default (finds lmtpd)": lmtpd.proc.pid, "owlery lda, via lmtpd": lmtpd.proc.pid,
                      "dovecot-lda": dovecot.proc.pid}
        for argv_for in agents.values():
            lda_run(argv_for, 4, 1)
        rates: dict[str, list[float]] = {name: [] for name in agents}
        cpu: dict[str, list[float]] = {name: [] for name in agents}
        for _ in range(args.repeat):
            for name, argv_for in agents.items():
                rate, ms = lda_run(argv_for, args.lda_messages, args.lda_parallel, daemon_pid.get(name))
                rates[name].append(rate)
                cpu[name].append(ms)
        # Latency of one delivery, one process at a time (start-up dominates).
        latency = {"bare interpreter (python -I -S -c pass)": lda_latency(
            lambda n: [str(PYTHON), "-I", "-S", "-c", "pass"], 20)}
        latency.update((name, lda_latency(argv_for, 20)) for name, argv_for in agents.items())

        stored = {
            "owlery lmtpd": count_messages(ours_home / "Maildir"),
            "dovecot lmtp": count_messages(dove_home / "Maildir"),
            "owlery-lda (via lmtpd)": count_messages(fast_home / "Maildir"),
            "owlery lda (via lmtpd)": count_messages(cli_home / "Maildir"),
            "owlery-lda (in-process)": count_messages(ours_lda_home / "Maildir"),
            "dovecot-lda": count_messages(dove_lda_home / "Maildir"),
        }
        folders = sorted(p.name for p in (ours_home / "Maildir").glob(".*") if p.is_dir())
        dfolders = sorted(p.name for p in (dove_home / "Maildir").glob(".*") if p.is_dir())
    finally:
        lmtpd.stop()
        dovecot.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    median = {name: statistics.median(r) for name, r in rates.items()}
    dove_lda = median["dovecot-lda"]
    print(f"Sieve delivery benchmark: {args.messages} LMTP deliveries x {args.concurrency} connections, "
          f"{args.lda_messages} LDA runs x {args.lda_parallel} parallel (median of {args.repeat}), "
          "same script and messages")
    print(f"  LMTP  owlery lmtpd : {ours_lmtp:8.1f} deliveries/s")
    print(f"  LMTP  dovecot lmtp : {dove_lmtp:8.1f} deliveries/s   ratio {ours_lmtp / dove_lmtp:.2f}")
    # Per message: the delivery plus its share of the first SELECT's index work.
    ours_full = 1 / (1 / ours_lmtp + ours_select / max(ours_n, 1))
    dove_full = 1 / (1 / dove_lmtp + dove_select / max(dove_n, 1))
    print(f"  first IMAP SELECT of every folder: owlery's Maildir {ours_select * 1000:.0f} ms for {ours_n} "
          f"messages, dovecot's {dove_select * 1000:.0f} ms for {dove_n}")
    print(f"  LMTP with Dovecot's index work: owlery {ours_full:8.1f}/s, dovecot {dove_full:8.1f}/s   "
          f"ratio {ours_full / dove_full:.2f} (target >= 1.00: {'met' if ours_full >= dove_full else 'NOT met'})")
    print(f"  LDA pipe command (owlery postfix): {' '.join(OWLERY_LDA)}   (load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    for i, (name, rate) in enumerate(median.items()):
        runs = " ".join(f"{r:.1f}" for r in rates[name])
        line = (f"  LDA   {name:34s}: {rate:6.1f} deliveries/s [{runs}] "
                f"CPU {statistics.median(cpu[name]):5.1f} ms")
        if name != "dovecot-lda":
            line += f"  ratio {rate / dove_lda:.2f}"
        if i == 0:
            line += f" (target >= 1.00: {'met' if rate >= dove_lda else 'NOT met'})"
        if name == "owlery-lda, in-process":
            line += f" (target >= 0.50: {'met' if rate >= 0.5 * dove_lda else 'NOT met'})"
        print(line)
    print("  LDA latency, one at a time:")
    for name, ms in latency.items():
        print(f"        {name:40s}: {ms:6.1f} ms per run")
    print(f"  stored messages: {stored}")
    print(f"  folders: owlery {folders} dovecot {dfolders}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
