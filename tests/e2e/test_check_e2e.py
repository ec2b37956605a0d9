"""`owlery check` against real servers: Owlery's own policyd, milter (libmilter) and lmtpd, a real
clamd (stopped, frozen and restarted), Redis, PostgreSQL, slapd and a Postfix queue.

One site per module (the daemons, clamd and a Postfix that defers everything, so mail stays
queued); the `owlery check` command runs as Nagios would run it, in a child process, where
its exit status and the time it takes count; the rest runs in-process (check.run), which is
faster. The README's Nagios command and NRPE line are parsed and run against the site.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from owlery.app import check
from owlery.app import check_probes as P
from owlery.settings import load
from tests.harness.clamd import Clamd
from tests.harness.owlery_daemons import OwleryDaemons
from tests.harness.procs import wait_until
from tests.harness.stores import drop_redis_prefix, unique_name

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.rst").read_text()
# The plugin's own start-up (Python, settings) on a loaded CI machine, on top of the timeout.
STARTUP_ALLOWANCE = 3.0


@pytest.fixture(scope="module")
def site(harness_dirs, postfix_factory, redis_url):
    workdir = harness_dirs("check-site")
    clamd = Clamd(harness_dirs("check-clamd")).start()
    postfix = postfix_factory(main_cf={"defer_transports": "smtp"}, name="check-postfix")
    (workdir / "mailboxes").write_text("postmaster@example.org example.org/postmaster/Maildir\n")
    (workdir / "quarantine" / "tmp").mkdir(parents=True)
    prefix = unique_name("owlery-check:") + ":"
    extra = (f'files_mailboxes = "{workdir}/mailboxes"\nfiles_maildir_base = "{workdir}/mail"\n'
             f'quarantine_directory = "{workdir}/quarantine"\n'
             f'state_backend = "redis"\nstate_redis_url = "{redis_url}"\nstate_key_prefix = "{prefix}"\n'
             'policyd_checks = { RCPT = ["recipient", "greylist"] }\n'
             'milter_inbound_stages = ["antivirus"]\n'
             f'clamd_endpoint = "tcp:127.0.0.1:{clamd.port}"\n'
             'check_directory_probe = "postmaster@example.org"\n'
             f'check_postfix_config_directory = "{postfix.config_dir}"\n'
             'check_timeout = 3\n')
    daemons = OwleryDaemons(workdir, extra_config=extra).start()
    try:
        yield daemons, clamd, postfix, prefix, redis_url
    finally:
        daemons.stop()
        clamd.stop()
        drop_redis_prefix(redis_url, prefix)


def owlery_check(*args, config=None):
    """Run `owlery check ARGS` as a child process: (exit status, stdout lines, seconds taken)."""
    argv = [sys.executable, "-m", "owlery.app.cli", "check", *args]
    if config is not None:
        argv += ["--config", str(config)]
    started = time.monotonic()
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return r.returncode, r.stdout.splitlines(), time.monotonic() - started


def test_all_is_ok_on_a_running_site_and_touches_no_state(site):
    daemons, _, _, prefix, redis_url = site
    status, lines, _ = owlery_check(config=daemons.config_path)
    assert status == P.OK, "\n".join(lines)
    assert lines[0].startswith("OWLERY ALL OK - 8 checks OK: policyd, milter, lmtpd, clamd, directory, "
                               "state, quarantine, queue | ")
    assert [line.split(":")[0] for line in lines[1:]] == [
        "OK policyd", "OK milter", "OK lmtpd", "OK clamd", "OK directory", "OK state", "OK quarantine", "OK queue"]
    import redis
    assert not redis.Redis.from_url(redis_url).keys(prefix + "*")      # the VRFY probe greylisted nothing


def test_each_daemon_answers_in_its_protocol(site):
    daemons = site[0]
    results = check.run(["policyd", "milter", "lmtpd"], daemons.settings, 3.0)
    texts = {name: outcome.text for name, outcome, _ in results}
    assert [outcome.status for _, outcome, _ in results] == [P.OK] * 3, texts
    assert texts["policyd"].startswith("action=DUNNO from tcp:127.0.0.1:")
    assert texts["milter"].startswith("milter protocol version 6 negotiated")
    assert texts["lmtpd"].startswith("LHLO answered 250")


def test_clamd_is_critical_within_the_timeout_when_stopped_or_frozen_and_ok_after_restart(site):
    daemons, clamd, *_ = site
    status, lines, _ = owlery_check("clamd", config=daemons.config_path)
    assert status == P.OK and lines[0].startswith("OWLERY CLAMD OK - clamd PONG at tcp:127.0.0.1:"), lines

    os.kill(clamd.proc.pid, signal.SIGSTOP)      # accepts (the kernel does) but never answers
    try:
        status, lines, took = owlery_check("clamd", "-t", "1", config=daemons.config_path)
    finally:
        os.kill(clamd.proc.pid, signal.SIGCONT)
    assert status == P.CRITICAL and "no answer within 1 s" in lines[0], lines
    assert 1.0 <= took < 1.0 + check.JOIN_GRACE + STARTUP_ALLOWANCE

    clamd.stop()
    status, lines, took = owlery_check("clamd", config=daemons.config_path)
    assert status == P.CRITICAL and "connection refused" in lines[0], lines
    assert took < 3.0 + STARTUP_ALLOWANCE
    status, lines, _ = owlery_check(config=daemons.config_path)
    assert status == P.CRITICAL and lines[0].startswith("OWLERY ALL CRITICAL - CRITICAL: clamd; 7 OK"), lines

    clamd.restart()                               # same port
    status, lines, _ = owlery_check("clamd", config=daemons.config_path)
    assert status == P.OK, lines


def test_queue_thresholds_against_a_real_postfix_queue(site):
    daemons, _, postfix, *_ = site
    from tests.harness.postfix import build_message
    try:
        for i in range(3):
            result = postfix.send("sender@example.test", [f"rcpt{i}@example.test"], build_message())
            assert result.accepted, result
        wait_until(lambda: len(postfix.queue()) == 3, 15, "3 messages deferred in Postfix's queue")
        settings = daemons.settings.replace(check_queue_warning=2, check_queue_critical=5)
        [(_, outcome, _)] = check.run(["queue"], settings, 5.0)
        assert outcome.status == P.WARNING and outcome.text.startswith("3 messages in the queue"), outcome
        assert outcome.perf[0].render() == "queue=3;2;5;0"
        [(_, outcome, _)] = check.run(["queue"], settings.replace(check_queue_critical=2), 5.0)
        assert outcome.status == P.CRITICAL
    finally:
        postfix.delete_queue()
    [(_, outcome, _)] = check.run(["queue"], daemons.settings, 5.0)
    assert outcome.status == P.OK and outcome.text.startswith("0 messages"), outcome


def test_queue_is_critical_when_postfix_is_down(make_postfix):
    """postqueue, as root, then reads the queue itself and warns "Mail system is down"."""
    postfix = make_postfix(name="check-postfix-down")
    settings = load(None).replace(check_postfix_config_directory=str(postfix.config_dir))
    [(_, outcome, _)] = check.run(["queue"], settings, 5.0)
    assert outcome.status == P.OK, outcome
    postfix.stop()
    [(_, outcome, _)] = check.run(["queue"], settings, 5.0)
    assert outcome.status == P.CRITICAL and outcome.text.startswith("Postfix is not running: 0 messages"), outcome


def test_directory_probe_through_ldap(slapd):
    settings = load(None).replace(directory_backend="ldap", ldap_servers=[slapd.url], ldap_base_dn=slapd.base_dn)
    [(_, outcome, _)] = check.run(["directory"], settings.replace(check_directory_probe="alice@example.test"), 5.0)
    assert outcome.status == P.OK and "ldap directory resolves alice@example.test" in outcome.text, outcome
    [(_, outcome, _)] = check.run(["directory"], settings.replace(check_directory_probe="nobody@example.test"), 5.0)
    assert outcome.status == P.CRITICAL, outcome


def test_quarantine_on_postgresql_takes_a_row_and_rolls_it_back(pg_dsn, pg_schema):
    import psycopg

    from owlery.quarantine.postgres import PostgresStore
    settings = load(None).replace(quarantine_backend="postgresql", quarantine_pg_dsn=pg_dsn,
                                  quarantine_pg_schema=pg_schema)
    [(_, outcome, _)] = check.run(["quarantine"], settings, 5.0)
    assert outcome.status == P.WARNING and "do not exist yet" in outcome.text, outcome
    PostgresStore(pg_dsn, schema=pg_schema)._setup()
    [(_, outcome, _)] = check.run(["quarantine"], settings, 5.0)
    assert outcome.status == P.OK and "SELECT 1" in outcome.text, outcome
    with psycopg.connect(pg_dsn, options=f"-c search_path={pg_schema}") as conn:
        assert conn.execute("SELECT count(*) FROM quarantine_meta WHERE key LIKE 'owlery-check-%'"
                            ).fetchone()[0] == 0
    bad = settings.replace(quarantine_pg_dsn="host=127.0.0.1 port=1 dbname=none user=none")
    [(_, outcome, _)] = check.run(["quarantine"], bad, 5.0)
    assert outcome.status == P.CRITICAL, outcome


def readme_nagios_block() -> str:
    m = re.search(r"\.\. code-block:: text\n\n((?:(?:    .*)?\n)+)",
                  README[README.index("Health checks\n-------------"):])
    assert m, "README's Health checks section has no Nagios block"
    return "\n".join(line[4:] for line in m.group(1).splitlines())


def as_here(command_line: str, config: Path) -> list[str]:
    """The README's command line with this checkout's owlery and the site's settings file."""
    argv = shlex.split(command_line)
    assert argv[0] == "/usr/local/bin/owlery" and "/etc/owlery/owlery.toml" in argv, argv
    return [sys.executable, "-m", "owlery.app.cli"] + [str(config) if a == "/etc/owlery/owlery.toml" else a
                                                       for a in argv[1:]]


def test_readme_nagios_command_and_nrpe_line_run(site):
    daemons = site[0]
    block = readme_nagios_block()
    command_line = re.search(r"command_name\s+check_owlery\n\s*command_line\s+(.+)", block).group(1)
    check_command = re.search(r"check_command\s+(\S+)", block).group(1)
    name, *arguments = check_command.split("!")
    assert name == "check_owlery"
    for n, value in enumerate(arguments, 1):
        command_line = command_line.replace(f"$ARG{n}$", value)
    assert "$" not in command_line, command_line
    r = subprocess.run(as_here(command_line, daemons.config_path), cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == P.OK and r.stdout.startswith("OWLERY CLAMD OK - "), r.stdout + r.stderr

    nrpe = re.search(r"^command\[check_owlery_all\]=(.+)$", block, re.M).group(1)
    r = subprocess.run(as_here(nrpe, daemons.config_path), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == P.OK and r.stdout.startswith("OWLERY ALL OK - "), r.stdout + r.stderr
