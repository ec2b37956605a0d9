"""Prometheus metrics: the catalogue of every metric Owlery exports, cheap handles, and /metrics.

Each daemon's `<daemon>_metrics_listen` (unset: off) names a tcp: endpoint where it serves
/metrics in Prometheus' text format, made by the maintained `prometheus_client` library.
Every metric is declared here, once (`counter`, `histogram`, `collected_gauge`), so the
catalogue is one list the Grafana dashboard (contrib/grafana/owlery.json) is checked against.
Products count through the handles: `DECISIONS.labels(state, check, action).inc()`. Until
`enable()` runs (a daemon with metrics on), a handle's `labels()` returns a shared no-op, so
one-shot tools and tests pay a dict lookup and nothing else. Label values are bounded: a
value that is not a short token (an address, a domain with '@', free text) becomes "other",
and past `LABEL_SETS_MAX` distinct label sets per metric every new one is counted as "other".
A counter incremented once per policy decision on the reactor thread is `batched`: a plain int
until the next scrape or sample (every few seconds in each worker), which keeps the cost per
decision near 0.1 us where prometheus_client takes 0.4 us (0.9 us with workers' files).
prometheus_client is imported only by `enable()`: policyd's worker parent sets
PROMETHEUS_MULTIPROC_DIR before it forks (prometheus_client picks multiprocess mode when it
is imported), so one scrape, answered by any worker, sums every worker's files.
A gauge counted in a store (greylist triplets, the quarantine's size) is read through `Cached`:
in a thread of its own, at most once a minute, so a scrape never waits on a store.
Serving: `http_site()` is a Twisted Web site bounded against hostile clients (owlery.bounded_http)
for a daemon's own reactor (owlery.daemon); `serve_in_thread()` runs the same site on a reactor
of its own in one thread where no reactor runs (the libmilter milter).
Talks to: nothing but prometheus_client. Tests: tests/core/test_metrics.py,
tests/e2e/test_metrics_e2e.py, tests/e2e/test_metrics_more_e2e.py, tests/core/test_grafana_dashboard.py,
tests/core/test_http_hostile_s21.py
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence

from owlery.record import Record
from owlery.settings import SettingType, setting

TYPE_CHECKING = False     # not `from typing import ...`: the LDA's start-up pays for every import (~1.7 ms)
if TYPE_CHECKING:
    from typing import Any

def _parse_tcp_endpoint(v: Any) -> str:
    from owlery.endpoints import parse_endpoint
    if not isinstance(v, str) or parse_endpoint(v).kind != "tcp":
        raise ValueError(f"expected a tcp:HOST:PORT endpoint (metrics are served over TCP only), got {v!r}")
    return v


TcpEndpoint = SettingType("tcp endpoint", _parse_tcp_endpoint)

_LISTEN_DOC = ("Where the {what} serves Prometheus metrics over HTTP (GET /metrics), e.g. "
               "\"tcp:127.0.0.1:{port}\". Unset: no metrics. Anyone who reaches it reads counters "
               "(no addresses): keep it on loopback or a monitoring network.")
POLICYD_METRICS_LISTEN = setting("policyd_metrics_listen", TcpEndpoint, None,
                                 _LISTEN_DOC.format(what="policy daemon", port=9040))
MILTER_METRICS_LISTEN = setting("milter_metrics_listen", TcpEndpoint, None,
                                _LISTEN_DOC.format(what="milter", port=9041))
LMTPD_METRICS_LISTEN = setting("lmtpd_metrics_listen", TcpEndpoint, None,
                               _LISTEN_DOC.format(what="LMTP server", port=9042))
SOCKETMAP_METRICS_LISTEN = setting("socketmap_metrics_listen", TcpEndpoint, None,
                                   _LISTEN_DOC.format(what="socketmap table server", port=9044))
MANAGESIEVE_METRICS_LISTEN = setting("managesieve_metrics_listen", TcpEndpoint, None,
                                     _LISTEN_DOC.format(what="ManageSieve server", port=9045))
WEB_METRICS_LISTEN = setting("web_metrics_listen", TcpEndpoint, None,
                             _LISTEN_DOC.format(what="quarantine web application", port=9046))

# The conventional ports, on loopback (the daemon ports are 10040-10046; these sit apart from
# them and from the common exporters' 9100-9200 range). `owlery run` turns on those of the
# daemons it starts (owlery.app.starter); managesieve and web are run on their own.
DEFAULT_PORTS = {"policyd": 9040, "milter": 9041, "lmtpd": 9042, "socketmap": 9044, "managesieve": 9045,
                 "web": 9046}

LABEL_SETS_MAX = 500          # distinct label sets per metric; more count as "other"
_CACHE_MAX = 4096             # raw label tuples remembered per metric (the rest are cleaned each time)
_TOKEN = r"[A-Za-z0-9_.:/+-]{1,64}"      # compiled (and cached by re) on first use
OTHER = "other"

SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BYTES_BUCKETS = (1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0)


def listen_setting(program: str) -> str:
    return f"{program}_metrics_listen"


def endpoint_for(settings: Any, program: str) -> Any:
    """The parsed metrics endpoint of `program`, or None when metrics are off (or it has none).
    ValueError for one that cannot serve HTTP (unix: and systemd: are refused: Prometheus
    scrapes TCP)."""
    from owlery.endpoints import parse_endpoint
    if program not in DEFAULT_PORTS:
        return None
    value = getattr(settings, listen_setting(program))
    if value is None:
        return None
    endpoint = parse_endpoint(value)
    if endpoint.kind != "tcp":
        raise ValueError(f"{listen_setting(program)} = {value!r}: metrics are served over TCP only")
    return endpoint


def clean_label(value: Any) -> str:
    """`value` as a label value when it is a short token, else "other" (no addresses, no text)."""
    text = str(value)
    return text if re.fullmatch(_TOKEN, text) and "@" not in text else OTHER


class Spec(Record, frozen=True):
    """One declared metric: its Prometheus name, kind, help text, label names and buckets."""

    name: str
    kind: str                               # counter | histogram | gauge (collected at scrape)
    doc: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None

    def sample_names(self) -> tuple[str, ...]:
        """The series names a scrape shows for it (what a PromQL expression may name)."""
        if self.kind == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


class _Noop:
    """What a handle gives while metrics are off: every call does nothing."""

    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


NOOP = _Noop()


class _Batched:
    """A counter child for a hot path on one thread (policyd's reactor): `inc` adds to a plain
    int, `flush` (at each scrape and every few seconds, on that same thread) hands the sum to
    prometheus_client, whose own inc takes a lock and, with workers, writes a shared file."""

    __slots__ = ("child", "count")

    def __init__(self, child: Any):
        self.child = child
        self.count = 0

    def inc(self, amount: float = 1) -> None:
        self.count += amount

    def flush(self) -> None:
        count, self.count = self.count, 0
        if count:
            self.child.inc(count)


_BATCHED: list[_Batched] = []


class Family:
    """A handle on one declared metric; `labels(*values)` gives the child to count with."""

    def __init__(self, spec: Spec, batched: bool = False):
        self.spec = spec
        self.batched = batched
        self._metric: Any = None
        self._children: dict[tuple, Any] = {}
        self._sets: set[tuple[str, ...]] = set()
        self._lock = threading.Lock()

    def labels(self, *values: Any) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._child(values)
        return child

    def inc(self, amount: float = 1) -> None:
        self.labels().inc(amount)

    def observe(self, amount: float) -> None:
        self.labels().observe(amount)

    def _child(self, values: tuple) -> Any:
        if len(values) != len(self.spec.labels):
            raise ValueError(f"{self.spec.name} takes labels {self.spec.labels}, got {values!r}")
        with self._lock:
            if self._metric is None:
                child = NOOP
            else:
                clean = tuple(clean_label(v) for v in values)
                if clean not in self._sets:
                    if len(self._sets) >= LABEL_SETS_MAX:
                        clean = (OTHER,) * len(clean)
                    self._sets.add(clean)
                child = self._metric.labels(*clean) if clean else self._metric
                if self.batched:
                    child = _Batched(child)
                    _BATCHED.append(child)
            if len(self._children) < _CACHE_MAX:
                self._children[values] = child
            return child

    def _bind(self, metric: Any) -> None:
        with self._lock:
            self._metric = metric
            self._children = {}
            self._sets = set()


CATALOGUE: dict[str, Spec] = {}
_FAMILIES: dict[str, Family] = {}
_GAUGE_SOURCES: dict[str, list[Callable[[], Iterable[tuple[tuple[str, ...], float]]]]] = {}
_SAMPLERS: list[Callable[[], None]] = []


def _declare(spec: Spec, batched: bool = False) -> Family:
    if not re.fullmatch(r"owlery_[a-z0-9_]+", spec.name):
        raise ValueError(f"metric {spec.name!r}: names start with owlery_ and are snake case")
    if spec.kind == "counter" and not spec.name.endswith("_total"):
        raise ValueError(f"counter {spec.name!r} must end in _total")
    if spec.name in CATALOGUE:
        raise ValueError(f"metric {spec.name} declared twice")
    CATALOGUE[spec.name] = spec
    family = _FAMILIES[spec.name] = Family(spec, batched)
    return family


def counter(name: str, doc: str, labels: Sequence[str] = (), *, batched: bool = False) -> Family:
    """`batched`: counted from the reactor thread only, flushed before each scrape (`_Batched`)."""
    return _declare(Spec(name, "counter", doc, tuple(labels)), batched)


def histogram(name: str, doc: str, labels: Sequence[str] = (), buckets: Sequence[float] = SECONDS_BUCKETS) -> Family:
    return _declare(Spec(name, "histogram", doc, tuple(labels), tuple(buckets)))


def collected_gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Spec:
    """A gauge whose value is read at scrape time from the sources `add_gauge_source` gives."""
    spec = Spec(name, "gauge", doc, tuple(labels))
    _declare(spec)
    return spec


def add_gauge_source(spec: Spec, source: Callable[[], Iterable[tuple[tuple[str, ...], float]]]) -> None:
    """At each scrape, `source()` gives (label values, value) pairs for `spec` (it must be cheap;
    an exception drops that gauge from this scrape)."""
    _GAUGE_SOURCES.setdefault(spec.name, []).append(source)


def add_sampler(sampler: Callable[[], None]) -> None:
    """Called before each scrape (and every few seconds in policyd's workers): copies counts
    kept elsewhere (a cache's hit counter) into the metrics."""
    _SAMPLERS.append(sampler)


GAUGE_READ_INTERVAL = 60.0     # seconds a count read from a store serves scrapes before it is read again
GAUGE_FIRST_WAIT = 0.2         # how long the first scrape waits for the first count


class Cached:
    """A gauge source whose reading costs (a COUNT over a table): `read()` runs in a thread of
    its own, at most once per `interval` seconds and only when a scrape asks, and the scrape
    takes the last result at once. So a scrape on a daemon's reactor never waits on a store
    (only the very first waits, at most `first_wait`), and a Prometheus scraping every few
    seconds costs one count a minute. One long-lived thread, so an engine that keeps one
    connection per thread (SQLite) keeps one for it. `read()` gives (label values, value)
    pairs; when it raises (logged), the gauge has no series until a later read succeeds."""

    def __init__(self, read: Callable[[], Iterable[tuple[tuple[str, ...], float]]], name: str,
                 interval: float = GAUGE_READ_INTERVAL, first_wait: float = GAUGE_FIRST_WAIT,
                 clock: Callable[[], float] | None = None):
        import time
        self.read, self.name, self.interval, self.first_wait = read, name, interval, first_wait
        self.clock = clock or time.monotonic
        self._value: list[tuple[tuple[str, ...], float]] | None = None
        self._read_at: float | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._done = threading.Event()
        self._busy = False
        self._thread: threading.Thread | None = None

    def __call__(self) -> list[tuple[tuple[str, ...], float]]:
        with self._lock:
            stale = self._read_at is None or self.clock() - self._read_at >= self.interval
            if stale and not self._busy:
                self._busy = True
                self._done.clear()
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name=f"metrics-{self.name}", daemon=True)
                    self._thread.start()
                self._wake.set()
            first = self._read_at is None
        if first:
            self._done.wait(self.first_wait)
        return self._value or []     # none yet, or the last read failed: no series this scrape

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                value: list | None = list(self.read())
            except Exception as e:   # noqa: BLE001 - a store that cannot count drops its gauge, not the daemon
                import logging
                logging.getLogger("owlery.metrics").warning("metrics: cannot read %s: %s", self.name, e)
                value = None
            with self._lock:
                self._value, self._read_at, self._busy = value, self.clock(), False
            self._done.set()


def sample() -> None:
    for batched in list(_BATCHED):
        batched.flush()
    for sampler in list(_SAMPLERS):
        try:
            sampler()
        except Exception:   # noqa: BLE001 - a sampler's bug must not break the scrape
            import logging
            logging.getLogger("owlery.metrics").exception("metrics: sampler failed")


# ---------------------------------------------------------------------------
# The catalogue. Labels are bounded: names from code or settings, never addresses.
# ---------------------------------------------------------------------------

POLICYD_DECISIONS = counter(
    "owlery_policyd_decisions_total", "Policy decisions, by protocol_state, deciding check (none: all "
    "passed) and action (dunno, reject, defer, defer-if-permit, prepend...).",
    ("protocol_state", "check", "action"), batched=True)
POLICYD_CHECK_ERRORS = counter(
    "owlery_policyd_check_errors_total", "Policy checks that could not decide (answered DEFER_IF_PERMIT), "
    "by check and error (temporary, timeout).", ("check", "error"))
GREYLIST_TRIPLETS = counter(
    "owlery_greylist_triplets_total", "Greylist outcomes by result: new and early-retry were deferred; "
    "passed, known and auto-whitelisted passed; the rest were skipped before the store.", ("result",),
    batched=True)
DIRECTORY_CACHE_LOOKUPS = counter(
    "owlery_directory_cache_lookups_total", "Directory lookups by cache result (hit, miss).", ("result",))
MILTER_MESSAGES = counter(
    "owlery_milter_messages_total", "Messages the milter decided at end-of-message, by action "
    "(accept, reject, tempfail, discard, ...).", ("action",))
MILTER_SYMBOLS = counter(
    "owlery_milter_symbols_total", "Symbols the milter stages reported, by stage and symbol.", ("stage", "symbol"))
MILTER_MESSAGE_SIZE = histogram(
    "owlery_milter_message_size_bytes", "Size of the messages the milter saw (headers and body).",
    (), BYTES_BUCKETS)
MILTER_STAGE_DURATION = histogram(
    "owlery_milter_stage_duration_seconds", "Time each milter stage took per message.", ("stage",))
MILTER_STAGE_ERRORS = counter(
    "owlery_milter_stage_errors_total", "Milter stages whose backend failed (TemporaryFailure), by stage.",
    ("stage",))
QUARANTINE_MESSAGES = collected_gauge(
    "owlery_quarantine_messages", "Messages held in the quarantine store (counted in the background, at most once a minute).")
QUARANTINE_SIZE = collected_gauge(
    "owlery_quarantine_size_bytes", "Bytes held in the quarantine store (counted in the background, at most once a minute).")
DELIVERIES = counter(
    "owlery_deliveries_total", "Deliveries by outcome, one per mailbox recipient (delivered, tempfail, "
    "bounce, unknown).", ("outcome",))
DELIVERY_RESULTS = counter(
    "owlery_delivery_results_total", "What deliveries did, by result (stored: INBOX, folder, "
    "redirected, vacation, rejected, tempfail, discarded); one delivery may count several.", ("result",))
DELIVERY_DURATION = histogram(
    "owlery_delivery_duration_seconds", "Time one delivery took (Sieve, Maildir writes, redirects).")
BACKEND_DURATION = histogram(
    "owlery_backend_request_duration_seconds", "Time spent waiting for a backend (directory, state, "
    "clamd, spamd, dns, quarantine), by backend.", ("backend",))
BACKEND_ERRORS = counter(
    "owlery_backend_errors_total", "Backend failures (unavailable or timed out), by backend.", ("backend",))
GREYLIST_STORED = collected_gauge(
    "owlery_greylist_triplets_stored", "Greylist triplets in the state store, by state (waiting: seen once, "
    "deferred; passed: retried in time, accepted until greylist_max_age), read in the background at most "
    "once a minute. SQLite and memory stores only: on Redis a count would walk every key.", ("state",))
SOCKETMAP_CONNECTIONS = counter(
    "owlery_socketmap_connections_total", "Connections Postfix opened to the socketmap table server.")
SOCKETMAP_LOOKUPS = counter(
    "owlery_socketmap_lookups_total", "Socketmap lookups by map (the table names; invalid: a request that "
    "was not one, unknown: a map Owlery does not serve) and status (OK, NOTFOUND, TEMP, TIMEOUT, PERM).",
    ("map", "status"))
SOCKETMAP_LOOKUP_DURATION = histogram(
    "owlery_socketmap_lookup_duration_seconds", "Time from a lookup's turn to its answer, by source (cache: "
    "answered on the reactor from the directory cache; directory: a thread asked the backend).", ("source",))
MANAGESIEVE_LOGINS = counter(
    "owlery_managesieve_logins_total", "ManageSieve logins by result: ok, failed (wrong password), "
    "rate-limited (the failure that reached managesieve_login_failures_max and closed the connection), "
    "unavailable (directory or script storage down), refused (mechanism, or plaintext without TLS).",
    ("result",))
MANAGESIEVE_COMMANDS = counter(
    "owlery_managesieve_commands_total", "ManageSieve commands by name (RFC 5804's; unknown: any other "
    "word, bad: a line that is no command).", ("command",))
MANAGESIEVE_SCRIPTS = counter(
    "owlery_managesieve_script_changes_total", "Sieve scripts changed over ManageSieve, by action (put, "
    "activate, deactivate, delete, rename).", ("action",))
WEB_REQUESTS = counter(
    "owlery_web_requests_total", "Requests to the quarantine web application by route (a fixed set of names: "
    "login, list, message, action, release_link, ...; never the path, which may carry a token) and HTTP "
    "status.", ("route", "status"))
WEB_LOGINS = counter(
    "owlery_web_logins_total", "Logins to the web application by result (ok, failed, rate-limited).",
    ("result",))
WEB_QUARANTINE_ACTIONS = counter(
    "owlery_web_quarantine_actions_total", "Messages released or deleted through the web application, by "
    "action (release, delete), via (form: logged in; link: a digest's link) and result (done, failed: "
    "Postfix or the store did not take it, refused: not the user's, or gone).", ("action", "via", "result"))

# Which backend a policy check or a milter stage waits for, to file its errors and latency.
CHECK_BACKENDS = {"recipient": "directory", "quota": "directory", "lists": "directory",
                  "greylist": "state", "ratelimit": "state", "spf": "dns"}
STAGE_BACKENDS = {"antivirus": "clamd", "spam": "spamd", "quarantine": "quarantine", "spf": "dns",
                  "dkim_verify": "dns", "arc_verify": "dns", "dmarc": "dns"}


# ---------------------------------------------------------------------------
# Turning metrics on, and reading them
# ---------------------------------------------------------------------------

_state: dict[str, Any] = {"registry": None, "multiprocess": False}
_enable_lock = threading.Lock()


def enabled() -> bool:
    return _state["registry"] is not None


def enable() -> Any:
    """Create every metric (multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set) and return
    the registry a scrape reads. Calling it again starts again from zero (tests)."""
    with _enable_lock:
        multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        import prometheus_client as pc
        from prometheus_client import values

        if multiprocess and not getattr(values.ValueClass, "_multiprocess", False):
            raise RuntimeError("PROMETHEUS_MULTIPROC_DIR was set after prometheus_client was imported")
        pc.disable_created_metrics()        # _created series double the output and nobody graphs them
        _BATCHED.clear()
        own = pc.CollectorRegistry(auto_describe=True)
        for name, family in _FAMILIES.items():
            spec = family.spec
            if spec.kind == "counter":
                family._bind(pc.Counter(name.removesuffix("_total"), spec.doc, spec.labels, registry=own))
            elif spec.kind == "histogram":
                family._bind(pc.Histogram(name, spec.doc, spec.labels, registry=own, buckets=spec.buckets))
        if multiprocess:
            from prometheus_client import multiprocess as mp
            serving = pc.CollectorRegistry()
            mp.MultiProcessCollector(serving)
        else:
            serving = own
        serving.register(_GaugeCollector())
        _state.update(registry=serving, multiprocess=multiprocess)
        return serving


def disable() -> None:
    """Back to no-op handles (tests)."""
    with _enable_lock:
        for family in _FAMILIES.values():
            family._bind(None)
        _BATCHED.clear()
        _state.update(registry=None, multiprocess=False)


class _GaugeCollector:
    """The collected gauges, read from their sources at each scrape (in the serving process)."""

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily
        for name, spec in CATALOGUE.items():
            if spec.kind != "gauge":
                continue
            family = GaugeMetricFamily(name, spec.doc, labels=spec.labels)
            try:
                for source in _GAUGE_SOURCES.get(name, ()):
                    for values, value in source():
                        family.add_metric([clean_label(v) for v in values], value)
            except Exception:   # noqa: BLE001 - an unreadable store drops its gauge, not the scrape
                import logging
                logging.getLogger("owlery.metrics").warning("metrics: cannot read %s", name, exc_info=True)
                continue
            yield family

    def describe(self) -> Iterable[Any]:
        return []


def scrape(accept: str | None = None) -> tuple[bytes, str]:
    """(body, content type) of one scrape; samplers run first."""
    registry = _state["registry"]
    if registry is None:
        raise RuntimeError("metrics are not enabled")
    sample()
    from prometheus_client.exposition import choose_encoder
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def multiprocess_dir_prepare(program: str, uid: int = -1, gid: int = -1) -> str:
    """A private directory for the workers' metric files; sets PROMETHEUS_MULTIPROC_DIR (call
    before forking, before anything imports prometheus_client). The caller removes it at exit."""
    import tempfile
    base = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or None
    path = tempfile.mkdtemp(prefix=f"owlery-{program}-metrics-", dir=base)
    if uid != -1 or gid != -1:
        os.chown(path, uid, gid)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


# ---------------------------------------------------------------------------
# Serving /metrics
# ---------------------------------------------------------------------------

_INDEX = b"<html><body><a href=\"/metrics\">/metrics</a></body></html>\n"


# The bounds of a /metrics connection (owlery.bounded_http): fixed, since a scrape is one short
# GET. Prometheus keeps one connection per target and sends its request at once; the caps hold
# per process (each of policyd's workers counts its own).
HTTP_REQUEST_TIMEOUT = 5.0     # seconds to send one whole request (the scrape's answer is not timed)
HTTP_CONNECTIONS_MAX = 32
HTTP_CONNECTIONS_PER_CLIENT = 8


def http_site(reactor: Any = None) -> Any:
    """A Twisted Web site answering GET /metrics (on a daemon's own reactor, or `reactor`), on
    owlery.bounded_http: no content read, a whole request within HTTP_REQUEST_TIMEOUT, connections
    within HTTP_CONNECTIONS_MAX and HTTP_CONNECTIONS_PER_CLIENT per client, no access log."""
    from twisted.web import resource

    from owlery.bounded_http import BoundedSite, HttpLimits

    class MetricsPage(resource.Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            accept = request.getHeader(b"accept")
            body, content_type = scrape(accept.decode("latin-1") if accept else None)
            request.setHeader(b"content-type", content_type.encode("ascii"))
            return body

    class Index(resource.Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            return _INDEX

    root = resource.Resource()
    root.putChild(b"metrics", MetricsPage())
    root.putChild(b"", Index())
    limits = HttpLimits(body_max=0, request_timeout=HTTP_REQUEST_TIMEOUT, connections_max=HTTP_CONNECTIONS_MAX,
                        connections_per_client_max=HTTP_CONNECTIONS_PER_CLIENT)
    return BoundedSite(root, limits, "metrics", reactor=reactor)


def serve_in_thread(sock: Any) -> Callable[[], None]:
    """Serve /metrics on the bound, listening socket `sock` from a daemon thread (for the
    milter, whose main loop is libmilter's); returns a function that stops it. The thread runs a
    reactor of its own (never installed as Twisted's global one) with `http_site()`, so the
    milter's /metrics has the bounds of every other: one thread, whatever the clients do."""
    from twisted.internet.epollreactor import EPollReactor

    from owlery.adopted_port import adopt_stream_port

    reactor = EPollReactor()
    sock.setblocking(False)
    adopt_stream_port(reactor, sock.fileno(), sock.family, http_site(reactor))
    thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False}, name="metrics",
                              daemon=True)
    thread.start()

    def stop() -> None:
        reactor.callFromThread(reactor.stop)
        thread.join(5)
    return stop
