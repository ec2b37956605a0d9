"""`owlery check` (owlery/app/check.py, check_probes.py): each probe against a small fake server
on loopback, the Nagios status rules (exit codes, one status line, perfdata, `all`'s long
output, worst status), timeouts, refusals and settings that say nothing to probe."""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import sys
import threading
import time

import pytest

from owlery.app import check
from owlery.app import check_probes as P
from owlery.app.cli import main
from owlery.settings import parse_text
from tests.harness.procs import wait_until
from tests.harness.threaded_server import ThreadedServer

# 'label'=value[UOM];[warn];[crit];[min];[max] (Nagios plugin development guidelines)
PERF_RE = re.compile(r"^('[^'=]+'|[^' =]+)=-?[0-9.]+(s|%|B|KB|MB|TB|c)?(;-?[0-9.]*){0,4}$")


def recv_until(conn, delimiter):
    buf = b""
    while delimiter not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf


class FakeServer(ThreadedServer):
    """Accepts on loopback TCP (or a unix socket) and runs handler(conn) per connection in a thread."""

    def __init__(self, handler, unix_path=None):
        self.handler = handler
        self.requests = []
        self.release = threading.Event()       # handlers that hang wait on this until teardown
        super().__init__(unix_path)

    def serve_connection(self, conn):
        with conn:
            conn.settimeout(10)
            try:
                self.handler(self, conn)
            except OSError:
                pass

    def stop(self):
        self.release.set()
        self.close()


@pytest.fixture
def serve():
    servers = []

    def make(handler, unix_path=None):
        server = FakeServer(handler, unix_path)
        servers.append(server)
        return server
    yield make
    for server in servers:
        server.stop()


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- fake services ------------------------------------------------------------------------

def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def milter_server(server, conn):
    (length,) = struct.unpack("!I", recv_exact(conn, 4))
    server.requests.append(recv_exact(conn, length))
    conn.sendall(struct.pack("!IcIII", 13, b"O", 6, 0x1, 0x10))
    server.requests.append(recv_exact(conn, 5))          # SMFIC_QUIT


def scripted(request_end, reply, greeting=None, then=None):
    """A handler: send `greeting`, record the request up to `request_end`, answer `reply`,
    then (with `then`) read the client's last line (QUIT, LOGOUT) up to it."""
    def handler(server, conn):
        if greeting is not None:
            conn.sendall(greeting)
        server.requests.append(recv_until(conn, request_end))
        conn.sendall(reply)
        if then is not None:
            recv_until(conn, then)
    return handler


policy_server = scripted(b"\n\n", b"action=DUNNO\n\n")
lmtp_server = scripted(b"\r\n", b"250-fake\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n",
                       greeting=b"220 fake LMTP\r\n", then=b"\r\n")
sieve_server = scripted(b"\r\n", b'"IMPLEMENTATION" "Fake Sieve"\r\nOK\r\n',
                        greeting=b'"IMPLEMENTATION" "Fake Sieve"\r\n"SIEVE" "fileinto"\r\nOK "ready"\r\n',
                        then=b"\r\n")
spamd_server = scripted(b"\r\n\r\n", b"SPAMD/1.5 0 PONG\r\n")


def socketmap_server(answer):
    return scripted(b",", b"%d:%s," % (len(answer), answer))


def clamd_server(reply):
    return scripted(b"\0", reply)


def silent_server(server, conn):
    server.release.wait(30)


def probe(name, settings_text="", timeout=5.0, endpoint=None):
    settings = parse_text(settings_text)
    return check.run([name], settings, timeout, endpoint)[0]


# --- each daemon in its own protocol --------------------------------------------------------

def test_policyd_probe_asks_at_vrfy_and_reads_the_action(serve):
    server = serve(policy_server)
    name, outcome, elapsed = probe("policyd", f'policyd_listen = ["{server.endpoint}"]')
    assert (name, outcome.status) == ("policyd", P.OK)
    assert "action=DUNNO" in outcome.text and server.endpoint in outcome.text
    request = server.requests[0].decode()
    assert "request=smtpd_access_policy\n" in request and "protocol_state=VRFY\n" in request
    assert elapsed is not None and elapsed < 5


