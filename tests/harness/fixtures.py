"""pytest fixtures wrapping the harness servers (loaded by tests/conftest.py as a plugin).

Session-scoped servers are started on first use only; a server that cannot start makes the
test fail (never skip) with the server's log tail. Function-scoped fixtures give each test
its own DNS records, Redis key prefix, PostgreSQL schema or Postfix instance. The classes
behind them live in the sibling modules and are usable without pytest (bench/).
Tested by tests/harness_selftest.
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from .procs import HarnessError, make_dir

KEEP_ENV = "OWLERY_HARNESS_KEEP"   # =1: keep the harness temp dir for post-mortem


def _fail(what, exc):
    pytest.fail("%s could not be started: %s" % (what, exc), pytrace=False)


class _Counter:
    def __init__(self):
        self.n = 0

    def next(self, name):
        self.n += 1
        return "%s-%d" % (name, self.n)


@pytest.fixture(scope="session")
def harness_root():
    """A session temp dir readable by the daemons' users (pytest's tmp dirs are 0700)."""
    base = tempfile.mkdtemp(prefix="owlery-harness-")
    os.chmod(base, 0o755)
    yield Path(base)
    if os.environ.get(KEEP_ENV) != "1":
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def harness_dirs(harness_root):
    """Callable name -> fresh 0755 subdirectory of harness_root (unique per call)."""
    counter = _Counter()
    return lambda name: make_dir(harness_root / counter.next(name))


@contextlib.contextmanager
def _servers(new, what):
    """Yield make(*args, start=True, **kwargs) -> new(*args, **kwargs), started unless start
    is false (one that cannot start fails the test); every server made is stopped when the
    block ends."""
    servers = []

    def make(*args, start=True, **kwargs):
        server = new(*args, **kwargs)
        servers.append(server)
        if start:
            try:
                server.start()
            except HarnessError as exc:
                _fail(what, exc)
        return server
    yield make
    for server in servers:
        server.stop()


def _in_dir(harness_dirs, cls, name):
    """new(*args, **kwargs) -> cls(<a fresh harness dir `name`-N>, *args, **kwargs)."""
    return lambda *args, **kwargs: cls(harness_dirs(name), *args, **kwargs)


# ---- Postfix ------------------------------------------------------------------------------
def _new_postfix(harness_dirs):
    from .postfix import PostfixInstance

    def new(main_cf=None, master_cf_extra="", transports=None, name="postfix"):
        return PostfixInstance(harness_dirs(name), main_cf=main_cf, master_cf_extra=master_cf_extra,
                               transports=transports)
    return new


@pytest.fixture(scope="session")
def postfix_factory(harness_dirs):
    """make(main_cf=None, master_cf_extra="", transports=None, name="postfix", start=True)
    -> started PostfixInstance, stopped at session end (use from module/session fixtures)."""
    with _servers(_new_postfix(harness_dirs), "Postfix") as make:
        yield make


@pytest.fixture
def make_postfix(harness_dirs):
    """Like postfix_factory, but the instances are stopped when the test ends."""
    with _servers(_new_postfix(harness_dirs), "Postfix") as make:
        yield make


@pytest.fixture
def postfix(make_postfix):
    """A fresh default PostfixInstance for this test (everything relayed to its sink)."""
    return make_postfix()


# ---- DNS ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def dns_stub():
    """The session's DNSStub (started). Tests that add records should use dns_zone."""
    from .dns import DNSStub
    try:
        stub = DNSStub().start()
    except HarnessError as exc:
        _fail("DNS stub", exc)
    yield stub
    stub.stop()


@pytest.fixture
def dns_zone(dns_stub):
    """dns_stub with its records/failures restored after the test (add freely)."""
    snap = dns_stub.snapshot()
    yield dns_stub
    dns_stub.restore(snap)


@pytest.fixture
def dns_resolver(dns_zone):
    """A dnspython Resolver asking the stub (does not touch the global default resolver)."""
    return dns_zone.resolver()


