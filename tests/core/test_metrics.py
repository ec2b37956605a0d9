"""owlery.metrics: the catalogue's naming, no-op handles while off, bounded label values,
delivery results counted per recipient, workers' metric files summed in one scrape, the
settings and what `owlery run` writes. Daemons scraped for real: tests/e2e/test_metrics_e2e.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from owlery import metrics
from owlery.settings import parse_text

ROOT = Path(__file__).resolve().parents[2]


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(series name, sorted label pairs): value} of one scrape, through Prometheus' own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def on():
    metrics.enable()
    yield lambda: samples(metrics.scrape()[0].decode())
    metrics.disable()


def test_catalogue_follows_prometheus_naming():
    assert metrics.CATALOGUE
    for name, spec in metrics.CATALOGUE.items():
        assert name.startswith("owlery_"), name
        if spec.kind == "counter":
            assert name.endswith("_total"), name
        if spec.kind == "histogram":
            assert name.endswith(("_seconds", "_bytes")), name
        assert not any(label in ("address", "sender", "recipient", "domain", "to", "from")
                       for label in spec.labels), name


def test_handles_are_noops_until_enabled():
    metrics.disable()
    assert metrics.POLICYD_DECISIONS.labels("RCPT", "greylist", "defer") is metrics.NOOP
    metrics.MILTER_MESSAGE_SIZE.observe(10)         # nothing to count into, nothing raised
    with pytest.raises(RuntimeError):
        metrics.scrape()


def test_counts_show_in_a_scrape(on):
    metrics.POLICYD_DECISIONS.labels("RCPT", "greylist", "defer-if-permit").inc()
    metrics.POLICYD_DECISIONS.labels("RCPT", "greylist", "defer-if-permit").inc()
    metrics.MILTER_MESSAGE_SIZE.observe(5000)
    got = on()
    assert got[("owlery_policyd_decisions_total", (("action", "defer-if-permit"), ("check", "greylist"),
                                                   ("protocol_state", "RCPT")))] == 2
    assert got[("owlery_milter_message_size_bytes_count", ())] == 1
    assert got[("owlery_milter_message_size_bytes_bucket", (("le", "4096.0"),))] == 0
    assert got[("owlery_milter_message_size_bytes_bucket", (("le", "16384.0"),))] == 1
    assert not [k for k in got if k[0].endswith("_created")]


def test_batched_counters_reach_prometheus_at_the_next_sample(on):
    child = metrics.POLICYD_DECISIONS.labels("RCPT", "recipient", "reject")
    child.inc()
    child.inc()
    assert child.child._value.get() == 0          # still a plain int on the hot path
    metrics.sample()
    assert child.child._value.get() == 2
    assert on()[("owlery_policyd_decisions_total", (("action", "reject"), ("check", "recipient"),
                                                     ("protocol_state", "RCPT")))] == 2


def test_label_values_are_bounded(on):
    for i in range(2000):
        metrics.MILTER_SYMBOLS.labels("spam", f"user{i}@example.org").inc()
    metrics.MILTER_SYMBOLS.labels("spam", "a free text with spaces").inc()
    metrics.MILTER_SYMBOLS.labels("spam", "x" * 200).inc()
    got = on()
    values = {v for (name, labels), _ in got.items() for _, v in labels}
    assert not [v for v in values if "@" in v or " " in v or len(v) > 64]
    assert got[("owlery_milter_symbols_total", (("stage", "spam"), ("symbol", "other")))] == 2002


def test_label_sets_are_capped(on):
    for i in range(metrics.LABEL_SETS_MAX + 50):
        metrics.MILTER_SYMBOLS.labels("spam", f"SYMBOL_{i}").inc()
    got = on()
    series = [k for k in got if k[0] == "owlery_milter_symbols_total"]
    assert len(series) == metrics.LABEL_SETS_MAX + 1
    assert got[("owlery_milter_symbols_total", (("stage", "other"), ("symbol", "other")))] == 50


def test_collected_gauges_and_samplers_run_at_scrape(on):
    seen = []
    metrics.add_sampler(lambda: seen.append(1))
    metrics.add_gauge_source(metrics.QUARANTINE_MESSAGES, lambda: [((), 7.0)])
    try:
        got = on()
        assert got[("owlery_quarantine_messages", ())] == 7
        assert seen == [1]
    finally:
        metrics._SAMPLERS.clear()
        metrics._GAUGE_SOURCES.clear()


def test_metrics_endpoint_setting():
    assert metrics.endpoint_for(parse_text(""), "policyd") is None
    s = parse_text('lmtpd_metrics_listen = "tcp:127.0.0.1:9042"')
    assert str(metrics.endpoint_for(s, "lmtpd")) == "tcp:127.0.0.1:9042"
    with pytest.raises(ValueError, match="TCP only"):
        metrics.endpoint_for(parse_text('policyd_metrics_listen = "unix:/run/m.sock"'), "policyd")


def test_delivery_results_per_recipient(on, tmp_path):
    from owlery.state.memory_store import MemoryStore
    from sieve import api
    from sieve.delivery.executor import Executor, Plan
    from sieve.delivery.users import MailUser

    class Submitter:
        def send(self, env_from, rcpts, message):
            pass

    msg = b"From: bob@remote.test\nTo: alice@example.org\nSubject: hi\nMessage-ID: <m1@remote.test>\n\nhello\n"
    ex = Executor(parse_text(""), submitter=Submitter(), state=MemoryStore(), program="test")
    user = MailUser("alice@example.org", str(tmp_path / "Maildir"), None, None)
    plans = [
        ([], True),                                                           # keep: stored
        ([api.FileInto(mailbox="Work")], False),                              # folder
        ([api.Redirect(address="carol@other.test", envelope_from="bob@remote.test")], False),
        ([api.Vacation(to="bob@remote.test", reply=b"Subject: away\n\naway\n", period=86400,
                       tracking_key="v1")], True),                            # stored + vacation
        ([], False),                                                          # discarded
    ]
    for actions, keep in plans:
        ex.plan = lambda message, *a, actions=actions, keep=keep, **kw: Plan(
            actions=list(actions), keep=keep, message=message)
        assert ex.deliver(msg, "bob@remote.test", "alice@example.org", user).ok
    ex.plan = lambda message, *a, **kw: Plan(actions=[], keep=True, message=message, tempfail="script busy")
    assert ex.deliver(msg, "bob@remote.test", "alice@example.org", user).action == "tempfail"
    assert ex.deliver(msg, "bob@remote.test", "nobody@example.org", None).action == "unknown"
    got = on()

    def results(name, label):
        return {dict(k[1])[label]: v for k, v in got.items() if k[0] == name}
    assert results("owlery_deliveries_total", "outcome") == {"delivered": 5, "tempfail": 1, "unknown": 1}
    assert results("owlery_delivery_results_total", "result") == {
        "stored": 2, "folder": 1, "redirected": 1, "vacation": 1, "discarded": 1, "tempfail": 1, "rejected": 1}
    assert got[("owlery_delivery_duration_seconds_count", ())] == 7


_WORKER = """
import sys
from owlery import metrics
metrics.enable()
for _ in range(int(sys.argv[1])):
    metrics.POLICYD_DECISIONS.labels("RCPT", "none", "dunno").inc()
