"""More daemons' /metrics scraped after real traffic and parsed with Prometheus' own parser: the
counters moved by exactly the traffic sent, and no label value carries an address, a user name,
a message id or a link's token (tests/e2e/test_metrics_e2e.py does policyd, milter and lmtpd).

- socketmap: Postfix's own `postmap` asks two tables over one connection each, a raw client asks
  a map nobody serves and sends a line that is no request: lookups by map and status,
  connections, lookup times by source;
- managesieve: a wrong password, then the one that reaches the limit (rate-limited), a refused
  mechanism, a login, PUTSCRIPT/SETACTIVE/RENAMESCRIPT/DELETESCRIPT and an unknown command;
- web: logins (ok, failed, rate-limited), pages by route and status, a release and a delete
  through the forms and a release through a digest's link, carried out for real (the released
  copies reach the user's Maildir through `owlery lmtpd`);
- policyd: the greylist triplets waiting and passed, counted in the SQLite state store, and
  directory lookups timed as backend latency, one per cache miss;
- milter: the quarantine's size read from the PostgreSQL store.
"""

from __future__ import annotations

import http.client
import re
import sqlite3
import time
import urllib.parse
from pathlib import Path

from owlery.directory.auth import sha_crypt
from owlery.quarantine import QuarantineRecord, RecipientState, new_id
from owlery.quarantine.directory import DirectoryStore
from owlery.quarantine.postgres import PostgresStore
from owlery.quarantine.tokenkey import read_key
from owlery.quarantine.tokens import sign
from policyd.cli import query
from socketmap.protocol import netstring
from tests.e2e.test_metrics_e2e import assert_bounded, greylist_request, moved, scrape
from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.owlery_milter import MilterProcess
from tests.harness.procs import free_ports, wait_until
from tests.managesieve.helpers import Client as SieveClient
from tests.managesieve.helpers import ManageSieveDaemon
from tests.socketmap.daemon import Client as MapClient
from tests.socketmap.daemon import SocketmapDaemon, postfix_config_dir, postmap
from tests.web.server import WebServer, token_key_file

PASSWORD = "correct horse"


def scrape_text(port: int) -> str:
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def assert_secret_free(port: int, *secrets: str) -> None:
    """None of `secrets` (addresses, user names, ids, tokens) appears anywhere in a scrape."""
    text = scrape_text(port)
    assert not [s for s in secrets if s in text], [s for s in secrets if s in text]


def passwd_file(path: Path, users) -> Path:
    path.write_text("".join(f"{u}:{{SHA512-CRYPT}}{sha_crypt(PASSWORD.encode(), '$6$owlerytest$')}\n" for u in users))
    return path


# -- socketmap -------------------------------------------------------------------------------