@pytest.fixture
def dns_default_resolver(dns_zone):
    """Install a stub resolver as dns.resolver.default_resolver for this test only
    (pyspf and dkimpy use it); yields the Resolver, restores the old one afterwards."""
    with dns_zone.as_default_resolver() as resolver:
        yield resolver


# ---- Redis / PostgreSQL ---------------------------------------------------------------------
@contextlib.contextmanager
def _machine_or_private(find, workdir, what):
    """Yield the address find(workdir) gives (the machine's server, or a private one it
    started: stopped when the block ends); a failure fails the test."""
    try:
        address, server = find(workdir)
    except HarnessError as exc:
        _fail(what, exc)
    yield address
    if server is not None:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(harness_dirs):
    """URL of a Redis: the machine's 127.0.0.1:6379 when it answers, else a private one."""
    from .stores import machine_or_private_redis
    with _machine_or_private(machine_or_private_redis, harness_dirs("redis"), "Redis") as url:
        yield url


@pytest.fixture
def redis_prefix(redis_url):
    """A key prefix unique to this test ("owlery-test:<hex>:"); its keys are deleted after."""
    from .stores import drop_redis_prefix, unique_name
    prefix = unique_name("owlery-test:") + ":"
    yield prefix
    drop_redis_prefix(redis_url, prefix)


@pytest.fixture(scope="session")
def pg_dsn(harness_dirs):
    """libpq DSN of a PostgreSQL: the machine's (127.0.0.1:5432, user postgres, db test) when
    it answers, else a private cluster started for the session."""
    from .stores import machine_or_private_pg
    with _machine_or_private(machine_or_private_pg, harness_dirs("pg"), "PostgreSQL") as dsn:
        yield dsn


@pytest.fixture
def pg_schema(pg_dsn):
    """A schema created for this test (name "owlery_test_<hex>"), dropped CASCADE after.
    Connect with psycopg.connect(pg_dsn, options="-c search_path=" + pg_schema)."""
    import psycopg
    from .stores import unique_name
    name = unique_name("owlery_test_")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute('create schema "%s"' % name)
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute('drop schema if exists "%s" cascade' % name)


# ---- slapd / clamd / spamd ---------------------------------------------------------------
@pytest.fixture(scope="session")
def slapd(harness_dirs):
    """Session Slapd with the seed directory (see tests/harness/slapd.py). Do not modify or
    stop it; use make_slapd for that."""
    from .slapd import Slapd
    with _servers(_in_dir(harness_dirs, Slapd, "slapd"), "slapd") as make:
        yield make()


@pytest.fixture
def make_slapd(harness_dirs):
    """make(ldif_text=None, base_dn=..., admin_password=...) -> started Slapd owned by this
    test (free to modify, stop and restart); stopped when the test ends."""
    from .slapd import Slapd
    with _servers(_in_dir(harness_dirs, Slapd, "slapd"), "slapd") as make:
        yield make


@pytest.fixture(scope="session")
def clamd(harness_dirs):
    """Session Clamd (EICAR signatures; .port, .socket_path). Use make_clamd to stop it."""
    from .clamd import Clamd
    with _servers(_in_dir(harness_dirs, Clamd, "clamd"), "clamd") as make:
        yield make()


@pytest.fixture
def make_clamd(harness_dirs):
    """make(signatures=None) -> started Clamd owned by this test; stopped when it ends."""
    from .clamd import Clamd
    with _servers(_in_dir(harness_dirs, Clamd, "clamd"), "clamd") as make:
        yield make


@pytest.fixture(scope="session")
def spamd(harness_dirs):
    """Session Spamd (started on first use, ~1-3 s; .port). Do not stop it."""
    from .spamd import Spamd
    with _servers(_in_dir(harness_dirs, Spamd, "spamd"), "spamd") as make:
        yield make()