metrics.BACKEND_DURATION.labels("directory").observe(0.01)
metrics.sample()            # a worker's periodic flush of its batched counters
if sys.argv[2] == "scrape":
    sys.stdout.write(metrics.scrape()[0].decode())
"""


def test_workers_files_are_summed_in_one_scrape(tmp_path):
    """prometheus_client's multiprocess mode, as policyd's workers use it: each process writes
    its own files in PROMETHEUS_MULTIPROC_DIR (set before it imports the library); any of them
    answers a scrape with the sum."""
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    for n in (3, 4):
        subprocess.run([sys.executable, "-c", _WORKER, str(n), "-"], env=env, check=True, timeout=60)
    out = subprocess.run([sys.executable, "-c", _WORKER, "5", "scrape"], env=env, check=True, timeout=60,
                         capture_output=True, text=True).stdout
    got = samples(out)
    assert got[("owlery_policyd_decisions_total", (("action", "dunno"), ("check", "none"),
                                                   ("protocol_state", "RCPT")))] == 12
    assert got[("owlery_backend_request_duration_seconds_count", (("backend", "directory"),))] == 3
    assert len(list(tmp_path.glob("*.db"))) == 3 * 2      # counter and histogram files per process


def test_owlery_run_turns_metrics_on_for_loopback(tmp_path):
    from owlery.app import starter
    from owlery.settings import load
    layout = starter.StarterLayout.for_config(str(tmp_path / "owlery.toml"), "/etc/owlery/owlery.toml",
                                              daemon_user=None)
    starter.write_starter(layout, starter.HostedDomain("x.test", "test"), "")
    settings = load(str(tmp_path / "owlery.toml"))
    got = {name: str(metrics.endpoint_for(settings, name)) for name in ("policyd", "milter", "lmtpd", "socketmap")}
    assert got == {"policyd": "tcp:127.0.0.1:9040", "milter": "tcp:127.0.0.1:9041",
                   "lmtpd": "tcp:127.0.0.1:9042", "socketmap": "tcp:127.0.0.1:9044"}
    daemon_ports = {settings.policyd_listen[0], settings.milter_listen, settings.lmtpd_listen[0]}
    assert not daemon_ports & set(got.values())


def test_readme_metrics_example_is_what_owlery_run_writes():
    import re
    readme = (ROOT / "README.rst").read_text()
    section = readme.split("\nMetrics\n-------\n", 1)[1].split("\n\n.. code-block:: yaml", 1)
    toml = re.search(r"\.\. code-block:: toml\n\n((?:    .*\n)+)", section[0]).group(1)
    from owlery.app.starter import METRICS_LISTEN
    assert parse_text("\n".join(line[4:] for line in toml.splitlines())).effective(only_non_default=True) \
        == parse_text("\n".join(f"{k} = {v}" for k, v in METRICS_LISTEN)).effective(only_non_default=True)
    targets = re.search(r"targets: \[(.*)\]", section[1]).group(1)
    assert targets == ", ".join(f'"127.0.0.1:{metrics.DEFAULT_PORTS[d]}"' for d in ("policyd", "milter", "lmtpd"))
