"""Each daemon's /metrics scraped over HTTP after real traffic, parsed with Prometheus' own parser:
the counters moved by exactly the traffic sent, and no label value carries an address.

- policyd with two workers (prometheus_client's multiprocess mode): greylist deferrals for many
  addresses, early retries, DATA requests no check answers; every scrape, whichever worker
  answers it, shows the sum (within the workers' one-second flush);
- the milter driven by Debian's miltertest: messages, symbols, sizes, stage latencies, and the
  quarantine store's size counted in the background;
- lmtpd: LMTP deliveries into INBOX, into a folder (Sieve fileinto), and to an unknown user.
"""

from __future__ import annotations

import re
import smtplib
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from owlery.quarantine import QuarantineRecord, RecipientState, new_id
from owlery.quarantine.directory import DirectoryStore
from policyd.cli import query
from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.owlery_milter import MilterProcess, run_miltertest
from tests.harness.procs import free_ports, wait_until

LUA = Path(__file__).resolve().parents[1] / "milters" / "lua"


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def moved(before: dict, after: dict, name: str) -> dict[tuple, float]:
    """{labels: increase} of the series of `name` that changed between two scrapes."""
    out = {}
    for (series, labels), value in after.items():
        if series == name and value != before.get((series, labels), 0):
            out[labels] = value - before.get((series, labels), 0)
    return out


def assert_bounded(scraped: dict) -> None:
    values = [v for (_, labels) in scraped for _, v in labels]
    assert values and not [v for v in values if "@" in v or len(v) > 64], values


def greylist_request(i: int, state: str = "RCPT") -> dict[str, str]:
    return {"request": "smtpd_access_policy", "protocol_state": state, "protocol_name": "ESMTP",
            "client_address": f"198.51.100.{i}", "client_name": f"mx{i}.remote.test",
            "helo_name": f"mx{i}.remote.test", "sender": f"sender{i}@remote{i}.test",
            "recipient": f"user{i}@example.org", "instance": f"metrics.{i}", "size": "100"}


def test_policyd_counts_every_decision_summed_over_workers(tmp_path):
    metrics_port, = free_ports(1)
    daemons = OwleryDaemons(tmp_path, which=("policyd",), extra_config=(
        'policyd_workers = 2\npolicyd_checks = { RCPT = ["greylist"] }\n'
        f'state_sqlite_path = "{tmp_path}/state.sqlite"\n'
        f'policyd_metrics_listen = "tcp:127.0.0.1:{metrics_port}"\n')).start()
    try:
        endpoint = f"tcp:127.0.0.1:{daemons.ports['policyd']}"
        before = scrape(metrics_port)
        for i in range(20):         # 20 new triplets, many addresses: all deferred
            assert query(endpoint, greylist_request(i)).startswith("DEFER_IF_PERMIT"), daemons.log("policyd")
        for i in range(5):          # 5 of them again at once: early retries, still deferred
            assert query(endpoint, greylist_request(i)).startswith("DEFER_IF_PERMIT")
        for i in range(3):          # no check at DATA: DUNNO
            assert query(endpoint, greylist_request(i, "DATA")) == "DUNNO"
        expected = {(("action", "defer-if-permit"), ("check", "greylist"), ("protocol_state", "RCPT")): 25,
                    (("action", "dunno"), ("check", "none"), ("protocol_state", "DATA")): 3}
        # The worker that answers a scrape flushes its own counts; the other's arrive within
        # its flush interval (METRICS_SAMPLE_INTERVAL, 1 s).
        after = wait_until(lambda: (lambda s: s if moved(before, s, "owlery_policyd_decisions_total") == expected
                                    else None)(scrape(metrics_port)), 10, "both workers' decisions in a scrape")
        scrapes = [scrape(metrics_port) for _ in range(6)]    # answered by either worker
        # Every deferral counted once, as new or early-retry (which one the retry on the other
        # worker is depends on the greylist's per-worker memory, not on the metrics).
        greylisted = moved(before, after, "owlery_greylist_triplets_total")
        assert sum(greylisted.values()) == 25 and greylisted[(("result", "new"),)] >= 20, greylisted
        assert set(greylisted) <= {(("result", "new"),), (("result", "early-retry"),)}, greylisted
        for other in scrapes:
            assert {k: v for k, v in other.items() if k[0] == "owlery_policyd_decisions_total"} == \
                {k: v for k, v in after.items() if k[0] == "owlery_policyd_decisions_total"}
        assert_bounded(after)
        found = re.search(r"metrics on http://127\.0\.0\.1:\d+/metrics \(sum of 2 workers, files in (\S+)\)",
                          daemons.log("policyd"))
        metric_dir = Path(found.group(1))
        assert len(list(metric_dir.glob("histogram_*.db"))) == 2    # one file per worker
    finally:
        daemons.stop()
    assert not metric_dir.exists(), "the parent removes the workers' metric files at exit"