def test_policyd_probe_over_a_unix_socket(serve, tmp_path):
    server = serve(policy_server, unix_path=tmp_path / "policyd.sock")
    _, outcome, _ = probe("policyd", f'policyd_listen = ["systemd:policyd", "{server.endpoint}"]')
    assert outcome.status == P.OK, outcome


def test_milter_probe_negotiates_options_and_quits(serve):
    server = serve(milter_server)
    _, outcome, _ = probe("milter", f'milter_listen = "{server.endpoint}"')
    assert outcome.status == P.OK, outcome
    assert "version 6" in outcome.text
    wait_until(lambda: len(server.requests) == 2, 5, "the fake milter reading SMFIC_QUIT")
    optneg, quit_ = server.requests
    assert optneg[:1] == b"O" and struct.unpack("!III", optneg[1:13])[0] == 6
    assert quit_ == b"\0\0\0\x01Q"


def test_milter_probe_refuses_a_reply_that_is_no_negotiation(serve):
    def wrong(server, conn):
        conn.recv(17)
        conn.sendall(struct.pack("!Ic", 1, b"c"))       # SMFIR_CONTINUE
    server = serve(wrong)
    _, outcome, _ = probe("milter", f'milter_listen = "{server.endpoint}"')
    assert outcome.status == P.CRITICAL and "no option negotiation" in outcome.text


def test_lmtpd_probe_says_lhlo(serve):
    server = serve(lmtp_server)
    _, outcome, _ = probe("lmtpd", f'lmtpd_listen = ["{server.endpoint}"]')
    assert outcome.status == P.OK, outcome
    assert server.requests == [b"LHLO owlery-check\r\n"]


@pytest.mark.parametrize("answer, status", [(b"NOTFOUND ", P.OK), (b"OK example.org", P.OK),
                                            (b"TEMP directory unavailable", P.CRITICAL)])
def test_socketmap_probe_asks_the_domains_table(serve, answer, status):
    server = serve(socketmap_server(answer))
    _, outcome, _ = probe("socketmap", f'socketmap_listen = ["{server.endpoint}"]\n'
                                       'check_directory_probe = "postmaster@example.org"')
    assert outcome.status == status, outcome
    assert server.requests == [b"35:virtual_mailbox_domains example.org,"]


def test_managesieve_probe_reads_the_greeting_and_asks_capability(serve):
    server = serve(sieve_server)
    _, outcome, _ = probe("managesieve", f'managesieve_listen = ["{server.endpoint}"]')
    assert outcome.status == P.OK and "Fake Sieve" in outcome.text, outcome
    assert server.requests == [b"CAPABILITY\r\n"]


@pytest.mark.parametrize("name, greeting, says", [
    pytest.param("lmtpd", b"421 4.3.2 too busy\r\n", "421", id="lmtpd-421"),
    pytest.param("managesieve", b'BYE "Too many connections"\r\n', "Too many connections", id="managesieve-bye"),
])
def test_a_refusing_greeting_is_critical(serve, name, greeting, says):
    server = serve(lambda server, conn: conn.sendall(greeting))
    _, outcome, _ = probe(name, f'{name}_listen = ["{server.endpoint}"]')
    assert outcome.status == P.CRITICAL and says in outcome.text


@pytest.mark.parametrize("reply, status", [(b"PONG\0", P.OK), (b"UNKNOWN COMMAND\0", P.CRITICAL)])
def test_clamd_probe_pings(serve, reply, status):
    server = serve(clamd_server(reply))
    _, outcome, _ = probe("clamd", f'clamd_endpoint = "{server.endpoint}"')
    assert outcome.status == status, outcome
    assert server.requests == [b"zPING\0"]


def test_spamd_probe_pings(serve):
    server = serve(spamd_server)
    _, outcome, _ = probe("spamd", f'spamd_endpoint = "{server.endpoint}"')
    assert outcome.status == P.OK and "SPAMD/1.5" in outcome.text, outcome
    assert server.requests == [b"PING SPAMC/1.5\r\n\r\n"]