def test_socketmap_counts_lookups_by_map_and_status(tmp_path):
    metrics_port, = free_ports(1)
    (tmp_path / "mailboxes").write_text("alice@example.org\nbob@example.org\n")
    (tmp_path / "aliases").write_text("")
    config = (f'files_mailboxes = "{tmp_path}/mailboxes"\nfiles_aliases = "{tmp_path}/aliases"\n'
              f'socketmap_metrics_listen = "tcp:127.0.0.1:{metrics_port}"\n')
    etc = postfix_config_dir(tmp_path)
    with SocketmapDaemon(tmp_path / "d", config) as daemon:
        before = scrape(metrics_port)
        found, err = postmap(daemon.port, "virtual_mailbox_maps",
                             ["alice@example.org", "bob@example.org", "nobody@example.org", "alice@example.org"], etc)
        assert set(found) == {"alice@example.org", "bob@example.org"}, err + daemon.log()
        found, err = postmap(daemon.port, "virtual_mailbox_domains", ["example.org", "other.test"], etc)
        assert set(found) == {"example.org"}, err
        raw = MapClient(daemon.port)
        assert raw.ask("alice_secret_map", "alice@example.org").status == "PERM"
        raw.send(netstring(b"no-space-here"))         # not NAME SPACE KEY: PERM, the connection stays
        assert raw.read(1)[0].status == "PERM"
        assert raw.ask("virtual_mailbox_maps", "bob@example.org").status == "OK"
        raw.close()
        after = wait_until(lambda: (lambda s: s if moved(before, s, "owlery_socketmap_connections_total")
                                    else None)(scrape(metrics_port)), 10, "the connections counted")
        assert_secret_free(metrics_port, "alice", "example.org", "no-space-here")
    assert moved(before, after, "owlery_socketmap_lookups_total") == {
        (("map", "virtual_mailbox_maps"), ("status", "OK")): 4,
        (("map", "virtual_mailbox_maps"), ("status", "NOTFOUND")): 1,
        (("map", "virtual_mailbox_domains"), ("status", "OK")): 1,
        (("map", "virtual_mailbox_domains"), ("status", "NOTFOUND")): 1,
        (("map", "unknown"), ("status", "PERM")): 1,
        (("map", "invalid"), ("status", "PERM")): 1}
    assert moved(before, after, "owlery_socketmap_connections_total") == {(): 3}
    # Every answered lookup timed once: the first of each key asked the directory in a thread,
    # repeats came from the cache on the reactor (the unknown map is answered there too).
    timed = moved(before, after, "owlery_socketmap_lookup_duration_seconds_count")
    assert sum(timed.values()) == 8 and set(timed) == {(("source", "cache"),), (("source", "directory"),)}, timed
    assert timed[(("source", "cache"),)] >= 3, timed
    assert_bounded(after)


# -- managesieve -----------------------------------------------------------------------------

SCRIPT = 'require "fileinto";\r\nif header :contains "Subject" "x" { fileinto "X"; }\r\n'


def test_managesieve_counts_logins_commands_and_script_changes(tmp_path):
    metrics_port, = free_ports(1)
    (tmp_path / "mailboxes").write_text("alice@example.org\n")
    passwd_file(tmp_path / "passwd", ["alice@example.org"])
    config = (f'daemon_allow_root = true\nfiles_passwords = "{tmp_path}/passwd"\n'
              f'files_mailboxes = "{tmp_path}/mailboxes"\n'
              f'maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"\n'
              f'delivery_sieve_script_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/sieve/active.sieve"\n'
              'managesieve_login_failure_delay = "50ms"\nmanagesieve_login_failures_max = 2\n'
              f'managesieve_metrics_listen = "tcp:127.0.0.1:{metrics_port}"\n')
    daemon = ManageSieveDaemon(tmp_path, config).start()
    try:
        before = scrape(metrics_port)
        c = SieveClient("127.0.0.1", daemon.port)
        assert c.command("CAPABILITY").ok
        assert c.login("alice@example.org", "wrong").kind == "NO"
        assert c.login("alice@example.org", "wrong again").kind == "BYE"      # the second of 2 allowed
        c.sock.close()
        c = SieveClient("127.0.0.1", daemon.port)
        assert c.command('AUTHENTICATE "CRAM-MD5"').kind == "NO"
        assert c.login("alice@example.org", PASSWORD).ok, daemon.log()
        assert c.putscript("vacation_7q", SCRIPT).ok
        assert c.command('SETACTIVE "vacation_7q"').ok
        assert c.command('SETACTIVE ""').ok
        assert c.command('RENAMESCRIPT "vacation_7q" "holiday_8z"').ok
        assert c.command('DELETESCRIPT "holiday_8z"').ok
        assert c.command("ALICE@EXAMPLE.ORG").kind == "NO"                    # an unknown command word
        assert c.command('HAVESPACE "third" 100').ok
        c.close()                                                              # LOGOUT
        after = wait_until(lambda: (lambda s: s if moved(before, s, "owlery_managesieve_commands_total").get(
            (("command", "LOGOUT"),)) else None)(scrape(metrics_port)), 10, "LOGOUT counted")
        assert_secret_free(metrics_port, "alice", "example.org", "vacation_7q", "holiday_8z")
    finally:
        daemon.stop()
    assert moved(before, after, "owlery_managesieve_logins_total") == {
        (("result", "failed"),): 1, (("result", "rate-limited"),): 1, (("result", "refused"),): 1,
        (("result", "ok"),): 1}
    assert moved(before, after, "owlery_managesieve_commands_total") == {
        (("command", "CAPABILITY"),): 1, (("command", "AUTHENTICATE"),): 4, (("command", "PUTSCRIPT"),): 1,
        (("command", "SETACTIVE"),): 2, (("command", "RENAMESCRIPT"),): 1, (("command", "DELETESCRIPT"),): 1,
        (("command", "HAVESPACE"),): 1, (("command", "unknown"),): 1, (("command", "LOGOUT"),): 1}
    assert moved(before, after, "owlery_managesieve_script_changes_total") == {
        (("action", "put"),): 1, (("action", "activate"),): 1, (("action", "deactivate"),): 1,
        (("action", "rename"),): 1, (("action", "delete"),): 1}
    assert_bounded(after)


