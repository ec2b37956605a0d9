"""Benchmark: fault injection under load through real Postfix: kill -9 and restart each server while mail flows.

Starts on loopback (tests/harness/faults.py): slapd (the directory), a private Redis (greylist
with no delay and rate limits), clamd, spamd, a private PostgreSQL (the quarantine), `owlery
policyd`, `owlery milter`, `owlery lmtpd` and `owlery socketmap` (Postfix reads the LDAP
directory's domains and aliases through it) with one settings file, and a private Postfix
wired with what `owlery postfix` prints. Sender threads submit distinct messages from an
outside client (XCLIENT ADDR=192.0.2.44) to alice@example.test; every 10th is GTUBE and
belongs in the quarantine. 4xx answers and dropped connections are retried later, as an MTA
would. After a warm-up, each of slapd, Redis, clamd, spamd, PostgreSQL, policyd, milter,
lmtpd and socketmap in turn is killed with SIGKILL (its whole process group), left down for at least
--down seconds and --hit SMTP transactions, restarted on the same port, and the next fault
waits until --per-fault more messages were accepted. Then the sender stops, Postfix's queue
is flushed and waited on, and every message is counted: delivered once (Maildir files and
quarantine rows by Message-ID), more than once, still queued, misfiled, bounced, 5xx,
never accepted, lost. A message counts under the phase of its first 250 (of its first try
when it never got one); a phase runs from its kill to the next kill.
Exit status 1 when a message was lost, bounced, answered 5xx or never accepted.
A run's printed table is kept in bench/results/faults.txt.

Run: .venv/bin/python bench/bench_faults.py [--per-fault 40] [--senders 2] [--rate 8] [--down 2] [--hit 10]
     [--only slapd,redis,...] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.faults import OUTCOMES, OUTSIDE, FaultStack, Load, PhaseStats, account  # noqa: E402
from tests.harness.procs import HarnessError, make_workdir  # noqa: E402

FAILING = ("lost", "bounced", "5xx", "unsent")


def log(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def run_faults(stack, load, names, args, timings):
    """Warm up, then kill and restart each of `names`, filling {phase: (down s, back s)}."""
    timings["warm-up"] = (None, None)
    load.wait_more("accepted", args.per_fault, 300, f"{args.per_fault} messages accepted (warm-up)")
    for name in names:
        load.set_phase(name)
        t0 = time.monotonic()
        stack.kill(name)
        log(f"killed {name}")
        load.wait_more("tries", args.hit, 300, f"{args.hit} SMTP transactions while {name} is down", args.down)
        t1 = time.monotonic()
        stack.restart(name)
        t2 = time.monotonic()
        log(f"{name} back after {t2 - t1:.2f} s (down {t1 - t0:.2f} s)")
        timings[name] = (t1 - t0, t2 - t1)
        load.wait_more("accepted", args.per_fault, 300, f"{args.per_fault} messages accepted after {name} came back")


def report(stack, load, timings, outcomes, extra, drain_s, elapsed):
    msgs = load.messages
    spam = sum(1 for m in msgs if m.kind == "spam")
    print(f"Fault injection under load through Postfix: {len(msgs)} messages ({spam} GTUBE for the quarantine), "
          f"{len(load._threads)} senders, new mail at <= {load.rate:g}/s, outside client {OUTSIDE['ADDR']}, {elapsed:.0f} s")
    print("each fault: kill -9 (process group), stays down, restart on the same port; 4xx and dropped "
          "connections retried by the sender")
    by_phase = {}
    for m in msgs:
        by_phase.setdefault(m.phase or m.first_phase, Counter())[outcomes[m.n]] += 1
    cols = ("tries", "250", "4xx", "5xx", "drop", "msgs") + OUTCOMES
    head = f"{'phase':<10} {'down s':>6} {'back s':>6} " + " ".join(f"{c:>6}" for c in cols)
    print()
    print(head)
    print("-" * len(head))
    total_stats, total_out = PhaseStats(), Counter()
    phases = list(timings) + [p for p in list(load.phases) + list(by_phase) if p not in timings]
    for phase in dict.fromkeys(phases):
        down, back = timings.get(phase, (None, None))
        st = load.phases.get(phase, PhaseStats())
        out = by_phase.get(phase, Counter())
        total_out.update(out)
        for k in ("tries", "ok", "tempfail", "fivexx", "dropped"):
            setattr(total_stats, k, getattr(total_stats, k) + getattr(st, k))
        nums = (st.tries, st.ok, st.tempfail, st.fivexx, st.dropped, sum(out.values())) + tuple(out[o] for o in OUTCOMES)
        print(f"{phase:<10} {'-' if down is None else f'{down:.2f}':>6} {'-' if back is None else f'{back:.2f}':>6} "
              + " ".join(f"{n:>6}" for n in nums))
    print("-" * len(head))
    st = total_stats
    nums = (st.tries, st.ok, st.tempfail, st.fivexx, st.dropped, sum(total_out.values())) + tuple(total_out[o] for o in OUTCOMES)
    print(f"{'total':<10} {'':>6} {'':>6} " + " ".join(f"{n:>6}" for n in nums))
    print()
    print("Answers other than 250, per phase (stage, code, text; count):")
    for phase in dict.fromkeys(phases):
        replies = load.phases.get(phase, PhaseStats()).replies
        for text, n in replies.most_common(4):
            print(f"  {phase:<10} {n:>4}  {text}")
    print()
    print(f"queue after the flush: {len(extra['queued'])} message(s), drained/settled in {drain_s:.1f} s; "
          f"maillog bounces: {len(extra['bounced'])}")
    for qid, reason in list(extra["queued"].items())[:5]:
        print(f"  still queued {qid}: {reason[:100]}")
    bad = [m for m in msgs if outcomes[m.n] in FAILING]
    for m in bad[:10]:
        print(f"  {outcomes[m.n]}: message {m.n} <{m.mid}> phase={m.phase or m.first_phase} accepted={m.accepted} "
              f"5xx={m.fivexx[:1]} last 4xx={m.tempfails[-1:]}")
    failed = sum(total_out[o] for o in FAILING)
    verdict = "PASS" if failed == 0 else "FAIL"
    print(f"{verdict}: lost {total_out['lost']}, 5xx {total_out['5xx']}, bounced {total_out['bounced']}, "
          f"never accepted {total_out['unsent']}; delivered once {total_out['once']}, more than once {total_out['dup']}, "
          f"still queued {total_out['queued']}, misfiled {total_out['misfiled']}")
    return failed == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-fault", type=int, default=40, help="messages accepted before each fault and after each restart")
    ap.add_argument("--senders", type=int, default=2, help="concurrent SMTP client threads")
    ap.add_argument("--rate", type=float, default=8.0, help="new messages a second, at most (retries come on top)")
    ap.add_argument("--down", type=float, default=2.0, help="seconds each server stays down, at least")
    ap.add_argument("--hit", type=int, default=10, help="SMTP transactions that must meet each outage, at least")
    ap.add_argument("--only", default="", help="comma-separated subset of the faults (default: all, in order)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, Maildir, queue)")
    args = ap.parse_args()
    work = make_workdir("owlery-bench-faults-")
    log(f"starting slapd, redis, clamd, spamd, postgres, owlery daemons and postfix in {work} ...")
    stack = FaultStack(work)
    ok = False
    try:
        stack.start()
        names = [n for n in args.only.split(",") if n] or stack.fault_names
        unknown = set(names) - set(stack.fault_names)
        if unknown:
            ap.error(f"unknown fault(s): {', '.join(sorted(unknown))}; known: {', '.join(stack.fault_names)}")
        load = Load(stack, senders=args.senders, rate=args.rate).start()
        t0, timings, broken = time.monotonic(), {}, None
        try:
            run_faults(stack, load, names, args, timings)
        except HarnessError as exc:     # a server that did not come back: still count the mail
            broken = exc
        finally:
            load.stop_new(give_up=120)
            log("sender stopped making new messages; retrying the refused ones")
            load.join(300)
        log("flushing Postfix's queue")
        drain_s = stack.drain(timeout=180)
        elapsed = time.monotonic() - t0
        outcomes, extra = account(stack, load)
        ok = report(stack, load, timings, outcomes, extra, drain_s, elapsed) and broken is None
        if broken is not None:
            print(f"FAIL: the run stopped early: {str(broken)[:3000]}")
    except HarnessError as exc:
        print(f"FAIL: {exc}", file=sys.stderr)
    finally:
        stack.stop()
        if args.keep or not ok:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