# --- failures: refused, missing, silent, misconfigured ---------------------------------------

def test_refused_connection_is_critical():
    port = closed_port()
    _, outcome, _ = probe("clamd", f'clamd_endpoint = "tcp:127.0.0.1:{port}"')
    assert outcome.status == P.CRITICAL and "connection refused" in outcome.text


def test_missing_unix_socket_is_critical(tmp_path):
    _, outcome, _ = probe("lmtpd", f'lmtpd_listen = ["unix:{tmp_path}/none.sock"]')
    assert outcome.status == P.CRITICAL and "no such socket" in outcome.text


def test_a_server_that_never_answers_is_critical_within_the_timeout(serve):
    server = serve(silent_server)
    started = time.monotonic()
    _, outcome, _ = probe("policyd", f'policyd_listen = ["{server.endpoint}"]', timeout=0.5)
    took = time.monotonic() - started
    assert outcome.status == P.CRITICAL and "0.5 s" in outcome.text, outcome
    assert 0.5 <= took < 0.5 + check.JOIN_GRACE + 0.5


def test_a_probe_stuck_past_its_own_deadline_is_cut_off(monkeypatch):
    """A blocking library call that ignores the deadline: the runner stops waiting anyway."""
    stuck = threading.Event()
    monkeypatch.setattr(P, "state", lambda settings, timeout: stuck.wait(30))
    started = time.monotonic()
    try:
        _, outcome, elapsed = probe("state", timeout=0.3)
    finally:
        stuck.set()
    assert outcome.status == P.CRITICAL and "no answer within 0.3 s" in outcome.text
    assert time.monotonic() - started < 0.3 + check.JOIN_GRACE + 0.5 and elapsed == 0.3


def test_only_systemd_endpoints_is_unknown():
    _, outcome, elapsed = probe("policyd", 'policyd_listen = ["systemd:policyd"]')
    assert outcome.status == P.UNKNOWN and "check_endpoints" in outcome.text
    assert elapsed is None


def test_check_endpoints_and_endpoint_option_override_the_listen_setting(serve):
    server = serve(policy_server)
    _, outcome, _ = probe("policyd", f'policyd_listen = ["systemd:policyd"]\n'
                                     f'check_endpoints = {{ policyd = "{server.endpoint}" }}')
    assert outcome.status == P.OK, outcome
    _, outcome, _ = probe("policyd", 'policyd_listen = ["systemd:policyd"]', endpoint=server.endpoint)
    assert outcome.status == P.OK, outcome


def test_a_slow_answer_is_a_warning(serve):
    server = serve(policy_server)
    settings = parse_text(f'policyd_listen = ["{server.endpoint}"]\ncheck_response_warning = 0')
    text, status = check.render("policyd", check.run(["policyd"], settings, 5.0), 0.0, 5.0)
    assert status == P.WARNING and "slow" in text


# --- backends -------------------------------------------------------------------------------

def test_directory_probe_resolves_the_configured_address(tmp_path):
    (tmp_path / "mailboxes").write_text("postmaster@example.org example.org/postmaster/Maildir\n")
    base = f'files_mailboxes = "{tmp_path}/mailboxes"\nfiles_maildir_base = "{tmp_path}"\n'
    _, outcome, _ = probe("directory", base + 'check_directory_probe = "postmaster@example.org"')
    assert outcome.status == P.OK and "postmaster@example.org" in outcome.text, outcome
    _, outcome, _ = probe("directory", base + 'check_directory_probe = "nobody@example.org"')
    assert outcome.status == P.CRITICAL and "does not know nobody@example.org" in outcome.text
    _, outcome, _ = probe("directory", base)
    assert outcome.status == P.UNKNOWN and "check_directory_probe" in outcome.text