# -- web -------------------------------------------------------------------------------------

class Browser:
    """One visitor: cookies kept by name, redirects not followed (each request counts once)."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}
        self.page = ""

    def go(self, method: str, path: str, form: dict | None = None) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form, doseq=True)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        self.page = response.read().decode(errors="replace")
        for cookie in response.headers.get_all("Set-Cookie") or ():
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if value:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        conn.close()
        return response.status

    @property
    def csrf(self) -> str:
        return re.search(r'name="csrf" value="([^"]+)"', self.page).group(1)

    def login(self, user: str, password: str) -> int:
        if "csrf" not in self.page:
            assert self.go("GET", "/login") == 200
        return self.go("POST", "/login", {"username": user, "password": password, "csrf": self.csrf})


MESSAGE = b"From: bob@remote.test\r\nTo: alice@example.org\r\nSubject: cheap watches\r\n\r\nhello\r\n"


def test_web_counts_routes_logins_and_releases(tmp_path):
    metrics_port, = free_ports(1)
    (tmp_path / "mailboxes").write_text("alice@example.org\nadmin@example.org\n")
    passwd = passwd_file(tmp_path / "passwd", ["alice@example.org", "admin@example.org"])
    lmtpd = OwleryDaemons(tmp_path / "lmtpd", which=("lmtpd",), queue_dir=tmp_path / "spool", extra_config=(
        f'maildir_path_template = "{tmp_path}/mail/{{domain}}/{{localpart}}/Maildir"\n'
        f'files_mailboxes = "{tmp_path}/mailboxes"\nstate_sqlite_path = "{tmp_path}/state.sqlite"\n')).start()
    qdir = tmp_path / "quarantine"
    store = DirectoryStore(str(qdir))
    ids = [new_id() for _ in range(3)]
    for mail_id in ids:
        store.put(QuarantineRecord(mail_id, "s" + mail_id, time.time(), "spam", "score 12", "bob@remote.test",
                                   (RecipientState("alice@example.org"),), len(MESSAGE), subject="cheap watches"),
                  MESSAGE)
    store.close()
    key_file = token_key_file(tmp_path)
    web = WebServer(tmp_path, f'quarantine_directory = "{qdir}"\nquarantine_token_key_file = "{key_file}"\n'
                              f'quarantine_release_smtp_endpoint = "unix:{lmtpd.sockets["lmtpd"]}"\n'
                              f'files_passwords = "{passwd}"\nweb_admins = ["admin@example.org"]\n'
                              'web_login_failures_per_address = 1\n'
                              f'web_metrics_listen = "tcp:127.0.0.1:{metrics_port}"\n')
    forged = "A" * 60
    link = sign(read_key(str(key_file)), "release", ids[2], "alice@example.org", int(time.time()) + 3600)
    try:
        web.start()
        before = scrape(metrics_port)
        carol = Browser(web.port)                      # web_login_failures_per_address = 1
        assert carol.login("carol@example.org", "wrong") == 401
        alice = Browser(web.port)
        assert alice.login("alice@example.org", PASSWORD) == 303
        assert alice.go("GET", "/list") == 200 and ids[0] in alice.page
        assert alice.go("GET", f"/m/{ids[0]}") == 200
        assert alice.go("POST", "/action", {"action": "release", "id": ids[0], "csrf": alice.csrf}) == 303
        assert alice.go("GET", "/list") == 200
        assert alice.go("POST", "/action", {"action": "delete", "id": ids[1], "csrf": alice.csrf}) == 403
        assert alice.go("GET", "/m/" + "z" * 15) == 404
        assert alice.go("GET", "/alice@example.org/secret") == 404
        mallory = Browser(web.port)
        assert mallory.login("mallory@example.org", "guess") == 401
        assert mallory.login("mallory@example.org", "guess again") == 429
        admin = Browser(web.port)
        assert admin.login("admin@example.org", PASSWORD) == 303
        assert admin.go("GET", "/list") == 200
        assert admin.go("POST", "/action", {"action": "delete", "id": ids[1], "csrf": admin.csrf}) == 303
        visitor = Browser(web.port)
        assert visitor.go("GET", f"/r/{forged}") == 403
        assert visitor.go("GET", f"/r/{link}") == 200
        assert visitor.go("POST", f"/r/{link}", {"csrf": visitor.csrf}) == 200 and "Released" in visitor.page
        after = scrape(metrics_port)
        assert_secret_free(metrics_port, "alice", "mallory", "example.org", forged, link, *ids)
        inbox = tmp_path / "mail" / "example.org" / "alice" / "Maildir" / "new"
        assert len(list(inbox.iterdir())) == 2          # the form's release and the link's, delivered
    finally:
        web.stop()
        lmtpd.stop()
    assert moved(before, after, "owlery_web_logins_total") == {
        (("result", "ok"),): 2, (("result", "failed"),): 2, (("result", "rate-limited"),): 1}
    assert moved(before, after, "owlery_web_quarantine_actions_total") == {
        (("action", "release"), ("result", "done"), ("via", "form")): 1,
        (("action", "delete"), ("result", "done"), ("via", "form")): 1,
        (("action", "release"), ("result", "done"), ("via", "link")): 1}
    requests = {(dict(k)["route"], dict(k)["status"]): v
                for k, v in moved(before, after, "owlery_web_requests_total").items()}
    assert requests == {("login", "200"): 4, ("login", "401"): 2, ("login", "303"): 2, ("login", "429"): 1,
                        ("list", "200"): 3, ("message", "200"): 1, ("message", "404"): 1,
                        ("action", "303"): 2, ("action", "403"): 1, ("other", "404"): 1,
                        ("release_link", "403"): 1, ("release_link", "200"): 2}
    assert_bounded(after)


# -- policyd: greylist triplets stored, directory latency ------------------------------------

def stored_triplets(path: Path) -> tuple[int, int]:
    """(waiting, passed) straight from the state file (not through the code under test)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute("SELECT value FROM kv WHERE key LIKE 'gl:t:%' AND expires > ?", (time.time(),)).fetchall()
    finally:
        db.close()
    passed = sum(1 for (v,) in rows if " " in v)
    return len(rows) - passed, passed


