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
    from owlery.settings import SettingsError
    with pytest.raises(SettingsError, match="TCP only"):        # refused where the file is read
        parse_text('policyd_metrics_listen = "unix:/run/m.sock"')


def test_delivery_results_per_recipient(on, tmp_path):
    from owlery.state.memory_store import MemoryStore
    from sieve import api
    from sieve.delivery.executor import DeliveryExecutor, Plan
    from sieve.delivery.users import MailUser

    class Submitter:
        def send(self, env_from, rcpts, message):
            pass

    msg = b"From: bob@remote.test\nTo: alice@example.org\nSubject: hi\nMessage-ID: <m1@remote.test>\n\nhello\n"
    ex = DeliveryExecutor(parse_text(""), submitter=Submitter(), state=MemoryStore(), program="test")
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


def test_cached_gauge_reads_in_the_background_at_most_once_per_interval():
    import threading
    now = [100.0]
    reads = []
    release = threading.Event()

    def read():
        reads.append(threading.current_thread().name)
        release.wait(10)
        return [(("waiting",), float(len(reads)))]

    cached = metrics.Cached(read, "test", interval=60, first_wait=0.05, clock=lambda: now[0])
    assert cached() == []                       # the first read is slow: this scrape goes on without it
    release.set()
    got = wait_for(lambda: cached())
    assert got == [(("waiting",), 1.0)] and reads == ["metrics-test"]
    now[0] += 59
    assert cached() == [(("waiting",), 1.0)] and len(reads) == 1      # still fresh: no read
    now[0] += 1
    assert cached() == [(("waiting",), 1.0)]    # stale: answered from the last read, read again behind
    assert wait_for(lambda: cached() if cached() == [(("waiting",), 2.0)] else None)
    assert len(reads) == 2 and len(set(reads)) == 1         # one thread for every read (one SQLite connection)


def test_cached_gauge_without_a_count_shows_no_series(on):
    def broken():
        raise OSError("store down")
    cached = metrics.Cached(broken, "broken", first_wait=5)
    metrics.add_gauge_source(metrics.GREYLIST_STORED, cached)
    try:
        got = on()
        assert not [k for k in got if k[0] == "owlery_greylist_triplets_stored"]
        assert ("owlery_policyd_decisions_total", ()) not in got      # the rest of the scrape is there
        assert "owlery_greylist_triplets_stored" in metrics.scrape()[0].decode()     # HELP and TYPE lines
    finally:
        metrics._GAUGE_SOURCES.clear()


def wait_for(fn, timeout=10.0):
    from tests.harness.procs import wait_until
    return wait_until(fn, timeout, "the background read")


@pytest.mark.parametrize("engine", ["memory", "sqlite"])
def test_state_counts_waiting_and_passed_triplets(engine, tmp_path):
    from owlery.state import Write
    from owlery.state.memory_store import MemoryStore
    from owlery.state.sqlite_store import SQLiteStore
    store = MemoryStore() if engine == "memory" else SQLiteStore(str(tmp_path / "s.sqlite"))
    store.write_many([Write("add", "gl:t:192.0.2.0/24/a@x/b@y", "100.0", 50, 100.0),
                      Write("add", "gl:t:192.0.2.0/24/c@x/b@y", "100.0", 500, 100.0),
                      Write("set", "gl:t:192.0.2.0/24/d@x/b@y", "100.0 400.0", 500, 100.0),
                      Write("incr", "gl:a:192.0.2.1", "3", 500, 100.0),       # another prefix
                      Write("set", "gl:t", "x y", 500, 100.0)])               # not under "gl:t:"
    assert store.count_live("gl:t:", 120.0) == (2, 1)
    assert store.count_live("gl:t:", 200.0) == (1, 1)       # the first has expired (not yet removed)
    assert store.count_live("zz:", 120.0) == (0, 0)
    store.close()


def test_redis_does_not_count():
    from owlery.state.redis_store import RedisStore
    store = RedisStore("redis://127.0.0.1:1/0", prefix="owlery:", timeout=0.1)   # never connects
    assert store.count_live("gl:t:", 0.0) is None
    store.close()


def test_web_routes_name_no_path():
    from web.app import route_name
    token = "AAAAbW9ja3Rva2VuLXNpZ25lZA"
    assert [route_name(p) for p in ("/", "/login", "/list", f"/r/{token}", f"/s/{token}", "/m/abcdefghjkmnpqr",
                                    "/action", "/static/style.css", "/user@example.org/x", "/audit")] == [
        "root", "login", "list", "release_link", "show_link", "message", "action", "static", "other", "audit"]


def test_web_metrics_setting_and_port():
    s = parse_text('web_metrics_listen = "tcp:127.0.0.1:9046"')
    assert str(metrics.endpoint_for(s, "web")) == "tcp:127.0.0.1:9046"
    assert metrics.endpoint_for(parse_text(""), "web") is None
    assert len(set(metrics.DEFAULT_PORTS.values())) == len(metrics.DEFAULT_PORTS)
    assert not set(metrics.DEFAULT_PORTS.values()) & set(range(10040, 10047))     # the daemons' own ports


def test_policyd_backend_waits_are_timed(on):
    from twisted.internet import defer
    from twisted.internet.task import Clock

    from policyd.checks import CheckContext, InlineExecutor
    ctx = CheckContext(parse_text(""), Clock(), InlineExecutor())
    results = []
    ctx.run_blocking(lambda a: a * 2, 21, timeout=1, backend="directory").addCallback(results.append)
    ctx.run_batched("state-flush", lambda items: [(True, len(items))], "x", timeout=1).addCallback(results.append)
    ctx.run_batched("other", lambda items: [(True, 0)], "x", timeout=1)
    failed = ctx.run_blocking(lambda: 1 / 0, timeout=1, backend="directory")
    failed.addErrback(lambda f: results.append(f.type))
    assert results == [42, 1, ZeroDivisionError]
    got = on()
    assert got[("owlery_backend_request_duration_seconds_count", (("backend", "directory"),))] == 2
    assert got[("owlery_backend_request_duration_seconds_count", (("backend", "state"),))] == 1
    assert not [k for k in got if k[0].startswith("owlery_backend_request") and ("backend", "other") in k[1]]
    metrics.disable()
    d = defer.Deferred()
    assert ctx.run_blocking(lambda: d, timeout=0) is d      # metrics off: nothing added to the Deferred