def test_directory_probe_is_critical_when_the_backend_fails(tmp_path):
    _, outcome, _ = probe("directory", 'directory_backend = "ldap"\nldap_servers = ["ldap://127.0.0.1:%d"]\n'
                                       'check_directory_probe = "postmaster@example.org"' % closed_port())
    assert outcome.status == P.CRITICAL, outcome


def test_state_probe_on_sqlite(tmp_path):
    import sqlite3
    path = tmp_path / "state.sqlite"
    _, outcome, _ = probe("state", f'state_sqlite_path = "{path}"')
    assert outcome.status == P.WARNING and "does not exist yet" in outcome.text
    assert not path.exists()                       # the check made no database
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    _, outcome, _ = probe("state", f'state_sqlite_path = "{path}"')
    assert outcome.status == P.OK, outcome
    path.write_bytes(b"this is not a database" * 100)
    _, outcome, _ = probe("state", f'state_sqlite_path = "{path}"')
    assert outcome.status == P.CRITICAL, outcome


def test_state_probe_on_an_unreachable_redis_is_critical():
    _, outcome, _ = probe("state", f'state_backend = "redis"\nstate_redis_url = "redis://127.0.0.1:{closed_port()}/0"')
    assert outcome.status == P.CRITICAL and "Redis" in outcome.text, outcome


def test_quarantine_probe_writes_and_removes_a_file(tmp_path):
    store = tmp_path / "quarantine"
    _, outcome, _ = probe("quarantine", f'quarantine_directory = "{store}"')
    assert outcome.status == P.WARNING and not store.exists()
    (store / "tmp").mkdir(parents=True)
    _, outcome, _ = probe("quarantine", f'quarantine_directory = "{store}"')
    assert outcome.status == P.OK and f"{store}/tmp" in outcome.text, outcome
    assert os.listdir(store / "tmp") == []


def test_quarantine_probe_without_a_dsn_is_unknown():
    _, outcome, _ = probe("quarantine", 'quarantine_backend = "postgresql"')
    assert outcome.status == P.UNKNOWN and "quarantine_pg_dsn" in outcome.text


def fake_postqueue(tmp_path, queues, exit_status=0):
    """A postqueue stand-in printing one `postqueue -j` line per queue name given."""
    lines = "".join(json.dumps({"queue_name": q, "queue_id": f"ID{i}", "recipients": []}) + "\n"
                    for i, q in enumerate(queues))
    (tmp_path / "queue.json").write_text(lines)
    script = tmp_path / "postqueue"
    script.write_text(f"#!{sys.executable}\nimport sys\n"
                      f"open({str(tmp_path / 'argv')!r}, 'w').write(' '.join(sys.argv[1:]))\n"
                      f"sys.stdout.write(open({str(tmp_path / 'queue.json')!r}).read())\n"
                      f"sys.stderr.write('postqueue: fatal: Cannot connect to showq\\n' if {exit_status} else '')\n"
                      f"sys.exit({exit_status})\n")
    script.chmod(0o755)
    return f'check_postqueue_command = "{script}"\ncheck_postfix_config_directory = "/tmp/pf"\n' \
           'check_queue_warning = 2\ncheck_queue_critical = 4\n'


@pytest.mark.parametrize("queues, status", [([], P.OK), (["active", "deferred"], P.OK),
                                            (["deferred"] * 3, P.WARNING),
                                            (["deferred"] * 4 + ["hold"], P.CRITICAL)])
def test_queue_thresholds(tmp_path, queues, status):
    _, outcome, _ = probe("queue", fake_postqueue(tmp_path, queues))
    assert outcome.status == status, outcome
    assert (tmp_path / "argv").read_text() == "-c /tmp/pf -j"
    assert f"{len(queues)} messages" in outcome.text
    queue_perf = outcome.perf[0].render()
    assert queue_perf == f"queue={len(queues)};2;4;0"


def test_queue_when_postqueue_fails_or_is_missing(tmp_path):
    _, outcome, _ = probe("queue", fake_postqueue(tmp_path, [], exit_status=75))
    assert outcome.status == P.CRITICAL and "Cannot connect to showq" in outcome.text
    _, outcome, _ = probe("queue", f'check_postqueue_command = "{tmp_path}/nope"')
    assert outcome.status == P.UNKNOWN and "not found" in outcome.text