def test_policyd_greylist_gauge_and_directory_latency(tmp_path):
    metrics_port, = free_ports(1)
    (tmp_path / "mailboxes").write_text("".join(f"user{i}@example.org\n" for i in range(10)))
    state = tmp_path / "state.sqlite"
    daemons = OwleryDaemons(tmp_path / "d", which=("policyd",), extra_config=(
        'policyd_checks = { RCPT = ["recipient", "greylist"] }\ngreylist_delay = "1s"\n'
        f'files_mailboxes = "{tmp_path}/mailboxes"\nstate_sqlite_path = "{state}"\n'
        f'policyd_metrics_listen = "tcp:127.0.0.1:{metrics_port}"\n')).start()
    endpoint = f"tcp:127.0.0.1:{daemons.ports['policyd']}"
    try:
        for i in range(5):                    # five new triplets: waiting
            assert query(endpoint, greylist_request(i)).startswith("DEFER_IF_PERMIT"), daemons.log("policyd")
        for i in range(2):                    # two retried after greylist_delay: passed
            wait_until(lambda i=i: not query(endpoint, greylist_request(i)).startswith("DEFER"), 10,
                       f"triplet {i} passes")
        wait_until(lambda: stored_triplets(state) == (3, 2), 10, "the writes stored")
        # The first scrape reads the count in the background (waiting up to GAUGE_FIRST_WAIT).
        first = wait_until(lambda: (lambda s: s if ("owlery_greylist_triplets_stored", (("state", "passed"),)) in s
                                    else None)(scrape(metrics_port)), 10, "the greylist gauge")
        assert first[("owlery_greylist_triplets_stored", (("state", "waiting"),))] == 3
        assert first[("owlery_greylist_triplets_stored", (("state", "passed"),))] == 2
        before = first
        for i in range(5, 8):                 # three new recipients: looked up, then greylisted
            assert query(endpoint, greylist_request(i)).startswith("DEFER_IF_PERMIT")
        unknown = dict(greylist_request(8), recipient="nobody@example.org")
        assert query(endpoint, unknown).startswith("550 5.1.1")
        assert query(endpoint, greylist_request(0)) == "DUNNO"          # known: the directory cache answers
        after = wait_until(lambda: (lambda s: s if moved(before, s, "owlery_backend_request_duration_seconds_count")
                                    .get((("backend", "state"),)) else None)(scrape(metrics_port)), 10,
                           "the greylist flush timed")
    finally:
        daemons.stop()
    timed = moved(before, after, "owlery_backend_request_duration_seconds_count")
    cache = moved(before, after, "owlery_directory_cache_lookups_total")
    # One timed directory lookup per cache miss (user5-7 and nobody); user0's came from the cache.
    assert timed[(("backend", "directory"),)] == 4 == cache[(("result", "miss"),)], (timed, cache)
    assert cache[(("result", "hit"),)] == 1, cache
    assert set(timed) == {(("backend", "directory"),), (("backend", "state"),)}, timed
    assert moved(before, after, "owlery_policyd_decisions_total") == {
        (("action", "defer-if-permit"), ("check", "greylist"), ("protocol_state", "RCPT")): 3,
        (("action", "reject"), ("check", "recipient"), ("protocol_state", "RCPT")): 1,
        (("action", "dunno"), ("check", "none"), ("protocol_state", "RCPT")): 1}
    assert_bounded(after)


