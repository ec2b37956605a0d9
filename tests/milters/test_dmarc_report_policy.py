"""The dmarc stage's policy details and its recording for aggregate reports: pct=, sp=, np= (RFC 9091), the recorder.

Through the adapter with a fake context and the DNS stub (tests/milters/conftest.py).
Recording is asynchronous and must never cost a message: a store that is down, slow or
full drops results (logged) while the message is accepted as if nothing were recorded.
"""

from __future__ import annotations

import logging
import threading
import time

import Milter
import pytest

from milters.dmarc_store import DmarcResult, DmarcStoreUnavailable, Recorder, SqliteStore

MSG = (b"From: Alice <alice@{domain}>\r\nTo: bob@example.test\r\nSubject: policy\r\n"
       b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <1@example.net>\r\n\r\nHello.\r\n")
IN = dict(sender="<x@example.org>", client=("relay.example.org", "192.0.2.99"))


def msg(domain="example.net"):
    return MSG.replace(b"{domain}", domain.encode())


def ar(ctx):
    return ctx.header_value("Authentication-Results") or ""


@pytest.fixture
def env(milter_env, tmp_path):
    path = str(tmp_path / "r.sqlite3")

    def build(**values):
        run = milter_env(dmarc_report_record=True, dmarc_report_store_path=path, **values)
        run.stage = run.pipeline.stages["dmarc"]

        def rows(domain="example.net"):
            assert run.stage.recorder.flush(10)
            return SqliteStore(path).results(domain, 0, 2**40)
        run.rows = rows
        return run
    return build


# --- pct= ------------------------------------------------------------------------------------

@pytest.mark.parametrize("pct,draw,code,dis,reasons", [
    ("100", 0.999, Milter.REJECT, "reject", ()),
    ("50", 0.49, Milter.REJECT, "reject", ()),
    ("50", 0.50, Milter.ACCEPT, "quarantine", ("sampled_out",)),      # outside the sample: next less strict
    ("0", 0.0, Milter.ACCEPT, "quarantine", ("sampled_out",)),
    ("junk", 0.999, Milter.REJECT, "reject", ()),                       # malformed pct means 100
])
def test_pct_samples_the_reject_policy(env, dns, pct, draw, code, dis, reasons):
    dns.set("_dmarc.example.net", "TXT", f"v=DMARC1; p=reject; pct={pct}; rua=mailto:d@example.net")
    run = env()
    run.stage.random = lambda: draw
    got, ctx = run(msg(), **IN)
    assert got == code
    if code == Milter.ACCEPT:
        assert f"dis={dis.upper()}" in ar(ctx) and "dmarc=fail" in ar(ctx)
    [row] = run.rows()
    assert (row.disposition, row.reasons, row.pct) == (dis, reasons, 100 if pct == "junk" else int(pct))


def test_pct_sampled_quarantine_becomes_none(env, dns):
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=quarantine; pct=10")
    run = env()
    run.stage.random = lambda: 0.5
    code, ctx = run(msg(), **IN)
    assert code == Milter.ACCEPT and "dis=NONE" in ar(ctx)
    assert "DMARC_POLICY_QUARANTINE" not in (ctx.header_value("X-Owlery-Score") or "")


# --- sp= and np= (RFC 9091) -----------------------------------------------------------------------

@pytest.mark.parametrize("record,exists,code", [
    ("v=DMARC1; p=none; sp=none; np=reject", False, Milter.REJECT),      # non-existent subdomain: np
    ("v=DMARC1; p=none; sp=none; np=reject", True, Milter.ACCEPT),       # existing subdomain: sp
    ("v=DMARC1; p=none; sp=reject", False, Milter.REJECT),               # no np: sp
    ("v=DMARC1; p=reject", False, Milter.REJECT),                        # no np, no sp: p
    ("v=DMARC1; p=reject; sp=none", False, Milter.ACCEPT),
    ("v=DMARC1; p=reject; np=none", False, Milter.ACCEPT),               # np relaxes too
    ("v=DMARC1; p=none; sp=none; np=bogus", False, Milter.ACCEPT),       # a bad np is ignored
])
def test_subdomain_policies(env, dns, record, exists, code):
    dns.set("_dmarc.example.net", "TXT", record)
    if exists:
        dns.set("sub.example.net", "MX", "10 mx.example.net")
    got, _ = env()(msg("sub.example.net"), **IN)
    assert got == code


def test_np_does_not_apply_to_the_organizational_domain_itself(env, dns):
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=none; np=reject")
    got, _ = env()(msg("example.net"), **IN)         # example.net has no A/AAAA/MX in the stub
    assert got == Milter.ACCEPT


def test_np_dns_failure_falls_back_to_sp(env, dns):
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=none; sp=none; np=reject")
    dns.fail("sub.example.net")
    got, ctx = env()(msg("sub.example.net"), **IN)
    assert got == Milter.ACCEPT and "dmarc=fail" in ar(ctx)


def test_a_subdomain_row_names_the_organizational_policy_domain(env, dns):
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=none; sp=quarantine; np=reject; rua=mailto:d@example.net")
    dns.set("sub.example.net", "A", "192.0.2.1")
    run = env()
    run(msg("sub.example.net"), **IN)
    [row] = run.rows()
    assert (row.policy_domain, row.header_from, row.disposition) == ("example.net", "sub.example.net", "quarantine")
    assert (row.p, row.sp, row.np, row.rua) == ("none", "quarantine", "reject", "mailto:d@example.net")


# --- what is recorded ----------------------------------------------------------------------------

def test_a_passing_signed_message_is_recorded_with_its_signature(env, dns, milter_env):
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=reject; adkim=s; rua=mailto:d@example.net!10m")
    dns.set("example.net", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    signer = milter_env(dkim_sign_keys={"example.net": ["r1"]})
    _, sctx = signer(msg(), sender="<alice@example.net>", mail_macros={"{auth_authen}": "alice"})
    top = b"".join(f"{n}:{v}".replace("\n", "\r\n").encode() + b"\r\n"
                   for n, v, idx in reversed(sctx.added) if idx == 0 and n == "DKIM-Signature")
    run = env()
    code, ctx = run(top + msg(), sender="<bounce@example.net>", client=("mail.example.net", "192.0.2.10"),
                    recipients=("<bob@Example.TEST>",))
    assert code == Milter.ACCEPT and "dmarc=pass" in ar(ctx)
    [row] = run.rows()
    assert isinstance(row, DmarcResult)
    assert (row.source_ip, row.header_from, row.envelope_from, row.envelope_to) == \
        ("192.0.2.10", "example.net", "example.net", "example.test")
    assert (row.result, row.disposition, row.dkim_aligned, row.spf_aligned) == ("pass", "none", "pass", "pass")
    assert row.dkim == (("example.net", "r1", "pass"),)
    assert (row.spf_domain, row.spf_scope, row.spf_result) == ("example.net", "mfrom", "pass")
    assert (row.p, row.adkim, row.aspf, row.rua) == ("reject", "s", "r", "mailto:d@example.net!10m")


def test_only_domains_publishing_dmarc_are_recorded(env, dns):
    run = env()
    run(msg("example.org"), **IN)                                   # no _dmarc record: dmarc=none
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=none")
    run(msg(), **IN)
    assert [r.source_ip for r in run.rows()] == ["192.0.2.99"] and run.rows("example.org") == []
    assert run.stage.recorder.stored == 1


def test_recording_off_by_default(milter_env):
    assert milter_env().pipeline.stages["dmarc"].recorder is None


# --- the store down, slow or full: mail flows -----------------------------------------------------

def test_store_outage_drops_the_record_and_accepts_the_message(milter_env, dns, tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    dns.set("_dmarc.example.net", "TXT", "v=DMARC1; p=none; rua=mailto:d@example.net")
    run = milter_env(dmarc_report_record=True, dmarc_report_store_path=str(blocker / "sub" / "r.sqlite3"))
    recorder = run.pipeline.stages["dmarc"].recorder
    with caplog.at_level(logging.WARNING, logger="owlery.milter"):
        code, ctx = run(msg(), **IN)
        assert recorder.flush(10)
    assert code == Milter.ACCEPT and "dmarc=fail" in ar(ctx)
    assert recorder.dropped == 1 and recorder.stored == 0
    assert any("results store unavailable" in r.getMessage() for r in caplog.records)


class SlowStore:
    """A store whose writes wait until released (a database hanging on a lock)."""

    def __init__(self, fail=False):
        self.release = threading.Event()
        self.rows: list = []
        self.fail = fail

    def add_many(self, rows):
        self.release.wait(10)
        if self.fail:
            raise DmarcStoreUnavailable("database gone")
        self.rows.extend(rows)

    def close(self):
        pass


def _row(i):
    return DmarcResult(date=float(i), source_ip="192.0.2.1", header_from="example.net", envelope_from="",
                       envelope_to="", policy_domain="example.net", result="pass", disposition="none",
                       dkim_aligned="pass", spf_aligned="fail")


def test_record_never_waits_for_a_hanging_store_and_drops_past_the_queue():
    store = SlowStore()
    recorder = Recorder(lambda: store, queue_size=3, batch=1)
    started = time.monotonic()
    for i in range(20):
        recorder.record(_row(i))
    assert time.monotonic() - started < 0.5          # 20 calls, none waited on the store
    assert recorder.dropped >= 20 - 3 - 1             # the queue, plus the one the writer holds
    store.release.set()
    assert recorder.flush(10)
    assert recorder.stored + recorder.dropped == 20 and len(store.rows) == recorder.stored
    recorder.close()


def test_a_failing_store_is_left_alone_for_a_while_then_retried():
    now = [100.0]
    store = SlowStore(fail=True)
    store.release.set()
    recorder = Recorder(lambda: store, batch=1, retry_delay=30, clock=lambda: now[0])
    recorder.record(_row(1))
    assert recorder.flush(10) and recorder.dropped == 1
    store.fail = False
    recorder.record(_row(2))                          # within the delay: dropped without a try
    assert recorder.flush(10) and recorder.dropped == 2 and store.rows == []
    now[0] += 31
    recorder.record(_row(3))
    assert recorder.flush(10) and [r.date for r in store.rows] == [3.0]
    recorder.close()


def test_close_writes_what_is_queued():
    store = SlowStore()
    store.release.set()
    recorder = Recorder(lambda: store, batch=100)
    for i in range(50):
        recorder.record(_row(i))
    recorder.close()
    assert len(store.rows) == 50