def test_milter_counts_messages_symbols_sizes_and_stage_times(tmp_path):
    metrics_port, = free_ports(1)
    config = ('milter_authserv_id = "mx.owlery.test"\nmilter_spf_source = "none"\n'
              'milter_inbound_stages = ["dkim_verify", "authres"]\nmilter_internal_networks = []\n'
              f'quarantine_directory = "{tmp_path}/quarantine"\n'
              f'milter_metrics_listen = "tcp:127.0.0.1:{metrics_port}"\n')
    store = DirectoryStore(str(tmp_path / "quarantine"))      # two messages held already
    for i, size in enumerate((1200, 3400)):
        store.put(QuarantineRecord(new_id(), f"s{i}", 0.0, "virus", "Eicar", "bob@remote.test",
                                   (RecipientState("alice@example.org"),), size), b"x" * size)
    store.close()
    with MilterProcess(tmp_path / "milter", config, listen="unix") as milter:
        before = scrape(metrics_port)
        assert (before[("owlery_quarantine_messages", ())], before[("owlery_quarantine_size_bytes", ())]) == (2, 4600)
        for _ in range(3):
            code, out = run_miltertest(LUA / "inbound.lua", milter.miltertest_spec, authserv="mx.owlery.test")
            assert code == 0 and "PASS" in out, out + milter.log()[-2000:]
        after = scrape(metrics_port)
    assert moved(before, after, "owlery_milter_messages_total") == {(("action", "accept"),): 3}
    assert moved(before, after, "owlery_milter_symbols_total") == {
        (("stage", "dkim_verify"), ("symbol", "DKIM_NONE")): 3}
    assert moved(before, after, "owlery_milter_stage_duration_seconds_count") == {
        (("stage", "dkim_verify"),): 3, (("stage", "authres"),): 3}
    assert moved(before, after, "owlery_milter_message_size_bytes_count") == {(): 3}
    # Three header fields and "hello\r\n" per message, as the stages see them: the script's
    # values start with a space and the adapter adds the one libmilter strips (no P_HDR_LEADSPC).
    size = len(b"Authentication-Results:  mx.owlery.test; dkim=pass header.d=example.net\r\n"
               b"From:  Alice <alice@example.net>\r\nSubject:  hello\r\n\r\nhello\r\n")
    assert moved(before, after, "owlery_milter_message_size_bytes_sum") == {(): 3 * size}
    assert_bounded(after)


SIEVE_FOLDER = b'require "fileinto";\r\nfileinto "Work";\r\n'


def test_lmtpd_counts_deliveries_by_result(tmp_path):
    metrics_port, = free_ports(1)
    (tmp_path / "mailboxes").write_text("alice@example.org\nbob@example.org\n")
    sieve = tmp_path / "mail" / "example.org" / "bob" / "active.sieve"
    sieve.parent.mkdir(parents=True)
    sieve.write_bytes(SIEVE_FOLDER)
    daemons = OwleryDaemons(tmp_path / "d", which=("lmtpd",), extra_config=(
        f'maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"\n'
        f'delivery_sieve_script_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/active.sieve"\n'
        f'files_mailboxes = "{tmp_path}/mailboxes"\nstate_sqlite_path = "{tmp_path}/state.sqlite"\n'
        f'lmtpd_metrics_listen = "tcp:127.0.0.1:{metrics_port}"\n')).start()
    message = b"From: carol@remote.test\r\nSubject: hi\r\nMessage-ID: <m@remote.test>\r\n\r\nhello\r\n"
    try:
        before = scrape(metrics_port)
        with smtplib.LMTP("127.0.0.1", daemons.ports["lmtpd"]) as lmtp:
            lmtp.sendmail("carol@remote.test", ["alice@example.org"], message)        # INBOX
            lmtp.sendmail("carol@remote.test", ["alice@example.org", "bob@example.org"], message)
            assert lmtp.getreply()[0] == 250      # LMTP's second reply after DATA (smtplib reads one)
            lmtp.mail("carol@remote.test")
            assert lmtp.rcpt("nobody@example.org")[0] == 550                       # refused at RCPT
            lmtp.rset()
        after = scrape(metrics_port)
    finally:
        daemons.stop()
    assert moved(before, after, "owlery_deliveries_total") == {(("outcome", "delivered"),): 3}
    assert moved(before, after, "owlery_delivery_results_total") == {
        (("result", "stored"),): 2, (("result", "folder"),): 1}
    assert moved(before, after, "owlery_delivery_duration_seconds_count") == {(): 3}
    # Four recipient lookups (alice twice, bob, nobody), each timed.
    assert moved(before, after, "owlery_backend_request_duration_seconds_count") == {(("backend", "directory"),): 4}
    assert_bounded(after)
