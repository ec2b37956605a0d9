"""`owlery stats`: the counts of decision lines made by the daemons' own code, window, rotation, --json.

The policyd, milter, delivery and quarantine lines below come from the real code paths (the
policy pipeline, a MilterSession with the real content stages over scripted scanners, the
DeliveryExecutor, the quarantine CLI's audit), captured and stamped by Owlery's own stderr
formatter; if a daemon's line drifts from what the parser reads, these counts break.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
import os
import re
import time
from pathlib import Path

import pytest
from twisted.internet import task

from owlery import log as owlery_log
from owlery.app import stats_core
from owlery.app.cli import main
from owlery.app.stats_core import LineCounter, StatsParser, split_lines
from owlery.log_stderr import StderrFormatter
from owlery.settings import Settings
from tests.milters.session_driver import FixedPipeline

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0         # 2027-01-15; the captured lines are stamped from here on


# --- capturing real decision lines ---------------------------------------------------------

class Capture(logging.Handler):
    """Collects the decision lines (owlery.* loggers) as Owlery's stderr handler writes them,
    each stamped with the time the test gives."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.at = T0
        self.formatter = StderrFormatter("%(asctime)s %(levelname)s %(message)s")

    def emit(self, record):
        if record.levelno < logging.INFO:
            return
        record.created, record.msecs = self.at, 123.0
        self.lines.append(self.formatter.format(record))


@pytest.fixture
def capture():
    handler = Capture()
    root = logging.getLogger("owlery")
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _outcome(d):
    out = []
    d.addBoth(out.append)
    assert out, "the decision did not complete synchronously"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def policy_lines(capture, tmp_path):
    """Greylisting of one triplet (new, early retry, pass after 301 s) and two unknown
    recipients refused, from the real policy pipeline."""
    from policyd.checks import CheckContext, InlineExecutor
    from policyd.pipeline import Pipeline
    from policyd.protocol import PolicyRequest
    from tests.policyd.policyd_testlib import make_pipeline, settings_for

    def req(**attrs):
        base = {"request": "smtpd_access_policy", "protocol_state": "RCPT", "client_address": "192.0.2.10",
                "client_name": "mail.sender.example", "sender": "a@sender.example",
                "recipient": "u@example.org", "instance": "i1"}
        base.update(attrs)
        return PolicyRequest(base)

    settings = Settings().replace(state_backend="memory", greylist_delay=300, greylist_hostname="mx.test")
    grey = Pipeline(settings, CheckContext(settings, task.Clock(), InlineExecutor()), checks={"RCPT": ["greylist"]})
    session = grey.new_session()
    for offset, instance in ((0, "i1"), (120, "i2"), (301, "i3")):
        capture.at = T0 + offset
        _outcome(grey.decide(req(instance=instance), session, T0 + offset))
    capture.at = T0 + 400
    rcpt = make_pipeline(settings_for(tmp_path / "maps"), {"RCPT": ["recipient"]})
    for who in ("nobody@example.org", "ghost@example.org"):
        _outcome(rcpt.decide(req(recipient=who, client_address="203.0.113.9", client_name="bad.example",
                                 sender="spam@bad.example"), rcpt.new_session(), T0 + 400))


