"""Fault injection under load, the quick ones: kill -9 and restart while mail flows through real Postfix.

Issue 13 ("Then keep it that way"); the full run over every server is bench/bench_faults.py.
tests/harness/faults.py starts the servers named, `owlery` daemons wired to them and a
private Postfix wired with what `owlery postfix` prints; two sender threads submit distinct
messages from an outside client and retry 4xx answers, as an MTA would.

- lmtpd, then Redis (greylist with no delay, rate limits), is killed (SIGKILL to the process
  group) while messages keep coming, and restarted on the same port: no message is lost,
  answered 5xx, bounced or left queued; each outage was met by mail (Postfix deferred to
  the dead lmtpd; policyd answered 4xx while Redis was gone). A message can be delivered
  twice only when lmtpd was killed after filing it and before its 250 reached Postfix
  (LMTP has no way to close that window); the test allows that for the lmtpd kill alone.
- the milter is killed and restarted three times while GTUBE messages are quarantined in
  PostgreSQL: the first quarantine of a fresh process, whose schema set-up made PostgreSQL
  send NOTICEs ("relation already exists, skipping"), crashed `owlery milter` with SIGSEGV
  (psycopg's notice callback, entered from C in a pymilter connection thread), and all mail
  was then deferred until someone restarted it.
- with an LDAP directory (slapd), Postfix reads its domains and aliases through `owlery
  socketmap` (what `owlery postfix` prints): the socketmap, then slapd, is killed while
  messages keep coming, and restarted. Both outages are met by mail as 4xx (Postfix's
  table lookup fails, the socketmap answers TEMP for a directory that is down); nothing is
  lost. The harness once started no socketmap, so every RCPT got 451 4.3.0 and nothing
  was ever delivered.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.harness.faults import FaultStack, Load, account
from tests.harness.procs import HarnessError

PER_PHASE = 8          # messages accepted before the first fault and after each restart
HIT = 6                # SMTP transactions that must meet each outage
RESTARTS = 5
SPAM_EVERY = 15


@pytest.fixture
def stack(harness_dirs):
    with FaultStack(harness_dirs("faults"), servers=("redis",), daemons=("policyd", "lmtpd")) as s:
        yield s


def finish(stack, load):
    """Stop the sender, drain Postfix's queue; (Counter of outcomes, {n: details} of the others)."""
    load.stop_new(give_up=30)
    assert load.join(45), "the sender did not finish"
    stack.drain(timeout=30, stable=10)
    outcomes, extra = account(stack, load)
    others = {m.n: (outcomes[m.n], m.phase, m.accepted, m.fivexx, m.tempfails[-1:], extra)
              for m in load.messages if outcomes[m.n] != "once"}
    return Counter(outcomes.values()), others


def test_kill_lmtpd_and_redis_under_load_loses_nothing(stack):
    load = Load(stack, senders=2).start()
    try:
        load.wait_more("accepted", PER_PHASE, 30, "warm-up messages accepted")
        for name in ("lmtpd", "redis"):
            load.set_phase(name)
            log_start = len(stack.pf.maillog())
            stack.kill(name)
            load.wait_more("tries", HIT, 30, f"{HIT} SMTP transactions while {name} is down")
            if name == "lmtpd":
                # mail keeps being accepted, and Postfix cannot hand it over: it keeps it
                stack.pf.wait_for_log(r"status=deferred \(connect to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: Connection refused",
                                      timeout=30, start=log_start)
            stack.restart(name)
            load.wait_more("accepted", PER_PHASE, 30, f"mail accepted after {name} restart")
    except BaseException:
        load.stop_new(give_up=0)
        load.join(45)
        raise
    counts, others = finish(stack, load)
    assert counts["once"] + counts["dup"] == len(load.messages) >= 3 * PER_PHASE, (counts, others)
    # a second copy only for what lmtpd had filed but not yet answered when it was killed
    assert all(o[0] == "dup" and o[1] in ("warm-up", "lmtpd") for o in others.values()) and counts["dup"] <= 2, others
    redis = load.phases["redis"]
    assert redis.fivexx == 0 and redis.tempfail >= 1, redis     # the store being down showed as 4xx
    assert sum(p.fivexx for p in load.phases.values()) == 0


def test_kill_socketmap_and_slapd_under_load_loses_nothing(harness_dirs):
    # only the servers and daemons named: the socketmap comes because the wiring needs it
    with FaultStack(harness_dirs("faults-ldap"), servers=("slapd",), daemons=("policyd", "lmtpd")) as stack:
        load = Load(stack, senders=2).start()
        try:
            load.wait_more("accepted", PER_PHASE, 30, "warm-up messages accepted")
            for name in ("socketmap", "slapd"):
                load.set_phase(name)
                stack.kill(name)
                load.wait_more("tries", HIT, 30, f"{HIT} SMTP transactions while {name} is down")
                stack.restart(name)
                load.wait_more("accepted", PER_PHASE, 30, f"mail accepted after {name} restart")
        except BaseException:
            load.stop_new(give_up=0)
            load.join(45)
            raise
        counts, others = finish(stack, load)
        assert counts["once"] == len(load.messages) >= 3 * PER_PHASE, (counts, others)
        for name in ("socketmap", "slapd"):
            phase = load.phases[name]
            assert phase.fivexx == 0 and phase.tempfail >= 1, (name, phase)   # the outage showed as 4xx
        assert sum(p.fivexx for p in load.phases.values()) == 0
        assert stack.fault_names == ["slapd", "policyd", "lmtpd", "socketmap"]


def test_milter_restarted_over_existing_postgresql_quarantine_keeps_running(harness_dirs):
    with FaultStack(harness_dirs("faults-pg"), servers=("spamd", "postgres"), daemons=("milter", "lmtpd")) as stack:
        # The first quarantine after a restart comes once libmilter's pooled worker threads
        # have served other connections (the crash needed a thread that had).
        load = Load(stack, senders=4, rate=30, spam_every=SPAM_EVERY).start()
        milter = stack.daemons.procs["milter"]
        try:
            load.wait_more("accepted", SPAM_EVERY, 60, "first messages accepted (the quarantine tables made)")
            for round_ in range(RESTARTS):
                load.set_phase(f"restart {round_}")
                stack.kill("milter")
                stack.restart("milter")
                load.wait_more("accepted", SPAM_EVERY + 2, 30, f"messages accepted after restart {round_}", proc=milter)
        except HarnessError as exc:
            load.stop_new(give_up=0)
            load.join(45)
            raise AssertionError(f"milter exit status {milter.returncode}\n{stack.daemons.log('milter')[-3000:]}") from exc
        counts, others = finish(stack, load)
        assert counts["once"] == len(load.messages) >= SPAM_EVERY * (RESTARTS + 1), (counts, others)
        assert len(stack.quarantined_message_ids()) >= RESTARTS + 1