# --- output and exit status -------------------------------------------------------------------

def test_perfdata_follows_the_plugin_guidelines():
    assert P.Perf("time", 0.0125, "s", 5, 10, 0, 10).render() == "time=0.0125s;5;10;0;10"
    assert P.Perf("queue", 3, "", 2, 4, 0).render() == "queue=3;2;4;0"
    assert P.Perf("a b", 1).render() == "'a b'=1"


def test_one_status_line_with_perfdata_and_the_exit_status(serve, tmp_path, capsys):
    server = serve(clamd_server(b"PONG\0"))
    config = tmp_path / "owlery.toml"
    config.write_text(f'clamd_endpoint = "{server.endpoint}"\n')
    assert main(["check", "clamd", "--config", str(config)]) == P.OK
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    head, perf = out.strip().split(" | ")
    assert head.startswith("OWLERY CLAMD OK - clamd PONG at tcp:127.0.0.1:")
    assert all(PERF_RE.match(item) for item in perf.split()), perf
    assert perf.startswith("time=") and perf.endswith("s;5;10;0;10")


def test_all_reports_the_worst_and_one_line_per_check(serve, tmp_path, capsys):
    clam = serve(clamd_server(b"PONG\0"))
    config = tmp_path / "owlery.toml"
    config.write_text(f'check_all = ["clamd", "spamd", "directory", "queue"]\n'
                      f'clamd_endpoint = "{clam.endpoint}"\n'
                      f'spamd_endpoint = "tcp:127.0.0.1:{closed_port()}"\n'
                      + fake_postqueue(tmp_path, ["deferred"] * 3))
    assert main(["check", "--config", str(config)]) == P.CRITICAL
    lines = capsys.readouterr().out.splitlines()
    head, perf = lines[0].split(" | ")
    assert head == "OWLERY ALL CRITICAL - CRITICAL: spamd; WARNING: queue; UNKNOWN: directory; 1 OK"
    assert [line.split(":")[0] for line in lines[1:]] == ["OK clamd", "CRITICAL spamd", "UNKNOWN directory",
                                                          "WARNING queue"]
    labels = [item.split("=")[0] for item in perf.split()]
    assert labels[:3] == ["clamd_time", "spamd_time", "queue_time"] and "queue" in labels
    assert all(PERF_RE.match(item) for item in perf.split()), perf


def test_all_ok_names_every_check(serve, tmp_path, capsys):
    clam = serve(clamd_server(b"PONG\0"))
    config = tmp_path / "owlery.toml"
    config.write_text(f'check_all = ["clamd", "spamd"]\nclamd_endpoint = "{clam.endpoint}"\n'
                      f'spamd_endpoint = "{serve(spamd_server).endpoint}"\n')
    assert main(["check", "all", "--config", str(config)]) == P.OK
    assert capsys.readouterr().out.startswith("OWLERY ALL OK - 2 checks OK: clamd, spamd | ")


@pytest.mark.parametrize("argv, message", [
    (["check", "bogus"], "unknown check 'bogus'"),
    (["check", "state", "--endpoint", "tcp:127.0.0.1:1"], "--endpoint goes with"),
    (["check", "-t", "soon"], "expected seconds"),
    (["check", "--config", "/nonexistent/owlery.toml"], "settings:"),
])
def test_usage_and_settings_errors_are_unknown(argv, message, capsys):
    try:
        status = main(argv)
    except SystemExit as e:
        status = e.code
    assert status == P.UNKNOWN
    out = capsys.readouterr().out
    assert out.startswith("OWLERY ") and " UNKNOWN - " in out and message in out, out


def test_a_bad_settings_file_is_unknown(tmp_path, capsys):
    config = tmp_path / "owlery.toml"
    config.write_text("check_timeout = \"soon\"\n")
    assert main(["check", "clamd", "--config", str(config)]) == P.UNKNOWN
    assert capsys.readouterr().out.startswith("OWLERY CLAMD UNKNOWN - settings: ")