CLEAN = (b"From: Alice <alice@sender.test>\r\nTo: bob@example.test\r\nSubject: hello\r\n"
         b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <1@sender.test>\r\n\r\nHi Bob\r\n")


def _exe_message():
    return (b"From: a@sender.test\r\nTo: bob@example.test\r\nSubject: files\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
            b"Content-Type: application/octet-stream\r\n"
            b'Content-Disposition: attachment; filename="tool.exe"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(b"MZ whatever") + b"\r\n--b1--\r\n")


class FakeClamd:
    def __init__(self, result):
        self.result = result

    def scan(self, data):
        return self.result


class FakeSpamd:
    def __init__(self, score):
        self.score = score

    def scan(self, data, prefix=b""):
        from milters.clients.spamd import RuleHit, SpamResult
        return SpamResult(self.score, 5.0, self.score >= 5, (RuleHit("BAYES_99", self.score),))


def milter_lines(capture, tmp_path):
    """Through real MilterSessions and content stages: a clean message, spam tagged, spam
    quarantined, spam refused, a virus refused, a virus quarantined, a banned .exe refused."""
    from milters.clients.clamav import ScanResult
    from milters.session import MilterSession
    from milters.stages import Services
    from milters.stages.antivirus import AntivirusStage
    from milters.stages.banned import BannedStage
    from milters.stages.spam import SpamStage

    base = Settings().replace(quarantine_directory=str(tmp_path / "q"), quarantine_host_name="mx1",
                              milter_authserv_id="mx.owlery.test")

    count = [0]

    def run(settings, stages, raw=CLEAN):
        count[0] += 1
        session = MilterSession(settings, FixedPipeline(stages), now=lambda: T0)
        session.connect(f"mx{count[0]}.sender.test", "203.0.113.5", {"j": "mx.owlery.test"})
        session.helo("mx.sender.test", {})
        session.mail_from("<alice@sender.test>", (), {})
        session.rcpt("<bob@example.test>", (), {"i": f"QID{count[0]}"})
        session.data({})
        head, _, body = raw.partition(b"\r\n\r\n")
        for field in re.split(rb"\r\n(?![ \t])", head):
            name, _, value = field.partition(b":")
            session.header(name.decode(), value)
        session.end_of_headers({})
        session.body(body)
        return session.end_of_message({})

    def services():
        return Services(resolver=None, now=lambda: T0)

    def spam(settings, score):
        return SpamStage(settings, services(), client=FakeSpamd(score), directory=None)

    def av(settings, result):
        return AntivirusStage(settings, services(), client=FakeClamd(result))

    capture.at = T0 + 500
    assert run(base, [spam(base, 0.5)]).action == "accept"
    assert run(base, [spam(base, 7.5)]).action == "accept"             # tagged (tag2 = milter_score_tag 5)
    held = base.replace(spam_quarantine_level=10.0)
    assert run(held, [spam(held, 12.0)]).action == "discard"
    assert run(base, [spam(base, 25.0)]).action == "reject"            # milter_score_reject 15
    assert run(base, [av(base, ScanResult(True, "Eicar-Sig"))]).action == "reject"
    quarantining = base.replace(antivirus_infected_action="quarantine")
    assert run(quarantining, [av(quarantining, ScanResult(True, "Win.Test.EICAR_HDB-1"))]).action == "discard"
    banned = BannedStage(base, services())
    assert run(base, [banned], raw=_exe_message()).action == "reject"


def delivery_lines(capture, tmp_path):
    """The DeliveryExecutor as lmtpd runs it: INBOX, Junk, another folder, a redirect, a vacation
    reply, an unknown user, a temporary failure."""
    from owlery.state.memory_store import MemoryStore
    from sieve import api
    from sieve.delivery.executor import DeliveryExecutor, Plan
    from sieve.delivery.users import MailUser

    class Submitter:
        def send(self, env_from, rcpts, message):
            pass

    msg = b"From: bob@remote.test\nTo: alice@example.org\nSubject: hi\nMessage-ID: <m1@remote.test>\n\nhello\n"
    capture.at = T0 + 600
    cases = [((), True, None), ((api.FileInto(mailbox="Junk", create=True),), False, None),
             ((api.FileInto(mailbox="Lists.owlery", create=True),), False, None),
             ((api.Redirect(address="carol@other.test", envelope_from="bob@remote.test"),), False, None),
             ((api.Vacation(to="bob@remote.test", reply=b"Subject: Auto: hi\n\naway\n", period=86400,
                            tracking_key="vacation:abc"),), True, None),
             ((), True, "script failed")]
    for i, (actions, keep, tempfail) in enumerate(cases):
        ex = DeliveryExecutor(Settings(), submitter=Submitter(), state=MemoryStore(), program="lmtpd")
        ex.plan = lambda message, *a, actions=actions, keep=keep, tempfail=tempfail, **kw: Plan(
            actions=list(actions), keep=keep, message=message, tempfail=tempfail)
        user = MailUser("alice@example.org", str(tmp_path / f"Maildir{i}"), None, None)
        ex.deliver(msg, "bob@remote.test", "alice@example.org", user, queue_id=f"D{i}")
    ex.deliver(msg, "bob@remote.test", "nobody@example.org", None, queue_id="D9")


def quarantine_lines(tmp_path):
    """The quarantine CLI's audit lines, as it writes them to quarantine_audit_log_path."""
    from milters.quarantine_cli import _audit
    path = tmp_path / "audit.log"
    settings = Settings().replace(quarantine_audit_log_path=str(path))
    _audit(settings, "release", quarantine_id="q1", by="root", to="bob@example.test", reason="spam",
           from_="alice@sender.test", method="smtp")
    _audit(settings, "release-denied", quarantine_id="q2", by="web", reason="bad secret")
    _audit(settings, "delete", quarantine_id="q3", by="root", reason="virus", from_="x@y.test")
    return path.read_text().splitlines()


@pytest.fixture
def real_lines(capture, tmp_path):
    policy_lines(capture, tmp_path)
    milter_lines(capture, tmp_path)
    delivery_lines(capture, tmp_path)
    daemons = list(capture.lines)       # the audit lines are read from the audit file only
    return daemons + quarantine_lines(tmp_path)


def summarise(lines, since=None, until=None, now=T0 + 3600, tag_level=5.0):
    parser = StatsParser(since, until, now=now, tag_level=tag_level)
    parser.feed(lines)
    return parser.summary().to_dict(top=10)


# --- the counts ------------------------------------------------------------------------------

def test_counts_from_real_decision_lines(real_lines):
    doc = summarise(real_lines)
    assert doc["lines"]["other"] == 0, [line for line in real_lines]
    policy = doc["policy"]
    assert policy["by_check"]["greylist"] == {"defer-if-permit": 2, "prepend": 1}
    assert policy["by_check"]["recipient"] == {"reject": 2}
    rejected = policy["top_rejected"]
    assert rejected["clients"][0] == {"name": "bad.example[203.0.113.9]", "count": 2}
    assert {"name": "spam@bad.example", "count": 2} in rejected["senders"]
    assert {r["name"] for r in rejected["recipients"]} >= {"nobody@example.org", "ghost@example.org"}

    g = doc["greylist"]
    assert (g["deferred"], g["new"], g["early_retry"], g["passed"]) == (2, 1, 1, 1)
    assert g["pass_rate"] == 1.0 and g["median_delay"] == 301

    assert doc["milter"]["by_action"] == {"accept": 2, "discard": 2, "reject": 3}
    assert doc["spam"] == {"scanned": 4, "tagged": 1, "quarantined": 1, "rejected": 1, "tag_level": 5.0}
    virus = doc["virus"]
    assert (virus["found"], virus["rejected"], virus["quarantined"]) == (2, 1, 1)
    assert {v["name"] for v in virus["top"]} == {"Eicar-Sig", "Win.Test.EICAR_HDB-1"}
    assert (doc["banned"]["found"], doc["banned"]["rejected"]) == (1, 1)
    assert doc["banned"]["top"][0]["name"].startswith("tool.exe")
    assert doc["quarantine"]["held"] == {"spam": 1, "virus": 1}

    d = doc["delivery"]
    assert d["by_result"] == {"delivered": 5, "tempfail": 1, "unknown": 1}
    assert (d["stored_inbox"], d["stored_junk"], d["stored_other"]) == (2, 1, 1)
    assert (d["redirected"], d["vacation_sent"], d["rejected"], d["tempfail"]) == (1, 1, 1, 1)
    assert {f["name"]: f["count"] for f in d["folders"]} == {"INBOX": 2, "Junk": 1, "Lists.owlery": 1}
    q = doc["quarantine"]
    assert (q["released"], q["release_denied"], q["deleted"]) == (1, 1, 1)


def test_auth_results_from_the_milter_symbols():
    lines = [owlery_log.format_decision(
        "milter", "Q1", "accept", head="END-OF-MESSAGE from a.test[192.0.2.1]", from_="a@a.test",
        to="b@b.test", stages="spf,dkim_verify,dmarc", score="0",
        symbols="SPF_PASS(0),DKIM_VALID(0),DMARC_POLICY_ALLOW(0)"),
        owlery_log.format_decision(
        "milter", "Q2", "reject", head="END-OF-MESSAGE from b.test[192.0.2.2]",
        reply="550 5.7.1 Rejected by DMARC policy of b.test", from_="x@b.test", to="b@b.test",
        stages="spf,dkim_verify,dmarc", score="3", symbols="SPF_FAIL(3),DKIM_NONE(0),DMARC_POLICY_REJECT(0)",
        reason="dmarc: policy reject")]
    auth = summarise(lines, now=T0)["auth"]
    assert auth["spf"] == {"fail": 1, "pass": 1}
    assert auth["dkim"] == {"none": 1, "pass": 1}
    assert auth["dmarc"] == {"fail p=reject": 1, "pass": 1}


# --- window and stamps -----------------------------------------------------------------------

def _stderr_stamp(when):
    return time.strftime("%Y-%m-%d %H:%M:%S,000", time.localtime(when))


LINE = "policyd: reject: RCPT from h.test[192.0.2.1]: 550 5.1.1 <u@x.test>: User unknown; from=<a@b.test> to=<u@x.test> check=recipient"


def test_window_keeps_lines_in_since_until_only():
    lines = [f"{_stderr_stamp(T0 + i * 600)} INFO {LINE}" for i in range(10)]     # every 10 minutes
    doc = summarise(lines, since=T0 + 1200, until=T0 + 3000)
    assert doc["policy"]["by_action"] == {"reject": 3}          # T0+1200, +1800, +2400
    assert doc["lines"]["out_of_window"] == 7
    assert summarise(lines)["policy"]["by_action"] == {"reject": 10}


@pytest.mark.parametrize("prefix", [
    "{iso_utc} mx owlery-policyd[12]: ",                     # rsyslog RFC 3339
    "{iso_utc} ",                                            # the quarantine audit log
    "{syslog} mx owlery-policyd[12]: ",                      # RFC 3164
    "{syslog} mx owlery[7]: {stderr} INFO ",                 # journald short, over our stderr stamp
    "{stderr} WARNING ",
])
def test_stamp_forms(prefix):
    when = T0 + 7200
    text = prefix.format(iso_utc=time.strftime("%Y-%m-%dT%H:%M:%S.123456+00:00", time.gmtime(when)),
                         syslog=time.strftime("%b %e %H:%M:%S", time.localtime(when)),
                         stderr=_stderr_stamp(when))
    inside = summarise([text + LINE], since=when - 1, until=when + 1)
    outside = summarise([text + LINE], since=when + 1, until=when + 100)
    assert inside["lines"]["decisions"] == 1 and outside["lines"]["out_of_window"] == 1


def test_syslog_stamp_from_december_read_in_january_is_last_year():
    now = time.mktime((2027, 1, 2, 12, 0, 0, 0, 0, -1))
    december = time.mktime((2026, 12, 31, 23, 0, 0, 0, 0, -1))
    doc = summarise([f"Dec 31 23:00:00 mx owlery-policyd[1]: {LINE}"], since=december - 1, now=now)
    assert doc["lines"]["decisions"] == 1


def test_undated_lines_count_only_without_a_window():
    assert summarise([LINE], since=T0)["lines"]["undated"] == 1
    assert summarise([LINE])["lines"]["decisions"] == 1


# --- hostile and malformed lines ------------------------------------------------------------

def test_hostile_lines_are_other_and_bounded():
    stamp = _stderr_stamp(T0)
    lines = [
        "",
        "\x00\x01\x02 garbage",
        f"{stamp} INFO policyd: nonsense: more nonsense",
        f"{stamp} INFO policyd: Q!@#: reject: RCPT from x[1.2.3.4]: ; from=<a>",       # not a queue id
        f"{stamp} INFO milter: Q1: accept: END-OF-MESSAGE from x[1]: score=abc symbols=((((",
        f"{stamp} INFO lmtpd: Q1: delivered: 250 ok; detail=stored=",
        "2027-13-45 99:99:99,000 INFO " + LINE,                                        # impossible date
        "20x7-01-15 10:00:00,000 INFO " + LINE,
        # a Postfix line quoting our format far into the line is not ours
        f"{stamp} mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from h[1.2.3.4]: 554 5.7.1 {'x' * 300} "
        "policyd: reject: RCPT from x[1]: 550; from=<a> check=forged",
        f"{stamp} INFO policyd: reject: RCPT from h[1]: 550 5.1.1 <u>: no; from=<a check=evil> to=<u> check=recipient",
    ]
    doc = summarise(lines)
    assert doc["policy"]["by_check"] == {"recipient": {"reject": 3}}      # not "forged", not "evil>"
    assert doc["milter"]["by_action"] == {"accept": 1} and doc["milter"]["symbols"] == []
    assert doc["delivery"]["by_result"] == {"delivered": 1} and doc["delivery"]["folders"] == []
    assert (doc["lines"]["read"], doc["lines"]["decisions"], doc["lines"]["other"]) == (len(lines), 5, 5)


def test_too_long_lines_are_skipped_without_being_held():
    stamp = _stderr_stamp(T0)
    good = f"{stamp} INFO {LINE}\n".encode()
    huge = b"A" * (stats_core.LINE_MAX * 3) + b"\n"
    data = good + huge + good + b"B" * (stats_core.LINE_MAX + 5)          # the last one unterminated
    for size in (7, 4096, 1 << 20):
        counter = LineCounter()
        parser = StatsParser(None, None, now=T0)
        for block in split_lines((data[i:i + size] for i in range(0, len(data), size)), counter):
            parser.feed(block)
        doc = parser.summary(counter.too_long).to_dict()
        assert doc["lines"]["too_long"] == 2, size
        assert doc["policy"]["by_action"] == {"reject": 2}, size


def test_top_lists_are_bounded(monkeypatch):
    monkeypatch.setattr(stats_core, "KEYS_MAX", 50)
    stamp = _stderr_stamp(T0)
    lines = [f"{stamp} INFO " + LINE.replace("a@b.test", f"s{i}@b.test") for i in range(200)]
    parser = StatsParser(None, None, now=T0)
    parser.feed(lines)
    summary = parser.summary()
    assert len(summary.rejected_senders.counts) == 50 and summary.rejected_senders.more == 150
    assert summary.to_dict(top=None)["policy"]["top_rejected"]["senders"][-1] == {"name": "(more)", "count": 150}


def test_invalid_utf8_is_replaced_not_fatal():
    counter = LineCounter()
    blocks = list(split_lines([b"\xff\xfe " + f"{_stderr_stamp(T0)} INFO {LINE}".encode() + b"\n\xc3"], counter))
    assert sum(len(b) for b in blocks) == 2


# --- the command: files, rotation, gzip, stdin, --json ---------------------------------------

def _write_config(tmp_path, log_files):
    cfg = tmp_path / "owlery.toml"
    cfg.write_text("stats_log_files = [" + ", ".join(json.dumps(str(p)) for p in log_files) + "]\n")
    return str(cfg)


def _stamped(when, n=1):
    return "".join(f"{_stderr_stamp(when)} INFO {LINE}\n" for _ in range(n))


def test_default_files_with_rotations_and_gzip(tmp_path, capsys):
    now = time.time()
    log = tmp_path / "mail.log"
    log.write_text(_stamped(now - 60, 1))
    (tmp_path / "mail.log.1").write_text(_stamped(now - 3600, 2))
    with gzip.open(tmp_path / "mail.log.2.gz", "wt") as f:
        f.write(_stamped(now - 7200, 4))
    with gzip.open(tmp_path / "mail.log.3.gz", "wt") as f:     # older than the window: not even opened
        f.write(_stamped(now - 5 * 86400, 8))
    os.utime(tmp_path / "mail.log.3.gz", (now - 5 * 86400, now - 5 * 86400))
    (tmp_path / "mail.log.bak").write_text(_stamped(now - 60, 16))       # not a rotation
    assert main(["stats", "--config", _write_config(tmp_path, [log]), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["policy"]["by_action"] == {"reject": 7}
    assert doc["files"] == [str(tmp_path / "mail.log.2.gz"), str(tmp_path / "mail.log.1"), str(log)]


def test_explicit_files_gzip_by_magic_and_window_options(tmp_path, capsys):
    now = time.time()
    path = tmp_path / "whatever.log"
    path.write_bytes(gzip.compress((_stamped(now - 3 * 86400, 2) + _stamped(now - 600, 3)).encode()))
    assert main(["stats", "--since", "7d", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["policy"]["by_action"] == {"reject": 5}
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now - 86400))
    assert main(["stats", "--since", since, "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["policy"]["by_action"] == {"reject": 3}
    assert main(["stats", "--since", "7d", "--until", "1d", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["policy"]["by_action"] == {"reject": 2}
    assert main(["stats", "--since", "yesterday", str(path)]) == 2
    assert main(["stats", str(tmp_path / "missing.log")]) == 1


def test_stdin_plain_and_gzip(monkeypatch, capsys):
    text = _stamped(time.time() - 60, 2).encode()
    for data in (text, gzip.compress(text)):
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(data))))
        assert main(["stats", "--json", "-"]) == 0
        assert json.loads(capsys.readouterr().out)["policy"]["by_action"] == {"reject": 2}


def test_no_readable_default_file_says_how_to_pipe_the_journal(tmp_path, capsys):
    assert main(["stats", "--config", _write_config(tmp_path, [tmp_path / "none.log"])]) == 1
    assert "journalctl" in capsys.readouterr().err


def test_json_schema(real_lines, tmp_path, capsys):
    path = tmp_path / "all.log"
    path.write_text("\n".join(real_lines) + "\n")
    assert main(["stats", "--all", "--json", "--top", "1", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"schema", "window", "lines", "policy", "greylist", "milter", "spam", "virus", "banned",
                        "auth", "delivery", "quarantine", "files"}
    assert doc["schema"] == 1 and doc["files"] == [str(path)]
    assert set(doc["lines"]) == {"read", "in_window", "decisions", "other", "out_of_window", "undated", "too_long"}
    assert all(isinstance(v, int) for v in doc["lines"].values())
    for top in (*doc["policy"]["top_rejected"].values(), doc["milter"]["symbols"], doc["delivery"]["folders"]):
        assert len(top) <= 1 and all(set(item) == {"name", "count"} for item in top)
    assert set(doc["greylist"]) >= {"deferred", "new", "early_retry", "passed", "pass_rate", "median_delay"}
    assert set(doc["delivery"]) >= {"by_result", "stored_inbox", "stored_junk", "stored_other", "redirected",
                                    "vacation_sent", "rejected", "tempfail", "folders"}
    assert set(doc["quarantine"]) >= {"held", "released", "deleted", "expired"}


def test_text_report_names_every_part(real_lines, tmp_path, capsys):
    path = tmp_path / "all.log"
    path.write_text("\n".join(real_lines) + "\n")
    assert main(["stats", "--all", str(path)]) == 0
    out = capsys.readouterr().out
    for title in ("Policy decisions", "Greylisting", "Content checks", "Authentication", "Deliveries", "Quarantine"):
        assert f"\n{title}" in out
    assert "pass rate 100.0%, median delay 301 s" in out
    assert "stored     INBOX 2, Junk 1, other folders 1" in out


# --- the README example ----------------------------------------------------------------------

README_LINES = [
    "2027-01-15 08:00:01,120 INFO " + owlery_log.format_decision(
        "policyd", None, "defer-if-permit", head="RCPT from mx.example[192.0.2.7]",
        reply="DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 300 seconds", from_="a@example.net",
        to="bob@example.org", check="greylist", instance="1.1", greylist="new", delay_left=300),
    "2027-01-15 08:05:40,310 INFO " + owlery_log.format_decision(
        "policyd", "4F3A21C", "prepend", head="RCPT from mx.example[192.0.2.7]",
        reply="PREPEND X-Greylist: delayed 339 seconds by Owlery at mx.example.org", from_="a@example.net",
        to="bob@example.org", check="greylist", instance="1.2", greylist="passed", delayed=339),
    "2027-01-15 08:06:12,002 INFO " + owlery_log.format_decision(
        "policyd", None, "reject", head="RCPT from unknown[203.0.113.9]",
        reply="550 5.1.1 <nobody@example.org>: User unknown", from_="win@lottery.example",
        to="nobody@example.org", check="recipient", instance="2.1", reason="unknown_user"),
    "2027-01-15 08:05:41,020 INFO " + owlery_log.format_decision(
        "milter", "4F3A21C", "accept", head="END-OF-MESSAGE from mx.example[192.0.2.7]", from_="a@example.net",
        to="bob@example.org", stages="spf,dkim_verify,dmarc,antivirus,spam", score="6.2",
        symbols="SPF_PASS(0),DKIM_VALID(0),DMARC_POLICY_ALLOW(0),SPAMD(6.2)"),
    "2027-01-15 08:05:41,090 INFO " + owlery_log.format_decision(
        "lmtpd", "4F3A21C", "delivered", reply="250 2.0.0 <bob@example.org> Saved", from_="a@example.net",
        to="bob@example.org", detail="stored=.Junk", delay="0.041"),
]


def test_readme_statistics_example_is_what_the_command_prints(tmp_path, capsys, monkeypatch):
    from tests.core.test_readme import README, literal_blocks, section
    text = section("Statistics")
    assert "$ owlery stats --since 24h" in text and "$ journalctl -u 'owlery*' --since -1d | owlery stats -" in text
    path = tmp_path / "mail.log"
    path.write_text("\n".join(README_LINES) + "\n")
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert main(["stats", "--since", "2027-01-15T00:00", "--until", "2027-01-16T00:00", str(path)]) == 0
    finally:
        monkeypatch.undo()
        time.tzset()
    printed = capsys.readouterr().out.replace(str(path), "/var/log/mail.log").rstrip("\n")
    assert printed in literal_blocks(text), printed
    assert README.count(".. code-block:: console\n\n    $ owlery stats") == 1