# -- milter: the PostgreSQL quarantine's size --------------------------------------------------

def test_milter_reads_the_postgresql_quarantine_size(tmp_path, pg_dsn, pg_schema):
    metrics_port, = free_ports(1)
    store = PostgresStore(pg_dsn, schema=pg_schema)
    for i, size in enumerate((1500, 2500, 4000)):
        store.put(QuarantineRecord(new_id(), f"s{i}", time.time(), "virus", "Eicar", "bob@remote.test",
                                   (RecipientState("alice@example.org"),), size), b"x" * size)
    config = ('milter_inbound_stages = ["authres"]\nmilter_authserv_id = "mx.owlery.test"\n'
              'milter_spf_source = "none"\nmilter_internal_networks = []\n'
              f'quarantine_backend = "postgresql"\nquarantine_pg_dsn = "{pg_dsn}"\n'
              f'quarantine_pg_schema = "{pg_schema}"\n'
              f'milter_metrics_listen = "tcp:127.0.0.1:{metrics_port}"\n')
    with MilterProcess(tmp_path / "milter", config, listen="unix") as milter:
        got = scrape(metrics_port)
        assert (got.get(("owlery_quarantine_messages", ())), got.get(("owlery_quarantine_size_bytes", ()))) \
            == (3, 8000), milter.log()[-2000:]