def test_status_text_never_carries_a_pipe():
    text, _ = check.render("clamd", [("clamd", P.ProbeResult(P.CRITICAL, "a | b\nc"), None)], 5, 10)
    assert text == "OWLERY CLAMD CRITICAL - a / b c"


# --- what `all` runs --------------------------------------------------------------------------

def relevant(text=""):
    return check.relevant(parse_text('check_postqueue_command = "/nonexistent/postqueue"\n' + text))


def test_all_runs_the_three_daemons_by_default():
    assert relevant() == ["policyd", "milter", "lmtpd"]


def test_all_follows_the_settings():
    assert relevant('milter_inbound_stages = ["spf", "antivirus", "spam"]\n'
                    'directory_backend = "ldap"\nmanagesieve_listen = ["tcp:127.0.0.1:4190"]\n'
                    'check_directory_probe = "postmaster@example.org"\n'
                    'policyd_checks = { RCPT = ["recipient", "greylist"] }\n'
                    'check_postfix_config_directory = "/etc/postfix"\n') == [
        "policyd", "milter", "lmtpd", "socketmap", "managesieve", "clamd", "spamd", "directory", "state",
        "quarantine", "queue"]
    assert relevant('milter_daemon_stages = { submission = ["banned"] }') == [
        "policyd", "milter", "lmtpd", "quarantine"]


# --- the README's Health checks section ---------------------------------------------------------

def health_checks_section():
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[2] / "README.rst").read_text()
    start = readme.index("Health checks\n-------------\n")
    return readme[start:readme.index("\nStatistics\n----------\n", start)]


def readme_block(marker):
    m = re.search(re.escape(marker) + r"\n\n((?:(?:    .*)?\n)+)", health_checks_section())
    assert m, f"README's Health checks section has no {marker!r} block"
    return "\n".join(line[4:] for line in m.group(1).splitlines()).strip("\n")


def test_readme_example_output_is_what_render_prints(tmp_path):
    """The example's lines, fed back as outcomes (the queue's through the real probe), render to
    exactly the example: labels, order, perfdata and the summary wording are the plugin's."""
    example = readme_block("\n::").splitlines()
    head, perf = example[0].split(" | ")
    times = {item.split("_time=")[0]: float(item.split("=")[1].split("s;")[0])
             for item in perf.split() if "_time=" in item}
    results = []
    for line in example[1:]:
        word, rest = line.split(" ", 1)
        name, text = rest.split(": ", 1)
        outcome = P.ProbeResult(P.STATUS_WORDS.index(word), text)
        if name == "queue":
            settings = parse_text(fake_postqueue(tmp_path, ["deferred"] * 2)).replace(
                check_queue_warning=100, check_queue_critical=500)
            outcome = check.plan("queue", settings, 10)[0](P.Deadline(10))
            assert outcome.text == text
        results.append((name, outcome, times[name]))
    assert check.render("all", results, 5, 10) == ("\n".join(example), P.CRITICAL)


def test_readme_alert_rules_parse_and_name_exported_metrics():
    import yaml

    from tests.core.test_grafana_dashboard import exported, parse
    rules = yaml.safe_load(readme_block(".. code-block:: yaml"))
    [group] = rules["groups"]
    series = exported()
    assert len(group["rules"]) >= 5
    named = set()
    for rule in group["rules"]:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]
        selectors, grouping = parse(rule["expr"])
        for name, labels in selectors:
            if name == "up":                      # Prometheus' own, per scrape target
                continue
            assert name in series, f"{rule['alert']}: {name} is not a metric Owlery exports"
            assert labels <= series[name], f"{rule['alert']}: {name} has no label {labels - series[name]}"
            named.add(name)
        assert all(any(g in series[n] for n, _ in selectors if n in series) for g in grouping - {"le"}), rule
    assert {"owlery_backend_errors_total", "owlery_milter_messages_total"} <= named
